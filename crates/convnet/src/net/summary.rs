//! The table `convnet show` prints: per layer its geometry, parameters, activation
//! memory, receptive field and FLOPs, computed from the description alone.

use super::desc::NetDesc;
use super::graph::Plan;
use super::layer::LayerKind;
use crate::blocks::Pad;
use crate::error::{Error, Result};
use crate::tensor::Dims4;
use std::collections::BTreeSet;

/// One layer's row. Sizes are per image (batch 1).
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    pub name: String,
    pub kind: String,
    /// "5x5" for convolutions and pooling, "" otherwise.
    pub kernel: String,
    pub stride: String,
    /// "t,b,l,r", or one number when all four agree.
    pub pad: String,
    /// Output (H, W, C).
    pub out: [usize; 3],
    /// Trained parameters this layer adds (a shared parameter counts once).
    pub params: usize,
    /// Bytes of the output activation (f32).
    pub act_bytes: usize,
    /// Receptive field (height, width) of one output pixel on the network input.
    pub receptive: [usize; 2],
    /// Where output pixel (i, j) sits on the network input: its receptive field is
    /// centred on input row `centre[0] + i * jump[0]`, column `centre[1] + j * jump[1]`
    /// (through a layer's first input where it has several).
    pub centre: [f64; 2],
    pub jump: [f64; 2],
    /// Floating-point operations of the forward pass (a multiply-add is 2).
    pub flops: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub rows: Vec<SummaryRow>,
    pub total_params: usize,
    pub total_act_bytes: usize,
    pub total_flops: u64,
}

/// The table for `desc`, with `input` (H, W, C) replacing the size of the input
/// `input` (or of the first input) if given. Rows follow the description's order;
/// sizes come from the blocks' output-size rules, without running any data.
pub fn summarize(desc: &NetDesc, input: Option<[usize; 3]>) -> Result<Summary> {
    let mut desc = desc.clone();
    if let Some(size) = input {
        if size.contains(&0) {
            return Err(Error::Invalid(format!(
                "input size {size:?} must be positive"
            )));
        }
        let k = desc
            .inputs
            .iter()
            .position(|i| i.name == "input")
            .unwrap_or(0);
        match desc.inputs.get_mut(k) {
            Some(i) => i.size = size,
            None => return Err(Error::Invalid("the network has no input".into())),
        }
    }
    let plan = Plan::new(&desc)?;
    let n = plan.var_names.len();
    // Receptive field and the spacing on the input of adjacent pixels, per variable.
    let mut rf = vec![[1.0f64; 2]; n];
    let mut jump = vec![[1.0f64; 2]; n];
    let mut centre = vec![[0.0f64; 2]; n];
    let mut seen = BTreeSet::new();
    let mut rows: Vec<Option<SummaryRow>> = vec![None; desc.layers.len()];
    for &k in &plan.order {
        let l = &desc.layers[k];
        let ins = &plan.layer_inputs[k];
        let x = plan.var_dims[ins[0]];
        let y = plan.var_dims[plan.layer_output[k]];
        let g = geometry(&l.kind, x);
        let (r0, j0) = ins.iter().fold(([0.0f64; 2], [0.0f64; 2]), |(r, j), &i| {
            (
                [r[0].max(rf[i][0]), r[1].max(rf[i][1])],
                [j[0].max(jump[i][0]), j[1].max(jump[i][1])],
            )
        });
        let (mut r1, mut j1) = (r0, j0);
        // Output pixel 0's centre, in pixels of the first input, then on the network input.
        let (c0, first_jump) = (centre[ins[0]], jump[ins[0]]);
        let mut shift = [0.0f64; 2];
        if let Some(g) = &g {
            let before = [g.pad.top, g.pad.left];
            for a in 0..2 {
                let half = (g.kernel[a] - 1) as f64 / 2.0;
                if g.up[a] > 1 {
                    let taps = g.kernel[a].div_ceil(g.up[a]) as f64;
                    r1[a] = r0[a] + (taps - 1.0) * j0[a];
                    j1[a] = j0[a] / g.up[a] as f64;
                    // y[o] gathers x[i] at o = i * up + t - crop.
                    shift[a] = (before[a] as f64 - half) / g.up[a] as f64;
                } else {
                    let span = (g.dilation[a] * (g.kernel[a] - 1) + 1) as f64;
                    r1[a] = r0[a] + (span - 1.0) * j0[a];
                    j1[a] = j0[a] * g.stride[a] as f64;
                    shift[a] = g.dilation[a] as f64 * half - before[a] as f64;
                }
            }
        }
        if let LayerKind::Crop(c) = &l.kind {
            shift = [c.top as f64, c.left as f64];
        }
        let out = plan.layer_output[k];
        rf[out] = r1;
        jump[out] = j1;
        centre[out] = [
            c0[0] + shift[0] * first_jump[0],
            c0[1] + shift[1] * first_jump[1],
        ];
        let params = l
            .kind
            .param_names()
            .iter()
            .enumerate()
            .zip(&plan.param_shapes[k])
            .filter(|((i, pname), _)| {
                let name = l
                    .params
                    .get(*i)
                    .cloned()
                    .unwrap_or(format!("{}.{pname}", l.name));
                seen.insert(name)
            })
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum();
        let xs: Vec<Dims4> = ins.iter().map(|&i| plan.var_dims[i]).collect();
        rows[k] = Some(SummaryRow {
            name: l.name.clone(),
            kind: l.kind.type_name().to_string(),
            kernel: g.as_ref().map_or(String::new(), |g| pair(g.kernel)),
            stride: g.as_ref().map_or(String::new(), |g| {
                pair(if g.up[0] > 1 || g.up[1] > 1 {
                    g.up
                } else {
                    g.stride
                })
            }),
            pad: g.as_ref().map_or(String::new(), |g| pad_text(g.pad)),
            out: [y.h, y.w, y.c],
            params,
            act_bytes: y.image_len() * 4,
            receptive: [r1[0].round() as usize, r1[1].round() as usize],
            centre: centre[out],
            jump: j1,
            flops: flops(&l.kind, &xs, y, &plan.param_shapes[k]),
        });
    }
    let rows: Vec<SummaryRow> = rows.into_iter().flatten().collect();
    Ok(Summary {
        total_params: rows.iter().map(|r| r.params).sum(),
        total_act_bytes: rows.iter().map(|r| r.act_bytes).sum(),
        total_flops: rows.iter().map(|r| r.flops).sum(),
        rows,
    })
}

/// A windowed layer's geometry.
struct Geometry {
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    /// Upsampling of a transposed convolution.
    up: [usize; 2],
    pad: Pad,
}

fn geometry(kind: &LayerKind, x: Dims4) -> Option<Geometry> {
    let g = |kernel, stride, dilation, up, pad| Geometry {
        kernel,
        stride,
        dilation,
        up,
        pad,
    };
    match kind {
        LayerKind::Conv { kernel, opts, .. } => Some(g(
            kernel.unwrap_or([x.h, x.w]),
            opts.stride,
            opts.dilation,
            [1, 1],
            opts.pad,
        )),
        LayerKind::ConvT { kernel, opts, .. } => {
            Some(g(*kernel, [1, 1], [1, 1], opts.upsample, opts.crop))
        }
        LayerKind::Pool(o) => Some(g(o.window, o.stride, [1, 1], [1, 1], o.pad)),
        _ => None,
    }
}

fn pair(v: [usize; 2]) -> String {
    if v[0] == v[1] {
        v[0].to_string()
    } else {
        format!("{}x{}", v[0], v[1])
    }
}

fn pad_text(p: Pad) -> String {
    if p == Pad::all(p.top) {
        p.top.to_string()
    } else {
        format!("{},{},{},{}", p.top, p.bottom, p.left, p.right)
    }
}

/// Forward FLOPs for one image: 2 per multiply-add of a (transposed) convolution
/// plus its bias adds, one per window element for pooling, and small per-element
/// counts for the element-wise layers (dropout and cropping count none: at test
/// time they only move data).
fn flops(kind: &LayerKind, xs: &[Dims4], y: Dims4, shapes: &[Vec<usize>]) -> u64 {
    let x = xs.first().copied().unwrap_or(y);
    let out = y.image_len() as u64;
    let inp = x.image_len() as u64;
    let weights = shapes.first().map_or(0, |s| s.iter().product::<usize>()) as u64;
    match kind {
        LayerKind::Conv { bias, .. } => {
            let per_out = weights / y.c.max(1) as u64;
            out * 2 * per_out + if *bias { out } else { 0 }
        }
        LayerKind::ConvT { bias, .. } => {
            2 * weights * x.plane() as u64 + if *bias { out } else { 0 }
        }
        LayerKind::Pool(o) => out * (o.window[0] * o.window[1]) as u64,
        LayerKind::Relu { .. } => out,
        LayerKind::Sigmoid | LayerKind::Tanh => 4 * out,
        LayerKind::Softmax | LayerKind::LogSoftmax => 4 * out,
        LayerKind::Loss(_) => 4 * inp,
        LayerKind::BNorm { .. } => 2 * out,
        LayerKind::Lrn(o) => (o.n as u64 + 4) * out,
        LayerKind::Sum => out * (xs.len().max(1) as u64 - 1),
        LayerKind::Dropout { .. } | LayerKind::Concat | LayerKind::Crop(_) => 0,
    }
}
