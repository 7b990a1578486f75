//! Where the commands get their data: the embedded digits by default, an MNIST-style
//! folder of IDX files (both held in memory), or an image folder (one subfolder per
//! class, split into `train/` and `test/` (or `val/`) subfolders), streamed from disk.

use anyhow::Result;
use convnet::data::folder::{self, Fit, FolderOptions};
use convnet::data::jitter::Jitter;
use convnet::data::source::Images;
use convnet::data::{digits, idx};
use std::path::Path;

/// Loads split `split` ("train" or "test") from `dir`, or from the embedded digits
/// when `dir` is None. Image folders are listed, to be decoded and fitted as `fit` says
/// when a batch needs them.
pub fn load_split(dir: Option<&Path>, split: &str, fit: &FolderOptions) -> Result<Images> {
    let Some(dir) = dir else {
        return Ok(digits::split(split)?.into());
    };
    if !dir.is_dir() {
        anyhow::bail!("{}: no such data folder", dir.display());
    }
    if idx::has_split(dir, split) {
        return Ok(idx::load_split(dir, split)?.into());
    }
    Ok(folder::open_split(dir, split, fit)?.into())
}

/// An image folder without a train/test split (for cross-validation), or an MNIST-style
/// folder's training and test sets together.
pub fn load_all(dir: Option<&Path>, fit: &FolderOptions) -> Result<Images> {
    match dir {
        Some(d) if !idx::has_split(d, "train") && !d.join("train").is_dir() => {
            Ok(folder::open_folder(d, fit)?.into())
        }
        _ => {
            let a = load_split(dir, "train", fit)?;
            let b = load_split(dir, "test", fit)?;
            Ok(Images::concat(a, b)?)
        }
    }
}

/// How image files are fitted to a network input of `input` (H, W, C; default 32x32x3)
/// when tested: ImageNet's resize of the shorter side to 8/7 of the input and centred
/// crop (256 and 224) for a random-resized-crop recipe, else a plain resize.
pub fn fit_for(input: Option<[usize; 3]>, jitter: &Jitter) -> FolderOptions {
    let [h, w, c] = input.unwrap_or([32, 32, 3]);
    let mut fit = FolderOptions::new(c, h, w);
    if jitter.crop.is_some() {
        fit.fit = Fit::ShorterSide {
            size: (h.max(w) * 8).div_ceil(7),
        };
    }
    fit
}

/// The fitting of a set of image files (None for data held in memory).
pub fn fit_of(images: &Images) -> Option<FolderOptions> {
    match images {
        Images::Files(f) => Some(f.fit.clone()),
        Images::Memory(_) => None,
    }
}

/// Sets the number of threads of the global pool (before any parallel work). The
/// calling thread becomes one of them: each parallel step of a block then starts
/// on it, where from outside the pool every step was handed over to a worker and
/// waited for (two context switches a step, hundreds of steps in a forward pass).
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(t) = threads {
        if t == 0 {
            anyhow::bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .use_current_thread()
            .build_global()
            .map_err(|e| anyhow::anyhow!("--threads {t}: {e}"))?;
    }
    Ok(())
}
