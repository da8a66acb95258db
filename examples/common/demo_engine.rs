//! Shared by the examples: which engine runs (`--model DIR`, `--tiny`, or the procedural demo
//! engine) and the demo engine itself, a seeded stand-in for SDXL that is not AI.
//!
//! Include it with `#[path = "common/demo_engine.rs"] mod demo_engine;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bevy::ecs::resource::Resource;
use bevy::log::{info, warn};
use bevy_pixelgen::pixelgen::{
    self, Control, DeviceChoice, ModelIdentity, Precision, Progress, SpriteEngine,
};
use bevy_pixelgen::prelude::*;
use bevy_pixelgen::{EngineFactory, pixelgen::Size};

/// The identity the demo engine reports (part of its cache keys).
pub const DEMO_IDENTITY: &str = "demo-engine";

/// The tiny random-weight SDXL the tests use (real code path, noise pictures).
pub fn tiny_model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("crates/pixelgen-diffusion/tests/fixtures/tiny-sdxl")
}

/// What generates the sprites of an example (also a resource, for systems that fit requests).
#[derive(Resource, Debug, Clone, PartialEq)]
pub enum EngineChoice {
    /// The procedural demo engine (no model needed; not AI).
    Demo,
    /// The tiny SDXL test model: random weights, so the pictures are noise.
    Tiny,
    /// A diffusers SDXL folder.
    Model(PathBuf),
}

impl EngineChoice {
    /// From the examples' `--model DIR` and `--tiny` arguments (`--model` wins).
    pub fn from_args(model: Option<PathBuf>, tiny: bool) -> Self {
        match (model, tiny) {
            (Some(dir), _) => Self::Model(dir),
            (None, true) => Self::Tiny,
            (None, false) => Self::Demo,
        }
    }

    /// A short label to show on screen.
    pub fn label(&self) -> String {
        match self {
            Self::Demo => {
                "DEMO ENGINE: procedural stand-in, not AI (run with --model DIR for SDXL)"
                    .to_owned()
            }
            Self::Tiny => "TINY TEST MODEL: random weights, the sprites are noise".to_owned(),
            Self::Model(dir) => format!("SDXL: {}", dir.display()),
        }
    }

    /// Logs which engine runs and, without a model, how to get one.
    pub fn explain(&self, example: &str) {
        match self {
            Self::Demo => {
                info!("no --model given: using the procedural DEMO engine (seeded blobs, not AI)");
                info!(
                    "for real sprites download an SDXL model in diffusers layout (see docs/models.md) \
                     and run `cargo run --release --example {example} -- --model DIR`"
                );
                // Each example names its own `--tiny`, except `dungeon`, which has none.
                let (smoke, note) = if example == "dungeon" {
                    (
                        "runtime_loot",
                        "; the dungeon has no --tiny: its recipe files ask for 1024 px",
                    )
                } else {
                    (example, "")
                };
                info!(
                    "a smoke run of the real SDXL code without a download: `cargo run --example \
                     {smoke} -- --tiny` (the tiny test model: random weights, noise sprites{note})"
                );
            }
            Self::Tiny => warn!(
                "--tiny: the tiny SDXL test model has RANDOM weights; it proves the pipeline runs, \
                 its sprites are noise"
            ),
            Self::Model(dir) => {
                if !dir.join("model_index.json").is_file() {
                    warn!(
                        "{} has no model_index.json: generation will fail with the reason on screen \
                         (see docs/models.md for how to get a model)",
                        dir.display()
                    );
                }
                info!("SDXL from {} (loads on the first request)", dir.display());
            }
        }
    }

    /// The plugin for this engine: nothing saved to disk, except under `SCRIPT/generated` in a
    /// scripted run (the window tests compare the screen with those PNGs).
    pub fn plugin(&self, script: Option<&Path>) -> PixelGenPlugin {
        let plugin = match self {
            Self::Demo => PixelGenPlugin::with_engine(demo_factory(Duration::from_millis(40))),
            Self::Tiny => {
                PixelGenPlugin::new(ModelConfig::new(ModelSource::local(tiny_model_dir())))
            }
            Self::Model(dir) => {
                let mut model = ModelConfig::new(ModelSource::local(dir));
                // Built with `--features cuda`: the first NVIDIA GPU in f16 (the VAE upcasts
                // where its config asks); otherwise the CPU in f32.
                if cfg!(feature = "cuda") {
                    model.device = DeviceChoice::Cuda(0);
                    model.precision = Precision::F16;
                }
                PixelGenPlugin::new(model)
            }
        };
        PixelGenPlugin {
            output_dir: script.map(|dir| dir.join("generated")),
            ..plugin
        }
    }

    /// Fits a request to the engine: the tiny model draws at 64x64 in 3 steps and keeps its
    /// (noise) background; the demo engine and SDXL keep the request's settings.
    pub fn fit(&self, mut request: SpriteRequest) -> SpriteRequest {
        if *self == Self::Tiny {
            let r = &mut request.recipe;
            r.generation_size = Size::square(64);
            r.size = Size::new(r.size.width.min(64), r.size.height.min(64));
            r.steps = Some(3);
            // Random weights draw noise with no background: removing one would keep an
            // arbitrary speckle (it depends on the last bit of every weight), so keep it all.
            let mut pixel = r.pixel_options();
            pixel.background = None;
            r.pixel = Some(pixel);
        }
        request
    }
}

/// A factory for the demo engine; every sampling step takes `step`.
pub fn demo_factory(step: Duration) -> EngineFactory {
    EngineFactory::new(move || Ok(Box::new(DemoEngine { step }) as Box<dyn SpriteEngine>))
}

/// A stand-in for SDXL: a seeded, mirror-symmetric blob sprite with an outline.
///
/// The prompt matters: a colour word ("red", "gold", ...) picks the hue, the other words
/// change the shape, and "frame N" picks an animation pose (a bob and swinging feet), so the
/// frames of a sheet are one character in several poses.
///
/// Tilesets: a seamless (`tiling`) recipe draws a terrain texture picked by the terrain word
/// its prompt starts with (grass, water, sand, stone, dirt, snow, lava; else a neutral
/// ground), periodic in the tile size so it wraps without a seam; a transition tile's edit
/// ("A and B, ...") repaints the boundary between the two terrains as a shoreline (A's
/// accent colour on its side, B's on the other).
pub struct DemoEngine {
    /// How long each sampling step takes (so progress and placeholders can be seen).
    pub step: Duration,
}

impl SpriteEngine for DemoEngine {
    fn model_identity(&mut self) -> pixelgen::Result<ModelIdentity> {
        Ok(ModelIdentity(DEMO_IDENTITY.into()))
    }

    fn render(
        &mut self,
        plan: &pixelgen::Plan,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> pixelgen::Result<pixelgen::Rendered> {
        let recipe = plan.recipe();
        let total = recipe.steps_or_default().clamp(1, 20);
        self.sample(0, total, total, progress)?;
        let (w, h) = (recipe.size.width, recipe.size.height);
        let seed = recipe.seed.value().unwrap_or(0);
        let image = match (plan.edit(), tile_prompt(&recipe.prompt)) {
            // A tileset's transition tile: a shoreline where the two terrains meet.
            (Some(edit), Some(TilePrompt::Pair(a, b))) => shoreline(&edit.source, a, b),
            // A variation of a base tile (its border is put back by the facade).
            (Some(_), Some(TilePrompt::One(Some(t)))) => terrain_texture(w, h, seed, t),
            // A seamless base tile.
            (None, Some(TilePrompt::One(t))) if recipe.tiling => {
                terrain_texture(w, h, seed, t.unwrap_or(NEUTRAL))
            }
            (None, None) if recipe.tiling => terrain_texture(w, h, seed, NEUTRAL),
            _ => demo_sprite(w, h, seed, &recipe.prompt),
        };
        Ok(pixelgen::Rendered {
            image,
            fell_back: false,
        })
    }

    /// A set is one character, as the model's shared attention makes it: shape and colour
    /// come from the set's prompt, only the pose ("frame N") changes from frame to frame.
    fn render_set(
        &mut self,
        plan: &pixelgen::Plan,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> pixelgen::Result<pixelgen::RenderedSet> {
        let recipe = plan.recipe();
        let frames = plan.frames();
        let per_frame = recipe.steps_or_default().clamp(1, 20);
        let all = per_frame * frames.len();
        let mut images = Vec::with_capacity(frames.len());
        for (i, frame) in frames.iter().enumerate() {
            self.sample(i * per_frame, per_frame, all, progress)?;
            let prompt = match pose(&frame.recipe().prompt) {
                Some(k) => format!("{}, frame {}", recipe.prompt, k + 1),
                None => recipe.prompt.clone(),
            };
            images.push(demo_sprite(
                recipe.size.width,
                recipe.size.height,
                recipe.seed.value().unwrap_or(0),
                &prompt,
            ));
        }
        Ok(pixelgen::RenderedSet {
            frames: images,
            pixel_art: true,
        })
    }
}

impl DemoEngine {
    /// `steps` sampling steps after `done` of `all`, each taking [`DemoEngine::step`].
    fn sample(
        &self,
        done: usize,
        steps: usize,
        all: usize,
        progress: &mut dyn FnMut(&Progress) -> Control,
    ) -> pixelgen::Result<()> {
        for step in done + 1..=done + steps {
            std::thread::sleep(self.step);
            let p = Progress {
                step,
                total: all,
                preview: None,
            };
            if progress(&p) == Control::Cancel {
                return Err(pixelgen::PixelGenError::Cancelled { step, total: all });
            }
        }
        Ok(())
    }
}

/// xorshift64* step.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// The base colour a colour word in the prompt asks for.
fn named_colour(prompt: &str) -> Option<[u8; 3]> {
    const NAMES: [(&str, [u8; 3]); 12] = [
        ("red", [200, 40, 40]),
        ("ruby", [190, 20, 60]),
        ("green", [60, 170, 60]),
        ("emerald", [30, 160, 100]),
        ("blue", [50, 90, 210]),
        ("sapphire", [40, 60, 190]),
        ("gold", [220, 170, 40]),
        ("yellow", [230, 200, 50]),
        ("purple", [140, 60, 180]),
        ("silver", [170, 175, 190]),
        ("orange", [230, 120, 30]),
        ("brown", [140, 90, 50]),
    ];
    let lower = prompt.to_lowercase();
    lower
        .split(|c: char| !c.is_alphanumeric())
        .find_map(|w| NAMES.iter().find(|(n, _)| *n == w).map(|(_, c)| *c))
}

/// Cell values of the eyes (after the three body shades).
const EYE: u8 = 4;
const PUPIL: u8 = 5;

/// Whether the prompt names a creature (which gets eyes).
fn has_eyes(prompt: &str) -> bool {
    const CREATURES: [&str; 16] = [
        "hero",
        "knight",
        "slime",
        "bat",
        "skeleton",
        "monster",
        "character",
        "creature",
        "warrior",
        "goblin",
        "wizard",
        "person",
        "cat",
        "dog",
        "dragon",
        "ghost",
    ];
    let lower = prompt.to_lowercase();
    lower
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| CREATURES.contains(&w))
}

/// The animation pose a prompt asks for: N - 1 for "... frame N ...", else `None`.
fn pose(prompt: &str) -> Option<u32> {
    let lower = prompt.to_lowercase();
    let mut words = lower.split(|c: char| !c.is_alphanumeric());
    while let Some(w) = words.next() {
        if w == "frame"
            && let Some(n) = words.next().and_then(|n| n.parse::<u32>().ok())
        {
            return Some(n.saturating_sub(1));
        }
    }
    None
}

/// A `w` x `h` sprite: a mirror-symmetric blob with a ragged edge, lit from above in three
/// shades of a hue (a colour word of the prompt, else seeded), with a dark outline. The shape depends on the
/// seed and the prompt's letters (not its numbers, so all frames of a sheet share it); a
/// pose ("frame N" in the prompt) adds two swinging feet and moves the body up and down.
pub fn demo_sprite(w: u32, h: u32, seed: u64, prompt: &str) -> image::RgbaImage {
    let letters = prompt
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x100_0000_01b3)
        });
    let mut rng = (seed ^ letters) | 1;
    let seeded = [
        (next(&mut rng) % 160 + 80) as u8,
        (next(&mut rng) % 160 + 40) as u8,
        (next(&mut rng) % 160 + 40) as u8,
    ];
    let base = named_colour(prompt).unwrap_or(seeded);
    let shade = |k: f32| base.map(|c| (f32::from(c) * k).min(255.0) as u8);
    let shades = [shade(0.6), shade(1.0), shade(1.3)];
    // Animation frames get feet (the bottom eighth) and a body moved down by `bob`.
    let posed = pose(prompt);
    let pose = posed.unwrap_or(0);
    let bob = [0i64, 1, 2, 1][(pose % 4) as usize];
    let feet = i64::from((h / 8).max(1));
    let body_h = if posed.is_some() {
        (i64::from(h) - feet + 1).max(1) as u32
    } else {
        h
    };
    let (cx, cy) = (w as f32 / 2.0, body_h as f32 / 2.0);
    let half = w.div_ceil(2);
    let mut cells = vec![0u8; (half * body_h) as usize];
    for y in 0..body_h {
        for x in 0..half {
            let dx = (x as f32 + 0.5 - cx) / (cx * 0.85);
            let dy = (y as f32 + 0.5 - cy) / (cy * 0.85);
            // A ragged edge, a body lit from above, and some texture.
            let r = (next(&mut rng) % 1000) as f32 / 1000.0;
            let inside = dx * dx + dy * dy < 0.85 + 0.3 * r;
            let light = -dy * 0.6 + (r - 0.5) * 0.7;
            cells[(y * half + x) as usize] = match (inside, light) {
                (false, _) => 0,
                (true, l) if l > 0.25 => 3,
                (true, l) if l < -0.25 => 1,
                _ => 2,
            };
        }
    }
    // Creatures get a pair of eyes (a white pixel over a dark one, mirrored).
    if has_eyes(prompt) && w >= 8 && body_h >= 8 {
        let ex = half - 1 - (w / 5).max(1);
        let ey = body_h * 2 / 5;
        cells[(ey * half + ex) as usize] = EYE;
        cells[((ey + 1) * half + ex) as usize] = PUPIL;
    }
    let foot_w = i64::from((w / 6).max(1));
    let swing = if pose.is_multiple_of(2) { -1 } else { 1 };
    let cell = |x: i64, y: i64| -> u8 {
        if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
            return 0;
        }
        // Two feet under the body, swinging in opposite directions with the pose.
        let foot_top = i64::from(h) - feet - 1;
        if posed.is_some() && y >= foot_top && y < i64::from(h) - 1 {
            let left = i64::from(w) / 3 - foot_w / 2 + swing;
            let right = i64::from(w) * 2 / 3 - foot_w / 2 - swing;
            let on = |x0: i64| x >= x0 && x < x0 + foot_w;
            return if on(left) || on(right) { 1 } else { 0 };
        }
        let by = y - bob;
        if by < 0 || by >= i64::from(body_h) {
            return 0;
        }
        let mx = if x < i64::from(half) {
            x
        } else {
            i64::from(w) - 1 - x
        };
        cells[(by * i64::from(half) + mx) as usize]
    };
    image::RgbaImage::from_fn(w, h, |x, y| {
        let (xi, yi) = (i64::from(x), i64::from(y));
        match cell(xi, yi) {
            0 => {
                let near = [(-1, 0), (1, 0), (0, -1), (0, 1)]
                    .iter()
                    .any(|(dx, dy)| cell(xi + dx, yi + dy) != 0);
                if near {
                    image::Rgba(OUTLINE)
                } else {
                    image::Rgba([0, 0, 0, 0])
                }
            }
            EYE => image::Rgba([240, 240, 232, 255]),
            PUPIL => image::Rgba(OUTLINE),
            v => {
                let [r, g, b] = shades[usize::from(v - 1)];
                image::Rgba([r, g, b, 255])
            }
        }
    })
}

/// The demo sprites' outline colour.
pub const OUTLINE: [u8; 4] = [20, 16, 24, 255];

/// A tileset terrain the demo engine draws: its name and five colours, four shades from dark
/// to light and an accent (flecks in the base, the shoreline next to another terrain).
struct TerrainLook {
    name: &'static str,
    colours: [[u8; 3]; 5],
    /// Lattice cells across and down of the coarse noise (waves are wide and flat).
    cells: (u32, u32),
}

/// The terrains the demo engine knows; the last one is the neutral default.
const TERRAINS: [TerrainLook; 8] = [
    TerrainLook {
        name: "grass",
        colours: [
            [46, 110, 48],
            [62, 138, 58],
            [84, 160, 70],
            [108, 182, 84],
            [196, 188, 96],
        ],
        cells: (4, 4),
    },
    TerrainLook {
        name: "water",
        colours: [
            [28, 64, 150],
            [38, 84, 178],
            [52, 106, 200],
            [78, 136, 220],
            [214, 236, 246],
        ],
        cells: (2, 8),
    },
    TerrainLook {
        name: "sand",
        colours: [
            [196, 168, 104],
            [212, 186, 120],
            [226, 202, 140],
            [238, 220, 164],
            [170, 140, 90],
        ],
        cells: (4, 4),
    },
    TerrainLook {
        name: "stone",
        colours: [
            [96, 98, 108],
            [118, 120, 130],
            [140, 142, 152],
            [164, 166, 176],
            [70, 72, 80],
        ],
        cells: (4, 4),
    },
    TerrainLook {
        name: "dirt",
        colours: [
            [104, 72, 44],
            [124, 88, 54],
            [144, 104, 66],
            [164, 122, 80],
            [86, 60, 36],
        ],
        cells: (4, 4),
    },
    TerrainLook {
        name: "snow",
        colours: [
            [200, 210, 226],
            [216, 224, 238],
            [230, 236, 246],
            [244, 248, 252],
            [170, 186, 210],
        ],
        cells: (4, 4),
    },
    TerrainLook {
        name: "lava",
        colours: [
            [150, 30, 16],
            [196, 56, 20],
            [232, 104, 28],
            [250, 170, 50],
            [255, 230, 120],
        ],
        cells: (2, 4),
    },
    TerrainLook {
        name: "ground",
        colours: [
            [120, 112, 96],
            [136, 128, 110],
            [152, 144, 124],
            [168, 160, 140],
            [100, 92, 80],
        ],
        cells: (4, 4),
    },
];

/// The neutral terrain (for a terrain word the demo engine does not know).
const NEUTRAL: usize = TERRAINS.len() - 1;

/// What a tileset tile's prompt names before its first comma.
enum TilePrompt {
    /// One terrain (a base or a variation): its index when known.
    One(Option<usize>),
    /// Two terrains ("A and B", a transition), unknown ones neutral.
    Pair(usize, usize),
}

/// The terrain a name contains (a known terrain word in it).
fn terrain_named(name: &str) -> Option<usize> {
    let lower = name.to_lowercase();
    lower
        .split(|c: char| !c.is_alphanumeric())
        .find_map(|w| TERRAINS.iter().position(|t| t.name == w))
}

/// The terrains a tileset tile's prompt starts with (`"{terrain}, ..."` or
/// `"{a} and {b}, ..."`); `None` when a pair names no known terrain.
fn tile_prompt(prompt: &str) -> Option<TilePrompt> {
    let head = prompt.split(',').next().unwrap_or_default();
    match head.split_once(" and ") {
        Some((a, b)) => {
            let (a, b) = (terrain_named(a), terrain_named(b));
            (a.is_some() || b.is_some())
                .then(|| TilePrompt::Pair(a.unwrap_or(NEUTRAL), b.unwrap_or(NEUTRAL)))
        }
        None => Some(TilePrompt::One(terrain_named(head))),
    }
}

/// A hash of a lattice point, in [0, 1).
fn lattice(seed: u64, x: u32, y: u32) -> f32 {
    let mut state =
        (seed ^ (u64::from(x) << 32 | u64::from(y)).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    next(&mut state);
    (next(&mut state) >> 40) as f32 / (1u64 << 24) as f32
}

/// Value noise of `cells` lattice cells across the `w` x `h` tile, wrapping at its edges (so
/// the texture is periodic in the tile size), in [0, 1).
fn wrapped_noise(seed: u64, w: u32, h: u32, cells: (u32, u32), x: u32, y: u32) -> f32 {
    let (cx, cy) = (cells.0.clamp(1, w), cells.1.clamp(1, h));
    let fx = (x as f32 + 0.5) * cx as f32 / w as f32;
    let fy = (y as f32 + 0.5) * cy as f32 / h as f32;
    let (x0, y0) = (fx.floor() as u32, fy.floor() as u32);
    let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
    let (tx, ty) = (smooth(fx - x0 as f32), smooth(fy - y0 as f32));
    let at = |i: u32, j: u32| lattice(seed, i % cx, j % cy);
    let top = at(x0, y0) * (1.0 - tx) + at(x0 + 1, y0) * tx;
    let bottom = at(x0, y0 + 1) * (1.0 - tx) + at(x0 + 1, y0 + 1) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// A seamless `w` x `h` texture of terrain `t`: two octaves of wrapping value noise in its
/// four shades, with a few accent flecks. Tiled, it repeats without a seam.
pub fn terrain_texture(w: u32, h: u32, seed: u64, t: usize) -> image::RgbaImage {
    let look = &TERRAINS[t.min(NEUTRAL)];
    let seed = seed ^ (t as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let fine = (look.cells.0 * 2, look.cells.1 * 2);
    image::RgbaImage::from_fn(w, h, |x, y| {
        let v = 0.65 * wrapped_noise(seed, w, h, look.cells, x, y)
            + 0.35 * wrapped_noise(seed ^ 0xA5A5, w, h, fine, x, y);
        let speck = lattice(seed ^ 0x5EED, x, y);
        let shade = if speck > 0.97 {
            4
        } else {
            ((v * 4.0 + (speck - 0.5) * 0.6).clamp(0.0, 3.99)) as usize
        };
        let [r, g, b] = look.colours[shade];
        image::Rgba([r, g, b, 255])
    })
}

/// A transition tile: `source` (the two terrains composed) with their boundary drawn as a
/// shoreline: A's accent on A's side next to B, B's accent (foam) on B's side next to A.
/// Pixels are told apart by the nearer of the two terrains' colours.
fn shoreline(source: &image::RgbaImage, a: usize, b: usize) -> image::RgbaImage {
    let (w, h) = source.dimensions();
    let dist = |p: [u8; 4], c: [u8; 3]| -> u32 {
        (0..3).map(|k| u32::from(p[k].abs_diff(c[k])).pow(2)).sum()
    };
    let near = |p: [u8; 4], t: usize| TERRAINS[t].colours.iter().map(|&c| dist(p, c)).min();
    let is_b: Vec<bool> = source
        .pixels()
        .map(|p| near(p.0, b) < near(p.0, a))
        .collect();
    let class = |x: i64, y: i64| -> Option<bool> {
        (x >= 0 && y >= 0 && x < i64::from(w) && y < i64::from(h))
            .then(|| is_b[(y * i64::from(w) + x) as usize])
    };
    image::RgbaImage::from_fn(w, h, |x, y| {
        let (xi, yi) = (i64::from(x), i64::from(y));
        let own = is_b[(y * w + x) as usize];
        // Distance (in px, up to 2) to the other terrain.
        let reach = (1..=2)
            .find(|&r| (-r..=r).any(|dy| (-r..=r).any(|dx| class(xi + dx, yi + dy) == Some(!own))));
        let [r, g, bl] = match (own, reach) {
            (false, Some(_)) => TERRAINS[a].colours[4],
            (true, Some(1)) => TERRAINS[b].colours[4],
            (true, Some(_)) => TERRAINS[b].colours[3],
            _ => {
                let p = source.get_pixel(x, y).0;
                [p[0], p[1], p[2]]
            }
        };
        image::Rgba([r, g, bl, 255])
    })
}
