//! Fine-tuning, zoo networks on any folder, streamed ImageNet-style training and long
//! runs, end to end: `--init`, `--freeze`, `--lr-mult`, `--keep-checkpoints`, extending
//! a finished run, and `predict` with class descriptions.

#[allow(dead_code)]
#[path = "../examples/make_shapes.rs"]
mod make_shapes;

use convnet::net::{load_tensors, save_tensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod common;
use common::{convnet, digit_png, digits_dir, fails_with, ok, stderr, stdout, train, train_loud};

/// 300 training and 100 test digits as MNIST IDX files.
fn small_digits(dir: &Path) -> PathBuf {
    digits_dir(dir, 300, 100)
}

/// Circles, squares and triangles: 20 of each to train on, 10 to test.
fn shapes_dir(dir: &Path) -> PathBuf {
    let data = dir.join("shapes");
    make_shapes::write_shapes(&data.join("train"), 20, 1).unwrap();
    make_shapes::write_shapes(&data.join("test"), 10, 2).unwrap();
    data
}

/// LeNet trained one epoch on the digits: the model fine-tuned from.
fn digits_model(dir: &Path) -> PathBuf {
    let out = dir.join("digits-run");
    ok(train(&small_digits(dir), &out, &["--epochs", "1"]));
    out.join("model.safetensors")
}

fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let (t, _) = load_tensors(path).unwrap();
    t.into_iter().map(|(k, v)| (k, v.into_vec())).collect()
}

fn meta(path: &Path) -> BTreeMap<String, String> {
    load_tensors(path).unwrap().1
}

#[test]
fn fine_tuning_loads_the_matching_layers_and_freezes_what_it_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let init = digits_model(dir.path());
    let shapes = shapes_dir(dir.path());
    let out = dir.path().join("tuned");
    let i = init.to_str().unwrap();
    // conv1 frozen; conv2 and conv3 loaded with a learning rate of 0, so they too must
    // come out exactly as loaded; conv4 re-made for 3 classes and trained.
    let printed = ok(train(
        &shapes,
        &out,
        &[
            "--init",
            i,
            "--freeze",
            "conv1",
            "--lr-mult",
            "0",
            "--epochs",
            "2",
            "--batch",
            "10",
        ],
    ));
    let line = printed
        .lines()
        .find(|l| l.starts_with("init:"))
        .unwrap_or_default();
    assert!(line.contains("loaded 3 of 4 layers"), "{printed}");
    assert!(
        line.contains("not loaded: conv4 (re-made for the data's classes)"),
        "{line}"
    );
    let (a, b) = (tensors(&init), tensors(&out.join("model.safetensors")));
    for name in [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv3.weight",
        "conv3.bias",
    ] {
        assert_eq!(a[name], b[name], "{name} changed");
    }
    assert_eq!(b["conv4.weight"].len(), 3 * 500);
    let m = meta(&out.join("model.safetensors"));
    assert_eq!(m["classes"], r#"["circle","square","triangle"]"#);
    assert_eq!(
        m["normalization"],
        meta(&init)["normalization"],
        "the model's normalisation is kept"
    );
    assert!(
        m["input"].contains("\"channels\":1") && m["input"].contains("resize"),
        "{}",
        m["input"]
    );

    // Without --lr-mult the loaded layers train; the frozen one still does not move.
    let out2 = dir.path().join("tuned2");
    ok(train(
        &shapes,
        &out2,
        &[
            "--init", i, "--freeze", "conv1", "--epochs", "1", "--batch", "10",
        ],
    ));
    let c = tensors(&out2.join("model.safetensors"));
    assert_eq!(a["conv1.weight"], c["conv1.weight"]);
    assert_ne!(a["conv2.weight"], c["conv2.weight"]);

    // The same network on the model's very classes keeps its classifier.
    let same = dir.path().join("same");
    let digits = dir.path().join("digits");
    let printed = ok(train(
        &digits,
        &same,
        &[
            "--init",
            i,
            "--epochs",
            "1",
            "--lr-mult",
            "0",
            "--lr",
            "1e-9",
        ],
    ));
    assert!(
        printed.contains("loaded 4 of 4 layers") && printed.contains("not loaded: none"),
        "{printed}"
    );

    // A deployed model (no loss, a softmax) is trained against a loss again.
    let deployed = dir.path().join("deployed.safetensors");
    ok(convnet(&["deploy", i, deployed.to_str().unwrap()]));
    let again = dir.path().join("from-deployed");
    let d = deployed.to_str().unwrap();
    let printed = ok(train(
        &shapes,
        &again,
        &["--init", d, "--epochs", "1", "--batch", "10"],
    ));
    assert!(printed.contains("loaded 3 of 4 layers"), "{printed}");

    // Cross-validation fine-tunes each fold the same way.
    let cv_out = dir.path().join("cv");
    let cv = ok(convnet(&[
        "cv",
        "--init",
        i,
        "--data",
        shapes.join("train").to_str().unwrap(),
        "--folds",
        "2",
        "--epochs",
        "1",
        "--batch",
        "10",
        "--freeze",
        "conv2",
        "--out",
        cv_out.to_str().unwrap(),
        "--threads",
        "2",
        "--quiet",
    ]));
    assert!(cv.contains("top-1 error over 2 folds"), "{cv}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cv_out.join("cv.json")).unwrap()).unwrap();
    assert_eq!(json["init"].as_str(), Some(i));
    let f = tensors(&cv_out.join("fold-2/model.safetensors"));
    assert_eq!(a["conv2.weight"], f["conv2.weight"]);
}

#[test]
fn init_matching_nothing_and_freeze_naming_no_layer_are_errors_that_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let init = digits_model(dir.path());
    let i = init.to_str().unwrap();
    let shapes = shapes_dir(dir.path());
    let out = dir.path().join("never");
    // cifar's layers have other shapes than LeNet's.
    let e = fails_with(
        train(&shapes, &out, &["--net", "cifar", "--init", i]),
        &["--init", "no layer of network 'cifar'", "conv1"],
    );
    assert!(e.contains("model.safetensors"), "{e}");
    fails_with(
        train(&shapes, &out, &["--init", i, "--freeze", "conv9"]),
        &["--freeze conv9", "no layer 'conv9'", "conv1, pool1"],
    );
    fails_with(
        train(&shapes, &out, &["--init", i, "--freeze", "loss"]),
        &["nothing"],
    );
    fails_with(
        train(&shapes, &out, &["--lr-mult", "0.1"]),
        &["--lr-mult", "--init"],
    );
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a model").unwrap();
    fails_with(
        train(&shapes, &out, &["--init", junk.to_str().unwrap()]),
        &["junk.safetensors"],
    );
    assert!(!out.exists(), "a failed start wrote {}", out.display());
}

#[test]
fn zoo_networks_train_on_a_folder_with_its_classes_and_the_imagenet_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let shapes = shapes_dir(dir.path());
    let out = dir.path().join("cifar");
    ok(train(
        &shapes,
        &out,
        &[
            "--net", "cifar", "--epochs", "1", "--batch", "10", "--jitter", "imagenet",
        ],
    ));
    let model = out.join("model.safetensors");
    assert_eq!(tensors(&model)["conv5.weight"].len(), 3 * 64);
    let m = meta(&model);
    assert!(
        m["input"].contains(r#"{"shorter_side":{"size":37}}"#),
        "{}",
        m["input"]
    );
    // The test transform the model records is what predict applies.
    let photo = dir.path().join("wide.png");
    image::RgbImage::from_pixel(60, 30, image::Rgb([200, 30, 30]))
        .save(&photo)
        .unwrap();
    let p = ok(convnet(&[
        "predict",
        model.to_str().unwrap(),
        photo.to_str().unwrap(),
    ]));
    assert_eq!(p.lines().count(), 4, "three classes: {p}");
    // A test folder's classes are matched to the training classes by name.
    let test = shapes.join("test");
    std::fs::rename(test.join("circle"), test.join("star")).unwrap();
    fails_with(
        train(
            &shapes,
            &dir.path().join("no"),
            &["--net", "cifar", "--epochs", "1"],
        ),
        &["test split", "class 'star'"],
    );
    std::fs::remove_dir_all(test.join("star")).unwrap();
    let two = ok(train(
        &shapes,
        &dir.path().join("two"),
        &["--net", "cifar", "--epochs", "1"],
    ));
    assert!(two.contains("epoch   1:"), "{two}");
}

#[test]
fn predict_prints_class_descriptions_when_the_model_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let init = digits_model(dir.path());
    let (t, mut m) = load_tensors(&init).unwrap();
    let words = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    m.insert(
        "class_descriptions".into(),
        serde_json::to_string(&words).unwrap(),
    );
    let described = dir.path().join("described.safetensors");
    let named: Vec<(&str, &convnet::Tensor)> = t.iter().map(|(k, v)| (k.as_str(), v)).collect();
    save_tensors(&described, &named, m.clone()).unwrap();
    let digit = digit_png(dir.path());
    let p = ok(convnet(&[
        "predict",
        described.to_str().unwrap(),
        digit.to_str().unwrap(),
    ]));
    let labels: Vec<&str> = p
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(labels.len(), 5, "{p}");
    assert!(labels.iter().all(|l| words.contains(l)), "{p}");
    m.insert("class_descriptions".into(), r#"["just one"]"#.into());
    save_tensors(&described, &named, m).unwrap();
    fails_with(
        convnet(&[
            "predict",
            described.to_str().unwrap(),
            digit.to_str().unwrap(),
        ]),
        &["class_descriptions", "1 entries for 10 classes"],
    );
}

#[test]
fn checkpoints_are_pruned_only_after_the_newer_one_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_digits(dir.path());
    let out = dir.path().join("run");
    std::fs::create_dir_all(out.join("checkpoint-epoch-3.safetensors")).unwrap();
    // Epoch 3's checkpoint cannot be written (a folder is in the way): epoch 2's, the
    // newest written, must still be there, epoch 1's gone.
    fails_with(
        train(&data, &out, &["--epochs", "3", "--keep-checkpoints", "1"]),
        &["checkpoint-epoch-3.safetensors"],
    );
    assert!(out.join("checkpoint-epoch-2.safetensors").is_file());
    assert!(!out.join("checkpoint-epoch-1.safetensors").exists());
}

fn history(out: &Path) -> Vec<serde_json::Value> {
    let h: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    h.as_array().unwrap().clone()
}

#[test]
fn continue_extends_a_finished_run_and_prints_each_epoch_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_digits(dir.path());
    let out = dir.path().join("run");
    let o = train_loud(&data, &out, &["--epochs", "2"]);
    let both = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{both}");
    assert_eq!(both.matches("epoch   2:").count(), 1, "{both}");
    assert_eq!(both.matches("epoch   1:").count(), 1, "{both}");
    let first = history(&out);

    let o = ok(train(&data, &out, &["--epochs", "4", "--continue"]));
    assert!(
        o.contains("epoch   3:") && o.contains("epoch   4:") && !o.contains("epoch   2:"),
        "{o}"
    );
    let longer = history(&out);
    assert_eq!(longer.len(), 4);
    assert_eq!(
        longer[..2],
        first[..],
        "the trained epochs are kept as they were"
    );
    // Cosine laid over the 4 epochs: epoch 3 (index 2) is halfway down.
    let lr = longer[2]["lr"].as_f64().unwrap();
    assert!((lr - (0.0005 + 0.5 * (0.05 - 0.0005))).abs() < 1e-6, "{lr}");
    assert!(out.join("checkpoint-epoch-4.safetensors").is_file());
    assert!(!out.join("checkpoint-epoch-2.safetensors").exists());

    fails_with(
        train(&data, &out, &["--epochs", "3", "--continue"]),
        &["4 epochs", "--epochs 4"],
    );
    fails_with(
        train(
            &data,
            &out,
            &["--epochs", "5", "--continue", "--batch", "50"],
        ),
        &["different --batch (100 there, 50 here)"],
    );
}
