//! Tile codes: which corners (Wang) or neighbours (blob) of a tile are terrain B, their atlas
//! order, stable names and the edge signatures that decide which tiles may sit side by side.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Terrain, TilesetKind, blob_bits, wang_bits};
use crate::error::{PixelError, Result};

/// One tile of a two-terrain tileset.
///
/// Serialises as its [`name`](TileCode::name) (`"wang-0101"`, `"blob-255"`, `"plain-a"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TileCode {
    /// A Wang 2-corner tile: bits [`wang_bits`] set where the corner is terrain B (0..=15).
    Wang(u8),
    /// A blob tile of a terrain-B cell: its reduced neighbour bits [`blob_bits`] (one of the
    /// 47 values [`TileCode::reduce_blob`] keeps unchanged).
    Blob(u8),
    /// The plain terrain-A tile of a blob tileset (a cell of terrain A).
    PlainA,
}

/// One side of a tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The top row.
    North,
    /// The right column.
    East,
    /// The bottom row.
    South,
    /// The left column.
    West,
}

impl TileCode {
    /// Reduces raw blob neighbour bits: a corner bit stays only when both edge bits next to
    /// it are set (NE needs N and E, ...). 256 raw values give the 47 blob codes.
    pub fn reduce_blob(raw: u8) -> u8 {
        use blob_bits::*;
        let mut out = raw & (N | E | S | W);
        for (corner, e1, e2) in [(NE, N, E), (SE, S, E), (SW, S, W), (NW, N, W)] {
            if raw & corner != 0 && raw & e1 != 0 && raw & e2 != 0 {
                out |= corner;
            }
        }
        out
    }

    /// The 47 reduced blob codes in ascending order.
    pub fn blob_codes() -> Vec<u8> {
        (0..=255u8).filter(|&c| Self::reduce_blob(c) == c).collect()
    }

    /// The tileset kind this code belongs to ([`TileCode::PlainA`] is a blob tile).
    pub fn kind(self) -> TilesetKind {
        match self {
            TileCode::Wang(_) => TilesetKind::Wang,
            TileCode::Blob(_) | TileCode::PlainA => TilesetKind::Blob,
        }
    }

    /// `true` for a Wang code 0..=15, a reduced blob code, or [`TileCode::PlainA`].
    pub fn is_valid(self) -> bool {
        match self {
            TileCode::Wang(c) => c <= 15,
            TileCode::Blob(c) => Self::reduce_blob(c) == c,
            TileCode::PlainA => true,
        }
    }

    /// Errors with [`PixelError::InvalidOption`] unless [`is_valid`](Self::is_valid).
    pub fn check(self) -> Result<()> {
        if self.is_valid() {
            Ok(())
        } else {
            Err(PixelError::InvalidOption {
                name: "code",
                message: format!(
                    "{self:?} is not a tile code: Wang codes are 0..=15, blob codes are reduced \
                     (a corner bit only with both its edge bits; see TileCode::reduce_blob)"
                ),
            })
        }
    }

    /// The single terrain of a tile that shows only one: Wang 0 and [`TileCode::PlainA`]
    /// give A, Wang 15 and Blob 255 give B; `None` for transition tiles.
    pub fn plain(self) -> Option<Terrain> {
        match self {
            TileCode::Wang(0) | TileCode::PlainA => Some(Terrain::A),
            TileCode::Wang(15) | TileCode::Blob(255) => Some(Terrain::B),
            _ => None,
        }
    }

    /// A stable short name for frame names and tags: `wang-NWSWSENE` as four binary digits
    /// of the code (`wang-0101` = SE and NE are B, i.e. code 5), `blob-DDD` with the reduced
    /// code in three decimal digits (`blob-007` = N, NE, E), `plain-a`.
    pub fn name(self) -> String {
        match self {
            TileCode::Wang(c) => format!("wang-{c:04b}"),
            TileCode::Blob(c) => format!("blob-{c:03}"),
            TileCode::PlainA => "plain-a".to_string(),
        }
    }

    /// Parses a [`name`](Self::name) back; errors on anything else or an invalid code.
    pub fn from_name(name: &str) -> Result<Self> {
        let bad = || PixelError::InvalidOption {
            name: "code",
            message: format!(
                "`{name}` is not a tile name: use wang-0000..wang-1111, blob-000..blob-255 \
                 (reduced codes) or plain-a"
            ),
        };
        let code = if name == "plain-a" {
            TileCode::PlainA
        } else if let Some(bits) = name.strip_prefix("wang-") {
            if bits.len() != 4 {
                return Err(bad());
            }
            TileCode::Wang(u8::from_str_radix(bits, 2).map_err(|_| bad())?)
        } else if let Some(num) = name.strip_prefix("blob-") {
            if num.len() != 3 || !num.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            TileCode::Blob(num.parse().map_err(|_| bad())?)
        } else {
            return Err(bad());
        };
        if code.is_valid() {
            Ok(code)
        } else {
            Err(bad())
        }
    }

    /// Terrain at the Wang corners `[NE, SE, SW, NW]`; `None` for blob codes.
    pub fn wang_corners(self) -> Option<[Terrain; 4]> {
        let TileCode::Wang(c) = self else {
            return None;
        };
        let t = |bit: u8| Terrain::from_bit(c & bit != 0);
        Some([
            t(wang_bits::NE),
            t(wang_bits::SE),
            t(wang_bits::SW),
            t(wang_bits::NW),
        ])
    }

    /// What the tile's outermost line on `side` shows, as bits read along the line (top to
    /// bottom for columns, left to right for rows); the terrain mask's line on that side is a
    /// function of this value (and the line length) only, so tiles whose facing signatures
    /// are equal may sit side by side.
    ///
    /// - Wang: 2 bits, the corner at the line's start (bit 0) and end (bit 1).
    /// - Blob: 3 bits, the reduced corner at the start (bit 0), the edge bit (bit 1) and the
    ///   reduced corner at the end (bit 2); [`TileCode::PlainA`] is 0 (all A), like a blob
    ///   tile whose neighbour on that side is A.
    pub fn edge_signature(self, side: Side) -> u8 {
        match self {
            TileCode::Wang(c) => {
                use wang_bits::*;
                let (s, e) = match side {
                    Side::North => (NW, NE),
                    Side::East => (NE, SE),
                    Side::South => (SW, SE),
                    Side::West => (NW, SW),
                };
                u8::from(c & s != 0) | (u8::from(c & e != 0) << 1)
            }
            TileCode::Blob(c) => {
                use blob_bits::*;
                let (s, m, e) = match side {
                    Side::North => (NW, N, NE),
                    Side::East => (NE, E, SE),
                    Side::South => (SW, S, SE),
                    Side::West => (NW, W, SW),
                };
                let c = Self::reduce_blob(c);
                u8::from(c & s != 0) | (u8::from(c & m != 0) << 1) | (u8::from(c & e != 0) << 2)
            }
            TileCode::PlainA => 0,
        }
    }
}

impl fmt::Display for TileCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl From<TileCode> for String {
    fn from(code: TileCode) -> Self {
        code.name()
    }
}

impl TryFrom<String> for TileCode {
    type Error = PixelError;

    fn try_from(name: String) -> Result<Self> {
        Self::from_name(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_seven_blob_codes_and_reduction() {
        let codes = TileCode::blob_codes();
        assert_eq!(codes.len(), 47);
        assert_eq!((codes[0], codes[46]), (0, 255));
        use blob_bits::*;
        assert_eq!(TileCode::reduce_blob(NE), 0);
        assert_eq!(TileCode::reduce_blob(N | NE), N);
        assert_eq!(TileCode::reduce_blob(N | NE | E), N | NE | E);
        assert_eq!(TileCode::reduce_blob(0xFF), 0xFF);
        assert!((0..=255u8).all(|r| codes.contains(&TileCode::reduce_blob(r))));
    }

    #[test]
    fn names_round_trip_and_reject_junk() {
        assert_eq!(TileCode::Wang(5).name(), "wang-0101");
        assert_eq!(TileCode::Blob(7).name(), "blob-007");
        assert_eq!(TileCode::PlainA.to_string(), "plain-a");
        for code in TilesetKind::Wang
            .codes()
            .into_iter()
            .chain(TilesetKind::Blob.codes())
        {
            assert_eq!(TileCode::from_name(&code.name()).expect("own name"), code);
            let json = serde_json::to_string(&code).expect("json");
            assert_eq!(json, format!("\"{}\"", code.name()));
            assert_eq!(serde_json::from_str::<TileCode>(&json).expect("back"), code);
        }
        for junk in [
            "wang-2",
            "wang-10000",
            "blob-003",
            "blob-1",
            "blob-abc",
            "plain-b",
            "",
        ] {
            assert!(TileCode::from_name(junk).is_err(), "{junk}");
        }
        assert!(TileCode::Wang(16).check().is_err());
        assert!(TileCode::Blob(2).check().is_err());
    }

    #[test]
    fn plain_tiles_and_corners() {
        assert_eq!(TileCode::Wang(0).plain(), Some(Terrain::A));
        assert_eq!(TileCode::Wang(15).plain(), Some(Terrain::B));
        assert_eq!(TileCode::Blob(255).plain(), Some(Terrain::B));
        assert_eq!(TileCode::PlainA.plain(), Some(Terrain::A));
        assert_eq!(TileCode::Blob(0).plain(), None);
        assert_eq!(TileCode::Wang(5).plain(), None);
        for kind in [TilesetKind::Wang, TilesetKind::Blob] {
            for t in [Terrain::A, Terrain::B] {
                let tile = kind.plain_tile(t);
                assert_eq!(tile.plain(), Some(t));
                assert!(kind.index_of(tile).is_some(), "{kind:?} has its {t:?} tile");
            }
        }
        use Terrain::{A, B};
        assert_eq!(TileCode::Wang(9).wang_corners(), Some([B, A, A, B]));
        assert_eq!(TileCode::Blob(9).wang_corners(), None);
    }

    #[test]
    fn signatures_read_along_the_line() {
        // Wang NE only: east column starts B (top) and ends A; north row ends B.
        let ne = TileCode::Wang(wang_bits::NE);
        assert_eq!(ne.edge_signature(Side::East), 0b01);
        assert_eq!(ne.edge_signature(Side::North), 0b10);
        assert_eq!(ne.edge_signature(Side::West), 0);
        use blob_bits::*;
        let c = TileCode::Blob(N | NE | E);
        assert_eq!(c.edge_signature(Side::East), 0b011);
        assert_eq!(c.edge_signature(Side::North), 0b110);
        assert_eq!(c.edge_signature(Side::South), 0);
        assert_eq!(TileCode::PlainA.edge_signature(Side::West), 0);
    }
}
