//! `-s 4`: Crammer and Singer's multi-class SVM by sequential dual coordinate
//! descent with shrinking, as LIBLINEAR 2.50's `Solver_MCSVM_CS` (Keerthi et al.
//! 2008; appendix of Fan et al. 2008):
//!
//! `min_alpha 0.5 sum_m ||w_m||^2 + sum_i sum_m e_i^m alpha_i^m`
//! s.t. `alpha_i^m <= C_i^m`, `sum_m alpha_i^m = 0`, with `w_m = sum_i alpha_i^m x_i`,
//! `e_i^m = [m != y_i]`, `C_i^m = C_{y_i}` for `m = y_i` and 0 otherwise.
//!
//! `SolveInfo::objective` is that dual objective, as LIBLINEAR prints it.

use super::order::Order;
use super::{SolveInfo, SolverParams};
use crate::sparse::Csr;

/// LIBLINEAR's default `max_iter` of `Solver_MCSVM_CS`.
pub const MAX_ITER: usize = 100_000;

/// Crammer-Singer with the same C (`params.c_pos`) for every class. `labels[i]` is
/// the class index (`0..n_class`) of row `i`; `w[feature * n_class + class]`.
pub fn crammer_singer(
    x: &Csr,
    labels: &[usize],
    n_class: usize,
    params: &SolverParams,
    w: &mut [f64],
) -> SolveInfo {
    let c = vec![params.c_pos; n_class];
    crammer_singer_weighted(x, labels, &c, params, w)
}

/// Crammer-Singer with one C per class (`C` times that class's `-wi` weight), as
/// LIBLINEAR's `weighted_C`; `class_c.len()` is the number of classes.
pub fn crammer_singer_weighted(
    x: &Csr,
    labels: &[usize],
    class_c: &[f64],
    params: &SolverParams,
    w: &mut [f64],
) -> SolveInfo {
    let k = class_c.len();
    assert_eq!(labels.len(), x.n_rows(), "one label per row");
    assert_eq!(w.len(), x.n_cols * k, "w holds n_cols * n_class weights");
    assert!(
        labels.iter().all(|&y| y < k),
        "labels are class indices below n_class"
    );
    let mut solver = Solver::new(x, labels, class_c, params.eps);
    w.fill(0.0);
    let iterations = solver.run(w, params.seed);
    SolveInfo {
        iterations,
        objective: solver.objective(w),
        hit_max_iter: iterations >= MAX_ITER,
    }
}

struct Solver<'a> {
    x: &'a Csr,
    labels: &'a [usize],
    class_c: &'a [f64],
    k: usize,
    eps: f64,
    /// `alpha[i * k + m]`.
    alpha: Vec<f64>,
    /// Active classes of each row first: `alpha_index[i * k + r]` is a class.
    alpha_index: Vec<usize>,
    /// Position of the true class within row `i`'s `alpha_index`.
    y_index: Vec<usize>,
    active_size_i: Vec<usize>,
    qd: Vec<f64>,
    g: Vec<f64>,
    b: Vec<f64>,
    alpha_new: Vec<f64>,
}

impl<'a> Solver<'a> {
    fn new(x: &'a Csr, labels: &'a [usize], class_c: &'a [f64], eps: f64) -> Self {
        let l = x.n_rows();
        let k = class_c.len();
        Solver {
            x,
            labels,
            class_c,
            k,
            eps,
            alpha: vec![0.0; l * k],
            alpha_index: (0..l).flat_map(|_| 0..k).collect(),
            y_index: labels.to_vec(),
            active_size_i: vec![k; l],
            qd: (0..l).map(|i| x.sq_norm(i)).collect(),
            g: vec![0.0; k],
            b: vec![0.0; k],
            alpha_new: vec![0.0; k],
        }
    }

    fn c_of(&self, i: usize) -> f64 {
        self.class_c[self.labels[i]]
    }

    fn be_shrunk(&self, i: usize, r: usize, alpha_ir: f64, min_g: f64) -> bool {
        let bound = if r == self.y_index[i] {
            self.c_of(i)
        } else {
            0.0
        };
        alpha_ir == bound && self.g[r] < min_g
    }

    fn run(&mut self, w: &mut [f64], seed: u64) -> usize {
        let l = self.x.n_rows();
        let mut order = Order::new(l, seed);
        let mut active = l;
        let mut eps_shrink = (10.0 * self.eps).max(1.0);
        let mut start_from_all = true;
        let mut iter = 0;
        while iter < MAX_ITER {
            let mut stopping = f64::NEG_INFINITY;
            order.shuffle(active);
            let mut s = 0;
            while s < active {
                let i = order.index[s];
                match self.visit(i, w) {
                    Visit::Retire => order.deactivate(s, &mut active),
                    Visit::Violation(v) => {
                        stopping = stopping.max(v);
                        s += 1;
                    }
                    Visit::Skip => s += 1,
                }
            }
            iter += 1;
            if stopping < eps_shrink {
                if stopping < self.eps && start_from_all {
                    break;
                }
                active = l;
                self.active_size_i.fill(self.k);
                eps_shrink = (eps_shrink / 2.0).max(self.eps);
                start_from_all = true;
            } else {
                start_from_all = false;
            }
        }
        iter
    }

    /// Gradient of row `i`'s active classes into `self.g`.
    fn gradient(&mut self, i: usize, w: &[f64]) {
        let k = self.k;
        let act = self.active_size_i[i];
        let ai = &self.alpha_index[i * k..i * k + act];
        self.g[..act].fill(1.0);
        if self.y_index[i] < act {
            self.g[self.y_index[i]] = 0.0;
        }
        let (idx, val) = self.x.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            let wj = &w[j as usize * k..j as usize * k + k];
            for (gm, &m) in self.g[..act].iter_mut().zip(ai) {
                *gm += wj[m] * v;
            }
        }
    }

    /// Drops the classes of row `i` that sit at their bound with a gradient below
    /// `min_g`, keeping the true class's position in `y_index` up to date.
    fn shrink_classes(&mut self, i: usize, min_g: f64) {
        let k = self.k;
        let mut m = 0;
        while m < self.active_size_i[i] {
            if self.be_shrunk(i, m, self.alpha[i * k + self.alpha_index[i * k + m]], min_g) {
                self.active_size_i[i] -= 1;
                while self.active_size_i[i] > m {
                    let last = self.active_size_i[i];
                    let a_last = self.alpha[i * k + self.alpha_index[i * k + last]];
                    if !self.be_shrunk(i, last, a_last, min_g) {
                        self.alpha_index.swap(i * k + m, i * k + last);
                        self.g.swap(m, last);
                        if self.y_index[i] == last {
                            self.y_index[i] = m;
                        } else if self.y_index[i] == m {
                            self.y_index[i] = last;
                        }
                        break;
                    }
                    self.active_size_i[i] -= 1;
                }
            }
            m += 1;
        }
    }

    fn visit(&mut self, i: usize, w: &mut [f64]) -> Visit {
        let k = self.k;
        let ai = self.qd[i];
        if ai <= 0.0 {
            return Visit::Skip;
        }
        self.gradient(i, w);
        let act = self.active_size_i[i];
        let mut min_g = f64::INFINITY;
        let mut max_g = f64::NEG_INFINITY;
        for m in 0..act {
            let a = self.alpha[i * k + self.alpha_index[i * k + m]];
            if a < 0.0 && self.g[m] < min_g {
                min_g = self.g[m];
            }
            max_g = max_g.max(self.g[m]);
        }
        let yi = self.y_index[i];
        if yi < act && self.alpha[i * k + self.labels[i]] < self.c_of(i) && self.g[yi] < min_g {
            min_g = self.g[yi];
        }
        self.shrink_classes(i, min_g);
        let act = self.active_size_i[i];
        if act <= 1 {
            return Visit::Retire;
        }
        if max_g - min_g <= 1e-12 {
            return Visit::Skip;
        }
        for m in 0..act {
            self.b[m] = self.g[m] - ai * self.alpha[i * k + self.alpha_index[i * k + m]];
        }
        self.solve_sub_problem(ai, self.y_index[i], self.c_of(i), act);
        let (idx, val) = self.x.row(i);
        for m in 0..act {
            let class = self.alpha_index[i * k + m];
            let d = self.alpha_new[m] - self.alpha[i * k + class];
            self.alpha[i * k + class] = self.alpha_new[m];
            if d.abs() >= 1e-12 {
                for (&j, &v) in idx.iter().zip(val) {
                    w[j as usize * k + class] += d * v;
                }
            }
        }
        Visit::Violation(max_g - min_g)
    }

    /// The closed-form solution of one row's sub-problem over its `act` active
    /// classes (Crammer and Singer's fixed-point on beta).
    fn solve_sub_problem(&mut self, a_i: f64, yi: usize, c_yi: f64, act: usize) {
        let mut d: Vec<f64> = self.b[..act].to_vec();
        if yi < act {
            d[yi] += a_i * c_yi;
        }
        d.sort_unstable_by(|a, b| b.total_cmp(a));
        let mut beta = d[0] - a_i * c_yi;
        let mut r = 1;
        while r < act && beta < r as f64 * d[r] {
            beta += d[r];
            r += 1;
        }
        beta /= r as f64;
        for m in 0..act {
            let bound = if m == yi { c_yi } else { 0.0 };
            self.alpha_new[m] = bound.min((beta - self.b[m]) / a_i);
        }
    }

    fn objective(&self, w: &[f64]) -> f64 {
        let k = self.k;
        let mut v = 0.5 * w.iter().map(|a| a * a).sum::<f64>();
        v += self.alpha.iter().sum::<f64>();
        for (i, &y) in self.labels.iter().enumerate() {
            v -= self.alpha[i * k + y];
        }
        v
    }
}

enum Visit {
    /// All but one class shrunk: the row leaves the active set.
    Retire,
    /// Updated; the row's violation `max G - min G`.
    Violation(f64),
    /// Nothing to do for this row in this pass.
    Skip,
}
