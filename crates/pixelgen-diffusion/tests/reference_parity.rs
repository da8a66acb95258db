//! Reference attention (shared self-attention, `src/reference.rs`) against diffusers 0.42.1 with
//! the attention processor of `tools/parity/make_reference_attention_fixtures.py`, from
//! `tests/fixtures/reference/expected.safetensors`, in f32 on the CPU; plus the promises of
//! `SdxlPipeline::generate_set` (strength 0 is per-frame txt2img, clear errors for bad input).
//!
//! Tolerance: max |ours - reference| / max |reference| <= 1e-4 (as `unet_parity.rs` and
//! `pipeline_parity.rs`); the worst is printed.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{expected, fixtures, recorded_params, rel_err};
use pixelgen_diffusion::{
    Control, DiffusionError, ForwardOptions, GenerationParams, MAX_BATCH, RecordedNoise,
    ReferenceAttention, SdxlPipeline, SeededNoise, SetParams, SetReference, SharedAttention,
    UNetConditioning,
};

const RTOL: f64 = 1e-4;

fn check(name: &str, ours: &Tensor, reference: &Tensor) {
    let err = rel_err(ours, reference);
    println!("{name}: rel err {err:.2e}");
    assert!(err <= RTOL, "{name}: rel err {err:e} > {RTOL:e}");
}

struct Setup {
    pipe: SdxlPipeline,
    ex: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
    params: GenerationParams,
    prompts: Vec<String>,
}

fn setup() -> Setup {
    let pipe =
        SdxlPipeline::load(fixtures().join("tiny-sdxl"), None, DType::F32, &Device::Cpu).unwrap();
    let path = fixtures().join("reference/expected.safetensors");
    let (ex, meta) = expected(&path);
    let params = recorded_params(&meta, "reference_prompt");
    let prompts: Vec<String> = serde_json::from_str(&meta["prompts"]).unwrap();
    Setup {
        pipe,
        ex,
        meta,
        params,
        prompts,
    }
}

fn go(_: pixelgen_diffusion::Progress) -> Control {
    Control::Continue
}

#[test]
fn one_shared_unet_call_matches_diffusers() {
    let Setup { pipe, ex, .. } = setup();
    let cond = UNetConditioning {
        encoder_hidden_states: &ex["unet.encoder_hidden_states"],
        text_embeds: &ex["unet.text_embeds"],
        time_ids: &ex["unet.time_ids"],
    };
    let x = &ex["unet.latents"];
    for (tag, strength, adain) in [
        ("s1", 1.0, true),
        ("s05", 0.5, true),
        ("s1_noadain", 1.0, false),
    ] {
        let attention = ReferenceAttention {
            strength,
            adain_queries: adain,
            adain_keys: adain,
        };
        let opts = ForwardOptions {
            tiling: false,
            shared_attention: Some(SharedAttention::new(attention, 2).unwrap()),
        };
        let out = pipe
            .unet()
            .forward_with_options(x, 500.0, &cond, &opts)
            .unwrap();
        check(
            &format!("unet {tag}"),
            &out,
            &ex[&format!("unet.{tag}.sample")],
        );
    }
    // The references (items 0 and 3) are what they would be without sharing; strength 0 is
    // exactly the plain call.
    let plain = pipe.unet().forward(x, 500.0, &cond).unwrap();
    for r in [0, 3] {
        check(
            &format!("reference item {r} unchanged"),
            &ex["unet.s1.sample"].narrow(0, r, 1).unwrap(),
            &plain.narrow(0, r, 1).unwrap(),
        );
    }
    let off = ForwardOptions {
        tiling: false,
        shared_attention: Some(SharedAttention::new(ReferenceAttention::off(), 2).unwrap()),
    };
    let zero = pipe
        .unet()
        .forward_with_options(x, 500.0, &cond, &off)
        .unwrap();
    assert_eq!(rel_err(&zero, &plain), 0.0);
}

#[test]
fn first_frame_set_matches_diffusers() {
    let s = setup();
    let set = SetParams::first_frame(s.prompts.clone());
    assert_eq!(s.meta["first_frame_strength"], "1.0");
    let mut noise = RecordedNoise::new([s.ex["first_frame.initial_latents"].clone()]);
    let mut steps = 0;
    let out = s
        .pipe
        .generate_set(&s.params, &set, &mut noise, &mut |p| {
            steps += 1;
            assert_eq!(p.latents.dim(0).unwrap(), 3);
            Control::Continue
        })
        .unwrap();
    assert_eq!(steps, 4);
    assert_eq!(noise.remaining(), 0);
    assert_eq!(out.image.dims(), &[3, 3, 32, 32]);
    check(
        "first-frame latents",
        &out.latents,
        &s.ex["first_frame.latents"],
    );
    check("first-frame image", &out.image, &s.ex["first_frame.image"]);
}

#[test]
fn image_reference_set_matches_diffusers() {
    let s = setup();
    let strength: f64 = s.meta["image_strength"].parse().unwrap();
    let set = SetParams {
        prompts: s.prompts.clone(),
        attention: ReferenceAttention {
            strength,
            ..Default::default()
        },
        reference: SetReference::Image(s.ex["image.reference_image"].clone()),
        init: None,
    };
    let mut noise = RecordedNoise::new([
        s.ex["first_frame.initial_latents"].clone(),
        s.ex["image.reference_noise"].clone(),
    ]);
    let out = s
        .pipe
        .generate_set(&s.params, &set, &mut noise, &mut go)
        .unwrap();
    assert_eq!(noise.remaining(), 0);
    assert_eq!(
        out.latents.dims(),
        &[3, 4, 8, 8],
        "the reference is not a frame"
    );
    check(
        "image-reference latents",
        &out.latents,
        &s.ex["image.latents"],
    );
    check("image-reference image", &out.image, &s.ex["image.image"]);
}

/// Strength 0 is independent generation: each frame equals txt2img with the same seed and its
/// prompt (every frame of a set gets the same initial noise).
#[test]
fn strength_zero_set_is_per_frame_txt2img() {
    let mut s = setup();
    s.params.steps = 3;
    let set = SetParams {
        attention: ReferenceAttention::off(),
        ..SetParams::first_frame(s.prompts.clone())
    };
    let out = s
        .pipe
        .generate_set(&s.params, &set, &mut SeededNoise::new(11), &mut go)
        .unwrap();
    for (k, prompt) in s.prompts.iter().enumerate() {
        let single = GenerationParams {
            prompt: prompt.clone(),
            ..s.params.clone()
        };
        let one = s
            .pipe
            .txt2img(&single, &mut SeededNoise::new(11), &mut go)
            .unwrap();
        check(
            &format!("frame {k} latents vs txt2img"),
            &out.latents.narrow(0, k, 1).unwrap(),
            &one.latents,
        );
        check(
            &format!("frame {k} image vs txt2img"),
            &out.image.narrow(0, k, 1).unwrap(),
            &one.image,
        );
    }
}

/// With an img2img start, strength 0 is per-frame img2img from the same seed.
#[test]
fn strength_zero_set_with_init_is_per_frame_img2img() {
    let s = setup();
    let image = s.ex["image.reference_image"].clone();
    let set = SetParams {
        attention: ReferenceAttention::off(),
        init: Some((image.clone(), 0.75)),
        ..SetParams::first_frame(s.prompts[..2].to_vec())
    };
    let mut steps = 0;
    let out = s
        .pipe
        .generate_set(&s.params, &set, &mut SeededNoise::new(4), &mut |p| {
            steps += 1;
            assert_eq!(p.total, 3);
            Control::Continue
        })
        .unwrap();
    assert_eq!(steps, 3, "strength 0.75 of 4 steps runs 3");
    for k in 0..2 {
        let single = GenerationParams {
            prompt: s.prompts[k].clone(),
            ..s.params.clone()
        };
        let one = s
            .pipe
            .img2img(&single, &image, 0.75, &mut SeededNoise::new(4), &mut go)
            .unwrap();
        check(
            &format!("frame {k} image vs img2img"),
            &out.image.narrow(0, k, 1).unwrap(),
            &one.image,
        );
    }
}

fn err_of(s: &Setup, params: &GenerationParams, set: &SetParams) -> String {
    let e = s
        .pipe
        .generate_set(params, set, &mut SeededNoise::new(1), &mut go)
        .unwrap_err();
    assert!(matches!(e, DiffusionError::InvalidInput { .. }), "{e}");
    e.to_string()
}

#[test]
fn bad_sets_are_clear_errors() {
    let s = setup();
    let p = &s.params;
    let one = vec!["a".to_string()];

    let e = err_of(&s, p, &SetParams::first_frame(vec![]));
    assert!(e.contains("0 frames"), "{e}");
    let e = err_of(
        &s,
        p,
        &SetParams::first_frame(vec!["a".into(); MAX_BATCH + 1]),
    );
    assert!(e.contains(&format!("1 to {MAX_BATCH}")), "{e}");
    let image_set = |image: Tensor, n: usize| SetParams {
        reference: SetReference::Image(image),
        ..SetParams::first_frame(vec!["a".into(); n])
    };
    let e = err_of(
        &s,
        p,
        &image_set(
            Tensor::zeros((1, 3, 32, 32), DType::F32, &Device::Cpu).unwrap(),
            MAX_BATCH,
        ),
    );
    assert!(e.contains(&format!("1 to {}", MAX_BATCH - 1)), "{e}");

    let e = err_of(
        &s,
        p,
        &image_set(
            Tensor::zeros((1, 3, 16, 32), DType::F32, &Device::Cpu).unwrap(),
            2,
        ),
    );
    assert!(
        e.contains("reference image") && e.contains("[1, 3, 32, 32]"),
        "{e}"
    );

    for strength in [-0.5, 1.01, f64::NAN] {
        let set = SetParams {
            attention: ReferenceAttention {
                strength,
                ..Default::default()
            },
            ..SetParams::first_frame(one.clone())
        };
        let e = err_of(&s, p, &set);
        assert!(e.contains("strength"), "{e}");
    }

    let batch2 = GenerationParams {
        batch: 2,
        ..p.clone()
    };
    let e = err_of(&s, &batch2, &SetParams::first_frame(one.clone()));
    assert!(e.contains("batch"), "{e}");

    let bad_init = SetParams {
        init: Some((
            Tensor::zeros((1, 3, 32, 32), DType::F32, &Device::Cpu).unwrap(),
            1.5,
        )),
        ..SetParams::first_frame(one)
    };
    let e = err_of(&s, p, &bad_init);
    assert!(e.contains("init strength"), "{e}");
}

#[test]
fn cancel_stops_a_set() {
    let s = setup();
    let e = s
        .pipe
        .generate_set(
            &s.params,
            &SetParams::first_frame(s.prompts.clone()),
            &mut SeededNoise::new(3),
            &mut |p| {
                if p.step == 2 {
                    Control::Cancel
                } else {
                    Control::Continue
                }
            },
        )
        .unwrap_err();
    assert!(
        matches!(e, DiffusionError::Cancelled { step: 2, total: 4 }),
        "{e}"
    );
}
