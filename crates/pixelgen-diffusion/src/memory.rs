//! How much memory a generation needs, how much a device has, and the check between them.
//!
//! A request that cannot fit must be refused *before* it allocates: on the CPU a failed
//! allocation aborts the process (`memory allocation of N bytes failed`, not catchable) or
//! gets it OOM-killed, and on a GPU it fails deep inside a kernel launch. [`estimate_peak`]
//! computes a conservative upper bound of the activation memory of one txt2img/img2img call
//! from the model configs alone (nothing is allocated), [`available_memory`] asks the device
//! what is free, and [`SdxlPipeline`](crate::SdxlPipeline) compares the two before it runs
//! (see [`MemoryBudget`] to set the figure it compares against).

use candle_core::{DType, Device};

use crate::config::{UNetConfig, VaeConfig};
use crate::error::{DiffusionError, Result};
use crate::fused::KernelOptions;
use crate::pipeline::GenerationParams;

/// Tokens of CLIP's context (the cross-attention keys).
const CONTEXT_TOKENS: u128 = 77;

/// Fixed allowance on top of the activations: text encoders, time embeddings, scheduler
/// state, allocator slack.
pub const OVERHEAD_BYTES: u64 = 64 << 20;

/// What [`estimate_peak`] found, by phase. All figures are bytes of activations; the weights
/// (already resident when a pipeline runs) are not included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The UNet's peak: the skip connections it keeps plus the largest convolution or
    /// attention of one call.
    pub unet_bytes: u64,
    /// The largest attention score matrix (with its softmax copies) of one UNet call.
    pub attention_bytes: u64,
    /// The VAE's peak (decoder at full image size; the encoder of img2img needs no more).
    pub vae_bytes: u64,
    /// What the check compares: `max(unet, vae) * 5 / 4 + OVERHEAD_BYTES`.
    pub peak_bytes: u64,
}

/// How the estimate models the device's kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstimateTarget {
    /// The UNet's dtype.
    pub unet_dtype: DType,
    /// The VAE's dtype (f32 when its config says `force_upcast`).
    pub vae_dtype: DType,
    /// Convolutions materialize a full im2col matrix (`k * k * cin` values per output
    /// pixel): candle's own CUDA/Metal convolution does. The CPU works in tiles and only
    /// copies the input (to NHWC); the fused CUDA path works in bounded chunks
    /// (`scratch_bytes`). `true` over-estimates safely on any device.
    pub full_im2col: bool,
    /// Scratch a convolution may take on top of its input and output when not
    /// `full_im2col` (the fused CUDA path's im2col chunk and its GEMM output).
    pub scratch_bytes: u64,
}

impl EstimateTarget {
    /// The target for models on `device` computing with `kernels`: the CPU's tiled
    /// convolution; on CUDA with the fused kernels on, chunked im2col (1 GiB of scratch);
    /// anywhere else (candle's CUDA or Metal convolution) a full im2col matrix.
    pub fn for_device(
        device: &Device,
        kernels: &KernelOptions,
        unet_dtype: DType,
        vae_dtype: DType,
    ) -> Self {
        let (full_im2col, scratch_bytes) = if device.is_cpu() {
            (false, 0)
        } else if kernels.fused_on(device) {
            // One f32 column chunk and its GEMM output.
            (false, (crate::fused::IM2COL_MAX as u64) * 4 * 2)
        } else {
            (true, 0)
        };
        Self {
            unet_dtype,
            vae_dtype,
            full_im2col,
            scratch_bytes,
        }
    }
}

/// A conservative estimate (an upper bound, not an exact figure) of the peak activation memory
/// of one txt2img or img2img call with `params` on a model with these configs. Pure
/// arithmetic: nothing is allocated, invalid configs give a finite figure, and overflowing
/// sizes saturate at `u64::MAX`.
///
/// With `rows = batch * 2` under classifier-free guidance (guidance > 1 and no guidance
/// embedding), else `batch`, `d` the UNet's dtype size, and UNet level `i` at latent size
/// `h_i x w_i` (`h_0 = height / vae_scale`, halved rounding up per down block) with
/// `c_i = block_out_channels[i]`:
///
/// * **skip connections** the down path keeps for the up path:
///   `sum_i (layers_i + 1) * rows * c_i * h_i * w_i * d`;
/// * **convolution** at level `i` (the widest input is an up block's concatenation,
///   `cin = 2 * max(c_{i-1}, c_i, c_{i+1})`): `rows * h_i * w_i * d * (cin * (K + 2) + 4 * c_i)`
///   where `K = k * k = 9` for a full im2col matrix ([`EstimateTarget::full_im2col`]), else 1
///   (the input copy) plus [`EstimateTarget::scratch_bytes`];
/// * **attention** at a cross-attention level with `heads_i` heads and `T = h_i * w_i`
///   tokens, on the reference path (scores materialized, flash attention is not assumed):
///   the self-attention score matrix `rows * heads_i * T^2` elements, held at once as the
///   matmul output in `d` plus two f32 copies (scaled, softmax): `(8 + d)` bytes each, plus the
///   cross-attention scores `rows * heads_i * T * 77 * (8 + d)`, plus the transformer's token
///   tensors `rows * T * 24 * c_i * d` (q, k, v, output, GEGLU's 8c and 4c, residuals);
/// * UNet peak = skip connections + the largest convolution or attention of any level.
///
/// The VAE (dtype size `v`, `batch` images) at decoder level `r` (`H_r = h_0 * 2^r`, the
/// last level is the full image) with `cmax` the widest of the level's and the previous
/// level's channels: convolution `batch * H_r * W_r * v * cmax * (K + 6)` (+ scratch); its mid-block
/// attention at latent size is single-head: `batch * T^2 * (8 + v) + batch * T * 6 * c * v`.
///
/// The two phases do not overlap (the UNet's activations are freed before decoding), so the
/// result is `max(UNet, VAE) * 5/4 + OVERHEAD_BYTES` (25 % for tensors the formula does not
/// name). Measured against the peak RSS of the tiny test model in `docs/reliability.md`.
pub fn estimate_peak(
    unet: &UNetConfig,
    vae: &VaeConfig,
    params: &GenerationParams,
    target: EstimateTarget,
) -> MemoryEstimate {
    let scale = vae.scale_factor().max(1) as u128;
    let lh = (params.height as u128).div_ceil(scale);
    let lw = (params.width as u128).div_ceil(scale);
    let batch = params.batch.max(1) as u128;
    let cfg = params.guidance_scale > 1.0 && unet.time_cond_proj_dim.is_none();
    let rows = if cfg { 2 * batch } else { batch };
    let d = target.unet_dtype.size_in_bytes() as u128;
    let v = target.vae_dtype.size_in_bytes() as u128;
    let taps: u128 = if target.full_im2col { 9 } else { 1 };
    let scratch = target.scratch_bytes as u128;

    // UNet.
    let ch: Vec<u128> = unet.block_out_channels.iter().map(|&c| c as u128).collect();
    let n = ch.len();
    let layers = unet
        .layers_per_block
        .expand(n, "layers_per_block")
        .unwrap_or_else(|_| vec![3; n]);
    // Unknown head counts: as many heads as channels, the most a level can have.
    let heads = unet
        .heads_per_block()
        .unwrap_or_else(|_| unet.block_out_channels.clone());
    let (mut h, mut w) = (lh, lw);
    let mut skips: u128 = 0;
    let mut transient: u128 = 0;
    let mut attention: u128 = 0;
    for i in 0..n {
        let px = h * w;
        let c = ch[i];
        let widest = [
            i.checked_sub(1).map(|j| ch[j]),
            Some(c),
            ch.get(i + 1).copied(),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(c);
        let cin = 2 * widest;
        skips += (layers.get(i).copied().unwrap_or(3) as u128 + 1) * rows * c * px * d;
        let conv = rows * px * d * (cin * (taps + 2) + 4 * c) + scratch;
        let down_cross = unet
            .down_block_types
            .get(i)
            .is_some_and(|t| t.contains("CrossAttn"));
        let up_cross = unet
            .up_block_types
            .get(n - 1 - i)
            .is_some_and(|t| t.contains("CrossAttn"));
        let mid = i + 1 == n && unet.mid_block_type.is_some();
        let attn = if down_cross || up_cross || mid {
            let heads = heads.get(i).copied().unwrap_or(c as usize).max(1) as u128;
            let scores = rows * heads * px * px * (8 + d);
            let cross = rows * heads * px * CONTEXT_TOKENS * (8 + d);
            attention = attention.max(scores);
            scores + cross + rows * px * 24 * c * d
        } else {
            0
        };
        transient = transient.max(conv).max(attn);
        h = h.div_ceil(2);
        w = w.div_ceil(2);
    }
    let unet_bytes = skips + transient;

    // VAE decoder (the encoder of img2img is its mirror at no larger sizes).
    let vch: Vec<u128> = vae
        .block_out_channels
        .iter()
        .rev()
        .map(|&c| c as u128)
        .collect();
    let mut vae_bytes: u128 = 0;
    let (mut h, mut w) = (lh, lw);
    for r in 0..vch.len() {
        let px = h * w;
        let cmax = vch[r].max(r.checked_sub(1).map_or(0, |j| vch[j]));
        let conv = batch * px * v * cmax * (taps + 6) + scratch;
        let attn = if r == 0 && vae.mid_block_add_attention {
            batch * px * px * (8 + v) + batch * px * 6 * cmax * v
        } else {
            0
        };
        vae_bytes = vae_bytes.max(conv).max(attn);
        h *= 2;
        w *= 2;
    }
    // The output image, its f32 copy and the clamped [0, 1] copy.
    vae_bytes += batch * 3 * (params.height as u128) * (params.width as u128) * 4 * 3;

    let peak = unet_bytes.max(vae_bytes) * 5 / 4 + OVERHEAD_BYTES as u128;
    let sat = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
    MemoryEstimate {
        unet_bytes: sat(unet_bytes),
        attention_bytes: sat(attention),
        vae_bytes: sat(vae_bytes),
        peak_bytes: sat(peak),
    }
}

/// Which memory figure a pipeline checks a request's [`estimate_peak`] against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MemoryBudget {
    /// Ask the device before each call ([`available_memory`]); when it cannot tell (Metal, an
    /// unreadable `/proc`), the check is skipped with a warning.
    #[default]
    Device,
    /// A fixed number of bytes (tests, or a share of the device kept for the game itself).
    Bytes(u64),
    /// No check (at your own risk: a request that does not fit aborts the process).
    Unlimited,
}

/// Bytes free for new allocations on `device`, or `None` when the device cannot tell.
///
/// * CPU: `MemAvailable` of `/proc/meminfo` (or `MemFree + Buffers + Cached` on kernels
///   without it), capped by the memory cgroup limit of the process (v2 or v1: limit minus
///   usage, inactive page cache not counted; what a container's OOM killer enforces). `None`
///   where `/proc/meminfo` is unreadable (not Linux).
/// * CUDA (feature `cuda`): the driver's free memory of the device's context
///   (`cuMemGetInfo`).
/// * Metal: `None`.
pub fn available_memory(device: &Device) -> Result<Option<u64>> {
    match device {
        Device::Cpu => Ok(cpu_available()),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => {
            let cuda = device.as_cuda_device()?;
            let (free, _total) = cuda
                .cuda_stream()
                .context()
                .mem_get_info()
                .map_err(|e| candle_core::Error::Cuda(Box::new(e)))?;
            Ok(Some(free as u64))
        }
        #[allow(unreachable_patterns)]
        _ => Ok(None),
    }
}

fn cpu_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let host = parse_meminfo(&meminfo)?;
    let cgroup = cgroup_available();
    Some(cgroup.map_or(host, |c| c.min(host)))
}

/// `MemAvailable` in bytes, or `MemFree + Buffers + Cached` when absent (Linux < 3.14).
pub(crate) fn parse_meminfo(text: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            kib.checked_mul(1024)
        })
    };
    field("MemAvailable").or_else(|| {
        Some(field("MemFree")? + field("Buffers").unwrap_or(0) + field("Cached").unwrap_or(0))
    })
}

/// What the memory cgroup of the process still allows (v2 `memory.max`, v1
/// `memory.limit_in_bytes`) minus what it uses, not counting inactive page cache (which the
/// kernel reclaims before it OOM-kills), if it has a limit.
fn cgroup_available() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut best: Option<u64> = None;
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (base, files) = if controllers.is_empty() {
            ("/sys/fs/cgroup", CGROUP_V2)
        } else if controllers.split(',').any(|c| c == "memory") {
            ("/sys/fs/cgroup/memory", CGROUP_V1)
        } else {
            continue;
        };
        // The process's own folder, or the mount's root where a container mounts its cgroup.
        let own = std::path::Path::new(base).join(path.trim().trim_start_matches('/'));
        let found = cgroup_dir_available(&own, files)
            .or_else(|| cgroup_dir_available(std::path::Path::new(base), files));
        if let Some(a) = found {
            best = Some(best.map_or(a, |b| b.min(a)));
        }
    }
    best
}

/// The limit, usage and `memory.stat` inactive-file key of cgroup v2 and v1.
const CGROUP_V2: [&str; 3] = ["memory.max", "memory.current", "inactive_file"];
const CGROUP_V1: [&str; 3] = [
    "memory.limit_in_bytes",
    "memory.usage_in_bytes",
    "total_inactive_file",
];

fn cgroup_dir_available(dir: &std::path::Path, [max, current, inactive]: [&str; 3]) -> Option<u64> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let max: u64 = read(max)?.trim().parse().ok()?; // v2 "max" (no limit) ends here
    let current: u64 = read(current)?.trim().parse().ok()?;
    let inactive = read("memory.stat")
        .and_then(|stat| {
            stat.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == inactive).then(|| v.trim().parse::<u64>().ok())?
            })
        })
        .unwrap_or(0);
    Some(max.saturating_sub(current.saturating_sub(inactive)))
}

/// Errors with [`DiffusionError::OutOfMemory`] when `estimate` does not fit `budget` on
/// `device`. `what` names the request (e.g. "1024x1024 txt2img, batch 1").
pub(crate) fn check(
    estimate: &MemoryEstimate,
    budget: MemoryBudget,
    device: &Device,
    what: String,
) -> Result<()> {
    let name = match device.location() {
        candle_core::DeviceLocation::Cpu => "the CPU (system RAM)".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("CUDA GPU {gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("Metal GPU {gpu_id}"),
    };
    let (available, device_name) = match budget {
        MemoryBudget::Unlimited => return Ok(()),
        MemoryBudget::Bytes(b) => (b, format!("the pipeline's memory budget on {name}")),
        MemoryBudget::Device => match available_memory(device)? {
            Some(b) => (b, name),
            None => {
                tracing::warn!(
                    needed = estimate.peak_bytes,
                    "cannot tell the free memory of {device:?}: running without a memory check"
                );
                return Ok(());
            }
        },
    };
    if estimate.peak_bytes <= available {
        return Ok(());
    }
    Err(DiffusionError::OutOfMemory {
        what,
        needed: estimate.peak_bytes,
        available,
        device: device_name,
    })
}

/// `bytes` as a short human figure (`1.5 GiB`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = bytes as f64;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{x:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_prefers_mem_available_and_falls_back() {
        let modern = "MemTotal: 100 kB\nMemFree: 10 kB\nMemAvailable:   50 kB\nCached: 5 kB\n";
        assert_eq!(parse_meminfo(modern), Some(50 * 1024));
        let old = "MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 1 kB\nCached: 5 kB\n";
        assert_eq!(parse_meminfo(old), Some(16 * 1024));
        assert_eq!(parse_meminfo("garbage"), None);
    }

    #[test]
    fn cgroup_limits_count_usage_but_not_inactive_page_cache() {
        let dir = std::env::temp_dir().join(format!("pixelgen-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |f: &str, v: &str| std::fs::write(dir.join(f), v).unwrap();
        write("memory.max", "1000\n");
        write("memory.current", "700\n");
        write(
            "memory.stat",
            "anon 400\ninactive_file 200\nactive_file 100\n",
        );
        assert_eq!(cgroup_dir_available(&dir, CGROUP_V2), Some(500));
        write("memory.max", "max\n");
        assert_eq!(cgroup_dir_available(&dir, CGROUP_V2), None);
        write("memory.limit_in_bytes", "2000\n");
        write("memory.usage_in_bytes", "2500\n");
        write("memory.stat", "inactive_file 1\ntotal_inactive_file 100\n");
        assert_eq!(cgroup_dir_available(&dir, CGROUP_V1), Some(0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_cpu_reports_its_available_memory() {
        let free = available_memory(&Device::Cpu).unwrap().unwrap();
        assert!(free > 0);
    }

    #[test]
    fn bytes_read_as_humans_write_them() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
    }
}
