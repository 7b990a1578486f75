//! Weight initialisation: Gaussian with a fixed std (MatConvNet's examples use 0.01),
//! Xavier/Glorot and He. Biases start at zero, batch-norm gains at one. All draws come
//! from one seeded stream, in the order of the network's parameters.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// N(0, std^2).
    Gaussian { std: f32 },
    /// Glorot's normal: std = sqrt(2 / (fan_in + fan_out)).
    Xavier,
    /// He's normal for ReLU: std = sqrt(2 / fan_in).
    He,
}

impl Default for Init {
    fn default() -> Self {
        Init::Gaussian { std: 0.01 }
    }
}

impl Init {
    /// Parses `gaussian`, `xavier` (or `glorot`) and `he`; `std` is for `gaussian`.
    pub fn parse(name: &str, std: Option<f32>) -> Result<Init> {
        match name {
            "gaussian" => {
                let std = std.unwrap_or(0.01);
                if !(std >= 0.0 && std.is_finite()) {
                    return Err(Error::Invalid(format!(
                        "init std {std} must be non-negative and finite"
                    )));
                }
                Ok(Init::Gaussian { std })
            }
            "xavier" | "glorot" => Ok(Init::Xavier),
            "he" => Ok(Init::He),
            _ => Err(Error::Invalid(format!(
                "unknown init '{name}' (expected gaussian, xavier or he)"
            ))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Init::Gaussian { .. } => "gaussian",
            Init::Xavier => "xavier",
            Init::He => "he",
        }
    }

    /// The std for a filter bank of `shape` (out, in, kh, kw): fan-in is in*kh*kw,
    /// fan-out out*kh*kw.
    pub fn std_for(&self, shape: &[usize]) -> f32 {
        let receptive: usize = shape.iter().skip(2).product();
        let fan_in = shape.get(1).copied().unwrap_or(1) * receptive;
        let fan_out = shape.first().copied().unwrap_or(1) * receptive;
        match *self {
            Init::Gaussian { std } => std,
            Init::Xavier => (2.0 / (fan_in + fan_out).max(1) as f32).sqrt(),
            Init::He => (2.0 / fan_in.max(1) as f32).sqrt(),
        }
    }

    /// Fills `t` (a filter bank) with draws from `rng`.
    pub fn fill(&self, t: &mut Tensor, rng: &mut Xoshiro256PlusPlus) {
        let std = self.std_for(t.shape());
        // A std of zero (or a degenerate one) gives zeros rather than an error.
        match Normal::new(0.0f32, std) {
            Ok(n) => t.data_mut().iter_mut().for_each(|v| *v = n.sample(rng)),
            Err(_) => t.data_mut().fill(0.0),
        }
    }
}
