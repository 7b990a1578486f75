//! Data sets, batching, normalisation and jittering. Knows tensors, not networks.

pub mod batch;
pub mod dataset;
pub mod digits;
pub mod folder;
pub mod folds;
pub mod idx;
pub mod jitter;
pub mod letters;
pub mod normalize;
pub mod shard;
pub mod source;
