//! Makes `assets/examples/potion_ai.png`: a 32x32 potion sprite drawn by hand-written
//! shapes, then degraded the way SDXL's "pixel art" comes out: upscaled 12x, shifted by a
//! few pixels, blurred, with per-pixel noise and an off-white background.
//!
//! `cargo run --example ai_style_sample -- assets/examples/potion_ai.png`

use image::{Rgba, RgbaImage};

const OUTLINE: [u8; 4] = [26, 28, 44, 255];
const GLASS: [u8; 4] = [148, 176, 194, 255];
const RED: [u8; 4] = [177, 62, 83, 255];
const RED_LIGHT: [u8; 4] = [239, 125, 87, 255];
const CORK: [u8; 4] = [133, 76, 48, 255];
const WHITE: [u8; 4] = [244, 244, 244, 255];
const BACKGROUND: [u8; 4] = [236, 232, 222, 255];

/// Draws the 32x32 sprite (background included, as a model would).
fn potion() -> RgbaImage {
    let mut img = RgbaImage::from_pixel(32, 32, Rgba(BACKGROUND));
    let (cx, cy, r) = (15.5f32, 20.5f32, 9.5f32);
    for y in 0..32u32 {
        for x in 0..32u32 {
            let (fx, fy) = (x as f32 - cx, y as f32 - cy);
            let d = (fx * fx + fy * fy).sqrt();
            let neck = (13..=18).contains(&x) && (6..=12).contains(&y);
            let cork = (12..=19).contains(&x) && (3..=6).contains(&y);
            let c = if cork {
                if x == 12 || x == 19 || y == 3 {
                    OUTLINE
                } else {
                    CORK
                }
            } else if d <= r - 1.0 {
                if y as f32 > cy - 3.0 {
                    if fx + fy < -6.0 { RED_LIGHT } else { RED }
                } else {
                    GLASS
                }
            } else if d <= r || (neck && (x == 13 || x == 18)) {
                OUTLINE
            } else if neck {
                GLASS
            } else {
                BACKGROUND
            };
            img.put_pixel(x, y, Rgba(c));
        }
    }
    for (x, y) in [(11, 17), (11, 18), (12, 16), (12, 21), (16, 8)] {
        img.put_pixel(x, y, Rgba(WHITE));
    }
    img
}

/// Tiny deterministic RNG (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn noise(&mut self, amp: i32) -> i32 {
        (self.next() % (2 * amp as u64 + 1)) as i32 - amp
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "assets/examples/potion_ai.png".into());
    let sprite = potion();
    let (scale, shift, size) = (12.0f32, 5.0f32, 384u32);
    let mut rng = Rng(0x5EED_1234);
    // Nearest upscale with a shift, then a 5x5 box blur, then noise.
    let up = RgbaImage::from_fn(size, size, |x, y| {
        let sx = ((x as f32 + shift) / scale).floor().clamp(0.0, 31.0) as u32;
        let sy = ((y as f32 + shift) / scale).floor().clamp(0.0, 31.0) as u32;
        *sprite.get_pixel(sx, sy)
    });
    let mut out_img = up.clone();
    for y in 0..size {
        for x in 0..size {
            let mut acc = [0i32; 3];
            let mut n = 0;
            for dy in -2i32..=2 {
                for dx in -2i32..=2 {
                    let (xx, yy) = (x as i32 + dx, y as i32 + dy);
                    if xx >= 0 && yy >= 0 && xx < size as i32 && yy < size as i32 {
                        let p = up.get_pixel(xx as u32, yy as u32);
                        for c in 0..3 {
                            acc[c] += p[c] as i32;
                        }
                        n += 1;
                    }
                }
            }
            let mut px = [0u8, 0, 0, 255];
            for c in 0..3 {
                px[c] = (acc[c] / n + rng.noise(6)).clamp(0, 255) as u8;
            }
            out_img.put_pixel(x, y, Rgba(px));
        }
    }
    pixelgen_pixel::write::save_png(std::path::Path::new(&out), &out_img)?;
    println!("wrote {out} ({size}x{size}, true size 32x32, cell 12 px, offset {shift} px)");
    Ok(())
}
