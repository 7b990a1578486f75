//! Softmax and log-softmax over channels, at every spatial location.

use crate::error::Result;
use crate::tensor::Tensor;

pub fn softmax_forward(_x: &Tensor) -> Result<Tensor> {
    unimplemented!()
}

pub fn softmax_backward(_x: &Tensor, _dy: &Tensor) -> Result<Tensor> {
    unimplemented!()
}

pub fn log_softmax_forward(_x: &Tensor) -> Result<Tensor> {
    unimplemented!()
}

pub fn log_softmax_backward(_x: &Tensor, _dy: &Tensor) -> Result<Tensor> {
    unimplemented!()
}
