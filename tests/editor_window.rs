//! Runs `examples/editor.rs` in a real window under Xvfb (scripted: preset, prompt, Generate)
//! and checks its screenshots: the panel is drawn and the generated sprite appears.
//!
//! Needs `xvfb-run` and a Vulkan driver (Mesa's lavapipe works without a GPU; `just setup`
//! installs both). Where `xvfb-run` is missing the test says so and does nothing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image::RgbaImage;

mod common;
use common::{example_bin, has_xvfb, load};

/// Pixels in the rectangle `x0..x1, y0..y1` that differ from `colour`.
fn differing(img: &RgbaImage, (x0, y0, x1, y1): (u32, u32, u32, u32), colour: [u8; 4]) -> usize {
    (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0 != colour)
        .count()
}

#[test]
fn editor_window_draws_the_panel_and_the_generated_sprite() {
    if !has_xvfb() {
        eprintln!("skipped: xvfb-run is not installed (run `just setup`)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("dgx-pixels-editor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x720x24"])
        .arg(example_bin("editor"))
        .env("PIXELGEN_EDITOR_SCRIPT", &dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start xvfb-run");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!("the editor did not finish its script in 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "editor exited with {status}");

    let empty = load(&dir.join("editor_empty.png"));
    let generated = load(&dir.join("editor_generated.png"));
    assert_eq!(empty.dimensions(), (1280, 720));
    assert_eq!(generated.dimensions(), (1280, 720));
    // The clear colour fills the scene away from the panel.
    let background = empty.get_pixel(1200, 40).0;
    assert_eq!(generated.get_pixel(1200, 40).0, background);
    // The panel (left) is drawn: it is not the clear colour and it holds text and widgets.
    assert_ne!(empty.get_pixel(200, 650).0, background, "no panel");
    let panel_bg = empty.get_pixel(200, 650).0;
    assert!(
        differing(&empty, (0, 0, 330, 400), panel_bg) > 2000,
        "the panel is blank"
    );
    // Without a model the scene says so: the demo engine's label, top right, in orange.
    let orange = (780..1275)
        .flat_map(|x| (8..34).map(move |y| (x, y)))
        .filter(|&(x, y)| {
            let [r, g, b, _] = empty.get_pixel(x, y).0;
            r > 180 && g > 120 && b < 120 && r > b + 80
        })
        .count();
    assert!(orange > 300, "no demo-engine label: {orange} label pixels");
    // The sprite appears at 8x in the scene (centre 810, 360) only after Generate.
    let scene = (700, 250, 920, 470);
    assert_eq!(
        differing(&empty, scene, background),
        0,
        "scene not empty before"
    );
    let drawn = differing(&generated, scene, background);
    assert!(
        drawn > 5000,
        "sprite missing from the scene: {drawn} pixels"
    );
    // The gallery thumbnail appears in the panel below the queue.
    let thumbs = (8, 450, 110, 560);
    assert!(
        differing(&generated, thumbs, panel_bg) > differing(&empty, thumbs, panel_bg) + 1000,
        "no gallery thumbnail"
    );
    // "Apply to selected": the script applied the result to the "Hero" target sprite (4x,
    // centre 1040, 590), which showed a grey checkerboard before.
    let hero = (1012, 562, 1068, 618);
    let greys = |img: &RgbaImage| {
        let (x0, y0, x1, y1) = hero;
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let [r, g, b, _] = img.get_pixel(x, y).0;
                r == g && g == b && (r == 0x55 || r == 0x99)
            })
            .count()
    };
    assert!(greys(&empty) > 2500, "the Hero placeholder is not drawn");
    assert!(
        greys(&generated) < 100,
        "the Hero sprite still shows its placeholder: {} grey pixels",
        greys(&generated)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
