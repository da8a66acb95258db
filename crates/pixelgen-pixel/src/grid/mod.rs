//! Pixel-grid detection and true-resolution downscale of upscaled ("fake") pixel art.
//!
//! AI pixel art arrives 4x to 16x too large, with soft edges, noise, a few pixels of offset and a
//! grid that need not be square or even regular. [`detect`] finds the grid per axis: edge
//! profiles (summed absolute neighbour differences), the strongest period of their spectrum
//! (with harmonics resolved towards the fundamental), its phase, then a local phase track so
//! that slowly drifting grids get the right cut positions. [`downscale`] gives every cell one
//! robust colour taken from the cell's interior (the blurred border band is skipped) and then
//! merges colours closer than [`GridOptions::merge_tolerance`] (OKLab) so that the result is
//! palette-clean. [`to_true_resolution`] runs both, with an optional fallback size for images
//! that have no grid.
//!
//! Partial cells at the image border (the grid's offset cuts a cell) are kept when at least
//! half a cell wide and dropped otherwise; [`Axis::cuts`] then starts after (or ends before) the
//! dropped strip.

mod detect;
mod downscale;

use image::RgbaImage;
use serde::{Deserialize, Serialize};

use crate::error::{PixelError, Result, ensure_not_empty};

pub use downscale::downscale;

/// Options for grid detection and downscale. Every field has a sensible default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GridOptions {
    /// Fixed cell width in source pixels (non-integer allowed); `None` detects it.
    pub cell_width: Option<f32>,
    /// Fixed cell height in source pixels (non-integer allowed); `None` detects it.
    pub cell_height: Option<f32>,
    /// Fixed x position of a vertical cell boundary (taken modulo the cell width); `None`
    /// detects it. Only used when the cell width is fixed too.
    pub offset_x: Option<f32>,
    /// Fixed y position of a horizontal cell boundary (taken modulo the cell height); `None`
    /// detects it. Only used when the cell height is fixed too.
    pub offset_y: Option<f32>,
    /// Smallest cell size searched, in source pixels (at least 2).
    pub min_cell: f32,
    /// Largest cell size searched, in source pixels (also limited to a third of the image side).
    pub max_cell: f32,
    /// Size (columns, rows) to resample to when no grid is found, instead of failing.
    pub fallback_size: Option<(u32, u32)>,
    /// Cell colours closer than this OKLab distance are merged into one colour (their pixels'
    /// mean). 0.02 is about one just-noticeable difference; the default 0.04 absorbs the
    /// per-cell noise of AI output while keeping distinct palette entries (which differ by
    /// 0.08 or more in real pixel-art palettes). 0 disables merging.
    pub merge_tolerance: f32,
}

impl Default for GridOptions {
    fn default() -> Self {
        Self {
            cell_width: None,
            cell_height: None,
            offset_x: None,
            offset_y: None,
            min_cell: 2.0,
            max_cell: 64.0,
            fallback_size: None,
            merge_tolerance: 0.04,
        }
    }
}

impl GridOptions {
    /// Options with both cell sizes fixed (offsets still detected).
    pub fn with_cell(width: f32, height: f32) -> Self {
        Self {
            cell_width: Some(width),
            cell_height: Some(height),
            ..Self::default()
        }
    }

    /// Checks ranges; returns [`PixelError::InvalidOption`] naming the bad field.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |name: &'static str, message: String| Err(PixelError::InvalidOption { name, message });
        for (name, v) in [
            ("cell_width", self.cell_width),
            ("cell_height", self.cell_height),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 1.0)
            {
                return bad(
                    name,
                    format!("{v} is not a cell size; give a number >= 1 (pixels)"),
                );
            }
        }
        for (name, v) in [("offset_x", self.offset_x), ("offset_y", self.offset_y)] {
            if let Some(v) = v
                && !v.is_finite()
            {
                return bad(name, format!("{v} is not a finite offset in pixels"));
            }
        }
        if !(self.min_cell.is_finite() && self.min_cell >= 2.0) {
            return bad(
                "min_cell",
                format!("{} is below 2; give a size >= 2 pixels", self.min_cell),
            );
        }
        if !(self.max_cell.is_finite() && self.max_cell >= self.min_cell) {
            return bad(
                "max_cell",
                format!(
                    "{} must be finite and >= min_cell ({})",
                    self.max_cell, self.min_cell
                ),
            );
        }
        if !(self.merge_tolerance.is_finite() && self.merge_tolerance >= 0.0) {
            return bad(
                "merge_tolerance",
                format!(
                    "{} must be a finite OKLab distance >= 0 (default 0.04)",
                    self.merge_tolerance
                ),
            );
        }
        if let Some((w, h)) = self.fallback_size
            && (w == 0 || h == 0)
        {
            return bad(
                "fallback_size",
                format!("{w}x{h} is empty; give at least 1x1"),
            );
        }
        Ok(())
    }
}

/// The grid along one axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// Mean cell size in source pixels.
    pub cell: f32,
    /// Position of a cell boundary, in `0..cell`.
    pub offset: f32,
    /// Cell boundaries in source pixels, strictly increasing: cell `i` covers
    /// `cuts[i]..cuts[i + 1]`. The first is 0 and the last the image side unless a partial
    /// border cell narrower than half a cell was dropped.
    pub cuts: Vec<u32>,
}

impl Axis {
    /// Number of cells along this axis.
    pub fn cells(&self) -> u32 {
        self.cuts.len().saturating_sub(1) as u32
    }

    /// A regular axis: `count` equal cells over `0..len` (used for fallbacks and fixed grids).
    pub fn uniform(len: u32, count: u32) -> Self {
        let count = count.clamp(1, len.max(1));
        let cell = len as f32 / count as f32;
        let cuts = (0..=count)
            .map(|i| ((i as u64 * len as u64 + count as u64 / 2) / count as u64) as u32)
            .collect();
        Self {
            cell,
            offset: 0.0,
            cuts,
        }
    }
}

/// A detected (or given) pixel grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Vertical cell boundaries (columns).
    pub x: Axis,
    /// Horizontal cell boundaries (rows).
    pub y: Axis,
    /// 0 (a guess) to 1 (a clear grid); fixed axes count as 1.
    pub confidence: f32,
}

impl Grid {
    /// A regular grid of `columns` x `rows` equal cells over a `width` x `height` image (a
    /// guess: confidence 0), e.g. to shrink an image by a factor with
    /// [`downscale`]'s robust per-cell colours.
    pub fn uniform(width: u32, height: u32, columns: u32, rows: u32) -> Self {
        Self {
            x: Axis::uniform(width, columns),
            y: Axis::uniform(height, rows),
            confidence: 0.0,
        }
    }

    /// Number of columns of the true-resolution image.
    pub fn columns(&self) -> u32 {
        self.x.cells()
    }

    /// Number of rows of the true-resolution image.
    pub fn rows(&self) -> u32 {
        self.y.cells()
    }
}

/// Result of [`to_true_resolution`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrueResolution {
    /// The image at its true pixel resolution (one pixel per grid cell).
    pub image: RgbaImage,
    /// The grid used.
    pub grid: Grid,
    /// True when no grid was found and the image was resampled to `fallback_size` instead.
    pub fell_back: bool,
}

/// Finds the pixel grid of an upscaled pixel-art image.
///
/// Fails with [`PixelError::EmptyImage`] for an image without pixels and with
/// [`PixelError::NoGrid`] when there is no clear periodic grid on both axes (photos, noise,
/// flat images, images too small for two cells).
pub fn detect(img: &RgbaImage, opts: &GridOptions) -> Result<Grid> {
    opts.validate()?;
    ensure_not_empty(img.width(), img.height())?;
    detect::detect(img, opts)
}

/// Detects the grid and downscales to it; falls back to `opts.fallback_size` when there is
/// no grid and a fallback is given.
pub fn to_true_resolution(img: &RgbaImage, opts: &GridOptions) -> Result<TrueResolution> {
    opts.validate()?;
    ensure_not_empty(img.width(), img.height())?;
    match detect::detect(img, opts) {
        Ok(grid) => Ok(TrueResolution {
            image: downscale(img, &grid, opts),
            grid,
            fell_back: false,
        }),
        Err(PixelError::NoGrid { reason }) => {
            let Some((w, h)) = opts.fallback_size else {
                return Err(PixelError::NoGrid { reason });
            };
            if w > img.width() || h > img.height() {
                return Err(PixelError::InvalidOption {
                    name: "fallback_size",
                    message: format!(
                        "{w}x{h} is larger than the {}x{} image ({reason}); give a smaller size",
                        img.width(),
                        img.height()
                    ),
                });
            }
            let grid = Grid::uniform(img.width(), img.height(), w, h);
            Ok(TrueResolution {
                image: downscale(img, &grid, opts),
                grid,
                fell_back: true,
            })
        }
        Err(e) => Err(e),
    }
}
