//! `convnet deploy MODEL OUT`: the model's deploy form (batch normalisation folded into
//! the convolutions before it; dropout, losses and metrics removed; a softmax at the
//! end of a classifier), checked against the original on a test batch, optionally timed.

use crate::bench_net::median;
use anyhow::{Context, Result};
use convnet::net::{self, deploy, Mode, Network};
use convnet::Tensor;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// A convnet model file
    pub model: PathBuf,
    /// The deployed model to write (.safetensors)
    pub out: PathBuf,
    /// Time the test-mode forward of both networks (alternating runs, median)
    #[arg(long)]
    pub time: bool,
    /// Images per timed batch
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Timed runs of each network
    #[arg(long, default_value_t = 7)]
    pub reps: usize,
    #[arg(long)]
    pub threads: Option<usize>,
}

/// A reproducible batch of `n` inputs of the network's size, values of order 1.
fn test_batch(network: &Network, n: usize) -> Result<Tensor> {
    let [h, w, c] = network
        .input_size()
        .context("the network declares no input size")?;
    let len = n * c * h * w;
    let data = (0..len)
        .map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 2.0)
        .collect();
    Ok(Tensor::from_vec(&[n, c, h, w], data)?)
}

/// The test-mode output of `network` for `x` (its last output, or `var`).
fn output(network: &mut Network, x: &Tensor, var: Option<&str>) -> Result<Tensor> {
    network.forward(&[("input", x)], Mode::Test)?;
    let name = match var {
        Some(v) => v.to_string(),
        None => deploy::last_output(network)
            .context("no layers")?
            .to_string(),
    };
    network
        .var(&name)
        .cloned()
        .with_context(|| format!("'{name}' was not computed"))
}

pub fn run(args: Args) -> Result<()> {
    crate::datasets::set_threads(args.threads)?;
    let (mut original, meta) = net::load_model(&args.model)?;
    let (mut deployed, report) = deploy::deploy(&original)?;
    for (bn, conv) in &report.folded {
        println!("folded {bn} into {conv}");
    }
    for (bn, why) in &report.kept {
        println!("kept {bn}: {why}");
    }
    if !report.dropped.is_empty() {
        println!("dropped {}", report.dropped.join(", "));
    }
    if let Some(s) = &report.softmax_added {
        println!("appended softmax '{s}'");
    }
    // The same test batch through both: the deployed network's output against the
    // original's; when a softmax was appended, the scores it reads (which a saturated
    // softmax would hide) in both.
    let x = test_batch(&original, 2)?;
    let var = match &report.softmax_added {
        Some(s) => {
            let l = deployed
                .layers()
                .iter()
                .find(|l| &l.name == s)
                .context("appended softmax")?;
            Some(l.inputs[0].clone())
        }
        None => None,
    };
    let got = output(&mut deployed, &x, var.as_deref())?;
    let want = output(&mut original, &x, var.as_deref())?;
    let scale = want.max_abs().max(f32::MIN_POSITIVE);
    let diff = got
        .data()
        .iter()
        .zip(want.data())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!(
        "layers: {} -> {}; largest difference of '{}' on a test batch: {:.2e} of its largest value",
        original.desc().layers.len(),
        deployed.desc().layers.len(),
        var.as_deref().unwrap_or("the outputs"),
        diff / scale
    );
    net::save_model_extra(
        &args.out,
        &deployed,
        &meta.normalization,
        &meta.input,
        meta.raw.clone(),
    )?;
    println!("wrote {}", args.out.display());
    if args.time {
        time(&mut original, &mut deployed, &args)?;
    }
    Ok(())
}

/// Median milliseconds per batch of each network, runs alternating so that both see
/// the same machine load.
fn time(original: &mut Network, deployed: &mut Network, args: &Args) -> Result<()> {
    let x = test_batch(original, args.batch.max(1))?;
    output(original, &x, None)?;
    output(deployed, &x, None)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..args.reps.max(1) {
        for (net, times) in [(&mut *original, &mut a), (&mut *deployed, &mut b)] {
            let t = Instant::now();
            output(net, &x, None)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let (ta, tb) = (median(a), median(b));
    println!(
        "forward, batch {} ({} threads): original {ta:.2} ms, deployed {tb:.2} ms, speed-up {:.2}x",
        args.batch.max(1),
        rayon::current_num_threads(),
        ta / tb
    );
    Ok(())
}
