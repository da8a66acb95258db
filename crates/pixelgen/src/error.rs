//! The facade's error type: every failure is a value whose message says what to do.

use std::path::PathBuf;

use pixelgen_diffusion::DiffusionError;
use pixelgen_pixel::PixelError;

/// Everything that can go wrong while preparing, generating or saving a sprite.
#[derive(Debug, thiserror::Error)]
pub enum PixelGenError {
    /// A recipe field is out of range or inconsistent.
    #[error("invalid recipe {field}: {message}")]
    InvalidRecipe {
        /// The recipe field.
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// A recipe file could not be parsed or written.
    #[error("recipe {format}: {message}")]
    RecipeFormat {
        /// `"json"` or `"ron"`.
        format: &'static str,
        /// The parser's message, with line and column where it gives them.
        message: String,
    },
    /// The requested compute device is not available in this build or on this machine.
    #[error("device {requested} is not available: {message}")]
    Device {
        /// The device that was asked for (e.g. `cuda:0`).
        requested: String,
        /// Why, and what to do (e.g. build with the `cuda` feature).
        message: String,
    },
    /// The model could not be loaded; the next request tries again.
    #[error("cannot load model {model}: {source}")]
    ModelLoad {
        /// The model source, as a user would name it.
        model: String,
        /// What the loader reported (boxed: the engine's errors are large).
        source: Box<DiffusionError>,
    },
    /// The model folder could not be read while computing its identity.
    #[error("cannot read model folder {}: {source}", path.display())]
    ModelIdentity {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Sampling failed.
    #[error("generation failed: {0}")]
    Diffusion(Box<DiffusionError>),
    /// Pixel-art post-processing failed.
    #[error("pixel-art post-processing failed: {0}")]
    Pixel(#[from] PixelError),
    /// The caller cancelled the generation.
    #[error("cancelled after step {step} of {total}")]
    Cancelled {
        /// Steps completed.
        step: usize,
        /// Steps the run would have taken.
        total: usize,
    },
    /// A file could not be written or read.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A PNG could not be encoded or decoded.
    #[error("cannot encode {}: {message}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
    /// A file to be written exists already and overwriting was not asked for.
    #[error("{} exists already: choose another name, or allow overwriting", .0.display())]
    Exists(PathBuf),
    /// An engine other than the built-in one (a test double, a remote backend) failed.
    #[error("engine: {0}")]
    Engine(String),
}

impl From<DiffusionError> for PixelGenError {
    fn from(e: DiffusionError) -> Self {
        match e {
            DiffusionError::Cancelled { step, total } => PixelGenError::Cancelled { step, total },
            other => PixelGenError::Diffusion(Box::new(other)),
        }
    }
}

/// Result with [`PixelGenError`].
pub type Result<T, E = PixelGenError> = std::result::Result<T, E>;

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> PixelGenError {
    PixelGenError::InvalidRecipe {
        field,
        message: message.into(),
    }
}
