//! Convolution as matrix products, the CPU kernels behind `blocks::conv` and
//! `blocks::convt`. Per group, with `col` the im2col matrix of a run of images:
//!
//! - forward:          `Y  = W   * col`      (C_out/G x K) (K x cols)
//! - input gradient:   `dcol = W^T * dY`, then col2im
//! - filter gradient:  `dW += dY * col^T`
//!
//! Two shapes need no im2col at all and read the tensors in place: a 1x1, stride-1,
//! unpadded convolution (`col` is the image itself) and a fully connected layer, a
//! kernel that covers the whole unpadded input (`col` is the batch, one image per
//! column, so the product runs over the batch at once).
//!
//! Small images are batched, several to one product (more columns keep the matrix
//! kernel busy); a large image's column matrix is built a band of output rows at a
//! time (about 1 MB per thread), so that each band is consumed while still in cache
//! and the scratch buffers, reused across calls per thread, stay bounded.
//!
//! Parallelism: the batch is cut into one contiguous part per thread of the current
//! rayon pool; each part runs its products on one thread, and filter gradients of the
//! parts are added in part order. With fewer images than threads (and for fully
//! connected layers) a single part lets the matrix product split its output instead.
//! Either way the partition depends only on the sizes and the thread count, so results
//! are bit-identical from run to run.

use super::gemm::{matmul, View, ViewMut};
use super::im2col::{col2im, im2col};
use crate::blocks::Pad;
use crate::tensor::Dims4;
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// The sizes of one convolution, checked by the block before any kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub groups: usize,
    pub pad: Pad,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub ho: usize,
    pub wo: usize,
}

impl Geom {
    /// `x` is (N, C, H, W), `w` is (C_out, C/groups, kh, kw), `out` is (H_out, W_out).
    pub fn new(
        x: [usize; 4],
        w: [usize; 4],
        groups: usize,
        pad: Pad,
        stride: [usize; 2],
        dilation: [usize; 2],
        out: [usize; 2],
    ) -> Self {
        Geom {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            c_out: w[0],
            kh: w[2],
            kw: w[3],
            groups,
            pad,
            stride,
            dilation,
            ho: out[0],
            wo: out[1],
        }
    }
    /// The output sizes (N, C_out, H_out, W_out).
    pub fn out(&self) -> Dims4 {
        Dims4::new(self.n, self.c_out, self.ho, self.wo)
    }
    /// Input channels per group.
    pub fn cg(&self) -> usize {
        self.c / self.groups
    }
    /// Output channels per group.
    pub fn og(&self) -> usize {
        self.c_out / self.groups
    }
    /// Rows of the column matrix: one filter's length.
    pub fn kg(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    /// Output positions per image.
    pub fn p(&self) -> usize {
        self.ho * self.wo
    }
    fn x_len(&self) -> usize {
        self.c * self.h * self.w
    }
    fn y_len(&self) -> usize {
        self.c_out * self.p()
    }
    fn unpadded(&self) -> bool {
        self.pad == Pad::default()
    }
    /// A kernel covering the whole unpadded input: a fully connected layer.
    fn is_fc(&self) -> bool {
        self.unpadded() && self.kh == self.h && self.kw == self.w && self.p() == 1
    }
    /// A 1x1 kernel at stride 1 without padding: the image is its own column matrix.
    fn is_pointwise(&self) -> bool {
        self.unpadded() && self.kh == 1 && self.kw == 1 && self.stride == [1, 1]
    }
}

/// Columns a product aims for when images are small: batching several images into
/// one product keeps the matrix kernel busy where one image gives few columns.
const TARGET_COLS: usize = 2048;
/// Column matrices are kept near this many elements (1 MB) per thread: several small
/// images are batched only up to it, and a single image whose matrix is larger has it
/// built a band of output rows at a time, so that each band is still in cache when
/// the product reads it (VGG's 3x3x256 layer used less CPU time with one image per
/// product than with two).
const TILE: usize = 1 << 18;
/// Largest column matrix (elements) built for several images at once.
const MAX_COL: usize = TILE;

/// How the batch is cut: `parts` contiguous runs of `per_part` images (the last may
/// be shorter), each processed `per_product` images at a time (or, one image at a
/// time, `tile_rows` output rows at a time), and the thread count each product may use.
#[derive(Clone, Copy, Debug)]
struct Plan {
    per_part: usize,
    per_product: usize,
    tile_rows: usize,
    threads: usize,
}

/// What one product covers: `nb` images from the current one, all their output rows
/// when `nb` > 1, else the output rows `rows` of one image.
#[derive(Clone, Debug)]
struct Tile {
    nb: usize,
    rows: Range<usize>,
}

impl Tile {
    /// Output positions per image in the tile.
    fn len(&self, g: &Geom) -> usize {
        self.rows.len() * g.wo
    }
    fn cols(&self, g: &Geom) -> usize {
        self.nb * self.len(g)
    }
    /// Offset of the tile's first output position within a plane.
    fn first(&self, g: &Geom) -> usize {
        self.rows.start * g.wo
    }
}

impl Plan {
    fn new(g: &Geom) -> Plan {
        let t = rayon::current_num_threads().max(1);
        let n = g.n.max(1);
        if g.is_fc() || n < t {
            // One part; the product itself is split over the threads.
            let per_product = if g.is_fc() { n } else { 1 };
            return Plan {
                per_part: n,
                per_product,
                tile_rows: tile_rows(g, t),
                threads: t,
            };
        }
        let per_part = n.div_ceil(t);
        let by_cols = (TARGET_COLS / g.p().max(1)).max(1);
        let by_mem = (MAX_COL / (g.kg() * g.p()).max(1)).max(1);
        let per_product = by_cols.min(by_mem).min(per_part);
        Plan {
            per_part,
            per_product,
            tile_rows: if per_product == 1 {
                tile_rows(g, 1)
            } else {
                g.ho
            },
            threads: 1,
        }
    }
}

/// Output rows per band for one image whose column matrix would exceed `TILE`
/// elements per thread of the product, else all of them.
fn tile_rows(g: &Geom, threads: usize) -> usize {
    let limit = TILE * threads;
    if g.is_fc() || g.kg() * g.p() <= limit {
        g.ho
    } else {
        (limit / (g.kg() * g.wo).max(1)).clamp(1, g.ho.max(1))
    }
}

thread_local! {
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with two scratch buffers of at least the given lengths, reused across
/// calls on the same thread (column matrices are megabytes; allocating them per call
/// costs page faults). Falls back to fresh buffers if the thread's are in use.
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            let (va, vb) = &mut *s;
            grow(va, a);
            grow(vb, b);
            f(&mut va[..a], &mut vb[..b])
        }
        Err(_) => f(&mut vec![0.0; a], &mut vec![0.0; b]),
    })
}

fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// Where a tile of one group sits as a (rows x tile columns) matrix: either in place
/// in the tensor, or copied through a buffer.
enum Place {
    /// Already a matrix: offset, row stride, column stride within the tensor.
    InPlace(usize, usize, usize),
    /// Needs copying through a row-major buffer.
    Buffer,
}

/// The placement of the output-side matrix (`y` or `dy`, C_out/G rows), relative to
/// the tile's first image in the tensor.
fn out_place(g: &Geom, grp: usize, t: &Tile) -> Place {
    if g.is_fc() {
        Place::InPlace(grp * g.og(), 1, g.c_out)
    } else if t.nb == 1 {
        Place::InPlace(grp * g.og() * g.p() + t.first(g), g.p(), 1)
    } else {
        Place::Buffer
    }
}

/// The placement of the input-side matrix (the column matrix of `x`, or `dx`).
fn in_place(g: &Geom, grp: usize, t: &Tile) -> Place {
    if g.is_fc() {
        Place::InPlace(grp * g.kg(), 1, g.x_len())
    } else if g.is_pointwise() && t.nb == 1 {
        Place::InPlace(grp * g.cg() * g.p() + t.first(g), g.p(), 1)
    } else {
        Place::Buffer
    }
}

/// Scratch lengths a tile needs: the column matrix and the output-side buffer.
fn scratch_lens(g: &Geom, t: &Tile) -> (usize, usize) {
    let col = match in_place(g, 0, t) {
        Place::Buffer => g.kg() * t.cols(g),
        Place::InPlace(..) => 0,
    };
    let out = match out_place(g, 0, t) {
        Place::Buffer => g.og() * t.cols(g),
        Place::InPlace(..) => 0,
    };
    (col, out)
}

/// Copies channels `c0..c0+rows` of `nb` images (planes of `plane` elements, `cs`
/// channels per image) into a row-major (rows x nb*plane) matrix.
fn gather(
    src: &[f32],
    cs: usize,
    c0: usize,
    rows: usize,
    nb: usize,
    plane: usize,
    dst: &mut [f32],
) {
    let cols = nb * plane;
    for r in 0..rows {
        for i in 0..nb {
            let s = ((i * cs) + c0 + r) * plane;
            let d = r * cols + i * plane;
            dst[d..d + plane].copy_from_slice(&src[s..s + plane]);
        }
    }
}

/// The inverse of [`gather`].
fn scatter(
    src: &[f32],
    cs: usize,
    c0: usize,
    rows: usize,
    nb: usize,
    plane: usize,
    dst: &mut [f32],
) {
    let cols = nb * plane;
    for r in 0..rows {
        for i in 0..nb {
            let d = ((i * cs) + c0 + r) * plane;
            let s = r * cols + i * plane;
            dst[d..d + plane].copy_from_slice(&src[s..s + plane]);
        }
    }
}

/// Builds the column matrix of tile `t` of `x` (which starts at the tile's first
/// image) for group `grp` into `col` (kg x tile columns).
fn fill_col(g: &Geom, x: &[f32], grp: usize, t: &Tile, col: &mut [f32]) {
    for i in 0..t.nb {
        let img = &x[i * g.x_len() + grp * g.cg() * g.h * g.w..];
        im2col(g, t.rows.clone(), img, col, t.cols(g), i * t.len(g));
    }
}

/// Calls `f(n0, tile)` for each tile one product handles, in order, within the part
/// that starts at image `start`; `n0` is the tile's first image.
fn for_products(plan: &Plan, g: &Geom, start: usize, mut f: impl FnMut(usize, Tile)) {
    let end = (start + plan.per_part).min(g.n);
    let mut n0 = start;
    while n0 < end {
        let nb = plan.per_product.min(end - n0);
        if nb > 1 || plan.tile_rows >= g.ho {
            f(n0, Tile { nb, rows: 0..g.ho });
        } else {
            let mut i0 = 0;
            while i0 < g.ho {
                let i1 = (i0 + plan.tile_rows).min(g.ho);
                f(
                    n0,
                    Tile {
                        nb: 1,
                        rows: i0..i1,
                    },
                );
                i0 = i1;
            }
        }
        n0 += nb;
    }
}

/// `y = conv(x, w) + b` for all images; `y` is (N, C_out, H_out, W_out).
pub fn forward(g: &Geom, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    let plan = Plan::new(g);
    let chunk = plan.per_part * g.y_len();
    if chunk == 0 {
        return;
    }
    y.par_chunks_mut(chunk).enumerate().for_each(|(part, yp)| {
        let start = part * plan.per_part;
        for_products(&plan, g, start, |n0, t| {
            let local = (n0 - start) * g.y_len();
            forward_tile(g, &plan, &x[n0 * g.x_len()..], w, b, &mut yp[local..], &t);
        });
    });
}

/// Forward of one tile; `x` and `y` start at its first image.
fn forward_tile(
    g: &Geom,
    plan: &Plan,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    t: &Tile,
) {
    let (og, kg, cols) = (g.og(), g.kg(), t.cols(g));
    let (col_len, out_len) = scratch_lens(g, t);
    with_scratch(col_len, out_len, |col, tmp| {
        for grp in 0..g.groups {
            let a = View::rows(w, grp * og * kg, og, kg);
            let bm = input_side(g, x, grp, t, col);
            let bias = b.map(|b| &b[grp * og..(grp + 1) * og]);
            match out_place(g, grp, t) {
                Place::InPlace(off, rs, cs) => {
                    let mut c = strided_mut(y, off, og, cols, rs, cs);
                    set_rows(&mut c, bias);
                    matmul(c, a, bm, bias.is_some(), plan.threads);
                }
                Place::Buffer => {
                    let mut c = ViewMut::rows(tmp, 0, og, cols);
                    set_rows(&mut c, bias);
                    matmul(c, a, bm, bias.is_some(), plan.threads);
                    scatter(tmp, g.c_out, grp * og, og, t.nb, g.p(), y);
                }
            }
        }
    });
}

/// `dx` of a convolution (overwritten): `W^T dY` folded back by col2im.
pub fn backward_data(g: &Geom, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let plan = Plan::new(g);
    let chunk = plan.per_part * g.x_len();
    if chunk == 0 {
        return;
    }
    dx.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(part, dxp)| {
            let start = part * plan.per_part;
            // col2im adds into dx, tile by tile
            dxp.fill(0.0);
            for_products(&plan, g, start, |n0, t| {
                let local = (n0 - start) * g.x_len();
                data_tile(g, &plan, &dy[n0 * g.y_len()..], w, &mut dxp[local..], &t);
            });
        });
}

/// Input gradient of one tile, added into `dx` (zero on the first tile); `dy` and
/// `dx` start at the tile's first image.
fn data_tile(g: &Geom, plan: &Plan, dy: &[f32], w: &[f32], dx: &mut [f32], t: &Tile) {
    let (og, kg, cols) = (g.og(), g.kg(), t.cols(g));
    let (col_len, out_len) = scratch_lens(g, t);
    with_scratch(col_len, out_len, |col, tmp| {
        for grp in 0..g.groups {
            let a = View::rows(w, grp * og * kg, og, kg).t();
            let bm = output_side(g, dy, grp, t, tmp);
            match in_place(g, grp, t) {
                Place::InPlace(off, rs, cs) => {
                    matmul(
                        strided_mut(dx, off, kg, cols, rs, cs),
                        a,
                        bm,
                        false,
                        plan.threads,
                    );
                }
                Place::Buffer => {
                    matmul(ViewMut::rows(col, 0, kg, cols), a, bm, false, plan.threads);
                    for i in 0..t.nb {
                        let img = &mut dx[i * g.x_len() + grp * g.cg() * g.h * g.w..];
                        col2im(g, t.rows.clone(), col, cols, i * t.len(g), img);
                    }
                }
            }
        }
    });
}

/// `dY` of group `grp` for tile `t` as an (og x tile columns) matrix, gathered into
/// `tmp` when it cannot be read in place.
fn output_side<'a>(g: &Geom, dy: &'a [f32], grp: usize, t: &Tile, tmp: &'a mut [f32]) -> View<'a> {
    let (og, cols) = (g.og(), t.cols(g));
    match out_place(g, grp, t) {
        Place::InPlace(off, rs, cs) => strided(dy, off, og, cols, rs, cs),
        Place::Buffer => {
            gather(dy, g.c_out, grp * og, og, t.nb, g.p(), tmp);
            View::rows(tmp, 0, og, cols)
        }
    }
}

/// The column matrix of group `grp` for tile `t` of `x`: in place, or built in `col`.
fn input_side<'a>(g: &Geom, x: &'a [f32], grp: usize, t: &Tile, col: &'a mut [f32]) -> View<'a> {
    let (kg, cols) = (g.kg(), t.cols(g));
    match in_place(g, grp, t) {
        Place::InPlace(off, rs, cs) => strided(x, off, kg, cols, rs, cs),
        Place::Buffer => {
            fill_col(g, x, grp, t, col);
            View::rows(col, 0, kg, cols)
        }
    }
}

/// `dw` of a convolution (overwritten): `dY col^T` summed over the batch, each part's
/// sum computed on its own and the parts added in order.
pub fn backward_filter(g: &Geom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let plan = Plan::new(g);
    let parts = g.n.div_ceil(plan.per_part.max(1));
    if parts == 0 {
        dw.fill(0.0);
        return;
    }
    let sums: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let mut acc = vec![0.0; dw.len()];
            let mut first = true;
            for_products(&plan, g, part * plan.per_part, |n0, t| {
                let (xs, dys) = (&x[n0 * g.x_len()..], &dy[n0 * g.y_len()..]);
                filter_tile(g, &plan, xs, dys, &mut acc, &t, !first);
                first = false;
            });
            acc
        })
        .collect();
    let mut it = sums.into_iter();
    if let Some(s) = it.next() {
        dw.copy_from_slice(&s);
    }
    for s in it {
        for (d, v) in dw.iter_mut().zip(s) {
            *d += v;
        }
    }
}

/// Adds (or writes, when not `accumulate`) the filter gradient of one tile.
fn filter_tile(
    g: &Geom,
    plan: &Plan,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    t: &Tile,
    accumulate: bool,
) {
    let (og, kg) = (g.og(), g.kg());
    let (col_len, out_len) = scratch_lens(g, t);
    with_scratch(col_len, out_len, |col, tmp| {
        for grp in 0..g.groups {
            let a = output_side(g, dy, grp, t, tmp);
            let bm = input_side(g, x, grp, t, col);
            let c = ViewMut::rows(dw, grp * og * kg, og, kg);
            matmul(c, a, bm.t(), accumulate, plan.threads);
        }
    });
}

/// `y[n, o, :, :] += b[o]`.
pub fn add_bias(c: usize, plane: usize, b: &[f32], y: &mut [f32]) {
    if c * plane == 0 {
        return;
    }
    y.par_chunks_mut(c * plane).for_each(|img| {
        for (p, &v) in img.chunks_mut(plane).zip(b) {
            p.iter_mut().for_each(|e| *e += v);
        }
    });
}

/// `db[o] = sum over images and positions of dy[n, o, :, :]`, summed in a fixed order.
pub fn bias_grad(n: usize, c: usize, plane: usize, dy: &[f32], db: &mut [f32]) {
    db.par_iter_mut().enumerate().for_each(|(o, d)| {
        *d = (0..n)
            .map(|i| {
                dy[(i * c + o) * plane..(i * c + o + 1) * plane]
                    .iter()
                    .sum::<f32>()
            })
            .sum();
    });
}

fn strided(data: &[f32], off: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> View<'_> {
    View {
        data,
        off,
        rows,
        cols,
        rs,
        cs,
    }
}

fn strided_mut(
    data: &mut [f32],
    off: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
) -> ViewMut<'_> {
    ViewMut {
        data,
        off,
        rows,
        cols,
        rs,
        cs,
    }
}

/// Sets every element of row `i` to `vals[i]`, or leaves the view alone without
/// values (the product then overwrites it).
fn set_rows(c: &mut ViewMut, vals: Option<&[f32]>) {
    let Some(vals) = vals else { return };
    for (i, &v) in vals.iter().enumerate().take(c.rows) {
        for j in 0..c.cols {
            c.data[c.off + i * c.rs + j * c.cs] = v;
        }
    }
}
