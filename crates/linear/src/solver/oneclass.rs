//! `-s 21`: the one-class SVM dual of LIBLINEAR 2.50 (`solve_oneclass_svm`, Algorithm 7
//! of the supplement of Chou et al., SDM 2020), a two-level coordinate descent on
//!
//! `min_alpha 0.5 alpha'Q alpha` s.t. `0 <= alpha_i <= 1`, `e'alpha = nu l`, `Q_ij = x_i'x_j`:
//! each outer pass computes all gradients, shrinks, and then updates up to `l/10`
//! pairs formed from the most violating indices of the two sides.
//!
//! `SolveInfo::objective` is the dual objective `0.5 ||w||^2`, as LIBLINEAR prints it.
//! LIBLINEAR picks the pairs with a randomised quickselect; since the order of
//! `(value, index)` it selects and sorts by is total, a deterministic selection gives
//! the same pairs, and `params.seed` is not used.

use super::rows::Rows;
use super::{SolveInfo, SolverParams};
use crate::sparse::Csr;

/// LIBLINEAR's `max_iter` of `solve_oneclass_svm`.
pub const MAX_ITER: usize = 1000;

/// Trains the one-class SVM with `params.nu` and `params.eps`; returns the solver's
/// report and `rho` (decision value `w'x - rho`).
pub fn one_class(x: &Csr, params: &SolverParams, w: &mut [f64]) -> (SolveInfo, f64) {
    assert_eq!(w.len(), x.n_cols, "one weight per column");
    let l = x.n_rows();
    let alpha = initial_alpha(l, params.nu);
    let mut st = State {
        x: Rows::new(x),
        qd: (0..l).map(|i| x.sq_norm(i)).collect(),
        alpha,
        g: vec![0.0; l],
    };
    w.fill(0.0);
    for i in 0..l {
        x.axpy(i, st.alpha[i], w);
    }
    let iterations = st.run(w, params.eps);
    let info = SolveInfo {
        iterations,
        objective: 0.5 * w.iter().map(|v| v * v).sum::<f64>(),
        hit_max_iter: iterations >= MAX_ITER,
    };
    (info, st.rho(w))
}

/// The first `floor(nu l)` alphas at 1, the next holding the fraction left over.
fn initial_alpha(l: usize, nu: f64) -> Vec<f64> {
    let total = nu * l as f64;
    let n = (total as usize).min(l);
    let mut alpha = vec![0.0; l];
    alpha[..n].fill(1.0);
    if n < l {
        alpha[n] = total - n as f64;
    }
    alpha
}

struct State<'a> {
    x: Rows<'a>,
    qd: Vec<f64>,
    alpha: Vec<f64>,
    g: Vec<f64>,
}

/// `(-G_i, i)`, ordered by value then index as LIBLINEAR's `compare_feature_node`.
#[derive(Clone, Copy)]
struct Node {
    neg_g: f64,
    i: usize,
}

fn node_cmp(a: &Node, b: &Node) -> std::cmp::Ordering {
    a.neg_g.total_cmp(&b.neg_g).then(a.i.cmp(&b.i))
}

/// The `k` smallest nodes, ascending.
fn smallest(mut v: Vec<Node>, k: usize) -> Vec<Node> {
    if k < v.len() && k > 0 {
        v.select_nth_unstable_by(k, node_cmp);
    }
    v.truncate(k);
    v.sort_unstable_by(node_cmp);
    v
}

/// The `k` largest nodes, descending.
fn largest(mut v: Vec<Node>, k: usize) -> Vec<Node> {
    let n = v.len();
    if k < n && k > 0 {
        v.select_nth_unstable_by(n - k, node_cmp);
    }
    let mut top = v.split_off(n - k);
    top.sort_unstable_by(|a, b| node_cmp(b, a));
    top
}

impl State<'_> {
    fn run(&mut self, w: &mut [f64], eps: f64) -> usize {
        let l = self.x.n_rows();
        let mut index: Vec<usize> = (0..l).collect();
        let mut active = l;
        let mut iter = 0;
        while iter < MAX_ITER {
            let mut neg_gmax = f64::NEG_INFINITY;
            let mut neg_gmin = f64::INFINITY;
            for &i in &index[..active] {
                self.g[i] = self.x.dot(i, w);
                if self.alpha[i] < 1.0 {
                    neg_gmax = neg_gmax.max(-self.g[i]);
                }
                if self.alpha[i] > 0.0 {
                    neg_gmin = neg_gmin.min(-self.g[i]);
                }
            }
            if neg_gmax - neg_gmin < eps {
                if active == l {
                    break;
                }
                active = l;
                continue;
            }
            let mut s = 0;
            while s < active {
                let i = index[s];
                let a = self.alpha[i];
                if (a == 1.0 && -self.g[i] > neg_gmax) || (a == 0.0 && -self.g[i] < neg_gmin) {
                    active -= 1;
                    index.swap(s, active);
                } else {
                    s += 1;
                }
            }
            self.inner(&index[..active], w);
            iter += 1;
        }
        iter
    }

    /// Updates the pairs (most violating of I_up, most violating of I_low).
    fn inner(&mut self, active: &[usize], w: &mut [f64]) {
        let node = |i: usize| Node {
            neg_g: -self.g[i],
            i,
        };
        let up: Vec<Node> = active
            .iter()
            .filter(|&&i| self.alpha[i] < 1.0)
            .map(|&i| node(i))
            .collect();
        let low: Vec<Node> = active
            .iter()
            .filter(|&&i| self.alpha[i] > 0.0)
            .map(|&i| node(i))
            .collect();
        let k = (active.len() / 10).max(1).min(up.len()).min(low.len());
        let up = largest(up, k);
        let low = smallest(low, k);
        for (u, lo) in up.iter().zip(&low) {
            self.update_pair(u.i, lo.i, w);
        }
    }

    fn update_pair(&mut self, i: usize, j: usize, w: &mut [f64]) {
        let (ai, aj) = (self.alpha[i], self.alpha[j]);
        if (ai == 0.0 && aj == 0.0) || (ai == 1.0 && aj == 1.0) {
            return;
        }
        let x = self.x;
        let gi = x.dot(i, w);
        let gj = x.dot(j, w);
        let violating = (ai < 1.0 && aj > 0.0 && -gj + 1e-12 < -gi)
            || (ai > 0.0 && aj < 1.0 && -gi + 1e-12 < -gj);
        if !violating {
            return;
        }
        let mut quad = self.qd[i] + self.qd[j] - 2.0 * sparse_dot(x.csr(), i, j);
        if quad <= 0.0 {
            quad = 1e-12;
        }
        let delta = (gi - gj) / quad;
        let sum = ai + aj;
        let (mut ni, mut nj) = (ai - delta, aj + delta);
        if sum > 1.0 {
            if ni > 1.0 {
                (ni, nj) = (1.0, sum - 1.0);
            }
        } else if nj < 0.0 {
            (ni, nj) = (sum, 0.0);
        }
        if sum > 1.0 {
            if nj > 1.0 {
                (ni, nj) = (sum - 1.0, 1.0);
            }
        } else if ni < 0.0 {
            (ni, nj) = (0.0, sum);
        }
        self.alpha[i] = ni;
        self.alpha[j] = nj;
        let d = ni - ai;
        x.axpy(i, d, w);
        x.axpy(j, -d, w);
    }

    /// rho: the mean gradient over free alphas, else the middle of the bounds the
    /// alphas at 0 and at 1 give.
    fn rho(&self, w: &[f64]) -> f64 {
        let (mut ub, mut lb) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut n_free, mut sum_free) = (0usize, 0.0);
        for (i, &a) in self.alpha.iter().enumerate() {
            let g = self.x.dot(i, w);
            if a == 1.0 {
                lb = lb.max(g);
            } else if a == 0.0 {
                ub = ub.min(g);
            } else {
                n_free += 1;
                sum_free += g;
            }
        }
        if n_free > 0 {
            sum_free / n_free as f64
        } else {
            (ub + lb) / 2.0
        }
    }
}

/// `x_i'x_j` by merging the two sorted rows.
fn sparse_dot(x: &Csr, i: usize, j: usize) -> f64 {
    let (ia, va) = x.row(i);
    let (ib, vb) = x.row(j);
    let (mut p, mut q, mut sum) = (0, 0, 0.0);
    while p < ia.len() && q < ib.len() {
        match ia[p].cmp(&ib[q]) {
            std::cmp::Ordering::Equal => {
                sum += va[p] * vb[q];
                p += 1;
                q += 1;
            }
            std::cmp::Ordering::Less => p += 1,
            std::cmp::Ordering::Greater => q += 1,
        }
    }
    sum
}
