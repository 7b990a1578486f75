//! Element-wise activations, Softmax and LogSoftmax, Dropout, and the
//! normalisations BatchNormalization and LRN.

use super::attrs::{unsigned, Attrs};
use super::Cx;
use crate::build::Msg;
use crate::onnx::proto::NodeProto;
use crate::onnx::tensor::Data;
use convnet::blocks::lrn::LrnOpts;
use convnet::blocks::Pad;
use convnet::net::LayerKind;
use convnet::Tensor;

impl Cx<'_> {
    pub(super) fn unary(&mut self, node: &NodeProto, k: usize, kind: LayerKind) -> Result<(), Msg> {
        let (var, flat) = self.act(self.input(node, 0)?)?;
        self.layer(node, k, kind, vec![var], vec![], flat)
    }

    pub(super) fn batch_norm(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&[
            "epsilon",
            "momentum",
            "spatial",
            "training_mode",
            "is_test",
            "consumed_inputs",
        ])?;
        if a.int("training_mode", 0)? != 0 {
            return Err(
                "training_mode = 1 is not supported (export the model in eval mode)".into(),
            );
        }
        if a.int("spatial", 1)? != 1 {
            return Err("spatial = 0 (per-pixel statistics) is not supported".into());
        }
        let (var, flat) = self.act(self.input(node, 0)?)?;
        let x = self.b.dims(&var)?;
        let mut params = Vec::new();
        for (i, what) in ["scale", "bias", "mean", "variance"].iter().enumerate() {
            let c = self.constant(self.input(node, i + 1)?)?;
            let v = c.floats(what)?;
            if v.len() != x.c {
                return Err(format!(
                    "{what} has {} values for {} channels",
                    v.len(),
                    x.c
                ));
            }
            params.push(Tensor::from_vec(&[x.c], v.to_vec()).map_err(|e| e.to_string())?);
        }
        let eps = a.float("epsilon", 1e-5)?;
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(format!("epsilon {eps} must be positive"));
        }
        // ONNX keeps `momentum` of the old running value; convnet the batch's share.
        let m = 1.0 - a.float("momentum", 0.9)?;
        let momentum = if m > 0.0 && m <= 1.0 { m } else { 0.1 };
        self.layer(
            node,
            k,
            LayerKind::BNorm { eps, momentum },
            vec![var],
            params,
            flat,
        )
    }

    pub(super) fn lrn(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&["alpha", "beta", "bias", "size"])?;
        let (var, _, _) = self.image(self.input(node, 0)?).and_then(|v| {
            if v.1 != Pad::default() {
                Err("a Pad before LRN cannot be folded".to_string())
            } else {
                Ok(v)
            }
        })?;
        let n = unsigned(a.int("size", 0)?, "size")?;
        // ONNX divides alpha by the window size; convnet (MatConvNet) does not.
        let o = LrnOpts {
            n,
            kappa: a.float("bias", 1.0)?,
            alpha: a.float("alpha", 1e-4)? / n.max(1) as f32,
            beta: a.float("beta", 0.75)?,
        };
        o.check().map_err(|e| e.to_string())?;
        self.layer(node, k, LayerKind::Lrn(o), vec![var], vec![], false)
    }

    pub(super) fn dropout(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&["ratio", "seed", "is_test"])?;
        let (var, flat) = self.act(self.input(node, 0)?)?;
        let mut rate = a.float("ratio", 0.5)?;
        if let Some(r) = self.opt_input(node, 1) {
            rate = *self
                .constant(r)?
                .floats("ratio")?
                .first()
                .ok_or("ratio is empty")?;
        }
        if let Some(t) = self.opt_input(node, 2) {
            let c = self.constant(t)?;
            let on = match &c.data {
                Data::F32(v) => v.iter().any(|&x| x != 0.0),
                Data::I64(v) => v.iter().any(|&x| x != 0),
            };
            if on {
                return Err("training_mode = true is not supported".into());
            }
        }
        if !(0.0..1.0).contains(&rate) {
            return Err(format!("ratio {rate} must be in [0, 1)"));
        }
        self.layer(
            node,
            k,
            LayerKind::Dropout { rate },
            vec![var],
            vec![],
            flat,
        )
    }

    pub(super) fn softmax(
        &mut self,
        node: &NodeProto,
        k: usize,
        a: &Attrs,
        kind: LayerKind,
    ) -> Result<(), Msg> {
        a.only(&["axis"])?;
        let (var, flat) = self.act(self.input(node, 0)?)?;
        let x = self.b.dims(&var)?;
        let rank = if flat { 2 } else { 4 };
        let default = if self.opset < 13 { 1 } else { -1 };
        let axis = a.int("axis", default)?;
        let axis = if axis < 0 { axis + rank } else { axis };
        // Before opset 13 the axis splits the tensor into 2-D; from 13 on it is one axis.
        let ok = match (rank, self.opset < 13) {
            (2, _) => axis == 1,
            (_, true) => axis == 1 && (x.h, x.w) == (1, 1),
            (_, false) => axis == 1,
        };
        if !ok {
            return Err(format!(
                "softmax over axis {axis} of a rank-{rank} tensor of size {x} is not supported; \
                 convnet's softmax is over channels"
            ));
        }
        self.layer(node, k, kind, vec![var], vec![], flat)
    }
}
