//! Generated tilesets on Bevy's `TilemapChunk` (`bevy::sprite_render`).
//!
//! A tileset request ([`SpriteRequest::tileset`](crate::SpriteRequest::tileset)) finishes as
//! an atlas: one cell per tile, in the set's atlas order (see [`pixelgen::tileset`]).
//! `TilemapChunk` wants an *array texture* instead, whose layer `i` is atlas index `i`, and a
//! per-cell `tileset_index` with the chunk's bottom row first. [`tileset_array_image`] makes
//! the texture (nearest sampling, so pixel art stays crisp) and [`chunk_order`] turns the
//! row-major, top-row-first indices of
//! [`autotile_wang`](pixelgen_pixel::tileset::autotile_wang) /
//! [`autotile_blob`](pixelgen_pixel::tileset::autotile_blob) into the chunk's order.
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_pixelgen::prelude::*;
//! use bevy_pixelgen::tilemap::{chunk_order, tileset_array_image};
//!
//! fn on_finished(mut done: MessageReader<SpriteFinished>, mut images: ResMut<Assets<Image>>) {
//!     for m in done.read() {
//!         let Some(atlas) = images.get(&m.image) else { continue };
//!         match tileset_array_image(atlas, &m.recipe) {
//!             Ok(array) => {
//!                 let _tileset: Handle<Image> = images.add(array);
//!                 // TilemapChunk { tileset: _tileset, .. } with TilemapChunkTileData from
//!                 // chunk_order(&autotile_wang(&corners, w, h)?, w, h)?.
//!             }
//!             Err(e) => warn!("not a tileset: {e}"),
//!         }
//!     }
//! }
//! ```

use std::sync::Arc;

use bevy::image::Image;
use image::RgbaImage;
use pixelgen::{PixelGenError, Plan, Recipe};

use crate::worker::to_bevy_image;

/// Why a tileset cannot become an array texture (or a map its chunk order).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TilemapError {
    /// The recipe makes no tileset.
    #[error("the recipe makes no tileset (request one with SpriteRequest::tileset)")]
    NotATileset,
    /// The recipe does not plan (it is not the recipe of a finished request).
    #[error("{0}")]
    Recipe(Arc<PixelGenError>),
    /// The atlas image cannot be read as RGBA pixels (e.g. it is not loaded yet or compressed).
    #[error("the atlas cannot be read as RGBA: {0}")]
    Atlas(String),
    /// The atlas's cells are spaced apart (`sheet.padding`); only packed atlases are supported.
    #[error("the atlas has {0} px of padding between cells: use a tileset without sheet padding")]
    Padding(u32),
    /// The tiles do not fit the atlas, or a size or count is zero or too large.
    #[error("{0}")]
    Layers(String),
}

/// The array texture of a finished tileset atlas for `TilemapChunk::tileset`: layer `i` is the
/// tile at atlas index `i` (`TileData::tileset_index`), every tile of `recipe`'s set
/// (variations included), nearest sampling. `atlas` is the finished request's image (its
/// handle after [`SpriteFinished`](crate::SpriteFinished)), `recipe` the request's.
///
/// Errors (never panics) when the recipe makes no tileset, the image is not the atlas it
/// describes or cannot be read, or its cells are padded.
pub fn tileset_array_image(atlas: &Image, recipe: &Recipe) -> Result<Image, TilemapError> {
    let pixels = atlas
        .clone()
        .try_into_dynamic()
        .map_err(|e| TilemapError::Atlas(e.to_string()))?
        .into_rgba8();
    tileset_array_from_pixels(&pixels, recipe)
}

/// [`tileset_array_image`] for atlas pixels the caller holds (e.g. a PNG read from disk).
pub fn tileset_array_from_pixels(
    atlas: &RgbaImage,
    recipe: &Recipe,
) -> Result<Image, TilemapError> {
    let set = recipe.tileset.as_ref().ok_or(TilemapError::NotATileset)?;
    let padding = recipe.sheet.as_ref().map_or(0, |s| s.padding);
    if padding > 0 {
        return Err(TilemapError::Padding(padding));
    }
    let plan = Plan::new(recipe.clone()).map_err(|e| TilemapError::Recipe(Arc::new(e)))?;
    let columns = plan.sheet_layout().map_or(1, |l| l.columns);
    let count = u32::try_from(set.tiles().len())
        .map_err(|_| TilemapError::Layers("too many tiles".into()))?;
    array_image(
        atlas,
        (recipe.size.width, recipe.size.height),
        columns,
        count,
    )
}

/// The first `count` tiles of a packed grid atlas (`tile` pixels each, `columns` a row, no
/// spacing) as an array texture with one layer per tile, in atlas order, nearest sampling.
/// Errors on a zero size, column count or count, an atlas too small for `count` tiles, and a
/// single tile (an array texture needs at least two layers).
pub fn array_image(
    atlas: &RgbaImage,
    tile: (u32, u32),
    columns: u32,
    count: u32,
) -> Result<Image, TilemapError> {
    if count < 2 {
        return Err(TilemapError::Layers(format!(
            "{count} tiles: an array texture needs at least 2"
        )));
    }
    let stacked = pixelgen_pixel::tileset::atlas_to_layers(atlas, tile, columns, count)
        .map_err(|e| TilemapError::Layers(e.to_string()))?;
    let mut image = to_bevy_image(stacked);
    image
        .reinterpret_stacked_2d_as_array(count)
        .map_err(|e| TilemapError::Layers(e.to_string()))?;
    Ok(image)
}

/// A `width` x `height` map's atlas indices, row-major with the top row first (as the
/// autotilers return them), in `TilemapChunkTileData`'s order: the chunk's bottom row first.
/// Errors when `indices` is not `width * height` long or an index does not fit a `u16`.
pub fn chunk_order(
    indices: &[usize],
    width: usize,
    height: usize,
) -> Result<Vec<u16>, TilemapError> {
    if width.checked_mul(height) != Some(indices.len()) {
        return Err(TilemapError::Layers(format!(
            "{} indices for a {width}x{height} map",
            indices.len()
        )));
    }
    let mut out = Vec::with_capacity(indices.len());
    for row in indices.chunks(width.max(1)).rev() {
        for &i in row {
            let i = u16::try_from(i)
                .map_err(|_| TilemapError::Layers(format!("atlas index {i} is over 65535")))?;
            out.push(i);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;
    use pixelgen::tileset::{TilesetKind, TilesetRecipe};

    fn recipe(kind: TilesetKind) -> Recipe {
        Recipe {
            size: pixelgen::Size::square(8),
            generation_size: pixelgen::Size::square(64),
            tileset: Some(TilesetRecipe::new(kind, "grass", "water")),
            ..Recipe::new("tile")
        }
    }

    /// An atlas whose tile `i` is filled with colour `(i, 255 - i, x + y)`.
    fn atlas(columns: u32, rows: u32) -> RgbaImage {
        RgbaImage::from_fn(columns * 8, rows * 8, |x, y| {
            let i = (y / 8) * columns + x / 8;
            Rgba([i as u8, 255 - i as u8, ((x % 8) + (y % 8)) as u8, 255])
        })
    }

    #[test]
    fn layers_are_the_atlas_cells_in_order() {
        let image = tileset_array_from_pixels(&atlas(4, 4), &recipe(TilesetKind::Wang)).unwrap();
        let size = image.texture_descriptor.size;
        assert_eq!((size.width, size.height), (8, 8));
        assert_eq!(size.depth_or_array_layers, 16);
        let data = image.data.as_ref().unwrap();
        // Layer 6 (column 2, row 1) at pixel (3, 5).
        let at = (6 * 8 * 8 + 5 * 8 + 3) * 4;
        assert_eq!(&data[at..at + 4], &[6, 249, 8, 255]);
        assert!(matches!(
            image.sampler,
            bevy::image::ImageSampler::Descriptor(_)
        ));
    }

    #[test]
    fn bad_input_is_an_error() {
        let plain = Recipe::new("tile");
        assert!(matches!(
            tileset_array_from_pixels(&atlas(4, 4), &plain),
            Err(TilemapError::NotATileset)
        ));
        // A Wang atlas is too small for a blob set's 48 tiles.
        assert!(tileset_array_from_pixels(&atlas(4, 4), &recipe(TilesetKind::Blob)).is_err());
        assert!(array_image(&atlas(4, 4), (8, 8), 4, 1).is_err());
        assert!(array_image(&atlas(4, 4), (0, 8), 4, 4).is_err());
        assert!(chunk_order(&[0, 1, 2], 2, 2).is_err());
        assert!(chunk_order(&[70_000], 1, 1).is_err());
        assert_eq!(
            chunk_order(&[0, 1, 2, 3, 4, 5], 3, 2).unwrap(),
            [3, 4, 5, 0, 1, 2]
        );
    }
}
