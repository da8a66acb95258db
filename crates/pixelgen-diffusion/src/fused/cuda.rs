//! Host side of `kernels/fused.cu`: candle custom ops that launch the fused kernels on CUDA.
//!
//! Launching a kernel is an FFI call with raw device pointers, so this file (with
//! `weights.rs`) is where the crate allows `unsafe`; every launch checks shapes, strides and
//! alignment first, so the kernels only ever index inside the buffers they are given.
#![allow(unsafe_code)]

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cublaslt::{CudaBlasLT, Matmul, MatmulConfig};
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::{CudaDType, CudaDevice, WrapErr};
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, bail,
};
use half::{bf16, f16};

/// PTX of `kernels/fused.cu`, built by `build.rs`.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/fused.ptx"));

fn launch_fn(
    dev: &CudaDevice,
    name: &str,
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaFunction> {
    Ok(dev
        .get_or_load_custom_func(name, "pixelgen_fused", PTX)?
        .into_cuda_function())
}

fn suffix(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        other => bail!("fused kernels take f32, f16 or bf16, not {other:?}"),
    })
}

/// Whether a view starts on a 16-byte boundary (what the kernels' 16-byte vector loads need).
fn aligned16<T>(
    v: &candle_core::cuda_backend::cudarc::driver::CudaView<'_, T>,
    stream: &candle_core::cuda_backend::cudarc::driver::CudaStream,
) -> bool {
    let (ptr, _guard) = v.device_ptr(stream);
    ptr.is_multiple_of(16)
}

fn contiguous_view<'a, T: CudaDType + DeviceRepr>(
    s: &'a CudaStorage,
    l: &Layout,
    what: &str,
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, T>> {
    if !l.is_contiguous() {
        bail!("fused kernel: {what} must be contiguous");
    }
    Ok(s.as_cuda_slice::<T>()?.slice(l.start_offset()..))
}

/// Group norm over NCHW (any number of spatial dims) with an optional SiLU, in one kernel pair.
pub(super) struct GroupNormOp {
    pub groups: usize,
    pub eps: f32,
    pub silu: bool,
}

impl GroupNormOp {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        dev: &CudaDevice,
        x: (&CudaStorage, &Layout),
        w: (&CudaStorage, &Layout),
        b: (&CudaStorage, &Layout),
        name: &str,
    ) -> Result<CudaSlice<T>> {
        let dims = x.1.dims();
        let (batch, channels) = (dims[0], dims[1]);
        let hw: usize = dims[2..].iter().product();
        let cpg = channels / self.groups;
        let group_len = cpg * hw;
        let bg = batch * self.groups;
        let xs = contiguous_view::<T>(x.0, x.1, "group norm input")?;
        let ws = contiguous_view::<T>(w.0, w.1, "group norm weight")?;
        let bs = contiguous_view::<T>(b.0, b.1, "group norm bias")?;
        let stream = dev.cuda_stream();
        // 16-byte loads and stores where every vector lies inside one channel and the input is
        // aligned (the output is a fresh allocation).
        let vec = 16 / std::mem::size_of::<T>();
        let vectorised = aligned16(&xs, &stream) && hw.is_multiple_of(vec) && group_len < (1 << 31);
        let kind = if vectorised { "vec_" } else { "" };
        // Enough blocks to fill the card (~8 per SM on an H100), each with >= 4096 values.
        let parts = 1056usize
            .div_ceil(bg)
            .clamp(1, 256)
            .min(group_len.div_ceil(4096).max(1));
        let part = stream.alloc_zeros::<f32>(bg * parts * 3).w()?;
        // SAFETY: uninitialised device memory; the kernel/GEMM below writes every element before
        // anything reads it.
        let y = unsafe { dev.alloc::<T>(bg * group_len)? };
        let (group_len_i, hw_i) = (group_len as i64, hw as i64);
        let (parts_i, cpg_i, groups_i) = (parts as i32, cpg as i32, self.groups as i32);
        let silu = i32::from(self.silu);

        let stats = launch_fn(dev, &format!("gn_stats_{kind}{name}"))?;
        let mut launch = stream.launch_builder(&stats);
        launch.arg(&xs).arg(&part).arg(&group_len_i).arg(&parts_i);
        let cfg = LaunchConfig {
            grid_dim: (parts as u32, bg as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the kernel reads x[0 .. bg * group_len] and writes part[0 .. bg * parts * 3],
        // both allocated with exactly those lengths above (x checked contiguous; the vector
        // variant only with x 16-byte aligned and group_len a multiple of the vector).
        unsafe { launch.launch(cfg) }.w()?;

        let apply = launch_fn(dev, &format!("gn_apply_{kind}{name}"))?;
        let blocks = group_len.div_ceil(4096).clamp(1, 1024);
        let mut launch = stream.launch_builder(&apply);
        launch
            .arg(&xs)
            .arg(&part)
            .arg(&ws)
            .arg(&bs)
            .arg(&y)
            .arg(&group_len_i)
            .arg(&parts_i)
            .arg(&hw_i)
            .arg(&cpg_i)
            .arg(&groups_i)
            .arg(&self.eps)
            .arg(&silu);
        let cfg = LaunchConfig {
            grid_dim: (blocks as u32, bg as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: as above; w and b hold `channels` values (checked by the caller) and y has
        // bg * group_len elements.
        unsafe { launch.launch(cfg) }.w()?;
        Ok(y)
    }
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "pixelgen-group-norm"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        bail!("the fused group norm runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
        bs: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dims = xl.dims();
        if dims.len() < 3 || self.groups == 0 || !dims[1].is_multiple_of(self.groups) {
            bail!(
                "fused group norm: bad input shape {dims:?} for {} groups",
                self.groups
            );
        }
        if wl.shape().elem_count() != dims[1] || bl.shape().elem_count() != dims[1] {
            bail!(
                "fused group norm: weight/bias do not have {} values",
                dims[1]
            );
        }
        common_dtype(xs, ws, Some((bs, bl)), "fused group norm")?;
        let dev = xs.device().clone();
        let name = suffix(xs.dtype())?;
        let x = (xs, xl);
        let (w, b) = ((ws, wl), (bs, bl));
        let out = match xs.dtype() {
            DType::F32 => CudaStorage::wrap_cuda_slice(self.run::<f32>(&dev, x, w, b, name)?, dev),
            DType::F16 => CudaStorage::wrap_cuda_slice(self.run::<f16>(&dev, x, w, b, name)?, dev),
            _ => CudaStorage::wrap_cuda_slice(self.run::<bf16>(&dev, x, w, b, name)?, dev),
        };
        Ok((out, xl.shape().clone()))
    }
}

/// Per (item, channel) mean and sd over the tokens of `[n, L, C]` activations: f32
/// `[n, 2, C]` (row 0 the means, row 1 `sqrt(unbiased var + eps)`).
pub(super) struct TokenStatsOp {
    pub eps: f32,
}

impl TokenStatsOp {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        dev: &CudaDevice,
        s: &CudaStorage,
        l: &Layout,
        (n, len, channels): (usize, usize, usize),
    ) -> Result<CudaSlice<f32>> {
        let x = contiguous_view::<T>(s, l, "token stats input")?;
        let stream = dev.cuda_stream();
        // SAFETY: uninitialised device memory; the kernel writes all n * 2 * C values.
        let out = unsafe { dev.alloc::<f32>(n * 2 * channels)? };
        let func = launch_fn(dev, &format!("token_stats_{}", suffix(s.dtype())?))?;
        let mut launch = stream.launch_builder(&func);
        let (len_i, channels_i) = (len as i64, channels as i32);
        launch
            .arg(&x)
            .arg(&out)
            .arg(&len_i)
            .arg(&channels_i)
            .arg(&self.eps);
        let cfg = LaunchConfig {
            grid_dim: (channels.div_ceil(32) as u32, n as u32, 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: reads n * L * C contiguous inputs and writes n * 2 * C outputs, the sizes of
        // the two buffers; the block is (32, 8) as the kernel's shared array assumes.
        unsafe { launch.launch(cfg) }.w()?;
        Ok(out)
    }
}

impl CustomOp1 for TokenStatsOp {
    fn name(&self) -> &'static str {
        "pixelgen-token-stats"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        bail!("the fused token statistics run on CUDA only")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let &[n, len, channels] = l.dims() else {
            bail!(
                "fused token statistics: input {:?} is not [n, L, C]",
                l.dims()
            )
        };
        if n > 65_535 {
            bail!("fused token statistics: {n} items, at most 65535");
        }
        let dev = s.device().clone();
        let shape = (n, len, channels);
        let out = match s.dtype() {
            DType::F32 => self.run::<f32>(&dev, s, l, shape)?,
            DType::F16 => self.run::<f16>(&dev, s, l, shape)?,
            DType::BF16 => self.run::<bf16>(&dev, s, l, shape)?,
            other => bail!("fused token statistics take f32, f16 or bf16, not {other:?}"),
        };
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            Shape::from((n, 2, channels)),
        ))
    }
}

/// `x * scale + shift` for `[n, L, C]` activations with f32 `scale` and `shift` of `[n, C]`
/// values (one per item and channel), in f32, in `x`'s dtype.
pub(super) struct TokenAffineOp;

impl TokenAffineOp {
    fn run<T: CudaDType + DeviceRepr>(
        dev: &CudaDevice,
        x: (&CudaStorage, &Layout),
        scale: (&CudaStorage, &Layout),
        shift: (&CudaStorage, &Layout),
        (len, channels, total): (usize, usize, usize),
    ) -> Result<CudaSlice<T>> {
        let xs = contiguous_view::<T>(x.0, x.1, "token affine input")?;
        let sc = contiguous_view::<f32>(scale.0, scale.1, "token affine scale")?;
        let sh = contiguous_view::<f32>(shift.0, shift.1, "token affine shift")?;
        let stream = dev.cuda_stream();
        // SAFETY: uninitialised device memory; the kernel writes every element.
        let y = unsafe { dev.alloc::<T>(total)? };
        let func = launch_fn(dev, &format!("token_affine_{}", suffix(x.0.dtype())?))?;
        let mut launch = stream.launch_builder(&func);
        let (len_i, channels_i, total_i) = (len as i64, channels as i32, total as i64);
        launch
            .arg(&xs)
            .arg(&sc)
            .arg(&sh)
            .arg(&y)
            .arg(&len_i)
            .arg(&channels_i)
            .arg(&total_i);
        let blocks = total.div_ceil(256 * 4).clamp(1, 65_535) as u32;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: reads `total` inputs and n * C scales and shifts (checked by the caller),
        // writes `total` outputs.
        unsafe { launch.launch(cfg) }.w()?;
        Ok(y)
    }
}

impl CustomOp3 for TokenAffineOp {
    fn name(&self) -> &'static str {
        "pixelgen-token-affine"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        bail!("the fused token affine runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ss: &CudaStorage,
        sl: &Layout,
        hs: &CudaStorage,
        hl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let &[n, len, channels] = xl.dims() else {
            bail!("fused token affine: input {:?} is not [n, L, C]", xl.dims())
        };
        let per = n * channels;
        if sl.shape().elem_count() != per || hl.shape().elem_count() != per {
            bail!("fused token affine: scale/shift do not have {per} values");
        }
        if ss.dtype() != DType::F32 || hs.dtype() != DType::F32 {
            bail!("fused token affine: scale and shift must be f32");
        }
        let dev = xs.device().clone();
        let dims = (len, channels, n * len * channels);
        let (x, sc, sh) = ((xs, xl), (ss, sl), (hs, hl));
        let out = match xs.dtype() {
            DType::F32 => {
                CudaStorage::wrap_cuda_slice(Self::run::<f32>(&dev, x, sc, sh, dims)?, dev)
            }
            DType::F16 => {
                CudaStorage::wrap_cuda_slice(Self::run::<f16>(&dev, x, sc, sh, dims)?, dev)
            }
            DType::BF16 => {
                CudaStorage::wrap_cuda_slice(Self::run::<bf16>(&dev, x, sc, sh, dims)?, dev)
            }
            other => bail!("fused token affine takes f32, f16 or bf16, not {other:?}"),
        };
        Ok((out, xl.shape().clone()))
    }
}

/// `a * gelu_erf(gate)` over the two halves of the last dimension.
pub(super) struct GegluOp;

impl GegluOp {
    fn run<T: CudaDType + DeviceRepr>(
        dev: &CudaDevice,
        s: &CudaStorage,
        l: &Layout,
        rows: usize,
        inner: usize,
    ) -> Result<CudaSlice<T>> {
        let h = contiguous_view::<T>(s, l, "geglu input")?;
        // SAFETY: uninitialised device memory; the kernel/GEMM below writes every element before
        // anything reads it.
        let out = unsafe { dev.alloc::<T>(rows * inner)? };
        let stream = dev.cuda_stream();
        // 16-byte loads and stores where the halves split on a vector boundary and the input is
        // aligned (the output is a fresh allocation).
        let vec = 16 / std::mem::size_of::<T>();
        let vectorised = aligned16(&h, &stream) && inner.is_multiple_of(vec);
        let kind = if vectorised { "vec_" } else { "" };
        let func = launch_fn(dev, &format!("geglu_{kind}{}", suffix(s.dtype())?))?;
        let mut launch = stream.launch_builder(&func);
        let (rows_i, inner_i) = (rows as i64, inner as i64);
        launch.arg(&h).arg(&out).arg(&rows_i).arg(&inner_i);
        let per_thread = if vectorised { vec } else { 4 };
        let blocks = (rows * inner).div_ceil(256 * per_thread).clamp(1, 65_535) as u32;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: reads rows * 2 * inner input values (contiguous, checked) and writes
        // rows * inner outputs, the sizes of the two buffers.
        unsafe { launch.launch(cfg) }.w()?;
        Ok(out)
    }
}

impl CustomOp1 for GegluOp {
    fn name(&self) -> &'static str {
        "pixelgen-geglu"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        bail!("the fused GEGLU runs on CUDA only")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let dims = l.dims();
        let Some((&last, lead)) = dims.split_last() else {
            bail!("fused GEGLU: scalar input")
        };
        if !last.is_multiple_of(2) {
            bail!("fused GEGLU: last dimension {last} is odd");
        }
        let inner = last / 2;
        let rows: usize = lead.iter().product();
        let dev = s.device().clone();
        let out = match s.dtype() {
            DType::F32 => {
                CudaStorage::wrap_cuda_slice(Self::run::<f32>(&dev, s, l, rows, inner)?, dev)
            }
            DType::F16 => {
                CudaStorage::wrap_cuda_slice(Self::run::<f16>(&dev, s, l, rows, inner)?, dev)
            }
            DType::BF16 => {
                CudaStorage::wrap_cuda_slice(Self::run::<bf16>(&dev, s, l, rows, inner)?, dev)
            }
            other => bail!("fused GEGLU takes f32, f16 or bf16, not {other:?}"),
        };
        let mut out_dims = dims.to_vec();
        if let Some(d) = out_dims.last_mut() {
            *d = inner;
        }
        Ok((out, Shape::from(out_dims)))
    }
}

/// Flash attention for head dim 64: q `[B, Lq, H*64]`, k and v `[B, Lk, H*64]` (token-strided
/// views allowed) to `[B, Lq, H*64]`.
pub(super) struct FlashAttnOp {
    pub heads: usize,
    pub scale: f32,
    /// The mma.sync kernel (registers) rather than the WMMA one (shared-memory round trips).
    pub mma: bool,
    /// Reference attention: groups of this many items (the first of each is the reference
    /// the others also attend to, in place) and `ln(strength)` added to those logits. Needs
    /// the mma kernel and a key count that is a multiple of 64.
    pub shared: Option<(usize, f32)>,
}

/// Batch stride, token stride and start offset of a `[B, L, H*64]` operand, checked for the
/// kernel's 16-byte vector loads.
fn strides(l: &Layout, what: &str) -> Result<(i64, i64, usize)> {
    let st = l.stride();
    if st.len() != 3 || st[2] != 1 {
        bail!("flash attention: {what} needs a unit stride on the channel dimension");
    }
    if !st[0].is_multiple_of(8) || !st[1].is_multiple_of(8) || !l.start_offset().is_multiple_of(8) {
        bail!("flash attention: {what} strides/offset are not multiples of 8 elements");
    }
    Ok((st[0] as i64, st[1] as i64, l.start_offset()))
}

impl FlashAttnOp {
    #[allow(clippy::too_many_arguments)]
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        dev: &CudaDevice,
        q: (&CudaStorage, &Layout),
        k: (&CudaStorage, &Layout),
        v: (&CudaStorage, &Layout),
        (b, lq, lk): (usize, usize, usize),
    ) -> Result<CudaSlice<T>> {
        let (q_bs, q_ts, q_off) = strides(q.1, "q")?;
        let (k_bs, k_ts, k_off) = strides(k.1, "k")?;
        let (v_bs, v_ts, v_off) = strides(v.1, "v")?;
        let qs = q.0.as_cuda_slice::<T>()?.slice(q_off..);
        let ks = k.0.as_cuda_slice::<T>()?.slice(k_off..);
        let vs = v.0.as_cuda_slice::<T>()?.slice(v_off..);
        // SAFETY: uninitialised device memory; the kernel/GEMM below writes every element before
        // anything reads it.
        let out = unsafe { dev.alloc::<T>(b * lq * self.heads * 64)? };
        let kind = match (self.mma, self.shared) {
            (true, Some(_)) => "mma_shared_",
            (true, None) => "mma_",
            (false, Some(_)) => bail!("flash attention: shared references need the mma kernel"),
            (false, None) => "",
        };
        if self.shared.is_some() && !lk.is_multiple_of(64) {
            bail!("flash attention: shared references need a multiple of 64 keys, not {lk}");
        }
        let func = launch_fn(
            dev,
            &format!("flash_attn_d64_{kind}{}", suffix(q.0.dtype())?),
        )?;
        let stream = dev.cuda_stream();
        let mut launch = stream.launch_builder(&func);
        let (lq_i, lk_i, heads_i) = (lq as i32, lk as i32, self.heads as i32);
        let scale_log2 = self.scale * std::f32::consts::LOG2_E;
        launch
            .arg(&qs)
            .arg(&ks)
            .arg(&vs)
            .arg(&out)
            .arg(&lq_i)
            .arg(&lk_i)
            .arg(&heads_i)
            .arg(&q_bs)
            .arg(&q_ts)
            .arg(&k_bs)
            .arg(&k_ts)
            .arg(&v_bs)
            .arg(&v_ts)
            .arg(&scale_log2);
        let (group_i, bias_log2) = match self.shared {
            Some((group, bias)) => (group as i32, bias * std::f32::consts::LOG2_E),
            None => (0, 0.0),
        };
        if self.shared.is_some() {
            launch.arg(&group_i).arg(&bias_log2);
        }
        let cfg = LaunchConfig {
            grid_dim: (lq.div_ceil(64) as u32, (b * self.heads) as u32, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the layouts were checked against [b, lq|lk, heads * 64] with unit channel
        // stride; the kernel reads rows < lq / lk only (masked) and writes b * lq * heads * 64
        // outputs, the size of `out`.
        unsafe { launch.launch(cfg) }.w()?;
        Ok(out)
    }
}

impl CustomOp3 for FlashAttnOp {
    fn name(&self) -> &'static str {
        "pixelgen-flash-attn"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        bail!("flash attention runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        qs: &CudaStorage,
        ql: &Layout,
        ks: &CudaStorage,
        kl: &Layout,
        vs: &CudaStorage,
        vl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (b, lq, c) = ql.shape().dims3()?;
        let (kb, lk, kc) = kl.shape().dims3()?;
        let (vb, lv, vc) = vl.shape().dims3()?;
        if c != self.heads * 64 || kc != c || vc != c || kb != b || vb != b || lv != lk || lk == 0 {
            bail!(
                "flash attention: shapes q {:?} k {:?} v {:?} do not fit {} heads of 64",
                ql.dims(),
                kl.dims(),
                vl.dims(),
                self.heads
            );
        }
        if qs.dtype() != ks.dtype() || qs.dtype() != vs.dtype() {
            bail!("flash attention: q, k and v dtypes differ");
        }
        let dev = qs.device().clone();
        let (q, k, v) = ((qs, ql), (ks, kl), (vs, vl));
        let out = match qs.dtype() {
            DType::F16 => {
                CudaStorage::wrap_cuda_slice(self.run::<f16>(&dev, q, k, v, (b, lq, lk))?, dev)
            }
            DType::BF16 => {
                CudaStorage::wrap_cuda_slice(self.run::<bf16>(&dev, q, k, v, (b, lq, lk))?, dev)
            }
            other => bail!("flash attention takes f16 or bf16, not {other:?}"),
        };
        Ok((out, Shape::from((b, lq, c))))
    }
}

/// The columns of a convolution for output pixels `p0 .. p0 + np`: `[batch, np, cin*kh*kw]`.
pub(super) struct Im2ColOp {
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub wo: usize,
    pub p0: usize,
    pub np: usize,
}

impl Im2ColOp {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        dev: &CudaDevice,
        s: &CudaStorage,
        l: &Layout,
    ) -> Result<CudaSlice<T>> {
        let (b, c, h, w) = l.shape().dims4()?;
        let total = b * c * self.kh * self.kw * self.np;
        if total >= i32::MAX as usize {
            bail!("im2col: {total} column values; split the pixels into smaller ranges");
        }
        let x = contiguous_view::<T>(s, l, "im2col input")?;
        // SAFETY: uninitialised device memory; the kernel/GEMM below writes every element before
        // anything reads it.
        let col = unsafe { dev.alloc::<T>(total)? };
        launch_im2col(
            dev,
            s.dtype(),
            &x,
            &col,
            [
                b,
                c,
                h,
                w,
                self.kh,
                self.kw,
                self.stride,
                self.pad,
                self.wo,
                self.p0,
                self.np,
            ],
        )?;
        Ok(col)
    }
}

impl CustomOp1 for Im2ColOp {
    fn name(&self) -> &'static str {
        "pixelgen-im2col"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        bail!("the fused im2col runs on CUDA only")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (b, c, _, _) = l.shape().dims4()?;
        let dev = s.device().clone();
        let out = match s.dtype() {
            DType::F32 => CudaStorage::wrap_cuda_slice(self.run::<f32>(&dev, s, l)?, dev),
            DType::F16 => CudaStorage::wrap_cuda_slice(self.run::<f16>(&dev, s, l)?, dev),
            DType::BF16 => CudaStorage::wrap_cuda_slice(self.run::<bf16>(&dev, s, l)?, dev),
            other => bail!("im2col takes f32, f16 or bf16, not {other:?}"),
        };
        Ok((out, Shape::from((b, self.np, c * self.kh * self.kw))))
    }
}

fn lt_err(
    e: candle_core::cuda_backend::cudarc::cublaslt::result::CublasError,
) -> candle_core::Error {
    candle_core::Error::Msg(format!("cuBLASLt: {e:?}"))
}

/// Launches `im2col_*` filling `col` (`[b, np, cin*kh*kw]`, pixel-major) for output pixels
/// `p0 .. p0 + np`; `dims` is `[b, cin, h, w, kh, kw, stride, pad, wo, p0, np]`.
fn launch_im2col<T: DeviceRepr>(
    dev: &CudaDevice,
    dtype: DType,
    x: &candle_core::cuda_backend::cudarc::driver::CudaView<'_, T>,
    col: &CudaSlice<T>,
    dims: [usize; 11],
) -> Result<()> {
    let [b, cin, h, w, kh, kw, _, _, _, _, np] = dims;
    let k = cin * kh * kw;
    if b * np * k > col.len()
        || b * cin * h * w > x.len()
        || np * k >= i32::MAX as usize
        || b > 65_535
        || k.div_ceil(32) > 65_535
    {
        bail!("im2col: buffers or grid too small for {dims:?}");
    }
    let func = launch_fn(dev, &format!("im2col_{}", suffix(dtype)?))?;
    let stream = dev.cuda_stream();
    let mut launch = stream.launch_builder(&func);
    let args = dims.map(|v| v as i32);
    launch.arg(x).arg(col);
    for a in &args[1..] {
        launch.arg(a);
    }
    let cfg = LaunchConfig {
        grid_dim: (np.div_ceil(32) as u32, k.div_ceil(32) as u32, b as u32),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the kernel writes col[(b * np + p) * k + r] for p < np, r < k (checked against
    // col's length above) and reads x only at in-bounds (b, c, y, x) of the contiguous input,
    // whose length was checked too.
    unsafe { launch.launch(cfg) }.w()?;
    Ok(())
}

/// The sizes of a convolution: input `[b, cin, h, w]`, weight `[cout, cin, kh, kw]`, output
/// `ho x wo`.
pub(super) struct ConvDims {
    pub b: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
}

/// Checks that a convolution's input and weight fit (stride >= 1, kernel no larger than the
/// padded input) and returns its sizes.
fn conv_dims(x: &Layout, w: &Layout, stride: usize, pad: usize) -> Result<ConvDims> {
    let (b, cin, h, wd) = x.shape().dims4()?;
    let (cout, wcin, kh, kw) = w.shape().dims4()?;
    if wcin != cin || stride == 0 || h + 2 * pad < kh || wd + 2 * pad < kw {
        bail!(
            "conv: input {:?} does not fit weight {:?}",
            x.dims(),
            w.dims()
        );
    }
    Ok(ConvDims {
        b,
        cin,
        h,
        w: wd,
        cout,
        kh,
        kw,
        ho: (h + 2 * pad - kh) / stride + 1,
        wo: (wd + 2 * pad - kw) / stride + 1,
    })
}

/// The one dtype of an op's input, weight and optional bias (`what` names the op in the error).
fn common_dtype(
    x: &CudaStorage,
    w: &CudaStorage,
    bias: Option<(&CudaStorage, &Layout)>,
    what: &str,
) -> Result<DType> {
    if x.dtype() != w.dtype() || bias.is_some_and(|(b, _)| b.dtype() != w.dtype()) {
        bail!("{what}: input, weight and bias dtypes differ");
    }
    Ok(x.dtype())
}

/// Checks that an optional bias holds one value per output channel.
fn check_bias(bias: Option<(&CudaStorage, &Layout)>, cout: usize, what: &str) -> Result<()> {
    if let Some((_, l)) = bias
        && l.shape().elem_count() != cout
    {
        bail!("{what}: bias does not have {cout} values");
    }
    Ok(())
}

/// Implements `CustomOp2` (no third input) and `CustomOp3` (with one: a bias, or what `$third`
/// names) for an op with a `dispatch(x, weight, Option<third>)`; `$what` names it in the CPU
/// error.
macro_rules! weight_bias_op {
    ($ty:ty, $name:literal, $what:literal) => {
        weight_bias_op!($ty, $name, $what, "-bias");
    };
    ($ty:ty, $name:literal, $what:literal, $third:literal) => {
        impl CustomOp2 for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn cpu_fwd(
                &self,
                _: &CpuStorage,
                _: &Layout,
                _: &CpuStorage,
                _: &Layout,
            ) -> Result<(CpuStorage, Shape)> {
                bail!(concat!($what, " runs on CUDA only"))
            }

            fn cuda_fwd(
                &self,
                xs: &CudaStorage,
                xl: &Layout,
                ws: &CudaStorage,
                wl: &Layout,
            ) -> Result<(CudaStorage, Shape)> {
                self.dispatch((xs, xl), (ws, wl), None)
            }
        }

        impl CustomOp3 for $ty {
            fn name(&self) -> &'static str {
                concat!($name, $third)
            }

            fn cpu_fwd(
                &self,
                _: &CpuStorage,
                _: &Layout,
                _: &CpuStorage,
                _: &Layout,
                _: &CpuStorage,
                _: &Layout,
            ) -> Result<(CpuStorage, Shape)> {
                bail!(concat!($what, " runs on CUDA only"))
            }

            fn cuda_fwd(
                &self,
                xs: &CudaStorage,
                xl: &Layout,
                ws: &CudaStorage,
                wl: &Layout,
                bs: &CudaStorage,
                bl: &Layout,
            ) -> Result<(CudaStorage, Shape)> {
                self.dispatch((xs, xl), (ws, wl), Some((bs, bl)))
            }
        }
    };
}

weight_bias_op!(LinearOp, "pixelgen-linear", "the cuBLASLt linear");
weight_bias_op!(
    ShiftConvOp,
    "pixelgen-shift-conv",
    "the shifted convolution"
);

#[cfg(feature = "cudnn")]
mod cudnn;
#[cfg(feature = "cudnn")]
pub(super) use cudnn::{AlgoChoice, CudnnConvOp, plans as cudnn_plans};

/// One cuBLASLt handle (with its 32 MiB workspace on Hopper) per device.
fn blas_lt(dev: &CudaDevice) -> Result<std::sync::Arc<CudaBlasLT>> {
    use std::sync::{Arc, Mutex, OnceLock};
    type Handles = Mutex<Vec<(candle_core::cuda_backend::DeviceId, Arc<CudaBlasLT>)>>;
    static HANDLES: OnceLock<Handles> = OnceLock::new();
    let handles = HANDLES.get_or_init(|| Mutex::new(Vec::new()));
    let mut handles = match handles.lock() {
        Ok(h) => h,
        Err(p) => p.into_inner(),
    };
    if let Some((_, h)) = handles.iter().find(|(id, _)| *id == dev.id()) {
        return Ok(h.clone());
    }
    let h = Arc::new(CudaBlasLT::new(dev.cuda_stream()).map_err(lt_err)?);
    handles.push((dev.id(), h.clone()));
    Ok(h)
}

/// `x @ w^T (+ bias)` through cuBLASLt, the bias added in the GEMM's epilogue: x `[.., in]`
/// contiguous, w `[out, in]` contiguous, bias `[out]`.
pub(super) struct LinearOp;

impl LinearOp {
    fn run<T: CudaDType + DeviceRepr>(
        x: (&CudaStorage, &Layout),
        w: (&CudaStorage, &Layout),
        bias: Option<(&CudaStorage, &Layout)>,
    ) -> Result<(CudaStorage, Shape)>
    where
        CudaBlasLT: Matmul<T>,
    {
        let dims = x.1.dims();
        let (out_f, in_f) = w.1.shape().dims2()?;
        let Some((&last, lead)) = dims.split_last() else {
            bail!("linear: scalar input")
        };
        if last != in_f {
            bail!("linear: input has {last} features, the weight takes {in_f}");
        }
        let rows: usize = lead.iter().product();
        let dev = x.0.device().clone();
        let xs = contiguous_view::<T>(x.0, x.1, "linear input")?;
        let ws = contiguous_view::<T>(w.0, w.1, "linear weight")?;
        let bs = match bias {
            Some((s, l)) => {
                if l.shape().elem_count() != out_f {
                    bail!(
                        "linear: bias has {} values, not {out_f}",
                        l.shape().elem_count()
                    );
                }
                Some(contiguous_view::<T>(s, l, "linear bias")?)
            }
            None => None,
        };
        // SAFETY: uninitialised device memory; the kernel/GEMM below writes every element before
        // anything reads it.
        let mut out = unsafe { dev.alloc::<T>(rows * out_f)? };
        let cfg = MatmulConfig {
            transa: true,
            transb: false,
            transc: false,
            m: out_f as u64,
            n: rows as u64,
            k: in_f as u64,
            alpha: 1.0,
            lda: in_f as i64,
            ldb: in_f as i64,
            beta: 0.0,
            ldc: out_f as i64,
            stride_a: None,
            stride_b: None,
            stride_c: None,
            stride_bias: None,
            batch_size: None,
        };
        let lt = blas_lt(&dev)?;
        // SAFETY: column-major view of the row-major operands: A = w^T read as [in, out] with
        // lda = in, B = x^T as [in, rows] with ldb = in, D = out^T as [out, rows] with
        // ldc = out; every buffer holds exactly those sizes (checked above), bias `out` values.
        unsafe { lt.matmul(cfg, &ws, &xs, &mut out, bs.as_ref(), None) }.map_err(lt_err)?;
        let mut out_dims = dims.to_vec();
        if let Some(d) = out_dims.last_mut() {
            *d = out_f;
        }
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            Shape::from(out_dims),
        ))
    }

    fn dispatch(
        &self,
        x: (&CudaStorage, &Layout),
        w: (&CudaStorage, &Layout),
        bias: Option<(&CudaStorage, &Layout)>,
    ) -> Result<(CudaStorage, Shape)> {
        match common_dtype(x.0, w.0, bias, "linear")? {
            DType::F16 => Self::run::<f16>(x, w, bias),
            DType::BF16 => Self::run::<bf16>(x, w, bias),
            other => bail!("the cuBLASLt linear takes f16 or bf16, not {other:?}"),
        }
    }
}

/// A 2-D convolution (groups 1, dilation 1) writing NCHW: per range of output pixels, the
/// pixel-major im2col into a reused buffer, then one cuBLASLt "TN" GEMM per image
/// (`out[b, :, p0..] = w[cout, K] . col[b, np, K]^T`) straight into the output. The bias is
/// added by the caller.
pub(super) struct ConvOp {
    pub stride: usize,
    pub pad: usize,
    /// Largest column buffer in values (the kernel's 32-bit indexing, and memory).
    pub max_col: usize,
}

impl ConvOp {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        x: (&CudaStorage, &Layout),
        w: (&CudaStorage, &Layout),
    ) -> Result<(CudaStorage, Shape)>
    where
        CudaBlasLT: Matmul<T>,
    {
        let (s, p) = (self.stride, self.pad);
        let ConvDims {
            b,
            cin,
            h,
            w: wd,
            cout,
            kh,
            kw,
            ho,
            wo,
        } = conv_dims(x.1, w.1, s, p)?;
        let pixels = ho * wo;
        let k = cin * kh * kw;
        let dev = x.0.device().clone();
        let xs = contiguous_view::<T>(x.0, x.1, "conv input")?;
        let ws = contiguous_view::<T>(w.0, w.1, "conv weight")?;
        // SAFETY: uninitialised device memory; the kernel/GEMM below writes every element before
        // anything reads it.
        let mut out = unsafe { dev.alloc::<T>(b * cout * pixels)? };
        let lt = blas_lt(&dev)?;
        // Pixel ranges of a multiple of 32 (the im2col tile, and 16-byte aligned GEMM offsets).
        let chunk = ((self.max_col / (b * k).max(1)) / 32 * 32)
            .max(32)
            .min(pixels);
        // SAFETY: im2col writes each chunk's columns before the GEMM reads them.
        let col = unsafe { dev.alloc::<T>(b * k * chunk)? };
        let mut p0 = 0;
        while p0 < pixels {
            let np = chunk.min(pixels - p0);
            launch_im2col(
                &dev,
                x.0.dtype(),
                &xs,
                &col,
                [b, cin, h, wd, kh, kw, s, p, wo, p0, np],
            )?;
            let cfg = MatmulConfig {
                transa: true,
                transb: false,
                transc: false,
                m: np as u64,
                n: cout as u64,
                k: k as u64,
                alpha: 1.0,
                lda: k as i64,
                ldb: k as i64,
                beta: 0.0,
                ldc: pixels as i64,
                stride_a: Some((k * np) as i64),
                stride_b: Some(0),
                stride_c: Some((cout * pixels) as i64),
                stride_bias: None,
                batch_size: Some(b as i32),
            };
            let mut dst = out.slice_mut(p0..);
            // SAFETY: column-major views: A = col_b as [K, np] (lda = K, transposed, batch
            // stride np * K), B = w^T as [K, cout] (ldb = K, shared by the batch), D = out_b^T's
            // columns p0 .. p0 + np as [np, cout] with ldc = pixels (batch stride
            // cout * pixels): the last element written is at
            // (b - 1) * cout * pixels + (cout - 1) * pixels + p0 + np - 1 < b * cout * pixels.
            unsafe { lt.matmul(cfg, &col.slice(..), &ws, &mut dst, None, None) }.map_err(lt_err)?;
            p0 += np;
        }
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            Shape::from((b, cout, ho, wo)),
        ))
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "pixelgen-conv2d"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        bail!("the fused convolution runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        if xs.dtype() != ws.dtype() {
            bail!("conv: input and weight dtypes differ");
        }
        match xs.dtype() {
            DType::F16 => self.run::<f16>((xs, xl), (ws, wl)),
            DType::BF16 => self.run::<bf16>((xs, xl), (ws, wl)),
            other => bail!("the cuBLASLt convolution takes f16 or bf16, not {other:?}"),
        }
    }
}

/// A 3x3 stride-1 "same" convolution as nine shifted cuBLASLt GEMMs: x `[b, cin, h, w]`, the
/// weight tap-major `[cout, 9, cin]`, optional bias `[cout]`. f32 runs on TF32 tensor cores
/// (cuBLASLt's f32 compute type here), as PyTorch runs cuDNN convolutions by default.
pub(super) struct ShiftConvOp;

impl ShiftConvOp {
    fn run<T: CudaDType + DeviceRepr + ValidAsZeroBits>(
        x: (&CudaStorage, &Layout),
        w: (&CudaStorage, &Layout),
        bias: Option<(&CudaStorage, &Layout)>,
    ) -> Result<(CudaStorage, Shape)>
    where
        CudaBlasLT: Matmul<T>,
    {
        let (b, cin, h, wd) = x.1.shape().dims4()?;
        let (cout, taps, wcin) = w.1.shape().dims3()?;
        if taps != 9 || wcin != cin || h == 0 || wd == 0 {
            bail!(
                "shifted conv: input {:?} does not fit weight {:?}",
                x.1.dims(),
                w.1.dims()
            );
        }
        check_bias(bias, cout, "shifted conv")?;
        let dev = x.0.device().clone();
        let xs = contiguous_view::<T>(x.0, x.1, "conv input")?;
        let ws = contiguous_view::<T>(w.0, w.1, "conv weight")?;
        let name = suffix(x.0.dtype())?;
        let stream = dev.cuda_stream();
        let (hp, wp) = (h + 2, wd + 2);
        let xp = stream.alloc_zeros::<T>(b * hp * wp * cin).w()?;
        let pad = launch_fn(&dev, &format!("pad_nhwc_{name}"))?;
        let mut launch = stream.launch_builder(&pad);
        let (cin_i, h_i, w_i) = (cin as i32, h as i32, wd as i32);
        launch.arg(&xs).arg(&xp).arg(&cin_i).arg(&h_i).arg(&w_i);
        let cfg = LaunchConfig {
            grid_dim: (
                (h * wd).div_ceil(32) as u32,
                cin.div_ceil(32) as u32,
                b as u32,
            ),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: reads b * cin * h * w inputs (contiguous, checked) and writes inside the
        // b * (h + 2) * (w + 2) * cin padded buffer (interior pixels only).
        unsafe { launch.launch(cfg) }.w()?;

        // The output on the padded width: rows q = y * (w + 2) + x, the last row's two junk
        // columns left out so that every tap stays inside the padded image.
        let plane = h * wp;
        let m = plane - 2;
        // SAFETY: the nine GEMMs write rows 0 .. m of every plane before the crop reads them;
        // the crop reads only x < w, i.e. rows < m.
        let mut dpad = unsafe { dev.alloc::<T>(b * cout * plane)? };
        let lt = blas_lt(&dev)?;
        for tap in 0..9 {
            let (ky, kx) = (tap / 3, tap % 3);
            let cfg = MatmulConfig {
                transa: true,
                transb: false,
                transc: false,
                m: m as u64,
                n: cout as u64,
                k: cin as u64,
                alpha: 1.0,
                lda: cin as i64,
                ldb: (9 * cin) as i64,
                beta: if tap == 0 { 0.0 } else { 1.0 },
                ldc: plane as i64,
                stride_a: Some((hp * wp * cin) as i64),
                stride_b: Some(0),
                stride_c: Some((cout * plane) as i64),
                stride_bias: None,
                batch_size: Some(b as i32),
            };
            let a = xp.slice((ky * wp + kx) * cin..);
            let wtap = ws.slice(tap * cin..);
            // SAFETY: A reads rows ky * (w + 2) + kx + q, q < m, of each padded image:
            // the last is (h + 2) * (w + 2) - 1 for the largest tap, inside the image
            // (batch stride (h + 2) * (w + 2) * cin). B reads w[co, tap, 0 .. cin] (ldb = 9 cin).
            // D is b planes of cout * h * (w + 2) values, as allocated.
            unsafe { lt.matmul(cfg, &a, &wtap, &mut dpad, None, None) }.map_err(lt_err)?;
        }

        // SAFETY: the crop kernel writes every one of the b * cout * h * w outputs.
        let out = unsafe { dev.alloc::<T>(b * cout * h * wd)? };
        let crop = launch_fn(&dev, &format!("crop_bias_{name}"))?;
        let mut launch = stream.launch_builder(&crop);
        let bs = match bias {
            Some((s, l)) => Some(contiguous_view::<T>(s, l, "conv bias")?),
            None => None,
        };
        let has_bias = i32::from(bs.is_some());
        let (b_i, cout_i) = (b as i32, cout as i32);
        launch.arg(&dpad);
        match &bs {
            Some(bv) => launch.arg(bv),
            // Any valid pointer: the kernel does not read it without a bias.
            None => launch.arg(&ws),
        };
        launch
            .arg(&out)
            .arg(&b_i)
            .arg(&cout_i)
            .arg(&h_i)
            .arg(&w_i)
            .arg(&has_bias);
        let total = b * cout * h * wd;
        let cfg = LaunchConfig {
            grid_dim: (total.div_ceil(256).clamp(1, 1 << 20) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: reads dpad at rows < m of each plane and bias[c < cout]; writes `total`
        // outputs, the size of `out`.
        unsafe { launch.launch(cfg) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            Shape::from((b, cout, h, wd)),
        ))
    }

    fn dispatch(
        &self,
        x: (&CudaStorage, &Layout),
        w: (&CudaStorage, &Layout),
        bias: Option<(&CudaStorage, &Layout)>,
    ) -> Result<(CudaStorage, Shape)> {
        match common_dtype(x.0, w.0, bias, "shifted conv")? {
            DType::F32 => Self::run::<f32>(x, w, bias),
            DType::F16 => Self::run::<f16>(x, w, bias),
            DType::BF16 => Self::run::<bf16>(x, w, bias),
            other => bail!("the shifted convolution takes f32, f16 or bf16, not {other:?}"),
        }
    }
}
