//! Malformed descriptions and model files give errors, never panics.

use convnet::net::{load_model, save_model, summarize, zoo, NetDesc, Network};
use proptest::prelude::*;

const LENET: &str = include_str!("../../../examples/nets/lenet.toml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn mutated_descriptions_parse_or_fail_cleanly(
        edits in proptest::collection::vec((0usize..4000, any::<u8>()), 1..6)
    ) {
        let mut bytes = LENET.as_bytes().to_vec();
        for (pos, b) in edits {
            let i = pos % bytes.len();
            // Printable characters and digits: edits that still look like TOML.
            let chars = b" =[],\"\n0123456789abcxyz";
            bytes[i] = chars[b as usize % chars.len()];
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(d) = NetDesc::parse(&text, "f.toml") {
            let _ = summarize(&d, None);
        }
    }

    #[test]
    fn corrupted_model_files_load_or_fail_cleanly(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let net = Network::new(&zoo::get("lenet").unwrap()).unwrap();
        save_model(&path, &net, "{}").unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // Most flips land in the header (description, shapes, offsets).
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (pos, b) in flips {
            let i = pos % header.min(bytes.len());
            bytes[i] ^= b | 1;
        }
        std::fs::write(&path, &bytes).unwrap();
        let _ = load_model(&path);
    }
}

#[test]
fn absurd_sizes_are_errors_not_allocations() {
    let text = LENET
        .replace("size = [4, 4, 50, 500]", "kernel = 4\nout = 4000000000")
        .replace("size = [1, 1, 500, 10]", "kernel = 1\nout = 10");
    let d = NetDesc::parse(&text, "big.toml").unwrap();
    let e = Network::new(&d).unwrap_err().to_string();
    assert!(
        e.starts_with("big.toml:") && e.contains("layer 'conv3'") && e.contains("larger than"),
        "{e}"
    );
    assert!(summarize(&d, None).is_ok());
}
