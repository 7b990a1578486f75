//! The CUDA backend: a GPU's context and stream, tensors in its memory, and convnet's
//! own kernels (compiled at run time with NVRTC, see [`nvrtc`]) launched on them.
//!
//! Libraries are loaded at run time (cudarc's dynamic loading): the library checks that
//! each one is there before first use and returns an error naming it, since cudarc
//! panics on a missing library. Not yet run on a GPU: tests against the CPU blocks
//! (`tests/cuda_kernels.rs`) print "skipped: no GPU" where none is visible.

pub mod nvrtc;
mod ops;

pub use ops::ClassMetric;

use super::{Device, DeviceError, DeviceInfo};
use crate::tensor::{fmt_shape, Tensor};
use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DriverError,
};
use std::sync::{Arc, Mutex};

/// One GPU: its context, the stream every launch goes to, and the kernels, compiled
/// for this GPU's architecture on first use.
pub struct Gpu {
    device: Device,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    module: Mutex<Option<Arc<CudaModule>>>,
}

/// A tensor in a GPU's memory: a shape and `f32` values in the same row-major order as
/// [`Tensor`].
pub struct GpuTensor {
    shape: Vec<usize>,
    data: CudaSlice<f32>,
}

impl GpuTensor {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.len() == 0
    }
}

/// Whether the CUDA driver library can be loaded (no GPU is needed to ask).
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the library by its usual names; loads nothing else.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

impl Gpu {
    /// Opens CUDA device `index`: an error, never a panic, when the driver library is
    /// missing, no device is visible or the index is out of range.
    pub fn open(index: usize) -> Result<Gpu, DeviceError> {
        let device = Device::Cuda(index);
        if !driver_present() {
            return Err(DeviceError::MissingLibrary {
                device,
                what: "CUDA driver",
                names: "libcuda.so, libcuda.so.1 (part of the NVIDIA driver)".into(),
            });
        }
        let count = match CudaContext::device_count() {
            Ok(c) => c.max(0) as usize,
            Err(e) if e.0 == sys::CUresult::CUDA_ERROR_NO_DEVICE => 0,
            Err(e) => return Err(cuda_error(device, "initialising the driver", e)),
        };
        if count == 0 {
            return Err(DeviceError::NoDevice { device });
        }
        if index >= count {
            return Err(DeviceError::BadIndex { device, count });
        }
        let ctx =
            CudaContext::new(index).map_err(|e| cuda_error(device, "creating a context", e))?;
        let stream = ctx
            .new_stream()
            .map_err(|e| cuda_error(device, "creating a stream", e))?;
        Ok(Gpu {
            device,
            ctx,
            stream,
            module: Mutex::new(None),
        })
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn info(&self) -> DeviceInfo {
        DeviceInfo {
            device: self.device,
            name: self.ctx.name().unwrap_or_else(|_| "unknown GPU".into()),
            memory_bytes: self.ctx.total_mem().unwrap_or(0),
        }
    }

    /// The `compute_XY` architecture NVRTC compiles for on this GPU.
    pub fn arch(&self) -> Result<String, DeviceError> {
        let (major, minor) = self
            .ctx
            .compute_capability()
            .map_err(|e| self.error("reading the compute capability", e))?;
        Ok(format!("compute_{major}{minor}"))
    }

    fn error(&self, what: &str, e: DriverError) -> DeviceError {
        cuda_error(self.device, what, e)
    }

    fn invalid(&self, msg: impl Into<String>) -> DeviceError {
        DeviceError::Invalid {
            device: self.device,
            msg: msg.into(),
        }
    }

    /// A kernel of `kernels.cu`, compiling and loading the module on first use.
    fn function(&self, name: &str) -> Result<CudaFunction, DeviceError> {
        let mut slot = self.module.lock().unwrap_or_else(|p| p.into_inner());
        let module = match &*slot {
            Some(m) => m.clone(),
            None => {
                let ptx = nvrtc::compile(&self.arch()?).map_err(|e| e.on(self.device))?;
                let m = self
                    .ctx
                    .load_module(ptx)
                    .map_err(|e| self.error("loading the kernels", e))?;
                *slot = Some(m.clone());
                m
            }
        };
        module
            .load_function(name)
            .map_err(|e| self.error(&format!("kernel {name}"), e))
    }

    /// A tensor of zeros in this GPU's memory.
    pub fn zeros(&self, shape: &[usize]) -> Result<GpuTensor, DeviceError> {
        let len = shape.iter().product::<usize>();
        let data = self
            .stream
            .alloc_zeros::<f32>(len)
            .map_err(|e| self.error(&format!("allocating {}", fmt_shape(shape)), e))?;
        Ok(GpuTensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// A copy of `t` in this GPU's memory.
    pub fn upload(&self, t: &Tensor) -> Result<GpuTensor, DeviceError> {
        let data = self
            .stream
            .clone_htod(t.data())
            .map_err(|e| self.error(&format!("uploading {}", fmt_shape(t.shape())), e))?;
        Ok(GpuTensor {
            shape: t.shape().to_vec(),
            data,
        })
    }

    /// A host copy of `g`; waits for the work queued before it.
    pub fn download(&self, g: &GpuTensor) -> Result<Tensor, DeviceError> {
        let data = self
            .stream
            .clone_dtoh(&g.data)
            .map_err(|e| self.error(&format!("downloading {}", fmt_shape(&g.shape)), e))?;
        Tensor::from_vec(&g.shape, data).map_err(|e| self.invalid(e.to_string()))
    }
}

/// A CUDA error as the user should read it: out of memory says so plainly.
fn cuda_error(device: Device, what: &str, e: DriverError) -> DeviceError {
    let msg = if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        "out of GPU memory (try a smaller batch)".to_string()
    } else {
        e.to_string()
    };
    DeviceError::Cuda {
        device,
        what: what.into(),
        msg,
    }
}

/// The uniform draw in [0, 1) that the dropout kernel makes for element `i` with
/// `seed`: SplitMix64 of the pair, top 24 bits. The host reference of `dropout_mask`.
pub fn dropout_uniform(seed: u64, i: u64) -> f32 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 * (1.0 / 16_777_216.0)
}
