//! Content digests of files that decide pixels but sit outside the recipe (LoRA files), for
//! cache keys: SHA-256 of the whole file, computed once per (path, size, mtime) per process.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// A digest with the file size and modification time it was computed for.
#[derive(Clone, Copy)]
struct Stamped {
    len: u64,
    modified: Option<SystemTime>,
    digest: [u8; 32],
}

fn memo() -> &'static Mutex<HashMap<PathBuf, Stamped>> {
    static MEMO: OnceLock<Mutex<HashMap<PathBuf, Stamped>>> = OnceLock::new();
    MEMO.get_or_init(Default::default)
}

/// SHA-256 of the file at `path`, or `None` when it cannot be read (a missing LoRA: the key
/// says so, and generating with it fails with its own error). Recomputed only when the file's
/// size or modification time changed since the last call for this path.
pub(crate) fn file_digest(path: &Path) -> Option<[u8; 32]> {
    let meta = std::fs::metadata(path).ok()?;
    let (len, modified) = (meta.len(), meta.modified().ok());
    if let Ok(memo) = memo().lock()
        && let Some(s) = memo.get(path)
        && s.len == len
        && s.modified == modified
        && modified.is_some()
    {
        return Some(s.digest);
    }
    let mut file = std::fs::File::open(path).ok()?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    let digest: [u8; 32] = hash.finalize().into();
    if let Ok(mut memo) = memo().lock() {
        memo.insert(
            path.to_path_buf(),
            Stamped {
                len,
                modified,
                digest,
            },
        );
    }
    Some(digest)
}

/// [`file_digest`] as hex, `absent` for a file that cannot be read.
pub(crate) fn file_digest_hex(path: &Path) -> String {
    file_digest(path)
        .map(|d| crate::model::hex(&d))
        .unwrap_or_else(|| "absent".into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn set_mtime(path: &Path, t: SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn digest_follows_content_and_is_memoised_per_size_and_mtime() {
        let dir = std::env::temp_dir().join(format!("pixelgen-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lora.safetensors");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        std::fs::write(&path, b"aaaa").unwrap();
        set_mtime(&path, t0);
        let a = file_digest(&path).unwrap();
        assert_eq!(a, <[u8; 32]>::from(Sha256::digest(b"aaaa")));
        // New content, same size, new mtime: a new digest.
        std::fs::write(&path, b"bbbb").unwrap();
        set_mtime(&path, t0 + Duration::from_secs(5));
        let b = file_digest(&path).unwrap();
        assert_eq!(b, <[u8; 32]>::from(Sha256::digest(b"bbbb")));
        // Other content behind the same size and mtime is not re-read: the memo answers.
        std::fs::write(&path, b"cccc").unwrap();
        set_mtime(&path, t0 + Duration::from_secs(5));
        assert_eq!(file_digest(&path).unwrap(), b);
        // A size change is noticed even at the same mtime.
        std::fs::write(&path, b"ccccc").unwrap();
        set_mtime(&path, t0 + Duration::from_secs(5));
        assert_eq!(
            file_digest(&path).unwrap(),
            <[u8; 32]>::from(Sha256::digest(b"ccccc"))
        );
        assert_eq!(file_digest_hex(&dir.join("missing")), "absent");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
