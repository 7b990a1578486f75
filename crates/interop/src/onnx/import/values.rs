//! How the operators read a node's inputs (activations, constants, padded
//! activations) and record its output (a value, or a new layer).

use super::{Cx, Val};
use crate::build::Msg;
use crate::onnx::proto::NodeProto;
use crate::onnx::tensor::Const;
use convnet::blocks::Pad;
use convnet::net::LayerKind;
use convnet::Tensor;

impl Cx<'_> {
    pub(super) fn val(&self, name: &str) -> Result<&Val, Msg> {
        self.vals
            .get(name)
            .ok_or_else(|| format!("input '{name}' is neither a graph input, an initializer nor an earlier node's output"))
    }

    /// An activation input: its variable and whether it is flat.
    pub(super) fn act(&self, name: &str) -> Result<(String, bool), Msg> {
        match self.val(name)? {
            Val::Act { var, flat, .. } => Ok((var.clone(), *flat)),
            Val::Const(_) => Err(const_input(name)),
            Val::Padded { .. } => Err(format!(
                "input '{name}' comes from a Pad, which folds only into a convolution or pooling"
            )),
        }
    }

    /// An image-shaped (not flattened) activation input, with any padding folded.
    pub(super) fn image(&self, name: &str) -> Result<(String, Pad, bool), Msg> {
        match self.val(name)? {
            Val::Padded { var, pad, nonneg } => Ok((var.clone(), *pad, *nonneg)),
            Val::Act { flat: true, .. } => Err(format!(
                "input '{name}' is 2-D (N, features); this operator needs (N, C, H, W)"
            )),
            Val::Act { var, nonneg, .. } => Ok((var.clone(), Pad::default(), *nonneg)),
            Val::Const(_) => Err(const_input(name)),
        }
    }

    pub(super) fn constant(&self, name: &str) -> Result<&Const, Msg> {
        match self.val(name)? {
            Val::Const(c) => Ok(c),
            _ => Err(format!(
                "input '{name}' must be a constant (an initializer), as convnet stores weights with the layer"
            )),
        }
    }

    /// Input `k` of `node` if given (an empty name means absent).
    pub(super) fn opt_input<'n>(&self, node: &'n NodeProto, k: usize) -> Option<&'n str> {
        node.input
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub(super) fn input<'n>(&self, node: &'n NodeProto, k: usize) -> Result<&'n str, Msg> {
        self.opt_input(node, k)
            .ok_or_else(|| format!("input {} is missing", k + 1))
    }

    /// Fails when an output other than the first is read by anything.
    pub(super) fn single_output(&self, node: &NodeProto) -> Result<(), Msg> {
        match node
            .output
            .iter()
            .skip(1)
            .find(|o| !o.is_empty() && self.uses.contains_key(o.as_str()))
        {
            Some(o) => Err(format!(
                "its output '{o}' is used; convnet computes the first output only"
            )),
            None => Ok(()),
        }
    }

    pub(super) fn set(&mut self, node: &NodeProto, v: Val) -> Result<(), Msg> {
        let out = node
            .output
            .first()
            .filter(|o| !o.is_empty())
            .ok_or("it has no output")?;
        self.vals.insert(out.clone(), v);
        Ok(())
    }

    /// Appends a layer named after `node` and records the node's output.
    pub(super) fn layer(
        &mut self,
        node: &NodeProto,
        k: usize,
        kind: LayerKind,
        inputs: Vec<String>,
        params: Vec<Tensor>,
        flat: bool,
    ) -> Result<(), Msg> {
        let nonneg = matches!(kind, LayerKind::Relu { leak } if leak == 0.0)
            || matches!(kind, LayerKind::Sigmoid | LayerKind::Softmax);
        let name = self.b.unique_name(
            &node.name,
            &format!("{}{}", node.op_type.to_lowercase(), k + 1),
        );
        self.b.push(&name, kind, inputs, params)?;
        self.set(
            node,
            Val::Act {
                var: name,
                flat,
                nonneg,
            },
        )
    }
}

fn const_input(name: &str) -> Msg {
    format!("input '{name}' is a constant; convnet layers compute on the data only")
}
