//! Not a test but a measurement, run by hand:
//! `MATMUL_NUM_THREADS=1 RAYON_NUM_THREADS=1 cargo test --release -p convnet --test conv_gemm_speed -- --ignored --nocapture`
//! Times one-thread matrix products of the shapes convolution produces, with `gemm`
//! and with `matrixmultiply` (its own threads pinned to one by the variable above), to
//! choose the backend. Nothing is asserted on time.

use convnet::blocks::kernels::cpu::Isa;
use convnet::blocks::kernels::gemm::{matmul_with, Backend, View, ViewMut};
use convnet::blocks::kernels::sgemm::{self, Epilogue, Strided, StridedMut};
use convnet::gradcheck::random;

/// (name, M, K, N, A stored transposed, B stored transposed): the per-thread products of the bench cases.
const SHAPES: &[(&str, usize, usize, usize, bool, bool)] = &[
    ("vgg64 fwd W*col", 64, 576, 3136, false, false),
    ("vgg64 dx W^T*dY", 576, 64, 3136, true, false),
    ("vgg64 dw dY*col^T", 64, 3136, 576, false, true),
    ("vgg256 fwd", 256, 2304, 392, false, false),
    ("vgg256 dx", 2304, 256, 392, true, false),
    ("vgg256 dw", 256, 392, 2304, false, true),
    ("lenet1 fwd", 20, 25, 1728, false, false),
    ("lenet2 fwd", 50, 500, 2048, false, false),
    ("lenet2 dw", 50, 2048, 500, false, true),
    ("alexnet fwd", 96, 363, 3025, false, false),
    ("alexnet dx", 363, 96, 3025, true, false),
    ("pointwise fwd", 512, 512, 196, false, false),
    ("pointwise dx", 512, 512, 196, true, false),
];

/// CPU time of this thread, in seconds (steady when other processes share the cores).
fn thread_time() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Least thread CPU time of 10 runs after a warm-up, in seconds.
fn time(f: &mut dyn FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..10 {
        let t = thread_time();
        f();
        best = best.min(thread_time() - t);
    }
    best
}

/// An `r x c` operand, stored transposed when `t`.
fn view(d: &[f32], r: usize, c: usize, t: bool) -> View<'_> {
    if t {
        View::rows(d, 0, c, r).t()
    } else {
        View::rows(d, 0, r, c)
    }
}

#[test]
#[ignore]
fn gemm_against_matrixmultiply_on_conv_shapes() {
    for &(name, m, k, n, ta, tb) in SHAPES {
        let a = random(&[m, k], 1);
        let b = random(&[k, n], 2);
        let mut c = vec![0.0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        let mut rate = |backend| {
            let t = time(&mut || {
                matmul_with(
                    backend,
                    ViewMut::rows(&mut c, 0, m, n),
                    view(a.data(), m, k, ta),
                    view(b.data(), k, n, tb),
                    false,
                    1,
                )
            });
            flops / t / 1e9
        };
        let g = rate(Backend::Gemm);
        let mm = rate(Backend::MatrixMultiply);
        let (ar, ac) = if ta { (1, m) } else { (k, 1) };
        let (br, bc) = if tb { (1, k) } else { (n, 1) };
        let mut own = |isa| {
            let t = time(&mut || {
                let av = Strided {
                    data: a.data(),
                    off: 0,
                    rs: ar,
                    cs: ac,
                };
                let bv = Strided {
                    data: b.data(),
                    off: 0,
                    rs: br,
                    cs: bc,
                };
                let sink = StridedMut::new(&mut c, 0, m, n, n, 1);
                sgemm::gemm_with(isa, 1, m, n, k, &av, &bv, &sink, Epilogue::default());
            });
            flops / t / 1e9
        };
        let levels: Vec<String> = Isa::available()
            .into_iter()
            .map(|isa| format!("{} {:6.1}", isa.name(), own(isa)))
            .collect();
        println!(
            "{name:22} {m:4}x{k:4}x{n:4}  gemm {g:6.1}  matrixmultiply {mm:6.1}  sgemm {} GFLOP/s",
            levels.join("  ")
        );
    }
}
