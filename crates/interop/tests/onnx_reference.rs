//! ONNX import and export against ONNX Runtime: models built by
//! `tests/refs/onnx_cases.py` with onnx.helper (every operator the importer reads),
//! our outputs against ONNX Runtime's within 1e-4; then each imported network
//! exported again and run by ONNX Runtime, against our outputs. Bad models are
//! refused with the node named.

mod common;

use common::{assert_close, have_python, python, run};
use interop::onnx::{export, ExportMeta};
use interop::{import, npy, ImportOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const CASES: &[&str] = &[
    "conv_pool_gemm",
    "flatten_order",
    "bn_lrn_dropout",
    "concat_sum",
    "pad_fold",
    "conv_transpose",
    "same_pads",
    "opset11",
    "opset21",
    "fixed_batch_reshape",
    "ext/external",
];

/// The generated models, once per test binary (None: references missing, skip).
fn cases() -> Option<&'static Path> {
    static DIR: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    DIR.get_or_init(|| {
        if !have_python(&["onnx", "onnxruntime", "numpy"]) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        python("onnx_cases.py", &[dir.path()]);
        Some(dir)
    })
    .as_ref()
    .map(|d| d.path())
}

fn file(dir: &Path, case: &str, ext: &str) -> PathBuf {
    dir.join(format!("{case}.{ext}"))
}

#[test]
fn every_operator_matches_onnx_runtime_and_survives_export() {
    let Some(dir) = cases() else { return };
    let rt = tempfile::tempdir().unwrap();
    let mut runs: Vec<PathBuf> = Vec::new();
    let mut ours = Vec::new();
    for case in CASES {
        let imported = import(&file(dir, case, "onnx"), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let mut net = imported.net;
        let x = npy::read(&file(dir, case, "in.npy")).unwrap();
        let want = npy::read(&file(dir, case, "out.npy")).unwrap();
        let y = run(&mut net, &x);
        assert_close(&y, &want, 1e-4, case);
        // Round trip: our export of the imported network, run by ONNX Runtime.
        let stem = case.replace('/', "_");
        let model = rt.path().join(format!("{stem}.onnx"));
        export(&net, &ExportMeta::default(), &model).unwrap();
        runs.extend([
            model,
            file(dir, case, "in.npy"),
            rt.path().join(format!("{stem}.ort.npy")),
        ]);
        ours.push((stem, y));
    }
    let args: Vec<&Path> = std::iter::once(Path::new("--run"))
        .chain(runs.iter().map(PathBuf::as_path))
        .collect();
    python("onnx_cases.py", &args);
    for (stem, y) in ours {
        let ort = npy::read(&rt.path().join(format!("{stem}.ort.npy"))).unwrap();
        assert_close(&y, &ort, 1e-4, &format!("{stem} exported"));
    }
}

#[test]
fn fully_connected_layers_are_convnet_fc_layers_and_softmax_input_is_prediction() {
    let Some(dir) = cases() else { return };
    let m = import(
        &file(dir, "conv_pool_gemm", "onnx"),
        &ImportOptions::default(),
    )
    .unwrap();
    let kinds: Vec<&str> = m
        .net
        .desc()
        .layers
        .iter()
        .map(|l| l.kind.type_name())
        .collect();
    assert!(kinds.contains(&"fc"), "{kinds:?}");
    let last = m.net.desc().layers.last().unwrap();
    assert_eq!(last.kind.type_name(), "softmax");
    assert_eq!(last.inputs, vec!["prediction".to_string()]);
    assert_eq!(m.net.classes().len(), 5);
    // Pad nodes fold away: no layer of the converted network is a Pad.
    let p = import(&file(dir, "pad_fold", "onnx"), &ImportOptions::default()).unwrap();
    let n_pool = p
        .net
        .desc()
        .layers
        .iter()
        .filter(|l| l.kind.type_name() == "pool")
        .count();
    assert_eq!(n_pool, 5, "{:?}", p.net.desc().layers);
}

fn refused(dir: &Path, case: &str) -> String {
    match import(&file(dir, case, "onnx"), &ImportOptions::default()) {
        Ok(_) => panic!("{case} was imported"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_models_are_refused_naming_file_node_and_op() {
    let Some(dir) = cases() else { return };
    let e = refused(dir, "bad_unsupported");
    assert!(e.contains("bad_unsupported.onnx"), "{e}");
    assert!(
        e.contains("node 'scale_by_two' (Mul)") && e.contains("op type 'Mul'"),
        "{e}"
    );
    let e = refused(dir, "bad_lrn_chain");
    assert!(
        e.contains("lrn_square") && e.contains("LocalResponseNorm"),
        "{e}"
    );
    let e = refused(dir, "bad_weight_shape");
    assert!(
        e.contains("conv_wrong") && e.contains("do not fit an input of 3 channels"),
        "{e}"
    );
    std::fs::write(dir.parent().unwrap().join("outside.bin"), [0u8; 16]).ok();
    let e = refused(dir, "bad_escape");
    assert!(e.contains("inside the model's folder"), "{e}");
}

#[test]
fn truncated_and_foreign_files_are_errors() {
    let Some(dir) = cases() else { return };
    let bytes = std::fs::read(file(dir, "concat_sum", "onnx")).unwrap();
    let t = tempfile::tempdir().unwrap();
    let cut = t.path().join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = import(&cut, &ImportOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cut.onnx"), "{e}");
    let text = t.path().join("notes.onnx");
    std::fs::write(&text, "these are not the weights you are looking for\n").unwrap();
    let e = import(&text, &ImportOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("notes.onnx") && e.contains("not an ONNX model"),
        "{e}"
    );
}

/// A network with every layer kind export writes, random weights (and moments).
const EVERY_KIND: &str = r#"
name = "every_kind"
input = [9, 8, 3]
classes = 4
[[layer]]
name = "c1"
type = "conv"
size = [3, 3, 3, 6]
pad = [1, 0, 2, 1]
stride = [1, 2]
[[layer]]
name = "bn1"
type = "bnorm"
eps = 0.001
[[layer]]
name = "r1"
type = "relu"
leak = 0.05
[[layer]]
name = "n1"
type = "lrn"
n = 3
kappa = 1.5
alpha = 0.02
beta = 0.75
[[layer]]
name = "up"
type = "convt"
kernel = [3, 3]
out = 4
upsample = 2
crop = [1, 0, 0, 1]
[[layer]]
name = "crop"
type = "crop"
crop = [1, 2, 0, 1]
[[layer]]
name = "p1"
type = "pool"
method = "avg"
kernel = 3
stride = 2
pad = [1, 1, 0, 1]
count_pad = true
[[layer]]
name = "branch"
type = "conv"
size = [1, 1, 2, 4]
groups = 2
bias = false
inputs = ["p1"]
[[layer]]
name = "s"
type = "sigmoid"
[[layer]]
name = "t"
type = "tanh"
inputs = ["p1"]
[[layer]]
name = "sum"
type = "sum"
inputs = ["s", "t", "p1"]
[[layer]]
name = "cat"
type = "concat"
inputs = ["sum", "branch"]
[[layer]]
name = "p2"
type = "pool"
method = "max"
kernel = [2, 3]
stride = 1
pad = [0, 1, 1, 0]
[[layer]]
name = "drop"
type = "dropout"
[[layer]]
name = "fc"
type = "fc"
out = 4
outputs = ["prediction"]
[[layer]]
name = "lsm"
type = "logsoftmax"
[[layer]]
name = "loss"
type = "softmaxlog"
inputs = ["prediction", "label"]
"#;

#[test]
fn export_of_every_layer_kind_matches_onnx_runtime() {
    let Some(_) = cases() else { return };
    let desc = convnet::net::NetDesc::parse(EVERY_KIND, "every_kind").unwrap();
    let mut net = convnet::net::Network::from_desc(&desc, 5).unwrap();
    let names: Vec<String> = net
        .named_tensors()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    for (k, name) in names.iter().enumerate() {
        let shape = net.param(name).unwrap().value.shape().to_vec();
        let mut v = convnet::gradcheck::random(&shape, 30 + k as u64);
        if name.ends_with("running_var") {
            v.data_mut().iter_mut().for_each(|x| *x = 0.3 + x.abs());
        }
        net.set_tensor(name, v).unwrap();
    }
    let t = tempfile::tempdir().unwrap();
    let (model, xin, ort) = (
        t.path().join("m.onnx"),
        t.path().join("x.npy"),
        t.path().join("y.npy"),
    );
    let m = export(&net, &ExportMeta::default(), &model).unwrap();
    let ops: Vec<&str> = m
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect();
    for op in [
        "Slice",
        "ConvTranspose",
        "LRN",
        "BatchNormalization",
        "LeakyRelu",
        "LogSoftmax",
        "Sum",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    assert!(!ops.contains(&"Dropout"), "{ops:?}");
    let x = convnet::gradcheck::random(&[3, 3, 9, 8], 4);
    npy::write(&xin, &x).unwrap();
    python("onnx_cases.py", &[Path::new("--run"), &model, &xin, &ort]);
    let y = run(&mut net, &x);
    assert_close(&y, &npy::read(&ort).unwrap(), 1e-4, "every kind exported");
    // Imported back, the network computes the same.
    let mut back = import(&model, &ImportOptions::default()).unwrap().net;
    assert_close(&run(&mut back, &x), &y, 1e-5, "every kind imported back");
}
