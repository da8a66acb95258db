//! Stable Diffusion XL on candle, faithful to Hugging Face diffusers.
//!
//! This first increment holds the configs of a diffusers SDXL folder ([`SdxlConfigs`]), the
//! samplers ([`scheduler`]) and the CLIP tokenizer ([`ClipTokenizer`]), proven against diffusers by the fixtures under `tests/fixtures/`.
//! Text encoders, UNet, VAE and the pipelines follow.

pub mod config;
pub mod error;
pub mod scheduler;
pub mod tokenizer;

pub use config::{
    BetaSchedule, ClipTextConfig, ModelIndex, PredictionType, SchedulerConfig, SdxlConfigs,
    TimestepSpacing, UNetConfig, VaeConfig,
};
pub use error::{DiffusionError, Result};
pub use scheduler::{Scheduler, SchedulerKind};
pub use tokenizer::{ClipTokenizer, Tokens};
