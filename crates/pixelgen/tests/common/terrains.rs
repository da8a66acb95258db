//! A synthetic terrain engine for the tileset tests, here and in `bevy_pixelgen` (included
//! there with `#[path]`): seamless grass and water the seams of a set can be checked on.

#![allow(dead_code)]

use image::{Rgba, RgbaImage};
use pixelgen::{Control, ModelIdentity, Plan, Progress, Rendered, SpriteEngine};

/// Grass: a checker of these two greens.
pub const GRASS: [[u8; 4]; 2] = [[40, 150, 50, 255], [60, 180, 70, 255]];
/// Water: one-pixel stripes of these two blues.
pub const WATER: [[u8; 4]; 2] = [[30, 70, 200, 255], [50, 100, 230, 255]];

/// Draws seamless terrains (a checker of greens for grass, one-pixel stripes of blues for
/// water, or a hard gradient when `broken`), and repaints an edit's mask by swapping the two
/// colours of the terrain under it.
#[derive(Default)]
pub struct Terrains {
    /// Every prompt drawn, in order.
    pub prompts: Vec<String>,
    /// Grass drawn without seamless tiling (a tileset's bases never are).
    pub untiled_grass: usize,
    /// Draw grass as a hard gradient, which cannot tile.
    pub broken: bool,
}

impl SpriteEngine for Terrains {
    fn model_identity(&mut self) -> pixelgen::Result<ModelIdentity> {
        Ok(ModelIdentity("terrains".into()))
    }

    fn render(
        &mut self,
        plan: &Plan,
        _progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> pixelgen::Result<Rendered> {
        let r = plan.recipe();
        self.prompts.push(r.prompt.clone());
        let (w, h) = (r.size.width, r.size.height);
        let image = if let Some(edit) = plan.edit() {
            RgbaImage::from_fn(w, h, |x, y| {
                if pixelgen::edit::repaints(edit.mask.get_pixel(x, y).0) {
                    // The texture under the mask with its two colours swapped.
                    let p = edit.source.get_pixel(x, y).0;
                    let other = |pair: [[u8; 4]; 2]| if p == pair[0] { pair[1] } else { pair[0] };
                    Rgba(if GRASS.contains(&p) {
                        other(GRASS)
                    } else {
                        other(WATER)
                    })
                } else {
                    // Whatever the engine draws outside the mask is put back.
                    Rgba([255, 0, 255, 255])
                }
            })
        } else if r.prompt.starts_with("grass") {
            self.untiled_grass += usize::from(!r.tiling);
            if self.broken {
                RgbaImage::from_fn(w, h, |x, _| Rgba([(x * 255 / w) as u8, 150, 50, 255]))
            } else {
                RgbaImage::from_fn(w, h, |x, y| Rgba(GRASS[((x + y) % 2) as usize]))
            }
        } else {
            RgbaImage::from_fn(w, h, |_, y| Rgba(WATER[(y % 2) as usize]))
        };
        Ok(Rendered {
            image,
            fell_back: false,
        })
    }
}
