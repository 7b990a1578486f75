//! Local response normalisation across channels (AlexNet), with MatConvNet's
//! parameters (`vl_nnnormalize` with `[n kappa alpha beta]`):
//!
//! `y_c = x_c / (kappa + alpha * sum_{c' in W(c)} x_{c'}^2)^beta`
//!
//! where `W(c)` is the `n` channels centred on c, clipped at the first and last
//! channel. `alpha` is *not* divided by `n` here: PyTorch's `LocalResponseNorm` and
//! Caffe divide it, so their `alpha` is this one times `n` (and PyTorch's `k` is
//! `kappa`). `n` must be odd so that the window is centred; `kappa > 0` and
//! `alpha >= 0` keep the base positive for any x.

use super::kernels::lrn::{self as kernel, Params};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

const BLOCK: &str = "lrn";

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LrnOpts {
    /// Channels in each window (odd).
    pub n: usize,
    pub kappa: f32,
    pub alpha: f32,
    pub beta: f32,
}

impl LrnOpts {
    /// The AlexNet paper's setting: n 5, kappa 2, alpha 1e-4, beta 0.75 (the paper
    /// does not divide alpha by n either; Caffe's AlexNet, with alpha 1e-4 divided
    /// by n, is a weaker normalisation).
    pub fn alexnet() -> Self {
        LrnOpts {
            n: 5,
            kappa: 2.0,
            alpha: 1e-4,
            beta: 0.75,
        }
    }

    /// Fails, naming the option, unless the options give a centred window and a
    /// positive base.
    pub fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::block(BLOCK, msg));
        if self.n == 0 || self.n.is_multiple_of(2) {
            return bad(format!("n {} must be odd and at least 1", self.n));
        }
        if !(self.kappa > 0.0 && self.kappa.is_finite()) {
            return bad(format!("kappa {} must be positive and finite", self.kappa));
        }
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return bad(format!(
                "alpha {} must be non-negative and finite",
                self.alpha
            ));
        }
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return bad(format!(
                "beta {} must be non-negative and finite",
                self.beta
            ));
        }
        Ok(())
    }

    fn params(&self, x: &Tensor) -> Result<Params> {
        self.check()?;
        let d = x
            .dims4()
            .map_err(|e| Error::block(BLOCK, format!("x: {e}")))?;
        Ok(Params {
            n: self.n,
            kappa: self.kappa,
            alpha: self.alpha,
            beta: self.beta,
            channels: d.c,
            plane: d.plane(),
        })
    }
}

pub fn forward(x: &Tensor, o: &LrnOpts) -> Result<Tensor> {
    let p = o.params(x)?;
    let mut y = x.clone();
    kernel::forward(x.data(), &p, y.data_mut());
    Ok(y)
}

pub fn backward(x: &Tensor, o: &LrnOpts, dy: &Tensor) -> Result<Tensor> {
    let p = o.params(x)?;
    dy.expect_shape(BLOCK, "dy", x.shape())?;
    let mut dx = x.clone();
    kernel::backward(x.data(), dy.data(), &p, dx.data_mut());
    Ok(dx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random, Tolerance};

    fn opts(n: usize, kappa: f32, alpha: f32, beta: f32) -> LrnOpts {
        LrnOpts {
            n,
            kappa,
            alpha,
            beta,
        }
    }

    fn close(a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!(
                (*x as f64 - y).abs() < 1e-6 * y.abs().max(1.0),
                "{a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn single_channel_divides_by_its_own_square() {
        let x = Tensor::from_vec(&[1, 1, 1, 3], vec![2.0, -1.0, 0.5]).unwrap();
        let y = forward(&x, &opts(5, 1.0, 1.0, 1.0)).unwrap();
        close(y.data(), &[2.0 / 5.0, -1.0 / 2.0, 0.5 / 1.25]);
        let y = forward(&x, &opts(1, 2.0, 0.5, 0.75)).unwrap();
        let want: Vec<f64> = [2.0f64, -1.0, 0.5]
            .iter()
            .map(|v| v / (2.0 + 0.5 * v * v).powf(0.75))
            .collect();
        close(y.data(), &want);
    }

    #[test]
    fn window_is_centred_and_clipped_and_alpha_is_not_divided() {
        // Four channels of one pixel, n = 3: windows {0,1}, {0,1,2}, {1,2,3}, {2,3}.
        let x = Tensor::from_vec(&[1, 4, 1, 1], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let y = forward(&x, &opts(3, 1.0, 0.1, 0.5)).unwrap();
        let s = [
            1.0 + 0.1 * 5.0,
            1.0 + 0.1 * 14.0,
            1.0 + 0.1 * 29.0,
            1.0 + 0.1 * 25.0,
        ];
        let want: Vec<f64> = (0..4).map(|c| (c + 1) as f64 / f64::sqrt(s[c])).collect();
        close(y.data(), &want);
        // Channels only mix at the same pixel and image: a second pixel and image
        // holding other values leave the first pixel's outputs alone.
        let mut v = vec![0.0f32; 16];
        for c in 0..4 {
            v[c * 2] = (c + 1) as f32;
            v[c * 2 + 1] = 9.0;
            v[8 + c * 2] = -7.0;
        }
        let x = Tensor::from_vec(&[2, 4, 1, 2], v).unwrap();
        let y = forward(&x, &opts(3, 1.0, 0.1, 0.5)).unwrap();
        let first: Vec<f32> = (0..4).map(|c| y.at4(0, c, 0, 0)).collect();
        close(&first, &want);
    }

    #[test]
    fn derivatives_for_window_sizes_channels_and_exponents() {
        let tol = Tolerance {
            eps: 1e-2,
            rtol: 1e-2,
            atol: 1e-3,
        };
        let settings = [
            (1.0, 0.5, 0.75),
            (0.5, 1.0, 1.0),
            (2.0, 0.3, 1.7),
            (1.0, 2.0, 0.5),
            (1.5, 0.0, 0.6),
        ];
        for n in [1, 3, 5] {
            for c in 1..=7 {
                for (k, &(kappa, alpha, beta)) in settings.iter().enumerate() {
                    let o = opts(n, kappa, alpha, beta);
                    let seed = (n * 100 + c * 10 + k) as u64;
                    let x = random(&[2, c, 2, 3], seed);
                    let r = check(
                        &[x],
                        |i| forward(&i[0], &o),
                        |i, dy| Ok(vec![Some(backward(&i[0], &o, dy)?)]),
                        tol,
                        seed,
                    );
                    assert!(r.is_ok(), "{o:?} channels {c}: {r:?}");
                }
            }
        }
    }

    #[test]
    fn parallel_path_matches_image_by_image() {
        let o = LrnOpts::alexnet();
        let x = random(&[4, 16, 24, 32], 3);
        let y = forward(&x, &o).unwrap();
        let dy = random(x.shape(), 4);
        let dx = backward(&x, &o, &dy).unwrap();
        for n in [0, 3] {
            let xi = x.slice_batch(n, 1).unwrap();
            let di = dy.slice_batch(n, 1).unwrap();
            assert_eq!(forward(&xi, &o).unwrap(), y.slice_batch(n, 1).unwrap());
            assert_eq!(
                backward(&xi, &o, &di).unwrap(),
                dx.slice_batch(n, 1).unwrap()
            );
        }
    }

    #[test]
    fn one_and_two_threads_give_identical_bits() {
        let o = LrnOpts::alexnet();
        let x = random(&[4, 16, 24, 32], 13);
        let dy = random(x.shape(), 14);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| (forward(&x, &o).unwrap(), backward(&x, &o, &dy).unwrap()))
        };
        assert_eq!(run(1), run(2));
    }

    #[test]
    fn bad_options_and_shapes_are_errors_naming_lrn() {
        let x = random(&[1, 3, 2, 2], 0);
        let cases = [
            (opts(0, 1.0, 1.0, 0.75), "n 0 must be odd"),
            (opts(4, 1.0, 1.0, 0.75), "n 4 must be odd"),
            (opts(3, 0.0, 1.0, 0.75), "kappa 0 must be positive"),
            (opts(3, -1.0, 1.0, 0.75), "kappa -1"),
            (opts(3, f32::NAN, 1.0, 0.75), "kappa NaN"),
            (opts(3, 1.0, -0.5, 0.75), "alpha -0.5"),
            (opts(3, 1.0, f32::INFINITY, 0.75), "alpha inf"),
            (opts(3, 1.0, 1.0, -1.0), "beta -1"),
        ];
        for (o, want) in cases {
            let e = forward(&x, &o).unwrap_err().to_string();
            assert!(e.starts_with("lrn: ") && e.contains(want), "{e}");
            assert!(backward(&x, &o, &x).is_err());
        }
        let o = LrnOpts::alexnet();
        let e = backward(&x, &o, &random(&[1, 3, 2, 1], 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lrn: dy has shape 1x3x2x1"), "{e}");
        let rank5 = Tensor::zeros(&[1, 3, 1, 1, 1]).unwrap();
        assert!(forward(&rank5, &o)
            .unwrap_err()
            .to_string()
            .starts_with("lrn: x: "));
        // Empty tensors are fine: nothing to normalise.
        let empty = Tensor::zeros(&[2, 0, 3, 3]).unwrap();
        assert_eq!(forward(&empty, &o).unwrap().len(), 0);
    }
}
