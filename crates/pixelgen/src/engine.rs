//! [`SpriteEngine`]: one planned frame in, pixels out; [`Generator`] is the real one (SDXL
//! then the pixel-art pipeline).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use image::RgbaImage;
use pixelgen_diffusion::{
    GenerationParams, Lora, ReferenceAttention, SamplingPreset, ScaledLora, SdxlPipeline,
    SdxlWeights, SeededNoise, SetParams, SetReference, mask_from_rgba, rgba_to_tensor,
    to_rgba_images,
};
use pixelgen_pixel::pixelize;

use crate::error::{PixelGenError, Result, invalid};
use crate::model::{ModelConfig, ModelIdentity, ModelSource};
use crate::plan::Plan;
use crate::recipe::LoraRef;

/// Progress of a running generation, reported after every sampling step.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Steps done so far (1-based).
    pub step: usize,
    /// Steps this run takes.
    pub total: usize,
    /// A small RGB preview of the current latents (one pixel per latent pixel, 1/8 of the
    /// generation size; see [`latents_to_rgb`](crate::latents_to_rgb)), when the engine makes one.
    pub preview: Option<image::RgbImage>,
}

/// The caller's answer to [`Progress`]: go on or stop (one type for the whole stack: the
/// engine returns [`PixelGenError::Cancelled`] when told to stop).
pub use pixelgen_diffusion::Control;

/// One frame as an engine drew it.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The pixel-art sprite (RGBA, binary alpha where transparency was asked for).
    pub image: RgbaImage,
    /// No pixel grid was found and the image was resampled to the fallback size.
    pub fell_back: bool,
}

/// The frames a set's model draws ([`SetFrames::prompts`](crate::SetFrames::prompts)), as an
/// engine made them, before the set goes through the pixel pipeline together.
#[derive(Debug, Clone)]
pub struct RenderedSet {
    /// One image per drawn frame, in order.
    pub frames: Vec<RgbaImage>,
    /// The frames are finished sprites already (each through the pixel pipeline on its own,
    /// as [`SpriteEngine::render`] makes them), not the model's images at the generation
    /// size: the set pass then only joins their palettes and anchors.
    pub pixel_art: bool,
}

/// `progress` for frame `i` of `n`, each taking `per_frame` steps until the engine reports
/// its own count (a preset may set it): steps count across all frames, so the whole run's
/// progress only grows.
pub(crate) fn frame_progress<'a>(
    i: usize,
    n: usize,
    per_frame: &'a mut usize,
    progress: &'a mut dyn FnMut(&Progress) -> Control,
) -> impl FnMut(&Progress) -> Control + 'a {
    move |p: &Progress| {
        *per_frame = p.total.max(1);
        progress(&Progress {
            step: i * *per_frame + p.step,
            total: n * *per_frame,
            preview: p.preview.clone(),
        })
    }
}

/// Something that draws one planned frame: the real [`Generator`], a remote backend or a
/// test double. Hosts wrap it in a [`CachedEngine`](crate::CachedEngine), which makes
/// sheets frame by frame, keys and caches the results.
///
/// Implementations may block for a long time and are run on a worker thread.
pub trait SpriteEngine: Send {
    /// The identity of the model behind this engine (part of every cache key).
    fn model_identity(&mut self) -> Result<ModelIdentity>;

    /// Draws the sprite of `plan`, a single-frame plan (see [`Plan::frames`]): validated,
    /// with its seed fixed. `progress` is called after every step; returning
    /// [`Control::Cancel`] stops the run with [`PixelGenError::Cancelled`].
    fn render(
        &mut self,
        plan: &Plan,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<Rendered>;

    /// Draws the frames of `plan`, a set ([`Plan::set_frames`]): one image per drawn frame,
    /// in order. `progress` counts steps across all frames.
    ///
    /// The default draws each frame on its own with [`SpriteEngine::render`] (no shared
    /// attention, and a reference image is not looked at); the set pass then gives them one
    /// palette and anchor. The [`Generator`] draws them as one batch sharing attention with
    /// the set's reference.
    fn render_set(
        &mut self,
        plan: &Plan,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<RenderedSet> {
        let frames = plan.frames();
        let n = frames.len();
        let mut per_frame = plan.recipe().steps_or_default().max(1);
        let mut images = Vec::with_capacity(n);
        for (i, frame) in frames.iter().enumerate() {
            let mut on_step = frame_progress(i, n, &mut per_frame, progress);
            images.push(self.render(frame, &mut on_step)?.image);
        }
        Ok(RenderedSet {
            frames: images,
            pixel_art: true,
        })
    }
}

impl<E: SpriteEngine + ?Sized> SpriteEngine for Box<E> {
    fn model_identity(&mut self) -> Result<ModelIdentity> {
        (**self).model_identity()
    }

    fn render(
        &mut self,
        plan: &Plan,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<Rendered> {
        (**self).render(plan, progress)
    }

    fn render_set(
        &mut self,
        plan: &Plan,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<RenderedSet> {
        (**self).render_set(plan, progress)
    }
}

/// The real engine: SDXL (loaded lazily, once) then pixel-art post-processing.
///
/// The base weights are opened once and stay memory-mapped ([`SdxlWeights`]); a recipe with
/// other LoRAs or strengths than the last one rebuilds the pipeline from that mapping (no base
/// file is re-opened), and parsed LoRA files are kept for reuse.
#[derive(Debug)]
pub struct Generator {
    config: ModelConfig,
    identity: Option<ModelIdentity>,
    weights: Option<SdxlWeights>,
    /// The built pipeline and the LoRA set it was built with.
    pipeline: Option<(Vec<LoraRef>, SdxlPipeline)>,
    lora_files: HashMap<PathBuf, Arc<Lora>>,
    /// The LoRAs of a registry model, merged before a recipe's own.
    model_loras: Vec<LoraRef>,
    /// The sampling preset of a registry model: fills what a recipe leaves unset.
    preset: Option<SamplingPreset>,
    previews: bool,
}

impl Generator {
    /// A generator for `config`; nothing is read until the first use.
    pub fn new(config: ModelConfig) -> Self {
        Self {
            config,
            identity: None,
            weights: None,
            pipeline: None,
            lora_files: HashMap::new(),
            model_loras: Vec::new(),
            preset: None,
            previews: true,
        }
    }

    /// Whether every [`Progress`] carries a latent preview (on by default; it costs one
    /// copy of the latents to the host per step).
    pub fn with_previews(mut self, on: bool) -> Self {
        self.previews = on;
        self
    }

    /// The model configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Whether the model is loaded.
    pub fn is_loaded(&self) -> bool {
        self.pipeline.is_some()
    }

    /// Loads the model now if it is not loaded yet (without LoRAs, unless a pipeline with
    /// LoRAs is already built). A failure leaves the generator unloaded, so the next call
    /// tries again.
    pub fn load(&mut self) -> Result<&SdxlPipeline> {
        if self.pipeline.is_none() {
            self.build(&[])?;
        }
        self.pipeline
            .as_ref()
            .map(|(_, p)| p)
            .ok_or_else(|| PixelGenError::Engine("model vanished after loading".into()))
    }

    /// The pipeline with a registry model's own LoRAs then `loras` merged in: the current
    /// one when it has them, else rebuilt from the memory-mapped base.
    pub fn pipeline_with(&mut self, loras: &[LoraRef]) -> Result<&SdxlPipeline> {
        let current = self.pipeline.as_ref().map(|(l, _)| l.as_slice());
        if current != Some(loras) {
            self.build(loras)?;
        }
        self.pipeline
            .as_ref()
            .map(|(_, p)| p)
            .ok_or_else(|| PixelGenError::Engine("model vanished after loading".into()))
    }

    fn build(&mut self, loras: &[LoraRef]) -> Result<()> {
        let requested = loras.to_vec();
        let device = self.config.device.open()?;
        if self.weights.is_none() {
            let load_err = |source| PixelGenError::ModelLoad {
                model: self.config.source.to_string(),
                source: Box::new(source),
            };
            let (weights, own, preset) = match &self.config.source {
                ModelSource::Local(dir) => (
                    SdxlWeights::open(dir, self.config.variant.as_deref()).map_err(load_err)?,
                    vec![],
                    None,
                ),
                ModelSource::Registry(name) => {
                    let (spec, located) = crate::model::locate_registry(
                        name,
                        self.config.hub_cache.as_deref(),
                        self.config.registry.as_deref(),
                    )?;
                    let own = located
                        .loras
                        .iter()
                        .map(|l| LoraRef {
                            path: l.path.clone(),
                            unet_strength: l.unet_strength,
                            text_strength: l.text_strength,
                        })
                        .collect();
                    // A diffusers folder or a single-file checkpoint, then the VAE.
                    let weights = located.open().map_err(load_err)?;
                    (weights, own, Some(spec.sampling))
                }
            };
            self.weights = Some(weights);
            self.model_loras = own;
            self.preset = preset;
        }
        // The registry model's own LoRAs come first.
        let loras: Vec<LoraRef> = self.model_loras.iter().chain(loras).cloned().collect();
        let loras = loras.as_slice();
        let mut scaled = Vec::with_capacity(loras.len());
        for l in loras {
            let lora = match self.lora_files.get(&l.path) {
                Some(lora) => lora.clone(),
                None => {
                    let lora = Arc::new(Lora::load(&l.path)?);
                    self.lora_files.insert(l.path.clone(), lora.clone());
                    lora
                }
            };
            scaled.push(ScaledLora {
                lora,
                unet_strength: l.unet_strength,
                text_strength: l.text_strength,
            });
        }
        let weights = self
            .weights
            .as_ref()
            .ok_or_else(|| PixelGenError::Engine("model weights vanished after opening".into()))?;
        // Drop the old pipeline first: two full SDXL models need not fit at once.
        self.pipeline = None;
        let (pipe, _report) = weights
            .pipeline(&scaled, self.config.precision.dtype(), &device)
            .map_err(|source| PixelGenError::ModelLoad {
                model: self.config.source.to_string(),
                source: Box::new(source),
            })?;
        self.pipeline = Some((requested, pipe));
        Ok(())
    }
}

impl SpriteEngine for Generator {
    fn model_identity(&mut self) -> Result<ModelIdentity> {
        if let Some(id) = &self.identity {
            return Ok(id.clone());
        }
        let id = match self.config.identity() {
            Ok(id) => id,
            // The loader says best what is wrong with a model it cannot read ("no
            // `unet/config.json` in DIR: is this a diffusers SDXL folder?").
            Err(e) => {
                self.load()?;
                return Err(e);
            }
        };
        self.identity = Some(id.clone());
        Ok(id)
    }

    fn render(
        &mut self,
        plan: &Plan,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<Rendered> {
        if plan.is_sheet() {
            return Err(invalid(
                "frames",
                "an engine draws one frame: make sheets with CachedEngine (it splits them)",
            ));
        }
        let (seed, params) = self.prepare(plan)?;
        let previews = self.previews;
        let recipe = plan.recipe();
        let pipe = self.pipeline_with(&recipe.loras)?;
        let mut on_step = step_reporter(previews, 0, 1, progress);
        let mut noise = SeededNoise::new(seed);
        // An edit's source and mask as the plan holds them (read once by the cached
        // engine), or read here when the plan came straight from a recipe.
        let read;
        let edit = match (plan.edit(), &recipe.edit) {
            (Some(inputs), _) => Some(inputs),
            (None, Some(edit)) => {
                read = edit.read(recipe.size)?;
                Some(&read)
            }
            (None, None) => None,
        };
        let out = match edit {
            // The source and mask at the generation size (nearest neighbour); the cached
            // engine puts the unmasked pixels back after the pixel pipeline.
            Some(inputs) => {
                let (w, h) = (params.width, params.height);
                let image =
                    rgba_to_tensor(&inputs.source, w, h, REFERENCE_BACKGROUND, pipe.device())?;
                let mask = mask_from_rgba(&inputs.mask, w, h, pipe.device())?;
                pipe.inpaint(
                    &params,
                    &image,
                    &mask,
                    &inputs.inpaint,
                    &mut noise,
                    &mut on_step,
                )?
            }
            None => pipe.txt2img(&params, &mut noise, &mut on_step)?,
        };
        let raw = to_rgba_images(&out.image)?
            .into_iter()
            .next()
            .ok_or_else(|| PixelGenError::Engine("the model returned no image".into()))?;
        let pixel = pixelize(&raw, &plan.recipe().pixel_options())?;
        Ok(Rendered {
            image: pixel.image,
            fell_back: pixel.fell_back,
        })
    }

    /// The set's frames in batches of at most 8 (`SET_CHUNK_FRAMES`), each sharing attention
    /// with the reference: a user's image, or the set's first frame (drawn again at the head
    /// of every later batch: the same noise and prompt give it the same trajectory, and its
    /// copy is dropped). Returns the model's images at the generation size.
    fn render_set(
        &mut self,
        plan: &Plan,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<RenderedSet> {
        let (Some(frames), Some(set)) = (plan.set_frames(), plan.recipe().set.as_ref()) else {
            return Err(PixelGenError::Engine(
                "render_set needs a set plan (a recipe with `set`)".into(),
            ));
        };
        let (seed, params) = self.prepare(plan)?;
        let recipe = plan.recipe();
        let previews = self.previews;
        let pipe = self.pipeline_with(&recipe.loras)?;
        let (w, h) = (params.width, params.height);
        let image = match set.reference_image() {
            Some(r) => Some((
                rgba_to_tensor(
                    &r.read(recipe.size)?,
                    w,
                    h,
                    REFERENCE_BACKGROUND,
                    pipe.device(),
                )?,
                r.start_strength,
            )),
            None => None,
        };
        let attention = ReferenceAttention {
            strength: set.strength,
            ..ReferenceAttention::default()
        };
        let prompts = &frames.prompts;
        let chunks = set_chunks(prompts.len(), image.is_some());
        let mut out = Vec::with_capacity(prompts.len());
        for (i, chunk) in chunks.iter().enumerate() {
            let (reference, with_first) = match &image {
                Some((tensor, _)) => (SetReference::Image(tensor.clone()), false),
                None => (SetReference::FirstFrame, i > 0),
            };
            let mut batch: Vec<String> = Vec::with_capacity(chunk.len() + 1);
            if with_first {
                batch.push(prompts[0].clone());
            }
            batch.extend(chunk.clone().map(|k| prompts[k].clone()));
            let set_params = SetParams {
                prompts: batch,
                attention,
                reference,
                init: image
                    .as_ref()
                    .and_then(|(t, start)| start.map(|s| (t.clone(), s))),
            };
            let mut on_step = step_reporter(previews, i, chunks.len(), progress);
            let made = pipe.generate_set(
                &params,
                &set_params,
                &mut SeededNoise::new(seed),
                &mut on_step,
            )?;
            let images = to_rgba_images(&made.image)?;
            out.extend(images.into_iter().skip(usize::from(with_first)));
        }
        Ok(RenderedSet {
            frames: out,
            pixel_art: false,
        })
    }
}

/// Most frames drawn in one batch of a set (with the reference frame again at the head of
/// every batch after the first).
pub(crate) const SET_CHUNK_FRAMES: usize = 8;

/// Transparent pixels of a reference or edited image are drawn over this colour (white, the
/// plain background sprite prompts ask for) before the model sees it.
const REFERENCE_BACKGROUND: [u8; 3] = [255, 255, 255];

/// The frame ranges of a set of `n` frames, one per batch: the first batch holds
/// [`SET_CHUNK_FRAMES`] frames, each later one a frame less when it repeats the first frame
/// as its reference (no image reference), so no batch is larger than the first.
fn set_chunks(n: usize, image_reference: bool) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < n {
        let room = if start == 0 || image_reference {
            SET_CHUNK_FRAMES
        } else {
            SET_CHUNK_FRAMES - 1
        };
        let end = (start + room).min(n);
        chunks.push(start..end);
        start = end;
    }
    chunks
}

/// The pipeline's per-step progress as the engine's, for batch `i` of `n` (steps count
/// across batches), with a latent preview when `previews`.
fn step_reporter<'a>(
    previews: bool,
    i: usize,
    n: usize,
    progress: &'a mut dyn FnMut(&Progress) -> Control,
) -> impl FnMut(pixelgen_diffusion::Progress) -> Control + 'a {
    move |p: pixelgen_diffusion::Progress| {
        let report = Progress {
            step: i * p.total + p.step,
            total: n * p.total,
            preview: previews
                .then(|| crate::latents_to_rgb(p.latents).ok())
                .flatten(),
        };
        progress(&report)
    }
}

impl Generator {
    /// A one-frame or set plan's seed and generation parameters: the plan's model must be
    /// this engine's, and a registry model's preset fills the sampling fields the recipe
    /// leaves unset (the cache key is of the recipe as written: the preset is part of the
    /// model identity). Builds the pipeline with the recipe's LoRAs.
    fn prepare(&mut self, plan: &Plan) -> Result<(u64, GenerationParams)> {
        let recipe = plan.recipe();
        let seed = recipe
            .seed
            .value()
            .ok_or_else(|| PixelGenError::Engine("the plan has no fixed seed".into()))?;
        if let Some(name) = recipe
            .model
            .as_ref()
            .filter(|n| self.config.source != ModelSource::Registry(n.to_string()))
        {
            return Err(invalid(
                "model",
                format!(
                    "this engine runs {}, not the registry model `{name}`: build the engine \
                     for that model, or leave `model` out of the recipe",
                    self.config.source
                ),
            ));
        }
        self.pipeline_with(&recipe.loras)?;
        let sampled = match &self.preset {
            Some(preset) => recipe.with_unset_sampling_from(preset),
            None => recipe.clone(),
        };
        Ok((seed, sampled.generation_params(&sampled.prompt)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_batched_with_room_for_the_repeated_reference_frame() {
        let lens = |n, image| -> Vec<(usize, usize)> {
            set_chunks(n, image)
                .into_iter()
                .map(|r| (r.start, r.end))
                .collect()
        };
        assert_eq!(lens(3, false), [(0, 3)]);
        assert_eq!(lens(8, false), [(0, 8)]);
        // Later batches repeat frame 0 at their head, so they take 7 new frames.
        assert_eq!(lens(16, false), [(0, 8), (8, 15), (15, 16)]);
        assert_eq!(lens(16, true), [(0, 8), (8, 16)]);
        assert!(set_chunks(0, false).is_empty());
    }

    #[test]
    fn missing_model_fails_to_load_and_can_retry() {
        let cfg = ModelConfig::new(crate::model::ModelSource::local("/nonexistent/sdxl"));
        let mut g = Generator::new(cfg);
        let err = g.load().unwrap_err();
        assert!(matches!(err, PixelGenError::ModelLoad { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/sdxl"), "{err}");
        assert!(!g.is_loaded());
        assert!(g.load().is_err(), "a second attempt reports again");
    }
}
