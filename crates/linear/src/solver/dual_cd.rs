//! Dual coordinate descent with shrinking for the L2-regularised problems:
//! SVC with L1 or L2 loss (`-s 3`, `-s 1`, Hsieh et al. 2008, Algorithm 3),
//! logistic regression (`-s 7`, Yu et al. 2011, Algorithm 5) and SVR with L1 or
//! L2 loss (`-s 13`, `-s 12`, Ho and Lin 2012, Algorithm 4), as LIBLINEAR 2.50.
//!
//! LIBLINEAR 2.50 caps these solvers at [`DUAL_MAX_ITER`] outer iterations; when
//! `-s 1`, `-s 7` or `-s 12` reach it, its `train_one` continues with the primal
//! Newton solver (`-s 2`, `-s 0`, `-s 11`) from the dual's `w` at a tighter
//! tolerance. That switch belongs to the caller: these functions report it through
//! `SolveInfo::hit_max_iter`. LIBLINEAR 2.50 rejects `-R` for all of these solvers,
//! so `unregularized_bias` is not read here.
//!
//! `SolveInfo::objective` is the dual objective LIBLINEAR prints as
//! "Objective value = ..." (minimisation form, so it is minus the primal optimum
//! at convergence).

use super::order::Order;
use super::rows::Rows;
use super::{SolveInfo, SolverParams, SubProblem};

/// LIBLINEAR 2.50's `dual_solver_max_iter`.
pub const DUAL_MAX_ITER: usize = 300;

/// Updates smaller than this are skipped, as LIBLINEAR does.
const TINY: f64 = 1e-12;

/// Loss of the SVC and SVR duals: L1 bounds alpha by C, L2 adds 1/(2C) to the
/// diagonal and leaves alpha unbounded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Loss {
    L1,
    L2,
}

fn is_positive(y: f64) -> bool {
    y > 0.0
}

/// Per-example diagonal shift and upper bound of the SVC dual.
fn svc_diag_and_bound(loss: Loss, c: f64) -> (f64, f64) {
    match loss {
        Loss::L1 => (0.0, c),
        Loss::L2 => (0.5 / c, f64::INFINITY),
    }
}

/// `-s 1`: L2-regularised L2-loss SVC, dual.
pub fn l2r_l2_svc_dual(prob: &SubProblem, params: &SolverParams, w: &mut [f64]) -> SolveInfo {
    svc_dual(prob, params, w, Loss::L2).0
}

/// `-s 3`: L2-regularised L1-loss SVC, dual.
pub fn l2r_l1_svc_dual(prob: &SubProblem, params: &SolverParams, w: &mut [f64]) -> SolveInfo {
    svc_dual(prob, params, w, Loss::L1).0
}

/// `-s 12`: L2-regularised L2-loss SVR, dual. Uses `params.c_pos` as C.
pub fn l2r_l2_svr_dual(prob: &SubProblem, params: &SolverParams, w: &mut [f64]) -> SolveInfo {
    svr_dual(prob, params, w, Loss::L2).0
}

/// `-s 13`: L2-regularised L1-loss SVR, dual. Uses `params.c_pos` as C.
pub fn l2r_l1_svr_dual(prob: &SubProblem, params: &SolverParams, w: &mut [f64]) -> SolveInfo {
    svr_dual(prob, params, w, Loss::L1).0
}

fn check_shapes(prob: &SubProblem, w: &[f64]) {
    assert_eq!(prob.y.len(), prob.x.n_rows(), "one target per row");
    assert_eq!(w.len(), prob.x.n_cols, "one weight per column");
}

/// Projected-gradient bounds of the previous pass, used for shrinking.
struct PgWindow {
    max_old: f64,
    min_old: f64,
}

impl PgWindow {
    fn reset(&mut self) {
        self.max_old = f64::INFINITY;
        self.min_old = f64::NEG_INFINITY;
    }
}

/// Returns the report and the dual variables `alpha`.
fn svc_dual(
    prob: &SubProblem,
    params: &SolverParams,
    w: &mut [f64],
    loss: Loss,
) -> (SolveInfo, Vec<f64>) {
    check_shapes(prob, w);
    let x = Rows::new(prob.x);
    let l = x.n_rows();
    let y: Vec<f64> = prob
        .y
        .iter()
        .map(|&v| if is_positive(v) { 1.0 } else { -1.0 })
        .collect();
    let (diag, upper): (Vec<f64>, Vec<f64>) = y
        .iter()
        .map(|&yi| svc_diag_and_bound(loss, if yi > 0.0 { params.c_pos } else { params.c_neg }))
        .unzip();
    let qd: Vec<f64> = (0..l).map(|i| diag[i] + x.sq_norm(i)).collect();
    let mut alpha = vec![0.0; l];
    w.fill(0.0);

    let mut order = Order::new(l, params.seed);
    let mut active = l;
    let mut pg = PgWindow {
        max_old: f64::INFINITY,
        min_old: f64::NEG_INFINITY,
    };
    let mut iter = 0;
    while iter < DUAL_MAX_ITER {
        let mut pg_max_new = f64::NEG_INFINITY;
        let mut pg_min_new = f64::INFINITY;
        order.shuffle(active);
        let mut s = 0;
        while s < active {
            let i = order.index[s];
            let g = y[i] * x.dot(i, w) - 1.0 + alpha[i] * diag[i];
            let c = upper[i];
            let mut proj = 0.0;
            if alpha[i] == 0.0 {
                if g > pg.max_old {
                    order.deactivate(s, &mut active);
                    continue;
                } else if g < 0.0 {
                    proj = g;
                }
            } else if alpha[i] == c {
                if g < pg.min_old {
                    order.deactivate(s, &mut active);
                    continue;
                } else if g > 0.0 {
                    proj = g;
                }
            } else {
                proj = g;
            }
            pg_max_new = pg_max_new.max(proj);
            pg_min_new = pg_min_new.min(proj);
            if proj.abs() > TINY {
                let old = alpha[i];
                alpha[i] = (alpha[i] - g / qd[i]).max(0.0).min(c);
                x.axpy(i, (alpha[i] - old) * y[i], w);
            }
            s += 1;
        }
        iter += 1;

        let eps = params.eps;
        if pg_max_new - pg_min_new <= eps && pg_max_new.abs() <= eps && pg_min_new.abs() <= eps {
            if active == l {
                break;
            }
            active = l;
            pg.reset();
            continue;
        }
        pg.max_old = if pg_max_new <= 0.0 {
            f64::INFINITY
        } else {
            pg_max_new
        };
        pg.min_old = if pg_min_new >= 0.0 {
            f64::NEG_INFINITY
        } else {
            pg_min_new
        };
    }

    let penalty: f64 = alpha
        .iter()
        .zip(&diag)
        .map(|(a, d)| a * (a * d - 2.0))
        .sum();
    let info = SolveInfo {
        iterations: iter,
        objective: (sq_norm(w) + penalty) / 2.0,
        hit_max_iter: iter >= DUAL_MAX_ITER,
    };
    (info, alpha)
}

pub(crate) fn sq_norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum()
}

/// What shrinking and the violation measure make of one SVR coordinate.
enum SvrCoordinate {
    Shrink,
    Violation(f64),
}

/// LIBLINEAR's case analysis of the SVR dual's optimality at `beta` given the
/// one-sided gradients `gp = G + p` and `gn = G - p`.
fn svr_violation(beta: f64, gp: f64, gn: f64, bound: f64, gmax_old: f64) -> SvrCoordinate {
    use SvrCoordinate::{Shrink, Violation};
    if beta == 0.0 {
        if gp < 0.0 {
            Violation(-gp)
        } else if gn > 0.0 {
            Violation(gn)
        } else if gp > gmax_old && gn < -gmax_old {
            Shrink
        } else {
            Violation(0.0)
        }
    } else if beta >= bound {
        if gp > 0.0 {
            Violation(gp)
        } else if gp < -gmax_old {
            Shrink
        } else {
            Violation(0.0)
        }
    } else if beta <= -bound {
        if gn < 0.0 {
            Violation(-gn)
        } else if gn > gmax_old {
            Shrink
        } else {
            Violation(0.0)
        }
    } else if beta > 0.0 {
        Violation(gp.abs())
    } else {
        Violation(gn.abs())
    }
}

/// Newton step of the one-variable problem with the `|beta|` kink, the same
/// soft-thresholding the L1-regularised solvers use.
pub(crate) fn soft_threshold_step(gp: f64, gn: f64, h: f64, v: f64) -> f64 {
    if gp < h * v {
        -gp / h
    } else if gn > h * v {
        -gn / h
    } else {
        -v
    }
}

/// Returns the report and the dual variables `beta`.
fn svr_dual(
    prob: &SubProblem,
    params: &SolverParams,
    w: &mut [f64],
    loss: Loss,
) -> (SolveInfo, Vec<f64>) {
    check_shapes(prob, w);
    let x = Rows::new(prob.x);
    let y = prob.y;
    let l = x.n_rows();
    let c = params.c_pos;
    let p = params.p;
    let (lambda, bound) = match loss {
        Loss::L1 => (0.0, c),
        Loss::L2 => (0.5 / c, f64::INFINITY),
    };
    let qd: Vec<f64> = (0..l).map(|i| x.sq_norm(i)).collect();
    let mut beta = vec![0.0; l];
    w.fill(0.0);

    let mut order = Order::new(l, params.seed);
    let mut active = l;
    let mut gmax_old = f64::INFINITY;
    let mut gnorm1_init = -1.0;
    let mut iter = 0;
    while iter < DUAL_MAX_ITER {
        let mut gmax_new: f64 = 0.0;
        let mut gnorm1_new = 0.0;
        order.shuffle(active);
        let mut s = 0;
        while s < active {
            let i = order.index[s];
            let g = -y[i] + lambda * beta[i] + x.dot(i, w);
            let h = qd[i] + lambda;
            let (gp, gn) = (g + p, g - p);
            let violation = match svr_violation(beta[i], gp, gn, bound, gmax_old) {
                SvrCoordinate::Shrink => {
                    order.deactivate(s, &mut active);
                    continue;
                }
                SvrCoordinate::Violation(v) => v,
            };
            gmax_new = gmax_new.max(violation);
            gnorm1_new += violation;
            s += 1;

            let d = soft_threshold_step(gp, gn, h, beta[i]);
            if d.abs() < TINY {
                continue;
            }
            let old = beta[i];
            beta[i] = (beta[i] + d).max(-bound).min(bound);
            let d = beta[i] - old;
            if d != 0.0 {
                x.axpy(i, d, w);
            }
        }
        if iter == 0 {
            gnorm1_init = gnorm1_new;
        }
        iter += 1;
        if gnorm1_new <= params.eps * gnorm1_init {
            if active == l {
                break;
            }
            active = l;
            gmax_old = f64::INFINITY;
            continue;
        }
        gmax_old = gmax_new;
    }

    let loss_part: f64 = beta
        .iter()
        .zip(y)
        .map(|(&b, &yi)| p * b.abs() - yi * b + 0.5 * lambda * b * b)
        .sum();
    let info = SolveInfo {
        iterations: iter,
        objective: 0.5 * sq_norm(w) + loss_part,
        hit_max_iter: iter >= DUAL_MAX_ITER,
    };
    (info, beta)
}

/// `-s 7`: L2-regularised logistic regression, dual, with a Newton method on each
/// one-variable sub-problem. `alpha` and `C - alpha` are both kept so that neither
/// loses precision near a bound.
pub fn l2r_lr_dual(prob: &SubProblem, params: &SolverParams, w: &mut [f64]) -> SolveInfo {
    const MAX_INNER_ITER: usize = 100;
    const ETA: f64 = 0.1;
    check_shapes(prob, w);
    let x = Rows::new(prob.x);
    let l = x.n_rows();
    let y: Vec<f64> = prob
        .y
        .iter()
        .map(|&v| if is_positive(v) { 1.0 } else { -1.0 })
        .collect();
    let upper: Vec<f64> = y
        .iter()
        .map(|&yi| if yi > 0.0 { params.c_pos } else { params.c_neg })
        .collect();
    let mut inner_eps = 1e-2;
    let inner_eps_min = params.eps.min(1e-8);
    // alpha[2i] is alpha_i, alpha[2i+1] is C_i - alpha_i.
    let mut alpha = vec![0.0; 2 * l];
    for i in 0..l {
        alpha[2 * i] = (0.001 * upper[i]).min(1e-8);
        alpha[2 * i + 1] = upper[i] - alpha[2 * i];
    }
    let xtx: Vec<f64> = (0..l).map(|i| x.sq_norm(i)).collect();
    w.fill(0.0);
    for i in 0..l {
        x.axpy(i, y[i] * alpha[2 * i], w);
    }

    let mut order = Order::new(l, params.seed);
    let mut iter = 0;
    while iter < DUAL_MAX_ITER {
        order.shuffle(l);
        let mut newton_iter = 0;
        let mut gmax: f64 = 0.0;
        for s in 0..l {
            let i = order.index[s];
            let c = upper[i];
            let a = xtx[i];
            let b = y[i] * x.dot(i, w);
            // Minimise over alpha_i or over C - alpha_i, whichever moves away from
            // its bound, so the log barrier stays well conditioned.
            let (mut ind1, mut ind2, mut sign) = (2 * i, 2 * i + 1, 1.0);
            if 0.5 * a * (alpha[ind2] - alpha[ind1]) + b < 0.0 {
                (ind1, ind2, sign) = (2 * i + 1, 2 * i, -1.0);
            }
            let alpha_old = alpha[ind1];
            let mut z = alpha_old;
            if c - z < 0.5 * c {
                z *= 0.1;
            }
            let grad = |z: f64| a * (z - alpha_old) + sign * b + (z / (c - z)).ln();
            let mut gp = grad(z);
            gmax = gmax.max(gp.abs());

            let mut inner_iter = 0;
            while inner_iter <= MAX_INNER_ITER {
                if gp.abs() < inner_eps {
                    break;
                }
                let gpp = a + c / (c - z) / z;
                let tmpz = z - gp / gpp;
                z = if tmpz <= 0.0 { z * ETA } else { tmpz };
                gp = grad(z);
                newton_iter += 1;
                inner_iter += 1;
            }
            if inner_iter > 0 {
                alpha[ind1] = z;
                alpha[ind2] = c - z;
                x.axpy(i, sign * (z - alpha_old) * y[i], w);
            }
        }
        iter += 1;
        if gmax < params.eps {
            break;
        }
        if newton_iter <= l / 10 {
            inner_eps = inner_eps_min.max(0.1 * inner_eps);
        }
    }

    let entropy: f64 = (0..l)
        .map(|i| {
            let (a, b, c) = (alpha[2 * i], alpha[2 * i + 1], upper[i]);
            a * a.ln() + b * b.ln() - c * c.ln()
        })
        .sum();
    SolveInfo {
        iterations: iter,
        objective: 0.5 * sq_norm(w) + entropy,
        hit_max_iter: iter >= DUAL_MAX_ITER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::Csr;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    fn problem(rows: usize, cols: usize, seed: u64) -> (Csr, Vec<f64>) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut x = Csr {
            indptr: vec![0],
            n_cols: cols,
            ..Default::default()
        };
        for _ in 0..rows {
            for j in 0..cols {
                if rng.gen::<f64>() < 0.4 {
                    x.indices.push(j as u32);
                    x.values.push(rng.gen_range(-1.0..1.0));
                }
            }
            x.indptr.push(x.indices.len());
        }
        let y = (0..rows).map(|_| rng.gen_range(-1.5..1.5)).collect();
        (x, y)
    }

    fn params(c_pos: f64, c_neg: f64) -> SolverParams {
        SolverParams {
            eps: 1e-8,
            c_pos,
            c_neg,
            p: 0.2,
            nu: 0.5,
            unregularized_bias: None,
            seed: 7,
        }
    }

    /// `w` must equal `sum_i coef_i x_i` for the returned dual variables.
    fn assert_w_matches(x: &Csr, coef: &[f64], w: &[f64]) {
        let mut v = vec![0.0; w.len()];
        for (i, &c) in coef.iter().enumerate() {
            x.axpy(i, c, &mut v);
        }
        for (a, b) in v.iter().zip(w) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn svc_alphas_stay_in_their_boxes_and_rebuild_w() {
        let (x, t) = problem(50, 12, 1);
        let y: Vec<f64> = t
            .iter()
            .map(|v| if *v > 0.0 { 1.0 } else { -1.0 })
            .collect();
        let prob = SubProblem { x: &x, y: &y };
        let p = params(0.4, 1.1);
        for loss in [Loss::L1, Loss::L2] {
            let mut w = vec![0.0; 12];
            let (_, alpha) = svc_dual(&prob, &p, &mut w, loss);
            for (a, yi) in alpha.iter().zip(&y) {
                let c = if *yi > 0.0 { p.c_pos } else { p.c_neg };
                let upper = if loss == Loss::L1 { c } else { f64::INFINITY };
                assert!(
                    (0.0..=upper).contains(a),
                    "{loss:?}: alpha {a} outside [0, {upper}]"
                );
            }
            if loss == Loss::L1 {
                assert!(
                    alpha.iter().any(|a| *a == p.c_pos || *a == p.c_neg),
                    "some at bound"
                );
            }
            assert!(alpha.contains(&0.0), "{loss:?}: some alphas are 0");
            let coef: Vec<f64> = alpha.iter().zip(&y).map(|(a, y)| a * y).collect();
            assert_w_matches(&x, &coef, &w);
        }
    }

    #[test]
    fn svr_betas_stay_in_their_boxes_and_rebuild_w() {
        let (x, y) = problem(30, 40, 2);
        let prob = SubProblem { x: &x, y: &y };
        let p = params(0.3, 0.3);
        for loss in [Loss::L1, Loss::L2] {
            let mut w = vec![0.0; 40];
            let (_, beta) = svr_dual(&prob, &p, &mut w, loss);
            let bound = if loss == Loss::L1 {
                p.c_pos
            } else {
                f64::INFINITY
            };
            assert!(beta.iter().all(|b| b.abs() <= bound), "{loss:?}");
            assert!(beta.contains(&0.0), "{loss:?}: the tube holds some points");
            assert_w_matches(&x, &beta, &w);
        }
    }
}
