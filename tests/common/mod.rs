//! Helpers shared by the root package's tests that run example binaries.
// Each test binary uses a subset of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use image::RgbaImage;

pub mod files;

/// `target/<profile>/examples/NAME`, next to this test's `deps/` folder (cargo builds the
/// examples before the tests).
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} missing: run `cargo test --all-targets`",
        bin.display()
    );
    bin
}

/// Whether `xvfb-run` is on the PATH (the window tests skip without it).
pub fn has_xvfb() -> bool {
    Command::new("sh")
        .args(["-c", "command -v xvfb-run"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Reads an image as RGBA, panicking with its path.
pub fn load(path: &Path) -> RgbaImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgba8()
}
