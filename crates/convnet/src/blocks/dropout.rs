//! Dropout with inverted scaling: in training each element is kept with probability
//! 1 - rate and scaled by 1 / (1 - rate); at test time it is the identity. The mask
//! is made by the caller's seeded generator and kept (by the layer) for backward.

use crate::error::Result;
use crate::tensor::Tensor;
use rand::Rng;

/// A mask of 0 and 1/(1-rate) of the given shape; rate in [0, 1).
pub fn make_mask<R: Rng>(_shape: &[usize], _rate: f32, _rng: &mut R) -> Result<Tensor> {
    unimplemented!()
}

pub fn forward(_x: &Tensor, _mask: &Tensor) -> Result<Tensor> {
    unimplemented!()
}

pub fn backward(_mask: &Tensor, _dy: &Tensor) -> Result<Tensor> {
    unimplemented!()
}
