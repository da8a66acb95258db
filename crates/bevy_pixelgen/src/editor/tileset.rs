//! The gallery's view of a finished tileset: a small island map autotiled from its atlas
//! ([`TilesetPreview::map`]) and how its seams scored ([`SeamSummary`], from the seam report
//! the result carries: the engine scored the set, the editor does not score it again). The panel paints the map cell by cell from the
//! item's texture ([`TilesetPreview::uv`]).

use bevy::math::{Rect, URect};
use pixelgen::tileset::{Terrain, TilesetKind};
use pixelgen::{Plan, Recipe};
use pixelgen_pixel::tileset::{SeamReport, autotile_blob, autotile_wang, summary_line};

/// Width of the preview map, in tiles.
pub const PREVIEW_MAP_WIDTH: usize = 8;
/// Height of the preview map, in tiles.
pub const PREVIEW_MAP_HEIGHT: usize = 6;

/// The Wang preview's corner grid ((width + 1) x (height + 1)): `#` is terrain B, `.` A. An
/// island with a bay and an islet, so most of the 16 tiles show.
const WANG_CORNERS: [&str; PREVIEW_MAP_HEIGHT + 1] = [
    ".........",
    "..####...",
    ".######..",
    ".###.###.",
    "..#####.#",
    "...##....",
    ".........",
];

/// The blob preview's cell grid (width x height): `#` is terrain B, `.` A.
const BLOB_CELLS: [&str; PREVIEW_MAP_HEIGHT] = [
    "........", "..###...", ".#####..", ".##.###.", "..###..#", "........",
];

/// Terrains from rows of `#` (B) and `.` (A), row-major.
fn terrains(rows: &[&str]) -> Vec<Terrain> {
    rows.iter()
        .flat_map(|r| r.chars().map(|c| Terrain::from_bit(c == '#')))
        .collect()
}

/// The preview map of a `kind` set: the atlas index of each of its
/// [`PREVIEW_MAP_WIDTH`] x [`PREVIEW_MAP_HEIGHT`] tiles (row-major), autotiled from a fixed
/// island-shaped grid with `autotile_wang` (corners) or `autotile_blob` (cells).
pub fn preview_map(kind: TilesetKind) -> Vec<usize> {
    let (w, h) = (PREVIEW_MAP_WIDTH, PREVIEW_MAP_HEIGHT);
    let made = match kind {
        TilesetKind::Wang => autotile_wang(&terrains(&WANG_CORNERS), w, h),
        TilesetKind::Blob => autotile_blob(&terrains(&BLOB_CELLS), w, h),
    };
    // The grids above have the right lengths, so this cannot fail; an empty map draws nothing.
    made.unwrap_or_default()
}

/// How a tileset's seams scored: every edge two of its tiles may share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeamSummary {
    /// Edges scored.
    pub edges: usize,
    /// Edges scoring above `threshold`.
    pub failing: usize,
    /// The highest score.
    pub worst: f32,
    /// The recipe's seam threshold.
    pub threshold: f32,
}

impl SeamSummary {
    /// One line for the gallery: `seams: all 120 edges within 1.50 (worst 0.42)` or
    /// `seams: 3 of 120 edges above 1.50 (worst 2.31)`.
    pub fn line(&self) -> String {
        summary_line(self.edges, self.failing, self.worst, self.threshold)
    }

    /// Whether every edge is within the threshold.
    pub fn passed(&self) -> bool {
        self.failing == 0
    }
}

/// What the gallery shows beside a tileset's atlas.
#[derive(Debug, Clone, PartialEq)]
pub struct TilesetPreview {
    /// Wang or blob.
    pub kind: TilesetKind,
    /// The atlas index of each preview map tile, row-major ([`preview_map`]).
    pub map: Vec<usize>,
    /// Each atlas cell's rect in the atlas, in pixels (in atlas order, variations included).
    pub cells: Vec<URect>,
    /// The atlas's size in pixels.
    pub atlas_size: (u32, u32),
    /// The seams of the set's tiles, scored on the atlas pixels.
    pub seams: SeamSummary,
}

impl TilesetPreview {
    /// Width of [`map`](Self::map) in tiles.
    pub fn width(&self) -> usize {
        PREVIEW_MAP_WIDTH
    }

    /// Height of [`map`](Self::map) in tiles.
    pub fn height(&self) -> usize {
        PREVIEW_MAP_HEIGHT
    }

    /// The normalised texture rect (0..1) of atlas cell `index`.
    pub fn uv(&self, index: usize) -> Option<Rect> {
        let r = self.cells.get(index)?;
        let (w, h) = (
            self.atlas_size.0.max(1) as f32,
            self.atlas_size.1.max(1) as f32,
        );
        Some(Rect::new(
            r.min.x as f32 / w,
            r.min.y as f32 / h,
            r.max.x as f32 / w,
            r.max.y as f32 / h,
        ))
    }
}

/// The preview of a finished tileset: `recipe` made an atlas of `atlas_size` whose seams
/// scored `seams` (the result's [`TilesetOutput::seams`](pixelgen::TilesetOutput::seams), at
/// the recipe's threshold). Its cells are where the recipe packs them (the plan's sheet
/// grid). Errors (with the reason) when the recipe makes no tileset or the atlas is not the
/// size its recipe packs.
pub fn tileset_preview(
    recipe: &Recipe,
    atlas_size: (u32, u32),
    seams: &SeamReport,
) -> Result<TilesetPreview, String> {
    let set = recipe
        .tileset
        .as_ref()
        .ok_or("the recipe makes no tileset")?;
    let plan = Plan::new(recipe.clone()).map_err(|e| e.to_string())?;
    let layout = plan
        .sheet_layout()
        .ok_or("the tileset recipe packs no atlas")?;
    let (w, h) = layout.sheet_size();
    if atlas_size != (w, h) {
        return Err(format!(
            "the atlas is {}x{}, its recipe packs {w}x{h}",
            atlas_size.0, atlas_size.1
        ));
    }
    let cells: Vec<URect> = layout
        .frames
        .iter()
        .map(|f| {
            let r = f.rect;
            URect::new(r.x, r.y, r.x + r.w, r.y + r.h)
        })
        .collect();
    let main = set.kind.len();
    if cells.len() < main {
        return Err(format!(
            "the atlas has {} cells, a {} set {main}",
            cells.len(),
            set.kind.name()
        ));
    }
    Ok(TilesetPreview {
        kind: set.kind,
        map: preview_map(set.kind),
        cells,
        atlas_size: (w, h),
        seams: SeamSummary {
            edges: seams.edges.len(),
            failing: seams.failing.len(),
            worst: seams.worst,
            threshold: set.seam_threshold,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_maps_are_islands_of_b_in_a() {
        let wang = preview_map(TilesetKind::Wang);
        assert_eq!(wang.len(), PREVIEW_MAP_WIDTH * PREVIEW_MAP_HEIGHT);
        assert!(wang.iter().all(|&i| i < 16));
        // The corners of the map are all A (code 0); the island's inside is all B (code 15).
        assert_eq!((wang[0], wang[wang.len() - 1]), (0, 0));
        assert!(wang.contains(&15));
        let distinct: std::collections::BTreeSet<usize> = wang.iter().copied().collect();
        assert!(distinct.len() >= 12, "{distinct:?}");
        let blob = preview_map(TilesetKind::Blob);
        assert_eq!(blob.len(), PREVIEW_MAP_WIDTH * PREVIEW_MAP_HEIGHT);
        assert!(blob.iter().all(|&i| i < 48));
        assert_eq!(blob[0], 0, "A cells are the plain A tile");
        assert!(blob.iter().filter(|&&i| i != 0).count() >= 15);
    }

    #[test]
    fn seam_lines() {
        let mut s = SeamSummary {
            edges: 120,
            failing: 0,
            worst: 0.4213,
            threshold: 1.5,
        };
        assert_eq!(s.line(), "seams: all 120 edges within 1.50 (worst 0.42)");
        assert!(s.passed());
        s.failing = 3;
        s.worst = 2.314;
        assert_eq!(s.line(), "seams: 3 of 120 edges above 1.50 (worst 2.31)");
        assert!(!s.passed());
    }

    #[test]
    fn previews_check_the_recipe_and_the_atlas() {
        let mut recipe = Recipe {
            size: pixelgen::Size::square(16),
            generation_size: pixelgen::Size::square(64),
            seed: pixelgen::Seed::Fixed(1),
            ..Recipe::new("tile")
        };
        let atlas = image::RgbaImage::from_pixel(64, 64, image::Rgba([10, 200, 30, 255]));
        // One colour everywhere: every edge meets (the report a result of it carries).
        let tiles = vec![image::RgbaImage::from_pixel(16, 16, image::Rgba([10, 200, 30, 255])); 16];
        let report = pixelgen_pixel::tileset::seam_report(TilesetKind::Wang, &tiles, 1.5).unwrap();
        assert!(
            tileset_preview(&recipe, atlas.dimensions(), &report)
                .unwrap_err()
                .contains("no tileset")
        );
        recipe.tileset = Some(pixelgen::TilesetRecipe::new(
            TilesetKind::Wang,
            "grass",
            "water",
        ));
        let p = tileset_preview(&recipe, atlas.dimensions(), &report).unwrap();
        assert_eq!(p.cells.len(), 16);
        assert_eq!(p.atlas_size, (64, 64));
        assert!(p.seams.passed() && p.seams.edges > 0, "{:?}", p.seams);
        assert_eq!(p.uv(5), Some(Rect::new(0.25, 0.25, 0.5, 0.5)));
        assert_eq!(p.uv(16), None);
        assert!(
            tileset_preview(&recipe, (32, 64), &report)
                .unwrap_err()
                .contains("32x64")
        );
    }
}
