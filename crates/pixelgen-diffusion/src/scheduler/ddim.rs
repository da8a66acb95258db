//! DDIM (`DDIMScheduler`): deterministic at eta 0, DDPM-like noise for eta up to 1.

use candle_core::Tensor;

use super::tables;
use super::{
    Common, Defaults, Scheduler, SchedulerKind, alpha_predictions, check_same_shape, check_steps,
    combine, index_check, require_noise,
};
use crate::config::{BetaSchedule, SchedulerConfig, TimestepSpacing};
use crate::error::{Result, invalid};

const DDIM_DEFAULTS: Defaults = Defaults {
    beta_start: 0.0001,
    beta_end: 0.02,
    beta_schedule: BetaSchedule::Linear,
    timestep_spacing: TimestepSpacing::Leading,
};

/// DDIM sampler.
#[derive(Debug, Clone)]
pub struct Ddim {
    common: Common,
    timesteps: Vec<f64>,
    steps: usize,
    final_alpha_cumprod: f64,
    clip_sample: Option<f64>,
    eta: f64,
}

impl Ddim {
    /// Builds the schedule for `steps` inference steps from a scheduler config, with eta 0.
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        check_steps(steps)?;
        let common = Common::resolve(config, &DDIM_DEFAULTS, SchedulerKind::Ddim)?;
        let train = common.num_train_timesteps;
        if steps > train {
            return Err(invalid(
                "steps",
                format!("{steps} is more than the {train} training timesteps"),
            ));
        }
        let timesteps =
            tables::spaced_timesteps(common.timestep_spacing, train, steps, common.steps_offset)
                .into_iter()
                .map(f64::round_ties_even)
                .collect();
        let final_alpha_cumprod = if config.set_alpha_to_one.unwrap_or(true) {
            1.0
        } else {
            common.alphas_cumprod[0]
        };
        let clip_sample = config
            .clip_sample
            .unwrap_or(true)
            .then(|| config.clip_sample_range.unwrap_or(1.0));
        Ok(Self {
            common,
            timesteps,
            steps,
            final_alpha_cumprod,
            clip_sample,
            eta: 0.0,
        })
    }

    /// Sets eta, the share of DDPM noise (0 = deterministic DDIM, 1 = DDPM-like). Errors outside 0..=1.
    pub fn with_eta(mut self, eta: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&eta) {
            return Err(invalid("eta", format!("{eta} is outside 0..=1")));
        }
        self.eta = eta;
        Ok(self)
    }

    fn alphas(&self, step_index: usize) -> Result<(f64, f64)> {
        index_check(step_index, self.timesteps.len())?;
        let t = self.timesteps[step_index] as i64;
        // diffusers steps back by T / steps whatever the spacing.
        let prev = t - (self.common.num_train_timesteps / self.steps) as i64;
        let alpha = self.common.alpha_at(t)?;
        let alpha_prev = if prev >= 0 {
            self.common.alpha_at(prev)?
        } else {
            self.final_alpha_cumprod
        };
        Ok((alpha, alpha_prev))
    }
}

impl Scheduler for Ddim {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Ddim
    }
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }
    fn sigmas(&self) -> &[f64] {
        &[]
    }
    fn init_noise_sigma(&self) -> f64 {
        1.0
    }
    fn needs_noise(&self, _step_index: usize) -> bool {
        self.eta > 0.0
    }
    fn scale_model_input(&self, sample: &Tensor, step_index: usize) -> Result<Tensor> {
        index_check(step_index, self.timesteps.len())?;
        Ok(sample.clone())
    }
    fn step(
        &mut self,
        model_output: &Tensor,
        step_index: usize,
        sample: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        check_same_shape("model_output", model_output, sample)?;
        let (alpha, alpha_prev) = self.alphas(step_index)?;
        let (mut x0, eps) =
            alpha_predictions(self.common.prediction_type, model_output, sample, alpha)?;
        if let Some(range) = self.clip_sample {
            x0 = x0.clamp(-range, range)?;
        }
        let variance = ((1.0 - alpha_prev) / (1.0 - alpha)) * (1.0 - alpha / alpha_prev);
        let std_dev = self.eta * variance.sqrt();
        let direction = (1.0 - alpha_prev - std_dev * std_dev).max(0.0).sqrt();
        let mut terms = vec![(alpha_prev.sqrt(), &x0), (direction, &eps)];
        if self.eta > 0.0 {
            let noise = require_noise(noise, sample, SchedulerKind::Ddim, step_index)?;
            terms.push((std_dev, noise));
        }
        combine(&terms, sample)
    }
    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor> {
        check_same_shape("noise", noise, original)?;
        index_check(step_index, self.timesteps.len())?;
        let alpha = self.common.alpha_at(self.timesteps[step_index] as i64)?;
        combine(
            &[(alpha.sqrt(), original), ((1.0 - alpha).sqrt(), noise)],
            original,
        )
    }
}
