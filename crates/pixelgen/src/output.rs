//! Writing finished work to disk: PNG, a `.pixelgen.ron` recipe sidecar, for a sheet
//! Aseprite JSON and for a tileset a Tiled `.tsx` and an index table, each file atomically.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::RgbaImage;
use pixelgen_pixel::sheet::{JsonForm, SheetLayout};

use crate::cache::CacheKey;
use crate::cached::Generated;
use crate::error::{PixelGenError, Result};
use crate::recipe::Recipe;

/// Where [`save`] / [`save_as`] put a sprite or a sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFiles {
    /// The PNG.
    pub png: PathBuf,
    /// The recipe sidecar (`NAME.pixelgen.ron`), which regenerates the PNG.
    pub recipe: PathBuf,
    /// For a sheet: Aseprite-compatible JSON (hash form) describing the frames.
    pub json: Option<PathBuf>,
    /// For a tileset: the Tiled tileset (`NAME.tsx`, with a wangset) and the index table
    /// (`NAME.tiles.json`: atlas index per tile code, for `TilemapChunk` /
    /// `bevy_ecs_tilemap` / your own autotiler).
    pub tileset: Option<(PathBuf, PathBuf)>,
}

/// What [`save_as`] writes: an image, the recipe that made it and, for a sheet, its layout.
#[derive(Debug, Clone, Copy)]
pub struct Artwork<'a> {
    /// The sprite or sheet pixels.
    pub image: &'a RgbaImage,
    /// The recipe (seed fixed) that regenerates it.
    pub recipe: &'a Recipe,
    /// For a sheet: its frame layout (written as Aseprite JSON).
    pub layout: Option<&'a SheetLayout>,
}

impl Generated {
    /// The parts [`save_as`] writes.
    pub fn artwork(&self) -> Artwork<'_> {
        Artwork {
            image: &self.image,
            recipe: &self.recipe,
            layout: self.layout.as_ref(),
        }
    }
}

/// The file stem for finished work: a slug of the prompt (at most 40 characters) and the
/// short cache key, e.g. `red-potion-3f2a9c1b0d4e5f60`.
pub fn file_stem(generated: &Generated) -> String {
    file_stem_for(&generated.recipe.prompt, &generated.key)
}

/// [`file_stem`] from a prompt and a key.
pub fn file_stem_for(prompt: &str, key: &CacheKey) -> String {
    format!("{}-{}", prompt_slug(prompt), key.short())
}

/// The prompt as a file-name slug: lower-case ASCII letters and digits, every other run of
/// characters one `-`, at most 40 characters, `sprite` when nothing is left.
pub fn prompt_slug(prompt: &str) -> String {
    let mut slug = String::new();
    for c in prompt.chars() {
        if slug.len() >= 40 {
            break;
        }
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "sprite".to_owned()
    } else {
        slug.to_owned()
    }
}

/// Saves `generated` as `DIR/STEM.png` and `DIR/STEM.pixelgen.ron` (plus `DIR/STEM.json`
/// for a sheet), where `STEM` is [`file_stem`]; an existing file of that name is replaced
/// (the same stem means the same recipe and model, so the same pixels).
pub fn save(dir: &Path, generated: &Generated) -> Result<SavedFiles> {
    save_as(dir, &file_stem(generated), generated.artwork(), true)
}

/// Saves `art` as `DIR/STEM.png`, `DIR/STEM.pixelgen.ron`, for a sheet `DIR/STEM.json`
/// (Aseprite hash form) and for a tileset `DIR/STEM.tsx` (Tiled) and `DIR/STEM.tiles.json`
/// ([`TileIndex`](crate::tileset::TileIndex)), creating `dir`. `stem` may contain `/` for a subfolder. Without
/// `overwrite`, an existing file of any of these names is an error
/// ([`PixelGenError::Exists`]) and nothing is written. When a write fails (a full disk,
/// say), the files this call created are removed again and the error names the file that
/// failed; a file it replaced keeps its new content.
///
/// Every file goes through [`write_atomic`], so a reader (the asset server's file watcher,
/// a crash) never sees half a file. Blocking: call it off the game's main schedule.
///
/// # Crash safety
///
/// A process killed between two files (`kill -9`, a power cut) leaves no torn pair: the
/// recipe is written first, the Aseprite JSON next and the PNG last, so the PNG is the commit
/// marker: a PNG is only ever there beside its recipe (and JSON). The other order (PNG first,
/// recipe as the marker) would leave a PNG without recipe that a clean-up would have to
/// delete, and in a game's asset folder a PNG without recipe is just as likely the user's
/// own art: we never delete files we cannot prove are ours. What a kill can leave instead is
/// a recipe without its PNG, which loses nothing (the recipe regenerates the PNG; it is also
/// a valid recipe asset), and a temporary file, which the next save into the folder removes
/// ([`pixelgen_pixel::write::remove_stale_temps`]). Replacing a pair of another recipe under
/// the same stem (`overwrite`) can be cut between the files too: then the new recipe stands
/// beside the old PNG until it is regenerated or saved again.
pub fn save_as(dir: &Path, stem: &str, art: Artwork<'_>, overwrite: bool) -> Result<SavedFiles> {
    let png = dir.join(format!("{stem}.png"));
    let recipe = dir.join(format!("{stem}.pixelgen.ron"));
    let json = art.layout.map(|_| dir.join(format!("{stem}.json")));
    let tileset = art
        .layout
        .filter(|_| art.recipe.tileset.is_some())
        .map(|_| {
            (
                dir.join(format!("{stem}.tsx")),
                dir.join(format!("{stem}.tiles.json")),
            )
        });
    if !overwrite
        && let Some(existing) = [Some(&png), Some(&recipe), json.as_ref()]
            .into_iter()
            .flatten()
            .chain(tileset.iter().flat_map(|(a, b)| [a, b]))
            .find(|p| p.exists())
    {
        return Err(PixelGenError::Exists(existing.clone()));
    }
    // Encode everything before writing anything.
    let png_bytes = encode_png(&png, art.image)?;
    let recipe_text = art.recipe.to_ron()?;
    let png_name = png
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let json_text = art
        .layout
        .map(|layout| layout.to_aseprite_json(&png_name, JsonForm::Hash));
    let tileset_text = match (art.layout, &tileset) {
        (Some(layout), Some(_)) => Some(tileset_files(art.recipe, layout, &png_name)?),
        _ => None,
    };
    if let Some(parent) = png.parent() {
        prepare_dir(parent)?;
    }
    // The recipe first, the PNG last: see "Crash safety" above.
    let mut files: Vec<(&Path, &[u8])> = vec![(&recipe, recipe_text.as_bytes())];
    if let (Some(path), Some(text)) = (&json, &json_text) {
        files.push((path, text.as_bytes()));
    }
    if let (Some((tsx, index)), Some((tsx_text, index_text))) = (&tileset, &tileset_text) {
        files.push((tsx, tsx_text.as_bytes()));
        files.push((index, index_text.as_bytes()));
    }
    files.push((&png, &png_bytes));
    let mut created = Vec::new();
    for (path, bytes) in files {
        let new = !path.exists();
        if let Err(e) = write_atomic(path, bytes) {
            // All or nothing: files this call created go again (replaced ones stay new).
            for p in created {
                let _ = fs::remove_file(p);
            }
            return Err(e);
        }
        if new {
            created.push(path);
        }
    }
    Ok(SavedFiles {
        png,
        recipe,
        json,
        tileset,
    })
}

/// A tileset's Tiled `.tsx` and its index table as JSON, for the atlas `png_name`.
fn tileset_files(
    recipe: &Recipe,
    layout: &SheetLayout,
    png_name: &str,
) -> Result<(String, String)> {
    let tsx = crate::tileset::tiled_tileset(recipe, layout, png_name)?.to_tsx();
    let index = crate::tileset::tile_index(recipe, layout)?;
    let json = serde_json::to_string_pretty(&index).map_err(|e| PixelGenError::RecipeFormat {
        format: "json",
        message: e.to_string(),
    })?;
    Ok((tsx, json))
}

/// `image` as PNG bytes; `path` names the file in the error.
pub(crate) fn encode_png(path: &Path, image: &RgbaImage) -> Result<Vec<u8>> {
    pixelgen_pixel::write::encode_png(image).map_err(|e| PixelGenError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes `bytes` to `path` so that `path` holds either its old content or all of `bytes`:
/// a temporary file in the same folder is written, flushed to the disk (`fsync`) and renamed
/// over `path`, then the folder is synced so the rename survives a power cut. On any error
/// (a full disk included) the temporary file is removed and the error names the file that
/// failed. The workspace's one writer, [`pixelgen_pixel::write::write_atomic`], with this
/// crate's error type.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    pixelgen_pixel::write::write_atomic(path, bytes).map_err(|source| PixelGenError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates `dir` and, the first time this process writes there, removes the temporary files
/// a writer killed mid-write left in it ([`pixelgen_pixel::write::remove_stale_temps`]: only
/// our own temp-name pattern, only of processes that are gone). One `read_dir` per folder
/// per process; a failed clean-up is logged, never an error (the write itself decides).
pub(crate) fn prepare_dir(dir: &Path) -> Result<()> {
    static CLEANED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    fs::create_dir_all(dir).map_err(|source| PixelGenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let first = CLEANED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(dir.to_path_buf());
    if first {
        match pixelgen_pixel::write::remove_stale_temps(dir) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "removed {n} temporary file(s) of interrupted writes in {}",
                dir.display()
            ),
            Err(e) => tracing::warn!("cannot clean interrupted writes in {}: {e}", dir.display()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelIdentity;
    use crate::recipe::{Recipe, Seed};
    use image::{Rgba, RgbaImage};
    use std::time::Duration;

    fn sprite(prompt: &str) -> Generated {
        let mut recipe = Recipe::new(prompt);
        recipe.seed = Seed::Fixed(5);
        let key = CacheKey::new(&recipe, &ModelIdentity("m".into())).unwrap();
        let image = RgbaImage::from_fn(3, 2, |x, y| {
            Rgba([x as u8 * 80, y as u8 * 90, 7, 255 * (x % 2) as u8])
        });
        Generated {
            image,
            layout: None,
            recipe,
            key,
            from_cache: false,
            fell_back: false,
            consistency: None,
            tileset: None,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn stems_are_slugged_and_keyed() {
        let s = sprite("Red Potion, glowing!!");
        assert_eq!(
            file_stem(&s),
            format!("red-potion-glowing-{}", s.key.short())
        );
        let s = sprite("???");
        assert_eq!(file_stem(&s), format!("sprite-{}", s.key.short()));
        let long = sprite(&"a".repeat(100));
        assert!(file_stem(&long).len() <= 40 + 1 + 16);
    }

    #[test]
    fn saves_png_and_recipe_that_read_back() {
        let dir = std::env::temp_dir().join(format!(
            "pixelgen-out-{}-{}",
            std::process::id(),
            Seed::draw()
        ));
        let s = sprite("chest");
        let saved = save(&dir, &s).unwrap();
        let back = image::open(&saved.png).unwrap().into_rgba8();
        assert_eq!(back, s.image, "PNG round-trips pixel-exact, alpha included");
        let recipe = Recipe::from_ron(&fs::read_to_string(&saved.recipe).unwrap()).unwrap();
        assert_eq!(recipe, s.recipe);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "no temporary files left");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_folder_is_an_error() {
        let file = std::env::temp_dir().join(format!("pixelgen-notadir-{}", Seed::draw()));
        fs::write(&file, b"x").unwrap();
        let err = save(&file.join("sub"), &sprite("x")).unwrap_err();
        assert!(matches!(err, PixelGenError::Io { .. }), "{err}");
        fs::remove_file(&file).unwrap();
    }

    #[test]
    fn a_sheet_saves_with_its_json_and_existing_files_are_kept_unless_overwriting() {
        let dir = std::env::temp_dir().join(format!("pixelgen-out-sheet-{}", Seed::draw()));
        let mut s = sprite("walk");
        let frames: Vec<_> = (0..2u8)
            .map(|i| {
                pixelgen_pixel::sheet::Frame::new(RgbaImage::from_pixel(2, 2, Rgba([i, 0, 0, 255])))
            })
            .collect();
        let sheet = pixelgen_pixel::sheet::pack(&frames, &Default::default()).unwrap();
        s.image = sheet.image;
        s.layout = Some(sheet.layout);
        let saved = save_as(&dir, "hero/walk", s.artwork(), false).unwrap();
        assert_eq!(saved.png, dir.join("hero/walk.png"));
        let json = fs::read_to_string(saved.json.as_ref().expect("a sheet has JSON")).unwrap();
        assert!(json.contains("\"image\": \"walk.png\""), "{json}");
        assert_eq!(image::open(&saved.png).unwrap().into_rgba8(), s.image);
        // Without overwrite nothing is touched; with it, everything is replaced.
        let before = fs::read(&saved.recipe).unwrap();
        let mut other = s.clone();
        other.recipe.prompt = "run".into();
        let err = save_as(&dir, "hero/walk", other.artwork(), false).unwrap_err();
        assert!(
            matches!(err, PixelGenError::Exists(ref p) if p == &saved.png),
            "{err}"
        );
        assert_eq!(fs::read(&saved.recipe).unwrap(), before);
        save_as(&dir, "hero/walk", other.artwork(), true).unwrap();
        assert_ne!(fs::read(&saved.recipe).unwrap(), before);
        fs::remove_dir_all(&dir).unwrap();
    }
}
