//! The `pixelgen` binary as a user runs it: generate and pack on the tiny random SDXL fixture
//! (CPU, well under a second per sprite), models and doctor, and the errors of bad input.
//! (`pixelize.rs` covers the command of the lean build.)

#![cfg(feature = "sdxl")]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{BIN, fails, ok, pixelgen, tmp_dir};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pixelgen-diffusion/tests/fixtures/tiny-sdxl")
}

#[test]
fn generate_writes_the_png_and_its_recipe_on_the_tiny_model() {
    let dir = tmp_dir("generate");
    let model = tiny();
    let args = [
        "generate",
        "a red potion",
        "-o",
        "out/potion.png",
        "--model",
        model.to_str().unwrap(),
        "--device",
        "cpu",
        "--size",
        "12x10",
        "--generation-size",
        "32",
        "--steps",
        "2",
        "--seed",
        "5",
        "--colors",
        "4",
    ];
    let stdout = ok(&pixelgen(&dir, &args));
    assert!(
        stdout.contains("wrote out/potion.png (12x10, seed 5"),
        "{stdout}"
    );
    let img = image::open(dir.join("out/potion.png")).unwrap().to_rgba8();
    assert_eq!(img.dimensions(), (12, 10));
    let recipe = std::fs::read_to_string(dir.join("out/potion.pixelgen.ron")).unwrap();
    let recipe = pixelgen::Recipe::from_ron(&recipe).unwrap();
    assert_eq!(recipe.prompt, "a red potion");
    assert_eq!(recipe.seed, pixelgen::Seed::Fixed(5));
    assert_eq!(recipe.steps, Some(2));
    // The recipe regenerates the same pixels (flags override it: here, the output only).
    ok(&pixelgen(
        &dir,
        &[
            "generate",
            "-o",
            "again/potion.png",
            "--recipe",
            "out/potion.pixelgen.ron",
            "--model",
            model.to_str().unwrap(),
            "--device",
            "cpu",
        ],
    ));
    let again = image::open(dir.join("again/potion.png"))
        .unwrap()
        .to_rgba8();
    assert_eq!(img, again, "same recipe, same pixels");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn generate_refuses_bad_input_with_one_line() {
    let dir = tmp_dir("generate-bad");
    std::fs::write(dir.join("file"), b"x").unwrap();
    let model = tiny();
    let m = model.to_str().unwrap();
    // An unknown model: one line naming the registry's models.
    let err = fails(
        &pixelgen(
            &dir,
            &["generate", "x", "-o", "o.png", "--model", "no-such-model"],
        ),
        "unknown model `no-such-model`",
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("pixel-art-fast"), "{err}");
    // An unwritable output (its folder is a file), refused before the model loads.
    fails(
        &pixelgen(&dir, &["generate", "x", "-o", "file/o.png", "--model", m]),
        "is not a folder",
    );
    fails(
        &pixelgen(&dir, &["generate", "x", "-o", "o.gif", "--model", m]),
        "supported: .png",
    );
    // A registry model that is not downloaded (empty hub cache, no network).
    fails(
        &pixelgen(
            &dir,
            &[
                "generate",
                "x",
                "-o",
                "o.png",
                "--model",
                "sdxl-turbo",
                "--device",
                "cpu",
            ],
        ),
        "sdxl-turbo",
    );
    fails(
        &pixelgen(&dir, &["generate", "-o", "o.png", "--model", m]),
        "no prompt",
    );
    fails(
        &pixelgen(
            &dir,
            &[
                "generate",
                "x",
                "-o",
                "o.png",
                "--model",
                m,
                "--animate",
                "dance",
            ],
        ),
        "unknown action `dance`",
    );
    assert!(!dir.join("o.png").exists());
    std::fs::remove_dir_all(dir).ok();
}

/// A manifest of four sprites on the tiny model, RON.
fn manifest(sword: &str) -> String {
    format!(
        r#"// A small asset pack.
(
    assets: "assets",
    model: "{}",
    defaults: (
        size: (width: 12, height: 12),
        generation_size: (width: 32, height: 32),
        steps: 2,
    ),
    items: [
        (name: "items/potion", prompt: "red potion"),
        (name: "items/sword", prompt: "{sword}", seed: fixed(7)),
        (name: "items/shield", prompt: "round shield", size: (width: 10, height: 10)),
        (name: "heroes/knight", prompt: "knight", steps: 3),
    ],
)
"#,
        tiny().display()
    )
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn pack_makes_what_is_missing_then_skips_it_and_remakes_only_what_changed() {
    let dir = tmp_dir("pack");
    std::fs::write(dir.join("game.pack.ron"), manifest("steel sword")).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["pack", "game.pack.ron", "--device", "cpu"];
        args.extend_from_slice(extra);
        pixelgen(&dir, &args)
    };
    let dry = ok(&run(&["--dry-run"]));
    assert!(dry.contains("items/potion: missing"), "{dry}");
    assert!(dry.contains("4 items: 0 up to date, 4 to make"), "{dry}");
    assert!(!dir.join("assets").exists(), "a dry run makes nothing");

    let first = ok(&run(&["--jobs", "2"]));
    assert!(first.contains("4 items: 0 up to date, 4 made"), "{first}");
    for (name, side) in [
        ("items/potion", 12),
        ("items/sword", 12),
        ("items/shield", 10),
        ("heroes/knight", 12),
    ] {
        let png = dir.join(format!("assets/{name}.png"));
        assert_eq!(image::open(&png).unwrap().width(), side, "{name}");
        assert!(dir.join(format!("assets/{name}.pixelgen.ron")).is_file());
    }
    let potion = dir.join("assets/items/potion.png");
    let before = mtime(&potion);

    let again = ok(&run(&[]));
    assert!(again.contains("4 items: 4 up to date, 0 made"), "{again}");
    let dry = ok(&run(&["--dry-run"]));
    assert!(dry.contains("items/sword: up to date"), "{dry}");

    // One item changes: only it is made again, and the dry run names the field.
    std::fs::write(dir.join("game.pack.ron"), manifest("iron sword")).unwrap();
    let dry = ok(&run(&["--dry-run"]));
    assert!(dry.contains("items/sword: changed: prompt"), "{dry}");
    assert!(dry.contains("items/potion: up to date"), "{dry}");
    let third = ok(&run(&[]));
    assert!(third.contains("4 items: 3 up to date, 1 made"), "{third}");
    assert_eq!(
        mtime(&potion),
        before,
        "an up-to-date item is not rewritten"
    );
    let sword = std::fs::read_to_string(dir.join("assets/items/sword.pixelgen.ron")).unwrap();
    assert!(sword.contains("iron sword"), "{sword}");

    // A lost PNG (a crash before its write) comes back from the disk cache.
    std::fs::remove_file(&potion).unwrap();
    let fourth = ok(&run(&[]));
    assert!(fourth.contains("1 from the cache"), "{fourth}");
    assert!(potion.is_file());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn pack_reads_toml_manifests_too() {
    let dir = tmp_dir("pack-toml");
    let toml = format!(
        "assets = \"out\"\nmodel = '{}'\n\n[defaults]\nsize = {{ width = 8, height = 8 }}\n\
         generation_size = {{ width = 32, height = 32 }}\nsteps = 2\n\n\
         [[items]]\nname = \"a\"\nprompt = \"red potion\"\n\n\
         [[items]]\nname = \"b/c\"\nprompt = \"sword\"\nseed = {{ fixed = 3 }}\n",
        tiny().display()
    );
    std::fs::write(dir.join("pack.toml"), toml).unwrap();
    let out = ok(&pixelgen(&dir, &["pack", "pack.toml", "--device", "cpu"]));
    assert!(out.contains("2 items: 0 up to date, 2 made"), "{out}");
    assert_eq!(image::open(dir.join("out/b/c.png")).unwrap().width(), 8);
    let sidecar = std::fs::read_to_string(dir.join("out/b/c.pixelgen.ron")).unwrap();
    assert!(sidecar.contains("fixed(3)"), "{sidecar}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_bad_manifest_line_is_named_with_its_line_number() {
    let dir = tmp_dir("pack-bad");
    let cases: [(&str, String, &str); 5] = [
        (
            "a.ron",
            manifest("sword").replace("steps: 3)", "stepz: 3)"),
            "a.ron:14:",
        ),
        (
            "b.ron",
            manifest("sword").replace("seed: fixed(7)", "seed: fixd(7)"),
            "b.ron:12:",
        ),
        (
            "c.toml",
            "[[items]]\nname = \"x\"\nprompt = 5\n".into(),
            "c.toml:3:",
        ),
        (
            "d.toml",
            "[defaults]\nsteps = 2\n\n[[items]]\nname = \"x\"\nprompt = \"a\"\nbogus = 1\n".into(),
            "d.toml:7:",
        ),
        // A semantic error: the item's line.
        (
            "e.ron",
            manifest("sword").replace("steps: 3)", "steps: 3, size: (width: 0, height: 8))"),
            "e.ron:14: item `heroes/knight`",
        ),
    ];
    for (name, text, expected) in cases {
        std::fs::write(dir.join(name), text).unwrap();
        let err = fails(&pixelgen(&dir, &["pack", name, "--dry-run"]), expected);
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    fails(
        &pixelgen(&dir, &["pack", "missing.ron"]),
        "cannot read manifest",
    );
    std::fs::write(
        dir.join("dup.ron"),
        "(items: [(name: \"a\", prompt: \"x\"), (name: \"a\", prompt: \"y\")])",
    )
    .unwrap();
    fails(
        &pixelgen(
            &dir,
            &["pack", "dup.ron", "--model", tiny().to_str().unwrap()],
        ),
        "the same file",
    );
    std::fs::write(
        dir.join("esc.ron"),
        "(items: [(name: \"../x\", prompt: \"x\")])",
    )
    .unwrap();
    fails(
        &pixelgen(&dir, &["pack", "esc.ron"]),
        "inside the assets folder",
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn models_list_and_an_offline_fetch() {
    let dir = tmp_dir("models");
    let list = ok(&pixelgen(&dir, &["models", "list"]));
    for name in ["pixel-art", "pixel-art-fast", "sdxl-turbo"] {
        assert!(list.contains(name), "{list}");
    }
    assert!(list.contains("not downloaded"), "{list}");
    // No network (a closed local port as the endpoint): a clear error, nothing half-written.
    let err = fails(
        &pixelgen(&dir, &["models", "fetch", "sdxl-turbo"]),
        "stabilityai/sdxl-turbo",
    );
    assert!(!err.contains("panicked"), "{err}");
    fails(
        &pixelgen(&dir, &["models", "fetch", "nope"]),
        "`nope` is not in the model registry",
    );
    let doctor = ok(&pixelgen(&dir, &["doctor"]));
    assert!(doctor.contains("features [sdxl"), "{doctor}");
    assert!(
        doctor.contains("model sdxl-turbo: not downloaded"),
        "{doctor}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn every_command_has_a_manual_page() {
    let dir = tmp_dir("help");
    for cmd in ["pixelize", "generate", "pack", "models", "doctor"] {
        let help = ok(&pixelgen(&dir, &[cmd, "--help"]));
        assert!(help.len() > 300, "{cmd}: {help}");
    }
    let pack = ok(&pixelgen(&dir, &["pack", "--help"]));
    assert!(
        pack.contains("--dry-run") && pack.contains("Ctrl-C"),
        "{pack}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn generate_maps_animation_and_tileset_flags_to_sets_and_tilesets() {
    let dir = tmp_dir("generate-sets");
    let model = tiny();
    let common = [
        "--model",
        model.to_str().unwrap(),
        "--device",
        "cpu",
        "--size",
        "8",
        "--generation-size",
        "32",
        "--steps",
        "2",
        "--seed",
        "3",
    ];
    let mut anim = vec![
        "generate",
        "knight",
        "-o",
        "out/knight_idle.png",
        "--animate",
        "idle",
    ];
    anim.extend_from_slice(&common);
    let stdout = ok(&pixelgen(&dir, &anim));
    assert!(stdout.contains("out/knight_idle.json"), "{stdout}");
    let recipe = std::fs::read_to_string(dir.join("out/knight_idle.pixelgen.ron")).unwrap();
    assert!(recipe.contains("idle"), "{recipe}");
    let json = std::fs::read_to_string(dir.join("out/knight_idle.json")).unwrap();
    assert!(
        json.contains("frameTags") || json.contains("frames"),
        "{json}"
    );

    let mut tiles = vec![
        "generate",
        "top-down tile",
        "-o",
        "out/ground.png",
        "--tileset",
        "wang",
        "--terrains",
        "grass,water",
    ];
    tiles.extend_from_slice(&common);
    let run = pixelgen(&dir, &tiles);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    let stdout = ok(&run);
    assert!(stdout.contains("out/ground.tsx"), "{stdout}");
    // The seam report is said: on stdout when every edge passes, as a warning otherwise.
    assert!(
        stdout.contains("edges within") || stderr.contains("warning: seams:"),
        "{stdout}\n{stderr}"
    );
    assert!(dir.join("out/ground.tiles.json").is_file());
    let atlas = image::open(dir.join("out/ground.png")).unwrap();
    assert_eq!(atlas.width(), 4 * 8, "four 8-px tiles a row");
    fails(
        &pixelgen(
            &dir,
            &[
                "generate",
                "t",
                "-o",
                "o.png",
                "--model",
                "x",
                "--tileset",
                "wang",
            ],
        ),
        "--tileset needs --terrains",
    );
    std::fs::remove_dir_all(dir).ok();
}

/// A pack killed mid-run (SIGKILL: a crash) leaves only whole files; the next run makes the
/// rest and the folder holds exactly one PNG and one recipe per item.
#[test]
fn a_killed_pack_resumes_and_leaves_no_half_written_file() {
    let dir = tmp_dir("pack-kill");
    let items: String = (0..16)
        .map(|i| format!("        (name: \"s{i:02}\", prompt: \"sprite number {i}\"),\n"))
        .collect();
    let text = format!(
        "(\n    assets: \"a\",\n    model: \"{}\",\n    defaults: (size: (width: 8, height: 8), \
         generation_size: (width: 32, height: 32), steps: 3),\n    items: [\n{items}    ],\n)\n",
        tiny().display()
    );
    std::fs::write(dir.join("p.ron"), text).unwrap();
    let mut child = Command::new(BIN)
        .current_dir(&dir)
        .args(["pack", "p.ron", "--device", "cpu"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    child.kill().ok();
    child.wait().unwrap();
    // Whatever is there is whole: every PNG decodes and has its recipe beside it.
    if let Ok(entries) = std::fs::read_dir(dir.join("a")) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "png") {
                image::open(&p).unwrap();
                assert!(
                    p.with_extension("pixelgen.ron").is_file(),
                    "{}",
                    p.display()
                );
            }
        }
    }
    let out = ok(&pixelgen(&dir, &["pack", "p.ron", "--device", "cpu"]));
    assert!(
        out.contains("16 items:") && out.contains("0 failed"),
        "{out}"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.join("a"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..16)
        .flat_map(|i| [format!("s{i:02}.pixelgen.ron"), format!("s{i:02}.png")])
        .collect();
    want.sort();
    assert_eq!(names, want, "no temporary or partial file left");
    let again = ok(&pixelgen(&dir, &["pack", "p.ron", "--device", "cpu"]));
    assert!(again.contains("16 items: 16 up to date"), "{again}");
    std::fs::remove_dir_all(dir).ok();
}
