//! txt2img and img2img with classifier-free guidance, as diffusers' SDXL pipelines run them
//! (inpaint is in [`crate::inpaint`]).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::clip::ClipTextModel;
use crate::config::{SchedulerConfig, SdxlConfigs, TimestepSpacing};
use crate::error::{DiffusionError, Result, invalid};
use crate::fused::KernelOptions;
use crate::inpaint::Masking;
use crate::memory::{EstimateTarget, MemoryBudget, MemoryEstimate, estimate_peak};
use crate::noise::NoiseSource;
use crate::reference::{SetParams, SetReference, SharedAttention};
use crate::scheduler::{self, Ddim, Scheduler, SchedulerKind};
use crate::text::SdxlTextEncoders;
use crate::tokenizer::ClipTokenizer;
use crate::unet::{ForwardOptions, UNet2DConditionModel, UNetConditioning};
use crate::vae::AutoencoderKl;
use crate::weights::{load_var_builder, weight_files};

/// Largest [`GenerationParams::batch`].
pub const MAX_BATCH: usize = 64;

/// Largest [`GenerationParams::width`] and [`GenerationParams::height`] in pixels.
pub const MAX_SIDE: usize = 4096;

/// Largest [`GenerationParams::steps`].
pub const MAX_STEPS: usize = 1000;

/// What to generate (everything but the noise), plain serde data for recipes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationParams {
    /// The prompt (both text encoders get it).
    pub prompt: String,
    /// The negative prompt; `None` gives SDXL's zero negative conditioning.
    pub negative_prompt: Option<String>,
    /// Image width in pixels (a multiple of the VAE's scale factor, 8 for SDXL).
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Inference steps (for img2img: before truncation by strength).
    pub steps: usize,
    /// Classifier-free guidance scale; 1 or less disables guidance (one UNet pass per step).
    pub guidance_scale: f64,
    /// Sampler; `None` uses the folder's own scheduler.
    pub sampler: Option<SchedulerKind>,
    /// Karras sigmas for Euler / DPM++ 2M; `None` keeps the folder's setting.
    pub karras: Option<bool>,
    /// DDIM's eta (0 = deterministic).
    pub eta: f64,
    /// Timestep spacing; `None` keeps the folder's setting. SDXL-Turbo wants
    /// [`TimestepSpacing::Trailing`] (its 1-4 step tables start at the last training step).
    pub timestep_spacing: Option<TimestepSpacing>,
    /// Images generated together from the prompt (diffusers' `num_images_per_prompt`): one
    /// UNet call per step for all of them, so a batch is cheaper per image on a GPU. The
    /// initial latents are one `[batch, 4, h / 8, w / 8]` draw from the noise source, so image
    /// `k` of a seeded batch differs from a single image with the same seed.
    pub batch: usize,
    /// Seamless tiling (default off): every padded convolution of the UNet and the VAE pads
    /// circularly ("wrap", as A1111/ComfyUI's tiling option) instead of with zeros, so the
    /// image's right edge continues its left edge and its bottom edge its top, and copies of it
    /// tile without seams. A parameter of each call: two calls with different settings can
    /// run at the same time. See [`crate::tiling`].
    pub tiling: bool,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative_prompt: None,
            width: 1024,
            height: 1024,
            steps: 30,
            guidance_scale: 5.0,
            sampler: None,
            karras: None,
            eta: 0.0,
            timestep_spacing: None,
            batch: 1,
            tiling: false,
        }
    }
}

impl GenerationParams {
    /// Checks the hard bounds of a request before anything runs: width and height positive
    /// multiples of `scale_factor` (the VAE's, 8 for SDXL) and at most [`MAX_SIDE`], steps
    /// 1 to [`MAX_STEPS`], batch 1 to [`MAX_BATCH`], finite guidance and eta. Whether the
    /// request fits in memory is a separate check ([`SdxlPipeline::check_memory`]).
    pub fn validate(&self, scale_factor: usize) -> Result<()> {
        let f = scale_factor.max(1);
        for (name, side) in [("width", self.width), ("height", self.height)] {
            if side == 0 || side > MAX_SIDE || !side.is_multiple_of(f) {
                return Err(invalid(
                    name,
                    format!(
                        "{side} pixels: use a multiple of {f} from {f} to {MAX_SIDE} \
                         (pixel art is generated small and scaled up afterwards)"
                    ),
                ));
            }
        }
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(invalid(
                "steps",
                format!("{}: use 1 to {MAX_STEPS}", self.steps),
            ));
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return Err(invalid(
                "batch",
                format!("{} images: use 1 to {MAX_BATCH}", self.batch),
            ));
        }
        if !self.guidance_scale.is_finite() {
            return Err(invalid("guidance_scale", "must be a finite number"));
        }
        if !self.eta.is_finite() {
            return Err(invalid("eta", "must be a finite number"));
        }
        Ok(())
    }
}

/// Progress of a running generation, passed to the caller after every step.
#[derive(Debug)]
pub struct Progress<'a> {
    /// Steps done so far (1-based).
    pub step: usize,
    /// Steps this run will take.
    pub total: usize,
    /// The timestep just denoised.
    pub timestep: f64,
    /// The latents after this step (decode them for a preview).
    pub latents: &'a Tensor,
}

/// Reports step `done` of `total` to `progress`; a cancel before the last step becomes
/// [`DiffusionError::Cancelled`].
fn report_step(
    progress: &mut dyn FnMut(Progress) -> Control,
    done: usize,
    total: usize,
    timestep: f64,
    latents: &Tensor,
) -> Result<()> {
    let answer = progress(Progress {
        step: done,
        total,
        timestep,
        latents,
    });
    if answer == Control::Cancel && done < total {
        return Err(DiffusionError::Cancelled { step: done, total });
    }
    Ok(())
}

/// The caller's answer to [`Progress`]: go on or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Run the next step.
    Continue,
    /// Stop now; the pipeline returns [`DiffusionError::Cancelled`].
    Cancel,
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Generated {
    /// Final latents in the UNet's space, `[batch, 4, h / 8, w / 8]` (`[n, ...]` for a set of
    /// `n` frames).
    pub latents: Tensor,
    /// Decoded image, `[batch, 3, h, w]`, values in [0, 1] (f32).
    pub image: Tensor,
    /// Tokens cut from the prompt or negative prompt beyond CLIP's 77 (0 when all fitted).
    pub truncated_tokens: usize,
}

/// Counts the NaN and infinite values of `t` (any float dtype, any device).
pub fn count_non_finite(t: &Tensor) -> Result<usize> {
    let x = t.to_dtype(DType::F32)?.flatten_all()?;
    let nan = x.ne(&x)?.to_dtype(DType::F32)?;
    let inf = x.abs()?.ge(f32::INFINITY)?.to_dtype(DType::F32)?;
    let n: f32 = (nan + inf)?.sum_all()?.to_scalar()?;
    Ok(n as usize)
}

/// Errors with [`DiffusionError::NonFinite`] (naming `what` and the `hint`) if `t` holds any
/// NaN or infinite value.
pub fn ensure_finite(t: &Tensor, what: &'static str, hint: &'static str) -> Result<()> {
    let count = count_non_finite(t)?;
    if count == 0 {
        return Ok(());
    }
    Err(DiffusionError::NonFinite {
        what,
        count,
        total: t.elem_count(),
        dtype: format!("{:?}", t.dtype()),
        hint,
    })
}

/// The folder's scheduler config with the overrides of `p` (Karras sigmas, timestep spacing).
pub fn scheduler_config(folder: &SchedulerConfig, p: &GenerationParams) -> SchedulerConfig {
    let mut config = folder.clone();
    if let Some(k) = p.karras {
        config.use_karras_sigmas = Some(k);
    }
    if let Some(s) = p.timestep_spacing {
        config.timestep_spacing = Some(s);
    }
    config
}

/// SDXL text encoders, UNet and VAE, ready to generate.
#[derive(Debug, Clone)]
pub struct SdxlPipeline {
    configs: SdxlConfigs,
    text: SdxlTextEncoders,
    unet: UNet2DConditionModel,
    vae: AutoencoderKl,
    dtype: DType,
    device: Device,
    memory: MemoryBudget,
}

/// The networks of an SDXL folder, asked of a weight source by [`SdxlPipeline::build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// `text_encoder/` (CLIP-L).
    TextEncoder,
    /// `text_encoder_2/` (CLIP-G with projection).
    TextEncoder2,
    /// `unet/`.
    Unet,
    /// `vae/`.
    Vae,
}

impl SdxlPipeline {
    /// Loads a diffusers SDXL folder with the default [`KernelOptions`]. The VAE stays in f32
    /// when its config says `force_upcast` (SDXL's VAE overflows in f16), whatever `dtype` the
    /// rest uses.
    pub fn load(
        dir: impl AsRef<Path>,
        variant: Option<&str>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Self::load_with(dir, variant, dtype, device, KernelOptions::default())
    }

    /// [`SdxlPipeline::load`] with the networks computing with `kernels`.
    pub fn load_with(
        dir: impl AsRef<Path>,
        variant: Option<&str>,
        dtype: DType,
        device: &Device,
        kernels: KernelOptions,
    ) -> Result<Self> {
        let configs = SdxlConfigs::load(dir)?;
        let dir = configs.dir.clone();
        Self::build(configs, dtype, device, kernels, |part, dtype| {
            let (sub, stem) = match part {
                Part::TextEncoder => ("text_encoder", "model"),
                Part::TextEncoder2 => ("text_encoder_2", "model"),
                Part::Unet => ("unet", "diffusion_pytorch_model"),
                Part::Vae => ("vae", "diffusion_pytorch_model"),
            };
            load_var_builder(&weight_files(&dir.join(sub), stem, variant)?, dtype, device)
        })
    }

    /// The one build path of a pipeline (folders, single files, LoRA merges): the tokenizers
    /// from the folder, each network from `weights(part, dtype)` (in the order text encoders,
    /// UNet, VAE), all computing with `kernels`. The VAE is built in f32 when its config says
    /// `force_upcast`, else in `dtype` as the rest.
    pub(crate) fn build(
        configs: SdxlConfigs,
        dtype: DType,
        device: &Device,
        kernels: KernelOptions,
        mut weights: impl FnMut(Part, DType) -> Result<VarBuilder<'static>>,
    ) -> Result<Self> {
        let dir = &configs.dir;
        let text = SdxlTextEncoders::from_parts(
            (
                ClipTokenizer::from_folder(dir.join("tokenizer"))?,
                ClipTokenizer::from_folder(dir.join("tokenizer_2"))?,
            ),
            (
                ClipTextModel::new(
                    &configs.text_encoder,
                    false,
                    weights(Part::TextEncoder, dtype)?,
                )?
                .with_kernel_options(kernels),
                ClipTextModel::new(
                    &configs.text_encoder_2,
                    true,
                    weights(Part::TextEncoder2, dtype)?,
                )?
                .with_kernel_options(kernels),
            ),
            configs.model_index.force_zeros_for_empty_prompt,
            device,
        );
        let unet = UNet2DConditionModel::new(&configs.unet, weights(Part::Unet, dtype)?)?
            .with_kernel_options(kernels);
        let vae_dtype = if configs.vae.force_upcast {
            DType::F32
        } else {
            dtype
        };
        let vae = AutoencoderKl::new(&configs.vae, weights(Part::Vae, vae_dtype)?)?
            .with_kernel_options(kernels);
        Ok(Self::from_parts(configs, text, unet, vae, dtype, device))
    }

    /// Assembles a pipeline from parts built elsewhere (e.g. with [`crate::RandomWeights`]).
    /// `dtype` is the dtype of the UNet; the VAE's own dtype is kept as built.
    pub fn from_parts(
        configs: SdxlConfigs,
        text: SdxlTextEncoders,
        unet: UNet2DConditionModel,
        vae: AutoencoderKl,
        dtype: DType,
        device: &Device,
    ) -> Self {
        Self {
            configs,
            text,
            unet,
            vae,
            dtype,
            device: device.clone(),
            memory: MemoryBudget::Device,
        }
    }

    /// This pipeline checking each request's memory estimate against `budget` (default
    /// [`MemoryBudget::Device`]: the device's free memory at the time of the call).
    pub fn with_memory_budget(mut self, budget: MemoryBudget) -> Self {
        self.memory = budget;
        self
    }

    /// The memory figure requests are checked against.
    pub fn memory_budget(&self) -> MemoryBudget {
        self.memory
    }

    /// The conservative activation-memory estimate of one txt2img/img2img call with `params`
    /// on this pipeline (configs, dtypes and device; weights excluded, they are resident).
    /// See [`estimate_peak`] for the formula.
    pub fn estimate_memory(&self, params: &GenerationParams) -> MemoryEstimate {
        let target = EstimateTarget::for_device(
            &self.device,
            self.kernel_options(),
            self.dtype,
            self.vae_dtype(),
        );
        estimate_peak(&self.configs.unet, &self.configs.vae, params, target)
    }

    /// [`SdxlPipeline::estimate_memory`]'s peak in bytes.
    pub fn estimate_peak_bytes(&self, params: &GenerationParams) -> u64 {
        self.estimate_memory(params).peak_bytes
    }

    /// Validates `params` ([`GenerationParams::validate`]) and checks that its memory estimate
    /// fits this pipeline's [`MemoryBudget`]: [`DiffusionError::OutOfMemory`] (naming what is
    /// needed and available) if not. txt2img and img2img call it before allocating anything;
    /// call it yourself to refuse a request before queueing it.
    pub fn check_memory(&self, params: &GenerationParams) -> Result<()> {
        params.validate(self.configs.vae.scale_factor())?;
        let estimate = self.estimate_memory(params);
        let cfg = params.guidance_scale > 1.0 && self.configs.unet.time_cond_proj_dim.is_none();
        let what = format!(
            "a {}x{} generation (batch {}, guidance {})",
            params.width,
            params.height,
            params.batch,
            if cfg { "on" } else { "off" }
        );
        crate::memory::check(&estimate, self.memory, &self.device, what)
    }

    /// The dtype the UNet runs in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device everything runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The folder's configs.
    pub fn configs(&self) -> &SdxlConfigs {
        &self.configs
    }

    /// The text encoders.
    pub fn text_encoders(&self) -> &SdxlTextEncoders {
        &self.text
    }

    /// The UNet.
    pub fn unet(&self) -> &UNet2DConditionModel {
        &self.unet
    }

    /// The VAE.
    pub fn vae(&self) -> &AutoencoderKl {
        &self.vae
    }

    /// The kernel options its UNet computes with (those it was built with).
    pub fn kernel_options(&self) -> &KernelOptions {
        self.unet.kernel_options()
    }

    /// Text to image. `noise` gives the initial latents, then any per-step noise: pass
    /// [`crate::SeededNoise`] for a seed, or [`crate::RecordedNoise`] holding your own initial
    /// latents (`[batch, 4, h / 8, w / 8]`, unit variance) to start from explicit latents.
    pub fn txt2img(
        &self,
        params: &GenerationParams,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Generated> {
        self.check_memory(params)?;
        let mut sched = self.scheduler(params)?;
        let (lh, lw) = self.latent_size(params)?;
        self.check_plain_unet()?;
        let c = self.configs.vae.latent_channels;
        let init = noise.normal(&[params.batch, c, lh, lw], &self.device)?;
        let latents = init
            .affine(sched.init_noise_sigma(), 0.0)?
            .to_dtype(self.dtype)?;
        let (latents, truncated_tokens) =
            self.denoise(params, sched.as_mut(), latents, 0, None, noise, progress)?;
        let image = self.decode_with(&latents, params.tiling)?;
        Ok(Generated {
            latents,
            image,
            truncated_tokens,
        })
    }

    /// Image to image: `image` is `[1, 3, height, width]` in [0, 1]; `strength` in 0..=1 is how
    /// much of the schedule is re-run (1 ignores the image). `noise` gives the VAE-sample noise,
    /// the add-noise noise, then any per-step noise.
    pub fn img2img(
        &self,
        params: &GenerationParams,
        image: &Tensor,
        strength: f64,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Generated> {
        if params.batch != 1 {
            return Err(invalid(
                "batch",
                format!("img2img takes one image, not a batch of {}", params.batch),
            ));
        }
        self.check_plain_unet()?;
        self.check_memory(params)?;
        let mut sched = self.scheduler(params)?;
        let start = scheduler::img2img_start(params.steps, strength)?;
        if start >= sched.timesteps().len() {
            return Err(invalid(
                "strength",
                format!(
                    "{strength} with {} steps leaves no step to run: raise strength or steps",
                    params.steps
                ),
            ));
        }
        let (lh, lw) = self.latent_size(params)?;
        let dims = image.dims4()?;
        if dims.0 != 1 || dims.1 != 3 || dims.2 != params.height || dims.3 != params.width {
            return Err(invalid(
                "image",
                format!(
                    "shape {:?}, expected [1, 3, {}, {}] (RGB in [0, 1] at the requested size)",
                    image.dims(),
                    params.height,
                    params.width
                ),
            ));
        }
        let vae_dtype = self.vae_dtype();
        let pixels = image.to_dtype(vae_dtype)?.affine(2.0, -1.0)?;
        let dist = self.vae.encode_with(&pixels, params.tiling)?;
        let sample_noise = noise
            .normal(dist.mean.dims(), &self.device)?
            .to_dtype(vae_dtype)?;
        let init = self.vae.scale_latents(&dist.sample(&sample_noise)?)?;
        let c = self.configs.vae.latent_channels;
        let add = noise
            .normal(&[1, c, lh, lw], &self.device)?
            .to_dtype(init.dtype())?;
        let latents = sched.add_noise(&init, &add, start)?.to_dtype(self.dtype)?;
        let (latents, truncated_tokens) = self.denoise(
            params,
            sched.as_mut(),
            latents,
            start,
            None,
            noise,
            progress,
        )?;
        let image = self.decode_with(&latents, params.tiling)?;
        Ok(Generated {
            latents,
            image,
            truncated_tokens,
        })
    }

    /// UNet latents -> image `[batch, 3, h, w]` in [0, 1] (f32). Fails with
    /// [`DiffusionError::NonFinite`] rather than return a NaN or black image.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        self.decode_with(latents, false)
    }

    /// [`SdxlPipeline::decode`]; with `tiling`, the VAE pads circularly (seamless tiling).
    pub fn decode_with(&self, latents: &Tensor, tiling: bool) -> Result<Tensor> {
        ensure_finite(
            latents,
            "final latents",
            "the UNet overflowed: run it in f32 or bf16, or lower guidance",
        )?;
        let z = self
            .vae
            .unscale_latents(&latents.to_dtype(self.vae_dtype())?)?;
        let image = self.vae.decode_with(&z, tiling)?;
        ensure_finite(
            &image,
            "VAE decode output",
            "the VAE overflowed: load it in f32 (force_upcast) or use an fp16-fixed VAE",
        )?;
        let image = image.to_dtype(DType::F32)?;
        Ok(image.affine(0.5, 0.5)?.clamp(0f32, 1f32)?)
    }

    /// The dtype the VAE runs in (f32 when its config says `force_upcast`).
    pub fn vae_dtype(&self) -> DType {
        self.vae.dtype()
    }

    fn latent_size(&self, p: &GenerationParams) -> Result<(usize, usize)> {
        let f = self.configs.vae.scale_factor();
        if p.width == 0
            || p.height == 0
            || !p.width.is_multiple_of(f)
            || !p.height.is_multiple_of(f)
        {
            return Err(invalid(
                "size",
                format!("{}x{} must be positive multiples of {f}", p.width, p.height),
            ));
        }
        Ok((p.height / f, p.width / f))
    }

    /// An inpainting UNet (more input channels than the VAE has latent channels) runs only in
    /// [`SdxlPipeline::inpaint`].
    fn check_plain_unet(&self) -> Result<()> {
        let (unet, latent) = (
            self.configs.unet.in_channels,
            self.configs.vae.latent_channels,
        );
        if unet != latent {
            return Err(invalid(
                "unet",
                format!(
                    "takes {unet} input channels, not the VAE's {latent}: an inpainting UNet \
                     runs only in SdxlPipeline::inpaint"
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn scheduler(&self, p: &GenerationParams) -> Result<Box<dyn Scheduler>> {
        let kind = match p.sampler {
            Some(k) => k,
            None => self.configs.scheduler.kind()?,
        };
        let config = scheduler_config(&self.configs.scheduler, p);
        Ok(if kind == SchedulerKind::Ddim {
            Box::new(Ddim::new(&config, p.steps)?.with_eta(p.eta)?)
        } else {
            scheduler::build(kind, &config, p.steps)?
        })
    }

    /// The denoising loop from step `start`; with `masking`, an inpaint run (the mask and
    /// masked image joined to a 9-channel UNet's input, or the known region blended back after
    /// each step for a 4-channel one).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn denoise(
        &self,
        p: &GenerationParams,
        sched: &mut dyn Scheduler,
        mut latents: Tensor,
        start: usize,
        masking: Option<&Masking>,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<(Tensor, usize)> {
        if !p.guidance_scale.is_finite() {
            return Err(invalid("guidance_scale", "must be a finite number"));
        }
        let n = latents.dim(0)?;
        let cfg = p.guidance_scale > 1.0 && self.configs.unet.time_cond_proj_dim.is_none();
        let (pos, neg) = self
            .text
            .encode_with_negative(&p.prompt, p.negative_prompt.as_deref())?;
        let truncated = pos.truncated.max(neg.truncated);
        if truncated > 0 {
            // As diffusers does: CLIP sees 77 tokens, the rest of the prompt is dropped.
            tracing::warn!(
                truncated,
                "the prompt is longer than CLIP's 77 tokens: {truncated} token(s) at its end were ignored"
            );
        }
        let (h, w) = (p.height as f32, p.width as f32);
        let ids = [h, w, 0.0, 0.0, h, w];
        // Each prompt's conditioning repeated for the batch: [neg x n, pos x n] with guidance.
        let rep = |t: &Tensor| -> Result<Tensor> {
            Ok(if n == 1 {
                t.clone()
            } else {
                Tensor::cat(&vec![t; n], 0)?
            })
        };
        let rows = if cfg { 2 * n } else { n };
        let time_ids = Tensor::from_vec(ids.repeat(rows), (rows, 6), &self.device)?;
        let (ehs, pooled) = if cfg {
            (
                Tensor::cat(&[rep(&neg.embeds)?, rep(&pos.embeds)?], 0)?,
                Tensor::cat(&[rep(&neg.pooled)?, rep(&pos.pooled)?], 0)?,
            )
        } else {
            (rep(&pos.embeds)?, rep(&pos.pooled)?)
        };
        let cond = UNetConditioning {
            encoder_hidden_states: &ehs,
            text_embeds: &pooled,
            time_ids: &time_ids,
        };
        let timesteps = sched.timesteps().to_vec();
        let total = timesteps.len() - start;
        for (i, &t) in timesteps.iter().enumerate().skip(start) {
            let input = if cfg {
                Tensor::cat(&[&latents, &latents], 0)?
            } else {
                latents.clone()
            };
            let input = sched.scale_model_input(&input, i)?;
            let input = match masking.and_then(|m| m.unet_extra.as_ref()) {
                Some(extra) => Tensor::cat(&[&input, &repeat_batch(extra, input.dim(0)?)?], 1)?,
                None => input,
            };
            let pred = self.unet.forward_with(&input, t, &cond, p.tiling)?;
            let pred = if cfg {
                let uncond = pred.narrow(0, 0, n)?;
                let text = pred.narrow(0, n, n)?;
                (&uncond + (text - &uncond)?.affine(p.guidance_scale, 0.0)?)?
            } else {
                pred
            };
            let step_noise = if sched.needs_noise(i) {
                Some(
                    noise
                        .normal(latents.dims(), &self.device)?
                        .to_dtype(latents.dtype())?,
                )
            } else {
                None
            };
            latents = sched.step(&pred, i, &latents, step_noise.as_ref())?;
            if let Some(blend) = masking.and_then(|m| m.blend.as_ref()) {
                latents = blend.apply(sched, &latents, i + 1, timesteps.len())?;
            }
            report_step(progress, i + 1 - start, total, t, &latents)?;
        }
        Ok((latents, truncated))
    }
}

/// Checks that `image` is `[1, 3, height, width]` (`what` names it in the error).
fn check_image(what: &'static str, image: &Tensor, p: &GenerationParams) -> Result<()> {
    let ok = matches!(image.dims4(), Ok((1, 3, h, w)) if h == p.height && w == p.width);
    if !ok {
        return Err(invalid(
            what,
            format!(
                "shape {:?}, expected [1, 3, {}, {}] (RGB in [0, 1] at the requested size)",
                image.dims(),
                p.height,
                p.width
            ),
        ));
    }
    Ok(())
}

/// The tensors concatenated along the batch (the one tensor itself when there is one).
fn cat_batch(mut parts: Vec<Tensor>) -> Result<Tensor> {
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Tensor::cat(&parts, 0)?
    })
}

/// `t` `[1, ...]` repeated `n` times along the batch.
fn repeat_batch(t: &Tensor, n: usize) -> Result<Tensor> {
    Ok(if n == 1 {
        t.clone()
    } else {
        Tensor::cat(&vec![t; n], 0)?
    })
}

impl SdxlPipeline {
    /// Checks a set request before anything runs: `params` ([`GenerationParams::validate`],
    /// `batch` must be 1), 1 to [`MAX_BATCH`] frames (one less with an image reference, which
    /// runs as an extra batch item), the attention options, and the shapes of the reference
    /// and init images. Returns the number of batch items per guidance half.
    pub fn validate_set(&self, params: &GenerationParams, set: &SetParams) -> Result<usize> {
        params.validate(self.configs.vae.scale_factor())?;
        if params.batch != 1 {
            return Err(invalid(
                "batch",
                format!(
                    "{}: a set makes one image per prompt, set batch to 1",
                    params.batch
                ),
            ));
        }
        let extra = usize::from(matches!(set.reference, SetReference::Image(_)));
        let max = MAX_BATCH - extra;
        let n = set.prompts.len();
        if n == 0 || n > max {
            return Err(invalid(
                "set prompts",
                format!("{n} frames: use 1 to {max} (one prompt per frame)"),
            ));
        }
        set.attention.validate()?;
        if let SetReference::Image(image) = &set.reference {
            check_image("reference image", image, params)?;
        }
        if let Some((image, strength)) = &set.init {
            check_image("init image", image, params)?;
            if !strength.is_finite() || !(0.0..=1.0).contains(strength) {
                return Err(invalid(
                    "init strength",
                    format!("{strength}: use a number from 0 to 1"),
                ));
            }
        }
        Ok(n + extra)
    }

    /// The memory estimate of a set: the UNet part of [`SdxlPipeline::estimate_memory`] for a
    /// batch of all its UNet items (frames, plus an image reference), plus, when attention is
    /// shared, the scores of the shared path: it attends over twice the keys, but materialises
    /// its scores (where flash attention does not run) in chunks of at most 2^28 values, so one
    /// such chunk (12 bytes a value: the matmul output and two f32 copies) or, if smaller, the
    /// batch's self-attention scores again. The VAE part is one image's: the frames are
    /// decoded one at a time.
    pub fn estimate_set_memory(
        &self,
        params: &GenerationParams,
        set: &SetParams,
    ) -> MemoryEstimate {
        let extra = usize::from(matches!(set.reference, SetReference::Image(_)));
        let items = set.prompts.len() + extra;
        let p = GenerationParams {
            batch: items.max(1),
            ..params.clone()
        };
        let mut e = self.estimate_memory(&p);
        if set.attention.is_active() && items > 1 {
            let shared = e.attention_bytes.min((1u64 << 28) * 12);
            e.unet_bytes = e.unet_bytes.saturating_add(shared);
        }
        let one = GenerationParams {
            batch: 1,
            ..params.clone()
        };
        e.vae_bytes = self.estimate_memory(&one).vae_bytes;
        e.peak_bytes = (e.unet_bytes.max(e.vae_bytes) / 4)
            .saturating_mul(5)
            .saturating_add(crate::memory::OVERHEAD_BYTES);
        e
    }

    /// [`SdxlPipeline::validate_set`], then the set's memory estimate
    /// ([`SdxlPipeline::estimate_set_memory`]) against this pipeline's [`MemoryBudget`].
    pub fn check_set_memory(&self, params: &GenerationParams, set: &SetParams) -> Result<()> {
        let items = self.validate_set(params, set)?;
        let estimate = self.estimate_set_memory(params, set);
        let cfg = params.guidance_scale > 1.0 && self.configs.unet.time_cond_proj_dim.is_none();
        let what = format!(
            "a {}x{} set of {} frames ({} UNet items, guidance {})",
            params.width,
            params.height,
            set.prompts.len(),
            items,
            if cfg { "on" } else { "off" }
        );
        crate::memory::check(&estimate, self.memory, &self.device, what)
    }

    /// Generates the frames of a set as one batch whose self-attention shares keys and values
    /// with a reference (see [`crate::reference`]): frame `k` from `set.prompts[k]`, everything
    /// else (negative prompt, size, steps, sampler, guidance, tiling) from `params`
    /// (`params.batch` must be 1; `params.prompt` is the text of an image reference).
    ///
    /// Noise: the initial latents are ONE draw `[1, 4, h / 8, w / 8]` repeated for every frame
    /// (with `set.init`: the VAE-sample noise and the add-noise draw, as
    /// [`SdxlPipeline::img2img`], once for all frames); then, with an image reference, one draw
    /// `[1, 4, h / 8, w / 8]` that noises the reference at every step; then each step's noise
    /// of a stochastic sampler, also one draw repeated for every frame. So with strength 0 each
    /// frame equals [`SdxlPipeline::txt2img`] (or img2img) with the same seed and its prompt.
    ///
    /// Returns `image` `[n, 3, h, w]` and `latents` `[n, ...]` for the `n` frames (an image
    /// reference is not among them). Progress and cancellation work per step as in txt2img.
    pub fn generate_set(
        &self,
        params: &GenerationParams,
        set: &SetParams,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Generated> {
        self.check_plain_unet()?;
        self.check_set_memory(params, set)?;
        let n = set.prompts.len();
        let mut sched = self.scheduler(params)?;
        let (lh, lw) = self.latent_size(params)?;
        let c = self.configs.vae.latent_channels;
        let vae_dtype = self.vae_dtype();
        let encode = |image: &Tensor| -> Result<crate::vae::LatentDistribution> {
            let pixels = image.to_dtype(vae_dtype)?.affine(2.0, -1.0)?;
            self.vae.encode_with(&pixels, params.tiling)
        };
        let (start, first) = match &set.init {
            Some((image, strength)) => {
                let start = scheduler::img2img_start(params.steps, *strength)?;
                if start >= sched.timesteps().len() {
                    return Err(invalid(
                        "init strength",
                        format!(
                            "{strength} with {} steps leaves no step to run: raise strength or steps",
                            params.steps
                        ),
                    ));
                }
                let dist = encode(image)?;
                let sample_noise = noise
                    .normal(dist.mean.dims(), &self.device)?
                    .to_dtype(vae_dtype)?;
                let init = self.vae.scale_latents(&dist.sample(&sample_noise)?)?;
                let add = noise
                    .normal(&[1, c, lh, lw], &self.device)?
                    .to_dtype(init.dtype())?;
                (start, sched.add_noise(&init, &add, start)?)
            }
            None => {
                let init = noise.normal(&[1, c, lh, lw], &self.device)?;
                (0, init.affine(sched.init_noise_sigma(), 0.0)?)
            }
        };
        let mut latents = repeat_batch(&first.to_dtype(self.dtype)?, n)?;
        // An image reference: its latent mean (no noise drawn) and the one draw that noises it.
        let reference = match &set.reference {
            SetReference::Image(image) => {
                let mean = self.vae.scale_latents(&encode(image)?.mean)?;
                let draw = noise.normal(&[1, c, lh, lw], &self.device)?;
                Some((mean.to_dtype(DType::F32)?, draw.to_dtype(DType::F32)?))
            }
            SetReference::FirstFrame => None,
        };
        let extra = usize::from(reference.is_some());
        let items = n + extra;

        // Text: every frame its prompt, the reference image `params.prompt`, one negative.
        let cfg = params.guidance_scale > 1.0 && self.configs.unet.time_cond_proj_dim.is_none();
        let neg_text = params.negative_prompt.as_deref();
        let mut texts: Vec<&str> = Vec::with_capacity(items);
        if reference.is_some() {
            texts.push(&params.prompt);
        }
        texts.extend(set.prompts.iter().map(String::as_str));
        let mut pos = Vec::with_capacity(items);
        let mut neg = None;
        let mut truncated = 0;
        for text in &texts {
            let (p, ng) = self.text.encode_with_negative(text, neg_text)?;
            truncated = truncated.max(p.truncated).max(ng.truncated);
            pos.push(p);
            neg.get_or_insert(ng);
        }
        if truncated > 0 {
            tracing::warn!(
                truncated,
                "a prompt is longer than CLIP's 77 tokens: {truncated} token(s) at its end were ignored"
            );
        }
        let neg = neg.ok_or_else(|| invalid("set prompts", "no frames"))?;
        let (h, w) = (params.height as f32, params.width as f32);
        let ids = [h, w, 0.0, 0.0, h, w];
        let rows = if cfg { 2 * items } else { items };
        let time_ids = Tensor::from_vec(ids.repeat(rows), (rows, 6), &self.device)?;
        let pos_embeds = Tensor::cat(&pos.iter().map(|p| &p.embeds).collect::<Vec<_>>(), 0)?;
        let pos_pooled = Tensor::cat(&pos.iter().map(|p| &p.pooled).collect::<Vec<_>>(), 0)?;
        let (ehs, pooled) = if cfg {
            (
                Tensor::cat(&[repeat_batch(&neg.embeds, items)?, pos_embeds], 0)?,
                Tensor::cat(&[repeat_batch(&neg.pooled, items)?, pos_pooled], 0)?,
            )
        } else {
            (pos_embeds, pos_pooled)
        };
        let cond = UNetConditioning {
            encoder_hidden_states: &ehs,
            text_embeds: &pooled,
            time_ids: &time_ids,
        };
        let shared_attention = if set.attention.is_active() && items > 1 {
            Some(SharedAttention::new(
                set.attention,
                if cfg { 2 } else { 1 },
            )?)
        } else {
            None
        };
        let opts = ForwardOptions {
            tiling: params.tiling,
            shared_attention,
        };

        let timesteps = sched.timesteps().to_vec();
        let total = timesteps.len() - start;
        for (i, &t) in timesteps.iter().enumerate().skip(start) {
            let half = match &reference {
                Some((mean, draw)) => {
                    let noisy = sched.add_noise(mean, draw, i)?.to_dtype(latents.dtype())?;
                    Tensor::cat(&[&noisy, &latents], 0)?
                }
                None => latents.clone(),
            };
            let input = if cfg {
                Tensor::cat(&[&half, &half], 0)?
            } else {
                half
            };
            let input = sched.scale_model_input(&input, i)?;
            let pred = self.unet.forward_with_options(&input, t, &cond, &opts)?;
            let pred = if cfg {
                let uncond = pred.narrow(0, extra, n)?;
                let text = pred.narrow(0, items + extra, n)?;
                (&uncond + (text - &uncond)?.affine(params.guidance_scale, 0.0)?)?
            } else {
                pred.narrow(0, extra, n)?
            };
            let step_noise = if sched.needs_noise(i) {
                let draw = noise.normal(&[1, c, lh, lw], &self.device)?;
                Some(repeat_batch(&draw.to_dtype(latents.dtype())?, n)?)
            } else {
                None
            };
            latents = sched.step(&pred, i, &latents, step_noise.as_ref())?;
            report_step(progress, i + 1 - start, total, t, &latents)?;
        }
        // One frame at a time: a batch of full-size f32 decodes would need n times the memory
        // for no speed-up (the VAE fills the GPU with one image).
        let images = (0..n)
            .map(|k| self.decode_with(&latents.narrow(0, k, 1)?, params.tiling))
            .collect::<Result<Vec<_>>>()?;
        let image = cat_batch(images)?;
        Ok(Generated {
            latents,
            image,
            truncated_tokens: truncated,
        })
    }
}
