//! `convnet train`'s diagnostics options, the warnings it prints for what the checks
//! find, and the picture of the per-layer statistics (`--diagnose`).

use anyhow::{bail, Context, Result};
use convnet::train::diagnostics::{self, DiagnoseOptions, Diagnostics};
use convnet::train::Finding;
use std::path::{Path, PathBuf};

mod plot;

#[derive(clap::Args, Clone, Debug)]
pub struct DiagnoseArgs {
    /// Draw the per-layer statistics (weights, gradients, updates, outputs per epoch) into OUT/diagnostics.png
    #[arg(long)]
    pub diagnose: bool,
    /// Batches per epoch whose per-layer statistics go into OUT/diagnostics.json (0: none)
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub diagnose_batches: usize,
    /// Also check every N batches for a run in which nothing happens (always checked after the first epoch)
    #[arg(long, value_name = "N")]
    pub check_every: Option<usize>,
    /// Stop with an error when a check finds that nothing happens (the last checkpoint stays)
    #[arg(long)]
    pub stop_on_stall: bool,
}

impl Default for DiagnoseArgs {
    fn default() -> Self {
        DiagnoseArgs {
            diagnose: false,
            diagnose_batches: DiagnoseOptions::default().samples_per_epoch,
            check_every: None,
            stop_on_stall: false,
        }
    }
}

impl DiagnoseArgs {
    pub fn options(&self) -> Result<DiagnoseOptions> {
        if self.check_every == Some(0) {
            bail!("--check-every must be at least 1");
        }
        Ok(DiagnoseOptions {
            samples_per_epoch: self.diagnose_batches,
            check_every: self.check_every,
            stop_on_stall: self.stop_on_stall,
            ..DiagnoseOptions::default()
        })
    }

    /// With `--diagnose`, draws `out/diagnostics.png` from `out/diagnostics.json` and
    /// returns its path.
    pub fn draw(&self, out: &Path) -> Result<Option<PathBuf>> {
        if !self.diagnose {
            return Ok(None);
        }
        let json = out.join(diagnostics::FILE);
        let bytes = std::fs::read(&json).with_context(|| format!("reading {}", json.display()))?;
        let record: Diagnostics = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a diagnostics record", json.display()))?;
        let png = out.join("diagnostics.png");
        plot::draw(&record, &png)?;
        Ok(Some(png))
    }
}

/// The warning printed for a finding.
pub fn warning(f: &Finding) -> String {
    format!("warning: {f}")
}
