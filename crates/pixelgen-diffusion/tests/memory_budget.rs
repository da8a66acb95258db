//! Requests that cannot fit in memory are refused before they allocate (issue #12): the
//! estimate, the injected budget, and the hard bounds of `GenerationParams`.

mod common;

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use pixelgen_diffusion::{
    Control, DiffusionError, EstimateTarget, GenerationParams, MemoryBudget, NoiseSource,
    SdxlPipeline, SeededNoise, UNetConfig, VaeConfig, estimate_peak,
};

fn tiny() -> SdxlPipeline {
    SdxlPipeline::load(common::tiny_model(), None, DType::F32, &Device::Cpu).unwrap()
}

fn square(side: usize) -> GenerationParams {
    GenerationParams {
        prompt: "a knight".into(),
        width: side,
        height: side,
        steps: 2,
        ..Default::default()
    }
}

/// A noise source that fails the test if the pipeline asks it for anything: the first
/// allocation of a generation is its initial latents.
struct NoNoise;

impl NoiseSource for NoNoise {
    fn normal(&mut self, dims: &[usize], _: &Device) -> pixelgen_diffusion::Result<Tensor> {
        panic!("the pipeline started allocating ({dims:?}) for a request it should refuse");
    }
}

#[test]
fn estimate_grows_with_size_and_covers_the_attention_scores() {
    let pipe = tiny();
    let sizes = [64, 128, 256, 512, 2048];
    let est: Vec<u64> = sizes
        .iter()
        .map(|&s| pipe.estimate_peak_bytes(&square(s)))
        .collect();
    for (pair, s) in est.windows(2).zip(sizes.windows(2)) {
        assert!(pair[0] < pair[1], "{s:?}: {pair:?}");
    }
    let batch2 = GenerationParams {
        batch: 2,
        ..square(256)
    };
    assert!(pipe.estimate_peak_bytes(&batch2) > est[2]);

    // The self-attention score matrix of the reference path at 2048x2048, from the config:
    // the first cross-attention level, rows = 2 (guidance), f32 scores.
    let cfg = pipe.configs();
    let level = cfg
        .unet
        .down_block_types
        .iter()
        .position(|t| t == "CrossAttnDownBlock2D")
        .unwrap();
    let latent = 2048 / cfg.vae.scale_factor();
    let side = latent >> level;
    let tokens = (side * side) as u64;
    let heads = cfg.unet.heads_per_block().unwrap()[level] as u64;
    let scores = 2 * heads * tokens * tokens * 4;
    // The allocation that aborted the worker before this check existed.
    assert_eq!(scores, 68_719_476_736);
    let e = pipe.estimate_memory(&square(2048));
    assert!(e.attention_bytes >= scores, "{e:?} < {scores}");
    assert!(e.peak_bytes >= scores, "{e:?} < {scores}");
}

#[test]
fn a_request_over_budget_is_refused_before_allocating() {
    let pipe = tiny().with_memory_budget(MemoryBudget::Bytes(1 << 30));
    let start = Instant::now();
    let err = pipe
        .txt2img(&square(2048), &mut NoNoise, &mut |_| {
            panic!("no step may run");
        })
        .unwrap_err();
    let took = start.elapsed();
    match &err {
        DiffusionError::OutOfMemory {
            needed, available, ..
        } => {
            assert_eq!(*available, 1 << 30);
            assert!(*needed > *available);
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("2048x2048") && msg.contains("1.0 GiB") && msg.contains("smaller"),
        "{msg}"
    );
    assert!(took < Duration::from_secs(1), "refusal took {took:?}");
    eprintln!("2048x2048 refused in {took:?}: {msg}");

    // img2img checks before encoding its image.
    let image = Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu).unwrap();
    let small = tiny().with_memory_budget(MemoryBudget::Bytes(1024));
    let err = small
        .img2img(&square(64), &image, 0.5, &mut NoNoise, &mut |_| {
            Control::Continue
        })
        .unwrap_err();
    assert!(matches!(err, DiffusionError::OutOfMemory { .. }), "{err}");
}

#[test]
fn a_small_request_within_budget_runs() {
    let pipe = tiny();
    let params = square(64);
    let needed = pipe.estimate_peak_bytes(&params);
    let exact = pipe.clone().with_memory_budget(MemoryBudget::Bytes(needed));
    let out = exact
        .txt2img(&params, &mut SeededNoise::new(1), &mut |_| {
            Control::Continue
        })
        .unwrap();
    assert_eq!(out.image.dims(), &[1, 3, 64, 64]);
    // The default budget asks the machine, which has far more than a 64x64 image needs.
    pipe.txt2img(&params, &mut SeededNoise::new(1), &mut |_| {
        Control::Continue
    })
    .unwrap();
}

#[test]
fn hard_bounds_are_checked_before_anything_runs() {
    let pipe = tiny().with_memory_budget(MemoryBudget::Unlimited);
    let refuse = |p: GenerationParams, name: &str| {
        let start = Instant::now();
        let err = pipe
            .txt2img(&p, &mut NoNoise, &mut |_| Control::Continue)
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1));
        match err {
            DiffusionError::InvalidInput { name: n, .. } => assert_eq!(n, name, "{p:?}"),
            other => panic!("{p:?}: expected InvalidInput({name}), got {other:?}"),
        }
    };
    refuse(square(100_000), "width");
    refuse(
        GenerationParams {
            height: 4104,
            ..square(64)
        },
        "height",
    );
    refuse(square(62), "width"); // not a multiple of the VAE scale
    refuse(
        GenerationParams {
            steps: 1001,
            ..square(64)
        },
        "steps",
    );
    refuse(
        GenerationParams {
            steps: 0,
            ..square(64)
        },
        "steps",
    );
    refuse(
        GenerationParams {
            eta: f64::NAN,
            ..square(64)
        },
        "eta",
    );
    assert!(square(4096).validate(8).is_ok());
    assert!(
        GenerationParams {
            steps: 1000,
            ..square(64)
        }
        .validate(8)
        .is_ok()
    );
}

/// SDXL base 1.0's UNet and VAE configs (the keys that differ from the defaults).
fn sdxl() -> (UNetConfig, VaeConfig) {
    let unet = serde_json::json!({
        "attention_head_dim": [5, 10, 20],
        "block_out_channels": [320, 640, 1280],
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "transformer_layers_per_block": [1, 2, 10],
        "cross_attention_dim": 2048,
        "use_linear_projection": true,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816
    });
    let vae = serde_json::json!({
        "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
        "layers_per_block": 2,
        "sample_size": 1024,
        "scaling_factor": 0.13025
    });
    (
        serde_json::from_value(unet).unwrap(),
        serde_json::from_value(vae).unwrap(),
    )
}

#[test]
fn full_sdxl_at_1024_fits_a_24_gb_gpu_but_not_at_4096() {
    // The check must not refuse what real GPUs run: SDXL 1024x1024 in f16 (VAE in f32) on
    // the fused CUDA path, with 7 GB of weights resident on a 24 GB card.
    let (unet, vae) = sdxl();
    let gpu = EstimateTarget {
        unet_dtype: DType::F16,
        vae_dtype: DType::F32,
        full_im2col: false,
        scratch_bytes: 1 << 30,
    };
    let e = estimate_peak(&unet, &vae, &square(1024), gpu);
    assert!(e.peak_bytes < 16 << 30, "{e:?}");
    // The VAE's single-head mid attention at 128x128 latents: 16384^2 f32 scores.
    assert!(e.vae_bytes >= 16384 * 16384 * 4, "{e:?}");
    let e4096 = estimate_peak(&unet, &vae, &square(4096), gpu);
    assert!(e4096.peak_bytes > 80 << 30, "{e4096:?}");
    for side in [512, 1024, 2048] {
        let e = estimate_peak(&unet, &vae, &square(side), gpu);
        eprintln!(
            "SDXL {side}x{side} fused CUDA f16: peak {:.1} GiB (UNet {:.1}, scores {:.1}, VAE {:.1})",
            e.peak_bytes as f64 / (1u64 << 30) as f64,
            e.unet_bytes as f64 / (1u64 << 30) as f64,
            e.attention_bytes as f64 / (1u64 << 30) as f64,
            e.vae_bytes as f64 / (1u64 << 30) as f64,
        );
    }
}
