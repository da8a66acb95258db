//! Downloads (feature `hub`) from a local stand-in for the Hugging Face hub, for repos whose
//! tokenizers are in either form (issue #11): `tokenizer.json` (what `transformers` 5 saves) or
//! `vocab.json` + `merges.txt`, with and without the API's file listing.
//!
//! Run with `cargo test -p pixelgen-diffusion --features hub --test hub_download`.

#![cfg(feature = "hub")]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{fixtures, tiny_model};
use pixelgen_diffusion::config::TokenizerForm;
use pixelgen_diffusion::hub::{SdxlFiles, fetch_sdxl_into};
use pixelgen_diffusion::{ClipTokenizer, DiffusionError, SdxlConfigs};
use sha2::{Digest, Sha256};

const REPO: &str = "org/tiny";
const COMMIT: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

/// The files of a repo, by path.
type Files = BTreeMap<String, Vec<u8>>;

/// Every file under `dir`, relative to it.
fn read_tree(dir: &Path, prefix: &str, out: &mut Files) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_str().unwrap());
        if entry.file_type().unwrap().is_dir() {
            read_tree(&entry.path(), &format!("{name}/"), out);
        } else {
            out.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
}

/// The tiny model as a repo, its tokenizer folders in the `tokenizer.json` form or not.
fn repo_files(json_tokenizers: bool) -> Files {
    let mut files = Files::new();
    read_tree(&tiny_model(), "", &mut files);
    if json_tokenizers {
        files.retain(|f, _| !f.starts_with("tokenizer"));
        for dir in ["tokenizer", "tokenizer_2"] {
            read_tree(
                &fixtures().join("tokenizer-json").join(dir),
                &format!("{dir}/"),
                &mut files,
            );
        }
    }
    files
}

/// A minimal hub: `GET /api/models/REPO/revision/main` (the file listing, unless `api` is off)
/// and `GET /REPO/resolve/main/FILE` with the range requests hf-hub makes. Records the files
/// asked for.
struct Hub {
    endpoint: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Hub {
    fn start(files: Files, api: bool) -> Self {
        Self::serving(files.clone(), files, api)
    }

    /// A hub that lists `listed` (names, sizes, SHA-256s) but serves `served`.
    fn serving(listed: Files, served: Files, api: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve(stream, &listed, &served, api, &log);
            }
        });
        Self { endpoint, requests }
    }

    /// The repo files that were asked for (each once, in order).
    fn asked(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for r in self.requests.lock().unwrap().iter() {
            if !seen.contains(r) {
                seen.push(r.clone());
            }
        }
        seen
    }
}

fn serve(
    mut stream: TcpStream,
    listed: &Files,
    files: &Files,
    api: bool,
    log: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = value.trim().strip_prefix("bytes=").map(str::to_string);
        }
    }
    let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
    let reply = |stream: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    };
    let (path, query) = path.split_once('?').unwrap_or((&path, ""));
    if path == format!("/api/models/{REPO}/revision/main") {
        if !api {
            return reply(&mut stream, "404 Not Found", "", b"");
        }
        // As the hub: with `blobs=true`, sizes, and LFS SHA-256s for the weights.
        let blobs = query.split('&').any(|q| q == "blobs=true");
        let siblings: Vec<_> = listed
            .iter()
            .map(|(f, data)| {
                if !blobs {
                    return serde_json::json!({ "rfilename": f });
                }
                let mut entry = serde_json::json!({ "rfilename": f, "size": data.len() });
                if f.ends_with(".safetensors") {
                    let sha: String = Sha256::digest(data)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    entry["lfs"] =
                        serde_json::json!({ "sha256": sha, "size": data.len(), "pointerSize": 134 });
                }
                entry
            })
            .collect();
        let body = serde_json::json!({ "siblings": siblings, "sha": COMMIT }).to_string();
        return reply(
            &mut stream,
            "200 OK",
            "Content-Type: application/json\r\n",
            body.as_bytes(),
        );
    }
    let Some(file) = path.strip_prefix(&format!("/{REPO}/resolve/main/")) else {
        return reply(&mut stream, "404 Not Found", "", b"");
    };
    log.lock().unwrap().push(file.to_string());
    let Some(data) = files.get(file) else {
        return reply(&mut stream, "404 Not Found", "", b"");
    };
    let (start, end) = match range.as_deref().and_then(|r| r.split_once('-')) {
        Some((a, b)) => (
            a.parse::<usize>().unwrap_or(0),
            b.parse::<usize>().map_or(data.len(), |b| b + 1),
        ),
        None => (0, data.len()),
    };
    let end = end.min(data.len());
    let etag = file.replace('/', "-");
    let headers = format!(
        "ETag: \"{etag}\"\r\nX-Repo-Commit: {COMMIT}\r\nContent-Range: bytes {start}-{}/{}\r\n",
        end.saturating_sub(1),
        data.len()
    );
    reply(
        &mut stream,
        "206 Partial Content",
        &headers,
        &data[start..end],
    );
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pixelgen-hubdl-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fetch(hub: &Hub, cache: &Path) -> pixelgen_diffusion::Result<PathBuf> {
    fetch_sdxl_into(
        cache,
        REPO,
        &SdxlFiles::new(None),
        Some(hub.endpoint.clone()),
        false,
    )
}

/// The downloaded folder loads, its tokenizers in `form`, with the ids of the original.
fn check_folder(dir: &Path, form: TokenizerForm) {
    SdxlConfigs::load(dir).unwrap();
    for sub in ["tokenizer", "tokenizer_2"] {
        assert_eq!(TokenizerForm::of(&dir.join(sub)), Some(form), "{sub}");
        let got = ClipTokenizer::from_folder(dir.join(sub)).unwrap();
        let want = ClipTokenizer::from_folder(tiny_model().join(sub)).unwrap();
        let prompt = "Pixel ART potion!!  with ünïcödé";
        assert_eq!(got.encode(prompt).unwrap(), want.encode(prompt).unwrap());
    }
}

#[test]
fn a_tokenizer_json_repo_downloads_with_the_listing() {
    let hub = Hub::start(repo_files(true), true);
    let cache = temp("json-api");
    let dir = fetch(&hub, &cache).unwrap();
    check_folder(&dir, TokenizerForm::Json);
    let asked = hub.asked();
    assert!(asked.contains(&"tokenizer_2/tokenizer.json".to_string()));
    for f in ["vocab.json", "merges.txt", "special_tokens_map.json"] {
        assert!(!asked.iter().any(|a| a.ends_with(f)), "{f}: {asked:?}");
    }
    // A second call finds everything in the cache.
    assert_eq!(fetch(&hub, &cache).unwrap(), dir);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_tokenizer_json_repo_downloads_without_the_listing() {
    let hub = Hub::start(repo_files(true), false);
    let cache = temp("json-noapi");
    let dir = fetch(&hub, &cache).unwrap();
    check_folder(&dir, TokenizerForm::Json);
    let asked = hub.asked();
    assert!(
        !asked.iter().any(|a| a.ends_with("vocab.json")),
        "{asked:?}"
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_vocab_merges_repo_downloads_with_and_without_the_listing() {
    for api in [true, false] {
        let hub = Hub::start(repo_files(false), api);
        let cache = temp(&format!("vocab-{api}"));
        let dir = fetch(&hub, &cache).unwrap();
        check_folder(&dir, TokenizerForm::VocabMerges);
        assert!(dir.join("tokenizer_2/special_tokens_map.json").is_file());
        let asked = hub.asked();
        // With the listing nothing absent is asked for; without it tokenizer.json is tried first.
        assert_eq!(
            asked.contains(&"tokenizer/tokenizer.json".to_string()),
            !api,
            "{asked:?}"
        );
        let _ = std::fs::remove_dir_all(&cache);
    }
}

#[test]
fn a_repo_with_neither_form_is_an_error_naming_both() {
    for api in [true, false] {
        let mut files = repo_files(false);
        files.remove("tokenizer_2/merges.txt");
        let hub = Hub::start(files, api);
        let cache = temp(&format!("neither-{api}"));
        let err = fetch(&hub, &cache).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DiffusionError::NotDownloaded { .. }), "{msg}");
        for f in [
            "tokenizer_2/tokenizer.json",
            "tokenizer_2/vocab.json",
            "tokenizer_2/merges.txt",
        ] {
            assert!(msg.contains(f), "{f}: {msg}");
        }
        let _ = std::fs::remove_dir_all(&cache);
    }
}

#[test]
fn a_corrupted_or_truncated_download_is_an_error_naming_the_file() {
    const WEIGHTS: &str = "unet/diffusion_pytorch_model.safetensors";
    let listed = repo_files(false);
    // Same size, one byte flipped: only the SHA-256 can tell.
    let mut flipped = listed.clone();
    let data = flipped.get_mut(WEIGHTS).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x40;
    // Cut short: the size tells.
    let mut cut = listed.clone();
    let data = cut
        .get_mut("vae/diffusion_pytorch_model.safetensors")
        .unwrap();
    data.truncate(data.len() - 100);
    for (name, served, file, what) in [
        ("flipped", flipped, WEIGHTS, "SHA-256"),
        (
            "cut",
            cut,
            "vae/diffusion_pytorch_model.safetensors",
            "size",
        ),
    ] {
        let hub = Hub::serving(listed.clone(), served, true);
        let cache = temp(name);
        let err = fetch(&hub, &cache).unwrap_err();
        let msg = err.to_string();
        match &err {
            DiffusionError::CorruptDownload {
                file: f, what: w, ..
            } => {
                assert_eq!((f.as_str(), *w), (file, what), "{msg}");
            }
            other => panic!("{name}: expected CorruptDownload, got {other}"),
        }
        assert!(
            msg.contains(file) && msg.contains("download it again"),
            "{msg}"
        );
        // The damaged file is gone from the cache, so a later call fetches it again.
        let snapshot = cache
            .join("models--org--tiny/snapshots")
            .join(COMMIT)
            .join(file);
        assert!(!snapshot.exists(), "{name}: {} kept", snapshot.display());
        // From an intact hub the same cache completes.
        let good = Hub::start(listed.clone(), true);
        let dir = fetch(&good, &cache).unwrap();
        assert_eq!(std::fs::read(dir.join(file)).unwrap(), listed[file]);
        let _ = std::fs::remove_dir_all(&cache);
    }
}

/// Any files of a repo (a VAE folder's two files, a LoRA's one file): downloaded and checked
/// like an SDXL folder, found in the cache the second time, a corrupt one refused and removed.
#[test]
fn chosen_files_download_into_the_snapshot_and_are_checked() {
    use pixelgen_diffusion::hub::fetch_files_into;
    let vae: Vec<String> = ["vae/config.json", "vae/diffusion_pytorch_model.safetensors"]
        .map(String::from)
        .to_vec();
    let hub = Hub::start(repo_files(true), true);
    let cache = temp("files");
    let dir = fetch_files_into(&cache, REPO, &vae, Some(hub.endpoint.clone()), false).unwrap();
    for f in &vae {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            repo_files(true)[f],
            "{f}"
        );
    }
    assert!(
        !dir.join("unet/config.json").exists(),
        "only what was asked"
    );
    let asked = hub.asked().len();
    let again = fetch_files_into(&cache, REPO, &vae, Some(hub.endpoint.clone()), false).unwrap();
    assert_eq!((again, hub.asked().len()), (dir, asked), "from the cache");
    // A flipped byte: refused by its SHA-256, and not kept.
    let mut flipped = repo_files(true);
    let data = flipped.get_mut(&vae[1]).unwrap();
    data[10] ^= 1;
    let bad = Hub::serving(repo_files(true), flipped, true);
    let cache = temp("files-bad");
    let err =
        fetch_files_into(&cache, REPO, &vae[1..], Some(bad.endpoint.clone()), false).unwrap_err();
    assert!(
        matches!(err, DiffusionError::CorruptDownload { .. }),
        "{err}"
    );
    // Offline: NotDownloaded naming the file.
    let cache = temp("files-offline");
    let err = fetch_files_into(
        &cache,
        REPO,
        &vae[..1],
        Some("http://127.0.0.1:9".into()),
        false,
    )
    .unwrap_err();
    assert!(
        matches!(err, DiffusionError::NotDownloaded { .. }) && err.to_string().contains(&vae[0]),
        "{err}"
    );
}
