//! Pixel-art post-processing: turns an AI image into true, palette-clean pixel art.
//!
//! Image models draw "pixel art" at 8-16x its real size, with soft edges, noise and a grid
//! that drifts. This crate finds that grid and gives back the sprite at its true resolution,
//! then optionally reduces or maps its colours (OKLab k-means, built-in and user palettes,
//! ordered or Floyd–Steinberg dithering), removes the background to binary alpha, cleans stray
//! pixels, draws an outline and places it on an exact canvas. It also packs frames into sprite
//! sheets with Aseprite-compatible JSON, scores tile seams and builds two-terrain Wang and
//! blob tilesets ([`tileset`]). No Bevy, no candle: plain
//! [`image::RgbaImage`] in and out.
//!
//! ```
//! use pixelgen_pixel::prelude::*;
//!
//! // A 4x4 two-colour sprite drawn 8x too large, as a model would.
//! let sprite = image::RgbaImage::from_fn(4, 4, |x, y| {
//!     if (x + y) % 2 == 0 { image::Rgba([200, 40, 60, 255]) } else { image::Rgba([20, 20, 30, 255]) }
//! });
//! let big = image::imageops::resize(&sprite, 32, 32, image::imageops::FilterType::Nearest);
//!
//! let opts = PixelOptions { palette: Some(Palette::builtin("pico-8")?), ..PixelOptions::default() };
//! let out = pixelize(&big, &opts)?;
//! assert_eq!(out.image.dimensions(), (4, 4));
//! assert!(out.palette.iter().all(|c| Palette::builtin("pico-8").unwrap().colors.contains(c)));
//! # Ok::<(), pixelgen_pixel::PixelError>(())
//! ```

pub mod alpha;
pub mod cleanup;
pub mod clip;
pub mod color;
pub mod error;
pub mod grid;
pub mod palette;
pub mod pipeline;
pub mod quantize;
pub mod set;
pub mod sheet;
pub mod tile;
pub mod tileset;
pub mod write;

pub use error::{PixelError, Result};
pub use pipeline::{Canvas, PixelOptions, PixelOutput, pixelize};

/// The types most users need, for `use pixelgen_pixel::prelude::*`.
pub mod prelude {
    #[doc(hidden)]
    pub use crate::alpha::{BackgroundOptions, KeyMode};
    #[doc(hidden)]
    pub use crate::cleanup::{Anchor, Connectivity, OutlineOptions, OutlinePlacement};
    #[doc(hidden)]
    pub use crate::clip::{Clip, Clips};
    #[doc(hidden)]
    pub use crate::error::{PixelError, Result};
    #[doc(hidden)]
    pub use crate::grid::{Grid, GridOptions};
    #[doc(hidden)]
    pub use crate::palette::Palette;
    #[doc(hidden)]
    pub use crate::pipeline::{Canvas, PixelOptions, PixelOutput, pixelize};
    #[doc(hidden)]
    pub use crate::quantize::{ColorCount, Dither, QuantizeOptions};
    #[doc(hidden)]
    pub use crate::sheet::{Frame, JsonForm, Sheet, SheetLayout, SheetOptions, pack};
    #[doc(hidden)]
    pub use crate::tileset::{
        Axis, SeamReport, Terrain, TileCode, TileIndex, TiledTileset, TilesetKind, compose,
        seam_report, terrain_mask,
    };
}
