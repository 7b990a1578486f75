//! Explaining a prediction: `backward_from` (the derivative of any variable, here a
//! class score, through the test-mode network) checked numerically; saliency of a
//! linear model is its weights; Grad-CAM of a network whose last convolution sees one
//! bright square peaks on the square.

use convnet::gradcheck::{check, random, Tolerance};
use convnet::net::explain::{grad_cam, input_gradient, last_spatial_conv, saliency, scores};
use convnet::net::{summarize, zoo, Mode, NetDesc, Network};
use convnet::Tensor;
use std::cell::RefCell;

#[path = "support/square.rs"]
mod square;
use square::{inside, square_net};

fn desc(text: &str) -> NetDesc {
    NetDesc::parse(text, "test.toml").unwrap()
}

/// Convolution, batch normalisation (test mode: its running moments), ReLU, pooling,
/// dropout (off in test mode) and a classifier.
const CHAIN: &str = r#"
name = "chain"
input = [6, 5, 2]
classes = 3
[[layer]]
name = "conv1"
type = "conv"
kernel = 3
out = 3
pad = 1
[[layer]]
name = "bn1"
type = "bnorm"
[[layer]]
name = "relu1"
type = "relu"
[[layer]]
name = "pool1"
type = "pool"
method = "avg"
kernel = 2
[[layer]]
name = "drop"
type = "dropout"
rate = 0.5
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

/// The chain with weights and running moments of order one.
fn chain() -> Network {
    let mut net = Network::from_desc(&desc(CHAIN), 3).unwrap();
    let names: Vec<String> = net
        .named_tensors()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    for (k, name) in names.iter().enumerate() {
        let shape = net.param(name).unwrap().value.shape().to_vec();
        let mut w = random(&shape, 50 + k as u64);
        if name.ends_with("running_var") {
            w.data_mut().iter_mut().for_each(|v| *v = v.abs() + 0.5);
        }
        net.set_tensor(name, w).unwrap();
    }
    net
}

#[test]
fn backward_from_a_variable_is_the_derivative_of_the_test_mode_network() {
    let net = chain();
    let x = random(&[2, 2, 6, 5], 1);
    let cell = RefCell::new(net);
    let prediction = |n: &mut Network, x: &Tensor| -> convnet::Result<Tensor> {
        n.forward(&[("input", x)], Mode::Test)?;
        Ok(n.prediction().unwrap().clone())
    };
    let tol = Tolerance {
        eps: 1e-3,
        rtol: 2e-2,
        atol: 2e-3,
    };
    let r = check(
        std::slice::from_ref(&x),
        |i| prediction(&mut cell.borrow_mut(), &i[0]),
        |i, p| {
            let mut n = cell.borrow_mut();
            prediction(&mut n, &i[0])?;
            n.set_input_grads(true);
            n.backward_from("prediction", p, &mut |_| Ok(()))?;
            Ok(vec![Some(n.var_grad("input").unwrap().clone())])
        },
        tol,
        7,
    );
    assert!(r.is_ok(), "input: {r:?}");
    for name in ["conv1.weight", "bn1.weight", "bn1.bias", "fc.weight"] {
        let w0 = cell.borrow().param(name).unwrap().value.clone();
        let r = check(
            std::slice::from_ref(&w0),
            |i| {
                let mut n = cell.borrow_mut();
                n.set_tensor(name, i[0].clone())?;
                prediction(&mut n, &x)
            },
            |i, p| {
                let mut n = cell.borrow_mut();
                n.set_tensor(name, i[0].clone())?;
                prediction(&mut n, &x)?;
                n.backward_from("prediction", p, &mut |_| Ok(()))?;
                Ok(vec![Some(n.param(name).unwrap().grad.clone())])
            },
            tol,
            8,
        );
        assert!(r.is_ok(), "{name}: {r:?}");
        cell.borrow_mut().set_tensor(name, w0).unwrap();
    }
}

#[test]
fn backward_from_rejects_what_it_cannot_start_from() {
    let mut net = chain();
    let x = random(&[1, 2, 6, 5], 1);
    let seed = Tensor::zeros(&[1, 3, 1, 1]).unwrap();
    let err = |net: &mut Network, var: &str, t: &Tensor| {
        net.backward_from(var, t, &mut |_| Ok(()))
            .unwrap_err()
            .to_string()
    };
    assert!(err(&mut net, "prediction", &seed).contains("forward first"));
    net.forward(&[("input", &x)], Mode::Test).unwrap();
    assert!(err(&mut net, "nothing", &seed).contains("no variable 'nothing'"));
    assert!(err(&mut net, "objective", &Tensor::zeros(&[1]).unwrap()).contains("not computed"));
    let bad = Tensor::zeros(&[1, 4, 1, 1]).unwrap();
    assert!(err(&mut net, "prediction", &bad).contains("shape"));
    assert!(err(&mut net, "input", &x).contains("depends on no trained parameter"));
}

/// A linear classifier: one fully connected layer, no nonlinearity.
const LINEAR: &str = r#"
name = "linear"
input = [5, 4, 2]
classes = 3
[[layer]]
name = "fc"
type = "fc"
out = 3
outputs = ["prediction"]
"#;

#[test]
fn saliency_of_a_linear_model_is_its_weights() {
    let mut net = Network::from_desc(&desc(LINEAR), 1).unwrap();
    net.set_tensor("fc.weight", random(&[3, 2, 5, 4], 2))
        .unwrap();
    net.set_tensor("fc.bias", random(&[3], 3)).unwrap();
    let w = net.param("fc.weight").unwrap().value.clone();
    let x = random(&[1, 2, 5, 4], 4);
    let s = scores(&mut net, &x).unwrap();
    assert_eq!(s.len(), 3);
    for k in 0..3 {
        let g = input_gradient(&mut net, &x, k).unwrap();
        assert_eq!(g.shape(), &[1, 2, 5, 4]);
        let wk = &w.data()[k * 40..(k + 1) * 40];
        for (a, b) in g.data().iter().zip(wk) {
            assert!((a - b).abs() < 1e-6, "class {k}: {a} vs {b}");
        }
        let map = saliency(&g).unwrap();
        assert_eq!((map.h, map.w), (5, 4));
        for (i, v) in map.values.iter().enumerate() {
            let want = wk[i].abs().max(wk[20 + i].abs());
            assert!((v - want).abs() < 1e-6, "class {k}, pixel {i}");
        }
    }
    assert!(input_gradient(&mut net, &x, 3)
        .unwrap_err()
        .to_string()
        .contains("not below the 3 classes"));
}

#[test]
fn grad_cam_of_a_convolution_that_sees_one_bright_square_peaks_on_it() {
    let mut net = square_net();
    // A bright 4x4 square on a dim, noisy background.
    let mut x = random(&[1, 1, 16, 16], 5);
    x.data_mut().iter_mut().for_each(|v| *v = 0.05 * v.abs());
    for i in (0..256).filter(|i| inside(i / 16, i % 16)) {
        x.data_mut()[i] = 3.0;
    }
    net.forward(&[("input", &x)], Mode::Test).unwrap();
    assert_eq!(last_spatial_conv(&net).as_deref(), Some("conv1"));
    let cam = grad_cam(&mut net, &x, 0, None).unwrap();
    assert_eq!((cam.layer.as_str(), cam.channels), ("conv1", 2));
    assert_eq!((cam.heat.h, cam.heat.w), (16, 16));
    assert_eq!((cam.centre, cam.jump), ([0.0, 0.0], [1.0, 1.0]));
    let (r, c) = cam.heat.peak();
    assert!(
        (4..8).contains(&r) && (9..13).contains(&c),
        "peak at {r}, {c}"
    );
    let off: f32 = (0..256)
        .filter(|i| !((4..8).contains(&(i / 16)) && (9..13).contains(&(i % 16))))
        .map(|i| cam.heat.values[i])
        .fold(0.0, f32::max);
    assert!(
        off < 0.05 * cam.heat.values[r * 16 + c],
        "off the square: {off}"
    );
    // Class 1 reads the negated map, which the ReLU zeroes: no evidence anywhere.
    let cam1 = grad_cam(&mut net, &x, 1, Some("relu1")).unwrap();
    assert!(cam1.heat.values.iter().all(|&v| v == 0.0));
    assert!(grad_cam(&mut net, &x, 0, Some("nope")).is_err());
}

#[test]
fn cells_of_a_layer_are_placed_at_the_centres_of_their_receptive_fields() {
    // LeNet: conv 5 (centre 2), pool 2 (2.5, every 2 px), conv 5 (6.5), pool 2 (7.5,
    // every 4 px), conv 4 (13.5: the middle of the 28 px digit).
    let s = summarize(&zoo::get("lenet").unwrap(), None).unwrap();
    let at = |name: &str| {
        let r = s.rows.iter().find(|r| r.name == name).unwrap();
        (r.centre[0], r.jump[0], r.centre[1])
    };
    assert_eq!(at("conv1"), (2.0, 1.0, 2.0));
    assert_eq!(at("pool1"), (2.5, 2.0, 2.5));
    assert_eq!(at("conv2"), (6.5, 2.0, 6.5));
    assert_eq!(at("conv3"), (13.5, 4.0, 13.5));
    // Padding moves the centre back; a transposed convolution divides the spacing.
    let d = desc(
        r#"
name = "geo"
input = [9, 9, 1]
[[layer]]
name = "c"
type = "conv"
kernel = 3
out = 1
pad = [2, 0, 1, 0]
stride = 2
[[layer]]
name = "up"
type = "convt"
kernel = 4
out = 1
upsample = 2
crop = 1
"#,
    );
    let s = summarize(&d, None).unwrap();
    let (c, up) = (&s.rows[0], &s.rows[1]);
    assert_eq!((c.centre, c.jump), ([-1.0, 0.0], [2.0, 2.0]));
    // y[o] = sum over o = 2 i + t - 1: y[0] gathers i = (1 - t) / 2 around t = 1.5.
    assert_eq!(
        up.centre,
        [-1.0 + (1.0 - 1.5) / 2.0 * 2.0, (1.0 - 1.5) / 2.0 * 2.0]
    );
    assert_eq!(up.jump, [1.0, 1.0]);
}
