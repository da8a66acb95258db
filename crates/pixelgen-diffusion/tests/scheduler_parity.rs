//! Parity of every sampler with diffusers 0.42.1, from `tests/fixtures/expected/schedulers.safetensors`
//! (made by `tools/parity/make_fixtures.py`; see `tests/fixtures/README.md`).
//!
//! Each case builds a sampler from the tiny folder's scheduler config plus the case's overrides,
//! exactly as `Kind.from_config(config, **overrides)` did in Python, then compares:
//! - timesteps: exactly (Euler's fractional Karras timesteps: 1e-6 relative);
//! - sigmas and `init_noise_sigma`: within 1e-6 relative (diffusers rounds them to f32);
//! - a trajectory of up to 8 steps (recorded model outputs and noise, our own samples carried
//!   forward): `scale_model_input` and each step within 1e-5 of the tensor's largest magnitude;
//! - img2img: the start index for strengths 0.3/0.5/0.75/1.0 exactly, `add_noise` within 1e-5.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{fixtures, rel_err};
use pixelgen_diffusion::SdxlConfigs;
use pixelgen_diffusion::config::SchedulerConfig;
use pixelgen_diffusion::scheduler::{self, Ddim, Scheduler, SchedulerKind};
use serde::Deserialize;

/// Tolerance for sigma tables and init_noise_sigma (relative, element-wise).
const SIGMA_RTOL: f64 = 1e-6;
/// Tolerance for Euler's fractional Karras timesteps, relative: diffusers maps sigmas back to
/// timesteps through numpy's SIMD `log`, which differs from libm's in the last bit.
const KARRAS_T_RTOL: f64 = 1e-6;
/// Tolerance for tensors: max |ours - diffusers| / max |diffusers|.
const TENSOR_RTOL: f64 = 1e-5;

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    kind: String,
    steps: usize,
    overrides: serde_json::Map<String, serde_json::Value>,
    eta: f64,
    recorded_steps: usize,
    strengths: Vec<f64>,
}

struct Fixture {
    tensors: HashMap<String, Tensor>,
    cases: Vec<Case>,
    base_config: serde_json::Map<String, serde_json::Value>,
}

fn load_fixture() -> Fixture {
    let path = fixtures().join("expected/schedulers.safetensors");
    let bytes = std::fs::read(&path).expect("read schedulers.safetensors");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("safetensors header");
    let meta = meta.metadata().clone().expect("metadata");
    let cases: Vec<Case> = serde_json::from_str(&meta["cases"]).expect("cases json");
    let base_config = serde_json::from_str(&meta["base_config"]).expect("base config json");
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).expect("load tensors");
    Fixture {
        tensors,
        cases,
        base_config,
    }
}

impl Fixture {
    fn get(&self, key: &str) -> &Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("fixture has no tensor `{key}`"))
    }
    fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }
    fn vec(&self, key: &str) -> Vec<f64> {
        self.get(key)
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }
    fn config(&self, case: &Case) -> SchedulerConfig {
        let mut merged = self.base_config.clone();
        for (k, v) in &case.overrides {
            merged.insert(k.clone(), v.clone());
        }
        serde_json::from_value(serde_json::Value::Object(merged)).expect("config")
    }
}

fn kind(name: &str) -> SchedulerKind {
    match name {
        "euler" => SchedulerKind::Euler,
        "euler_ancestral" => SchedulerKind::EulerAncestral,
        "dpmpp_2m" => SchedulerKind::DpmPlusPlus2M,
        "ddim" => SchedulerKind::Ddim,
        "lcm" => SchedulerKind::Lcm,
        other => panic!("unknown kind {other}"),
    }
}

fn build(case: &Case, config: &SchedulerConfig) -> Box<dyn Scheduler> {
    if case.kind == "ddim" {
        Box::new(
            Ddim::new(config, case.steps)
                .unwrap()
                .with_eta(case.eta)
                .unwrap(),
        )
    } else {
        scheduler::build(kind(&case.kind), config, case.steps).unwrap()
    }
}

#[derive(Default)]
struct Worst(HashMap<&'static str, (f64, String)>);

impl Worst {
    fn note(&mut self, what: &'static str, err: f64, case: &str) {
        let e = self.0.entry(what).or_insert((0.0, String::new()));
        if err > e.0 {
            *e = (err, case.to_string());
        }
    }
}

#[test]
fn schedulers_match_diffusers() {
    let fx = load_fixture();
    assert!(
        fx.cases.len() >= 100,
        "fixture has {} cases",
        fx.cases.len()
    );
    let mut worst = Worst::default();
    let mut failures = Vec::new();
    for case in &fx.cases {
        let p = &case.name;
        let config = fx.config(case);
        let mut s = build(case, &config);

        // Timesteps: exactly, except Euler's fractional Karras timesteps (1e-6 relative).
        let expected_t = fx.vec(&format!("{p}.timesteps"));
        let karras_euler = case.kind == "euler" && case.overrides.contains_key("use_karras_sigmas");
        let timesteps_ok = if karras_euler {
            s.timesteps().len() == expected_t.len()
                && s.timesteps().iter().zip(&expected_t).all(|(a, b)| {
                    let err = (a - b).abs() / b.abs().max(1.0);
                    worst.note("karras euler timesteps", err, p);
                    err <= KARRAS_T_RTOL
                })
        } else {
            s.timesteps() == expected_t.as_slice()
        };
        if !timesteps_ok {
            failures.push(format!(
                "{p}: timesteps {:?} != diffusers {:?}",
                s.timesteps(),
                expected_t
            ));
            continue;
        }
        // Sigmas: 1e-6 relative.
        let sigma_key = format!("{p}.sigmas");
        if fx.has(&sigma_key) {
            let expected = fx.vec(&sigma_key);
            assert_eq!(s.sigmas().len(), expected.len(), "{p}: sigma count");
            for (a, b) in s.sigmas().iter().zip(&expected) {
                let err = if *b == 0.0 {
                    a.abs()
                } else {
                    (a - b).abs() / b.abs()
                };
                worst.note("sigmas", err, p);
                if err > SIGMA_RTOL {
                    failures.push(format!("{p}: sigma {a} vs diffusers {b} (rel {err:e})"));
                }
            }
        } else {
            assert!(s.sigmas().is_empty(), "{p}: diffusers has no sigmas");
        }
        let init = fx.vec(&format!("{p}.init_noise_sigma"))[0];
        let err = (s.init_noise_sigma() - init).abs() / init;
        worst.note("init_noise_sigma", err, p);
        if err > SIGMA_RTOL {
            failures.push(format!(
                "{p}: init_noise_sigma {} vs {init}",
                s.init_noise_sigma()
            ));
        }

        // Trajectory: 1e-5 of the tensor's scale.
        let mut sample = fx.get(&format!("{p}.sample0")).clone();
        for i in 0..case.recorded_steps {
            let scaled = s.scale_model_input(&sample, i).unwrap();
            let err = rel_err(&scaled, fx.get(&format!("{p}.step{i}.scaled")));
            worst.note("scale_model_input", err, p);
            if err > TENSOR_RTOL {
                failures.push(format!("{p}: step {i} scale_model_input rel {err:e}"));
            }
            let model_output = fx.get(&format!("{p}.step{i}.model_output"));
            let noise = fx.get(&format!("{p}.step{i}.noise"));
            let noise = s.needs_noise(i).then_some(noise);
            sample = s.step(model_output, i, &sample, noise).unwrap();
            let err = rel_err(&sample, fx.get(&format!("{p}.step{i}.prev")));
            worst.note("step", err, p);
            if err > TENSOR_RTOL {
                failures.push(format!("{p}: step {i} rel {err:e}"));
            }
        }

        // img2img: start index exactly, add_noise 1e-5.
        for &strength in &case.strengths {
            let key = format!("{p}.img2img.s{}", (strength * 100.0).round() as i64);
            let expected_start = fx.vec(&format!("{key}.t_start"))[0] as usize;
            let start = scheduler::img2img_start(case.steps, strength).unwrap();
            assert_eq!(start, expected_start, "{key}: img2img start");
            if start == case.steps {
                assert!(!fx.has(&format!("{key}.noisy")));
                continue;
            }
            let original = fx.get(&format!("{p}.img2img.original"));
            let noise = fx.get(&format!("{p}.img2img.noise"));
            let noisy = s.add_noise(original, noise, start).unwrap();
            let err = rel_err(&noisy, fx.get(&format!("{key}.noisy")));
            worst.note("add_noise", err, p);
            if err > TENSOR_RTOL {
                failures.push(format!("{key}: add_noise rel {err:e}"));
            }
        }
    }
    let mut report: Vec<_> = worst.0.iter().collect();
    report.sort_by_key(|(what, _)| **what);
    for (what, (err, case)) in report {
        println!("worst {what}: {err:.3e} ({case})");
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_stochastic_samplers_refuse_to_step_without_noise() {
    let fx = load_fixture();
    let case = fx
        .cases
        .iter()
        .find(|c| c.kind == "euler_ancestral" && c.steps == 4)
        .unwrap();
    let mut s = build(case, &fx.config(case));
    let sample = fx.get(&format!("{}.sample0", case.name));
    assert!(s.needs_noise(0));
    let err = s.step(sample, 0, sample, None).unwrap_err().to_string();
    assert!(err.contains("noise"), "{err}");
    // And a wrong-shaped model output is an error, not a panic.
    let wrong = Tensor::zeros((1, 4, 2, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(s.step(&wrong, 0, sample, Some(sample)).is_err());
    assert!(s.step(sample, 99, sample, Some(sample)).is_err());
}

#[test]
fn training_tables_match_diffusers_to_the_last_f32_bit() {
    // The tables are not public API; they are checked through the sigmas of a leading-spaced
    // Euler schedule, which are the table's own sigmas at integer timesteps. torch's vectorised
    // linspace rounds ~15% of the betas differently from its scalar formula (which we follow),
    // so entries may differ by one f32 ulp (6e-8 relative): allow 2.5e-7.
    let fx = load_fixture();
    let case = fx
        .cases
        .iter()
        .find(|c| c.kind == "euler" && c.steps == 30 && c.overrides.len() == 1)
        .unwrap();
    let s = build(case, &fx.config(case));
    let ac = fx.vec("tables.scaled_linear.alphas_cumprod");
    for (i, &t) in s.timesteps().iter().enumerate() {
        if t.fract() == 0.0 {
            let a = ac[t as usize] as f32;
            let sigma = ((1.0 - a) / a).sqrt() as f64;
            let err = (s.sigmas()[i] - sigma).abs() / sigma;
            assert!(
                err <= 2.5e-7,
                "{}: sigma at t={t}: {} vs {sigma}",
                case.name,
                s.sigmas()[i]
            );
        }
    }
}

#[test]
fn the_tiny_folder_configs_all_load() {
    let dir = fixtures().join("tiny-sdxl");
    let c = SdxlConfigs::load(&dir).unwrap();
    assert_eq!(c.model_index.class_name, "StableDiffusionXLPipeline");
    assert!(c.model_index.force_zeros_for_empty_prompt);
    assert_eq!(
        c.model_index.component_class("unet"),
        Some("UNet2DConditionModel")
    );
    assert_eq!(c.model_index.component_class("feature_extractor"), None);
    assert_eq!(
        SchedulerKind::from_class_name(c.scheduler.class_name.as_deref().unwrap()).unwrap(),
        SchedulerKind::Euler
    );
    assert_eq!(c.scheduler.steps_offset, Some(1));
    assert_eq!(c.unet.addition_embed_type.as_deref(), Some("text_time"));
    assert_eq!(c.unet.block_out_channels, vec![8, 16, 16]);
    assert_eq!(c.unet.heads_per_block().unwrap(), vec![1, 2, 2]);
    assert_eq!(
        c.unet.transformer_layers_per_block.expand(3, "t").unwrap(),
        vec![1, 1, 2]
    );
    assert_eq!(
        c.unet.cross_attention_dim.expand(3, "c").unwrap(),
        vec![c.text_encoder.hidden_size + c.text_encoder_2.hidden_size; 3]
    );
    assert_eq!(
        c.unet.projection_class_embeddings_input_dim,
        Some(6 * c.unet.addition_time_embed_dim.unwrap() + c.text_encoder_2.projection_dim)
    );
    assert_eq!(c.vae.scale_factor(), 4);
    assert!((c.vae.scaling_factor - 0.13025).abs() < 1e-12);
    assert_eq!(c.text_encoder.hidden_act, "quick_gelu");
    assert_eq!(c.text_encoder_2.hidden_act, "gelu");
    // Every sampler builds from the folder's (Euler) config, as diffusers' from_config allows.
    for kind in SchedulerKind::ALL {
        let s = scheduler::build(kind, &c.scheduler, 4).unwrap();
        assert_eq!(s.timesteps().len(), 4, "{kind:?}");
    }
}

#[test]
fn a_folder_without_unet_config_says_so() {
    let src = fixtures().join("tiny-sdxl");
    let tmp = std::env::temp_dir().join(format!("pixelgen-no-unet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for dir in [
        "scheduler",
        "vae",
        "text_encoder",
        "text_encoder_2",
        "tokenizer",
        "tokenizer_2",
    ] {
        std::fs::create_dir_all(tmp.join(dir)).unwrap();
    }
    for file in [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "vae/config.json",
        "text_encoder/config.json",
        "text_encoder_2/config.json",
    ] {
        std::fs::copy(src.join(file), tmp.join(file)).unwrap();
    }
    let err = SdxlConfigs::load(&tmp).unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(err.contains("no `unet/config.json` in"), "{err}");
    assert!(err.contains("is this a diffusers SDXL folder?"), "{err}");
}
