//! Proof for the Winograd F(4x4, 3x3) kernels: forward, input gradient and filter
//! gradient against f64 references at every instruction level this CPU runs, over
//! paddings, odd sizes, groups and batches; numerical derivatives through the
//! convolution block on shapes that take the Winograd path; and the accuracy on an
//! ImageNet-size layer, measured and bounded.

use convnet::blocks::conv::{self, ConvOpts};
use convnet::blocks::kernels::conv_gemm::{self, Geom};
use convnet::blocks::kernels::cpu::Isa;
use convnet::blocks::kernels::winograd;
use convnet::blocks::Pad;
use convnet::gradcheck::{check, random, Tolerance};
use convnet::Tensor;

#[path = "support/conv_reference.rs"]
mod conv_reference;
use conv_reference::conv_reference;

/// A geometry: batch, channels in, height, width, channels out, pad, groups.
fn geom(n: usize, c: usize, h: usize, w: usize, o: usize, pad: Pad, groups: usize) -> Geom {
    let ho = h + pad.top + pad.bottom - 2;
    let wo = w + pad.left + pad.right - 2;
    Geom::new(
        [n, c, h, w],
        [o, c / groups, 3, 3],
        groups,
        pad,
        [1, 1],
        [1, 1],
        [ho, wo],
    )
}

/// `x` value at (n, c, iy, ix), zero outside the image.
fn px(x: &[f32], g: &Geom, n: usize, c: usize, iy: isize, ix: isize) -> f64 {
    if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w {
        return 0.0;
    }
    x[((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize] as f64
}

/// Output (n, o, i, j) of the convolution, in f64.
fn y_at(g: &Geom, x: &[f32], w: &[f32], n: usize, o: usize, i: usize, j: usize) -> f64 {
    let (cg, og) = (g.cg(), g.og());
    let grp = o / og;
    let mut s = 0.0;
    for c in 0..cg {
        for u in 0..3 {
            for v in 0..3 {
                let iy = (i + u) as isize - g.pad.top as isize;
                let ix = (j + v) as isize - g.pad.left as isize;
                s += px(x, g, n, grp * cg + c, iy, ix) * w[((o * cg + c) * 3 + u) * 3 + v] as f64;
            }
        }
    }
    s
}

/// dx at (n, c, iy, ix) for output gradient `dy`, in f64.
fn dx_at(g: &Geom, dy: &[f32], w: &[f32], n: usize, c: usize, iy: usize, ix: usize) -> f64 {
    let (cg, og) = (g.cg(), g.og());
    let grp = c / cg;
    let mut s = 0.0;
    for o in grp * og..(grp + 1) * og {
        for u in 0..3 {
            for v in 0..3 {
                let i = (iy + g.pad.top) as isize - u as isize;
                let j = (ix + g.pad.left) as isize - v as isize;
                if i < 0 || j < 0 || i as usize >= g.ho || j as usize >= g.wo {
                    continue;
                }
                let d = dy[((n * g.c_out + o) * g.ho + i as usize) * g.wo + j as usize] as f64;
                s += d * w[((o * cg + c % cg) * 3 + u) * 3 + v] as f64;
            }
        }
    }
    s
}

/// dw at (o, c, u, v) (c within the group), in f64.
fn dw_at(g: &Geom, x: &[f32], dy: &[f32], o: usize, c: usize, u: usize, v: usize) -> f64 {
    let grp = o / g.og();
    let mut s = 0.0;
    for n in 0..g.n {
        for i in 0..g.ho {
            for j in 0..g.wo {
                let iy = (i + u) as isize - g.pad.top as isize;
                let ix = (j + v) as isize - g.pad.left as isize;
                let d = dy[((n * g.c_out + o) * g.ho + i) * g.wo + j] as f64;
                s += d * px(x, g, n, grp * g.cg() + c, iy, ix);
            }
        }
    }
    s
}

fn rms(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x * x, n + 1));
    (s / n.max(1) as f64).sqrt()
}

/// The largest error relative to the root mean square of the reference.
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    let max = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0.0, f64::max);
    max / rms(want.iter().copied()).max(1e-30)
}

/// The error's root mean square relative to the reference's.
fn rms_err(got: &[f32], want: &[f64]) -> f64 {
    let e = rms(got.iter().zip(want).map(|(&g, &w)| g as f64 - w));
    e / rms(want.iter().copied()).max(1e-30)
}

/// Runs `f` in a pool of `threads` threads.
fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn winograd_matches_the_reference_at_every_level() {
    let cases = [
        geom(2, 8, 9, 11, 8, Pad::all(1), 1),
        geom(1, 5, 14, 7, 6, Pad::all(0), 1),
        geom(3, 8, 6, 13, 4, Pad::all(2), 2),
        geom(2, 3, 10, 10, 17, Pad::new(0, 2, 1, 0), 1),
    ];
    for g in &cases {
        assert!(winograd::applies(g));
        let x = random(&[g.n, g.c, g.h, g.w], 1);
        let w = random(&[g.c_out, g.cg(), 3, 3], 2);
        let b = random(&[g.c_out], 3);
        let dy = random(&[g.n, g.c_out, g.ho, g.wo], 4);
        let mut want_y = Vec::new();
        for n in 0..g.n {
            for o in 0..g.c_out {
                for i in 0..g.ho {
                    for j in 0..g.wo {
                        let v = y_at(g, x.data(), w.data(), n, o, i, j) + b.data()[o] as f64;
                        want_y.push(v.max(0.0));
                    }
                }
            }
        }
        let mut want_dx = Vec::new();
        for n in 0..g.n {
            for c in 0..g.c {
                for iy in 0..g.h {
                    for ix in 0..g.w {
                        want_dx.push(dx_at(g, dy.data(), w.data(), n, c, iy, ix));
                    }
                }
            }
        }
        let mut want_dw = Vec::new();
        for o in 0..g.c_out {
            for c in 0..g.cg() {
                for u in 0..3 {
                    for v in 0..3 {
                        want_dw.push(dw_at(g, x.data(), dy.data(), o, c, u, v));
                    }
                }
            }
        }
        for isa in Isa::available() {
            for threads in [1, 2] {
                let what = format!("{isa:?} {threads} threads {g:?}");
                let (y, dx, dw, dw2) = in_pool(threads, || {
                    let mut y = vec![f32::NAN; want_y.len()];
                    winograd::forward(isa, g, x.data(), w.data(), Some(b.data()), true, &mut y);
                    let mut dx = vec![f32::NAN; want_dx.len()];
                    winograd::backward_data(isa, g, dy.data(), w.data(), &mut dx);
                    let mut dw = vec![f32::NAN; want_dw.len()];
                    winograd::backward_filter(isa, g, x.data(), dy.data(), &mut dw, false);
                    // a second time, added: twice the gradient
                    let mut dw2 = dw.clone();
                    winograd::backward_filter(isa, g, x.data(), dy.data(), &mut dw2, true);
                    (y, dx, dw, dw2)
                });
                let want_dw2: Vec<f64> = want_dw.iter().map(|v| 2.0 * v).collect();
                for (name, got, want) in [
                    ("y", &y, &want_y),
                    ("dx", &dx, &want_dx),
                    ("dw", &dw, &want_dw),
                    ("dw accumulated", &dw2, &want_dw2),
                ] {
                    let e = rel_err(got, want);
                    assert!(e < 2e-5, "{name}: error {e:e} of the rms, {what}");
                }
            }
        }
    }
}

/// One image with many tiles (a 50x50 output: 169 tiles of 4x4): the blocks are
/// sized by the thread count, with a last block shorter than the others and
/// panels partly filled (blocks of 96 and 73 tiles with 2 threads, the second's
/// last panel 32 tiles wide; of 64 with 3, panels of 48 and 16), yet the outputs
/// are the same bits for every thread count and match the reference.
#[test]
fn winograd_blocks_cut_by_thread_count_give_the_same_bits() {
    let g = geom(1, 8, 50, 50, 12, Pad::all(1), 1);
    let x = random(&[1, 8, 50, 50], 31);
    let w = random(&[12, 8, 3, 3], 32);
    let b = random(&[12], 33);
    let mut want = Vec::new();
    for o in 0..g.c_out {
        for i in 0..g.ho {
            for j in 0..g.wo {
                want.push(y_at(&g, x.data(), w.data(), 0, o, i, j) + b.data()[o] as f64);
            }
        }
    }
    for isa in Isa::available() {
        let outputs: Vec<Vec<f32>> = [1, 2, 3, 5]
            .iter()
            .map(|&threads| {
                let mut y = vec![f32::NAN; want.len()];
                in_pool(threads, || {
                    winograd::forward(isa, &g, x.data(), w.data(), Some(b.data()), false, &mut y)
                });
                y
            })
            .collect();
        let e = rel_err(&outputs[0], &want);
        assert!(e < 2e-5, "{isa:?}: error {e:e} of the rms");
        for y in &outputs[1..] {
            assert!(
                y.iter()
                    .zip(&outputs[0])
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{isa:?}: the thread count changed the outputs"
            );
        }
    }
}

/// Few tiles under many channels (a 7x7 output at batch 2: 8 tiles, 64 channels in
/// and out, as ResNet-18's last layers) share the positions' products out among the
/// threads instead of the tiles: the forward and the input gradient are the bits of
/// one thread's blocks, and match f64.
#[test]
fn few_tiles_under_many_channels_share_out_the_positions() {
    let g = geom(2, 64, 7, 7, 64, Pad::all(1), 1);
    let x = random(&[2, 64, 7, 7], 41);
    let w = random(&[64, 64, 3, 3], 42);
    let b = random(&[64], 43);
    let dy = random(&[2, 64, 7, 7], 44);
    let (mut want_y, mut want_dx) = (Vec::new(), Vec::new());
    for n in 0..g.n {
        for o in 0..g.c_out {
            for i in 0..g.ho {
                for j in 0..g.wo {
                    let v = y_at(&g, x.data(), w.data(), n, o, i, j) + b.data()[o] as f64;
                    want_y.push(v.max(0.0));
                    want_dx.push(dx_at(&g, dy.data(), w.data(), n, o, i, j));
                }
            }
        }
    }
    for isa in Isa::available() {
        let runs: Vec<(Vec<f32>, Vec<f32>)> = [1, 2, 3]
            .iter()
            .map(|&threads| {
                in_pool(threads, || {
                    let mut y = vec![f32::NAN; want_y.len()];
                    winograd::forward(isa, &g, x.data(), w.data(), Some(b.data()), true, &mut y);
                    let mut dx = vec![f32::NAN; want_dx.len()];
                    winograd::backward_data(isa, &g, dy.data(), w.data(), &mut dx);
                    (y, dx)
                })
            })
            .collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (k, (y, dx)) in runs.iter().enumerate() {
            let (ey, edx) = (rel_err(y, &want_y), rel_err(dx, &want_dx));
            // (sums of 576 products: the bound of the ImageNet-layer test)
            assert!(
                ey < 5e-5 && edx < 5e-5,
                "{isa:?} run {k}: errors {ey:e} {edx:e}"
            );
            assert!(
                bits(y) == bits(&runs[0].0) && bits(dx) == bits(&runs[0].1),
                "{isa:?}: {} threads changed the bits",
                k + 1
            );
        }
    }
}

/// The convolution block's derivatives against numerical ones.
fn derivatives_check(x: Tensor, w: Tensor, b: Tensor, o: &ConvOpts) {
    let tol = Tolerance {
        eps: 0.1,
        rtol: 1e-3,
        atol: 1e-3,
    };
    check(
        &[x, w, b],
        |t: &[Tensor]| conv::forward(&t[0], &t[1], Some(&t[2]), o),
        |t: &[Tensor], dy: &Tensor| {
            let g = conv::backward(&t[0], &t[1], Some(&t[2]), o, dy, true)?;
            Ok(vec![g.dx, Some(g.dw), g.db])
        },
        tol,
        5,
    )
    .unwrap();
}

#[test]
fn winograd_gradients_are_numerical_derivatives() {
    // 3 x 8 x 20 x 20 with 8 filters: outputs 21 x 19, 3 * 6 * 5 = 90 tiles of 4x4
    let o = ConvOpts {
        pad: Pad::new(1, 2, 0, 1),
        ..Default::default()
    };
    let x = random(&[3, 8, 20, 20], 11);
    let w = random(&[8, 8, 3, 3], 12);
    let b = random(&[8], 13);
    let y = conv::out_dims(x.dims4().unwrap(), w.shape(), &o).unwrap();
    let g = geom(3, 8, 20, 20, 8, o.pad, 1);
    assert_eq!((g.ho, g.wo), (y.h, y.w));
    assert!(
        winograd::worth_it(&g),
        "the shape must take the Winograd path"
    );
    derivatives_check(x, w, b, &o);

    // the filter gradient takes Winograd from 256 tiles: 8 channels of 64x64, one
    // image, derivatives in the filters and bias (the image held fixed)
    let g = geom(1, 8, 64, 64, 8, Pad::all(1), 1);
    assert!(winograd::worth_it_for_filters(&g));
    let o = ConvOpts {
        pad: Pad::all(1),
        ..Default::default()
    };
    let x = random(&[1, 8, 64, 64], 14);
    let tol = Tolerance {
        eps: 0.1,
        rtol: 1e-3,
        atol: 1e-3,
    };
    check(
        &[random(&[8, 8, 3, 3], 15), random(&[8], 16)],
        |t: &[Tensor]| conv::forward(&x, &t[0], Some(&t[1]), &o),
        |t: &[Tensor], dy: &Tensor| {
            let g = conv::backward(&x, &t[0], Some(&t[1]), &o, dy, false)?;
            Ok(vec![Some(g.dw), g.db])
        },
        tol,
        6,
    )
    .unwrap();
}

/// ImageNet-size: VGG-16's conv4_2 (512 channels of 28x28 in and out), one image.
/// The error of sampled outputs against f64, relative to the outputs' rms, for
/// Winograd and for direct summation (the matrix-product path).
#[test]
fn winograd_accuracy_on_an_imagenet_layer() {
    let g = geom(1, 512, 28, 28, 512, Pad::all(1), 1);
    let x = random(&[1, 512, 28, 28], 21);
    // He-like scale, so that outputs have unit size as in a trained network
    let mut w = random(&[512, 512, 3, 3], 22);
    w.scale((3.0f32 / (512.0 * 9.0)).sqrt() * 1.41);
    let mut wino = vec![0.0; g.c_out * g.p()];
    winograd::forward(
        convnet::blocks::kernels::cpu::isa(),
        &g,
        x.data(),
        w.data(),
        None,
        false,
        &mut wino,
    );
    let mut direct = vec![0.0; g.c_out * g.p()];
    conv_gemm::forward_direct(&g, x.data(), w.data(), None, &mut direct);
    let samples: Vec<usize> = (0..1500).map(|k| (k * 7919) % wino.len()).collect();
    let want: Vec<f64> = samples
        .iter()
        .map(|&s| {
            let (o, p) = (s / g.p(), s % g.p());
            y_at(&g, x.data(), w.data(), 0, o, p / g.wo, p % g.wo)
        })
        .collect();
    let pick = |v: &[f32]| samples.iter().map(|&s| v[s]).collect::<Vec<f32>>();
    let (wi, di) = (pick(&wino), pick(&direct));
    println!(
        "conv4_2 forward, error / rms of the outputs: winograd max {:.2e} rms {:.2e}, direct max {:.2e} rms {:.2e}",
        rel_err(&wi, &want),
        rms_err(&wi, &want),
        rel_err(&di, &want),
        rms_err(&di, &want)
    );
    assert!(rms_err(&wi, &want) < 1e-5 && rel_err(&wi, &want) < 5e-5);
    assert!(rms_err(&di, &want) < 1e-6 && rel_err(&di, &want) < 5e-6);
}

#[test]
fn kept_filters_take_the_winograd_path_from_fewer_tiles() {
    // batch 1, 16 channels of 28x28: 49 tiles, under the 64 that a forward
    // transforming its filters each time needs, over the 32 of one that keeps them
    let g = geom(1, 16, 28, 28, 16, Pad::all(1), 1);
    assert!(!winograd::worth_it(&g) && winograd::worth_it_kept(&g));
    let o = ConvOpts {
        pad: Pad::all(1),
        ..Default::default()
    };
    let x = random(&[1, 16, 28, 28], 21);
    let w = random(&[16, 16, 3, 3], 22);
    let mut cache = conv::FilterCache::default();
    let kept = conv::forward_relu_cached(&x, &w, None, &o, false, &mut cache).unwrap();
    let mut by_winograd = vec![f32::NAN; kept.data().len()];
    winograd::forward(
        Isa::detect(),
        &g,
        x.data(),
        w.data(),
        None,
        false,
        &mut by_winograd,
    );
    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(kept.data()), bits(&by_winograd));
    let want: Vec<f64> = (0..16)
        .flat_map(|oc| (0..28 * 28).map(move |p| (oc, p)))
        .map(|(oc, p)| y_at(&g, x.data(), w.data(), 0, oc, p / 28, p % 28))
        .collect();
    let e = rel_err(kept.data(), &want);
    assert!(e < 2e-5, "error {e:e} of the rms");
    // a forward without kept filters multiplies directly
    let fresh = conv::forward(&x, &w, None, &o).unwrap();
    assert_ne!(bits(fresh.data()), bits(kept.data()));
}

/// A strided layer whose kernel covers three phases a side (AlexNet's first layer:
/// 11x11 at stride 4) takes Winograd over its input's phases: the outputs are the
/// strided convolution's, within Winograd's accuracy, and not the direct product's
/// bits; the derivatives (taken by the direct kernels) agree with the forward.
#[test]
fn a_strided_layer_takes_winograd_over_its_phases() {
    let o = ConvOpts {
        pad: Pad::all(2),
        stride: [4, 4],
        ..Default::default()
    };
    // 55x55 outputs from 224x224 with padding 2: 14 x 14 tiles of the phase planes
    let (n, c, h, co) = (1, 3, 224, 16);
    let x = random(&[n, c, h, h], 31);
    let mut w = random(&[co, c, 11, 11], 32);
    w.scale(0.1);
    let y = conv::forward(&x, &w, None, &o).unwrap();
    let d = y.dims4().unwrap();
    assert_eq!((d.h, d.w), (55, 55));
    let g = Geom::new(
        [n, c, h, h],
        [co, c, 11, 11],
        1,
        o.pad,
        o.stride,
        [1, 1],
        [55, 55],
    );
    let mut direct = vec![0.0; y.data().len()];
    conv_gemm::forward_direct(&g, x.data(), w.data(), None, &mut direct);
    assert_ne!(y.data(), &direct[..], "the phase path was not taken");
    let want = conv_reference(&x, &w, None, &o);
    // the bounds of the ImageNet layer above
    let (max, rms) = (rel_err(y.data(), &want), rms_err(y.data(), &want));
    println!("11x11/4 by phases, error / rms of the outputs: max {max:.2e} rms {rms:.2e}");
    assert!(rms < 1e-5 && max < 5e-5, "max {max:e}, rms {rms:e}");

    // derivatives on a small case of the same kind: 5x5 at stride 2 (three phases a
    // side) over 35x35, 17x17 outputs, 5 x 5 phase tiles in each of three images
    let o = ConvOpts {
        pad: Pad::all(1),
        stride: [2, 2],
        ..Default::default()
    };
    let g = Geom::new(
        [3, 2, 35, 35],
        [8, 2, 5, 5],
        1,
        o.pad,
        o.stride,
        [1, 1],
        [17, 17],
    );
    let split = convnet::blocks::kernels::phases::split(&g).expect("three phases a side");
    assert!(winograd::worth_it(&split));
    let x = random(&[3, 2, 35, 35], 33);
    let w = random(&[8, 2, 5, 5], 34);
    let b = random(&[8], 35);
    derivatives_check(x, w, b, &o);
}
