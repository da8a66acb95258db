//! Behaviour of background removal, outline, stray removal, trim/fit and seam scores on
//! images built here with known answers.

use image::{Rgba, RgbaImage};
use pixelgen_pixel::PixelError;
use pixelgen_pixel::alpha::{BackgroundOptions, KeyMode, binarize_alpha, remove_background};
use pixelgen_pixel::cleanup::{
    Anchor, Connectivity, OutlineOptions, OutlinePlacement, Rect, fit_canvas, outline,
    remove_strays, trim,
};
use pixelgen_pixel::color::Oklab;
use pixelgen_pixel::tile::{DEFAULT_SEAM_THRESHOLD, is_tileable, seam_score};

const CLEAR: [u8; 4] = [0, 0, 0, 0];

/// Tiny deterministic xorshift32.
struct Rng(u32);
impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
    /// Uniform integer in `-k..=k`.
    fn pm(&mut self, k: i32) -> i32 {
        (self.next() % (2 * k as u32 + 1)) as i32 - k
    }
}

fn add(c: [u8; 3], d: [i32; 3]) -> [u8; 3] {
    [0, 1, 2].map(|k| (c[k] as i32 + d[k]).clamp(0, 255) as u8)
}

/// What a pixel of the test sprite scene is.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Part {
    /// Background connected to the border: must be removed.
    Outside,
    /// Background colour enclosed by the sprite: must be kept.
    Hole,
    /// Sprite pixel of this colour: must be kept.
    Sprite([u8; 3]),
}

/// A 32x32 scene: a 14x14 dark-red ring (hole 6x6 inside), a white 1-px "eye" in the ring's
/// wall, and a dark-red stick from the ring up to the top border (the sprite touches the
/// border, which must not make it background).
fn scene(x: u32, y: u32) -> Part {
    let red = [120, 30, 30];
    let ring = (9..23).contains(&x) && (9..23).contains(&y);
    let hole = (13..19).contains(&x) && (13..19).contains(&y);
    let stick = (15..17).contains(&x) && y < 9;
    if x == 10 && y == 15 {
        Part::Sprite([250, 250, 250])
    } else if hole {
        Part::Hole
    } else if ring || stick {
        Part::Sprite(red)
    } else {
        Part::Outside
    }
}

/// Builds the scene with a background colour function and checks `remove_background`
/// removes exactly the `Outside` pixels, keeps every other pixel unchanged, and leaves
/// binary alpha.
fn check_scene(bg: impl Fn(u32, u32) -> [u8; 3], opts: &BackgroundOptions) {
    let img = RgbaImage::from_fn(32, 32, |x, y| match scene(x, y) {
        Part::Outside | Part::Hole => {
            let [r, g, b] = bg(x, y);
            Rgba([r, g, b, 255])
        }
        Part::Sprite([r, g, b]) => Rgba([r, g, b, 255]),
    });
    let (out, report) = remove_background(&img, opts).expect("remove");
    let mut outside = 0;
    for (x, y, p) in out.enumerate_pixels() {
        match scene(x, y) {
            Part::Outside => {
                assert_eq!(p.0, CLEAR, "({x},{y}) is border-connected background");
                outside += 1;
            }
            _ => assert_eq!(p.0, img.get_pixel(x, y).0, "({x},{y}) must be kept"),
        }
        assert!(p.0[3] == 0 || p.0[3] == 255);
    }
    assert_eq!(report.removed, outside);
    assert_eq!(report.kept, 32 * 32 - outside);
    assert!(report.foreground_found);
}

#[test]
fn flat_background_removed_hole_and_eye_kept() {
    let bg = [70, 140, 200];
    check_scene(|_, _| bg, &BackgroundOptions::default());
}

#[test]
fn noisy_near_flat_background_removed() {
    for (seed, bg) in [
        (1u32, [70u8, 140, 200]),
        (7, [235, 235, 235]),
        (99, [40, 40, 40]),
    ] {
        let noise: Vec<[i32; 3]> = {
            let mut rng = Rng(seed);
            (0..32 * 32)
                .map(|_| [rng.pm(4), rng.pm(4), rng.pm(4)])
                .collect()
        };
        check_scene(
            |x, y| add(bg, noise[(y * 32 + x) as usize]),
            &BackgroundOptions::default(),
        );
    }
}

#[test]
fn slight_gradient_background_removed() {
    // 24 levels across the diagonal, plus +-2 noise.
    let noise: Vec<[i32; 3]> = {
        let mut rng = Rng(42);
        (0..32 * 32)
            .map(|_| [rng.pm(2), rng.pm(2), rng.pm(2)])
            .collect()
    };
    check_scene(
        |x, y| {
            let g = ((x + y) * 24 / 62) as i32;
            add(
                add([190, 205, 215], [g, g, g]),
                noise[(y * 32 + x) as usize],
            )
        },
        &BackgroundOptions::default(),
    );
}

#[test]
fn drift_cap_stops_fill_on_a_soft_ramp_into_the_sprite() {
    // Row 8 is a ramp starting at the background colour (left border) and walking in small
    // steps towards dark blue; every step is below `step_tolerance`, so only the drift cap
    // (`tolerance` from the background colour) can stop the fill.
    let bg = [220u8, 220, 220];
    let (w, h) = (40u32, 16u32);
    let ramp = |x: u32| -> [u8; 3] {
        let t = x as f32 / (w - 1) as f32;
        let lerp = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * t).round() as u8;
        [lerp(220, 20), lerp(220, 30), lerp(220, 120)]
    };
    let img = RgbaImage::from_fn(w, h, |x, y| {
        let [r, g, b] = if y == 8 { ramp(x) } else { bg };
        Rgba([r, g, b, 255])
    });
    let opts = BackgroundOptions::default();
    let bg_lab = Oklab::from_srgb(bg);
    for x in 1..w {
        let step = Oklab::from_srgb(ramp(x)).dist(Oklab::from_srgb(ramp(x - 1)));
        assert!(
            step < opts.step_tolerance,
            "premise: steps are small ({step})"
        );
    }
    let (out, report) = remove_background(&img, &opts).expect("remove");
    assert_eq!(report.background, Some(bg));
    let mut kept_ramp = 0;
    for x in 0..w {
        let within = Oklab::from_srgb(ramp(x)).dist(bg_lab) <= opts.tolerance;
        let p = out.get_pixel(x, 8).0;
        if within {
            assert_eq!(p, CLEAR, "ramp pixel {x} is within the tolerance");
        } else {
            assert_eq!(p[3], 255, "ramp pixel {x} is beyond the drift cap: kept");
            kept_ramp += 1;
        }
    }
    assert!(kept_ramp > 20 && kept_ramp < w, "{kept_ramp}");
    // Without the cap the local test alone would eat the whole ramp.
    let loose = BackgroundOptions {
        tolerance: 2.0,
        ..opts
    };
    let (out, report) = remove_background(&img, &loose).expect("remove");
    assert!(!report.foreground_found);
    assert_eq!(out, img, "nothing would be left, so nothing is erased");
}

#[test]
fn magenta_key_everywhere_and_border_connected() {
    let key = [255u8, 0, 255];
    // The ring's hole is magenta too (a keyed hole inside the sprite), with +-4 noise.
    let mut rng = Rng(5);
    let noise: Vec<[i32; 3]> = (0..32 * 32)
        .map(|_| [rng.pm(4), rng.pm(4), rng.pm(4)])
        .collect();
    let img = RgbaImage::from_fn(32, 32, |x, y| match scene(x, y) {
        Part::Outside | Part::Hole => {
            let [r, g, b] = add(key, noise[(y * 32 + x) as usize]);
            Rgba([r, g, b, 255])
        }
        Part::Sprite([r, g, b]) => Rgba([r, g, b, 255]),
    });
    for mode in [KeyMode::Everywhere, KeyMode::BorderConnected] {
        let opts = BackgroundOptions {
            key: Some(key),
            key_mode: mode,
            ..Default::default()
        };
        let (out, report) = remove_background(&img, &opts).expect("remove");
        assert_eq!(report.background, Some(key));
        for (x, y, p) in out.enumerate_pixels() {
            let removed = match scene(x, y) {
                Part::Outside => true,
                Part::Hole => mode == KeyMode::Everywhere,
                Part::Sprite(_) => false,
            };
            if removed {
                assert_eq!(p.0, CLEAR, "{mode:?} ({x},{y})");
            } else {
                assert_eq!(p.0, img.get_pixel(x, y).0, "{mode:?} ({x},{y})");
            }
        }
    }
}

#[test]
fn already_transparent_border_is_only_binarised() {
    let img = RgbaImage::from_fn(8, 8, |x, y| {
        if (2..6).contains(&x) && (2..6).contains(&y) {
            // Soft alpha at the sprite's left column.
            Rgba([200, 100, 50, if x == 2 { 100 } else { 220 }])
        } else {
            Rgba([255, 255, 255, 0])
        }
    });
    let (out, report) = remove_background(&img, &BackgroundOptions::default()).expect("ok");
    assert_eq!(report.background, None);
    assert_eq!(report.removed, 0);
    let mut expect = img.clone();
    binarize_alpha(&mut expect, 128);
    assert_eq!(out, expect);
    assert_eq!(out.get_pixel(2, 3).0, CLEAR);
    assert_eq!(out.get_pixel(3, 3).0, [200, 100, 50, 255]);
    assert_eq!(out.get_pixel(0, 0).0, CLEAR);
}

#[test]
fn uniform_image_is_not_erased() {
    let img = RgbaImage::from_pixel(8, 8, Rgba([90, 90, 90, 255]));
    let (out, report) = remove_background(&img, &BackgroundOptions::default()).expect("ok");
    assert_eq!(out, img);
    assert!(!report.foreground_found);
    assert_eq!(report.removed, 0);
    assert_eq!(report.background, Some([90, 90, 90]));
    let magenta = RgbaImage::from_pixel(8, 8, Rgba([255, 0, 255, 255]));
    let opts = BackgroundOptions {
        key: Some([255, 0, 255]),
        ..Default::default()
    };
    let (out, report) = remove_background(&magenta, &opts).expect("ok");
    assert_eq!(out, magenta);
    assert!(!report.foreground_found);
}

#[test]
fn bad_inputs_do_not_panic() {
    let opts = BackgroundOptions::default();
    let outline_opts = OutlineOptions {
        grow_canvas: true,
        ..Default::default()
    };
    let tall = RgbaImage::from_fn(1, 4000, |_, y| Rgba([(y % 7 * 30) as u8, 9, 9, 255]));
    let wide = RgbaImage::from_fn(4000, 1, |x, _| Rgba([(x % 5 * 40) as u8, 9, 9, 255]));
    let inputs = [
        RgbaImage::new(1, 1),
        RgbaImage::from_pixel(1, 1, Rgba([3, 4, 5, 255])),
        RgbaImage::new(16, 16),
        tall,
        wide,
    ];
    for img in &inputs {
        let (w, h) = img.dimensions();
        let (out, _) = remove_background(img, &opts).expect("non-empty works");
        assert_eq!(out.dimensions(), (w, h));
        for mode in [KeyMode::Everywhere, KeyMode::BorderConnected] {
            let o = BackgroundOptions {
                key: Some([9, 9, 9]),
                key_mode: mode,
                ..opts.clone()
            };
            remove_background(img, &o).expect("keyed");
        }
        assert_eq!(outline(img, &outline_opts).dimensions(), (w + 2, h + 2));
        assert_eq!(
            remove_strays(img, Connectivity::Four).0.dimensions(),
            (w, h)
        );
        let _ = trim(img);
        let _ = fit_canvas(img, 2, 2, Anchor::Center);
        let s = seam_score(img).expect("score");
        assert!(s.combined.is_finite() && s.combined >= 0.0, "{s:?}");
    }
    // Fully transparent: nothing to trim; fit gives a transparent canvas.
    let clear = RgbaImage::new(16, 16);
    assert!(trim(&clear).is_none());
    assert_eq!(
        fit_canvas(&clear, 4, 4, Anchor::Center).expect("ok"),
        RgbaImage::new(4, 4)
    );
    let (out, report) = remove_background(&clear, &opts).expect("ok");
    assert_eq!(out, clear);
    assert!(!report.foreground_found);
    // Empty images: a clear error (or a no-op where the function cannot fail).
    let empty = RgbaImage::new(0, 0);
    assert!(matches!(
        remove_background(&empty, &opts),
        Err(PixelError::EmptyImage { .. })
    ));
    assert!(matches!(
        seam_score(&empty),
        Err(PixelError::EmptyImage { .. })
    ));
    assert!(matches!(
        fit_canvas(&empty, 4, 4, Anchor::Center),
        Err(PixelError::EmptyImage { .. })
    ));
    assert_eq!(outline(&empty, &outline_opts).dimensions(), (0, 0));
    assert_eq!(
        remove_strays(&empty, Connectivity::Eight),
        (empty.clone(), 0)
    );
    assert!(trim(&empty).is_none());
    let mut e = empty.clone();
    binarize_alpha(&mut e, 128);
}

// ---------------------------------------------------------------- outline

/// Builds an image from text rows: `#` sprite (red), `.` transparent.
fn shape(rows: &[&str]) -> RgbaImage {
    RgbaImage::from_fn(rows[0].len() as u32, rows.len() as u32, |x, y| {
        match rows[y as usize].as_bytes()[x as usize] {
            b'#' => Rgba([200, 40, 40, 255]),
            _ => Rgba(CLEAR),
        }
    })
}

/// Renders an outlined image back to text: `o` outline colour, `#` sprite, `.` transparent.
fn render(img: &RgbaImage, outline_color: [u8; 4]) -> Vec<String> {
    (0..img.height())
        .map(|y| {
            (0..img.width())
                .map(|x| {
                    let p = img.get_pixel(x, y).0;
                    if p == outline_color {
                        'o'
                    } else if p == CLEAR {
                        '.'
                    } else if p == [200, 40, 40, 255] {
                        '#'
                    } else {
                        '?'
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn outer_outline_four_and_eight() {
    let img = shape(&[
        ".......", ".......", "..##...", "..###..", ".......", ".......",
    ]);
    let color = [10, 20, 30, 255];
    let four = OutlineOptions {
        color,
        connectivity: Connectivity::Four,
        ..Default::default()
    };
    assert_eq!(
        render(&outline(&img, &four), color),
        [
            ".......", "..oo...", ".o##o..", ".o###o.", "..ooo..", "......."
        ]
    );
    let eight = OutlineOptions {
        connectivity: Connectivity::Eight,
        ..four
    };
    assert_eq!(
        render(&outline(&img, &eight), color),
        [
            ".......", ".oooo..", ".o##oo.", ".o###o.", ".ooooo.", "......."
        ]
    );
}

#[test]
fn inner_outline_four_and_eight() {
    let img = shape(&[
        ".......", ".####..", ".####..", ".#####.", ".####..", ".......",
    ]);
    let color = [1, 2, 3, 255];
    let four = OutlineOptions {
        color,
        connectivity: Connectivity::Four,
        placement: OutlinePlacement::Inner,
        grow_canvas: true, // ignored for inner outlines
    };
    let out = outline(&img, &four);
    assert_eq!(out.dimensions(), (7, 6));
    assert_eq!(
        render(&out, color),
        [
            ".......", ".oooo..", ".o##o..", ".o###o.", ".oooo..", "......."
        ]
    );
    let eight = OutlineOptions {
        connectivity: Connectivity::Eight,
        ..four
    };
    assert_eq!(
        render(&outline(&img, &eight), color),
        [
            ".......", ".oooo..", ".o##o..", ".o##oo.", ".oooo..", "......."
        ]
    );
}

#[test]
fn outline_at_canvas_edge_with_and_without_growing() {
    let full = shape(&["###", "###", "###"]);
    let color = [0, 0, 0, 255];
    // Inner: outside the canvas counts as transparent, so the edge pixels are outlined.
    let inner = OutlineOptions {
        color,
        connectivity: Connectivity::Four,
        placement: OutlinePlacement::Inner,
        grow_canvas: false,
    };
    assert_eq!(
        render(&outline(&full, &inner), color),
        ["ooo", "o#o", "ooo"]
    );
    // Outer without growing: no transparent pixel to draw on, unchanged.
    let outer = OutlineOptions {
        placement: OutlinePlacement::Outer,
        ..inner.clone()
    };
    assert_eq!(outline(&full, &outer), full);
    // Outer growing the canvas: a complete ring around the 3x3 block.
    let grown = OutlineOptions {
        grow_canvas: true,
        connectivity: Connectivity::Eight,
        ..outer
    };
    assert_eq!(
        render(&outline(&full, &grown), color),
        ["ooooo", "o###o", "o###o", "o###o", "ooooo"]
    );
}

// ---------------------------------------------------------------- strays

const SKIN: [u8; 4] = [230, 180, 150, 255];
const DARK: [u8; 4] = [20, 20, 20, 255];

fn paint(rows: &[&str]) -> RgbaImage {
    RgbaImage::from_fn(rows[0].len() as u32, rows.len() as u32, |x, y| {
        Rgba(match rows[y as usize].as_bytes()[x as usize] {
            b's' => SKIN,
            b'k' => DARK,
            b'n' => [210, 170, 140, 255], // a low-contrast speck of skin noise
            b'r' => [200, 30, 30, 255],
            _ => CLEAR,
        })
    })
}

#[test]
fn strays_removed_details_and_outlines_kept() {
    // A face: 1-px dark outline (with diagonal corners), skin inside, a 1-px eye (dark,
    // high contrast: kept), a low-contrast skin speck (noise: becomes skin), a red pixel
    // floating in transparency (removed).
    let img = paint(&[
        "...........",
        "...kkkkk...",
        "..ksssssk..",
        ".ksssssssk.",
        ".ksskssnsk.",
        ".ksssssssk.",
        "..ksssssk..",
        "...kkkkk...",
        "...........",
        "........r..",
    ]);
    let (out, changed) = remove_strays(&img, Connectivity::Eight);
    assert_eq!(changed, 2);
    let mut expect = img.clone();
    expect.put_pixel(7, 4, Rgba(SKIN));
    expect.put_pixel(8, 9, Rgba(CLEAR));
    assert_eq!(out, expect);
    assert_eq!(out.get_pixel(4, 4).0, DARK, "the 1-px eye is a detail");
}

#[test]
fn pixel_sticking_out_into_transparency_is_removed() {
    // A single red pixel attached to the corner of a skin block: its neighbours are mostly
    // transparent, so it goes; the block itself is untouched.
    let img = paint(&["......", ".sss..", ".sss..", ".sssr.", "......"]);
    let (out, changed) = remove_strays(&img, Connectivity::Eight);
    assert_eq!(changed, 1);
    assert_eq!(out.get_pixel(4, 3).0, CLEAR);
    let mut expect = img.clone();
    expect.put_pixel(4, 3, Rgba(CLEAR));
    assert_eq!(out, expect);
}

#[test]
fn diagonal_outline_survives_eight_connectivity_only() {
    // A diamond outlined with a 4-connectivity outer outline: the outline is a 1-px diagonal
    // staircase whose pixels touch each other only diagonally.
    let r = 4i32;
    let img = RgbaImage::from_fn(11, 11, |x, y| {
        let d = (x as i32 - 5).abs() + (y as i32 - 5).abs();
        Rgba(if d <= r { SKIN } else { CLEAR })
    });
    let opts = OutlineOptions {
        color: DARK,
        connectivity: Connectivity::Four,
        ..Default::default()
    };
    let outlined = outline(&img, &opts);
    let n_outline = outlined.pixels().filter(|p| p.0 == DARK).count();
    assert_eq!(n_outline, 4 * (r as usize + 1));
    let (out, changed) = remove_strays(&outlined, Connectivity::Eight);
    assert_eq!((changed, &out), (0, &outlined));
    // With 4-connectivity the diagonal pixels have no same-colour 4-neighbour: documented
    // reason to use Eight for pixel art.
    let (_, changed4) = remove_strays(&outlined, Connectivity::Four);
    assert!(changed4 > 0);
}

// ---------------------------------------------------------------- trim / fit

#[test]
fn trim_and_fit_place_content_exactly() {
    let mut img = RgbaImage::new(10, 8);
    // 3x2 content at (5, 4), each pixel distinct.
    for (i, (x, y)) in [(5, 4), (6, 4), (7, 4), (5, 5), (6, 5), (7, 5)]
        .into_iter()
        .enumerate()
    {
        img.put_pixel(x, y, Rgba([10 * i as u8 + 10, 0, 0, 255]));
    }
    let (t, r) = trim(&img).expect("content");
    assert_eq!(
        r,
        Rect {
            x: 5,
            y: 4,
            width: 3,
            height: 2
        }
    );
    assert_eq!(t.dimensions(), (3, 2));
    assert_eq!(t.get_pixel(0, 0).0, [10, 0, 0, 255]);
    assert_eq!(t.get_pixel(2, 1).0, [60, 0, 0, 255]);
    for (anchor, (ox, oy)) in [
        (Anchor::Center, (2, 3)),
        (Anchor::BottomCenter, (2, 6)),
        (Anchor::TopLeft, (0, 0)),
    ] {
        let c = fit_canvas(&img, 8, 8, anchor).expect("fits");
        assert_eq!(c.dimensions(), (8, 8));
        for (x, y, p) in c.enumerate_pixels() {
            let inside = (ox..ox + 3).contains(&x) && (oy..oy + 2).contains(&y);
            let want = if inside {
                t.get_pixel(x - ox, y - oy).0
            } else {
                CLEAR
            };
            assert_eq!(p.0, want, "{anchor:?} ({x},{y})");
        }
    }
}

#[test]
fn fit_rejects_content_larger_than_canvas() {
    let img = RgbaImage::from_pixel(5, 3, Rgba([1, 2, 3, 255]));
    let err = fit_canvas(&img, 4, 8, Anchor::Center).expect_err("too wide");
    let msg = err.to_string();
    assert!(matches!(err, PixelError::InvalidOption { .. }));
    assert!(msg.contains("5x3") && msg.contains("4x8"), "{msg}");
    assert!(
        fit_canvas(&img, 5, 3, Anchor::BottomCenter).is_ok(),
        "exact fit is fine"
    );
    assert!(fit_canvas(&img, 0, 3, Anchor::Center).is_err());
}

// ---------------------------------------------------------------- seams

/// Periodic value noise: random colours on a lattice of `cell` px that wraps every
/// `cells` lattice points, bilinearly interpolated; period `cell * cells` px.
fn value_noise(w: u32, h: u32, cell: u32, cells: u32, seed: u32) -> RgbaImage {
    let mut rng = Rng(seed);
    let lattice: Vec<[f32; 3]> = (0..cells * cells)
        .map(|_| [0, 1, 2].map(|_| (rng.next() % 256) as f32))
        .collect();
    let at = |i: u32, j: u32| lattice[((j % cells) * cells + (i % cells)) as usize];
    RgbaImage::from_fn(w, h, |x, y| {
        let (i, j) = (x / cell, y / cell);
        let (fx, fy) = (
            (x % cell) as f32 / cell as f32,
            (y % cell) as f32 / cell as f32,
        );
        let c = [0, 1, 2].map(|k| {
            let top = at(i, j)[k] * (1.0 - fx) + at(i + 1, j)[k] * fx;
            let bot = at(i, j + 1)[k] * (1.0 - fx) + at(i + 1, j + 1)[k] * fx;
            (top * (1.0 - fy) + bot * fy).round() as u8
        });
        Rgba([c[0], c[1], c[2], 255])
    })
}

#[test]
fn periodic_texture_is_tileable_and_half_period_crop_is_not() {
    // Smooth: one full period (8 cells of 8 px) in a 64x64 image.
    let tile = value_noise(64, 64, 8, 8, 11);
    let s = seam_score(&tile).expect("score");
    assert!(s.combined < DEFAULT_SEAM_THRESHOLD, "{s:?}");
    assert!(is_tileable(&tile, DEFAULT_SEAM_THRESHOLD).expect("ok"));
    // The same texture over 1.5 periods: the wrap joins x = 95 (phase 31) to x = 0, half a
    // period apart, so the seam is a jump between unrelated values.
    let broken = value_noise(96, 96, 8, 8, 11);
    let b = seam_score(&broken).expect("score");
    assert!(b.horizontal > 2.0 * DEFAULT_SEAM_THRESHOLD, "{b:?}");
    assert!(b.vertical > 2.0 * DEFAULT_SEAM_THRESHOLD, "{b:?}");
    assert!(!is_tileable(&broken, DEFAULT_SEAM_THRESHOLD).expect("ok"));
    println!("seam: periodic {s:?}, half-period crop {b:?}");
}

#[test]
fn busy_periodic_texture_is_tileable() {
    // White noise with period 16 in a 64x64 image: busy, yet its wrap is an ordinary step.
    let mut rng = Rng(3);
    let cell: Vec<[u8; 3]> = (0..16 * 16)
        .map(|_| [0, 1, 2].map(|_| rng.next() as u8))
        .collect();
    let img = RgbaImage::from_fn(64, 64, |x, y| {
        let [r, g, b] = cell[((y % 16) * 16 + x % 16) as usize];
        Rgba([r, g, b, 255])
    });
    let s = seam_score(&img).expect("score");
    assert!(s.combined < DEFAULT_SEAM_THRESHOLD, "{s:?}");
    assert!(
        s.combined > 0.5,
        "a busy texture's seam is an ordinary step, ~1: {s:?}"
    );
}

#[test]
fn gradient_has_a_hard_horizontal_seam() {
    let img = RgbaImage::from_fn(64, 64, |x, _| {
        let v = (40 + x * 3) as u8;
        Rgba([v, v, v, 255])
    });
    let s = seam_score(&img).expect("score");
    assert!(s.horizontal > 20.0, "{s:?}");
    assert_eq!(s.vertical, 0.0, "rows are identical, top and bottom match");
    assert_eq!(s.combined, s.horizontal);
    assert!(!is_tileable(&img, DEFAULT_SEAM_THRESHOLD).expect("ok"));
}

// ---------------------------------------------------------------- speed

/// Best of `n` runs of `f`, so a loaded machine does not inflate the number.
fn best_of<T>(n: usize, mut f: impl FnMut() -> T) -> (std::time::Duration, T) {
    let mut best = std::time::Duration::MAX;
    let mut last = None;
    for _ in 0..n {
        let t = std::time::Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        last = Some(r);
    }
    (best, last.expect("n > 0"))
}

#[test]
fn big_image_timings() {
    // A noisy background with the ring sprite scaled up (1024x1024: 32x; 256x256: 8x).
    for (size, noise) in [(1024u32, 4), (1024, 0), (256, 4)] {
        let k = size / 32;
        let mut rng = Rng(77);
        let img = RgbaImage::from_fn(size, size, |x, y| match scene(x / k, y / k) {
            Part::Sprite([r, g, b]) => Rgba([r, g, b, 255]),
            _ => {
                let [r, g, b] = add(
                    [70, 140, 200],
                    [rng.pm(noise), rng.pm(noise), rng.pm(noise)],
                );
                Rgba([r, g, b, 255])
            }
        });
        let opts = BackgroundOptions::default();
        let (t_bg, (cut, report)) = best_of(5, || remove_background(&img, &opts).expect("ok"));
        assert!(report.foreground_found);
        let expected_outside = (0..size * size)
            .filter(|i| scene(i % size / k, i / size / k) == Part::Outside)
            .count();
        assert_eq!(report.removed, expected_outside);
        let (t_outline, o) = best_of(5, || outline(&cut, &OutlineOptions::default()));
        let (t_strays, _) = best_of(5, || remove_strays(&o, Connectivity::Eight));
        let (t_fit, fitted) = best_of(5, || {
            fit_canvas(&o, size, size, Anchor::Center).expect("fits")
        });
        assert_eq!(fitted.dimensions(), (size, size));
        let (t_seam, _) = best_of(5, || seam_score(&img).expect("score"));
        println!(
            "{size}x{size} noise +-{noise}: remove_background {t_bg:?}, outline {t_outline:?}, \
             remove_strays {t_strays:?}, fit_canvas {t_fit:?}, seam_score {t_seam:?}"
        );
    }
}
