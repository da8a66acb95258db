//! The editor without a window: actions submit requests, results land in the gallery.
#![cfg(feature = "editor")]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::asset::{AssetPlugin, Assets};
use bevy::image::{Image, ImagePlugin, TextureAtlasLayout};
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy_pixelgen::editor::{
    CanvasGrowth, MaskCanvas, PaletteFile, PanelKeyboardFocus, RepaintDialog, SaveDialog,
    SheetPlayback, VariationSeeds, frame_uv, load_settings, preview_map,
};
use bevy_pixelgen::prelude::*;
use bevy_pixelgen::{
    EditorLog, EditorQueue, EngineFactory, GalleryItem, PixelGenEditorPlugin, Presets,
    TicketStatus, pixelgen,
};
use crossbeam_channel::{Receiver, Sender};
use pixelgen::{Control, ModelIdentity, PixelGenError, SpriteEngine};

const TIMEOUT: Duration = Duration::from_secs(60);
/// Each `app.update()` advances the app's clocks by this much.
const FRAME: Duration = Duration::from_millis(100);

/// The colour the fake engine paints a recipe in: red 200, green from the seed, blue from a
/// trailing frame digit of the prompt (sheets use `{prompt} {frame}`).
fn colour(recipe: &Recipe) -> [u8; 4] {
    let seed = recipe.seed.value().unwrap_or(0);
    let frame = recipe
        .prompt
        .chars()
        .last()
        .and_then(|c| c.to_digit(10))
        .unwrap_or(0);
    [200, (seed % 251) as u8, (frame * 50) as u8, 255]
}

/// A test engine: records every recipe it is given; `fail` in the prompt errors, `slow`
/// runs steps until cancelled, `gated` runs 5 steps each released by the test (with a
/// preview per step, acknowledged after reporting); anything else returns a solid sprite of
/// the recipe's size in [`colour`] (with a red ramp left to right when it says `ramp`).
struct FakeEngine {
    seen: Arc<Mutex<Vec<Recipe>>>,
    go: Receiver<()>,
    acks: Sender<usize>,
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
        self.seen.lock().unwrap().push(recipe.clone());
        if recipe.prompt.contains("fail") {
            return Err(PixelGenError::Engine("forced failure".into()));
        }
        let gated = recipe.prompt.contains("gated");
        let total = if recipe.prompt.contains("slow") {
            10_000
        } else if gated {
            5
        } else {
            1
        };
        for step in 1..=total {
            if gated && self.go.recv_timeout(TIMEOUT).is_err() {
                return Err(PixelGenError::Engine(
                    "the test never released a step".into(),
                ));
            }
            let preview = gated
                .then(|| image::RgbImage::from_pixel(8, 4, image::Rgb([step as u8 * 40, 7, 9])));
            let p = pixelgen::Progress {
                step,
                total,
                preview,
            };
            let control = progress(&p);
            if gated {
                let _ = self.acks.send(step);
            }
            if control == Control::Cancel {
                return Err(PixelGenError::Cancelled { step, total });
            }
            if total > 1 && !gated {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let mut image = image::RgbaImage::from_pixel(
            recipe.size.width,
            recipe.size.height,
            image::Rgba(colour(recipe)),
        );
        if recipe.prompt.contains("ramp") {
            // A left-to-right ramp: a hard step where the right edge wraps to the left.
            for (x, _, p) in image.enumerate_pixels_mut() {
                p.0[0] = (x * 255 / recipe.size.width.max(2).saturating_sub(1)) as u8;
            }
        }
        Ok(pixelgen::Rendered {
            image,
            fell_back: false,
        })
    }
}

/// An app with the fake engine and the headless editor, and the test's ends of the engine.
struct Harness {
    app: App,
    seen: Arc<Mutex<Vec<Recipe>>>,
    go: Sender<()>,
    acks: Receiver<usize>,
    /// A fresh folder for this test's files.
    dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pixelgen-editor-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The editor plugin as the tests use it: headless, saving under `dir`, no settings file.
fn editor_plugin(dir: &Path) -> PixelGenEditorPlugin {
    PixelGenEditorPlugin {
        presets_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/presets"),
        panel: false,
        save_dir: dir.join("assets/generated"),
        settings_path: None,
        ..PixelGenEditorPlugin::default()
    }
}

fn harness_with(name: &str, editor: impl FnOnce(&Path) -> PixelGenEditorPlugin) -> Harness {
    let dir = temp_dir(name);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (go_tx, go) = crossbeam_channel::unbounded();
    let (acks, acks_rx) = crossbeam_channel::unbounded();
    let s = seen.clone();
    let factory = EngineFactory::new(move || {
        Ok(Box::new(FakeEngine {
            seen: s.clone(),
            go: go.clone(),
            acks: acks.clone(),
        }) as Box<dyn SpriteEngine>)
    });
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin::default(),
        ImagePlugin::default(),
        PixelGenPlugin {
            output_dir: None,
            ..PixelGenPlugin::with_engine(factory)
        },
        editor(&dir),
    ))
    .insert_resource(TimeUpdateStrategy::ManualDuration(FRAME));
    app.finish();
    app.cleanup();
    Harness {
        app,
        seen,
        go: go_tx,
        acks: acks_rx,
        dir,
    }
}

fn harness(name: &str) -> Harness {
    harness_with(name, editor_plugin)
}

fn app() -> (App, Arc<Mutex<Vec<Recipe>>>) {
    let mut h = harness(&format!("app-{}", Seed::draw()));
    let app = std::mem::replace(&mut h.app, App::empty());
    (app, h.seen.clone())
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

fn act(app: &mut App, action: EditorAction) {
    app.world_mut().write_message(action);
}

fn form(app: &mut App, f: impl FnOnce(&mut EditorState)) {
    f(&mut app.world_mut().resource_mut::<EditorState>());
}

/// The RGBA bytes of pixel (x, y) of an image asset.
fn pixel(app: &App, handle: &Handle<Image>, x: u32, y: u32) -> [u8; 4] {
    let img = app
        .world()
        .resource::<Assets<Image>>()
        .get(handle)
        .expect("the image is in Assets<Image>");
    let i = ((y * img.width() + x) * 4) as usize;
    let d = img.data.as_ref().expect("image data");
    [d[i], d[i + 1], d[i + 2], d[i + 3]]
}

/// Generates one sprite from the form (seed locked to `seed`) and returns its gallery item.
fn generate(app: &mut App, prompt: &str, seed: u64) -> GalleryItem {
    form(app, |s| {
        s.prompt = prompt.into();
        s.width = 16;
        s.height = 8;
        s.generation_side = 64;
        s.seed_locked = true;
        s.seed = seed;
        s.sheet.count = 1;
    });
    let before = app.world().resource::<Gallery>().items.len();
    act(app, EditorAction::Generate);
    run_until(app, "the gallery item", |a| {
        a.world().resource::<Gallery>().items.len() > before
    });
    app.world().resource::<Gallery>().items[before].clone()
}

#[test]
fn generate_submits_one_editor_request_and_the_sprite_lands_in_the_gallery() {
    let (mut app, seen) = app();
    assert!(app.world().resource::<Presets>().errors.is_empty());
    {
        let mut s = app.world_mut().resource_mut::<EditorState>();
        s.prompt = "red potion".into();
        s.width = 20;
        s.height = 12;
        s.generation_side = 64;
        s.steps = 2;
        s.seed_locked = true;
        s.seed = 1234;
    }
    act(&mut app, EditorAction::ApplyPreset("Item icon".into()));
    app.update();
    // The preset replaced the size; set ours again after it.
    {
        let mut s = app.world_mut().resource_mut::<EditorState>();
        assert_eq!(s.preset.as_deref(), Some("Item icon"));
        assert_eq!((s.width, s.height), (24, 24));
        s.width = 20;
        s.height = 12;
    }
    act(&mut app, EditorAction::Generate);
    run_until(&mut app, "the gallery item", |a| {
        !a.world().resource::<Gallery>().items.is_empty()
    });
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "exactly one request reached the engine");
    let r = &seen[0];
    assert_eq!(r.priority, Priority::Editor);
    assert_eq!(r.seed, Seed::Fixed(1234));
    assert!(
        r.prompt.starts_with("red potion, single game item icon"),
        "{}",
        r.prompt
    );
    assert_eq!(r.size, pixelgen::Size::new(20, 12));

    let gallery = app.world().resource::<Gallery>();
    assert_eq!(gallery.items.len(), 1);
    let item = gallery.items[0].clone();
    assert_eq!(item.recipe.seed, Seed::Fixed(1234));
    assert_eq!(item.recipe.prompt, r.prompt);
    let img = app
        .world()
        .resource::<Assets<Image>>()
        .get(&item.image)
        .expect("the sprite is in Assets<Image>");
    assert_eq!((img.width(), img.height()), (20, 12));
    assert_eq!(pixel(&app, &item.image, 19, 11), colour(r));
    assert!(app.world().resource::<EditorQueue>().is_empty());
    assert!(app.world().resource::<EditorLog>().errors.is_empty());
}

#[test]
fn invalid_forms_and_failures_show_in_the_log_without_submitting() {
    let (mut app, seen) = app();
    act(&mut app, EditorAction::Generate); // empty prompt
    act(&mut app, EditorAction::ApplyPreset("No such style".into()));
    app.update();
    let errors = app.world().resource::<EditorLog>().errors.clone();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("prompt"), "{}", errors[0]);
    assert!(errors[1].contains("No such style"), "{}", errors[1]);
    assert!(app.world().resource::<EditorQueue>().is_empty());

    {
        let mut s = app.world_mut().resource_mut::<EditorState>();
        s.prompt = "please fail".into();
        s.generation_side = 64;
    }
    act(&mut app, EditorAction::Generate);
    run_until(&mut app, "the failure", |a| {
        a.world().resource::<EditorLog>().errors.len() == 3
    });
    let last = app.world().resource::<EditorLog>().errors[2].clone();
    assert!(last.contains("forced failure"), "{last}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(app.world().resource::<Gallery>().items.is_empty());
    assert!(app.world().resource::<EditorQueue>().is_empty());
}

#[test]
fn cancel_stops_a_running_request_and_rolling_locks_a_new_seed() {
    let (mut app, _seen) = app();
    {
        let mut s = app.world_mut().resource_mut::<EditorState>();
        s.prompt = "slow dragon".into();
        s.generation_side = 64;
        s.seed = 9;
    }
    act(&mut app, EditorAction::RollSeed);
    act(&mut app, EditorAction::Generate);
    app.update();
    let s = app.world().resource::<EditorState>();
    assert!(s.seed_locked);
    assert_ne!(s.seed, 9, "the dice drew a new seed");
    let ticket = app.world().resource::<EditorQueue>().entries[0]
        .ticket
        .clone();
    assert_eq!(ticket.recipe().seed, Seed::Fixed(s.seed));
    run_until(&mut app, "the request to run", |_| {
        matches!(ticket.status(), TicketStatus::Running { .. })
    });
    act(&mut app, EditorAction::Cancel(ticket.id()));
    run_until(&mut app, "the queue to empty", |a| {
        a.world().resource::<EditorQueue>().is_empty()
    });
    assert!(matches!(
        ticket.status(),
        TicketStatus::Failed(SpriteError::Cancelled)
    ));
    assert!(app.world().resource::<Gallery>().items.is_empty());
    assert!(
        app.world().resource::<EditorLog>().errors.is_empty(),
        "a cancel is not an error"
    );
}

#[test]
fn the_toggle_key_hides_and_shows_the_panel() {
    let (mut app, _seen) = app();
    app.init_resource::<ButtonInput<KeyCode>>();
    assert!(app.world().resource::<EditorState>().visible);
    let press = |app: &mut App, key: KeyCode| {
        let mut keys = app.world_mut().resource_mut::<ButtonInput<KeyCode>>();
        keys.release_all();
        keys.clear();
        keys.press(key);
        app.update();
    };
    press(&mut app, KeyCode::F2);
    assert!(!app.world().resource::<EditorState>().visible);
    press(&mut app, KeyCode::KeyA);
    assert!(
        !app.world().resource::<EditorState>().visible,
        "other keys do nothing"
    );
    press(&mut app, KeyCode::F2);
    assert!(app.world().resource::<EditorState>().visible);
    // While a text field of the panel has the keyboard, the key is text, not a toggle.
    app.world_mut().resource_mut::<PanelKeyboardFocus>().0 = true;
    press(&mut app, KeyCode::F2);
    assert!(
        app.world().resource::<EditorState>().visible,
        "F2 typed into a focused field must not hide the panel"
    );
    app.world_mut().resource_mut::<PanelKeyboardFocus>().0 = false;
    press(&mut app, KeyCode::F2);
    assert!(!app.world().resource::<EditorState>().visible);
}

#[test]
fn queue_entries_carry_the_live_preview_elapsed_time_and_an_eta() {
    let mut h = harness("queue");
    let app = &mut h.app;
    form(app, |s| {
        s.prompt = "gated golem".into();
        s.generation_side = 64;
    });
    act(app, EditorAction::Generate);
    app.update();
    let entry = app.world().resource::<EditorQueue>().entries[0].clone();
    let id = entry.ticket.id();
    let submitted = entry.submitted;
    assert!(entry.preview.is_none() && entry.eta(submitted).is_none());

    // Step 1 arrives: a preview, no rate yet.
    h.go.send(()).unwrap();
    assert_eq!(h.acks.recv_timeout(TIMEOUT), Ok(1));
    app.update();
    let e1 = app
        .world()
        .resource::<EditorQueue>()
        .get(id)
        .unwrap()
        .clone();
    assert_eq!((e1.step, e1.total), (1, 5));
    let preview = e1
        .preview
        .clone()
        .expect("a preview image after the first step");
    assert_eq!(pixel(app, &preview, 7, 3), [40, 7, 9, 255]);
    let img = app
        .world()
        .resource::<Assets<Image>>()
        .get(&preview)
        .unwrap();
    assert_eq!((img.width(), img.height()), (8, 4));
    let (_, t1) = e1.first_step.unwrap();
    assert_eq!(e1.eta(t1), None, "one step gives no rate");
    drop(e1);

    // One second later step 2: 1 step/s, 3 steps left -> ETA 3 s; the preview updates in place.
    for _ in 0..9 {
        app.update();
    }
    h.go.send(()).unwrap();
    assert_eq!(h.acks.recv_timeout(TIMEOUT), Ok(2));
    app.update();
    let e = app
        .world()
        .resource::<EditorQueue>()
        .get(id)
        .unwrap()
        .clone();
    assert_eq!(e.step, 2);
    let t2 = e.last_step_at.unwrap();
    assert_eq!(t2 - t1, 10 * FRAME);
    assert_eq!(e.steps_per_second(), Some(1.0));
    assert_eq!(e.eta(t2), Some(Duration::from_secs(3)));
    assert_eq!(e.elapsed(t2), t2 - submitted);
    assert!(e.elapsed(t2) >= Duration::from_secs(1));
    assert_eq!(
        e.preview.as_ref(),
        Some(&preview),
        "same handle, new pixels"
    );
    assert_eq!(pixel(app, &preview, 0, 0), [80, 7, 9, 255]);
    // Time passes without a step: the ETA counts down.
    for _ in 0..5 {
        app.update();
    }
    let now = app.world().resource::<Time<Real>>().elapsed();
    assert_eq!(now - t2, 5 * FRAME);
    assert_eq!(e.eta(now), Some(Duration::from_millis(2500)));

    // The rest: the entry leaves the queue and its preview image is freed.
    for _ in 3..=5 {
        h.go.send(()).unwrap();
    }
    run_until(app, "the result", |a| {
        !a.world().resource::<Gallery>().items.is_empty()
    });
    assert!(app.world().resource::<EditorQueue>().is_empty());
    drop(e);
    let preview_id = preview.id();
    drop(preview);
    assert_image_freed(
        app,
        preview_id,
        "the preview is dropped with its queue entry",
    );
}

#[test]
fn regenerate_repeats_the_seed_and_variations_vary_it() {
    let mut h = harness("variations");
    let app = &mut h.app;
    let item = generate(app, "blue gem", 100);
    assert_eq!(item.recipe.seed, Seed::Fixed(100));

    act(app, EditorAction::Regenerate(item.ticket));
    run_until(app, "the regenerated item", |a| {
        a.world().resource::<Gallery>().items.len() == 2
    });
    let again = app.world().resource::<Gallery>().items[1].clone();
    assert_ne!(again.ticket, item.ticket);
    assert_eq!(again.recipe, item.recipe, "same recipe, same seed");
    assert_eq!(again.variation_of, None);
    assert_eq!(
        pixel(app, &again.image, 3, 3),
        pixel(app, &item.image, 3, 3)
    );

    act(
        app,
        EditorAction::Variations {
            of: item.ticket,
            count: 3,
            seeds: VariationSeeds::Consecutive,
        },
    );
    run_until(app, "three variations", |a| {
        a.world().resource::<Gallery>().items.len() == 5
    });
    let items = app.world().resource::<Gallery>().items.clone();
    let mut seeds: Vec<u64> = items[2..]
        .iter()
        .map(|v| {
            assert_eq!(v.variation_of, Some(item.ticket));
            assert_eq!(v.recipe.prompt, item.recipe.prompt);
            assert_eq!(v.recipe.size, item.recipe.size);
            assert_eq!(pixel(app, &v.image, 0, 0), colour(&v.recipe));
            v.recipe.seed.value().unwrap()
        })
        .collect();
    seeds.sort_unstable();
    assert_eq!(seeds, vec![101, 102, 103]);
    drop(items); // (holds the original's image handle)

    act(
        app,
        EditorAction::Variations {
            of: item.ticket,
            count: 2,
            seeds: VariationSeeds::Random,
        },
    );
    run_until(app, "two random variations", |a| {
        a.world().resource::<Gallery>().items.len() == 7
    });
    let items = app.world().resource::<Gallery>().items.clone();
    let (a, b) = (
        items[5].recipe.seed.value().unwrap(),
        items[6].recipe.seed.value().unwrap(),
    );
    assert_ne!(a, b);
    assert!(![100, 101, 102, 103].contains(&a) && ![100, 101, 102, 103].contains(&b));
    assert!(
        items[5..]
            .iter()
            .all(|v| v.variation_of == Some(item.ticket))
    );
    // Seven gallery items, six model runs: "regenerate" repeats a recipe and seed that was just
    // generated, so the worker's in-memory cache serves it without the engine.
    assert_eq!(h.seen.lock().unwrap().len(), 6);
    drop(items);

    // Removing the original keeps its variations, now items of their own; the image of a
    // removed item is freed.
    let image_id = item.image.id();
    act(app, EditorAction::Remove(item.ticket));
    for _ in 0..3 {
        app.update();
    }
    let items = app.world().resource::<Gallery>().items.clone();
    assert_eq!(items.len(), 6);
    assert!(
        items
            .iter()
            .all(|i| i.ticket != item.ticket && i.variation_of.is_none())
    );
    drop(item);
    assert_image_freed(app, image_id, "the removed item's image is freed");

    let gone = bevy_pixelgen::TicketId(9999);
    act(app, EditorAction::Regenerate(gone));
    app.update();
    let errors = &app.world().resource::<EditorLog>().errors;
    assert!(errors.last().unwrap().contains("#9999"), "{errors:?}");
}

#[test]
fn save_to_assets_writes_png_and_recipe_and_guards_names_and_existing_files() {
    let mut h = harness("save");
    let dir = h.dir.join("assets/generated");
    let app = &mut h.app;
    let first = generate(app, "red potion", 11);
    let second = generate(app, "green potion", 22);
    let save = |app: &mut App, item: &GalleryItem, name: &str, overwrite: bool| {
        act(
            app,
            EditorAction::SaveToAssets {
                item: item.ticket,
                name: name.into(),
                overwrite,
            },
        );
        app.update();
    };

    save(app, &first, "../escape", false);
    save(app, &first, "bad name!", false);
    let errors = app.world().resource::<EditorLog>().errors.clone();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.contains("cannot save as")),
        "{errors:?}"
    );
    assert!(!dir.exists(), "nothing written for bad names");

    save(app, &first, "items/potion", false);
    let png = dir.join("items/potion.png");
    let ron = dir.join("items/potion.pixelgen.ron");
    let decoded = image::open(&png).expect("a PNG").into_rgba8();
    assert_eq!(decoded.dimensions(), (16, 8));
    assert_eq!(decoded.get_pixel(15, 7).0, colour(&first.recipe));
    let recipe = Recipe::from_ron(&std::fs::read_to_string(&ron).unwrap()).unwrap();
    assert_eq!(recipe, first.recipe, "the recipe next to it regenerates it");
    let item = app
        .world()
        .resource::<Gallery>()
        .get(first.ticket)
        .unwrap()
        .clone();
    assert_eq!(item.saved_as.as_deref(), Some(png.as_path()));
    assert!(
        app.world()
            .resource::<EditorLog>()
            .notes
            .last()
            .unwrap()
            .contains("potion.png")
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("items"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left");

    // The same name again is refused until overwriting is confirmed.
    save(app, &second, "items/potion.png", false);
    let dialog = app.world().resource::<SaveDialog>().clone();
    assert_eq!(dialog.item, Some(second.ticket));
    assert!(dialog.confirm_overwrite);
    assert!(
        app.world()
            .resource::<EditorLog>()
            .errors
            .last()
            .unwrap()
            .contains("exists"),
    );
    let still = image::open(&png).unwrap().into_rgba8();
    assert_eq!(
        still.get_pixel(0, 0).0,
        colour(&first.recipe),
        "not replaced"
    );
    save(app, &second, "items/potion", true);
    let replaced = image::open(&png).unwrap().into_rgba8();
    assert_eq!(replaced.get_pixel(0, 0).0, colour(&second.recipe));
    let recipe = Recipe::from_ron(&std::fs::read_to_string(&ron).unwrap()).unwrap();
    assert_eq!(recipe, second.recipe);
    assert_eq!(
        *app.world().resource::<SaveDialog>(),
        SaveDialog::default(),
        "a successful save closes the dialog"
    );
}

#[test]
fn sheets_from_the_form_play_in_the_gallery_and_on_an_applied_target() {
    let mut h = harness("sheet");
    let app = &mut h.app;
    form(app, |s| {
        s.prompt = "slime".into();
        s.width = 8;
        s.height = 8;
        s.generation_side = 64;
        s.seed_locked = true;
        s.seed = 3;
        s.sheet.count = 3;
        s.sheet.template = "{prompt} {frame}".into();
        s.fps = 5.0;
    });
    act(app, EditorAction::Generate);
    app.update();
    let ticket = app.world().resource::<EditorQueue>().entries[0]
        .ticket
        .clone();
    assert!(ticket.is_sheet(), "several frames go through the sheet API");
    run_until(app, "the sheet", |a| {
        !a.world().resource::<Gallery>().items.is_empty()
    });
    let item = app.world().resource::<Gallery>().items[0].clone();
    assert_eq!(item.frame_count(), 3);
    let seen = h.seen.lock().unwrap().clone();
    let prompts: Vec<&str> = seen.iter().map(|r| r.prompt.as_str()).collect();
    assert_eq!(prompts, vec!["slime 1", "slime 2", "slime 3"]);

    // Each frame's rect in the atlas holds that frame's pixels.
    let layout = app
        .world()
        .resource::<Assets<TextureAtlasLayout>>()
        .get(item.layout.as_ref().unwrap())
        .unwrap()
        .clone();
    for (i, frame) in seen.iter().enumerate() {
        let uv = frame_uv(&layout, i).unwrap();
        let x = (uv.min.x * layout.size.x as f32).round() as u32;
        let y = (uv.min.y * layout.size.y as f32).round() as u32;
        assert_eq!(
            pixel(app, &item.image, x + 7, y + 7),
            colour(frame),
            "frame {i}"
        );
    }

    // Saved to assets, a sheet also gets its frames as Aseprite JSON, timed at the fps.
    act(
        app,
        EditorAction::SaveToAssets {
            item: item.ticket,
            name: "mobs/slime".into(),
            overwrite: false,
        },
    );
    app.update();
    let base = h.dir.join("assets/generated/mobs");
    let json = std::fs::read_to_string(base.join("slime.json")).expect("the sheet's JSON");
    let saved = pixelgen_pixel::sheet::SheetLayout::from_aseprite_json(&json).unwrap();
    assert_eq!(saved.frames.len(), 3);
    for (i, f) in saved.frames.iter().enumerate() {
        let r = layout.textures[i];
        assert_eq!((f.rect.x, f.rect.y), (r.min.x, r.min.y), "frame {i}");
        assert_eq!((f.rect.w, f.rect.h), (8, 8));
        assert_eq!(f.duration_ms, 200, "5 fps");
    }
    assert!(json.contains("\"slime.png\""), "the JSON names its image");
    let png = image::open(base.join("slime.png")).unwrap().into_rgba8();
    assert_eq!(png.dimensions(), (layout.size.x, layout.size.y));
    let recipe = std::fs::read_to_string(base.join("slime.pixelgen.ron")).unwrap();
    assert_eq!(Recipe::from_ron(&recipe).unwrap().frame_count(), 3);

    // The gallery plays it at 5 fps: one frame per 2 updates of 100 ms.
    let mut shown = Vec::new();
    for _ in 0..6 {
        app.update();
        let g = app.world().resource::<Gallery>();
        shown.push(g.frame_now(3, 5.0));
    }
    let mut sorted = shown.clone();
    sorted.dedup();
    assert!(sorted.len() >= 3, "frames advance: {shown:?}");
    assert!(
        shown
            .windows(2)
            .all(|w| w[1] == w[0] || w[1] == (w[0] + 1) % 3)
    );

    // Apply it to a marked scene sprite: image and atlas swap in, and it plays.
    let plain = app.world_mut().spawn(Sprite::default()).id();
    let hero = app
        .world_mut()
        .spawn((Sprite::default(), PixelGenTarget, Name::new("hero")))
        .id();
    act(
        app,
        EditorAction::ApplyToTarget {
            item: item.ticket,
            target: plain,
        },
    );
    act(
        app,
        EditorAction::ApplyToTarget {
            item: item.ticket,
            target: hero,
        },
    );
    app.update();
    let errors = app.world().resource::<EditorLog>().errors.clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("PixelGenTarget"), "{}", errors[0]);
    assert_eq!(
        app.world().get::<Sprite>(plain).unwrap().image,
        Handle::default(),
        "an unmarked sprite is left alone"
    );
    assert_eq!(
        app.world().get::<SheetPlayback>(hero),
        Some(&SheetPlayback { frames: 3 })
    );
    let mut indices = Vec::new();
    for _ in 0..6 {
        app.update();
        let sprite = app.world().get::<Sprite>(hero).unwrap();
        assert_eq!(sprite.image, item.image);
        let atlas = sprite.texture_atlas.as_ref().expect("an atlas");
        assert_eq!(&atlas.layout, item.layout.as_ref().unwrap());
        let g = app.world().resource::<Gallery>();
        assert_eq!(atlas.index, g.frame_now(3, 5.0));
        indices.push(atlas.index);
    }
    indices.dedup();
    assert!(indices.len() >= 3, "the sprite animates: {indices:?}");

    // A single sprite applied afterwards drops the atlas and the playback.
    let single = generate(app, "rock", 5);
    act(
        app,
        EditorAction::ApplyToTarget {
            item: single.ticket,
            target: hero,
        },
    );
    app.update();
    let sprite = app.world().get::<Sprite>(hero).unwrap();
    assert_eq!(sprite.image, single.image);
    assert!(sprite.texture_atlas.is_none());
    assert!(app.world().get::<SheetPlayback>(hero).is_none());
}

#[test]
fn palette_files_load_into_the_form() {
    let mut h = harness("palette");
    let gpl = h.dir.join("two.gpl");
    std::fs::write(
        &gpl,
        "GIMP Palette\nName: two\n#\n255   0   0 red\n  0   0 255 blue\n",
    )
    .unwrap();
    let app = &mut h.app;
    act(app, EditorAction::LoadPalette(gpl.clone()));
    act(app, EditorAction::LoadPalette(h.dir.join("missing.hex")));
    app.update();
    let state = app.world().resource::<EditorState>().clone();
    assert_eq!(state.pixel.palette, Some(gpl.display().to_string()));
    let loaded = app
        .world()
        .resource::<PaletteFile>()
        .loaded
        .clone()
        .unwrap();
    assert_eq!(loaded.1.colors, vec![[255, 0, 0], [0, 0, 255]]);
    let errors = app.world().resource::<EditorLog>().errors.clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("missing.hex"), "{}", errors[0]);
    let mut s = state;
    s.prompt = "flag".into();
    let pal = s.recipe().unwrap().pixel.unwrap().palette.unwrap();
    assert_eq!(pal.colors, loaded.1.colors);
}

#[test]
fn settings_are_saved_after_a_pause_and_at_exit_and_a_bad_file_falls_back() {
    let dir = temp_dir("settings");
    let path = dir.join("cfg/editor.ron");
    let plugin = |path: PathBuf| {
        move |d: &Path| PixelGenEditorPlugin {
            settings_path: Some(path),
            settings_debounce: Duration::from_millis(500),
            ..editor_plugin(d)
        }
    };
    {
        let mut h = harness_with("settings-a", plugin(path.clone()));
        let app = &mut h.app;
        app.update();
        assert!(!path.exists(), "nothing to write before a change");
        // Typing: a change every frame for a second is not written meanwhile.
        for i in 0..10 {
            form(app, |s| s.prompt = format!("torch {i}"));
            app.update();
            assert!(!path.exists(), "written while still typing (frame {i})");
        }
        for _ in 0..4 {
            app.update();
        }
        assert!(!path.exists(), "written before the pause was over");
        for _ in 0..3 {
            app.update();
        }
        let saved = load_settings(&path)
            .unwrap()
            .expect("written after the pause");
        assert_eq!(saved.prompt, "torch 9");
        // A change right before exit is written by the exit.
        form(app, |s| {
            s.fps = 24.0;
            s.zoom = 4;
            s.visible = false;
        });
        app.world_mut().write_message(AppExit::Success);
        app.update();
        let saved = load_settings(&path).unwrap().unwrap();
        assert_eq!((saved.fps, saved.zoom, saved.visible), (24.0, 4, false));
        assert_eq!(saved, *app.world().resource::<EditorState>());
    }
    {
        // The next run starts from the saved settings.
        let h = harness_with("settings-b", plugin(path.clone()));
        let s = h.app.world().resource::<EditorState>();
        assert_eq!(
            (s.prompt.as_str(), s.fps, s.visible),
            ("torch 9", 24.0, false)
        );
        assert!(h.app.world().resource::<EditorLog>().errors.is_empty());
    }
    {
        let broken = "(prompt: \"half a file";
        std::fs::write(&path, broken).unwrap();
        let mut h = harness_with("settings-c", plugin(path.clone()));
        assert_eq!(
            *h.app.world().resource::<EditorState>(),
            EditorState::default()
        );
        let errors = h.app.world().resource::<EditorLog>().errors.clone();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("editor.ron") && errors[0].contains("using the defaults"),
            "{}",
            errors[0]
        );
        // The broken file is kept aside before the next save replaces it.
        let backup = bevy_pixelgen::editor::backup_path(&path);
        assert!(errors[0].contains("editor.ron.bad"), "{}", errors[0]);
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), broken);
        form(&mut h.app, |s| s.prompt = "fresh".into());
        h.app.world_mut().write_message(AppExit::Success);
        h.app.update();
        assert_eq!(load_settings(&path).unwrap().unwrap().prompt, "fresh");
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), broken);
    }
    {
        // A settings file that cannot be written is reported once, and the app goes on.
        std::fs::write(dir.join("not-a-folder"), "x").unwrap();
        let blocked = dir.join("not-a-folder/editor.ron");
        let mut h = harness_with("settings-e", plugin(blocked.clone()));
        let errors = h.app.world().resource::<EditorLog>().errors.clone();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("using the defaults"), "{}", errors[0]);
        form(&mut h.app, |s| s.prompt = "cannot be kept".into());
        for _ in 0..20 {
            h.app.update();
        }
        let errors = h.app.world().resource::<EditorLog>().errors.clone();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[1].contains("cannot write"), "{}", errors[1]);
        assert!(!blocked.exists());
        form(&mut h.app, |s| s.prompt = "still not".into());
        for _ in 0..20 {
            h.app.update();
        }
        let errors = h.app.world().resource::<EditorLog>().errors.len();
        assert_eq!(errors, 3, "one error per change");
    }
    {
        // Saved settings naming a palette file load it for the swatches.
        let hex = dir.join("four.hex");
        std::fs::write(&hex, "000000\n555555\naaaaaa\nffffff\n").unwrap();
        let state = EditorState {
            pixel: bevy_pixelgen::editor::PixelSettings {
                palette: Some(hex.display().to_string()),
                ..Default::default()
            },
            ..EditorState::default()
        };
        bevy_pixelgen::editor::save_settings(&path, &state).unwrap();
        let h = harness_with("settings-d", plugin(path.clone()));
        let loaded = h
            .app
            .world()
            .resource::<PaletteFile>()
            .loaded
            .clone()
            .unwrap();
        assert_eq!(loaded.0, hex.display().to_string());
        assert_eq!(loaded.1.len(), 4);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gallery_items_carry_a_seam_score_for_the_tiling_check() {
    let mut h = harness("seams");
    let app = &mut h.app;
    let flat = generate(app, "stone floor", 1);
    let ramp = generate(app, "ramp wall", 2);
    assert_eq!(flat.seam, Some(0.0), "a flat texture tiles seamlessly");
    let seam = ramp.seam.expect("a seam score");
    assert!(
        seam > pixelgen_pixel::tile::DEFAULT_SEAM_THRESHOLD,
        "a ramp has a visible wrap seam: {seam}"
    );
    assert!(!flat.recipe.tiling && !ramp.recipe.tiling);
}

#[test]
fn the_tiling_toggle_asks_the_engine_for_a_seamless_tile() {
    let mut h = harness("tiling");
    let app = &mut h.app;
    let plain = generate(app, "grass", 1);
    form(app, |s| s.tiling = true);
    let tiled = generate(app, "grass", 1);
    let seen = h.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "tiling is part of the cache key: a new run");
    assert!(!seen[0].tiling && !plain.recipe.tiling);
    assert!(seen[1].tiling, "the engine got a tiling recipe");
    assert!(tiled.recipe.tiling, "the gallery keeps it for regenerate");
    // Regenerate repeats it, and loading the recipe back sets the toggle.
    form(app, |s| s.tiling = false);
    act(app, EditorAction::Regenerate(tiled.ticket));
    run_until(app, "the regenerated item", |a| {
        a.world().resource::<Gallery>().items.len() == 3
    });
    assert!(app.world().resource::<Gallery>().items[2].recipe.tiling);
    let mut s = EditorState::default();
    s.load_recipe(&tiled.recipe);
    assert!(s.tiling);
}

#[test]
fn an_engine_that_cannot_start_says_how_to_get_a_model() {
    let factory = EngineFactory::new(|| {
        Err(PixelGenError::Engine(
            "no model folder at models/sdxl".into(),
        ))
    });
    let dir = temp_dir("no-model");
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin::default(),
        ImagePlugin::default(),
        PixelGenPlugin {
            output_dir: None,
            ..PixelGenPlugin::with_engine(factory)
        },
        editor_plugin(&dir),
    ));
    app.finish();
    app.cleanup();
    form(&mut app, |s| {
        s.prompt = "tree".into();
        s.generation_side = 64;
    });
    act(&mut app, EditorAction::Generate);
    run_until(&mut app, "the failure", |a| {
        !a.world().resource::<EditorLog>().errors.is_empty()
    });
    let e = app.world().resource::<EditorLog>().errors[0].clone();
    assert!(
        e.contains("models/sdxl") && e.contains("docs/models.md"),
        "{e}"
    );
    assert!(app.world().resource::<EditorQueue>().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// After a few frames, the image `id` is gone from `Assets<Image>` (its last handle dropped).
fn assert_image_freed(app: &mut App, id: AssetId<Image>, what: &str) {
    for _ in 0..3 {
        app.update();
    }
    assert!(
        app.world().resource::<Assets<Image>>().get(id).is_none(),
        "{what}"
    );
}

#[test]
fn animate_and_directions_make_sets_from_a_gallery_item_that_play_and_report_consistency() {
    let (mut app, seen) = app();
    let potion = generate(&mut app, "knight", 21);
    let sprite_pixels = pixel(&app, &potion.image, 3, 3);
    let before = app.world().resource::<Gallery>().items.len();
    act(
        &mut app,
        EditorAction::Animate {
            of: potion.ticket,
            action: pixelgen::Action::Hurt,
        },
    );
    run_until(&mut app, "the animation", |a| {
        a.world().resource::<Gallery>().items.len() > before
    });
    let hurt = app.world().resource::<Gallery>().items[before].clone();
    // The set recipe: the item's prompt and seed, the hurt template, drawn after the item's
    // own pixels (a content-named reference file), starting from it.
    let set = hurt.recipe.set.clone().expect("a set recipe");
    assert_eq!(hurt.recipe.prompt, potion.recipe.prompt);
    assert_eq!(hurt.recipe.seed, potion.recipe.seed);
    assert_eq!(
        set.animation.as_ref().unwrap().action,
        pixelgen::Action::Hurt
    );
    let reference = set.reference_image().expect("the item is the reference");
    assert_eq!(reference.start_strength, Some(0.6));
    let refs = image::open(&reference.path).unwrap().to_rgba8();
    assert_eq!(refs.dimensions(), (16, 8));
    assert_eq!(refs.get_pixel(3, 3).0, sprite_pixels);
    // Three frames drawn, one clip, measured.
    assert_eq!(hurt.frame_count(), 3);
    assert_eq!(hurt.clips.names().collect::<Vec<_>>(), ["hurt"]);
    let c = hurt
        .consistency
        .clone()
        .expect("sets report their consistency");
    assert_eq!((c.frames.len(), c.max_anchor_drift), (3, 0));
    assert!(hurt.consistency_line().unwrap().contains("drift 0 px"));
    // The gallery preview plays the clip at its own timing (100 ms a frame, then holds).
    let shown: Vec<usize> = [0, 100, 200, 250]
        .map(|ms| hurt.frame_at(Duration::from_millis(ms), 5.0))
        .to_vec();
    assert_eq!(shown, [0, 1, 2, 2]);
    let prompts: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.prompt.clone())
        .collect();
    assert!(
        prompts
            .iter()
            .any(|p| p.contains("getting hit") && p.contains("frame 3 of 3")),
        "{prompts:?}"
    );

    // Directions of the animation: the hurt frames from 4 views, west mirrored; the
    // reference is the set's first frame.
    let before = app.world().resource::<Gallery>().items.len();
    act(
        &mut app,
        EditorAction::Directions {
            of: hurt.ticket,
            count: 4,
            mirror: true,
        },
    );
    run_until(&mut app, "the views", |a| {
        a.world().resource::<Gallery>().items.len() > before
    });
    let views = app.world().resource::<Gallery>().items[before].clone();
    assert_eq!(views.frame_count(), 12);
    assert_eq!(
        views.clips.names().collect::<Vec<_>>(),
        ["hurt_south", "hurt_west", "hurt_east", "hurt_north"]
    );
    let reference = views
        .recipe
        .set
        .as_ref()
        .unwrap()
        .reference_image()
        .unwrap();
    assert_eq!(
        image::open(&reference.path)
            .unwrap()
            .to_rgba8()
            .dimensions(),
        (16, 8),
        "one frame of the sheet, not the sheet"
    );

    // A gone item is an error in the log, nothing is submitted.
    let submitted = seen.lock().unwrap().len();
    act(
        &mut app,
        EditorAction::Animate {
            of: bevy_pixelgen::TicketId(9999),
            action: pixelgen::Action::Walk,
        },
    );
    app.update();
    let errors = app.world().resource::<EditorLog>().errors.clone();
    assert!(errors.iter().any(|e| e.contains("is gone")), "{errors:?}");
    assert_eq!(seen.lock().unwrap().len(), submitted);
}

/// "Repaint" of `item` with `mask` and the default inpaint options.
fn repaint(item: &GalleryItem, mask: MaskCanvas, prompt: &str) -> EditorAction {
    grow(item, mask, prompt, CanvasGrowth::default())
}

/// "Repaint" of `item` with `mask`, the canvas grown by `grow`, default inpaint options.
fn grow(item: &GalleryItem, mask: MaskCanvas, prompt: &str, grow: CanvasGrowth) -> EditorAction {
    EditorAction::Repaint {
        item: item.ticket,
        mask,
        prompt: prompt.into(),
        inpaint: pixelgen::InpaintParams {
            strength: 0.8,
            mask_blur: 2.0,
        },
        grow,
    }
}

#[test]
fn repaint_submits_an_edit_of_the_item_and_keeps_every_unmasked_pixel() {
    let (mut app, seen) = app();
    // A red ramp, so every column of the source differs from a repainted pixel.
    let item = generate(&mut app, "knight ramp", 5);
    let (w, h) = (item.recipe.size.width, item.recipe.size.height);
    let mut mask = MaskCanvas::new(w, h);
    mask.paint(3, 2, 1, true);
    mask.set(15, 7, true);
    assert_eq!(mask.count(), 10);
    let runs = seen.lock().unwrap().len();
    act(
        &mut app,
        repaint(&item, mask.clone(), "  knight with a golden helmet "),
    );
    run_until(&mut app, "the repainted sprite", |a| {
        a.world().resource::<Gallery>().items.len() == 2
    });
    let done = app.world().resource::<Gallery>().items[1].clone();
    assert_eq!(done.variation_of, Some(item.ticket), "shown under the item");
    assert_eq!(done.layout, None);

    // The engine got the item's recipe as an edit: new prompt, editor priority, a fixed seed.
    let recipes = seen.lock().unwrap().clone();
    assert_eq!(recipes.len(), runs + 1);
    let sent = recipes.last().unwrap().clone();
    assert_eq!(sent, done.recipe);
    assert_eq!(sent.prompt, "knight with a golden helmet");
    assert_eq!(sent.priority, pixelgen::Priority::Editor);
    assert_eq!(sent.size, item.recipe.size);
    assert_eq!(sent.pixel, item.recipe.pixel);
    assert!(sent.seed.value().is_some());
    let edit = sent.edit.clone().expect("an edit recipe");
    assert_eq!((edit.inpaint.strength, edit.inpaint.mask_blur), (0.8, 2.0));
    // Its source PNG is the item's image, its mask PNG marks exactly the painted pixels.
    let source = image::open(&edit.source).unwrap().to_rgba8();
    assert_eq!(source.dimensions(), (w, h));
    for (x, y, p) in source.enumerate_pixels() {
        assert_eq!(p.0, pixel(&app, &item.image, x, y), "source ({x}, {y})");
    }
    let mask_png = image::open(mask_file(&edit)).unwrap().to_rgba8();
    assert_eq!(MaskCanvas::from_rgba(&mask_png), mask);

    // The result: the engine's colour inside the mask, the source's pixels, exactly,
    // everywhere else.
    for y in 0..h {
        for x in 0..w {
            let got = pixel(&app, &done.image, x, y);
            if mask.get(i64::from(x), i64::from(y)) {
                assert_eq!(got, colour(&done.recipe), "repainted ({x}, {y})");
            } else {
                assert_eq!(got, source.get_pixel(x, y).0, "kept ({x}, {y})");
            }
        }
    }
    assert_ne!(
        pixel(&app, &done.image, 3, 2),
        pixel(&app, &item.image, 3, 2),
        "the masked part changed"
    );

    // The same pixels and mask reuse the same files.
    act(
        &mut app,
        repaint(&item, mask, "knight with a silver helmet"),
    );
    run_until(&mut app, "the second repaint", |a| {
        a.world().resource::<Gallery>().items.len() == 3
    });
    let again = app.world().resource::<Gallery>().items[2].recipe.clone();
    let again = again.edit.unwrap();
    assert_eq!((again.source, again.mask), (edit.source, edit.mask));
}

#[test]
fn repaint_refuses_empty_and_full_masks_sheets_and_gone_items() {
    let mut h = harness("repaint-refused");
    let app = &mut h.app;
    let sprite = generate(app, "barrel", 9);
    let (w, hh) = (sprite.recipe.size.width, sprite.recipe.size.height);
    form(app, |s| {
        s.prompt = "slime".into();
        s.width = 8;
        s.height = 8;
        s.sheet.count = 3;
        s.sheet.template = "{prompt} {frame}".into();
    });
    act(app, EditorAction::Generate);
    run_until(app, "the sheet", |a| {
        a.world().resource::<Gallery>().items.len() == 2
    });
    let sheet = app.world().resource::<Gallery>().items[1].clone();
    assert!(sheet.layout.is_some());
    let runs = h.seen.lock().unwrap().len();

    let mut full = MaskCanvas::new(w, hh);
    full.fill();
    let mut some = MaskCanvas::new(8, 8);
    some.set(1, 1, true);
    let mut wrong_size = MaskCanvas::new(w + 1, hh);
    wrong_size.set(1, 1, true);
    let mut fine = MaskCanvas::new(w, hh);
    fine.set(0, 0, true);
    let gone = GalleryItem {
        ticket: bevy_pixelgen::TicketId(9999),
        ..sprite.clone()
    };
    let cases = [
        (repaint(&sprite, MaskCanvas::new(w, hh), "barrel"), "empty"),
        (
            repaint(&sprite, full, "barrel"),
            "use Regenerate or Variations instead",
        ),
        (repaint(&sheet, some, "slime"), "sheet"),
        (repaint(&sprite, wrong_size, "barrel"), "the mask is 17x8"),
        (repaint(&sprite, fine.clone(), "   "), "prompt is empty"),
        (repaint(&gone, fine.clone(), "barrel"), "is gone"),
        (
            EditorAction::Repaint {
                item: sprite.ticket,
                mask: fine,
                prompt: "barrel".into(),
                inpaint: pixelgen::InpaintParams {
                    strength: 0.0,
                    mask_blur: 0.0,
                },
                grow: CanvasGrowth::default(),
            },
            "strength",
        ),
    ];
    for (action, why) in cases {
        act(app, action);
        app.update();
        let errors = &app.world().resource::<EditorLog>().errors;
        let last = errors.last().expect("a message");
        assert!(last.contains(why), "{why:?} not in {last:?}");
        assert!(last.starts_with("cannot repaint"), "{last}");
    }
    assert!(app.world().resource::<EditorQueue>().is_empty());
    assert_eq!(app.world().resource::<Gallery>().items.len(), 2);
    assert_eq!(h.seen.lock().unwrap().len(), runs, "nothing was submitted");

    // Removing the item closes its repaint view.
    *app.world_mut().resource_mut::<RepaintDialog>() =
        RepaintDialog::open(sprite.ticket, w, hh, &sprite.recipe.prompt);
    act(app, EditorAction::Remove(sprite.ticket));
    app.update();
    assert_eq!(
        *app.world().resource::<RepaintDialog>(),
        RepaintDialog::default()
    );
}

/// The mask file of an edit recipe.
fn mask_file(edit: &pixelgen::EditRecipe) -> PathBuf {
    match &edit.mask {
        Some(pixelgen::edit::Mask::File(path)) => path.clone(),
        other => panic!("expected a mask file, got {other:?}"),
    }
}

#[test]
fn outpaint_grows_the_canvas_and_keeps_the_sprite_exactly_at_its_offset() {
    let (mut app, seen) = app();
    let item = generate(&mut app, "wall ramp", 3);
    let (w, h) = (item.recipe.size.width, item.recipe.size.height);
    assert_eq!(
        (w, h, item.recipe.generation_size),
        (16, 8, pixelgen::Size::square(64))
    );
    let growth = CanvasGrowth {
        left: 4,
        right: 12,
        top: 2,
        bottom: 0,
    };
    // Nothing marked: the new canvas alone is drawn (no mask in the recipe).
    act(
        &mut app,
        grow(&item, MaskCanvas::new(w, h), "castle wall", growth),
    );
    run_until(&mut app, "the grown sprite", |a| {
        a.world().resource::<Gallery>().items.len() == 2
    });
    let done = app.world().resource::<Gallery>().items[1].clone();
    assert_eq!(done.variation_of, Some(item.ticket));
    let sent = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(sent, done.recipe);
    assert_eq!(sent.size, pixelgen::Size::new(32, 10));
    // The generation size grows with the canvas: 64 model pixels for 16 and for 8 sprite
    // pixels become 128 and 80.
    assert_eq!(sent.generation_size, pixelgen::Size::new(128, 80));
    let canvas = sent.pixel.as_ref().unwrap().canvas.clone().unwrap();
    assert_eq!((canvas.width, canvas.height), (32, 10));
    let edit = sent.edit.clone().expect("an edit recipe");
    assert_eq!(edit.offset, Some((4, 2)));
    assert_eq!(edit.mask, None, "nothing was marked");
    let source = image::open(&edit.source).unwrap().to_rgba8();
    assert_eq!(source.dimensions(), (w, h));
    let img = app
        .world()
        .resource::<Assets<Image>>()
        .get(&done.image)
        .unwrap()
        .clone();
    assert_eq!((img.width(), img.height()), (32, 10));
    let inside = |x: u32, y: u32| (4..4 + w).contains(&x) && (2..2 + h).contains(&y);
    for y in 0..10 {
        for x in 0..32 {
            let got = pixel(&app, &done.image, x, y);
            if inside(x, y) {
                assert_eq!(
                    got,
                    pixel(&app, &item.image, x - 4, y - 2),
                    "kept ({x}, {y})"
                );
            } else {
                assert_eq!(got, colour(&done.recipe), "drawn ({x}, {y})");
            }
        }
    }

    // A marked pixel goes onto the canvas at the offset, and is redrawn too.
    let mut mask = MaskCanvas::new(w, h);
    mask.set(0, 0, true);
    act(&mut app, grow(&item, mask, "castle wall", growth));
    run_until(&mut app, "the grown and repainted sprite", |a| {
        a.world().resource::<Gallery>().items.len() == 3
    });
    let done = app.world().resource::<Gallery>().items[2].clone();
    let edit = done.recipe.edit.clone().unwrap();
    let on_canvas = MaskCanvas::from_rgba(&image::open(mask_file(&edit)).unwrap().to_rgba8());
    assert_eq!(on_canvas.dimensions(), (32, 10));
    assert_eq!(on_canvas.count(), 1);
    assert!(on_canvas.get(4, 2));
    assert_eq!(pixel(&app, &done.image, 4, 2), colour(&done.recipe));
    assert_eq!(
        pixel(&app, &done.image, 5, 2),
        pixel(&app, &item.image, 1, 0)
    );
}

#[test]
fn outpaint_refuses_no_growth_without_a_mask_and_too_much_growth() {
    let mut h = harness("outpaint-refused");
    let app = &mut h.app;
    let item = generate(app, "crate", 4);
    let (w, hh) = (item.recipe.size.width, item.recipe.size.height);
    let runs = h.seen.lock().unwrap().len();
    let mut full = MaskCanvas::new(w, hh);
    full.fill();
    let cases = [
        (
            CanvasGrowth::default(),
            MaskCanvas::new(w, hh),
            "the mask is empty",
        ),
        (
            CanvasGrowth {
                left: 65,
                ..CanvasGrowth::default()
            },
            MaskCanvas::new(w, hh),
            "at most 64",
        ),
        (CanvasGrowth::all_round(8), full, "whole sprite"),
    ];
    for (growth, mask, why) in cases {
        act(app, grow(&item, mask, "crate", growth));
        app.update();
        let last = app.world().resource::<EditorLog>().errors.last().cloned();
        let last = last.expect("a message");
        assert!(last.contains(why), "{why:?} not in {last:?}");
    }
    assert!(app.world().resource::<EditorQueue>().is_empty());
    assert_eq!(h.seen.lock().unwrap().len(), runs, "nothing was submitted");
}

#[test]
fn the_tileset_form_submits_a_tileset_and_the_gallery_previews_it() {
    let mut h = harness("tileset");
    let app = &mut h.app;
    form(app, |s| {
        s.tileset.terrain_a = " grass ".into();
        s.tileset.terrain_b = "water".into();
        s.tileset.kind = pixelgen::TilesetKind::Blob;
        s.tileset.tile_size = 16;
        s.tileset.variations = 1;
        s.generation_side = 72;
        s.seed_locked = true;
        s.seed = 11;
        s.steps = 7;
        s.pixel.outline = true;
    });
    act(app, EditorAction::GenerateTileset);
    run_until(app, "the tileset", |a| {
        a.world().resource::<Gallery>().items.len() == 1
    });
    assert!(app.world().resource::<EditorLog>().errors.is_empty());
    let item = app.world().resource::<Gallery>().items[0].clone();
    let r = &item.recipe;
    let set = r.tileset.as_ref().expect("a tileset recipe");
    assert_eq!(set.kind, pixelgen::TilesetKind::Blob);
    assert_eq!(set.terrains, ("grass".to_owned(), "water".to_owned()));
    assert_eq!(set.variations, 1);
    assert_eq!(r.size, pixelgen::Size::square(16));
    assert_eq!(
        r.generation_size,
        pixelgen::Size::square(64),
        "a whole number of tiles"
    );
    assert_eq!((r.seed, r.steps), (Seed::Fixed(11), Some(7)));
    assert_eq!(r.priority, pixelgen::Priority::Editor);
    assert_eq!(r.prompt, "top-down pixel art game tile");
    let px = r.pixel.as_ref().unwrap();
    assert!(
        px.background.is_none() && px.outline.is_none(),
        "opaque, no outline"
    );
    assert!(
        h.seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.prompt.starts_with("grass")),
        "the engine drew the terrains"
    );

    // The gallery item: the atlas, an autotiled map of it and the seam line.
    assert!(item.layout.is_some());
    let preview = item.tileset.clone().expect("a tileset preview");
    assert_eq!(preview.map, preview_map(pixelgen::TilesetKind::Blob));
    assert_eq!(
        preview.cells.len(),
        48 + 2,
        "48 tiles and a variation of each"
    );
    assert_eq!(preview.atlas_size, (8 * 16, 7 * 16));
    assert!(preview.map.iter().all(|&i| preview.uv(i).is_some()));
    assert!(preview.seams.edges > 0);
    let line = preview.seams.line();
    assert!(line.starts_with("seams: "), "{line}");
    assert!(
        line.contains(&format!("{} edges", preview.seams.edges)),
        "{line}"
    );

    // Saving it writes the Tiled tileset and the index table beside the atlas.
    act(
        app,
        EditorAction::SaveToAssets {
            item: item.ticket,
            name: "terrain/grass-water".into(),
            overwrite: false,
        },
    );
    app.update();
    let folder = h.dir.join("assets/generated/terrain");
    for file in [
        "grass-water.png",
        "grass-water.pixelgen.ron",
        "grass-water.tsx",
        "grass-water.tiles.json",
    ] {
        assert!(folder.join(file).is_file(), "{file} written");
    }
    let note = app.world().resource::<EditorLog>().notes.last().cloned();
    let note = note.expect("a saved note");
    assert!(
        note.contains(".tsx") && note.contains(".tiles.json"),
        "{note}"
    );
}

#[test]
fn the_tileset_form_refuses_bad_input_without_submitting() {
    let mut h = harness("tileset-refused");
    let app = &mut h.app;
    type Change = fn(&mut EditorState);
    let cases: [(Change, &str); 4] = [
        (
            |s| s.tileset.terrain_b = "  ".into(),
            "terrain prompt is empty",
        ),
        (|s| s.tileset.tile_size = 20, "tile size 20"),
        (|s| s.tileset.variations = 9, "at most 4"),
        // Checked as Plan::new checks it.
        (|s| s.steps = 0, "steps"),
    ];
    for (change, why) in cases {
        form(app, |s| {
            *s = EditorState::default();
            change(s);
        });
        act(app, EditorAction::GenerateTileset);
        app.update();
        let last = app.world().resource::<EditorLog>().errors.last().cloned();
        let last = last.expect("a message");
        assert!(last.starts_with("cannot make the tileset"), "{last}");
        assert!(last.contains(why), "{why:?} not in {last:?}");
    }
    assert!(app.world().resource::<EditorQueue>().is_empty());
    assert!(h.seen.lock().unwrap().is_empty(), "nothing was submitted");
}
