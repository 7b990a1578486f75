//! Networks in other formats: ONNX models in and out, MatConvNet model files in, and
//! NumPy `.npy` arrays both ways.
//!
//! Importers convert once into convnet's own network description and weights (no
//! interpreter of foreign graphs): what cannot be mapped exactly onto convnet's layers
//! is refused with an error naming the node or layer. A crate of its own, so the core
//! library stays free of protobuf and MAT-file code.

mod build;
pub mod mat;
pub mod npy;
pub mod onnx;

use convnet::data::folder::FolderOptions;
use convnet::data::normalize::Normalization;
use convnet::net::{self, Network};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that cannot be read, parsed or converted; the message names the node,
    /// layer or field concerned.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error(transparent)]
    Convnet(#[from] convnet::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn file(path: &Path, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.display().to_string(),
            msg: msg.into(),
        }
    }
}

/// Which format a model came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// ONNX, with the opset of its default domain.
    Onnx { opset: i64 },
    /// MatConvNet's SimpleNN (a chain) or DagNN (a graph) model file.
    MatConvNet { dag: bool },
}

/// A network converted from another format, with what it says about its data.
pub struct Imported {
    pub net: Network,
    pub format: Format,
    /// How to normalise 0..255 pixels for this network (`None` if the file says nothing).
    pub normalization: Normalization,
    /// How to fit image files to the input (`None`: a plain resize).
    pub input: Option<FolderOptions>,
    /// Readable class names, in the order of the class names (may be empty).
    pub class_descriptions: Vec<String>,
    /// What a user should know about the conversion (approximations, ignored fields).
    pub notes: Vec<String>,
}

/// Options of [`import`].
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Class names replacing the file's (their count must match the outputs).
    pub classes: Option<Vec<String>>,
}

impl Imported {
    /// Writes the model file: weights, description, class names, normalisation, the
    /// fitting of image files and the class descriptions (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let norm = if self.normalization.is_none() {
            String::new()
        } else {
            serde_json::to_string(&self.normalization)
                .map_err(|e| Error::file(path, format!("normalisation: {e}")))?
        };
        let input = match &self.input {
            Some(o) => serde_json::to_string(o)
                .map_err(|e| Error::file(path, format!("input fitting: {e}")))?,
            None => String::new(),
        };
        let mut extra = BTreeMap::new();
        if !self.class_descriptions.is_empty() {
            let d = serde_json::to_string(&self.class_descriptions)
                .map_err(|e| Error::file(path, format!("class descriptions: {e}")))?;
            extra.insert(net::model_file::CLASS_DESCRIPTIONS.to_string(), d);
        }
        net::save_model_extra(path, &self.net, &norm, &input, extra)?;
        Ok(())
    }
}

/// Reads a model in any format this crate knows, telling them apart by content: a
/// MAT-file header means MatConvNet, anything else is read as ONNX.
pub fn import(path: &Path, opts: &ImportOptions) -> Result<Imported> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, e.to_string()))?;
    if mat::is_mat_file(&bytes) {
        mat::import(path, &bytes, opts)
    } else {
        onnx::import(path, &bytes, opts)
    }
}

/// The class names of a network with `count` outputs: `given` (checked), or "0",
/// "1", ...
pub(crate) fn class_names(
    given: Option<&Vec<String>>,
    count: usize,
) -> std::result::Result<Vec<String>, build::Msg> {
    match given {
        Some(v) if v.len() != count => Err(format!(
            "{} class names were given but the network has {count} outputs",
            v.len()
        )),
        Some(v) => Ok(v.clone()),
        None => Ok((0..count).map(|c| c.to_string()).collect()),
    }
}
