//! convnet networks to ONNX (opset 17): the test-mode graph (no losses, metrics or
//! dropout; batch normalisation with its running moments), one node per layer.
//! Fully connected layers become convolutions whose kernel covers the input, so
//! every value keeps convnet's (N, C, H, W) shape; the batch size is left free.

use super::proto::*;
use super::tensor::{float_tensor, int_tensor};
use super::{META_CLASSES, META_DESCRIPTIONS, META_INPUT, META_NORMALIZATION};
use crate::build::{out_dims, Msg};
use crate::{Error, Result};
use convnet::blocks::pool::PoolMethod;
use convnet::blocks::Pad;
use convnet::net::{deploy, LayerKind, Network};
use convnet::Dims4;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The opset written.
pub const OPSET: i64 = 17;
/// IR version 8 goes with opset 17.
const IR_VERSION: i64 = 8;

/// What the model file says besides the network, kept in `metadata_props`.
#[derive(Clone, Debug, Default)]
pub struct ExportMeta {
    pub classes: Vec<String>,
    /// JSON, as in the model file ("" for none).
    pub normalization: String,
    pub input: String,
    pub class_descriptions: Vec<String>,
}

/// Writes `net` as an ONNX model to `path` (atomically).
pub fn export(net: &Network, meta: &ExportMeta, path: &Path) -> Result<ModelProto> {
    let model = to_model(net, meta).map_err(|m| Error::file(path, m))?;
    convnet::atomic::write(path, &model.encode_to_vec())?;
    Ok(model)
}

pub(super) fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::INT,
        i,
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::FLOAT,
        f,
        ..Default::default()
    }
}

pub(super) fn attr_ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::INTS,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

/// convnet's per-side padding as ONNX `pads` [top, left, bottom, right].
fn onnx_pads(p: Pad) -> AttributeProto {
    attr_ints("pads", &[p.top, p.left, p.bottom, p.right])
}

fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => DimValue::Value(*v as i64),
                None => DimValue::Param("N".into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
        doc_string: String::new(),
    }
}

/// The ONNX model of `net`'s test-mode graph.
pub fn to_model(net: &Network, meta: &ExportMeta) -> std::result::Result<ModelProto, Msg> {
    let (form, _) = deploy::test_form(net.desc());
    let kept: BTreeSet<&str> = form.layers.iter().map(|l| l.name.as_str()).collect();
    let wiring: BTreeMap<&str, (&[String], &str)> = form
        .layers
        .iter()
        .map(|l| (l.name.as_str(), (&l.inputs[..], l.outputs[0].as_str())))
        .collect();
    let [h, w, c] = net
        .input_size()
        .ok_or("the network declares no input size")?;
    let input = form
        .inputs
        .iter()
        .find(|i| i.name == "input")
        .or(form.inputs.first())
        .ok_or("the network has no input")?;
    let mut dims: BTreeMap<String, Dims4> = BTreeMap::new();
    dims.insert(input.name.clone(), Dims4::new(1, c, h, w));
    let names = net.named_tensors();
    let mut nodes = Vec::new();
    let mut inits: Vec<TensorProto> = Vec::new();
    let mut init_names = BTreeSet::new();
    let mut last = input.name.clone();
    // The original's execution order, restricted to the test form's layers, is an
    // order of the test form too (removed layers only passed values through).
    for layer in net
        .layers()
        .iter()
        .filter(|l| kept.contains(l.name.as_str()))
    {
        let (inputs, output) = wiring[layer.name.as_str()];
        let xs = inputs
            .iter()
            .map(|v| {
                dims.get(v)
                    .copied()
                    .ok_or_else(|| format!("layer '{}': input '{v}' has no value", layer.name))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let y = out_dims(&layer.kind, &xs).map_err(|e| format!("layer '{}': {e}", layer.name))?;
        let params: Vec<&str> = layer.params.iter().map(|&i| names[i].0).collect();
        for &p in &params {
            if init_names.insert(p.to_string()) {
                let t = names
                    .iter()
                    .find(|(n, _)| *n == p)
                    .map(|(_, t)| *t)
                    .ok_or("missing")?;
                inits.push(float_tensor(p, t.shape(), t.data()));
            }
        }
        let mut node = NodeProto {
            name: layer.name.clone(),
            input: inputs.to_vec(),
            output: vec![output.to_string()],
            ..Default::default()
        };
        let with_params = |node: &mut NodeProto, n: usize| {
            node.input
                .extend(params.iter().take(n).map(|p| p.to_string()))
        };
        let x = xs[0];
        match &layer.kind {
            LayerKind::Conv { kernel, opts, .. } => {
                let k = kernel.unwrap_or([x.h, x.w]);
                node.op_type = "Conv".into();
                with_params(&mut node, 2);
                node.attribute = vec![
                    attr_ints("kernel_shape", &k),
                    attr_ints("strides", &opts.stride),
                    attr_ints("dilations", &opts.dilation),
                    onnx_pads(opts.pad),
                    attr_int("group", opts.groups as i64),
                ];
            }
            LayerKind::ConvT { kernel, opts, .. } => {
                node.op_type = "ConvTranspose".into();
                with_params(&mut node, 2);
                node.attribute = vec![
                    attr_ints("kernel_shape", kernel),
                    attr_ints("strides", &opts.upsample),
                    onnx_pads(opts.crop),
                    attr_int("group", opts.groups as i64),
                ];
            }
            LayerKind::Pool(o) => {
                node.op_type = match o.method {
                    PoolMethod::Max => "MaxPool",
                    PoolMethod::Avg => "AveragePool",
                }
                .into();
                node.attribute = vec![
                    attr_ints("kernel_shape", &o.window),
                    attr_ints("strides", &o.stride),
                    onnx_pads(o.pad),
                ];
                if o.method == PoolMethod::Avg {
                    node.attribute
                        .push(attr_int("count_include_pad", o.count_pad as i64));
                }
            }
            LayerKind::Relu { leak } if *leak == 0.0 => node.op_type = "Relu".into(),
            LayerKind::Relu { leak } => {
                node.op_type = "LeakyRelu".into();
                node.attribute = vec![attr_float("alpha", *leak)];
            }
            LayerKind::Sigmoid => node.op_type = "Sigmoid".into(),
            LayerKind::Tanh => node.op_type = "Tanh".into(),
            LayerKind::Softmax | LayerKind::LogSoftmax => {
                node.op_type = if layer.kind == LayerKind::Softmax {
                    "Softmax"
                } else {
                    "LogSoftmax"
                }
                .into();
                node.attribute = vec![attr_int("axis", 1)];
            }
            LayerKind::BNorm { eps, momentum } => {
                node.op_type = "BatchNormalization".into();
                with_params(&mut node, 4);
                node.attribute = vec![
                    attr_float("epsilon", *eps),
                    attr_float("momentum", 1.0 - momentum),
                ];
            }
            LayerKind::Lrn(o) => {
                node.op_type = "LRN".into();
                node.attribute = vec![
                    attr_int("size", o.n as i64),
                    attr_float("alpha", o.alpha * o.n as f32),
                    attr_float("beta", o.beta),
                    attr_float("bias", o.kappa),
                ];
            }
            LayerKind::Concat => {
                node.op_type = "Concat".into();
                node.attribute = vec![attr_int("axis", 1)];
            }
            LayerKind::Sum => node.op_type = "Sum".into(),
            LayerKind::Crop(p) => {
                node.op_type = "Slice".into();
                let stem = &layer.name;
                let ends = [x.h - p.bottom, x.w - p.right].map(|v| v as i64);
                for (suffix, v) in [
                    ("starts", [p.top as i64, p.left as i64]),
                    ("ends", ends),
                    ("axes", [2, 3]),
                ] {
                    let name = format!("{stem}.{suffix}");
                    inits.push(int_tensor(&name, &v));
                    node.input.push(name);
                }
            }
            LayerKind::Dropout { .. } | LayerKind::Loss(_) => continue,
        }
        dims.insert(output.to_string(), y);
        last = output.to_string();
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err("the network has no layer to export".into());
    }
    let yd = dims[&last];
    let props = [
        (META_CLASSES, json(&meta.classes)?),
        (META_DESCRIPTIONS, json(&meta.class_descriptions)?),
        (META_NORMALIZATION, meta.normalization.clone()),
        (META_INPUT, meta.input.clone()),
    ];
    let metadata_props = props
        .into_iter()
        .filter(|(_, v)| !v.is_empty() && v != "[]")
        .map(|(k, v)| StringStringEntryProto {
            key: k.to_string(),
            value: v,
        })
        .collect();
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "convnet".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            node: nodes,
            name: net.desc().name.clone(),
            initializer: inits,
            input: vec![value_info(&input.name, &[None, Some(c), Some(h), Some(w)])],
            output: vec![value_info(
                &last,
                &[None, Some(yd.c), Some(yd.h), Some(yd.w)],
            )],
            ..Default::default()
        }),
        metadata_props,
        ..Default::default()
    })
}

fn json(v: &[String]) -> std::result::Result<String, Msg> {
    serde_json::to_string(v).map_err(|e| e.to_string())
}
