//! Which tiles may sit side by side, and how visible the seams between them are.

use image::RgbaImage;
use serde::{Deserialize, Serialize};

use super::{Side, TilesetKind};
use crate::error::{PixelError, Result, ensure_not_empty};
use crate::tile::{Axis, EDGE_DEPTH, Steps, check_threshold, ratio, shared_interior};

/// Every ordered pair `(a, b, axis)` of atlas indices whose facing mask lines agree, so `a`
/// may sit left of `b` ([`Axis::Horizontal`]) or above it ([`Axis::Vertical`]) in a map:
/// Wang needs `a.NE == b.NW && a.SE == b.SW` horizontally (and the like vertically); blob
/// needs equal edge signatures (reduced corner, edge, reduced corner). Every pair an
/// autotiled map places is listed. Horizontal pairs come first, each group in index order.
pub fn neighbours(kind: TilesetKind) -> Vec<(usize, usize, Axis)> {
    let codes = kind.codes();
    let mut out = Vec::new();
    for (axis, from, to) in [
        (Axis::Horizontal, Side::East, Side::West),
        (Axis::Vertical, Side::South, Side::North),
    ] {
        for (i, a) in codes.iter().enumerate() {
            for (j, b) in codes.iter().enumerate() {
                if a.edge_signature(from) == b.edge_signature(to) {
                    out.push((i, j, axis));
                }
            }
        }
    }
    out
}

/// The seam score of one edge between two tiles of a tileset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EdgeSeam {
    /// Atlas index of the left (or upper) tile.
    pub a: usize,
    /// Atlas index of the right (or lower) tile.
    pub b: usize,
    /// How the two meet.
    pub axis: Axis,
    /// [`edge_score`](crate::tile::edge_score) of the pair.
    pub score: f32,
}

/// [`SeamReport::summary`] from the counts: `edges` scored, `failing` above `threshold`,
/// the `worst` score.
pub fn summary_line(edges: usize, failing: usize, worst: f32, threshold: f32) -> String {
    if failing == 0 {
        format!("seams: all {edges} edges within {threshold:.2} (worst {worst:.2})")
    } else {
        format!("seams: {failing} of {edges} edges above {threshold:.2} (worst {worst:.2})")
    }
}

/// Seam scores of every edge [`neighbours`] lists, from [`seam_report`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeamReport {
    /// Every neighbour edge with its score, in [`neighbours`] order.
    pub edges: Vec<EdgeSeam>,
    /// The highest score (0 without edges).
    pub worst: f32,
    /// Indices into `edges` of the edges scoring over the threshold.
    pub failing: Vec<usize>,
}

impl SeamReport {
    /// `true` when no edge scores over the threshold.
    pub fn passed(&self) -> bool {
        self.failing.is_empty()
    }

    /// One line for people: `seams: all 128 edges within 1.50 (worst 0.42)` or
    /// `seams: 3 of 128 edges above 1.50 (worst 2.31)`; `threshold` is the one the report
    /// was made with.
    pub fn summary(&self, threshold: f32) -> String {
        summary_line(self.edges.len(), self.failing.len(), self.worst, threshold)
    }

    /// Atlas indices of the tiles on at least one failing edge, ascending: the tiles to
    /// regenerate (a tile with a broken border shows up with all its neighbours; the tiles
    /// that fail most often are the likely culprits, see [`failures_per_tile`](Self::failures_per_tile)).
    pub fn tiles_on_failing_edges(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .failing
            .iter()
            .flat_map(|&e| [self.edges[e].a, self.edges[e].b])
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `(atlas index, failing edges it is on)` for every tile on a failing edge, most
    /// failures first (ties by index).
    pub fn failures_per_tile(&self) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = self
            .tiles_on_failing_edges()
            .into_iter()
            .map(|t| {
                let n = self
                    .failing
                    .iter()
                    .filter(|&&e| self.edges[e].a == t || self.edges[e].b == t)
                    .count();
                (t, n)
            })
            .collect();
        out.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        out
    }
}

/// Scores every edge of a tileset: `tiles[i]` is the tile at atlas index `i` (all the same
/// size); each pair from [`neighbours`] gets its [`edge_score`](crate::tile::edge_score),
/// and those over `threshold` are failing (use
/// [`DEFAULT_SEAM_THRESHOLD`](crate::tile::DEFAULT_SEAM_THRESHOLD)).
///
/// Errors when `tiles.len() != kind.len()`, on empty or differently sized tiles, and on a
/// negative or non-finite threshold.
pub fn seam_report(kind: TilesetKind, tiles: &[RgbaImage], threshold: f32) -> Result<SeamReport> {
    check_threshold(threshold)?;
    if tiles.len() != kind.len() {
        return Err(PixelError::InvalidOption {
            name: "tiles",
            message: format!(
                "a {} tileset has {} tiles, got {}: give one tile per atlas index",
                kind.name(),
                kind.len(),
                tiles.len()
            ),
        });
    }
    let dims = tiles[0].dimensions();
    ensure_not_empty(dims.0, dims.1)?;
    if let Some((i, t)) = tiles
        .iter()
        .enumerate()
        .find(|(_, t)| t.dimensions() != dims)
    {
        return Err(PixelError::InvalidOption {
            name: "tiles",
            message: format!(
                "tile {i} is {}x{} but tile 0 is {}x{}: all tiles need one size",
                t.width(),
                t.height(),
                dims.0,
                dims.1
            ),
        });
    }
    let mut steps = Steps::new();
    // Each tile's steps next to each of its edges: [axis][leading, trailing].
    let near: Vec<[[Option<f64>; 2]; 2]> = tiles
        .iter()
        .map(|t| {
            [Axis::Horizontal, Axis::Vertical].map(|axis| {
                [false, true].map(|trailing| steps.near_edge(t, axis, trailing, EDGE_DEPTH))
            })
        })
        .collect();
    let slot = |axis: Axis| usize::from(axis == Axis::Vertical);
    let edges: Vec<EdgeSeam> = neighbours(kind)
        .into_iter()
        .map(|(a, b, axis)| {
            // `a`'s trailing edge meets `b`'s leading one.
            let reference = shared_interior(near[a][slot(axis)][1], near[b][slot(axis)][0]);
            let score = ratio(steps.across(&tiles[a], &tiles[b], axis), reference);
            EdgeSeam { a, b, axis, score }
        })
        .collect();
    let worst = edges.iter().map(|e| e.score).fold(0.0, f32::max);
    let failing = edges
        .iter()
        .enumerate()
        .filter(|(_, e)| e.score > threshold)
        .map(|(i, _)| i)
        .collect();
    Ok(SeamReport {
        edges,
        worst,
        failing,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{TileCode, compose, terrain_mask};
    use super::*;
    use crate::tile::{DEFAULT_SEAM_THRESHOLD, edge_score};
    use image::Rgba;

    /// Grass-like A: a 2x2 checker of two close greens with a periodic speckle (period 4).
    fn texture_a(w: u32, h: u32) -> RgbaImage {
        RgbaImage::from_fn(w, h, |x, y| {
            let g = if (x + y) % 2 == 0 { 150 } else { 135 };
            let r = if (x % 4, y % 4) == (1, 2) { 70 } else { 60 };
            Rgba([r, g, 50, 255])
        })
    }

    /// Water-like B: diagonal stripes, period 4 in both directions.
    fn texture_b(w: u32, h: u32) -> RgbaImage {
        RgbaImage::from_fn(w, h, |x, y| {
            let b = [200, 185, 170, 185][((x + y) % 4) as usize];
            Rgba([40, 80, b, 255])
        })
    }

    fn tileset(kind: TilesetKind, w: u32, h: u32) -> Vec<RgbaImage> {
        let (a, b) = (texture_a(w, h), texture_b(w, h));
        kind.codes()
            .into_iter()
            .map(|c| compose(&terrain_mask(c, w, h).expect("mask"), &a, &b).expect("compose"))
            .collect()
    }

    #[test]
    fn wang_neighbours_follow_the_corners() {
        let pairs = neighbours(TilesetKind::Wang);
        assert_eq!(pairs.len(), 128);
        for &(a, b, axis) in &pairs {
            let (a, b) = (a as u8, b as u8);
            let bit = |c: u8, m: u8| c & m != 0;
            use crate::tileset::wang_bits::*;
            match axis {
                Axis::Horizontal => {
                    assert!(bit(a, NE) == bit(b, NW) && bit(a, SE) == bit(b, SW))
                }
                Axis::Vertical => assert!(bit(a, SW) == bit(b, NW) && bit(a, SE) == bit(b, NE)),
            }
        }
        assert!(pairs.contains(&(0, 0, Axis::Horizontal)));
        assert!(pairs.contains(&(3, 12, Axis::Horizontal)));
        assert!(!pairs.contains(&(3, 0, Axis::Horizontal)));
        // Blob: the plain A tile fits next to any tile whose facing side is all A.
        let blob = neighbours(TilesetKind::Blob);
        assert!(blob.contains(&(0, 0, Axis::Vertical)));
        assert!(blob.contains(&(47, 47, Axis::Horizontal)));
        assert!(!blob.contains(&(0, 47, Axis::Horizontal)));
    }

    #[test]
    fn composed_tilesets_pass_at_many_sizes() {
        for kind in [TilesetKind::Wang, TilesetKind::Blob] {
            for (w, h) in [(8, 8), (16, 16), (32, 32), (16, 24)] {
                let tiles = tileset(kind, w, h);
                let report = seam_report(kind, &tiles, DEFAULT_SEAM_THRESHOLD).expect("report");
                assert_eq!(report.edges.len(), neighbours(kind).len());
                assert!(report.passed(), "{kind:?} {w}x{h}: worst {}", report.worst);
                assert!(report.worst > 0.0 && report.worst <= DEFAULT_SEAM_THRESHOLD);
                assert!(report.tiles_on_failing_edges().is_empty());
                // The report's scores are edge_score's.
                let e = report.edges[report.edges.len() / 2];
                let s = edge_score(&tiles[e.a], &tiles[e.b], e.axis).expect("score");
                assert_eq!(s, e.score);
            }
        }
    }

    #[test]
    fn a_broken_tile_fails_its_edges() {
        let kind = TilesetKind::Wang;
        let mut tiles = tileset(kind, 16, 16);
        // Tile 3 (east half B) drawn mirrored: B on its west half.
        tiles[3] = image::imageops::flip_horizontal(&tiles[3]);
        let report = seam_report(kind, &tiles, DEFAULT_SEAM_THRESHOLD).expect("report");
        assert!(!report.passed());
        assert!(report.worst > 2.0, "{}", report.worst);
        assert!(report.tiles_on_failing_edges().contains(&3));
        assert_eq!(report.failures_per_tile()[0].0, 3);
        for &e in &report.failing {
            let edge = report.edges[e];
            assert!(edge.a == 3 || edge.b == 3, "{edge:?}");
        }
        // Recoloured: a red tile fails every edge it is on.
        let mut tiles = tileset(TilesetKind::Blob, 16, 16);
        let target = TilesetKind::Blob
            .index_of(TileCode::Blob(255))
            .expect("index");
        tiles[target] = RgbaImage::from_pixel(16, 16, Rgba([220, 30, 30, 255]));
        let report = seam_report(TilesetKind::Blob, &tiles, DEFAULT_SEAM_THRESHOLD).expect("r");
        assert!(report.tiles_on_failing_edges().contains(&target));
        let on_target = report
            .edges
            .iter()
            .enumerate()
            .filter(|(_, e)| (e.a == target) != (e.b == target));
        for (i, e) in on_target {
            assert!(report.failing.contains(&i), "{e:?}");
        }
        assert_eq!(report.failures_per_tile()[0].0, target);
    }

    #[test]
    fn rejects_bad_input() {
        let tiles = tileset(TilesetKind::Wang, 8, 8);
        assert!(seam_report(TilesetKind::Blob, &tiles, 1.5).is_err());
        assert!(seam_report(TilesetKind::Wang, &tiles, f32::NAN).is_err());
        let mut odd = tiles.clone();
        odd[4] = RgbaImage::new(8, 9);
        let err = seam_report(TilesetKind::Wang, &odd, 1.5).expect_err("size");
        assert!(err.to_string().contains("tile 4"), "{err}");
    }
}
