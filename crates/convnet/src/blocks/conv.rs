//! Convolution: `y[n,o,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] x[n, g*C/G + c, i*sh - pt + u*dh, j*sw - pl + v*dw]`.
//! Filters are (C_out, C_in/groups, kh, kw), biases (C_out). Fully connected is a
//! convolution whose kernel covers the whole input.

use super::Pad;
use crate::error::Result;
use crate::tensor::{Dims4, Tensor};

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
pub fn out_dims(_x: Dims4, _w: &[usize], _o: &ConvOpts) -> Result<Dims4> {
    unimplemented!()
}

pub fn forward(_x: &Tensor, _w: &Tensor, _b: Option<&Tensor>, _o: &ConvOpts) -> Result<Tensor> {
    unimplemented!()
}

pub fn backward(
    _x: &Tensor,
    _w: &Tensor,
    _b: Option<&Tensor>,
    _o: &ConvOpts,
    _dy: &Tensor,
    _need_dx: bool,
) -> Result<ConvGrads> {
    unimplemented!()
}
