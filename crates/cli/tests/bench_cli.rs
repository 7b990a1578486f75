//! `convnet bench net` prints the baseline's figures and, with `--layers`, a row per
//! layer. (Speed itself is measured by running the benchmark, never asserted here.)

mod common;
use common::{convnet, ok};

/// The value of `key=` in a RESULT line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn bench_net_prints_the_baseline_figures_and_layers() {
    let out = ok(convnet(&[
        "bench",
        "net",
        "--net",
        "resnet18",
        "--batch",
        "2",
        "--reps",
        "1",
        "--threads",
        "2",
        "--layers",
    ]));
    let line = out
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("no RESULT line in {out}"));
    assert_eq!(field(line, "net"), "resnet18");
    assert_eq!(field(line, "batch"), "2");
    assert_eq!(field(line, "threads"), "2");
    for key in ["fwd_b1_ms", "train_img_per_s", "peak_rss_mb"] {
        let v: f64 = field(line, key).parse().unwrap();
        assert!(v > 0.0, "{key} = {v} in {line}");
    }
    // one row per layer, the residual additions and the loss included
    for name in ["conv1", "layer4.1.conv2", "layer1.0.add", "fc", "loss"] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "no row for {name} in\n{out}"
        );
    }
}

#[test]
fn bench_net_refuses_an_unknown_network() {
    let o = convnet(&["bench", "net", "--net", "lenet5"]);
    assert!(!o.status.success());
}
