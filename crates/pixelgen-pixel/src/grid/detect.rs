//! Grid detection: edge profiles, period spectrum, phase and drift tracking.

use std::f64::consts::TAU;

use image::RgbaImage;

use super::{Axis, Grid, GridOptions};
use crate::error::{PixelError, Result};

/// Autocorrelation peaks scoring at least this fraction of the best one are candidate cell
/// sizes (a grid of period p also peaks at 2p, 3p, ..., and so can a sprite's own shapes).
const CANDIDATE_RATIO: f64 = 0.3;
/// Of the candidates, the smallest whose Fourier line is at least this fraction of the
/// strongest one is the cell size: multiples of the true period have weak lines at their own
/// frequency, and shape repeats are longer than the cell.
const HARMONIC_RATIO: f64 = 0.5;
/// Normalised autocorrelation peak below which an axis has no grid (noise and photos give
/// 0.07 to 0.13, grids 0.16 and up).
const MIN_ACF: f64 = 0.1;
/// Normalised autocorrelation peak mapped to confidence 1.
const GOOD_ACF: f64 = 0.5;
/// Share of the edge profile that is periodic at the cell size (|C(1/p)| / Σ profile) below
/// which an axis has no grid: noise and photos give about 0.004, noisy grids 0.05 and up.
const MIN_SHARE: f64 = 0.015;
/// Or, for long profiles where the share is diluted by noise: the Fourier line over the RMS
/// of the profile (random profiles stay below about 3: P(z > 4) = e^-16 per frequency).
const MIN_Z: f64 = 4.0;
/// Periodic share mapped to confidence 1.
const GOOD_SHARE: f64 = 0.15;
/// Weight of the global phase in the local phase track (keeps edge-less stretches on the
/// global grid).
const PHASE_PRIOR: f64 = 0.1;

/// One detected axis and its confidence.
struct AxisFit {
    axis: Axis,
    confidence: f32,
}

pub(super) fn detect(img: &RgbaImage, opts: &GridOptions) -> Result<Grid> {
    let (px, py) = edge_profiles(img);
    // The advice fits what was given: never "set the cell size" to whoever set it.
    let no_grid = |side: &str, cell: Option<f32>, reason: String| PixelError::NoGrid {
        reason: format!(
            "{side}: {reason}; {}",
            if cell.is_some() {
                "give a cell size that fits the image, or a target size"
            } else {
                "set the cell size by hand or give a target size"
            }
        ),
    };
    let x = detect_axis(&px, opts.cell_width, opts.offset_x, opts)
        .map_err(|r| no_grid("columns", opts.cell_width, r))?;
    let y = detect_axis(&py, opts.cell_height, opts.offset_y, opts)
        .map_err(|r| no_grid("rows", opts.cell_height, r))?;
    Ok(Grid {
        confidence: x.confidence.min(y.confidence),
        x: x.axis,
        y: y.axis,
    })
}

/// Edge profiles indexed by cut position: `x[c]` (c in 0..=width) sums, over all rows, the
/// absolute RGBA difference between pixels c-1 and c; `x[0]` and `x[width]` are 0. Same for y.
fn edge_profiles(img: &RgbaImage) -> (Vec<f64>, Vec<f64>) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw: &[u8] = img.as_raw();
    let stride = 4 * w;
    let mut px = vec![0.0f64; w + 1];
    let mut py = vec![0.0f64; h + 1];
    // Per-byte column accumulators; flushed to f64 before a u32 could overflow.
    let mut acc = vec![0u32; stride.saturating_sub(4)];
    let flush = |acc: &mut [u32], px: &mut [f64]| {
        for (c, chunk) in acc.chunks_exact_mut(4).enumerate() {
            px[c + 1] += chunk.iter().map(|&v| v as f64).sum::<f64>();
            chunk.fill(0);
        }
    };
    let rows: Vec<&[u8]> = raw.chunks_exact(stride.max(1)).take(h).collect();
    for (y, row) in rows.iter().enumerate() {
        if stride > 4 {
            for (a, (l, r)) in acc.iter_mut().zip(row.iter().zip(&row[4..])) {
                *a += l.abs_diff(*r) as u32;
            }
        }
        if y % 65_536 == 65_535 {
            flush(&mut acc, &mut px);
        }
        if let Some(next) = rows.get(y + 1) {
            let mut s = 0u64;
            for (a, b) in row.chunks(4096).zip(next.chunks(4096)) {
                s += a
                    .iter()
                    .zip(b)
                    .map(|(p, q)| p.abs_diff(*q) as u32)
                    .sum::<u32>() as u64;
            }
            py[y + 1] = s as f64;
        }
    }
    flush(&mut acc, &mut px);
    (px, py)
}

/// Finds the cell size, phase and cuts of one axis from its edge profile (`len + 1` entries).
fn detect_axis(
    prof: &[f64],
    cell: Option<f32>,
    offset: Option<f32>,
    opts: &GridOptions,
) -> std::result::Result<AxisFit, String> {
    let n = prof.len() - 1;
    if let (Some(p), Some(o)) = (cell, offset) {
        let p = p as f64;
        let axis = build_axis(n, p, (o as f64).rem_euclid(p), None)
            .ok_or_else(|| format!("a cell of {p} px does not fit in {n} px"))?;
        return Ok(AxisFit {
            axis,
            confidence: 1.0,
        });
    }
    let total: f64 = prof.iter().sum();
    if total <= 0.0 {
        // No edges: with the cell size given, any phase cuts the same flat cells.
        if let Some(p) = cell {
            let p = p as f64;
            let phase = offset.map_or(0.0, |o| (o as f64).rem_euclid(p));
            let axis = build_axis(n, p, phase, None)
                .ok_or_else(|| format!("a cell of {p} px does not fit in {n} px"))?;
            return Ok(AxisFit {
                axis,
                confidence: 1.0,
            });
        }
        return Err("the image has no edges (flat colour or fully transparent)".into());
    }
    let min_p = opts.min_cell as f64;
    let max_p = (opts.max_cell as f64).min(n as f64 / 3.0);
    let window = 2.0 * cell.map_or(max_p, |p| p as f64);
    let compressed: Vec<f64> = prof.iter().map(|v| v.sqrt()).collect();
    let hp = high_pass(&compressed, window);
    let (p, confidence) = match cell {
        Some(p) => (p as f64, 1.0),
        None => {
            if max_p < min_p {
                return Err(format!(
                    "{n} px is too short for 3 cells of at least {min_p} px"
                ));
            }
            search_period(&hp, min_p, max_p, compressed.iter().sum())?
        }
    };
    let c = dtft(&hp, 1.0 / p);
    let phase = if c.0 == 0.0 && c.1 == 0.0 {
        0.0
    } else {
        (-c.1.atan2(c.0) * p / TAU).rem_euclid(p)
    };
    let axis = build_axis(n, p, phase, Some((&hp, c)))
        .ok_or_else(|| format!("a cell of {p:.2} px does not fit in {n} px"))?;
    Ok(AxisFit { axis, confidence })
}

/// Profile minus its moving average over `window` cut positions (removes the envelope of the
/// sprite and the noise floor, so that the spectrum shows only the grid).
fn high_pass(prof: &[f64], window: f64) -> Vec<f64> {
    let n = prof.len() - 1;
    let half = ((window / 2.0).round() as usize).max(1);
    let mut prefix = Vec::with_capacity(n + 2);
    prefix.push(0.0);
    let mut s = 0.0;
    for &v in prof {
        s += v;
        prefix.push(s);
    }
    let mut hp = vec![0.0; n + 1];
    for c in 1..n {
        let lo = c.saturating_sub(half).max(1);
        let hi = (c + half).min(n - 1);
        let mean = (prefix[hi + 1] - prefix[lo]) / (hi + 1 - lo) as f64;
        hp[c] = prof[c] - mean;
    }
    hp
}

/// Best period in `min_p..=max_p` and its confidence, or why there is none.
///
/// Candidate periods are the peaks of the autocorrelation of the high-passed profile
/// (smoothed by a 2-px box so that non-integer periods keep a clear peak); fractions of the
/// true period do not peak there at all (mid-cell positions have no edges). Among them the
/// one with the strongest Fourier line wins (multiples of the true period and repeats of the
/// sprite's shapes have weak lines), preferring the smallest on near-ties. The exact
/// (non-integer) period is then that Fourier peak, refined.
fn search_period(
    hp: &[f64],
    min_p: f64,
    max_p: f64,
    raw_total: f64,
) -> std::result::Result<(f64, f32), String> {
    let m = (4 * hp.len()).next_power_of_two().max(64);
    let mut re = vec![0.0; m];
    let mut im = vec![0.0; m];
    re[..hp.len()].copy_from_slice(hp);
    fft(&mut re, &mut im);
    let mags: Vec<f64> = re.iter().zip(&im).map(|(r, i)| r.hypot(*i)).collect();
    // Autocorrelation = inverse FFT of the power spectrum (zero padding keeps it linear).
    let mut acf_re: Vec<f64> = mags.iter().map(|v| v * v).collect();
    let mut acf_im = vec![0.0; m];
    fft(&mut acf_re, &mut acf_im);
    let lag_max = (max_p.ceil() as usize + 2).min(hp.len().saturating_sub(1));
    let raw = |l: usize| acf_re.get(l).copied().unwrap_or(0.0);
    // Autocorrelation of the profile smoothed by a 2-px box: R * [1,2,1], normalised by lag 0.
    let mut acf: Vec<f64> = (0..=lag_max + 1)
        .map(|l| {
            let at = |d: i64| raw((l as i64 + d).unsigned_abs() as usize);
            at(-1) + 2.0 * at(0) + at(1)
        })
        .collect();
    let r0 = acf[0];
    if r0 <= 0.0 {
        return Err("no edges".into());
    }
    acf.iter_mut().for_each(|v| *v /= r0);
    // The unsmoothed autocorrelation too: it keeps small blurred periods (4 px under a 3-px
    // blur) that the smoothing flattens.
    let r0_raw = raw(0);
    let acf_raw: Vec<f64> = (0..=lag_max + 1).map(|l| raw(l) / r0_raw).collect();
    let lo = (min_p.ceil() as usize).max(2);
    let hi = (max_p.floor() as usize).min(lag_max);
    let is_peak = |a: &[f64], l: usize| a[l] > 0.0 && a[l] >= a[l - 1] && a[l] >= a[l + 1];
    let mut peaks: Vec<usize> = (lo..=hi)
        .filter(|&l| is_peak(&acf, l) || is_peak(&acf_raw, l))
        .collect();
    for &l in &peaks {
        acf[l] = acf[l].max(acf_raw[l]);
    }
    peaks.dedup();
    let best = peaks.iter().map(|&l| acf[l]).fold(0.0f64, f64::max);
    // Each candidate lag's Fourier line: the strongest bin for periods lag-1..lag+1.
    let mf = m as f64;
    let line = |lag: usize| {
        let f_hi = (1.0 / (lag as f64 - 1.0).max(min_p)).min(0.5);
        let f_lo = (1.0 / (lag as f64 + 1.0)).max(1.0 / (max_p + 1.0));
        let k_lo = (f_lo * mf).ceil() as usize;
        let k_hi = ((f_hi * mf).floor() as usize).max(k_lo);
        (k_lo..=k_hi)
            .max_by(|&a, &b| mags[a].total_cmp(&mags[b]).then(b.cmp(&a)))
            .map_or((k_lo, 0.0), |k| (k, mags[k]))
    };
    let candidates: Vec<(usize, usize, f64)> = peaks
        .iter()
        .filter(|&&l| acf[l] >= CANDIDATE_RATIO * best)
        .map(|&l| {
            let (k, mag) = line(l);
            (l, k, mag)
        })
        .collect();
    let strongest = candidates.iter().map(|c| c.2).fold(0.0f64, f64::max);
    let Some(&(lag, k_best, _)) = candidates
        .iter()
        .find(|c| strongest > 0.0 && c.2 >= HARMONIC_RATIO * strongest)
    else {
        return Err("no periodic edges".into());
    };
    let (f, _) = refine_peak(hp, (k_best as f64 - 1.0) / mf, (k_best as f64 + 1.0) / mf);
    let period = (1.0 / f).clamp(min_p, max_p);
    let score = acf[lag];
    let (cr, ci) = dtft(hp, 1.0 / period);
    let share = cr.hypot(ci) / raw_total;
    // The same line against random profiles of the same energy (about 3 at most for noise).
    let z = cr.hypot(ci) / hp.iter().map(|v| v * v).sum::<f64>().sqrt();
    if score < MIN_ACF || (share < MIN_SHARE && z < MIN_Z) {
        return Err(format!(
            "no periodic edges (autocorrelation {score:.2}, needs {MIN_ACF}; periodic share \
             {share:.3}, needs {MIN_SHARE}, or line strength {z:.1}, needs {MIN_Z})"
        ));
    }
    let confidence = ((score - MIN_ACF) / (GOOD_ACF - MIN_ACF))
        .min((share - MIN_SHARE) / (GOOD_SHARE - MIN_SHARE))
        .clamp(0.01, 1.0) as f32;
    Ok((period, confidence))
}

/// Golden-section search for the frequency in `lo..hi` with the largest |DTFT|.
fn refine_peak(hp: &[f64], lo: f64, hi: f64) -> (f64, f64) {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mag = |f: f64| {
        let (r, i) = dtft(hp, f);
        r.hypot(i)
    };
    let (mut a, mut b) = (lo.max(1e-9), hi);
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (mag(c), mag(d));
    for _ in 0..24 {
        if fc > fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = mag(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = mag(d);
        }
    }
    if fc > fd { (c, fc) } else { (d, fd) }
}

/// Σ hp[c]·e^(-2πi f c), by a phasor recurrence (f64 keeps the drift negligible).
fn dtft(hp: &[f64], f: f64) -> (f64, f64) {
    let (ws, wc) = (TAU * f).sin_cos();
    let (mut zr, mut zi) = (1.0f64, 0.0f64);
    let (mut ar, mut ai) = (0.0, 0.0);
    for (c, &v) in hp.iter().enumerate() {
        if c % 256 == 0 {
            // Re-anchor the phasor now and then.
            let (s, co) = (TAU * f * c as f64).sin_cos();
            zr = co;
            zi = -s;
        }
        ar += v * zr;
        ai += v * zi;
        let nr = zr * wc + zi * ws;
        zi = zi * wc - zr * ws;
        zr = nr;
    }
    (ar, ai)
}

/// In-place radix-2 complex FFT (length a power of two), forward sign.
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -TAU / len as f64;
        let (ws, wc) = ang.sin_cos();
        for start in (0..n).step_by(len) {
            let (mut zr, mut zi) = (1.0f64, 0.0f64);
            for k in 0..len / 2 {
                let (a, b) = (start + k, start + k + len / 2);
                let tr = re[b] * zr - im[b] * zi;
                let ti = re[b] * zi + im[b] * zr;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
                let nr = zr * wc - zi * ws;
                zi = zr * ws + zi * wc;
                zr = nr;
            }
        }
        len <<= 1;
    }
}

/// Builds the cuts of an axis of `n` pixels with mean cell `p` and global boundary phase
/// `phase`. With `track = Some((hp, C))` the boundaries follow the local phase of the
/// high-passed profile (drifting grids); otherwise the grid
/// is exactly regular. Returns `None` when no cell of at least half a cell fits.
fn build_axis(n: usize, p: f64, phase: f64, track: Option<(&[f64], (f64, f64))>) -> Option<Axis> {
    let k_min = (-phase / p).floor() as i64 - 1;
    let k_max = ((n as f64 - phase) / p).ceil() as i64 + 1;
    let mut xs: Vec<f64> = (k_min..=k_max).map(|k| phase + k as f64 * p).collect();
    if let Some((hp, c)) = track {
        let drift = Drift::fit(hp, p, c);
        for x in xs.iter_mut() {
            let base = *x;
            let x1 = base + drift.at(base);
            *x = base + drift.at(x1);
        }
    }
    // Keep boundaries strictly increasing by at least one pixel.
    for i in 1..xs.len() {
        if xs[i] < xs[i - 1] + 1.0 {
            xs[i] = xs[i - 1] + 1.0;
        }
    }
    let nf = n as f64;
    let kept = |i: usize| xs[i + 1].min(nf) - xs[i].max(0.0) >= p / 2.0;
    let first = (0..xs.len() - 1).find(|&i| kept(i))?;
    let last = (0..xs.len() - 1).rev().find(|&i| kept(i))?;
    let mut cuts = Vec::with_capacity(last + 2 - first);
    for (i, &x) in xs.iter().enumerate().take(last + 2).skip(first) {
        let mut c = x.round().clamp(0.0, nf) as usize;
        if i == first && x <= 0.0 {
            c = 0;
        }
        if i == last + 1 && x >= nf {
            c = n;
        }
        if cuts.last().is_none_or(|&l| c > l as usize) && c <= n {
            cuts.push(c as u32);
        }
    }
    if cuts.len() < 2 {
        return None;
    }
    Some(Axis {
        cell: p as f32,
        offset: phase as f32,
        cuts,
    })
}

/// Local deviation of a drifting grid from the regular one: the grid's phase measured in a
/// window of about six cells around each position (moved inwards at the image ends so that
/// it is always full), pulled towards the global phase where there are few edges.
struct Drift {
    /// Prefix sums of hp[i]·e^(-2πi i / p).
    prefix: Vec<(f64, f64)>,
    /// Global coefficient C.
    c: (f64, f64),
    /// Window length.
    window: usize,
    /// The global coefficient scaled to one window, added to every window's sum.
    prior: (f64, f64),
    p: f64,
}

impl Drift {
    fn fit(hp: &[f64], p: f64, c: (f64, f64)) -> Self {
        let f = 1.0 / p;
        let mut prefix = Vec::with_capacity(hp.len() + 1);
        prefix.push((0.0, 0.0));
        let (mut sr, mut si) = (0.0, 0.0);
        for (i, &v) in hp.iter().enumerate() {
            let (sn, co) = (TAU * f * i as f64).sin_cos();
            sr += v * co;
            si -= v * sn;
            prefix.push((sr, si));
        }
        let window = ((6.0 * p).round() as usize).clamp(2, hp.len());
        let k = PHASE_PRIOR * window as f64 / hp.len() as f64;
        Self {
            prefix,
            c,
            window,
            prior: (c.0 * k, c.1 * k),
            p,
        }
    }

    /// Deviation (pixels) of the boundaries near `x` from the regular grid.
    fn at(&self, x: f64) -> f64 {
        let n1 = self.prefix.len() - 1;
        let centre = x.round().clamp(0.0, n1 as f64) as usize;
        let lo = centre.saturating_sub(self.window / 2).min(n1 - self.window);
        let hi = lo + self.window;
        let zr = self.prefix[hi].0 - self.prefix[lo].0 + self.prior.0;
        let zi = self.prefix[hi].1 - self.prefix[lo].1 + self.prior.1;
        // arg(z · conj(C)) is this window's phase lag behind the whole axis.
        let (cr, ci) = self.c;
        let dr = zr * cr + zi * ci;
        let di = zi * cr - zr * ci;
        if dr == 0.0 && di == 0.0 {
            return 0.0;
        }
        -di.atan2(dr) * self.p / TAU
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_matches_direct_dft() {
        let x: Vec<f64> = (0..16).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
        let mut re = x.clone();
        let mut im = vec![0.0; 16];
        fft(&mut re, &mut im);
        for k in 0..16 {
            let (r, i) = dtft(&x, k as f64 / 16.0);
            assert!(
                (r - re[k]).abs() < 1e-9 && (i - im[k]).abs() < 1e-9,
                "bin {k}"
            );
        }
    }

    #[test]
    fn finds_period_and_phase_of_a_comb() {
        // Edges every 7.3 px starting at 2.5.
        let n = 400;
        let mut prof = vec![0.0; n + 1];
        let mut x = 2.5;
        while x < n as f64 {
            prof[x.round() as usize] += 100.0;
            x += 7.3;
        }
        prof[0] = 0.0;
        let fit = detect_axis(&prof, None, None, &GridOptions::default()).unwrap();
        assert!((fit.axis.cell - 7.3).abs() < 0.02, "{}", fit.axis.cell);
        let d = (fit.axis.offset - 2.5).rem_euclid(7.3);
        assert!(d.min(7.3 - d) < 0.5, "{}", fit.axis.offset);
        assert!(fit.confidence > 0.5);
    }

    #[test]
    fn prefers_fundamental_over_harmonic() {
        // Box-blurred edges every 4 px score the same at 2 px; 4 must win.
        let n = 256;
        let prof: Vec<f64> = (0..=n)
            .map(|c| {
                if c == 0 || c == n || c % 4 == 0 {
                    0.0
                } else {
                    10.0
                }
            })
            .collect();
        let fit = detect_axis(&prof, None, None, &GridOptions::default()).unwrap();
        assert!((fit.axis.cell - 4.0).abs() < 0.01, "{}", fit.axis.cell);
    }

    #[test]
    fn fixed_cell_and_offset_give_a_regular_grid() {
        let prof = vec![0.0; 101];
        let fit = detect_axis(&prof, Some(10.0), Some(3.0), &GridOptions::default()).unwrap();
        // [0,3) is a 3-px partial cell (< 5): dropped; [93,100) is 7 px: kept.
        assert_eq!(
            fit.axis.cuts,
            vec![3, 13, 23, 33, 43, 53, 63, 73, 83, 93, 100]
        );
    }
}
