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
    let list = files.list();
    // The repo's file list says which tokenizer form it has; without it (an endpoint without
    // the API), each form is tried in turn.
    let listing: Option<Vec<String>> = hub_repo
        .info()
        .ok()
        .map(|info| info.siblings.into_iter().map(|s| s.rfilename).collect());
    let plan = fetch_plan(&list, listing.as_deref());
    let mut dir: Option<PathBuf> = None;
    for (i, step) in plan.iter().enumerate() {
        let mut error = None;
        for choice in &step.choices {
            error = None;
            for file in choice {
                match hub_repo.get(file) {
                    Ok(path) => {
                        if file == "model_index.json" {
                            // model_index.json sits at the snapshot root.
                            dir = path.parent().map(Path::to_path_buf);
                        }
                    }
                    Err(e) => {
                        error = Some(format!("downloading {file} failed: {e}"));
                        break;
                    }
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
    let missing = missing_files(&dir, &list);
    if !missing.is_empty() {
        return Err(fail(missing, "the repo lacks these files".into()));
    }
    Ok(dir)
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
        let snap = fake_cache(&cache, "org/json", "j1", &json);
        assert_eq!(
            cached_sdxl(&cache, "org/json", "main", &files).unwrap(),
            snap
        );
        // The published SDXL folders: vocab.json + merges.txt + both configs.
        let vocab = without(&list, &["tokenizer.json"]);
        let snap = fake_cache(&cache, "org/vocab", "v1", &vocab);
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
        fake_cache(&cache, "org/mixed", "m1", &mixed);
        cached_sdxl(&cache, "org/mixed", "main", &files).unwrap();
        // The vocab.json + merges.txt form still needs special_tokens_map.json.
        let bare = without(&list, &["tokenizer.json", "special_tokens_map.json"]);
        fake_cache(&cache, "org/bare", "b1", &bare);
        let snap = cache.join("models--org--bare/snapshots/b1");
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
        fake_cache(&cache, "org/neither", "n1", &neither);
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
