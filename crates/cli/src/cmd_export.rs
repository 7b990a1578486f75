//! `convnet export MODEL OUT.onnx`: the model's test-mode network as ONNX (opset 17).

use anyhow::Result;
use convnet::net::{self, model_file};
use interop::onnx::{export, ExportMeta, OPSET};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A convnet model file
    pub model: PathBuf,
    /// The ONNX file to write
    pub out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let (network, meta) = net::load_model(&args.model)?;
    let class_descriptions = match meta.raw.get(model_file::CLASS_DESCRIPTIONS) {
        Some(d) => serde_json::from_str(d)?,
        None => Vec::new(),
    };
    let info = ExportMeta {
        classes: meta.classes.clone(),
        normalization: meta.normalization.clone(),
        input: meta.input.clone(),
        class_descriptions,
    };
    let model = export(&network, &info, &args.out)?;
    let graph = model.graph.unwrap_or_default();
    let output = graph.output.first().map(|o| o.name.as_str()).unwrap_or("");
    println!(
        "wrote {}: opset {OPSET}, {} nodes, {} initializers, output '{output}'",
        args.out.display(),
        graph.node.len(),
        graph.initializer.len()
    );
    Ok(())
}
