//! Two-terrain tilesets (Wang 2-corner and blob 47): tile codes, terrain masks, autotiling,
//! seam checks between neighbouring tiles, Tiled `.tsx` export and engine index tables.
//!
//! Everything here is pure pixel logic: a generator draws a seamless base tile of each
//! terrain (A and B), [`compose`]s every transition tile from the two by its
//! [`terrain_mask`], repaints only the [`repaint_mask`] band around the A/B boundary (keeping
//! the tile's outer border), packs the atlas and checks it with [`seam_report`].
//!
//! # Codes
//!
//! **Wang 2-corner** ([`TilesetKind::Wang`], 16 tiles, atlas index = code): four corner bits,
//! set where that corner is terrain B. Code 0 is all A, 15 all B.
//!
//! ```text
//!  NW=8 ---- NE=1        code 1 (NE):   code 6 (SE+SW):
//!   |          |          . . . B B      . . . . .
//!   |   tile   |          . . . . B      . . . . .
//!   |          |          . . . . .      B B B B B
//!  SW=4 ---- SE=2         . . . . .      B B B B B
//! ```
//!
//! **Blob 47** ([`TilesetKind::Blob`], 48 tiles): a terrain-B cell's code is its eight
//! neighbour bits, set where that neighbour is B, reduced so a corner bit counts only when
//! both edge bits beside it are set ([`TileCode::reduce_blob`]). Atlas index 0 is the plain
//! A tile ([`TileCode::PlainA`]), then the 47 reduced codes ascending (index 47 = code 255).
//!
//! ```text
//!  NW=128  N=1  NE=2      code 1|2|4 = 7 (N, NE, E):   code 0 (isolated):
//!   W=64   [c]   E=4       . . B B B B                  . . . . . .
//!  SW=32  S=16  SE=8       . . B B B B                  . . B B . .
//!                          . . B B B B                  . B B B B .
//!                          . . B B . .                  . B B B B .
//!                          . . . . . .                  . . B B . .
//! ```
//!
//! Blob tiles are laid out in 3x3 zones (a quarter of the side for the edge zones): the
//! centre is B, an edge zone is B when its neighbour is, a corner zone is B when its reduced
//! corner bit is set, holds a rounded A notch for an inner corner (both edges B, diagonal A)
//! and is A otherwise; convex corners of the centre are rounded.
//!
//! # The edge guarantee
//!
//! A mask's outermost line on each side depends only on that side's
//! [`edge signature`](TileCode::edge_signature) (Wang: the two corners on it; blob: the
//! reduced corner, edge and reduced corner bits along it), for every tile size >= 4. So two
//! tiles that [`neighbours`] lists agree pixel for pixel on their facing lines, and tiles
//! composed from two seamless bases continue across every such edge.
//!
//! # Using the tiles
//!
//! [`autotile_wang`] and [`autotile_blob`] turn a terrain map into atlas indices,
//! [`TiledTileset::to_tsx`] writes a Tiled tileset with a wang set for its terrain brush, and
//! [`TileIndex`] maps codes (and variations) to atlas indices, which are Bevy
//! `TilemapChunk`'s `tileset_index` (array layers from [`atlas_to_layers`]) and
//! `bevy_ecs_tilemap`'s `TileTextureIndex` alike.
//!
//! ```
//! use image::{Rgba, RgbaImage};
//! use pixelgen_pixel::tile::DEFAULT_SEAM_THRESHOLD;
//! use pixelgen_pixel::tileset::*;
//!
//! let grass = RgbaImage::from_pixel(16, 16, Rgba([70, 160, 60, 255]));
//! let water = RgbaImage::from_pixel(16, 16, Rgba([40, 80, 200, 255]));
//! let kind = TilesetKind::Wang;
//! let tiles = kind
//!     .codes()
//!     .into_iter()
//!     .map(|code| compose(&terrain_mask(code, 16, 16)?, &grass, &water))
//!     .collect::<Result<Vec<_>, _>>()?;
//! // Tile 1 has water in its NE corner only.
//! assert_eq!(tiles[1].get_pixel(15, 0), &Rgba([40, 80, 200, 255]));
//! assert_eq!(tiles[1].get_pixel(0, 15), &Rgba([70, 160, 60, 255]));
//! let report = seam_report(kind, &tiles, DEFAULT_SEAM_THRESHOLD)?;
//! assert!(report.passed() && report.edges.len() == 128);
//! # Ok::<(), pixelgen_pixel::PixelError>(())
//! ```

mod autotile;
mod code;
mod index;
mod mask;
mod seams;
mod tiled;

use serde::{Deserialize, Serialize};

pub use crate::tile::{Axis, edge_score};
pub use autotile::{autotile_blob, autotile_wang};
pub use code::{Side, TileCode};
pub use index::{TileIndex, TileIndexEntry, atlas_to_layers};
pub use mask::{MIN_TILE_SIDE, compose, repaint_mask, terrain_mask};
pub use seams::{EdgeSeam, SeamReport, neighbours, seam_report, summary_line};
pub use tiled::TiledTileset;

/// Wang corner bits of a [`TileCode::Wang`] code (set = terrain B at that corner).
pub mod wang_bits {
    /// North-east (top-right) corner.
    pub const NE: u8 = 1;
    /// South-east (bottom-right) corner.
    pub const SE: u8 = 2;
    /// South-west (bottom-left) corner.
    pub const SW: u8 = 4;
    /// North-west (top-left) corner.
    pub const NW: u8 = 8;
}

/// Neighbour bits of a [`TileCode::Blob`] code (set = that neighbour cell is terrain B).
pub mod blob_bits {
    /// North (above).
    pub const N: u8 = 1;
    /// North-east.
    pub const NE: u8 = 2;
    /// East (right).
    pub const E: u8 = 4;
    /// South-east.
    pub const SE: u8 = 8;
    /// South (below).
    pub const S: u8 = 16;
    /// South-west.
    pub const SW: u8 = 32;
    /// West (left).
    pub const W: u8 = 64;
    /// North-west.
    pub const NW: u8 = 128;
}

/// One of the two terrains of a tileset (e.g. A = grass, B = water).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Terrain {
    /// The first terrain (mask value 0).
    A,
    /// The second terrain (mask value 255).
    B,
}

impl Terrain {
    /// [`Terrain::B`] for `true`, [`Terrain::A`] for `false`.
    pub fn from_bit(b: bool) -> Self {
        if b { Terrain::B } else { Terrain::A }
    }

    /// `true` for [`Terrain::B`] (the value of a code bit).
    pub fn is_b(self) -> bool {
        self == Terrain::B
    }
}

/// Which tileset layout: 16 Wang 2-corner tiles or 48 blob tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TilesetKind {
    /// Wang 2-corner: 16 tiles, atlas index = code.
    #[default]
    Wang,
    /// Blob 47 plus the plain A tile: 48 tiles.
    Blob,
}

impl TilesetKind {
    /// Every tile code in atlas order (see the module docs).
    pub fn codes(self) -> Vec<TileCode> {
        match self {
            TilesetKind::Wang => (0..16).map(TileCode::Wang).collect(),
            TilesetKind::Blob => std::iter::once(TileCode::PlainA)
                .chain(TileCode::blob_codes().into_iter().map(TileCode::Blob))
                .collect(),
        }
    }

    /// Number of tiles: 16 (Wang) or 48 (blob). A tileset is never empty.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        match self {
            TilesetKind::Wang => 16,
            TilesetKind::Blob => 48,
        }
    }

    /// The tile that is all `terrain` (the inverse of [`TileCode::plain`] for this kind).
    pub fn plain_tile(self, terrain: Terrain) -> TileCode {
        match (self, terrain) {
            (TilesetKind::Wang, Terrain::A) => TileCode::Wang(0),
            (TilesetKind::Wang, Terrain::B) => TileCode::Wang(15),
            (TilesetKind::Blob, Terrain::A) => TileCode::PlainA,
            (TilesetKind::Blob, Terrain::B) => TileCode::Blob(255),
        }
    }

    /// The code at atlas index `index`, `None` past the end.
    pub fn code_at(self, index: usize) -> Option<TileCode> {
        self.codes().get(index).copied()
    }

    /// The atlas index of `code`, `None` when it is not a tile of this kind.
    pub fn index_of(self, code: TileCode) -> Option<usize> {
        match (self, code) {
            (TilesetKind::Wang, TileCode::Wang(c)) if c < 16 => Some(c as usize),
            (TilesetKind::Blob, TileCode::PlainA) => Some(0),
            (TilesetKind::Blob, TileCode::Blob(c)) => TileCode::blob_codes()
                .iter()
                .position(|&x| x == c)
                .map(|i| i + 1),
            _ => None,
        }
    }

    /// The name used in files: `wang` or `blob`.
    pub fn name(self) -> &'static str {
        match self {
            TilesetKind::Wang => "wang",
            TilesetKind::Blob => "blob",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atlas_order_and_lookup() {
        for kind in [TilesetKind::Wang, TilesetKind::Blob] {
            let codes = kind.codes();
            assert_eq!(codes.len(), kind.len());
            for (i, &c) in codes.iter().enumerate() {
                assert_eq!(kind.index_of(c), Some(i));
                assert_eq!(kind.code_at(i), Some(c));
                assert!(c.is_valid() && c.kind() == kind);
            }
            assert_eq!(kind.code_at(kind.len()), None);
        }
        let blob = TilesetKind::Blob.codes();
        assert_eq!(blob[0], TileCode::PlainA);
        assert_eq!(blob[1], TileCode::Blob(0));
        assert_eq!(blob[47], TileCode::Blob(255));
        assert_eq!(TilesetKind::Wang.index_of(TileCode::Blob(0)), None);
        assert_eq!(TilesetKind::Blob.index_of(TileCode::Blob(2)), None);
        assert_eq!(TilesetKind::default(), TilesetKind::Wang);
        assert_eq!(
            serde_json::to_string(&TilesetKind::Blob).expect("json"),
            "\"blob\""
        );
        assert_eq!(serde_json::to_string(&Terrain::A).expect("json"), "\"a\"");
    }
}
