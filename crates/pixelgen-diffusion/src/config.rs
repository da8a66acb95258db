//! Configs of a diffusers SDXL folder, read from its JSON files with diffusers' defaults.
//!
//! Unknown keys are ignored, missing keys take the value the Python class would use, so a folder
//! saved by any diffusers version loads. Scheduler defaults depend on the scheduler class and are
//! resolved in [`crate::scheduler`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{DiffusionError, Result};

/// A value that diffusers accepts either once for all blocks or as one value per block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerBlock<T> {
    /// The same value for every block.
    One(T),
    /// One value per block, in down-block order.
    Each(Vec<T>),
}

impl<T: Clone> PerBlock<T> {
    /// The value for each of `blocks` blocks; errors if a list has the wrong length.
    pub fn expand(&self, blocks: usize, name: &'static str) -> Result<Vec<T>> {
        match self {
            PerBlock::One(v) => Ok(vec![v.clone(); blocks]),
            PerBlock::Each(list) if list.len() == blocks => Ok(list.clone()),
            PerBlock::Each(list) => Err(crate::error::invalid(
                name,
                format!(
                    "has {} entries but the model has {blocks} blocks",
                    list.len()
                ),
            )),
        }
    }
}

/// `model_index.json`: the pipeline class and its components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelIndex {
    /// Pipeline class, e.g. `StableDiffusionXLPipeline`.
    #[serde(rename = "_class_name")]
    pub class_name: String,
    /// diffusers version that saved the folder.
    #[serde(rename = "_diffusers_version")]
    pub diffusers_version: Option<String>,
    /// Empty negative prompts become zero embeddings (SDXL base: true).
    pub force_zeros_for_empty_prompt: bool,
    /// Refiner-style time ids with an aesthetic score instead of the target size.
    pub requires_aesthetics_score: bool,
    /// Every other key: components as `[library, class]` pairs (either may be null).
    #[serde(flatten)]
    pub components: BTreeMap<String, serde_json::Value>,
}

impl Default for ModelIndex {
    fn default() -> Self {
        Self {
            class_name: String::new(),
            diffusers_version: None,
            force_zeros_for_empty_prompt: true,
            requires_aesthetics_score: false,
            components: BTreeMap::new(),
        }
    }
}

impl ModelIndex {
    /// The class of component `name` (e.g. `"unet"` -> `UNet2DConditionModel`), if present.
    pub fn component_class(&self, name: &str) -> Option<&str> {
        self.components.get(name)?.as_array()?.get(1)?.as_str()
    }
}

/// The noise schedule of training (`beta_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// Betas linear in t.
    Linear,
    /// Square roots of the betas linear in t (Stable Diffusion).
    ScaledLinear,
    /// The cosine schedule of improved DDPM.
    #[serde(rename = "squaredcos_cap_v2")]
    SquaredCosCapV2,
}

/// What the denoising model predicts (`prediction_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The added noise (SDXL base).
    Epsilon,
    /// The velocity `sqrt(a) * noise - sqrt(1 - a) * x0`.
    VPrediction,
    /// The clean sample itself.
    Sample,
}

/// How inference timesteps are spread over the training range (`timestep_spacing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    /// Evenly from 0 to T-1, ends included.
    Linspace,
    /// Multiples of `T / steps` from 0, plus `steps_offset` (SDXL base).
    Leading,
    /// Multiples of `T / steps` ending at T-1 (SDXL Turbo, zero-SNR models).
    Trailing,
}

/// `scheduler/scheduler_config.json`. `None` means "absent": the chosen scheduler's own default applies,
/// as when diffusers builds one scheduler class from another's config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)] // fields are diffusers' config keys, documented there
pub struct SchedulerConfig {
    #[serde(rename = "_class_name")]
    pub class_name: Option<String>,
    pub num_train_timesteps: Option<usize>,
    pub beta_start: Option<f64>,
    pub beta_end: Option<f64>,
    pub beta_schedule: Option<BetaSchedule>,
    pub trained_betas: Option<Vec<f64>>,
    pub prediction_type: Option<PredictionType>,
    pub timestep_spacing: Option<TimestepSpacing>,
    pub steps_offset: Option<usize>,
    pub rescale_betas_zero_snr: Option<bool>,
    pub use_karras_sigmas: Option<bool>,
    pub use_exponential_sigmas: Option<bool>,
    pub use_beta_sigmas: Option<bool>,
    pub sigma_min: Option<f64>,
    pub sigma_max: Option<f64>,
    pub interpolation_type: Option<String>,
    pub final_sigmas_type: Option<String>,
    pub timestep_type: Option<String>,
    pub clip_sample: Option<bool>,
    pub clip_sample_range: Option<f64>,
    pub set_alpha_to_one: Option<bool>,
    pub thresholding: Option<bool>,
    pub solver_order: Option<usize>,
    pub algorithm_type: Option<String>,
    pub solver_type: Option<String>,
    pub lower_order_final: Option<bool>,
    pub euler_at_final: Option<bool>,
    pub lambda_min_clipped: Option<f64>,
    pub variance_type: Option<String>,
    pub original_inference_steps: Option<usize>,
    pub timestep_scaling: Option<f64>,
}

impl SchedulerConfig {
    /// The sampler this config was saved for (from `_class_name`), e.g. Euler for SDXL base.
    pub fn kind(&self) -> Result<crate::scheduler::SchedulerKind> {
        let name = self.class_name.as_deref().ok_or_else(|| {
            crate::error::invalid(
                "scheduler config",
                "no `_class_name`: pick a sampler explicitly",
            )
        })?;
        crate::scheduler::SchedulerKind::from_class_name(name)
    }
}

/// `unet/config.json` (`UNet2DConditionModel`), the keys SDXL uses, with diffusers' defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)] // fields are diffusers' config keys, documented there
pub struct UNetConfig {
    pub sample_size: Option<usize>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub center_input_sample: bool,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
    pub down_block_types: Vec<String>,
    pub mid_block_type: Option<String>,
    pub up_block_types: Vec<String>,
    pub only_cross_attention: PerBlock<bool>,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: PerBlock<usize>,
    pub downsample_padding: usize,
    pub mid_block_scale_factor: f64,
    pub act_fn: String,
    pub norm_num_groups: Option<usize>,
    pub norm_eps: f64,
    pub cross_attention_dim: PerBlock<usize>,
    pub transformer_layers_per_block: PerBlock<usize>,
    pub attention_head_dim: PerBlock<usize>,
    pub num_attention_heads: Option<PerBlock<usize>>,
    pub use_linear_projection: bool,
    pub upcast_attention: Option<bool>,
    pub resnet_time_scale_shift: String,
    pub addition_embed_type: Option<String>,
    pub addition_time_embed_dim: Option<usize>,
    pub projection_class_embeddings_input_dim: Option<usize>,
    pub class_embed_type: Option<String>,
    pub time_embedding_type: String,
    pub time_cond_proj_dim: Option<usize>,
    pub conv_in_kernel: usize,
    pub conv_out_kernel: usize,
}

impl Default for UNetConfig {
    fn default() -> Self {
        Self {
            sample_size: None,
            in_channels: 4,
            out_channels: 4,
            center_input_sample: false,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            down_block_types: [
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ]
            .map(String::from)
            .to_vec(),
            mid_block_type: Some("UNetMidBlock2DCrossAttn".into()),
            up_block_types: [
                "UpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
            ]
            .map(String::from)
            .to_vec(),
            only_cross_attention: PerBlock::One(false),
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: PerBlock::One(2),
            downsample_padding: 1,
            mid_block_scale_factor: 1.0,
            act_fn: "silu".into(),
            norm_num_groups: Some(32),
            norm_eps: 1e-5,
            cross_attention_dim: PerBlock::One(1280),
            transformer_layers_per_block: PerBlock::One(1),
            attention_head_dim: PerBlock::One(8),
            num_attention_heads: None,
            use_linear_projection: false,
            upcast_attention: Some(false),
            resnet_time_scale_shift: "default".into(),
            addition_embed_type: None,
            addition_time_embed_dim: None,
            projection_class_embeddings_input_dim: None,
            class_embed_type: None,
            time_embedding_type: "positional".into(),
            time_cond_proj_dim: None,
            conv_in_kernel: 3,
            conv_out_kernel: 3,
        }
    }
}

impl UNetConfig {
    /// Attention heads per down block. diffusers reads `attention_head_dim` as the head count
    /// when `num_attention_heads` is absent (a historical naming quirk that SDXL relies on).
    pub fn heads_per_block(&self) -> Result<Vec<usize>> {
        let blocks = self.block_out_channels.len();
        self.num_attention_heads
            .as_ref()
            .unwrap_or(&self.attention_head_dim)
            .expand(blocks, "unet num_attention_heads")
    }
}

/// `vae/config.json` (`AutoencoderKL`) with diffusers' defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)] // fields are diffusers' config keys, documented there
pub struct VaeConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub act_fn: String,
    pub latent_channels: usize,
    pub norm_num_groups: usize,
    pub sample_size: usize,
    pub scaling_factor: f64,
    pub shift_factor: Option<f64>,
    pub latents_mean: Option<Vec<f64>>,
    pub latents_std: Option<Vec<f64>>,
    pub force_upcast: bool,
    pub use_quant_conv: bool,
    pub use_post_quant_conv: bool,
    pub mid_block_add_attention: bool,
}

impl Default for VaeConfig {
    fn default() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            down_block_types: vec!["DownEncoderBlock2D".into()],
            up_block_types: vec!["UpDecoderBlock2D".into()],
            block_out_channels: vec![64],
            layers_per_block: 1,
            act_fn: "silu".into(),
            latent_channels: 4,
            norm_num_groups: 32,
            sample_size: 32,
            scaling_factor: 0.18215,
            shift_factor: None,
            latents_mean: None,
            latents_std: None,
            force_upcast: true,
            use_quant_conv: true,
            use_post_quant_conv: true,
            mid_block_add_attention: true,
        }
    }
}

impl VaeConfig {
    /// How many pixels one latent covers per side (2 per down block after the first; SDXL: 8).
    pub fn scale_factor(&self) -> usize {
        1 << self.block_out_channels.len().saturating_sub(1)
    }
}

/// `text_encoder*/config.json` (transformers' `CLIPTextConfig`) with transformers' defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)] // fields are transformers' config keys, documented there
pub struct ClipTextConfig {
    pub architectures: Vec<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub projection_dim: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    pub pad_token_id: Option<i64>,
    pub bos_token_id: Option<i64>,
    pub eos_token_id: Option<i64>,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self {
            architectures: Vec::new(),
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            pad_token_id: Some(1),
            bos_token_id: Some(49406),
            eos_token_id: Some(49407),
        }
    }
}

/// All configs of a diffusers SDXL folder.
#[derive(Debug, Clone, PartialEq)]
pub struct SdxlConfigs {
    /// The folder they were read from.
    pub dir: PathBuf,
    /// `model_index.json`.
    pub model_index: ModelIndex,
    /// `scheduler/scheduler_config.json`.
    pub scheduler: SchedulerConfig,
    /// `unet/config.json`.
    pub unet: UNetConfig,
    /// `vae/config.json`.
    pub vae: VaeConfig,
    /// `text_encoder/config.json` (CLIP ViT-L text model in SDXL).
    pub text_encoder: ClipTextConfig,
    /// `text_encoder_2/config.json` (OpenCLIP bigG text model with projection in SDXL).
    pub text_encoder_2: ClipTextConfig,
}

/// The tokenizer folders of an SDXL folder (both hold CLIP's byte-level BPE).
pub const TOKENIZER_DIRS: [&str; 2] = ["tokenizer", "tokenizer_2"];

/// The model files of a tokenizer folder in either of its two forms: `tokenizer.json` (what
/// `transformers` 5 writes) or `vocab.json` + `merges.txt` (the published SDXL folders). A folder
/// needs one complete form, not both; see [`TokenizerForm`].
pub const TOKENIZER_FILES: [&str; 3] = ["tokenizer.json", "vocab.json", "merges.txt"];

/// How a tokenizer folder stores its BPE model. Both forms give the same token ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerForm {
    /// `tokenizer.json`: the `tokenizers` library's file (vocabulary, merges and added tokens).
    Json,
    /// `vocab.json` + `merges.txt`.
    VocabMerges,
}

impl TokenizerForm {
    /// The form of the tokenizer folder `dir`: `tokenizer.json` when it is there (it wins when
    /// a folder has both), else `vocab.json` + `merges.txt` when both are there, else `None`.
    pub fn of(dir: &Path) -> Option<Self> {
        [Self::Json, Self::VocabMerges]
            .into_iter()
            .find(|form| form.files().iter().all(|f| dir.join(f).is_file()))
    }

    /// The files of this form, relative to the tokenizer folder.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Self::Json => &TOKENIZER_FILES[..1],
            Self::VocabMerges => &TOKENIZER_FILES[1..],
        }
    }
}

/// The error for the tokenizer folder `dir/sub` (`sub` empty: `dir` itself) holding neither form;
/// it names both.
pub(crate) fn missing_tokenizer(dir: &Path, sub: &str) -> DiffusionError {
    let prefix = if sub.is_empty() {
        String::new()
    } else {
        format!("{sub}/")
    };
    missing(
        dir,
        &format!("{prefix}tokenizer.json` nor `{prefix}vocab.json` + `{prefix}merges.txt"),
    )
}

impl SdxlConfigs {
    /// Reads every config of the folder `dir` and checks that both tokenizer folders hold their
    /// model in one of its forms ([`TokenizerForm`]: `tokenizer.json`, or `vocab.json` +
    /// `merges.txt`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let configs = Self {
            dir: dir.to_path_buf(),
            model_index: read_json(dir, "model_index.json", "pipeline index")?,
            scheduler: read_json(dir, "scheduler/scheduler_config.json", "scheduler config")?,
            unet: read_json(dir, "unet/config.json", "UNet config")?,
            vae: read_json(dir, "vae/config.json", "VAE config")?,
            text_encoder: read_json(dir, "text_encoder/config.json", "CLIP text config")?,
            text_encoder_2: read_json(dir, "text_encoder_2/config.json", "CLIP text config")?,
        };
        for sub in TOKENIZER_DIRS {
            if TokenizerForm::of(&dir.join(sub)).is_none() {
                return Err(missing_tokenizer(dir, sub));
            }
        }
        Ok(configs)
    }
}

fn missing(dir: &Path, file: &str) -> DiffusionError {
    DiffusionError::MissingFile {
        dir: dir.to_path_buf(),
        file: file.to_string(),
    }
}

/// Reads `dir/file` as JSON into `T`, with errors that name the file.
pub fn read_json<T: DeserializeOwned>(dir: &Path, file: &str, what: &'static str) -> Result<T> {
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing(dir, file)),
        Err(source) => return Err(DiffusionError::Io { path, source }),
    };
    serde_json::from_str(&text).map_err(|source| DiffusionError::Config { path, what, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_block_expands_and_checks_length() {
        assert_eq!(PerBlock::One(3).expand(2, "x").unwrap(), vec![3, 3]);
        assert_eq!(
            PerBlock::Each(vec![1, 2]).expand(2, "x").unwrap(),
            vec![1, 2]
        );
        assert!(PerBlock::Each(vec![1, 2, 3]).expand(2, "x").is_err());
    }

    #[test]
    fn scheduler_config_keeps_absent_keys_absent_and_ignores_unknown() {
        let c: SchedulerConfig = serde_json::from_str(
            r#"{"_class_name":"EulerDiscreteScheduler","beta_schedule":"scaled_linear",
                "timestep_spacing":"trailing","skip_prk_steps":true,"prediction_type":"v_prediction"}"#,
        )
        .unwrap();
        assert_eq!(c.beta_schedule, Some(BetaSchedule::ScaledLinear));
        assert_eq!(c.timestep_spacing, Some(TimestepSpacing::Trailing));
        assert_eq!(c.prediction_type, Some(PredictionType::VPrediction));
        assert_eq!(c.steps_offset, None);
    }

    #[test]
    fn unknown_enum_value_is_an_error() {
        let r: std::result::Result<SchedulerConfig, _> =
            serde_json::from_str(r#"{"beta_schedule":"quadratic"}"#);
        assert!(r.is_err());
    }

    #[test]
    fn missing_folder_names_the_file() {
        let err = SdxlConfigs::load("/definitely/not/here").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("model_index.json"), "{msg}");
        assert!(msg.contains("diffusers SDXL folder"), "{msg}");
    }

    #[test]
    fn unet_defaults_match_diffusers() {
        let c: UNetConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.block_out_channels, vec![320, 640, 1280, 1280]);
        assert_eq!(c.heads_per_block().unwrap(), vec![8; 4]);
        let v: VaeConfig =
            serde_json::from_str(r#"{"block_out_channels":[128,256,512,512]}"#).unwrap();
        assert_eq!(v.scale_factor(), 8);
        assert!((v.scaling_factor - 0.18215).abs() < 1e-12);
    }
}
