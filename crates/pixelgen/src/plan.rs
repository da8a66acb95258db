//! [`Plan`]: a recipe checked once, with its seed fixed and its output shape known, before
//! any work is done.

use pixelgen_pixel::Canvas;
use pixelgen_pixel::set::SetOptions;
use pixelgen_pixel::sheet::{SheetLayout, SheetOptions};

use std::sync::Arc;

use crate::cache::CacheKey;
use crate::edit::EditInputs;
use crate::error::{Result, invalid};
use crate::model::ModelIdentity;
use crate::recipe::{Frames, Recipe, Size};
use crate::set::SetFrames;

/// A request ready to run: the recipe validated as a whole (every field, every frame prompt
/// and, for a multi-frame recipe, the sheet it packs into) and its seed fixed.
///
/// Hosts make the plan once, when a request comes in, and refuse what cannot run before
/// allocating anything for it; engines and caches then take it as given. A plan with several
/// frames makes a sprite sheet, one with a single frame one sprite: the recipe decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    recipe: Recipe,
    sheet: Option<SheetLayout>,
    set: Option<SetFrames>,
    /// An edit's source and mask, read once ([`Plan::with_edit`]).
    edit: Option<Arc<EditInputs>>,
}

impl Plan {
    /// Checks `recipe` and fixes its seed: a random seed is drawn now
    /// ([`Recipe::with_drawn_seed`]), a fixed one is kept.
    pub fn new(recipe: Recipe) -> Result<Self> {
        Self::checked(recipe.with_drawn_seed())
    }

    /// Like [`Plan::new`], but a random seed is derived from the recipe's content
    /// ([`Recipe::with_content_seed`]), so a recipe file always names the same sprite.
    pub fn with_content_seed(recipe: Recipe) -> Result<Self> {
        Self::checked(recipe.with_content_seed()?)
    }

    fn checked(recipe: Recipe) -> Result<Self> {
        recipe.validate()?;
        let set = recipe.set_frames()?;
        let tiles = recipe.tileset.as_ref().map(|t| t.tiles());
        let frames = match (&set, &tiles) {
            (_, Some(tiles)) => tiles.len(),
            (Some(set), None) => set.frames.len(),
            (None, None) if recipe.frames == Frames::Single => 0,
            (None, None) => recipe.frame_count(),
        };
        let mut plan = Self {
            recipe,
            sheet: None,
            set,
            edit: None,
        };
        if frames > 0 {
            let frames = u32::try_from(frames).map_err(|_| invalid("frames", "too many frames"))?;
            let tile = (plan.recipe.size.width, plan.recipe.size.height);
            let mut grid = SheetLayout::grid(&plan.sheet_options(), frames, tile)
                .map_err(|e| invalid("sheet", e.to_string()))?;
            if let Some(set) = &plan.set {
                for (cell, frame) in grid.frames.iter_mut().zip(&set.frames) {
                    cell.name = frame.name.clone();
                    cell.duration_ms = frame.duration_ms;
                }
            }
            if let Some(set) = &plan.recipe.tileset {
                for (cell, name) in grid.frames.iter_mut().zip(set.tile_names()) {
                    cell.name = name;
                }
            }
            plan.sheet = Some(grid);
        }
        Ok(plan)
    }

    /// The recipe as it runs (seed fixed).
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// The recipe, taken out of the plan.
    pub fn into_recipe(self) -> Recipe {
        self.recipe
    }

    /// Whether the plan makes a sprite sheet (several frames) rather than one sprite.
    pub fn is_sheet(&self) -> bool {
        self.sheet.is_some()
    }

    /// For a sheet: the grid its frames are packed into (cells of the sprite size, frame
    /// rects in frame order), known before any frame is made. `None` for one sprite.
    pub fn sheet_layout(&self) -> Option<&SheetLayout> {
        self.sheet.as_ref()
    }

    /// The size of the finished image: the sprite, or the whole sheet.
    pub fn output_size(&self) -> Size {
        match &self.sheet {
            Some(grid) => {
                let (w, h) = grid.sheet_size();
                Size::new(w, h)
            }
            None => self.recipe.size,
        }
    }

    /// The sheet options the frames are packed with: the recipe's, and for an animation or
    /// directions set its row length and clip tags.
    pub fn sheet_options(&self) -> SheetOptions {
        let mut opts = self.recipe.sheet.clone().unwrap_or_default();
        if let Some(set) = &self.set {
            if set.columns.is_some() {
                opts.columns = set.columns;
            }
            opts.tags.extend(set.tags.iter().cloned());
        }
        if let Some(set) = &self.recipe.tileset {
            opts.columns = opts.columns.or(Some(set.default_columns()));
        }
        opts
    }

    /// For a set: its frames expanded (what the model draws, how the finished frames come
    /// from it). `None` for a sprite or a sheet of independent frames.
    pub fn set_frames(&self) -> Option<&SetFrames> {
        self.set.as_ref()
    }

    /// For a set: how the pixel pipeline treats it as a whole (the recipe's pixel options,
    /// on a canvas of the sprite size unless they name one, and the set's anchor).
    pub fn set_options(&self) -> Option<SetOptions> {
        let set = self.recipe.set.as_ref()?;
        let mut pixel = self.recipe.pixel_options();
        if pixel.canvas.is_none() {
            pixel.canvas = Some(Canvas {
                width: self.recipe.size.width,
                height: self.recipe.size.height,
                ..Canvas::default()
            });
        }
        Some(SetOptions {
            pixel,
            anchor: set.anchor,
            shared_cell: true,
        })
    }

    /// One single-sprite plan per frame the model draws, in order (the plan itself for one
    /// sprite): the frame's prompt with the same seed and every other setting. For a set
    /// these are its drawn frames ([`SetFrames::prompts`]; mirrored views are not drawn).
    pub fn frames(&self) -> Vec<Plan> {
        if self.sheet.is_none() && self.set.is_none() {
            return vec![self.clone()];
        }
        let single = |prompt: String| Plan {
            recipe: self.recipe.single_frame(prompt),
            sheet: None,
            set: None,
            edit: None,
        };
        match &self.set {
            Some(set) => set.prompts.iter().cloned().map(single).collect(),
            None => self
                .recipe
                .frame_prompts()
                .into_iter()
                .map(single)
                .collect(),
        }
    }

    /// This single-sprite plan as an edit of `inputs` (the source and mask in memory): what
    /// [`CachedEngine`](crate::CachedEngine) makes of a recipe's `edit` once it has read the
    /// files, so engines need not read them again, and how a host edits pixels it holds
    /// (a tileset's transition tiles, an upload) without writing files. An edit held only in
    /// memory is keyed by its pixels.
    pub fn with_edit(mut self, inputs: EditInputs) -> Self {
        self.edit = Some(Arc::new(inputs));
        self
    }

    /// The edit's source and mask, when the plan holds them (see [`Plan::with_edit`]).
    pub fn edit(&self) -> Option<&EditInputs> {
        self.edit.as_deref()
    }

    /// The content address of this plan's output on `model`.
    pub fn key(&self, model: &ModelIdentity) -> Result<CacheKey> {
        let key = CacheKey::new(&self.recipe, model)?;
        Ok(match &self.edit {
            // A recipe's edit files are keyed by their content already.
            Some(inputs) if self.recipe.edit.is_none() => key.extended(b"edit", &inputs.digest()),
            _ => key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PixelGenError;
    use crate::recipe::Seed;

    fn field_of(r: Recipe) -> &'static str {
        match Plan::new(r) {
            Err(PixelGenError::InvalidRecipe { field, .. }) => field,
            Err(other) => panic!("expected an invalid recipe, got {other}"),
            Ok(plan) => panic!(
                "expected an invalid recipe, got a plan of {}",
                plan.output_size()
            ),
        }
    }

    #[test]
    fn a_plan_fixes_the_seed_once_and_keeps_a_fixed_one() {
        let plan = Plan::new(Recipe::new("knight")).unwrap();
        assert!(plan.recipe().seed.value().is_some());
        assert!(!plan.is_sheet());
        assert_eq!(plan.frames(), vec![plan.clone()]);
        assert_eq!(plan.output_size(), Size::square(32));
        let fixed = Recipe {
            seed: Seed::Fixed(7),
            ..Recipe::new("knight")
        };
        assert_eq!(Plan::new(fixed).unwrap().recipe().seed, Seed::Fixed(7));
        let a = Plan::with_content_seed(Recipe::new("knight")).unwrap();
        let b = Plan::with_content_seed(Recipe::new("knight")).unwrap();
        assert_eq!(a.recipe().seed, b.recipe().seed);
    }

    #[test]
    fn a_sheet_plan_knows_its_grid_before_any_frame_exists() {
        let recipe = Recipe {
            size: Size::new(8, 6),
            frames: Frames::Prompts(vec!["a".into(), "b".into(), "c".into()]),
            sheet: Some(SheetOptions {
                padding: 1,
                ..SheetOptions::default()
            }),
            ..Recipe::new("walk")
        };
        let plan = Plan::new(recipe).unwrap();
        assert!(plan.is_sheet());
        let grid = plan.sheet_layout().unwrap();
        assert_eq!((grid.columns, grid.rows), (2, 2));
        assert_eq!(grid.frames.len(), 3);
        // 2 cells of 8 plus 1 px padding, 2 rows of 6 plus 1.
        assert_eq!(plan.output_size(), Size::new(17, 13));
        let frames = plan.frames();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[1].recipe().prompt, "b");
        assert_eq!(frames[1].recipe().seed, plan.recipe().seed);
        assert!(frames.iter().all(|f| !f.is_sheet()));
    }

    #[test]
    fn a_sheet_that_cannot_be_packed_is_refused_before_any_work() {
        let many = Recipe {
            size: Size::square(1100),
            generation_size: Size::square(1100),
            frames: Frames::Template {
                template: "{prompt} {frame}".into(),
                count: 250,
            },
            ..Recipe::new("walk")
        };
        assert_eq!(field_of(many), "sheet");
        let zero_columns = Recipe {
            frames: Frames::Prompts(vec!["a".into(), "b".into()]),
            sheet: Some(SheetOptions {
                columns: Some(0),
                ..SheetOptions::default()
            }),
            ..Recipe::new("walk")
        };
        assert_eq!(field_of(zero_columns), "sheet");
        assert_eq!(field_of(Recipe::new(" ")), "prompt");
    }
}
