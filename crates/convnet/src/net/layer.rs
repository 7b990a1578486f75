//! What a layer computes (its block and options) and the parameters it owns.

use crate::blocks::conv::ConvOpts;
use crate::blocks::convt::ConvTOpts;
use crate::blocks::loss::LossKind;
use crate::blocks::lrn::LrnOpts;
use crate::blocks::pool::PoolOpts;
use crate::blocks::Pad;
use crate::tensor::Tensor;

/// A layer's block with its options. Convolutions learn their input channel count
/// from the network's input size when the network is built.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    /// Convolution; `kernel: None` is a fully connected layer (the kernel covers the
    /// whole input). Parameters `weight` (out, C_in/groups, kh, kw), `bias` (out).
    Conv {
        kernel: Option<[usize; 2]>,
        out: usize,
        opts: ConvOpts,
        bias: bool,
    },
    /// Transposed convolution. Parameters `weight` (C_in, out/groups, kh, kw), `bias`.
    ConvT {
        kernel: [usize; 2],
        out: usize,
        opts: ConvTOpts,
        bias: bool,
    },
    Pool(PoolOpts),
    Relu {
        leak: f32,
    },
    Sigmoid,
    Tanh,
    Softmax,
    LogSoftmax,
    /// Inputs: scores, labels and optionally per-location weights; output a scalar
    /// (shape [1]): the loss summed over the batch, or for the metrics a count.
    Loss(LossKind),
    Dropout {
        rate: f32,
    },
    /// Parameters `weight` (gain), `bias`; buffers `running_mean`, `running_var`
    /// (PyTorch's: the variance is the unbiased one), updated in training mode as
    /// `running = (1 - momentum) * running + momentum * batch`.
    BNorm {
        eps: f32,
        momentum: f32,
    },
    Lrn(LrnOpts),
    /// Along channels.
    Concat,
    Crop(Pad),
    /// Element-wise sum of inputs of one shape (ResNet's shortcuts).
    Sum,
}

impl LayerKind {
    /// The name used in descriptions and tables.
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerKind::Conv { kernel: None, .. } => "fc",
            LayerKind::Conv { .. } => "conv",
            LayerKind::ConvT { .. } => "convt",
            LayerKind::Pool(_) => "pool",
            LayerKind::Relu { .. } => "relu",
            LayerKind::Sigmoid => "sigmoid",
            LayerKind::Tanh => "tanh",
            LayerKind::Softmax => "softmax",
            LayerKind::LogSoftmax => "logsoftmax",
            LayerKind::Loss(k) => match k {
                LossKind::SoftmaxLog => "softmaxlog",
                LossKind::Logistic => "logistic",
                LossKind::Hinge => "hinge",
                LossKind::MultiHinge => "multihinge",
                LossKind::ClassError => "classerror",
                LossKind::TopKError(_) => "topkerror",
            },
            LayerKind::Dropout { .. } => "dropout",
            LayerKind::BNorm { .. } => "bnorm",
            LayerKind::Lrn(_) => "lrn",
            LayerKind::Concat => "concat",
            LayerKind::Crop(_) => "crop",
            LayerKind::Sum => "sum",
        }
    }

    /// Names of the trained parameters, in order (`weight`, then `bias`).
    pub fn param_names(&self) -> &'static [&'static str] {
        match self {
            LayerKind::Conv { bias: true, .. } | LayerKind::ConvT { bias: true, .. } => {
                &["weight", "bias"]
            }
            LayerKind::Conv { .. } | LayerKind::ConvT { .. } => &["weight"],
            LayerKind::BNorm { .. } => &["weight", "bias"],
            _ => &[],
        }
    }

    /// Names of the buffers: state saved with the model but not trained.
    pub fn buffer_names(&self) -> &'static [&'static str] {
        match self {
            LayerKind::BNorm { .. } => &["running_mean", "running_var"],
            _ => &[],
        }
    }

    /// A metric (class or top-k error): computed, never differentiated.
    pub fn is_metric(&self) -> bool {
        matches!(
            self,
            LayerKind::Loss(LossKind::ClassError | LossKind::TopKError(_))
        )
    }

    /// A loss whose output the backward pass starts from.
    pub fn is_objective(&self) -> bool {
        matches!(self, LayerKind::Loss(_)) && !self.is_metric()
    }
}

/// A named tensor of the network: a trained parameter (with its gradient) or a
/// buffer (batch-norm running moments: saved, not trained, `trainable == false`).
#[derive(Clone, Debug)]
pub struct Param {
    /// `<layer>.<param>` (or the shared name given in the description).
    pub name: String,
    /// The layer that created it (the first one, for a shared parameter).
    pub layer: String,
    pub value: Tensor,
    /// dz/d(value) summed over the batch; zeroed at each backward (empty before the
    /// first backward, and always for buffers).
    pub grad: Tensor,
    pub lr_mult: f32,
    pub decay_mult: f32,
    pub trainable: bool,
}
