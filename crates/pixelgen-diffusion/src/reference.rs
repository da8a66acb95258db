//! Reference attention: the frames of a set share self-attention keys and values with a
//! reference, so they keep one character, palette and style (StyleAligned, Hertz et al. 2023,
//! "Style Aligned Image Generation via Shared Attention").
//!
//! In every self-attention (`attn1`) of the UNet's transformer blocks, each batch item that is
//! not the reference
//! 1. has its queries and keys AdaIN-normalised to the reference's statistics (per channel,
//!    over the token axis: `(x - mu_x) / sigma_x * sigma_ref + mu_ref`, where
//!    `sigma = sqrt(var + 1e-5)` and `var` is the unbiased variance, `sum((x - mu)^2) /
//!    max(L - 1, 1)` over the `L` tokens), each switchable ([`ReferenceAttention::adain_queries`],
//!    [`ReferenceAttention::adain_keys`]);
//! 2. attends over the concatenation `[reference keys/values ; own keys/values]`, the logits of
//!    the reference's tokens shifted by `ln(strength)` (StyleAligned's `shared_score_scale`).
//!
//! The reference attends only to itself: its output is what it would be without sharing.
//! Strength 0 skips all of this (independent generation); strength 1 is plain concatenation.
//!
//! The batch layout of one UNet call is described by [`SharedAttention`]: `groups` equal,
//! contiguous groups (2 under classifier-free guidance: the unconditional half, then the
//! conditional one), the first item of each group being the reference of the others in it.
//! [`crate::SdxlPipeline::generate_set`] builds that layout from [`SetParams`].

use candle_core::{D, DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::fused::{self, KernelOptions};
use crate::profile;

/// Added to the variance before its square root in AdaIN (as StyleAligned does).
pub const ADAIN_EPS: f64 = 1e-5;

/// How strongly the frames of a set follow their reference (plain serde data for recipes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReferenceAttention {
    /// 0 to 1: the reference's attention logits get `+ ln(strength)`. 1 shares fully (plain
    /// concatenation of keys and values), 0 turns sharing off (independent frames).
    pub strength: f64,
    /// AdaIN-normalise each frame's self-attention queries to the reference's statistics
    /// (default `true`).
    pub adain_queries: bool,
    /// AdaIN-normalise each frame's self-attention keys to the reference's statistics
    /// (default `true`).
    pub adain_keys: bool,
}

impl Default for ReferenceAttention {
    fn default() -> Self {
        Self {
            strength: 1.0,
            adain_queries: true,
            adain_keys: true,
        }
    }
}

impl ReferenceAttention {
    /// No sharing at all (strength 0): every frame is generated as on its own.
    pub fn off() -> Self {
        Self {
            strength: 0.0,
            ..Self::default()
        }
    }

    /// Checks that the strength is a finite number in 0..=1.
    pub fn validate(&self) -> Result<()> {
        if !self.strength.is_finite() || !(0.0..=1.0).contains(&self.strength) {
            return Err(invalid(
                "reference attention strength",
                format!(
                    "{}: use a number from 0 (no sharing) to 1 (full sharing)",
                    self.strength
                ),
            ));
        }
        Ok(())
    }

    /// Whether any sharing happens (strength above 0).
    pub fn is_active(&self) -> bool {
        self.strength > 0.0
    }
}

/// Reference attention for one UNet call: the options and the batch layout (see the module
/// documentation). Passed per call ([`crate::unet::ForwardOptions`]), never held by the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedAttention {
    /// What the non-reference items do.
    pub attention: ReferenceAttention,
    /// Equal, contiguous groups of the batch (1, or 2 under classifier-free guidance); item 0
    /// of each group is the reference of that group.
    pub groups: usize,
}

impl SharedAttention {
    /// Validated options: strength in 0..=1, at least one group.
    pub fn new(attention: ReferenceAttention, groups: usize) -> Result<Self> {
        attention.validate()?;
        if groups == 0 {
            return Err(invalid(
                "shared attention groups",
                "0: use 1, or 2 under classifier-free guidance",
            ));
        }
        Ok(Self { attention, groups })
    }

    /// Checks that a batch of `batch` items splits into the groups.
    pub(crate) fn check_batch(&self, batch: usize) -> Result<()> {
        self.attention.validate()?;
        if self.groups == 0 || !batch.is_multiple_of(self.groups) {
            return Err(invalid(
                "shared attention groups",
                format!(
                    "a batch of {batch} does not split into {} equal groups",
                    self.groups
                ),
            ));
        }
        Ok(())
    }
}

/// Which image the frames of a set share attention with.
#[derive(Debug, Clone)]
pub enum SetReference {
    /// Frame 0 is the reference: a normal frame that the others share with.
    FirstFrame,
    /// A user's image `[1, 3, height, width]`, RGB in [0, 1], at the generation size. It is
    /// VAE-encoded once (the latent distribution's mean, no noise drawn), then at every step
    /// noised to the step's noise level with one fixed draw from the noise source and run
    /// through the UNet as an extra batch item whose output is discarded. Its text
    /// conditioning is [`crate::GenerationParams::prompt`].
    Image(Tensor),
}

/// A set of frames generated as one batch with reference attention
/// ([`crate::SdxlPipeline::generate_set`]).
#[derive(Debug, Clone)]
pub struct SetParams {
    /// One prompt per frame (1 to [`crate::MAX_BATCH`] frames, one less with an image
    /// reference); every frame shares the negative prompt and all other parameters.
    pub prompts: Vec<String>,
    /// How strongly the frames follow the reference.
    pub attention: ReferenceAttention,
    /// The reference.
    pub reference: SetReference,
    /// Optional img2img start: an image `[1, 3, height, width]` in [0, 1] and the strength
    /// (0..=1, as [`crate::SdxlPipeline::img2img`]), the start of every frame.
    pub init: Option<(Tensor, f64)>,
}

impl SetParams {
    /// A set of `prompts` sharing with frame 0 at full strength, from noise.
    pub fn first_frame(prompts: Vec<String>) -> Self {
        Self {
            prompts,
            attention: ReferenceAttention::default(),
            reference: SetReference::FirstFrame,
            init: None,
        }
    }
}

/// AdaIN of `x` `[n, L, C]` to the statistics `(mu, sigma)` `[n, 1, C]` (f32): one scale
/// and one shift per channel (`sigma_t / sigma` and `mu_t - mu * sigma_t / sigma`), applied
/// in f32, back to `x`'s dtype (fused kernels on CUDA).
fn adain(x: &Tensor, target: &(Tensor, Tensor), opts: &KernelOptions) -> Result<Tensor> {
    let own = fused::token_stats(x, ADAIN_EPS, opts)?;
    adain_from(x, &own, target, opts)
}

/// [`adain`] with `x`'s own statistics already known.
fn adain_from(
    x: &Tensor,
    (mu, sd): &(Tensor, Tensor),
    (mu_t, sd_t): &(Tensor, Tensor),
    opts: &KernelOptions,
) -> Result<Tensor> {
    let scale = sd_t.div(sd)?;
    let shift = mu_t.sub(&mu.mul(&scale)?)?;
    fused::token_affine(x, &scale.contiguous()?, &shift.contiguous()?, opts)
}

/// Rows `idx` of `t` along dim 0 (views where possible).
fn rows(t: &Tensor, idx: &[usize]) -> Result<Tensor> {
    // Runs of consecutive indices become one narrow each.
    let mut parts = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && idx[j] == idx[j - 1] + 1 {
            j += 1;
        }
        parts.push(t.narrow(0, idx[i], j - i)?);
        i = j;
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Tensor::cat(&parts, 0)?
    })
}

/// Reference attention with the one-pass kernel ([`fused::shared_attention`]), where it
/// applies: AdaIN runs on every item, to its group's reference's statistics (the identity for
/// a reference itself: scale exactly 1, shift exactly 0), and the kernel reads each
/// reference's keys and values in place, so nothing is gathered out of the batch or put back.
/// `None` where the kernel does not apply.
fn in_place(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    head_dim: usize,
    share: &SharedAttention,
    opts: &KernelOptions,
) -> Result<Option<Tensor>> {
    if !fused::shared_attention_applies(q, k, v, head_dim, opts) {
        return Ok(None);
    }
    let b = q.dim(0)?;
    let m = b / share.groups;
    let a = share.attention;
    let device = q.device();
    let ref_of: Vec<u32> = (0..b).map(|i| ((i / m) * m) as u32).collect();
    let ref_of = Tensor::from_vec(ref_of, b, device)?;
    let adain_all = |x: &Tensor| -> Result<Tensor> {
        profile::scope("shared_adain", device, || {
            let x = x.contiguous()?;
            let own = fused::token_stats(&x, ADAIN_EPS, opts)?;
            let target = (
                own.0.contiguous()?.index_select(&ref_of, 0)?,
                own.1.contiguous()?.index_select(&ref_of, 0)?,
            );
            adain_from(&x, &own, &target, opts)
        })
    };
    let q = if a.adain_queries {
        adain_all(q)?
    } else {
        q.clone()
    };
    let k = if a.adain_keys {
        adain_all(k)?
    } else {
        k.clone()
    };
    fused::shared_attention(&q, &k, v, heads, head_dim, (m, a.strength), opts)
}

/// Self-attention with reference sharing: `q`, `k`, `v` `[batch, L, heads * head_dim]`.
/// Falls back to plain attention where nothing is shared (strength 0, one item per group).
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    head_dim: usize,
    share: &SharedAttention,
    opts: &KernelOptions,
) -> Result<Tensor> {
    let b = q.dim(0)?;
    share.check_batch(b)?;
    let g = share.groups;
    let m = b / g;
    let a = share.attention;
    if !a.is_active() || m < 2 {
        return fused::attention(q, k, v, heads, head_dim, opts);
    }
    if let Some(out) = in_place(q, k, v, heads, head_dim, share, opts)? {
        return Ok(out);
    }
    let refs: Vec<usize> = (0..g).map(|gi| gi * m).collect();
    let others: Vec<usize> = (0..g).flat_map(|gi| gi * m + 1..(gi + 1) * m).collect();
    // Each other item's reference, in the order of `others`.
    let their_ref: Vec<usize> = (0..g).flat_map(|gi| vec![gi; m - 1]).collect();
    let their_ref = Tensor::from_vec(
        their_ref.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        their_ref.len(),
        q.device(),
    )?;
    let device = q.device();
    let gathered = profile::scope("shared_gather", device, || {
        Ok((
            (rows(q, &refs)?, rows(k, &refs)?, rows(v, &refs)?),
            (rows(q, &others)?, rows(k, &others)?, rows(v, &others)?),
        ))
    })?;
    let ((q_ref, k_ref, v_ref), (mut q_o, mut k_o, v_o)) = gathered;
    // The reference of each group, repeated for its other items.
    let expand = |t: &Tensor| -> Result<Tensor> {
        Ok(if g == 1 {
            t.broadcast_as((m - 1, t.dim(1)?, t.dim(2)?))?
        } else {
            t.contiguous()?.index_select(&their_ref, 0)?
        })
    };
    let expand_stats = |s: (Tensor, Tensor)| -> Result<(Tensor, Tensor)> {
        Ok((expand(&s.0)?.contiguous()?, expand(&s.1)?.contiguous()?))
    };
    if a.adain_queries {
        q_o = profile::scope("shared_adain", device, || {
            let target = fused::token_stats(&q_ref, ADAIN_EPS, opts)?;
            adain(&q_o, &expand_stats(target)?, opts)
        })?;
    }
    if a.adain_keys {
        k_o = profile::scope("shared_adain", device, || {
            let target = fused::token_stats(&k_ref, ADAIN_EPS, opts)?;
            adain(&k_o, &expand_stats(target)?, opts)
        })?;
    }
    // Contiguous operands: concatenations of them are contiguous too, which the flash
    // attention kernel needs (a strided concatenation would fall back to the slow path).
    let ((k_r, v_r), (q_o, k_o, v_o)) = profile::scope("shared_gather", device, || {
        Ok((
            (expand(&k_ref)?.contiguous()?, expand(&v_ref)?.contiguous()?),
            (q_o.contiguous()?, k_o.contiguous()?, v_o.contiguous()?),
        ))
    })?;
    let out_ref = fused::attention(&q_ref, &k_ref, &v_ref, heads, head_dim, opts)?;
    let out_o = if a.strength >= 1.0 {
        let (k_cat, v_cat) = profile::scope("shared_gather", device, || {
            Ok((
                Tensor::cat(&[&k_r, &k_o], 1)?,
                Tensor::cat(&[&v_r, &v_o], 1)?,
            ))
        })?;
        fused::attention(&q_o, &k_cat, &v_cat, heads, head_dim, opts)?
    } else if fused::flash_applies(&q_o, head_dim, opts) {
        merged(
            &q_o,
            (&k_r, &v_r),
            (&k_o, &v_o),
            a.strength,
            heads,
            head_dim,
            opts,
        )?
    } else {
        biased(
            &q_o,
            (&k_r, &v_r),
            (&k_o, &v_o),
            a.strength.ln(),
            heads,
            head_dim,
        )?
    };
    // Back to batch order: each group's reference, then its other items.
    profile::scope("shared_scatter", device, || {
        let mut parts = Vec::with_capacity(2 * g);
        for gi in 0..g {
            parts.push(out_ref.narrow(0, gi, 1)?);
            parts.push(out_o.narrow(0, gi * (m - 1), m - 1)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    })
}

/// Attention over `[reference ; own]` keys with `bias` added to the reference's logits,
/// scores materialised in f32 (the CPU path, and the GPU's where flash attention does not
/// apply). Runs item by item when the scores of all items would be large.
fn biased(
    q: &Tensor,
    (k_r, v_r): (&Tensor, &Tensor),
    (k_o, v_o): (&Tensor, &Tensor),
    bias: f64,
    heads: usize,
    head_dim: usize,
) -> Result<Tensor> {
    let (n, lq, _) = q.dims3()?;
    let (lr, lo) = (k_r.dim(1)?, k_o.dim(1)?);
    let k = Tensor::cat(&[k_r, k_o], 1)?;
    let v = Tensor::cat(&[v_r, v_o], 1)?;
    let lk = lr + lo;
    let scale = (head_dim as f64).powf(-0.5);
    let key_bias = Tensor::cat(
        &[
            Tensor::full(bias as f32, lr, q.device())?,
            Tensor::zeros(lo, DType::F32, q.device())?,
        ],
        0,
    )?;
    // At most ~256 Mi score values (1 GiB in f32) per chunk of items.
    let per_item = heads * lq * lk;
    let chunk = ((1usize << 28) / per_item.max(1)).clamp(1, n);
    let mut outs = Vec::with_capacity(n.div_ceil(chunk));
    let mut i0 = 0;
    while i0 < n {
        let c = chunk.min(n - i0);
        let split = |t: &Tensor, l: usize| -> Result<Tensor> {
            Ok(t.narrow(0, i0, c)?
                .reshape((c, l, heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let scores = split(q, lq)?
            .matmul(&split(&k, lk)?.t()?)?
            .to_dtype(DType::F32)?
            .affine(scale, 0.0)?
            .broadcast_add(&key_bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(q.dtype())?;
        let o = probs.matmul(&split(&v, lk)?)?;
        outs.push(o.transpose(1, 2)?.reshape((c, lq, heads * head_dim))?);
        i0 += c;
    }
    Ok(if outs.len() == 1 {
        outs.remove(0)
    } else {
        Tensor::cat(&outs, 0)?
    })
}

/// The same as [`biased`] from three runs of the plain attention kernel (flash attention on
/// the GPU, which takes no per-key bias): `O_r = attn(q, K_r, V_r)`, `O_o = attn(q, K_o, V_o)`
/// and the two softmax shares `alpha` (reference) and `beta` (own), read from one run over the
/// concatenated keys with indicator values (per head, channel 0 is 1 on the reference's
/// tokens, channel 1 on its own). With the reference's weight scaled by `s`:
/// `O = (s * alpha * O_r + beta * O_o) / (s * alpha + beta)`.
fn merged(
    q: &Tensor,
    (k_r, v_r): (&Tensor, &Tensor),
    (k_o, v_o): (&Tensor, &Tensor),
    strength: f64,
    heads: usize,
    head_dim: usize,
    opts: &KernelOptions,
) -> Result<Tensor> {
    let (n, lq, c) = q.dims3()?;
    let (lr, lo) = (k_r.dim(1)?, k_o.dim(1)?);
    let dtype = q.dtype();
    let dev = q.device();
    let o_r = fused::attention(q, k_r, v_r, heads, head_dim, opts)?;
    let o_o = fused::attention(q, k_o, v_o, heads, head_dim, opts)?;
    // Indicator values: [n, lr + lo, heads * head_dim].
    let unit = |channel: usize| -> Result<Tensor> {
        let mut row = vec![0f32; head_dim];
        row[channel] = 1.0;
        Ok(Tensor::from_vec(row, (1, 1, 1, head_dim), dev)?
            .broadcast_as((n, 1, heads, head_dim))?
            .reshape((n, 1, c))?)
    };
    let ind = Tensor::cat(
        &[
            unit(0)?.broadcast_as((n, lr, c))?,
            unit(1)?.broadcast_as((n, lo, c))?,
        ],
        1,
    )?
    .to_dtype(dtype)?
    .contiguous()?;
    let k_cat = Tensor::cat(&[k_r, k_o], 1)?;
    let shares = fused::attention(q, &k_cat, &ind, heads, head_dim, opts)?
        .reshape((n, lq, heads, head_dim))?
        .to_dtype(DType::F32)?;
    let alpha = shares.narrow(D::Minus1, 0, 1)?.affine(strength, 0.0)?;
    let beta = shares.narrow(D::Minus1, 1, 1)?;
    let total = (&alpha + &beta)?;
    let per_head = |t: &Tensor| -> Result<Tensor> {
        Ok(t.reshape((n, lq, heads, head_dim))?.to_dtype(DType::F32)?)
    };
    let o = per_head(&o_r)?
        .broadcast_mul(&alpha)?
        .add(&per_head(&o_o)?.broadcast_mul(&beta)?)?
        .broadcast_div(&total)?;
    Ok(o.reshape((n, lq, c))?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn rand(shape: (usize, usize, usize), seed: f64) -> Tensor {
        // Deterministic, non-trivial values without a RNG dependency.
        let n = shape.0 * shape.1 * shape.2;
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as f64 * 0.7123 + seed).sin() * 1.7) as f32)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// The three-run merge (the GPU's path for strength below 1) equals the biased softmax.
    #[test]
    fn merged_equals_biased() {
        let (heads, hd) = (2, 4);
        let q = rand((3, 5, heads * hd), 0.1);
        let k_r = rand((3, 6, heads * hd), 0.2);
        let v_r = rand((3, 6, heads * hd), 0.3);
        let k_o = rand((3, 5, heads * hd), 0.4);
        let v_o = rand((3, 5, heads * hd), 0.5);
        for s in [1.0, 0.5, 0.01] {
            let opts = KernelOptions::reference();
            let a = merged(&q, (&k_r, &v_r), (&k_o, &v_o), s, heads, hd, &opts).unwrap();
            let b = biased(&q, (&k_r, &v_r), (&k_o, &v_o), f64::ln(s), heads, hd).unwrap();
            assert!(
                max_diff(&a, &b) < 1e-5,
                "strength {s}: {}",
                max_diff(&a, &b)
            );
        }
    }

    /// The reference's output does not change with sharing; strength 0 is plain attention.
    #[test]
    fn reference_unchanged_and_strength_zero_is_plain() {
        let (heads, hd) = (2, 4);
        let q = rand((4, 5, heads * hd), 1.1);
        let k = rand((4, 5, heads * hd), 1.2);
        let v = rand((4, 5, heads * hd), 1.3);
        let opts = KernelOptions::reference();
        let plain = fused::attention(&q, &k, &v, heads, hd, &opts).unwrap();
        let share = SharedAttention::new(ReferenceAttention::default(), 2).unwrap();
        let shared = attention(&q, &k, &v, heads, hd, &share, &opts).unwrap();
        for r in [0, 2] {
            let d = max_diff(
                &shared.narrow(0, r, 1).unwrap(),
                &plain.narrow(0, r, 1).unwrap(),
            );
            assert!(d < 1e-6, "reference {r}: {d}");
        }
        assert!(
            max_diff(
                &shared.narrow(0, 1, 1).unwrap(),
                &plain.narrow(0, 1, 1).unwrap()
            ) > 1e-3
        );
        let off = SharedAttention::new(ReferenceAttention::off(), 2).unwrap();
        let none = attention(&q, &k, &v, heads, hd, &off, &opts).unwrap();
        assert_eq!(max_diff(&none, &plain), 0.0);
    }

    #[test]
    fn strength_is_validated() {
        for s in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let a = ReferenceAttention {
                strength: s,
                ..Default::default()
            };
            let err = a.validate().unwrap_err().to_string();
            assert!(err.contains("strength"), "{err}");
        }
        assert!(SharedAttention::new(ReferenceAttention::default(), 0).is_err());
    }
}
