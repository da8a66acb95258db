//! Messages the plugin writes as requests progress, finish or fail.

use std::path::PathBuf;
use std::sync::Arc;

use bevy::asset::Handle;
use bevy::ecs::message::Message;
use bevy::image::{Image, TextureAtlasLayout};
use pixelgen::tileset::TilesetOutput;
use pixelgen::{CacheKey, Consistency, Recipe};

use crate::request::{SpriteError, TicketId};

/// A sampling step of a request finished.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct SpriteProgress {
    /// The request.
    pub ticket: TicketId,
    /// Steps done.
    pub step: usize,
    /// Steps in this run.
    pub total: usize,
    /// The current latents as a small RGB image (1/8 of the generation size, opaque), when
    /// the engine makes previews; [`to_bevy_image`](crate::to_bevy_image) turns it into an
    /// `Image` to show.
    pub preview: Option<Arc<image::RgbaImage>>,
}

/// A sprite or sheet is ready: its image is in `Assets<Image>` under `image`.
#[derive(Message, Debug, Clone)]
pub struct SpriteFinished {
    /// The request.
    pub ticket: TicketId,
    /// The handle returned by the request (now holding the sprite).
    pub image: Handle<Image>,
    /// For sheets: the atlas layout handle (now holding the real layout).
    pub layout: Option<Handle<TextureAtlasLayout>>,
    /// The recipe that made it (seed fixed): regenerates it.
    pub recipe: Recipe,
    /// Its content address, when the engine computed one.
    pub key: Option<CacheKey>,
    /// Where the PNG was saved, if saving was on and worked.
    pub saved: Option<PathBuf>,
    /// Why saving failed, if it did (the sprite is delivered anyway).
    pub save_error: Option<String>,
    /// The sprite came from a cache (the worker's memory of recent sprites, or the disk
    /// cache) rather than the model.
    pub from_cache: bool,
    /// For a set: how consistent its frames are (palette sizes, silhouette IoU, anchor
    /// drift, colour-histogram distance against the first frame).
    pub consistency: Option<Consistency>,
    /// For a tileset: its tiles' codes in atlas order and how its seams scored (see
    /// [`tilemap`](crate::tilemap) for showing it on a `TilemapChunk`).
    pub tileset: Option<TilesetOutput>,
}

/// A request produced no sprite; its handle keeps the placeholder.
#[derive(Message, Debug, Clone)]
pub struct SpriteFailed {
    /// The request.
    pub ticket: TicketId,
    /// The handle returned by the request.
    pub image: Handle<Image>,
    /// What went wrong.
    pub error: SpriteError,
}
