//! The editor without a window: actions submit requests, results land in the gallery.
#![cfg(feature = "editor")]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::asset::{AssetPlugin, Assets};
use bevy::image::{Image, ImagePlugin};
use bevy::prelude::*;
use bevy_pixelgen::prelude::*;
use bevy_pixelgen::{
    EditorLog, EditorQueue, EngineFactory, PixelGenEditorPlugin, Presets, TicketStatus, pixelgen,
};
use pixelgen::{CacheKey, Control, GeneratedSprite, ModelIdentity, PixelGenError, SpriteEngine};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A test engine: records every recipe it is given; `fail` in the prompt errors, `slow`
/// runs steps until cancelled; anything else returns a solid sprite of the recipe's size.
struct FakeEngine {
    seen: Arc<Mutex<Vec<Recipe>>>,
}

impl SpriteEngine for FakeEngine {
    fn model_identity(&mut self) -> pixelgen::Result<ModelIdentity> {
        Ok(ModelIdentity("fake".into()))
    }

    fn generate(
        &mut self,
        recipe: &Recipe,
        progress: &mut dyn FnMut(&pixelgen::Progress) -> Control,
    ) -> pixelgen::Result<GeneratedSprite> {
        self.seen.lock().unwrap().push(recipe.clone());
        if recipe.prompt.contains("fail") {
            return Err(PixelGenError::Engine("forced failure".into()));
        }
        let total = if recipe.prompt.contains("slow") {
            10_000
        } else {
            1
        };
        for step in 1..=total {
            let p = pixelgen::Progress {
                step,
                total,
                preview: None,
            };
            if progress(&p) == Control::Cancel {
                return Err(PixelGenError::Cancelled { step, total });
            }
            if total > 1 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let image = image::RgbaImage::from_pixel(
            recipe.size.width,
            recipe.size.height,
            image::Rgba([200, 40, 40, 255]),
        );
        Ok(GeneratedSprite {
            key: CacheKey::new(recipe, &ModelIdentity("fake".into()))?,
            image,
            recipe: recipe.clone(),
            raw_size: (64, 64),
            fell_back: false,
            elapsed: Duration::ZERO,
        })
    }
}

fn app() -> (App, Arc<Mutex<Vec<Recipe>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let factory = EngineFactory::new(move || {
        Ok(Box::new(FakeEngine { seen: s.clone() }) as Box<dyn SpriteEngine>)
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
        PixelGenEditorPlugin {
            presets_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/presets"),
            panel: false,
            ..PixelGenEditorPlugin::default()
        },
    ));
    app.finish();
    app.cleanup();
    (app, seen)
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
    assert_eq!(
        img.data.as_ref().map(|d| d[..4].to_vec()),
        Some(vec![200, 40, 40, 255])
    );
    assert!(app.world().resource::<EditorQueue>().tickets.is_empty());
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
    assert!(app.world().resource::<EditorQueue>().tickets.is_empty());

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
    assert!(app.world().resource::<EditorQueue>().tickets.is_empty());
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
    let ticket = app.world().resource::<EditorQueue>().tickets[0].clone();
    assert_eq!(ticket.recipe().seed, Seed::Fixed(s.seed));
    run_until(&mut app, "the request to run", |_| {
        matches!(ticket.status(), TicketStatus::Running { .. })
    });
    act(&mut app, EditorAction::Cancel(ticket.id()));
    run_until(&mut app, "the queue to empty", |a| {
        a.world().resource::<EditorQueue>().tickets.is_empty()
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
}
