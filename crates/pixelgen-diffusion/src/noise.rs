//! Where the pipelines get their Gaussian noise: a seeded generator, or recorded tensors.

use std::collections::VecDeque;

use candle_core::{Device, Tensor};

use crate::error::{Result, invalid};

/// A source of unit-normal noise, drawn in a fixed order: txt2img draws the initial latents, then
/// one tensor per step that [`crate::Scheduler::needs_noise`]; img2img draws the VAE-sample noise,
/// then the add-noise noise, then the per-step noise.
pub trait NoiseSource {
    /// A tensor of shape `dims` (f32) of independent N(0, 1) values.
    fn normal(&mut self, dims: &[usize], device: &Device) -> Result<Tensor>;
}

/// Deterministic noise from a 64-bit seed (PCG-style generator, Box-Muller transform).
///
/// The same seed gives the same values on every platform and device (values are generated on
/// the host); they are not torch's values for that seed.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    state: u64,
    spare: Option<f64>,
}

impl SeededNoise {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut s = Self {
            state: seed ^ 0x853c_49e6_748f_ea9b,
            spare: None,
        };
        s.next_u64();
        s
    }

    fn next_u64(&mut self) -> u64 {
        // SplitMix64: a full-period 64-bit sequence with well-mixed output.
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1], 53 bits.
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    fn gaussian(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let theta = std::f64::consts::TAU * self.uniform();
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

impl NoiseSource for SeededNoise {
    fn normal(&mut self, dims: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = dims.iter().product();
        let values: Vec<f32> = (0..n).map(|_| self.gaussian() as f32).collect();
        Ok(Tensor::from_vec(values, dims, device)?)
    }
}

/// Noise replayed from given tensors, in order (to reproduce a reference run exactly).
#[derive(Debug, Clone, Default)]
pub struct RecordedNoise {
    queue: VecDeque<Tensor>,
}

impl RecordedNoise {
    /// Replays `tensors` in order.
    pub fn new(tensors: impl IntoIterator<Item = Tensor>) -> Self {
        Self {
            queue: tensors.into_iter().collect(),
        }
    }

    /// How many tensors are left.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
}

impl NoiseSource for RecordedNoise {
    fn normal(&mut self, dims: &[usize], device: &Device) -> Result<Tensor> {
        let t = self.queue.pop_front().ok_or_else(|| {
            invalid(
                "recorded noise",
                format!("ran out when {dims:?} was asked for"),
            )
        })?;
        if t.dims() != dims {
            return Err(invalid(
                "recorded noise",
                format!("next tensor is {:?}, {dims:?} was asked for", t.dims()),
            ));
        }
        Ok(t.to_device(device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_noise_is_repeatable_and_roughly_standard_normal() {
        let dev = Device::Cpu;
        let a: Vec<f32> = SeededNoise::new(7)
            .normal(&[20000], &dev)
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = SeededNoise::new(7)
            .normal(&[20000], &dev)
            .unwrap()
            .to_vec1()
            .unwrap();
        let c: Vec<f32> = SeededNoise::new(8)
            .normal(&[20000], &dev)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }

    #[test]
    fn recorded_noise_checks_order_and_shape() {
        let dev = Device::Cpu;
        let mut r =
            RecordedNoise::new([Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap()]);
        assert!(r.normal(&[3, 2], &dev).is_err());
        let mut r =
            RecordedNoise::new([Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap()]);
        assert!(r.normal(&[2, 3], &dev).is_ok());
        assert!(r.normal(&[2, 3], &dev).is_err());
    }
}
