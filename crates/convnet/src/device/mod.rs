//! Where blocks run: the host CPU or an NVIDIA GPU through CUDA.
//!
//! [`Device`] is what the user names (`cpu`, `cuda`, `cuda:N`); [`Device::check`] opens
//! a GPU device far enough to say whether it can be used, with an error that names what
//! is missing (a build without the `cuda` feature, the driver library, the device) and
//! never a panic. The CUDA backend itself lives in [`cuda`] (feature `cuda`): device
//! tensors, kernels compiled at run time with NVRTC, and the launches that use them.
//! Networks and the trainer still run on the CPU only; the CUDA code has not yet been
//! run on a GPU (see README, "GPU").

#[cfg(feature = "cuda")]
pub mod cuda;

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A place to run: the CPU, or CUDA device `N` (`cuda` means `cuda:0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(usize),
}

/// Why a device cannot be named or used.
#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("device '{0}': expected cpu, cuda or cuda:N with N a device index 0, 1, ...")]
    Parse(String),
    #[error("device {0}: this convnet was built without CUDA; build it with `cargo build --release --features cuda`")]
    NotBuilt(Device),
    #[error("device {device}: the {what} library was not found (looked for {names}); install it and make sure the dynamic loader finds it (LD_LIBRARY_PATH)")]
    MissingLibrary {
        device: Device,
        what: &'static str,
        names: String,
    },
    #[error("device {device}: no such GPU, {count} CUDA device(s) visible (cuda:0 .. cuda:{last})", last = count.saturating_sub(1))]
    BadIndex { device: Device, count: usize },
    #[error("device {device}: no CUDA device visible (the driver reports none)")]
    NoDevice { device: Device },
    /// A failure reported by CUDA (out of memory, a failed launch, a compile error).
    #[error("device {device}: {what}: {msg}")]
    Cuda {
        device: Device,
        what: String,
        msg: String,
    },
    /// Arguments of a device operation that do not fit together.
    #[error("device {device}: {msg}")]
    Invalid { device: Device, msg: String },
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for Device {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DeviceError::Parse(s.to_string());
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            other => {
                let index = other.strip_prefix("cuda:").ok_or_else(bad)?;
                // Digits only: `usize::from_str` would also take "+1".
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                index.parse().map(Device::Cuda).map_err(|_| bad())
            }
        }
    }
}

/// What [`Device::check`] found: the device and, for a GPU, its name and memory.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceInfo {
    pub device: Device,
    pub name: String,
    pub memory_bytes: usize,
}

impl Device {
    pub fn is_cpu(self) -> bool {
        self == Device::Cpu
    }

    /// Opens the device far enough to know it can be used: the CPU always can; a GPU
    /// needs a build with the `cuda` feature, the CUDA driver library and a device of
    /// that index.
    pub fn check(self) -> Result<DeviceInfo, DeviceError> {
        match self {
            Device::Cpu => Ok(DeviceInfo {
                device: self,
                name: "cpu".into(),
                memory_bytes: 0,
            }),
            Device::Cuda(index) => open_cuda(self, index),
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(_device: Device, index: usize) -> Result<DeviceInfo, DeviceError> {
    let gpu = cuda::Gpu::open(index)?;
    Ok(gpu.info())
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(device: Device, _index: usize) -> Result<DeviceInfo, DeviceError> {
    Err(DeviceError::NotBuilt(device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for (text, device) in [
            ("cpu", Device::Cpu),
            ("CPU", Device::Cpu),
            ("cuda", Device::Cuda(0)),
            ("cuda:0", Device::Cuda(0)),
            ("cuda:3", Device::Cuda(3)),
            ("CUDA:1", Device::Cuda(1)),
        ] {
            assert_eq!(text.parse::<Device>().unwrap(), device, "{text}");
        }
        assert_eq!(
            Device::Cuda(2).to_string().parse::<Device>().unwrap(),
            Device::Cuda(2)
        );
    }

    #[test]
    fn bad_names_are_errors_that_quote_them() {
        for text in [
            "", "gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:+1", "cuda:1.5", "cuda0",
        ] {
            let e = text.parse::<Device>().unwrap_err().to_string();
            assert!(
                e.contains(&format!("'{text}'")) && e.contains("cuda:N"),
                "{text}: {e}"
            );
        }
        let e = "cuda:99999999999999999999999"
            .parse::<Device>()
            .unwrap_err();
        assert!(matches!(e, DeviceError::Parse(_)), "{e}");
    }

    #[test]
    fn the_cpu_is_always_there() {
        assert_eq!(Device::Cpu.check().unwrap().device, Device::Cpu);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_gpu_in_a_build_without_cuda_says_how_to_build() {
        let e = Device::Cuda(0).check().unwrap_err().to_string();
        assert!(e.contains("--features cuda") && e.contains("cuda:0"), "{e}");
    }
}
