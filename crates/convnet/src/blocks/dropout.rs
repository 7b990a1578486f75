//! Dropout with inverted scaling: in training each element is kept with probability
//! 1 - rate and scaled by 1 / (1 - rate), so that the expected output equals the
//! input and nothing needs rescaling at test time. At test time dropout is the
//! identity: a layer in test mode simply skips this block (there is no test-mode
//! function to call). The mask is made by the caller's seeded generator and kept (by
//! the layer) for backward, which multiplies by the same mask.

use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Tensor};
use rand::Rng;
use rayon::prelude::*;

const BLOCK: &str = "dropout";

/// Below this many elements the product runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;
/// Fixed chunks, so that the split does not depend on the thread count.
const CHUNK: usize = 1 << 14;

/// A mask of 0 and 1/(1-rate) of the given shape; rate in [0, 1).
///
/// Each element draws one `f32` uniform in [0, 1) from `rng`, in row-major order, and
/// is dropped when that draw is below `rate`: the same generator state gives the same
/// mask.
pub fn make_mask<R: Rng>(shape: &[usize], rate: f32, rng: &mut R) -> Result<Tensor> {
    // Written so that NaN fails too.
    if !(0.0..1.0).contains(&rate) {
        return Err(Error::block(
            BLOCK,
            format!("rate {rate} must be in [0, 1)"),
        ));
    }
    let keep = 1.0 / (1.0 - rate);
    let mut mask = Tensor::zeros(shape).map_err(|e| Error::block(BLOCK, format!("mask: {e}")))?;
    for m in mask.data_mut() {
        *m = if rng.gen::<f32>() < rate { 0.0 } else { keep };
    }
    Ok(mask)
}

/// `y = x * mask`, elementwise.
pub fn forward(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    times_mask("x", x, mask)
}

/// `dx = dy * mask`, elementwise: the mask is the derivative.
pub fn backward(mask: &Tensor, dy: &Tensor) -> Result<Tensor> {
    times_mask("dy", dy, mask)
}

fn times_mask(what: &str, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if x.shape() != mask.shape() {
        return Err(Error::block(
            BLOCK,
            format!(
                "{what} has shape {} but the mask has shape {}",
                fmt_shape(x.shape()),
                fmt_shape(mask.shape())
            ),
        ));
    }
    let mut y = x.clone();
    let mul = |ys: &mut [f32], ms: &[f32]| {
        for (v, &m) in ys.iter_mut().zip(ms) {
            *v *= m;
        }
    };
    if y.len() < PARALLEL_MIN {
        mul(y.data_mut(), mask.data());
    } else {
        y.data_mut()
            .par_chunks_mut(CHUNK)
            .zip(mask.data().par_chunks(CHUNK))
            .for_each(|(ys, ms)| mul(ys, ms));
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random, Tolerance};
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    fn rng(seed: u64) -> Xoshiro256PlusPlus {
        Xoshiro256PlusPlus::seed_from_u64(seed)
    }

    #[test]
    fn mask_has_the_rate_and_unit_mean() {
        for &rate in &[0.0f32, 0.1, 0.5, 0.8] {
            let m = make_mask(&[20, 10, 30, 20], rate, &mut rng(3)).unwrap();
            let n = m.len() as f64;
            let zeros = m.data().iter().filter(|&&v| v == 0.0).count() as f64 / n;
            let keep = 1.0 / (1.0 - rate);
            assert!(
                m.data().iter().all(|&v| v == 0.0 || v == keep),
                "rate {rate}: values other than 0 and {keep}"
            );
            // 120,000 draws: the standard error of the fraction is below 0.0015.
            assert!(
                (zeros - rate as f64).abs() < 0.01,
                "rate {rate}: zeros {zeros}"
            );
            let mean = m.sum() / n;
            assert!((mean - 1.0).abs() < 0.03, "rate {rate}: mean {mean}");
        }
    }

    #[test]
    fn same_seed_same_mask_other_seed_other_mask() {
        let a = make_mask(&[2, 3, 5, 7], 0.5, &mut rng(11)).unwrap();
        let b = make_mask(&[2, 3, 5, 7], 0.5, &mut rng(11)).unwrap();
        let c = make_mask(&[2, 3, 5, 7], 0.5, &mut rng(12)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn forward_multiplies_by_the_mask() {
        let x = Tensor::from_vec(&[1, 1, 1, 4], vec![1.0, -2.0, 3.0, 4.0]).unwrap();
        let m = Tensor::from_vec(&[1, 1, 1, 4], vec![0.0, 2.0, 2.0, 0.0]).unwrap();
        assert_eq!(forward(&x, &m).unwrap().data(), &[0.0, -4.0, 6.0, 0.0]);
    }

    #[test]
    fn large_inputs_take_the_parallel_path_with_the_same_result() {
        let x = random(&[4, 8, 64, 64], 1);
        let m = make_mask(x.shape(), 0.3, &mut rng(2)).unwrap();
        let y = forward(&x, &m).unwrap();
        for i in (0..x.len()).step_by(997) {
            assert_eq!(y.data()[i], x.data()[i] * m.data()[i]);
        }
    }

    #[test]
    fn derivative_with_a_fixed_mask() {
        for (k, shape) in [[2, 3, 4, 5], [1, 1, 3, 2], [3, 2, 1, 1]]
            .iter()
            .enumerate()
        {
            let mask = make_mask(shape, 0.4, &mut rng(k as u64)).unwrap();
            let x = random(shape, 20 + k as u64);
            let r = check(
                &[x],
                |i| forward(&i[0], &mask),
                |_, dy| Ok(vec![Some(backward(&mask, dy)?)]),
                Tolerance::default(),
                k as u64,
            );
            assert!(r.is_ok(), "shape {shape:?}: {r:?}");
        }
    }

    #[test]
    fn bad_inputs_are_errors_naming_dropout() {
        for rate in [1.0f32, -0.1, 1.5, f32::NAN] {
            let e = make_mask(&[2, 2], rate, &mut rng(0)).unwrap_err();
            assert!(e.to_string().starts_with("dropout: rate"), "{e}");
        }
        let x = random(&[2, 3], 0);
        let m = random(&[3, 2], 0);
        let e = forward(&x, &m).unwrap_err().to_string();
        assert!(
            e.contains("dropout: x has shape 2x3 but the mask has shape 3x2"),
            "{e}"
        );
        let e = backward(&m, &x).unwrap_err().to_string();
        assert!(e.contains("dropout: dy has shape 2x3"), "{e}");
    }
}
