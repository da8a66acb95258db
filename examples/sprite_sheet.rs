//! An animated character from a generated sprite sheet.
//!
//! ```text
//! cargo run --example sprite_sheet                                                  # demo engine
//! cargo run --release --example sprite_sheet -- --model models/stable-diffusion-xl-base-1.0
//! cargo run --release --example sprite_sheet -- --tiny     # tiny random-weight SDXL (noise)
//! ```
//!
//! [`PixelGen::submit`] asks for four walk-cycle frames (one prompt per frame from a
//! template) and returns the sheet's image and `TextureAtlasLayout` handles at once. The
//! character is an ordinary atlas sprite whose index a timer advances; it animates over the
//! placeholder sheet first and over the real frames once they arrive. The whole sheet is
//! shown on the right. Space asks for a new character (a new seed) into the same sprite.
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
use bevy_pixelgen::pixelgen::{Frames, SheetOptions};
use bevy_pixelgen::prelude::*;
use clap::Parser;
use demo_engine::EngineChoice;
use script::Script;

/// Frames in the walk cycle.
const FRAMES: u32 = 4;
/// Frame side (px).
const TILE: u32 = 32;
/// The animated character: zoom and world position.
const HERO_ZOOM: f32 = 8.0;
const HERO_AT: Vec2 = Vec2::new(-150.0, -40.0);
/// The whole sheet: zoom and world position.
const SHEET_ZOOM: f32 = 2.0;
const SHEET_AT: Vec2 = Vec2::new(200.0, -40.0);

#[derive(Parser, Debug)]
#[command(about = "An animated character from a generated sprite sheet")]
struct Args {
    /// A diffusers SDXL folder (default: the procedural demo engine, not AI).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Run the real SDXL code on the tiny test model (random weights: the frames are noise).
    #[arg(long)]
    tiny: bool,
    /// Animation speed (frames per second).
    #[arg(long, default_value_t = 6.0)]
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
    .insert_resource(Animation(Timer::from_seconds(
        1.0 / args.fps.clamp(0.5, 60.0),
        TimerMode::Repeating,
    )))
    .insert_resource(engine.clone())
    .add_systems(Startup, setup)
    .add_message::<NewCharacter>()
    .add_systems(Update, (ask_on_key, new_character, animate).chain())
    .add_systems(EguiPrimaryContextPass, draw_hud);
    engine.explain("sprite_sheet");
    if let Some(dir) = args.script {
        app.insert_resource(Script::new(dir))
            .add_systems(Update, (run_script.after(animate), script::tick));
    }
    app.run();
}

/// The engine label shown on screen.
#[derive(Resource)]
struct Label(String);

/// Advances the character's atlas index.
#[derive(Resource)]
struct Animation(Timer);

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

/// The walk cycle: one prompt per frame from a template, packed in one row.
fn walk_cycle(engine: &EngineChoice) -> SpriteRequest {
    let mut request = SpriteRequest::new("a knight in green armour, side view, pixel art")
        .size(TILE, TILE)
        .steps(8);
    request.recipe.frames = Frames::Template {
        template: "{prompt}, walk cycle frame {frame} of {count}".into(),
        count: FRAMES,
    };
    request.recipe.sheet = Some(SheetOptions {
        columns: Some(FRAMES),
        ..SheetOptions::default()
    });
    engine.fit(request)
}

fn setup(mut commands: Commands, mut pixelgen: PixelGen, engine: Res<EngineChoice>) {
    commands.spawn(Camera2d);
    let ticket = pixelgen.submit(walk_cycle(&engine));
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
        Hero { ticket },
    ));
    commands.spawn((
        Sprite::from_image(image),
        Transform::from_translation(SHEET_AT.extend(0.0)).with_scale(Vec3::splat(SHEET_ZOOM)),
        SheetView,
    ));
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
    mut hero: Single<(&mut Hero, &mut Sprite), Without<SheetView>>,
    mut view: Single<&mut Sprite, With<SheetView>>,
) {
    if asks.read().count() == 0 {
        return;
    }
    hero.0.ticket.cancel();
    let ticket = pixelgen.submit(walk_cycle(&engine));
    hero.1.image = ticket.handle().clone();
    if let (Some(atlas), Some(layout)) = (hero.1.texture_atlas.as_mut(), ticket.layout()) {
        atlas.layout = layout.clone();
    }
    view.image = ticket.handle().clone();
    hero.0.ticket = ticket;
}

/// Steps the atlas index through the layout's frames.
fn animate(
    time: Res<Time>,
    mut timer: ResMut<Animation>,
    layouts: Res<Assets<TextureAtlasLayout>>,
    mut hero: Single<&mut Sprite, With<Hero>>,
) {
    if !timer.0.tick(time.delta()).just_finished() {
        return;
    }
    let Some(atlas) = hero.texture_atlas.as_mut() else {
        return;
    };
    let frames = layouts.get(&atlas.layout).map_or(1, |l| l.len()).max(1);
    atlas.index = (atlas.index + 1) % frames;
}

fn draw_hud(mut contexts: EguiContexts, label: Res<Label>, hero: Single<&Hero>) -> Result {
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
                "{FRAMES}-frame walk cycle (seed {}): {status}",
                hero.ticket.recipe().seed.value().unwrap_or_default()
            ));
            ui.label("Space: a new character");
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
    hero: Single<(&Hero, &Sprite)>,
    layouts: Res<Assets<TextureAtlasLayout>>,
    mut first: Local<usize>,
    mut asks: MessageWriter<NewCharacter>,
) {
    let (hero, sprite) = *hero;
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
