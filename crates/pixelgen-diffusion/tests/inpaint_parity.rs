//! Inpaint against diffusers 0.42.1 (`StableDiffusionXLInpaintPipeline`, 4 steps, CFG 5, the
//! folder's Euler scheduler) from `tests/fixtures/inpaint/` (made by
//! `tools/parity/make_inpaint_fixtures.py`), replaying every noise draw diffusers made: the
//! tiny model's 4-channel UNet at strength 1 and 0.75, with a blurred mask, and a 9-channel
//! inpainting UNet at strength 1 and 0.75. Then the bad inputs, refused before any work.
//!
//! Tolerance as `pipeline_parity.rs`: max |ours - reference| / max |reference| <= 1e-4 for the
//! latents after every step, the final latents and the decoded image; masks exactly.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use common::{expected, fixtures, recorded_params, rel_err};
use pixelgen_diffusion::{
    Control, GenerationParams, InpaintParams, RecordedNoise, SdxlPipeline, SeededNoise, blur_mask,
    prepare_mask,
};

const RTOL: f64 = 1e-4;

fn check(name: &str, ours: &Tensor, reference: &Tensor) {
    let err = rel_err(ours, reference);
    println!("{name}: rel err {err:.2e}");
    assert!(err <= RTOL, "{name}: rel err {err:e} > {RTOL:e}");
}

fn same(name: &str, ours: &Tensor, reference: &Tensor) {
    let a: Vec<f32> = ours.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = reference.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, b, "{name} differs");
}

struct Fixture {
    ex: HashMap<String, Tensor>,
    params: GenerationParams,
    draws: HashMap<String, usize>,
    blur: f64,
    blur_radii: Vec<String>,
}

fn fixture() -> Fixture {
    let path = fixtures().join("inpaint/expected.safetensors");
    let (ex, meta) = expected(&path);
    let params = recorded_params(&meta, "prompt");
    let draws = serde_json::from_str(&meta["draws"]).unwrap();
    let blur = meta["mask_blur"].parse().unwrap();
    let blur_radii = serde_json::from_str(&meta["blur_radii"]).unwrap();
    Fixture {
        ex,
        params,
        draws,
        blur,
        blur_radii,
    }
}

fn tiny() -> SdxlPipeline {
    SdxlPipeline::load(fixtures().join("tiny-sdxl"), None, DType::F32, &Device::Cpu).unwrap()
}

/// The tiny model with its UNet replaced by the 9-channel one (a copy in the temp directory).
fn tiny_nine() -> SdxlPipeline {
    let dir = std::env::temp_dir().join(format!("pixelgen-inpaint-nine-{}", std::process::id()));
    copy_dir(&fixtures().join("tiny-sdxl"), &dir);
    std::fs::remove_dir_all(dir.join("unet")).unwrap();
    copy_dir(&fixtures().join("inpaint/unet-9ch"), &dir.join("unet"));
    let pipe = SdxlPipeline::load(&dir, None, DType::F32, &Device::Cpu).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    pipe
}

fn copy_dir(from: &PathBuf, to: &PathBuf) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn run_case(pipe: &SdxlPipeline, fx: &Fixture, case: &str, strength: f64, blur: f64) {
    let ex = &fx.ex;
    let n = fx.draws[case];
    let mut noise = RecordedNoise::new((0..n).map(|i| ex[&format!("{case}.noise.{i}")].clone()));
    let options = InpaintParams {
        strength,
        mask_blur: blur,
    };
    let mask = prepare_mask(&ex["mask"], &fx.params, blur).unwrap();
    same(
        &format!("{case} mask"),
        &mask,
        &ex[&format!("{case}.mask_pixels")],
    );
    let mut steps = Vec::new();
    let out = pipe
        .inpaint(
            &fx.params,
            &ex["image"],
            &ex["mask"],
            &options,
            &mut noise,
            &mut |p| {
                steps.push(p.latents.clone());
                Control::Continue
            },
        )
        .unwrap();
    assert_eq!(noise.remaining(), 0, "{case}: every recorded draw used");
    let expected_steps = (0..).take_while(|i| ex.contains_key(&format!("{case}.step{i}.latents")));
    assert_eq!(steps.len(), expected_steps.count());
    for (i, s) in steps.iter().enumerate() {
        check(
            &format!("{case} step {i}"),
            s,
            &ex[&format!("{case}.step{i}.latents")],
        );
    }
    check(
        &format!("{case} latents"),
        &out.latents,
        &ex[&format!("{case}.latents")],
    );
    check(
        &format!("{case} image"),
        &out.image,
        &ex[&format!("{case}.image")],
    );
}

#[test]
fn four_channel_inpaint_matches_diffusers() {
    let fx = fixture();
    let pipe = tiny();
    run_case(&pipe, &fx, "s100", 1.0, 0.0);
    run_case(&pipe, &fx, "s075", 0.75, 0.0);
    run_case(&pipe, &fx, "blur", 0.75, fx.blur);
}

#[test]
fn nine_channel_inpaint_matches_diffusers() {
    let fx = fixture();
    let pipe = tiny_nine();
    run_case(&pipe, &fx, "nine", 1.0, 0.0);
    run_case(&pipe, &fx, "nine075", 0.75, 0.0);
    // An inpainting UNet runs only in inpaint.
    let err = pipe
        .txt2img(&fx.params, &mut SeededNoise::new(1), &mut |_| {
            Control::Continue
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("inpaint"), "{err}");
}

#[test]
fn mask_blur_matches_pil() {
    let fx = fixture();
    same(
        "blurred",
        &blur_mask(&fx.ex["mask"], fx.blur).unwrap(),
        &fx.ex["blurred"],
    );
    // A random 8-bit 32x24 mask at fractional radii and radii past the image's size.
    let noisy = &fx.ex["blur.noisy"];
    for r in &fx.blur_radii {
        let ours = blur_mask(noisy, r.parse().unwrap()).unwrap();
        same(
            &format!("blur r {r}"),
            &ours,
            &fx.ex[&format!("blur.noisy.r{r}")],
        );
    }
}

#[test]
fn bad_inputs_are_refused_before_any_work() {
    let fx = fixture();
    let pipe = tiny();
    let p = &fx.params;
    let (image, mask) = (&fx.ex["image"], &fx.ex["mask"]);
    let dev = Device::Cpu;
    let ok = InpaintParams::default();
    let err = |p: &GenerationParams, image: &Tensor, mask: &Tensor, o: &InpaintParams| {
        // An empty RecordedNoise: any draw (any work) would fail with "ran out".
        let e = pipe
            .inpaint(p, image, mask, o, &mut RecordedNoise::new([]), &mut |_| {
                Control::Continue
            })
            .unwrap_err()
            .to_string();
        assert!(!e.contains("ran out"), "work started: {e}");
        e
    };
    let small = Tensor::ones((1, 1, 16, 16), DType::F32, &dev).unwrap();
    assert!(err(p, image, &small, &ok).contains("expected [1, 1, 32, 32]"));
    let empty = Tensor::zeros((1, 1, 32, 32), DType::F32, &dev).unwrap();
    assert!(err(p, image, &empty, &ok).contains("nothing to repaint"));
    for bad in [f32::NAN, 2.0, -1.0] {
        let m = (mask.clone() * 0.0).unwrap();
        let m = (m + Tensor::full(bad, (1, 1, 32, 32), &dev).unwrap()).unwrap();
        assert!(err(p, image, &m, &ok).contains("[0, 1]"));
    }
    let gray = Tensor::zeros((1, 1, 32, 32), DType::F32, &dev).unwrap();
    assert!(err(p, &gray, mask, &ok).contains("expected [1, 3, 32, 32]"));
    let two = Tensor::cat(&[image, image], 0).unwrap();
    assert!(err(p, &two, mask, &ok).contains("expected [1, 3, 32, 32]"));
    let nan_image = (image * f64::NAN).unwrap();
    assert!(err(p, &nan_image, mask, &ok).contains("inpaint image"));
    let batch = GenerationParams {
        batch: 2,
        ..p.clone()
    };
    assert!(err(&batch, image, mask, &ok).contains("batch of 2"));
    for strength in [0.0, 1.5, f64::NAN] {
        let o = InpaintParams {
            strength,
            ..ok.clone()
        };
        assert!(err(p, image, mask, &o).contains("strength"));
    }
    for mask_blur in [-1.0, f64::INFINITY, 1000.0] {
        let o = InpaintParams {
            mask_blur,
            ..ok.clone()
        };
        assert!(err(p, image, mask, &o).contains("mask_blur"));
    }
    // A region no latent cell's top-left pixel falls in (row 1, columns 1-2): nothing repainted.
    let mut v = vec![0f32; 32 * 32];
    v[32 + 1] = 1.0;
    v[32 + 2] = 1.0;
    let speck = Tensor::from_vec(v, (1, 1, 32, 32), &dev).unwrap();
    assert!(err(p, image, &speck, &ok).contains("latent cell"));
}

/// A full mask is allowed: everything is repainted, and at strength 1 the image does not
/// matter (a 4-channel UNet: the known region is empty).
#[test]
fn full_mask_repaints_everything() {
    let fx = fixture();
    let pipe = tiny();
    let full = Tensor::ones((1, 1, 32, 32), DType::F32, &Device::Cpu).unwrap();
    let run = |image: &Tensor| {
        pipe.inpaint(
            &fx.params,
            image,
            &full,
            &InpaintParams::default(),
            &mut SeededNoise::new(3),
            &mut |_| Control::Continue,
        )
        .unwrap()
        .latents
    };
    let a = run(&fx.ex["image"]);
    let b = run(&(&fx.ex["image"] * 0.5).unwrap());
    same("full mask", &a, &b);
}

/// Every sampler inpaints (the blend noises the image to each sampler's next level), and with
/// a 4-channel UNet the final latents outside the mask are the clean image latents: a second run
/// with another mask that keeps the same cells gives the same latents there.
#[test]
fn every_sampler_keeps_the_known_region() {
    let fx = fixture();
    let pipe = tiny();
    let latent_mask = &fx.ex["s075.mask_latent"];
    let keep = latent_mask.affine(-1.0, 1.0).unwrap();
    for kind in pixelgen_diffusion::SchedulerKind::ALL {
        let params = GenerationParams {
            sampler: Some(kind),
            ..fx.params.clone()
        };
        let run = |strength: f64| {
            pipe.inpaint(
                &params,
                &fx.ex["image"],
                &fx.ex["mask"],
                &InpaintParams {
                    strength,
                    mask_blur: 0.0,
                },
                &mut SeededNoise::new(9),
                &mut |_| Control::Continue,
            )
            .unwrap()
        };
        let (a, b) = (run(1.0), run(0.5));
        // Same seed: the same image-encode draw, so the same clean latents outside the mask.
        let outside = |t: &Tensor| t.broadcast_mul(&keep).unwrap();
        check(
            &format!("{kind:?} kept region"),
            &outside(&a.latents),
            &outside(&b.latents),
        );
        let inside = (a.latents - b.latents).unwrap().abs().unwrap();
        let inside: f32 = inside
            .broadcast_mul(latent_mask)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(inside > 0.0, "{kind:?}: strength changes the masked region");
    }
}
