//! Convolution as matrix products, the CPU kernels behind `blocks::conv` and
//! `blocks::convt`. Per group, with `col` the column matrix of the images (see
//! [`super::im2col`]; never stored whole, its panels are packed from the images as
//! the product needs them):
//!
//! - forward:          `Y  = W   * col` (+ bias, ReLU when fused)  (C_out/G x K) (K x N*P)
//! - input gradient:   `dcol = W^T * dY`, folded back by col2im, an image at a time
//! - filter gradient:  `dW = dY * col^T`, summed over every position of the batch
//!
//! The products are [`super::sgemm`]'s: the columns of all images form one product,
//! split over the threads of the current rayon pool by columns (or rows), and each
//! element is summed by one thread in a fixed order, so results are bit-identical
//! from run to run and for any thread count.
//!
//! 3x3 convolutions at stride 1 with enough tiles go to [`super::winograd`] instead,
//! and so does the forward of a strided layer whose kernel covers three of its
//! input's phases a side, as a 3x3 over those phases ([`super::phases`]).
//!
//! A 1x1, stride-1, unpadded convolution's input gradient needs no col2im (`dcol` is
//! `dx`). A fully connected layer, a kernel that covers the whole unpadded input,
//! goes to [`super::fc`].

use super::cpu::{self, Isa};
use super::fc;
use super::im2col::{col2im, Cols, ColsT, Planes};
use super::phases;
use super::sgemm::{self, Epilogue, PackB, PackedA, Strided, StridedMut};
use super::winograd;
use crate::blocks::Pad;
use crate::tensor::Dims4;
use rayon::prelude::*;
use std::borrow::Cow;

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
    pub(crate) fn x_len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub(crate) fn y_len(&self) -> usize {
        self.c_out * self.p()
    }
    pub(crate) fn unpadded(&self) -> bool {
        self.pad == Pad::default()
    }
    /// A kernel covering the whole unpadded input: a fully connected layer.
    pub(crate) fn is_fc(&self) -> bool {
        self.unpadded() && self.kh == self.h && self.kw == self.w && self.p() == 1
    }
    /// A 1x1 kernel at stride 1 without padding: the image is its own column matrix.
    fn is_pointwise(&self) -> bool {
        self.unpadded() && self.kh == 1 && self.kw == 1 && self.stride == [1, 1]
    }
}

/// `y = conv(x, w) + b` for all images; `y` is (N, C_out, H_out, W_out).
pub fn forward(g: &Geom, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    forward_fused(g, x, w, b, false, y)
}

/// [`forward`], with `y = max(0, y)` applied as it is written when `relu`.
pub fn forward_fused(g: &Geom, x: &[f32], w: &[f32], b: Option<&[f32]>, relu: bool, y: &mut [f32]) {
    forward_packed(g, x, w, b, relu, y, None)
}

/// [`forward_fused`] with the filters packed for the products kept in `cache`
/// from one call to the next, for as long as `version` (the filters' state, see
/// [`crate::Tensor::version`]) and the product's form stay the same: packing
/// reads and writes every filter, 47 MB per forward of ResNet-18.
#[allow(clippy::too_many_arguments)]
pub fn forward_cached(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    version: u64,
    b: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    cache: &mut FilterCache,
) {
    forward_packed(g, x, w, b, relu, y, Some((version, cache)))
}

fn forward_packed(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    cache: Option<(u64, &mut FilterCache)>,
) {
    if g.n == 0 || g.y_len() == 0 {
        return;
    }
    if g.is_fc() {
        // reads each filter once, unpacked: nothing to keep
        return fc::forward(g, x, w, b, relu, y);
    }
    let isa = cpu::isa();
    let by_winograd = |g: &Geom| match cache {
        Some(_) => winograd::worth_it_kept(g),
        None => winograd::worth_it(g),
    };
    if by_winograd(g) {
        let w = || Cow::Borrowed(w);
        return winograd_forward(isa, g, x, w, b, relu, y, cache, Form::Winograd);
    }
    if let Some(gs) = phases::split(g).filter(|gs| by_winograd(gs)) {
        let xs = phases::input(g, &gs, x);
        let ws = || Cow::Owned(phases::filters(g, &gs, w));
        return winograd_forward(isa, &gs, &xs, ws, b, relu, y, cache, Form::PhaseWinograd);
    }
    let packed = cache.map(|(version, c)| {
        let width = sgemm::kept_width(isa, g.og(), g.n * g.p());
        let key = Key::new(version, isa, g, Form::Products(width));
        c.products(key, || {
            (0..g.groups)
                .map(|grp| PackedA::with_width(&group_filters(g, w, grp), g.og(), g.kg(), width))
                .collect()
        })
    });
    products_forward(g, x, w, b, relu, y, packed)
}

/// The forward by Winograd of a 3x3 stride-1 geometry `g`, with the filters `w()`
/// transformed afresh or kept in `cache` as `form`.
#[allow(clippy::too_many_arguments)]
fn winograd_forward<'w>(
    isa: Isa,
    g: &Geom,
    x: &[f32],
    w: impl FnOnce() -> Cow<'w, [f32]>,
    b: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    cache: Option<(u64, &mut FilterCache)>,
    form: Form,
) {
    match cache {
        Some((version, c)) => {
            let key = Key::new(version, isa, g, form);
            let f = c.winograd(key, || winograd::forward_filters(isa, g, &w()));
            winograd::forward_with(isa, g, f, x, b, relu, y)
        }
        None => winograd::forward(isa, g, x, &w(), b, relu, y),
    }
}

/// The forward by matrix products whatever the shape (Winograd's accuracy is
/// measured against it).
pub fn forward_direct(g: &Geom, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    products_forward(g, x, w, b, false, y, None)
}

/// Filters packed for a forward, kept by [`forward_cached`] between calls. A clone
/// starts empty.
#[derive(Default)]
pub struct FilterCache {
    entry: Option<(Key, Packed)>,
}

/// What packed filters were made from and for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    version: u64,
    isa: Isa,
    form: Form,
    og: usize,
    kg: usize,
    groups: usize,
}

impl Key {
    fn new(version: u64, isa: Isa, g: &Geom, form: Form) -> Key {
        Key {
            version,
            isa,
            form,
            og: g.og(),
            kg: g.kg(),
            groups: g.groups,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// Each group's filters in panels of this many rows.
    Products(usize),
    /// Winograd's transformed filters.
    Winograd,
    /// Winograd's transformed filters of the stride-1 convolution over the input's
    /// phases (see [`phases`]).
    PhaseWinograd,
}

enum Packed {
    Products(Vec<PackedA>),
    Winograd(Vec<winograd::Filters>),
}

impl FilterCache {
    /// What `key` names, made by `make` unless it is held already (whatever was
    /// held before is dropped first, so that old and new are never both in memory).
    fn get(&mut self, key: Key, make: impl FnOnce() -> Packed) -> &Packed {
        if self.entry.as_ref().map(|(k, _)| *k) != Some(key) {
            self.entry = None;
            self.entry = Some((key, make()));
        }
        &self.entry.as_ref().expect("just filled").1
    }
    /// Each group's filters packed for the products, as `key` names them.
    fn products(&mut self, key: Key, make: impl FnOnce() -> Vec<PackedA>) -> &[PackedA] {
        match self.get(key, || Packed::Products(make())) {
            Packed::Products(p) => p,
            Packed::Winograd(_) => unreachable!("the key names the form"),
        }
    }
    /// Each group's Winograd-transformed filters, as `key` names them.
    fn winograd(
        &mut self,
        key: Key,
        make: impl FnOnce() -> Vec<winograd::Filters>,
    ) -> &[winograd::Filters] {
        match self.get(key, || Packed::Winograd(make())) {
            Packed::Winograd(f) => f,
            Packed::Products(_) => unreachable!("the key names the form"),
        }
    }
    /// Drops what is held (a layer in training changes its filters every step).
    pub fn clear(&mut self) {
        self.entry = None;
    }
    /// Whether filters are held.
    pub fn is_empty(&self) -> bool {
        self.entry.is_none()
    }
}

impl Clone for FilterCache {
    fn clone(&self) -> Self {
        FilterCache::default()
    }
}

impl std::fmt::Debug for FilterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.entry {
            Some((k, _)) => write!(f, "FilterCache({k:?})"),
            None => write!(f, "FilterCache(empty)"),
        }
    }
}

/// Group `grp`'s filters (og x kg, row-major) as a product's left operand.
fn group_filters<'a>(g: &Geom, w: &'a [f32], grp: usize) -> Strided<'a> {
    Strided {
        data: w,
        off: grp * g.og() * g.kg(),
        rs: g.kg(),
        cs: 1,
    }
}

/// Output rows up to which a padded input is copied with its padding written out.
const PAD_COPY_WIDTH: usize = 32;

/// A copy of `x` with its padding written out as zeros, and the geometry that reads
/// it without padding, for small images and strided layers: im2col then copies whole
/// runs and clips none (ResNet-18's 7x7 layers: a run of 7 per tap and row, most of
/// them clipped on one side), and a strided layer can be split by phase
/// ([`phase_copy`]). Other large images have long runs whose clipping costs little,
/// and their copy would cost memory.
fn padded_copy(g: &Geom, x: &[f32]) -> Option<(Geom, Vec<f32>)> {
    // a strided layer is copied whatever its size, to be split by phase after
    if g.unpadded() || (g.wo > PAD_COPY_WIDTH && g.stride[1] == 1) {
        return None;
    }
    let p = g.pad;
    let (hp, wp) = (g.h + p.top + p.bottom, g.w + p.left + p.right);
    let mut xp = vec![0.0f32; g.n * g.c * hp * wp];
    xp.par_chunks_mut(hp * wp)
        .zip(x.par_chunks(g.h * g.w))
        .for_each(|(dst, src)| {
            for (i, row) in src.chunks_exact(g.w).enumerate() {
                let at = (i + p.top) * wp + p.left;
                dst[at..at + g.w].copy_from_slice(row);
            }
        });
    let gp = Geom {
        h: hp,
        w: wp,
        pad: Pad::default(),
        ..*g
    };
    Some((gp, xp))
}

/// `x` with each image row split into its `s` phases for [`Cols::with_phases`], and
/// the phase length, for an unpadded convolution with horizontal stride `s > 1` and
/// no horizontal dilation.
fn phase_copy(g: &Geom, x: &[f32]) -> Option<(Vec<f32>, usize)> {
    let s = g.stride[1];
    if s == 1 || g.dilation[1] != 1 || !g.unpadded() {
        return None;
    }
    let wq = g.w.div_ceil(s);
    let mut xp = vec![0.0f32; g.n * g.c * g.h * s * wq];
    xp.par_chunks_mut(s * wq)
        .zip(x.par_chunks(g.w))
        .for_each(|(dst, row)| {
            for (q, pixels) in row.chunks(s).enumerate() {
                for (phase, &v) in pixels.iter().enumerate() {
                    dst[phase * wq + q] = v;
                }
            }
        });
    Some((xp, wq))
}

/// The input as the column matrices read it: `x` itself, or the copies that
/// [`padded_copy`] and [`phase_copy`] make, with the geometry that reads them.
struct ColInput<'a> {
    g: Geom,
    x: Cow<'a, [f32]>,
    /// The phase length, when `x` is split by phase.
    phases: Option<usize>,
}

impl<'a> ColInput<'a> {
    fn new(g: &Geom, x: &'a [f32]) -> Self {
        let (g, x) = match padded_copy(g, x) {
            Some((gp, xp)) => (gp, Cow::Owned(xp)),
            None => (*g, Cow::Borrowed(x)),
        };
        match phase_copy(&g, &x) {
            Some((xp, wq)) => ColInput {
                g,
                x: Cow::Owned(xp),
                phases: Some(wq),
            },
            None => ColInput { g, x, phases: None },
        }
    }

    /// Group `grp`'s column matrix.
    fn cols(&self, grp: usize) -> Cols<'_> {
        match self.phases {
            Some(wq) => Cols::with_phases(&self.g, &self.x, grp, wq),
            None => Cols::new(&self.g, &self.x, grp),
        }
    }
}

/// The forward by matrix products, with each group's filters packed already when
/// `packed` (by [`forward_packed`]).
fn products_forward(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    packed: Option<&[PackedA]>,
) {
    let input = ColInput::new(g, x);
    let g = &input.g;
    let (og, kg) = (g.og(), g.kg());
    for grp in 0..g.groups {
        let wv = Filters {
            w: group_filters(g, w, grp),
            packed: packed.map(|p| &p[grp]),
        };
        let ep = Epilogue {
            accumulate: false,
            bias: b.map(|b| &b[grp * og..(grp + 1) * og]),
            relu,
        };
        let out = Planes::output_mut(g, y, grp);
        let size = [og, kg, g.n * g.p()];
        if g.is_pointwise() {
            // the images are their own column matrix (and were not copied): whole
            // runs of a plane
            weights_times(size, &wv, &Planes::input(g, x, grp), &out, ep);
        } else {
            weights_times(size, &wv, &input.cols(grp), &out, ep);
        }
    }
}

/// One group's filters, and the same packed when they are at hand.
struct Filters<'a> {
    w: Strided<'a>,
    packed: Option<&'a PackedA>,
}

/// `out = W cols` finished by `ep`, `W` one group's filters (og x kg) and `cols`
/// kg x np: `W` is packed once for all threads (unless it is packed already),
/// except where the product runs transposed (few columns) and each thread packs
/// its own share of it.
fn weights_times(
    [og, kg, np]: [usize; 3],
    w: &Filters,
    cols: &impl PackB,
    out: &Planes,
    ep: Epilogue,
) {
    match w.packed {
        Some(a) => sgemm::gemm(og, np, kg, a, cols, out, ep),
        None if sgemm::transpose_pays(cpu::isa(), og, np) => {
            sgemm::gemm(og, np, kg, &w.w, cols, out, ep)
        }
        None => {
            let a = PackedA::new(cpu::isa(), &w.w, og, kg);
            sgemm::gemm(og, np, kg, &a, cols, out, ep);
        }
    }
}

/// Elements of a column matrix an input-gradient product covers at most (4 MB): the
/// images are taken a few at a time so that `dcol` stays in cache.
const DCOL: usize = 1 << 20;

/// `dx` of a convolution (overwritten): `W^T dY` folded back by col2im.
pub fn backward_data(g: &Geom, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    if g.n == 0 || g.x_len() == 0 {
        return;
    }
    if g.is_fc() {
        return fc::backward_data(g, dy, w, dx);
    }
    if winograd::worth_it(g) {
        return winograd::backward_data(cpu::isa(), g, dy, w, dx);
    }
    let (og, kg) = (g.og(), g.kg());
    let wt = |grp: usize| Strided {
        data: w,
        off: grp * og * kg,
        rs: 1,
        cs: kg,
    };
    if sgemm::transpose_pays(cpu::isa(), kg, g.n * g.p()) {
        return small_backward_data(g, dy, &wt, dx);
    }
    let packed: Vec<PackedA> = (0..g.groups)
        .map(|grp| PackedA::new(cpu::isa(), &wt(grp), kg, og))
        .collect();
    if g.is_pointwise() {
        for (grp, a) in packed.iter().enumerate() {
            let dyv = Planes::output(g, dy, grp);
            let out = Planes::input_mut(g, dx, grp);
            sgemm::gemm(kg, g.n * g.p(), og, a, &dyv, &out, Epilogue::default());
        }
        return;
    }
    dx.fill(0.0);
    let per = (DCOL / (kg * g.p()).max(1)).clamp(1, g.n);
    let mut dcol = vec![0.0f32; kg * per * g.p()];
    let mut n0 = 0;
    while n0 < g.n {
        let nb = per.min(g.n - n0);
        let cols = nb * g.p();
        let dyb = &dy[n0 * g.y_len()..(n0 + nb) * g.y_len()];
        let dxb = &mut dx[n0 * g.x_len()..(n0 + nb) * g.x_len()];
        for (grp, a) in packed.iter().enumerate() {
            let dyv = Planes::output(g, dyb, grp);
            let out = StridedMut::new(&mut dcol, 0, kg, cols, cols, 1);
            sgemm::gemm(kg, cols, og, a, &dyv, &out, Epilogue::default());
            fold(g, &dcol, cols, grp, dxb);
        }
        n0 += nb;
    }
}

/// [`backward_data`] for a batch with few output positions (a deep layer at batch
/// 1): `dcol^T = dY^T W` for the whole batch at once, as the transposed product.
fn small_backward_data<'a>(
    g: &Geom,
    dy: &[f32],
    wt: &impl Fn(usize) -> Strided<'a>,
    dx: &mut [f32],
) {
    let (og, kg) = (g.og(), g.kg());
    let cols = g.n * g.p();
    if g.is_pointwise() {
        for grp in 0..g.groups {
            let dyv = Planes::output(g, dy, grp);
            let out = Planes::input_mut(g, dx, grp);
            sgemm::gemm(kg, cols, og, &wt(grp), &dyv, &out, Epilogue::default());
        }
        return;
    }
    dx.fill(0.0);
    let mut dcol = vec![0.0f32; kg * cols];
    for grp in 0..g.groups {
        let dyv = Planes::output(g, dy, grp);
        let out = StridedMut::new(&mut dcol, 0, kg, cols, cols, 1);
        sgemm::gemm(kg, cols, og, &wt(grp), &dyv, &out, Epilogue::default());
        fold(g, &dcol, cols, grp, dx);
    }
}

/// Adds group `grp`'s column-matrix derivative `dcol` (`cols` columns, the images of
/// `dx` in order) into `dx` by col2im; each channel of each image is folded by one
/// thread.
fn fold(g: &Geom, dcol: &[f32], cols: usize, grp: usize, dx: &mut [f32]) {
    dx.par_chunks_mut(g.h * g.w)
        .enumerate()
        .filter(|(ci, _)| (ci % g.c) / g.cg() == grp)
        .for_each(|(ci, dxc)| {
            let (img, c) = (ci / g.c, ci % g.c - grp * g.cg());
            col2im(g, dcol, cols, img * g.p(), c, dxc);
        });
}

/// `dw` of a convolution: `dY col^T` summed over the batch, written over `dw` or,
/// when `accumulate`, added to it.
pub fn backward_filter(g: &Geom, x: &[f32], dy: &[f32], dw: &mut [f32], accumulate: bool) {
    if g.is_fc() {
        return fc::backward_filter(g, x, dy, dw, accumulate);
    }
    if winograd::worth_it_for_filters(g) {
        return winograd::backward_filter(cpu::isa(), g, x, dy, dw, accumulate);
    }
    let parts = filter_parts(g, rayon::current_num_threads());
    if parts == 1 {
        return filter_products(g, x, dy, dw, accumulate, rayon::current_num_threads());
    }
    // Each part sums its own images' gradient on one thread; the parts are then
    // added in part order (the split depends only on the sizes and thread count).
    let sums: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|p| {
            // never empty, as the batch has at least `parts` images
            let (n0, n1) = (p * g.n / parts, (p + 1) * g.n / parts);
            let gp = Geom { n: n1 - n0, ..*g };
            let mut part = vec![0.0f32; dw.len()];
            let xs = &x[n0 * g.x_len()..n1 * g.x_len()];
            let dys = &dy[n0 * g.y_len()..n1 * g.y_len()];
            filter_products(&gp, xs, dys, &mut part, false, 1);
            part
        })
        .collect();
    for (i, part) in sums.iter().enumerate() {
        for (d, &v) in dw.iter_mut().zip(part) {
            *d = if i == 0 && !accumulate { v } else { *d + v };
        }
    }
}

/// Parts of the batch a filter gradient is split into, one per thread, each summed
/// on one thread: when the product's depth (every position of the batch) is long
/// against the gradient itself, as in LeNet's layers. Splitting such a product's
/// rows or columns instead has every thread pack the whole depth of one operand
/// (LeNet's first layer: 20 x 25 over 57,600 positions; 1.4x slower).
fn filter_parts(g: &Geom, threads: usize) -> usize {
    let depth = g.n * g.p();
    let size = g.c_out * g.kg();
    if threads > 1 && g.n >= threads && depth >= 4 * g.kg() && size <= SMALL_FILTER {
        threads
    } else {
        1
    }
}

/// Largest filter gradient (elements) summed per part by [`filter_parts`]: each
/// part holds a copy, added up afterwards.
const SMALL_FILTER: usize = 1 << 16;

/// `dw` by one product per group, split over `threads`.
fn filter_products(
    g: &Geom,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    accumulate: bool,
    threads: usize,
) {
    let input = ColInput::new(g, x);
    let g = &input.g;
    let (og, kg) = (g.og(), g.kg());
    for grp in 0..g.groups {
        let dyv = Planes::output(g, dy, grp);
        let cols = ColsT(input.cols(grp));
        let out = StridedMut::new(dw, grp * og * kg, og, kg, kg, 1);
        let ep = Epilogue {
            accumulate,
            ..Default::default()
        };
        sgemm::gemm_with(
            cpu::isa(),
            threads,
            og,
            kg,
            g.n * g.p(),
            &dyv,
            &cols,
            &out,
            ep,
        );
    }
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

/// `db[o] = sum over images and positions of dy[n, o, :, :]`, summed in a fixed
/// order, written over `db` or, when `accumulate`, added to it.
pub fn bias_grad(n: usize, c: usize, plane: usize, dy: &[f32], db: &mut [f32], accumulate: bool) {
    db.par_iter_mut().enumerate().for_each(|(o, d)| {
        let s: f32 = (0..n)
            .map(|i| {
                dy[(i * c + o) * plane..(i * c + o + 1) * plane]
                    .iter()
                    .sum::<f32>()
            })
            .sum();
        *d = if accumulate { *d + s } else { s };
    });
}
