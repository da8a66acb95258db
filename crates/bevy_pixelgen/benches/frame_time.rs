//! Frame time of a headless Bevy app at a fixed 60 Hz timestep, idle versus with the plugin
//! generating continuously on the tiny SDXL fixture (real loading, sampling, VAE, pixelize).
//!
//! `cargo bench -p bevy_pixelgen --bench frame_time` (release). Environment: `FRAMES`
//! (measured frames per mode, default 600 = 10 s), `STEPS` (sampling steps per sprite,
//! default 8), `GEN_SIZE` (generation side in pixels, default 128), `MODEL` (model folder,
//! default the tiny fixture). Idle and generating frames run in interleaved blocks of 120 in
//! the same app, so both see the same background load on the machine.
//!
//! Each frame runs the main schedule once (`App::update`) with a small game workload
//! (10 000 entities integrated by a system) and the plugin's systems; the time of that call
//! is the frame time. The loop then sleeps to the next 1/60 s tick, like a vsynced game.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::asset::AssetPlugin;
use bevy::ecs::system::RunSystemOnce;
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
        if !matches!(f.error, SpriteError::Cancelled) {
            eprintln!("generation failed: {}", f.error);
        }
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
}

impl Stats {
    fn of(mut times: Vec<f64>) -> Self {
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        Stats {
            p50: at(0.50),
            p99: at(0.99),
            max: times[times.len() - 1],
            mean: times.iter().sum::<f64>() / times.len() as f64,
        }
    }
}

/// Keeps two requests in flight and remembers them so an idle block can cancel them.
struct Load {
    seed: u64,
    steps: usize,
    side: u32,
    tickets: Vec<Ticket>,
}

impl Load {
    fn top_up(&mut self, app: &mut App) {
        while app.world().resource::<PixelGenQueue>().in_flight() < 2 {
            self.seed += 1;
            let request = SpriteRequest::new("a pixel art knight with a sword, 16-bit sprite")
                .size(16, 16)
                .generation_size(self.side, self.side)
                .steps(self.steps)
                .seed(self.seed);
            let t = app
                .world_mut()
                .run_system_once(move |mut pg: PixelGen| pg.submit(request.clone()))
                .expect("PixelGen is ready");
            self.tickets.push(t);
        }
        self.tickets.retain(|t| !t.status().is_finished());
    }

    /// Cancels everything and runs (unmeasured) frames until the worker is idle.
    fn stop(&mut self, app: &mut App) {
        for t in self.tickets.drain(..) {
            t.cancel();
        }
        let tick = Duration::from_secs_f64(1.0 / 60.0);
        while app.world().resource::<PixelGenQueue>().in_flight() > 0 {
            app.update();
            std::thread::sleep(tick);
        }
    }
}

/// One block of `frames` fixed-timestep frames; the frame times in ms.
fn block(app: &mut App, frames: usize, load: Option<&mut Load>) -> Vec<f64> {
    let tick = Duration::from_secs_f64(1.0 / 60.0);
    let mut load = load;
    let mut times = Vec::with_capacity(frames);
    let mut next = Instant::now();
    for _ in 0..frames {
        if let Some(l) = load.as_deref_mut() {
            l.top_up(app);
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
    times
}

/// Idle and generating blocks of 120 frames, interleaved, so both see the same background
/// load on the machine: (idle, generating, sprites finished while generating).
fn interleaved(app: &mut App, frames: usize, steps: usize, side: u32) -> (Stats, Stats, usize) {
    let mut load = Load {
        seed: 0,
        steps,
        side,
        tickets: Vec::new(),
    };
    // Warm up: the model loads and a first sprite finishes.
    let start = Instant::now();
    while app.world().resource::<Done>().0 == 0 {
        block(app, 1, Some(&mut load));
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no sprite in 5 minutes"
        );
    }
    let (mut idle, mut busy, mut sprites) = (Vec::new(), Vec::new(), 0);
    let per_block = 120;
    for _ in 0..frames.div_ceil(per_block) {
        load.stop(app);
        idle.extend(block(app, per_block, None));
        let before = app.world().resource::<Done>().0;
        busy.extend(block(app, per_block, Some(&mut load)));
        sprites += app.world().resource::<Done>().0 - before;
    }
    load.stop(app);
    (Stats::of(idle), Stats::of(busy), sprites)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let frames = env_usize("FRAMES", 1200);
    let steps = env_usize("STEPS", 8);
    let side = env_usize("GEN_SIZE", 128) as u32;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let capped = bevy_pixelgen::default_compute_threads();
    println!(
        "frame time of the main schedule at 60 Hz, {frames} idle + {frames} generating frames per row \
         (interleaved blocks of 120), {cores} cores; tiny SDXL, {side}x{side}, {steps} steps"
    );
    println!(
        "{:<30} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8}",
        "worker compute",
        "idle p50",
        "idle p99",
        "gen p50",
        "gen p99",
        "gen max",
        "gen mean",
        "p99 delta",
        "sprites"
    );
    for (name, threads) in [
        (format!("{capped} thread(s) (default)"), Some(capped)),
        ("rayon global pool".to_owned(), None),
    ] {
        let mut app = app(threads);
        let (idle, busy, sprites) = interleaved(&mut app, frames, steps, side);
        println!(
            "{name:<30} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>+10.3} {:>8}",
            idle.p50,
            idle.p99,
            busy.p50,
            busy.p99,
            busy.max,
            busy.mean,
            busy.p99 - idle.p99,
            sprites
        );
    }
}
