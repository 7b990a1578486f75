//! `convnet predict MODEL IMAGE...`: the five most likely classes of each image.

use crate::cmd_test;
use anyhow::{Context, Result};
use convnet::blocks::softmax;
use convnet::data::folder;
use convnet::net::Mode;
use convnet::train::stats::class_scores;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A model file written by `convnet train`
    pub model: PathBuf,
    /// PNG or JPEG images, fitted to the network's input size
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let (mut network, norm, opts) = cmd_test::load_for_images(&args.model)?;
    let (c, h, w) = (opts.channels, opts.height, opts.width);
    let classes = network.classes().to_vec();
    for path in &args.images {
        let mut pixels = folder::load_image(path, &opts)?;
        norm.apply_image(&mut pixels, c, h, w)?;
        let x = convnet::Tensor::from_vec(&[1, c, h, w], pixels)?;
        network.forward(&[("input", &x)], Mode::Test)?;
        let scores = network
            .prediction()
            .context("the network has no 'prediction' variable")?;
        let p = softmax::softmax_forward(scores)?;
        let row = class_scores(&p, 1)?[0].to_vec();
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        println!("{}:", path.display());
        for &k in order.iter().take(5) {
            let name = classes.get(k).cloned().unwrap_or_else(|| k.to_string());
            println!("  {name:>12}  {:.4}", row[k]);
        }
    }
    Ok(())
}
