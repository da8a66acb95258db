//! Prompt-to-pixel-art sprites for Bevy: generated on a worker thread, delivered as ordinary
//! `Handle<Image>`s.
//!
//! [`PixelGen`] is a system parameter: [`PixelGen::sprite`] returns a handle whose
//! checkerboard placeholder is already in `Assets<Image>`; a worker thread runs the shared
//! request path of [`pixelgen`] (cache lookups, SDXL, the pixel-art pipeline) and the finished
//! sprite replaces the placeholder in place, so everything using the handle updates.
//! A recipe with several `frames` makes a sprite sheet through the same call, with a
//! `TextureAtlasLayout` on its [`Ticket`]. Progress, results and failures arrive as messages
//! ([`SpriteProgress`], [`SpriteFinished`], [`SpriteFailed`]); a failing or panicking
//! generation never stops the app. Nothing runs on the main schedule but a channel drain.
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_pixelgen::prelude::*;
//!
//! fn main() {
//!     App::new()
//!         .add_plugins(DefaultPlugins)
//!         .add_plugins(PixelGenPlugin::new(ModelConfig::new(ModelSource::local(
//!             "models/stable-diffusion-xl-base-1.0",
//!         ))))
//!         .add_systems(Startup, request_potion)
//!         .add_systems(Update, report)
//!         .run();
//! }
//!
//! #[derive(Resource)]
//! struct Potion(Handle<Image>);
//!
//! fn request_potion(mut commands: Commands, mut pixelgen: PixelGen) {
//!     let handle = pixelgen.sprite(SpriteRequest::new("red potion, pixel art").size(32, 32));
//!     // Use it like any image, e.g. `commands.spawn(Sprite::from_image(handle.clone()))`.
//!     commands.insert_resource(Potion(handle));
//! }
//!
//! fn report(mut done: MessageReader<SpriteFinished>, mut failed: MessageReader<SpriteFailed>) {
//!     for m in done.read() {
//!         info!("sprite {} ready (seed {:?})", m.ticket, m.recipe.seed);
//!     }
//!     for m in failed.read() {
//!         warn!("sprite {} failed: {}", m.ticket, m.error);
//!     }
//! }
//! ```
//!
//! # Tilesets
//!
//! [`SpriteRequest::tileset`] (or [`PixelGen::tileset`]) asks for a Wang or blob tileset of
//! two terrains: an atlas sheet whose tiles meet at every edge; [`SpriteFinished::tileset`]
//! and [`Ticket::tileset`] carry its tile codes and seam report. [`tilemap`] turns the atlas
//! into the array texture Bevy's `TilemapChunk` draws. See `docs/tilesets.md` and
//! `examples/tilemap.rs`.
//!
//! # Recipes as assets
//!
//! A `*.pixelgen.ron` file (a serialized [`pixelgen::Recipe`]) loads as the sprite it makes:
//! `asset_server.load::<Image>("items/potion.pixelgen.ron")`. With
//! [`PixelGenPlugin::cache_dir`] set, a recipe generated before (same recipe, same model) loads
//! straight from the cache without touching the model; otherwise it loads as a placeholder
//! and the sprite replaces it in the same handle when the worker is done. A recipe with
//! several `frames` loads as the sheet image, and `"FILE.pixelgen.ron#layout"`
//! ([`LAYOUT_LABEL`]) as its `TextureAtlasLayout`. A random `seed` in a file is derived from
//! the recipe's content, so a file always names the same sprite. With Bevy's `file_watcher`
//! feature, editing the file regenerates it (or reloads it from the cache).
//!
//! # Caches
//!
//! The worker runs every request through [`pixelgen::CachedEngine`], the same request path
//! the command line and a server use: recently made sprites in memory
//! ([`PixelGenPlugin::memory_cache_bytes`]) and, with [`PixelGenPlugin::cache_dir`], on disk.
//! A request identical to an earlier one (same recipe, seed and model) is served without the
//! model ([`SpriteFinished::from_cache`]). Sheets are made frame by frame through the same
//! caches, so a frame repeated in a sheet, or made before by another sheet or as a sprite, is
//! not generated again. The worker itself only keeps the queue, its thread and a panic guard.
//!
//! # The editor panel (feature `editor`)
//!
//! `PixelGenEditorPlugin` adds an egui side panel (`bevy_egui`) next to `PixelGenPlugin`:
//! style presets from `assets/presets/*.ron`, prompt, pixel settings (palette files, auto
//! colour count, outline colour), sheet frames, a queue with live previews, elapsed time, ETA
//! and cancel, and a gallery (regenerate, variations, save to assets as PNG + recipe, apply to
//! a scene sprite marked `PixelGenTarget`, sheets playing at a chosen fps). F2 shows and hides
//! it (not while a text field has the keyboard); its settings persist in
//! `.pixelgen/editor.ron`. The panel only draws plain resources (`EditorState`, `EditorQueue`,
//! `Gallery`, `EditorLog`, `Presets`) and writes `EditorAction` messages, so a headless app
//! (`panel: false`) or your own UI can drive it too. See `examples/editor.rs`.
//!
//! # Previews and CPU use
//!
//! Every [`SpriteProgress`] carries a small RGB preview of the current latents (1/8 of the
//! generation size; also on [`Ticket::preview`]). On the CPU the model runs in a dedicated
//! thread pool of [`PixelGenPlugin::compute_threads`] threads (default: cores - 1), so it
//! cannot starve the main schedule.
//!
//! # Tests and manual updates
//!
//! The plugin starts its worker and inserts [`PixelGenQueue`] (the resource behind
//! [`PixelGen`]) in `Plugin::finish`. `App::run` calls it for you; a test that drives the app
//! with `app.update()` must call `app.finish()` and `app.cleanup()` first. From code that
//! holds the whole `World`, submit with `world.run_system_once(|mut pg: PixelGen| ..)` or
//! [`PixelGenQueue::submit`].

#![forbid(unsafe_code)]

mod assets;
mod clips;
#[cfg(feature = "editor")]
pub mod editor;
mod messages;
mod plugin;
mod request;
pub mod tilemap;
mod worker;

pub use assets::{LAYOUT_LABEL, PixelRecipeLoader, RECIPE_EXTENSION, RecipeAssetError};
#[cfg(feature = "sprite")]
pub use clips::show_clip_frames;
pub use clips::{ClipPlayer, advance_clip_players};
/// The editor panel's plugin and the resources a game or a test most often touches; the
/// rest (settings files, save dialog, sheet playback, helpers) is in [`editor`].
#[cfg(feature = "editor")]
pub use editor::{
    EditorAction, EditorLog, EditorQueue, EditorState, Gallery, GalleryItem, PixelGenEditorPlugin,
    PixelGenEditorSystems, PixelGenTarget, Presets,
};
pub use messages::{SpriteFailed, SpriteFinished, SpriteProgress};
pub use plugin::{
    DEFAULT_MEMORY_CACHE_BYTES, DEFAULT_START_STRENGTH, EngineFactory, MAX_PLACEHOLDER_SIDE,
    PixelGen, PixelGenPlugin, PixelGenQueue, PixelGenSystems, checkerboard,
    default_compute_threads,
};
pub use request::{SpriteError, SpriteRequest, TILESET_PROMPT, Ticket, TicketId, TicketStatus};
pub use worker::to_bevy_image;

/// The `bevy_egui` the editor panel is built with (same version for your own panels).
#[cfg(feature = "editor")]
pub use bevy_egui;
pub use pixelgen;

/// The types most games need, for `use bevy_pixelgen::prelude::*`.
pub mod prelude {
    #[doc(hidden)]
    pub use crate::{
        ClipPlayer, PixelGen, PixelGenPlugin, PixelGenQueue, PixelGenSystems, SpriteError,
        SpriteFailed, SpriteFinished, SpriteProgress, SpriteRequest, Ticket, TicketId,
        TicketStatus,
    };
    #[cfg(feature = "editor")]
    #[doc(hidden)]
    pub use crate::{EditorAction, EditorState, Gallery, PixelGenEditorPlugin, PixelGenTarget};
    #[doc(hidden)]
    pub use pixelgen::{
        Action, Clips, DeviceChoice, ModelConfig, ModelSource, Precision, Priority, Recipe, Seed,
        SetRecipe, View,
    };
}
