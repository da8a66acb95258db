//! The editor's plain state: form fields, style presets, queue and gallery (no egui here).

use std::path::{Path, PathBuf};

use bevy::ecs::resource::Resource;
use pixelgen::{Frames, LoraRef, PixelOptions, Priority, Recipe, SchedulerKind, Seed, Size};
use pixelgen_pixel::cleanup::OutlineOptions;
use pixelgen_pixel::palette::Palette;
use pixelgen_pixel::quantize::{ColorCount, Dither};
use serde::{Deserialize, Serialize};

/// Smallest true output side the editor offers, in pixels.
pub const MIN_EDITOR_SIDE: u32 = 8;
/// Largest true output side the editor offers, in pixels.
pub const MAX_EDITOR_SIDE: u32 = 256;
/// Most frames the editor puts in one sheet.
pub const MAX_EDITOR_FRAMES: u32 = 64;

/// Why the editor could not do what was asked (shown in the panel, never a panic).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditorError {
    /// A preset file could not be read or parsed.
    #[error("preset {path}: {message}")]
    Preset {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The palette name is neither built in nor a readable palette file.
    #[error("palette {name:?}: {message}")]
    Palette {
        /// The name or path given.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The recipe the form describes is invalid (empty prompt, bad size, ...).
    #[error("{0}")]
    Recipe(String),
    /// A name for "save to assets" that cannot be a file name.
    #[error("cannot save as {name:?}: {why}")]
    Name {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// "Save to assets" would replace a file and overwriting was not confirmed.
    #[error("{} exists already: confirm to overwrite it, or choose another name", .0.display())]
    Exists(PathBuf),
    /// Writing a file failed.
    #[error("cannot write {}: {message}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The saved editor settings could not be read; the defaults are used.
    #[error("editor settings {}: {message}; using the defaults", path.display())]
    Settings {
        /// The settings file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A gallery item or scene entity named by an action does not exist (any more).
    #[error("{0}")]
    Missing(String),
}

/// The pixel-art settings the panel exposes (a friendly subset of [`PixelOptions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PixelSettings {
    /// Reduce to at most this many colours (`None`: keep the detected colours).
    pub colors: Option<u32>,
    /// Let the quantizer choose the colour count from the image (overrides `colors`).
    pub auto_colors: bool,
    /// A built-in palette name or a palette file (`None`: no fixed palette).
    pub palette: Option<String>,
    /// Dithering used by colour reduction or palette mapping.
    pub dither: Dither,
    /// Remove the background to transparency.
    pub transparent: bool,
    /// Draw a 1-px outline.
    pub outline: bool,
    /// The outline colour (RGBA).
    pub outline_color: [u8; 4],
}

impl Default for PixelSettings {
    fn default() -> Self {
        Self {
            colors: Some(16),
            auto_colors: false,
            palette: None,
            dither: Dither::None,
            transparent: true,
            outline: false,
            outline_color: [0, 0, 0, 255],
        }
    }
}

/// The frames of a sprite sheet: one sprite when `count` is 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SheetSettings {
    /// How many frames (1: a single sprite, not a sheet).
    pub count: u32,
    /// One prompt per frame (`prompts`) instead of the `template`.
    pub per_frame: bool,
    /// Frame prompt template: `{prompt}` is the full prompt, `{frame}` the 1-based frame
    /// number, `{count}` the frame count.
    pub template: String,
    /// One prompt per frame (the style template is applied to each).
    pub prompts: Vec<String>,
}

impl Default for SheetSettings {
    fn default() -> Self {
        Self {
            count: 1,
            per_frame: false,
            template: "{prompt}, animation frame {frame} of {count}".into(),
            prompts: Vec::new(),
        }
    }
}

/// How "variations" picks its seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VariationSeeds {
    /// The item's seed + 1, + 2, ...
    #[default]
    Consecutive,
    /// Freshly drawn seeds.
    Random,
}

/// A style preset: a prompt template plus pixel defaults, stored as RON in `assets/presets/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StylePreset {
    /// Name shown in the panel.
    pub name: String,
    /// Prompt template; `{prompt}` is replaced by the user's prompt.
    pub template: String,
    /// Negative prompt (empty: none).
    pub negative: String,
    /// True output width in pixels.
    pub width: u32,
    /// True output height in pixels.
    pub height: u32,
    /// Pixel-art defaults.
    pub pixel: PixelSettings,
}

impl Default for StylePreset {
    fn default() -> Self {
        Self {
            name: String::new(),
            template: "{prompt}".into(),
            negative: String::new(),
            width: 32,
            height: 32,
            pixel: PixelSettings::default(),
        }
    }
}

impl StylePreset {
    /// Parses a preset from RON; `path` names the file in the error.
    pub fn from_ron(text: &str, path: &Path) -> Result<Self, EditorError> {
        let preset: StylePreset = ron::from_str(text).map_err(|e| EditorError::Preset {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if preset.name.trim().is_empty() {
            return Err(EditorError::Preset {
                path: path.to_owned(),
                message: "has no `name`: give the preset a name to show in the panel".into(),
            });
        }
        if !preset.template.contains("{prompt}") {
            return Err(EditorError::Preset {
                path: path.to_owned(),
                message: "`template` has no `{prompt}`: the user's prompt would be lost".into(),
            });
        }
        Ok(preset)
    }

    /// Copies the preset's template, negative prompt, size and pixel settings into `state`
    /// (the prompt itself and the sampling settings are kept).
    pub fn apply(&self, state: &mut EditorState) {
        state.preset = Some(self.name.clone());
        state.template.clone_from(&self.template);
        state.negative.clone_from(&self.negative);
        state.width = self.width.clamp(MIN_EDITOR_SIDE, MAX_EDITOR_SIDE);
        state.height = self.height.clamp(MIN_EDITOR_SIDE, MAX_EDITOR_SIDE);
        state.pixel = self.pixel.clone();
    }
}

/// The style presets found at startup, and the files that failed (shown in the panel).
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct Presets {
    /// Presets in file-name order.
    pub presets: Vec<StylePreset>,
    /// One entry per file or folder that could not be read.
    pub errors: Vec<EditorError>,
}

impl Presets {
    /// Loads every `*.ron` file in `dir`; a bad file is recorded in `errors` and skipped.
    pub fn load_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        let mut out = Self::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                out.errors.push(EditorError::Preset {
                    path: dir.to_owned(),
                    message: format!("cannot read the presets folder: {e}"),
                });
                return out;
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ron"))
            .collect();
        paths.sort();
        for path in paths {
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| EditorError::Preset {
                    path: path.clone(),
                    message: e.to_string(),
                })
                .and_then(|text| StylePreset::from_ron(&text, &path));
            match parsed {
                Ok(p) => out.presets.push(p),
                Err(e) => out.errors.push(e),
            }
        }
        out
    }

    /// The preset called `name`.
    pub fn get(&self, name: &str) -> Option<&StylePreset> {
        self.presets.iter().find(|p| p.name == name)
    }
}

/// How the gallery's "Animate…" and "Directions…" make a set from an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SetSettings {
    /// The action "Animate…" makes.
    pub action: pixelgen::Action,
    /// 4 or 8 views for "Directions…".
    pub directions: u32,
    /// West-facing views are the east-facing ones mirrored.
    pub mirror: bool,
    /// Shared-attention strength with the item (0 to 1).
    pub strength: f64,
    /// How much of the item every frame redraws (image to image, above 0 to 1).
    pub start_strength: f64,
}

impl Default for SetSettings {
    fn default() -> Self {
        Self {
            action: pixelgen::Action::Idle,
            directions: 4,
            mirror: true,
            strength: 1.0,
            start_strength: crate::plugin::DEFAULT_START_STRENGTH,
        }
    }
}

/// Tile sizes the "Tileset…" form offers, in pixels.
pub const TILE_SIZES: [u32; 4] = [16, 32, 48, 64];
/// Most variations of each terrain the "Tileset…" form offers.
pub const MAX_EDITOR_TILE_VARIATIONS: u32 = 4;

/// The "Tileset…" form: two terrains made into a Wang or blob tileset (the panel's sampling,
/// seed, LoRA and colour settings are shared with the other requests).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TilesetSettings {
    /// Terrain A (e.g. `grass`): the ground a blob set's blobs sit on.
    pub terrain_a: String,
    /// Terrain B (e.g. `water`).
    pub terrain_b: String,
    /// Wang 2-corner (16 tiles) or blob (47 + the plain A tile).
    pub kind: pixelgen::TilesetKind,
    /// Tile side in pixels (one of [`TILE_SIZES`]).
    pub tile_size: u32,
    /// Extra tiles of each terrain (0 to [`MAX_EDITOR_TILE_VARIATIONS`]).
    pub variations: u32,
    /// What every tile is, besides its terrain (e.g. `top-down pixel art game tile`).
    pub prompt: String,
}

impl Default for TilesetSettings {
    fn default() -> Self {
        Self {
            terrain_a: "grass".into(),
            terrain_b: "water".into(),
            kind: pixelgen::TilesetKind::Wang,
            tile_size: 32,
            variations: 0,
            prompt: "top-down pixel art game tile".into(),
        }
    }
}

/// Everything the prompt side of the panel edits.
#[derive(Resource, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EditorState {
    /// What to draw.
    pub prompt: String,
    /// The applied preset's name, if any.
    pub preset: Option<String>,
    /// Prompt template; `{prompt}` is replaced by `prompt`.
    pub template: String,
    /// Negative prompt (empty: none).
    pub negative: String,
    /// True output width ([`MIN_EDITOR_SIDE`]..=[`MAX_EDITOR_SIDE`]).
    pub width: u32,
    /// True output height ([`MIN_EDITOR_SIDE`]..=[`MAX_EDITOR_SIDE`]).
    pub height: u32,
    /// Pixel-art settings.
    pub pixel: PixelSettings,
    /// Keep `seed` for every request (off: a fresh seed each time).
    pub seed_locked: bool,
    /// The seed used while locked (the dice button draws a new one).
    pub seed: u64,
    /// Sampling steps.
    pub steps: usize,
    /// Guidance scale.
    pub guidance: f64,
    /// Sampler (`None`: the model's own).
    pub sampler: Option<SchedulerKind>,
    /// The size the model draws at (square).
    pub generation_side: u32,
    /// LoRAs merged into the engine's model for these requests (rows without a path are
    /// skipped).
    pub loras: Vec<LoraRef>,
    /// Sprite-sheet frames (count 1: a single sprite).
    pub sheet: SheetSettings,
    /// Generate seamless tiles (the recipe's `tiling`: wrap padding in the model) and show
    /// results tiled 3x3 with their seam score, to check that they tile.
    pub tiling: bool,
    /// Gallery zoom: whole-number scale of the pixels (0: fit about 96 points).
    pub zoom: u32,
    /// Frames per second at which sheets play in the gallery and on scene sprites.
    pub fps: f32,
    /// How many requests "variations" makes.
    pub variations: u32,
    /// How "variations" picks its seeds.
    pub variation_seeds: VariationSeeds,
    /// "Animate…" and "Directions…" on a gallery item: how sets are made from it.
    pub set: SetSettings,
    /// "Repaint…" on a gallery item: brush size, strength and mask blur.
    pub repaint: super::mask::RepaintSettings,
    /// The "Tileset…" form.
    pub tileset: TilesetSettings,
    /// Whether the panel is shown.
    pub visible: bool,
}

impl Default for EditorState {
    fn default() -> Self {
        let r = Recipe::default();
        Self {
            prompt: String::new(),
            preset: None,
            template: "{prompt}".into(),
            negative: String::new(),
            width: r.size.width,
            height: r.size.height,
            pixel: PixelSettings::default(),
            seed_locked: false,
            seed: 0,
            steps: r.steps_or_default(),
            guidance: r.guidance_or_default(),
            sampler: None,
            generation_side: r.generation_size.width,
            loras: Vec::new(),
            sheet: SheetSettings::default(),
            tiling: false,
            zoom: 0,
            fps: 8.0,
            variations: 4,
            variation_seeds: VariationSeeds::Consecutive,
            set: SetSettings::default(),
            repaint: super::mask::RepaintSettings::default(),
            tileset: TilesetSettings::default(),
            visible: true,
        }
    }
}

impl EditorState {
    /// The full prompt: the template with `{prompt}` filled in.
    pub fn full_prompt(&self) -> String {
        self.styled(&self.prompt)
    }

    /// `text` put into the style template.
    fn styled(&self, text: &str) -> String {
        if self.template.contains("{prompt}") {
            self.template.replace("{prompt}", text.trim())
        } else {
            text.trim().to_owned()
        }
    }

    /// The frames the form describes; the error names the frame without a prompt.
    pub fn frames(&self) -> Result<Frames, EditorError> {
        let count = self.sheet.count.clamp(1, MAX_EDITOR_FRAMES);
        if count == 1 {
            return Ok(Frames::Single);
        }
        if !self.sheet.per_frame {
            if !self.sheet.template.contains("{prompt}") && !self.sheet.template.contains("{frame}")
            {
                return Err(EditorError::Recipe(
                    "the frame template has neither {prompt} nor {frame}: every frame would \
                     get the same fixed prompt"
                        .into(),
                ));
            }
            return Ok(Frames::Template {
                template: self.sheet.template.clone(),
                count,
            });
        }
        let mut prompts = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            match self.sheet.prompts.get(i).map(|p| p.trim()) {
                Some(p) if !p.is_empty() => prompts.push(self.styled(p)),
                _ => {
                    return Err(EditorError::Recipe(format!(
                        "frame {} has no prompt: give every frame one, or use the template",
                        i + 1
                    )));
                }
            }
        }
        Ok(Frames::Prompts(prompts))
    }

    /// The pixel options the form describes: the recipe's size-based defaults (grid
    /// detection, canvas of the output size) with the panel's settings on top.
    pub fn pixel_options(&self) -> Result<PixelOptions, EditorError> {
        self.pixel_options_at(self.size())
    }

    /// The pixel options the form describes for sprites of `size`.
    fn pixel_options_at(&self, size: Size) -> Result<PixelOptions, EditorError> {
        let mut base = Recipe::new("");
        base.size = size;
        let mut opts = base.pixel_options();
        if !self.pixel.transparent {
            opts.background = None;
        }
        opts.colors = if self.pixel.auto_colors {
            Some(ColorCount::Auto)
        } else {
            self.pixel
                .colors
                .map(|n| ColorCount::Fixed(n.clamp(1, 256)))
        };
        opts.palette = match self.pixel.palette.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => Some(Palette::resolve(name).map_err(|e| EditorError::Palette {
                name: name.to_owned(),
                message: e.to_string(),
            })?),
        };
        opts.dither = self.pixel.dither;
        opts.outline = self.pixel.outline.then(|| OutlineOptions {
            color: self.pixel.outline_color,
            ..OutlineOptions::default()
        });
        opts.seed = self.seed;
        Ok(opts)
    }

    /// The true output size, clamped to the editor's range.
    pub fn size(&self) -> Size {
        Size::new(
            self.width.clamp(MIN_EDITOR_SIDE, MAX_EDITOR_SIDE),
            self.height.clamp(MIN_EDITOR_SIDE, MAX_EDITOR_SIDE),
        )
    }

    /// What every request from the panel shares: the negative prompt, the seed (the locked
    /// one, or a fresh one per request), sampling, LoRAs and editor priority.
    fn shared_recipe(&self) -> Recipe {
        let negative = self.negative.trim();
        Recipe {
            negative: (!negative.is_empty()).then(|| negative.to_owned()),
            seed: if self.seed_locked {
                Seed::Fixed(self.seed)
            } else {
                Seed::Random
            },
            steps: Some(self.steps),
            guidance: Some(self.guidance),
            sampler: self.sampler,
            loras: self
                .loras
                .iter()
                .filter(|l| !l.path.as_os_str().is_empty())
                .cloned()
                .collect(),
            priority: Priority::Editor,
            ..Recipe::default()
        }
    }

    /// The recipe the Generate button submits (priority [`Priority::Editor`]); the error
    /// says which field to fix.
    pub fn recipe(&self) -> Result<Recipe, EditorError> {
        let side = self.generation_side.max(self.width).max(self.height);
        let recipe = Recipe {
            prompt: self.full_prompt(),
            size: self.size(),
            generation_size: Size::square(side),
            pixel: Some(self.pixel_options()?),
            frames: self.frames()?,
            tiling: self.tiling,
            ..self.shared_recipe()
        };
        if self.prompt.trim().is_empty() {
            return Err(EditorError::Recipe(
                "the prompt is empty: say what to draw".into(),
            ));
        }
        recipe
            .validate()
            .map_err(|e| EditorError::Recipe(e.to_string()))?;
        Ok(recipe)
    }

    /// The recipe "Generate tileset" submits (priority [`Priority::Editor`]): the "Tileset…"
    /// form's terrains, kind, tile size and variations, with the panel's negative prompt,
    /// seed, sampling, LoRAs and colour settings. Tiles are opaque and have no outline (both
    /// would break the seams), the model draws at the panel's generation side rounded down to
    /// a whole number of tiles. The error (empty terrain, a size the set cannot have, ...) says
    /// what to fix; the recipe is checked as [`pixelgen::Plan::new`] checks it.
    pub fn tileset_recipe(&self) -> Result<Recipe, EditorError> {
        let t = &self.tileset;
        let (a, b) = (t.terrain_a.trim(), t.terrain_b.trim());
        if a.is_empty() || b.is_empty() {
            return Err(EditorError::Recipe(
                "a terrain prompt is empty: name both terrains (e.g. grass and water)".into(),
            ));
        }
        if !TILE_SIZES.contains(&t.tile_size) {
            return Err(EditorError::Recipe(format!(
                "tile size {}: pick one of {TILE_SIZES:?}",
                t.tile_size
            )));
        }
        if t.variations > MAX_EDITOR_TILE_VARIATIONS {
            return Err(EditorError::Recipe(format!(
                "{} variations: at most {MAX_EDITOR_TILE_VARIATIONS}",
                t.variations
            )));
        }
        let tile = t.tile_size;
        let size = Size::square(tile);
        let mut pixel = self.pixel_options_at(size)?;
        pixel.background = None;
        pixel.outline = None;
        let prompt = t.prompt.trim();
        let side = (self.generation_side / tile).max(1) * tile;
        let mut set = pixelgen::TilesetRecipe::new(t.kind, a, b);
        set.variations = t.variations;
        let recipe = Recipe {
            prompt: if prompt.is_empty() {
                TilesetSettings::default().prompt
            } else {
                prompt.to_owned()
            },
            size,
            generation_size: Size::square(side),
            pixel: Some(pixel),
            tileset: Some(set),
            ..self.shared_recipe()
        };
        pixelgen::Plan::new(recipe.clone()).map_err(|e| EditorError::Recipe(e.to_string()))?;
        Ok(recipe)
    }

    /// Brings hand-edited or old values into the ranges the panel offers (sizes, frames,
    /// zoom, fps, variations, repaint options; a non-finite guidance becomes the default).
    pub fn sanitize(&mut self) {
        self.width = self.width.clamp(MIN_EDITOR_SIDE, MAX_EDITOR_SIDE);
        self.height = self.height.clamp(MIN_EDITOR_SIDE, MAX_EDITOR_SIDE);
        self.sheet.count = self.sheet.count.clamp(1, MAX_EDITOR_FRAMES);
        self.zoom = self.zoom.min(16);
        self.repaint.clamp();
        if !TILE_SIZES.contains(&self.tileset.tile_size) {
            self.tileset.tile_size = TilesetSettings::default().tile_size;
        }
        self.tileset.variations = self.tileset.variations.min(MAX_EDITOR_TILE_VARIATIONS);
        self.fps = if self.fps.is_finite() {
            self.fps.clamp(1.0, 60.0)
        } else {
            EditorState::default().fps
        };
        self.variations = self.variations.clamp(1, 16);
        self.steps = self.steps.clamp(1, 1000);
        if !self.guidance.is_finite() || self.guidance < 0.0 {
            self.guidance = EditorState::default().guidance;
        }
    }

    /// Copies a finished recipe back into the form (for "regenerate" and "variations"); a
    /// tileset's terrains, kind, tile size and variations go into the "Tileset…" form.
    pub fn load_recipe(&mut self, recipe: &Recipe) {
        self.prompt.clone_from(&recipe.prompt);
        self.template = "{prompt}".into();
        self.preset = None;
        self.negative = recipe.negative.clone().unwrap_or_default();
        self.width = recipe.size.width;
        self.height = recipe.size.height;
        self.steps = recipe.steps_or_default();
        self.guidance = recipe.guidance_or_default();
        self.sampler = recipe.sampler;
        self.generation_side = recipe.generation_size.width;
        self.loras.clone_from(&recipe.loras);
        self.tiling = recipe.tiling;
        match &recipe.frames {
            Frames::Single => self.sheet.count = 1,
            Frames::Template { template, count } => {
                self.sheet.count = *count;
                self.sheet.per_frame = false;
                self.sheet.template.clone_from(template);
            }
            Frames::Prompts(p) => {
                self.sheet.count = p.len() as u32;
                self.sheet.per_frame = true;
                self.sheet.prompts.clone_from(p);
            }
        }
        if let Some(seed) = recipe.seed.value() {
            self.seed = seed;
            self.seed_locked = true;
        }
        if let Some(set) = &recipe.tileset {
            let t = &mut self.tileset;
            t.terrain_a.clone_from(&set.terrains.0);
            t.terrain_b.clone_from(&set.terrains.1);
            t.kind = set.kind;
            if TILE_SIZES.contains(&recipe.size.width) {
                t.tile_size = recipe.size.width;
            }
            t.variations = set.variations.min(MAX_EDITOR_TILE_VARIATIONS);
            t.prompt.clone_from(&recipe.prompt);
        }
    }
}

/// Messages the panel shows (failed requests, bad presets, invalid forms), newest last.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct EditorLog {
    /// Error lines.
    pub errors: Vec<String>,
    /// Information lines (saved files, applied sprites).
    pub notes: Vec<String>,
}

impl EditorLog {
    /// How many lines are kept.
    pub const MAX: usize = 20;

    /// Adds an error line, dropping the oldest beyond [`EditorLog::MAX`].
    pub fn error(&mut self, message: impl Into<String>) {
        self.errors.push(message.into());
        if self.errors.len() > Self::MAX {
            let extra = self.errors.len() - Self::MAX;
            self.errors.drain(..extra);
        }
    }

    /// Adds an information line, dropping the oldest beyond [`EditorLog::MAX`].
    pub fn note(&mut self, message: impl Into<String>) {
        self.notes.push(message.into());
        if self.notes.len() > Self::MAX {
            let extra = self.notes.len() - Self::MAX;
            self.notes.drain(..extra);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presets_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/presets")
    }

    #[test]
    fn shipped_presets_all_load() {
        let p = Presets::load_dir(presets_dir());
        assert_eq!(p.errors, vec![], "every shipped preset parses");
        let names: Vec<&str> = p.presets.iter().map(|p| p.name.as_str()).collect();
        for want in [
            "Character",
            "Item icon",
            "Tile",
            "Portrait",
            "UI icon",
            "Effect",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        for preset in &p.presets {
            assert!(preset.template.contains("{prompt}"), "{}", preset.name);
            assert!(
                (MIN_EDITOR_SIDE..=MAX_EDITOR_SIDE).contains(&preset.width),
                "{}",
                preset.name
            );
        }
        // The tile preset stays opaque and dithers.
        let tile = p.get("Tile").expect("tile preset");
        assert!(!tile.pixel.transparent);
        assert_eq!(tile.pixel.dither, Dither::Bayer4);
    }

    #[test]
    fn bad_preset_files_are_reported_and_skipped() {
        let dir = std::env::temp_dir().join(format!("pixelgen-presets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a_good.ron"), r#"(name: "Good", width: 16)"#).unwrap();
        std::fs::write(
            dir.join("b_broken.ron"),
            "(name: \"Broken\", width: \"wide\")",
        )
        .unwrap();
        std::fs::write(
            dir.join("c_lost.ron"),
            r#"(name: "Lost", template: "knight")"#,
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "not a preset").unwrap();
        let p = Presets::load_dir(&dir);
        assert_eq!(p.presets.len(), 1);
        assert_eq!(p.presets[0].name, "Good");
        assert_eq!(p.presets[0].width, 16);
        assert_eq!(p.presets[0].height, 32, "missing fields take defaults");
        assert_eq!(p.errors.len(), 2, "{:?}", p.errors);
        let text: Vec<String> = p.errors.iter().map(ToString::to_string).collect();
        assert!(text[0].contains("b_broken.ron"), "{}", text[0]);
        assert!(text[1].contains("c_lost.ron") && text[1].contains("{prompt}"));
        let missing = Presets::load_dir(dir.join("nope"));
        assert!(missing.presets.is_empty());
        assert_eq!(missing.errors.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn applying_a_preset_sets_template_size_and_pixels_but_keeps_the_prompt() {
        let preset = StylePreset {
            name: "Icon".into(),
            template: "{prompt}, icon".into(),
            negative: "blurry".into(),
            width: 1000,
            height: 4,
            pixel: PixelSettings {
                colors: Some(4),
                palette: Some("pico-8".into()),
                dither: Dither::Bayer2,
                transparent: false,
                outline: true,
                ..PixelSettings::default()
            },
        };
        let mut s = EditorState {
            prompt: "sword".into(),
            steps: 12,
            ..EditorState::default()
        };
        preset.apply(&mut s);
        assert_eq!(s.prompt, "sword");
        assert_eq!(s.steps, 12);
        assert_eq!(s.preset.as_deref(), Some("Icon"));
        assert_eq!(s.full_prompt(), "sword, icon");
        assert_eq!((s.width, s.height), (MAX_EDITOR_SIDE, MIN_EDITOR_SIDE));
        assert_eq!(s.pixel, preset.pixel);
        let r = s.recipe().unwrap();
        assert_eq!(r.prompt, "sword, icon");
        assert_eq!(r.negative.as_deref(), Some("blurry"));
    }

    #[test]
    fn recipe_maps_the_form() {
        let mut s = EditorState {
            prompt: "  red potion ".into(),
            width: 24,
            height: 40,
            steps: 8,
            guidance: 3.5,
            sampler: Some(SchedulerKind::Ddim),
            generation_side: 512,
            ..EditorState::default()
        };
        let r = s.recipe().unwrap();
        assert_eq!(r.prompt, "red potion");
        assert_eq!(r.negative, None);
        assert_eq!(r.seed, Seed::Random, "unlocked seed is drawn per request");
        assert_eq!(r.size, Size::new(24, 40));
        assert_eq!(r.generation_size, Size::square(512));
        assert_eq!((r.steps, r.guidance), (Some(8), Some(3.5)));
        assert_eq!(r.sampler, Some(SchedulerKind::Ddim));
        assert_eq!(r.priority, Priority::Editor);
        assert!(!r.tiling, "tiling is off by default");
        let px = r.pixel.clone().unwrap();
        assert!(px.background.is_some(), "transparent by default");
        assert_eq!(px.colors, Some(ColorCount::Fixed(16)));
        assert_eq!(px.palette, None);
        assert_eq!(px.outline, None);
        let canvas = px.canvas.unwrap();
        assert_eq!((canvas.width, canvas.height), (24, 40));

        s.seed_locked = true;
        s.seed = 77;
        s.pixel.transparent = false;
        s.pixel.outline = true;
        s.pixel.colors = None;
        s.pixel.palette = Some("PICO8".into());
        s.pixel.dither = Dither::FloydSteinberg;
        s.width = 3; // below the editor's range: clamped
        s.tiling = true;
        let r = s.recipe().unwrap();
        assert_eq!(r.seed, Seed::Fixed(77));
        assert!(
            r.tiling,
            "the Tiling toggle asks the model for a seamless tile"
        );
        assert_eq!(r.size, Size::new(MIN_EDITOR_SIDE, 40));
        let px = r.pixel.unwrap();
        assert!(px.background.is_none());
        assert!(px.outline.is_some());
        assert_eq!(px.colors, None);
        assert_eq!(px.dither, Dither::FloydSteinberg);
        let pal = px.palette.unwrap();
        assert_eq!(pal.len(), 16);
        assert_eq!(pal, Palette::builtin("pico-8").unwrap());
    }

    #[test]
    fn generation_side_grows_to_fit_the_sprite() {
        let s = EditorState {
            prompt: "castle".into(),
            width: 200,
            height: 100,
            generation_side: 64,
            ..EditorState::default()
        };
        assert_eq!(s.recipe().unwrap().generation_size, Size::square(200));
    }

    #[test]
    fn bad_forms_give_errors_not_panics() {
        let empty = EditorState::default();
        assert!(matches!(empty.recipe(), Err(EditorError::Recipe(_))));
        let mut s = EditorState {
            prompt: "slime".into(),
            ..EditorState::default()
        };
        s.pixel.palette = Some("no-such-palette".into());
        match s.recipe() {
            Err(EditorError::Palette { name, .. }) => assert_eq!(name, "no-such-palette"),
            other => panic!("expected a palette error, got {other:?}"),
        }
        s.pixel.palette = Some("  ".into());
        assert!(s.recipe().is_ok(), "a blank palette means none");
        s.steps = 0;
        match s.recipe() {
            Err(EditorError::Recipe(m)) => assert!(m.contains("steps"), "{m}"),
            other => panic!("expected a steps error, got {other:?}"),
        }
        s.steps = 4;
        s.guidance = f64::NAN;
        assert!(matches!(s.recipe(), Err(EditorError::Recipe(_))));
    }

    #[test]
    fn load_recipe_round_trips_through_the_form() {
        let mut a = EditorState {
            prompt: "lantern".into(),
            negative: "dark".into(),
            seed_locked: true,
            seed: 5,
            width: 48,
            height: 16,
            steps: 6,
            tiling: true,
            ..EditorState::default()
        };
        let r = a.recipe().unwrap();
        a.prompt.clear();
        let mut b = EditorState::default();
        b.load_recipe(&r);
        assert_eq!(b.recipe().unwrap(), r);
    }

    #[test]
    fn sheet_frames_auto_colours_and_outline_colour_reach_the_recipe() {
        let mut s = EditorState {
            prompt: "knight".into(),
            template: "{prompt}, pixel art".into(),
            ..EditorState::default()
        };
        assert_eq!(s.recipe().unwrap().frames, Frames::Single);
        s.sheet.count = 3;
        let r = s.recipe().unwrap();
        assert_eq!(r.frame_count(), 3);
        assert_eq!(
            r.frame_prompts()[1],
            "knight, pixel art, animation frame 2 of 3"
        );
        s.sheet.per_frame = true;
        s.sheet.prompts = vec!["idle".into(), "step left".into()];
        match s.recipe() {
            Err(EditorError::Recipe(m)) => assert!(m.contains("frame 3"), "{m}"),
            other => panic!("expected a frame error, got {other:?}"),
        }
        s.sheet.prompts.push("step right".into());
        let r = s.recipe().unwrap();
        assert_eq!(
            r.frame_prompts(),
            vec![
                "idle, pixel art",
                "step left, pixel art",
                "step right, pixel art"
            ]
        );
        s.sheet.count = 1000;
        s.sheet.per_frame = false;
        assert_eq!(
            s.recipe().unwrap().frame_count(),
            MAX_EDITOR_FRAMES as usize
        );
        s.sheet.template = "walk".into();
        assert!(matches!(s.recipe(), Err(EditorError::Recipe(_))));

        // Loading a sheet recipe back restores its frames.
        s.sheet.template = "{prompt} {frame}".into();
        s.sheet.count = 4;
        let r = s.recipe().unwrap();
        let mut t = EditorState::default();
        t.load_recipe(&r);
        assert_eq!(t.sheet.count, 4);
        assert_eq!(t.recipe().unwrap().frame_prompts(), r.frame_prompts());

        s.sheet.count = 1;
        s.pixel.auto_colors = true;
        s.pixel.outline = true;
        s.pixel.outline_color = [10, 20, 30, 255];
        let px = s.recipe().unwrap().pixel.unwrap();
        assert_eq!(px.colors, Some(ColorCount::Auto));
        assert_eq!(px.outline.unwrap().color, [10, 20, 30, 255]);
    }

    #[test]
    fn loras_with_a_path_reach_the_recipe() {
        let mut s = EditorState {
            prompt: "cat".into(),
            loras: vec![
                LoraRef::new("loras/pixel.safetensors", 0.8),
                LoraRef::default(),
            ],
            ..EditorState::default()
        };
        s.loras[0].text_strength = 0.25;
        let r = s.recipe().unwrap();
        assert_eq!(r.loras.len(), 1, "the empty row is skipped");
        assert_eq!(r.loras[0].path, PathBuf::from("loras/pixel.safetensors"));
        assert_eq!(
            (r.loras[0].unet_strength, r.loras[0].text_strength),
            (0.8, 0.25)
        );
        let mut t = EditorState::default();
        t.load_recipe(&r);
        assert_eq!(t.loras, r.loras);
        s.loras[0].unet_strength = f64::INFINITY;
        match s.recipe() {
            Err(EditorError::Recipe(m)) => assert!(m.contains("loras"), "{m}"),
            other => panic!("expected a LoRA error, got {other:?}"),
        }
    }

    #[test]
    fn a_palette_file_is_used_by_path() {
        let dir = std::env::temp_dir().join(format!("pixelgen-pal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("three.hex");
        std::fs::write(&path, "ff0000\n00ff00\n0000ff\n").unwrap();
        let mut s = EditorState {
            prompt: "gem".into(),
            ..EditorState::default()
        };
        s.pixel.palette = Some(path.display().to_string());
        let pal = s.recipe().unwrap().pixel.unwrap().palette.unwrap();
        assert_eq!(pal.colors, vec![[255, 0, 0], [0, 255, 0], [0, 0, 255]]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tileset_recipes_use_whole_tiles_and_load_back_into_the_form() {
        let mut s = EditorState::default();
        s.tileset.tile_size = 48;
        s.tileset.kind = pixelgen::TilesetKind::Blob;
        s.tileset.variations = 2;
        let r = s.tileset_recipe().unwrap();
        assert_eq!(r.size, Size::square(48));
        assert_eq!(r.generation_size, Size::square(1008), "21 tiles of 48");
        assert_eq!(r.tileset.as_ref().unwrap().variations, 2);
        let mut t = EditorState::default();
        t.load_recipe(&r);
        assert_eq!(t.tileset, s.tileset);
        t.tileset.tile_size = 7;
        t.tileset.variations = 99;
        t.sanitize();
        assert_eq!((t.tileset.tile_size, t.tileset.variations), (32, 4));
    }

    #[test]
    fn log_keeps_the_newest_lines() {
        let mut log = EditorLog::default();
        for i in 0..(EditorLog::MAX + 5) {
            log.error(format!("e{i}"));
        }
        assert_eq!(log.errors.len(), EditorLog::MAX);
        assert_eq!(log.errors[0], "e5");
        assert_eq!(log.errors.last().map(String::as_str), Some("e24"));
    }
}
