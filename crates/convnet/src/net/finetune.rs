//! Starting a network from another model's weights: fitting its classifier to a data
//! set's classes, loading the layers whose names and shapes match, scaling the learning
//! rate of what was loaded. Freezing is [`Network::freeze_through`].

use std::collections::BTreeMap;

use super::desc::{LayerDesc, NetDesc};
use super::graph::Network;
use super::layer::LayerKind;
use crate::blocks::loss::LossKind;
use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Tensor};

/// The name of the layer that writes `prediction` (the classifier), if any.
pub fn classifier(desc: &NetDesc) -> Option<&str> {
    desc.layers
        .iter()
        .find(|l| l.outputs.iter().any(|o| o == "prediction"))
        .map(|l| l.name.as_str())
}

/// Gives `desc` the data's `classes`; when its classifier (the convolution writing
/// `prediction`) scores another number of classes, it is re-made with one output per
/// class. Returns the classifier's name when its size changed; fails when the
/// classifier is not a convolution.
pub fn fit_classes(desc: &mut NetDesc, classes: &[String]) -> Result<Option<String>> {
    desc.classes = classes.to_vec();
    let Some(l) = desc
        .layers
        .iter_mut()
        .find(|l| l.outputs.iter().any(|o| o == "prediction"))
    else {
        return Err(Error::file(
            &desc.origin,
            None,
            "no layer writes 'prediction', so there is no classifier to fit to the data's classes",
        ));
    };
    match &mut l.kind {
        LayerKind::Conv { out, .. } if *out == classes.len() => Ok(None),
        LayerKind::Conv { out, .. } => {
            *out = classes.len();
            Ok(Some(l.name.clone()))
        }
        other => Err(Error::layer(
            l.name.clone(),
            format!(
                "the classifier is a {} layer; only a convolution can be re-made for {} classes",
                other.type_name(),
                classes.len()
            ),
        )),
    }
}

/// Makes `desc` trainable when it is a deploy form (an imported or deployed model): a
/// softmax log-loss on `prediction` and `label` is added when no loss is there. Returns
/// whether one was added.
pub fn ensure_loss(desc: &mut NetDesc) -> Result<bool> {
    if desc.layers.iter().any(|l| l.kind.is_objective()) {
        return Ok(false);
    }
    if classifier(desc).is_none() {
        return Err(Error::file(
            &desc.origin,
            None,
            "the network has no loss and no layer writes 'prediction', so there is nothing to train it against",
        ));
    }
    let taken = |n: &str| desc.layers.iter().any(|l| l.name == n);
    let name = ["loss", "loss_train"]
        .into_iter()
        .find(|n| !taken(n))
        .unwrap_or("objective_loss");
    let mut loss = LayerDesc::new(name, LayerKind::Loss(LossKind::SoftmaxLog));
    loss.inputs = vec!["prediction".into(), "label".into()];
    loss.outputs = vec!["objective".into()];
    desc.layers.push(loss);
    Ok(true)
}

/// What [`load_matching`] did, per layer with parameters, in execution order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loaded {
    pub loaded: Vec<String>,
    /// Layers left as initialised, each with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Copies into `net` the tensors of `model` (a model file's tensors) layer by layer: a
/// layer is loaded when every one of its parameters and buffers is in `model` under the
/// same name with the same shape, and left as it is otherwise, or when it is named in
/// `remake`. Fails, changing nothing, when no layer at all can be loaded.
pub fn load_matching(
    net: &mut Network,
    model: &BTreeMap<String, Tensor>,
    remake: &[String],
) -> Result<Loaded> {
    let mut plan: Vec<(String, std::result::Result<Vec<String>, String>)> = Vec::new();
    for layer in net.layers().iter().filter(|l| !l.params.is_empty()) {
        if remake.contains(&layer.name) {
            plan.push((
                layer.name.clone(),
                Err("re-made for the data's classes".into()),
            ));
            continue;
        }
        let mut names = Vec::new();
        let mut why = None;
        for (name, value) in net.named_tensors() {
            if net.param(name).is_none_or(|p| p.layer != layer.name) {
                continue;
            }
            match model.get(name) {
                None => why = why.or(Some(format!("the model has no '{name}'"))),
                Some(t) if t.shape() != value.shape() => {
                    why = why.or(Some(format!(
                        "'{name}' is {} here, {} in the model",
                        fmt_shape(value.shape()),
                        fmt_shape(t.shape())
                    )))
                }
                Some(_) => names.push(name.to_string()),
            }
        }
        plan.push((layer.name.clone(), why.map_or(Ok(names), Err)));
    }
    if !plan.iter().any(|(_, r)| r.is_ok()) {
        let ours: Vec<&str> = plan.iter().map(|(l, _)| l.as_str()).collect();
        let theirs: Vec<&str> = model.keys().map(String::as_str).take(8).collect();
        return Err(Error::Invalid(format!(
            "no layer of network '{}' ({}) matches the model's tensors by name and shape (the model has {}{})",
            net.desc().name,
            ours.join(", "),
            theirs.join(", "),
            if model.len() > theirs.len() { ", ..." } else { "" }
        )));
    }
    let mut out = Loaded::default();
    for (layer, r) in plan {
        match r {
            Ok(names) => {
                for n in names {
                    net.set_tensor(&n, model[&n].clone())?;
                }
                out.loaded.push(layer);
            }
            Err(why) => out.skipped.push((layer, why)),
        }
    }
    Ok(out)
}

/// Multiplies the learning rate of the trained parameters of `layers` by `mult`.
pub fn scale_lr(net: &mut Network, layers: &[String], mult: f32) -> Result<()> {
    if !(mult.is_finite() && mult >= 0.0) {
        return Err(Error::Invalid(format!(
            "learning-rate multiplier must be a finite number >= 0, got {mult}"
        )));
    }
    for p in net.params_mut().filter(|p| layers.contains(&p.layer)) {
        p.lr_mult *= mult;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::zoo;

    #[test]
    fn finetune_fit_classes_remakes_the_classifier_only_when_the_count_differs() {
        let mut d = zoo::get("lenet").unwrap();
        let three: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(fit_classes(&mut d, &three).unwrap(), Some("conv4".into()));
        assert_eq!(d.classes, three);
        let net = Network::new(&d).unwrap();
        assert_eq!(
            net.param("conv4.weight").unwrap().value.shape(),
            &[3, 500, 1, 1]
        );
        assert_eq!(fit_classes(&mut d, &three).unwrap(), None);
        d.layers.retain(|l| l.name != "conv4");
        assert!(fit_classes(&mut d, &three).is_err());
    }

    #[test]
    fn finetune_a_deploy_form_gets_its_loss_back() {
        let train = zoo::get("vgg16").unwrap();
        let mut d = zoo::deploy(&train);
        assert!(ensure_loss(&mut d).unwrap());
        assert!(!ensure_loss(&mut d).unwrap(), "once");
        let loss = d.layers.last().unwrap();
        assert_eq!(
            (loss.inputs.as_slice(), loss.outputs.as_slice()),
            (
                &["prediction".to_string(), "label".into()][..],
                &["objective".to_string()][..]
            )
        );
        let mut small = zoo::deploy(&zoo::get("lenet").unwrap());
        ensure_loss(&mut small).unwrap();
        let mut net = Network::from_desc(&small, 0).unwrap();
        let x = crate::gradcheck::random(&[2, 1, 28, 28], 1);
        let y = Tensor::from_vec(&[2, 1, 1, 1], vec![1.0, 2.0]).unwrap();
        net.forward(&[("input", &x), ("label", &y)], crate::net::Mode::Train)
            .unwrap();
        assert!(net.objective().is_some(), "{}", small.to_toml());
        let mut none = zoo::deploy(&train);
        none.layers.retain(|l| l.name != "fc8" && l.name != "prob");
        assert!(ensure_loss(&mut none).is_err());
    }

    #[test]
    fn finetune_loads_matching_layers_and_names_the_others() {
        let a = Network::from_desc(&zoo::get("lenet").unwrap(), 1).unwrap();
        let model: BTreeMap<String, Tensor> = a
            .named_tensors()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        let mut d = zoo::get("lenet").unwrap();
        let three: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        fit_classes(&mut d, &three).unwrap();
        let mut b = Network::from_desc(&d, 2).unwrap();
        let before = b.param("conv4.weight").unwrap().value.clone();
        let r = load_matching(&mut b, &model, &[]).unwrap();
        assert_eq!(r.loaded, ["conv1", "conv2", "conv3"]);
        assert_eq!(r.skipped.len(), 1);
        assert!(r.skipped[0].1.contains("3x500x1x1 here"), "{:?}", r.skipped);
        assert_eq!(
            b.param("conv2.weight").unwrap().value,
            a.param("conv2.weight").unwrap().value
        );
        assert_eq!(b.param("conv4.weight").unwrap().value, before);
        let r = load_matching(&mut b, &model, &["conv1".into()]).unwrap();
        assert_eq!(r.skipped[0].0, "conv1");

        let mut other = Network::from_desc(&zoo::get("cifar").unwrap(), 0).unwrap();
        let kept = other.param("conv1.weight").unwrap().value.clone();
        let e = load_matching(&mut other, &model, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no layer of network 'cifar'"), "{e}");
        assert_eq!(other.param("conv1.weight").unwrap().value, kept);

        scale_lr(&mut b, &["conv2".into()], 0.1).unwrap();
        assert_eq!(b.param("conv2.bias").unwrap().lr_mult, 0.1);
        assert_eq!(b.param("conv3.bias").unwrap().lr_mult, 1.0);
        assert!(scale_lr(&mut b, &[], f32::NAN).is_err());
    }
}
