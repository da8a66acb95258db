//! Random weights for any model of this crate, so full-size SDXL can be built without a download
//! (benchmarks) and small models can be built identically on two devices (correctness checks).
//!
//! The initialisation follows `bench/diffusers_sdxl_bench.py`'s, so both sides of a benchmark run
//! on weights of the same magnitudes: tensors of rank >= 2 are `N(0, 1/sqrt(fan_in))`, 1-D
//! `*weight` tensors (norm scales) are `1 + N(0, 0.02)`, every other 1-D tensor (biases) is
//! `N(0, 0.02)`. No tensor is all zeros, so no layer is silently skipped.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

/// A [`VarBuilder`] backend that makes a random tensor for every name asked for.
#[derive(Debug, Clone, Copy)]
pub struct RandomWeights {
    seed: u64,
    host: bool,
}

impl RandomWeights {
    /// Random weights from `seed`, generated on the target device (fast, device-specific values).
    pub fn new(seed: u64) -> Self {
        Self { seed, host: false }
    }

    /// Generate every tensor on the host with this crate's own seeded generator and copy it to
    /// the target device: the same seed then gives bit-identical weights on every device (slow
    /// for full-size models: use it for small ones).
    pub fn on_host(mut self) -> Self {
        self.host = true;
        self
    }

    /// A [`VarBuilder`] that creates weights of `dtype` on `device`.
    pub fn var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        if !self.host && !device.is_cpu() {
            // Best effort: a device without a seedable generator still gives random weights.
            let _ = device.set_seed(self.seed);
        }
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }

    fn host_normal(&self, name: &str, n: usize) -> Vec<f32> {
        let mut state = self.seed ^ fnv1a(name);
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            // Box-Muller on two uniforms in (0, 1].
            let u1 = (splitmix(&mut state) >> 11) as f64 + 1.0;
            let u2 = (splitmix(&mut state) >> 11) as f64 + 1.0;
            let scale = (1u64 << 53) as f64;
            let r = (-2.0 * (u1 / scale).ln()).sqrt();
            let theta = std::f64::consts::TAU * (u2 / scale);
            out.push((r * theta.cos()) as f32);
            out.push((r * theta.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

/// Mean and standard deviation of the random tensor `name` of shape `dims`.
pub fn init_stats(name: &str, dims: &[usize]) -> (f64, f64) {
    match dims {
        [] => (0.0, 0.02),
        [_] if name.ends_with("weight") => (1.0, 0.02),
        [_] => (0.0, 0.02),
        [out, ..] => {
            let fan_in = dims.iter().product::<usize>() / (*out).max(1);
            (0.0, 1.0 / (fan_in.max(1) as f64).sqrt())
        }
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _hint: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let dims = s.dims();
        let (mean, std) = init_stats(name, dims);
        let unit = if self.host || dev.is_cpu() {
            let values = self.host_normal(name, s.elem_count());
            Tensor::from_vec(values, dims, &Device::Cpu)?.to_device(dev)?
        } else {
            Tensor::randn(0f32, 1f32, dims, dev)?
        };
        unit.affine(std, mean)?.to_dtype(dtype)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(format!(
            "random weights need a shape for `{name}`"
        )))
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        // Any name can be made: models pick the current diffusers/transformers naming.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_follows_the_benchmark_scheme() {
        assert_eq!(init_stats("norm.weight", &[8]), (1.0, 0.02));
        assert_eq!(init_stats("proj.bias", &[8]), (0.0, 0.02));
        let (m, s) = init_stats("conv.weight", &[4, 2, 3, 3]);
        assert_eq!(m, 0.0);
        assert!((s - 1.0 / 18f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn host_weights_are_seeded_per_name_and_have_the_asked_stats() {
        let vb = RandomWeights::new(7).var_builder(DType::F32, &Device::Cpu);
        let a = vb.get((64, 256), "a.weight").unwrap();
        let a2 = RandomWeights::new(7)
            .var_builder(DType::F32, &Device::Cpu)
            .get((64, 256), "a.weight")
            .unwrap();
        let b = vb.get((64, 256), "b.weight").unwrap();
        let v: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let v2: Vec<f32> = a2.flatten_all().unwrap().to_vec1().unwrap();
        let w: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, v2, "same seed and name -> same values");
        assert_ne!(v, w, "another name -> other values");
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!(
            (var.sqrt() - 1.0 / 16.0).abs() < 0.003,
            "std {}",
            var.sqrt()
        );
        let scale = vb.get(64, "norm.weight").unwrap();
        let m: f32 = scale.mean_all().unwrap().to_scalar().unwrap();
        assert!((m - 1.0).abs() < 0.01, "norm scale mean {m}");
    }
}
