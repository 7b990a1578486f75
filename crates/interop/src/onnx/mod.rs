//! ONNX models: import into convnet networks, and export of convnet networks (opset
//! 17, the test-mode graph).

mod export;
mod import;
pub mod proto;
pub mod tensor;

pub use export::{export, to_model, ExportMeta, OPSET};
pub use import::{import, SUPPORTED};

/// `metadata_props` keys under which an exported model keeps what convnet's model
/// files hold besides the network (JSON, as in the model file); import reads them back.
pub const META_CLASSES: &str = "convnet.classes";
pub const META_DESCRIPTIONS: &str = "convnet.class_descriptions";
pub const META_NORMALIZATION: &str = "convnet.normalization";
pub const META_INPUT: &str = "convnet.input";
