//! Training diagnostics: the statistics of a sampled batch against values computed
//! here independently on a small network; a layer forced dead gets the dead-ReLU
//! finding naming it; a stop on a finding keeps the last checkpoint.

use convnet::data::digits;
use convnet::data::jitter::Jitter;
use convnet::data::normalize::Normalization;
use convnet::data::source::Images;
use convnet::gradcheck::random;
use convnet::net::{zoo, Mode, NetDesc, Network};
use convnet::train::diagnostics::{FindingKind, Monitor, TensorStats};
use convnet::train::{self, DiagnoseOptions, Diagnostics, Progress, Schedule, Solver, SolverKind};
use convnet::Tensor;
use std::sync::Arc;

/// Mean, population std, min, max, norm and fraction of zeros, the plain way.
fn plain(v: &[f32]) -> [f64; 6] {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let min = v.iter().fold(f32::INFINITY, |a, &b| a.min(b)) as f64;
    let max = v.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let norm = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let zeros = v.iter().filter(|&&x| x == 0.0).count() as f64 / n;
    [mean, var.sqrt(), min, max, norm, zeros]
}

fn assert_stats(what: &str, s: &TensorStats, v: &[f32]) {
    let want = plain(v);
    let got = [s.mean, s.std, s.min, s.max, s.norm, s.zeros];
    assert_eq!(s.count, v.len(), "{what}: count");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}: statistic {k} is {g}, computed here {w}"
        );
    }
}

const SMALL: &str = r#"
name = "small"
input = [4, 4, 1]
classes = 3
[[layer]]
name = "conv1"
type = "conv"
kernel = 3
out = 2
[[layer]]
name = "relu1"
type = "relu"
[[layer]]
name = "fc"
type = "fc"
out = 3
outputs = ["prediction"]
[[layer]]
name = "loss"
type = "softmaxlog"
outputs = ["objective"]
"#;

#[test]
fn statistics_of_a_sampled_batch_match_values_computed_independently() {
    let desc = NetDesc::parse(SMALL, "small.toml").unwrap();
    let mut net = Network::from_desc(&desc, 1).unwrap();
    for (k, name) in ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]
        .iter()
        .enumerate()
    {
        let shape = net.param(name).unwrap().value.shape().to_vec();
        net.set_tensor(name, random(&shape, 10 + k as u64)).unwrap();
    }
    let (batch, labels) = (3usize, [2usize, 0, 1]);
    let x = random(&[batch, 1, 4, 4], 1);
    let y = Tensor::from_vec(&[3, 1, 1, 1], labels.iter().map(|&l| l as f32).collect()).unwrap();
    let (lr, decay) = (0.1f32, 0.01f32);
    let mut monitor = Monitor::new(DiagnoseOptions::default(), Diagnostics::default());

    net.forward(&[("input", &x), ("label", &y)], Mode::Train)
        .unwrap();
    monitor.after_forward(&net, 1, 0, 1, batch, lr);
    let conv = net.var("conv1").unwrap().clone();
    let relu = net.var("relu1").unwrap().clone();
    let pred = net.var("prediction").unwrap().clone();
    let objective = net.objective().unwrap() as f64 / batch as f64;
    net.backward_observed(1.0, &mut |s| {
        monitor.on_backward(&s);
        Ok(())
    })
    .unwrap();
    let before: Vec<(String, Vec<f32>, Vec<f32>)> = net
        .params()
        .map(|p| {
            (
                p.name.clone(),
                p.value.data().to_vec(),
                p.grad.data().to_vec(),
            )
        })
        .collect();
    monitor.before_update(&net);
    let mut solver = Solver::new(SolverKind::Sgd { momentum: 0.9 }, decay).unwrap();
    train::trainer::update(&mut net, &mut solver, lr, batch).unwrap();
    monitor.after_update(&net, lr, batch);

    let d = monitor.record();
    assert_eq!(d.samples.len(), 1);
    let s = &d.samples[0];
    assert_eq!((s.epoch, s.batch, d.classes), (1, 1, 3));
    assert!((s.objective - objective).abs() < 1e-12);
    assert_eq!(d.objectives[0].batches, vec![s.objective]);
    assert_stats("input", &s.input, x.data());

    // The derivatives reaching each output, worked out by hand: softmax minus one-hot
    // at the scores; through the classifier's weights to the ReLU; through the ReLU's
    // mask to the convolution.
    let fc = before
        .iter()
        .find(|p| p.0 == "fc.weight")
        .unwrap()
        .1
        .clone();
    let mut d_pred = vec![0f32; 9];
    for i in 0..batch {
        let z = &pred.data()[i * 3..i * 3 + 3];
        let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let e: Vec<f64> = z.iter().map(|&v| ((v - m) as f64).exp()).collect();
        let sum: f64 = e.iter().sum();
        for k in 0..3 {
            d_pred[i * 3 + k] = (e[k] / sum - (k == labels[i]) as u8 as f64) as f32;
        }
    }
    let mut d_relu = vec![0f32; batch * 8];
    for i in 0..batch {
        for j in 0..8 {
            d_relu[i * 8 + j] = (0..3).map(|k| fc[k * 8 + j] * d_pred[i * 3 + k]).sum();
        }
    }
    let d_conv: Vec<f32> = d_relu
        .iter()
        .zip(conv.data())
        .map(|(&g, &c)| if c > 0.0 { g } else { 0.0 })
        .collect();
    let names: Vec<&str> = s.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["conv1", "relu1", "fc"],
        "losses and metrics are left out"
    );
    for (l, out, dy) in [
        (&s.layers[0], &conv, &d_conv),
        (&s.layers[1], &relu, &d_relu),
        (&s.layers[2], &pred, &d_pred),
    ] {
        assert_stats(&format!("{} output", l.name), &l.output, out.data());
        assert_stats(
            &format!("{} derivative", l.name),
            l.grad.as_ref().unwrap(),
            dy,
        );
    }
    assert!(
        s.layers[1].output.zeros > 0.0,
        "the ReLU zeroes some outputs"
    );

    // Parameters: values before the update, gradients, and SGD's first step
    // -lr * (g / batch + decay * w) against the weight's norm.
    assert_eq!(s.params.len(), 4);
    for (p, (name, w, g)) in s.params.iter().zip(&before) {
        assert_eq!(&p.name, name);
        let role = if name.ends_with("weight") {
            "weight"
        } else {
            "bias"
        };
        assert_eq!(p.role, role);
        assert_stats(&format!("{name} value"), &p.value, w);
        assert_stats(&format!("{name} gradient"), &p.grad, g);
        let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
        let wn = norm(&mut w.iter().map(|&v| v as f64));
        let step = norm(
            &mut w
                .iter()
                .zip(g)
                .map(|(&w, &g)| lr as f64 * (g as f64 / batch as f64 + decay as f64 * w as f64)),
        );
        let gn = norm(&mut g.iter().map(|&v| v as f64));
        let (u, r) = (p.update_ratio.unwrap(), p.grad_ratio.unwrap());
        assert!(
            (u - step / wn).abs() < 1e-5 * step / wn,
            "{name}: {u} vs {}",
            step / wn
        );
        let want = lr as f64 * gn / batch as f64 / wn;
        assert!((r - want).abs() < 1e-6 * want, "{name}: {r} vs {want}");
    }
}

/// The first `n` embedded training digits.
fn digits(n: usize) -> Arc<convnet::data::dataset::Dataset> {
    let all = digits::train().unwrap();
    Arc::new(all.subset(&(0..n).collect::<Vec<_>>()).unwrap())
}

fn options(out: &std::path::Path, stop: bool) -> train::TrainOptions {
    train::TrainOptions {
        epochs: 2,
        batch_size: 10,
        schedule: Schedule::Constant { lr: 0.05 },
        solver: SolverKind::Sgd { momentum: 0.9 },
        weight_decay: 0.002,
        seed: 0,
        jitter: Jitter::none(),
        out_dir: Some(out.to_path_buf()),
        resume: false,
        keep_checkpoints: 0,
        diagnose: DiagnoseOptions {
            stop_on_stall: stop,
            ..DiagnoseOptions::default()
        },
    }
}

/// LeNet with relu1 forced dead: conv3's biases far below its outputs.
fn dead_lenet() -> Network {
    let mut net = Network::from_desc(&zoo::get("lenet").unwrap(), 0).unwrap();
    net.set_tensor("conv3.bias", Tensor::full(&[500], -1000.0).unwrap())
        .unwrap();
    net
}

#[test]
fn a_layer_forced_dead_gets_the_dead_relu_finding_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits(600);
    let norm = Normalization::per_channel(&data).unwrap();
    let mut net = dead_lenet();
    let mut found = Vec::new();
    let run = train::train(
        &mut net,
        data,
        None::<Images>,
        &norm,
        &options(dir.path(), false),
        &mut |p| {
            if let Progress::Findings(f) = p {
                found.extend(f.iter().cloned());
            }
        },
    )
    .unwrap();
    let dead: Vec<_> = found
        .iter()
        .filter(|f| f.kind == FindingKind::DeadRelu)
        .collect();
    assert_eq!(dead.len(), 1, "{found:?}");
    assert_eq!(dead[0].layer, "relu1");
    assert_eq!((dead[0].epoch, dead[0].batch), (1, 60));
    assert!(
        dead[0].to_string().contains("layer 'relu1': dead ReLU"),
        "{}",
        dead[0]
    );
    // Reported once, and the gradients it stops are not separate findings.
    assert!(
        found
            .iter()
            .all(|f| f.kind != FindingKind::VanishingGradient),
        "{found:?}"
    );
    assert_eq!(run.diagnostics.findings, found);
    // Three samples per epoch, written to diagnostics.json as well.
    assert_eq!(run.diagnostics.samples.len(), 6);
    let json: Diagnostics =
        serde_json::from_slice(&std::fs::read(dir.path().join("diagnostics.json")).unwrap())
            .unwrap();
    // (JSON keeps the numbers to the last digit or so.)
    assert_eq!(json.findings, run.diagnostics.findings);
    assert_eq!(json.samples.len(), 6);
    let (a, b): (Vec<f64>, Vec<f64>) = (
        json.all_objectives().collect(),
        run.diagnostics.all_objectives().collect(),
    );
    assert_eq!(a.len(), 120);
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-12));
}

#[test]
fn a_stop_on_a_finding_is_an_error_that_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits(600);
    let norm = Normalization::per_channel(&data).unwrap();
    let mut net = dead_lenet();
    let e = train::train(
        &mut net,
        data,
        None::<Images>,
        &norm,
        &options(dir.path(), true),
        &mut |_| {},
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            convnet::Error::Stalled {
                epoch: 1,
                batch: 60,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("checkpoint-epoch-1.safetensors, is intact"),
        "{msg}"
    );
    assert!(dir.path().join("checkpoint-epoch-1.safetensors").is_file());
    assert!(!dir.path().join("checkpoint-epoch-2.safetensors").exists());
    assert!(dir.path().join("diagnostics.json").is_file());
}
