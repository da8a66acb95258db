//! Colour spaces: sRGB bytes to and from OKLab, the perceptual space every
//! colour decision in this crate is made in.

use std::sync::LazyLock;

/// A colour in Björn Ottosson's OKLab space (L in 0..1, a and b roughly -0.4..0.4).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Oklab {
    /// Perceived lightness, 0 (black) to 1 (white).
    pub l: f32,
    /// Green (-) to red (+) axis.
    pub a: f32,
    /// Blue (-) to yellow (+) axis.
    pub b: f32,
}

impl Oklab {
    /// Converts an sRGB colour (8 bits per channel) to OKLab.
    pub fn from_srgb(rgb: [u8; 3]) -> Self {
        let lut = &*SRGB_TO_LINEAR;
        linear_to_oklab([
            lut[rgb[0] as usize],
            lut[rgb[1] as usize],
            lut[rgb[2] as usize],
        ])
    }

    /// Converts back to sRGB bytes, clamping colours outside the sRGB gamut.
    pub fn to_srgb(self) -> [u8; 3] {
        let [r, g, b] = oklab_to_linear(self);
        [linear_to_srgb8(r), linear_to_srgb8(g), linear_to_srgb8(b)]
    }

    /// Squared Euclidean distance in OKLab (the usual perceptual difference, squared).
    #[inline]
    pub fn dist2(self, other: Oklab) -> f32 {
        let (dl, da, db) = (self.l - other.l, self.a - other.a, self.b - other.b);
        dl * dl + da * da + db * db
    }

    /// Euclidean distance in OKLab; about 0.02 is a just-noticeable difference.
    #[inline]
    pub fn dist(self, other: Oklab) -> f32 {
        self.dist2(other).sqrt()
    }

    /// Component-wise `self + k * other`.
    #[inline]
    pub fn add_scaled(self, other: Oklab, k: f32) -> Oklab {
        Oklab {
            l: self.l + k * other.l,
            a: self.a + k * other.a,
            b: self.b + k * other.b,
        }
    }

    /// Component-wise difference `self - other`.
    #[inline]
    pub fn sub(self, other: Oklab) -> Oklab {
        Oklab {
            l: self.l - other.l,
            a: self.a - other.a,
            b: self.b - other.b,
        }
    }
}

/// sRGB byte -> linear light, computed once.
static SRGB_TO_LINEAR: LazyLock<[f32; 256]> = LazyLock::new(|| {
    let mut t = [0.0f32; 256];
    for (i, v) in t.iter_mut().enumerate() {
        let c = i as f32 / 255.0;
        *v = if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        };
    }
    t
});

/// Converts an sRGB byte to linear light (0..1).
#[inline]
pub fn srgb8_to_linear(v: u8) -> f32 {
    SRGB_TO_LINEAR[v as usize]
}

/// Converts linear light (clamped to 0..1) to an sRGB byte, rounding to nearest.
#[inline]
pub fn linear_to_srgb8(v: f32) -> u8 {
    let v = v.clamp(0.0, 1.0);
    let s = if v <= 0.003_130_8 {
        12.92 * v
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0 + 0.5).clamp(0.0, 255.0) as u8
}

/// Linear sRGB -> OKLab (Ottosson 2020, published matrices).
pub fn linear_to_oklab([r, g, b]: [f32; 3]) -> Oklab {
    let l = 0.412_221_46 * r + 0.536_332_55 * g + 0.051_445_995 * b;
    let m = 0.211_903_5 * r + 0.680_699_5 * g + 0.107_396_96 * b;
    let s = 0.088_302_46 * r + 0.281_718_85 * g + 0.629_978_7 * b;
    let (l, m, s) = (l.cbrt(), m.cbrt(), s.cbrt());
    Oklab {
        l: 0.210_454_26 * l + 0.793_617_8 * m - 0.004_072_047 * s,
        a: 1.977_998_5 * l - 2.428_592_2 * m + 0.450_593_7 * s,
        b: 0.025_904_037 * l + 0.782_771_77 * m - 0.808_675_77 * s,
    }
}

/// OKLab -> linear sRGB (may fall outside 0..1 for out-of-gamut colours).
pub fn oklab_to_linear(c: Oklab) -> [f32; 3] {
    let l = c.l + 0.396_337_78 * c.a + 0.215_803_76 * c.b;
    let m = c.l - 0.105_561_346 * c.a - 0.063_854_17 * c.b;
    let s = c.l - 0.089_484_18 * c.a - 1.291_485_5 * c.b;
    let (l, m, s) = (l * l * l, m * m * m, s * s * s);
    [
        4.076_741_7 * l - 3.307_711_6 * m + 0.230_969_94 * s,
        -1.268_438 * l + 2.609_757_4 * m - 0.341_319_38 * s,
        -0.004_196_086_3 * l - 0.703_418_6 * m + 1.707_614_7 * s,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_grey_and_primaries() {
        for v in 0..=255u8 {
            assert_eq!(Oklab::from_srgb([v, v, v]).to_srgb(), [v, v, v]);
        }
        for c in [
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [255, 0, 255],
            [12, 200, 99],
        ] {
            assert_eq!(Oklab::from_srgb(c).to_srgb(), c);
        }
    }

    #[test]
    fn matches_published_reference_values() {
        // White is L=1, a=b=0; pure red is (0.627955, 0.224863, 0.125846) per Ottosson.
        let w = Oklab::from_srgb([255, 255, 255]);
        assert!((w.l - 1.0).abs() < 1e-4 && w.a.abs() < 1e-4 && w.b.abs() < 1e-4);
        let r = Oklab::from_srgb([255, 0, 0]);
        assert!((r.l - 0.627_955).abs() < 1e-3, "{r:?}");
        assert!((r.a - 0.224_863).abs() < 1e-3, "{r:?}");
        assert!((r.b - 0.125_846).abs() < 1e-3, "{r:?}");
    }

    #[test]
    fn distance_orders_perceptual_difference() {
        let black = Oklab::from_srgb([0, 0, 0]);
        let near_black = Oklab::from_srgb([10, 10, 10]);
        let white = Oklab::from_srgb([255, 255, 255]);
        assert!(black.dist(near_black) < black.dist(white));
        assert!((black.dist(white) - 1.0).abs() < 1e-3);
    }
}
