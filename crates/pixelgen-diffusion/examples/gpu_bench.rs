//! Full-size SDXL base with random weights on the GPU: per-step UNet time, text encoding, VAE
//! decode (f16 and f32), whole pipelines and peak GPU memory, plus a correctness check (the tiny
//! fixture model on the device in f16 and f32 against the CPU in f32).
//!
//! ```text
//! cargo build --release --features cuda -p pixelgen-diffusion --example gpu_bench
//! target/release/examples/gpu_bench --device cuda --iters 10
//! ```
//! Prints human-readable lines and machine-readable `RESULT name key=value ...` lines, in the
//! format of `bench/diffusers_sdxl_bench.py`. Exits with status 1 if a check or section failed.
//! `--model tiny --device cpu` runs every section on the tiny fixture config in seconds (a smoke
//! test of the benchmark itself).
//!
//! The `PIXELGEN_*` environment variables (`PIXELGEN_CONV`, `PIXELGEN_TF32`, `PIXELGEN_LINEAR`,
//! `PIXELGEN_CUDNN_MIN_ROWS`, `PIXELGEN_CUDNN_FUSE`) become the models' [`KernelOptions`]
//! here, once ([`KernelOptions::from_env`]); `--kernels` picks the kernels.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use clap::Parser;
use pixelgen_diffusion::clip::ClipTextModel;
use pixelgen_diffusion::fused::{
    self, CUDNN_MIN_ROWS, ConvBackend, GroupNorm, KernelOptions, Kernels, LinearBackend,
};
use pixelgen_diffusion::profile;
use pixelgen_diffusion::{
    AutoencoderKl, ClipTokenizer, Control, DiffusionError, ForwardOptions, GenerationParams,
    MemoryBudget, RandomWeights, ReferenceAttention, SchedulerKind, SdxlConfigs, SdxlPipeline,
    SdxlTextEncoders, SeededNoise, SetParams, SharedAttention, UNet2DConditionModel,
    UNetConditioning, count_non_finite,
};

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "SDXL on candle: GPU timings with random weights and a correctness check")]
struct Args {
    /// `cuda` (device 0) or `cpu`.
    #[arg(long, default_value = "cuda")]
    device: String,
    /// Weight dtype of the UNet and text encoders: f16, bf16 or f32.
    #[arg(long, default_value = "f16")]
    dtype: String,
    /// `base` (SDXL base 1.0, published configs) or `tiny` (the test fixture's configs).
    #[arg(long, default_value = "base")]
    model: String,
    /// Timed iterations per measurement (the median is reported).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// UNet shapes, `resolution x batch`.
    #[arg(long, default_value = "1024x2,512x2,512x1,1024x1")]
    shapes: String,
    /// VAE decode and pipeline sizes (first: the CFG pipeline's, second: the no-CFG one's).
    #[arg(long, default_value = "1024,512")]
    sizes: String,
    /// Sections to run: check, kernels, profile, unet, clip, vae, pipe, throughput, and
    /// (only when named) set.
    #[arg(
        long,
        default_value = "check,kernels,profile,unet,clip,vae,pipe,throughput"
    )]
    only: String,
    /// Implementation of the hot spots: `fused` (our CUDA kernels), `fused-no-flash`, or
    /// `reference` (candle's ops only). The `kernels` and `profile` sections compare all three.
    #[arg(long, default_value = "fused")]
    kernels: String,
    /// The tiny diffusers folder used for the correctness check and as tokenizer source.
    #[arg(long)]
    fixture: Option<PathBuf>,
}

/// Samples the GPU's used memory with `nvidia-smi` in the background and keeps the maximum.
struct GpuMemory {
    child: Child,
    current: Arc<AtomicU64>,
    max: Arc<AtomicU64>,
    idle: u64,
}

impl GpuMemory {
    fn start() -> Option<Self> {
        let mut child = Command::new("nvidia-smi")
            .args([
                "--query-gpu=memory.used",
                "--format=csv,noheader,nounits",
                "-i",
                "0",
                "-lms",
                "20",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdout = child.stdout.take()?;
        let current = Arc::new(AtomicU64::new(0));
        let max = Arc::new(AtomicU64::new(0));
        let (c, m) = (current.clone(), max.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if let Ok(v) = line.trim().parse::<u64>() {
                    c.store(v, Ordering::Relaxed);
                    m.fetch_max(v, Ordering::Relaxed);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let idle = current.load(Ordering::Relaxed);
        Some(Self {
            child,
            current,
            max,
            idle,
        })
    }

    fn settle() {
        std::thread::sleep(Duration::from_millis(80));
    }

    fn reset(&self) {
        Self::settle();
        self.max
            .store(self.current.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// (peak used MiB since the last reset, peak minus the used memory before this process made its context)
    fn peak(&self) -> (u64, u64) {
        Self::settle();
        let m = self.max.load(Ordering::Relaxed);
        (m, m.saturating_sub(self.idle))
    }
}

impl Drop for GpuMemory {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Bench {
    args: Args,
    device: Device,
    dtype: DType,
    configs: SdxlConfigs,
    fixture: PathBuf,
    mem: Option<GpuMemory>,
    failures: usize,
    /// The options every model and kernel call here starts from (`--kernels` and the
    /// environment).
    opts: KernelOptions,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// max |a - b| / max |b| over all values (f64 on the host).
fn rel_err(a: &Tensor, b: &Tensor) -> AnyResult<f64> {
    let a: Vec<f64> = a
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    let b: Vec<f64> = b
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    if a.len() != b.len() {
        return Err(format!("{} values vs {}", a.len(), b.len()).into());
    }
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(
            0.0,
            |m: f64, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        );
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    Ok(if scale > 0.0 { diff / scale } else { diff })
}

fn abs_max(t: &Tensor) -> AnyResult<f64> {
    let v: f32 = t
        .to_dtype(DType::F32)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar()?;
    Ok(f64::from(v))
}

impl Bench {
    fn want(&self, section: &str) -> bool {
        self.args.only.split(',').any(|s| s.trim() == section)
    }

    fn tag(&self) -> String {
        // The convolution backend is named when it is not our GEMM path (the earlier logs').
        let mut conv = match self.opts.conv {
            ConvBackend::Gemm => String::new(),
            ConvBackend::Cudnn => "_cudnn".into(),
            ConvBackend::CudnnSearch => "_cudnnsearch".into(),
        };
        if !conv.is_empty() && self.opts.cudnn_min_rows != CUDNN_MIN_ROWS {
            conv += &format!("_minrows{}", self.opts.cudnn_min_rows);
        }
        if !conv.is_empty() && self.opts.cudnn_fuse {
            conv += "_fuse";
        }
        format!(
            "candle_{}{conv}_{:?}",
            kernels_name(self.opts.kernels),
            self.dtype
        )
        .to_lowercase()
    }

    fn sync(&self) -> AnyResult<()> {
        self.device.synchronize()?;
        Ok(())
    }

    fn reset_peak(&self) {
        if let Some(m) = &self.mem {
            m.reset();
        }
    }

    fn peak_fields(&self) -> String {
        match &self.mem {
            Some(m) => {
                let (used, over) = m.peak();
                format!(" peak_used_mib={used} peak_over_idle_mib={over}")
            }
            None => String::new(),
        }
    }

    /// Times `f` (synchronised before and after each call): median and more, in ms.
    fn time(
        &self,
        warmup: usize,
        iters: usize,
        mut f: impl FnMut() -> AnyResult<Tensor>,
    ) -> AnyResult<(Vec<f64>, Tensor)> {
        let mut out = None;
        for _ in 0..warmup {
            out = Some(f()?);
        }
        self.sync()?;
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters.max(1) {
            let start = Instant::now();
            let o = f()?;
            self.sync()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
            out = Some(o);
        }
        let out = out.ok_or("no iteration ran")?;
        Ok((times, out))
    }

    fn result(&self, name: &str, times: &[f64], extra: &str) {
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
        println!(
            "RESULT {}_{name} median_ms={:.2} min_ms={:.2} mean_ms={:.2} n={}{}{extra}",
            self.tag(),
            median(times),
            min,
            mean,
            times.len(),
            self.peak_fields()
        );
    }

    fn section(&mut self, name: &str, f: impl FnOnce(&mut Self) -> AnyResult<()>) {
        if !self.want(name) {
            return;
        }
        println!("== {name}");
        let start = Instant::now();
        if let Err(e) = f(self) {
            println!("ERROR section {name}: {e}");
            self.failures += 1;
        }
        println!("== {name} done in {:.1}s", start.elapsed().as_secs_f64());
    }

    fn build_unet(&self) -> AnyResult<UNet2DConditionModel> {
        let start = Instant::now();
        let vb = RandomWeights::new(1).var_builder(self.dtype, &self.device);
        let unet =
            UNet2DConditionModel::new(&self.configs.unet, vb)?.with_kernel_options(self.opts);
        self.sync()?;
        println!(
            "unet built in {:.1}s (random {:?} weights on the device)",
            start.elapsed().as_secs_f64(),
            self.dtype
        );
        Ok(unet)
    }

    fn build_clips(&self) -> AnyResult<(ClipTextModel, ClipTextModel)> {
        let c1 = ClipTextModel::new(
            &self.configs.text_encoder,
            false,
            RandomWeights::new(2).var_builder(self.dtype, &self.device),
        )?
        .with_kernel_options(self.opts);
        let c2 = ClipTextModel::new(
            &self.configs.text_encoder_2,
            true,
            RandomWeights::new(3).var_builder(self.dtype, &self.device),
        )?
        .with_kernel_options(self.opts);
        Ok((c1, c2))
    }

    fn build_vae(&self, dtype: DType) -> AnyResult<AutoencoderKl> {
        let vb = RandomWeights::new(4).var_builder(dtype, &self.device);
        Ok(AutoencoderKl::new(&self.configs.vae, vb)?.with_kernel_options(self.opts))
    }

    fn unet_inputs(&self, res: usize, batch: usize) -> AnyResult<(Tensor, Tensor, Tensor, Tensor)> {
        let f = self.configs.vae.scale_factor();
        let ctx_dim = match &self.configs.unet.cross_attention_dim {
            pixelgen_diffusion::config::PerBlock::One(d) => *d,
            pixelgen_diffusion::config::PerBlock::Each(v) => v.first().copied().unwrap_or(2048),
        };
        let pooled = self.configs.text_encoder_2.projection_dim;
        let d = &self.device;
        let lat =
            Tensor::randn(0f32, 1f32, (batch, 4, res / f, res / f), d)?.to_dtype(self.dtype)?;
        let ctx = Tensor::randn(0f32, 1f32, (batch, 77, ctx_dim), d)?.to_dtype(self.dtype)?;
        let te = Tensor::randn(0f32, 1f32, (batch, pooled), d)?.to_dtype(self.dtype)?;
        let r = res as f32;
        let ids: Vec<f32> = (0..batch).flat_map(|_| [r, r, 0.0, 0.0, r, r]).collect();
        let tid = Tensor::from_vec(ids, (batch, 6), d)?;
        Ok((lat, ctx, te, tid))
    }

    fn check(&mut self) -> AnyResult<()> {
        let cpu = SdxlPipeline::load(&self.fixture, None, DType::F32, &Device::Cpu)?;
        let native = cpu.configs().unet.sample_size.unwrap_or(8) * cpu.configs().vae.scale_factor();
        // The native size runs the small-image paths; 128x128 puts the VAE's last blocks on the
        // shifted-GEMM convolutions; tiling switches every padded conv to circular padding.
        for (size, tiling) in [(native, false), (128, false), (128, true)] {
            let params = GenerationParams {
                prompt: "a pixel-art knight with a red cape".into(),
                negative_prompt: Some("blurry".into()),
                width: size,
                height: size,
                steps: 4,
                guidance_scale: 5.0,
                tiling,
                ..Default::default()
            };
            let go = |pipe: &SdxlPipeline| {
                pipe.txt2img(&params, &mut SeededNoise::new(42), &mut |_| {
                    Control::Continue
                })
            };
            let reference = go(&cpu)?;
            for (dtype, tol) in [(DType::F32, 1e-4), (DType::F16, 1e-2)] {
                // f32 is checked exact (no TF32); the TF32 convolutions are checked in `kernels`.
                let opts = KernelOptions {
                    tf32: dtype != DType::F32,
                    ..self.opts
                };
                let pipe = SdxlPipeline::load_with(&self.fixture, None, dtype, &self.device, opts)?;
                let out = go(&pipe)?;
                let lat = rel_err(&out.latents, &reference.latents)?;
                let img = rel_err(&out.image, &reference.image)?;
                let pass = lat <= tol && img <= tol;
                println!(
                    "RESULT check_{}_{:?}_vs_cpu_f32 latents_rel_err={lat:.2e} image_rel_err={img:.2e} tol={tol:.0e} pass={pass} size={size} tiling={tiling} steps=4 cfg=5",
                    device_name(&self.device),
                    dtype
                );
                if !pass {
                    self.failures += 1;
                }
            }
        }
        Ok(())
    }

    /// The fused kernels against the reference ops at SDXL shapes: error and time of each.
    fn kernels(&mut self) -> AnyResult<()> {
        let d = self.device.clone();
        let modes = [Kernels::Reference, Kernels::FusedNoFlash, Kernels::Fused];
        let rnd = |shape: &[usize], dtype: DType| -> AnyResult<Tensor> {
            Ok(Tensor::randn(0f32, 1f32, shape, &d)?.to_dtype(dtype)?)
        };
        // (name, x shape, groups, dtype)
        let norms: [(&str, Vec<usize>, DType); 4] = [
            ("unet_128x128x320_b2", vec![2, 320, 128, 128], DType::F16),
            ("unet_32x32x1280_b2", vec![2, 1280, 32, 32], DType::F16),
            ("vae_1024x1024x128", vec![1, 128, 1024, 1024], DType::F32),
            ("vae_1024x1024x128", vec![1, 128, 1024, 1024], DType::F16),
        ];
        for (name, shape, dtype) in norms {
            let c = shape[1];
            let x = (rnd(&shape, dtype)? * 3.0)?.affine(1.0, 0.5)?;
            let gn = GroupNorm::from_tensors(
                (rnd(&[c], dtype)?.affine(0.1, 1.0))?,
                rnd(&[c], dtype)?,
                32,
                1e-6,
            )?;
            let mut outs = Vec::new();
            for mode in modes.iter().take(2) {
                let o = self.opts.with_kernels(*mode);
                let (times, out) =
                    self.time(2, self.args.iters, || Ok(gn.forward_silu(&x, &o)?))?;
                self.result_plain(
                    &format!("gn_silu_{name}_{dtype:?}_{}", kernels_name(*mode)).to_lowercase(),
                    &times,
                );
                outs.push(out);
            }
            self.report_err(
                &format!("gn_silu_{name}_{dtype:?}").to_lowercase(),
                &outs[1],
                &outs[0],
                dtype,
            )?;
        }
        // (name, batch, cin, cout, size, kernel, stride, dtype)
        let convs = [
            ("unet_128_320", 2, 320, 320, 128, 3, 1, self.dtype),
            ("unet_64_640", 2, 640, 640, 64, 3, 1, self.dtype),
            ("unet_32_1280", 2, 1280, 1280, 32, 3, 1, self.dtype),
            ("unet_b1_64_320", 1, 320, 320, 64, 3, 1, self.dtype),
            ("unet_b1_32_640", 1, 640, 640, 32, 3, 1, self.dtype),
            ("unet_b1_16_1280", 1, 1280, 1280, 16, 3, 1, self.dtype),
            ("unet_down_128_320", 2, 320, 320, 128, 3, 2, self.dtype),
            ("unet_1x1_64_960_640", 2, 960, 640, 64, 1, 1, self.dtype),
            ("vae_1024_128", 1, 128, 128, 1024, 3, 1, DType::F16),
            ("vae_1024_128", 1, 128, 128, 1024, 3, 1, DType::F32),
            ("vae_512_512", 1, 512, 512, 512, 3, 1, DType::F16),
            ("vae_256_512", 1, 512, 512, 256, 3, 1, DType::F16),
            ("vae_512_256", 1, 256, 256, 512, 3, 1, DType::F16),
            ("vae_1024_256_128", 1, 256, 128, 1024, 3, 1, DType::F16),
            ("vae_512_512", 1, 512, 512, 512, 3, 1, DType::F32),
        ];
        // Reference (candle's conv), our GEMM path, and cuDNN (heuristic / timed) when built in.
        let mut conv_modes = vec![
            (Kernels::Reference, ConvBackend::Gemm, "reference"),
            (Kernels::Fused, ConvBackend::Gemm, "gemm"),
        ];
        if cfg!(feature = "cudnn") {
            conv_modes.push((Kernels::Fused, ConvBackend::Cudnn, "cudnn"));
            conv_modes.push((Kernels::Fused, ConvBackend::CudnnSearch, "cudnn_search"));
        }
        for (name, b, cin, cout, size, k, stride, dtype) in convs {
            let cfg = candle_nn::Conv2dConfig {
                padding: k / 2,
                stride,
                ..Default::default()
            };
            let conv = candle_nn::Conv2d::new(
                (rnd(&[cout, cin, k, k], dtype)? * (1.0 / ((cin * k * k) as f64).sqrt()))?,
                Some(rnd(&[cout], dtype)?),
                cfg,
            );
            let x = rnd(&[b, cin, size, size], dtype)?;
            let mut outs = Vec::new();
            for (mode, backend, label) in &conv_modes {
                let o = KernelOptions {
                    kernels: *mode,
                    conv: *backend,
                    ..self.opts
                };
                let (times, out) = self.time(2, self.args.iters.min(5), || {
                    Ok(fused::conv2d(&conv, &x, &o)?)
                })?;
                let oh = (size + 2 * (k / 2) - k) / stride + 1;
                let tflops = 2.0 * (b * cout * oh * oh * cin * k * k) as f64
                    / (median(&times) * 1e-3)
                    / 1e12;
                self.result_plain(
                    &format!("conv_{name}_k{k}s{stride}_{dtype:?}_{label}_tflops={tflops:.1}")
                        .to_lowercase(),
                    &times,
                );
                outs.push(out);
            }
            // Every output against the same convolution in exact f32 (our GEMM path, TF32 off):
            // candle's own cuDNN convolution (the reference column in `cudnn` builds)
            // accumulates half precision in half precision, so it is no reference for errors.
            let exact = exact_conv(&conv, &x)?.to_dtype(dtype)?;
            // Large f32 3x3 convolutions run on TF32 tensor cores (`KernelOptions::tf32`), as
            // PyTorch's cuDNN does by default: held to 5e-3 instead of 1e-4. cuDNN takes TF32
            // for every f32 convolution, and so may candle's.
            for ((_, _, label), out) in conv_modes.iter().zip(&outs) {
                let tf32 = dtype == DType::F32
                    && (*label != "gemm" || (k == 3 && stride == 1 && size * size >= 4096));
                let t = if tf32 { "_tf32" } else { "" };
                // candle's cuDNN convolution (the reference column of `cudnn` builds) sums f16
                // in f16: measured 1-2.6e-2 on these shapes (H100, 2026-11-26).
                let candle_cudnn_half =
                    cfg!(feature = "cudnn") && *label == "reference" && dtype != DType::F32;
                self.report_err_tol(
                    &format!("conv_{name}_k{k}s{stride}_{dtype:?}_{label}{t}").to_lowercase(),
                    out,
                    &exact,
                    if candle_cudnn_half {
                        5e-2
                    } else if tf32 {
                        5e-3
                    } else if dtype == DType::F32 {
                        1e-4
                    } else {
                        1e-2
                    },
                )?;
            }
        }
        // A ResNet block's last convolution with its skip connection (cuDNN: bias and residual
        // in the epilogue), against the same in exact f32.
        {
            let (c, size, dtype) = (256, 512, DType::F16);
            let cfg = candle_nn::Conv2dConfig {
                padding: 1,
                ..Default::default()
            };
            let conv = candle_nn::Conv2d::new(
                (rnd(&[c, c, 3, 3], dtype)? * (1.0 / ((c * 9) as f64).sqrt()))?,
                Some(rnd(&[c], dtype)?),
                cfg,
            );
            let x = rnd(&[1, c, size, size], dtype)?;
            let r = rnd(&[1, c, size, size], dtype)?;
            let o = self.opts.with_kernels(Kernels::Fused);
            let (times, out) = self.time(2, self.args.iters.min(5), || {
                Ok(fused::conv2d_residual(&conv, None, &x, &r, &o)?)
            })?;
            self.result_plain(
                &format!("conv_residual_vae_512_256_f16_{:?}", o.conv).to_lowercase(),
                &times,
            );
            let exact = (exact_conv(&conv, &x)? + r.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
            self.report_err_tol("conv_residual_vae_512_256_f16", &out, &exact, 1e-2)?;
        }
        for line in fused::cudnn_plans() {
            println!("cudnn plan: {line}");
        }
        // (name, rows, in, out)
        let linears = [
            ("ff_in_8192x640x5120", 8192, 640, 5120),
            ("ff_out_8192x2560x640", 8192, 2560, 640),
            ("ff_in_2048x1280x10240", 2048, 1280, 10240),
            ("qkv_2048x1280x1280", 2048, 1280, 1280),
        ];
        for (name, rows, fin, fout) in linears {
            let l = candle_nn::Linear::new(
                (rnd(&[fout, fin], self.dtype)? * (1.0 / (fin as f64).sqrt()))?,
                Some(rnd(&[fout], self.dtype)?),
            );
            let x = rnd(&[2, rows / 2, fin], self.dtype)?;
            let mut outs = Vec::new();
            for (label, linear) in [
                ("candle", LinearBackend::Candle),
                ("cublaslt", LinearBackend::CublasLt),
            ] {
                let o = KernelOptions {
                    kernels: Kernels::Fused,
                    linear,
                    ..self.opts
                };
                let (times, out) =
                    self.time(2, self.args.iters, || Ok(fused::linear(&l, &x, &o)?))?;
                let tflops = 2.0 * (rows * fin * fout) as f64 / (median(&times) * 1e-3) / 1e12;
                self.result_plain(&format!("linear_{name}_{label}_tflops={tflops:.1}"), &times);
                outs.push(out);
            }
            self.report_err(&format!("linear_{name}"), &outs[1], &outs[0], self.dtype)?;
        }
        let h = rnd(&[2, 4096, 10240], self.dtype)?;
        let mut outs = Vec::new();
        for mode in modes.iter().take(2) {
            let o = self.opts.with_kernels(*mode);
            let (times, out) = self.time(2, self.args.iters, || Ok(fused::geglu(&h, &o)?))?;
            self.result_plain(
                &format!("geglu_2x4096x10240_{}", kernels_name(*mode)),
                &times,
            );
            outs.push(out);
        }
        self.report_err("geglu_2x4096x10240", &outs[1], &outs[0], self.dtype)?;
        // (name, batch, lq, lk, heads)
        let attns = [
            ("self_4096_h10", 2, 4096, 4096, 10),
            ("cross_4096x77_h10", 2, 4096, 77, 10),
            ("self_1024_h20", 2, 1024, 1024, 20),
            ("cross_1024x77_h20", 2, 1024, 77, 20),
            ("self_256_h20_b1", 1, 256, 256, 20),
        ];
        for (name, b, lq, lk, heads) in attns {
            let c = heads * 64;
            let q = rnd(&[b, lq, c], self.dtype)?;
            let k = rnd(&[b, lk, c], self.dtype)?;
            let v = rnd(&[b, lk, c], self.dtype)?;
            let mut outs = Vec::new();
            let attn_modes = [
                Kernels::Reference,
                Kernels::FusedNoFlash,
                Kernels::FusedWmma,
                Kernels::Fused,
            ];
            for mode in attn_modes {
                let o = self.opts.with_kernels(mode);
                let (times, out) = self.time(2, self.args.iters, || {
                    Ok(fused::attention(&q, &k, &v, heads, 64, &o)?)
                })?;
                // 4 * b * heads * lq * lk * 64 FLOP (two matrix products).
                let tflops =
                    4.0 * (b * heads * lq * lk * 64) as f64 / (median(&times) * 1e-3) / 1e12;
                self.result_plain(
                    &format!("attn_{name}_{}_tflops={tflops:.1}", kernels_name(mode)),
                    &times,
                );
                outs.push(out);
            }
            self.report_err(
                &format!("attn_{name}_no_flash"),
                &outs[1],
                &outs[0],
                self.dtype,
            )?;
            for (label, i) in [("flash_wmma", 2), ("flash_mma", 3)] {
                self.report_err(
                    &format!("attn_{name}_{label}"),
                    &outs[i],
                    &outs[0],
                    self.dtype,
                )?;
            }
            // Fused QKV: q, k and v as strided views of one [b, l, 3c] projection.
            if lq == lk {
                let qkv = Tensor::cat(&[&q, &k, &v], 2)?;
                let strided = fused::attention(
                    &qkv.narrow(2, 0, c)?,
                    &qkv.narrow(2, c, c)?,
                    &qkv.narrow(2, 2 * c, c)?,
                    heads,
                    64,
                    &self.opts.with_kernels(Kernels::Fused),
                )?;
                self.report_err(
                    &format!("attn_{name}_flash_mma_strided"),
                    &strided,
                    &outs[0],
                    self.dtype,
                )?;
            }
        }
        Ok(())
    }

    /// Prints `RESULT kernel_NAME median_ms=...`.
    fn result_plain(&self, name: &str, times: &[f64]) {
        println!(
            "RESULT kernel_{name} median_ms={:.3} min_ms={:.3} n={}",
            median(times),
            times.iter().copied().fold(f64::INFINITY, f64::min),
            times.len()
        );
    }

    /// Compares a fused output with the reference one; counts a failure above the tolerance
    /// of the dtype (f32 1e-4, half types 1e-2, relative to the reference's largest value).
    fn report_err(
        &mut self,
        name: &str,
        fused: &Tensor,
        reference: &Tensor,
        dtype: DType,
    ) -> AnyResult<()> {
        let tol = if dtype == DType::F32 { 1e-4 } else { 1e-2 };
        self.report_err_tol(name, fused, reference, tol)
    }

    /// [`Self::report_err`] with an explicit tolerance.
    fn report_err_tol(
        &mut self,
        name: &str,
        fused: &Tensor,
        reference: &Tensor,
        tol: f64,
    ) -> AnyResult<()> {
        let err = rel_err(fused, reference)?;
        let bad = count_non_finite(fused)?;
        let pass = err <= tol && bad == 0;
        println!(
            "RESULT check_kernel_{name} rel_err={err:.2e} tol={tol:.0e} nonfinite={bad} pass={pass}"
        );
        if !pass {
            self.failures += 1;
        }
        Ok(())
    }

    /// Stage breakdown of one UNet step (1024², batch 2) and one VAE decode (1024², f16) for
    /// each implementation; every stage synchronises, so the sums exceed the unprofiled totals.
    fn profile(&mut self) -> AnyResult<()> {
        let unet = self.build_unet()?;
        let (lat, ctx, te, tid) = self.unet_inputs(1024, 2)?;
        let cond = UNetConditioning {
            encoder_hidden_states: &ctx,
            text_embeds: &te,
            time_ids: &tid,
        };
        let vae = self.build_vae(DType::F16)?;
        let f = self.configs.vae.scale_factor();
        let z = Tensor::randn(0f32, 1f32, (1, 4, 1024 / f, 1024 / f), &self.device)?
            .to_dtype(DType::F16)?;
        for mode in [Kernels::Reference, Kernels::FusedWmma, Kernels::Fused] {
            // The same weights, computing with `mode`.
            let unet = unet
                .clone()
                .with_kernel_options(self.opts.with_kernels(mode));
            let vae = vae
                .clone()
                .with_kernel_options(self.opts.with_kernels(mode));
            let run_unet = || -> AnyResult<Tensor> { Ok(unet.forward(&lat, 500.0, &cond)?) };
            let run_vae = || -> AnyResult<Tensor> { Ok(vae.decode(&z)?) };
            type Run<'a> = &'a dyn Fn() -> AnyResult<Tensor>;
            let runs: [(&str, Run); 2] = [
                ("unet_1024_b2", &run_unet),
                ("vae_decode_1024_f16", &run_vae),
            ];
            for (what, run) in runs {
                run()?;
                self.sync()?;
                profile::take();
                profile::set_enabled(true);
                let start = Instant::now();
                let out = run();
                self.sync()?;
                let total = start.elapsed().as_secs_f64() * 1e3;
                profile::set_enabled(false);
                out?;
                let mut stages = profile::take();
                stages.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
                let sum: f64 = stages.iter().map(|s| s.total_ms).sum();
                let mode_name = kernels_name(mode);
                println!(
                    "RESULT profile_{what}_{mode_name}_total ms={total:.2} staged_ms={sum:.2}"
                );
                for s in stages {
                    println!(
                        "RESULT profile_{what}_{mode_name}_{} ms={:.2} calls={} share={:.1}%",
                        s.name.replace('+', "_"),
                        s.total_ms,
                        s.calls,
                        100.0 * s.total_ms / total
                    );
                }
            }
        }
        Ok(())
    }

    fn unet(&mut self) -> AnyResult<()> {
        let unet = self.build_unet()?;
        let shapes: Vec<(usize, usize)> = self
            .args
            .shapes
            .split(',')
            .filter_map(|s| {
                let (r, b) = s.trim().split_once('x')?;
                Some((r.parse().ok()?, b.parse().ok()?))
            })
            .collect();
        for (res, batch) in shapes {
            self.reset_peak();
            let (lat, ctx, te, tid) = self.unet_inputs(res, batch)?;
            let cond = UNetConditioning {
                encoder_hidden_states: &ctx,
                text_embeds: &te,
                time_ids: &tid,
            };
            let first = Instant::now();
            unet.forward(&lat, 500.0, &cond)?;
            self.sync()?;
            let first = first.elapsed().as_secs_f64();
            let (times, out) = self.time(self.args.warmup, self.args.iters, || {
                Ok(unet.forward(&lat, 500.0, &cond)?)
            })?;
            let bad = count_non_finite(&out)?;
            self.result(
                &format!("unet_step_{res}_b{batch}"),
                &times,
                &format!(
                    " first_call_s={first:.2} nonfinite={bad} absmax={:.3e}",
                    abs_max(&out)?
                ),
            );
            // Back to back: no synchronisation between calls, as in a denoising loop.
            self.sync()?;
            let start = Instant::now();
            for _ in 0..self.args.iters.max(1) {
                unet.forward(&lat, 500.0, &cond)?;
            }
            self.sync()?;
            println!(
                "RESULT {}_unet_step_{res}_b{batch}_backtoback ms_per_iter={:.2} n={}",
                self.tag(),
                start.elapsed().as_secs_f64() * 1e3 / self.args.iters.max(1) as f64,
                self.args.iters.max(1)
            );
        }
        Ok(())
    }

    fn clip(&mut self) -> AnyResult<()> {
        let (c1, c2) = self.build_clips()?;
        let vocab = self
            .configs
            .text_encoder
            .vocab_size
            .min(self.configs.text_encoder_2.vocab_size);
        for batch in [2usize, 1] {
            self.reset_peak();
            let ids: Vec<u32> = (0..batch * 77)
                .map(|i| ((i * 7919) % (vocab - 1)) as u32)
                .collect();
            let ids = Tensor::from_vec(ids, (batch, 77), &self.device)?;
            let (times, out) = self.time(self.args.warmup, self.args.iters, || {
                let o1 = c1.forward(&ids)?;
                let o2 = c2.forward(&ids)?;
                let ctx = Tensor::cat(&[o1.hidden_from_end(1)?, o2.hidden_from_end(1)?], 2)?;
                Ok(ctx)
            })?;
            let bad = count_non_finite(&out)?;
            self.result(
                &format!("text_encode_b{batch}"),
                &times,
                &format!(" nonfinite={bad}"),
            );
        }
        Ok(())
    }

    fn vae(&mut self) -> AnyResult<()> {
        let f = self.configs.vae.scale_factor();
        let sf = self.configs.vae.scaling_factor;
        for dtype in [DType::F16, DType::BF16, DType::F32] {
            let vae = self.build_vae(dtype)?;
            for res in self.sizes()? {
                self.reset_peak();
                let lat = Tensor::randn(0f32, 1f32, (1, 4, res / f, res / f), &self.device)?
                    .to_dtype(dtype)?;
                let z = lat.affine(1.0 / sf, 0.0)?;
                let (times, out) =
                    self.time(self.args.warmup.min(2), self.args.iters.min(5), || {
                        Ok(vae.decode(&z)?)
                    })?;
                let bad = count_non_finite(&out)?;
                let start = Instant::now();
                count_non_finite(&out)?;
                let check_ms = start.elapsed().as_secs_f64() * 1e3;
                self.result(
                    &format!("vae_decode_{res}_{dtype:?}").to_lowercase(),
                    &times,
                    &format!(" nonfinite={bad} finite_check_ms={check_ms:.2}"),
                );
            }
        }
        Ok(())
    }

    fn sizes(&self) -> AnyResult<Vec<usize>> {
        let v: Vec<usize> = self
            .args
            .sizes
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--sizes: {e}"))?;
        if v.len() != 2 {
            return Err("--sizes takes two sizes, e.g. 1024,512".into());
        }
        Ok(v)
    }

    /// The whole pipeline on random weights: f16 (or `--dtype`) UNet and text encoders, f32
    /// VAE, the fixture's tokenizers.
    fn build_pipe(&self) -> AnyResult<SdxlPipeline> {
        let unet = self.build_unet()?;
        let (c1, c2) = self.build_clips()?;
        let tokenizers = (
            ClipTokenizer::from_folder(self.fixture.join("tokenizer"))?,
            ClipTokenizer::from_folder(self.fixture.join("tokenizer_2"))?,
        );
        let text = SdxlTextEncoders::from_parts(tokenizers, (c1, c2), true, &self.device);
        let vae = self.build_vae(DType::F32)?;
        Ok(SdxlPipeline::from_parts(
            self.configs.clone(),
            text,
            unet,
            vae,
            self.dtype,
            &self.device,
        ))
    }

    /// Sprite throughput and the fast samplers: images per minute for batches at 512² with
    /// the "fast" preset's sampler (LCM, 8 steps, CFG 1.5), the 1-step turbo image at 512² and
    /// a 4-step LCM image at 1024² (no CFG); f32 VAE, text encoding included.
    fn throughput(&mut self) -> AnyResult<()> {
        let pipe = self.build_pipe()?;
        let spacing = pixelgen_diffusion::TimestepSpacing::Trailing;
        let runs = [
            (
                "turbo_1step_512",
                512,
                1,
                0.0,
                SchedulerKind::EulerAncestral,
                1,
            ),
            ("lcm_4step_1024", 1024, 4, 0.0, SchedulerKind::Lcm, 1),
            ("fast_8step_512_b1", 512, 8, 1.5, SchedulerKind::Lcm, 1),
            ("fast_8step_512_b4", 512, 8, 1.5, SchedulerKind::Lcm, 4),
            ("fast_8step_512_b8", 512, 8, 1.5, SchedulerKind::Lcm, 8),
        ];
        for (name, res, steps, guidance, sampler, batch) in runs {
            let params = GenerationParams {
                prompt: "pixel art knight, 16-bit sprite".into(),
                width: res,
                height: res,
                steps,
                guidance_scale: guidance,
                sampler: Some(sampler),
                timestep_spacing: Some(spacing),
                batch,
                ..Default::default()
            };
            self.reset_peak();
            let (times, out) = self.time(1, 5, || {
                let out = pipe.txt2img(&params, &mut SeededNoise::new(3), &mut |_| {
                    Control::Continue
                })?;
                Ok(out.image)
            })?;
            let per_min = 60_000.0 / median(&times) * batch as f64;
            self.result(
                &format!("throughput_{name}"),
                &times,
                &format!(
                    " images={batch} images_per_min={per_min:.1} nonfinite={}",
                    count_non_finite(&out)?
                ),
            );
        }
        Ok(())
    }

    /// Reference attention (sprite sets, `SdxlPipeline::generate_set`): an 8-frame set with
    /// frame 0 as the reference at strength 1 against 8 independent txt2img calls (one after
    /// another), 30 Euler steps with CFG 5 at the first `--sizes` size, text encoding and f32
    /// VAE included, timed alternately in the same process (1 warm-up of each, then
    /// `min(--iters, 3)` of each). Then one UNet call of the set's batch (8 frames x 2 halves)
    /// at strengths 1, 0.5 and off, and the shared attention of these kernels against the
    /// reference ops (512², 3 frames x 2 halves, strengths 1 and 0.5).
    /// Times `a` and `b` on `pipe` one after the other (synchronised), after one warm-up of
    /// each, `--iters` times up to `most`: their times in ms and `a`'s last output.
    fn alternate(
        &self,
        pipe: &SdxlPipeline,
        a: &dyn Fn(&SdxlPipeline) -> AnyResult<Tensor>,
        b: &dyn Fn(&SdxlPipeline) -> AnyResult<Tensor>,
        most: usize,
        names: (&str, &str),
    ) -> AnyResult<(Vec<f64>, Vec<f64>, Tensor)> {
        let timed = |f: &dyn Fn(&SdxlPipeline) -> AnyResult<Tensor>| {
            self.sync()?;
            let start = Instant::now();
            let out = f(pipe)?;
            self.sync()?;
            Ok::<_, Box<dyn std::error::Error>>((start.elapsed().as_secs_f64() * 1e3, out))
        };
        let (wa, mut last) = timed(a)?;
        let (wb, _) = timed(b)?;
        println!("  warm-up: {} {wa:.0} ms, {} {wb:.0} ms", names.0, names.1);
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        for run in 0..self.args.iters.clamp(1, most) {
            let (x, out) = timed(a)?;
            let (y, _) = timed(b)?;
            println!("  run {run}: {} {x:.0} ms, {} {y:.0} ms", names.0, names.1);
            ta.push(x);
            tb.push(y);
            last = out;
        }
        Ok((ta, tb, last))
    }

    /// The model calls of a 16-tile Wang tileset at default settings (pixelgen's
    /// `TilesetRecipe`): two seamless base textures (txt2img with circular padding) and 14
    /// transition tiles (inpaint at strength 0.9 of a composed tile, the band around the
    /// terrain boundary masked), 30 Euler steps at guidance 5 each; against 16 plain
    /// txt2img calls (16 single sprites) in the same run. The pixel work around the calls
    /// (compose, palette, seams) is CPU milliseconds and not timed here.
    fn tileset(&mut self) -> AnyResult<()> {
        let res = self.sizes()?[0];
        let pipe = self.build_pipe()?;
        let params = default_params("grass, top-down pixel art game tile", res);
        // A 32 px tile's Wang mask: corners NE and SE water, a 4 px band around the
        // boundary repainted, the outer pixel kept (as pixelgen makes it).
        let tile = 32u32;
        let band = image::RgbaImage::from_fn(tile, tile, |x, y| {
            let inside = x > 0 && y > 0 && x < tile - 1 && y < tile - 1;
            let near = (x as i32 - tile as i32 / 2).abs() <= 4;
            image::Rgba(if inside && near {
                [255; 4]
            } else {
                [0, 0, 0, 255]
            })
        });
        let source = image::RgbaImage::from_fn(tile, tile, |x, y| {
            image::Rgba(if x < tile / 2 {
                [60 + (x * y % 7) as u8 * 10, 160, 70, 255]
            } else {
                [40, 90, 200 + (x * y % 5) as u8 * 10, 255]
            })
        });
        let image = pixelgen_diffusion::rgba_to_tensor(&source, res, res, [255; 3], &self.device)?;
        let mask = pixelgen_diffusion::mask_from_rgba(&band, res, res, &self.device)?;
        let inpaint = pixelgen_diffusion::InpaintParams {
            strength: 0.9,
            mask_blur: 0.0,
        };
        let run_set = |pipe: &SdxlPipeline| -> AnyResult<Tensor> {
            let mut last = None;
            for terrain in ["grass", "water"] {
                let p = GenerationParams {
                    prompt: format!("{terrain}, top-down pixel art game tile"),
                    tiling: true,
                    ..params.clone()
                };
                last = Some(
                    pipe.txt2img(&p, &mut SeededNoise::new(7), &mut |_| Control::Continue)?
                        .image,
                );
            }
            let p = GenerationParams {
                prompt: "grass and water, top-down pixel art game tile".into(),
                ..params.clone()
            };
            for k in 0..14u64 {
                let out = pipe.inpaint(
                    &p,
                    &image,
                    &mask,
                    &inpaint,
                    &mut SeededNoise::new(k),
                    &mut |_| Control::Continue,
                )?;
                last = Some(out.image);
            }
            last.ok_or_else(|| "no tiles".into())
        };
        let run_singles = |pipe: &SdxlPipeline| -> AnyResult<Tensor> {
            let mut last = None;
            for k in 0..16u64 {
                last = Some(
                    pipe.txt2img(&params, &mut SeededNoise::new(k), &mut |_| {
                        Control::Continue
                    })?
                    .image,
                );
            }
            last.ok_or_else(|| "no sprites".into())
        };
        let (t_set, t_one, out) =
            self.alternate(&pipe, &run_set, &run_singles, 2, ("wang set", "16 singles"))?;
        let extra = format!(
            " tiles=16 calls=2txt2img_tiling+14inpaint res={res} steps=30 cfg=5 strength=0.9 nonfinite={}",
            count_non_finite(&out)?
        );
        self.result("tileset_wang16_30step", &t_set, &extra);
        self.result("tileset_16singles_txt2img_30step", &t_one, &extra);
        println!(
            "RESULT {}_tileset_wang16 set_ms={:.0} singles_ms={:.0} ratio={:.3}",
            self.tag(),
            median(&t_set),
            median(&t_one),
            median(&t_set) / median(&t_one)
        );
        Ok(())
    }

    fn set(&mut self) -> AnyResult<()> {
        let sizes = self.sizes()?;
        let res = sizes[0];
        let frames = 8usize;
        let mut pipe = self.build_pipe()?;
        let params = default_params("pixel art knight, 16-bit sprite", res);
        let prompts: Vec<String> = (0..frames)
            .map(|k| format!("pixel art knight, 16-bit sprite, walk frame {k}"))
            .collect();
        let set = SetParams::first_frame(prompts.clone());
        let est = pipe.estimate_set_memory(&params, &set);
        println!(
            "set memory estimate: peak {} MiB (unet {} MiB, attention {} MiB)",
            est.peak_bytes >> 20,
            est.unet_bytes >> 20,
            est.attention_bytes >> 20
        );
        match pipe.check_set_memory(&params, &set) {
            Ok(()) => {}
            Err(e @ DiffusionError::OutOfMemory { .. }) => {
                println!("NOTE the memory check refused the set ({e}); timing it unchecked");
                pipe = pipe.with_memory_budget(MemoryBudget::Unlimited);
            }
            Err(e) => return Err(e.into()),
        }
        let run_set = |pipe: &SdxlPipeline| -> AnyResult<Tensor> {
            let out = pipe.generate_set(&params, &set, &mut SeededNoise::new(7), &mut |_| {
                Control::Continue
            })?;
            Ok(out.image)
        };
        let run_singles = |pipe: &SdxlPipeline| -> AnyResult<Tensor> {
            let mut last = None;
            for prompt in &prompts {
                let p = GenerationParams {
                    prompt: prompt.clone(),
                    ..params.clone()
                };
                let out = pipe.txt2img(&p, &mut SeededNoise::new(7), &mut |_| Control::Continue)?;
                last = Some(out.image);
            }
            last.ok_or_else(|| "no frames".into())
        };
        self.reset_peak();
        let (t_set, t_one, set_img) =
            self.alternate(&pipe, &run_set, &run_singles, 3, ("set", "8 singles"))?;
        let (ms, mo) = (median(&t_set), median(&t_one));
        let extra = format!(
            " frames={frames} res={res} steps=30 cfg=5 reference=first_frame strength=1 nonfinite={}",
            count_non_finite(&set_img)?
        );
        self.result("set_8frames_refattn_30step", &t_set, &extra);
        self.result("set_8singles_txt2img_30step", &t_one, &extra);
        println!(
            "RESULT {}_set_overhead set_ms={ms:.0} singles_ms={mo:.0} ratio={:.3} target_ratio=1.25 pass={}",
            self.tag(),
            ms / mo,
            ms / mo <= 1.25
        );

        // One UNet call of the set's batch at strengths 1, 0.5 and off.
        let unet = pipe.unet().clone();
        let (lat, ctx, te, tid) = self.unet_inputs(res, 2 * frames)?;
        let cond = UNetConditioning {
            encoder_hidden_states: &ctx,
            text_embeds: &te,
            time_ids: &tid,
        };
        let shared = |strength: f64| -> AnyResult<Option<SharedAttention>> {
            if strength == 0.0 {
                return Ok(None);
            }
            let a = ReferenceAttention {
                strength,
                ..Default::default()
            };
            Ok(Some(SharedAttention::new(a, 2)?))
        };
        for strength in [1.0, 0.5, 0.0] {
            let opts = ForwardOptions {
                tiling: false,
                shared_attention: shared(strength)?,
            };
            let (times, out) = self.time(1, self.args.iters.min(5), || {
                Ok(unet.forward_with_options(&lat, 500.0, &cond, &opts)?)
            })?;
            let name = format!("set_unet_step_{res}_b{}_strength{strength}", 2 * frames);
            self.result(
                &name,
                &times,
                &format!(" nonfinite={}", count_non_finite(&out)?),
            );
            // Where the step's time goes (every stage synchronises: sums exceed the total).
            self.sync()?;
            profile::take();
            profile::set_enabled(true);
            let out = unet.forward_with_options(&lat, 500.0, &cond, &opts);
            self.sync()?;
            profile::set_enabled(false);
            out?;
            let mut stages = profile::take();
            stages.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
            for s in stages.iter().take(12) {
                println!(
                    "RESULT profile_{name}_{} ms={:.2} calls={}",
                    s.name.replace('+', "_"),
                    s.total_ms,
                    s.calls
                );
            }
        }

        // Correctness of the fused shared attention: these kernels against candle's ops.
        let reference = unet.clone().with_kernel_options(KernelOptions::reference());
        let (lat, ctx, te, tid) = self.unet_inputs(512, 6)?;
        let cond = UNetConditioning {
            encoder_hidden_states: &ctx,
            text_embeds: &te,
            time_ids: &tid,
        };
        // The plain call's error is the yardstick: sharing may at most double it (or 2e-2).
        let mut tol = 2e-2f64;
        for strength in [0.0, 1.0, 0.5] {
            let opts = ForwardOptions {
                tiling: false,
                shared_attention: shared(strength)?,
            };
            let ours = unet.forward_with_options(&lat, 500.0, &cond, &opts)?;
            let want = reference.forward_with_options(&lat, 500.0, &cond, &opts)?;
            let err = rel_err(&ours, &want)?;
            if strength == 0.0 {
                tol = tol.max(2.0 * err);
            }
            let pass = err <= tol;
            println!(
                "RESULT check_set_shared_attention_{}_vs_reference_ops strength={strength} rel_err={err:.2e} tol={tol:.1e} pass={pass} size=512 batch=6",
                self.tag()
            );
            if !pass {
                self.failures += 1;
            }
        }
        Ok(())
    }

    fn pipe(&mut self) -> AnyResult<()> {
        let sizes = self.sizes()?;
        let pipe = self.build_pipe()?;
        let runs = [
            ("sdxl_30step", sizes[0], 30usize, 7.5, SchedulerKind::Ddim),
            (
                "turbo_4step",
                sizes[1],
                4,
                0.0,
                SchedulerKind::EulerAncestral,
            ),
        ];
        let mut last_latents = None;
        for (kind, res, steps, guidance, sampler) in runs {
            let cfg = if guidance > 1.0 { "cfg" } else { "nocfg" };
            let name = format!("{kind}_{res}_{cfg}");
            let params = GenerationParams {
                prompt: "pixel art knight, 16-bit sprite".into(),
                negative_prompt: Some("blurry".into()),
                width: res,
                height: res,
                steps,
                guidance_scale: guidance,
                sampler: Some(sampler),
                ..Default::default()
            };
            self.reset_peak();
            let mut totals = Vec::new();
            let mut detail = String::new();
            for run in 0..3 {
                self.sync()?;
                let start = Instant::now();
                let mut denoised_at = start;
                let device = self.device.clone();
                let out = pipe.txt2img(&params, &mut SeededNoise::new(7), &mut |p| {
                    if p.step == p.total {
                        let _ = device.synchronize();
                        denoised_at = Instant::now();
                    }
                    Control::Continue
                })?;
                self.sync()?;
                let total = start.elapsed().as_secs_f64() * 1e3;
                let denoise = (denoised_at - start).as_secs_f64() * 1e3;
                println!(
                    "  {name} run {run}: total {total:.1} ms (text+denoise {denoise:.1}, vae f32 + checks {:.1})",
                    total - denoise
                );
                if run > 0 {
                    totals.push(total);
                }
                detail = format!(
                    " last_text_denoise_ms={denoise:.1} last_vae_ms={:.1} image_absmax={:.3}",
                    total - denoise,
                    abs_max(&out.image)?
                );
                if res == sizes[0] {
                    last_latents = Some(out.latents);
                }
            }
            self.result(&format!("pipe_{name}_vaef32"), &totals, &detail);
        }
        // The same latents through an f16 VAE: the pipeline must either decode them to a finite
        // image or fail with a NonFinite error, never hand back NaN.
        if let Some(latents) = last_latents {
            let vae16 = self.build_vae(DType::F16)?;
            let pipe16 = SdxlPipeline::from_parts(
                self.configs.clone(),
                pipe.text_encoders().clone(),
                pipe.unet().clone(),
                vae16,
                self.dtype,
                &self.device,
            );
            let outcome = match pipe16.decode(&latents) {
                Ok(img) => format!("finite image, absmax {:.3}", abs_max(&img)?),
                Err(e @ DiffusionError::NonFinite { .. }) => format!("refused: {e}"),
                Err(e) => return Err(e.into()),
            };
            println!(
                "RESULT {}_vae_f16_decode_of_pipeline_latents outcome=\"{outcome}\"",
                self.tag()
            );
        }
        Ok(())
    }
}

/// `conv(x)` in exact f32 on the device (our GEMM path with TF32 off), the reference the
/// `kernels` section holds every convolution to.
fn exact_conv(conv: &candle_nn::Conv2d, x: &Tensor) -> AnyResult<Tensor> {
    let exact = KernelOptions {
        kernels: Kernels::Fused,
        conv: ConvBackend::Gemm,
        tf32: false,
        ..KernelOptions::default()
    };
    let f32_conv = candle_nn::Conv2d::new(
        conv.weight().to_dtype(DType::F32)?,
        conv.bias().map(|b| b.to_dtype(DType::F32)).transpose()?,
        *conv.config(),
    );
    Ok(fused::conv2d(&f32_conv, &x.to_dtype(DType::F32)?, &exact)?)
}

fn kernels_name(k: Kernels) -> &'static str {
    match k {
        Kernels::Reference => "reference",
        Kernels::Fused => "fused",
        Kernels::FusedNoFlash => "fused-no-flash",
        Kernels::FusedWmma => "fused-wmma",
    }
}

fn device_name(d: &Device) -> &'static str {
    if d.is_cuda() {
        "cuda"
    } else if d.is_cpu() {
        "cpu"
    } else {
        "gpu"
    }
}

/// A sprite at pixelgen's default settings (30 Euler steps, guidance 5, a negative prompt)
/// at `res` x `res`: what the set and tileset sections time.
fn default_params(prompt: &str, res: usize) -> GenerationParams {
    GenerationParams {
        prompt: prompt.into(),
        negative_prompt: Some("blurry".into()),
        width: res,
        height: res,
        steps: 30,
        guidance_scale: 5.0,
        sampler: Some(SchedulerKind::Euler),
        ..Default::default()
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("gpu_bench: {e}");
        std::process::exit(2);
    }
}

fn run() -> AnyResult<()> {
    let args = Args::parse();
    let fixture = args.fixture.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-sdxl")
    });
    let dtype = match args.dtype.as_str() {
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        "f32" => DType::F32,
        other => return Err(format!("--dtype {other}: use f16, bf16 or f32").into()),
    };
    let kernels = match args.kernels.as_str() {
        "fused" => Kernels::Fused,
        "fused-no-flash" => Kernels::FusedNoFlash,
        "fused-wmma" => Kernels::FusedWmma,
        "reference" => Kernels::Reference,
        other => {
            return Err(
                format!("--kernels {other}: use fused, fused-no-flash or reference").into(),
            );
        }
    };
    let opts = KernelOptions::from_env().with_kernels(kernels);
    let device = match args.device.as_str() {
        "cuda" => Device::new_cuda(0).map_err(|e| {
            format!("no CUDA device ({e}); build with `--features cuda` and run on a GPU machine")
        })?,
        "cpu" => Device::Cpu,
        other => return Err(format!("--device {other}: use cuda or cpu").into()),
    };
    // Make the context first: "idle" memory then includes it, and peaks over idle count only
    // weights and activations (comparable to torch's max_memory_reserved).
    Tensor::zeros(1, DType::F32, &device)?;
    device.synchronize()?;
    let mem = if device.is_cuda() {
        GpuMemory::start()
    } else {
        None
    };
    let configs = match args.model.as_str() {
        "base" => SdxlConfigs::sdxl_base(&fixture)?,
        "tiny" => SdxlConfigs::load(&fixture)?,
        other => return Err(format!("--model {other}: use base or tiny").into()),
    };
    println!(
        "pixelgen-diffusion gpu_bench: device {:?} dtype {dtype:?} kernels {} model {} iters {} warmup {} cuda_feature={} cudnn_feature={} flash_attn_feature={}",
        device.location(),
        kernels_name(kernels),
        args.model,
        args.iters,
        args.warmup,
        cfg!(feature = "cuda"),
        cfg!(feature = "cudnn"),
        cfg!(feature = "flash-attn"),
    );
    println!(
        "convolutions: {:?}, cuDNN from {:?} output rows (cudnn feature), epilogue fusion {}, tf32 {}, linear {:?}",
        opts.conv, opts.cudnn_min_rows, opts.cudnn_fuse, opts.tf32, opts.linear
    );
    if let Some(m) = &mem {
        println!("gpu memory used after context creation: {} MiB", m.idle);
    }
    let mut bench = Bench {
        args,
        device,
        dtype,
        configs,
        fixture,
        mem,
        failures: 0,
        opts,
    };
    bench.section("check", Bench::check);
    bench.section("kernels", Bench::kernels);
    bench.section("profile", Bench::profile);
    bench.section("unet", Bench::unet);
    bench.section("clip", Bench::clip);
    bench.section("vae", Bench::vae);
    bench.section("pipe", Bench::pipe);
    bench.section("throughput", Bench::throughput);
    bench.section("set", Bench::set);
    bench.section("tileset", Bench::tileset);
    for line in fused::cudnn_plans() {
        println!("cudnn plan: {line}");
    }
    if bench.failures > 0 {
        println!("FAILED: {} check(s) or section(s)", bench.failures);
        std::process::exit(1);
    }
    println!("done");
    Ok(())
}
