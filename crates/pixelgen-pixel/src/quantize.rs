//! Colour reduction and dithering, decided in OKLab: seeded k-means palettes, fixed-palette mapping,
//! ordered (Bayer) and Floyd–Steinberg dithering.
//!
//! Fully transparent pixels (alpha 0) are ignored when choosing colours and left untouched in the
//! output; every other pixel keeps its alpha and gets a palette colour.

mod dither;
mod kmeans;

use std::fmt;
use std::str::FromStr;

use image::RgbaImage;
use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::color::Oklab;
use crate::error::{PixelError, Result, ensure_not_empty};

/// The largest colour count (and fixed-palette size) accepted: what an indexed PNG can hold.
pub const MAX_COLORS: u32 = 256;

/// The largest colour count [`ColorCount::Auto`] picks.
pub const AUTO_MAX_COLORS: u32 = 32;

/// Largest dither strength accepted (1 is the usual strength).
pub const MAX_DITHER_STRENGTH: f32 = 2.0;

/// How colours between palette entries are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dither {
    /// Each pixel takes its nearest palette colour: flat bands.
    #[default]
    None,
    /// Ordered dithering with the 2x2 Bayer matrix.
    Bayer2,
    /// Ordered dithering with the 4x4 Bayer matrix.
    Bayer4,
    /// Ordered dithering with the 8x8 Bayer matrix.
    Bayer8,
    /// Floyd–Steinberg error diffusion (serpentine scan).
    FloydSteinberg,
}

impl Dither {
    /// Every dither mode, in the order the CLI lists them.
    pub const ALL: [Dither; 5] = [
        Dither::None,
        Dither::Bayer2,
        Dither::Bayer4,
        Dither::Bayer8,
        Dither::FloydSteinberg,
    ];

    /// The name used in recipes and on the command line (`floyd_steinberg`, `bayer4`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Dither::None => "none",
            Dither::Bayer2 => "bayer2",
            Dither::Bayer4 => "bayer4",
            Dither::Bayer8 => "bayer8",
            Dither::FloydSteinberg => "floyd_steinberg",
        }
    }
}

impl fmt::Display for Dither {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dither {
    type Err = PixelError;

    /// Parses a dither name; `-` and `_` are interchangeable, case is ignored, `fs` means Floyd–Steinberg.
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        match norm.as_str() {
            "none" | "off" => Ok(Dither::None),
            "bayer2" => Ok(Dither::Bayer2),
            "bayer4" | "bayer" | "ordered" => Ok(Dither::Bayer4),
            "bayer8" => Ok(Dither::Bayer8),
            "floyd_steinberg" | "fs" => Ok(Dither::FloydSteinberg),
            _ => Err(PixelError::InvalidOption {
                name: "dither",
                message: format!(
                    "unknown dither `{s}`; use one of none, bayer2, bayer4, bayer8, floyd_steinberg"
                ),
            }),
        }
    }
}

/// How many colours to reduce to. Written in recipes as `"auto"` or a number such as `16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColorCount {
    /// Pick the count from the image (the knee of the error curve), between 2 and [`AUTO_MAX_COLORS`].
    Auto,
    /// Exactly this many colours at most (1..=[`MAX_COLORS`]).
    Fixed(u32),
}

impl Default for ColorCount {
    fn default() -> Self {
        ColorCount::Fixed(16)
    }
}

impl fmt::Display for ColorCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColorCount::Auto => f.write_str("auto"),
            ColorCount::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for ColorCount {
    type Err = PixelError;

    /// Parses `auto` or a whole number (range is checked when the options are used).
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(ColorCount::Auto);
        }
        t.parse::<u32>()
            .map(ColorCount::Fixed)
            .map_err(|_| PixelError::InvalidOption {
                name: "colors",
                message: format!(
                    "`{s}` is not `auto` or a whole number of colours (1..={MAX_COLORS})"
                ),
            })
    }
}

impl Serialize for ColorCount {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ColorCount::Auto => s.serialize_str("auto"),
            ColorCount::Fixed(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for ColorCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = ColorCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`auto` or a colour count such as 16")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<ColorCount, E> {
                v.parse()
                    .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<ColorCount, E> {
                u32::try_from(v)
                    .map(ColorCount::Fixed)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<ColorCount, E> {
                u32::try_from(v)
                    .map(ColorCount::Fixed)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }
        }
        d.deserialize_any(CountVisitor)
    }
}

/// Options for [`reduce`] and [`kmeans_palette`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuantizeOptions {
    /// Target number of colours, or `auto`.
    pub colors: ColorCount,
    /// Seed of the k-means++ initialisation: same seed, same result.
    pub seed: u64,
    /// Dithering used when mapping pixels to the new palette.
    pub dither: Dither,
    /// Dither strength, 0..=2 (1 = standard; 0 behaves like no dithering).
    pub dither_strength: f32,
    /// Keep the darkest and lightest colours (by OKLab L) exactly, so outlines and highlights survive.
    pub preserve_extremes: bool,
    /// Cap on Lloyd iterations (k-means usually converges well before it).
    pub max_iterations: u32,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        Self {
            colors: ColorCount::default(),
            seed: 0,
            dither: Dither::None,
            dither_strength: 1.0,
            preserve_extremes: true,
            max_iterations: 50,
        }
    }
}

impl QuantizeOptions {
    /// Checks the options, returning [`PixelError::InvalidOption`] for out-of-range values.
    pub fn validate(&self) -> Result<()> {
        if let ColorCount::Fixed(n) = self.colors
            && !(1..=MAX_COLORS).contains(&n)
        {
            return Err(PixelError::InvalidOption {
                name: "colors",
                message: format!("must be between 1 and {MAX_COLORS} or `auto`, got {n}"),
            });
        }
        validate_strength(self.dither_strength)
    }
}

fn validate_strength(strength: f32) -> Result<()> {
    if strength.is_finite() && (0.0..=MAX_DITHER_STRENGTH).contains(&strength) {
        Ok(())
    } else {
        Err(PixelError::InvalidOption {
            name: "dither_strength",
            message: format!(
                "must be a number between 0 and {MAX_DITHER_STRENGTH} (1 is the usual strength), got {strength}"
            ),
        })
    }
}

/// Chooses a palette for the image by k-means in OKLab (see [`QuantizeOptions`]).
///
/// Returns the image's own colours when it has no more than the requested count, and an empty
/// palette for a fully transparent image. The palette is sorted by lightness, darkest first.
pub fn kmeans_palette(img: &RgbaImage, opts: &QuantizeOptions) -> Result<Vec<[u8; 3]>> {
    opts.validate()?;
    ensure_not_empty(img.width(), img.height())?;
    let hist = Histogram::collect(img);
    Ok(choose_palette(&hist, opts).into_palette())
}

/// Maps every visible pixel to its nearest palette colour in OKLab, with optional dithering.
///
/// Alpha is kept; fully transparent pixels are left exactly as they are. `strength` scales the
/// dither (0..=2, 1 is standard).
pub fn map_to_palette(
    img: &RgbaImage,
    palette: &[[u8; 3]],
    dither: Dither,
    strength: f32,
) -> Result<RgbaImage> {
    validate_palette(palette)?;
    validate_strength(strength)?;
    ensure_not_empty(img.width(), img.height())?;
    let hist = Histogram::collect(img);
    Ok(dither::apply(img, &hist, palette, dither, strength))
}

/// Reduces the image to a k-means palette and maps it (with the chosen dithering).
///
/// Returns the new image and its palette (sorted darkest first). An image that already has no
/// more colours than asked comes back unchanged, with its own colours as the palette.
pub fn reduce(img: &RgbaImage, opts: &QuantizeOptions) -> Result<(RgbaImage, Vec<[u8; 3]>)> {
    opts.validate()?;
    ensure_not_empty(img.width(), img.height())?;
    let hist = Histogram::collect(img);
    match choose_palette(&hist, opts) {
        Choice::Identity(colors) => Ok((img.clone(), colors)),
        Choice::Reduced(colors) => {
            let out = dither::apply(img, &hist, &colors, opts.dither, opts.dither_strength);
            Ok((out, colors))
        }
    }
}

fn validate_palette(palette: &[[u8; 3]]) -> Result<()> {
    if palette.is_empty() {
        return Err(PixelError::InvalidOption {
            name: "palette",
            message: "the palette has no colours; give at least one".into(),
        });
    }
    if palette.len() > MAX_COLORS as usize {
        return Err(PixelError::InvalidOption {
            name: "palette",
            message: format!(
                "the palette has {} colours; at most {MAX_COLORS} are supported",
                palette.len()
            ),
        });
    }
    Ok(())
}

/// Outcome of palette selection.
enum Choice {
    /// The image already fits: its own colours (sorted), no remapping needed.
    Identity(Vec<[u8; 3]>),
    /// A new, smaller palette (sorted).
    Reduced(Vec<[u8; 3]>),
}

impl Choice {
    fn into_palette(self) -> Vec<[u8; 3]> {
        match self {
            Choice::Identity(c) | Choice::Reduced(c) => c,
        }
    }
}

/// Above this many distinct colours, k-means runs on 5-bit-per-channel bins instead.
const BIN_THRESHOLD: usize = 4096;

fn choose_palette(hist: &Histogram, opts: &QuantizeOptions) -> Choice {
    let n = hist.colors.len();
    let fits = match opts.colors {
        ColorCount::Fixed(k) => n <= k as usize,
        ColorCount::Auto => n <= 2,
    };
    if fits {
        return Choice::Identity(sort_palette(hist.colors.clone()));
    }
    let points = if n > BIN_THRESHOLD {
        kmeans::Points::binned(&hist.colors, &hist.labs, &hist.counts)
    } else {
        kmeans::Points::exact(&hist.labs, &hist.counts)
    };
    let pinned: Vec<usize> = match (opts.preserve_extremes, opts.colors) {
        (true, ColorCount::Fixed(1)) | (false, _) => Vec::new(),
        (true, _) => {
            let (dark, light) = hist.extremes();
            vec![dark, light]
        }
    };
    let pinned_lab: Vec<Oklab> = pinned.iter().map(|&i| hist.labs[i]).collect();
    let mut rng = kmeans::Rng::new(opts.seed);
    let centroids = match opts.colors {
        ColorCount::Fixed(k) => kmeans::kmeans(
            &points,
            k as usize,
            &pinned_lab,
            &mut rng,
            opts.max_iterations,
        ),
        ColorCount::Auto => kmeans::auto(
            &points,
            AUTO_MAX_COLORS as usize,
            &pinned_lab,
            &mut rng,
            opts.max_iterations,
        ),
    };
    if centroids.len() >= n {
        return Choice::Identity(sort_palette(hist.colors.clone()));
    }
    // Pinned centroids come first and keep their exact original bytes.
    let colors: Vec<[u8; 3]> = centroids
        .iter()
        .enumerate()
        .map(|(i, c)| match pinned.get(i) {
            Some(&src) => hist.colors[src],
            None => c.to_srgb(),
        })
        .collect();
    Choice::Reduced(sort_palette(colors))
}

/// Sorts colours by OKLab lightness (then a, b, bytes) and removes duplicates.
fn sort_palette(mut colors: Vec<[u8; 3]>) -> Vec<[u8; 3]> {
    colors.sort_unstable();
    colors.dedup();
    let mut keyed: Vec<(Oklab, [u8; 3])> = colors
        .into_iter()
        .map(|c| (Oklab::from_srgb(c), c))
        .collect();
    keyed.sort_by(|(x, cx), (y, cy)| {
        x.l.total_cmp(&y.l)
            .then(x.a.total_cmp(&y.a))
            .then(x.b.total_cmp(&y.b))
            .then(cx.cmp(cy))
    });
    keyed.into_iter().map(|(_, c)| c).collect()
}

/// Marks a transparent pixel in [`Histogram::pixel_index`].
const TRANSPARENT: u32 = u32::MAX;

/// The distinct visible colours of an image, their pixel counts and OKLab values, and which
/// distinct colour each pixel holds.
struct Histogram {
    colors: Vec<[u8; 3]>,
    labs: Vec<Oklab>,
    counts: Vec<u32>,
    /// Per pixel (row-major): index into `colors`, or [`TRANSPARENT`].
    pixel_index: Vec<u32>,
}

impl Histogram {
    /// Counts the visible colours. Colours are listed in increasing packed-RGB order, so the
    /// result depends only on which colours occur how often, not on where.
    fn collect(img: &RgbaImage) -> Self {
        let raw = img.as_raw();
        let (colors, counts, pixel_index) =
            collect_hashed(raw).unwrap_or_else(|| collect_bitmap(raw));
        let labs = colors.iter().map(|&c| Oklab::from_srgb(c)).collect();
        Self {
            colors,
            labs,
            counts,
            pixel_index,
        }
    }

    /// Indices of the darkest and lightest colours (by OKLab L; ties broken by the bytes).
    /// Only called with at least one colour.
    fn extremes(&self) -> (usize, usize) {
        let key = |i: &usize| (self.labs[*i].l, self.colors[*i]);
        let cmp = |x: &usize, y: &usize| {
            let (lx, cx) = key(x);
            let (ly, cy) = key(y);
            lx.total_cmp(&ly).then(cx.cmp(&cy))
        };
        let dark = (0..self.colors.len()).min_by(cmp).unwrap_or(0);
        let light = (0..self.colors.len()).max_by(cmp).unwrap_or(0);
        (dark, light)
    }
}

/// Past this many distinct colours the hash table gives way to a 2^24-bit presence bitmap
/// (3 MiB, two passes, no probing).
const HASH_MAX_COLORS: usize = 1 << 15;

type Collected = (Vec<[u8; 3]>, Vec<u32>, Vec<u32>);

#[inline]
fn pack(px: &[u8]) -> u32 {
    (u32::from(px[0]) << 16) | (u32::from(px[1]) << 8) | u32::from(px[2])
}

#[inline]
fn unpack(key: u32) -> [u8; 3] {
    let [_, r, g, b] = key.to_be_bytes();
    [r, g, b]
}

/// Hashes the colours, then renumbers them in key order; `None` past [`HASH_MAX_COLORS`].
fn collect_hashed(raw: &[u8]) -> Option<Collected> {
    let mut table = ColorTable::new();
    let mut keys: Vec<u32> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    let mut pixel_index = Vec::with_capacity(raw.len() / 4);
    let mut last_key = u32::MAX;
    let mut last_idx = 0u32;
    for px in raw.chunks_exact(4) {
        if px[3] == 0 {
            pixel_index.push(TRANSPARENT);
            continue;
        }
        let key = pack(px);
        if key != last_key {
            let next = keys.len() as u32;
            last_idx = table.get_or_insert(key, next);
            if last_idx == next {
                if keys.len() == HASH_MAX_COLORS {
                    return None;
                }
                keys.push(key);
                counts.push(0);
            }
            last_key = key;
        }
        counts[last_idx as usize] += 1;
        pixel_index.push(last_idx);
    }
    let mut order: Vec<u32> = (0..keys.len() as u32).collect();
    order.sort_unstable_by_key(|&i| keys[i as usize]);
    let mut renumber = vec![0u32; keys.len()];
    for (new, &old) in order.iter().enumerate() {
        renumber[old as usize] = new as u32;
    }
    for i in pixel_index.iter_mut().filter(|i| **i != TRANSPARENT) {
        *i = renumber[*i as usize];
    }
    let colors = order.iter().map(|&i| unpack(keys[i as usize])).collect();
    let counts = order.iter().map(|&i| counts[i as usize]).collect();
    Some((colors, counts, pixel_index))
}

/// Many colours: mark each colour in a 2^24-bit set; a colour's index is its rank in the set.
fn collect_bitmap(raw: &[u8]) -> Collected {
    let mut bits = vec![0u64; 1 << 18];
    for px in raw.chunks_exact(4).filter(|px| px[3] != 0) {
        let key = pack(px);
        bits[(key >> 6) as usize] |= 1u64 << (key & 63);
    }
    let mut rank = vec![0u32; bits.len()];
    let mut total = 0u32;
    let mut colors = Vec::new();
    for (word_index, (r, &word)) in rank.iter_mut().zip(&bits).enumerate() {
        *r = total;
        total += word.count_ones();
        let mut w = word;
        while w != 0 {
            colors.push(unpack(((word_index as u32) << 6) | w.trailing_zeros()));
            w &= w - 1;
        }
    }
    let mut counts = vec![0u32; colors.len()];
    let pixel_index = raw
        .chunks_exact(4)
        .map(|px| {
            if px[3] == 0 {
                return TRANSPARENT;
            }
            let key = pack(px);
            let word = (key >> 6) as usize;
            let below = bits[word] & ((1u64 << (key & 63)) - 1);
            let idx = rank[word] + below.count_ones();
            counts[idx as usize] += 1;
            idx
        })
        .collect();
    (colors, counts, pixel_index)
}

/// A small open-addressing hash map from packed RGB (24 bits) to an index.
struct ColorTable {
    keys: Vec<u32>,
    vals: Vec<u32>,
    len: usize,
    bits: u32,
}

impl ColorTable {
    const EMPTY: u32 = u32::MAX;

    fn new() -> Self {
        let bits = 8;
        Self {
            keys: vec![Self::EMPTY; 1 << bits],
            vals: vec![0; 1 << bits],
            len: 0,
            bits,
        }
    }

    #[inline]
    fn slot(key: u32, bits: u32) -> usize {
        (key.wrapping_mul(0x9E37_79B1) >> (32 - bits)) as usize
    }

    /// Returns the value stored for `key`, inserting `value` first if the key is new.
    fn get_or_insert(&mut self, key: u32, value: u32) -> u32 {
        if 2 * (self.len + 1) > self.keys.len() {
            self.grow();
        }
        let mask = self.keys.len() - 1;
        let mut i = Self::slot(key, self.bits);
        loop {
            let k = self.keys[i];
            if k == key {
                return self.vals[i];
            }
            if k == Self::EMPTY {
                self.keys[i] = key;
                self.vals[i] = value;
                self.len += 1;
                return value;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let bits = self.bits + 1;
        let mut keys = vec![Self::EMPTY; 1 << bits];
        let mut vals = vec![0; 1 << bits];
        let mask = keys.len() - 1;
        for (&k, &v) in self.keys.iter().zip(&self.vals) {
            if k == Self::EMPTY {
                continue;
            }
            let mut i = Self::slot(k, bits);
            while keys[i] != Self::EMPTY {
                i = (i + 1) & mask;
            }
            keys[i] = k;
            vals[i] = v;
        }
        self.keys = keys;
        self.vals = vals;
        self.bits = bits;
    }
}

/// Palette colours in OKLab, stored by component for a fast nearest-colour scan.
struct LabPalette {
    l: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
}

impl LabPalette {
    fn new(colors: &[Oklab]) -> Self {
        Self {
            l: colors.iter().map(|c| c.l).collect(),
            a: colors.iter().map(|c| c.a).collect(),
            b: colors.iter().map(|c| c.b).collect(),
        }
    }

    /// Index of the nearest colour (lowest index on ties) and its squared distance.
    /// Returns `(0, INFINITY)` for an empty palette.
    #[inline]
    fn nearest(&self, c: Oklab) -> (usize, f32) {
        let mut best = 0;
        let mut best_d = f32::INFINITY;
        for (i, ((&l, &a), &b)) in self.l.iter().zip(&self.a).zip(&self.b).enumerate() {
            let (dl, da, db) = (c.l - l, c.a - a, c.b - b);
            let d = dl * dl + da * da + db * db;
            if d < best_d {
                best_d = d;
                best = i;
            }
        }
        (best, best_d)
    }

    /// Like [`LabPalette::nearest`], also returning the second-smallest squared distance
    /// (`INFINITY` when there is only one colour).
    #[inline]
    fn nearest2(&self, c: Oklab) -> (usize, f32, f32) {
        let mut best = 0;
        let mut best_d = f32::INFINITY;
        let mut second_d = f32::INFINITY;
        for (i, ((&l, &a), &b)) in self.l.iter().zip(&self.a).zip(&self.b).enumerate() {
            let (dl, da, db) = (c.l - l, c.a - a, c.b - b);
            let d = dl * dl + da * da + db * db;
            if d < best_d {
                second_d = best_d;
                best_d = d;
                best = i;
            } else if d < second_d {
                second_d = d;
            }
        }
        (best, best_d, second_d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    #[test]
    fn color_table_maps_keys_back_through_growth() {
        let mut t = ColorTable::new();
        for k in 0..10_000u32 {
            let key = k.wrapping_mul(2_654_435_761) & 0x00FF_FFFF;
            let v = t.get_or_insert(key, k);
            // Keys are distinct for these k (odd multiplier mod 2^24 is a bijection).
            assert_eq!(v, k);
        }
        for k in 0..10_000u32 {
            let key = k.wrapping_mul(2_654_435_761) & 0x00FF_FFFF;
            assert_eq!(t.get_or_insert(key, 99_999), k);
        }
        assert_eq!(t.len, 10_000);
    }

    #[test]
    fn histogram_counts_colours_and_skips_transparent() {
        let mut img = RgbaImage::from_pixel(4, 2, Rgba([10, 20, 30, 255]));
        img.put_pixel(1, 0, Rgba([1, 2, 3, 0]));
        img.put_pixel(2, 1, Rgba([200, 0, 0, 128]));
        let h = Histogram::collect(&img);
        assert_eq!(h.colors, vec![[10, 20, 30], [200, 0, 0]]);
        assert_eq!(h.counts, vec![6, 1]);
        assert_eq!(h.pixel_index, vec![0, TRANSPARENT, 0, 0, 0, 0, 1, 0]);
        // Listed in key order whatever the pixel order.
        let img = RgbaImage::from_fn(3, 1, |x, _| Rgba([9 - x as u8, 0, 0, 255]));
        let h = Histogram::collect(&img);
        assert_eq!(h.colors, vec![[7, 0, 0], [8, 0, 0], [9, 0, 0]]);
        assert_eq!(h.pixel_index, vec![2, 1, 0]);
    }

    #[test]
    fn bitmap_and_hash_collection_agree() {
        let mut s = 12345u32;
        let raw: Vec<u8> = (0..20_000 * 4)
            .map(|i| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Few distinct values per channel so colours repeat; alpha sometimes 0.
                if i % 4 == 3 {
                    if s >> 29 == 0 { 0 } else { 255 }
                } else {
                    ((s >> 24) & 0x1F) as u8
                }
            })
            .collect();
        assert_eq!(collect_hashed(&raw), Some(collect_bitmap(&raw)));
        let many: Vec<u8> = (0..HASH_MAX_COLORS as u32 + 1)
            .flat_map(|i| [(i >> 16) as u8, (i >> 8) as u8, i as u8, 255])
            .collect();
        assert_eq!(collect_hashed(&many), None);
        assert_eq!(collect_bitmap(&many).0.len(), HASH_MAX_COLORS + 1);
        let (colors, counts, index) = collect_bitmap(&raw);
        assert!(colors.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            counts.iter().sum::<u32>() as usize,
            index.iter().filter(|&&i| i != TRANSPARENT).count()
        );
        for (px, &i) in raw.chunks_exact(4).zip(&index) {
            if px[3] != 0 {
                assert_eq!(colors[i as usize], [px[0], px[1], px[2]]);
            }
        }
    }

    #[test]
    fn extremes_are_darkest_and_lightest_by_l() {
        let img = RgbaImage::from_fn(3, 1, |x, _| match x {
            0 => Rgba([120, 0, 0, 255]),
            1 => Rgba([0, 0, 40, 255]),
            _ => Rgba([255, 255, 0, 255]),
        });
        let h = Histogram::collect(&img);
        let (d, l) = h.extremes();
        assert_eq!(h.colors[d], [0, 0, 40]);
        assert_eq!(h.colors[l], [255, 255, 0]);
    }

    #[test]
    fn sort_palette_orders_by_lightness_and_dedups() {
        let p = sort_palette(vec![[255, 255, 255], [0, 0, 0], [128, 128, 128], [0, 0, 0]]);
        assert_eq!(p, vec![[0, 0, 0], [128, 128, 128], [255, 255, 255]]);
    }

    #[test]
    fn nearest_picks_closest_and_first_on_ties() {
        let cols = [
            Oklab::from_srgb([0, 0, 0]),
            Oklab::from_srgb([255, 255, 255]),
            Oklab::from_srgb([0, 0, 0]),
        ];
        let p = LabPalette::new(&cols);
        assert_eq!(p.nearest(Oklab::from_srgb([30, 30, 30])).0, 0);
        assert_eq!(p.nearest(Oklab::from_srgb([230, 230, 230])).0, 1);
    }

    #[test]
    fn parse_and_serde_of_options() {
        assert_eq!("auto".parse::<ColorCount>().unwrap(), ColorCount::Auto);
        assert_eq!(" 16 ".parse::<ColorCount>().unwrap(), ColorCount::Fixed(16));
        assert!("many".parse::<ColorCount>().is_err());
        for d in Dither::ALL {
            assert_eq!(d.name().parse::<Dither>().unwrap(), d);
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{}\"", d.name()));
        }
        assert_eq!(
            "Floyd-Steinberg".parse::<Dither>().unwrap(),
            Dither::FloydSteinberg
        );
        assert!("sparkle".parse::<Dither>().is_err());

        let o: QuantizeOptions =
            serde_json::from_str(r#"{"colors":"auto","dither":"bayer8"}"#).unwrap();
        assert_eq!(o.colors, ColorCount::Auto);
        assert_eq!(o.dither, Dither::Bayer8);
        assert_eq!(o.seed, 0);
        assert!(o.preserve_extremes);
        let o: QuantizeOptions = serde_json::from_str(r#"{"colors":8}"#).unwrap();
        assert_eq!(o.colors, ColorCount::Fixed(8));
        let back: QuantizeOptions =
            serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
        assert!(serde_json::from_str::<QuantizeOptions>(r#"{"colors":-3}"#).is_err());
        assert!(serde_json::from_str::<QuantizeOptions>(r#"{"colors":"lots"}"#).is_err());
    }

    #[test]
    fn validate_rejects_out_of_range() {
        let mut o = QuantizeOptions::default();
        assert!(o.validate().is_ok());
        o.colors = ColorCount::Fixed(0);
        assert!(matches!(
            o.validate(),
            Err(PixelError::InvalidOption { name: "colors", .. })
        ));
        o.colors = ColorCount::Fixed(257);
        assert!(o.validate().is_err());
        o.colors = ColorCount::Fixed(256);
        assert!(o.validate().is_ok());
        o.dither_strength = f32::NAN;
        assert!(matches!(
            o.validate(),
            Err(PixelError::InvalidOption {
                name: "dither_strength",
                ..
            })
        ));
        o.dither_strength = -0.1;
        assert!(o.validate().is_err());
    }
}
