//! Transposed convolution (upsampling): the backward of a convolution with respect to
//! its input, used as a forward. Filters are (C_in, C_out/groups, kh, kw) as in
//! PyTorch's ConvTranspose2d; `H_out = (H - 1) * upsample + kh - crop_top - crop_bottom`.

use super::conv::ConvGrads;
use super::Pad;
use crate::error::Result;
use crate::tensor::{Dims4, Tensor};

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

pub fn out_dims(_x: Dims4, _w: &[usize], _o: &ConvTOpts) -> Result<Dims4> {
    unimplemented!()
}

pub fn forward(_x: &Tensor, _w: &Tensor, _b: Option<&Tensor>, _o: &ConvTOpts) -> Result<Tensor> {
    unimplemented!()
}

pub fn backward(
    _x: &Tensor,
    _w: &Tensor,
    _b: Option<&Tensor>,
    _o: &ConvTOpts,
    _dy: &Tensor,
    _need_dx: bool,
) -> Result<ConvGrads> {
    unimplemented!()
}
