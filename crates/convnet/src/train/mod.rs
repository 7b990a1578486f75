//! Training: solvers, schedules, the epoch loop, statistics and checkpoints.
