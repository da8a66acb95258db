//! The worker thread: owns the engine, takes requests by priority, reports back by channel.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bevy::asset::RenderAssetUsages;
use bevy::image::{Image, ImageSampler, TextureAtlasLayout};
use bevy::math::{URect, UVec2};
use crossbeam_channel::{Receiver, Sender};
use pixelgen::{
    CacheKey, Control, DiskCache, GeneratedSheet, GeneratedSprite, Recipe, SheetLayout,
    SpriteEngine, generate_sheet, save_sheet, save_sprite,
};

use crate::frame_cache::FrameCache;
use crate::memory_cache::MemoryCache;
use crate::plugin::EngineFactory;
use crate::request::{SpriteError, Ticket, TicketId};

/// One request on its way to the worker.
pub(crate) struct Job {
    pub(crate) ticket: Ticket,
}

/// What the worker (or a cancel) reports to the main thread.
pub(crate) enum WorkerEvent {
    Progress {
        id: TicketId,
        step: usize,
        total: usize,
        preview: Option<Arc<image::RgbaImage>>,
    },
    Done(Box<Finished>),
    Failed {
        id: TicketId,
        error: SpriteError,
    },
}

/// A finished sprite, already converted for Bevy.
pub(crate) struct Finished {
    pub(crate) id: TicketId,
    pub(crate) image: Image,
    pub(crate) layout: Option<TextureAtlasLayout>,
    pub(crate) recipe: Recipe,
    pub(crate) key: Option<CacheKey>,
    pub(crate) saved: Option<PathBuf>,
    pub(crate) save_error: Option<String>,
    pub(crate) from_cache: bool,
}

/// Settings the worker needs.
pub(crate) struct WorkerConfig {
    pub(crate) factory: EngineFactory,
    pub(crate) output_dir: Option<PathBuf>,
    pub(crate) cache: Option<DiskCache>,
    /// Threads for the engine's CPU compute (a dedicated rayon pool); `None`: rayon's global pool.
    pub(crate) compute_threads: Option<usize>,
    /// The byte budget of the worker's memory of recent sprites (0: off).
    pub(crate) memory_cache_bytes: usize,
}

struct Queued(Job);

impl Queued {
    fn rank(&self) -> (pixelgen::Priority, Reverse<TicketId>) {
        let t = &self.0.ticket;
        (t.recipe().priority, Reverse(t.id()))
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Higher priority first, then first come first served.
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// Puts the calling thread at the lowest scheduling priority the OS allows without
/// privileges (nice 19 on Linux): generation only gets the cores the game leaves idle, so a
/// frame is never queued behind a sampling step. A refusal only costs frame-time tails.
fn lower_priority() {
    if let Err(e) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        bevy::log::debug!("pixelgen: worker thread priority unchanged ({e:?})");
    }
}

/// The worker's loop: returns when every job sender is gone.
pub(crate) fn run(config: WorkerConfig, jobs: Receiver<Job>, events: Sender<WorkerEvent>) {
    lower_priority();
    // Candle's CPU kernels (matmul through gemm, convolutions, elementwise maps) split their
    // work with rayon on the *current* pool: running every job inside a pool of `n` threads
    // caps the model at `n` cores, leaving the rest to the game's main schedule and its task
    // pools. (This thread only waits inside `install`.)
    let pool = config.compute_threads.and_then(|n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .thread_name(|i| format!("pixelgen-compute-{i}"))
            .start_handler(|_| lower_priority())
            .build()
            .inspect_err(|e| {
                bevy::log::warn!(
                    "pixelgen: no dedicated compute pool ({e}); using rayon's global pool"
                );
            })
            .ok()
    });
    let mut engine: Option<Box<dyn SpriteEngine>> = None;
    let mut memory = MemoryCache::new(config.memory_cache_bytes);
    let mut heap = BinaryHeap::new();
    loop {
        if heap.is_empty() {
            match jobs.recv() {
                Ok(job) => heap.push(Queued(job)),
                Err(_) => return,
            }
        }
        while let Ok(job) = jobs.try_recv() {
            heap.push(Queued(job));
        }
        let Some(Queued(job)) = heap.pop() else {
            continue;
        };
        if !job.ticket.claim() {
            continue; // cancelled while queued; the cancel already reported it
        }
        let id = job.ticket.id();
        let mut work = || {
            let state = (&mut engine, &mut memory);
            run_job(&config, state, &job.ticket, &jobs, &mut heap, &events)
        };
        let outcome = match &pool {
            Some(pool) => pool.install(work),
            None => work(),
        };
        job.ticket.finish();
        let event = match outcome {
            Ok(done) => WorkerEvent::Done(Box::new(done)),
            Err(error) => WorkerEvent::Failed { id, error },
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// The engine (built on the first job, dropped after a panic) and the memory of recent sprites.
type WorkerState<'a> = (&'a mut Option<Box<dyn SpriteEngine>>, &'a mut MemoryCache);

fn run_job(
    config: &WorkerConfig,
    (engine_slot, memory): WorkerState<'_>,
    ticket: &Ticket,
    jobs: &Receiver<Job>,
    heap: &mut BinaryHeap<Queued>,
    events: &Sender<WorkerEvent>,
) -> Result<Finished, SpriteError> {
    let id = ticket.id();
    let recipe = ticket.recipe();
    if engine_slot.is_none() {
        let made = catch_unwind(AssertUnwindSafe(|| config.factory.build()));
        match made {
            Ok(Ok(e)) => *engine_slot = Some(e),
            Ok(Err(e)) => return Err(SpriteError::EngineStart(Arc::new(e))),
            Err(payload) => {
                return Err(SpriteError::Panicked {
                    message: panic_message(payload.as_ref()),
                });
            }
        }
    }

    if ticket.is_sheet() {
        return run_sheet(config, (engine_slot, memory), ticket, jobs, heap, events);
    }

    // Cache lookups, memory first (the key needs the model identity, which may read the
    // model folder's configs).
    if let Some(key) = lookup_key(config, engine_slot, memory, recipe)? {
        let hit = memory.get(&key).or_else(|| {
            let cache = config.cache.as_ref()?;
            let image = read_cached(cache, &key, |c, k| c.get_sprite(k))?;
            memory.put(key, &image);
            Some(image)
        });
        if let Some(image) = hit {
            return Ok(Finished {
                id,
                image: to_bevy_image(image),
                layout: None,
                recipe: recipe.clone(),
                key: Some(key),
                saved: None,
                save_error: None,
                from_cache: true,
            });
        }
    }

    let mut on_progress = progress_reporter(id, ticket, jobs, heap, events);
    let sprite: GeneratedSprite = guarded(engine_slot, |engine| {
        engine.generate(recipe, &mut on_progress)
    })?;

    let (saved, save_error) = save_output(config, |dir| save_sprite(dir, &sprite).map(|s| s.png));
    memory.put(sprite.key, &sprite.image);
    if let Some(cache) = &config.cache
        && let Err(e) = cache.put_sprite(&sprite.key, &sprite.image)
    {
        bevy::log::warn!("pixelgen: cannot write the cache entry for {id}: {e}");
    }
    Ok(Finished {
        id,
        key: Some(sprite.key),
        image: to_bevy_image(sprite.image),
        layout: None,
        recipe: sprite.recipe,
        saved,
        save_error,
        from_cache: false,
    })
}

/// Saves into the output folder when one is configured: the PNG's path, or why saving failed
/// (a failed save is reported; the finished image still reaches the game).
fn save_output(
    config: &WorkerConfig,
    save: impl FnOnce(&Path) -> pixelgen::Result<PathBuf>,
) -> (Option<PathBuf>, Option<String>) {
    match &config.output_dir {
        Some(dir) => match save(dir) {
            Ok(png) => (Some(png), None),
            Err(e) => (None, Some(e.to_string())),
        },
        None => (None, None),
    }
}

/// Runs `f` on the engine, turning an engine error or a panic into a [`SpriteError`]. After a
/// panic the engine's state is unknown: it is dropped and a new one is built next time.
fn guarded<T>(
    engine_slot: &mut Option<Box<dyn SpriteEngine>>,
    f: impl FnOnce(&mut dyn SpriteEngine) -> pixelgen::Result<T>,
) -> Result<T, SpriteError> {
    let Some(engine) = engine_slot.as_mut() else {
        return Err(SpriteError::WorkerStopped);
    };
    match catch_unwind(AssertUnwindSafe(|| f(engine.as_mut()))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(SpriteError::from_engine(e)),
        Err(payload) => {
            *engine_slot = None;
            Err(SpriteError::Panicked {
                message: panic_message(payload.as_ref()),
            })
        }
    }
}

/// A sheet request: every frame (each made once: see [`FrameCache`]), then packing; saved as
/// PNG + Aseprite JSON + recipe.
fn run_sheet(
    config: &WorkerConfig,
    (engine_slot, memory): WorkerState<'_>,
    ticket: &Ticket,
    jobs: &Receiver<Job>,
    heap: &mut BinaryHeap<Queued>,
    events: &Sender<WorkerEvent>,
) -> Result<Finished, SpriteError> {
    let id = ticket.id();
    let recipe = ticket.recipe();
    if let Some(cache) = &config.cache {
        let key = cache_key(engine_slot, recipe)?;
        if let Some(sheet) = read_cached(cache, &key, |c, k| c.get_sheet(k)) {
            let (w, h) = sheet.image.dimensions();
            return Ok(Finished {
                id,
                layout: Some(atlas_layout(&sheet.layout, w, h)),
                image: to_bevy_image(sheet.image),
                recipe: recipe.clone(),
                key: Some(key),
                saved: None,
                save_error: None,
                from_cache: true,
            });
        }
    }
    let mut on_progress = progress_reporter(id, ticket, jobs, heap, events);
    let sheet: GeneratedSheet = guarded(engine_slot, |engine| {
        let mut frames = FrameCache::new(engine, memory, config.cache.as_ref());
        generate_sheet(&mut frames, recipe, &mut on_progress)
    })?;
    let (saved, save_error) = save_output(config, |dir| save_sheet(dir, &sheet).map(|s| s.png));
    if let Some(cache) = &config.cache
        && let Err(e) = cache.put_sheet(&sheet.key, &sheet.sheet)
    {
        bevy::log::warn!("pixelgen: cannot write the cache entry for sheet {id}: {e}");
    }
    let (w, h) = sheet.sheet.image.dimensions();
    Ok(Finished {
        id,
        layout: Some(atlas_layout(&sheet.sheet.layout, w, h)),
        image: to_bevy_image(sheet.sheet.image),
        recipe: sheet.recipe,
        key: Some(sheet.key),
        saved,
        save_error,
        from_cache: false,
    })
}

/// The progress callback shared by sprites and sheets: reports, takes new requests off the
/// channel, and answers a cancel.
fn progress_reporter<'a>(
    id: TicketId,
    ticket: &'a Ticket,
    jobs: &'a Receiver<Job>,
    heap: &'a mut BinaryHeap<Queued>,
    events: &'a Sender<WorkerEvent>,
) -> impl FnMut(&pixelgen::Progress) -> Control + 'a {
    move |p: &pixelgen::Progress| {
        // RGB -> RGBA here, off the main thread, so the preview is ready to show.
        let preview = p
            .preview
            .as_ref()
            .map(|rgb| Arc::new(image::DynamicImage::ImageRgb8(rgb.clone()).into_rgba8()));
        let _ = events.send(WorkerEvent::Progress {
            id,
            step: p.step,
            total: p.total,
            preview,
        });
        // New requests keep arriving while a long job runs: take them off the bounded
        // channel so the queue's bound is the ticket count, not the channel's state.
        while let Ok(job) = jobs.try_recv() {
            heap.push(Queued(job));
        }
        if ticket.cancel_requested() {
            Control::Cancel
        } else {
            Control::Continue
        }
    }
}

/// A packed sheet's cells as a Bevy atlas layout (one rect per frame, in frame order).
pub(crate) fn atlas_layout(layout: &SheetLayout, width: u32, height: u32) -> TextureAtlasLayout {
    let mut atlas = TextureAtlasLayout::new_empty(UVec2::new(width, height));
    for f in &layout.frames {
        let r = f.rect;
        atlas.add_texture(URect::new(r.x, r.y, r.x + r.w, r.y + r.h));
    }
    atlas
}

/// The key to look `recipe` up under, when a cache is on. Without a disk cache a key that
/// cannot be computed (e.g. an unreadable model folder) only skips the memory lookup, so
/// generation reports the real problem; a panic is reported at once.
fn lookup_key(
    config: &WorkerConfig,
    engine_slot: &mut Option<Box<dyn SpriteEngine>>,
    memory: &MemoryCache,
    recipe: &Recipe,
) -> Result<Option<CacheKey>, SpriteError> {
    if config.cache.is_none() && !memory.enabled() {
        return Ok(None);
    }
    match cache_key(engine_slot, recipe) {
        Ok(key) => Ok(Some(key)),
        Err(e) if config.cache.is_some() || matches!(e, SpriteError::Panicked { .. }) => Err(e),
        Err(_) => Ok(None),
    }
}

/// The cache key of `recipe` on the engine's model (building nothing: the engine exists).
fn cache_key(
    engine_slot: &mut Option<Box<dyn SpriteEngine>>,
    recipe: &Recipe,
) -> Result<CacheKey, SpriteError> {
    let Some(engine) = engine_slot.as_mut() else {
        return Err(SpriteError::WorkerStopped);
    };
    let key = catch_unwind(AssertUnwindSafe(|| {
        engine
            .model_identity()
            .and_then(|m| CacheKey::new(recipe, &m))
    }));
    match key {
        Ok(Ok(k)) => Ok(k),
        Ok(Err(e)) => Err(SpriteError::from_engine(e)),
        Err(payload) => {
            *engine_slot = None;
            Err(SpriteError::Panicked {
                message: panic_message(payload.as_ref()),
            })
        }
    }
}

/// A cache hit, or `None` (an unreadable entry is logged and treated as a miss).
fn read_cached<T>(
    cache: &DiskCache,
    key: &CacheKey,
    get: impl FnOnce(&DiskCache, &CacheKey) -> pixelgen::Result<Option<T>>,
) -> Option<T> {
    match get(cache, key) {
        Ok(hit) => hit,
        Err(e) => {
            bevy::log::warn!("pixelgen: ignoring cache entry {key}: {e}");
            None
        }
    }
}

/// An RGBA sprite as a Bevy image with nearest sampling (pixel art stays crisp).
pub fn to_bevy_image(image: image::RgbaImage) -> Image {
    let mut out = Image::from_dynamic(
        image::DynamicImage::ImageRgba8(image),
        true,
        RenderAssetUsages::default(),
    );
    out.sampler = ImageSampler::nearest();
    out
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
