//! Helpers of the tests against Python references (ONNX Runtime, numpy, scipy):
//! running the reference scripts, and comparing tensors.
#![allow(dead_code)]

use convnet::net::{deploy, Mode, Network};
use convnet::Tensor;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder of the reference scripts.
pub fn refs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/refs")
}

/// Whether python3 can import every module in `modules`. When it cannot: with
/// CONVNET_REQUIRE_REFS set (scripts/test.sh sets it) the test fails; without it, the
/// test prints a notice and is skipped (returns false).
pub fn have_python(modules: &[&str]) -> bool {
    let code = format!("import {}", modules.join(", "));
    let ok = Command::new("python3")
        .args(["-c", &code])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CONVNET_REQUIRE_REFS").is_none(),
            "Python modules {modules:?} are missing: run scripts/install-test-refs.sh"
        );
        eprintln!("notice: skipped, Python modules {modules:?} are missing (scripts/install-test-refs.sh installs them)");
    }
    ok
}

/// Runs `python3 tests/refs/SCRIPT ARGS...`, failing the test on error.
pub fn python(script: &str, args: &[&Path]) {
    let out = Command::new("python3")
        .arg(refs_dir().join(script))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test-mode output of `net` for `x`: the last output of its test form.
pub fn run(net: &mut Network, x: &Tensor) -> Tensor {
    net.forward(&[("input", x)], Mode::Test).unwrap();
    let out = deploy::last_output(net).unwrap().to_string();
    net.var(&out).unwrap().clone()
}

/// Fails unless `ours` and `want` hold the same number of values, each within
/// `tol * max(1, |want|)`.
pub fn assert_close(ours: &Tensor, want: &Tensor, tol: f32, what: &str) {
    assert_eq!(
        ours.len(),
        want.len(),
        "{what}: shapes {:?} and {:?}",
        ours.shape(),
        want.shape()
    );
    let mut worst = 0f32;
    for (a, b) in ours.data().iter().zip(want.data()) {
        let err = (a - b).abs() / b.abs().max(1.0);
        assert!(err.is_finite(), "{what}: {a} vs {b}");
        worst = worst.max(err);
    }
    assert!(
        worst <= tol,
        "{what}: largest difference {worst:e} > {tol:e}"
    );
}
