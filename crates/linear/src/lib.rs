//! LIBLINEAR's formulations and solvers, sparse data in the libsvm text format, and
//! LIBLINEAR's model files.

pub mod error;
pub mod libsvm;
pub mod model;
pub mod options;
pub mod problem;
pub mod solver;
pub mod sparse;
pub mod train;

pub use error::{Error, Result};
pub use model::Model;
pub use options::{Parameter, PredictOptions, SolverType, TrainOptions};
pub use problem::Problem;
