//! Finds and reads the safetensors weights of one component folder (plain, fp16 variant, sharded).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
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

/// Reads every tensor of `files` onto `device`, converted to `dtype` when used.
///
/// The files are read into memory (the workspace forbids `unsafe`, which mmap needs).
pub fn load_var_builder(
    files: &[PathBuf],
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for file in files {
        let loaded = candle_core::safetensors::load(file, device).map_err(|e| {
            DiffusionError::Safetensors {
                path: file.clone(),
                message: e.to_string(),
            }
        })?;
        tensors.extend(loaded);
    }
    Ok(VarBuilder::from_tensors(tensors, dtype, device))
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
