//! Mapping pixels onto a palette: nearest colour, ordered (Bayer) and Floyd–Steinberg dithering, in OKLab.

use image::RgbaImage;

use super::{Dither, Histogram, LabPalette, TRANSPARENT};
use crate::color::Oklab;

/// Maps every visible pixel of `img` (described by `hist`) onto `palette` (non-empty).
pub(super) fn apply(
    img: &RgbaImage,
    hist: &Histogram,
    palette: &[[u8; 3]],
    dither: Dither,
    strength: f32,
) -> RgbaImage {
    let pal_lab: Vec<Oklab> = palette.iter().map(|&c| Oklab::from_srgb(c)).collect();
    let lp = LabPalette::new(&pal_lab);
    let mut out = img.clone();
    let width = img.width() as usize;
    match dither {
        Dither::None => flat(&mut out, hist, palette, &lp),
        Dither::Bayer2 => ordered(&mut out, width, hist, palette, &pal_lab, &lp, 1, strength),
        Dither::Bayer4 => ordered(&mut out, width, hist, palette, &pal_lab, &lp, 2, strength),
        Dither::Bayer8 => ordered(&mut out, width, hist, palette, &pal_lab, &lp, 3, strength),
        Dither::FloydSteinberg => {
            floyd_steinberg(&mut out, width, hist, palette, &pal_lab, &lp, strength)
        }
    }
    out
}

#[inline]
fn put(px: &mut [u8], c: [u8; 3]) {
    px[..3].copy_from_slice(&c);
}

/// Nearest palette colour per distinct colour, then one pass over the pixels.
fn flat(out: &mut RgbaImage, hist: &Histogram, palette: &[[u8; 3]], lp: &LabPalette) {
    let map: Vec<[u8; 3]> = hist
        .labs
        .iter()
        .map(|&c| palette[lp.nearest(c).0])
        .collect();
    for (px, &di) in out.chunks_exact_mut(4).zip(&hist.pixel_index) {
        if di != TRANSPARENT {
            put(px, map[di as usize]);
        }
    }
}

/// The Bayer threshold matrix of size `2^order` (row-major), values `0..4^order`.
pub(super) fn bayer(order: u32) -> Vec<u32> {
    let mut m = vec![0u32];
    let mut size = 1usize;
    for _ in 0..order {
        let big = size * 2;
        let mut next = vec![0u32; big * big];
        for y in 0..big {
            for x in 0..big {
                let quadrant = match (y / size, x / size) {
                    (0, 0) => 0,
                    (0, _) => 2,
                    (_, 0) => 3,
                    _ => 1,
                };
                next[y * big + x] = 4 * m[(y % size) * size + x % size] + quadrant;
            }
        }
        m = next;
        size = big;
    }
    m
}

/// The palette's typical spacing: the median distance from a colour to its nearest other colour.
pub(super) fn typical_spacing(pal: &[Oklab]) -> f32 {
    let mut nn: Vec<f32> = pal
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            pal.iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, o)| c.dist(*o))
                .filter(|&d| d > 0.0)
                .min_by(f32::total_cmp)
        })
        .collect();
    if nn.is_empty() {
        return 0.0;
    }
    nn.sort_by(f32::total_cmp);
    let mid = nn.len() / 2;
    if nn.len() % 2 == 1 {
        nn[mid]
    } else {
        0.5 * (nn[mid - 1] + nn[mid])
    }
}

/// Ordered dithering: each pixel's lightness is offset by its Bayer threshold (centred on 0,
/// scaled to the palette's spacing and `strength`), then the nearest colour is taken.
#[allow(clippy::too_many_arguments)]
fn ordered(
    out: &mut RgbaImage,
    width: usize,
    hist: &Histogram,
    palette: &[[u8; 3]],
    pal_lab: &[Oklab],
    lp: &LabPalette,
    order: u32,
    strength: f32,
) {
    let n = 1usize << order;
    let matrix = bayer(order);
    let spacing = typical_spacing(pal_lab) * strength;
    let scale = 1.0 / (n * n) as f32;
    let offsets: Vec<f32> = matrix
        .iter()
        .map(|&v| ((v as f32 + 0.5) * scale - 0.5) * spacing)
        .collect();
    for (i, (px, &di)) in out.chunks_exact_mut(4).zip(&hist.pixel_index).enumerate() {
        if di == TRANSPARENT {
            continue;
        }
        let (x, y) = (i % width, i / width);
        let mut c = hist.labs[di as usize];
        c.l += offsets[(y & (n - 1)) * n + (x & (n - 1))];
        put(px, palette[lp.nearest(c).0]);
    }
}

/// Floyd–Steinberg error diffusion in OKLab with a serpentine scan. Error only flows between
/// visible pixels: a transparent neighbour is treated like the image border, and the weights of
/// the remaining neighbours are renormalised so no error is lost.
fn floyd_steinberg(
    out: &mut RgbaImage,
    width: usize,
    hist: &Histogram,
    palette: &[[u8; 3]],
    pal_lab: &[Oklab],
    lp: &LabPalette,
    strength: f32,
) {
    let height = hist.pixel_index.len() / width.max(1);
    let visible = |x: usize, y: usize| hist.pixel_index[y * width + x] != TRANSPARENT;
    let mut cur = vec![Oklab::default(); width];
    let mut next = vec![Oklab::default(); width];
    let buf: &mut [u8] = out;
    for y in 0..height {
        let ltr = y % 2 == 0;
        let below = y + 1 < height;
        for s in 0..width {
            let x = if ltr { s } else { width - 1 - s };
            let i = y * width + x;
            let di = hist.pixel_index[i];
            if di == TRANSPARENT {
                continue;
            }
            let mut want = hist.labs[di as usize].add_scaled(cur[x], 1.0);
            want.l = want.l.clamp(0.0, 1.0);
            want.a = want.a.clamp(-0.5, 0.5);
            want.b = want.b.clamp(-0.5, 0.5);
            let j = lp.nearest(want).0;
            put(&mut buf[4 * i..4 * i + 4], palette[j]);
            let err = want.sub(pal_lab[j]);

            let ahead = if ltr {
                Some(x + 1).filter(|&v| v < width)
            } else {
                x.checked_sub(1)
            };
            let behind = if ltr {
                x.checked_sub(1)
            } else {
                Some(x + 1).filter(|&v| v < width)
            };
            // (column, same row?, weight in sixteenths)
            let spots = [
                (ahead, true, 7.0f32),
                (behind, false, 3.0),
                (Some(x), false, 5.0),
                (ahead, false, 1.0),
            ];
            let ok = |(col, same, _): &(Option<usize>, bool, f32)| match col {
                Some(c) if *same => visible(*c, y),
                Some(c) => below && visible(*c, y + 1),
                None => false,
            };
            let total: f32 = spots.iter().filter(|s| ok(s)).map(|s| s.2).sum();
            if total <= 0.0 {
                continue;
            }
            for spot in spots.iter().filter(|s| ok(s)) {
                if let (Some(c), same, wgt) = *spot {
                    let k = strength * wgt / total;
                    let row = if same { &mut cur } else { &mut next };
                    row[c] = row[c].add_scaled(err, k);
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
        next.fill(Oklab::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bayer_matrices_are_permutations_with_the_classic_layout() {
        assert_eq!(bayer(1), vec![0, 2, 3, 1]);
        assert_eq!(
            bayer(2),
            vec![0, 8, 2, 10, 12, 4, 14, 6, 3, 11, 1, 9, 15, 7, 13, 5]
        );
        for order in 1..=3 {
            let mut m = bayer(order);
            m.sort_unstable();
            assert_eq!(m, (0..1u32 << (2 * order)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn spacing_is_median_nearest_neighbour_distance() {
        let bw = [
            Oklab::from_srgb([0, 0, 0]),
            Oklab::from_srgb([255, 255, 255]),
        ];
        assert!((typical_spacing(&bw) - 1.0).abs() < 1e-3);
        assert_eq!(typical_spacing(&bw[..1]), 0.0);
        let three = [
            Oklab {
                l: 0.0,
                a: 0.0,
                b: 0.0,
            },
            Oklab {
                l: 0.1,
                a: 0.0,
                b: 0.0,
            },
            Oklab {
                l: 0.5,
                a: 0.0,
                b: 0.0,
            },
        ];
        // Nearest-neighbour distances 0.1, 0.1, 0.4: median 0.1.
        assert!((typical_spacing(&three) - 0.1).abs() < 1e-6);
    }
}
