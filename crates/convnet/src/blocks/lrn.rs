//! Local response normalisation across channels (AlexNet):
//! `y = x / (kappa + alpha/N * sum_{|c'-c| <= N/2} x_{c'}^2)^beta`... see `LrnOpts`.

use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LrnOpts {
    /// Channels in each window (odd).
    pub n: usize,
    pub kappa: f32,
    pub alpha: f32,
    pub beta: f32,
}

pub fn forward(_x: &Tensor, _o: &LrnOpts) -> Result<Tensor> {
    unimplemented!()
}

pub fn backward(_x: &Tensor, _o: &LrnOpts, _dy: &Tensor) -> Result<Tensor> {
    unimplemented!()
}
