//! LIBLINEAR's formulations and solvers, sparse data in the libsvm text format, and
//! LIBLINEAR's model files.

pub mod solver;
pub mod sparse;
