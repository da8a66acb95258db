//! Frame time of a headless Bevy app at a fixed 60 Hz timestep, idle versus with the plugin
//! generating continuously on the tiny SDXL fixture (real loading, sampling, VAE, pixelize).
//!
//! `cargo bench -p bevy_pixelgen --bench frame_time` (release). Environment: `FRAMES`
//! (measured frames per mode, default 600 = 10 s), `STEPS` (sampling steps per sprite,
//! default 8), `GEN_SIZE` (generation side in pixels, default 128), `MODEL` (model folder,
//! default the tiny fixture). Modes run idle, capped, uncapped, idle again: the two idle rows
//! show how much the machine's own background load moved during the run.
//!
//! Each frame runs the main schedule once (`App::update`) with a small game workload
//! (10 000 entities integrated by a system) and the plugin's systems; the time of that call
//! is the frame time. The loop then sleeps to the next 1/60 s tick, like a vsynced game.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::asset::AssetPlugin;
use bevy::image::ImagePlugin;
use bevy::prelude::*;
use bevy_pixelgen::prelude::*;

#[derive(Component)]
struct Body {
    pos: Vec2,
    vel: Vec2,
}

fn spawn_bodies(mut commands: Commands) {
    for i in 0..10_000u32 {
        let f = i as f32;
        commands.spawn(Body {
            pos: Vec2::new(f.sin() * 100.0, f.cos() * 100.0),
            vel: Vec2::new((f * 0.37).cos(), (f * 0.11).sin()),
        });
    }
}

fn integrate(mut bodies: Query<&mut Body>) {
    let dt = 1.0 / 60.0;
    for mut b in &mut bodies {
        let acc = -b.pos * 0.01;
        b.vel += acc * dt;
        let v = b.vel;
        b.pos += v * dt;
    }
}

#[derive(Resource, Default)]
struct Done(usize);

fn count_done(
    mut done: ResMut<Done>,
    mut finished: MessageReader<SpriteFinished>,
    mut failed: MessageReader<SpriteFailed>,
) {
    done.0 += finished.read().count();
    for f in failed.read() {
        eprintln!("generation failed: {}", f.error);
    }
}

fn app(compute_threads: Option<usize>) -> App {
    let model = std::env::var_os("MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../pixelgen-diffusion/tests/fixtures/tiny-sdxl")
        });
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin::default(),
        ImagePlugin::default(),
        PixelGenPlugin {
            output_dir: None,
            compute_threads,
            ..PixelGenPlugin::new(ModelConfig::new(ModelSource::local(model)))
        },
    ))
    .init_resource::<Done>()
    .add_systems(Startup, spawn_bodies)
    .add_systems(Update, (integrate, count_done));
    app.finish();
    app.cleanup();
    app
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
    mean: f64,
    sprites: usize,
}

/// Runs `frames` fixed-timestep frames; with `generate`, keeps two requests in flight.
fn measure(
    app: &mut App,
    frames: usize,
    generate: bool,
    steps: usize,
    side: u32,
    seed0: u64,
) -> Stats {
    let tick = Duration::from_secs_f64(1.0 / 60.0);
    let mut seed = seed0;
    let mut submit = |app: &mut App| {
        let mut pg = app.world_mut().resource_mut::<PixelGen>();
        while pg.in_flight() < 2 {
            seed += 1;
            pg.submit(
                SpriteRequest::new("a pixel art knight with a sword, 16-bit sprite")
                    .size(16, 16)
                    .generation_size(side, side)
                    .steps(steps)
                    .seed(seed),
            );
        }
    };
    if generate {
        // Warm up: the model loads and the first sprite finishes before measuring.
        submit(app);
        let start = Instant::now();
        while app.world().resource::<Done>().0 == 0 {
            app.update();
            std::thread::sleep(tick);
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "no sprite in 5 minutes"
            );
        }
    } else {
        for _ in 0..60 {
            app.update();
        }
    }
    let done_before = app.world().resource::<Done>().0;
    let mut times = Vec::with_capacity(frames);
    let mut next = Instant::now();
    for _ in 0..frames {
        if generate {
            submit(app);
        }
        let t0 = Instant::now();
        app.update();
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        next += tick;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    let sprites = app.world().resource::<Done>().0 - done_before;
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        max: times[times.len() - 1],
        mean: times.iter().sum::<f64>() / times.len() as f64,
        sprites,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let frames = env_usize("FRAMES", 600);
    let steps = env_usize("STEPS", 8);
    let side = env_usize("GEN_SIZE", 128) as u32;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let capped = bevy_pixelgen::default_compute_threads();
    println!(
        "frame time of the main schedule, {frames} frames at 60 Hz, {cores} cores; tiny SDXL, {side}x{side}, {steps} steps"
    );
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "mode", "p50 ms", "p99 ms", "max ms", "mean ms", "sprites"
    );
    let row = |name: &str, s: &Stats| {
        println!(
            "{name:<34} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8}",
            s.p50, s.p99, s.max, s.mean, s.sprites
        );
    };
    let mut idle = app(Some(capped));
    let s = measure(&mut idle, frames, false, steps, side, 0);
    row("idle", &s);
    drop(idle);
    let mut gen_capped = app(Some(capped));
    let s = measure(&mut gen_capped, frames, true, steps, side, 1000);
    row(&format!("generating, {capped} compute thread(s)"), &s);
    drop(gen_capped);
    let mut gen_all = app(None);
    let s = measure(&mut gen_all, frames, true, steps, side, 2000);
    row("generating, rayon global pool", &s);
    drop(gen_all);
    let mut idle = app(Some(capped));
    let s = measure(&mut idle, frames, false, steps, side, 0);
    row("idle (again)", &s);
}
