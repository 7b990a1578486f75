//! `convnet bench diagnostics`: what the per-layer statistics of `convnet train` cost.
//! LeNet trains on the embedded digits with the default recipe, one batch recorded and
//! the next not, in turn (in one process, so that whatever else loads the machine falls
//! on both alike); the extra time of a recorded batch over a plain one, times the
//! recorded batches per epoch, over an epoch of plain batches, is the cost.

use crate::bench_net::median;
use anyhow::{Context, Result};
use convnet::data::batch::{BatchOptions, Batcher};
use convnet::data::digits;
use convnet::data::jitter::Jitter;
use convnet::data::normalize::Normalization;
use convnet::net::{self, Mode, Network};
use convnet::train::diagnostics::Monitor;
use convnet::train::stats::label_tensor;
use convnet::train::trainer::update;
use convnet::train::{DiagnoseOptions, Diagnostics, Solver, SolverKind};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Batches to time (half of them recorded)
    #[arg(long, default_value_t = 400)]
    pub batches: usize,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

pub fn run(args: Args) -> Result<()> {
    crate::datasets::set_threads(Some(args.threads))?;
    let train = Arc::new(digits::train()?);
    let mut opts = BatchOptions::new(100, 0);
    opts.jitter = Jitter::digits();
    opts.normalization = Normalization::per_channel(&train)?;
    let batcher = Batcher::new(train, opts)?;
    let per_epoch = batcher.len();
    let mut network = Network::from_desc(&net::resolve("lenet")?, 0)?;
    let mut solver = Solver::new(SolverKind::Sgd { momentum: 0.9 }, 0.002)?;
    // Every other batch is recorded: the spread of `samples_per_epoch` over an epoch of
    // 2 batches is its second one.
    let record = DiagnoseOptions {
        samples_per_epoch: 1,
        ..DiagnoseOptions::default()
    };
    let mut monitor = Monitor::new(record, Diagnostics::default());
    let (mut plain, mut recorded) = (Vec::new(), Vec::new());
    // The first batches warm the caches and the allocator, and are not timed.
    let (warm, total) = (10, args.batches.max(2) + 10);
    let mut b = 0;
    let mut epoch = 0;
    while b < total {
        for batch in batcher.epoch(epoch)? {
            let (x, labels) = batch?;
            if b >= total {
                break;
            }
            let t0 = Instant::now();
            network.forward(
                &[("input", &x), ("label", &label_tensor(&labels)?)],
                Mode::Train,
            )?;
            monitor.after_forward(&network, 1, b % 2, 2, labels.len(), 0.05);
            network.backward_observed(1.0, &mut |step| {
                monitor.on_backward(&step);
                Ok(())
            })?;
            monitor.before_update(&network);
            update(&mut network, &mut solver, 0.05, labels.len())?;
            monitor.after_update(&network, 0.05, labels.len());
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            if b >= warm {
                if b % 2 == 1 {
                    &mut recorded
                } else {
                    &mut plain
                }
                .push(ms);
            }
            b += 1;
        }
        epoch += 1;
    }
    let samples = monitor.record().samples.len();
    let (p, r) = (median(plain), median(recorded));
    let per_sample = r - p;
    let k = DiagnoseOptions::default().samples_per_epoch;
    let cost = k as f64 * per_sample / (per_epoch as f64 * p);
    println!(
        "plain batch {p:.2} ms, recorded batch {r:.2} ms (medians; {samples} recorded): {per_sample:.2} ms per recorded batch"
    );
    println!(
        "RESULT diagnostics threads={} batch_ms={p:.3} recorded_extra_ms={per_sample:.3} cost_pct={:.3} ({k} recorded of {per_epoch} batches per epoch)",
        args.threads,
        cost * 100.0
    );
    Some(samples)
        .filter(|&s| s > 0)
        .context("no batch was recorded")?;
    Ok(())
}
