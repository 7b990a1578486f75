//! MatConvNet model files against an independent reference: `tests/refs/mat_cases.py`
//! writes a SimpleNN and a DagNN with scipy and computes their outputs with numpy in
//! MatConvNet's own layout and semantics; our import must give the same outputs
//! (within 1e-4), normalisation, image fitting and class names.

mod common;

use common::{assert_close, have_python, python, run};
use convnet::data::folder::Fit;
use convnet::data::normalize::Normalization;
use convnet::net::{self, model_file};
use interop::{import, npy, Format, ImportOptions};
use std::path::Path;
use std::sync::OnceLock;

fn cases() -> Option<&'static Path> {
    static DIR: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    DIR.get_or_init(|| {
        if !have_python(&["scipy", "numpy"]) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        python("mat_cases.py", &[dir.path()]);
        Some(dir)
    })
    .as_ref()
    .map(|d| d.path())
}

/// The input as MatConvNet sees it: the raw pixels with the model's normalisation.
fn normalised(m: &interop::Imported, x: &convnet::Tensor) -> convnet::Tensor {
    let mut x = x.clone();
    m.normalization.apply(&mut x).unwrap();
    x
}

#[test]
fn simplenn_matches_numpy_reference_with_metadata() {
    let Some(dir) = cases() else { return };
    let mut m = import(&dir.join("simplenn.mat"), &ImportOptions::default()).unwrap();
    assert_eq!(m.format, Format::MatConvNet { dag: false });
    assert_eq!(
        m.normalization,
        Normalization::PerChannel {
            mean: vec![101.0, 98.5, 103.25],
            std: vec![1.0; 3]
        }
    );
    let fit = m.input.clone().unwrap();
    assert_eq!((fit.height, fit.width, fit.channels), (10, 9, 3));
    assert_eq!(fit.fit, Fit::ShorterSide { size: 13 });
    assert_eq!(m.net.classes()[4], "n04");
    assert_eq!(m.class_descriptions[0], "tabby cat");
    let names: Vec<&str> = m
        .net
        .desc()
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names[..3], ["conv1", "bn1", "relu1"]);
    let x = npy::read(&dir.join("simplenn.in.npy")).unwrap();
    let want = npy::read(&dir.join("simplenn.out.npy")).unwrap();
    let x = normalised(&m, &x);
    let y = run(&mut m.net, &x);
    assert_eq!(y.shape(), want.shape());
    assert_close(&y, &want, 1e-4, "simplenn");
    // The scores before the softmax are `prediction`, as convnet's own networks name them.
    assert!(m.net.prediction().is_some());

    // Saved and loaded back: the metadata comes along.
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("m.safetensors");
    m.save(&path).unwrap();
    let (mut back, meta) = net::load_model(&path).unwrap();
    let desc: Vec<String> =
        serde_json::from_str(&meta.raw[model_file::CLASS_DESCRIPTIONS]).unwrap();
    assert_eq!(desc[3], "teapot");
    assert!(meta.input.contains("shorter_side"), "{}", meta.input);
    assert_eq!(
        Normalization::from_json(&meta.normalization).unwrap(),
        m.normalization
    );
    assert_close(&run(&mut back, &x), &want, 1e-4, "simplenn reloaded");
}

#[test]
fn dagnn_matches_numpy_reference_with_shared_filters() {
    let Some(dir) = cases() else { return };
    let mut m = import(&dir.join("dagnn.mat"), &ImportOptions::default()).unwrap();
    assert_eq!(m.format, Format::MatConvNet { dag: true });
    let Normalization::MeanImage {
        mean,
        channels,
        height,
        width,
    } = &m.normalization
    else {
        panic!("{:?}", m.normalization)
    };
    assert_eq!((*channels, *height, *width), (3, 8, 8));
    let want_mean = npy::read(&dir.join("dagnn.mean.npy")).unwrap();
    assert_eq!(&mean[..], want_mean.data());
    assert_eq!(
        m.input.as_ref().unwrap().fit,
        Fit::ShorterSide { size: 9 },
        "cropSize 0.875 of 8 pixels"
    );
    // One tensor for the filter two layers share.
    let shared: Vec<_> = m
        .net
        .named_tensors()
        .into_iter()
        .filter(|(n, _)| n.contains("shared_f"))
        .collect();
    assert_eq!(
        shared.len(),
        1,
        "{:?}",
        m.net
            .named_tensors()
            .iter()
            .map(|t| t.0)
            .collect::<Vec<_>>()
    );
    assert!(m.net.desc().layers.iter().any(|l| l.kind.is_objective()));
    let x = normalised(&m, &npy::read(&dir.join("dagnn.in.npy")).unwrap());
    let want = npy::read(&dir.join("dagnn.out.npy")).unwrap();
    assert_close(&run(&mut m.net, &x), &want, 1e-4, "dagnn");
    assert_eq!(m.class_descriptions, ["A", "B", "C"]);
}

fn refused(dir: &Path, name: &str) -> String {
    match import(&dir.join(name), &ImportOptions::default()) {
        Ok(_) => panic!("{name} was imported"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_mat_files_are_refused_naming_file_and_layer() {
    let Some(dir) = cases() else { return };
    let e = refused(dir, "not_a_network.mat");
    assert!(
        e.contains("not_a_network.mat") && e.contains("not a MatConvNet network"),
        "{e}"
    );
    assert!(e.contains("note") && e.contains('x'), "{e}");
    let e = refused(dir, "wrong_biases.mat");
    assert!(
        e.contains("conv1") && e.contains("5 biases for 4 filters"),
        "{e}"
    );
    let e = refused(dir, "unknown_layer.mat");
    assert!(
        e.contains("'mystery'") && e.contains("'custom' is not supported"),
        "{e}"
    );
    let bytes = std::fs::read(dir.join("simplenn.mat")).unwrap();
    let t = tempfile::tempdir().unwrap();
    let cut = t.path().join("cut.mat");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let e = import(&cut, &ImportOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with(&cut.display().to_string()), "{e}");
    // A class list of the wrong length.
    let opts = ImportOptions {
        classes: Some(vec!["one".into(), "two".into()]),
    };
    let e = import(&dir.join("simplenn.mat"), &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("2 class names") && e.contains("5 outputs"),
        "{e}"
    );
}
