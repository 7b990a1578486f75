//! Running the `convnet` binary from the command-line tests.
#![allow(dead_code)] // each test file uses its own subset

use convnet::data::{digits, idx};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn convnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The standard output of a command that must succeed.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed: {}", stderr(&o));
    stdout(&o)
}

/// The first `n` images of the embedded split `split`, written as MNIST IDX files into
/// `dir`.
pub fn write_split(dir: &Path, split: &str, n: usize) {
    let ds = digits::split(split).unwrap();
    let pixels: Vec<u8> = ds.images.data()[..n * 28 * 28]
        .iter()
        .map(|&p| p as u8)
        .collect();
    let labels: Vec<u8> = ds.labels[..n].iter().map(|&l| l as u8).collect();
    let images = idx::encode_images(28, 28, &pixels).unwrap();
    let name = |what: &str| {
        dir.join(format!(
            "{split}-{what}-idx{}-ubyte.gz",
            if what == "images" { 3 } else { 1 }
        ))
    };
    idx::write_bytes(&name("images"), &images, true).unwrap();
    idx::write_bytes(&name("labels"), &idx::encode_labels(&labels).unwrap(), true).unwrap();
}

/// A folder `dir/digits` with the first `train` and `test` embedded digits.
pub fn digits_dir(dir: &Path, train: usize, test: usize) -> PathBuf {
    let data = dir.join("digits");
    std::fs::create_dir_all(&data).unwrap();
    write_split(&data, "train", train);
    write_split(&data, "test", test);
    data
}

/// Standard error of a command that must fail, checked to contain every one of `needles`.
pub fn fails_with(o: Output, needles: &[&str]) -> String {
    assert!(!o.status.success(), "should fail: {}", stdout(&o));
    let e = stderr(&o);
    for n in needles {
        assert!(e.contains(n), "expected '{n}' in: {e}");
    }
    e
}

/// `convnet train --data DATA --out OUT --threads 2 EXTRA...`.
pub fn train_loud(data: &Path, out: &Path, extra: &[&str]) -> Output {
    convnet(&train_args(data, out, "2", extra))
}

/// The arguments of `convnet train --data DATA --out OUT --threads THREADS EXTRA...`.
pub fn train_args<'a>(
    data: &'a Path,
    out: &'a Path,
    threads: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--threads",
        threads,
    ];
    args.extend_from_slice(extra);
    args
}

/// `convnet train` on the data folder `data` into `out`, on 2 threads, quietly, with
/// `extra` arguments.
pub fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    train_loud(data, out, &[extra, &["--quiet"]].concat())
}

/// `dir/digit.png`: the first embedded test digit (a 7) as a PNG file.
pub fn digit_png(dir: &Path) -> PathBuf {
    let path = dir.join("digit.png");
    let ds = digits::test().unwrap();
    let pixels: Vec<u8> = ds.images.data()[..784].iter().map(|&p| p as u8).collect();
    image::GrayImage::from_raw(28, 28, pixels)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}
