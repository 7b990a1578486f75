//! Model files: one `.safetensors` file holding the weights as `<layer>.<param>` in
//! PyTorch's layout plus batch-norm buffers; the metadata holds the description
//! (TOML, key `description`), the class names (JSON list, key `classes`), the data
//! layer's normalisation (an opaque JSON string, key `normalization`) and how an image
//! file is fitted to the input (an opaque JSON string, key `input`: the data layer's
//! `FolderOptions`; absent means "resize to the input size").

use super::desc::NetDesc;
use super::graph::Network;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What a model file says besides its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMeta {
    pub classes: Vec<String>,
    /// Opaque JSON, as the trainer passed it ("" when absent).
    pub normalization: String,
    /// Opaque JSON: how image files are fitted to the input ("" when absent).
    pub input: String,
    /// Every metadata entry, the ones above included.
    pub raw: BTreeMap<String, String>,
}

/// Metadata keys.
pub const DESCRIPTION: &str = "description";
pub const CLASSES: &str = "classes";
pub const NORMALIZATION: &str = "normalization";
pub const INPUT: &str = "input";
/// Readable class names (a JSON list in the order of `classes`), for models whose
/// class names are identifiers (ImageNet's WordNet ids).
pub const CLASS_DESCRIPTIONS: &str = "class_descriptions";

/// Writes `net` to `path` atomically, with its description, class names and the
/// caller's `normalization` (any JSON text; "" for none).
pub fn save_model(path: &Path, net: &Network, normalization: &str) -> Result<()> {
    save_model_with(path, net, normalization, "")
}

/// [`save_model`], also recording how image files are fitted to the input (`input`:
/// JSON of the data layer's folder options; "" for none).
pub fn save_model_with(path: &Path, net: &Network, normalization: &str, input: &str) -> Result<()> {
    save_model_extra(path, net, normalization, input, BTreeMap::new())
}

/// [`save_model_with`], with further metadata entries (such as
/// [`CLASS_DESCRIPTIONS`]) besides the ones it writes itself.
pub fn save_model_extra(
    path: &Path,
    net: &Network,
    normalization: &str,
    input: &str,
    extra: BTreeMap<String, String>,
) -> Result<()> {
    let mut meta = extra;
    if !input.is_empty() {
        meta.insert(INPUT.to_string(), input.to_string());
    }
    meta.insert(DESCRIPTION.to_string(), net.desc().to_toml());
    let classes = serde_json::to_string(net.classes())
        .map_err(|e| Error::file(path, None, format!("class names: {e}")))?;
    meta.insert(CLASSES.to_string(), classes);
    meta.insert(NORMALIZATION.to_string(), normalization.to_string());
    meta.insert("format".to_string(), "convnet-model".to_string());
    save_tensors(path, &net.named_tensors(), meta)
}

/// Reads a model: the network (built from the stored description, every weight
/// and buffer from the file) and its metadata.
pub fn load_model(path: &Path) -> Result<(Network, ModelMeta)> {
    let (tensors, raw) = load_tensors(path)?;
    let text = raw.get(DESCRIPTION).ok_or_else(|| {
        Error::file(
            path,
            None,
            "no network description in the metadata (is it a model file?)",
        )
    })?;
    let desc = NetDesc::parse(text, &format!("{} (description)", path.display()))?;
    let mut net = Network::new(&desc).map_err(|e| Error::file(path, None, e.to_string()))?;
    let names: Vec<String> = net
        .named_tensors()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let mut tensors = tensors;
    for name in &names {
        let t = tensors
            .remove(name)
            .ok_or_else(|| Error::file(path, None, format!("tensor '{name}' is missing")))?;
        net.set_tensor(name, t)
            .map_err(|e| Error::file(path, None, format!("tensor '{name}': {e}")))?;
    }
    if let Some(extra) = tensors.keys().next() {
        return Err(Error::file(
            path,
            None,
            format!(
                "tensor '{extra}' is not a parameter of network '{}'",
                desc.name
            ),
        ));
    }
    let classes = match raw.get(CLASSES) {
        Some(c) => serde_json::from_str(c)
            .map_err(|e| Error::file(path, None, format!("metadata 'classes': {e}")))?,
        None => desc.classes.clone(),
    };
    let meta = ModelMeta {
        classes,
        normalization: raw.get(NORMALIZATION).cloned().unwrap_or_default(),
        input: raw.get(INPUT).cloned().unwrap_or_default(),
        raw,
    };
    Ok((net, meta))
}

/// An f32 tensor as safetensors sees it.
struct F32View<'a>(&'a Tensor);

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.0.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.data().iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.0.len() * 4
    }
}

/// The one metadata entry our files hold: every key and value, as a JSON object.
const METADATA_KEY: &str = "convnet";

/// Writes named f32 tensors and string metadata as one safetensors file,
/// atomically (a temporary file in the same folder, flushed, renamed over `path`).
pub fn save_tensors(
    path: &Path,
    tensors: &[(&str, &Tensor)],
    metadata: BTreeMap<String, String>,
) -> Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::file(path, None, "not a file name"))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let mut seen = std::collections::BTreeSet::new();
    if let Some((dup, _)) = tensors.iter().find(|(n, _)| !seen.insert(*n)) {
        return Err(Error::file(
            path,
            None,
            format!("tensor '{dup}' is given twice"),
        ));
    }
    // The safetensors writer takes a HashMap, whose order changes from run to run; one
    // key holding the sorted map as JSON keeps identical runs' files byte-identical.
    let packed = serde_json::to_string(&metadata)
        .map_err(|e| Error::file(path, None, format!("cannot encode metadata: {e}")))?;
    let meta: HashMap<String, String> = HashMap::from([(METADATA_KEY.to_string(), packed)]);
    let views = tensors.iter().map(|(n, t)| (n.to_string(), F32View(t)));
    let written = safetensors::serialize_to_file(views, &Some(meta), &tmp)
        .map_err(|e| Error::file(path, None, format!("cannot write: {e}")))
        .and_then(|()| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&tmp, e))
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if written.is_err() {
        // Best effort: the temporary file is the only thing left to clean.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Reads every tensor (f32 only) and the metadata of a safetensors file.
pub fn load_tensors(path: &Path) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::file(path, None, format!("not a safetensors file: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::file(path, None, format!("not a safetensors file: {e}")))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::file(
                path,
                None,
                format!("tensor '{name}' is {:?}, only F32 is read", view.dtype()),
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let t = Tensor::from_vec(view.shape(), data)
            .map_err(|e| Error::file(path, None, format!("tensor '{name}': {e}")))?;
        tensors.insert(name.to_string(), t);
    }
    let mut metadata: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if let Some(packed) = metadata.remove(METADATA_KEY) {
        let unpacked: BTreeMap<String, String> = serde_json::from_str(&packed).map_err(|e| {
            Error::file(
                path,
                None,
                format!("metadata '{METADATA_KEY}' is not a JSON map: {e}"),
            )
        })?;
        metadata.extend(unpacked);
    }
    Ok((tensors, metadata))
}
