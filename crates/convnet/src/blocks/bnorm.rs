//! Batch normalisation per channel: in training the batch's moments, at test time
//! stored moments; then a learnable gain and bias.
//!
//! For channel c, with the moments taken over (N, H, W):
//! `y = gain[c] * (x - mean[c]) / std[c] + bias[c]`, `std = sqrt(var + eps)`, where
//! `var` is the biased batch variance (divided by N*H*W, as MatConvNet and PyTorch's
//! normalisation do). Sums run per channel in image order in f64, so results are the
//! same for any number of threads. Gain and bias hold C values (any shape of C
//! elements; their gradients take the same shape).

use super::kernels::bnorm::{self as kernel, Layout};
use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Tensor};

const BLOCK: &str = "bnorm";

/// Per-channel mean and standard deviation (sqrt(var + eps)).
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

#[derive(Clone, Debug)]
pub struct BnGrads {
    pub dx: Tensor,
    pub dgain: Tensor,
    pub dbias: Tensor,
}

/// Checks x, gain and bias, and returns x's layout.
fn layout(x: &Tensor, gain: &Tensor, bias: &Tensor) -> Result<Layout> {
    let d = x
        .dims4()
        .map_err(|e| Error::block(BLOCK, format!("x: {e}")))?;
    for (what, t) in [("gain", gain), ("bias", bias)] {
        if t.len() != d.c {
            return Err(Error::block(
                BLOCK,
                format!(
                    "{what} has shape {} ({} values) but x {d} has {} channels",
                    fmt_shape(t.shape()),
                    t.len(),
                    d.c
                ),
            ));
        }
    }
    if d.n * d.plane() == 0 {
        return Err(Error::block(
            BLOCK,
            format!("x {d} has no values per channel to take moments over"),
        ));
    }
    Ok(Layout {
        n: d.n,
        c: d.c,
        plane: d.plane(),
    })
}

/// A positive eps keeps `std` above zero for a constant channel.
fn check_eps(eps: f32) -> Result<()> {
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(Error::block(
            BLOCK,
            format!("eps {eps} must be positive and finite"),
        ));
    }
    Ok(())
}

/// The batch moments of x per channel (what `forward_train` normalises by).
pub fn moments(x: &Tensor, eps: f32) -> Result<Moments> {
    check_eps(eps)?;
    let d = x
        .dims4()
        .map_err(|e| Error::block(BLOCK, format!("x: {e}")))?;
    let ones = Tensor::full(&[d.c], 1.0)?;
    let l = layout(x, &ones, &ones)?;
    let (mean, std) = kernel::moments(x.data(), l, eps);
    Ok(Moments { mean, std })
}

/// Training mode: normalise by the batch's moments, which are returned too so that
/// the layer can update its running moments. `forward_test` with the returned
/// moments gives the same output, bit for bit.
pub fn forward_train(
    x: &Tensor,
    gain: &Tensor,
    bias: &Tensor,
    eps: f32,
) -> Result<(Tensor, Moments)> {
    check_eps(eps)?;
    let l = layout(x, gain, bias)?;
    let (mean, std) = kernel::moments(x.data(), l, eps);
    let m = Moments { mean, std };
    let y = apply(x, l, gain, bias, &m)?;
    Ok((y, m))
}

/// Test mode: normalise by the given moments (each std positive and finite).
pub fn forward_test(x: &Tensor, gain: &Tensor, bias: &Tensor, m: &Moments) -> Result<Tensor> {
    let l = layout(x, gain, bias)?;
    check_moments(m, l.c)?;
    apply(x, l, gain, bias, m)
}

/// Fails unless `m` holds `c` means and `c` positive, finite stds.
fn check_moments(m: &Moments, c: usize) -> Result<()> {
    if m.mean.len() != c || m.std.len() != c {
        return Err(Error::block(
            BLOCK,
            format!(
                "moments hold {} means and {} stds but x has {c} channels",
                m.mean.len(),
                m.std.len(),
            ),
        ));
    }
    if let Some((c, s)) = m
        .std
        .iter()
        .enumerate()
        .find(|(_, s)| !(**s > 0.0 && s.is_finite()))
    {
        return Err(Error::block(
            BLOCK,
            format!("moments: std of channel {c} is {s}, it must be positive and finite"),
        ));
    }
    Ok(())
}

fn apply(x: &Tensor, l: Layout, gain: &Tensor, bias: &Tensor, m: &Moments) -> Result<Tensor> {
    let (g, b) = (gain.data(), bias.data());
    let y = kernel::normalise(x.data(), l, &m.mean, &m.std, g, b);
    Tensor::from_vec(x.shape(), y)
}

/// Derivatives of the training-mode forward, through the batch moments as well (the
/// mean and std depend on every x of the channel).
pub fn backward(
    x: &Tensor,
    gain: &Tensor,
    bias: &Tensor,
    eps: f32,
    dy: &Tensor,
) -> Result<BnGrads> {
    check_eps(eps)?;
    let l = layout(x, gain, bias)?;
    let (mean, std) = kernel::moments(x.data(), l, eps);
    grads(x, gain, bias, &Moments { mean, std }, true, dy)
}

/// [`backward`] with the batch moments `m` that [`forward_train`] returned for this
/// `x`, so that they are not taken again (two passes over `x`).
pub fn backward_batch(
    x: &Tensor,
    gain: &Tensor,
    bias: &Tensor,
    m: &Moments,
    dy: &Tensor,
) -> Result<BnGrads> {
    grads(x, gain, bias, m, true, dy)
}

/// Derivatives of the test-mode forward with moments `m`: an affine map per channel,
/// so `dx = gain / std * dy` (what explaining a prediction of a trained network
/// differentiates).
pub fn backward_test(
    x: &Tensor,
    gain: &Tensor,
    bias: &Tensor,
    m: &Moments,
    dy: &Tensor,
) -> Result<BnGrads> {
    grads(x, gain, bias, m, false, dy)
}

fn grads(
    x: &Tensor,
    gain: &Tensor,
    bias: &Tensor,
    m: &Moments,
    batch_moments: bool,
    dy: &Tensor,
) -> Result<BnGrads> {
    let l = layout(x, gain, bias)?;
    check_moments(m, l.c)?;
    dy.expect_shape(BLOCK, "dy", x.shape())?;
    let (dx, dgain, dbias) = kernel::backward(
        x.data(),
        dy.data(),
        l,
        &m.mean,
        &m.std,
        gain.data(),
        batch_moments,
    );
    Ok(BnGrads {
        dx: Tensor::from_vec(x.shape(), dx)?,
        dgain: Tensor::from_vec(gain.shape(), dgain)?,
        dbias: Tensor::from_vec(bias.shape(), dbias)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random, Tolerance};

    fn params(c: usize, seed: u64) -> (Tensor, Tensor) {
        let mut g = random(&[c], seed);
        for v in g.data_mut() {
            // Gains away from zero, of both signs, so every path carries weight.
            *v += v.signum() * 0.5;
        }
        (g, random(&[c], seed + 1))
    }

    #[test]
    fn two_values_per_channel_give_minus_and_plus_one() {
        // Channel 0 holds 1 and 3 (mean 2, var 1); channel 1 holds -5 and 5 (var 25).
        let x = Tensor::from_vec(&[2, 2, 1, 1], vec![1.0, -5.0, 3.0, 5.0]).unwrap();
        let ones = Tensor::full(&[2], 1.0).unwrap();
        let zeros = Tensor::zeros(&[2]).unwrap();
        let (y, m) = forward_train(&x, &ones, &zeros, 1e-8).unwrap();
        assert_eq!(m.mean, vec![2.0, 0.0]);
        assert!((m.std[0] - 1.0).abs() < 1e-6 && (m.std[1] - 5.0).abs() < 1e-6);
        for (a, b) in y.data().iter().zip([-1.0, -1.0, 1.0, 1.0]) {
            assert!((a - b).abs() < 1e-6, "{:?}", y.data());
        }
        // Then gain and bias: channel 0 scaled by 3 and shifted by 10, channel 1 by -2, 1.
        let g = Tensor::from_vec(&[2], vec![3.0, -2.0]).unwrap();
        let b = Tensor::from_vec(&[2], vec![10.0, 1.0]).unwrap();
        let (y, _) = forward_train(&x, &g, &b, 1e-8).unwrap();
        for (a, e) in y.data().iter().zip([7.0, 3.0, 13.0, -1.0]) {
            assert!((a - e).abs() < 1e-5, "{:?}", y.data());
        }
    }

    #[test]
    fn moments_are_over_batch_and_space_with_biased_variance() {
        // One channel over 2 images of 1x3: values 0..6, mean 2.5, var 35/12.
        let x = Tensor::from_vec(&[2, 1, 1, 3], (0..6).map(|v| v as f32).collect()).unwrap();
        let m = moments(&x, 0.01).unwrap();
        assert_eq!(m.mean, vec![2.5]);
        assert!((m.std[0] as f64 - (35.0f64 / 12.0 + 0.01).sqrt()).abs() < 1e-6);
        // A second channel must not mix in: interleave a constant channel.
        let mut v = Vec::new();
        for n in 0..2 {
            v.extend((0..3).map(|i| (n * 3 + i) as f32));
            v.extend([7.0; 3]);
        }
        let x = Tensor::from_vec(&[2, 2, 1, 3], v).unwrap();
        let m = moments(&x, 0.01).unwrap();
        assert_eq!(m.mean, vec![2.5, 7.0]);
        assert!((m.std[1] - 0.1).abs() < 1e-7);
    }

    #[test]
    fn test_mode_with_the_batch_moments_matches_training_mode() {
        let x = random(&[3, 4, 5, 2], 1);
        let (g, b) = params(4, 2);
        let (y, m) = forward_train(&x, &g, &b, 1e-4).unwrap();
        assert_eq!(forward_test(&x, &g, &b, &m).unwrap(), y);
        let other = Moments {
            mean: vec![0.0; 4],
            std: vec![1.0; 4],
        };
        let z = forward_test(&x, &g, &b, &other).unwrap();
        let (n, c, i) = (1, 2, 3);
        let idx = (n * 4 + c) * 10 + i;
        assert_eq!(z.data()[idx], x.data()[idx] * g.data()[c] + b.data()[c]);
    }

    #[test]
    fn output_has_zero_mean_and_unit_variance_before_gain() {
        let x = random(&[4, 3, 6, 5], 9);
        let ones = Tensor::full(&[3], 1.0).unwrap();
        let zeros = Tensor::zeros(&[3]).unwrap();
        let (y, _) = forward_train(&x, &ones, &zeros, 1e-6).unwrap();
        let m = moments(&y, 1e-6).unwrap();
        for c in 0..3 {
            assert!(m.mean[c].abs() < 1e-5, "{m:?}");
            assert!((m.std[c] - 1.0).abs() < 1e-4, "{m:?}");
        }
    }

    #[test]
    fn derivatives_for_x_gain_and_bias() {
        let tol = Tolerance {
            eps: 1e-2,
            rtol: 1e-2,
            atol: 1e-3,
        };
        let shapes = [
            [2, 3, 2, 3],
            [3, 1, 4, 1],
            [1, 2, 3, 5],
            [4, 5, 1, 2],
            [2, 4, 3, 2],
        ];
        for (k, s) in shapes.iter().enumerate() {
            for eps in [1e-4f32, 0.5] {
                let seed = 10 * k as u64;
                let x = random(s, seed);
                let (g, b) = params(s[1], seed + 1);
                let r = check(
                    &[x, g, b],
                    |i| Ok(forward_train(&i[0], &i[1], &i[2], eps)?.0),
                    |i, dy| {
                        let gr = backward(&i[0], &i[1], &i[2], eps, dy)?;
                        Ok(vec![Some(gr.dx), Some(gr.dgain), Some(gr.dbias)])
                    },
                    tol,
                    seed + 2,
                );
                assert!(r.is_ok(), "shape {s:?} eps {eps}: {r:?}");
            }
        }
    }

    #[test]
    fn test_mode_derivatives_for_x_gain_and_bias() {
        let tol = Tolerance {
            eps: 1e-2,
            rtol: 1e-2,
            atol: 1e-3,
        };
        for (k, s) in [[2, 3, 2, 3], [1, 4, 3, 5], [3, 1, 1, 1]]
            .iter()
            .enumerate()
        {
            let seed = 40 + 10 * k as u64;
            let x = random(s, seed);
            let (g, b) = params(s[1], seed + 1);
            let mean: Vec<f32> = random(&[s[1]], seed + 2).data().to_vec();
            let std = random(&[s[1]], seed + 3)
                .data()
                .iter()
                .map(|v| v.abs() + 0.3)
                .collect();
            let m = Moments { mean, std };
            let r = check(
                &[x, g, b],
                |i| forward_test(&i[0], &i[1], &i[2], &m),
                |i, dy| {
                    let gr = backward_test(&i[0], &i[1], &i[2], &m, dy)?;
                    Ok(vec![Some(gr.dx), Some(gr.dgain), Some(gr.dbias)])
                },
                tol,
                seed + 4,
            );
            assert!(r.is_ok(), "shape {s:?}: {r:?}");
        }
        let x = random(&[1, 2, 1, 1], 1);
        let (g, b) = params(2, 2);
        let bad = Moments {
            mean: vec![0.0; 2],
            std: vec![1.0, 0.0],
        };
        assert!(backward_test(&x, &g, &b, &bad, &x).is_err());
    }

    #[test]
    fn parallel_path_gives_the_same_as_a_direct_computation() {
        // Large enough to run per channel in parallel.
        let x = random(&[8, 6, 32, 24], 5);
        let (g, b) = params(6, 6);
        let (y, m) = forward_train(&x, &g, &b, 1e-3).unwrap();
        let c = 4;
        let vals: Vec<f64> = (0..8)
            .flat_map(|n| (0..768).map(move |i| (n, i)))
            .map(|(n, i)| x.data()[(n * 6 + c) * 768 + i] as f64)
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        assert!((m.mean[c] as f64 - mean).abs() < 1e-6);
        assert!((m.std[c] as f64 - (var + 1e-3).sqrt()).abs() < 1e-6);
        let idx = (7 * 6 + c) * 768 + 100;
        let want = g.data()[c] as f64 * (x.data()[idx] as f64 - mean) / (var + 1e-3).sqrt()
            + b.data()[c] as f64;
        assert!((y.data()[idx] as f64 - want).abs() < 1e-5);
        // Sums over dy of the backward: dbias is sum dy.
        let dy = random(x.shape(), 7);
        let gr = backward(&x, &g, &b, 1e-3, &dy).unwrap();
        let db: f64 = (0..8)
            .flat_map(|n| (0..768).map(move |i| (n * 6 + c) * 768 + i))
            .map(|i| dy.data()[i] as f64)
            .sum();
        assert!((gr.dbias.data()[c] as f64 - db).abs() < 1e-3);
    }

    /// The backward given the forward's moments is the backward that takes them
    /// again, bit for bit (the graph hands the moments over), and moments of the
    /// wrong size are an error.
    #[test]
    fn backward_with_the_forward_moments_gives_the_same_bits() {
        for shape in [[2, 3, 2, 3], [8, 6, 32, 24]] {
            let x = random(&shape, 21);
            let dy = random(&shape, 22);
            let (g, b) = params(shape[1], 23);
            let (_, m) = forward_train(&x, &g, &b, 1e-3).unwrap();
            let want = backward(&x, &g, &b, 1e-3, &dy).unwrap();
            let got = backward_batch(&x, &g, &b, &m, &dy).unwrap();
            let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert!(
                bits(&got.dx) == bits(&want.dx)
                    && bits(&got.dgain) == bits(&want.dgain)
                    && bits(&got.dbias) == bits(&want.dbias),
                "{shape:?}"
            );
        }
        let x = random(&[2, 3, 2, 2], 24);
        let (g, b) = params(3, 25);
        let short = Moments {
            mean: vec![0.0; 2],
            std: vec![1.0; 2],
        };
        let e = backward_batch(&x, &g, &b, &short, &x)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bnorm") && e.contains("3 channels"), "{e}");
    }

    #[test]
    fn one_and_two_threads_give_identical_bits() {
        let x = random(&[8, 6, 32, 24], 15);
        let dy = random(x.shape(), 16);
        let (g, b) = params(6, 17);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (y, m) = forward_train(&x, &g, &b, 1e-3).unwrap();
                let gr = backward(&x, &g, &b, 1e-3, &dy).unwrap();
                (y, m, gr.dx, gr.dgain, gr.dbias)
            })
        };
        let (a, b2) = (run(1), run(2));
        assert!(a.0 == b2.0 && a.1 == b2.1 && a.2 == b2.2 && a.3 == b2.3 && a.4 == b2.4);
    }

    #[test]
    fn bad_inputs_are_errors_naming_bnorm() {
        let x = random(&[2, 3, 2, 2], 0);
        let (g, b) = params(3, 1);
        let (g2, _) = params(2, 1);
        let expect = |r: Result<()>, what: &str| {
            let e = r.unwrap_err().to_string();
            assert!(e.starts_with("bnorm: ") && e.contains(what), "{e}");
        };
        expect(
            forward_train(&x, &g2, &b, 1e-4).map(|_| ()),
            "gain has shape 2 (2 values) but x 2x3x2x2 has 3 channels",
        );
        expect(
            forward_train(&x, &g, &g2, 1e-4).map(|_| ()),
            "bias has shape 2",
        );
        for eps in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            expect(forward_train(&x, &g, &b, eps).map(|_| ()), "eps");
            expect(backward(&x, &g, &b, eps, &x).map(|_| ()), "eps");
        }
        let empty = Tensor::zeros(&[0, 3, 2, 2]).unwrap();
        expect(
            forward_train(&empty, &g, &b, 1e-4).map(|_| ()),
            "no values per channel",
        );
        let rank5 = Tensor::zeros(&[1, 3, 1, 1, 1]).unwrap();
        expect(forward_train(&rank5, &g, &b, 1e-4).map(|_| ()), "x: ");
        let dy = random(&[2, 3, 2, 1], 0);
        expect(
            backward(&x, &g, &b, 1e-4, &dy).map(|_| ()),
            "dy has shape 2x3x2x1",
        );
        let short = Moments {
            mean: vec![0.0; 2],
            std: vec![1.0; 3],
        };
        expect(forward_test(&x, &g, &b, &short).map(|_| ()), "2 means");
        let zero_std = Moments {
            mean: vec![0.0; 3],
            std: vec![1.0, 0.0, 1.0],
        };
        expect(
            forward_test(&x, &g, &b, &zero_std).map(|_| ()),
            "std of channel 1 is 0",
        );
    }
}
