//! Add and Sum: a sum layer over activations, or a constant folded into the bias
//! of the layer before.

use super::{Cx, Val};
use crate::build::Msg;
use crate::onnx::proto::NodeProto;
use convnet::net::LayerKind;
use convnet::Tensor;

impl Cx<'_> {
    pub(super) fn add(&mut self, node: &NodeProto, k: usize) -> Result<(), Msg> {
        let names: Vec<&str> = node
            .input
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        let consts: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| matches!(self.vals.get(*n), Some(Val::Const(_))))
            .collect();
        if node.op_type == "Add" && names.len() == 2 && consts.len() == 1 {
            let act = if names[0] == consts[0] {
                names[1]
            } else {
                names[0]
            };
            return self.add_bias(node, act, consts[0]);
        }
        let mut vars = Vec::new();
        let mut flats = Vec::new();
        for n in &names {
            let (v, f) = self.act(n)?;
            vars.push(v);
            flats.push(f);
        }
        if vars.is_empty() {
            return Err("no inputs".into());
        }
        if flats.iter().any(|&f| f != flats[0]) {
            for v in &vars {
                let d = self.b.dims(v)?;
                if (d.h, d.w) != (1, 1) {
                    return Err("inputs of different ranks cannot be summed".into());
                }
            }
        }
        if vars.len() == 1 {
            let v = self.val(names[0])?.clone();
            return self.set(node, v);
        }
        self.layer(node, k, LayerKind::Sum, vars, vec![], flats[0])
    }

    /// `act + c` where `c` holds one value per channel: added to the bias of the
    /// convolution or fully connected layer that writes `act` (and nothing else reads).
    fn add_bias(&mut self, node: &NodeProto, act: &str, c: &str) -> Result<(), Msg> {
        let (var, flat) = self.act(act)?;
        let x = self.b.dims(&var)?;
        let cst = self.constant(c)?.clone();
        let per_channel = if flat {
            cst.dims.iter().rev().skip(1).all(|&d| d == 1)
                && cst.dims.last() == Some(&x.image_len())
        } else {
            cst.dims.len() >= 3
                && cst.dims[cst.dims.len() - 2..] == [1, 1]
                && cst.dims[cst.dims.len() - 3] == x.c
                && cst.dims[..cst.dims.len() - 3].iter().all(|&d| d == 1)
        };
        let cannot = || {
            format!(
                "adding constant '{c}' of shape {:?} to '{act}' folds only into the bias of a \
                 convolution or fully connected layer whose output nothing else reads",
                cst.dims
            )
        };
        // Only when no other value names the same variable and nothing else reads it.
        let aliases = self
            .vals
            .values()
            .filter(
                |v| matches!(v, Val::Act { var: w, .. } | Val::Padded { var: w, .. } if *w == var),
            )
            .count();
        let sole = aliases == 1 && self.uses.get(act) == Some(&1);
        let p = self.b.producer(&var).filter(|_| per_channel && sole);
        let Some(p) = p else { return Err(cannot()) };
        let lname = self.b.layers[p].name.clone();
        let out = match &mut self.b.layers[p].kind {
            LayerKind::Conv { out, bias, .. } => {
                *bias = true;
                *out
            }
            _ => return Err(cannot()),
        };
        let add = cst.floats("the added constant")?.to_vec();
        let key = format!("{lname}.bias");
        let b = self
            .b
            .tensors
            .entry(key)
            .or_insert_with(|| Tensor::zeros(&[out]).unwrap_or_default());
        if b.len() != add.len() {
            return Err(cannot());
        }
        for (v, a) in b.data_mut().iter_mut().zip(add) {
            *v += a;
        }
        let v = self.val(act)?.clone();
        self.set(node, v)
    }
}
