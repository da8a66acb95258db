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
//! - An image whose border has at least as many transparent pixels as its dominant colour
//!   cluster already has its background removed: it is returned binarised and otherwise
//!   unchanged ([`BackgroundReport::background`] is `None`).
//! - A gradient stronger than `tolerance` across the image leaves its far end in place:
//!   raise `tolerance` for such backgrounds (the drift cap is what keeps the sprite safe).
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
    let raw = out.as_raw();
    let opaque_before = raw.chunks_exact(4).filter(|c| c[3] != 0).count();
    let (w, h) = (w as usize, h as usize);
    let pixel = |i: usize| {
        let c = &raw[i * 4..i * 4 + 4];
        u32::from_le_bytes([c[0], c[1], c[2], c[3]])
    };
    let mut cache = LabCache::new();
    let tol2 = opts.tolerance * opts.tolerance;

    let (bg, grid) = match opts.key {
        Some(key) => {
            let key_lab = Oklab::from_srgb(key);
            // Every pixel is either passable (core) or blocked: no step test with a key.
            let mut grid = Grid::classify(raw, w, h, &mut cache, key_lab, tol2, tol2);
            match opts.key_mode {
                KeyMode::Everywhere => grid.mark_all_passable(),
                KeyMode::BorderConnected => grid.flood_from_border(|_, _| true),
            }
            (key, grid)
        }
        None => {
            let border: Vec<u32> = border_indices(w, h).into_iter().map(pixel).collect();
            let Some(bg) = estimate_background(&border, opts.tolerance, &mut cache) else {
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
            // Two pixels both within step/2 of the background are within step of each other
            // (triangle inequality): only steps touching a fringe pixel need a distance.
            let half = 0.5 * opts.step_tolerance.min(opts.tolerance);
            let mut grid = Grid::classify(raw, w, h, &mut cache, bg_lab, half * half, tol2);
            grid.flood_from_border(|i, j| {
                let (p, q) = (pixel(i), pixel(j));
                !is_opaque(p)
                    || !is_opaque(q)
                    || cache.get(rgb_of(p)).dist2(cache.get(rgb_of(q))) <= step2
            });
            (bg, grid)
        }
    };

    let mut removed = 0usize;
    for (y, row) in raw.chunks_exact(w * 4).enumerate() {
        let reached = grid.row(y);
        for (c, &v) in row.chunks_exact(4).zip(reached) {
            removed += usize::from(v & VISITED != 0 && c[3] != 0);
        }
    }
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
    let dst: &mut [u8] = out.as_mut();
    for (y, row) in dst.chunks_exact_mut(w * 4).enumerate() {
        for (c, &v) in row.chunks_exact_mut(4).zip(grid.row(y)) {
            if v & VISITED != 0 {
                c.copy_from_slice(&[0, 0, 0, 0]);
            }
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
fn estimate_background(border: &[u32], tolerance: f32, cache: &mut LabCache) -> Option<[u8; 3]> {
    let bin_of = |rgb: [u8; 3]| {
        ((rgb[0] as usize >> 4) << 8) | ((rgb[1] as usize >> 4) << 4) | (rgb[2] as usize >> 4)
    };
    let mut counts = vec![0u32; 4096];
    let mut transparent = 0u32;
    for &p in border {
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
    let first = mean_rgb(
        border
            .iter()
            .filter(|&&p| is_opaque(p) && in_cluster(rgb_of(p)))
            .map(|&p| rgb_of(p)),
    )?;
    // Refine: mean of the border pixels within `tolerance` of the first estimate.
    let first_lab = Oklab::from_srgb(first);
    let tol2 = tolerance * tolerance;
    let refined = mean_rgb(
        border
            .iter()
            .filter(|&&p| is_opaque(p) && cache.get(rgb_of(p)).dist2(first_lab) <= tol2)
            .map(|&p| rgb_of(p)),
    );
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

/// Pixel class for the fill: blocked (not background), core (transparent, or within half
/// a step of the background colour), fringe (within the tolerance but not core).
const BLOCKED: u8 = 0;
const CORE: u8 = 1;
const FRINGE: u8 = 2;
/// Bit set on pixels the fill has reached.
const VISITED: u8 = 0x80;

/// Per-pixel fill state with a one-pixel blocked frame, so neighbour reads need no bounds
/// checks: pixel `(x, y)` lives at `(y + 1) * (w + 2) + x + 1`.
struct Grid {
    cells: Vec<u8>,
    w: usize,
    h: usize,
}

impl Grid {
    /// Classifies every pixel by its squared OKLab distance to `bg`: `<= core2` core,
    /// `<= tol2` fringe, else blocked. Transparent pixels are core.
    fn classify(
        raw: &[u8],
        w: usize,
        h: usize,
        cache: &mut LabCache,
        bg: Oklab,
        core2: f32,
        tol2: f32,
    ) -> Self {
        let pw = w + 2;
        let mut cells = vec![BLOCKED; pw * (h + 2)];
        let mut last = (u32::MAX, BLOCKED);
        for (y, row) in raw.chunks_exact(w * 4).enumerate() {
            let dst = &mut cells[(y + 1) * pw + 1..(y + 1) * pw + 1 + w];
            for (d, c) in dst.iter_mut().zip(row.chunks_exact(4)) {
                let p = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                *d = if !is_opaque(p) {
                    CORE
                } else {
                    if p != last.0 {
                        let d2 = cache.get(rgb_of(p)).dist2(bg);
                        let class = if d2 <= core2 {
                            CORE
                        } else if d2 <= tol2 {
                            FRINGE
                        } else {
                            BLOCKED
                        };
                        last = (p, class);
                    }
                    last.1
                };
            }
        }
        Self { cells, w, h }
    }

    /// The cells of image row `y` (without the frame).
    fn row(&self, y: usize) -> &[u8] {
        let pw = self.w + 2;
        &self.cells[(y + 1) * pw + 1..(y + 1) * pw + 1 + self.w]
    }

    /// Marks every passable pixel as reached.
    fn mark_all_passable(&mut self) {
        for c in &mut self.cells {
            if *c != BLOCKED {
                *c |= VISITED;
            }
        }
    }

    /// 4-connected flood fill from the image border over passable pixels, marking reached
    /// pixels with [`VISITED`]. Every passable border pixel is a seed. A step between two
    /// core pixels is always allowed; a step touching a fringe pixel also needs
    /// `step_ok(from, to)` (image pixel indices `y * w + x`). The reached set does not
    /// depend on the visiting order.
    fn flood_from_border(&mut self, mut step_ok: impl FnMut(usize, usize) -> bool) {
        let (w, pw) = (self.w, self.w + 2);
        let cells = &mut self.cells;
        let mut stack: Vec<usize> = Vec::new();
        for i in border_indices(self.w, self.h) {
            let k = (i / w + 1) * pw + i % w + 1;
            if cells[k] != BLOCKED && cells[k] & VISITED == 0 {
                cells[k] |= VISITED;
                stack.push(k);
            }
        }
        let image_index = |k: usize| (k / pw - 1) * w + k % pw - 1;
        while let Some(k) = stack.pop() {
            let ck = cells[k] & !VISITED;
            for n in [k - 1, k + 1, k - pw, k + pw] {
                let cn = cells[n];
                if cn != BLOCKED
                    && cn & VISITED == 0
                    && ((ck == CORE && cn == CORE) || step_ok(image_index(k), image_index(n)))
                {
                    cells[n] = cn | VISITED;
                    stack.push(n);
                }
            }
        }
    }
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
        let border: Vec<u32> = border_indices(10, 10)
            .into_iter()
            .map(|i| u32::from_le_bytes(img.as_raw()[i * 4..i * 4 + 4].try_into().expect("4")))
            .collect();
        let bg = estimate_background(&border, 0.12, &mut LabCache::new());
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
    fn options_are_plain_serde_data() {
        let d: BackgroundOptions = serde_json::from_str("{}").expect("defaults");
        assert_eq!(d, BackgroundOptions::default());
        let o: BackgroundOptions =
            serde_json::from_str(r#"{"key":[255,0,255],"key_mode":"border_connected"}"#)
                .expect("parse");
        assert_eq!(o.key, Some([255, 0, 255]));
        assert_eq!(o.key_mode, KeyMode::BorderConnected);
        assert_eq!(o.tolerance, BackgroundOptions::default().tolerance);
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
