//! The column matrix of a convolution, never stored whole: its rows are packed
//! straight from the image into the matrix product's panels ([`Cols`]), and the
//! input gradient's columns are folded back into an image by summation
//! ([`col2im`]).
//!
//! Row `(c*kh + u)*kw + v` of the column matrix holds, for every output position
//! `(i, j)`, the input pixel `(c, i*sh - pt + u*dh, j*sw - pl + v*dw)`, or zero where
//! that falls in the padding. Columns run over the output positions of a run of
//! images, image after image, so one product can cover several small images.
//! The output-side tensors (`y`, `dy`) are read and written through [`Planes`], the
//! same columns without the unfolding.

use super::conv_gemm::Geom;
use super::sgemm::{PackA, PackB, Sink};
use super::transpose;
use std::cell::RefCell;
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

/// A run of columns inside one output row of one image: `len` columns starting at
/// output position `(i, j)` of image `img`, at offset `at` in the run asked for.
#[derive(Clone, Copy, Debug)]
struct Seg {
    img: usize,
    i: usize,
    j: usize,
    len: usize,
    at: usize,
}

/// The segments of columns `j0..j0 + len` for output rows of `wo` positions and
/// planes of `p` positions.
fn segments(j0: usize, len: usize, p: usize, wo: usize, out: &mut Vec<Seg>) {
    out.clear();
    let mut at = 0;
    while at < len {
        let col = j0 + at;
        let (img, pos) = (col / p, col % p);
        let (i, j) = (pos / wo, pos % wo);
        let l = (wo - j).min(len - at);
        out.push(Seg {
            img,
            i,
            j,
            len: l,
            at,
        });
        at += l;
    }
}

/// `d = s` for a run of a few values (an output row of a small image is 7 to 56
/// values): two fixed-size moves that overlap in the middle, where
/// `copy_from_slice` of a length unknown at compile time (or a loop, which the
/// compiler turns into one) calls memmove, whose call cost as much as the copy.
#[inline(always)]
pub(super) fn copy_run(d: &mut [f32], s: &[f32]) {
    let n = d.len();
    let s = &s[..n];
    match n {
        0 => {}
        1..=3 => {
            d[0] = s[0];
            d[n / 2] = s[n / 2];
            d[n - 1] = s[n - 1];
        }
        4..=7 => {
            d[..4].copy_from_slice(&s[..4]);
            d[n - 4..].copy_from_slice(&s[n - 4..]);
        }
        8..=16 => {
            d[..8].copy_from_slice(&s[..8]);
            d[n - 8..].copy_from_slice(&s[n - 8..]);
        }
        17..=32 => {
            d[..16].copy_from_slice(&s[..16]);
            d[n - 16..].copy_from_slice(&s[n - 16..]);
        }
        33..=64 => {
            d[..32].copy_from_slice(&s[..32]);
            d[n - 32..].copy_from_slice(&s[n - 32..]);
        }
        _ => d.copy_from_slice(s),
    }
}

/// `d = 0` for a run of a few values (mostly none: the padding's edge), as
/// [`copy_run`].
#[inline(always)]
fn zero_run(d: &mut [f32]) {
    let n = d.len();
    match n {
        0 => {}
        1..=3 => {
            d[0] = 0.0;
            d[n / 2] = 0.0;
            d[n - 1] = 0.0;
        }
        4..=7 => {
            d[..4].copy_from_slice(&[0.0; 4]);
            d[n - 4..].copy_from_slice(&[0.0; 4]);
        }
        8..=16 => {
            d[..8].copy_from_slice(&[0.0; 8]);
            d[n - 8..].copy_from_slice(&[0.0; 8]);
        }
        _ => d.fill(0.0),
    }
}

/// The column matrix of group `grp` of the images of `x` (which starts at the first
/// image of the product), as a product operand.
pub struct Cols<'a> {
    g: &'a Geom,
    x: &'a [f32],
    /// First input channel of the group.
    c0: usize,
    /// Per kernel row `u` and column `v`: the output rows (columns) that read inside
    /// the image.
    rows_in: Vec<(usize, usize)>,
    cols_in: Vec<(usize, usize)>,
    /// With `Some(wq)`, `x` holds each image row split by phase (see
    /// [`Cols::with_phases`]), each phase `wq` long.
    phases: Option<usize>,
}

impl<'a> Cols<'a> {
    pub fn new(g: &'a Geom, x: &'a [f32], grp: usize) -> Self {
        let rows_in = (0..g.kh)
            .map(|u| valid(g.ho, g.h, g.stride[0], u * g.dilation[0], g.pad.top))
            .collect();
        let cols_in = (0..g.kw)
            .map(|v| valid(g.wo, g.w, g.stride[1], v * g.dilation[1], g.pad.left))
            .collect();
        Cols {
            g,
            x,
            c0: grp * g.cg(),
            rows_in,
            cols_in,
            phases: None,
        }
    }

    /// The column matrix of an unpadded convolution with a horizontal stride `s`
    /// (and no horizontal dilation), read from `xp`: `x` with each image row split
    /// into its `s` phases, `xp[row][phase][q] = x[row][q * s + phase]`, each phase
    /// `wq = ceil(w / s)` long. A tap then reads a contiguous run of one phase where
    /// it read every `s`-th pixel (AlexNet's first layer: stride 4).
    pub fn with_phases(g: &'a Geom, xp: &'a [f32], grp: usize, wq: usize) -> Self {
        debug_assert!(g.unpadded() && g.dilation[1] == 1);
        Cols {
            phases: Some(wq),
            ..Cols::new(g, xp, grp)
        }
    }

    /// Row `k` of the column matrix at the columns of `segs` into `dst` (one value
    /// per column, at each segment's offset).
    fn row(&self, k: usize, segs: &[Seg], dst: &mut [f32]) {
        let g = self.g;
        let (c, uv) = (k / (g.kh * g.kw), k % (g.kh * g.kw));
        let (u, v) = (uv / g.kw, uv % g.kw);
        let (ilo, ihi) = self.rows_in[u];
        let (jlo, jhi) = self.cols_in[v];
        let sw = g.stride[1];
        for s in segs {
            let d = &mut dst[s.at..s.at + s.len];
            if s.i < ilo || s.i >= ihi {
                zero_run(d);
                continue;
            }
            let a = s.j.max(jlo).min(s.j + s.len);
            let b = (s.j + s.len).min(jhi).max(a);
            zero_run(&mut d[..a - s.j]);
            zero_run(&mut d[b - s.j..]);
            if a == b {
                continue;
            }
            let ih = s.i * g.stride[0] + u * g.dilation[0] - g.pad.top;
            let iw = a * sw + v * g.dilation[1] - g.pad.left;
            let at = ((s.img * g.c + self.c0 + c) * g.h + ih) * g.w + iw;
            let d = &mut d[a - s.j..b - s.j];
            if sw == 1 {
                copy_run(d, &self.x[at..at + d.len()]);
            } else {
                for (o, &x) in d.iter_mut().zip(self.x[at..].iter().step_by(sw)) {
                    *o = x;
                }
            }
        }
    }
}

/// The taps `(c, u, v)` of rows `k0, k0 + 1, ...` of the column matrix, counted
/// rather than divided out (three divisions a row cost as much as copying a row of
/// 48 columns).
fn taps(g: &Geom, k0: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let (kh, kw) = (g.kh, g.kw);
    let kk = kh * kw;
    let mut at = (k0 / kk, (k0 % kk) / kw, k0 % kw);
    std::iter::repeat_with(move || {
        let tap = at;
        let (c, u, v) = &mut at;
        *v += 1;
        if *v == kw {
            *v = 0;
            *u += 1;
            if *u == kh {
                *u = 0;
                *c += 1;
            }
        }
        tap
    })
}

impl Cols<'_> {
    /// Rows `k0..k0 + rows.len() / len` of the column matrix, `len` columns each, at
    /// the columns of `segs` into `rows`.
    fn rows(&self, k0: usize, segs: &[Seg], len: usize, rows: &mut [f32]) {
        if let Some(wq) = self.phases {
            return self.rows_phased(k0, segs, len, wq, rows);
        }
        if self.g.unpadded() {
            // a panel of the transposed product holds a few columns in short
            // segments (8 of ResNet-18's 7-wide output rows at batch 1): one load
            // per value beats a copy per segment
            if segs.len() * 8 > len {
                return self.rows_gathered(k0, segs, len, rows);
            }
            return self.rows_unpadded(k0, segs, len, rows);
        }
        for (t, row) in rows.chunks_exact_mut(len).enumerate() {
            self.row(k0 + t, segs, row);
        }
    }

    /// [`Cols::rows`] without padding: every pixel a row reads is inside the image,
    /// so where each segment starts is found once for all rows, and a row only adds
    /// its tap's offset (LeNet's second layer has 8-wide output rows: a segment per 8
    /// values).
    fn rows_unpadded(&self, k0: usize, segs: &[Seg], len: usize, rows: &mut [f32]) {
        let g = self.g;
        let sw = g.stride[1];
        let starts: Vec<usize> = segs.iter().map(|s| self.unpadded_start(s)).collect();
        for (row, (c, u, v)) in rows.chunks_exact_mut(len).zip(taps(g, k0)) {
            let tap = (c * g.h + u * g.dilation[0]) * g.w + v * g.dilation[1];
            for (s, &start) in segs.iter().zip(&starts) {
                let d = &mut row[s.at..s.at + s.len];
                let at = start + tap;
                if sw == 1 {
                    copy_run(d, &self.x[at..at + s.len]);
                } else {
                    let src = &self.x[at..at + (s.len - 1) * sw + 1];
                    for (o, &x) in d.iter_mut().zip(src.iter().step_by(sw)) {
                        *o = x;
                    }
                }
            }
        }
    }
}

impl Cols<'_> {
    /// Where segment `s`'s first column reads the unpadded image at tap (0, 0, 0).
    fn unpadded_start(&self, s: &Seg) -> usize {
        let g = self.g;
        ((s.img * g.c + self.c0) * g.h + s.i * g.stride[0]) * g.w + s.j * g.stride[1]
    }

    /// [`Cols::rows_unpadded`] a value at a time: each column's pixel lies at a fixed
    /// offset from its row's tap, found once for all rows.
    fn rows_gathered(&self, k0: usize, segs: &[Seg], len: usize, rows: &mut [f32]) {
        let g = self.g;
        let sw = g.stride[1];
        let offs: Vec<usize> = segs
            .iter()
            .flat_map(|s| {
                let start = self.unpadded_start(s);
                (0..s.len).map(move |t| start + t * sw)
            })
            .collect();
        for (row, (c, u, v)) in rows.chunks_exact_mut(len).zip(taps(g, k0)) {
            let tap = (c * g.h + u * g.dilation[0]) * g.w + v * g.dilation[1];
            let x = &self.x[tap..];
            for (d, &o) in row.iter_mut().zip(&offs) {
                *d = x[o];
            }
        }
    }

    /// [`Cols::rows_unpadded`] over rows split by phase: every run is contiguous.
    fn rows_phased(&self, k0: usize, segs: &[Seg], len: usize, wq: usize, rows: &mut [f32]) {
        let g = self.g;
        let (sh, sw) = (g.stride[0], g.stride[1]);
        let row_len = sw * wq;
        let starts: Vec<usize> = segs
            .iter()
            .map(|s| ((s.img * g.c + self.c0) * g.h + s.i * sh) * row_len + s.j)
            .collect();
        for (row, (c, u, v)) in rows.chunks_exact_mut(len).zip(taps(g, k0)) {
            let tap = (c * g.h + u * g.dilation[0]) * row_len + (v % sw) * wq + v / sw;
            for (s, &start) in segs.iter().zip(&starts) {
                let at = start + tap;
                copy_run(&mut row[s.at..s.at + s.len], &self.x[at..at + s.len]);
            }
        }
    }
}

impl PackB for Cols<'_> {
    /// Rows are kernel taps, columns output positions: the forward's operand.
    fn pack_b(&self, k0: usize, kc: usize, j0: usize, cols: usize, nr: usize, dst: &mut [f32]) {
        let mut segs = Vec::new();
        segments(j0, cols, self.g.p(), self.g.wo, &mut segs);
        let dst = &mut dst[..kc * nr];
        if cols == nr {
            return self.rows(k0, &segs, nr, dst);
        }
        for (kk, d) in dst.chunks_exact_mut(nr).enumerate() {
            self.rows(k0 + kk, &segs, cols, &mut d[..cols]);
            d[cols..].fill(0.0);
        }
    }
}

/// The transpose of [`Cols`] (rows output positions, columns kernel taps): the
/// filter gradient's right operand.
pub struct ColsT<'a>(pub Cols<'a>);

impl PackB for ColsT<'_> {
    fn pack_b(&self, j0: usize, kc: usize, k0: usize, cols: usize, nr: usize, dst: &mut [f32]) {
        let mut segs = Vec::new();
        segments(j0, kc, self.0.g.p(), self.0.g.wo, &mut segs);
        // the taps' rows as they are laid out, then transposed into the panel
        ROWS.with(|rows| {
            let mut rows = rows.borrow_mut();
            rows.resize(cols * kc, 0.0);
            self.0.rows(k0, &segs, kc, &mut rows);
            transpose::rows_to_groups(&rows, kc, cols, kc, nr, dst);
        });
    }
}

thread_local! {
    /// [`ColsT`]'s rows before they are transposed.
    static ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// One side of a convolution (`y` or `dy`, or for a 1x1 convolution `x` or `dx`) as
/// a matrix: rows a group's channels, columns the positions of a run of images (the
/// slice starts at the first image of the product). Read as an operand, or written
/// as the product's destination.
pub struct Planes<'a> {
    ptr: *mut f32,
    len: usize,
    writable: bool,
    /// Channels per image, the group's first channel, positions per plane.
    chans: usize,
    c0: usize,
    p: usize,
    _data: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a `Planes` made from a shared slice is only read (writing through it is
// refused); one made from a mutable slice is written through `Sink::at` by the
// product, one thread per element.
unsafe impl Sync for Planes<'_> {}

impl<'a> Planes<'a> {
    /// The output side of group `grp`, read-only.
    pub fn output(g: &Geom, y: &'a [f32], grp: usize) -> Self {
        Self::make(
            y.as_ptr() as *mut f32,
            y.len(),
            false,
            g.c_out,
            grp * g.og(),
            g.p(),
        )
    }
    /// The output side of group `grp`, to be written.
    pub fn output_mut(g: &Geom, y: &'a mut [f32], grp: usize) -> Self {
        Self::make(y.as_mut_ptr(), y.len(), true, g.c_out, grp * g.og(), g.p())
    }
    /// The input side of group `grp` of a 1x1 convolution at stride 1 without
    /// padding (where the column matrix is the image itself), read-only.
    pub fn input(g: &Geom, x: &'a [f32], grp: usize) -> Self {
        Self::make(
            x.as_ptr() as *mut f32,
            x.len(),
            false,
            g.c,
            grp * g.cg(),
            g.h * g.w,
        )
    }
    /// The input side of group `grp` of a 1x1 convolution at stride 1 without
    /// padding (where the column matrix is the image itself), to be written.
    pub fn input_mut(g: &Geom, x: &'a mut [f32], grp: usize) -> Self {
        Self::make(x.as_mut_ptr(), x.len(), true, g.c, grp * g.cg(), g.h * g.w)
    }
    fn make(ptr: *mut f32, len: usize, writable: bool, chans: usize, c0: usize, p: usize) -> Self {
        Planes {
            ptr,
            len,
            writable,
            chans,
            c0,
            p,
            _data: std::marker::PhantomData,
        }
    }
    fn index(&self, i: usize, j: usize) -> usize {
        let p = self.p;
        ((j / p) * self.chans + self.c0 + i) * p + j % p
    }
    /// Columns `j0..j0 + len` of row `i`, cut where images change.
    fn runs(
        &self,
        i: usize,
        j0: usize,
        len: usize,
    ) -> impl Iterator<Item = (usize, Range<usize>)> + '_ {
        let p = self.p;
        let mut at = 0;
        std::iter::from_fn(move || {
            (at < len).then(|| {
                let col = j0 + at;
                let l = (p - col % p).min(len - at);
                let start = self.index(i, col);
                assert!(start + l <= self.len, "output columns outside the tensor");
                let r = (at, start..start + l);
                at += l;
                r
            })
        })
    }
    fn slice(&self, r: Range<usize>) -> &[f32] {
        // SAFETY: `runs` checked the range against the slice the planes were made from.
        unsafe { std::slice::from_raw_parts(self.ptr.add(r.start), r.len()) }
    }
}

impl PackB for Planes<'_> {
    /// Rows output channels, columns positions: the input gradient's right operand.
    fn pack_b(&self, k0: usize, kc: usize, j0: usize, cols: usize, nr: usize, dst: &mut [f32]) {
        self.pack_b_panels(k0, kc, j0, cols, nr, dst)
    }
    fn pack_b_panels(
        &self,
        k0: usize,
        kc: usize,
        j0: usize,
        cols: usize,
        nr: usize,
        dst: &mut [f32],
    ) {
        let panels = cols.div_ceil(nr);
        let dst = &mut dst[..panels * kc * nr];
        if kc == 0 {
            return;
        }
        // The pieces of the first row, cut where images and panels change (finding
        // them costs divisions), as (where in `dst`, where in the tensor, length):
        // every other row's are a plane further on in the tensor and a group further
        // on in its panel. Rows are copied whole in turn, which reads the memory
        // in order.
        let mut pieces = Vec::with_capacity(panels + 2);
        for (at, r) in self.runs(k0, j0, cols) {
            assert!(
                r.end + (kc - 1) * self.p <= self.len,
                "rows outside the tensor"
            );
            let (mut at, mut s) = (at, r.start);
            while s < r.end {
                let len = (nr - at % nr).min(r.end - s);
                pieces.push(((at / nr) * kc * nr + at % nr, s, len));
                (at, s) = (at + len, s + len);
            }
        }
        for kk in 0..kc {
            for &(d, s, len) in &pieces {
                let (d, s) = (d + kk * nr, s + kk * self.p);
                copy_run(&mut dst[d..d + len], self.slice(s..s + len));
            }
        }
        let used = cols - (panels - 1) * nr;
        if used < nr {
            for d in dst[(panels - 1) * kc * nr..].chunks_exact_mut(nr) {
                d[used..].fill(0.0);
            }
        }
    }
}

impl PackA for Planes<'_> {
    /// Rows output channels, depth positions: the filter gradient's left operand.
    fn pack_a(&self, i0: usize, rows: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
        let dst = &mut dst[..kc * mr];
        if rows == 0 {
            dst.fill(0.0);
            return;
        }
        // within an image, the panel's rows are planes `p` apart
        for (at, run) in self.runs(i0, k0, kc) {
            let end = run.start + (rows - 1) * self.p + run.len();
            assert!(end <= self.len, "output rows outside the tensor");
            let src = self.slice(run.start..end);
            let d = &mut dst[at * mr..(at + run.len()) * mr];
            transpose::rows_to_groups(src, self.p, rows, run.len(), mr, d);
        }
    }
}

impl Sink for Planes<'_> {
    fn at(&self, i: usize, j: usize) -> *mut f32 {
        let at = self.index(i, j);
        assert!(self.writable, "writing through read-only planes");
        assert!(at < self.len, "output element outside the tensor");
        self.ptr.wrapping_add(at)
    }
    fn row_stride(&self, j0: usize, cols: usize) -> Option<usize> {
        (j0 % self.p + cols <= self.p).then_some(self.p)
    }
    fn run_len(&self, j: usize, most: usize) -> usize {
        (self.p - j % self.p).min(most)
    }
}

/// Walks one row `(u, v)` of a column matrix over output rows `rows`: calls
/// `f(range, at)` for each run of output positions (counted from the first of
/// `rows`) whose pixels lie in the image, `at` being the input index of the first of
/// them (the rest follow `stride[1]` apart).
fn for_each_run<F>(g: &Geom, rows: Range<usize>, u: usize, v: usize, mut f: F)
where
    F: FnMut(Range<usize>, usize),
{
    let (sh, sw) = (g.stride[0], g.stride[1]);
    let (dh, dw) = (g.dilation[0], g.dilation[1]);
    let (ilo, ihi) = valid(g.ho, g.h, sh, u * dh, g.pad.top);
    let (jlo, jhi) = valid(g.wo, g.w, sw, v * dw, g.pad.left);
    let first = rows.start;
    for i in rows {
        if i < ilo || i >= ihi || jlo >= jhi {
            continue;
        }
        let row = (i - first) * g.wo;
        let ih = i * sh + u * dh - g.pad.top;
        let iw = jlo * sw + v * dw - g.pad.left;
        f(row + jlo..row + jhi, ih * g.w + iw);
    }
}

/// Adds the rows of channel `c` of a column matrix (`ncols` columns, the image's
/// positions starting at column `first`) into that channel's plane `dxc`, at the
/// pixels they were read from. Channels are independent, so different channels can
/// be folded on different threads.
pub fn col2im(g: &Geom, col: &[f32], ncols: usize, first: usize, c: usize, dxc: &mut [f32]) {
    let len = g.p();
    let sw = g.stride[1];
    for u in 0..g.kh {
        for v in 0..g.kw {
            let r = (c * g.kh + u) * g.kw + v;
            let src = &col[r * ncols + first..r * ncols + first + len];
            if g.unpadded() && sw == 1 {
                // every output row reads a whole run inside the image
                for (i, s) in src.chunks_exact(g.wo).enumerate() {
                    let at = (i * g.stride[0] + u * g.dilation[0]) * g.w + v * g.dilation[1];
                    for (o, &x) in dxc[at..at + g.wo].iter_mut().zip(s) {
                        *o += x;
                    }
                }
                continue;
            }
            for_each_run(g, 0..g.ho, u, v, |range, at| {
                let s = &src[range];
                if sw == 1 {
                    for (o, &v) in dxc[at..at + s.len()].iter_mut().zip(s) {
                        *o += v;
                    }
                } else {
                    for (o, &v) in dxc[at..].iter_mut().step_by(sw).zip(s) {
                        *o += v;
                    }
                }
            });
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
    fn gathered_rows_are_the_copied_rows() {
        // two groups of 2 channels, 5x7 images, a 2x3 kernel with vertical dilation 2
        // and stride 1x2, no padding: 3x3 outputs, segments of 3 or fewer
        let g = Geom::new(
            [2, 4, 5, 7],
            [4, 2, 2, 3],
            2,
            Pad::default(),
            [1, 2],
            [2, 1],
            [3, 3],
        );
        assert!(g.unpadded());
        let x: Vec<f32> = (0..2 * 4 * 5 * 7).map(|v| v as f32).collect();
        let cols = Cols::new(&g, &x, 1);
        let k = 2 * 2 * 3;
        let mut segs = Vec::new();
        for (j0, len) in [(0, 8), (5, 8), (10, 8), (1, 17)] {
            segments(j0, len, g.p(), g.wo, &mut segs);
            assert!(segs.len() > 1);
            for k0 in [0, 5] {
                let rows = k - k0;
                let (mut gathered, mut copied) =
                    (vec![f32::NAN; rows * len], vec![0.0; rows * len]);
                cols.rows_gathered(k0, &segs, len, &mut gathered);
                cols.rows_unpadded(k0, &segs, len, &mut copied);
                assert_eq!(gathered, copied, "columns {j0}+{len} from row {k0}");
                for (t, row) in gathered.chunks_exact(len).enumerate() {
                    let mut one = vec![f32::NAN; len];
                    cols.row(k0 + t, &segs, &mut one);
                    assert_eq!(row, &one[..], "row {}", k0 + t);
                }
            }
        }
    }

    #[test]
    fn columns_of_a_padded_strided_image() {
        // 1 channel 3x3, kernel 2x2, pad 1 all round, stride 2: 2x2 outputs
        let g = Geom::new(
            [2, 1, 3, 3],
            [1, 1, 2, 2],
            1,
            Pad::all(1),
            [2, 2],
            [1, 1],
            [2, 2],
        );
        // two images, the second the first plus 10
        let x: Vec<f32> = (1..=9).chain(11..=19).map(|v| v as f32).collect();
        // row (u,v): output (i,j) reads x[2i-1+u, 2j-1+v]
        #[rustfmt::skip]
        let want = [
            0.0, 0.0, 0.0, 5.0,
            0.0, 0.0, 4.0, 6.0,
            0.0, 2.0, 0.0, 8.0,
            1.0, 3.0, 7.0, 9.0,
        ];
        let cols = Cols::new(&g, &x, 0);
        // columns 2..7: the last two of image 0 and the first three of image 1, in
        // a panel of 6 (one padding column)
        let mut panel = vec![f32::NAN; 4 * 6];
        cols.pack_b(0, 4, 2, 5, 6, &mut panel);
        for k in 0..4 {
            let mut expect: Vec<f32> = want[k * 4 + 2..k * 4 + 4].to_vec();
            expect.extend(
                want[k * 4..k * 4 + 3]
                    .iter()
                    .map(|&v| if v == 0.0 { 0.0 } else { v + 10.0 }),
            );
            expect.push(0.0);
            assert_eq!(&panel[k * 6..k * 6 + 6], &expect[..], "row {k}");
        }
        // the transpose, rows = positions 1..4 of image 0, columns = taps 1..3
        let mut t = vec![f32::NAN; 3 * 4];
        ColsT(Cols::new(&g, &x, 0)).pack_b(1, 3, 1, 2, 4, &mut t);
        for jj in 0..3 {
            assert_eq!(t[jj * 4], want[4 + 1 + jj]);
            assert_eq!(t[jj * 4 + 1], want[8 + 1 + jj]);
            assert_eq!(&t[jj * 4 + 2..jj * 4 + 4], &[0.0, 0.0]);
        }
        // folding the whole column matrix back: every pixel of the 3x3 appears
        // exactly once in these windows
        let mut back = vec![0.0; 9];
        col2im(&g, &want, 4, 0, 0, &mut back);
        assert_eq!(back, x[..9]);
    }
}
