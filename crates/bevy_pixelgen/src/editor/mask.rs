//! The mask brush for "Repaint…" (inpainting): which pixels of a sprite the model redraws.
//!
//! [`MaskCanvas`] is plain data, one cell per sprite pixel, painted with a round brush and
//! written as the mask PNG an edit recipe names (white repaints, black keeps).
//! [`RepaintDialog`] is the open "Repaint…" view of one gallery item; its options live in
//! [`RepaintSettings`] (part of the saved editor settings).

use std::fmt;

use bevy::ecs::resource::Resource;
use image::{Rgba, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::request::TicketId;

/// The largest brush radius the panel offers, in sprite pixels.
pub const MAX_BRUSH_RADIUS: u32 = 32;

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

/// The open "Repaint…" view: the gallery item, the mask painted on it and the prompt.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct RepaintDialog {
    /// The item being repainted (`None`: the view is closed).
    pub item: Option<TicketId>,
    /// The mask, the item's size.
    pub mask: MaskCanvas,
    /// What to draw in the masked part (starts as the item's prompt).
    pub prompt: String,
}

impl RepaintDialog {
    /// The view opened on `item`, a `width` x `height` sprite drawn from `prompt`, with an
    /// empty mask.
    pub fn open(item: TicketId, width: u32, height: u32, prompt: &str) -> Self {
        Self {
            item: Some(item),
            mask: MaskCanvas::new(width, height),
            prompt: prompt.to_owned(),
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
