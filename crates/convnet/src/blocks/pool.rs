//! Max and average pooling over windows of each channel. Max pads with -inf; average
//! counts only real pixels unless `count_pad` is set.

use super::Pad;
use crate::error::Result;
use crate::tensor::{Dims4, Tensor};

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

pub fn out_dims(_x: Dims4, _o: &PoolOpts) -> Result<Dims4> {
    unimplemented!()
}

pub fn forward(_x: &Tensor, _o: &PoolOpts) -> Result<Tensor> {
    unimplemented!()
}

/// dz/dx; max pooling routes each dz/dy to the first maximum of its window.
pub fn backward(_x: &Tensor, _o: &PoolOpts, _dy: &Tensor) -> Result<Tensor> {
    unimplemented!()
}
