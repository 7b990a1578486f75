//! Layers with weights: Conv, ConvTranspose, and the fully connected Gemm and
//! MatMul.

use super::attrs::{add_pad, pads, pair, spatial_pads, unsigned, Attrs};
use super::Cx;
use crate::build::Msg;
use crate::onnx::proto::NodeProto;
use crate::onnx::tensor::Const;
use convnet::blocks::conv::ConvOpts;
use convnet::blocks::convt::ConvTOpts;
use convnet::blocks::Pad;
use convnet::net::LayerKind;
use convnet::{Dims4, Tensor};

impl Cx<'_> {
    pub(super) fn conv(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ])?;
        let (var, pre, _) = self.image(self.input(node, 0)?)?;
        let w = self.constant(self.input(node, 1)?)?;
        let &[out, cg, kh, kw] = &w.dims[..] else {
            return Err(format!(
                "weights of shape {:?} are not 2-D filters (out, C/groups, kh, kw)",
                w.dims
            ));
        };
        if let Some(ks) = a.ints("kernel_shape")? {
            if ks != [kh as i64, kw as i64] {
                return Err(format!(
                    "kernel_shape {ks:?} disagrees with the weights' {kh}x{kw}"
                ));
            }
        }
        let groups = unsigned(a.int("group", 1)?, "group")?;
        let stride = pair(a.ints("strides")?, "strides", 1)?;
        let dilation = pair(a.ints("dilations")?, "dilations", 1)?;
        let x = self.b.dims(&var)?;
        let pad = add_pad(pre, spatial_pads(a, x, pre, [kh, kw], stride, dilation)?);
        if groups == 0 || cg * groups != x.c {
            return Err(format!(
                "weights of shape {:?} with {groups} groups do not fit an input of {} channels",
                w.dims, x.c
            ));
        }
        let params = self.filters_and_bias(node, w, out)?;
        let kind = LayerKind::Conv {
            kernel: Some([kh, kw]),
            out,
            opts: ConvOpts {
                pad,
                stride,
                dilation,
                groups,
            },
            bias: params.len() == 2,
        };
        self.layer(node, k, kind, vec![var], params, false)
    }

    /// The filters `w` as stored, then the bias of `out` values if the node has one
    /// (its input 3).
    fn filters_and_bias(
        &self,
        node: &NodeProto,
        w: &Const,
        out: usize,
    ) -> Result<Vec<Tensor>, Msg> {
        let weight =
            Tensor::from_vec(&w.dims, w.floats("weights")?.to_vec()).map_err(|e| e.to_string())?;
        let mut params = vec![weight];
        if let Some(bn) = self.opt_input(node, 2) {
            params.push(self.bias(bn, out)?);
        }
        Ok(params)
    }

    /// A bias constant of `out` values.
    fn bias(&self, name: &str, out: usize) -> Result<Tensor, Msg> {
        let c = self.constant(name)?;
        if c.len() != out || c.dims.iter().filter(|&&d| d != 1).count() > 1 {
            return Err(format!(
                "bias '{name}' of shape {:?} does not have {out} values",
                c.dims
            ));
        }
        Tensor::from_vec(&[out], c.floats("the bias")?.to_vec()).map_err(|e| e.to_string())
    }

    pub(super) fn conv_transpose(
        &mut self,
        node: &NodeProto,
        k: usize,
        a: &Attrs,
    ) -> Result<(), Msg> {
        a.only(&[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "output_padding",
            "pads",
            "strides",
        ])?;
        let (var, _) = self.act(self.input(node, 0)?)?;
        let w = self.constant(self.input(node, 1)?)?;
        let &[c_in, og, kh, kw] = &w.dims[..] else {
            return Err(format!(
                "weights of shape {:?} are not 2-D filters (C_in, out/groups, kh, kw)",
                w.dims
            ));
        };
        let groups = unsigned(a.int("group", 1)?, "group")?;
        if pair(a.ints("dilations")?, "dilations", 1)? != [1, 1] {
            return Err("dilated transposed convolutions are not supported".into());
        }
        if !matches!(
            a.string("auto_pad", "NOTSET")?.as_str(),
            "NOTSET" | "" | "VALID"
        ) {
            return Err("auto_pad SAME_* is not supported for ConvTranspose".into());
        }
        let x = self.b.dims(&var)?;
        if groups == 0 || c_in != x.c || x.c % groups != 0 {
            return Err(format!(
                "weights of shape {:?} with {groups} groups do not fit an input of {} channels",
                w.dims, x.c
            ));
        }
        let stride = pair(a.ints("strides")?, "strides", 1)?;
        let extra = pair(a.ints("output_padding")?, "output_padding", 0)?;
        let p = pads(a.ints("pads")?)?;
        // output_padding adds rows after the end: the same as cropping fewer of them.
        if extra[0] > p.bottom || extra[1] > p.right {
            return Err(format!(
                "output_padding {extra:?} larger than the end pads ({}, {}) is not supported",
                p.bottom, p.right
            ));
        }
        let crop = Pad::new(p.top, p.bottom - extra[0], p.left, p.right - extra[1]);
        let out = og * groups;
        let params = self.filters_and_bias(node, w, out)?;
        let kind = LayerKind::ConvT {
            kernel: [kh, kw],
            out,
            opts: ConvTOpts {
                upsample: stride,
                crop,
                groups,
            },
            bias: params.len() == 2,
        };
        self.layer(node, k, kind, vec![var], params, false)
    }

    /// The variable and its size read by a fully connected layer: a flat activation,
    /// or one of 1x1 pixels.
    fn features(&self, name: &str) -> Result<(String, Dims4), Msg> {
        let (var, flat) = self.act(name)?;
        let x = self.b.dims(&var)?;
        if !flat && (x.h, x.w) != (1, 1) {
            return Err(format!(
                "input '{name}' of size {x} is not 2-D; a Flatten or Reshape must come first"
            ));
        }
        Ok((var, x))
    }

    /// A fully connected layer over `x` with weights `w` (out x features, row-major).
    #[allow(clippy::too_many_arguments)]
    fn fully_connected(
        &mut self,
        node: &NodeProto,
        k: usize,
        var: String,
        x: Dims4,
        out: usize,
        w: Vec<f32>,
        bias: Option<Tensor>,
    ) -> Result<(), Msg> {
        let weight = Tensor::from_vec(&[out, x.c, x.h, x.w], w).map_err(|e| e.to_string())?;
        let mut params = vec![weight];
        params.extend(bias);
        let kind = LayerKind::Conv {
            kernel: None,
            out,
            opts: ConvOpts::default(),
            bias: params.len() == 2,
        };
        self.layer(node, k, kind, vec![var], params, true)
    }

    pub(super) fn gemm(&mut self, node: &NodeProto, k: usize, a: &Attrs) -> Result<(), Msg> {
        a.only(&["alpha", "beta", "transA", "transB"])?;
        if a.int("transA", 0)? != 0 {
            return Err("transA = 1 (a transposed batch) is not supported".into());
        }
        let (var, x) = self.features(self.input(node, 0)?)?;
        let feat = x.image_len();
        let bm = self.constant(self.input(node, 1)?)?;
        let trans_b = a.int("transB", 0)? != 0;
        let (alpha, beta) = (a.float("alpha", 1.0)?, a.float("beta", 1.0)?);
        let out = match (&bm.dims[..], trans_b) {
            (&[o, f], true) if f == feat => o,
            (&[f, o], false) if f == feat => o,
            (d, _) => {
                return Err(format!(
                    "weights of shape {d:?} (transB {}) do not fit {feat} input features",
                    trans_b as u8
                ))
            }
        };
        let v = bm.floats("weights")?;
        let w: Vec<f32> = (0..out * feat)
            .map(|i| {
                let (o, f) = (i / feat, i % feat);
                alpha * if trans_b { v[i] } else { v[f * out + o] }
            })
            .collect();
        let bias = match self.opt_input(node, 2) {
            Some(c) => {
                let cst = self.constant(c)?;
                let vals = cst.floats("the bias")?;
                let b: Vec<f32> = match vals.len() {
                    1 => vec![beta * vals[0]; out],
                    n if n == out && cst.dims.iter().filter(|&&d| d != 1).count() <= 1 => {
                        vals.iter().map(|v| beta * v).collect()
                    }
                    _ => {
                        return Err(format!(
                            "bias of shape {:?} is not one value per output ({out})",
                            cst.dims
                        ))
                    }
                };
                Some(Tensor::from_vec(&[out], b).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        self.fully_connected(node, k, var, x, out, w, bias)
    }

    pub(super) fn matmul(&mut self, node: &NodeProto, k: usize) -> Result<(), Msg> {
        let (var, x) = self.features(self.input(node, 0)?)?;
        let feat = x.image_len();
        let bm = self.constant(self.input(node, 1)?)?;
        let &[f, out] = &bm.dims[..] else {
            return Err(format!("weights of shape {:?} are not a matrix", bm.dims));
        };
        if f != feat {
            return Err(format!(
                "weights of shape {:?} do not fit {feat} input features",
                bm.dims
            ));
        }
        let v = bm.floats("weights")?;
        let w: Vec<f32> = (0..out * feat)
            .map(|i| v[(i % feat) * out + i / feat])
            .collect();
        self.fully_connected(node, k, var, x, out, w, None)
    }
}
