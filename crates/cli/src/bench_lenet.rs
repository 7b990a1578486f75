//! `convnet bench lenet`: the figures of ../shared/bench/torch_lenet_mnist.py, with the
//! same recipe (MatConvNet's cnn_mnist: batch 100, lr 0.001, momentum 0.9, weight
//! decay 0.0005, 0..255 pixels minus the mean image, no jitter).

use crate::cmd_train;
use anyhow::{Context, Result};
use convnet::data::digits;
use convnet::data::normalize::Normalization;
use convnet::net::Mode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    #[arg(long, default_value_t = 0.001)]
    pub lr: f32,
    #[command(flatten)]
    pub device: crate::device_arg::DeviceArgs,
}

/// Peak resident memory of this process in MB (Linux), 0 where unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub fn run(args: Args) -> Result<()> {
    args.device.cpu_only("bench lenet")?;
    crate::datasets::set_threads(Some(args.threads))?;
    let out = std::env::temp_dir().join(format!("convnet-bench-lenet-{}", std::process::id()));
    let targs = cmd_train::Args {
        net: Some("lenet".into()),
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        schedule: "constant".into(),
        weight_decay: 0.0005,
        jitter: "none".into(),
        normalize: "mean-image".into(),
        out: out.clone(),
        quiet: true,
        ..Default::default()
    };
    let test = digits::test()?;
    let train = digits::train()?;
    let mean = Normalization::mean_image(&train)?;
    let result = cmd_train::run_training_with(&targs, train, Some(test.clone()), mean);
    let _ = std::fs::remove_dir_all(&out);
    let (mut network, history, norm) = result?;
    for s in &history {
        println!(
            "epoch {}: {:.0} img/s, test error {:.4}",
            s.epoch,
            s.images_per_s,
            s.val_top1err.unwrap_or(f64::NAN)
        );
    }
    let mut rates: Vec<f64> = history.iter().skip(1).map(|s| s.images_per_s).collect();
    if rates.is_empty() {
        rates = history.iter().map(|s| s.images_per_s).collect();
    }
    rates.sort_by(f64::total_cmp);
    let steady = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    let err = history
        .last()
        .and_then(|s| s.val_top1err)
        .unwrap_or(f64::NAN);

    // Batch-1 inference latency, as the baseline measures it.
    let (c, h, w) = (1, 28, 28);
    let image = |i: usize| -> Result<convnet::Tensor> {
        let mut px = test.image(i)?.to_vec();
        norm.apply_image(&mut px, c, h, w)?;
        Ok(convnet::Tensor::from_vec(&[1, c, h, w], px)?)
    };
    let inputs: Vec<convnet::Tensor> = (0..500).map(image).collect::<Result<_>>()?;
    for x in inputs.iter().take(50) {
        network.forward(&[("input", x)], Mode::Test)?;
    }
    let t0 = Instant::now();
    for x in &inputs {
        network.forward(&[("input", x)], Mode::Test)?;
    }
    let lat_ms = t0.elapsed().as_secs_f64() / inputs.len() as f64 * 1e3;
    network.prediction().context("no prediction")?;
    println!(
        "RESULT convnet threads={} train_img_per_s={steady:.0} test_error={err:.4} infer_b1_ms={lat_ms:.3} peak_rss_mb={:.0}",
        args.threads,
        peak_rss_mb()
    );
    Ok(())
}
