//! `*.fp16.safetensors` variants load (memory-mapped) and match the full-precision weights:
//! the tiny fixture is re-saved in f16 under variant names in a temp folder.

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::{rel_err, tiny_model};
use pixelgen_diffusion::{Control, DiffusionError, GenerationParams, SdxlPipeline, SeededNoise};

/// Copies `src` to `dst`, rewriting every `NAME.safetensors` as `NAME.fp16.safetensors` in f16.
fn copy_as_fp16(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            copy_as_fp16(&path, &dst.join(&name));
        } else if let Some(stem) = name.strip_suffix(".safetensors") {
            let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
            let half: std::collections::HashMap<String, Tensor> = tensors
                .into_iter()
                .map(|(k, v)| (k, v.to_dtype(DType::F16).unwrap()))
                .collect();
            candle_core::safetensors::save(&half, dst.join(format!("{stem}.fp16.safetensors")))
                .unwrap();
        } else {
            std::fs::copy(&path, dst.join(&name)).unwrap();
        }
    }
}

#[test]
fn fp16_variant_loads_and_tracks_the_f32_weights() {
    let dir = std::env::temp_dir().join(format!("pixelgen-fp16-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_as_fp16(&tiny_model(), &dir);
    assert!(
        dir.join("unet/diffusion_pytorch_model.fp16.safetensors")
            .is_file()
    );

    let params = GenerationParams {
        prompt: "a knight".into(),
        width: 32,
        height: 32,
        steps: 3,
        ..Default::default()
    };
    let run = |pipe: &SdxlPipeline| {
        pipe.txt2img(&params, &mut SeededNoise::new(9), &mut |_| {
            Control::Continue
        })
        .unwrap()
    };
    let reference = run(&SdxlPipeline::load(tiny_model(), None, DType::F32, &Device::Cpu).unwrap());
    // f16 weights, computed in f32: only the weights' rounding differs.
    let half = SdxlPipeline::load(&dir, Some("fp16"), DType::F32, &Device::Cpu).unwrap();
    let out = run(&half);
    let err = rel_err(&out.image, &reference.image);
    println!("fp16 variant image rel err {err:.2e}");
    assert!(err > 0.0, "the fp16 files were not the ones read");
    assert!(err < 1e-2, "rel err {err:e}");

    // The plain names do not exist there: asking for them names the missing file.
    let err = SdxlPipeline::load(&dir, None, DType::F32, &Device::Cpu).unwrap_err();
    assert!(matches!(err, DiffusionError::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains(".safetensors"), "{err}");
    // A variant falls back to the plain file when it is absent (diffusers does the same).
    let fallback =
        SdxlPipeline::load(tiny_model(), Some("fp16"), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(rel_err(&run(&fallback).image, &reference.image), 0.0);

    // A truncated weight file is an error naming the file, not a crash.
    let unet = dir.join("unet/diffusion_pytorch_model.fp16.safetensors");
    let bytes = std::fs::read(&unet).unwrap();
    std::fs::write(&unet, &bytes[..bytes.len() / 2]).unwrap();
    let err = SdxlPipeline::load(&dir, Some("fp16"), DType::F32, &Device::Cpu).unwrap_err();
    assert!(
        err.to_string()
            .contains("diffusion_pytorch_model.fp16.safetensors"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
