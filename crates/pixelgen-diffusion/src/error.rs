//! The crate's error type: every failure is a value whose message says what to do.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running SDXL.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    /// A file the diffusers folder layout requires is absent.
    #[error("no `{file}` in {}: is this a diffusers SDXL folder?", dir.display())]
    MissingFile {
        /// The model folder that was searched.
        dir: PathBuf,
        /// The file, relative to `dir`.
        file: String,
    },
    /// A file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON config could not be parsed.
    #[error("{} is not a valid {what}: {source}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What it should hold (e.g. "UNet config").
        what: &'static str,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
    /// A caller-supplied value is out of range or inconsistent.
    #[error("invalid {name}: {message}")]
    InvalidInput {
        /// The argument or option.
        name: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// A model or scheduler option that this crate does not implement (yet).
    #[error("{feature} is not supported: {hint}")]
    Unsupported {
        /// The option and its value.
        feature: String,
        /// What to use instead.
        hint: String,
    },
    /// A safetensors file could not be read.
    #[error("cannot read safetensors {}: {message}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The reason.
        message: String,
    },
    /// A LoRA file could not be read, or does not fit the model it is applied to.
    #[error("LoRA {}: {message}", path.display())]
    Lora {
        /// The LoRA file (or the name it was given).
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A tokenizer could not be built or could not encode a prompt.
    #[error("tokenizer {}: {message}", path.display())]
    Tokenizer {
        /// The vocabulary file (or `<prompt>` for encoding errors).
        path: PathBuf,
        /// The reason.
        message: String,
    },
    /// The caller cancelled a generation through its progress callback.
    #[error("generation cancelled after step {step} of {total}")]
    Cancelled {
        /// Steps completed.
        step: usize,
        /// Steps the run would have taken.
        total: usize,
    },
    /// A model produced NaN or infinite values (typically an f16 overflow): never returned as an image.
    #[error("{what} has {count} NaN/infinite values of {total} ({dtype}): {hint}")]
    NonFinite {
        /// Which output (e.g. "VAE decode output").
        what: &'static str,
        /// How many values are not finite.
        count: usize,
        /// How many values the tensor has.
        total: usize,
        /// The dtype the model ran in.
        dtype: String,
        /// What to change.
        hint: &'static str,
    },
    /// A hub model is not (fully) in the local cache and could not be downloaded.
    #[error("model {repo} is not available locally ({reason}); missing: {}.\n{help}", missing.join(", "))]
    NotDownloaded {
        /// The hub repo id, `org/name`.
        repo: String,
        /// The hub cache folder that was searched.
        cache: PathBuf,
        /// Files (relative to the repo root) that are not there.
        missing: Box<[String]>,
        /// Why they were not downloaded.
        reason: String,
        /// What to do: a `huggingface-cli download` command and where its files go.
        help: String,
    },
    /// A request would need more memory than the device has free: refused before anything
    /// was allocated (see [`crate::memory::estimate_peak`]).
    #[error(
        "{what} needs about {} of memory but {device} has {} available: use a smaller \
         generation size, fewer frames or a smaller batch, or a GPU with more memory",
        crate::memory::format_bytes(*needed),
        crate::memory::format_bytes(*available)
    )]
    OutOfMemory {
        /// The request, e.g. "2048x2048 txt2img, batch 1, guidance on".
        what: String,
        /// The conservative peak estimate in bytes.
        needed: u64,
        /// The bytes the budget allowed (free on the device, or a fixed budget).
        available: u64,
        /// The device.
        device: String,
    },
    /// A downloaded file does not match the size or SHA-256 the hub lists for it.
    #[error(
        "`{file}` of {repo} is damaged: its {what} is {actual} but the hub lists {expected}; \
         it was removed from the cache, download it again (an interrupted connection, a proxy \
         or a mirror can cause this)"
    )]
    CorruptDownload {
        /// The hub repo id.
        repo: String,
        /// The file, relative to the repo root.
        file: String,
        /// What differs: "size" or "SHA-256".
        what: &'static str,
        /// What the hub lists.
        expected: Box<str>,
        /// What the file has.
        actual: Box<str>,
    },
    /// A tensor operation failed (shape mismatch, device error, ...).
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result with [`DiffusionError`].
pub type Result<T, E = DiffusionError> = std::result::Result<T, E>;

pub(crate) fn invalid(name: &'static str, message: impl Into<String>) -> DiffusionError {
    DiffusionError::InvalidInput {
        name,
        message: message.into(),
    }
}

pub(crate) fn unsupported(feature: impl Into<String>, hint: impl Into<String>) -> DiffusionError {
    DiffusionError::Unsupported {
        feature: feature.into(),
        hint: hint.into(),
    }
}
