//! Activations: hand-computed values, numerical derivatives, the parallel path for
//! big tensors, and shape errors.

use convnet::blocks::activation as act;
use convnet::gradcheck::{self, Tolerance};
use convnet::{Result, Tensor};

const TOL: Tolerance = Tolerance {
    eps: 2e-3,
    rtol: 1e-3,
    atol: 1e-3,
};

fn vec1(v: &[f32]) -> Tensor {
    Tensor::from_vec(&[v.len()], v.to_vec()).unwrap()
}

#[test]
fn values_by_hand() {
    let x = vec1(&[-2., 0., 3.]);
    assert_eq!(act::relu_forward(&x, 0.0).data(), &[0., 0., 3.]);
    assert_eq!(act::relu_forward(&x, 0.1).data(), &[-0.2, 0., 3.]);
    let s = act::sigmoid_forward(&vec1(&[0., 3f32.ln(), -200., 200.]));
    let want = [0.5, 0.75, 0.0, 1.0];
    assert!(
        s.data().iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
        "{s:?}"
    );
    assert!(s.all_finite());
    let t = act::tanh_forward(&vec1(&[0., 0.5f32.atanh(), -50.]));
    let want = [0.0, 0.5, -1.0];
    assert!(
        t.data().iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
        "{t:?}"
    );
    let dx = act::relu_backward(&x, 0.1, &vec1(&[1., 1., 1.])).unwrap();
    assert_eq!(dx.data(), &[0.1, 0.1, 1.]);
    let dx = act::sigmoid_backward(&vec1(&[0.]), &vec1(&[2.])).unwrap();
    assert!((dx.data()[0] - 0.5).abs() < 1e-7);
    let dx = act::tanh_backward(&vec1(&[0.]), &vec1(&[2.])).unwrap();
    assert!((dx.data()[0] - 2.0).abs() < 1e-7);
}

type Fwd = fn(&Tensor) -> Tensor;
type Bwd = fn(&Tensor, &Tensor) -> Result<Tensor>;

fn cases() -> Vec<(&'static str, Fwd, Bwd)> {
    vec![
        (
            "relu",
            |x| act::relu_forward(x, 0.0),
            |x, d| act::relu_backward(x, 0.0, d),
        ),
        (
            "leaky relu",
            |x| act::relu_forward(x, 0.2),
            |x, d| act::relu_backward(x, 0.2, d),
        ),
        ("sigmoid", act::sigmoid_forward, act::sigmoid_backward),
        ("tanh", act::tanh_forward, act::tanh_backward),
    ]
}

#[test]
fn derivatives_match() {
    for (name, f, b) in cases() {
        for (k, shape) in [vec![2, 3, 4, 5], vec![8], vec![3, 2, 5]]
            .iter()
            .enumerate()
        {
            // Spaced values of even length (no zero, gaps >= 2/120) keep ReLU off its kink; scaled by
            // 3 so sigmoid and tanh are tested where they curve and saturate.
            let mut x = gradcheck::spaced(shape, k as u64);
            x.scale(3.0);
            let r = gradcheck::check(
                &[x],
                |x| Ok(f(&x[0])),
                |x, d| Ok(vec![Some(b(&x[0], d)?)]),
                TOL,
                5,
            );
            assert!(r.is_ok(), "{name} {shape:?}: {r:?}");
        }
    }
}

#[test]
fn big_tensors_take_the_parallel_path_with_the_same_results() {
    let x = gradcheck::random(&[3, 7, 61, 67], 2);
    let dy = gradcheck::random(&[3, 7, 61, 67], 3);
    for (name, f, b) in cases() {
        let y = f(&x);
        let dx = b(&x, &dy).unwrap();
        // Element-wise results must not depend on where the chunks fall.
        for i in [0, 1, x.len() / 3, x.len() - 1] {
            let one = vec1(&x.data()[i..=i]);
            assert_eq!(y.data()[i], f(&one).data()[0], "{name} {i}");
            let d1 = b(&one, &vec1(&dy.data()[i..=i])).unwrap();
            assert_eq!(dx.data()[i], d1.data()[0], "{name} {i}");
        }
    }
}

#[test]
fn backward_rejects_a_dy_of_another_shape() {
    let x = gradcheck::random(&[2, 3], 1);
    let dy = gradcheck::random(&[3, 2], 1);
    for ((_, _, b), name) in cases().into_iter().zip(["relu", "relu", "sigmoid", "tanh"]) {
        let e = b(&x, &dy).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{name}: dy has shape 3x2")) && e.contains("2x3"),
            "{e}"
        );
    }
}
