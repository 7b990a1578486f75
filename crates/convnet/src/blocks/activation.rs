//! Element-wise non-linearities: ReLU with optional leak, sigmoid, tanh.

use crate::error::Result;
use crate::tensor::Tensor;

/// `max(x, 0) + leak * min(x, 0)`.
pub fn relu_forward(_x: &Tensor, _leak: f32) -> Tensor {
    unimplemented!()
}

pub fn relu_backward(_x: &Tensor, _leak: f32, _dy: &Tensor) -> Result<Tensor> {
    unimplemented!()
}

pub fn sigmoid_forward(_x: &Tensor) -> Tensor {
    unimplemented!()
}

pub fn sigmoid_backward(_x: &Tensor, _dy: &Tensor) -> Result<Tensor> {
    unimplemented!()
}

pub fn tanh_forward(_x: &Tensor) -> Tensor {
    unimplemented!()
}

pub fn tanh_backward(_x: &Tensor, _dy: &Tensor) -> Result<Tensor> {
    unimplemented!()
}
