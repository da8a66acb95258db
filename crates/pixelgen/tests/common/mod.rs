//! Helpers shared by the facade's tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A fresh folder for one test, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `pixelgen-{name}-{pid}` in the temporary folder, emptied first.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pixelgen-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Saves `image` (by its extension) as `name` in the folder and returns its path.
    pub fn file(&self, name: &str, image: &image::RgbaImage) -> PathBuf {
        let path = self.0.join(name);
        image.save(&path).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
