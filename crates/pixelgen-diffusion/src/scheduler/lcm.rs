//! LCM (`LCMScheduler`): consistency-model sampling for LCM UNets and LCM-LoRA, 1 to 8 steps.

use candle_core::Tensor;

use super::tables;
use super::{
    Common, Defaults, Scheduler, SchedulerKind, alpha_predictions, check_same_shape, check_steps,
    combine, index_check, require_noise,
};
use crate::config::{BetaSchedule, SchedulerConfig, TimestepSpacing};
use crate::error::{Result, invalid};

const LCM_DEFAULTS: Defaults = Defaults {
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: BetaSchedule::ScaledLinear,
    timestep_spacing: TimestepSpacing::Leading,
};

/// LCM sampler; every step but the last re-noises its prediction and needs noise.
#[derive(Debug, Clone)]
pub struct Lcm {
    common: Common,
    timesteps: Vec<f64>,
    clip_sample: Option<f64>,
    timestep_scaling: f64,
}

impl Lcm {
    /// Builds the schedule for `steps` inference steps from a scheduler config.
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        check_steps(steps)?;
        let common = Common::resolve(config, &LCM_DEFAULTS, SchedulerKind::Lcm)?;
        let train = common.num_train_timesteps;
        let original = config.original_inference_steps.unwrap_or(50);
        if original == 0 || original > train {
            return Err(invalid(
                "original_inference_steps",
                format!("{original}: must be between 1 and the {train} training timesteps"),
            ));
        }
        if steps > original {
            return Err(invalid(
                "steps",
                format!(
                    "{steps} is more than LCM's original_inference_steps ({original}): use at most {original}"
                ),
            ));
        }
        let k = train / original;
        // The distillation schedule k-1, 2k-1, ..., descending; then `steps` of them, evenly by index.
        let origin: Vec<usize> = (1..=original).rev().map(|i| i * k - 1).collect();
        let timesteps = tables::np_linspace(0.0, origin.len() as f64, steps, false)
            .into_iter()
            .map(|x| origin.get(x.floor() as usize).copied().unwrap_or(0) as f64)
            .collect();
        let clip_sample = config
            .clip_sample
            .unwrap_or(false)
            .then(|| config.clip_sample_range.unwrap_or(1.0));
        Ok(Self {
            common,
            timesteps,
            clip_sample,
            timestep_scaling: config.timestep_scaling.unwrap_or(10.0),
        })
    }

    /// LCM's boundary-condition scalings `(c_skip, c_out)` at timestep `t` (sigma_data = 0.5).
    fn scalings(&self, t: f64) -> (f64, f64) {
        let sigma_data2 = 0.25;
        let scaled = t * self.timestep_scaling;
        let c_skip = sigma_data2 / (scaled * scaled + sigma_data2);
        let c_out = scaled / (scaled * scaled + sigma_data2).sqrt();
        (c_skip, c_out)
    }
}

impl Scheduler for Lcm {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lcm
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
    fn needs_noise(&self, step_index: usize) -> bool {
        step_index + 1 < self.timesteps.len()
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
        let n = self.timesteps.len();
        index_check(step_index, n)?;
        check_same_shape("model_output", model_output, sample)?;
        let t = self.timesteps[step_index];
        let alpha = self.common.alpha_at(t as i64)?;
        let (mut x0, _) =
            alpha_predictions(self.common.prediction_type, model_output, sample, alpha)?;
        if let Some(range) = self.clip_sample {
            x0 = x0.clamp(-range, range)?;
        }
        let (c_skip, c_out) = self.scalings(t);
        let denoised = combine(&[(c_out, &x0), (c_skip, sample)], sample)?;
        if step_index + 1 == n {
            return Ok(denoised);
        }
        let noise = require_noise(noise, sample, SchedulerKind::Lcm, step_index)?;
        let alpha_prev = self
            .common
            .alpha_at(self.timesteps[step_index + 1] as i64)?;
        combine(
            &[
                (alpha_prev.sqrt(), &denoised),
                ((1.0 - alpha_prev).sqrt(), noise),
            ],
            sample,
        )
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
