//! The plugin in a headless app: placeholders, results in place, faults, cancel, queue, priority.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::asset::{AssetPlugin, Assets, Handle};
use bevy::ecs::system::RunSystemOnce;
use bevy::image::{Image, ImagePlugin, TextureAtlasLayout};
use bevy::prelude::*;
use bevy_pixelgen::prelude::*;
use bevy_pixelgen::{EngineFactory, MAX_PLACEHOLDER_SIDE, pixelgen};
use common::{Log, collect, submit};
use crossbeam_channel::{Receiver, Sender};
use pixelgen::{Control, ModelIdentity, PixelGenError, Size, SpriteEngine};

const TIMEOUT: Duration = Duration::from_secs(60);

/// What the fake engine saw, shared with the test.
#[derive(Default)]
struct Record {
    engines_built: AtomicUsize,
    generated: Mutex<Vec<String>>,
}

/// A test double: behaviour picked by words in the prompt.
/// `fail` errors, `panic` panics, `gate` runs steps until the gate opens (or it is
/// cancelled); anything else returns a solid sprite whose colour comes from the seed plus
/// the prompt's length.
struct FakeEngine {
    record: Arc<Record>,
    gate: Receiver<()>,
}

fn colour_of(seed: u64) -> [u8; 4] {
    [(seed % 200) as u8 + 20, (seed / 7 % 200) as u8, 90, 255]
}

impl SpriteEngine for FakeEngine {
    fn model_identity(&mut self) -> pixelgen::Result<ModelIdentity> {
        Ok(ModelIdentity("fake".into()))
    }

    fn render(
        &mut self,
        plan: &pixelgen::Plan,
        progress: &mut dyn FnMut(&pixelgen::Progress) -> Control,
    ) -> pixelgen::Result<pixelgen::Rendered> {
        let recipe = plan.recipe();
        if recipe.prompt.contains("panic") {
            panic!("fake engine panics on purpose");
        }
        if recipe.prompt.contains("fail") {
            return Err(PixelGenError::Engine("forced failure".into()));
        }
        if recipe.prompt.contains("gate") {
            let mut step = 0;
            loop {
                step += 1;
                let p = pixelgen::Progress {
                    step,
                    total: 1000,
                    preview: None,
                };
                if progress(&p) == Control::Cancel {
                    return Err(PixelGenError::Cancelled { step, total: 1000 });
                }
                if self.gate.recv_timeout(Duration::from_millis(5)).is_ok() {
                    break;
                }
                if step >= 1000 {
                    return Err(PixelGenError::Engine("gate never opened".into()));
                }
            }
        } else {
            progress(&pixelgen::Progress {
                step: 1,
                total: 1,
                preview: None,
            });
        }
        self.record
            .generated
            .lock()
            .unwrap()
            .push(recipe.prompt.clone());
        let seed = recipe.seed.value().unwrap_or(0) + recipe.prompt.len() as u64;
        let image = image::RgbaImage::from_pixel(
            recipe.size.width,
            recipe.size.height,
            image::Rgba(colour_of(seed)),
        );
        Ok(pixelgen::Rendered {
            image,
            fell_back: false,
        })
    }
}

struct Fake {
    record: Arc<Record>,
    gate: Sender<()>,
    factory: EngineFactory,
}

fn fake() -> Fake {
    let record = Arc::new(Record::default());
    let (gate, gate_rx) = crossbeam_channel::unbounded();
    let r = record.clone();
    let factory = EngineFactory::new(move || {
        r.engines_built.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(FakeEngine {
            record: r.clone(),
            gate: gate_rx.clone(),
        }) as Box<dyn SpriteEngine>)
    });
    Fake {
        record,
        gate,
        factory,
    }
}

fn app(plugin: PixelGenPlugin) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin::default(),
        ImagePlugin::default(),
        plugin,
    ))
    .init_resource::<Log>()
    .add_systems(Update, collect);
    app.finish();
    app.cleanup();
    app
}

fn fake_plugin(f: &Fake) -> PixelGenPlugin {
    PixelGenPlugin {
        output_dir: None,
        ..PixelGenPlugin::with_engine(f.factory.clone())
    }
}

/// Runs frames until `done` holds; panics after [`TIMEOUT`].
fn run_until(app: &mut App, what: &str, mut done: impl FnMut(&mut App) -> bool) {
    let start = Instant::now();
    loop {
        app.update();
        if done(app) {
            return;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn log(app: &App) -> &Log {
    app.world().resource::<Log>()
}

fn finished(app: &App, id: TicketId) -> bool {
    log(app).finished.iter().any(|m| m.ticket == id)
}

fn failure(app: &App, id: TicketId) -> Option<SpriteError> {
    log(app)
        .failed
        .iter()
        .find(|m| m.ticket == id)
        .map(|m| m.error.clone())
}

fn over(app: &App, id: TicketId) -> bool {
    finished(app, id) || failure(app, id).is_some()
}

fn pixels(app: &App, h: &Handle<Image>) -> Option<(u32, u32, Vec<u8>)> {
    let img = app.world().resource::<Assets<Image>>().get(h)?;
    Some((
        img.width(),
        img.height(),
        img.data.clone().unwrap_or_default(),
    ))
}

fn wait_running(app: &mut App, t: &Ticket) {
    let id = t.id();
    run_until(app, "the gated job to run", |a| {
        log(a).progress.iter().any(|p| p.ticket == id)
    });
    assert!(
        matches!(t.status(), TicketStatus::Running { .. }),
        "{:?}",
        t.status()
    );
}

#[test]
fn placeholder_at_once_then_the_sprite_in_place() {
    let f = fake();
    let mut app = app(fake_plugin(&f));
    // Gated, so the sprite cannot arrive before the gate opens.
    let ticket = submit(
        &mut app,
        SpriteRequest::new("gate potion").size(24, 16).seed(77),
    );
    let handle = ticket.handle().clone();
    app.update();
    let (w, h, data) = pixels(&app, &handle).expect("placeholder inserted on the first frame");
    assert_eq!((w, h), (24, 16));
    // Checkerboard: cells of min(24, 16) / 4 = 4 px alternate between two greys.
    let px = |x: u32, y: u32| data[((y * w + x) * 4) as usize..][..4].to_vec();
    assert_eq!(px(0, 0), vec![0x55, 0x55, 0x55, 255]);
    assert_eq!(px(4, 0), vec![0x99, 0x99, 0x99, 255]);
    assert_eq!(px(4, 4), vec![0x55, 0x55, 0x55, 255]);
    let placeholder = app
        .world()
        .resource::<Assets<Image>>()
        .get(&handle)
        .unwrap();
    assert_eq!(placeholder.sampler, bevy::image::ImageSampler::nearest());
    wait_running(&mut app, &ticket);
    assert_eq!(
        pixels(&app, &handle).unwrap().2,
        data,
        "placeholder while running"
    );

    f.gate.send(()).unwrap();
    run_until(&mut app, "the sprite", |a| finished(a, ticket.id()));
    let (w, h, data) = pixels(&app, &handle).expect("sprite under the same handle");
    assert_eq!((w, h), (24, 16));
    assert!(
        data.chunks_exact(4)
            .all(|p| p == colour_of(77 + "gate potion".len() as u64)),
        "the fake's sprite"
    );
    let msg = &log(&app).finished[0];
    assert_eq!(msg.image, handle);
    assert_eq!(msg.recipe.seed, Seed::Fixed(77));
    assert!(matches!(
        ticket.status(),
        TicketStatus::Done { saved: None }
    ));
    assert_eq!(app.world().resource::<PixelGenQueue>().in_flight(), 0);
    assert_eq!(f.record.engines_built.load(Ordering::SeqCst), 1);
}

#[test]
fn random_seed_is_recorded_on_the_ticket() {
    let f = fake();
    let mut app = app(fake_plugin(&f));
    let t = submit(&mut app, SpriteRequest::new("gem"));
    let seed = t.recipe().seed.value().expect("drawn at submit");
    run_until(&mut app, "the sprite", |a| finished(a, t.id()));
    assert_eq!(log(&app).finished[0].recipe.seed, Seed::Fixed(seed));
}

#[test]
fn failure_and_panic_leave_the_app_running_and_the_next_request_succeeds() {
    let f = fake();
    let mut app = app(fake_plugin(&f));
    let fail = submit(&mut app, SpriteRequest::new("fail please").seed(1));
    let boom = submit(&mut app, SpriteRequest::new("panic please").seed(2));
    let ok = submit(&mut app, SpriteRequest::new("fine").seed(3).size(8, 8));
    run_until(&mut app, "all three", |a| {
        over(a, fail.id()) && over(a, boom.id()) && over(a, ok.id())
    });
    match failure(&app, fail.id()) {
        Some(SpriteError::Generation(e)) => assert!(e.to_string().contains("forced failure")),
        other => panic!("expected a generation error, got {other:?}"),
    }
    match failure(&app, boom.id()) {
        Some(SpriteError::Panicked { message }) => assert!(message.contains("on purpose")),
        other => panic!("expected a panic report, got {other:?}"),
    }
    assert!(matches!(
        fail.status(),
        TicketStatus::Failed(SpriteError::Generation(_))
    ));
    assert!(
        finished(&app, ok.id()),
        "the request after the panic succeeds"
    );
    let (w, h, _) = pixels(&app, ok.handle()).unwrap();
    assert_eq!((w, h), (8, 8));
    // Built once, then rebuilt after the panic; the failure alone does not rebuild.
    assert_eq!(f.record.engines_built.load(Ordering::SeqCst), 2);
    // The failed handles keep their placeholder.
    let (w, h, _) = pixels(&app, boom.handle()).unwrap();
    assert_eq!((w, h), (32, 32));
}

#[test]
fn cancel_a_queued_request_and_a_running_one() {
    let f = fake();
    let mut app = app(fake_plugin(&f));
    let running = submit(&mut app, SpriteRequest::new("gate one").seed(1));
    wait_running(&mut app, &running);
    let queued = submit(&mut app, SpriteRequest::new("second").seed(2));
    assert!(matches!(queued.status(), TicketStatus::Queued));
    assert_eq!(app.world().resource::<PixelGenQueue>().queued(), 1);
    assert!(queued.cancel());
    assert_eq!(app.world().resource::<PixelGenQueue>().queued(), 0);
    run_until(&mut app, "the queued cancel", |a| over(a, queued.id()));
    assert!(matches!(
        failure(&app, queued.id()),
        Some(SpriteError::Cancelled)
    ));
    assert!(!queued.cancel(), "already over");

    assert!(app.world().resource::<PixelGenQueue>().cancel(running.id()));
    run_until(&mut app, "the running cancel", |a| over(a, running.id()));
    assert!(matches!(
        failure(&app, running.id()),
        Some(SpriteError::Cancelled)
    ));
    assert!(
        f.record.generated.lock().unwrap().is_empty(),
        "neither was generated"
    );

    let after = submit(&mut app, SpriteRequest::new("after").seed(3));
    run_until(&mut app, "a request after cancels", |a| over(a, after.id()));
    assert!(finished(&app, after.id()));
}

#[test]
fn full_queue_is_an_error_and_the_queue_drains() {
    let f = fake();
    let mut app = app(PixelGenPlugin {
        queue_capacity: 1,
        ..fake_plugin(&f)
    });
    let first = submit(&mut app, SpriteRequest::new("gate").seed(1));
    wait_running(&mut app, &first);
    let waiting = submit(&mut app, SpriteRequest::new("waits").seed(2));
    let rejected = submit(&mut app, SpriteRequest::new("too many").seed(3));
    run_until(&mut app, "the rejection", |a| over(a, rejected.id()));
    assert!(matches!(
        failure(&app, rejected.id()),
        Some(SpriteError::QueueFull { capacity: 1 })
    ));
    f.gate.send(()).unwrap();
    run_until(&mut app, "the queue to drain", |a| {
        finished(a, first.id()) && finished(a, waiting.id())
    });
    assert_eq!(*f.record.generated.lock().unwrap(), vec!["gate", "waits"]);
}

#[test]
fn editor_requests_run_before_runtime_ones() {
    let f = fake();
    let mut app = app(fake_plugin(&f));
    let first = submit(&mut app, SpriteRequest::new("gate").seed(1));
    wait_running(&mut app, &first);
    let a = submit(&mut app, SpriteRequest::new("runtime a").seed(2));
    let bg = submit(
        &mut app,
        SpriteRequest::new("background")
            .seed(5)
            .priority(Priority::Background),
    );
    let b = submit(&mut app, SpriteRequest::new("runtime b").seed(3));
    let e = submit(
        &mut app,
        SpriteRequest::new("editor")
            .seed(4)
            .priority(Priority::Editor),
    );
    f.gate.send(()).unwrap();
    run_until(&mut app, "all", |app| {
        [&a, &b, &e, &bg].iter().all(|t| finished(app, t.id()))
    });
    assert_eq!(
        *f.record.generated.lock().unwrap(),
        vec!["gate", "editor", "runtime a", "runtime b", "background"]
    );
}

#[test]
fn engine_start_failure_is_reported_and_retried() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let f = fake();
    let inner = f.factory.clone();
    let counter = attempts.clone();
    let factory = EngineFactory::new(move || {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(PixelGenError::Engine("no weights yet".into()))
        } else {
            inner.build()
        }
    });
    let mut app = app(PixelGenPlugin {
        output_dir: None,
        ..PixelGenPlugin::with_engine(factory)
    });
    let first = submit(&mut app, SpriteRequest::new("one").seed(1));
    run_until(&mut app, "the first", |a| over(a, first.id()));
    assert!(matches!(
        failure(&app, first.id()),
        Some(SpriteError::EngineStart(_))
    ));
    let second = submit(&mut app, SpriteRequest::new("two").seed(2));
    run_until(&mut app, "the second", |a| over(a, second.id()));
    assert!(finished(&app, second.id()));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[test]
fn invalid_request_fails_without_reaching_the_engine() {
    let f = fake();
    let mut app = app(fake_plugin(&f));
    let t = submit(&mut app, SpriteRequest::new("x").size(0, 16));
    run_until(&mut app, "the rejection", |a| over(a, t.id()));
    assert!(matches!(
        failure(&app, t.id()),
        Some(SpriteError::Invalid(_))
    ));
    assert_eq!(f.record.engines_built.load(Ordering::SeqCst), 0);
    // Nothing is allocated for what cannot run: the handle shows a tiny placeholder,
    // whatever size was asked (100000x100000 here).
    let (w, h, _) = pixels(&app, t.handle()).unwrap();
    assert_eq!((w, h), (2, 2));
    let huge = submit(&mut app, SpriteRequest::new("x").size(100_000, 100_000));
    let (w, h, _) = pixels(&app, huge.handle()).unwrap();
    assert_eq!((w, h), (2, 2));
}

#[test]
fn the_placeholder_is_in_the_assets_when_the_handle_is_returned() {
    let f = fake();
    let mut app = app(fake_plugin(&f));
    // Inside one system: submit, then look the handles up at once (no frame in between).
    let seen = app
        .world_mut()
        .run_system_once(|mut pg: PixelGen| {
            let sprite = pg.submit(SpriteRequest::new("gem").seed(1).size(12, 8));
            let sheet = pg.submit(
                SpriteRequest::new("walk")
                    .seed(1)
                    .size(8, 8)
                    .frames(["walk 1", "walk 2", "walk 3"]),
            );
            let image = |pg: &mut PixelGen, t: &Ticket| {
                pg.images().get(t.handle()).map(|i| (i.width(), i.height()))
            };
            let grid = sheet
                .layout()
                .and_then(|l| pg.layouts().get(l))
                .map(|l| (l.size.x, l.size.y, l.textures.len()));
            (
                image(&mut pg, &sprite),
                image(&mut pg, &sheet),
                grid,
                sprite.is_sheet(),
                sheet.is_sheet(),
            )
        })
        .unwrap();
    // The sprite's own size; the sheet's: 2 columns x 2 rows of 8x8, three frames.
    assert_eq!(
        seen,
        (
            Some((12, 8)),
            Some((16, 16)),
            Some((16, 16, 3)),
            false,
            true
        )
    );
    // Larger outputs show a scaled-down placeholder of the same shape.
    let big = submit(
        &mut app,
        SpriteRequest::new("banner")
            .seed(2)
            .size(1024, 512)
            .generation_size(1024, 1024),
    );
    let (w, h, _) = pixels(&app, big.handle()).unwrap();
    assert_eq!((w, h), (MAX_PLACEHOLDER_SIDE, MAX_PLACEHOLDER_SIDE / 2));
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "bevy-pixelgen-{name}-{}-{}",
        std::process::id(),
        Seed::draw()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn cache_serves_a_repeated_recipe_from_disk() {
    let f = fake();
    let cache = temp_dir("cache");
    let mut app = app(PixelGenPlugin {
        cache_dir: Some(cache.clone()),
        ..fake_plugin(&f)
    });
    let a = submit(&mut app, SpriteRequest::new("coin").seed(9).size(6, 6));
    run_until(&mut app, "the first", |app| over(app, a.id()));
    let b = submit(&mut app, SpriteRequest::new("coin").seed(9).size(6, 6));
    run_until(&mut app, "the second", |app| over(app, b.id()));
    let l = log(&app);
    assert!(!l.finished[0].from_cache && l.finished[1].from_cache);
    assert_eq!(l.finished[0].key, l.finished[1].key);
    assert_eq!(
        f.record.generated.lock().unwrap().len(),
        1,
        "generated once"
    );
    assert_eq!(
        pixels(&app, a.handle()).unwrap(),
        pixels(&app, b.handle()).unwrap()
    );
    std::fs::remove_dir_all(&cache).unwrap();
}

/// The real engine on the tiny random SDXL: real loading, sampling, pixelize and saving.
#[test]
fn tiny_model_end_to_end() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pixelgen-diffusion/tests/fixtures/tiny-sdxl");
    let out = temp_dir("out");
    let mut app = app(PixelGenPlugin {
        output_dir: Some(out.clone()),
        ..PixelGenPlugin::new(ModelConfig::new(ModelSource::local(model)))
    });
    let req = SpriteRequest::new("a pixel art knight with a sword, 16-bit sprite")
        .size(16, 16)
        .generation_size(32, 32)
        .steps(3)
        .seed(5);
    let t = submit(&mut app, req);
    app.update();
    assert_eq!(pixels(&app, t.handle()).unwrap().0, 16, "placeholder first");
    run_until(&mut app, "the tiny model", |a| over(a, t.id()));
    assert!(finished(&app, t.id()), "{:?}", failure(&app, t.id()));
    let steps: Vec<_> = log(&app)
        .progress
        .iter()
        .map(|p| (p.step, p.total))
        .collect();
    assert_eq!(steps, vec![(1, 3), (2, 3), (3, 3)]);
    // Every step carries a latent preview at latent resolution (the tiny VAE downsamples
    // by 4: 32 / 4 = 8), also on the ticket.
    assert!(log(&app).progress.iter().all(|p| {
        p.preview
            .as_ref()
            .is_some_and(|img| img.dimensions() == (8, 8))
    }));
    assert_eq!(t.preview().map(|p| p.dimensions()), Some((8, 8)));
    let (w, h, data) = pixels(&app, t.handle()).unwrap();
    assert_eq!((w, h), (16, 16));
    assert!(
        data.chunks_exact(4)
            .any(|p| p != [0x55, 0x55, 0x55, 255] && p != [0x99, 0x99, 0x99, 255]),
        "not the placeholder"
    );
    let msg = &log(&app).finished[0];
    let png = msg.saved.clone().expect("saved");
    assert!(png.starts_with(&out));
    let on_disk = image::open(&png).unwrap().into_rgba8();
    assert_eq!(on_disk.dimensions(), (16, 16));
    assert_eq!(
        on_disk.into_raw(),
        data,
        "the saved PNG is the sprite shown"
    );
    let ron = png.with_file_name(format!(
        "{}.pixelgen.ron",
        png.file_stem().unwrap().to_string_lossy()
    ));
    let recipe = Recipe::from_ron(&std::fs::read_to_string(ron).unwrap()).unwrap();
    assert_eq!(recipe, msg.recipe);
    assert_eq!(recipe.size, Size::square(16));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn sheet_gets_a_placeholder_grid_then_the_packed_frames() {
    let f = fake();
    let mut app = app(fake_plugin(&f));
    let mut recipe = Recipe {
        seed: Seed::Fixed(10),
        size: Size::square(4),
        frames: pixelgen::Frames::Prompts(vec!["gate a".into(), "bb".into(), "ccc".into()]),
        sheet: Some(pixelgen::SheetOptions {
            columns: Some(2),
            padding: 1,
            ..Default::default()
        }),
        ..Recipe::new("walk")
    };
    recipe.priority = Priority::Editor;
    let t = submit(&mut app, recipe);
    let layout = t.layout().cloned().expect("sheet tickets have a layout");
    app.update();
    let rects = |app: &App| {
        app.world()
            .resource::<Assets<TextureAtlasLayout>>()
            .get(&layout)
            .map(|l| (l.size, l.textures.clone()))
    };
    let (size, cells) = rects(&app).expect("placeholder layout on the first frame");
    assert_eq!(size, UVec2::new(9, 9));
    let expected: Vec<URect> = vec![
        URect::new(0, 0, 4, 4),
        URect::new(5, 0, 9, 4),
        URect::new(0, 5, 4, 9),
    ];
    assert_eq!(cells, expected);
    assert_eq!(
        pixels(&app, t.handle()).unwrap().0,
        9,
        "placeholder image of the sheet size"
    );

    wait_running(&mut app, &t);
    f.gate.send(()).unwrap();
    run_until(&mut app, "the sheet", |a| over(a, t.id()));
    assert!(finished(&app, t.id()), "{:?}", failure(&app, t.id()));
    let (size, cells) = rects(&app).unwrap();
    assert_eq!((size, cells), (UVec2::new(9, 9), expected.clone()));
    let (w, _, data) = pixels(&app, t.handle()).unwrap();
    let px = |x: u32, y: u32| data[((y * w + x) * 4) as usize..][..4].to_vec();
    for (i, prompt) in ["gate a", "bb", "ccc"].iter().enumerate() {
        let r = expected[i];
        assert_eq!(
            px(r.min.x, r.min.y),
            colour_of(10 + prompt.len() as u64).to_vec(),
            "frame {i}"
        );
        assert_eq!(
            px(r.max.x - 1, r.max.y - 1),
            colour_of(10 + prompt.len() as u64).to_vec()
        );
    }
    assert_eq!(px(4, 0)[3], 0, "padding is transparent");
    assert_eq!(px(8, 8)[3], 0, "the empty fourth cell is transparent");
    let msg = &log(&app).finished[0];
    assert_eq!(msg.layout.as_ref(), Some(&layout));
    // Progress counted across the frames.
    assert!(
        log(&app).progress.iter().any(|p| p.total == 3000),
        "3 gated frames of 1000 steps"
    );
}

#[test]
fn missing_model_fails_and_the_app_keeps_running() {
    let mut app = app(PixelGenPlugin {
        output_dir: None,
        ..PixelGenPlugin::new(ModelConfig::new(ModelSource::local("/nonexistent/sdxl")))
    });
    let a = submit(&mut app, SpriteRequest::new("one").seed(1));
    let b = submit(&mut app, SpriteRequest::new("two").seed(2));
    run_until(&mut app, "both", |app| {
        over(app, a.id()) && over(app, b.id())
    });
    for t in [&a, &b] {
        match failure(&app, t.id()) {
            Some(SpriteError::Generation(e)) => {
                assert!(matches!(*e, PixelGenError::ModelLoad { .. }), "{e}");
                assert!(e.to_string().contains("/nonexistent/sdxl"), "{e}");
            }
            other => panic!("expected a model-load failure, got {other:?}"),
        }
    }
    app.update();
}

#[test]
fn a_device_as_lora_fails_at_once_and_the_next_request_runs() {
    let f = fake();
    let mut app = app(fake_plugin(&f));
    let mut zero = SpriteRequest::new("cursed").seed(1);
    zero.recipe.loras = vec![pixelgen::LoraRef::new("/dev/zero", 1.0)];
    let start = Instant::now();
    let t = submit(&mut app, zero);
    let next = submit(&mut app, SpriteRequest::new("fine").seed(2).size(4, 4));
    run_until(&mut app, "the LoRA refusal", |a| over(a, t.id()));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "refused in {:?}",
        start.elapsed()
    );
    let error = failure(&app, t.id())
        .expect("the request failed")
        .to_string();
    assert!(
        error.contains("/dev/zero") && error.contains("not a regular file"),
        "{error}"
    );
    run_until(&mut app, "the next request", |a| finished(a, next.id()));
}

/// Resident memory of this process in bytes (Linux).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn a_flood_of_huge_requests_holds_little_memory() {
    let f = fake();
    let mut app = app(fake_plugin(&f));
    // The first request holds the worker (gated), so the flood waits in or bounces off the
    // queue (capacity 32): every handle still gets a placeholder.
    let gate = submit(&mut app, SpriteRequest::new("gate").seed(1));
    wait_running(&mut app, &gate);
    let Some(before) = rss_bytes() else {
        eprintln!("skipped: no /proc/self/status");
        return;
    };
    let flood: Vec<Ticket> = (0..120)
        .map(|i| {
            submit(
                &mut app,
                SpriteRequest::new("castle")
                    .seed(i)
                    .size(2048, 2048)
                    .generation_size(2048, 2048),
            )
        })
        .collect();
    app.update();
    let grown = rss_bytes().unwrap_or(before).saturating_sub(before);
    // A full-size placeholder per request was 16 MiB (2 GB for the flood): at most 256 px a
    // side now, and nothing at all for the requests the full queue refuses.
    assert!(grown < 100 << 20, "RSS grew by {} MiB", grown >> 20);
    let refused = flood
        .iter()
        .filter(|t| matches!(failure(&app, t.id()), Some(SpriteError::QueueFull { .. })))
        .count();
    assert_eq!(
        refused,
        120 - 32,
        "the queue takes 32, the rest are refused"
    );
    let images = app.world().resource::<Assets<Image>>();
    let side = |t: &Ticket| images.get(t.handle()).map(|i| i.width());
    assert_eq!(side(&flood[0]), Some(MAX_PLACEHOLDER_SIDE));
    assert_eq!(side(&flood[119]), Some(2));
    eprintln!("flood of 120 2048x2048 requests: RSS +{} KiB", grown >> 10);
    f.gate.send(()).unwrap();
}

/// A valid recipe whose generation cannot fit in memory used to abort the whole process
/// (the tiny model at 2048x2048 asked for a 64 GiB attention matrix): now the app stays up,
/// the request fails naming the memory it needs, and the next one runs.
#[test]
fn a_generation_too_large_for_memory_fails_and_the_app_lives_on() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pixelgen-diffusion/tests/fixtures/tiny-sdxl");
    let mut app = app(PixelGenPlugin {
        output_dir: None,
        ..PixelGenPlugin::new(ModelConfig::new(ModelSource::local(model)))
    });
    let huge = submit(
        &mut app,
        SpriteRequest::new("castle")
            .size(32, 32)
            .generation_size(2048, 2048)
            .steps(2)
            .seed(1),
    );
    let small = submit(
        &mut app,
        SpriteRequest::new("castle")
            .size(16, 16)
            .generation_size(32, 32)
            .steps(2)
            .seed(1),
    );
    run_until(&mut app, "both requests", |a| {
        over(a, huge.id()) && over(a, small.id())
    });
    let error = failure(&app, huge.id())
        .expect("the 2048 request fails")
        .to_string();
    assert!(
        error.contains("GiB") && error.to_lowercase().contains("memory"),
        "{error}"
    );
    assert!(
        finished(&app, small.id()),
        "{:?}",
        failure(&app, small.id())
    );
    eprintln!("the 2048 request: {error}");
}

#[test]
fn a_set_request_has_its_clips_at_once_and_reports_its_consistency() {
    let f = fake();
    let mut app = app(fake_plugin(&f));
    let request = SpriteRequest::new("hero")
        .seed(4)
        .size(4, 4)
        .animate(Action::Hurt)
        .directions(4, true);
    let t = submit(&mut app, request);
    // 3 hurt frames x 4 views: the clips and the grid are known before any frame is drawn.
    let clips = t.clips();
    let names: Vec<&str> = clips.names().collect();
    assert_eq!(
        names,
        ["hurt_south", "hurt_west", "hurt_east", "hurt_north"]
    );
    assert_eq!(clips.get("hurt_north").unwrap().frames, vec![9, 10, 11]);
    let layout = t.layout().cloned().expect("a set is a sheet");
    app.update();
    let cells = |app: &App| {
        app.world()
            .resource::<Assets<TextureAtlasLayout>>()
            .get(&layout)
            .map(|l| (l.size, l.textures.len()))
    };
    assert_eq!(cells(&app), Some((UVec2::new(12, 16), 12)));

    // A player on the placeholder already walks through the clip.
    let hero = app
        .world_mut()
        .spawn({
            let mut p = ClipPlayer::new(t.clips());
            assert!(p.play("hurt_east"));
            p
        })
        .id();
    run_until(&mut app, "the set", |a| over(a, t.id()));
    assert!(finished(&app, t.id()), "{:?}", failure(&app, t.id()));
    // West is mirrored from east: 9 frames drawn, not 12.
    assert_eq!(f.record.generated.lock().unwrap().len(), 9);
    let msg = log(&app)
        .finished
        .iter()
        .find(|m| m.ticket == t.id())
        .unwrap();
    let c = msg
        .consistency
        .as_ref()
        .expect("a set reports its consistency");
    assert_eq!(c.frames.len(), 12);
    assert_eq!(c.max_anchor_drift, 0, "{c:?}");
    assert_eq!(cells(&app), Some((UVec2::new(12, 16), 12)));
    run_until(&mut app, "the clip to move on", |a| {
        a.world().get::<ClipPlayer>(hero).unwrap().frame() != Some(6)
    });
    let frame = app
        .world()
        .get::<ClipPlayer>(hero)
        .unwrap()
        .frame()
        .unwrap();
    assert!(
        (7..=8).contains(&frame),
        "hurt_east plays 6..=8, at {frame}"
    );
}

#[test]
fn an_image_in_the_assets_becomes_a_content_named_reference() {
    let f = fake();
    let dir = temp_dir("refs");
    let mut app = app(PixelGenPlugin {
        cache_dir: Some(dir.clone()),
        ..fake_plugin(&f)
    });
    let sprite = image::RgbaImage::from_pixel(8, 8, image::Rgba([200, 40, 40, 255]));
    let handle = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(bevy_pixelgen::to_bevy_image(sprite.clone()));
    let h = handle.clone();
    let unloaded = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .reserve_handle();
    let (first, second, missing) = app
        .world_mut()
        .run_system_once(move |mut pg: PixelGen| {
            (
                pg.reference_from(&h),
                pg.reference_from(&h),
                pg.reference_from(&unloaded),
            )
        })
        .unwrap();
    let path = first.unwrap();
    assert_eq!(second.unwrap(), path, "the same pixels name the same file");
    assert!(path.starts_with(dir.join("refs")), "{}", path.display());
    assert_eq!(image::open(&path).unwrap().to_rgba8(), sprite);
    let err = missing.unwrap_err().to_string();
    assert!(err.contains("not loaded"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn animate_a_sprite_in_the_assets_from_a_system() {
    let f = fake();
    let dir = temp_dir("animate");
    let mut app = app(PixelGenPlugin {
        cache_dir: Some(dir.clone()),
        ..fake_plugin(&f)
    });
    let sprite = image::RgbaImage::from_pixel(4, 4, image::Rgba([20, 160, 40, 255]));
    let handle = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(bevy_pixelgen::to_bevy_image(sprite.clone()));
    let unloaded = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .reserve_handle();
    let h = handle.clone();
    let (idle, views, refused) = app
        .world_mut()
        .run_system_once(move |mut pg: PixelGen| {
            let request = || SpriteRequest::new("slime").size(4, 4).seed(3);
            (
                pg.animate(&h, request(), Action::Idle),
                pg.directions(&h, request(), 8, true),
                pg.animate(&unloaded, request(), Action::Idle),
            )
        })
        .unwrap();
    let (idle, views) = (idle.unwrap(), views.unwrap());
    // The sprite is the reference and the start of every frame.
    let set = idle.recipe().set.clone().unwrap();
    let r = set.reference_image().unwrap();
    assert_eq!(
        r.start_strength,
        Some(bevy_pixelgen::DEFAULT_START_STRENGTH)
    );
    assert_eq!(image::open(&r.path).unwrap().to_rgba8(), sprite);
    assert_eq!(idle.clips().names().collect::<Vec<_>>(), ["idle"]);
    assert_eq!(views.clips().clips.len(), 8, "a clip per view");
    assert!(refused.unwrap_err().to_string().contains("not loaded"));
    run_until(&mut app, "both sets", |a| {
        over(a, idle.id()) && over(a, views.id())
    });
    assert!(finished(&app, idle.id()), "{:?}", failure(&app, idle.id()));
    assert!(
        finished(&app, views.id()),
        "{:?}",
        failure(&app, views.id())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
