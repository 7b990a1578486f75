//! `convnet test MODEL`: objective, top-1 and top-5 error, and the confusion matrix.

use crate::{datasets, heatmap};
use anyhow::{Context, Result};
use convnet::data::folder::FolderOptions;
use convnet::data::normalize::Normalization;
use convnet::net;
use convnet::train::{evaluate, Evaluation};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// A model file written by `convnet train`
    pub model: PathBuf,
    /// Data folder with the test split; default: the embedded digits
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to draw the confusion matrix as a heat map; default: confusion.png beside the model
    #[arg(long)]
    pub confusion: Option<PathBuf>,
    #[command(flatten)]
    pub device: crate::device_arg::DeviceArgs,
}

/// The model's network and normalisation, ready to evaluate.
pub fn load(model: &Path) -> Result<(net::Network, Normalization)> {
    let (network, norm, _) = load_with_meta(model)?;
    Ok((network, norm))
}

fn load_with_meta(model: &Path) -> Result<(net::Network, Normalization, net::ModelMeta)> {
    let (network, meta) = net::load_model(model)?;
    let norm = if meta.normalization.is_empty() {
        Normalization::None
    } else {
        Normalization::from_json(&meta.normalization)?
    };
    Ok((network, norm, meta))
}

/// As [`load`], with the options that fit an image file to the network's input: the
/// model's own (its `input` metadata) when it has them, else a plain resize.
pub fn load_for_images(model: &Path) -> Result<(net::Network, Normalization, FolderOptions)> {
    let (network, norm, opts, _) = load_for_images_with_meta(model)?;
    Ok((network, norm, opts))
}

/// As [`load_for_images`], with the model's metadata.
pub fn load_for_images_with_meta(
    model: &Path,
) -> Result<(net::Network, Normalization, FolderOptions, net::ModelMeta)> {
    let (network, norm, meta) = load_with_meta(model)?;
    let [h, w, c] = network
        .input_size()
        .with_context(|| format!("{}: the network declares no input size", model.display()))?;
    let mut opts = FolderOptions::new(c, h, w);
    if !meta.input.is_empty() {
        let stored: FolderOptions = serde_json::from_str(&meta.input).with_context(|| {
            format!(
                "{}: metadata 'input' is not valid image-fitting options",
                model.display()
            )
        })?;
        if (stored.channels, stored.height, stored.width) != (c, h, w) {
            anyhow::bail!(
                "{}: metadata 'input' fits images to {}x{}x{} but the network takes {h}x{w}x{c}",
                model.display(),
                stored.height,
                stored.width,
                stored.channels
            );
        }
        opts.fit = stored.fit;
    }
    Ok((network, norm, opts, meta))
}

/// The confusion matrix as text: rows are true classes, columns predictions.
pub fn confusion_table(classes: &[String], m: &[Vec<usize>]) -> String {
    let width = m
        .iter()
        .flatten()
        .map(|v| v.to_string().len())
        .chain(classes.iter().map(|c| c.len()))
        .max()
        .unwrap_or(1)
        + 1;
    let mut s = format!("{:>w$} |", "true\\pred", w = width.max(9));
    for c in classes {
        s += &format!("{c:>width$}");
    }
    s.push('\n');
    for (c, row) in classes.iter().zip(m) {
        s += &format!("{c:>w$} |", w = width.max(9));
        for v in row {
            s += &format!("{v:>width$}");
        }
        s.push('\n');
    }
    s
}

pub fn report(e: &Evaluation, classes: &[String]) -> String {
    format!(
        "images {}  objective {:.4}  top-1 error {:.2}%  top-5 error {:.2}%\nconfusion matrix:\n{}",
        e.tally.images,
        e.tally.mean_objective(),
        e.tally.top1err() * 100.0,
        e.tally.top5err() * 100.0,
        confusion_table(classes, &e.confusion)
    )
}

pub fn run(args: Args) -> Result<()> {
    args.device.cpu_only("testing")?;
    datasets::set_threads(args.threads)?;
    let (mut network, norm, fit) = load_for_images(&args.model)?;
    let data = datasets::load_split(args.data.as_deref(), "test", &fit)?;
    if data.classes().len() != network.classes().len() {
        anyhow::bail!(
            "{}: the model has {} classes but the data has {}",
            args.model.display(),
            network.classes().len(),
            data.classes().len()
        );
    }
    let classes = data.classes().to_vec();
    let e = evaluate(&mut network, data, &norm, args.batch.max(1))?;
    print!("{}", report(&e, &classes));
    let png = args
        .confusion
        .clone()
        .unwrap_or_else(|| args.model.with_file_name("confusion.png"));
    let title = format!(
        "{}: {} images, top-1 error {:.2}%",
        args.model.display(),
        e.tally.images,
        e.tally.top1err() * 100.0
    );
    heatmap::confusion(&png, &classes, &e.confusion, &title)?;
    println!("wrote {}", png.display());
    Ok(())
}
