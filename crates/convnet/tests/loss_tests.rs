//! Losses: hand-computed values, stability, numerical derivatives with and without
//! weights over several class counts and spatial sizes, and bad inputs.

use convnet::blocks::loss::{self, LossKind};
use convnet::gradcheck::{self, Tolerance};
use convnet::Tensor;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape, v.to_vec()).unwrap()
}

fn close(a: f32, b: f64) -> bool {
    (a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs())
}

#[test]
fn softmax_log_by_hand() {
    let x = t(&[1, 2], &[0.0, 2f32.ln()]);
    let v = loss::forward(&x, &t(&[1], &[1.0]), None, LossKind::SoftmaxLog).unwrap();
    assert!(close(v, 1.5f64.ln()), "{v}");
    let v = loss::forward(&x, &t(&[1], &[0.0]), None, LossKind::SoftmaxLog).unwrap();
    assert!(close(v, 3f64.ln()), "{v}");
    // Far apart scores: log-sum-exp keeps it finite and exact.
    let x = t(&[1, 2], &[1000.0, 0.0]);
    let v = loss::forward(&x, &t(&[1], &[1.0]), None, LossKind::SoftmaxLog).unwrap();
    assert!(close(v, 1000.0), "{v}");
    let g = loss::backward(&x, &t(&[1], &[1.0]), None, LossKind::SoftmaxLog, 2.0).unwrap();
    assert_eq!(g.data(), &[2.0, -2.0]);
}

#[test]
fn binary_losses_by_hand() {
    // Three scores with labels +1, +1, -1, and one ignored (label 0).
    let x = t(&[4, 1], &[0.3, 2.0, 0.5, -7.0]);
    let y = t(&[4, 1], &[1.0, 1.0, -1.0, 0.0]);
    let v = loss::forward(&x, &y, None, LossKind::Hinge).unwrap();
    assert!(close(v, 0.7 + 0.0 + 1.5), "{v}");
    let g = loss::backward(&x, &y, None, LossKind::Hinge, 1.0).unwrap();
    assert_eq!(g.data(), &[-1.0, 0.0, 1.0, 0.0]);
    let v = loss::forward(&x, &y, None, LossKind::Logistic).unwrap();
    let want: f64 = [(-0.3f64), -2.0, 0.5].iter().map(|z| z.exp().ln_1p()).sum();
    assert!(close(v, want), "{v} {want}");
    // Stable at extremes: log(1 + e^100) is 100, log(1 + e^-100) about e^-100.
    let v = loss::forward(
        &t(&[2, 1], &[-100.0, 100.0]),
        &t(&[2, 1], &[1.0, 1.0]),
        None,
        LossKind::Logistic,
    )
    .unwrap();
    assert!(close(v, 100.0), "{v}");
}

#[test]
fn multi_hinge_by_hand() {
    // Two instances with the same scores (1, 3, 2.5) and labels 1 and 0.
    let x = t(&[2, 3], &[1.0, 3.0, 2.5, 1.0, 3.0, 2.5]);
    let l = t(&[2], &[1.0, 0.0]);
    let v = loss::forward(&x, &l, None, LossKind::MultiHinge).unwrap();
    assert!(close(v, 0.5 + 3.0), "{v}");
    let g = loss::backward(&x, &l, None, LossKind::MultiHinge, 1.0).unwrap();
    assert_eq!(g.data(), &[0.0, -1.0, 1.0, -1.0, 1.0, 0.0]);
}

#[test]
fn class_and_top_k_errors_count_by_hand() {
    // Scores of 4 instances over 4 classes; the label's rank is 0, 1, 2, 3.
    let x = t(
        &[4, 4],
        &[
            0.9, 0.1, 0.0, 0.0, // label 0: best
            0.5, 0.7, 0.1, 0.0, // label 0: second
            0.1, 0.5, 0.9, 0.0, // label 0: third
            0.0, 0.1, 0.2, 0.3, // label 0: last
        ],
    );
    let l = t(&[4, 1, 1, 1], &[0.0, 0.0, 0.0, 0.0]);
    let count = |k| loss::forward(&x, &l, None, k).unwrap();
    assert_eq!(count(LossKind::ClassError), 3.0);
    assert_eq!(count(LossKind::TopKError(1)), 3.0);
    assert_eq!(count(LossKind::TopKError(2)), 2.0);
    assert_eq!(count(LossKind::TopKError(3)), 1.0);
    assert_eq!(count(LossKind::TopKError(4)), 0.0);
    // Ties go to the earlier class: label 1 tied with class 0 counts as an error.
    let tie = t(&[1, 2], &[0.5, 0.5]);
    assert_eq!(
        loss::forward(&tie, &t(&[1], &[1.0]), None, LossKind::ClassError).unwrap(),
        1.0
    );
    assert_eq!(
        loss::forward(&tie, &t(&[1], &[0.0]), None, LossKind::ClassError).unwrap(),
        0.0
    );
    // Weights scale each instance; a weight of 0 ignores one.
    let w = t(&[4, 1, 1, 1], &[5.0, 2.0, 0.0, 0.5]);
    assert_eq!(
        loss::forward(&x, &l, Some(&w), LossKind::ClassError).unwrap(),
        2.5
    );
}

#[test]
fn losses_at_spatial_locations_sum_over_them() {
    // One image, 2 classes, 1x2 locations: channel-major layout (c, h, w).
    let x = t(&[1, 2, 1, 2], &[0.0, 2f32.ln(), 2f32.ln(), 0.0]);
    let l = t(&[1, 1, 1, 2], &[1.0, 0.0]);
    // Location 0 scores (0, ln 2) label 1; location 1 scores (ln 2, 0) label 0.
    let v = loss::forward(&x, &l, None, LossKind::SoftmaxLog).unwrap();
    assert!(close(v, 2.0 * 1.5f64.ln()), "{v}");
    let w = t(&[1, 1, 1, 2], &[0.0, 3.0]);
    let v = loss::forward(&x, &l, Some(&w), LossKind::SoftmaxLog).unwrap();
    assert!(close(v, 3.0 * 1.5f64.ln()), "{v}");
}

fn classes(shape: &[usize], c: usize, seed: u64) -> Tensor {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let v = (0..shape.iter().product())
        .map(|_| rng.gen_range(0..c) as f32)
        .collect();
    Tensor::from_vec(shape, v).unwrap()
}

fn signs(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let v = (0..shape.iter().product())
        .map(|_| [-1.0, 0.0, 1.0][rng.gen_range(0..3)])
        .collect();
    Tensor::from_vec(shape, v).unwrap()
}

/// Weights in [0, 2) with every third one exactly 0.
fn weights(shape: &[usize], seed: u64) -> Tensor {
    let mut w = gradcheck::random(shape, seed);
    for (i, v) in w.data_mut().iter_mut().enumerate() {
        *v = if i % 3 == 0 { 0.0 } else { *v + 1.0 };
    }
    w
}

#[test]
fn derivatives_match_with_and_without_weights() {
    let tol = Tolerance {
        eps: 4e-3,
        rtol: 1e-2,
        atol: 3e-3,
    };
    let kinds = [
        LossKind::SoftmaxLog,
        LossKind::Logistic,
        LossKind::Hinge,
        LossKind::MultiHinge,
    ];
    let mut seed = 0;
    for kind in kinds {
        for c in [2, 3, 5] {
            for (h, w) in [(1, 1), (2, 3), (3, 1)] {
                for weighted in [false, true] {
                    seed += 1;
                    let shape = [2, c, h, w];
                    // 3.3 x spaced (len <= 60, never a multiple of 33): the hinge kinks
                    // (y x = 1, x_l - x_k = 1) sit at least 0.01 from every score and
                    // score difference, more than eps.
                    let mut x = gradcheck::spaced(&shape, seed);
                    x.scale(3.3);
                    let binary = matches!(kind, LossKind::Logistic | LossKind::Hinge);
                    let labels = if binary {
                        signs(&shape, seed)
                    } else {
                        classes(&[2, 1, h, w], c, seed)
                    };
                    let mut inputs = vec![x, labels];
                    if weighted {
                        inputs.push(weights(&[2, 1, h, w], seed));
                    }
                    let r = gradcheck::check(
                        &inputs,
                        |i| {
                            let v = loss::forward(&i[0], &i[1], i.get(2), kind)?;
                            Ok(t(&[1], &[v]))
                        },
                        |i, p| {
                            let g = loss::backward(&i[0], &i[1], i.get(2), kind, p.data()[0])?;
                            let mut out = vec![Some(g), None];
                            out.extend(i.get(2).map(|_| None));
                            Ok(out)
                        },
                        tol,
                        seed,
                    );
                    assert!(r.is_ok(), "{kind:?} {shape:?} weighted {weighted}: {r:?}");
                }
            }
        }
    }
}

#[test]
fn zero_weight_locations_are_ignored_even_with_placeholder_labels() {
    let x = gradcheck::random(&[2, 3, 1, 2], 1);
    let l = t(&[2, 1, 1, 2], &[0.0, -1.0, 2.0, 7.5]);
    let w = t(&[2, 1, 1, 2], &[1.0, 0.0, 1.0, 0.0]);
    let v = loss::forward(&x, &l, Some(&w), LossKind::SoftmaxLog).unwrap();
    let g = loss::backward(&x, &l, Some(&w), LossKind::SoftmaxLog, 1.0).unwrap();
    assert!(v.is_finite() && v > 0.0);
    for c in 0..3 {
        assert_eq!(g.at4(0, c, 0, 1), 0.0);
        assert_eq!(g.at4(1, c, 0, 1), 0.0);
    }
}

#[test]
fn bad_inputs_are_errors_naming_loss() {
    let x = gradcheck::random(&[2, 3, 2, 2], 1);
    let good = classes(&[2, 1, 2, 2], 3, 1);
    let err = |x: &Tensor, l: &Tensor, w: Option<&Tensor>, k| {
        loss::forward(x, l, w, k).unwrap_err().to_string()
    };
    let mut bad = good.clone();
    bad.data_mut()[5] = 1.5;
    let e = err(&x, &bad, None, LossKind::SoftmaxLog);
    assert!(
        e.starts_with("loss: label 1.5 at (image 1, row 0, column 1)") && e.contains("0..2"),
        "{e}"
    );
    for v in [-1.0, 3.0, f32::NAN] {
        bad.data_mut()[5] = v;
        let e = err(&x, &bad, None, LossKind::MultiHinge);
        assert!(
            e.starts_with("loss: label") && e.contains("image 1, row 0, column 1"),
            "{e}"
        );
        assert!(loss::backward(&x, &bad, None, LossKind::SoftmaxLog, 1.0).is_err());
    }
    let e = err(&x, &t(&[2, 1, 2, 1], &[0.0; 4]), None, LossKind::SoftmaxLog);
    assert!(
        e.starts_with("loss: labels have shape 2x1x2x1") && e.contains("2x1x2x2"),
        "{e}"
    );
    let e = err(&x, &good, None, LossKind::Hinge);
    assert!(
        e.starts_with("loss: labels have shape 2x1x2x2") && e.contains("2x3x2x2"),
        "{e}"
    );
    let mut half = Tensor::full(&[2, 3, 2, 2], 1.0).unwrap();
    half.data_mut()[13] = 0.5;
    let e = err(&x, &half, None, LossKind::Logistic);
    assert!(
        e.starts_with("loss: label 0.5 at channel 0 of (image 1, row 0, column 1)"),
        "{e}"
    );
    let w = Tensor::zeros(&[2, 3, 2, 2]).unwrap();
    let e = err(&x, &good, Some(&w), LossKind::SoftmaxLog);
    assert!(e.starts_with("loss: weights have shape 2x3x2x2"), "{e}");
    let e = err(&x, &good, None, LossKind::TopKError(0));
    assert!(e.starts_with("loss: top-k error needs k >= 1"), "{e}");
    let one = gradcheck::random(&[2, 1], 1);
    let e = err(&one, &t(&[2], &[0.0, 0.0]), None, LossKind::MultiHinge);
    assert!(
        e.starts_with("loss: multi-class hinge needs at least 2 classes"),
        "{e}"
    );
    for k in [LossKind::ClassError, LossKind::TopKError(2)] {
        let e = loss::backward(&x, &good, None, k, 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("loss: ") && e.contains("metric"), "{e}");
    }
}
