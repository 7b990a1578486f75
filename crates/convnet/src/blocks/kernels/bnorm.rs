//! Batch-normalisation loops on the CPU. A channel's values are N strided planes of an
//! NCHW tensor. Reductions run one channel per task and visit its planes in image
//! order, accumulating in f64; element-wise passes run one plane per task. Neither
//! split depends on the thread count, so results are identical for any number of
//! threads.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Below this many elements everything runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 15;

/// The sizes of an NCHW tensor as the loops see them; the caller has checked that
/// slices hold `n * c * plane` elements and that `plane > 0`.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub n: usize,
    pub c: usize,
    pub plane: usize,
}

impl Layout {
    fn len(&self) -> usize {
        self.n * self.c * self.plane
    }
    fn big(&self) -> bool {
        self.len() >= PARALLEL_MIN
    }
    /// Values per channel.
    pub fn count(&self) -> usize {
        self.n * self.plane
    }
    /// Channel `c`'s planes, in image order.
    fn planes<'a>(&self, x: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        let (cs, p) = (self.c, self.plane);
        (0..self.n).map(move |n| &x[(n * cs + c) * p..(n * cs + c + 1) * p])
    }
}

/// Lanes of a sum: one f64 accumulator chain per element would be bound by the add
/// latency, so each plane is summed in this many interleaved lanes, combined in a
/// fixed order.
const LANES: usize = 8;

/// `sum_i f(a[i], b[i])` in f64, over `LANES` lanes in a fixed order.
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] += f(xa[k], xb[k]);
        }
    }
    for (k, (&u, &v)) in ra.iter().zip(rb).enumerate() {
        acc[k] += f(u, v);
    }
    acc.iter().sum()
}

/// `f(c)` for each channel, in channel order.
fn per_channel<T: Send>(l: Layout, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if l.big() {
        (0..l.c).into_par_iter().map(f).collect()
    } else {
        (0..l.c).map(f).collect()
    }
}

/// A new tensor of layout `l`, written a plane at a time by `f(channel, plane
/// index within the tensor, plane)`, which writes every value of its plane: the
/// tensor is not zeroed first (a pass over memory, 51 MB at ResNet-18's first
/// normalisation at batch 16).
fn new_planes(
    l: Layout,
    f: impl Fn(usize, usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let len = l.len();
    let mut out = Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    let run = |(k, o): (usize, &mut [MaybeUninit<f32>])| f(k % l.c, k, o);
    if l.big() {
        spare.par_chunks_mut(l.plane).enumerate().for_each(run);
    } else {
        spare.chunks_mut(l.plane).enumerate().for_each(run);
    }
    // SAFETY: `f` wrote each of the `len` values, plane by plane.
    unsafe { out.set_len(len) };
    out
}

/// Each channel's mean and `sqrt(var + eps)`, with the biased variance (divided by
/// the count), computed in two passes in f64 and rounded to f32.
pub fn moments(x: &[f32], l: Layout, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let m = l.count() as f64;
    per_channel(l, |c| {
        let sum: f64 = l
            .planes(x, c)
            .map(|p| lane_sum(p, p, |v, _| v as f64))
            .sum();
        let mean = sum / m;
        let ss: f64 = l
            .planes(x, c)
            .map(|p| lane_sum(p, p, |v, _| (v as f64 - mean).powi(2)))
            .sum();
        (mean as f32, (ss / m + eps as f64).sqrt() as f32)
    })
    .into_iter()
    .unzip()
}

/// `y = (x - mean) * gain / std + bias`, per channel.
pub fn normalise(
    x: &[f32],
    l: Layout,
    mean: &[f32],
    std: &[f32],
    gain: &[f32],
    bias: &[f32],
) -> Vec<f32> {
    new_planes(l, |c, k, ys| {
        let (mu, scale, b) = (mean[c], gain[c] / std[c], bias[c]);
        let xs = &x[k * l.plane..(k + 1) * l.plane];
        for (o, &v) in ys.iter_mut().zip(xs) {
            o.write((v - mu) * scale + b);
        }
    })
}

/// The derivatives: with `xhat = (x - mean) / std` and `m` values per channel,
/// `dbias = sum dy`, `dgain = sum dy * xhat` and, when the moments are the batch's own
/// (training mode), `dx = gain / std * (dy - dbias / m - xhat * dgain / m)`, where the
/// last two terms are the paths through the batch mean and variance; with fixed moments
/// (test mode) `dx = gain / std * dy`. Returns (dx, dgain, dbias).
pub fn backward(
    x: &[f32],
    dy: &[f32],
    l: Layout,
    mean: &[f32],
    std: &[f32],
    gain: &[f32],
    batch_moments: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let sums = per_channel(l, |c| {
        let (mu, inv) = (mean[c] as f64, 1.0 / std[c] as f64);
        let mut db = 0.0f64;
        let mut dg = 0.0f64;
        for (xs, ds) in l.planes(x, c).zip(l.planes(dy, c)) {
            db += lane_sum(ds, ds, |d, _| d as f64);
            dg += lane_sum(xs, ds, |v, d| d as f64 * (v as f64 - mu));
        }
        (dg * inv, db)
    });
    let m = l.count() as f64;
    let dx = new_planes(l, |c, k, out| {
        let (dg, db) = sums[c];
        let inv = 1.0 / std[c];
        let mu = mean[c];
        let scale = gain[c] * inv;
        let (mean_dy, mean_dg) = if batch_moments {
            ((db / m) as f32, (dg / m) as f32)
        } else {
            (0.0, 0.0)
        };
        let range = k * l.plane..(k + 1) * l.plane;
        for ((o, &v), &d) in out.iter_mut().zip(&x[range.clone()]).zip(&dy[range]) {
            let xhat = (v - mu) * inv;
            o.write(scale * (d - mean_dy - xhat * mean_dg));
        }
    });
    let (dgain, dbias) = sums
        .into_iter()
        .map(|(dg, db)| (dg as f32, db as f32))
        .unzip();
    (dx, dgain, dbias)
}
