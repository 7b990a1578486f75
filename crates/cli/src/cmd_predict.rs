//! `convnet predict MODEL IMAGE...`: the five most likely classes of each image, after
//! the model's own preprocessing (how it fits a file to its input, its normalisation).

use crate::cmd_test;
use anyhow::{Context, Result};
use convnet::blocks::softmax;
use convnet::data::folder;
use convnet::net::model_file::CLASS_DESCRIPTIONS;
use convnet::net::{self, Mode};
use convnet::train::stats::class_scores;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// A model file (written by `convnet train` or an importer)
    pub model: PathBuf,
    /// PNG or JPEG images, fitted to the network's input as the model says (e.g. the
    /// shorter side resized, then the centred crop)
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub device: crate::device_arg::DeviceArgs,
}

/// What to print for each class: its description when the model has them, else its name.
fn labels(model: &Path, network: &net::Network, meta: &net::ModelMeta) -> Result<Vec<String>> {
    let names = network.classes().to_vec();
    let Some(text) = meta.raw.get(CLASS_DESCRIPTIONS) else {
        return Ok(names);
    };
    let descriptions: Vec<String> = serde_json::from_str(text).with_context(|| {
        format!(
            "{}: metadata '{CLASS_DESCRIPTIONS}' is not a JSON list of strings",
            model.display()
        )
    })?;
    if descriptions.len() != names.len() {
        anyhow::bail!(
            "{}: metadata '{CLASS_DESCRIPTIONS}' has {} entries for {} classes",
            model.display(),
            descriptions.len(),
            names.len()
        );
    }
    Ok(descriptions)
}

pub fn run(args: Args) -> Result<()> {
    args.device.cpu_only("prediction")?;
    let (mut network, norm, opts, meta) = cmd_test::load_for_images_with_meta(&args.model)?;
    let labels = labels(&args.model, &network, &meta)?;
    let (c, h, w) = (opts.channels, opts.height, opts.width);
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
            let label = labels.get(k).cloned().unwrap_or_else(|| k.to_string());
            println!("  {:.4}  {label}", row[k]);
        }
    }
    Ok(())
}
