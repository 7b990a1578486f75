//! The primal solvers of LIBLINEAR 2.50 (`newton.cpp`): a Newton method whose direction
//! comes from preconditioned conjugate gradients and whose step from a backtracking line
//! search, for L2-regularised empirical risk
//! `f(w) = w'w/2 + sum_i C_i loss(y_i, w'x_i)` with the logistic loss (-s 0), the
//! squared hinge loss (-s 2) and the squared epsilon-insensitive loss (-s 11).
//!
//! `SolverParams::eps` is the final tolerance of `||grad f(w)|| <= eps ||grad f(0)||`;
//! the driver has already scaled it by `min(pos, neg) / l` for classification, as
//! LIBLINEAR's `train_one` does.

use super::{SolveInfo, SolverParams, SubProblem};
use crate::sparse::Csr;
use rayon::prelude::*;

/// Rows or columns per parallel task: every output element is computed by one task in
/// a fixed order, so results do not depend on the number of threads.
const MIN_TASK: usize = 64;

const MAX_ITER: usize = 1000;
const EPS_CG: f64 = 0.5;
const ALPHA_PCG: f64 = 0.01;
const MAX_LINESEARCH: usize = 20;
const ETA: f64 = 0.01;

/// The loss of one example, as LIBLINEAR's `C_times_loss` variants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    Logistic,
    SquaredHinge,
    /// Squared epsilon-insensitive loss with this epsilon (`-p`).
    SquaredEpsInsensitive(f64),
}

/// -s 0: L2-regularised logistic regression.
pub fn l2r_lr(prob: &SubProblem, params: &SolverParams, w: &mut [f64]) -> SolveInfo {
    solve(prob, params, Loss::Logistic, w)
}

/// -s 2: L2-regularised L2-loss support vector classification.
pub fn l2r_l2_svc(prob: &SubProblem, params: &SolverParams, w: &mut [f64]) -> SolveInfo {
    solve(prob, params, Loss::SquaredHinge, w)
}

/// -s 11: L2-regularised L2-loss support vector regression (`c_pos` is C).
pub fn l2r_l2_svr(prob: &SubProblem, params: &SolverParams, w: &mut [f64]) -> SolveInfo {
    solve(prob, params, Loss::SquaredEpsInsensitive(params.p), w)
}

/// Primal objective of `w` for `loss` (for tests and reports).
pub fn objective(prob: &SubProblem, params: &SolverParams, loss: Loss, w: &[f64]) -> f64 {
    Erm::new(prob, params, loss).fun(w)
}

/// `||grad f(w)||`, whose ratio to its value at zero is the stopping rule.
pub fn gradient_norm(prob: &SubProblem, params: &SolverParams, loss: Loss, w: &[f64]) -> f64 {
    let mut f = Erm::new(prob, params, loss);
    f.fun(w);
    let mut g = vec![0.0; w.len()];
    f.grad(w, &mut g);
    norm(&g)
}

/// Minimises the objective from the starting point in `w` (warm starts allowed).
pub fn solve(prob: &SubProblem, params: &SolverParams, loss: Loss, w: &mut [f64]) -> SolveInfo {
    let mut f = Erm::new(prob, params, loss);
    newton(&mut f, params.eps, w)
}

/// Sequential `a'b`, as LIBLINEAR's own loops.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |acc, (x, y)| acc + x * y)
}

/// `a'b` rounded as the reference BLAS `ddot` that LIBLINEAR ships (unrolled by five),
/// so that our iterates follow LIBLINEAR's closely: a truncated CG amplifies rounding.
fn ddot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let m = n - n % 5;
    let mut acc = 0.0;
    for (x, y) in a[..m].chunks_exact(5).zip(b[..m].chunks_exact(5)) {
        acc += x[0] * y[0] + x[1] * y[1] + x[2] * y[2] + x[3] * y[3] + x[4] * y[4];
    }
    for i in m..n {
        acc += a[i] * b[i];
    }
    acc
}

/// `||a||` by the reference BLAS `dnrm2`'s scaled sum of squares.
fn norm(a: &[f64]) -> f64 {
    let (mut scale, mut ssq) = (0.0f64, 1.0f64);
    for &v in a {
        if v != 0.0 {
            let abs = v.abs();
            if scale < abs {
                ssq = 1.0 + ssq * (scale / abs) * (scale / abs);
                scale = abs;
            } else {
                ssq += (abs / scale) * (abs / scale);
            }
        }
    }
    scale * ssq.sqrt()
}

/// `out = X v`, in parallel over rows.
fn xv(x: &Csr, v: &[f64], out: &mut [f64]) {
    out.par_iter_mut()
        .enumerate()
        .with_min_len(MIN_TASK)
        .for_each(|(i, o)| *o = x.dot(i, v));
}

/// `out = X' a` from the transpose, in parallel over columns, each summing its rows in
/// ascending order (zero entries of `a` add nothing).
fn xtv(xt: &Csr, a: &[f64], out: &mut [f64]) {
    out.par_iter_mut()
        .enumerate()
        .with_min_len(MIN_TASK)
        .for_each(|(j, o)| {
            let (rows, vals) = xt.row(j);
            let mut acc = 0.0;
            for (&i, &v) in rows.iter().zip(vals) {
                let ai = a[i as usize];
                if ai != 0.0 {
                    acc += ai * v;
                }
            }
            *o = acc;
        });
}

/// The empirical risk, its gradient and Hessian-vector products, with the caches that
/// LIBLINEAR keeps between calls (`wx`, `w'w`, the curvature weights of the last gradient).
///
/// `X v` runs in parallel over rows and `X' v` over columns of the transpose `xt`: each
/// column sums its rows in ascending order, exactly LIBLINEAR's sequential `axpy` order,
/// so the parallel results equal LIBLINEAR's bit for bit.
struct Erm<'a> {
    x: &'a Csr,
    xt: Csr,
    y: &'a [f64],
    c: Vec<f64>,
    loss: Loss,
    bias: Option<usize>,
    wx: Vec<f64>,
    xs: Vec<f64>,
    wtw: f64,
    /// Per row, the curvature of the loss at the last gradient (`D_i` for the logistic
    /// loss, 1 or 0 for the squared ones, times the factor [`Erm::curvature_factor`]).
    h: Vec<f64>,
    /// Rows with non-zero curvature, ascending.
    active: Vec<usize>,
    coef: Vec<f64>,
    /// Per row scratch of `hv`.
    hx: Vec<f64>,
}

impl<'a> Erm<'a> {
    fn new(prob: &SubProblem<'a>, params: &SolverParams, loss: Loss) -> Self {
        let c = match loss {
            Loss::SquaredEpsInsensitive(_) => vec![params.c_pos; prob.y.len()],
            _ => prob
                .y
                .iter()
                .map(|&y| if y > 0.0 { params.c_pos } else { params.c_neg })
                .collect(),
        };
        let l = prob.y.len();
        Erm {
            x: prob.x,
            xt: prob.x.transpose(),
            y: prob.y,
            c,
            loss,
            bias: params.unregularized_bias,
            wx: vec![0.0; l],
            xs: vec![0.0; l],
            wtw: 0.0,
            h: vec![0.0; l],
            active: Vec::with_capacity(l),
            coef: vec![0.0; l],
            hx: vec![0.0; l],
        }
    }

    fn n(&self) -> usize {
        self.x.n_cols
    }

    fn c_times_loss(&self, i: usize, wx: f64) -> f64 {
        let (c, y) = (self.c[i], self.y[i]);
        match self.loss {
            Loss::Logistic => {
                let ywx = y * wx;
                if ywx >= 0.0 {
                    c * (1.0 + (-ywx).exp()).ln()
                } else {
                    c * (-ywx + (1.0 + ywx.exp()).ln())
                }
            }
            Loss::SquaredHinge => {
                let d = 1.0 - y * wx;
                if d > 0.0 {
                    c * d * d
                } else {
                    0.0
                }
            }
            Loss::SquaredEpsInsensitive(p) => {
                let d = wx - y;
                if d < -p {
                    c * (d + p) * (d + p)
                } else if d > p {
                    c * (d - p) * (d - p)
                } else {
                    0.0
                }
            }
        }
    }

    fn reg_sq(&self, a: &[f64], b: &[f64]) -> f64 {
        let full = dot(a, b);
        match self.bias {
            Some(j) => full - a[j] * b[j],
            None => full,
        }
    }

    fn fun(&mut self, w: &[f64]) -> f64 {
        xv(self.x, w, &mut self.wx);
        self.wtw = self.reg_sq(w, w);
        let loss: f64 = (0..self.y.len())
            .map(|i| self.c_times_loss(i, self.wx[i]))
            .sum();
        loss + 0.5 * self.wtw
    }

    /// Gradient at the `w` of the last `fun` or line search; also records the curvature
    /// weights that `hv` and the preconditioner use. Products are grouped as LIBLINEAR
    /// groups them, so that rounding follows its own.
    fn grad(&mut self, w: &[f64], g: &mut [f64]) {
        for i in 0..self.y.len() {
            let (c, y, wx) = (self.c[i], self.y[i], self.wx[i]);
            let (gc, h) = match self.loss {
                Loss::Logistic => {
                    let s = 1.0 / (1.0 + (-y * wx).exp());
                    (c * (s - 1.0) * y, s * (1.0 - s))
                }
                Loss::SquaredHinge => {
                    let m = wx * y;
                    if m < 1.0 {
                        (c * y * (m - 1.0), 1.0)
                    } else {
                        (0.0, 0.0)
                    }
                }
                Loss::SquaredEpsInsensitive(p) => {
                    let d = wx - y;
                    if d < -p {
                        (c * (d + p), 1.0)
                    } else if d > p {
                        (c * (d - p), 1.0)
                    } else {
                        (0.0, 0.0)
                    }
                }
            };
            self.coef[i] = gc;
            self.h[i] = h;
        }
        self.active.clear();
        self.active
            .extend((0..self.y.len()).filter(|&i| self.h[i] != 0.0 || self.coef[i] != 0.0));
        self.xtv(&self.coef, g);
        let two = self.curvature_factor();
        for (gj, wj) in g.iter_mut().zip(w) {
            *gj = wj + two * *gj;
        }
        if let Some(j) = self.bias {
            g[j] -= w[j];
        }
    }

    /// The squared losses' factor 2, which LIBLINEAR applies after summing.
    fn curvature_factor(&self) -> f64 {
        if self.loss == Loss::Logistic {
            1.0
        } else {
            2.0
        }
    }

    fn hv(&mut self, s: &[f64], hs: &mut [f64]) {
        let (x, c, h) = (self.x, &self.c, &self.h);
        self.hx
            .par_iter_mut()
            .enumerate()
            .with_min_len(MIN_TASK)
            .for_each(|(i, a)| {
                *a = if h[i] != 0.0 {
                    c[i] * h[i] * x.dot(i, s)
                } else {
                    0.0
                };
            });
        self.xtv(&self.hx, hs);
        let two = self.curvature_factor();
        for (hj, sj) in hs.iter_mut().zip(s) {
            *hj = sj + two * *hj;
        }
        if let Some(j) = self.bias {
            hs[j] -= s[j];
        }
    }

    /// Whether the rows with non-zero curvature are few enough that one pass over them
    /// beats all columns shared among the threads. Either way each output element sums
    /// the same terms in the same (ascending row) order, so the bits are the same.
    fn by_rows(&self) -> bool {
        self.active.len() * rayon::current_num_threads() <= self.y.len()
    }

    /// `out = X' a`, where `a` is zero outside `active`.
    fn xtv(&self, a: &[f64], out: &mut [f64]) {
        if self.by_rows() {
            out.fill(0.0);
            for &i in &self.active {
                if a[i] != 0.0 {
                    self.x.axpy(i, a[i], out);
                }
            }
        } else {
            xtv(&self.xt, a, out);
        }
    }

    fn diag_preconditioner(&self, m: &mut [f64]) {
        let (c, h, xt) = (&self.c, &self.h, &self.xt);
        let squared = self.curvature_factor() == 2.0;
        let bias = self.bias;
        if self.by_rows() {
            m.fill(1.0);
            if let Some(j) = bias {
                m[j] = 0.0;
            }
            for &i in &self.active {
                let ch = if squared { 2.0 } else { h[i] };
                let (idx, val) = self.x.row(i);
                for (&j, &v) in idx.iter().zip(val) {
                    m[j as usize] += v * v * c[i] * ch;
                }
            }
            for v in m.iter_mut() {
                *v = (1.0 - ALPHA_PCG) + ALPHA_PCG * *v;
            }
            return;
        }
        m.par_iter_mut()
            .enumerate()
            .with_min_len(MIN_TASK)
            .for_each(|(j, mj)| {
                let (rows, vals) = xt.row(j);
                let mut acc = if bias == Some(j) { 0.0 } else { 1.0 };
                for (&i, &v) in rows.iter().zip(vals) {
                    let i = i as usize;
                    if h[i] != 0.0 {
                        let ch = if squared { 2.0 } else { h[i] };
                        acc += v * v * c[i] * ch;
                    }
                }
                *mj = (1.0 - ALPHA_PCG) + ALPHA_PCG * acc;
            });
    }

    /// Backtracking line search along `s` from `alpha`; updates `w`, `f` and the caches
    /// and returns the step, or 0 when 20 halvings did not decrease `f` enough.
    fn linesearch_and_update(&mut self, w: &mut [f64], s: &[f64], f: &mut f64, g: &[f64]) -> f64 {
        xv(self.x, s, &mut self.xs);
        let sts = self.reg_sq(s, s);
        let wts = self.reg_sq(w, s);
        let gts = dot(g, s);
        let fold = *f;
        let mut alpha = 1.0;
        for _ in 0..MAX_LINESEARCH {
            let loss: f64 = (0..self.y.len())
                .map(|i| self.c_times_loss(i, self.xs[i] * alpha + self.wx[i]))
                .sum();
            let fnew = loss + (alpha * alpha * sts + self.wtw) / 2.0 + alpha * wts;
            if fnew - fold <= ETA * alpha * gts {
                *f = fnew;
                for (wx, xs) in self.wx.iter_mut().zip(&self.xs) {
                    *wx += alpha * xs;
                }
                for (wi, si) in w.iter_mut().zip(s) {
                    *wi += alpha * si;
                }
                self.wtw += alpha * alpha * sts + 2.0 * alpha * wts;
                return alpha;
            }
            alpha *= 0.5;
        }
        0.0
    }
}

fn newton(f: &mut Erm, eps: f64, w: &mut [f64]) -> SolveInfo {
    let n = f.n();
    let mut g = vec![0.0; n];
    let mut s = vec![0.0; n];
    let mut m = vec![0.0; n];
    let mut cg = Cg::new(n);

    let w0 = vec![0.0; n];
    f.fun(&w0);
    f.grad(&w0, &mut g);
    let gnorm0 = norm(&g);

    let mut fval = f.fun(w);
    f.grad(w, &mut g);
    let mut gnorm = norm(&g);
    let mut iter = 1;
    let mut search = gnorm > eps * gnorm0;
    while iter <= MAX_ITER && search {
        f.diag_preconditioner(&mut m);
        cg.pcg(f, &g, &m, &mut s);
        let fold = fval;
        let step = f.linesearch_and_update(w, &s, &mut fval, &g);
        if step == 0.0 {
            break;
        }
        f.grad(w, &mut g);
        gnorm = norm(&g);
        if gnorm <= eps * gnorm0 || fval < -1.0e32 {
            search = false;
            continue;
        }
        if (fold - fval).abs() <= 1.0e-12 * fval.abs() {
            break;
        }
        iter += 1;
    }
    SolveInfo {
        iterations: iter.min(MAX_ITER),
        objective: fval,
        hit_max_iter: iter > MAX_ITER,
    }
}

/// Work arrays of the conjugate gradient method.
struct Cg {
    r: Vec<f64>,
    d: Vec<f64>,
    hd: Vec<f64>,
    z: Vec<f64>,
}

impl Cg {
    fn new(n: usize) -> Self {
        Cg {
            r: vec![0.0; n],
            d: vec![0.0; n],
            hd: vec![0.0; n],
            z: vec![0.0; n],
        }
    }

    /// Approximately solves `H s = -g` with the diagonal preconditioner `m`, stopping
    /// on the decrease of the quadratic model as LIBLINEAR 2.4x does.
    fn pcg(&mut self, f: &mut Erm, g: &[f64], m: &[f64], s: &mut [f64]) -> usize {
        let n = g.len();
        s.fill(0.0);
        for i in 0..n {
            self.r[i] = -g[i];
            self.z[i] = self.r[i] / m[i];
            self.d[i] = self.z[i];
        }
        let mut ztr = ddot(&self.z, &self.r);
        let cgtol = EPS_CG.min(ztr.sqrt().sqrt());
        let max_cg = n.max(5);
        let mut q = 0.0;
        let mut cg_iter = 0;
        while cg_iter < max_cg {
            cg_iter += 1;
            f.hv(&self.d, &mut self.hd);
            let dhd = ddot(&self.d, &self.hd);
            if dhd <= 1.0e-16 {
                break;
            }
            let alpha = ztr / dhd;
            for (si, di) in s.iter_mut().zip(&self.d) {
                *si += alpha * di;
            }
            for (ri, hdi) in self.r.iter_mut().zip(&self.hd) {
                *ri -= alpha * hdi;
            }
            let newq = -0.5 * (ddot(s, &self.r) - ddot(s, g));
            let qdiff = newq - q;
            if newq > 0.0 || qdiff > 0.0 || cg_iter as f64 * qdiff >= cgtol * newq {
                break;
            }
            q = newq;
            for ((zi, ri), mi) in self.z.iter_mut().zip(&self.r).zip(m) {
                *zi = ri / mi;
            }
            let znew = ddot(&self.z, &self.r);
            let beta = znew / ztr;
            for (di, zi) in self.d.iter_mut().zip(&self.z) {
                *di = beta * *di + zi;
            }
            ztr = znew;
        }
        cg_iter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Problem;

    fn params(eps: f64) -> SolverParams {
        SolverParams::for_tests(eps)
    }

    /// Gradient of the objective by central differences matches `grad`.
    #[test]
    fn gradient_matches_finite_differences() {
        let feats = [0.5, -1.0, 2.0, 0.0, 1.5, 0.3, -0.7, 1.1, 0.0];
        let p = Problem::from_dense(&feats, 3, &[1.0, -1.0, 1.0], 1.0).unwrap();
        let w = [0.3, -0.2, 0.1, 0.05];
        for loss in [
            Loss::Logistic,
            Loss::SquaredHinge,
            Loss::SquaredEpsInsensitive(0.1),
        ] {
            let sub = SubProblem { x: &p.x, y: &p.y };
            let mut prm = params(0.01);
            prm.unregularized_bias = Some(3);
            let mut f = Erm::new(&sub, &prm, loss);
            f.fun(&w);
            let mut g = vec![0.0; 4];
            f.grad(&w, &mut g);
            for j in 0..4 {
                let h = 1e-6;
                let (mut a, mut b) = (w, w);
                a[j] += h;
                b[j] -= h;
                let fd = (f.fun(&a) - f.fun(&b)) / (2.0 * h);
                assert!((fd - g[j]).abs() < 1e-6, "{loss:?} j={j}: {fd} vs {}", g[j]);
            }
        }
    }

    /// At the solution the gradient is (nearly) zero: compare with a long run.
    #[test]
    fn converges_to_a_stationary_point() {
        let feats: Vec<f64> = (0..60)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) / 5.0)
            .collect();
        let y: Vec<f64> = (0..20)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        let p = Problem::from_dense(&feats, 3, &y, 1.0).unwrap();
        let sub = SubProblem { x: &p.x, y: &p.y };
        for loss in [
            Loss::Logistic,
            Loss::SquaredHinge,
            Loss::SquaredEpsInsensitive(0.1),
        ] {
            let mut w = vec![0.0; 4];
            let info = solve(&sub, &params(1e-10), loss, &mut w);
            let mut f = Erm::new(&sub, &params(1e-10), loss);
            f.fun(&w);
            let mut g = vec![0.0; 4];
            f.grad(&w, &mut g);
            assert!(norm(&g) < 1e-6, "{loss:?}: |g| = {}", norm(&g));
            assert!(!info.hit_max_iter);
            assert!((info.objective - objective(&sub, &params(1.0), loss, &w)).abs() < 1e-9);
        }
    }
}

#[cfg(test)]
mod determinism {
    use super::*;
    use crate::problem::Problem;

    /// The parallel products give the same bits on one thread and on several.
    #[test]
    fn same_weights_for_any_thread_count() {
        let feats: Vec<f64> = (0..3000)
            .map(|i| (((i * 7919) % 23) as f64 - 11.0) / 7.0)
            .map(|v| if v.abs() < 0.5 { 0.0 } else { v })
            .collect();
        let y: Vec<f64> = (0..200)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        let p = Problem::from_dense(&feats, 15, &y, 1.0).unwrap();
        let sub = SubProblem { x: &p.x, y: &p.y };
        let params = SolverParams {
            eps: 1e-6,
            c_pos: 2.0,
            c_neg: 0.5,
            p: 0.1,
            nu: 0.5,
            unregularized_bias: None,
            seed: 1,
        };
        for loss in [
            Loss::Logistic,
            Loss::SquaredHinge,
            Loss::SquaredEpsInsensitive(0.1),
        ] {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut w = vec![0.0; p.x.n_cols];
                pool.install(|| solve(&sub, &params, loss, &mut w));
                w
            };
            let one = run(1);
            assert_eq!(one, run(3), "{loss:?}");
            assert!(one.iter().any(|&v| v != 0.0));
        }
    }
}
