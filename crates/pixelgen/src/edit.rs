//! Edits: repaint part of an existing sprite (inpainting) or grow it onto a larger canvas
//! (outpainting). A recipe's `edit` names the sprite and a mask (white repaints, black or
//! transparent keeps, as A1111 and ComfyUI masks); the model redraws the masked part at the
//! generation size, the pixel pipeline makes it pixel art, and every pixel outside the mask
//! is the source's, exactly.
//!
//! - **Inpainting:** the source has the recipe's `size`; the mask is a PNG of that size, or
//!   written inline as rows of text (`#` repaints, `.` keeps) or as rectangles.
//! - **Outpainting:** the source is smaller than `size`; it is placed on the canvas at
//!   `offset` (centred when left out) and everything around it is drawn. A mask, if given,
//!   marks more to repaint (on the canvas).
//!
//! ```
//! use pixelgen::{EditRecipe, Recipe};
//! use pixelgen::edit::Mask;
//!
//! let recipe = Recipe::from_ron(r#"(
//!     prompt: "knight with a golden helmet",
//!     size: (width: 32, height: 32),
//!     edit: (source: "hero.png", mask: "helmet-mask.png", inpaint: (strength: 0.8)),
//! )"#)?;
//! let edit: &EditRecipe = recipe.edit.as_ref().unwrap();
//! assert_eq!(edit.inpaint.strength, 0.8);
//!
//! // The same kind of edit with the mask inline (`#` or `X` repaint, `.` keeps): the top 2
//! // rows of a 4x4 sprite.
//! let inline = Recipe::from_ron(r#"(
//!     prompt: "a crown",
//!     size: (width: 4, height: 4),
//!     generation_size: (width: 64, height: 64),
//!     edit: (source: "gem.png", mask: ["XXXX", "XXXX", "....", "...."]),
//! )"#)?;
//! let mask = inline.edit.unwrap().mask.unwrap();
//! assert_eq!(mask, Mask::Rows(vec!["XXXX".into(), "XXXX".into(), "....".into(), "....".into()]));
//!
//! // Outpainting: a 32x32 sprite grown to 64x32, placed at the left.
//! let grow = Recipe::from_ron(r#"(
//!     prompt: "castle wall, side view",
//!     size: (width: 64, height: 32),
//!     edit: (source: "wall.png", offset: (0, 0)),
//! )"#)?;
//! assert_eq!(grow.edit.unwrap().offset, Some((0, 0)));
//! # Ok::<(), pixelgen::PixelGenError>(())
//! ```

use std::path::PathBuf;

use image::{Rgba, RgbaImage};
use pixelgen_diffusion::{InpaintParams, MAX_MASK_BLUR, mask_value};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::recipe::Size;
use crate::set::read_image_file;

/// Repaint the masked part of a sprite, or draw around it on a larger canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRecipe {
    /// The sprite to edit: of the recipe's `size` (inpainting), or smaller (outpainting: it is
    /// placed at `offset` and the rest of the canvas is drawn). Its content is part of the
    /// cache key.
    pub source: PathBuf,
    /// What to repaint, at the recipe's `size`: white repaints, black or transparent keeps. A
    /// file's content is part of the cache key. Needed for inpainting; for outpainting it
    /// marks more to repaint besides the new canvas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Mask>,
    /// Outpainting: where the source's top-left corner goes on the canvas; `None` centres it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<(u32, u32)>,
    /// How the model repaints: strength (in (0, 1]; 1 redraws from noise) and mask blur.
    #[serde(default)]
    pub inpaint: InpaintParams,
}

/// An edit's mask: a file, or written in the recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Mask {
    /// A PNG (or any image this tool reads) of the canvas size: white repaints, black or
    /// transparent keeps.
    File(PathBuf),
    /// One string per row of the canvas, one character per pixel: `#`, `X`, `x` or `1`
    /// repaint; `.`, `0`, `-` or a space keep.
    Rows(Vec<String>),
    /// Rectangles to repaint, in canvas pixels; the rest is kept.
    Rects(Vec<MaskRect>),
}

/// A rectangle of an inline mask, in canvas pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl From<PathBuf> for Mask {
    fn from(path: PathBuf) -> Self {
        Mask::File(path)
    }
}

impl From<&std::path::Path> for Mask {
    fn from(path: &std::path::Path) -> Self {
        Mask::File(path.into())
    }
}

/// An edit ready to run: the source on the canvas, the mask and how the model repaints.
#[derive(Debug, Clone, PartialEq)]
pub struct EditInputs {
    /// The sprite on the canvas (transparent where an outpaint draws new pixels).
    pub source: RgbaImage,
    /// The mask, the canvas size: where [`repaints`] holds, the model's pixels are kept.
    pub mask: RgbaImage,
    /// Strength and mask blur.
    pub inpaint: InpaintParams,
}

const WHITE: Rgba<u8> = Rgba([255, 255, 255, 255]);
const BLACK: Rgba<u8> = Rgba([0, 0, 0, 255]);

impl EditRecipe {
    /// An inpaint of `source` under the mask file `mask`, at the default strength.
    pub fn inpaint(source: impl Into<PathBuf>, mask: impl Into<PathBuf>) -> Self {
        Self {
            source: source.into(),
            mask: Some(Mask::File(mask.into())),
            offset: None,
            inpaint: InpaintParams::default(),
        }
    }

    /// Checks the options (not the files: see [`EditRecipe::read`]).
    pub fn validate(&self) -> Result<()> {
        if self.source.as_os_str().is_empty() {
            return Err(invalid("edit", "the source has no path"));
        }
        match &self.mask {
            Some(Mask::File(path)) if path.as_os_str().is_empty() => {
                return Err(invalid("edit", "the mask has no path"));
            }
            Some(Mask::Rows(rows)) if rows.is_empty() => {
                return Err(invalid("edit", "the inline mask has no rows"));
            }
            _ => {}
        }
        let s = self.inpaint.strength;
        if !s.is_finite() || s <= 0.0 || s > 1.0 {
            return Err(invalid(
                "edit",
                format!("strength {s} is outside 0 (exclusive) to 1"),
            ));
        }
        let b = self.inpaint.mask_blur;
        if !b.is_finite() || !(0.0..=MAX_MASK_BLUR).contains(&b) {
            return Err(invalid(
                "edit",
                format!("mask_blur {b} is outside 0 to {MAX_MASK_BLUR}"),
            ));
        }
        Ok(())
    }

    /// The mask file, if the mask is one (its content is keyed).
    pub fn mask_file(&self) -> Option<&std::path::Path> {
        match &self.mask {
            Some(Mask::File(path)) => Some(path),
            _ => None,
        }
    }

    /// Reads the source and the mask for a canvas of `size` and checks them: a readable
    /// source no larger than `size` (smaller: an outpaint, placed at `offset` or centred),
    /// a mask of the canvas size (needed when the source fills the canvas), and something to
    /// repaint and something to keep. The error names the file and says what is wrong.
    pub fn read(&self, size: Size) -> Result<EditInputs> {
        let source = read_image_file(&self.source, "edit", "source", |_, _| None)?;
        let (sw, sh) = source.dimensions();
        let outpaint = (sw, sh) != (size.width, size.height);
        if sw > size.width || sh > size.height {
            return Err(invalid(
                "edit",
                format!(
                    "source {} is {sw}x{sh}, larger than the recipe's size {size}: edit a \
                     sprite of that size (or smaller, to draw around it)",
                    self.source.display()
                ),
            ));
        }
        let (x0, y0) = self
            .offset
            .unwrap_or(((size.width - sw) / 2, (size.height - sh) / 2));
        if !outpaint && self.offset.is_some_and(|o| o != (0, 0)) {
            return Err(invalid(
                "edit",
                format!(
                    "offset {:?} moves a source of the recipe's size {size} off the canvas: \
                     leave it out, or make `size` larger to draw around the source",
                    (x0, y0)
                ),
            ));
        }
        if x0 + sw > size.width || y0 + sh > size.height {
            return Err(invalid(
                "edit",
                format!(
                    "offset ({x0}, {y0}) puts the {sw}x{sh} source past the {size} canvas: at \
                     most ({}, {})",
                    size.width - sw,
                    size.height - sh
                ),
            ));
        }
        let mut canvas = RgbaImage::new(size.width, size.height);
        image::imageops::replace(&mut canvas, &source, x0.into(), y0.into());
        let mask = match &self.mask {
            Some(mask) => Some(self.read_mask(mask, size)?),
            None if outpaint => None,
            None => {
                return Err(invalid(
                    "edit",
                    format!(
                        "the source {} fills the {size} canvas and no mask says what to \
                         repaint: add `mask` (a PNG, rows of `#`/`.`, or rectangles), or make \
                         `size` larger to draw around the source",
                        self.source.display()
                    ),
                ));
            }
        };
        // Outpainting repaints the new canvas around the source, and whatever the mask adds.
        let inside = |x: u32, y: u32| (x0..x0 + sw).contains(&x) && (y0..y0 + sh).contains(&y);
        let mask = RgbaImage::from_fn(size.width, size.height, |x, y| match &mask {
            _ if !inside(x, y) => WHITE,
            Some(m) => *m.get_pixel(x, y),
            None => BLACK,
        });
        EditInputs::new(canvas, mask, self.inpaint.clone()).map_err(|e| match e {
            crate::PixelGenError::InvalidRecipe { field, message } => invalid(
                field,
                format!("{message} (source {})", self.source.display()),
            ),
            other => other,
        })
    }

    /// The mask at the canvas size, from its file or the recipe.
    fn read_mask(&self, mask: &Mask, size: Size) -> Result<RgbaImage> {
        match mask {
            Mask::File(path) => {
                let image = read_image_file(path, "edit", "mask", |_, _| None)?;
                if image.dimensions() != (size.width, size.height) {
                    return Err(invalid(
                        "edit",
                        format!(
                            "mask {} is {}x{}, the canvas {size}: draw the mask at the recipe's \
                             size",
                            path.display(),
                            image.width(),
                            image.height()
                        ),
                    ));
                }
                Ok(image)
            }
            Mask::Rows(rows) => rows_mask(rows, size),
            Mask::Rects(rects) => {
                let mut image = RgbaImage::from_pixel(size.width, size.height, BLACK);
                for r in rects {
                    if r.width == 0
                        || r.height == 0
                        || r.x.saturating_add(r.width) > size.width
                        || r.y.saturating_add(r.height) > size.height
                    {
                        return Err(invalid(
                            "edit",
                            format!(
                                "mask rectangle {}x{} at ({}, {}) is empty or leaves the {size} \
                                 canvas",
                                r.width, r.height, r.x, r.y
                            ),
                        ));
                    }
                    for y in r.y..r.y + r.height {
                        for x in r.x..r.x + r.width {
                            image.put_pixel(x, y, WHITE);
                        }
                    }
                }
                Ok(image)
            }
        }
    }
}

/// An inline mask of text rows at the canvas size.
fn rows_mask(rows: &[String], size: Size) -> Result<RgbaImage> {
    if rows.len() != size.height as usize {
        return Err(invalid(
            "edit",
            format!(
                "the inline mask has {} rows, the canvas {size} has {}",
                rows.len(),
                size.height
            ),
        ));
    }
    let mut image = RgbaImage::new(size.width, size.height);
    for (y, row) in rows.iter().enumerate() {
        let n = row.chars().count();
        if n != size.width as usize {
            return Err(invalid(
                "edit",
                format!(
                    "inline mask row {y} has {n} characters, the canvas {size} is {} wide",
                    size.width
                ),
            ));
        }
        for (x, c) in row.chars().enumerate() {
            let p = match c {
                '#' | 'X' | 'x' | '1' => WHITE,
                '.' | '0' | '-' | ' ' => BLACK,
                other => {
                    return Err(invalid(
                        "edit",
                        format!(
                            "inline mask row {y} has '{other}' at column {x}: use `#` to \
                             repaint and `.` to keep"
                        ),
                    ));
                }
            };
            image.put_pixel(x as u32, y as u32, p);
        }
    }
    Ok(image)
}

impl EditInputs {
    /// An edit of `source` under `mask` (both the canvas size), checked: the sizes agree,
    /// and the mask marks something to repaint and something to keep.
    pub fn new(source: RgbaImage, mask: RgbaImage, inpaint: InpaintParams) -> Result<Self> {
        if mask.dimensions() != source.dimensions() {
            return Err(invalid(
                "edit",
                format!(
                    "the mask is {}x{}, the source {}x{}: one size for both",
                    mask.width(),
                    mask.height(),
                    source.width(),
                    source.height()
                ),
            ));
        }
        let marked = mask.pixels().filter(|p| repaints(p.0)).count();
        if marked == 0 {
            return Err(invalid(
                "edit",
                "the mask marks nothing to repaint (white repaints, black or transparent keeps)",
            ));
        }
        if marked == mask.pixels().len() {
            return Err(invalid(
                "edit",
                "the mask marks every pixel: nothing of the source would be kept (leave \
                 `edit` out to draw a new sprite, or keep part of it)",
            ));
        }
        Ok(Self {
            source,
            mask,
            inpaint,
        })
    }

    /// SHA-256 of the source's and the mask's pixels and the inpaint options: the key of an
    /// edit held in memory rather than named by files.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for image in [&self.source, &self.mask] {
            h.update(image.width().to_le_bytes());
            h.update(image.height().to_le_bytes());
            h.update(image.as_raw());
        }
        h.update(self.inpaint.strength.to_le_bytes());
        h.update(self.inpaint.mask_blur.to_le_bytes());
        h.finalize().into()
    }
}

/// Whether a mask pixel marks its place for repainting (the model's binarisation: mask value
/// at least 0.5).
pub fn repaints(p: [u8; 4]) -> bool {
    mask_value(p) >= 0.5
}

/// `made` where `mask` repaints, `source` everywhere else: the pixels outside the mask are
/// the source's, exactly. `made` is returned as it is where its size is not the canvas's.
pub fn keep_unmasked(made: &RgbaImage, inputs: &EditInputs) -> RgbaImage {
    if made.dimensions() != inputs.source.dimensions() {
        return made.clone();
    }
    RgbaImage::from_fn(made.width(), made.height(), |x, y| {
        if repaints(inputs.mask.get_pixel(x, y).0) {
            *made.get_pixel(x, y)
        } else {
            *inputs.source.get_pixel(x, y)
        }
    })
}
