//! Runs the `pixelize` example binary as a user would (cargo builds examples before tests).

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::example_bin;

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
