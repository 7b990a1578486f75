//! convnet: convolutional network blocks, networks built from them, and training.
//!
//! Layers, imports pointing down only: [`tensor`] < [`blocks`] < [`net`] < [`train`];
//! [`data`] knows tensors only. The library never prints and never exits: every
//! failure is an [`Error`] that names the block, layer, file or line concerned.

pub mod atomic;
pub mod blocks;
pub mod data;
pub mod device;
pub mod error;
pub mod gradcheck;
pub mod net;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use tensor::{Dims4, Tensor};
