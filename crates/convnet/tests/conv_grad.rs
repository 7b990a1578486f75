//! Proof for convolution and transposed convolution: numerical derivatives over an
//! enumeration of configurations, hand-computed forward cases, the adjoint identity
//! between the two blocks, and the option checks.

use convnet::blocks::conv::{self, ConvOpts};
use convnet::blocks::convt::{self, ConvTOpts};
use convnet::blocks::Pad;
use convnet::gradcheck::{check, random, Tolerance};
use convnet::{Dims4, Tensor};

#[path = "support/conv_reference.rs"]
mod conv_reference;
use conv_reference::conv_reference;

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape, v.to_vec()).unwrap()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}: element {k}: got {g}, want {w}"
        );
    }
}

/// One enumerated configuration: pad, stride, dilation, groups, the input's sizes and
/// (C_out, kh, kw).
type Config = (Pad, [usize; 2], [usize; 2], usize, Dims4, [usize; 3]);

fn configs() -> Vec<Config> {
    let pads = [
        Pad::all(0),
        Pad::all(1),
        Pad::new(0, 2, 1, 0),
        Pad::new(2, 1, 0, 2),
    ];
    let mut out = Vec::new();
    let mut k = 0usize;
    for pad in pads {
        for stride in [[1, 1], [2, 3], [3, 1]] {
            for dilation in [[1, 1], [2, 1], [1, 2]] {
                for groups in [1, 2, 3] {
                    k += 1;
                    // vary sizes with the case number: odd, non-square, batch > 1
                    let n = 1 + k % 4;
                    let (h, w) = (5 + k % 3, 4 + (k / 3) % 3);
                    let (kh, kw) = (1 + k % 3, 2 + (k / 2) % 2);
                    let cg = 1 + k % 2;
                    let og = 1 + (k / 4) % 2;
                    out.push((
                        pad,
                        stride,
                        dilation,
                        groups,
                        Dims4::new(n, cg * groups, h, w),
                        [og * groups, kh, kw],
                    ));
                }
            }
        }
    }
    out
}

/// Both blocks are linear in each input, so a large step has no truncation error and
/// keeps f32 rounding small; a wrong index is off by O(1).
/// Runs `f` in a pool of 1, 2 or 3 threads chosen by `case`, so that the batch is
/// cut into parts and multi-image products in every way the kernels plan for.
fn in_pool<R: Send>(case: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1 + case % 3)
        .build()
        .unwrap()
        .install(f)
}

fn tol() -> Tolerance {
    Tolerance {
        eps: 0.1,
        rtol: 1e-3,
        atol: 1e-3,
    }
}

/// Checks one configuration's forward against the reference and its derivatives
/// numerically; false when the configuration has no output.
fn check_conv(idx: usize, (pad, stride, dilation, groups, xd, [c_out, kh, kw]): Config) -> bool {
    let o = ConvOpts {
        pad,
        stride,
        dilation,
        groups,
    };
    let ws = [c_out, xd.c / groups, kh, kw];
    if conv::out_dims(xd, &ws, &o).is_err() {
        return false;
    }
    let seed = idx as u64;
    let x = random(&xd.to_vec(), seed);
    let w = random(&ws, seed + 1000);
    let b = random(&[c_out], seed + 2000);
    let with_bias = idx.is_multiple_of(2);
    let what = format!("case {idx}: x {xd} w {ws:?} {o:?} bias {with_bias}");
    // forward against the f64 reference
    let y = in_pool(idx, || conv::forward(&x, &w, with_bias.then_some(&b), &o)).unwrap();
    assert_close(
        y.data(),
        &conv_reference(&x, &w, with_bias.then_some(&b), &o),
        &what,
    );
    let inputs = if with_bias { vec![x, w, b] } else { vec![x, w] };
    let r = in_pool(idx, || {
        check(
            &inputs,
            |v| conv::forward(&v[0], &v[1], v.get(2), &o),
            |v, dy| {
                let g = conv::backward(&v[0], &v[1], v.get(2), &o, dy, true)?;
                let mut out = vec![g.dx, Some(g.dw)];
                if v.len() == 3 {
                    out.push(g.db);
                }
                Ok(out)
            },
            tol(),
            seed,
        )
    });
    assert!(r.is_ok(), "{what}: {}", r.unwrap_err());
    true
}

#[test]
fn conv_gradients_over_configurations() {
    let checked = configs()
        .into_iter()
        .enumerate()
        .filter(|&(idx, cfg)| check_conv(idx, cfg))
        .count();
    assert!(checked > 60, "only {checked} configurations were valid");
}

/// Many output channels over few positions (a deep layer at batch 1): the products
/// are computed transposed, with the bias added afterwards.
#[test]
fn conv_gradients_with_few_positions() {
    let cases: [Config; 6] = [
        (
            Pad::all(1),
            [1, 1],
            [1, 1],
            1,
            Dims4::new(1, 5, 3, 3),
            [64, 3, 3],
        ),
        (
            Pad::all(0),
            [1, 1],
            [1, 1],
            1,
            Dims4::new(2, 7, 2, 3),
            [100, 1, 1],
        ),
        (
            Pad::all(1),
            [2, 2],
            [1, 1],
            2,
            Dims4::new(1, 6, 4, 4),
            [96, 3, 3],
        ),
        (
            Pad::all(1),
            [1, 1],
            [1, 1],
            1,
            Dims4::new(1, 70, 3, 3),
            [3, 3, 3],
        ),
        // fully connected, past the batch its own forward takes (16)
        (
            Pad::all(0),
            [1, 1],
            [1, 1],
            1,
            Dims4::new(20, 6, 3, 3),
            [60, 3, 3],
        ),
        (
            Pad::all(0),
            [1, 1],
            [1, 1],
            1,
            Dims4::new(20, 30, 2, 2),
            [60, 2, 2],
        ),
    ];
    for (idx, cfg) in cases.into_iter().enumerate() {
        assert!(check_conv(1000 + idx, cfg), "case {idx} has no output");
    }
}

/// A deep 1x1 convolution over several images whose planes (35 positions) the
/// kernels' column panels straddle, with a depth of several packed blocks: each
/// straddling tile is added to C part by part. The forward (bias and ReLU fused) and
/// the input gradient against f64, with the bits of every thread count.
#[test]
fn deep_pointwise_products_over_straddling_tiles() {
    let (n, p, deep, narrow) = (3, 35, 700, 20);
    let x = random(&[n, deep, 5, 7], 1);
    let w = random(&[narrow, deep, 1, 1], 2);
    let b = random(&[narrow], 3);
    let o = ConvOpts::default();
    let reference = conv_reference(&x, &w, Some(&b), &o);
    let relu: Vec<f64> = reference.iter().map(|v| v.max(0.0)).collect();
    // the input gradient of a layer 700 outputs deep: dx = W^T dy
    let wt = random(&[deep, narrow, 1, 1], 4);
    let xt = random(&[n, narrow, 5, 7], 5);
    let dy = random(&[n, deep, 5, 7], 6);
    let mut dx = vec![0.0f64; n * narrow * p];
    for (img, dxi) in dx.chunks_exact_mut(narrow * p).enumerate() {
        for (c, plane) in dxi.chunks_exact_mut(p).enumerate() {
            for o in 0..deep {
                let wv = wt.data()[o * narrow + c] as f64;
                let dyo = &dy.data()[(img * deep + o) * p..][..p];
                for (d, &g) in plane.iter_mut().zip(dyo) {
                    *d += wv * g as f64;
                }
            }
        }
    }
    let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let mut first = None;
    for case in 0..3 {
        let (y, dxt) = in_pool(case, || {
            let y = conv::forward_relu(&x, &w, Some(&b), &o, true).unwrap();
            let g = conv::backward(&xt, &wt, None, &o, &dy, true).unwrap();
            (y, g.dx.expect("asked for"))
        });
        assert_close(y.data(), &relu, "forward");
        assert_close(dxt.data(), &dx, "input gradient");
        let got = (bits(&y), bits(&dxt));
        match &first {
            None => first = Some(got),
            Some(f) => assert!(*f == got, "{} threads: other bits", 1 + case % 3),
        }
    }
}

/// 1x1 convolutions at stride 1 without padding read the images as their own column
/// matrix, image plane by image plane.
#[test]
fn pointwise_gradients() {
    let cases: [Config; 3] = [
        (
            Pad::all(0),
            [1, 1],
            [1, 1],
            1,
            Dims4::new(3, 6, 5, 7),
            [4, 1, 1],
        ),
        (
            Pad::all(0),
            [1, 1],
            [1, 1],
            2,
            Dims4::new(2, 8, 9, 9),
            [6, 1, 1],
        ),
        (
            Pad::all(0),
            [1, 1],
            [1, 1],
            1,
            Dims4::new(4, 5, 7, 7),
            [12, 1, 1],
        ),
    ];
    for (idx, cfg) in cases.into_iter().enumerate() {
        assert!(check_conv(2000 + idx, cfg), "case {idx} has no output");
    }
}

#[test]
fn convt_gradients_over_configurations() {
    let mut checked = 0;
    for (idx, (crop, up, _dil, groups, xd, [c_out, kh, kw])) in configs().into_iter().enumerate() {
        let o = ConvTOpts {
            upsample: up,
            crop,
            groups,
        };
        let ws = [xd.c, c_out / groups, kh, kw];
        if convt::out_dims(xd, &ws, &o).is_err() {
            continue;
        }
        let seed = 500 + idx as u64;
        let x = random(&xd.to_vec(), seed);
        let w = random(&ws, seed + 1000);
        let b = random(&[c_out], seed + 2000);
        let with_bias = idx % 2 == 1;
        let what = format!("case {idx}: x {xd} w {ws:?} {o:?} bias {with_bias}");
        let inputs = if with_bias { vec![x, w, b] } else { vec![x, w] };
        let r = in_pool(idx, || {
            check(
                &inputs,
                |v| convt::forward(&v[0], &v[1], v.get(2), &o),
                |v, dy| {
                    let g = convt::backward(&v[0], &v[1], v.get(2), &o, dy, true)?;
                    let mut out = vec![g.dx, Some(g.dw)];
                    if v.len() == 3 {
                        out.push(g.db);
                    }
                    Ok(out)
                },
                tol(),
                seed,
            )
        });
        assert!(r.is_ok(), "{what}: {}", r.unwrap_err());
        checked += 1;
    }
    assert!(checked > 60, "only {checked} configurations were valid");
}

/// `<conv(x), y> == <x, convt(y)>` with the same filters, stride = upsample and
/// pad = crop: transposed convolution is the adjoint of convolution.
#[test]
fn convt_is_the_adjoint_of_conv() {
    for (idx, (pad, stride, _dil, groups, xd, [c_out, kh, kw])) in configs().into_iter().enumerate()
    {
        let co = ConvOpts {
            pad,
            stride,
            dilation: [1, 1],
            groups,
        };
        let ws = [c_out, xd.c / groups, kh, kw];
        let Ok(yd) = conv::out_dims(xd, &ws, &co) else {
            continue;
        };
        let x = random(&xd.to_vec(), idx as u64);
        let w = random(&ws, idx as u64 + 1);
        let y = random(&yd.to_vec(), idx as u64 + 2);
        let to = ConvTOpts {
            upsample: stride,
            crop: pad,
            groups,
        };
        // convt maps y back to x's size only when the stride divides evenly
        let Ok(xt) = convt::out_dims(yd, &ws, &to) else {
            continue;
        };
        if xt != xd {
            continue;
        }
        let lhs = conv::forward(&x, &w, None, &co).unwrap().dot(&y);
        let rhs = x.dot(&convt::forward(&y, &w, None, &to).unwrap());
        assert!(
            (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
            "case {idx}: <conv(x), y> = {lhs} but <x, convt(y)> = {rhs}"
        );
    }
}

#[test]
fn conv_3x3_by_2x2_by_hand() {
    let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    let w = t(&[1, 1, 2, 2], &[1., 0., 0., -1.]);
    let b = t(&[1], &[0.5]);
    let y = conv::forward(&x, &w, Some(&b), &ConvOpts::default()).unwrap();
    // each output is x[i][j] - x[i+1][j+1] + 0.5 = -4 + 0.5
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.data(), &[-3.5, -3.5, -3.5, -3.5]);
    let w = t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let y = conv::forward(&x, &w, None, &ConvOpts::default()).unwrap();
    // 1+4+12+20, 2+6+15+24, 4+10+21+32, 5+12+24+36
    assert_eq!(y.data(), &[37., 47., 67., 77.]);
}

#[test]
fn conv_padded_and_strided_by_hand() {
    let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    let w = t(&[1, 1, 3, 3], &[1.0; 9]);
    let o = ConvOpts {
        pad: Pad::all(1),
        stride: [2, 2],
        ..Default::default()
    };
    let y = conv::forward(&x, &w, None, &o).unwrap();
    // 3x3 sums of the zero-padded image at the corners
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.data(), &[12., 16., 24., 28.]);
    // asymmetric: one row of padding on top only, kernel 2x1
    let w = t(&[1, 1, 2, 1], &[1., 10.]);
    let o = ConvOpts {
        pad: Pad::new(1, 0, 0, 0),
        ..Default::default()
    };
    let y = conv::forward(&x, &w, None, &o).unwrap();
    assert_eq!(y.shape(), &[1, 1, 3, 3]);
    assert_eq!(y.data(), &[10., 20., 30., 41., 52., 63., 74., 85., 96.]);
}

#[test]
fn conv_dilated_by_hand() {
    let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    let w = t(&[1, 1, 2, 2], &[1., 1., 1., 1.]);
    let o = ConvOpts {
        dilation: [2, 2],
        ..Default::default()
    };
    let y = conv::forward(&x, &w, None, &o).unwrap();
    assert_eq!(y.shape(), &[1, 1, 1, 1]);
    assert_eq!(y.data(), &[1. + 3. + 7. + 9.]);
}

#[test]
fn conv_groups_by_hand() {
    // two channels, two groups: each output sees only its own channel
    let x = t(&[1, 2, 1, 2], &[1., 2., 10., 20.]);
    let w = t(&[2, 1, 1, 1], &[3., -1.]);
    let o = ConvOpts {
        groups: 2,
        ..Default::default()
    };
    let y = conv::forward(&x, &w, None, &o).unwrap();
    assert_eq!(y.data(), &[3., 6., -10., -20.]);
}

#[test]
fn convt_by_hand() {
    // 2x2 input, 2x2 kernel, upsample 2: each input pixel stamps a scaled kernel
    let x = t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let w = t(&[1, 1, 2, 2], &[1., 10., 100., 1000.]);
    let o = ConvTOpts {
        upsample: [2, 2],
        ..Default::default()
    };
    let y = convt::forward(&x, &w, None, &o).unwrap();
    assert_eq!(y.shape(), &[1, 1, 4, 4]);
    #[rustfmt::skip]
    let want = [
        1., 10., 2., 20.,
        100., 1000., 200., 2000.,
        3., 30., 4., 40.,
        300., 3000., 400., 4000.,
    ];
    assert_eq!(y.data(), &want);
    // upsample 1 overlaps the stamps; crop one column on the left
    let o = ConvTOpts {
        crop: Pad::new(0, 0, 1, 0),
        ..Default::default()
    };
    let y = convt::forward(&x, &w, Some(&t(&[1], &[0.5])), &o).unwrap();
    assert_eq!(y.shape(), &[1, 1, 3, 2]);
    // full 3x3: [1, 12, 20; 103, 1234, 2040; 300, 3400, 4000]
    assert_eq!(y.data(), &[12.5, 20.5, 1234.5, 2040.5, 3400.5, 4000.5]);
}

#[test]
fn fully_connected_is_a_whole_input_convolution() {
    let xd = Dims4::new(5, 3, 4, 2);
    let x = random(&xd.to_vec(), 1);
    let w = random(&[7, 3, 4, 2], 2);
    let b = random(&[7], 3);
    let o = ConvOpts::default();
    let y = conv::forward(&x, &w, Some(&b), &o).unwrap();
    assert_eq!(y.shape(), &[5, 7, 1, 1]);
    assert_close(y.data(), &conv_reference(&x, &w, Some(&b), &o), "fc");
    // an (N, C) input is an (N, C, 1, 1) one
    let x2 = random(&[4, 6], 4);
    let w2 = random(&[3, 6, 1, 1], 5);
    let y2 = conv::forward(&x2, &w2, None, &o).unwrap();
    assert_eq!(y2.shape(), &[4, 3, 1, 1]);
    let g = conv::backward(&x2, &w2, None, &o, &y2, true).unwrap();
    assert_eq!(g.dx.unwrap().shape(), &[4, 6]);
}

/// Numerical derivatives of conv with respect to x, w and b for one configuration.
fn conv_grad_case(xd: Dims4, ws: [usize; 4], o: ConvOpts, threads: usize) {
    let x = random(&xd.to_vec(), 11);
    let w = random(&ws, 12);
    let b = random(&[ws[0]], 13);
    let r = in_pool(threads - 1, || {
        check(
            &[x, w, b],
            |v| conv::forward(&v[0], &v[1], Some(&v[2]), &o),
            |v, dy| {
                let g = conv::backward(&v[0], &v[1], Some(&v[2]), &o, dy, true)?;
                Ok(vec![g.dx, Some(g.dw), g.db])
            },
            tol(),
            5,
        )
    });
    assert!(r.is_ok(), "x {xd} w {ws:?} {o:?}: {}", r.unwrap_err());
}

#[test]
fn fully_connected_and_pointwise_gradients() {
    let d = ConvOpts::default();
    for threads in [1, 2, 3] {
        // whole-input kernels, with and without groups; a batch of 20 is past the
        // few-image dot products
        conv_grad_case(Dims4::new(5, 3, 4, 2), [4, 3, 4, 2], d, threads);
        conv_grad_case(Dims4::new(20, 3, 2, 2), [5, 3, 2, 2], d, threads);
        let g3 = ConvOpts { groups: 3, ..d };
        conv_grad_case(Dims4::new(4, 6, 2, 3), [6, 2, 2, 3], g3, threads);
        // 1x1 stride 1 unpadded: the image is its own column matrix
        conv_grad_case(Dims4::new(5, 4, 3, 5), [3, 4, 1, 1], d, threads);
        let g2 = ConvOpts { groups: 2, ..d };
        conv_grad_case(Dims4::new(3, 4, 3, 2), [6, 2, 1, 1], g2, threads);
        // many small images: several images per product
        let p1 = ConvOpts {
            pad: Pad::new(1, 0, 0, 1),
            ..d
        };
        conv_grad_case(Dims4::new(9, 2, 4, 3), [3, 2, 2, 2], p1, threads);
    }
}

/// Images large enough that the kernels build their column matrices a band of rows
/// at a time: the forward against the reference loop, and both gradients through
/// the identities `<dy, conv(x, w)> = <dx, x> = <dw, w>` (conv is linear in each).
#[test]
fn large_images_are_tiled_consistently() {
    let cases = [
        (Dims4::new(2, 8, 64, 64), Pad::all(1), [1, 1]),
        (Dims4::new(3, 9, 70, 61), Pad::new(2, 0, 1, 3), [2, 1]),
        // one image, fewer than the threads: bands of a product split over threads
        (Dims4::new(1, 16, 80, 72), Pad::all(1), [1, 1]),
    ];
    for (k, (xd, pad, stride)) in cases.into_iter().enumerate() {
        let o = ConvOpts {
            pad,
            stride,
            dilation: [1, 1],
            groups: 1,
        };
        let x = random(&xd.to_vec(), 1);
        let w = random(&[3, xd.c, 3, 3], 2);
        for threads in [1, 2, 3] {
            let what = format!("x {xd} {o:?} threads {threads}");
            let (y, dy, g) = in_pool(threads - 1, || {
                let y = conv::forward(&x, &w, None, &o).unwrap();
                let dy = random(y.shape(), 3 + k as u64);
                let g = conv::backward(&x, &w, None, &o, &dy, true).unwrap();
                (y, dy, g)
            });
            assert_close(y.data(), &conv_reference(&x, &w, None, &o), &what);
            let z = y.dot(&dy);
            let zx = g.dx.unwrap().dot(&x);
            let zw = g.dw.dot(&w);
            assert!(
                (z - zx).abs() < 1e-3 * z.abs().max(1.0),
                "{what}: {z} vs dx {zx}"
            );
            assert!(
                (z - zw).abs() < 1e-3 * z.abs().max(1.0),
                "{what}: {z} vs dw {zw}"
            );
        }
    }
}

#[test]
fn results_do_not_depend_on_runs() {
    let x = random(&[6, 4, 9, 7], 1);
    let w = random(&[8, 2, 3, 3], 2);
    let o = ConvOpts {
        pad: Pad::all(1),
        groups: 2,
        ..Default::default()
    };
    let y = conv::forward(&x, &w, None, &o).unwrap();
    let a = conv::backward(&x, &w, None, &o, &y, true).unwrap();
    for _ in 0..3 {
        let b = conv::backward(&x, &w, None, &o, &y, true).unwrap();
        assert_eq!(a.dw.data(), b.dw.data());
        assert_eq!(a.dx.as_ref().unwrap().data(), b.dx.unwrap().data());
    }
}

fn conv_err(x: &[usize], w: &[usize], b: Option<usize>, o: ConvOpts) -> String {
    let x = Tensor::zeros(x).unwrap();
    let w = Tensor::zeros(w).unwrap();
    let b = b.map(|n| Tensor::zeros(&[n]).unwrap());
    conv::forward(&x, &w, b.as_ref(), &o)
        .unwrap_err()
        .to_string()
}

#[test]
fn conv_rejects_bad_options_and_shapes() {
    let d = ConvOpts::default();
    let e = conv_err(&[1, 3, 5, 5], &[2, 3, 3], None, d);
    assert!(
        e.starts_with("conv: filters must be") && e.contains("2x3x3"),
        "{e}"
    );
    let e = conv_err(&[1, 1, 1, 3, 5, 5], &[2, 3, 3, 3], None, d);
    assert!(
        e.starts_with("conv: x must be") && e.contains("rank"),
        "{e}"
    );
    let e = conv_err(&[1, 4, 5, 5], &[2, 3, 3, 3], None, d);
    assert!(
        e.contains("3 input channels per group but x has 4 channels / 1 groups"),
        "{e}"
    );
    let g = ConvOpts { groups: 2, ..d };
    let e = conv_err(&[1, 3, 5, 5], &[2, 1, 3, 3], None, g);
    assert!(e.contains("groups 2 must divide"), "{e}");
    let e = conv_err(&[1, 4, 5, 5], &[3, 2, 3, 3], None, g);
    assert!(
        e.contains("groups 2 must divide") && e.contains("3 filters"),
        "{e}"
    );
    let e = conv_err(
        &[1, 3, 5, 5],
        &[2, 3, 3, 3],
        None,
        ConvOpts { groups: 0, ..d },
    );
    assert!(e.contains("groups must be at least 1"), "{e}");
    let e = conv_err(&[1, 3, 5, 5], &[2, 3, 3, 3], Some(3), d);
    assert!(
        e.contains("bias has shape 3") && e.contains("2 output channels"),
        "{e}"
    );
    let e = conv_err(
        &[1, 3, 5, 5],
        &[2, 3, 3, 3],
        None,
        ConvOpts {
            stride: [1, 0],
            ..d
        },
    );
    assert!(
        e.starts_with("conv: width") && e.contains("stride 0"),
        "{e}"
    );
    let e = conv_err(
        &[1, 3, 5, 5],
        &[2, 3, 3, 3],
        None,
        ConvOpts {
            dilation: [0, 1],
            ..d
        },
    );
    assert!(
        e.starts_with("conv: height") && e.contains("dilation 0"),
        "{e}"
    );
    let e = conv_err(
        &[1, 3, 5, 5],
        &[2, 3, 3, 3],
        None,
        ConvOpts {
            dilation: [3, 1],
            ..d
        },
    );
    assert!(
        e.contains("exceeds the padded input 5") && e.contains("1x3x5x5"),
        "{e}"
    );
    let e = conv_err(&[1, 3, 2, 5], &[2, 3, 3, 3], None, d);
    assert!(e.contains("height") && e.contains("exceeds"), "{e}");
    // dy of the wrong shape
    let x = Tensor::zeros(&[1, 3, 5, 5]).unwrap();
    let w = Tensor::zeros(&[2, 3, 3, 3]).unwrap();
    let dy = Tensor::zeros(&[1, 2, 3, 4]).unwrap();
    let e = conv::backward(&x, &w, None, &d, &dy, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv: dy has shape 1x2x3x4 but 1x2x3x3"), "{e}");
}

#[test]
fn convt_rejects_bad_options_and_shapes() {
    let x = Tensor::zeros(&[1, 4, 3, 3]).unwrap();
    let fwd = |w: &[usize], o: ConvTOpts| {
        convt::forward(&x, &Tensor::zeros(w).unwrap(), None, &o)
            .unwrap_err()
            .to_string()
    };
    let d = ConvTOpts::default();
    let e = fwd(&[3, 2, 2, 2], d);
    assert!(
        e.contains("convt: filters are for 3 input channels but x has 4"),
        "{e}"
    );
    let e = fwd(&[4, 2, 2, 2], ConvTOpts { groups: 3, ..d });
    assert!(e.contains("groups 3 must divide"), "{e}");
    let e = fwd(
        &[4, 2, 2, 2],
        ConvTOpts {
            upsample: [0, 1],
            ..d
        },
    );
    assert!(e.contains("height: upsample 0"), "{e}");
    let e = fwd(
        &[4, 2, 2, 2],
        ConvTOpts {
            crop: Pad::new(0, 0, 2, 2),
            ..d
        },
    );
    assert!(e.contains("width: crop 2 + 2 leaves nothing"), "{e}");
    let e = fwd(&[4, 2, 2], d);
    assert!(e.contains("convt: filters must be"), "{e}");
}

/// Filters kept packed between forwards give the same bits as packing them afresh,
/// in every form the forward takes (plain and transposed products, 1x1, groups,
/// Winograd, Winograd over the phases of a strided input), and a change of the filters is seen: the next forward packs again.
#[test]
fn cached_filters_give_the_same_outputs_and_follow_changes() {
    let same3 = ConvOpts {
        pad: Pad::all(1),
        ..Default::default()
    };
    let cases: Vec<(&str, [usize; 4], [usize; 4], ConvOpts)> = vec![
        // 3x3 over 20x20 at batch 4: 100 tiles, Winograd
        ("winograd", [4, 8, 20, 20], [8, 8, 3, 3], same3),
        // 3x3 over 7x7 at batch 1: 49 columns, the transposed product
        ("transposed", [1, 24, 7, 7], [40, 24, 3, 3], same3),
        // a strided 7x7 over 30x30 at batch 2: the plain product
        (
            "plain",
            [2, 6, 30, 30],
            [20, 6, 7, 7],
            ConvOpts {
                stride: [2, 2],
                ..Default::default()
            },
        ),
        // 11x11 at stride 4 over 67x67 at batch 4: a 3x3 over 48 phase planes of
        // 17x17, 64 tiles, Winograd
        (
            "phases",
            [4, 3, 67, 67],
            [16, 3, 11, 11],
            ConvOpts {
                stride: [4, 4],
                ..Default::default()
            },
        ),
        (
            "pointwise",
            [2, 16, 9, 9],
            [24, 16, 1, 1],
            ConvOpts::default(),
        ),
        (
            "groups",
            [2, 12, 11, 11],
            [18, 4, 3, 3],
            ConvOpts { groups: 3, ..same3 },
        ),
    ];
    for (name, xs, ws, o) in cases {
        let x = random(&xs, 1);
        let mut w = random(&ws, 2);
        let b = random(&[ws[0]], 3);
        let mut cache = conv::FilterCache::default();
        for round in 0..3 {
            if round == 2 {
                w.scale(-0.5);
            }
            let want = conv::forward_relu(&x, &w, Some(&b), &o, true).unwrap();
            let got = conv::forward_relu_cached(&x, &w, Some(&b), &o, true, &mut cache).unwrap();
            assert!(!cache.is_empty(), "{name}: the filters are kept");
            let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert!(
                bits(&got) == bits(&want),
                "{name}, round {round}: not the bits of a fresh packing"
            );
            let reference = conv_reference(&x, &w, Some(&b), &o);
            let relu: Vec<f64> = reference.iter().map(|v| v.max(0.0)).collect();
            assert_close(got.data(), &relu, name);
        }
    }
}
