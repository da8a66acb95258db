//! Parity of the VAE with diffusers 0.42.1 (`AutoencoderKL`), from
//! `tests/fixtures/expected/vae.safetensors`, in f32 on the CPU.
//!
//! Tolerance: max |ours - reference| / max |reference| <= 1e-4 per tensor; the worst is printed.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, rel_err};
use pixelgen_diffusion::{AutoencoderKl, SdxlConfigs};

const RTOL: f64 = 1e-4;

fn load() -> (AutoencoderKl, std::collections::HashMap<String, Tensor>) {
    let configs = SdxlConfigs::load(fixtures().join("tiny-sdxl")).unwrap();
    let vae = AutoencoderKl::load(&configs, None, DType::F32, &Device::Cpu).unwrap();
    let expected =
        candle_core::safetensors::load(fixtures().join("expected/vae.safetensors"), &Device::Cpu)
            .unwrap();
    (vae, expected)
}

#[test]
fn decode_matches_diffusers() {
    let (vae, ex) = load();
    let image = vae.decode(&ex["decode.latents"]).unwrap();
    let err = rel_err(&image, &ex["decode.image"]);
    println!("decode: rel err {err:.2e}");
    assert!(err <= RTOL, "decode rel err {err:e}");
}

#[test]
fn encode_matches_diffusers() {
    let (vae, ex) = load();
    let dist = vae.encode(&ex["encode.image"]).unwrap();
    for (name, ours) in [
        ("encode.mean", dist.mean.clone()),
        ("encode.logvar", dist.logvar.clone()),
        ("encode.std", dist.std().unwrap()),
    ] {
        let err = rel_err(&ours, &ex[name]);
        println!("{name}: rel err {err:.2e}");
        assert!(err <= RTOL, "{name} rel err {err:e}");
    }
}

#[test]
fn bad_sizes_are_errors() {
    let (vae, _) = load();
    let odd = Tensor::zeros((1, 3, 30, 32), DType::F32, &Device::Cpu).unwrap();
    let err = vae.encode(&odd).unwrap_err().to_string();
    assert!(err.contains("multiple of 4"), "{err}");
    let wrong = Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(vae.decode(&wrong).is_err());
}

#[test]
fn latent_scaling_round_trips() {
    let (vae, ex) = load();
    let z = &ex["decode.latents"];
    let scaled = vae.scale_latents(z).unwrap();
    let expected = z.affine(0.13025, 0.0).unwrap();
    assert!(rel_err(&scaled, &expected) < 1e-7);
    let back = vae.unscale_latents(&scaled).unwrap();
    assert!(rel_err(&back, z) < 1e-6);
}
