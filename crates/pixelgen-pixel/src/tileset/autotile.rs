//! Autotiling: atlas indices for a map from its corner terrains (Wang) or cell terrains (blob).

use super::blob_bits::{E, N, NE, NW, S, SE, SW, W};
use super::wang_bits;
use super::{Terrain, TileCode, TilesetKind};
use crate::error::{PixelError, Result};

/// Checks that a grid of `len` values is `width` x `height` (as `what`).
fn check_grid(len: usize, width: usize, height: usize, what: &'static str) -> Result<()> {
    let want = width.checked_mul(height);
    if want != Some(len) {
        return Err(PixelError::InvalidOption {
            name: what,
            message: format!(
                "{len} values for a {width}x{height} grid: give exactly {} in row-major order",
                want.map_or_else(|| "that many (too many)".to_string(), |n| n.to_string())
            ),
        });
    }
    Ok(())
}

/// Wang atlas indices for a `width` x `height` map of tiles from its corner grid:
/// `corners` is `(width + 1) x (height + 1)` row-major (corner `(x, y)` is the top-left
/// corner of tile `(x, y)`), the result `width x height` row-major. Neighbouring tiles share
/// two corners, so every adjacent pair is in [`neighbours`](super::neighbours). Errors when
/// `corners` has the wrong length.
pub fn autotile_wang(corners: &[Terrain], width: usize, height: usize) -> Result<Vec<usize>> {
    let cw = width.saturating_add(1);
    let ch = height.saturating_add(1);
    check_grid(corners.len(), cw, ch, "corners")?;
    let at = |x: usize, y: usize| corners[y * cw + x].is_b();
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let mut code = 0u8;
            for (bit, set) in [
                (wang_bits::NW, at(x, y)),
                (wang_bits::NE, at(x + 1, y)),
                (wang_bits::SW, at(x, y + 1)),
                (wang_bits::SE, at(x + 1, y + 1)),
            ] {
                if set {
                    code |= bit;
                }
            }
            out.push(code as usize);
        }
    }
    Ok(out)
}

/// Blob atlas indices for a `width` x `height` map of cell terrains (row-major): an A cell
/// gets the plain A tile (index 0), a B cell the tile of its reduced neighbour code.
/// Neighbours outside the map count as the cell's own terrain, so B regions run on past the
/// map's edge instead of being closed by a shore there. Errors when `cells` has the wrong
/// length.
pub fn autotile_blob(cells: &[Terrain], width: usize, height: usize) -> Result<Vec<usize>> {
    check_grid(cells.len(), width, height, "cells")?;
    // Atlas index of every reduced code: 1 + its rank.
    let mut index_of = [0usize; 256];
    for (i, c) in TileCode::blob_codes().into_iter().enumerate() {
        index_of[c as usize] = i + 1;
    }
    debug_assert_eq!(TilesetKind::Blob.index_of(TileCode::Blob(255)), Some(47));
    let is_b = |x: usize, y: usize, dx: isize, dy: isize| {
        let (nx, ny) = (x.checked_add_signed(dx), y.checked_add_signed(dy));
        match (nx, ny) {
            (Some(nx), Some(ny)) if nx < width && ny < height => cells[ny * width + nx].is_b(),
            _ => cells[y * width + x].is_b(),
        }
    };
    let mut out = Vec::with_capacity(cells.len());
    for y in 0..height {
        for x in 0..width {
            if !cells[y * width + x].is_b() {
                out.push(0);
                continue;
            }
            let mut raw = 0u8;
            for (bit, dx, dy) in [
                (N, 0, -1),
                (NE, 1, -1),
                (E, 1, 0),
                (SE, 1, 1),
                (S, 0, 1),
                (SW, -1, 1),
                (W, -1, 0),
                (NW, -1, -1),
            ] {
                if is_b(x, y, dx, dy) {
                    raw |= bit;
                }
            }
            out.push(index_of[TileCode::reduce_blob(raw) as usize]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::neighbours;
    use super::*;
    use crate::tile::Axis;
    use Terrain::{A, B};
    use std::collections::HashSet;

    /// A deterministic pseudo-random terrain grid.
    fn random_grid(n: usize, seed: u64, b_share: u64) -> Vec<Terrain> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                Terrain::from_bit((s >> 33) % 100 < b_share)
            })
            .collect()
    }

    fn assert_adjacent_pairs_fit(kind: TilesetKind, map: &[usize], w: usize, h: usize) {
        let allowed: HashSet<(usize, usize, Axis)> = neighbours(kind).into_iter().collect();
        for y in 0..h {
            for x in 0..w {
                let t = map[y * w + x];
                assert!(t < kind.len());
                if x + 1 < w {
                    let pair = (t, map[y * w + x + 1], Axis::Horizontal);
                    assert!(allowed.contains(&pair), "{kind:?} {pair:?} at ({x},{y})");
                }
                if y + 1 < h {
                    let pair = (t, map[(y + 1) * w + x], Axis::Vertical);
                    assert!(allowed.contains(&pair), "{kind:?} {pair:?} at ({x},{y})");
                }
            }
        }
    }

    #[test]
    fn wang_codes_from_corners() {
        // 2x1 map, corners 3x2: B at the top-middle corner.
        let corners = [A, B, A, A, A, A];
        let map = autotile_wang(&corners, 2, 1).expect("map");
        assert_eq!(map, vec![wang_bits::NE as usize, wang_bits::NW as usize]);
        assert!(autotile_wang(&corners, 2, 2).is_err());
        assert_eq!(
            autotile_wang(&[A], 0, 0).expect("empty"),
            Vec::<usize>::new()
        );
        for seed in 0..20 {
            let (w, h) = (9, 7);
            let corners = random_grid((w + 1) * (h + 1), seed, 20 + seed * 3);
            let map = autotile_wang(&corners, w, h).expect("map");
            assert_eq!(map.len(), w * h);
            assert_adjacent_pairs_fit(TilesetKind::Wang, &map, w, h);
        }
    }

    #[test]
    fn blob_codes_from_cells() {
        // A 3x3 map with B in the middle row: the centre cell is B with W and E neighbours
        // and, beyond the map, nothing more.
        let cells = [A, A, A, B, B, B, A, A, A];
        let map = autotile_blob(&cells, 3, 3).expect("map");
        let idx = |c| TilesetKind::Blob.index_of(TileCode::Blob(c)).expect("code");
        // Left cell: W is off-map (counts as B), E is B.
        assert_eq!(
            map,
            vec![0, 0, 0, idx(E | W), idx(E | W), idx(E | W), 0, 0, 0]
        );
        // A lone B cell inside A.
        let cells = [A, A, A, A, B, A, A, A, A];
        assert_eq!(autotile_blob(&cells, 3, 3).expect("map")[4], idx(0));
        // All B: the full tile everywhere (off-map counts as B).
        assert_eq!(autotile_blob(&[B; 4], 2, 2).expect("map"), vec![47; 4]);
        assert!(autotile_blob(&cells, 2, 3).is_err());
        for seed in 0..20 {
            let (w, h) = (11, 8);
            let cells = random_grid(w * h, seed, 30 + seed * 3);
            let map = autotile_blob(&cells, w, h).expect("map");
            assert_adjacent_pairs_fit(TilesetKind::Blob, &map, w, h);
            for (t, c) in map.iter().zip(&cells) {
                assert_eq!(*t == 0, *c == A);
            }
        }
    }
}
