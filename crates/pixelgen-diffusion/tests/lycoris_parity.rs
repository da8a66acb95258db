//! LyCORIS LoHa and LoKr files (kohya names) against the formulas of the LyCORIS paper /
//! README applied by hand in torch (`tools/parity/make_lycoris_fixtures.py`; diffusers cannot
//! fuse these files): `tests/fixtures/lycoris/`, 187 layers each (UNet attention, feed-forward,
//! projections and three 3x3 convs; first text encoder q/v/fc1), fp16 factors, per-layer alphas
//! (LoHa), decomposed and full `w2` (LoKr, convs with a full `[o2, i2, 3, 3]` kernel).
//!
//! Tolerance: max |ours - reference| / max |reference| <= 1e-4 (f32, CPU) for one UNet call
//! and the prompt embeds + pooled embeds; the UNet output and the prompt embeds must differ
//! from the base model's by more than 100x that, so a layer kind that was silently not applied
//! fails (the pooled embeds come from the untouched second text encoder).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, rel_err, unet_fixture_call};
use pixelgen_diffusion::{
    DiffusionError, KronFactor, Lora, LoraLayout, LoraUpdate, ScaledLora, SdxlPipeline, SdxlWeights,
};

const RTOL: f64 = 1e-4;

fn expected() -> (HashMap<String, Tensor>, HashMap<String, String>) {
    let path = fixtures().join("lycoris/expected.safetensors");
    let ex = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    (ex, meta.metadata().clone().unwrap())
}

fn outputs(pipe: &SdxlPipeline, prompt: &str) -> Vec<(&'static str, Tensor)> {
    let unet = unet_fixture_call(pipe.unet(), 500.0);
    let text = pipe.text_encoders().encode(prompt, None).unwrap();
    vec![
        ("unet.t500", unet),
        ("prompt_embeds", text.embeds),
        ("pooled_prompt_embeds", text.pooled),
    ]
}

fn check(kind: &str, is_kind: impl Fn(&LoraUpdate) -> bool) {
    let (ex, meta) = expected();
    let strengths: serde_json::Value = serde_json::from_str(&meta["strengths"]).unwrap();
    let strength = strengths[kind].as_f64().unwrap();
    let layers: usize = meta["layers"].parse().unwrap();
    let lora =
        Arc::new(Lora::load(fixtures().join(format!("lycoris/{kind}.safetensors"))).unwrap());
    assert_eq!(lora.layout(), LoraLayout::Kohya);
    assert_eq!(lora.layers().len(), layers);
    assert!(lora.layers().iter().all(|l| is_kind(&l.update)), "{kind}");
    assert!(lora.ignored_keys().is_empty(), "{:?}", lora.ignored_keys());
    let weights = SdxlWeights::open(fixtures().join("tiny-sdxl"), None).unwrap();
    let (pipe, report) = weights
        .pipeline(&[ScaledLora::new(lora, strength)], DType::F32, &Device::Cpu)
        .unwrap();
    assert_eq!(report.loras[0].matched, layers);
    assert!(report.loras[0].unmatched.is_empty());
    for (name, ours) in outputs(&pipe, &meta["prompt"]) {
        let want = &ex[&format!("{kind}.{name}")];
        let err = rel_err(&ours, want);
        let moved = rel_err(&ex[&format!("base.{name}")], want);
        println!("{kind}.{name}: rel err {err:.2e} (moved by {moved:.2e})");
        assert!(err <= RTOL, "{kind}.{name}: {err:e}");
        // The pooled embeds come from the second text encoder, which these files leave alone.
        if name != "pooled_prompt_embeds" {
            assert!(
                moved > 100.0 * RTOL,
                "{kind}.{name} barely moved: {moved:e}"
            );
        }
    }
}

#[test]
fn loha_matches_the_lycoris_formula() {
    check("loha", |u| matches!(u, LoraUpdate::Hadamard { .. }));
}

#[test]
fn lokr_matches_the_lycoris_formula() {
    check("lokr", |u| matches!(u, LoraUpdate::Kronecker { .. }));
    // Both factor forms occur: decomposed w2 (scale alpha / r) and full w2 (scale 1).
    let lora = Lora::load(fixtures().join("lycoris/lokr.safetensors")).unwrap();
    let full = |l: &&pixelgen_diffusion::LoraLayer| {
        matches!(
            l.update,
            LoraUpdate::Kronecker {
                w2: KronFactor::Full(_),
                ..
            }
        )
    };
    let (full, decomposed): (Vec<_>, Vec<_>) = lora.layers().iter().partition(full);
    assert!(!full.is_empty() && !decomposed.is_empty());
    assert!(full.iter().all(|l| l.scale == 1.0));
    assert!(decomposed.iter().all(|l| (l.scale - 0.75).abs() < 1e-12));
}

fn temp(name: &str, tensors: &HashMap<String, Tensor>) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pixelgen-lycoris-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    candle_core::safetensors::save(tensors, &path).unwrap();
    path
}

#[test]
fn tucker_layers_are_reported_and_misfits_rejected() {
    let all =
        candle_core::safetensors::load(fixtures().join("lycoris/loha.safetensors"), &Device::Cpu)
            .unwrap();
    // One layer gains a Tucker core: it is not applied, its keys are reported as ignored.
    let layer = "lora_unet_down_blocks_0_resnets_0_conv1";
    let mut tucker = all.clone();
    tucker.insert(
        format!("{layer}.hada_t1"),
        Tensor::zeros((4, 4, 3, 3), DType::F16, &Device::Cpu).unwrap(),
    );
    let lora = Lora::load(temp("tucker.safetensors", &tucker)).unwrap();
    assert_eq!(lora.layers().len(), all.len() / 5 - 1);
    assert!(
        lora.ignored_keys().contains(&format!("{layer}.hada_t1")),
        "{:?}",
        lora.ignored_keys()
    );
    // A LoKr factor that does not divide the weight: a clear error, no panic.
    let bad = HashMap::from([
        (
            format!("{layer}.lokr_w1"),
            Tensor::ones((3, 2), DType::F32, &Device::Cpu).unwrap(),
        ),
        (
            format!("{layer}.lokr_w2"),
            Tensor::ones((3, 4, 3, 3), DType::F32, &Device::Cpu).unwrap(),
        ),
    ]);
    let lora = Arc::new(Lora::load(temp("bad.safetensors", &bad)).unwrap());
    let weights = SdxlWeights::open(fixtures().join("tiny-sdxl"), None).unwrap();
    match weights.check_loras(&[ScaledLora::new(lora, 1.0)]) {
        Err(e @ DiffusionError::Lora { .. }) => {
            assert!(e.to_string().contains("does not fit"), "{e}")
        }
        other => panic!("expected a LoRA error, got {other:?}"),
    }
}
