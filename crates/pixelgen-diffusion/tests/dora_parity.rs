//! DoRA (PEFT `use_dora`, diffusers/PEFT layout with `lora_magnitude_vector`) against diffusers
//! 0.42.1 + peft (`load_lora_weights`, `set_adapters` at strength 0.7, `fuse_lora`), from
//! `tests/fixtures/dora/` made by `tools/parity/make_dora_fixtures.py`: 209 UNet layers
//! (attention, feed-forward, projections, 3x3 resnet convs), fp16 factors.
//!
//! Tolerance: max |ours - reference| / max |reference| <= 1e-4 (f32, CPU) for one UNet call.
//! The output must also differ from a plain LoRA merge of the same factors (the magnitudes
//! ignored) by more than 100x that, so dropping DoRA's rescaling fails.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, rel_err, unet_fixture_call};
use pixelgen_diffusion::{Lora, LoraLayout, ScaledLora, SdxlWeights};

const RTOL: f64 = 1e-4;

#[test]
fn dora_matches_diffusers_fuse_lora() {
    let path = fixtures().join("dora/expected.safetensors");
    let ex = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: HashMap<String, String> = meta.metadata().clone().unwrap();
    let strength: f64 = meta["strength"].parse().unwrap();
    let layers: usize = meta["layers"].parse().unwrap();

    let lora = Lora::load(fixtures().join("dora/dora.safetensors")).unwrap();
    assert_eq!(lora.layout(), LoraLayout::Diffusers);
    assert_eq!(lora.layers().len(), layers);
    assert!(lora.layers().iter().all(|l| l.magnitude.is_some()));
    assert!(lora.ignored_keys().is_empty(), "{:?}", lora.ignored_keys());
    let weights = SdxlWeights::open(fixtures().join("tiny-sdxl"), None).unwrap();
    let lora = Arc::new(lora);
    let (pipe, report) = weights
        .pipeline(
            &[ScaledLora::new(lora.clone(), strength)],
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
    assert_eq!(report.loras[0].matched, layers);
    let ours = unet_fixture_call(pipe.unet(), 500.0);
    let want = &ex["dora.unet.t500"];
    let err = rel_err(&ours, want);

    // The same factors and alpha (8, from the file's adapter metadata) without the
    // magnitudes: a plain LoRA.
    let file = fixtures().join("dora/dora.safetensors");
    let mut tensors: HashMap<String, Tensor> = candle_core::safetensors::load(&file, &Device::Cpu)
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !k.contains("lora_magnitude_vector"))
        .collect();
    let prefixes: Vec<String> = tensors
        .keys()
        .filter_map(|k| k.strip_suffix(".lora_A.weight").map(str::to_string))
        .collect();
    for p in prefixes {
        tensors.insert(
            format!("{p}.alpha"),
            Tensor::new(8f32, &Device::Cpu).unwrap(),
        );
    }
    let dir = std::env::temp_dir().join(format!("pixelgen-dora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain_path = dir.join("plain.safetensors");
    candle_core::safetensors::save(&tensors, &plain_path).unwrap();
    let plain = Lora::load(&plain_path).unwrap();
    assert!(plain.layers().iter().all(|l| l.magnitude.is_none()));
    assert_eq!(plain.layers()[0].scale, lora.layers()[0].scale);
    let (plain_pipe, _) = weights
        .pipeline(
            &[ScaledLora::new(Arc::new(plain), strength)],
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
    let dora_vs_lora = rel_err(&unet_fixture_call(plain_pipe.unet(), 500.0), want);
    let moved = rel_err(&ex["base.unet.t500"], want);
    println!(
        "dora.unet.t500: rel err {err:.2e} (vs base {moved:.2e}, vs plain LoRA {dora_vs_lora:.2e})"
    );
    assert!(err <= RTOL, "{err:e}");
    assert!(moved > 100.0 * RTOL && dora_vs_lora > 100.0 * RTOL);
}
