//! A generated grass/water tileset painted with autotiling on Bevy's `TilemapChunk`.
//!
//! ```text
//! cargo run --example tilemap                                                    # demo engine
//! cargo run --release --example tilemap -- --model models/stable-diffusion-xl-base-1.0
//! cargo run --release --example tilemap -- --tiny      # tiny random-weight SDXL (noise)
//! ```
//!
//! [`SpriteRequest::tileset`] asks for a Wang 2-corner set of grass and water (16 tiles whose
//! edges meet). Meanwhile the map shows flat-colour placeholder tiles of the same shapes. Once
//! the atlas arrives, [`tileset_array_image`] turns it into the array texture `TilemapChunk`
//! draws, and the map (an island with a pond, 16x10 tiles from a 17x11 corner grid) shows the
//! generated tiles that [`autotile_wang`] picks. Clicking near a corner toggles its terrain
//! and re-autotiles the four tiles around it. The seam report (every edge two tiles may share,
//! scored) is shown on screen.
//!
//! Without `--model` a procedural demo engine stands in for SDXL (clearly labelled on
//! screen). `--script DIR` drives a fixed run for the window test and exits; it also writes
//! the Tiled tileset (`.tsx`) and the index table that `pixelgen::save` writes beside the
//! saved atlas.

#[path = "common/demo_engine.rs"]
mod demo_engine;
#[path = "common/script.rs"]
mod script;

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::sprite_render::{TileData, TilemapChunk, TilemapChunkTileData};
use bevy::window::{PrimaryWindow, WindowResolution};
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass, egui};
use bevy_pixelgen::pixelgen::tileset::{SeamReport, TilesetKind};
use bevy_pixelgen::prelude::*;
use bevy_pixelgen::tilemap::{array_image, chunk_order, tileset_array_image};
use clap::Parser;
use demo_engine::EngineChoice;
use pixelgen_pixel::tileset::{Terrain, autotile_wang, compose, terrain_mask};
use script::Script;

/// Tile side (px).
const TILE: u32 = 16;
/// Screen pixels per tile pixel.
const ZOOM: u32 = 3;
/// The map, in tiles.
const MAP_W: usize = 16;
const MAP_H: usize = 10;
/// The map's centre (world units; the camera is at the origin).
const MAP_AT: Vec2 = Vec2::new(0.0, -50.0);
/// The placeholder tiles' flat grass and water.
const FLAT_GRASS: [u8; 4] = [70, 150, 70, 255];
const FLAT_WATER: [u8; 4] = [60, 100, 190, 255];

#[derive(Parser, Debug)]
#[command(about = "A generated tileset painted with autotiling on a TilemapChunk")]
struct Args {
    /// A diffusers SDXL folder (default: the procedural demo engine, not AI).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Run the real SDXL code on the tiny test model (random weights: the tiles are noise).
    #[arg(long)]
    tiny: bool,
    /// The tileset's seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Drive a fixed run, save screenshots and a manifest in DIR, then exit (window test).
    #[arg(long, value_name = "DIR")]
    script: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let engine = EngineChoice::from_args(args.model, args.tiny);
    let pixelgen = engine.plugin(args.script.as_deref());
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: "DGX-Pixels: tilemap".into(),
                    resolution: WindowResolution::new(800, 600),
                    ..default()
                }),
                ..default()
            })
            .set(ImagePlugin::default_nearest()),
    )
    .insert_resource(ClearColor(Color::srgb(0.14, 0.16, 0.2)))
    .add_plugins(pixelgen)
    .add_plugins(EguiPlugin::default())
    .insert_resource(Label(engine.label()))
    .insert_resource(Seed(args.seed))
    .insert_resource(engine.clone())
    .add_message::<Toggle>()
    .add_systems(Startup, setup)
    .add_systems(
        Update,
        (take_tileset, click, toggle)
            .chain()
            .after(PixelGenSystems::Receive),
    )
    .add_systems(EguiPrimaryContextPass, draw_hud);
    engine.explain("tilemap");
    if let Some(dir) = args.script {
        app.insert_resource(Script::new(dir))
            .add_systems(Update, (run_script.after(toggle), script::tick));
    }
    app.run();
}

/// The engine label shown on screen.
#[derive(Resource)]
struct Label(String);

/// The tileset request's seed.
#[derive(Resource)]
struct Seed(u64);

/// The map: its corner terrains, the tileset request and what came of it.
#[derive(Resource)]
struct Map {
    /// `(MAP_W + 1) x (MAP_H + 1)` corners, row-major, top row first.
    corners: Vec<Terrain>,
    /// The tileset request (a scripted run makes it a little later).
    ticket: Option<Ticket>,
    /// The generated tiles are on the map.
    ready: bool,
    seams: Option<SeamReport>,
    /// Why the tileset is not shown (generation failed, the atlas could not be used).
    error: Option<String>,
}

impl Map {
    /// The atlas index of every tile, row-major, top row first.
    fn indices(&self) -> Vec<usize> {
        autotile_wang(&self.corners, MAP_W, MAP_H).unwrap_or_else(|e| {
            warn!("autotiling failed: {e}");
            vec![0; MAP_W * MAP_H]
        })
    }

    /// The tiles in `TilemapChunkTileData`'s order.
    fn tile_data(&self) -> TilemapChunkTileData {
        let order = chunk_order(&self.indices(), MAP_W, MAP_H).unwrap_or_default();
        TilemapChunkTileData(
            order
                .into_iter()
                .map(|i| Some(TileData::from_tileset_index(i)))
                .collect(),
        )
    }
}

/// Toggle the terrain of corner `(x, y)` (0..=MAP_W, 0..=MAP_H, top-left first).
#[derive(Message, Debug, Clone, Copy)]
struct Toggle(usize, usize);

/// An island of grass in water with a pond in it: a corner grid.
fn island() -> Vec<Terrain> {
    let (cw, ch) = (MAP_W + 1, MAP_H + 1);
    let mut corners = Vec::with_capacity(cw * ch);
    for y in 0..ch {
        for x in 0..cw {
            let dx = (x as f32 - 8.0) / 6.5;
            let dy = (y as f32 - 5.0) / 3.8;
            let land = dx * dx + dy * dy <= 1.0;
            let pond = (x == 10 || x == 11) && y == 5;
            corners.push(Terrain::from_bit(!land || pond));
        }
    }
    corners
}

/// The placeholder tileset: each Wang tile's shape in flat grass and water colours.
fn placeholder_tiles() -> Image {
    let grass = image::RgbaImage::from_pixel(TILE, TILE, image::Rgba(FLAT_GRASS));
    let water = image::RgbaImage::from_pixel(TILE, TILE, image::Rgba(FLAT_WATER));
    let mut stacked = image::RgbaImage::new(TILE, TILE * 16);
    for (i, code) in TilesetKind::Wang.codes().into_iter().enumerate() {
        if let Ok(tile) =
            terrain_mask(code, TILE, TILE).and_then(|mask| compose(&mask, &grass, &water))
        {
            image::imageops::replace(&mut stacked, &tile, 0, i as i64 * i64::from(TILE));
        }
    }
    array_image(&stacked, (TILE, TILE), 1, 16).unwrap_or_else(|e| {
        warn!("placeholder tiles: {e}");
        Image::default()
    })
}

/// The tileset request: a Wang set of grass and water, 16x16 tiles, few steps.
fn tileset_request(engine: &EngineChoice, seed: u64) -> SpriteRequest {
    engine.fit(
        SpriteRequest::tileset(TilesetKind::Wang, "grass", "water")
            .size(TILE, TILE)
            .steps(4)
            .seed(seed),
    )
}

/// The map's chunk with the given tileset.
fn chunk(tileset: Handle<Image>) -> TilemapChunk {
    TilemapChunk {
        chunk_size: UVec2::new(MAP_W as u32, MAP_H as u32),
        tile_display_size: UVec2::splat(TILE * ZOOM),
        tileset,
        ..default()
    }
}

fn setup(
    mut commands: Commands,
    mut pixelgen: PixelGen,
    engine: Res<EngineChoice>,
    seed: Res<Seed>,
    script: Option<Res<Script>>,
) {
    commands.spawn(Camera2d);
    // A scripted run asks once the window runs, so its first shot shows the placeholders.
    let ticket = script
        .is_none()
        .then(|| pixelgen.submit(tileset_request(&engine, seed.0)));
    let placeholder = pixelgen.images().add(placeholder_tiles());
    let map = Map {
        corners: island(),
        ticket,
        ready: false,
        seams: None,
        error: None,
    };
    commands.spawn((
        chunk(placeholder),
        map.tile_data(),
        Transform::from_translation(MAP_AT.extend(0.0)),
    ));
    commands.insert_resource(map);
}

/// Once the atlas is in, the map's chunk draws its tiles (a new `TilemapChunk`, since the
/// component is immutable).
fn take_tileset(
    mut done: MessageReader<SpriteFinished>,
    mut failed: MessageReader<SpriteFailed>,
    mut map: ResMut<Map>,
    mut images: ResMut<Assets<Image>>,
    chunks: Query<Entity, With<TilemapChunk>>,
    mut commands: Commands,
) {
    let Some(id) = map.ticket.as_ref().map(Ticket::id) else {
        return;
    };
    for m in failed.read() {
        if m.ticket == id {
            map.error = Some(m.error.to_string());
        }
    }
    for m in done.read() {
        if m.ticket != id {
            continue;
        }
        map.seams = m.tileset.as_ref().map(|t| t.seams.clone());
        let array = match images.get(&m.image) {
            Some(atlas) => tileset_array_image(atlas, &m.recipe),
            None => {
                map.error = Some("the atlas is not in Assets<Image>".into());
                continue;
            }
        };
        match array {
            Ok(array) => {
                let handle = images.add(array);
                for entity in &chunks {
                    commands.entity(entity).insert(chunk(handle.clone()));
                }
                map.ready = true;
                if let Some(seams) = &map.seams {
                    info!(
                        "tileset ready: seams {} (worst {:.2}, {} of {} edges failing)",
                        if seams.passed() { "passed" } else { "FAILED" },
                        seams.worst,
                        seams.failing.len(),
                        seams.edges.len()
                    );
                }
            }
            Err(e) => map.error = Some(e.to_string()),
        }
    }
}

/// A left click near a corner of the map toggles it.
fn click(
    buttons: Res<ButtonInput<MouseButton>>,
    window: Single<&Window, With<PrimaryWindow>>,
    camera: Single<(&Camera, &GlobalTransform)>,
    mut toggles: MessageWriter<Toggle>,
) {
    if !buttons.just_pressed(MouseButton::Left) {
        return;
    }
    let (camera, at) = *camera;
    let Some(world) = window
        .cursor_position()
        .and_then(|p| camera.viewport_to_world_2d(at, p).ok())
    else {
        return;
    };
    if let Some((x, y)) = corner_at(world) {
        toggles.write(Toggle(x, y));
    }
}

/// The corner nearest the world position `p`, if it is on the map.
fn corner_at(p: Vec2) -> Option<(usize, usize)> {
    let side = (TILE * ZOOM) as f32;
    let left = MAP_AT.x - MAP_W as f32 * side / 2.0;
    let top = MAP_AT.y + MAP_H as f32 * side / 2.0;
    let x = ((p.x - left) / side).round();
    let y = ((top - p.y) / side).round();
    let on = (0.0..=MAP_W as f32).contains(&x) && (0.0..=MAP_H as f32).contains(&y);
    on.then_some((x as usize, y as usize))
}

/// Toggles corners and re-autotiles the map.
fn toggle(
    mut toggles: MessageReader<Toggle>,
    mut map: ResMut<Map>,
    mut tiles: Query<&mut TilemapChunkTileData>,
) {
    let mut changed = false;
    for &Toggle(x, y) in toggles.read() {
        let i = y * (MAP_W + 1) + x;
        if let Some(corner) = map.corners.get_mut(i) {
            *corner = Terrain::from_bit(!corner.is_b());
            changed = true;
        }
    }
    if changed {
        let data = map.tile_data();
        for mut t in &mut tiles {
            *t = data.clone();
        }
    }
}

fn draw_hud(mut contexts: EguiContexts, label: Res<Label>, map: Res<Map>) -> Result {
    let ctx = contexts.ctx_mut()?;
    let status = match (&map.error, map.ticket.as_ref().map(Ticket::status)) {
        (Some(e), _) => format!("failed: {e}"),
        (None, None | Some(TicketStatus::Queued)) => "queued (placeholder tiles)".to_owned(),
        (None, Some(TicketStatus::Running { step, total })) => {
            format!("generating: step {step} of {total} (placeholder tiles)")
        }
        (None, Some(TicketStatus::Done { .. })) => "ready".to_owned(),
        (None, Some(TicketStatus::Failed(e))) => format!("failed: {e}"),
    };
    let seams = match &map.seams {
        Some(s) if s.passed() => format!(
            "seams: passed, {} edges, worst {:.2}",
            s.edges.len(),
            s.worst
        ),
        Some(s) => format!(
            "seams: FAILED, {} of {} edges, worst {:.2}",
            s.failing.len(),
            s.edges.len(),
            s.worst
        ),
        None => "seams: not measured yet".to_owned(),
    };
    // One wide window without a shadow, so it stays above the map.
    let frame = egui::Frame::window(&ctx.global_style()).shadow(egui::Shadow::NONE);
    egui::Window::new("Tilemap")
        .anchor(egui::Align2::LEFT_TOP, [6.0, 6.0])
        .min_width(770.0)
        .frame(frame)
        .resizable(false)
        .collapsible(false)
        .title_bar(false)
        .show(ctx, |ui| {
            ui.colored_label(egui::Color32::from_rgb(255, 200, 80), &label.0);
            ui.label(format!("Wang grass/water tileset: {status}"));
            ui.label(seams);
            ui.label("Click near a tile corner: toggle grass/water (autotiled)");
        });
    Ok(())
}

/// The window test's run: the tileset requested once the window runs, a shot of the
/// placeholder map, a shot once the tileset is on the map, then a corner toggled and a third
/// shot. The manifest says where the map is (centre,
/// tile size, zoom, tiles across and down), the indices each shot shows, the saved atlas and
/// its Tiled tileset, and the seam report.
fn run_script(
    mut commands: Commands,
    mut script: ResMut<Script>,
    mut map: ResMut<Map>,
    mut toggles: MessageWriter<Toggle>,
    mut pixelgen: PixelGen,
    engine: Res<EngineChoice>,
    seed: Res<Seed>,
) {
    let indices = |map: &Map| {
        map.indices()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    match script.step {
        0 if script.frame == 30 => {
            map.ticket = Some(pixelgen.submit(tileset_request(&engine, seed.0)));
            script.advance();
        }
        1 if script.in_step() == 2 => {
            script.shoot(&mut commands, "map_pending");
            script.note("map", format!("{} {} {MAP_W} {MAP_H}", MAP_AT.x, MAP_AT.y));
            script.note("tile", TILE);
            script.note("zoom", ZOOM);
            script.note("pending_indices", indices(&map));
            script.advance();
        }
        2 if map.error.is_some() => {
            script.note("failed", map.error.as_deref().unwrap_or_default());
            script.finish();
            script.advance();
        }
        // A few frames for the new chunk's material and texture to reach the GPU.
        2 if map.ready => script.advance(),
        3 if script.in_step() == 10 => {
            script.shoot(&mut commands, "map_ready");
            script.note("indices", indices(&map));
            if let Some(ticket) = &map.ticket
                && let TicketStatus::Done { saved: Some(png) } = ticket.status()
            {
                script.note("atlas", png.display());
            }
            if let Some(seams) = &map.seams {
                script.note("seams_passed", seams.passed());
                script.note("seams_worst", seams.worst);
            }
            // Toggle the corner left of the pond: the land around it turns to water.
            toggles.write(Toggle(9, 5));
            script.note("toggled", "9 5");
            script.advance();
        }
        4 if script.in_step() == 5 => {
            script.shoot(&mut commands, "map_painted");
            script.note("painted_indices", indices(&map));
            script.advance();
            script.finish();
        }
        _ => {}
    }
}
