//! Pooling loops on the CPU, one feature map (plane) at a time; planes run in
//! parallel. Each plane is independent, so the result does not depend on the number
//! of threads.

use rayon::prelude::*;

/// A plane's geometry, already checked: every window holds at least one real pixel.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

/// The real (unpadded) half-open ranges that each output row and column covers,
/// computed once so the inner loops need no padding tests.
struct Windows {
    rows: Vec<(usize, usize)>,
    cols: Vec<(usize, usize)>,
}

fn ranges(out: usize, k: usize, stride: usize, pad: usize, len: usize) -> Vec<(usize, usize)> {
    (0..out)
        .map(|o| {
            let start = o * stride;
            let lo = start.saturating_sub(pad).min(len);
            let hi = (start + k).saturating_sub(pad).min(len);
            (lo, hi)
        })
        .collect()
}

impl Windows {
    fn new(g: &Geometry) -> Self {
        Windows {
            rows: ranges(g.oh, g.kh, g.sh, g.pad_top, g.h),
            cols: ranges(g.ow, g.kw, g.sw, g.pad_left, g.w),
        }
    }
}

impl Geometry {
    fn plane_in(&self) -> usize {
        self.h * self.w
    }
    fn plane_out(&self) -> usize {
        self.oh * self.ow
    }
    /// The 2x2, stride 2, unpadded case that most networks use.
    fn is_2x2_s2(&self) -> bool {
        self.kh == 2
            && self.kw == 2
            && self.sh == 2
            && self.sw == 2
            && self.pad_top == 0
            && self.pad_left == 0
    }
    /// Planes per rayon task: enough work per task that scheduling stays cheap.
    fn min_planes(&self) -> usize {
        (1 << 14) / self.plane_in().max(1) + 1
    }
}

/// `a` unless `b` is strictly greater: the first maximum wins, as in the backward.
#[inline(always)]
fn first_max(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

/// Index (within the plane) of the first maximum of a window, scanning row-major.
/// Starting from -inf makes it agree with [`window_max`] on NaNs (skipped).
#[inline]
fn window_argmax(x: &[f32], w: usize, rows: (usize, usize), cols: (usize, usize)) -> usize {
    let mut best = rows.0 * w + cols.0;
    let mut m = f32::NEG_INFINITY;
    for r in rows.0..rows.1 {
        let base = r * w;
        for (c, &v) in x[base + cols.0..base + cols.1].iter().enumerate() {
            if v > m {
                m = v;
                best = base + cols.0 + c;
            }
        }
    }
    best
}

#[inline]
fn window_max(x: &[f32], w: usize, rows: (usize, usize), cols: (usize, usize)) -> f32 {
    (rows.0..rows.1)
        .flat_map(|r| &x[r * w + cols.0..r * w + cols.1])
        .fold(f32::NEG_INFINITY, |m, &v| first_max(m, v))
}

fn window_sum(x: &[f32], w: usize, rows: (usize, usize), cols: (usize, usize)) -> f32 {
    (rows.0..rows.1)
        .filter_map(|r| x.get(r * w + cols.0..r * w + cols.1))
        .map(|row| row.iter().sum::<f32>())
        .sum()
}

fn divisor(g: &Geometry, rows: (usize, usize), cols: (usize, usize), count_pad: bool) -> f32 {
    let n = if count_pad {
        g.kh * g.kw
    } else {
        (rows.1 - rows.0) * (cols.1 - cols.0)
    };
    n.max(1) as f32
}

fn max_plane_2x2_s2(x: &[f32], g: &Geometry, y: &mut [f32]) {
    let w = g.w;
    for (oy, yrow) in y.chunks_exact_mut(g.ow).enumerate() {
        let r0 = &x[2 * oy * w..2 * oy * w + 2 * g.ow];
        let r1 = &x[(2 * oy + 1) * w..(2 * oy + 1) * w + 2 * g.ow];
        for ((yv, a), b) in yrow
            .iter_mut()
            .zip(r0.chunks_exact(2))
            .zip(r1.chunks_exact(2))
        {
            // The same order as window_max, so both paths agree bit for bit.
            let m = first_max(first_max(f32::NEG_INFINITY, a[0]), a[1]);
            *yv = first_max(first_max(m, b[0]), b[1]);
        }
    }
}

/// Windows do not overlap here, so each dx is written once, without a scan. Which
/// pixel of a window wins is a coin toss on most data, so the choice is made by
/// masks, four windows at a time on x86-64: the compiler turned the scalar selects
/// into branches, and their mispredictions made this 15 times slower than the
/// forward.
fn max_plane_backward_2x2_s2(x: &[f32], g: &Geometry, dy: &[f32], dx: &mut [f32]) {
    let (w, n) = (g.w, 2 * g.ow);
    for (oy, dyrow) in dy.chunks_exact(g.ow).enumerate() {
        let (top, bottom) = (2 * oy * w, (2 * oy + 1) * w);
        let (dx0, dx1) = dx[top..bottom + n].split_at_mut(w);
        let (r0, r1) = (&x[top..top + n], &x[bottom..bottom + n]);
        #[cfg(target_arch = "x86_64")]
        let done = {
            let blocks = g.ow / 4;
            for q in 0..blocks {
                let (i, o) = (8 * q, 4 * q);
                // SSE2 is part of x86-64; each block reads and writes 8 values of
                // each row and 4 of dy, all inside the row (q < ow / 4).
                unsafe {
                    sse::windows4(
                        &r0[i..i + 8],
                        &r1[i..i + 8],
                        &dyrow[o..o + 4],
                        &mut dx0[i..i + 8],
                        &mut dx1[i..i + 8],
                    )
                };
            }
            4 * blocks
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        let rows = r0[2 * done..]
            .chunks_exact(2)
            .zip(r1[2 * done..].chunks_exact(2));
        let outs = dx0[2 * done..n]
            .chunks_exact_mut(2)
            .zip(dx1[2 * done..n].chunks_exact_mut(2));
        for ((&d, (a, b)), (da, db)) in dyrow[done..].iter().zip(rows).zip(outs) {
            // As window_argmax: the last strict increase in row-major order wins,
            // and the first pixel when none does.
            let m = first_max(f32::NEG_INFINITY, a[0]);
            let t01 = a[1] > m;
            let m = first_max(m, a[1]);
            let t10 = b[0] > m;
            let t11 = b[1] > first_max(m, b[0]);
            let keep = |w: bool| if w { d } else { 0.0 };
            da[0] = keep(!(t01 || t10 || t11));
            da[1] = keep(t01 && !t10 && !t11);
            db[0] = keep(t10 && !t11);
            db[1] = keep(t11);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod sse {
    use std::arch::x86_64::*;

    /// Four 2x2 windows: rows `r0`, `r1` (8 values each), their `dy` (4), written to
    /// `d0`, `d1`, as the scalar loop of `max_plane_backward_2x2_s2` does.
    ///
    /// # Safety
    /// The slices hold 8, 8, 4, 8 and 8 values.
    #[inline]
    pub unsafe fn windows4(r0: &[f32], r1: &[f32], dy: &[f32], d0: &mut [f32], d1: &mut [f32]) {
        let (p0, p1) = (r0.as_ptr(), r1.as_ptr());
        let (u0, u1) = (_mm_loadu_ps(p0), _mm_loadu_ps(p0.add(4)));
        let (v0, v1) = (_mm_loadu_ps(p1), _mm_loadu_ps(p1.add(4)));
        // the windows' top-left, top-right, bottom-left and bottom-right pixels
        let a0 = _mm_shuffle_ps::<0x88>(u0, u1);
        let a1 = _mm_shuffle_ps::<0xDD>(u0, u1);
        let b0 = _mm_shuffle_ps::<0x88>(v0, v1);
        let b1 = _mm_shuffle_ps::<0xDD>(v0, v1);
        let d = _mm_loadu_ps(dy.as_ptr());
        // `if b > a { b } else { a }`: a NaN compares false and is passed over
        let pick =
            |a: __m128, b: __m128, gt: __m128| _mm_or_ps(_mm_and_ps(gt, b), _mm_andnot_ps(gt, a));
        let m = pick(
            _mm_set1_ps(f32::NEG_INFINITY),
            a0,
            _mm_cmpgt_ps(a0, _mm_set1_ps(f32::NEG_INFINITY)),
        );
        let t01 = _mm_cmpgt_ps(a1, m);
        let m = pick(m, a1, t01);
        let t10 = _mm_cmpgt_ps(b0, m);
        let m = pick(m, b0, t10);
        let t11 = _mm_cmpgt_ps(b1, m);
        let o00 = _mm_andnot_ps(_mm_or_ps(_mm_or_ps(t01, t10), t11), d);
        let o01 = _mm_andnot_ps(_mm_or_ps(t10, t11), _mm_and_ps(t01, d));
        let o10 = _mm_andnot_ps(t11, _mm_and_ps(t10, d));
        let o11 = _mm_and_ps(t11, d);
        let (q0, q1) = (d0.as_mut_ptr(), d1.as_mut_ptr());
        _mm_storeu_ps(q0, _mm_unpacklo_ps(o00, o01));
        _mm_storeu_ps(q0.add(4), _mm_unpackhi_ps(o00, o01));
        _mm_storeu_ps(q1, _mm_unpacklo_ps(o10, o11));
        _mm_storeu_ps(q1.add(4), _mm_unpackhi_ps(o10, o11));
    }
}

/// Each output row's windows that lie whole inside the image's width are taken
/// together, one tap at a time in the windows' row-major order (the order of
/// [`window_max`], so the result is the same bits), which vectorises; the windows
/// clipped by the padding are taken one by one.
fn max_plane(x: &[f32], g: &Geometry, win: &Windows, y: &mut [f32]) {
    let whole = |&(lo, hi): &(usize, usize)| hi - lo == g.kw;
    let c0 = win.cols.iter().position(whole).unwrap_or(g.ow);
    let c1 = c0 + win.cols[c0..].iter().take_while(|c| whole(c)).count();
    for (yrow, &rows) in y.chunks_exact_mut(g.ow).zip(&win.rows) {
        for (ox, yv) in yrow.iter_mut().enumerate() {
            if ox < c0 || ox >= c1 {
                *yv = window_max(x, g.w, rows, win.cols[ox]);
            }
        }
        let out = &mut yrow[c0..c1];
        if out.is_empty() {
            continue;
        }
        out.fill(f32::NEG_INFINITY);
        for r in rows.0..rows.1 {
            let row = &x[r * g.w..(r + 1) * g.w];
            for kx in 0..g.kw {
                let taps = &row[win.cols[c0].0 + kx..];
                match g.sw {
                    1 => fold_taps::<1>(out, taps),
                    2 => fold_taps::<2>(out, taps),
                    _ => out
                        .iter_mut()
                        .zip(taps.iter().step_by(g.sw))
                        .for_each(|(o, &v)| *o = first_max(*o, v)),
                }
            }
        }
    }
}

/// `out[i] = first_max(out[i], taps[i * S])`.
#[inline(always)]
fn fold_taps<const S: usize>(out: &mut [f32], taps: &[f32]) {
    // the last window's tap may be the row's last pixel: whole groups of S, then it
    let n = out.len();
    let (head, last) = out.split_at_mut(n - 1);
    for (o, t) in head.iter_mut().zip(taps.chunks_exact(S)) {
        *o = first_max(*o, t[0]);
    }
    last[0] = first_max(last[0], taps[(n - 1) * S]);
}

fn avg_plane(x: &[f32], g: &Geometry, win: &Windows, count_pad: bool, y: &mut [f32]) {
    for (yrow, &rows) in y.chunks_exact_mut(g.ow).zip(&win.rows) {
        for (yv, &cols) in yrow.iter_mut().zip(&win.cols) {
            *yv = window_sum(x, g.w, rows, cols) / divisor(g, rows, cols, count_pad);
        }
    }
}

fn max_plane_backward(x: &[f32], g: &Geometry, win: &Windows, dy: &[f32], dx: &mut [f32]) {
    for (dyrow, &rows) in dy.chunks_exact(g.ow).zip(&win.rows) {
        for (&d, &cols) in dyrow.iter().zip(&win.cols) {
            dx[window_argmax(x, g.w, rows, cols)] += d;
        }
    }
}

fn avg_plane_backward(g: &Geometry, win: &Windows, count_pad: bool, dy: &[f32], dx: &mut [f32]) {
    for (dyrow, &rows) in dy.chunks_exact(g.ow).zip(&win.rows) {
        for (&d, &cols) in dyrow.iter().zip(&win.cols) {
            let share = d / divisor(g, rows, cols, count_pad);
            for r in rows.0..rows.1 {
                for t in &mut dx[r * g.w + cols.0..r * g.w + cols.1] {
                    *t += share;
                }
            }
        }
    }
}

/// Max pooling of `planes` consecutive planes of `x` into `y`.
pub fn max_forward(x: &[f32], g: &Geometry, y: &mut [f32]) {
    if g.plane_out() == 0 || g.plane_in() == 0 {
        return;
    }
    let win = Windows::new(g);
    let fast = g.is_2x2_s2();
    y.par_chunks_mut(g.plane_out())
        .zip(x.par_chunks(g.plane_in()))
        .with_min_len(g.min_planes())
        .for_each(|(yp, xp)| {
            if fast {
                max_plane_2x2_s2(xp, g, yp)
            } else {
                max_plane(xp, g, &win, yp)
            }
        });
}

/// Average pooling; the divisor counts real pixels only unless `count_pad`.
pub fn avg_forward(x: &[f32], g: &Geometry, count_pad: bool, y: &mut [f32]) {
    if g.plane_out() == 0 || g.plane_in() == 0 {
        return;
    }
    let win = Windows::new(g);
    y.par_chunks_mut(g.plane_out())
        .zip(x.par_chunks(g.plane_in()))
        .with_min_len(g.min_planes())
        .for_each(|(yp, xp)| avg_plane(xp, g, &win, count_pad, yp));
}

/// Adds each dy of max pooling to the first maximum of its window in `dx` (zeroed
/// by the caller); the maxima are found again from `x`.
pub fn max_backward(x: &[f32], g: &Geometry, dy: &[f32], dx: &mut [f32]) {
    if g.plane_out() == 0 || g.plane_in() == 0 {
        return;
    }
    let win = Windows::new(g);
    let fast = g.is_2x2_s2();
    dx.par_chunks_mut(g.plane_in())
        .zip(x.par_chunks(g.plane_in()))
        .zip(dy.par_chunks(g.plane_out()))
        .with_min_len(g.min_planes())
        .for_each(|((dxp, xp), dyp)| {
            if fast {
                max_plane_backward_2x2_s2(xp, g, dyp, dxp)
            } else {
                max_plane_backward(xp, g, &win, dyp, dxp)
            }
        });
}

/// Spreads each dy of average pooling evenly over its window in `dx` (zeroed by the
/// caller).
pub fn avg_backward(g: &Geometry, count_pad: bool, dy: &[f32], dx: &mut [f32]) {
    if g.plane_out() == 0 || g.plane_in() == 0 {
        return;
    }
    let win = Windows::new(g);
    dx.par_chunks_mut(g.plane_in())
        .zip(dy.par_chunks(g.plane_out()))
        .with_min_len(g.min_planes())
        .for_each(|(dxp, dyp)| avg_plane_backward(g, &win, count_pad, dyp, dxp));
}
