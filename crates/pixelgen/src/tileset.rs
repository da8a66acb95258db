//! Tilesets from two terrains: a recipe's `tileset` makes a Wang 2-corner set (16 tiles) or a
//! blob set (47 tiles and the plain tile of the other terrain) whose every edge meets its
//! neighbours.
//!
//! How a set is made ([`CachedEngine`](crate::CachedEngine) runs it):
//!
//! 1. **Base tiles.** The model draws each terrain as a seamless texture (circular padding,
//!    `"{terrain}, {prompt}"`), cut on a fixed grid to the tile size. A base whose wrap-around
//!    seam scores above `seam_threshold` is drawn again with another seed (`retries` times).
//! 2. **One palette:** the colours of the two bases; every tile is mapped to it.
//! 3. **Transition tiles.** Each tile's terrain mask (its corners, or its neighbours for a
//!    blob set; see [`pixelgen_pixel::tileset`]) composes the two bases, and the model
//!    repaints a band around the boundary (`band` pixels wide, `"{a} and {b}, {prompt}"`),
//!    keeping the tile's outer `keep_border` pixels exactly. The mask's edge lines depend only
//!    on the shared corners, and the bases tile seamlessly, so every pair of tiles that may
//!    meet in a map continues across their edge.
//! 4. **Variations** of each base keep its border and redraw its inside.
//! 5. **Seams** of every edge two tiles may share are scored ([`SeamReport`]); tiles on a
//!    failing edge are drawn again, and a set that still fails is reported in
//!    [`TilesetOutput::seams`] and logged, never passed off as clean.
//!
//! The finished atlas is a sheet (one cell per tile, named by its code); [`tiled_tileset`]
//! and [`tile_index`] describe it for Tiled and for Bevy's `TilemapChunk` /
//! `bevy_ecs_tilemap`, and [`save_as`](crate::save_as) writes both beside the PNG.
//!
//! ```
//! use pixelgen::{Plan, Recipe};
//! use pixelgen::tileset::TilesetKind;
//!
//! let recipe = Recipe::from_ron(r#"(
//!     prompt: "top-down pixel art game tile",
//!     size: (width: 32, height: 32),
//!     tileset: (kind: wang, terrains: ("grass", "water"), variations: 1),
//! )"#)?;
//! let plan = Plan::new(recipe)?;
//! let tiles = plan.recipe().tileset.as_ref().unwrap().tiles();
//! assert_eq!(tiles.len(), 16 + 2, "16 Wang tiles and one variation of each terrain");
//! assert_eq!(plan.output_size().width, 4 * 32, "four tiles a row");
//! # Ok::<(), pixelgen::PixelGenError>(())
//! ```

use image::{GrayImage, Rgba, RgbaImage};
use pixelgen_diffusion::InpaintParams;
use pixelgen_pixel::grid::GridOptions;
use pixelgen_pixel::quantize::{Dither, map_to_palette};
use pixelgen_pixel::sheet::SheetLayout;
use pixelgen_pixel::tile::DEFAULT_SEAM_THRESHOLD;
pub use pixelgen_pixel::tileset::{
    SeamReport, Terrain, TileCode, TileIndex, TiledTileset, TilesetKind,
};
use serde::{Deserialize, Serialize};

use crate::edit::EditInputs;
use crate::error::{Result, invalid};
use crate::plan::Plan;
use crate::recipe::Recipe;

/// Most variations of each base tile.
pub const MAX_VARIATIONS: u32 = 8;
/// Most redraws of a base or a tile whose seams fail.
pub const MAX_RETRIES: u32 = 8;

/// A tileset from two terrain prompts (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TilesetRecipe {
    /// Wang 2-corner (16 tiles) or blob (47 + 1).
    pub kind: TilesetKind,
    /// The two terrains, A then B (e.g. `("grass", "water")`): a blob set's blobs are B.
    pub terrains: (String, String),
    /// Extra tiles of each terrain (0 to [`MAX_VARIATIONS`]), their borders the base's.
    pub variations: u32,
    /// Width in pixels of the band around a terrain boundary the model repaints; `None`:
    /// an eighth of the tile's shorter side, at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band: Option<u32>,
    /// Pixels at each tile's edge that are kept from the bases exactly (at least 1: they are
    /// what makes neighbours meet).
    pub keep_border: u32,
    /// How much the model redraws inside the band (as an edit's strength, in (0, 1]).
    pub strength: f64,
    /// Seam score above which an edge fails (see [`pixelgen_pixel::tile`]).
    pub seam_threshold: f32,
    /// Redraws of a base or a tile whose seams fail (0 to [`MAX_RETRIES`]).
    pub retries: u32,
}

impl Default for TilesetRecipe {
    fn default() -> Self {
        Self {
            kind: TilesetKind::default(),
            terrains: (String::new(), String::new()),
            variations: 0,
            band: None,
            keep_border: 1,
            strength: 0.9,
            seam_threshold: DEFAULT_SEAM_THRESHOLD,
            retries: 2,
        }
    }
}

impl TilesetRecipe {
    /// A `kind` set of `a` and `b` with every other setting at its default.
    pub fn new(kind: TilesetKind, a: impl Into<String>, b: impl Into<String>) -> Self {
        Self {
            kind,
            terrains: (a.into(), b.into()),
            ..Self::default()
        }
    }

    /// The atlas's tiles in order: the set's codes, then each variation of A and of B.
    pub fn tiles(&self) -> Vec<TileCode> {
        let mut tiles = self.kind.codes();
        let (a, b) = (
            self.kind.plain_tile(Terrain::A),
            self.kind.plain_tile(Terrain::B),
        );
        for _ in 0..self.variations {
            tiles.push(a);
            tiles.push(b);
        }
        tiles
    }

    /// The atlas cells' names, in order: each code's name, variations with `-v1`, `-v2`...
    pub fn tile_names(&self) -> Vec<String> {
        let main = self.kind.len();
        self.tiles()
            .iter()
            .enumerate()
            .map(|(i, code)| {
                if i < main {
                    code.name()
                } else {
                    format!("{}-v{}", code.name(), (i - main) / 2 + 1)
                }
            })
            .collect()
    }

    /// The band's width for tiles of `width` x `height`.
    pub fn band_for(&self, width: u32, height: u32) -> u32 {
        self.band.unwrap_or((width.min(height) / 8).max(1))
    }

    /// Checks the options for tiles of `size`.
    pub fn validate(&self, recipe: &Recipe) -> Result<()> {
        let bad = |message: String| Err(invalid("tileset", message));
        let (a, b) = &self.terrains;
        if a.trim().is_empty() || b.trim().is_empty() {
            return bad("name both terrains, e.g. terrains: (\"grass\", \"water\")".into());
        }
        let (w, h) = (recipe.size.width, recipe.size.height);
        if w < 8 || h < 8 {
            return bad(format!(
                "tiles of {} are too small: at least 8x8",
                recipe.size
            ));
        }
        if !recipe.generation_size.width.is_multiple_of(w)
            || !recipe.generation_size.height.is_multiple_of(h)
        {
            return bad(format!(
                "generation_size {} is not a whole number of {} tiles: the model's pixels are \
                 cut on a fixed grid (e.g. 1024x1024 for 32x32 or 16x16 tiles)",
                recipe.generation_size, recipe.size
            ));
        }
        if self.variations > MAX_VARIATIONS {
            return bad(format!(
                "{} variations: at most {MAX_VARIATIONS}",
                self.variations
            ));
        }
        if self.retries > MAX_RETRIES {
            return bad(format!("{} retries: at most {MAX_RETRIES}", self.retries));
        }
        let band = self.band_for(w, h);
        if band == 0 || band >= w.min(h) / 2 {
            return bad(format!(
                "band {band} px: 1 to {} px for {} tiles",
                w.min(h) / 2 - 1,
                recipe.size
            ));
        }
        if self.keep_border == 0 || self.keep_border >= w.min(h) / 4 {
            return bad(format!(
                "keep_border {} px: 1 to {} px for {} tiles (the edge pixels make neighbours \
                 meet)",
                self.keep_border,
                (w.min(h) / 4).saturating_sub(1).max(1),
                recipe.size
            ));
        }
        if !self.strength.is_finite() || self.strength <= 0.0 || self.strength > 1.0 {
            return bad(format!(
                "strength {} is outside 0 (exclusive) to 1",
                self.strength
            ));
        }
        if !self.seam_threshold.is_finite() || self.seam_threshold < 0.0 {
            return bad(format!(
                "seam_threshold {} is not a seam score (>= 0; {DEFAULT_SEAM_THRESHOLD} is the \
                 default)",
                self.seam_threshold
            ));
        }
        Ok(())
    }

    /// The atlas row length when the recipe's sheet names none: 4 for Wang, 8 for blob.
    pub fn default_columns(&self) -> u32 {
        match self.kind {
            TilesetKind::Wang => 4,
            TilesetKind::Blob => 8,
        }
    }

    /// The prompt a tile of `code` is drawn with, in the recipe's style `prompt`: a plain
    /// tile's terrain, or both terrains for a transition.
    fn tile_prompt(&self, code: TileCode, prompt: &str) -> String {
        match code.plain() {
            Some(t) => format!("{}, {prompt}", self.terrain(t)),
            None => format!("{} and {}, {prompt}", self.terrains.0, self.terrains.1),
        }
    }

    fn terrain(&self, t: Terrain) -> &str {
        match t {
            Terrain::A => &self.terrains.0,
            Terrain::B => &self.terrains.1,
        }
    }
}

/// What a finished tileset is: its tiles in atlas order and how its seams scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TilesetOutput {
    /// Wang or blob.
    pub kind: TilesetKind,
    /// Each atlas cell's code, in order (variations repeat a plain code).
    pub tiles: Vec<TileCode>,
    /// Every edge two of the set's tiles may share, scored; [`SeamReport::passed`] says
    /// whether all are within the recipe's threshold.
    pub seams: SeamReport,
    /// The wrap-around seam score of the A and the B base tile.
    pub base_seams: (f32, f32),
}

impl TilesetOutput {
    /// The seam line for people (see [`SeamReport::summary`]) at `threshold` (the recipe's
    /// `seam_threshold`), with the tiles on failing edges named when there are any.
    pub fn summary(&self, threshold: f32) -> String {
        let line = self.seams.summary(threshold);
        let tiles = self.seams.tiles_on_failing_edges();
        if tiles.is_empty() {
            return line;
        }
        let names: Vec<String> = tiles
            .iter()
            .filter_map(|&i| self.tiles.get(i).map(|c| c.name()))
            .collect();
        format!("{line}; tiles on failing edges: {}", names.join(", "))
    }

    /// Scores the tiles of a finished atlas (`frames` in atlas order) for `set`.
    pub(crate) fn measure(set: &TilesetRecipe, frames: &[RgbaImage]) -> Result<Self> {
        let tiles = set.tiles();
        let main = set.kind.len();
        let seams = pixelgen_pixel::tileset::seam_report(
            set.kind,
            &frames[..main.min(frames.len())],
            set.seam_threshold,
        )?;
        let base = |t: Terrain| -> Result<f32> {
            let i = set
                .kind
                .index_of(set.kind.plain_tile(t))
                .unwrap_or_default();
            Ok(pixelgen_pixel::tile::seam_score(&frames[i])?.combined)
        };
        Ok(Self {
            kind: set.kind,
            base_seams: (base(Terrain::A)?, base(Terrain::B)?),
            tiles,
            seams,
        })
    }
}

/// The Tiled tileset (`.tsx`, with a wangset) of a tileset recipe's atlas, whose PNG is
/// `image_file` (relative to the `.tsx`). Errors when the recipe makes no tileset.
pub fn tiled_tileset(
    recipe: &Recipe,
    layout: &SheetLayout,
    image_file: &str,
) -> Result<TiledTileset> {
    let set = tileset_of(recipe)?;
    let (image_width, image_height) = layout.sheet_size();
    let padding = recipe.sheet.as_ref().map_or(0, |s| s.padding);
    Ok(TiledTileset {
        name: crate::output::prompt_slug(&format!("{} {}", set.terrains.0, set.terrains.1)),
        image: image_file.to_owned(),
        image_width,
        image_height,
        tile_width: recipe.size.width,
        tile_height: recipe.size.height,
        columns: layout.columns,
        spacing: padding,
        margin: 0,
        kind: set.kind,
        tiles: set.tiles(),
        terrain_names: [set.terrains.0.clone(), set.terrains.1.clone()],
        terrain_colors: [[64, 160, 64], [48, 96, 200]],
    })
}

/// The index table of a tileset recipe's atlas: per tile code, the atlas index of its tile
/// and of its variations (what Bevy's `TilemapChunk` and `bevy_ecs_tilemap` take per cell).
/// Errors when the recipe makes no tileset.
pub fn tile_index(recipe: &Recipe, layout: &SheetLayout) -> Result<TileIndex> {
    let set = tileset_of(recipe)?;
    Ok(TileIndex::new(
        set.kind,
        (recipe.size.width, recipe.size.height),
        layout.columns,
        &set.tiles(),
    )?)
}

/// The recipe's tileset, or the error that it has none.
fn tileset_of(recipe: &Recipe) -> Result<&TilesetRecipe> {
    recipe
        .tileset
        .as_ref()
        .ok_or_else(|| invalid("tileset", "the recipe makes no tileset"))
}

/// How the engine draws one tile of a set, before the set's palette is applied.
pub(crate) enum TileJob {
    /// A plain tile: the base of this terrain as it is.
    Base(Terrain),
    /// An edit of pixels made from the bases (a transition, a variation).
    Edit(EditInputs),
    /// Pixels made from the bases that need no model (a mask without any boundary band).
    Composed(RgbaImage),
}

/// The single-sprite recipe every tile of `recipe`'s set is drawn with: `prompt`, a seed
/// of its own, no tileset, and pixel options that cut the model's image on a fixed grid to
/// exactly the tile size, opaque (no background removal or outline).
pub(crate) fn tile_recipe(recipe: &Recipe, prompt: String, salt: u64, tiling: bool) -> Recipe {
    let mut pixel = recipe.pixel_options();
    pixel.background = None;
    pixel.outline = None;
    let (w, h) = (recipe.size.width, recipe.size.height);
    let (gw, gh) = (recipe.generation_size.width, recipe.generation_size.height);
    pixel.detect_grid = true;
    pixel.grid = GridOptions {
        offset_x: Some(0.0),
        offset_y: Some(0.0),
        fallback_size: Some((w, h)),
        ..GridOptions::with_cell(gw as f32 / w as f32, gh as f32 / h as f32)
    };
    let seed = recipe.seed.value().unwrap_or(0);
    Recipe {
        prompt,
        seed: crate::recipe::Seed::Fixed(
            seed.wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        ),
        pixel: Some(pixel),
        tiling,
        tileset: None,
        ..recipe.single_frame(String::new())
    }
}

/// The plan of base tile `terrain`, drawn for the `attempt`th time.
pub(crate) fn base_plan(plan: &Plan, terrain: Terrain, attempt: u32) -> Result<Plan> {
    let recipe = plan.recipe();
    let set = tileset_of(recipe)?;
    let prompt = set.tile_prompt(set.kind.plain_tile(terrain), &recipe.prompt);
    let salt = 1 + terrain as u64 + 2 * attempt as u64;
    Plan::new(tile_recipe(recipe, prompt, salt, true))
}

/// What tile `index` (atlas order) of `plan`'s set takes from the bases `a` and `b`.
pub(crate) fn tile_job(plan: &Plan, index: usize, a: &RgbaImage, b: &RgbaImage) -> Result<TileJob> {
    let recipe = plan.recipe();
    let set = tileset_of(recipe)?;
    let tiles = set.tiles();
    let code = tiles[index];
    let (w, h) = (recipe.size.width, recipe.size.height);
    let main = set.kind.len();
    let inpaint = InpaintParams {
        strength: set.strength,
        mask_blur: 0.0,
    };
    if let Some(terrain) = code.plain() {
        if index < main {
            return Ok(TileJob::Base(terrain));
        }
        // A variation: the base's inside redrawn, its border kept.
        let source = match terrain {
            Terrain::A => a.clone(),
            Terrain::B => b.clone(),
        };
        let k = set.keep_border;
        let mask = RgbaImage::from_fn(w, h, |x, y| {
            let inside = x >= k && y >= k && x + k < w && y + k < h;
            if inside { WHITE } else { BLACK }
        });
        return Ok(TileJob::Edit(EditInputs::new(source, mask, inpaint)?));
    }
    let terrain = pixelgen_pixel::tileset::terrain_mask(code, w, h)?;
    let composed = pixelgen_pixel::tileset::compose(&terrain, a, b)?;
    let band = pixelgen_pixel::tileset::repaint_mask(&terrain, set.band_for(w, h), set.keep_border);
    if !band.pixels().any(|p| p.0[0] >= 128) {
        return Ok(TileJob::Composed(composed));
    }
    Ok(TileJob::Edit(EditInputs::new(
        composed,
        gray_to_mask(&band),
        inpaint,
    )?))
}

/// The plan that draws tile `index` as an edit of `inputs`, for the `attempt`th time.
pub(crate) fn edit_plan(
    plan: &Plan,
    index: usize,
    attempt: u32,
    inputs: EditInputs,
) -> Result<Plan> {
    let recipe = plan.recipe();
    let set = tileset_of(recipe)?;
    let prompt = set.tile_prompt(set.tiles()[index], &recipe.prompt);
    let salt = 1000 + index as u64 * 16 + attempt as u64;
    Ok(Plan::new(tile_recipe(recipe, prompt, salt, false))?.with_edit(inputs))
}

/// The set's palette: the colours of both bases.
pub(crate) fn palette_of(a: &RgbaImage, b: &RgbaImage) -> Vec<[u8; 3]> {
    let mut colors = pixelgen_pixel::pipeline::distinct_colors(a);
    for c in pixelgen_pixel::pipeline::distinct_colors(b) {
        if !colors.contains(&c) {
            colors.push(c);
        }
    }
    colors
}

/// `tile` in the set's palette (pixels that are palette colours stay as they are).
pub(crate) fn in_palette(tile: &RgbaImage, palette: &[[u8; 3]]) -> Result<RgbaImage> {
    if palette.is_empty() {
        return Ok(tile.clone());
    }
    Ok(map_to_palette(tile, palette, Dither::None, 1.0)?)
}

const WHITE: Rgba<u8> = Rgba([255, 255, 255, 255]);
const BLACK: Rgba<u8> = Rgba([0, 0, 0, 255]);

fn gray_to_mask(mask: &GrayImage) -> RgbaImage {
    RgbaImage::from_fn(mask.width(), mask.height(), |x, y| {
        if mask.get_pixel(x, y).0[0] >= 128 {
            WHITE
        } else {
            BLACK
        }
    })
}

impl<E: crate::SpriteEngine> crate::CachedEngine<E> {
    /// A tileset (see the [module docs](self)): bases, one palette, transitions and
    /// variations, seams checked (failing tiles drawn again), packed into an atlas.
    /// Progress counts one frame per tile; every tile is cached like a sprite.
    pub(crate) fn make_tileset(
        &mut self,
        plan: &Plan,
        key: crate::CacheKey,
        progress: &mut dyn FnMut(&crate::Progress) -> crate::Control,
    ) -> Result<crate::Generated> {
        use pixelgen_pixel::sheet::{Frame, pack};
        let set = plan
            .recipe()
            .tileset
            .clone()
            .ok_or_else(|| invalid("tileset", "make_tileset needs a tileset recipe"))?;
        let size = plan.recipe().size;
        let tiles = set.tiles();
        let n = tiles.len();
        let mut per_frame = plan.recipe().steps_or_default().max(1);
        // Progress counts model runs in the order they happen, one tile's steps each (a
        // redraw past the last tile stays there).
        let mut runs = 0usize;
        let mut draw = |engine: &mut Self, tile: &Plan, per_frame: &mut usize| {
            let slot = runs.min(n - 1);
            runs += 1;
            let tile_key = engine.key(tile)?;
            let (image, _) = engine.frame_image(tile, tile_key, slot, n, per_frame, progress)?;
            if image.dimensions() != (size.width, size.height) {
                return Err(crate::PixelGenError::Engine(format!(
                    "the engine drew a {}x{} tile for {size} tiles",
                    image.width(),
                    image.height()
                )));
            }
            Ok(image)
        };
        // 1. Bases, each drawn again while its wrap-around seam fails.
        let mut bases = Vec::with_capacity(2);
        for terrain in [Terrain::A, Terrain::B] {
            let mut best: Option<(f32, RgbaImage)> = None;
            for attempt in 0..=set.retries {
                let image = draw(self, &base_plan(plan, terrain, attempt)?, &mut per_frame)?;
                let score = pixelgen_pixel::tile::seam_score(&image)?.combined;
                if best.as_ref().is_none_or(|(s, _)| score < *s) {
                    best = Some((score, image));
                }
                if score <= set.seam_threshold {
                    break;
                }
            }
            let (score, image) = best.expect("at least one attempt");
            if score > set.seam_threshold {
                tracing::warn!(
                    "pixelgen: the {} base tile's seams score {score:.2} (threshold {})",
                    set.terrain(terrain),
                    set.seam_threshold
                );
            }
            bases.push(image);
        }
        let (a, b) = (&bases[0], &bases[1]);
        // 2. One palette; 3. every tile.
        let palette = palette_of(a, b);
        let mut images = Vec::with_capacity(n);
        let mut draw_tile = |engine: &mut Self, i: usize, attempt: u32, per_frame: &mut usize| {
            let image = match tile_job(plan, i, a, b)? {
                TileJob::Base(Terrain::A) => a.clone(),
                TileJob::Base(Terrain::B) => b.clone(),
                TileJob::Composed(image) => image,
                TileJob::Edit(inputs) => {
                    draw(engine, &edit_plan(plan, i, attempt, inputs)?, per_frame)?
                }
            };
            in_palette(&image, &palette)
        };
        for i in 0..n {
            images.push(draw_tile(self, i, 0, &mut per_frame)?);
        }
        // 4. Seams: tiles on a failing edge are drawn again (never the bases: their own
        // seams were checked above).
        let mut out = TilesetOutput::measure(&set, &images)?;
        for attempt in 1..=set.retries {
            if out.seams.passed() {
                break;
            }
            let redo: Vec<usize> = out
                .seams
                .tiles_on_failing_edges()
                .into_iter()
                .filter(|&i| tiles[i].plain().is_none())
                .collect();
            if redo.is_empty() {
                break;
            }
            for i in redo {
                images[i] = draw_tile(self, i, attempt, &mut per_frame)?;
            }
            out = TilesetOutput::measure(&set, &images)?;
        }
        if !out.seams.passed() {
            tracing::warn!(
                "pixelgen: tileset {} / {}: {} of {} edges score above {} (worst {:.2})",
                set.terrains.0,
                set.terrains.1,
                out.seams.failing.len(),
                out.seams.edges.len(),
                set.seam_threshold,
                out.seams.worst
            );
        }
        // 5. The atlas.
        let frames: Vec<Frame> = images
            .into_iter()
            .zip(set.tile_names())
            .map(|(image, name)| Frame::new(image).with_name(name))
            .collect();
        let sheet = pack(&frames, &plan.sheet_options())?;
        self.store_sheet(key, &sheet);
        Ok(crate::Generated {
            tileset: Some(out),
            ..crate::Generated::made(plan, key, sheet.image, Some(sheet.layout), false)
        })
    }
}
