//! MatConvNet's DagNN, as `saveobj` stores it: `vars`, `params` (name, value) and
//! `layers` (name, type such as 'dagnn.Conv', inputs, outputs, params, block).

use super::{bnorm_layer, conv_layer, lrn_layer, name_outputs, nums, pad4, pool_layer, two, Value};
use crate::build::{Builder, Msg, INPUT};
use convnet::blocks::loss::LossKind;
use convnet::net::LayerKind;
use std::collections::{BTreeMap, HashMap};

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Cell { items, .. }) => items
            .iter()
            .filter_map(|s| s.text().map(str::to_string))
            .collect(),
        Some(Value::Char { text, .. }) if !text.is_empty() => vec![text.clone()],
        _ => Vec::new(),
    }
}

struct DagLayer {
    name: String,
    ty: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    params: Vec<String>,
    block: Value,
}

/// Appends the layers of a DagNN to `b`, in an order where each layer's inputs come
/// first.
pub fn convert(
    b: &mut Builder,
    layers: &Value,
    params: Option<&Value>,
    notes: &mut Vec<String>,
) -> Result<(), Msg> {
    let mut values: HashMap<String, Value> = HashMap::new();
    for p in params.map(Value::elements).unwrap_or_default() {
        let name = p
            .field("name")
            .and_then(Value::text)
            .ok_or("a param has no name")?;
        let value = p
            .field("value")
            .ok_or_else(|| format!("param '{name}' has no value"))?;
        values.insert(name.to_string(), value.clone());
    }
    let mut list = Vec::new();
    for (k, l) in layers.elements().iter().enumerate() {
        let get = |f: &str| l.field(f);
        let name = get("name").and_then(Value::text).unwrap_or("").to_string();
        let ty = get("type")
            .and_then(Value::text)
            .ok_or_else(|| format!("layer {} '{name}': no 'type' (is this a DagNN?)", k + 1))?
            .to_string();
        list.push(DagLayer {
            name: if name.is_empty() {
                format!("layer{}", k + 1)
            } else {
                name
            },
            ty,
            inputs: strings(get("inputs")),
            outputs: strings(get("outputs")),
            params: strings(get("params")),
            block: get("block").cloned().unwrap_or(Value::Other { class: 0 }),
        });
    }
    if list.is_empty() {
        return Err("'layers' holds no layers".into());
    }
    let produced: Vec<&String> = list.iter().flat_map(|l| &l.outputs).collect();
    let mut data: Vec<&String> = list
        .iter()
        .flat_map(|l| &l.inputs)
        .filter(|v| !produced.contains(v) && v.as_str() != "label")
        .collect();
    data.sort();
    data.dedup();
    let [input] = data[..] else {
        return Err(format!(
            "the network must have one data input besides 'label', it has {data:?}"
        ));
    };
    let mut uses: BTreeMap<&str, usize> = BTreeMap::new();
    for p in list.iter().flat_map(|l| &l.params) {
        *uses.entry(p).or_default() += 1;
    }
    // DagNN variable -> convnet variable.
    let mut var: HashMap<String, String> = HashMap::from([(input.clone(), INPUT.to_string())]);
    var.insert("label".into(), "label".into());
    let mut done = vec![false; list.len()];
    while let Some(k) =
        (0..list.len()).find(|&k| !done[k] && list[k].inputs.iter().all(|v| var.contains_key(v)))
    {
        done[k] = true;
        let l = &list[k];
        let at = |m: Msg| format!("layer '{}' ({}): {m}", l.name, l.ty);
        let inputs: Vec<String> = l.inputs.iter().map(|v| var[v].clone()).collect();
        let [out] = &l.outputs[..] else {
            return Err(at(format!(
                "{} outputs; convnet layers have one",
                l.outputs.len()
            )));
        };
        let param = |i: usize| -> Result<&Value, Msg> {
            let p = l
                .params
                .get(i)
                .ok_or_else(|| at(format!("parameter {} is missing", i + 1)))?;
            values
                .get(p)
                .ok_or_else(|| at(format!("parameter '{p}' is not in 'params'")))
        };
        let name = b.unique_name(&l.name, "layer");
        let first = inputs
            .first()
            .ok_or_else(|| at("it has no inputs".into()))?;
        let x = b.dims(first).map_err(at)?;
        let blk = |f: &str| l.block.field(f);
        let (kind, tensors) = match l.ty.as_str() {
            "dagnn.Conv" => {
                let (kind, t) = conv_layer(
                    param(0)?,
                    if l.params.len() > 1 {
                        Some(param(1)?)
                    } else {
                        None
                    },
                    x.c,
                    pad4(blk("pad")).map_err(at)?,
                    two(blk("stride"), "stride", 1).map_err(at)?,
                    two(blk("dilate"), "dilate", 1).map_err(at)?,
                )
                .map_err(at)?;
                (kind, t)
            }
            "dagnn.Pooling" => {
                let method = blk("method").and_then(Value::text).unwrap_or("max");
                let window = two(blk("poolSize"), "poolSize", 1).map_err(at)?;
                let stride = two(blk("stride"), "stride", 1).map_err(at)?;
                (
                    pool_layer(method, window, stride, pad4(blk("pad")).map_err(at)?)
                        .map_err(at)?,
                    vec![],
                )
            }
            "dagnn.ReLU" => {
                let leak = nums(blk("leak"), "leak", &[0.0]).map_err(at)?;
                (
                    LayerKind::Relu {
                        leak: leak.first().copied().unwrap_or(0.0),
                    },
                    vec![],
                )
            }
            "dagnn.Sigmoid" => (LayerKind::Sigmoid, vec![]),
            "dagnn.LRN" => (lrn_layer(blk("param")).map_err(at)?, vec![]),
            "dagnn.BatchNorm" => {
                let eps = nums(blk("epsilon"), "epsilon", &[1e-5]).map_err(at)?;
                let eps = eps.first().copied().unwrap_or(1e-5);
                let (kind, t) =
                    bnorm_layer(param(0)?, param(1)?, param(2)?, eps, x.c).map_err(at)?;
                if matches!(kind, LayerKind::BNorm { eps: e, .. } if e != eps) {
                    notes.push(format!(
                        "layer '{}': epsilon lowered (sigma^2 is small)",
                        l.name
                    ));
                }
                (kind, t)
            }
            "dagnn.Concat" => {
                let dim = nums(blk("dim"), "dim", &[3.0]).map_err(at)?;
                if dim.first() != Some(&3.0) {
                    return Err(at(format!(
                        "concatenation along dimension {dim:?}; convnet concatenates channels (3)"
                    )));
                }
                (LayerKind::Concat, vec![])
            }
            "dagnn.Sum" => (LayerKind::Sum, vec![]),
            "dagnn.SoftMax" => (LayerKind::Softmax, vec![]),
            "dagnn.DropOut" => {
                let rate = nums(blk("rate"), "rate", &[0.5]).map_err(at)?;
                (
                    LayerKind::Dropout {
                        rate: rate.first().copied().unwrap_or(0.5),
                    },
                    vec![],
                )
            }
            "dagnn.Loss" => {
                let kind = match blk("loss").and_then(Value::text).unwrap_or("softmaxlog") {
                    "softmaxlog" => LossKind::SoftmaxLog,
                    "logistic" => LossKind::Logistic,
                    "hinge" => LossKind::Hinge,
                    "mhinge" => LossKind::MultiHinge,
                    "classerror" => LossKind::ClassError,
                    "topkerror" => LossKind::TopKError(5),
                    other => return Err(at(format!("loss '{other}' is not supported"))),
                };
                (LayerKind::Loss(kind), vec![])
            }
            other => {
                return Err(at(format!(
                    "block type '{other}' is not supported (convnet reads dagnn.Conv, Pooling, \
                     ReLU, Sigmoid, LRN, BatchNorm, Concat, Sum, SoftMax, DropOut, Loss)"
                )))
            }
        };
        // Parameters used by several layers keep their DagNN names (shared).
        let shared = if matches!(kind, LayerKind::Conv { .. })
            && l.params
                .iter()
                .any(|p| uses.get(p.as_str()).copied().unwrap_or(0) > 1)
        {
            l.params.clone()
        } else {
            Vec::new()
        };
        b.push_shared(&name, kind, inputs, tensors, shared)
            .map_err(at)?;
        var.insert(out.clone(), name);
    }
    if let Some(k) = done.iter().position(|d| !d) {
        let l = &list[k];
        return Err(format!(
            "layer '{}' ({}) reads {:?}, which no layer computes (or the layers form a cycle)",
            l.name, l.ty, l.inputs
        ));
    }
    name_outputs(b)
}
