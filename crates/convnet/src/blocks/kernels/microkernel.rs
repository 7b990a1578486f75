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
}

/// `kc` steps over packed panels `a` (`kc x MR`) and `b` (`kc x NR`) into `out`.
pub type KernelFn = unsafe fn(kc: usize, a: *const f32, b: *const f32, out: &Out);

/// A micro-kernel and its tile.
#[derive(Clone, Copy)]
pub struct Micro {
    pub mr: usize,
    pub nr: usize,
    pub run: KernelFn,
}

impl Micro {
    pub fn for_isa(isa: Isa) -> Micro {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Micro {
                mr: 8,
                nr: 48,
                run: x86::avx512_8x48,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Micro {
                mr: 6,
                nr: 16,
                run: x86::avx2_6x16,
            },
            _ => Micro {
                mr: 4,
                nr: 16,
                run: scalar_4x16,
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

    /// A kernel of `$mr` rows by `$nv` vectors of `$w` lanes: the loop keeps
    /// `$mr * $nv` accumulators in registers, then finishes the tile as [`Out`] says.
    macro_rules! kernel {
        ($name:ident, $feat:literal, $mr:literal, $nv:literal, $w:literal,
         $zero:ident, $load:ident, $store:ident, $set1:ident, $fmadd:ident, $add:ident, $max:ident) => {
            /// # Safety
            /// The CPU has the target features; `a` holds `kc * MR` values, `b` holds
            /// `kc * NR`, `out.c` is a writable MR x NR tile with row stride
            /// `out.ldc`, and `out.bias`, when not null, holds MR values.
            #[target_feature(enable = $feat)]
            pub unsafe fn $name(kc: usize, a: *const f32, b: *const f32, out: &Out) {
                const MR: usize = $mr;
                const NV: usize = $nv;
                let mut acc = [[$zero(); NV]; MR];
                let (mut a, mut b) = (a, b);
                for _ in 0..kc {
                    let bv: [_; NV] = std::array::from_fn(|v| $load(b.add($w * v)));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let av = $set1(*a.add(r));
                        for v in 0..NV {
                            acc[v] = $fmadd(av, bv[v], acc[v]);
                        }
                    }
                    a = a.add(MR);
                    b = b.add(NV * $w);
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

    // 24 of the 32 zmm registers accumulate
    kernel!(
        avx512_8x48,
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
    // 12 accumulators, 2 B vectors and a broadcast: 15 of the 16 ymm registers
    kernel!(
        avx2_6x16,
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
}
