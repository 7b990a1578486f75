//! Networks: layers (a block plus its parameters), chains and graphs, the model zoo,
//! description files and model files.
//!
//! A network is a DAG of layers over named variables. By convention the inputs are
//! `input` (N, C, H, W) and `label` (N, 1, 1, 1) class indices stored as f32; the
//! scores before the loss are `prediction`, the loss summed over the batch is
//! `objective`, and the metrics (counts over the batch) are `top1err` and `top5err`.
//! A chain is a graph whose layers each read the previous layer's output.

pub mod deploy;
pub mod desc;
pub mod explain;
pub mod finetune;
pub mod graph;
pub mod init;
pub mod layer;
pub mod model_file;
pub mod summary;
pub mod zoo;

pub use desc::{InputDesc, LayerDesc, NetDesc};
pub use graph::{BackwardStep, ForwardStep, Network};
pub use init::Init;
pub use layer::{LayerKind, Param};
pub use model_file::{
    load_model, load_tensors, save_model, save_model_extra, save_model_with, save_tensors,
    ModelMeta,
};
pub use summary::{summarize, Summary, SummaryRow};

/// Training mode draws dropout masks and normalises batches by their own moments
/// (updating the running moments); test mode skips dropout and uses stored moments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Test,
}

/// A zoo name (`lenet`, `vgg16`, ...) or the path of a TOML description file.
pub fn resolve(name_or_file: &str) -> crate::Result<NetDesc> {
    let path = std::path::Path::new(name_or_file);
    match zoo::get(name_or_file) {
        Some(d) => Ok(d),
        None if !path.exists() => Err(crate::Error::Invalid(format!(
            "'{name_or_file}' is neither a built-in network ({}) nor a description file",
            zoo::NAMES.join(", ")
        ))),
        None => NetDesc::load(path),
    }
}
