//! Operators that name, reshape or join values: Constant, Flatten, Reshape, Concat
//! and Slice (a crop of height and width).

use super::attrs::Attrs;
use super::{Cx, Val};
use crate::build::Msg;
use crate::onnx::proto::NodeProto;
use crate::onnx::tensor::{self, Const, Data};
use convnet::blocks::Pad;
use convnet::net::LayerKind;

impl Cx<'_> {
    pub(super) fn constant_node(&mut self, node: &NodeProto, a: &Attrs) -> Result<(), Msg> {
        let c = if let Some(t) = a.get("value").and_then(|v| v.t.as_ref()) {
            tensor::read(t, self.dir)?
        } else if let Some(v) = a.get("value_ints") {
            Const {
                dims: vec![v.ints.len()],
                data: Data::I64(v.ints.clone()),
            }
        } else if let Some(v) = a.get("value_int") {
            Const {
                dims: vec![],
                data: Data::I64(vec![v.i]),
            }
        } else if let Some(v) = a.get("value_floats") {
            Const {
                dims: vec![v.floats.len()],
                data: Data::F32(v.floats.clone()),
            }
        } else if let Some(v) = a.get("value_float") {
            Const {
                dims: vec![],
                data: Data::F32(vec![v.f]),
            }
        } else {
            return Err("a Constant without a 'value' tensor or numbers is not supported".into());
        };
        self.set(node, Val::Const(c))
    }

    pub(super) fn flatten(&mut self, node: &NodeProto, a: &Attrs) -> Result<(), Msg> {
        a.only(&["axis"])?;
        let name = self.input(node, 0)?;
        let (var, flat) = self.act(name)?;
        let axis = a.int("axis", 1)?;
        let rank = if flat { 2 } else { 4 };
        if axis != 1 && axis != 1 - rank {
            return Err(format!(
                "axis {axis} is not supported; convnet flattens (N, ...) to (N, features), axis 1"
            ));
        }
        self.set_flat(node, name, var)
    }

    pub(super) fn reshape(&mut self, node: &NodeProto) -> Result<(), Msg> {
        let name = self.input(node, 0)?;
        let (var, _) = self.act(name)?;
        let feat = self.b.dims(&var)?.image_len() as i64;
        let shape = self
            .constant(self.input(node, 1)?)?
            .ints("the shape")?
            .to_vec();
        let batch_ok = |v: i64| v == 0 || self.batch.is_some_and(|n| n as i64 == v);
        let ok = match shape[..] {
            [n, f] => (batch_ok(n) && (f == -1 || f == feat)) || (n == -1 && f == feat),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "a Reshape to {shape:?} is not supported; convnet reshapes only to (N, {feat}) \
                 (a flatten of the {feat} features)"
            ));
        }
        self.set_flat(node, name, var)
    }

    /// Records the node's output as input `name` (variable `var`) seen as (N, features).
    fn set_flat(&mut self, node: &NodeProto, name: &str, var: String) -> Result<(), Msg> {
        let nonneg = matches!(self.val(name)?, Val::Act { nonneg: true, .. });
        self.set(
            node,
            Val::Act {
                var,
                flat: true,
                nonneg,
            },
        )
    }

    pub(super) fn concat(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&["axis"])?;
        let mut vars = Vec::new();
        let mut flats = Vec::new();
        for n in node.input.iter().filter(|s| !s.is_empty()) {
            let (v, f) = self.act(n)?;
            vars.push(v);
            flats.push(f);
        }
        let flat = flats.iter().any(|&f| f);
        let axis = a.int("axis", 1)?;
        let ok_axis = if flat {
            axis == 1 || axis == -1
        } else {
            axis == 1 || axis == -3
        };
        if !ok_axis {
            return Err(format!(
                "axis {axis} is not supported; convnet concatenates channels (axis 1)"
            ));
        }
        if flat {
            for v in &vars {
                let d = self.b.dims(v)?;
                if (d.h, d.w) != (1, 1) {
                    return Err(format!(
                        "concatenating flattened features of size {d} is not supported (only of 1x1 maps)"
                    ));
                }
            }
        }
        self.layer(node, k, LayerKind::Concat, vars, vec![], flat)
    }

    /// A Slice of height and width with step 1: convnet's crop.
    pub(super) fn slice(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&["starts", "ends", "axes"])?;
        let (var, flat) = self.act(self.input(node, 0)?)?;
        if flat {
            return Err("slicing a 2-D (N, features) value is not supported".into());
        }
        let ints = |i: usize, attr: &str| -> Result<Option<Vec<i64>>, Msg> {
            if self.opset < 10 {
                return a.ints(attr);
            }
            match self.opt_input(node, i) {
                Some(c) => Ok(Some(self.constant(c)?.ints(attr)?.to_vec())),
                None => Ok(None),
            }
        };
        let starts = ints(1, "starts")?.ok_or("'starts' is missing")?;
        let ends = ints(2, "ends")?.ok_or("'ends' is missing")?;
        let axes = ints(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        if let Some(steps) = ints(4, "steps")? {
            if steps.iter().any(|&s| s != 1) {
                return Err(format!("steps {steps:?} are not supported (only 1)"));
            }
        }
        if starts.len() != axes.len() || ends.len() != axes.len() {
            return Err("starts, ends and axes differ in length".into());
        }
        let x = self.b.dims(&var)?;
        let mut crop = Pad::default();
        for ((&ax, &st), &en) in axes.iter().zip(&starts).zip(&ends) {
            let ax = if ax < 0 { ax + 4 } else { ax };
            let len = match ax {
                2 => x.h,
                3 => x.w,
                _ => {
                    return Err(format!(
                        "slicing axis {ax} is not supported (only height and width)"
                    ))
                }
            } as i64;
            let clamp = |v: i64| if v < 0 { (v + len).max(0) } else { v.min(len) };
            let (st, en) = (clamp(st), clamp(en));
            if st >= en {
                return Err(format!("the slice [{st}, {en}) of axis {ax} is empty"));
            }
            let (lo, hi) = (st as usize, (len - en) as usize);
            if ax == 2 {
                (crop.top, crop.bottom) = (lo, hi);
            } else {
                (crop.left, crop.right) = (lo, hi);
            }
        }
        self.layer(node, k, LayerKind::Crop(crop), vec![var], vec![], false)
    }
}
