//! `convnet cv` end to end on a small image folder (the shapes of the make_shapes
//! example), and its errors on bad input.

#[allow(dead_code)]
#[path = "../examples/make_shapes.rs"]
mod make_shapes;

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::convnet;

const PER_CLASS: usize = 20;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tiny_net() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/nets/tiny.toml")
        .to_string_lossy()
        .into_owned()
}

fn shapes(dir: &Path) -> PathBuf {
    let data = dir.join("shapes");
    make_shapes::write_shapes(&data, PER_CLASS, 1).unwrap();
    data
}

fn cv(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let net = tiny_net();
    let mut args = vec![
        "cv",
        "--net",
        &net,
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch",
        "10",
        "--threads",
        "1",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    convnet(&args)
}

fn fail(o: Output) -> String {
    assert!(!o.status.success(), "should fail: {}", text(&o.stdout));
    text(&o.stderr)
}

#[test]
fn cv_prints_every_fold_and_writes_json_and_heat_map() {
    let dir = tempfile::tempdir().unwrap();
    let data = shapes(dir.path());
    let out = dir.path().join("cv");
    let o = cv(&data, &out, &["--folds", "3"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let printed = text(&o.stdout);
    let fold_lines: Vec<&str> = printed.lines().filter(|l| l.starts_with("fold ")).collect();
    assert_eq!(fold_lines.len(), 3, "{printed}");
    // Stratified: each held-out fold has a third of the 60 images.
    assert!(
        fold_lines.iter().all(|l| l.contains("tested on 20")),
        "{printed}"
    );
    assert!(printed.contains("standard deviation"), "{printed}");
    let header = printed
        .lines()
        .find(|l| l.contains("true\\pred"))
        .unwrap_or_default();
    assert!(
        make_shapes::CLASSES.iter().all(|c| header.contains(c)),
        "{printed}"
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cv.json")).unwrap()).unwrap();
    let total = 3 * PER_CLASS;
    assert_eq!(json["images"].as_u64(), Some(total as u64));
    let m = json["confusion"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    let counted: u64 = m
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, total as u64);
    for (row, _) in m.iter().zip(make_shapes::CLASSES) {
        let n: u64 = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(n, PER_CLASS as u64, "every image of a class is tested once");
    }
    let folds = json["per_fold"].as_array().unwrap();
    let errors: Vec<f64> = folds
        .iter()
        .map(|f| f["top1_error"].as_f64().unwrap())
        .collect();
    let mean = errors.iter().sum::<f64>() / 3.0;
    assert!((json["mean_top1_error"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert!(json["std_top1_error"].as_f64().unwrap() >= 0.0);
    // The summed matrix's off-diagonal share is the pooled error, which equals the mean
    // fold error here because the folds are the same size.
    let wrong: u64 = (0..3)
        .flat_map(|r| (0..3).filter(move |&c| c != r).map(move |c| (r, c)))
        .map(|(r, c)| m[r][c].as_u64().unwrap())
        .sum();
    assert!((wrong as f64 / total as f64 - mean).abs() < 1e-9);

    let png = image::open(out.join("confusion.png")).unwrap();
    assert!(png.width() > 150 && png.height() > 150);
    assert!(out.join("fold-3/model.safetensors").is_file());
    assert!(!out.join("fold-1/checkpoint-epoch-1.safetensors").exists());

    // The same seed gives the same folds and models; --continue skips finished folds.
    let again = cv(&data, &out, &["--folds", "3", "--continue"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let json2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cv.json")).unwrap()).unwrap();
    assert_eq!(json["per_fold"], json2["per_fold"]);

    // `convnet test` draws the same heat map for one model (the shapes have no test
    // split, so test a fold model on the whole folder seen as its own test set).
    let split = dir.path().join("split");
    std::fs::create_dir_all(&split).unwrap();
    std::os::unix::fs::symlink(&data, split.join("test")).unwrap();
    let heat = dir.path().join("one.png");
    let model = out.join("fold-1/model.safetensors");
    let t = convnet(&[
        "test",
        model.to_str().unwrap(),
        "--data",
        split.to_str().unwrap(),
        "--confusion",
        heat.to_str().unwrap(),
    ]);
    assert!(t.status.success(), "{}", text(&t.stderr));
    assert!(image::open(&heat).unwrap().width() > 150);
}

#[test]
fn cv_rejects_bad_folds_small_classes_and_empty_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = shapes(dir.path());
    let out = dir.path().join("cv");
    assert!(fail(cv(&data, &out, &["--folds", "1"])).contains("at least 2"));
    assert!(fail(cv(&data, &out, &["--folds", "61"])).contains("more than the 60 images"));
    // A class with fewer images than folds is named.
    for i in 3..PER_CLASS {
        std::fs::remove_file(data.join(format!("square/{i:03}.png"))).unwrap();
    }
    let e = fail(cv(&data, &out, &["--folds", "4"]));
    assert!(e.contains("'square'") && e.contains("3 images"), "{e}");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(fail(cv(&empty, &out, &["--folds", "3"])).contains("no class subfolders"));
    // A description file that scores 10 classes cannot be trained on 3 (a zoo network's
    // classifier would be sized to the data instead).
    let ten = dir.path().join("ten.toml");
    let text = std::fs::read_to_string(tiny_net()).unwrap();
    let text = text.replace("init = \"he\"", "init = \"he\"\nclasses = 10");
    std::fs::write(&ten, text.replace("out = 3 ", "out = 10 ")).unwrap();
    let e = fail(convnet(&[
        "cv",
        "--net",
        ten.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--folds",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(e.contains("10 classes but the data has 3"), "{e}");
}
