//! `convnet bench net`: the figures of ../shared/bench/torch_nets.py for VGG-16,
//! ResNet-18 and AlexNet, measured the same way: batch-1 forward latency in test mode
//! (median of `--reps` after one warm-up), training images/s (forward, softmax
//! log-loss and backward on one batch of random data and random labels of 1000
//! classes, no solver step; median of `--reps` after one warm-up) and the peak
//! resident memory of the process. `--layers` adds where the time goes, layer by
//! layer.
//!
//! The networks are the zoo's training forms (softmax log-loss, and dropout before
//! fc7 and fc8 as torchvision's classifiers have), made to match the baseline's:
//! AlexNet's grouped convolutions become ungrouped (the baseline's `nn.Conv2d`
//! layers have no groups, so both do the same arithmetic).

use crate::bench_lenet::peak_rss_mb;
use anyhow::{Context, Result};
use convnet::gradcheck::random;
use convnet::net::{self, summarize, LayerKind, Mode, NetDesc, Network};
use convnet::Tensor;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NetName {
    Vgg16,
    Resnet18,
    Alexnet,
}

impl NetName {
    fn as_str(self) -> &'static str {
        match self {
            NetName::Vgg16 => "vgg16",
            NetName::Resnet18 => "resnet18",
            NetName::Alexnet => "alexnet",
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// The network
    #[arg(long, value_enum)]
    net: NetName,
    /// Images per training batch
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Threads of the rayon pool the blocks run in
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed repetitions per figure (after one warm-up); the median is reported
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Also print each layer's forward and backward times
    #[arg(long)]
    layers: bool,
    /// What the times count: wall-clock time (as the baseline), or the CPU time of
    /// all the process's threads together (steadier on a busy machine)
    #[arg(long, value_enum, default_value_t = Clock::Wall)]
    clock: Clock,
    #[command(flatten)]
    device: crate::device_arg::DeviceArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Clock {
    Wall,
    Cpu,
}

impl Clock {
    /// Seconds on this clock since an arbitrary origin.
    pub fn now(self) -> f64 {
        match self {
            Clock::Wall => {
                static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
                START.get_or_init(Instant::now).elapsed().as_secs_f64()
            }
            Clock::Cpu => {
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: clock_gettime writes into the timespec it is given.
                unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
                ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
            }
        }
    }
}

/// The zoo network `name`, as the baseline script builds it (see the module notes).
pub fn bench_desc(name: NetName) -> Result<NetDesc> {
    let mut desc = net::zoo::get(name.as_str()).context("network missing from the zoo")?;
    match name {
        NetName::Alexnet => {
            for l in &mut desc.layers {
                if let LayerKind::Conv { opts, .. } = &mut l.kind {
                    if opts.groups > 1 {
                        opts.groups = 1;
                        l.size_in = None;
                    }
                }
            }
        }
        NetName::Vgg16 | NetName::Resnet18 => {}
    }
    Ok(desc)
}

/// Median of `reps` timed runs of `f` after `warmups` untimed ones, in seconds.
pub(crate) fn median_time<E>(
    clock: Clock,
    warmups: usize,
    reps: usize,
    mut f: impl FnMut() -> std::result::Result<(), E>,
) -> Result<f64>
where
    anyhow::Error: From<E>,
{
    for _ in 0..warmups {
        f()?;
    }
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = clock.now();
        f()?;
        ts.push(clock.now() - t0);
    }
    Ok(median(ts))
}

/// The median of `v` (NaN when empty).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The network's input of `n` images and `n` random labels.
fn batch(desc: &NetDesc, n: usize, seed: u64) -> Result<(Tensor, Tensor)> {
    let [h, w, c] = desc.input_size().context("the network has no input size")?;
    let x = random(&[n, c, h, w], seed);
    let classes = desc.classes.len().max(1) as f32;
    // uniform in -1..1, mapped to the classes 0..classes-1
    let labels = random(&[n], seed + 1)
        .data()
        .iter()
        .map(|v| {
            ((v + 1.0) / 2.0 * classes)
                .floor()
                .clamp(0.0, classes - 1.0)
        })
        .collect();
    Ok((x, Tensor::from_vec(&[n, 1, 1, 1], labels)?))
}

fn train_step(net: &mut Network, x: &Tensor, labels: &Tensor) -> Result<()> {
    net.forward(&[("input", x), ("label", labels)], Mode::Train)?;
    net.backward(1.0)?;
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    a.device.cpu_only("bench net")?;
    if a.batch == 0 || a.reps == 0 {
        anyhow::bail!("--batch and --reps must be at least 1");
    }
    crate::datasets::set_threads(Some(a.threads))?;
    let desc = bench_desc(a.net)?;
    let mut network = Network::from_desc(&desc, 0)?;
    // as the baseline's in-place ReLUs, and freeing what backward is done with
    network.set_conserve_memory(true);
    let (x1, _) = batch(&desc, 1, 1)?;
    let fwd1 = median_time(a.clock, 1, a.reps, || {
        network.forward(&[("input", &x1)], Mode::Test).map(drop)
    })?;
    let (xb, labels) = batch(&desc, a.batch, 2)?;
    let step = median_time(a.clock, 1, a.reps, || {
        train_step(&mut network, &xb, &labels)
    })?;
    println!(
        "RESULT convnet{} net={} threads={} batch={} fwd_b1_ms={:.2} train_img_per_s={:.3} peak_rss_mb={:.0}",
        if a.clock == Clock::Cpu { " clock=cpu" } else { "" },
        a.net.as_str(),
        a.threads,
        a.batch,
        fwd1 * 1e3,
        a.batch as f64 / step,
        peak_rss_mb()
    );
    if a.layers {
        print_layers(&desc, &mut network, &a, &x1, &xb, &labels)?;
    }
    Ok(())
}

/// Per-layer times (medians over `--reps` runs): batch-1 test forward, and the
/// training forward and backward of the batch.
fn print_layers(
    desc: &NetDesc,
    network: &mut Network,
    a: &Args,
    x1: &Tensor,
    xb: &Tensor,
    labels: &Tensor,
) -> Result<()> {
    let n = network.layers().len();
    let mut fwd1 = vec![Vec::new(); n];
    let mut fwd = vec![Vec::new(); n];
    let mut bwd = vec![Vec::new(); n];
    // the test forwards first, back to back: a training forward drops the filters
    // a test forward keeps packed, so interleaved they would be packed every time
    for _ in 0..a.reps {
        let mut t = a.clock.now();
        network.forward_observed(&[("input", x1)], Mode::Test, &mut |s| {
            fwd1[s.layer].push(a.clock.now() - t);
            t = a.clock.now();
            Ok(())
        })?;
    }
    for _ in 0..a.reps {
        let mut t = a.clock.now();
        network.forward_observed(&[("input", xb), ("label", labels)], Mode::Train, &mut |s| {
            fwd[s.layer].push(a.clock.now() - t);
            t = a.clock.now();
            Ok(())
        })?;
        let mut t = a.clock.now();
        network.backward_observed(1.0, &mut |s| {
            bwd[s.layer].push(a.clock.now() - t);
            t = a.clock.now();
            Ok(())
        })?;
    }
    let summary = summarize(desc, None)?;
    let flops = |name: &str| {
        summary
            .rows
            .iter()
            .find(|r| r.name == name)
            .map_or(0, |r| r.flops)
    };
    let ms = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            median(v.to_vec()) * 1e3
        }
    };
    println!(
        "{:<24} {:<8} {:>10} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "layer", "type", "b1 fwd ms", "GFLOP/s", "fwd ms", "bwd ms", "GFLOP/s", "share"
    );
    let rows: Vec<(f64, f64, f64)> = (0..n)
        .map(|i| (ms(&fwd1[i]), ms(&fwd[i]), ms(&bwd[i])))
        .collect();
    let total: f64 = rows.iter().map(|r| r.1 + r.2).sum();
    let total1: f64 = rows.iter().map(|r| r.0).sum();
    for (l, &(f1, f, b)) in network.layers().iter().zip(&rows) {
        let fl = flops(&l.name) as f64;
        let rate = |t: f64, mult: f64| {
            if fl > 0.0 && t > 0.0 && matches!(l.kind, LayerKind::Conv { .. }) {
                format!("{:.1}", mult * fl / t / 1e6)
            } else {
                String::new()
            }
        };
        // the training pass does the forward's FLOPs once and twice as many backward
        println!(
            "{:<24} {:<8} {:>10.2} {:>9} {:>10.2} {:>10.2} {:>9} {:>8.1}%",
            l.name,
            l.kind.type_name(),
            f1,
            rate(f1, 1.0),
            f,
            b,
            rate(f + b, 3.0 * a.batch as f64),
            100.0 * (f + b) / total.max(1e-12)
        );
    }
    println!(
        "{:<24} {:<8} {:>10.2} {:>9} {:>10.2} {:>10.2}",
        "total",
        "",
        total1,
        "",
        rows.iter().map(|r| r.1).sum::<f64>(),
        rows.iter().map(|r| r.2).sum::<f64>()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Building every benchmarked network catches a description the zoo's training
    /// forms no longer fit (VGG-16 once got a second loss here).
    #[test]
    fn every_benchmarked_network_builds() {
        for name in [NetName::Vgg16, NetName::Resnet18, NetName::Alexnet] {
            let desc = bench_desc(name).unwrap();
            Network::from_desc(&desc, 0).unwrap_or_else(|e| panic!("{}: {e}", name.as_str()));
        }
    }
}
