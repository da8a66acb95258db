//! SDXL from the Hugging Face hub: the files a diffusers SDXL folder needs, where the standard
//! HF cache keeps them, and (feature `hub`) downloading them with progress.
//!
//! The cache layout is the hub's own (`huggingface-cli download` writes it too):
//! `CACHE/models--ORG--NAME/refs/REVISION` holds a commit hash, and the files live under
//! `CACHE/models--ORG--NAME/snapshots/HASH/`. That snapshot folder is an ordinary diffusers folder
//! and is what [`crate::SdxlPipeline::load`] takes. Without network access a clear
//! [`DiffusionError::NotDownloaded`] says which files are missing and how to fetch them.

use std::path::{Path, PathBuf};

use crate::error::{DiffusionError, Result, invalid};

/// The files of a diffusers SDXL repo that [`crate::SdxlPipeline::load`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdxlFiles {
    /// Weight variant, e.g. `fp16` for `*.fp16.safetensors` (half the download).
    pub variant: Option<String>,
}

impl SdxlFiles {
    /// The file set for `variant` (`None`: the full-precision `*.safetensors`).
    pub fn new(variant: Option<&str>) -> Self {
        Self {
            variant: variant.map(str::to_string),
        }
    }

    /// Every file, relative to the repo root: configs, tokenizer files, then weights.
    pub fn list(&self) -> Vec<String> {
        let mut files = Self::config_files();
        let v = self
            .variant
            .as_deref()
            .map(|v| format!(".{v}"))
            .unwrap_or_default();
        for (dir, stem) in [
            ("unet", "diffusion_pytorch_model"),
            ("vae", "diffusion_pytorch_model"),
            ("text_encoder", "model"),
            ("text_encoder_2", "model"),
        ] {
            files.push(format!("{dir}/{stem}{v}.safetensors"));
        }
        files
    }

    /// The configs and tokenizer files only (what a single-file checkpoint needs besides its
    /// weights), relative to the repo root.
    pub fn config_files() -> Vec<String> {
        let mut files: Vec<String> = [
            "model_index.json",
            "scheduler/scheduler_config.json",
            "unet/config.json",
            "vae/config.json",
            "text_encoder/config.json",
            "text_encoder_2/config.json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        files.extend(crate::config::TOKENIZER_FILES.iter().map(|s| s.to_string()));
        // Read when present: they set the pad token (`!` for SDXL's second tokenizer) and the
        // length, so a download without them would tokenize differently.
        for dir in ["tokenizer", "tokenizer_2"] {
            for f in ["tokenizer_config.json", "special_tokens_map.json"] {
                files.push(format!("{dir}/{f}"));
            }
        }
        files
    }

    /// The `huggingface-cli` command that downloads exactly these files of `repo`.
    pub fn cli_command(&self, repo: &str) -> String {
        let includes: Vec<String> = self.list().iter().map(|f| format!("'{f}'")).collect();
        format!(
            "huggingface-cli download {repo} --include {}",
            includes.join(" ")
        )
    }
}

/// The hub cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir() -> PathBuf {
    cache_dir_from(
        std::env::var_os("HF_HUB_CACHE"),
        std::env::var_os("HF_HOME"),
        std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE")),
    )
}

/// [`cache_dir`] from given variable values (testable without touching the environment).
pub fn cache_dir_from(
    hub_cache: Option<std::ffi::OsString>,
    hf_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> PathBuf {
    if let Some(dir) = hub_cache.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = hf_home.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("hub");
    }
    PathBuf::from(home.unwrap_or_else(|| ".".into()))
        .join(".cache")
        .join("huggingface")
        .join("hub")
}

/// `org/name` -> `models--org--name`, the repo's folder in the cache.
pub fn repo_folder(repo: &str) -> Result<String> {
    let ok = !repo.is_empty()
        && repo.split('/').count() == 2
        && repo.split('/').all(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if !ok {
        return Err(invalid(
            "model repo id",
            format!(
                "`{repo}`: expected `organisation/name`, e.g. stabilityai/stable-diffusion-xl-base-1.0"
            ),
        ));
    }
    Ok(format!("models--{}", repo.replace('/', "--")))
}

/// The snapshot folder of `repo` at `revision` (a branch or tag name with a `refs/` entry, or a
/// commit hash) in `cache`, if the cache has one.
pub fn snapshot_dir(cache: &Path, repo: &str, revision: &str) -> Result<Option<PathBuf>> {
    let root = cache.join(repo_folder(repo)?);
    if revision.is_empty() || revision.contains("..") {
        return Err(invalid(
            "revision",
            format!("`{revision}` is not a revision"),
        ));
    }
    let hash = match std::fs::read_to_string(root.join("refs").join(revision)) {
        Ok(text) => text.trim().to_string(),
        // Not a ref name: maybe a commit hash itself.
        Err(_) => revision.to_string(),
    };
    let dir = root.join("snapshots").join(&hash);
    Ok(dir.is_dir().then_some(dir))
}

/// The local diffusers folder of `repo` at `revision` if every file of `files` is in `cache`;
/// otherwise [`DiffusionError::NotDownloaded`] listing what is missing and how to get it.
pub fn cached_sdxl(cache: &Path, repo: &str, revision: &str, files: &SdxlFiles) -> Result<PathBuf> {
    let wanted = files.list();
    let (dir, missing) = match snapshot_dir(cache, repo, revision)? {
        Some(dir) => {
            let missing: Vec<String> = wanted
                .iter()
                .filter(|f| !dir.join(f).is_file())
                .cloned()
                .collect();
            (Some(dir), missing)
        }
        None => (None, wanted),
    };
    match dir {
        Some(dir) if missing.is_empty() => Ok(dir),
        _ => Err(not_downloaded(cache, repo, files, missing, None)),
    }
}

pub(crate) fn not_downloaded(
    cache: &Path,
    repo: &str,
    files: &SdxlFiles,
    missing: Vec<String>,
    reason: Option<String>,
) -> DiffusionError {
    DiffusionError::NotDownloaded {
        repo: repo.to_string(),
        cache: cache.to_path_buf(),
        missing: missing.into_boxed_slice(),
        reason: reason.unwrap_or_else(|| {
            if cfg!(feature = "hub") {
                "not in the cache".to_string()
            } else {
                "not in the cache, and this build has no `hub` feature to download it".to_string()
            }
        }),
        help: format!(
            "Download it where the hub is reachable:\n  {}\nthen copy that cache into {} ({}), \
             or pass any folder with the same files (model_index.json, unet/, vae/, \
             text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/, scheduler/) as the model path",
            files.cli_command(repo),
            cache.display(),
            match repo_folder(repo) {
                Ok(folder) => format!(
                    "{f}/refs/main holds the commit hash HASH, the files go under {f}/snapshots/HASH/",
                    f = cache.join(folder).display()
                ),
                Err(_) => "models--ORG--NAME/snapshots/HASH/".to_string(),
            }
        ),
    }
}

/// Returns the local folder of SDXL `repo` (branch `main`), downloading missing files into the
/// hub cache ([`cache_dir`]) with a progress bar per file. Honours `HF_ENDPOINT` and the token
/// that `huggingface-cli login` saved. Offline or failing: [`DiffusionError::NotDownloaded`].
#[cfg(feature = "hub")]
pub fn fetch_sdxl(repo: &str, files: &SdxlFiles) -> Result<PathBuf> {
    fetch_sdxl_into(
        &cache_dir(),
        repo,
        files,
        std::env::var("HF_ENDPOINT").ok(),
        true,
    )
}

/// [`fetch_sdxl`] with an explicit cache folder, endpoint (`None`: huggingface.co) and progress.
#[cfg(feature = "hub")]
pub fn fetch_sdxl_into(
    cache: &Path,
    repo: &str,
    files: &SdxlFiles,
    endpoint: Option<String>,
    progress: bool,
) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    repo_folder(repo)?;
    if let Ok(dir) = cached_sdxl(cache, repo, "main", files) {
        return Ok(dir);
    }
    let mut builder = ApiBuilder::from_cache(Cache::new(cache.to_path_buf()))
        .with_progress(progress)
        .with_retries(2);
    if let Some(e) = endpoint {
        builder = builder.with_endpoint(e);
    }
    let fail = |missing: Vec<String>, reason: String| {
        not_downloaded(cache, repo, files, missing, Some(reason))
    };
    let api = builder
        .build()
        .map_err(|e| fail(files.list(), format!("cannot set up the hub client: {e}")))?;
    let hub_repo = api.repo(Repo::with_revision(
        repo.to_string(),
        RepoType::Model,
        "main".to_string(),
    ));
    let mut dir = None;
    let list = files.list();
    for (i, file) in list.iter().enumerate() {
        let path = hub_repo.get(file).map_err(|e| {
            fail(
                list[i..].to_vec(),
                format!("downloading {file} failed: {e}"),
            )
        })?;
        if i == 0 {
            // model_index.json sits at the snapshot root.
            dir = path.parent().map(Path::to_path_buf);
        }
    }
    dir.ok_or_else(|| fail(Vec::new(), "the hub returned no snapshot folder".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pixelgen-hub-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A fake cache with `repo` at commit `hash` (ref `main`) holding `files`.
    fn fake_cache(cache: &Path, repo: &str, hash: &str, files: &[String]) -> PathBuf {
        let root = cache.join(repo_folder(repo).unwrap());
        std::fs::create_dir_all(root.join("refs")).unwrap();
        std::fs::write(root.join("refs/main"), hash).unwrap();
        let snap = root.join("snapshots").join(hash);
        for f in files {
            let p = snap.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"{}").unwrap();
        }
        snap
    }

    #[test]
    fn file_list_follows_the_variant() {
        let plain = SdxlFiles::new(None).list();
        assert!(plain.contains(&"unet/diffusion_pytorch_model.safetensors".to_string()));
        assert!(plain.contains(&"tokenizer_2/merges.txt".to_string()));
        assert!(plain.contains(&"tokenizer_2/special_tokens_map.json".to_string()));
        assert!(plain.contains(&"tokenizer/tokenizer_config.json".to_string()));
        let fp16 = SdxlFiles::new(Some("fp16")).list();
        assert!(fp16.contains(&"text_encoder_2/model.fp16.safetensors".to_string()));
        assert!(!fp16.contains(&"text_encoder_2/model.safetensors".to_string()));
        assert_eq!(plain.len(), fp16.len());
    }

    #[test]
    fn cache_dir_follows_the_hub_variables() {
        assert_eq!(
            cache_dir_from(Some("/c".into()), Some("/h".into()), Some("/u".into())),
            PathBuf::from("/c")
        );
        assert_eq!(
            cache_dir_from(None, Some("/h".into()), Some("/u".into())),
            PathBuf::from("/h/hub")
        );
        assert_eq!(
            cache_dir_from(Some("".into()), None, Some("/u".into())),
            PathBuf::from("/u/.cache/huggingface/hub")
        );
    }

    #[test]
    fn repo_ids_map_to_cache_folders_and_bad_ids_are_errors() {
        assert_eq!(
            repo_folder("stabilityai/sdxl-turbo").unwrap(),
            "models--stabilityai--sdxl-turbo"
        );
        for bad in ["", "noslash", "a/b/c", "../x", "a/..", "a b/c"] {
            assert!(repo_folder(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_complete_snapshot_resolves_by_ref_and_by_hash() {
        let cache = temp("complete");
        let files = SdxlFiles::new(Some("fp16"));
        let repo = "stabilityai/stable-diffusion-xl-base-1.0";
        let snap = fake_cache(&cache, repo, "abc123", &files.list());
        assert_eq!(cached_sdxl(&cache, repo, "main", &files).unwrap(), snap);
        assert_eq!(cached_sdxl(&cache, repo, "abc123", &files).unwrap(), snap);
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn missing_files_give_a_download_command_and_the_layout() {
        let cache = temp("partial");
        let files = SdxlFiles::new(Some("fp16"));
        let repo = "stabilityai/stable-diffusion-xl-base-1.0";
        let mut present = files.list();
        present.retain(|f| !f.starts_with("unet/diffusion"));
        fake_cache(&cache, repo, "abc123", &present);
        let err = cached_sdxl(&cache, repo, "main", &files).unwrap_err();
        match &err {
            DiffusionError::NotDownloaded { missing, .. } => {
                assert_eq!(
                    &**missing,
                    ["unet/diffusion_pytorch_model.fp16.safetensors"]
                );
            }
            other => panic!("{other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("huggingface-cli download stabilityai/stable-diffusion-xl-base-1.0"),
            "{msg}"
        );
        assert!(
            msg.contains("'unet/diffusion_pytorch_model.fp16.safetensors'"),
            "{msg}"
        );
        assert!(
            msg.contains("models--stabilityai--stable-diffusion-xl-base-1.0/snapshots/"),
            "{msg}"
        );
        // Nothing cached at all: every file is missing.
        let err = cached_sdxl(&cache, "stabilityai/sdxl-turbo", "main", &files).unwrap_err();
        assert!(
            matches!(err, DiffusionError::NotDownloaded { ref missing, .. } if missing.len() == files.list().len())
        );
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[cfg(feature = "hub")]
    #[test]
    fn offline_download_fails_with_the_instructions() {
        let cache = temp("offline");
        // Port 9 (discard) on localhost: connection refused at once, no network needed.
        let err = fetch_sdxl_into(
            &cache,
            "stabilityai/sdxl-turbo",
            &SdxlFiles::new(Some("fp16")),
            Some("http://127.0.0.1:9".into()),
            false,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DiffusionError::NotDownloaded { .. }), "{msg}");
        assert!(msg.contains("model_index.json"), "{msg}");
        assert!(
            msg.contains("huggingface-cli download stabilityai/sdxl-turbo"),
            "{msg}"
        );
        let _ = std::fs::remove_dir_all(&cache);
    }
}
