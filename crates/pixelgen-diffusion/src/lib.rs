//! Stable Diffusion XL on candle, faithful to Hugging Face diffusers.
//!
//! Loads a diffusers SDXL folder ([`SdxlConfigs`], [`SdxlPipeline::load`]) and runs txt2img,
//! img2img and inpaint/outpaint ([`SdxlPipeline::inpaint`], [`mod@inpaint`]) with
//! classifier-free guidance, progress and cancellation. Every part is checked
//! against diffusers on a tiny random SDXL (`tests/fixtures/`, made by
//! `tools/parity/make_fixtures.py`): tokenizers exactly, text encoders, UNet, VAE and whole
//! 4-step runs within 1e-4 relative in f32 on the CPU, and five samplers ([`scheduler`]) with
//! diffusers' own timestep and sigma tables. [`SdxlWeights`] also opens single-file SGM
//! checkpoints ([`checkpoint`], UNet-only ones with a separate VAE) and merges LoRAs in the
//! kohya and diffusers/PEFT layouts ([`lora`]), DoRA, and LyCORIS LoHa/LoKr ([`lycoris`]) at
//! load, checked against diffusers the same way (LyCORIS against its published formulas; see
//! `docs/models.md`). [`SdxlPipeline::generate_set`] makes the frames of a sprite set in one
//! batch whose self-attention is shared with a reference frame or image ([`mod@reference`]), so
//! they keep one character and style.
//!
//! ```no_run
//! use candle_core::{DType, Device};
//! use pixelgen_diffusion::{Control, GenerationParams, SchedulerKind, SdxlPipeline, SeededNoise};
//!
//! # fn main() -> pixelgen_diffusion::Result<()> {
//! let pipe = SdxlPipeline::load("models/stable-diffusion-xl-base-1.0", Some("fp16"), DType::F16, &Device::Cpu)?;
//! let params = GenerationParams {
//!     prompt: "pixel art knight, 16-bit sprite".into(),
//!     steps: 20,
//!     sampler: Some(SchedulerKind::DpmPlusPlus2M),
//!     karras: Some(true),
//!     ..Default::default()
//! };
//! let out = pipe.txt2img(&params, &mut SeededNoise::new(42), &mut |p| {
//!     println!("step {}/{}", p.step, p.total);
//!     Control::Continue
//! })?;
//! assert_eq!(out.image.dims(), &[1, 3, 1024, 1024]); // RGB in [0, 1]
//! # Ok(())
//! # }
//! ```

mod blocks;
pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod error;
pub mod fused;
pub mod hub;
pub mod image_out;
pub mod inpaint;
pub mod lora;
pub mod lycoris;
pub mod memory;
pub mod noise;
pub mod pipeline;
pub mod presets;
pub mod preview;
pub mod profile;
pub mod random;
pub mod reference;
pub mod registry;
pub mod sampling;
pub mod scheduler;
pub mod sdxl_weights;
pub mod text;
pub mod tiling;
pub mod tokenizer;
pub mod unet;
pub mod vae;
pub mod weights;

pub use config::{
    BetaSchedule, ClipTextConfig, ModelIndex, PredictionType, SchedulerConfig, SdxlConfigs,
    TimestepSpacing, UNetConfig, VaeConfig,
};
pub use error::{DiffusionError, Result};
pub use fused::KernelOptions;
pub use image_out::{rgba_to_tensor, to_rgba_images};
pub use inpaint::{
    InpaintParams, MAX_MASK_BLUR, blur_mask, mask_from_rgba, mask_value, prepare_mask,
};
pub use lora::{
    KronFactor, Lora, LoraComponent, LoraLayer, LoraLayout, LoraMatch, LoraMetadata, LoraReport,
    LoraUpdate, ScaledLora,
};
pub use memory::{EstimateTarget, MemoryBudget, MemoryEstimate, available_memory, estimate_peak};
pub use noise::{NoiseSource, RecordedNoise, SeededNoise};
pub use pipeline::{
    Control, Generated, GenerationParams, MAX_BATCH, MAX_SIDE, MAX_STEPS, Progress, SdxlPipeline,
    count_non_finite, ensure_finite, scheduler_config,
};
pub use preview::{SDXL_LATENT_RGB, latent_pixel_to_rgb, latents_to_rgb};
pub use random::RandomWeights;
pub use reference::{ReferenceAttention, SetParams, SetReference, SharedAttention};
pub use registry::{LoraSpec, ModelSpec, Registry, Source};
pub use sampling::{PresetName, SamplingPreset};
pub use scheduler::{Scheduler, SchedulerKind};
pub use sdxl_weights::SdxlWeights;
pub use text::{PromptEmbeds, SdxlTextEncoders};
pub use tokenizer::{ClipTokenizer, Tokens};
pub use unet::{ForwardOptions, UNet2DConditionModel, UNetConditioning};
pub use vae::{AutoencoderKl, LatentDistribution};
