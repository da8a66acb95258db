//! Weighted k-means in OKLab: seeded k-means++ start, Lloyd iterations, and the automatic colour count.

use super::LabPalette;
use crate::color::Oklab;

/// Auto count stops once the pixels' RMS OKLab error is this small (about a just-noticeable difference).
const AUTO_TARGET_RMSE: f64 = 0.015;

/// Auto count stops when one more colour removes less than this share of the image's total variance.
const AUTO_MIN_GAIN: f64 = 0.005;

/// Lloyd iterations stop once no centroid moves more than this in an update (a fifth of the
/// smallest sRGB byte step: invisible once the centroids are rounded to bytes).
const SETTLE_SHIFT: f32 = 5e-4;

/// Lloyd iterations per growth step of the automatic count.
const AUTO_STEP_ITERATIONS: u32 = 12;

/// A tiny seeded generator (SplitMix64): deterministic on every platform.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(super) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Weighted points to cluster.
pub(super) struct Points {
    lab: Vec<Oklab>,
    weight: Vec<f64>,
    total_weight: f64,
}

impl Points {
    /// One point per distinct colour, weighted by its pixel count.
    pub(super) fn exact(labs: &[Oklab], counts: &[u32]) -> Self {
        Self::new(
            labs.to_vec(),
            counts.iter().map(|&c| f64::from(c)).collect(),
        )
    }

    /// One point per 5-bit-per-channel sRGB bin: the weighted OKLab mean of the colours in it.
    pub(super) fn binned(colors: &[[u8; 3]], labs: &[Oklab], counts: &[u32]) -> Self {
        let mut sums = vec![[0.0f64; 4]; 1 << 15];
        for ((c, lab), &n) in colors.iter().zip(labs).zip(counts) {
            let bin = (usize::from(c[0] >> 3) << 10)
                | (usize::from(c[1] >> 3) << 5)
                | usize::from(c[2] >> 3);
            let w = f64::from(n);
            let s = &mut sums[bin];
            s[0] += w * f64::from(lab.l);
            s[1] += w * f64::from(lab.a);
            s[2] += w * f64::from(lab.b);
            s[3] += w;
        }
        let mut lab = Vec::new();
        let mut weight = Vec::new();
        for s in sums.iter().filter(|s| s[3] > 0.0) {
            lab.push(Oklab {
                l: (s[0] / s[3]) as f32,
                a: (s[1] / s[3]) as f32,
                b: (s[2] / s[3]) as f32,
            });
            weight.push(s[3]);
        }
        Self::new(lab, weight)
    }

    fn new(lab: Vec<Oklab>, weight: Vec<f64>) -> Self {
        let total_weight = weight.iter().sum();
        Self {
            lab,
            weight,
            total_weight,
        }
    }

    fn len(&self) -> usize {
        self.lab.len()
    }

    /// Weighted mean squared distance to the weighted mean (the error of a one-colour palette).
    fn variance(&self) -> f64 {
        if self.total_weight <= 0.0 {
            return 0.0;
        }
        let mut m = [0.0f64; 3];
        for (p, &w) in self.lab.iter().zip(&self.weight) {
            m[0] += w * f64::from(p.l);
            m[1] += w * f64::from(p.a);
            m[2] += w * f64::from(p.b);
        }
        let mean = Oklab {
            l: (m[0] / self.total_weight) as f32,
            a: (m[1] / self.total_weight) as f32,
            b: (m[2] / self.total_weight) as f32,
        };
        let sum: f64 = self
            .lab
            .iter()
            .zip(&self.weight)
            .map(|(p, &w)| w * f64::from(p.dist2(mean)))
            .sum();
        sum / self.total_weight
    }

    /// Index drawn with probability proportional to `weight * extra[i]`; `None` if all are zero.
    fn sample(&self, extra: Option<&[f32]>, rng: &mut Rng) -> Option<usize> {
        let mass = |i: usize| -> f64 {
            let w = self.weight[i];
            match extra {
                Some(d2) => w * f64::from(d2[i]),
                None => w,
            }
        };
        let total: f64 = (0..self.len()).map(mass).sum();
        if total.is_nan() || total <= 0.0 {
            return None;
        }
        let target = rng.next_f64() * total;
        let mut acc = 0.0;
        let mut last_positive = None;
        for i in 0..self.len() {
            let m = mass(i);
            if m > 0.0 {
                last_positive = Some(i);
                acc += m;
                if acc > target {
                    return Some(i);
                }
            }
        }
        last_positive
    }

    /// Lowers `d2[i]` to the squared distance from point i to `c` where that is closer.
    fn tighten(&self, d2: &mut [f32], c: Oklab) {
        for (d, p) in d2.iter_mut().zip(&self.lab) {
            *d = d.min(p.dist2(c));
        }
    }
}

/// k-means++ initialisation (after the pinned centroids) followed by Lloyd iterations.
/// Returns at most `k` centroids, pinned ones first and unchanged.
pub(super) fn kmeans(
    points: &Points,
    k: usize,
    pinned: &[Oklab],
    rng: &mut Rng,
    max_iter: u32,
) -> Vec<Oklab> {
    let mut centroids: Vec<Oklab> = pinned.iter().copied().take(k).collect();
    if points.len() == 0 || k == 0 {
        return centroids;
    }
    let mut d2 = vec![f32::INFINITY; points.len()];
    for &c in &centroids {
        points.tighten(&mut d2, c);
    }
    if centroids.is_empty()
        && let Some(i) = points.sample(None, rng)
    {
        centroids.push(points.lab[i]);
        points.tighten(&mut d2, points.lab[i]);
    }
    while centroids.len() < k {
        let Some(i) = points.sample(Some(&d2), rng) else {
            break;
        };
        centroids.push(points.lab[i]);
        points.tighten(&mut d2, points.lab[i]);
    }
    let n_pinned = pinned.len().min(centroids.len());
    lloyd(points, &mut centroids, n_pinned, max_iter);
    centroids
}

/// Grows the palette one colour at a time (warm-started k-means, the new colour placed where the
/// weighted error is largest) and stops at the knee of the error curve: when the error is already
/// near a just-noticeable difference, or one more colour barely lowers it.
pub(super) fn auto(
    points: &Points,
    max_k: usize,
    pinned: &[Oklab],
    rng: &mut Rng,
    max_iter: u32,
) -> Vec<Oklab> {
    let variance = points.variance();
    // Growth steps use a short Lloyd run; the chosen palette is then polished fully.
    let step_iter = max_iter.min(AUTO_STEP_ITERATIONS);
    let mut centroids = kmeans(points, 2, pinned, rng, step_iter);
    let n_pinned = pinned.len().min(centroids.len());
    let (mut err, mut d2) = lloyd(points, &mut centroids, n_pinned, step_iter);
    let finish = |mut c: Vec<Oklab>| {
        lloyd(points, &mut c, n_pinned, max_iter);
        c
    };
    loop {
        if err.sqrt() <= AUTO_TARGET_RMSE
            || centroids.len() >= max_k
            || centroids.len() >= points.len()
        {
            return finish(centroids);
        }
        // The point carrying the most error becomes the next centroid.
        let mut best: Option<(usize, f64)> = None;
        for (i, (&d, &w)) in d2.iter().zip(&points.weight).enumerate() {
            let m = w * f64::from(d);
            if m > 0.0 && best.is_none_or(|(_, bm)| m > bm) {
                best = Some((i, m));
            }
        }
        let Some((i, _)) = best else {
            return finish(centroids);
        };
        let mut grown = centroids.clone();
        grown.push(points.lab[i]);
        let (grown_err, grown_d2) = lloyd(points, &mut grown, n_pinned, step_iter);
        if err - grown_err < AUTO_MIN_GAIN * variance {
            return finish(centroids);
        }
        centroids = grown;
        err = grown_err;
        d2 = grown_d2;
    }
}

/// Lloyd iterations until no point changes cluster, the centroids settle, or `max_iter` updates.
/// The first `n_pinned` centroids never move; an emptied cluster moves to the point with the
/// largest weighted error. Returns the weighted mean squared error and each point's squared
/// distance to its centroid, both for the returned centroids.
///
/// Assignment uses Hamerly's bounds: each point keeps an upper bound on the distance to its own
/// centroid and a lower bound on the distance to any other, widened by how far centroids move,
/// and is only rescanned when the bounds overlap. The assignment is the same as a full scan.
fn lloyd(
    points: &Points,
    centroids: &mut [Oklab],
    n_pinned: usize,
    max_iter: u32,
) -> (f64, Vec<f32>) {
    let n = points.len();
    let k = centroids.len();
    if k == 0 {
        return (0.0, vec![0.0; n]);
    }
    let mut assign = vec![0usize; n];
    let mut upper = vec![0.0f32; n];
    let mut lower = vec![0.0f32; n];
    let mut sums = vec![[0.0f64; 4]; k];
    let add = |s: &mut [f64; 4], p: &Oklab, w: f64, sign: f64| {
        s[0] += sign * w * f64::from(p.l);
        s[1] += sign * w * f64::from(p.a);
        s[2] += sign * w * f64::from(p.b);
        s[3] += sign * w;
    };
    let pal = LabPalette::new(centroids);
    for (i, (p, &w)) in points.lab.iter().zip(&points.weight).enumerate() {
        let (j, d1, d2) = pal.nearest2(*p);
        assign[i] = j;
        upper[i] = d1.sqrt();
        lower[i] = d2.sqrt();
        add(&mut sums[j], p, w, 1.0);
    }
    let mut shift = vec![0.0f32; k];
    let mut half_gap = vec![0.0f32; k];
    for _ in 0..max_iter {
        // Move each free centroid to the mean of its points.
        let mut empty = Vec::new();
        for (j, (c, s)) in centroids.iter_mut().zip(&sums).enumerate().skip(n_pinned) {
            if s[3] > 0.0 {
                let mean = Oklab {
                    l: (s[0] / s[3]) as f32,
                    a: (s[1] / s[3]) as f32,
                    b: (s[2] / s[3]) as f32,
                };
                shift[j] = mean.dist(*c);
                *c = mean;
            } else {
                empty.push(j);
            }
        }
        if !empty.is_empty() {
            let mut err: Vec<f64> = points
                .lab
                .iter()
                .zip(&points.weight)
                .zip(&assign)
                .map(|((p, &w), &j)| w * f64::from(p.dist2(centroids[j])))
                .collect();
            for j in empty {
                shift[j] = 0.0;
                let mut best: Option<(usize, f64)> = None;
                for (i, &m) in err.iter().enumerate() {
                    if m > 0.0 && best.is_none_or(|(_, bm)| m > bm) {
                        best = Some((i, m));
                    }
                }
                if let Some((i, _)) = best {
                    shift[j] = points.lab[i].dist(centroids[j]);
                    centroids[j] = points.lab[i];
                    err[i] = 0.0;
                }
            }
        }
        // Widen the bounds by the moves.
        let (mut top, mut top_j, mut second) = (0.0f32, usize::MAX, 0.0f32);
        for (j, &d) in shift.iter().enumerate() {
            if d > top {
                (second, top, top_j) = (top, d, j);
            } else if d > second {
                second = d;
            }
        }
        for ((u, l), &j) in upper.iter_mut().zip(lower.iter_mut()).zip(&assign) {
            *u += shift[j];
            *l -= if j == top_j { second } else { top };
        }
        // Half the distance from each centroid to its nearest other centroid.
        for (j, h) in half_gap.iter_mut().enumerate() {
            *h = centroids
                .iter()
                .enumerate()
                .filter(|&(o, _)| o != j)
                .map(|(_, c)| c.dist(centroids[j]))
                .fold(f32::INFINITY, f32::min)
                * 0.5;
        }
        // Reassign the points whose bounds no longer prove their centroid is nearest.
        let pal = LabPalette::new(centroids);
        let mut changed = false;
        for (i, (p, &w)) in points.lab.iter().zip(&points.weight).enumerate() {
            let a = assign[i];
            let bound = half_gap[a].max(lower[i]);
            if upper[i] <= bound {
                continue;
            }
            upper[i] = p.dist(centroids[a]);
            if upper[i] <= bound {
                continue;
            }
            let (j, d1, d2) = pal.nearest2(*p);
            upper[i] = d1.sqrt();
            lower[i] = d2.sqrt();
            if j != a {
                add(&mut sums[a], p, w, -1.0);
                add(&mut sums[j], p, w, 1.0);
                assign[i] = j;
                changed = true;
            }
        }
        if !changed || top < SETTLE_SHIFT {
            break;
        }
    }
    let d2: Vec<f32> = points
        .lab
        .iter()
        .zip(&assign)
        .map(|(p, &j)| p.dist2(centroids[j]))
        .collect();
    let err: f64 = d2
        .iter()
        .zip(&points.weight)
        .map(|(&d, &w)| w * f64::from(d))
        .sum();
    let err = if points.total_weight > 0.0 {
        err / points.total_weight
    } else {
        0.0
    };
    (err, d2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(cols: &[([u8; 3], u32)]) -> Points {
        let labs: Vec<Oklab> = cols.iter().map(|(c, _)| Oklab::from_srgb(*c)).collect();
        let counts: Vec<u32> = cols.iter().map(|(_, n)| *n).collect();
        Points::exact(&labs, &counts)
    }

    #[test]
    fn rng_is_deterministic_and_uniform_enough() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut c = Rng::new(8);
        assert_ne!(xs[0], c.next_u64());
        let mut r = Rng::new(1);
        let mean = (0..10_000).map(|_| r.next_f64()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }

    #[test]
    fn weighted_mean_is_the_one_colour_answer() {
        // 3 pixels of black and 1 of white: the single centroid is the weighted OKLab mean.
        let p = pts(&[([0, 0, 0], 3), ([255, 255, 255], 1)]);
        let c = kmeans(&p, 1, &[], &mut Rng::new(0), 50);
        assert_eq!(c.len(), 1);
        assert!((c[0].l - 0.25).abs() < 1e-4, "{:?}", c[0]);
    }

    #[test]
    fn pinned_centroids_do_not_move() {
        let p = pts(&[
            ([0, 0, 0], 1),
            ([20, 20, 20], 100),
            ([240, 240, 240], 100),
            ([255, 255, 255], 1),
        ]);
        let pinned = [
            Oklab::from_srgb([0, 0, 0]),
            Oklab::from_srgb([255, 255, 255]),
        ];
        let c = kmeans(&p, 2, &pinned, &mut Rng::new(3), 50);
        assert_eq!(c, pinned.to_vec());
        // Unpinned, the heavy colours win.
        let c = kmeans(&p, 2, &[], &mut Rng::new(3), 50);
        let mut ls: Vec<f32> = c.iter().map(|c| c.l).collect();
        ls.sort_by(f32::total_cmp);
        assert!(
            ls[0] > Oklab::from_srgb([10, 10, 10]).l && ls[1] < Oklab::from_srgb([250, 250, 250]).l
        );
    }

    #[test]
    fn never_more_centroids_than_points() {
        let p = pts(&[([0, 0, 0], 1), ([255, 0, 0], 1)]);
        assert_eq!(kmeans(&p, 5, &[], &mut Rng::new(0), 10).len(), 2);
        let empty = Points::exact(&[], &[]);
        assert!(kmeans(&empty, 5, &[], &mut Rng::new(0), 10).is_empty());
    }

    #[test]
    fn bounded_lloyd_matches_a_full_scan() {
        let mut rng = Rng::new(42);
        let cols: Vec<([u8; 3], u32)> = (0..600)
            .map(|_| {
                let v = rng.next_u64();
                (
                    [v as u8, (v >> 8) as u8, (v >> 16) as u8],
                    1 + (v >> 40) as u32 % 5,
                )
            })
            .collect();
        let p = pts(&cols);
        for k in [1usize, 2, 7, 20] {
            let mut fast: Vec<Oklab> = p.lab[..k].to_vec();
            let (err, d2) = lloyd(&p, &mut fast, 0, 500);
            // Every point ends on its truly nearest centroid, and the error is what it claims.
            let mut sum = 0.0;
            for ((q, &w), &d) in p.lab.iter().zip(&p.weight).zip(&d2) {
                let best = fast
                    .iter()
                    .map(|c| q.dist2(*c))
                    .fold(f32::INFINITY, f32::min);
                assert!((d - best).abs() <= 1e-6, "k={k}: {d} vs {best}");
                sum += w * f64::from(d);
            }
            assert!((err - sum / p.total_weight).abs() < 1e-9);
            // Reference: plain Lloyd from the same start, run to a fixed point.
            let mut slow: Vec<Oklab> = p.lab[..k].to_vec();
            for _ in 0..500 {
                let pal = LabPalette::new(&slow);
                let mut sums = vec![[0.0f64; 4]; k];
                for (q, &w) in p.lab.iter().zip(&p.weight) {
                    let s = &mut sums[pal.nearest(*q).0];
                    s[0] += w * f64::from(q.l);
                    s[1] += w * f64::from(q.a);
                    s[2] += w * f64::from(q.b);
                    s[3] += w;
                }
                for (c, s) in slow.iter_mut().zip(&sums) {
                    if s[3] > 0.0 {
                        *c = Oklab {
                            l: (s[0] / s[3]) as f32,
                            a: (s[1] / s[3]) as f32,
                            b: (s[2] / s[3]) as f32,
                        };
                    }
                }
            }
            for (a, b) in fast.iter().zip(&slow) {
                assert!(a.dist(*b) < 5e-3, "k={k}: {a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn binning_keeps_weighted_means() {
        let cols = [[0u8, 0, 0], [7, 7, 7], [255, 255, 255]];
        let labs: Vec<Oklab> = cols.iter().map(|&c| Oklab::from_srgb(c)).collect();
        let p = Points::binned(&cols, &labs, &[1, 3, 2]);
        assert_eq!(p.len(), 2);
        assert_eq!(p.weight, vec![4.0, 2.0]);
        let expect = (labs[0].l + 3.0 * labs[1].l) / 4.0;
        assert!((p.lab[0].l - expect).abs() < 1e-6);
    }
}
