//! Requests, tickets and their states and errors.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bevy::asset::Handle;
use bevy::image::{Image, TextureAtlasLayout};
use crossbeam_channel::Sender;
use pixelgen::tileset::{TilesetKind, TilesetOutput, TilesetRecipe};
use pixelgen::{
    Action, Animation, Clips, PixelGenError, PixelOptions, Priority, Recipe, Seed, SetRecipe, Size,
};

use crate::worker::WorkerEvent;

/// What to generate: a [`Recipe`] with a builder for the common fields.
///
/// ```
/// use bevy_pixelgen::prelude::*;
///
/// let potion = SpriteRequest::new("red health potion, pixel art")
///     .size(32, 32)
///     .seed(42)
///     .steps(8)
///     .negative("blurry, text");
/// assert_eq!(potion.recipe.steps, Some(8));
/// // Several frames make a sprite sheet (one prompt each, same seed).
/// let blink = SpriteRequest::new("slime").frames(["slime, eyes open", "slime, eyes closed"]);
/// assert_eq!(blink.recipe.frame_count(), 2);
/// // A consistent set: a walk seen from 4 directions, west mirrored from east.
/// let hero = SpriteRequest::new("knight").animate(Action::Walk).directions(4, true);
/// assert_eq!(hero.recipe.set_frames().unwrap().unwrap().frames.len(), 32);
/// // Any recipe converts, e.g. one read from a `.pixelgen.ron` file.
/// let from_file: SpriteRequest = Recipe::from_ron(r#"(prompt: "bat", steps: 8)"#).unwrap().into();
/// assert_eq!(from_file.recipe.prompt, "bat");
/// // A Wang tileset of grass and water: 16 tiles of 16x16 in an atlas of 4 columns.
/// use bevy_pixelgen::pixelgen::tileset::TilesetKind;
/// let shore = SpriteRequest::tileset(TilesetKind::Wang, "grass", "water").size(16, 16);
/// assert_eq!(shore.recipe.tileset.as_ref().unwrap().tiles().len(), 16);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SpriteRequest {
    /// The full recipe.
    pub recipe: Recipe,
}

impl SpriteRequest {
    /// A request for `prompt` with the recipe defaults (32x32 sprite, random seed).
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            recipe: Recipe::new(prompt),
        }
    }

    /// The sprite size the game wants.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.recipe.size = Size::new(width, height);
        self
    }

    /// The size the model draws at.
    pub fn generation_size(mut self, width: u32, height: u32) -> Self {
        self.recipe.generation_size = Size::new(width, height);
        self
    }

    /// A fixed seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.recipe.seed = Seed::Fixed(seed);
        self
    }

    /// Sampling steps.
    pub fn steps(mut self, steps: usize) -> Self {
        self.recipe.steps = Some(steps);
        self
    }

    /// Guidance scale.
    pub fn guidance(mut self, guidance: f64) -> Self {
        self.recipe.guidance = Some(guidance);
        self
    }

    /// Several frames, one per prompt, packed into a sprite sheet (see
    /// [`Ticket::layout`]).
    pub fn frames<S: Into<String>>(mut self, prompts: impl IntoIterator<Item = S>) -> Self {
        self.recipe.frames =
            pixelgen::Frames::Prompts(prompts.into_iter().map(Into::into).collect());
        self
    }

    /// Negative prompt.
    pub fn negative(mut self, negative: impl Into<String>) -> Self {
        self.recipe.negative = Some(negative.into());
        self
    }

    /// Queue priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.recipe.priority = priority;
        self
    }

    /// Pixel-art options (instead of the plugin's default).
    pub fn pixel(mut self, options: PixelOptions) -> Self {
        self.recipe.pixel = Some(options);
        self
    }

    /// The frames as one consistent set (see [`SetRecipe`]): drawn sharing attention with a
    /// reference, then one palette, cell size, outline and anchor for all of them.
    pub fn set(mut self, set: SetRecipe) -> Self {
        self.recipe.set = Some(set);
        self
    }

    /// An animation of `action` (its template's frames, playback and timing) as a consistent
    /// set: a sheet row of frames with a clip (see [`Ticket::clips`]).
    pub fn animate(mut self, action: Action) -> Self {
        let set = self.recipe.set.get_or_insert_with(SetRecipe::default);
        set.animation = Some(Animation::new(action));
        self
    }

    /// The character seen from `count` (4 or 8) directions, a sheet row each; with
    /// `mirror`, west-facing views are the east-facing ones mirrored instead of drawn.
    pub fn directions(mut self, count: u32, mirror: bool) -> Self {
        let set = self.recipe.set.take().unwrap_or_default();
        self.recipe.set = Some(set.with_directions(count, mirror));
        self
    }

    /// Draw the set after the sprite at `path` (shared attention; its content is part of the
    /// cache key), starting every frame from it when `start_strength` is given (image to
    /// image: how much of it is redrawn, 0 exclusive to 1). See also
    /// [`PixelGen::reference_from`](crate::PixelGen::reference_from) for an image asset.
    pub fn reference_image(
        mut self,
        path: impl Into<PathBuf>,
        start_strength: Option<f64>,
    ) -> Self {
        let set = self.recipe.set.take().unwrap_or_default();
        self.recipe.set = Some(set.with_reference_image(path, start_strength));
        self
    }
}

/// The prompt of [`SpriteRequest::tileset`] (each tile's prompt starts with its terrains).
pub const TILESET_PROMPT: &str = "top-down pixel art game tile, seamless texture";

impl SpriteRequest {
    /// A `kind` tileset (Wang 16 or blob 47 + 1) of terrains `a` and `b` (e.g. `"grass"`,
    /// `"water"`; a blob set's blobs are `b`), with [`TILESET_PROMPT`] and every other tileset
    /// option at its default: an atlas sheet whose cells are named by tile code (see
    /// [`pixelgen::tileset`]). Set the tile size with [`size`](Self::size) and the options
    /// with [`tileset_options`](Self::tileset_options).
    pub fn tileset(kind: TilesetKind, a: impl Into<String>, b: impl Into<String>) -> Self {
        Self::new(TILESET_PROMPT).tileset_options(TilesetRecipe::new(kind, a, b))
    }

    /// Makes this request a tileset with `set`'s kind, terrains and options (the prompt is
    /// what every tile's prompt ends with).
    pub fn tileset_options(mut self, set: TilesetRecipe) -> Self {
        self.recipe.tileset = Some(set);
        self
    }
}

impl From<Recipe> for SpriteRequest {
    fn from(recipe: Recipe) -> Self {
        Self { recipe }
    }
}

impl From<&str> for SpriteRequest {
    fn from(prompt: &str) -> Self {
        Self::new(prompt)
    }
}

impl From<String> for SpriteRequest {
    fn from(prompt: String) -> Self {
        Self::new(prompt)
    }
}

/// Identifies one request for its whole life (messages carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketId(pub u64);

impl std::fmt::Display for TicketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a request produced no sprite.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpriteError {
    /// Too many requests wait already.
    #[error(
        "the generation queue is full ({capacity} requests wait): try again later or raise PixelGenPlugin::queue_capacity"
    )]
    QueueFull {
        /// The configured capacity.
        capacity: usize,
    },
    /// The request was cancelled (before or while it ran).
    #[error("cancelled")]
    Cancelled,
    /// The recipe is invalid.
    #[error("{0}")]
    Invalid(Arc<PixelGenError>),
    /// The engine could not be created; the next request tries again.
    #[error("the generation engine could not start: {0}")]
    EngineStart(Arc<PixelGenError>),
    /// Generation failed (model loading, sampling, post-processing).
    #[error("{0}")]
    Generation(Arc<PixelGenError>),
    /// The engine panicked; it is dropped and rebuilt for the next request.
    #[error("the generation engine panicked ({message}); it restarts for the next request")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The worker thread is gone, so nothing more can be generated in this app.
    #[error("the pixelgen worker thread has stopped")]
    WorkerStopped,
}

impl SpriteError {
    /// Wraps an engine error, mapping its cancellation to [`SpriteError::Cancelled`].
    pub fn from_engine(e: PixelGenError) -> Self {
        match e {
            PixelGenError::Cancelled { .. } => SpriteError::Cancelled,
            other => SpriteError::Generation(Arc::new(other)),
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone)]
pub enum TicketStatus {
    /// Waiting in the queue.
    Queued,
    /// Generating; `step` of `total` sampling steps are done.
    Running {
        /// Steps done.
        step: usize,
        /// Steps in this run.
        total: usize,
    },
    /// The sprite (or sheet) is in `Assets<Image>` under the ticket's handle.
    Done {
        /// Where the PNG was saved, if saving was on and worked.
        saved: Option<PathBuf>,
    },
    /// No sprite; the handle keeps its placeholder.
    Failed(SpriteError),
}

impl TicketStatus {
    /// Whether the request is over (done or failed).
    pub fn is_finished(&self) -> bool {
        matches!(self, TicketStatus::Done { .. } | TicketStatus::Failed(_))
    }
}

pub(crate) const QUEUED: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const CANCEL_REQUESTED: u8 = 2;
pub(crate) const CANCELLED: u8 = 3;
pub(crate) const FINISHED: u8 = 4;

pub(crate) struct TicketInner {
    pub(crate) id: TicketId,
    pub(crate) recipe: Recipe,
    pub(crate) handle: Handle<Image>,
    pub(crate) layout: Option<Handle<TextureAtlasLayout>>,
    /// The sheet's animation clips, known from the plan.
    pub(crate) clips: Arc<Clips>,
    /// The latest latent preview.
    pub(crate) preview: Mutex<Option<Arc<image::RgbaImage>>>,
    /// Replaced by a newer request for the same target (an edited recipe asset): its
    /// result, should it still arrive, is dropped.
    pub(crate) superseded: AtomicBool,
    /// Who owns the request now: the queue, the worker, or nobody (QUEUED .. FINISHED).
    pub(crate) phase: AtomicU8,
    /// Sampling steps done and in the run, as last received by the main schedule.
    pub(crate) step: AtomicUsize,
    pub(crate) total: AtomicUsize,
    /// How it ended, once the main schedule has taken the result in.
    pub(crate) outcome: OnceLock<TicketStatus>,
    /// A finished tileset's codes and seam report.
    pub(crate) tileset: OnceLock<TilesetOutput>,
    pub(crate) queued: Arc<AtomicUsize>,
    pub(crate) events: Sender<WorkerEvent>,
}

/// A handle on one request: its recipe (seed drawn), image handle, status and cancel.
///
/// Cheap to clone; every clone sees the same request.
#[derive(Clone)]
pub struct Ticket(pub(crate) Arc<TicketInner>);

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("id", &self.0.id)
            .field("status", &self.status())
            .finish()
    }
}

impl Ticket {
    /// The request's id.
    pub fn id(&self) -> TicketId {
        self.0.id
    }

    /// The recipe as it runs: the seed is fixed and the plugin's default pixel options are in.
    pub fn recipe(&self) -> &Recipe {
        &self.0.recipe
    }

    /// The image handle: a placeholder now, the sprite once done.
    pub fn handle(&self) -> &Handle<Image> {
        &self.0.handle
    }

    /// The atlas layout handle, for sheet requests.
    pub fn layout(&self) -> Option<&Handle<TextureAtlasLayout>> {
        self.0.layout.as_ref()
    }

    /// The animation clips of a set or tagged sheet (clip name -> frames and durations,
    /// e.g. `walk_east`), known from the plan when the request was made, so a
    /// [`ClipPlayer`](crate::ClipPlayer) can play on the placeholder. Empty for one sprite.
    pub fn clips(&self) -> Arc<Clips> {
        self.0.clips.clone()
    }

    /// For a finished tileset request: its tiles' codes in atlas order and how its seams
    /// scored (also on [`SpriteFinished::tileset`](crate::SpriteFinished::tileset)). `None`
    /// until it is done, and for other requests.
    pub fn tileset(&self) -> Option<&TilesetOutput> {
        self.0.tileset.get()
    }

    pub(crate) fn set_tileset(&self, set: TilesetOutput) {
        let _ = self.0.tileset.set(set);
    }

    /// Whether this is a sprite-sheet request (the recipe has several frames).
    pub fn is_sheet(&self) -> bool {
        self.0.layout.is_some()
    }

    /// The latest preview of the running generation: the current latents mapped to RGB
    /// (1/8 of the generation size; see [`pixelgen::latents_to_rgb`]). `None` before the
    /// first step or when the engine makes none. Convert with
    /// [`to_bevy_image`](crate::to_bevy_image) to show it.
    pub fn preview(&self) -> Option<Arc<image::RgbaImage>> {
        match self.0.preview.lock() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn set_preview(&self, preview: Arc<image::RgbaImage>) {
        match self.0.preview.lock() {
            Ok(mut p) => *p = Some(preview),
            Err(poisoned) => *poisoned.into_inner() = Some(preview),
        }
    }

    /// Cancels the request and drops its result should it still arrive (it was replaced).
    pub(crate) fn supersede(&self) {
        self.0.superseded.store(true, Ordering::Release);
        self.cancel();
    }

    pub(crate) fn is_superseded(&self) -> bool {
        self.0.superseded.load(Ordering::Acquire)
    }

    /// The current status (updated once per frame by [`PixelGenSystems::Receive`](crate::PixelGenSystems)).
    pub fn status(&self) -> TicketStatus {
        if let Some(outcome) = self.0.outcome.get() {
            return outcome.clone();
        }
        match self.0.total.load(Ordering::Acquire) {
            0 => TicketStatus::Queued,
            total => TicketStatus::Running {
                step: self.0.step.load(Ordering::Acquire),
                total,
            },
        }
    }

    /// Cancels the request. A queued request is dropped at once (its failure message comes
    /// on the next frame); a running one stops after its current step. Returns `false` when
    /// it was already over.
    pub fn cancel(&self) -> bool {
        let phase = &self.0.phase;
        if phase
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.0.queued.fetch_sub(1, Ordering::AcqRel);
            let _ = self.0.events.send(WorkerEvent::Failed {
                id: self.0.id,
                error: SpriteError::Cancelled,
            });
            return true;
        }
        phase
            .compare_exchange(
                RUNNING,
                CANCEL_REQUESTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Records a step the main schedule received.
    pub(crate) fn set_progress(&self, step: usize, total: usize) {
        self.0.step.store(step, Ordering::Release);
        self.0.total.store(total.max(1), Ordering::Release);
    }

    /// Records how the request ended (the first outcome wins) and releases it.
    pub(crate) fn set_outcome(&self, status: TicketStatus) {
        self.finish();
        let _ = self.0.outcome.set(status);
    }

    /// The worker takes the request: `false` when it was cancelled meanwhile.
    pub(crate) fn claim(&self) -> bool {
        let ok = self
            .0
            .phase
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if ok {
            self.0.queued.fetch_sub(1, Ordering::AcqRel);
        }
        ok
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.0.phase.load(Ordering::Acquire) == CANCEL_REQUESTED
    }

    pub(crate) fn finish(&self) {
        self.0.phase.store(FINISHED, Ordering::Release);
    }
}
