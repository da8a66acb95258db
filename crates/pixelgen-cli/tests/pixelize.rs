//! `pixelgen pixelize` and `pixelgen doctor`, the commands of every build (the lean one too:
//! `cargo test -p pixelgen-cli --no-default-features --test pixelize`).

use std::path::{Path, PathBuf};

mod common;
use common::{fails, ok, pixelgen, tmp_dir};

#[path = "../../../tests/common/files.rs"]
mod files;
use files::{SmallDisk, names};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/examples/potion_ai.png")
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
    fails(
        &pixelgen(&dir, &["pixelize", s, "o.png", "--cell", "x"]),
        "--cell",
    );
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    fails(
        &pixelgen(&dir, &["pixelize", manifest.to_str().unwrap(), "o.png"]),
        "cannot read",
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

/// Every output is checked before anything is written: a `.jpg` name (only PNG is written),
/// a `--preview` whose folder is a file or that is a folder; exit 1, nothing written, nothing
/// claimed. A missing folder is created.
#[test]
fn bad_outputs_are_refused_before_anything_is_written() {
    let dir = tmp_dir("outputs");
    std::fs::write(dir.join("file"), b"x").unwrap();
    std::fs::create_dir_all(dir.join("folder.png")).unwrap();
    let sample = sample();
    let s = sample.to_str().unwrap();
    let cases: [(&str, Option<&str>, &str); 4] = [
        ("out.jpg", None, "supported: .png"),
        ("out.JPEG", None, "supported: .png"),
        ("out.png", Some("file/before_after.png"), "is not a folder"),
        ("out.png", Some("folder.png"), "it is a folder"),
    ];
    for (out, preview, expected) in cases {
        let mut args = vec!["pixelize", s, out];
        if let Some(p) = preview {
            args.extend(["--preview", p]);
        }
        let run = pixelgen(&dir, &args);
        fails(&run, "cannot write");
        fails(&run, expected);
        assert!(
            !String::from_utf8_lossy(&run.stdout).contains("wrote"),
            "nothing claimed"
        );
        assert_eq!(names(&dir), ["file", "folder.png"], "nothing written");
    }
    // A preview into a folder that does not exist yet: created, both written.
    ok(&pixelgen(
        &dir,
        &["pixelize", s, "out.png", "--preview", "new/sub/ba.png"],
    ));
    assert!(dir.join("out.png").is_file() && dir.join("new/sub/ba.png").is_file());
    std::fs::remove_dir_all(dir).ok();
}

/// A full disk (a 64 KiB tmpfs; skipped with the reason where mounting is not permitted):
/// "cannot write PATH: ...", exit 1, no "wrote", the old file unchanged, no temporary file.
#[test]
fn a_full_disk_is_a_write_error_with_exit_1() {
    let dir = tmp_dir("full");
    let Some(mounted) = SmallDisk::mount(dir.join("disk")) else {
        std::fs::remove_dir_all(dir).ok();
        return;
    };
    let disk = mounted.path().to_path_buf();
    // 200x200 of noise: no grid, so `--fallback 200x200` keeps every pixel (a ~160 KB PNG).
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let noise = image::RgbaImage::from_fn(200, 200, |_, _| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        image::Rgba([s as u8, (s >> 8) as u8, (s >> 16) as u8, 255])
    });
    noise.save(dir.join("noise.png")).unwrap();
    let out = disk.join("out.png");
    std::fs::write(&out, b"old").unwrap();
    let run = pixelgen(
        &dir,
        &[
            "pixelize",
            "noise.png",
            out.to_str().unwrap(),
            "--fallback",
            "200x200",
        ],
    );
    let listing = names(&disk);
    let old = std::fs::read(&out).unwrap();
    drop(mounted);
    fails(&run, &format!("cannot write {}: ", out.display()));
    assert!(String::from_utf8_lossy(&run.stderr).contains("space"));
    assert!(!String::from_utf8_lossy(&run.stdout).contains("wrote"));
    assert_eq!(old, b"old", "the old file is unchanged");
    assert_eq!(listing, ["out.png"], "no temporary file left");
    std::fs::remove_dir_all(dir).ok();
}
