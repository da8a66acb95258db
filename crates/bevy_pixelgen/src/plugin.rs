//! [`PixelGenPlugin`], the [`PixelGen`] system parameter over the [`PixelGenQueue`]
//! resource, and the system that brings results in.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use bevy::app::{App, Plugin, PreUpdate, Update};
use bevy::asset::{AssetApp, AssetPath, Assets, Handle};
use bevy::ecs::message::MessageWriter;
use bevy::ecs::resource::Resource;
use bevy::ecs::schedule::{IntoScheduleConfigs, SystemSet};
use bevy::ecs::system::{ResMut, SystemParam};
use bevy::image::{Image, TextureAtlasLayout};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use pixelgen::{
    Clips, DiskCache, Frames, Generator, ModelConfig, ModelIdentity, PixelGenError, PixelOptions,
    Plan, Recipe, Size, SpriteEngine,
};

use crate::assets::{
    LoaderShared, PixelRecipeLoader, RecipeAssets, RecipeLoad, start_recipe_assets,
};
use crate::messages::{SpriteFailed, SpriteFinished, SpriteProgress};
use crate::request::{
    FINISHED, QUEUED, SpriteError, SpriteRequest, Ticket, TicketId, TicketInner, TicketStatus,
};
use crate::worker::{self, Job, WorkerConfig, WorkerEvent, grid_atlas};

pub use pixelgen::DEFAULT_MEMORY_CACHE_BYTES;

type Build = dyn Fn() -> pixelgen::Result<Box<dyn SpriteEngine>> + Send + Sync;
type Identify = dyn Fn() -> pixelgen::Result<ModelIdentity> + Send + Sync;

/// Builds the engine on the worker thread (called on the first request, and again after a
/// failure or a panic), and tells the model identity that cache keys need.
#[derive(Clone)]
pub struct EngineFactory {
    build: Arc<Build>,
    identity: Arc<Identify>,
}

impl EngineFactory {
    /// A factory from a closure. The model identity is asked of an engine built for that
    /// purpose (once, when the recipe loader first needs it): make custom engines cheap to
    /// build, or state the identity with [`EngineFactory::with_identity`].
    pub fn new(
        f: impl Fn() -> pixelgen::Result<Box<dyn SpriteEngine>> + Send + Sync + 'static,
    ) -> Self {
        let build: Arc<Build> = Arc::new(f);
        let for_identity = build.clone();
        Self {
            build,
            identity: Arc::new(move || for_identity()?.model_identity()),
        }
    }

    /// This factory with a fixed model identity (no engine is built to learn it).
    pub fn with_identity(mut self, identity: ModelIdentity) -> Self {
        self.identity = Arc::new(move || Ok(identity.clone()));
        self
    }

    /// Builds an engine.
    pub fn build(&self) -> pixelgen::Result<Box<dyn SpriteEngine>> {
        (self.build)()
    }

    /// The identity of the model the engines run (read from the model's files, not loaded).
    pub fn identity(&self) -> pixelgen::Result<ModelIdentity> {
        (self.identity)()
    }

    /// The real engine: SDXL from `model`, loaded on the first request.
    pub fn model(model: ModelConfig) -> Self {
        let for_identity = model.clone();
        Self {
            build: Arc::new(move || {
                Ok(Box::new(Generator::new(model.clone())) as Box<dyn SpriteEngine>)
            }),
            identity: Arc::new(move || for_identity.identity()),
        }
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
    /// `PreUpdate`: starts generating recipe assets whose placeholder just loaded, inserts
    /// finished sprites into `Assets<Image>`, updates tickets and writes [`SpriteProgress`],
    /// [`SpriteFinished`] and [`SpriteFailed`].
    Receive,
    /// `Update`: moves every [`ClipPlayer`](crate::ClipPlayer) on and, with the `sprite`
    /// feature, sets its `Sprite`'s atlas index.
    Clips,
}

impl Plugin for PixelGenPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<SpriteProgress>()
            .add_message::<SpriteFinished>()
            .add_message::<SpriteFailed>()
            .configure_sets(PreUpdate, PixelGenSystems::Receive)
            .add_systems(
                PreUpdate,
                (start_recipe_assets, receive_results)
                    .chain()
                    .in_set(PixelGenSystems::Receive),
            )
            .add_systems(
                Update,
                crate::clips::advance_clip_players.in_set(PixelGenSystems::Clips),
            );
        #[cfg(feature = "sprite")]
        app.add_systems(
            Update,
            crate::clips::show_clip_frames
                .after(crate::clips::advance_clip_players)
                .in_set(PixelGenSystems::Clips),
        );
    }

    fn finish(&self, app: &mut App) {
        if !app.world().contains_resource::<Assets<Image>>() {
            panic!(
                "PixelGenPlugin needs AssetPlugin and ImagePlugin: add DefaultPlugins, or \
                 MinimalPlugins + AssetPlugin + ImagePlugin, before PixelGenPlugin"
            );
        }
        // Sprite sheets need atlas layouts (registered by sprite plugins when present).
        if !app
            .world()
            .contains_resource::<Assets<TextureAtlasLayout>>()
        {
            app.init_asset::<TextureAtlasLayout>();
        }
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
                identity: OnceLock::new(),
                loads: loads_tx,
            }),
        });
        // Set references held only in memory are written next to the cache, else next to the
        // saved sprites, else in the temporary folder.
        let refs_dir = match (&self.cache_dir, &self.output_dir) {
            (Some(cache), _) => cache.join("refs"),
            (None, Some(out)) => out.join("refs"),
            (None, None) => std::env::temp_dir().join("pixelgen-refs"),
        };
        let config = WorkerConfig {
            factory,
            output_dir: self.output_dir.clone(),
            cache,
            compute_threads: self.compute_threads,
            memory_cache_bytes: self.memory_cache_bytes,
        };
        let queue = PixelGenQueue::start(
            config,
            refs_dir,
            self.queue_capacity,
            self.default_pixel.clone(),
            loads,
        );
        app.insert_resource(queue);
    }
}

/// How much of a sprite [`PixelGen::animate`] and [`PixelGen::directions`] redraw when every
/// frame starts from it (image to image): enough to change the pose, little enough to keep
/// the character.
pub const DEFAULT_START_STRENGTH: f64 = 0.6;

/// A set reference that cannot be used, as the error a request reports.
fn invalid_reference(message: String) -> SpriteError {
    SpriteError::Invalid(Arc::new(PixelGenError::InvalidRecipe {
        field: "set",
        message,
    }))
}

/// Requests sprites and sprite sheets from a system: each comes back at once as a handle
/// whose placeholder is already in `Assets<Image>`, and the finished image replaces it in
/// place when the worker is done.
///
/// A system parameter over the [`PixelGenQueue`] resource (which it derefs to, for the
/// queue's state and cancel) and the image and atlas-layout assets. Since it holds
/// `Assets<Image>` mutably, a system that needs the images too reaches them through
/// [`PixelGen::images`].
///
/// ```no_run
/// use bevy::prelude::*;
/// use bevy_pixelgen::prelude::*;
///
/// fn spawn_potion(mut commands: Commands, mut pixelgen: PixelGen) {
///     // A 32x32 sprite: the handle shows a checkerboard now, the potion when it is ready.
///     let potion = pixelgen.sprite(SpriteRequest::new("red health potion").size(32, 32));
///     commands.spawn(Sprite::from_image(potion));
///     // Several frames make a sheet: the ticket has its atlas layout too.
///     let walk = pixelgen.submit(
///         SpriteRequest::new("knight")
///             .size(32, 32)
///             .frames(["knight, walk pose 1", "knight, walk pose 2"]),
///     );
///     let layout = walk.layout().cloned().expect("several frames make a sheet");
///     commands.spawn(Sprite::from_atlas_image(
///         walk.handle().clone(),
///         TextureAtlas { layout, index: 0 },
///     ));
/// }
/// # fn main() {
/// #     App::new().add_systems(Update, spawn_potion);
/// # }
/// ```
#[derive(SystemParam)]
pub struct PixelGen<'w> {
    queue: ResMut<'w, PixelGenQueue>,
    images: ResMut<'w, Assets<Image>>,
    layouts: ResMut<'w, Assets<TextureAtlasLayout>>,
}

impl PixelGen<'_> {
    /// Requests a sprite (or, for a recipe with several frames, a sheet) and returns its
    /// image handle. Failures arrive as [`SpriteFailed`].
    pub fn sprite(&mut self, request: impl Into<SpriteRequest>) -> Handle<Image> {
        self.submit(request).handle().clone()
    }

    /// Requests a sprite or a sheet (the recipe's `frames` decide) and returns its
    /// [`Ticket`]: image handle, atlas layout handle for sheets, recipe, status and cancel.
    pub fn submit(&mut self, request: impl Into<SpriteRequest>) -> Ticket {
        self.queue
            .submit(request, &mut self.images, &mut self.layouts)
    }

    /// Requests a `kind` tileset of terrains `a` and `b` with the defaults of
    /// [`SpriteRequest::tileset`] and returns its [`Ticket`]: the atlas image and its layout
    /// handle at once; [`Ticket::tileset`] and [`SpriteFinished::tileset`] carry the tiles'
    /// codes and seam report when it is done.
    pub fn tileset(
        &mut self,
        kind: pixelgen::tileset::TilesetKind,
        a: impl Into<String>,
        b: impl Into<String>,
    ) -> Ticket {
        self.submit(SpriteRequest::tileset(kind, a, b))
    }

    /// The image assets (this parameter holds them mutably).
    pub fn images(&mut self) -> &mut Assets<Image> {
        &mut self.images
    }

    /// Writes the image under `image` (a gallery sprite, a loaded PNG, any sprite the game
    /// holds) as a set reference file, named by its content, and returns its path for
    /// [`SpriteRequest::reference_image`]: "animate this sprite".
    ///
    /// ```no_run
    /// # use bevy::prelude::*;
    /// # use bevy_pixelgen::prelude::*;
    /// fn animate(mut pixel_gen: PixelGen, hero: Res<HeroSprite>) {
    ///     let Ok(reference) = pixel_gen.reference_from(&hero.0) else { return };
    ///     pixel_gen.submit(
    ///         SpriteRequest::new("knight in silver armour")
    ///             .animate(Action::Idle)
    ///             .reference_image(reference, Some(0.6)),
    ///     );
    /// }
    /// # #[derive(Resource)] struct HeroSprite(Handle<Image>);
    /// ```
    ///
    /// Errors: the image is not loaded (yet), cannot be read as RGBA, or the file cannot be
    /// written.
    pub fn reference_from(&mut self, image: &Handle<Image>) -> Result<PathBuf, SpriteError> {
        let image = self
            .images
            .get(image)
            .ok_or_else(|| invalid_reference("the reference image is not loaded (yet)".into()))?;
        let rgba = image
            .clone()
            .try_into_dynamic()
            .map_err(|e| {
                invalid_reference(format!("the reference image cannot be read as RGBA: {e}"))
            })?
            .into_rgba8();
        self.reference_from_pixels(&rgba)
    }

    /// [`PixelGen::reference_from`] for pixels the caller holds (e.g. one frame cut from a
    /// sheet).
    pub fn reference_from_pixels(
        &mut self,
        image: &image::RgbaImage,
    ) -> Result<PathBuf, SpriteError> {
        pixelgen::set::save_reference(&self.queue.refs_dir, image)
            .map_err(|e| SpriteError::Invalid(Arc::new(e)))
    }

    /// "Animate this sprite": `action`'s frames of `request` (its prompt, size, seed...) drawn
    /// after the sprite under `image` by shared attention, every frame starting from it
    /// ([`DEFAULT_START_STRENGTH`] of it redrawn), as one set. Directions already on the
    /// request are kept. Fails like [`PixelGen::reference_from`] when the image cannot be used.
    ///
    /// ```no_run
    /// # use bevy::prelude::*;
    /// # use bevy_pixelgen::prelude::*;
    /// fn animate_hero(mut pixel_gen: PixelGen, hero: Res<HeroSprite>) {
    ///     let request = SpriteRequest::new("knight in silver armour").size(32, 32);
    ///     if let Ok(walk) = pixel_gen.animate(&hero.0, request, Action::Walk) {
    ///         info!("walk clips: {:?}", walk.clips().names().collect::<Vec<_>>());
    ///     }
    /// }
    /// # #[derive(Resource)] struct HeroSprite(Handle<Image>);
    /// ```
    pub fn animate(
        &mut self,
        image: &Handle<Image>,
        request: impl Into<SpriteRequest>,
        action: pixelgen::Action,
    ) -> Result<Ticket, SpriteError> {
        let reference = self.reference_from(image)?;
        let request = request
            .into()
            .animate(action)
            .reference_image(reference, Some(DEFAULT_START_STRENGTH));
        Ok(self.submit(request))
    }

    /// The sprite under `image` seen from `count` (4 or 8) directions, drawn after it and
    /// starting from it (west mirrored from east when `mirror`), as one set; an animation
    /// already on the request is kept. See [`PixelGen::animate`].
    pub fn directions(
        &mut self,
        image: &Handle<Image>,
        request: impl Into<SpriteRequest>,
        count: u32,
        mirror: bool,
    ) -> Result<Ticket, SpriteError> {
        let reference = self.reference_from(image)?;
        let request = request
            .into()
            .directions(count, mirror)
            .reference_image(reference, Some(DEFAULT_START_STRENGTH));
        Ok(self.submit(request))
    }

    /// The atlas layout assets (this parameter holds them mutably).
    pub fn layouts(&mut self) -> &mut Assets<TextureAtlasLayout> {
        &mut self.layouts
    }
}

impl Deref for PixelGen<'_> {
    type Target = PixelGenQueue;

    fn deref(&self) -> &PixelGenQueue {
        &self.queue
    }
}

/// The request queue behind [`PixelGen`]: tickets in flight, the channel to the worker
/// thread, and the recipe assets being generated. Systems use [`PixelGen`]; code with the
/// whole `World` can submit through [`PixelGenQueue::submit`].
#[derive(Resource)]
pub struct PixelGenQueue {
    jobs: Sender<Job>,
    events: Receiver<WorkerEvent>,
    events_tx: Sender<WorkerEvent>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    default_pixel: Option<PixelOptions>,
    next_id: u64,
    in_flight: HashMap<TicketId, Ticket>,
    worker: Option<JoinHandle<()>>,
    worker_stopped: bool,
    pub(crate) recipe_loads: Receiver<RecipeLoad>,
    pub(crate) recipe_assets: RecipeAssets,
    /// Where images given as set references are written ([`PixelGen::reference_from`]).
    refs_dir: PathBuf,
}

/// The largest placeholder side: bigger outputs show a scaled-down checkerboard of the same
/// shape until they arrive, so a queue of large requests holds little memory.
pub const MAX_PLACEHOLDER_SIDE: u32 = 256;

impl PixelGenQueue {
    fn start(
        config: WorkerConfig,
        refs_dir: PathBuf,
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
            queued: Arc::new(AtomicUsize::new(0)),
            capacity,
            default_pixel,
            next_id: 0,
            in_flight: HashMap::new(),
            worker,
            worker_stopped,
            recipe_loads,
            refs_dir,
            recipe_assets: RecipeAssets::default(),
        }
    }

    /// Requests a sprite or a sheet and returns its [`Ticket`] (see [`PixelGen::submit`]):
    /// the recipe is checked first (the plugin's default pixel options filled in, a random
    /// seed drawn), then the placeholder goes into `images` (and for a sheet its grid layout
    /// into `layouts`) before the handle is returned.
    pub fn submit(
        &mut self,
        request: impl Into<SpriteRequest>,
        images: &mut Assets<Image>,
        layouts: &mut Assets<TextureAtlasLayout>,
    ) -> Ticket {
        let recipe = with_default_pixel(request.into().recipe, &self.default_pixel);
        let admitted = match Plan::new(recipe.clone()) {
            Err(e) => Err(SpriteError::Invalid(Arc::new(e))),
            Ok(plan) => match self.admission() {
                Some(refused) => Err(refused),
                None => Ok(plan),
            },
        };
        match admitted {
            Ok(plan) => {
                let handle = images.add(placeholder(plan.output_size()));
                let layout = plan
                    .sheet_layout()
                    .map(|grid| layouts.add(grid_atlas(grid)));
                self.enqueue(plan, handle, layout)
            }
            Err(error) => {
                // Nothing runs: the handle gets a tiny placeholder, whatever size was asked.
                let handle = images.add(placeholder(Size::square(2)));
                // A sheet or set request keeps its layout handle (empty), as the caller expects.
                let layout = (recipe.frames != Frames::Single
                    || recipe.set.is_some()
                    || recipe.tileset.is_some())
                .then(|| layouts.add(TextureAtlasLayout::new_empty(bevy::math::UVec2::ONE)));
                let ticket =
                    self.new_ticket(recipe.with_drawn_seed(), handle, layout, Default::default());
                self.fail_now(&ticket, error);
                ticket
            }
        }
    }

    /// Why a new request cannot be queued now (the worker is gone, or the queue is full),
    /// checked before anything is allocated for it; the enqueue itself checks again.
    fn admission(&self) -> Option<SpriteError> {
        if self.worker_stopped {
            return Some(SpriteError::WorkerStopped);
        }
        (self.queued.load(Ordering::Acquire) >= self.capacity).then_some(SpriteError::QueueFull {
            capacity: self.capacity,
        })
    }

    fn new_ticket(
        &mut self,
        recipe: Recipe,
        handle: Handle<Image>,
        layout: Option<Handle<TextureAtlasLayout>>,
        clips: Arc<Clips>,
    ) -> Ticket {
        self.next_id += 1;
        let id = TicketId(self.next_id);
        let ticket = Ticket(Arc::new(TicketInner {
            id,
            recipe,
            handle,
            layout,
            clips,
            preview: Mutex::new(None),
            superseded: AtomicBool::new(false),
            phase: AtomicU8::new(FINISHED),
            step: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            outcome: OnceLock::new(),
            tileset: OnceLock::new(),
            queued: self.queued.clone(),
            events: self.events_tx.clone(),
        }));
        self.in_flight.insert(id, ticket.clone());
        ticket
    }

    /// Queues `plan` to replace the image under `handle` (and the layout under `layout`);
    /// the caller has given them their placeholders.
    pub(crate) fn enqueue(
        &mut self,
        plan: Plan,
        handle: Handle<Image>,
        layout: Option<Handle<TextureAtlasLayout>>,
    ) -> Ticket {
        let clips = plan
            .sheet_layout()
            .map(Clips::from_layout)
            .unwrap_or_default();
        let ticket = self.new_ticket(plan.recipe().clone(), handle, layout, Arc::new(clips));
        if let Some(refused) = self.admission() {
            self.fail_now(&ticket, refused);
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
        let job = Job {
            ticket: ticket.clone(),
            plan,
        };
        if let Err(err) = self.jobs.try_send(job) {
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
}

/// `recipe` with the plugin's default pixel options where it sets none.
pub(crate) fn with_default_pixel(mut recipe: Recipe, default: &Option<PixelOptions>) -> Recipe {
    if recipe.pixel.is_none() {
        recipe.pixel.clone_from(default);
    }
    recipe
}

/// The image a request shows until it is done: [`checkerboard`] at the output size, or
/// scaled down to at most [`MAX_PLACEHOLDER_SIDE`] with the same shape.
pub(crate) fn placeholder(size: Size) -> Image {
    let longest = size.width.max(size.height).max(1);
    if longest <= MAX_PLACEHOLDER_SIDE {
        return checkerboard(size);
    }
    let scale = |side: u32| {
        (u64::from(side) * u64::from(MAX_PLACEHOLDER_SIDE) / u64::from(longest)).max(1) as u32
    };
    checkerboard(Size::new(scale(size.width), scale(size.height)))
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

fn receive_results(
    pixel_gen: Option<ResMut<PixelGenQueue>>,
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
                    t.set_progress(step, total);
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
                    ticket.set_outcome(TicketStatus::Failed(SpriteError::Cancelled));
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
                if let Some(set) = &done.tileset {
                    ticket.set_tileset(set.clone());
                }
                ticket.set_outcome(TicketStatus::Done {
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
                    consistency: done.consistency,
                    tileset: done.tileset,
                });
            }
            WorkerEvent::Failed { id, error } => {
                let Some(ticket) = pg.in_flight.remove(&id) else {
                    continue;
                };
                bevy::log::warn!("pixelgen: request {id} failed: {error}");
                ticket.set_outcome(TicketStatus::Failed(error.clone()));
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
