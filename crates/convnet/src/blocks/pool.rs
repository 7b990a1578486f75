//! Max and average pooling over windows of each channel. Max pads with -inf; average
//! counts only real pixels unless `count_pad` is set.
//!
//! Each side's padding must be smaller than the window along that axis, so that every
//! window holds at least one real pixel (a window of padding only would have no
//! maximum, and no pixels to average).

use super::kernels::pool as kernel;
use super::{out_size, Pad};
use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Dims4, Tensor};

const BLOCK: &str = "pool";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMethod {
    Max,
    Avg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolOpts {
    pub method: PoolMethod,
    /// Window (height, width).
    pub window: [usize; 2],
    pub stride: [usize; 2],
    pub pad: Pad,
    /// Average pooling divides by the full window, padding included.
    pub count_pad: bool,
}

fn check_pad(x: Dims4, side: &str, pad: usize, axis: &str, k: usize) -> Result<()> {
    if pad >= k {
        return Err(Error::block(
            BLOCK,
            format!(
                "pad {side} {pad} must be smaller than the window {axis} {k} (x {x}), \
                 or a window could cover padding only"
            ),
        ));
    }
    Ok(())
}

pub fn out_dims(x: Dims4, o: &PoolOpts) -> Result<Dims4> {
    if x.h == 0 || x.w == 0 {
        return Err(Error::block(BLOCK, format!("x {x} has empty feature maps")));
    }
    let [kh, kw] = o.window;
    let [sh, sw] = o.stride;
    let p = o.pad;
    let oh = out_size(BLOCK, "height", x.h, p.top, p.bottom, kh, sh, 1)?;
    let ow = out_size(BLOCK, "width", x.w, p.left, p.right, kw, sw, 1)?;
    check_pad(x, "top", p.top, "height", kh)?;
    check_pad(x, "bottom", p.bottom, "height", kh)?;
    check_pad(x, "left", p.left, "width", kw)?;
    check_pad(x, "right", p.right, "width", kw)?;
    Ok(Dims4::new(x.n, x.c, oh, ow))
}

fn x_dims(x: &Tensor) -> Result<Dims4> {
    x.dims4()
        .map_err(|e| Error::block(BLOCK, format!("x: {e}")))
}

/// The kernels' view of a pooling of `x` into `y` (for kernel-level benchmarks too).
pub fn geometry(x: Dims4, y: Dims4, o: &PoolOpts) -> kernel::Geometry {
    kernel::Geometry {
        h: x.h,
        w: x.w,
        oh: y.h,
        ow: y.w,
        kh: o.window[0],
        kw: o.window[1],
        sh: o.stride[0],
        sw: o.stride[1],
        pad_top: o.pad.top,
        pad_left: o.pad.left,
    }
}

pub fn forward(x: &Tensor, o: &PoolOpts) -> Result<Tensor> {
    let xd = x_dims(x)?;
    let yd = out_dims(xd, o)?;
    let g = geometry(xd, yd, o);
    let mut y = Tensor::zeros4(yd);
    match o.method {
        PoolMethod::Max => kernel::max_forward(x.data(), &g, y.data_mut()),
        PoolMethod::Avg => kernel::avg_forward(x.data(), &g, o.count_pad, y.data_mut()),
    }
    Ok(y)
}

/// dz/dx; max pooling routes each dz/dy to the first maximum of its window (in
/// row-major order), found again from `x`.
pub fn backward(x: &Tensor, o: &PoolOpts, dy: &Tensor) -> Result<Tensor> {
    let xd = x_dims(x)?;
    let yd = out_dims(xd, o)?;
    if dy.dims4().ok() != Some(yd) {
        return Err(Error::block(
            BLOCK,
            format!(
                "dy has shape {} but the output of x {xd} is {yd}",
                fmt_shape(dy.shape())
            ),
        ));
    }
    let g = geometry(xd, yd, o);
    let mut dx = Tensor::zeros(x.shape())?;
    match o.method {
        PoolMethod::Max => kernel::max_backward(x.data(), &g, dy.data(), dx.data_mut()),
        PoolMethod::Avg => kernel::avg_backward(&g, o.count_pad, dy.data(), dx.data_mut()),
    }
    Ok(dx)
}
