//! Pooling (MaxPool, AveragePool, their global forms) and zero Pad nodes, which
//! fold into the convolution or pooling that reads them.

use super::attrs::{add_pad, ceil_extra, pair, spatial_pads, unsigned, Attrs};
use super::{Cx, Val};
use crate::build::Msg;
use crate::onnx::proto::NodeProto;
use convnet::blocks::pool::{PoolMethod, PoolOpts};
use convnet::blocks::Pad;
use convnet::net::LayerKind;

impl Cx<'_> {
    pub(super) fn pool(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        let max = node.op_type == "MaxPool";
        a.only(&[
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "dilations",
            "kernel_shape",
            "pads",
            "storage_order",
            "strides",
        ])?;
        let (var, pre, nonneg) = self.image(self.input(node, 0)?)?;
        let window = pair(a.ints("kernel_shape")?, "kernel_shape", 0)?;
        if window.contains(&0) {
            return Err("kernel_shape must be given, 2-D and positive".into());
        }
        let stride = pair(a.ints("strides")?, "strides", 1)?;
        if pair(a.ints("dilations")?, "dilations", 1)? != [1, 1] {
            return Err("dilated pooling is not supported".into());
        }
        let include = a.int("count_include_pad", 0)? != 0;
        let x = self.b.dims(&var)?;
        let own = spatial_pads(a, x, pre, window, stride, [1, 1])?;
        let padded_before = pre != Pad::default();
        if padded_before && max && !nonneg {
            return Err(
                "a zero Pad before MaxPool folds only when the values are known to be \
                        non-negative (after Relu, Sigmoid or Softmax)"
                    .into(),
            );
        }
        if padded_before && !max && !include && own != Pad::default() {
            return Err("a zero Pad before an AveragePool with its own pads and \
                        count_include_pad = 0 cannot be represented"
                .into());
        }
        // Zeros padded before an average pooling are pixels it counts.
        let count_pad = !max && (include || padded_before);
        let mut pad = add_pad(pre, own);
        if a.int("ceil_mode", 0)? != 0 {
            let eh = ceil_extra(x.h, pad.top, pad.bottom, window[0], stride[0]);
            let ew = ceil_extra(x.w, pad.left, pad.right, window[1], stride[1]);
            if count_pad && (eh > 0 || ew > 0) {
                return Err(
                    "ceil_mode with padding counted in the average cannot be represented".into(),
                );
            }
            pad.bottom += eh;
            pad.right += ew;
        }
        let method = if max {
            PoolMethod::Max
        } else {
            PoolMethod::Avg
        };
        let kind = LayerKind::Pool(PoolOpts {
            method,
            window,
            stride,
            pad,
            count_pad,
        });
        self.layer(node, k, kind, vec![var], vec![], false)
    }

    pub(super) fn global_pool(&mut self, node: &NodeProto, k: usize) -> Result<(), Msg> {
        let (var, flat) = self.act(self.input(node, 0)?)?;
        if flat {
            return Err("the input is 2-D; global pooling needs (N, C, H, W)".into());
        }
        let x = self.b.dims(&var)?;
        let method = if node.op_type == "GlobalMaxPool" {
            PoolMethod::Max
        } else {
            PoolMethod::Avg
        };
        let kind = LayerKind::Pool(PoolOpts {
            method,
            window: [x.h, x.w],
            stride: [1, 1],
            pad: Pad::default(),
            count_pad: false,
        });
        self.layer(node, k, kind, vec![var], vec![], false)
    }

    pub(super) fn pad(&mut self, node: &NodeProto, a: &Attrs) -> Result<(), Msg> {
        a.only(&["mode", "pads", "value"])?;
        let mode = a.string("mode", "constant")?;
        if mode != "constant" {
            return Err(format!(
                "mode '{mode}' is not supported; only zero padding folds"
            ));
        }
        let (pads, value, axes): (Vec<i64>, f32, Option<Vec<i64>>) = if self.opset < 11 {
            (
                a.ints("pads")?.ok_or("'pads' is missing")?,
                a.float("value", 0.0)?,
                None,
            )
        } else {
            let p = self.constant(self.input(node, 1)?)?.ints("pads")?.to_vec();
            let v = match self.opt_input(node, 2) {
                Some(c) => self
                    .constant(c)?
                    .floats("constant_value")?
                    .first()
                    .copied()
                    .unwrap_or(0.0),
                None => 0.0,
            };
            let axes = match self.opt_input(node, 3) {
                Some(c) => Some(self.constant(c)?.ints("axes")?.to_vec()),
                None => None,
            };
            (p, v, axes)
        };
        if value != 0.0 {
            return Err(format!(
                "padding with {value} is not supported; only zero padding folds"
            ));
        }
        let axes = axes.unwrap_or_else(|| (0..pads.len() as i64 / 2).collect());
        let r = axes.len();
        if pads.len() != 2 * r {
            return Err(format!(
                "pads {pads:?} do not have 2 values per axis of {axes:?}"
            ));
        }
        let mut p = [0i64; 8];
        for (i, &ax) in axes.iter().enumerate() {
            let ax = if ax < 0 { ax + 4 } else { ax };
            if !(0..4).contains(&ax) {
                return Err(format!(
                    "axis {ax} is not an axis of an (N, C, H, W) tensor"
                ));
            }
            p[ax as usize] = pads[i];
            p[ax as usize + 4] = pads[i + r];
        }
        if p[0] != 0 || p[1] != 0 || p[4] != 0 || p[5] != 0 {
            return Err(format!(
                "pads {pads:?} pad the batch or channels; only height and width fold"
            ));
        }
        let pad = Pad::new(
            unsigned(p[2], "pad")?,
            unsigned(p[6], "pad")?,
            unsigned(p[3], "pad")?,
            unsigned(p[7], "pad")?,
        );
        let (var, before, nonneg) = self.image(self.input(node, 0)?)?;
        self.set(
            node,
            Val::Padded {
                var,
                pad: add_pad(before, pad),
                nonneg,
            },
        )
    }
}
