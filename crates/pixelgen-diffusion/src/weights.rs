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
/// Each file's size is checked against its header first ([`check_safetensors_size`]).
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
        // A clear error for a missing, unreadable, truncated or oversized file before
        // mapping it.
        check_safetensors_size(file)?;
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
/// Each file's size is checked first ([`check_safetensors_size`]).
pub fn mmap_safetensors(files: &[PathBuf]) -> Result<MmapedSafetensors> {
    for file in files {
        check_safetensors_size(file)?;
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

/// Largest safetensors header accepted (the `safetensors` crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Checks, by reading only its header (no mapping), that the safetensors file `path` is
/// exactly as long as the header says: 8 (the length prefix) + the header's length + the
/// largest tensor end offset. A truncated file (an interrupted download or copy) or an
/// oversized one is refused with [`DiffusionError::Safetensors`] naming the file and both
/// sizes, so that no tensor is ever read from past the end of a mapping. Returns the size.
pub fn check_safetensors_size(path: &Path) -> Result<u64> {
    use std::io::Read;

    let io = |source| DiffusionError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |message: String| DiffusionError::Safetensors {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let actual = file.metadata().map_err(io)?.len();
    let mut prefix = [0u8; 8];
    if actual < 8 {
        return Err(bad(format!(
            "the file is {actual} bytes, too short for a safetensors header: it is truncated \
             or not a safetensors file; download or copy it again"
        )));
    }
    file.read_exact(&mut prefix).map_err(io)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES || header_len > actual - 8 {
        return Err(bad(format!(
            "the file is {actual} bytes but its first 8 bytes announce a {header_len}-byte \
             header: it is truncated or not a safetensors file; download or copy it again"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io)?;
    #[derive(serde::Deserialize)]
    struct Entry {
        data_offsets: (u64, u64),
    }
    let entries: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| {
            bad(format!(
                "its header is not valid JSON ({e}): download it again"
            ))
        })?;
    let mut data_len = 0u64;
    for (name, value) in entries {
        if name == "__metadata__" {
            continue;
        }
        let entry: Entry = serde_json::from_value(value)
            .map_err(|e| bad(format!("tensor `{name}` in its header: {e}")))?;
        data_len = data_len.max(entry.data_offsets.1);
    }
    let expected = 8u64.saturating_add(header_len).saturating_add(data_len);
    if actual != expected {
        let what = if actual < expected {
            "truncated (an interrupted download or copy?)"
        } else {
            "longer than its header says (damaged, or not one safetensors file)"
        };
        return Err(bad(format!(
            "the file is {actual} bytes but its header says {expected} (8 + {header_len}-byte \
             header + {data_len} bytes of tensors): it is {what}; download or copy it again"
        )));
    }
    Ok(actual)
}

/// The crate's only `unsafe`: candle's memory-mapped safetensors reader.
///
/// Callers check each file's size against its header first ([`check_safetensors_size`]), so
/// a file that is already truncated is refused with a clear error. A file truncated *while*
/// it is mapped (edited, re-downloaded or replaced in place while the app runs) can still
/// make the process die with SIGBUS when a page past the new end is read: that cannot be
/// prevented without copying the whole file into memory first. Do not modify weight files
/// while the app that loads them runs; replace them by writing a new file and renaming it
/// over the old one (a rename leaves the mapped old file intact).
#[allow(unsafe_code)]
fn mmap_files(files: &[PathBuf]) -> candle_core::Result<MmapedSafetensors> {
    // SAFETY: `MmapedSafetensors::multi` is unsafe because a memory map is undefined behaviour
    // if the file changes underneath it. The files are read-only model weights opened here for
    // loading; candle validates each file's header and every tensor's byte range against the
    // file length before reading, and copies each tensor out of the map into memory it owns
    // (host or device), so no tensor outlives or aliases the map. Replacing a weight file while
    // a model is loading from it is the one unsupported case, as for any reader of the file
    // (see the doc comment: truncation while mapped is a SIGBUS, not an error).
    unsafe { MmapedSafetensors::multi(files) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("pixelgen-weights-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn tiny_unet() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tiny-sdxl/unet/diffusion_pytorch_model.safetensors")
    }

    #[test]
    fn truncated_or_oversized_weights_are_refused_before_mapping() {
        let dir = temp("sizes");
        let bytes = std::fs::read(tiny_unet()).unwrap();
        let full = bytes.len() as u64;
        assert_eq!(check_safetensors_size(&tiny_unet()).unwrap(), full);

        let cut = dir.join("truncated.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
        let expect_refused = |path: &Path, actual: u64| {
            for err in [
                check_safetensors_size(path).unwrap_err(),
                load_var_builder(&[path.to_path_buf()], DType::F32, &Device::Cpu)
                    .err()
                    .unwrap(),
                mmap_safetensors(&[path.to_path_buf()]).err().unwrap(),
            ] {
                let msg = err.to_string();
                assert!(matches!(err, DiffusionError::Safetensors { .. }), "{msg}");
                assert!(msg.contains(&path.display().to_string()), "{msg}");
                assert!(
                    msg.contains(&format!("the file is {actual} bytes")),
                    "{msg}"
                );
                assert!(msg.contains(&format!("header says {full}")), "{msg}");
            }
        };
        expect_refused(&cut, full - 1000);
        assert!(
            check_safetensors_size(&cut)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );

        let long = dir.join("oversized.safetensors");
        let mut more = bytes.clone();
        more.extend_from_slice(&[0; 16]);
        std::fs::write(&long, &more).unwrap();
        expect_refused(&long, full + 16);

        // Cut inside the header, and shorter than the length prefix.
        let head = dir.join("head.safetensors");
        std::fs::write(&head, &bytes[..100]).unwrap();
        let msg = check_safetensors_size(&head).unwrap_err().to_string();
        assert!(msg.contains("the file is 100 bytes"), "{msg}");
        std::fs::write(&head, &bytes[..3]).unwrap();
        let msg = check_safetensors_size(&head).unwrap_err().to_string();
        assert!(msg.contains("the file is 3 bytes"), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_weights_name_the_expected_file() {
        let err = weight_files(Path::new("/nope"), "model", Some("fp16"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.fp16.safetensors"), "{err}");
    }
}
