//! The PixelGen editor panel in a Bevy window: type a prompt, pick a style, press Generate.
//!
//! ```text
//! cargo run --example editor -- models/stable-diffusion-xl-base-1.0   # real SDXL
//! cargo run --example editor                                          # demo engine, no model
//! ```
//!
//! Without a model folder a small procedural "demo engine" stands in for SDXL (seeded,
//! symmetric blob sprites), so the panel, queue and gallery can be tried on any machine.
//! F2 shows and hides the panel. The newest gallery sprite is shown in the scene, 8x.
//!
//! With `PIXELGEN_EDITOR_SCRIPT=DIR` the example drives itself (style preset, prompt,
//! Generate), saves `DIR/editor_empty.png` and `DIR/editor_generated.png` and exits: the
//! real-window test under Xvfb uses it.

#[path = "common/demo_engine.rs"]
mod demo_engine;

use std::path::PathBuf;
use std::time::Duration;

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};
use bevy::window::WindowResolution;
use bevy_pixelgen::PixelGenEditorPlugin;
use bevy_pixelgen::prelude::*;

fn main() {
    let model = std::env::args().nth(1).map(PathBuf::from);
    let script = std::env::var_os("PIXELGEN_EDITOR_SCRIPT").map(PathBuf::from);
    let pixelgen = match &model {
        Some(dir) => PixelGenPlugin::new(ModelConfig::new(ModelSource::local(dir))),
        None => {
            info!("no model folder given: using the procedural demo engine");
            PixelGenPlugin::with_engine(demo_engine::demo_factory(Duration::from_millis(40)))
        }
    };
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(WindowPlugin {
        primary_window: Some(Window {
            title: "DGX-Pixels editor".into(),
            resolution: WindowResolution::new(1280, 720),
            ..default()
        }),
        ..default()
    }))
    .insert_resource(ClearColor(Color::srgb(0.16, 0.17, 0.2)))
    .add_plugins(PixelGenPlugin {
        output_dir: None,
        ..pixelgen
    })
    .add_plugins(PixelGenEditorPlugin::default())
    .add_systems(Startup, setup)
    .add_systems(Update, show_newest);
    if let Some(dir) = script {
        app.insert_resource(Script { dir, frame: 0 })
            .add_systems(Update, run_script);
    }
    app.run();
}

/// The sprite that shows the newest gallery item.
#[derive(Component)]
struct Showcase;

fn setup(mut commands: Commands) {
    commands.spawn(Camera2d);
    commands.spawn((
        Sprite::default(),
        Transform::from_xyz(170.0, 0.0, 0.0).with_scale(Vec3::splat(8.0)),
        Visibility::Hidden,
        Showcase,
    ));
}

fn show_newest(
    gallery: Res<Gallery>,
    mut showcase: Single<(&mut Sprite, &mut Visibility), With<Showcase>>,
) {
    if !gallery.is_changed() {
        return;
    }
    if let Some(item) = gallery.items.last() {
        showcase.0.image = item.image.clone();
        *showcase.1 = Visibility::Visible;
    }
}

/// The scripted run: where screenshots go and the frame count.
#[derive(Resource)]
struct Script {
    dir: PathBuf,
    frame: u32,
}

fn run_script(
    mut script: ResMut<Script>,
    mut state: ResMut<EditorState>,
    gallery: Res<Gallery>,
    mut actions: MessageWriter<EditorAction>,
    mut commands: Commands,
    mut exit: MessageWriter<AppExit>,
    mut done_at: Local<Option<u32>>,
) {
    script.frame += 1;
    let frame = script.frame;
    let empty = script.dir.join("editor_empty.png");
    let generated = script.dir.join("editor_generated.png");
    match frame {
        30 => {
            commands
                .spawn(Screenshot::primary_window())
                .observe(save_to_disk(empty));
        }
        40 => {
            actions.write(EditorAction::ApplyPreset("Item icon".into()));
        }
        41 => {
            state.prompt = "red health potion".into();
            state.seed_locked = true;
            state.seed = 7;
            actions.write(EditorAction::Generate);
        }
        _ => {}
    }
    if done_at.is_none() && frame > 41 && !gallery.items.is_empty() {
        *done_at = Some(frame);
    }
    if let Some(at) = *done_at {
        if frame == at + 30 {
            commands
                .spawn(Screenshot::primary_window())
                .observe(save_to_disk(generated.clone()));
        }
        if frame > at + 30 && generated.exists() {
            exit.write(AppExit::Success);
        }
    }
    if frame > 3000 {
        error!("scripted run: no sprite after 3000 frames");
        exit.write(AppExit::error());
    }
}
