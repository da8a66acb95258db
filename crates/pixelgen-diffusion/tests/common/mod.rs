//! Helpers shared by the parity tests: fixture paths and the error measure every tolerance
//! is stated in.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use pixelgen_diffusion::{GenerationParams, UNet2DConditionModel, UNetConditioning};

/// `tests/fixtures` (made by `tools/parity/make_fixtures.py`).
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The tiny random SDXL in the diffusers folder layout.
pub fn tiny_model() -> PathBuf {
    fixtures().join("tiny-sdxl")
}

/// A recorded fixture: its tensors and its string metadata.
pub fn expected(path: &Path) -> (HashMap<String, Tensor>, HashMap<String, String>) {
    let ex = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    (ex, meta.metadata().clone().unwrap_or_default())
}

/// The generation parameters a pipeline fixture recorded (`width`, `height`, `steps`,
/// `guidance_scale` in its metadata; the prompt under `prompt_key`; no negative prompt).
pub fn recorded_params(meta: &HashMap<String, String>, prompt_key: &str) -> GenerationParams {
    GenerationParams {
        prompt: meta[prompt_key].clone(),
        negative_prompt: None,
        width: meta["width"].parse().unwrap(),
        height: meta["height"].parse().unwrap(),
        steps: meta["steps"].parse().unwrap(),
        guidance_scale: meta["guidance_scale"].parse().unwrap(),
        ..Default::default()
    }
}

/// max |a - b| / max |b| in f64 (the absolute error when `b` is all zeros); shapes must match.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let flat = |t: &Tensor| -> Vec<f64> {
        t.to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("tensor to f64")
    };
    let (a, b) = (flat(a), flat(b));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    if scale > 0.0 { diff / scale } else { diff }
}

/// One UNet call on the UNet fixture's inputs (`expected/unet.safetensors`: latents, prompt
/// embeds, pooled embeds, time ids) at timestep `t`: the call the parity tests compare.
pub fn unet_fixture_call(unet: &UNet2DConditionModel, t: f64) -> Tensor {
    let unet_in =
        candle_core::safetensors::load(fixtures().join("expected/unet.safetensors"), &Device::Cpu)
            .unwrap();
    let cond = UNetConditioning {
        encoder_hidden_states: &unet_in["encoder_hidden_states"],
        text_embeds: &unet_in["text_embeds"],
        time_ids: &unet_in["time_ids"],
    };
    unet.forward(&unet_in["latents"], t, &cond).unwrap()
}
