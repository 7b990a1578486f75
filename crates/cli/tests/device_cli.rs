//! `--device`: every command that runs a network takes it; a bad name, a GPU in a build
//! without CUDA, a machine without the CUDA driver, and (on a GPU machine) a device
//! index out of range are clear errors with a non-zero exit, never a panic.

mod common;
use common::{convnet, stderr};

/// Each command with the arguments it needs to reach its device check.
const COMMANDS: &[&[&str]] = &[
    &["train"],
    &["test", "model.safetensors"],
    &["predict", "model.safetensors", "image.png"],
    &["cv", "--folds", "2"],
    &["run", "model.safetensors", "input.npy", "output.npy"],
    &["ocr", "train"],
    &["bench", "conv"],
    &["bench", "lenet"],
    &["bench", "net", "--net", "resnet18"],
];

/// The error printed by `convnet ARGS --device DEVICE`, which must fail cleanly.
fn device_error(args: &[&str], device: &str) -> String {
    let mut all = args.to_vec();
    all.extend(["--device", device]);
    let out = convnet(&all);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(if err.contains("invalid value") { 2 } else { 1 }),
        "{all:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{all:?}: {err}");
    err
}

#[test]
fn a_bad_device_name_is_refused_by_every_command() {
    for args in COMMANDS {
        let err = device_error(args, "cuda:x");
        assert!(
            err.contains("'cuda:x'") && err.contains("cuda:N"),
            "{args:?}: {err}"
        );
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn a_gpu_in_a_build_without_cuda_says_to_build_with_the_feature() {
    for args in COMMANDS {
        let err = device_error(args, "cuda");
        assert!(
            err.contains("convnet: error: device cuda:0") && err.contains("--features cuda"),
            "{args:?}: {err}"
        );
    }
}

/// Whether this machine has the CUDA driver library (and so, perhaps, a GPU).
#[cfg(feature = "cuda")]
fn driver_present() -> bool {
    convnet::device::cuda::driver_present()
}

#[cfg(feature = "cuda")]
#[test]
fn a_gpu_without_the_driver_library_is_an_error_naming_it() {
    if driver_present() {
        println!("skipped: the CUDA driver library is present here");
        return;
    }
    for args in COMMANDS {
        let err = device_error(args, "cuda:1");
        assert!(
            err.contains("device cuda:1")
                && err.contains("CUDA driver library was not found")
                && err.contains("libcuda.so"),
            "{args:?}: {err}"
        );
    }
}

#[cfg(feature = "cuda")]
#[test]
fn a_device_index_out_of_range_is_an_error_naming_the_devices() {
    if !driver_present() {
        println!("skipped: no GPU (no CUDA driver library)");
        return;
    }
    for args in COMMANDS {
        let err = device_error(args, "cuda:4096");
        assert!(
            err.contains("cuda:4096: no such GPU") || err.contains("no CUDA device visible"),
            "{args:?}: {err}"
        );
    }
}
