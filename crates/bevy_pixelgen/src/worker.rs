//! The worker thread: takes requests by priority and runs them on the shared request path
//! ([`CachedEngine`]), behind a panic guard; reports back by channel.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use bevy::asset::RenderAssetUsages;
use bevy::image::{Image, ImageSampler, TextureAtlasLayout};
use bevy::math::{URect, UVec2};
use crossbeam_channel::{Receiver, Sender};
use pixelgen::{
    CacheKey, CachedEngine, Control, DiskCache, ModelIdentity, Plan, Recipe, Rendered, SheetLayout,
    SpriteEngine,
};

use crate::plugin::EngineFactory;
use crate::request::{SpriteError, Ticket, TicketId};

/// One request on its way to the worker: its ticket and its checked plan.
pub(crate) struct Job {
    pub(crate) ticket: Ticket,
    pub(crate) plan: Plan,
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
    pub(crate) consistency: Option<pixelgen::Consistency>,
    pub(crate) tileset: Option<pixelgen::tileset::TilesetOutput>,
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

/// The engine the factory builds, built on first use and dropped after a panic (its state is
/// unknown then); the caches around it survive.
struct Slot {
    factory: EngineFactory,
    engine: Option<Box<dyn SpriteEngine>>,
}

impl Slot {
    /// Builds the engine if there is none: a failure or a panic is reported, and the next
    /// request tries again.
    fn ensure(&mut self) -> Result<&mut Box<dyn SpriteEngine>, SpriteError> {
        if self.engine.is_none() {
            match catch_unwind(AssertUnwindSafe(|| self.factory.build())) {
                Ok(Ok(e)) => self.engine = Some(e),
                Ok(Err(e)) => return Err(SpriteError::EngineStart(Arc::new(e))),
                Err(payload) => {
                    return Err(SpriteError::Panicked {
                        message: panic_message(payload.as_ref()),
                    });
                }
            }
        }
        self.engine.as_mut().ok_or(SpriteError::WorkerStopped)
    }

    fn engine(&mut self) -> pixelgen::Result<&mut Box<dyn SpriteEngine>> {
        self.engine
            .as_mut()
            .ok_or_else(|| pixelgen::PixelGenError::Engine("the engine is not built".into()))
    }
}

impl SpriteEngine for Slot {
    fn model_identity(&mut self) -> pixelgen::Result<ModelIdentity> {
        self.engine()?.model_identity()
    }

    fn render(
        &mut self,
        plan: &Plan,
        progress: &mut dyn FnMut(&pixelgen::Progress) -> Control,
    ) -> pixelgen::Result<Rendered> {
        self.engine()?.render(plan, progress)
    }
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
    let slot = Slot {
        factory: config.factory.clone(),
        engine: None,
    };
    let mut engine = CachedEngine::new(slot).with_memory_bytes(config.memory_cache_bytes);
    if let Some(cache) = config.cache.clone() {
        engine = engine.with_disk_cache(cache);
    }
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
        let mut work = || run_job(&config, &mut engine, &job, &jobs, &mut heap, &events);
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

/// One request: the cached engine makes it (or finds it made), the output folder gets it.
fn run_job(
    config: &WorkerConfig,
    engine: &mut CachedEngine<Slot>,
    job: &Job,
    jobs: &Receiver<Job>,
    heap: &mut BinaryHeap<Queued>,
    events: &Sender<WorkerEvent>,
) -> Result<Finished, SpriteError> {
    let id = job.ticket.id();
    engine.engine_mut().ensure()?;
    let mut on_progress = progress_reporter(id, &job.ticket, jobs, heap, events);
    let made = catch_unwind(AssertUnwindSafe(|| engine.run(&job.plan, &mut on_progress)));
    let generated = match made {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => return Err(SpriteError::from_engine(e)),
        Err(payload) => {
            engine.engine_mut().engine = None;
            return Err(SpriteError::Panicked {
                message: panic_message(payload.as_ref()),
            });
        }
    };
    // Work already saved (a cache hit) is not written again.
    let (saved, save_error) = match (&config.output_dir, generated.from_cache) {
        (Some(dir), false) => match pixelgen::save(dir, &generated) {
            Ok(files) => (Some(files.png), None),
            Err(e) => (None, Some(e.to_string())),
        },
        _ => (None, None),
    };
    let (w, h) = generated.image.dimensions();
    Ok(Finished {
        id,
        layout: generated.layout.as_ref().map(|l| atlas_layout(l, w, h)),
        image: to_bevy_image(generated.image),
        recipe: generated.recipe,
        key: Some(generated.key),
        saved,
        save_error,
        from_cache: generated.from_cache,
        consistency: generated.consistency,
        tileset: generated.tileset,
    })
}

/// The progress callback: reports, takes new requests off the channel, and answers a cancel.
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

/// A planned sheet grid (cells and frame rects, known before any frame exists) as the atlas
/// layout of its placeholder.
pub(crate) fn grid_atlas(grid: &SheetLayout) -> TextureAtlasLayout {
    let (w, h) = grid.sheet_size();
    atlas_layout(grid, w, h)
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
