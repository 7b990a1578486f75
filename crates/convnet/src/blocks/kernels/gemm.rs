//! Single-precision matrix products on strided views through GEMM libraries. The
//! layers now use the project's own [`super::sgemm`]; these products remain as the
//! library baseline it is measured against (`tests/conv_gemm_speed.rs`).
//!
//! Backends, chosen by measurement (`tests/conv_gemm_speed.rs`, one thread, on this
//! project's AVX2 machines; `gemm`'s AVX-512 kernels do not apply there):
//! `matrixmultiply` 0.3 was 3-15% faster than `gemm` 0.19 on 11 of 13 convolution
//! shapes, `gemm` faster where the inner dimension is tiny (LeNet's first layer,
//! K = 25). So one-thread products use `matrixmultiply` unless K is small, and
//! products split over threads use `gemm`, whose threads come from the current rayon
//! pool (`matrixmultiply`'s own thread pool would ignore `--threads`; the workspace
//! builds it without its `threading` feature).

/// A read-only strided matrix: element (i, j) is `data[off + i*rs + j*cs]`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub off: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

/// A writable strided matrix, laid out as [`View`].
#[derive(Debug)]
pub struct ViewMut<'a> {
    pub data: &'a mut [f32],
    pub off: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows x cols` matrix at `off`.
    pub fn rows(data: &'a [f32], off: usize, rows: usize, cols: usize) -> Self {
        View {
            data,
            off,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, without moving data.
    pub fn t(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    fn fits(&self) -> bool {
        fits(
            self.data.len(),
            self.off,
            self.rows,
            self.cols,
            self.rs,
            self.cs,
        )
    }
}

impl<'a> ViewMut<'a> {
    /// A row-major `rows x cols` matrix at `off`.
    pub fn rows(data: &'a mut [f32], off: usize, rows: usize, cols: usize) -> Self {
        ViewMut {
            data,
            off,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    fn fits(&self) -> bool {
        fits(
            self.data.len(),
            self.off,
            self.rows,
            self.cols,
            self.rs,
            self.cs,
        )
    }
}

/// Whether the last element of the view lies inside a buffer of `len`.
fn fits(len: usize, off: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    (rows - 1)
        .checked_mul(rs)
        .and_then(|a| (cols - 1).checked_mul(cs).and_then(|b| a.checked_add(b)))
        .and_then(|last| last.checked_add(off))
        .is_some_and(|last| last < len)
}

/// Which library computes the products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Gemm,
    MatrixMultiply,
}

/// Inner dimensions up to this go to `gemm` even on one thread.
const SMALL_K: usize = 48;

/// The backend for a product of inner dimension `k` on `threads` threads.
fn choose(k: usize, threads: usize) -> Backend {
    if threads > 1 || k <= SMALL_K {
        Backend::Gemm
    } else {
        Backend::MatrixMultiply
    }
}

/// `c = a * b`, or `c += a * b` when `accumulate`. `threads` > 1 lets the product split
/// its output blocks over the current rayon pool; each output element is still summed
/// by one thread in a fixed order, so results do not depend on scheduling.
///
/// Panics when a view reaches outside its buffer or the sizes disagree: callers derive
/// both from checked shapes, so that is a bug here, never a user's input.
pub fn matmul(c: ViewMut, a: View, b: View, accumulate: bool, threads: usize) {
    matmul_with(choose(a.cols, threads), c, a, b, accumulate, threads)
}

/// [`matmul`] with a chosen backend (for measuring one against the other);
/// `matrixmultiply` always runs on the calling thread.
pub fn matmul_with(
    backend: Backend,
    c: ViewMut,
    a: View,
    b: View,
    accumulate: bool,
    threads: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && c.rows == m && c.cols == n,
        "matmul sizes: {m}x{k} times {}x{n} into {}x{}",
        b.rows,
        c.rows,
        c.cols
    );
    assert!(
        a.fits() && b.fits() && c.fits(),
        "matmul view outside its buffer"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    c.data[c.off + i * c.rs + j * c.cs] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: `fits` checked that every element of the three views lies inside its
    // slice, and `c` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        let cp = c.data.as_mut_ptr().add(c.off);
        let ap = a.data.as_ptr().add(a.off);
        let bp = b.data.as_ptr().add(b.off);
        match backend {
            Backend::Gemm => {
                let par = if threads > 1 {
                    gemm::Parallelism::Rayon(threads)
                } else {
                    gemm::Parallelism::None
                };
                gemm::gemm(
                    m,
                    n,
                    k,
                    cp,
                    c.cs as isize,
                    c.rs as isize,
                    accumulate,
                    ap,
                    a.cs as isize,
                    a.rs as isize,
                    bp,
                    b.cs as isize,
                    b.rs as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
            Backend::MatrixMultiply => matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                ap,
                a.rs as isize,
                a.cs as isize,
                bp,
                b.rs as isize,
                b.cs as isize,
                if accumulate { 1.0 } else { 0.0 },
                cp,
                c.rs as isize,
                c.cs as isize,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: View, b: View) -> Vec<f32> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for l in 0..a.cols {
                    c[i * b.cols + j] +=
                        a.data[a.off + i * a.rs + l * a.cs] * b.data[b.off + l * b.rs + j * b.cs];
                }
            }
        }
        c
    }

    #[test]
    fn strided_products_match_a_naive_loop() {
        let a: Vec<f32> = (0..40).map(|v| (v % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..60).map(|v| (v % 5) as f32 - 2.0).collect();
        for backend in [Backend::Gemm, Backend::MatrixMultiply] {
            // a transposed view at an offset times a row-major one
            let av = View::rows(&a, 2, 4, 5).t();
            let bv = View::rows(&b, 3, 4, 6);
            let want = naive(av, bv);
            let mut c = vec![1.0; 30];
            matmul_with(backend, ViewMut::rows(&mut c, 0, 5, 6), av, bv, false, 1);
            assert_eq!(c, want, "{backend:?}");
            matmul_with(backend, ViewMut::rows(&mut c, 0, 5, 6), av, bv, true, 2);
            let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
            assert_eq!(c, twice, "{backend:?} accumulate");
        }
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_view_past_its_buffer_is_refused() {
        let a = vec![0.0; 10];
        let mut c = vec![0.0; 4];
        let v = View::rows(&a, 1, 2, 5);
        matmul(
            ViewMut::rows(&mut c, 0, 2, 2),
            v,
            View::rows(&a, 0, 5, 2),
            false,
            1,
        );
    }
}
