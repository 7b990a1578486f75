//! MatConvNet model files (`.mat`): SimpleNN chains and DagNN graphs, with their
//! `meta.normalization` and `meta.classes`.
//!
//! MatConvNet stores arrays column-major with images as H x W x C: filters are
//! H x W x C_in x C_out (transposed here to convnet's (C_out, C_in, H, W)), average
//! images H x W x 3. Its blocks match convnet's: per-side padding [top bottom left
//! right], average pooling over real pixels only, LRN with alpha not divided by the
//! window, batch normalisation with stored moments [mean, sigma] where sigma already
//! holds the epsilon (sigma = sqrt(var + epsilon)).

mod dagnn;
mod reader;
mod simplenn;

pub use reader::{is_mat_file, parse, Value};

use crate::build::{Builder, Msg};
use crate::{Error, Format, ImportOptions, Imported, Result};
use convnet::blocks::conv::ConvOpts;
use convnet::blocks::lrn::LrnOpts;
use convnet::blocks::pool::{PoolMethod, PoolOpts};
use convnet::blocks::Pad;
use convnet::data::folder::{Fit, FolderOptions};
use convnet::data::normalize::Normalization;
use convnet::net::LayerKind;
use convnet::Tensor;
use std::path::Path;

/// The network's variables: the file's top level, or the fields of a struct `net`.
struct Fields<'a>(Vec<(&'a str, &'a Value)>);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
    fn names(&self) -> String {
        self.0
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads a MatConvNet model file from `bytes` (the file `path`).
pub fn import(path: &Path, bytes: &[u8], opts: &ImportOptions) -> Result<Imported> {
    let vars = parse(bytes).map_err(|m| Error::file(path, m))?;
    let top = Fields(vars.iter().map(|(n, v)| (n.as_str(), v)).collect());
    let fields = match top.get("net") {
        Some(Value::Struct { fields, items, .. }) if items.len() == 1 => Fields(
            fields
                .iter()
                .map(String::as_str)
                .zip(items[0].iter())
                .collect(),
        ),
        _ => top,
    };
    convert(&fields, path, opts).map_err(|m| Error::file(path, m))
}

fn convert(f: &Fields, path: &Path, opts: &ImportOptions) -> std::result::Result<Imported, Msg> {
    let dag = f.get("vars").is_some() && f.get("params").is_some();
    let Some(layers) = f.get("layers") else {
        return Err(format!(
            "not a MatConvNet network: no 'layers' (SimpleNN) or 'vars', 'params' and 'layers' \
             (DagNN); the file holds: {}",
            if f.0.is_empty() {
                "nothing".to_string()
            } else {
                f.names()
            }
        ));
    };
    let meta = f.get("meta");
    let norm = meta
        .and_then(|m| m.field("normalization"))
        .or(f.get("normalization"));
    let classes = meta.and_then(|m| m.field("classes")).or(f.get("classes"));
    let mut notes = Vec::new();
    let size = input_size(norm)?;
    let mut b = Builder::new(size);
    if dag {
        dagnn::convert(&mut b, layers, f.get("params"), &mut notes)?;
    } else {
        simplenn::convert(&mut b, layers, &mut notes)?;
    }
    let outputs = b.dims(&final_output(&b)?)?.c;
    let names = classes
        .and_then(|c| c.field("name"))
        .map(|v| strings(v, "meta.classes.name"))
        .transpose()?;
    let class_list = crate::class_names(opts.classes.as_ref().or(names.as_ref()), outputs)
        .map_err(|m| format!("meta.classes.name: {m}"))?;
    let class_descriptions = match classes.and_then(|c| c.field("description")) {
        Some(v) => {
            let d = strings(v, "meta.classes.description")?;
            if d.len() != outputs {
                notes.push(format!(
                    "meta.classes.description has {} entries for {outputs} outputs; left out",
                    d.len()
                ));
                Vec::new()
            } else {
                d
            }
        }
        None => Vec::new(),
    };
    let normalization = normalization(norm, size, &mut notes)?;
    let input = fitting(norm, size, &mut notes);
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let net = b.finish(&name, class_list, &path.display().to_string())?;
    Ok(Imported {
        net,
        format: Format::MatConvNet { dag },
        normalization,
        input,
        class_descriptions,
        notes,
    })
}

/// The variable the network ends with (its last layer's output, before any loss).
fn final_output(b: &Builder) -> std::result::Result<String, Msg> {
    b.layers
        .iter()
        .rev()
        .find(|l| !matches!(l.kind, LayerKind::Loss(_)))
        .map(|l| l.outputs[0].clone())
        .ok_or_else(|| "the network has no layers".to_string())
}

/// Names the scores `prediction`: the input of a final softmax or softmax loss, else
/// the last output; an objective loss writes `objective`.
fn name_outputs(b: &mut Builder) -> std::result::Result<(), Msg> {
    if let Some(l) = b.layers.iter().find(|l| l.kind.is_objective()) {
        let out = l.outputs[0].clone();
        b.rename_var(&out, "objective");
    }
    let last = final_output(b)?;
    let p = b.producer(&last).ok_or("the network has no layers")?;
    let scores = match b.layers[p].kind {
        LayerKind::Softmax => b.layers[p].inputs[0].clone(),
        _ => last,
    };
    if scores != crate::build::INPUT {
        b.rename_var(&scores, "prediction");
    }
    Ok(())
}

/// A cell (or struct array) of strings, or one string.
fn strings(v: &Value, what: &str) -> std::result::Result<Vec<String>, Msg> {
    match v {
        Value::Char { text, .. } => Ok(text.lines().map(str::to_string).collect()),
        Value::Cell { items, .. } => items
            .iter()
            .map(|s| {
                s.text()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what} holds {} where text is expected", s.kind()))
            })
            .collect(),
        other => Err(format!(
            "{what} is {}, not a cell array of text",
            other.kind()
        )),
    }
}

/// Numbers of an optional field, or `default`.
fn nums(v: Option<&Value>, what: &str, default: &[f32]) -> std::result::Result<Vec<f32>, Msg> {
    match v {
        None => Ok(default.to_vec()),
        Some(v) if v.is_empty() => Ok(default.to_vec()),
        Some(v) => v
            .numbers()
            .map(<[f32]>::to_vec)
            .ok_or_else(|| format!("'{what}' is {}, not numbers", v.kind())),
    }
}

/// A non-negative whole number.
fn count(v: f32, what: &str) -> std::result::Result<usize, Msg> {
    if v >= 0.0 && v.fract() == 0.0 && v < 1e9 {
        Ok(v as usize)
    } else {
        Err(format!("'{what}' {v} is not a non-negative whole number"))
    }
}

/// MatConvNet's two-value options ([vertical horizontal]; one value means both).
fn two(v: Option<&Value>, what: &str, default: usize) -> std::result::Result<[usize; 2], Msg> {
    let n = nums(v, what, &[default as f32])?;
    match n[..] {
        [a] => Ok([count(a, what)?, count(a, what)?]),
        [a, b] => Ok([count(a, what)?, count(b, what)?]),
        _ => Err(format!("'{what}' must have 1 or 2 values, got {}", n.len())),
    }
}

/// MatConvNet's padding [top bottom left right] (one value means all four).
fn pad4(v: Option<&Value>) -> std::result::Result<Pad, Msg> {
    let n = nums(v, "pad", &[0.0])?;
    match n[..] {
        [a] => Ok(Pad::all(count(a, "pad")?)),
        [t, b, l, r] => Ok(Pad::new(
            count(t, "pad")?,
            count(b, "pad")?,
            count(l, "pad")?,
            count(r, "pad")?,
        )),
        _ => Err(format!("'pad' must have 1 or 4 values, got {}", n.len())),
    }
}

/// A convolution from H x W x C_in x C_out filters (column-major) and biases; the
/// input's channels give the groups.
fn conv_layer(
    filters: &Value,
    biases: Option<&Value>,
    in_channels: usize,
    pad: Pad,
    stride: [usize; 2],
    dilation: [usize; 2],
) -> std::result::Result<(LayerKind, Vec<Tensor>), Msg> {
    let data = filters
        .numbers()
        .ok_or_else(|| format!("filters are {}, not numbers", filters.kind()))?;
    let mut d = filters.dims().to_vec();
    if d.len() > 4 || d.iter().skip(4).any(|&x| x != 1) {
        return Err(format!(
            "filters of dimensions {d:?} are not H x W x C_in x C_out"
        ));
    }
    d.resize(4, 1);
    let [h, w, cin, cout] = [d[0], d[1], d[2], d[3]];
    if h * w * cin * cout == 0 || !in_channels.is_multiple_of(cin) {
        return Err(format!(
            "filters of dimensions {h}x{w}x{cin}x{cout} do not fit an input of {in_channels} channels"
        ));
    }
    let groups = in_channels / cin;
    let mut t = vec![0f32; data.len()];
    for k in 0..cout {
        for c in 0..cin {
            for y in 0..h {
                for x in 0..w {
                    t[((k * cin + c) * h + y) * w + x] = data[y + h * (x + w * (c + cin * k))];
                }
            }
        }
    }
    let mut params = vec![Tensor::from_vec(&[cout, cin, h, w], t).map_err(|e| e.to_string())?];
    if let Some(b) = biases.filter(|b| !b.is_empty()) {
        let v = b
            .numbers()
            .ok_or_else(|| format!("biases are {}, not numbers", b.kind()))?;
        if v.len() != cout {
            return Err(format!("{} biases for {cout} filters", v.len()));
        }
        params.push(Tensor::from_vec(&[cout], v.to_vec()).map_err(|e| e.to_string())?);
    }
    let kind = LayerKind::Conv {
        kernel: Some([h, w]),
        out: cout,
        opts: ConvOpts {
            pad,
            stride,
            dilation,
            groups,
        },
        bias: params.len() == 2,
    };
    Ok((kind, params))
}

fn pool_layer(
    method: &str,
    window: [usize; 2],
    stride: [usize; 2],
    pad: Pad,
) -> std::result::Result<LayerKind, Msg> {
    let method = match method {
        "max" => PoolMethod::Max,
        "avg" => PoolMethod::Avg,
        m => return Err(format!("pooling method '{m}' is not max or avg")),
    };
    // MatConvNet's average counts real pixels only: convnet's default.
    Ok(LayerKind::Pool(PoolOpts {
        method,
        window,
        stride,
        pad,
        count_pad: false,
    }))
}

/// MatConvNet's LRN `param` [N kappa alpha beta]: the same formula as convnet's.
fn lrn_layer(param: Option<&Value>) -> std::result::Result<LayerKind, Msg> {
    let p = nums(param, "param", &[5.0, 1.0, 1e-4 / 5.0, 0.75])?;
    let [n, kappa, alpha, beta] = p[..] else {
        return Err(format!(
            "'param' must be [N kappa alpha beta], got {} values",
            p.len()
        ));
    };
    let o = LrnOpts {
        n: count(n, "param N")?,
        kappa,
        alpha,
        beta,
    };
    o.check().map_err(|e| e.to_string())?;
    Ok(LayerKind::Lrn(o))
}

/// Batch normalisation from MatConvNet's multipliers, biases and moments (C x 2:
/// mean, sigma = sqrt(var + epsilon)) as convnet's gain, bias and running mean and
/// variance with the same epsilon.
fn bnorm_layer(
    mult: &Value,
    bias: &Value,
    moments: &Value,
    eps: f32,
    channels: usize,
) -> std::result::Result<(LayerKind, Vec<Tensor>), Msg> {
    let get = |v: &Value, what: &str, len: usize| -> std::result::Result<Vec<f32>, Msg> {
        let n = v
            .numbers()
            .ok_or_else(|| format!("{what} are {}, not numbers", v.kind()))?;
        if n.len() != len {
            return Err(format!(
                "{what} have {} values for {channels} channels",
                n.len()
            ));
        }
        Ok(n.to_vec())
    };
    let g = get(mult, "multipliers", channels)?;
    let b = get(bias, "biases", channels)?;
    let m = get(moments, "moments", 2 * channels)?;
    let (mean, sigma) = m.split_at(channels);
    if let Some(c) = sigma.iter().position(|s| !(*s > 0.0 && s.is_finite())) {
        return Err(format!(
            "moments: sigma of channel {} is {}",
            c + 1,
            sigma[c]
        ));
    }
    // sqrt(var + eps) must give sigma back: eps no larger than the smallest sigma^2.
    let min_sq = sigma.iter().map(|s| s * s).fold(f32::INFINITY, f32::min);
    let eps = if eps > 0.0 && eps < min_sq {
        eps
    } else {
        min_sq / 2.0
    };
    let var: Vec<f32> = sigma
        .iter()
        .map(|s| ((*s as f64).powi(2) - eps as f64) as f32)
        .collect();
    let t = |v: Vec<f32>| Tensor::from_vec(&[channels], v).map_err(|e| e.to_string());
    Ok((
        LayerKind::BNorm { eps, momentum: 0.1 },
        vec![t(g)?, t(b)?, t(mean.to_vec())?, t(var)?],
    ))
}

/// The input size (H, W, C): `normalization.imageSize`.
fn input_size(norm: Option<&Value>) -> std::result::Result<[usize; 3], Msg> {
    let size = norm.and_then(|n| n.field("imageSize")).ok_or(
        "meta.normalization.imageSize is missing: the input size of the network is unknown",
    )?;
    let v = nums(Some(size), "imageSize", &[])?;
    match v[..] {
        [h, w] => Ok([count(h, "imageSize")?, count(w, "imageSize")?, 3]),
        [h, w, c, ..] => Ok([
            count(h, "imageSize")?,
            count(w, "imageSize")?,
            count(c, "imageSize")?,
        ]),
        _ => Err(format!(
            "meta.normalization.imageSize has {} values",
            v.len()
        )),
    }
    .and_then(|s| {
        if s.contains(&0) {
            Err(format!("meta.normalization.imageSize {s:?} has a zero"))
        } else {
            Ok(s)
        }
    })
}

/// `averageImage` as convnet's normalisation: one value per channel, or a whole
/// image of the input's size (another size is reduced to its per-channel mean).
fn normalization(
    norm: Option<&Value>,
    [h, w, c]: [usize; 3],
    notes: &mut Vec<String>,
) -> std::result::Result<Normalization, Msg> {
    let Some(avg) = norm
        .and_then(|n| n.field("averageImage"))
        .filter(|v| !v.is_empty())
    else {
        return Ok(Normalization::None);
    };
    let v = nums(Some(avg), "averageImage", &[])?;
    if v.len() == c {
        return Ok(Normalization::PerChannel {
            mean: v,
            std: vec![1.0; c],
        });
    }
    let d = avg.dims();
    if d.len() < 3 || d[2] != c || v.len() != d[0] * d[1] * c {
        return Err(format!(
            "averageImage of dimensions {d:?} does not fit {c} channels"
        ));
    }
    let (ah, aw) = (d[0], d[1]);
    let chw = |ch: usize, y: usize, x: usize| v[y + ah * (x + aw * ch)];
    if (ah, aw) == (h, w) {
        let mean = (0..c)
            .flat_map(|ch| (0..h).flat_map(move |y| (0..w).map(move |x| (ch, y, x))))
            .map(|(ch, y, x)| chw(ch, y, x))
            .collect();
        return Ok(Normalization::MeanImage {
            channels: c,
            height: h,
            width: w,
            mean,
        });
    }
    notes.push(format!(
        "averageImage is {ah}x{aw}, not the {h}x{w} input: its per-channel mean is used"
    ));
    let mean = (0..c)
        .map(|ch| {
            let s: f64 = (0..ah * aw).map(|i| v[ch * ah * aw + i] as f64).sum();
            (s / (ah * aw) as f64) as f32
        })
        .collect();
    Ok(Normalization::PerChannel {
        mean,
        std: vec![1.0; c],
    })
}

/// How MatConvNet fits an image to the input: with `keepAspect`, resize the shorter
/// side to `imageSize + border` (or `imageSize / cropSize`) and take the centre.
fn fitting(
    norm: Option<&Value>,
    [h, w, c]: [usize; 3],
    notes: &mut Vec<String>,
) -> Option<FolderOptions> {
    let norm = norm?;
    let keep = norm
        .field("keepAspect")
        .and_then(|v| v.numbers())
        .and_then(|n| n.first().copied())
        .is_none_or(|v| v != 0.0);
    let border = norm
        .field("border")
        .and_then(|v| v.numbers())
        .and_then(|n| n.first().copied())
        .filter(|b| *b >= 0.0 && b.fract() == 0.0)
        .map(|b| b as usize);
    let crop = norm
        .field("cropSize")
        .and_then(|v| v.numbers())
        .and_then(|n| n.first().copied())
        .filter(|f| *f > 0.0 && *f <= 1.0);
    if let Some(i) = norm.field("interpolation").and_then(Value::text) {
        if i != "bilinear" {
            notes.push(format!(
                "interpolation '{i}': convnet resizes images bilinearly"
            ));
        }
    }
    let side = match (border, crop) {
        (Some(b), _) => h.min(w) + b,
        (None, Some(f)) => (h.min(w) as f32 / f).round() as usize,
        (None, None) => h.min(w),
    };
    let mut o = FolderOptions::new(c, h, w);
    if keep {
        o.fit = Fit::ShorterSide { size: side };
    } else if side != h.min(w) {
        notes.push(
            "keepAspect = false with a border: images are resized to the input, not cropped".into(),
        );
    }
    (c == 1 || c == 3).then_some(o)
}
