//! SDXL from the Hugging Face hub: the files a diffusers SDXL folder needs, where the standard
//! HF cache keeps them, and (feature `hub`) downloading them with progress.
//!
//! The cache layout is the hub's own (`huggingface-cli download` writes it too):
//! `CACHE/models--ORG--NAME/refs/REVISION` holds a commit hash, and the files live under
//! `CACHE/models--ORG--NAME/snapshots/HASH/`. That snapshot folder is an ordinary diffusers folder
//! and is what [`crate::SdxlPipeline::load`] takes. Without network access a clear
//! [`DiffusionError::NotDownloaded`] says which files are missing and how to fetch them.

use std::path::{Path, PathBuf};

use crate::config::{TOKENIZER_DIRS, TOKENIZER_FILES, TokenizerForm};
use crate::error::{DiffusionError, Result, invalid};

/// The files of a tokenizer folder that set its pad token and length.
const TOKENIZER_CONFIGS: [&str; 2] = ["tokenizer_config.json", "special_tokens_map.json"];

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
        for dir in TOKENIZER_DIRS {
            // The model in either form: `tokenizer.json` or `vocab.json` + `merges.txt`. These
            // are alternatives: a folder needs one form ([`missing_files`]) and a download
            // fetches the one the repo has.
            for f in TOKENIZER_FILES {
                files.push(format!("{dir}/{f}"));
            }
            // Read when present: they set the pad token (`!` for SDXL's second tokenizer) and
            // the length, so a download without them would tokenize differently.
            // `transformers` 5 writes no `special_tokens_map.json` (the pad token is in
            // `tokenizer_config.json`), so the `tokenizer.json` form does without it.
            for f in TOKENIZER_CONFIGS {
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

/// The files of `files` (relative to the folder `dir`) that `dir` lacks, where a tokenizer
/// folder's two forms are alternatives: a folder holding `tokenizer.json` needs no `vocab.json`,
/// `merges.txt` or `special_tokens_map.json`, one holding `vocab.json` + `merges.txt` needs no
/// `tokenizer.json`, and one holding neither lacks every file of both forms that it does not
/// have (so the list names both).
pub fn missing_files(dir: &Path, files: &[String]) -> Vec<String> {
    files
        .iter()
        .filter(|f| !dir.join(f).is_file() && !unused_tokenizer_file(dir, f))
        .cloned()
        .collect()
}

/// Whether `file` is a tokenizer file that its folder in `dir` does not read, given the form
/// the folder has.
fn unused_tokenizer_file(dir: &Path, file: &str) -> bool {
    let Some((sub, name)) = tokenizer_file(file) else {
        return false;
    };
    match TokenizerForm::of(&dir.join(sub)) {
        Some(TokenizerForm::Json) => {
            TokenizerForm::VocabMerges.files().contains(&name) || name == "special_tokens_map.json"
        }
        Some(TokenizerForm::VocabMerges) => TokenizerForm::Json.files().contains(&name),
        None => false,
    }
}

/// `tokenizer_2/vocab.json` -> (`tokenizer_2`, `vocab.json`), for the files of a tokenizer folder.
fn tokenizer_file(file: &str) -> Option<(&str, &str)> {
    let (sub, name) = file.split_once('/')?;
    let known = TOKENIZER_FILES.contains(&name) || TOKENIZER_CONFIGS.contains(&name);
    (TOKENIZER_DIRS.contains(&sub) && known).then_some((sub, name))
}

/// One step of a download: the first of `choices` whose files the repo has, every file of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
struct Fetch {
    choices: Vec<Vec<String>>,
    /// A file the repo may lack (`special_tokens_map.json`; [`missing_files`] still checks the
    /// result, so a `vocab.json` + `merges.txt` folder without it is an error).
    optional: bool,
}

/// The download steps for `files`: one per file, except that a tokenizer folder's model is one
/// step with its forms as choices, `tokenizer.json` first (what [`crate::ClipTokenizer`] reads
/// when a folder has both). With the repo's file list (`listing`), choices the repo lacks and
/// optional files it lacks are left out, so nothing is asked for that is not there; without
/// it, the steps try each choice in turn.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
fn fetch_plan(files: &[String], listing: Option<&[String]>) -> Vec<Fetch> {
    let has = |f: &String| listing.is_none_or(|l| l.contains(f));
    let mut plan: Vec<Fetch> = Vec::new();
    let mut grouped: Vec<&str> = Vec::new();
    for file in files {
        match tokenizer_file(file) {
            Some((sub, name)) if TOKENIZER_FILES.contains(&name) => {
                if grouped.contains(&sub) {
                    continue;
                }
                grouped.push(sub);
                let all: Vec<Vec<String>> = [TokenizerForm::Json, TokenizerForm::VocabMerges]
                    .iter()
                    .map(|form| form.files().iter().map(|f| format!("{sub}/{f}")).collect())
                    .collect();
                let there: Vec<Vec<String>> = all
                    .iter()
                    .filter(|c: &&Vec<String>| c.iter().all(has))
                    .cloned()
                    .collect();
                plan.push(Fetch {
                    // The repo has neither: ask for both, so that the error names them.
                    choices: if there.is_empty() { all } else { there },
                    optional: false,
                });
            }
            Some((_, "special_tokens_map.json")) => {
                if has(file) {
                    plan.push(Fetch {
                        choices: vec![vec![file.clone()]],
                        optional: true,
                    });
                }
            }
            _ => plan.push(Fetch {
                choices: vec![vec![file.clone()]],
                optional: false,
            }),
        }
    }
    plan
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

/// Whether `s` is a full commit hash: 40 hex digits (what `refs/NAME` holds and what names a
/// snapshot folder).
pub fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks that `revision` is a commit hash ([`is_commit_hash`]; a pinned revision) or a plain
/// branch or tag name: ASCII letters, digits, `-`, `_` and `.`, not starting with `.`, no `..`,
/// no `/`. Anything else (`/etc`, `../x`, `refs/pr/1`) could name a path outside the cache.
pub fn check_revision(revision: &str) -> Result<()> {
    let plain = !revision.is_empty()
        && revision.len() <= 255
        && !revision.starts_with('.')
        && !revision.contains("..")
        && revision
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain || is_commit_hash(revision) {
        return Ok(());
    }
    Err(invalid(
        "revision",
        format!(
            "`{revision}`: use a branch or tag name (letters, digits, `-`, `_`, `.`; e.g. `main`) \
             or a 40-hex commit hash to pin one"
        ),
    ))
}

/// Checks that `file` (a path inside a hub repo, e.g. `unet/config.json`) is relative and
/// stays inside the repo: no absolute path, no `..`, no `.` components.
pub fn check_repo_file(file: &str) -> Result<()> {
    use std::path::Component;
    let path = Path::new(file);
    let ok = !file.is_empty()
        && !file.contains('\\')
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        return Ok(());
    }
    Err(invalid(
        "hub file",
        format!("`{file}`: name a file inside the repo, e.g. `pixel-art-xl.safetensors`"),
    ))
}

/// `path` with symbolic links resolved, if it lies inside the cache folder `cache`; an error
/// naming both if it does not (a `refs/` file or a snapshot link pointing elsewhere: a
/// damaged or tampered cache).
pub fn inside_cache(cache: &Path, path: &Path) -> Result<PathBuf> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| DiffusionError::Io { path: p, source }
    };
    let root = cache.canonicalize().map_err(io(cache))?;
    let real = path.canonicalize().map_err(io(path))?;
    if real.starts_with(&root) {
        return Ok(real);
    }
    Err(invalid(
        "hub cache",
        format!(
            "{} resolves to {}, outside the hub cache {}: the cache entry is damaged or \
             tampered with; delete it and download the model again",
            path.display(),
            real.display(),
            root.display()
        ),
    ))
}

/// The snapshot folder of `repo` at `revision` in `cache`, if the cache has one. `revision` is
/// a branch or tag name whose `refs/` entry must hold a 40-hex commit hash, or such a hash
/// itself (a pinned revision, looked up in `snapshots/` directly); see [`check_revision`].
/// The folder found must lie inside `cache` once links are resolved ([`inside_cache`]).
pub fn snapshot_dir(cache: &Path, repo: &str, revision: &str) -> Result<Option<PathBuf>> {
    let root = cache.join(repo_folder(repo)?);
    check_revision(revision)?;
    let hash = if is_commit_hash(revision) {
        revision.to_ascii_lowercase()
    } else {
        let ref_file = root.join("refs").join(revision);
        match std::fs::read_to_string(&ref_file) {
            Ok(text) => {
                let hash = text.trim();
                if !is_commit_hash(hash) {
                    return Err(invalid(
                        "revision",
                        format!(
                            "{} holds `{}`, not a 40-hex commit hash: the cache entry is \
                             damaged or tampered with; delete it and download the model again",
                            ref_file.display(),
                            hash.chars().take(80).collect::<String>()
                        ),
                    ));
                }
                hash.to_ascii_lowercase()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(DiffusionError::Io {
                    path: ref_file,
                    source,
                });
            }
        }
    };
    let dir = root.join("snapshots").join(&hash);
    if !dir.is_dir() {
        return Ok(None);
    }
    inside_cache(cache, &dir)?;
    Ok(Some(dir))
}

/// The local diffusers folder of `repo` at `revision` if every file of `files` is in `cache`;
/// otherwise [`DiffusionError::NotDownloaded`] listing what is missing and how to get it.
pub fn cached_sdxl(cache: &Path, repo: &str, revision: &str, files: &SdxlFiles) -> Result<PathBuf> {
    let wanted = files.list();
    let (dir, missing) = match snapshot_dir(cache, repo, revision)? {
        Some(dir) => {
            let missing = missing_files(&dir, &wanted);
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
///
/// Each file downloaded is checked against the size and (for LFS files: the weights) the
/// SHA-256 that the hub's file listing gives (`/api/models/REPO/revision/main?blobs=true`);
/// files already in the cache against the size only. A mismatch removes the file from the
/// cache and is [`DiffusionError::CorruptDownload`] naming it. An endpoint without the
/// listing API gets no check. The snapshot folder is resolved by [`snapshot_dir`] (refs must
/// hold a commit hash, every path stays inside the cache).
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
    repo_folder(repo)?;
    if let Ok(dir) = cached_sdxl(cache, repo, "main", files) {
        return Ok(dir);
    }
    let fail = |missing: Vec<String>, reason: String| {
        not_downloaded(cache, repo, files, missing, Some(reason))
    };
    fetch_listed(cache, repo, &files.list(), endpoint, progress, &fail)
}

/// Downloads `files` (paths inside the repo, e.g. a LoRA's `pixel-art-xl.safetensors` or a VAE
/// folder's `config.json` and `diffusion_pytorch_model.safetensors`) of hub `repo` at `main`
/// into the hub `cache`, with the checks of [`fetch_sdxl_into`] (size, and SHA-256 for LFS
/// files, against the hub's listing), and returns the snapshot folder that holds them. Files
/// already there are not downloaded again. Offline or failing:
/// [`DiffusionError::NotDownloaded`] naming what is missing.
#[cfg(feature = "hub")]
pub fn fetch_files_into(
    cache: &Path,
    repo: &str,
    files: &[String],
    endpoint: Option<String>,
    progress: bool,
) -> Result<PathBuf> {
    repo_folder(repo)?;
    for f in files {
        check_repo_file(f)?;
    }
    if let Some(dir) = snapshot_dir(cache, repo, "main")?
        && missing_files(&dir, files).is_empty()
    {
        return Ok(dir);
    }
    let fail = |missing: Vec<String>, reason: String| {
        let includes: Vec<String> = missing.iter().map(|f| format!("'{f}'")).collect();
        DiffusionError::NotDownloaded {
            repo: repo.to_string(),
            cache: cache.to_path_buf(),
            help: format!(
                "Download it where the hub is reachable:\n  huggingface-cli download {repo} --include {}\nthen copy that cache into {}",
                includes.join(" "),
                cache.display()
            ),
            missing: missing.into_boxed_slice(),
            reason,
        }
    };
    fetch_listed(cache, repo, files, endpoint, progress, &fail)
}

/// The download of `list` behind [`fetch_sdxl_into`] and [`fetch_files_into`]: the snapshot
/// folder holding every file, or `fail(missing, reason)`.
#[cfg(feature = "hub")]
fn fetch_listed(
    cache: &Path,
    repo: &str,
    list: &[String],
    endpoint: Option<String>,
    progress: bool,
    fail: &dyn Fn(Vec<String>, String) -> DiffusionError,
) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    let mut builder = ApiBuilder::from_cache(Cache::new(cache.to_path_buf()))
        .with_progress(progress)
        .with_retries(2);
    if let Some(e) = endpoint {
        builder = builder.with_endpoint(e);
    }
    let api = builder
        .build()
        .map_err(|e| fail(list.to_vec(), format!("cannot set up the hub client: {e}")))?;
    let spec = Repo::with_revision(repo.to_string(), RepoType::Model, "main".to_string());
    let hub_repo = api.repo(spec.clone());
    let local = Cache::new(cache.to_path_buf()).repo(spec);
    // The repo's file list (with sizes and LFS SHA-256s) says which tokenizer form it has and
    // what each download must match; without it (an endpoint without the API), each form is
    // tried in turn and downloads are not checked.
    let listing: Option<Vec<RemoteFile>> = hub_repo
        .info_request()
        .query("blobs", "true")
        .call()
        .ok()
        .and_then(|r| r.into_json::<Listing>().ok())
        .map(|l| l.siblings);
    let names: Option<Vec<String>> = listing
        .as_ref()
        .map(|l| l.iter().map(|s| s.rfilename.clone()).collect());
    let plan = fetch_plan(list, names.as_deref());
    let mut dir: Option<PathBuf> = None;
    for (i, step) in plan.iter().enumerate() {
        let mut error = None;
        for choice in &step.choices {
            error = None;
            for file in choice {
                let (path, fresh) = match local.get(file) {
                    Some(path) => (path, false),
                    None => match hub_repo.download(file) {
                        Ok(path) => (path, true),
                        Err(e) => {
                            error = Some(format!("downloading {file} failed: {e}"));
                            break;
                        }
                    },
                };
                // hf-hub names the folder after the server's commit header: keep it inside.
                inside_cache(cache, &path)?;
                let remote = listing
                    .as_deref()
                    .and_then(|l| l.iter().find(|r| &r.rfilename == file));
                if let Some(remote) = remote {
                    verify_download(repo, file, &path, remote, fresh)?;
                }
                if dir.is_none() {
                    // The snapshot root: the file's path with the file's own parts taken off.
                    let depth = Path::new(file).components().count();
                    dir = path.ancestors().nth(depth).map(Path::to_path_buf);
                }
            }
            if error.is_none() {
                break;
            }
        }
        if let Some(reason) = error.filter(|_| !step.optional) {
            let missing = plan[i..]
                .iter()
                .flat_map(|s| s.choices.iter().flatten().cloned())
                .collect();
            return Err(fail(missing, reason));
        }
    }
    let dir = dir.ok_or_else(|| fail(Vec::new(), "the hub returned no snapshot folder".into()))?;
    let missing = missing_files(&dir, list);
    if !missing.is_empty() {
        return Err(fail(missing, "the repo lacks these files".into()));
    }
    Ok(dir)
}

/// The hub API's answer for a repo with `?blobs=true`.
#[cfg(feature = "hub")]
#[derive(Debug, serde::Deserialize)]
struct Listing {
    siblings: Vec<RemoteFile>,
}

/// What the hub lists for one file: its size and, for LFS files (the weights), its SHA-256.
#[cfg(feature = "hub")]
#[derive(Debug, Clone, serde::Deserialize)]
struct RemoteFile {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    lfs: Option<LfsInfo>,
}

#[cfg(feature = "hub")]
#[derive(Debug, Clone, serde::Deserialize)]
struct LfsInfo {
    sha256: String,
    size: u64,
}

/// Checks `path` (the cached `file` of `repo`) against the hub's size and, when `hash` (a file
/// downloaded just now) and the hub lists one, SHA-256. A mismatch removes the file (its
/// snapshot link and blob) so that the next call downloads it again, and is
/// [`DiffusionError::CorruptDownload`] naming it.
#[cfg(feature = "hub")]
fn verify_download(
    repo: &str,
    file: &str,
    path: &Path,
    remote: &RemoteFile,
    hash: bool,
) -> Result<()> {
    use sha2::{Digest, Sha256};

    let io = |source| DiffusionError::Io {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |what: &'static str, expected: String, actual: String| {
        // The blob behind the snapshot link, then the link.
        if let Ok(blob) = path.canonicalize() {
            let _ = std::fs::remove_file(blob);
        }
        let _ = std::fs::remove_file(path);
        DiffusionError::CorruptDownload {
            repo: repo.to_string(),
            file: file.to_string(),
            what,
            expected: expected.into(),
            actual: actual.into(),
        }
    };
    let actual_size = std::fs::metadata(path).map_err(io)?.len();
    let expected_size = remote.lfs.as_ref().map(|l| l.size).or(remote.size);
    if let Some(expected) = expected_size
        && expected != actual_size
    {
        return Err(corrupt(
            "size",
            format!("{expected} bytes"),
            format!("{actual_size} bytes"),
        ));
    }
    if let (true, Some(lfs)) = (hash, &remote.lfs) {
        let mut hasher = Sha256::new();
        let mut reader = std::fs::File::open(path).map_err(io)?;
        std::io::copy(&mut reader, &mut hasher).map_err(io)?;
        let actual: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !actual.eq_ignore_ascii_case(lfs.sha256.trim()) {
            return Err(corrupt("SHA-256", lfs.sha256.clone(), actual));
        }
    }
    Ok(())
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

    /// A 40-hex commit hash made of byte `b`.
    fn hash(b: u8) -> String {
        format!("{b:02x}").repeat(20)
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

    /// `files` without those named `drop` (file names, in any folder).
    fn without(files: &[String], drop: &[&str]) -> Vec<String> {
        files
            .iter()
            .filter(|f| !drop.iter().any(|d| f.ends_with(&format!("/{d}"))))
            .cloned()
            .collect()
    }

    #[test]
    fn either_tokenizer_form_makes_a_complete_snapshot() {
        let cache = temp("forms");
        let files = SdxlFiles::new(None);
        let list = files.list();
        for dir in TOKENIZER_DIRS {
            for f in TOKENIZER_FILES.iter().chain(&TOKENIZER_CONFIGS) {
                assert!(list.contains(&format!("{dir}/{f}")), "{dir}/{f}");
            }
        }
        // What transformers 5 saves: tokenizer.json + tokenizer_config.json.
        let json = without(
            &list,
            &["vocab.json", "merges.txt", "special_tokens_map.json"],
        );
        let snap = fake_cache(&cache, "org/json", &hash(1), &json);
        assert_eq!(
            cached_sdxl(&cache, "org/json", "main", &files).unwrap(),
            snap
        );
        // The published SDXL folders: vocab.json + merges.txt + both configs.
        let vocab = without(&list, &["tokenizer.json"]);
        let snap = fake_cache(&cache, "org/vocab", &hash(2), &vocab);
        assert_eq!(
            cached_sdxl(&cache, "org/vocab", "main", &files).unwrap(),
            snap
        );
        // One folder in each form.
        let mixed: Vec<String> = list
            .iter()
            .filter(|f| {
                !matches!(
                    f.as_str(),
                    "tokenizer/vocab.json" | "tokenizer/merges.txt" | "tokenizer_2/tokenizer.json"
                )
            })
            .cloned()
            .collect();
        fake_cache(&cache, "org/mixed", &hash(3), &mixed);
        cached_sdxl(&cache, "org/mixed", "main", &files).unwrap();
        // The vocab.json + merges.txt form still needs special_tokens_map.json.
        let bare = without(&list, &["tokenizer.json", "special_tokens_map.json"]);
        fake_cache(&cache, "org/bare", &hash(4), &bare);
        let snap = cache.join("models--org--bare/snapshots").join(hash(4));
        assert_eq!(
            missing_files(&snap, &list),
            [
                "tokenizer/special_tokens_map.json",
                "tokenizer_2/special_tokens_map.json"
            ]
        );
        // Neither form (only half of one): both are named, nothing else.
        let neither: Vec<String> = list
            .iter()
            .filter(|f| {
                !matches!(
                    f.as_str(),
                    "tokenizer_2/tokenizer.json" | "tokenizer_2/merges.txt"
                )
            })
            .cloned()
            .collect();
        fake_cache(&cache, "org/neither", &hash(5), &neither);
        let err = cached_sdxl(&cache, "org/neither", "main", &files).unwrap_err();
        match &err {
            DiffusionError::NotDownloaded { missing, .. } => assert_eq!(
                &**missing,
                ["tokenizer_2/tokenizer.json", "tokenizer_2/merges.txt"]
            ),
            other => panic!("{other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("'tokenizer_2/tokenizer.json'"), "{msg}");
        assert!(msg.contains("'tokenizer_2/vocab.json'"), "{msg}");
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn downloads_take_the_tokenizer_form_the_repo_has() {
        let list = SdxlFiles::new(Some("fp16")).list();
        let flat = |plan: &[Fetch]| -> Vec<String> {
            plan.iter()
                .flat_map(|s| s.choices.iter().flatten().cloned())
                .collect()
        };
        // The repo's listing decides: exactly the files it has, nothing to try and fail.
        let json = without(
            &list,
            &["vocab.json", "merges.txt", "special_tokens_map.json"],
        );
        let vocab = without(&list, &["tokenizer.json"]);
        for repo in [&json, &vocab] {
            let plan = fetch_plan(&list, Some(repo));
            assert_eq!(&flat(&plan), repo);
            assert!(plan.iter().all(|s| s.choices.len() == 1));
        }
        // A repo with both forms: tokenizer.json first (what the loader reads), the other next.
        let plan = fetch_plan(&list, Some(&list));
        let step = plan
            .iter()
            .find(|s| s.choices[0] == ["tokenizer/tokenizer.json"])
            .unwrap();
        assert_eq!(
            step.choices[1],
            ["tokenizer/vocab.json", "tokenizer/merges.txt"]
        );
        // No listing: both forms are tried in that order; special_tokens_map.json is optional.
        let plan = fetch_plan(&list, None);
        let tokenizer_steps: Vec<&Fetch> = plan.iter().filter(|s| s.choices.len() == 2).collect();
        assert_eq!(tokenizer_steps.len(), 2);
        assert_eq!(
            tokenizer_steps[1].choices,
            [
                vec!["tokenizer_2/tokenizer.json".to_string()],
                vec![
                    "tokenizer_2/vocab.json".to_string(),
                    "tokenizer_2/merges.txt".to_string()
                ]
            ]
        );
        let optional: Vec<String> = plan
            .iter()
            .filter(|s| s.optional)
            .flat_map(|s| s.choices.concat())
            .collect();
        assert_eq!(
            optional,
            [
                "tokenizer/special_tokens_map.json",
                "tokenizer_2/special_tokens_map.json"
            ]
        );
        assert_eq!(flat(&plan), list, "every file once, in order");
        // A repo with neither form: both are asked for, so the error names both.
        let neither = without(&list, &TOKENIZER_FILES);
        let plan = fetch_plan(&list, Some(&neither));
        assert_eq!(plan.iter().filter(|s| s.choices.len() == 2).count(), 2);
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
        let snap = fake_cache(&cache, repo, &hash(0xab), &files.list());
        assert_eq!(cached_sdxl(&cache, repo, "main", &files).unwrap(), snap);
        // A pinned commit needs no ref.
        assert_eq!(
            cached_sdxl(&cache, repo, &hash(0xab), &files).unwrap(),
            snap
        );
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn revisions_and_refs_cannot_leave_the_cache() {
        let base = temp("escape");
        let cache = base.join("cache");
        let repo = "org/model";
        let files = SdxlFiles::new(None);
        let snap = fake_cache(&cache, repo, &hash(7), &files.list());
        let root = cache.join("models--org--model");
        // Revisions that are paths, not names.
        for bad in [
            "/etc",
            "../x",
            "..",
            "a/b",
            "refs/pr/1",
            ".hidden",
            "",
            "main\0",
        ] {
            let err = snapshot_dir(&cache, repo, bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    DiffusionError::InvalidInput {
                        name: "revision",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
        for good in ["main", "v1.0", "fp16_branch", &hash(7)] {
            check_revision(good).unwrap();
        }
        // A secret folder outside the cache, shaped like a snapshot.
        let outside = base.join("outside");
        for f in files.list() {
            let p = outside.join(&f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"{}").unwrap();
        }
        // A ref holding a path instead of a commit hash is refused, not followed.
        std::fs::write(root.join("refs/main"), "../../../outside").unwrap();
        let err = cached_sdxl(&cache, repo, "main", &files).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("not a 40-hex commit hash"), "{msg}");
        // A snapshot folder that links out of the cache is refused.
        #[cfg(unix)]
        {
            std::fs::write(root.join("refs/main"), hash(9)).unwrap();
            std::os::unix::fs::symlink(&outside, root.join("snapshots").join(hash(9))).unwrap();
            let err = cached_sdxl(&cache, repo, "main", &files).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("outside the hub cache"), "{msg}");
        }
        // A missing ref is "not downloaded"; the intact snapshot still resolves by its hash.
        assert!(matches!(
            cached_sdxl(&cache, repo, "dev", &files).unwrap_err(),
            DiffusionError::NotDownloaded { .. }
        ));
        assert_eq!(cached_sdxl(&cache, repo, &hash(7), &files).unwrap(), snap);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn repo_files_must_stay_inside_the_repo() {
        for good in ["a.safetensors", "unet/config.json"] {
            check_repo_file(good).unwrap();
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "./a", "a\\..\\b"] {
            assert!(check_repo_file(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_files_give_a_download_command_and_the_layout() {
        let cache = temp("partial");
        let files = SdxlFiles::new(Some("fp16"));
        let repo = "stabilityai/stable-diffusion-xl-base-1.0";
        let mut present = files.list();
        present.retain(|f| !f.starts_with("unet/diffusion"));
        fake_cache(&cache, repo, &hash(0xab), &present);
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
