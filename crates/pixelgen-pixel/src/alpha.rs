//! Background removal to alpha: border flood fill with an OKLab tolerance, colour keys, and
//! alpha binarisation (pixel art has no half-transparent edges).
//!
//! # How the background is found
//!
//! Without a colour key, the background colour is estimated from the image border: the
//! border's opaque pixels are binned (4 bits per channel), the bin whose 3x3x3 neighbourhood
//! holds the most pixels is the dominant cluster, and the background colour is the mean of
//! the border pixels within [`BackgroundOptions::tolerance`] of that cluster's mean. A flat
//! background, one with a little noise, and one with a slight gradient all give a stable
//! estimate; a sprite that touches the border does not, as long as it covers less of the
//! border than the background does.
//!
//! The fill then starts from every border pixel that is transparent or within `tolerance`
//! of the background colour, and spreads to a 4-neighbour when **both** hold:
//! - the neighbour is within [`BackgroundOptions::step_tolerance`] of the pixel it is
//!   reached from (the local test, which follows noise and soft gradients), and
//! - the neighbour is within `tolerance` of the estimated background colour (the drift
//!   cap, so the fill cannot creep along a soft shading ramp into the sprite).
//!
//! Only pixels connected to the border are removed: a background-coloured region enclosed
//! by the sprite (the white of an eye, the gap inside a ring) is kept. The result does not
//! depend on the fill order (it is the set of pixels reachable through accepted steps).
//!
//! # Colour keys
//!
//! With [`BackgroundOptions::key`] set, the key is the background colour and a pixel matches
//! it when it is within `tolerance` of the key (the local step test is not used: the key is
//! explicit). [`KeyMode::Everywhere`] (the default, the usual colour-key convention, since
//! keyed art never contains the key) removes every matching pixel; [`KeyMode::BorderConnected`]
//! removes only matching pixels connected to the border.
//!
//! # Special cases
//!
//! - The alpha channel is binarised first ([`binarize_alpha`]); already transparent pixels
//!   stay transparent and the fill passes through them.
//! - An image whose border is mostly transparent already has its background removed: it
//!   is returned binarised and otherwise unchanged ([`BackgroundReport::background`] is
//!   `None`).
//! - When removal would erase every opaque pixel (a uniform image, an image all in the key
//!   colour), nothing is erased: the binarised image is returned and
//!   [`BackgroundReport::foreground_found`] is `false`, so the caller can decide.

use image::RgbaImage;

use crate::color::Oklab;
use crate::error::{PixelError, Result, ensure_not_empty};

/// Which keyed pixels are removed when a colour key is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyMode {
    /// Every pixel matching the key is removed, wherever it is (classic colour keying).
    #[default]
    Everywhere,
    /// Only matching pixels connected to the image border (4-connected) are removed.
    BorderConnected,
}

/// Options for [`remove_background`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BackgroundOptions {
    /// Largest OKLab distance from the background (or key) colour that still counts as
    /// background (the drift cap). 0.02 is a just-noticeable difference; default 0.12.
    pub tolerance: f32,
    /// Largest OKLab distance between two neighbouring pixels for the fill to step from one
    /// to the other (follows noise and soft gradients); default 0.06. Unused with a key.
    pub step_tolerance: f32,
    /// Colour key (sRGB); when set it is the background colour instead of the border estimate.
    pub key: Option<[u8; 3]>,
    /// Whether keyed pixels are removed everywhere or only where connected to the border.
    pub key_mode: KeyMode,
    /// Alpha at or above this is opaque, below it fully transparent; default 128.
    pub alpha_threshold: u8,
}

impl Default for BackgroundOptions {
    fn default() -> Self {
        Self {
            tolerance: 0.12,
            step_tolerance: 0.06,
            key: None,
            key_mode: KeyMode::Everywhere,
            alpha_threshold: 128,
        }
    }
}

/// What [`remove_background`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BackgroundReport {
    /// Background colour used (the key, or the border estimate); `None` when the border was
    /// already transparent or had no opaque pixel, so no colour was removed.
    pub background: Option<[u8; 3]>,
    /// Number of opaque pixels (after binarisation) made transparent.
    pub removed: usize,
    /// Number of opaque pixels left in the result.
    pub kept: usize,
    /// `false` when removal would have erased every opaque pixel (then nothing was erased)
    /// or the image has no opaque pixel at all.
    pub foreground_found: bool,
}

/// Sets alpha to 255 where it is at least `threshold`; every other pixel becomes
/// `[0, 0, 0, 0]` (fully transparent, no colour to bleed, compresses well).
pub fn binarize_alpha(img: &mut RgbaImage, threshold: u8) {
    for px in img.as_mut().chunks_exact_mut(4) {
        if px[3] >= threshold {
            px[3] = 255;
        } else {
            px.copy_from_slice(&[0, 0, 0, 0]);
        }
    }
}

/// Removes the background of `img` to transparency (see the module docs for the rules).
///
/// Returns the new image (binary alpha, removed pixels `[0, 0, 0, 0]`) and a report.
/// Errors on an empty image or on a negative / non-finite tolerance.
pub fn remove_background(
    img: &RgbaImage,
    opts: &BackgroundOptions,
) -> Result<(RgbaImage, BackgroundReport)> {
    let (w, h) = img.dimensions();
    ensure_not_empty(w, h)?;
    check_tolerance("tolerance", opts.tolerance)?;
    check_tolerance("step_tolerance", opts.step_tolerance)?;

    let mut out = img.clone();
    binarize_alpha(&mut out, opts.alpha_threshold);
    let px: Vec<u32> = out
        .as_raw()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let opaque_before = px.iter().filter(|&&p| is_opaque(p)).count();
    let (w, h) = (w as usize, h as usize);
    let mut cache = LabCache::new();
    let tol2 = opts.tolerance * opts.tolerance;

    let (bg, mask) = match opts.key {
        Some(key) => {
            let key_lab = Oklab::from_srgb(key);
            let mut matches = |p: u32| !is_opaque(p) || cache.get(rgb_of(p)).dist2(key_lab) <= tol2;
            let mask = match opts.key_mode {
                KeyMode::Everywhere => px.iter().map(|&p| matches(p)).collect(),
                KeyMode::BorderConnected => flood_from_border(&px, w, h, |_, q| matches(q)),
            };
            (key, mask)
        }
        None => {
            let Some(bg) = estimate_background(&px, w, h, opts.tolerance, &mut cache) else {
                let report = BackgroundReport {
                    background: None,
                    removed: 0,
                    kept: opaque_before,
                    foreground_found: opaque_before > 0,
                };
                return Ok((out, report));
            };
            let bg_lab = Oklab::from_srgb(bg);
            let step2 = opts.step_tolerance * opts.step_tolerance;
            let accept = |from: Option<u32>, q: u32| {
                if !is_opaque(q) {
                    return true;
                }
                let ql = cache.get(rgb_of(q));
                if ql.dist2(bg_lab) > tol2 {
                    return false;
                }
                match from {
                    Some(p) if is_opaque(p) => cache.get(rgb_of(p)).dist2(ql) <= step2,
                    _ => true,
                }
            };
            (bg, flood_from_border(&px, w, h, accept))
        }
    };

    let removed = px
        .iter()
        .zip(&mask)
        .filter(|&(&p, &m)| m && is_opaque(p))
        .count();
    if removed == opaque_before {
        // Nothing would be left: do not erase the whole image.
        let report = BackgroundReport {
            background: Some(bg),
            removed: 0,
            kept: opaque_before,
            foreground_found: false,
        };
        return Ok((out, report));
    }
    for (dst, &m) in out.as_mut().chunks_exact_mut(4).zip(&mask) {
        if m {
            dst.copy_from_slice(&[0, 0, 0, 0]);
        }
    }
    let report = BackgroundReport {
        background: Some(bg),
        removed,
        kept: opaque_before - removed,
        foreground_found: true,
    };
    Ok((out, report))
}

fn check_tolerance(name: &'static str, v: f32) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(PixelError::InvalidOption {
            name,
            message: format!("{v} is not a distance: use a finite OKLab distance >= 0 (e.g. 0.1)"),
        })
    }
}

/// Packed RGBA (little-endian bytes r, g, b, a) -> is alpha non-zero.
#[inline]
fn is_opaque(p: u32) -> bool {
    p >> 24 != 0
}

/// Packed RGBA -> `[r, g, b]`.
#[inline]
fn rgb_of(p: u32) -> [u8; 3] {
    let b = p.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// Indices of the border pixels of a `w` x `h` image, each once, in a fixed order.
pub(crate) fn border_indices(w: usize, h: usize) -> Vec<usize> {
    let mut v = Vec::with_capacity(2 * (w + h));
    if w == 0 || h == 0 {
        return v;
    }
    v.extend(0..w);
    if h > 1 {
        v.extend((h - 1) * w..h * w);
    }
    for y in 1..h.saturating_sub(1) {
        v.push(y * w);
        if w > 1 {
            v.push(y * w + w - 1);
        }
    }
    v
}

/// Estimates the background colour from the border's dominant colour cluster.
/// `None` when the border has no opaque pixel or is mostly transparent.
fn estimate_background(
    px: &[u32],
    w: usize,
    h: usize,
    tolerance: f32,
    cache: &mut LabCache,
) -> Option<[u8; 3]> {
    let border = border_indices(w, h);
    let bin_of = |rgb: [u8; 3]| {
        ((rgb[0] as usize >> 4) << 8) | ((rgb[1] as usize >> 4) << 4) | (rgb[2] as usize >> 4)
    };
    let mut counts = vec![0u32; 4096];
    let mut transparent = 0u32;
    for &i in &border {
        let p = px.get(i).copied().unwrap_or(0);
        if is_opaque(p) {
            counts[bin_of(rgb_of(p))] += 1;
        } else {
            transparent += 1;
        }
    }
    // Dominant cluster: the bin with the most pixels in its 3x3x3 neighbourhood.
    let neighbourhood = |bin: usize| {
        let (r, g, b) = (
            (bin >> 8) as i32,
            ((bin >> 4) & 15) as i32,
            (bin & 15) as i32,
        );
        let mut sum = 0u32;
        for dr in -1..=1 {
            for dg in -1..=1 {
                for db in -1..=1 {
                    let (r2, g2, b2) = (r + dr, g + dg, b + db);
                    if (0..16).contains(&r2) && (0..16).contains(&g2) && (0..16).contains(&b2) {
                        sum += counts[((r2 << 8) | (g2 << 4) | b2) as usize];
                    }
                }
            }
        }
        sum
    };
    let mut best: Option<(usize, u32)> = None;
    for (bin, &c) in counts.iter().enumerate() {
        if c > 0 {
            let n = neighbourhood(bin);
            if best.is_none_or(|(_, bn)| n > bn) {
                best = Some((bin, n));
            }
        }
    }
    let (best_bin, best_n) = best?;
    if transparent >= best_n {
        return None;
    }
    let in_cluster = |rgb: [u8; 3]| {
        let b = bin_of(rgb);
        let d = |s: u32| ((b >> s) & 15).abs_diff((best_bin >> s) & 15) <= 1;
        d(8) && d(4) && d(0)
    };
    let first = mean_rgb(border.iter().filter_map(|&i| {
        let p = px.get(i).copied()?;
        (is_opaque(p) && in_cluster(rgb_of(p))).then(|| rgb_of(p))
    }))?;
    // Refine: mean of the border pixels within `tolerance` of the first estimate.
    let first_lab = Oklab::from_srgb(first);
    let tol2 = tolerance * tolerance;
    let refined = mean_rgb(border.iter().filter_map(|&i| {
        let p = px.get(i).copied()?;
        (is_opaque(p) && cache.get(rgb_of(p)).dist2(first_lab) <= tol2).then(|| rgb_of(p))
    }));
    Some(refined.unwrap_or(first))
}

fn mean_rgb(it: impl Iterator<Item = [u8; 3]>) -> Option<[u8; 3]> {
    let (mut s, mut n) = ([0u64; 3], 0u64);
    for c in it {
        for k in 0..3 {
            s[k] += c[k] as u64;
        }
        n += 1;
    }
    (n > 0).then(|| s.map(|v| ((v + n / 2) / n) as u8))
}

/// 4-connected flood fill from the border. `accept(None, q)` says whether border pixel `q`
/// starts the fill; `accept(Some(p), q)` whether the fill may go from accepted pixel `p` to
/// its neighbour `q`. Returns the mask of reached pixels.
fn flood_from_border(
    px: &[u32],
    w: usize,
    h: usize,
    mut accept: impl FnMut(Option<u32>, u32) -> bool,
) -> Vec<bool> {
    let mut mask = vec![false; px.len()];
    let mut stack: Vec<usize> = Vec::new();
    for i in border_indices(w, h) {
        if let Some(&p) = px.get(i)
            && !mask[i]
            && accept(None, p)
        {
            mask[i] = true;
            stack.push(i);
        }
    }
    while let Some(i) = stack.pop() {
        let p = px[i];
        let (x, y) = (i % w, i / w);
        let mut visit = |j: usize, mask: &mut Vec<bool>, stack: &mut Vec<usize>| {
            if !mask[j] && accept(Some(p), px[j]) {
                mask[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1, &mut mask, &mut stack);
        }
        if x + 1 < w {
            visit(i + 1, &mut mask, &mut stack);
        }
        if y > 0 {
            visit(i - w, &mut mask, &mut stack);
        }
        if y + 1 < h {
            visit(i + w, &mut mask, &mut stack);
        }
    }
    mask
}

/// A small direct-mapped cache of sRGB -> OKLab conversions, so per-pixel colour tests on
/// big images cost a lookup instead of three cube roots (pixel art repeats few colours).
pub(crate) struct LabCache {
    keys: Vec<u32>,
    vals: Vec<Oklab>,
}

impl LabCache {
    const BITS: u32 = 12;

    /// An empty cache.
    pub(crate) fn new() -> Self {
        let n = 1usize << Self::BITS;
        Self {
            keys: vec![u32::MAX; n],
            vals: vec![Oklab::default(); n],
        }
    }

    /// OKLab of an sRGB colour, converted once per cache slot.
    #[inline]
    pub(crate) fn get(&mut self, rgb: [u8; 3]) -> Oklab {
        let key = u32::from_le_bytes([rgb[0], rgb[1], rgb[2], 0]);
        let slot = (key.wrapping_mul(0x9E37_79B1) >> (32 - Self::BITS)) as usize;
        if self.keys[slot] != key {
            self.keys[slot] = key;
            self.vals[slot] = Oklab::from_srgb(rgb);
        }
        self.vals[slot]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    #[test]
    fn binarize_sets_binary_alpha_and_clears_colour() {
        let mut img = RgbaImage::from_fn(4, 1, |x, _| {
            Rgba([10, 20, 30, [0, 127, 128, 255][x as usize]])
        });
        binarize_alpha(&mut img, 128);
        let alphas: Vec<[u8; 4]> = img.pixels().map(|p| p.0).collect();
        assert_eq!(
            alphas,
            vec![
                [0, 0, 0, 0],
                [0, 0, 0, 0],
                [10, 20, 30, 255],
                [10, 20, 30, 255]
            ]
        );
    }

    #[test]
    fn border_indices_cover_each_border_pixel_once() {
        for (w, h) in [(1, 1), (1, 5), (5, 1), (2, 2), (4, 3)] {
            let mut b = border_indices(w, h);
            let n = b.len();
            b.sort_unstable();
            b.dedup();
            assert_eq!(b.len(), n, "{w}x{h} has duplicates");
            let expect = (0..w * h)
                .filter(|&i| {
                    let (x, y) = (i % w, i / w);
                    x == 0 || y == 0 || x + 1 == w || y + 1 == h
                })
                .count();
            assert_eq!(n, expect, "{w}x{h}");
        }
    }

    #[test]
    fn estimate_picks_dominant_border_cluster_not_sprite() {
        // 10x10: border is grey except 6 red pixels of a sprite touching the top edge.
        let img = RgbaImage::from_fn(10, 10, |x, y| {
            if y < 3 && (2..8).contains(&x) {
                Rgba([220, 20, 20, 255])
            } else {
                Rgba([90, 90, 90, 255])
            }
        });
        let px: Vec<u32> = img.pixels().map(|p| u32::from_le_bytes(p.0)).collect();
        let bg = estimate_background(&px, 10, 10, 0.12, &mut LabCache::new());
        assert_eq!(bg, Some([90, 90, 90]));
    }

    #[test]
    fn lab_cache_matches_direct_conversion() {
        let mut cache = LabCache::new();
        for i in 0..20_000u32 {
            let rgb = [(i * 7) as u8, ((i * 13) >> 3) as u8, (i >> 7) as u8];
            assert_eq!(cache.get(rgb), Oklab::from_srgb(rgb));
        }
    }

    #[test]
    fn rejects_bad_tolerance_and_empty_image() {
        let img = RgbaImage::new(3, 3);
        let bad = BackgroundOptions {
            tolerance: f32::NAN,
            ..Default::default()
        };
        assert!(matches!(
            remove_background(&img, &bad),
            Err(PixelError::InvalidOption {
                name: "tolerance",
                ..
            })
        ));
        let empty = RgbaImage::new(0, 7);
        assert!(matches!(
            remove_background(&empty, &BackgroundOptions::default()),
            Err(PixelError::EmptyImage { .. })
        ));
    }
}
