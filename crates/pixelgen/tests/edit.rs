//! Edits (inpainting) through the facade: the masked part is what the engine drew, every
//! other pixel is the source's, exactly; source and mask are keyed by content; bad edits are
//! refused before the engine runs.

mod common;

use std::path::Path;

use common::Scratch;
use image::{Rgba, RgbaImage};
use pixelgen::edit::{Mask, MaskRect};
use pixelgen::{
    CachedEngine, Control, EditRecipe, ModelIdentity, Plan, Progress, Recipe, Rendered, Seed, Size,
    SpriteEngine,
};

const RED: [u8; 4] = [220, 30, 30, 255];

/// Paints the whole sprite red and counts its calls.
#[derive(Default)]
struct RedEngine {
    calls: usize,
}

impl SpriteEngine for RedEngine {
    fn model_identity(&mut self) -> pixelgen::Result<ModelIdentity> {
        Ok(ModelIdentity("red".into()))
    }

    fn render(
        &mut self,
        plan: &Plan,
        _progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> pixelgen::Result<Rendered> {
        self.calls += 1;
        let s = plan.recipe().size;
        Ok(Rendered {
            image: RgbaImage::from_pixel(s.width, s.height, Rgba(RED)),
            fell_back: false,
        })
    }
}

/// A 16x16 sprite: a checkerboard of two blues with transparent corners.
fn source() -> RgbaImage {
    RgbaImage::from_fn(16, 16, |x, y| {
        if !(2..=13).contains(&x) && !(2..=13).contains(&y) {
            Rgba([0, 0, 0, 0])
        } else if (x + y) % 2 == 0 {
            Rgba([30, 60, 200, 255])
        } else {
            Rgba([90, 120, 230, 255])
        }
    })
}

/// White over the right half (repaint), black elsewhere (keep).
fn right_half() -> RgbaImage {
    RgbaImage::from_fn(16, 16, |x, _| {
        if x >= 8 {
            Rgba([255, 255, 255, 255])
        } else {
            Rgba([0, 0, 0, 255])
        }
    })
}

fn edit_recipe(source: &Path, mask: &Path) -> Recipe {
    Recipe {
        seed: Seed::Fixed(1),
        size: Size::square(16),
        generation_size: Size::square(64),
        edit: Some(EditRecipe::inpaint(source, mask)),
        ..Recipe::new("a red cape")
    }
}

#[test]
fn only_the_masked_pixels_change_and_the_rest_is_the_source_exactly() {
    let dir = Scratch::new("edit-keep");
    let src = dir.file("hero.png", &source());
    let mask = dir.file("mask.png", &right_half());
    let mut engine = CachedEngine::new(RedEngine::default());
    let out = engine
        .generate(&edit_recipe(&src, &mask), &mut |_| Control::Continue)
        .unwrap();
    let original = source();
    for (x, y, p) in out.image.enumerate_pixels() {
        if x >= 8 {
            assert_eq!(p.0, RED, "repainted at ({x}, {y})");
        } else {
            assert_eq!(p, original.get_pixel(x, y), "kept at ({x}, {y})");
        }
    }
    // The recipe round-trips, and a new mask with the same path is a new key.
    let recipe = edit_recipe(&src, &mask);
    assert_eq!(Recipe::from_ron(&recipe.to_ron().unwrap()).unwrap(), recipe);
    let model = ModelIdentity("m".into());
    let before = Plan::new(recipe.clone()).unwrap().key(&model).unwrap();
    let top = RgbaImage::from_fn(16, 16, |_, y| {
        Rgba(if y < 4 { [255; 4] } else { [0, 0, 0, 255] })
    });
    top.save(&mask).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&mask)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_ne!(Plan::new(recipe).unwrap().key(&model).unwrap(), before);
    // Recipes without an edit write no `edit` field (their keys are unchanged).
    assert!(!Recipe::new("potion").to_ron().unwrap().contains("edit"));
}

#[test]
fn bad_edits_are_refused_before_the_engine_runs() {
    let dir = Scratch::new("edit-bad");
    let src = dir.file("hero.png", &source());
    let mask = dir.file("mask.png", &right_half());
    let refused = |recipe: Recipe| -> String {
        let mut engine = CachedEngine::new(RedEngine::default());
        let err = engine
            .generate(&recipe, &mut |_| Control::Continue)
            .expect_err("refused");
        assert_eq!(engine.engine().calls, 0, "refused before drawing");
        err.to_string()
    };
    let missing = dir.path().join("missing.png");
    assert!(refused(edit_recipe(&missing, &mask)).contains("cannot read"));
    let small = dir.file("small.png", &RgbaImage::from_pixel(8, 8, Rgba([255; 4])));
    let err = refused(edit_recipe(&src, &small));
    assert!(err.contains("8x8") && err.contains("16x16"), "{err}");
    let black = dir.file(
        "black.png",
        &RgbaImage::from_pixel(16, 16, Rgba([0, 0, 0, 255])),
    );
    assert!(refused(edit_recipe(&src, &black)).contains("nothing to repaint"));
    let clear = dir.file("clear.png", &RgbaImage::new(16, 16));
    assert!(refused(edit_recipe(&src, &clear)).contains("nothing to repaint"));
    let white = dir.file("white.png", &RgbaImage::from_pixel(16, 16, Rgba([255; 4])));
    let err = refused(edit_recipe(&src, &white));
    assert!(err.contains("every pixel"), "{err}");
    // A canvas larger than the source is an outpaint: a mask must then be the canvas size.
    let wrong_size = Recipe {
        size: Size::square(32),
        generation_size: Size::square(64),
        ..edit_recipe(&src, &mask)
    };
    let err = refused(wrong_size);
    assert!(
        err.contains("16x16") && err.contains("canvas 32x32"),
        "{err}"
    );
    let big = dir.file("big.png", &RgbaImage::from_pixel(20, 20, Rgba([9; 4])));
    let err = refused(edit_recipe(&big, &mask));
    assert!(err.contains("larger than the recipe's size"), "{err}");
    let no_mask = Recipe {
        edit: Some(EditRecipe {
            mask: None,
            ..EditRecipe::inpaint(&src, &mask)
        }),
        ..edit_recipe(&src, &mask)
    };
    assert!(refused(no_mask).contains("no mask"));
    let off_canvas = Recipe {
        size: Size::new(24, 16),
        edit: Some(EditRecipe {
            mask: None,
            offset: Some((9, 0)),
            ..EditRecipe::inpaint(&src, &mask)
        }),
        ..edit_recipe(&src, &mask)
    };
    let err = refused(off_canvas);
    assert!(err.contains("at most (8, 0)"), "{err}");
    let ragged = Recipe {
        size: Size::square(2),
        generation_size: Size::square(64),
        edit: Some(EditRecipe {
            mask: Some(Mask::Rows(vec!["#.".into(), "#".into()])),
            ..EditRecipe::inpaint(dir.file("tiny.png", &RgbaImage::new(2, 2)), &mask)
        }),
        ..edit_recipe(&src, &mask)
    };
    assert!(refused(ragged).contains("row 1 has 1 characters"));
    let mut strong = edit_recipe(&src, &mask);
    strong.edit.as_mut().unwrap().inpaint.strength = 0.0;
    assert!(refused(strong).contains("strength"));
    let sheet = Recipe {
        frames: pixelgen::Frames::Prompts(vec!["a".into(), "b".into()]),
        ..edit_recipe(&src, &mask)
    };
    assert!(refused(sheet).contains("one sprite"));
}

#[test]
fn inline_masks_and_outpainting_keep_the_source_exactly() {
    let dir = Scratch::new("edit-inline");
    let src = dir.file("hero.png", &source());
    let mut engine = CachedEngine::new(RedEngine::default());
    // The right half as rows of text and as a rectangle: the same pixels as the PNG mask.
    let rows: Vec<String> = (0..16)
        .map(|_| format!("{}{}", ".".repeat(8), "#".repeat(8)))
        .collect();
    let file = dir.file("mask.png", &right_half());
    let by_file = engine
        .generate(&edit_recipe(&src, &file), &mut |_| Control::Continue)
        .unwrap();
    for mask in [
        Mask::Rows(rows),
        Mask::Rects(vec![MaskRect {
            x: 8,
            y: 0,
            width: 8,
            height: 16,
        }]),
    ] {
        let mut recipe = edit_recipe(&src, &file);
        recipe.edit.as_mut().unwrap().mask = Some(mask);
        let text = recipe.to_ron().unwrap();
        assert_eq!(Recipe::from_ron(&text).unwrap(), recipe, "{text}");
        let out = engine
            .generate(&recipe, &mut |_| Control::Continue)
            .unwrap();
        assert_eq!(out.image, by_file.image);
    }
    // Outpainting: the 16x16 sprite centred on a 32x24 canvas; all around it is drawn.
    let grow = Recipe {
        size: Size::new(32, 24),
        edit: Some(EditRecipe {
            mask: None,
            ..EditRecipe::inpaint(&src, &file)
        }),
        ..edit_recipe(&src, &file)
    };
    let out = engine.generate(&grow, &mut |_| Control::Continue).unwrap();
    assert_eq!(out.image.dimensions(), (32, 24));
    let original = source();
    for (x, y, p) in out.image.enumerate_pixels() {
        let inside = (8..24).contains(&x) && (4..20).contains(&y);
        if inside {
            assert_eq!(p, original.get_pixel(x - 8, y - 4), "kept at ({x}, {y})");
        } else {
            assert_eq!(p.0, RED, "drawn at ({x}, {y})");
        }
    }
}
