//! Diagnostics of a training run (MatConvNet's `vl_simplenn_diagnose`, recorded as the
//! run goes and checked automatically).
//!
//! A [`Monitor`] rides along the training loop. On a few batches per epoch (evenly
//! spread, the last one included) it records, for every layer, statistics of its
//! output and of the derivative reaching it, and for every trained parameter
//! statistics of its values and gradient and the ratio of the update's norm to the
//! weight's norm; the objective of every batch is kept too. After the first epoch of
//! the run, and every N batches on request, it checks for the ways in which nothing
//! happens and returns them as [`Finding`]s (the caller prints them). Reading values
//! never changes them: a run with diagnostics gives the same model, bit for bit.

mod checks;
mod record;

pub use checks::{Finding, FindingKind, Limits};
pub use record::{Diagnostics, EpochObjectives, LayerSample, ParamSample, Sample, TensorStats};

use crate::error::{Error, Result};
use crate::net::{BackwardStep, LayerKind, Network};
use std::collections::BTreeSet;
use std::path::Path;

/// The file the record is written to, in the run's output folder.
pub const FILE: &str = "diagnostics.json";

/// What to record and check.
#[derive(Clone, Debug, PartialEq)]
pub struct DiagnoseOptions {
    /// Batches per epoch whose statistics are recorded; 0 records none (the objective
    /// of every batch is still kept and checked).
    pub samples_per_epoch: usize,
    /// Also sample and check every N batches of the run.
    pub check_every: Option<usize>,
    /// Stop the run with [`Error::Stalled`] at the first finding.
    pub stop_on_stall: bool,
    pub limits: Limits,
}

impl Default for DiagnoseOptions {
    fn default() -> Self {
        DiagnoseOptions {
            samples_per_epoch: 3,
            check_every: None,
            stop_on_stall: false,
            limits: Limits::default(),
        }
    }
}

/// The sample being filled during one batch, with where each layer's entry sits.
struct Pending {
    sample: Sample,
    /// Per network layer (execution order), its index in `sample.layers`.
    slots: Vec<Option<usize>>,
    /// Each trained parameter's values before the update.
    before: Vec<Vec<f32>>,
}

/// Records statistics along a training loop and checks them; see the module notes.
pub struct Monitor {
    opts: DiagnoseOptions,
    record: Diagnostics,
    pending: Option<Pending>,
    /// Batches trained by this run so far.
    seen: usize,
    /// The first epoch this run trains (1-based): checked at its end.
    first_epoch: Option<usize>,
    /// Whether a check has had enough batches to judge the objective; until then every
    /// epoch's end is checked.
    objective_judged: bool,
    reported: BTreeSet<(FindingKind, String)>,
}

/// The ratio checks take the median over this many of the latest samples, so that
/// one step (the jump out of an initial plateau) does not make a finding.
const RATIO_WINDOW: usize = 5;

impl Monitor {
    /// A monitor continuing `previous` (a resumed run's record, truncated to the
    /// epochs it keeps).
    pub fn new(opts: DiagnoseOptions, previous: Diagnostics) -> Monitor {
        let reported = previous
            .findings
            .iter()
            .map(|f| (f.kind, f.layer.clone()))
            .collect();
        Monitor {
            opts,
            objective_judged: false,
            record: previous,
            pending: None,
            seen: 0,
            first_epoch: None,
            reported,
        }
    }

    /// Reads the record in `dir` (from a run being resumed after `epoch`); an absent
    /// or unreadable file gives an empty record (it only describes the run).
    pub fn load_record(dir: &Path, epoch: usize) -> Diagnostics {
        let mut d: Diagnostics = std::fs::read(dir.join(FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        d.truncate(epoch);
        d
    }

    pub fn record(&self) -> &Diagnostics {
        &self.record
    }

    pub fn into_record(self) -> Diagnostics {
        self.record
    }

    /// Writes the record to `dir/diagnostics.json`, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.record)
            .map_err(|e| Error::Invalid(format!("diagnostics: {e}")))?;
        crate::atomic::write(&dir.join(FILE), &json)
    }

    /// Whether batch `b` (0-based) of an epoch of `n` batches is sampled: `k` evenly
    /// spread ones ending with the last, and every `check_every`-th of the run.
    fn sampled(&self, b: usize, n: usize) -> bool {
        let k = self.opts.samples_per_epoch.min(n);
        let spread = (1..=k).any(|i| (i * n).div_ceil(k) == b + 1);
        spread || self.check_due()
    }

    fn check_due(&self) -> bool {
        self.opts
            .check_every
            .is_some_and(|c| c > 0 && (self.seen + 1).is_multiple_of(c))
    }

    /// After the forward pass of batch `b` (0-based) of `n` in `epoch` (1-based), with
    /// the objective summed over `images`: keeps the objective and, on a sampled
    /// batch, the input and every layer's output (read now: the backward pass may
    /// free them).
    pub fn after_forward(
        &mut self,
        net: &Network,
        epoch: usize,
        b: usize,
        n: usize,
        images: usize,
        lr: f32,
    ) {
        self.first_epoch.get_or_insert(epoch);
        let objective = net.objective().unwrap_or(f32::NAN) as f64 / images.max(1) as f64;
        match self.record.objectives.last_mut() {
            Some(o) if o.epoch == epoch => o.batches.push(objective),
            _ => self.record.objectives.push(EpochObjectives {
                epoch,
                batches: vec![objective],
            }),
        }
        self.pending = None;
        if !self.sampled(b, n) {
            return;
        }
        self.record.classes = net.classes().len();
        let mut layers = Vec::new();
        let mut slots = vec![None; net.layers().len()];
        for (li, l) in net.layers().iter().enumerate() {
            if matches!(l.kind, LayerKind::Loss(_)) {
                continue;
            }
            let Some(y) = net.var(&l.output) else {
                continue;
            };
            slots[li] = Some(layers.len());
            layers.push(LayerSample {
                name: l.name.clone(),
                kind: l.kind.type_name().to_string(),
                output: TensorStats::of(y.data()),
                grad: None,
            });
        }
        let input = net
            .var("input")
            .map(|x| TensorStats::of(x.data()))
            .unwrap_or_else(|| TensorStats::of(&[]));
        self.pending = Some(Pending {
            sample: Sample {
                epoch,
                batch: b + 1,
                lr,
                objective,
                input,
                layers,
                params: Vec::new(),
            },
            slots,
            before: Vec::new(),
        });
    }

    /// One step of the backward pass: the derivative reaching the layer's output.
    pub fn on_backward(&mut self, step: &BackwardStep) {
        let Some(p) = &mut self.pending else { return };
        if let (Some(Some(i)), Some(dy)) = (p.slots.get(step.layer), step.dy) {
            p.sample.layers[*i].grad = Some(TensorStats::of(dy.data()));
        }
    }

    /// Before the solver's update: every trained parameter's values and gradient.
    pub fn before_update(&mut self, net: &Network) {
        let Some(p) = &mut self.pending else { return };
        let weights = weight_names(net);
        for q in net.params() {
            p.sample.params.push(ParamSample {
                name: q.name.clone(),
                layer: q.layer.clone(),
                role: if weights.contains(q.name.as_str()) {
                    "weight"
                } else {
                    "bias"
                }
                .into(),
                value: TensorStats::of(q.value.data()),
                grad: TensorStats::of(q.grad.data()),
                update_ratio: None,
                grad_ratio: None,
            });
            p.before.push(q.value.data().to_vec());
        }
    }

    /// After the update with rate `lr` of a batch of `images`: the ratios of the
    /// update's norm to the weight's norm; the sample is complete.
    pub fn after_update(&mut self, net: &Network, lr: f32, images: usize) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        for ((s, before), q) in p.sample.params.iter_mut().zip(&p.before).zip(net.params()) {
            let w = s.value.norm;
            if w <= 0.0 {
                continue;
            }
            let step: f64 = q
                .value
                .data()
                .iter()
                .zip(before)
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            s.update_ratio = Some(step / w);
            let rate = lr as f64 * q.lr_mult as f64;
            if rate > 0.0 {
                s.grad_ratio = Some(rate * s.grad.norm / images.max(1) as f64 / w);
            }
        }
        self.record.samples.push(p.sample);
    }

    /// After batch `b` (0-based) of `n` in `epoch` (1-based) is done: runs the checks
    /// when they are due (the end of the run's first epoch, and of later ones until the
    /// objective could be judged; every `check_every` batches) and returns the
    /// findings not reported before.
    pub fn check(
        &mut self,
        epoch: usize,
        b: usize,
        n: usize,
        lr: f32,
        net: &Network,
    ) -> Vec<Finding> {
        let epoch_end = b + 1 == n && (self.first_epoch == Some(epoch) || !self.objective_judged);
        let due = self.check_due() || epoch_end;
        self.seen += 1;
        if !due {
            return Vec::new();
        }
        let judged = self.record.all_objectives().count() >= self.opts.limits.min_batches;
        self.objective_judged |= judged;
        let from = self.record.samples.len().saturating_sub(RATIO_WINDOW);
        let loss = net
            .layers()
            .iter()
            .find(|l| l.kind.is_objective())
            .map_or("objective", |l| l.name.as_str());
        let input = checks::CheckInput {
            record: &self.record,
            recent: &self.record.samples[from..],
            epoch,
            batch: b + 1,
            lr,
            loss_layer: loss,
            limits: self.opts.limits,
        };
        let found: Vec<Finding> = checks::run(&input)
            .into_iter()
            .filter(|f| self.reported.insert((f.kind, f.layer.clone())))
            .collect();
        self.record.findings.extend(found.iter().cloned());
        found
    }

    /// The error that stops a run at `found` when the options say so (None otherwise).
    pub fn stop(&self, found: &[Finding], last_checkpoint: Option<&Path>) -> Option<Error> {
        let first = found.first().filter(|_| self.opts.stop_on_stall)?;
        let more = match found.len() {
            1 => String::new(),
            n => format!(
                " (and {} more finding{})",
                n - 1,
                if n > 2 { "s" } else { "" }
            ),
        };
        Some(Error::Stalled {
            epoch: first.epoch,
            batch: first.batch,
            what: format!("layer '{}': {}{more}", first.layer, first.evidence),
            hint: last_checkpoint
                .map(|p| format!("; the last checkpoint, {}, is intact", p.display()))
                .unwrap_or_default(),
        })
    }
}

/// Names of the parameters that are a layer's first (a filter bank or a batch-norm
/// gain), as opposed to biases.
fn weight_names(net: &Network) -> BTreeSet<&str> {
    let tensors = net.named_tensors();
    net.layers()
        .iter()
        .filter_map(|l| l.params.first())
        .filter_map(|&i| tensors.get(i).map(|(n, _)| *n))
        .collect()
}
