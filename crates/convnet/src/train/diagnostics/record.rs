//! What the diagnostics record: summary statistics of tensors, one sample per
//! sampled batch (every layer's output and the derivative reaching it, every trained
//! parameter's values, gradient and update), and the objective of every batch. This
//! is the content of `diagnostics.json`.

use super::checks::Finding;
use serde::{Deserialize, Serialize};

/// Summary statistics of one tensor, accumulated in f64.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorStats {
    pub count: usize,
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    pub min: f64,
    pub max: f64,
    /// Euclidean norm.
    pub norm: f64,
    /// Fraction of values exactly zero (after a ReLU: the units that are off).
    pub zeros: f64,
}

/// Lanes of the sums: independent chains the compiler can keep in vector registers.
const LANES: usize = 8;

impl TensorStats {
    /// The statistics of `v` in one pass.
    pub fn of(v: &[f32]) -> TensorStats {
        let mut sum = [0f64; LANES];
        let mut sq = [0f64; LANES];
        let mut zeros = [0usize; LANES];
        let mut lo = [f32::INFINITY; LANES];
        let mut hi = [f32::NEG_INFINITY; LANES];
        let chunks = v.chunks_exact(LANES);
        let rest = chunks.remainder();
        let mut add = |k: usize, x: f32| {
            let d = x as f64;
            sum[k] += d;
            sq[k] += d * d;
            zeros[k] += (x == 0.0) as usize;
            lo[k] = lo[k].min(x);
            hi[k] = hi[k].max(x);
        };
        for c in chunks {
            for (k, &x) in c.iter().enumerate() {
                add(k, x);
            }
        }
        for (k, &x) in rest.iter().enumerate() {
            add(k, x);
        }
        let n = v.len();
        let (s, q): (f64, f64) = (sum.iter().sum(), sq.iter().sum());
        let mean = if n > 0 { s / n as f64 } else { 0.0 };
        let var = if n > 0 {
            (q / n as f64 - mean * mean).max(0.0)
        } else {
            0.0
        };
        let fold = |a: &[f32; LANES], f: fn(f32, f32) -> f32, empty: f32| {
            a.iter()
                .copied()
                .reduce(f)
                .filter(|_| n > 0)
                .unwrap_or(empty)
        };
        TensorStats {
            count: n,
            mean,
            std: var.sqrt(),
            min: fold(&lo, f32::min, 0.0) as f64,
            max: fold(&hi, f32::max, 0.0) as f64,
            norm: q.sqrt(),
            zeros: if n > 0 {
                zeros.iter().sum::<usize>() as f64 / n as f64
            } else {
                0.0
            },
        }
    }

    /// The largest magnitude.
    pub fn max_abs(&self) -> f64 {
        self.min.abs().max(self.max.abs())
    }
}

/// One layer on a sampled batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSample {
    pub name: String,
    /// The layer's type as descriptions name it (`conv`, `relu`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its output for the batch.
    pub output: TensorStats,
    /// dz/d(output), summed over the batch as the backward pass carries it; None where
    /// no derivative reaches the layer.
    pub grad: Option<TensorStats>,
}

/// One trained parameter on a sampled batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamSample {
    pub name: String,
    pub layer: String,
    /// `weight` (a filter bank or a batch-norm gain) or `bias`.
    pub role: String,
    /// Its values before the update.
    pub value: TensorStats,
    /// Its gradient, summed over the batch.
    pub grad: TensorStats,
    /// `|w_after - w_before| / |w_before|`: the step the solver took, momentum and
    /// weight decay included. None while the weight is all zeros (a bias at the start).
    pub update_ratio: Option<f64>,
    /// `lr * lr_mult * |g| / (batch * |w|)`: the step the loss's gradient alone asks
    /// for under SGD's rule, which vanishes with the gradient whatever the weight decay
    /// and momentum add.
    pub grad_ratio: Option<f64>,
}

/// Everything recorded on one sampled batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// 1-based, as printed.
    pub epoch: usize,
    pub batch: usize,
    pub lr: f32,
    /// The batch's objective, mean per image.
    pub objective: f64,
    /// The network input as the first layer sees it (after normalisation).
    pub input: TensorStats,
    /// In execution order; losses and metrics left out.
    pub layers: Vec<LayerSample>,
    pub params: Vec<ParamSample>,
}

/// The objective of every batch of one epoch, mean per image, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochObjectives {
    pub epoch: usize,
    pub batches: Vec<f64>,
}

/// The whole record of a run: `diagnostics.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Classes the network scores (the chance level of the objective is ln of it).
    pub classes: usize,
    pub objectives: Vec<EpochObjectives>,
    pub samples: Vec<Sample>,
    /// Every finding reported so far, in order.
    pub findings: Vec<Finding>,
}

impl Diagnostics {
    /// Keeps epochs `1..=epoch` only (a run resumed after `epoch` redoes the rest).
    pub fn truncate(&mut self, epoch: usize) {
        self.objectives.retain(|o| o.epoch <= epoch);
        self.samples.retain(|s| s.epoch <= epoch);
        self.findings.retain(|f| f.epoch <= epoch);
    }

    /// The objectives of all batches recorded so far, in order.
    pub fn all_objectives(&self) -> impl Iterator<Item = f64> + '_ {
        self.objectives
            .iter()
            .flat_map(|o| o.batches.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_match_a_direct_computation() {
        // 19 values: more than two lanes' worth plus a remainder, with zeros.
        let v: Vec<f32> = (0..19)
            .map(|i| {
                if i % 4 == 0 {
                    0.0
                } else {
                    (i as f32 - 7.5) * 0.3
                }
            })
            .collect();
        let s = TensorStats::of(&v);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert_eq!(s.count, 19);
        assert!((s.mean - mean).abs() < 1e-12);
        assert!((s.std - var.sqrt()).abs() < 1e-9);
        let f = |i: f32| ((i - 7.5) * 0.3) as f64;
        assert_eq!((s.min, s.max), (f(1.0), f(18.0)));
        assert_eq!(s.zeros, 5.0 / 19.0);
        let norm = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        assert!((s.norm - norm).abs() < 1e-12);
        assert_eq!(s.max_abs(), f(18.0));
        let e = TensorStats::of(&[]);
        assert_eq!(
            (e.count, e.mean, e.min, e.max, e.zeros),
            (0, 0.0, 0.0, 0.0, 0.0)
        );
    }
}
