//! Noise tables and timestep spacings, reproducing torch's and numpy's arithmetic.

use crate::config::{BetaSchedule, TimestepSpacing};

/// Rounds each value to f32 and back.
pub(crate) fn round_f32(values: &[f64]) -> Vec<f64> {
    values.iter().map(|&v| v as f32 as f64).collect()
}

/// `torch.linspace(start, end, n, dtype=float32)`: f32 arithmetic, the first half counted from
/// `start`, the second half from `end`.
fn torch_linspace_f32(start: f64, end: f64, n: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (n - 1 - i) as f32
            }
        })
        .collect()
}

/// Training betas as diffusers builds them (float32).
pub(crate) fn betas(schedule: BetaSchedule, start: f64, end: f64, n: usize) -> Vec<f64> {
    match schedule {
        BetaSchedule::Linear => torch_linspace_f32(start, end, n)
            .into_iter()
            .map(f64::from)
            .collect(),
        BetaSchedule::ScaledLinear => torch_linspace_f32(start.sqrt(), end.sqrt(), n)
            .into_iter()
            .map(|b| f64::from(b * b))
            .collect(),
        BetaSchedule::SquaredCosCapV2 => {
            let alpha_bar = |t: f64| {
                ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                    .cos()
                    .powi(2)
            };
            let raw: Vec<f64> = (0..n)
                .map(|i| {
                    let t1 = i as f64 / n as f64;
                    let t2 = (i + 1) as f64 / n as f64;
                    (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999)
                })
                .collect();
            round_f32(&raw)
        }
    }
}

/// `torch.cumprod(1 - betas)` on float32: alphas rounded to f32, products accumulated in f64
/// (torch's CPU accumulator for float) and each stored rounded to f32.
pub(crate) fn alphas_cumprod(betas: &[f64]) -> Vec<f64> {
    let mut acc = 1.0f64;
    betas
        .iter()
        .map(|&b| {
            let alpha = 1.0f32 - b as f32;
            acc *= f64::from(alpha);
            f64::from(acc as f32)
        })
        .collect()
}

/// `numpy.linspace(start, stop, num, endpoint)` in f64.
pub(crate) fn np_linspace(start: f64, stop: f64, num: usize, endpoint: bool) -> Vec<f64> {
    let div = if endpoint { num.saturating_sub(1) } else { num };
    let delta = stop - start;
    let mut out: Vec<f64> = if div > 0 {
        let step = delta / div as f64;
        (0..num).map(|i| i as f64 * step + start).collect()
    } else {
        (0..num).map(|i| i as f64 * delta + start).collect()
    };
    if endpoint
        && num > 1
        && let Some(last) = out.last_mut()
    {
        *last = stop;
    }
    out
}

/// `numpy.arange(start, stop, step)` for a negative float step.
pub(crate) fn np_arange_down(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil();
    let len = if len.is_finite() && len > 0.0 {
        len as usize
    } else {
        0
    };
    (0..len).map(|i| start + i as f64 * step).collect()
}

/// Inference timesteps of the Euler-family and DDIM spacings (before any Karras remap), as floats.
/// `linspace` is not rounded here (Euler keeps fractional timesteps; DDIM rounds).
pub(crate) fn spaced_timesteps(
    spacing: TimestepSpacing,
    train: usize,
    steps: usize,
    offset: usize,
) -> Vec<f64> {
    match spacing {
        TimestepSpacing::Linspace => {
            let mut t = np_linspace(0.0, (train - 1) as f64, steps, true);
            t.reverse();
            t
        }
        TimestepSpacing::Leading => {
            let ratio = (train / steps) as f64;
            (0..steps)
                .rev()
                .map(|i| (i as f64 * ratio).round_ties_even() + offset as f64)
                .collect()
        }
        TimestepSpacing::Trailing => {
            let ratio = train as f64 / steps as f64;
            np_arange_down(train as f64, 0.0, -ratio)
                .into_iter()
                .map(|t| t.round_ties_even() - 1.0)
                .collect()
        }
    }
}

/// `numpy.interp(x, arange(len(fp)), fp)`.
pub(crate) fn interp_index(x: f64, fp: &[f64]) -> f64 {
    let n = fp.len();
    if n == 0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return fp[0];
    }
    let last = (n - 1) as f64;
    if x >= last {
        return fp[n - 1];
    }
    let j = x.floor() as usize;
    let slope = fp[j + 1] - fp[j];
    slope * (x - j as f64) + fp[j]
}

/// Karras et al. (2022) sigmas: `n` values from `sigma_max` to `sigma_min`, rho = 7.
pub(crate) fn karras_sigmas(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    let rho = 7.0;
    let min_inv = sigma_min.powf(1.0 / rho);
    let max_inv = sigma_max.powf(1.0 / rho);
    np_linspace(0.0, 1.0, n, true)
        .into_iter()
        .map(|r| (max_inv + r * (min_inv - max_inv)).powf(rho))
        .collect()
}

/// diffusers' `_sigma_to_t`: the fractional training timestep whose log-sigma matches, by
/// linear interpolation between the two neighbouring entries of `log_sigmas` (ascending).
pub(crate) fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let n = log_sigmas.len();
    if n < 2 {
        return 0.0;
    }
    let log_sigma = sigma.max(1e-10).ln();
    let below = log_sigmas.iter().filter(|&&l| log_sigma - l >= 0.0).count();
    let low = below.saturating_sub(1).min(n - 2);
    let high = low + 1;
    let (lo, hi) = (log_sigmas[low], log_sigmas[high]);
    let w = ((lo - log_sigma) / (lo - hi)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * high as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy_shapes() {
        assert_eq!(np_linspace(0.0, 999.0, 1, true), vec![0.0]);
        assert_eq!(np_linspace(0.0, 1.0, 3, true), vec![0.0, 0.5, 1.0]);
        assert_eq!(
            np_linspace(0.0, 50.0, 4, false),
            vec![0.0, 12.5, 25.0, 37.5]
        );
    }

    #[test]
    fn trailing_and_leading_spacings() {
        let t = spaced_timesteps(TimestepSpacing::Trailing, 1000, 3, 0);
        assert_eq!(t, vec![999.0, 666.0, 332.0]);
        // 1000 / 16 = 62.5: numpy rounds halves to even (937.5 -> 938, 812.5 -> 812).
        let t = spaced_timesteps(TimestepSpacing::Trailing, 1000, 16, 0);
        assert_eq!(&t[..4], &[999.0, 937.0, 874.0, 811.0]);
        let t = spaced_timesteps(TimestepSpacing::Leading, 1000, 4, 1);
        assert_eq!(t, vec![751.0, 501.0, 251.0, 1.0]);
    }

    #[test]
    fn interp_and_sigma_to_t_invert_each_other() {
        let sigmas: Vec<f64> = (1..=10).map(|i| i as f64 * 0.5).collect();
        let logs: Vec<f64> = sigmas.iter().map(|s| s.ln()).collect();
        for t in [0.0, 2.0, 4.5, 8.25] {
            let s = interp_index(t, &sigmas);
            let back = sigma_to_t(s, &logs);
            // Linear in sigma vs linear in log-sigma agree only at the knots.
            if t == t.floor() {
                assert!((back - t).abs() < 1e-12, "{t} -> {back}");
            } else {
                assert!((back - t).abs() < 0.1, "{t} -> {back}");
            }
        }
        assert_eq!(sigma_to_t(0.01, &logs), 0.0);
        assert_eq!(sigma_to_t(100.0, &logs), 9.0);
    }

    #[test]
    fn cumprod_is_decreasing_and_f32_exact() {
        let ac = alphas_cumprod(&betas(BetaSchedule::ScaledLinear, 0.00085, 0.012, 1000));
        assert_eq!(ac.len(), 1000);
        assert!(ac.windows(2).all(|w| w[1] < w[0]));
        assert!(ac.iter().all(|&a| a == a as f32 as f64));
        assert!((ac[999] - 0.0047).abs() < 1e-4, "{}", ac[999]);
    }
}
