//! Criterion benchmarks of the pixel pipeline on a 1024x1024 "AI pixel art" input: a 64x64
//! sprite drawn 16x too large, shifted, blurred, with noise, on an opaque background.
//!
//! `cargo bench -p pixelgen-pixel` (single-threaded code: one core).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use image::{Rgba, RgbaImage};
use pixelgen_pixel::alpha::{BackgroundOptions, remove_background};
use pixelgen_pixel::grid::{self, GridOptions};
use pixelgen_pixel::prelude::*;
use pixelgen_pixel::quantize::{self, QuantizeOptions};

/// The 1024x1024 input: 64x64 sprite at 16x (plus a partial cell of offset), 5x5 blur, +-6 noise.
fn input() -> RgbaImage {
    let mut rng = common::Rng::new(2024);
    let spr = common::sprite(&mut rng, 64, 64, true);
    let bg = Rgba([236, 232, 222, 255]);
    let opaque = RgbaImage::from_fn(64, 64, |x, y| {
        let p = *spr.get_pixel(x, y);
        if p[3] == 0 { bg } else { p }
    });
    let d = common::Degrade {
        sx: 16.0,
        sy: 16.0,
        ox: 5.0,
        oy: 3.0,
        end_x: -5.0,
        end_y: -3.0,
        drift: 0.0,
        blur: 2,
        noise: 6,
        jitter: 0,
    };
    let img = common::render(&opaque, &d, &mut rng);
    assert_eq!(img.dimensions(), (1024, 1024));
    img
}

fn benches(c: &mut Criterion) {
    let img = input();
    let gopts = GridOptions::default();
    let g = grid::detect(&img, &gopts).expect("grid");
    let small = grid::downscale(&img, &g, &gopts);
    let q16 = QuantizeOptions {
        colors: ColorCount::Fixed(16),
        ..QuantizeOptions::default()
    };
    let bg = BackgroundOptions::default();
    // A true-resolution image with 4096 distinct colours, so k-means does real work.
    let mut rng = common::Rng::new(7);
    let many = RgbaImage::from_fn(64, 64, |x, y| {
        let n = rng.range(-8, 8);
        let c = |v: u32| (v as i32 + n).clamp(0, 255) as u8;
        Rgba([c(x * 4), c(y * 4), c(255 - (x + y) * 2), 255])
    });

    let mut group = c.benchmark_group("pixel_1024");
    group.bench_function("grid_detect", |b| {
        b.iter(|| grid::detect(black_box(&img), &gopts).unwrap())
    });
    group.bench_function("grid_downscale", |b| {
        b.iter(|| grid::downscale(black_box(&img), &g, &gopts))
    });
    group.bench_function("reduce_16_true_res", |b| {
        b.iter(|| quantize::reduce(black_box(&small), &q16).unwrap())
    });
    group.bench_function("reduce_16_64px_4096_colours", |b| {
        b.iter(|| quantize::reduce(black_box(&many), &q16).unwrap())
    });
    group.bench_function("remove_background_true_res", |b| {
        b.iter(|| remove_background(black_box(&small), &bg).unwrap())
    });
    // The target: grid detect + downscale + 16-colour reduction + background removal.
    let opts = PixelOptions {
        colors: Some(ColorCount::Fixed(16)),
        background: Some(BackgroundOptions::default()),
        ..PixelOptions::default()
    };
    group.bench_function("pixelize_full", |b| {
        b.iter(|| pixelize(black_box(&img), &opts).unwrap())
    });
    group.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
