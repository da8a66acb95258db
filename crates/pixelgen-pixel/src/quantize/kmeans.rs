//! Weighted k-means in OKLab: seeded k-means++ start, Lloyd iterations, and the automatic colour count.

use super::LabPalette;
use crate::color::Oklab;

/// Auto count stops once the pixels' RMS OKLab error is this small (about a just-noticeable difference).
const AUTO_TARGET_RMSE: f64 = 0.015;

/// Auto count stops when one more colour removes less than this share of the image's total variance.
const AUTO_MIN_GAIN: f64 = 0.005;

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
    let mut centroids = kmeans(points, 2, pinned, rng, max_iter);
    let n_pinned = pinned.len().min(centroids.len());
    let (mut err, mut d2) = lloyd(points, &mut centroids, n_pinned, max_iter);
    loop {
        if err.sqrt() <= AUTO_TARGET_RMSE
            || centroids.len() >= max_k
            || centroids.len() >= points.len()
        {
            return centroids;
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
            return centroids;
        };
        let mut grown = centroids.clone();
        grown.push(points.lab[i]);
        let (grown_err, grown_d2) = lloyd(points, &mut grown, n_pinned, max_iter);
        if err - grown_err < AUTO_MIN_GAIN * variance {
            return centroids;
        }
        centroids = grown;
        err = grown_err;
        d2 = grown_d2;
    }
}

/// Lloyd iterations until no point changes cluster (or `max_iter` updates). The first
/// `n_pinned` centroids never move. An emptied cluster moves to the point with the largest
/// weighted error. Returns the weighted mean squared error and each point's squared distance
/// to its centroid, both for the returned centroids.
fn lloyd(
    points: &Points,
    centroids: &mut [Oklab],
    n_pinned: usize,
    max_iter: u32,
) -> (f64, Vec<f32>) {
    let n = points.len();
    let k = centroids.len();
    let mut assign = vec![usize::MAX; n];
    let mut d2 = vec![0.0f32; n];
    let mut sums = vec![[0.0f64; 4]; k];
    let mut iter = 0;
    loop {
        let pal = LabPalette::new(centroids);
        sums.iter_mut().for_each(|s| *s = [0.0; 4]);
        let mut changed = false;
        let mut err = 0.0f64;
        for (((p, &w), a), d) in points
            .lab
            .iter()
            .zip(&points.weight)
            .zip(assign.iter_mut())
            .zip(d2.iter_mut())
        {
            let (j, dist) = pal.nearest(*p);
            changed |= *a != j;
            *a = j;
            *d = dist;
            err += w * f64::from(dist);
            if let Some(s) = sums.get_mut(j) {
                s[0] += w * f64::from(p.l);
                s[1] += w * f64::from(p.a);
                s[2] += w * f64::from(p.b);
                s[3] += w;
            }
        }
        let err = if points.total_weight > 0.0 {
            err / points.total_weight
        } else {
            0.0
        };
        if !changed || iter >= max_iter || k == 0 {
            return (err, d2);
        }
        iter += 1;
        let mut spare = d2.clone();
        for (c, s) in centroids.iter_mut().zip(&sums).skip(n_pinned) {
            if s[3] > 0.0 {
                *c = Oklab {
                    l: (s[0] / s[3]) as f32,
                    a: (s[1] / s[3]) as f32,
                    b: (s[2] / s[3]) as f32,
                };
            } else {
                let mut best: Option<(usize, f64)> = None;
                for (i, (&d, &w)) in spare.iter().zip(&points.weight).enumerate() {
                    let m = w * f64::from(d);
                    if m > 0.0 && best.is_none_or(|(_, bm)| m > bm) {
                        best = Some((i, m));
                    }
                }
                if let Some((i, _)) = best {
                    *c = points.lab[i];
                    spare[i] = 0.0;
                }
            }
        }
    }
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
