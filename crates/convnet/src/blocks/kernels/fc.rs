//! Fully connected layers (a convolution whose kernel covers its whole unpadded
//! input): `y = W x + b` with `W` (C_out x K) and one image per column of `x`.
//!
//! With a few images (batch-1 inference, the small batches of ImageNet training)
//! the layer is bound by reading `W` (VGG-16's fc6 is 411 MB), so the forward reads
//! each weight once: a row of `W` at a time against all images, 16 values per
//! vector, the partial sums of each (row, image) reduced in a fixed order. Larger
//! batches, and both gradients, are matrix products ([`super::sgemm`]) that also
//! read `W` and write `dW` once.

use super::conv_gemm::Geom;
use super::cpu::{self, Isa};
use super::sgemm::{self, Epilogue, PackedA, Strided, StridedMut};
use rayon::prelude::*;

/// Images the forward's dot products take at once, and the batch up to which it
/// uses them (beyond it, `W` would be read more than twice).
const IMAGES: usize = 8;
const SMALL_BATCH: usize = 2 * IMAGES;
/// Rows of `W` per parallel task.
const TASK_ROWS: usize = 32;

/// `y = W x + b` (then ReLU when `relu`).
pub fn forward(g: &Geom, x: &[f32], w: &[f32], b: Option<&[f32]>, relu: bool, y: &mut [f32]) {
    let (og, kg) = (g.og(), g.kg());
    for grp in 0..g.groups {
        let wg = &w[grp * og * kg..(grp + 1) * og * kg];
        let bias = b.map(|b| &b[grp * og..(grp + 1) * og]);
        if g.n > SMALL_BATCH {
            // y^T (og x n) = W (og x kg) x^T (kg x n)
            let a = Strided {
                data: wg,
                off: 0,
                rs: kg,
                cs: 1,
            };
            let xt = Strided {
                data: x,
                off: grp * kg,
                rs: 1,
                cs: g.x_len(),
            };
            let out = StridedMut::new(y, grp * og, og, g.n, 1, g.c_out);
            let ep = Epilogue {
                accumulate: false,
                bias,
                relu,
            };
            sgemm::gemm(og, g.n, kg, &a, &xt, &out, ep);
            continue;
        }
        for n0 in (0..g.n).step_by(IMAGES) {
            let nb = IMAGES.min(g.n - n0);
            let zeros = vec![0.0f32; kg];
            let xs: [&[f32]; IMAGES] = std::array::from_fn(|i| {
                if i < nb {
                    &x[(n0 + i) * g.x_len() + grp * kg..][..kg]
                } else {
                    &zeros[..]
                }
            });
            let mut acc = vec![0.0f32; og * IMAGES];
            let isa = cpu::isa();
            acc.par_chunks_mut(TASK_ROWS * IMAGES)
                .enumerate()
                .for_each(|(t, out)| {
                    let o0 = t * TASK_ROWS;
                    dot_rows_dispatch(isa, wg, kg, &xs, o0, out);
                });
            for i in 0..nb {
                let yrow = &mut y[(n0 + i) * g.c_out + grp * og..][..og];
                for (o, v) in yrow.iter_mut().enumerate() {
                    let s = acc[o * IMAGES + i] + bias.map_or(0.0, |b| b[o]);
                    *v = if relu { super::microkernel::relu(s) } else { s };
                }
            }
        }
    }
}

/// `out[(o - o0) * IMAGES + i] = W[o] . xs[i]` for the rows `o0..` that `out`
/// holds, `W` rows of `k` values.
fn dot_rows(w: &[f32], k: usize, xs: &[&[f32]; IMAGES], o0: usize, out: &mut [f32]) {
    for (r, out) in out.chunks_exact_mut(IMAGES).enumerate() {
        let row = &w[(o0 + r) * k..(o0 + r + 1) * k];
        for (o, x) in out.iter_mut().zip(xs) {
            *o = row.iter().zip(*x).map(|(a, b)| a * b).sum();
        }
    }
}

/// [`dot_rows`] with the vector kernel of `isa`.
fn dot_rows_dispatch(
    isa: Isa,
    w: &[f32],
    k: usize,
    xs: &[&[f32]; IMAGES],
    o0: usize,
    out: &mut [f32],
) {
    let rows = out.len() / IMAGES;
    assert!(w.len() >= (o0 + rows) * k && xs.iter().all(|x| x.len() >= k));
    #[cfg(target_arch = "x86_64")]
    {
        let xp: [*const f32; IMAGES] = std::array::from_fn(|i| xs[i].as_ptr());
        let kernel: Option<(usize, x86::DotFn)> = match isa {
            Isa::Avx512 => Some((2, x86::dot_avx512)),
            Isa::Avx2 => Some((1, x86::dot_avx2)),
            Isa::Scalar => None,
        };
        if let Some((step, f)) = kernel {
            let mut r = 0;
            while r < rows {
                let n = step.min(rows - r);
                // SAFETY: the level was detected on this CPU; rows o0+r.. and the
                // images hold k values each (checked above), `out` holds n rows.
                unsafe {
                    f(
                        w.as_ptr().add((o0 + r) * k),
                        k,
                        n,
                        &xp,
                        out[r * IMAGES..].as_mut_ptr(),
                    )
                };
                r += n;
            }
            return;
        }
    }
    let _ = isa;
    dot_rows(w, k, xs, o0, out)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::IMAGES;
    use std::arch::x86_64::*;

    /// `out[r * IMAGES + i] = w[r] . x[i]` for `rows` consecutive rows of `w` (`k`
    /// apart) and the IMAGES images `x`, each `k` long.
    pub type DotFn = unsafe fn(*const f32, usize, usize, &[*const f32; IMAGES], *mut f32);

    /// A kernel over up to `$rows` rows at once, `$w` lanes per vector; partial
    /// sums are reduced in a fixed order.
    macro_rules! dot {
        ($name:ident, $feat:literal, $rows:literal, $w:literal, $vec:ty,
         $zero:ident, $load:ident, $fmadd:ident, $store:ident) => {
            /// # Safety
            /// The CPU has the target features; the rows and images hold `k`
            /// values each, `out` holds `rows * IMAGES` values, `rows <= ROWS`.
            #[target_feature(enable = $feat)]
            pub unsafe fn $name(
                w: *const f32,
                k: usize,
                rows: usize,
                x: &[*const f32; IMAGES],
                out: *mut f32,
            ) {
                const ROWS: usize = $rows;
                let mut acc: [[$vec; IMAGES]; ROWS] = [[$zero(); IMAGES]; ROWS];
                // a second row past the last reads the last again (and is dropped)
                let wr: [*const f32; ROWS] = std::array::from_fn(|r| w.add(k * r.min(rows - 1)));
                let whole = k - k % $w;
                let mut kk = 0;
                while kk < whole {
                    let wv: [$vec; ROWS] = std::array::from_fn(|r| $load(wr[r].add(kk)));
                    for i in 0..IMAGES {
                        let xv = $load(x[i].add(kk));
                        for r in 0..ROWS {
                            acc[r][i] = $fmadd(wv[r], xv, acc[r][i]);
                        }
                    }
                    kk += $w;
                }
                for r in 0..rows {
                    for i in 0..IMAGES {
                        let mut lanes = [0.0f32; $w];
                        $store(lanes.as_mut_ptr(), acc[r][i]);
                        let mut s: f32 = lanes.iter().sum();
                        for t in whole..k {
                            s += *wr[r].add(t) * *x[i].add(t);
                        }
                        *out.add(r * IMAGES + i) = s;
                    }
                }
            }
        };
    }

    // 16 accumulators, two rows of W and an image: 19 of the 32 zmm registers
    dot!(
        dot_avx512,
        "avx512f",
        2,
        16,
        __m512,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_fmadd_ps,
        _mm512_storeu_ps
    );
    // 8 accumulators, a row of W and an image: 10 of the 16 ymm registers
    dot!(
        dot_avx2,
        "avx2,fma",
        1,
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_fmadd_ps,
        _mm256_storeu_ps
    );
}

/// `dx = W^T dy`, as `dx^T (n x kg) = dy^T (n x og) W (og x kg)` per group.
pub fn backward_data(g: &Geom, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let (og, kg) = (g.og(), g.kg());
    for grp in 0..g.groups {
        let a = Strided {
            data: dy,
            off: grp * og,
            rs: g.c_out,
            cs: 1,
        };
        let b = Strided {
            data: w,
            off: grp * og * kg,
            rs: kg,
            cs: 1,
        };
        let out = StridedMut::new(dx, grp * kg, g.n, kg, g.x_len(), 1);
        sgemm::gemm(g.n, kg, og, &a, &b, &out, Epilogue::default());
    }
}

/// `dw = dy x^T` summed over the batch (overwritten, or added to `dw` when
/// `accumulate`).
pub fn backward_filter(g: &Geom, x: &[f32], dy: &[f32], dw: &mut [f32], accumulate: bool) {
    let (og, kg) = (g.og(), g.kg());
    for grp in 0..g.groups {
        let dyt = Strided {
            data: dy,
            off: grp * og,
            rs: 1,
            cs: g.c_out,
        };
        let a = PackedA::new(cpu::isa(), &dyt, og, g.n);
        let b = Strided {
            data: x,
            off: grp * kg,
            rs: g.x_len(),
            cs: 1,
        };
        let out = StridedMut::new(dw, grp * og * kg, og, kg, kg, 1);
        let ep = Epilogue {
            accumulate,
            ..Default::default()
        };
        sgemm::gemm(og, kg, g.n, &a, &b, &out, ep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every level's dot products against the plain ones, with a length that is
    /// not a whole number of vectors and an odd number of rows (AVX-512 takes
    /// two at a time).
    #[test]
    fn every_level_computes_the_dot_products() {
        let (rows, k) = (5, 37);
        let val = |i: usize| ((i * 7919) % 23) as f32 / 11.0 - 1.0;
        let w: Vec<f32> = (0..rows * k).map(val).collect();
        let images: Vec<Vec<f32>> = (0..IMAGES)
            .map(|i| (0..k).map(|j| val(j * 3 + i * 101 + 5)).collect())
            .collect();
        let xs: [&[f32]; IMAGES] = std::array::from_fn(|i| &images[i][..]);
        let mut want = vec![0.0f32; rows * IMAGES];
        dot_rows(&w, k, &xs, 0, &mut want);
        for isa in Isa::available() {
            let mut got = vec![f32::NAN; rows * IMAGES];
            dot_rows_dispatch(isa, &w, k, &xs, 0, &mut got);
            for (g, e) in got.iter().zip(&want) {
                assert!(
                    (g - e).abs() <= 1e-5 * (1.0 + e.abs()),
                    "{isa:?}: {g} vs {e}"
                );
            }
        }
    }
}
