//! Tilesets through the plugin in a headless app: the request, the tile codes and seam report
//! on the message and the ticket, and the atlas as `TilemapChunk`'s array texture.

mod common;
#[path = "../../pixelgen/tests/common/terrains.rs"]
mod terrains;

use std::time::{Duration, Instant};

use bevy::asset::{AssetPlugin, Assets};
use bevy::image::{Image, ImagePlugin};
use bevy::prelude::*;
use bevy_pixelgen::pixelgen::SpriteEngine;
use bevy_pixelgen::pixelgen::tileset::{TileCode, TilesetKind};
use bevy_pixelgen::prelude::*;
use bevy_pixelgen::tilemap::{TilemapError, tileset_array_image};
use bevy_pixelgen::{EngineFactory, TILESET_PROMPT};
use common::{Log, collect, submit};
use terrains::{Terrains, WATER};

fn app() -> App {
    let factory = EngineFactory::new(|| Ok(Box::new(Terrains::default()) as Box<dyn SpriteEngine>));
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin::default(),
        ImagePlugin::default(),
        // Nothing saved: the test leaves no files behind.
        PixelGenPlugin {
            output_dir: None,
            ..PixelGenPlugin::with_engine(factory)
        },
    ))
    .init_resource::<Log>()
    .add_systems(Update, collect);
    app.finish();
    app.cleanup();
    app
}

fn finish(app: &mut App, ticket: &Ticket) {
    let start = Instant::now();
    while !ticket.status().is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the tileset never finished"
        );
        app.update();
        std::thread::sleep(Duration::from_millis(2));
    }
    app.update();
}

#[test]
fn a_tileset_request_delivers_its_report_and_an_array_texture() {
    let mut app = app();
    let request = SpriteRequest::tileset(TilesetKind::Wang, "grass", "water")
        .size(16, 16)
        .generation_size(64, 64)
        .seed(3);
    assert_eq!(request.recipe.prompt, TILESET_PROMPT);
    let ticket = submit(&mut app, request);
    assert!(ticket.is_sheet(), "an atlas comes with its layout");
    finish(&mut app, &ticket);
    assert!(
        matches!(ticket.status(), TicketStatus::Done { .. }),
        "{:?}",
        ticket.status()
    );
    let finished = app.world().resource::<Log>().finished.clone();
    assert_eq!(finished.len(), 1);
    let done = &finished[0];
    let report = done
        .tileset
        .as_ref()
        .expect("the message carries the tileset");
    assert_eq!(ticket.tileset(), Some(report), "the ticket carries it too");
    assert_eq!(report.kind, TilesetKind::Wang);
    assert_eq!(report.tiles, TilesetKind::Wang.codes());
    assert!(report.seams.passed(), "{:?}", report.seams);

    let images = app.world().resource::<Assets<Image>>();
    let atlas = images.get(&done.image).expect("the atlas is in place");
    let array = tileset_array_image(atlas, &done.recipe).expect("an array texture");
    let size = array.texture_descriptor.size;
    assert_eq!((size.width, size.height), (16, 16));
    assert_eq!(size.depth_or_array_layers, 16, "one layer per tile");
    // Every layer is its atlas cell (4 columns), pixel for pixel.
    let atlas = atlas.clone().try_into_dynamic().expect("RGBA").into_rgba8();
    let layers = array.data.as_ref().expect("pixels");
    for layer in [0u32, 5, 15] {
        let (cx, cy) = ((layer % 4) * 16, (layer / 4) * 16);
        for (x, y) in [(0, 0), (7, 9), (15, 15)] {
            let at = ((layer * 16 * 16 + y * 16 + x) * 4) as usize;
            assert_eq!(
                &layers[at..at + 4],
                &atlas.get_pixel(cx + x, cy + y).0,
                "layer {layer} ({x}, {y})"
            );
        }
    }
    // Layer 6 shows code 6 (water in the SE and SW corners): water at the bottom.
    assert_eq!(report.tiles[6], TileCode::Wang(6));
    let bottom = ((6 * 16 * 16 + 15 * 16 + 8) * 4) as usize;
    assert!(WATER.iter().any(|c| c[..] == layers[bottom..bottom + 4]));
}

#[test]
fn a_sprite_is_not_a_tileset() {
    let mut app = app();
    let ticket = submit(&mut app, SpriteRequest::new("grass").size(16, 16).seed(1));
    finish(&mut app, &ticket);
    assert!(ticket.tileset().is_none());
    let done = app.world().resource::<Log>().finished[0].clone();
    assert!(done.tileset.is_none());
    let images = app.world().resource::<Assets<Image>>();
    let image = images.get(&done.image).expect("the sprite");
    assert!(matches!(
        tileset_array_image(image, &done.recipe),
        Err(TilemapError::NotATileset)
    ));
}
