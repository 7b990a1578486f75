//! Each solver of this crate's `solver` module against LIBLINEAR 2.50 (PyPI's
//! liblinear-official, installed by `scripts/install-test-refs.sh`) on small seeded
//! sparse sets: weights and the printed "Objective value" at a tight tolerance, and the
//! objective at LIBLINEAR's default tolerance. Skipped, with a note on stderr, where
//! `python3 -c 'import liblinear.liblinearutil'` fails.

mod solvers_support;

use linear::solver::{dual_cd, l1, mcsvm, oneclass, SolveInfo, SolverParams, SubProblem};
use linear::sparse::Csr;
use solvers_support::*;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Trains on each (data, options, model path) triple of its arguments in turn.
const TRAIN_250: &str = "
import sys
from liblinear.liblinearutil import svm_read_problem, train, save_model
a = sys.argv[1:]
for data, opts, model in zip(a[0::3], a[1::3], a[2::3]):
    y, x = svm_read_problem(data)
    save_model(model, train(y, x, opts))
";

fn have_liblinear_250() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import liblinear.liblinearutil"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: python3 cannot import liblinear.liblinearutil");
    }
    ok
}

fn write_libsvm(path: &Path, x: &Csr, labels: &[String]) {
    let mut s = String::new();
    for (i, label) in labels.iter().enumerate() {
        s.push_str(label);
        let (idx, val) = x.row(i);
        for (j, v) in idx.iter().zip(val) {
            write!(s, " {}:{:.17e}", j + 1, v).unwrap();
        }
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

/// LIBLINEAR 2.50's model on a data file with some options: its weights (rows of the
/// `w` section, flattened), its rho (one-class) and the objective it printed.
struct Theirs {
    w: Vec<f64>,
    rho: Option<f64>,
    objective: f64,
}

/// Runs all `(data, options)` pairs in one Python process (its start costs most of
/// the time); each run prints one "Objective value", in order.
fn liblinear_250(runs: &[(&Path, &str)]) -> Vec<Theirs> {
    let models: Vec<_> = runs
        .iter()
        .enumerate()
        .map(|(k, (d, _))| d.with_extension(format!("{k}.model")))
        .collect();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", TRAIN_250]);
    for ((data, opts), model) in runs.iter().zip(&models) {
        cmd.arg(data).arg(opts).arg(model);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objectives: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Objective value = "))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(
        objectives.len(),
        runs.len(),
        "one objective per run in {stdout}"
    );
    models
        .iter()
        .zip(objectives)
        .map(|(m, objective)| read_model(m, objective))
        .collect()
}

fn read_model(path: &Path, objective: f64) -> Theirs {
    let text = std::fs::read_to_string(path).unwrap();
    let rho = text
        .lines()
        .find_map(|l| l.strip_prefix("rho "))
        .map(|v| v.trim().parse().unwrap());
    let w = text
        .lines()
        .skip_while(|l| l.trim() != "w")
        .skip(1)
        .flat_map(|l| {
            l.split_whitespace()
                .map(|v| v.parse::<f64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    Theirs { w, rho, objective }
}

fn assert_close_w(tag: &str, ours: &[f64], theirs: &[f64], tol: f64) {
    assert_eq!(ours.len(), theirs.len(), "{tag}: weight count");
    let scale = norm_inf(theirs).max(1e-12);
    let diff = ours
        .iter()
        .zip(theirs)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!(
        "{tag}: max |w - w_250| / max |w_250| = {:.2e}",
        diff / scale
    );
    assert!(
        diff <= tol * scale,
        "{tag}: weights differ by {diff} (scale {scale})"
    );
}

fn assert_close_objective(tag: &str, ours: f64, theirs: f64, tol: f64) {
    eprintln!("{tag}: objective ours {ours:.6} LIBLINEAR 2.50 {theirs:.6}");
    // LIBLINEAR prints six decimals.
    let err = (ours - theirs).abs() - 5e-7;
    assert!(
        err <= tol * theirs.abs(),
        "{tag}: objective {ours} vs {theirs}"
    );
}

type Binary = fn(&SubProblem, &SolverParams, &mut [f64]) -> SolveInfo;

struct Case {
    solver: u32,
    f: Binary,
    regression: bool,
    c: f64,
    extra: &'static str,
}

/// One generated binary or regression set: ours with a bias column, LIBLINEAR's
/// file without it (LIBLINEAR gets `-B 1`).
struct Prepared {
    x: Csr,
    y: Vec<f64>,
    params: SolverParams,
    data: std::path::PathBuf,
    opts: String,
}

fn prepare(dir: &Path, case: &Case, eps: f64, seed: u64) -> Prepared {
    let raw = random_csr(60, 40, 0.25, seed);
    let x = with_bias(&raw);
    let y = if case.regression {
        targets(&x, seed)
    } else {
        labels(&x, seed)
    };
    let text: Vec<String> = y.iter().map(|v| format!("{v:.17e}")).collect();
    let data = dir.join(format!("s{}_{seed}.txt", case.solver));
    write_libsvm(&data, &raw, &text);
    let mut params = params(eps, case.c);
    params.p = 0.1;
    params.unregularized_bias = case.extra.contains("-R").then_some(raw.n_cols);
    let opts = format!(
        "-s {} -c {} -p 0.1 -e {eps} -B 1 {}",
        case.solver, case.c, case.extra
    );
    Prepared {
        x,
        y,
        params,
        data,
        opts,
    }
}

fn ours(case: &Case, p: &Prepared, eps: f64) -> (Vec<f64>, SolveInfo) {
    let mut w = vec![0.0; p.x.n_cols];
    let params = SolverParams { eps, ..p.params };
    let info = (case.f)(&SubProblem { x: &p.x, y: &p.y }, &params, &mut w);
    (w, info)
}

fn theirs_for(prepared: &[Prepared]) -> Vec<Theirs> {
    let runs: Vec<(&Path, &str)> = prepared
        .iter()
        .map(|p| (p.data.as_path(), p.opts.as_str()))
        .collect();
    liblinear_250(&runs)
}

fn cases() -> Vec<Case> {
    let case = |solver, f: Binary, regression, c, extra| Case {
        solver,
        f,
        regression,
        c,
        extra,
    };
    vec![
        case(1, dual_cd::l2r_l2_svc_dual, false, 0.5, ""),
        case(3, dual_cd::l2r_l1_svc_dual, false, 0.5, ""),
        case(7, dual_cd::l2r_lr_dual, false, 2.0, ""),
        case(12, dual_cd::l2r_l2_svr_dual, true, 0.5, ""),
        case(13, dual_cd::l2r_l1_svr_dual, true, 0.5, ""),
        case(5, l1::l1r_l2_svc, false, 1.0, ""),
        case(5, l1::l1r_l2_svc, false, 1.0, "-R"),
        case(6, l1::l1r_lr, false, 4.0, ""),
        case(6, l1::l1r_lr, false, 4.0, "-R"),
    ]
}

#[test]
fn binary_and_regression_solvers_match_liblinear_250_at_tight_tolerance() {
    if !have_liblinear_250() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    let prepared: Vec<Prepared> = cases
        .iter()
        .map(|c| prepare(dir.path(), c, 1e-6, 21))
        .collect();
    for ((case, p), theirs) in cases.iter().zip(&prepared).zip(theirs_for(&prepared)) {
        let tag = format!("-s {} {}", case.solver, case.extra);
        let (w, info) = ours(case, p, p.params.eps);
        assert!(!info.hit_max_iter, "{tag}: {info:?}");
        assert_close_w(&tag, &w, &theirs.w, 1e-3);
        assert_close_objective(&tag, info.objective, theirs.objective, 1e-5);
    }
}

/// At LIBLINEAR's default `-e` the point where a coordinate-descent solver stops depends
/// on its coordinate order, which we cannot reproduce (`rand()` against xoshiro): on
/// these small sets the spread over seeds can exceed 1e-3: for `-s 12` on seed 22 our
/// objective over seeds 1..=11 lies 4e-3 to 9e-3 above the optimum, LIBLINEAR's
/// 3.3e-3 (6 passes against our 4 to 6). So: within 1e-3 of LIBLINEAR's objective, or
/// no further from the optimum than three times LIBLINEAR's own distance to it.
fn assert_as_good_as_250(tag: &str, ours: f64, theirs: f64, optimum: f64) {
    eprintln!("{tag}: objective ours {ours:.6} LIBLINEAR 2.50 {theirs:.6} optimum {optimum:.6}");
    let slack = 1e-6 * optimum.abs() + 5e-7;
    assert!(ours >= optimum - slack, "{tag}: below the optimum");
    let close = (ours - theirs).abs() <= 1e-3 * theirs.abs() + 5e-7;
    let as_good = ours - optimum <= 3.0 * (theirs - optimum).max(0.0) + slack;
    assert!(
        close || as_good,
        "{tag}: objective {ours} vs {theirs} (optimum {optimum})"
    );
}

#[test]
fn binary_and_regression_objectives_match_liblinear_250_at_default_tolerance() {
    if !have_liblinear_250() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // LIBLINEAR 2.50's default -e of each of these solvers.
    let default_eps = |s: u32| if s == 5 || s == 6 { 0.01 } else { 0.1 };
    let cases = cases();
    let prepared: Vec<Prepared> = cases
        .iter()
        .map(|c| prepare(dir.path(), c, default_eps(c.solver), 22))
        .collect();
    for ((case, p), theirs) in cases.iter().zip(&prepared).zip(theirs_for(&prepared)) {
        let tag = format!("-s {} {} (default -e)", case.solver, case.extra);
        let (_, info) = ours(case, p, p.params.eps);
        let (_, best) = ours(case, p, 1e-9);
        assert_as_good_as_250(&tag, info.objective, theirs.objective, best.objective);
    }
}

#[test]
fn crammer_singer_matches_liblinear_250() {
    if !have_liblinear_250() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = random_csr(90, 30, 0.3, 23);
    let x = with_bias(&raw);
    let k = 3;
    let labels = classes(&x, k, 23);
    let text: Vec<String> = labels.iter().map(|c| c.to_string()).collect();
    let data = dir.path().join("s4.txt");
    write_libsvm(&data, &raw, &text);
    let ours = |eps: f64| {
        let mut w = vec![0.0; x.n_cols * k];
        let info = mcsvm::crammer_singer(&x, &labels, k, &params(eps, 0.8), &mut w);
        (w, info)
    };
    let theirs = liblinear_250(&[
        (&data, "-s 4 -c 0.8 -e 1e-5 -B 1"),
        (&data, "-s 4 -c 0.8 -B 1"),
    ]);
    let (w, tight) = ours(1e-5);
    assert_close_w("-s 4 -e 1e-5", &w, &theirs[0].w, 1e-3);
    assert_close_objective("-s 4 -e 1e-5", tight.objective, theirs[0].objective, 1e-5);
    let (_, loose) = ours(0.1);
    let tag = "-s 4 (default -e)";
    assert_as_good_as_250(tag, loose.objective, theirs[1].objective, tight.objective);
}

#[test]
fn one_class_matches_liblinear_250() {
    if !have_liblinear_250() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Non-negative features keep the origin away from the data, so w != 0.
    let mut x = random_csr(80, 20, 0.4, 24);
    x.values.iter_mut().for_each(|v| *v = v.abs());
    let text = vec!["1".to_string(); x.n_rows()];
    let data = dir.path().join("s21.txt");
    write_libsvm(&data, &x, &text);
    let settings = [(1e-6, 1e-4), (0.01, 1e-3)];
    let opts: Vec<String> = settings
        .iter()
        .map(|(e, _)| format!("-s 21 -n 0.3 -e {e}"))
        .collect();
    let runs: Vec<(&Path, &str)> = opts.iter().map(|o| (data.as_path(), o.as_str())).collect();
    for ((eps, tol), theirs) in settings.into_iter().zip(liblinear_250(&runs)) {
        let mut p = params(eps, 1.0);
        p.nu = 0.3;
        let mut w = vec![0.0; x.n_cols];
        let (info, rho) = oneclass::one_class(&x, &p, &mut w);
        let tag = format!("-s 21 -e {eps}");
        assert_close_objective(&tag, info.objective, theirs.objective, tol);
        assert_close_w(&tag, &w, &theirs.w, 10.0 * tol);
        let their_rho = theirs.rho.expect("one-class model has rho");
        eprintln!("{tag}: rho ours {rho} LIBLINEAR 2.50 {their_rho}");
        assert!((rho - their_rho).abs() <= 10.0 * tol * their_rho.abs().max(1e-3));
    }
}
