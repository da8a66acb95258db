//! Writing a finished sprite to disk: PNG plus a `.pixelgen.ron` recipe sidecar, atomically.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cache::CacheKey;
use crate::engine::GeneratedSprite;
use crate::error::{PixelGenError, Result};

/// Where [`save_sprite`] put a sprite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSprite {
    /// The PNG.
    pub png: PathBuf,
    /// The recipe sidecar (`NAME.pixelgen.ron`), which regenerates the PNG.
    pub recipe: PathBuf,
}

/// The file stem for a sprite: a slug of the prompt (at most 40 characters) and the short
/// cache key, e.g. `red-potion-3f2a9c1b0d4e5f60`.
pub fn file_stem(sprite: &GeneratedSprite) -> String {
    file_stem_for(&sprite.recipe.prompt, &sprite.key)
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

/// Saves `sprite` as `DIR/STEM.png` and `DIR/STEM.pixelgen.ron` (creating `dir`).
///
/// Each file is written to a temporary name in `dir` and renamed into place, so a reader
/// (the asset server's file watcher, a crash) never sees a half-written file. Blocking:
/// call it off the game's main schedule.
pub fn save_sprite(dir: &Path, sprite: &GeneratedSprite) -> Result<SavedSprite> {
    fs::create_dir_all(dir).map_err(|source| PixelGenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let stem = file_stem(sprite);
    let png = dir.join(format!("{stem}.png"));
    let recipe = dir.join(format!("{stem}.pixelgen.ron"));

    let mut bytes = Vec::new();
    sprite
        .image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| PixelGenError::Encode {
            path: png.clone(),
            message: e.to_string(),
        })?;
    write_atomic(&png, &bytes)?;
    write_atomic(&recipe, sprite.recipe.to_ron()?.as_bytes())?;
    Ok(SavedSprite { png, recipe })
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let io = |p: &Path, source| PixelGenError::Io {
        path: p.to_path_buf(),
        source,
    };
    fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelIdentity;
    use crate::recipe::{Recipe, Seed};
    use image::{Rgba, RgbaImage};
    use std::time::Duration;

    fn sprite(prompt: &str) -> GeneratedSprite {
        let mut recipe = Recipe::new(prompt);
        recipe.seed = Seed::Fixed(5);
        let key = CacheKey::new(&recipe, &ModelIdentity("m".into())).unwrap();
        let image = RgbaImage::from_fn(3, 2, |x, y| {
            Rgba([x as u8 * 80, y as u8 * 90, 7, 255 * (x % 2) as u8])
        });
        GeneratedSprite {
            image,
            recipe,
            key,
            raw_size: (24, 16),
            fell_back: false,
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
        let saved = save_sprite(&dir, &s).unwrap();
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
        let err = save_sprite(&file.join("sub"), &sprite("x")).unwrap_err();
        assert!(matches!(err, PixelGenError::Io { .. }), "{err}");
        fs::remove_file(&file).unwrap();
    }
}
