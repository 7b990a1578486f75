//! Concatenation along channels, and cropping of the spatial borders.

use super::Pad;
use crate::error::Result;
use crate::tensor::Tensor;

/// Stacks the inputs' channels; all must share N, H and W.
pub fn concat_forward(_xs: &[&Tensor]) -> Result<Tensor> {
    unimplemented!()
}

/// Splits dy back into one gradient per input, by the inputs' channel counts.
pub fn concat_backward(_channels: &[usize], _dy: &Tensor) -> Result<Vec<Tensor>> {
    unimplemented!()
}

/// Removes `crop` rows/columns from each side.
pub fn crop_forward(_x: &Tensor, _crop: Pad) -> Result<Tensor> {
    unimplemented!()
}

/// Pads dy with zeros back to the input's shape.
pub fn crop_backward(_x_shape: &[usize], _crop: Pad, _dy: &Tensor) -> Result<Tensor> {
    unimplemented!()
}
