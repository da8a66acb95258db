//! The mask brush for "Repaint…" (inpainting): which pixels of a sprite the model redraws.
//!
//! [`MaskCanvas`] is plain data, one cell per sprite pixel, painted with a round brush and
//! written as the mask PNG an edit recipe names (white repaints, black keeps).
//! [`RepaintDialog`] is the open "Repaint…" view of one gallery item; its options live in
//! [`RepaintSettings`] (part of the saved editor settings). [`CanvasGrowth`] is its "Grow
//! canvas" part (outpainting): pixels added around the sprite, which the model draws.

use std::fmt;

use bevy::ecs::resource::Resource;
use image::{Rgba, RgbaImage};
use serde::{Deserialize, Serialize};

use pixelgen::{MAX_SIDE, Size};

use crate::request::TicketId;

/// The largest brush radius the panel offers, in sprite pixels.
pub const MAX_BRUSH_RADIUS: u32 = 32;

/// The most pixels "Grow canvas" adds on one side of a sprite.
pub const MAX_GROW: u32 = 64;

/// How far outside the canvas [`MaskCanvas::paint_line`] follows a line.
const FAR: i64 = 1 << 16;

/// One flag per sprite pixel: `true` repaints, `false` keeps.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct MaskCanvas {
    width: u32,
    height: u32,
    cells: Vec<bool>,
}

impl fmt::Debug for MaskCanvas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskCanvas")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("marked", &self.count())
            .finish()
    }
}

impl MaskCanvas {
    /// An empty (all keep) mask of `width` x `height` pixels.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            cells: vec![false; width as usize * height as usize],
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// `(width, height)`.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn index(&self, x: i64, y: i64) -> Option<usize> {
        let inside =
            (0..i64::from(self.width)).contains(&x) && (0..i64::from(self.height)).contains(&y);
        inside.then(|| y as usize * self.width as usize + x as usize)
    }

    /// Whether pixel (x, y) repaints (`false` outside the canvas).
    pub fn get(&self, x: i64, y: i64) -> bool {
        self.index(x, y).is_some_and(|i| self.cells[i])
    }

    /// Marks pixel (x, y) to repaint (`on`) or keep; outside the canvas nothing happens.
    pub fn set(&mut self, x: i64, y: i64, on: bool) {
        if let Some(i) = self.index(x, y) {
            self.cells[i] = on;
        }
    }

    /// One dab of a round brush centred on pixel (x, y): every pixel within `radius` pixels
    /// (centre to centre) is marked `on` (repaint) or cleared. Radius 0 is one pixel; the
    /// centre may lie outside the canvas (the part inside is painted). Returns whether a
    /// pixel changed.
    pub fn paint(&mut self, x: i64, y: i64, radius: u32, on: bool) -> bool {
        let r = i64::from(radius);
        let mut changed = false;
        let rows = y.saturating_sub(r).max(0)..=y.saturating_add(r).min(i64::from(self.height) - 1);
        for py in rows {
            let columns =
                x.saturating_sub(r).max(0)..=x.saturating_add(r).min(i64::from(self.width) - 1);
            for px in columns {
                let (dx, dy) = (px - x, py - y);
                // `+ r` rounds the disc out a little so small radii are not plus signs.
                if dx * dx + dy * dy <= r * r + r
                    && let Some(i) = self.index(px, py)
                    && self.cells[i] != on
                {
                    self.cells[i] = on;
                    changed = true;
                }
            }
        }
        changed
    }

    /// Dabs along the straight line from `from` to `to` (both painted), so a fast drag
    /// leaves no gaps. Returns whether a pixel changed.
    pub fn paint_line(&mut self, from: (i64, i64), to: (i64, i64), radius: u32, on: bool) -> bool {
        // Far-off points (a pointer way outside) are pulled in so the arithmetic stays small.
        let near = |v: i64| v.clamp(-FAR, FAR);
        let (from, to) = ((near(from.0), near(from.1)), (near(to.0), near(to.1)));
        let (dx, dy) = (to.0 - from.0, to.1 - from.1);
        let steps = dx.abs().max(dy.abs());
        let mut changed = false;
        for i in 0..=steps {
            let (x, y) = if steps == 0 {
                from
            } else {
                (
                    from.0 + (dx * i + dx.signum() * steps / 2) / steps,
                    from.1 + (dy * i + dy.signum() * steps / 2) / steps,
                )
            };
            changed |= self.paint(x, y, radius, on);
        }
        changed
    }

    /// Marks every pixel to repaint.
    pub fn fill(&mut self) {
        self.cells.fill(true);
    }

    /// Marks every pixel to keep.
    pub fn clear(&mut self) {
        self.cells.fill(false);
    }

    /// Swaps repaint and keep everywhere.
    pub fn invert(&mut self) {
        for c in &mut self.cells {
            *c = !*c;
        }
    }

    /// How many pixels repaint.
    pub fn count(&self) -> usize {
        self.cells.iter().filter(|c| **c).count()
    }

    /// Nothing to repaint (also true for a 0 x 0 canvas).
    pub fn is_empty(&self) -> bool {
        !self.cells.contains(&true)
    }

    /// Every pixel repaints (false for a 0 x 0 canvas).
    pub fn is_full(&self) -> bool {
        !self.cells.is_empty() && !self.cells.contains(&false)
    }

    /// The mask as an edit recipe's mask image: opaque white repaints, opaque black keeps.
    pub fn to_rgba(&self) -> RgbaImage {
        RgbaImage::from_fn(self.width, self.height, |x, y| {
            if self.get(i64::from(x), i64::from(y)) {
                Rgba([255, 255, 255, 255])
            } else {
                Rgba([0, 0, 0, 255])
            }
        })
    }

    /// Reads a mask image by the edit rule ([`pixelgen::edit::repaints`]): white repaints,
    /// black or transparent keeps.
    pub fn from_rgba(image: &RgbaImage) -> Self {
        Self {
            width: image.width(),
            height: image.height(),
            cells: image
                .pixels()
                .map(|p| pixelgen::edit::repaints(p.0))
                .collect(),
        }
    }
}

/// How "Repaint…" paints and repaints (kept with the editor settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RepaintSettings {
    /// Brush radius in sprite pixels (0: one pixel; up to [`MAX_BRUSH_RADIUS`]).
    pub brush: u32,
    /// How much of the masked part is redrawn, 0.05 to 1 (1: from noise).
    pub strength: f64,
    /// Blur radius of the mask at the generation size before it is binarised, 0 to
    /// [`pixelgen::MAX_MASK_BLUR`] model pixels (rounds corners, fills small holes).
    pub mask_blur: f64,
}

impl Default for RepaintSettings {
    fn default() -> Self {
        Self {
            brush: 1,
            strength: 0.8,
            mask_blur: 0.0,
        }
    }
}

impl RepaintSettings {
    /// The settings as the edit's inpaint options.
    pub fn inpaint(&self) -> pixelgen::InpaintParams {
        pixelgen::InpaintParams {
            strength: self.strength,
            mask_blur: self.mask_blur,
        }
    }

    /// Brings values from an edited settings file back into range.
    pub fn clamp(&mut self) {
        let d = Self::default();
        self.brush = self.brush.min(MAX_BRUSH_RADIUS);
        self.strength = if self.strength.is_finite() {
            self.strength.clamp(0.05, 1.0)
        } else {
            d.strength
        };
        self.mask_blur = if self.mask_blur.is_finite() {
            self.mask_blur.clamp(0.0, pixelgen::MAX_MASK_BLUR)
        } else {
            d.mask_blur
        };
    }
}

/// "Grow canvas" (outpainting): how many pixels are added on each side of a sprite. The
/// sprite keeps its pixels at ([`left`](Self::left), [`top`](Self::top)) of the grown canvas
/// and the model draws the rest. All zero: no growth (a plain repaint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CanvasGrowth {
    /// Columns added left of the sprite (0 to [`MAX_GROW`]).
    pub left: u32,
    /// Columns added right of the sprite (0 to [`MAX_GROW`]).
    pub right: u32,
    /// Rows added above the sprite (0 to [`MAX_GROW`]).
    pub top: u32,
    /// Rows added below the sprite (0 to [`MAX_GROW`]).
    pub bottom: u32,
}

impl CanvasGrowth {
    /// The same growth on every side (capped at [`MAX_GROW`]).
    pub fn all_round(pixels: u32) -> Self {
        let p = pixels.min(MAX_GROW);
        Self {
            left: p,
            right: p,
            top: p,
            bottom: p,
        }
    }

    /// A preset: the canvas `percent` % wider than a sprite `width` pixels wide, half the new
    /// columns on each side (the odd one on the right; each side capped at [`MAX_GROW`]).
    pub fn wider(width: u32, percent: u32) -> Self {
        let (left, right) = split(width, percent);
        Self {
            left,
            right,
            ..Self::default()
        }
    }

    /// A preset: the canvas `percent` % taller than a sprite `height` pixels high, half the
    /// new rows above and half below (the odd one below; each side capped at [`MAX_GROW`]).
    pub fn taller(height: u32, percent: u32) -> Self {
        let (top, bottom) = split(height, percent);
        Self {
            top,
            bottom,
            ..Self::default()
        }
    }

    /// Nothing is added.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// Where the sprite's top-left corner lands on the grown canvas: `(left, top)`.
    pub fn offset(&self) -> (u32, u32) {
        (self.left, self.top)
    }

    /// Brings hand-edited values back into 0..=[`MAX_GROW`].
    pub fn clamp(&mut self) {
        for side in [
            &mut self.left,
            &mut self.right,
            &mut self.top,
            &mut self.bottom,
        ] {
            *side = (*side).min(MAX_GROW);
        }
    }

    /// The grown canvas around a sprite of `size`. Errors (with the reason) when a side adds
    /// more than [`MAX_GROW`] pixels or the canvas would be larger than
    /// [`pixelgen::MAX_SIDE`].
    pub fn canvas(&self, size: Size) -> Result<Size, String> {
        let sides = [self.left, self.right, self.top, self.bottom];
        if let Some(side) = sides.iter().find(|s| **s > MAX_GROW) {
            return Err(format!(
                "growing a side by {side} px: at most {MAX_GROW} px a side"
            ));
        }
        let width = u64::from(size.width) + u64::from(self.left) + u64::from(self.right);
        let height = u64::from(size.height) + u64::from(self.top) + u64::from(self.bottom);
        if width > u64::from(MAX_SIDE) || height > u64::from(MAX_SIDE) {
            return Err(format!(
                "the grown canvas {width}x{height} is larger than {MAX_SIDE} px a side"
            ));
        }
        Ok(Size::new(width as u32, height as u32))
    }

    /// The generation size for the grown `canvas` of a sprite of `size` drawn at
    /// `generation`: grown in proportion (the model draws the sprite at the same scale),
    /// scaled down to fit [`pixelgen::MAX_SIDE`] when it would not, each side a multiple of
    /// 8 and never smaller than the canvas.
    pub fn generation_size(size: Size, generation: Size, canvas: Size) -> Size {
        let grow = |gen_side: u32, side: u32, grown: u32| {
            (u64::from(gen_side) * u64::from(grown)).div_ceil(u64::from(side.max(1)))
        };
        let (mut w, mut h) = (
            grow(generation.width, size.width, canvas.width),
            grow(generation.height, size.height, canvas.height),
        );
        let max = u64::from(MAX_SIDE);
        let longest = w.max(h);
        if longest > max {
            w = w * max / longest;
            h = h * max / longest;
        }
        let fit = |v: u64, side: u32| {
            let v = v.max(u64::from(side)).next_multiple_of(8).min(max);
            v as u32
        };
        Size::new(fit(w, canvas.width), fit(h, canvas.height))
    }
}

/// `percent` % of `side`, split in two halves (the odd pixel second), each at most
/// [`MAX_GROW`].
fn split(side: u32, percent: u32) -> (u32, u32) {
    let add = u64::from(side) * u64::from(percent) / 100;
    let first = (add / 2).min(u64::from(MAX_GROW)) as u32;
    let second = (add - add / 2).min(u64::from(MAX_GROW)) as u32;
    (first, second)
}

/// The open "Repaint…" view: the gallery item, the mask painted on it, the prompt and the
/// canvas growth.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct RepaintDialog {
    /// The item being repainted (`None`: the view is closed).
    pub item: Option<TicketId>,
    /// The mask, the item's size.
    pub mask: MaskCanvas,
    /// What to draw in the masked part (starts as the item's prompt).
    pub prompt: String,
    /// "Grow canvas": pixels added around the item (all zero: a plain repaint).
    pub grow: CanvasGrowth,
}

impl RepaintDialog {
    /// The view opened on `item`, a `width` x `height` sprite drawn from `prompt`, with an
    /// empty mask.
    pub fn open(item: TicketId, width: u32, height: u32, prompt: &str) -> Self {
        Self {
            item: Some(item),
            mask: MaskCanvas::new(width, height),
            prompt: prompt.to_owned(),
            grow: CanvasGrowth::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(m: &MaskCanvas) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for y in 0..i64::from(m.height()) {
            for x in 0..i64::from(m.width()) {
                if m.get(x, y) {
                    out.push((x, y));
                }
            }
        }
        out
    }

    #[test]
    fn a_new_mask_keeps_everything() {
        let m = MaskCanvas::new(4, 3);
        assert_eq!(m.dimensions(), (4, 3));
        assert!(m.is_empty() && !m.is_full());
        assert_eq!(m.count(), 0);
        let empty = MaskCanvas::new(0, 0);
        assert!(empty.is_empty() && !empty.is_full());
        assert_eq!(empty.to_rgba().dimensions(), (0, 0));
    }

    #[test]
    fn brushes_are_round_and_clipped_to_the_canvas() {
        let mut m = MaskCanvas::new(9, 9);
        assert!(m.paint(4, 4, 0, true));
        assert_eq!(marked(&m), vec![(4, 4)]);
        assert!(!m.paint(4, 4, 0, true), "painting again changes nothing");
        m.clear();
        m.paint(4, 4, 1, true);
        assert_eq!(m.count(), 9, "radius 1: a 3x3 block");
        m.clear();
        m.paint(4, 4, 2, true);
        // Radius 2: a 5x5 square without its four corners.
        assert_eq!(m.count(), 21);
        assert!(!m.get(2, 2) && !m.get(6, 6) && m.get(2, 4) && m.get(3, 3));
        // Erasing with the same brush takes it all back.
        assert!(m.paint(4, 4, 2, false));
        assert!(m.is_empty());
        // A dab centred outside paints only the part inside.
        m.paint(-1, 0, 1, true);
        assert_eq!(marked(&m), vec![(0, 0), (0, 1)]);
        m.paint(100, 100, 3, true);
        m.paint(i64::MIN / 4, i64::MAX / 4, 3, true);
        assert_eq!(m.count(), 2);
        m.set(8, 8, true);
        m.set(9, 8, true);
        assert!(m.get(8, 8) && !m.get(9, 8) && !m.get(-1, 0));
    }

    #[test]
    fn lines_leave_no_gaps() {
        let mut m = MaskCanvas::new(10, 5);
        assert!(m.paint_line((0, 0), (9, 4), 0, true));
        // Every column is marked once, ends included.
        for x in 0..10 {
            assert_eq!((0..5).filter(|&y| m.get(x, y)).count(), 1, "column {x}");
        }
        assert!(m.get(0, 0) && m.get(9, 4));
        m.clear();
        m.paint_line((3, 2), (3, 2), 0, true);
        assert_eq!(marked(&m), vec![(3, 2)]);
        m.paint_line((9, 2), (-20, 2), 0, false);
        assert!(m.is_empty());
    }

    #[test]
    fn fill_clear_invert() {
        let mut m = MaskCanvas::new(3, 2);
        m.fill();
        assert!(m.is_full() && !m.is_empty());
        m.set(1, 1, false);
        assert!(!m.is_full());
        m.invert();
        assert_eq!(marked(&m), vec![(1, 1)]);
        m.clear();
        assert!(m.is_empty());
        m.invert();
        assert!(m.is_full());
    }

    #[test]
    fn rgba_round_trip_white_repaints_black_and_transparent_keep() {
        let mut m = MaskCanvas::new(5, 4);
        m.paint(1, 1, 1, true);
        m.set(4, 3, true);
        let img = m.to_rgba();
        assert_eq!(img.dimensions(), (5, 4));
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255, 255]);
        assert_eq!(img.get_pixel(3, 0).0, [0, 0, 0, 255]);
        assert!(img.pixels().all(|p| p.0[3] == 255));
        let back = MaskCanvas::from_rgba(&img);
        assert_eq!(back, m);
        // The edit rule decides: transparent white keeps, grey above half repaints.
        let mut other = RgbaImage::from_pixel(2, 1, Rgba([255, 255, 255, 0]));
        other.put_pixel(1, 0, Rgba([200, 200, 200, 255]));
        let read = MaskCanvas::from_rgba(&other);
        assert!(!read.get(0, 0) && read.get(1, 0));
        assert_eq!(
            format!("{read:?}"),
            "MaskCanvas { width: 2, height: 1, marked: 1 }"
        );
    }

    #[test]
    fn growth_makes_the_canvas_and_a_proportional_generation_size() {
        let size = Size::new(32, 16);
        let g = CanvasGrowth {
            left: 8,
            right: 24,
            top: 0,
            bottom: 4,
        };
        assert_eq!(g.canvas(size).unwrap(), Size::new(64, 20));
        assert_eq!(g.offset(), (8, 0));
        assert!(!g.is_zero() && CanvasGrowth::default().is_zero());
        // Twice as wide, 20/16 as tall, at the sprite's scale; multiples of 8.
        let gen_size = CanvasGrowth::generation_size(size, Size::square(512), Size::new(64, 20));
        assert_eq!(gen_size, Size::new(1024, 640));
        // Past MAX_SIDE: scaled down, aspect kept, never below the canvas.
        let tiny = Size::square(8);
        let canvas = CanvasGrowth::all_round(64).canvas(tiny).unwrap();
        assert_eq!(canvas, Size::square(136));
        let big = CanvasGrowth::generation_size(tiny, Size::square(1024), canvas);
        assert_eq!(big, Size::square(MAX_SIDE));
        let odd =
            CanvasGrowth::generation_size(Size::square(10), Size::square(10), Size::new(13, 10));
        assert_eq!(odd, Size::new(16, 16));
        // Too much growth, or a canvas past MAX_SIDE, is refused.
        let mut far = CanvasGrowth::all_round(64);
        far.left = 65;
        assert!(far.canvas(size).unwrap_err().contains("at most 64"));
        far.clamp();
        assert_eq!(far, CanvasGrowth::all_round(64));
        let huge = Size::new(MAX_SIDE, 8);
        assert!(
            CanvasGrowth::wider(8, 100)
                .canvas(huge)
                .unwrap_err()
                .contains("larger than")
        );
        // Presets.
        assert_eq!(
            CanvasGrowth::wider(32, 50),
            CanvasGrowth {
                left: 8,
                right: 8,
                ..CanvasGrowth::default()
            }
        );
        assert_eq!(CanvasGrowth::taller(9, 100).offset(), (0, 4));
        assert_eq!(CanvasGrowth::taller(9, 100).bottom, 5);
        assert_eq!(CanvasGrowth::wider(256, 100).right, MAX_GROW);
    }

    #[test]
    fn settings_are_clamped() {
        let mut s = RepaintSettings {
            brush: 1000,
            strength: f64::NAN,
            mask_blur: -3.0,
        };
        s.clamp();
        assert_eq!(s.brush, MAX_BRUSH_RADIUS);
        assert_eq!(s.strength, 0.8);
        assert_eq!(s.mask_blur, 0.0);
        assert_eq!(s.inpaint().strength, 0.8);
    }
}
