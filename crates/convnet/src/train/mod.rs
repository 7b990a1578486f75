//! Training: solvers, learning-rate schedules, the epoch loop, statistics,
//! checkpoints and divergence checks.

pub mod checkpoint;
pub mod schedule;
pub mod solver;
pub mod stats;
pub mod trainer;

pub use schedule::Schedule;
pub use solver::{Solver, SolverKind};
pub use stats::{evaluate, EpochStats, Evaluation};
pub use trainer::{train, Progress, TrainOptions, TrainRun};
