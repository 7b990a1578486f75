//! Our solvers, model files and reader against the real LIBLINEAR: 2.50 (PyPI's
//! liblinear-official) for accuracy and objective values, 2.3.0 (Debian's
//! liblinear-tools) for model files both ways and for the rejection of malformed files.

mod common;

use common::*;
use linear::train::train_from;
use linear::{libsvm, Model, Parameter, Problem, SolverType};
use std::path::Path;
use std::process::Command;

/// Our model and LIBLINEAR 2.50's on the same data and flags: test accuracy (or MSE)
/// within 0.5 points and the primal objective of every sub-problem within 1e-3
/// relative.
fn compare_with_250(
    dir: &Path,
    train: &(linear::sparse::Csr, Vec<f64>),
    test: &(linear::sparse::Csr, Vec<f64>),
    runs: &[(&str, &str)],
) {
    compare_with_250_within(dir, train, test, runs, &|_| 1e-3);
}

/// As [`compare_with_250`], with the relative objective tolerance of each run's tag.
fn compare_with_250_within(
    dir: &Path,
    train: &(linear::sparse::Csr, Vec<f64>),
    test: &(linear::sparse::Csr, Vec<f64>),
    runs: &[(&str, &str)],
    rel_tol: &dyn Fn(&str) -> f64,
) {
    let train_path = write_set(dir, "train.txt", train);
    let test_path = write_set(dir, "test.txt", test);
    let theirs = liblinear_250(&train_path, &test_path, dir, runs);
    let mut failures = Vec::new();
    for ((tag, opts), reference) in runs.iter().zip(theirs) {
        let args: Vec<String> = format!("{opts} x")
            .split_whitespace()
            .map(String::from)
            .collect();
        let param: Parameter = linear::TrainOptions::parse(&args).unwrap().param;
        let data = libsvm::read(&train_path).unwrap();
        let prob = Problem::new(data, param.bias).unwrap();
        let trained = train_from(&prob, &param, None).unwrap();
        let ours = &trained.model;
        let their_model = Model::load(dir.join(format!("{tag}.model"))).unwrap();
        assert_eq!(ours.labels, their_model.labels, "{tag}: label order");
        let (our_score, their_score) = if param.solver.is_regression() {
            (score(ours, test), reference.mse)
        } else {
            (score(ours, test), reference.accuracy)
        };
        // Accuracy within 0.5 points; mean squared error within 1% of LIBLINEAR's for
        // -s 11, 5% for the dual solvers, whose default tolerance (0.1 on the dual
        // gradient) leaves the solution loose.
        let tol = match param.solver {
            SolverType::L2rL2lossSvr => 0.01 * their_score,
            s if s.is_regression() => 0.05 * their_score,
            _ => 0.5,
        };
        eprintln!("{tag}: ours {our_score:.4} LIBLINEAR 2.50 {their_score:.4}");
        if (our_score - their_score).abs() > tol {
            failures.push(format!(
                "{tag} ({opts}): test score ours {our_score} vs LIBLINEAR 2.50 {their_score}"
            ));
        }
        let ob = |m: &Model| {
            primal_objectives(m, &prob, param.c, param.p, param.nu, param.regularize_bias)
        };
        // The primal Newton solvers round as LIBLINEAR does: same weights.
        if matches!(
            param.solver,
            SolverType::L2rLr | SolverType::L2rL2lossSvc | SolverType::L2rL2lossSvr
        ) {
            let scale = their_model.w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let diff = ours
                .w
                .iter()
                .zip(&their_model.w)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            eprintln!("{tag}: max weight difference {diff:e} (largest weight {scale:e})");
            if diff > 1e-9 * scale {
                failures.push(format!("{tag} ({opts}): weights differ by {diff:e}"));
            }
        }
        let primal: Vec<(f64, f64)> = ob(ours).into_iter().zip(ob(&their_model)).collect();
        // Where LIBLINEAR prints the objective its solver minimised (the dual ones, the
        // L1 ones), compare with what ours reports, unless it switched to the primal
        // solver; elsewhere compare primal objectives recomputed from both models.
        let printed = !reference.objectives.is_empty();
        if printed {
            assert_eq!(
                reference.objectives.len(),
                trained.infos.len(),
                "{tag}: sub-problems"
            );
        }
        for (k, &(p_ours, p_theirs)) in primal.iter().enumerate() {
            let (a, b, what) = match reference.objectives.get(k) {
                Some(&(v, their_switch)) => {
                    if their_switch || trained.switched[k].is_some() {
                        (p_ours, p_theirs, "primal after switch")
                    } else {
                        (trained.infos[k].objective, v, "printed")
                    }
                }
                None => (p_ours, p_theirs, "primal"),
            };
            eprintln!(
                "{tag} problem {k}: {what} objective ours {a:.6} LIBLINEAR {b:.6} (our iterations {})",
                trained.infos[k].iterations
            );
            // After a switch to the primal solver (by either), both stop at
            // `|grad| <= eps |grad0|` from different starting points, which bounds how
            // far above the optimum each stops, not how close the two are: there ours
            // must be within 1e-3 of the optimum, or within what that rule guarantees:
            // `f(w) - f* <= |grad f(w)|^2 / 2` (the regulariser makes f 1-strongly
            // convex), with the switch's tolerance (LIBLINEAR's `train_one`).
            let close = if what == "primal after switch" {
                let (best, g0) = primal_optimum(ours, &prob, k, param.c, param.p);
                let y = &trained_targets(ours, &prob, k);
                let pos = y.iter().filter(|&&v| v > 0.0).count();
                let ratio = if param.solver.is_regression() {
                    0.001
                } else {
                    0.1 * pos.min(y.len() - pos).max(1) as f64 / y.len() as f64
                };
                let bound = 0.5 * (param.eps * ratio * g0).powi(2);
                eprintln!("{tag} problem {k}: optimum {best:.6}, stopping bound {bound:.6}");
                a - best <= (1e-3 * best.abs()).max(bound)
            } else {
                // Both objectives are the function the solver minimises: stopping lower
                // than LIBLINEAR (one more Newton step, a dual solver that went further
                // at its loose default tolerance) is being more converged, not wrong.
                a - b <= rel_tol(tag) * b.abs() + 2e-6
            };
            if !close {
                failures.push(format!(
                    "{tag} ({opts}) problem {k}: {what} objective ours {a} vs LIBLINEAR 2.50 {b}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The +1/-1 (or real) targets of sub-problem `k`.
fn trained_targets(model: &Model, prob: &Problem, k: usize) -> Vec<f64> {
    if model.solver.is_regression() {
        return prob.y.clone();
    }
    let pos = f64::from(model.labels[k]);
    prob.y
        .iter()
        .map(|&v| if v == pos { 1.0 } else { -1.0 })
        .collect()
}

#[test]
fn digits_classifiers_match_liblinear_250() {
    require_refs();
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<(String, String)> = [0, 1, 2, 3, 4, 7]
        .iter()
        .map(|s| (format!("s{s}"), format!("-s {s}")))
        .chain([("s0B".to_string(), "-s 0 -B 1 -R".to_string())])
        .collect();
    let runs: Vec<(&str, &str)> = runs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    compare_with_250(
        dir.path(),
        &digits("train", 2000),
        &digits("test", 2000),
        &runs,
    );
}

/// The L1-regularised solvers visit coordinates in a random order and stop when the
/// summed violation falls below `eps` times the first one; at the default eps = 0.01
/// that leaves the objective loose by more than 1e-3, so LIBLINEAR itself, run again
/// (its `rand()` stream goes on between runs), lands on different objectives. At the
/// default tolerance ours must be within twice the spread of four LIBLINEAR runs; at a
/// tight tolerance (-e 0.0001) within 1e-3 relative, as every other solver.
///
/// Four runs, not two: on these 2,000 digits eight LIBLINEAR runs of -s 6 spread by up
/// to 4.8% on one sub-problem (148.99 to 156.13), ours with --seed 1 to 8 by up to 5.8%
/// (98.78 to 104.49), both stopping after 6 to 8 Newton steps, and where the two runs
/// the test used to take differed by only 0.62%, eight runs of each on sub-problem 7
/// ranged over 129.77-131.24 (LIBLINEAR) and 129.70-131.79 (ours): the same spread,
/// which two runs underestimate.
#[test]
fn digits_l1_solvers_match_liblinear_250_within_its_own_spread() {
    require_refs();
    let dir = tempfile::tempdir().unwrap();
    let train = digits("train", 2000);
    let test = digits("test", 2000);
    let tags: Vec<(String, &str)> = ["-s 5", "-s 6"]
        .iter()
        .flat_map(|opts| (0..4).map(move |k| (format!("{}{k}", &opts[3..]), *opts)))
        .collect();
    let again: Vec<(&str, &str)> = tags.iter().map(|(t, o)| (t.as_str(), *o)).collect();
    let train_path = write_set(dir.path(), "train.txt", &train);
    let test_path = write_set(dir.path(), "test.txt", &test);
    let r = liblinear_250(&train_path, &test_path, dir.path(), &again);
    // Per sub-problem (max - min) / min over the runs, the largest over sub-problems.
    let spread = |runs: &[RefRun]| {
        (0..runs[0].objectives.len())
            .map(|k| {
                let v = runs.iter().map(|r| r.objectives[k].0);
                let lo = v.clone().fold(f64::INFINITY, f64::min);
                let hi = v.fold(f64::NEG_INFINITY, f64::max);
                (hi - lo) / lo.abs()
            })
            .fold(0.0f64, f64::max)
    };
    let (s5, s6) = (spread(&r[..4]), spread(&r[4..]));
    eprintln!("LIBLINEAR 2.50 against itself, 4 runs: -s 5 {s5:.2e}, -s 6 {s6:.2e} relative");
    assert!(s5 > 0.0 && s6 > 0.0, "LIBLINEAR's runs should differ");
    let tol = |tag: &str| match tag {
        "s5" => (2.0 * s5).max(1e-3),
        "s6" => (2.0 * s6).max(1e-3),
        _ => 1e-3,
    };
    compare_with_250_within(
        dir.path(),
        &train,
        &test,
        &[
            ("s5", "-s 5"),
            ("s6", "-s 6"),
            ("s5t", "-s 5 -e 0.0001"),
            ("s6t", "-s 6 -e 0.0001"),
        ],
        &tol,
    );
}

#[test]
fn digits_regression_and_one_class_match_liblinear_250() {
    require_refs();
    let dir = tempfile::tempdir().unwrap();
    compare_with_250(
        dir.path(),
        &digits("train", 1000),
        &digits("test", 1000),
        &[
            ("s11", "-s 11"),
            ("s12", "-s 12"),
            ("s13", "-s 13"),
            ("s11B", "-s 11 -B 1 -R"),
        ],
    );
    let one_vs_all = |(x, y): (linear::sparse::Csr, Vec<f64>)| {
        let y = y
            .iter()
            .map(|&v| if v == 0.0 { 1.0 } else { -1.0 })
            .collect();
        (x, y)
    };
    compare_with_250(
        dir.path(),
        &one_vs_all(digits("train", 1000)),
        &one_vs_all(digits("test", 1000)),
        &[("s21", "-s 21"), ("s21n", "-s 21 -n 0.2")],
    );
}

#[test]
fn generated_sets_match_liblinear_250() {
    require_refs();
    let dir = tempfile::tempdir().unwrap();
    let classes = [5.0, -2.0, 9.0];
    let runs: Vec<(String, String)> = [0, 1, 2, 3, 4, 5, 6, 7]
        .iter()
        .map(|s| (format!("g{s}"), format!("-s {s} -c 0.5 -w9 2")))
        .collect();
    let runs: Vec<(&str, &str)> = runs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    compare_with_250(
        dir.path(),
        &generated(1, 600, 60, 0.2, &classes),
        &generated(2, 400, 60, 0.2, &classes),
        &runs,
    );
    let binary = [-1.0, 1.0];
    compare_with_250(
        dir.path(),
        &generated(3, 500, 40, 0.3, &binary),
        &generated(4, 300, 40, 0.3, &binary),
        &[
            ("b0", "-s 0 -B 1"),
            ("b2", "-s 2 -c 4"),
            ("b5", "-s 5 -B 1 -R"),
            ("b3", "-s 3"),
        ],
    );
    compare_with_250(
        dir.path(),
        &generated(5, 500, 40, 0.3, &[]),
        &generated(6, 300, 40, 0.3, &[]),
        &[
            ("r11", "-s 11 -p 0.2"),
            ("r12", "-s 12 -c 2"),
            ("r13", "-s 13"),
        ],
    );
}

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// Models of `liblinear-train` 2.3.0 predict identically in ours, and ours are accepted
/// by `liblinear-predict` with the same predictions.
#[test]
fn model_files_are_interchangeable_with_liblinear_230() {
    require_refs();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let multi = [3.0, 1.0, 2.0];
    let sets = [
        (
            "m",
            generated(11, 300, 30, 0.3, &multi),
            generated(12, 200, 30, 0.3, &multi),
        ),
        (
            "b",
            generated(13, 300, 30, 0.3, &[-1.0, 1.0]),
            generated(14, 200, 35, 0.3, &[-1.0, 1.0]),
        ),
        (
            "r",
            generated(15, 300, 30, 0.3, &[]),
            generated(16, 200, 30, 0.3, &[]),
        ),
    ];
    for (name, train, test) in &sets {
        let train_path = write_set(d, &format!("{name}.train"), train);
        let test_path = write_set(d, &format!("{name}.test"), test);
        let solvers: &[u32] = if *name == "r" {
            &[11, 12, 13]
        } else {
            &[0, 1, 2, 3, 4, 5, 6, 7]
        };
        for &s in solvers {
            for bias in ["-1", "1"] {
                let flags = format!("-s {s} -B {bias} -q");
                let theirs = d.join(format!("{name}{s}{bias}.ref"));
                run_ok(
                    Command::new("liblinear-train")
                        .args(args(&flags))
                        .arg(&train_path)
                        .arg(&theirs),
                );
                let ours_path = d.join(format!("{name}{s}{bias}.ours"));
                let param = linear::TrainOptions::parse(&args(&format!("{flags} x")))
                    .unwrap()
                    .param;
                let prob = Problem::new(libsvm::read(&train_path).unwrap(), param.bias).unwrap();
                linear::train::train(&prob, &param)
                    .unwrap()
                    .save(&ours_path)
                    .unwrap();
                for model_path in [&theirs, &ours_path] {
                    let out = d.join("pred.out");
                    run_ok(
                        Command::new("liblinear-predict")
                            .arg(&test_path)
                            .arg(model_path)
                            .arg(&out),
                    );
                    let expected = read_numbers(&out);
                    let model = Model::load(model_path).unwrap();
                    let x =
                        linear::problem::with_bias(test.0.clone(), model.bias, model.nr_feature);
                    let got: Vec<f64> = (0..test.1.len()).map(|i| model.predict(&x, i)).collect();
                    assert_eq!(got, expected, "{flags} on {name}: {}", model_path.display());
                }
            }
        }
    }
}

/// Malformed files are rejected at the line LIBLINEAR names.
#[test]
fn malformed_files_rejected_at_liblinears_line() {
    require_refs();
    let dir = tempfile::tempdir().unwrap();
    let good = "1 1:0.5 2:1\n-1 2:0.25\n";
    let cases = [
        ("order", format!("{good}1 3:1 2:1\n")),
        ("repeat", format!("{good}1 2:1 2:1\n")),
        ("colon", format!("{good}{good}1 2 3:1\n")),
        ("value", format!("{good}1 1:abc\n")),
        ("label", format!("{good}x 1:1\n")),
        ("zero", format!("{good}1 0:1\n")),
        ("blank", format!("{good}\n{good}")),
    ];
    for (name, text) in &cases {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let out = Command::new("liblinear-train")
            .arg(&p)
            .arg(dir.path().join("m"))
            .output()
            .unwrap();
        let msg = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let their_line: usize = msg
            .split("Wrong input format at line ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: LIBLINEAR accepted it: {msg}"));
        match libsvm::read(&p) {
            Err(linear::Error::Format { line, .. }) => assert_eq!(line, their_line, "{name}"),
            other => panic!("{name}: expected a format error, got {other:?}"),
        }
    }
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let err = libsvm::read(&empty).unwrap_err().to_string();
    assert!(err.contains("line 1") && err.contains("empty"), "{err}");
}

/// One-class models (LIBLINEAR >= 2.40) go both ways through 2.50.
#[test]
fn one_class_models_are_interchangeable_with_liblinear_250() {
    require_refs();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = generated(21, 300, 20, 0.4, &[1.0]);
    let test = generated(22, 200, 20, 0.4, &[1.0]);
    let train_path = write_set(d, "oc.train", &train);
    let test_path = write_set(d, "oc.test", &test);
    liblinear_250(&train_path, &test_path, d, &[("theirs", "-s 21 -n 0.3")]);
    let param = linear::TrainOptions::parse(&args("-s 21 -n 0.3 x"))
        .unwrap()
        .param;
    let prob = Problem::new(libsvm::read(&train_path).unwrap(), -1.0).unwrap();
    linear::train::train(&prob, &param)
        .unwrap()
        .save(d.join("ours.model"))
        .unwrap();
    const SCRIPT: &str = r#"
import sys
from liblinear.liblinearutil import load_model, predict, svm_read_problem
yt, xt = svm_read_problem(sys.argv[1])
for path in sys.argv[2:]:
    labels, _, _ = predict(yt, xt, load_model(path), "-q")
    print(" ".join(repr(v) for v in labels))
"#;
    let out = run_ok(
        Command::new("python3")
            .args(["-c", SCRIPT])
            .arg(&test_path)
            .arg(d.join("theirs.model"))
            .arg(d.join("ours.model")),
    );
    for (line, name) in out.lines().zip(["theirs.model", "ours.model"]) {
        let expected: Vec<f64> = line
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        let model = Model::load(d.join(name)).unwrap();
        assert_eq!(model.solver, SolverType::OneclassSvm);
        let got: Vec<f64> = (0..test.1.len())
            .map(|i| model.predict(&test.0, i))
            .collect();
        assert_eq!(got, expected, "{name}");
    }
}

/// Cross-validation and the search for C against LIBLINEAR 2.50: the folds are drawn
/// from our seeded stream, not C's `rand()`, so accuracies agree only up to the fold
/// assignment (1 point on 2,000 digits; 2 points for the best of a noisy sweep on 600);
/// the first C tried is computed from the data alone and must be LIBLINEAR's.
#[test]
fn cross_validation_and_search_for_c_match_liblinear_250() {
    require_refs();
    let dir = tempfile::tempdir().unwrap();
    let path = write_set(dir.path(), "cv.train", &digits("train", 2000));
    let small = write_set(dir.path(), "c.train", &digits("train", 600));
    const SCRIPT: &str = r#"
import sys
from liblinear.liblinearutil import train, svm_read_problem
y, x = svm_read_problem(sys.argv[1])
print("@@cv", train(y, x, "-s 2 -v 5 -q"), flush=True)
y, x = svm_read_problem(sys.argv[2])
best = train(y, x, "-s 0 -C")
print("@@best", best[0], best[-1], flush=True)
"#;
    let out = run_ok(
        Command::new("python3")
            .args(["-c", SCRIPT])
            .arg(&path)
            .arg(&small),
    );
    let field = |key: &str, i: usize| -> f64 {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
    };
    let their_cv = field("@@cv", 0);
    let their_first_log2c = field("log2c=", 0);
    let their_best_rate = 100.0 * field("@@best", 1);

    let prob = Problem::new(libsvm::read(&path).unwrap(), -1.0).unwrap();
    let p2 = Parameter::new(SolverType::L2rL2lossSvc);
    let pred = linear::train::cross_validation(&prob, &p2, 5).unwrap();
    let our_cv = 100.0 * linear::train::accuracy(&pred, &prob.y);
    eprintln!("CV accuracy: ours {our_cv} LIBLINEAR 2.50 {their_cv}");
    assert!(
        (our_cv - their_cv).abs() <= 1.0,
        "CV: ours {our_cv} vs {their_cv}"
    );

    let prob = Problem::new(libsvm::read(&small).unwrap(), -1.0).unwrap();
    let p0 = Parameter::new(SolverType::L2rLr);
    let r = linear::train::find_parameters(&prob, &p0, 5, None, None).unwrap();
    let our_rate = 100.0 * r.best_score;
    eprintln!(
        "search: ours start log2c {} best C {} rate {our_rate}; LIBLINEAR start {their_first_log2c} rate {their_best_rate}",
        r.steps[0].c.log2(),
        r.best_c
    );
    assert_eq!(r.steps[0].c.log2(), their_first_log2c);
    assert!(r
        .steps
        .iter()
        .any(|s| s.c == r.best_c && s.score == r.best_score));
    assert!((our_rate - their_best_rate).abs() <= 2.0);
}
