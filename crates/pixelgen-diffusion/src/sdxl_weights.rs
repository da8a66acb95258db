//! An SDXL folder's weights held memory-mapped, so pipelines with different LoRAs and strengths
//! are built from one opening of the files.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::clip::ClipTextModel;
use crate::config::SdxlConfigs;
use crate::error::Result;
use crate::lora::{
    self, LoraComponent, LoraReport, MergePlan, MergedBackend, ScaledLora, TargetIndex,
};
use crate::pipeline::SdxlPipeline;
use crate::text::SdxlTextEncoders;
use crate::tokenizer::ClipTokenizer;
use crate::unet::UNet2DConditionModel;
use crate::vae::AutoencoderKl;
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
    unet: Arc<MmapedSafetensors>,
    text_encoder: Arc<MmapedSafetensors>,
    text_encoder_2: Arc<MmapedSafetensors>,
    vae: Arc<MmapedSafetensors>,
    targets: HashMap<LoraComponent, TargetIndex>,
}

impl std::fmt::Debug for SdxlWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdxlWeights")
            .field("dir", &self.configs.dir)
            .finish_non_exhaustive()
    }
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
        Ok(Self {
            configs,
            unet,
            text_encoder,
            text_encoder_2,
            vae,
            targets,
        })
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
        let (mut plan, report) = lora::plan(loras, &self.targets)?;
        let text = self.text_encoders(&mut plan, dtype, device)?;
        let unet = UNet2DConditionModel::new(
            &self.configs.unet,
            self.var_builder(&self.unet, &mut plan, LoraComponent::Unet, dtype, device),
        )?;
        let vae_dtype = if self.configs.vae.force_upcast {
            DType::F32
        } else {
            dtype
        };
        let vae = AutoencoderKl::new(
            &self.configs.vae,
            VarBuilder::from_backend(
                Box::new(MergedBackend::new(self.vae.clone(), HashMap::new())),
                vae_dtype,
                device.clone(),
            ),
        )?;
        let pipe = SdxlPipeline::from_parts(self.configs.clone(), text, unet, vae, dtype, device);
        Ok((pipe, report))
    }

    fn text_encoders(
        &self,
        plan: &mut MergePlan,
        dtype: DType,
        device: &Device,
    ) -> Result<SdxlTextEncoders> {
        let c = &self.configs;
        let vb1 = self.var_builder(
            &self.text_encoder,
            plan,
            LoraComponent::TextEncoder,
            dtype,
            device,
        );
        let vb2 = self.var_builder(
            &self.text_encoder_2,
            plan,
            LoraComponent::TextEncoder2,
            dtype,
            device,
        );
        Ok(SdxlTextEncoders::from_parts(
            (
                ClipTokenizer::from_folder(c.dir.join("tokenizer"))?,
                ClipTokenizer::from_folder(c.dir.join("tokenizer_2"))?,
            ),
            (
                ClipTextModel::new(&c.text_encoder, false, vb1)?,
                ClipTextModel::new(&c.text_encoder_2, true, vb2)?,
            ),
            c.model_index.force_zeros_for_empty_prompt,
            device,
        ))
    }

    fn var_builder(
        &self,
        base: &Arc<MmapedSafetensors>,
        plan: &mut MergePlan,
        component: LoraComponent,
        dtype: DType,
        device: &Device,
    ) -> VarBuilder<'static> {
        let deltas = plan.remove(&component).unwrap_or_default();
        VarBuilder::from_backend(
            Box::new(MergedBackend::new(base.clone(), deltas)),
            dtype,
            device.clone(),
        )
    }
}
