//! Batch normalisation per channel: in training the batch's moments, at test time
//! stored moments; then a learnable gain and bias.

use crate::error::Result;
use crate::tensor::Tensor;

/// Per-channel mean and standard deviation (sqrt(var + eps)).
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

#[derive(Clone, Debug)]
pub struct BnGrads {
    pub dx: Tensor,
    pub dgain: Tensor,
    pub dbias: Tensor,
}

/// Training mode: normalise by the batch's moments, which are returned too so that
/// the layer can update its running moments.
pub fn forward_train(_x: &Tensor, _gain: &Tensor, _bias: &Tensor, _eps: f32) -> Result<(Tensor, Moments)> {
    unimplemented!()
}

/// Test mode: normalise by the given moments.
pub fn forward_test(_x: &Tensor, _gain: &Tensor, _bias: &Tensor, _m: &Moments) -> Result<Tensor> {
    unimplemented!()
}

/// Derivatives of the training-mode forward.
pub fn backward(_x: &Tensor, _gain: &Tensor, _bias: &Tensor, _eps: f32, _dy: &Tensor) -> Result<BnGrads> {
    unimplemented!()
}
