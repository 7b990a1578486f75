//! `convnet import FILE OUT.safetensors`: a trained network from ONNX or a MatConvNet
//! model file as a convnet model (description, weights, class names, normalisation).

use anyhow::{bail, Context, Result};
use convnet::data::folder::{Fit, FolderOptions};
use convnet::data::normalize::Normalization;
use interop::{Format, ImportOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// An ONNX model (.onnx) or a MatConvNet model file (.mat), told apart by content
    pub file: PathBuf,
    /// The convnet model to write (.safetensors)
    pub out: PathBuf,
    /// Class names, one per line, in the order of the network's outputs (ONNX models
    /// carry none)
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Per-channel mean to subtract from 0..255 pixels, R,G,B (torchvision's ImageNet
    /// models: 123.675,116.28,103.53); replaces the file's own
    #[arg(long, value_delimiter = ',')]
    pub mean: Option<Vec<f32>>,
    /// Per-channel standard deviation to divide 0..255 pixels by, R,G,B (torchvision:
    /// 58.395,57.12,57.375); needs --mean
    #[arg(long, value_delimiter = ',')]
    pub std: Option<Vec<f32>>,
    /// Fit images by resizing their shorter side to S pixels, then cropping the centre
    /// to the input size (ImageNet's test transform: 256 for 224x224)
    #[arg(long, value_name = "S")]
    pub resize: Option<usize>,
}

pub fn run(args: Args) -> Result<()> {
    let classes = match &args.classes {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read class names from {}", p.display()))?;
            Some(
                text.lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect(),
            )
        }
        None => None,
    };
    let mut m = interop::import(&args.file, &ImportOptions { classes })?;
    let [h, w, c] = m
        .net
        .input_size()
        .context("the network declares no input size")?;
    match (&args.mean, &args.std) {
        (None, Some(_)) => bail!("--std needs --mean"),
        (Some(mean), std) => {
            let std = std.clone().unwrap_or_else(|| vec![1.0; c]);
            if mean.len() != c || std.len() != c {
                bail!(
                    "--mean and --std need {c} values (one per input channel), got {} and {}",
                    mean.len(),
                    std.len()
                );
            }
            if std.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
                bail!("--std values must be positive, got {std:?}");
            }
            m.normalization = Normalization::PerChannel {
                mean: mean.clone(),
                std,
            };
        }
        (None, None) => {}
    }
    if let Some(s) = args.resize {
        if s < h.max(w) {
            bail!("--resize {s} is smaller than the {h}x{w} input");
        }
        let mut o = m
            .input
            .clone()
            .unwrap_or_else(|| FolderOptions::new(c, h, w));
        o.fit = Fit::ShorterSide { size: s };
        m.input = Some(o);
    }
    let format = match m.format {
        Format::Onnx { opset } => format!("ONNX (opset {opset})"),
        Format::MatConvNet { dag: false } => "MatConvNet SimpleNN".to_string(),
        Format::MatConvNet { dag: true } => "MatConvNet DagNN".to_string(),
    };
    let params: usize = m.net.params().map(|p| p.value.len()).sum();
    println!(
        "{}: {format}, {} layers, {params} parameters, input {h}x{w}x{c}, {} classes",
        args.file.display(),
        m.net.desc().layers.len(),
        m.net.classes().len()
    );
    match &m.normalization {
        Normalization::None => println!(
            "normalisation: none recorded (give --mean and --std if the network expects them)"
        ),
        Normalization::MeanImage {
            channels,
            height,
            width,
            ..
        } => println!(
            "normalisation: subtract a mean image of {channels}x{height}x{width} (C x H x W)"
        ),
        Normalization::PerChannel { mean, std } => {
            println!("normalisation: per channel, mean {mean:?}, std {std:?}")
        }
    }
    if let Some(o) = &m.input {
        println!("image fitting: {}", serde_json::to_string(&o.fit)?);
    }
    for note in &m.notes {
        println!("note: {note}");
    }
    m.save(&args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
