//! Sets through the pixel pipeline together: a hand-drawn walk cycle, degraded per frame as
//! a model would (upscaled, shifted, blurred, noisy, each frame in a slightly different
//! palette and at a different place), comes out with one palette and no anchor drift.

mod common;

use common::{Degrade, Rng, render};
use image::{Rgba, RgbaImage};
use pixelgen_pixel::alpha::BackgroundOptions;
use pixelgen_pixel::cleanup;
use pixelgen_pixel::quantize::ColorCount;
use pixelgen_pixel::set::{SetAnchor, SetOptions, measure, pixelize_set};
use pixelgen_pixel::{PixelOptions, pixelize};

const HAIR: [u8; 3] = [120, 70, 30];
const SKIN: [u8; 3] = [232, 183, 150];
const SHIRT: [u8; 3] = [58, 110, 165];
const PANTS: [u8; 3] = [70, 60, 50];
const BOOTS: [u8; 3] = [24, 20, 37];
const PAPER: [u8; 3] = [240, 238, 230];

/// Frame `i` of a 4-frame walk cycle on a 16x20 sheet of paper: the walker stands at a
/// different place in each frame (as independent generations do), bobs, swings an arm and
/// strides; every colour is shifted by `tint` (each frame's own palette drift).
fn walk_frame(i: usize, tint: i32) -> RgbaImage {
    let shade = |c: [u8; 3]| {
        let t = |v: u8| (i32::from(v) + tint).clamp(0, 255) as u8;
        Rgba([t(c[0]), t(c[1]), t(c[2]), 255])
    };
    let bx = [3u32, 4, 2, 3][i];
    let by = [1u32, 0, 1, 0][i];
    let stride = [1u32, 0, 1, 0][i];
    let mut img = RgbaImage::from_pixel(16, 20, Rgba([PAPER[0], PAPER[1], PAPER[2], 255]));
    let mut fill = |x0: u32, y0: u32, w: u32, h: u32, c: [u8; 3]| {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                img.put_pixel(x, y, shade(c));
            }
        }
    };
    fill(bx + 3, by, 4, 2, HAIR);
    fill(bx + 3, by + 2, 4, 3, SKIN);
    fill(bx + 2, by + 5, 6, 6, SHIRT);
    fill(bx + 1, by + 6 + stride, 1, 3, SKIN); // the swinging arm
    fill(bx + 3 - stride, by + 11, 2, 4, PANTS);
    fill(bx + 5 + stride, by + 11, 2, 4, PANTS);
    fill(bx + 3 - stride, by + 15, 2, 1, BOOTS);
    fill(bx + 5 + stride, by + 15, 2, 1, BOOTS);
    img
}

/// The walker's visible pixels, trimmed (what the set must reproduce, up to colour).
fn silhouette(img: &RgbaImage, background: [u8; 3]) -> Vec<Vec<bool>> {
    let mask = RgbaImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y);
        let bg = p.0[3] == 0 || [p.0[0], p.0[1], p.0[2]] == background;
        Rgba([0, 0, 0, if bg { 0 } else { 255 }])
    });
    let (trimmed, _) = cleanup::trim(&mask).expect("something visible");
    (0..trimmed.height())
        .map(|y| {
            (0..trimmed.width())
                .map(|x| trimmed.get_pixel(x, y).0[3] > 0)
                .collect()
        })
        .collect()
}

fn options() -> PixelOptions {
    PixelOptions {
        background: Some(BackgroundOptions::default()),
        colors: Some(ColorCount::Fixed(5)),
        ..PixelOptions::default()
    }
}

#[test]
fn a_degraded_walk_cycle_comes_out_with_one_palette_and_no_anchor_drift() {
    let tints = [0, 9, -8, 6];
    let mut rng = Rng::new(11);
    let truth: Vec<RgbaImage> = (0..4).map(|i| walk_frame(i, 0)).collect();
    let degraded: Vec<RgbaImage> = (0..4)
        .map(|i| {
            let d = Degrade {
                sx: 8.0,
                sy: 8.0,
                ox: rng.uniform(-2.4, 2.4),
                oy: rng.uniform(-2.4, 2.4),
                end_x: rng.uniform(-2.4, 2.4),
                end_y: rng.uniform(-2.4, 2.4),
                drift: 0.0,
                blur: 1,
                noise: 4,
                jitter: 0,
            };
            render(&walk_frame(i, tints[i]), &d, &mut rng)
        })
        .collect();

    // Each frame on its own: four palettes, and the walker jumps around.
    let alone: Vec<RgbaImage> = degraded
        .iter()
        .map(|f| pixelize(f, &options()).unwrap().image)
        .collect();
    let before = measure(&alone, 0, SetAnchor::Baseline);
    assert!(
        before.set_colors > 5,
        "independent frames drift: {before:?}"
    );
    assert!(before.max_anchor_drift > 0, "{before:?}");

    let set = pixelize_set(
        &degraded,
        &SetOptions {
            pixel: options(),
            anchor: SetAnchor::Baseline,
            shared_cell: true,
        },
    )
    .unwrap();
    let c = &set.consistency;
    assert_eq!(set.palette.len(), 5, "one palette: {:?}", set.palette);
    assert_eq!(c.set_colors, 5);
    assert!(c.frames.iter().all(|f| f.colors <= 5), "{c:?}");
    assert_eq!(c.max_anchor_drift, 0, "{c:?}");
    let (w, h) = set.frames[0].dimensions();
    assert!(set.frames.iter().all(|f| f.dimensions() == (w, h)));
    let cell = set.cell.expect("a grid was found");
    assert!(
        (cell.0 - 8.0).abs() < 0.2 && (cell.1 - 8.0).abs() < 0.2,
        "{cell:?}"
    );
    // Every frame is the hand-drawn frame, pixel for pixel in shape, in the shared colours:
    // the set palette holds each original colour within the frames' tints (at most 9 levels;
    // the darkest and lightest entries are pinned to the set's extremes, which come from the
    // most tinted frames).
    for (i, (out, t)) in set.frames.iter().zip(&truth).enumerate() {
        assert_eq!(
            silhouette(out, [0, 0, 0]),
            silhouette(t, PAPER),
            "frame {i}"
        );
    }
    for original in [HAIR, SKIN, SHIRT, PANTS, BOOTS] {
        let near = set.palette.iter().any(|p| {
            p.iter()
                .zip(original)
                .all(|(a, b)| (i32::from(*a) - i32::from(b)).abs() <= 10)
        });
        assert!(near, "{original:?} is in the set palette {:?}", set.palette);
    }
    eprintln!(
        "walk cycle: independent {} colours, drift {} px, min IoU {:.2}; as a set {} colours, \
         drift {} px, min IoU {:.2}, max histogram distance {:.3}",
        before.set_colors,
        before.max_anchor_drift,
        before.min_silhouette_iou,
        c.set_colors,
        c.max_anchor_drift,
        c.min_silhouette_iou,
        c.max_histogram_distance
    );
}

#[test]
fn a_set_larger_than_its_canvas_shrinks_by_one_factor_and_keeps_its_anchor() {
    use pixelgen_pixel::Canvas;
    use pixelgen_pixel::cleanup::{Anchor, OutlineOptions};
    // The walker is 10x16 and stands at different places: aligned, the set needs more than
    // 10 px across. On an 8x12 canvas with a 1-px outline each frame must shrink, all by the
    // same factor, and still line up on one baseline.
    let frames: Vec<RgbaImage> = (0..4).map(|i| walk_frame(i, 0)).collect();
    let opts = SetOptions {
        pixel: PixelOptions {
            detect_grid: false,
            outline: Some(OutlineOptions::default()),
            canvas: Some(Canvas {
                width: 8,
                height: 12,
                anchor: Anchor::BottomCenter,
            }),
            ..options()
        },
        anchor: SetAnchor::Baseline,
        shared_cell: true,
    };
    let set = pixelize_set(&frames, &opts).unwrap();
    assert!(set.frames.iter().all(|f| f.dimensions() == (8, 12)));
    let c = &set.consistency;
    assert_eq!(c.max_anchor_drift, 0, "{c:?}");
    // Shrunk, not cut: the walker's height (16 px + outline) became at most 12, and every
    // frame's visible height is the same.
    let heights: Vec<u32> = set
        .frames
        .iter()
        .map(|f| cleanup::content_bounds(f).unwrap().height)
        .collect();
    assert!(
        heights.iter().all(|&h| h == heights[0] && h <= 12),
        "{heights:?}"
    );
    assert!(heights[0] >= 8, "shrunk no more than needed: {heights:?}");
    // A canvas with no room at all is refused with the reason.
    let tiny = SetOptions {
        pixel: PixelOptions {
            canvas: Some(Canvas {
                width: 2,
                height: 2,
                anchor: Anchor::BottomCenter,
            }),
            ..opts.pixel.clone()
        },
        ..opts
    };
    let err = pixelize_set(&frames, &tiny).unwrap_err().to_string();
    assert!(err.contains("no room"), "{err}");
}
