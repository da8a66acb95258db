//! [`PixelGenPlugin`], the [`PixelGen`] resource and the systems that bring results in.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bevy::app::{App, Plugin, PostUpdate, PreUpdate};
use bevy::asset::{
    AssetApp, AssetEventSystems, AssetHandleProvider, AssetId, AssetPath, Assets, Handle,
};
use bevy::ecs::message::MessageWriter;
use bevy::ecs::resource::Resource;
use bevy::ecs::schedule::{IntoScheduleConfigs, SystemSet};
use bevy::ecs::system::ResMut;
use bevy::image::{Image, TextureAtlasLayout};
use bevy::math::UVec2;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use pixelgen::{DiskCache, Generator, ModelConfig, PixelOptions, Recipe, Size, SpriteEngine};

use crate::assets::{
    LoaderShared, PixelRecipeLoader, RecipeAssets, RecipeLoad, start_recipe_assets,
};
use crate::messages::{SpriteFailed, SpriteFinished, SpriteProgress};
use crate::request::{
    FINISHED, QUEUED, SpriteError, SpriteRequest, Ticket, TicketId, TicketInner, TicketStatus,
};
use crate::worker::{self, Job, WorkerConfig, WorkerEvent};

/// Builds the engine on the worker thread (called on the first request, and again after a
/// failure or a panic).
#[derive(Clone)]
pub struct EngineFactory(
    pub(crate) Arc<dyn Fn() -> pixelgen::Result<Box<dyn SpriteEngine>> + Send + Sync>,
);

impl EngineFactory {
    /// A factory from a closure.
    pub fn new(
        f: impl Fn() -> pixelgen::Result<Box<dyn SpriteEngine>> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }

    /// Builds an engine.
    pub fn build(&self) -> pixelgen::Result<Box<dyn SpriteEngine>> {
        (self.0)()
    }

    /// The real engine: SDXL from `model`, loaded on the first request.
    pub fn model(model: ModelConfig) -> Self {
        Self::new(move || Ok(Box::new(Generator::new(model.clone())) as Box<dyn SpriteEngine>))
    }
}

impl std::fmt::Debug for EngineFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineFactory(..)")
    }
}

/// Adds prompt-to-sprite generation: the [`PixelGen`] resource, a worker thread and messages.
///
/// Needs `AssetPlugin` and `ImagePlugin` (both in `DefaultPlugins`).
#[derive(Debug, Clone)]
pub struct PixelGenPlugin {
    /// The model to load (lazily, on the first request) when `engine` is `None`.
    pub model: ModelConfig,
    /// A custom engine instead of `model` (tests, remote backends).
    pub engine: Option<EngineFactory>,
    /// Pixel options for requests that set none (`None`: each recipe's size-based defaults).
    pub default_pixel: Option<PixelOptions>,
    /// Where finished sprites are saved as PNG plus `.pixelgen.ron` (`None`: not saved).
    pub output_dir: Option<PathBuf>,
    /// Content-addressed cache folder: a request whose key is there is served from disk
    /// (sprites and sheets), and recipe assets whose key is there load as the finished image.
    pub cache_dir: Option<PathBuf>,
    /// How many requests may wait (the running one not counted).
    pub queue_capacity: usize,
    /// Threads the engine may use for CPU compute (a dedicated rayon pool the worker runs
    /// every job in). The default, [`default_compute_threads`], leaves one core to the game;
    /// `None` uses rayon's global pool (all cores, or `RAYON_NUM_THREADS`). GPU runs spend
    /// little CPU either way.
    pub compute_threads: Option<usize>,
    /// Bytes of recently made sprites and sheet frames the worker keeps in memory (RGBA,
    /// least recently used dropped first): an identical request (same recipe, seed and model)
    /// is served from there without the model, even without `cache_dir`. 0 turns it off.
    pub memory_cache_bytes: usize,
}

/// The default [`PixelGenPlugin::memory_cache_bytes`]: 64 MiB (some 16 000 32x32 sprites).
pub const DEFAULT_MEMORY_CACHE_BYTES: usize = 64 << 20;

/// The default [`PixelGenPlugin::compute_threads`]: the machine's cores minus one (at least 1).
pub fn default_compute_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

impl Default for PixelGenPlugin {
    fn default() -> Self {
        Self {
            model: ModelConfig::default(),
            engine: None,
            default_pixel: None,
            output_dir: Some(PathBuf::from("assets/generated")),
            cache_dir: None,
            queue_capacity: 32,
            compute_threads: Some(default_compute_threads()),
            memory_cache_bytes: DEFAULT_MEMORY_CACHE_BYTES,
        }
    }
}

impl PixelGenPlugin {
    /// The plugin for `model`, other settings at their defaults.
    pub fn new(model: ModelConfig) -> Self {
        Self {
            model,
            ..Self::default()
        }
    }

    /// The plugin with a custom engine.
    pub fn with_engine(engine: EngineFactory) -> Self {
        Self {
            engine: Some(engine),
            ..Self::default()
        }
    }
}

/// The plugin's systems, for ordering your own around them.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelGenSystems {
    /// `PreUpdate`: starts generating recipe assets whose placeholder just loaded, inserts finished sprites into `Assets<Image>`, updates tickets and writes
    /// [`SpriteProgress`], [`SpriteFinished`] and [`SpriteFailed`].
    Receive,
    /// `PostUpdate`: gives this frame's new handles their placeholder image.
    Placeholders,
}

impl Plugin for PixelGenPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<SpriteProgress>()
            .add_message::<SpriteFinished>()
            .add_message::<SpriteFailed>()
            .configure_sets(PreUpdate, PixelGenSystems::Receive)
            .configure_sets(
                PostUpdate,
                PixelGenSystems::Placeholders.before(AssetEventSystems),
            )
            .add_systems(
                PreUpdate,
                (start_recipe_assets, receive_results)
                    .chain()
                    .in_set(PixelGenSystems::Receive),
            )
            .add_systems(
                PostUpdate,
                insert_placeholders.in_set(PixelGenSystems::Placeholders),
            );
    }

    fn finish(&self, app: &mut App) {
        let Some(images) = app.world().get_resource::<Assets<Image>>() else {
            panic!(
                "PixelGenPlugin needs AssetPlugin and ImagePlugin: add DefaultPlugins, or \
                 MinimalPlugins + AssetPlugin + ImagePlugin, before PixelGenPlugin"
            );
        };
        let provider = images.get_handle_provider();
        // Sprite sheets need atlas layouts (registered by sprite plugins when present).
        if !app
            .world()
            .contains_resource::<Assets<TextureAtlasLayout>>()
        {
            app.init_asset::<TextureAtlasLayout>();
        }
        let layout_provider = app
            .world()
            .resource::<Assets<TextureAtlasLayout>>()
            .get_handle_provider();
        let factory = self
            .engine
            .clone()
            .unwrap_or_else(|| EngineFactory::model(self.model.clone()));
        let cache = self.cache_dir.clone().map(DiskCache::new);
        let (loads_tx, loads) = crossbeam_channel::unbounded();
        app.register_asset_loader(PixelRecipeLoader {
            shared: Arc::new(LoaderShared {
                cache: cache.clone(),
                default_pixel: self.default_pixel.clone(),
                factory: factory.clone(),
                identity: Mutex::new(None),
                loads: loads_tx,
            }),
        });
        let config = WorkerConfig {
            factory,
            output_dir: self.output_dir.clone(),
            cache,
            compute_threads: self.compute_threads,
            memory_cache_bytes: self.memory_cache_bytes,
        };
        let pixel_gen = PixelGen::start(
            config,
            provider,
            layout_provider,
            self.queue_capacity,
            self.default_pixel.clone(),
            loads,
        );
        app.insert_resource(pixel_gen);
    }
}

/// Requests sprites; each comes back at once as a `Handle<Image>` showing a placeholder, and
/// the sprite replaces it in place when the worker is done.
#[derive(Resource)]
pub struct PixelGen {
    jobs: Sender<Job>,
    events: Receiver<WorkerEvent>,
    events_tx: Sender<WorkerEvent>,
    handles: AssetHandleProvider,
    layout_handles: AssetHandleProvider,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    default_pixel: Option<PixelOptions>,
    next_id: u64,
    in_flight: HashMap<TicketId, Ticket>,
    placeholders: Vec<(AssetId<Image>, Size)>,
    layout_placeholders: Vec<(AssetId<TextureAtlasLayout>, TextureAtlasLayout)>,
    worker: Option<JoinHandle<()>>,
    worker_stopped: bool,
    pub(crate) recipe_loads: Receiver<RecipeLoad>,
    pub(crate) recipe_assets: RecipeAssets,
}

impl PixelGen {
    fn start(
        config: WorkerConfig,
        handles: AssetHandleProvider,
        layout_handles: AssetHandleProvider,
        capacity: usize,
        default_pixel: Option<PixelOptions>,
        recipe_loads: Receiver<RecipeLoad>,
    ) -> Self {
        let capacity = capacity.max(1);
        let (jobs, jobs_rx) = crossbeam_channel::bounded(capacity);
        let (events_tx, events) = crossbeam_channel::unbounded();
        let worker_events = events_tx.clone();
        let worker = std::thread::Builder::new()
            .name("pixelgen-worker".into())
            .spawn(move || worker::run(config, jobs_rx, worker_events));
        let (worker, worker_stopped) = match worker {
            Ok(h) => (Some(h), false),
            Err(e) => {
                bevy::log::error!("pixelgen: cannot start the worker thread: {e}");
                (None, true)
            }
        };
        Self {
            jobs,
            events,
            events_tx,
            handles,
            layout_handles,
            queued: Arc::new(AtomicUsize::new(0)),
            capacity,
            default_pixel,
            next_id: 0,
            in_flight: HashMap::new(),
            placeholders: Vec::new(),
            layout_placeholders: Vec::new(),
            worker,
            worker_stopped,
            recipe_loads,
            recipe_assets: RecipeAssets::default(),
        }
    }

    /// Requests a sprite and returns its handle at once (a checkerboard placeholder of the
    /// requested size until the sprite arrives). Failures arrive as [`SpriteFailed`].
    pub fn sprite(&mut self, request: impl Into<SpriteRequest>) -> Handle<Image> {
        self.submit(request).handle().clone()
    }

    /// Requests a sprite and returns its [`Ticket`] (handle, recipe, status, cancel).
    pub fn submit(&mut self, request: impl Into<SpriteRequest>) -> Ticket {
        self.submit_inner(request.into(), false)
    }

    /// Requests a sprite sheet (one frame per prompt of the recipe's `frames`) and returns
    /// its image and atlas layout handles at once: a checkerboard and a grid layout of the
    /// expected shape until the sheet arrives, then the real ones in place.
    pub fn sheet(
        &mut self,
        request: impl Into<SpriteRequest>,
    ) -> (Handle<Image>, Handle<TextureAtlasLayout>) {
        let t = self.submit_sheet(request);
        let layout = t.layout().cloned().unwrap_or_default();
        (t.handle().clone(), layout)
    }

    /// Requests a sprite sheet and returns its [`Ticket`] ([`Ticket::layout`] is set).
    pub fn submit_sheet(&mut self, request: impl Into<SpriteRequest>) -> Ticket {
        self.submit_inner(request.into(), true)
    }

    fn submit_inner(&mut self, request: SpriteRequest, sheet: bool) -> Ticket {
        let mut recipe = request.recipe.with_drawn_seed();
        if recipe.pixel.is_none() {
            recipe.pixel.clone_from(&self.default_pixel);
        }
        self.next_id += 1;
        let id = TicketId(self.next_id);
        let handle: Handle<Image> = self.handles.reserve_handle().typed::<Image>();
        let tile = Size::new(
            recipe.size.width.clamp(1, pixelgen::MAX_SIDE),
            recipe.size.height.clamp(1, pixelgen::MAX_SIDE),
        );
        let layout = if sheet {
            let (size, grid) = expected_sheet(&recipe, tile);
            let h: Handle<TextureAtlasLayout> = self
                .layout_handles
                .reserve_handle()
                .typed::<TextureAtlasLayout>();
            self.layout_placeholders.push((h.id(), grid));
            self.placeholders.push((handle.id(), size));
            Some(h)
        } else {
            self.placeholders.push((handle.id(), tile));
            None
        };
        self.enqueue_with_id(id, recipe, handle, layout, sheet)
    }

    /// Queues `recipe` (seed fixed, pixel options in) to replace the image under `handle`
    /// (and the layout under `layout`); the caller has given them their placeholders.
    pub(crate) fn enqueue(
        &mut self,
        recipe: Recipe,
        handle: Handle<Image>,
        layout: Option<Handle<TextureAtlasLayout>>,
        sheet: bool,
    ) -> Ticket {
        self.next_id += 1;
        let id = TicketId(self.next_id);
        self.enqueue_with_id(id, recipe, handle, layout, sheet)
    }

    fn enqueue_with_id(
        &mut self,
        id: TicketId,
        recipe: Recipe,
        handle: Handle<Image>,
        layout: Option<Handle<TextureAtlasLayout>>,
        sheet: bool,
    ) -> Ticket {
        let valid = recipe.validate();
        let ticket = Ticket(Arc::new(TicketInner {
            id,
            recipe,
            handle,
            layout,
            sheet,
            preview: Mutex::new(None),
            superseded: AtomicBool::new(false),
            phase: AtomicU8::new(FINISHED),
            status: Mutex::new(TicketStatus::Queued),
            queued: self.queued.clone(),
            events: self.events_tx.clone(),
        }));
        self.in_flight.insert(id, ticket.clone());

        if let Err(e) = valid {
            self.fail_now(&ticket, SpriteError::Invalid(Arc::new(e)));
            return ticket;
        }
        if self.worker_stopped {
            self.fail_now(&ticket, SpriteError::WorkerStopped);
            return ticket;
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.fail_now(
                &ticket,
                SpriteError::QueueFull {
                    capacity: self.capacity,
                },
            );
            return ticket;
        }
        ticket.0.phase.store(QUEUED, Ordering::Release);
        match self.jobs.try_send(Job {
            ticket: ticket.clone(),
        }) {
            Ok(()) => {}
            Err(err) => {
                // Undo the enqueue (unless a cancel got there first).
                if ticket
                    .0
                    .phase
                    .compare_exchange(QUEUED, FINISHED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    let error = match err {
                        TrySendError::Full(_) => SpriteError::QueueFull {
                            capacity: self.capacity,
                        },
                        TrySendError::Disconnected(_) => SpriteError::WorkerStopped,
                    };
                    self.fail_now(&ticket, error);
                }
            }
        }
        ticket
    }

    /// The latest generation started for the recipe asset at `path` (e.g.
    /// `"items/potion.pixelgen.ron"`): `None` before its first cache miss finished loading,
    /// and once the game dropped every handle of it.
    pub fn recipe_asset_ticket<'a>(&self, path: impl Into<AssetPath<'a>>) -> Option<&Ticket> {
        self.recipe_assets.ticket(&path.into().into_owned())
    }

    /// How many recipe assets (`*.pixelgen.ron`) the plugin tracks: those loaded (or loading)
    /// whose image the game still holds. Dropping every handle of one forgets it (and cancels
    /// its generation if one still runs).
    pub fn recipe_assets_tracked(&self) -> usize {
        self.recipe_assets.len()
    }

    /// The ticket of a request still in flight.
    pub fn ticket(&self, id: TicketId) -> Option<&Ticket> {
        self.in_flight.get(&id)
    }

    /// Cancels a request in flight (see [`Ticket::cancel`]).
    pub fn cancel(&self, id: TicketId) -> bool {
        self.in_flight.get(&id).is_some_and(Ticket::cancel)
    }

    /// Requests not finished yet (queued or running).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Requests waiting in the queue (the running one not counted).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    fn fail_now(&self, ticket: &Ticket, error: SpriteError) {
        // Reported through the event channel so every failure arrives the same way.
        let _ = self.events_tx.send(WorkerEvent::Failed {
            id: ticket.id(),
            error,
        });
    }

    fn flush_layouts(&mut self, layouts: &mut Assets<TextureAtlasLayout>) {
        for (id, layout) in self.layout_placeholders.drain(..) {
            if let Err(e) = layouts.insert(id, layout) {
                bevy::log::warn!("pixelgen: cannot insert a placeholder layout: {e}");
            }
        }
    }

    fn flush_placeholders(&mut self, images: &mut Assets<Image>) {
        for (id, size) in self.placeholders.drain(..) {
            if let Err(e) = images.insert(id, checkerboard(size)) {
                bevy::log::warn!("pixelgen: cannot insert a placeholder: {e}");
            }
        }
    }
}

/// The sheet image size and grid layout a recipe is expected to produce (frames of `tile`
/// size packed as its sheet options say), capped at [`pixelgen::MAX_SIDE`] per side.
pub(crate) fn expected_sheet(recipe: &pixelgen::Recipe, tile: Size) -> (Size, TextureAtlasLayout) {
    let opts = recipe.sheet.clone().unwrap_or_default();
    let n = recipe.frame_count().max(1) as u32;
    let columns = opts
        .columns
        .unwrap_or_else(|| (1..=n).find(|c| c * c >= n).unwrap_or(n))
        .clamp(1, n);
    let rows = n.div_ceil(columns);
    let side = |cells: u32, t: u32| {
        let total = u64::from(opts.margin) * 2
            + u64::from(cells) * u64::from(t)
            + u64::from(cells.saturating_sub(1)) * u64::from(opts.padding);
        total.clamp(1, u64::from(pixelgen::MAX_SIDE)) as u32
    };
    let size = Size::new(side(columns, tile.width), side(rows, tile.height));
    let mut grid = TextureAtlasLayout::from_grid(
        UVec2::new(tile.width, tile.height),
        columns,
        rows,
        Some(UVec2::splat(opts.padding)),
        Some(UVec2::splat(opts.margin)),
    );
    grid.size = UVec2::new(size.width, size.height);
    grid.textures.truncate(n as usize);
    (size, grid)
}

/// A checkerboard of two greys at `size`, nearest-sampled: the image a request shows until
/// its sprite arrives.
pub fn checkerboard(size: Size) -> Image {
    let cell = (size.width.min(size.height) / 4).max(1);
    let img = image::RgbaImage::from_fn(size.width, size.height, |x, y| {
        if ((x / cell) + (y / cell)).is_multiple_of(2) {
            image::Rgba([0x55, 0x55, 0x55, 255])
        } else {
            image::Rgba([0x99, 0x99, 0x99, 255])
        }
    });
    worker::to_bevy_image(img)
}

fn insert_placeholders(
    pixel_gen: Option<ResMut<PixelGen>>,
    images: Option<ResMut<Assets<Image>>>,
    layouts: Option<ResMut<Assets<TextureAtlasLayout>>>,
) {
    let Some(mut pixel_gen) = pixel_gen else {
        return;
    };
    if let Some(mut images) = images
        && !pixel_gen.placeholders.is_empty()
    {
        pixel_gen.flush_placeholders(&mut images);
    }
    if let Some(mut layouts) = layouts
        && !pixel_gen.layout_placeholders.is_empty()
    {
        pixel_gen.flush_layouts(&mut layouts);
    }
}

fn receive_results(
    pixel_gen: Option<ResMut<PixelGen>>,
    images: Option<ResMut<Assets<Image>>>,
    mut layouts: Option<ResMut<Assets<TextureAtlasLayout>>>,
    mut progress: MessageWriter<SpriteProgress>,
    mut finished: MessageWriter<SpriteFinished>,
    mut failed: MessageWriter<SpriteFailed>,
) {
    let (Some(mut pixel_gen), Some(mut images)) = (pixel_gen, images) else {
        return;
    };
    let pg = &mut *pixel_gen;
    pg.flush_placeholders(&mut images);
    if let Some(layouts) = layouts.as_deref_mut() {
        pg.flush_layouts(layouts);
    }
    let mut received_any = false;
    while let Ok(event) = pg.events.try_recv() {
        received_any = true;
        match event {
            WorkerEvent::Progress {
                id,
                step,
                total,
                preview,
            } => {
                if let Some(t) = pg.in_flight.get(&id) {
                    t.set_status(TicketStatus::Running { step, total });
                    if let Some(p) = &preview {
                        t.set_preview(p.clone());
                    }
                    progress.write(SpriteProgress {
                        ticket: id,
                        step,
                        total,
                        preview,
                    });
                }
            }
            WorkerEvent::Done(done) => {
                let Some(ticket) = pg.in_flight.remove(&done.id) else {
                    continue;
                };
                if ticket.is_superseded() {
                    // A newer request owns the handle now: keep its image.
                    ticket.set_status(TicketStatus::Failed(SpriteError::Cancelled));
                    failed.write(SpriteFailed {
                        ticket: done.id,
                        image: ticket.handle().clone(),
                        error: SpriteError::Cancelled,
                    });
                    continue;
                }
                let handle = ticket.handle().clone();
                if let Err(e) = images.insert(handle.id(), done.image) {
                    bevy::log::warn!("pixelgen: cannot insert sprite {}: {e}", done.id);
                }
                if let (Some(layout), Some(h), Some(layouts)) =
                    (done.layout, ticket.layout(), layouts.as_deref_mut())
                    && let Err(e) = layouts.insert(h.id(), layout)
                {
                    bevy::log::warn!("pixelgen: cannot insert the layout of {}: {e}", done.id);
                }
                if let Some(err) = &done.save_error {
                    bevy::log::warn!("pixelgen: sprite {} was not saved: {err}", done.id);
                }
                let saved = done.saved;
                ticket.set_status(TicketStatus::Done {
                    saved: saved.clone(),
                });
                finished.write(SpriteFinished {
                    ticket: done.id,
                    image: handle,
                    layout: ticket.layout().cloned(),
                    recipe: done.recipe,
                    key: done.key,
                    saved,
                    save_error: done.save_error,
                    from_cache: done.from_cache,
                });
            }
            WorkerEvent::Failed { id, error } => {
                let Some(ticket) = pg.in_flight.remove(&id) else {
                    continue;
                };
                ticket.finish();
                bevy::log::warn!("pixelgen: request {id} failed: {error}");
                ticket.set_status(TicketStatus::Failed(error.clone()));
                failed.write(SpriteFailed {
                    ticket: id,
                    image: ticket.handle().clone(),
                    error,
                });
            }
        }
    }
    // A worker that died outside its panic guard can report nothing more: fail what waits.
    if !received_any
        && !pg.worker_stopped
        && pg.worker.as_ref().is_some_and(JoinHandle::is_finished)
    {
        pg.worker_stopped = true;
        bevy::log::error!("pixelgen: the worker thread stopped");
        for ticket in pg.in_flight.values() {
            ticket.finish();
            let _ = pg.events_tx.send(WorkerEvent::Failed {
                id: ticket.id(),
                error: SpriteError::WorkerStopped,
            });
        }
    }
}
