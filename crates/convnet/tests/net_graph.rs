//! Whole networks: numerical derivative checks of the objective with respect to the
//! input and every parameter, on chains and on a graph with a shared parameter, a
//! sum and a concatenation; training and test modes; predicting without labels.

use convnet::gradcheck::{check, random, Tolerance};
use convnet::net::{zoo, Mode, NetDesc, Network};
use convnet::Tensor;
use std::cell::RefCell;

fn labels(classes: &[usize]) -> Tensor {
    let v = classes.iter().map(|&c| c as f32).collect();
    Tensor::from_vec(&[classes.len(), 1, 1, 1], v).unwrap()
}

/// The objective as a one-element tensor, after a training-mode forward with the
/// dropout generator reseeded, so that every evaluation draws the same masks.
fn objective(net: &mut Network, x: &Tensor, y: &Tensor) -> convnet::Result<Tensor> {
    net.set_rng_seed(11);
    net.forward(&[("input", x), ("label", y)], Mode::Train)?;
    Tensor::full(&[1], net.objective().unwrap())
}

/// Checks d objective / d input and / d each trained parameter numerically.
fn check_network(desc: &NetDesc, input: &[usize], y: &Tensor, seed: u64) {
    let mut net = Network::from_desc(desc, seed).unwrap();
    // Weights of order one keep the objective's slopes well above f32 noise.
    let names: Vec<String> = net.params().map(|p| p.name.clone()).collect();
    for (k, name) in names.iter().enumerate() {
        let shape = net.param(name).unwrap().value.shape().to_vec();
        let mut w = random(&shape, seed + 100 + k as u64);
        w.scale(0.7);
        net.set_tensor(name, w).unwrap();
    }
    net.set_input_grads(true);
    let x = random(input, seed);
    let tol = Tolerance {
        eps: 1e-3,
        rtol: 2e-2,
        atol: 2e-3,
    };
    let cell = RefCell::new(net.clone());
    let r = check(
        std::slice::from_ref(&x),
        |i| objective(&mut cell.borrow_mut(), &i[0], y),
        |i, p| {
            let mut n = cell.borrow_mut();
            objective(&mut n, &i[0], y)?;
            n.backward(p.data()[0])?;
            Ok(vec![Some(n.var_grad("input").unwrap().clone())])
        },
        tol,
        seed,
    );
    assert!(r.is_ok(), "{}: input: {r:?}", desc.name);
    for name in &names {
        let w0 = net.param(name).unwrap().value.clone();
        let r = check(
            &[w0],
            |i| {
                let mut n = cell.borrow_mut();
                n.set_tensor(name, i[0].clone())?;
                objective(&mut n, &x, y)
            },
            |i, p| {
                let mut n = cell.borrow_mut();
                n.set_tensor(name, i[0].clone())?;
                objective(&mut n, &x, y)?;
                n.backward(p.data()[0])?;
                Ok(vec![Some(n.param(name).unwrap().grad.clone())])
            },
            tol,
            seed,
        );
        assert!(r.is_ok(), "{}: parameter {name}: {r:?}", desc.name);
        cell.borrow_mut()
            .set_tensor(name, net.param(name).unwrap().value.clone())
            .unwrap();
    }
}

fn desc(text: &str) -> NetDesc {
    NetDesc::parse(text, "test.toml").unwrap()
}

#[test]
fn chain_derivatives() {
    let smooth = desc(
        r#"
name = "smooth"
input = [5, 4, 2]
classes = 3
[[layer]]
name = "conv1"
type = "conv"
kernel = [3, 2]
out = 3
pad = [1, 0, 1, 1]
stride = [1, 2]
[[layer]]
name = "bn1"
type = "bnorm"
[[layer]]
name = "act1"
type = "tanh"
[[layer]]
name = "pool1"
type = "pool"
method = "avg"
kernel = 2
pad = [0, 1, 0, 1]
[[layer]]
name = "lrn1"
type = "lrn"
n = 3
kappa = 1.0
alpha = 0.5
[[layer]]
name = "drop"
type = "dropout"
rate = 0.3
[[layer]]
name = "fc"
type = "fc"
out = 3
outputs = ["prediction"]
[[layer]]
name = "loss"
type = "softmaxlog"
outputs = ["objective"]
"#,
    );
    check_network(&smooth, &[3, 2, 5, 4], &labels(&[0, 2, 1]), 1);
    let sigm = desc(
        r#"
name = "sigmoid-convt"
input = [3, 3, 2]
classes = 4
[[layer]]
name = "up"
type = "convt"
kernel = 3
out = 2
upsample = 2
crop = [1, 0, 0, 1]
[[layer]]
name = "s"
type = "sigmoid"
[[layer]]
name = "crop"
type = "crop"
crop = [1, 0, 0, 1]
[[layer]]
name = "c"
type = "conv"
kernel = 3
out = 4
dilation = 2
[[layer]]
name = "ls"
type = "logsoftmax"
outputs = ["prediction"]
[[layer]]
name = "loss"
type = "multihinge"
outputs = ["objective"]
"#,
    );
    check_network(&sigm, &[2, 2, 3, 3], &labels(&[3, 1]), 2);
}

/// Two convolutions sharing one parameter, a sum, a concatenation, a classifier.
const SHARED_GRAPH: &str = r#"
name = "graph"
input = [4, 4, 2]
classes = 3
[[layer]]
name = "a"
type = "conv"
kernel = 3
out = 2
pad = 1
params = ["shared.weight", "shared.bias"]
inputs = ["input"]
[[layer]]
name = "ta"
type = "tanh"
[[layer]]
name = "t0"
type = "sigmoid"
inputs = ["input"]
[[layer]]
name = "b"
type = "conv"
kernel = 3
out = 2
pad = 1
params = ["shared.weight", "shared.bias"]
[[layer]]
name = "s"
type = "sum"
inputs = ["ta", "b", "input"]
[[layer]]
name = "cat"
type = "concat"
inputs = ["s", "ta"]
[[layer]]
name = "fc"
type = "fc"
out = 3
outputs = ["prediction"]
[[layer]]
name = "loss"
type = "softmaxlog"
inputs = ["prediction", "label"]
outputs = ["objective"]
"#;

#[test]
fn graph_with_a_shared_parameter_a_sum_and_a_concat() {
    let g = desc(SHARED_GRAPH);
    let net = Network::new(&g).unwrap();
    let names: Vec<&str> = net.params().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["shared.weight", "shared.bias", "fc.weight", "fc.bias"]
    );
    check_network(&g, &[2, 2, 4, 4], &labels(&[2, 0]), 3);
}

#[test]
fn observed_backward_hands_over_each_gradient_once_it_is_final() {
    let mut net = Network::from_desc(&desc(SHARED_GRAPH), 4).unwrap();
    let x = random(&[2, 2, 4, 4], 1);
    let y = labels(&[2, 0]);
    net.forward(&[("input", &x), ("label", &y)], Mode::Train)
        .unwrap();
    let mut seen: Vec<(String, Tensor)> = Vec::new();
    let mut steps: Vec<(String, bool)> = Vec::new();
    net.backward_observed(1.0, &mut |s| {
        steps.push((s.name.to_string(), s.dy.is_some()));
        for p in s.ready {
            seen.push((p.name.clone(), p.grad.clone()));
        }
        Ok(())
    })
    .unwrap();
    // One step per layer, last layer first; the metrics get no derivative.
    let order: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        order,
        ["top5err", "top1err", "loss", "fc", "cat", "s", "b", "t0", "ta", "a"]
    );
    assert!(!steps[0].1 && steps[2].1 && steps[3].1);
    // The shared parameter is handed over after its first user 'a', not after 'b'.
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["fc.weight", "fc.bias", "shared.weight", "shared.bias"]
    );
    let listed: Vec<&str> = net.ready_order().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(listed, names, "ready_order lists the hand-over order");
    for (name, g) in &seen {
        assert_eq!(
            &net.param(name).unwrap().grad,
            g,
            "{name} changed after hand-over"
        );
    }
    // The plain backward gives the same gradients, and an observer's error stops it.
    net.backward(1.0).unwrap();
    for (name, g) in &seen {
        assert_eq!(&net.param(name).unwrap().grad, g, "{name}");
    }
    let e = net
        .backward_observed(1.0, &mut |_| Err(convnet::Error::Invalid("stop".into())))
        .unwrap_err();
    assert_eq!(e.to_string(), "stop");
}

#[test]
fn predicting_without_labels_skips_the_loss_and_metrics() {
    let mut net = Network::from_desc(&zoo::get("lenet").unwrap(), 5).unwrap();
    let x = random(&[3, 1, 28, 28], 1);
    net.forward(&[("input", &x)], Mode::Test).unwrap();
    assert_eq!(net.prediction().unwrap().shape(), &[3, 10, 1, 1]);
    assert!(net.objective().is_none() && net.var("top1err").is_none());
    assert!(net
        .backward(1.0)
        .unwrap_err()
        .to_string()
        .contains("no loss"));
    let y = labels(&[1, 2, 3]);
    net.forward(&[("input", &x), ("label", &y)], Mode::Test)
        .unwrap();
    let obj = net.objective().unwrap();
    assert!(obj.is_finite() && obj > 0.0);
    let top1 = net.scalar("top1err").unwrap();
    let top5 = net.scalar("top5err").unwrap();
    assert!((0.0..=3.0).contains(&top1) && top5 <= top1, "{top1} {top5}");
    // The metric counts agree with the scores.
    let p = net.prediction().unwrap();
    let wrong = (0..3)
        .filter(|&n| {
            let s: Vec<f32> = (0..10).map(|c| p.at4(n, c, 0, 0)).collect();
            let best = (0..10).fold(0, |b, c| if s[c] > s[b] { c } else { b });
            best != [1, 2, 3][n]
        })
        .count();
    assert_eq!(top1, wrong as f32);
    let e = net
        .forward(&[("pixels", &x)], Mode::Test)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'pixels' is not an input") && e.contains("input, label"),
        "{e}"
    );
}

#[test]
fn first_layer_input_gradient_is_skipped_unless_asked_for() {
    let mut net = Network::from_desc(&zoo::get("lenet").unwrap(), 5).unwrap();
    let x = random(&[2, 1, 28, 28], 1);
    let y = labels(&[4, 7]);
    net.forward(&[("input", &x), ("label", &y)], Mode::Train)
        .unwrap();
    net.backward(1.0).unwrap();
    assert!(net.var_grad("input").is_none());
    let g1: Vec<Tensor> = net.params().map(|p| p.grad.clone()).collect();
    assert!(g1.iter().all(|g| g.max_abs() > 0.0));
    // A second backward zeroes the gradients first rather than adding to them.
    net.backward(1.0).unwrap();
    let g2: Vec<Tensor> = net.params().map(|p| p.grad.clone()).collect();
    assert_eq!(g1, g2);
    net.set_input_grads(true);
    net.backward(1.0).unwrap();
    assert_eq!(net.var_grad("input").unwrap().shape(), x.shape());
}

#[test]
fn dropout_masks_follow_the_seed_and_vanish_in_test_mode() {
    let d = desc(
        "name = \"d\"\ninput = [4, 4, 8]\n[[layer]]\nname = \"drop\"\ntype = \"dropout\"\nrate = 0.5\n",
    );
    let mut net = Network::new(&d).unwrap();
    let x = Tensor::full(&[2, 8, 4, 4], 1.0).unwrap();
    let run = |net: &mut Network, seed: u64, mode| {
        net.set_rng_seed(seed);
        net.forward(&[("input", &x)], mode).unwrap();
        net.var("drop").unwrap().clone()
    };
    let a = run(&mut net, 1, Mode::Train);
    assert_eq!(a, run(&mut net, 1, Mode::Train));
    assert_ne!(a, run(&mut net, 2, Mode::Train));
    assert!(a.data().iter().all(|&v| v == 0.0 || v == 2.0));
    let kept = a.data().iter().filter(|&&v| v == 2.0).count();
    assert!((128 - 40..=128 + 40).contains(&kept), "{kept} of 256 kept");
    assert_eq!(run(&mut net, 1, Mode::Test), x);
}

#[test]
fn batch_norm_uses_batch_moments_in_training_and_running_ones_in_test() {
    let d = desc(
        "name = \"b\"\ninput = [1, 2, 1]\n[[layer]]\nname = \"bn\"\ntype = \"bnorm\"\nmomentum = 0.5\neps = 0.001\n",
    );
    let mut net = Network::new(&d).unwrap();
    // One channel, values 1, 3 (image 0) and 5, 7 (image 1): mean 4, variance 5
    // (biased), 20/3 unbiased.
    let x = Tensor::from_vec(&[2, 1, 1, 2], vec![1.0, 3.0, 5.0, 7.0]).unwrap();
    net.forward(&[("input", &x)], Mode::Train).unwrap();
    let y = net.var("bn").unwrap();
    let s = (5.0f32 + 0.001).sqrt();
    for (v, xv) in y.data().iter().zip(x.data()) {
        assert!((v - (xv - 4.0) / s).abs() < 1e-5);
    }
    let mean = net.param("bn.running_mean").unwrap().value.data()[0];
    let var = net.param("bn.running_var").unwrap().value.data()[0];
    assert!((mean - 2.0).abs() < 1e-6, "{mean}");
    assert!((var - (0.5 + 0.5 * 20.0 / 3.0)).abs() < 1e-4, "{var}");
    assert_eq!(net.buffers().count(), 2);
    assert_eq!(net.params().count(), 2);
    // Test mode: (x - 2) / sqrt(var + eps), and the running moments stay.
    net.forward(&[("input", &x)], Mode::Test).unwrap();
    let y = net.var("bn").unwrap();
    for (v, xv) in y.data().iter().zip(x.data()) {
        assert!((v - (xv - 2.0) / (var + 0.001).sqrt()).abs() < 1e-5);
    }
    assert_eq!(net.param("bn.running_mean").unwrap().value.data()[0], mean);
}

#[test]
fn zoo_nets_build_and_the_small_ones_train_a_step() {
    for (name, batch) in [("lenet", 2), ("lenet-bn", 2), ("cifar", 2), ("resnet18", 1)] {
        let d = zoo::get(name).unwrap();
        let [h, w, c] = d.input_size().unwrap();
        let mut net = Network::from_desc(&d, 1).unwrap();
        let x = random(&[batch, c, h, w], 2);
        let y = labels(&vec![1; batch]);
        net.forward(&[("input", &x), ("label", &y)], Mode::Train)
            .unwrap();
        assert!(net.objective().unwrap().is_finite(), "{name}");
        net.backward(1.0).unwrap();
        for p in net.params() {
            assert!(
                p.grad.all_finite() && p.grad.max_abs() > 0.0,
                "{name}: {}",
                p.name
            );
        }
    }
    for name in ["alexnet", "vgg16"] {
        let net = Network::new(&zoo::get(name).unwrap()).unwrap();
        assert!(net.param("fc6.weight").is_some(), "{name}");
    }
    // AlexNet runs forward on one image, in test mode.
    let mut alex = Network::from_desc(&zoo::get("alexnet").unwrap(), 1).unwrap();
    let x = random(&[1, 3, 227, 227], 1);
    alex.forward(&[("input", &x)], Mode::Test).unwrap();
    assert_eq!(alex.prediction().unwrap().shape(), &[1, 1000, 1, 1]);
}

#[test]
fn initialisation_is_seeded_and_scaled() {
    let d = zoo::get("lenet").unwrap();
    let a = Network::from_desc(&d, 7).unwrap();
    let b = Network::from_desc(&d, 7).unwrap();
    let c = Network::from_desc(&d, 8).unwrap();
    let w = |n: &Network| n.param("conv2.weight").unwrap().value.clone();
    assert_eq!(w(&a), w(&b));
    assert_ne!(w(&a), w(&c));
    assert_eq!(a.param("conv2.bias").unwrap().value.max_abs(), 0.0);
    let std = |t: &Tensor| (t.dot(t) / t.len() as f64).sqrt();
    // 25,000 draws: the sample std is within a few percent of 0.01.
    assert!((std(&w(&a)) - 0.01).abs() < 5e-4, "{}", std(&w(&a)));
    // He: sqrt(2 / fan_in) with fan_in = 3*3*64 for resnet18's layer1 convolutions.
    let r = Network::from_desc(&zoo::get("resnet18").unwrap(), 1).unwrap();
    let t = &r.param("layer1.0.conv1.weight").unwrap().value;
    let want = (2.0f64 / 576.0).sqrt();
    assert!((std(t) - want).abs() < 0.03 * want, "{} vs {want}", std(t));
    assert_eq!(r.param("bn1.weight").unwrap().value.data()[0], 1.0);
    assert_eq!(r.param("bn1.running_var").unwrap().value.data()[0], 1.0);
}

/// Test-mode forwards keep each convolution's packed filters; a change of the
/// weights between two forwards is seen (the next forward packs again), and a
/// training-mode forward keeps nothing.
#[test]
fn test_mode_forwards_follow_changes_of_the_weights() {
    let d = zoo::get("cifar").unwrap();
    let [h, w, c] = d.input_size().unwrap();
    let x = random(&[2, c, h, w], 3);
    let mut net = Network::from_desc(&d, 1).unwrap();
    let bits = |net: &Network| -> Vec<u32> {
        let p = net.prediction().unwrap();
        p.data().iter().map(|v| v.to_bits()).collect()
    };
    for round in 0..3 {
        net.forward(&[("input", &x)], Mode::Test).unwrap();
        let got = bits(&net);
        // a clone starts with nothing kept: it packs afresh
        let mut fresh = net.clone();
        fresh.forward(&[("input", &x)], Mode::Test).unwrap();
        assert!(got == bits(&fresh), "round {round}: kept filters differ");
        // every weight changes before the next round
        for p in net.params_mut() {
            p.value.scale(0.9);
        }
        let before = got;
        net.forward(&[("input", &x)], Mode::Test).unwrap();
        assert!(
            bits(&net) != before,
            "round {round}: the change was not seen"
        );
    }
    let y = labels(&[1, 0]);
    net.forward(&[("input", &x), ("label", &y)], Mode::Train)
        .unwrap();
    assert!(format!("{net:?}").contains("FilterCache(empty)"));
    assert!(!format!("{net:?}").contains("FilterCache(Key"));
}
