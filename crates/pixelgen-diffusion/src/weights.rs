//! Finds and reads the safetensors weights of one component folder (plain, fp16 variant, sharded).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::error::{DiffusionError, Result};

/// The weight files of component folder `dir` whose files are named `stem` (`model` for
/// transformers components, `diffusion_pytorch_model` for diffusers ones). With a `variant`
/// (e.g. `"fp16"`), `stem.variant.safetensors` is preferred. Sharded checkpoints are found
/// through `stem[.variant].safetensors.index.json`.
pub fn weight_files(dir: &Path, stem: &str, variant: Option<&str>) -> Result<Vec<PathBuf>> {
    let mut names = Vec::new();
    if let Some(v) = variant {
        names.push(format!("{stem}.{v}.safetensors"));
    }
    names.push(format!("{stem}.safetensors"));
    for name in &names {
        let single = dir.join(name);
        if single.is_file() {
            return Ok(vec![single]);
        }
        let index = dir.join(format!("{name}.index.json"));
        if index.is_file() {
            return shards(dir, &index);
        }
    }
    Err(DiffusionError::MissingFile {
        dir: dir.to_path_buf(),
        file: names[0].clone(),
    })
}

fn shards(dir: &Path, index: &Path) -> Result<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|source| DiffusionError::Io {
        path: index.to_path_buf(),
        source,
    })?;
    let parsed: Index = serde_json::from_str(&text).map_err(|source| DiffusionError::Config {
        path: index.to_path_buf(),
        what: "safetensors shard index",
        source,
    })?;
    let files: BTreeSet<&String> = parsed.weight_map.values().collect();
    files
        .into_iter()
        .map(|f| {
            let path = dir.join(f);
            if path.is_file() {
                Ok(path)
            } else {
                Err(DiffusionError::MissingFile {
                    dir: dir.to_path_buf(),
                    file: f.clone(),
                })
            }
        })
        .collect()
}

/// Opens `files` as one memory-mapped weight source for `device`, converted to `dtype` when used.
///
/// Nothing is read up front: each tensor is copied from the page cache to `device` (and
/// converted) when the model asks for it, so peak host memory stays near one tensor instead of
/// the whole checkpoint (7 GB for SDXL in fp16). The mapping lives as long as the returned
/// builder, which model constructors drop once built.
pub fn load_var_builder(
    files: &[PathBuf],
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    for file in files {
        // A clear error for a missing or unreadable file before mapping it.
        std::fs::metadata(file).map_err(|source| DiffusionError::Io {
            path: file.clone(),
            source,
        })?;
    }
    mmap_var_builder(files, dtype, device).map_err(|e| DiffusionError::Safetensors {
        path: files.first().cloned().unwrap_or_default(),
        message: format!("{e} (in {})", display_files(files)),
    })
}

fn display_files(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Memory-maps `files` as one safetensors source (headers parsed, no tensor data read), for
/// callers that keep the mapping and build weights from it more than once (LoRA merging).
pub fn mmap_safetensors(files: &[PathBuf]) -> Result<MmapedSafetensors> {
    for file in files {
        std::fs::metadata(file).map_err(|source| DiffusionError::Io {
            path: file.clone(),
            source,
        })?;
    }
    mmap_files(files).map_err(|e| DiffusionError::Safetensors {
        path: files.first().cloned().unwrap_or_default(),
        message: format!("{e} (in {})", display_files(files)),
    })
}

fn mmap_var_builder(
    files: &[PathBuf],
    dtype: DType,
    device: &Device,
) -> candle_core::Result<VarBuilder<'static>> {
    let mapped = mmap_files(files)?;
    Ok(VarBuilder::from_backend(
        Box::new(mapped),
        dtype,
        device.clone(),
    ))
}

/// The crate's only `unsafe`: candle's memory-mapped safetensors reader.
#[allow(unsafe_code)]
fn mmap_files(files: &[PathBuf]) -> candle_core::Result<MmapedSafetensors> {
    // SAFETY: `MmapedSafetensors::multi` is unsafe because a memory map is undefined behaviour
    // if the file changes underneath it. The files are read-only model weights opened here for
    // loading; candle validates each file's header and every tensor's byte range against the
    // file length before reading, and copies each tensor out of the map into memory it owns
    // (host or device), so no tensor outlives or aliases the map. Replacing a weight file while
    // a model is loading from it is the one unsupported case, as for any reader of the file.
    unsafe { MmapedSafetensors::multi(files) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_weights_name_the_expected_file() {
        let err = weight_files(Path::new("/nope"), "model", Some("fp16"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.fp16.safetensors"), "{err}");
    }
}
