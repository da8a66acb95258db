//! The txt2img example's own code (argument parsing, loading, sampling, PNG writing) on the tiny
//! fixture model, called as a library: no cargo subprocess.

#[path = "../examples/txt2img.rs"]
#[allow(dead_code)]
mod txt2img;

use std::path::{Path, PathBuf};

use clap::Parser;

fn tiny() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-sdxl")
        .display()
        .to_string()
}

fn temp_png(name: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("pixelgen-txt2img-{}", std::process::id()))
        .join(name)
}

fn args(extra: &[&str], out: &Path) -> txt2img::Args {
    let model = tiny();
    let out = out.display().to_string();
    let mut argv = vec![
        "txt2img", "--model", &model, "--prompt", "a knight", "--device", "cpu", "--out", &out,
        "--quiet",
    ];
    argv.extend_from_slice(extra);
    txt2img::Args::try_parse_from(argv).unwrap()
}

#[test]
fn writes_a_png_of_the_requested_size() {
    let knight = |seed: &str, name: &str| {
        let out = temp_png(name);
        let a = args(
            &[
                "--width",
                "48",
                "--height",
                "32",
                "--steps",
                "3",
                "--sampler",
                "euler_a",
                "--seed",
                seed,
                "--negative",
                "blurry",
            ],
            &out,
        );
        let written = txt2img::run(&a).unwrap();
        assert_eq!(written, out);
        image::open(&out).unwrap().to_rgba8()
    };
    let img = knight("5", "knight.png");
    assert_eq!(img.dimensions(), (48, 32));
    // A real (random-model) image: not one flat colour, fully opaque.
    let first = img.get_pixel(0, 0).0;
    assert!(img.pixels().any(|p| p.0 != first), "flat image");
    assert!(img.pixels().all(|p| p.0[3] == 255));
    // Same arguments -> same pixels; another seed -> other pixels.
    assert_eq!(img, knight("5", "knight2.png"));
    assert_ne!(img, knight("6", "knight3.png"));
    let _ = std::fs::remove_dir_all(temp_png("knight.png").parent().unwrap());
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let out = temp_png("bad.png");
    let err = txt2img::run(&args(
        &["--width", "30", "--height", "32", "--steps", "2"],
        &out,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("invalid width: 30 pixels: use a multiple of"),
        "{err}"
    );
    assert!(!out.exists());
    let mut a = args(&["--steps", "2"], &out);
    a.model = "/no/such/model".into();
    let err = txt2img::run(&a).unwrap_err().to_string();
    assert!(err.contains("/no/such/model"), "{err}");
    assert!(
        txt2img::Args::try_parse_from([
            "txt2img",
            "--model",
            "m",
            "--prompt",
            "p",
            "--out",
            "o.png",
            "--sampler",
            "heun"
        ])
        .is_err()
    );
}

#[test]
fn an_absurd_size_is_refused_at_once() {
    // Before issue #12 this ran for 81 s and was then OOM-killed.
    let out = temp_png("huge.png");
    let start = std::time::Instant::now();
    let err = txt2img::run(&args(
        &["--width", "100000", "--height", "64", "--steps", "2"],
        &out,
    ))
    .unwrap_err()
    .to_string();
    let took = start.elapsed();
    assert!(err.contains("invalid width: 100000 pixels"), "{err}");
    assert!(err.contains("4096"), "{err}");
    // Loading the tiny model is most of it.
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    assert!(!out.exists());
}

#[test]
fn tiling_flag_draws_with_wrap_padding() {
    let common = [
        "--width", "32", "--height", "32", "--steps", "2", "--seed", "3",
    ];
    // A folder of its own: the other tests remove theirs when done.
    let dir = std::env::temp_dir().join(format!("pixelgen-txt2img-tiling-{}", std::process::id()));
    let (plain_out, tiled_out) = (dir.join("plain.png"), dir.join("tiled.png"));
    txt2img::run(&args(&common, &plain_out)).unwrap();
    let mut tiled_args = common.to_vec();
    tiled_args.push("--tiling");
    let a = args(&tiled_args, &tiled_out);
    assert!(a.tiling);
    txt2img::run(&a).unwrap();
    let plain = image::open(&plain_out).unwrap().to_rgba8();
    let tiled = image::open(&tiled_out).unwrap().to_rgba8();
    assert_eq!(tiled.dimensions(), (32, 32));
    assert_ne!(plain, tiled, "same seed, other padding, other pixels");
    let _ = std::fs::remove_dir_all(&dir);
}
