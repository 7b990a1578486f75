//! ONNX graphs to convnet networks, converted once, node by node in the graph's
//! (topological) order.
//!
//! Every ONNX value is one of: an activation (a convnet variable, logically 4-D
//! (N, C, H, W) or, after Flatten, 2-D (N, C*H*W) while stored as (N, C, H, W): NCHW
//! flattening is exactly the order of a fully connected layer's weights
//! (out, C, H, W)), a constant (initializers, Constant nodes), or a zero-padded
//! activation waiting for the convolution or pooling it folds into.

use super::proto::{attr_type, AttributeProto, DimValue, ModelProto, NodeProto};
use super::tensor::{self, Const, Data};
use super::{META_CLASSES, META_DESCRIPTIONS, META_INPUT, META_NORMALIZATION};
use crate::build::{Builder, Msg, INPUT};
use crate::{class_names, Error, Format, ImportOptions, Imported};
use convnet::blocks::conv::ConvOpts;
use convnet::blocks::convt::ConvTOpts;
use convnet::blocks::lrn::LrnOpts;
use convnet::blocks::pool::{PoolMethod, PoolOpts};
use convnet::blocks::Pad;
use convnet::data::normalize::Normalization;
use convnet::net::LayerKind;
use convnet::{Dims4, Tensor};
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

/// Attribute access by name, with defaults.
struct Attrs<'a>(&'a [AttributeProto]);

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }
    fn int(&self, name: &str, default: i64) -> Result<i64, Msg> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == attr_type::INT || a.r#type == 0 => Ok(a.i),
            Some(_) => Err(format!("attribute '{name}' must be an integer")),
        }
    }
    fn float(&self, name: &str, default: f32) -> Result<f32, Msg> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == attr_type::FLOAT || a.r#type == 0 => Ok(a.f),
            Some(_) => Err(format!("attribute '{name}' must be a number")),
        }
    }
    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, Msg> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == attr_type::INTS || a.r#type == 0 => Ok(Some(a.ints.clone())),
            Some(_) => Err(format!("attribute '{name}' must be a list of integers")),
        }
    }
    fn string(&self, name: &str, default: &str) -> Result<String, Msg> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(a) if a.r#type == attr_type::STRING || a.r#type == 0 => {
                Ok(String::from_utf8_lossy(&a.s).into_owned())
            }
            Some(_) => Err(format!("attribute '{name}' must be a string")),
        }
    }
    /// Fails on an attribute other than `known`.
    fn only(&self, known: &[&str]) -> Result<(), Msg> {
        match self.0.iter().find(|a| !known.contains(&a.name.as_str())) {
            Some(a) => Err(format!("attribute '{}' is not supported", a.name)),
            None => Ok(()),
        }
    }
}

/// A non-negative integer of a list attribute.
fn unsigned(v: i64, what: &str) -> Result<usize, Msg> {
    usize::try_from(v).map_err(|_| format!("{what} {v} must not be negative"))
}

/// Two spatial values of a list attribute (`default` for both when absent).
fn pair(v: Option<Vec<i64>>, what: &str, default: usize) -> Result<[usize; 2], Msg> {
    match v.as_deref() {
        None => Ok([default, default]),
        Some([a, b]) => Ok([unsigned(*a, what)?, unsigned(*b, what)?]),
        Some(other) => Err(format!("'{what}' must have 2 values (2-D), got {other:?}")),
    }
}

/// ONNX's `pads` [top, left, bottom, right] as convnet's per-side padding.
fn pads(v: Option<Vec<i64>>) -> Result<Pad, Msg> {
    match v.as_deref() {
        None => Ok(Pad::default()),
        Some([t, l, b, r]) => Ok(Pad::new(
            unsigned(*t, "pad")?,
            unsigned(*b, "pad")?,
            unsigned(*l, "pad")?,
            unsigned(*r, "pad")?,
        )),
        Some(other) => Err(format!("'pads' must have 4 values (2-D), got {other:?}")),
    }
}

fn add_pad(a: Pad, b: Pad) -> Pad {
    Pad::new(
        a.top + b.top,
        a.bottom + b.bottom,
        a.left + b.left,
        a.right + b.right,
    )
}

/// Padding for `auto_pad` SAME_UPPER / SAME_LOWER: the output has ceil(len / stride)
/// elements; the odd pixel goes at the end (UPPER) or the start (LOWER).
fn same_pad(len: usize, k: usize, stride: usize, dilation: usize, upper: bool) -> (usize, usize) {
    let out = len.div_ceil(stride);
    let span = dilation * (k - 1) + 1;
    let total = ((out.max(1) - 1) * stride + span).saturating_sub(len);
    let small = total / 2;
    if upper {
        (small, total - small)
    } else {
        (total - small, small)
    }
}

/// The padding of a convolution or pooling over `x` given `auto_pad` and `pads`.
fn spatial_pads(
    a: &Attrs,
    x: Dims4,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<Pad, Msg> {
    match a.string("auto_pad", "NOTSET")?.as_str() {
        "NOTSET" | "" => pads(a.ints("pads")?),
        "VALID" => Ok(Pad::default()),
        m @ ("SAME_UPPER" | "SAME_LOWER") => {
            let upper = m == "SAME_UPPER";
            let (t, bo) = same_pad(x.h, kernel[0], stride[0], dilation[0], upper);
            let (l, r) = same_pad(x.w, kernel[1], stride[1], dilation[1], upper);
            Ok(Pad::new(t, bo, l, r))
        }
        m => Err(format!("auto_pad '{m}' is not an ONNX value")),
    }
}

/// The output length of ONNX pooling with `ceil_mode` (a last window must start
/// inside the input or its leading padding), and the extra trailing padding that
/// gives it under convnet's floor rounding.
fn ceil_extra(len: usize, lo: usize, hi: usize, k: usize, stride: usize) -> usize {
    let padded = len + lo + hi;
    if padded < k {
        return 0;
    }
    let mut out = (padded - k).div_ceil(stride) + 1;
    if (out - 1) * stride >= len + lo {
        out -= 1;
    }
    ((out - 1) * stride + k).saturating_sub(padded)
}

fn vec4(d: Dims4) -> Vec<usize> {
    vec![d.c, d.h, d.w]
}

impl Cx<'_> {
    fn val(&self, name: &str) -> Result<&Val, Msg> {
        self.vals
            .get(name)
            .ok_or_else(|| format!("input '{name}' is neither a graph input, an initializer nor an earlier node's output"))
    }

    /// An activation input: its variable and whether it is flat.
    fn act(&self, name: &str) -> Result<(String, bool), Msg> {
        match self.val(name)? {
            Val::Act { var, flat, .. } => Ok((var.clone(), *flat)),
            Val::Const(_) => Err(const_input(name)),
            Val::Padded { .. } => Err(format!(
                "input '{name}' comes from a Pad, which folds only into a convolution or pooling"
            )),
        }
    }

    /// An image-shaped (not flattened) activation input, with any padding folded.
    fn image(&self, name: &str) -> Result<(String, Pad, bool), Msg> {
        match self.val(name)? {
            Val::Padded { var, pad, nonneg } => Ok((var.clone(), *pad, *nonneg)),
            Val::Act { flat: true, .. } => Err(format!(
                "input '{name}' is 2-D (N, features); this operator needs (N, C, H, W)"
            )),
            Val::Act { var, nonneg, .. } => Ok((var.clone(), Pad::default(), *nonneg)),
            Val::Const(_) => Err(const_input(name)),
        }
    }

    fn constant(&self, name: &str) -> Result<&Const, Msg> {
        match self.val(name)? {
            Val::Const(c) => Ok(c),
            _ => Err(format!(
                "input '{name}' must be a constant (an initializer), as convnet stores weights with the layer"
            )),
        }
    }

    /// Input `k` of `node` if given (an empty name means absent).
    fn opt_input<'n>(&self, node: &'n NodeProto, k: usize) -> Option<&'n str> {
        node.input
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn input<'n>(&self, node: &'n NodeProto, k: usize) -> Result<&'n str, Msg> {
        self.opt_input(node, k)
            .ok_or_else(|| format!("input {} is missing", k + 1))
    }

    /// Fails when an output other than the first is read by anything.
    fn single_output(&self, node: &NodeProto) -> Result<(), Msg> {
        match node
            .output
            .iter()
            .skip(1)
            .find(|o| !o.is_empty() && self.uses.contains_key(o.as_str()))
        {
            Some(o) => Err(format!(
                "its output '{o}' is used; convnet computes the first output only"
            )),
            None => Ok(()),
        }
    }

    fn set(&mut self, node: &NodeProto, v: Val) -> Result<(), Msg> {
        let out = node
            .output
            .first()
            .filter(|o| !o.is_empty())
            .ok_or("it has no output")?;
        self.vals.insert(out.clone(), v);
        Ok(())
    }

    /// Appends a layer named after `node` and records the node's output.
    fn layer(
        &mut self,
        node: &NodeProto,
        k: usize,
        kind: LayerKind,
        inputs: Vec<String>,
        params: Vec<Tensor>,
        flat: bool,
    ) -> Result<(), Msg> {
        let nonneg = matches!(kind, LayerKind::Relu { leak } if leak == 0.0)
            || matches!(kind, LayerKind::Sigmoid | LayerKind::Softmax);
        let name = self.b.unique_name(
            &node.name,
            &format!("{}{}", node.op_type.to_lowercase(), k + 1),
        );
        self.b.push(&name, kind, inputs, params)?;
        self.set(
            node,
            Val::Act {
                var: name,
                flat,
                nonneg,
            },
        )
    }

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
                    | "Gather" | "Slice" | "Transpose" | "ReduceMean" | "ReduceSum" => {
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

    fn constant_node(&mut self, node: &NodeProto, a: &Attrs) -> Result<(), Msg> {
        let c = if let Some(t) = a.get("value").and_then(|v| v.t.as_ref()) {
            tensor::read(t, self.dir)?
        } else if let Some(v) = a.get("value_ints") {
            Const {
                dims: vec![v.ints.len()],
                data: Data::I64(v.ints.clone()),
            }
        } else if let Some(v) = a.get("value_int") {
            Const {
                dims: vec![],
                data: Data::I64(vec![v.i]),
            }
        } else if let Some(v) = a.get("value_floats") {
            Const {
                dims: vec![v.floats.len()],
                data: Data::F32(v.floats.clone()),
            }
        } else if let Some(v) = a.get("value_float") {
            Const {
                dims: vec![],
                data: Data::F32(vec![v.f]),
            }
        } else {
            return Err("a Constant without a 'value' tensor or numbers is not supported".into());
        };
        self.set(node, Val::Const(c))
    }

    fn unary(&mut self, node: &NodeProto, k: usize, kind: LayerKind) -> Result<(), Msg> {
        let (var, flat) = self.act(self.input(node, 0)?)?;
        self.layer(node, k, kind, vec![var], vec![], flat)
    }

    fn conv(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ])?;
        let (var, pre, _) = self.image(self.input(node, 0)?)?;
        let w = self.constant(self.input(node, 1)?)?;
        let &[out, cg, kh, kw] = &w.dims[..] else {
            return Err(format!(
                "weights of shape {:?} are not 2-D filters (out, C/groups, kh, kw)",
                w.dims
            ));
        };
        if let Some(ks) = a.ints("kernel_shape")? {
            if ks != [kh as i64, kw as i64] {
                return Err(format!(
                    "kernel_shape {ks:?} disagrees with the weights' {kh}x{kw}"
                ));
            }
        }
        let groups = unsigned(a.int("group", 1)?, "group")?;
        let stride = pair(a.ints("strides")?, "strides", 1)?;
        let dilation = pair(a.ints("dilations")?, "dilations", 1)?;
        let x = self.b.dims(&var)?;
        let x_padded = Dims4::new(
            1,
            x.c,
            x.h + pre.top + pre.bottom,
            x.w + pre.left + pre.right,
        );
        let pad = add_pad(pre, spatial_pads(a, x_padded, [kh, kw], stride, dilation)?);
        if groups == 0 || cg * groups != x.c {
            return Err(format!(
                "weights of shape {:?} with {groups} groups do not fit an input of {} channels",
                w.dims, x.c
            ));
        }
        let weight =
            Tensor::from_vec(&w.dims, w.floats("weights")?.to_vec()).map_err(|e| e.to_string())?;
        let mut params = vec![weight];
        if let Some(bn) = self.opt_input(node, 2) {
            params.push(self.bias(bn, out)?);
        }
        let kind = LayerKind::Conv {
            kernel: Some([kh, kw]),
            out,
            opts: ConvOpts {
                pad,
                stride,
                dilation,
                groups,
            },
            bias: params.len() == 2,
        };
        self.layer(node, k, kind, vec![var], params, false)
    }

    /// A bias constant of `out` values.
    fn bias(&self, name: &str, out: usize) -> Result<Tensor, Msg> {
        let c = self.constant(name)?;
        if c.len() != out || c.dims.iter().filter(|&&d| d != 1).count() > 1 {
            return Err(format!(
                "bias '{name}' of shape {:?} does not have {out} values",
                c.dims
            ));
        }
        Tensor::from_vec(&[out], c.floats("the bias")?.to_vec()).map_err(|e| e.to_string())
    }

    fn conv_transpose(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "output_padding",
            "pads",
            "strides",
        ])?;
        let (var, _) = self.act(self.input(node, 0)?)?;
        let w = self.constant(self.input(node, 1)?)?;
        let &[c_in, og, kh, kw] = &w.dims[..] else {
            return Err(format!(
                "weights of shape {:?} are not 2-D filters (C_in, out/groups, kh, kw)",
                w.dims
            ));
        };
        let groups = unsigned(a.int("group", 1)?, "group")?;
        if pair(a.ints("dilations")?, "dilations", 1)? != [1, 1] {
            return Err("dilated transposed convolutions are not supported".into());
        }
        if !matches!(
            a.string("auto_pad", "NOTSET")?.as_str(),
            "NOTSET" | "" | "VALID"
        ) {
            return Err("auto_pad SAME_* is not supported for ConvTranspose".into());
        }
        let x = self.b.dims(&var)?;
        if groups == 0 || c_in != x.c || x.c % groups != 0 {
            return Err(format!(
                "weights of shape {:?} with {groups} groups do not fit an input of {} channels",
                w.dims, x.c
            ));
        }
        let stride = pair(a.ints("strides")?, "strides", 1)?;
        let extra = pair(a.ints("output_padding")?, "output_padding", 0)?;
        let p = pads(a.ints("pads")?)?;
        // output_padding adds rows after the end: the same as cropping fewer of them.
        if extra[0] > p.bottom || extra[1] > p.right {
            return Err(format!(
                "output_padding {extra:?} larger than the end pads ({}, {}) is not supported",
                p.bottom, p.right
            ));
        }
        let crop = Pad::new(p.top, p.bottom - extra[0], p.left, p.right - extra[1]);
        let out = og * groups;
        let weight =
            Tensor::from_vec(&w.dims, w.floats("weights")?.to_vec()).map_err(|e| e.to_string())?;
        let mut params = vec![weight];
        if let Some(bn) = self.opt_input(node, 2) {
            params.push(self.bias(bn, out)?);
        }
        let kind = LayerKind::ConvT {
            kernel: [kh, kw],
            out,
            opts: ConvTOpts {
                upsample: stride,
                crop,
                groups,
            },
            bias: params.len() == 2,
        };
        self.layer(node, k, kind, vec![var], params, false)
    }

    /// The variable and its size read by a fully connected layer: a flat activation,
    /// or one of 1x1 pixels.
    fn features(&self, name: &str) -> Result<(String, Dims4), Msg> {
        let (var, flat) = self.act(name)?;
        let x = self.b.dims(&var)?;
        if !flat && (x.h, x.w) != (1, 1) {
            return Err(format!(
                "input '{name}' of size {x} is not 2-D; a Flatten or Reshape must come first"
            ));
        }
        Ok((var, x))
    }

    /// A fully connected layer over `x` with weights `w` (out x features, row-major).
    #[allow(clippy::too_many_arguments)]
    fn fully_connected(
        &mut self,
        node: &NodeProto,
        k: usize,
        var: String,
        x: Dims4,
        out: usize,
        w: Vec<f32>,
        bias: Option<Tensor>,
    ) -> Result<(), Msg> {
        let weight = Tensor::from_vec(&[out, x.c, x.h, x.w], w).map_err(|e| e.to_string())?;
        let mut params = vec![weight];
        params.extend(bias);
        let kind = LayerKind::Conv {
            kernel: None,
            out,
            opts: ConvOpts::default(),
            bias: params.len() == 2,
        };
        self.layer(node, k, kind, vec![var], params, true)
    }

    fn gemm(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&["alpha", "beta", "transA", "transB"])?;
        if a.int("transA", 0)? != 0 {
            return Err("transA = 1 (a transposed batch) is not supported".into());
        }
        let (var, x) = self.features(self.input(node, 0)?)?;
        let feat = x.image_len();
        let bm = self.constant(self.input(node, 1)?)?;
        let trans_b = a.int("transB", 0)? != 0;
        let (alpha, beta) = (a.float("alpha", 1.0)?, a.float("beta", 1.0)?);
        let out = match (&bm.dims[..], trans_b) {
            (&[o, f], true) if f == feat => o,
            (&[f, o], false) if f == feat => o,
            (d, _) => {
                return Err(format!(
                    "weights of shape {d:?} (transB {}) do not fit {feat} input features",
                    trans_b as u8
                ))
            }
        };
        let v = bm.floats("weights")?;
        let w: Vec<f32> = (0..out * feat)
            .map(|i| {
                let (o, f) = (i / feat, i % feat);
                alpha * if trans_b { v[i] } else { v[f * out + o] }
            })
            .collect();
        let bias = match self.opt_input(node, 2) {
            Some(c) => {
                let cst = self.constant(c)?;
                let vals = cst.floats("the bias")?;
                let b: Vec<f32> = match vals.len() {
                    1 => vec![beta * vals[0]; out],
                    n if n == out && cst.dims.iter().filter(|&&d| d != 1).count() <= 1 => {
                        vals.iter().map(|v| beta * v).collect()
                    }
                    _ => {
                        return Err(format!(
                            "bias of shape {:?} is not one value per output ({out})",
                            cst.dims
                        ))
                    }
                };
                Some(Tensor::from_vec(&[out], b).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        self.fully_connected(node, k, var, x, out, w, bias)
    }

    fn matmul(&mut self, node: &NodeProto, k: usize) -> Result<(), Msg> {
        let (var, x) = self.features(self.input(node, 0)?)?;
        let feat = x.image_len();
        let bm = self.constant(self.input(node, 1)?)?;
        let &[f, out] = &bm.dims[..] else {
            return Err(format!("weights of shape {:?} are not a matrix", bm.dims));
        };
        if f != feat {
            return Err(format!(
                "weights of shape {:?} do not fit {feat} input features",
                bm.dims
            ));
        }
        let v = bm.floats("weights")?;
        let w: Vec<f32> = (0..out * feat)
            .map(|i| v[(i % feat) * out + i / feat])
            .collect();
        self.fully_connected(node, k, var, x, out, w, None)
    }

    fn add(&mut self, node: &NodeProto, k: usize) -> Result<(), Msg> {
        let names: Vec<&str> = node
            .input
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        let consts: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| matches!(self.vals.get(*n), Some(Val::Const(_))))
            .collect();
        if node.op_type == "Add" && names.len() == 2 && consts.len() == 1 {
            let act = if names[0] == consts[0] {
                names[1]
            } else {
                names[0]
            };
            return self.add_bias(node, act, consts[0]);
        }
        let mut vars = Vec::new();
        let mut flats = Vec::new();
        for n in &names {
            let (v, f) = self.act(n)?;
            vars.push(v);
            flats.push(f);
        }
        if vars.is_empty() {
            return Err("no inputs".into());
        }
        if flats.iter().any(|&f| f != flats[0]) {
            let d: Vec<_> = vars
                .iter()
                .map(|v| self.b.dims(v).map(vec4))
                .collect::<Result<_, _>>()?;
            if d.iter().any(|x| x[1..] != [1, 1]) {
                return Err("inputs of different ranks cannot be summed".into());
            }
        }
        if vars.len() == 1 {
            let v = self.val(names[0])?.clone();
            return self.set(node, v);
        }
        self.layer(node, k, LayerKind::Sum, vars, vec![], flats[0])
    }

    /// `act + c` where `c` holds one value per channel: added to the bias of the
    /// convolution or fully connected layer that writes `act` (and nothing else reads).
    fn add_bias(&mut self, node: &NodeProto, act: &str, c: &str) -> Result<(), Msg> {
        let (var, flat) = self.act(act)?;
        let x = self.b.dims(&var)?;
        let cst = self.constant(c)?.clone();
        let per_channel = if flat {
            cst.dims.iter().rev().skip(1).all(|&d| d == 1)
                && cst.dims.last() == Some(&x.image_len())
        } else {
            cst.dims.len() >= 3
                && cst.dims[cst.dims.len() - 2..] == [1, 1]
                && cst.dims[cst.dims.len() - 3] == x.c
                && cst.dims[..cst.dims.len() - 3].iter().all(|&d| d == 1)
        };
        let cannot = || {
            format!(
                "adding constant '{c}' of shape {:?} to '{act}' folds only into the bias of a \
                 convolution or fully connected layer whose output nothing else reads",
                cst.dims
            )
        };
        // Only when no other value names the same variable and nothing else reads it.
        let aliases = self
            .vals
            .values()
            .filter(
                |v| matches!(v, Val::Act { var: w, .. } | Val::Padded { var: w, .. } if *w == var),
            )
            .count();
        let sole = aliases == 1 && self.uses.get(act) == Some(&1);
        let p = self.b.producer(&var).filter(|_| per_channel && sole);
        let Some(p) = p else { return Err(cannot()) };
        let lname = self.b.layers[p].name.clone();
        let out = match &mut self.b.layers[p].kind {
            LayerKind::Conv { out, bias, .. } => {
                *bias = true;
                *out
            }
            _ => return Err(cannot()),
        };
        let add = cst.floats("the added constant")?.to_vec();
        let key = format!("{lname}.bias");
        let b = self
            .b
            .tensors
            .entry(key)
            .or_insert_with(|| Tensor::zeros(&[out]).unwrap_or_default());
        if b.len() != add.len() {
            return Err(cannot());
        }
        for (v, a) in b.data_mut().iter_mut().zip(add) {
            *v += a;
        }
        let v = self.val(act)?.clone();
        self.set(node, v)
    }

    fn pool(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        let max = node.op_type == "MaxPool";
        a.only(&[
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "dilations",
            "kernel_shape",
            "pads",
            "storage_order",
            "strides",
        ])?;
        let (var, pre, nonneg) = self.image(self.input(node, 0)?)?;
        let window = pair(a.ints("kernel_shape")?, "kernel_shape", 0)?;
        if window.contains(&0) {
            return Err("kernel_shape must be given, 2-D and positive".into());
        }
        let stride = pair(a.ints("strides")?, "strides", 1)?;
        if pair(a.ints("dilations")?, "dilations", 1)? != [1, 1] {
            return Err("dilated pooling is not supported".into());
        }
        let include = a.int("count_include_pad", 0)? != 0;
        let x = self.b.dims(&var)?;
        let x_padded = Dims4::new(
            1,
            x.c,
            x.h + pre.top + pre.bottom,
            x.w + pre.left + pre.right,
        );
        let own = spatial_pads(a, x_padded, window, stride, [1, 1])?;
        let padded_before = pre != Pad::default();
        if padded_before && max && !nonneg {
            return Err(
                "a zero Pad before MaxPool folds only when the values are known to be \
                        non-negative (after Relu, Sigmoid or Softmax)"
                    .into(),
            );
        }
        if padded_before && !max && !include && own != Pad::default() {
            return Err("a zero Pad before an AveragePool with its own pads and \
                        count_include_pad = 0 cannot be represented"
                .into());
        }
        // Zeros padded before an average pooling are pixels it counts.
        let count_pad = !max && (include || padded_before);
        let mut pad = add_pad(pre, own);
        if a.int("ceil_mode", 0)? != 0 {
            let eh = ceil_extra(x.h, pad.top, pad.bottom, window[0], stride[0]);
            let ew = ceil_extra(x.w, pad.left, pad.right, window[1], stride[1]);
            if count_pad && (eh > 0 || ew > 0) {
                return Err(
                    "ceil_mode with padding counted in the average cannot be represented".into(),
                );
            }
            pad.bottom += eh;
            pad.right += ew;
        }
        let method = if max {
            PoolMethod::Max
        } else {
            PoolMethod::Avg
        };
        let kind = LayerKind::Pool(PoolOpts {
            method,
            window,
            stride,
            pad,
            count_pad,
        });
        self.layer(node, k, kind, vec![var], vec![], false)
    }

    fn global_pool(&mut self, node: &NodeProto, k: usize) -> Result<(), Msg> {
        let (var, flat) = self.act(self.input(node, 0)?)?;
        if flat {
            return Err("the input is 2-D; global pooling needs (N, C, H, W)".into());
        }
        let x = self.b.dims(&var)?;
        let method = if node.op_type == "GlobalMaxPool" {
            PoolMethod::Max
        } else {
            PoolMethod::Avg
        };
        let kind = LayerKind::Pool(PoolOpts {
            method,
            window: [x.h, x.w],
            stride: [1, 1],
            pad: Pad::default(),
            count_pad: false,
        });
        self.layer(node, k, kind, vec![var], vec![], false)
    }

    fn batch_norm(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&[
            "epsilon",
            "momentum",
            "spatial",
            "training_mode",
            "is_test",
            "consumed_inputs",
        ])?;
        if a.int("training_mode", 0)? != 0 {
            return Err(
                "training_mode = 1 is not supported (export the model in eval mode)".into(),
            );
        }
        if a.int("spatial", 1)? != 1 {
            return Err("spatial = 0 (per-pixel statistics) is not supported".into());
        }
        let (var, flat) = self.act(self.input(node, 0)?)?;
        let x = self.b.dims(&var)?;
        let mut params = Vec::new();
        for (i, what) in ["scale", "bias", "mean", "variance"].iter().enumerate() {
            let c = self.constant(self.input(node, i + 1)?)?;
            let v = c.floats(what)?;
            if v.len() != x.c {
                return Err(format!(
                    "{what} has {} values for {} channels",
                    v.len(),
                    x.c
                ));
            }
            params.push(Tensor::from_vec(&[x.c], v.to_vec()).map_err(|e| e.to_string())?);
        }
        let eps = a.float("epsilon", 1e-5)?;
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(format!("epsilon {eps} must be positive"));
        }
        // ONNX keeps `momentum` of the old running value; convnet the batch's share.
        let m = 1.0 - a.float("momentum", 0.9)?;
        let momentum = if m > 0.0 && m <= 1.0 { m } else { 0.1 };
        self.layer(
            node,
            k,
            LayerKind::BNorm { eps, momentum },
            vec![var],
            params,
            flat,
        )
    }

    fn lrn(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&["alpha", "beta", "bias", "size"])?;
        let (var, _, _) = self.image(self.input(node, 0)?).and_then(|v| {
            if v.1 != Pad::default() {
                Err("a Pad before LRN cannot be folded".to_string())
            } else {
                Ok(v)
            }
        })?;
        let n = unsigned(a.int("size", 0)?, "size")?;
        // ONNX divides alpha by the window size; convnet (MatConvNet) does not.
        let o = LrnOpts {
            n,
            kappa: a.float("bias", 1.0)?,
            alpha: a.float("alpha", 1e-4)? / n.max(1) as f32,
            beta: a.float("beta", 0.75)?,
        };
        o.check().map_err(|e| e.to_string())?;
        self.layer(node, k, LayerKind::Lrn(o), vec![var], vec![], false)
    }

    fn dropout(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&["ratio", "seed", "is_test"])?;
        let (var, flat) = self.act(self.input(node, 0)?)?;
        let mut rate = a.float("ratio", 0.5)?;
        if let Some(r) = self.opt_input(node, 1) {
            rate = *self
                .constant(r)?
                .floats("ratio")?
                .first()
                .ok_or("ratio is empty")?;
        }
        if let Some(t) = self.opt_input(node, 2) {
            let c = self.constant(t)?;
            let on = match &c.data {
                Data::F32(v) => v.iter().any(|&x| x != 0.0),
                Data::I64(v) => v.iter().any(|&x| x != 0),
            };
            if on {
                return Err("training_mode = true is not supported".into());
            }
        }
        if !(0.0..1.0).contains(&rate) {
            return Err(format!("ratio {rate} must be in [0, 1)"));
        }
        self.layer(
            node,
            k,
            LayerKind::Dropout { rate },
            vec![var],
            vec![],
            flat,
        )
    }

    fn flatten(&mut self, node: &NodeProto, a: &Attrs) -> Result<(), Msg> {
        a.only(&["axis"])?;
        let name = self.input(node, 0)?;
        let (var, flat) = self.act(name)?;
        let axis = a.int("axis", 1)?;
        let rank = if flat { 2 } else { 4 };
        if axis != 1 && axis != 1 - rank {
            return Err(format!(
                "axis {axis} is not supported; convnet flattens (N, ...) to (N, features), axis 1"
            ));
        }
        let nonneg = matches!(self.val(name)?, Val::Act { nonneg: true, .. });
        self.set(
            node,
            Val::Act {
                var,
                flat: true,
                nonneg,
            },
        )
    }

    fn reshape(&mut self, node: &NodeProto) -> Result<(), Msg> {
        let name = self.input(node, 0)?;
        let (var, _) = self.act(name)?;
        let feat = self.b.dims(&var)?.image_len() as i64;
        let shape = self
            .constant(self.input(node, 1)?)?
            .ints("the shape")?
            .to_vec();
        let batch_ok = |v: i64| v == 0 || self.batch.is_some_and(|n| n as i64 == v);
        let ok = match shape[..] {
            [n, f] => (batch_ok(n) && (f == -1 || f == feat)) || (n == -1 && f == feat),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "a Reshape to {shape:?} is not supported; convnet reshapes only to (N, {feat}) \
                 (a flatten of the {feat} features)"
            ));
        }
        let nonneg = matches!(self.val(name)?, Val::Act { nonneg: true, .. });
        self.set(
            node,
            Val::Act {
                var,
                flat: true,
                nonneg,
            },
        )
    }

    fn concat(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&["axis"])?;
        let mut vars = Vec::new();
        let mut flats = Vec::new();
        for n in node.input.iter().filter(|s| !s.is_empty()) {
            let (v, f) = self.act(n)?;
            vars.push(v);
            flats.push(f);
        }
        let flat = flats.iter().any(|&f| f);
        let axis = a.int("axis", 1)?;
        let ok_axis = if flat {
            axis == 1 || axis == -1
        } else {
            axis == 1 || axis == -3
        };
        if !ok_axis {
            return Err(format!(
                "axis {axis} is not supported; convnet concatenates channels (axis 1)"
            ));
        }
        if flat {
            for v in &vars {
                let d = self.b.dims(v)?;
                if (d.h, d.w) != (1, 1) {
                    return Err(format!(
                        "concatenating flattened features of size {d} is not supported (only of 1x1 maps)"
                    ));
                }
            }
        }
        self.layer(node, k, LayerKind::Concat, vars, vec![], flat)
    }

    fn softmax(
        &mut self,
        node: &NodeProto,
        k: usize,
        a: &Attrs,
        kind: LayerKind,
    ) -> Result<(), Msg> {
        a.only(&["axis"])?;
        let (var, flat) = self.act(self.input(node, 0)?)?;
        let x = self.b.dims(&var)?;
        let rank = if flat { 2 } else { 4 };
        let default = if self.opset < 13 { 1 } else { -1 };
        let axis = a.int("axis", default)?;
        let axis = if axis < 0 { axis + rank } else { axis };
        // Before opset 13 the axis splits the tensor into 2-D; from 13 on it is one axis.
        let ok = match (rank, self.opset < 13) {
            (2, _) => axis == 1,
            (_, true) => axis == 1 && (x.h, x.w) == (1, 1),
            (_, false) => axis == 1,
        };
        if !ok {
            return Err(format!(
                "softmax over axis {axis} of a rank-{rank} tensor of size {x} is not supported; \
                 convnet's softmax is over channels"
            ));
        }
        self.layer(node, k, kind, vec![var], vec![], flat)
    }

    /// A Slice of height and width with step 1: convnet's crop.
    fn slice(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&["starts", "ends", "axes"])?;
        let (var, flat) = self.act(self.input(node, 0)?)?;
        if flat {
            return Err("slicing a 2-D (N, features) value is not supported".into());
        }
        let ints = |i: usize, attr: &str| -> Result<Option<Vec<i64>>, Msg> {
            if self.opset < 10 {
                return a.ints(attr);
            }
            match self.opt_input(node, i) {
                Some(c) => Ok(Some(self.constant(c)?.ints(attr)?.to_vec())),
                None => Ok(None),
            }
        };
        let starts = ints(1, "starts")?.ok_or("'starts' is missing")?;
        let ends = ints(2, "ends")?.ok_or("'ends' is missing")?;
        let axes = ints(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        if let Some(steps) = ints(4, "steps")? {
            if steps.iter().any(|&s| s != 1) {
                return Err(format!("steps {steps:?} are not supported (only 1)"));
            }
        }
        if starts.len() != axes.len() || ends.len() != axes.len() {
            return Err("starts, ends and axes differ in length".into());
        }
        let x = self.b.dims(&var)?;
        let mut crop = Pad::default();
        for ((&ax, &st), &en) in axes.iter().zip(&starts).zip(&ends) {
            let ax = if ax < 0 { ax + 4 } else { ax };
            let len = match ax {
                2 => x.h,
                3 => x.w,
                _ => {
                    return Err(format!(
                        "slicing axis {ax} is not supported (only height and width)"
                    ))
                }
            } as i64;
            let clamp = |v: i64| if v < 0 { (v + len).max(0) } else { v.min(len) };
            let (st, en) = (clamp(st), clamp(en));
            if st >= en {
                return Err(format!("the slice [{st}, {en}) of axis {ax} is empty"));
            }
            let (lo, hi) = (st as usize, (len - en) as usize);
            if ax == 2 {
                (crop.top, crop.bottom) = (lo, hi);
            } else {
                (crop.left, crop.right) = (lo, hi);
            }
        }
        self.layer(node, k, LayerKind::Crop(crop), vec![var], vec![], false)
    }

    fn pad(&mut self, node: &NodeProto, a: &Attrs) -> Result<(), Msg> {
        a.only(&["mode", "pads", "value"])?;
        let mode = a.string("mode", "constant")?;
        if mode != "constant" {
            return Err(format!(
                "mode '{mode}' is not supported; only zero padding folds"
            ));
        }
        let (pads, value, axes): (Vec<i64>, f32, Option<Vec<i64>>) = if self.opset < 11 {
            (
                a.ints("pads")?.ok_or("'pads' is missing")?,
                a.float("value", 0.0)?,
                None,
            )
        } else {
            let p = self.constant(self.input(node, 1)?)?.ints("pads")?.to_vec();
            let v = match self.opt_input(node, 2) {
                Some(c) => self
                    .constant(c)?
                    .floats("constant_value")?
                    .first()
                    .copied()
                    .unwrap_or(0.0),
                None => 0.0,
            };
            let axes = match self.opt_input(node, 3) {
                Some(c) => Some(self.constant(c)?.ints("axes")?.to_vec()),
                None => None,
            };
            (p, v, axes)
        };
        if value != 0.0 {
            return Err(format!(
                "padding with {value} is not supported; only zero padding folds"
            ));
        }
        let axes = axes.unwrap_or_else(|| (0..pads.len() as i64 / 2).collect());
        let r = axes.len();
        if pads.len() != 2 * r {
            return Err(format!(
                "pads {pads:?} do not have 2 values per axis of {axes:?}"
            ));
        }
        let mut p = [0i64; 8];
        for (i, &ax) in axes.iter().enumerate() {
            let ax = if ax < 0 { ax + 4 } else { ax };
            if !(0..4).contains(&ax) {
                return Err(format!(
                    "axis {ax} is not an axis of an (N, C, H, W) tensor"
                ));
            }
            p[ax as usize] = pads[i];
            p[ax as usize + 4] = pads[i + r];
        }
        if p[0] != 0 || p[1] != 0 || p[4] != 0 || p[5] != 0 {
            return Err(format!(
                "pads {pads:?} pad the batch or channels; only height and width fold"
            ));
        }
        let pad = Pad::new(
            unsigned(p[2], "pad")?,
            unsigned(p[6], "pad")?,
            unsigned(p[3], "pad")?,
            unsigned(p[7], "pad")?,
        );
        let (var, before, nonneg) = self.image(self.input(node, 0)?)?;
        self.set(
            node,
            Val::Padded {
                var,
                pad: add_pad(before, pad),
                nonneg,
            },
        )
    }
}

fn const_input(name: &str) -> Msg {
    format!("input '{name}' is a constant; convnet layers compute on the data only")
}
