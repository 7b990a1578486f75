//! Convolution: `y[n,o,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] x[n, g*C/G + c, i*sh - pt + u*dh, j*sw - pl + v*dw]`
//! where `g = o / (C_out/G)` is the output channel's group.
//!
//! Filters are (C_out, C_in/groups, kh, kw), biases (C_out), tensors NCHW; the output
//! size follows [`out_size`]. A **fully connected** layer is a convolution whose kernel
//! covers the whole (unpadded) input: `x` (N, C, H, W) with filters (C_out, C, H, W)
//! gives `y` (N, C_out, 1, 1). That case runs as one matrix product over the batch,
//! reading `x` in place; an (N, C) input is read as (N, C, 1, 1).
//!
//! All three products (forward, input and filter gradients) are matrix products; see
//! [`conv_gemm`] for how they are cut and parallelised (deterministically).

pub use super::kernels::conv_gemm::FilterCache;
use super::kernels::conv_gemm::{self, Geom};
use super::{out_size, Pad};
use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Dims4, Tensor};

const BLOCK: &str = "conv";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvOpts {
    pub pad: Pad,
    /// Stride (vertical, horizontal).
    pub stride: [usize; 2],
    /// Dilation (vertical, horizontal).
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Default for ConvOpts {
    fn default() -> Self {
        ConvOpts {
            pad: Pad::default(),
            stride: [1, 1],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// Gradients of a convolution: `dx` only when asked for (a first layer needs none).
#[derive(Clone, Debug)]
pub struct ConvGrads {
    pub dx: Option<Tensor>,
    pub dw: Tensor,
    pub db: Option<Tensor>,
}

/// Output sizes for input `x` and filter shape `w` (checks every option and shape).
pub fn out_dims(x: Dims4, w: &[usize], o: &ConvOpts) -> Result<Dims4> {
    Ok(geometry(x, w, o)?.out())
}

/// Checks `x`, the filter shape and the options together and returns the sizes the
/// kernels work with.
pub(crate) fn geometry(x: Dims4, w: &[usize], o: &ConvOpts) -> Result<Geom> {
    let &[c_out, cg, kh, kw] = w else {
        return Err(Error::block(
            BLOCK,
            format!(
                "filters must be (C_out, C_in/groups, kh, kw), got shape {}",
                fmt_shape(w)
            ),
        ));
    };
    let groups = o.groups;
    if groups == 0 {
        return Err(Error::block(BLOCK, "groups must be at least 1"));
    }
    if !x.c.is_multiple_of(groups) || !c_out.is_multiple_of(groups) {
        return Err(Error::block(
            BLOCK,
            format!(
                "groups {groups} must divide both the {} input channels of x ({x}) and the {c_out} filters ({})",
                x.c,
                fmt_shape(w)
            ),
        ));
    }
    if cg * groups != x.c {
        return Err(Error::block(
            BLOCK,
            format!(
                "filter has {cg} input channels per group but x has {} channels / {groups} groups (x {x}, filters {})",
                x.c,
                fmt_shape(w)
            ),
        ));
    }
    let ho = axis(
        "height",
        x.h,
        o.pad.top,
        o.pad.bottom,
        kh,
        o.stride[0],
        o.dilation[0],
        x,
        w,
    )?;
    let wo = axis(
        "width",
        x.w,
        o.pad.left,
        o.pad.right,
        kw,
        o.stride[1],
        o.dilation[1],
        x,
        w,
    )?;
    Ok(Geom::new(
        [x.n, x.c, x.h, x.w],
        [c_out, cg, kh, kw],
        groups,
        o.pad,
        o.stride,
        o.dilation,
        [ho, wo],
    ))
}

/// One axis's output size, with the error naming the shapes involved.
#[allow(clippy::too_many_arguments)]
fn axis(
    name: &str,
    len: usize,
    lo: usize,
    hi: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    x: Dims4,
    w: &[usize],
) -> Result<usize> {
    out_size(BLOCK, name, len, lo, hi, k, stride, dilation).map_err(|e| match e {
        Error::Block { block, msg } => {
            Error::block(block, format!("{msg} (x {x}, filters {})", fmt_shape(w)))
        }
        e => e,
    })
}

/// `x` as NCHW sizes, with the error naming the block.
pub(crate) fn dims(block: &'static str, what: &str, t: &Tensor) -> Result<Dims4> {
    if t.shape().is_empty() || t.shape().len() > 4 {
        return Err(Error::block(
            block,
            format!(
                "{what} must be an NCHW tensor of rank 1 to 4, got shape {}",
                fmt_shape(t.shape())
            ),
        ));
    }
    t.dims4()
}

/// Fails unless `b` is a vector of `c` biases.
pub(crate) fn check_bias(block: &'static str, b: Option<&Tensor>, c: usize) -> Result<()> {
    match b {
        Some(b) if b.shape() != [c] => Err(Error::block(
            block,
            format!(
                "bias has shape {} but the layer has {c} output channels",
                fmt_shape(b.shape())
            ),
        )),
        _ => Ok(()),
    }
}

pub fn forward(x: &Tensor, w: &Tensor, b: Option<&Tensor>, o: &ConvOpts) -> Result<Tensor> {
    forward_relu(x, w, b, o, false)
}

/// [`forward`], followed by `max(0, y)` when `relu` (applied as the output is
/// written, with no pass of its own).
pub fn forward_relu(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    o: &ConvOpts,
    relu: bool,
) -> Result<Tensor> {
    forward_with(x, w, b, o, relu, None)
}

/// [`forward_relu`], keeping the filters packed for the products in `cache` while
/// `w` stays the same (see [`FilterCache`]): for inference, and for layers kept
/// fixed while the rest of a network trains.
pub fn forward_relu_cached(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    o: &ConvOpts,
    relu: bool,
    cache: &mut FilterCache,
) -> Result<Tensor> {
    forward_with(x, w, b, o, relu, Some(cache))
}

fn forward_with(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    o: &ConvOpts,
    relu: bool,
    cache: Option<&mut FilterCache>,
) -> Result<Tensor> {
    let g = geometry(dims(BLOCK, "x", x)?, w.shape(), o)?;
    check_bias(BLOCK, b, g.c_out)?;
    let mut y = Tensor::zeros4(g.out());
    let (xd, wd, bd, yd) = (x.data(), w.data(), b.map(|b| b.data()), y.data_mut());
    match cache {
        Some(c) => conv_gemm::forward_cached(&g, xd, wd, w.version(), bd, relu, yd, c),
        None => conv_gemm::forward_fused(&g, xd, wd, bd, relu, yd),
    }
    Ok(y)
}

pub fn backward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    o: &ConvOpts,
    dy: &Tensor,
    need_dx: bool,
) -> Result<ConvGrads> {
    let mut dw = Tensor::zeros(w.shape())?;
    let mut db = match b {
        Some(b) => Some(Tensor::zeros(b.shape())?),
        None => None,
    };
    let dx = backward_into(x, w, b, o, dy, need_dx, &mut dw, db.as_mut(), false)?;
    Ok(ConvGrads { dx, dw, db })
}

/// [`backward`] writing the filter and bias gradients into `dw` and `db` (shaped
/// as `w` and `b`), over what they hold or, when `accumulate`, added to it (a
/// network sums the gradients of a shared parameter this way, without
/// temporaries). Returns `dx` when asked for.
#[allow(clippy::too_many_arguments)]
pub fn backward_into(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    o: &ConvOpts,
    dy: &Tensor,
    need_dx: bool,
    dw: &mut Tensor,
    db: Option<&mut Tensor>,
    accumulate: bool,
) -> Result<Option<Tensor>> {
    let g = geometry(dims(BLOCK, "x", x)?, w.shape(), o)?;
    check_bias(BLOCK, b, g.c_out)?;
    dy.expect_shape(BLOCK, "dy", &g.out().to_vec())?;
    dw.expect_shape(BLOCK, "dw", w.shape())?;
    let dx = if need_dx {
        let mut dx = Tensor::zeros(x.shape())?;
        conv_gemm::backward_data(&g, dy.data(), w.data(), dx.data_mut());
        Some(dx)
    } else {
        None
    };
    conv_gemm::backward_filter(&g, x.data(), dy.data(), dw.data_mut(), accumulate);
    if let Some(db) = db {
        db.expect_shape(BLOCK, "db", &[g.c_out])?;
        conv_gemm::bias_grad(g.n, g.c_out, g.p(), dy.data(), db.data_mut(), accumulate);
    }
    Ok(dx)
}
