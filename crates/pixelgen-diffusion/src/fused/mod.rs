//! Fused GPU kernels for SDXL's hot spots (group norm + SiLU, GEGLU, attention), with candle's
//! plain ops as the reference path.
//!
//! With the `cuda` feature, on a CUDA device, [`Kernels::Fused`] (the default) runs
//! `kernels/fused.cu`: group norm and its SiLU in one pass after a Welford reduction, GEGLU in
//! one pass, and flash attention (head dim 64, f16/bf16, tensor cores) that never materialises
//! the `L x L` scores. Everywhere else (CPU, Metal, other head dims) the reference path runs;
//! that is the path the CPU parity tests check against diffusers, and the GPU benchmark checks
//! the fused path against it.
//!
//! What runs is decided by the [`KernelOptions`] a network was built with (passed down to
//! every entry point here), never by a global: two pipelines in one process, or two tests
//! running in parallel, can use different kernels. Environment variables are read only by
//! [`KernelOptions::from_env`], for programs (benchmarks, CLIs) that want them.
//!
//! ```
//! use pixelgen_diffusion::fused::{KernelOptions, Kernels};
//! let reference = KernelOptions { kernels: Kernels::Reference, ..KernelOptions::default() };
//! assert_eq!(KernelOptions::default().kernels, Kernels::Fused);
//! assert_ne!(reference, KernelOptions::default());
//! ```

#[cfg(feature = "cuda")]
mod cuda;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::error::{Result, invalid};
use crate::profile;

/// Which implementation the GPU hot spots use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kernels {
    /// candle's ops only (scores and softmax in f32): the CPU path, and the GPU baseline.
    Reference,
    /// The fused CUDA kernels where they apply (the default).
    #[default]
    Fused,
    /// As `Fused`, with the first flash-attention kernel (WMMA, shared-memory round trips),
    /// for comparison.
    FusedWmma,
    /// Fused group norm and GEGLU; attention through cuBLAS with half-precision scores and
    /// candle's fused softmax instead of flash attention (for comparison).
    FusedNoFlash,
}

/// How the fused path runs linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LinearBackend {
    /// One cuBLASLt GEMM with the bias in its epilogue (the default).
    #[default]
    CublasLt,
    /// candle's matmul (for comparison).
    Candle,
}

/// Default of [`KernelOptions::cudnn_min_rows`].
pub const CUDNN_MIN_ROWS: usize = 2048;

/// How a built network computes on the GPU: given when the UNet, the VAE, the text encoders or
/// the pipeline are built (e.g. [`crate::SdxlPipeline::load_with`]) and passed down to the entry
/// points of this module. On the CPU (and other non-CUDA devices) every choice runs the
/// reference path. The default is the fastest exact-enough setting, the same in every process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelOptions {
    /// Fused kernels or candle's ops (default [`Kernels::Fused`]).
    pub kernels: Kernels,
    /// The fused path's linear layers (default [`LinearBackend::CublasLt`]).
    pub linear: LinearBackend,
    /// Whether large f32 convolutions on the fused path may use TF32 tensor cores (default
    /// `true`, as PyTorch does for cuDNN convolutions; ~1e-3 relative error), or stay exact
    /// (`false`). The f32 VAE is where this matters.
    pub tf32: bool,
    /// The fused path's convolutions (default [`ConvBackend::Cudnn`] in builds with the
    /// `cudnn` feature, [`ConvBackend::Gemm`] without, where the cuDNN choices also run as
    /// `Gemm`).
    pub conv: ConvBackend,
    /// Fewest output rows (batch x pixels) a cuDNN convolution takes; smaller ones run on the
    /// GEMM path, whose cuBLASLt splits such skinny products better (default
    /// [`CUDNN_MIN_ROWS`]).
    pub cudnn_min_rows: usize,
    /// Whether cuDNN puts a ResNet block's bias and skip connection into the convolution's
    /// epilogue where its algorithm allows (default `false`: measured mixed, see
    /// [`conv2d_residual`]).
    pub cudnn_fuse: bool,
}

impl Default for KernelOptions {
    fn default() -> Self {
        Self {
            kernels: Kernels::Fused,
            linear: LinearBackend::CublasLt,
            tf32: true,
            conv: if cfg!(feature = "cudnn") {
                ConvBackend::Cudnn
            } else {
                ConvBackend::Gemm
            },
            cudnn_min_rows: CUDNN_MIN_ROWS,
            cudnn_fuse: false,
        }
    }
}

impl KernelOptions {
    /// candle's ops everywhere (the GPU baseline; what the CPU runs anyway).
    pub fn reference() -> Self {
        Self {
            kernels: Kernels::Reference,
            ..Self::default()
        }
    }

    /// The defaults, changed by the environment variables programs may offer (read here and
    /// nowhere else in the crate): `PIXELGEN_KERNELS` (`reference`, `fused`,
    /// `fused-no-flash`, `fused-wmma`), `PIXELGEN_LINEAR=candle`, `PIXELGEN_TF32=0`,
    /// `PIXELGEN_CONV` (`gemm`, `cudnn`, `cudnn-search`), `PIXELGEN_CUDNN_MIN_ROWS=N`,
    /// `PIXELGEN_CUDNN_FUSE=1`. Unset or unrecognised values keep the default.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`KernelOptions::from_env`], with the variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut o = Self::default();
        match var("PIXELGEN_KERNELS").as_deref() {
            Some("reference") => o.kernels = Kernels::Reference,
            Some("fused") => o.kernels = Kernels::Fused,
            Some("fused-no-flash") => o.kernels = Kernels::FusedNoFlash,
            Some("fused-wmma") => o.kernels = Kernels::FusedWmma,
            _ => {}
        }
        if var("PIXELGEN_LINEAR").as_deref() == Some("candle") {
            o.linear = LinearBackend::Candle;
        }
        if var("PIXELGEN_TF32").as_deref() == Some("0") {
            o.tf32 = false;
        }
        match var("PIXELGEN_CONV").as_deref() {
            Some("gemm") => o.conv = ConvBackend::Gemm,
            Some("cudnn") => o.conv = ConvBackend::Cudnn,
            Some("cudnn-search") => o.conv = ConvBackend::CudnnSearch,
            _ => {}
        }
        if let Some(n) = var("PIXELGEN_CUDNN_MIN_ROWS").and_then(|v| v.trim().parse().ok()) {
            o.cudnn_min_rows = n;
        }
        if var("PIXELGEN_CUDNN_FUSE").as_deref() == Some("1") {
            o.cudnn_fuse = true;
        }
        o
    }

    /// These options with `kernels`.
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        Self { kernels, ..self }
    }

    /// Whether the fused kernels can run for tensors on `device` (CUDA build, CUDA device, not
    /// switched off).
    pub(crate) fn fused_on(&self, device: &Device) -> bool {
        cfg!(feature = "cuda") && device.is_cuda() && self.kernels != Kernels::Reference
    }
}

/// Group norm with affine weight and bias (diffusers' `nn.GroupNorm`), optionally followed by
/// SiLU, fused on CUDA.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    /// candle's group norm (statistics in f32): the reference path.
    reference: candle_nn::GroupNorm,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    weight: Tensor,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    bias: Tensor,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    groups: usize,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    eps: f64,
}

impl GroupNorm {
    /// Loads `weight` and `bias` of `channels` values; the groups must divide the channels.
    pub fn new(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Self::from_tensors(
            vb.get(channels, "weight")?,
            vb.get(channels, "bias")?,
            groups,
            eps,
        )
    }

    /// From weight and bias tensors of one value per channel.
    pub fn from_tensors(weight: Tensor, bias: Tensor, groups: usize, eps: f64) -> Result<Self> {
        let channels = weight.elem_count();
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(invalid(
                "norm_num_groups",
                format!("{groups} groups do not divide {channels} channels"),
            ));
        }
        if bias.elem_count() != channels {
            return Err(invalid(
                "group norm bias",
                format!("{} values for {channels} channels", bias.elem_count()),
            ));
        }
        Ok(Self {
            reference: candle_nn::GroupNorm::new(
                weight.clone(),
                bias.clone(),
                channels,
                groups,
                eps,
            )?,
            weight,
            bias,
            groups,
            eps,
        })
    }

    /// Normalises `x` `[batch, channels, ...]`.
    pub fn forward(&self, x: &Tensor, opts: &KernelOptions) -> Result<Tensor> {
        profile::scope("group_norm", x.device(), || self.run(x, false, opts))
    }

    /// Normalises `x`, then applies SiLU.
    pub fn forward_silu(&self, x: &Tensor, opts: &KernelOptions) -> Result<Tensor> {
        profile::scope("group_norm+silu", x.device(), || self.run(x, true, opts))
    }

    fn run(&self, x: &Tensor, silu: bool, opts: &KernelOptions) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if opts.fused_on(x.device()) && x.rank() >= 3 && x.dtype() == self.weight.dtype() {
            let op = cuda::GroupNormOp {
                groups: self.groups,
                eps: self.eps as f32,
                silu,
            };
            return Ok(x
                .contiguous()?
                .apply_op3_no_bwd(&self.weight, &self.bias, &op)?);
        }
        #[cfg(not(feature = "cuda"))]
        let _ = opts;
        let y = candle_nn::Module::forward(&self.reference, x)?;
        Ok(if silu { y.silu()? } else { y })
    }
}

/// GEGLU: `h[..., :n] * gelu_erf(h[..., n:])` for `h` with `2n` values in the last dimension.
pub fn geglu(h: &Tensor, opts: &KernelOptions) -> Result<Tensor> {
    profile::scope("geglu", h.device(), || {
        #[cfg(feature = "cuda")]
        if opts.fused_on(h.device()) {
            return Ok(h.contiguous()?.apply_op1_no_bwd(&cuda::GegluOp)?);
        }
        #[cfg(not(feature = "cuda"))]
        let _ = opts;
        let parts = h.chunk(2, D::Minus1)?;
        Ok((&parts[0] * parts[1].gelu_erf()?)?)
    })
}

/// Per (item, channel) mean and `sqrt(unbiased variance + eps)` over the tokens of `x`
/// `[n, L, C]`, each `[n, 1, C]` f32: the statistics AdaIN matches (reference attention). One
/// fused kernel on CUDA; elsewhere candle's ops with the tokens moved last (reductions over
/// the last axis read memory in order).
pub(crate) fn token_stats(x: &Tensor, eps: f64, opts: &KernelOptions) -> Result<(Tensor, Tensor)> {
    #[cfg(feature = "cuda")]
    if opts.fused_on(x.device()) {
        let s = x
            .contiguous()?
            .apply_op1_no_bwd(&cuda::TokenStatsOp { eps: eps as f32 })?;
        return Ok((s.narrow(1, 0, 1)?, s.narrow(1, 1, 1)?));
    }
    #[cfg(not(feature = "cuda"))]
    let _ = opts;
    let xt = x.to_dtype(DType::F32)?.transpose(1, 2)?.contiguous()?;
    let l = xt.dim(2)?;
    let mu = xt.mean_keepdim(2)?;
    let var = xt
        .broadcast_sub(&mu)?
        .sqr()?
        .sum_keepdim(2)?
        .affine(1.0 / l.saturating_sub(1).max(1) as f64, eps)?;
    Ok((mu.transpose(1, 2)?, var.sqrt()?.transpose(1, 2)?))
}

/// `x * scale + shift` for `x` `[n, L, C]` and f32 `scale`, `shift` `[n, 1, C]`, computed in
/// f32 and returned in `x`'s dtype (one fused pass on CUDA).
pub(crate) fn token_affine(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    opts: &KernelOptions,
) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if opts.fused_on(x.device()) {
        return Ok(x.contiguous()?.apply_op3_no_bwd(
            &scale.to_dtype(DType::F32)?.contiguous()?,
            &shift.to_dtype(DType::F32)?.contiguous()?,
            &cuda::TokenAffineOp,
        )?);
    }
    #[cfg(not(feature = "cuda"))]
    let _ = opts;
    let y = x
        .to_dtype(DType::F32)?
        .broadcast_mul(scale)?
        .broadcast_add(shift)?;
    Ok(y.to_dtype(x.dtype())?)
}

/// Whether [`attention`] runs flash attention for queries like `q` (CUDA build and device,
/// fused kernels, head dim 64, f16/bf16): the path that takes no per-key bias.
pub(crate) fn flash_applies(q: &Tensor, head_dim: usize, opts: &KernelOptions) -> bool {
    opts.fused_on(q.device())
        && matches!(opts.kernels, Kernels::Fused | Kernels::FusedWmma)
        && head_dim == 64
        && matches!(q.dtype(), DType::F16 | DType::BF16)
}

/// Whether `t` `[b, l, c]` has the layout the flash kernels read: unit channel stride and
/// strides and offset in multiples of 8 elements (16-byte loads).
#[cfg(feature = "cuda")]
fn flash_aligned(t: &Tensor) -> bool {
    let (st, off) = (t.stride(), t.layout().start_offset());
    st.len() == 3 && st[2] == 1 && st[0] % 8 == 0 && st[1] % 8 == 0 && off % 8 == 0
}

/// Whether [`shared_attention`] runs for these operands (see there).
pub(crate) fn shared_attention_applies(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    head_dim: usize,
    opts: &KernelOptions,
) -> bool {
    #[cfg(feature = "cuda")]
    {
        flash_applies(q, head_dim, opts)
            && opts.kernels == Kernels::Fused
            && k.dim(1).is_ok_and(|l| l.is_multiple_of(64))
            && flash_aligned(q)
            && flash_aligned(k)
            && flash_aligned(v)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (q, k, v, head_dim, opts);
        false
    }
}

/// Reference attention in one flash-attention pass, where it applies (CUDA, the mma kernel,
/// head dim 64, f16/bf16, a key count that is a multiple of 64, aligned operands): the batch
/// is groups of `group` items; every item but a group's first attends to
/// `[first item's K/V ; its own]` with `ln(strength)` added to the first part's logits, read in
/// place, and a group's first attends to itself only. `None` where it does not apply (the
/// caller gathers and concatenates instead).
pub(crate) fn shared_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    head_dim: usize,
    (group, strength): (usize, f64),
    opts: &KernelOptions,
) -> Result<Option<Tensor>> {
    #[cfg(feature = "cuda")]
    if shared_attention_applies(q, k, v, head_dim, opts) && strength > 0.0 {
        let op = cuda::FlashAttnOp {
            heads,
            scale: (head_dim as f32).powf(-0.5),
            mma: true,
            shared: Some((group, strength.ln() as f32)),
        };
        return profile::scope("attention", q.device(), || {
            Ok(Some(q.apply_op3_no_bwd(k, v, &op)?))
        });
    }
    let _ = (q, k, v, heads, head_dim, group, strength, opts);
    Ok(None)
}

/// Multi-head scaled dot-product attention: `q` `[b, lq, heads * head_dim]`, `k` and `v`
/// `[b, lk, heads * head_dim]`, result `[b, lq, heads * head_dim]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    head_dim: usize,
    opts: &KernelOptions,
) -> Result<Tensor> {
    let scale = (head_dim as f64).powf(-0.5);
    let device = q.device();
    #[cfg(feature = "cuda")]
    if flash_applies(q, head_dim, opts) {
        let op = cuda::FlashAttnOp {
            heads,
            scale: scale as f32,
            mma: opts.kernels == Kernels::Fused,
            shared: None,
        };
        if flash_aligned(q) && flash_aligned(k) && flash_aligned(v) {
            return profile::scope("attention", device, || Ok(q.apply_op3_no_bwd(k, v, &op)?));
        }
    }
    let (b, lq, _) = q.dims3()?;
    let lk = k.dim(1)?;
    let split = |t: &Tensor, l: usize| -> Result<Tensor> {
        Ok(t.reshape((b, l, heads, head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    };
    profile::scope("attention", device, || {
        let dtype = q.dtype();
        let half_scores = opts.fused_on(device) && dtype != DType::F32;
        let o = if half_scores {
            // Scores in the model's half type; candle's softmax accumulates in f32.
            let q = (split(q, lq)? * scale)?;
            let scores = q.matmul(&split(k, lk)?.t()?)?;
            candle_nn::ops::softmax_last_dim(&scores)?.matmul(&split(v, lk)?)?
        } else {
            let scores = split(q, lq)?
                .matmul(&split(k, lk)?.t()?)?
                .to_dtype(DType::F32)?
                .affine(scale, 0.0)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dtype)?;
            probs.matmul(&split(v, lk)?)?
        };
        Ok(o.transpose(1, 2)?.reshape((b, lq, heads * head_dim))?)
    })
}

/// A linear layer `x @ w^T + b`; on the fused path in f16/bf16 one cuBLASLt GEMM with the
/// bias added in its epilogue.
pub fn linear(l: &candle_nn::Linear, x: &Tensor, opts: &KernelOptions) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if opts.fused_on(x.device())
        && opts.linear == LinearBackend::CublasLt
        && matches!(x.dtype(), DType::F16 | DType::BF16)
        && x.dtype() == l.weight().dtype()
        && x.rank() >= 2
    {
        let x = x.contiguous()?;
        let w = l.weight().contiguous()?;
        return Ok(match l.bias() {
            Some(b) => x.apply_op3_no_bwd(&w, b, &cuda::LinearOp)?,
            None => x.apply_op2_no_bwd(&w, &cuda::LinearOp)?,
        });
    }
    #[cfg(not(feature = "cuda"))]
    let _ = opts;
    Ok(candle_nn::Module::forward(l, x)?)
}

/// Largest im2col buffer, in values, before a convolution is split into pixel ranges
/// (128 Mi values: 256 MB in f16, and the kernel's 32-bit indexing).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) const IM2COL_MAX: usize = 1 << 27;

/// Smallest image (pixels) a 3x3 convolution runs as shifted GEMMs on.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const SHIFT_MIN_PIXELS: usize = 64 * 64;

/// How the fused path runs convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvBackend {
    /// Our cuBLASLt convolutions (shifted GEMMs for large 3x3, im2col otherwise).
    Gemm,
    /// cuDNN (feature `cudnn`), each shape's algorithm from cuDNN's heuristics: the same
    /// choice every run. Shapes where cuDNN offers only slow kernels (or fails) run as
    /// [`ConvBackend::Gemm`].
    Cudnn,
    /// cuDNN with each shape's algorithm timed once on first use (PyTorch's
    /// `cudnn.benchmark`): possibly faster, but the choice, and the last bits of the output,
    /// may differ between runs.
    CudnnSearch,
}

/// The cuDNN algorithm chosen for each convolution shape this thread ran, one line each
/// (empty without the `cudnn` feature), for benchmark logs.
pub fn cudnn_plans() -> Vec<String> {
    #[cfg(feature = "cudnn")]
    {
        let mut v: Vec<String> = cuda::cudnn_plans()
            .into_iter()
            .map(|(dt, d, algo, ws)| {
                format!(
                    "{dt:?} b{} {}x{}x{} -> {} k{}x{}: {algo} workspace {} KiB",
                    d[0],
                    d[1],
                    d[2],
                    d[3],
                    d[4],
                    d[5],
                    d[6],
                    ws >> 10
                )
            })
            .collect();
        v.sort();
        v
    }
    #[cfg(not(feature = "cudnn"))]
    Vec::new()
}

/// A 2-D convolution; on the fused path the columns come from a coalesced, pixel-major im2col
/// in chunks of output pixels and one GEMM per chunk writes NCHW directly (f16/bf16: cuBLASLt;
/// f32: candle's exact-f32 GEMM, where 1x1 convolutions skip im2col).
///
/// 3x3 stride-1 "same" convolutions on images of 64x64 and up skip im2col (f16/bf16, and f32
/// on TF32 tensor cores unless [`KernelOptions::tf32`] is off): nine shifted GEMMs over a
/// zero-bordered NHWC copy of the input accumulate into the output (see `kernels/fused.cu`),
/// with the weight in a tap-major copy `[cout, 9, cin]` (built per call here; the models keep
/// it, see [`conv2d_cached`]).
pub fn conv2d(c: &candle_nn::Conv2d, x: &Tensor, opts: &KernelOptions) -> Result<Tensor> {
    conv2d_cached(c, None, x, opts)
}

/// [`conv2d`] keeping the tap-major weight copy in `tap_major` after its first use.
pub fn conv2d_cached(
    c: &candle_nn::Conv2d,
    tap_major: Option<&std::sync::OnceLock<Tensor>>,
    x: &Tensor,
    opts: &KernelOptions,
) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if fused_conv_applies(c, x, opts) {
        #[cfg(feature = "cudnn")]
        if let Some(out) = cudnn_conv(c, x, None, opts)? {
            return Ok(out);
        }
        return conv2d_fused(c, tap_major, x, opts);
    }
    #[cfg(not(feature = "cuda"))]
    let _ = (tap_major, opts);
    Ok(candle_nn::Module::forward(c, x)?)
}

/// `residual + conv(x)` (a ResNet block's skip connection): [`conv2d_cached`], then the add.
/// With cuDNN and [`KernelOptions::cudnn_fuse`], residual and bias go into the convolution's
/// epilogue where its algorithm allows (two passes fewer over the output; measured mixed, so
/// opt-in).
pub fn conv2d_residual(
    c: &candle_nn::Conv2d,
    tap_major: Option<&std::sync::OnceLock<Tensor>>,
    x: &Tensor,
    residual: &Tensor,
    opts: &KernelOptions,
) -> Result<Tensor> {
    #[cfg(feature = "cudnn")]
    if fused_conv_applies(c, x, opts)
        && let Some(out) = cudnn_conv(c, x, Some(residual), opts)?
    {
        return Ok(out);
    }
    let h = conv2d_cached(c, tap_major, x, opts)?;
    Ok((residual + h)?)
}

/// Whether the fused path takes this convolution (CUDA device and build, groups 1, dilation 1,
/// matching dtypes).
#[cfg(feature = "cuda")]
fn fused_conv_applies(c: &candle_nn::Conv2d, x: &Tensor, opts: &KernelOptions) -> bool {
    let cfg = c.config();
    opts.fused_on(x.device())
        && cfg.groups == 1
        && cfg.dilation == 1
        && x.rank() == 4
        && x.dtype() == c.weight().dtype()
}

/// The convolution (+ bias, + `residual`) through cuDNN, or `None` where the backend is the
/// GEMM path or cuDNN declines the shape (no fast algorithm, or a failure such as no memory for
/// its workspace): the caller then runs the GEMM path.
#[cfg(feature = "cudnn")]
fn cudnn_conv(
    c: &candle_nn::Conv2d,
    x: &Tensor,
    residual: Option<&Tensor>,
    opts: &KernelOptions,
) -> Result<Option<Tensor>> {
    let choice = match opts.conv {
        ConvBackend::Gemm => return Ok(None),
        ConvBackend::Cudnn => cuda::AlgoChoice::Heuristic,
        ConvBackend::CudnnSearch => cuda::AlgoChoice::Search,
    };
    let cfg = c.config();
    // cuDNN's bias add takes f32 and f16 (bf16 adds it afterwards); the residual goes into
    // the epilogue only where that is switched on (`cudnn_fuse`) and possible, else
    // it is added afterwards.
    let in_op = x.dtype() != DType::BF16;
    let op = cuda::CudnnConvOp {
        stride: cfg.stride,
        pad: cfg.padding,
        choice,
        tf32: opts.tf32,
        min_rows: opts.cudnn_min_rows,
        fuse: opts.cudnn_fuse,
        bias: if in_op { c.bias().cloned() } else { None },
    };
    let x = x.contiguous()?;
    let wt = c.weight().contiguous()?;
    if op.declines(&x, &wt) {
        return Ok(None);
    }
    if let Some(r) = residual
        && in_op
        && opts.cudnn_fuse
        && let Ok(out) = x.apply_op3_no_bwd(&wt, &r.contiguous()?, &op)
    {
        return Ok(Some(out));
    }
    let mut out = match x.apply_op2_no_bwd(&wt, &op) {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!("convolution on the GEMM path: {e}");
            return Ok(None);
        }
    };
    if !in_op && let Some(bias) = c.bias() {
        out = out.broadcast_add(&bias.reshape((1, bias.elem_count(), 1, 1))?)?;
    }
    if let Some(r) = residual {
        out = (r + out)?;
    }
    Ok(Some(out))
}

#[cfg(feature = "cuda")]
fn conv2d_fused(
    c: &candle_nn::Conv2d,
    tap_major: Option<&std::sync::OnceLock<Tensor>>,
    x: &Tensor,
    opts: &KernelOptions,
) -> Result<Tensor> {
    let cfg = c.config();
    let (b, cin, h, w) = x.dims4()?;
    let (cout, wcin, kh, kw) = c.weight().dims4()?;
    if wcin != cin {
        return Err(invalid(
            "conv input",
            format!("{cin} channels, the weight takes {wcin}"),
        ));
    }
    let (s, p) = (cfg.stride, cfg.padding);
    if h + 2 * p < kh || w + 2 * p < kw || s == 0 {
        return Err(invalid(
            "conv input",
            format!("{h}x{w} is smaller than the kernel"),
        ));
    }
    let (ho, wo) = ((h + 2 * p - kh) / s + 1, (w + 2 * p - kw) / s + 1);
    let x = x.contiguous()?;
    let half = matches!(x.dtype(), DType::F16 | DType::BF16);
    // Shifted GEMMs pay off on large images (measured on an H100: 128x128x320 0.69 vs 1.08 ms,
    // 32x32x1280 0.59 vs 0.32 ms with im2col); f32 only with TF32 allowed.
    let shift_dtype = half || (x.dtype() == DType::F32 && opts.tf32);
    if shift_dtype && kh == 3 && kw == 3 && s == 1 && p == 1 && h * w >= SHIFT_MIN_PIXELS {
        let make = || -> Result<Tensor> {
            Ok(c.weight()
                .permute((0, 2, 3, 1))?
                .contiguous()?
                .reshape((cout, 9, cin))?)
        };
        let wt = match tap_major {
            Some(cache) => match cache.get() {
                Some(t) => t.clone(),
                None => {
                    let t = make()?;
                    let _ = cache.set(t.clone());
                    t
                }
            },
            None => make()?,
        };
        let op = cuda::ShiftConvOp;
        return Ok(match c.bias() {
            Some(bias) => x.apply_op3_no_bwd(&wt, bias, &op)?,
            None => x.apply_op2_no_bwd(&wt, &op)?,
        });
    }
    if half {
        let op = cuda::ConvOp {
            stride: s,
            pad: p,
            max_col: IM2COL_MAX,
        };
        let out = x.apply_op2_no_bwd(&c.weight().contiguous()?, &op)?;
        return Ok(match c.bias() {
            Some(bias) => out.broadcast_add(&bias.reshape((1, cout, 1, 1))?)?,
            None => out,
        });
    }
    // f32: the same columns through candle's cuBLAS GEMM (exact f32, no TF32).
    let k = cin * kh * kw;
    let wm = c.weight().reshape((cout, k))?;
    let pixels = ho * wo;
    let out = if kh == 1 && kw == 1 && s == 1 && p == 0 {
        wm.broadcast_matmul(&x.reshape((b, cin, pixels))?)?
    } else {
        let chunk = (IM2COL_MAX / (b * k).max(1)).clamp(1, pixels);
        let mut outs = Vec::with_capacity(pixels.div_ceil(chunk));
        let mut p0 = 0;
        while p0 < pixels {
            let np = chunk.min(pixels - p0);
            let op = cuda::Im2ColOp {
                kh,
                kw,
                stride: s,
                pad: p,
                wo,
                p0,
                np,
            };
            let col = x.apply_op1_no_bwd(&op)?;
            outs.push(wm.broadcast_matmul(&col.transpose(1, 2)?)?);
            p0 += np;
        }
        if outs.len() == 1 {
            outs.remove(0)
        } else {
            Tensor::cat(&outs, 2)?
        }
    };
    let out = out.reshape((b, cout, ho, wo))?;
    Ok(match c.bias() {
        Some(bias) => out.broadcast_add(&bias.reshape((1, cout, 1, 1))?)?,
        None => out,
    })
}
