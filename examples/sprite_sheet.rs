//! A walking character seen from four directions, generated as one consistent set.
//!
//! ```text
//! cargo run --example sprite_sheet                                                  # demo engine
//! cargo run --release --example sprite_sheet -- --model models/stable-diffusion-xl-base-1.0
//! cargo run --release --example sprite_sheet -- --tiny     # tiny random-weight SDXL (noise)
//! ```
//!
//! [`PixelGen::submit`] asks for a set: the walk template (8 frames) seen from 4 directions,
//! west mirrored from east, drawn sharing one reference so every frame shows the same
//! character in one palette on one baseline. It returns the sheet's image and
//! `TextureAtlasLayout` handles and the set's clips (`walk_south`, `walk_west`, ...) at once.
//! The character is an ordinary atlas sprite with a [`ClipPlayer`]; it walks over the
//! placeholder sheet first and over the real frames once they arrive. The arrow keys turn
//! it, Space asks for a new character (a new seed) into the same sprite. The whole sheet,
//! a row per direction, is shown on the right.
//!
//! Without `--model` a procedural demo engine stands in for SDXL (clearly labelled on
//! screen). `--script DIR` drives a fixed run for the window test and exits.

#[path = "common/demo_engine.rs"]
mod demo_engine;
#[path = "common/script.rs"]
mod script;

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::window::WindowResolution;
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass, egui};
use bevy_pixelgen::prelude::*;
use clap::Parser;
use demo_engine::EngineChoice;
use script::Script;

/// Frames in the walk cycle (the walk template's).
const FRAMES: u32 = 8;
/// Directions, a sheet row each.
const DIRECTIONS: u32 = 4;
/// Frame side (px).
const TILE: u32 = 32;
/// The animated character: zoom and world position.
const HERO_ZOOM: f32 = 8.0;
const HERO_AT: Vec2 = Vec2::new(-150.0, -40.0);
/// The whole sheet: zoom and world position.
const SHEET_ZOOM: f32 = 1.5;
const SHEET_AT: Vec2 = Vec2::new(190.0, -40.0);

#[derive(Parser, Debug)]
#[command(about = "An animated character from a generated sprite sheet")]
struct Args {
    /// A diffusers SDXL folder (default: the procedural demo engine, not AI).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Run the real SDXL code on the tiny test model (random weights: the frames are noise).
    #[arg(long)]
    tiny: bool,
    /// Animation speed (frames per second; the walk template's is 10).
    #[arg(long, default_value_t = 8.0)]
    fps: f32,
    /// Drive a fixed run, save screenshots and a manifest in DIR, then exit (window test).
    #[arg(long, value_name = "DIR")]
    script: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let engine = EngineChoice::from_args(args.model, args.tiny);
    let pixelgen = engine.plugin(args.script.as_deref());
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(WindowPlugin {
        primary_window: Some(Window {
            title: "DGX-Pixels: sprite sheet".into(),
            resolution: WindowResolution::new(800, 600),
            ..default()
        }),
        ..default()
    }))
    .insert_resource(ClearColor(Color::srgb(0.14, 0.16, 0.2)))
    .add_plugins(pixelgen)
    .add_plugins(EguiPlugin::default())
    .insert_resource(Label(engine.label()))
    .insert_resource(Speed(args.fps.clamp(0.5, 60.0) / 10.0))
    .insert_resource(engine.clone())
    .add_systems(Startup, setup)
    .add_message::<NewCharacter>()
    .add_systems(
        Update,
        (ask_on_key, new_character, turn)
            .chain()
            .before(PixelGenSystems::Clips),
    )
    .add_systems(EguiPrimaryContextPass, draw_hud);
    engine.explain("sprite_sheet");
    if let Some(dir) = args.script {
        app.insert_resource(Script::new(dir)).add_systems(
            Update,
            (run_script.after(PixelGenSystems::Clips), script::tick),
        );
    }
    app.run();
}

/// The engine label shown on screen.
#[derive(Resource)]
struct Label(String);

/// Clip playback speed (1: the template's timing).
#[derive(Resource)]
struct Speed(f32);

/// The animated character and the sheet request behind it.
#[derive(Component)]
struct Hero {
    ticket: Ticket,
}

/// Asks for a new character (a new seed) in the same sprites.
#[derive(Message, Debug, Clone, Copy)]
struct NewCharacter;

/// The whole sheet, shown for reference.
#[derive(Component)]
struct SheetView;

/// The hero: the walk template from 4 directions (west mirrored from east) as one set.
fn hero_set(engine: &EngineChoice) -> SpriteRequest {
    let request = SpriteRequest::new("a knight in green armour, pixel art")
        .size(TILE, TILE)
        .steps(8)
        .animate(Action::Walk)
        .directions(DIRECTIONS, true);
    engine.fit(request)
}

/// A clip player for `ticket`'s set at `speed`, walking east.
fn walker(ticket: &Ticket, speed: f32) -> ClipPlayer {
    let mut player = ClipPlayer::new(ticket.clips());
    player.play("walk_east");
    player.speed = speed;
    player
}

fn setup(
    mut commands: Commands,
    mut pixelgen: PixelGen,
    engine: Res<EngineChoice>,
    speed: Res<Speed>,
) {
    commands.spawn(Camera2d);
    let ticket = pixelgen.submit(hero_set(&engine));
    let player = walker(&ticket, speed.0);
    let (image, layout) = (ticket.handle().clone(), ticket.layout().cloned());
    commands.spawn((
        Sprite::from_atlas_image(
            image.clone(),
            TextureAtlas {
                layout: layout.unwrap_or_default(),
                index: 0,
            },
        ),
        Transform::from_translation(HERO_AT.extend(0.0)).with_scale(Vec3::splat(HERO_ZOOM)),
        player,
        Hero { ticket },
    ));
    commands.spawn((
        Sprite::from_image(image),
        Transform::from_translation(SHEET_AT.extend(0.0)).with_scale(Vec3::splat(SHEET_ZOOM)),
        SheetView,
    ));
}

/// The arrow keys turn the hero (the clip of that direction).
fn turn(keys: Res<ButtonInput<KeyCode>>, mut hero: Single<&mut ClipPlayer, With<Hero>>) {
    let clip = [
        (KeyCode::ArrowLeft, "walk_west"),
        (KeyCode::ArrowRight, "walk_east"),
        (KeyCode::ArrowUp, "walk_north"),
        (KeyCode::ArrowDown, "walk_south"),
    ]
    .into_iter()
    .find(|(key, _)| keys.just_pressed(*key));
    if let Some((_, name)) = clip {
        hero.play(name);
    }
}

/// Space asks for a new character.
fn ask_on_key(keys: Res<ButtonInput<KeyCode>>, mut asks: MessageWriter<NewCharacter>) {
    if keys.just_pressed(KeyCode::Space) {
        asks.write(NewCharacter);
    }
}

/// A new sheet request (new seed) into the same sprites; the old one is cancelled.
fn new_character(
    mut asks: MessageReader<NewCharacter>,
    mut pixelgen: PixelGen,
    engine: Res<EngineChoice>,
    mut hero: Single<(&mut Hero, &mut Sprite, &mut ClipPlayer), Without<SheetView>>,
    mut view: Single<&mut Sprite, With<SheetView>>,
) {
    if asks.read().count() == 0 {
        return;
    }
    hero.0.ticket.cancel();
    let ticket = pixelgen.submit(hero_set(&engine));
    let facing = hero.2.clip().map(|c| c.name.clone());
    let mut player = walker(&ticket, hero.2.speed);
    if let Some(name) = facing {
        player.play(&name);
    }
    *hero.2 = player;
    hero.1.image = ticket.handle().clone();
    if let (Some(atlas), Some(layout)) = (hero.1.texture_atlas.as_mut(), ticket.layout()) {
        atlas.layout = layout.clone();
    }
    view.image = ticket.handle().clone();
    hero.0.ticket = ticket;
}

fn draw_hud(
    mut contexts: EguiContexts,
    label: Res<Label>,
    hero: Single<(&Hero, &ClipPlayer)>,
) -> Result {
    let (hero, player) = *hero;
    let ctx = contexts.ctx_mut()?;
    let status = match hero.ticket.status() {
        TicketStatus::Queued => "queued".to_owned(),
        TicketStatus::Running { step, total } => format!("generating: step {step} of {total}"),
        TicketStatus::Done { .. } => "ready".to_owned(),
        TicketStatus::Failed(e) => format!("failed: {e}"),
    };
    egui::Window::new("Sprite sheet")
        .anchor(egui::Align2::LEFT_TOP, [10.0, 10.0])
        .resizable(false)
        .collapsible(false)
        .show(ctx, |ui| {
            ui.colored_label(egui::Color32::from_rgb(255, 200, 80), &label.0);
            ui.label(format!(
                "{FRAMES}-frame walk from {DIRECTIONS} directions (seed {}): {status}",
                hero.ticket.recipe().seed.value().unwrap_or_default()
            ));
            if let Some(clip) = player.clip() {
                ui.label(format!("playing {}", clip.name));
            }
            ui.label("Arrow keys: turn · Space: a new character");
        });
    Ok(())
}

/// The window test's run: a new character once the window runs smoothly, a shot of its
/// placeholder sheet, then (once the sheet is in) two
/// shots showing different frames; the manifest says where the character is, which frame
/// each shot shows, the frames' rectangles and the saved sheet.
fn run_script(
    mut commands: Commands,
    mut script: ResMut<Script>,
    hero: Single<(&Hero, &Sprite, &ClipPlayer)>,
    layouts: Res<Assets<TextureAtlasLayout>>,
    mut first: Local<usize>,
    mut asks: MessageWriter<NewCharacter>,
) {
    let (hero, sprite, player) = *hero;
    let index = sprite.texture_atlas.as_ref().map_or(0, |a| a.index);
    match script.step {
        0 if script.frame == 20 => {
            asks.write(NewCharacter);
            script.advance();
        }
        // The message is read next frame; its placeholder is in by the frame after.
        1 if script.in_step() == 2 => {
            script.shoot(&mut commands, "sheet_pending");
            script.note("hero", format!("{} {} {HERO_ZOOM}", HERO_AT.x, HERO_AT.y));
            script.note("pending_frame", index);
            script.advance();
        }
        2 if matches!(hero.ticket.status(), TicketStatus::Done { .. }) && script.in_step() > 2 => {
            script.shoot(&mut commands, "sheet_a");
            script.note("frame_a", index);
            *first = index;
            if let TicketStatus::Done { saved: Some(png) } = hero.ticket.status() {
                script.note("sheet", png.display());
            }
            if let Some(clip) = player.clip() {
                script.note("clip", format!("{} {:?}", clip.name, clip.frames));
            }
            let layout = sprite
                .texture_atlas
                .as_ref()
                .and_then(|a| layouts.get(&a.layout));
            for (i, r) in layout.iter().flat_map(|l| l.textures.iter()).enumerate() {
                script.note(
                    "rect",
                    format!("{i} {} {} {} {}", r.min.x, r.min.y, r.width(), r.height()),
                );
            }
            script.advance();
        }
        3 if index != *first => {
            script.shoot(&mut commands, "sheet_b");
            script.note("frame_b", index);
            script.advance();
            script.finish();
        }
        _ => {}
    }
}
