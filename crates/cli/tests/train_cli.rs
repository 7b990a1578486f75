//! `convnet train`, `test` and `predict` end to end on a small MNIST-style folder cut
//! from the embedded digits: outputs, bit-exact resume, divergence and bad input.

use convnet::net::load_tensors;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{convnet, digit_png, digits_dir, ok, stderr, train};

fn small_digits(dir: &Path) -> PathBuf {
    digits_dir(dir, 600, 200)
}

#[test]
fn train_writes_model_history_curves_and_checkpoints_then_test_and_predict_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_digits(dir.path());
    let out = dir.path().join("run");
    let printed = ok(train(&data, &out, &["--epochs", "3"]));
    assert!(printed.contains("epoch   3:"), "{printed}");
    for f in [
        "model.safetensors",
        "history.json",
        "curves.png",
        "checkpoint-epoch-2.safetensors",
        "checkpoint-epoch-3.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The newest two checkpoints are kept by default.
    assert!(!out.join("checkpoint-epoch-1.safetensors").exists());
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    let epochs = history.as_array().unwrap();
    assert_eq!(epochs.len(), 3);
    for key in [
        "epoch",
        "train_objective",
        "train_top1err",
        "val_objective",
        "val_top1err",
        "val_top5err",
        "images_per_s",
    ] {
        assert!(epochs[2].get(key).is_some_and(|v| v.is_number()), "{key}");
    }
    let first = epochs[0]["train_objective"].as_f64().unwrap();
    let last = epochs[2]["train_objective"].as_f64().unwrap();
    assert!(last < first, "objective did not fall: {first} -> {last}");
    let png = image::open(out.join("curves.png")).unwrap();
    assert!(png.width() > 200 && png.height() > 100);

    let model = out.join("model.safetensors");
    let tested = ok(convnet(&[
        "test",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]));
    assert!(tested.contains("top-1"), "{tested}");
    // The confusion matrix names every class in its header row.
    assert!(tested
        .lines()
        .any(|l| (0..10).all(|d| l.contains(&d.to_string()))));

    let digit = digit_png(dir.path());
    let predicted = ok(convnet(&[
        "predict",
        model.to_str().unwrap(),
        digit.to_str().unwrap(),
    ]));
    let probabilities: Vec<f64> = predicted
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(probabilities.len(), 5, "{predicted}");
    assert!(
        probabilities.windows(2).all(|w| w[0] >= w[1]),
        "{predicted}"
    );
    assert!(
        probabilities.iter().sum::<f64>() <= 1.0 + 1e-6,
        "{predicted}"
    );
}

fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let (t, _) = load_tensors(path).unwrap();
    t.into_iter().map(|(k, v)| (k, v.into_vec())).collect()
}

#[test]
fn continue_after_a_stop_ends_with_the_same_model_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_digits(dir.path());
    let whole = dir.path().join("whole");
    ok(train(
        &data,
        &whole,
        &["--epochs", "3", "--keep-checkpoints", "0"],
    ));
    assert!(
        whole.join("checkpoint-epoch-1.safetensors").is_file(),
        "0 keeps all"
    );

    // A run stopped after epoch 1: its folder holds only the first checkpoint.
    let stopped = dir.path().join("stopped");
    std::fs::create_dir_all(&stopped).unwrap();
    let first = "checkpoint-epoch-1.safetensors";
    std::fs::copy(whole.join(first), stopped.join(first)).unwrap();
    let printed = train(&data, &stopped, &["--epochs", "3", "--continue"]);
    assert!(printed.status.success(), "{}", stderr(&printed));

    let a = tensors(&whole.join("model.safetensors"));
    let b = tensors(&stopped.join("model.safetensors"));
    assert!(!a.is_empty());
    assert_eq!(a, b, "resumed model differs from the uninterrupted one");
    let history = |d: &Path| -> Vec<f64> {
        let h: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("history.json")).unwrap()).unwrap();
        h.as_array()
            .unwrap()
            .iter()
            .map(|e| e["val_objective"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(history(&whole), history(&stopped));
}

#[test]
fn continue_refuses_a_checkpoint_from_a_different_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_digits(dir.path());
    let out = dir.path().join("run");
    ok(train(&data, &out, &["--epochs", "1"]));
    let o = train(&data, &out, &["--epochs", "2", "--continue", "--seed", "7"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("checkpoint-epoch-1"), "{}", stderr(&o));
}

#[test]
fn divergence_names_epoch_batch_and_layer_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_digits(dir.path());
    let out = dir.path().join("run");
    // A sane first epoch, then an absurd rate.
    let o = train(&data, &out, &["--epochs", "2", "--schedule", "0.01,1e9"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("diverged at epoch 2, batch"), "{err}");
    assert!(err.contains("layer '"), "{err}");
    assert!(err.contains("lower learning rate"), "{err}");
    assert!(err.contains("checkpoint-epoch-1.safetensors"), "{err}");
    assert!(!out.join("checkpoint-epoch-2.safetensors").exists());
    assert!(!out.join("model.safetensors").exists());
    let good = tensors(&out.join("checkpoint-epoch-1.safetensors"));
    assert!(good.iter().all(|(_, v)| v.iter().all(|x| x.is_finite())));
}

fn fails_with(o: Output, needle: &str) {
    common::fails_with(o, &[needle]);
}

#[test]
fn bad_input_is_reported_with_the_offending_name_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = out.to_str().unwrap();
    fails_with(
        convnet(&["train", "--data", "/no/such/folder", "--out", o]),
        "/no/such/folder",
    );
    fails_with(
        convnet(&["train", "--net", "nosuchnet", "--out", o]),
        "nosuchnet",
    );
    fails_with(convnet(&["train", "--batch", "0", "--out", o]), "--batch");
    fails_with(convnet(&["train", "--lr=-1", "--out", o]), "rate");
    fails_with(
        convnet(&["train", "--schedule", "fast", "--out", o]),
        "fast",
    );

    // A truncated IDX file names the file.
    let data = small_digits(dir.path());
    let labels = data.join("train-labels-idx1-ubyte.gz");
    std::fs::write(&labels, b"\x1f\x8b\x08").unwrap();
    fails_with(
        train(&data, &out, &["--epochs", "1"]),
        "train-labels-idx1-ubyte.gz",
    );

    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a model").unwrap();
    fails_with(
        convnet(&["test", junk.to_str().unwrap()]),
        "junk.safetensors",
    );
    fails_with(
        convnet(&["predict", junk.to_str().unwrap(), "/no/such.png"]),
        "junk.safetensors",
    );
}

#[test]
fn a_corrupt_checkpoint_is_named_when_continuing() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_digits(dir.path());
    let out = dir.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("checkpoint-epoch-1.safetensors"), b"garbage").unwrap();
    fails_with(
        train(&data, &out, &["--epochs", "2", "--continue"]),
        "checkpoint-epoch-1.safetensors",
    );
}
