//! Element-wise non-linearities: ReLU with optional leak, sigmoid, tanh.
//! Backwards take `x` (not `y`) so that a layer need keep only its input.

use super::kernels::eltwise;
use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Tensor};

fn unary(x: &Tensor, f: impl Fn(f32) -> f32 + Sync) -> Tensor {
    let y = eltwise::collect_map(x.data(), f);
    Tensor::from_vec(x.shape(), y).expect("same length")
}

/// `dy * f'(x)`, after checking that `dy` has the shape of `x`.
fn backward(
    block: &'static str,
    x: &Tensor,
    dy: &Tensor,
    df: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<Tensor> {
    if dy.shape() != x.shape() {
        return Err(Error::block(
            block,
            format!(
                "dy has shape {} but x has shape {}",
                fmt_shape(dy.shape()),
                fmt_shape(x.shape())
            ),
        ));
    }
    let dx = eltwise::collect_map2(x.data(), dy.data(), df);
    Tensor::from_vec(x.shape(), dx)
}

/// `max(x, 0) + leak * min(x, 0)`.
pub fn relu_forward(x: &Tensor, leak: f32) -> Tensor {
    Tensor::from_vec(x.shape(), eltwise::relu(x.data(), leak)).expect("same length")
}

/// [`relu_forward`] over `x` itself (for a network that keeps only the output).
pub fn relu_forward_in_place(x: &mut Tensor, leak: f32) {
    eltwise::relu_in_place(x.data_mut(), leak);
}

/// The slope at 0 is taken from the left (`leak`), as PyTorch does.
pub fn relu_backward(x: &Tensor, leak: f32, dy: &Tensor) -> Result<Tensor> {
    relu_backward_in_place(x, leak, dy.clone())
}

/// [`relu_backward`] over `dy` itself. `x` may be the ReLU's input or its output:
/// both are positive at the same places (for `leak >= 0`), so a network that kept
/// only the output still has what it needs.
pub fn relu_backward_in_place(x: &Tensor, leak: f32, mut dy: Tensor) -> Result<Tensor> {
    if dy.shape() != x.shape() {
        return Err(Error::block(
            "relu",
            format!(
                "dy has shape {} but x has shape {}",
                fmt_shape(dy.shape()),
                fmt_shape(x.shape())
            ),
        ));
    }
    eltwise::relu_backward_in_place(x.data(), dy.data_mut(), leak);
    Ok(dy)
}

/// `1 / (1 + exp(-v))` without overflow: exp is only taken of non-positive values.
#[inline]
fn sigmoid(v: f32) -> f32 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

pub fn sigmoid_forward(x: &Tensor) -> Tensor {
    unary(x, sigmoid)
}

pub fn sigmoid_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    backward("sigmoid", x, dy, |v, d| {
        let s = sigmoid(v);
        d * s * (1.0 - s)
    })
}

pub fn tanh_forward(x: &Tensor) -> Tensor {
    unary(x, f32::tanh)
}

pub fn tanh_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    backward("tanh", x, dy, |v, d| {
        let t = v.tanh();
        d * (1.0 - t * t)
    })
}
