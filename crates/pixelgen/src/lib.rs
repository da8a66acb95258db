//! The DGX-Pixels engine facade: one recipe type and one generator for the Bevy plugin and
//! the CLI.
//!
//! A [`Recipe`] (plain serde data, RON or JSON) says everything that decides a sprite's
//! pixels: prompt, seed, steps, sampler, the sprite size and the size the model draws at, and
//! the pixel-art options. A [`Generator`] owns an SDXL pipeline (loaded lazily, once, from a
//! [`ModelConfig`]), runs txt2img, then turns the result into true pixel art with
//! [`pixelgen_pixel::pixelize`]. It sits behind the [`SpriteEngine`] trait so that hosts can
//! swap in a test double. [`CacheKey`] is the sprite's content address (recipe + model).
//!
//! ```no_run
//! use pixelgen::{Control, Generator, ModelConfig, ModelSource, Recipe, Seed, Size, SpriteEngine};
//!
//! # fn main() -> pixelgen::Result<()> {
//! let mut engine = Generator::new(ModelConfig::new(ModelSource::local("models/sdxl-base-1.0")));
//! let recipe = Recipe {
//!     seed: Seed::Fixed(42),
//!     size: Size::square(32),
//!     steps: 20,
//!     ..Recipe::new("pixel art red potion, 16-bit sprite")
//! };
//! let sprite = engine.generate(&recipe, &mut |p| {
//!     println!("step {}/{}", p.step, p.total);
//!     Control::Continue
//! })?;
//! assert_eq!(sprite.image.dimensions(), (32, 32));
//! pixelgen::save_sprite("assets/generated".as_ref(), &sprite)?;
//! # Ok(())
//! # }
//! ```

mod cache;
mod digest;
mod disk;
mod engine;
mod error;
mod model;
mod output;
mod recipe;
mod sheet;

pub use cache::CacheKey;
pub use disk::DiskCache;
pub use engine::{Control, GeneratedSprite, Generator, Progress, SpriteEngine, tensor_to_rgba};
pub use error::{PixelGenError, Result};
pub use model::{DeviceChoice, ModelConfig, ModelIdentity, ModelSource, Precision};
pub use output::{SavedSprite, file_stem, file_stem_for, prompt_slug, save_sprite, write_atomic};
pub use pixelgen_diffusion::{SDXL_LATENT_RGB, latent_pixel_to_rgb, latents_to_rgb};
pub use recipe::{Frames, LoraRef, MAX_SIDE, Priority, Recipe, Seed, Size};
pub use sheet::{GeneratedSheet, SavedSheet, generate_sheet, save_sheet};

/// Re-exported so recipes can name samplers and pixel options without extra dependencies.
pub use pixelgen_diffusion::SchedulerKind;
/// Re-exported so recipes can name sampling presets and timestep spacings.
pub use pixelgen_diffusion::{PresetName, SamplingPreset, TimestepSpacing};
/// Re-exported so recipes can name samplers and pixel options without extra dependencies.
pub use pixelgen_pixel::PixelOptions;
/// Re-exported so recipes can name sheet options without extra dependencies.
pub use pixelgen_pixel::sheet::{Sheet, SheetLayout, SheetOptions};
