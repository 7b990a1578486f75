//! Node attributes, and the padding, stride and size rules of convolution and
//! pooling attributes.

use crate::build::Msg;
use crate::onnx::proto::{attr_type, AttributeProto};
use convnet::blocks::Pad;
use convnet::Dims4;

/// Attribute access by name, with defaults.
pub(super) struct Attrs<'a>(pub(super) &'a [AttributeProto]);

impl Attrs<'_> {
    pub(super) fn get(&self, name: &str) -> Option<&AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }
    pub(super) fn int(&self, name: &str, default: i64) -> Result<i64, Msg> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == attr_type::INT || a.r#type == 0 => Ok(a.i),
            Some(_) => Err(format!("attribute '{name}' must be an integer")),
        }
    }
    pub(super) fn float(&self, name: &str, default: f32) -> Result<f32, Msg> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == attr_type::FLOAT || a.r#type == 0 => Ok(a.f),
            Some(_) => Err(format!("attribute '{name}' must be a number")),
        }
    }
    pub(super) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, Msg> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == attr_type::INTS || a.r#type == 0 => Ok(Some(a.ints.clone())),
            Some(_) => Err(format!("attribute '{name}' must be a list of integers")),
        }
    }
    pub(super) fn string(&self, name: &str, default: &str) -> Result<String, Msg> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(a) if a.r#type == attr_type::STRING || a.r#type == 0 => {
                Ok(String::from_utf8_lossy(&a.s).into_owned())
            }
            Some(_) => Err(format!("attribute '{name}' must be a string")),
        }
    }
    /// Fails on an attribute other than `known`.
    pub(super) fn only(&self, known: &[&str]) -> Result<(), Msg> {
        match self.0.iter().find(|a| !known.contains(&a.name.as_str())) {
            Some(a) => Err(format!("attribute '{}' is not supported", a.name)),
            None => Ok(()),
        }
    }
}

/// A non-negative integer of a list attribute.
pub(super) fn unsigned(v: i64, what: &str) -> Result<usize, Msg> {
    usize::try_from(v).map_err(|_| format!("{what} {v} must not be negative"))
}

/// Two spatial values of a list attribute (`default` for both when absent).
pub(super) fn pair(v: Option<Vec<i64>>, what: &str, default: usize) -> Result<[usize; 2], Msg> {
    match v.as_deref() {
        None => Ok([default, default]),
        Some([a, b]) => Ok([unsigned(*a, what)?, unsigned(*b, what)?]),
        Some(other) => Err(format!("'{what}' must have 2 values (2-D), got {other:?}")),
    }
}

/// ONNX's `pads` [top, left, bottom, right] as convnet's per-side padding.
pub(super) fn pads(v: Option<Vec<i64>>) -> Result<Pad, Msg> {
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

pub(super) fn add_pad(a: Pad, b: Pad) -> Pad {
    Pad::new(
        a.top + b.top,
        a.bottom + b.bottom,
        a.left + b.left,
        a.right + b.right,
    )
}

/// Padding for `auto_pad` SAME_UPPER / SAME_LOWER: the output has ceil(len / stride)
/// elements; the odd pixel goes at the end (UPPER) or the start (LOWER).
pub(super) fn same_pad(
    len: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    upper: bool,
) -> (usize, usize) {
    // Left to the layer's own check, which names the axis and the zero.
    if k == 0 || stride == 0 {
        return (0, 0);
    }
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

/// The padding of a convolution or pooling given `auto_pad` and `pads`, over `x`
/// already padded by `pre` (a Pad folded into the layer).
pub(super) fn spatial_pads(
    a: &Attrs,
    x: Dims4,
    pre: Pad,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<Pad, Msg> {
    match a.string("auto_pad", "NOTSET")?.as_str() {
        "NOTSET" | "" => pads(a.ints("pads")?),
        "VALID" => Ok(Pad::default()),
        m @ ("SAME_UPPER" | "SAME_LOWER") => {
            let upper = m == "SAME_UPPER";
            let (h, w) = (x.h + pre.top + pre.bottom, x.w + pre.left + pre.right);
            let (t, bo) = same_pad(h, kernel[0], stride[0], dilation[0], upper);
            let (l, r) = same_pad(w, kernel[1], stride[1], dilation[1], upper);
            Ok(Pad::new(t, bo, l, r))
        }
        m => Err(format!("auto_pad '{m}' is not an ONNX value")),
    }
}

/// The output length of ONNX pooling with `ceil_mode` (a last window must start
/// inside the input or its leading padding), and the extra trailing padding that
/// gives it under convnet's floor rounding.
pub(super) fn ceil_extra(len: usize, lo: usize, hi: usize, k: usize, stride: usize) -> usize {
    let padded = len + lo + hi;
    // A zero stride is left to the layer's own check.
    if padded < k || stride == 0 {
        return 0;
    }
    let mut out = (padded - k).div_ceil(stride) + 1;
    if (out - 1) * stride >= len + lo {
        out -= 1;
    }
    ((out - 1) * stride + k).saturating_sub(padded)
}
