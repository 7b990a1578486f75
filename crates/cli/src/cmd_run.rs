//! `convnet run MODEL IN.npy OUT.npy`: the network's test-mode forward on an
//! (N, C, H, W) float32 array exactly as given, writing its last output.

use anyhow::{bail, Context, Result};
use convnet::net::{self, deploy, Mode};
use convnet::Tensor;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A convnet model file
    pub model: PathBuf,
    /// Input: a float32 NumPy array (N, C, H, W), used as it is (no resizing, no
    /// normalisation)
    pub input: PathBuf,
    /// Output: the network's last output as a float32 NumPy array (N, C, H, W)
    pub output: PathBuf,
    /// Images per forward pass
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub device: crate::device_arg::DeviceArgs,
}

pub fn run(args: Args) -> Result<()> {
    args.device.cpu_only("running a model")?;
    crate::datasets::set_threads(args.threads)?;
    let (mut network, _) = net::load_model(&args.model)?;
    let x = interop::npy::read(&args.input)?;
    let d = x
        .dims4()
        .ok()
        .filter(|_| x.shape().len() == 4)
        .with_context(|| {
            format!(
                "{}: the array must be (N, C, H, W), got shape {:?}",
                args.input.display(),
                x.shape()
            )
        })?;
    if d.n == 0 || args.batch == 0 {
        bail!("{}: no images (N = 0), or --batch 0", args.input.display());
    }
    let out_name = deploy::last_output(&network)
        .context("the network has no layers")?
        .to_string();
    let mut shape = Vec::new();
    let mut data = Vec::new();
    for start in (0..d.n).step_by(args.batch) {
        let xb = x.slice_batch(start, args.batch.min(d.n - start))?;
        network.forward(&[("input", &xb)], Mode::Test)?;
        let y = network
            .var(&out_name)
            .with_context(|| format!("the network did not compute '{out_name}'"))?;
        shape = y.shape().to_vec();
        data.extend_from_slice(y.data());
    }
    shape[0] = d.n;
    let y = Tensor::from_vec(&shape, data)?;
    interop::npy::write(&args.output, &y)?;
    println!(
        "{} {:?} -> '{out_name}' {:?}; wrote {}",
        args.input.display(),
        x.shape(),
        y.shape(),
        args.output.display()
    );
    Ok(())
}
