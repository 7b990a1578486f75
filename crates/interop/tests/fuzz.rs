//! Mutation fuzzing of the importers: thousands of damaged copies of valid files
//! (flipped bits, truncations, bytes spliced in from elsewhere in the same or another
//! file) must each give a model or an error, never a panic.
//!
//! The seeds under `tests/data/` were written by `tests/refs/onnx_cases.py` and
//! `tests/refs/mat_cases.py` (SimpleNN compressed, DagNN uncompressed), plus one ONNX
//! file exported here; the loop is seeded, so a failure repeats.

use convnet::net::{zoo, Network};
use interop::onnx::{export, ExportMeta};
use interop::{mat, npy, onnx, ImportOptions};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn seed(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One damaged copy of `files[k]`.
fn mutate(files: &[Vec<u8>], rng: &mut Xoshiro256PlusPlus) -> Vec<u8> {
    let mut b = files[rng.gen_range(0..files.len())].clone();
    let rounds = rng.gen_range(1..=3);
    for _ in 0..rounds {
        if b.is_empty() {
            break;
        }
        match rng.gen_range(0..4) {
            0 => {
                let at = rng.gen_range(0..b.len());
                b[at] ^= 1 << rng.gen_range(0..8);
            }
            1 => {
                let at = rng.gen_range(0..b.len());
                b.truncate(at);
            }
            2 => {
                let other = &files[rng.gen_range(0..files.len())];
                let n = rng.gen_range(1..=32).min(other.len());
                let from = rng.gen_range(0..=other.len() - n);
                let at = rng.gen_range(0..b.len());
                let end = (at + n).min(b.len());
                b.splice(at..end, other[from..from + n].iter().copied());
            }
            _ => {
                // A plausible size or count: a little-endian integer written over.
                let at = rng.gen_range(0..b.len());
                let v: u32 = [0, 1, 2, 7, 255, 65535, u32::MAX][rng.gen_range(0..7)];
                for (i, byte) in v.to_le_bytes().iter().enumerate() {
                    if let Some(x) = b.get_mut(at + i) {
                        *x = *byte;
                    }
                }
            }
        }
    }
    b
}

/// Runs `import` on `count` mutations; returns (imported, refused). Panics name the
/// mutation that panicked.
fn fuzz(
    files: &[Vec<u8>],
    count: usize,
    seed: u64,
    import: impl Fn(&[u8]) -> bool,
) -> (usize, usize) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut ok, mut refused) = (0, 0);
    for k in 0..count {
        let bytes = mutate(files, &mut rng);
        match catch_unwind(AssertUnwindSafe(|| import(&bytes))) {
            Ok(true) => ok += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("mutation {k} (seed {seed}) panicked"),
        }
    }
    (ok, refused)
}

#[test]
fn onnx_importer_never_panics_on_damaged_models() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::from_desc(&zoo::get("lenet-bn").unwrap(), 1).unwrap();
    net.set_rng_seed(1);
    let exported = dir.path().join("lenet.onnx");
    export(&net, &ExportMeta::default(), &exported).unwrap();
    let files = vec![
        seed("conv_pool_gemm.onnx"),
        seed("bn_lrn_dropout.onnx"),
        std::fs::read(&exported).unwrap(),
    ];
    let path = dir.path().join("fuzzed.onnx");
    let (ok, refused) = fuzz(&files, 2000, 1, |b| {
        onnx::import(&path, b, &ImportOptions::default()).is_ok()
    });
    assert!(refused > 0 && ok > 0, "imported {ok}, refused {refused}");
}

#[test]
fn mat_importer_never_panics_on_damaged_files() {
    let files = vec![seed("simplenn.mat"), seed("dagnn.mat")];
    let path = Path::new("fuzzed.mat");
    let (ok, refused) = fuzz(&files, 3000, 2, |b| {
        mat::import(path, b, &ImportOptions::default()).is_ok()
    });
    assert!(refused > 0 && ok > 0, "imported {ok}, refused {refused}");
}

#[test]
fn npy_reader_never_panics_on_damaged_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    let t = convnet::Tensor::from_vec(&[2, 3, 2, 2], (0..24).map(|v| v as f32).collect()).unwrap();
    npy::write(&p, &t).unwrap();
    let files = vec![std::fs::read(&p).unwrap()];
    let (ok, refused) = fuzz(&files, 2000, 3, |b| npy::parse(b).is_ok());
    assert!(refused > 0 && ok > 0, "read {ok}, refused {refused}");
}
