//! Where the commands get their data: the embedded digits by default, an MNIST-style
//! folder of IDX files, or an image folder (one subfolder per class, split into
//! `train/` and `test/` (or `val/`) subfolders).

use anyhow::Result;
use convnet::data::dataset::Dataset;
use convnet::data::folder::{self, FolderOptions};
use convnet::data::{digits, idx};
use std::path::Path;

/// Loads split `split` ("train" or "test") from `dir`, or from the embedded digits
/// when `dir` is None. Image folders are fitted to the network's input (H, W, C).
pub fn load_split(dir: Option<&Path>, split: &str, input: Option<[usize; 3]>) -> Result<Dataset> {
    let Some(dir) = dir else {
        return Ok(digits::split(split)?);
    };
    if !dir.is_dir() {
        anyhow::bail!("{}: no such data folder", dir.display());
    }
    if idx::has_split(dir, split) {
        return Ok(idx::load_split(dir, split)?);
    }
    Ok(folder::load_split(dir, split, &folder_options(input))?)
}

/// An image folder without a train/test split (for cross-validation), or an MNIST-style
/// folder's training and test sets together.
pub fn load_all(dir: Option<&Path>, input: Option<[usize; 3]>) -> Result<Dataset> {
    match dir {
        Some(d) if !idx::has_split(d, "train") && !d.join("train").is_dir() => {
            Ok(folder::load_folder(d, &folder_options(input))?)
        }
        _ => {
            let a = load_split(dir, "train", input)?;
            let b = load_split(dir, "test", input)?;
            Ok(concat(a, b)?)
        }
    }
}

fn folder_options(input: Option<[usize; 3]>) -> FolderOptions {
    let [h, w, c] = input.unwrap_or([32, 32, 3]);
    FolderOptions::new(c, h, w)
}

/// Two data sets with the same classes and image size, one after the other.
fn concat(a: Dataset, b: Dataset) -> Result<Dataset> {
    if a.classes != b.classes || a.images.shape()[1..] != b.images.shape()[1..] {
        anyhow::bail!("the training and test sets differ in classes or image size");
    }
    let shape = a.images.shape().to_vec();
    let mut data = a.images.into_vec();
    data.extend_from_slice(b.images.data());
    let mut labels = a.labels;
    labels.extend_from_slice(&b.labels);
    let mut s = shape;
    s[0] = labels.len();
    Ok(Dataset::new(
        convnet::Tensor::from_vec(&s, data)?,
        labels,
        a.classes,
    )?)
}

/// Sets the number of threads of the global pool (before any parallel work).
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(t) = threads {
        if t == 0 {
            anyhow::bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| anyhow::anyhow!("--threads {t}: {e}"))?;
    }
    Ok(())
}
