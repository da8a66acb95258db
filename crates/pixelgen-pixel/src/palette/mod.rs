//! Palettes: the [`Palette`] type, the built-in palettes, and GIMP `.gpl`, Lospec `.hex`,
//! JASC `.pal` and PNG swatch files (reading and writing).
//!
//! A palette is a name and up to 256 sRGB colours in a fixed order. Colour decisions are made
//! in OKLab: [`Palette::oklab`] gives the colours there once, for nearest-colour searches.
//!
//! ```
//! use pixelgen_pixel::palette::Palette;
//!
//! let pico = Palette::builtin("PICO-8").unwrap();
//! assert_eq!(pico.len(), 16);
//! assert_eq!(pico.colors[8], [0xff, 0x00, 0x4d]);
//!
//! let mine = Palette::parse_hex("#1a1c2c\nf4f4f4\n", "mine.hex").unwrap();
//! assert_eq!(mine.name, "mine");
//! assert_eq!(Palette::parse_hex(&mine.to_hex(), "again.hex").unwrap().colors, mine.colors);
//! ```

mod builtin;
mod gpl;
mod hex;
mod jasc;
mod swatch;

use std::path::{Path, PathBuf};

use image::RgbaImage;

use crate::color::Oklab;
use crate::error::{PixelError, Result};

/// The most colours a palette may hold (the limit of indexed PNG and of the JASC and GIMP tools).
pub const MAX_COLORS: usize = 256;

/// A named, ordered list of sRGB colours (1 to [`MAX_COLORS`] of them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Palette {
    /// Display name (a built-in's canonical name, a GIMP `Name:`, or the file's stem).
    pub name: String,
    /// The colours as `[r, g, b]` bytes, in the palette's own order.
    pub colors: Vec<[u8; 3]>,
}

/// The palette file formats this module reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaletteFormat {
    /// GIMP palette (`.gpl`): `GIMP Palette` header, optional `Name:`/`Columns:`, `R G B name` lines.
    Gpl,
    /// Lospec hex list (`.hex`): one `RRGGBB` per line, `#` optional.
    Hex,
    /// JASC / Paint Shop Pro palette (`.pal`): `JASC-PAL`, `0100`, count, `R G B` lines.
    Pal,
    /// PNG swatch: every distinct visible colour in reading order.
    Png,
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

impl PaletteFormat {
    /// The format for a file extension (`gpl`, `hex`, `pal`, `png`; any case, leading dot allowed).
    pub fn from_extension(ext: &str) -> Option<Self> {
        let ext = ext.strip_prefix('.').unwrap_or(ext);
        [Self::Gpl, Self::Hex, Self::Pal, Self::Png]
            .into_iter()
            .find(|f| f.extension().eq_ignore_ascii_case(ext))
    }

    /// The format named by a path's extension, if it has a known one.
    pub fn from_path(path: &Path) -> Option<Self> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(Self::from_extension)
    }

    /// Guesses the format from a file's first bytes: PNG signature, `GIMP Palette` or
    /// `JASC-PAL` header, and otherwise a hex list.
    pub fn sniff(bytes: &[u8]) -> Self {
        let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        let starts = |header: &[u8]| {
            text.len() >= header.len() && text[..header.len()].eq_ignore_ascii_case(header)
        };
        if bytes.starts_with(PNG_MAGIC) {
            Self::Png
        } else if starts(b"GIMP Palette") {
            Self::Gpl
        } else if starts(b"JASC-PAL") {
            Self::Pal
        } else {
            Self::Hex
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Gpl => "gpl",
            Self::Hex => "hex",
            Self::Pal => "pal",
            Self::Png => "png",
        }
    }
}

impl Palette {
    /// Builds a palette, checking it holds 1 to [`MAX_COLORS`] colours.
    pub fn new(name: impl Into<String>, colors: Vec<[u8; 3]>) -> Result<Self> {
        let palette = Self {
            name: name.into(),
            colors,
        };
        palette.validate()?;
        Ok(palette)
    }

    /// Number of colours.
    pub fn len(&self) -> usize {
        self.colors.len()
    }

    /// True when the palette has no colours (only possible when built by hand).
    pub fn is_empty(&self) -> bool {
        self.colors.is_empty()
    }

    /// The colours converted to OKLab, in palette order (compute once, then search).
    pub fn oklab(&self) -> Vec<Oklab> {
        self.colors.iter().map(|&c| Oklab::from_srgb(c)).collect()
    }

    /// The colour with the lowest OKLab lightness (the first one on ties); `None` if empty.
    pub fn darkest(&self) -> Option<[u8; 3]> {
        self.colors
            .iter()
            .map(|&c| (c, Oklab::from_srgb(c).l))
            .reduce(|best, x| if x.1 < best.1 { x } else { best })
            .map(|(c, _)| c)
    }

    /// The colour with the highest OKLab lightness (the first one on ties); `None` if empty.
    pub fn lightest(&self) -> Option<[u8; 3]> {
        self.colors
            .iter()
            .map(|&c| (c, Oklab::from_srgb(c).l))
            .reduce(|best, x| if x.1 > best.1 { x } else { best })
            .map(|(c, _)| c)
    }

    /// A built-in palette by name, ignoring case, spaces, `-` and `_`
    /// (`pico-8`, `PICO8` and `pico_8` all work; see [`Palette::builtin_names`]).
    pub fn builtin(name: &str) -> Result<Self> {
        builtin::find(name)
    }

    /// The canonical names of the built-in palettes.
    pub fn builtin_names() -> &'static [&'static str] {
        builtin::NAMES
    }

    /// A built-in palette name, else a palette file path (`.gpl`, `.hex`, `.pal`, `.png`).
    ///
    /// Anything with a path separator or an extension is always taken as a path, so
    /// `./nes.hex` loads the file even though `nes` is a built-in name.
    pub fn resolve(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        let looks_like_path =
            spec.contains('/') || spec.contains('\\') || path.extension().is_some();
        if !looks_like_path {
            if let Some(palette) = builtin::lookup(spec) {
                return palette;
            }
            if !path.is_file() {
                return Err(builtin::unknown(spec));
            }
        }
        Self::load(path)
    }

    /// Loads a palette file, choosing the format by extension (or by content when the
    /// extension is not one of `gpl`, `hex`, `pal`, `png`). Errors name the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| PixelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let format = PaletteFormat::from_path(path).unwrap_or_else(|| PaletteFormat::sniff(&bytes));
        Self::from_bytes(&bytes, format, &path.display().to_string())
    }

    /// Parses palette file contents in the given format. `source_name` (a path or
    /// `<memory>`) appears in errors, and its file stem names the palette unless the file
    /// carries a name. Text that is not valid UTF-8 is read lossily, so binary data fails
    /// with a [`PixelError::PaletteParse`] on the line where it shows up.
    pub fn from_bytes(bytes: &[u8], format: PaletteFormat, source_name: &str) -> Result<Self> {
        match format {
            PaletteFormat::Png => {
                let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
                    .map_err(|source| PixelError::Image {
                        path: PathBuf::from(source_name),
                        source,
                    })?
                    .into_rgba8();
                swatch::parse(&img, source_name, stem_name(source_name))
            }
            text_format => {
                let text = String::from_utf8_lossy(bytes);
                match text_format {
                    PaletteFormat::Gpl => Self::parse_gpl(&text, source_name),
                    PaletteFormat::Pal => Self::parse_pal(&text, source_name),
                    _ => Self::parse_hex(&text, source_name),
                }
            }
        }
    }

    /// Parses GIMP palette text (`.gpl`).
    pub fn parse_gpl(text: &str, source_name: &str) -> Result<Self> {
        gpl::parse(text, source_name)
    }

    /// Parses a Lospec hex list (`.hex`): one `RRGGBB` per line, `#` optional, blank lines skipped.
    pub fn parse_hex(text: &str, source_name: &str) -> Result<Self> {
        hex::parse(text, source_name)
    }

    /// Parses a JASC palette (`.pal`); the declared colour count must match the colour lines.
    pub fn parse_pal(text: &str, source_name: &str) -> Result<Self> {
        jasc::parse(text, source_name)
    }

    /// Reads a swatch image: each distinct colour in reading order (row by row), skipping
    /// fully transparent pixels. Works for Lospec's 1xN, Nx1 and blocky swatches alike.
    pub fn from_swatch(img: &RgbaImage, name: &str) -> Result<Self> {
        swatch::parse(img, name, name.to_string())
    }

    /// GIMP palette text with `Name:` and `Columns:` headers.
    pub fn to_gpl(&self) -> String {
        gpl::write(self)
    }

    /// Lospec hex text: one lowercase `rrggbb` per line.
    pub fn to_hex(&self) -> String {
        hex::write(self)
    }

    /// JASC palette text (CRLF line endings, as Paint Shop Pro writes them).
    pub fn to_pal(&self) -> String {
        jasc::write(self)
    }

    /// A swatch image one pixel high with one opaque pixel per colour (Lospec's "1x" PNG).
    pub fn to_swatch(&self) -> RgbaImage {
        swatch::write_strip(self)
    }

    /// A blocky swatch: `cell`x`cell` squares, `columns` per row; unused cells are transparent.
    pub fn to_swatch_grid(&self, columns: u32, cell: u32) -> Result<RgbaImage> {
        swatch::write_grid(self, columns, cell)
    }

    /// The palette encoded as a file of the given format.
    pub fn to_bytes(&self, format: PaletteFormat) -> Result<Vec<u8>> {
        self.encode(format, Path::new("<memory>"))
    }

    /// Writes the palette to a file, choosing the format by extension (`gpl`, `hex`, `pal`, `png`),
    /// atomically ([`crate::write::write_atomic`]): a failed write ([`PixelError::Write`]) leaves
    /// the file as it was. The folder must exist.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let format = PaletteFormat::from_path(path).ok_or_else(|| PixelError::InvalidOption {
            name: "palette file",
            message: format!(
                "`{}` has no palette extension: use .gpl, .hex, .pal or .png",
                path.display()
            ),
        })?;
        let bytes = self.encode(format, path)?;
        crate::write::write_atomic(path, &bytes).map_err(|source| PixelError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    fn encode(&self, format: PaletteFormat, path: &Path) -> Result<Vec<u8>> {
        self.validate()?;
        Ok(match format {
            PaletteFormat::Gpl => self.to_gpl().into_bytes(),
            PaletteFormat::Hex => self.to_hex().into_bytes(),
            PaletteFormat::Pal => self.to_pal().into_bytes(),
            PaletteFormat::Png => {
                let mut out = std::io::Cursor::new(Vec::new());
                self.to_swatch()
                    .write_to(&mut out, image::ImageFormat::Png)
                    .map_err(|source| PixelError::Image {
                        path: path.to_path_buf(),
                        source,
                    })?;
                out.into_inner()
            }
        })
    }

    fn validate(&self) -> Result<()> {
        if self.colors.is_empty() || self.colors.len() > MAX_COLORS {
            return Err(PixelError::InvalidOption {
                name: "palette",
                message: format!(
                    "palette `{}` has {} colours; a palette needs 1 to {MAX_COLORS}",
                    self.name,
                    self.colors.len()
                ),
            });
        }
        Ok(())
    }
}

/// A [`PixelError::PaletteParse`] for `source_name` at `line` (1-based, 0 for the whole file).
fn parse_error(source_name: &str, line: usize, message: impl Into<String>) -> PixelError {
    PixelError::PaletteParse {
        source_name: source_name.to_string(),
        line,
        message: message.into(),
    }
}

/// A line as shown inside an error message: trimmed, control characters escaped, shortened,
/// with a hint when it looks like binary data.
fn quote(line: &str) -> String {
    const MAX_CHARS: usize = 40;
    let line = line.trim();
    let mut out = String::from("`");
    for (i, c) in line.chars().enumerate() {
        if i == MAX_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    if line
        .chars()
        .any(|c| c == '\u{fffd}' || (c.is_control() && c != '\t'))
    {
        out.push_str(" (binary data, not palette text: is this the right file?)");
    }
    out
}

/// Appends a colour, failing on the 257th with an error pointing at `line`.
fn push_color(
    colors: &mut Vec<[u8; 3]>,
    color: [u8; 3],
    source_name: &str,
    line: usize,
) -> Result<()> {
    if colors.len() == MAX_COLORS {
        return Err(parse_error(
            source_name,
            line,
            format!("too many colours: a palette holds at most {MAX_COLORS}"),
        ));
    }
    colors.push(color);
    Ok(())
}

/// The text without a leading UTF-8 byte-order mark.
fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Lines numbered from 1 (`\n` or `\r\n` endings), trimmed.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    strip_bom(text)
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
}

/// Parses whitespace-separated `R G B` at the start of `line`; returns the colour and the
/// rest of the line (a colour name, or nothing).
fn parse_rgb_prefix(line: &str) -> Option<([u8; 3], &str)> {
    let mut rest = line;
    let mut rgb = [0u8; 3];
    for channel in &mut rgb {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (token, tail) = rest.split_at(end);
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *channel = token.parse().ok()?;
        rest = tail;
    }
    Some((rgb, rest.trim()))
}

/// A palette name from a source name: the file stem of a path, or the name itself.
fn stem_name(source_name: &str) -> String {
    Path::new(source_name)
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(source_name)
        .to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The line and message of a `PaletteParse` error (panics on anything else).
    pub(crate) fn err_line(r: Result<Palette>) -> (usize, String) {
        match r {
            Err(PixelError::PaletteParse { line, message, .. }) => (line, message),
            other => panic!("expected PaletteParse, got {other:?}"),
        }
    }

    #[test]
    fn rgb_prefix_parses_values_and_name() {
        assert_eq!(
            parse_rgb_prefix("  0 128\t255  Deep Blue "),
            Some(([0, 128, 255], "Deep Blue"))
        );
        assert_eq!(parse_rgb_prefix("1 2 3"), Some(([1, 2, 3], "")));
        assert_eq!(parse_rgb_prefix("12 300 4"), None);
        assert_eq!(parse_rgb_prefix("12 30"), None);
        assert_eq!(parse_rgb_prefix("+1 2 3"), None);
        assert_eq!(parse_rgb_prefix("-1 2 3"), None);
        assert_eq!(parse_rgb_prefix("1x 2 3"), None);
    }

    #[test]
    fn quote_escapes_and_shortens() {
        assert_eq!(quote("  12 300 4 "), "`12 300 4`");
        let long = "a".repeat(100);
        assert_eq!(quote(&long), format!("`{}...`", "a".repeat(40)));
        let q = quote("ab\u{0}\u{fffd}");
        assert!(q.starts_with("`ab\\u{0}\u{fffd}`"), "{q}");
        assert!(q.contains("binary data"), "{q}");
    }

    #[test]
    fn stem_name_uses_file_stem() {
        assert_eq!(stem_name("some/dir/My Palette.gpl"), "My Palette");
        assert_eq!(stem_name("<memory>"), "<memory>");
        assert_eq!(stem_name(""), "");
    }

    #[test]
    fn format_from_extension_and_sniff() {
        assert_eq!(
            PaletteFormat::from_extension("GPL"),
            Some(PaletteFormat::Gpl)
        );
        assert_eq!(
            PaletteFormat::from_extension(".hex"),
            Some(PaletteFormat::Hex)
        );
        assert_eq!(PaletteFormat::from_extension("txt"), None);
        assert_eq!(
            PaletteFormat::from_path(Path::new("a/b.Pal")),
            Some(PaletteFormat::Pal)
        );
        assert_eq!(PaletteFormat::from_path(Path::new("a/b")), None);
        assert_eq!(
            PaletteFormat::sniff(b"\x89PNG\r\n\x1a\n...."),
            PaletteFormat::Png
        );
        assert_eq!(
            PaletteFormat::sniff(b"\xef\xbb\xbfGIMP Palette\n"),
            PaletteFormat::Gpl
        );
        assert_eq!(PaletteFormat::sniff(b"jasc-pal\r\n"), PaletteFormat::Pal);
        assert_eq!(PaletteFormat::sniff(b"ff004d\n"), PaletteFormat::Hex);
        assert_eq!(PaletteFormat::sniff(b""), PaletteFormat::Hex);
    }

    #[test]
    fn darkest_and_lightest_use_oklab_lightness() {
        // Pure blue is darker than pure red, which is darker than pure green, in OKLab.
        let p = Palette::new("rgb", vec![[255, 0, 0], [0, 255, 0], [0, 0, 255]]).unwrap();
        assert_eq!(p.darkest(), Some([0, 0, 255]));
        assert_eq!(p.lightest(), Some([0, 255, 0]));
        let lab = p.oklab();
        assert_eq!(lab.len(), 3);
        assert!(lab[2].l < lab[0].l && lab[0].l < lab[1].l);
        let empty = Palette {
            name: "none".into(),
            colors: vec![],
        };
        assert_eq!(empty.darkest(), None);
        assert_eq!(empty.lightest(), None);
        assert!(empty.is_empty());
    }

    #[test]
    fn new_rejects_empty_and_oversized() {
        assert!(matches!(
            Palette::new("x", vec![]),
            Err(PixelError::InvalidOption {
                name: "palette",
                ..
            })
        ));
        assert!(Palette::new("x", vec![[0, 0, 0]; 257]).is_err());
        assert_eq!(Palette::new("x", vec![[0, 0, 0]; 256]).unwrap().len(), 256);
    }

    #[test]
    fn to_bytes_rejects_empty_palette() {
        let empty = Palette {
            name: "none".into(),
            colors: vec![],
        };
        for format in [
            PaletteFormat::Gpl,
            PaletteFormat::Hex,
            PaletteFormat::Pal,
            PaletteFormat::Png,
        ] {
            assert!(matches!(
                empty.to_bytes(format),
                Err(PixelError::InvalidOption { .. })
            ));
        }
    }

    #[test]
    fn serde_round_trip() {
        let p = Palette::new("two", vec![[1, 2, 3], [250, 251, 252]]).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"name":"two","colors":[[1,2,3],[250,251,252]]}"#);
        assert_eq!(serde_json::from_str::<Palette>(&json).unwrap(), p);
    }
}
