//! Tileability checks: how visible the wrap-around seams of a texture are.
//!
//! # Scale
//!
//! A seam score compares the mean difference across a wrap edge (last column against first
//! column, or last row against first row) with the mean difference between neighbouring
//! pixels inside the image, in the same direction:
//!
//! - `0`: the wrap edges match exactly (seamless),
//! - `~1`: the step across the seam looks like an ordinary step inside the texture (a busy
//!   texture that tiles scores about 1, since its wrap pairs are like its interior pairs),
//! - `> 1`: the seam is a visible discontinuity (a smooth image with a hard wrap edge scores
//!   far above 1, e.g. 10-100).
//!
//! [`DEFAULT_SEAM_THRESHOLD`] (1.5) is the recommended cut for [`is_tileable`].
//! Differences are OKLab distances of the colours plus the alpha difference (0..1).

use image::RgbaImage;

use crate::alpha::LabCache;
use crate::error::{PixelError, Result, ensure_not_empty};

/// Recommended threshold for [`is_tileable`]: seams up to 1.5x an ordinary interior step.
pub const DEFAULT_SEAM_THRESHOLD: f32 = 1.5;

/// Interior differences below this mean (OKLab) are treated as this value, so a flat or
/// nearly flat image does not divide by ~0 (a seam in a flat image scores high, as it should).
const MIN_INTERIOR_STEP: f32 = 0.002;

/// At most this many rows (or columns) are sampled for the interior statistic on big images.
const MAX_SAMPLED_LINES: usize = 256;

/// Seam scores of a texture (see the module docs for the scale).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeamScore {
    /// Left edge against right edge (the seam seen when tiling horizontally).
    pub horizontal: f32,
    /// Top edge against bottom edge (the seam seen when tiling vertically).
    pub vertical: f32,
    /// The worse of the two (a texture tiles only if both seams are invisible).
    pub combined: f32,
}

/// Which way two tiles meet, for [`edge_score`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// The first tile sits left of the second: its last column meets the other's first.
    Horizontal,
    /// The first tile sits above the second: its last row meets the other's first.
    Vertical,
}

/// The one pixel-difference rule and interior-step statistic behind [`seam_score`] and
/// [`edge_score`] (and the tileset seam report): OKLab distance plus alpha difference.
pub(crate) struct Steps {
    cache: LabCache,
}

impl Steps {
    /// A fresh measurer (its colour cache starts empty).
    pub(crate) fn new() -> Self {
        Self {
            cache: LabCache::new(),
        }
    }

    /// Difference of two RGBA pixels: OKLab distance of the colours plus |alpha| / 255.
    fn diff(&mut self, a: &[u8], b: &[u8]) -> f32 {
        let la = self.cache.get([a[0], a[1], a[2]]);
        let lb = self.cache.get([b[0], b[1], b[2]]);
        la.dist(lb) + (a[3] as f32 - b[3] as f32).abs() / 255.0
    }

    /// Mean difference between neighbouring pixels of `img` along `axis` (pairs
    /// `(x, y)-(x + 1, y)` for [`Axis::Horizontal`]), sampling at most
    /// [`MAX_SAMPLED_LINES`] lines on big images. `None` when the image has no such pair.
    pub(crate) fn interior(&mut self, img: &RgbaImage, axis: Axis) -> Option<f64> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let raw = img.as_raw();
        let px = |i: usize| &raw[i * 4..i * 4 + 4];
        let (mut sum, mut n) = (0f64, 0usize);
        match axis {
            Axis::Horizontal => {
                if w < 2 || h == 0 {
                    return None;
                }
                let stride = h.div_ceil(MAX_SAMPLED_LINES).max(1);
                for y in (0..h).step_by(stride) {
                    for x in 0..w - 1 {
                        sum += self.diff(px(y * w + x), px(y * w + x + 1)) as f64;
                        n += 1;
                    }
                }
            }
            Axis::Vertical => {
                if h < 2 || w == 0 {
                    return None;
                }
                let stride = w.div_ceil(MAX_SAMPLED_LINES).max(1);
                // Row pairs, sampling columns: walk rows outermost for memory order.
                for y in 0..h - 1 {
                    for x in (0..w).step_by(stride) {
                        sum += self.diff(px(y * w + x), px((y + 1) * w + x)) as f64;
                        n += 1;
                    }
                }
            }
        }
        Some(sum / n.max(1) as f64)
    }

    /// Mean difference between neighbouring pixels along `axis` within `depth` pixels of
    /// one edge of `img`: its last columns (rows) when `trailing`, else its first; the
    /// steps a viewer compares an edge's step with. `None` when there is no such pair.
    pub(crate) fn near_edge(
        &mut self,
        img: &RgbaImage,
        axis: Axis,
        trailing: bool,
        depth: u32,
    ) -> Option<f64> {
        let (w, h) = img.dimensions();
        let along = match axis {
            Axis::Horizontal => w,
            Axis::Vertical => h,
        };
        if along < 2 {
            return None;
        }
        let pairs = depth.clamp(1, along - 1);
        let first = if trailing { along - 1 - pairs } else { 0 };
        let (mut sum, mut n) = (0f64, 0usize);
        let across = match axis {
            Axis::Horizontal => h,
            Axis::Vertical => w,
        };
        for i in 0..across {
            for k in first..first + pairs {
                let (p, q) = match axis {
                    Axis::Horizontal => (img.get_pixel(k, i), img.get_pixel(k + 1, i)),
                    Axis::Vertical => (img.get_pixel(i, k), img.get_pixel(i, k + 1)),
                };
                sum += self.diff(&p.0, &q.0) as f64;
                n += 1;
            }
        }
        Some(sum / n.max(1) as f64)
    }

    /// Mean difference across the edge where `a` meets `b` along `axis`: `a`'s last column
    /// against `b`'s first (horizontal) or `a`'s last row against `b`'s first (vertical).
    /// The shared side must have the same length in both (callers check).
    pub(crate) fn across(&mut self, a: &RgbaImage, b: &RgbaImage, axis: Axis) -> f64 {
        let (aw, ah) = a.dimensions();
        let n = match axis {
            Axis::Horizontal => ah,
            Axis::Vertical => aw,
        };
        let mut sum = 0f64;
        for i in 0..n {
            let (pa, pb) = match axis {
                Axis::Horizontal => (a.get_pixel(aw - 1, i), b.get_pixel(0, i)),
                Axis::Vertical => (a.get_pixel(i, ah - 1), b.get_pixel(i, 0)),
            };
            sum += self.diff(&pa.0, &pb.0) as f64;
        }
        sum / n.max(1) as f64
    }
}

/// The score of a seam: its mean difference over the mean interior step (see the module docs).
pub(crate) fn ratio(seam: f64, interior: f64) -> f32 {
    (seam / interior.max(MIN_INTERIOR_STEP as f64)) as f32
}

/// The interior step two tiles share at an edge: the mean of those that have one.
pub(crate) fn shared_interior(a: Option<f64>, b: Option<f64>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => 0.5 * (a + b),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => 0.0,
    }
}

/// Scores the wrap-around seams of `img`. An image one pixel wide (or high) has no
/// horizontal (or vertical) seam: that score is 0. Errors on an empty image.
pub fn seam_score(img: &RgbaImage) -> Result<SeamScore> {
    let (w, h) = img.dimensions();
    ensure_not_empty(w, h)?;
    let mut steps = Steps::new();
    let mut wrap = |axis: Axis| match steps.interior(img, axis) {
        None => 0.0,
        Some(interior) => ratio(steps.across(img, img, axis), interior),
    };
    let horizontal = wrap(Axis::Horizontal);
    let vertical = wrap(Axis::Vertical);
    Ok(SeamScore {
        horizontal,
        vertical,
        combined: horizontal.max(vertical),
    })
}

/// How many pixel steps on each side of a shared edge [`edge_score`] compares the step
/// across it with.
pub const EDGE_DEPTH: u32 = 3;

/// Scores the seam where tile `a` meets tile `b` (`a` left of `b` for [`Axis::Horizontal`],
/// above it for [`Axis::Vertical`]), on the [`seam_score`] scale: the mean difference across
/// the shared edge over the mean step in that direction within [`EDGE_DEPTH`] pixels of the
/// edge on both sides (0 = the edge continues exactly, ~1 = the step across looks like the
/// steps next to it). The reference is local, not the whole tile's, because a transition
/// tile holds two terrains: a step across grass is compared with grass steps, not with a
/// smooth water area elsewhere in the tile. Errors on an empty image or when the shared
/// sides differ in length.
pub fn edge_score(a: &RgbaImage, b: &RgbaImage, axis: Axis) -> Result<f32> {
    ensure_not_empty(a.width(), a.height())?;
    ensure_not_empty(b.width(), b.height())?;
    let (la, lb, side) = match axis {
        Axis::Horizontal => (a.height(), b.height(), "heights"),
        Axis::Vertical => (a.width(), b.width(), "widths"),
    };
    if la != lb {
        return Err(PixelError::InvalidOption {
            name: "tiles",
            message: format!(
                "tiles meeting {axis:?}ly need equal {side}, got {la} and {lb}: give tiles of one size"
            ),
        });
    }
    let mut steps = Steps::new();
    let near = shared_interior(
        steps.near_edge(a, axis, true, EDGE_DEPTH),
        steps.near_edge(b, axis, false, EDGE_DEPTH),
    );
    Ok(ratio(steps.across(a, b, axis), near))
}

/// Errors unless `threshold` is a usable seam score (finite, >= 0).
pub(crate) fn check_threshold(threshold: f32) -> Result<()> {
    if threshold.is_finite() && threshold >= 0.0 {
        Ok(())
    } else {
        Err(PixelError::InvalidOption {
            name: "threshold",
            message: format!(
                "{threshold} is not a seam score: use a finite value >= 0 (1.5 recommended)"
            ),
        })
    }
}

/// `true` when both seams score at most `threshold` (use [`DEFAULT_SEAM_THRESHOLD`]).
/// Errors on an empty image or a negative / non-finite threshold.
pub fn is_tileable(img: &RgbaImage, threshold: f32) -> Result<bool> {
    check_threshold(threshold)?;
    Ok(seam_score(img)?.combined <= threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    #[test]
    fn flat_image_is_seamless_and_one_pixel_wide_has_no_horizontal_seam() {
        let flat = RgbaImage::from_pixel(8, 8, Rgba([50, 90, 10, 255]));
        let s = seam_score(&flat).expect("flat");
        assert_eq!((s.horizontal, s.vertical, s.combined), (0.0, 0.0, 0.0));
        let column = RgbaImage::from_fn(1, 10, |_, y| Rgba([(y * 20) as u8, 0, 0, 255]));
        let s = seam_score(&column).expect("column");
        assert_eq!(s.horizontal, 0.0);
        assert!(s.vertical > 5.0, "{s:?}");
    }

    #[test]
    fn rejects_bad_threshold() {
        let img = RgbaImage::from_pixel(2, 2, Rgba([1, 1, 1, 255]));
        assert!(is_tileable(&img, f32::NAN).is_err());
        assert!(is_tileable(&img, -1.0).is_err());
        assert!(is_tileable(&img, DEFAULT_SEAM_THRESHOLD).expect("ok"));
    }

    #[test]
    fn edge_score_matches_wrap_seam_and_checks_sizes() {
        // Two halves of one ramp: the edge between them is an ordinary step.
        let ramp = |x0: u32| {
            RgbaImage::from_fn(4, 3, move |x, _| Rgba([((x0 + x) * 30) as u8, 0, 0, 255]))
        };
        let (left, right) = (ramp(0), ramp(4));
        let s = edge_score(&left, &right, Axis::Horizontal).expect("same height");
        assert!((0.5..1.5).contains(&s), "{s}");
        // Reversed, the jump is 7 steps of the ramp.
        let s = edge_score(&right, &left, Axis::Horizontal).expect("same height");
        assert!(s > 5.0, "{s}");
        // A ramp against itself vertically: the jump back to the top is a hard seam both as
        // a wrap and as an edge (against the steps next to it, all one ramp step).
        let img = RgbaImage::from_fn(5, 6, |x, y| Rgba([(x * 40) as u8, (y * 37) as u8, 9, 255]));
        let wrap = seam_score(&img).expect("img").vertical;
        let edge = edge_score(&img, &img, Axis::Vertical).expect("same");
        assert!(wrap > 3.0 && edge > 3.0, "{wrap} {edge}");
        // The reference is local: steps far from the edge do not count.
        let busy_inside = RgbaImage::from_fn(12, 2, |x, _| {
            let v = if (4..8).contains(&x) {
                (x % 2) as u8 * 200
            } else {
                100
            };
            Rgba([v, v, v, 255])
        });
        let flat_left = RgbaImage::from_pixel(12, 2, Rgba([100, 100, 100, 255]));
        let step = RgbaImage::from_pixel(12, 2, Rgba([110, 100, 100, 255]));
        assert!(edge_score(&busy_inside, &step, Axis::Horizontal).expect("ok") > 3.0);
        assert!(edge_score(&flat_left, &step, Axis::Horizontal).expect("ok") > 3.0);
        assert!(edge_score(&left, &img, Axis::Horizontal).is_err());
        assert!(edge_score(&left, &img, Axis::Vertical).is_err());
    }
}
