//! Frames that belong together (an animation, the directions of a character, a family of
//! items) through the pixel pipeline as one set: one cell size, one palette, one outline and
//! a shared anchor on a common canvas, so the frames do not drift in colour, size or
//! position when played. [`measure`] reports how consistent a set is.
//!
//! ```
//! use image::{Rgba, RgbaImage};
//! use pixelgen_pixel::quantize::ColorCount;
//! use pixelgen_pixel::set::{SetAnchor, SetOptions, pixelize_set};
//! use pixelgen_pixel::PixelOptions;
//!
//! // Two frames of a 2x3 "character" standing at different places, slightly different reds.
//! let frame = |x0: u32, red: u8| {
//!     RgbaImage::from_fn(8, 8, |x, y| {
//!         let inside = (x0..x0 + 2).contains(&x) && (2..5).contains(&y);
//!         if inside { Rgba([red, 20, 20, 255]) } else { Rgba([0, 0, 0, 0]) }
//!     })
//! };
//! let opts = SetOptions {
//!     pixel: PixelOptions { detect_grid: false, colors: Some(ColorCount::Fixed(1)), ..Default::default() },
//!     anchor: SetAnchor::Baseline,
//!     ..Default::default()
//! };
//! let set = pixelize_set(&[frame(1, 200), frame(5, 210)], &opts)?;
//! assert_eq!(set.palette.len(), 1, "one palette for the set");
//! assert_eq!(set.frames[0], set.frames[1], "same place, same colour");
//! assert_eq!(set.consistency.max_anchor_drift, 0);
//! # Ok::<(), pixelgen_pixel::PixelError>(())
//! ```

use std::collections::HashMap;

use image::{Rgba, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::alpha::remove_background;
use crate::cleanup::{self, Connectivity, OutlineOptions};
use crate::error::{PixelError, Result, ensure_not_empty};
use crate::grid::{self, Grid, GridOptions};
use crate::pipeline::PixelOptions;
use crate::quantize::{self, ColorCount, QuantizeOptions};

/// Most frames one set may hold.
pub const MAX_SET_FRAMES: usize = 1024;

/// The point of each frame that stays put when the set is played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetAnchor {
    /// Feet on one line: the bottom of the visible pixels, and horizontally their centre of
    /// mass (stable while legs and arms swing). For characters and standing objects.
    #[default]
    Baseline,
    /// The centre of mass of the visible pixels, on both axes. For flying or floating things.
    CenterOfMass,
    /// The centre of the visible pixels' bounding box.
    Center,
}

/// How [`pixelize_set`] treats a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SetOptions {
    /// The pixel pipeline's options, applied to every frame; `colors`/`palette` choose the
    /// set's one palette (a count is a joint k-means over all frames; a palette is locked
    /// for the set; neither means an automatic count over all frames). `canvas`, when set,
    /// is the size every frame is placed on (its anchor places the set's union in it).
    pub pixel: PixelOptions,
    /// The point that stays put from frame to frame.
    pub anchor: SetAnchor,
    /// Detect one cell size for the whole set (the median of the frames' own) and cut every
    /// frame with it, so no frame comes out a pixel larger or smaller than the others.
    pub shared_cell: bool,
}

impl Default for SetOptions {
    fn default() -> Self {
        Self {
            pixel: PixelOptions::default(),
            anchor: SetAnchor::Baseline,
            shared_cell: true,
        }
    }
}

/// A set after [`pixelize_set`].
#[derive(Debug, Clone, PartialEq)]
pub struct PixelSet {
    /// The frames, in order, all the same size, anchors aligned.
    pub frames: Vec<RgbaImage>,
    /// The set's palette (darkest first): every visible pixel of every frame is one of these.
    pub palette: Vec<[u8; 3]>,
    /// The cell size (width, height) in source pixels every frame was cut with, when a grid
    /// was detected.
    pub cell: Option<(f32, f32)>,
    /// How consistent the frames are (against the first).
    pub consistency: Consistency,
}

/// How one frame compares with the set's reference frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameConsistency {
    /// Distinct visible colours in the frame.
    pub colors: usize,
    /// Intersection over union of the frame's and the reference's visible pixels (1: the same
    /// silhouette, 0: no overlap).
    pub silhouette_iou: f32,
    /// How far the frame's anchor point is from the reference's, in pixels (the larger of the
    /// horizontal and vertical distances).
    pub anchor_drift: u32,
    /// Total-variation distance between the frame's and the reference's colour histograms
    /// (visible pixels, normalised): 0 the same colour mix, 1 no colour in common.
    pub histogram_distance: f32,
}

/// The consistency of a set of frames: returned with every set and used by the tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consistency {
    /// Distinct visible colours over all frames.
    pub set_colors: usize,
    /// Per frame, in order (the reference compares with itself).
    pub frames: Vec<FrameConsistency>,
    /// The largest anchor drift of any frame.
    pub max_anchor_drift: u32,
    /// The smallest silhouette IoU of any frame.
    pub min_silhouette_iou: f32,
    /// The largest histogram distance of any frame.
    pub max_histogram_distance: f32,
}

/// Runs `frames` through the pixel pipeline as one set (see the module docs): one cell size,
/// one palette (joint k-means over every frame, or `opts.pixel.palette` locked), the same
/// outline, and every frame trimmed and placed on a common canvas with the anchors aligned.
/// A set larger than `canvas` is shrunk by one factor for all frames (as [`crate::pixelize`]
/// shrinks one sprite), so the frames keep their sizes relative to each other.
///
/// Errors: no frames or more than [`MAX_SET_FRAMES`], an empty frame, a frame with nothing
/// visible after background removal, a `canvas` without room for a pixel and its outline,
/// and the pipeline's own option errors. Nothing is partly returned.
pub fn pixelize_set(frames: &[RgbaImage], opts: &SetOptions) -> Result<PixelSet> {
    if frames.is_empty() || frames.len() > MAX_SET_FRAMES {
        return Err(PixelError::InvalidOption {
            name: "frames",
            message: format!("{} frames: a set has 1 to {MAX_SET_FRAMES}", frames.len()),
        });
    }
    for f in frames {
        ensure_not_empty(f.width(), f.height())?;
    }
    let px = &opts.pixel;
    let (mut images, cell) = true_resolution(frames, px, opts.shared_cell)?;

    for (i, image) in images.iter_mut().enumerate() {
        if let Some(bg) = &px.background {
            *image = remove_background(image, bg)?.0;
        }
        if px.remove_strays {
            *image = cleanup::remove_strays(image, Connectivity::Eight).0;
        }
        if cleanup::content_bounds(image).is_none() {
            return Err(PixelError::InvalidOption {
                name: "frames",
                message: format!("frame {i} has no visible pixels left after background removal"),
            });
        }
    }

    // An outline grows each frame by a pixel on every side.
    let outline_room = if px.outline.is_some() { 2 } else { 0 };
    let mut images = shrink_to_canvas(images, opts, outline_room)?;
    let palette = set_palette(&images, px)?;
    for image in &mut images {
        *image = quantize::map_to_palette(image, &palette, px.dither, px.dither_strength)?;
        if let Some(o) = &px.outline {
            *image = cleanup::outline(
                image,
                &OutlineOptions {
                    grow_canvas: true,
                    ..o.clone()
                },
            );
        }
    }

    let frames = place(&images, opts)?;
    let consistency = measure(&frames, 0, opts.anchor);
    let mut palette = distinct_colors(&frames);
    palette.sort_by_key(|c| luma(*c));
    Ok(PixelSet {
        frames,
        palette,
        cell,
        consistency,
    })
}

/// The frames at their true resolution and the cell size they were cut with.
type TrueFrames = (Vec<RgbaImage>, Option<(f32, f32)>);

/// Every frame at its true resolution, cut with one cell size when `shared` (and the grid is
/// detected, not given).
fn true_resolution(frames: &[RgbaImage], px: &PixelOptions, shared: bool) -> Result<TrueFrames> {
    if !px.detect_grid {
        return Ok((frames.to_vec(), None));
    }
    let cut = |grid_opts: &GridOptions| -> Result<Vec<grid::TrueResolution>> {
        frames
            .iter()
            .map(|f| grid::to_true_resolution(f, grid_opts))
            .collect()
    };
    let mut cuts = cut(&px.grid)?;
    let fixed = px.grid.cell_width.is_some() && px.grid.cell_height.is_some();
    if shared && !fixed {
        let found: Vec<&grid::TrueResolution> = cuts.iter().filter(|t| !t.fell_back).collect();
        if !found.is_empty() {
            let median = |mut v: Vec<f32>| {
                v.sort_by(f32::total_cmp);
                v[v.len() / 2]
            };
            let xs: Vec<f32> = found.iter().map(|t| t.grid.x.cell).collect();
            let ys: Vec<f32> = found.iter().map(|t| t.grid.y.cell).collect();
            let (mut w, mut h) = (median(xs.clone()), median(ys.clone()));
            // One axis agreeing across frames and the other not (few edges along it, e.g. a
            // character of tall flat blocks): pixel-art cells are square, so the consistent
            // axis sets both.
            match (agrees(&xs, w), agrees(&ys, h)) {
                (true, false) => h = w,
                (false, true) => w = h,
                _ => {}
            }
            let same = found
                .iter()
                .all(|t| (t.grid.x.cell - w).abs() < 0.01 && (t.grid.y.cell - h).abs() < 0.01);
            if !same || found.len() != cuts.len() {
                let shared = GridOptions {
                    cell_width: Some(w),
                    cell_height: Some(h),
                    ..px.grid.clone()
                };
                cuts = cut(&shared)?;
            }
        }
    }
    let cell = cuts
        .iter()
        .find(|t| !t.fell_back)
        .map(|t| (t.grid.x.cell, t.grid.y.cell));
    Ok((cuts.into_iter().map(|t| t.image).collect(), cell))
}

/// Whether every cell size in `cells` is within 3% of `median`.
fn agrees(cells: &[f32], median: f32) -> bool {
    cells.iter().all(|c| (c - median).abs() <= 0.03 * median)
}

/// The set's palette: the locked one (or its most used `colors`), else a joint k-means over
/// every frame's visible pixels.
fn set_palette(images: &[RgbaImage], px: &PixelOptions) -> Result<Vec<[u8; 3]>> {
    let mosaic = stack(images);
    match (&px.palette, px.colors) {
        (Some(p), None) => Ok(p.colors.clone()),
        (Some(p), Some(count)) => {
            // The locked palette's entries the set uses most.
            let mapped = quantize::map_to_palette(&mosaic, &p.colors, Default::default(), 1.0)?;
            let mut used: HashMap<[u8; 3], usize> = HashMap::new();
            for px in mapped.pixels().filter(|p| p.0[3] > 0) {
                *used.entry([px.0[0], px.0[1], px.0[2]]).or_default() += 1;
            }
            let mut by_use: Vec<([u8; 3], usize)> = used.into_iter().collect();
            by_use.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let limit = match count {
                ColorCount::Fixed(n) => n as usize,
                ColorCount::Auto => by_use.len(),
            };
            Ok(by_use
                .into_iter()
                .take(limit.max(1))
                .map(|(c, _)| c)
                .collect())
        }
        (None, count) => {
            let q = QuantizeOptions {
                colors: count.unwrap_or(ColorCount::Auto),
                seed: px.seed,
                preserve_extremes: px.preserve_extremes,
                ..QuantizeOptions::default()
            };
            quantize::kmeans_palette(&mosaic, &q)
        }
    }
}

/// All frames one above the other (transparent padding), for a joint palette.
fn stack(images: &[RgbaImage]) -> RgbaImage {
    let w = images.iter().map(|i| i.width()).max().unwrap_or(1);
    let h: u32 = images.iter().map(|i| i.height()).sum();
    let mut out = RgbaImage::new(w, h.max(1));
    let mut y0 = 0;
    for img in images {
        image::imageops::replace(&mut out, img, 0, i64::from(y0));
        y0 += img.height();
    }
    out
}

/// Each frame trimmed to its visible pixels, with its anchor point in its own coordinates.
fn trimmed_with_anchors(images: &[RgbaImage], anchor: SetAnchor) -> Vec<(RgbaImage, (i64, i64))> {
    images
        .iter()
        .map(|img| {
            let content = cleanup::trim(img).map_or_else(|| img.clone(), |(c, _)| c);
            let a = anchor_point(&content, anchor).unwrap_or((0, 0));
            (content, a)
        })
        .collect()
}

/// How far the union of the trimmed frames reaches around the shared anchor point: left,
/// top, right, bottom.
fn union_around_anchor(trimmed: &[(RgbaImage, (i64, i64))]) -> (i64, i64, i64, i64) {
    let left = trimmed.iter().map(|(_, a)| a.0).max().unwrap_or(0);
    let top = trimmed.iter().map(|(_, a)| a.1).max().unwrap_or(0);
    let right = trimmed
        .iter()
        .map(|(c, a)| i64::from(c.width()) - a.0)
        .max()
        .unwrap_or(0);
    let bottom = trimmed
        .iter()
        .map(|(c, a)| i64::from(c.height()) - a.1)
        .max()
        .unwrap_or(0);
    (left, top, right, bottom)
}

/// The size of the aligned set's union.
fn union_size(trimmed: &[(RgbaImage, (i64, i64))]) -> (u32, u32) {
    let (left, top, right, bottom) = union_around_anchor(trimmed);
    ((left + right).max(1) as u32, (top + bottom).max(1) as u32)
}

/// When the aligned set is larger than the canvas (less `room` for an outline), every frame
/// shrunk by one factor so it fits: the frames keep their sizes relative to each other, as
/// [`crate::pixelize`] shrinks a single sprite. Frames already fitting are returned as they
/// are.
fn shrink_to_canvas(
    images: Vec<RgbaImage>,
    opts: &SetOptions,
    room: u32,
) -> Result<Vec<RgbaImage>> {
    let Some(canvas) = &opts.pixel.canvas else {
        return Ok(images);
    };
    let (room_w, room_h) = (
        canvas.width.saturating_sub(room),
        canvas.height.saturating_sub(room),
    );
    if room_w == 0 || room_h == 0 {
        return Err(PixelError::InvalidOption {
            name: "canvas",
            message: format!(
                "{}x{} leaves no room for the sprite and its outline; use at least {}x{}",
                canvas.width,
                canvas.height,
                room + 1,
                room + 1
            ),
        });
    }
    let trimmed = trimmed_with_anchors(&images, opts.anchor);
    let (uw, uh) = union_size(&trimmed);
    if uw <= room_w && uh <= room_h {
        return Ok(images);
    }
    // Anchors move by rounding when frames shrink, so the shrunk union may be a pixel over:
    // aim a pixel lower then (a few tries, each from the original frames).
    let mut shrunk = Vec::new();
    for extra in 0..4 {
        let (aim_w, aim_h) = (
            room_w.saturating_sub(extra).max(1),
            room_h.saturating_sub(extra).max(1),
        );
        let factor = (uw as f32 / aim_w as f32).max(uh as f32 / aim_h as f32);
        shrunk = trimmed
            .iter()
            .map(|(content, _)| {
                let (cw, ch) = content.dimensions();
                // Floor, so no frame grows past the aim by rounding.
                let cols = ((cw as f32 / factor).floor() as u32).clamp(1, aim_w);
                let rows = ((ch as f32 / factor).floor() as u32).clamp(1, aim_h);
                grid::downscale(
                    content,
                    &Grid::uniform(cw, ch, cols, rows),
                    &opts.pixel.grid,
                )
            })
            .collect();
        let (w, h) = union_size(&trimmed_with_anchors(&shrunk, opts.anchor));
        if w <= room_w && h <= room_h {
            break;
        }
    }
    Ok(shrunk)
}

/// Each frame trimmed and placed on one canvas so that every frame's anchor point lands on
/// the same canvas pixel.
fn place(images: &[RgbaImage], opts: &SetOptions) -> Result<Vec<RgbaImage>> {
    let trimmed = trimmed_with_anchors(images, opts.anchor);
    let (left, top, _, _) = union_around_anchor(&trimmed);
    let union = union_size(&trimmed);
    let (width, height, origin) = match &opts.pixel.canvas {
        Some(canvas) => {
            if union.0 > canvas.width || union.1 > canvas.height {
                return Err(PixelError::InvalidOption {
                    name: "canvas",
                    message: format!(
                        "{}x{} is smaller than the aligned set needs ({}x{}): use a larger \
                         canvas or a smaller sprite",
                        canvas.width, canvas.height, union.0, union.1
                    ),
                });
            }
            let (x, y) = canvas.anchor.place((canvas.width, canvas.height), union);
            (canvas.width, canvas.height, (i64::from(x), i64::from(y)))
        }
        None => (union.0, union.1, (0, 0)),
    };
    let pin = (origin.0 + left, origin.1 + top);
    Ok(trimmed
        .iter()
        .map(|(content, a)| {
            let mut out = RgbaImage::new(width, height);
            image::imageops::replace(&mut out, content, pin.0 - a.0, pin.1 - a.1);
            out
        })
        .collect())
}

/// The anchor point of `img`'s visible pixels, in its coordinates (`None`: nothing visible).
fn anchor_point(img: &RgbaImage, anchor: SetAnchor) -> Option<(i64, i64)> {
    let b = cleanup::content_bounds(img)?;
    let (mut sx, mut sy, mut n) = (0u64, 0u64, 0u64);
    for (x, y, p) in img.enumerate_pixels() {
        if p.0[3] > 0 {
            sx += u64::from(x);
            sy += u64::from(y);
            n += 1;
        }
    }
    // Centre of mass of pixel centres, rounded to the pixel it falls in.
    let mass = |s: u64| ((s as f64 + 0.5 * n as f64) / n as f64).floor() as i64;
    Some(match anchor {
        SetAnchor::Baseline => (mass(sx), i64::from(b.y + b.height)),
        SetAnchor::CenterOfMass => (mass(sx), mass(sy)),
        SetAnchor::Center => (i64::from(b.x + b.width / 2), i64::from(b.y + b.height / 2)),
    })
}

/// How consistent `frames` are against `frames[reference]` (see [`Consistency`]); the
/// frames are compared where they are (the same canvas for every frame is assumed).
pub fn measure(frames: &[RgbaImage], reference: usize, anchor: SetAnchor) -> Consistency {
    let Some(refr) = frames.get(reference) else {
        return Consistency {
            set_colors: 0,
            frames: Vec::new(),
            max_anchor_drift: 0,
            min_silhouette_iou: 1.0,
            max_histogram_distance: 0.0,
        };
    };
    let ref_anchor = anchor_point(refr, anchor);
    let ref_hist = histogram(refr);
    let per: Vec<FrameConsistency> = frames
        .iter()
        .map(|f| {
            let drift = match (anchor_point(f, anchor), ref_anchor) {
                (Some(a), Some(r)) => (a.0 - r.0).abs().max((a.1 - r.1).abs()) as u32,
                _ => 0,
            };
            FrameConsistency {
                colors: histogram(f).len(),
                silhouette_iou: iou(f, refr),
                anchor_drift: drift,
                histogram_distance: tv_distance(&histogram(f), &ref_hist),
            }
        })
        .collect();
    Consistency {
        set_colors: distinct_colors(frames).len(),
        max_anchor_drift: per.iter().map(|f| f.anchor_drift).max().unwrap_or(0),
        min_silhouette_iou: per.iter().map(|f| f.silhouette_iou).fold(1.0, f32::min),
        max_histogram_distance: per.iter().map(|f| f.histogram_distance).fold(0.0, f32::max),
        frames: per,
    }
}

fn visible(p: &Rgba<u8>) -> bool {
    p.0[3] > 0
}

/// IoU of the visible pixels of two images, compared from their top-left corners.
fn iou(a: &RgbaImage, b: &RgbaImage) -> f32 {
    let (w, h) = (a.width().max(b.width()), a.height().max(b.height()));
    let (mut inter, mut union) = (0u64, 0u64);
    for y in 0..h {
        for x in 0..w {
            let va = a.get_pixel_checked(x, y).is_some_and(visible);
            let vb = b.get_pixel_checked(x, y).is_some_and(visible);
            inter += u64::from(va && vb);
            union += u64::from(va || vb);
        }
    }
    if union == 0 {
        1.0
    } else {
        inter as f32 / union as f32
    }
}

/// Visible colours and their share of the visible pixels.
fn histogram(img: &RgbaImage) -> HashMap<[u8; 3], f32> {
    let mut counts: HashMap<[u8; 3], f32> = HashMap::new();
    let mut n = 0.0;
    for p in img.pixels().filter(|p| visible(p)) {
        *counts.entry([p.0[0], p.0[1], p.0[2]]).or_default() += 1.0;
        n += 1.0;
    }
    for v in counts.values_mut() {
        *v /= n;
    }
    counts
}

fn tv_distance(a: &HashMap<[u8; 3], f32>, b: &HashMap<[u8; 3], f32>) -> f32 {
    let mut sum = 0.0;
    for (c, pa) in a {
        sum += (pa - b.get(c).copied().unwrap_or(0.0)).abs();
    }
    for (c, pb) in b {
        if !a.contains_key(c) {
            sum += pb;
        }
    }
    sum / 2.0
}

fn distinct_colors(frames: &[RgbaImage]) -> Vec<[u8; 3]> {
    let mut seen: Vec<[u8; 3]> = frames
        .iter()
        .flat_map(|f| {
            f.pixels()
                .filter(|p| visible(p))
                .map(|p| [p.0[0], p.0[1], p.0[2]])
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen
}

fn luma(c: [u8; 3]) -> u32 {
    299 * u32::from(c[0]) + 587 * u32::from(c[1]) + 114 * u32::from(c[2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cleanup::Anchor;

    fn blob(w: u32, h: u32, rect: (u32, u32, u32, u32), c: [u8; 3]) -> RgbaImage {
        RgbaImage::from_fn(w, h, |x, y| {
            let (x0, y0, rw, rh) = rect;
            if (x0..x0 + rw).contains(&x) && (y0..y0 + rh).contains(&y) {
                Rgba([c[0], c[1], c[2], 255])
            } else {
                Rgba([0, 0, 0, 0])
            }
        })
    }

    fn plain() -> SetOptions {
        SetOptions {
            pixel: PixelOptions {
                detect_grid: false,
                ..PixelOptions::default()
            },
            ..SetOptions::default()
        }
    }

    #[test]
    fn frames_are_aligned_on_their_anchor_and_measured() {
        // A 3x4 body at two places and a 5x2 one (wider, same feet line after alignment).
        let frames = [
            blob(12, 12, (1, 2, 3, 4), [200, 0, 0]),
            blob(12, 12, (7, 6, 3, 4), [200, 0, 0]),
            blob(12, 12, (3, 0, 5, 2), [200, 0, 0]),
        ];
        let set = pixelize_set(&frames, &plain()).unwrap();
        assert_eq!(set.consistency.max_anchor_drift, 0);
        assert_eq!(set.frames[0], set.frames[1], "same body, same place");
        let before = measure(&frames, 0, SetAnchor::Baseline);
        assert!(before.max_anchor_drift >= 6, "{before:?}");
        // Canvas: the union around the feet anchor (5 wide, 4 tall).
        assert_eq!(set.frames[0].dimensions(), (5, 4));
        assert_eq!(set.consistency.frames[1].silhouette_iou, 1.0);
        assert!(set.consistency.frames[2].silhouette_iou < 0.5);
    }

    #[test]
    fn one_palette_for_the_set_and_bad_sets_are_refused() {
        let frames = [
            blob(6, 6, (1, 1, 3, 3), [200, 10, 10]),
            blob(6, 6, (1, 1, 3, 3), [190, 20, 14]),
        ];
        let mut opts = plain();
        opts.pixel.colors = Some(ColorCount::Fixed(1));
        let set = pixelize_set(&frames, &opts).unwrap();
        assert_eq!(set.palette.len(), 1);
        assert_eq!(set.consistency.set_colors, 1);
        assert_eq!(set.consistency.max_histogram_distance, 0.0);
        // Measured without the set, the two reds differ entirely.
        assert_eq!(
            measure(&frames, 0, SetAnchor::Baseline).max_histogram_distance,
            1.0
        );
        assert!(pixelize_set(&[], &opts).is_err());
        let empty = RgbaImage::new(4, 4);
        let err = pixelize_set(&[frames[0].clone(), empty], &opts).unwrap_err();
        assert!(err.to_string().contains("frame 1"), "{err}");
        opts.pixel.canvas = Some(crate::pipeline::Canvas {
            width: 2,
            height: 2,
            anchor: Anchor::BottomCenter,
        });
        // A canvas smaller than the set shrinks every frame to fit (not an error).
        let small = pixelize_set(&frames, &opts).unwrap();
        assert!(small.frames.iter().all(|f| f.dimensions() == (2, 2)));
        assert!(small.frames.iter().all(|f| f.pixels().any(|p| p.0[3] > 0)));
    }
}
