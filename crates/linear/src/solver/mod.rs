//! The solvers of LIBLINEAR's formulations. Each works on one binary (or regression,
//! or one-class) problem whose rows already carry the bias feature when `-B` > 0;
//! multi-class strategies, probability estimates and model files live above.

use crate::sparse::Csr;

/// One problem handed to a solver: rows `x` and targets `y` (+1/-1 for
/// classification, real values for regression, unused for one-class).
#[derive(Clone, Copy, Debug)]
pub struct SubProblem<'a> {
    pub x: &'a Csr,
    pub y: &'a [f64],
}

/// What a solver needs besides the data, with LIBLINEAR's meanings.
#[derive(Clone, Copy, Debug)]
pub struct SolverParams {
    /// Stopping tolerance `-e` (the solver's own default already applied).
    pub eps: f64,
    /// Cost of positive and negative examples (C times the class weight `-wi`).
    pub c_pos: f64,
    pub c_neg: f64,
    /// Epsilon of the SVR loss (`-p`).
    pub p: f64,
    /// nu of the one-class SVM (`-n`).
    pub nu: f64,
    /// Index of the bias column, when `-B` > 0 and `-R` asks that it not be regularised.
    pub unregularized_bias: Option<usize>,
    /// Seed of the random coordinate order of the dual and L1 solvers.
    pub seed: u64,
}

#[cfg(test)]
impl SolverParams {
    /// C = 1 for both classes, p = 0.1, nu = 0.5, regularised bias, seed 1.
    pub(crate) fn for_tests(eps: f64) -> Self {
        SolverParams {
            eps,
            c_pos: 1.0,
            c_neg: 1.0,
            p: 0.1,
            nu: 0.5,
            unregularized_bias: None,
            seed: 1,
        }
    }
}

/// What a solver reports: iterations used and the final primal objective (for tests
/// against LIBLINEAR), and whether it stopped at its iteration limit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SolveInfo {
    pub iterations: usize,
    pub objective: f64,
    pub hit_max_iter: bool,
}

pub mod dual_cd;
pub mod l1;
pub mod mcsvm;
pub mod newton;
pub mod oneclass;
mod order;
mod rows;
