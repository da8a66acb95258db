//! LoRA merging against diffusers 0.42.1 + peft 0.21 (`load_lora_weights`, `set_adapters` with
//! separate UNet / text-encoder strengths, `fuse_lora`), from `tests/fixtures/lora/` made by
//! `tools/parity/make_lora_fixtures.py`: one LoRA in the diffusers/PEFT layout, one in the kohya
//! layout, and both at once, each on the UNet attention, feed-forward, projection and 3x3 conv
//! layers and on both text encoders.
//!
//! Tolerance: max |ours - reference| / max |reference| <= 1e-4 per tensor (f32 on the CPU), for
//! the prompt embeds and pooled embeds (positive and negative), one UNet call and a 3-step CFG
//! txt2img image; the worst error is printed. Each LoRA output must also differ from the base
//! model's by more than 100x that tolerance, so a LoRA that was silently not applied fails.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, rel_err};
use pixelgen_diffusion::{
    Control, DiffusionError, GenerationParams, Lora, LoraLayout, RecordedNoise, ScaledLora,
    SdxlPipeline, SdxlWeights, UNetConditioning,
};

const RTOL: f64 = 1e-4;

struct Fixture {
    weights: SdxlWeights,
    loras: HashMap<String, Arc<Lora>>,
    ex: HashMap<String, Tensor>,
    unet_in: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

fn fixture() -> Fixture {
    let weights = SdxlWeights::open(fixtures().join("tiny-sdxl"), None).unwrap();
    let loras = ["peft", "kohya"]
        .into_iter()
        .map(|n| {
            let lora = Lora::load(fixtures().join(format!("lora/{n}.safetensors"))).unwrap();
            (n.to_string(), Arc::new(lora))
        })
        .collect();
    let path = fixtures().join("lora/expected.safetensors");
    let ex = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let unet_in =
        candle_core::safetensors::load(fixtures().join("expected/unet.safetensors"), &Device::Cpu)
            .unwrap();
    Fixture {
        weights,
        loras,
        ex,
        unet_in,
        meta: meta.metadata().clone().unwrap(),
    }
}

/// The case's LoRAs with their strengths, as the fixture script applied them.
fn case_loras(f: &Fixture, case: &str) -> Vec<ScaledLora> {
    let cases: serde_json::Value = serde_json::from_str(&f.meta["cases"]).unwrap();
    let mut out = Vec::new();
    for (name, s) in cases[case].as_object().unwrap() {
        out.push(ScaledLora {
            lora: f.loras[name].clone(),
            unet_strength: s["unet"].as_f64().unwrap(),
            text_strength: s["text"].as_f64().unwrap(),
        });
    }
    out
}

/// Runs the recorded computations on `pipe`; returns (name, ours) in the fixture's naming.
fn outputs(f: &Fixture, pipe: &SdxlPipeline) -> Vec<(&'static str, Tensor)> {
    let (pos, neg) = pipe
        .text_encoders()
        .encode_with_negative(&f.meta["prompt"], Some(&f.meta["negative_prompt"]))
        .unwrap();
    let cond = UNetConditioning {
        encoder_hidden_states: &f.unet_in["encoder_hidden_states"],
        text_embeds: &f.unet_in["text_embeds"],
        time_ids: &f.unet_in["time_ids"],
    };
    let unet = pipe
        .unet()
        .forward(&f.unet_in["latents"], 500.0, &cond)
        .unwrap();
    let params = GenerationParams {
        prompt: f.meta["prompt"].clone(),
        negative_prompt: Some(f.meta["negative_prompt"].clone()),
        width: 32,
        height: 32,
        steps: f.meta["steps"].parse().unwrap(),
        guidance_scale: f.meta["guidance_scale"].parse().unwrap(),
        ..Default::default()
    };
    let mut noise = RecordedNoise::new([f.ex["txt2img.initial_latents"].clone()]);
    let image = pipe
        .txt2img(&params, &mut noise, &mut |_| Control::Continue)
        .unwrap()
        .image;
    vec![
        ("prompt_embeds", pos.embeds),
        ("pooled_prompt_embeds", pos.pooled),
        ("negative_prompt_embeds", neg.embeds),
        ("negative_pooled_prompt_embeds", neg.pooled),
        ("unet.t500", unet),
        ("txt2img.image", image),
    ]
}

fn check_case(f: &Fixture, case: &str) {
    let loras = case_loras(f, case);
    let (pipe, report) = f
        .weights
        .pipeline(&loras, DType::F32, &Device::Cpu)
        .unwrap();
    assert_eq!(report.loras.len(), loras.len());
    for (m, l) in report.loras.iter().zip(&loras) {
        assert!(
            m.unmatched.is_empty(),
            "{case}: unmatched {:?}",
            m.unmatched
        );
        assert!(m.ignored.is_empty(), "{case}: ignored {:?}", m.ignored);
        // 12 kinds of UNet layer + 3x3 convs, 5 per text-encoder layer: 227 in all.
        assert_eq!(
            m.matched,
            l.lora.layers().len(),
            "{case}: every layer matches"
        );
        assert_eq!(m.matched, 227);
    }
    let mut worst: f64 = 0.0;
    for (name, ours) in outputs(f, &pipe) {
        let want = &f.ex[&format!("{case}.{name}")];
        let err = rel_err(&ours, want);
        let moved = rel_err(&f.ex[&format!("base.{name}")], want);
        println!("{case}.{name}: rel err {err:.2e} (LoRA moved it by {moved:.2e})");
        assert!(err <= RTOL, "{case}.{name}: rel err {err:e} > {RTOL:e}");
        assert!(
            moved > 100.0 * RTOL,
            "{case}.{name}: the LoRA barely changes it ({moved:e})"
        );
        worst = worst.max(err);
    }
    println!("{case}: worst rel err {worst:.2e}");
}

#[test]
fn base_model_through_merged_loader_matches_diffusers() {
    let f = fixture();
    let (pipe, report) = f.weights.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
    assert!(report.loras.is_empty());
    for (name, ours) in outputs(&f, &pipe) {
        let err = rel_err(&ours, &f.ex[&format!("base.{name}")]);
        println!("base.{name}: rel err {err:.2e}");
        assert!(err <= RTOL, "base.{name}: rel err {err:e}");
    }
}

#[test]
fn peft_layout_lora_matches_diffusers() {
    let f = fixture();
    assert_eq!(f.loras["peft"].layout(), LoraLayout::Diffusers);
    check_case(&f, "peft");
}

#[test]
fn kohya_layout_lora_matches_diffusers() {
    let f = fixture();
    let lora = &f.loras["kohya"];
    assert_eq!(lora.layout(), LoraLayout::Kohya);
    let meta = lora.metadata();
    assert_eq!(meta.trigger_words, ["pixelart", "sprite"]);
    assert_eq!(
        meta.base_model.as_deref(),
        Some("stable-diffusion-xl-v1-base/lora")
    );
    assert_eq!(meta.title.as_deref(), Some("Tiny Pixel LoRA"));
    assert_eq!(meta.tags.first().map(|t| t.0.as_str()), Some("pixelart"));
    check_case(&f, "kohya");
}

#[test]
fn two_loras_with_separate_strengths_match_diffusers() {
    let f = fixture();
    check_case(&f, "both");
}

#[test]
fn changing_strengths_rebuilds_from_the_same_mapping() {
    let f = fixture();
    // Same weights object, three builds: none, kohya at its case strengths, none again. The
    // last must equal the first bit for bit (the base is never modified by a merge).
    let (a, _) = f.weights.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
    let (_, _) = f
        .weights
        .pipeline(&case_loras(&f, "kohya"), DType::F32, &Device::Cpu)
        .unwrap();
    let (b, _) = f.weights.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
    let enc = |p: &SdxlPipeline| p.text_encoders().encode("knight", None).unwrap().embeds;
    assert_eq!(rel_err(&enc(&a), &enc(&b)), 0.0);
    // Strength 0 on both parts is the base model.
    let zero = ScaledLora {
        lora: f.loras["peft"].clone(),
        unet_strength: 0.0,
        text_strength: 0.0,
    };
    let (z, report) = f
        .weights
        .pipeline(&[zero], DType::F32, &Device::Cpu)
        .unwrap();
    assert_eq!(report.loras[0].matched, 227);
    assert_eq!(rel_err(&enc(&a), &enc(&z)), 0.0);
}

// ----------------------------------------------------------------------------------------------
// Bad input
// ----------------------------------------------------------------------------------------------

fn lora_message(r: pixelgen_diffusion::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(e @ DiffusionError::Lora { .. }) => e.to_string(),
        other => panic!("expected a LoRA error, got {other:?}"),
    }
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pixelgen-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn empty_file_is_a_clear_error() {
    let msg = lora_message(Lora::load(temp_file("empty.safetensors", b"")));
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn truncated_file_is_a_clear_error() {
    let bytes = std::fs::read(fixtures().join("lora/kohya.safetensors")).unwrap();
    for keep in [4, 100, bytes.len() / 2, bytes.len() - 1] {
        let path = temp_file(&format!("trunc{keep}.safetensors"), &bytes[..keep]);
        let msg = lora_message(Lora::load(&path));
        assert!(msg.contains("truncated"), "{keep} bytes: {msg}");
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let err = Lora::load(fixtures().join("lora/nope.safetensors")).unwrap_err();
    assert!(matches!(err, DiffusionError::Io { .. }), "{err}");
}

fn kohya_file(name: &str, layers: &[(&str, usize, usize)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pixelgen-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut tensors = HashMap::new();
    for &(key, out, inp) in layers {
        let down = Tensor::ones((4, inp), DType::F32, &Device::Cpu).unwrap();
        let up = Tensor::ones((out, 4), DType::F32, &Device::Cpu).unwrap();
        tensors.insert(format!("{key}.lora_down.weight"), down);
        tensors.insert(format!("{key}.lora_up.weight"), up);
        tensors.insert(
            format!("{key}.alpha"),
            Tensor::new(4f32, &Device::Cpu).unwrap(),
        );
    }
    let path = dir.join(name);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    path
}

#[test]
fn lora_for_another_architecture_is_rejected() {
    let f = fixture();
    // SD1.5 names: down_blocks.0 has attention in SD1.5 but not in SDXL, and SD1.5's CLIP has
    // 12 layers (the tiny one 3).
    let path = kohya_file(
        "sd15.safetensors",
        &[
            (
                "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
                320,
                320,
            ),
            (
                "lora_te_text_model_encoder_layers_11_self_attn_q_proj",
                768,
                768,
            ),
        ],
    );
    let lora = Arc::new(Lora::load(&path).unwrap());
    let msg = lora_message(f.weights.pipeline(
        &[ScaledLora::new(lora.clone(), 1.0)],
        DType::F32,
        &Device::Cpu,
    ));
    assert!(msg.contains("another architecture"), "{msg}");
    assert!(
        f.weights
            .check_loras(&[ScaledLora::new(lora, 1.0)])
            .is_err()
    );
}

#[test]
fn lora_with_matching_names_but_wrong_sizes_is_rejected() {
    let f = fixture();
    // A full-size SDXL LoRA on the tiny model: the names exist, the shapes do not fit.
    let path = kohya_file(
        "fullsize.safetensors",
        &[(
            "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q",
            640,
            640,
        )],
    );
    let lora = Arc::new(Lora::load(&path).unwrap());
    let msg = lora_message(f.weights.pipeline(
        &[ScaledLora::new(lora, 1.0)],
        DType::F32,
        &Device::Cpu,
    ));
    assert!(msg.contains("does not fit"), "{msg}");
}

#[test]
fn sgm_named_kohya_unet_is_a_clear_error() {
    let f = fixture();
    let path = kohya_file(
        "sgm.safetensors",
        &[
            ("lora_unet_input_blocks_40_1_proj_in", 16, 16),
            (
                "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
                32,
                32,
            ),
        ],
    );
    let lora = Arc::new(Lora::load(&path).unwrap());
    let msg = lora_message(f.weights.check_loras(&[ScaledLora::new(lora, 1.0)]));
    assert!(msg.contains("SGM"), "{msg}");
}

#[test]
fn partial_match_reports_unmatched_layers() {
    let f = fixture();
    let path = kohya_file(
        "partial.safetensors",
        &[
            (
                "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
                32,
                32,
            ),
            (
                "lora_te1_text_model_encoder_layers_7_self_attn_q_proj",
                32,
                32,
            ),
        ],
    );
    let lora = Arc::new(Lora::load(&path).unwrap());
    let report = f
        .weights
        .check_loras(&[ScaledLora::new(lora, 1.0)])
        .unwrap();
    assert_eq!(report.loras[0].matched, 1);
    assert_eq!(
        report.loras[0].unmatched,
        ["text_encoder: encoder_layers_7_self_attn_q_proj"]
    );
}

#[test]
fn file_without_lora_tensors_is_rejected() {
    let t = HashMap::from([(
        "model.diffusion_model.out.2.weight".to_string(),
        Tensor::ones((4, 4), DType::F32, &Device::Cpu).unwrap(),
    )]);
    let path = temp_file("notlora.safetensors", b"");
    candle_core::safetensors::save(&t, &path).unwrap();
    let msg = lora_message(Lora::load(&path));
    assert!(msg.contains("no LoRA layers"), "{msg}");
}
