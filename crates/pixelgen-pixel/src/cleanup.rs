//! Sprite clean-up on binary-alpha images: 1-px outlines, stray-pixel removal, trimming to
//! content and fitting onto an exact canvas.
//!
//! A pixel is part of the sprite when its alpha is non-zero; run
//! [`binarize_alpha`](crate::alpha::binarize_alpha) first on images with soft alpha.
//! Pixels outside the canvas count as transparent.

use image::RgbaImage;

use crate::alpha::LabCache;
use crate::error::{PixelError, Result, ensure_not_empty};

/// Which neighbours touch a pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connectivity {
    /// Left, right, up, down.
    Four,
    /// The four above plus the diagonals.
    #[default]
    Eight,
}

/// Where a 1-px outline is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutlinePlacement {
    /// On the transparent pixels touching the sprite (the sprite grows by 1 px; holes inside
    /// the sprite get outlined too).
    #[default]
    Outer,
    /// On the sprite's own edge pixels (those touching transparency or the canvas edge); the
    /// sprite keeps its size.
    Inner,
}

/// Options for [`outline`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OutlineOptions {
    /// Outline colour (RGBA); default opaque black.
    pub color: [u8; 4],
    /// [`Connectivity::Four`] gives a thin "plus" outline without corner pixels,
    /// [`Connectivity::Eight`] (default) a closed outline that also fills diagonal corners.
    pub connectivity: Connectivity,
    /// Outer (default) or inner outline.
    pub placement: OutlinePlacement,
    /// Outer outline only: when `true` the canvas always grows by 1 px on every side (output
    /// is `(w + 2) x (h + 2)`, the image at offset (1, 1)), so a sprite touching the border is
    /// outlined all round; when `false` (default) the size is kept and the outline is clipped
    /// at the canvas edge (use [`fit_canvas`] afterwards for an exact size).
    pub grow_canvas: bool,
}

impl Default for OutlineOptions {
    fn default() -> Self {
        Self {
            color: [0, 0, 0, 255],
            connectivity: Connectivity::Eight,
            placement: OutlinePlacement::Outer,
            grow_canvas: false,
        }
    }
}

/// Neighbour offsets: the first four are the 4-neighbours.
const NEIGHBOURS: [(i32, i32); 8] = [
    (0, -1),
    (-1, 0),
    (1, 0),
    (0, 1),
    (-1, -1),
    (1, -1),
    (-1, 1),
    (1, 1),
];

impl Connectivity {
    fn offsets(self) -> &'static [(i32, i32)] {
        match self {
            Connectivity::Four => &NEIGHBOURS[..4],
            Connectivity::Eight => &NEIGHBOURS,
        }
    }
}

/// Reads pixel `(x, y)` as packed little-endian RGBA; outside the image is transparent (0).
#[inline]
fn at(px: &[u32], w: usize, h: usize, x: i64, y: i64) -> u32 {
    if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
        0
    } else {
        px[y as usize * w + x as usize]
    }
}

#[inline]
fn is_opaque(p: u32) -> bool {
    p >> 24 != 0
}

fn packed(img: &RgbaImage) -> Vec<u32> {
    img.as_raw()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn unpacked(px: &[u32], w: u32, h: u32) -> RgbaImage {
    let raw: Vec<u8> = px.iter().flat_map(|p| p.to_le_bytes()).collect();
    RgbaImage::from_raw(w, h, raw).unwrap_or_else(|| RgbaImage::new(w, h))
}

/// Draws a 1-px outline around the sprite (pixels with alpha > 0). An empty image is
/// returned as is.
pub fn outline(img: &RgbaImage, opts: &OutlineOptions) -> RgbaImage {
    let (w0, h0) = img.dimensions();
    if w0 == 0 || h0 == 0 {
        return img.clone();
    }
    let grow = opts.grow_canvas && opts.placement == OutlinePlacement::Outer;
    let (w, h, src) = if grow {
        let mut big = RgbaImage::new(w0 + 2, h0 + 2);
        image::imageops::replace(&mut big, img, 1, 1);
        (w0 + 2, h0 + 2, big)
    } else {
        (w0, h0, img.clone())
    };
    // Opaque mask with a 1-px transparent frame, so neighbour reads need no bounds checks.
    let (wu, hu) = (w as usize, h as usize);
    let pw = wu + 2;
    let mut mask = vec![0u8; pw * (hu + 2)];
    for (y, row) in src.as_raw().chunks_exact(wu * 4).enumerate() {
        let dst = &mut mask[(y + 1) * pw + 1..(y + 1) * pw + 1 + wu];
        for (m, p) in dst.iter_mut().zip(row.chunks_exact(4)) {
            *m = u8::from(p[3] != 0);
        }
    }
    let eight = opts.connectivity == Connectivity::Eight;
    let outer = opts.placement == OutlinePlacement::Outer;
    let mut out = src;
    let raw: &mut [u8] = out.as_mut();
    for y in 0..hu {
        let up = &mask[y * pw..(y + 1) * pw];
        let mid = &mask[(y + 1) * pw..(y + 2) * pw];
        let down = &mask[(y + 2) * pw..(y + 3) * pw];
        for x in 0..wu {
            // Padded column of (x, y) is x + 1; count opaque neighbours.
            let mut n = up[x + 1] + mid[x] + mid[x + 2] + down[x + 1];
            let mut total = 4;
            if eight {
                n += up[x] + up[x + 2] + down[x] + down[x + 2];
                total = 8;
            }
            let draw = if mid[x + 1] == 0 {
                outer && n > 0
            } else {
                !outer && n < total
            };
            if draw {
                raw[(y * wu + x) * 4..(y * wu + x) * 4 + 4].copy_from_slice(&opts.color);
            }
        }
    }
    out
}

/// Two opaque colours closer than this (OKLab) count as "the same colour" for
/// [`remove_strays`] (about one just-noticeable difference).
pub const STRAY_SAME_COLOR: f32 = 0.02;

/// A lone pixel differing from the colour around it by at least this (OKLab) is a deliberate
/// detail (an eye, a highlight) and is kept by [`remove_strays`]; a smaller difference is
/// treated as noise.
pub const STRAY_DETAIL_CONTRAST: f32 = 0.15;

/// Removes stray pixels; returns the cleaned image and the number of pixels changed.
///
/// The rule, applied to every opaque pixel `p` of the original at once (so the result does
/// not depend on scan order):
/// 1. If a neighbour (under `connectivity`) has the same colour as `p` (within
///    [`STRAY_SAME_COLOR`]), `p` belongs to a line or area and is kept. This protects 1-px
///    outlines and any 2-px or larger cluster. Use [`Connectivity::Eight`] for pixel art:
///    with `Four`, every pixel of a diagonal 1-px line has no same-colour 4-neighbour.
/// 2. Otherwise, if none of the 8 neighbours is opaque, `p` floats in transparency and is
///    removed (made `[0, 0, 0, 0]`).
/// 3. Otherwise `p` takes the majority class among its 8 neighbours (transparent counts as
///    one class; ties go to the first in the order N, W, E, S, NW, NE, SW, SE):
///    - transparent majority: `p` sticks out into transparency and is removed;
///    - colour majority `c`: `p` becomes `c` **only if** it is also close to `c` (OKLab
///      distance below [`STRAY_DETAIL_CONTRAST`]). A lone low-contrast speck is noise
///      (quantisation, dithering leftovers); a lone high-contrast pixel is a deliberate
///      detail such as a 1-px eye inside a face, and is kept.
pub fn remove_strays(img: &RgbaImage, connectivity: Connectivity) -> (RgbaImage, usize) {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return (img.clone(), 0);
    }
    let px = packed(img);
    let (wu, hu) = (w as usize, h as usize);
    let offs = connectivity.offsets();
    let mut cache = LabCache::new();
    let same2 = STRAY_SAME_COLOR * STRAY_SAME_COLOR;
    let detail2 = STRAY_DETAIL_CONTRAST * STRAY_DETAIL_CONTRAST;
    let mut out = px.clone();
    let mut changed = 0usize;
    for y in 0..hu {
        for x in 0..wu {
            let p = px[y * wu + x];
            if !is_opaque(p) {
                continue;
            }
            let nb = |dx: i32, dy: i32| at(&px, wu, hu, x as i64 + dx as i64, y as i64 + dy as i64);
            let rgb = |q: u32| {
                let b = q.to_le_bytes();
                [b[0], b[1], b[2]]
            };
            // Rule 1: a same-colour neighbour (exact first, then within the tiny tolerance).
            if offs.iter().any(|&(dx, dy)| nb(dx, dy) == p) {
                continue;
            }
            let p_lab = cache.get(rgb(p));
            let same = offs.iter().any(|&(dx, dy)| {
                let q = nb(dx, dy);
                is_opaque(q) && cache.get(rgb(q)).dist2(p_lab) <= same2
            });
            if same {
                continue;
            }
            // Rules 2 and 3: majority class of the 8 neighbours (0 = transparent).
            let mut classes: [(u32, u32); 8] = [(0, 0); 8];
            let mut n_classes = 0usize;
            for &(dx, dy) in &NEIGHBOURS {
                let q = nb(dx, dy);
                let q = if is_opaque(q) { q } else { 0 };
                match classes[..n_classes].iter_mut().find(|(c, _)| *c == q) {
                    Some(entry) => entry.1 += 1,
                    None => {
                        classes[n_classes] = (q, 1);
                        n_classes += 1;
                    }
                }
            }
            let mut best = classes[0];
            for &c in &classes[1..n_classes] {
                if c.1 > best.1 {
                    best = c;
                }
            }
            let replacement = if best.0 == 0 {
                Some(0)
            } else if cache.get(rgb(best.0)).dist2(p_lab) < detail2 {
                Some(best.0)
            } else {
                None
            };
            if let Some(r) = replacement {
                out[y * wu + x] = r;
                changed += 1;
            }
        }
    }
    (unpacked(&out, w, h), changed)
}

/// A rectangle in pixel coordinates (top-left corner and size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Bounding box of the pixels with alpha > 0; `None` for an empty or fully transparent image.
pub fn content_bounds(img: &RgbaImage) -> Option<Rect> {
    let (w, h) = img.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0u32, 0u32);
    for (y, row) in img.as_raw().chunks_exact(w.max(1) as usize * 4).enumerate() {
        let mut first = None;
        let mut last = 0;
        for (x, px) in row.chunks_exact(4).enumerate() {
            if px[3] != 0 {
                first.get_or_insert(x as u32);
                last = x as u32;
            }
        }
        if let Some(f) = first {
            let y = y as u32;
            x0 = x0.min(f);
            x1 = x1.max(last);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    (w > 0 && h > 0 && x0 != u32::MAX).then(|| Rect {
        x: x0,
        y: y0,
        width: x1 - x0 + 1,
        height: y1 - y0 + 1,
    })
}

/// Crops to the content (alpha > 0). Returns the cropped image and where it was in `img`,
/// or `None` when the image is empty or fully transparent (nothing to trim to).
pub fn trim(img: &RgbaImage) -> Option<(RgbaImage, Rect)> {
    let r = content_bounds(img)?;
    let cropped = image::imageops::crop_imm(img, r.x, r.y, r.width, r.height).to_image();
    Some((cropped, r))
}

/// Where content is placed in a larger box: on the canvas by [`fit_canvas`], in a sheet cell
/// by [`crate::sheet::pack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// Centred; an odd leftover pixel goes to the right / bottom.
    #[default]
    Center,
    /// Centred horizontally, touching the bottom edge (characters standing on the ground).
    BottomCenter,
    /// Touching the top-left corner.
    TopLeft,
}

impl Anchor {
    /// Top-left position of an `inner`-sized box placed in an `outer`-sized one (each a
    /// width, height pair; `inner` must not exceed `outer`).
    pub fn place(self, outer: (u32, u32), inner: (u32, u32)) -> (u32, u32) {
        let (fx, fy) = (
            outer.0.saturating_sub(inner.0),
            outer.1.saturating_sub(inner.1),
        );
        match self {
            Anchor::Center => (fx / 2, fy / 2),
            Anchor::BottomCenter => (fx / 2, fy),
            Anchor::TopLeft => (0, 0),
        }
    }
}

/// Largest canvas side [`fit_canvas`] accepts (a guard against absurd sizes from recipes).
pub const MAX_CANVAS_SIDE: u32 = 16_384;

/// Trims `img` to its content and places it on a transparent `width` x `height` canvas at
/// `anchor`.
///
/// Errors: an empty input image, a zero canvas size or a side above [`MAX_CANVAS_SIDE`],
/// or content larger than the canvas
/// ([`PixelError::InvalidOption`] with both sizes; nothing is cropped silently). A fully
/// transparent image gives a fully transparent canvas.
pub fn fit_canvas(img: &RgbaImage, width: u32, height: u32, anchor: Anchor) -> Result<RgbaImage> {
    ensure_not_empty(img.width(), img.height())?;
    if width == 0 || height == 0 || width > MAX_CANVAS_SIDE || height > MAX_CANVAS_SIDE {
        return Err(PixelError::InvalidOption {
            name: "canvas",
            message: format!(
                "canvas size {width}x{height} is out of range: each side must be 1..={MAX_CANVAS_SIDE}"
            ),
        });
    }
    let mut canvas = RgbaImage::new(width, height);
    let Some((content, r)) = trim(img) else {
        return Ok(canvas);
    };
    if r.width > width || r.height > height {
        return Err(PixelError::InvalidOption {
            name: "canvas",
            message: format!(
                "the sprite's content is {}x{} but the canvas is {width}x{height}: \
                 use a canvas at least as large as the content, or downscale first",
                r.width, r.height
            ),
        });
    }
    let (x, y) = anchor.place((width, height), (r.width, r.height));
    image::imageops::replace(&mut canvas, &content, x as i64, y as i64);
    Ok(canvas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    const T: [u8; 4] = [0, 0, 0, 0];

    fn img_from(rows: &[&str], palette: &[(char, [u8; 4])]) -> RgbaImage {
        let h = rows.len() as u32;
        let w = rows.first().map_or(0, |r| r.len()) as u32;
        RgbaImage::from_fn(w, h, |x, y| {
            let ch = rows[y as usize].as_bytes()[x as usize] as char;
            Rgba(
                palette
                    .iter()
                    .find(|(c, _)| *c == ch)
                    .map_or(T, |(_, v)| *v),
            )
        })
    }

    #[test]
    fn content_bounds_finds_box_and_none_when_transparent() {
        let img = img_from(&["....", "..#.", ".#..", "...."], &[('#', [1, 2, 3, 255])]);
        assert_eq!(
            content_bounds(&img),
            Some(Rect {
                x: 1,
                y: 1,
                width: 2,
                height: 2
            })
        );
        assert_eq!(content_bounds(&RgbaImage::new(5, 5)), None);
        assert_eq!(content_bounds(&RgbaImage::new(0, 5)), None);
    }

    #[test]
    fn options_are_plain_serde_data() {
        let d: OutlineOptions = serde_json::from_str("{}").expect("defaults");
        assert_eq!(d, OutlineOptions::default());
        let o: OutlineOptions = serde_json::from_str(
            r#"{"connectivity":"four","placement":"inner","color":[1,2,3,4]}"#,
        )
        .expect("parse");
        assert_eq!(o.connectivity, Connectivity::Four);
        assert_eq!(o.placement, OutlinePlacement::Inner);
        assert_eq!(o.color, [1, 2, 3, 4]);
        let a: Anchor = serde_json::from_str(r#""bottom_center""#).expect("anchor");
        assert_eq!(a, Anchor::BottomCenter);
    }

    #[test]
    fn fit_rejects_absurd_canvas() {
        let img = RgbaImage::from_pixel(2, 2, Rgba([9, 9, 9, 255]));
        let err = fit_canvas(&img, MAX_CANVAS_SIDE + 1, 4, Anchor::Center).expect_err("too big");
        assert!(matches!(
            err,
            PixelError::InvalidOption { name: "canvas", .. }
        ));
    }

    #[test]
    fn tie_in_majority_goes_to_first_neighbour() {
        // Lone '#' with 4 'a' and 4 'b' neighbours, close to both but not "the same" as
        // either: N comes first in the tie order, so '#' becomes 'a'.
        let a = [100, 100, 100, 255];
        let b = [100, 100, 140, 255];
        let p = [100, 100, 120, 255];
        let mut cache = LabCache::new();
        let pl = cache.get([100, 100, 120]);
        for q in [[100, 100, 100], [100, 100, 140]] {
            let d = cache.get(q).dist(pl);
            assert!(
                d > STRAY_SAME_COLOR && d < STRAY_DETAIL_CONTRAST,
                "premise: {d}"
            );
        }
        let img = img_from(&["aaa", "a#b", "bbb"], &[('a', a), ('b', b), ('#', p)]);
        let (out, n) = remove_strays(&img, Connectivity::Eight);
        assert_eq!(n, 1);
        assert_eq!(out.get_pixel(1, 1).0, a);
        // Mirrored: now 'b' holds N and wins.
        let img = img_from(&["bbb", "b#a", "aaa"], &[('a', a), ('b', b), ('#', p)]);
        let (out, _) = remove_strays(&img, Connectivity::Eight);
        assert_eq!(out.get_pixel(1, 1).0, b);
    }
}
