//! Network descriptions: TOML files with a header (name, input size, classes,
//! default initialisation) and one `[[layer]]` table per layer.
//!
//! ```toml
//! name = "lenet"
//! input = [28, 28, 1]        # H, W, C of the variable `input`
//! classes = 10               # or a list of names
//! init = "gaussian"          # default for every layer; gaussian takes `std`
//! std = 0.01
//!
//! [[layer]]
//! name = "conv1"
//! type = "conv"
//! size = [5, 5, 1, 20]       # MatConvNet's [kh, kw, C_in, C_out]; or kernel + out
//! stride = 1                 # one number or [vertical, horizontal]
//! pad = 0                    # one number or [top, bottom, left, right]
//! ```
//!
//! `inputs` defaults to the previous layer's output (`input` for the first layer;
//! losses add `label`), `outputs` to the layer's name.

use super::init::Init;
use super::layer::LayerKind;
use crate::blocks::conv::ConvOpts;
use crate::blocks::convt::ConvTOpts;
use crate::blocks::loss::LossKind;
use crate::blocks::lrn::LrnOpts;
use crate::blocks::pool::{PoolMethod, PoolOpts};
use crate::blocks::Pad;
use crate::error::{Error, Result};
use std::path::Path;

/// A named network input with its size (height, width, channels).
#[derive(Clone, Debug, PartialEq)]
pub struct InputDesc {
    pub name: String,
    pub size: [usize; 3],
}

#[derive(Clone, Debug, PartialEq)]
pub struct LayerDesc {
    pub name: String,
    pub kind: LayerKind,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Names of the parameters, overriding `<layer>.<param>`: layers giving the same
    /// name share that parameter. Empty: the default names.
    pub params: Vec<String>,
    /// Learning-rate and weight-decay multipliers per parameter (default 1).
    pub lr_mult: Vec<f32>,
    pub decay_mult: Vec<f32>,
    /// Overrides the network's default initialisation for this layer.
    pub init: Option<Init>,
    /// Input channels per group that a convolution's `size` promised (checked
    /// against the input when the network is built).
    pub size_in: Option<usize>,
    /// 1-based line of the `[[layer]]` table in the file it came from.
    pub line: Option<usize>,
}

impl LayerDesc {
    /// A layer with default wiring (filled in when the description is checked).
    pub fn new(name: &str, kind: LayerKind) -> Self {
        LayerDesc {
            name: name.to_string(),
            kind,
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: Vec::new(),
            lr_mult: Vec::new(),
            decay_mult: Vec::new(),
            init: None,
            size_in: None,
            line: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetDesc {
    pub name: String,
    /// The network's data inputs; `label` is always accepted besides these.
    pub inputs: Vec<InputDesc>,
    pub classes: Vec<String>,
    pub init: Init,
    pub layers: Vec<LayerDesc>,
    /// Where the description came from (a path, or `zoo:<name>`), for messages.
    pub origin: String,
}

impl NetDesc {
    /// Reads and parses a TOML description file.
    pub fn load(path: &Path) -> Result<NetDesc> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        NetDesc::parse(&text, &path.display().to_string())
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<NetDesc> {
        let raw: RawDesc = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|r| line_of(text, r.start));
            Error::file(origin, line, e.message().to_string())
        })?;
        let lines = layer_lines(text);
        let fail = |line: Option<usize>, msg: String| Error::file(origin, line, msg);
        let inputs = header_inputs(&raw).map_err(|m| fail(None, m))?;
        let classes = match raw.classes {
            None => Vec::new(),
            Some(Classes::Count(n)) => (0..n).map(|c| c.to_string()).collect(),
            Some(Classes::Names(v)) => v,
        };
        let init = Init::parse(raw.init.as_deref().unwrap_or("gaussian"), raw.std)
            .map_err(|e| fail(None, e.to_string()))?;
        let mut layers = Vec::with_capacity(raw.layer.len());
        for (k, table) in raw.layer.into_iter().enumerate() {
            let line = lines.get(k).copied();
            let name = match table.get("name") {
                Some(toml::Value::String(s)) if !s.is_empty() => s.clone(),
                _ => {
                    return Err(fail(
                        line,
                        format!("layer {}: 'name' must be a non-empty string", k + 1),
                    ))
                }
            };
            let mut l =
                parse_layer(table).map_err(|m| fail(line, format!("layer '{name}': {m}")))?;
            l.line = line;
            layers.push(l);
        }
        let mut desc = NetDesc {
            name: raw.name.unwrap_or_default(),
            inputs,
            classes,
            init,
            layers,
            origin: origin.to_string(),
        };
        desc.fill_defaults()?;
        Ok(desc)
    }

    /// Gives each layer without explicit wiring the previous layer's output as its
    /// input (and `label` for a loss), and its own name as its output; then checks
    /// that names are unique.
    pub fn fill_defaults(&mut self) -> Result<()> {
        let first = self
            .inputs
            .first()
            .map(|i| i.name.clone())
            .unwrap_or_else(|| "input".to_string());
        let mut prev = first;
        let mut seen = std::collections::BTreeSet::new();
        for k in 0..self.layers.len() {
            let l = &self.layers[k];
            if !seen.insert(l.name.clone()) {
                return Err(self.layer_error(l, "another layer has the same name".into()));
            }
            let l = &mut self.layers[k];
            if l.inputs.is_empty() {
                l.inputs.push(prev.clone());
                if matches!(l.kind, LayerKind::Loss(_)) {
                    l.inputs.push("label".into());
                }
            }
            if l.outputs.is_empty() {
                l.outputs.push(l.name.clone());
            }
            prev = l.outputs[0].clone();
        }
        Ok(())
    }

    /// An error about layer `l`, naming the file, its line and the layer.
    pub fn layer_error(&self, l: &LayerDesc, msg: String) -> Error {
        Error::file(&self.origin, l.line, format!("layer '{}': {msg}", l.name))
    }

    /// The description as TOML that [`NetDesc::parse`] reads back to an equal value.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        s += &format!("name = {}\n", quote(&self.name));
        let (main, extra): (Vec<_>, Vec<_>) = self.inputs.iter().partition(|i| i.name == "input");
        if let Some(i) = main.first() {
            s += &format!("input = {}\n", list(&i.size));
        }
        let names: Vec<String> = self.classes.iter().map(|c| quote(c)).collect();
        s += &format!("classes = [{}]\n", names.join(", "));
        s += &init_toml(&self.init);
        if !extra.is_empty() {
            let items: Vec<String> = extra
                .iter()
                .map(|i| format!("{} = {}", quote(&i.name), list(&i.size)))
                .collect();
            s += &format!("inputs = {{ {} }}\n", items.join(", "));
        }
        for l in &self.layers {
            s += "\n[[layer]]\n";
            s += &layer_toml(l);
        }
        s
    }

    /// The size (H, W, C) of the input `input`, or of the first input.
    pub fn input_size(&self) -> Option<[usize; 3]> {
        self.inputs
            .iter()
            .find(|i| i.name == "input")
            .or(self.inputs.first())
            .map(|i| i.size)
    }
}

/// The 1-based line of byte `pos` of `text`.
fn line_of(text: &str, pos: usize) -> usize {
    text.get(..pos).map_or(0, |t| t.matches('\n').count()) + 1
}

/// The line of each `[[layer]]` header, in order.
fn layer_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            t.starts_with("[[layer]]")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDesc {
    name: Option<String>,
    input: Option<Vec<usize>>,
    inputs: Option<std::collections::BTreeMap<String, Vec<usize>>>,
    classes: Option<Classes>,
    init: Option<String>,
    std: Option<f32>,
    #[serde(default)]
    layer: Vec<toml::Table>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Classes {
    Count(usize),
    Names(Vec<String>),
}

fn size3(name: &str, v: &[usize]) -> std::result::Result<[usize; 3], String> {
    match *v {
        [h, w, c] if h > 0 && w > 0 && c > 0 => Ok([h, w, c]),
        _ => Err(format!(
            "input '{name}' must be [height, width, channels], all positive; got {v:?}"
        )),
    }
}

fn header_inputs(raw: &RawDesc) -> std::result::Result<Vec<InputDesc>, String> {
    let mut out = Vec::new();
    if let Some(v) = &raw.input {
        out.push(InputDesc {
            name: "input".into(),
            size: size3("input", v)?,
        });
    }
    for (name, v) in raw.inputs.iter().flatten() {
        if name == "input" && raw.input.is_some() {
            return Err("input 'input' is given twice ('input' and 'inputs')".into());
        }
        out.push(InputDesc {
            name: name.clone(),
            size: size3(name, v)?,
        });
    }
    if out.is_empty() {
        return Err("the header needs 'input = [height, width, channels]'".into());
    }
    Ok(out)
}

/// The options of one `[[layer]]` table.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    inputs: Option<Vec<String>>,
    outputs: Option<Vec<String>>,
    size: Option<Vec<usize>>,
    kernel: Option<Many>,
    out: Option<usize>,
    stride: Option<Many>,
    pad: Option<Many>,
    dilation: Option<Many>,
    groups: Option<usize>,
    bias: Option<bool>,
    method: Option<String>,
    count_pad: Option<bool>,
    leak: Option<f32>,
    rate: Option<f32>,
    eps: Option<f32>,
    momentum: Option<f32>,
    n: Option<usize>,
    kappa: Option<f32>,
    alpha: Option<f32>,
    beta: Option<f32>,
    k: Option<usize>,
    crop: Option<Many>,
    upsample: Option<Many>,
    params: Option<Vec<String>>,
    lr: Option<Vec<f32>>,
    decay: Option<Vec<f32>>,
    init: Option<String>,
    std: Option<f32>,
}

/// One number or a list.
#[derive(serde::Deserialize, Clone)]
#[serde(untagged)]
enum Many {
    One(usize),
    List(Vec<usize>),
}

type Msg<T> = std::result::Result<T, String>;

/// `[v, v]` from one number, or the two given.
fn two(opt: &str, v: Option<&Many>, default: usize) -> Msg<[usize; 2]> {
    match v {
        None => Ok([default, default]),
        Some(Many::One(x)) => Ok([*x, *x]),
        Some(Many::List(l)) => match l[..] {
            [a, b] => Ok([a, b]),
            _ => Err(format!("'{opt}' must be one number or two, got {l:?}")),
        },
    }
}

fn four(opt: &str, v: Option<&Many>) -> Msg<Pad> {
    match v {
        None => Ok(Pad::default()),
        Some(Many::One(x)) => Ok(Pad::all(*x)),
        Some(Many::List(l)) => match l[..] {
            [t, b, le, r] => Ok(Pad::new(t, b, le, r)),
            _ => Err(format!(
                "'{opt}' must be one number or four [top, bottom, left, right], got {l:?}"
            )),
        },
    }
}

fn positive(opt: &str, v: [usize; 2]) -> Msg<[usize; 2]> {
    if v[0] == 0 || v[1] == 0 {
        return Err(format!("'{opt}' must be positive, got {v:?}"));
    }
    Ok(v)
}

/// The options each type accepts besides the common ones.
fn allowed(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "conv" => &[
            "size", "kernel", "out", "stride", "pad", "dilation", "groups", "bias",
        ],
        "fc" => &["out", "bias"],
        "convt" => &[
            "size", "kernel", "out", "upsample", "crop", "groups", "bias",
        ],
        "pool" => &["method", "kernel", "stride", "pad", "count_pad"],
        "relu" => &["leak"],
        "dropout" => &["rate"],
        "bnorm" => &["eps", "momentum"],
        "lrn" => &["n", "kappa", "alpha", "beta"],
        "topkerror" => &["k"],
        "crop" => &["crop"],
        "sigmoid" | "tanh" | "softmax" | "logsoftmax" | "softmaxlog" | "logistic" | "hinge"
        | "multihinge" | "classerror" | "concat" | "sum" => &[],
        _ => return None,
    })
}

const COMMON: &[&str] = &[
    "name", "type", "inputs", "outputs", "params", "lr", "decay", "init", "std",
];

const TYPES: &str = "conv, fc, convt, pool, relu, sigmoid, tanh, softmax, logsoftmax, \
softmaxlog, logistic, hinge, multihinge, classerror, topkerror, dropout, bnorm, lrn, \
concat, crop, sum";

fn parse_layer(table: toml::Table) -> Msg<LayerDesc> {
    let kind = match table.get("type") {
        Some(toml::Value::String(s)) => s.clone(),
        _ => return Err("'type' must be given as a string".into()),
    };
    let Some(extra) = allowed(&kind) else {
        return Err(format!("unknown type '{kind}' (known: {TYPES})"));
    };
    if let Some(key) = table
        .keys()
        .find(|k| !COMMON.contains(&k.as_str()) && !extra.contains(&k.as_str()))
    {
        return Err(format!("option '{key}' does not apply to type '{kind}'"));
    }
    let r: RawLayer = table
        .try_into()
        .map_err(|e: toml::de::Error| e.message().trim().to_string())?;
    let mut l = LayerDesc::new(&r.name, layer_kind(&r)?);
    if let (LayerKind::Conv { .. }, Some(size)) = (&l.kind, &r.size) {
        l.size_in = size.get(2).copied();
    }
    l.inputs = r.inputs.clone().unwrap_or_default();
    l.outputs = r.outputs.clone().unwrap_or_default();
    if l.outputs.len() > 1 {
        return Err(format!("a layer has one output, got {:?}", l.outputs));
    }
    l.params = r.params.clone().unwrap_or_default();
    l.lr_mult = r.lr.clone().unwrap_or_default();
    l.decay_mult = r.decay.clone().unwrap_or_default();
    let n = l.kind.param_names().len();
    for (opt, len) in [
        ("params", l.params.len()),
        ("lr", l.lr_mult.len()),
        ("decay", l.decay_mult.len()),
    ] {
        if len != 0 && len != n {
            return Err(format!(
                "'{opt}' has {len} entries but a {kind} layer has {n} parameters ({:?})",
                l.kind.param_names()
            ));
        }
    }
    if l.lr_mult
        .iter()
        .chain(&l.decay_mult)
        .any(|v| !(v.is_finite() && *v >= 0.0))
    {
        return Err("'lr' and 'decay' multipliers must be non-negative and finite".into());
    }
    if r.init.is_some() || r.std.is_some() {
        let init = Init::parse(r.init.as_deref().unwrap_or("gaussian"), r.std)
            .map_err(|e| e.to_string())?;
        l.init = Some(init);
    }
    Ok(l)
}

/// Kernel and output channels of a (transposed) convolution, from `size`
/// ([kh, kw, C_in, C_out]) or from `kernel` and `out`.
fn kernel_out(r: &RawLayer) -> Msg<([usize; 2], usize)> {
    let (kernel, out) = match (&r.size, &r.kernel, r.out) {
        (Some(s), None, None) => match s[..] {
            [kh, kw, _, o] => ([kh, kw], o),
            _ => return Err(format!("'size' must be [kh, kw, C_in, C_out], got {s:?}")),
        },
        (None, Some(_), Some(o)) => (two("kernel", r.kernel.as_ref(), 1)?, o),
        _ => return Err("give either 'size' or both 'kernel' and 'out'".into()),
    };
    if out == 0 {
        return Err("the number of output channels must be positive".into());
    }
    Ok((positive("kernel", kernel)?, out))
}

fn unit_interval(opt: &str, v: f32) -> Msg<f32> {
    if !(0.0..1.0).contains(&v) {
        return Err(format!("'{opt}' {v} must be in [0, 1)"));
    }
    Ok(v)
}

fn layer_kind(r: &RawLayer) -> Msg<LayerKind> {
    let groups = r.groups.unwrap_or(1);
    if groups == 0 {
        return Err("'groups' must be at least 1".into());
    }
    Ok(match r.kind.as_str() {
        "conv" => {
            let (kernel, out) = kernel_out(r)?;
            let opts = ConvOpts {
                pad: four("pad", r.pad.as_ref())?,
                stride: positive("stride", two("stride", r.stride.as_ref(), 1)?)?,
                dilation: positive("dilation", two("dilation", r.dilation.as_ref(), 1)?)?,
                groups,
            };
            LayerKind::Conv {
                kernel: Some(kernel),
                out,
                opts,
                bias: r.bias.unwrap_or(true),
            }
        }
        "fc" => LayerKind::Conv {
            kernel: None,
            out: r
                .out
                .filter(|&o| o > 0)
                .ok_or("'out' must be a positive number")?,
            opts: ConvOpts::default(),
            bias: r.bias.unwrap_or(true),
        },
        "convt" => {
            let (kernel, out) = kernel_out(r)?;
            let opts = ConvTOpts {
                upsample: positive("upsample", two("upsample", r.upsample.as_ref(), 1)?)?,
                crop: four("crop", r.crop.as_ref())?,
                groups,
            };
            LayerKind::ConvT {
                kernel,
                out,
                opts,
                bias: r.bias.unwrap_or(true),
            }
        }
        "pool" => {
            let method = match r.method.as_deref().unwrap_or("max") {
                "max" => PoolMethod::Max,
                "avg" => PoolMethod::Avg,
                m => return Err(format!("'method' must be max or avg, got '{m}'")),
            };
            let window = positive("kernel", two("kernel", r.kernel.as_ref(), 0)?)?;
            LayerKind::Pool(PoolOpts {
                method,
                window,
                stride: positive("stride", two("stride", r.stride.as_ref(), 1)?)?,
                pad: four("pad", r.pad.as_ref())?,
                count_pad: r.count_pad.unwrap_or(false),
            })
        }
        "relu" => {
            let leak = r.leak.unwrap_or(0.0);
            if !leak.is_finite() {
                return Err(format!("'leak' {leak} must be finite"));
            }
            LayerKind::Relu { leak }
        }
        "sigmoid" => LayerKind::Sigmoid,
        "tanh" => LayerKind::Tanh,
        "softmax" => LayerKind::Softmax,
        "logsoftmax" => LayerKind::LogSoftmax,
        "softmaxlog" => LayerKind::Loss(LossKind::SoftmaxLog),
        "logistic" => LayerKind::Loss(LossKind::Logistic),
        "hinge" => LayerKind::Loss(LossKind::Hinge),
        "multihinge" => LayerKind::Loss(LossKind::MultiHinge),
        "classerror" => LayerKind::Loss(LossKind::ClassError),
        "topkerror" => match r.k.unwrap_or(5) {
            0 => return Err("'k' must be at least 1".into()),
            k => LayerKind::Loss(LossKind::TopKError(k)),
        },
        "dropout" => LayerKind::Dropout {
            rate: unit_interval("rate", r.rate.unwrap_or(0.5))?,
        },
        "bnorm" => {
            let eps = r.eps.unwrap_or(1e-5);
            if !(eps > 0.0 && eps.is_finite()) {
                return Err(format!("'eps' {eps} must be positive"));
            }
            let momentum = r.momentum.unwrap_or(0.1);
            if !(momentum > 0.0 && momentum <= 1.0) {
                return Err(format!("'momentum' {momentum} must be in (0, 1]"));
            }
            LayerKind::BNorm { eps, momentum }
        }
        "lrn" => {
            let d = LrnOpts::alexnet();
            let o = LrnOpts {
                n: r.n.unwrap_or(d.n),
                kappa: r.kappa.unwrap_or(d.kappa),
                alpha: r.alpha.unwrap_or(d.alpha),
                beta: r.beta.unwrap_or(d.beta),
            };
            o.check().map_err(|e| e.to_string())?;
            LayerKind::Lrn(o)
        }
        "concat" => LayerKind::Concat,
        "crop" => LayerKind::Crop(four("crop", r.crop.as_ref())?),
        "sum" => LayerKind::Sum,
        other => return Err(format!("unknown type '{other}' (known: {TYPES})")),
    })
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", items.join(", "))
}

fn float(v: f32) -> String {
    format!("{v:?}")
}

fn init_toml(init: &Init) -> String {
    match init {
        Init::Gaussian { std } => format!("init = \"gaussian\"\nstd = {}\n", float(*std)),
        i => format!("init = \"{}\"\n", i.name()),
    }
}

fn pad_list(p: &Pad) -> String {
    list(&[p.top, p.bottom, p.left, p.right])
}

fn layer_toml(l: &LayerDesc) -> String {
    let mut s = format!(
        "name = {}\ntype = \"{}\"\ninputs = [{}]\noutputs = [{}]\n",
        quote(&l.name),
        l.kind.type_name(),
        l.inputs
            .iter()
            .map(|v| quote(v))
            .collect::<Vec<_>>()
            .join(", "),
        l.outputs
            .iter()
            .map(|v| quote(v))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let mut kv = |k: &str, v: String| s += &format!("{k} = {v}\n");
    match &l.kind {
        LayerKind::Conv {
            kernel,
            out,
            opts,
            bias,
        } => {
            if let Some(k) = kernel {
                match l.size_in {
                    Some(c) => kv("size", list(&[k[0], k[1], c, *out])),
                    None => {
                        kv("kernel", list(k));
                        kv("out", out.to_string());
                    }
                }
                kv("stride", list(&opts.stride));
                kv("pad", pad_list(&opts.pad));
                kv("dilation", list(&opts.dilation));
                kv("groups", opts.groups.to_string());
            } else {
                kv("out", out.to_string());
            }
            kv("bias", bias.to_string());
        }
        LayerKind::ConvT {
            kernel,
            out,
            opts,
            bias,
        } => {
            kv("kernel", list(kernel));
            kv("out", out.to_string());
            kv("upsample", list(&opts.upsample));
            kv("crop", pad_list(&opts.crop));
            kv("groups", opts.groups.to_string());
            kv("bias", bias.to_string());
        }
        LayerKind::Pool(o) => {
            let m = match o.method {
                PoolMethod::Max => "max",
                PoolMethod::Avg => "avg",
            };
            kv("method", quote(m));
            kv("kernel", list(&o.window));
            kv("stride", list(&o.stride));
            kv("pad", pad_list(&o.pad));
            kv("count_pad", o.count_pad.to_string());
        }
        LayerKind::Relu { leak } => kv("leak", float(*leak)),
        LayerKind::Loss(LossKind::TopKError(k)) => kv("k", k.to_string()),
        LayerKind::Dropout { rate } => kv("rate", float(*rate)),
        LayerKind::BNorm { eps, momentum } => {
            kv("eps", float(*eps));
            kv("momentum", float(*momentum));
        }
        LayerKind::Lrn(o) => {
            kv("n", o.n.to_string());
            kv("kappa", float(o.kappa));
            kv("alpha", float(o.alpha));
            kv("beta", float(o.beta));
        }
        LayerKind::Crop(p) => kv("crop", pad_list(p)),
        _ => {}
    }
    if !l.params.is_empty() {
        kv(
            "params",
            list(&l.params.iter().map(|p| quote(p)).collect::<Vec<_>>()),
        );
    }
    if !l.lr_mult.is_empty() {
        kv(
            "lr",
            list(&l.lr_mult.iter().map(|v| float(*v)).collect::<Vec<_>>()),
        );
    }
    if !l.decay_mult.is_empty() {
        kv(
            "decay",
            list(&l.decay_mult.iter().map(|v| float(*v)).collect::<Vec<_>>()),
        );
    }
    if let Some(init) = &l.init {
        s += &init_toml(init);
    }
    s
}
