//! Recipe files as assets: placeholder then sprite in one handle, cache hits that never run
//! the model, reload of an edited recipe, sheets from recipes, bad files; latent previews;
//! dropped recipe assets forgotten; sheet frames generated once; identical requests served
//! from the worker's memory.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::asset::{AssetPlugin, AssetServer, Assets, Handle, LoadState};
use bevy::image::{Image, ImagePlugin, TextureAtlasLayout};
use bevy::prelude::*;
use bevy_pixelgen::prelude::*;
use bevy_pixelgen::{DEFAULT_MEMORY_CACHE_BYTES, EngineFactory, pixelgen};
use common::{Log, collect};
use pixelgen::{Control, ModelIdentity, SpriteEngine};

const TIMEOUT: Duration = Duration::from_secs(60);
const GREY_A: [u8; 4] = [0x55, 0x55, 0x55, 255];

/// Counts model runs; draws a solid sprite whose colour depends on the prompt and seed, and
/// reports one progress step with a 2x2 preview of a known colour.
struct CountingEngine {
    runs: Arc<Mutex<Vec<String>>>,
}

fn colour(prompt: &str, seed: u64) -> [u8; 4] {
    let h = prompt
        .bytes()
        .fold(seed, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    [(h % 251) as u8, (h / 251 % 251) as u8, 200, 255]
}

impl SpriteEngine for CountingEngine {
    fn model_identity(&mut self) -> pixelgen::Result<ModelIdentity> {
        Ok(ModelIdentity("counting-fake".into()))
    }

    fn render(
        &mut self,
        plan: &pixelgen::Plan,
        progress: &mut dyn FnMut(&pixelgen::Progress) -> Control,
    ) -> pixelgen::Result<pixelgen::Rendered> {
        let recipe = plan.recipe();
        self.runs.lock().unwrap().push(recipe.prompt.clone());
        progress(&pixelgen::Progress {
            step: 1,
            total: 1,
            preview: Some(image::RgbImage::from_pixel(2, 2, image::Rgb([10, 20, 30]))),
        });
        let seed = recipe.seed.value().unwrap_or(0);
        Ok(pixelgen::Rendered {
            image: image::RgbaImage::from_pixel(
                recipe.size.width,
                recipe.size.height,
                image::Rgba(colour(&recipe.prompt, seed)),
            ),
            fell_back: false,
        })
    }
}

struct Fake {
    runs: Arc<Mutex<Vec<String>>>,
    factory: EngineFactory,
}

fn fake() -> Fake {
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r = runs.clone();
    let factory = EngineFactory::new(move || {
        Ok(Box::new(CountingEngine { runs: r.clone() }) as Box<dyn SpriteEngine>)
    });
    Fake { runs, factory }
}

impl Fake {
    fn runs(&self) -> Vec<String> {
        self.runs.lock().unwrap().clone()
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "bevy-pixelgen-assets-{name}-{}-{}",
        std::process::id(),
        Seed::draw()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn app(assets: &Path, cache: &Path, f: &Fake) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin {
            file_path: assets.to_string_lossy().into_owned(),
            ..AssetPlugin::default()
        },
        ImagePlugin::default(),
        PixelGenPlugin {
            output_dir: None,
            cache_dir: Some(cache.to_path_buf()),
            ..PixelGenPlugin::with_engine(f.factory.clone())
        },
    ))
    .init_resource::<Log>()
    .add_systems(Update, collect);
    app.finish();
    app.cleanup();
    app
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

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

fn load<A: bevy::asset::Asset>(app: &App, path: &str) -> Handle<A> {
    app.world().resource::<AssetServer>().load(path.to_owned())
}

fn state(app: &App, h: &Handle<Image>) -> LoadState {
    app.world().resource::<AssetServer>().load_state(h)
}

fn pixels(app: &App, h: &Handle<Image>) -> Option<(u32, u32, Vec<u8>)> {
    let img = app.world().resource::<Assets<Image>>().get(h)?;
    Some((
        img.width(),
        img.height(),
        img.data.clone().unwrap_or_default(),
    ))
}

fn solid(app: &App, h: &Handle<Image>) -> Option<[u8; 4]> {
    let (_, _, data) = pixels(app, h)?;
    let first: [u8; 4] = data.get(..4)?.try_into().ok()?;
    data.chunks_exact(4).all(|p| p == first).then_some(first)
}

fn log(app: &App) -> &Log {
    app.world().resource::<Log>()
}

const POTION: &str = r#"(prompt: "red potion", size: (width: 6, height: 4), generation_size: (width: 64, height: 64), steps: 2)"#;

#[test]
fn recipe_asset_placeholder_then_sprite_then_cache_hits_without_the_model() {
    let assets = temp_dir("a");
    let cache = temp_dir("a-cache");
    write(&assets, "items/potion.pixelgen.ron", POTION);
    write(&assets, "items/same.pixelgen.ron", POTION);
    let f = fake();
    let mut app = app(&assets, &cache, &f);
    let potion: Handle<Image> = load(&app, "items/potion.pixelgen.ron");
    run_until(&mut app, "the recipe to load", |a| {
        state(a, &potion).is_loaded()
    });
    // Not in the cache: the loaded asset is the sprite-sized placeholder.
    let (w, h, data) = pixels(&app, &potion).expect("loaded");
    assert_eq!((w, h), (6, 4));
    assert_eq!(data[..4], GREY_A, "checkerboard placeholder");

    run_until(&mut app, "the generated sprite", |a| {
        !log(a).finished.is_empty()
    });
    assert_eq!(f.runs(), vec!["red potion"]);
    // The file leaves the seed random: it is derived from the recipe's content.
    let expected = Recipe::from_ron(POTION)
        .unwrap()
        .with_content_seed()
        .unwrap();
    let msg = &log(&app).finished[0];
    assert_eq!(
        msg.image, potion,
        "the sprite replaces the placeholder in the same handle"
    );
    assert_eq!(msg.recipe.seed, expected.seed);
    assert!(!msg.from_cache);
    let sprite = colour("red potion", expected.seed.value().unwrap());
    assert_eq!(solid(&app, &potion), Some(sprite));
    let ticket = app
        .world()
        .resource::<PixelGenQueue>()
        .recipe_asset_ticket("items/potion.pixelgen.ron")
        .cloned()
        .expect("a ticket for the recipe asset");
    assert!(matches!(ticket.status(), TicketStatus::Done { .. }));

    // Another file with the same recipe: served by the loader from the cache, final at load.
    let same: Handle<Image> = load(&app, "items/same.pixelgen.ron");
    run_until(&mut app, "the cached recipe", |a| {
        state(a, &same).is_loaded()
    });
    assert_eq!(
        solid(&app, &same),
        Some(sprite),
        "loaded as the sprite, no placeholder"
    );
    for _ in 0..10 {
        app.update();
    }
    assert_eq!(f.runs().len(), 1, "the model did not run for the cache hit");
    assert!(
        app.world()
            .resource::<PixelGenQueue>()
            .recipe_asset_ticket("items/same.pixelgen.ron")
            .is_none(),
        "nothing was queued"
    );

    // A fresh app (a game restart) with a fresh engine: the same file loads from the cache.
    let f2 = fake();
    let mut app2 = self::app(&assets, &cache, &f2);
    let again: Handle<Image> = load(&app2, "items/potion.pixelgen.ron");
    run_until(&mut app2, "the cached recipe after a restart", |a| {
        state(a, &again).is_loaded()
    });
    assert_eq!(solid(&app2, &again), Some(sprite));
    for _ in 0..10 {
        app2.update();
    }
    assert!(f2.runs().is_empty(), "the new engine never ran");
    assert!(log(&app2).finished.is_empty());
    std::fs::remove_dir_all(&assets).unwrap();
    std::fs::remove_dir_all(&cache).unwrap();
}

/// `AssetServer::reload` is what Bevy's `file_watcher` calls when the file changes.
#[test]
fn edited_recipe_regenerates_into_the_same_handle() {
    let assets = temp_dir("b");
    let cache = temp_dir("b-cache");
    let v1 = r#"(prompt: "blue slime", seed: fixed(4), size: (width: 5, height: 5), generation_size: (width: 64, height: 64))"#;
    let v2 = r#"(prompt: "green slime", seed: fixed(4), size: (width: 5, height: 5), generation_size: (width: 64, height: 64))"#;
    write(&assets, "slime.pixelgen.ron", v1);
    let f = fake();
    let mut app = app(&assets, &cache, &f);
    let slime: Handle<Image> = load(&app, "slime.pixelgen.ron");
    run_until(&mut app, "v1", |a| log(a).finished.len() == 1);
    assert_eq!(solid(&app, &slime), Some(colour("blue slime", 4)));

    write(&assets, "slime.pixelgen.ron", v2);
    app.world()
        .resource::<AssetServer>()
        .reload("slime.pixelgen.ron");
    run_until(&mut app, "v2", |a| log(a).finished.len() == 2);
    assert_eq!(
        solid(&app, &slime),
        Some(colour("green slime", 4)),
        "same handle, new sprite"
    );
    assert_eq!(log(&app).finished[1].image, slime);
    assert_eq!(f.runs(), vec!["blue slime", "green slime"]);

    // Back to the first text: a cache hit, shown at load without the model.
    write(&assets, "slime.pixelgen.ron", v1);
    app.world()
        .resource::<AssetServer>()
        .reload("slime.pixelgen.ron");
    run_until(&mut app, "v1 again", |a| {
        solid(a, &slime) == Some(colour("blue slime", 4))
    });
    for _ in 0..10 {
        app.update();
    }
    assert_eq!(f.runs().len(), 2, "no third model run");
    assert_eq!(solid(&app, &slime), Some(colour("blue slime", 4)));
    std::fs::remove_dir_all(&assets).unwrap();
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn sheet_recipe_asset_and_sheet_cache() {
    let assets = temp_dir("c");
    let cache = temp_dir("c-cache");
    let walk = r#"(
        prompt: "knight",
        seed: fixed(2),
        size: (width: 4, height: 4),
        generation_size: (width: 64, height: 64),
        frames: prompts(["walk 1", "walk 22", "walk 333"]),
        sheet: Some((columns: Some(3))),
    )"#;
    write(&assets, "walk.pixelgen.ron", walk);
    let f = fake();
    let mut app = app(&assets, &cache, &f);
    let image: Handle<Image> = load(&app, "walk.pixelgen.ron");
    let layout: Handle<TextureAtlasLayout> = load(&app, "walk.pixelgen.ron#layout");
    let rects = |app: &App| {
        app.world()
            .resource::<Assets<TextureAtlasLayout>>()
            .get(&layout)
            .map(|l| (l.size, l.textures.clone()))
    };
    run_until(&mut app, "the sheet placeholder", |a| {
        state(a, &image).is_loaded() && rects(a).is_some()
    });
    let expected = vec![
        URect::new(0, 0, 4, 4),
        URect::new(4, 0, 8, 4),
        URect::new(8, 0, 12, 4),
    ];
    assert_eq!(
        rects(&app),
        Some((UVec2::new(12, 4), expected.clone())),
        "placeholder grid"
    );
    run_until(&mut app, "the sheet", |a| !log(a).finished.is_empty());
    assert_eq!(f.runs(), vec!["walk 1", "walk 22", "walk 333"]);
    assert_eq!(rects(&app), Some((UVec2::new(12, 4), expected.clone())));
    let (w, _, data) = pixels(&app, &image).unwrap();
    let px = |data: &[u8], x: u32| data[(x * 4) as usize..][..4].to_vec();
    assert_eq!(px(&data, 9), colour("walk 333", 2).to_vec(), "third frame");

    // Restart: the sheet and its layout come from the cache, the model never runs.
    let f2 = fake();
    let mut app2 = self::app(&assets, &cache, &f2);
    let image2: Handle<Image> = load(&app2, "walk.pixelgen.ron");
    let layout2: Handle<TextureAtlasLayout> = load(&app2, "walk.pixelgen.ron#layout");
    run_until(&mut app2, "the cached sheet", |a| {
        state(a, &image2).is_loaded()
            && a.world()
                .resource::<Assets<TextureAtlasLayout>>()
                .get(&layout2)
                .is_some()
    });
    assert_eq!(pixels(&app2, &image2).unwrap(), (w, 4, data));
    let l2 = app2
        .world()
        .resource::<Assets<TextureAtlasLayout>>()
        .get(&layout2)
        .unwrap();
    assert_eq!(l2.textures, expected);
    for _ in 0..10 {
        app2.update();
    }
    assert!(f2.runs().is_empty());

    // The worker's own sheet cache: a sheet request for the same recipe is a hit too.
    let recipe = Recipe::from_ron(walk).unwrap();
    let t = common::submit(&mut app2, recipe);
    run_until(&mut app2, "the sheet request", |a| {
        log(a).finished.iter().any(|m| m.ticket == t.id())
    });
    assert!(log(&app2).finished[0].from_cache);
    assert!(f2.runs().is_empty());
    std::fs::remove_dir_all(&assets).unwrap();
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn bad_recipe_files_fail_to_load_with_the_reason() {
    let assets = temp_dir("d");
    let cache = temp_dir("d-cache");
    write(&assets, "empty.pixelgen.ron", r#"(prompt: "  ")"#);
    write(&assets, "syntax.pixelgen.ron", r#"(prompt: "x", steps: )"#);
    write(&assets, "typo.pixelgen.ron", r#"(prompt: "x", stepz: 40)"#);
    std::fs::write(
        assets.join("latin1.pixelgen.ron"),
        b"(prompt: \"caf\xe9 sign\")",
    )
    .unwrap();
    let huge = format!("(prompt: \"x\", negative: \"{}\")", "y".repeat(30 << 20));
    write(&assets, "huge.pixelgen.ron", &huge);
    let f = fake();
    let mut app = app(&assets, &cache, &f);
    let empty: Handle<Image> = load(&app, "empty.pixelgen.ron");
    let syntax: Handle<Image> = load(&app, "syntax.pixelgen.ron");
    let typo: Handle<Image> = load(&app, "typo.pixelgen.ron");
    let latin1: Handle<Image> = load(&app, "latin1.pixelgen.ron");
    let huge: Handle<Image> = load(&app, "huge.pixelgen.ron");
    let all = [&empty, &syntax, &typo, &latin1, &huge];
    run_until(&mut app, "every failure", |a| {
        all.iter().all(|h| state(a, h).is_failed())
    });
    let reason = |app: &App, h: &Handle<Image>| match state(app, h) {
        LoadState::Failed(err) => err.to_string(),
        other => panic!("expected a failure, got {other:?}"),
    };
    let typo = reason(&app, &typo);
    assert!(typo.contains("did you mean `steps`?"), "{typo}");
    let latin1 = reason(&app, &latin1);
    assert!(
        latin1.contains("not UTF-8") && latin1.contains("byte 13"),
        "{latin1}"
    );
    let huge = reason(&app, &huge);
    assert!(huge.contains("a recipe is at most"), "{huge}");
    let LoadState::Failed(err) = state(&app, &empty) else {
        unreachable!()
    };
    assert!(err.to_string().contains("prompt"), "{err}");
    let LoadState::Failed(err) = state(&app, &syntax) else {
        unreachable!()
    };
    assert!(err.to_string().contains("syntax.pixelgen.ron"), "{err}");
    app.update();
    assert!(f.runs().is_empty());
    std::fs::remove_dir_all(&assets).unwrap();
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn progress_carries_the_latent_preview_to_the_message_and_ticket() {
    let assets = temp_dir("e");
    let cache = temp_dir("e-cache");
    let f = fake();
    let mut app = app(&assets, &cache, &f);
    let t = common::submit(&mut app, SpriteRequest::new("gem").seed(1).size(3, 3));
    run_until(&mut app, "the sprite", |a| !log(a).finished.is_empty());
    let p = log(&app).progress.first().expect("a progress message");
    let preview = p.preview.clone().expect("a preview");
    assert_eq!(preview.dimensions(), (2, 2));
    assert!(
        preview.pixels().all(|px| px.0 == [10, 20, 30, 255]),
        "RGB made opaque RGBA"
    );
    assert_eq!(t.preview().as_deref(), Some(&*preview));
    std::fs::remove_dir_all(&assets).unwrap();
    std::fs::remove_dir_all(&cache).unwrap();
}

/// Handles the recipe-asset table must not keep alive: the test's message log holds clones
/// of every finished sprite's handle, so forget them.
fn forget_logged_handles(app: &mut App) {
    let mut log = app.world_mut().resource_mut::<Log>();
    log.finished.clear();
    log.failed.clear();
}

fn tracked(app: &App) -> usize {
    app.world()
        .resource::<PixelGenQueue>()
        .recipe_assets_tracked()
}

fn image_alive(app: &App, id: AssetId<Image>) -> bool {
    app.world().resource::<Assets<Image>>().get(id).is_some()
}

#[test]
fn dropped_recipe_assets_are_forgotten_and_their_images_freed() {
    let assets = temp_dir("f");
    let cache = temp_dir("f-cache");
    write(&assets, "items/potion.pixelgen.ron", POTION);
    write(&assets, "items/same.pixelgen.ron", POTION);
    let f = fake();
    let mut app = app(&assets, &cache, &f);
    let potion: Handle<Image> = load(&app, "items/potion.pixelgen.ron");
    run_until(&mut app, "the generated sprite", |a| {
        log(a).finished.len() == 1
    });
    let sprite = solid(&app, &potion).expect("the sprite");
    // A second file with the same recipe: a cache hit, tracked without a ticket.
    let same: Handle<Image> = load(&app, "items/same.pixelgen.ron");
    run_until(&mut app, "the cached recipe", |a| {
        state(a, &same).is_loaded()
    });
    // The loader's table entry may land an update after the asset reports loaded.
    run_until(&mut app, "both recipe assets tracked", |a| tracked(a) == 2);
    let pg = app.world().resource::<PixelGenQueue>();
    assert!(
        pg.recipe_asset_ticket("items/potion.pixelgen.ron")
            .is_some()
    );
    forget_logged_handles(&mut app);

    // The game drops the generated one: the entry goes and the image is freed (before, the
    // entry's ticket kept a strong handle, so the image lived for ever).
    let potion_id = potion.id();
    drop(potion);
    run_until(&mut app, "the entry to go", |a| tracked(a) == 1);
    run_until(&mut app, "the image to be freed", |a| {
        !image_alive(a, potion_id)
    });
    let pg = app.world().resource::<PixelGenQueue>();
    assert!(
        pg.recipe_asset_ticket("items/potion.pixelgen.ron")
            .is_none()
    );
    assert!(image_alive(&app, same.id()), "the held one stays");

    // The cache hit goes too when dropped.
    let same_id = same.id();
    drop(same);
    run_until(&mut app, "the table to empty", |a| tracked(a) == 0);
    run_until(&mut app, "the image to be freed", |a| {
        !image_alive(a, same_id)
    });

    // Loading the file again works as the first time (now a cache hit: no model run).
    let again: Handle<Image> = load(&app, "items/potion.pixelgen.ron");
    run_until(&mut app, "the reload", |a| state(a, &again).is_loaded());
    assert_eq!(solid(&app, &again), Some(sprite));
    // As above, the table entry may land an update after the asset reports loaded.
    run_until(&mut app, "the reload tracked", |a| tracked(a) == 1);
    for _ in 0..5 {
        app.update();
    }
    assert_eq!(f.runs().len(), 1, "the model ran once in all");
    assert_eq!(tracked(&app), 1, "a held asset stays tracked");
    std::fs::remove_dir_all(&assets).unwrap();
    std::fs::remove_dir_all(&cache).unwrap();
}

/// Runs until cancelled (checking every 2 ms), or until `open` is set.
struct GatedEngine {
    runs: Arc<Mutex<Vec<String>>>,
    open: Arc<AtomicBool>,
}

impl SpriteEngine for GatedEngine {
    fn model_identity(&mut self) -> pixelgen::Result<ModelIdentity> {
        Ok(ModelIdentity("gated-fake".into()))
    }

    fn render(
        &mut self,
        plan: &pixelgen::Plan,
        progress: &mut dyn FnMut(&pixelgen::Progress) -> Control,
    ) -> pixelgen::Result<pixelgen::Rendered> {
        let recipe = plan.recipe();
        self.runs.lock().unwrap().push(recipe.prompt.clone());
        let start = Instant::now();
        let mut step = 0;
        while !self.open.load(Ordering::Acquire) && start.elapsed() < TIMEOUT {
            step += 1;
            let p = pixelgen::Progress {
                step,
                total: usize::MAX,
                preview: None,
            };
            if progress(&p) == Control::Cancel {
                return Err(pixelgen::PixelGenError::Cancelled { step, total: step });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(pixelgen::Rendered {
            image: image::RgbaImage::from_pixel(
                recipe.size.width,
                recipe.size.height,
                image::Rgba([1, 2, 3, 255]),
            ),
            fell_back: false,
        })
    }
}

#[test]
fn dropping_a_recipe_asset_while_it_generates_cancels_the_generation() {
    let assets = temp_dir("g");
    let cache = temp_dir("g-cache");
    write(&assets, "items/potion.pixelgen.ron", POTION);
    let runs = Arc::new(Mutex::new(Vec::new()));
    let open = Arc::new(AtomicBool::new(false));
    let (r, o) = (runs.clone(), open.clone());
    let f = Fake {
        runs,
        factory: EngineFactory::new(move || {
            Ok(Box::new(GatedEngine {
                runs: r.clone(),
                open: o.clone(),
            }) as Box<dyn SpriteEngine>)
        }),
    };
    let mut app = app(&assets, &cache, &f);
    let potion: Handle<Image> = load(&app, "items/potion.pixelgen.ron");
    let ticket_of = |a: &App| {
        a.world()
            .resource::<PixelGenQueue>()
            .recipe_asset_ticket("items/potion.pixelgen.ron")
            .cloned()
    };
    run_until(&mut app, "the generation to run", |a| {
        ticket_of(a).is_some_and(|t| matches!(t.status(), TicketStatus::Running { .. }))
    });
    let ticket = ticket_of(&app).unwrap();
    let id = ticket.id();
    let potion_id = potion.id();
    drop(potion);
    run_until(&mut app, "the cancel", |a| {
        log(a).failed.iter().any(|m| m.ticket == id)
    });
    let failure = log(&app).failed.iter().find(|m| m.ticket == id).unwrap();
    assert!(
        matches!(failure.error, SpriteError::Cancelled),
        "{}",
        failure.error
    );
    assert!(matches!(
        ticket.status(),
        TicketStatus::Failed(SpriteError::Cancelled)
    ));
    assert_eq!(tracked(&app), 0);
    assert!(log(&app).finished.is_empty(), "no sprite was delivered");
    // With the last ticket clone and logged handle gone, the image is freed.
    drop(ticket);
    forget_logged_handles(&mut app);
    run_until(&mut app, "the image to be freed", |a| {
        !image_alive(a, potion_id)
    });
    assert_eq!(f.runs(), vec!["red potion"]);
    open.store(true, Ordering::Release);
    std::fs::remove_dir_all(&assets).unwrap();
    std::fs::remove_dir_all(&cache).unwrap();
}

/// A sheet request with one frame per prompt, in one row of 4x4 frames, seed 3.
fn strip(prompts: &[&str]) -> SpriteRequest {
    let mut recipe = Recipe::new("hero");
    recipe.seed = Seed::Fixed(3);
    recipe.size = pixelgen::Size::square(4);
    recipe.generation_size = pixelgen::Size::square(64);
    recipe.frames = pixelgen::Frames::Prompts(prompts.iter().map(|p| (*p).to_owned()).collect());
    recipe.sheet = Some(pixelgen::SheetOptions {
        columns: Some(prompts.len() as u32),
        ..Default::default()
    });
    recipe.into()
}

/// The colour of every 4x4 frame of a one-row sheet (each frame is solid).
fn frame_colours(app: &App, h: &Handle<Image>) -> Vec<[u8; 4]> {
    let (w, _, data) = pixels(app, h).expect("the sheet");
    (0..w / 4)
        .map(|i| {
            let at = (i * 4 * 4) as usize;
            data[at..at + 4].try_into().unwrap()
        })
        .collect()
}

#[test]
fn sheet_frames_are_generated_once_and_shared_with_sprites() {
    let assets = temp_dir("h");
    let cache = temp_dir("h-cache");
    let f = fake();
    let mut app = app(&assets, &cache, &f);
    let submit = |app: &mut App, r: SpriteRequest, _sheet: bool| common::submit(app, r);
    // Identical frames in one sheet run the model once.
    let a = submit(&mut app, strip(&["idle", "walk", "idle", "walk"]), true);
    run_until(&mut app, "sheet a", |a| log(a).finished.len() == 1);
    assert_eq!(f.runs(), vec!["idle", "walk"]);
    let (idle, walk, jump) = (colour("idle", 3), colour("walk", 3), colour("jump", 3));
    assert_eq!(
        frame_colours(&app, a.handle()),
        vec![idle, walk, idle, walk]
    );
    // Steps count across all frames, the reused ones included (the fake makes one step).
    let steps: Vec<_> = log(&app)
        .progress
        .iter()
        .map(|p| (p.step, p.total))
        .collect();
    assert_eq!(steps, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);

    // Another sheet sharing two frames: only the new one is generated.
    let b = submit(&mut app, strip(&["jump", "walk", "idle"]), true);
    run_until(&mut app, "sheet b", |a| log(a).finished.len() == 2);
    assert_eq!(f.runs(), vec!["idle", "walk", "jump"]);
    assert_eq!(frame_colours(&app, b.handle()), vec![jump, walk, idle]);
    assert!(
        !log(&app).finished[1].from_cache,
        "a new sheet, made of cached frames"
    );

    // A sprite with a frame's recipe comes from the cache (frames are stored as sprites).
    let mut single = Recipe::new("walk");
    single.seed = Seed::Fixed(3);
    single.size = pixelgen::Size::square(4);
    single.generation_size = pixelgen::Size::square(64);
    let s = submit(&mut app, single.into(), false);
    run_until(&mut app, "the sprite", |a| log(a).finished.len() == 3);
    assert!(log(&app).finished[2].from_cache);
    assert_eq!(solid(&app, s.handle()), Some(walk));
    assert_eq!(f.runs().len(), 3, "no model run for the sprite");
    std::fs::remove_dir_all(&assets).unwrap();
    std::fs::remove_dir_all(&cache).unwrap();
}

/// An app whose worker has no disk cache and keeps `memory` bytes of recent sprites.
fn memory_app(f: &Fake, memory: usize) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin::default(),
        ImagePlugin::default(),
        PixelGenPlugin {
            output_dir: None,
            cache_dir: None,
            memory_cache_bytes: memory,
            ..PixelGenPlugin::with_engine(f.factory.clone())
        },
    ))
    .init_resource::<Log>()
    .add_systems(Update, collect);
    app.finish();
    app.cleanup();
    app
}

#[test]
fn identical_requests_come_from_memory_without_a_disk_cache() {
    let coin = || SpriteRequest::new("coin").seed(9).size(6, 6);
    let f = fake();
    let mut app = memory_app(&f, DEFAULT_MEMORY_CACHE_BYTES);
    let submit = |app: &mut App, r: SpriteRequest| common::submit(app, r);
    let a = submit(&mut app, coin());
    let b = submit(&mut app, coin());
    let other = submit(&mut app, SpriteRequest::new("coin").seed(10).size(6, 6));
    run_until(&mut app, "three sprites", |a| log(a).finished.len() == 3);
    assert_eq!(f.runs(), vec!["coin", "coin"], "seed 9 once, seed 10 once");
    let done = |t: &Ticket| {
        log(&app)
            .finished
            .iter()
            .find(|m| m.ticket == t.id())
            .unwrap()
    };
    assert!(!done(&a).from_cache && done(&b).from_cache && !done(&other).from_cache);
    assert_eq!(solid(&app, a.handle()), Some(colour("coin", 9)));
    assert_eq!(
        solid(&app, b.handle()),
        solid(&app, a.handle()),
        "the same pixels"
    );

    // Turned off, every request runs the model.
    let f = fake();
    let mut app = memory_app(&f, 0);
    submit(&mut app, coin());
    submit(&mut app, coin());
    run_until(&mut app, "two sprites", |a| log(a).finished.len() == 2);
    assert_eq!(f.runs().len(), 2);
    assert!(log(&app).finished.iter().all(|m| !m.from_cache));
}
