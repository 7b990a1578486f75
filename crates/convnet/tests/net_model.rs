//! Model files: round trip, atomic writes, errors naming the file and tensor, and
//! PyTorch-style loading with Python's safetensors where it is installed.

use convnet::gradcheck::random;
use convnet::net::{
    load_model, load_tensors, save_model, save_model_with, save_tensors, zoo, Mode, Network,
};
use convnet::Tensor;
use std::collections::BTreeMap;

fn trained_lenet_bn() -> Network {
    let mut net = Network::from_desc(&zoo::get("lenet-bn").unwrap(), 3).unwrap();
    // A training forward moves the running moments away from their start.
    let x = random(&[4, 1, 28, 28], 1);
    net.forward(&[("input", &x)], Mode::Train).unwrap();
    net
}

#[test]
fn a_model_round_trips_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let net = trained_lenet_bn();
    assert_ne!(net.param("bn1.running_mean").unwrap().value.max_abs(), 0.0);
    let norm = r#"{"mean":[0.13],"std":[0.31]}"#;
    save_model(&path, &net, norm).unwrap();
    let (mut back, meta) = load_model(&path).unwrap();
    assert_eq!(meta.normalization, norm);
    assert_eq!(meta.classes, net.classes());
    let mut layers = back.desc().layers.clone();
    layers.iter_mut().for_each(|l| l.line = None);
    assert_eq!(layers, net.desc().layers);
    let a = net.named_tensors();
    let b = back.named_tensors();
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert_eq!(ta, tb, "{na}");
    }
    // Same predictions in test mode.
    let x = random(&[2, 1, 28, 28], 9);
    let mut net = net;
    net.forward(&[("input", &x)], Mode::Test).unwrap();
    back.forward(&[("input", &x)], Mode::Test).unwrap();
    assert_eq!(net.prediction(), back.prediction());
    // Nothing but the model is left in the folder, and overwriting works.
    save_model(&path, &net, "").unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(
        load_model(&path).unwrap().1.input,
        "",
        "no fitting options saved"
    );
    let input = r#"{"channels":1,"height":28,"width":28,"fit":{"shorter_side":{"size":32}}}"#;
    save_model_with(&path, &net, "", input).unwrap();
    assert_eq!(load_model(&path).unwrap().1.input, input);
}

#[test]
fn tensor_files_keep_names_shapes_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let a = random(&[2, 3], 1);
    let b = Tensor::from_vec(&[1], vec![f32::MIN_POSITIVE]).unwrap();
    let mut meta = BTreeMap::new();
    meta.insert("state".to_string(), "{\"epoch\":3}".to_string());
    save_tensors(&path, &[("m.conv1.weight", &a), ("b", &b)], meta.clone()).unwrap();
    let (t, m) = load_tensors(&path).unwrap();
    assert_eq!(t["m.conv1.weight"], a);
    assert_eq!(t["b"], b);
    assert_eq!(m, meta);
    // Many metadata keys, saved twice: the same bytes (no hash-map order leaks in).
    let many: BTreeMap<String, String> =
        (0..32).map(|i| (format!("k{i}"), i.to_string())).collect();
    let copy = dir.path().join("copy.safetensors");
    save_tensors(&path, &[("b", &b)], many.clone()).unwrap();
    save_tensors(&copy, &[("b", &b)], many.clone()).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&copy).unwrap());
    assert_eq!(load_tensors(&copy).unwrap().1, many);
    let e = save_tensors(&path, &[("a", &a), ("a", &b)], BTreeMap::new()).unwrap_err();
    assert!(e.to_string().contains("tensor 'a' is given twice"), "{e}");
}

#[test]
fn bad_files_are_errors_naming_the_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let p = path.display().to_string();
    std::fs::write(&path, b"not a model at all").unwrap();
    let e = load_model(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&p) && e.contains("not a safetensors file"),
        "{e}"
    );
    let e = load_model(&dir.path().join("none.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.safetensors"), "{e}");

    let net = trained_lenet_bn();
    let mut meta = BTreeMap::new();
    meta.insert("description".to_string(), net.desc().to_toml());
    let all = net.named_tensors();
    // A missing tensor.
    save_tensors(&path, &all[1..], meta.clone()).unwrap();
    let e = load_model(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&p) && e.contains("tensor 'conv1.weight' is missing"),
        "{e}"
    );
    // A tensor of the wrong shape.
    let wrong = Tensor::zeros(&[20, 1, 5, 4]).unwrap();
    let mut swapped = all.clone();
    swapped[0] = ("conv1.weight", &wrong);
    save_tensors(&path, &swapped, meta.clone()).unwrap();
    let e = load_model(&path).unwrap_err().to_string();
    assert!(
        e.contains("tensor 'conv1.weight'") && e.contains("20x1x5x5"),
        "{e}"
    );
    // A tensor the network does not have.
    let extra = Tensor::zeros(&[1]).unwrap();
    let mut more = all.clone();
    more.push(("conv9.weight", &extra));
    save_tensors(&path, &more, meta).unwrap();
    let e = load_model(&path).unwrap_err().to_string();
    assert!(
        e.contains("tensor 'conv9.weight' is not a parameter"),
        "{e}"
    );
    // No description.
    save_tensors(&path, &all, BTreeMap::new()).unwrap();
    let e = load_model(&path).unwrap_err().to_string();
    assert!(e.contains("no network description"), "{e}");
    // A broken description names the file, with the line inside it.
    let mut meta = BTreeMap::new();
    meta.insert(
        "description".to_string(),
        "input = [28, 28, 1]\n[[layer]]\nname = \"a\"\ntype = \"nope\"\n".to_string(),
    );
    save_tensors(&path, &all, meta).unwrap();
    let e = load_model(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{p} (description):2: layer 'a': unknown type")),
        "{e}"
    );
}

#[test]
fn python_safetensors_reads_our_weights() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import safetensors.numpy, numpy"])
        .output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        eprintln!("note: skipped: python3 with safetensors and numpy is not available");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let net = trained_lenet_bn();
    save_model(&path, &net, "{}").unwrap();
    let script = "import sys, json\nfrom safetensors.numpy import load_file\nfrom safetensors import safe_open\n\
t = load_file(sys.argv[1])\n\
m = safe_open(sys.argv[1], 'np').metadata()\n\
print(json.dumps({'shapes': {k: list(v.shape) for k, v in t.items()}, 'dtypes': sorted({str(v.dtype) for v in t.values()}), 'first': float(t['conv2.weight'].flatten()[0]), 'classes': json.loads(json.loads(m['convnet'])['classes'])}))";
    let out = std::process::Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, t) in net.named_tensors() {
        let shape: Vec<usize> = v["shapes"][name]
            .as_array()
            .unwrap_or_else(|| panic!("{name} missing"))
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, t.shape(), "{name}");
    }
    assert_eq!(
        v["shapes"]["conv2.weight"],
        serde_json::json!([50, 20, 5, 5])
    );
    assert_eq!(v["dtypes"], serde_json::json!(["float32"]));
    let first = net.param("conv2.weight").unwrap().value.data()[0];
    assert_eq!(v["first"].as_f64().unwrap() as f32, first);
    assert_eq!(v["classes"][9], "9");
}
