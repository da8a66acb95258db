//! Downscale to the grid: one robust colour per cell, then global colour consolidation.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use image::{Rgba, RgbaImage};

use super::{Grid, GridOptions};
use crate::color::Oklab;

/// Pixels within this many levels (largest channel difference) of the seed colour take part
/// in the first estimate of a cell's colour.
const SEED_TOLERANCE: u8 = 24;
/// Pixels within this many levels of the first estimate make up the cell's colour.
const INLIER_TOLERANCE: u8 = 12;

/// Robust colour sums of one cell: `count == 0` means transparent.
#[derive(Clone, Copy, Default)]
struct CellStat {
    sum: [u64; 4],
    count: u64,
}

impl CellStat {
    fn mean(&self) -> [u8; 4] {
        let mut m = [0u8; 4];
        for (o, &s) in m.iter_mut().zip(&self.sum) {
            *o = ((2 * s + self.count) / (2 * self.count)).min(255) as u8;
        }
        m
    }
}

/// Downscales `img` to one pixel per cell of `grid`.
///
/// Each cell's colour comes from its interior (a border band of about a quarter cell is
/// skipped, as blur lives there): a cell that is mostly transparent (alpha < 128) becomes
/// fully transparent; otherwise the mean of the pixels close to the cell's dominant colour
/// (outliers such as blurred neighbours and specks are left out). Then colours closer than
/// `opts.merge_tolerance` in OKLab are merged and each group gets the mean of all its cells'
/// inlier pixels, so that noise and per-cell jitter of one source colour disappear.
///
/// Cuts outside the image or out of order are clamped, never a panic.
pub fn downscale(img: &RgbaImage, grid: &Grid, opts: &GridOptions) -> RgbaImage {
    let (w, h) = img.dimensions();
    let (cols, rows) = (grid.columns(), grid.rows());
    let mut out = RgbaImage::new(cols, rows);
    if w == 0 || h == 0 || cols == 0 || rows == 0 {
        return out;
    }
    let band_x = band(grid.x.cell);
    let band_y = band(grid.y.cell);
    let spans_x = spans(&grid.x.cuts, w, band_x);
    let spans_y = spans(&grid.y.cuts, h, band_y);
    let mut scratch = Scratch::default();
    let mut stats = Vec::with_capacity(cols as usize * rows as usize);
    for &[_, y0, y1, _] in &spans_y {
        for &[_, x0, x1, _] in &spans_x {
            stats.push(cell_stat(img, x0, x1, y0, y1, &mut scratch));
        }
    }
    let (groups, n_groups) = consolidate(&stats, opts.merge_tolerance);
    let colours = group_colours(img, &spans_x, &spans_y, &groups, n_groups);
    for (px, g) in out.pixels_mut().zip(&groups) {
        *px = Rgba(g.map_or([0; 4], |g| colours[g]));
    }
    out
}

/// Colour of every group: per channel, a clipping-aware trimmed mean (see
/// [`histogram_estimate`]) of the opaque pixels of the group's cells: their interiors, plus
/// the border bands that face a cell of the same group (no foreign colour blurred in there).
fn group_colours(
    img: &RgbaImage,
    spans_x: &[[u32; 4]],
    spans_y: &[[u32; 4]],
    groups: &[Option<usize>],
    n_groups: usize,
) -> Vec<[u8; 4]> {
    // Cells ordered by group (counting sort), so that one histogram serves each group in turn.
    let mut starts = vec![0usize; n_groups + 1];
    for g in groups.iter().flatten() {
        starts[g + 1] += 1;
    }
    for i in 0..n_groups {
        starts[i + 1] += starts[i];
    }
    let mut fill = starts.clone();
    let mut order = vec![0usize; starts[n_groups]];
    for (cell, g) in groups.iter().enumerate() {
        if let Some(g) = *g {
            order[fill[g]] = cell;
            fill[g] += 1;
        }
    }
    let raw: &[u8] = img.as_raw();
    let stride = 4 * img.width() as usize;
    let cols = spans_x.len();
    let rows = spans_y.len();
    let group_at = |cx: usize, cy: usize, dx: isize, dy: isize| -> Option<usize> {
        let x = cx.checked_add_signed(dx).filter(|&x| x < cols)?;
        let y = cy.checked_add_signed(dy).filter(|&y| y < rows)?;
        groups[y * cols + x]
    };
    let mut hist = vec![[0u32; 256]; 4];
    let mut out = vec![[0u8; 4]; n_groups];
    for (g, colour) in out.iter_mut().enumerate() {
        for h in hist.iter_mut() {
            h.fill(0);
        }
        // Large groups are sampled (every k-th cell, about 2^17 pixels in all): plenty for a
        // trimmed mean, and the histogram pass stays cheap.
        let cells = &order[starts[g]..starts[g + 1]];
        let pixels: u64 = cells
            .iter()
            .map(|&c| {
                let (sx, sy) = (spans_x[c % cols], spans_y[c / cols]);
                (sx[3] - sx[0]) as u64 * (sy[3] - sy[0]) as u64
            })
            .sum();
        let step = pixels.div_ceil(1 << 17).max(1) as usize;
        for &cell in cells.iter().step_by(step) {
            let (cx, cy) = (cell % cols, cell / cols);
            let (sx, sy) = (spans_x[cx], spans_y[cy]);
            // 3x3 zones: bands and interior per axis; a zone counts when every cell whose
            // colour could blur into it is of this group.
            for zy in -1isize..=1 {
                let (y0, y1) = zone(&sy, zy);
                for zx in -1isize..=1 {
                    let (x0, x1) = zone(&sx, zx);
                    if x0 >= x1 || y0 >= y1 {
                        continue;
                    }
                    let same = |dx, dy| (dx == 0 && dy == 0) || group_at(cx, cy, dx, dy) == Some(g);
                    if !(same(zx, 0) && same(0, zy) && same(zx, zy)) {
                        continue;
                    }
                    for y in y0..y1 {
                        let start = y as usize * stride + 4 * x0 as usize;
                        for p in raw[start..start + 4 * (x1 - x0) as usize].chunks_exact(4) {
                            if p[3] >= 128 {
                                for (h, &v) in hist.iter_mut().zip(p) {
                                    h[v as usize] += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        for (c, h) in colour.iter_mut().zip(&hist) {
            *c = histogram_estimate(h);
        }
    }
    out
}

/// Robust centre of one channel's histogram: the median, refined by the mean of a window
/// symmetric around it (half-width about 3.7 MADs, so all noise and no blurred neighbour),
/// kept clear of the clipped values 0 and 255 so that clipped noise does not bias it.
fn histogram_estimate(h: &[u32; 256]) -> u8 {
    let n: u64 = h.iter().map(|&v| v as u64).sum();
    if n == 0 {
        return 0;
    }
    let mut acc = 0u64;
    let mut med = 255usize;
    for (v, &c) in h.iter().enumerate() {
        acc += c as u64;
        if 2 * acc >= n {
            med = v;
            break;
        }
    }
    if med == 0 || med == 255 {
        return med as u8;
    }
    // Median absolute deviation.
    let mut within = h[med] as u64;
    let mut mad = 0usize;
    while 2 * within < n && mad < 255 {
        mad += 1;
        within += med.checked_sub(mad).map_or(0, |i| h[i] as u64);
        within += h.get(med + mad).map_or(0, |&c| c as u64);
    }
    let t = ((mad as f64 * 3.7).round() as usize)
        .max(1)
        .min(med - 1)
        .min(254 - med);
    let (mut sum, mut cnt) = (0u64, 0u64);
    for (v, &c) in h.iter().enumerate().take(med + t + 1).skip(med - t) {
        sum += v as u64 * c as u64;
        cnt += c as u64;
    }
    ((2 * sum + cnt) / (2 * cnt)) as u8
}

/// Width of the skipped border band for a cell of size `cell`.
fn band(cell: f32) -> u32 {
    if cell.is_finite() && cell > 0.0 {
        ((cell + 1.0) / 4.0).floor() as u32
    } else {
        0
    }
}

/// Pixel range of zone -1 (leading band), 0 (interior) or 1 (trailing band) of a span.
fn zone(s: &[u32; 4], z: isize) -> (u32, u32) {
    match z {
        -1 => (s[0], s[1]),
        0 => (s[1], s[2]),
        _ => (s[2], s[3]),
    }
}

/// Cells described by `cuts` as `[start, interior start, interior end, end]`, clamped to
/// `0..len`, the interior never empty. The band is skipped only on sides that border another
/// cell (not the image edge).
fn spans(cuts: &[u32], len: u32, band: u32) -> Vec<[u32; 4]> {
    cuts.windows(2)
        .map(|c| {
            let a = c[0].min(len - 1);
            let b = c[1].min(len).max(a + 1);
            let (mut lo, mut hi) = (a, b);
            if a > 0 {
                lo = (a + band).min(b - 1);
            }
            if b < len {
                hi = b.saturating_sub(band).max(lo + 1);
            }
            if hi <= lo {
                // Band wider than the cell: keep its middle pixel.
                let mid = a + (b - a) / 2;
                (lo, hi) = (mid, mid + 1);
            }
            [a, lo, hi, b]
        })
        .collect()
}

/// Reused buffers for median computation.
#[derive(Default)]
struct Scratch {
    channels: [Vec<u8>; 4],
}

/// Largest per-channel difference between two RGBA colours.
#[inline]
fn max_diff(a: &[u8], b: &[u8; 4]) -> u8 {
    a[0].abs_diff(b[0])
        .max(a[1].abs_diff(b[1]))
        .max(a[2].abs_diff(b[2]))
        .max(a[3].abs_diff(b[3]))
}

/// Sums of opaque pixels of the rectangle within `tol` of `centre`.
fn sum_near(img: &RgbaImage, rect: (u32, u32, u32, u32), centre: &[u8; 4], tol: u8) -> CellStat {
    let (x0, x1, y0, y1) = rect;
    let raw: &[u8] = img.as_raw();
    let stride = 4 * img.width() as usize;
    let mut st = CellStat::default();
    for y in y0..y1 {
        let start = y as usize * stride + 4 * x0 as usize;
        let row = &raw[start..start + 4 * (x1 - x0) as usize];
        for p in row.chunks_exact(4) {
            if p[3] >= 128 && max_diff(p, centre) <= tol {
                for (s, &v) in st.sum.iter_mut().zip(p) {
                    *s += v as u64;
                }
                st.count += 1;
            }
        }
    }
    st
}

/// Robust colour of the interior rectangle `x0..x1` × `y0..y1`.
fn cell_stat(
    img: &RgbaImage,
    x0: u32,
    x1: u32,
    y0: u32,
    y1: u32,
    scratch: &mut Scratch,
) -> CellStat {
    let raw: &[u8] = img.as_raw();
    let stride = 4 * img.width() as usize;
    let rect = (x0, x1, y0, y1);
    let total = (x1 - x0) as u64 * (y1 - y0) as u64;
    let mut opaque = 0u64;
    for y in y0..y1 {
        let start = y as usize * stride + 4 * x0 as usize;
        let row = &raw[start..start + 4 * (x1 - x0) as usize];
        opaque += row.chunks_exact(4).filter(|p| p[3] >= 128).count() as u64;
    }
    if opaque * 2 <= total {
        return CellStat::default();
    }
    let pixel = |x: u32, y: u32| {
        let i = y as usize * stride + 4 * x as usize;
        [raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]
    };
    let centre = pixel((x0 + x1) / 2, (y0 + y1) / 2);
    let mut first = if centre[3] >= 128 {
        sum_near(img, rect, &centre, SEED_TOLERANCE)
    } else {
        CellStat::default()
    };
    if first.count * 2 < opaque {
        let median = median_colour(img, rect, scratch);
        first = sum_near(img, rect, &median, SEED_TOLERANCE);
        if first.count == 0 {
            first = sum_near(img, rect, &median, 255);
        }
    }
    let second = sum_near(img, rect, &first.mean(), INLIER_TOLERANCE);
    if second.count > 0 { second } else { first }
}

/// Per-channel median of the opaque pixels of the rectangle.
fn median_colour(img: &RgbaImage, rect: (u32, u32, u32, u32), scratch: &mut Scratch) -> [u8; 4] {
    let (x0, x1, y0, y1) = rect;
    for ch in &mut scratch.channels {
        ch.clear();
    }
    for y in y0..y1 {
        for x in x0..x1 {
            let p = img.get_pixel(x, y).0;
            if p[3] >= 128 {
                for (ch, v) in scratch.channels.iter_mut().zip(p) {
                    ch.push(v);
                }
            }
        }
    }
    let mut m = [0u8; 4];
    for (o, ch) in m.iter_mut().zip(&mut scratch.channels) {
        if !ch.is_empty() {
            let mid = ch.len() / 2;
            *o = *ch.select_nth_unstable(mid).1;
        }
    }
    m
}

/// A distinct cell colour with its pixel sums.
struct Distinct {
    colour: [u8; 4],
    lab: Oklab,
    stat: CellStat,
}

/// A small multiplicative hasher for the integer bucket keys (SipHash is needlessly slow here).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_i32(&mut self, v: i32) {
        self.write_u64(v as u32 as u64);
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// OKLab buckets of side `2 * tol`: all colours within `tol` of a point lie in the 2x2x2
/// buckets nearest to it.
type Index = HashMap<(i32, i32, i32), Vec<usize>, BuildHasherDefault<KeyHasher>>;

/// Bucket key of an OKLab colour (buckets of side `2 * tol`).
fn key(c: Oklab, tol: f32) -> (i32, i32, i32) {
    let s = 2.0 * tol;
    (
        (c.l / s).floor() as i32,
        (c.a / s).floor() as i32,
        (c.b / s).floor() as i32,
    )
}

/// Squared distance in OKLab plus alpha (alpha 0..255 scaled to 0..1).
fn dist2(a: Oklab, aa: u8, b: Oklab, ba: u8) -> f32 {
    let da = (aa as f32 - ba as f32) / 255.0;
    a.dist2(b) + da * da
}

/// Nearest entry of `index` to `lab` within `tol` (lowest index on ties).
fn nearest(
    index: &Index,
    centres: &[(Oklab, u8)],
    lab: Oklab,
    alpha: u8,
    tol: f32,
) -> Option<usize> {
    let s = 2.0 * tol;
    // Per axis: this bucket and the neighbour on the nearer side.
    let axis = |v: f32| {
        let k = (v / s).floor();
        let near = if v - k * s < tol { -1 } else { 1 };
        [k as i32, k as i32 + near]
    };
    let (ls, as_, bs) = (axis(lab.l), axis(lab.a), axis(lab.b));
    let mut best: Option<(usize, f32)> = None;
    for kl in ls {
        for ka in as_ {
            for kb in bs {
                let Some(list) = index.get(&(kl, ka, kb)) else {
                    continue;
                };
                for &i in list {
                    let (c, ca) = centres[i];
                    let d = dist2(lab, alpha, c, ca);
                    if d <= tol * tol && best.is_none_or(|(bi, bd)| d < bd || (d == bd && i < bi)) {
                        best = Some((i, d));
                    }
                }
            }
        }
    }
    best.map(|b| b.0)
}

/// Colour group of every cell (`None` for transparent cells) after merging near-identical
/// colours, and the number of groups.
fn consolidate(stats: &[CellStat], tol: f32) -> (Vec<Option<usize>>, usize) {
    if tol <= 0.0 {
        let mut n = 0;
        let groups = stats
            .iter()
            .map(|s| {
                (s.count > 0).then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect();
        return (groups, n);
    }
    // Cell colours rounded to even levels (far below the tolerance) so that noisy variants of
    // one colour share an entry: fewer distinct colours to convert and cluster.
    let means: Vec<[u8; 4]> = stats
        .iter()
        .map(|s| {
            if s.count == 0 {
                [0; 4]
            } else {
                s.mean().map(|v| v & !1)
            }
        })
        .collect();
    // Distinct colours, most pixels first (ties by colour value, for determinism).
    let mut order: Vec<usize> = (0..stats.len()).filter(|&i| stats[i].count > 0).collect();
    order.sort_unstable_by_key(|&i| means[i]);
    let mut distinct: Vec<Distinct> = Vec::new();
    let mut cell_distinct = vec![usize::MAX; stats.len()];
    for &i in &order {
        match distinct.last_mut() {
            Some(d) if d.colour == means[i] => {
                for (a, b) in d.stat.sum.iter_mut().zip(stats[i].sum) {
                    *a += b;
                }
                d.stat.count += stats[i].count;
            }
            _ => {
                let c = means[i];
                distinct.push(Distinct {
                    colour: c,
                    lab: Oklab::from_srgb([c[0], c[1], c[2]]),
                    stat: stats[i],
                });
            }
        }
        cell_distinct[i] = distinct.len() - 1;
    }
    let mut by_size: Vec<usize> = (0..distinct.len()).collect();
    by_size.sort_by(|&a, &b| {
        distinct[b]
            .stat
            .count
            .cmp(&distinct[a].stat.count)
            .then(distinct[a].colour.cmp(&distinct[b].colour))
    });
    // Leader clustering: each colour joins the nearest leader within tolerance.
    let mut leaders: Vec<(Oklab, u8)> = Vec::new();
    let mut index = Index::default();
    let mut group = vec![0usize; distinct.len()];
    for &d in &by_size {
        let (lab, a) = (distinct[d].lab, distinct[d].colour[3]);
        group[d] = match nearest(&index, &leaders, lab, a, tol) {
            Some(g) => g,
            None => {
                leaders.push((lab, a));
                index
                    .entry(key(lab, tol))
                    .or_default()
                    .push(leaders.len() - 1);
                leaders.len() - 1
            }
        };
    }
    let group_means = |group: &[usize], n: usize| {
        let mut sums = vec![CellStat::default(); n];
        for (d, &g) in distinct.iter().zip(group) {
            for (a, b) in sums[g].sum.iter_mut().zip(d.stat.sum) {
                *a += b;
            }
            sums[g].count += d.stat.count;
        }
        sums.iter().map(|s| s.mean()).collect::<Vec<_>>()
    };
    // One refinement: reassign each colour to the nearest group mean.
    let means1 = group_means(&group, leaders.len());
    let centres: Vec<(Oklab, u8)> = means1
        .iter()
        .map(|c| (Oklab::from_srgb([c[0], c[1], c[2]]), c[3]))
        .collect();
    let mut index = Index::default();
    for (i, c) in centres.iter().enumerate() {
        index.entry(key(c.0, tol)).or_default().push(i);
    }
    for (d, g) in distinct.iter().zip(group.iter_mut()) {
        if let Some(n) = nearest(&index, &centres, d.lab, d.colour[3], tol) {
            *g = n;
        }
    }
    // Renumber the groups still in use, in order of first use.
    let mut renumber = vec![usize::MAX; leaders.len()];
    let mut n = 0;
    let groups = (0..stats.len())
        .map(|i| {
            (stats[i].count > 0).then(|| {
                let g = group[cell_distinct[i]];
                if renumber[g] == usize::MAX {
                    renumber[g] = n;
                    n += 1;
                }
                renumber[g]
            })
        })
        .collect();
    (groups, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::Axis;

    fn grid(w: u32, h: u32, cols: u32, rows: u32) -> Grid {
        Grid {
            x: Axis::uniform(w, cols),
            y: Axis::uniform(h, rows),
            confidence: 1.0,
        }
    }

    #[test]
    fn interior_colour_ignores_blurred_border_and_specks() {
        // 3x3 cells of 8x8 grey; the middle one is red inside a grey (blurred) border ring,
        // with one white speck.
        let mut img = RgbaImage::from_pixel(24, 24, Rgba([128, 128, 128, 255]));
        for y in 10..14 {
            for x in 10..14 {
                img.put_pixel(x, y, Rgba([200, 10, 10, 255]));
            }
        }
        img.put_pixel(11, 11, Rgba([255, 255, 255, 255]));
        let out = downscale(&img, &grid(24, 24, 3, 3), &GridOptions::default());
        assert_eq!(out.get_pixel(1, 1).0, [200, 10, 10, 255]);
        assert_eq!(out.get_pixel(0, 1).0, [128, 128, 128, 255]);
    }

    #[test]
    fn mostly_transparent_cell_becomes_transparent() {
        let mut img = RgbaImage::from_pixel(8, 4, Rgba([0, 0, 0, 0]));
        img.put_pixel(2, 2, Rgba([255, 0, 0, 255]));
        for y in 0..4 {
            for x in 4..8 {
                img.put_pixel(x, y, Rgba([0, 0, 255, 255]));
            }
        }
        let out = downscale(&img, &grid(8, 4, 2, 1), &GridOptions::default());
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0, 0]);
        assert_eq!(out.get_pixel(1, 0).0, [0, 0, 255, 255]);
    }

    #[test]
    fn merges_jittered_cells_to_one_mean_colour() {
        // Four 4x4 cells of (100,150,200) jittered by -2, -1, +1, +2 on red: one colour.
        let mut img = RgbaImage::new(16, 4);
        for (i, j) in [-2i32, -1, 1, 2].into_iter().enumerate() {
            for y in 0..4 {
                for x in 0..4 {
                    img.put_pixel(4 * i as u32 + x, y, Rgba([(100 + j) as u8, 150, 200, 255]));
                }
            }
        }
        let g = grid(16, 4, 4, 1);
        let out = downscale(&img, &g, &GridOptions::default());
        for x in 0..4 {
            assert_eq!(out.get_pixel(x, 0).0, [100, 150, 200, 255]);
        }
        let raw = downscale(
            &img,
            &g,
            &GridOptions {
                merge_tolerance: 0.0,
                ..GridOptions::default()
            },
        );
        assert_eq!(raw.get_pixel(0, 0).0, [98, 150, 200, 255]);
    }

    #[test]
    fn distinct_colours_stay_apart() {
        let mut img = RgbaImage::new(8, 4);
        for y in 0..4 {
            for x in 0..8 {
                let c = if x < 4 {
                    [40, 40, 40, 255]
                } else {
                    [70, 70, 70, 255]
                };
                img.put_pixel(x, y, Rgba(c));
            }
        }
        let out = downscale(&img, &grid(8, 4, 2, 1), &GridOptions::default());
        assert_eq!(out.get_pixel(0, 0).0, [40, 40, 40, 255]);
        assert_eq!(out.get_pixel(1, 0).0, [70, 70, 70, 255]);
    }

    #[test]
    fn bad_cuts_do_not_panic() {
        let img = RgbaImage::from_pixel(4, 4, Rgba([1, 2, 3, 255]));
        let g = Grid {
            x: Axis {
                cell: 0.0,
                offset: 0.0,
                cuts: vec![0, 9, 3, 100],
            },
            y: Axis {
                cell: f32::NAN,
                offset: 0.0,
                cuts: vec![7, 7],
            },
            confidence: 0.0,
        };
        let out = downscale(&img, &g, &GridOptions::default());
        assert_eq!(out.dimensions(), (3, 1));
        assert!(out.pixels().all(|p| p.0 == [1, 2, 3, 255]));
    }
}
