//! Euler Ancestral (`EulerAncestralDiscreteScheduler`): Euler to a lower sigma, then fresh noise.

use candle_core::Tensor;

use super::euler::{SigmaSchedule, euler_config_checks};
use super::{
    Common, EULER_DEFAULTS, Scheduler, SchedulerKind, check_same_shape, combine, require_noise,
};
use crate::config::SchedulerConfig;
use crate::error::Result;

/// Euler Ancestral sampler; each step but the last needs unit-normal noise.
#[derive(Debug, Clone)]
pub struct EulerAncestral {
    schedule: SigmaSchedule,
}

impl EulerAncestral {
    /// Builds the schedule for `steps` inference steps from a scheduler config.
    /// Karras sigmas are not part of this sampler in diffusers, so `use_karras_sigmas` is ignored.
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        euler_config_checks(config)?;
        let common = Common::resolve(config, &EULER_DEFAULTS, SchedulerKind::EulerAncestral)?;
        let schedule = SigmaSchedule::new(common, steps, false, (None, None))?;
        Ok(Self { schedule })
    }

    /// `(sigma_up, sigma_down)` of step `step_index`.
    fn ancestral(&self, step_index: usize) -> Result<(f64, f64, f64)> {
        let (from, to) = self.schedule.sigma(step_index)?;
        let up = (to * to * (from * from - to * to) / (from * from)).sqrt();
        let down = (to * to - up * up).max(0.0).sqrt();
        Ok((from, up, down))
    }
}

impl Scheduler for EulerAncestral {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::EulerAncestral
    }
    fn timesteps(&self) -> &[f64] {
        &self.schedule.timesteps
    }
    fn sigmas(&self) -> &[f64] {
        &self.schedule.sigmas
    }
    fn init_noise_sigma(&self) -> f64 {
        self.schedule.init_noise_sigma
    }
    fn needs_noise(&self, step_index: usize) -> bool {
        self.ancestral(step_index)
            .map(|(_, up, _)| up > 0.0)
            .unwrap_or(false)
    }
    fn scale_model_input(&self, sample: &Tensor, step_index: usize) -> Result<Tensor> {
        self.schedule.scale_model_input(sample, step_index)
    }
    fn step(
        &mut self,
        model_output: &Tensor,
        step_index: usize,
        sample: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        check_same_shape("model_output", model_output, sample)?;
        let (sigma, up, down) = self.ancestral(step_index)?;
        let x0 = self.schedule.predict_x0(model_output, sample, sigma)?;
        let dt = down - sigma;
        let mut terms = vec![(1.0 + dt / sigma, sample), (-dt / sigma, &x0)];
        if up > 0.0 {
            let noise = require_noise(noise, sample, SchedulerKind::EulerAncestral, step_index)?;
            terms.push((up, noise));
        }
        combine(&terms, sample)
    }
    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor> {
        self.schedule.add_noise(original, noise, step_index)
    }
}
