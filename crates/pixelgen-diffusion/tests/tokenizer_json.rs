//! Tokenizer folders saved as `tokenizer.json` only (what transformers 5 writes: no `vocab.json`
//! / `merges.txt`), from `tests/fixtures/tokenizer-json/` made by
//! `tools/parity/make_tokenizer_json_fixture.py` out of the tiny SDXL's tokenizers (issue #11).
//!
//! Both forms must give exactly the ids transformers 5.24 recorded (`expected.json`), and a
//! model folder whose tokenizers are `tokenizer.json` only must load and generate exactly the
//! same images as the original folder, as a diffusers folder and as the config folder of a
//! single-file checkpoint.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::{fixtures, tiny_model};
use pixelgen_diffusion::config::TokenizerForm;
use pixelgen_diffusion::registry::Registry;
use pixelgen_diffusion::{
    ClipTokenizer, Control, DiffusionError, GenerationParams, SdxlConfigs, SdxlPipeline,
    SdxlWeights, SeededNoise,
};

const FOLDERS: [&str; 2] = ["tokenizer", "tokenizer_2"];

#[derive(serde::Deserialize)]
struct Expected {
    prompts: BTreeMap<String, String>,
    ids: BTreeMap<String, Vec<u32>>,
    untruncated_len: BTreeMap<String, usize>,
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(fixtures().join("tokenizer-json/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn json_tokenizers() -> PathBuf {
    fixtures().join("tokenizer-json")
}

/// A fresh empty folder under the system temp folder.
fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pixelgen-tokjson-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The tiny SDXL with its tokenizer folders replaced by the `tokenizer.json`-only ones.
fn json_model(name: &str) -> PathBuf {
    let dir = temp(name);
    for entry in std::fs::read_dir(tiny_model()).unwrap() {
        let entry = entry.unwrap();
        let file_name = entry.file_name();
        let name = file_name.to_str().unwrap();
        let source = if FOLDERS.contains(&name) {
            json_tokenizers().join(name)
        } else {
            entry.path()
        };
        if source.is_dir() {
            copy_dir(&source, &dir.join(name));
        } else {
            std::fs::copy(&source, dir.join(name)).unwrap();
        }
    }
    for folder in FOLDERS {
        assert_eq!(
            TokenizerForm::of(&dir.join(folder)),
            Some(TokenizerForm::Json)
        );
        assert!(!dir.join(folder).join("vocab.json").exists());
        assert!(!dir.join(folder).join("merges.txt").exists());
    }
    dir
}

#[test]
fn the_fixture_is_in_the_tokenizer_json_form_only() {
    for folder in FOLDERS {
        let json = json_tokenizers().join(folder);
        assert_eq!(TokenizerForm::of(&json), Some(TokenizerForm::Json));
        for f in ["vocab.json", "merges.txt"] {
            assert!(!json.join(f).exists(), "{folder}/{f}");
        }
        let original = tiny_model().join(folder);
        assert!(!original.join("tokenizer.json").exists());
        assert_eq!(
            TokenizerForm::of(&original),
            Some(TokenizerForm::VocabMerges)
        );
    }
}

#[test]
fn both_forms_give_the_ids_transformers_recorded() {
    let ex = expected();
    assert!(ex.prompts.len() >= 6);
    let mut truncated_somewhere = false;
    for folder in FOLDERS {
        let from_vocab = ClipTokenizer::from_folder(tiny_model().join(folder)).unwrap();
        let from_json = ClipTokenizer::from_folder(json_tokenizers().join(folder)).unwrap();
        for tok in [&from_vocab, &from_json] {
            assert_eq!(tok.max_len(), 77);
            assert_eq!(tok.bos_id(), from_vocab.bos_id());
            assert_eq!(tok.eos_id(), from_vocab.eos_id());
            assert_eq!(tok.pad_id(), from_vocab.pad_id());
        }
        for (name, prompt) in &ex.prompts {
            let key = format!("{folder}.{name}");
            let want = &ex.ids[&key];
            let cut = ex.untruncated_len[&key].saturating_sub(77);
            truncated_somewhere |= cut > 0;
            for (form, tok) in [("vocab.json", &from_vocab), ("tokenizer.json", &from_json)] {
                let got = tok.encode(prompt).unwrap();
                assert_eq!(&got.ids, want, "{key} ({form}): {prompt:?}");
                assert_eq!(got.truncated, cut, "{key} ({form}): truncated count");
            }
        }
    }
    assert!(truncated_somewhere, "a prompt must exceed 77 tokens");
    // SDXL's second tokenizer pads with `!` (id 0), the first with `<|endoftext|>`.
    let t2 = ClipTokenizer::from_folder(json_tokenizers().join("tokenizer_2")).unwrap();
    assert_eq!(t2.pad_id(), 0);
    let t1 = ClipTokenizer::from_folder(json_tokenizers().join("tokenizer")).unwrap();
    assert_eq!(t1.pad_id(), t1.eos_id());
}

/// transformers saves a tokenizer's truncation and padding settings into `tokenizer.json` after
/// a padded call, and it may hold an older pipeline: the ids and the truncated count must not
/// change.
#[test]
fn settings_saved_in_tokenizer_json_do_not_change_the_ids() {
    let ex = expected();
    let dir = temp("settings");
    copy_dir(&json_tokenizers().join("tokenizer_2"), &dir);
    let path = dir.join("tokenizer.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["truncation"] = serde_json::json!({
        "direction": "Right", "max_length": 77, "strategy": "LongestFirst", "stride": 0
    });
    json["padding"] = serde_json::json!({
        "strategy": {"Fixed": 77}, "direction": "Right", "pad_to_multiple_of": null,
        "pad_id": 0, "pad_type_id": 0, "pad_token": "!"
    });
    // The CLIP pipeline of transformers < 4.17 (whitespace split, no lowercasing).
    json["normalizer"] = serde_json::Value::Null;
    json["pre_tokenizer"] = serde_json::json!({
        "type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
        ]
    });
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let tok = ClipTokenizer::from_folder(&dir).unwrap();
    for (name, prompt) in &ex.prompts {
        let key = format!("tokenizer_2.{name}");
        let got = tok.encode(prompt).unwrap();
        assert_eq!(got.ids, ex.ids[&key], "{key}");
        assert_eq!(got.truncated, ex.untruncated_len[&key].saturating_sub(77));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tokenizer_json_that_is_not_clip_bpe_is_a_clear_error() {
    let dir = temp("wordpiece");
    copy_dir(&json_tokenizers().join("tokenizer"), &dir);
    let path = dir.join("tokenizer.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["model"]["end_of_word_suffix"] = serde_json::Value::Null;
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let err = ClipTokenizer::from_folder(&dir).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("</w>"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn configs_load_accepts_tokenizer_json_folders() {
    let dir = json_model("configs");
    let configs = SdxlConfigs::load(&dir).unwrap();
    assert_eq!(
        configs,
        SdxlConfigs {
            dir: dir.clone(),
            ..SdxlConfigs::load(tiny_model()).unwrap()
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_folder_with_neither_form_names_both() {
    let dir = json_model("neither");
    std::fs::remove_file(dir.join("tokenizer_2/tokenizer.json")).unwrap();
    // Half of the other form is not enough either.
    std::fs::copy(
        tiny_model().join("tokenizer_2/vocab.json"),
        dir.join("tokenizer_2/vocab.json"),
    )
    .unwrap();
    let err = SdxlConfigs::load(&dir).unwrap_err();
    assert!(
        matches!(&err, DiffusionError::MissingFile { dir: d, .. } if d == &dir),
        "{err}"
    );
    let msg = err.to_string();
    for name in [
        "tokenizer_2/tokenizer.json",
        "tokenizer_2/vocab.json",
        "tokenizer_2/merges.txt",
    ] {
        assert!(msg.contains(name), "{msg}");
    }
    let msg = ClipTokenizer::from_folder(dir.join("tokenizer_2"))
        .unwrap_err()
        .to_string();
    for name in ["tokenizer.json", "vocab.json", "merges.txt"] {
        assert!(msg.contains(name), "{msg}");
    }
    // With the merges back, the vocab.json + merges.txt form loads.
    std::fs::copy(
        tiny_model().join("tokenizer_2/merges.txt"),
        dir.join("tokenizer_2/merges.txt"),
    )
    .unwrap();
    SdxlConfigs::load(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn params(prompt: &str) -> GenerationParams {
    GenerationParams {
        prompt: prompt.to_string(),
        negative_prompt: Some("Blurry, JPEG artifacts!!".into()),
        width: 32,
        height: 32,
        steps: 2,
        guidance_scale: 5.0,
        ..Default::default()
    }
}

/// The image and the truncated count of a seeded 2-step txt2img.
fn run(pipe: &SdxlPipeline, prompt: &str) -> (Tensor, usize) {
    let out = pipe
        .txt2img(&params(prompt), &mut SeededNoise::new(7), &mut |_| {
            Control::Continue
        })
        .unwrap();
    (out.image, out.truncated_tokens)
}

/// The largest absolute difference between two tensors of one shape.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn assert_identical(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.dims(), b.dims(), "{what}");
    let diff = max_abs_diff(a, b);
    assert_eq!(diff, 0.0, "{what}: images differ by up to {diff}");
}

fn long_prompt() -> String {
    expected().prompts["long"].clone()
}

#[test]
fn txt2img_with_tokenizer_json_equals_the_original_folder() {
    let dir = json_model("txt2img");
    let original = SdxlPipeline::load(tiny_model(), None, DType::F32, &Device::Cpu).unwrap();
    let json = SdxlPipeline::load(&dir, None, DType::F32, &Device::Cpu).unwrap();
    let prompt = format!("RED Potion!! {}", long_prompt());
    let (a, cut_a) = run(&original, &prompt);
    let (b, cut_b) = run(&json, &prompt);
    assert_identical("tokenizer.json folder vs original", &b, &a);
    assert!(cut_a > 0, "the prompt should be truncated");
    assert_eq!(cut_b, cut_a, "truncated_tokens");
    // The prompt reaches the image, so different ids could not pass unnoticed.
    let (other, _) = run(&json, "a blue shield");
    let moved = max_abs_diff(&other, &b);
    assert!(
        moved > 1e-4,
        "another prompt should change the image ({moved})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn single_file_checkpoint_with_a_tokenizer_json_config_folder() {
    let dir = json_model("checkpoint");
    let checkpoint = fixtures().join("checkpoint/tiny-sdxl.fp16.safetensors");
    let prompt = format!("pixel art!! {}", long_prompt());
    let image = |configs: SdxlConfigs| {
        let weights = SdxlWeights::open_single_file(&checkpoint, configs).unwrap();
        let (pipe, _) = weights.pipeline(&[], DType::F32, &Device::Cpu).unwrap();
        run(&pipe, &prompt)
    };
    let (want, cut) = image(SdxlConfigs::load(tiny_model()).unwrap());
    let (got, got_cut) = image(SdxlConfigs::load(&dir).unwrap());
    assert_identical("checkpoint + tokenizer.json configs", &got, &want);
    assert_eq!((got_cut, cut > 0), (cut, true));

    // The same through a registry entry naming the folder as the checkpoint's `config`.
    let entry = serde_json::json!({
        "tiny": {
            "base": {"local": {"path": checkpoint}},
            "config": {"local": {"path": dir}},
            "sampling": "quality"
        }
    });
    let registry = Registry::from_json(&entry.to_string()).unwrap();
    let located = registry
        .resolve("tiny")
        .unwrap()
        .locate(&temp("empty-cache"))
        .unwrap();
    assert_eq!(located.config.as_deref(), Some(dir.as_path()));
    let (pipe, _) = located
        .open()
        .unwrap()
        .pipeline(&[], DType::F32, &Device::Cpu)
        .unwrap();
    let (from_registry, _) = run(&pipe, &prompt);
    assert_identical("registry entry", &from_registry, &want);
    let _ = std::fs::remove_dir_all(&dir);
}
