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

use std::path::PathBuf;
use std::time::Duration;

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};
use bevy::window::WindowResolution;
use bevy_pixelgen::pixelgen::{
    CacheKey, Control, GeneratedSprite, ModelIdentity, Progress, SpriteEngine,
};
use bevy_pixelgen::prelude::*;
use bevy_pixelgen::{EngineFactory, PixelGenEditorPlugin, pixelgen};

fn main() -> AppExit {
    let model = std::env::args().nth(1).map(PathBuf::from);
    let script = std::env::var_os("PIXELGEN_EDITOR_SCRIPT").map(PathBuf::from);
    let pixelgen = match &model {
        Some(dir) => PixelGenPlugin::new(ModelConfig::new(ModelSource::local(dir))),
        None => {
            info!("no model folder given: using the procedural demo engine");
            PixelGenPlugin::with_engine(EngineFactory::new(|| {
                Ok(Box::new(DemoEngine) as Box<dyn SpriteEngine>)
            }))
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
    .add_systems(Startup, setup)
    .add_systems(Update, show_newest);
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
    let prompt = egui::Id::new(bevy_pixelgen::PROMPT_FIELD);
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

/// A stand-in for SDXL: a seeded, mirror-symmetric blob sprite with an outline.
struct DemoEngine;

impl SpriteEngine for DemoEngine {
    fn model_identity(&mut self) -> pixelgen::Result<ModelIdentity> {
        Ok(ModelIdentity("demo-engine".into()))
    }

    fn generate(
        &mut self,
        recipe: &Recipe,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> pixelgen::Result<GeneratedSprite> {
        let recipe = recipe.clone().with_drawn_seed();
        let total = recipe.steps.clamp(1, 20);
        for step in 1..=total {
            std::thread::sleep(Duration::from_millis(40));
            let p = Progress {
                step,
                total,
                preview: None,
            };
            if progress(&p) == Control::Cancel {
                return Err(pixelgen::PixelGenError::Cancelled { step, total });
            }
        }
        let image = demo_sprite(
            recipe.size.width,
            recipe.size.height,
            recipe.seed.value().unwrap_or(0),
        );
        Ok(GeneratedSprite {
            key: CacheKey::new(&recipe, &ModelIdentity("demo-engine".into()))?,
            image,
            recipe,
            raw_size: (0, 0),
            fell_back: false,
            elapsed: Duration::ZERO,
        })
    }
}

/// xorshift64* step.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A `w` x `h` sprite: random cells mirrored left-right inside an ellipse, three shades of a
/// seeded hue, black outline.
fn demo_sprite(w: u32, h: u32, seed: u64) -> image::RgbaImage {
    let mut rng = seed | 1;
    let base = [
        (next(&mut rng) % 160 + 80) as u8,
        (next(&mut rng) % 160 + 40) as u8,
        (next(&mut rng) % 160 + 40) as u8,
    ];
    let shade = |k: f32| base.map(|c| (f32::from(c) * k).min(255.0) as u8);
    let shades = [shade(0.6), shade(1.0), shade(1.3)];
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let half = w.div_ceil(2);
    let mut cells = vec![0u8; (half * h) as usize];
    for y in 0..h {
        for x in 0..half {
            let dx = (x as f32 + 0.5 - cx) / (cx * 0.85);
            let dy = (y as f32 + 0.5 - cy) / (cy * 0.85);
            let inside = dx * dx + dy * dy < 1.0;
            let r = next(&mut rng) % 100;
            cells[(y * half + x) as usize] = if inside && r < 75 {
                1 + (r % 3) as u8
            } else {
                0
            };
        }
    }
    let cell = |x: i64, y: i64| -> u8 {
        if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
            return 0;
        }
        let mx = if x < i64::from(half) {
            x
        } else {
            i64::from(w) - 1 - x
        };
        cells[(y * i64::from(half) + mx) as usize]
    };
    image::RgbaImage::from_fn(w, h, |x, y| {
        let (xi, yi) = (i64::from(x), i64::from(y));
        match cell(xi, yi) {
            0 => {
                let near = [(-1, 0), (1, 0), (0, -1), (0, 1)]
                    .iter()
                    .any(|(dx, dy)| cell(xi + dx, yi + dy) != 0);
                if near {
                    image::Rgba([20, 16, 24, 255])
                } else {
                    image::Rgba([0, 0, 0, 0])
                }
            }
            v => {
                let [r, g, b] = shades[usize::from(v - 1)];
                image::Rgba([r, g, b, 255])
            }
        }
    })
}
