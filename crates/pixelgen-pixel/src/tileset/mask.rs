//! Terrain masks (255 = B, 0 = A) for every tile code, composing a tile from two terrain
//! bases, and the band a model may repaint around the A/B boundary.

use image::{GrayImage, Luma, RgbaImage};

use super::blob_bits::{E, N, NE, NW, S, SE, SW, W};
use super::{Side, TileCode};
use crate::error::{PixelError, Result};
use crate::sheet::MAX_SHEET_SIDE;

/// Smallest tile side [`terrain_mask`] draws (the blob zones need a quarter of the side).
pub const MIN_TILE_SIDE: u32 = 4;

/// Mask value of terrain B.
const B: u8 = 255;

/// The terrain mask of tile `code` at `width` x `height`: 255 where the tile shows terrain
/// B, 0 where it shows A.
///
/// Each outermost line is a function of its side's
/// [`edge_signature`](TileCode::edge_signature) and length only (see the module docs), so
/// neighbouring tiles agree on their facing lines. Wang interiors are the bilinear blend of
/// the corner values (edge lines see only their two corners) thresholded at 0.5; blob
/// interiors use 3x3 zones with rounded inner and outer corners.
///
/// Errors on a side below [`MIN_TILE_SIDE`] or above the sheet limit, or an invalid code.
pub fn terrain_mask(code: TileCode, width: u32, height: u32) -> Result<GrayImage> {
    if width < MIN_TILE_SIDE
        || height < MIN_TILE_SIDE
        || width > MAX_SHEET_SIDE
        || height > MAX_SHEET_SIDE
    {
        return Err(PixelError::InvalidOption {
            name: "tile_size",
            message: format!(
                "{width}x{height} cannot hold a terrain transition: use sides from \
                 {MIN_TILE_SIDE} to {MAX_SHEET_SIDE} px"
            ),
        });
    }
    code.check()?;
    let mut mask = GrayImage::from_fn(width, height, |x, y| {
        let b = match code {
            TileCode::Wang(c) => wang_is_b(c, width, height, x, y),
            TileCode::Blob(c) => blob_is_b(c, width, height, x, y),
            TileCode::PlainA => false,
        };
        Luma([if b { B } else { 0 }])
    });
    // The edge guarantee, by construction: every outer line from its signature alone.
    let (w, h) = (width, height);
    for (side, len) in [
        (Side::North, w),
        (Side::South, w),
        (Side::West, h),
        (Side::East, h),
    ] {
        let sig = code.edge_signature(side);
        for i in 0..len {
            let v = if edge_line_is_b(code, sig, len, i) {
                B
            } else {
                0
            };
            let (x, y) = match side {
                Side::North => (i, 0),
                Side::South => (i, h - 1),
                Side::West => (0, i),
                Side::East => (w - 1, i),
            };
            mask.put_pixel(x, y, Luma([v]));
        }
    }
    Ok(mask)
}

/// Position `i` of an outer line of length `len` with signature `sig`: B or not.
fn edge_line_is_b(code: TileCode, sig: u8, len: u32, i: u32) -> bool {
    match code {
        TileCode::Wang(_) => {
            let t = i as f32 / (len - 1) as f32;
            let (s, e) = (f32::from(sig & 1), f32::from((sig >> 1) & 1));
            (1.0 - t) * s + t * e > 0.5
        }
        TileCode::Blob(_) | TileCode::PlainA => {
            let k = zone(len);
            let bit = if i < k {
                0
            } else if i >= len - k {
                2
            } else {
                1
            };
            sig & (1 << bit) != 0
        }
    }
}

/// Width of a blob edge zone along a side of `len` pixels: a quarter, at least 1.
fn zone(len: u32) -> u32 {
    (len / 4).max(1)
}

/// Wang: bilinear blend of the corners over `x / (w - 1)`, `y / (h - 1)`, above 0.5 is B.
fn wang_is_b(c: u8, w: u32, h: u32, x: u32, y: u32) -> bool {
    use super::wang_bits::{NE as WNE, NW as WNW, SE as WSE, SW as WSW};
    let v = |bit: u8| f32::from(u8::from(c & bit != 0));
    let u = x as f32 / (w - 1) as f32;
    let t = y as f32 / (h - 1) as f32;
    let top = (1.0 - u) * v(WNW) + u * v(WNE);
    let bottom = (1.0 - u) * v(WSW) + u * v(WSE);
    (1.0 - t) * top + t * bottom > 0.5
}

/// Blob: 3x3 zones, see the module docs.
fn blob_is_b(c: u8, w: u32, h: u32, x: u32, y: u32) -> bool {
    let has = |bit: u8| c & bit != 0;
    let (zx, zy) = (zone(w), zone(h));
    let (kx, ky) = (zx as f32, zy as f32);
    let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
    // Distances of the pixel centre to the west, east, north and south sides.
    let (dw, de, dn, ds) = (px, w as f32 - px, py, h as f32 - py);
    let horizontal = if x < zx {
        Some((dw, W))
    } else if x >= w - zx {
        Some((de, E))
    } else {
        None
    };
    let vertical = if y < zy {
        Some((dn, N))
    } else if y >= h - zy {
        Some((ds, S))
    } else {
        None
    };
    match (horizontal, vertical) {
        (None, None) => {
            // Centre: B, with rounded convex corners where both sides beside one are A.
            let r = kx.min(ky);
            let (ox, oy) = (kx + r, ky + r);
            ![
                (de, dn, E, N),
                (de, ds, E, S),
                (dw, ds, W, S),
                (dw, dn, W, N),
            ]
            .into_iter()
            .any(|(dx, dy, sx, sy)| {
                !has(sx)
                    && !has(sy)
                    && dx < ox
                    && dy < oy
                    && (dx - ox).powi(2) + (dy - oy).powi(2) > r * r
            })
        }
        (Some((_, side)), None) | (None, Some((_, side))) => has(side),
        (Some((dx, sx)), Some((dy, sy))) => {
            if !(has(sx) && has(sy)) {
                return false;
            }
            let diagonal = match (sx, sy) {
                (E, N) => NE,
                (E, _) => SE,
                (_, S) => SW,
                _ => NW,
            };
            // An inner corner keeps a rounded A notch at the tile corner.
            has(diagonal) || (dx / (kx + 0.5)).powi(2) + (dy / (ky + 0.5)).powi(2) >= 1.0
        }
    }
}

/// Composes a tile: `b`'s pixel where `mask` is B (>= 128), `a`'s elsewhere. All three
/// must have the same size.
pub fn compose(mask: &GrayImage, a: &RgbaImage, b: &RgbaImage) -> Result<RgbaImage> {
    let dims = mask.dimensions();
    for (name, d) in [("a", a.dimensions()), ("b", b.dimensions())] {
        if d != dims {
            return Err(PixelError::InvalidOption {
                name,
                message: format!(
                    "terrain image {name} is {}x{} but the mask is {}x{}: draw both terrain \
                     bases at the tile size",
                    d.0, d.1, dims.0, dims.1
                ),
            });
        }
    }
    Ok(RgbaImage::from_fn(dims.0, dims.1, |x, y| {
        if mask.get_pixel(x, y)[0] >= 128 {
            *b.get_pixel(x, y)
        } else {
            *a.get_pixel(x, y)
        }
    }))
}

/// The pixels a model may repaint: 255 where the `(2 * band + 1)`-square around the pixel
/// (Chebyshev distance <= `band`) holds both terrains of `mask` (>= 128 is B), i.e. within
/// `band` pixels of the A/B boundary on either side; 0 elsewhere and always 0 within
/// `keep_border` pixels of the tile's outer edge, so the border lines that make tiles fit
/// stay as composed. `band` 0 or a one-terrain tile give an all-0 mask.
pub fn repaint_mask(mask: &GrayImage, band: u32, keep_border: u32) -> GrayImage {
    let (w, h) = mask.dimensions();
    let is_b = |x: u32, y: u32| mask.get_pixel(x, y)[0] >= 128;
    // Separable window: per row, whether [x - band, x + band] holds any A / any B.
    let (wu, hu) = (w as usize, h as usize);
    let mut any_a = vec![false; wu * hu];
    let mut any_b = vec![false; wu * hu];
    for y in 0..h {
        for x in 0..w {
            let lo = x.saturating_sub(band);
            let hi = x.saturating_add(band).min(w - 1);
            let i = y as usize * wu + x as usize;
            for xx in lo..=hi {
                if is_b(xx, y) {
                    any_b[i] = true;
                } else {
                    any_a[i] = true;
                }
            }
        }
    }
    GrayImage::from_fn(w, h, |x, y| {
        let inside = x >= keep_border
            && y >= keep_border
            && x < w.saturating_sub(keep_border)
            && y < h.saturating_sub(keep_border);
        if !inside || band == 0 {
            return Luma([0]);
        }
        let lo = y.saturating_sub(band);
        let hi = y.saturating_add(band).min(h - 1);
        let (mut a, mut b) = (false, false);
        for yy in lo..=hi {
            let i = yy as usize * wu + x as usize;
            a |= any_a[i];
            b |= any_b[i];
        }
        Luma([if a && b { 255 } else { 0 }])
    })
}

#[cfg(test)]
mod tests {
    use super::super::{TilesetKind, neighbours, wang_bits};
    use super::*;
    use crate::tile::Axis;
    use image::Rgba;

    const SIZES: [(u32, u32); 8] = [
        (4, 4),
        (8, 8),
        (16, 16),
        (32, 32),
        (48, 48),
        (12, 20),
        (33, 17),
        (5, 7),
    ];

    fn column(m: &GrayImage, x: u32) -> Vec<u8> {
        (0..m.height()).map(|y| m.get_pixel(x, y)[0]).collect()
    }

    fn row(m: &GrayImage, y: u32) -> Vec<u8> {
        (0..m.width()).map(|x| m.get_pixel(x, y)[0]).collect()
    }

    #[test]
    fn facing_lines_agree_for_every_neighbour_pair_and_size() {
        for kind in [TilesetKind::Wang, TilesetKind::Blob] {
            let pairs = neighbours(kind);
            for (w, h) in SIZES {
                let masks: Vec<GrayImage> = kind
                    .codes()
                    .into_iter()
                    .map(|c| terrain_mask(c, w, h).expect("mask"))
                    .collect();
                for &(a, b, axis) in &pairs {
                    let (ma, mb) = (&masks[a], &masks[b]);
                    match axis {
                        Axis::Horizontal => {
                            assert_eq!(column(ma, w - 1), column(mb, 0), "{kind:?} {w}x{h} {a}|{b}")
                        }
                        Axis::Vertical => {
                            assert_eq!(row(ma, h - 1), row(mb, 0), "{kind:?} {w}x{h} {a}/{b}")
                        }
                    }
                }
                // Each outer line is a function of its signature alone.
                for (i, &ci) in kind.codes().iter().enumerate() {
                    for (j, &cj) in kind.codes().iter().enumerate() {
                        for side in [Side::North, Side::East, Side::South, Side::West] {
                            if ci.edge_signature(side) != cj.edge_signature(side) {
                                continue;
                            }
                            let line = |m: &GrayImage| match side {
                                Side::North => row(m, 0),
                                Side::South => row(m, h - 1),
                                Side::West => column(m, 0),
                                Side::East => column(m, w - 1),
                            };
                            assert_eq!(line(&masks[i]), line(&masks[j]), "{w}x{h} {ci} {cj}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn wang_masks_show_their_corners() {
        for (w, h) in SIZES {
            for code in 0..16u8 {
                let m = terrain_mask(TileCode::Wang(code), w, h).expect("mask");
                let at = |x, y| m.get_pixel(x, y)[0] == B;
                assert_eq!(at(w - 1, 0), code & wang_bits::NE != 0);
                assert_eq!(at(w - 1, h - 1), code & wang_bits::SE != 0);
                assert_eq!(at(0, h - 1), code & wang_bits::SW != 0);
                assert_eq!(at(0, 0), code & wang_bits::NW != 0);
            }
        }
        let all = |c, v| {
            terrain_mask(TileCode::Wang(c), 16, 16)
                .expect("mask")
                .pixels()
                .all(|p| p[0] == v)
        };
        assert!(all(0, 0) && all(15, B));
        // Two east corners: exactly the east half.
        let m = terrain_mask(TileCode::Wang(3), 16, 8).expect("mask");
        for y in 0..8 {
            assert_eq!(row(&m, y), [vec![0; 8], vec![B; 8]].concat());
        }
        // One corner: a curved patch, smaller than a quarter.
        let m = terrain_mask(TileCode::Wang(wang_bits::NE), 16, 16).expect("mask");
        let count = m.pixels().filter(|p| p[0] == B).count();
        assert!((16..64).contains(&count), "{count}");
        assert_eq!(m.get_pixel(12, 3)[0], B);
        assert_eq!(m.get_pixel(8, 7)[0], 0);
    }

    #[test]
    fn blob_masks_follow_their_zones() {
        use crate::tileset::blob_bits::*;
        let m = terrain_mask(TileCode::Blob(0), 16, 16).expect("mask");
        // Isolated blob: B centre with rounded corners, A border zones.
        assert_eq!(m.get_pixel(8, 8)[0], B);
        assert_eq!(m.get_pixel(4, 4)[0], 0, "rounded convex corner");
        assert_eq!(m.get_pixel(6, 4)[0], B);
        assert!(row(&m, 0).iter().chain(&column(&m, 15)).all(|&v| v == 0));
        // N|NE|E: north and east strips and the NE corner are B, the rest of the border A.
        let m = terrain_mask(TileCode::Blob(N | NE | E), 16, 16).expect("mask");
        assert_eq!(row(&m, 0), [vec![0; 4], vec![B; 12]].concat());
        assert_eq!(column(&m, 15), [vec![B; 12], vec![0; 4]].concat());
        assert_eq!(m.get_pixel(15, 0)[0], B);
        assert_eq!(m.get_pixel(1, 8)[0], 0);
        // N|E without NE: an inner corner notch of A at the NE corner.
        let m = terrain_mask(TileCode::Blob(N | E), 16, 16).expect("mask");
        assert_eq!(m.get_pixel(15, 0)[0], 0);
        assert_eq!(m.get_pixel(12, 3)[0], B);
        assert_eq!(row(&m, 0), [vec![0; 4], vec![B; 8], vec![0; 4]].concat());
        assert!(
            terrain_mask(TileCode::Blob(255), 8, 8)
                .expect("m")
                .pixels()
                .all(|p| p[0] == B)
        );
        assert!(
            terrain_mask(TileCode::PlainA, 8, 8)
                .expect("m")
                .pixels()
                .all(|p| p[0] == 0)
        );
    }

    #[test]
    fn rejects_small_sizes_and_bad_codes() {
        assert!(terrain_mask(TileCode::Wang(1), 3, 8).is_err());
        assert!(terrain_mask(TileCode::Wang(1), 8, 0).is_err());
        assert!(terrain_mask(TileCode::Wang(16), 8, 8).is_err());
        assert!(terrain_mask(TileCode::Blob(2), 8, 8).is_err());
    }

    #[test]
    fn compose_takes_b_where_the_mask_says_so() {
        let a = RgbaImage::from_pixel(8, 8, Rgba([10, 200, 10, 255]));
        let b = RgbaImage::from_fn(8, 8, |x, y| Rgba([0, 0, (x * 20 + y) as u8, 255]));
        let m = terrain_mask(TileCode::Wang(3), 8, 8).expect("mask");
        let t = compose(&m, &a, &b).expect("compose");
        assert_eq!(t.get_pixel(1, 2), a.get_pixel(1, 2));
        assert_eq!(t.get_pixel(6, 2), &Rgba([0, 0, 122, 255]));
        let small = RgbaImage::new(4, 8);
        let err = compose(&m, &a, &small).expect_err("size");
        assert!(err.to_string().contains("4x8"), "{err}");
        assert!(compose(&m, &small, &b).is_err());
    }

    #[test]
    fn repaint_band_around_the_boundary_keeps_the_border() {
        // East half B: boundary between x = 7 and x = 8.
        let m = terrain_mask(TileCode::Wang(3), 16, 16).expect("mask");
        let r = repaint_mask(&m, 2, 1);
        for y in 0..16 {
            for x in 0..16 {
                let want = (1..15).contains(&y) && (6..10).contains(&x);
                assert_eq!(r.get_pixel(x, y)[0] == 255, want, "({x},{y})");
            }
        }
        let r = repaint_mask(&m, 1, 0);
        assert_eq!(row(&r, 0), [vec![0; 7], vec![255; 2], vec![0; 7]].concat());
        for code in [0, 15] {
            let plain = terrain_mask(TileCode::Wang(code), 16, 16).expect("mask");
            assert!(repaint_mask(&plain, 4, 0).pixels().all(|p| p[0] == 0));
        }
        assert!(repaint_mask(&m, 0, 0).pixels().all(|p| p[0] == 0));
        assert!(repaint_mask(&m, 3, 8).pixels().all(|p| p[0] == 0));
        // Chebyshev: a diagonal step counts as distance 1.
        let one = terrain_mask(TileCode::Blob(0), 16, 16).expect("mask");
        let r = repaint_mask(&one, 1, 0);
        assert!(r.pixels().any(|p| p[0] == 255));
        assert_eq!(r.get_pixel(8, 8)[0], 0);
    }
}
