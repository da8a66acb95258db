//! File-system helpers for the write tests: a 64 KiB tmpfs for disk-full cases and a sorted
//! folder listing. One file, included by the root package's tests (`tests/common`) and by
//! `pixelgen`'s and `pixelgen-pixel`'s through `#[path]`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A 64 KiB tmpfs mounted on a folder, unmounted (and the folder removed) on drop.
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts a 64 KiB tmpfs on `dir` (created); `None`, with the reason printed, where
    /// mounting is not permitted (not root, no `mount`): the caller skips its test.
    pub fn mount(dir: PathBuf) -> Option<Self> {
        std::fs::create_dir_all(&dir).ok()?;
        let run = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&dir)
            .output();
        match run {
            Ok(o) if o.status.success() => Some(Self(dir)),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                println!("skipped: cannot mount a 64 KiB tmpfs ({why})");
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    /// The mounted folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
