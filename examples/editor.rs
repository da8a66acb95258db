//! The PixelGen editor panel in a Bevy window: type a prompt, pick a style, press Generate.
//!
//! ```text
//! cargo run --example editor -- models/stable-diffusion-xl-base-1.0   # real SDXL
//! cargo run --example editor                                          # demo engine, no model
//! ```
//!
//! Without a model folder a small procedural "demo engine" stands in for SDXL (seeded,
//! symmetric blob sprites), so the panel, queue and gallery can be tried on any machine.
//! F2 shows and hides the panel. The newest gallery sprite is shown in the scene, 8x. The
//! two sprites bottom right ("Hero" and "Chest") carry `PixelGenTarget`: pick one as the
//! panel's apply target and press "Apply" on a gallery item to swap its image (sheets play).
//! The panel's settings are kept in `.pixelgen/editor.ron` between runs.
//!
//! With `PIXELGEN_EDITOR_SCRIPT=DIR` the example drives itself (style preset, prompt,
//! Generate), saves `DIR/editor_empty.png` and `DIR/editor_generated.png` and exits: the
//! real-window test under Xvfb uses it (settings are neither read nor written then). The
//! script also applies the result to "Hero".

#[path = "common/demo_engine.rs"]
mod demo_engine;

use std::path::PathBuf;
use std::time::Duration;

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};
use bevy::window::WindowResolution;
use bevy_pixelgen::PixelGenEditorPlugin;
use bevy_pixelgen::prelude::*;

fn main() -> AppExit {
    let model = std::env::args().nth(1).map(PathBuf::from);
    let script = std::env::var_os("PIXELGEN_EDITOR_SCRIPT").map(PathBuf::from);
    let engine = demo_engine::EngineChoice::from_args(model.clone(), false);
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
    .add_plugins(PixelGenEditorPlugin {
        // A scripted run starts from the defaults and leaves no settings behind.
        settings_path: if script.is_some() {
            None
        } else {
            PixelGenEditorPlugin::default().settings_path
        },
        ..PixelGenEditorPlugin::default()
    })
    .insert_resource(EngineLabel(engine.label()))
    .add_systems(Startup, setup)
    .add_systems(Update, show_newest)
    .add_systems(
        bevy_pixelgen::bevy_egui::EguiPrimaryContextPass,
        draw_engine_label,
    );
    if let Some(dir) = script {
        app.insert_resource(Script { dir, frame: 0 })
            .add_systems(Update, run_script)
            .add_systems(
                Update,
                script_toggle_key.before(bevy_pixelgen::PixelGenEditorSystems::Apply),
            );
    }
    app.run()
}

/// Which engine makes the sprites, shown on screen (the demo engine is not AI).
#[derive(Resource)]
struct EngineLabel(String);

fn draw_engine_label(
    mut contexts: bevy_pixelgen::bevy_egui::EguiContexts,
    label: Res<EngineLabel>,
) -> Result {
    use bevy_pixelgen::bevy_egui::egui;
    let ctx = contexts.ctx_mut()?;
    egui::Area::new(egui::Id::new("engine-label"))
        .anchor(egui::Align2::RIGHT_TOP, [-12.0, 12.0])
        .show(ctx, |ui| {
            ui.colored_label(egui::Color32::from_rgb(255, 200, 80), &label.0);
        });
    Ok(())
}

/// The sprite that shows the newest gallery item.
#[derive(Component)]
struct Showcase;

fn setup(mut commands: Commands, mut images: ResMut<Assets<Image>>) {
    commands.spawn(Camera2d);
    commands.spawn((
        Sprite::default(),
        Transform::from_xyz(170.0, 0.0, 0.0).with_scale(Vec3::splat(8.0)),
        Visibility::Hidden,
        Showcase,
    ));
    // Scene sprites the panel may change ("apply to selected"): a grey checkerboard until then.
    let placeholder = images.add(bevy_pixelgen::checkerboard(
        bevy_pixelgen::pixelgen::Size::square(16),
    ));
    for (name, x) in [("Hero", 400.0), ("Chest", 520.0)] {
        commands.spawn((
            Sprite::from_image(placeholder.clone()),
            Transform::from_xyz(x, -230.0, 0.0).with_scale(Vec3::splat(4.0)),
            Name::new(name),
            PixelGenTarget,
        ));
    }
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

/// The scripted check of the toggle key once the sprite is in: F2 is text while the prompt
/// field has the keyboard, and toggles the panel again once it lost it (ends visible).
#[allow(clippy::too_many_arguments)]
fn script_toggle_key(
    script: Res<Script>,
    gallery: Res<Gallery>,
    state: Res<EditorState>,
    mut keys: ResMut<ButtonInput<KeyCode>>,
    mut contexts: bevy_pixelgen::bevy_egui::EguiContexts,
    mut start: Local<Option<u32>>,
    mut exit: MessageWriter<AppExit>,
) -> Result {
    use bevy_pixelgen::bevy_egui::egui;
    if start.is_none() && !gallery.items.is_empty() {
        *start = Some(script.frame);
    }
    let Some(s) = *start else {
        return Ok(());
    };
    let prompt = egui::Id::new(bevy_pixelgen::editor::PROMPT_FIELD);
    let ctx = contexts.ctx_mut()?;
    let mut expect = |visible: bool, why: &str| {
        if state.visible != visible {
            error!("scripted run: {why}");
            exit.write(AppExit::error());
        }
    };
    match script.frame.saturating_sub(s) {
        2 => ctx.memory_mut(|m| m.request_focus(prompt)),
        6 | 12 | 16 => keys.press(KeyCode::F2),
        7 | 13 | 17 => keys.release(KeyCode::F2),
        9 => {
            expect(
                true,
                "F2 hid the panel while the prompt field had the keyboard",
            );
            ctx.memory_mut(|m| m.surrender_focus(prompt));
        }
        15 => expect(false, "F2 did not hide the panel"),
        19 => expect(true, "F2 did not show the panel again"),
        _ => {}
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_script(
    mut script: ResMut<Script>,
    mut state: ResMut<EditorState>,
    gallery: Res<Gallery>,
    mut actions: MessageWriter<EditorAction>,
    mut commands: Commands,
    mut exit: MessageWriter<AppExit>,
    mut done_at: Local<Option<u32>>,
    targets: Query<(Entity, &Name), With<PixelGenTarget>>,
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
    if done_at.is_none()
        && frame > 41
        && let Some(item) = gallery.items.last()
    {
        *done_at = Some(frame);
        if let Some((hero, _)) = targets.iter().find(|(_, n)| n.as_str() == "Hero") {
            actions.write(EditorAction::ApplyToTarget {
                item: item.ticket,
                target: hero,
            });
        }
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
