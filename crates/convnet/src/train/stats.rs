//! Per-epoch statistics and the evaluation of a network on a data set.

use crate::data::batch::{BatchOptions, Batcher};
use crate::data::normalize::Normalization;
use crate::data::shard::Shard;
use crate::data::source::Images;
use crate::error::{Error, Result};
use crate::net::{Mode, Network};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// One epoch of training, as written to `history.json`. Objectives are means per
/// image; errors are fractions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    pub lr: f32,
    pub train_objective: f64,
    pub train_top1err: f64,
    pub train_top5err: f64,
    pub val_objective: Option<f64>,
    pub val_top1err: Option<f64>,
    pub val_top5err: Option<f64>,
    /// Training images per second (the training pass only, not the evaluation).
    pub images_per_s: f64,
    /// The fraction of the training pass spent waiting for batches (decoding and
    /// jittering that did not keep ahead of the network).
    #[serde(default)]
    pub data_wait: f64,
}

/// Running sums of the objective and of the top-1 and top-5 errors.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub images: usize,
    pub objective: f64,
    pub top1: usize,
    pub top5: usize,
}

impl Tally {
    /// Adds a batch: its summed objective and its class scores (B, K, 1, 1).
    pub fn add(&mut self, objective: f64, scores: &Tensor, labels: &[usize]) -> Result<()> {
        let ranks = label_ranks(scores, labels)?;
        self.images += labels.len();
        self.objective += objective;
        self.top1 += ranks.iter().filter(|&&r| r >= 1).count();
        self.top5 += ranks.iter().filter(|&&r| r >= 5).count();
        Ok(())
    }

    /// The counts as numbers to sum over the ranks of a data-parallel run.
    pub fn sums(&self) -> [f64; 4] {
        [
            self.images as f64,
            self.objective,
            self.top1 as f64,
            self.top5 as f64,
        ]
    }

    /// A tally from [`Tally::sums`] (summed over ranks).
    pub fn from_sums(s: [f64; 4]) -> Self {
        Tally {
            images: s[0] as usize,
            objective: s[1],
            top1: s[2] as usize,
            top5: s[3] as usize,
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        self.images += other.images;
        self.objective += other.objective;
        self.top1 += other.top1;
        self.top5 += other.top5;
    }

    pub fn mean_objective(&self) -> f64 {
        self.objective / self.images.max(1) as f64
    }
    pub fn top1err(&self) -> f64 {
        self.top1 as f64 / self.images.max(1) as f64
    }
    pub fn top5err(&self) -> f64 {
        self.top5 as f64 / self.images.max(1) as f64
    }
}

/// For each image, how many classes score strictly higher than its label
/// (0 means it is the top class). Scores must be (B, K, 1, 1).
pub fn label_ranks(scores: &Tensor, labels: &[usize]) -> Result<Vec<usize>> {
    let s = class_scores(scores, labels.len())?;
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let row = &s[i];
            let v = *row.get(l).ok_or_else(|| {
                Error::Invalid(format!(
                    "label {l} of image {i} is not below the {} classes of the network",
                    row.len()
                ))
            })?;
            Ok(row.iter().filter(|&&x| x > v).count())
        })
        .collect()
}

/// The rows of (B, K, 1, 1) scores, one per image.
pub fn class_scores(scores: &Tensor, batch: usize) -> Result<Vec<&[f32]>> {
    let d = scores.dims4()?;
    if d.n != batch || d.h * d.w != 1 {
        return Err(Error::Invalid(format!(
            "the network's prediction has shape {d}; a classifier must give {batch}xKx1x1"
        )));
    }
    Ok(scores.data().chunks(d.c.max(1)).collect())
}

/// The index of the best score of a row (the first one on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// The result of running a network over a labelled data set in test mode.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub tally: Tally,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// The predicted class of each image, in data set order.
    pub predicted: Vec<usize>,
}

/// Runs `net` over `data` (normalised as in training, not jittered) in batches, in
/// test mode.
pub fn evaluate(
    net: &mut Network,
    data: impl Into<Images>,
    normalization: &Normalization,
    batch_size: usize,
) -> Result<Evaluation> {
    evaluate_shard(net, data, normalization, batch_size, Shard::WHOLE)
}

/// [`evaluate`] on this rank's share of every batch only (data-parallel evaluation:
/// the ranks' tallies add up to the whole set's; `predicted` lists this share's images).
pub fn evaluate_shard(
    net: &mut Network,
    data: impl Into<Images>,
    normalization: &Normalization,
    batch_size: usize,
    shard: Shard,
) -> Result<Evaluation> {
    let data = data.into();
    let k = data.classes().len();
    let mut opts = BatchOptions::new(batch_size, 0);
    opts.shuffle = false;
    opts.normalization = normalization.clone();
    opts.shard = shard;
    let batcher = Batcher::new(data, opts)?;
    let mut tally = Tally::default();
    let mut confusion = vec![vec![0usize; k]; k];
    let mut predicted = Vec::with_capacity(batcher.data().len());
    for batch in batcher.epoch(0)? {
        let (x, labels) = batch?;
        if labels.is_empty() {
            continue;
        }
        let y = label_tensor(&labels)?;
        net.forward(&[("input", &x), ("label", &y)], Mode::Test)?;
        let scores = net
            .prediction()
            .ok_or_else(|| Error::Invalid("the network has no 'prediction' variable".into()))?;
        for (row, &l) in class_scores(scores, labels.len())?.iter().zip(&labels) {
            let p = argmax(row);
            predicted.push(p);
            if let Some(r) = confusion.get_mut(l) {
                if let Some(c) = r.get_mut(p) {
                    *c += 1;
                }
            }
        }
        tally.add(net.objective().unwrap_or(0.0) as f64, scores, &labels)?;
    }
    Ok(Evaluation {
        tally,
        confusion,
        predicted,
    })
}

/// Labels as the loss layers take them: (B, 1, 1, 1) class indices stored as f32.
pub fn label_tensor(labels: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(
        &[labels.len(), 1, 1, 1],
        labels.iter().map(|&l| l as f32).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_count_higher_scores() {
        let s = Tensor::from_vec(&[2, 3, 1, 1], vec![0.1, 0.5, 0.2, 3.0, 1.0, 2.0]).unwrap();
        assert_eq!(label_ranks(&s, &[1, 1]).unwrap(), vec![0, 2]);
        let mut t = Tally::default();
        t.add(4.0, &s, &[1, 1]).unwrap();
        assert_eq!((t.top1, t.top5, t.mean_objective()), (1, 0, 2.0));
        assert!(label_ranks(&s, &[3, 0]).is_err());
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }
}
