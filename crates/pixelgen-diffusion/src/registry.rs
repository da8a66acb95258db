//! Named models as data: `pixel-art-fast` stands for a base model, a VAE, LoRAs with their
//! strengths and a sampling preset, each from the Hugging Face hub or a local path.
//!
//! The built-in table is `registry.json` next to this file (embedded at build time). Hub
//! sources are looked up in the standard hub cache ([`crate::hub`]); what is not there gives
//! [`DiffusionError::NotDownloaded`] with the command that fetches it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::SdxlConfigs;
use crate::error::{DiffusionError, Result, invalid};
use crate::hub::{self, SdxlFiles};
use crate::sampling::{PresetName, SamplingPreset};
use crate::sdxl_weights::SdxlWeights;

/// The built-in registry, as JSON.
pub const BUILTIN_JSON: &str = include_str!("registry.json");

fn main_revision() -> String {
    "main".to_string()
}

/// Where a model part comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// A Hugging Face hub repo: the whole (diffusers) repo, or one `file` of it.
    Hub {
        /// `organisation/name`.
        repo: String,
        /// Branch or tag name (default `main`), or a 40-hex commit hash to pin the exact
        /// snapshot (then looked up in the cache's `snapshots/HASH/` without a ref; see
        /// [`hub::check_revision`]).
        #[serde(default = "main_revision")]
        revision: String,
        /// One file of the repo (a LoRA, a single-file checkpoint); `None`: the whole folder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
    /// A local file or folder.
    Local {
        /// The path.
        path: PathBuf,
    },
}

impl Source {
    /// A hub repo at `main`, whole.
    pub fn hub(repo: impl Into<String>) -> Self {
        Source::Hub {
            repo: repo.into(),
            revision: main_revision(),
            file: None,
        }
    }

    /// One file of a hub repo at `main`.
    pub fn hub_file(repo: impl Into<String>, file: impl Into<String>) -> Self {
        Source::Hub {
            repo: repo.into(),
            revision: main_revision(),
            file: Some(file.into()),
        }
    }

    /// A local path.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Source::Local { path: path.into() }
    }

    /// The local path of this source in `cache`. A whole hub repo must hold every file of
    /// `folder_files` (relative to its root; of a tokenizer folder's files, one form:
    /// [`hub::missing_files`]) and resolves to its snapshot folder; a hub file
    /// resolves to that file; a local path must exist.
    pub fn locate(&self, cache: &Path, folder_files: &[String]) -> Result<PathBuf> {
        match self {
            Source::Local { path } => {
                if path.exists() {
                    Ok(path.clone())
                } else {
                    Err(DiffusionError::Io {
                        path: path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no such file or folder (check the registry entry or recipe path)",
                        ),
                    })
                }
            }
            Source::Hub {
                repo,
                revision,
                file,
            } => {
                if let Some(f) = file {
                    hub::check_repo_file(f)?;
                }
                let wanted: Vec<String> = match file {
                    Some(f) => vec![f.clone()],
                    None => folder_files.to_vec(),
                };
                let snapshot = hub::snapshot_dir(cache, repo, revision)?;
                // A tokenizer folder's two forms are alternatives (`hub::missing_files`).
                let missing: Vec<String> = match &snapshot {
                    Some(dir) => hub::missing_files(dir, &wanted),
                    None => wanted.clone(),
                };
                match snapshot {
                    Some(dir) if missing.is_empty() => Ok(match file {
                        Some(f) => {
                            // The file itself (a link into `blobs/`) must stay in the cache too.
                            let path = dir.join(f);
                            hub::inside_cache(cache, &path)?;
                            path
                        }
                        None => dir,
                    }),
                    _ => Err(not_downloaded(cache, repo, revision, missing)),
                }
            }
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Hub {
                repo,
                revision,
                file,
            } => {
                write!(f, "hub:{repo}")?;
                if revision != "main" {
                    write!(f, "@{revision}")?;
                }
                if let Some(file) = file {
                    write!(f, "/{file}")?;
                }
                Ok(())
            }
            Source::Local { path } => write!(f, "{}", path.display()),
        }
    }
}

fn not_downloaded(
    cache: &Path,
    repo: &str,
    revision: &str,
    missing: Vec<String>,
) -> DiffusionError {
    let files: Vec<String> = missing.iter().map(|f| format!("'{f}'")).collect();
    let rev = if revision == "main" {
        String::new()
    } else {
        format!(" --revision {revision}")
    };
    DiffusionError::NotDownloaded {
        repo: repo.to_string(),
        cache: cache.to_path_buf(),
        missing: missing.into_boxed_slice(),
        reason: "not in the cache".to_string(),
        help: format!(
            "Download it where the hub is reachable:\n  huggingface-cli download {repo}{rev} --include {}\n\
             then copy that cache into {}, or name a local path instead",
            files.join(" "),
            cache.display()
        ),
    }
}

/// A LoRA of a registry entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSpec {
    /// The `.safetensors` file (a hub source must name its `file`).
    pub source: Source,
    /// Multiplier of its UNet layers.
    #[serde(default = "one")]
    pub unet_strength: f64,
    /// Multiplier of its text-encoder layers.
    #[serde(default = "one")]
    pub text_strength: f64,
    /// Words the LoRA was trained to respond to (none for LoRAs that need none).
    #[serde(default)]
    pub trigger_words: Vec<String>,
}

fn one() -> f64 {
    1.0
}

/// One registry entry as written in the JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    description: String,
    base: Source,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    vae: Option<Source>,
    #[serde(default)]
    config: Option<Source>,
    #[serde(default)]
    loras: Vec<LoraSpec>,
    sampling: PresetName,
}

/// Where a single-file base gets its configs and tokenizers when its entry names none: SDXL
/// base 1.0's repo (config and tokenizer files only, a few MB).
pub const DEFAULT_CONFIG_REPO: &str = "stabilityai/stable-diffusion-xl-base-1.0";

/// A resolved registry name: every part of the model and how to sample it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The registry name.
    pub name: String,
    /// One line for listings.
    pub description: String,
    /// The SDXL base: a diffusers folder (whole hub repo or local folder) or a single-file
    /// checkpoint (hub file or local file).
    pub base: Source,
    /// Weight variant of a diffusers base (`fp16` reads `*.fp16.safetensors`).
    pub variant: Option<String>,
    /// A replacement VAE folder (`config.json` + `diffusion_pytorch_model.safetensors`), e.g.
    /// the fp16-fix VAE that runs in f16 without overflowing, or a VAE `.safetensors` file (the
    /// VAE of a UNet-only single-file base).
    pub vae: Option<Source>,
    /// For a single-file base: a diffusers folder with the configs and tokenizers
    /// (`model_index.json`, `*/config.json`, `tokenizer*/`); `None`: those of
    /// [`DEFAULT_CONFIG_REPO`]. Unused for a diffusers-folder base.
    pub config: Option<Source>,
    /// LoRAs merged into the base, in order.
    pub loras: Vec<LoraSpec>,
    /// The sampling preset's name.
    pub preset: PresetName,
    /// The sampling settings.
    pub sampling: SamplingPreset,
}

/// A LoRA of a [`LocatedModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct LocatedLora {
    /// The local `.safetensors` file.
    pub path: PathBuf,
    /// Multiplier of its UNet layers.
    pub unet_strength: f64,
    /// Multiplier of its text-encoder layers.
    pub text_strength: f64,
}

/// A [`ModelSpec`] with every part a local path.
#[derive(Debug, Clone, PartialEq)]
pub struct LocatedModel {
    /// The base: a diffusers folder, or a single-file checkpoint when this is a file.
    pub base: PathBuf,
    /// Weight variant of a diffusers base.
    pub variant: Option<String>,
    /// A replacement VAE folder or file.
    pub vae: Option<PathBuf>,
    /// The configs-and-tokenizers folder of a single-file base (`None` for a folder base).
    pub config: Option<PathBuf>,
    /// LoRA files with strengths.
    pub loras: Vec<LocatedLora>,
    /// The sampling settings.
    pub sampling: SamplingPreset,
}

/// The files a VAE folder must hold.
pub const VAE_FILES: [&str; 2] = ["config.json", "diffusion_pytorch_model.safetensors"];

impl ModelSpec {
    /// Every part as a local path, looked up in the hub `cache` ([`hub::cache_dir`] for the
    /// standard one). The first part that is not there gives its error.
    pub fn locate(&self, cache: &Path) -> Result<LocatedModel> {
        let base_files = SdxlFiles::new(self.variant.as_deref()).list();
        let vae_files: Vec<String> = VAE_FILES.iter().map(|s| s.to_string()).collect();
        let base = self.base.locate(cache, &base_files)?;
        let vae = match &self.vae {
            Some(v) => Some(v.locate(cache, &vae_files)?),
            None => None,
        };
        let config = if base.is_file() {
            let source = self
                .config
                .clone()
                .unwrap_or_else(|| Source::hub(DEFAULT_CONFIG_REPO));
            Some(source.locate(cache, &SdxlFiles::config_files())?)
        } else {
            None
        };
        let mut loras = Vec::with_capacity(self.loras.len());
        for l in &self.loras {
            if let Source::Hub { file: None, .. } = l.source {
                return Err(invalid(
                    "LoRA source",
                    format!("{}: a hub LoRA must name its `file`", l.source),
                ));
            }
            loras.push(LocatedLora {
                path: l.source.locate(cache, &[])?,
                unet_strength: l.unet_strength,
                text_strength: l.text_strength,
            });
        }
        Ok(LocatedModel {
            base,
            variant: self.variant.clone(),
            vae,
            config,
            loras,
            sampling: self.sampling.clone(),
        })
    }
}

impl LocatedModel {
    /// Opens the base weights: a diffusers folder (with `variant`), or a single-file checkpoint
    /// with the configs and tokenizers of `config`; then the VAE, when one is given (for a
    /// UNet-only checkpoint it is required). LoRAs are not merged here: pass them to
    /// [`SdxlWeights::pipeline`].
    pub fn open(&self) -> Result<SdxlWeights> {
        if self.base.is_file() {
            let dir = self.config.as_ref().ok_or_else(|| {
                invalid(
                    "model config",
                    format!(
                        "{} is a single-file checkpoint: name a folder with its configs and \
                         tokenizers (`config`)",
                        self.base.display()
                    ),
                )
            })?;
            let configs = SdxlConfigs::load(dir)?;
            return match &self.vae {
                Some(vae) => SdxlWeights::open_single_file_with_vae(&self.base, configs, vae),
                None => SdxlWeights::open_single_file(&self.base, configs),
            };
        }
        let weights = SdxlWeights::open(&self.base, self.variant.as_deref())?;
        match &self.vae {
            Some(vae) => weights.with_vae(vae),
            None => Ok(weights),
        }
    }
}

/// Named models.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
}

impl Registry {
    /// The built-in registry ([`BUILTIN_JSON`]).
    pub fn builtin() -> Result<Self> {
        Self::from_json(BUILTIN_JSON)
    }

    /// A registry from JSON: an object of `name: { description, base, variant, vae, loras,
    /// sampling }`, sources written `{"hub": {"repo", "revision", "file"}}` or
    /// `{"local": {"path"}}`. Unknown keys are errors (they are usually typos).
    pub fn from_json(text: &str) -> Result<Self> {
        let entries: BTreeMap<String, Entry> =
            serde_json::from_str(text).map_err(|source| DiffusionError::Config {
                path: PathBuf::from("<model registry>"),
                what: "model registry",
                source,
            })?;
        for (name, e) in &entries {
            if name.trim().is_empty() {
                return Err(invalid("model registry", "an entry has an empty name"));
            }
            for l in &e.loras {
                if !l.unet_strength.is_finite() || !l.text_strength.is_finite() {
                    return Err(invalid(
                        "model registry",
                        format!("`{name}`: LoRA {} has a non-finite strength", l.source),
                    ));
                }
            }
        }
        Ok(Self { entries })
    }

    /// [`Registry::from_json`] of the file at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| DiffusionError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            DiffusionError::Config { what, source, .. } => DiffusionError::Config {
                path: path.to_path_buf(),
                what,
                source,
            },
            other => other,
        })
    }

    /// Adds or replaces the entries of `other` (a user registry over the built-in one).
    pub fn extend(&mut self, other: Registry) {
        self.entries.extend(other.entries);
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// The model called `name`; an unknown name is an error listing the known ones.
    pub fn resolve(&self, name: &str) -> Result<ModelSpec> {
        let e = self.entries.get(name).ok_or_else(|| {
            invalid(
                "model name",
                format!(
                    "`{name}` is not in the model registry; known models: {}",
                    self.names().join(", ")
                ),
            )
        })?;
        Ok(ModelSpec {
            name: name.to_string(),
            description: e.description.clone(),
            base: e.base.clone(),
            variant: e.variant.clone(),
            vae: e.vae.clone(),
            config: e.config.clone(),
            loras: e.loras.clone(),
            preset: e.sampling,
            sampling: e.sampling.preset(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TimestepSpacing;
    use crate::scheduler::SchedulerKind;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pixelgen-reg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The commit of the fake caches.
    const H1: &str = "0123456789abcdef0123456789abcdef01234567";

    /// Puts `files` of `repo` (ref `main` -> `H1`) into a fake hub cache.
    fn put(cache: &Path, repo: &str, files: &[String]) {
        let root = cache.join(hub::repo_folder(repo).unwrap());
        std::fs::create_dir_all(root.join("refs")).unwrap();
        std::fs::write(root.join("refs/main"), H1).unwrap();
        for f in files {
            let p = root.join("snapshots").join(H1).join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        }
    }

    #[test]
    fn hub_files_and_revisions_cannot_name_paths_outside_the_cache() {
        let cache = temp("escape");
        put(&cache, "org/lora", &["a.safetensors".to_string()]);
        for file in ["../../../etc/passwd", "/etc/passwd", "a/../../x"] {
            let err = Source::hub_file("org/lora", file)
                .locate(&cache, &[])
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    DiffusionError::InvalidInput {
                        name: "hub file",
                        ..
                    }
                ),
                "{file}: {err}"
            );
        }
        let pinned = Source::Hub {
            repo: "org/lora".into(),
            revision: H1.into(),
            file: Some("a.safetensors".into()),
        };
        assert!(pinned.locate(&cache, &[]).unwrap().is_file());
        let escaping = Source::Hub {
            repo: "org/lora".into(),
            revision: "/etc".into(),
            file: Some("a.safetensors".into()),
        };
        assert!(escaping.locate(&cache, &[]).is_err());
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn builtin_names_match_the_documented_hub_ids() {
        let r = Registry::builtin().unwrap();
        assert_eq!(
            r.names(),
            ["pixel-art", "pixel-art-fast", "sdxl-base", "sdxl-turbo"]
        );
        let fast = r.resolve("pixel-art-fast").unwrap();
        assert_eq!(
            fast.base,
            Source::hub("stabilityai/stable-diffusion-xl-base-1.0")
        );
        assert_eq!(fast.variant.as_deref(), Some("fp16"));
        assert_eq!(fast.vae, Some(Source::hub("madebyollin/sdxl-vae-fp16-fix")));
        assert_eq!(
            fast.loras[0].source,
            Source::hub_file(
                "latent-consistency/lcm-lora-sdxl",
                "pytorch_lora_weights.safetensors"
            )
        );
        assert_eq!(
            fast.loras[1].source,
            Source::hub_file("nerijs/pixel-art-xl", "pixel-art-xl.safetensors")
        );
        assert_eq!(fast.loras[1].unet_strength, 1.2);
        assert_eq!(fast.sampling.sampler, SchedulerKind::Lcm);
        let turbo = r.resolve("sdxl-turbo").unwrap();
        assert_eq!(turbo.base, Source::hub("stabilityai/sdxl-turbo"));
        assert_eq!(
            turbo.sampling.timestep_spacing,
            Some(TimestepSpacing::Trailing)
        );
        let pixel = r.resolve("pixel-art").unwrap();
        assert_eq!(pixel.preset, PresetName::Quality);
        assert_eq!(pixel.loras.len(), 1);
        // docs/models.md names the same repos and files.
        let docs = include_str!("../../../docs/models.md");
        for name in r.names() {
            let spec = r.resolve(name).unwrap();
            assert!(docs.contains(&format!("`{name}`")), "docs lack {name}");
            let mut sources = vec![spec.base.clone()];
            sources.extend(spec.vae.clone());
            sources.extend(spec.loras.iter().map(|l| l.source.clone()));
            for s in sources {
                if let Source::Hub { repo, file, .. } = s {
                    assert!(docs.contains(&repo), "docs lack {repo}");
                    if let Some(f) = file {
                        assert!(docs.contains(&f), "docs lack {f}");
                    }
                }
            }
        }
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let msg = Registry::builtin()
            .unwrap()
            .resolve("pixel-art-ultra")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("pixel-art-ultra"), "{msg}");
        assert!(
            msg.contains("pixel-art-fast, sdxl-base, sdxl-turbo"),
            "{msg}"
        );
    }

    #[test]
    fn bad_registry_files_are_errors() {
        for bad in [
            "[]",
            r#"{"a": {"base": {"hub": {"repo": "x/y"}}}}"#,
            r#"{"a": {"base": {"hub": {"repo": "x/y"}}, "sampling": "ultra"}}"#,
            r#"{"a": {"base": {"hub": {"repo": "x/y"}}, "sampling": "fast", "lora": []}}"#,
            r#"{"a": {"base": {"ftp": {"repo": "x/y"}}, "sampling": "fast"}}"#,
        ] {
            assert!(Registry::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locate_uses_the_hub_cache_and_reports_what_is_missing() {
        let cache = temp("locate");
        let r = Registry::builtin().unwrap();
        let spec = r.resolve("pixel-art-fast").unwrap();
        // Nothing cached: the base is reported first, with the download command.
        let err = spec.locate(&cache).unwrap_err();
        assert!(matches!(err, DiffusionError::NotDownloaded { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("huggingface-cli download stabilityai/stable-diffusion-xl-base-1.0"),
            "{err}"
        );
        put(
            &cache,
            "stabilityai/stable-diffusion-xl-base-1.0",
            &SdxlFiles::new(Some("fp16")).list(),
        );
        let vae: Vec<String> = VAE_FILES.iter().map(|s| s.to_string()).collect();
        put(&cache, "madebyollin/sdxl-vae-fp16-fix", &vae);
        put(
            &cache,
            "latent-consistency/lcm-lora-sdxl",
            &["pytorch_lora_weights.safetensors".to_string()],
        );
        // The pixel LoRA is still missing: its own command names the file.
        let err = spec.locate(&cache).unwrap_err().to_string();
        assert!(
            err.contains(
                "huggingface-cli download nerijs/pixel-art-xl --include 'pixel-art-xl.safetensors'"
            ),
            "{err}"
        );
        put(
            &cache,
            "nerijs/pixel-art-xl",
            &["pixel-art-xl.safetensors".to_string()],
        );
        let located = spec.locate(&cache).unwrap();
        assert!(located.base.join("model_index.json").is_file());
        assert!(located.vae.unwrap().join("config.json").is_file());
        assert_eq!(located.loras.len(), 2);
        assert!(located.loras[1].path.ends_with("pixel-art-xl.safetensors"));
        assert_eq!(located.loras[1].unet_strength, 1.2);
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn single_file_base_gets_configs_from_the_sdxl_repo_unless_named() {
        let dir = temp("single");
        let ckpt = dir.join("finetune.safetensors");
        std::fs::write(&ckpt, b"x").unwrap();
        let json = format!(
            r#"{{"mine": {{"base": {{"local": {{"path": "{}"}}}}, "sampling": "quality"}}}}"#,
            ckpt.display()
        );
        let file = dir.join("models.json");
        std::fs::write(&file, &json).unwrap();
        let r = Registry::from_file(&file).unwrap();
        let spec = r.resolve("mine").unwrap();
        assert_eq!(spec.config, None);
        // No configs cached: the command fetches SDXL base's configs and tokenizers only.
        let cache = temp("single-cache");
        let err = spec.locate(&cache).unwrap_err().to_string();
        assert!(
            err.contains(&format!("huggingface-cli download {DEFAULT_CONFIG_REPO}")),
            "{err}"
        );
        assert!(err.contains("'unet/config.json'"), "{err}");
        assert!(!err.contains(".safetensors'"), "no weights: {err}");
        put(&cache, DEFAULT_CONFIG_REPO, &SdxlFiles::config_files());
        let located = spec.locate(&cache).unwrap();
        assert_eq!(located.base, ckpt);
        assert!(located.config.unwrap().join("model_index.json").is_file());
        // A folder base needs no config folder.
        let folder = Registry::from_json(&format!(
            r#"{{"f": {{"base": {{"local": {{"path": "{}"}}}}, "sampling": "fast"}}}}"#,
            dir.display()
        ))
        .unwrap();
        let located = folder.resolve("f").unwrap().locate(&cache).unwrap();
        assert_eq!(located.config, None);
        // A broken registry file names itself.
        std::fs::write(&file, "{").unwrap();
        let err = Registry::from_file(&file).unwrap_err().to_string();
        assert!(err.contains("models.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn a_cached_config_repo_may_hold_either_tokenizer_form() {
        let cache = temp("tokenizer-forms");
        let ckpt = cache.join("finetune.safetensors");
        std::fs::write(&ckpt, b"x").unwrap();
        let spec = |repo: &str| {
            Registry::from_json(&format!(
                r#"{{"m": {{"base": {{"local": {{"path": "{}"}}}},
                    "config": {{"hub": {{"repo": "{repo}"}}}}, "sampling": "quality"}}}}"#,
                ckpt.display()
            ))
            .unwrap()
            .resolve("m")
            .unwrap()
        };
        let is = |f: &String, names: &[&str]| names.iter().any(|n| f.ends_with(&format!("/{n}")));
        let all = SdxlFiles::config_files();
        // transformers 5's form: tokenizer.json + tokenizer_config.json.
        let json: Vec<String> = all
            .iter()
            .filter(|f| !is(f, &["vocab.json", "merges.txt", "special_tokens_map.json"]))
            .cloned()
            .collect();
        put(&cache, "org/json", &json);
        let located = spec("org/json").locate(&cache).unwrap();
        assert!(
            located
                .config
                .unwrap()
                .join("tokenizer_2/tokenizer.json")
                .is_file()
        );
        // Neither form: the error names both.
        let neither: Vec<String> = all
            .iter()
            .filter(|f| !is(f, &["tokenizer.json", "vocab.json", "merges.txt"]))
            .cloned()
            .collect();
        put(&cache, "org/neither", &neither);
        let err = spec("org/neither").locate(&cache).unwrap_err().to_string();
        for f in [
            "'tokenizer/tokenizer.json'",
            "'tokenizer/vocab.json'",
            "'tokenizer_2/merges.txt'",
        ] {
            assert!(err.contains(f), "{err}");
        }
        assert!(
            !err.contains("config.json'"),
            "only the tokenizers are missing: {err}"
        );
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn local_sources_and_user_entries() {
        let dir = temp("local");
        let lora = dir.join("mine.safetensors");
        std::fs::write(&lora, b"x").unwrap();
        let json = format!(
            r#"{{"mine": {{"base": {{"local": {{"path": "{}"}}}}, "loras": [{{"source": {{"local": {{"path": "{}"}}}}, "unet_strength": 0.5}}], "sampling": "turbo"}}}}"#,
            dir.display(),
            lora.display()
        );
        let mut r = Registry::builtin().unwrap();
        r.extend(Registry::from_json(&json).unwrap());
        assert!(r.names().contains(&"mine") && r.names().contains(&"sdxl-base"));
        let located = r
            .resolve("mine")
            .unwrap()
            .locate(Path::new("/none"))
            .unwrap();
        assert_eq!(located.base, dir);
        assert_eq!(
            (
                located.loras[0].unet_strength,
                located.loras[0].text_strength
            ),
            (0.5, 1.0)
        );
        let gone = Source::local(dir.join("gone.safetensors"));
        assert!(
            gone.locate(&dir, &[])
                .unwrap_err()
                .to_string()
                .contains("gone.safetensors")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
