//! Running the `pixelgen` binary in the CLI's tests: a scratch folder, the command with an
//! empty hub cache and no network, and the checks on its exit and its one-line errors.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `pixelgen` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pixelgen");

/// A fresh, empty folder for one test.
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pixelgen-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `pixelgen ARGS` in `dir` with an empty hub cache and no network.
pub fn pixelgen(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env("HF_HUB_CACHE", dir.join("hub-cache"))
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap()
}

/// The output's stdout and stderr as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exit 0; the stdout.
pub fn ok(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(out.status.success(), "{stdout}{stderr}");
    stdout
}

/// Exit 1, one `pixelgen: error:` first line containing `expected`, no panic; the stderr.
pub fn fails(out: &Output, expected: &str) -> String {
    let (stdout, stderr) = text(out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("pixelgen: error: ") && first.contains(expected),
        "expected `{expected}` in the first line of: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}
