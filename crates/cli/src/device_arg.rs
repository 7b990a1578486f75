//! `--device cpu|cuda|cuda:N`, one argument struct flattened into every command that
//! runs a network. The GPU is checked (build, driver library, device index) before any
//! work starts, so a wrong device fails at once with the reason.

use anyhow::{bail, Result};
use convnet::device::Device;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct DeviceArgs {
    /// Where to run: cpu, cuda (= cuda:0) or cuda:N. The GPU backend needs a build with
    /// `--features cuda`, and does not yet run networks (see README, GPU)
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: Device,
}

impl DeviceArgs {
    /// Ok on the CPU. For a GPU, the reason it cannot be used (a build without CUDA, a
    /// missing library, no such device) or, where it can, that `what` does not run on a
    /// GPU yet.
    pub fn cpu_only(&self, what: &str) -> Result<()> {
        if self.device.is_cpu() {
            return Ok(());
        }
        let info = self.device.check()?;
        bail!(
            "{what} on {} ({}): not available yet; the CUDA backend has its device checks and own kernels but no network path, so use --device cpu",
            info.device,
            info.name
        )
    }
}
