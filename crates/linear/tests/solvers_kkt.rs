//! Optimality of the dual-CD, L1, Crammer-Singer and one-class solvers on seeded
//! sparse problems: primal gradients vanish (or the L1 subgradient conditions hold),
//! primal and dual objectives meet, and a seed fixes the result bit for bit.

mod solvers_support;

use linear::solver::{dual_cd, l1, mcsvm, oneclass, SolveInfo, SolverParams, SubProblem};
use linear::sparse::Csr;
use solvers_support::*;

type Binary = fn(&SubProblem, &SolverParams, &mut [f64]) -> SolveInfo;

fn solve(f: Binary, x: &Csr, y: &[f64], p: &SolverParams) -> (Vec<f64>, SolveInfo) {
    let mut w = vec![f64::NAN; x.n_cols];
    let info = f(&SubProblem { x, y }, p, &mut w);
    (w, info)
}

fn classification(seed: u64) -> (Csr, Vec<f64>) {
    let x = with_bias(&random_csr(80, 20, 0.3, seed));
    let y = labels(&x, seed);
    (x, y)
}

fn margins(x: &Csr, y: &[f64], w: &[f64]) -> Vec<f64> {
    (0..y.len()).map(|i| y[i] * x.dot(i, w)).collect()
}

fn l2svc_primal(x: &Csr, y: &[f64], p: &SolverParams, w: &[f64]) -> (f64, Vec<f64>) {
    let c = cost(y, p);
    let m = margins(x, y, w);
    let xi: Vec<f64> = m.iter().map(|mi| (1.0 - mi).max(0.0)).collect();
    let f = 0.5 * sq(w) + (0..y.len()).map(|i| c[i] * xi[i] * xi[i]).sum::<f64>();
    let d: Vec<f64> = (0..y.len()).map(|i| -2.0 * c[i] * xi[i] * y[i]).collect();
    let g: Vec<f64> = xt(x, &d).iter().zip(w).map(|(a, b)| a + b).collect();
    (f, g)
}

fn lr_primal(x: &Csr, y: &[f64], p: &SolverParams, w: &[f64]) -> (f64, Vec<f64>) {
    let c = cost(y, p);
    let m = margins(x, y, w);
    let f = 0.5 * sq(w)
        + (0..y.len())
            .map(|i| c[i] * (-m[i]).exp().ln_1p())
            .sum::<f64>();
    let d: Vec<f64> = (0..y.len())
        .map(|i| -c[i] * y[i] / (1.0 + m[i].exp()))
        .collect();
    let g: Vec<f64> = xt(x, &d).iter().zip(w).map(|(a, b)| a + b).collect();
    (f, g)
}

#[test]
fn l2_svc_dual_reaches_primal_optimum() {
    let (x, y) = classification(3);
    let mut p = params(1e-10, 0.7);
    p.c_neg = 1.3;
    let (w, info) = solve(dual_cd::l2r_l2_svc_dual, &x, &y, &p);
    let (f, g) = l2svc_primal(&x, &y, &p, &w);
    assert!(!info.hit_max_iter, "{info:?}");
    assert!(norm_inf(&g) < 1e-6, "primal gradient {}", norm_inf(&g));
    assert!(
        rel(f, -info.objective) < 1e-8,
        "primal {f} dual {}",
        info.objective
    );
}

#[test]
fn l1_svc_dual_closes_the_duality_gap() {
    let (x, y) = classification(4);
    let p = params(1e-9, 0.5);
    let (w, info) = solve(dual_cd::l2r_l1_svc_dual, &x, &y, &p);
    let c = cost(&y, &p);
    let m = margins(&x, &y, &w);
    let f = 0.5 * sq(&w)
        + (0..y.len())
            .map(|i| c[i] * (1.0 - m[i]).max(0.0))
            .sum::<f64>();
    assert!(!info.hit_max_iter, "{info:?}");
    assert!(
        rel(f, -info.objective) < 1e-6,
        "primal {f} dual {}",
        info.objective
    );
}

#[test]
fn lr_dual_reaches_primal_optimum() {
    let (x, y) = classification(5);
    let mut p = params(1e-10, 2.0);
    p.c_neg = 0.5;
    let (w, info) = solve(dual_cd::l2r_lr_dual, &x, &y, &p);
    let (f, g) = lr_primal(&x, &y, &p, &w);
    assert!(!info.hit_max_iter, "{info:?}");
    assert!(norm_inf(&g) < 1e-6, "primal gradient {}", norm_inf(&g));
    assert!(
        rel(f, -info.objective) < 1e-7,
        "primal {f} dual {}",
        info.objective
    );
}

fn svr_residuals(x: &Csr, y: &[f64], w: &[f64], p: f64) -> Vec<f64> {
    (0..y.len())
        .map(|i| {
            let r = x.dot(i, w) - y[i];
            r.signum() * (r.abs() - p).max(0.0)
        })
        .collect()
}

#[test]
fn l2_svr_dual_reaches_primal_optimum() {
    let x = with_bias(&random_csr(70, 15, 0.3, 6));
    let y = targets(&x, 6);
    let p = params(1e-10, 1.5);
    let (w, info) = solve(dual_cd::l2r_l2_svr_dual, &x, &y, &p);
    let r = svr_residuals(&x, &y, &w, p.p);
    let f = 0.5 * sq(&w) + p.c_pos * sq(&r);
    let d: Vec<f64> = r.iter().map(|ri| 2.0 * p.c_pos * ri).collect();
    let g: Vec<f64> = xt(&x, &d).iter().zip(&w).map(|(a, b)| a + b).collect();
    assert!(!info.hit_max_iter, "{info:?}");
    assert!(norm_inf(&g) < 1e-6, "primal gradient {}", norm_inf(&g));
    assert!(
        rel(f, -info.objective) < 1e-8,
        "primal {f} dual {}",
        info.objective
    );
}

#[test]
fn l1_svr_dual_closes_the_duality_gap() {
    // More columns than rows: a full-rank Q, on which the L1-loss dual converges
    // within LIBLINEAR's 300 passes (with l >> n it crawls, in LIBLINEAR too).
    let x = with_bias(&random_csr(40, 60, 0.2, 7));
    let y = targets(&x, 7);
    let p = params(1e-6, 0.8);
    let (w, info) = solve(dual_cd::l2r_l1_svr_dual, &x, &y, &p);
    let r = svr_residuals(&x, &y, &w, p.p);
    let f = 0.5 * sq(&w) + p.c_pos * r.iter().map(|v| v.abs()).sum::<f64>();
    assert!(!info.hit_max_iter, "{info:?}");
    assert!(
        rel(f, -info.objective) < 1e-5,
        "primal {f} dual {}",
        info.objective
    );
}

/// The L1 problem's optimality: `|g_j| <= 1` where `w_j = 0`, `g_j = -sign(w_j)`
/// elsewhere, and `g_j = 0` on an unregularised column.
fn assert_l1_optimal(w: &[f64], g: &[f64], free: Option<usize>, tol: f64) {
    for (j, (&wj, &gj)) in w.iter().zip(g).enumerate() {
        let violation = if free == Some(j) {
            gj.abs()
        } else if wj == 0.0 {
            (gj.abs() - 1.0).max(0.0)
        } else {
            (gj + wj.signum()).abs()
        };
        assert!(violation < tol, "column {j}: w {wj} loss gradient {gj}");
    }
}

/// Loss value and gradient at `w`.
type LossFn = fn(&Csr, &[f64], &SolverParams, &[f64]) -> (f64, Vec<f64>);

fn l1_checks(f: Binary, loss: LossFn) {
    for (seed, free) in [(8, false), (9, true)] {
        let (x, y) = classification(seed);
        let mut p = params(1e-9, 1.0);
        p.c_pos = 2.0;
        p.unregularized_bias = free.then_some(x.n_cols - 1);
        let (w, info) = solve(f, &x, &y, &p);
        assert!(!info.hit_max_iter, "{info:?}");
        let zero: Vec<f64> = vec![0.0; w.len()];
        let (primal_loss, g) = loss(&x, &y, &p, &w);
        let reg = w.iter().map(|v| v.abs()).sum::<f64>()
            - p.unregularized_bias.map_or(0.0, |b| w[b].abs());
        assert!(rel(info.objective, primal_loss + reg) < 1e-10, "{info:?}");
        assert!(
            info.objective < loss(&x, &y, &p, &zero).0,
            "better than w = 0"
        );
        assert!(
            w.iter().filter(|v| **v == 0.0).count() > 0,
            "some weights are exactly 0"
        );
        assert_l1_optimal(&w, &g, p.unregularized_bias, 1e-5);
    }
}

/// Loss parts (without the L2 term) of the L2-loss SVC and of logistic regression.
fn l2svc_loss(x: &Csr, y: &[f64], p: &SolverParams, w: &[f64]) -> (f64, Vec<f64>) {
    let (f, g) = l2svc_primal(x, y, p, w);
    (
        f - 0.5 * sq(w),
        g.iter().zip(w).map(|(a, b)| a - b).collect(),
    )
}

fn lr_loss(x: &Csr, y: &[f64], p: &SolverParams, w: &[f64]) -> (f64, Vec<f64>) {
    let (f, g) = lr_primal(x, y, p, w);
    (
        f - 0.5 * sq(w),
        g.iter().zip(w).map(|(a, b)| a - b).collect(),
    )
}

#[test]
fn l1r_l2_svc_satisfies_subgradient_conditions() {
    l1_checks(l1::l1r_l2_svc, l2svc_loss);
}

#[test]
fn l1r_lr_satisfies_subgradient_conditions() {
    l1_checks(l1::l1r_lr, lr_loss);
}

#[test]
fn unregularized_bias_changes_the_l1_solution() {
    let (x, y) = classification(10);
    let mut p = params(1e-6, 0.05);
    let (w_reg, _) = solve(l1::l1r_lr, &x, &y, &p);
    p.unregularized_bias = Some(x.n_cols - 1);
    let (w_free, _) = solve(l1::l1r_lr, &x, &y, &p);
    let b = x.n_cols - 1;
    assert!(
        w_free[b].abs() > w_reg[b].abs() + 1e-3,
        "{} vs {}",
        w_free[b],
        w_reg[b]
    );
}

#[test]
fn crammer_singer_closes_the_duality_gap() {
    let x = with_bias(&random_csr(90, 12, 0.4, 11));
    let k = 4;
    let labels = classes(&x, k, 11);
    let p = params(1e-8, 0.6);
    let class_c = [0.6, 1.0, 0.3, 2.0];
    let mut w = vec![f64::NAN; x.n_cols * k];
    let info = mcsvm::crammer_singer_weighted(&x, &labels, &class_c, &p, &mut w);
    assert!(!info.hit_max_iter, "{info:?}");
    let mut f = 0.5 * sq(&w);
    for (i, &yi) in labels.iter().enumerate() {
        let (idx, val) = x.row(i);
        let score = |m: usize| {
            idx.iter()
                .zip(val)
                .map(|(&j, &v)| v * w[j as usize * k + m])
                .sum::<f64>()
        };
        let worst = (0..k)
            .map(|m| {
                if m == yi {
                    0.0
                } else {
                    1.0 + score(m) - score(yi)
                }
            })
            .fold(0.0, f64::max);
        f += class_c[yi] * worst;
    }
    assert!(
        rel(f, -info.objective) < 1e-6,
        "primal {f} dual {}",
        info.objective
    );

    // The unweighted entry point is the weighted one with C everywhere.
    let mut w1 = vec![0.0; w.len()];
    let mut w2 = vec![0.0; w.len()];
    let a = mcsvm::crammer_singer(&x, &labels, k, &p, &mut w1);
    let b = mcsvm::crammer_singer_weighted(&x, &labels, &[p.c_pos; 4], &p, &mut w2);
    assert_eq!((a, w1), (b, w2));
}

#[test]
fn one_class_closes_the_duality_gap() {
    for nu in [0.1, 0.37, 0.8] {
        // The constant column keeps the origin out of the data's hull, so w != 0.
        let x = with_bias(&random_csr(60, 10, 0.5, 12));
        let mut p = params(1e-9, 1.0);
        p.nu = nu;
        let mut w = vec![f64::NAN; x.n_cols];
        let (info, rho) = oneclass::one_class(&x, &p, &mut w);
        assert!(!info.hit_max_iter, "{info:?}");
        let l = x.n_rows() as f64;
        let slack: f64 = (0..x.n_rows()).map(|i| (rho - x.dot(i, &w)).max(0.0)).sum();
        let f = 0.5 * sq(&w) - nu * l * rho + slack;
        assert!(
            rel(f, -info.objective) < 1e-6,
            "nu {nu}: primal {f} dual {}",
            info.objective
        );
        // At most a fraction nu of the points are strictly inside the margin.
        let outliers = (0..x.n_rows())
            .filter(|&i| x.dot(i, &w) < rho - 1e-9)
            .count();
        assert!(
            outliers as f64 <= nu * l + 1e-9,
            "nu {nu}: {outliers} outliers"
        );
    }
}

#[test]
fn a_seed_fixes_every_solver_bit_for_bit() {
    let (x, y) = classification(13);
    let solvers: [(&str, Binary); 7] = [
        ("-s 1", dual_cd::l2r_l2_svc_dual),
        ("-s 3", dual_cd::l2r_l1_svc_dual),
        ("-s 7", dual_cd::l2r_lr_dual),
        ("-s 12", dual_cd::l2r_l2_svr_dual),
        ("-s 13", dual_cd::l2r_l1_svr_dual),
        ("-s 5", l1::l1r_l2_svc),
        ("-s 6", l1::l1r_lr),
    ];
    for (name, f) in solvers {
        let mut p = params(0.1, 1.0);
        let (w1, i1) = solve(f, &x, &y, &p);
        let (w2, i2) = solve(f, &x, &y, &p);
        let bits = |w: &[f64]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&w1), bits(&w2), "{name}");
        assert_eq!(i1, i2, "{name}");
        p.seed = 2;
        let (w3, _) = solve(f, &x, &y, &p);
        assert_ne!(
            bits(&w1),
            bits(&w3),
            "{name}: another seed, another coordinate order"
        );
    }
    let labels = classes(&x, 3, 13);
    let p = params(0.1, 1.0);
    let run = || {
        let mut w = vec![0.0; x.n_cols * 3];
        let info = mcsvm::crammer_singer(&x, &labels, 3, &p, &mut w);
        (w, info)
    };
    assert_eq!(run(), run(), "-s 4");
}

#[test]
fn l2_svc_dual_and_l1_svc_dual_respect_their_costs() {
    // With C -> 0 the dual is pinned at alpha = 0 and w vanishes; a larger C fits the
    // training set better.
    let (x, y) = classification(14);
    let err = |w: &[f64]| margins(&x, &y, w).iter().filter(|m| **m <= 0.0).count();
    for f in [dual_cd::l2r_l2_svc_dual as Binary, dual_cd::l2r_l1_svc_dual] {
        let (w_small, _) = solve(f, &x, &y, &params(1e-6, 1e-6));
        assert!(norm_inf(&w_small) < 1e-3, "{}", norm_inf(&w_small));
        let (w_big, _) = solve(f, &x, &y, &params(1e-6, 10.0));
        let (w_mid, _) = solve(f, &x, &y, &params(1e-6, 0.01));
        assert!(
            err(&w_big) <= err(&w_mid),
            "{} > {}",
            err(&w_big),
            err(&w_mid)
        );
    }
}
