//! A convolution at stride `s` as a convolution at stride 1 over the input split
//! into its `s x s` phases (space to depth): with `u = s*a + p` and `v = s*b + q`,
//!
//! `y[o, i, j] = sum_{c,u,v} w[o, c, u, v] x[c, s*i + u, s*j + v]
//!             = sum_{c,p,q,a,b} w'[o, (c,p,q), a, b] x'[(c,p,q), i + a, j + b]`
//!
//! where `x'[(c,p,q), a, b] = x[c, s*a + p, s*b + q]` (zero in the padding) and
//! `w'[o, (c,p,q), a, b] = w[o, c, s*a + p, s*b + q]` (zero past the kernel's edge).
//! A kernel of `ceil(k/s) = 3` taps a side becomes a 3x3 at stride 1, which Winograd
//! computes with a quarter of the products: AlexNet's first layer, 11x11 at stride
//! 4 over 3 channels, is a 3x3 over 48 phase planes, 0.30 of the multiplications
//! of the direct product even with its kernel padded from 11 to 12.
//!
//! The rearranged filters are `s*s*9 / (kh*kw)` times the plain ones (1.19 for
//! AlexNet): small for the first layers this is for.

use super::conv_gemm::Geom;
use crate::blocks::Pad;
use rayon::prelude::*;

/// The stride-1 3x3 geometry of `g` over its phases, where `g` is strided (the
/// same in both directions, no dilation) and its kernel covers 3 phases a side.
pub fn split(g: &Geom) -> Option<Geom> {
    let s = g.stride[0];
    let fits = s > 1
        && g.stride[1] == s
        && g.dilation == [1, 1]
        && g.kh.div_ceil(s) == 3
        && g.kw.div_ceil(s) == 3;
    fits.then(|| Geom {
        c: g.c * s * s,
        h: g.ho + 2,
        w: g.wo + 2,
        kh: 3,
        kw: 3,
        pad: Pad::default(),
        stride: [1, 1],
        ..*g
    })
}

/// `x'` for the phase geometry `gs` of `g` (see [`split`]).
pub fn input(g: &Geom, gs: &Geom, x: &[f32]) -> Vec<f32> {
    let s = g.stride[0];
    let (pt, pl) = (g.pad.top, g.pad.left);
    let mut xs = vec![0.0f32; g.n * gs.c * gs.h * gs.w];
    xs.par_chunks_mut(gs.h * gs.w)
        .enumerate()
        .for_each(|(plane, dst)| {
            let (n, cs) = (plane / gs.c, plane % gs.c);
            let (c, p, q) = phase_channel(cs, s);
            let src = &x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
            // the phase's columns b with s*b + q - pl inside the image
            let b0 = pl.saturating_sub(q).div_ceil(s);
            let b1 = (g.w + pl).saturating_sub(q).div_ceil(s).min(gs.w);
            if b0 >= b1 {
                return;
            }
            for (a, row) in dst.chunks_exact_mut(gs.w).enumerate() {
                let Some(iy) = (s * a + p).checked_sub(pt).filter(|&iy| iy < g.h) else {
                    continue;
                };
                let line = &src[iy * g.w..][..g.w];
                let first = s * b0 + q - pl;
                for (d, &v) in row[b0..b1].iter_mut().zip(line[first..].iter().step_by(s)) {
                    *d = v;
                }
            }
        });
    xs
}

/// The channel `c`, row phase `p` and column phase `q` of phase channel `cs`
/// (`cs = (c*s + p)*s + q`), at stride `s`.
fn phase_channel(cs: usize, s: usize) -> (usize, usize, usize) {
    (cs / (s * s), (cs / s) % s, cs % s)
}

/// `w'` for the phase geometry `gs` of `g` (see [`split`]).
pub fn filters(g: &Geom, gs: &Geom, w: &[f32]) -> Vec<f32> {
    let s = g.stride[0];
    let (cg, csg) = (g.cg(), gs.cg());
    let mut ws = vec![0.0f32; g.c_out * csg * 9];
    for (o, dst) in ws.chunks_exact_mut(csg * 9).enumerate() {
        for (cs, tap) in dst.chunks_exact_mut(9).enumerate() {
            let (c, p, q) = phase_channel(cs, s);
            for (ab, d) in tap.iter_mut().enumerate() {
                let (u, v) = (s * (ab / 3) + p, s * (ab % 3) + q);
                if u < g.kh && v < g.kw {
                    *d = w[((o * cg + c) * g.kh + u) * g.kw + v];
                }
            }
        }
    }
    ws
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct convolution, in f64.
    fn direct(g: &Geom, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (cg, og) = (g.cg(), g.og());
        let mut y = vec![0.0; g.n * g.c_out * g.p()];
        for n in 0..g.n {
            for o in 0..g.c_out {
                let grp = o / og;
                for i in 0..g.ho {
                    for j in 0..g.wo {
                        let mut sum = 0.0;
                        for c in 0..cg {
                            for u in 0..g.kh {
                                for v in 0..g.kw {
                                    let iy = (g.stride[0] * i + u) as isize - g.pad.top as isize;
                                    let ix = (g.stride[1] * j + v) as isize - g.pad.left as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w
                                    {
                                        continue;
                                    }
                                    let xv = x[((n * g.c + grp * cg + c) * g.h + iy as usize)
                                        * g.w
                                        + ix as usize];
                                    sum +=
                                        xv as f64 * w[((o * cg + c) * g.kh + u) * g.kw + v] as f64;
                                }
                            }
                        }
                        y[((n * g.c_out + o) * g.ho + i) * g.wo + j] = sum;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn the_phase_convolution_is_the_strided_one() {
        // (n, c, h, w, c_out, kh, kw, stride, pad, groups)
        for (n, c, h, w, co, kh, kw, s, pad, groups) in [
            (2, 3, 27, 25, 4, 11, 11, 4, Pad::all(2), 1),
            (1, 4, 13, 12, 6, 5, 6, 2, Pad::new(1, 2, 0, 2), 2),
            (1, 2, 16, 17, 3, 9, 7, 3, Pad::default(), 1),
        ] {
            let ho = (h + pad.top + pad.bottom - kh) / s + 1;
            let wo = (w + pad.left + pad.right - kw) / s + 1;
            let g = Geom::new(
                [n, c, h, w],
                [co, c / groups, kh, kw],
                groups,
                pad,
                [s, s],
                [1, 1],
                [ho, wo],
            );
            let gs = split(&g).expect("three phases a side");
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let wt: Vec<f32> = (0..co * (c / groups) * kh * kw)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 40.0)
                .collect();
            let (xs, ws) = (input(&g, &gs, &x), filters(&g, &gs, &wt));
            let want = direct(&g, &x, &wt);
            let got = direct(&gs, &xs, &ws);
            assert_eq!((gs.ho, gs.wo), (ho, wo));
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                    "{kh}x{kw}/{s}: output {i}: {a} vs {b}"
                );
            }
        }
        // a kernel that does not cover three phases a side is not split
        let g = Geom::new(
            [1, 3, 224, 224],
            [64, 3, 7, 7],
            1,
            Pad::all(3),
            [2, 2],
            [1, 1],
            [112, 112],
        );
        assert!(split(&g).is_none());
    }
}
