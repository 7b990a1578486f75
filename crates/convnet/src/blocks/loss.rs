//! Losses over channels at every spatial location, summed over locations and the
//! batch, with optional per-instance weights (N, 1, H, W) (a weight of 0 ignores a
//! location). Multi-class labels are (N, 1, H, W) class indices 0..C-1 stored as f32;
//! binary labels are +1/-1 with the shape of `x` (0 ignores an element).

use crate::error::Result;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// -log softmax(x)[label]
    SoftmaxLog,
    /// Binary logistic log-loss log(1 + exp(-y x)), labels +-1.
    Logistic,
    /// Binary hinge max(0, 1 - y x), labels +-1.
    Hinge,
    /// Multi-class hinge max(0, 1 - x[label] + max_{k != label} x[k]).
    MultiHinge,
    /// Class error (forward only): 1 where the top class is not the label.
    ClassError,
    /// Top-k error (forward only): 1 where the label is not among the k best classes.
    TopKError(usize),
}

/// The weighted sum of the loss over locations and the batch.
pub fn forward(_x: &Tensor, _labels: &Tensor, _weights: Option<&Tensor>, _kind: LossKind) -> Result<f32> {
    unimplemented!()
}

/// dz/dx for dz/d(loss) = `dzdy`; an error for the metrics.
pub fn backward(
    _x: &Tensor,
    _labels: &Tensor,
    _weights: Option<&Tensor>,
    _kind: LossKind,
    _dzdy: f32,
) -> Result<Tensor> {
    unimplemented!()
}
