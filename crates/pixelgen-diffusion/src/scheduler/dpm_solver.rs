//! DPM-Solver++ multistep (`DPMSolverMultistepScheduler`), order 1 or 2: "DPM++ 2M".

use candle_core::Tensor;

use super::tables::{self, interp_index, karras_sigmas, sigma_to_t};
use super::{
    Common, EULER_DEFAULTS, Scheduler, SchedulerKind, check_same_shape, check_steps, combine,
    index_check, reject_sigma_variants,
};
use crate::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use crate::error::{Result, invalid, unsupported};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SolverType {
    Midpoint,
    Heun,
}

/// DPM-Solver++ (2M) sampler: deterministic, keeps the previous step's x0 prediction.
#[derive(Debug, Clone)]
pub struct DpmSolverMultistep {
    common: Common,
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    solver_order: usize,
    solver_type: SolverType,
    lower_order_final: bool,
    euler_at_final: bool,
    /// The x0 prediction of the previous step and that step's index.
    previous: Option<(usize, Tensor)>,
}

impl DpmSolverMultistep {
    /// Builds the schedule for `steps` inference steps from a scheduler config.
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        check_steps(steps)?;
        reject_sigma_variants(config)?;
        if let Some(kind) = &config.algorithm_type
            && kind != "dpmsolver++"
            && kind != "deis"
        {
            return Err(unsupported(
                format!("algorithm_type = {kind}"),
                "only \"dpmsolver++\" (DPM++ 2M) is implemented",
            ));
        }
        let solver_type = match config.solver_type.as_deref() {
            None | Some("midpoint") | Some("logrho") | Some("bh1") | Some("bh2") => {
                SolverType::Midpoint
            }
            Some("heun") => SolverType::Heun,
            Some(other) => {
                return Err(unsupported(
                    format!("solver_type = {other}"),
                    "use \"midpoint\" or \"heun\"",
                ));
            }
        };
        let solver_order = config.solver_order.unwrap_or(2);
        if !(1..=2).contains(&solver_order) {
            return Err(unsupported(
                format!("solver_order = {solver_order}"),
                "only orders 1 and 2 (DPM++ 2M) are implemented",
            ));
        }
        if config.variance_type.is_some() {
            return Err(unsupported(
                "variance_type",
                "learned variances are not implemented",
            ));
        }
        if config.lambda_min_clipped.is_some_and(|l| l.is_finite()) {
            return Err(unsupported(
                "lambda_min_clipped",
                "leave it at -inf (the default)",
            ));
        }
        let common = Common::resolve(config, &EULER_DEFAULTS, SchedulerKind::DpmPlusPlus2M)?;
        let train = common.num_train_timesteps;
        if steps > train {
            return Err(invalid(
                "steps",
                format!("{steps} is more than the {train} training timesteps"),
            ));
        }
        // DPM-Solver spaces steps + 1 points and drops the last (t = 0) for linspace/leading.
        let mut timesteps: Vec<f64> = match common.timestep_spacing {
            TimestepSpacing::Linspace => {
                let mut t: Vec<f64> = tables::np_linspace(0.0, (train - 1) as f64, steps + 1, true)
                    .into_iter()
                    .map(f64::round_ties_even)
                    .collect();
                t.reverse();
                t.pop();
                t
            }
            TimestepSpacing::Leading => {
                let ratio = (train / (steps + 1)) as f64;
                (1..=steps)
                    .rev()
                    .map(|i| (i as f64 * ratio).round_ties_even() + common.steps_offset as f64)
                    .collect()
            }
            TimestepSpacing::Trailing => {
                tables::spaced_timesteps(TimestepSpacing::Trailing, train, steps, 0)
            }
        };
        let train_sigmas = common.train_sigmas();
        let mut sigmas: Vec<f64> = if config.use_karras_sigmas.unwrap_or(false) {
            let log_sigmas: Vec<f64> = train_sigmas.iter().map(|s| s.ln()).collect();
            let sigma_min = train_sigmas[0];
            let sigma_max = train_sigmas[train - 1];
            let sigmas = karras_sigmas(sigma_min, sigma_max, steps);
            timesteps = sigmas
                .iter()
                .map(|&s| sigma_to_t(s, &log_sigmas).round_ties_even())
                .collect();
            sigmas
        } else {
            timesteps
                .iter()
                .map(|&t| interp_index(t, &train_sigmas))
                .collect()
        };
        sigmas.push(0.0);
        let sigmas = tables::round_f32(&sigmas);
        Ok(Self {
            common,
            timesteps,
            sigmas,
            solver_order,
            solver_type,
            lower_order_final: config.lower_order_final.unwrap_or(true),
            euler_at_final: config.euler_at_final.unwrap_or(false),
            previous: None,
        })
    }

    fn alpha_sigma(sigma: f64) -> (f64, f64) {
        let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
        (alpha, sigma * alpha)
    }

    fn predict_x0(&self, model_output: &Tensor, sample: &Tensor, sigma: f64) -> Result<Tensor> {
        let (alpha_t, sigma_t) = Self::alpha_sigma(sigma);
        match self.common.prediction_type {
            PredictionType::Epsilon => combine(
                &[(1.0 / alpha_t, sample), (-sigma_t / alpha_t, model_output)],
                sample,
            ),
            PredictionType::VPrediction => {
                combine(&[(alpha_t, sample), (-sigma_t, model_output)], sample)
            }
            PredictionType::Sample => Ok(model_output.clone()),
        }
    }
}

impl Scheduler for DpmSolverMultistep {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::DpmPlusPlus2M
    }
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }
    fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }
    fn init_noise_sigma(&self) -> f64 {
        1.0
    }
    fn needs_noise(&self, _step_index: usize) -> bool {
        false
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
        _noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        let n = self.timesteps.len();
        index_check(step_index, n)?;
        check_same_shape("model_output", model_output, sample)?;
        let sigma_s0 = self.sigmas[step_index];
        let sigma_t = self.sigmas[step_index + 1];
        let x0 = self.predict_x0(model_output, sample, sigma_s0)?;
        // The final step is first order when it lands on sigma 0 (always, with final sigma "zero").
        let lower_order_final = step_index == n - 1
            && (self.euler_at_final || (self.lower_order_final && n < 15) || sigma_t == 0.0);
        // The history only counts if it is the step just before this one.
        let previous = match self.previous.take() {
            Some((i, m1)) if step_index > 0 && i == step_index - 1 => Some(m1),
            _ => None,
        };
        let (alpha_t, sigma_t_vp) = Self::alpha_sigma(sigma_t);
        let (_, sigma_s0_vp) = Self::alpha_sigma(sigma_s0);
        // exp(-h) with h = lambda_t - lambda_s0 and lambda = -ln(sigma): the sigma ratio, finite at sigma_t = 0.
        let exp_neg_h = sigma_t / sigma_s0;
        let base = [
            (sigma_t_vp / sigma_s0_vp, sample),
            (-alpha_t * (exp_neg_h - 1.0), &x0),
        ];
        let out = match previous {
            Some(m1) if self.solver_order == 2 && !lower_order_final => {
                let sigma_s1 = self.sigmas[step_index - 1];
                let h = (sigma_s0 / sigma_t).ln();
                let h0 = (sigma_s1 / sigma_s0).ln();
                let r0 = h0 / h;
                // D1 = (x0 - m1) / r0
                let c = match self.solver_type {
                    SolverType::Midpoint => -0.5 * alpha_t * (exp_neg_h - 1.0),
                    SolverType::Heun => alpha_t * ((exp_neg_h - 1.0) / h + 1.0),
                };
                combine(
                    &[base[0], (base[1].0 + c / r0, &x0), (-c / r0, &m1)],
                    sample,
                )?
            }
            _ => combine(&base, sample)?,
        };
        self.previous = Some((step_index, x0));
        Ok(out)
    }
    fn add_noise(&self, original: &Tensor, noise: &Tensor, step_index: usize) -> Result<Tensor> {
        index_check(step_index, self.timesteps.len())?;
        check_same_shape("noise", noise, original)?;
        let (alpha_t, sigma_t) = Self::alpha_sigma(self.sigmas[step_index]);
        combine(&[(alpha_t, original), (sigma_t, noise)], original)
    }
}
