//! Stable Diffusion XL on candle, faithful to Hugging Face diffusers.
//!
//! This first increment holds the configs of a diffusers SDXL folder ([`SdxlConfigs`]), the
//! samplers ([`scheduler`]), the CLIP tokenizer ([`ClipTokenizer`]) and the two text encoders
//! ([`SdxlTextEncoders`]), proven against diffusers by the fixtures under `tests/fixtures/`.
//! UNet, VAE and the pipelines follow.
//!
//! ```no_run
//! use candle_core::{DType, Device, Tensor};
//! use pixelgen_diffusion::{scheduler, ClipTokenizer, SchedulerKind, SdxlConfigs};
//!
//! # fn main() -> pixelgen_diffusion::Result<()> {
//! let configs = SdxlConfigs::load("models/stable-diffusion-xl-base-1.0")?;
//! let tokens = ClipTokenizer::from_folder(configs.dir.join("tokenizer"))?.encode("a pixel-art knight")?;
//! assert_eq!(tokens.ids.len(), 77);
//!
//! // The folder's sampler is Euler; the user picked DPM++ 2M with Karras sigmas instead.
//! let mut config = configs.scheduler.clone();
//! config.use_karras_sigmas = Some(true);
//! let mut sampler = scheduler::build(SchedulerKind::DpmPlusPlus2M, &config, 20)?;
//! let latents = Tensor::randn(0f32, 1.0, (1, 4, 128, 128), &Device::Cpu)?;
//! let mut latents = latents.affine(sampler.init_noise_sigma(), 0.0)?;
//! for i in 0..sampler.timesteps().len() {
//!     let input = sampler.scale_model_input(&latents, i)?;
//!     let noise_pred = input.zeros_like()?; // the UNet at sampler.timesteps()[i] goes here
//!     latents = sampler.step(&noise_pred, i, &latents, None)?;
//! }
//! # let _ = DType::F32;
//! # Ok(())
//! # }
//! ```

mod blocks;
pub mod clip;
pub mod config;
pub mod error;
pub mod scheduler;
pub mod text;
pub mod tokenizer;
pub mod unet;
pub mod vae;
pub mod weights;

pub use config::{
    BetaSchedule, ClipTextConfig, ModelIndex, PredictionType, SchedulerConfig, SdxlConfigs,
    TimestepSpacing, UNetConfig, VaeConfig,
};
pub use error::{DiffusionError, Result};
pub use scheduler::{Scheduler, SchedulerKind};
pub use text::{PromptEmbeds, SdxlTextEncoders};
pub use tokenizer::{ClipTokenizer, Tokens};
pub use unet::{UNet2DConditionModel, UNetConditioning};
pub use vae::{AutoencoderKl, LatentDistribution};
