//! Cross-channel local response normalisation on the CPU, one image per task; images
//! are independent, so the result does not depend on the number of threads.
//!
//! With `s_c = kappa + alpha * sum_{c' in W(c)} x_{c'}^2` and `W(c)` the `n` channels
//! centred on c (clipped at the ends): `y_c = x_c * s_c^-beta`, and, since `W` is
//! symmetric (k in W(c) exactly when c in W(k)),
//! `dx_k = dy_k * s_k^-beta - 2 alpha beta x_k * sum_{c in W(k)} dy_c x_c s_c^(-beta-1)`.

use rayon::prelude::*;

/// Below this many elements everything runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 15;

/// Checked options and sizes: `n` odd, `s` positive for any x, `plane > 0`.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub n: usize,
    pub kappa: f32,
    pub alpha: f32,
    pub beta: f32,
    pub channels: usize,
    pub plane: usize,
}

impl Params {
    /// The channels of the window centred on `c`.
    fn window(&self, c: usize) -> std::ops::Range<usize> {
        let half = self.n / 2;
        c.saturating_sub(half)..(c + half + 1).min(self.channels)
    }

    fn image_len(&self) -> usize {
        self.channels * self.plane
    }
}

/// `s[i] = s[i]^-beta`; the common exponents avoid `powf`, which dominates the loop
/// otherwise, and are chosen once per call so that the loops stay branch-free.
fn neg_pow_in_place(s: &mut [f32], beta: f32) {
    fn run(s: &mut [f32], pw: impl Fn(f32) -> f32) {
        for v in s.iter_mut() {
            *v = pw(*v);
        }
    }
    if beta == 0.75 {
        run(s, |b| {
            let r = b.sqrt();
            1.0 / (r * r.sqrt())
        })
    } else if beta == 0.5 {
        run(s, |b| 1.0 / b.sqrt())
    } else if beta == 1.0 {
        run(s, |b| 1.0 / b)
    } else {
        run(s, |b| b.powf(-beta))
    }
}

/// `out_c = sum_{c' in W(c)} v_{c'}` for one image of per-channel planes, summing the
/// window in channel order.
fn window_sums(v: &[f32], p: &Params, out: &mut [f32]) {
    for (c, acc) in out.chunks_mut(p.plane).enumerate() {
        acc.fill(0.0);
        for c2 in p.window(c) {
            for (a, &q) in acc.iter_mut().zip(&v[c2 * p.plane..(c2 + 1) * p.plane]) {
                *a += q;
            }
        }
    }
}

/// `s` for one image, into `s` (same length as `x`).
fn bases(x: &[f32], p: &Params, sq: &mut [f32], s: &mut [f32]) {
    for (q, &v) in sq.iter_mut().zip(x) {
        *q = v * v;
    }
    window_sums(sq, p, s);
    for v in s.iter_mut() {
        *v = p.kappa + p.alpha * *v;
    }
}

/// Runs `f(image of x, image of dy (or empty), image of out)` for each image.
fn per_image(
    x: &[f32],
    dy: &[f32],
    p: &Params,
    out: &mut [f32],
    f: impl Fn(&[f32], &[f32], &mut [f32]) + Sync + Send,
) {
    let m = p.image_len();
    if m == 0 {
        return;
    }
    let run = |(i, o): (usize, &mut [f32])| {
        let d = dy.get(i * m..(i + 1) * m).unwrap_or(&[]);
        f(&x[i * m..(i + 1) * m], d, o)
    };
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(m).enumerate().for_each(run);
    } else {
        out.chunks_mut(m).enumerate().for_each(run);
    }
}

pub fn forward(x: &[f32], p: &Params, y: &mut [f32]) {
    per_image(x, &[], p, y, |xi, _, yi| {
        let mut sq = vec![0.0; xi.len()];
        bases(xi, p, &mut sq, yi);
        neg_pow_in_place(yi, p.beta);
        for (o, &v) in yi.iter_mut().zip(xi) {
            *o *= v;
        }
    });
}

pub fn backward(x: &[f32], dy: &[f32], p: &Params, dx: &mut [f32]) {
    let k = -2.0 * p.alpha * p.beta;
    per_image(x, dy, p, dx, |xi, di, out| {
        let len = xi.len();
        let (mut s, mut t) = (vec![0.0; len], vec![0.0; len]);
        bases(xi, p, &mut t, &mut s);
        let mut pw = s.clone();
        neg_pow_in_place(&mut pw, p.beta);
        // t = dy * x * s^(-beta-1)
        for ((((tv, &sv), &q), &v), &d) in t.iter_mut().zip(&s).zip(&pw).zip(xi).zip(di) {
            *tv = d * v * q / sv;
        }
        window_sums(&t, p, out);
        for (((o, &v), &d), &pw) in out.iter_mut().zip(xi).zip(di).zip(&pw) {
            *o = d * pw + k * v * *o;
        }
    });
}
