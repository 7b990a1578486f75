//! Pooling: hand-computed cases, an independent reference over an enumeration of
//! windows, strides and per-side pads, numerical derivatives, and bad inputs.

use convnet::blocks::pool::{self, PoolMethod, PoolOpts};
use convnet::blocks::Pad;
use convnet::gradcheck::{self, Tolerance};
use convnet::Tensor;

fn opts(method: PoolMethod, window: [usize; 2], stride: [usize; 2], pad: Pad) -> PoolOpts {
    PoolOpts {
        method,
        window,
        stride,
        pad,
        count_pad: false,
    }
}

fn t4(shape: [usize; 4], v: &[f32]) -> Tensor {
    Tensor::from_vec(&shape, v.to_vec()).unwrap()
}

#[test]
fn max_and_avg_of_a_4x4_by_hand() {
    #[rustfmt::skip]
    let x = t4([1, 1, 4, 4], &[
        1., 2., 5., 3.,
        4., 0., 1., 1.,
        7., 8., 2., 2.,
        6., 9., 3., 10.,
    ]);
    let max = opts(PoolMethod::Max, [2, 2], [2, 2], Pad::all(0));
    let y = pool::forward(&x, &max).unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.data(), &[4., 5., 9., 10.]);
    let avg = PoolOpts {
        method: PoolMethod::Avg,
        ..max
    };
    let y = pool::forward(&x, &avg).unwrap();
    assert_eq!(y.data(), &[7. / 4., 10. / 4., 30. / 4., 17. / 4.]);
    // 3x3 windows, stride 1: the maxima of the four overlapping windows.
    let o = opts(PoolMethod::Max, [3, 3], [1, 1], Pad::all(0));
    assert_eq!(pool::forward(&x, &o).unwrap().data(), &[8., 8., 9., 10.]);
}

#[test]
fn padding_is_minus_infinity_for_max_and_not_counted_for_avg() {
    let x = t4([1, 1, 2, 2], &[-1., -2., -3., -4.]);
    let max = opts(PoolMethod::Max, [2, 2], [2, 2], Pad::all(1));
    let y = pool::forward(&x, &max).unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.data(), &[-1., -2., -3., -4.]);
    let mut avg = PoolOpts {
        method: PoolMethod::Avg,
        ..max
    };
    assert_eq!(
        pool::forward(&x, &avg).unwrap().data(),
        &[-1., -2., -3., -4.]
    );
    avg.count_pad = true;
    assert_eq!(
        pool::forward(&x, &avg).unwrap().data(),
        &[-0.25, -0.5, -0.75, -1.0]
    );
    // Asymmetric: one row of padding on top only, windows 2x1.
    let o = opts(PoolMethod::Avg, [2, 1], [1, 1], Pad::new(1, 0, 0, 0));
    let y = pool::forward(&x, &o).unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.data(), &[-1., -2., -2., -3.]);
}

#[test]
fn max_backward_routes_to_the_first_maximum() {
    let x = t4([1, 1, 2, 2], &[3., 3., 3., 3.]);
    let o = opts(PoolMethod::Max, [2, 2], [2, 2], Pad::all(0));
    let dx = pool::backward(&x, &o, &t4([1, 1, 1, 1], &[5.])).unwrap();
    assert_eq!(dx.data(), &[5., 0., 0., 0.]);
    // Overlapping windows (generic path) with ties: each window's first maximum.
    let x = t4([1, 1, 2, 3], &[1., 2., 2., 0., 2., 2.]);
    let o = opts(PoolMethod::Max, [2, 2], [1, 1], Pad::all(0));
    let dx = pool::backward(&x, &o, &t4([1, 1, 1, 2], &[1., 10.])).unwrap();
    assert_eq!(dx.data(), &[0., 11., 0., 0., 0., 0.]);
}

/// A direct reference: pads an explicit copy with -inf (max) or NaN markers (avg).
fn reference(x: &Tensor, o: &PoolOpts) -> Vec<f64> {
    let d = x.dims4().unwrap();
    let (kh, kw) = (o.window[0], o.window[1]);
    let ph = d.h + o.pad.top + o.pad.bottom;
    let pw = d.w + o.pad.left + o.pad.right;
    let oh = (ph - kh) / o.stride[0] + 1;
    let ow = (pw - kw) / o.stride[1] + 1;
    let mut out = Vec::new();
    for n in 0..d.n {
        for c in 0..d.c {
            for i in 0..oh {
                for j in 0..ow {
                    let mut vals = Vec::new();
                    for a in 0..kh {
                        for b in 0..kw {
                            let r = (i * o.stride[0] + a) as isize - o.pad.top as isize;
                            let s = (j * o.stride[1] + b) as isize - o.pad.left as isize;
                            let inside =
                                r >= 0 && s >= 0 && (r as usize) < d.h && (s as usize) < d.w;
                            vals.push(inside.then(|| x.at4(n, c, r as usize, s as usize) as f64));
                        }
                    }
                    let real: Vec<f64> = vals.iter().flatten().copied().collect();
                    out.push(match o.method {
                        PoolMethod::Max => real.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        PoolMethod::Avg => {
                            let div = if o.count_pad { vals.len() } else { real.len() };
                            real.iter().sum::<f64>() / div as f64
                        }
                    });
                }
            }
        }
    }
    out
}

/// Every configuration of the enumeration whose pads are smaller than the windows.
fn configs() -> Vec<PoolOpts> {
    let pads = [
        Pad::all(0),
        Pad::new(1, 0, 0, 1),
        Pad::new(0, 2, 1, 0),
        Pad::new(2, 1, 0, 2),
        Pad::all(1),
    ];
    let mut v = Vec::new();
    for kh in 1..=3 {
        for kw in 1..=3 {
            for sh in 1..=3 {
                for sw in 1..=3 {
                    for &pad in &pads {
                        if pad.top.max(pad.bottom) >= kh || pad.left.max(pad.right) >= kw {
                            continue;
                        }
                        for (method, count_pad) in [
                            (PoolMethod::Max, false),
                            (PoolMethod::Avg, false),
                            (PoolMethod::Avg, true),
                        ] {
                            v.push(PoolOpts {
                                method,
                                window: [kh, kw],
                                stride: [sh, sw],
                                pad,
                                count_pad,
                            });
                        }
                    }
                }
            }
        }
    }
    v
}

const SHAPES: [[usize; 4]; 3] = [[2, 2, 5, 7], [3, 1, 6, 5], [1, 2, 4, 4]];

#[test]
fn forward_matches_a_direct_reference() {
    let cs = configs();
    assert!(cs.len() > 500, "{}", cs.len());
    for (i, o) in cs.iter().enumerate() {
        let x = gradcheck::random(&SHAPES[i % SHAPES.len()], i as u64);
        let y = pool::forward(&x, o).unwrap();
        let r = reference(&x, o);
        assert_eq!(y.len(), r.len(), "{o:?}");
        for (k, (&a, &b)) in y.data().iter().zip(&r).enumerate() {
            assert!((a as f64 - b).abs() <= 1e-6, "{o:?} output {k}: {a} vs {b}");
        }
    }
}

#[test]
fn fast_2x2_path_matches_reference_on_odd_sizes() {
    let o = opts(PoolMethod::Max, [2, 2], [2, 2], Pad::all(0));
    for (i, shape) in [[2, 3, 7, 9], [1, 1, 2, 2], [2, 2, 5, 4], [1, 40, 64, 64]]
        .iter()
        .enumerate()
    {
        let x = gradcheck::random(shape, 100 + i as u64);
        let y = pool::forward(&x, &o).unwrap();
        let r = reference(&x, &o);
        assert!(
            y.data().iter().zip(&r).all(|(&a, &b)| a as f64 == b),
            "{shape:?}"
        );
    }
}

#[test]
fn derivatives_match_over_the_enumeration() {
    let tol = Tolerance {
        eps: 2e-3,
        rtol: 1e-3,
        atol: 1e-3,
    };
    for (i, o) in configs().iter().enumerate() {
        // Spaced values (gaps of 2/140 at least) keep every maximum where it is.
        let x = gradcheck::spaced(&SHAPES[i % SHAPES.len()], i as u64);
        let r = gradcheck::check(
            &[x],
            |x| pool::forward(&x[0], o),
            |x, dy| Ok(vec![Some(pool::backward(&x[0], o, dy)?)]),
            tol,
            i as u64,
        );
        assert!(r.is_ok(), "{o:?}: {r:?}");
    }
}

#[test]
fn bad_options_and_shapes_are_errors_naming_pool() {
    let x = gradcheck::random(&[1, 2, 4, 5], 1);
    let good = opts(PoolMethod::Max, [2, 2], [2, 2], Pad::all(0));
    let bad = [
        PoolOpts {
            window: [0, 2],
            ..good
        },
        PoolOpts {
            stride: [2, 0],
            ..good
        },
        PoolOpts {
            window: [5, 2],
            ..good
        },
        PoolOpts {
            pad: Pad::new(2, 0, 0, 0),
            ..good
        },
        PoolOpts {
            pad: Pad::new(0, 0, 0, 3),
            ..good
        },
    ];
    let expect = ["window 0", "stride 0", "height", "pad top 2", "pad right 3"];
    for (o, want) in bad.iter().zip(expect) {
        let e = pool::forward(&x, o).unwrap_err().to_string();
        assert!(e.starts_with("pool: ") && e.contains(want), "{e}");
        assert!(pool::backward(&x, o, &x).is_err());
    }
    let e = pool::backward(&x, &good, &x).unwrap_err().to_string();
    assert!(
        e.starts_with("pool: dy has shape 1x2x4x5") && e.contains("1x2x2x2"),
        "{e}"
    );
    let x5 = Tensor::zeros(&[1, 1, 1, 4, 4]).unwrap();
    assert!(pool::forward(&x5, &good)
        .unwrap_err()
        .to_string()
        .starts_with("pool: "));
    let empty = Tensor::zeros(&[1, 1, 0, 4]).unwrap();
    let e = pool::forward(&empty, &good).unwrap_err().to_string();
    assert!(e.starts_with("pool: ") && e.contains("empty"), "{e}");
}

#[test]
fn empty_batch_gives_an_empty_output() {
    let x = Tensor::zeros(&[0, 3, 4, 4]).unwrap();
    let o = opts(PoolMethod::Max, [2, 2], [2, 2], Pad::all(0));
    let y = pool::forward(&x, &o).unwrap();
    assert_eq!(y.shape(), &[0, 3, 2, 2]);
    assert!(pool::backward(&x, &o, &y).unwrap().is_empty());
}

fn time_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = std::time::Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() * 1e3 / reps as f64
}

/// Throughput on the benchmark case, through the block (a fresh output each call,
/// whose first touch costs page faults) and through the kernel into a reused buffer.
/// Run with `RAYON_NUM_THREADS=2 cargo test --release -p convnet --test pool_tests
/// throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_on_16x64x112x112() {
    use convnet::blocks::kernels::pool as k;
    let x = gradcheck::random(&[16, 64, 112, 112], 3);
    for (name, o) in [
        (
            "max 2x2/2",
            opts(PoolMethod::Max, [2, 2], [2, 2], Pad::all(0)),
        ),
        (
            "max 3x3/2 pad 1",
            opts(PoolMethod::Max, [3, 3], [2, 2], Pad::all(1)),
        ),
        (
            "avg 2x2/2",
            opts(PoolMethod::Avg, [2, 2], [2, 2], Pad::all(0)),
        ),
    ] {
        let mut y = pool::forward(&x, &o).unwrap();
        let d = y.dims4().unwrap();
        let g = pool::geometry(x.dims4().unwrap(), d, &o);
        let gb = |bytes: usize, ms: f64| 4.0 * bytes as f64 / ms / 1e6;
        let fwd = time_ms(10, || {
            drop(std::hint::black_box(pool::forward(&x, &o).unwrap()))
        });
        let fwd_k = time_ms(10, || match o.method {
            PoolMethod::Max => k::max_forward(x.data(), &g, y.data_mut()),
            PoolMethod::Avg => k::avg_forward(x.data(), &g, false, y.data_mut()),
        });
        let bwd = time_ms(3, || {
            drop(std::hint::black_box(pool::backward(&x, &o, &y).unwrap()))
        });
        let mut dx = x.clone();
        let bwd_k = time_ms(3, || {
            dx.data_mut().fill(0.0);
            match o.method {
                PoolMethod::Max => k::max_backward(x.data(), &g, y.data(), dx.data_mut()),
                PoolMethod::Avg => k::avg_backward(&g, false, y.data(), dx.data_mut()),
            }
        });
        let (io_f, io_b) = (x.len() + y.len(), 2 * x.len() + y.len());
        println!(
            "{name}: forward {fwd:.2} ms {:.2} GB/s (kernel, reused output: {fwd_k:.2} ms {:.2} GB/s); \
             backward {bwd:.2} ms {:.2} GB/s (kernel incl. zeroing dx: {bwd_k:.2} ms {:.2} GB/s)",
            gb(io_f, fwd),
            gb(io_f, fwd_k),
            gb(io_b, bwd),
            gb(io_b, bwd_k)
        );
    }
}

/// The 2x2/2 backward (four windows at a time where a row has them) routes each dy
/// as a row-major scan for the first strict maximum does, over ties, infinities and
/// NaNs (passed over; the first pixel when nothing is greater than -inf).
#[test]
fn fast_2x2_backward_routes_as_a_scan_on_ties_and_nans() {
    let o = opts(PoolMethod::Max, [2, 2], [2, 2], Pad::all(0));
    for (i, shape) in [[2, 3, 6, 18], [1, 2, 4, 8], [1, 1, 5, 11], [2, 2, 8, 24]]
        .iter()
        .enumerate()
    {
        let d = gradcheck::random(shape, 300 + i as u64);
        // few distinct values, so that windows tie; some NaN and infinities
        let x: Vec<f32> = d
            .data()
            .iter()
            .enumerate()
            .map(|(k, &v)| match k % 13 {
                3 => f32::NAN,
                7 => f32::NEG_INFINITY,
                11 => f32::INFINITY,
                _ => (v * 2.0).round(),
            })
            .collect();
        let x = Tensor::from_vec(shape, x).unwrap();
        let (oh, ow) = (shape[2] / 2, shape[3] / 2);
        let dy = gradcheck::random(&[shape[0], shape[1], oh, ow], 400 + i as u64);
        let dx = pool::backward(&x, &o, &dy).unwrap();
        let mut want = vec![0.0f32; x.len()];
        let w = shape[3];
        for plane in 0..shape[0] * shape[1] {
            for oy in 0..oh {
                for ox in 0..ow {
                    let at =
                        |u: usize, v: usize| plane * shape[2] * w + (2 * oy + u) * w + 2 * ox + v;
                    let (mut best, mut arg) = (f32::NEG_INFINITY, at(0, 0));
                    for (u, v) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        if x.data()[at(u, v)] > best {
                            best = x.data()[at(u, v)];
                            arg = at(u, v);
                        }
                    }
                    want[arg] = dy.data()[(plane * oh + oy) * ow + ox];
                }
            }
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(dx.data()), bits(&want), "{shape:?}");
    }
}

/// Two 13x17 planes of -0, +0, 1, infinities and NaN, so that windows tie.
const SCAN_H: usize = 13;
const SCAN_W: usize = 17;

fn scan_planes() -> Vec<f32> {
    let specials = [
        0.0f32,
        -0.0,
        1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    (0..2 * SCAN_H * SCAN_W)
        .map(|i| specials[(i * 7 + i / 5) % specials.len()])
        .collect()
}

/// (window, stride, pad) of the scan tests.
const SCAN_CASES: [(usize, usize, usize); 6] = [
    (3, 2, 1),
    (3, 1, 1),
    (2, 1, 0),
    (3, 3, 2),
    (4, 2, 0),
    (5, 4, 2),
];

/// The index in `data` of the first maximum of a row-major scan of the window of
/// output (oy, ox) of plane `c` (NaNs passed over; its first real pixel when nothing
/// is greater than -inf), and that maximum.
fn scan(
    data: &[f32],
    c: usize,
    oy: usize,
    ox: usize,
    (k, s, p): (usize, usize, usize),
) -> (usize, f32) {
    let (h, w) = (SCAN_H as isize, SCAN_W as isize);
    let (mut m, mut arg) = (f32::NEG_INFINITY, None);
    for r in (oy * s) as isize - p as isize..(oy * s + k) as isize - p as isize {
        for q in (ox * s) as isize - p as isize..(ox * s + k) as isize - p as isize {
            if r >= 0 && q >= 0 && r < h && q < w {
                let at = ((c as isize * h + r) * w + q) as usize;
                arg = arg.or(Some(at));
                if data[at] > m {
                    m = data[at];
                    arg = Some(at);
                }
            }
        }
    }
    (arg.expect("a window holds a real pixel"), m)
}

/// The windows that lie whole inside a row are taken a tap at a time for the whole
/// row: still the bits of a row-major scan of each window that keeps the first
/// maximum (-0 against +0, infinities, NaNs skipped), for every stride.
#[test]
fn max_forward_gives_the_bits_of_a_row_major_scan() {
    let data = scan_planes();
    let x = t4([1, 2, SCAN_H, SCAN_W], &data);
    for (k, s, p) in SCAN_CASES {
        let o = opts(PoolMethod::Max, [k, k], [s, s], Pad::all(p));
        let y = pool::forward(&x, &o).unwrap();
        let d = y.dims4().unwrap();
        for c in 0..2 {
            for oy in 0..d.h {
                for ox in 0..d.w {
                    let (_, m) = scan(&data, c, oy, ox, (k, s, p));
                    assert_eq!(
                        y.at4(0, c, oy, ox).to_bits(),
                        m.to_bits(),
                        "window {k} stride {s} pad {p}, channel {c}, output ({oy}, {ox})"
                    );
                }
            }
        }
    }
}

/// The max pooling backward routes each dy to the first maximum of a row-major scan
/// of its window, over -0/+0 ties, infinities and NaNs, and sums overlapping
/// windows' dy in output order.
#[test]
fn max_backward_gives_the_bits_of_a_row_major_scan() {
    let data = scan_planes();
    let x = t4([1, 2, SCAN_H, SCAN_W], &data);
    for (k, s, p) in SCAN_CASES {
        let o = opts(PoolMethod::Max, [k, k], [s, s], Pad::all(p));
        let y = pool::forward(&x, &o).unwrap();
        let dy = gradcheck::random(y.shape(), 500 + k as u64);
        let dx = pool::backward(&x, &o, &dy).unwrap();
        let d = y.dims4().unwrap();
        let mut want = vec![0.0f32; x.len()];
        for c in 0..2 {
            for oy in 0..d.h {
                for ox in 0..d.w {
                    let (at, _) = scan(&data, c, oy, ox, (k, s, p));
                    want[at] += dy.data()[((c * d.h) + oy) * d.w + ox];
                }
            }
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(dx.data()),
            bits(&want),
            "window {k} stride {s} pad {p}"
        );
    }
}
