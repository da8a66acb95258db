//! The real generator on the tiny random SDXL fixture: loading, sampling, pixelize, cancel.

use std::path::PathBuf;

use pixelgen::{
    CachedEngine, Control, Generator, ModelConfig, ModelSource, PixelGenError, Recipe, Seed, Size,
};

fn tiny_model() -> ModelConfig {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pixelgen-diffusion/tests/fixtures/tiny-sdxl");
    ModelConfig::new(ModelSource::local(dir))
}

/// The generator with no memory cache, so every request runs the model.
fn engine() -> CachedEngine<Generator> {
    CachedEngine::new(Generator::new(tiny_model())).with_memory_bytes(0)
}

fn recipe(seed: u64) -> Recipe {
    Recipe {
        seed: Seed::Fixed(seed),
        steps: Some(3),
        guidance: Some(5.0),
        size: Size::new(12, 10),
        generation_size: Size::square(32),
        ..Recipe::new("a pixel art knight with a sword, 16-bit sprite")
    }
}

#[test]
fn generates_a_sprite_of_the_requested_size_deterministically() {
    let mut engine = engine();
    assert!(
        !engine.engine().is_loaded(),
        "nothing is loaded before the first request"
    );
    let mut steps = Vec::new();
    let mut previews = Vec::new();
    let a = engine
        .generate(&recipe(3), &mut |p| {
            steps.push((p.step, p.total));
            previews.push(p.preview.clone());
            Control::Continue
        })
        .unwrap();
    assert!(engine.engine().is_loaded());
    assert_eq!(steps, vec![(1, 3), (2, 3), (3, 3)]);
    // A latent preview per step at latent resolution, changing as it denoises. The tiny
    // VAE has 3 blocks, so it downsamples by 4 (SDXL's by 8): 32 / 4 = 8.
    let previews: Vec<_> = previews.into_iter().map(|p| p.expect("preview")).collect();
    assert!(previews.iter().all(|p| p.dimensions() == (8, 8)));
    assert_ne!(previews[0], previews[2], "the latents change between steps");
    assert_eq!(a.image.dimensions(), (12, 10));
    assert_eq!(a.recipe.seed, Seed::Fixed(3));
    let opaque = a.image.pixels().filter(|p| p.0[3] == 255).count();
    assert!(opaque > 0, "some content survives background removal");
    assert!(
        a.image.pixels().all(|p| p.0[3] == 0 || p.0[3] == 255),
        "binary alpha"
    );

    let b = engine
        .generate(&recipe(3), &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(a.image, b.image, "same recipe, same pixels");
    assert_eq!(a.key, b.key);
    let c = engine
        .generate(&recipe(4), &mut |_| Control::Continue)
        .unwrap();
    assert_ne!(a.key, c.key);
}

#[test]
fn random_seed_is_drawn_and_recorded_and_regenerates() {
    let mut engine = engine();
    let mut r = recipe(0);
    r.seed = Seed::Random;
    let first = engine.generate(&r, &mut |_| Control::Continue).unwrap();
    let drawn = first.recipe.seed.value().expect("seed recorded");
    let again = engine
        .generate(&first.recipe, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(again.recipe.seed, Seed::Fixed(drawn));
    assert_eq!(
        again.image, first.image,
        "the recorded recipe regenerates the sprite"
    );
}

#[test]
fn cancel_stops_after_the_step_that_asked() {
    let mut engine = engine();
    let err = engine
        .generate(&recipe(1), &mut |p| {
            if p.step == 2 {
                Control::Cancel
            } else {
                Control::Continue
            }
        })
        .unwrap_err();
    assert!(
        matches!(err, PixelGenError::Cancelled { step: 2, total: 3 }),
        "{err}"
    );
}

#[test]
fn bad_generation_size_is_an_error_not_a_panic() {
    let mut engine = engine();
    let mut r = recipe(1);
    r.generation_size = Size::new(30, 32);
    r.size = Size::square(8);
    let err = engine.generate(&r, &mut |_| Control::Continue).unwrap_err();
    assert!(matches!(err, PixelGenError::Diffusion(_)), "{err}");
    // The engine keeps working.
    assert!(
        engine
            .generate(&recipe(1), &mut |_| Control::Continue)
            .is_ok()
    );
}

#[test]
fn sheet_of_template_frames_packs_every_frame() {
    let mut engine = engine();
    let mut r = recipe(2);
    r.size = Size::square(8);
    r.steps = Some(2);
    r.frames = pixelgen::Frames::Template {
        template: "{prompt}, frame {frame}".into(),
        count: 3,
    };
    r.sheet = Some(pixelgen::SheetOptions {
        columns: Some(2),
        padding: 1,
        ..Default::default()
    });
    let mut seen = Vec::new();
    let out = engine
        .generate(&r, &mut |p| {
            seen.push((p.step, p.total));
            Control::Continue
        })
        .unwrap();
    assert_eq!(
        seen,
        (1..=6).map(|s| (s, 6)).collect::<Vec<_>>(),
        "steps across frames"
    );
    let l = out
        .layout
        .as_ref()
        .expect("a multi-frame recipe makes a sheet");
    assert_eq!(
        (l.columns, l.rows, l.tile_width, l.tile_height),
        (2, 2, 8, 8)
    );
    assert_eq!(out.image.dimensions(), (17, 17));
    assert_eq!(l.frames.len(), 3);
    // Frame 1 in the sheet is exactly the single sprite of frame 1's recipe.
    let single = engine
        .generate(&r.frame_recipe(1).unwrap(), &mut |_| Control::Continue)
        .unwrap();
    let cell = &l.frames[1].rect;
    let crop = image::imageops::crop_imm(&out.image, cell.x, cell.y, cell.w, cell.h).to_image();
    assert_eq!(crop, single.image);
    // A different frame prompt gives a different frame.
    let first = &l.frames[0].rect;
    let crop0 =
        image::imageops::crop_imm(&out.image, first.x, first.y, first.w, first.h).to_image();
    assert_ne!(crop0, crop);
}

#[test]
fn recipe_loras_change_the_sprite_and_strength_zero_is_the_base() {
    let lora = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pixelgen-diffusion/tests/fixtures/lora/peft.safetensors");
    let mut engine = engine();
    let run = |engine: &mut CachedEngine<Generator>, loras: Vec<pixelgen::LoraRef>| {
        let r = Recipe { loras, ..recipe(5) };
        engine.generate(&r, &mut |_| Control::Continue).unwrap()
    };
    let base = run(&mut engine, vec![]);
    let with = run(&mut engine, vec![pixelgen::LoraRef::new(&lora, 1.0)]);
    assert_ne!(
        with.image, base.image,
        "a LoRA at strength 1 changes the image"
    );
    assert_ne!(with.key, base.key);
    let zero = run(&mut engine, vec![pixelgen::LoraRef::new(&lora, 0.0)]);
    assert_eq!(zero.image, base.image, "strength 0 is the base model");
    let text_only = run(
        &mut engine,
        vec![pixelgen::LoraRef {
            path: lora.clone(),
            unet_strength: 0.0,
            text_strength: 1.0,
        }],
    );
    assert_ne!(text_only.image, base.image, "the text strength applies");
    // Back to no LoRA: rebuilt from the same mapping, identical to the first run.
    assert_eq!(run(&mut engine, vec![]).image, base.image);

    let missing = Recipe {
        loras: vec![pixelgen::LoraRef::new("/nonexistent/x.safetensors", 1.0)],
        ..recipe(5)
    };
    let err = engine
        .generate(&missing, &mut |_| Control::Continue)
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/x.safetensors"),
        "{err}"
    );
    let named = Recipe {
        model: Some("pixel-art-fast".into()),
        ..recipe(5)
    };
    let err = engine
        .generate(&named, &mut |_| Control::Continue)
        .unwrap_err();
    assert!(err.to_string().contains("pixel-art-fast"), "{err}");
}

#[test]
fn a_tiling_recipe_reaches_the_model_and_its_key() {
    let mut engine = engine();
    let plain = engine
        .generate(&recipe(5), &mut |_| Control::Continue)
        .unwrap();
    let tiled_recipe = Recipe {
        tiling: true,
        ..recipe(5)
    };
    let tiled = engine
        .generate(&tiled_recipe, &mut |_| Control::Continue)
        .unwrap();
    assert!(tiled.recipe.tiling);
    assert_ne!(tiled.key, plain.key, "tiling is part of the cache key");
    assert_eq!(tiled.image.dimensions(), plain.image.dimensions());
    assert_ne!(
        tiled.image, plain.image,
        "wrap padding changes the pixels for the same seed"
    );
}

/// The raw frames the generator draws for `recipe`'s set.
fn drawn(engine: &mut Generator, recipe: Recipe) -> Vec<image::RgbaImage> {
    use pixelgen::SpriteEngine;
    let plan = pixelgen::Plan::new(recipe).unwrap();
    let set = engine
        .render_set(&plan, &mut |_| Control::Continue)
        .unwrap();
    assert!(!set.pixel_art, "the model's own images");
    set.frames
}

#[test]
fn a_set_on_the_tiny_model_shares_attention_in_batches_and_comes_back_consistent() {
    use pixelgen::{Action, Frames, SetRecipe};
    let mut model = Generator::new(tiny_model()).with_previews(false);
    // Ten frames: two batches (8, then 2 more after the first frame drawn again as their
    // reference). A frame of the second batch is what it is in a one-batch set with the same
    // reference frame: the batching does not show.
    let prompts: Vec<String> = (0..10).map(|i| format!("knight, pose {i}")).collect();
    let set = |prompts: Vec<String>| Recipe {
        frames: Frames::Prompts(prompts),
        set: Some(SetRecipe::default()),
        steps: Some(10),
        ..recipe(5)
    };
    let ten = drawn(&mut model, set(prompts.clone()));
    assert_eq!(ten.len(), 10);
    assert!(ten.iter().all(|f| f.dimensions() == (32, 32)));
    let two = drawn(
        &mut model,
        set(vec![prompts[0].clone(), prompts[9].clone()]),
    );
    let diff = |a: &image::RgbaImage, b: &image::RgbaImage| {
        a.pixels()
            .zip(b.pixels())
            .flat_map(|(p, q)| p.0.into_iter().zip(q.0).map(|(x, y)| x.abs_diff(y)))
            .max()
            .unwrap_or(0)
    };
    assert!(diff(&ten[0], &two[0]) <= 1, "{}", diff(&ten[0], &two[0]));
    let ninth = diff(&ten[9], &two[1]);
    assert!(ninth <= 1, "frame 9 of the second batch differs by {ninth}");
    // Sharing changes the frames: strength 0 draws them as independent images would.
    let off = SetRecipe {
        strength: 0.0,
        ..SetRecipe::default()
    };
    let independent = drawn(
        &mut model,
        Recipe {
            set: Some(off),
            ..set(vec![prompts[0].clone(), prompts[9].clone()])
        },
    );
    // (On this random-weight model sharing moves a tenth of the pixels by a level.)
    let changed = independent[1]
        .pixels()
        .zip(two[1].pixels())
        .filter(|(p, q)| p != q)
        .count();
    assert!(changed > 50, "attention was shared: {changed} px changed");
    assert_eq!(
        independent[0], two[0],
        "the reference attends only to itself"
    );

    // Through the cached engine: an idle animation packed with its clip and measured, the
    // same pixels again from the same recipe.
    let mut engine = engine();
    let idle = Recipe {
        size: Size::square(8),
        set: Some(SetRecipe::animation(Action::Idle)),
        ..recipe(6)
    };
    let a = engine.generate(&idle, &mut |_| Control::Continue).unwrap();
    assert_eq!(a.image.dimensions(), (32, 8));
    let c = a
        .consistency
        .as_ref()
        .expect("a set reports its consistency");
    assert_eq!(c.frames.len(), 4);
    assert_eq!(
        a.clips().get("idle").unwrap().frames,
        vec![0, 1, 2, 3, 2, 1]
    );
    let b = engine.generate(&idle, &mut |_| Control::Continue).unwrap();
    assert_eq!(a.image, b.image);
}

#[test]
fn an_edit_on_the_tiny_model_repaints_only_the_mask() {
    use image::{Rgba, RgbaImage};
    let dir = std::env::temp_dir().join(format!("pixelgen-tiny-edit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = RgbaImage::from_fn(8, 8, |x, y| Rgba([(x * 30) as u8, (y * 30) as u8, 90, 255]));
    let mask = RgbaImage::from_fn(8, 8, |x, y| {
        Rgba(if (2..6).contains(&x) && (2..6).contains(&y) {
            [255; 4]
        } else {
            [0, 0, 0, 255]
        })
    });
    let (src, msk) = (dir.join("src.png"), dir.join("mask.png"));
    source.save(&src).unwrap();
    mask.save(&msk).unwrap();
    let recipe = Recipe {
        size: Size::square(8),
        edit: Some(pixelgen::EditRecipe::inpaint(&src, &msk)),
        ..recipe(9)
    };
    let mut engine = engine();
    let out = engine
        .generate(&recipe, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(out.image.dimensions(), (8, 8));
    let mut changed = 0;
    for (x, y, p) in out.image.enumerate_pixels() {
        let inside = (2..6).contains(&x) && (2..6).contains(&y);
        if inside {
            changed += usize::from(p != source.get_pixel(x, y));
        } else {
            assert_eq!(p, source.get_pixel(x, y), "kept at ({x}, {y})");
        }
    }
    assert!(changed > 0, "the model repainted the masked square");
    let again = engine
        .generate(&recipe, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(again.image, out.image);
    // Outpainting: the sprite placed at the left of a canvas twice as wide, the right half
    // drawn by the model around it.
    let grow = Recipe {
        size: Size::new(16, 8),
        edit: Some(pixelgen::EditRecipe {
            offset: Some((0, 0)),
            mask: None,
            ..pixelgen::EditRecipe::inpaint(&src, &msk)
        }),
        ..recipe.clone()
    };
    let wide = engine.generate(&grow, &mut |_| Control::Continue).unwrap();
    assert_eq!(wide.image.dimensions(), (16, 8));
    for (x, y, p) in source.enumerate_pixels() {
        assert_eq!(wide.image.get_pixel(x, y), p, "kept at ({x}, {y})");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tileset_on_the_tiny_model_meets_at_every_edge() {
    use pixelgen::tileset::{TilesetKind, TilesetRecipe};
    let recipe = Recipe {
        size: Size::square(8),
        generation_size: Size::square(32),
        tileset: Some(TilesetRecipe::new(TilesetKind::Wang, "grass", "water")),
        ..recipe(5)
    };
    let mut engine = CachedEngine::new(Generator::new(tiny_model()));
    let out = engine
        .generate(&recipe, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(out.image.dimensions(), (32, 32));
    let layout = out.layout.clone().unwrap();
    let tile = |i: usize| {
        let r = layout.frames[i].rect;
        image::imageops::crop_imm(&out.image, r.x, r.y, r.w, r.h).to_image()
    };
    let (a, b) = (tile(0), tile(15));
    assert!(a.pixels().all(|p| p.0[3] == 255), "tiles are opaque");
    // Every tile's border pixels are the bases' pixels at the same place (A or B), so tiles
    // that share corners continue across their edges; one palette for the set.
    let palette: std::collections::HashSet<[u8; 4]> =
        a.pixels().chain(b.pixels()).map(|p| p.0).collect();
    for i in 0..16 {
        let t = tile(i);
        for (x, y, p) in t.enumerate_pixels() {
            assert!(
                palette.contains(&p.0),
                "tile {i} ({x}, {y}) is off the palette"
            );
            if x == 0 || y == 0 || x == 7 || y == 7 {
                assert!(
                    p == a.get_pixel(x, y) || p == b.get_pixel(x, y),
                    "tile {i} border ({x}, {y})"
                );
            }
        }
    }
    let report = out.tileset.expect("a seam report");
    assert_eq!(report.seams.edges.len(), 128);
    assert!(report.seams.worst.is_finite());
}
