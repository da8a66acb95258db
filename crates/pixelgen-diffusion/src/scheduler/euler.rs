//! Euler (`EulerDiscreteScheduler`): the deterministic first-order sampler of Karras et al.

use candle_core::Tensor;

use super::tables::{self, interp_index, karras_sigmas, sigma_to_t};
use super::{
    Common, EULER_DEFAULTS, Scheduler, SchedulerKind, check_same_shape, check_steps, combine,
    index_check, reject_sigma_variants,
};
use crate::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use crate::error::{Result, unsupported};

/// The sigma schedule shared by Euler and Euler Ancestral.
#[derive(Debug, Clone)]
pub(crate) struct SigmaSchedule {
    pub common: Common,
    pub timesteps: Vec<f64>,
    /// One per step plus the final 0, rounded to f32 as diffusers stores them.
    pub sigmas: Vec<f64>,
    pub init_noise_sigma: f64,
}

impl SigmaSchedule {
    /// diffusers' `set_timesteps` of the Euler schedulers; `karras` remaps sigmas and timesteps.
    pub(crate) fn new(
        common: Common,
        steps: usize,
        karras: bool,
        sigma_range: (Option<f64>, Option<f64>),
    ) -> Result<Self> {
        check_steps(steps)?;
        let train = common.num_train_timesteps;
        let timesteps = tables::round_f32(&tables::spaced_timesteps(
            common.timestep_spacing,
            train,
            steps,
            common.steps_offset,
        ));
        let train_sigmas = common.train_sigmas();
        let mut sigmas: Vec<f64> = timesteps
            .iter()
            .map(|&t| interp_index(t, &train_sigmas))
            .collect();
        let mut timesteps = timesteps;
        if karras {
            let log_sigmas: Vec<f64> = train_sigmas.iter().map(|s| s.ln()).collect();
            let sigma_min = sigma_range.0.unwrap_or(sigmas[sigmas.len() - 1]);
            let sigma_max = sigma_range.1.unwrap_or(sigmas[0]);
            sigmas = karras_sigmas(sigma_min, sigma_max, steps);
            timesteps = tables::round_f32(
                &sigmas
                    .iter()
                    .map(|&s| sigma_to_t(s, &log_sigmas))
                    .collect::<Vec<_>>(),
            );
        }
        sigmas.push(0.0);
        let sigmas = tables::round_f32(&sigmas);
        let max_sigma = sigmas.iter().copied().fold(0.0f64, f64::max);
        let init_noise_sigma = match common.timestep_spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max_sigma,
            TimestepSpacing::Leading => (max_sigma * max_sigma + 1.0).sqrt(),
        };
        Ok(Self {
            common,
            timesteps,
            sigmas,
            init_noise_sigma,
        })
    }

    pub(crate) fn sigma(&self, step_index: usize) -> Result<(f64, f64)> {
        index_check(step_index, self.timesteps.len())?;
        Ok((self.sigmas[step_index], self.sigmas[step_index + 1]))
    }

    pub(crate) fn scale_model_input(&self, sample: &Tensor, step_index: usize) -> Result<Tensor> {
        let (sigma, _) = self.sigma(step_index)?;
        combine(&[(1.0 / (sigma * sigma + 1.0).sqrt(), sample)], sample)
    }

    /// x0 predicted from the model output at noise level `sigma`.
    pub(crate) fn predict_x0(
        &self,
        model_output: &Tensor,
        sample: &Tensor,
        sigma: f64,
    ) -> Result<Tensor> {
        match self.common.prediction_type {
            PredictionType::Epsilon => combine(&[(1.0, sample), (-sigma, model_output)], sample),
            PredictionType::VPrediction => {
                let s2 = sigma * sigma + 1.0;
                combine(
                    &[(-sigma / s2.sqrt(), model_output), (1.0 / s2, sample)],
                    sample,
                )
            }
            PredictionType::Sample => Ok(model_output.clone()),
        }
    }

    pub(crate) fn add_noise(
        &self,
        original: &Tensor,
        noise: &Tensor,
        step_index: usize,
    ) -> Result<Tensor> {
        check_same_shape("noise", noise, original)?;
        let (sigma, _) = self.sigma(step_index)?;
        combine(&[(1.0, original), (sigma, noise)], original)
    }
}

pub(crate) fn euler_config_checks(config: &SchedulerConfig) -> Result<()> {
    reject_sigma_variants(config)?;
    if let Some(kind) = &config.interpolation_type
        && kind != "linear"
    {
        return Err(unsupported(
            format!("interpolation_type = {kind}"),
            "only \"linear\" is implemented",
        ));
    }
    Ok(())
}

/// Euler sampler (`EulerDiscreteScheduler` without churn).
#[derive(Debug, Clone)]
pub struct Euler {
    schedule: SigmaSchedule,
}

impl Euler {
    /// Builds the schedule for `steps` inference steps from a scheduler config.
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        euler_config_checks(config)?;
        let common = Common::resolve(config, &EULER_DEFAULTS, SchedulerKind::Euler)?;
        let karras = config.use_karras_sigmas.unwrap_or(false);
        let schedule =
            SigmaSchedule::new(common, steps, karras, (config.sigma_min, config.sigma_max))?;
        Ok(Self { schedule })
    }
}

impl Scheduler for Euler {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Euler
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
    fn needs_noise(&self, _step_index: usize) -> bool {
        false
    }
    fn scale_model_input(&self, sample: &Tensor, step_index: usize) -> Result<Tensor> {
        self.schedule.scale_model_input(sample, step_index)
    }
    fn step(
        &mut self,
        model_output: &Tensor,
        step_index: usize,
        sample: &Tensor,
        _noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        check_same_shape("model_output", model_output, sample)?;
        let (sigma, sigma_next) = self.schedule.sigma(step_index)?;
        let x0 = self.schedule.predict_x0(model_output, sample, sigma)?;
        // derivative = (sample - x0) / sigma; prev = sample + derivative * (sigma_next - sigma)
        let dt = sigma_next - sigma;
        combine(&[(1.0 + dt / sigma, sample), (-dt / sigma, &x0)], sample)
    }
    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor> {
        self.schedule.add_noise(original, noise, step_index)
    }
}
