//! The whole post-processing pipeline in one call: [`pixelize`] with [`PixelOptions`].

use image::RgbaImage;
use serde::{Deserialize, Serialize};

use crate::alpha::{BackgroundOptions, BackgroundReport, remove_background};
use crate::cleanup::{self, Anchor, Connectivity, OutlineOptions, OutlinePlacement};
use crate::error::{PixelError, Result, ensure_not_empty};
use crate::grid::{self, Grid, GridOptions};
use crate::palette::Palette;
use crate::quantize::{self, ColorCount, Dither, QuantizeOptions};

/// An exact output canvas: the sprite is trimmed to its content and placed on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Canvas {
    /// Canvas width in pixels.
    pub width: u32,
    /// Canvas height in pixels.
    pub height: u32,
    /// Where the content sits on the canvas.
    pub anchor: Anchor,
}

impl Default for Canvas {
    fn default() -> Self {
        Self {
            width: 32,
            height: 32,
            anchor: Anchor::Center,
        }
    }
}

/// Every step of the pipeline, each optional. Plain serde data: recipes carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PixelOptions {
    /// Detect the pixel grid and downscale to the true resolution (off: the input already is).
    pub detect_grid: bool,
    /// Grid detection and downscale settings (manual cell size, fallback size, colour merge).
    pub grid: GridOptions,
    /// Remove the background to transparency.
    pub background: Option<BackgroundOptions>,
    /// Remove isolated stray pixels.
    pub remove_strays: bool,
    /// Reduce to this many colours (k-means in OKLab); with a palette, keep at most this many
    /// of the palette's colours (the most used).
    pub colors: Option<ColorCount>,
    /// Map to this fixed palette.
    pub palette: Option<Palette>,
    /// Dithering used by colour reduction or palette mapping.
    pub dither: Dither,
    /// Dithering strength (0..=2, 1 is standard).
    pub dither_strength: f32,
    /// Keep the darkest and lightest colours when reducing (outlines survive).
    pub preserve_extremes: bool,
    /// Seed for k-means (same seed, same pixels).
    pub seed: u64,
    /// Draw a 1-px outline.
    pub outline: Option<OutlineOptions>,
    /// Trim and place on an exact canvas; content larger than it is resampled down to fit.
    pub canvas: Option<Canvas>,
}

impl Default for PixelOptions {
    fn default() -> Self {
        let q = QuantizeOptions::default();
        Self {
            detect_grid: true,
            grid: GridOptions::default(),
            background: None,
            remove_strays: false,
            colors: None,
            palette: None,
            dither: Dither::None,
            dither_strength: q.dither_strength,
            preserve_extremes: q.preserve_extremes,
            seed: 0,
            outline: None,
            canvas: None,
        }
    }
}

/// What [`pixelize`] produced and found on the way.
#[derive(Debug, Clone)]
pub struct PixelOutput {
    /// The finished sprite (binary alpha where transparency was asked for).
    pub image: RgbaImage,
    /// The grid found (or given); `None` when grid detection was off.
    pub grid: Option<Grid>,
    /// No grid was found and the image was resampled to `grid.fallback_size`.
    pub fell_back: bool,
    /// The distinct opaque colours of `image`, darkest first.
    pub palette: Vec<[u8; 3]>,
    /// Background removal report, when it ran.
    pub background: Option<BackgroundReport>,
    /// How many stray pixels were replaced.
    pub strays_removed: usize,
    /// The content was larger than the canvas and was resampled to fit.
    pub resampled_to_canvas: bool,
}

/// Runs the pipeline: grid -> background -> strays -> canvas -> colours -> outline.
///
/// Background removal and everything after it work at the true resolution, so decisions are
/// made per pixel-art pixel. The canvas is fitted before colour reduction so that a resample
/// never brings back off-palette colours, and before the outline so the outline stays inside it.
pub fn pixelize(img: &RgbaImage, opts: &PixelOptions) -> Result<PixelOutput> {
    ensure_not_empty(img.width(), img.height())?;
    let (mut image, grid, fell_back) = if opts.detect_grid {
        let t = grid::to_true_resolution(img, &opts.grid)?;
        (t.image, Some(t.grid), t.fell_back)
    } else {
        (img.clone(), None, false)
    };

    let background = match &opts.background {
        Some(bg) => {
            let (out, report) = remove_background(&image, bg)?;
            image = out;
            Some(report)
        }
        None => None,
    };

    let mut strays_removed = 0;
    if opts.remove_strays {
        let (out, n) = cleanup::remove_strays(&image, Connectivity::Eight);
        image = out;
        strays_removed = n;
    }

    let mut resampled_to_canvas = false;
    if let Some(canvas) = &opts.canvas {
        // An outer outline needs a free pixel on each side.
        let margin = match &opts.outline {
            Some(o) if o.placement == OutlinePlacement::Outer => 2,
            _ => 0,
        };
        let (fitted, resampled) = fit_to_canvas(&image, canvas, margin, &opts.grid)?;
        image = fitted;
        resampled_to_canvas = resampled;
    }

    image = reduce_colors(&image, opts)?;

    if let Some(o) = &opts.outline {
        image = cleanup::outline(
            &image,
            &OutlineOptions {
                grow_canvas: opts.canvas.is_none(),
                ..o.clone()
            },
        );
    }

    let palette = distinct_colors(&image);
    Ok(PixelOutput {
        image,
        grid,
        fell_back,
        palette,
        background,
        strays_removed,
        resampled_to_canvas,
    })
}

/// Trims to content and places it on the canvas, resampling it down first if it is larger
/// than the canvas less `margin`.
fn fit_to_canvas(
    img: &RgbaImage,
    canvas: &Canvas,
    margin: u32,
    grid_opts: &GridOptions,
) -> Result<(RgbaImage, bool)> {
    let Canvas {
        width,
        height,
        anchor,
    } = *canvas;
    if width <= margin || height <= margin {
        return Err(PixelError::InvalidOption {
            name: "canvas",
            message: format!(
                "{width}x{height} leaves no room for the sprite; use at least {}x{}",
                margin + 1,
                margin + 1
            ),
        });
    }
    let Some((content, _)) = cleanup::trim(img) else {
        // Nothing visible: an empty canvas of the asked size.
        return Ok((RgbaImage::new(width, height), false));
    };
    let (cw, ch) = content.dimensions();
    let (room_w, room_h) = (width - margin, height - margin);
    if cw <= room_w && ch <= room_h {
        return Ok((cleanup::fit_canvas(&content, width, height, anchor)?, false));
    }
    // Shrink by one factor on both axes (keeps the aspect), with robust per-cell colours.
    let factor = (cw as f32 / room_w as f32).max(ch as f32 / room_h as f32);
    let cols = ((cw as f32 / factor).round() as u32).clamp(1, room_w);
    let rows = ((ch as f32 / factor).round() as u32).clamp(1, room_h);
    let small = grid::downscale(&content, &Grid::uniform(cw, ch, cols, rows), grid_opts);
    Ok((cleanup::fit_canvas(&small, width, height, anchor)?, true))
}

/// Colour reduction or palette mapping, as the options ask.
fn reduce_colors(img: &RgbaImage, opts: &PixelOptions) -> Result<RgbaImage> {
    let quantize_opts = |colors| QuantizeOptions {
        colors,
        seed: opts.seed,
        dither: opts.dither,
        dither_strength: opts.dither_strength,
        preserve_extremes: opts.preserve_extremes,
        ..QuantizeOptions::default()
    };
    match (&opts.palette, opts.colors) {
        (Some(p), None) => {
            quantize::map_to_palette(img, &p.colors, opts.dither, opts.dither_strength)
        }
        (Some(p), Some(count)) => {
            let subset = most_used_palette_colors(img, &p.colors, count, opts)?;
            quantize::map_to_palette(img, &subset, opts.dither, opts.dither_strength)
        }
        (None, Some(count)) => Ok(quantize::reduce(img, &quantize_opts(count))?.0),
        (None, None) if opts.dither != Dither::None => Err(PixelError::InvalidOption {
            name: "dither",
            message: "dithering needs a palette or a colour count to dither between".into(),
        }),
        (None, None) => Ok(img.clone()),
    }
}

/// The palette colours an undithered mapping uses most, at most `count` of them (for `auto`:
/// the k-means choice of count on the image, mapped into the palette).
fn most_used_palette_colors(
    img: &RgbaImage,
    palette: &[[u8; 3]],
    count: ColorCount,
    opts: &PixelOptions,
) -> Result<Vec<[u8; 3]>> {
    let limit = match count {
        ColorCount::Fixed(n) => n as usize,
        ColorCount::Auto => {
            let q = QuantizeOptions {
                colors: ColorCount::Auto,
                seed: opts.seed,
                ..QuantizeOptions::default()
            };
            quantize::kmeans_palette(img, &q)?.len().max(2)
        }
    };
    if limit == 0 {
        return Err(PixelError::InvalidOption {
            name: "colors",
            message: "must be at least 1".into(),
        });
    }
    let mapped = quantize::map_to_palette(img, palette, Dither::None, 0.0)?;
    let mut counts = vec![0usize; palette.len()];
    for px in mapped.pixels().filter(|p| p[3] > 0) {
        if let Some(i) = palette.iter().position(|c| *c == [px[0], px[1], px[2]]) {
            counts[i] += 1;
        }
    }
    let mut order: Vec<usize> = (0..palette.len()).filter(|&i| counts[i] > 0).collect();
    // Most used first; ties by palette order, so the choice is deterministic.
    order.sort_by_key(|&i| (std::cmp::Reverse(counts[i]), i));
    order.truncate(limit);
    order.sort_unstable();
    let subset: Vec<[u8; 3]> = order.into_iter().map(|i| palette[i]).collect();
    Ok(if subset.is_empty() {
        palette.to_vec()
    } else {
        subset
    })
}

/// Distinct opaque colours of an image, darkest (OKLab L) first.
pub fn distinct_colors(img: &RgbaImage) -> Vec<[u8; 3]> {
    let mut colors: Vec<[u8; 3]> = img
        .pixels()
        .filter(|p| p[3] > 0)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    colors.sort_unstable();
    colors.dedup();
    let mut keyed: Vec<(f32, [u8; 3])> = colors
        .into_iter()
        .map(|c| (crate::color::Oklab::from_srgb(c).l, c))
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, c)| c).collect()
}
