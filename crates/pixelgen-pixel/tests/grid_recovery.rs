//! Scratch exploration (to be replaced).

mod common;

use common::{Degrade, Rng, exact_pixels, render, sprite};
use pixelgen_pixel::grid::{GridOptions, to_true_resolution};

fn env(name: &str, d: i32) -> i32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

#[test]
fn explore() {
    let noise = env("NOISE", 6);
    let jitter = env("JITTER", 3);
    let sizes = [(16, 16), (24, 20), (32, 32), (48, 32)];
    let scales: [(f32, f32); 14] = [
        (4.0, 4.0),
        (6.0, 6.0),
        (8.0, 8.0),
        (10.0, 10.0),
        (12.0, 12.0),
        (16.0, 16.0),
        (5.5, 5.5),
        (7.3, 7.3),
        (9.6, 9.6),
        (11.25, 11.25),
        (6.0, 8.0),
        (7.3, 9.6),
        (12.0, 10.0),
        (5.0, 4.5),
    ];
    let mut rng = Rng::new(7);
    let (mut exact, mut total, mut size_ok, mut n) = (0, 0, 0, 0);
    for (si, &(w, h)) in sizes.iter().enumerate() {
        for (ci, &(sx, sy)) in scales.iter().enumerate() {
            for transparent in [true, false] {
                let spr = sprite(&mut rng, w, h, transparent);
                let d = Degrade {
                    sx,
                    sy,
                    ox: rng.uniform(-0.35, 0.35) * sx,
                    oy: rng.uniform(-0.35, 0.35) * sy,
                    end_x: rng.uniform(-0.35, 0.35) * sx,
                    end_y: rng.uniform(-0.35, 0.35) * sy,
                    drift: 0.0,
                    blur: if sx.min(sy) < 8.0 { 1 } else { 2 },
                    noise,
                    jitter,
                };
                let img = render(&spr, &d, &mut rng);
                n += 1;
                match to_true_resolution(&img, &GridOptions::default()) {
                    Ok(t) => {
                        let dims_ok = t.image.dimensions() == (w, h);
                        total += (w * h) as usize;
                        if dims_ok {
                            size_ok += 1;
                            let e = exact_pixels(&t.image, &spr);
                            exact += e;
                            if e < (w * h) as usize && std::env::var("DETAIL").is_ok() {
                                for (x, y, p) in t.image.enumerate_pixels() {
                                    let q = spr.get_pixel(x, y);
                                    if p != q {
                                        println!("   ({x},{y}) got {:?} want {:?}", p.0, q.0);
                                    }
                                }
                            }
                            if e < (w * h) as usize {
                                if std::env::var("CUTS").is_ok() {
                                    println!(
                                        "  cuts x {:?}\n  true x {:?}",
                                        t.grid.x.cuts,
                                        (0..=w)
                                            .map(|k| (d.ox + k as f32 * sx).round() as i32)
                                            .collect::<Vec<_>>()
                                    );
                                    println!(
                                        "  cuts y {:?}\n  true y {:?}",
                                        t.grid.y.cuts,
                                        (0..=h)
                                            .map(|k| (d.oy + k as f32 * sy).round() as i32)
                                            .collect::<Vec<_>>()
                                    );
                                }
                                println!(
                                    "{si} {ci} {transparent}: exact {e}/{} cell {:.3}x{:.3} conf {:.2}",
                                    w * h,
                                    t.grid.x.cell,
                                    t.grid.y.cell,
                                    t.grid.confidence
                                );
                            }
                        } else {
                            println!(
                                "{si} {ci} {transparent}: SIZE {:?} want {:?} cell {:.3}x{:.3} off {:.2},{:.2} d {:?} conf {:.2}",
                                t.image.dimensions(),
                                (w, h),
                                t.grid.x.cell,
                                t.grid.y.cell,
                                t.grid.x.offset,
                                t.grid.y.offset,
                                (d.ox, d.oy, d.end_x, d.end_y),
                                t.grid.confidence
                            );
                        }
                    }
                    Err(e) => {
                        total += (w * h) as usize;
                        println!("{si} {ci} {transparent}: ERR {e}");
                    }
                }
            }
        }
    }
    println!(
        "size ok {size_ok}/{n}, exact {exact}/{total} = {:.4}",
        exact as f64 / total as f64
    );
}

#[test]
fn dump() {
    let mut rng = Rng::new(7);
    let spr = sprite(&mut rng, 16, 16, true);
    let d = Degrade {
        sx: 4.0,
        sy: 4.0,
        ox: 0.0,
        oy: 0.0,
        end_x: 0.0,
        end_y: 0.0,
        drift: 0.0,
        blur: 1,
        noise: 6,
        jitter: 3,
    };
    let img = render(&spr, &d, &mut rng);
    img.save("/tmp/dump.png").unwrap();
    spr.save("/tmp/spr.png").unwrap();
    println!(
        "{:?}",
        to_true_resolution(&img, &GridOptions::default()).map(|t| t.grid)
    );
}
