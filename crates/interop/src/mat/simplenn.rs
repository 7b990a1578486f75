//! MatConvNet's SimpleNN: `layers`, a cell array of structs run in order.

use super::{bnorm_layer, conv_layer, lrn_layer, name_outputs, nums, pad4, pool_layer, two, Value};
use crate::build::{Builder, Msg, INPUT};
use convnet::blocks::loss::LossKind;
use convnet::net::LayerKind;

/// Appends the layers of a SimpleNN `layers` cell (or struct array) to `b`.
pub fn convert(b: &mut Builder, layers: &Value, notes: &mut Vec<String>) -> Result<(), Msg> {
    let list = layers.elements();
    if list.is_empty() {
        return Err(format!(
            "'layers' is {}, not a cell array of layer structs",
            layers.kind()
        ));
    }
    let mut prev = INPUT.to_string();
    for (k, l) in list.iter().enumerate() {
        let ty = l
            .field("type")
            .and_then(Value::text)
            .ok_or_else(|| format!("layer {}: no 'type' (is this a network?)", k + 1))?;
        let given = l.field("name").and_then(Value::text).unwrap_or("");
        let name = b.unique_name(given, &format!("{ty}{}", k + 1));
        let at = |m: Msg| format!("layer {} '{name}' ({ty}): {m}", k + 1);
        let (kind, params, extra_inputs) = layer(b, l, ty, &prev, notes).map_err(at)?;
        let mut inputs = vec![prev.clone()];
        inputs.extend(extra_inputs);
        b.push(&name, kind, inputs, params).map_err(at)?;
        prev = name;
    }
    name_outputs(b)
}

type Converted = (LayerKind, Vec<convnet::Tensor>, Vec<String>);

fn layer(
    b: &Builder,
    l: &Value,
    ty: &str,
    prev: &str,
    notes: &mut Vec<String>,
) -> Result<Converted, Msg> {
    let x = b.dims(prev)?;
    let plain = |k: LayerKind| Ok((k, vec![], vec![]));
    match ty {
        "conv" => {
            let w = l.field("weights");
            let item = |i: usize, old: &str| match w {
                Some(Value::Cell { items, .. }) => items.get(i),
                _ => l.field(old),
            };
            let filters = item(0, "filters").ok_or("no filters ('weights' or 'filters')")?;
            let (kind, params) = conv_layer(
                filters,
                item(1, "biases"),
                x.c,
                pad4(l.field("pad"))?,
                two(l.field("stride"), "stride", 1)?,
                two(l.field("dilate"), "dilate", 1)?,
            )?;
            Ok((kind, params, vec![]))
        }
        "pool" => {
            let method = l.field("method").and_then(Value::text).unwrap_or("max");
            let window = two(l.field("pool"), "pool", 0)?;
            if window.contains(&0) {
                return Err("'pool' (the window size) is missing".into());
            }
            plain(pool_layer(
                method,
                window,
                two(l.field("stride"), "stride", 1)?,
                pad4(l.field("pad"))?,
            )?)
        }
        "relu" => {
            let leak = nums(l.field("leak"), "leak", &[0.0])?;
            plain(LayerKind::Relu {
                leak: leak.first().copied().unwrap_or(0.0),
            })
        }
        "sigmoid" => plain(LayerKind::Sigmoid),
        "lrn" | "normalize" => plain(lrn_layer(l.field("param"))?),
        "softmax" => plain(LayerKind::Softmax),
        "dropout" => {
            let rate = nums(l.field("rate"), "rate", &[0.5])?;
            plain(LayerKind::Dropout {
                rate: rate.first().copied().unwrap_or(0.5),
            })
        }
        "bnorm" => {
            let w = l.field("weights");
            let items = match w {
                Some(Value::Cell { items, .. }) if items.len() == 3 => items,
                _ => return Err("'weights' must hold {multipliers, biases, moments}".into()),
            };
            let eps = nums(l.field("epsilon"), "epsilon", &[1e-5])?;
            let eps = eps.first().copied().unwrap_or(1e-5);
            let (kind, params) = bnorm_layer(&items[0], &items[1], &items[2], eps, x.c)?;
            if let LayerKind::BNorm { eps: e, .. } = kind {
                if e != eps {
                    notes.push(format!(
                        "a batch normalisation's epsilon became {e} (sigma^2 is small)"
                    ));
                }
            }
            Ok((kind, params, vec![]))
        }
        "softmaxloss" => Ok((
            LayerKind::Loss(LossKind::SoftmaxLog),
            vec![],
            vec!["label".into()],
        )),
        "loss" => {
            let kind = match l
                .field("loss")
                .and_then(Value::text)
                .unwrap_or("softmaxlog")
            {
                "softmaxlog" => LossKind::SoftmaxLog,
                "logistic" => LossKind::Logistic,
                "hinge" => LossKind::Hinge,
                "mhinge" => LossKind::MultiHinge,
                "classerror" => LossKind::ClassError,
                other => return Err(format!("loss '{other}' is not supported")),
            };
            Ok((LayerKind::Loss(kind), vec![], vec!["label".into()]))
        }
        other => Err(format!(
            "layer type '{other}' is not supported (convnet reads conv, pool, relu, sigmoid, \
             lrn, softmax, softmaxloss, loss, dropout, bnorm)"
        )),
    }
}
