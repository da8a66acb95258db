//! Single-file SGM checkpoints against diffusers 0.42.1's `from_single_file`, from
//! `tests/fixtures/checkpoint/` made by `tools/parity/make_lora_fixtures.py`: the tiny SDXL
//! converted to the original SGM layout in fp16 (the script checks that diffusers' converter
//! gives back the folder's weights), and what diffusers computes from it in f32.
//!
//! Tolerances: against diffusers' single-file pipeline, max |ours - reference| / max |reference|
//! <= 1e-4 (f32 on the CPU, same fp16 weights upcast). Against our own folder pipeline (f32
//! weights) the only difference is the checkpoint's fp16 rounding: <= 1e-2.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, rel_err, unet_fixture_call};
use pixelgen_diffusion::checkpoint::unet_sgm_name;
use pixelgen_diffusion::{
    Control, DiffusionError, GenerationParams, Lora, RecordedNoise, ScaledLora, SdxlConfigs,
    SdxlPipeline, SdxlWeights,
};

const RTOL: f64 = 1e-4;
const FP16_RTOL: f64 = 1e-2;

fn checkpoint() -> PathBuf {
    fixtures().join("checkpoint/tiny-sdxl.fp16.safetensors")
}

fn configs() -> SdxlConfigs {
    SdxlConfigs::load(fixtures().join("tiny-sdxl")).unwrap()
}

fn load(path: PathBuf) -> (HashMap<String, Tensor>, HashMap<String, String>) {
    let ex = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    (ex, meta.metadata().clone().unwrap())
}

/// Prompt embeds (positive, negative, pooled), one UNet call and a 3-step txt2img.
fn outputs(pipe: &SdxlPipeline, init: &Tensor) -> Vec<(&'static str, Tensor)> {
    let (_, meta) = load(fixtures().join("checkpoint/expected.safetensors"));
    let (pos, neg) = pipe
        .text_encoders()
        .encode_with_negative(&meta["prompt"], Some(&meta["negative_prompt"]))
        .unwrap();
    let unet = unet_fixture_call(pipe.unet(), 500.0);
    let params = GenerationParams {
        prompt: meta["prompt"].clone(),
        negative_prompt: Some(meta["negative_prompt"].clone()),
        width: 32,
        height: 32,
        steps: meta["steps"].parse().unwrap(),
        guidance_scale: meta["guidance_scale"].parse().unwrap(),
        ..Default::default()
    };
    let mut noise = RecordedNoise::new([init.clone()]);
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

#[test]
fn single_file_checkpoint_matches_diffusers_from_single_file() {
    let weights = SdxlWeights::open_single_file(checkpoint(), configs()).unwrap();
    let (pipe, _) = weights.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
    let (ex, _) = load(fixtures().join("checkpoint/expected.safetensors"));
    for (name, ours) in outputs(&pipe, &ex["txt2img.initial_latents"]) {
        let err = rel_err(&ours, &ex[&format!("single_file.{name}")]);
        println!("single_file.{name}: rel err {err:.2e}");
        assert!(err <= RTOL, "{name}: rel err {err:e} > {RTOL:e}");
    }
}

#[test]
fn single_file_checkpoint_matches_the_folder_form() {
    let init =
        load(fixtures().join("checkpoint/expected.safetensors")).0["txt2img.initial_latents"]
            .clone();
    let single = SdxlWeights::open_single_file(checkpoint(), configs()).unwrap();
    let folder = SdxlWeights::open(fixtures().join("tiny-sdxl"), None).unwrap();
    let (a, _) = single.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
    let (b, _) = folder.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
    for ((name, x), (_, y)) in outputs(&a, &init).iter().zip(outputs(&b, &init)) {
        let err = rel_err(x, &y);
        println!("{name}: single file vs folder rel err {err:.2e} (fp16 weights)");
        assert!(err <= FP16_RTOL, "{name}: {err:e}");
        assert!(err > 0.0, "{name}: fp16 rounding should show");
    }
}

#[test]
fn lora_on_a_single_file_checkpoint_matches_all_layers() {
    let single = SdxlWeights::open_single_file(checkpoint(), configs()).unwrap();
    let folder = SdxlWeights::open(fixtures().join("tiny-sdxl"), None).unwrap();
    let lora = Arc::new(Lora::load(fixtures().join("lora/kohya.safetensors")).unwrap());
    let scaled = [ScaledLora::new(lora.clone(), 0.9)];
    let (a, report) = single.pipeline(&scaled, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(report.loras[0].matched, lora.layers().len());
    assert!(report.loras[0].unmatched.is_empty());
    let (b, _) = folder.pipeline(&scaled, DType::F32, &Device::Cpu).unwrap();
    let enc = |p: &SdxlPipeline| p.text_encoders().encode("knight", None).unwrap();
    let (x, y) = (enc(&a), enc(&b));
    let err = rel_err(&x.embeds, &y.embeds).max(rel_err(&x.pooled, &y.pooled));
    println!("LoRA on single file vs folder: rel err {err:.2e}");
    assert!(err <= FP16_RTOL, "{err:e}");
}

/// The kohya fixture with its UNet layers renamed the way kohya names them when training on
/// SGM's UNet (`lora_unet_input_blocks_4_1_proj_in`), written to a temp file.
fn sgm_named_kohya() -> PathBuf {
    let cfg = configs().unet;
    let tensors =
        candle_core::safetensors::load(fixtures().join("lora/kohya.safetensors"), &Device::Cpu)
            .unwrap();
    // Build the diffusers module names of the UNet from the folder's own weight names.
    let unet = candle_core::safetensors::load(
        fixtures().join("tiny-sdxl/unet/diffusion_pytorch_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let by_underscore: HashMap<String, String> = unet
        .keys()
        .filter_map(|k| k.strip_suffix(".weight"))
        .map(|m| (m.replace('.', "_"), m.to_string()))
        .collect();
    let mut renamed = HashMap::new();
    let mut count = 0;
    for (key, t) in tensors {
        let new = match key
            .strip_prefix("lora_unet_")
            .and_then(|r| r.split_once('.'))
        {
            Some((module, suffix)) => {
                let dotted = &by_underscore[module];
                let sgm = unet_sgm_name(&cfg, &format!("{dotted}.weight")).unwrap();
                count += 1;
                format!(
                    "lora_unet_{}.{suffix}",
                    sgm.trim_end_matches(".weight").replace('.', "_")
                )
            }
            None => key,
        };
        renamed.insert(new, t);
    }
    assert!(count > 100);
    assert!(renamed.keys().any(|k| k.contains("input_blocks_4_1")));
    let dir = std::env::temp_dir().join(format!("pixelgen-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kohya_sgm.safetensors");
    candle_core::safetensors::save(&renamed, &path).unwrap();
    path
}

#[test]
fn kohya_lora_with_sgm_unet_names_equals_the_diffusers_named_one() {
    let folder = SdxlWeights::open(fixtures().join("tiny-sdxl"), None).unwrap();
    let plain = Arc::new(Lora::load(fixtures().join("lora/kohya.safetensors")).unwrap());
    let sgm = Arc::new(Lora::load(sgm_named_kohya()).unwrap());
    let report = folder
        .check_loras(&[ScaledLora::new(sgm.clone(), 1.0)])
        .unwrap();
    assert_eq!(report.loras[0].matched, plain.layers().len());
    let (a, _) = folder
        .pipeline(&[ScaledLora::new(plain, 0.75)], DType::F32, &Device::Cpu)
        .unwrap();
    let (b, _) = folder
        .pipeline(&[ScaledLora::new(sgm, 0.75)], DType::F32, &Device::Cpu)
        .unwrap();
    let run = |p: &SdxlPipeline| unet_fixture_call(p.unet(), 500.0);
    assert_eq!(rel_err(&run(&a), &run(&b)), 0.0);
}

// ----------------------------------------------------------------------------------------------
// Bad input
// ----------------------------------------------------------------------------------------------

fn variant(name: &str, keep: impl Fn(&str) -> bool, extra: &[&str]) -> PathBuf {
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(checkpoint(), &Device::Cpu)
            .unwrap()
            .into_iter()
            .filter(|(k, _)| keep(k))
            .collect();
    for k in extra {
        tensors.insert(
            k.to_string(),
            Tensor::zeros((2, 2), DType::F16, &Device::Cpu).unwrap(),
        );
    }
    let dir = std::env::temp_dir().join(format!("pixelgen-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    path
}

fn open_err(path: PathBuf) -> String {
    match SdxlWeights::open_single_file(&path, configs()) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn checkpoint_missing_the_vae_is_a_clear_error() {
    let msg = open_err(variant(
        "novae.safetensors",
        |k| !k.starts_with("first_stage_model."),
        &[],
    ));
    assert!(msg.contains("no VAE"), "{msg}");
    assert!(msg.contains("open_single_file_with_vae"), "{msg}");
}

/// Every output of `a` equals `b`'s bit for bit.
fn assert_same(what: &str, a: &SdxlPipeline, b: &SdxlPipeline, init: &Tensor) {
    for ((name, x), (_, y)) in outputs(a, init).iter().zip(outputs(b, init)) {
        assert_eq!(rel_err(x, &y), 0.0, "{what}: {name}");
    }
}

#[test]
fn unet_only_checkpoint_falls_back_to_a_separate_vae() {
    let init =
        load(fixtures().join("checkpoint/expected.safetensors")).0["txt2img.initial_latents"]
            .clone();
    let full = SdxlWeights::open_single_file(checkpoint(), configs()).unwrap();
    let (full_pipe, _) = full.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
    let unet_only = variant(
        "unet_only.safetensors",
        |k| !k.starts_with("first_stage_model."),
        &[],
    );

    // The checkpoint's own VAE as a standalone file in the original names (`decoder.up.*`, as
    // A1111-style `sdxl_vae.safetensors` files are): the full checkpoint's outputs exactly.
    let ldm_vae: HashMap<String, Tensor> =
        candle_core::safetensors::load(checkpoint(), &Device::Cpu)
            .unwrap()
            .into_iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("first_stage_model.")
                    .map(|k| (k.to_string(), v))
            })
            .collect();
    assert!(ldm_vae.keys().any(|k| k.starts_with("decoder.up.")));
    let ldm_path = variant("vae_ldm.safetensors", |_| false, &[]);
    candle_core::safetensors::save(&ldm_vae, &ldm_path).unwrap();
    let from_file =
        SdxlWeights::open_single_file_with_vae(&unet_only, configs(), &ldm_path).unwrap();
    let (file_pipe, _) = from_file.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
    assert_same("LDM VAE file", &file_pipe, &full_pipe, &init);

    // The tiny diffusers `vae/` folder (f32, config included): the same as replacing the full
    // checkpoint's VAE with it, and different from the fp16 VAE in the image only.
    let vae_dir = fixtures().join("tiny-sdxl/vae");
    let (folder_pipe, _) = SdxlWeights::open_single_file_with_vae(&unet_only, configs(), &vae_dir)
        .unwrap()
        .pipeline(&[], DType::F32, &Device::Cpu)
        .unwrap();
    let (replaced, _) = SdxlWeights::open_single_file(checkpoint(), configs())
        .unwrap()
        .with_vae(&vae_dir)
        .unwrap()
        .pipeline(&[], DType::F32, &Device::Cpu)
        .unwrap();
    assert_same("VAE folder", &folder_pipe, &replaced, &init);
    let image = |p: &SdxlPipeline| outputs(p, &init).pop().unwrap().1;
    let fp16_vs_f32 = rel_err(&image(&folder_pipe), &image(&full_pipe));
    println!("image with the f32 VAE folder vs the checkpoint's fp16 VAE: {fp16_vs_f32:.2e}");
    assert!(
        fp16_vs_f32 > 0.0 && fp16_vs_f32 <= FP16_RTOL,
        "{fp16_vs_f32:e}"
    );

    // The folder's weight file alone (diffusers names): the same as the folder.
    let (named_pipe, _) = SdxlWeights::open_single_file_with_vae(
        &unet_only,
        configs(),
        vae_dir.join("diffusion_pytorch_model.safetensors"),
    )
    .unwrap()
    .pipeline(&[], DType::F32, &Device::Cpu)
    .unwrap();
    assert_same("diffusers VAE file", &named_pipe, &folder_pipe, &init);

    // A file that is no VAE, and a missing one: clear errors.
    let err = SdxlWeights::open_single_file_with_vae(
        &unet_only,
        configs(),
        fixtures().join("lora/peft.safetensors"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("not an SDXL VAE"), "{err}");
    let err =
        SdxlWeights::open_single_file_with_vae(&unet_only, configs(), fixtures().join("nope/vae"))
            .unwrap_err()
            .to_string();
    assert!(err.contains("nope/vae"), "{err}");
}

#[test]
fn checkpoint_of_another_family_is_a_clear_error() {
    let sd15 = variant(
        "sd15.safetensors",
        |k| k.starts_with("model.diffusion_model.") || k.starts_with("first_stage_model."),
        &["cond_stage_model.transformer.text_model.final_layer_norm.weight"],
    );
    let msg = open_err(sd15);
    assert!(msg.contains("1.x/2.x"), "{msg}");
    let flux = variant(
        "flux.safetensors",
        |_| false,
        &["double_blocks.0.img_attn.qkv.weight"],
    );
    let msg = open_err(flux);
    assert!(msg.contains("Flux"), "{msg}");
    let lora = open_err(fixtures().join("lora/peft.safetensors"));
    assert!(
        msg_has_any(&lora, &["diffusers names", "not an SDXL"]),
        "{lora}"
    );
}

fn msg_has_any(msg: &str, any: &[&str]) -> bool {
    any.iter().any(|a| msg.contains(a))
}

#[test]
fn truncated_or_empty_checkpoint_is_a_clear_error() {
    let bytes = std::fs::read(checkpoint()).unwrap();
    let dir = std::env::temp_dir().join(format!("pixelgen-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for keep in [0, 7, 1000, bytes.len() / 2] {
        let path = dir.join(format!("trunc{keep}.safetensors"));
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = SdxlWeights::open_single_file(&path, configs()).unwrap_err();
        assert!(
            matches!(err, DiffusionError::Safetensors { .. }),
            "{keep}: {err}"
        );
    }
    let err =
        SdxlWeights::open_single_file(dir.join("missing.safetensors"), configs()).unwrap_err();
    assert!(matches!(err, DiffusionError::Io { .. }), "{err}");
}

#[test]
fn checkpoint_for_a_bigger_model_fails_cleanly() {
    // The tiny checkpoint with full-size SDXL configs: shapes do not fit; an error, no panic.
    let configs = SdxlConfigs::sdxl_base(fixtures().join("tiny-sdxl")).unwrap();
    let weights = SdxlWeights::open_single_file(checkpoint(), configs).unwrap();
    assert!(weights.pipeline(&[], DType::F32, &Device::Cpu).is_err());
}
