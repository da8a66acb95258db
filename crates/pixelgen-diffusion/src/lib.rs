//! Stable Diffusion XL on candle, faithful to Hugging Face diffusers.
//!
//! This first increment holds the configs of a diffusers SDXL folder ([`SdxlConfigs`]) and the
//! samplers ([`scheduler`]), proven against diffusers by the fixtures under `tests/fixtures/`.
//! Text encoders, UNet, VAE and the pipelines follow.

pub mod config;
pub mod error;
pub mod scheduler;

pub use config::{
    BetaSchedule, ClipTextConfig, ModelIndex, PredictionType, SchedulerConfig, SdxlConfigs,
    TimestepSpacing, UNetConfig, VaeConfig,
};
pub use error::{DiffusionError, Result};
pub use scheduler::{Scheduler, SchedulerKind};
