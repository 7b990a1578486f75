//! An in-memory labelled image set.

use crate::tensor::Tensor;

/// Images (N, C, H, W) as f32 (digits keep their 0..255 pixel values), one class index
/// per image, and the class names.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub images: Tensor,
    pub labels: Vec<usize>,
    pub classes: Vec<String>,
}
