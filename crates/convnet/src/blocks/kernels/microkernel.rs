//! The innermost loop of every matrix product: an `MR x NR` block of C kept in
//! vector registers while `kc` rank-one updates stream through, reading A as packed
//! panels of `MR` values per step (broadcast) and B as packed panels of `NR` values
//! per step (vector loads). One kernel per instruction level, picked at run time:
//!
//! - AVX-512: 8 x 48 (24 of the 32 zmm registers accumulate),
//! - AVX2 + FMA: 6 x 16 (12 of the 16 ymm registers; more would spill),
//! - plain Rust: 4 x 16, for CPUs without either.
//!
//! Every `NR` is a multiple of 16, the width of the Winograd transforms' tile groups.
//!
//! The finish of a tile is part of the kernel, so a convolution's bias and ReLU cost
//! no extra pass over memory: `C = acc + (C or bias[row] or 0)`, then `max(0, C)`
//! when asked (a NaN stays a NaN, so divergence is still seen).

use super::cpu::Isa;

/// Where a tile goes and how it is finished.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    /// Element (r, j) of the tile is `c[r * ldc + j]`.
    pub c: *mut f32,
    pub ldc: usize,
    /// Add the product to what C holds (else to the bias, or to zero).
    pub load: bool,
    /// `MR` row biases added when not `load`; null for none.
    pub bias: *const f32,
    pub relu: bool,
    /// Memory the next tiles will read, brought towards the core a cache line per
    /// depth step (two when there are more lines than steps): `pf_lines` lines from
    /// `pf`. A filter kept packed is read from memory once per forward, at the pace
    /// of the kernel; fetched ahead, it waits in L2 instead.
    pub pf: *const f32,
    pub pf_lines: usize,
}

impl Out {
    /// A tile at `c` (row stride `ldc`) with nothing to fetch ahead.
    pub fn new(c: *mut f32, ldc: usize, load: bool, bias: *const f32, relu: bool) -> Out {
        Out {
            c,
            ldc,
            load,
            bias,
            relu,
            pf: std::ptr::null(),
            pf_lines: 0,
        }
    }
}

/// `kc` steps over packed panels `a` (`kc x MR`) and `b` (`kc x NR`) into `out`.
pub type KernelFn = unsafe fn(kc: usize, a: *const f32, b: *const f32, out: &Out);

/// A micro-kernel and its tile.
#[derive(Clone, Copy)]
pub struct Micro {
    pub mr: usize,
    pub nr: usize,
    pub run: KernelFn,
    /// The kernel for the first `rows x cols` of a tile (an edge of C): the same
    /// panels, fewer accumulators, and no work on the rows and columns beyond
    /// (ResNet-18's 14x14 layers at batch 1 have 196 columns, four of them in a
    /// last panel of 48).
    pub edge: fn(rows: usize, cols: usize) -> KernelFn,
}

impl Micro {
    pub fn for_isa(isa: Isa) -> Micro {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Micro {
                mr: 8,
                nr: 48,
                run: x86::avx512::<8, 3>,
                edge: x86::avx512_edge,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Micro {
                mr: 6,
                nr: 16,
                run: x86::avx2::<6, 2>,
                edge: x86::avx2_edge,
            },
            _ => Micro {
                mr: 4,
                nr: 16,
                run: scalar_4x16,
                edge: |_, _| scalar_4x16,
            },
        }
    }
}

/// ReLU that keeps NaN (as `max(0, v)` with the NaN-preserving operand order).
#[inline(always)]
pub fn relu(v: f32) -> f32 {
    if v > 0.0 || v.is_nan() {
        v
    } else {
        0.0
    }
}

/// The portable kernel.
///
/// # Safety
/// `a` holds `kc * 4` values, `b` holds `kc * 16`, `out.c` is a writable 4 x 16 tile
/// with row stride `out.ldc`, and `out.bias`, when not null, holds 4 values.
unsafe fn scalar_4x16(kc: usize, a: *const f32, b: *const f32, out: &Out) {
    const MR: usize = 4;
    const NR: usize = 16;
    let mut acc = [[0.0f32; NR]; MR];
    let a = std::slice::from_raw_parts(a, kc * MR);
    let b = std::slice::from_raw_parts(b, kc * NR);
    for (ak, bk) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for r in 0..MR {
            for j in 0..NR {
                acc[r][j] += ak[r] * bk[j];
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        let c = out.c.add(r * out.ldc);
        let base = if out.bias.is_null() {
            0.0
        } else {
            *out.bias.add(r)
        };
        for (j, &v) in row.iter().enumerate() {
            let mut v = v + if out.load { *c.add(j) } else { base };
            if out.relu {
                v = relu(v);
            }
            *c.add(j) = v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Out;
    use std::arch::x86_64::*;

    /// The kernels of one instruction level, for panels `$mr` values (A) and `$nv`
    /// vectors of `$w` lanes (B) wide: `$name::<R, V>` computes the first `R` rows
    /// and `V` vectors of a tile, keeping `R * V` accumulators in registers, then
    /// finishes them as [`Out`] says. Every element is summed in the same order
    /// whatever `R` and `V`, so an edge tile computed small has the bits it would
    /// have had computed whole.
    macro_rules! kernels {
        ($name:ident, $feat:literal, $mr:literal, $nv:literal, $w:literal,
         $zero:ident, $load:ident, $store:ident, $set1:ident, $fmadd:ident, $add:ident, $max:ident) => {
            /// # Safety
            /// The CPU has the target features; `a` holds `kc` groups of the panel's
            /// rows, `b` `kc` groups of its columns, `out.c` is a writable tile of
            /// `R` rows and `V` vectors with row stride `out.ldc`, and `out.bias`,
            /// when not null, holds `R` values.
            #[target_feature(enable = $feat)]
            pub unsafe fn $name<const R: usize, const V: usize>(
                kc: usize,
                a: *const f32,
                b: *const f32,
                out: &Out,
            ) {
                let mut acc = [[$zero(); V]; R];
                let (mut a, mut b) = (a, b);
                let mut pf = out.pf.cast::<i8>();
                let mut left = out.pf_lines;
                let twice = left > kc;
                for _ in 0..kc {
                    if left > 0 {
                        _mm_prefetch::<_MM_HINT_T1>(pf);
                        pf = pf.wrapping_add(64);
                        left -= 1;
                        if twice && left > 0 {
                            _mm_prefetch::<_MM_HINT_T1>(pf);
                            pf = pf.wrapping_add(64);
                            left -= 1;
                        }
                    }
                    let bv: [_; V] = std::array::from_fn(|v| $load(b.add($w * v)));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let av = $set1(*a.add(r));
                        for v in 0..V {
                            acc[v] = $fmadd(av, bv[v], acc[v]);
                        }
                    }
                    a = a.add($mr);
                    b = b.add($nv * $w);
                }
                let zero = $zero();
                for (r, acc) in acc.iter().enumerate() {
                    let c = out.c.add(r * out.ldc);
                    let base = if out.load {
                        None
                    } else if out.bias.is_null() {
                        Some(zero)
                    } else {
                        Some($set1(*out.bias.add(r)))
                    };
                    for (v, &s) in acc.iter().enumerate() {
                        let p = c.add($w * v);
                        let mut x = $add(s, base.unwrap_or_else(|| $load(p)));
                        if out.relu {
                            x = $max(zero, x);
                        }
                        $store(p, x);
                    }
                }
            }
        };
    }

    // 8 x 48: 24 of the 32 zmm registers accumulate
    kernels!(
        avx512,
        "avx512f",
        8,
        3,
        16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_add_ps,
        _mm512_max_ps
    );
    // 6 x 16: 12 accumulators, 2 B vectors and a broadcast: 15 of the 16 ymm
    // registers
    kernels!(
        avx2,
        "avx2,fma",
        6,
        2,
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        _mm256_max_ps
    );

    /// The AVX-512 kernel for a tile's first `rows` rows and `cols` columns.
    pub fn avx512_edge(rows: usize, cols: usize) -> super::KernelFn {
        match (rows, cols.div_ceil(16)) {
            (1, 1) => avx512::<1, 1>,
            (1, 2) => avx512::<1, 2>,
            (1, _) => avx512::<1, 3>,
            (2, 1) => avx512::<2, 1>,
            (2, 2) => avx512::<2, 2>,
            (2, _) => avx512::<2, 3>,
            (3..=4, 1) => avx512::<4, 1>,
            (3..=4, 2) => avx512::<4, 2>,
            (3..=4, _) => avx512::<4, 3>,
            (_, 1) => avx512::<8, 1>,
            (_, 2) => avx512::<8, 2>,
            _ => avx512::<8, 3>,
        }
    }

    /// The AVX2 kernel for a tile's first `rows` rows and `cols` columns.
    pub fn avx2_edge(rows: usize, cols: usize) -> super::KernelFn {
        match (rows, cols.div_ceil(8)) {
            (1, 1) => avx2::<1, 1>,
            (1, _) => avx2::<1, 2>,
            (2, 1) => avx2::<2, 1>,
            (2, _) => avx2::<2, 2>,
            (3..=4, 1) => avx2::<4, 1>,
            (3..=4, _) => avx2::<4, 2>,
            (_, 1) => avx2::<6, 1>,
            _ => avx2::<6, 2>,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_kernels_give_the_bits_of_the_whole_tile() {
        for isa in Isa::available() {
            let mk = Micro::for_isa(isa);
            let (mr, nr, kc) = (mk.mr, mk.nr, 37);
            let a: Vec<f32> = (0..kc * mr)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..kc * nr)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 9.0)
                .collect();
            let bias: Vec<f32> = (0..mr).map(|r| r as f32 - 2.5).collect();
            let run = |f: KernelFn, c: &mut [f32], pf: &[f32]| {
                let out = Out {
                    pf: pf.as_ptr(),
                    pf_lines: pf.len() / 16,
                    ..Out::new(c.as_mut_ptr(), nr, false, bias.as_ptr(), true)
                };
                // SAFETY: the panels hold kc*mr and kc*nr values, C is mr x nr
                unsafe { f(kc, a.as_ptr(), b.as_ptr(), &out) }
            };
            let mut whole = vec![f32::NAN; mr * nr];
            run(mk.run, &mut whole, &[]);
            for rows in 1..=mr {
                for cols in 1..=nr {
                    let mut c = vec![f32::NAN; mr * nr];
                    // fetching ahead (here the panels themselves) changes nothing
                    run((mk.edge)(rows, cols), &mut c, &b);
                    for r in 0..mr {
                        for j in 0..nr {
                            let (got, want) = (c[r * nr + j], whole[r * nr + j]);
                            // beyond the edge, only the kernel's own tile is written
                            if r < rows && j < cols || !got.is_nan() {
                                assert_eq!(got.to_bits(), want.to_bits(), "{isa:?} {rows}x{cols}");
                            }
                        }
                    }
                    // and the edge kernel does not compute the whole tile
                    if rows <= mr / 2 && cols <= nr / 2 && isa != Isa::Scalar {
                        assert!(c[(mr - 1) * nr + nr - 1].is_nan(), "{isa:?} {rows}x{cols}");
                    }
                }
            }
        }
    }
}
