//! Full pipelines against diffusers 0.42.1 (`StableDiffusionXLPipeline` and
//! `StableDiffusionXLImg2ImgPipeline`, 4 steps, CFG 5, the folder's Euler scheduler), from
//! `tests/fixtures/expected/pipeline.safetensors`, replaying the noise diffusers drew.
//!
//! Tolerance: max |ours - reference| / max |reference| <= 1e-4 for the latents after every step,
//! the final latents and the decoded image; the worst is printed.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{expected, fixtures, recorded_params, rel_err};
use pixelgen_diffusion::{
    Control, DiffusionError, GenerationParams, RecordedNoise, SchedulerKind, SdxlPipeline,
    SeededNoise,
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
    params: GenerationParams,
}

fn setup() -> Setup {
    let pipe =
        SdxlPipeline::load(fixtures().join("tiny-sdxl"), None, DType::F32, &Device::Cpu).unwrap();
    let path = fixtures().join("expected/pipeline.safetensors");
    let (ex, meta) = expected(&path);
    let params = recorded_params(&meta, "prompt");
    Setup { pipe, ex, params }
}

#[test]
fn txt2img_matches_diffusers_step_by_step() {
    let Setup { pipe, ex, params } = setup();
    let mut noise = RecordedNoise::new([ex["txt2img.initial_latents"].clone()]);
    let mut steps = Vec::new();
    let out = pipe
        .txt2img(&params, &mut noise, &mut |p| {
            steps.push(p.latents.clone());
            Control::Continue
        })
        .unwrap();
    assert_eq!(steps.len(), 4);
    for (i, s) in steps.iter().enumerate() {
        check(
            &format!("txt2img step {i}"),
            s,
            &ex[&format!("txt2img.step{i}.latents")],
        );
    }
    check("txt2img latents", &out.latents, &ex["txt2img.latents"]);
    check("txt2img image", &out.image, &ex["txt2img.image"]);
}

#[test]
fn img2img_matches_diffusers() {
    let Setup { pipe, ex, params } = setup();
    let mut noise = RecordedNoise::new([
        ex["img2img.encode_noise"].clone(),
        ex["img2img.add_noise_noise"].clone(),
    ]);
    let mut count = 0;
    let out = pipe
        .img2img(&params, &ex["img2img.image"], 0.75, &mut noise, &mut |p| {
            count += 1;
            assert_eq!(p.total, 3);
            Control::Continue
        })
        .unwrap();
    assert_eq!(count, 3, "strength 0.75 of 4 steps runs 3");
    assert_eq!(noise.remaining(), 0);
    check("img2img latents", &out.latents, &ex["img2img.latents"]);
    check("img2img image", &out.image, &ex["img2img.image_out"]);
}

#[test]
fn cancel_stops_the_run() {
    let Setup { pipe, params, .. } = setup();
    let err = pipe
        .txt2img(&params, &mut SeededNoise::new(1), &mut |p| {
            if p.step == 2 {
                Control::Cancel
            } else {
                Control::Continue
            }
        })
        .unwrap_err();
    assert!(
        matches!(err, DiffusionError::Cancelled { step: 2, total: 4 }),
        "{err}"
    );
}

/// Prompts past CLIP's 77 tokens run (truncated, as diffusers does) and say how much was cut.
#[test]
fn long_prompts_are_truncated_and_reported() {
    let Setup {
        pipe, mut params, ..
    } = setup();
    params.steps = 1;
    let short = pipe
        .txt2img(&params, &mut SeededNoise::new(5), &mut |_| {
            Control::Continue
        })
        .unwrap();
    assert_eq!(short.truncated_tokens, 0);
    params.prompt = "pixel art knight with a red cape ".repeat(20);
    let long = pipe
        .txt2img(&params, &mut SeededNoise::new(5), &mut |_| {
            Control::Continue
        })
        .unwrap();
    assert!(long.truncated_tokens > 50, "{}", long.truncated_tokens);
}

#[test]
fn every_sampler_runs_and_is_deterministic_per_seed() {
    let Setup {
        pipe, mut params, ..
    } = setup();
    params.steps = 3;
    for kind in SchedulerKind::ALL {
        params.sampler = Some(kind);
        params.eta = if kind == SchedulerKind::Ddim {
            0.5
        } else {
            0.0
        };
        let run = |seed| {
            pipe.txt2img(&params, &mut SeededNoise::new(seed), &mut |_| {
                Control::Continue
            })
            .unwrap()
        };
        let (a, b, c) = (run(3), run(3), run(4));
        assert_eq!(rel_err(&a.latents, &b.latents), 0.0, "{kind:?} same seed");
        assert!(
            rel_err(&a.latents, &c.latents) > 1e-3,
            "{kind:?} different seeds"
        );
        let img: Vec<f32> = a.image.flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            img.iter().all(|v| (0.0..=1.0).contains(v)),
            "{kind:?} image range"
        );
    }
}

#[test]
fn bad_requests_are_errors() {
    let Setup {
        pipe,
        ex,
        mut params,
    } = setup();
    let ok = |_: pixelgen_diffusion::Progress| Control::Continue;
    params.width = 30;
    assert!(
        pipe.txt2img(&params, &mut SeededNoise::new(1), &mut { ok })
            .is_err()
    );
    params.width = 32;
    params.steps = 0;
    assert!(
        pipe.txt2img(&params, &mut SeededNoise::new(1), &mut { ok })
            .is_err()
    );
    params.steps = 4;
    let err = pipe
        .img2img(
            &params,
            &ex["img2img.image"],
            0.1,
            &mut SeededNoise::new(1),
            &mut { ok },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("no step to run"), "{err}");
    assert!(
        pipe.img2img(
            &params,
            &ex["img2img.image"],
            1.5,
            &mut SeededNoise::new(1),
            &mut { ok }
        )
        .is_err()
    );
    let small = Tensor::zeros((1, 3, 16, 16), DType::F32, &Device::Cpu).unwrap();
    assert!(
        pipe.img2img(&params, &small, 0.5, &mut SeededNoise::new(1), &mut { ok })
            .is_err()
    );
}

#[test]
fn f16_weights_track_the_f32_reference() {
    // Half precision on the CPU exercises the dtype paths (f32 softmax and group norm, f32 VAE
    // through force_upcast). Tolerance 1e-2 relative (measured 1.7e-3): f16 keeps ~3 digits.
    let Setup { ex, params, .. } = setup();
    let pipe =
        SdxlPipeline::load(fixtures().join("tiny-sdxl"), None, DType::F16, &Device::Cpu).unwrap();
    let mut noise = RecordedNoise::new([ex["txt2img.initial_latents"].clone()]);
    let out = pipe
        .txt2img(&params, &mut noise, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(out.latents.dtype(), DType::F16);
    assert_eq!(out.image.dtype(), DType::F32);
    let err = rel_err(&out.latents, &ex["txt2img.latents"]);
    println!("f16 txt2img latents: rel err {err:.2e}");
    assert!(err < 1e-2, "f16 latents rel err {err:e}");
    let err = rel_err(&out.image, &ex["txt2img.image"]);
    println!("f16 txt2img image: rel err {err:.2e}");
    assert!(err < 1e-2, "f16 image rel err {err:e}");
}

#[test]
fn decode_refuses_nan_and_inf_instead_of_returning_an_image() {
    let Setup { pipe, .. } = setup();
    let mut v = vec![0.1f32; 4 * 8 * 8];
    v[5] = f32::NAN;
    v[9] = f32::INFINITY;
    let latents = Tensor::from_vec(v, (1, 4, 8, 8), &Device::Cpu).unwrap();
    let err = pipe.decode(&latents).unwrap_err();
    match &err {
        DiffusionError::NonFinite { what, count, .. } => {
            assert_eq!(*what, "final latents");
            assert_eq!(*count, 2);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("f32 or bf16"), "{err}");
    // The same latents without the bad values decode.
    let ok = Tensor::full(0.1f32, (1, 4, 8, 8), &Device::Cpu).unwrap();
    assert!(pipe.decode(&ok).is_ok());
}

/// A batch of two is the same as the two images made one at a time (CFG on, so the
/// conditioning is laid out as [neg, neg, pos, pos]), and each image of the batch is checked
/// against diffusers' single-image reference when it starts from the same latents.
#[test]
fn a_batch_equals_its_images_made_one_at_a_time() {
    let Setup { pipe, ex, params } = setup();
    let first = ex["txt2img.initial_latents"].clone();
    let second = (first.flip(&[3]).unwrap() * 0.5).unwrap();
    let batch = GenerationParams {
        batch: 2,
        ..params.clone()
    };
    let both = Tensor::cat(&[&first, &second], 0).unwrap();
    let out = pipe
        .txt2img(&batch, &mut RecordedNoise::new([both]), &mut |_| {
            Control::Continue
        })
        .unwrap();
    assert_eq!(out.image.dims()[0], 2);
    check(
        "batch image 0 vs diffusers",
        &out.image.narrow(0, 0, 1).unwrap(),
        &ex["txt2img.image"],
    );
    for (k, init) in [first, second].into_iter().enumerate() {
        let single = pipe
            .txt2img(&params, &mut RecordedNoise::new([init]), &mut |_| {
                Control::Continue
            })
            .unwrap();
        check(
            &format!("batch image {k} vs alone"),
            &out.image.narrow(0, k, 1).unwrap(),
            &single.image,
        );
    }
    // The two images differ (the batch is not one image twice).
    assert!(rel_err(&out.image.narrow(0, 1, 1).unwrap(), &ex["txt2img.image"]) > 100.0 * RTOL);
    let bad = GenerationParams { batch: 0, ..params };
    assert!(matches!(
        pipe.txt2img(&bad, &mut SeededNoise::new(1), &mut |_| Control::Continue),
        Err(DiffusionError::InvalidInput { .. })
    ));
}
