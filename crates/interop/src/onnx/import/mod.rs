//! ONNX graphs to convnet networks, converted once, node by node in the graph's
//! (topological) order.
//!
//! Every ONNX value is one of: an activation (a convnet variable, logically 4-D
//! (N, C, H, W) or, after Flatten, 2-D (N, C*H*W) while stored as (N, C, H, W): NCHW
//! flattening is exactly the order of a fully connected layer's weights
//! (out, C, H, W)), a constant (initializers, Constant nodes), or a zero-padded
//! activation waiting for the convolution or pooling it folds into.

mod activation;
mod add;
mod attrs;
mod conv;
mod pool;
mod shape;
mod values;

use super::proto::{DimValue, ModelProto, NodeProto};
use super::tensor::{self, Const};
use super::{META_CLASSES, META_DESCRIPTIONS, META_INPUT, META_NORMALIZATION};
use crate::build::{Builder, Msg, INPUT};
use crate::{class_names, Error, Format, ImportOptions, Imported};
use attrs::Attrs;
use convnet::blocks::Pad;
use convnet::data::normalize::Normalization;
use convnet::net::LayerKind;
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// The operators this importer converts.
pub const SUPPORTED: &str = "Conv, ConvTranspose, Gemm, MatMul, Add, Sum, Relu, LeakyRelu, \
Sigmoid, Tanh, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, BatchNormalization, \
LRN, Dropout, Flatten, Reshape (to 2-D), Concat, Softmax, LogSoftmax, Pad (zeros, before a \
convolution or pooling), Slice (of height and width), Identity, Constant";

/// Opsets of the default domain that this importer reads.
const OPSETS: std::ops::RangeInclusive<i64> = 7..=21;

#[derive(Clone, Debug)]
enum Val {
    /// A convnet variable; `flat`: logically (N, C*H*W); `nonneg`: known >= 0.
    Act {
        var: String,
        flat: bool,
        nonneg: bool,
    },
    Const(Const),
    /// A zero-padded activation, before the layer it folds into.
    Padded {
        var: String,
        pad: Pad,
        nonneg: bool,
    },
}

/// Reads an ONNX model from `bytes` (the file `path`, whose folder holds any external
/// data files).
pub fn import(path: &Path, bytes: &[u8], opts: &ImportOptions) -> crate::Result<Imported> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| Error::file(path, format!("not an ONNX model (protobuf: {e})")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    convert(&model, dir, path, opts).map_err(|m| Error::file(path, m))
}

fn convert(
    model: &ModelProto,
    dir: &Path,
    path: &Path,
    opts: &ImportOptions,
) -> Result<Imported, Msg> {
    let graph = model
        .graph
        .as_ref()
        .ok_or("not an ONNX model: it has no graph")?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or("the model imports no opset of the default ONNX domain")?;
    if !OPSETS.contains(&opset) {
        return Err(format!(
            "opset {opset} is not supported (convnet reads opsets {}-{})",
            OPSETS.start(),
            OPSETS.end()
        ));
    }
    let mut vals: HashMap<String, Val> = HashMap::new();
    for t in &graph.initializer {
        vals.insert(t.name.clone(), Val::Const(tensor::read(t, dir)?));
    }
    let data_inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !vals.contains_key(&i.name))
        .collect();
    let [input] = data_inputs[..] else {
        return Err(format!(
            "the graph has {} data inputs ({}); convnet networks take one image batch",
            data_inputs.len(),
            data_inputs
                .iter()
                .map(|i| format!("'{}'", i.name))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let (batch, size) = input_shape(input)?;
    let mut b = Builder::new(size);
    vals.insert(
        input.name.clone(),
        Val::Act {
            var: INPUT.into(),
            flat: false,
            nonneg: false,
        },
    );
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for n in &graph.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            *uses.entry(i.as_str()).or_default() += 1;
        }
    }
    for o in &graph.output {
        *uses.entry(o.name.as_str()).or_default() += 1;
    }
    let mut cx = Cx {
        b: &mut b,
        vals: &mut vals,
        uses: &uses,
        opset,
        batch,
        dir,
    };
    for (k, node) in graph.node.iter().enumerate() {
        let label = if node.name.is_empty() {
            format!("node {} ({})", k + 1, node.op_type)
        } else {
            format!("node '{}' ({})", node.name, node.op_type)
        };
        cx.node(node, k).map_err(|m| format!("{label}: {m}"))?;
    }
    let out = graph.output.first().ok_or("the graph has no output")?;
    let (final_var, _) = cx
        .act(&out.name)
        .map_err(|m| format!("graph output '{}': {m}", out.name))?;
    if final_var == INPUT {
        return Err("the graph computes nothing: its output is its input".into());
    }
    // Class scores are `prediction` by convention: the softmax's input when the
    // graph ends in one, else the output itself.
    let scores = match b.producer(&final_var).map(|p| &b.layers[p]) {
        Some(l) if l.kind == LayerKind::Softmax => l.inputs[0].clone(),
        _ => final_var.clone(),
    };
    if scores != INPUT {
        b.rename_var(&scores, "prediction");
    }
    let out_dims = b.dims(if scores == final_var {
        "prediction"
    } else {
        &final_var
    })?;
    let meta = |k: &str| {
        model
            .metadata_props
            .iter()
            .find(|p| p.key == k)
            .map(|p| &p.value)
    };
    let json_list = |k: &str| -> Result<Option<Vec<String>>, Msg> {
        meta(k)
            .map(|v| serde_json::from_str(v).map_err(|e| format!("metadata '{k}': {e}")))
            .transpose()
    };
    let stored = json_list(META_CLASSES)?;
    let classes = class_names(opts.classes.as_ref().or(stored.as_ref()), out_dims.c)?;
    let class_descriptions = json_list(META_DESCRIPTIONS)?.unwrap_or_default();
    let normalization = match meta(META_NORMALIZATION) {
        Some(v) => Normalization::from_json(v).map_err(|e| e.to_string())?,
        None => Normalization::None,
    };
    let input_fit = meta(META_INPUT)
        .map(|v| serde_json::from_str(v).map_err(|e| format!("metadata '{META_INPUT}': {e}")))
        .transpose()?;
    let name = if graph.name.is_empty() {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        graph.name.clone()
    };
    let net = b.finish(&name, classes, &path.display().to_string())?;
    Ok(Imported {
        net,
        format: Format::Onnx { opset },
        normalization,
        input: input_fit,
        class_descriptions,
        notes: Vec::new(),
    })
}

/// The batch size (if fixed) and (H, W, C) of the graph's data input.
fn input_shape(input: &super::proto::ValueInfoProto) -> Result<(Option<usize>, [usize; 3]), Msg> {
    let what = format!("input '{}'", input.name);
    let tt = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| format!("{what} is not a tensor"))?;
    if tt.elem_type != super::proto::data_type::FLOAT {
        return Err(format!(
            "{what} has element type {}, not float",
            tt.elem_type
        ));
    }
    let dims: Vec<Option<i64>> = tt
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(DimValue::Value(v)) if v > 0 => Some(v),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let fixed = |k: usize| dims.get(k).copied().flatten().map(|v| v as usize);
    match (dims.len(), fixed(1), fixed(2), fixed(3)) {
        (4, Some(c), Some(h), Some(w)) => Ok((fixed(0), [h, w, c])),
        _ => Err(format!(
            "{what} must be (N, C, H, W) with C, H and W fixed, got {:?}",
            dims.iter()
                .map(|d| d.map_or("?".to_string(), |v| v.to_string()))
                .collect::<Vec<_>>()
        )),
    }
}

/// The conversion's state.
struct Cx<'a> {
    b: &'a mut Builder,
    vals: &'a mut HashMap<String, Val>,
    uses: &'a HashMap<&'a str, usize>,
    opset: i64,
    /// The graph input's batch size when it is fixed.
    batch: Option<usize>,
    dir: &'a Path,
}

impl Cx<'_> {
    fn node(&mut self, node: &NodeProto, k: usize) -> Result<(), Msg> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(format!(
                "operators of domain '{}' are not supported",
                node.domain
            ));
        }
        let a = Attrs(&node.attribute);
        self.single_output(node)?;
        match node.op_type.as_str() {
            "Identity" => {
                let v = self.val(self.input(node, 0)?)?.clone();
                self.set(node, v)
            }
            "Constant" => self.constant_node(node, &a),
            "Conv" => self.conv(node, k, &a),
            "ConvTranspose" => self.conv_transpose(node, k, &a),
            "Gemm" => self.gemm(node, k, &a),
            "MatMul" => self.matmul(node, k),
            "Add" | "Sum" => self.add(node, k),
            "Relu" => self.unary(node, k, LayerKind::Relu { leak: 0.0 }),
            "LeakyRelu" => {
                a.only(&["alpha"])?;
                let leak = a.float("alpha", 0.01)?;
                self.unary(node, k, LayerKind::Relu { leak })
            }
            "Sigmoid" => self.unary(node, k, LayerKind::Sigmoid),
            "Tanh" => self.unary(node, k, LayerKind::Tanh),
            "MaxPool" | "AveragePool" => self.pool(node, k, &a),
            "GlobalAveragePool" | "GlobalMaxPool" => self.global_pool(node, k),
            "BatchNormalization" => self.batch_norm(node, k, &a),
            "LRN" => self.lrn(node, k, &a),
            "Dropout" => self.dropout(node, k, &a),
            "Flatten" => self.flatten(node, &a),
            "Reshape" => self.reshape(node),
            "Concat" => self.concat(node, k, &a),
            "Softmax" => self.softmax(node, k, &a, LayerKind::Softmax),
            "LogSoftmax" => self.softmax(node, k, &a, LayerKind::LogSoftmax),
            "Pad" => self.pad(node, &a),
            "Slice" => self.slice(node, k, &a),
            op => {
                let hint = match op {
                    "Pow" | "Div" | "Mul" | "Sub" | "Unsqueeze" | "Squeeze" | "Shape"
                    | "Gather" | "Transpose" | "ReduceMean" | "ReduceSum" => {
                        " (convnet does not import elementary arithmetic or shape operators; \
                         torch.onnx.export writes LocalResponseNorm and x.view(x.size(0), -1) \
                         as chains of them: export with an LRN node and torch.flatten)"
                    }
                    _ => "",
                };
                Err(format!(
                    "op type '{op}' is not supported{hint}; convnet imports {SUPPORTED}"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
