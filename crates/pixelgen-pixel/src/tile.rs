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

/// Scores the wrap-around seams of `img`. An image one pixel wide (or high) has no
/// horizontal (or vertical) seam: that score is 0. Errors on an empty image.
pub fn seam_score(img: &RgbaImage) -> Result<SeamScore> {
    let (w, h) = img.dimensions();
    ensure_not_empty(w, h)?;
    let (w, h) = (w as usize, h as usize);
    let raw = img.as_raw();
    let mut cache = LabCache::new();
    let mut diff = |i: usize, j: usize| {
        let (a, b) = (&raw[i * 4..i * 4 + 4], &raw[j * 4..j * 4 + 4]);
        let la = cache.get([a[0], a[1], a[2]]);
        let lb = cache.get([b[0], b[1], b[2]]);
        la.dist(lb) + (a[3] as f32 - b[3] as f32).abs() / 255.0
    };
    // Horizontal: pairs (x, y) - (x + 1, y); the seam pair is (w - 1, y) - (0, y).
    let horizontal = if w < 2 {
        0.0
    } else {
        let seam: f64 = (0..h)
            .map(|y| diff(y * w + w - 1, y * w) as f64)
            .sum::<f64>()
            / h as f64;
        let stride = h.div_ceil(MAX_SAMPLED_LINES).max(1);
        let (mut sum, mut n) = (0f64, 0usize);
        for y in (0..h).step_by(stride) {
            for x in 0..w - 1 {
                sum += diff(y * w + x, y * w + x + 1) as f64;
                n += 1;
            }
        }
        ratio(seam, sum / n.max(1) as f64)
    };
    let vertical = if h < 2 {
        0.0
    } else {
        let seam: f64 = (0..w).map(|x| diff((h - 1) * w + x, x) as f64).sum::<f64>() / w as f64;
        let stride = w.div_ceil(MAX_SAMPLED_LINES).max(1);
        let (mut sum, mut n) = (0f64, 0usize);
        // Row pairs, sampling columns: walk rows outermost for memory order.
        for y in 0..h - 1 {
            for x in (0..w).step_by(stride) {
                sum += diff(y * w + x, (y + 1) * w + x) as f64;
                n += 1;
            }
        }
        ratio(seam, sum / n.max(1) as f64)
    };
    Ok(SeamScore {
        horizontal,
        vertical,
        combined: horizontal.max(vertical),
    })
}

fn ratio(seam: f64, interior: f64) -> f32 {
    (seam / interior.max(MIN_INTERIOR_STEP as f64)) as f32
}

/// `true` when both seams score at most `threshold` (use [`DEFAULT_SEAM_THRESHOLD`]).
/// Errors on an empty image or a negative / non-finite threshold.
pub fn is_tileable(img: &RgbaImage, threshold: f32) -> Result<bool> {
    if !(threshold.is_finite() && threshold >= 0.0) {
        return Err(PixelError::InvalidOption {
            name: "threshold",
            message: format!(
                "{threshold} is not a seam score: use a finite value >= 0 (1.5 recommended)"
            ),
        });
    }
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
}
