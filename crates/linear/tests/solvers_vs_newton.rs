//! The dual coordinate-descent solvers and the primal Newton solvers minimise the same
//! problems: at tight tolerances they reach the same w (-s 1 vs -s 2, -s 7 vs -s 0,
//! -s 12 vs -s 11).

mod solvers_support;

use linear::solver::{dual_cd, newton, SolveInfo, SolverParams, SubProblem};
use solvers_support::*;

type Binary = fn(&SubProblem, &SolverParams, &mut [f64]) -> SolveInfo;

#[test]
fn dual_and_primal_solvers_reach_the_same_w() {
    let x = with_bias(&random_csr(120, 30, 0.3, 31));
    let y_class = labels(&x, 31);
    let y_reg = targets(&x, 31);
    let pairs: [(&str, Binary, Binary, &[f64]); 3] = [
        (
            "-s 1 / -s 2",
            dual_cd::l2r_l2_svc_dual,
            newton::l2r_l2_svc,
            &y_class,
        ),
        (
            "-s 7 / -s 0",
            dual_cd::l2r_lr_dual,
            newton::l2r_lr,
            &y_class,
        ),
        (
            "-s 12 / -s 11",
            dual_cd::l2r_l2_svr_dual,
            newton::l2r_l2_svr,
            &y_reg,
        ),
    ];
    for (tag, dual, primal, y) in pairs {
        let mut p = params(1e-10, 0.8);
        p.c_neg = 1.4;
        if tag.starts_with("-s 12") {
            p.c_neg = p.c_pos;
        }
        let prob = SubProblem { x: &x, y };
        let mut w_dual = vec![0.0; x.n_cols];
        let mut w_primal = vec![0.0; x.n_cols];
        let d = dual(&prob, &p, &mut w_dual);
        let _ = primal(&prob, &p, &mut w_primal);
        assert!(!d.hit_max_iter, "{tag}: {d:?}");
        let scale = norm_inf(&w_primal);
        let diff = w_dual
            .iter()
            .zip(&w_primal)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.1, "{tag}: a non-trivial w");
        assert!(
            diff <= 1e-6 * scale,
            "{tag}: w differ by {diff} (scale {scale})"
        );
    }
}
