//! Content digests of files that decide pixels but sit outside the recipe (LoRA files), for
//! cache keys: SHA-256 of the whole file, computed once per (path, size, mtime) per process.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::error::{PixelGenError, Result, invalid};

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

/// The largest LoRA file accepted: 8 GiB (full-rank SDXL LoRAs are about 1.7 GB).
pub const MAX_LORA_BYTES: u64 = 8 << 30;

/// Checks that `path` is a LoRA file that can be read to its end: a regular file (not a
/// device such as `/dev/zero`, a FIFO or a folder, which would block or never end) of a
/// plausible size. Returns its size.
pub(crate) fn check_lora_file(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path)
        .map_err(|e| invalid("loras", format!("cannot read LoRA {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(invalid(
            "loras",
            format!(
                "{} is not a regular file (a device, a FIFO or a folder): give a .safetensors \
                 LoRA file",
                path.display()
            ),
        ));
    }
    if meta.len() < 8 || meta.len() > MAX_LORA_BYTES {
        return Err(invalid(
            "loras",
            format!(
                "{} is {} bytes: a LoRA file is between 8 bytes and {} GiB",
                path.display(),
                meta.len(),
                MAX_LORA_BYTES >> 30
            ),
        ));
    }
    Ok(meta.len())
}

/// SHA-256 of the file at `path`, or `None` when it is not a regular file or cannot be read
/// (a missing LoRA: the key says so, and generating with it fails with its own error).
/// Recomputed only when the file's size or modification time changed since the last call
/// for this path.
pub(crate) fn file_digest(path: &Path) -> Option<[u8; 32]> {
    file_digest_interruptible(path, &mut || true).ok().flatten()
}

/// [`file_digest`], asking `keep_going` between chunks of [`CHUNK`] bytes: `false` stops
/// the hash with [`PixelGenError::Cancelled`]. Only regular files are read, and only up to
/// the size they had when the hash began.
pub(crate) fn file_digest_interruptible(
    path: &Path,
    keep_going: &mut dyn FnMut() -> bool,
) -> Result<Option<[u8; 32]>> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Ok(None);
    }
    let (len, modified) = (meta.len(), meta.modified().ok());
    if let Ok(memo) = memo().lock()
        && let Some(s) = memo.get(path)
        && s.len == len
        && s.modified == modified
        && modified.is_some()
    {
        return Ok(Some(s.digest));
    }
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(None);
    };
    let mut file = file.take(len);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        if !keep_going() {
            return Err(PixelGenError::Cancelled { step: 0, total: 0 });
        }
        let Ok(n) = file.read(&mut buf) else {
            return Ok(None);
        };
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
    Ok(Some(digest))
}

/// Bytes hashed between two cancellation checks.
const CHUNK: usize = 8 << 20;

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

    #[test]
    fn only_regular_files_of_plausible_size_are_loras_and_hashing_stops_on_cancel() {
        let start = std::time::Instant::now();
        let err = check_lora_file(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert_eq!(file_digest(Path::new("/dev/zero")), None, "never read");
        let dir = std::env::temp_dir().join(format!("pixelgen-lora-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = check_lora_file(&dir).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let fifo = dir.join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            assert!(check_lora_file(&fifo).is_err());
            assert_eq!(file_digest(&fifo), None, "a FIFO is never opened");
        }
        let tiny = dir.join("tiny.safetensors");
        std::fs::write(&tiny, b"abc").unwrap();
        assert!(
            check_lora_file(&tiny)
                .unwrap_err()
                .to_string()
                .contains("3 bytes")
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        // A large file: the hash asks between chunks and stops when told.
        let big = dir.join("big.safetensors");
        std::fs::write(&big, vec![7u8; 3 * CHUNK]).unwrap();
        assert_eq!(check_lora_file(&big).unwrap(), 3 * CHUNK as u64);
        let mut asked = 0;
        let stopped = file_digest_interruptible(&big, &mut || {
            asked += 1;
            asked < 2
        });
        assert!(matches!(stopped, Err(PixelGenError::Cancelled { .. })));
        let whole = file_digest_interruptible(&big, &mut || true)
            .unwrap()
            .unwrap();
        assert_eq!(
            whole,
            <[u8; 32]>::from(Sha256::digest(vec![7u8; 3 * CHUNK]))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
