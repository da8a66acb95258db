//! What `generate` and `pack` share: choosing the model and device, and progress bars.

use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use pixelgen::{DeviceChoice, ModelConfig, ModelSource, Precision};
use pixelgen_diffusion::registry::Registry;

use crate::Result;

/// `--device`: `auto` (CUDA in a CUDA build, else the CPU), `cpu`, `cuda[:N]` or `metal[:N]`.
pub fn parse_device(s: &str) -> Result<DeviceChoice> {
    let (kind, index) = match s.split_once(':') {
        Some((k, i)) => (
            k,
            i.parse::<usize>()
                .map_err(|_| format!("--device: `{s}` has no device number after `:`"))?,
        ),
        None => (s, 0),
    };
    Ok(match kind {
        "auto" if cfg!(feature = "cuda") => DeviceChoice::Cuda(0),
        "auto" | "cpu" => DeviceChoice::Cpu,
        "cuda" | "gpu" => DeviceChoice::Cuda(index),
        "metal" => DeviceChoice::Metal(index),
        _ => {
            return Err(
                format!("--device: unknown device `{s}` (cpu, cuda, cuda:N, metal)").into(),
            );
        }
    })
}

/// The registry names, sorted (the built-in registry).
pub fn registry_names() -> Vec<String> {
    Registry::builtin()
        .map(|r| r.names().into_iter().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Where `--model` (or a recipe's `model`) points: an existing folder or file is a local
/// model, a registry name a registry model; anything else is an error naming the known models.
pub fn model_source(model: &str) -> Result<ModelSource> {
    if Path::new(model).exists() {
        return Ok(ModelSource::local(model));
    }
    let names = registry_names();
    if names.iter().any(|n| n == model) {
        return Ok(ModelSource::registry(model));
    }
    Err(format!(
        "unknown model `{model}`: not a folder, and not a registry name ({}; see `pixelgen models list`)",
        names.join(", ")
    )
    .into())
}

/// The model configuration for `source` on `device` (f16 weights on a GPU, f32 on the CPU).
pub fn model_config(source: ModelSource, device: DeviceChoice) -> ModelConfig {
    ModelConfig {
        device,
        precision: match device {
            DeviceChoice::Cpu => Precision::F32,
            _ => Precision::F16,
        },
        ..ModelConfig::new(source)
    }
}

/// A bar of `len` sampling steps for a job called `name` (drawn on stderr, hidden when
/// stderr is not a terminal); [`tick`] starts its clock once it has its draw target.
pub fn step_bar(name: &str, len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} steps {elapsed} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(short(name, 24));
    bar
}

/// Redraws `bar` (its clock) 5 times a second while it is drawn at all: no ticker thread for a
/// hidden bar (stderr not a terminal).
pub fn tick(bar: &ProgressBar) {
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
}

/// `s` cut to at most `n` characters (an ellipsis marks the cut).
pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `OUT.png` as the folder and file stem [`pixelgen::save_as`] takes; anything but a `.png`
/// name is refused (checked with the pixel crate's output check: writable folder, not a folder).
pub fn png_target(out: &Path) -> Result<(std::path::PathBuf, String)> {
    pixelgen_pixel::write::check_output(out)?;
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("cannot write {}: no file name", out.display()))?;
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ".".into());
    Ok((dir, stem))
}
