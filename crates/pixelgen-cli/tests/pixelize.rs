//! `pixelgen pixelize` and `pixelgen doctor`, the commands of every build (the lean one too:
//! `cargo test -p pixelgen-cli --no-default-features --test pixelize`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_pixelgen");

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/examples/potion_ai.png")
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pixelgen-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn pixelgen(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env("HF_HUB_CACHE", dir.join("hub-cache"))
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    stdout.into_owned()
}

/// Exit 1, one `pixelgen: error:` first line containing `expected`, no panic.
fn fails(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("pixelgen: error: ") && first.contains(expected),
        "expected `{expected}` in the first line of: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn pixelize_turns_the_demo_sample_into_a_32x32_sprite() {
    let dir = tmp_dir("pixelize");
    let sample = sample();
    let out = pixelgen(
        &dir,
        &[
            "pixelize",
            sample.to_str().unwrap(),
            "out/potion.png",
            "--transparent",
            "--colors",
            "auto",
            "--canvas",
            "40x40",
            "--preview",
            "out/before_after.png",
        ],
    );
    let stdout = ok(&out);
    assert!(stdout.contains("cell 12.00x12.00"), "{stdout}");
    let img = image::open(dir.join("out/potion.png")).unwrap().to_rgba8();
    assert_eq!(img.dimensions(), (40, 40));
    assert_eq!(img.get_pixel(0, 0)[3], 0, "transparent background");
    assert!(img.pixels().any(|p| p[3] == 255), "the sprite is there");
    let ba = image::open(dir.join("out/before_after.png")).unwrap();
    assert_eq!(ba.height(), 256);
    // Bad input: a missing file, an unknown palette, a non-PNG output.
    fails(
        &pixelgen(&dir, &["pixelize", "nope.png", "o.png"]),
        "cannot read nope.png",
    );
    let s = sample.to_str().unwrap();
    fails(
        &pixelgen(&dir, &["pixelize", s, "o.png", "--palette", "nope"]),
        "unknown palette `nope`",
    );
    fails(
        &pixelgen(&dir, &["pixelize", s, "o.jpg"]),
        "supported: .png",
    );
    assert!(!dir.join("o.png").exists());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn doctor_reports_the_build() {
    let dir = tmp_dir("doctor");
    let out = ok(&pixelgen(&dir, &["doctor"]));
    assert!(out.contains("build: features ["), "{out}");
    if cfg!(feature = "sdxl") {
        assert!(out.contains("generate, pack, models"), "{out}");
    } else {
        assert!(out.contains("missing: the SDXL engine"), "{out}");
        // The lean build has no engine commands: clap refuses them (exit 2).
        let run = pixelgen(&dir, &["generate", "x", "-o", "o.png"]);
        assert_eq!(run.status.code(), Some(2));
    }
    std::fs::remove_dir_all(dir).ok();
}
