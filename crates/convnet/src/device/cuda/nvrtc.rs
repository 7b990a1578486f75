//! convnet's kernels (`kernels.cu`) compiled to PTX with NVRTC. Compiling needs the
//! NVRTC library only, no GPU and no driver, so the sources are checked on any machine
//! that has the library (`tests/cuda_kernels.rs`).

use super::super::{Device, DeviceError};
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};

/// The CUDA C source of every kernel.
pub const SOURCE: &str = include_str!("kernels.cu");

/// The architectures the tests compile for: NVRTC's default target and Hopper (H100,
/// H200), where the GPU check runs.
pub const TEST_ARCHS: &[&str] = &["compute_75", "compute_90"];

/// Why the kernels could not be compiled; [`NvrtcError::on`] ties it to a device.
#[derive(Debug)]
pub enum NvrtcError {
    /// The NVRTC library is not installed or not on the loader's path.
    Missing,
    /// NVRTC refused the source: the message holds its log.
    Failed(String),
}

impl NvrtcError {
    pub fn on(self, device: Device) -> DeviceError {
        match self {
            NvrtcError::Missing => DeviceError::MissingLibrary {
                device,
                what: "NVRTC (CUDA's run-time compiler)",
                names: "libnvrtc.so.13".into(),
            },
            NvrtcError::Failed(msg) => DeviceError::Cuda {
                device,
                what: "compiling the kernels".into(),
                msg,
            },
        }
    }
}

/// Whether the NVRTC library can be loaded.
pub fn present() -> bool {
    // SAFETY: only tries to open the library by its usual names.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// [`SOURCE`] compiled to PTX for `arch` (`compute_XY`), in strict FP32: no flushing of
/// denormals, IEEE division and square root, and no fused multiply-add contraction, so
/// that results compare with the CPU's.
pub fn compile(arch: &str) -> Result<Ptx, NvrtcError> {
    if !present() {
        return Err(NvrtcError::Missing);
    }
    let opts = CompileOptions {
        ftz: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        fmad: Some(false),
        options: vec![format!("--gpu-architecture={arch}")],
        name: Some("convnet_kernels.cu".into()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts).map_err(|e| {
        NvrtcError::Failed(match e {
            CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => format!("{other:?}"),
        })
    })
}

/// The names of the kernels defined in [`SOURCE`] (every `extern "C" __global__`).
pub fn kernel_names() -> Vec<&'static str> {
    SOURCE
        .split("extern \"C\" __global__ void ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .collect()
}
