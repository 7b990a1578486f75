//! `convnet train`'s diagnostics end to end on small MNIST-style folders cut from the
//! embedded digits: the known stalling recipe (MatConvNet's LeNet rate on 0..1 pixels)
//! is caught within the first epoch, a healthy default run prints no warning and
//! draws its statistics, and `--stop-on-stall` ends the run with an error and the
//! last checkpoint intact.

use std::path::Path;
use std::process::Output;

mod common;
use common::{digits_dir, ok, stderr};

/// `convnet train` with `extra` arguments, one epoch unless they say otherwise.
fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = extra.to_vec();
    if !args.contains(&"--epochs") {
        args.extend(["--epochs", "1"]);
    }
    common::train(data, out, &args)
}

/// MatConvNet's LeNet learning rate on pixels scaled to 0..1 and not standardised:
/// 60 batches of 10 that leave the objective at chance.
const STALL: [&str; 6] = ["--batch", "10", "--lr", "0.001", "--normalize", "unit"];

#[test]
fn the_stalling_recipe_is_caught_within_the_first_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits_dir(dir.path(), 600, 200);
    let out = dir.path().join("run");
    let o = train(&data, &out, &STALL);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    let w = warnings[0];
    assert!(
        w.starts_with("warning: layer 'loss': the objective is not falling"),
        "{w}"
    );
    for part in [
        "chance level for 10 classes",
        "the weights hardly move",
        "(epoch 1, batch 60)",
        "Likely cause: inputs not normalised",
        "Remedy: standardise the inputs",
    ] {
        assert!(w.contains(part), "'{part}' missing: {w}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("diagnostics.json")).unwrap()).unwrap();
    assert_eq!(json["findings"][0]["kind"], "objective_not_falling");
    assert_eq!(
        json["objectives"][0]["batches"].as_array().unwrap().len(),
        60
    );
    assert_eq!(json["samples"].as_array().unwrap().len(), 3);
}

#[test]
fn a_healthy_default_run_learns_prints_no_warning_and_draws_its_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits_dir(dir.path(), 1000, 200);
    let out = dir.path().join("run");
    let o = train(&data, &out, &["--batch", "20", "--diagnose"]);
    let err = stderr(&o);
    let printed = ok(o);
    assert!(!err.contains("warning"), "{err}");
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    let val = history[0]["val_top1err"].as_f64().unwrap();
    assert!(val < 0.75, "it should learn (chance is 0.9): {val}");
    let png = out.join("diagnostics.png");
    assert!(printed.contains(png.to_str().unwrap()), "{printed}");
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (1560, 974));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("diagnostics.json")).unwrap()).unwrap();
    let sample = &json["samples"][0];
    let layers: Vec<&str> = sample["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        layers,
        ["conv1", "pool1", "conv2", "pool2", "conv3", "relu1", "conv4"]
    );
    for key in ["mean", "std", "min", "max", "norm", "zeros"] {
        assert!(sample["layers"][5]["output"][key].is_number(), "{key}");
        assert!(sample["layers"][5]["grad"][key].is_number(), "{key}");
    }
    let p = &sample["params"][0];
    assert_eq!(
        (p["name"].as_str(), p["role"].as_str()),
        (Some("conv1.weight"), Some("weight"))
    );
    assert!(p["update_ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn stop_on_stall_exits_non_zero_with_the_last_checkpoint_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits_dir(dir.path(), 600, 200);
    let out = dir.path().join("run");
    let mut args = STALL.to_vec();
    args.extend(["--stop-on-stall", "--diagnose", "--epochs", "2"]);
    let o = train(&data, &out, &args);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("error: training stopped at epoch 1, batch 60, because it stalls: layer 'loss': the objective is not falling"),
        "{err}"
    );
    assert!(
        err.contains("checkpoint-epoch-1.safetensors, is intact"),
        "{err}"
    );
    assert!(out.join("checkpoint-epoch-1.safetensors").is_file());
    assert!(!out.join("checkpoint-epoch-2.safetensors").exists());
    assert!(!out.join("model.safetensors").exists());
    // The statistics of the stopped run are drawn: that is when they are wanted.
    assert!(out.join("diagnostics.png").is_file());
}

#[test]
fn check_every_catches_the_stall_before_the_epoch_ends() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits_dir(dir.path(), 600, 200);
    let out = dir.path().join("run");
    let mut args = STALL.to_vec();
    args.extend(["--check-every", "50", "--stop-on-stall"]);
    let o = train(&data, &out, &args);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("stopped at epoch 1, batch 50"), "{err}");
    assert!(!out.join("checkpoint-epoch-1.safetensors").exists());
    let o = train(&data, &out, &["--check-every", "0"]);
    assert!(stderr(&o).contains("--check-every must be at least 1"));
}

#[test]
fn statistics_leave_the_model_bit_for_bit_as_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits_dir(dir.path(), 600, 200);
    let (with, without) = (dir.path().join("with"), dir.path().join("without"));
    ok(train(
        &data,
        &with,
        &["--batch", "20", "--check-every", "3"],
    ));
    ok(train(
        &data,
        &without,
        &["--batch", "20", "--diagnose-batches", "0"],
    ));
    let tensors = |d: &Path| {
        convnet::net::load_tensors(&d.join("model.safetensors"))
            .unwrap()
            .0
    };
    let (a, b) = (tensors(&with), tensors(&without));
    assert!(!a.is_empty());
    assert_eq!(a, b);
    let samples = |d: &Path| {
        let j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("diagnostics.json")).unwrap()).unwrap();
        j["samples"].as_array().unwrap().len()
    };
    // 30 batches: every third, and 10 and 20 of the three spread over the epoch.
    assert_eq!((samples(&with), samples(&without)), (12, 0));
}
