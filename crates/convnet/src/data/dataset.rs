//! An in-memory labelled image set.

use std::path::Path;

use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Dims4, Tensor};

/// Images (N, C, H, W) as f32 (digits keep their 0..255 pixel values), one class index
/// per image, and the class names.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub images: Tensor,
    pub labels: Vec<usize>,
    pub classes: Vec<String>,
}

impl Dataset {
    /// Checks that `images` is NCHW, that there is one label per image and that every
    /// label names a class.
    pub fn new(images: Tensor, labels: Vec<usize>, classes: Vec<String>) -> Result<Self> {
        let ds = Dataset {
            images,
            labels,
            classes,
        };
        ds.validate()?;
        Ok(ds)
    }

    /// The checks of [`Dataset::new`], for a data set whose public fields were edited.
    pub fn validate(&self) -> Result<()> {
        let shape = self.images.shape();
        if shape.len() != 4 {
            return Err(Error::Invalid(format!(
                "data set: images must be N x C x H x W, got shape {}",
                fmt_shape(shape)
            )));
        }
        if shape[0] != self.labels.len() {
            return Err(Error::Invalid(format!(
                "data set: {} images but {} labels",
                shape[0],
                self.labels.len()
            )));
        }
        if let Some((i, &l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l >= self.classes.len())
        {
            return Err(Error::Invalid(format!(
                "data set: image {i} has label {l} but there are only {} classes",
                self.classes.len()
            )));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// (N, C, H, W) of the images.
    pub fn dims(&self) -> Result<Dims4> {
        self.images.dims4()
    }

    /// The pixels (C*H*W, CHW order) of image `i`.
    pub fn image(&self, i: usize) -> Result<&[f32]> {
        let m = self.dims()?.image_len();
        let start = i.checked_mul(m);
        start
            .and_then(|s| self.images.data().get(s..s + m))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "data set: image {i} asked of a set of {} images",
                    self.len()
                ))
            })
    }

    /// The images at `indices`, in that order, as one (B, C, H, W) tensor.
    pub fn gather(&self, indices: &[usize]) -> Result<Tensor> {
        let d = self.dims()?;
        let mut out = Vec::with_capacity(indices.len() * d.image_len());
        for &i in indices {
            out.extend_from_slice(self.image(i)?);
        }
        Tensor::from_vec(&[indices.len(), d.c, d.h, d.w], out)
    }

    /// A new data set of the images at `indices` (in that order), with the same classes.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        let images = self.gather(indices)?;
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Dataset::new(images, labels, self.classes.clone())
    }

    /// Images per class, indexed like `classes`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l) {
                *c += 1;
            }
        }
        counts
    }

    /// The same images with labels renumbered to `classes` (for example a test folder
    /// that lacks one of the training classes); fails on a class not in `classes`.
    pub fn with_classes(mut self, classes: &[String]) -> Result<Dataset> {
        relabel(&self.classes, classes, &mut self.labels)?;
        self.classes = classes.to_vec();
        Ok(self)
    }

    /// The split `split` ("train", "test", ...) of the data set in `dir`: MNIST IDX files
    /// (`{split}-images-idx3-ubyte[.gz]` and labels) when they are there, else an image
    /// folder `dir/{split}/` (one subfolder per class) read with `folder`.
    pub fn load_split(
        dir: &Path,
        split: &str,
        folder: &super::folder::FolderOptions,
    ) -> Result<Dataset> {
        if super::idx::has_split(dir, split) {
            super::idx::load_split(dir, split)
        } else {
            super::folder::load_split(dir, split, folder)
        }
    }
}

/// Renumbers `labels`, indices into `from`, as indices of the same names in `to`; fails
/// on a class of `from` that `to` lacks.
pub(crate) fn relabel(from: &[String], to: &[String], labels: &mut [usize]) -> Result<()> {
    let map = from
        .iter()
        .map(|name| {
            to.iter().position(|c| c == name).ok_or_else(|| {
                Error::Invalid(format!(
                    "data set: class '{name}' is not one of the {} known classes",
                    to.len()
                ))
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    for l in labels {
        *l = *map
            .get(*l)
            .ok_or_else(|| Error::Invalid(format!("data set: label {l} names no class")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        let images = Tensor::from_vec(&[3, 1, 1, 2], vec![0., 1., 2., 3., 4., 5.]).unwrap();
        Dataset::new(images, vec![1, 0, 1], vec!["a".into(), "b".into()]).unwrap()
    }

    #[test]
    fn dataset_new_rejects_bad_labels_and_shapes() {
        let images = Tensor::zeros(&[2, 1, 1, 1]).unwrap();
        let err = Dataset::new(images.clone(), vec![0], vec!["a".into()]).unwrap_err();
        assert!(err.to_string().contains("2 images but 1 labels"), "{err}");
        let err = Dataset::new(images, vec![0, 1], vec!["a".into()]).unwrap_err();
        assert!(err.to_string().contains("image 1 has label 1"), "{err}");
        let flat = Tensor::zeros(&[2, 3]).unwrap();
        assert!(Dataset::new(flat, vec![0, 0], vec!["a".into()]).is_err());
    }

    #[test]
    fn dataset_subset_gathers_in_order() {
        let ds = tiny();
        let s = ds.subset(&[2, 0]).unwrap();
        assert_eq!(s.images.shape(), &[2, 1, 1, 2]);
        assert_eq!(s.images.data(), &[4., 5., 0., 1.]);
        assert_eq!(s.labels, vec![1, 1]);
        assert_eq!(ds.class_counts(), vec![1, 2]);
        assert!(ds.image(3).is_err());
        assert!(ds.gather(&[0, 7]).is_err());
    }

    #[test]
    fn dataset_with_classes_renumbers_labels() {
        let ds = tiny();
        let all: Vec<String> = ["z", "b", "a"].iter().map(|s| s.to_string()).collect();
        let r = ds.clone().with_classes(&all).unwrap();
        assert_eq!(r.labels, vec![1, 2, 1]);
        assert_eq!(r.classes, all);
        assert!(ds.with_classes(&all[..2]).is_err());
    }
}
