//! Asset-pack manifests (RON or TOML): an assets folder, recipe defaults and named items.
//!
//! ```ron
//! (
//!     assets: "assets",
//!     model: "pixel-art-fast",
//!     defaults: (size: (width: 32, height: 32), steps: 8),
//!     items: [
//!         (name: "items/potion", prompt: "red health potion"),
//!         (name: "items/sword", prompt: "steel sword", seed: fixed(7)),
//!         (name: "heroes/knight", recipe: "knight.pixelgen.ron"),
//!     ],
//! )
//! ```
//!
//! Each item's recipe is `Recipe::default()` with the defaults over it, then the item's own
//! fields over that; an item with `recipe: FILE` starts from that file instead of the defaults.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use pixelgen::{
    EditRecipe, Frames, LoraRef, PixelOptions, Priority, Recipe, SchedulerKind, Seed, SetRecipe,
    SheetOptions, Size, TilesetRecipe, TimestepSpacing,
};
use ron::extensions::Extensions;
use serde::Deserialize;

use crate::Result;

/// Declares the recipe fields a manifest may set, once for the defaults ([`Fields`]) and once
/// for an item ([`Item`]): `opt` fields are `Option`s in [`Recipe`], `plain` fields are not.
macro_rules! recipe_fields {
    (opt { $($o:ident: $ot:ty,)* } plain { $($p:ident: $pt:ty,)* }) => {
        /// Recipe fields of a manifest's `defaults`: each one set overrides [`Recipe::default`].
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Fields {
            $(#[allow(missing_docs)] pub $o: Option<$ot>,)*
            $(#[allow(missing_docs)] pub $p: Option<$pt>,)*
        }

        /// One asset of a manifest: where it goes and the recipe fields it sets.
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Item {
            /// The item's name: its output path under the assets folder, without `.png`
            /// (e.g. `sprites/potion`), unless `path` names another.
            pub name: String,
            /// The output path under the assets folder (default: `name`), without `.png`.
            pub path: Option<String>,
            /// A `.pixelgen.ron` recipe file (relative to the manifest) to start from instead
            /// of the defaults.
            pub recipe: Option<PathBuf>,
            $(#[allow(missing_docs)] pub $o: Option<$ot>,)*
            $(#[allow(missing_docs)] pub $p: Option<$pt>,)*
        }

        impl Fields {
            /// Sets every field given here on `r`.
            pub fn apply(&self, r: &mut Recipe) {
                $(if let Some(v) = &self.$o { r.$o = Some(v.clone()); })*
                $(if let Some(v) = &self.$p { r.$p = v.clone(); })*
            }
        }

        impl Item {
            /// The recipe fields this item sets.
            pub fn fields(&self) -> Fields {
                Fields {
                    $($o: self.$o.clone(),)*
                    $($p: self.$p.clone(),)*
                }
            }
        }
    };
}

recipe_fields! {
    opt {
        negative: String,
        steps: usize,
        guidance: f64,
        sampler: SchedulerKind,
        karras: bool,
        timestep_spacing: TimestepSpacing,
        pixel: PixelOptions,
        sheet: SheetOptions,
        model: String,
        set: SetRecipe,
        edit: EditRecipe,
        tileset: TilesetRecipe,
    }
    plain {
        prompt: String,
        seed: Seed,
        size: Size,
        generation_size: Size,
        frames: Frames,
        priority: Priority,
        loras: Vec<LoraRef>,
        tiling: bool,
    }
}

/// A whole manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Manifest {
    /// The assets folder, relative to the manifest (default `assets`).
    pub assets: Option<PathBuf>,
    /// The model every item runs on: a diffusers folder (relative to the manifest), a
    /// checkpoint or a registry name; `--model` overrides it.
    pub model: Option<String>,
    /// Recipe fields every item starts from.
    pub defaults: Fields,
    /// The assets to make.
    pub items: Vec<Item>,
}

/// A manifest read from a file, with what is needed to report errors by line.
#[derive(Debug)]
pub struct Loaded {
    /// The manifest file as given.
    pub path: PathBuf,
    /// Its folder (relative paths in the manifest are relative to it).
    pub dir: PathBuf,
    /// Its text.
    pub text: String,
    /// The parsed manifest.
    pub manifest: Manifest,
}

/// 1-based line of the byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Reads and parses the manifest at `path`: `.toml` as TOML, anything else as RON. A syntax or
/// field error is `MANIFEST:LINE: message`.
pub fn load(path: &Path) -> Result<Loaded> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read manifest {}: {e}", path.display()))?;
    let is_toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let manifest: Manifest = if is_toml {
        toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start)).unwrap_or(1);
            let msg = e.message().lines().next().unwrap_or("invalid TOML").trim();
            format!("{}:{line}: {msg}", path.display())
        })?
    } else {
        ron::Options::default()
            .with_default_extension(Extensions::IMPLICIT_SOME)
            .from_str(&text)
            .map_err(|e| {
                format!(
                    "{}:{}:{}: {}",
                    path.display(),
                    e.span.start.line,
                    e.span.start.col,
                    e.code
                )
            })?
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let loaded = Loaded {
        path: path.to_path_buf(),
        dir,
        text,
        manifest,
    };
    loaded.check()?;
    Ok(loaded)
}

impl Loaded {
    /// The line of item `i` (where its name is written), for error messages.
    pub fn item_line(&self, i: usize) -> usize {
        let name = &self.manifest.items[i].name;
        let quoted = format!("\"{name}\"");
        // The first line naming it after the first line naming any earlier item.
        let mut from = 0;
        for item in &self.manifest.items[..i] {
            let q = format!("\"{}\"", item.name);
            if let Some(p) = self.text[from..].find(&q) {
                from += p + q.len();
            }
        }
        self.text[from..]
            .find(&quoted)
            .map(|p| line_of(&self.text, from + p))
            .unwrap_or(1)
    }

    /// The line of the first top-level-looking `key:` (RON) or `key =` (TOML), for errors in
    /// manifest-wide fields; 1 when not found.
    pub fn key_line(&self, key: &str) -> usize {
        self.text
            .lines()
            .position(|l| {
                let t = l.trim_start();
                t.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with([':', '=']))
            })
            .map_or(1, |i| i + 1)
    }

    /// `MANIFEST:LINE: item `NAME`: message` for item `i`.
    pub fn item_error(&self, i: usize, message: impl std::fmt::Display) -> crate::Error {
        format!(
            "{}:{}: item `{}`: {message}",
            self.path.display(),
            self.item_line(i),
            self.manifest.items[i].name
        )
        .into()
    }

    /// The assets folder.
    pub fn assets(&self) -> PathBuf {
        self.dir.join(
            self.manifest
                .assets
                .as_deref()
                .unwrap_or(Path::new("assets")),
        )
    }

    /// Item `i`'s output path under the assets folder, without `.png`.
    pub fn output(&self, i: usize) -> PathBuf {
        let item = &self.manifest.items[i];
        let rel = item.path.as_deref().unwrap_or(&item.name);
        let rel = rel.strip_suffix(".png").unwrap_or(rel);
        self.assets().join(rel)
    }

    /// Names and paths: present, unique, relative, inside the assets folder.
    fn check(&self) -> Result<()> {
        let mut seen = HashSet::new();
        for (i, item) in self.manifest.items.iter().enumerate() {
            if item.name.trim().is_empty() {
                return Err(self.item_error(i, "has no `name`"));
            }
            let rel = Path::new(item.path.as_deref().unwrap_or(&item.name));
            let inside = rel.components().all(|c| matches!(c, Component::Normal(_)));
            if !inside {
                return Err(self.item_error(
                    i,
                    format!(
                        "path `{}` must be relative and stay inside the assets folder",
                        rel.display()
                    ),
                ));
            }
            if !seen.insert(self.output(i)) {
                return Err(self.item_error(i, "another item writes the same file"));
            }
        }
        Ok(())
    }

    /// Item `i`'s recipe: the defaults (or its recipe file) with its own fields over them.
    pub fn recipe(&self, i: usize) -> Result<Recipe> {
        let item = &self.manifest.items[i];
        let mut r = match &item.recipe {
            Some(file) => {
                let path = self.dir.join(file);
                crate::generate::read_recipe(&path).map_err(|e| self.item_error(i, e))?
            }
            None => {
                let mut r = Recipe::default();
                self.manifest.defaults.apply(&mut r);
                r
            }
        };
        item.fields().apply(&mut r);
        if r.prompt.trim().is_empty() {
            return Err(self.item_error(i, "has no prompt (set `prompt`, or a `recipe` file)"));
        }
        Ok(r)
    }
}
