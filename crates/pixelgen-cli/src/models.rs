//! `pixelgen models list|fetch`, and the model part of `pixelgen doctor`.

use std::path::Path;

use pixelgen_diffusion::hub;
use pixelgen_diffusion::registry::{ModelSpec, Registry, Source};

use crate::Result;

/// List the registry's models or fetch one into the hub cache.
#[derive(clap::Subcommand, Debug)]
#[command(
    long_about = "List the model registry's names or download one into the hub cache.\n\n\
    A registry name (pixel-art, pixel-art-fast, sdxl-base, sdxl-turbo, ...) stands for an SDXL \
    base, a VAE, LoRAs and a sampling preset, each from the Hugging Face hub. Models live in the \
    standard hub cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), so \
    huggingface-cli and pixelgen share them."
)]
pub enum Command {
    /// List the registry's names, what each is, and whether the hub cache has it.
    List,
    /// Download a registry model (base, VAE, LoRAs) into the hub cache, with progress bars.
    #[command(
        long_about = "Download a registry model's parts (SDXL base, VAE, LoRAs) into the \
        standard hub cache, with a progress bar per file.\n\n\
        Files already there are not downloaded again, so an interrupted fetch resumes where it \
        stopped; each downloaded file is checked against the size and SHA-256 the hub lists \
        (a mismatch removes it). Honours HF_ENDPOINT, HF_HUB_CACHE and the token of \
        `huggingface-cli login`. Offline: a one-line error naming what is missing, and the \
        huggingface-cli command that downloads it elsewhere."
    )]
    Fetch {
        /// The registry name (see `pixelgen models list`).
        name: String,
    },
}

/// Runs `pixelgen models ...`.
pub fn run(cmd: &Command) -> Result<()> {
    match cmd {
        Command::List => list(),
        Command::Fetch { name } => fetch(name),
    }
}

fn registry() -> Result<Registry> {
    Ok(Registry::builtin()?)
}

/// `Ok(())` when every part of `spec` is in `cache`, else the first missing part's error.
fn presence(spec: &ModelSpec, cache: &Path) -> std::result::Result<(), String> {
    spec.locate(cache).map(|_| ()).map_err(|e| {
        e.to_string()
            .lines()
            .next()
            .unwrap_or("not downloaded")
            .to_owned()
    })
}

fn list() -> Result<()> {
    let reg = registry()?;
    let cache = hub::cache_dir();
    println!("hub cache: {}", cache.display());
    for name in reg.names() {
        let spec = reg.resolve(name)?;
        let state = match presence(&spec, &cache) {
            Ok(()) => "downloaded",
            Err(_) => "not downloaded",
        };
        println!("{name:<16} {state:<15} {}", spec.description);
    }
    println!("fetch one with `pixelgen models fetch NAME`; use it with `--model NAME`");
    Ok(())
}

/// Every hub download a registry model needs: (repo, files) pairs.
fn parts(spec: &ModelSpec) -> Result<Vec<(String, Vec<String>)>> {
    let mut parts = Vec::new();
    let mut add = |source: &Source, folder: Vec<String>| -> Result<()> {
        match source {
            Source::Hub {
                repo,
                revision,
                file,
            } => {
                if revision != "main" {
                    return Err(format!(
                        "{source}: pinned revisions are fetched with huggingface-cli \
                         (`huggingface-cli download {repo} --revision {revision}`)"
                    )
                    .into());
                }
                let files = match file {
                    Some(f) => vec![f.clone()],
                    None => folder,
                };
                parts.push((repo.clone(), files));
            }
            Source::Local { path } => {
                if !path.exists() {
                    return Err(format!(
                        "{} (a local part of the model) does not exist",
                        path.display()
                    )
                    .into());
                }
            }
        }
        Ok(())
    };
    let base_files = hub::SdxlFiles::new(spec.variant.as_deref()).list();
    add(&spec.base, base_files)?;
    if let Source::Hub { file: Some(_), .. } = &spec.base {
        // A single-file base takes its configs and tokenizers from a diffusers repo.
        let config = spec
            .config
            .clone()
            .unwrap_or_else(|| Source::hub(pixelgen_diffusion::registry::DEFAULT_CONFIG_REPO));
        add(&config, hub::SdxlFiles::config_files())?;
    }
    if let Some(vae) = &spec.vae {
        let vae_files = pixelgen_diffusion::registry::VAE_FILES
            .iter()
            .map(|s| s.to_string())
            .collect();
        add(vae, vae_files)?;
    }
    for l in &spec.loras {
        add(&l.source, Vec::new())?;
    }
    Ok(parts)
}

#[cfg(feature = "hub")]
fn fetch(name: &str) -> Result<()> {
    let spec = registry()?.resolve(name)?;
    let cache = hub::cache_dir();
    let endpoint = std::env::var("HF_ENDPOINT").ok();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    for (repo, files) in parts(&spec)? {
        println!("{repo}: {} file(s)", files.len());
        let dir = if files == hub::SdxlFiles::new(spec.variant.as_deref()).list() {
            hub::fetch_sdxl_into(
                &cache,
                &repo,
                &hub::SdxlFiles::new(spec.variant.as_deref()),
                endpoint.clone(),
                progress,
            )?
        } else {
            hub::fetch_files_into(&cache, &repo, &files, endpoint.clone(), progress)?
        };
        println!("  in {}", dir.display());
    }
    presence(&spec, &cache)?;
    println!("{name}: downloaded; use it with `--model {name}`");
    Ok(())
}

#[cfg(not(feature = "hub"))]
fn fetch(name: &str) -> Result<()> {
    let spec = registry()?.resolve(name)?;
    let cache = hub::cache_dir();
    if presence(&spec, &cache).is_ok() {
        println!("{name}: already in {}", cache.display());
        return Ok(());
    }
    let repos: Vec<String> = parts(&spec)?.into_iter().map(|(r, _)| r).collect();
    Err(format!(
        "this build cannot download (no `hub` feature): rebuild with `--features hub`, or run \
         `huggingface-cli download` for {} into {}",
        repos.join(", "),
        cache.display()
    )
    .into())
}

/// The model lines of `pixelgen doctor`: device, hub cache, registry models present.
pub fn doctor_report() {
    match pixelgen::DeviceChoice::Cuda(0).open() {
        Ok(_) => println!("cuda: device 0 opens"),
        Err(e) if cfg!(feature = "cuda") => println!("missing: a CUDA device ({e})"),
        Err(_) => println!("cuda: not in this build (`--features cuda`; needs the CUDA toolkit)"),
    }
    let cache = hub::cache_dir();
    let exists = if cache.is_dir() {
        ""
    } else {
        " (does not exist yet)"
    };
    println!("hub cache: {}{exists}", cache.display());
    match Registry::builtin() {
        Ok(reg) => {
            let mut any = false;
            for name in reg.names() {
                if let Ok(spec) = reg.resolve(name) {
                    let ok = presence(&spec, &cache).is_ok();
                    any |= ok;
                    println!(
                        "model {name}: {}",
                        if ok { "downloaded" } else { "not downloaded" }
                    );
                }
            }
            if !any {
                println!(
                    "missing: no registry model is downloaded (`pixelgen models fetch pixel-art-fast`), \
                     or pass a local diffusers folder with --model DIR"
                );
            }
        }
        Err(e) => println!("missing: the model registry does not parse ({e})"),
    }
    if !cfg!(feature = "hub") {
        println!("missing: downloads (this build has no `hub` feature)");
    }
}
