//! Loot generated at runtime: open the chest (Space) and it drops items whose icons are
//! generated while you watch.
//!
//! ```text
//! cargo run --example runtime_loot                                                  # demo engine
//! cargo run --release --example runtime_loot -- --model models/stable-diffusion-xl-base-1.0
//! cargo run --release --example runtime_loot -- --tiny     # tiny random-weight SDXL (noise)
//! ```
//!
//! Every drop picks item prompts from a list and asks [`PixelGen`] for each icon with a
//! random seed (`--seed N` makes the drops and icons the same every run). The handles come back at once, so the items appear at once with a
//! checkerboard placeholder; each swaps to its icon when the worker is done. A message
//! handler reacts to [`SpriteFinished`] (the item "pops" and the log names it with its seed)
//! and [`SpriteFailed`] (the item turns red and the log says why). Opening the chest again
//! cancels icons still waiting. The chest opens by itself every 10 s.
//!
//! Without `--model` a procedural demo engine stands in for SDXL (clearly labelled on
//! screen). `--script DIR` drives a fixed run for the window test and exits.

#[path = "common/demo_engine.rs"]
mod demo_engine;
#[path = "common/script.rs"]
mod script;

use std::collections::VecDeque;
use std::f32::consts::PI;
use std::path::PathBuf;

use bevy::prelude::*;
use bevy::window::WindowResolution;
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass, egui};
use bevy_pixelgen::prelude::*;
use clap::Parser;
use demo_engine::EngineChoice;
use script::Script;

/// What can drop from the chest.
const LOOT: [&str; 10] = [
    "red health potion",
    "blue mana potion",
    "gold coin pouch",
    "silver short sword",
    "ruby ring",
    "emerald amulet",
    "purple spell scroll",
    "brown leather boots",
    "orange fire gem",
    "green poison vial",
];
/// Items per drop.
const PER_DROP: usize = 4;
/// Item icon side (px) and on-screen zoom.
const ICON: u32 = 16;
const ZOOM: f32 = 4.0;
/// Where the items land (world units; the camera is centred on the origin).
const SLOT_Y: f32 = -20.0;
const SLOT_X: [f32; PER_DROP] = [-240.0, -80.0, 80.0, 240.0];
/// Where the chest stands.
const CHEST_AT: Vec2 = Vec2::new(0.0, -170.0);
/// How long the "ready" pop lasts (s).
const POP: f32 = 0.3;

#[derive(Parser, Debug)]
#[command(about = "A chest that drops loot whose icons are generated at runtime")]
struct Args {
    /// A diffusers SDXL folder (default: the procedural demo engine, not AI).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Run the real SDXL code on the tiny test model (random weights: the icons are noise).
    #[arg(long)]
    tiny: bool,
    /// Drive a fixed run, save screenshots and a manifest in DIR, then exit (window test).
    #[arg(long, value_name = "DIR")]
    script: Option<PathBuf>,
    /// Draw items and icon seeds from this seed instead of a fresh random one per drop (the
    /// same drops, and icons, every run).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

/// Where the seeds of the items and their icons come from.
#[derive(Resource, Debug)]
struct Seeds(Option<u64>);

impl Seeds {
    /// The next seed: a fixed sequence from `--seed`, else a fresh random one.
    fn next(&mut self) -> u64 {
        match &mut self.0 {
            Some(s) => {
                *s = s.wrapping_add(1);
                // SplitMix64's finaliser: well-spread picks from consecutive numbers.
                let mut z = s.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            }
            None => Seed::draw(),
        }
    }
}

fn main() {
    let args = Args::parse();
    let engine = EngineChoice::from_args(args.model, args.tiny);
    let pixelgen = engine.plugin(args.script.as_deref());
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(WindowPlugin {
        primary_window: Some(Window {
            title: "DGX-Pixels: runtime loot".into(),
            resolution: WindowResolution::new(800, 600),
            ..default()
        }),
        ..default()
    }))
    .insert_resource(ClearColor(Color::srgb(0.12, 0.1, 0.14)))
    .add_plugins(pixelgen)
    .add_plugins(EguiPlugin::default())
    .add_message::<DropLoot>()
    .insert_resource(Hud {
        engine: engine.label(),
        log: VecDeque::new(),
    })
    .insert_resource(AutoDrop(Timer::from_seconds(10.0, TimerMode::Repeating)))
    .insert_resource(engine.clone())
    .insert_resource(Seeds(args.seed))
    .add_systems(Startup, setup)
    .add_systems(
        Update,
        (
            open_on_key,
            drop_loot,
            react_to_generation,
            pop,
            shake_chest,
        )
            .chain(),
    )
    .add_systems(EguiPrimaryContextPass, draw_hud);
    engine.explain("runtime_loot");
    if let Some(dir) = args.script {
        app.insert_resource(Script::new(dir))
            .add_systems(Update, (run_script.before(drop_loot), script::tick));
    }
    app.run();
}

/// "Open the chest": drops a new set of items.
#[derive(Message, Debug, Clone, Copy)]
struct DropLoot;

/// The chest (its sprite is generated too).
#[derive(Component)]
struct Chest {
    ticket: TicketId,
    ready: bool,
    /// Why the chest's sprite failed, if it did.
    failed: Option<String>,
    shake: f32,
}

/// One dropped item, waiting for its icon or showing it.
#[derive(Component)]
struct Loot {
    ticket: TicketId,
    name: String,
    slot: usize,
    state: LootState,
}

#[derive(Debug, Clone, PartialEq)]
enum LootState {
    Pending,
    Ready { saved: Option<PathBuf> },
    Failed,
}

/// A short scale bounce when an icon arrives.
#[derive(Component)]
struct Pop(f32);

/// Opens the chest by itself now and then.
#[derive(Resource)]
struct AutoDrop(Timer);

/// What the on-screen panel shows.
#[derive(Resource)]
struct Hud {
    engine: String,
    log: VecDeque<String>,
}

impl Hud {
    fn say(&mut self, line: String) {
        info!("{line}");
        self.log.push_back(line);
        while self.log.len() > 5 {
            self.log.pop_front();
        }
    }
}

fn setup(mut commands: Commands, mut pixelgen: PixelGen, engine: Res<EngineChoice>) {
    commands.spawn(Camera2d);
    // The floor the loot lands on.
    commands.spawn((
        Sprite::from_color(Color::srgb(0.22, 0.18, 0.16), Vec2::new(720.0, 260.0)),
        Transform::from_xyz(0.0, -90.0, -1.0),
    ));
    let request = SpriteRequest::new("wooden treasure chest with brown planks, pixel art")
        .size(24, 24)
        .steps(8);
    let ticket = pixelgen.submit(engine.fit(request));
    commands.spawn((
        Sprite::from_image(ticket.handle().clone()),
        Transform::from_translation(CHEST_AT.extend(0.0)).with_scale(Vec3::splat(ZOOM)),
        Chest {
            ticket: ticket.id(),
            ready: false,
            failed: None,
            shake: 0.0,
        },
    ));
}

fn open_on_key(
    keys: Res<ButtonInput<KeyCode>>,
    time: Res<Time>,
    mut auto: ResMut<AutoDrop>,
    script: Option<Res<Script>>,
    mut drops: MessageWriter<DropLoot>,
) {
    let timer = script.is_none() && auto.0.tick(time.delta()).just_finished();
    if keys.just_pressed(KeyCode::Space) || timer {
        auto.0.reset();
        drops.write(DropLoot);
    }
}

/// Replaces the items on the floor with a new drop: one icon request per item, each shown at
/// once through its (placeholder) handle.
fn drop_loot(
    mut commands: Commands,
    mut drops: MessageReader<DropLoot>,
    mut pixelgen: PixelGen,
    engine: Res<EngineChoice>,
    old: Query<(Entity, &Loot)>,
    mut chest: Query<&mut Chest>,
    (mut hud, mut seeds): (ResMut<Hud>, ResMut<Seeds>),
) {
    if drops.read().count() == 0 {
        return;
    }
    for (entity, loot) in &old {
        if loot.state == LootState::Pending && pixelgen.cancel(loot.ticket) {
            hud.say(format!("left behind: {}", loot.name));
        }
        commands.entity(entity).despawn();
    }
    for mut c in &mut chest {
        c.shake = 0.4;
    }
    // Distinct items, picked with the generator the icon seeds come from.
    let mut names: Vec<&str> = LOOT.to_vec();
    for (slot, x) in SLOT_X.iter().enumerate() {
        let pick = (seeds.next() % names.len() as u64) as usize;
        let name = names.swap_remove(pick);
        let mut request = SpriteRequest::new(format!("{name}, game item icon, pixel art"))
            .size(ICON, ICON)
            .steps(8);
        if seeds.0.is_some() {
            request = request.seed(seeds.next());
        }
        let ticket = pixelgen.submit(engine.fit(request));
        commands.spawn((
            Sprite::from_image(ticket.handle().clone()),
            Transform::from_xyz(*x, SLOT_Y, 0.0).with_scale(Vec3::splat(ZOOM)),
            Loot {
                ticket: ticket.id(),
                name: name.to_owned(),
                slot,
                state: LootState::Pending,
            },
        ));
    }
    hud.say(format!("the chest opens: {PER_DROP} items drop"));
}

/// Reacts to the plugin's messages: a finished icon pops and is named in the log, a failed
/// one turns red with the reason.
fn react_to_generation(
    mut commands: Commands,
    mut finished: MessageReader<SpriteFinished>,
    mut failed: MessageReader<SpriteFailed>,
    mut items: Query<(Entity, &mut Loot, &mut Sprite)>,
    mut chest: Query<(&mut Chest, &mut Sprite), Without<Loot>>,
    mut hud: ResMut<Hud>,
) {
    for done in finished.read() {
        if let Ok((mut c, _)) = chest.single_mut()
            && c.ticket == done.ticket
        {
            c.ready = true;
            hud.say("the chest is ready: press Space to open it".to_owned());
        }
        for (entity, mut loot, _) in &mut items {
            if loot.ticket == done.ticket {
                loot.state = LootState::Ready {
                    saved: done.saved.clone(),
                };
                commands.entity(entity).insert(Pop(0.0));
                let seed = done.recipe.seed.value().unwrap_or_default();
                hud.say(format!("found: {} (seed {seed})", loot.name));
            }
        }
    }
    for fail in failed.read() {
        if let Ok((mut c, mut sprite)) = chest.single_mut()
            && c.ticket == fail.ticket
        {
            c.failed = Some(fail.error.to_string());
            sprite.color = Color::srgb(1.0, 0.4, 0.4);
            hud.say(format!("the chest could not be drawn: {}", fail.error));
            hud.say(
                "to get a model see docs/models.md; without --model the demo engine runs"
                    .to_owned(),
            );
        }
        for (_, mut loot, mut sprite) in &mut items {
            if loot.ticket == fail.ticket {
                loot.state = LootState::Failed;
                sprite.color = Color::srgb(1.0, 0.3, 0.3);
                hud.say(format!("{} failed: {}", loot.name, fail.error));
            }
        }
    }
}

fn pop(
    mut commands: Commands,
    time: Res<Time>,
    mut items: Query<(Entity, &mut Pop, &mut Transform)>,
) {
    for (entity, mut p, mut transform) in &mut items {
        p.0 += time.delta_secs();
        let t = (p.0 / POP).min(1.0);
        transform.scale = Vec3::splat(ZOOM * (1.0 + 0.35 * (t * PI).sin()));
        if t >= 1.0 {
            transform.scale = Vec3::splat(ZOOM);
            commands.entity(entity).remove::<Pop>();
        }
    }
}

fn shake_chest(time: Res<Time>, mut chest: Query<(&mut Chest, &mut Transform)>) {
    for (mut c, mut transform) in &mut chest {
        c.shake = (c.shake - time.delta_secs()).max(0.0);
        transform.rotation = Quat::from_rotation_z(0.15 * (c.shake * 40.0).sin() * c.shake);
    }
}

fn draw_hud(
    mut contexts: EguiContexts,
    hud: Res<Hud>,
    pixelgen: Res<PixelGenQueue>,
    items: Query<&Loot>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let waiting = items
        .iter()
        .filter(|l| l.state == LootState::Pending)
        .count();
    egui::Window::new("Loot")
        .anchor(egui::Align2::LEFT_TOP, [10.0, 10.0])
        .resizable(false)
        .collapsible(false)
        .default_width(380.0)
        .show(ctx, |ui| {
            ui.colored_label(egui::Color32::from_rgb(255, 200, 80), &hud.engine);
            ui.label(format!(
                "Space: open the chest   icons waiting: {waiting}   in the queue: {}",
                pixelgen.in_flight()
            ));
            ui.separator();
            for line in &hud.log {
                ui.label(line);
            }
        });
    Ok(())
}

/// The window test's run: wait for the chest (without a model: screenshot its failure and
/// stop), open it, screenshot the placeholders, wait for
/// every icon, screenshot them, write where each item is and which PNG it shows.
fn run_script(
    mut commands: Commands,
    mut script: ResMut<Script>,
    chest: Query<&Chest>,
    items: Query<(&Loot, &Transform, Has<Pop>)>,
    mut drops: MessageWriter<DropLoot>,
) {
    let failure = chest.iter().find_map(|c| c.failed.clone());
    match script.step {
        0 if script.frame > 10 && failure.is_some() => {
            script.shoot(&mut commands, "loot_failed");
            script.note("zoom", ZOOM);
            script.note("chest", format!("{} {}", CHEST_AT.x, CHEST_AT.y));
            script.note("failed", failure.unwrap_or_default());
            script.step = u32::MAX; // nothing more to do
            script.finish();
        }
        0 if script.frame > 10 && chest.iter().any(|c| c.ready) => {
            drops.write(DropLoot);
            script.advance();
        }
        1 if script.in_step() == 1 => {
            script.shoot(&mut commands, "loot_pending");
            script.note("zoom", ZOOM);
            for (loot, transform, _) in &items {
                let p = transform.translation;
                script.note("slot", format!("{} {} {}", loot.slot, p.x, p.y));
            }
            script.advance();
        }
        2 if items.iter().count() == PER_DROP
            && items
                .iter()
                .all(|(l, _, popping)| matches!(l.state, LootState::Ready { .. }) && !popping) =>
        {
            script.shoot(&mut commands, "loot_ready");
            for (loot, _, _) in &items {
                if let LootState::Ready { saved: Some(png) } = &loot.state {
                    script.note("png", format!("{} {}", loot.slot, png.display()));
                }
            }
            script.advance();
            script.finish();
        }
        _ => {}
    }
}
