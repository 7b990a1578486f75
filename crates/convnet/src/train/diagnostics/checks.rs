//! The "nothing happens" checks: from the objective of every batch and the latest
//! samples, the failures users actually hit, each a [`Finding`] that names the layer,
//! what was measured, the likely cause and the remedy.

use super::record::{Diagnostics, Sample};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The objective stays where it started.
    ObjectiveNotFalling,
    /// A ReLU whose outputs are all zero: nothing passes it, forward or backward.
    DeadRelu,
    /// A layer's weights barely move because hardly any derivative reaches them.
    VanishingGradient,
    /// One step changes a layer's weights by a large part of their size.
    UpdateTooLarge,
}

/// One thing found wrong with a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The layer it concerns (for the objective, the loss layer).
    pub layer: String,
    /// Where it was found (1-based).
    pub epoch: usize,
    pub batch: usize,
    /// What was measured.
    pub evidence: String,
    pub cause: String,
    pub remedy: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "layer '{}': {} (epoch {}, batch {}). Likely cause: {}. Remedy: {}.",
            self.layer, self.evidence, self.epoch, self.batch, self.cause, self.remedy
        )
    }
}

/// Where the checks draw the line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// The objective must fall by at least this fraction from the first batches to the
    /// latest ones...
    pub min_objective_fall: f64,
    /// ...unless some weight moves by at least this fraction of its norm per step: a
    /// network on its initial plateau is moving, one where nothing happens is not.
    pub still_ratio: f64,
    /// Batches needed before the objective is judged (a network can sit on a plateau
    /// for its first few dozen batches and then learn: LeNet's default run does for
    /// about 45).
    pub min_batches: usize,
    /// A gradient step below this fraction of a weight's norm is vanishing.
    pub vanishing_ratio: f64,
    /// An update above this fraction of a weight's norm is too large.
    pub large_ratio: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min_objective_fall: 0.02,
            still_ratio: 5e-3,
            min_batches: 50,
            vanishing_ratio: 1e-7,
            large_ratio: 1e-1,
        }
    }
}

/// What a check looks at: the whole record and the latest samples.
pub(crate) struct CheckInput<'a> {
    pub record: &'a Diagnostics,
    pub recent: &'a [Sample],
    pub epoch: usize,
    pub batch: usize,
    pub lr: f32,
    pub loss_layer: &'a str,
    pub limits: Limits,
}

/// Every finding at this point, in the order: objective, dead ReLUs, vanishing
/// gradients, updates too large.
pub(crate) fn run(c: &CheckInput) -> Vec<Finding> {
    let mut found: Vec<Finding> = objective_not_falling(c).into_iter().collect();
    let dead = dead_relus(c);
    // A dead ReLU zeroes the gradients of the layers below it and of those its zeros
    // feed: that is its finding, not one per layer.
    let vanishing = dead.is_empty();
    found.extend(dead);
    found.extend(ratio_findings(c, vanishing));
    found
}

fn finding(c: &CheckInput, kind: FindingKind, layer: &str, evidence: String) -> Finding {
    Finding {
        kind,
        layer: layer.to_string(),
        epoch: c.epoch,
        batch: c.batch,
        evidence,
        cause: String::new(),
        remedy: String::new(),
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Inputs as the first layer sees them count as normalised with a spread in this range.
const NORMALISED_STD: std::ops::RangeInclusive<f64> = 0.5..=2.0;

/// The mean objective of the first fifth of the batches against that of the last
/// fifth (each at least two batches). Flat while the weights hardly move (or with no
/// samples to tell), or rising, is a finding.
fn objective_not_falling(c: &CheckInput) -> Option<Finding> {
    let obj: Vec<f64> = c.record.all_objectives().collect();
    let n = obj.len();
    if n < c.limits.min_batches.max(4) {
        return None;
    }
    let w = (n / 5).max(2);
    let (first, last) = (mean(&obj[..w]), mean(&obj[n - w..]));
    let fall = (first - last) / first.abs().max(1e-12);
    let rising = fall < -c.limits.min_objective_fall;
    let largest = largest_update(c.recent);
    let moving = largest
        .as_ref()
        .is_some_and(|(_, r)| *r >= c.limits.still_ratio);
    if fall >= c.limits.min_objective_fall || (moving && !rising) {
        return None;
    }
    let mut evidence = format!(
        "the objective is not falling: {first:.4} over the first {w} batches, {last:.4} over the last {w} of {n}"
    );
    let k = c.record.classes;
    let chance = (k as f64).ln();
    if k > 1 && (first - chance).abs() < 0.05 * chance {
        evidence += &format!(" (chance level for {k} classes: ln {k} = {chance:.4})");
    }
    if let (Some((name, r)), false) = (&largest, rising) {
        evidence += &format!(
            ", and the weights hardly move (the largest step is {r:.1e} of a weight's norm, at '{name}')"
        );
    }
    let mut f = finding(c, FindingKind::ObjectiveNotFalling, c.loss_layer, evidence);
    let input = c.recent.last().map(|s| s.input);
    let lr = c.lr;
    (f.cause, f.remedy) = if rising {
        (
            format!("the objective rises: the learning rate ({lr}) is too high"),
            "lower the learning rate (e.g. tenfold)".into(),
        )
    } else if let Some(x) = input.filter(|x| !NORMALISED_STD.contains(&x.std)) {
        (
            format!(
                "inputs not normalised (mean {:.3}, std {:.3} as the first layer sees them) for a learning rate of {lr}",
                x.mean, x.std
            ),
            "standardise the inputs (mean 0, std 1 per channel), or raise the learning rate to make up for their scale".into(),
        )
    } else {
        (
            format!("the learning rate ({lr}) is too low"),
            "raise the learning rate (e.g. tenfold)".into(),
        )
    };
    Some(f)
}

/// The weight with the largest median update ratio, and that ratio.
fn largest_update(recent: &[Sample]) -> Option<(String, f64)> {
    let last = recent.last()?;
    last.params
        .iter()
        .filter(|p| p.role == "weight")
        .filter_map(|p| median(recent, &p.name, |q| q.update_ratio).map(|r| (p.name.clone(), r)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The median over the recent samples of a ratio of parameter `name`.
fn median(
    recent: &[Sample],
    name: &str,
    ratio: impl Fn(&super::record::ParamSample) -> Option<f64>,
) -> Option<f64> {
    let mut v: Vec<f64> = recent
        .iter()
        .filter_map(|s| s.params.iter().find(|p| p.name == name))
        .filter_map(ratio)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

/// ReLU layers whose every output was zero on the latest sample.
fn dead_relus(c: &CheckInput) -> Vec<Finding> {
    let Some(s) = c.recent.last() else {
        return Vec::new();
    };
    s.layers
        .iter()
        .filter(|l| l.kind == "relu" && l.output.count > 0 && l.output.zeros >= 1.0)
        .map(|l| {
            let mut f = finding(
                c,
                FindingKind::DeadRelu,
                &l.name,
                format!(
                    "dead ReLU: all {} outputs are zero, so the layers after it see only zeros and no derivative passes it down",
                    l.output.count
                ),
            );
            f.cause = "every input of the ReLU is negative: a large negative bias in the layer below, or a step so large that it pushed them all there".into();
            f.remedy = "start biases at zero, lower the learning rate, or use a leaky ReLU or batch normalisation below it".into();
            f
        })
        .collect()
}

/// Updates too large and (when `vanishing`) vanishing gradient steps, per weight, on
/// the median of the recent samples.
fn ratio_findings(c: &CheckInput, vanishing: bool) -> Vec<Finding> {
    let Some(s) = c.recent.last() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for p in s.params.iter().filter(|p| p.role == "weight") {
        let vanishing = median(c.recent, &p.name, |q| q.grad_ratio)
            .filter(|&r| vanishing && r < c.limits.vanishing_ratio);
        if let Some(r) = vanishing {
            let mut f = finding(
                c,
                FindingKind::VanishingGradient,
                &p.layer,
                format!(
                    "vanishing gradient: a step of the gradient changes '{}' by {r:.1e} of its norm (below {:.0e})",
                    p.name, c.limits.vanishing_ratio
                ),
            );
            f.cause = "the derivative shrinks on its way down to this layer (small weights or saturated units above it, or inputs on a tiny scale)".into();
            f.remedy = "normalise the inputs, initialise with He or Xavier scaling, or add batch normalisation".into();
            found.push(f);
        }
        if let Some(r) =
            median(c.recent, &p.name, |q| q.update_ratio).filter(|&r| r > c.limits.large_ratio)
        {
            let mut f = finding(
                c,
                FindingKind::UpdateTooLarge,
                &p.layer,
                format!(
                    "updates too large: one step changes '{}' by {r:.3} of its norm (above {})",
                    p.name, c.limits.large_ratio
                ),
            );
            f.cause = format!(
                "the learning rate ({}) is too high for this layer: this is the step before an explosion",
                c.lr
            );
            f.remedy = "lower the learning rate (e.g. tenfold), or this layer's lr_mult".into();
            found.push(f);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::record::{EpochObjectives, LayerSample, ParamSample, TensorStats};
    use super::*;

    fn stats(std: f64, zeros: f64) -> TensorStats {
        TensorStats {
            count: 100,
            mean: 0.0,
            std,
            min: -std,
            max: std,
            norm: std * 10.0,
            zeros,
        }
    }

    /// A sample whose one weight moves by `update` (and the gradient alone by `grad`),
    /// with a ReLU whose outputs are zero in fraction `zeros`, on inputs of spread
    /// `input_std`.
    fn sample(update: f64, grad: f64, zeros: f64, input_std: f64) -> Sample {
        let layer = |name: &str, kind: &str, zeros| LayerSample {
            name: name.into(),
            kind: kind.into(),
            output: stats(1.0, zeros),
            grad: Some(stats(1.0, 0.0)),
        };
        Sample {
            epoch: 1,
            batch: 1,
            lr: 0.01,
            objective: 2.3,
            input: stats(input_std, 0.0),
            layers: vec![layer("conv1", "conv", 0.0), layer("relu1", "relu", zeros)],
            params: vec![ParamSample {
                name: "conv1.weight".into(),
                layer: "conv1".into(),
                role: "weight".into(),
                value: stats(0.1, 0.0),
                grad: stats(0.1, 0.0),
                update_ratio: Some(update),
                grad_ratio: Some(grad),
            }],
        }
    }

    fn record(objectives: Vec<f64>, samples: Vec<Sample>) -> Diagnostics {
        Diagnostics {
            classes: 10,
            objectives: vec![EpochObjectives {
                epoch: 1,
                batches: objectives,
            }],
            samples,
            findings: Vec::new(),
        }
    }

    /// The findings on `d` at batch 60, all its samples recent.
    fn findings(d: &Diagnostics) -> Vec<Finding> {
        run(&CheckInput {
            record: d,
            recent: &d.samples,
            epoch: 1,
            batch: 60,
            lr: 0.01,
            loss_layer: "loss",
            limits: Limits::default(),
        })
    }

    fn kinds(d: &Diagnostics) -> Vec<(FindingKind, String)> {
        findings(d).into_iter().map(|f| (f.kind, f.layer)).collect()
    }

    const FLAT: f64 = std::f64::consts::LN_10;

    #[test]
    fn a_flat_objective_is_a_finding_only_while_the_weights_stand_still() {
        let flat = vec![FLAT; 60];
        let still = record(flat.clone(), vec![sample(1e-5, 1e-6, 0.5, 1.0)]);
        assert_eq!(
            kinds(&still),
            [(FindingKind::ObjectiveNotFalling, "loss".to_string())]
        );
        // On a plateau with weights moving, the objective is not judged yet.
        let moving = record(flat.clone(), vec![sample(0.02, 0.01, 0.5, 1.0)]);
        assert!(kinds(&moving).is_empty());
        // Too few batches to judge.
        assert!(kinds(&record(vec![FLAT; 49], vec![sample(1e-5, 1e-6, 0.5, 1.0)])).is_empty());
        // Falling by 3% is learning.
        let mut falling: Vec<f64> = flat.clone();
        falling[48..].iter_mut().for_each(|v| *v *= 0.97);
        assert!(kinds(&record(falling, vec![sample(1e-5, 1e-6, 0.5, 1.0)])).is_empty());
    }

    #[test]
    fn the_likely_cause_follows_the_inputs_and_the_direction() {
        let first = |d: &Diagnostics| findings(d).remove(0);
        let f = first(&record(vec![FLAT; 60], vec![sample(1e-5, 1e-6, 0.5, 0.3)]));
        assert!(f.cause.contains("inputs not normalised"), "{f}");
        assert!(f.evidence.contains("chance level"), "{f}");
        let f = first(&record(vec![FLAT; 60], vec![sample(1e-5, 1e-6, 0.5, 1.0)]));
        assert!(f.cause.contains("too low"), "{f}");
        let rising: Vec<f64> = (0..60).map(|i| 2.0 + i as f64 * 0.05).collect();
        let f = first(&record(rising, vec![sample(0.02, 0.01, 0.5, 1.0)]));
        assert!(f.cause.contains("too high"), "{f}");
    }

    #[test]
    fn ratios_are_judged_on_the_median_of_the_recent_samples() {
        let falling: Vec<f64> = (0..60).map(|i| 2.3 - i as f64 * 0.02).collect();
        let s = |u, g| sample(u, g, 0.5, 1.0);
        // One large step among small ones is not a finding; a majority is.
        let one = record(
            falling.clone(),
            vec![s(0.01, 0.01), s(0.5, 0.01), s(0.01, 0.01)],
        );
        assert!(kinds(&one).is_empty());
        let most = record(
            falling.clone(),
            vec![s(0.2, 0.01), s(0.5, 0.01), s(0.01, 0.01)],
        );
        assert_eq!(
            kinds(&most),
            [(FindingKind::UpdateTooLarge, "conv1".to_string())]
        );
        let vanishing = record(falling.clone(), vec![s(1e-4, 1e-9), s(1e-4, 1e-8)]);
        assert_eq!(
            kinds(&vanishing),
            [(FindingKind::VanishingGradient, "conv1".to_string())]
        );
        // A dead ReLU is the finding, not the gradients it stops.
        let dead = record(falling, vec![sample(1e-4, 0.0, 1.0, 1.0)]);
        assert_eq!(kinds(&dead), [(FindingKind::DeadRelu, "relu1".to_string())]);
    }
}
