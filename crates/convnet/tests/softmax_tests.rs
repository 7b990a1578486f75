//! Softmax and log-softmax: hand-computed values, stability, normalisation,
//! numerical derivatives, shape errors.

use convnet::blocks::softmax as sm;
use convnet::gradcheck::{self, Tolerance};
use convnet::Tensor;

#[test]
fn softmax_of_0_and_ln2_is_a_third_and_two_thirds() {
    let x = Tensor::from_vec(&[1, 2], vec![0.0, 2f32.ln()]).unwrap();
    let y = sm::softmax_forward(&x).unwrap();
    assert!(
        (y.data()[0] - 1.0 / 3.0).abs() < 1e-6 && (y.data()[1] - 2.0 / 3.0).abs() < 1e-6,
        "{y:?}"
    );
    let l = sm::log_softmax_forward(&x).unwrap();
    assert!((l.data()[0] - (1f32 / 3.0).ln()).abs() < 1e-6, "{l:?}");
    assert!((l.data()[1] - (2f32 / 3.0).ln()).abs() < 1e-6, "{l:?}");
}

#[test]
fn large_scores_do_not_overflow() {
    // Channels at two locations, NCHW: location 0 has (1000, 1000 + ln 2).
    let x = Tensor::from_vec(
        &[1, 2, 1, 2],
        vec![1000.0, -1000.0, 1000.0 + 2f32.ln(), 0.0],
    )
    .unwrap();
    let y = sm::softmax_forward(&x).unwrap();
    assert!(y.all_finite());
    assert!((y.at4(0, 1, 0, 0) - 2.0 / 3.0).abs() < 1e-3, "{y:?}");
    assert!(
        (y.at4(0, 1, 0, 1) - 1.0).abs() < 1e-6 && y.at4(0, 0, 0, 1) == 0.0,
        "{y:?}"
    );
    let l = sm::log_softmax_forward(&x).unwrap();
    assert!(l.all_finite());
    assert!((l.at4(0, 0, 0, 1) + 1000.0).abs() < 1e-3, "{l:?}");
}

#[test]
fn softmax_sums_to_one_over_channels_at_each_location() {
    let x = gradcheck::random(&[3, 5, 4, 3], 4);
    let y = sm::softmax_forward(&x).unwrap();
    let l = sm::log_softmax_forward(&x).unwrap();
    for n in 0..3 {
        for h in 0..4 {
            for w in 0..3 {
                let s: f32 = (0..5).map(|c| y.at4(n, c, h, w)).sum();
                assert!((s - 1.0).abs() < 1e-6);
                for c in 0..5 {
                    assert!((l.at4(n, c, h, w).exp() - y.at4(n, c, h, w)).abs() < 1e-6);
                }
            }
        }
    }
}

#[test]
fn derivatives_match() {
    let tol = Tolerance {
        eps: 1e-3,
        rtol: 1e-2,
        atol: 1e-3,
    };
    for (k, shape) in [
        vec![2, 3, 4, 5],
        vec![3, 4],
        vec![1, 1, 2, 3],
        vec![2, 7, 1, 3],
    ]
    .iter()
    .enumerate()
    {
        let mut x = gradcheck::random(shape, k as u64);
        x.scale(3.0);
        let r = gradcheck::check(
            &[x.clone()],
            |x| sm::softmax_forward(&x[0]),
            |x, d| Ok(vec![Some(sm::softmax_backward(&x[0], d)?)]),
            tol,
            k as u64,
        );
        assert!(r.is_ok(), "softmax {shape:?}: {r:?}");
        let r = gradcheck::check(
            &[x],
            |x| sm::log_softmax_forward(&x[0]),
            |x, d| Ok(vec![Some(sm::log_softmax_backward(&x[0], d)?)]),
            tol,
            k as u64,
        );
        assert!(r.is_ok(), "log-softmax {shape:?}: {r:?}");
    }
}

#[test]
fn bad_shapes_are_errors_naming_the_block() {
    let x = gradcheck::random(&[2, 3, 2, 2], 1);
    let dy = gradcheck::random(&[2, 3, 2, 1], 1);
    let e = sm::softmax_backward(&x, &dy).unwrap_err().to_string();
    assert!(
        e.starts_with("softmax: dy has shape 2x3x2x1") && e.contains("2x3x2x2"),
        "{e}"
    );
    let e = sm::log_softmax_backward(&x, &dy).unwrap_err().to_string();
    assert!(e.starts_with("log-softmax: dy has shape"), "{e}");
    let x5 = Tensor::zeros(&[1, 2, 1, 1, 1]).unwrap();
    assert!(sm::softmax_forward(&x5)
        .unwrap_err()
        .to_string()
        .starts_with("softmax: "));
    assert!(sm::log_softmax_forward(&x5)
        .unwrap_err()
        .to_string()
        .starts_with("log-softmax: "));
}
