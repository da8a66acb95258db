//! [`Recipe`]: everything that decides a sprite's pixels, as plain serde data (RON or JSON).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pixelgen_diffusion::{GenerationParams, SamplingPreset, SchedulerKind, TimestepSpacing};
use pixelgen_pixel::PixelOptions;
use pixelgen_pixel::alpha::BackgroundOptions;
use pixelgen_pixel::pipeline::Canvas;
use pixelgen_pixel::sheet::SheetOptions;
use ron::extensions::Extensions;
use serde::{Deserialize, Serialize};

use crate::edit::EditRecipe;
use crate::error::{PixelGenError, Result, invalid};
use crate::set::{SetFrames, SetRecipe};
use crate::tileset::TilesetRecipe;

/// Largest side accepted for a sprite or a generation, in pixels (the engine's own bound,
/// [`pixelgen_diffusion::MAX_SIDE`]).
pub const MAX_SIDE: u32 = pixelgen_diffusion::MAX_SIDE as u32;

/// A width and a height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Size {
    /// A `width` x `height` size.
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    /// A square size.
    pub const fn square(side: u32) -> Self {
        Self::new(side, side)
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// The noise seed: fixed, or drawn once when the request is made and then recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seed {
    /// Draw a fresh seed for every request ([`Recipe::with_drawn_seed`] records it).
    #[default]
    Random,
    /// This seed.
    Fixed(u64),
}

impl Seed {
    /// The fixed value, if any.
    pub fn value(self) -> Option<u64> {
        match self {
            Seed::Random => None,
            Seed::Fixed(v) => Some(v),
        }
    }

    /// A new seed from the clock and a process-wide counter (distinct for every call).
    pub fn draw() -> u64 {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        splitmix64(nanos ^ splitmix64(n))
    }
}

/// SplitMix64 finaliser (Steele, Lea and Flood 2014): a bijective 64-bit mix.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which requests run first when several wait. Editor work comes before game runtime work.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Prefetching and batch work: runs when nothing else waits.
    Background,
    /// Requests made by game code at run time.
    #[default]
    Runtime,
    /// Requests made by a person in the editor: they wait for the result.
    Editor,
}

/// The frames of a request: one sprite, or one per prompt for a sprite sheet.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frames {
    /// One sprite from the recipe's prompt.
    #[default]
    Single,
    /// One frame per prompt, in order.
    Prompts(Vec<String>),
    /// `count` frames whose prompts come from `template`, where `{prompt}` is the recipe's
    /// prompt, `{frame}` the 1-based frame number and `{count}` the frame count.
    Template {
        /// The prompt template.
        template: String,
        /// How many frames.
        count: u32,
    },
}

/// A LoRA merged into the model for a recipe: a `.safetensors` file (kohya or diffusers/PEFT
/// layout) and its strengths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraRef {
    /// The LoRA file.
    pub path: PathBuf,
    /// Multiplier of its UNet layers (1 = as trained, 0 = off).
    pub unet_strength: f64,
    /// Multiplier of its text-encoder layers.
    pub text_strength: f64,
}

impl Default for LoraRef {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            unet_strength: 1.0,
            text_strength: 1.0,
        }
    }
}

impl LoraRef {
    /// `path` at `strength` for both the UNet and the text encoders.
    pub fn new(path: impl Into<PathBuf>, strength: f64) -> Self {
        Self {
            path: path.into(),
            unet_strength: strength,
            text_strength: strength,
        }
    }
}

/// Everything that decides a sprite's pixels (plus its queue priority), as plain serde data.
///
/// The same recipe, model and device give the same pixels, so a recipe saved next to a
/// sprite regenerates it. `pixel: None` means "the defaults for `size`" (see
/// [`Recipe::pixel_options`]). Fields left out of a file take their defaults; optional
/// fields may be written bare (`steps: 8`) or as `Some(8)`.
///
/// A `.pixelgen.ron` file, e.g. a four-frame walk cycle packed into a sheet:
///
/// ```
/// use pixelgen::{Frames, Plan, Recipe, Seed, Size};
///
/// let recipe = Recipe::from_ron(r#"(
///     prompt: "knight in silver armour, side view, pixel art game sprite",
///     negative: "blurry, text, watermark",
///     seed: fixed(7),
///     steps: 8,
///     guidance: 1.5,
///     size: (width: 32, height: 32),
///     frames: template(template: "{prompt}, walk cycle frame {frame} of {count}", count: 4),
///     sheet: (columns: 4, padding: 1),
/// )"#)?;
/// assert_eq!((recipe.seed, recipe.steps, recipe.size), (Seed::Fixed(7), Some(8), Size::square(32)));
/// assert_eq!(recipe.frame_prompts()[1], "knight in silver armour, side view, pixel art game sprite, walk cycle frame 2 of 4");
/// // Checked as a whole before any work: the sheet is 4 x 32 px + 3 px of padding wide.
/// assert_eq!(Plan::new(recipe)?.output_size(), Size::new(131, 32));
/// # Ok::<(), pixelgen::PixelGenError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recipe {
    /// What to draw.
    pub prompt: String,
    /// What to avoid; `None` gives SDXL's zero negative conditioning.
    pub negative: Option<String>,
    /// The noise seed.
    pub seed: Seed,
    /// Sampling steps; `None`: a registry model's preset, else [`Recipe::DEFAULT_STEPS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Classifier-free guidance scale (1 or less: off); `None`: a registry model's preset,
    /// else [`Recipe::DEFAULT_GUIDANCE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guidance: Option<f64>,
    /// Sampler; `None` uses the model folder's own scheduler.
    pub sampler: Option<SchedulerKind>,
    /// Karras sigmas (Euler, DPM++ 2M); `None` keeps the model folder's setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub karras: Option<bool>,
    /// Timestep spacing (`trailing` for SDXL-Turbo); `None` keeps the model folder's setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestep_spacing: Option<TimestepSpacing>,
    /// The sprite size the game wants (e.g. 32x32).
    pub size: Size,
    /// The size the model draws at (1024x1024 for SDXL; smaller for tests and drafts).
    pub generation_size: Size,
    /// Pixel-art post-processing; `None` uses [`Recipe::pixel_options`]' defaults.
    pub pixel: Option<PixelOptions>,
    /// One sprite or several frames.
    pub frames: Frames,
    /// How frames are packed into a sheet (`None`: near-square grid, no padding).
    pub sheet: Option<SheetOptions>,
    /// Queue priority (not part of the cache key: it does not change pixels).
    pub priority: Priority,
    /// A model registry name (see `pixelgen_diffusion::Registry`), e.g. `pixel-art-fast`;
    /// `None`: whatever model the engine was built with. An engine refuses a recipe that
    /// names another model than its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// LoRAs merged into the model for this recipe, in order (after the registry model's own).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loras: Vec<LoraRef>,
    /// Seamless tiling: the model draws with circular padding so the generated image wraps
    /// (left edge continues the right, top the bottom) and tiles without seams; for textures
    /// and terrain. Written only when on, so recipes without it keep their cache keys.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tiling: bool,
    /// The frames made as one consistent set (an animation, directions, or `frames` sharing
    /// one reference, palette and anchor; see [`SetRecipe`]); `None`: a sprite, or a sheet of
    /// independent frames. Written only when set, so recipes without it keep their cache keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<SetRecipe>,
    /// Repaint the masked part of an existing sprite (inpainting; see [`EditRecipe`]); `None`:
    /// draw from the prompt alone. Written only when set, so other recipes keep their keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edit: Option<EditRecipe>,
    /// A tileset from two terrains (Wang or blob; see [`TilesetRecipe`]): `size` is the tile
    /// size and the result an atlas. Written only when set, so other recipes keep their keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tileset: Option<TilesetRecipe>,
}

impl Default for Recipe {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative: None,
            seed: Seed::Random,
            steps: None,
            guidance: None,
            sampler: None,
            karras: None,
            timestep_spacing: None,
            size: Size::square(32),
            generation_size: Size::square(1024),
            pixel: None,
            frames: Frames::Single,
            sheet: None,
            priority: Priority::Runtime,
            model: None,
            loras: Vec::new(),
            tiling: false,
            set: None,
            edit: None,
            tileset: None,
        }
    }
}

impl Recipe {
    /// The steps of a recipe that sets none, on a model without a preset.
    pub const DEFAULT_STEPS: usize = 30;
    /// The guidance of a recipe that sets none, on a model without a preset.
    pub const DEFAULT_GUIDANCE: f64 = 5.0;
    /// Most sampling steps a recipe may ask for (the engine's own bound,
    /// [`pixelgen_diffusion::MAX_STEPS`]).
    pub const MAX_STEPS: usize = pixelgen_diffusion::MAX_STEPS;
    /// Most frames one recipe may make (one prompt list or template).
    pub const MAX_FRAMES: usize = 256;

    /// The steps this recipe runs with when no preset fills them.
    pub fn steps_or_default(&self) -> usize {
        self.steps.unwrap_or(Self::DEFAULT_STEPS)
    }

    /// The guidance this recipe runs with when no preset fills it.
    pub fn guidance_or_default(&self) -> f64 {
        self.guidance.unwrap_or(Self::DEFAULT_GUIDANCE)
    }

    /// A recipe for `prompt` with every other field at its default.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            ..Self::default()
        }
    }

    /// This recipe with a fixed seed: a random seed is drawn now, a fixed one is kept.
    pub fn with_drawn_seed(mut self) -> Self {
        if self.seed == Seed::Random {
            self.seed = Seed::Fixed(Seed::draw());
        }
        self
    }

    /// This recipe with a fixed seed: a random seed is replaced by one derived from the
    /// recipe's other fields (so the same recipe file always gives the same sprite), a fixed
    /// one is kept. Recipe assets use this; [`Recipe::with_drawn_seed`] draws a fresh one.
    pub fn with_content_seed(mut self) -> Result<Self> {
        if self.seed == Seed::Random {
            self.seed = Seed::Fixed(crate::cache::content_seed(&self)?);
        }
        Ok(self)
    }

    /// Checks every field; the error names the field and the accepted range.
    pub fn validate(&self) -> Result<()> {
        if self.prompt.trim().is_empty() {
            return Err(invalid("prompt", "is empty: say what to draw"));
        }
        check_size("size", self.size)?;
        check_size("generation_size", self.generation_size)?;
        if self.size.width > self.generation_size.width
            || self.size.height > self.generation_size.height
        {
            return Err(invalid(
                "size",
                format!(
                    "{} is larger than generation_size {}: the model must draw at least the sprite's size",
                    self.size, self.generation_size
                ),
            ));
        }
        if let Some(steps) = self.steps
            && (steps == 0 || steps > Self::MAX_STEPS)
        {
            return Err(invalid(
                "steps",
                format!("{steps} is outside 1..={}", Self::MAX_STEPS),
            ));
        }
        if let Some(g) = self.guidance
            && (!g.is_finite() || g < 0.0)
        {
            return Err(invalid(
                "guidance",
                format!("{g} must be a finite number >= 0"),
            ));
        }
        for (i, l) in self.loras.iter().enumerate() {
            if l.path.as_os_str().is_empty() {
                return Err(invalid("loras", format!("LoRA {i} has no path")));
            }
            if !l.unet_strength.is_finite() || !l.text_strength.is_finite() {
                return Err(invalid(
                    "loras",
                    format!("{}: strengths must be finite numbers", l.path.display()),
                ));
            }
        }
        // The name itself is checked by the engine, against its registry (built-in + the
        // user's file): an engine refuses a recipe naming another model than its own.
        if self.model.as_ref().is_some_and(|m| m.trim().is_empty()) {
            return Err(invalid(
                "model",
                "is empty: name a registry model or leave it out",
            ));
        }
        match &self.frames {
            Frames::Single => {}
            Frames::Prompts(p) if p.is_empty() => {
                return Err(invalid(
                    "frames",
                    "an empty prompt list: give one prompt per frame",
                ));
            }
            Frames::Prompts(p) if p.len() > Self::MAX_FRAMES => {
                return Err(invalid(
                    "frames",
                    format!(
                        "{} frame prompts: a recipe makes at most {} frames (split the set)",
                        p.len(),
                        Self::MAX_FRAMES
                    ),
                ));
            }
            Frames::Prompts(p) => {
                if let Some(i) = p.iter().position(|p| p.trim().is_empty()) {
                    return Err(invalid(
                        "frames",
                        format!("frame {i}'s prompt is empty: say what the frame shows"),
                    ));
                }
            }
            Frames::Template { count, .. } if *count == 0 || *count as usize > Self::MAX_FRAMES => {
                return Err(invalid(
                    "frames",
                    format!("template count {count} is outside 1..={}", Self::MAX_FRAMES),
                ));
            }
            Frames::Template { .. } => {}
        }
        if let Some(edit) = &self.edit {
            edit.validate()?;
            if self.frames != Frames::Single || self.set.is_some() {
                return Err(invalid(
                    "edit",
                    "an edit repaints one sprite: leave `frames` and `set` out",
                ));
            }
        }
        if let Some(tileset) = &self.tileset {
            if self.frames != Frames::Single || self.set.is_some() || self.edit.is_some() {
                return Err(invalid(
                    "tileset",
                    "a tileset makes its own tiles: leave `frames`, `set` and `edit` out",
                ));
            }
            tileset.validate(self)?;
        }
        if let Some(set) = self.set_frames()? {
            let n = set.frames.len();
            if n > Self::MAX_FRAMES {
                return Err(invalid(
                    "set",
                    format!(
                        "{n} frames: a recipe makes at most {} frames (fewer directions or \
                         animation frames, or split the set)",
                        Self::MAX_FRAMES
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The set this recipe makes, expanded ([`SetFrames::expand`]); `None` without `set`.
    /// A set with an animation or directions makes its own frames, so `frames` must be left
    /// out then.
    pub fn set_frames(&self) -> Result<Option<SetFrames>> {
        let Some(set) = &self.set else {
            return Ok(None);
        };
        let own_frames = set.animation.is_some() || set.directions.is_some();
        if own_frames && self.frames != Frames::Single {
            return Err(invalid(
                "frames",
                "a set with an animation or directions makes its own frames: leave `frames` \
                 out (or drop the animation and directions to make a set of these frames)",
            ));
        }
        SetFrames::expand(set, &self.prompt, self.frame_prompts()).map(Some)
    }

    /// The pixel options this recipe runs with: `pixel` when set, else detect the grid,
    /// fall back to resampling to `size` when none is found, remove the background to
    /// transparency and place the result on a `size` canvas (so the sprite is exactly `size`).
    pub fn pixel_options(&self) -> PixelOptions {
        if let Some(p) = &self.pixel {
            return p.clone();
        }
        let mut opts = PixelOptions {
            detect_grid: true,
            background: Some(BackgroundOptions::default()),
            canvas: Some(Canvas {
                width: self.size.width,
                height: self.size.height,
                ..Canvas::default()
            }),
            ..PixelOptions::default()
        };
        opts.grid.fallback_size = Some((self.size.width, self.size.height));
        opts
    }

    /// The prompt of every frame, in order (one entry for [`Frames::Single`]).
    pub fn frame_prompts(&self) -> Vec<String> {
        match &self.frames {
            Frames::Single => vec![self.prompt.clone()],
            Frames::Prompts(p) => p.clone(),
            Frames::Template { template, count } => (1..=*count)
                .map(|i| {
                    template
                        .replace("{prompt}", &self.prompt)
                        .replace("{frame}", &i.to_string())
                        .replace("{count}", &count.to_string())
                })
                .collect(),
        }
    }

    /// The number of frames.
    pub fn frame_count(&self) -> usize {
        match &self.frames {
            Frames::Single => 1,
            Frames::Prompts(p) => p.len(),
            Frames::Template { count, .. } => *count as usize,
        }
    }

    /// The single-sprite recipe of frame `index` (0-based): its prompt, the same seed and
    /// every other setting. `None` past the last frame.
    pub fn frame_recipe(&self, index: usize) -> Option<Recipe> {
        let prompt = self.frame_prompts().into_iter().nth(index)?;
        Some(self.single_frame(prompt))
    }

    /// This recipe as one sprite of `prompt`: no frames, sheet or set; the same seed and
    /// every other setting.
    pub(crate) fn single_frame(&self, prompt: String) -> Recipe {
        Recipe {
            prompt,
            frames: Frames::Single,
            sheet: None,
            set: None,
            tileset: None,
            ..self.clone()
        }
    }

    /// This recipe with the sampling settings of `preset` (steps, guidance, sampler, Karras
    /// sigmas, timestep spacing), e.g. `SamplingPreset::named("turbo")`.
    pub fn with_preset(mut self, preset: &SamplingPreset) -> Self {
        self.steps = Some(preset.steps);
        self.guidance = Some(preset.guidance_scale);
        self.sampler = Some(preset.sampler);
        self.karras = preset.karras;
        self.timestep_spacing = preset.timestep_spacing;
        self
    }

    /// This recipe with the sampling fields it leaves unset taken from `preset` (what the
    /// engine does with a registry model's preset, e.g. `pixel-art-fast`'s 8 LCM steps at
    /// guidance 1.5): every sampling field that is `None`. Values the recipe sets win, even
    /// when they equal the defaults.
    pub fn with_unset_sampling_from(&self, preset: &SamplingPreset) -> Self {
        let mut r = self.clone();
        r.steps = r.steps.or(Some(preset.steps));
        r.guidance = r.guidance.or(Some(preset.guidance_scale));
        r.sampler = r.sampler.or(Some(preset.sampler));
        r.karras = r.karras.or(preset.karras);
        r.timestep_spacing = r.timestep_spacing.or(preset.timestep_spacing);
        r
    }

    /// The diffusion parameters for one frame's prompt.
    pub fn generation_params(&self, prompt: &str) -> GenerationParams {
        GenerationParams {
            prompt: prompt.to_owned(),
            negative_prompt: self.negative.clone(),
            width: self.generation_size.width as usize,
            height: self.generation_size.height as usize,
            steps: self.steps_or_default(),
            guidance_scale: self.guidance_or_default(),
            sampler: self.sampler,
            karras: self.karras,
            timestep_spacing: self.timestep_spacing,
            tiling: self.tiling,
            ..GenerationParams::default()
        }
    }

    /// The recipe as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| PixelGenError::RecipeFormat {
            format: "json",
            message: e.to_string(),
        })
    }

    /// The recipe as pretty RON (the `.pixelgen.ron` format).
    pub fn to_ron(&self) -> Result<String> {
        let config = ron::ser::PrettyConfig::default().extensions(Extensions::IMPLICIT_SOME);
        ron::ser::to_string_pretty(self, config).map_err(|e| PixelGenError::RecipeFormat {
            format: "ron",
            message: e.to_string(),
        })
    }

    /// Parses a RON recipe. Fields left out take their defaults; optional fields may be
    /// written bare (`steps: 8`) or as `Some(8)`; an unknown field is an error naming the
    /// nearest known one (`stepz` -> "did you mean `steps`?").
    pub fn from_ron(text: &str) -> Result<Self> {
        ron::Options::default()
            .with_default_extension(Extensions::IMPLICIT_SOME)
            .from_str(text)
            .map_err(|e| {
                let message = match &e.code {
                    ron::Error::NoSuchStructField {
                        expected, found, ..
                    } => format!("{}: {}", e.span, unknown_field(found, expected)),
                    _ => e.to_string(),
                };
                PixelGenError::RecipeFormat {
                    format: "ron",
                    message,
                }
            })
    }

    /// Parses a JSON recipe (same rules as [`Recipe::from_ron`]).
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| {
            let text = e.to_string();
            // serde's wording: "unknown field `x`, expected one of `a`, `b` at line L column C".
            let names: Vec<&str> = text.split('`').skip(1).step_by(2).collect();
            let message = match names.split_first() {
                Some((found, expected)) if text.starts_with("unknown field") => format!(
                    "line {} column {}: {}",
                    e.line(),
                    e.column(),
                    unknown_field(found, expected)
                ),
                _ => text,
            };
            PixelGenError::RecipeFormat {
                format: "json",
                message,
            }
        })
    }

    /// Parses a recipe file's bytes (RON, the `.pixelgen.ron` format): at most
    /// [`Recipe::MAX_FILE_BYTES`], valid UTF-8 (the error gives the byte offset of the
    /// first bad sequence), then [`Recipe::from_ron`].
    pub fn from_ron_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > Self::MAX_FILE_BYTES {
            return Err(PixelGenError::RecipeFormat {
                format: "ron",
                message: format!(
                    "the file is {} bytes; a recipe is at most {} (is this a recipe file?)",
                    bytes.len(),
                    Self::MAX_FILE_BYTES
                ),
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| PixelGenError::RecipeFormat {
            format: "ron",
            message: format!(
                "not UTF-8 text: an invalid byte sequence at byte {} (save the file as UTF-8)",
                e.valid_up_to()
            ),
        })?;
        Self::from_ron(text)
    }

    /// The largest recipe file [`Recipe::from_ron_bytes`] reads (1 MiB: a recipe with
    /// hundreds of frame prompts is a few KiB).
    pub const MAX_FILE_BYTES: usize = 1 << 20;
}

/// "unknown field `found`" with the nearest of `known` when one is close, and the list.
fn unknown_field(found: &str, known: &[&str]) -> String {
    let mut message = format!("unknown field `{found}`");
    if let Some(near) = nearest(found, known) {
        message.push_str(&format!(": did you mean `{near}`?"));
    }
    let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    message.push_str(&format!(" (known fields: {})", list.join(", ")));
    message
}

/// The entry of `known` within a small edit distance of `found` (a typo), if any.
pub(crate) fn nearest<'a>(found: &str, known: &[&'a str]) -> Option<&'a str> {
    let found = found.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&found, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn check_size(field: &'static str, s: Size) -> Result<()> {
    if s.width == 0 || s.height == 0 || s.width > MAX_SIDE || s.height > MAX_SIDE {
        return Err(invalid(
            field,
            format!("{s}: each side must be in 1..={MAX_SIDE}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_seed_is_recorded_and_fixed_seed_kept() {
        let a = Recipe::new("knight").with_drawn_seed();
        let b = Recipe::new("knight").with_drawn_seed();
        assert!(a.seed.value().is_some());
        assert_ne!(a.seed, b.seed, "two draws give two seeds");
        let mut fixed = Recipe::new("knight");
        fixed.seed = Seed::Fixed(7);
        assert_eq!(fixed.with_drawn_seed().seed, Seed::Fixed(7));
    }

    #[test]
    fn content_seed_is_stable_and_follows_the_recipe() {
        let a = Recipe::new("knight").with_content_seed().unwrap();
        let b = Recipe::new("knight").with_content_seed().unwrap();
        assert!(a.seed.value().is_some());
        assert_eq!(a.seed, b.seed, "same recipe, same seed");
        let c = Recipe::new("knight!").with_content_seed().unwrap();
        assert_ne!(a.seed, c.seed, "an edited prompt gets another seed");
        let mut size = Recipe::new("knight");
        size.size = Size::square(16);
        assert_ne!(size.with_content_seed().unwrap().seed, a.seed);
        let editor = Recipe {
            priority: Priority::Editor,
            ..Recipe::new("knight")
        };
        assert_eq!(editor.with_content_seed().unwrap().seed, a.seed);
        let mut fixed = Recipe::new("knight");
        fixed.seed = Seed::Fixed(9);
        assert_eq!(fixed.with_content_seed().unwrap().seed, Seed::Fixed(9));
    }

    #[test]
    fn default_pixel_options_target_the_requested_size() {
        let mut r = Recipe::new("slime");
        r.size = Size::new(24, 16);
        let p = r.pixel_options();
        assert!(p.detect_grid);
        assert_eq!(p.grid.fallback_size, Some((24, 16)));
        let canvas = p.canvas.expect("canvas");
        assert_eq!((canvas.width, canvas.height), (24, 16));
        assert!(p.background.is_some());
        // Explicit options are used as given.
        r.pixel = Some(PixelOptions {
            detect_grid: false,
            ..PixelOptions::default()
        });
        assert!(!r.pixel_options().detect_grid);
        assert_eq!(r.pixel_options().canvas, None);
    }

    #[test]
    fn validation_names_the_field() {
        let field_of = |r: &Recipe| match r.validate() {
            Err(PixelGenError::InvalidRecipe { field, .. }) => field,
            other => panic!("expected an invalid recipe, got {other:?}"),
        };
        assert!(Recipe::new("ok").validate().is_ok());
        assert_eq!(field_of(&Recipe::new("  ")), "prompt");
        let mut r = Recipe::new("x");
        r.size = Size::new(0, 32);
        assert_eq!(field_of(&r), "size");
        r.size = Size::square(64);
        r.generation_size = Size::square(32);
        assert_eq!(field_of(&r), "size");
        r.generation_size = Size::square(5000);
        assert_eq!(field_of(&r), "generation_size");
        let mut r = Recipe::new("x");
        r.steps = Some(0);
        assert_eq!(field_of(&r), "steps");
        let mut r = Recipe::new("x");
        r.guidance = Some(f64::NAN);
        assert_eq!(field_of(&r), "guidance");
        let mut r = Recipe::new("x");
        r.frames = Frames::Prompts(vec![]);
        assert_eq!(field_of(&r), "frames");
        r.frames = Frames::Prompts(vec!["walk".into(); Recipe::MAX_FRAMES + 1]);
        assert_eq!(field_of(&r), "frames");
        r.frames = Frames::Prompts(vec!["walk".into(); Recipe::MAX_FRAMES]);
        assert!(r.validate().is_ok());
        r.frames = Frames::Prompts(vec!["walk".into(), " ".into()]);
        assert_eq!(field_of(&r), "frames");
    }

    #[test]
    fn template_frames_expand() {
        let mut r = Recipe::new("knight");
        r.frames = Frames::Template {
            template: "{prompt}, walk frame {frame} of {count}".into(),
            count: 3,
        };
        assert_eq!(
            r.frame_prompts(),
            vec![
                "knight, walk frame 1 of 3",
                "knight, walk frame 2 of 3",
                "knight, walk frame 3 of 3"
            ]
        );
        assert_eq!(Recipe::new("solo").frame_prompts(), vec!["solo"]);
        assert_eq!(r.frame_count(), 3);
        let f = r.frame_recipe(1).unwrap();
        assert_eq!(f.prompt, "knight, walk frame 2 of 3");
        assert_eq!((f.frames, f.seed, f.size), (Frames::Single, r.seed, r.size));
        assert!(r.frame_recipe(3).is_none());
    }

    #[test]
    fn json_round_trip_and_partial_files() {
        let mut r = Recipe::new("chest, gold trim");
        r.seed = Seed::Fixed(42);
        r.sampler = Some(SchedulerKind::DpmPlusPlus2M);
        r.priority = Priority::Editor;
        r.frames = Frames::Prompts(vec!["a".into(), "b".into()]);
        let back = Recipe::from_json(&r.to_json().unwrap()).unwrap();
        assert_eq!(back, r);
        let partial = Recipe::from_json(r#"{"prompt": "potion", "seed": {"fixed": 9}}"#).unwrap();
        assert_eq!(partial.seed, Seed::Fixed(9));
        assert_eq!(partial.steps, None);
        assert_eq!(Recipe::from_ron(&r.to_ron().unwrap()).unwrap(), r);
        // Optional fields written bare (as people write them) or as `Some(..)`.
        let bare = Recipe::from_ron(r#"(prompt: "p", steps: 8, guidance: 1.5, negative: "blur")"#)
            .unwrap();
        assert_eq!((bare.steps, bare.guidance), (Some(8), Some(1.5)));
        assert_eq!(bare.negative.as_deref(), Some("blur"));
        let wrapped =
            Recipe::from_ron(r#"(prompt: "p", steps: Some(8), negative: Some("blur"))"#).unwrap();
        assert_eq!(
            (wrapped.steps, wrapped.negative),
            (Some(8), Some("blur".into()))
        );
        let ron_partial = Recipe::from_ron(
            r#"(prompt: "potion", seed: fixed(9), size: (width: 16, height: 16))"#,
        )
        .unwrap();
        assert_eq!(ron_partial.seed, Seed::Fixed(9));
        assert_eq!(ron_partial.size, Size::square(16));
        let err = Recipe::from_ron("(steps: \"many\")").unwrap_err();
        assert!(
            matches!(err, PixelGenError::RecipeFormat { format: "ron", .. }),
            "{err}"
        );
        let err = Recipe::from_json(r#"{"steps": "many"}"#).unwrap_err();
        assert!(
            matches!(err, PixelGenError::RecipeFormat { format: "json", .. }),
            "{err}"
        );
    }

    #[test]
    fn presets_set_every_sampling_field_and_reach_the_params() {
        let turbo = SamplingPreset::named("turbo").unwrap();
        let r = Recipe::new("knight").with_preset(&turbo);
        let p = r.generation_params("knight");
        let mut expected = GenerationParams {
            prompt: "knight".into(),
            width: 1024,
            height: 1024,
            ..GenerationParams::default()
        };
        turbo.apply(&mut expected);
        assert_eq!(p, expected);
        assert_eq!(p.timestep_spacing, Some(TimestepSpacing::Trailing));
        let q = Recipe::new("knight")
            .with_preset(&SamplingPreset::named("quality").unwrap())
            .generation_params("knight");
        assert_eq!((q.karras, q.steps), (Some(true), 30));
        // Round trip through RON keeps the overrides.
        let back = Recipe::from_ron(&r.to_ron().unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn a_preset_fills_only_the_unset_sampling_fields() {
        let fast = SamplingPreset::named("fast").unwrap();
        let unset = Recipe::new("knight").with_unset_sampling_from(&fast);
        assert_eq!(
            (unset.steps, unset.guidance, unset.sampler),
            (Some(8), Some(1.5), Some(SchedulerKind::Lcm))
        );
        let turbo = SamplingPreset::named("turbo").unwrap();
        let t = Recipe::new("knight").with_unset_sampling_from(&turbo);
        assert_eq!(t.timestep_spacing, Some(TimestepSpacing::Trailing));
        assert_eq!((t.steps, t.guidance), (Some(1), Some(0.0)));
        // Explicit values win, field by field.
        let own = Recipe {
            steps: Some(4),
            guidance: Some(2.0),
            sampler: Some(SchedulerKind::Euler),
            timestep_spacing: Some(TimestepSpacing::Leading),
            ..Recipe::new("knight")
        }
        .with_unset_sampling_from(&turbo);
        assert_eq!((own.steps, own.guidance), (Some(4), Some(2.0)));
        assert_eq!(own.sampler, Some(SchedulerKind::Euler));
        assert_eq!(own.timestep_spacing, Some(TimestepSpacing::Leading));
        let half = Recipe {
            steps: Some(6),
            ..Recipe::new("knight")
        }
        .with_unset_sampling_from(&fast);
        assert_eq!((half.steps, half.guidance), (Some(6), Some(1.5)));
        // Choosing the default value on purpose is a choice too: the preset does not win.
        let chosen = Recipe {
            steps: Some(Recipe::DEFAULT_STEPS),
            guidance: Some(Recipe::DEFAULT_GUIDANCE),
            ..Recipe::new("knight")
        }
        .with_unset_sampling_from(&fast);
        assert_eq!(
            (chosen.steps, chosen.guidance),
            (Some(Recipe::DEFAULT_STEPS), Some(Recipe::DEFAULT_GUIDANCE))
        );
        // Everything else is kept.
        assert_eq!(half.prompt, "knight");
        assert_eq!(half.size, Recipe::default().size);
    }

    #[test]
    fn generation_params_carry_the_recipe() {
        let mut r = Recipe::new("tree");
        r.negative = Some("blurry".into());
        r.generation_size = Size::new(64, 32);
        r.steps = Some(4);
        r.guidance = Some(1.0);
        let p = r.generation_params("tree, frame 1");
        assert_eq!(p.prompt, "tree, frame 1");
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry"));
        assert_eq!((p.width, p.height, p.steps), (64, 32, 4));
        assert_eq!(p.guidance_scale, 1.0);
        assert!(!p.tiling);
        r.tiling = true;
        assert!(r.generation_params("tree").tiling);
    }

    #[test]
    fn tiling_is_written_only_when_on_and_round_trips() {
        let plain = Recipe::new("grass");
        assert!(!plain.to_ron().unwrap().contains("tiling"));
        assert!(!Recipe::from_ron("(prompt: \"grass\")").unwrap().tiling);
        let tiled = Recipe {
            tiling: true,
            ..Recipe::new("grass")
        };
        let ron = tiled.to_ron().unwrap();
        assert!(ron.contains("tiling: true"), "{ron}");
        assert_eq!(Recipe::from_ron(&ron).unwrap(), tiled);
        assert_eq!(Recipe::from_json(&tiled.to_json().unwrap()).unwrap(), tiled);
    }

    #[test]
    fn unknown_fields_are_errors_naming_the_nearest_known_field() {
        let err = Recipe::from_ron(r#"(prompt: "potion", stepz: 40)"#).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("unknown field `stepz`: did you mean `steps`?"),
            "{text}"
        );
        assert!(text.contains("1:"), "the position is given: {text}");
        let err = Recipe::from_json(r#"{"prompt": "potion", "guidence": 2}"#).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("did you mean `guidance`?"), "{text}");
        assert!(text.contains("line 1"), "{text}");
        // Nested structs too; a name near nothing gets the list without a guess.
        let err = Recipe::from_ron(r#"(size: (width: 8, hieght: 8))"#).unwrap_err();
        assert!(err.to_string().contains("did you mean `height`?"), "{err}");
        let err = Recipe::from_ron(r#"(wibble: 1)"#).unwrap_err();
        assert!(!err.to_string().contains("did you mean"), "{err}");
        assert!(err.to_string().contains("`prompt`"), "{err}");
        // Every field a saved recipe writes still reads back.
        let full = Recipe {
            negative: Some("x".into()),
            steps: Some(3),
            guidance: Some(1.0),
            loras: vec![LoraRef::new("a.safetensors", 0.5)],
            model: Some("m".into()),
            tiling: true,
            ..Recipe::new("all")
        };
        assert_eq!(Recipe::from_ron(&full.to_ron().unwrap()).unwrap(), full);
        assert_eq!(Recipe::from_json(&full.to_json().unwrap()).unwrap(), full);
    }

    #[test]
    fn recipe_files_must_be_small_utf8() {
        let ok = Recipe::from_ron_bytes(br#"(prompt: "bat", steps: 8)"#).unwrap();
        assert_eq!(ok.steps, Some(8));
        let mut bad = br#"(prompt: "b"#.to_vec();
        bad.extend_from_slice(&[0xff, 0xfe]);
        bad.extend_from_slice(br#"at")"#);
        let err = Recipe::from_ron_bytes(&bad).unwrap_err().to_string();
        assert!(
            err.contains("not UTF-8") && err.contains("byte 11"),
            "{err}"
        );
        let huge = format!("(prompt: \"{}\")", "a".repeat(Recipe::MAX_FILE_BYTES));
        let err = Recipe::from_ron_bytes(huge.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("a recipe is at most"), "{err}");
    }
}
