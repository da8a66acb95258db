//! A tiny top-down dungeon game whose hero, enemies and loot are generated while it runs.
//!
//! ```text
//! cargo run --example dungeon                                                  # demo engine
//! cargo run --release --example dungeon -- --model models/stable-diffusion-xl-base-1.0
//! ```
//!
//! Arrow keys or WASD move the hero; walking over an item picks it up; enemies wander and
//! push you back. Everything uses only the plugin's public API:
//!
//! - the hero is a consistent set requested at startup: the walk template seen from 4
//!   directions (west mirrored from east), one palette and baseline for all 32 frames; a
//!   [`ClipPlayer`] plays the walk of the direction it moves in and holds the first frame
//!   when it stands;
//! - enemies are recipe files loaded as images (`asset_server.load("dungeon/slime.pixelgen.ron")`):
//!   a recipe's random seed is derived from its text, so every slime shares one generated
//!   sprite, and with Bevy's `file_watcher` feature an edited recipe regenerates them all;
//! - items are requested from a prompt list with random seeds as they appear, and show a
//!   checkerboard until their sprite is ready;
//! - a message handler logs [`SpriteFinished`] and [`SpriteFailed`].
//!
//! Without `--model` a procedural demo engine stands in for SDXL (clearly labelled on
//! screen). `--script DIR` drives a fixed run for the window test and exits.

#[path = "common/demo_engine.rs"]
mod demo_engine;
#[path = "common/script.rs"]
mod script;

use std::collections::VecDeque;
use std::path::PathBuf;

use bevy::prelude::*;
use bevy::window::WindowResolution;
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass, egui};
use bevy_pixelgen::prelude::*;
use clap::Parser;
use demo_engine::EngineChoice;
use script::Script;

/// Sprite side (px) and on-screen zoom.
const SIDE: u32 = 16;
const ZOOM: f32 = 3.0;
/// The walkable floor: half extents (world units) around the origin.
const ROOM: Vec2 = Vec2::new(320.0, 200.0);
/// Floor tile size (world units).
const TILE: f32 = 40.0;
/// Hero speed (units per second).
const SPEED: f32 = 220.0;
/// How close the hero must come to pick an item up or be hit.
const REACH: f32 = 30.0;
/// Most items and enemies on the floor at once.
const MAX_ITEMS: usize = 5;
const MAX_ENEMIES: usize = 5;

/// Enemy kinds: their recipe files under `assets/`.
const ENEMIES: [(&str, &str); 3] = [
    ("slime", "dungeon/slime.pixelgen.ron"),
    ("bat", "dungeon/bat.pixelgen.ron"),
    ("skeleton", "dungeon/skeleton.pixelgen.ron"),
];
/// What can appear on the floor.
const ITEMS: [&str; 6] = [
    "red health potion",
    "gold coin",
    "blue mana crystal",
    "silver key",
    "brown bread loaf",
    "emerald gem",
];

#[derive(Parser, Debug)]
#[command(about = "A tiny top-down dungeon whose hero, enemies and loot are generated")]
struct Args {
    /// A diffusers SDXL folder (default: the procedural demo engine, not AI).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Drive a fixed run, save screenshots and a manifest in DIR, then exit (window test).
    #[arg(long, value_name = "DIR")]
    script: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    // No `--tiny` here: the enemy recipe files ask for SDXL's 1024 px, which the tiny test
    // model draws far too slowly on a CPU (`runtime_loot --tiny` is the smoke run).
    let engine = EngineChoice::from_args(args.model, false);
    let pixelgen = engine.plugin(args.script.as_deref());
    let scripted = args.script.is_some();
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: "DGX-Pixels: dungeon".into(),
                    resolution: WindowResolution::new(800, 600),
                    ..default()
                }),
                ..default()
            })
            .set(AssetPlugin {
                // The recipe files, wherever the example is started from.
                file_path: concat!(env!("CARGO_MANIFEST_DIR"), "/assets").into(),
                ..default()
            }),
    )
    .insert_resource(ClearColor(Color::srgb(0.07, 0.06, 0.08)))
    .add_plugins(pixelgen)
    .add_plugins(EguiPlugin::default())
    .add_message::<SpawnItem>()
    .add_message::<SpawnEnemy>()
    .insert_resource(Game {
        engine: engine.label(),
        picked: 0,
        hits: 0,
        log: VecDeque::new(),
        item_timer: Timer::from_seconds(2.5, TimerMode::Repeating),
        enemy_timer: Timer::from_seconds(4.0, TimerMode::Repeating),
        spawning: !scripted,
    })
    .insert_resource(engine.clone())
    .add_systems(Startup, setup)
    .add_systems(
        Update,
        (
            spawn_on_timers,
            spawn_items,
            spawn_enemies,
            move_hero,
            wander,
            pick_up,
            get_hit,
            react_to_generation,
        )
            .chain(),
    )
    .add_systems(EguiPrimaryContextPass, draw_hud);
    engine.explain("dungeon");
    if let Some(dir) = args.script {
        app.insert_resource(Script::new(dir)).add_systems(
            Update,
            (
                run_script.before(spawn_items).before(move_hero),
                script::tick,
            ),
        );
    }
    app.run();
}

/// The hero.
#[derive(Component)]
struct Hero {
    ticket: Ticket,
    /// Knock-back velocity after a hit.
    push: Vec2,
}

/// An item on the floor.
#[derive(Component)]
struct Item {
    ticket: Ticket,
    name: String,
}

/// An enemy: its kind and wandering velocity.
#[derive(Component)]
struct Enemy {
    kind: &'static str,
    velocity: Vec2,
}

/// "Put an item here": from the timer, or the script.
#[derive(Message, Debug, Clone)]
struct SpawnItem {
    at: Vec2,
    name: String,
}

/// "Put an enemy here" (index into [`ENEMIES`], wandering or standing still).
#[derive(Message, Debug, Clone, Copy)]
struct SpawnEnemy {
    at: Vec2,
    kind: usize,
    wanders: bool,
}

/// Score, log and spawn timers.
#[derive(Resource)]
struct Game {
    engine: String,
    picked: u32,
    hits: u32,
    log: VecDeque<String>,
    item_timer: Timer,
    enemy_timer: Timer,
    /// The timers spawn things (off in the scripted run, which places them itself).
    spawning: bool,
}

impl Game {
    fn say(&mut self, line: String) {
        info!("{line}");
        self.log.push_back(line);
        while self.log.len() > 4 {
            self.log.pop_front();
        }
    }
}

/// A random number in `lo..hi` (the same generator the seeds come from).
fn random(lo: f32, hi: f32) -> f32 {
    let unit = (Seed::draw() >> 40) as f32 / (1u64 << 24) as f32;
    lo + (hi - lo) * unit
}

/// A random free spot on the floor, away from `avoid`.
fn random_spot(avoid: Vec2) -> Vec2 {
    let margin = SIDE as f32 * ZOOM;
    let mut at = Vec2::ZERO;
    for _ in 0..20 {
        at = Vec2::new(
            random(-ROOM.x + margin, ROOM.x - margin),
            random(-ROOM.y + margin, ROOM.y - margin),
        );
        if at.distance(avoid) > 150.0 {
            break;
        }
    }
    at
}

fn setup(mut commands: Commands, mut pixelgen: PixelGen, engine: Res<EngineChoice>) {
    commands.spawn(Camera2d);
    // Walls, then a checkered stone floor.
    commands.spawn((
        Sprite::from_color(
            Color::srgb(0.25, 0.22, 0.28),
            (ROOM + Vec2::splat(24.0)) * 2.0,
        ),
        Transform::from_xyz(0.0, 0.0, -2.0),
    ));
    let (nx, ny) = ((ROOM.x * 2.0 / TILE) as i32, (ROOM.y * 2.0 / TILE) as i32);
    for ix in 0..nx {
        for iy in 0..ny {
            let shade = if (ix + iy) % 2 == 0 { 0.16 } else { 0.18 };
            commands.spawn((
                Sprite::from_color(
                    Color::srgb(shade, shade * 0.9, shade * 0.8),
                    Vec2::splat(TILE),
                ),
                Transform::from_xyz(
                    -ROOM.x + TILE * (ix as f32 + 0.5),
                    -ROOM.y + TILE * (iy as f32 + 0.5),
                    -1.0,
                ),
            ));
        }
    }
    let request =
        SpriteRequest::new("a young hero with a blue cloak and a sword, top-down view, pixel art")
            .size(SIDE, SIDE)
            .steps(8)
            .animate(Action::Walk)
            .directions(4, true);
    let ticket = pixelgen.submit(engine.fit(request));
    // Standing still, facing the viewer, until the hero moves.
    let mut player = ClipPlayer::new(ticket.clips());
    player.play("walk_south");
    player.paused = true;
    commands.spawn((
        Sprite::from_atlas_image(
            ticket.handle().clone(),
            TextureAtlas {
                layout: ticket.layout().cloned().unwrap_or_default(),
                index: 0,
            },
        ),
        Transform::from_xyz(-100.0, 0.0, 2.0).with_scale(Vec3::splat(ZOOM)),
        player,
        Hero {
            ticket,
            push: Vec2::ZERO,
        },
    ));
}

fn spawn_on_timers(
    time: Res<Time>,
    mut game: ResMut<Game>,
    hero: Single<&Transform, With<Hero>>,
    items: Query<(), With<Item>>,
    enemies: Query<(), With<Enemy>>,
    mut new_items: MessageWriter<SpawnItem>,
    mut new_enemies: MessageWriter<SpawnEnemy>,
) {
    if !game.spawning {
        return;
    }
    let hero = hero.translation.truncate();
    if game.item_timer.tick(time.delta()).just_finished() && items.iter().count() < MAX_ITEMS {
        let name = ITEMS[(Seed::draw() % ITEMS.len() as u64) as usize];
        new_items.write(SpawnItem {
            at: random_spot(hero),
            name: name.to_owned(),
        });
    }
    if game.enemy_timer.tick(time.delta()).just_finished() && enemies.iter().count() < MAX_ENEMIES {
        new_enemies.write(SpawnEnemy {
            at: random_spot(hero),
            kind: (Seed::draw() % ENEMIES.len() as u64) as usize,
            wanders: true,
        });
    }
}

/// Items: one sprite request each (random seed), shown at once with its placeholder.
fn spawn_items(
    mut commands: Commands,
    mut spawns: MessageReader<SpawnItem>,
    mut pixelgen: PixelGen,
    engine: Res<EngineChoice>,
) {
    for spawn in spawns.read() {
        let request = SpriteRequest::new(format!("{}, game item, pixel art", spawn.name))
            .size(SIDE, SIDE)
            .steps(8);
        let ticket = pixelgen.submit(engine.fit(request));
        commands.spawn((
            Sprite::from_image(ticket.handle().clone()),
            Transform::from_translation(spawn.at.extend(0.0)).with_scale(Vec3::splat(ZOOM)),
            Item {
                ticket,
                name: spawn.name.clone(),
            },
        ));
    }
}

/// Enemies: the kind's recipe file, loaded as an image (generated once, shared by all).
fn spawn_enemies(
    mut commands: Commands,
    mut spawns: MessageReader<SpawnEnemy>,
    server: Res<AssetServer>,
    mut game: ResMut<Game>,
) {
    for spawn in spawns.read() {
        let (kind, recipe) = ENEMIES[spawn.kind % ENEMIES.len()];
        let image: Handle<Image> = server.load(recipe);
        let velocity = if spawn.wanders {
            Vec2::from_angle(random(0.0, std::f32::consts::TAU)) * 60.0
        } else {
            Vec2::ZERO
        };
        commands.spawn((
            Sprite::from_image(image),
            Transform::from_translation(spawn.at.extend(1.0)).with_scale(Vec3::splat(ZOOM)),
            Enemy { kind, velocity },
        ));
        game.say(format!("a {kind} appears"));
    }
}

fn move_hero(
    keys: Res<ButtonInput<KeyCode>>,
    time: Res<Time>,
    mut hero: Single<(&mut Hero, &mut Transform, &mut ClipPlayer)>,
) {
    let pressed = |a: KeyCode, b: KeyCode| keys.pressed(a) || keys.pressed(b);
    let mut dir = Vec2::ZERO;
    if pressed(KeyCode::ArrowLeft, KeyCode::KeyA) {
        dir.x -= 1.0;
    }
    if pressed(KeyCode::ArrowRight, KeyCode::KeyD) {
        dir.x += 1.0;
    }
    if pressed(KeyCode::ArrowDown, KeyCode::KeyS) {
        dir.y -= 1.0;
    }
    if pressed(KeyCode::ArrowUp, KeyCode::KeyW) {
        dir.y += 1.0;
    }
    let dt = time.delta_secs();
    let (hero, transform, player) = &mut *hero;
    // Walk the way it moves (the stronger axis); standing holds the walk's first frame.
    if dir == Vec2::ZERO {
        player.restart();
        player.paused = true;
    } else {
        let facing = match (dir.x.abs() >= dir.y.abs(), dir.x > 0.0, dir.y > 0.0) {
            (true, true, _) => "walk_east",
            (true, false, _) => "walk_west",
            (false, _, true) => "walk_north",
            (false, _, false) => "walk_south",
        };
        player.play(facing);
        player.paused = false;
    }
    let step = dir.normalize_or_zero() * SPEED * dt + hero.push * dt;
    hero.push *= (1.0 - 6.0 * dt).max(0.0);
    let half = SIDE as f32 * ZOOM / 2.0;
    let at = (transform.translation.truncate() + step).clamp(-ROOM + half, ROOM - half);
    transform.translation = at.extend(transform.translation.z);
}

fn wander(time: Res<Time>, mut enemies: Query<(&mut Enemy, &mut Transform)>) {
    let half = SIDE as f32 * ZOOM / 2.0;
    for (mut enemy, mut transform) in &mut enemies {
        let mut at = transform.translation.truncate() + enemy.velocity * time.delta_secs();
        if at.x.abs() > ROOM.x - half {
            enemy.velocity.x = -enemy.velocity.x;
        }
        if at.y.abs() > ROOM.y - half {
            enemy.velocity.y = -enemy.velocity.y;
        }
        at = at.clamp(-ROOM + half, ROOM - half);
        transform.translation = at.extend(transform.translation.z);
    }
}

/// Walking over an item picks it up (even one still generating: you get it anyway).
fn pick_up(
    mut commands: Commands,
    hero: Single<&Transform, With<Hero>>,
    items: Query<(Entity, &Item, &Transform)>,
    mut game: ResMut<Game>,
) {
    let at = hero.translation.truncate();
    for (entity, item, transform) in &items {
        if transform.translation.truncate().distance(at) < REACH {
            item.ticket.cancel();
            commands.entity(entity).despawn();
            game.picked += 1;
            game.say(format!("picked up: {}", item.name));
        }
    }
}

fn get_hit(
    mut hero: Single<(&mut Hero, &Transform)>,
    enemies: Query<(&Enemy, &Transform)>,
    mut game: ResMut<Game>,
) {
    let (hero, hero_at) = &mut *hero;
    let at = hero_at.translation.truncate();
    for (enemy, transform) in &enemies {
        let from = transform.translation.truncate();
        if from.distance(at) < REACH && hero.push.length() < 50.0 {
            hero.push = (at - from).normalize_or(Vec2::X) * 600.0;
            game.hits += 1;
            game.say(format!("the {} hits you", enemy.kind));
        }
    }
}

/// The plugin's messages: name what arrived, say what failed.
fn react_to_generation(
    mut finished: MessageReader<SpriteFinished>,
    mut failed: MessageReader<SpriteFailed>,
    items: Query<&Item>,
    hero: Single<&Hero>,
    mut game: ResMut<Game>,
) {
    for done in finished.read() {
        if let Some(item) = items.iter().find(|i| i.ticket.id() == done.ticket) {
            game.say(format!("a {} lies on the floor", item.name));
        } else if hero.ticket.id() == done.ticket {
            game.say("the hero is ready: arrows or WASD to move".to_owned());
        }
    }
    for fail in failed.read() {
        if !matches!(fail.error, SpriteError::Cancelled) {
            game.say(format!("a sprite failed: {}", fail.error));
        }
    }
}

fn draw_hud(mut contexts: EguiContexts, game: Res<Game>) -> Result {
    let ctx = contexts.ctx_mut()?;
    egui::Window::new("Dungeon")
        .anchor(egui::Align2::LEFT_TOP, [6.0, 6.0])
        .resizable(false)
        .collapsible(false)
        .title_bar(false)
        .show(ctx, |ui| {
            ui.colored_label(egui::Color32::from_rgb(255, 200, 80), &game.engine);
            ui.label(format!(
                "Arrows/WASD: move   items: {}   hits: {}",
                game.picked, game.hits
            ));
            if let Some(last) = game.log.back() {
                ui.label(last);
            }
        });
    Ok(())
}

/// The window test's run: an item right of the hero and a slime above, a screenshot once
/// every sprite is generated, then the hero walks right (the arrow key held) until the item
/// is picked up, and a second screenshot.
#[allow(clippy::too_many_arguments)]
fn run_script(
    mut commands: Commands,
    mut script: ResMut<Script>,
    mut keys: ResMut<ButtonInput<KeyCode>>,
    mut new_items: MessageWriter<SpawnItem>,
    mut new_enemies: MessageWriter<SpawnEnemy>,
    hero: Single<(&Hero, &Transform, &Sprite)>,
    items: Query<(&Item, &Transform)>,
    enemies: Query<(&Sprite, &Transform), With<Enemy>>,
    layouts: Res<Assets<TextureAtlasLayout>>,
    pixelgen: Res<PixelGenQueue>,
    game: Res<Game>,
) {
    let done = |t: &Ticket| matches!(t.status(), TicketStatus::Done { .. });
    let saved = |t: &Ticket| match t.status() {
        TicketStatus::Done { saved: Some(p) } => p.display().to_string(),
        _ => "none".to_owned(),
    };
    let (hero, hero_at, hero_sprite) = *hero;
    // The sheet rect of the frame the hero shows now.
    let hero_frame = || {
        let atlas = hero_sprite.texture_atlas.as_ref()?;
        let r = layouts.get(&atlas.layout)?.textures.get(atlas.index)?;
        Some(format!(
            "{} {} {} {}",
            r.min.x,
            r.min.y,
            r.width(),
            r.height()
        ))
    };
    match script.step {
        0 if script.frame == 20 => {
            new_items.write(SpawnItem {
                at: Vec2::new(150.0, 0.0),
                name: "red health potion".into(),
            });
            new_enemies.write(SpawnEnemy {
                at: Vec2::new(0.0, 130.0),
                kind: 0,
                wanders: false,
            });
            script.advance();
        }
        1 if done(&hero.ticket)
            && items.iter().count() == 1
            && items.iter().all(|(i, _)| done(&i.ticket))
            && pixelgen.recipe_asset_ticket(ENEMIES[0].1).is_some_and(done)
            && script.in_step() > 2 =>
        {
            script.shoot(&mut commands, "dungeon_before");
            script.note("zoom", ZOOM);
            let p = hero_at.translation;
            script.note("hero", format!("{} {} {}", p.x, p.y, saved(&hero.ticket)));
            script.note("hero_frame", hero_frame().unwrap_or_default());
            for (item, t) in &items {
                let p = t.translation;
                script.note("item", format!("{} {} {}", p.x, p.y, saved(&item.ticket)));
            }
            for (_, t) in &enemies {
                let p = t.translation;
                let ticket = pixelgen.recipe_asset_ticket(ENEMIES[0].1);
                script.note(
                    "enemy",
                    format!("{} {} {}", p.x, p.y, ticket.map_or("none".into(), saved)),
                );
            }
            script.advance();
        }
        2 if game.picked == 0 => keys.press(KeyCode::ArrowRight),
        2 => {
            keys.release(KeyCode::ArrowRight);
            script.advance();
        }
        3 if script.in_step() == 2 => {
            script.shoot(&mut commands, "dungeon_after");
            let p = hero_at.translation;
            script.note("hero_after", format!("{} {}", p.x, p.y));
            script.note("hero_after_frame", hero_frame().unwrap_or_default());
            script.note("picked", game.picked);
            script.note("items_left", items.iter().count());
            script.advance();
            script.finish();
        }
        _ => {}
    }
}
