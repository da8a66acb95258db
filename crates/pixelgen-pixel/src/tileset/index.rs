//! Index tables for game engines, and atlas-to-array-texture conversion.
//!
//! Both Bevy tilemaps address a tile by its atlas index: `TilemapChunk` takes a per-cell
//! `tileset_index` into an array texture whose layers are the tiles in atlas order (see
//! [`atlas_to_layers`]), and `bevy_ecs_tilemap` a `TileTextureIndex` into the atlas grid
//! (row-major). So one [`TileIndex`] serves both.

use image::RgbaImage;
use serde::{Deserialize, Serialize};

use super::{TileCode, TilesetKind};
use crate::error::{PixelError, Result};

/// The atlas indices of one tile code: the main tile, then its variations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileIndexEntry {
    /// The tile code (serialised as its name, e.g. `wang-0101`).
    pub code: TileCode,
    /// Atlas index of the main tile, then of each variation, in atlas order.
    pub indices: Vec<u32>,
}

/// Which atlas index shows which tile code: the table a game's autotiler looks up (feed it
/// the indices from [`autotile_wang`](super::autotile_wang) /
/// [`autotile_blob`](super::autotile_blob) codes, picking a variation per cell).
///
/// One table serves both Bevy tilemaps, since both address a tile by its atlas index:
/// `TilemapChunk` takes a per-cell `tileset_index` into an array texture whose layers are
/// the tiles in atlas order (build it with [`atlas_to_layers`]), and `bevy_ecs_tilemap` a
/// `TileTextureIndex` into the atlas grid (row-major, [`cell`](Self::cell) gives the grid
/// position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileIndex {
    /// Wang or blob.
    pub kind: TilesetKind,
    /// Tile width in pixels.
    pub tile_width: u32,
    /// Tile height in pixels.
    pub tile_height: u32,
    /// Tiles per atlas row.
    pub columns: u32,
    /// One entry per code present, in the kind's atlas order.
    pub entries: Vec<TileIndexEntry>,
}

impl TileIndex {
    /// Builds the table from the code of each atlas index (`tiles[i]` is shown by atlas
    /// index `i`); a repeated code becomes a variation, in order. Codes the atlas lacks get
    /// no entry. Errors on a zero tile size or column count and on a code that is not a
    /// valid tile of `kind`.
    pub fn new(
        kind: TilesetKind,
        tile_size: (u32, u32),
        columns: u32,
        tiles: &[TileCode],
    ) -> Result<Self> {
        if tile_size.0 == 0 || tile_size.1 == 0 || columns == 0 {
            return Err(PixelError::InvalidOption {
                name: "tile_size",
                message: format!(
                    "tiles of {}x{} in {columns} columns: give a tile size and column count \
                     of at least 1",
                    tile_size.0, tile_size.1
                ),
            });
        }
        let codes = kind.codes();
        let mut indices: Vec<Vec<u32>> = vec![Vec::new(); codes.len()];
        for (i, &code) in tiles.iter().enumerate() {
            let slot = kind
                .index_of(code)
                .ok_or_else(|| PixelError::InvalidOption {
                    name: "tiles",
                    message: format!(
                        "atlas index {i} holds {code:?}, not a tile of a {} tileset",
                        kind.name()
                    ),
                })?;
            indices[slot].push(i as u32);
        }
        let entries = codes
            .into_iter()
            .zip(indices)
            .filter(|(_, v)| !v.is_empty())
            .map(|(code, indices)| TileIndexEntry { code, indices })
            .collect();
        Ok(Self {
            kind,
            tile_width: tile_size.0,
            tile_height: tile_size.1,
            columns,
            entries,
        })
    }

    /// The atlas index of `code`'s variation `variant` (0 = the main tile).
    pub fn index_of(&self, code: TileCode, variant: usize) -> Option<u32> {
        self.entries
            .iter()
            .find(|e| e.code == code)
            .and_then(|e| e.indices.get(variant).copied())
    }

    /// How many tiles (main plus variations) show `code`.
    pub fn variants(&self, code: TileCode) -> usize {
        self.entries
            .iter()
            .find(|e| e.code == code)
            .map_or(0, |e| e.indices.len())
    }

    /// The `(column, row)` of atlas index `index` in the atlas grid.
    pub fn cell(&self, index: u32) -> (u32, u32) {
        (index % self.columns, index / self.columns)
    }
}

/// Stacks the first `count` tiles of a grid atlas (no spacing or margin; tile `i` at column
/// `i % columns`, row `i / columns`) top to bottom in atlas order: a `tile.0` x
/// `count * tile.1` image, what Bevy's `Image::reinterpret_stacked_2d_as_array(count)` turns
/// into an array texture whose layer `i` is atlas index `i`. Errors on a zero size, column
/// count or count, and when the atlas is too small for `count` tiles.
pub fn atlas_to_layers(
    atlas: &RgbaImage,
    tile: (u32, u32),
    columns: u32,
    count: u32,
) -> Result<RgbaImage> {
    let (tw, th) = tile;
    if tw == 0 || th == 0 || columns == 0 || count == 0 {
        return Err(PixelError::InvalidOption {
            name: "tile_size",
            message: format!(
                "{count} tiles of {tw}x{th} in {columns} columns: all must be at least 1"
            ),
        });
    }
    let rows = count.div_ceil(columns);
    let used_cols = columns.min(count);
    let need_w = u64::from(used_cols) * u64::from(tw);
    let need_h = u64::from(rows) * u64::from(th);
    let out_h = u64::from(count) * u64::from(th);
    if need_w > u64::from(atlas.width()) || need_h > u64::from(atlas.height()) {
        return Err(PixelError::InvalidOption {
            name: "atlas",
            message: format!(
                "{count} tiles of {tw}x{th} in {columns} columns need {need_w}x{need_h} px, \
                 the atlas is {}x{}",
                atlas.width(),
                atlas.height()
            ),
        });
    }
    let out_h = u32::try_from(out_h).map_err(|_| PixelError::InvalidOption {
        name: "count",
        message: format!("{count} layers of {th} px do not fit one image: use fewer tiles"),
    })?;
    let mut out = RgbaImage::new(tw, out_h);
    for i in 0..count {
        let (x0, y0) = ((i % columns) * tw, (i / columns) * th);
        for y in 0..th {
            for x in 0..tw {
                out.put_pixel(x, i * th + y, *atlas.get_pixel(x0 + x, y0 + y));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    #[test]
    fn variations_follow_the_main_tile() {
        let mut tiles = TilesetKind::Wang.codes();
        tiles.push(TileCode::Wang(0));
        tiles.push(TileCode::Wang(15));
        tiles.push(TileCode::Wang(0));
        let index = TileIndex::new(TilesetKind::Wang, (16, 16), 4, &tiles).expect("index");
        assert_eq!(index.entries.len(), 16);
        assert_eq!(index.index_of(TileCode::Wang(0), 0), Some(0));
        assert_eq!(index.index_of(TileCode::Wang(0), 1), Some(16));
        assert_eq!(index.index_of(TileCode::Wang(0), 2), Some(18));
        assert_eq!(index.index_of(TileCode::Wang(0), 3), None);
        assert_eq!(index.index_of(TileCode::Wang(15), 1), Some(17));
        assert_eq!(index.variants(TileCode::Wang(15)), 2);
        assert_eq!(index.index_of(TileCode::Wang(7), 0), Some(7));
        assert_eq!(index.index_of(TileCode::Blob(0), 0), None);
        assert_eq!(index.cell(17), (1, 4));
        let json = serde_json::to_string(&index).expect("json");
        assert!(
            json.contains(r#"{"code":"wang-0000","indices":[0,16,18]}"#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<TileIndex>(&json).expect("back"),
            index
        );
    }

    #[test]
    fn blob_table_and_bad_input() {
        // A partial blob atlas: plain A then the full B tile.
        let index = TileIndex::new(
            TilesetKind::Blob,
            (8, 8),
            2,
            &[TileCode::Blob(255), TileCode::PlainA],
        )
        .expect("index");
        assert_eq!(index.entries[0].code, TileCode::PlainA);
        assert_eq!(index.index_of(TileCode::PlainA, 0), Some(1));
        assert_eq!(index.index_of(TileCode::Blob(255), 0), Some(0));
        assert!(TileIndex::new(TilesetKind::Blob, (8, 8), 2, &[TileCode::Wang(1)]).is_err());
        assert!(TileIndex::new(TilesetKind::Blob, (8, 8), 2, &[TileCode::Blob(2)]).is_err());
        assert!(TileIndex::new(TilesetKind::Wang, (0, 8), 2, &[]).is_err());
        assert!(TileIndex::new(TilesetKind::Wang, (8, 8), 0, &[]).is_err());
    }

    #[test]
    fn layers_stack_tiles_in_atlas_order() {
        // 3 columns x 2 rows of 2x3 tiles; tile i is filled with red = i * 10 + pixel.
        let atlas = RgbaImage::from_fn(6, 6, |x, y| {
            let i = (y / 3) * 3 + x / 2;
            Rgba([(i * 10 + (y % 3) * 2 + x % 2) as u8, 0, 0, 255])
        });
        let layers = atlas_to_layers(&atlas, (2, 3), 3, 5).expect("layers");
        assert_eq!(layers.dimensions(), (2, 15));
        for i in 0..5 {
            for y in 0..3 {
                for x in 0..2 {
                    assert_eq!(layers.get_pixel(x, i * 3 + y)[0] as u32, i * 10 + y * 2 + x);
                }
            }
        }
        assert!(atlas_to_layers(&atlas, (2, 3), 3, 7).is_err());
        assert!(atlas_to_layers(&atlas, (4, 3), 3, 2).is_err());
        assert!(atlas_to_layers(&atlas, (2, 3), 0, 2).is_err());
        assert!(atlas_to_layers(&atlas, (0, 3), 3, 2).is_err());
    }
}
