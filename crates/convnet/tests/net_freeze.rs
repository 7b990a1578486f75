//! Freezing layers for fine-tuning: frozen weights and batch-norm statistics stay bit
//! for bit what they were through training, backward never reaches the frozen layers,
//! and in a graph the frozen part is the named layer and what it depends on.

use convnet::data::dataset::Dataset;
use convnet::data::jitter::Jitter;
use convnet::data::normalize::Normalization;
use convnet::data::source::Images;
use convnet::gradcheck::random;
use convnet::net::{zoo, Mode, Network};
use convnet::train::{self, Schedule, SolverKind, TrainOptions};
use convnet::Tensor;

/// Every tensor of the layers named, by name.
fn tensors_of(net: &Network, layers: &[String]) -> Vec<(String, Tensor)> {
    net.named_tensors()
        .into_iter()
        .filter(|(n, _)| {
            layers
                .iter()
                .any(|l| net.param(n).is_some_and(|p| &p.layer == l))
        })
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

fn digits_like(n: usize, seed: u64) -> Dataset {
    let images = random(&[n, 1, 28, 28], seed);
    let labels = (0..n).map(|i| i % 10).collect();
    let classes = (0..10).map(|c| c.to_string()).collect();
    Dataset::new(images, labels, classes).unwrap()
}

#[test]
fn frozen_layers_keep_their_weights_and_statistics_bit_for_bit() {
    let mut net = Network::from_desc(&zoo::get("lenet-bn").unwrap(), 3).unwrap();
    let frozen = net.freeze_through("bn2").unwrap();
    assert_eq!(frozen, ["conv1", "bn1", "pool1", "conv2", "bn2"]);
    assert!(net.layers().iter().filter(|l| l.is_frozen()).count() == 5);
    // Running moments that training mode would move.
    let mut m = net.param("bn2.running_mean").unwrap().value.clone();
    m.data_mut().fill(0.25);
    net.set_tensor("bn2.running_mean", m).unwrap();
    let before = tensors_of(&net, &frozen);
    let trained = ["conv3".to_string(), "bn3".into(), "conv4".into()];
    let others = tensors_of(&net, &trained);
    let opts = TrainOptions {
        epochs: 2,
        batch_size: 10,
        schedule: Schedule::Constant { lr: 0.05 },
        solver: SolverKind::Sgd { momentum: 0.9 },
        weight_decay: 0.01,
        seed: 1,
        jitter: Jitter::none(),
        out_dir: None,
        resume: false,
        keep_checkpoints: 2,
        diagnose: Default::default(),
    };
    train::train(
        &mut net,
        digits_like(40, 5),
        None::<Images>,
        &Normalization::None,
        &opts,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(tensors_of(&net, &frozen), before, "frozen tensors changed");
    for ((name, a), (_, b)) in tensors_of(&net, &trained).iter().zip(&others) {
        assert_ne!(a, b, "{name} did not train");
    }
}

#[test]
fn backward_stops_above_the_frozen_layers() {
    let mut net = Network::from_desc(&zoo::get("lenet").unwrap(), 1).unwrap();
    net.freeze_through("pool2").unwrap();
    let x = random(&[3, 1, 28, 28], 2);
    let y = Tensor::from_vec(&[3, 1, 1, 1], vec![1.0, 4.0, 7.0]).unwrap();
    net.forward(&[("input", &x), ("label", &y)], Mode::Train)
        .unwrap();
    let mut reached = Vec::new();
    net.backward_observed(1.0, &mut |step| {
        reached.push((step.name.to_string(), step.dy.is_some()));
        Ok(())
    })
    .unwrap();
    let reached: Vec<(&str, bool)> = reached.iter().map(|(n, r)| (n.as_str(), *r)).collect();
    // conv3 gets its weight gradient from what reaches its output, and passes nothing
    // down: pool2 and below see no derivative at all.
    let want = [
        ("top5err", false),
        ("top1err", false),
        ("loss", true),
        ("conv4", true),
        ("relu1", true),
        ("conv3", true),
        ("pool2", false),
        ("conv2", false),
        ("pool1", false),
        ("conv1", false),
    ];
    assert_eq!(reached, want);
    assert!(net
        .params()
        .all(|p| !p.name.starts_with("conv1") && !p.name.starts_with("conv2")));
    let g = &net.param("conv3.weight").unwrap().grad;
    assert!(g.all_finite() && g.max_abs() > 0.0);
    assert!(
        net.param("conv2.weight").unwrap().grad.is_empty(),
        "no gradient made"
    );
}

#[test]
fn freezing_a_graph_layer_freezes_what_it_depends_on() {
    let mut net = Network::new(&zoo::get("resnet18").unwrap()).unwrap();
    let frozen = net.freeze_through("layer2.0.downsample.1").unwrap();
    assert!(frozen.contains(&"layer1.1.conv2".to_string()));
    assert!(frozen.contains(&"layer2.0.downsample.0".to_string()));
    // The block's other branch comes earlier in execution order but does not feed it.
    assert!(!frozen.contains(&"layer2.0.conv1".to_string()));
    assert!(net.params().any(|p| p.name == "layer2.0.conv1.weight"));
}

#[test]
fn freezing_an_unknown_layer_or_everything_is_an_error() {
    let mut net = Network::new(&zoo::get("lenet").unwrap()).unwrap();
    let e = net.freeze_through("conv9").unwrap_err().to_string();
    assert!(
        e.contains("no layer 'conv9'") && e.contains("conv1, pool1"),
        "{e}"
    );
    let e = net.freeze_through("loss").unwrap_err().to_string();
    assert!(e.contains("nothing"), "{e}");
    assert!(
        net.layers().iter().all(|l| !l.is_frozen()),
        "a failed freeze changes nothing"
    );
}
