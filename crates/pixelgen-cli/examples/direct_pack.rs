//! The baseline of `pixelgen pack`'s overhead (docs/performance.md): the same N sprites made by
//! calling the library directly (`CachedEngine` + `save_as`), on the tiny random SDXL (CPU).
//!
//! ```text
//! cargo run --release -p pixelgen-cli --example direct_pack -- target/pack-bench 50
//! time target/release/pixelgen pack target/pack-bench/bench.pack.ron --device cpu   # the CLI
//! time target/release/pixelgen pack target/pack-bench/bench.pack.ron --device cpu   # no change
//! ```
//!
//! It writes `DIR/bench.pack.ron` (N items on the tiny model) for the CLI run, then makes the
//! same recipes directly into `DIR/direct/` (with its own fresh disk cache, as `pack` has) and
//! prints the wall time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use pixelgen::{
    CachedEngine, Control, DiskCache, Generator, ModelConfig, ModelSource, Plan, Recipe, Size,
};

/// The item prompts, cycled (with the item number appended so every recipe differs).
const PROMPTS: [&str; 5] = [
    "red health potion",
    "steel sword",
    "round wooden shield",
    "gold coin",
    "green slime",
];

/// Sprite size, generation size and steps of every item (the manifest's defaults).
const SIZE: u32 = 16;
const GENERATION: u32 = 64;
const STEPS: usize = 4;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pixelgen-diffusion/tests/fixtures/tiny-sdxl")
}

fn prompt(i: usize) -> String {
    format!("{} {}", PROMPTS[i % PROMPTS.len()], i + 1)
}

/// The manifest the CLI runs: the same recipes as [`recipes`].
fn manifest(n: usize, model: &Path) -> String {
    let mut s = format!(
        "// {n} sprites on the tiny random SDXL (written by examples/direct_pack.rs).\n(\n    \
         assets: \"assets\",\n    model: {:?},\n    defaults: (size: (width: {SIZE}, height: {SIZE}), \
         generation_size: (width: {GENERATION}, height: {GENERATION}), steps: {STEPS}),\n    items: [\n",
        model.display().to_string()
    );
    for i in 0..n {
        s.push_str(&format!(
            "        (name: \"sprites/s{:03}\", prompt: {:?}),\n",
            i + 1,
            prompt(i)
        ));
    }
    s.push_str("    ],\n)\n");
    s
}

/// The recipes, as `pack` plans them: defaults, the item's prompt, a content seed.
fn recipes(n: usize) -> pixelgen::Result<Vec<Plan>> {
    (0..n)
        .map(|i| {
            Plan::with_content_seed(Recipe {
                size: Size::square(SIZE),
                generation_size: Size::square(GENERATION),
                steps: Some(STEPS),
                ..Recipe::new(prompt(i))
            })
        })
        .collect()
}

fn run(dir: &Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let model = tiny().canonicalize()?;
    std::fs::write(dir.join("bench.pack.ron"), manifest(n, &model))?;
    let out = dir.join("direct");
    let _ = std::fs::remove_dir_all(&out);
    let start = Instant::now();
    let plans = recipes(n)?;
    let mut engine =
        CachedEngine::new(Generator::new(ModelConfig::new(ModelSource::local(&model))))
            .with_disk_cache(DiskCache::new(out.join(".pixelgen/cache")));
    for (i, plan) in plans.iter().enumerate() {
        let made = engine.run(plan, &mut |_| Control::Continue)?;
        pixelgen::save_as(
            &out.join("assets/sprites"),
            &format!("s{:03}", i + 1),
            made.artwork(),
            true,
        )?;
    }
    println!(
        "direct: {n} sprites in {:.2} s (library: CachedEngine + save_as, model load included)",
        start.elapsed().as_secs_f64()
    );
    println!(
        "manifest for the CLI: {}",
        dir.join("bench.pack.ron").display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/pack-bench".into()));
    let n = match args.next().map(|s| s.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("direct_pack: usage: direct_pack [DIR] [N]");
            return ExitCode::from(2);
        }
    };
    match run(&dir, n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("direct_pack: error: {e}");
            ExitCode::FAILURE
        }
    }
}
