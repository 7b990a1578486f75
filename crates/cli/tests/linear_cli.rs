//! `convnet linear train|predict` against LIBLINEAR's programs (Debian's liblinear-tools,
//! installed by scripts/install-test-refs.sh): the same printed lines, output files and
//! exit codes.

use std::path::Path;
use std::process::{Command, Output};

fn convnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .arg("linear")
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A small three-class (or real-valued) set from a fixed linear rule with jitter.
fn write_set(path: &Path, n: usize, seed: u64, regression: bool) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut s = String::new();
    for _ in 0..n {
        let x: Vec<f64> = (0..6).map(|_| (next() * 8.0).round() / 4.0 - 1.0).collect();
        let score = x[0] - 0.5 * x[1] + 0.3 * x[2] + 0.4 * (next() - 0.5);
        let label = if regression {
            format!("{}", (score * 1000.0).round() / 1000.0)
        } else {
            (if score > 0.3 {
                "2"
            } else if score > -0.3 {
                "7"
            } else {
                "-1"
            })
            .to_string()
        };
        s.push_str(&label);
        for (j, v) in x.iter().enumerate() {
            if *v != 0.0 {
                s.push_str(&format!(" {}:{}", j + 1, v));
            }
        }
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

fn refs_installed() {
    assert!(
        Command::new("liblinear-train").output().is_ok(),
        "liblinear-tools missing: run scripts/install-test-refs.sh"
    );
}

#[test]
fn predict_prints_and_writes_what_liblinear_predict_does() {
    refs_installed();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    write_set(Path::new(&p("c.train")), 300, 1, false);
    write_set(Path::new(&p("c.test")), 200, 2, false);
    write_set(Path::new(&p("r.train")), 300, 3, true);
    write_set(Path::new(&p("r.test")), 200, 4, true);
    for (set, flags) in [("c", "-s 0 -B 1"), ("c", "-s 2"), ("r", "-s 11")] {
        let mut args: Vec<&str> = flags.split_whitespace().collect();
        let (train, test, model) = (
            p(&format!("{set}.train")),
            p(&format!("{set}.test")),
            p("m"),
        );
        args.extend(["-q", &train, &model]);
        let o = convnet(&["train"]);
        assert_eq!(o.status.code(), Some(1), "no arguments must fail");
        let mut train_args = vec!["train"];
        train_args.extend(args.iter().copied());
        assert!(convnet(&train_args).status.success(), "{flags}");
        let probability: &[&str] = if flags.starts_with("-s 0") {
            &["-b", "1"]
        } else {
            &[]
        };
        let mut ours = vec!["predict"];
        ours.extend(probability);
        let (out_ours, out_ref) = (p("ours.out"), p("ref.out"));
        ours.extend([test.as_str(), model.as_str(), out_ours.as_str()]);
        let o = convnet(&ours);
        assert!(o.status.success());
        let r = Command::new("liblinear-predict")
            .args(probability)
            .args([&test, &model, &out_ref])
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "liblinear-predict rejected our model ({flags})"
        );
        assert_eq!(text(&o), text(&r), "{flags}: printed lines");
        assert_eq!(
            std::fs::read_to_string(&out_ours).unwrap(),
            std::fs::read_to_string(&out_ref).unwrap(),
            "{flags}: output files"
        );
    }
}

#[test]
fn train_modes_print_liblinears_lines() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("c.train");
    write_set(&train, 200, 5, false);
    let train = train.to_string_lossy().into_owned();
    let o = convnet(&["train", "-v", "4", "-q", &train]);
    assert!(o.status.success());
    let cv = text(&o);
    assert!(
        cv.starts_with("Cross Validation Accuracy = ") && cv.trim_end().ends_with('%'),
        "{cv}"
    );
    let o = convnet(&["train", "-C", "-s", "0", "-q", &train]);
    let best = text(&o);
    assert!(o.status.success());
    assert!(
        best.starts_with("Best C = ") && best.contains("  CV accuracy = "),
        "{best}"
    );
    let o = convnet(&["train", "-C", "-v", "3", &train]);
    assert!(text(&o).lines().any(|l| l.starts_with("log2c=")));
}

#[test]
fn failures_exit_with_code_1_and_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.train");
    std::fs::write(&bad, "1 1:1 2:1\n2 3:1 2:1\n").unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let good = dir.path().join("good.train");
    write_set(&good, 50, 6, false);
    let good = good.to_string_lossy().into_owned();
    let missing = dir.path().join("missing").to_string_lossy().into_owned();
    for (args, expect) in [
        (vec!["train", "-s", "abc", &good], "-s"),
        (vec!["train", "-s", "21", "-n", "1.5", &good], "nu"),
        (vec!["train", "-x", "1", &good], "unknown option"),
        (vec!["train", &missing], "missing"),
        (vec!["train", &bad], "line 2"),
        (vec!["predict", &good, &missing, "out"], "missing"),
    ] {
        let o = convnet(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
