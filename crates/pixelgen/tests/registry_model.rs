//! A generator built from a registry name, on a fake Hugging Face cache that holds the tiny
//! random SDXL under `stabilityai/sdxl-turbo` (the `sdxl-turbo` entry).

use std::path::{Path, PathBuf};

use pixelgen::{
    CachedEngine, Control, Generator, ModelConfig, ModelSource, PixelGenError, Recipe,
    SamplingPreset, Seed, Size,
};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pixelgen-diffusion/tests/fixtures/tiny-sdxl")
}

/// Copies the tiny model into `cache` as `stabilityai/sdxl-turbo` at `main`, its weight files
/// under the `fp16` variant names the registry entry asks for.
fn fake_cache(cache: &Path) {
    let snap = cache
        .join("models--stabilityai--sdxl-turbo/snapshots/0123456789abcdef0123456789abcdef01234567");
    std::fs::create_dir_all(cache.join("models--stabilityai--sdxl-turbo/refs")).unwrap();
    std::fs::write(
        cache.join("models--stabilityai--sdxl-turbo/refs/main"),
        "0123456789abcdef0123456789abcdef01234567",
    )
    .unwrap();
    for file in pixelgen_diffusion::hub::SdxlFiles::new(Some("fp16")).list() {
        let from = tiny().join(file.replace(".fp16.", "."));
        if !from.is_file() {
            // The list names both tokenizer forms; the tiny model has vocab.json + merges.txt.
            continue;
        }
        let to = snap.join(&file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
}

fn recipe() -> Recipe {
    Recipe {
        seed: Seed::Fixed(9),
        size: Size::new(8, 8),
        generation_size: Size::square(32),
        model: Some("sdxl-turbo".into()),
        ..Recipe::new("a pixel art potion")
    }
    .with_preset(&SamplingPreset::named("turbo").unwrap())
}

#[test]
fn a_registry_name_runs_from_the_hub_cache_and_matches_the_folder() {
    let cache = std::env::temp_dir().join(format!("pixelgen-regmodel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let config = ModelConfig {
        hub_cache: Some(cache.clone()),
        ..ModelConfig::new(ModelSource::registry("sdxl-turbo"))
    };
    // Not downloaded: a clear error with the download command, no panic.
    let err = CachedEngine::new(Generator::new(config.clone()))
        .generate(&recipe(), &mut |_| Control::Continue)
        .unwrap_err();
    assert!(matches!(err, PixelGenError::ModelLoad { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("huggingface-cli download stabilityai/sdxl-turbo"),
        "{err}"
    );

    fake_cache(&cache);
    let mut named = CachedEngine::new(Generator::new(config.clone())).with_memory_bytes(0);
    let mut steps = 0;
    let a = named
        .generate(&recipe(), &mut |_| {
            steps += 1;
            Control::Continue
        })
        .unwrap();
    assert_eq!(steps, 1, "the turbo preset samples one step");
    // The same weights as a plain folder give the same sprite (the recipe's `model` aside).
    let mut folder =
        CachedEngine::new(Generator::new(ModelConfig::new(ModelSource::local(tiny()))));
    let b = folder
        .generate(
            &Recipe {
                model: None,
                ..recipe()
            },
            &mut |_| Control::Continue,
        )
        .unwrap();
    assert_eq!(a.image, b.image);
    // A recipe that leaves sampling unset gets the entry's preset (turbo: 1 step, guidance 0,
    // trailing): the same sprite.
    let unset = Recipe {
        seed: Seed::Fixed(9),
        size: Size::new(8, 8),
        generation_size: Size::square(32),
        model: Some("sdxl-turbo".into()),
        ..Recipe::new("a pixel art potion")
    };
    let mut steps = 0;
    let c = named
        .generate(&unset, &mut |_| {
            steps += 1;
            Control::Continue
        })
        .unwrap();
    assert_eq!(steps, 1, "the entry's turbo preset filled the steps");
    assert_eq!(c.image, a.image);
    assert_eq!(c.recipe.steps, None, "the recipe is kept as written");
    // The identity names the registry model, so cache keys differ from the folder's.
    assert!(
        named
            .model_identity()
            .unwrap()
            .0
            .starts_with("registry:sdxl-turbo;")
    );
    // A recipe naming another registry model is refused.
    let other = Recipe {
        model: Some("pixel-art".into()),
        ..recipe()
    };
    let err = named
        .generate(&other, &mut |_| Control::Continue)
        .unwrap_err();
    assert!(err.to_string().contains("pixel-art"), "{err}");
    let _ = std::fs::remove_dir_all(&cache);
}

// ------------------------------------------------------------------------------------------------
// Single-file checkpoints through a user registry file
// ------------------------------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pixelgen-diffusion/tests/fixtures")
}

/// Writes the tiny checkpoint without its VAE, and its VAE alone (original names), into `dir`.
fn split_checkpoint(dir: &Path) -> (PathBuf, PathBuf) {
    use candle_core::{Device, Tensor};
    let all = candle_core::safetensors::load(
        fixtures().join("checkpoint/tiny-sdxl.fp16.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    type Tensors = std::collections::HashMap<String, Tensor>;
    let (vae, unet): (Tensors, Tensors) = all
        .into_iter()
        .partition(|(k, _)| k.starts_with("first_stage_model."));
    let vae: Tensors = vae
        .into_iter()
        .map(|(k, v)| (k["first_stage_model.".len()..].to_string(), v))
        .collect();
    let (u, v) = (
        dir.join("unet_only.safetensors"),
        dir.join("vae.safetensors"),
    );
    candle_core::safetensors::save(&unet, &u).unwrap();
    candle_core::safetensors::save(&vae, &v).unwrap();
    (u, v)
}

#[test]
fn single_file_checkpoints_named_by_a_user_registry_run_with_the_entry_preset() {
    let dir = std::env::temp_dir().join(format!("pixelgen-regckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (unet_only, vae) = split_checkpoint(&dir);
    let ckpt = fixtures().join("checkpoint/tiny-sdxl.fp16.safetensors");
    let config = fixtures().join("tiny-sdxl");
    let entry = |base: &Path, vae: Option<&Path>| {
        let vae = vae
            .map(|v| format!(r#", "vae": {{"local": {{"path": {:?}}}}}"#, v))
            .unwrap_or_default();
        format!(
            r#"{{"base": {{"local": {{"path": {base:?}}}}}, "config": {{"local": {{"path": {config:?}}}}}{vae}, "sampling": "fast"}}"#
        )
    };
    let registry = dir.join("models.json");
    std::fs::write(
        &registry,
        format!(
            r#"{{"tiny-ckpt": {}, "tiny-unet-vae": {}, "tiny-unet": {}}}"#,
            entry(&ckpt, None),
            entry(&unet_only, Some(&vae)),
            entry(&unet_only, None)
        ),
    )
    .unwrap();
    let engine = |name: &str| {
        CachedEngine::new(Generator::new(ModelConfig {
            registry: Some(registry.clone()),
            hub_cache: Some(dir.join("no-hub-cache")),
            ..ModelConfig::new(ModelSource::registry(name))
        }))
        .with_memory_bytes(0)
    };
    let recipe = |name: &str| Recipe {
        seed: Seed::Fixed(5),
        size: Size::new(8, 8),
        generation_size: Size::square(32),
        model: Some(name.into()),
        ..Recipe::new("a pixel art knight with a sword, 16-bit sprite")
    };
    let run = |g: &mut CachedEngine<Generator>, r: &Recipe| {
        let mut steps = 0;
        let sprite = g
            .generate(r, &mut |_| {
                steps += 1;
                Control::Continue
            })
            .unwrap();
        (sprite, steps)
    };

    let mut full = engine("tiny-ckpt");
    let (a, steps) = run(&mut full, &recipe("tiny-ckpt"));
    assert_eq!(steps, 8, "the entry's `fast` preset: 8 LCM steps");
    assert_eq!(a.image.dimensions(), (8, 8));
    // Explicit steps win over the preset.
    let (_, steps) = run(
        &mut full,
        &Recipe {
            steps: Some(3),
            ..recipe("tiny-ckpt")
        },
    );
    assert_eq!(steps, 3);

    // UNet-only checkpoint + its VAE as a separate file: the full checkpoint's sprite.
    let mut split = engine("tiny-unet-vae");
    let (b, _) = run(&mut split, &recipe("tiny-unet-vae"));
    assert_eq!(b.image, a.image);
    assert_ne!(
        split.model_identity().unwrap(),
        full.model_identity().unwrap()
    );
    // Without a VAE: the loader's clear error, no panic.
    let err = engine("tiny-unet")
        .generate(&recipe("tiny-unet"), &mut |_| Control::Continue)
        .unwrap_err();
    assert!(matches!(err, PixelGenError::ModelLoad { .. }), "{err}");
    let chain = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(chain.contains("no VAE"), "{chain}");
    // A name in neither registry lists the known ones.
    let err = engine("tiny-nope")
        .generate(&recipe("tiny-nope"), &mut |_| Control::Continue)
        .unwrap_err();
    let chain = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(
        chain.contains("tiny-ckpt") && chain.contains("sdxl-base"),
        "{chain}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
