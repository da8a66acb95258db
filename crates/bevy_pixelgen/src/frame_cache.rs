//! Sheet frames that are not generated twice: from an identical frame of the same sheet, the
//! worker's memory or the disk cache.

use std::collections::HashMap;
use std::time::Duration;

use image::RgbaImage;
use pixelgen::{
    CacheKey, Control, DiskCache, GeneratedSprite, ModelIdentity, PixelGenError, Progress, Recipe,
    SpriteEngine,
};

use crate::memory_cache::MemoryCache;

/// Wraps the engine while a sheet is made (`pixelgen::generate_sheet` asks it for one sprite
/// per frame). A frame whose single-sprite recipe was made before is not generated again:
/// it comes from the frames made so far for this sheet (e.g. `["idle", "blink", "idle"]`
/// runs the model twice), else from the worker's memory of recent sprites, else from the
/// disk cache. Every generated frame is kept in memory and on disk under the key a sprite
/// request with that recipe has (so sheets and sprites share work both ways).
pub(crate) struct FrameCache<'a> {
    engine: &'a mut dyn SpriteEngine,
    memory: &'a mut MemoryCache,
    cache: Option<&'a DiskCache>,
    identity: Option<ModelIdentity>,
    made: HashMap<CacheKey, RgbaImage>,
    /// The step count the engine reported for its last frame: a reused frame reports its
    /// steps in the same unit (so a sheet's progress adds up).
    engine_total: Option<usize>,
}

impl<'a> FrameCache<'a> {
    pub(crate) fn new(
        engine: &'a mut dyn SpriteEngine,
        memory: &'a mut MemoryCache,
        cache: Option<&'a DiskCache>,
    ) -> Self {
        Self {
            engine,
            memory,
            cache,
            identity: None,
            made: HashMap::new(),
            engine_total: None,
        }
    }

    /// The frame made before, if any (an unreadable cache entry is a miss).
    fn lookup(&mut self, key: &CacheKey) -> Option<RgbaImage> {
        if let Some(image) = self.made.get(key) {
            return Some(image.clone());
        }
        if let Some(image) = self.memory.get(key) {
            return Some(image);
        }
        match self.cache?.get_sprite(key) {
            Ok(hit) => hit,
            Err(e) => {
                bevy::log::warn!("pixelgen: ignoring the cached frame {key}: {e}");
                None
            }
        }
    }
}

impl SpriteEngine for FrameCache<'_> {
    fn model_identity(&mut self) -> pixelgen::Result<ModelIdentity> {
        if let Some(id) = &self.identity {
            return Ok(id.clone());
        }
        let id = self.engine.model_identity()?;
        self.identity = Some(id.clone());
        Ok(id)
    }

    fn generate(
        &mut self,
        recipe: &Recipe,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> pixelgen::Result<GeneratedSprite> {
        let recipe = recipe.clone().with_drawn_seed();
        let key = CacheKey::new(&recipe, &self.model_identity()?)?;
        if let Some(image) = self.lookup(&key) {
            // The frame's steps count as done at once.
            let steps = self.engine_total.unwrap_or(recipe.steps).max(1);
            let done = Progress {
                step: steps,
                total: steps,
                preview: None,
            };
            if progress(&done) == Control::Cancel {
                return Err(PixelGenError::Cancelled {
                    step: steps,
                    total: steps,
                });
            }
            self.made.insert(key, image.clone());
            return Ok(GeneratedSprite {
                image,
                recipe,
                key,
                raw_size: (0, 0),
                fell_back: false,
                elapsed: Duration::ZERO,
            });
        }
        let mut total = None;
        let mut report = |p: &Progress| {
            total = Some(p.total);
            progress(p)
        };
        let sprite = self.engine.generate(&recipe, &mut report)?;
        self.engine_total = total.or(self.engine_total);
        if let Some(cache) = self.cache
            && let Err(e) = cache.put_sprite(&sprite.key, &sprite.image)
        {
            bevy::log::warn!("pixelgen: cannot cache the frame {}: {e}", sprite.key);
        }
        self.memory.put(sprite.key, &sprite.image);
        self.made.insert(sprite.key, sprite.image.clone());
        Ok(sprite)
    }
}
