//! The test-mode and deployment forms of a network.
//!
//! The *test form* is what a forward pass in test mode computes towards the output:
//! losses, metrics and dropout layers removed (dropout is the identity in test mode).
//! Exporters write it, and `convnet run` reads its last output.
//!
//! The *deploy form* is the test form with each batch normalisation folded into the
//! convolution before it, `w' = w * s`, `b' = (b - mean) * s + beta` with
//! `s = gain / sqrt(var + eps)` per output channel (exact up to rounding), and a
//! softmax at the end of a classifier. It computes the same outputs as the test-mode
//! forward of the original, with fewer layers and less memory traffic.

use super::desc::{LayerDesc, NetDesc};
use super::graph::Network;
use super::layer::LayerKind;
use crate::blocks::loss::LossKind;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// What [`deploy`] changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeployReport {
    /// (batch normalisation, convolution it was folded into).
    pub folded: Vec<(String, String)>,
    /// Batch normalisations left as they are, with the reason.
    pub kept: Vec<(String, String)>,
    /// Layers removed: losses, metrics, dropout.
    pub dropped: Vec<String>,
    /// The softmax layer appended, if one was.
    pub softmax_added: Option<String>,
}

/// `desc` without losses, metrics and dropout (their consumers rewired to the
/// dropout's input), and the names of the removed layers.
pub fn test_form(desc: &NetDesc) -> (NetDesc, Vec<String>) {
    let mut d = desc.clone();
    let mut dropped = Vec::new();
    let mut k = 0;
    while k < d.layers.len() {
        match d.layers[k].kind {
            LayerKind::Loss(_) => dropped.push(d.layers.remove(k).name),
            LayerKind::Dropout { .. } => dropped.push(remove_passthrough(&mut d, k).name),
            _ => k += 1,
        }
    }
    (d, dropped)
}

/// Removes layer `k` (one input `a`, output `b`), which passes its input through:
/// the layer producing `a` takes over the name `b` when nothing else reads `a`
/// (so names such as `prediction` survive), else every reader of `b` reads `a`.
fn remove_passthrough(d: &mut NetDesc, k: usize) -> LayerDesc {
    let l = d.layers.remove(k);
    let (Some(a), Some(b)) = (l.inputs.first(), l.outputs.first()) else {
        return l;
    };
    let producer = d.layers.iter().position(|p| p.outputs.contains(a));
    let other_readers = d.layers.iter().any(|p| p.inputs.contains(a));
    match producer {
        Some(p) if !other_readers => d.layers[p].outputs = vec![b.clone()],
        _ => rename_inputs(d, b, a),
    }
    l
}

fn rename_inputs(d: &mut NetDesc, from: &str, to: &str) {
    for l in &mut d.layers {
        for v in &mut l.inputs {
            if v == from {
                *v = to.to_string();
            }
        }
    }
}

/// The variable that the test-mode forward ends with: the output of the last layer
/// in execution order that is not a loss or metric.
pub fn last_output(net: &Network) -> Option<&str> {
    net.layers()
        .iter()
        .rev()
        .find(|l| !matches!(l.kind, LayerKind::Loss(_)))
        .map(|l| l.output.as_str())
}

/// The deploy form of `net` (see the module documentation) with its weights.
///
/// A batch normalisation is folded when it reads a convolution's output that nothing
/// else reads and whose parameters no other layer shares. A softmax is appended when
/// the network was trained with the softmax log-loss, or ends in `prediction` (class
/// scores by convention), and does not end in a softmax already.
pub fn deploy(net: &Network) -> Result<(Network, DeployReport)> {
    let original = net.desc();
    let softmax_loss = original
        .layers
        .iter()
        .any(|l| l.kind == LayerKind::Loss(LossKind::SoftmaxLog));
    let (mut d, dropped) = test_form(original);
    let mut report = DeployReport {
        dropped,
        ..DeployReport::default()
    };
    let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut k = 0;
    while k < d.layers.len() {
        if !matches!(d.layers[k].kind, LayerKind::BNorm { .. }) {
            k += 1;
            continue;
        }
        match foldable(&d, k) {
            Ok(p) => {
                fold(net, &mut d, p, k, &mut tensors)?;
                let conv = d.layers[p].name.clone();
                report.folded.push((d.layers.remove(k).name, conv));
            }
            Err(why) => {
                report.kept.push((d.layers[k].name.clone(), why));
                k += 1;
            }
        }
    }
    let probe = Network::new(&d)?;
    let out = last_output(&probe).map(str::to_string);
    let ends_in_softmax = probe
        .layers()
        .iter()
        .rev()
        .find(|l| !matches!(l.kind, LayerKind::Loss(_)))
        .is_some_and(|l| l.kind == LayerKind::Softmax);
    if let Some(out) = out.filter(|o| !ends_in_softmax && (softmax_loss || o == "prediction")) {
        let taken = |n: &str| {
            d.layers
                .iter()
                .any(|l| l.name == n || l.outputs.iter().any(|o| o == n))
        };
        let name = ["prob", "prob_deploy"]
            .into_iter()
            .find(|n| !taken(n))
            .unwrap_or("softmax_deploy");
        let mut l = LayerDesc::new(name, LayerKind::Softmax);
        l.inputs = vec![out];
        l.outputs = vec![name.to_string()];
        d.layers.push(l);
        report.softmax_added = Some(name.to_string());
    }
    let mut deployed = Network::new(&d)?;
    let names: Vec<String> = deployed
        .named_tensors()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    for name in names {
        let value = match tensors.remove(&name) {
            Some(t) => t,
            None => net
                .param(&name)
                .map(|p| p.value.clone())
                .ok_or_else(|| Error::Invalid(format!("deploy: tensor '{name}' is missing")))?,
        };
        deployed.set_tensor(&name, value)?;
    }
    Ok((deployed, report))
}

/// The index of the convolution that batch normalisation `k` can be folded into, or
/// why it cannot.
fn foldable(d: &NetDesc, k: usize) -> std::result::Result<usize, String> {
    let bn = &d.layers[k];
    let [v] = &bn.inputs[..] else {
        return Err("it has more than one input".into());
    };
    let Some(p) = d.layers.iter().position(|l| l.outputs.contains(v)) else {
        return Err(format!("its input '{v}' is a network input"));
    };
    let conv = &d.layers[p];
    if !matches!(conv.kind, LayerKind::Conv { .. }) {
        return Err(format!(
            "its input comes from layer '{}' ({}), not a convolution",
            conv.name,
            conv.kind.type_name()
        ));
    }
    let readers = d.layers.iter().filter(|l| l.inputs.contains(v)).count();
    if readers > 1 {
        return Err(format!("'{v}' is also read by other layers"));
    }
    if !conv.params.is_empty() {
        return Err(format!(
            "convolution '{}' names its parameters (they may be shared)",
            conv.name
        ));
    }
    Ok(p)
}

/// Folds batch normalisation `k` into convolution `p`: new weights into `tensors`,
/// the convolution gains a bias and takes over the normalisation's output.
fn fold(
    net: &Network,
    d: &mut NetDesc,
    p: usize,
    k: usize,
    tensors: &mut BTreeMap<String, Tensor>,
) -> Result<()> {
    let (bn, conv) = (&d.layers[k], &d.layers[p]);
    let LayerKind::BNorm { eps, .. } = bn.kind else {
        return Err(Error::layer(bn.name.clone(), "not a batch normalisation"));
    };
    let LayerKind::Conv { bias: had_bias, .. } = conv.kind else {
        return Err(Error::layer(conv.name.clone(), "not a convolution"));
    };
    let get = |layer: &str, param: &str| -> Result<Tensor> {
        let name = format!("{layer}.{param}");
        tensors
            .get(&name)
            .cloned()
            .or_else(|| net.param(&name).map(|p| p.value.clone()))
            .ok_or_else(|| Error::layer(layer.to_string(), format!("tensor '{name}' is missing")))
    };
    let mut w = get(&conv.name, "weight")?;
    let out = w.shape()[0];
    let b = if had_bias {
        get(&conv.name, "bias")?.into_vec()
    } else {
        vec![0.0; out]
    };
    let (gain, beta) = (get(&bn.name, "weight")?, get(&bn.name, "bias")?);
    let (mean, var) = (
        get(&bn.name, "running_mean")?,
        get(&bn.name, "running_var")?,
    );
    if [gain.len(), beta.len(), mean.len(), var.len()] != [out; 4] {
        return Err(Error::layer(
            bn.name.clone(),
            format!(
                "has not one value per channel of the {out} filters of '{}'",
                conv.name
            ),
        ));
    }
    let scale: Vec<f64> = (0..out)
        .map(|c| gain.data()[c] as f64 / (var.data()[c] as f64 + eps as f64).sqrt())
        .collect();
    let per = w.len() / out.max(1);
    for (c, filter) in w.data_mut().chunks_mut(per.max(1)).enumerate() {
        for v in filter {
            *v = (*v as f64 * scale[c]) as f32;
        }
    }
    let bias: Vec<f32> = (0..out)
        .map(|c| ((b[c] as f64 - mean.data()[c] as f64) * scale[c] + beta.data()[c] as f64) as f32)
        .collect();
    let conv_name = conv.name.clone();
    let bn_out = bn.outputs.clone();
    tensors.insert(format!("{conv_name}.weight"), w);
    tensors.insert(format!("{conv_name}.bias"), Tensor::from_vec(&[out], bias)?);
    let conv = &mut d.layers[p];
    if let LayerKind::Conv { bias, .. } = &mut conv.kind {
        *bias = true;
    }
    for mult in [&mut conv.lr_mult, &mut conv.decay_mult] {
        if mult.len() == 1 {
            mult.push(1.0);
        }
    }
    conv.outputs = bn_out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::random;
    use crate::net::{zoo, Mode};

    fn with_random_weights(desc: &NetDesc, seed: u64) -> Network {
        let mut net = Network::from_desc(desc, seed).unwrap();
        let names: Vec<String> = net
            .named_tensors()
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        for (k, name) in names.iter().enumerate() {
            let shape = net.param(name).unwrap().value.shape().to_vec();
            let mut t = random(&shape, seed + k as u64);
            if name.ends_with("running_var") || name.ends_with(".weight") && shape.len() == 1 {
                t.data_mut().iter_mut().for_each(|v| *v = 0.5 + v.abs());
            }
            net.set_tensor(name, t).unwrap();
        }
        net
    }

    fn softmax_of(t: &Tensor) -> Tensor {
        crate::blocks::softmax::softmax_forward(t).unwrap()
    }

    fn assert_close(a: &Tensor, b: &Tensor, rel: f32) {
        assert_eq!(a.shape(), b.shape());
        let scale = b.max_abs().max(1e-6);
        for (x, y) in a.data().iter().zip(b.data()) {
            assert!((x - y).abs() <= rel * scale, "{x} vs {y} (scale {scale})");
        }
    }

    #[test]
    fn lenet_bn_folds_every_normalisation_and_keeps_outputs() {
        let desc = zoo::get("lenet-bn").unwrap();
        let mut net = with_random_weights(&desc, 3);
        let (mut dep, report) = deploy(&net).unwrap();
        assert_eq!(report.folded.len(), 3, "{report:?}");
        assert!(report.kept.is_empty(), "{report:?}");
        assert!(report.dropped.contains(&"loss".to_string()), "{report:?}");
        assert_eq!(report.softmax_added.as_deref(), Some("prob"));
        // Metrics come back when the network is built (they need a label to run).
        assert!(!dep
            .layers()
            .iter()
            .any(|l| matches!(l.kind, LayerKind::BNorm { .. }) || l.kind.is_objective()));
        let x = random(&[3, 1, 28, 28], 9);
        net.forward(&[("input", &x)], Mode::Test).unwrap();
        dep.forward(&[("input", &x)], Mode::Test).unwrap();
        assert_close(dep.prediction().unwrap(), net.prediction().unwrap(), 1e-5);
        let want = softmax_of(net.prediction().unwrap());
        assert_close(dep.var(last_output(&dep).unwrap()).unwrap(), &want, 1e-5);
    }

    #[test]
    fn normalisation_read_twice_or_after_a_pool_is_kept() {
        let text = r#"
            name = "t"
            input = [6, 6, 2]
            classes = 3
            [[layer]]
            name = "c1"
            type = "conv"
            size = [3, 3, 2, 4]
            pad = 1
            [[layer]]
            name = "bn1"
            type = "bnorm"
            [[layer]]
            name = "side"
            type = "relu"
            inputs = ["c1"]
            [[layer]]
            name = "p"
            type = "pool"
            kernel = 2
            stride = 2
            inputs = ["bn1"]
            [[layer]]
            name = "bn2"
            type = "bnorm"
            [[layer]]
            name = "drop"
            type = "dropout"
            [[layer]]
            name = "fc"
            type = "fc"
            out = 3
            outputs = ["prediction"]
            [[layer]]
            name = "loss"
            type = "softmaxlog"
            inputs = ["prediction", "label"]
        "#;
        let desc = NetDesc::parse(text, "t").unwrap();
        let mut net = with_random_weights(&desc, 5);
        let (mut dep, report) = deploy(&net).unwrap();
        assert!(report.folded.is_empty(), "{report:?}");
        assert_eq!(report.kept.len(), 2, "{report:?}");
        assert!(report.dropped.contains(&"drop".to_string()));
        let x = random(&[2, 2, 6, 6], 1);
        net.forward(&[("input", &x)], Mode::Test).unwrap();
        dep.forward(&[("input", &x)], Mode::Test).unwrap();
        assert_close(dep.prediction().unwrap(), net.prediction().unwrap(), 1e-6);
    }

    #[test]
    fn a_network_already_ending_in_softmax_gets_no_second_one() {
        let text = r#"
            name = "t"
            input = [4, 4, 1]
            classes = 2
            [[layer]]
            name = "c"
            type = "conv"
            size = [4, 4, 1, 2]
            bias = false
            outputs = ["prediction"]
            [[layer]]
            name = "prob"
            type = "softmax"
        "#;
        let desc = NetDesc::parse(text, "t").unwrap();
        let net = with_random_weights(&desc, 2);
        let (dep, report) = deploy(&net).unwrap();
        assert_eq!(report.softmax_added, None);
        assert_eq!(last_output(&dep), Some("prob"));
        let (form, dropped) = test_form(&desc);
        assert!(dropped.is_empty());
        assert_eq!(form.layers.len(), 2);
    }
}
