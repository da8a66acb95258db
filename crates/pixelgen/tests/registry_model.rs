//! A generator built from a registry name, on a fake Hugging Face cache that holds the tiny
//! random SDXL under `stabilityai/sdxl-turbo` (the `sdxl-turbo` entry).

use std::path::{Path, PathBuf};

use pixelgen::{
    Control, Generator, ModelConfig, ModelSource, PixelGenError, Recipe, SamplingPreset, Seed,
    Size, SpriteEngine,
};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pixelgen-diffusion/tests/fixtures/tiny-sdxl")
}

/// Copies the tiny model into `cache` as `stabilityai/sdxl-turbo` at `main`, its weight files
/// under the `fp16` variant names the registry entry asks for.
fn fake_cache(cache: &Path) {
    let snap = cache.join("models--stabilityai--sdxl-turbo/snapshots/h1");
    std::fs::create_dir_all(cache.join("models--stabilityai--sdxl-turbo/refs")).unwrap();
    std::fs::write(
        cache.join("models--stabilityai--sdxl-turbo/refs/main"),
        "h1",
    )
    .unwrap();
    for file in pixelgen_diffusion::hub::SdxlFiles::new(Some("fp16")).list() {
        let from = tiny().join(file.replace(".fp16.", "."));
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
    let err = Generator::new(config.clone())
        .generate(&recipe(), &mut |_| Control::Continue)
        .unwrap_err();
    assert!(matches!(err, PixelGenError::ModelLoad { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("huggingface-cli download stabilityai/sdxl-turbo"),
        "{err}"
    );

    fake_cache(&cache);
    let mut named = Generator::new(config.clone());
    let mut steps = 0;
    let a = named
        .generate(&recipe(), &mut |_| {
            steps += 1;
            Control::Continue
        })
        .unwrap();
    assert_eq!(steps, 1, "the turbo preset samples one step");
    // The same weights as a plain folder give the same sprite (the recipe's `model` aside).
    let mut folder = Generator::new(ModelConfig::new(ModelSource::local(tiny())));
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
