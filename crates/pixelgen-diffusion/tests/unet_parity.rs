//! Parity of the UNet with diffusers 0.42.1 (`UNet2DConditionModel`, SDXL `text_time`
//! conditioning), from `tests/fixtures/expected/unet.safetensors`, in f32 on the CPU.
//!
//! Tolerance: max |ours - reference| / max |reference| <= 1e-4 at each timestep; worst printed.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, rel_err};
use pixelgen_diffusion::{SdxlConfigs, UNet2DConditionModel, UNetConditioning};

const RTOL: f64 = 1e-4;

#[test]
fn one_unet_call_matches_diffusers() {
    let configs = SdxlConfigs::load(fixtures().join("tiny-sdxl")).unwrap();
    let unet = UNet2DConditionModel::load(&configs, None, DType::F32, &Device::Cpu).unwrap();
    let ex =
        candle_core::safetensors::load(fixtures().join("expected/unet.safetensors"), &Device::Cpu)
            .unwrap();
    let cond = UNetConditioning {
        encoder_hidden_states: &ex["encoder_hidden_states"],
        text_embeds: &ex["text_embeds"],
        time_ids: &ex["time_ids"],
    };
    for t in [999u32, 500, 1] {
        let out = unet.forward(&ex["latents"], t as f64, &cond).unwrap();
        let err = rel_err(&out, &ex[&format!("t{t}.sample")]);
        println!("t={t}: rel err {err:.2e}");
        assert!(err <= RTOL, "t={t}: rel err {err:e}");
    }
}

/// Cross-attention keeps the K|V of the last context tensor: a new context must be seen, and
/// the old one again after it.
#[test]
fn a_new_context_is_not_served_from_the_cache() {
    let configs = SdxlConfigs::load(fixtures().join("tiny-sdxl")).unwrap();
    let load = || UNet2DConditionModel::load(&configs, None, DType::F32, &Device::Cpu).unwrap();
    let ex =
        candle_core::safetensors::load(fixtures().join("expected/unet.safetensors"), &Device::Cpu)
            .unwrap();
    let other = (&ex["encoder_hidden_states"] * 0.5).unwrap();
    let cond = |ehs| UNetConditioning {
        encoder_hidden_states: ehs,
        text_embeds: &ex["text_embeds"],
        time_ids: &ex["time_ids"],
    };
    let unet = load();
    let first = unet
        .forward(&ex["latents"], 500.0, &cond(&ex["encoder_hidden_states"]))
        .unwrap();
    let second = unet.forward(&ex["latents"], 500.0, &cond(&other)).unwrap();
    let fresh = load()
        .forward(&ex["latents"], 500.0, &cond(&other))
        .unwrap();
    assert_eq!(
        rel_err(&second, &fresh),
        0.0,
        "the new context was not used"
    );
    assert!(
        rel_err(&second, &first) > 1e-3,
        "the context made no difference"
    );
    let again = unet
        .forward(&ex["latents"], 500.0, &cond(&ex["encoder_hidden_states"]))
        .unwrap();
    assert_eq!(
        rel_err(&again, &first),
        0.0,
        "the first context was not restored"
    );
}

#[test]
fn mismatched_inputs_are_errors() {
    let configs = SdxlConfigs::load(fixtures().join("tiny-sdxl")).unwrap();
    let unet = UNet2DConditionModel::load(&configs, None, DType::F32, &Device::Cpu).unwrap();
    let ex =
        candle_core::safetensors::load(fixtures().join("expected/unet.safetensors"), &Device::Cpu)
            .unwrap();
    let cond = UNetConditioning {
        encoder_hidden_states: &ex["encoder_hidden_states"],
        text_embeds: &ex["text_embeds"],
        time_ids: &ex["time_ids"],
    };
    let one = ex["latents"].narrow(0, 0, 1).unwrap();
    assert!(unet.forward(&one, 10.0, &cond).is_err(), "batch mismatch");
    let three_ch = Tensor::zeros((2, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(
        unet.forward(&three_ch, 10.0, &cond).is_err(),
        "channel mismatch"
    );
}
