//! Parity of the CLIP text encoders and SDXL prompt encoding with transformers 5.24 / diffusers
//! 0.42.1, from `tests/fixtures/expected/text.safetensors`, in f32 on the CPU.
//!
//! Tolerance: max |ours - reference| / max |reference| <= 1e-4 per tensor (stated in the issue
//! for f32 on CPU); the worst error is printed.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, rel_err};
use pixelgen_diffusion::{SdxlConfigs, SdxlTextEncoders};

const RTOL: f64 = 1e-4;

fn check(name: &str, ours: &Tensor, expected: &HashMap<String, Tensor>) -> f64 {
    let err = rel_err(ours, &expected[name]);
    println!("{name}: rel err {err:.2e}");
    assert!(err <= RTOL, "{name}: rel err {err:e} > {RTOL:e}");
    err
}

struct Setup {
    enc: SdxlTextEncoders,
    expected: HashMap<String, Tensor>,
    tokens: HashMap<String, Tensor>,
    prompts: HashMap<String, String>,
}

fn setup() -> Setup {
    let configs = SdxlConfigs::load(fixtures().join("tiny-sdxl")).unwrap();
    let enc = SdxlTextEncoders::load(&configs, None, DType::F32, &Device::Cpu).unwrap();
    let expected =
        candle_core::safetensors::load(fixtures().join("expected/text.safetensors"), &Device::Cpu)
            .unwrap();
    let tokens = candle_core::safetensors::load(
        fixtures().join("expected/tokens.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let bytes = std::fs::read(fixtures().join("expected/tokens.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let prompts: HashMap<String, String> =
        serde_json::from_str(&meta.metadata().clone().unwrap()["prompts"]).unwrap();
    Setup {
        enc,
        expected,
        tokens,
        prompts,
    }
}

#[test]
fn raw_encoders_match_transformers() {
    let Setup {
        enc,
        expected,
        tokens,
        ..
    } = setup();
    let ids1 = tokens["tokenizer.knight"].to_dtype(DType::U32).unwrap();
    let ids2 = tokens["tokenizer_2.knight"].to_dtype(DType::U32).unwrap();
    let o1 = enc.encoder().forward(&ids1).unwrap();
    let o2 = enc.encoder_2().forward(&ids2).unwrap();
    check(
        "text_encoder.last_hidden_state",
        &o1.last_hidden_state,
        &expected,
    );
    check(
        "text_encoder.penultimate",
        o1.hidden_from_end(1).unwrap(),
        &expected,
    );
    check("text_encoder.pooler_output", &o1.pooled, &expected);
    check(
        "text_encoder_2.last_hidden_state",
        &o2.last_hidden_state,
        &expected,
    );
    check(
        "text_encoder_2.penultimate",
        o2.hidden_from_end(1).unwrap(),
        &expected,
    );
    check(
        "text_encoder_2.text_embeds",
        o2.text_embeds.as_ref().unwrap(),
        &expected,
    );
}

#[test]
fn sdxl_prompt_encoding_matches_diffusers() {
    let Setup {
        enc,
        expected,
        prompts,
        ..
    } = setup();
    let knight = &prompts["knight"];
    let (pos, neg) = enc.encode_with_negative(knight, None).unwrap();
    check(
        "knight_empty_negative.prompt_embeds",
        &pos.embeds,
        &expected,
    );
    check(
        "knight_empty_negative.pooled_prompt_embeds",
        &pos.pooled,
        &expected,
    );
    check(
        "knight_empty_negative.negative_prompt_embeds",
        &neg.embeds,
        &expected,
    );
    check(
        "knight_empty_negative.negative_pooled_prompt_embeds",
        &neg.pooled,
        &expected,
    );
    let (pos, neg) = enc
        .encode_with_negative(knight, Some(&prompts["negative"]))
        .unwrap();
    check("knight_negative.prompt_embeds", &pos.embeds, &expected);
    check(
        "knight_negative.pooled_prompt_embeds",
        &pos.pooled,
        &expected,
    );
    check(
        "knight_negative.negative_prompt_embeds",
        &neg.embeds,
        &expected,
    );
    check(
        "knight_negative.negative_pooled_prompt_embeds",
        &neg.pooled,
        &expected,
    );
    // The zeroed negative really is zero, and an explicit "" is not.
    let zero: f32 = neg
        .embeds
        .zeros_like()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(zero, 0.0);
    let (_, explicit_empty) = enc.encode_with_negative(knight, Some("")).unwrap();
    let mass: f32 = explicit_empty
        .embeds
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(mass > 0.0);
}

#[test]
fn long_prompts_report_truncation() {
    let Setup { enc, prompts, .. } = setup();
    let long = enc.encode(&prompts["long"], None).unwrap();
    assert_eq!(long.truncated, 106 - 77);
    assert_eq!(long.embeds.dims(), &[1, 77, 80]);
    assert_eq!(enc.encode(&prompts["knight"], None).unwrap().truncated, 0);
}

#[test]
fn unprefixed_transformers5_weights_load_the_same() {
    // transformers 5 saves CLIPTextModel without `text_model.`; both layouts must give one model.
    let Setup { enc, tokens, .. } = setup();
    let dir = fixtures().join("tiny-sdxl/text_encoder");
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let stripped: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k.strip_prefix("text_model.").unwrap_or(&k).to_string(), v))
        .collect();
    assert!(stripped.contains_key("embeddings.token_embedding.weight"));
    let configs = SdxlConfigs::load(fixtures().join("tiny-sdxl")).unwrap();
    let vb = candle_nn::VarBuilder::from_tensors(stripped, DType::F32, &Device::Cpu);
    let model =
        pixelgen_diffusion::clip::ClipTextModel::new(&configs.text_encoder, false, vb).unwrap();
    let ids = tokens["tokenizer.knight"].to_dtype(DType::U32).unwrap();
    let a = model.forward(&ids).unwrap().last_hidden_state;
    let b = enc.encoder().forward(&ids).unwrap().last_hidden_state;
    assert_eq!(rel_err(&a, &b), 0.0);
}
