//! Content-addressed cache keys: SHA-256 of a recipe's canonical form and the model identity.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{PixelGenError, Result};
use crate::model::{ModelIdentity, hex};
use crate::recipe::{Recipe, Seed};

/// Bumped when the key's inputs or the generator's output change meaning.
const KEY_VERSION: &str = "pixelgen-cache-v1";

/// A sprite's content address: equal keys mean equal pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The key of `recipe` run on `model`. The recipe's seed must be fixed (draw it first
    /// with [`Recipe::with_drawn_seed`]); priority is left out since it does not change pixels,
    /// and `pixel: None` is keyed as the options it stands for. Each LoRA of the recipe is
    /// keyed by its path, strengths and the SHA-256 of its file content (computed once per
    /// path, size and modification time), so replacing a LoRA file changes the key; a set's
    /// reference image likewise.
    pub fn new(recipe: &Recipe, model: &ModelIdentity) -> Result<Self> {
        if recipe.seed == Seed::Random {
            return Err(PixelGenError::InvalidRecipe {
                field: "seed",
                message:
                    "is random: draw it (Recipe::with_drawn_seed) before computing a cache key"
                        .into(),
            });
        }
        let mut keyed = recipe.clone();
        keyed.pixel = Some(recipe.pixel_options());
        keyed.priority = Default::default();
        let value = serde_json::to_value(&keyed).map_err(|e| PixelGenError::RecipeFormat {
            format: "json",
            message: e.to_string(),
        })?;
        let mut canonical = String::new();
        write_canonical(&value, &mut canonical);
        let mut h = Sha256::new();
        h.update(KEY_VERSION.as_bytes());
        h.update([0]);
        h.update(model.0.as_bytes());
        h.update([0]);
        h.update(canonical.as_bytes());
        // Recipes without LoRAs keep the keys they had before LoRA contents were keyed.
        for l in &recipe.loras {
            h.update(b"\0lora-content:");
            h.update(crate::digest::file_digest_hex(&l.path).as_bytes());
        }
        // A set drawn after a user's image, an edited sprite and its mask: their content,
        // not only their paths.
        if let Some(r) = recipe.set.as_ref().and_then(|s| s.reference_image()) {
            h.update(b"\0reference-content:");
            h.update(crate::digest::file_digest_hex(&r.path).as_bytes());
        }
        if let Some(e) = &recipe.edit {
            for path in std::iter::once(e.source.as_path()).chain(e.mask_file()) {
                h.update(b"\0edit-content:");
                h.update(crate::digest::file_digest_hex(path).as_bytes());
            }
        }
        Ok(CacheKey(h.finalize().into()))
    }

    /// This key joined with `bytes` under `tag`: the key of an output that depends on more
    /// than the recipe (pixels held in memory, a tile's place in a set).
    pub fn extended(&self, tag: &[u8], bytes: &[u8]) -> CacheKey {
        let digest = Sha256::new()
            .chain_update(KEY_VERSION.as_bytes())
            .chain_update(b"\0extended\0")
            .chain_update(self.0)
            .chain_update((tag.len() as u64).to_le_bytes())
            .chain_update(tag)
            .chain_update(bytes)
            .finalize();
        CacheKey(digest.into())
    }

    /// The full key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The first 16 hex digits, for file names.
    pub fn short(&self) -> String {
        hex(&self.0[..8])
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A seed derived from everything else in `recipe` (prompt, sizes, steps, pixel options...;
/// not its seed or priority): the same recipe text always gets the same seed. Used for recipe
/// files that leave `seed` random, so a file always yields the same sprite and can be cached.
pub(crate) fn content_seed(recipe: &Recipe) -> Result<u64> {
    let mut keyed = recipe.clone();
    keyed.seed = Seed::Random;
    keyed.pixel = Some(recipe.pixel_options());
    keyed.priority = Default::default();
    let value = serde_json::to_value(&keyed).map_err(|e| PixelGenError::RecipeFormat {
        format: "json",
        message: e.to_string(),
    })?;
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    let digest = Sha256::new()
        .chain_update(b"pixelgen-content-seed-v1\0")
        .chain_update(canonical.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Ok(u64::from_le_bytes(first))
}

/// Compact JSON with object keys sorted, whatever map order serde_json was built with.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(child) = map.get(k) {
                    write_canonical(child, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{Priority, Size};

    fn model() -> ModelIdentity {
        ModelIdentity("local:/m;fingerprint=abc".into())
    }

    fn recipe() -> Recipe {
        let mut r = Recipe::new("red potion");
        r.seed = Seed::Fixed(1);
        r
    }

    #[test]
    fn same_recipe_same_key_and_every_pixel_field_matters() {
        let base = CacheKey::new(&recipe(), &model()).unwrap();
        assert_eq!(base, CacheKey::new(&recipe(), &model()).unwrap());
        let changed: Vec<Recipe> = vec![
            Recipe {
                prompt: "blue potion".into(),
                ..recipe()
            },
            Recipe {
                seed: Seed::Fixed(2),
                ..recipe()
            },
            Recipe {
                steps: Some(31),
                ..recipe()
            },
            Recipe {
                guidance: Some(5.5),
                ..recipe()
            },
            Recipe {
                size: Size::square(16),
                ..recipe()
            },
            Recipe {
                generation_size: Size::square(512),
                ..recipe()
            },
            Recipe {
                negative: Some("blur".into()),
                ..recipe()
            },
            Recipe {
                loras: vec![crate::recipe::LoraRef::new("pixel.safetensors", 1.0)],
                ..recipe()
            },
            Recipe {
                model: Some("pixel-art".into()),
                ..recipe()
            },
            Recipe {
                karras: Some(true),
                ..recipe()
            },
            Recipe {
                timestep_spacing: Some(pixelgen_diffusion::TimestepSpacing::Trailing),
                ..recipe()
            },
            Recipe {
                tiling: true,
                ..recipe()
            },
        ];
        // A LoRA's strength is part of the key, UNet and text alike.
        let lora = |u: f64, t: f64| Recipe {
            loras: vec![crate::recipe::LoraRef {
                path: "pixel.safetensors".into(),
                unet_strength: u,
                text_strength: t,
            }],
            ..recipe()
        };
        let full = CacheKey::new(&lora(1.0, 1.0), &model()).unwrap();
        assert_ne!(CacheKey::new(&lora(0.5, 1.0), &model()).unwrap(), full);
        assert_ne!(CacheKey::new(&lora(1.0, 0.5), &model()).unwrap(), full);
        // Recipes without LoRAs, a model name or tiling keep the keys they had before these fields.
        let json = serde_json::to_string(&recipe()).unwrap();
        assert!(
            !json.contains("loras") && !json.contains("\"model\"") && !json.contains("tiling"),
            "{json}"
        );
        for r in &changed {
            assert_ne!(CacheKey::new(r, &model()).unwrap(), base, "{r:?}");
        }
        let other_model = ModelIdentity("local:/m;fingerprint=abd".into());
        assert_ne!(CacheKey::new(&recipe(), &other_model).unwrap(), base);
    }

    #[test]
    fn a_changed_lora_file_at_the_same_path_changes_the_key() {
        let dir = std::env::temp_dir().join(format!("pixelgen-key-lora-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pixel.safetensors");
        let with = Recipe {
            loras: vec![crate::recipe::LoraRef::new(&path, 1.0)],
            ..recipe()
        };
        let missing = CacheKey::new(&with, &model()).unwrap();
        std::fs::write(&path, b"first lora").unwrap();
        let first = CacheKey::new(&with, &model()).unwrap();
        assert_ne!(first, missing);
        assert_eq!(first, CacheKey::new(&with, &model()).unwrap(), "stable");
        // Retrained: same path and size, other bytes, a later mtime.
        std::fs::write(&path, b"other lora").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let second = CacheKey::new(&with, &model()).unwrap();
        assert_ne!(second, first, "the LoRA's content is part of the key");
        assert_ne!(second, CacheKey::new(&recipe(), &model()).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn priority_and_implicit_defaults_do_not_change_the_key() {
        let base = CacheKey::new(&recipe(), &model()).unwrap();
        let editor = Recipe {
            priority: Priority::Editor,
            ..recipe()
        };
        assert_eq!(CacheKey::new(&editor, &model()).unwrap(), base);
        let explicit = Recipe {
            pixel: Some(recipe().pixel_options()),
            ..recipe()
        };
        assert_eq!(CacheKey::new(&explicit, &model()).unwrap(), base);
    }

    #[test]
    fn random_seed_has_no_key() {
        let r = Recipe::new("x");
        assert!(CacheKey::new(&r, &model()).is_err());
        assert!(CacheKey::new(&r.with_drawn_seed(), &model()).is_ok());
    }

    #[test]
    fn canonical_form_sorts_keys_at_every_level() {
        let a: Value =
            serde_json::from_str(r#"{"b": {"y": 1, "x": [2, {"q": 1, "p": 0}]}, "a": "s"}"#)
                .unwrap();
        let mut s = String::new();
        write_canonical(&a, &mut s);
        assert_eq!(s, r#"{"a":"s","b":{"x":[2,{"p":0,"q":1}],"y":1}}"#);
    }

    #[test]
    fn hex_forms() {
        let k = CacheKey::new(&recipe(), &model()).unwrap();
        assert_eq!(k.to_hex().len(), 64);
        assert!(k.to_hex().starts_with(&k.short()));
        assert!(k.to_hex().chars().all(|c| c.is_ascii_hexdigit()));
    }
}
