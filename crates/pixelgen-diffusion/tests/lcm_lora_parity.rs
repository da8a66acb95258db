//! The `fast` sampling preset (LCM scheduler, guidance 1.5) with an LCM-LoRA against diffusers
//! 0.42.1 (`load_lora_weights` + `fuse_lora`, `LCMScheduler.from_config`), from
//! `tests/fixtures/fast/` made by `tools/parity/make_fast_fixtures.py`: a random LoRA shaped
//! like `latent-consistency/lcm-lora-sdxl` (UNet only; attention, feed-forward, projections,
//! resnet convs and time embeddings, sampler convs; fp16 factors; PEFT layout) and a 4-step
//! txt2img replaying the noise diffusers' LCM scheduler drew.
//!
//! Tolerance: max |ours - reference| / max |reference| <= 1e-4 (f32, CPU) for one UNet call,
//! the latents after every step and the image; the worst is printed. The LoRA must move the
//! UNet output by more than 100x that, so a LoRA that was silently not applied fails.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, rel_err, unet_fixture_call};
use pixelgen_diffusion::{
    Control, Lora, LoraLayout, RecordedNoise, SamplingPreset, ScaledLora, SchedulerKind,
    SdxlWeights,
};

const RTOL: f64 = 1e-4;

struct Fixture {
    weights: SdxlWeights,
    lora: Arc<Lora>,
    ex: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

fn fixture() -> Fixture {
    let path = fixtures().join("fast/expected.safetensors");
    let ex = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    Fixture {
        weights: SdxlWeights::open(fixtures().join("tiny-sdxl"), None).unwrap(),
        lora: Arc::new(Lora::load(fixtures().join("fast/lcm_lora.safetensors")).unwrap()),
        ex,
        meta: meta.metadata().clone().unwrap(),
    }
}

#[test]
fn lcm_lora_with_the_fast_preset_matches_diffusers_every_step() {
    let f = fixture();
    assert_eq!(f.lora.layout(), LoraLayout::Diffusers);
    let layers: usize = f.meta["layers"].parse().unwrap();
    assert_eq!(f.lora.layers().len(), layers);
    let (pipe, report) = f
        .weights
        .pipeline(
            &[ScaledLora::new(f.lora.clone(), 1.0)],
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
    assert_eq!(report.loras[0].matched, layers, "every layer is merged");
    assert!(report.loras[0].unmatched.is_empty());

    let (base, _) = f.weights.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
    let unet = unet_fixture_call(pipe.unet(), 500.0);
    let err = rel_err(&unet, &f.ex["unet.t500"]);
    let moved = rel_err(&unet_fixture_call(base.unet(), 500.0), &f.ex["unet.t500"]);
    println!("unet.t500: rel err {err:.2e} (the LoRA moved it by {moved:.2e})");
    assert!(err <= RTOL, "unet.t500: {err:e}");
    assert!(moved > 100.0 * RTOL, "the LoRA barely changes the UNet");

    // The fast preset as the registry's `pixel-art-fast` uses it, at the fixture's 4 steps.
    let fast = SamplingPreset::named("fast").unwrap();
    assert_eq!(
        (fast.sampler, fast.guidance_scale),
        (SchedulerKind::Lcm, 1.5)
    );
    let mut params = fast.params(f.meta["prompt"].clone());
    params.steps = f.meta["steps"].parse().unwrap();
    params.guidance_scale = f.meta["guidance_scale"].parse().unwrap();
    assert_eq!(params.guidance_scale, fast.guidance_scale);
    (params.width, params.height) = (32, 32);
    let steps = params.steps;
    // The initial latents, then the noise LCM draws after every step but the last.
    let mut recorded = vec![f.ex["initial_latents"].clone()];
    recorded.extend((0..steps - 1).map(|i| f.ex[&format!("step{i}.noise")].clone()));
    let mut noise = RecordedNoise::new(recorded);
    let mut latents = Vec::new();
    let mut timesteps = Vec::new();
    let out = pipe
        .txt2img(&params, &mut noise, &mut |p| {
            latents.push(p.latents.clone());
            timesteps.push(p.timestep as f32);
            Control::Continue
        })
        .unwrap();
    assert_eq!(noise.remaining(), 0, "every recorded noise was used");
    let want: Vec<f32> = f.ex["timesteps"].to_vec1().unwrap();
    assert_eq!(timesteps, want);
    let mut worst: f64 = 0.0;
    for (i, l) in latents.iter().enumerate() {
        let err = rel_err(l, &f.ex[&format!("step{i}.latents")]);
        println!("step {i} (t = {}): latents rel err {err:.2e}", timesteps[i]);
        assert!(err <= RTOL, "step {i}: {err:e}");
        worst = worst.max(err);
    }
    let err = rel_err(&out.image, &f.ex["image"]);
    println!("image: rel err {err:.2e}; worst {:.2e}", worst.max(err));
    assert!(err <= RTOL, "image: {err:e}");
}
