//! Numerical derivative checks: the proof that a block's backward is its forward's
//! derivative. Each element of each checked input is perturbed in turn; the central
//! difference of `z = <p, f(x)>` for a fixed random projection `p` is compared with
//! the backward result for `dz/dy = p`.

use crate::error::Result;
use crate::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Step and tolerances of a check: an element passes when
/// `|numeric - analytic| <= atol + rtol * max(|numeric|, |analytic|)`.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub eps: f32,
    pub rtol: f64,
    pub atol: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            eps: 1e-2,
            rtol: 1e-2,
            atol: 2e-3,
        }
    }
}

/// A tensor of uniform values in [-1, 1) from `seed`.
pub fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut t = Tensor::zeros(shape).expect("test shape");
    for v in t.data_mut() {
        *v = rng.gen_range(-1.0..1.0);
    }
    t
}

/// A tensor whose values are a shuffled, evenly spaced grid in [-1, 1]: no two values
/// are closer than 2/len, so a perturbation of `eps` < 1/len never changes which
/// element is a maximum or which side of zero a value is on (for max pooling, ReLU).
pub fn spaced(shape: &[usize], seed: u64) -> Tensor {
    let mut t = Tensor::zeros(shape).expect("test shape");
    let n = t.len();
    let mut vals: Vec<f32> = (0..n)
        .map(|i| -1.0 + (2 * i + 1) as f32 / n.max(1) as f32)
        .collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for i in (1..n).rev() {
        vals.swap(i, rng.gen_range(0..=i));
    }
    t.data_mut().copy_from_slice(&vals);
    t
}

/// Checks the gradients of `forward` with respect to each input whose backward result
/// is `Some`. `backward(inputs, dzdy)` returns one entry per input (None for inputs
/// that are not differentiated, such as labels). Returns a description of the worst
/// mismatch as the error, so that a test can print it.
pub fn check<F, B>(
    inputs: &[Tensor],
    forward: F,
    backward: B,
    tol: Tolerance,
    seed: u64,
) -> std::result::Result<(), String>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
    B: Fn(&[Tensor], &Tensor) -> Result<Vec<Option<Tensor>>>,
{
    let y = forward(inputs).map_err(|e| format!("forward failed: {e}"))?;
    let p = random(y.shape(), seed ^ 0x9e37_79b9);
    let grads = backward(inputs, &p).map_err(|e| format!("backward failed: {e}"))?;
    if grads.len() != inputs.len() {
        return Err(format!(
            "backward gave {} gradients for {} inputs",
            grads.len(),
            inputs.len()
        ));
    }
    let mut checked = 0;
    for (k, g) in grads.iter().enumerate() {
        let Some(g) = g else { continue };
        if g.shape() != inputs[k].shape() {
            return Err(format!(
                "gradient {k} has shape {:?}, input has {:?}",
                g.shape(),
                inputs[k].shape()
            ));
        }
        let mut xs = inputs.to_vec();
        for i in 0..xs[k].len() {
            let orig = xs[k].data()[i];
            xs[k].data_mut()[i] = orig + tol.eps;
            let zp = forward(&xs).map_err(|e| e.to_string())?.dot(&p);
            xs[k].data_mut()[i] = orig - tol.eps;
            let zm = forward(&xs).map_err(|e| e.to_string())?.dot(&p);
            xs[k].data_mut()[i] = orig;
            let num = (zp - zm) / (2.0 * tol.eps as f64);
            let ana = g.data()[i] as f64;
            let bound = tol.atol + tol.rtol * num.abs().max(ana.abs());
            // A NaN on either side fails the check, which `>` alone would let through.
            let within = matches!(
                (num - ana).abs().partial_cmp(&bound),
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            );
            if !within {
                return Err(format!(
                    "input {k} element {i} of shape {:?}: numeric {num:.6} analytic {ana:.6}",
                    inputs[k].shape()
                ));
            }
            checked += 1;
        }
    }
    if checked == 0 {
        return Err("no gradient was checked".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: &[Tensor]) -> Result<Tensor> {
        let mut y = x[0].clone();
        for v in y.data_mut() {
            *v = *v * *v;
        }
        Ok(y)
    }

    #[test]
    fn accepts_a_right_derivative() {
        let x = random(&[2, 3], 1);
        let r = check(
            &[x],
            square,
            |x, p| {
                let mut g = p.clone();
                for (gi, &xi) in g.data_mut().iter_mut().zip(x[0].data()) {
                    *gi *= 2.0 * xi;
                }
                Ok(vec![Some(g)])
            },
            Tolerance::default(),
            7,
        );
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn rejects_a_wrong_derivative() {
        let x = random(&[2, 3], 1);
        let r = check(
            &[x],
            square,
            |x, p| {
                let mut g = p.clone();
                for (gi, &xi) in g.data_mut().iter_mut().zip(x[0].data()) {
                    *gi *= 1.9 * xi;
                }
                Ok(vec![Some(g)])
            },
            Tolerance::default(),
            7,
        );
        assert!(r.is_err());
    }

    #[test]
    fn spaced_values_are_distinct() {
        let t = spaced(&[3, 4], 3);
        let mut v = t.data().to_vec();
        v.sort_by(f32::total_cmp);
        assert!(v.windows(2).all(|w| w[1] - w[0] > 0.1));
    }
}
