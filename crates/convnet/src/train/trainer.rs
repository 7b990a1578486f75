//! The epoch loop: shuffled minibatches from the seed, forward, backward, aggregate
//! gradients, update; statistics per epoch on training and validation data; a
//! checkpoint after every epoch; divergence checks after every step; per-layer
//! diagnostics on a few batches and checks for a run in which nothing happens.
//!
//! Data-parallel runs ([`train_with`]): each rank takes its share of every global
//! batch, the gradients are summed over the ranks by a [`GradientExchange`] while
//! backward runs, and the solver divides by the global batch size, so N ranks make the
//! update one process makes on the same batch. Batch normalisation uses each rank's
//! own batch moments; the running moments are averaged over the ranks after every
//! epoch. The ranks compare a checksum of the weights after every epoch; rank 0 alone
//! writes checkpoints and diagnostics. Diagnostics describe rank 0's share of each
//! batch (its objective, layer outputs and derivatives) and the summed gradients;
//! rank 0 alone judges them, and a stop it decides reaches every rank.

use super::checkpoint::{self, Same};
use super::diagnostics::{DiagnoseOptions, Diagnostics, Finding, Monitor};
use super::exchange::{self, GradientExchange, NoExchange};
use super::schedule::Schedule;
use super::solver::{ParamSlot, Solver, SolverKind};
use super::stats::{evaluate_shard, label_tensor, EpochStats, Tally};
use crate::data::batch::{derive_seed, BatchOptions, Batcher};
use crate::data::jitter::Jitter;
use crate::data::normalize::Normalization;
use crate::data::source::Images;
use crate::error::{Error, Result};
use crate::net::{Mode, Network};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

const STREAM_DROPOUT: u64 = 0x4452_4f50; // "DROP"

/// How to train. The same options, seed and thread count give the same model.
#[derive(Clone, Debug, Serialize)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub schedule: Schedule,
    pub solver: SolverKind,
    pub weight_decay: f32,
    pub seed: u64,
    pub jitter: Jitter,
    /// Where checkpoints go; None trains without them.
    #[serde(skip)]
    pub out_dir: Option<PathBuf>,
    /// Continue from the last checkpoint in `out_dir`; with more `epochs` than that run
    /// had, extend it (the schedule is then laid over the new total).
    #[serde(skip)]
    pub resume: bool,
    /// Per-layer statistics and the checks for a run in which nothing happens.
    #[serde(skip)]
    pub diagnose: DiagnoseOptions,
    /// Keep the newest this many checkpoints, deleting older ones once a newer one is
    /// written; 0 keeps them all.
    #[serde(skip)]
    pub keep_checkpoints: usize,
}

/// What the loop tells its caller as it goes (the CLI draws a progress bar from it).
#[derive(Debug)]
pub enum Progress<'a> {
    EpochStart {
        epoch: usize,
        epochs: usize,
        batches: usize,
    },
    Batch {
        batch: usize,
        images: usize,
        mean_objective: f64,
    },
    Evaluating,
    EpochEnd {
        stats: &'a EpochStats,
        checkpoint: Option<&'a std::path::Path>,
    },
    /// What a diagnostic check found (each finding once per run).
    Findings(&'a [Finding]),
}

/// The outcome: one entry per epoch, resumed ones included.
#[derive(Clone, Debug)]
pub struct TrainRun {
    pub history: Vec<EpochStats>,
    pub resumed_from: Option<usize>,
    /// Per-layer statistics and findings (also in `out_dir/diagnostics.json`).
    pub diagnostics: Diagnostics,
}

/// What must be equal for a checkpoint to be resumed by this run, each named by the
/// option that sets it. The number of epochs is not: a finished run may be extended, and
/// the schedule's length (cosine's period, step's interval) follows the epochs.
fn run_identity(net: &Network, opts: &TrainOptions, norm: &Normalization) -> Result<Vec<Same>> {
    let schedule = match &opts.schedule {
        Schedule::Cosine { lr, min_lr, .. } => {
            serde_json::json!({"kind": "cosine", "lr": lr, "min_lr": min_lr}).to_string()
        }
        Schedule::Step { lr, gamma, .. } => {
            serde_json::json!({"kind": "step", "lr": lr, "gamma": gamma}).to_string()
        }
        other => json(other)?,
    };
    let trained: Vec<(&str, f32, f32)> = net
        .params()
        .map(|p| (p.name.as_str(), p.lr_mult, p.decay_mult))
        .collect();
    let same = |key, option, value| Same { key, option, value };
    Ok(vec![
        same(
            "description",
            "--net (or the data's classes)",
            net.desc().to_toml(),
        ),
        same(
            "normalization",
            "--data (its normalisation)",
            norm.to_json()?,
        ),
        same("batch_size", "--batch", opts.batch_size.to_string()),
        same("schedule", "--lr or --schedule", schedule),
        same("solver", "--solver or --momentum", json(&opts.solver)?),
        same(
            "weight_decay",
            "--weight-decay",
            opts.weight_decay.to_string(),
        ),
        same("seed", "--seed", opts.seed.to_string()),
        same("jitter", "--jitter", json(&opts.jitter)?),
        same("trained", "--init, --freeze or --lr-mult", json(&trained)?),
    ])
}

/// JSON text of an identity's value.
fn json(v: &impl Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Invalid(e.to_string()))
}

/// Trains `net` on `train_set`, evaluating on `val_set` after each epoch.
pub fn train(
    net: &mut Network,
    train_set: impl Into<Images>,
    val_set: Option<impl Into<Images>>,
    normalization: &Normalization,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainRun> {
    train_with(
        net,
        train_set,
        val_set,
        normalization,
        opts,
        &mut NoExchange,
        progress,
    )
}

/// [`train`] as one rank of a data-parallel run whose ranks combine their gradients
/// through `ex` (every rank calls it with the same options and data). Rank 0 alone
/// writes checkpoints; every rank reads them on `resume`, so `out_dir` must be one all
/// ranks see. Every rank returns the same history and model.
pub fn train_with(
    net: &mut Network,
    train_set: impl Into<Images>,
    val_set: Option<impl Into<Images>>,
    normalization: &Normalization,
    opts: &TrainOptions,
    ex: &mut dyn GradientExchange,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainRun> {
    opts.schedule.validate()?;
    if opts.epochs == 0 {
        return Err(Error::Invalid("train: --epochs must be at least 1".into()));
    }
    let train_set: Images = train_set.into();
    let shard = ex.shard();
    shard.check_batch(opts.batch_size)?;
    let mut solver = Solver::new(opts.solver, opts.weight_decay)?;
    let identity = run_identity(net, opts, normalization)?;
    let mut history = Vec::new();
    let mut resumed_from = None;
    if let (true, Some(dir)) = (opts.resume, &opts.out_dir) {
        if let Some(e) = checkpoint::last_epoch(dir)? {
            if e > opts.epochs {
                return Err(Error::file(
                    checkpoint::path(dir, e),
                    None,
                    format!(
                        "this run has already trained {e} epochs, more than --epochs {}; give --epochs {e} or more to continue it",
                        opts.epochs
                    ),
                ));
            }
            let r = checkpoint::load(dir, e, net, &mut solver, &identity)?;
            history = r.history;
            resumed_from = Some(r.epoch);
        }
    }
    if shard.ranks > 1 {
        let hint = "; each rank reads the checkpoints of the --out folder, which must be one all ranks see";
        let resumed = resumed_from.map_or(0, |e| e as u64);
        exchange::agree(ex, "the checkpoint to resume from", resumed, hint)?;
        let fp = exchange::data_fingerprint(&train_set)?;
        exchange::agree(ex, "the training data", fp, "")?;
        let w = exchange::weights_checksum(net);
        exchange::agree(ex, "the initial weights", w, "")?;
    }
    if let (Some(dir), true) = (&opts.out_dir, shard.is_writer()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut bopts = BatchOptions::new(opts.batch_size, opts.seed);
    bopts.jitter = opts.jitter.clone();
    bopts.normalization = normalization.clone();
    bopts.shard = shard;
    let batcher = Batcher::new(train_set, bopts)?;
    let val_set: Option<Images> = val_set.map(Into::into);
    let mut last_good =
        resumed_from.and_then(|e| opts.out_dir.as_ref().map(|d| checkpoint::path(d, e)));
    let previous = match (&opts.out_dir, resumed_from) {
        (Some(dir), Some(e)) => Monitor::load_record(dir, e),
        _ => Diagnostics::default(),
    };
    let mut monitor = Monitor::new(opts.diagnose.clone(), previous);

    for epoch in resumed_from.unwrap_or(0)..opts.epochs {
        let lr = opts.schedule.lr(epoch);
        progress(Progress::EpochStart {
            epoch: epoch + 1,
            epochs: opts.epochs,
            batches: batcher.len(),
        });
        let started = Instant::now();
        let mut tally = Tally::default();
        let mut batches = batcher.epoch(epoch)?;
        for (b, batch) in batches.by_ref().enumerate() {
            let (x, labels) = batch?;
            let diverged = |what: String| Error::Diverged {
                epoch: epoch + 1,
                batch: b + 1,
                what,
                hint: last_good
                    .as_ref()
                    .map(|p| format!(" (the last good checkpoint, {}, is intact)", p.display()))
                    .unwrap_or_default(),
            };
            // Rank 0 draws the masks a one-process run draws; the others their own.
            let mut stream = vec![opts.seed, STREAM_DROPOUT, epoch as u64, b as u64];
            stream.extend((shard.rank > 0).then_some(shard.rank as u64));
            net.set_rng_seed(derive_seed(&stream));
            let mut mine = Tally::default();
            if !labels.is_empty() {
                net.forward(
                    &[("input", &x), ("label", &label_tensor(&labels)?)],
                    Mode::Train,
                )?;
                let objective = net
                    .objective()
                    .ok_or_else(|| Error::Invalid("the network computes no 'objective'".into()))?;
                let scores = net.prediction().ok_or_else(|| {
                    Error::Invalid("the network has no 'prediction' variable".into())
                })?;
                mine.add(objective as f64, scores, &labels)?;
                monitor.after_forward(net, epoch + 1, b, batcher.len(), labels.len(), lr);
            }
            // The batch's statistics travel with its gradients: every rank sees the
            // summed objective, so all stop alike on a NaN.
            let mut sums = mine.sums();
            if labels.is_empty() {
                exchange::exchange_nothing(net, ex, &mut sums)?;
            } else {
                net.backward_observed(1.0, &mut |step| {
                    monitor.on_backward(&step);
                    ex.ready(step.ready)
                })?;
                ex.finish(net, &mut sums)?;
            }
            let all = Tally::from_sums(sums);
            if !all.objective.is_finite() {
                return Err(diverged(first_nonfinite_output(net)));
            }
            tally.merge(&all);
            if let Some(p) = net.params().find(|p| !p.grad.all_finite()) {
                return Err(diverged(format!(
                    "the gradient of '{}' in layer '{}' is not finite",
                    p.name, p.layer
                )));
            }
            monitor.before_update(net);
            let images = batcher.global_batch_len(b);
            update(net, &mut solver, lr, images)?;
            if let Some(p) = net.params().find(|p| !p.value.all_finite()) {
                return Err(diverged(format!(
                    "the update made '{}' in layer '{}' not finite (learning rate {lr})",
                    p.name, p.layer
                )));
            }
            monitor.after_update(net, lr, images);
            progress(Progress::Batch {
                batch: b + 1,
                images: all.images,
                mean_objective: tally.mean_objective(),
            });
            if b + 1 < batcher.len() {
                let found = monitor.check(epoch + 1, b, batcher.len(), lr, net);
                let at = (epoch + 1, b + 1);
                report(
                    &monitor,
                    &found,
                    at,
                    opts,
                    last_good.as_deref(),
                    ex,
                    progress,
                )?;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        progress(Progress::Evaluating);
        exchange::average_buffers(net, ex)?;
        let val = match &val_set {
            Some(v) => {
                let e = evaluate_shard(net, v.clone(), normalization, opts.batch_size, shard)?;
                let mut sums = e.tally.sums();
                ex.sum(&mut sums)?;
                Some(Tally::from_sums(sums))
            }
            None => None,
        };
        if shard.ranks > 1 {
            let hint = format!(
                " after epoch {}: the weights drifted apart (the last checkpoint is intact)",
                epoch + 1
            );
            let w = exchange::weights_checksum(net);
            exchange::agree(ex, "the weights", w, &hint)?;
        }
        history.push(EpochStats {
            epoch: epoch + 1,
            lr,
            train_objective: tally.mean_objective(),
            train_top1err: tally.top1err(),
            train_top5err: tally.top5err(),
            val_objective: val.as_ref().map(Tally::mean_objective),
            val_top1err: val.as_ref().map(Tally::top1err),
            val_top5err: val.as_ref().map(Tally::top5err),
            images_per_s: tally.images as f64 / seconds.max(1e-9),
            data_wait: batches.waited().as_secs_f64() / seconds.max(1e-9),
        });
        let saved = match &opts.out_dir {
            Some(dir) if shard.is_writer() => {
                let p = checkpoint::save(dir, epoch + 1, net, &solver, &history, &identity)?;
                checkpoint::prune(dir, epoch + 1, opts.keep_checkpoints)?;
                Some(p)
            }
            _ => None,
        };
        if let Some(stats) = history.last() {
            progress(Progress::EpochEnd {
                stats,
                checkpoint: saved.as_deref(),
            });
        }
        last_good = saved.or(last_good);
        if let (Some(dir), true) = (&opts.out_dir, shard.is_writer()) {
            monitor.save(dir)?;
        }
        // The epoch's last batch is checked once its checkpoint exists, so that a stop
        // keeps it.
        let last = batcher.len().saturating_sub(1);
        let found = monitor.check(epoch + 1, last, batcher.len(), lr, net);
        let at = (epoch + 1, last + 1);
        report(
            &monitor,
            &found,
            at,
            opts,
            last_good.as_deref(),
            ex,
            progress,
        )?;
    }
    Ok(TrainRun {
        history,
        resumed_from,
        diagnostics: monitor.into_record(),
    })
}

/// Hands findings to the caller and stops the run when asked, with the diagnostics
/// written. In a data-parallel run rank 0 alone reports and decides (the other ranks
/// see other images, so their findings could differ), and its decision to stop at
/// batch `at` (epoch, batch; 1-based) reaches every rank, so that all end alike.
fn report(
    monitor: &Monitor,
    found: &[Finding],
    at: (usize, usize),
    opts: &TrainOptions,
    last_good: Option<&std::path::Path>,
    ex: &mut dyn GradientExchange,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    let shard = ex.shard();
    let mut stop = None;
    if shard.is_writer() && !found.is_empty() {
        if let Some(dir) = &opts.out_dir {
            monitor.save(dir)?;
        }
        progress(Progress::Findings(found));
        stop = monitor.stop(found, last_good);
    }
    if shard.ranks > 1 && opts.diagnose.stop_on_stall {
        let decided = ex.all_gather(stop.is_some() as u64)?[0] == 1;
        if decided && stop.is_none() {
            stop = Some(Error::Stalled {
                epoch: at.0,
                batch: at.1,
                what: "rank 0's diagnostics stopped the run".into(),
                hint: String::new(),
            });
        }
    }
    stop.map_or(Ok(()), Err)
}

/// The update step: the gradients are already aggregated over the batch (and, in a
/// data-parallel run, over processes, before this is called).
pub fn update(net: &mut Network, solver: &mut Solver, lr: f32, batch: usize) -> Result<()> {
    let mut slots: Vec<ParamSlot> = net
        .params_mut()
        .map(|p| ParamSlot {
            value: p.value.data_mut(),
            grad: p.grad.data(),
            lr_mult: p.lr_mult,
            decay_mult: p.decay_mult,
        })
        .collect();
    solver.step(&mut slots, lr, batch)
}

/// Names the first layer (in execution order) whose output holds a NaN or infinity.
fn first_nonfinite_output(net: &Network) -> String {
    net.layers()
        .iter()
        .find(|l| net.var(&l.output).is_some_and(|t| !t.all_finite()))
        .map(|l| format!("the output of layer '{}' is not finite", l.name))
        .unwrap_or_else(|| "the objective is not finite".into())
}
