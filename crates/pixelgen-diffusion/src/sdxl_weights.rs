//! An SDXL folder's weights held memory-mapped, so pipelines with different LoRAs and strengths
//! are built from one opening of the files.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

use crate::checkpoint;
use crate::clip::ClipTextModel;
use crate::config::SdxlConfigs;
use crate::error::{DiffusionError, Result};
use crate::fused::KernelOptions;
use crate::lora::{
    self, BaseWeights, LoraComponent, LoraReport, MergePlan, MergedBackend, ScaledLora, TargetIndex,
};
use crate::pipeline::{Part, SdxlPipeline};
use crate::unet::UNet2DConditionModel;
use crate::weights::{mmap_safetensors, weight_files};

/// The configs and memory-mapped weight files of a diffusers SDXL folder.
///
/// Opening reads the configs and the safetensors headers only. [`SdxlWeights::pipeline`] builds
/// the models with any LoRAs merged in: each base tensor is copied out of the mapping (from the
/// page cache once the files have been read) and, where a LoRA targets it, summed with the
/// low-rank updates in f32 on the target device before conversion to the model's dtype. Calling
/// it again with other LoRAs or strengths never re-opens or re-parses the base files and never
/// modifies the mapped base, so no "un-merge" (with its rounding drift) is needed.
pub struct SdxlWeights {
    configs: SdxlConfigs,
    unet: Arc<dyn BaseWeights>,
    text_encoder: Arc<dyn BaseWeights>,
    text_encoder_2: Arc<dyn BaseWeights>,
    vae: Arc<dyn BaseWeights>,
    targets: HashMap<LoraComponent, TargetIndex>,
}

impl std::fmt::Debug for SdxlWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdxlWeights")
            .field("dir", &self.configs.dir)
            .finish_non_exhaustive()
    }
}

/// Weight names with their shapes.
type NamesAndShapes = Vec<(String, Vec<usize>)>;

/// Records the names and shapes a model asks for, handing out broadcast zeros; answers
/// `contains_tensor` as the real base would, so models pick the same names as when loading.
struct Recorder {
    base: Arc<dyn BaseWeights>,
    names: Arc<Mutex<NamesAndShapes>>,
}

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut list) = self.names.lock() {
            list.push((name.to_string(), s.dims().to_vec()));
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::CannotFindTensor {
            path: name.to_string(),
        })
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.base.contains(name)
    }
}

/// The [`TargetIndex`] of the weights `build` asks for when reading from `base`.
fn recorded(
    base: &Arc<dyn BaseWeights>,
    build: impl FnOnce(VarBuilder<'static>) -> Result<()>,
) -> Result<TargetIndex> {
    let names = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        base: base.clone(),
        names: names.clone(),
    };
    build(VarBuilder::from_backend(
        Box::new(recorder),
        DType::F32,
        Device::Cpu,
    ))?;
    let list = names.lock().map(|l| l.clone()).unwrap_or_default();
    Ok(TargetIndex::new(
        list.iter().map(|(n, s)| (n.as_str(), s.clone())),
    ))
}

/// Planned LoRA updates of one network and the ones its build actually applied.
struct Applied {
    component: LoraComponent,
    planned: Vec<String>,
    done: Arc<Mutex<HashSet<String>>>,
}

impl SdxlWeights {
    /// Opens a diffusers SDXL folder; `variant` picks e.g. `*.fp16.safetensors`.
    pub fn open(dir: impl AsRef<Path>, variant: Option<&str>) -> Result<Self> {
        let configs = SdxlConfigs::load(dir)?;
        let d = configs.dir.clone();
        let open = |sub: &str, stem: &str| -> Result<Arc<MmapedSafetensors>> {
            Ok(Arc::new(mmap_safetensors(&weight_files(
                &d.join(sub),
                stem,
                variant,
            )?)?))
        };
        let unet = open("unet", "diffusion_pytorch_model")?;
        let text_encoder = open("text_encoder", "model")?;
        let text_encoder_2 = open("text_encoder_2", "model")?;
        let vae = open("vae", "diffusion_pytorch_model")?;
        let targets = HashMap::from([
            (LoraComponent::Unet, TargetIndex::from_mmap(&unet)),
            (
                LoraComponent::TextEncoder,
                TargetIndex::from_mmap(&text_encoder),
            ),
            (
                LoraComponent::TextEncoder2,
                TargetIndex::from_mmap(&text_encoder_2),
            ),
        ]);
        Self::assemble(configs, [unet, text_encoder, text_encoder_2, vae], targets)
    }

    /// Opens a single-file SDXL checkpoint in the original SGM layout (`model.diffusion_model.*`,
    /// `first_stage_model.*`, `conditioner.embedders.*`; fp16, bf16 or fp32). A checkpoint holds
    /// no configs or tokenizers: `configs` supplies them (e.g. [`SdxlConfigs::sdxl_base`] with
    /// the tokenizer folders of SDXL base). Checkpoints of another family (SD1.x/2.x, the SDXL
    /// refiner, SD3, Flux) and checkpoints without a VAE or text encoder are rejected; for a
    /// UNet-only file use [`SdxlWeights::open_single_file_with_vae`].
    pub fn open_single_file(path: impl AsRef<Path>, configs: SdxlConfigs) -> Result<Self> {
        let (weights, vae) = Self::single_file(path.as_ref(), configs, true)?;
        let vae = vae.ok_or_else(|| DiffusionError::Unsupported {
            feature: format!("checkpoint {}", path.as_ref().display()),
            hint: "it has no VAE".into(),
        })?;
        Ok(Self { vae, ..weights })
    }

    /// [`SdxlWeights::open_single_file`] with the VAE taken from `vae` instead of the
    /// checkpoint: a diffusers VAE folder (`config.json` + `diffusion_pytorch_model.safetensors`,
    /// e.g. `madebyollin/sdxl-vae-fp16-fix`, whose config comes with it) or a VAE
    /// `.safetensors` file (diffusers or original names; `configs.vae` stays its config). This
    /// opens UNet-only checkpoints (no `first_stage_model.*`); a checkpoint's own VAE, if any,
    /// is not used.
    pub fn open_single_file_with_vae(
        path: impl AsRef<Path>,
        configs: SdxlConfigs,
        vae: impl AsRef<Path>,
    ) -> Result<Self> {
        let (weights, _) = Self::single_file(path.as_ref(), configs, false)?;
        weights.with_vae(vae)
    }

    /// The checkpoint's UNet and text encoders (the VAE field holds the UNet until replaced)
    /// and its VAE when it has one.
    fn single_file(
        path: &Path,
        configs: SdxlConfigs,
        need_vae: bool,
    ) -> Result<(Self, Option<Arc<dyn BaseWeights>>)> {
        let ckpt = checkpoint::open(path, &configs.unet, &configs.vae, need_vae)?;
        let unet: Arc<dyn BaseWeights> = Arc::new(ckpt.unet);
        let text_encoder: Arc<dyn BaseWeights> = Arc::new(ckpt.text_encoder);
        let text_encoder_2: Arc<dyn BaseWeights> = Arc::new(ckpt.text_encoder_2);
        // LoRA targets: the names (and shapes) the models ask for, recorded by building them
        // with a backend that hands out broadcast zeros (no allocation).
        let targets = HashMap::from([
            (
                LoraComponent::Unet,
                recorded(&unet, |vb| {
                    UNet2DConditionModel::new(&configs.unet, vb).map(drop)
                })?,
            ),
            (
                LoraComponent::TextEncoder,
                recorded(&text_encoder, |vb| {
                    ClipTextModel::new(&configs.text_encoder, false, vb).map(drop)
                })?,
            ),
            (
                LoraComponent::TextEncoder2,
                recorded(&text_encoder_2, |vb| {
                    ClipTextModel::new(&configs.text_encoder_2, true, vb).map(drop)
                })?,
            ),
        ]);
        let vae: Option<Arc<dyn BaseWeights>> = match ckpt.vae {
            Some(v) => Some(Arc::new(v)),
            None => None,
        };
        let placeholder = unet.clone();
        let weights = Self::assemble(
            configs,
            [unet, text_encoder, text_encoder_2, placeholder],
            targets,
        )?;
        Ok((weights, vae))
    }

    fn assemble(
        configs: SdxlConfigs,
        [unet, text_encoder, text_encoder_2, vae]: [Arc<dyn BaseWeights>; 4],
        mut targets: HashMap<LoraComponent, TargetIndex>,
    ) -> Result<Self> {
        // kohya LoRAs trained on SGM's UNet name its modules the SGM way: accept both.
        if let Some(t) = targets.remove(&LoraComponent::Unet) {
            let sgm = checkpoint::unet_renamer(&configs.unet)?;
            let t = t.with_aliases(|m| {
                let name = sgm(&format!("{m}.weight"));
                name.strip_suffix(".weight").map(str::to_string)
            });
            targets.insert(LoraComponent::Unet, t);
        }
        Ok(Self {
            configs,
            unet,
            text_encoder,
            text_encoder_2,
            vae,
            targets,
        })
    }

    /// Replaces the VAE with the one at `path`: a folder (`config.json` +
    /// `diffusion_pytorch_model.safetensors`, the layout of `madebyollin/sdxl-vae-fp16-fix`),
    /// config included (the fp16-fix VAE says `force_upcast: false` and so runs in f16), or a
    /// single VAE `.safetensors` file with diffusers or original (`decoder.up.*`) names, which
    /// keeps the current VAE config.
    pub fn with_vae(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_file() {
            self.vae = checkpoint::open_vae_file(path, &self.configs.vae)?;
            return Ok(self);
        }
        let config: crate::config::VaeConfig =
            crate::config::read_json(path, "config.json", "VAE config")?;
        let files = weight_files(path, "diffusion_pytorch_model", None)?;
        self.vae = Arc::new(mmap_safetensors(&files)?);
        self.configs.vae = config;
        Ok(self)
    }

    /// The folder's configs.
    pub fn configs(&self) -> &SdxlConfigs {
        &self.configs
    }

    /// Checks `loras` against this model without building anything: which layers match, which
    /// do not; errors as [`SdxlWeights::pipeline`] would.
    pub fn check_loras(&self, loras: &[ScaledLora]) -> Result<LoraReport> {
        Ok(lora::plan(loras, &self.targets)?.1)
    }

    /// Builds the pipeline with `loras` merged in (none: the base model), the UNet and text
    /// encoders in `dtype`, the VAE in f32 when its config says `force_upcast`.
    pub fn pipeline(
        &self,
        loras: &[ScaledLora],
        dtype: DType,
        device: &Device,
    ) -> Result<(SdxlPipeline, LoraReport)> {
        self.pipeline_with(loras, dtype, device, KernelOptions::default())
    }

    /// [`SdxlWeights::pipeline`] with the networks computing with `kernels` (through
    /// [`SdxlPipeline`]'s one build path, as [`SdxlPipeline::load_with`]).
    pub fn pipeline_with(
        &self,
        loras: &[ScaledLora],
        dtype: DType,
        device: &Device,
        kernels: KernelOptions,
    ) -> Result<(SdxlPipeline, LoraReport)> {
        let (mut plan, report) = lora::plan(loras, &self.targets)?;
        let mut applied = Vec::new();
        let pipe = SdxlPipeline::build(
            self.configs.clone(),
            dtype,
            device,
            kernels,
            |part, dtype| {
                let (base, component) = match part {
                    Part::TextEncoder => (&self.text_encoder, LoraComponent::TextEncoder),
                    Part::TextEncoder2 => (&self.text_encoder_2, LoraComponent::TextEncoder2),
                    Part::Unet => (&self.unet, LoraComponent::Unet),
                    // No LoRA targets the VAE.
                    Part::Vae => {
                        return Ok(VarBuilder::from_backend(
                            Box::new(MergedBackend::new(
                                self.vae.clone(),
                                HashMap::new(),
                                Arc::default(),
                            )),
                            dtype,
                            device.clone(),
                        ));
                    }
                };
                Ok(self.var_builder(base, &mut plan, component, dtype, device, &mut applied))
            },
        )?;
        // A planned update that no module loaded would be a silent no-op: refuse it.
        for a in &applied {
            let done = a.done.lock().map(|d| d.clone()).unwrap_or_default();
            if let Some(missed) = a.planned.iter().find(|n| !done.contains(*n)) {
                return Err(DiffusionError::Lora {
                    path: loras
                        .first()
                        .map(|l| l.lora.path().to_path_buf())
                        .unwrap_or_default(),
                    message: format!(
                        "the {} weight `{missed}` was matched but never loaded by the model \
                         (an internal naming mismatch): please report this",
                        a.component.name()
                    ),
                });
            }
        }
        Ok((pipe, report))
    }

    fn var_builder(
        &self,
        base: &Arc<dyn BaseWeights>,
        plan: &mut MergePlan,
        component: LoraComponent,
        dtype: DType,
        device: &Device,
        applied: &mut Vec<Applied>,
    ) -> VarBuilder<'static> {
        let deltas = plan.remove(&component).unwrap_or_default();
        let done = Arc::new(Mutex::new(HashSet::new()));
        applied.push(Applied {
            component,
            planned: deltas.keys().cloned().collect(),
            done: done.clone(),
        });
        VarBuilder::from_backend(
            Box::new(MergedBackend::new(base.clone(), deltas, done)),
            dtype,
            device.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn tiny() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-sdxl")
    }

    #[test]
    fn a_replacement_vae_brings_its_config_and_weights() {
        let dir = std::env::temp_dir().join(format!("pixelgen-vae-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // The tiny VAE with another scaling factor and a shifted output bias.
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(tiny().join("vae/config.json")).unwrap())
                .unwrap();
        config["scaling_factor"] = serde_json::json!(0.5);
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let mut tensors = candle_core::safetensors::load(
            tiny().join("vae/diffusion_pytorch_model.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        let bias = tensors.get("decoder.conv_out.bias").unwrap().clone();
        tensors.insert("decoder.conv_out.bias".into(), (bias - 0.75).unwrap());
        candle_core::safetensors::save(&tensors, dir.join("diffusion_pytorch_model.safetensors"))
            .unwrap();

        let base = SdxlWeights::open(tiny(), None).unwrap();
        let (plain, _) = base.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
        let swapped = SdxlWeights::open(tiny(), None)
            .unwrap()
            .with_vae(&dir)
            .unwrap();
        assert_eq!(swapped.configs().vae.scaling_factor, 0.5);
        let (other, _) = swapped.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
        let c = plain.configs().unet.in_channels;
        let z = Tensor::zeros((1, c, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let a: f32 = plain
            .decode(&z)
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        let b: f32 = other
            .decode(&z)
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(
            b < a - 0.05,
            "the shifted bias darkens the image: {a} -> {b}"
        );

        let err = SdxlWeights::open(tiny(), None)
            .unwrap()
            .with_vae(dir.join("missing"))
            .unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
