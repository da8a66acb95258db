//! `pixelgen doctor`: what this build has, which device it can use, which models are there.

use crate::Result;

/// Print what is installed and what is missing: build features, devices, hub cache, models.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Print what this build of pixelgen has and what is missing.\n\n\
    Lists the build's features (sdxl, hub, cuda, cudnn), whether a CUDA device opens, the \
    Hugging Face hub cache folder and which registry models are in it, and system bits the \
    other commands need. Exits 0 even when something is missing: read the `missing:` lines."
)]
pub struct Args {}

/// Runs `pixelgen doctor`.
pub fn run(_args: &Args) -> Result<()> {
    println!("pixelgen {}", env!("CARGO_PKG_VERSION"));
    let features = [
        ("sdxl", cfg!(feature = "sdxl")),
        ("hub", cfg!(feature = "hub")),
        ("cuda", cfg!(feature = "cuda")),
        ("cudnn", cfg!(feature = "cudnn")),
    ];
    let on: Vec<&str> = features.iter().filter(|f| f.1).map(|f| f.0).collect();
    let off: Vec<&str> = features.iter().filter(|f| !f.1).map(|f| f.0).collect();
    println!(
        "build: features [{}], not built: [{}]",
        on.join(", "),
        off.join(", ")
    );
    println!("commands: pixelize, doctor{}", models_part());
    println!(
        "cpu: {} threads available",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    #[cfg(feature = "sdxl")]
    crate::models::doctor_report();
    #[cfg(not(feature = "sdxl"))]
    println!(
        "missing: the SDXL engine (this is the lean build): \
         `cargo install --path crates/pixelgen-cli` builds the full one"
    );
    Ok(())
}

fn models_part() -> &'static str {
    if cfg!(feature = "sdxl") {
        ", generate, pack, models"
    } else {
        ""
    }
}
