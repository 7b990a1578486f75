//! Learning-rate schedules, indexed by 0-based epoch.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate every epoch.
    Constant { lr: f32 },
    /// One rate per epoch; the last is kept for later epochs (MatConvNet's list).
    List { rates: Vec<f32> },
    /// `lr * gamma^(epoch / every)`.
    Step { lr: f32, gamma: f32, every: usize },
    /// Cosine from `lr` down to `min_lr` over `epochs` epochs.
    Cosine { lr: f32, min_lr: f32, epochs: usize },
}

impl Schedule {
    /// Rejects rates that are not finite and positive, and empty or zero periods.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Invalid(format!("learning-rate schedule: {what}")));
        let ok = |v: f32| v.is_finite() && v > 0.0;
        match self {
            Schedule::Constant { lr } if !ok(*lr) => bad("the rate must be finite and positive"),
            Schedule::List { rates } if rates.is_empty() => bad("the list of rates is empty"),
            Schedule::List { rates } if !rates.iter().all(|&r| ok(r)) => {
                bad("every rate in the list must be finite and positive")
            }
            Schedule::Step { lr, gamma, every } if !ok(*lr) || !ok(*gamma) || *every == 0 => {
                bad("step decay needs a positive rate, a positive gamma and a period of at least one epoch")
            }
            Schedule::Cosine { lr, min_lr, epochs }
                if !ok(*lr) || !min_lr.is_finite() || *min_lr < 0.0 || *epochs == 0 =>
            {
                bad("cosine needs a positive rate, a non-negative minimum and at least one epoch")
            }
            _ => Ok(()),
        }
    }

    /// The rate of 0-based `epoch`.
    pub fn lr(&self, epoch: usize) -> f32 {
        match self {
            Schedule::Constant { lr } => *lr,
            Schedule::List { rates } => rates.get(epoch).or(rates.last()).copied().unwrap_or(0.0),
            Schedule::Step { lr, gamma, every } => {
                lr * gamma.powi((epoch / (*every).max(1)) as i32)
            }
            Schedule::Cosine { lr, min_lr, epochs } => {
                let t = (epoch.min(*epochs) as f32) / (*epochs).max(1) as f32;
                min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f32::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_per_epoch() {
        let s = Schedule::List {
            rates: vec![0.1, 0.01],
        };
        assert_eq!((s.lr(0), s.lr(1), s.lr(7)), (0.1, 0.01, 0.01));
        let s = Schedule::Step {
            lr: 1.0,
            gamma: 0.5,
            every: 2,
        };
        assert_eq!((s.lr(0), s.lr(1), s.lr(2), s.lr(5)), (1.0, 1.0, 0.5, 0.25));
        let s = Schedule::Cosine {
            lr: 1.0,
            min_lr: 0.0,
            epochs: 4,
        };
        assert!(
            (s.lr(0) - 1.0).abs() < 1e-6 && (s.lr(2) - 0.5).abs() < 1e-6 && s.lr(4).abs() < 1e-6
        );
    }

    #[test]
    fn bad_schedules_are_rejected() {
        assert!(Schedule::Constant { lr: -1.0 }.validate().is_err());
        assert!(Schedule::List { rates: vec![] }.validate().is_err());
        assert!(Schedule::Step {
            lr: 0.1,
            gamma: 0.1,
            every: 0
        }
        .validate()
        .is_err());
        assert!(Schedule::Constant { lr: 0.1 }.validate().is_ok());
    }
}
