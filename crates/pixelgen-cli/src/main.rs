//! `pixelgen`: the DGX-Pixels command line.
//!
//! ```text
//! pixelgen pixelize IN.png OUT.png [--colors N|auto] [--palette NAME|FILE] [--transparent] ...
//! pixelgen generate "red potion" -o potion.png --model DIR|NAME [--size 32] [--seed 7] ...
//! pixelgen pack assets.pack.ron [--dry-run] [--jobs N] [--device cpu|cuda]
//! pixelgen models list | pixelgen models fetch NAME
//! pixelgen doctor
//! ```
//!
//! The lean build (`--no-default-features`) has `pixelize` and `doctor` only and compiles
//! neither candle nor Bevy. See `docs/cli.md`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod doctor;
#[cfg(feature = "sdxl")]
mod engine;
#[cfg(feature = "sdxl")]
mod generate;
#[cfg(feature = "sdxl")]
mod manifest;
#[cfg(feature = "sdxl")]
mod models;
#[cfg(feature = "sdxl")]
mod pack;
mod pixelize;

/// Any error of a command, shown as `pixelgen: error: MESSAGE`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// The result of a command.
pub type Result<T> = std::result::Result<T, Error>;

/// The DGX-Pixels command line: AI pixel art from prompts, recipes and asset-pack manifests.
#[derive(Parser, Debug)]
#[command(
    name = "pixelgen",
    version,
    about = "AI pixel art from the command line: generate, pixelize, build asset packs",
    long_about = "AI pixel art from the command line.\n\n\
        `pixelgen generate` draws one sprite, sheet, animation set or tileset with SDXL and \
        writes it with its recipe; `pixelgen pixelize` turns any AI-style image into true pixel \
        art (no model needed); `pixelgen pack` builds every asset of a manifest, skipping what \
        is up to date; `pixelgen models` lists and fetches registry models; `pixelgen doctor` \
        checks the set-up.\n\n\
        Every command exits 0 on success and 1 with a one-line `pixelgen: error: ...` on bad \
        input (2 for a bad command line). Guide: docs/cli.md.",
    after_help = "Run `pixelgen help COMMAND` for a command's options."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Pixelize(Box<pixelize::Args>),
    #[cfg(feature = "sdxl")]
    Generate(Box<generate::Args>),
    #[cfg(feature = "sdxl")]
    Pack(pack::Args),
    #[cfg(feature = "sdxl")]
    #[command(subcommand)]
    Models(models::Command),
    Doctor(doctor::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Pixelize(a) => pixelize::run(a),
        #[cfg(feature = "sdxl")]
        Command::Generate(a) => generate::run(a),
        #[cfg(feature = "sdxl")]
        Command::Pack(a) => pack::run(a),
        #[cfg(feature = "sdxl")]
        Command::Models(c) => models::run(c),
        Command::Doctor(a) => doctor::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e.to_string());
            ExitCode::FAILURE
        }
    }
}

/// Prints `message` as `pixelgen: error: FIRST LINE`; further lines (hints such as a download
/// command) follow indented.
fn report(message: &str) {
    let mut lines = message.lines().filter(|l| !l.trim().is_empty());
    let mut first = lines.next().unwrap_or("unknown error").to_owned();
    // A model that is not downloaded lists every missing file; the download command below
    // names them again, so the cause line only counts them.
    if let Some(i) = first.find("; missing: ") {
        let n = first[i..].split(", ").count();
        first = format!("{}; {n} file(s) missing", &first[..i]);
    }
    eprintln!("pixelgen: error: {first}");
    for l in lines {
        eprintln!("  {}", l.trim_start());
    }
}
