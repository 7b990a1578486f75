//! Transposed convolution (upsampling): the backward of a convolution with respect to
//! its input, used as a forward. Filters are (C_in, C_out/groups, kh, kw) as in
//! PyTorch's ConvTranspose2d; `H_out = (H - 1) * upsample + kh - crop_top - crop_bottom`.
//!
//! It is exactly the adjoint of the convolution with the same filters, stride
//! `upsample` and padding `crop` that maps the (N, C_out, H_out, W_out) output back to
//! the (N, C_in, H, W) input; so its forward runs that convolution's input gradient,
//! and its backward runs that convolution's forward (for `dx`) and filter gradient
//! (for `dw`) — the same kernels, with the roles of `x` and `y` swapped.

use super::conv::{check_bias, dims, ConvGrads};
use super::kernels::conv_gemm::{self, Geom};
use super::Pad;
use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Dims4, Tensor};

const BLOCK: &str = "convt";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvTOpts {
    /// Upsampling factor (vertical, horizontal): the stride of the matching convolution.
    pub upsample: [usize; 2],
    /// Rows and columns removed from each side of the full output.
    pub crop: Pad,
    pub groups: usize,
}

impl Default for ConvTOpts {
    fn default() -> Self {
        ConvTOpts {
            upsample: [1, 1],
            crop: Pad::default(),
            groups: 1,
        }
    }
}

pub fn out_dims(x: Dims4, w: &[usize], o: &ConvTOpts) -> Result<Dims4> {
    let g = geometry(x, w, o)?;
    Ok(Dims4::new(g.n, g.c, g.h, g.w))
}

/// The matching convolution: its input is this block's output, its output this
/// block's input.
fn geometry(x: Dims4, w: &[usize], o: &ConvTOpts) -> Result<Geom> {
    let &[c_in, og, kh, kw] = w else {
        return Err(Error::block(
            BLOCK,
            format!(
                "filters must be (C_in, C_out/groups, kh, kw), got shape {}",
                fmt_shape(w)
            ),
        ));
    };
    let groups = o.groups;
    if groups == 0 {
        return Err(Error::block(BLOCK, "groups must be at least 1"));
    }
    if !x.c.is_multiple_of(groups) {
        return Err(Error::block(
            BLOCK,
            format!(
                "groups {groups} must divide the {} input channels of x ({x})",
                x.c
            ),
        ));
    }
    if c_in != x.c {
        return Err(Error::block(
            BLOCK,
            format!(
                "filters are for {c_in} input channels but x has {} (x {x}, filters {})",
                x.c,
                fmt_shape(w)
            ),
        ));
    }
    let ho = axis("height", x.h, kh, o.upsample[0], o.crop.top, o.crop.bottom)?;
    let wo = axis("width", x.w, kw, o.upsample[1], o.crop.left, o.crop.right)?;
    let c_out = og * groups;
    Ok(Geom::new(
        [x.n, c_out, ho, wo],
        [c_in, og, kh, kw],
        groups,
        o.crop,
        o.upsample,
        [1, 1],
        [x.h, x.w],
    ))
}

/// `(len - 1) * up + k - lo - hi`, which must be positive.
fn axis(name: &str, len: usize, k: usize, up: usize, lo: usize, hi: usize) -> Result<usize> {
    if up == 0 || k == 0 || len == 0 {
        return Err(Error::block(
            BLOCK,
            format!("{name}: upsample {up}, kernel {k} and input size {len} must be positive"),
        ));
    }
    let full = (len - 1) * up + k;
    if lo + hi >= full {
        return Err(Error::block(
            BLOCK,
            format!("{name}: crop {lo} + {hi} leaves nothing of the full output {full} ((input {len} - 1) * upsample {up} + kernel {k})"),
        ));
    }
    Ok(full - lo - hi)
}

pub fn forward(x: &Tensor, w: &Tensor, b: Option<&Tensor>, o: &ConvTOpts) -> Result<Tensor> {
    let g = geometry(dims(BLOCK, "x", x)?, w.shape(), o)?;
    check_bias(BLOCK, b, g.c)?;
    let mut y = Tensor::zeros4(Dims4::new(g.n, g.c, g.h, g.w));
    conv_gemm::backward_data(&g, x.data(), w.data(), y.data_mut());
    if let Some(b) = b {
        conv_gemm::add_bias(g.c, g.h * g.w, b.data(), y.data_mut());
    }
    Ok(y)
}

pub fn backward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    o: &ConvTOpts,
    dy: &Tensor,
    need_dx: bool,
) -> Result<ConvGrads> {
    let g = geometry(dims(BLOCK, "x", x)?, w.shape(), o)?;
    check_bias(BLOCK, b, g.c)?;
    dy.expect_shape(BLOCK, "dy", &[g.n, g.c, g.h, g.w])?;
    let dx = if need_dx {
        let mut dx = Tensor::zeros(x.shape())?;
        conv_gemm::forward(&g, dy.data(), w.data(), None, dx.data_mut());
        Some(dx)
    } else {
        None
    };
    let mut dw = Tensor::zeros(w.shape())?;
    conv_gemm::backward_filter(&g, dy.data(), x.data(), dw.data_mut(), false);
    let db = match b {
        Some(_) => {
            let mut db = Tensor::zeros(&[g.c])?;
            conv_gemm::bias_grad(g.n, g.c, g.h * g.w, dy.data(), db.data_mut(), false);
            Some(db)
        }
        None => None,
    };
    Ok(ConvGrads { dx, dw, db })
}
