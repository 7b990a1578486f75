//! Memory conservation (`Network::set_conserve_memory`): ReLUs in place, convolutions
//! applying their ReLU as they write, outputs freed during backward. It must change
//! nothing but memory: the same objective, gradients and input derivatives, bit
//! for bit; and parameter gradients written straight into place must be those of a
//! zeroed sum, shared parameters and unreached ones included.

use convnet::gradcheck::random;
use convnet::net::{zoo, Mode, NetDesc, Network};
use convnet::Tensor;

fn labels(classes: &[usize]) -> Tensor {
    let v = classes.iter().map(|&c| c as f32).collect();
    Tensor::from_vec(&[classes.len(), 1, 1, 1], v).unwrap()
}

fn small_resnet() -> NetDesc {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/nets/small-resnet.toml"
    );
    NetDesc::load(std::path::Path::new(path)).unwrap()
}

/// A convolution shared by two branches (each followed by a ReLU it may fuse), a
/// sum, and a convolution whose output nothing reads (its gradient stays zero).
const GRAPH: &str = r#"
name = "graph"
input = [6, 6, 2]
classes = 3
[[layer]]
name = "a"
type = "conv"
kernel = 3
out = 4
pad = 1
params = ["shared.weight", "shared.bias"]
inputs = ["input"]
[[layer]]
name = "ra"
type = "relu"
[[layer]]
name = "b"
type = "conv"
kernel = 3
out = 4
pad = 1
params = ["shared.weight", "shared.bias"]
inputs = ["input"]
[[layer]]
name = "rb"
type = "relu"
[[layer]]
name = "dangling"
type = "conv"
kernel = 1
out = 2
inputs = ["input"]
[[layer]]
name = "s"
type = "sum"
inputs = ["ra", "rb"]
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

/// Objective, every parameter gradient and the input derivative after two
/// training steps (the second must not add to the first's gradients).
fn run(desc: &NetDesc, input: &[usize], y: &Tensor, conserve: bool) -> (u32, Vec<Vec<u32>>) {
    let mut net = Network::from_desc(desc, 3).unwrap();
    net.set_conserve_memory(conserve);
    net.set_input_grads(true);
    let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let mut out = (0, Vec::new());
    for step in 0..2 {
        let x = random(input, 10 + step);
        net.set_rng_seed(5);
        net.forward(&[("input", &x), ("label", y)], Mode::Train)
            .unwrap();
        let obj = net.objective().unwrap();
        net.backward(1.0).unwrap();
        let mut grads: Vec<Vec<u32>> = net.params().map(|p| bits(&p.grad)).collect();
        grads.push(bits(net.var_grad("input").unwrap()));
        out = (obj.to_bits(), grads);
    }
    out
}

#[test]
fn conserving_memory_gives_the_same_bits() {
    let cases = [
        (small_resnet(), vec![2, 3, 32, 32], labels(&[1, 7])),
        (
            zoo::get("lenet").unwrap(),
            vec![3, 1, 28, 28],
            labels(&[0, 4, 9]),
        ),
        (
            NetDesc::parse(GRAPH, "graph.toml").unwrap(),
            vec![2, 2, 6, 6],
            labels(&[2, 0]),
        ),
    ];
    for (desc, input, y) in &cases {
        let plain = run(desc, input, y, false);
        let conserved = run(desc, input, y, true);
        assert_eq!(plain.0, conserved.0, "{}: objective", desc.name);
        assert_eq!(plain.1, conserved.1, "{}: gradients", desc.name);
    }
}

#[test]
fn written_gradients_are_those_of_a_zeroed_sum() {
    let desc = NetDesc::parse(GRAPH, "graph.toml").unwrap();
    let mut net = Network::from_desc(&desc, 3).unwrap();
    let x = random(&[2, 2, 6, 6], 1);
    let y = labels(&[2, 0]);
    net.forward(&[("input", &x), ("label", &y)], Mode::Train)
        .unwrap();
    net.backward(1.0).unwrap();
    // stale values in every gradient: a backward must not add to them
    for p in net.params_mut() {
        p.grad.data_mut().fill(7.0);
    }
    net.forward(&[("input", &x), ("label", &y)], Mode::Train)
        .unwrap();
    net.backward(1.0).unwrap();
    let dangling = &net.param("dangling.weight").unwrap().grad;
    assert!(
        dangling.data().iter().all(|&v| v == 0.0),
        "unreached: {dangling:?}"
    );
    // the shared weight's gradient is the sum over its two users: against a
    // network where the two convolutions have their own copies
    let unshared = GRAPH.replace("params = [\"shared.weight\", \"shared.bias\"]\n", "");
    let mut two = Network::from_desc(&NetDesc::parse(&unshared, "two.toml").unwrap(), 3).unwrap();
    for name in ["a.weight", "b.weight"] {
        two.set_tensor(name, net.param("shared.weight").unwrap().value.clone())
            .unwrap();
    }
    for name in ["a.bias", "b.bias"] {
        two.set_tensor(name, net.param("shared.bias").unwrap().value.clone())
            .unwrap();
    }
    for name in ["fc.weight", "fc.bias"] {
        two.set_tensor(name, net.param(name).unwrap().value.clone())
            .unwrap();
    }
    two.forward(&[("input", &x), ("label", &y)], Mode::Train)
        .unwrap();
    two.backward(1.0).unwrap();
    let g = |n: &Network, p: &str| n.param(p).unwrap().grad.clone();
    let mut sum = g(&two, "a.weight");
    sum.axpy(1.0, &g(&two, "b.weight")).unwrap();
    let shared = g(&net, "shared.weight");
    for (a, b) in shared.data().iter().zip(sum.data()) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

#[test]
fn conserving_memory_drops_what_it_says() {
    let desc = zoo::get("lenet").unwrap();
    let x = random(&[2, 1, 28, 28], 1);
    let y = labels(&[3, 5]);
    for conserve in [false, true] {
        let mut net = Network::from_desc(&desc, 1).unwrap();
        net.set_conserve_memory(conserve);
        net.forward(&[("input", &x), ("label", &y)], Mode::Train)
            .unwrap();
        // conv3 feeds only relu1: with conservation the ReLU took its tensor over
        assert_eq!(net.var("conv3").is_some(), !conserve);
        assert!(net.var("relu1").is_some() && net.var("pool2").is_some());
        let mut relu_dy = None;
        net.backward_observed(1.0, &mut |s| {
            if s.name == "relu1" {
                relu_dy = Some(s.dy.is_some());
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(relu_dy, Some(!conserve), "an in-place ReLU consumes its dy");
        // after backward: intermediate outputs freed, the results kept
        assert_eq!(net.var("pool2").is_some(), !conserve);
        assert!(net.objective().is_some() && net.prediction().is_some());
        assert!(net.var("top1err").is_some());
    }
}

/// A class score's derivatives after a test-mode forward (the path that explains a
/// prediction: no label, batch normalisation by its running moments), with and
/// without conservation: the same bits, and the outputs freed all the same.
#[test]
fn conserving_memory_keeps_backward_from_exact() {
    let desc = small_resnet();
    let x = random(&[2, 3, 32, 32], 4);
    let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let mut results = Vec::new();
    for conserve in [false, true] {
        let mut net = Network::from_desc(&desc, 3).unwrap();
        net.set_conserve_memory(conserve);
        net.set_input_grads(true);
        net.forward(&[("input", &x)], Mode::Test).unwrap();
        let kept = |net: &Network| {
            let layers = net.layers().iter();
            layers.filter(|l| net.var(&l.output).is_some()).count()
        };
        let after_forward = kept(&net);
        let p = net.prediction().unwrap();
        let mut seed = Tensor::zeros(p.shape()).unwrap();
        seed.data_mut()[3] = 1.0;
        let mut steps = 0;
        net.backward_from("prediction", &seed, &mut |_| {
            steps += 1;
            Ok(())
        })
        .unwrap();
        assert!(steps > 0);
        let freed = after_forward - kept(&net);
        assert_eq!(freed > 0, conserve, "outputs freed");
        let mut grads: Vec<Vec<u32>> = net.params().map(|p| bits(&p.grad)).collect();
        grads.push(bits(net.var_grad("input").unwrap()));
        results.push(grads);
    }
    assert_eq!(results[0], results[1]);
}
