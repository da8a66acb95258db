//! Runs the game examples (`runtime_loot`, `sprite_sheet`, `dungeon`, `tilemap`) in a real
//! window under Xvfb, each driven by its `--script DIR` run, and checks their screenshots
//! against the sprites the plugin saved: placeholders first, then the generated pixels at the
//! expected place; an animation that really changes frames; a pickup that really happens; a
//! map whose cells show the autotiled tiles of a generated tileset.
//!
//! Needs `xvfb-run` and a Vulkan driver (Mesa's lavapipe works without a GPU; `just setup`
//! installs both). Where `xvfb-run` is missing the tests say so and do nothing. The runs
//! take turns (one window at a time).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use image::{Rgba, RgbaImage};

mod common;
use common::{example_bin, has_xvfb, load};

/// One window at a time (parallel lavapipe windows on a small machine only slow each other).
static WINDOW: Mutex<()> = Mutex::new(());

/// The screenshots' size (the examples open 800x600 windows).
const W: u32 = 800;
const H: u32 = 600;
/// The placeholder's two greys.
const GREYS: [[u8; 3]; 2] = [[0x55, 0x55, 0x55], [0x99, 0x99, 0x99]];

/// A scripted run's output folder: screenshots, `manifest.txt`, saved sprites.
struct Run {
    dir: PathBuf,
    manifest: Vec<(String, Vec<String>)>,
}

impl Run {
    fn shot(&self, name: &str) -> RgbaImage {
        let img = load(&self.dir.join(format!("{name}.png")));
        assert_eq!(img.dimensions(), (W, H), "{name}");
        img
    }

    /// Every manifest line with `key`, split into words.
    fn lines(&self, key: &str) -> Vec<&[String]> {
        self.manifest
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    fn value(&self, key: &str) -> &str {
        let lines = self.lines(key);
        assert_eq!(lines.len(), 1, "manifest key {key}");
        &lines[0][0]
    }

    fn number(&self, key: &str) -> f32 {
        self.value(key).parse().expect("a number")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `examples/NAME.rs --script DIR` under Xvfb; `None` where there is no Xvfb.
fn run_example(name: &str) -> Option<Run> {
    run_example_with(name, "", &[])
}

/// Runs `examples/NAME.rs ARGS --script DIR` under Xvfb (`tag` keeps runs of one example apart).
fn run_example_with(name: &str, tag: &str, args: &[&str]) -> Option<Run> {
    if !has_xvfb() {
        eprintln!("skipped: xvfb-run is not installed (run `just setup`)");
        return None;
    }
    let _turn = WINDOW.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("dgx-pixels-{name}{tag}-{pid}"));
    let log_path = std::env::temp_dir().join(format!("dgx-pixels-{name}{tag}-{pid}.log"));
    // An X display of our own: `xvfb-run -a` races with other Xvfb users starting at the
    // same moment, so pick a number away from its range (99 up) and try another if taken.
    for attempt in 0..4 {
        let _ = std::fs::remove_dir_all(&dir);
        let display = 200 + (pid * 7 + attempt * 131) % 600;
        let log = std::fs::File::create(&log_path).expect("log file");
        let status = Command::new("xvfb-run")
            .args(["-n", &display.to_string(), "-s", "-screen 0 1280x720x24"])
            // The example is stopped inside the X session, so Xvfb is cleaned up too.
            .args(["timeout", "-k", "5", "100"])
            .arg(example_bin(name))
            .args(args)
            .arg("--script")
            .arg(&dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .status()
            .expect("start xvfb-run");
        let out = std::fs::read_to_string(&log_path).unwrap_or_default();
        if !status.success() && out.contains("Xvfb failed to start") {
            continue;
        }
        let tail: String = out.lines().rev().take(15).collect::<Vec<_>>().join("\n");
        assert!(
            status.success(),
            "{name} exited with {status}; last log lines (newest first):\n{tail}"
        );
        let _ = std::fs::remove_file(&log_path);
        break;
    }
    let text = std::fs::read_to_string(dir.join("manifest.txt")).expect("manifest");
    let manifest = text
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace().map(str::to_owned);
            Some((words.next()?, words.collect()))
        })
        .collect();
    Some(Run { dir, manifest })
}

fn close(a: Rgba<u8>, b: [u8; 3], tol: u8) -> bool {
    a.0[..3].iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tol)
}

/// The screen pixel at the world position `(x, y)` (camera at the origin, 1:1 scale).
fn to_screen(x: f32, y: f32) -> (f32, f32) {
    (W as f32 / 2.0 + x, H as f32 / 2.0 - y)
}

/// How a sprite of `size` drawn at `zoom`, centred on world `(x, y)`, appears: for every
/// sprite pixel, the screen pixel at the centre of its block.
fn blocks(
    size: (u32, u32),
    zoom: f32,
    x: f32,
    y: f32,
) -> impl Iterator<Item = (u32, u32, u32, u32)> {
    let (cx, cy) = to_screen(x, y);
    let left = cx - size.0 as f32 * zoom / 2.0;
    let top = cy - size.1 as f32 * zoom / 2.0;
    (0..size.1).flat_map(move |j| {
        (0..size.0).map(move |i| {
            let sx = (left + (i as f32 + 0.5) * zoom) as u32;
            let sy = (top + (j as f32 + 0.5) * zoom) as u32;
            (i, j, sx, sy)
        })
    })
}

/// Share of `sprite`'s opaque pixels that appear on `shot` at world `(x, y)`, `zoom`x, and
/// the opaque pixel count.
fn match_sprite(shot: &RgbaImage, sprite: &RgbaImage, zoom: f32, x: f32, y: f32) -> (f32, usize) {
    let mut opaque = 0;
    let mut same = 0;
    for (i, j, sx, sy) in blocks(sprite.dimensions(), zoom, x, y) {
        let p = sprite.get_pixel(i, j);
        if p.0[3] == 255 {
            opaque += 1;
            let q = [p.0[0], p.0[1], p.0[2]];
            if close(*shot.get_pixel(sx, sy), q, 3) {
                same += 1;
            }
        }
    }
    (same as f32 / opaque.max(1) as f32, opaque)
}

/// Share of the blocks of a `size` sprite at world `(x, y)`, `zoom`x, showing a placeholder grey.
fn placeholder_share(shot: &RgbaImage, size: (u32, u32), zoom: f32, x: f32, y: f32) -> f32 {
    let n = size.0 * size.1;
    let grey = blocks(size, zoom, x, y)
        .filter(|&(_, _, sx, sy)| GREYS.iter().any(|g| close(*shot.get_pixel(sx, sy), *g, 2)))
        .count();
    grey as f32 / n as f32
}

#[test]
fn runtime_loot_shows_placeholders_then_the_generated_icons() {
    let Some(run) = run_example("runtime_loot") else {
        return;
    };
    check_loot(&run);
}

/// The same run on the tiny random-weight SDXL: the real model code, pixelize and saving,
/// delivered into the running game.
#[test]
fn runtime_loot_on_the_tiny_sdxl_model() {
    // A fixed seed: the tiny model's icons are noise, and how much of a noise icon survives
    // background removal depends on the seed (a random one once left 24 of 256 pixels; seed 2
    // keeps 96 to 256 in each icon).
    let Some(run) = run_example_with("runtime_loot", "-tiny", &["--tiny", "--seed", "2"]) else {
        return;
    };
    check_loot(&run);
}

/// A model folder that is not there: the game starts, says why on screen, and keeps running.
#[test]
fn runtime_loot_without_a_model_explains_and_keeps_running() {
    let missing = std::env::temp_dir().join("dgx-pixels-no-such-model");
    let Some(run) = run_example_with(
        "runtime_loot",
        "-missing",
        &["--model", missing.to_str().unwrap()],
    ) else {
        return;
    };
    let failed = run.lines("failed")[0].join(" ");
    assert!(failed.contains("dgx-pixels-no-such-model"), "{failed}");
    // The chest keeps its placeholder, tinted red.
    let shot = run.shot("loot_failed");
    let chest = run.lines("chest")[0];
    let (x, y): (f32, f32) = (chest[0].parse().unwrap(), chest[1].parse().unwrap());
    let zoom = run.number("zoom");
    let red = blocks((24, 24), zoom, x, y)
        .filter(|&(_, _, sx, sy)| {
            let p = shot.get_pixel(sx, sy).0;
            p[0] > 0x40 && p[1] < p[0] / 2 && p[2] < p[0] / 2
        })
        .count();
    assert_eq!(red, 24 * 24, "the failed chest is drawn red");
}

fn check_loot(run: &Run) {
    let pending = run.shot("loot_pending");
    let ready = run.shot("loot_ready");
    let zoom = run.number("zoom");
    let slots: HashMap<&str, (f32, f32)> = run
        .lines("slot")
        .iter()
        .map(|w| {
            (
                w[0].as_str(),
                (w[1].parse().unwrap(), w[2].parse().unwrap()),
            )
        })
        .collect();
    assert_eq!(slots.len(), 4, "four items dropped");
    // Right after the drop every item shows the checkerboard placeholder, at its slot.
    for (slot, &(x, y)) in &slots {
        let share = placeholder_share(&pending, (16, 16), zoom, x, y);
        assert!(
            share > 0.99,
            "slot {slot}: {share} of the placeholder shown"
        );
    }
    // Once ready, each slot shows exactly the icon the plugin saved, and no placeholder.
    let pngs = run.lines("png");
    assert_eq!(pngs.len(), 4, "every icon was saved");
    for w in pngs {
        let (x, y) = slots[w[0].as_str()];
        let icon = load(Path::new(&w[1]));
        assert_eq!(icon.dimensions(), (16, 16));
        let (share, opaque) = match_sprite(&ready, &icon, zoom, x, y);
        assert!(
            opaque > 40,
            "slot {}: an almost empty icon ({opaque} px)",
            w[0]
        );
        assert!(
            share > 0.98,
            "slot {}: only {share} of the icon on screen",
            w[0]
        );
        let left = placeholder_share(&ready, (16, 16), zoom, x, y);
        assert!(
            left < 0.05,
            "slot {}: placeholder still showing ({left})",
            w[0]
        );
    }
}

/// `(x, y, w, h)` of frame `i` from the manifest's `rect` lines.
fn frame_rect(run: &Run, i: &str) -> (u32, u32, u32, u32) {
    let line = run
        .lines("rect")
        .into_iter()
        .find(|w| w[0] == i)
        .unwrap_or_else(|| panic!("no rect for frame {i}"));
    let n = |k: usize| line[k].parse::<u32>().expect("a number");
    (n(1), n(2), n(3), n(4))
}

#[test]
fn sprite_sheet_animates_the_generated_frames() {
    let Some(run) = run_example("sprite_sheet") else {
        return;
    };
    let hero = run.lines("hero")[0];
    let (x, y, zoom): (f32, f32, f32) = (
        hero[0].parse().unwrap(),
        hero[1].parse().unwrap(),
        hero[2].parse().unwrap(),
    );
    // While the sheet is generated the character animates over the placeholder sheet.
    let pending = run.shot("sheet_pending");
    let share = placeholder_share(&pending, (32, 32), zoom, x, y);
    assert!(share > 0.99, "{share} of the placeholder shown");

    // The set: the 8 walk frames in a row per direction (south, west, east, north), 32x32
    // each, as the layout says; the hero walks east (frames 16 to 23).
    let sheet = load(Path::new(run.value("sheet")));
    assert_eq!(sheet.dimensions(), (256, 128));
    assert_eq!(run.lines("rect").len(), 32);
    assert_eq!(run.value("clip"), "walk_east");
    // West is east mirrored, frame for frame (each placed on the shared anchor).
    let visible = |i: u32| {
        let cell = image::imageops::crop_imm(&sheet, (i % 8) * 32, (i / 8) * 32, 32, 32).to_image();
        let (w, h) = cell.dimensions();
        let on: Vec<(u32, u32)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| cell.get_pixel(x, y).0[3] > 0)
            .collect();
        let x0 = on.iter().map(|p| p.0).min().unwrap();
        let x1 = on.iter().map(|p| p.0).max().unwrap();
        let y0 = on.iter().map(|p| p.1).min().unwrap();
        let y1 = on.iter().map(|p| p.1).max().unwrap();
        image::imageops::crop_imm(&cell, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image()
    };
    for pose in 0..8 {
        let (west, east) = (visible(8 + pose), visible(16 + pose));
        assert_eq!(west, image::imageops::flip_horizontal(&east), "pose {pose}");
    }
    let frame = |i: &str| {
        let (fx, fy, fw, fh) = frame_rect(&run, i);
        assert_eq!((fw, fh), (32, 32));
        image::imageops::crop_imm(&sheet, fx, fy, fw, fh).to_image()
    };
    let (a, b) = (run.value("frame_a"), run.value("frame_b"));
    assert_ne!(a, b, "the index moved");
    let (frame_a, frame_b) = (frame(a), frame(b));
    let changed = frame_a
        .pixels()
        .zip(frame_b.pixels())
        .filter(|(p, q)| p != q)
        .count();
    assert!(
        changed > 50,
        "frames {a} and {b} differ in only {changed} px"
    );
    // Each shot shows exactly the frame the atlas index named, at the character's place.
    for (shot, f, name) in [("sheet_a", &frame_a, a), ("sheet_b", &frame_b, b)] {
        let img = run.shot(shot);
        let (share, opaque) = match_sprite(&img, f, zoom, x, y);
        assert!(opaque > 200, "frame {name}: almost empty ({opaque} px)");
        assert!(
            share > 0.98,
            "{shot}: only {share} of frame {name} on screen"
        );
        let other = if name == a { &frame_b } else { &frame_a };
        let (other_share, _) = match_sprite(&img, other, zoom, x, y);
        assert!(other_share < share, "{shot} shows the other frame as well");
    }
}

/// A manifest line `KEY X Y PNG` as a position and the sprite it names.
fn placed(run: &Run, key: &str) -> (f32, f32, RgbaImage) {
    let w = run.lines(key)[0];
    let png = load(Path::new(&w[2]));
    assert_eq!(png.dimensions(), (16, 16), "{key}");
    (w[0].parse().unwrap(), w[1].parse().unwrap(), png)
}

/// A manifest line `KEY X Y SHEET_PNG` and a line `FRAME_KEY X Y W H`: the position and the
/// 16x16 frame of the sheet it names.
fn placed_frame(run: &Run, key: &str, frame_key: &str) -> (f32, f32, RgbaImage) {
    let w = run.lines(key)[0];
    let sheet = load(Path::new(&w[2]));
    let r: Vec<u32> = run.lines(frame_key)[0]
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!((r[2], r[3]), (16, 16), "{frame_key}");
    let frame = image::imageops::crop_imm(&sheet, r[0], r[1], r[2], r[3]).to_image();
    (w[0].parse().unwrap(), w[1].parse().unwrap(), frame)
}

#[test]
fn dungeon_shows_generated_sprites_and_the_hero_picks_up_the_item() {
    let Some(run) = run_example("dungeon") else {
        return;
    };
    let zoom = run.number("zoom");
    let before = run.shot("dungeon_before");
    let after = run.shot("dungeon_after");
    // The hero is a set (a walk from 4 directions): the sheet's frame it showed.
    let (hx, hy, hero) = placed_frame(&run, "hero", "hero_frame");
    let (_, _, hero_after) = placed_frame(&run, "hero", "hero_after_frame");
    let (ix, iy, item) = placed(&run, "item");
    let (ex, ey, enemy) = placed(&run, "enemy");
    // The hero (a request), the item (a request) and the enemy (a recipe file loaded as an
    // asset) are drawn where the game put them, as generated.
    for (what, x, y, sprite) in [
        ("hero", hx, hy, &hero),
        ("item", ix, iy, &item),
        ("enemy", ex, ey, &enemy),
    ] {
        let (share, opaque) = match_sprite(&before, sprite, zoom, x, y);
        assert!(opaque > 40, "{what}: an almost empty sprite ({opaque} px)");
        assert!(share > 0.95, "{what}: only {share} of it on screen");
    }
    // Holding the right arrow walked the hero onto the item and picked it up.
    assert_eq!(run.value("picked"), "1");
    assert_eq!(run.value("items_left"), "0");
    let after_at = run.lines("hero_after")[0];
    let (ax, ay): (f32, f32) = (after_at[0].parse().unwrap(), after_at[1].parse().unwrap());
    assert!(
        ax > hx + 100.0 && ay == hy,
        "the hero moved right: {hx} -> {ax}"
    );
    assert!((ix - ax).abs() < 40.0, "the hero reached the item");
    let (share, _) = match_sprite(&after, &hero_after, zoom, ax, ay);
    assert!(share > 0.95, "the hero is drawn at its new place ({share})");
    assert_ne!(hero, hero_after, "it faces east now, not the viewer");
    let (gone, _) = match_sprite(&after, &hero, zoom, hx, hy);
    assert!(gone < 0.3, "the hero left its old place ({gone})");
    // The item is gone: what shows at its place now is the hero, not the item.
    let (item_left, _) = match_sprite(&after, &item, zoom, ix, iy);
    assert!(item_left < 0.3, "the item is still drawn ({item_left})");
    let (enemy_still, _) = match_sprite(&after, &enemy, zoom, ex, ey);
    assert!(enemy_still > 0.95, "the enemy stays ({enemy_still})");
}

/// The `tilemap` run's atlas tile `index` (4 columns of 16x16 tiles) at pixel `(x, y)`.
fn atlas_pixel(atlas: &RgbaImage, index: usize, x: u32, y: u32) -> [u8; 3] {
    let (cx, cy) = ((index as u32 % 4) * 16, (index as u32 / 4) * 16);
    let p = atlas.get_pixel(cx + x, cy + y).0;
    [p[0], p[1], p[2]]
}

/// For each map cell of `shot` (a `w` x `h` map of 16x16 tiles at `zoom`, centred on world
/// `(x, y)`), the share of its pixels that `expect(cell, tile x, tile y)` names.
fn cell_shares(
    shot: &RgbaImage,
    (w, h): (usize, usize),
    zoom: f32,
    (x, y): (f32, f32),
    expect: impl Fn(usize, u32, u32) -> [u8; 3],
) -> Vec<f32> {
    let mut same = vec![0usize; w * h];
    for (i, j, sx, sy) in blocks((w as u32 * 16, h as u32 * 16), zoom, x, y) {
        let cell = (j / 16) as usize * w + (i / 16) as usize;
        if close(*shot.get_pixel(sx, sy), expect(cell, i % 16, j % 16), 3) {
            same[cell] += 1;
        }
    }
    same.iter().map(|&n| n as f32 / 256.0).collect()
}

#[test]
fn tilemap_paints_the_autotiled_tiles_of_the_generated_atlas() {
    let Some(run) = run_example("tilemap") else {
        return;
    };
    check_tilemap(&run);
}

/// The same map from a tileset of the tiny random-weight SDXL: the real model code (seamless
/// bases, in-memory edits) delivered onto the `TilemapChunk`.
#[test]
fn tilemap_on_the_tiny_sdxl_model() {
    let Some(run) = run_example_with("tilemap", "-tiny", &["--tiny"]) else {
        return;
    };
    check_tilemap(&run);
}

fn check_tilemap(run: &Run) {
    let map = run.lines("map")[0];
    let at: (f32, f32) = (map[0].parse().unwrap(), map[1].parse().unwrap());
    let size: (usize, usize) = (map[2].parse().unwrap(), map[3].parse().unwrap());
    assert_eq!(size, (16, 10));
    assert_eq!(run.value("tile"), "16");
    let zoom = run.number("zoom");
    let numbers = |key: &str| -> Vec<usize> {
        run.lines(key)[0]
            .iter()
            .map(|v| v.parse().expect("an atlas index"))
            .collect()
    };
    let indices = numbers("indices");
    assert_eq!(indices.len(), size.0 * size.1);
    assert_eq!(numbers("pending_indices"), indices);
    let transitions = indices.iter().filter(|&&i| i != 0 && i != 15).count();
    assert!(transitions > 20, "an island has shores ({transitions})");
    // The seams of the generated set passed, and the report says so on the way.
    assert_eq!(run.value("seams_passed"), "true");
    let worst = run.number("seams_worst");
    assert!(worst.is_finite() && worst >= 0.0, "{worst}");

    // Meanwhile the map showed the placeholder tiles: flat grass and water only.
    let pending = run.shot("map_pending");
    let flat = [[70, 150, 70], [60, 100, 190]];
    let mut ok = 0;
    for (_, _, sx, sy) in blocks((256, 160), zoom, at.0, at.1) {
        let p = *pending.get_pixel(sx, sy);
        ok += usize::from(flat.iter().any(|&c| close(p, c, 3)));
    }
    assert!(
        ok as f32 / (256.0 * 160.0) > 0.99,
        "placeholder tiles on the map ({ok} px)"
    );

    // Once generated, every cell shows the atlas tile the autotiler chose.
    let atlas = load(Path::new(run.value("atlas")));
    assert_eq!(atlas.dimensions(), (64, 64), "16 tiles of 16x16, 4 a row");
    assert!(
        Path::new(run.value("atlas"))
            .with_extension("tsx")
            .is_file(),
        "the Tiled tileset beside the atlas"
    );
    assert!(
        Path::new(run.value("atlas"))
            .with_extension("tiles.json")
            .is_file(),
        "the index table beside the atlas"
    );
    let ready = run.shot("map_ready");
    let shares = cell_shares(&ready, size, zoom, at, |cell, x, y| {
        atlas_pixel(&atlas, indices[cell], x, y)
    });
    for (cell, share) in shares.iter().enumerate() {
        assert!(
            *share > 0.97,
            "cell {cell} (tile {}): only {share} of it on screen",
            indices[cell]
        );
    }
    // And not some other tile: a shore cell does not look like the plain terrains.
    for (cell, &index) in indices.iter().enumerate() {
        if index == 0 || index == 15 {
            continue;
        }
        for plain in [0, 15] {
            let other = cell_shares(&ready, size, zoom, at, |_, x, y| {
                atlas_pixel(&atlas, plain, x, y)
            })[cell];
            assert!(
                other < 0.95,
                "cell {cell} (tile {index}) looks like tile {plain}"
            );
        }
    }

    // A toggled corner re-autotiles the four tiles around it, and the screen follows.
    assert_eq!(run.lines("toggled")[0], ["9", "5"]);
    let painted = numbers("painted_indices");
    let changed: Vec<usize> = (0..indices.len())
        .filter(|&i| indices[i] != painted[i])
        .collect();
    assert_eq!(changed, [4 * 16 + 8, 4 * 16 + 9, 5 * 16 + 8, 5 * 16 + 9]);
    let after = run.shot("map_painted");
    let shares = cell_shares(&after, size, zoom, at, |cell, x, y| {
        atlas_pixel(&atlas, painted[cell], x, y)
    });
    for cell in changed {
        assert!(
            shares[cell] > 0.97,
            "painted cell {cell} (tile {}): only {} on screen",
            painted[cell],
            shares[cell]
        );
    }
}
