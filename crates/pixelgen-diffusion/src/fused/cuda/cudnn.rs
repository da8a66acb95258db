//! Convolutions through cuDNN (feature `cudnn`) without per-call setup: the descriptors and
//! the algorithm of each convolution shape are made once per thread and device, and one
//! workspace per thread grows to the largest the chosen algorithms need.
//!
//! candle's own cuDNN path builds descriptors, asks the heuristics for an algorithm and
//! allocates (and zeroes) a fresh workspace on every call, with half-precision accumulation;
//! here the accumulation is f32 (PyTorch's choice), half and bf16 run on tensor cores and f32
//! on TF32 unless [`KernelOptions::tf32`](super::super::KernelOptions::tf32) is off.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::{result, sys};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr};
use candle_core::cuda_backend::{CudaDType, CudaDevice, DeviceId, WrapErr};
use candle_core::{
    CpuStorage, CudaStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Storage, bail,
};
use half::{bf16, f16};

use super::{ConvDims, check_bias, common_dtype, contiguous_view, conv_dims};

/// Largest workspace an algorithm may ask for (and the buffer the search gets). cuDNN's
/// implicit-precomputed GEMM needs ~4 bytes per input value (8 in f32): 1.1 GB for the VAE's
/// 1024²x256 f16 convolution; without it cuDNN falls back to kernels that measured 2-4x slower
/// than our GEMM path there (H100, 2026-11-26).
const WORKSPACE_CAP: usize = 2 << 30;

/// Smallest output (pixels) on which cuDNN's plain implicit GEMM is declined for our GEMM path.
const PLAIN_IMPLICIT_MAX_PIXELS: usize = 64 * 64;

/// How the algorithm of a new convolution shape is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(in crate::fused) enum AlgoChoice {
    /// cuDNN's heuristics (the same choice every run: reproducible pixels).
    Heuristic,
    /// Time every algorithm once (as PyTorch's `cudnn.benchmark`); the fastest may differ
    /// between runs, and with it the last bits of the output.
    Search,
}

/// A cuDNN convolution (groups 1, dilation 1, NCHW in and out) with an optional bias: as a
/// `CustomOp2` on (input, weight), as a `CustomOp3` on (input, weight, residual) it returns
/// `conv + bias + residual`. With `fuse` on and where the plan's algorithm allows
/// (the implicit precomputed GEMM), bias and residual are added in the convolution's epilogue
/// (`cudnnConvolutionBiasActivationForward`); otherwise the bias by `cudnnAddTensor`, and a
/// residual is declined (an error: the caller adds it).
pub(in crate::fused) struct CudnnConvOp {
    /// Stride of both axes.
    pub stride: usize,
    /// Zero padding of both axes.
    pub pad: usize,
    /// How a new shape's algorithm is chosen.
    pub choice: AlgoChoice,
    /// Whether f32 convolutions may use TF32 tensor cores.
    pub tf32: bool,
    /// Fewest output rows (batch x pixels) cuDNN takes: below, the GEMM path's cuBLASLt (which
    /// splits K on such skinny products) runs it.
    pub min_rows: usize,
    /// Whether bias and residual go into the convolution's epilogue
    /// (`cudnnConvolutionBiasActivationForward`) where the algorithm allows. Measured on an
    /// H100 (2026-11-26): VAE decode 1024² 4–6% faster, 512² f16 8% slower, UNet steps
    /// unchanged (`bench/speed-log.md`).
    pub fuse: bool,
    /// The bias `[cout]` (f32 or f16: cuDNN's bias add takes no bf16).
    pub bias: Option<candle_core::Tensor>,
}

/// Everything that picks a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    dtype: DType,
    dims: [usize; 8], // b, cin, h, w, cout, kh, kw, ho * wo
    stride: usize,
    pad: usize,
    choice: AlgoChoice,
    tf32: bool,
    min_rows: usize,
    fuse: bool,
}

impl Key {
    fn new(op: &CudnnConvOp, dtype: DType, d: &ConvDims) -> Self {
        Self {
            dtype,
            dims: [d.b, d.cin, d.h, d.w, d.cout, d.kh, d.kw, d.ho * d.wo],
            stride: op.stride,
            pad: op.pad,
            choice: op.choice,
            tf32: op.tf32,
            min_rows: op.min_rows,
            fuse: op.fuse,
        }
    }
}

struct TensorDesc(sys::cudnnTensorDescriptor_t);
struct FilterDesc(sys::cudnnFilterDescriptor_t);
struct ConvDesc(sys::cudnnConvolutionDescriptor_t);

impl Drop for TensorDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_tensor_descriptor` and destroyed only here.
        let _ = unsafe { result::destroy_tensor_descriptor(self.0) };
    }
}
impl Drop for FilterDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_filter_descriptor` and destroyed only here.
        let _ = unsafe { result::destroy_filter_descriptor(self.0) };
    }
}
impl Drop for ConvDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_convolution_descriptor` and destroyed only here.
        let _ = unsafe { result::destroy_convolution_descriptor(self.0) };
    }
}

fn tensor_4d(dt: sys::cudnnDataType_t, dims: [usize; 4]) -> Result<TensorDesc> {
    let d = TensorDesc(result::create_tensor_descriptor().map_err(err)?);
    let dims = dims.map(|v| v as i32);
    // SAFETY: `d` was just created and is alive.
    unsafe {
        result::set_tensor4d_descriptor(d.0, sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW, dt, dims)
    }
    .map_err(err)?;
    Ok(d)
}

/// One convolution shape's descriptors and algorithm.
struct Plan {
    x: TensorDesc,
    w: FilterDesc,
    y: TensorDesc,
    bias: TensorDesc,
    conv: ConvDesc,
    /// None: cuDNN has no fast algorithm for this shape and the caller uses its GEMM path.
    algo: Option<(sys::cudnnConvolutionFwdAlgo_t, sys::cudnnMathType_t)>,
    workspace: usize,
    /// Whether bias and residual go into the epilogue (cleared if cuDNN refuses it once).
    fuse: std::cell::Cell<bool>,
}

struct ActivationDesc(sys::cudnnActivationDescriptor_t);

impl Drop for ActivationDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_activation_descriptor` and destroyed only here.
        let _ = unsafe { sys::cudnnDestroyActivationDescriptor(self.0) };
    }
}

fn identity_activation() -> Result<ActivationDesc> {
    let d = ActivationDesc(result::create_activation_descriptor().map_err(err)?);
    // SAFETY: `d` was just created and is alive.
    unsafe {
        result::set_activation_descriptor(
            d.0,
            sys::cudnnActivationMode_t::CUDNN_ACTIVATION_IDENTITY,
            sys::cudnnNanPropagation_t::CUDNN_PROPAGATE_NAN,
            0.0,
        )
    }
    .map_err(err)?;
    Ok(d)
}

/// A thread's cuDNN handle on one device, its plans and its workspace.
struct State {
    handle: sys::cudnnHandle_t,
    plans: HashMap<Key, Plan>,
    workspace: Option<CudaSlice<u8>>,
    identity: ActivationDesc,
}

impl Drop for State {
    fn drop(&mut self) {
        self.plans.clear();
        // (`identity` is dropped after the handle; descriptors do not depend on it.)
        // SAFETY: the handle was created by `create_handle` and is destroyed only here.
        let _ = unsafe { result::destroy_handle(self.handle) };
    }
}

thread_local! {
    /// cuDNN handles are not thread safe: one per thread and device, as candle keeps them.
    static STATES: RefCell<HashMap<DeviceId, State>> = RefCell::new(HashMap::new());
}

fn err(e: result::CudnnError) -> candle_core::Error {
    candle_core::Error::Msg(format!("cuDNN: {e:?}"))
}

/// The chosen algorithm of every plan this thread made, for the benchmark's log:
/// `(dtype, [b, cin, h, w, cout, kh, kw], algorithm, workspace bytes)`.
pub(in crate::fused) fn plans() -> Vec<(DType, [usize; 7], String, usize)> {
    STATES.with(|s| {
        let mut out = Vec::new();
        for st in s.borrow().values() {
            for (k, p) in &st.plans {
                let d = k.dims;
                let algo = match p.algo {
                    Some((a, m)) => format!("{a:?} {m:?}"),
                    None => "declined (GEMM path)".into(),
                };
                out.push((
                    k.dtype,
                    [d[0], d[1], d[2], d[3], d[4], d[5], d[6]],
                    algo,
                    p.workspace,
                ));
            }
        }
        out
    })
}

fn data_type(dtype: DType) -> Result<sys::cudnnDataType_t> {
    Ok(match dtype {
        DType::F32 => sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
        DType::F16 => sys::cudnnDataType_t::CUDNN_DATA_HALF,
        DType::BF16 => sys::cudnnDataType_t::CUDNN_DATA_BFLOAT16,
        other => bail!("the cuDNN convolution takes f32, f16 or bf16, not {other:?}"),
    })
}

impl CudnnConvOp {
    /// Whether this thread already found that cuDNN declines this convolution (no fast
    /// algorithm): the caller then goes straight to its GEMM path instead of a failing op.
    pub(in crate::fused) fn declines(
        &self,
        x: &candle_core::Tensor,
        w: &candle_core::Tensor,
    ) -> bool {
        let candle_core::Device::Cuda(dev) = x.device() else {
            return false;
        };
        let Ok(d) = conv_dims(x.layout(), w.layout(), self.stride, self.pad) else {
            return false;
        };
        let key = Key::new(self, x.dtype(), &d);
        STATES.with(|states| {
            states
                .borrow()
                .get(&dev.id())
                .and_then(|st| st.plans.get(&key))
                .is_some_and(|plan| plan.algo.is_none())
        })
    }

    fn run<T: CudaDType + DeviceRepr>(
        &self,
        x: (&CudaStorage, &Layout),
        w: (&CudaStorage, &Layout),
        residual: Option<(&CudaStorage, &Layout)>,
    ) -> Result<(CudaStorage, Shape)> {
        let (s, p) = (self.stride, self.pad);
        let d = conv_dims(x.1, w.1, s, p)?;
        let bias_storage = self.bias.as_ref().map(|t| t.storage_and_layout());
        let bias = match &bias_storage {
            Some((st, l)) => match &**st {
                Storage::Cuda(c) => Some((c, *l)),
                _ => bail!("conv: the bias is not on the CUDA device"),
            },
            None => None,
        };
        check_bias(bias, d.cout, "conv")?;
        let out_shape = Shape::from((d.b, d.cout, d.ho, d.wo));
        if let Some((_, l)) = residual
            && l.shape() != &out_shape
        {
            bail!(
                "conv: residual {:?} is not the output's {out_shape:?}",
                l.dims()
            );
        }
        let dev = x.0.device().clone();
        let xs = contiguous_view::<T>(x.0, x.1, "conv input")?;
        let ws = contiguous_view::<T>(w.0, w.1, "conv weight")?;
        let bs = match bias {
            Some((st, l)) => Some(contiguous_view::<T>(st, l, "conv bias")?),
            None => None,
        };
        let zs = match residual {
            Some((st, l)) => Some(contiguous_view::<T>(st, l, "conv residual")?),
            None => None,
        };
        // SAFETY: uninitialised device memory; the convolution writes every element (beta 0)
        // before anything reads it.
        let mut out = unsafe { dev.alloc::<T>(out_shape.elem_count())? };
        let key = Key::new(self, x.0.dtype(), &d);
        let stream = dev.cuda_stream();
        STATES.with(|states| -> Result<()> {
            let mut states = states.borrow_mut();
            let st = match states.entry(dev.id()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    stream.context().bind_to_thread().w()?;
                    let handle = result::create_handle().map_err(err)?;
                    // SAFETY: a live handle and candle's stream of this device (the handle is
                    // dropped with the thread's state, never used on another stream).
                    unsafe { result::set_stream(handle, stream.cu_stream() as sys::cudaStream_t) }
                        .map_err(err)?;
                    v.insert(State {
                        handle,
                        plans: HashMap::new(),
                        workspace: None,
                        identity: identity_activation()?,
                    })
                }
            };
            let (xp, _gx) = xs.device_ptr(&stream);
            let (wp, _gw) = ws.device_ptr(&stream);
            let plan = match st.plans.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(self.plan(st.handle, &dev, key, (xp, wp, &mut out))?)
                }
            };
            let Some((algo, _)) = plan.algo else {
                bail!("cuDNN declined conv {:?}: no fast algorithm", key.dims)
            };
            let need = plan.workspace;
            if need > 0 && st.workspace.as_ref().is_none_or(|w| w.len() < need) {
                st.workspace = None;
                // SAFETY: scratch memory cuDNN writes before it reads.
                st.workspace = Some(unsafe { dev.alloc::<u8>(need)? });
            }
            let (one, zero) = (1f32, 0f32);
            let one_p = (&one) as *const f32 as *const std::ffi::c_void;
            let (yp, _gy) = out.device_ptr_mut(&stream);
            let yp = yp as *mut std::ffi::c_void;
            let (wsp, _gws) = match st.workspace.as_mut() {
                Some(w) if need > 0 => {
                    let (ptr, g) = w.device_ptr_mut(&stream);
                    (ptr as *mut std::ffi::c_void, Some(g))
                }
                _ => (std::ptr::null_mut(), None),
            };
            let bias_p = bs.as_ref().map(|b| b.device_ptr(&stream));
            let z_p = zs.as_ref().map(|z| z.device_ptr(&stream));
            let precomp = algo
                == sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
            let fusable = bias_p.is_some() && precomp && plan.fuse.get();
            if z_p.is_some() && !fusable {
                bail!(
                    "cuDNN: the residual of conv {:?} is added outside",
                    key.dims
                )
            }
            if let Some((bp, _)) = &bias_p
                && fusable
            {
                // y = conv(x) + alpha2 * z + bias; without a residual z is y itself, unread.
                let (alpha2, zp) = match &z_p {
                    Some((zp, _)) => (1f32, *zp as *const std::ffi::c_void),
                    None => (0f32, yp as *const std::ffi::c_void),
                };
                // SAFETY: the descriptors describe exactly these contiguous NCHW buffers (x,
                // w, and y/z of the output's shape, checked above; bias [1, cout, 1, 1]); the
                // workspace holds at least `need` bytes; all on candle's stream.
                let fused = unsafe {
                    result::convolution_bias_activation_forward(
                        st.handle,
                        one_p,
                        plan.x.0,
                        xp as *const std::ffi::c_void,
                        plan.w.0,
                        wp as *const std::ffi::c_void,
                        plan.conv.0,
                        algo,
                        wsp,
                        need,
                        (&alpha2) as *const f32 as *const std::ffi::c_void,
                        plan.y.0,
                        zp,
                        plan.bias.0,
                        *bp as *const std::ffi::c_void,
                        st.identity.0,
                        plan.y.0,
                        yp,
                    )
                };
                match fused {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        tracing::debug!("cuDNN fused bias/residual refused ({e:?}); separate adds");
                        plan.fuse.set(false);
                        if z_p.is_some() {
                            bail!(
                                "cuDNN: the residual of conv {:?} is added outside",
                                key.dims
                            )
                        }
                    }
                }
            }
            // SAFETY: as above.
            unsafe {
                result::convolution_forward(
                    st.handle,
                    one_p,
                    plan.x.0,
                    xp as *const std::ffi::c_void,
                    plan.w.0,
                    wp as *const std::ffi::c_void,
                    plan.conv.0,
                    algo,
                    wsp,
                    need,
                    (&zero) as *const f32 as *const std::ffi::c_void,
                    plan.y.0,
                    yp,
                )
            }
            .map_err(err)?;
            // y += bias, broadcast over [1, cout, 1, 1].
            if let Some((bp, _)) = &bias_p {
                // SAFETY: the bias holds `cout` values, as its descriptor says.
                unsafe {
                    sys::cudnnAddTensor(
                        st.handle,
                        one_p,
                        plan.bias.0,
                        *bp as *const std::ffi::c_void,
                        one_p,
                        plan.y.0,
                        yp,
                    )
                }
                .result()
                .map_err(err)?;
            }
            Ok(())
        })?;
        Ok((CudaStorage::wrap_cuda_slice(out, dev), out_shape))
    }

    /// Descriptors and algorithm for a new shape; `Search` times the algorithms on the real
    /// input and weight, writing into `out` (overwritten by the real launch afterwards).
    fn plan<T: DeviceRepr>(
        &self,
        handle: sys::cudnnHandle_t,
        dev: &CudaDevice,
        key: Key,
        (xp, wp, out): (u64, u64, &mut CudaSlice<T>),
    ) -> Result<Plan> {
        let [b, cin, h, wd, cout, kh, kw, _] = key.dims;
        let dt = data_type(key.dtype)?;
        let (ho, wo) = (
            (h + 2 * key.pad - kh) / key.stride + 1,
            (wd + 2 * key.pad - kw) / key.stride + 1,
        );
        let x = tensor_4d(dt, [b, cin, h, wd])?;
        let y = tensor_4d(dt, [b, cout, ho, wo])?;
        let bias = tensor_4d(dt, [1, cout, 1, 1])?;
        let w = FilterDesc(result::create_filter_descriptor().map_err(err)?);
        let conv = ConvDesc(result::create_convolution_descriptor().map_err(err)?);
        let (p, s) = (key.pad as i32, key.stride as i32);
        let math = match key.dtype {
            DType::F32 if !key.tf32 => sys::cudnnMathType_t::CUDNN_FMA_MATH,
            DType::F32 => sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
            _ => sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
        };
        // SAFETY: all three descriptors were just created and are alive.
        unsafe {
            result::set_filter4d_descriptor(
                w.0,
                dt,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
                [cout, cin, kh, kw].map(|v| v as i32),
            )
            .map_err(err)?;
            result::set_convolution2d_descriptor(
                conv.0,
                p,
                p,
                s,
                s,
                1,
                1,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            )
            .map_err(err)?;
            result::set_convolution_math_type(conv.0, math).map_err(err)?;
        }
        let declined = |x, w, y, bias, conv| Plan {
            x,
            w,
            y,
            bias,
            conv,
            algo: None,
            workspace: 0,
            fuse: std::cell::Cell::new(false),
        };
        if b * ho * wo < key.min_rows {
            return Ok(declined(x, w, y, bias, conv));
        }
        const N: usize = 8;
        let mut perf = [sys::cudnnConvolutionFwdAlgoPerf_t {
            algo: sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
            status: sys::cudnnStatus_t::CUDNN_STATUS_NOT_SUPPORTED,
            time: 0.0,
            memory: 0,
            determinism: sys::cudnnDeterminism_t::CUDNN_NON_DETERMINISTIC,
            mathType: math,
            reserved: [0; 3],
        }; N];
        let mut count = 0i32;
        match key.choice {
            AlgoChoice::Heuristic => {
                // SAFETY: live handle and descriptors; `perf` holds N results.
                unsafe {
                    result::get_convolution_forward_algorithm(
                        handle,
                        x.0,
                        w.0,
                        conv.0,
                        y.0,
                        N as i32,
                        &mut count,
                        perf.as_mut_ptr(),
                    )
                }
                .map_err(err)?;
            }
            AlgoChoice::Search => {
                let stream = dev.cuda_stream();
                // SAFETY: scratch memory the search writes before it reads.
                let mut scratch = unsafe { dev.alloc::<u8>(WORKSPACE_CAP)? };
                let (sp, _gs) = scratch.device_ptr_mut(&stream);
                let (yp, _gy) = out.device_ptr_mut(&stream);
                // SAFETY: x, w and y are the op's own buffers of the described shapes; the
                // scratch buffer holds WORKSPACE_CAP bytes; `perf` holds N results.
                unsafe {
                    sys::cudnnFindConvolutionForwardAlgorithmEx(
                        handle,
                        x.0,
                        xp as *const std::ffi::c_void,
                        w.0,
                        wp as *const std::ffi::c_void,
                        conv.0,
                        y.0,
                        yp as *mut std::ffi::c_void,
                        N as i32,
                        &mut count,
                        perf.as_mut_ptr(),
                        sp as *mut std::ffi::c_void,
                        WORKSPACE_CAP,
                    )
                }
                .result()
                .map_err(err)?;
            }
        }
        // The heuristics' list is best first, the search's sorted by time. Exact f32 takes only
        // FMA kernels, everything else only tensor-core ones.
        let exact = key.dtype == DType::F32 && !key.tf32;
        let fma = sys::cudnnMathType_t::CUDNN_FMA_MATH;
        let chosen = perf
            .iter()
            .take(count.clamp(0, N as i32) as usize)
            .find(|r| {
                r.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS
                    && r.memory <= WORKSPACE_CAP
                    && (r.mathType == fma) == exact
            });
        let plain = sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
        let algo = match chosen {
            Some(r) if !(r.algo == plain && ho * wo >= PLAIN_IMPLICIT_MAX_PIXELS) => {
                // The algorithm was rated with this math type: run it with the same.
                // SAFETY: the descriptor is alive.
                unsafe { result::set_convolution_math_type(conv.0, r.mathType) }.map_err(err)?;
                Some((r.algo, r.mathType))
            }
            _ => None,
        };
        let Some((algo_id, _)) = algo else {
            return Ok(declined(x, w, y, bias, conv));
        };
        // SAFETY: live handle and descriptors.
        let workspace = unsafe {
            result::get_convolution_forward_workspace_size(handle, x.0, w.0, conv.0, y.0, algo_id)
        }
        .map_err(err)?;
        Ok(Plan {
            x,
            w,
            y,
            bias,
            conv,
            algo,
            workspace,
            fuse: std::cell::Cell::new(key.fuse),
        })
    }

    fn dispatch(
        &self,
        x: (&CudaStorage, &Layout),
        w: (&CudaStorage, &Layout),
        residual: Option<(&CudaStorage, &Layout)>,
    ) -> Result<(CudaStorage, Shape)> {
        match common_dtype(x.0, w.0, residual, "cuDNN conv")? {
            DType::F32 => self.run::<f32>(x, w, residual),
            DType::F16 => self.run::<f16>(x, w, residual),
            DType::BF16 => self.run::<bf16>(x, w, residual),
            other => bail!("the cuDNN convolution takes f32, f16 or bf16, not {other:?}"),
        }
    }
}

weight_bias_op!(
    CudnnConvOp,
    "pixelgen-cudnn-conv",
    "the cuDNN convolution",
    "-residual"
);
