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

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use clap::Parser;
use pixelgen_diffusion::clip::ClipTextModel;
use pixelgen_diffusion::{
    AutoencoderKl, ClipTokenizer, Control, DiffusionError, GenerationParams, RandomWeights,
    SchedulerKind, SdxlConfigs, SdxlPipeline, SdxlTextEncoders, SeededNoise, UNet2DConditionModel,
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
    /// Sections to run: check, unet, clip, vae, pipe.
    #[arg(long, default_value = "check,unet,clip,vae,pipe")]
    only: String,
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
        format!("candle_{:?}", self.dtype).to_lowercase()
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
        let unet = UNet2DConditionModel::new(&self.configs.unet, vb)?;
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
        )?;
        let c2 = ClipTextModel::new(
            &self.configs.text_encoder_2,
            true,
            RandomWeights::new(3).var_builder(self.dtype, &self.device),
        )?;
        Ok((c1, c2))
    }

    fn build_vae(&self, dtype: DType) -> AnyResult<AutoencoderKl> {
        let vb = RandomWeights::new(4).var_builder(dtype, &self.device);
        Ok(AutoencoderKl::new(&self.configs.vae, vb)?)
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
        let size = cpu.configs().unet.sample_size.unwrap_or(8) * cpu.configs().vae.scale_factor();
        let params = GenerationParams {
            prompt: "a pixel-art knight with a red cape".into(),
            negative_prompt: Some("blurry".into()),
            width: size,
            height: size,
            steps: 4,
            guidance_scale: 5.0,
            ..Default::default()
        };
        let go = |pipe: &SdxlPipeline| {
            pipe.txt2img(&params, &mut SeededNoise::new(42), &mut |_| {
                Control::Continue
            })
        };
        let reference = go(&cpu)?;
        for (dtype, tol) in [(DType::F32, 1e-4), (DType::F16, 1e-2)] {
            let pipe = SdxlPipeline::load(&self.fixture, None, dtype, &self.device)?;
            let out = go(&pipe)?;
            let lat = rel_err(&out.latents, &reference.latents)?;
            let img = rel_err(&out.image, &reference.image)?;
            let pass = lat <= tol && img <= tol;
            println!(
                "RESULT check_{}_{:?}_vs_cpu_f32 latents_rel_err={lat:.2e} image_rel_err={img:.2e} tol={tol:.0e} pass={pass} size={size} steps=4 cfg=5",
                device_name(&self.device),
                dtype
            );
            if !pass {
                self.failures += 1;
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
        for dtype in [DType::F16, DType::F32] {
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

    fn pipe(&mut self) -> AnyResult<()> {
        let sizes = self.sizes()?;
        let unet = self.build_unet()?;
        let (c1, c2) = self.build_clips()?;
        let tokenizers = (
            ClipTokenizer::from_folder(self.fixture.join("tokenizer"))?,
            ClipTokenizer::from_folder(self.fixture.join("tokenizer_2"))?,
        );
        let text = SdxlTextEncoders::from_parts(tokenizers, (c1, c2), true, &self.device);
        let vae = self.build_vae(DType::F32)?;
        let pipe = SdxlPipeline::from_parts(
            self.configs.clone(),
            text.clone(),
            unet.clone(),
            vae,
            self.dtype,
            &self.device,
        );
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
                text,
                unet,
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

fn device_name(d: &Device) -> &'static str {
    if d.is_cuda() {
        "cuda"
    } else if d.is_cpu() {
        "cpu"
    } else {
        "gpu"
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
        "pixelgen-diffusion gpu_bench: device {:?} dtype {dtype:?} model {} iters {} warmup {} cuda_feature={} cudnn_feature={} flash_attn_feature={}",
        device.location(),
        args.model,
        args.iters,
        args.warmup,
        cfg!(feature = "cuda"),
        cfg!(feature = "cudnn"),
        cfg!(feature = "flash-attn"),
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
    };
    bench.section("check", Bench::check);
    bench.section("unet", Bench::unet);
    bench.section("clip", Bench::clip);
    bench.section("vae", Bench::vae);
    bench.section("pipe", Bench::pipe);
    if bench.failures > 0 {
        println!("FAILED: {} check(s) or section(s)", bench.failures);
        std::process::exit(1);
    }
    println!("done");
    Ok(())
}
