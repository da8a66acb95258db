//! PNG swatches: palettes read from and drawn as images.
//!
//! Reading takes every distinct colour in reading order (row by row), skipping fully
//! transparent pixels, so Lospec's 1xN, Nx1 and blocky (`8x`, `32x`) swatches all read back
//! in palette order. Pixels that are only partly transparent count with their RGB.

use std::collections::HashSet;

use image::{Rgba, RgbaImage};

use super::{MAX_COLORS, Palette, parse_error};
use crate::error::{PixelError, Result, ensure_not_empty};

/// The largest swatch side [`write_grid`] will draw, in pixels.
const MAX_SIDE: u32 = 16_384;

/// Reads the distinct visible colours of `img`; errors name `source_name`.
pub(super) fn parse(img: &RgbaImage, source_name: &str, name: String) -> Result<Palette> {
    ensure_not_empty(img.width(), img.height())?;
    let mut colors: Vec<[u8; 3]> = Vec::new();
    let mut seen: HashSet<[u8; 3]> = HashSet::new();
    let mut last: Option<[u8; 3]> = None;
    for px in img.as_raw().chunks_exact(4) {
        let &[r, g, b, a] = px else { continue };
        if a == 0 {
            continue;
        }
        let c = [r, g, b];
        // Swatches are runs of one colour: only look up a colour when it changes.
        if last == Some(c) {
            continue;
        }
        last = Some(c);
        if seen.insert(c) {
            if colors.len() == MAX_COLORS {
                return Err(parse_error(
                    source_name,
                    0,
                    format!(
                        "the image has more than {MAX_COLORS} distinct colours: \
                         a swatch holds one block per palette colour"
                    ),
                ));
            }
            colors.push(c);
        }
    }
    if colors.is_empty() {
        return Err(parse_error(
            source_name,
            0,
            "no colours: every pixel of the swatch is fully transparent",
        ));
    }
    Ok(Palette { name, colors })
}

/// One opaque pixel per colour, in a single row.
pub(super) fn write_strip(palette: &Palette) -> RgbaImage {
    let width = u32::try_from(palette.colors.len()).unwrap_or(u32::MAX);
    RgbaImage::from_fn(width, 1, |x, _| {
        let [r, g, b] = palette.colors.get(x as usize).copied().unwrap_or_default();
        Rgba([r, g, b, 255])
    })
}

/// `cell`x`cell` blocks, `columns` per row, unused cells transparent.
pub(super) fn write_grid(palette: &Palette, columns: u32, cell: u32) -> Result<RgbaImage> {
    let invalid = |name, message: String| PixelError::InvalidOption { name, message };
    if columns == 0 {
        return Err(invalid("columns", "must be at least 1".into()));
    }
    if cell == 0 {
        return Err(invalid("cell", "must be at least 1 pixel".into()));
    }
    let len = u32::try_from(palette.colors.len()).unwrap_or(u32::MAX);
    let columns = columns.min(len.max(1));
    let rows = len.div_ceil(columns).max(1);
    let (Some(width), Some(height)) = (columns.checked_mul(cell), rows.checked_mul(cell)) else {
        return Err(invalid(
            "cell",
            format!("the swatch would be larger than {MAX_SIDE} pixels"),
        ));
    };
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(invalid(
            "cell",
            format!("the swatch would be {width}x{height}; keep it within {MAX_SIDE} pixels"),
        ));
    }
    Ok(RgbaImage::from_fn(width, height, |x, y| {
        let index = (y / cell) as usize * columns as usize + (x / cell) as usize;
        match palette.colors.get(index) {
            Some(&[r, g, b]) => Rgba([r, g, b, 255]),
            None => Rgba([0, 0, 0, 0]),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pal(colors: &[[u8; 3]]) -> Palette {
        Palette {
            name: "t".into(),
            colors: colors.to_vec(),
        }
    }

    #[test]
    fn strip_round_trip() {
        let p = pal(&[[1, 2, 3], [4, 5, 6], [250, 0, 9]]);
        let img = write_strip(&p);
        assert_eq!(img.dimensions(), (3, 1));
        assert_eq!(img.get_pixel(2, 0), &Rgba([250, 0, 9, 255]));
        assert_eq!(parse(&img, "s", "t".into()).unwrap(), p);
    }

    #[test]
    fn grid_round_trip_with_transparent_tail() {
        let p = pal(&[[9, 0, 0], [0, 9, 0], [0, 0, 9], [9, 9, 9], [1, 1, 1]]);
        let img = write_grid(&p, 3, 4).unwrap();
        assert_eq!(img.dimensions(), (12, 8));
        assert_eq!(img.get_pixel(4, 3), &Rgba([0, 9, 0, 255]));
        assert_eq!(img.get_pixel(11, 7)[3], 0);
        assert_eq!(parse(&img, "s", "t".into()).unwrap(), p);
    }

    #[test]
    fn column_swatch_reads_top_to_bottom() {
        let mut img = RgbaImage::new(1, 3);
        img.put_pixel(0, 0, Rgba([3, 3, 3, 255]));
        img.put_pixel(0, 1, Rgba([2, 2, 2, 0]));
        img.put_pixel(0, 2, Rgba([1, 1, 1, 128]));
        let p = parse(&img, "s", "t".into()).unwrap();
        assert_eq!(p.colors, vec![[3, 3, 3], [1, 1, 1]]);
    }

    #[test]
    fn transparent_or_empty_images_fail() {
        let clear = RgbaImage::new(4, 4);
        assert!(matches!(
            parse(&clear, "s", "t".into()),
            Err(PixelError::PaletteParse { line: 0, .. })
        ));
        let empty = RgbaImage::new(0, 3);
        assert!(matches!(
            parse(&empty, "s", "t".into()),
            Err(PixelError::EmptyImage { .. })
        ));
    }

    #[test]
    fn photo_like_image_is_rejected() {
        let img = RgbaImage::from_fn(32, 32, |x, y| Rgba([x as u8 * 8, y as u8 * 8, 7, 255]));
        match parse(&img, "photo.png", "t".into()) {
            Err(PixelError::PaletteParse {
                source_name,
                message,
                ..
            }) => {
                assert_eq!(source_name, "photo.png");
                assert!(message.contains("more than 256"), "{message}");
            }
            other => panic!("expected PaletteParse, got {other:?}"),
        }
    }

    #[test]
    fn grid_rejects_bad_sizes() {
        let p = pal(&[[0, 0, 0]]);
        assert!(write_grid(&p, 0, 4).is_err());
        assert!(write_grid(&p, 4, 0).is_err());
        assert!(write_grid(&p, 1, u32::MAX).is_err());
        assert!(write_grid(&p, 1, 20_000).is_err());
        assert_eq!(write_grid(&p, 16, 8).unwrap().dimensions(), (8, 8));
    }
}
