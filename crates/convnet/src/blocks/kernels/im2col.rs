//! Unfolding an image's windows into the columns of a matrix (im2col) and folding
//! such columns back into an image by summation (col2im, its adjoint). With these a
//! convolution is one matrix product per group and image (or batch of images).
//!
//! Row `(c*kh + u)*kw + v` of the column matrix holds, for every output position
//! `(i, j)`, the input pixel `(c, i*sh - pt + u*dh, j*sw - pl + v*dw)`, or zero where
//! that falls in the padding. Either function may cover only output rows `i0..i1`
//! (a tile), so that a large image's column matrix can be built and consumed while it
//! is still in cache.

use super::conv_gemm::Geom;
use std::ops::Range;

/// The output indices `i` whose input index `i*stride + shift - pad` lies in
/// `0..len`, as a half-open range clipped to `0..out`.
fn valid(out: usize, len: usize, stride: usize, shift: usize, pad: usize) -> (usize, usize) {
    // i*stride + shift >= pad  <=>  i >= ceil((pad - shift) / stride)
    let lo = pad.saturating_sub(shift).div_ceil(stride);
    // i*stride + shift < len + pad  <=>  i < ceil((len + pad - shift) / stride)
    let hi = (len + pad).saturating_sub(shift).div_ceil(stride);
    (lo.min(out), hi.clamp(lo.min(out), out))
}

/// Walks one row `(u, v)` of a column matrix over output rows `rows`: calls
/// `f(range, Some(at))` for each run of output positions (counted from the tile's
/// first) whose pixels lie in the image, `at` being the input index of the first of
/// them (the rest follow `stride[1]` apart), and `f(range, None)` for the runs that
/// fall in the padding.
fn for_each_run<F>(g: &Geom, rows: Range<usize>, u: usize, v: usize, mut f: F)
where
    F: FnMut(Range<usize>, Option<usize>),
{
    let (sh, sw) = (g.stride[0], g.stride[1]);
    let (dh, dw) = (g.dilation[0], g.dilation[1]);
    let (ilo, ihi) = valid(g.ho, g.h, sh, u * dh, g.pad.top);
    let (jlo, jhi) = valid(g.wo, g.w, sw, v * dw, g.pad.left);
    let first = rows.start;
    for i in rows {
        let row = (i - first) * g.wo;
        if i < ilo || i >= ihi || jlo >= jhi {
            f(row..row + g.wo, None);
            continue;
        }
        let ih = i * sh + u * dh - g.pad.top;
        let iw = jlo * sw + v * dw - g.pad.left;
        if jlo > 0 {
            f(row..row + jlo, None);
        }
        f(row + jlo..row + jhi, Some(ih * g.w + iw));
        if jhi < g.wo {
            f(row + jhi..row + g.wo, None);
        }
    }
}

/// Writes the columns of output rows `rows` of one image's group (`x` starts at the
/// group's first channel) into `col`, a row-major matrix of `g.kg()` rows and `ncols`
/// columns, starting at column `first`.
pub fn im2col(
    g: &Geom,
    rows: Range<usize>,
    x: &[f32],
    col: &mut [f32],
    ncols: usize,
    first: usize,
) {
    let len = rows.len() * g.wo;
    let plane = g.h * g.w;
    let sw = g.stride[1];
    for c in 0..g.cg() {
        let xc = &x[c * plane..(c + 1) * plane];
        for u in 0..g.kh {
            for v in 0..g.kw {
                let r = (c * g.kh + u) * g.kw + v;
                let dst = &mut col[r * ncols + first..r * ncols + first + len];
                for_each_run(g, rows.clone(), u, v, |range, at| {
                    let d = &mut dst[range];
                    match at {
                        None => d.fill(0.0),
                        Some(at) if sw == 1 => d.copy_from_slice(&xc[at..at + d.len()]),
                        Some(at) => {
                            for (o, &v) in d.iter_mut().zip(xc[at..].iter().step_by(sw)) {
                                *o = v;
                            }
                        }
                    }
                });
            }
        }
    }
}

/// Adds the columns of output rows `rows`, starting at column `first` of `col` (laid
/// out as in [`im2col`]), into the image group `dx` at the pixels they were read from.
pub fn col2im(
    g: &Geom,
    rows: Range<usize>,
    col: &[f32],
    ncols: usize,
    first: usize,
    dx: &mut [f32],
) {
    let len = rows.len() * g.wo;
    let plane = g.h * g.w;
    let sw = g.stride[1];
    for c in 0..g.cg() {
        let dxc = &mut dx[c * plane..(c + 1) * plane];
        for u in 0..g.kh {
            for v in 0..g.kw {
                let r = (c * g.kh + u) * g.kw + v;
                let src = &col[r * ncols + first..r * ncols + first + len];
                for_each_run(g, rows.clone(), u, v, |range, at| {
                    let s = &src[range];
                    match at {
                        None => {}
                        Some(at) if sw == 1 => {
                            for (o, &v) in dxc[at..at + s.len()].iter_mut().zip(s) {
                                *o += v;
                            }
                        }
                        Some(at) => {
                            for (o, &v) in dxc[at..].iter_mut().step_by(sw).zip(s) {
                                *o += v;
                            }
                        }
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::Pad;

    #[test]
    fn valid_ranges_clip_the_padding() {
        // 5 outputs, stride 1, pad 1, shift 0, input 5: output 0 reads input -1
        assert_eq!(valid(5, 5, 1, 0, 1), (1, 5));
        // shift 2 (third tap): output 4 reads input 5, outside
        assert_eq!(valid(5, 5, 1, 2, 1), (0, 4));
        // stride 2, pad 2, shift 0: outputs 0 reads -2, 1 reads 0
        assert_eq!(valid(3, 4, 2, 0, 2), (1, 3));
        // nothing valid
        assert_eq!(valid(2, 1, 3, 0, 5), (2, 2));
    }

    #[test]
    fn im2col_of_a_padded_strided_image() {
        // 1 channel 3x3, kernel 2x2, pad 1 all round, stride 2: 2x2 outputs
        let g = Geom::new(
            [1, 1, 3, 3],
            [1, 1, 2, 2],
            1,
            Pad::all(1),
            [2, 2],
            [1, 1],
            [2, 2],
        );
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut col = vec![f32::NAN; 4 * 4];
        im2col(&g, 0..2, &x, &mut col, 4, 0);
        // row (u,v): output (i,j) reads x[2i-1+u, 2j-1+v]
        #[rustfmt::skip]
        let want = [
            0.0, 0.0, 0.0, 5.0,
            0.0, 0.0, 4.0, 6.0,
            0.0, 2.0, 0.0, 8.0,
            1.0, 3.0, 7.0, 9.0,
        ];
        assert_eq!(col, want);
        let mut back = vec![0.0; 9];
        col2im(&g, 0..2, &col, 4, 0, &mut back);
        // every pixel of the 3x3 appears exactly once in these windows
        assert_eq!(back, x);
        // the second output row alone, as a tile, gives the last two columns
        let mut tile = vec![f32::NAN; 4 * 2];
        im2col(&g, 1..2, &x, &mut tile, 2, 0);
        let last: Vec<f32> = want.chunks(4).flat_map(|r| r[2..].to_vec()).collect();
        assert_eq!(tile, last);
    }
}
