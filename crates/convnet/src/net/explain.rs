//! Explaining one prediction: which input pixels (saliency) and which places of a
//! layer's feature maps (Grad-CAM) the score of a class depends on. Both
//! back-propagate the derivative of one class score, not of a loss, through the
//! test-mode network (dropout off, batch normalisation by its running moments).
//!
//! - Saliency (Simonyan, Vedaldi and Zisserman, 2014): `d score / d input`, and as a
//!   map the largest magnitude over the channels of each pixel.
//! - Grad-CAM (Selvaraju et al., 2017): with `A` a layer's output maps and `alpha_c`
//!   the mean over its map of `d score / d A_c`, the map `ReLU(sum_c alpha_c A_c)`.

use super::graph::Network;
use super::layer::LayerKind;
use super::summary::summarize;
use super::Mode;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The network input explanations feed.
const INPUT: &str = "input";
const PREDICTION: &str = "prediction";

/// Values over an `h` x `w` grid, row by row.
#[derive(Clone, Debug, PartialEq)]
pub struct Heat {
    pub h: usize,
    pub w: usize,
    pub values: Vec<f32>,
}

impl Heat {
    /// The row and column of the largest value (the first on ties).
    pub fn peak(&self) -> (usize, usize) {
        let v = &self.values;
        let i = (0..v.len())
            .max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        (i / self.w.max(1), i % self.w.max(1))
    }
}

/// A Grad-CAM map and the layer it was computed at.
#[derive(Clone, Debug, PartialEq)]
pub struct Cam {
    pub layer: String,
    /// Channels of the layer's output (the maps weighted).
    pub channels: usize,
    pub heat: Heat,
    /// Where the map's cells sit on the input: cell (i, j) is the centre of its
    /// receptive field, input row `centre[0] + i * jump[0]`, column
    /// `centre[1] + j * jump[1]`.
    pub centre: [f64; 2],
    pub jump: [f64; 2],
}

/// Runs the test-mode forward of one image `x` (1, C, H, W) and returns its class
/// scores.
pub fn scores(net: &mut Network, x: &Tensor) -> Result<Vec<f32>> {
    let d = x.dims4()?;
    if d.n != 1 {
        return Err(Error::Invalid(format!(
            "explaining a prediction takes one image, got a batch of {}",
            d.n
        )));
    }
    net.forward(&[(INPUT, x)], Mode::Test)?;
    let p = net
        .prediction()
        .ok_or_else(|| Error::Invalid("the network has no 'prediction' variable".into()))?;
    let pd = p.dims4()?;
    // One score per class: summed over the locations of a fully convolutional output.
    Ok((0..pd.c)
        .map(|c| {
            p.data()[c * pd.plane()..(c + 1) * pd.plane()]
                .iter()
                .sum::<f32>()
        })
        .collect())
}

/// `d score_class / d prediction` after a forward: one at every location of channel
/// `class`, zero elsewhere.
fn one_hot(net: &Network, class: usize) -> Result<Tensor> {
    let p = net
        .prediction()
        .ok_or_else(|| Error::Invalid("the network has no 'prediction' variable".into()))?;
    let d = p.dims4()?;
    if class >= d.c {
        return Err(Error::Invalid(format!(
            "class {class} is not below the {} classes of the network",
            d.c
        )));
    }
    let mut g = Tensor::zeros(p.shape())?;
    g.data_mut()[class * d.plane()..(class + 1) * d.plane()].fill(1.0);
    Ok(g)
}

/// `d score_class / d input` for one image `x` (1, C, H, W): a tensor of x's shape.
pub fn input_gradient(net: &mut Network, x: &Tensor, class: usize) -> Result<Tensor> {
    scores(net, x)?;
    let seed = one_hot(net, class)?;
    net.set_input_grads(true);
    let r = net.backward_from(PREDICTION, &seed, &mut |_| Ok(()));
    net.set_input_grads(false);
    r?;
    net.var_grad(INPUT)
        .cloned()
        .ok_or_else(|| Error::Invalid("no derivative reached the input".into()))
}

/// The saliency map of an input gradient (1, C, H, W): per pixel, the largest
/// magnitude over the channels.
pub fn saliency(grad: &Tensor) -> Result<Heat> {
    let d = grad.dims4()?;
    let plane = d.plane();
    let mut values = vec![0f32; plane];
    for ch in grad.data().chunks(plane.max(1)).take(d.c) {
        for (v, &g) in values.iter_mut().zip(ch) {
            *v = v.max(g.abs());
        }
    }
    Ok(Heat {
        h: d.h,
        w: d.w,
        values,
    })
}

/// The layer Grad-CAM uses unless told: the last convolution (in execution order)
/// whose output after the last forward has more than one location.
pub fn last_spatial_conv(net: &Network) -> Option<String> {
    net.layers()
        .iter()
        .rev()
        .filter(|l| matches!(l.kind, LayerKind::Conv { .. } | LayerKind::ConvT { .. }))
        .find(|l| {
            net.var(&l.output)
                .and_then(|t| t.dims4().ok())
                .is_some_and(|d| d.plane() > 1)
        })
        .map(|l| l.name.clone())
}

/// Grad-CAM of `class` for one image `x` at `layer` (None: [`last_spatial_conv`]).
pub fn grad_cam(net: &mut Network, x: &Tensor, class: usize, layer: Option<&str>) -> Result<Cam> {
    scores(net, x)?;
    let name = match layer {
        Some(l) => l.to_string(),
        None => last_spatial_conv(net).ok_or_else(|| {
            Error::Invalid(
                "the network has no convolution with a spatial output; name a layer".into(),
            )
        })?,
    };
    let li = net
        .layers()
        .iter()
        .position(|l| l.name == name)
        .ok_or_else(|| Error::Invalid(format!("no layer '{name}'")))?;
    // The layer's output is read now: the backward pass may free it.
    let a = net
        .var(&net.layers()[li].output)
        .cloned()
        .ok_or_else(|| Error::layer(name.clone(), "its output was not computed"))?;
    let d = a.dims4()?;
    let seed = one_hot(net, class)?;
    let mut da: Option<Tensor> = None;
    net.set_input_grads(true);
    let r = net.backward_from(PREDICTION, &seed, &mut |step| {
        if step.layer == li {
            da = step.dy.cloned();
        }
        Ok(())
    });
    net.set_input_grads(false);
    r?;
    let da = da.ok_or_else(|| {
        Error::layer(
            name.clone(),
            "no derivative of the class score reaches it (it does not lead to the prediction)",
        )
    })?;
    let plane = d.plane();
    let mut values = vec![0f32; plane];
    for (ac, gc) in a.data().chunks(plane).zip(da.data().chunks(plane)) {
        let alpha = gc.iter().map(|&g| g as f64).sum::<f64>() / plane as f64;
        for (v, &av) in values.iter_mut().zip(ac) {
            *v += (alpha * av as f64) as f32;
        }
    }
    values.iter_mut().for_each(|v| *v = v.max(0.0));
    let x = x.dims4()?;
    // Without the geometry (a layer the summary cannot place), the map is stretched
    // over the input, as Grad-CAM is usually drawn.
    let (centre, jump) = summarize(net.desc(), Some([x.h, x.w, x.c]))
        .ok()
        .and_then(|s| s.rows.into_iter().find(|r| r.name == name))
        .map(|r| (r.centre, r.jump))
        .unwrap_or_else(|| {
            let j = [x.h as f64 / d.h as f64, x.w as f64 / d.w as f64];
            ([(j[0] - 1.0) / 2.0, (j[1] - 1.0) / 2.0], j)
        });
    Ok(Cam {
        layer: name,
        channels: d.c,
        heat: Heat {
            h: d.h,
            w: d.w,
            values,
        },
        centre,
        jump,
    })
}
