//! [`CachedEngine`]: any [`SpriteEngine`] with the model identity, a memory of recent work, a
//! disk cache and sheets made frame by frame, so that nothing is generated twice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use image::RgbaImage;
use pixelgen_pixel::PixelOptions;
use pixelgen_pixel::set::{Consistency, SetOptions, measure, pixelize_set};
use pixelgen_pixel::sheet::{Frame, Sheet, SheetLayout, pack};

use crate::cache::CacheKey;
use crate::disk::DiskCache;
use crate::engine::{Control, Progress, SpriteEngine, frame_progress};
use crate::error::{PixelGenError, Result};
use crate::memory::MemoryCache;
use crate::model::ModelIdentity;
use crate::plan::Plan;
use crate::recipe::Recipe;
use crate::tileset::TilesetOutput;

/// Checks every LoRA file of `plan` (a regular file of plausible size, so reading it ends)
/// and hashes it for the cache key, reporting step 0 between chunks so a cancel stops a long
/// hash. The digests are remembered, so the key is computed from the memo afterwards.
fn check_lora_files(plan: &Plan, progress: &mut dyn FnMut(&Progress) -> Control) -> Result<()> {
    let total = plan.recipe().steps_or_default();
    for lora in &plan.recipe().loras {
        crate::digest::check_lora_file(&lora.path)?;
        let mut keep_going = || {
            let waiting = Progress {
                step: 0,
                total,
                preview: None,
            };
            progress(&waiting) == Control::Continue
        };
        crate::digest::file_digest_interruptible(&lora.path, &mut keep_going)?;
    }
    Ok(())
}

/// Reports frame `i` of `n` (of `per_frame` steps each) as done without running it (it came
/// from a cache); a cancel there stops the job.
fn report_done(
    i: usize,
    n: usize,
    per_frame: usize,
    progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<()> {
    let done = Progress {
        step: (i + 1) * per_frame,
        total: n * per_frame,
        preview: None,
    };
    if progress(&done) == Control::Cancel {
        return Err(PixelGenError::Cancelled {
            step: done.step,
            total: done.total,
        });
    }
    Ok(())
}

/// The default memory budget of a [`CachedEngine`]: 64 MiB of RGBA (some 16 000 32x32 sprites).
pub const DEFAULT_MEMORY_CACHE_BYTES: usize = 64 << 20;

/// A finished sprite or sprite sheet and what made it.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The sprite, or the packed sheet (RGBA, binary alpha where transparency was asked for).
    pub image: RgbaImage,
    /// For a sheet: where each frame is (grid, frame rects, durations). `None` for one sprite.
    pub layout: Option<SheetLayout>,
    /// The recipe with its seed fixed: regenerates exactly this image.
    pub recipe: Recipe,
    /// The content address of `recipe` on the model that ran it.
    pub key: CacheKey,
    /// Served from the memory or disk cache: the model did not run.
    pub from_cache: bool,
    /// Some frame found no pixel grid and was resampled to the fallback size.
    pub fell_back: bool,
    /// For a set: how consistent its finished frames are (palette sizes, silhouette IoU and
    /// colour-histogram distance against the first frame, anchor drift). `None` otherwise.
    pub consistency: Option<Consistency>,
    /// For a tileset: its tiles' codes and how its seams scored. `None` otherwise.
    pub tileset: Option<TilesetOutput>,
    /// Time from the request to the finished image.
    pub elapsed: Duration,
}

impl Generated {
    /// `plan`'s output as just made (the caller sets `elapsed`).
    pub(crate) fn made(
        plan: &Plan,
        key: CacheKey,
        image: RgbaImage,
        layout: Option<SheetLayout>,
        fell_back: bool,
    ) -> Self {
        Self {
            image,
            layout,
            recipe: plan.recipe().clone(),
            key,
            from_cache: false,
            fell_back,
            consistency: None,
            tileset: None,
            elapsed: Duration::ZERO,
        }
    }

    /// The animation clips of a sheet (its frame tags: a set's `walk_east`, ...); empty for
    /// one sprite or an untagged sheet.
    pub fn clips(&self) -> pixelgen_pixel::clip::Clips {
        self.layout
            .as_ref()
            .map(pixelgen_pixel::clip::Clips::from_layout)
            .unwrap_or_default()
    }
}

/// The frames of a packed sheet, cut out in frame order.
fn sheet_frames(sheet: &Sheet) -> Vec<RgbaImage> {
    sheet
        .layout
        .frames
        .iter()
        .map(|f| {
            let r = f.rect;
            image::imageops::crop_imm(&sheet.image, r.x, r.y, r.w, r.h).to_image()
        })
        .collect()
}

/// Wraps a [`SpriteEngine`] so that every host (the Bevy plugin, the CLI, a server) shares
/// the same request path and caches:
///
/// - the model identity is asked for once;
/// - a plan's content address ([`CacheKey`]) is looked up in memory (recently made sprites,
///   least recently used dropped first) and then in the [`DiskCache`], if one is set; a hit
///   never touches the model;
/// - a sheet is made frame by frame, each frame under the key a one-sprite request for it
///   has, so a frame repeated in a sheet, or made before by another sheet or as a sprite, is
///   not generated again;
/// - everything generated is remembered in memory and written to the disk cache.
///
/// ```no_run
/// use pixelgen::{CachedEngine, Control, DiskCache, Generator, ModelConfig, ModelSource, Recipe};
///
/// # fn main() -> pixelgen::Result<()> {
/// let generator = Generator::new(ModelConfig::new(ModelSource::local("models/sdxl")));
/// let mut engine = CachedEngine::new(generator).with_disk_cache(DiskCache::new(".pixelgen/cache"));
/// let potion = engine.generate(&Recipe::new("red potion"), &mut |_| Control::Continue)?;
/// let again = engine.generate(&potion.recipe, &mut |_| Control::Continue)?;
/// assert!(again.from_cache && again.image == potion.image);
/// # Ok(())
/// # }
/// ```
pub struct CachedEngine<E = Box<dyn SpriteEngine>> {
    engine: E,
    identity: Option<ModelIdentity>,
    memory: MemoryCache,
    disk: Option<DiskCache>,
}

impl<E> std::fmt::Debug for CachedEngine<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedEngine")
            .field("identity", &self.identity)
            .field("disk", &self.disk)
            .finish_non_exhaustive()
    }
}

impl<E: SpriteEngine> CachedEngine<E> {
    /// `engine` with a memory cache of [`DEFAULT_MEMORY_CACHE_BYTES`] and no disk cache.
    pub fn new(engine: E) -> Self {
        Self {
            engine,
            identity: None,
            memory: MemoryCache::new(DEFAULT_MEMORY_CACHE_BYTES),
            disk: None,
        }
    }

    /// Keeps at most `bytes` of recent RGBA images in memory (0 turns the memory cache off).
    pub fn with_memory_bytes(mut self, bytes: usize) -> Self {
        self.memory = MemoryCache::new(bytes);
        self
    }

    /// Looks finished work up in `cache` and stores new work there.
    pub fn with_disk_cache(mut self, cache: DiskCache) -> Self {
        self.disk = Some(cache);
        self
    }

    /// The disk cache, if any.
    pub fn disk_cache(&self) -> Option<&DiskCache> {
        self.disk.as_ref()
    }

    /// The wrapped engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The wrapped engine, mutably (e.g. to reset it after a panic).
    pub fn engine_mut(&mut self) -> &mut E {
        &mut self.engine
    }

    /// The engine's model identity, asked for once.
    pub fn model_identity(&mut self) -> Result<ModelIdentity> {
        if let Some(id) = &self.identity {
            return Ok(id.clone());
        }
        let id = self.engine.model_identity()?;
        self.identity = Some(id.clone());
        Ok(id)
    }

    /// The content address of `plan` on this engine's model.
    pub fn key(&mut self, plan: &Plan) -> Result<CacheKey> {
        plan.key(&self.model_identity()?)
    }

    /// Plans `recipe` ([`Plan::new`]: checked, seed drawn) and runs it.
    pub fn generate(
        &mut self,
        recipe: &Recipe,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<Generated> {
        self.run(&Plan::new(recipe.clone())?, progress)
    }

    /// Makes `plan`'s sprite or sheet, from the caches where it was made before.
    pub fn run(
        &mut self,
        plan: &Plan,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<Generated> {
        let start = Instant::now();
        check_lora_files(plan, progress)?;
        if let Some(r) = plan.recipe().set.as_ref().and_then(|s| s.reference_image()) {
            // Readable and of the sprite's shape, before any key or work.
            r.read(plan.recipe().size)?;
        }
        // An edit's source and mask: read and checked once, before any key or work; the
        // plan carries them to the engine and to putting the unmasked pixels back.
        let read;
        let plan = match &plan.recipe().edit {
            Some(e) if plan.edit().is_none() => {
                read = plan.clone().with_edit(e.read(plan.recipe().size)?);
                &read
            }
            _ => plan,
        };
        let key = self.key(plan)?;
        if let Some(mut hit) = self.cached(plan, key) {
            hit.elapsed = start.elapsed();
            return Ok(hit);
        }
        let mut made = if plan.recipe().tileset.is_some() {
            self.make_tileset(plan, key, progress)?
        } else if plan.set_frames().is_some() {
            self.make_set(plan, key, progress)?
        } else if plan.is_sheet() {
            self.make_sheet(plan, key, progress)?
        } else {
            self.make_frame(plan, key, progress)?
        };
        made.elapsed = start.elapsed();
        Ok(made)
    }

    /// `plan`'s finished image from memory or disk, if it was made before (an unreadable
    /// disk entry is a miss, reported through `tracing`).
    pub fn cached(&mut self, plan: &Plan, key: CacheKey) -> Option<Generated> {
        let (image, layout, consistency, tileset) = match plan.sheet_layout() {
            Some(_) => {
                let sheet = self.disk.as_ref()?.get_sheet(&key).unwrap_or_else(|e| {
                    tracing::warn!("pixelgen: ignoring the cache entry {key}: {e}");
                    None
                })?;
                let frames = sheet_frames(&sheet);
                let consistency = plan
                    .set_options()
                    .map(|opts| measure(&frames, 0, opts.anchor));
                let tileset = match &plan.recipe().tileset {
                    Some(set) => match TilesetOutput::measure(set, &frames) {
                        Ok(out) => Some(out),
                        Err(e) => {
                            tracing::warn!("pixelgen: ignoring the cache entry {key}: {e}");
                            return None;
                        }
                    },
                    None => None,
                };
                (sheet.image, Some(sheet.layout), consistency, tileset)
            }
            None => (self.cached_frame(key)?, None, None, None),
        };
        Some(Generated {
            from_cache: true,
            consistency,
            tileset,
            ..Generated::made(plan, key, image, layout, false)
        })
    }

    /// A frame or sprite made before: memory first, then disk (a disk hit is remembered).
    fn cached_frame(&mut self, key: CacheKey) -> Option<RgbaImage> {
        if let Some(image) = self.memory.get(&key) {
            return Some(image);
        }
        let image = self.disk.as_ref()?.get_sprite(&key).unwrap_or_else(|e| {
            tracing::warn!("pixelgen: ignoring the cache entry {key}: {e}");
            None
        })?;
        self.memory.put(key, &image);
        Some(image)
    }

    /// Renders one frame and remembers it in memory and on disk. For an edit, every pixel
    /// outside the mask is put back from the source, whatever the engine drew there.
    fn make_frame(
        &mut self,
        plan: &Plan,
        key: CacheKey,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<Generated> {
        let mut rendered = self.engine.render(plan, progress)?;
        if let Some(inputs) = plan.edit() {
            rendered.image = crate::edit::keep_unmasked(&rendered.image, inputs);
        }
        self.memory.put(key, &rendered.image);
        if let Some(disk) = &self.disk
            && let Err(e) = disk.put_sprite(&key, &rendered.image)
        {
            tracing::warn!("pixelgen: cannot write the cache entry {key}: {e}");
        }
        Ok(Generated::made(
            plan,
            key,
            rendered.image,
            None,
            rendered.fell_back,
        ))
    }

    /// Writes a finished sheet to the disk cache, if any (a failure is logged: the work is
    /// returned all the same).
    pub(crate) fn store_sheet(&self, key: CacheKey, sheet: &Sheet) {
        if let Some(disk) = &self.disk
            && let Err(e) = disk.put_sheet(&key, sheet)
        {
            tracing::warn!("pixelgen: cannot write the cache entry {key}: {e}");
        }
    }

    /// Frame `i` of `n` of a multi-frame job: from the caches when made before (progress
    /// then jumps past it), else rendered and remembered. Returns the image and whether it
    /// fell back to resampling.
    pub(crate) fn frame_image(
        &mut self,
        frame: &Plan,
        frame_key: CacheKey,
        i: usize,
        n: usize,
        per_frame: &mut usize,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<(RgbaImage, bool)> {
        if let Some(image) = self.cached_frame(frame_key) {
            report_done(i, n, *per_frame, progress)?;
            return Ok((image, false));
        }
        let mut on_step = frame_progress(i, n, per_frame, progress);
        let sprite = self.make_frame(frame, frame_key, &mut on_step)?;
        Ok((sprite.image, sprite.fell_back))
    }

    /// Every frame (each from the caches when made before, identical frames once), then
    /// packing. Progress counts steps across all frames.
    fn make_sheet(
        &mut self,
        plan: &Plan,
        key: CacheKey,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<Generated> {
        let frame_plans = plan.frames();
        let n = frame_plans.len();
        // Steps per frame: the recipe's until the engine reports its own (a preset may set
        // them), so a sheet's progress only grows.
        let mut per_frame = plan.recipe().steps_or_default().max(1);
        let mut made: HashMap<CacheKey, RgbaImage> = HashMap::new();
        let mut frames = Vec::with_capacity(n);
        let mut fell_back = false;
        for (i, frame) in frame_plans.iter().enumerate() {
            let frame_key = self.key(frame)?;
            let image = match made.get(&frame_key) {
                Some(image) => {
                    report_done(i, n, per_frame, progress)?;
                    image.clone()
                }
                None => {
                    let (image, fell) =
                        self.frame_image(frame, frame_key, i, n, &mut per_frame, progress)?;
                    fell_back |= fell;
                    image
                }
            };
            made.insert(frame_key, image.clone());
            frames.push(Frame::new(image).with_name(format!("frame {i}")));
        }
        let sheet = pack(&frames, &plan.sheet_options())?;
        self.store_sheet(key, &sheet);
        Ok(Generated::made(
            plan,
            key,
            sheet.image,
            Some(sheet.layout),
            fell_back,
        ))
    }
    /// A set: the engine draws its frames (as one batch sharing attention, for the
    /// [`Generator`](crate::Generator)), the pixel pipeline takes them together (one cell
    /// size, palette, outline and anchor; mirrored views are flipped from their sources
    /// first), and the frames are packed with the set's clips. The consistency is measured on the
    /// finished frames.
    fn make_set(
        &mut self,
        plan: &Plan,
        key: CacheKey,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> Result<Generated> {
        let (Some(set), Some(opts)) = (plan.set_frames(), plan.set_options()) else {
            return Err(PixelGenError::Engine(
                "make_set called for a plan without a set".into(),
            ));
        };
        let rendered = self.engine.render_set(plan, progress)?;
        if rendered.frames.len() != set.prompts.len() {
            return Err(PixelGenError::Engine(format!(
                "the engine drew {} frames for a set of {}",
                rendered.frames.len(),
                set.prompts.len()
            )));
        }
        let opts = if rendered.pixel_art {
            // Finished sprites: only one palette and one anchor are left to give them.
            SetOptions {
                pixel: PixelOptions {
                    detect_grid: false,
                    background: None,
                    remove_strays: false,
                    outline: None,
                    ..opts.pixel
                },
                ..opts
            }
        } else {
            opts
        };
        // Mirrored views are flipped before the set pass, so they are aligned on the shared
        // anchor like every other frame.
        let sources: Vec<RgbaImage> = set
            .frames
            .iter()
            .map(|f| {
                let image = &rendered.frames[f.source];
                if f.mirrored {
                    image::imageops::flip_horizontal(image)
                } else {
                    image.clone()
                }
            })
            .collect();
        let finished = pixelize_set(&sources, &opts)?.frames;
        let consistency = measure(&finished, 0, opts.anchor);
        let frames: Vec<Frame> = finished
            .into_iter()
            .zip(&set.frames)
            .map(|(image, f)| {
                Frame::new(image)
                    .with_duration(f.duration_ms)
                    .with_name(f.name.clone())
            })
            .collect();
        let sheet = pack(&frames, &plan.sheet_options())?;
        self.store_sheet(key, &sheet);
        Ok(Generated {
            consistency: Some(consistency),
            ..Generated::made(plan, key, sheet.image, Some(sheet.layout), false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Rendered;
    use crate::recipe::{Frames, Seed, Size};
    use image::Rgba;

    /// Draws a solid sprite whose colour comes from the prompt and seed; counts its renders.
    #[derive(Default)]
    struct Solid {
        rendered: Vec<String>,
        identities: usize,
    }

    impl SpriteEngine for Solid {
        fn model_identity(&mut self) -> Result<ModelIdentity> {
            self.identities += 1;
            Ok(ModelIdentity("solid".into()))
        }

        fn render(
            &mut self,
            plan: &Plan,
            progress: &mut dyn FnMut(&Progress) -> Control,
        ) -> Result<Rendered> {
            let r = plan.recipe();
            let total = r.steps_or_default();
            for step in 1..=total {
                let p = Progress {
                    step,
                    total,
                    preview: None,
                };
                if progress(&p) == Control::Cancel {
                    return Err(PixelGenError::Cancelled { step, total });
                }
            }
            self.rendered.push(r.prompt.clone());
            let shade = (r.prompt.len() as u64 * 31 + r.seed.value().unwrap_or(0)) as u8;
            Ok(Rendered {
                image: RgbaImage::from_pixel(r.size.width, r.size.height, Rgba([shade, 9, 9, 255])),
                fell_back: false,
            })
        }
    }

    fn recipe(prompt: &str) -> Recipe {
        Recipe {
            seed: Seed::Fixed(3),
            steps: Some(2),
            size: Size::new(4, 3),
            ..Recipe::new(prompt)
        }
    }

    fn go(engine: &mut CachedEngine<Solid>, r: &Recipe) -> Generated {
        engine.generate(r, &mut |_| Control::Continue).unwrap()
    }

    fn temp_disk() -> DiskCache {
        DiskCache::new(std::env::temp_dir().join(format!("pixelgen-cached-{}", Seed::draw())))
    }

    #[test]
    fn a_repeat_comes_from_memory_and_the_identity_is_asked_once() {
        let mut engine = CachedEngine::new(Solid::default());
        let a = go(&mut engine, &recipe("coin"));
        let b = go(&mut engine, &recipe("coin"));
        assert!(!a.from_cache && b.from_cache);
        assert_eq!((a.image.clone(), a.key), (b.image, b.key));
        assert_eq!(engine.engine().rendered, vec!["coin"]);
        assert_eq!(engine.engine().identities, 1);
        // Without memory, the model runs again.
        let mut bare = CachedEngine::new(Solid::default()).with_memory_bytes(0);
        go(&mut bare, &recipe("coin"));
        assert!(!go(&mut bare, &recipe("coin")).from_cache);
        assert_eq!(bare.engine().rendered.len(), 2);
    }

    #[test]
    fn the_disk_cache_outlives_the_engine_for_sprites_and_sheets() {
        let disk = temp_disk();
        let sheet = Recipe {
            frames: Frames::Prompts(vec!["idle".into(), "step".into()]),
            ..recipe("walk")
        };
        let mut first = CachedEngine::new(Solid::default()).with_disk_cache(disk.clone());
        let sprite = go(&mut first, &recipe("coin"));
        let packed = go(&mut first, &sheet);
        let mut second = CachedEngine::new(Solid::default())
            .with_memory_bytes(0)
            .with_disk_cache(disk.clone());
        let sprite2 = go(&mut second, &recipe("coin"));
        let packed2 = go(&mut second, &sheet);
        assert!(sprite2.from_cache && packed2.from_cache);
        assert_eq!(sprite2.image, sprite.image);
        assert_eq!(
            (packed2.image, packed2.layout),
            (packed.image, packed.layout)
        );
        assert!(second.engine().rendered.is_empty(), "the model never ran");
        std::fs::remove_dir_all(disk.dir()).unwrap();
    }

    #[test]
    fn a_sheet_makes_each_distinct_frame_once_and_shares_frames_with_sprites() {
        let mut engine = CachedEngine::new(Solid::default()).with_memory_bytes(0);
        let sheet = Recipe {
            frames: Frames::Prompts(vec!["idle".into(), "blink".into(), "idle".into()]),
            ..recipe("hero")
        };
        let mut seen = Vec::new();
        let out = engine
            .generate(&sheet, &mut |p| {
                seen.push((p.step, p.total));
                Control::Continue
            })
            .unwrap();
        assert_eq!(engine.engine().rendered, vec!["idle", "blink"]);
        assert_eq!(seen, vec![(1, 6), (2, 6), (3, 6), (4, 6), (6, 6)]);
        let layout = out.layout.expect("a sheet");
        assert_eq!(layout.frames.len(), 3);
        let plan = Plan::new(sheet.clone()).unwrap();
        assert_eq!(
            (out.image.width(), out.image.height()),
            (plan.output_size().width, plan.output_size().height),
            "the plan knew the sheet's size"
        );
        // Frames 0 and 2 are the same pixels; frame 0 is what a sprite request makes.
        let crop = |i: usize| {
            let r = layout.frames[i].rect;
            image::imageops::crop_imm(&out.image, r.x, r.y, r.w, r.h).to_image()
        };
        assert_eq!(crop(0), crop(2));
        assert_ne!(crop(0), crop(1));
        let mut with_memory = CachedEngine::new(Solid::default());
        go(&mut with_memory, &sheet.frame_recipe(1).unwrap());
        go(&mut with_memory, &sheet);
        assert_eq!(
            with_memory.engine().rendered,
            vec!["blink", "idle"],
            "the sprite made before is a frame of the sheet"
        );
    }

    #[test]
    fn cancel_stops_a_sheet_and_bad_recipes_never_reach_the_engine() {
        let mut engine = CachedEngine::new(Solid::default());
        let sheet = Recipe {
            frames: Frames::Prompts(vec!["a".into(), "b".into()]),
            ..recipe("hero")
        };
        let err = engine
            .generate(&sheet, &mut |p| {
                if p.step == 3 {
                    Control::Cancel
                } else {
                    Control::Continue
                }
            })
            .unwrap_err();
        assert!(matches!(err, PixelGenError::Cancelled { .. }), "{err}");
        let err = engine
            .generate(&recipe(""), &mut |_| Control::Continue)
            .unwrap_err();
        assert!(
            matches!(
                err,
                PixelGenError::InvalidRecipe {
                    field: "prompt",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(engine.engine().rendered, vec!["a"]);
    }
}
