//! Runs the `pixelize` example binary as a user would (cargo builds examples before tests).

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::example_bin;
use common::files::{SmallDisk, names};

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dgx-pixels-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn pixelizes_the_demo_sample_to_32x32() {
    let dir = tmp_dir("ok");
    let out = dir.join("potion.png");
    let input = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/examples/potion_ai.png");
    let run = Command::new(example_bin("pixelize"))
        .args([
            input,
            out.to_str().unwrap(),
            "--transparent",
            "--colors",
            "auto",
            "--canvas",
            "40x40",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("cell 12.00x12.00"), "{stdout}");
    let img = image::open(&out).unwrap().to_rgba8();
    assert_eq!(img.dimensions(), (40, 40));
    assert_eq!(img.get_pixel(0, 0)[3], 0, "transparent background");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn unreadable_input_and_bad_options_exit_non_zero_with_a_clear_message() {
    let dir = tmp_dir("bad");
    let out = dir.join("out.png");
    let cases: [(&[&str], &str); 4] = [
        (&["/no/such/file.png"], "cannot read /no/such/file.png"),
        (
            &[concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")],
            "cannot read",
        ),
        (
            &[
                concat!(env!("CARGO_MANIFEST_DIR"), "/assets/examples/potion_ai.png"),
                "--palette",
                "nope",
            ],
            "unknown palette `nope`",
        ),
        (
            &[
                concat!(env!("CARGO_MANIFEST_DIR"), "/assets/examples/potion_ai.png"),
                "--cell",
                "x",
            ],
            "--cell",
        ),
    ];
    for (args, expected) in cases {
        let run = Command::new(example_bin("pixelize"))
            .args(&args[..1])
            .arg(&out)
            .args(&args[1..])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains("pixelize: error:") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!out.exists(), "nothing written on failure");
    std::fs::remove_dir_all(dir).ok();
}

/// The demo sample as the input of the output tests.
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/examples/potion_ai.png");

/// Every output is checked before anything is written: a `.jpg` name (only PNG is written),
/// a `--preview` whose folder is a file or that is a folder; exit 1, nothing written, nothing
/// claimed. A missing folder is created.
#[test]
fn bad_outputs_are_refused_before_anything_is_written() {
    let dir = tmp_dir("outputs");
    std::fs::write(dir.join("file"), b"x").unwrap();
    std::fs::create_dir_all(dir.join("folder.png")).unwrap();
    let cases: [(&str, Option<&str>, &str); 4] = [
        ("out.jpg", None, "supported: .png"),
        ("out.JPEG", None, "supported: .png"),
        ("out.png", Some("file/before_after.png"), "is not a folder"),
        ("out.png", Some("folder.png"), "it is a folder"),
    ];
    for (out, preview, expected) in cases {
        let mut cmd = Command::new(example_bin("pixelize"));
        cmd.arg(SAMPLE).arg(dir.join(out));
        if let Some(p) = preview {
            cmd.arg("--preview").arg(dir.join(p));
        }
        let run = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{out} {preview:?}: {stderr}");
        assert!(
            stderr.contains("pixelize: error: cannot write") && stderr.contains(expected),
            "{out} {preview:?}: {stderr}"
        );
        assert!(
            !String::from_utf8_lossy(&run.stdout).contains("wrote"),
            "nothing claimed"
        );
        assert_eq!(names(&dir), ["file", "folder.png"], "nothing written");
    }
    // A preview into a folder that does not exist yet: created, both written.
    let run = Command::new(example_bin("pixelize"))
        .arg(SAMPLE)
        .arg(dir.join("out.png"))
        .arg("--preview")
        .arg(dir.join("new/sub/ba.png"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
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
    let input = dir.join("noise.png");
    noise.save(&input).unwrap();
    let out = disk.join("out.png");
    std::fs::write(&out, b"old").unwrap();
    let run = Command::new(example_bin("pixelize"))
        .arg(&input)
        .arg(&out)
        .args(["--fallback", "200x200"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    let listing = names(&disk);
    let old = std::fs::read(&out).unwrap();
    drop(mounted);
    assert_eq!(run.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "pixelize: error: cannot write {}: ",
            out.display()
        )) && stderr.contains("space"),
        "{stderr}"
    );
    assert!(!stdout.contains("wrote"), "{stdout}");
    assert_eq!(old, b"old", "the old file is unchanged");
    assert_eq!(listing, ["out.png"], "no temporary file left");
    std::fs::remove_dir_all(dir).ok();
}
