//! Where the model comes from, where it runs, and its identity for cache keys.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use pixelgen_diffusion::hub;
use pixelgen_diffusion::registry::{LocatedModel, ModelSpec, Registry};

use crate::error::{PixelGenError, Result};

/// Where the SDXL weights are.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// A local diffusers SDXL folder (`model_index.json`, `unet/`, `vae/`, ...).
    Local(PathBuf),
    /// A name of the built-in model registry (`pixelgen_diffusion::Registry`), e.g.
    /// `pixel-art-fast`: its base, VAE and LoRAs are looked up in the Hugging Face cache.
    Registry(String),
}

impl ModelSource {
    /// A local diffusers folder.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        ModelSource::Local(dir.into())
    }

    /// A registry model by name.
    pub fn registry(name: impl Into<String>) -> Self {
        ModelSource::Registry(name.into())
    }
}

/// A registry name resolved to local files (hub cache lookups done), looked up in the built-in
/// registry extended by the user's registry file, if any.
pub(crate) fn locate_registry(
    name: &str,
    cache: Option<&Path>,
    user: Option<&Path>,
) -> Result<(ModelSpec, LocatedModel)> {
    let load_err = |source| PixelGenError::ModelLoad {
        model: format!("registry model `{name}`"),
        source: Box::new(source),
    };
    let mut registry = Registry::builtin().map_err(load_err)?;
    if let Some(path) = user {
        registry.extend(Registry::from_file(path).map_err(load_err)?);
    }
    let spec = registry.resolve(name).map_err(load_err)?;
    let located = match cache {
        Some(c) => spec.locate(c),
        None => spec.locate(&hub::cache_dir()),
    }
    .map_err(load_err)?;
    Ok((spec, located))
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Local(p) => write!(f, "local folder {}", p.display()),
            ModelSource::Registry(name) => write!(f, "registry model `{name}`"),
        }
    }
}

/// The compute device the model runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// The CPU (always available; slow for full-size SDXL).
    #[default]
    Cpu,
    /// An NVIDIA GPU by ordinal (needs the `cuda` feature).
    Cuda(usize),
    /// An Apple GPU by ordinal (needs the `metal` feature).
    Metal(usize),
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceChoice::Metal(i) => write!(f, "metal:{i}"),
        }
    }
}

impl DeviceChoice {
    /// Opens the device; an error says which feature or driver is missing.
    pub fn open(self) -> Result<Device> {
        let opened = match self {
            DeviceChoice::Cpu => return Ok(Device::Cpu),
            DeviceChoice::Cuda(i) => Device::new_cuda(i),
            DeviceChoice::Metal(i) => Device::new_metal(i),
        };
        opened.map_err(|e| PixelGenError::Device {
            requested: self.to_string(),
            message: format!(
                "{e} (build with the `cuda` or `metal` feature and check the driver, or use the CPU)"
            ),
        })
    }
}

/// Weight precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats (the CPU default).
    #[default]
    F32,
    /// 16-bit floats (GPU; SDXL's VAE is upcast where its config asks).
    F16,
    /// bfloat16.
    Bf16,
}

impl Precision {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
            Precision::Bf16 => DType::BF16,
        }
    }
}

/// How to load and run the model: source, device, precision and weight variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// Where the weights are.
    pub source: ModelSource,
    /// Where they run.
    pub device: DeviceChoice,
    /// Weight precision.
    pub precision: Precision,
    /// Weight file variant (`Some("fp16")` reads `*.fp16.safetensors`); a registry model
    /// brings its own.
    pub variant: Option<String>,
    /// The Hugging Face cache that registry models are looked up in; `None`: the standard one
    /// (`$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub_cache: Option<PathBuf>,
    /// A JSON registry file whose entries are added to the built-in ones (same names replace
    /// them), for [`ModelSource::Registry`] names of your own: local single-file checkpoints,
    /// other LoRAs. See `docs/models.md`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<PathBuf>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            source: ModelSource::local("models/stable-diffusion-xl-base-1.0"),
            device: DeviceChoice::Cpu,
            precision: Precision::F32,
            variant: None,
            hub_cache: None,
            registry: None,
        }
    }
}

impl ModelConfig {
    /// CPU, f32, no variant, for `source`.
    pub fn new(source: ModelSource) -> Self {
        Self {
            source,
            ..Self::default()
        }
    }

    /// The identity of this model as it would run: what cache keys are made of.
    ///
    /// It covers the source path, device kind, precision, variant and a fingerprint of the
    /// folder: every file's relative path and length, small files (configs, tokenizers) in
    /// full, and the first and last MiB of each large weight file (which hold the
    /// safetensors header and some tensor data). Cheap (no full read of multi-GB weights),
    /// and it changes when a config, tokenizer or weight file is replaced.
    pub fn identity(&self) -> Result<ModelIdentity> {
        let (source, fingerprint) = match &self.source {
            ModelSource::Local(dir) => (format!("local:{}", dir.display()), fingerprint_path(dir)?),
            ModelSource::Registry(name) => {
                let (spec, located) =
                    locate_registry(name, self.hub_cache.as_deref(), self.registry.as_deref())?;
                let mut parts = vec![fingerprint_path(&located.base)?];
                for extra in [&located.vae, &located.config].into_iter().flatten() {
                    parts.push(fingerprint_path(extra)?);
                }
                for l in &located.loras {
                    parts.push(format!(
                        "{}*{}/{}",
                        crate::digest::file_digest_hex(&l.path),
                        l.unet_strength,
                        l.text_strength
                    ));
                }
                parts.push(format!("preset={:?}", spec.sampling));
                (format!("registry:{name}"), parts.join("+"))
            }
        };
        let device_kind = match self.device {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda(_) => "cuda",
            DeviceChoice::Metal(_) => "metal",
        };
        Ok(ModelIdentity(format!(
            "{source};device={device_kind};precision={:?};variant={};fingerprint={fingerprint}",
            self.precision,
            self.variant.as_deref().unwrap_or("-"),
        )))
    }
}

/// A model's identity as text; part of every cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelIdentity(pub String);

impl std::fmt::Display for ModelIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const WHOLE_FILE_LIMIT: u64 = 1 << 20;
const EDGE: u64 = 1 << 20;

/// [`fingerprint_folder`] of a folder, or of a single file (a checkpoint, a VAE file).
fn fingerprint_path(path: &Path) -> Result<String> {
    match (path.is_file(), path.parent(), path.file_name()) {
        (true, Some(dir), Some(name)) => fingerprint_files(dir, vec![PathBuf::from(name)]),
        _ => fingerprint_folder(path),
    }
}

fn fingerprint_folder(dir: &Path) -> Result<String> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files).map_err(|(path, source)| PixelGenError::ModelIdentity {
        path: path.to_path_buf(),
        source,
    })?;
    fingerprint_files(dir, files)
}

/// The fingerprint of `files` (relative to `dir`): see [`ModelConfig::identity`].
fn fingerprint_files(dir: &Path, mut files: Vec<PathBuf>) -> Result<String> {
    let io = |path: &Path, source| PixelGenError::ModelIdentity {
        path: path.to_path_buf(),
        source,
    };
    files.sort();
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; EDGE as usize];
    for rel in &files {
        let path = dir.join(rel);
        let mut f = fs::File::open(&path).map_err(|e| io(&path, e))?;
        let len = f.metadata().map_err(|e| io(&path, e))?.len();
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update(len.to_le_bytes());
        if len <= WHOLE_FILE_LIMIT {
            let mut all = Vec::with_capacity(len as usize);
            f.read_to_end(&mut all).map_err(|e| io(&path, e))?;
            hash.update(&all);
        } else {
            f.read_exact(&mut buf).map_err(|e| io(&path, e))?;
            hash.update(&buf);
            f.seek(SeekFrom::Start(len - EDGE))
                .map_err(|e| io(&path, e))?;
            f.read_exact(&mut buf).map_err(|e| io(&path, e))?;
            hash.update(&buf);
        }
    }
    Ok(hex(&hash.finalize()[..16]))
}

fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<PathBuf>,
) -> std::result::Result<(), (PathBuf, std::io::Error)> {
    let entries = fs::read_dir(dir).map_err(|e| (dir.to_path_buf(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| (dir.to_path_buf(), e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(|e| (path.clone(), e))?;
        if kind.is_dir() {
            collect_files(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pixelgen-model-{name}-{}-{}",
            std::process::id(),
            crate::recipe::Seed::draw()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn identity_follows_the_folder_contents() {
        let dir = temp_dir("ident");
        fs::create_dir_all(dir.join("unet")).unwrap();
        fs::write(dir.join("model_index.json"), "{}").unwrap();
        fs::write(dir.join("unet/config.json"), r#"{"a": 1}"#).unwrap();
        // A "large" weight file: only its edges are read.
        let big: Vec<u8> = (0..3 * EDGE).map(|i| (i % 251) as u8).collect();
        fs::write(dir.join("unet/w.safetensors"), &big).unwrap();
        let cfg = ModelConfig::new(ModelSource::local(&dir));
        let a = cfg.identity().unwrap();
        assert_eq!(a, cfg.identity().unwrap(), "stable");

        fs::write(dir.join("unet/config.json"), r#"{"a": 2}"#).unwrap();
        let b = cfg.identity().unwrap();
        assert_ne!(a, b, "a config edit changes the identity");

        let mut big2 = big.clone();
        let last = big2.len() - 1;
        big2[last] ^= 1;
        fs::write(dir.join("unet/w.safetensors"), &big2).unwrap();
        assert_ne!(
            b,
            cfg.identity().unwrap(),
            "the weight file's tail is covered"
        );

        let f16 = ModelConfig {
            precision: Precision::F16,
            ..cfg.clone()
        };
        assert_ne!(f16.identity().unwrap(), cfg.identity().unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_folder_is_an_error_naming_it() {
        let cfg = ModelConfig::new(ModelSource::local("/nonexistent/pixelgen/model"));
        let err = cfg.identity().unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/pixelgen/model"),
            "{err}"
        );
    }

    #[test]
    fn cpu_always_opens_and_absent_gpu_is_an_error() {
        assert!(DeviceChoice::Cpu.open().is_ok());
        #[cfg(not(feature = "cuda"))]
        {
            let err = DeviceChoice::Cuda(0).open().unwrap_err();
            assert!(matches!(err, PixelGenError::Device { .. }), "{err}");
        }
    }
}
