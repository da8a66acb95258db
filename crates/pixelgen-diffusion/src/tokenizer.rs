//! CLIP's byte-level BPE tokenizer, read from a folder's `tokenizer.json` (what `transformers` 5
//! writes) or its `vocab.json` + `merges.txt` (the published SDXL folders).
//!
//! It reproduces transformers' `CLIPTokenizer` as SDXL pipelines call it (`padding="max_length"`,
//! `truncation=True`): NFC, whitespace runs to one space, lowercase; CLIP's word split; byte-level
//! BPE with `</w>` word ends; then `<|startoftext|> ... <|endoftext|>` truncated to
//! `model_max_length` (77) and padded with the folder's pad token (`<|endoftext|>` for SDXL's
//! first tokenizer, `!` for the second).
//!
//! Both forms give the same ids: a `tokenizer.json` supplies the vocabulary, the merges and the
//! added tokens of a CLIP BPE model, and the normalizer, word split, framing, truncation and
//! padding are this module's, exactly as for `vocab.json` + `merges.txt`. (A `tokenizer.json`
//! may carry truncation or padding settings saved with it, or the pre-4.17 CLIP pipeline that
//! `transformers` refuses; none of that changes the ids here.)

use std::path::{Path, PathBuf};

use tokenizers::models::ModelWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Lowercase, NFC, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

use crate::config::{TokenizerForm, missing_tokenizer, read_json};
use crate::error::{DiffusionError, Result};

/// CLIP's word pattern: the special tokens, English contractions, letter runs, single digits,
/// and runs of other non-space characters.
const CLIP_WORDS: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";

/// The ids of one prompt, framed and padded to the tokenizer's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// `max_len` ids: BOS, the prompt's tokens, EOS, then padding.
    pub ids: Vec<u32>,
    /// How many of the prompt's tokens were cut to fit (0 if none): worth a warning to the user.
    pub truncated: usize,
}

/// A CLIP tokenizer as found in `tokenizer/` and `tokenizer_2/` of an SDXL folder.
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    inner: Tokenizer,
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    max_len: usize,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum TokenEntry {
    Plain(String),
    Full { content: String },
}

impl TokenEntry {
    fn content(&self) -> &str {
        match self {
            TokenEntry::Plain(s) => s,
            TokenEntry::Full { content } => content,
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct TokenizerFiles {
    pad_token: Option<TokenEntry>,
    model_max_length: Option<f64>,
}

impl ClipTokenizer {
    /// Loads a tokenizer folder: `tokenizer.json`, or when there is none `vocab.json` +
    /// `merges.txt`; and optionally `special_tokens_map.json` / `tokenizer_config.json` for the
    /// pad token and length. Both forms give the same ids. A folder with neither is an error
    /// naming both.
    pub fn from_folder(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config: TokenizerFiles = optional_json(dir, "tokenizer_config.json")?;
        let special: TokenizerFiles = optional_json(dir, "special_tokens_map.json")?;
        let pad = special
            .pad_token
            .or(config.pad_token)
            .map(|t| t.content().to_string())
            .unwrap_or_else(|| EOS.to_string());
        // Some configs say "no limit" with a huge number; CLIP's position table has 77 entries.
        let max_len = config
            .model_max_length
            .filter(|&n| (3.0..=4096.0).contains(&n))
            .map_or(77, |n| n as usize);
        match TokenizerForm::of(dir) {
            Some(TokenizerForm::Json) => {
                Self::from_tokenizer_json(dir.join("tokenizer.json"), &pad, max_len)
            }
            Some(TokenizerForm::VocabMerges) => Self::from_files(
                dir.join("vocab.json"),
                dir.join("merges.txt"),
                &pad,
                max_len,
            ),
            None => Err(missing_tokenizer(dir, "")),
        }
    }

    /// Builds the tokenizer from `vocab.json` and `merges.txt`, padding with `pad_token` to `max_len`.
    pub fn from_files(
        vocab: impl AsRef<Path>,
        merges: impl AsRef<Path>,
        pad_token: &str,
        max_len: usize,
    ) -> Result<Self> {
        let (vocab, merges) = (vocab.as_ref(), merges.as_ref());
        for file in [vocab, merges] {
            require_file(file)?;
        }
        check_max_len(max_len)?;
        let fail = failure(vocab);
        let bpe = BPE::from_file(&path_str(vocab)?, &path_str(merges)?)
            .unk_token(EOS.to_string())
            .continuing_subword_prefix(String::new())
            .end_of_word_suffix("</w>".to_string())
            .build()
            .map_err(|e| {
                fail(format!(
                    "cannot build BPE from vocab.json + merges.txt: {e}"
                ))
            })?;
        Self::clip(Tokenizer::new(bpe), vocab, pad_token, max_len)
    }

    /// Builds the tokenizer from a `tokenizer.json` holding a CLIP BPE model (byte-level, `</w>`
    /// word ends), padding with `pad_token` to `max_len`. Its vocabulary, merges and added tokens
    /// are used; its normalizer, pre-tokenizer, post-processor, truncation and padding are
    /// replaced by CLIP's as in [`ClipTokenizer::from_files`], so the ids are the same as from
    /// the `vocab.json` + `merges.txt` of the same tokenizer.
    pub fn from_tokenizer_json(
        file: impl AsRef<Path>,
        pad_token: &str,
        max_len: usize,
    ) -> Result<Self> {
        let file = file.as_ref();
        require_file(file)?;
        check_max_len(max_len)?;
        let fail = failure(file);
        let inner = Tokenizer::from_file(file)
            .map_err(|e| fail(format!("cannot read tokenizer.json: {e}")))?;
        match inner.get_model() {
            ModelWrapper::BPE(bpe) => {
                let clip_like = bpe.end_of_word_suffix.as_deref() == Some("</w>")
                    && bpe
                        .continuing_subword_prefix
                        .as_deref()
                        .unwrap_or("")
                        .is_empty()
                    && bpe.dropout.is_none()
                    && !bpe.ignore_merges
                    && !bpe.byte_fallback;
                if !clip_like {
                    return Err(fail(
                        "its BPE model is not CLIP's (CLIP's has `end_of_word_suffix` `</w>`, no \
                         continuing-subword prefix, no dropout, `ignore_merges` and \
                         `byte_fallback` false)"
                            .into(),
                    ));
                }
            }
            _ => {
                return Err(fail(
                    "it holds no BPE model; SDXL's tokenizers are CLIP byte-level BPE".into(),
                ));
            }
        }
        Self::clip(inner, file, pad_token, max_len)
    }

    /// Puts CLIP's pipeline around a BPE model (`inner` may come with settings of its own from a
    /// `tokenizer.json`: every one that affects the ids is replaced here).
    fn clip(mut inner: Tokenizer, source: &Path, pad_token: &str, max_len: usize) -> Result<Self> {
        let fail = failure(source);
        let whitespace = Replace::new(
            tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
            " ",
        )
        .map_err(|e| fail(e.to_string()))?;
        inner
            .with_normalizer(Some(NormalizerWrapper::Sequence(NormalizerSequence::new(
                vec![
                    NormalizerWrapper::NFC(NFC),
                    NormalizerWrapper::Replace(whitespace),
                    NormalizerWrapper::Lowercase(Lowercase),
                ],
            ))))
            .map_err(|e| fail(e.to_string()))?;
        let words = Split::new(
            SplitPattern::Regex(CLIP_WORDS.into()),
            SplitDelimiterBehavior::Removed,
            true,
        )
        .map_err(|e| fail(e.to_string()))?;
        inner.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(
            PreTokenizerSequence::new(vec![
                PreTokenizerWrapper::Split(words),
                PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, true)),
            ]),
        )));
        // Framing, truncation and padding are done in `encode` (a `tokenizer.json` saved after a
        // padded call carries `truncation` and `padding`: they would hide the truncated count).
        inner.with_post_processor(None::<tokenizers::PostProcessorWrapper>);
        inner
            .with_truncation(None)
            .map_err(|e| fail(e.to_string()))?;
        inner.with_padding(None);
        // transformers registers the pad token as special too, so SDXL's second tokenizer reads a
        // `!` in the prompt as its own token (`!!` -> `!`, `!` rather than `!`, `!</w>`).
        inner
            .add_special_tokens([
                AddedToken::from(BOS, true),
                AddedToken::from(EOS, true),
                AddedToken::from(pad_token, true),
            ])
            .map_err(|e| fail(e.to_string()))?;
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| fail(format!("the vocabulary has no `{token}` token")))
        };
        Ok(Self {
            bos_id: id(BOS)?,
            eos_id: id(EOS)?,
            pad_id: id(pad_token)?,
            max_len,
            inner,
        })
    }

    /// Tokenizes `prompt` to exactly [`max_len`](Self::max_len) ids, truncating long prompts.
    pub fn encode(&self, prompt: &str) -> Result<Tokens> {
        let encoding = self
            .inner
            .encode(prompt, false)
            .map_err(|e| DiffusionError::Tokenizer {
                path: PathBuf::from("<prompt>"),
                message: e.to_string(),
            })?;
        let body = encoding.get_ids();
        let room = self.max_len - 2;
        let kept = body.len().min(room);
        let mut ids = Vec::with_capacity(self.max_len);
        ids.push(self.bos_id);
        ids.extend_from_slice(&body[..kept]);
        ids.push(self.eos_id);
        ids.resize(self.max_len, self.pad_id);
        Ok(Tokens {
            ids,
            truncated: body.len() - kept,
        })
    }

    /// Length of every encoded prompt (77 for SDXL).
    pub fn max_len(&self) -> usize {
        self.max_len
    }
    /// Id of `<|startoftext|>`.
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }
    /// Id of `<|endoftext|>`.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }
    /// Id of the padding token.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
}

fn require_file(file: &Path) -> Result<()> {
    if file.is_file() {
        return Ok(());
    }
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Err(DiffusionError::MissingFile { dir, file: name })
}

fn check_max_len(max_len: usize) -> Result<()> {
    if max_len < 3 {
        return Err(crate::error::invalid(
            "max_len",
            format!("{max_len}: needs room for BOS, EOS and a token"),
        ));
    }
    Ok(())
}

/// A tokenizer error about `path` (the vocabulary or `tokenizer.json`).
fn failure(path: &Path) -> impl Fn(String) -> DiffusionError + '_ {
    move |message| DiffusionError::Tokenizer {
        path: path.to_path_buf(),
        message,
    }
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| DiffusionError::Tokenizer {
            path: path.to_path_buf(),
            message: "the path is not valid UTF-8; move the model to a UTF-8 path".into(),
        })
}

fn optional_json(dir: &Path, file: &str) -> Result<TokenizerFiles> {
    if dir.join(file).is_file() {
        read_json(dir, file, "tokenizer config")
    } else {
        Ok(TokenizerFiles::default())
    }
}
