//! Pixel-art post-processing: turns an AI image into true, palette-clean pixel art.
//!
//! (crate docs and example are completed when the pipeline lands)

pub mod color;
pub mod error;

pub mod alpha;
pub mod cleanup;
pub mod grid;
pub mod palette;
pub mod quantize;
pub mod sheet;
pub mod tile;

pub use error::{PixelError, Result};
