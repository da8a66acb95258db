//! Parity of the CLIP tokenizers with transformers 5.24 (`CLIPTokenizer`, max_length padding,
//! truncation), from `tests/fixtures/expected/tokens.safetensors`. Token ids must match exactly.

mod common;

use std::collections::BTreeMap;

use candle_core::Device;
use common::fixtures;
use pixelgen_diffusion::ClipTokenizer;

#[test]
fn both_tokenizers_match_transformers_exactly() {
    let path = fixtures().join("expected/tokens.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let prompts: BTreeMap<String, String> =
        serde_json::from_str(&meta.metadata().clone().unwrap()["prompts"]).unwrap();
    assert!(prompts.len() >= 5);
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    for folder in ["tokenizer", "tokenizer_2"] {
        let tok = ClipTokenizer::from_folder(fixtures().join("tiny-sdxl").join(folder)).unwrap();
        assert_eq!(tok.max_len(), 77);
        for (name, prompt) in &prompts {
            let expected: Vec<i64> = tensors[&format!("{folder}.{name}")]
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let full_len: Vec<i64> = tensors[&format!("{folder}.{name}.untruncated_len")]
                .to_vec1()
                .unwrap();
            let got = tok.encode(prompt).unwrap();
            let got_ids: Vec<i64> = got.ids.iter().map(|&i| i as i64).collect();
            assert_eq!(got_ids, expected, "{folder} {name}: {prompt:?}");
            // untruncated_len counts BOS and EOS.
            let expected_cut = (full_len[0] as usize).saturating_sub(77);
            assert_eq!(
                got.truncated, expected_cut,
                "{folder} {name}: truncated count"
            );
        }
    }
}

#[test]
fn pad_tokens_follow_the_folders() {
    let t1 = ClipTokenizer::from_folder(fixtures().join("tiny-sdxl/tokenizer")).unwrap();
    let t2 = ClipTokenizer::from_folder(fixtures().join("tiny-sdxl/tokenizer_2")).unwrap();
    assert_eq!(t1.pad_id(), t1.eos_id());
    assert_eq!(t2.pad_id(), 0, "SDXL's second tokenizer pads with `!`");
    let empty = t2.encode("").unwrap();
    assert_eq!(&empty.ids[..3], &[t2.bos_id(), t2.eos_id(), 0]);
    assert_eq!(empty.truncated, 0);
}

#[test]
fn a_missing_vocabulary_is_a_clear_error() {
    let err = ClipTokenizer::from_folder(fixtures().join("tiny-sdxl/unet"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("vocab.json"), "{err}");
}
