//! Training: solvers, learning-rate schedules, the epoch loop, statistics,
//! checkpoints, divergence checks and diagnostics.

pub mod checkpoint;
pub mod diagnostics;
pub mod exchange;
pub mod schedule;
pub mod solver;
pub mod stats;
pub mod trainer;

pub use diagnostics::{DiagnoseOptions, Diagnostics, Finding};
pub use exchange::{GradientExchange, NoExchange};
pub use schedule::Schedule;
pub use solver::{Solver, SolverKind};
pub use stats::{evaluate, EpochStats, Evaluation};
pub use trainer::{train, train_with, Progress, TrainOptions, TrainRun};
