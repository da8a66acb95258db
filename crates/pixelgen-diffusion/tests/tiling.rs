//! Seamless tiling (circular padding in every convolution, [`GenerationParams::tiling`]) on
//! the tiny random SDXL in f32 on the CPU.
//!
//! With wrap padding the UNet and the VAE commute with circular shifts (by a multiple of
//! their downsampling factor): `f(roll(x)) == roll(f(x))` within [`RTOL`] relative. With zero
//! padding the borders differ, by far more. End to end, a whole txt2img run commutes with
//! shifts of its initial noise, so the wrap seam of a tiled image is an ordinary interior step
//! of the image generated from the shifted noise. Tiling is a parameter of each call: calls
//! with and without it run at the same time on two threads, each with its own result.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{rel_err, tiny_model};
use pixelgen_diffusion::fused::{KernelOptions, Kernels};
use pixelgen_diffusion::tiling::{pad_circular, pad_circular_dim};
use pixelgen_diffusion::{
    AutoencoderKl, Control, GenerationParams, NoiseSource, RecordedNoise, SchedulerKind,
    SdxlConfigs, SdxlPipeline, SdxlWeights, SeededNoise, UNet2DConditionModel, UNetConditioning,
    to_rgba_images,
};

/// Equivariance tolerance with tiling on (float reassociation only).
const RTOL: f64 = 1e-5;

/// torch.roll: shifts `x` by `s` along `dim`, wrapping around.
fn roll(x: &Tensor, dim: usize, s: usize) -> Tensor {
    let n = x.dim(dim).unwrap();
    let s = s % n;
    if s == 0 {
        return x.clone();
    }
    Tensor::cat(
        &[
            x.narrow(dim, n - s, s).unwrap(),
            x.narrow(dim, 0, n - s).unwrap(),
        ],
        dim,
    )
    .unwrap()
}

/// Rolls an NCHW tensor by `sh` rows and `sw` columns.
fn roll2(x: &Tensor, sh: usize, sw: usize) -> Tensor {
    roll(&roll(x, 2, sh), 3, sw)
}

fn normal(seed: u64, shape: &[usize]) -> Tensor {
    SeededNoise::new(seed).normal(shape, &Device::Cpu).unwrap()
}

/// `f(roll(x)) - roll'(f(x))` as a relative error, with tiling `on` (`f(x, tiling)`).
fn shift_error(
    on: bool,
    f: impl Fn(&Tensor, bool) -> Tensor,
    x: &Tensor,
    s: (usize, usize),
    k: usize,
) -> f64 {
    let shifted_in = f(&roll2(x, s.0, s.1), on);
    let shifted_out = roll2(&f(x, on), s.0 * k, s.1 * k);
    rel_err(&shifted_in, &shifted_out)
}

#[test]
fn circular_padding_wraps_the_opposite_edges() {
    // 1x1x2x3: [[0 1 2] [3 4 5]] padded by 1 (torch's padding_mode="circular").
    let x = Tensor::arange(0f32, 6.0, &Device::Cpu)
        .unwrap()
        .reshape((1, 1, 2, 3))
        .unwrap();
    let p = pad_circular(&x, 1).unwrap();
    assert_eq!(p.dims(), &[1, 1, 4, 5]);
    let rows: Vec<Vec<f32>> = p.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
    assert_eq!(
        rows,
        vec![
            vec![5., 3., 4., 5., 3.],
            vec![2., 0., 1., 2., 0.],
            vec![5., 3., 4., 5., 3.],
            vec![2., 0., 1., 2., 0.],
        ]
    );
    // Bad input is an error, not a panic.
    assert!(pad_circular(&x, 3).is_err(), "pad larger than the height");
    assert!(
        pad_circular_dim(&x, 3, 0, 4).is_err(),
        "pad larger than the width"
    );
    assert!(pad_circular(&x.squeeze(0).unwrap(), 1).is_err(), "not NCHW");
}

#[test]
fn unet_commutes_with_circular_shifts_when_tiling() {
    let configs = SdxlConfigs::load(tiny_model()).unwrap();
    let unet = UNet2DConditionModel::load(&configs, None, DType::F32, &Device::Cpu).unwrap();
    // Total downsampling: one factor 2 per down block but the last.
    let factor = 1 << (configs.unet.block_out_channels.len() - 1);
    let ex = candle_core::safetensors::load(
        common::fixtures().join("expected/unet.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let cond = UNetConditioning {
        encoder_hidden_states: &ex["encoder_hidden_states"],
        text_embeds: &ex["text_embeds"],
        time_ids: &ex["time_ids"],
    };
    let batch = ex["encoder_hidden_states"].dim(0).unwrap();
    let x = normal(3, &[batch, 4, 4 * factor, 6 * factor]);
    let f = |x: &Tensor, tiling: bool| unet.forward_with(x, 500.0, &cond, tiling).unwrap();
    let s = (factor, 3 * factor);
    let tiled = shift_error(true, f, &x, s, 1);
    let plain = shift_error(false, f, &x, s, 1);
    println!("UNet shift by {s:?}: tiling {tiled:.2e}, zero padding {plain:.2e}");
    assert!(tiled <= RTOL, "tiling: {tiled:e}");
    assert!(
        plain > 100.0 * RTOL,
        "zero padding should not commute: {plain:e}"
    );
}

fn vae() -> (SdxlConfigs, AutoencoderKl) {
    let configs = SdxlConfigs::load(tiny_model()).unwrap();
    let vae = AutoencoderKl::load(&configs, None, DType::F32, &Device::Cpu).unwrap();
    (configs, vae)
}

#[test]
fn vae_decoder_commutes_with_circular_shifts_when_tiling() {
    let (configs, vae) = vae();
    let f = configs.vae.scale_factor();
    let z = normal(4, &[1, 4, 6, 10]);
    let dec = |z: &Tensor, tiling: bool| vae.decode_with(z, tiling).unwrap();
    let s = (1, 3);
    let tiled = shift_error(true, dec, &z, s, f);
    let plain = shift_error(false, dec, &z, s, f);
    println!(
        "VAE decoder shift by {s:?} latents (x{f} pixels): tiling {tiled:.2e}, zero padding {plain:.2e}"
    );
    assert!(tiled <= RTOL, "tiling: {tiled:e}");
    assert!(
        plain > 100.0 * RTOL,
        "zero padding should not commute: {plain:e}"
    );
}

#[test]
fn vae_encoder_commutes_with_circular_shifts_when_tiling() {
    let (configs, vae) = vae();
    let f = configs.vae.scale_factor();
    let img = normal(5, &[1, 3, 6 * f, 10 * f]).tanh().unwrap();
    // The encoder halves the size per level: shift the image by whole latent pixels.
    let enc = |x: &Tensor, tiling: bool| vae.encode_with(x, tiling).unwrap().mean;
    let err = |tiling: bool| {
        rel_err(
            &enc(&roll2(&img, 2 * f, 3 * f), tiling),
            &roll2(&enc(&img, tiling), 2, 3),
        )
    };
    let tiled_err = err(true);
    let plain_err = err(false);
    println!(
        "VAE encoder shift by (2, 3) latents: tiling {tiled_err:.2e}, zero padding {plain_err:.2e}"
    );
    assert!(tiled_err <= RTOL, "tiling: {tiled_err:e}");
    assert!(
        plain_err > 100.0 * RTOL,
        "zero padding should not commute: {plain_err:e}"
    );
}

fn pipe() -> SdxlPipeline {
    SdxlPipeline::load(tiny_model(), None, DType::F32, &Device::Cpu).unwrap()
}

fn params(tiling: bool) -> GenerationParams {
    GenerationParams {
        prompt: "stone wall texture".into(),
        width: 64,
        height: 48,
        steps: 4,
        guidance_scale: 3.0,
        sampler: Some(SchedulerKind::Euler),
        tiling,
        ..Default::default()
    }
}

#[test]
fn txt2img_with_tiling_wraps_without_a_seam() {
    let pipe = pipe();
    let f = pipe.configs().vae.scale_factor();
    let (lh, lw) = (48 / f, 64 / f);
    let init = normal(7, &[1, 4, lh, lw]);
    let run = |tiling: bool, latents: &Tensor| {
        let mut noise = RecordedNoise::new([latents.clone()]);
        pipe.txt2img(&params(tiling), &mut noise, &mut |_| Control::Continue)
            .unwrap()
            .image
    };
    // The whole run commutes with shifts of the initial noise (by a multiple of the UNet's
    // downsampling): nothing marks an edge.
    let k = 1 << (pipe.configs().unet.block_out_channels.len() - 1);
    let s = (k, 2 * k);
    let tiled = run(true, &init);
    let e_tiled = rel_err(
        &run(true, &roll2(&init, s.0, s.1)),
        &roll2(&tiled, s.0 * f, s.1 * f),
    );
    let plain = run(false, &init);
    let e_plain = rel_err(
        &run(false, &roll2(&init, s.0, s.1)),
        &roll2(&plain, s.0 * f, s.1 * f),
    );
    println!("txt2img shift by {s:?} latents: tiling {e_tiled:.2e}, zero padding {e_plain:.2e}");
    // Images are clamped to [0, 1] after the VAE: allow a little more than the model's RTOL.
    assert!(e_tiled <= 1e-4, "tiling: {e_tiled:e}");
    assert!(e_plain > 1e-2, "zero padding: {e_plain:e}");

    // Seam scores (1: the wrap step is like an interior step; far above 1: a visible seam).
    // The tiny random model draws noise-like images whose two zero-padded borders look alike,
    // so its plain images score about 1 as well (measured: tiling 1.16, zero padding 1.04):
    // the shift test above is the proof, this only checks the editor's verdict.
    let score = |img: &Tensor| {
        let rgba = to_rgba_images(img).unwrap().remove(0);
        pixelgen_pixel::tile::seam_score(&rgba).unwrap()
    };
    let (st, sp) = (score(&tiled), score(&plain));
    println!("seam score: tiling {st:?}, zero padding {sp:?}");
    assert!(
        st.combined <= pixelgen_pixel::tile::DEFAULT_SEAM_THRESHOLD,
        "the tiled image tiles: {st:?}"
    );
}

#[test]
fn img2img_with_tiling_runs_and_bad_input_is_an_error() {
    let pipe = pipe();
    let image = normal(8, &[1, 3, 48, 64])
        .affine(0.1, 0.5)
        .unwrap()
        .clamp(0f32, 1f32)
        .unwrap();
    let out = pipe
        .img2img(
            &params(true),
            &image,
            0.6,
            &mut SeededNoise::new(1),
            &mut |_| Control::Continue,
        )
        .unwrap();
    assert_eq!(out.image.dims(), &[1, 3, 48, 64]);
    // Bad sizes stay errors with tiling on.
    let bad = GenerationParams {
        width: 63,
        ..params(true)
    };
    assert!(
        pipe.txt2img(&bad, &mut SeededNoise::new(1), &mut |_| Control::Continue)
            .is_err()
    );
    let wrong = normal(9, &[1, 3, 32, 32]);
    assert!(
        pipe.img2img(
            &params(true),
            &wrong,
            0.6,
            &mut SeededNoise::new(1),
            &mut |_| { Control::Continue }
        )
        .is_err()
    );
}

#[test]
fn tiling_defaults_off_in_json() {
    let p: GenerationParams = serde_json::from_str(r#"{"prompt": "x"}"#).unwrap();
    assert!(!p.tiling);
    let on: GenerationParams = serde_json::from_str(r#"{"prompt": "x", "tiling": true}"#).unwrap();
    assert!(on.tiling);
}

/// One txt2img run from `init` with tiling `on`.
fn run(pipe: &SdxlPipeline, tiling: bool, init: &Tensor) -> Tensor {
    let mut noise = RecordedNoise::new([init.clone()]);
    pipe.txt2img(&params(tiling), &mut noise, &mut |_| Control::Continue)
        .unwrap()
        .image
}

#[test]
fn calls_with_and_without_tiling_run_concurrently_each_with_its_own_result() {
    // Two pipelines built with different kernel options (the same computation on the CPU),
    // and one of them shared by two threads.
    let a = pipe();
    let (b, _) = SdxlWeights::open(tiny_model(), None)
        .unwrap()
        .pipeline_with(
            &[],
            DType::F32,
            &Device::Cpu,
            KernelOptions::default().with_kernels(Kernels::Reference),
        )
        .unwrap();
    assert_eq!(a.kernel_options(), &KernelOptions::default());
    assert_eq!(b.kernel_options().kernels, Kernels::Reference);
    assert_eq!(b.unet().kernel_options().kernels, Kernels::Reference);
    assert_eq!(b.vae().kernel_options().kernels, Kernels::Reference);

    let f = a.configs().vae.scale_factor();
    let init = normal(11, &[1, 4, 48 / f, 64 / f]);
    let (tiled, plain) = (run(&a, true, &init), run(&a, false, &init));
    assert!(rel_err(&tiled, &plain) > 1e-2, "tiling changes the image");
    // Each thread alternates its setting with the other's, three times, on both pipelines.
    let results = std::thread::scope(|s| {
        let threads: Vec<_> = [true, false]
            .into_iter()
            .map(|first| {
                let (a, b, init) = (&a, &b, &init);
                s.spawn(move || {
                    (0..3)
                        .map(|i| {
                            let tiling = first ^ (i % 2 == 1);
                            let pipe = if i == 1 { b } else { a };
                            (tiling, run(pipe, tiling, init))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(results.len(), 6);
    for (tiling, image) in &results {
        let expected = if *tiling { &tiled } else { &plain };
        let e = rel_err(image, expected);
        assert!(e <= 1e-6, "tiling {tiling}: {e:e} from the serial run");
    }
}
