//! Attribute values that the padding rules cannot use give the layer's error, not a
//! panic: an exported network with a Conv and a MaxPool, its attributes rewritten.

use crate::onnx::export::{attr_int, attr_ints};
use crate::onnx::proto::{attr_type, AttributeProto, ModelProto};
use crate::onnx::{to_model, ExportMeta};
use crate::ImportOptions;
use convnet::net::{NetDesc, Network};
use prost::Message;
use std::path::Path;

const NET: &str = r#"
name = "small"
input = [8, 8, 3]
classes = 2
[[layer]]
name = "c1"
type = "conv"
size = [3, 3, 3, 2]
[[layer]]
name = "p1"
type = "pool"
method = "max"
kernel = 2
stride = 2
"#;

fn model() -> ModelProto {
    let desc = NetDesc::parse(NET, "small").unwrap();
    let net = Network::from_desc(&desc, 1).unwrap();
    to_model(&net, &ExportMeta::default()).unwrap()
}

/// Sets attribute `attr` of the node of type `op`.
fn set(m: &mut ModelProto, op: &str, attr: AttributeProto) {
    let graph = m.graph.as_mut().unwrap();
    let node = graph.node.iter_mut().find(|n| n.op_type == op).unwrap();
    node.attribute.retain(|a| a.name != attr.name);
    node.attribute.push(attr);
}

fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::STRING,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

#[test]
fn zero_strides_with_same_padding_or_ceil_mode_are_errors() {
    let cases = [
        ("Conv", string("auto_pad", "SAME_UPPER")),
        ("Conv", string("auto_pad", "SAME_LOWER")),
        ("MaxPool", string("auto_pad", "SAME_UPPER")),
        ("MaxPool", attr_int("ceil_mode", 1)),
    ];
    for (op, attr) in cases {
        let what = format!("{op} {}", attr.name);
        let mut m = model();
        set(&mut m, op, attr_ints("strides", &[0, 0]));
        set(&mut m, op, attr);
        let bytes = m.encode_to_vec();
        let e = match super::import(Path::new("small.onnx"), &bytes, &ImportOptions::default()) {
            Ok(_) => panic!("{what}: imported with strides 0"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("small.onnx") && e.contains("stride 0") && e.contains("must be positive"),
            "{what}: {e}"
        );
    }
}
