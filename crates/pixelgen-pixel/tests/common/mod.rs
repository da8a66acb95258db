//! Synthetic test images with a known right answer: procedural sprites, and their
//! "AI-style" upscaled renderings (non-integer and drifting grids, offset, blur, noise, jitter).

#![allow(dead_code)]

use image::{Rgba, RgbaImage};
use pixelgen_pixel::color::Oklab;

/// A small seeded PRNG (SplitMix64), so that every test image is reproducible.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `lo..=hi`.
    pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i32
    }

    /// Uniform float in `0..1`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform float in `lo..hi`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
}

/// `k` random opaque colours, pairwise at least `min_dist` apart in OKLab (as the entries of
/// a real pixel-art palette are).
pub fn palette(rng: &mut Rng, k: usize, min_dist: f32) -> Vec<[u8; 4]> {
    let mut out: Vec<[u8; 4]> = Vec::new();
    let mut tries = 0;
    while out.len() < k && tries < 10_000 {
        tries += 1;
        let c = [
            rng.range(0, 255) as u8,
            rng.range(0, 255) as u8,
            rng.range(0, 255) as u8,
        ];
        let lab = Oklab::from_srgb(c);
        if out
            .iter()
            .all(|o| Oklab::from_srgb([o[0], o[1], o[2]]).dist(lab) >= min_dist)
        {
            out.push([c[0], c[1], c[2], 255]);
        }
    }
    out
}

/// A procedural sprite: a body with a 1-px outline, extra shapes (some outlined), 1-px lines,
/// a dither patch and single-pixel highlights, over a transparent or opaque background.
pub fn sprite(rng: &mut Rng, w: u32, h: u32, transparent: bool) -> RgbaImage {
    let pal = palette(rng, 10, 0.1);
    let bg = if transparent { [0, 0, 0, 0] } else { pal[0] };
    let mut img = RgbaImage::from_pixel(w, h, Rgba(bg));
    let pick = |rng: &mut Rng| pal[rng.range(1, pal.len() as i32 - 1) as usize];
    let outline = pal[1];
    // Body: an ellipse with an outline.
    let (cx, cy) = (
        w as f32 / 2.0 + rng.uniform(-1.5, 1.5),
        h as f32 / 2.0 + rng.uniform(-1.5, 1.5),
    );
    let (rx, ry) = (
        w as f32 * rng.uniform(0.28, 0.42),
        h as f32 * rng.uniform(0.28, 0.42),
    );
    let body = pick(rng);
    fill_shape(
        &mut img,
        |x, y| ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2) <= 1.0,
        body,
        Some(outline),
    );
    // A few rectangles and blobs, some outlined.
    for _ in 0..rng.range(2, 4) {
        let (x0, y0) = (
            rng.range(0, w as i32 - 3) as f32,
            rng.range(0, h as i32 - 3) as f32,
        );
        let (sw, sh) = (
            rng.range(2, (w / 3) as i32) as f32,
            rng.range(2, (h / 3) as i32) as f32,
        );
        let c = pick(rng);
        let edge = if rng.unit() < 0.5 {
            Some(pick(rng))
        } else {
            None
        };
        if rng.unit() < 0.5 {
            fill_shape(
                &mut img,
                |x, y| x >= x0 && x < x0 + sw && y >= y0 && y < y0 + sh,
                c,
                edge,
            );
        } else {
            let (ex, ey, erx, ery) = (x0 + sw / 2.0, y0 + sh / 2.0, sw / 2.0 + 0.5, sh / 2.0 + 0.5);
            fill_shape(
                &mut img,
                |x, y| ((x - ex) / erx).powi(2) + ((y - ey) / ery).powi(2) <= 1.0,
                c,
                edge,
            );
        }
    }
    // 1-px lines.
    let c = pick(rng);
    let ly = rng.range(1, h as i32 - 2) as u32;
    for x in rng.range(0, (w / 3) as i32) as u32..w - rng.range(0, (w / 3) as i32) as u32 {
        img.put_pixel(x, ly, Rgba(c));
    }
    let c = pick(rng);
    let lx = rng.range(1, w as i32 - 2) as u32;
    for y in rng.range(0, (h / 3) as i32) as u32..h - rng.range(0, (h / 3) as i32) as u32 {
        img.put_pixel(lx, y, Rgba(c));
    }
    // A 4x4 checkerboard dither patch.
    let (a, b) = (pick(rng), pick(rng));
    let (dx, dy) = (
        rng.range(0, w as i32 - 4) as u32,
        rng.range(0, h as i32 - 4) as u32,
    );
    for y in 0..4 {
        for x in 0..4 {
            img.put_pixel(dx + x, dy + y, Rgba(if (x + y) % 2 == 0 { a } else { b }));
        }
    }
    // Single-pixel highlights.
    for _ in 0..rng.range(3, 6) {
        let (x, y) = (
            rng.range(0, w as i32 - 1) as u32,
            rng.range(0, h as i32 - 1) as u32,
        );
        img.put_pixel(x, y, Rgba(pick(rng)));
    }
    img
}

/// Fills the pixels whose centre is inside `inside` with `fill`; those with a 4-neighbour
/// outside get `edge` instead when given (a 1-px outline).
fn fill_shape(
    img: &mut RgbaImage,
    inside: impl Fn(f32, f32) -> bool,
    fill: [u8; 4],
    edge: Option<[u8; 4]>,
) {
    let (w, h) = img.dimensions();
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            if !inside(fx, fy) {
                continue;
            }
            let border = [(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)]
                .iter()
                .any(|(dx, dy)| !inside(fx + dx, fy + dy));
            let c = match (border, edge) {
                (true, Some(e)) => e,
                _ => fill,
            };
            img.put_pixel(x, y, Rgba(c));
        }
    }
}

/// How to degrade a sprite into "AI pixel art".
#[derive(Debug, Clone, Copy)]
pub struct Degrade {
    /// Mean cell width in pixels.
    pub sx: f32,
    /// Mean cell height in pixels.
    pub sy: f32,
    /// Where the grid starts: > 0 pads (a partial strip before the sprite), < 0 crops the
    /// first cells.
    pub ox: f32,
    /// Same for y.
    pub oy: f32,
    /// Extra pixels after the sprite (< 0 crops the last cells).
    pub end_x: f32,
    /// Same for y.
    pub end_y: f32,
    /// Cell sizes vary by up to ± this many pixels (smoothly) across the image.
    pub drift: f32,
    /// Box blur radius (1 = 3x3, 2 = 5x5), 0 for none.
    pub blur: u32,
    /// Per-pixel, per-channel uniform RGB noise amplitude (±).
    pub noise: i32,
    /// Per-cell, per-channel uniform colour jitter amplitude (±).
    pub jitter: i32,
}

/// Cell boundaries along one axis: `cells + 1` increasing positions.
fn boundaries(cells: u32, s: f32, start: f32, drift: f32, phase: f32) -> Vec<f32> {
    let mut b = Vec::with_capacity(cells as usize + 1);
    let mut x = start;
    b.push(x);
    for j in 0..cells {
        let t = j as f32 / cells as f32;
        x += s + drift * (std::f32::consts::TAU * t + phase).sin();
        b.push(x);
    }
    b
}

/// Index of the cell containing `centre`, if any.
fn cell_of(b: &[f32], centre: f32) -> Option<usize> {
    if centre < b[0] || centre >= b[b.len() - 1] {
        return None;
    }
    Some(b.partition_point(|&v| v <= centre) - 1)
}

/// Renders `sprite` upscaled and degraded as described by `d`.
pub fn render(sprite: &RgbaImage, d: &Degrade, rng: &mut Rng) -> RgbaImage {
    let (w, h) = sprite.dimensions();
    let bx = boundaries(w, d.sx, d.ox, d.drift, 0.3);
    let by = boundaries(h, d.sy, d.oy, d.drift, 1.9);
    let cw = (bx[w as usize] + d.end_x).round().max(1.0) as u32;
    let ch = (by[h as usize] + d.end_y).round().max(1.0) as u32;
    let pad = if sprite.get_pixel(0, 0)[3] == 0 {
        [0, 0, 0, 0]
    } else {
        sprite.get_pixel(0, 0).0
    };
    let jitter: Vec<[i32; 3]> = (0..w * h)
        .map(|_| [0; 3].map(|_: i32| rng.range(-d.jitter, d.jitter)))
        .collect();
    let mut buf = vec![[0f32; 4]; (cw * ch) as usize];
    for y in 0..ch {
        let sy = cell_of(&by, y as f32 + 0.5);
        for x in 0..cw {
            let sx = cell_of(&bx, x as f32 + 0.5);
            let c = match (sx, sy) {
                (Some(i), Some(j)) => {
                    let p = sprite.get_pixel(i as u32, j as u32).0;
                    let jt = jitter[j * w as usize + i];
                    if p[3] == 0 {
                        p
                    } else {
                        [0, 1, 2, 3].map(|k| {
                            if k < 3 {
                                (p[k] as i32 + jt[k]).clamp(0, 255) as u8
                            } else {
                                p[3]
                            }
                        })
                    }
                }
                _ => pad,
            };
            buf[(y * cw + x) as usize] = c.map(|v| v as f32);
        }
    }
    let buf = box_blur(&buf, cw as usize, ch as usize, d.blur as usize);
    let mut out = RgbaImage::new(cw, ch);
    for (px, v) in out.pixels_mut().zip(&buf) {
        let mut c = [0u8; 4];
        for k in 0..4 {
            let n = if k < 3 {
                rng.range(-d.noise, d.noise) as f32
            } else {
                0.0
            };
            c[k] = (v[k] + n).round().clamp(0.0, 255.0) as u8;
        }
        *px = Rgba(c);
    }
    out
}

/// Separable box blur of radius `r` with clamped borders.
fn box_blur(src: &[[f32; 4]], w: usize, h: usize, r: usize) -> Vec<[f32; 4]> {
    if r == 0 {
        return src.to_vec();
    }
    let k = (2 * r + 1) as f32;
    let mut tmp = vec![[0f32; 4]; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = [0f32; 4];
            for d in -(r as i64)..=r as i64 {
                let xx = (x as i64 + d).clamp(0, w as i64 - 1) as usize;
                for c in 0..4 {
                    s[c] += src[y * w + xx][c];
                }
            }
            tmp[y * w + x] = s.map(|v| v / k);
        }
    }
    let mut out = vec![[0f32; 4]; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = [0f32; 4];
            for d in -(r as i64)..=r as i64 {
                let yy = (y as i64 + d).clamp(0, h as i64 - 1) as usize;
                for c in 0..4 {
                    s[c] += tmp[yy * w + x][c];
                }
            }
            out[y * w + x] = s.map(|v| v / k);
        }
    }
    out
}

/// Number of pixels with identical RGBA in two images of the same size.
pub fn exact_pixels(a: &RgbaImage, b: &RgbaImage) -> usize {
    a.pixels().zip(b.pixels()).filter(|(p, q)| p == q).count()
}

/// One degraded rendering: offsets of up to 30% of a cell (a crop when negative, a pad when
/// positive) at both ends, a 3x3 box blur below 8x and 5x5 from 8x, per-pixel noise and per-cell jitter.
pub fn degrade(rng: &mut Rng, sx: f32, sy: f32, noise: i32, jitter: i32) -> Degrade {
    Degrade {
        sx,
        sy,
        ox: rng.uniform(-0.3, 0.3) * sx,
        oy: rng.uniform(-0.3, 0.3) * sy,
        end_x: rng.uniform(-0.3, 0.3) * sx,
        end_y: rng.uniform(-0.3, 0.3) * sy,
        drift: 0.0,
        blur: if sx.min(sy) < 8.0 { 1 } else { 2 },
        noise,
        jitter,
    }
}
