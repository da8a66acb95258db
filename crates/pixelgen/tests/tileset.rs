//! Tilesets through the facade on synthetic terrains: every tile's edges meet its
//! neighbours', the plain tiles are the bases, one palette, the formats describe the atlas,
//! a set whose seams fail is drawn again and then reported, and bad recipes are refused.

mod common;
#[path = "common/terrains.rs"]
mod terrains;

use common::Scratch;
use image::RgbaImage;
use pixelgen::tileset::{Terrain, TileCode, TilesetKind, TilesetRecipe, tile_index, tiled_tileset};
use pixelgen::{CachedEngine, Control, DiskCache, Recipe, Seed, Size};
use pixelgen_pixel::tileset::{autotile_blob, autotile_wang, neighbours};
use terrains::{GRASS, Terrains, WATER};

fn tileset_recipe(kind: TilesetKind) -> Recipe {
    Recipe {
        seed: Seed::Fixed(4),
        size: Size::square(16),
        generation_size: Size::square(64),
        tileset: Some(TilesetRecipe::new(kind, "grass", "water")),
        ..Recipe::new("top-down tile")
    }
}

fn cut(atlas: &RgbaImage, layout: &pixelgen::SheetLayout) -> Vec<RgbaImage> {
    layout
        .frames
        .iter()
        .map(|f| {
            let r = f.rect;
            image::imageops::crop_imm(atlas, r.x, r.y, r.w, r.h).to_image()
        })
        .collect()
}

/// The base pixel of `terrain` at (x, y).
fn base(terrain: Terrain, x: u32, y: u32) -> [u8; 4] {
    match terrain {
        Terrain::A => GRASS[((x + y) % 2) as usize],
        Terrain::B => WATER[(y % 2) as usize],
    }
}

#[test]
fn a_wang_set_meets_at_every_edge_and_describes_itself() {
    let mut engine = CachedEngine::new(Terrains::default());
    let recipe = tileset_recipe(TilesetKind::Wang);
    let out = engine
        .generate(&recipe, &mut |_| Control::Continue)
        .unwrap();
    let layout = out.layout.clone().expect("an atlas");
    assert_eq!((layout.columns, layout.rows), (4, 4));
    assert_eq!(out.image.dimensions(), (64, 64));
    let tiles = cut(&out.image, &layout);
    let report = out.tileset.clone().expect("a tileset report");
    assert!(report.seams.passed(), "{:?}", report.seams);
    assert!(
        report.seams.edges.len() >= 2 * 16 * 4,
        "every edge pair scored"
    );
    // Tile 0 is all grass and tile 15 all water: the bases exactly.
    for (x, y, p) in tiles[0].enumerate_pixels() {
        assert_eq!(p.0, base(Terrain::A, x, y));
    }
    for (x, y, p) in tiles[15].enumerate_pixels() {
        assert_eq!(p.0, base(Terrain::B, x, y));
    }
    // The border of every tile comes from the bases (grass or water), the band is the
    // model's (sand), nothing else appears: one palette of the bases' colours.
    let palette: Vec<[u8; 4]> = GRASS.iter().chain(&WATER).copied().collect();
    for (i, tile) in tiles.iter().enumerate() {
        let mut repainted = 0;
        for (x, y, p) in tile.enumerate_pixels() {
            let border = x == 0 || y == 0 || x == 15 || y == 15;
            if border {
                assert!(
                    p.0 == base(Terrain::A, x, y) || p.0 == base(Terrain::B, x, y),
                    "tile {i} border ({x}, {y}) is {:?}",
                    p.0
                );
            }
            assert!(palette.contains(&p.0), "tile {i} ({x}, {y}): {:?}", p.0);
            repainted +=
                usize::from(p.0 != base(Terrain::A, x, y) && p.0 != base(Terrain::B, x, y));
        }
        if i != 0 && i != 15 {
            assert!(repainted > 0, "tile {i}'s boundary band was repainted");
        }
    }
    // An autotiled map: every pair of neighbours in it continues across its edge exactly
    // as the base textures do.
    let corners: Vec<Terrain> = (0..7 * 6)
        .map(|i| {
            if (i * 7 + i / 7) % 5 < 2 {
                Terrain::B
            } else {
                Terrain::A
            }
        })
        .collect();
    let map = autotile_wang(&corners, 6, 5).unwrap();
    let pairs = neighbours(TilesetKind::Wang);
    for y in 0..5 {
        for x in 0..6 {
            let here = map[y * 6 + x];
            if x + 1 < 6 {
                let right = map[y * 6 + x + 1];
                assert!(pairs.iter().any(|&(a, b, _)| (a, b) == (here, right)));
                for row in 0..16 {
                    let (l, r) = (
                        tiles[here].get_pixel(15, row),
                        tiles[right].get_pixel(0, row),
                    );
                    let same_terrain = [Terrain::A, Terrain::B]
                        .into_iter()
                        .any(|t| l.0 == base(t, 15, row) && r.0 == base(t, 0, row));
                    assert!(same_terrain, "tiles {here}|{right} row {row}: {l:?} {r:?}");
                }
            }
        }
    }
    // Formats: the index table and the Tiled tileset name every tile.
    let index = tile_index(&out.recipe, &layout).unwrap();
    assert_eq!(index.index_of(TileCode::Wang(5), 0), Some(5));
    let tsx = tiled_tileset(&out.recipe, &layout, "grass-water.png")
        .unwrap()
        .to_tsx();
    assert!(tsx.contains("type=\"corner\""), "{tsx}");
    assert_eq!(tsx.matches("<wangtile ").count(), 16);
    assert!(tsx.contains("source=\"grass-water.png\""));
    // Made once: 2 bases and 14 transitions; a second run takes every tile from memory.
    assert_eq!(engine.engine().prompts.len(), 16);
    assert_eq!(engine.engine().untiled_grass, 0, "bases are drawn seamless");
    assert!(engine.engine().prompts[2].starts_with("grass and water, top-down tile"));
    let again = engine
        .generate(&out.recipe, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(
        engine.engine().prompts.len(),
        16,
        "the model did not run again"
    );
    assert_eq!(again.image, out.image);
    assert_eq!(again.tileset, out.tileset, "measured again from the atlas");
}

#[test]
fn a_blob_set_with_variations_from_the_disk_cache() {
    let dir = Scratch::new("tileset-blob");
    let disk = DiskCache::new(dir.path().join("cache"));
    let mut recipe = tileset_recipe(TilesetKind::Blob);
    recipe.tileset.as_mut().unwrap().variations = 2;
    let mut engine = CachedEngine::new(Terrains::default()).with_disk_cache(disk.clone());
    let out = engine
        .generate(&recipe, &mut |_| Control::Continue)
        .unwrap();
    let layout = out.layout.clone().unwrap();
    assert_eq!(layout.frames.len(), 48 + 4);
    assert_eq!(layout.columns, 8);
    assert_eq!(layout.frames[0].name, "plain-a");
    assert!(
        layout.frames[49].name.ends_with("-v1"),
        "{}",
        layout.frames[49].name
    );
    let tiles = cut(&out.image, &layout);
    let report = out.tileset.clone().unwrap();
    assert!(report.seams.passed(), "{:?}", report.seams.failing);
    assert_eq!(engine.engine().untiled_grass, 0, "bases are drawn seamless");
    // A variation keeps its base's border and redraws its inside.
    for (v, terrain) in [(48, Terrain::A), (49, Terrain::B), (50, Terrain::A)] {
        for (x, y, p) in tiles[v].enumerate_pixels() {
            let border = x == 0 || y == 0 || x == 15 || y == 15;
            if border {
                assert_eq!(p.0, base(terrain, x, y), "variation {v} ({x}, {y})");
            } else {
                assert_ne!(
                    p.0,
                    base(terrain, x, y),
                    "variation {v} redrawn at ({x}, {y})"
                );
            }
        }
    }
    // Autotiling a map of cells: every placed neighbour pair is one the set scored.
    let cells: Vec<Terrain> = (0..8 * 6)
        .map(|i| {
            if (i % 8 + i / 8) % 3 == 0 {
                Terrain::B
            } else {
                Terrain::A
            }
        })
        .collect();
    let map = autotile_blob(&cells, 8, 6).unwrap();
    assert!(map.iter().all(|&i| i < 48));
    let index = tile_index(&out.recipe, &layout).unwrap();
    assert_eq!(index.index_of(TileCode::PlainA, 1), Some(48));
    // A new engine finds the atlas on disk and measures it again.
    let mut second = CachedEngine::new(Terrains::default()).with_disk_cache(disk);
    let again = second
        .generate(&out.recipe, &mut |_| Control::Continue)
        .unwrap();
    assert!(again.from_cache && second.engine().prompts.is_empty());
    assert_eq!(again.tileset, out.tileset);
}

#[test]
fn seams_that_fail_are_drawn_again_then_reported() {
    let mut engine = CachedEngine::new(Terrains {
        broken: true,
        ..Terrains::default()
    });
    let mut recipe = tileset_recipe(TilesetKind::Wang);
    recipe.tileset.as_mut().unwrap().retries = 1;
    let out = engine
        .generate(&recipe, &mut |_| Control::Continue)
        .unwrap();
    let report = out.tileset.unwrap();
    assert!(report.base_seams.0 > 1.5, "{:?}", report.base_seams);
    assert!(
        !report.seams.passed(),
        "the broken grass cannot meet itself"
    );
    assert!(report.seams.worst > 1.5);
    let line = report.summary(1.5);
    assert!(
        line.contains("edges above 1.50") && line.contains("tiles on failing edges: wang-0000"),
        "{line}"
    );
    let grass_bases = engine
        .engine()
        .prompts
        .iter()
        .filter(|p| p.starts_with("grass, "))
        .count();
    assert_eq!(grass_bases, 2, "the grass base was drawn again once");
    assert_eq!(engine.engine().untiled_grass, 0, "bases are drawn seamless");
}

#[test]
fn bad_tilesets_are_refused_before_the_engine_runs() {
    let refused = |recipe: Recipe| -> String {
        let mut engine = CachedEngine::new(Terrains::default());
        let err = engine
            .generate(&recipe, &mut |_| Control::Continue)
            .expect_err("refused");
        assert!(engine.engine().prompts.is_empty());
        err.to_string()
    };
    let mut no_water = tileset_recipe(TilesetKind::Wang);
    no_water.tileset.as_mut().unwrap().terrains.1 = " ".into();
    assert!(refused(no_water).contains("terrains"));
    let odd = Recipe {
        generation_size: Size::square(60),
        ..tileset_recipe(TilesetKind::Wang)
    };
    assert!(refused(odd).contains("whole number"));
    let tiny = Recipe {
        size: Size::square(4),
        ..tileset_recipe(TilesetKind::Wang)
    };
    assert!(refused(tiny).contains("at least 8x8"));
    let framed = Recipe {
        frames: pixelgen::Frames::Prompts(vec!["a".into(), "b".into()]),
        ..tileset_recipe(TilesetKind::Blob)
    };
    assert!(refused(framed).contains("own tiles"));
    let mut wide_band = tileset_recipe(TilesetKind::Wang);
    wide_band.tileset.as_mut().unwrap().band = Some(8);
    assert!(refused(wide_band).contains("band"));
    // The recipe round-trips through RON, and recipes without a tileset do not mention it.
    let recipe = tileset_recipe(TilesetKind::Blob);
    assert_eq!(Recipe::from_ron(&recipe.to_ron().unwrap()).unwrap(), recipe);
    assert!(!Recipe::new("x").to_ron().unwrap().contains("tileset"));
}

#[test]
fn saving_a_tileset_writes_the_atlas_the_tiled_tileset_and_the_index() {
    let dir = Scratch::new("tileset-save");
    let mut engine = CachedEngine::new(Terrains::default());
    let out = engine
        .generate(&tileset_recipe(TilesetKind::Wang), &mut |_| {
            Control::Continue
        })
        .unwrap();
    let files = pixelgen::save_as(dir.path(), "coast", out.artwork(), false).unwrap();
    let (tsx, index) = files.tileset.clone().expect("tileset files");
    assert_eq!(tsx, dir.path().join("coast.tsx"));
    let tsx = std::fs::read_to_string(tsx).unwrap();
    assert!(
        tsx.contains("source=\"coast.png\"") && tsx.contains("<wangset "),
        "{tsx}"
    );
    let index: pixelgen::tileset::TileIndex =
        serde_json::from_str(&std::fs::read_to_string(index).unwrap()).unwrap();
    assert_eq!(index.index_of(TileCode::Wang(15), 0), Some(15));
    assert_eq!((index.tile_width, index.columns), (16, 4));
    let png = image::open(&files.png).unwrap().to_rgba8();
    assert_eq!(png, out.image);
    // Saving again without overwrite is refused, naming a file that is there.
    let err = pixelgen::save_as(dir.path(), "coast", out.artwork(), false).unwrap_err();
    assert!(matches!(err, pixelgen::PixelGenError::Exists(_)), "{err}");
    // A sprite writes no tileset files.
    let sprite = engine
        .generate(
            &Recipe {
                tileset: None,
                tiling: true,
                ..tileset_recipe(TilesetKind::Wang)
            },
            &mut |_| Control::Continue,
        )
        .unwrap();
    assert!(
        pixelgen::save(dir.path(), &sprite)
            .unwrap()
            .tileset
            .is_none()
    );
}
