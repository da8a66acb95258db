//! [`DiskCache`]: finished sprites and sheets stored by [`CacheKey`] in one folder.

use std::fs;
use std::path::{Path, PathBuf};

use image::RgbaImage;
use pixelgen_pixel::sheet::{Sheet, SheetLayout};

use crate::cache::CacheKey;
use crate::error::{PixelGenError, Result};
use crate::output::{encode_png, prepare_dir, write_atomic};

/// A content-addressed store of finished work: `KEY.png` for a sprite, `KEY.png` plus
/// `KEY.layout.json` for a sheet (its frame layout), where `KEY` is the 64-digit cache key.
///
/// A hit returns exactly the pixels the model produced for that recipe and model, so a host
/// can skip the model entirely. Entries are written through a temporary file and a rename,
/// so a crash or a concurrent reader never sees half a file; the temporary files of a
/// process killed mid-write are removed by the next process's first write to the cache.
/// Blocking: use it off the main schedule (a worker thread, an asset loader task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// A cache in `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the PNG of `key` lives.
    pub fn image_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.png", key.to_hex()))
    }

    /// Where the sheet layout of `key` lives.
    pub fn layout_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.layout.json", key.to_hex()))
    }

    /// The sprite stored under `key`: `Ok(None)` when there is none, an error when the entry
    /// exists but cannot be read (callers usually treat that as a miss and regenerate).
    pub fn get_sprite(&self, key: &CacheKey) -> Result<Option<RgbaImage>> {
        read_png(&self.image_path(key))
    }

    /// Stores a sprite under `key`; returns the PNG's path.
    pub fn put_sprite(&self, key: &CacheKey, image: &RgbaImage) -> Result<PathBuf> {
        self.create_dir()?;
        let path = self.image_path(key);
        write_atomic(&path, &encode_png(&path, image)?)?;
        Ok(path)
    }

    /// The sheet stored under `key` (image and layout): `Ok(None)` when either file is
    /// missing, an error when they exist but cannot be read or do not match.
    pub fn get_sheet(&self, key: &CacheKey) -> Result<Option<Sheet>> {
        let layout_path = self.layout_path(key);
        if !layout_path.is_file() {
            return Ok(None);
        }
        let Some(image) = read_png(&self.image_path(key))? else {
            return Ok(None);
        };
        let text = fs::read_to_string(&layout_path).map_err(|source| PixelGenError::Io {
            path: layout_path.clone(),
            source,
        })?;
        let layout: SheetLayout =
            serde_json::from_str(&text).map_err(|e| PixelGenError::Encode {
                path: layout_path.clone(),
                message: format!("not a sheet layout: {e}"),
            })?;
        let (w, h) = image.dimensions();
        if let Some(f) = layout.frames.iter().find(|f| {
            f.rect.x.saturating_add(f.rect.w) > w || f.rect.y.saturating_add(f.rect.h) > h
        }) {
            return Err(PixelGenError::Encode {
                path: layout_path,
                message: format!(
                    "frame rect {:?} lies outside the {w}x{h} sheet image: delete the entry",
                    f.rect
                ),
            });
        }
        Ok(Some(Sheet { image, layout }))
    }

    /// Stores a sheet under `key` (layout first, then the image whose presence completes
    /// the entry); returns the PNG's path.
    pub fn put_sheet(&self, key: &CacheKey, sheet: &Sheet) -> Result<PathBuf> {
        self.create_dir()?;
        let layout_path = self.layout_path(key);
        let json = serde_json::to_string(&sheet.layout).map_err(|e| PixelGenError::Encode {
            path: layout_path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&layout_path, json.as_bytes())?;
        let path = self.image_path(key);
        write_atomic(&path, &encode_png(&path, &sheet.image)?)?;
        Ok(path)
    }

    /// Creates the folder; the first write of this process there also removes temporary
    /// files that a writer killed mid-write left ([`crate::output::prepare_dir`]).
    fn create_dir(&self) -> Result<()> {
        prepare_dir(&self.dir)
    }
}

fn read_png(path: &Path) -> Result<Option<RgbaImage>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PixelGenError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map(|img| Some(img.into_rgba8()))
        .map_err(|e| PixelGenError::Encode {
            path: path.to_path_buf(),
            message: format!("unreadable cache entry ({e}): delete it to regenerate"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelIdentity;
    use crate::recipe::{Recipe, Seed};
    use image::Rgba;
    use pixelgen_pixel::sheet::{Frame, SheetOptions, pack};

    fn key(prompt: &str) -> CacheKey {
        let mut r = Recipe::new(prompt);
        r.seed = Seed::Fixed(1);
        CacheKey::new(&r, &ModelIdentity("m".into())).unwrap()
    }

    fn temp() -> DiskCache {
        DiskCache::new(std::env::temp_dir().join(format!(
            "pixelgen-disk-{}-{}",
            std::process::id(),
            Seed::draw()
        )))
    }

    #[test]
    fn sprites_round_trip_and_misses_are_none() {
        let cache = temp();
        let k = key("coin");
        assert!(
            cache.get_sprite(&k).unwrap().is_none(),
            "empty cache misses"
        );
        let img = RgbaImage::from_fn(3, 2, |x, y| {
            Rgba([x as u8 * 70, y as u8 * 100, 5, 255 * (x % 2) as u8])
        });
        let path = cache.put_sprite(&k, &img).unwrap();
        assert_eq!(path, cache.dir().join(format!("{}.png", k.to_hex())));
        assert_eq!(
            cache.get_sprite(&k).unwrap(),
            Some(img),
            "pixel-exact, alpha included"
        );
        assert!(cache.get_sprite(&key("other")).unwrap().is_none());
        // A corrupt entry is an error naming the file, not a panic.
        fs::write(cache.image_path(&k), b"not a png").unwrap();
        let err = cache.get_sprite(&k).unwrap_err();
        assert!(err.to_string().contains(&k.to_hex()), "{err}");
        fs::remove_dir_all(cache.dir()).unwrap();
    }

    #[test]
    fn sheets_round_trip_with_their_layout() {
        let cache = temp();
        let k = key("walk");
        let frames: Vec<Frame> = (0..3u8)
            .map(|i| Frame::new(RgbaImage::from_pixel(4, 4, Rgba([i * 80, 10, 20, 255]))))
            .collect();
        let sheet = pack(
            &frames,
            &SheetOptions {
                columns: Some(2),
                padding: 1,
                ..SheetOptions::default()
            },
        )
        .unwrap();
        assert!(cache.get_sheet(&k).unwrap().is_none());
        cache.put_sheet(&k, &sheet).unwrap();
        let back = cache.get_sheet(&k).unwrap().expect("hit");
        assert_eq!(back.image, sheet.image);
        assert_eq!(back.layout, sheet.layout);
        // The image alone (a sprite entry) is not a sheet: the layout must be there too.
        let sprite_only = key("sprite only");
        cache.put_sprite(&sprite_only, &sheet.image).unwrap();
        assert!(cache.get_sheet(&sprite_only).unwrap().is_none());
        // A layout whose frames do not fit the image is reported.
        cache.put_sprite(&k, &RgbaImage::new(2, 2)).unwrap();
        assert!(cache.get_sheet(&k).is_err());
        fs::remove_dir_all(cache.dir()).unwrap();
    }
}
