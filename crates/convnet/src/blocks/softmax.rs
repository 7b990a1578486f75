//! Softmax and log-softmax over channels, at every spatial location.
//!
//! The maximum over channels is subtracted before exponentiating, so no exp
//! overflows. Images run in parallel; within an image the loops run over locations
//! innermost, which are contiguous in NCHW.

use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Dims4, Tensor};
use rayon::prelude::*;

fn dims(block: &'static str, x: &Tensor) -> Result<Dims4> {
    x.dims4()
        .map_err(|e| Error::block(block, format!("x: {e}")))
}

fn check_dy(block: &'static str, x: &Tensor, dy: &Tensor) -> Result<()> {
    if dy.shape() != x.shape() {
        return Err(Error::block(
            block,
            format!(
                "dy has shape {} but x has shape {}",
                fmt_shape(dy.shape()),
                fmt_shape(x.shape())
            ),
        ));
    }
    Ok(())
}

/// Runs `f(image of x, image of other, image of out)` for every image, in parallel.
fn per_image(
    d: Dims4,
    x: &[f32],
    other: &[f32],
    out: &mut [f32],
    f: impl Fn(&[f32], &[f32], &mut [f32]) + Sync,
) {
    let m = d.image_len();
    if m == 0 {
        return;
    }
    out.par_chunks_mut(m)
        .zip(x.par_chunks(m))
        .zip(other.par_chunks(m))
        .with_min_len((1 << 12) / m + 1)
        .for_each(|((o, xi), yi)| f(xi, yi, o));
}

/// Writes softmax (or log-softmax) of one image's `x` (C planes of `hw`) into `y`.
fn softmax_image(x: &[f32], hw: usize, y: &mut [f32], log: bool) {
    let mut max = vec![f32::NEG_INFINITY; hw];
    for xc in x.chunks_exact(hw) {
        for (m, &v) in max.iter_mut().zip(xc) {
            *m = m.max(v);
        }
    }
    let mut sum = vec![0.0f32; hw];
    for (yc, xc) in y.chunks_exact_mut(hw).zip(x.chunks_exact(hw)) {
        for (((t, &v), &m), s) in yc.iter_mut().zip(xc).zip(&max).zip(sum.iter_mut()) {
            let e = (v - m).exp();
            *s += e;
            *t = if log { v - m } else { e };
        }
    }
    let norm: Vec<f32> = if log {
        sum.iter().map(|s| s.ln()).collect()
    } else {
        sum.iter().map(|s| 1.0 / s).collect()
    };
    for yc in y.chunks_exact_mut(hw) {
        for (t, &k) in yc.iter_mut().zip(&norm) {
            *t = if log { *t - k } else { *t * k };
        }
    }
}

/// Sum over channels of `a * b` at each location of one image.
fn channel_dot(a: &[f32], b: &[f32], hw: usize) -> Vec<f32> {
    let mut s = vec![0.0f32; hw];
    for (ac, bc) in a.chunks_exact(hw).zip(b.chunks_exact(hw)) {
        for ((t, &u), &v) in s.iter_mut().zip(ac).zip(bc) {
            *t += u * v;
        }
    }
    s
}

fn forward(block: &'static str, x: &Tensor, log: bool) -> Result<Tensor> {
    let d = dims(block, x)?;
    let mut y = x.clone();
    let hw = d.plane();
    per_image(d, x.data(), x.data(), y.data_mut(), |xi, _, yi| {
        softmax_image(xi, hw, yi, log)
    });
    Ok(y)
}

pub fn softmax_forward(x: &Tensor) -> Result<Tensor> {
    forward("softmax", x, false)
}

/// dx = y * (dy - sum_c dy * y), with y = softmax(x).
pub fn softmax_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    const BLOCK: &str = "softmax";
    let d = dims(BLOCK, x)?;
    check_dy(BLOCK, x, dy)?;
    let hw = d.plane();
    let mut dx = x.clone();
    per_image(d, x.data(), dy.data(), dx.data_mut(), |xi, dyi, dxi| {
        softmax_image(xi, hw, dxi, false);
        let dot = channel_dot(dxi, dyi, hw);
        for (dxc, dyc) in dxi.chunks_exact_mut(hw).zip(dyi.chunks_exact(hw)) {
            for ((t, &g), &s) in dxc.iter_mut().zip(dyc).zip(&dot) {
                *t *= g - s;
            }
        }
    });
    Ok(dx)
}

pub fn log_softmax_forward(x: &Tensor) -> Result<Tensor> {
    forward("log-softmax", x, true)
}

/// dx = dy - softmax(x) * sum_c dy.
pub fn log_softmax_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    const BLOCK: &str = "log-softmax";
    let d = dims(BLOCK, x)?;
    check_dy(BLOCK, x, dy)?;
    let hw = d.plane();
    let mut dx = x.clone();
    per_image(d, x.data(), dy.data(), dx.data_mut(), |xi, dyi, dxi| {
        softmax_image(xi, hw, dxi, false);
        let mut total = vec![0.0f32; hw];
        for dyc in dyi.chunks_exact(hw) {
            for (t, &g) in total.iter_mut().zip(dyc) {
                *t += g;
            }
        }
        for (dxc, dyc) in dxi.chunks_exact_mut(hw).zip(dyi.chunks_exact(hw)) {
            for ((t, &g), &s) in dxc.iter_mut().zip(dyc).zip(&total) {
                *t = g - *t * s;
            }
        }
    });
    Ok(dx)
}
