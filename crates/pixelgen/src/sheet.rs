//! Sprite sheets: one sprite per frame prompt, packed with [`pixelgen_pixel::sheet::pack`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pixelgen_pixel::sheet::{Frame, JsonForm, Sheet, pack};

use crate::cache::CacheKey;
use crate::engine::{Control, Progress, SpriteEngine};
use crate::error::{Result, invalid};
use crate::output::{file_stem_for, write_atomic};
use crate::recipe::Recipe;

/// A finished sheet and what made it.
#[derive(Debug, Clone)]
pub struct GeneratedSheet {
    /// The packed image and its layout (cells, frame rects, durations).
    pub sheet: Sheet,
    /// The recipe with its seed fixed: regenerates this sheet.
    pub recipe: Recipe,
    /// The content address of the whole recipe on the model that ran it.
    pub key: CacheKey,
    /// Time spent on every frame and the packing.
    pub elapsed: Duration,
}

/// Generates every frame of `recipe` (same seed, one prompt per frame) with `engine` and
/// packs them with the recipe's sheet options. Progress counts steps across all frames.
pub fn generate_sheet(
    engine: &mut dyn SpriteEngine,
    recipe: &Recipe,
    progress: &mut dyn FnMut(&Progress) -> Control,
) -> Result<GeneratedSheet> {
    let start = Instant::now();
    recipe.validate()?;
    let recipe = recipe.clone().with_drawn_seed();
    let n = recipe.frame_count();
    let key = CacheKey::new(&recipe, &engine.model_identity()?)?;
    let mut frames = Vec::with_capacity(n);
    for i in 0..n {
        let frame_recipe = recipe
            .frame_recipe(i)
            .ok_or_else(|| invalid("frames", format!("frame {i} has no prompt")))?;
        let mut on_step = |p: &Progress| {
            progress(&Progress {
                step: i * p.total + p.step,
                total: n * p.total,
                preview: p.preview.clone(),
            })
        };
        let sprite = engine.generate(&frame_recipe, &mut on_step)?;
        frames.push(Frame::new(sprite.image).with_name(format!("frame {i}")));
    }
    let sheet = pack(&frames, &recipe.sheet.clone().unwrap_or_default())?;
    Ok(GeneratedSheet {
        sheet,
        recipe,
        key,
        elapsed: start.elapsed(),
    })
}

/// Where [`save_sheet`] put a sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSheet {
    /// The sheet PNG.
    pub png: PathBuf,
    /// Aseprite-compatible JSON (hash form) describing the frames.
    pub json: PathBuf,
    /// The recipe sidecar (`NAME.pixelgen.ron`).
    pub recipe: PathBuf,
}

/// Saves a sheet as `DIR/STEM.png`, `DIR/STEM.json` (Aseprite) and `DIR/STEM.pixelgen.ron`,
/// each through a temporary file and a rename. Blocking: call it off the main schedule.
pub fn save_sheet(dir: &Path, sheet: &GeneratedSheet) -> Result<SavedSheet> {
    std::fs::create_dir_all(dir).map_err(|source| crate::PixelGenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let stem = file_stem_for(&sheet.recipe.prompt, &sheet.key);
    let png = dir.join(format!("{stem}.png"));
    let json = dir.join(format!("{stem}.json"));
    let recipe = dir.join(format!("{stem}.pixelgen.ron"));
    let mut bytes = Vec::new();
    sheet
        .sheet
        .image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| crate::PixelGenError::Encode {
            path: png.clone(),
            message: e.to_string(),
        })?;
    write_atomic(&png, &bytes)?;
    let text = sheet
        .sheet
        .layout
        .to_aseprite_json(&format!("{stem}.png"), JsonForm::Hash);
    write_atomic(&json, text.as_bytes())?;
    write_atomic(&recipe, sheet.recipe.to_ron()?.as_bytes())?;
    Ok(SavedSheet { png, json, recipe })
}
