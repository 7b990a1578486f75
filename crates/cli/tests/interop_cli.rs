//! `convnet import`, `run`, `deploy` and `export` as a user runs them: a MatConvNet
//! file in, NumPy arrays through, the deployed model against the original, the ONNX
//! export against ONNX Runtime; bad input is an error that writes nothing.

mod common;

use common::{convnet, ok, stderr};
use convnet::blocks::softmax::softmax_forward;
use convnet::net::{self, zoo, Network};
use convnet::Tensor;
use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../interop/tests/data")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Largest |a - b| relative to the largest |b|.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.len(), b.len(), "{:?} vs {:?}", a.shape(), b.shape());
    let scale = b.max_abs().max(f32::MIN_POSITIVE);
    a.data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

#[test]
fn matconvnet_file_imports_and_runs_on_numpy_arrays() {
    let t = tempfile::tempdir().unwrap();
    let model = t.path().join("simplenn.safetensors");
    let out = ok(convnet(&["import", s(&data("simplenn.mat")), s(&model)]));
    assert!(out.contains("MatConvNet SimpleNN, 11 layers"), "{out}");
    assert!(
        out.contains("per channel, mean [101.0, 98.5, 103.25]"),
        "{out}"
    );
    assert!(out.contains("shorter_side"), "{out}");
    // `run` takes the array as given: subtract the average image first, as
    // MatConvNet's reference (computed with numpy) did.
    let mut x = interop::npy::read(&data("simplenn.in.npy")).unwrap();
    let (_, meta) = net::load_model(&model).unwrap();
    convnet::data::normalize::Normalization::from_json(&meta.normalization)
        .unwrap()
        .apply(&mut x)
        .unwrap();
    let xin = t.path().join("x.npy");
    interop::npy::write(&xin, &x).unwrap();
    let yout = t.path().join("y.npy");
    let out = ok(convnet(&[
        "run",
        s(&model),
        s(&xin),
        s(&yout),
        "--batch",
        "1",
    ]));
    assert!(out.contains("'prob' [2, 5, 1, 1]"), "{out}");
    let y = interop::npy::read(&yout).unwrap();
    let want = interop::npy::read(&data("simplenn.out.npy")).unwrap();
    assert!(rel_diff(&y, &want) < 1e-4, "{}", rel_diff(&y, &want));
}

/// LeNet with batch normalisation and random weights (moments too), saved as a model.
fn lenet_bn_model(dir: &Path) -> PathBuf {
    let mut net = Network::from_desc(&zoo::get("lenet-bn").unwrap(), 4).unwrap();
    let names: Vec<String> = net
        .named_tensors()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    for (k, name) in names.iter().enumerate() {
        let shape = net.param(name).unwrap().value.shape().to_vec();
        let mut v = convnet::gradcheck::random(&shape, 50 + k as u64);
        if name.ends_with("running_var") {
            v.data_mut().iter_mut().for_each(|x| *x = 0.2 + x.abs());
        }
        net.set_tensor(name, v).unwrap();
    }
    let p = dir.join("lenet-bn.safetensors");
    net::save_model(&p, &net, "").unwrap();
    p
}

#[test]
fn deploy_folds_batch_norm_and_keeps_outputs() {
    let t = tempfile::tempdir().unwrap();
    let model = lenet_bn_model(t.path());
    let deployed = t.path().join("deployed.safetensors");
    let out = ok(convnet(&[
        "deploy",
        s(&model),
        s(&deployed),
        "--time",
        "--batch",
        "4",
        "--reps",
        "2",
    ]));
    for want in [
        "folded bn1 into conv1",
        "folded bn3 into conv3",
        "dropped loss",
        "appended softmax 'prob'",
        "speed-up",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let x = convnet::gradcheck::random(&[3, 1, 28, 28], 8);
    let xin = t.path().join("x.npy");
    interop::npy::write(&xin, &x).unwrap();
    let (a, b) = (t.path().join("a.npy"), t.path().join("b.npy"));
    ok(convnet(&["run", s(&model), s(&xin), s(&a)]));
    ok(convnet(&["run", s(&deployed), s(&xin), s(&b)]));
    let scores = interop::npy::read(&a).unwrap();
    let probs = interop::npy::read(&b).unwrap();
    let want = softmax_forward(&scores).unwrap();
    assert!(
        rel_diff(&probs, &want) < 1e-5,
        "{}",
        rel_diff(&probs, &want)
    );
    let (dep, _) = net::load_model(&deployed).unwrap();
    assert!(!dep
        .desc()
        .layers
        .iter()
        .any(|l| l.kind.type_name() == "bnorm"));
}

#[test]
fn export_runs_in_onnx_runtime_and_imports_back() {
    let have = Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        assert!(
            std::env::var_os("CONVNET_REQUIRE_REFS").is_none(),
            "onnxruntime is missing: run scripts/install-test-refs.sh"
        );
        eprintln!("notice: skipped, Python's onnxruntime is missing (scripts/install-test-refs.sh installs it)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let model = lenet_bn_model(t.path());
    let onnx = t.path().join("lenet.onnx");
    let out = ok(convnet(&["export", s(&model), s(&onnx)]));
    assert!(out.contains("opset 17"), "{out}");
    let x = convnet::gradcheck::random(&[2, 1, 28, 28], 9);
    let (xin, ours, theirs) = (
        t.path().join("x.npy"),
        t.path().join("a.npy"),
        t.path().join("b.npy"),
    );
    interop::npy::write(&xin, &x).unwrap();
    ok(convnet(&["run", s(&model), s(&xin), s(&ours)]));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/tests/refs/onnx_cases.py");
    let o = Command::new("python3")
        .args([s(&script), "--run", s(&onnx), s(&xin), s(&theirs)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (
        interop::npy::read(&ours).unwrap(),
        interop::npy::read(&theirs).unwrap(),
    );
    assert!(rel_diff(&a, &b) < 1e-4, "{}", rel_diff(&a, &b));
    // And back: the exported file imports as a network computing the same.
    let back = t.path().join("back.safetensors");
    let names = t.path().join("classes.txt");
    std::fs::write(
        &names,
        (0..10).map(|d| format!("digit {d}\n")).collect::<String>(),
    )
    .unwrap();
    ok(convnet(&[
        "import",
        s(&onnx),
        s(&back),
        "--classes",
        s(&names),
        "--mean",
        "33",
        "--std",
        "78",
    ]));
    let (_, meta) = net::load_model(&back).unwrap();
    assert_eq!(meta.classes[7], "digit 7");
    assert!(
        meta.normalization.contains("per_channel"),
        "{}",
        meta.normalization
    );
    let c = t.path().join("c.npy");
    ok(convnet(&["run", s(&back), s(&xin), s(&c)]));
    let c = interop::npy::read(&c).unwrap();
    assert!(rel_diff(&c, &a) < 1e-5, "{}", rel_diff(&c, &a));
}

#[test]
fn bad_input_is_an_error_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out.safetensors");
    let cut = t.path().join("cut.onnx");
    let bytes = std::fs::read(data("conv_pool_gemm.onnx")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let text = t.path().join("readme.mat");
    std::fs::write(&text, "MATLAB 5.0 MAT-file, but nothing else").unwrap();
    for (file, want) in [
        (cut.clone(), "cut.onnx"),
        (text.clone(), "readme.mat"),
        (t.path().join("missing.onnx"), "missing.onnx"),
    ] {
        let o = convnet(&["import", s(&file), s(&out)]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
        assert!(!out.exists());
    }
    let o = convnet(&[
        "import",
        s(&data("simplenn.mat")),
        s(&out),
        "--std",
        "1,1,1",
    ]);
    assert!(stderr(&o).contains("--std needs --mean"), "{}", stderr(&o));
    let o = convnet(&["import", s(&data("simplenn.mat")), s(&out), "--mean", "1,2"]);
    assert!(stderr(&o).contains("need 3 values"), "{}", stderr(&o));
    assert!(!out.exists());
    // `run` on an array that is not (N, C, H, W), and on one of the wrong size.
    let model = lenet_bn_model(t.path());
    let x3 = t.path().join("x3.npy");
    interop::npy::write(&x3, &Tensor::zeros(&[2, 28, 28]).unwrap()).unwrap();
    let y = t.path().join("y.npy");
    let o = convnet(&["run", s(&model), s(&x3), s(&y)]);
    assert!(
        stderr(&o).contains("must be (N, C, H, W)"),
        "{}",
        stderr(&o)
    );
    let x4 = t.path().join("x4.npy");
    interop::npy::write(&x4, &Tensor::zeros(&[1, 3, 28, 28]).unwrap()).unwrap();
    let o = convnet(&["run", s(&model), s(&x4), s(&y)]);
    assert!(
        !o.status.success() && stderr(&o).contains("conv1"),
        "{}",
        stderr(&o)
    );
    assert!(!y.exists());
}
