//! Helpers of the tests against the real LIBLINEAR: data sets in libsvm form, the
//! reference programs (Debian's liblinear-tools 2.3.0 and PyPI's liblinear-official
//! 2.50, installed by scripts/install-test-refs.sh), and primal objectives computed
//! independently of the solvers.
#![allow(dead_code)]

use linear::sparse::Csr;
use linear::{Model, Problem, SolverType};
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn require_refs() {
    let ok = Command::new("liblinear-train").output().is_ok()
        && Command::new("python3")
            .args(["-c", "import liblinear.liblinearutil"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    assert!(
        ok,
        "LIBLINEAR references missing: run scripts/install-test-refs.sh (scripts/test.sh does)"
    );
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn gunzip(path: &Path) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// The first `n` embedded digits of `split` ("train" or "test"): pixels scaled to
/// [0, 1] as 784 sparse features, labels 0-9.
pub fn digits(split: &str, n: usize) -> (Csr, Vec<f64>) {
    let dir = repo_root().join("data");
    let img = gunzip(&dir.join(format!("{split}-images-idx3-ubyte.gz")));
    let lab = gunzip(&dir.join(format!("{split}-labels-idx1-ubyte.gz")));
    let (count, d) = (be32(&img, 4), be32(&img, 8) * be32(&img, 12));
    let n = n.min(count);
    let mut x = Csr {
        indptr: vec![0],
        n_cols: d,
        ..Csr::default()
    };
    for i in 0..n {
        for (j, &p) in img[16 + i * d..16 + (i + 1) * d].iter().enumerate() {
            if p != 0 {
                x.indices.push(j as u32);
                x.values.push(f64::from(p) / 255.0);
            }
        }
        x.indptr.push(x.indices.len());
    }
    let y = lab[8..8 + n].iter().map(|&l| f64::from(l)).collect();
    (x, y)
}

/// A sparse set from a random linear model: `n` rows of `d` features with density
/// `density`; labels are the argmax of `classes.len()` random scores (noisy), mapped to
/// `classes`, or for an empty `classes` a real target.
pub fn generated(seed: u64, n: usize, d: usize, density: f64, classes: &[f64]) -> (Csr, Vec<f64>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut unif = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let k = classes.len().max(1);
    let model: Vec<f64> = (0..d * k).map(|_| 2.0 * unif() - 1.0).collect();
    let mut x = Csr {
        indptr: vec![0],
        n_cols: d,
        ..Csr::default()
    };
    let mut y = Vec::new();
    for _ in 0..n {
        let mut scores = vec![0.0; k];
        for j in 0..d {
            if unif() < density {
                let v = (4.0 * unif() - 2.0 * unif()).round() / 2.0 + 0.25;
                x.indices.push(j as u32);
                x.values.push(v);
                for (m, s) in scores.iter_mut().enumerate() {
                    *s += v * model[j * k + m];
                }
            }
        }
        x.indptr.push(x.indices.len());
        for s in scores.iter_mut() {
            *s += 0.5 * (unif() - 0.5);
        }
        if classes.is_empty() {
            y.push(scores[0] * 3.0 + 1.0);
        } else {
            let best = (0..k)
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
                .unwrap_or(0);
            y.push(classes[best]);
        }
    }
    (x, y)
}

pub fn write_set(dir: &Path, name: &str, set: &(Csr, Vec<f64>)) -> PathBuf {
    let p = dir.join(name);
    linear::libsvm::write(&p, &set.0, &set.1).unwrap();
    p
}

/// What LIBLINEAR 2.50 reported for one run.
pub struct RefRun {
    pub accuracy: f64,
    pub mse: f64,
    /// Per sub-problem: the printed "Objective value", and whether it then switched to
    /// the primal solver.
    pub objectives: Vec<(f64, bool)>,
}

/// Runs LIBLINEAR 2.50 (Python) once per `(tag, options)` on `train`, saves
/// `dir/<tag>.model`, and returns its test accuracy, MSE and printed objectives.
pub fn liblinear_250(train: &Path, test: &Path, dir: &Path, runs: &[(&str, &str)]) -> Vec<RefRun> {
    const SCRIPT: &str = r#"
import sys
from liblinear.liblinearutil import train, predict, svm_read_problem, save_model
tr, te, out = sys.argv[1:4]
y, x = svm_read_problem(tr)
yt, xt = svm_read_problem(te)
for line in sys.stdin:
    tag, opts = line.rstrip("\n").split("|")
    print("@@begin", tag, flush=True)
    m = train(y, x, opts)
    save_model(out + "/" + tag + ".model", m)
    _, acc, _ = predict(yt, xt, m, "-q")
    print("@@", tag, repr(acc[0]), repr(acc[1]), flush=True)
"#;
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(train)
        .arg(test)
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    {
        let mut stdin = child.stdin.take().unwrap();
        for (tag, opts) in runs {
            writeln!(stdin, "{tag}|{opts}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "LIBLINEAR 2.50 failed");
    let text = String::from_utf8_lossy(&out.stdout);
    runs.iter()
        .map(|(tag, _)| {
            let mut lines = text
                .lines()
                .skip_while(|l| *l != format!("@@begin {tag}"))
                .skip(1);
            let mut objectives: Vec<(f64, bool)> = Vec::new();
            for l in lines.by_ref() {
                if let Some(v) = l.strip_prefix("Objective value = ") {
                    objectives.push((v.trim().parse().unwrap(), false));
                } else if l.starts_with("Switching to use") {
                    if let Some(last) = objectives.last_mut() {
                        last.1 = true;
                    }
                } else if let Some(rest) = l.strip_prefix(&format!("@@ {tag} ")) {
                    let f: Vec<f64> = rest
                        .split_whitespace()
                        .map(|v| v.parse().unwrap())
                        .collect();
                    return RefRun {
                        accuracy: f[0],
                        mse: f[1],
                        objectives,
                    };
                }
            }
            panic!("no result for {tag}:\n{text}")
        })
        .collect()
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn read_numbers(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// Test accuracy in percent (classification) or mean squared error (regression).
pub fn score(model: &Model, test: &(Csr, Vec<f64>)) -> f64 {
    let x = linear::problem::with_bias(test.0.clone(), model.bias, model.nr_feature);
    let pred: Vec<f64> = (0..test.1.len()).map(|i| model.predict(&x, i)).collect();
    if model.solver.is_regression() {
        linear::train::regression_stats(&pred, &test.1).0
    } else {
        100.0 * linear::train::accuracy(&pred, &test.1)
    }
}

fn sq(v: f64) -> f64 {
    v * v
}

/// Primal objective of each binary (or the one multi-class, regression, one-class)
/// problem of `model` on `prob`, written from the formulations in LIBLINEAR's docs.
pub fn primal_objectives(
    model: &Model,
    prob: &Problem,
    c: f64,
    p: f64,
    nu: f64,
    regularize_bias: bool,
) -> Vec<f64> {
    let nr_w = model.nr_w();
    let n = model.w_size();
    let col = |k: usize| -> Vec<f64> { (0..n).map(|j| model.w[j * nr_w + k]).collect() };
    let skip = usize::from(!regularize_bias && model.bias >= 0.0);
    let reg_bias = |w: &[f64], l1: bool| -> f64 {
        w[..w.len() - skip]
            .iter()
            .map(|v| if l1 { v.abs() } else { 0.5 * v * v })
            .sum::<f64>()
    };
    let s = model.solver;
    let dots = |w: &[f64]| -> Vec<f64> { (0..prob.n_rows()).map(|i| prob.x.dot(i, w)).collect() };
    if s == SolverType::McsvmCs {
        let ws: Vec<Vec<f64>> = (0..nr_w).map(col).collect();
        let mut obj: f64 = ws.iter().map(|w| reg_bias(w, false)).sum();
        for i in 0..prob.n_rows() {
            let yi = model
                .labels
                .iter()
                .position(|&l| f64::from(l) == prob.y[i])
                .unwrap();
            let f: Vec<f64> = ws.iter().map(|w| prob.x.dot(i, w)).collect();
            let worst = (0..nr_w)
                .map(|m| f64::from(u8::from(m != yi)) + f[m] - f[yi])
                .fold(f64::NEG_INFINITY, f64::max);
            obj += c * worst;
        }
        return vec![obj];
    }
    if s.is_oneclass() {
        let w = col(0);
        let rho = model.rho;
        let l = prob.n_rows() as f64;
        let slack: f64 = dots(&w).iter().map(|d| (rho - d).max(0.0)).sum();
        return vec![reg_bias(&w, false) + slack - nu * l * rho];
    }
    let ks: Vec<usize> = (0..nr_w).collect();
    ks.iter()
        .map(|&k| {
            let w = col(k);
            let d = dots(&w);
            let y: Vec<f64> = if s.is_regression() {
                prob.y.clone()
            } else {
                let pos = f64::from(model.labels[k]);
                prob.y
                    .iter()
                    .map(|&v| if v == pos { 1.0 } else { -1.0 })
                    .collect()
            };
            let loss: f64 = d
                .iter()
                .zip(&y)
                .map(|(&d, &y)| match s {
                    SolverType::L2rLr | SolverType::L2rLrDual | SolverType::L1rLr => {
                        (-y * d).exp().ln_1p()
                    }
                    SolverType::L2rL2lossSvc
                    | SolverType::L2rL2lossSvcDual
                    | SolverType::L1rL2lossSvc => sq((1.0 - y * d).max(0.0)),
                    SolverType::L2rL1lossSvcDual => (1.0 - y * d).max(0.0),
                    SolverType::L2rL2lossSvr | SolverType::L2rL2lossSvrDual => {
                        sq(((d - y).abs() - p).max(0.0))
                    }
                    _ => ((d - y).abs() - p).max(0.0),
                })
                .sum();
            let l1 = matches!(s, SolverType::L1rLr | SolverType::L1rL2lossSvc);
            reg_bias(&w, l1) + c * loss
        })
        .collect()
}

/// The optimum of sub-problem `k` of an L2-regularised squared-loss or logistic model
/// (the formulations the primal Newton solver handles), by that solver at a tight
/// tolerance, and the norm of the objective's gradient at zero.
pub fn primal_optimum(model: &Model, prob: &Problem, k: usize, c: f64, p: f64) -> (f64, f64) {
    use linear::solver::newton::{gradient_norm, solve, Loss};
    use linear::solver::{SolverParams, SubProblem};
    let s = model.solver;
    let (loss, y): (Loss, Vec<f64>) = if s.is_regression() {
        (Loss::SquaredEpsInsensitive(p), prob.y.clone())
    } else {
        let pos = f64::from(model.labels[k]);
        let y = prob
            .y
            .iter()
            .map(|&v| if v == pos { 1.0 } else { -1.0 })
            .collect();
        let loss = if s.is_probability() {
            Loss::Logistic
        } else {
            Loss::SquaredHinge
        };
        (loss, y)
    };
    let params = SolverParams {
        eps: 1e-9,
        c_pos: c,
        c_neg: c,
        p,
        nu: 0.5,
        unregularized_bias: None,
        seed: 1,
    };
    let sub = SubProblem { x: &prob.x, y: &y };
    let mut w = vec![0.0; prob.x.n_cols];
    let g0 = gradient_norm(&sub, &params, loss, &w);
    (solve(&sub, &params, loss, &mut w).objective, g0)
}
