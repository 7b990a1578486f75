//! What `viz saliency` and `viz cam` share: the arguments, the input fitted as the
//! model says, the class to explain, and the lines printed about them.

use super::{input_and_output, load_input};
use crate::cmd_test;
use anyhow::{bail, Result};
use convnet::blocks::softmax;
use convnet::data::folder::FolderOptions;
use convnet::data::normalize::Normalization;
use convnet::net::{explain, Network};
use convnet::train::stats::argmax;
use convnet::Tensor;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// A model file written by `convnet train` (or imported)
    pub model: PathBuf,
    /// A PNG or JPEG image (fitted to the network's input as `convnet predict` does),
    /// then the PNG to write; with --digit, only the PNG to write
    #[arg(value_names = ["IMAGE", "OUT.png"], num_args = 1..=2, required = true)]
    pub paths: Vec<PathBuf>,
    /// Use image I of the embedded digits' test set instead of an image file
    #[arg(long, value_name = "I")]
    pub digit: Option<usize>,
    /// The class to explain, by name or index (default: the top class)
    #[arg(long, value_name = "C")]
    pub class: Option<String>,
}

/// A loaded model and input, with the class chosen; the forward pass is done.
pub struct Prepared {
    pub network: Network,
    pub norm: Normalization,
    pub opts: FolderOptions,
    /// The fitted input as drawn: 0..255, C x H x W.
    pub pixels: Vec<f32>,
    /// The normalised input, (1, C, H, W).
    pub x: Tensor,
    pub class: usize,
    pub out: PathBuf,
}

/// Loads the model and the input, runs the network, picks the class and prints them.
pub fn prepare(args: &ExplainArgs) -> Result<Prepared> {
    let (image, out) = input_and_output(args.digit, &args.paths)?;
    let out = out.to_path_buf();
    let (mut network, norm, opts) = cmd_test::load_for_images(&args.model)?;
    let (pixels, source, x) = load_input(&image, &opts, &norm)?;
    let scores = explain::scores(&mut network, &x)?;
    let class = pick_class(args.class.as_deref(), network.classes(), &scores)?;
    let prob =
        softmax::softmax_forward(&Tensor::from_vec(&[1, scores.len(), 1, 1], scores.clone())?)?;
    let top = argmax(&scores);
    let rank = scores.iter().filter(|&&s| s > scores[class]).count();
    println!(
        "input: {source}, fitted to {}x{}x{} (C x H x W)",
        opts.channels, opts.height, opts.width
    );
    println!(
        "class {}: score {:.4}, probability {:.4} ({})",
        class_name(&network, class),
        scores[class],
        prob.data()[class],
        if class == top {
            "the top class".to_string()
        } else {
            format!(
                "ranked {} of {}; the top class is {}",
                rank + 1,
                scores.len(),
                class_name(&network, top)
            )
        }
    );
    Ok(Prepared {
        network,
        norm,
        opts,
        pixels,
        x,
        class,
        out,
    })
}

/// "name (index k)" when the name is not the index itself.
pub fn class_name(network: &Network, k: usize) -> String {
    match network.classes().get(k) {
        Some(n) if *n != k.to_string() => format!("{n} (index {k})"),
        _ => k.to_string(),
    }
}

/// The class `spec` names (a class name, else an index), or the top-scoring one.
fn pick_class(spec: Option<&str>, classes: &[String], scores: &[f32]) -> Result<usize> {
    let Some(spec) = spec else {
        return Ok(argmax(scores));
    };
    if let Some(k) = classes.iter().position(|c| c == spec) {
        return Ok(k);
    }
    match spec.parse::<usize>() {
        Ok(k) if k < scores.len() => Ok(k),
        _ => {
            let shown: Vec<&str> = classes.iter().take(12).map(|s| s.as_str()).collect();
            let more = if classes.len() > shown.len() {
                ", ..."
            } else {
                ""
            };
            bail!(
                "--class '{spec}': neither a class name nor an index below {} (classes: {}{more})",
                scores.len(),
                shown.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_picked_by_name_then_index_and_default_to_the_top() {
        let classes: Vec<String> = ["cat", "dog", "7"].iter().map(|s| s.to_string()).collect();
        let scores = [0.1, 2.0, 0.5];
        assert_eq!(pick_class(None, &classes, &scores).unwrap(), 1);
        assert_eq!(pick_class(Some("cat"), &classes, &scores).unwrap(), 0);
        assert_eq!(pick_class(Some("2"), &classes, &scores).unwrap(), 2);
        // A name wins over an index.
        assert_eq!(pick_class(Some("7"), &classes, &scores).unwrap(), 2);
        let e = pick_class(Some("3"), &classes, &scores)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("index below 3") && e.contains("cat, dog, 7"),
            "{e}"
        );
    }
}
