//! Losses over channels at every spatial location, summed over locations and the
//! batch, with optional per-instance weights (N, 1, H, W) (a weight of 0 ignores a
//! location). Multi-class labels are (N, 1, H, W) class indices 0..C-1 stored as f32;
//! binary labels are +1/-1 with the shape of `x` (0 ignores an element).
//!
//! The sum is what `forward` returns and what `backward` differentiates: a solver that
//! wants the mean per image divides `dzdy` by N. Labels are not checked where the
//! weight is 0, so such locations may hold any placeholder. Shapes are compared as
//! NCHW, so an (N, C) score matrix takes (N,) or (N, 1) labels.

use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Dims4, Tensor};
use rayon::prelude::*;

const BLOCK: &str = "loss";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// -log softmax(x)[label]
    SoftmaxLog,
    /// Binary logistic log-loss log(1 + exp(-y x)), labels +-1.
    Logistic,
    /// Binary hinge max(0, 1 - y x), labels +-1.
    Hinge,
    /// Multi-class hinge max(0, 1 - x[label] + max_{k != label} x[k]).
    MultiHinge,
    /// Class error (forward only): 1 where the top class is not the label.
    ClassError,
    /// Top-k error (forward only): 1 where the label is not among the k best classes.
    TopKError(usize),
}

impl LossKind {
    fn is_binary(self) -> bool {
        matches!(self, LossKind::Logistic | LossKind::Hinge)
    }
    fn name(self) -> String {
        match self {
            LossKind::SoftmaxLog => "softmax log-loss".into(),
            LossKind::Logistic => "logistic loss".into(),
            LossKind::Hinge => "hinge loss".into(),
            LossKind::MultiHinge => "multi-class hinge loss".into(),
            LossKind::ClassError => "class error".into(),
            LossKind::TopKError(k) => format!("top-{k} error"),
        }
    }
}

/// The checked inputs, with NCHW sizes of `x`.
struct Inputs<'a> {
    d: Dims4,
    x: &'a [f32],
    labels: &'a [f32],
    weights: Option<&'a [f32]>,
    kind: LossKind,
}

fn expect_dims(what: &str, t: &Tensor, expected: Dims4, x: Dims4, rule: &str) -> Result<()> {
    if t.dims4().ok() != Some(expected) {
        return Err(Error::block(
            BLOCK,
            format!(
                "{what} have shape {} but x {x} needs {rule} = {expected}",
                fmt_shape(t.shape())
            ),
        ));
    }
    Ok(())
}

fn check<'a>(
    x: &'a Tensor,
    labels: &'a Tensor,
    weights: Option<&'a Tensor>,
    kind: LossKind,
) -> Result<Inputs<'a>> {
    let d = x
        .dims4()
        .map_err(|e| Error::block(BLOCK, format!("x: {e}")))?;
    let site = Dims4::new(d.n, 1, d.h, d.w);
    if kind.is_binary() {
        expect_dims("labels", labels, d, d, "labels of its shape")?;
    } else {
        expect_dims("labels", labels, site, d, "(N,1,H,W)")?;
        if d.c == 0 {
            return Err(Error::block(BLOCK, format!("x {d} has no classes")));
        }
    }
    if let Some(w) = weights {
        expect_dims("weights", w, site, d, "(N,1,H,W)")?;
    }
    match kind {
        LossKind::MultiHinge if d.c < 2 => Err(Error::block(
            BLOCK,
            format!(
                "multi-class hinge needs at least 2 classes, x {d} has {}",
                d.c
            ),
        )),
        LossKind::TopKError(0) => Err(Error::block(BLOCK, "top-k error needs k >= 1, got 0")),
        _ => Ok(Inputs {
            d,
            x: x.data(),
            labels: labels.data(),
            weights: weights.map(|w| w.data()),
            kind,
        }),
    }
}

fn location(d: Dims4, n: usize, s: usize) -> String {
    let w = d.w.max(1);
    format!("(image {n}, row {}, column {}) of x {d}", s / w, s % w)
}

/// The class index a label holds, or an error naming where it sits.
fn class_of(v: f32, d: Dims4, n: usize, s: usize) -> Result<usize> {
    if v.fract() == 0.0 && v >= 0.0 && (v as usize) < d.c {
        return Ok(v as usize);
    }
    Err(Error::block(
        BLOCK,
        format!(
            "label {v} at {} is not a class index 0..{}",
            location(d, n, s),
            d.c - 1
        ),
    ))
}

/// The sign a binary label holds (0 = ignore), or an error naming where it sits.
fn sign_of(v: f32, d: Dims4, n: usize, c: usize, s: usize) -> Result<f32> {
    if v == 1.0 || v == -1.0 || v == 0.0 {
        return Ok(v);
    }
    Err(Error::block(
        BLOCK,
        format!(
            "label {v} at channel {c} of {} is not +1, -1 or 0",
            location(d, n, s)
        ),
    ))
}

/// log(1 + exp(z)) without overflow or loss of precision for large |z|.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The first index of the largest score other than `l`.
// `!(v > b)` rather than `v <= b`: a NaN score never displaces the best so far.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn best_other(col: &[f32], l: usize) -> Option<usize> {
    col.iter()
        .enumerate()
        .filter(|&(k, _)| k != l)
        .fold(None, |best: Option<(usize, f32)>, (k, &v)| match best {
            Some((_, b)) if !(v > b) => best,
            _ => Some((k, v)),
        })
        .map(|(k, _)| k)
}

/// How many classes rank before `l`: higher scores, and equal scores earlier.
fn rank_of(col: &[f32], l: usize) -> usize {
    let t = col[l];
    col.iter()
        .enumerate()
        .filter(|&(k, &v)| v > t || (v == t && k < l))
        .count()
}

fn log_sum_exp(col: &[f32]) -> f64 {
    let m = col.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    m + col.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
}

/// The multi-class loss at one location, whose scores are `col`.
fn class_loss(kind: LossKind, col: &[f32], l: usize) -> f64 {
    match kind {
        LossKind::SoftmaxLog => log_sum_exp(col) - col[l] as f64,
        LossKind::MultiHinge => {
            let m = best_other(col, l).map_or(f64::NEG_INFINITY, |k| col[k] as f64);
            (1.0 - col[l] as f64 + m).max(0.0)
        }
        LossKind::ClassError => (rank_of(col, l) >= 1) as u8 as f64,
        LossKind::TopKError(k) => (rank_of(col, l) >= k) as u8 as f64,
        LossKind::Logistic | LossKind::Hinge => 0.0,
    }
}

/// Writes `scale` times the derivative of the multi-class loss at one location.
fn class_grad(kind: LossKind, col: &[f32], l: usize, scale: f64, g: &mut [f32]) {
    match kind {
        LossKind::SoftmaxLog => {
            let lse = log_sum_exp(col);
            for (t, &v) in g.iter_mut().zip(col) {
                *t = (scale * (v as f64 - lse).exp()) as f32;
            }
            g[l] -= scale as f32;
        }
        LossKind::MultiHinge => {
            g.fill(0.0);
            if let Some(k) = best_other(col, l) {
                if 1.0 - col[l] as f64 + col[k] as f64 > 0.0 {
                    g[l] = -scale as f32;
                    g[k] = scale as f32;
                }
            }
        }
        _ => g.fill(0.0),
    }
}

/// The binary loss of score `v` with label `y` (+-1), and its derivative in `v`.
fn binary(kind: LossKind, v: f32, y: f32) -> (f64, f64) {
    let (v, y) = (v as f64, y as f64);
    match kind {
        LossKind::Logistic => (softplus(-y * v), -y * sigmoid(-y * v)),
        _ if 1.0 - y * v > 0.0 => (1.0 - y * v, -y),
        _ => (0.0, 0.0),
    }
}

impl Inputs<'_> {
    fn image(&self, n: usize) -> (&[f32], &[f32], Option<&[f32]>) {
        let (m, hw) = (self.d.image_len(), self.d.plane());
        let labels_len = if self.kind.is_binary() { m } else { hw };
        (
            &self.x[n * m..(n + 1) * m],
            &self.labels[n * labels_len..(n + 1) * labels_len],
            self.weights.map(|w| &w[n * hw..(n + 1) * hw]),
        )
    }

    /// Runs `f(location, weight, class)` at every weighted location of image `n`.
    fn for_classes(
        &self,
        n: usize,
        mut f: impl FnMut(usize, f64, usize) -> Result<()>,
    ) -> Result<()> {
        let (_, labels, weights) = self.image(n);
        for (s, &lv) in labels.iter().enumerate() {
            let w = weights.map_or(1.0, |w| w[s]);
            if w != 0.0 {
                f(s, w as f64, class_of(lv, self.d, n, s)?)?;
            }
        }
        Ok(())
    }

    /// Runs `f(index in image, weight, sign)` at every labelled, weighted element.
    fn for_signs(&self, n: usize, mut f: impl FnMut(usize, f64, f32)) -> Result<()> {
        let (_, labels, weights) = self.image(n);
        let hw = self.d.plane();
        for (i, &lv) in labels.iter().enumerate() {
            let s = i % hw;
            let w = weights.map_or(1.0, |w| w[s]);
            if w != 0.0 {
                let y = sign_of(lv, self.d, n, i / hw, s)?;
                if y != 0.0 {
                    f(i, w as f64, y);
                }
            }
        }
        Ok(())
    }

    fn gather(&self, xi: &[f32], s: usize, col: &mut [f32]) {
        let hw = self.d.plane();
        for (k, t) in col.iter_mut().enumerate() {
            *t = xi[k * hw + s];
        }
    }

    fn image_loss(&self, n: usize) -> Result<f64> {
        let (xi, _, _) = self.image(n);
        let mut total = 0.0f64;
        if self.kind.is_binary() {
            self.for_signs(n, |i, w, y| total += w * binary(self.kind, xi[i], y).0)?;
        } else {
            let mut col = vec![0.0f32; self.d.c];
            self.for_classes(n, |s, w, l| {
                self.gather(xi, s, &mut col);
                total += w * class_loss(self.kind, &col, l);
                Ok(())
            })?;
        }
        Ok(total)
    }

    fn image_grad(&self, n: usize, dzdy: f64, dx: &mut [f32]) -> Result<()> {
        let (xi, _, _) = self.image(n);
        if self.kind.is_binary() {
            return self.for_signs(n, |i, w, y| {
                dx[i] = (dzdy * w * binary(self.kind, xi[i], y).1) as f32
            });
        }
        let hw = self.d.plane();
        let mut col = vec![0.0f32; self.d.c];
        let mut g = vec![0.0f32; self.d.c];
        self.for_classes(n, |s, w, l| {
            self.gather(xi, s, &mut col);
            class_grad(self.kind, &col, l, dzdy * w, &mut g);
            for (k, &v) in g.iter().enumerate() {
                dx[k * hw + s] = v;
            }
            Ok(())
        })
    }
}

/// The weighted sum of the loss over locations and the batch.
pub fn forward(
    x: &Tensor,
    labels: &Tensor,
    weights: Option<&Tensor>,
    kind: LossKind,
) -> Result<f32> {
    let inp = check(x, labels, weights, kind)?;
    // Per-image sums added in image order: the same total for any thread count.
    let parts: Vec<Result<f64>> = (0..inp.d.n)
        .into_par_iter()
        .map(|n| inp.image_loss(n))
        .collect();
    let mut total = 0.0f64;
    for p in parts {
        total += p?;
    }
    Ok(total as f32)
}

/// dz/dx for dz/d(loss) = `dzdy`; an error for the metrics.
pub fn backward(
    x: &Tensor,
    labels: &Tensor,
    weights: Option<&Tensor>,
    kind: LossKind,
    dzdy: f32,
) -> Result<Tensor> {
    if matches!(kind, LossKind::ClassError | LossKind::TopKError(_)) {
        return Err(Error::block(
            BLOCK,
            format!("{} is a metric and has no derivative", kind.name()),
        ));
    }
    let inp = check(x, labels, weights, kind)?;
    let mut dx = Tensor::zeros(x.shape())?;
    let m = inp.d.image_len();
    if m == 0 {
        return Ok(dx);
    }
    let results: Vec<Result<()>> = dx
        .data_mut()
        .par_chunks_mut(m)
        .enumerate()
        .map(|(n, dxi)| inp.image_grad(n, dzdy as f64, dxi))
        .collect();
    results.into_iter().collect::<Result<()>>()?;
    Ok(dx)
}
