//! Edits: repaint part of an existing sprite (inpainting). A recipe's `edit` names the sprite
//! and a mask (white repaints, black or transparent keeps, as A1111 and ComfyUI masks); the
//! model redraws the masked part at the generation size, the pixel pipeline makes it pixel art,
//! and every pixel outside the mask is the source's, exactly.
//!
//! ```
//! use pixelgen::{EditRecipe, Recipe};
//!
//! let recipe = Recipe::from_ron(r#"(
//!     prompt: "knight with a golden helmet",
//!     size: (width: 32, height: 32),
//!     edit: (source: "hero.png", mask: "helmet-mask.png", inpaint: (strength: 0.8)),
//! )"#)?;
//! let edit: &EditRecipe = recipe.edit.as_ref().unwrap();
//! assert_eq!(edit.inpaint.strength, 0.8);
//! # Ok::<(), pixelgen::PixelGenError>(())
//! ```

use std::path::PathBuf;

use image::RgbaImage;
use pixelgen_diffusion::{InpaintParams, MAX_MASK_BLUR, mask_value};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::recipe::Size;
use crate::set::read_image_file;

/// Repaint the masked part of a sprite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRecipe {
    /// The sprite to edit, at the recipe's `size`. Its content is part of the cache key.
    pub source: PathBuf,
    /// The mask, the source's size: white repaints, black or transparent keeps. Its content
    /// is part of the cache key.
    pub mask: PathBuf,
    /// How the model repaints: strength (in (0, 1]; 1 redraws from noise) and mask blur.
    #[serde(default)]
    pub inpaint: InpaintParams,
}

/// An edit's source and mask, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct EditInputs {
    /// The sprite.
    pub source: RgbaImage,
    /// The mask, the sprite's size.
    pub mask: RgbaImage,
}

impl EditRecipe {
    /// Checks the options (not the files: see [`EditRecipe::read`]).
    pub fn validate(&self) -> Result<()> {
        for (what, path) in [("source", &self.source), ("mask", &self.mask)] {
            if path.as_os_str().is_empty() {
                return Err(invalid("edit", format!("the {what} has no path")));
            }
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

    /// Reads the source and the mask for sprites of `size`: both readable images, the source
    /// of exactly `size` (the edit keeps its pixels), the mask of the source's size and
    /// marking something to repaint. The error names the file and says what is wrong.
    pub fn read(&self, size: Size) -> Result<EditInputs> {
        let source = read_image_file(&self.source, "edit", "source", |_, _| None)?;
        if source.dimensions() != (size.width, size.height) {
            return Err(invalid(
                "edit",
                format!(
                    "source {} is {}x{}, not the recipe's size {size}: edit a sprite of that size",
                    self.source.display(),
                    source.width(),
                    source.height()
                ),
            ));
        }
        let mask = read_image_file(&self.mask, "edit", "mask", |_, _| None)?;
        if mask.dimensions() != source.dimensions() {
            return Err(invalid(
                "edit",
                format!(
                    "mask {} is {}x{}, the source {}x{}: draw the mask at the sprite's size",
                    self.mask.display(),
                    mask.width(),
                    mask.height(),
                    source.width(),
                    source.height()
                ),
            ));
        }
        if !mask.pixels().any(|p| repaints(p.0)) {
            return Err(invalid(
                "edit",
                format!(
                    "mask {} marks nothing to repaint (white repaints, black or transparent \
                     keeps)",
                    self.mask.display()
                ),
            ));
        }
        Ok(EditInputs { source, mask })
    }
}

/// Whether a mask pixel marks its place for repainting (the model's binarisation: mask value
/// at least 0.5).
pub fn repaints(p: [u8; 4]) -> bool {
    mask_value(p) >= 0.5
}

/// `made` where `mask` repaints, `source` everywhere else: the pixels outside the mask are
/// the source's, exactly. All three have one size (checked by [`EditRecipe::read`] and the
/// recipe's `size`); `made` is returned as it is where the sizes differ.
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
