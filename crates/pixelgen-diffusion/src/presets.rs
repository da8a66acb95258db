//! Published configs of known models, as data: build full-size SDXL without its folder
//! (benchmarks with [`crate::random::RandomWeights`], shape checks).

use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::config::SdxlConfigs;
use crate::error::{DiffusionError, Result};

/// `stabilityai/stable-diffusion-xl-base-1.0` `model_index.json` (the keys this crate reads).
pub const SDXL_BASE_MODEL_INDEX: &str = r#"{
  "_class_name": "StableDiffusionXLPipeline",
  "_diffusers_version": "0.19.0.dev0",
  "force_zeros_for_empty_prompt": true,
  "scheduler": ["diffusers", "EulerDiscreteScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
  "tokenizer": ["transformers", "CLIPTokenizer"],
  "tokenizer_2": ["transformers", "CLIPTokenizer"],
  "unet": ["diffusers", "UNet2DConditionModel"],
  "vae": ["diffusers", "AutoencoderKL"]
}"#;

/// SDXL base `scheduler/scheduler_config.json`.
pub const SDXL_BASE_SCHEDULER: &str = r#"{
  "_class_name": "EulerDiscreteScheduler",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "clip_sample": false,
  "interpolation_type": "linear",
  "num_train_timesteps": 1000,
  "prediction_type": "epsilon",
  "sample_max_value": 1.0,
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "timestep_spacing": "leading",
  "trained_betas": null,
  "use_karras_sigmas": false
}"#;

/// SDXL base `unet/config.json`.
pub const SDXL_BASE_UNET: &str = r#"{
  "_class_name": "UNet2DConditionModel",
  "act_fn": "silu",
  "addition_embed_type": "text_time",
  "addition_embed_type_num_heads": 64,
  "addition_time_embed_dim": 256,
  "attention_head_dim": [5, 10, 20],
  "block_out_channels": [320, 640, 1280],
  "center_input_sample": false,
  "class_embed_type": null,
  "class_embeddings_concat": false,
  "conv_in_kernel": 3,
  "conv_out_kernel": 3,
  "cross_attention_dim": 2048,
  "cross_attention_norm": null,
  "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
  "downsample_padding": 1,
  "dual_cross_attention": false,
  "encoder_hid_dim": null,
  "encoder_hid_dim_type": null,
  "flip_sin_to_cos": true,
  "freq_shift": 0,
  "in_channels": 4,
  "layers_per_block": 2,
  "mid_block_only_cross_attention": null,
  "mid_block_scale_factor": 1,
  "mid_block_type": "UNetMidBlock2DCrossAttn",
  "norm_eps": 1e-05,
  "norm_num_groups": 32,
  "num_attention_heads": null,
  "num_class_embeds": null,
  "only_cross_attention": false,
  "out_channels": 4,
  "projection_class_embeddings_input_dim": 2816,
  "resnet_out_scale_factor": 1.0,
  "resnet_skip_time_act": false,
  "resnet_time_scale_shift": "default",
  "sample_size": 128,
  "time_cond_proj_dim": null,
  "time_embedding_act_fn": null,
  "time_embedding_dim": null,
  "time_embedding_type": "positional",
  "timestep_post_act": null,
  "transformer_layers_per_block": [1, 2, 10],
  "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
  "upcast_attention": null,
  "use_linear_projection": true
}"#;

/// SDXL base `vae/config.json`.
pub const SDXL_BASE_VAE: &str = r#"{
  "_class_name": "AutoencoderKL",
  "act_fn": "silu",
  "block_out_channels": [128, 256, 512, 512],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "force_upcast": true,
  "in_channels": 3,
  "latent_channels": 4,
  "layers_per_block": 2,
  "norm_num_groups": 32,
  "out_channels": 3,
  "sample_size": 1024,
  "scaling_factor": 0.13025,
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
}"#;

/// SDXL base `text_encoder/config.json` (OpenAI CLIP ViT-L/14 text model).
pub const SDXL_BASE_TEXT_ENCODER: &str = r#"{
  "architectures": ["CLIPTextModel"],
  "attention_dropout": 0.0,
  "bos_token_id": 0,
  "dropout": 0.0,
  "eos_token_id": 2,
  "hidden_act": "quick_gelu",
  "hidden_size": 768,
  "initializer_factor": 1.0,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 77,
  "model_type": "clip_text_model",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 1,
  "projection_dim": 768,
  "vocab_size": 49408
}"#;

/// SDXL base `text_encoder_2/config.json` (OpenCLIP ViT-bigG/14 text model with projection).
pub const SDXL_BASE_TEXT_ENCODER_2: &str = r#"{
  "architectures": ["CLIPTextModelWithProjection"],
  "attention_dropout": 0.0,
  "bos_token_id": 0,
  "dropout": 0.0,
  "eos_token_id": 2,
  "hidden_act": "gelu",
  "hidden_size": 1280,
  "initializer_factor": 1.0,
  "initializer_range": 0.02,
  "intermediate_size": 5120,
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 77,
  "model_type": "clip_text_model",
  "num_attention_heads": 20,
  "num_hidden_layers": 32,
  "pad_token_id": 1,
  "projection_dim": 1280,
  "vocab_size": 49408
}"#;

fn parse<T: DeserializeOwned>(text: &str, what: &'static str) -> Result<T> {
    serde_json::from_str(text).map_err(|source| DiffusionError::Config {
        path: PathBuf::from("<built-in SDXL base config>"),
        what,
        source,
    })
}

impl SdxlConfigs {
    /// The configs of SDXL base 1.0, from the published JSON above. `dir` is where tokenizer
    /// files would be looked up (it is not read here).
    pub fn sdxl_base(dir: impl Into<PathBuf>) -> Result<Self> {
        Ok(Self {
            dir: dir.into(),
            model_index: parse(SDXL_BASE_MODEL_INDEX, "pipeline index")?,
            scheduler: parse(SDXL_BASE_SCHEDULER, "scheduler config")?,
            unet: parse(SDXL_BASE_UNET, "UNet config")?,
            vae: parse(SDXL_BASE_VAE, "VAE config")?,
            text_encoder: parse(SDXL_BASE_TEXT_ENCODER, "CLIP text config")?,
            text_encoder_2: parse(SDXL_BASE_TEXT_ENCODER_2, "CLIP text config")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use candle_core::{DType, Device, Shape, Tensor};
    use candle_nn::var_builder::SimpleBackend;
    use candle_nn::{Init, VarBuilder};

    use super::*;
    use crate::clip::ClipTextModel;
    use crate::scheduler::SchedulerKind;
    use crate::unet::UNet2DConditionModel;
    use crate::vae::AutoencoderKl;

    /// Hands out zero-stride views of one scalar and counts the parameters asked for.
    #[derive(Clone, Default)]
    struct Counter(Arc<Mutex<usize>>);

    impl SimpleBackend for Counter {
        fn get(
            &self,
            s: Shape,
            _name: &str,
            _h: Init,
            dtype: DType,
            dev: &Device,
        ) -> candle_core::Result<Tensor> {
            *self.0.lock().unwrap() += s.elem_count();
            Tensor::zeros((), dtype, dev)?.broadcast_as(s)
        }
        fn get_unchecked(&self, n: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
            Err(candle_core::Error::Msg(n.to_string()))
        }
        fn contains_tensor(&self, _: &str) -> bool {
            true
        }
    }

    fn count(build: impl FnOnce(VarBuilder<'static>)) -> usize {
        let c = Counter::default();
        build(VarBuilder::from_backend(
            Box::new(c.clone()),
            DType::F16,
            Device::Cpu,
        ));
        *c.0.lock().unwrap()
    }

    #[test]
    fn sdxl_base_configs_parse_with_the_published_values() {
        let c = SdxlConfigs::sdxl_base("unused").unwrap();
        assert_eq!(c.unet.block_out_channels, vec![320, 640, 1280]);
        assert_eq!(c.unet.heads_per_block().unwrap(), vec![5, 10, 20]);
        assert_eq!(c.vae.scale_factor(), 8);
        assert!((c.vae.scaling_factor - 0.13025).abs() < 1e-12);
        assert_eq!(c.scheduler.kind().unwrap(), SchedulerKind::Euler);
        assert_eq!(c.text_encoder_2.hidden_size, 1280);
    }

    #[test]
    fn sdxl_base_models_have_the_published_parameter_counts() {
        // Counts as diffusers / transformers report them for SDXL base 1.0.
        let c = SdxlConfigs::sdxl_base("unused").unwrap();
        let unet = count(|vb| {
            UNet2DConditionModel::new(&c.unet, vb).unwrap();
        });
        let vae = count(|vb| {
            AutoencoderKl::new(&c.vae, vb).unwrap();
        });
        let clip_l = count(|vb| {
            ClipTextModel::new(&c.text_encoder, false, vb).unwrap();
        });
        let clip_g = count(|vb| {
            ClipTextModel::new(&c.text_encoder_2, true, vb).unwrap();
        });
        println!("unet {unet} vae {vae} clip_l {clip_l} clip_g {clip_g}");
        assert_eq!(unet, 2_567_463_684);
        assert_eq!(vae, 83_653_863);
        assert_eq!(clip_l, 123_060_480);
        assert_eq!(clip_g, 694_659_840);
    }
}
