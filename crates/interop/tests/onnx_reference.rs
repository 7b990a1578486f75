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
