//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `pixelgen-pixel`. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum PixelError {
    /// The input image has no pixels (zero width or height).
    #[error("the image is empty ({width}x{height}): give an image with at least one pixel")]
    EmptyImage {
        /// Width of the rejected image.
        width: u32,
        /// Height of the rejected image.
        height: u32,
    },
    /// No pixel grid could be found in the image.
    #[error("no pixel grid found: {reason}")]
    NoGrid {
        /// Why detection gave up, and what to give instead.
        reason: String,
    },
    /// A palette file (or in-memory palette text) could not be parsed.
    #[error("{source_name}:{line}: {message}")]
    PaletteParse {
        /// File name (or `<memory>`) the text came from.
        source_name: String,
        /// 1-based line number of the problem (0 when not line-specific).
        line: usize,
        /// What is wrong with that line.
        message: String,
    },
    /// A named built-in palette does not exist.
    #[error("unknown palette `{name}`; built-in palettes are: {known}")]
    UnknownPalette {
        /// The name asked for.
        name: String,
        /// Comma-separated list of built-in names.
        known: String,
    },
    /// An option is out of range or inconsistent.
    #[error("invalid option `{name}`: {message}")]
    InvalidOption {
        /// Option name as the user writes it.
        name: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Sprite-sheet frames are inconsistent.
    #[error("sheet: {0}")]
    Sheet(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Writing a file failed (a full disk included); the file keeps its old content or
    /// stays absent.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// An output file's extension names a format this crate does not write.
    #[error("cannot write {}: unsupported output format; supported: {supported}", path.display())]
    UnsupportedFormat {
        /// The output path asked for.
        path: PathBuf,
        /// The supported extensions, e.g. `.png`.
        supported: String,
    },
    /// Decoding or encoding an image failed.
    #[error("{}: {source}", path.display())]
    Image {
        /// The file involved.
        path: PathBuf,
        /// The underlying image error.
        source: image::ImageError,
    },
}

/// Result alias for this crate.
pub type Result<T, E = PixelError> = std::result::Result<T, E>;

/// Returns [`PixelError::EmptyImage`] if the image has no pixels.
pub(crate) fn ensure_not_empty(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        Err(PixelError::EmptyImage { width, height })
    } else {
        Ok(())
    }
}
