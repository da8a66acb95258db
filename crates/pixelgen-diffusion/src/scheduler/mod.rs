//! Samplers (diffusers "schedulers") behind one trait, matching diffusers' tables and steps.
//!
//! Tables follow diffusers exactly: the training betas and `alphas_cumprod` are rounded through
//! `f32` the way diffusers stores them (this alone moves the smallest sigmas by ~3e-5 relative),
//! everything derived from them (interpolation, Karras sigmas, step coefficients) is computed in
//! `f64`, and sigmas are rounded to `f32` where diffusers rounds them.
//!
//! Steps are addressed by their index into [`Scheduler::timesteps`] rather than by the timestep
//! value, which avoids diffusers' float lookup; `timesteps()[i]` is the value the UNet gets.

mod ddim;
mod dpm_solver;
mod euler;
mod euler_ancestral;
mod lcm;
mod tables;

pub use ddim::Ddim;
pub use dpm_solver::DpmSolverMultistep;
pub use euler::Euler;
pub use euler_ancestral::EulerAncestral;
pub use lcm::Lcm;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::{BetaSchedule, PredictionType, SchedulerConfig, TimestepSpacing};
use crate::error::{Result, invalid, unsupported};

/// The samplers a user can pick, independent of the folder's own scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    /// `EulerDiscreteScheduler` (SDXL base's default).
    Euler,
    /// `EulerAncestralDiscreteScheduler`: stochastic, needs noise each step.
    EulerAncestral,
    /// `DPMSolverMultistepScheduler` with DPM-Solver++ order 2 ("DPM++ 2M"; Karras via config).
    DpmPlusPlus2M,
    /// `DDIMScheduler`: deterministic at eta 0.
    Ddim,
    /// `LCMScheduler` for latent-consistency models and LCM-LoRA: needs noise between steps.
    Lcm,
}

impl SchedulerKind {
    /// Every kind, for listings.
    pub const ALL: [SchedulerKind; 5] = [
        SchedulerKind::Euler,
        SchedulerKind::EulerAncestral,
        SchedulerKind::DpmPlusPlus2M,
        SchedulerKind::Ddim,
        SchedulerKind::Lcm,
    ];

    /// The kind for a diffusers class name (`_class_name` of `scheduler_config.json`).
    pub fn from_class_name(name: &str) -> Result<Self> {
        Ok(match name {
            "EulerDiscreteScheduler" => SchedulerKind::Euler,
            "EulerAncestralDiscreteScheduler" => SchedulerKind::EulerAncestral,
            "DPMSolverMultistepScheduler" => SchedulerKind::DpmPlusPlus2M,
            "DDIMScheduler" => SchedulerKind::Ddim,
            "LCMScheduler" => SchedulerKind::Lcm,
            other => {
                return Err(unsupported(
                    format!("scheduler class `{other}`"),
                    "pick a sampler explicitly: euler, euler_ancestral, dpm_plus_plus_2m, ddim or lcm",
                ));
            }
        })
    }

    /// The kind for a short name as users type it: `euler`, `euler_a` (or `euler_ancestral`),
    /// `dpmpp_2m` (or `dpm++2m`, `dpm_plus_plus_2m`), `ddim`, `lcm`; case and `-`/`_` ignored.
    pub fn from_short_name(name: &str) -> Result<Self> {
        let key: String = name
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| *c != '_' && *c != '-' && *c != ' ')
            .collect();
        Ok(match key.as_str() {
            "euler" => SchedulerKind::Euler,
            "eulera" | "eulerancestral" => SchedulerKind::EulerAncestral,
            "dpmpp2m" | "dpm++2m" | "dpmplusplus2m" => SchedulerKind::DpmPlusPlus2M,
            "ddim" => SchedulerKind::Ddim,
            "lcm" => SchedulerKind::Lcm,
            _ => {
                return Err(invalid(
                    "sampler",
                    format!("`{name}`: use euler, euler_a, dpmpp_2m, ddim or lcm"),
                ));
            }
        })
    }

    /// The short name [`from_short_name`](Self::from_short_name) reads.
    pub fn short_name(self) -> &'static str {
        match self {
            SchedulerKind::Euler => "euler",
            SchedulerKind::EulerAncestral => "euler_a",
            SchedulerKind::DpmPlusPlus2M => "dpmpp_2m",
            SchedulerKind::Ddim => "ddim",
            SchedulerKind::Lcm => "lcm",
        }
    }

    /// The diffusers class this kind mirrors.
    pub fn class_name(self) -> &'static str {
        match self {
            SchedulerKind::Euler => "EulerDiscreteScheduler",
            SchedulerKind::EulerAncestral => "EulerAncestralDiscreteScheduler",
            SchedulerKind::DpmPlusPlus2M => "DPMSolverMultistepScheduler",
            SchedulerKind::Ddim => "DDIMScheduler",
            SchedulerKind::Lcm => "LCMScheduler",
        }
    }
}

impl std::str::FromStr for SchedulerKind {
    type Err = crate::error::DiffusionError;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_short_name(s)
    }
}

/// A sampler set up for a fixed number of inference steps.
///
/// Call [`scale_model_input`](Scheduler::scale_model_input) on the latents before the UNet, then
/// [`step`](Scheduler::step) with the UNet's output, for `i` in `start..timesteps().len()`.
pub trait Scheduler: Send + Sync {
    /// Which sampler this is.
    fn kind(&self) -> SchedulerKind;
    /// The timesteps given to the UNet, one per step (floats: Euler's may be fractional).
    fn timesteps(&self) -> &[f64];
    /// The sigma of each step plus the final one (empty for DDIM and LCM, which use alphas).
    fn sigmas(&self) -> &[f64];
    /// Standard deviation of the initial noise: multiply unit noise by this for txt2img.
    fn init_noise_sigma(&self) -> f64;
    /// Whether [`step`](Scheduler::step) at `step_index` needs a noise tensor.
    fn needs_noise(&self, step_index: usize) -> bool;
    /// Scales the latents before the UNet call of step `step_index`.
    fn scale_model_input(&self, sample: &Tensor, step_index: usize) -> Result<Tensor>;
    /// One denoising step: from the sample at `step_index` to the next one. `noise` (unit normal,
    /// shaped like `sample`) is required where [`needs_noise`](Scheduler::needs_noise) says so.
    fn step(
        &mut self,
        model_output: &Tensor,
        step_index: usize,
        sample: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<Tensor>;
    /// Noises clean latents to the level of step `step_index` (img2img start).
    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor>;
}

/// Builds the sampler `kind` from a folder's scheduler config for `steps` inference steps.
///
/// Keys present in `config` override the kind's own defaults, as diffusers'
/// `Kind.from_config(folder_config)` does. DDIM is built with eta 0; use [`Ddim::with_eta`].
pub fn build(
    kind: SchedulerKind,
    config: &SchedulerConfig,
    steps: usize,
) -> Result<Box<dyn Scheduler>> {
    Ok(match kind {
        SchedulerKind::Euler => Box::new(Euler::new(config, steps)?),
        SchedulerKind::EulerAncestral => Box::new(EulerAncestral::new(config, steps)?),
        SchedulerKind::DpmPlusPlus2M => Box::new(DpmSolverMultistep::new(config, steps)?),
        SchedulerKind::Ddim => Box::new(Ddim::new(config, steps)?),
        SchedulerKind::Lcm => Box::new(Lcm::new(config, steps)?),
    })
}

/// The first step index of an img2img run with `strength` in `0..=1`, as diffusers' SDXL img2img
/// pipeline computes it: `steps - min(floor(steps * strength), steps)`. The run denoises
/// `steps - start` steps; `start == steps` means nothing is denoised.
pub fn img2img_start(steps: usize, strength: f64) -> Result<usize> {
    if !(0.0..=1.0).contains(&strength) {
        return Err(invalid(
            "strength",
            format!("{strength} is outside 0..=1 (0 keeps the input image, 1 ignores it)"),
        ));
    }
    check_steps(steps)?;
    // f64 product then truncation toward zero, like Python's int(steps * strength).
    let init = ((steps as f64 * strength) as usize).min(steps);
    Ok(steps - init)
}

pub(crate) fn check_steps(steps: usize) -> Result<()> {
    if steps == 0 {
        return Err(invalid("steps", "0 inference steps: ask for at least 1"));
    }
    Ok(())
}

/// Config values shared by every scheduler, with the given class defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub num_train_timesteps: usize,
    pub prediction_type: PredictionType,
    pub timestep_spacing: TimestepSpacing,
    pub steps_offset: usize,
    /// `alphas_cumprod` rounded through f32 as diffusers stores it.
    pub alphas_cumprod: Vec<f64>,
}

/// Class defaults for the keys shared by all schedulers.
pub(crate) struct Defaults {
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: BetaSchedule,
    pub timestep_spacing: TimestepSpacing,
}

pub(crate) const EULER_DEFAULTS: Defaults = Defaults {
    beta_start: 0.0001,
    beta_end: 0.02,
    beta_schedule: BetaSchedule::Linear,
    timestep_spacing: TimestepSpacing::Linspace,
};

impl Common {
    pub(crate) fn resolve(
        config: &SchedulerConfig,
        defaults: &Defaults,
        kind: SchedulerKind,
    ) -> Result<Self> {
        if config.rescale_betas_zero_snr == Some(true) {
            return Err(unsupported(
                "rescale_betas_zero_snr = true",
                "zero-terminal-SNR schedules are not implemented yet; set it to false",
            ));
        }
        if config.thresholding == Some(true) {
            return Err(unsupported(
                "thresholding = true",
                "dynamic thresholding is for pixel-space models; set it to false",
            ));
        }
        let num_train_timesteps = config.num_train_timesteps.unwrap_or(1000);
        if num_train_timesteps < 2 {
            return Err(invalid(
                "num_train_timesteps",
                format!("{num_train_timesteps}: needs at least 2"),
            ));
        }
        let alphas_cumprod = match &config.trained_betas {
            Some(betas) => {
                if betas.len() != num_train_timesteps {
                    return Err(invalid(
                        "trained_betas",
                        format!(
                            "{} values for {num_train_timesteps} training timesteps",
                            betas.len()
                        ),
                    ));
                }
                tables::alphas_cumprod(&tables::round_f32(betas))
            }
            None => {
                let schedule = config.beta_schedule.unwrap_or(defaults.beta_schedule);
                let start = config.beta_start.unwrap_or(defaults.beta_start);
                let end = config.beta_end.unwrap_or(defaults.beta_end);
                tables::alphas_cumprod(&tables::betas(schedule, start, end, num_train_timesteps))
            }
        };
        let prediction_type = config.prediction_type.unwrap_or(PredictionType::Epsilon);
        if prediction_type == PredictionType::Sample && kind == SchedulerKind::EulerAncestral {
            return Err(unsupported(
                "prediction_type = sample with Euler Ancestral",
                "diffusers does not implement it either; use epsilon or v_prediction",
            ));
        }
        Ok(Self {
            num_train_timesteps,
            prediction_type,
            timestep_spacing: config.timestep_spacing.unwrap_or(defaults.timestep_spacing),
            steps_offset: config.steps_offset.unwrap_or(0),
            alphas_cumprod,
        })
    }

    /// `sqrt((1 - a) / a)` for each training timestep, computed in f32 like diffusers.
    pub(crate) fn train_sigmas(&self) -> Vec<f64> {
        self.alphas_cumprod
            .iter()
            .map(|&a| {
                let a = a as f32;
                ((1.0 - a) / a).sqrt() as f64
            })
            .collect()
    }

    /// `alphas_cumprod[t]` for an integer timestep, with an error instead of a panic.
    pub(crate) fn alpha_at(&self, t: i64) -> Result<f64> {
        usize::try_from(t)
            .ok()
            .and_then(|i| self.alphas_cumprod.get(i).copied())
            .ok_or_else(|| {
                invalid(
                    "timestep",
                    format!(
                        "{t} is outside the {} training timesteps",
                        self.num_train_timesteps
                    ),
                )
            })
    }
}

/// Rejects config keys that select algorithms this crate does not implement.
pub(crate) fn reject_sigma_variants(config: &SchedulerConfig) -> Result<()> {
    if config.use_exponential_sigmas == Some(true) || config.use_beta_sigmas == Some(true) {
        return Err(unsupported(
            "use_exponential_sigmas / use_beta_sigmas",
            "use use_karras_sigmas or the default schedule",
        ));
    }
    if let Some(kind) = &config.final_sigmas_type
        && kind != "zero"
    {
        return Err(unsupported(
            format!("final_sigmas_type = {kind}"),
            "only \"zero\" is implemented",
        ));
    }
    if let Some(kind) = &config.timestep_type
        && kind != "discrete"
    {
        return Err(unsupported(
            format!("timestep_type = {kind}"),
            "only \"discrete\" is implemented",
        ));
    }
    Ok(())
}

/// `sum(coef * tensor)` computed in f32 and returned in `like`'s dtype.
pub(crate) fn combine(terms: &[(f64, &Tensor)], like: &Tensor) -> Result<Tensor> {
    let mut acc: Option<Tensor> = None;
    for &(coef, t) in terms {
        let term = t.to_dtype(DType::F32)?.affine(coef, 0.0)?;
        acc = Some(match acc {
            None => term,
            Some(a) => (a + term)?,
        });
    }
    let acc = acc.ok_or_else(|| invalid("terms", "nothing to combine"))?;
    Ok(acc.to_dtype(like.dtype())?)
}

pub(crate) fn check_same_shape(name: &'static str, a: &Tensor, sample: &Tensor) -> Result<()> {
    if a.shape() != sample.shape() {
        return Err(invalid(
            name,
            format!(
                "shape {:?} differs from the sample's {:?}",
                a.dims(),
                sample.dims()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn index_check(step_index: usize, len: usize) -> Result<()> {
    if step_index >= len {
        return Err(invalid(
            "step_index",
            format!("{step_index} but the schedule has {len} steps (0..{len})"),
        ));
    }
    Ok(())
}

pub(crate) fn require_noise<'a>(
    noise: Option<&'a Tensor>,
    sample: &Tensor,
    kind: SchedulerKind,
    step_index: usize,
) -> Result<&'a Tensor> {
    let noise = noise.ok_or_else(|| {
        invalid(
            "noise",
            format!(
                "{} needs unit-normal noise shaped like the sample at step {step_index}",
                kind.class_name()
            ),
        )
    })?;
    check_same_shape("noise", noise, sample)?;
    Ok(noise)
}

/// x0 and epsilon predicted from a model output in the alpha parametrisation
/// (`x_t = sqrt(a) x0 + sqrt(1 - a) eps`); used by DDIM and LCM.
pub(crate) fn alpha_predictions(
    prediction: PredictionType,
    model_output: &Tensor,
    sample: &Tensor,
    alpha_prod: f64,
) -> Result<(Tensor, Tensor)> {
    let sa = alpha_prod.sqrt();
    let sb = (1.0 - alpha_prod).sqrt();
    Ok(match prediction {
        PredictionType::Epsilon => {
            let x0 = combine(&[(1.0 / sa, sample), (-sb / sa, model_output)], sample)?;
            (x0, model_output.clone())
        }
        PredictionType::VPrediction => {
            let x0 = combine(&[(sa, sample), (-sb, model_output)], sample)?;
            let eps = combine(&[(sa, model_output), (sb, sample)], sample)?;
            (x0, eps)
        }
        PredictionType::Sample => {
            let eps = combine(&[(1.0 / sb, sample), (-sa / sb, model_output)], sample)?;
            (model_output.clone(), eps)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_round_trip_and_bad_names_list_the_choices() {
        for kind in SchedulerKind::ALL {
            assert_eq!(
                SchedulerKind::from_short_name(kind.short_name()).unwrap(),
                kind
            );
        }
        assert_eq!(
            "DPM++2M".parse::<SchedulerKind>().unwrap(),
            SchedulerKind::DpmPlusPlus2M
        );
        assert_eq!(
            "euler-ancestral".parse::<SchedulerKind>().unwrap(),
            SchedulerKind::EulerAncestral
        );
        let err = "heun".parse::<SchedulerKind>().unwrap_err().to_string();
        assert!(err.contains("euler_a") && err.contains("heun"), "{err}");
    }

    #[test]
    fn img2img_start_follows_diffusers() {
        assert_eq!(img2img_start(4, 0.75).unwrap(), 1);
        assert_eq!(img2img_start(4, 1.0).unwrap(), 0);
        assert_eq!(img2img_start(4, 0.0).unwrap(), 4);
        assert_eq!(img2img_start(30, 0.3).unwrap(), 21);
        assert!(img2img_start(4, 1.5).is_err());
        assert!(img2img_start(4, -0.1).is_err());
        assert!(img2img_start(4, f64::NAN).is_err());
        assert!(img2img_start(0, 0.5).is_err());
    }

    #[test]
    fn class_names_round_trip() {
        for kind in SchedulerKind::ALL {
            assert_eq!(
                SchedulerKind::from_class_name(kind.class_name()).unwrap(),
                kind
            );
        }
        assert!(SchedulerKind::from_class_name("PNDMScheduler").is_err());
    }

    #[test]
    fn steps_keep_the_sample_dtype_and_denoise_a_known_case() {
        use candle_core::Device;
        // x_t = x0 + sigma * eps with the exact eps: one Euler step to sigma 0 returns x0.
        let config = SchedulerConfig::default();
        let mut euler = build(SchedulerKind::Euler, &config, 1).unwrap();
        let sigma = euler.sigmas()[0];
        assert_eq!(euler.sigmas()[1], 0.0);
        let x0 = Tensor::new(&[[0.5f32, -1.0], [2.0, 0.0]], &Device::Cpu).unwrap();
        let eps = Tensor::new(&[[1.0f32, 0.25], [-0.5, 2.0]], &Device::Cpu).unwrap();
        let xt = (&x0 + eps.affine(sigma, 0.0).unwrap()).unwrap();
        let out = euler.step(&eps, 0, &xt, None).unwrap();
        let diff: f32 = (out - &x0)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-3 * sigma as f32, "diff {diff}");
        // f16 in, f16 out, for every kind.
        let xt16 = xt.to_dtype(DType::F16).unwrap();
        let eps16 = eps.to_dtype(DType::F16).unwrap();
        for kind in SchedulerKind::ALL {
            let mut s = build(kind, &config, 2).unwrap();
            let noise = s.needs_noise(0).then_some(&eps16);
            let out = s.step(&eps16, 0, &xt16, noise).unwrap();
            assert_eq!(out.dtype(), DType::F16, "{kind:?}");
        }
    }

    #[test]
    fn folder_config_names_its_kind() {
        let c: SchedulerConfig = serde_json::from_str(r#"{"_class_name":"LCMScheduler"}"#).unwrap();
        assert_eq!(c.kind().unwrap(), SchedulerKind::Lcm);
        assert!(SchedulerConfig::default().kind().is_err());
    }

    #[test]
    fn zero_steps_is_an_error_for_every_kind() {
        let config = SchedulerConfig::default();
        for kind in SchedulerKind::ALL {
            let err = build(kind, &config, 0).err().expect("0 steps must fail");
            assert!(err.to_string().contains("at least 1"), "{kind:?}: {err}");
        }
    }
}
