//! Sets through the facade: a model-like engine draws each frame of a walking character at
//! 8x, at its own place and in its own tint (as independent generations drift); the set comes
//! out with one palette, no anchor drift, mirrored west rows, clips and its consistency, and
//! from the cache the same. Bad sets are refused before the engine runs.

mod common;

use std::path::Path;

use common::Scratch;
use image::{Rgba, RgbaImage};
use pixelgen::{
    Action, CachedEngine, Control, DiskCache, ModelIdentity, PixelGenError, Plan, Progress, Recipe,
    Rendered, RenderedSet, Seed, SetRecipe, Size, SpriteEngine,
};

const BACKGROUND: [u8; 3] = [236, 236, 228];

/// A model stand-in. Frame prompts say the view ("facing right"/"facing left") and "frame k
/// of n"; it draws a 10x14-cell walker at 8 px a cell, shifted by a few cells and tinted per
/// frame, a sword on the side it faces, and a stride that follows k.
#[derive(Default)]
struct WalkerModel {
    drawn: Vec<String>,
}

fn walker(prompt: &str, index: usize) -> RgbaImage {
    let tint = [0i32, 7, -6, 5, -3, 8, -7, 4][index % 8];
    let shade = |c: [u8; 3]| {
        let t = |v: u8| (i32::from(v) + tint).clamp(0, 255) as u8;
        Rgba([t(c[0]), t(c[1]), t(c[2]), 255])
    };
    let frame: u32 = prompt
        .split("frame ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let stride = frame % 2;
    let right = prompt.contains("facing right");
    let (bx, by) = (
        [1u32, 3, 2, 0, 4, 1, 2, 3][index % 8],
        [0u32, 1, 2, 1][index % 4],
    );
    let mut cells = RgbaImage::from_pixel(
        16,
        16,
        Rgba([BACKGROUND[0], BACKGROUND[1], BACKGROUND[2], 255]),
    );
    let mut fill = |x0: u32, y0: u32, w: u32, h: u32, c: [u8; 3]| {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                cells.put_pixel(bx + x, by + y, shade(c));
            }
        }
    };
    fill(3, 0, 4, 3, [232, 183, 150]); // head
    fill(2, 3, 6, 5, [58, 110, 165]); // body
    fill(3 - stride, 8, 2, 4, [70, 60, 50]); // legs
    fill(5 + stride, 8, 2, 4, [70, 60, 50]);
    fill(2, 12, 6, 1, [24, 20, 37]); // boots
    if right {
        fill(8, 2, 1, 5, [200, 200, 210]); // the sword
    }
    image::imageops::resize(&cells, 128, 128, image::imageops::FilterType::Nearest)
}

impl SpriteEngine for WalkerModel {
    fn model_identity(&mut self) -> pixelgen::Result<ModelIdentity> {
        Ok(ModelIdentity("walker-model".into()))
    }

    fn render(
        &mut self,
        _plan: &Plan,
        _progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> pixelgen::Result<Rendered> {
        panic!("a set is drawn through render_set")
    }

    fn render_set(
        &mut self,
        plan: &Plan,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> pixelgen::Result<RenderedSet> {
        let prompts = &plan.set_frames().expect("a set plan").prompts;
        let mut frames = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            let step = Progress {
                step: i + 1,
                total: prompts.len(),
                preview: None,
            };
            if progress(&step) == Control::Cancel {
                return Err(PixelGenError::Cancelled {
                    step: i,
                    total: prompts.len(),
                });
            }
            self.drawn.push(p.clone());
            frames.push(walker(p, i));
        }
        Ok(RenderedSet {
            frames,
            pixel_art: false,
        })
    }
}

fn walk_set() -> Recipe {
    Recipe {
        seed: Seed::Fixed(3),
        size: Size::new(16, 16),
        generation_size: Size::square(128),
        set: Some(SetRecipe::animation(Action::Walk).with_directions(4, true)),
        ..Recipe::new("knight")
    }
}

fn frames_of(g: &pixelgen::Generated) -> Vec<RgbaImage> {
    let layout = g.layout.as_ref().expect("a set is a sheet");
    layout
        .frames
        .iter()
        .map(|f| {
            let r = f.rect;
            image::imageops::crop_imm(&g.image, r.x, r.y, r.w, r.h).to_image()
        })
        .collect()
}

#[test]
fn a_walk_in_four_mirrored_directions_is_one_palette_one_anchor_and_clips() {
    let dir = Scratch::new("sets-walk");
    let mut engine = CachedEngine::new(WalkerModel::default())
        .with_disk_cache(DiskCache::new(dir.path().join("cache")));
    let set = engine
        .generate(&walk_set(), &mut |_| Control::Continue)
        .unwrap();
    // 8 walk frames x 4 views; west is mirrored from east, so 24 frames were drawn.
    assert_eq!(engine.engine().drawn.len(), 24);
    assert_eq!(set.image.dimensions(), (8 * 16, 4 * 16));
    let layout = set.layout.as_ref().unwrap();
    assert_eq!((layout.columns, layout.rows), (8, 4));
    let c = set
        .consistency
        .as_ref()
        .expect("a set reports its consistency");
    assert_eq!(c.frames.len(), 32);
    assert_eq!(c.max_anchor_drift, 0, "{c:?}");
    // One palette: the five colours of the walker and the sword, whatever each frame's tint.
    assert!(c.set_colors <= 6, "{c:?}");
    assert!(c.frames.iter().all(|f| f.colors <= c.set_colors));
    let frames = frames_of(&set);
    // The west row is the east row mirrored, pose for pose (each aligned on the anchor).
    let trimmed = |f: &RgbaImage| pixelgen_pixel::cleanup::trim(f).unwrap().0;
    for pose in 0..8 {
        let west = trimmed(&frames[8 + pose]);
        let east = trimmed(&frames[16 + pose]);
        assert_eq!(west, image::imageops::flip_horizontal(&east), "pose {pose}");
    }
    // The south walk frames strides alternate: the silhouette changes, the anchor does not.
    assert_ne!(frames[0], frames[1]);
    assert!(c.frames[1].silhouette_iou < 1.0 && c.frames[1].silhouette_iou > 0.6);
    // Clips: one per row, a looping walk of 100 ms frames.
    let clips = set.clips();
    let names: Vec<&str> = clips.names().collect();
    assert_eq!(
        names,
        ["walk_south", "walk_west", "walk_east", "walk_north"]
    );
    let east = clips.get("walk_east").unwrap();
    assert_eq!(east.frames, (16..24).collect::<Vec<_>>());
    assert!(east.looping() && east.durations_ms == vec![100; 8]);
    // The Aseprite JSON carries the tags.
    let json = layout.to_aseprite_json("walk.png", pixelgen_pixel::sheet::JsonForm::Hash);
    assert!(json.contains("\"walk_north\""), "{json}");

    // The same recipe again: from the disk cache, with the same consistency, no drawing.
    let mut again = CachedEngine::new(WalkerModel::default())
        .with_disk_cache(DiskCache::new(dir.path().join("cache")));
    let hit = again
        .generate(&set.recipe, &mut |_| Control::Continue)
        .unwrap();
    assert!(hit.from_cache);
    assert!(again.engine().drawn.is_empty());
    assert_eq!(hit.image, set.image);
    assert_eq!(hit.consistency, set.consistency);
    assert_eq!(hit.clips(), clips);
}

#[test]
fn independent_frames_drift_in_colour_where_the_set_does_not() {
    // The same frames as a plain sheet of independent sprites (each pixelized on its own)
    // drift in colour: each has its own palette. The set pass gives them one.
    let mut plain = Recipe {
        set: None,
        frames: pixelgen::Frames::Prompts(
            (1..=4)
                .map(|k| format!("knight, walking, frame {k} of 4"))
                .collect(),
        ),
        ..walk_set()
    };
    plain.pixel = None;
    let frames: Vec<RgbaImage> = plain
        .frame_prompts()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            pixelgen_pixel::pixelize(&walker(p, i), &plain.pixel_options())
                .unwrap()
                .image
        })
        .collect();
    let alone = pixelgen_pixel::set::measure(&frames, 0, pixelgen::SetAnchor::Baseline);
    assert!(alone.set_colors > 6, "{alone:?}");

    let set = Recipe {
        frames: plain.frames.clone(),
        set: Some(SetRecipe::default()),
        ..plain
    };
    let out = CachedEngine::new(WalkerModel::default())
        .generate(&set, &mut |_| Control::Continue)
        .unwrap();
    let c = out.consistency.unwrap();
    assert_eq!(c.max_anchor_drift, 0, "{c:?}");
    assert!(c.set_colors <= 5, "{c:?}");
}

fn refused(recipe: Recipe) -> String {
    let mut engine = CachedEngine::new(WalkerModel::default());
    let err = engine
        .generate(&recipe, &mut |_| Control::Continue)
        .expect_err("a bad set is refused");
    assert!(engine.engine().drawn.is_empty(), "refused before drawing");
    err.to_string()
}

fn write_png(path: &Path, w: u32, h: u32) {
    RgbaImage::from_pixel(w, h, Rgba([200, 30, 30, 255]))
        .save(path)
        .unwrap();
}

#[test]
fn bad_sets_are_refused_before_any_work_with_the_reason() {
    let dir = Scratch::new("sets-bad");
    let with_set = |set: SetRecipe| Recipe {
        set: Some(set),
        ..walk_set()
    };
    let frames = |n: u32| {
        let mut set = SetRecipe::animation(Action::Run);
        set.animation.as_mut().unwrap().frames = Some(n);
        with_set(set)
    };
    assert!(refused(frames(0)).contains("0 animation frames"));
    assert!(refused(frames(1000)).contains("1 to 16 frames"));
    // An unknown action in a recipe file names the known ones.
    let err = Recipe::from_ron(r#"(prompt: "x", set: (animation: (action: wlak)))"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("wlak") && err.contains("walk"), "{err}");
    // A reference that is missing, not an image, or of another shape than the sprite.
    let missing = dir.path().join("missing.png");
    let err = refused(with_set(
        SetRecipe::default().with_reference_image(&missing, None),
    ));
    assert!(
        err.contains("missing.png") && err.contains("cannot read"),
        "{err}"
    );
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "not a png").unwrap();
    let err = refused(with_set(
        SetRecipe::default().with_reference_image(&text, None),
    ));
    assert!(err.contains("notes.png"), "{err}");
    let tall = dir.path().join("tall.png");
    write_png(&tall, 16, 32);
    let err = refused(with_set(
        SetRecipe::animation(Action::Idle).with_reference_image(&tall, Some(0.6)),
    ));
    assert!(err.contains("16x32") && err.contains("shape"), "{err}");
    // Frames named twice.
    let twice = Recipe {
        frames: pixelgen::Frames::Prompts(vec!["a".into(), "b".into()]),
        ..walk_set()
    };
    assert!(refused(twice).contains("leave `frames` out"));
}

#[test]
fn a_reference_image_keys_the_set_by_content_and_old_recipes_keep_their_keys() {
    let dir = Scratch::new("sets-key");
    let hero = dir.path().join("hero.png");
    write_png(&hero, 32, 32);
    let recipe = Recipe {
        set: Some(SetRecipe::animation(Action::Idle).with_reference_image(&hero, Some(0.5))),
        ..walk_set()
    };
    let model = ModelIdentity("m".into());
    let before = Plan::new(recipe.clone()).unwrap().key(&model).unwrap();
    // Same path, other pixels: another key.
    RgbaImage::from_pixel(32, 32, Rgba([30, 30, 200, 255]))
        .save(&hero)
        .unwrap();
    // (the digest memo is keyed by size and modification time; make sure the time moves)
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&hero)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let after = Plan::new(recipe.clone()).unwrap().key(&model).unwrap();
    assert_ne!(before, after);
    // A recipe without a set writes no `set` field, so its key is what it always was.
    let plain = Recipe::new("potion");
    assert!(!plain.to_ron().unwrap().contains("set"));
    assert!(!plain.to_json().unwrap().contains("\"set\""));
    // And a set recipe round-trips through RON.
    let text = recipe.to_ron().unwrap();
    assert_eq!(Recipe::from_ron(&text).unwrap(), recipe);
}
