//! The DGX-Pixels engine facade: one request path from a recipe to finished pixel art, shared
//! by the Bevy plugin, the command line and a server.
//!
//! ```text
//! Recipe ──Plan::new──► Plan ──CachedEngine::run──► memory / disk cache hit ─► Generated
//!  (serde: RON, JSON)   (checked once,               │ miss
//!                        seed fixed,                 ▼
//!                        sheet grid known)     SpriteEngine::render per frame
//!                                              (Generator: SDXL → pixelize) ─► pack sheet
//! ```
//!
//! - A [`Recipe`] (plain serde data, RON or JSON) says everything that decides the pixels:
//!   prompt, seed, steps, sampler, sprite size and the size the model draws at, pixel-art
//!   options, and for a sprite sheet its frames.
//! - A [`Plan`] is a recipe checked as a whole, with its seed fixed: hosts make it once, when
//!   a request comes in, and refuse what cannot run before doing any work.
//! - A [`SpriteEngine`] draws one frame: the real [`Generator`] (SDXL from a [`ModelConfig`],
//!   loaded lazily, then [`pixelgen_pixel::pixelize`]), a remote backend or a test double.
//! - A [`CachedEngine`] wears any engine: it keys every plan by content ([`CacheKey`]: recipe +
//!   model identity), serves repeats from memory or a [`DiskCache`], makes sheets frame by
//!   frame (a frame made before is never made again) and returns a [`Generated`] image.
//! - [`save`] writes it as PNG + `.pixelgen.ron` recipe (+ Aseprite JSON for a sheet), each
//!   file atomically ([`write_atomic`]).
//!
//! ```no_run
//! use pixelgen::{CachedEngine, Control, Generator, ModelConfig, ModelSource, Recipe, Seed, Size};
//!
//! # fn main() -> pixelgen::Result<()> {
//! let model = ModelConfig::new(ModelSource::local("models/sdxl-base-1.0"));
//! let mut engine = CachedEngine::new(Generator::new(model));
//! let recipe = Recipe {
//!     seed: Seed::Fixed(42),
//!     size: Size::square(32),
//!     steps: Some(20),
//!     ..Recipe::new("pixel art red potion, 16-bit sprite")
//! };
//! let sprite = engine.generate(&recipe, &mut |p| {
//!     println!("step {}/{}", p.step, p.total);
//!     Control::Continue
//! })?;
//! assert_eq!(sprite.image.dimensions(), (32, 32));
//! pixelgen::save("assets/generated".as_ref(), &sprite)?;
//! # Ok(())
//! # }
//! ```

mod cache;
mod cached;
mod digest;
mod disk;
pub mod edit;
mod engine;
mod error;
mod memory;
mod model;
mod output;
mod plan;
mod recipe;
pub mod set;
pub mod tileset;

pub use cache::CacheKey;
pub use cached::{CachedEngine, DEFAULT_MEMORY_CACHE_BYTES, Generated};
pub use disk::DiskCache;
pub use edit::EditRecipe;
pub use engine::{Control, Generator, Progress, Rendered, RenderedSet, SpriteEngine};
pub use error::{PixelGenError, Result};
pub use model::{DeviceChoice, ModelConfig, ModelIdentity, ModelSource, Precision};
pub use output::{
    Artwork, SavedFiles, file_stem, file_stem_for, prompt_slug, save, save_as, write_atomic,
};
pub use pixelgen_diffusion::{SDXL_LATENT_RGB, latent_pixel_to_rgb, latents_to_rgb};
/// Re-exported so sets can name their anchor and read their consistency and clips.
pub use pixelgen_pixel::clip::{Clip, Clips};
/// Re-exported so sets can name their anchor and read their consistency.
pub use pixelgen_pixel::set::{Consistency, FrameConsistency, SetAnchor};
pub use plan::Plan;
pub use recipe::{Frames, LoraRef, MAX_SIDE, Priority, Recipe, Seed, Size};
pub use set::{
    Action, Animation, Directions, Playback, Reference, ReferenceImage, SetFrames, SetRecipe, View,
};
pub use tileset::{TilesetKind, TilesetOutput, TilesetRecipe};

/// Re-exported so recipes can name samplers and pixel options without extra dependencies.
pub use pixelgen_diffusion::SchedulerKind;
/// Re-exported so edits can name their inpaint options and the largest mask blur.
pub use pixelgen_diffusion::{InpaintParams, MAX_MASK_BLUR};
/// Re-exported so recipes can name sampling presets and timestep spacings.
pub use pixelgen_diffusion::{PresetName, SamplingPreset, TimestepSpacing};
/// Re-exported so recipes can name samplers and pixel options without extra dependencies.
pub use pixelgen_pixel::PixelOptions;
/// Re-exported so recipes can name sheet options without extra dependencies.
pub use pixelgen_pixel::sheet::{Sheet, SheetLayout, SheetOptions};
