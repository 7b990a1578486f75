//! Solvers that turn gradients into parameter updates: SGD with momentum and weight
//! decay (MatConvNet's rule) and Adam. Gradients arrive summed over the batch, as the
//! objective is; the solver divides them by the batch size, so a learning rate means
//! what it means in MatConvNet and in PyTorch with a mean-reduced loss.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SolverKind {
    Sgd { momentum: f32 },
    Adam { beta1: f32, beta2: f32, eps: f32 },
}

impl SolverKind {
    pub fn adam() -> Self {
        SolverKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// Names of the state buffers kept per parameter (for checkpoints).
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            SolverKind::Sgd { .. } => &["momentum"],
            SolverKind::Adam { .. } => &["adam_m", "adam_v"],
        }
    }
}

/// A parameter as the solver sees it: its values, its batch-summed gradient and its
/// multipliers of the learning rate and of the weight decay.
pub struct ParamSlot<'a> {
    pub value: &'a mut [f32],
    pub grad: &'a [f32],
    pub lr_mult: f32,
    pub decay_mult: f32,
}

/// A solver with its per-parameter state, indexed by the parameter's position.
#[derive(Clone, Debug, PartialEq)]
pub struct Solver {
    pub kind: SolverKind,
    pub weight_decay: f32,
    /// `state[p][k]`: buffer `k` (see `SolverKind::state_names`) of parameter `p`.
    pub state: Vec<Vec<Vec<f32>>>,
    /// Updates done so far (Adam's bias correction).
    pub steps: u64,
}

impl Solver {
    pub fn new(kind: SolverKind, weight_decay: f32) -> Result<Self> {
        let bad = !weight_decay.is_finite()
            || weight_decay < 0.0
            || match kind {
                SolverKind::Sgd { momentum } => !(0.0..1.0).contains(&momentum),
                SolverKind::Adam { beta1, beta2, eps } => {
                    !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) || eps <= 0.0
                }
            };
        if bad {
            return Err(Error::Invalid(format!(
                "solver {kind:?} with weight decay {weight_decay}: momentum and betas must be in [0, 1), decay and eps non-negative"
            )));
        }
        Ok(Solver {
            kind,
            weight_decay,
            state: Vec::new(),
            steps: 0,
        })
    }

    /// One update of every parameter with rate `lr`, gradients summed over `batch` images.
    pub fn step(&mut self, params: &mut [ParamSlot<'_>], lr: f32, batch: usize) -> Result<()> {
        let nbuf = self.kind.state_names().len();
        if self.state.len() != params.len() {
            self.state = params
                .iter()
                .map(|p| vec![vec![0.0; p.value.len()]; nbuf])
                .collect();
        }
        self.steps += 1;
        let scale = 1.0 / batch.max(1) as f32;
        for (p, st) in params.iter_mut().zip(self.state.iter_mut()) {
            if p.grad.len() != p.value.len() || st.iter().any(|b| b.len() != p.value.len()) {
                return Err(Error::Invalid(format!(
                    "solver: a parameter of {} values has a gradient of {} values or a state of another size",
                    p.value.len(),
                    p.grad.len()
                )));
            }
            let rate = lr * p.lr_mult;
            let decay = self.weight_decay * p.decay_mult;
            match self.kind {
                SolverKind::Sgd { momentum } => {
                    for ((w, &g), m) in p.value.iter_mut().zip(p.grad).zip(st[0].iter_mut()) {
                        *m = momentum * *m - rate * (g * scale + decay * *w);
                        *w += *m;
                    }
                }
                SolverKind::Adam { beta1, beta2, eps } => {
                    let c1 = 1.0 - beta1.powi(self.steps.min(i32::MAX as u64) as i32);
                    let c2 = 1.0 - beta2.powi(self.steps.min(i32::MAX as u64) as i32);
                    let (ms, vs) = st.split_at_mut(1);
                    for (((w, &g), m), v) in p
                        .value
                        .iter_mut()
                        .zip(p.grad)
                        .zip(ms[0].iter_mut())
                        .zip(vs[0].iter_mut())
                    {
                        let g = g * scale + decay * *w;
                        *m = beta1 * *m + (1.0 - beta1) * g;
                        *v = beta2 * *v + (1.0 - beta2) * g * g;
                        *w -= rate * (*m / c1) / ((*v / c2).sqrt() + eps);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimise(kind: SolverKind, lr: f32) -> f32 {
        // f(w) = 0.5 * sum (w - 3)^2 over a "batch" of 2 images: gradient summed twice.
        let mut w = vec![0.0f32; 3];
        let mut s = Solver::new(kind, 0.0).unwrap();
        for _ in 0..500 {
            let g: Vec<f32> = w.iter().map(|&v| 2.0 * (v - 3.0)).collect();
            let mut slots = [ParamSlot {
                value: &mut w,
                grad: &g,
                lr_mult: 1.0,
                decay_mult: 1.0,
            }];
            s.step(&mut slots, lr, 2).unwrap();
        }
        w[0]
    }

    #[test]
    fn sgd_and_adam_reach_the_minimum() {
        assert!((minimise(SolverKind::Sgd { momentum: 0.9 }, 0.05) - 3.0).abs() < 1e-3);
        assert!((minimise(SolverKind::adam(), 0.05) - 3.0).abs() < 1e-2);
    }

    #[test]
    fn sgd_follows_matconvnet_rule() {
        let mut s = Solver::new(SolverKind::Sgd { momentum: 0.5 }, 0.1).unwrap();
        let mut w = vec![1.0f32];
        let g = vec![4.0f32];
        for _ in 0..2 {
            let mut slots = [ParamSlot {
                value: &mut w,
                grad: &g,
                lr_mult: 2.0,
                decay_mult: 1.0,
            }];
            s.step(&mut slots, 0.1, 4).unwrap();
        }
        // step 1: m = -0.2 * (1 + 0.1) = -0.22, w = 0.78
        // step 2: m = 0.5 * -0.22 - 0.2 * (1 + 0.078) = -0.3256, w = 0.4544
        assert!((w[0] - 0.4544).abs() < 1e-6, "{}", w[0]);
    }

    #[test]
    fn invalid_settings_are_errors() {
        assert!(Solver::new(SolverKind::Sgd { momentum: 1.5 }, 0.0).is_err());
        assert!(Solver::new(SolverKind::Sgd { momentum: 0.9 }, -1.0).is_err());
    }
}
