//! Text to image with SDXL, written as a PNG.
//!
//! ```text
//! cargo run --release -p pixelgen-diffusion --example txt2img -- \
//!     --model path/to/stable-diffusion-xl-base-1.0 --prompt "pixel art knight" --out knight.png
//! # the tiny test model runs on the CPU in seconds:
//! cargo run -p pixelgen-diffusion --example txt2img -- \
//!     --model crates/pixelgen-diffusion/tests/fixtures/tiny-sdxl --width 64 --height 64 \
//!     --steps 4 --prompt "a knight" --out /tmp/knight.png
//! ```
//! `--model` is a diffusers SDXL folder. With the `hub` feature it may also be a Hugging Face
//! repo id (`stabilityai/stable-diffusion-xl-base-1.0`), fetched into the standard HF cache.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device};
use clap::Parser;
use pixelgen_diffusion::{
    Control, GenerationParams, SchedulerKind, SdxlPipeline, SeededNoise, to_rgba_images,
};
use pixelgen_pixel::write::{check_output, save_png};

/// Command-line options of the txt2img example.
#[derive(Parser, Debug, Clone)]
#[command(about = "SDXL text to image on candle, written as a PNG")]
pub struct Args {
    /// A diffusers SDXL folder (or, with the `hub` feature, a Hugging Face repo id).
    #[arg(long)]
    pub model: String,
    /// The prompt.
    #[arg(long)]
    pub prompt: String,
    /// The negative prompt.
    #[arg(long)]
    pub negative: Option<String>,
    /// Inference steps.
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Classifier-free guidance scale (1 or less disables it).
    #[arg(long, default_value_t = 5.0)]
    pub guidance: f64,
    /// Sampler: euler_a, euler, dpmpp_2m, ddim or lcm (default: the folder's scheduler).
    #[arg(long)]
    pub sampler: Option<SchedulerKind>,
    /// Seed of the initial and per-step noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Image width in pixels (multiple of 8).
    #[arg(long, default_value_t = 1024)]
    pub width: usize,
    /// Image height in pixels (multiple of 8).
    #[arg(long, default_value_t = 1024)]
    pub height: usize,
    /// `cpu`, `cuda` or `auto` (CUDA when built with it and a GPU is present).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Weight dtype: f32, f16 or bf16 (default: f16 on a GPU, f32 on the CPU).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Weight file variant, e.g. `fp16` for `*.fp16.safetensors`.
    #[arg(long)]
    pub variant: Option<String>,
    /// Output PNG (a `.png` name; its folder is created).
    #[arg(long)]
    pub out: PathBuf,
    /// No per-step progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Draw a seamless tile (circular padding in every convolution).
    #[arg(long)]
    pub tiling: bool,
}

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn device(name: &str) -> AnyResult<Device> {
    Ok(match name {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0)
            .map_err(|e| format!("--device cuda: {e} (build with `--features cuda`)"))?,
        "auto" => Device::cuda_if_available(0)?,
        other => return Err(format!("--device {other}: use cpu, cuda or auto").into()),
    })
}

fn dtype(name: Option<&str>, device: &Device) -> AnyResult<DType> {
    Ok(match name {
        None if device.is_cpu() => DType::F32,
        None => DType::F16,
        Some("f32") => DType::F32,
        Some("f16") => DType::F16,
        Some("bf16") => DType::BF16,
        Some(other) => return Err(format!("--dtype {other}: use f32, f16 or bf16").into()),
    })
}

/// Resolves `--model` to a local folder (downloading it with the `hub` feature).
fn model_dir(args: &Args) -> AnyResult<PathBuf> {
    let path = PathBuf::from(&args.model);
    if path.is_dir() {
        return Ok(path);
    }
    #[cfg(feature = "hub")]
    {
        let files = pixelgen_diffusion::hub::SdxlFiles::new(args.variant.as_deref());
        Ok(pixelgen_diffusion::hub::fetch_sdxl(&args.model, &files)?)
    }
    #[cfg(not(feature = "hub"))]
    {
        Err(format!(
            "--model {}: no such folder (build with `--features hub` to download from the Hugging Face hub)",
            args.model
        )
        .into())
    }
}

/// Loads the model, generates the image and writes the PNG; returns the PNG's path.
pub fn run(args: &Args) -> AnyResult<PathBuf> {
    // The output is checked before the model loads: a bad --out never costs a generation.
    check_output(&args.out)?;
    let device = device(&args.device)?;
    let dtype = dtype(args.dtype.as_deref(), &device)?;
    let dir = model_dir(args)?;
    let start = Instant::now();
    let pipe = SdxlPipeline::load(&dir, args.variant.as_deref(), dtype, &device)?;
    if !args.quiet {
        eprintln!(
            "loaded {} on {:?} ({dtype:?}) in {:.1}s",
            dir.display(),
            device.location(),
            start.elapsed().as_secs_f64()
        );
    }
    let params = GenerationParams {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative.clone(),
        width: args.width,
        height: args.height,
        steps: args.steps,
        guidance_scale: args.guidance,
        sampler: args.sampler,
        tiling: args.tiling,
        ..Default::default()
    };
    if !args.quiet && params.validate(pipe.configs().vae.scale_factor()).is_ok() {
        // The pipeline refuses the request before allocating if this does not fit.
        let peak = pipe.estimate_peak_bytes(&params);
        eprintln!(
            "estimated peak memory: {} ({peak} bytes of activations; weights excluded)",
            pixelgen_diffusion::memory::format_bytes(peak)
        );
    }
    let start = Instant::now();
    let quiet = args.quiet;
    let out = pipe.txt2img(&params, &mut SeededNoise::new(args.seed), &mut |p| {
        if !quiet {
            eprintln!("step {}/{} (t = {:.0})", p.step, p.total, p.timestep);
        }
        Control::Continue
    })?;
    if out.truncated_tokens > 0 {
        eprintln!(
            "warning: the prompt is longer than CLIP's 77 tokens; {} token(s) were ignored",
            out.truncated_tokens
        );
    }
    let image = to_rgba_images(&out.image)?
        .into_iter()
        .next()
        .ok_or("the pipeline returned no image")?;
    // Atomic (temp file, fsync, rename): a full disk is "cannot write PATH: ...", no partial PNG.
    save_png(&args.out, &image)?;
    if !quiet {
        eprintln!(
            "wrote {} ({}x{}) in {:.1}s",
            args.out.display(),
            image.width(),
            image.height(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(args.out.clone())
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("txt2img: {e}");
        std::process::exit(1);
    }
}
