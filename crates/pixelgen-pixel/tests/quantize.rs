//! Behaviour of colour reduction, fixed-palette mapping and dithering on images with known answers.

use image::{Rgba, RgbaImage};
use pixelgen_pixel::PixelError;
use pixelgen_pixel::color::Oklab;
use pixelgen_pixel::quantize::{
    ColorCount, Dither, QuantizeOptions, kmeans_palette, map_to_palette, reduce,
};

/// Test-side LCG, so the fixtures do not depend on the code under test.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    /// Uniform integer in -amp..=amp.
    fn noise(&mut self, amp: i32) -> i32 {
        (self.next() % (2 * amp as u32 + 1)) as i32 - amp
    }
}

fn jitter(c: [u8; 3], rng: &mut Lcg, amp: i32) -> [u8; 3] {
    c.map(|v| (i32::from(v) + rng.noise(amp)).clamp(0, 255) as u8)
}

fn rgb(p: &Rgba<u8>) -> [u8; 3] {
    [p[0], p[1], p[2]]
}

fn lab(c: [u8; 3]) -> Oklab {
    Oklab::from_srgb(c)
}

/// Index of the nearest palette colour in OKLab (first on ties): the reference answer.
fn nearest(palette: &[[u8; 3]], c: [u8; 3]) -> usize {
    let mut best = 0;
    for (i, &p) in palette.iter().enumerate() {
        if lab(c).dist2(lab(p)) < lab(c).dist2(lab(palette[best])) {
            best = i;
        }
    }
    best
}

const BLOCK_COLORS: [[u8; 3]; 6] = [
    [200, 40, 40],
    [40, 160, 60],
    [50, 70, 200],
    [230, 200, 60],
    [20, 20, 30],
    [240, 240, 235],
];

/// 3x2 blocks of 32x32 pixels, one known colour each, with uniform noise of +-`amp` per channel.
fn noisy_blocks(colors: &[[u8; 3]], amp: i32, seed: u64) -> RgbaImage {
    let mut rng = Lcg(seed);
    let cols = colors.len().div_ceil(2) as u32;
    RgbaImage::from_fn(32 * cols, 64, |x, y| {
        let b = ((y / 32) * cols + x / 32) as usize;
        let c = colors[b.min(colors.len() - 1)];
        let [r, g, bl] = jitter(c, &mut rng, amp);
        Rgba([r, g, bl, 255])
    })
}

fn block_of(x: u32, y: u32, cols: u32) -> usize {
    ((y / 32) * cols + x / 32) as usize
}

fn all_in_palette(img: &RgbaImage, palette: &[[u8; 3]]) -> bool {
    img.pixels().all(|p| p[3] == 0 || palette.contains(&rgb(p)))
}

fn opts(colors: ColorCount) -> QuantizeOptions {
    QuantizeOptions {
        colors,
        ..QuantizeOptions::default()
    }
}

#[test]
fn noisy_blocks_reduce_back_to_their_colours() {
    let img = noisy_blocks(&BLOCK_COLORS, 6, 11);
    for (preserve, tol) in [(false, 0.01f32), (true, 0.03)] {
        let o = QuantizeOptions {
            preserve_extremes: preserve,
            ..opts(ColorCount::Fixed(6))
        };
        let (out, pal) = reduce(&img, &o).unwrap();
        assert_eq!(pal.len(), 6, "preserve={preserve}: {pal:?}");
        // Each original colour has its own palette entry, close in OKLab.
        let mut matched = Vec::new();
        for &orig in &BLOCK_COLORS {
            let i = nearest(&pal, orig);
            let d = lab(orig).dist(lab(pal[i]));
            assert!(
                d < tol,
                "preserve={preserve}: {orig:?} -> {:?} at {d}",
                pal[i]
            );
            matched.push(pal[i]);
        }
        let mut uniq = matched.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), 6);
        // Every pixel lands on its block's colour.
        for (x, y, p) in out.enumerate_pixels() {
            assert_eq!(rgb(p), matched[block_of(x, y, 3)], "pixel ({x},{y})");
            assert_eq!(p[3], 255);
        }
    }
}

/// A shaded green ball with a 1px black outline and a 2-pixel white highlight on transparency.
type Spots = Vec<(u32, u32)>;

fn outlined_sprite() -> (RgbaImage, Spots, Spots) {
    let inside = |x: i32, y: i32| (x - 12) * (x - 12) + (y - 12) * (y - 12) <= 81;
    let mut img = RgbaImage::new(24, 24);
    let (mut outline, highlight) = (Vec::new(), vec![(9, 8), (10, 8)]);
    for y in 0..24i32 {
        for x in 0..24i32 {
            if !inside(x, y) {
                continue;
            }
            let edge =
                !(inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1));
            let c = if edge {
                outline.push((x as u32, y as u32));
                [0, 0, 0]
            } else {
                // Lighter towards the top-left: many distinct shades.
                let t = ((x + y) as f32 / 48.0).clamp(0.0, 1.0);
                let mix = |a: f32, b: f32| (a + (b - a) * t).round() as u8;
                [mix(130.0, 30.0), mix(210.0, 80.0), mix(110.0, 40.0)]
            };
            img.put_pixel(x as u32, y as u32, Rgba([c[0], c[1], c[2], 255]));
        }
    }
    for &(x, y) in &highlight {
        img.put_pixel(x, y, Rgba([255, 255, 255, 255]));
    }
    (img, outline, highlight)
}

#[test]
fn outline_and_highlight_survive_reduction_to_four() {
    let (img, outline, highlight) = outlined_sprite();
    let distinct: std::collections::BTreeSet<[u8; 3]> =
        img.pixels().filter(|p| p[3] > 0).map(rgb).collect();
    assert!(distinct.len() > 10, "fixture should have many shades");
    let (out, pal) = reduce(&img, &opts(ColorCount::Fixed(4))).unwrap();
    assert!(pal.len() <= 4);
    assert_eq!(pal.first(), Some(&[0, 0, 0]), "{pal:?}");
    assert_eq!(pal.last(), Some(&[255, 255, 255]), "{pal:?}");
    for &(x, y) in &outline {
        assert_eq!(rgb(out.get_pixel(x, y)), [0, 0, 0]);
    }
    for &(x, y) in &highlight {
        assert_eq!(rgb(out.get_pixel(x, y)), [255, 255, 255]);
    }
    // Background stays transparent and untouched.
    assert_eq!(*out.get_pixel(0, 0), Rgba([0, 0, 0, 0]));

    // Pinning holds for every seed; without it, some seeds lose the highlight or the outline.
    let mut lost = 0;
    for seed in 0..32 {
        let pinned = QuantizeOptions {
            seed,
            ..opts(ColorCount::Fixed(4))
        };
        let pal = kmeans_palette(&img, &pinned).unwrap();
        assert!(
            pal.contains(&[0, 0, 0]) && pal.contains(&[255, 255, 255]),
            "seed {seed}"
        );
        let unpinned = QuantizeOptions {
            preserve_extremes: false,
            ..pinned
        };
        let pal = kmeans_palette(&img, &unpinned).unwrap();
        if !(pal.contains(&[0, 0, 0]) && pal.contains(&[255, 255, 255])) {
            lost += 1;
        }
    }
    assert!(
        lost > 0,
        "unpinned k-means kept both extremes for every seed"
    );
}

#[test]
fn few_colours_come_back_unchanged() {
    let cols = [
        [10, 20, 30],
        [200, 100, 0],
        [0, 0, 0],
        [255, 255, 255],
        [90, 90, 200],
    ];
    let mut img = RgbaImage::from_fn(10, 7, |x, y| {
        let c = cols[((x * 3 + y * 5) % 5) as usize];
        Rgba([c[0], c[1], c[2], 255])
    });
    img.put_pixel(3, 3, Rgba([1, 2, 3, 0])); // transparent, odd RGB: ignored and kept
    for colors in [ColorCount::Fixed(5), ColorCount::Fixed(16)] {
        for dither in Dither::ALL {
            let o = QuantizeOptions {
                dither,
                ..opts(colors)
            };
            let (out, pal) = reduce(&img, &o).unwrap();
            assert_eq!(out, img, "{colors:?} {dither:?}");
            assert_eq!(pal.len(), 5);
            let mut sorted = pal.clone();
            sorted.sort_unstable();
            let mut expect = cols.to_vec();
            expect.sort_unstable();
            assert_eq!(sorted, expect);
            // Palette is darkest first.
            assert_eq!(pal[0], [0, 0, 0]);
            assert_eq!(pal[4], [255, 255, 255]);
            assert_eq!(kmeans_palette(&img, &o).unwrap(), pal);
        }
    }
    // Two colours with auto: nothing to reduce.
    let two = RgbaImage::from_fn(4, 4, |x, _| {
        if x < 2 {
            Rgba([9, 9, 9, 255])
        } else {
            Rgba([99, 0, 0, 255])
        }
    });
    assert_eq!(reduce(&two, &opts(ColorCount::Auto)).unwrap().0, two);
}

const PAL8: [[u8; 3]; 8] = [
    [0, 0, 0],
    [255, 255, 255],
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 0],
    [128, 128, 128],
    [120, 60, 20],
];

#[test]
fn fixed_palette_mapping_is_exact_nearest() {
    let mut rng = Lcg(5);
    let mut img = RgbaImage::from_fn(40, 40, |_, _| {
        Rgba([rng.next() as u8, rng.next() as u8, rng.next() as u8, 255])
    });
    img.put_pixel(0, 0, Rgba([250, 10, 10, 255]));
    img.put_pixel(1, 0, Rgba([20, 20, 20, 255]));
    img.put_pixel(2, 0, Rgba([140, 128, 120, 255]));
    img.put_pixel(3, 0, Rgba([110, 70, 30, 255]));
    img.put_pixel(4, 0, Rgba([7, 7, 7, 0]));
    let out = map_to_palette(&img, &PAL8, Dither::None, 1.0).unwrap();
    for (p, q) in img.pixels().zip(out.pixels()) {
        if p[3] == 0 {
            assert_eq!(p, q);
        } else {
            assert_eq!(rgb(q), PAL8[nearest(&PAL8, rgb(p))]);
            assert_eq!(q[3], p[3]);
        }
    }
    assert_eq!(rgb(out.get_pixel(0, 0)), [255, 0, 0]);
    assert_eq!(rgb(out.get_pixel(1, 0)), [0, 0, 0]);
    assert_eq!(rgb(out.get_pixel(2, 0)), [128, 128, 128]);
    assert_eq!(rgb(out.get_pixel(3, 0)), [120, 60, 20]);
    for dither in Dither::ALL {
        let out = map_to_palette(&img, &PAL8, dither, 1.0).unwrap();
        assert!(all_in_palette(&out, &PAL8), "{dither:?}");
        assert_eq!(out.get_pixel(4, 0), img.get_pixel(4, 0), "{dither:?}");
    }
    // A palette colour maps to itself under every mode when the image is flat.
    let flat = RgbaImage::from_pixel(9, 9, Rgba([120, 60, 20, 255]));
    for dither in Dither::ALL {
        assert_eq!(
            map_to_palette(&flat, &PAL8, dither, 1.0).unwrap(),
            flat,
            "{dither:?}"
        );
    }
}

const BW: [[u8; 3]; 2] = [[0, 0, 0], [255, 255, 255]];

fn grey_gradient(w: u32, h: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, _| {
        let v = (x * 255 / (w - 1)) as u8;
        Rgba([v, v, v, 255])
    })
}

fn white_fraction(img: &RgbaImage, xs: std::ops::Range<u32>) -> f32 {
    let mut white = 0;
    let mut n = 0;
    for x in xs {
        for y in 0..img.height() {
            n += 1;
            if rgb(img.get_pixel(x, y)) == [255, 255, 255] {
                white += 1;
            }
        }
    }
    white as f32 / n as f32
}

#[test]
fn ordered_dither_tracks_a_grey_gradient() {
    let img = grey_gradient(64, 16);
    for (dither, levels) in [
        (Dither::Bayer2, 4.0f32),
        (Dither::Bayer4, 16.0),
        (Dither::Bayer8, 64.0),
    ] {
        // A matrix of n levels renders a grey to within half a level (plus the curve of L in a group).
        let tol = 0.5 / levels + 0.04;
        let out = map_to_palette(&img, &BW, dither, 1.0).unwrap();
        assert!(all_in_palette(&out, &BW));
        let mut prev = -1.0f32;
        let mut mixed_groups = 0;
        for g in 0..8u32 {
            let xs = g * 8..g * 8 + 8;
            let frac = white_fraction(&out, xs.clone());
            let mean_l: f32 = xs
                .clone()
                .map(|x| lab(rgb(img.get_pixel(x, 0))).l)
                .sum::<f32>()
                / 8.0;
            assert!(
                (frac - mean_l).abs() < tol,
                "{dither:?} group {g}: {frac} vs L {mean_l}"
            );
            assert!(frac >= prev, "{dither:?}: not monotone at group {g}");
            prev = frac;
            if frac > 0.0 && frac < 1.0 {
                mixed_groups += 1;
            }
        }
        assert!(
            mixed_groups >= 6,
            "{dither:?}: pattern missing ({mixed_groups} mixed groups)"
        );
        // Bayer 4: inside a mid-grey 4x4 tile the pattern mixes both colours in every row.
        if dither == Dither::Bayer4 {
            for y in 0..4 {
                let row: Vec<[u8; 3]> = (32..36).map(|x| rgb(out.get_pixel(x, y))).collect();
                assert!(
                    row.contains(&[0, 0, 0]) && row.contains(&[255, 255, 255]),
                    "row {y}: {row:?}"
                );
            }
        }
    }
    // No dithering: flat bands, one switch from black to white.
    let out = map_to_palette(&img, &BW, Dither::None, 1.0).unwrap();
    let cols: Vec<[u8; 3]> = (0..64)
        .map(|x| {
            let c = rgb(out.get_pixel(x, 0));
            assert!(
                (0..16).all(|y| rgb(out.get_pixel(x, y)) == c),
                "column {x} not flat"
            );
            c
        })
        .collect();
    let switches = cols.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(switches, 1);
    assert_eq!(cols[0], [0, 0, 0]);
    assert_eq!(cols[63], [255, 255, 255]);
    // Strength 0 is the same as no dithering.
    assert_eq!(map_to_palette(&img, &BW, Dither::Bayer8, 0.0).unwrap(), out);
}

#[test]
fn floyd_steinberg_keeps_the_average_lightness() {
    let grey = [128u8, 128, 128];
    let img = RgbaImage::from_pixel(64, 64, Rgba([grey[0], grey[1], grey[2], 255]));
    let out = map_to_palette(&img, &BW, Dither::FloydSteinberg, 1.0).unwrap();
    assert!(all_in_palette(&out, &BW));
    let frac = white_fraction(&out, 0..64);
    let target = lab(grey).l;
    assert!(
        (frac - target).abs() < 0.01,
        "white share {frac}, grey L {target}"
    );
    // Locally too: every 8x8 tile is mixed and close to the grey.
    for ty in 0..8 {
        for tx in 0..8 {
            let mut white = 0;
            for y in ty * 8..ty * 8 + 8 {
                for x in tx * 8..tx * 8 + 8 {
                    white += u32::from(rgb(out.get_pixel(x, y)) == [255, 255, 255]);
                }
            }
            let f = white as f32 / 64.0;
            assert!((f - target).abs() < 0.15, "tile ({tx},{ty}): {f}");
        }
    }
    // Undithered, the whole area is one flat colour.
    let flat = map_to_palette(&img, &BW, Dither::None, 1.0).unwrap();
    assert!(flat.pixels().all(|p| rgb(p) == [255, 255, 255]));
    assert_eq!(
        map_to_palette(&img, &BW, Dither::FloydSteinberg, 0.0).unwrap(),
        flat
    );
}

/// A colourful gradient with the left 16 columns fully transparent (with junk RGB) and one
/// half-transparent pixel.
fn half_transparent() -> RgbaImage {
    RgbaImage::from_fn(40, 20, |x, y| {
        if x < 16 {
            Rgba([(x * 13) as u8, 77, (y * 9) as u8, 0])
        } else {
            let a = if (x, y) == (30, 10) { 128 } else { 255 };
            Rgba([(x * 6) as u8, (y * 12) as u8, 120, a])
        }
    })
}

#[test]
fn transparent_pixels_are_untouched_and_act_like_the_border() {
    let img = half_transparent();
    let right = image::imageops::crop_imm(&img, 16, 0, 24, 20).to_image();
    for dither in Dither::ALL {
        let out = map_to_palette(&img, &PAL8, dither, 1.0).unwrap();
        for (x, y, p) in img.enumerate_pixels() {
            let q = out.get_pixel(x, y);
            if p[3] == 0 {
                assert_eq!(p, q, "{dither:?} transparent ({x},{y}) changed");
            } else {
                assert_eq!(q[3], p[3], "{dither:?} alpha changed at ({x},{y})");
                assert!(PAL8.contains(&rgb(q)));
            }
        }
        // No error flows into or out of the transparent part: the visible part is dithered
        // exactly as if it were the whole image (16 is a multiple of every Bayer size).
        let alone = map_to_palette(&right, &PAL8, dither, 1.0).unwrap();
        let out_right = image::imageops::crop_imm(&out, 16, 0, 24, 20).to_image();
        assert_eq!(out_right, alone, "{dither:?}");
    }
    // The same holds through reduce.
    let o = QuantizeOptions {
        dither: Dither::FloydSteinberg,
        ..opts(ColorCount::Fixed(6))
    };
    let (out, pal) = reduce(&img, &o).unwrap();
    assert!(all_in_palette(&out, &pal));
    for x in 0..16 {
        assert_eq!(out.get_pixel(x, 5), img.get_pixel(x, 5));
    }
}

fn noisy_gradient(w: u32, h: u32, seed: u64) -> RgbaImage {
    let mut rng = Lcg(seed);
    RgbaImage::from_fn(w, h, |x, y| {
        let base = [
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + y) * 127 / (w + h)) as u8,
        ];
        let [r, g, b] = jitter(base, &mut rng, 8);
        Rgba([r, g, b, 255])
    })
}

#[test]
fn same_seed_same_output_other_seeds_still_valid() {
    let img = noisy_gradient(48, 48, 3);
    for dither in [Dither::None, Dither::Bayer4, Dither::FloydSteinberg] {
        let o = QuantizeOptions {
            dither,
            seed: 1,
            ..opts(ColorCount::Fixed(8))
        };
        let a = reduce(&img, &o).unwrap();
        let b = reduce(&img, &o).unwrap();
        assert_eq!(a, b, "{dither:?}");
        for seed in [2, 99, u64::MAX] {
            let (out, pal) = reduce(&img, &QuantizeOptions { seed, ..o.clone() }).unwrap();
            assert!(!pal.is_empty() && pal.len() <= 8);
            assert!(all_in_palette(&out, &pal));
        }
    }
}

#[test]
fn many_colours_use_binning_and_stay_accurate() {
    // 128x128 with noise: well over 4096 distinct colours.
    let img = noisy_gradient(128, 128, 9);
    let distinct: std::collections::HashSet<[u8; 3]> = img.pixels().map(rgb).collect();
    assert!(distinct.len() > 4096, "{}", distinct.len());
    let (out, pal) = reduce(&img, &opts(ColorCount::Fixed(16))).unwrap();
    assert!(pal.len() <= 16 && pal.len() >= 12, "{}", pal.len());
    assert!(all_in_palette(&out, &pal));
    // Extremes are real image colours.
    let dark = distinct
        .iter()
        .min_by(|a, b| lab(**a).l.total_cmp(&lab(**b).l))
        .copied();
    let light = distinct
        .iter()
        .max_by(|a, b| lab(**a).l.total_cmp(&lab(**b).l))
        .copied();
    assert_eq!(pal.first().copied(), dark);
    assert_eq!(pal.last().copied(), light);
    // The result is a real fit: RMS error well under what 4 colours would give.
    let rms = |o: &RgbaImage| {
        let s: f32 = img
            .pixels()
            .zip(o.pixels())
            .map(|(p, q)| lab(rgb(p)).dist2(lab(rgb(q))))
            .sum();
        (s / (128.0 * 128.0)).sqrt()
    };
    let (out4, _) = reduce(&img, &opts(ColorCount::Fixed(4))).unwrap();
    assert!(
        rms(&out) < 0.7 * rms(&out4),
        "{} vs {}",
        rms(&out),
        rms(&out4)
    );
    assert!(rms(&out) < 0.06, "{}", rms(&out));
}

#[test]
fn auto_count_finds_the_number_of_clusters() {
    for n in [3usize, 5, 6] {
        let img = noisy_blocks(&BLOCK_COLORS[..n], 6, n as u64);
        let pal = kmeans_palette(&img, &opts(ColorCount::Auto)).unwrap();
        assert_eq!(pal.len(), n, "{n} blocks: {pal:?}");
    }
    // A smooth gradient gets a moderate ramp, never more than the cap.
    let img = grey_gradient(256, 4);
    let pal = kmeans_palette(&img, &opts(ColorCount::Auto)).unwrap();
    assert!((4..=32).contains(&pal.len()), "{}", pal.len());
    let pal = kmeans_palette(&noisy_gradient(64, 64, 1), &opts(ColorCount::Auto)).unwrap();
    assert!((4..=32).contains(&pal.len()), "{}", pal.len());
}

#[test]
fn bad_input_is_an_error_or_identity_never_a_panic() {
    let o = QuantizeOptions::default();
    for (w, h) in [(0, 0), (0, 5), (5, 0)] {
        let img = RgbaImage::new(w, h);
        assert!(matches!(
            reduce(&img, &o),
            Err(PixelError::EmptyImage { .. })
        ));
        assert!(matches!(
            kmeans_palette(&img, &o),
            Err(PixelError::EmptyImage { .. })
        ));
        assert!(matches!(
            map_to_palette(&img, &BW, Dither::FloydSteinberg, 1.0),
            Err(PixelError::EmptyImage { .. })
        ));
    }
    // 1x1: identity, and mapping works for every dither.
    let one = RgbaImage::from_pixel(1, 1, Rgba([12, 34, 56, 255]));
    let (out, pal) = reduce(&one, &opts(ColorCount::Fixed(1))).unwrap();
    assert_eq!((out, pal), (one.clone(), vec![[12, 34, 56]]));
    for dither in Dither::ALL {
        let out = map_to_palette(&one, &BW, dither, 1.0).unwrap();
        assert_eq!(*out.get_pixel(0, 0), Rgba([0, 0, 0, 255]));
    }
    // Fully transparent: unchanged, empty palette.
    let clear = RgbaImage::from_pixel(8, 8, Rgba([5, 6, 7, 0]));
    for colors in [ColorCount::Fixed(4), ColorCount::Auto] {
        let (out, pal) = reduce(&clear, &opts(colors)).unwrap();
        assert_eq!(out, clear);
        assert!(pal.is_empty());
    }
    for dither in Dither::ALL {
        assert_eq!(map_to_palette(&clear, &BW, dither, 1.0).unwrap(), clear);
    }
    // Option errors.
    let img = noisy_gradient(8, 8, 0);
    for n in [0, 257, u32::MAX] {
        assert!(matches!(
            reduce(&img, &opts(ColorCount::Fixed(n))),
            Err(PixelError::InvalidOption { name: "colors", .. })
        ));
    }
    assert!(matches!(
        map_to_palette(&img, &[], Dither::None, 1.0),
        Err(PixelError::InvalidOption {
            name: "palette",
            ..
        })
    ));
    assert!(matches!(
        map_to_palette(&img, &[[0, 0, 0]; 257], Dither::None, 1.0),
        Err(PixelError::InvalidOption {
            name: "palette",
            ..
        })
    ));
    for s in [f32::NAN, -1.0, f32::INFINITY, 2.5] {
        assert!(matches!(
            map_to_palette(&img, &BW, Dither::Bayer4, s),
            Err(PixelError::InvalidOption {
                name: "dither_strength",
                ..
            })
        ));
    }
    // One colour asked of many: the weighted mean; 1-pixel-wide extreme aspect ratios work.
    let (out, pal) = reduce(&img, &opts(ColorCount::Fixed(1))).unwrap();
    assert_eq!(pal.len(), 1);
    assert!(out.pixels().all(|p| rgb(p) == pal[0]));
    for (w, h) in [(1, 3000), (3000, 1)] {
        let tall = noisy_gradient(w, h, 4);
        for dither in Dither::ALL {
            let o = QuantizeOptions {
                dither,
                ..opts(ColorCount::Fixed(5))
            };
            let (out, pal) = reduce(&tall, &o).unwrap();
            assert!(all_in_palette(&out, &pal) && pal.len() <= 5);
        }
    }
}
