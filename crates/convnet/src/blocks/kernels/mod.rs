//! CPU kernels behind the blocks: the loops and matrix products, kept apart from each
//! block's option checks and shape rules so that another backend can add its own.
pub mod eltwise;
pub mod pool;

pub mod bnorm;
pub mod conv_gemm;
pub mod cpu;
pub mod fc;
pub mod gemm;
pub mod im2col;
pub mod lrn;
pub mod microkernel;
pub mod phases;
pub mod sgemm;
pub mod transpose;
pub mod winograd;
