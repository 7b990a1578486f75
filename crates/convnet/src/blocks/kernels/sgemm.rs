//! Single-precision matrix products `C = A B` (+ bias, ReLU) built around the
//! micro-kernels of [`super::microkernel`], in the manner of BLIS and GotoBLAS: B is
//! packed `KC` rows by `NC` columns at a time (kept in L2), A one `MR`-row panel at a
//! time (kept in L1) or read from a copy packed beforehand, and the micro-kernel runs
//! over every tile of the block.
//!
//! The operands are not matrices but sources that know how to pack themselves
//! ([`PackA`], [`PackB`]) and a destination that says where each element goes
//! ([`Sink`]): a convolution's column matrix is packed straight from the image (no
//! im2col buffer), its output goes straight into the NCHW tensor, and a Winograd
//! transform writes its operand already packed.
//!
//! Determinism: every element of C is summed by one thread, in depth blocks in order,
//! whatever the split of the work, so results do not depend on the thread count.

use super::cpu::{self, Isa};
use super::im2col::copy_run;
use super::microkernel::{relu, Micro, Out};
use super::transpose;
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// Largest depth of a packed block.
pub const KC: usize = 320;
/// Columns of a packed B block (a multiple of every kernel's `NR`).
const NC: usize = 384;
/// Values in a 64-byte cache line, the unit the micro-kernel fetches ahead.
const LINE: usize = 16;

/// The left operand, `m x k`.
pub trait PackA: Sync {
    /// Packs rows `i0..i0 + rows` (rows <= mr; the panel's other rows are zero) at
    /// depths `k0..k0 + kc` into `dst`, `kc` groups of `mr` values.
    fn pack_a(&self, i0: usize, rows: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]);
    /// The same panel, when it is held packed already `mr` rows wide.
    fn packed_a(&self, _i0: usize, _k0: usize, _kc: usize, _mr: usize) -> Option<&[f32]> {
        None
    }
}

/// The right operand, `k x n`.
pub trait PackB: Sync {
    /// Packs columns `j0..j0 + cols` (cols <= nr; the panel's other columns are zero)
    /// at depths `k0..k0 + kc` into `dst`, `kc` groups of `nr` values.
    fn pack_b(&self, k0: usize, kc: usize, j0: usize, cols: usize, nr: usize, dst: &mut [f32]);
    /// Packs columns `j0..j0 + cols` as `cols.div_ceil(nr)` panels one after the
    /// other in `dst`, as [`PackB::pack_b`] packs each.
    fn pack_b_panels(
        &self,
        k0: usize,
        kc: usize,
        j0: usize,
        cols: usize,
        nr: usize,
        dst: &mut [f32],
    ) {
        for p in 0..cols.div_ceil(nr) {
            let j = j0 + p * nr;
            let d = &mut dst[p * kc * nr..(p + 1) * kc * nr];
            self.pack_b(k0, kc, j, nr.min(j0 + cols - j), nr, d);
        }
    }
    /// The same panel, when it is held packed already `nr` columns wide.
    fn packed_b(&self, _k0: usize, _kc: usize, _j0: usize, _nr: usize) -> Option<&[f32]> {
        None
    }
}

/// Where C's elements live. Different tiles are written from different threads, so
/// a sink hands out raw pointers; each element is written by one thread only.
pub trait Sink: Sync {
    /// The address of element (i, j).
    fn at(&self, i: usize, j: usize) -> *mut f32;
    /// The row stride, when columns `j0..j0 + cols` of every row are contiguous at
    /// [`Sink::at`]`(i, j0)` and rows are that far apart.
    fn row_stride(&self, j0: usize, cols: usize) -> Option<usize>;
    /// How many of columns `j..j + most` lie contiguous from [`Sink::at`]`(i, j)`
    /// in every row (at least 1).
    fn run_len(&self, _j: usize, _most: usize) -> usize {
        1
    }
}

/// How C is finished.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Add to what C holds (else overwrite).
    pub accumulate: bool,
    /// Per-row values added (when not accumulating).
    pub bias: Option<&'a [f32]>,
    pub relu: bool,
}

/// A packed copy of an `m x k` operand, in the micro-kernel's panels.
pub struct PackedA {
    data: Vec<f32>,
    m: usize,
    k: usize,
    mr: usize,
}

impl PackedA {
    /// Packs `src` whole for the kernel of `isa` (in parallel over panels).
    pub fn new(isa: Isa, src: &impl PackA, m: usize, k: usize) -> PackedA {
        Self::with_width(src, m, k, Micro::for_isa(isa).mr)
    }
    /// Packs `src` whole in panels of `mr` rows: the kernel's `nr` makes it the
    /// right operand of the transposed product (see [`gemm`]).
    pub fn with_width(src: &impl PackA, m: usize, k: usize, mr: usize) -> PackedA {
        let panels = m.div_ceil(mr);
        let mut data = vec![0.0; panels * k * mr];
        if k > 0 {
            data.par_chunks_mut(k * mr)
                .enumerate()
                .for_each(|(p, dst)| {
                    let i0 = p * mr;
                    src.pack_a(i0, mr.min(m - i0), 0, k, mr, dst)
                });
        }
        PackedA { data, m, k, mr }
    }
    pub fn rows(&self) -> usize {
        self.m
    }
}

impl PackA for PackedA {
    fn pack_a(&self, i0: usize, _: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
        let panel = self
            .packed_a(i0, k0, kc, mr)
            .expect("a packed operand is read with the panels it has");
        dst[..kc * mr].copy_from_slice(panel);
    }
    fn packed_a(&self, i0: usize, k0: usize, kc: usize, mr: usize) -> Option<&[f32]> {
        if mr != self.mr {
            return None;
        }
        let off = (i0 / self.mr) * self.k * self.mr + k0 * self.mr;
        Some(&self.data[off..off + kc * self.mr])
    }
}

/// A strided matrix as an operand: element (i, j) is `data[off + i*rs + j*cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a> {
    pub data: &'a [f32],
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl PackA for Strided<'_> {
    fn pack_a(&self, i0: usize, rows: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
        let dst = &mut dst[..kc * mr];
        if self.rs == 1 {
            // a panel's rows are contiguous at each depth
            for (kk, d) in dst.chunks_exact_mut(mr).enumerate() {
                let s = self.off + i0 + (k0 + kk) * self.cs;
                copy_short(&mut d[..rows], &self.data[s..s + rows]);
                d[rows..].fill(0.0);
            }
        } else {
            transpose_into(self, i0, rows, k0, kc, mr, dst);
        }
    }
}

/// `dst = src` for a few values: a copy of a panel's width (8 or 6) as a fixed-size
/// move, where `copy_from_slice` of a length unknown at compile time calls memmove.
#[inline]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    match src.len() {
        8 => dst[..8].copy_from_slice(&src[..8]),
        6 => dst[..6].copy_from_slice(&src[..6]),
        _ => dst.copy_from_slice(src),
    }
}

/// Packs rows `i0..i0 + rows` of `m` at depths `k0..k0 + kc` as `kc` groups of
/// `width` values (the other `width - rows` values zero).
fn transpose_into(
    m: &Strided,
    i0: usize,
    rows: usize,
    k0: usize,
    kc: usize,
    width: usize,
    dst: &mut [f32],
) {
    let s = m.off + i0 * m.rs + k0 * m.cs;
    if m.cs == 1 {
        return transpose::rows_to_groups(&m.data[s..], m.rs, rows, kc, width, dst);
    }
    dst.fill(0.0);
    for (kk, g) in dst.chunks_exact_mut(width).enumerate() {
        for (r, v) in g[..rows].iter_mut().enumerate() {
            *v = m.data[s + r * m.rs + kk * m.cs];
        }
    }
}

impl PackB for Strided<'_> {
    fn pack_b(&self, k0: usize, kc: usize, j0: usize, cols: usize, nr: usize, dst: &mut [f32]) {
        let dst = &mut dst[..kc * nr];
        if self.cs == 1 {
            for (kk, d) in dst.chunks_exact_mut(nr).enumerate() {
                let s = self.off + (k0 + kk) * self.rs + j0;
                d[..cols].copy_from_slice(&self.data[s..s + cols]);
                d[cols..].fill(0.0);
            }
        } else {
            // B's columns are the rows of B^T
            let t = Strided {
                rs: self.cs,
                cs: self.rs,
                ..*self
            };
            transpose_into(&t, j0, cols, k0, kc, nr, dst);
        }
    }
}

/// A strided matrix as the destination.
pub struct StridedMut {
    ptr: *mut f32,
    rs: usize,
    cs: usize,
}

// SAFETY: the pointer is only dereferenced for elements of the matrix, and each
// element by one thread (the product's tiles are disjoint).
unsafe impl Sync for StridedMut {}

impl StridedMut {
    /// `rows x cols` at `off` in `data`, with strides `rs` and `cs`.
    ///
    /// Panics when the view reaches outside `data`.
    pub fn new(
        data: &mut [f32],
        off: usize,
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = off + (rows - 1) * rs + (cols - 1) * cs;
            assert!(last < data.len(), "product destination outside its buffer");
        }
        StridedMut {
            // SAFETY: `off` is inside `data` when the view is not empty (checked).
            ptr: unsafe { data.as_mut_ptr().add(off.min(data.len())) },
            rs,
            cs,
        }
    }
}

impl Sink for StridedMut {
    fn at(&self, i: usize, j: usize) -> *mut f32 {
        self.ptr.wrapping_add(i * self.rs + j * self.cs)
    }
    fn row_stride(&self, _: usize, _: usize) -> Option<usize> {
        (self.cs == 1).then_some(self.rs)
    }
    fn run_len(&self, _: usize, most: usize) -> usize {
        if self.cs == 1 {
            most
        } else {
            1
        }
    }
}

thread_local! {
    static BUFS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A 64-byte aligned slice of `len` values inside `v`.
fn aligned(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len + 16 {
        v.resize(len + 16, 0.0);
    }
    let skip = v.as_ptr().align_offset(64).min(15);
    &mut v[skip..skip + len]
}

/// Finishes one element of C from its product `t`, as the micro-kernel finishes a
/// tile: `t + (C or base)`, then ReLU when asked.
///
/// # Safety
/// `at` is a writable element of C that no other thread touches.
#[inline(always)]
unsafe fn finish(at: *mut f32, t: f32, load: bool, base: f32, relu: bool) {
    let v = t + if load { *at } else { base };
    *at = if relu { self::relu(v) } else { v };
}

/// `C = A B` (m x n, depth k) finished by `ep`, on the current rayon pool; computed
/// as `C^T = B^T A^T` where that wastes less of the micro-kernel's tiles (see
/// [`transpose_pays`]) and neither operand is held packed for this orientation.
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &impl PackA,
    b: &impl PackB,
    c: &impl Sink,
    ep: Epilogue,
) {
    let isa = cpu::isa();
    let threads = rayon::current_num_threads();
    let mk = Micro::for_isa(isa);
    // an operand packed already is read in the orientation its panels were made for
    let plain = a.packed_a(0, 0, 0, mk.mr).is_some() || b.packed_b(0, 0, 0, mk.nr).is_some();
    let flipped = a.packed_a(0, 0, 0, mk.nr).is_some() || b.packed_b(0, 0, 0, mk.mr).is_some();
    if flipped || (!plain && transpose_pays(isa, m, n)) {
        gemm_transposed_with(isa, threads, m, n, k, a, b, c, ep)
    } else {
        gemm_with(isa, threads, m, n, k, a, b, c, ep)
    }
}

/// [`gemm`] with a chosen kernel level and split into up to `threads` parts.
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    isa: Isa,
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    a: &impl PackA,
    b: &impl PackB,
    c: &impl Sink,
    ep: Epilogue,
) {
    if m == 0 || n == 0 {
        return;
    }
    let mk = Micro::for_isa(isa);
    let (mp, np) = (m.div_ceil(mk.mr), n.div_ceil(mk.nr));
    let t = threads.max(1);
    // Split the columns where there are enough of them; else the rows (each part
    // then packs all of B, which is small in that case).
    let by_columns = np >= t || np >= mp;
    let parts: Vec<Vec<(Range<usize>, Range<usize>)>> = if by_columns {
        let rows: Vec<usize> = (0..mp).map(|r| mk.mr.min(m - r * mk.mr)).collect();
        let cols: Vec<usize> = (0..np).map(|p| mk.nr.min(n - p * mk.nr)).collect();
        tile_split(&rows, &cols, t)
            .into_iter()
            .map(|blocks| {
                blocks
                    .into_iter()
                    .map(|(rows, p)| (rows, p.start * mk.nr..(p.end * mk.nr).min(n)))
                    .collect()
            })
            .collect()
    } else {
        split(mp, t).into_iter().map(|p| vec![(p, 0..n)]).collect()
    };
    if parts.len() > 1 && by_columns && a.packed_a(0, 0, 0, mk.mr).is_none() && m * k <= SHARED_A {
        // every part would pack all of A for itself: pack it once, together
        let a = PackedA::with_width(a, m, k, mk.mr);
        return run_parts(mk, m, k, &a, b, c, ep, &parts);
    }
    run_parts(mk, m, k, a, b, c, ep, &parts)
}

/// Largest left operand (values) packed once for all the parts of a product split
/// by columns, rather than by each part (the transposed products of ResNet-18's
/// last layers at batch 1: 49 x 4608, a quarter of their time when packed twice).
const SHARED_A: usize = 1 << 20;

/// Runs each part's blocks, the parts in parallel.
#[allow(clippy::too_many_arguments)]
fn run_parts(
    mk: Micro,
    m: usize,
    k: usize,
    a: &impl PackA,
    b: &impl PackB,
    c: &impl Sink,
    ep: Epilogue,
    parts: &[Vec<(Range<usize>, Range<usize>)>],
) {
    let run = |blocks: &Vec<(Range<usize>, Range<usize>)>| {
        for (rows, cols) in blocks {
            block(mk, m, k, a, b, c, ep, rows.clone(), cols.clone())
        }
    };
    if parts.len() == 1 {
        run(&parts[0]);
    } else {
        parts.par_iter().for_each(run);
    }
}

/// The tiles (row panels by column panels, `rows[r]` by `cols[p]` elements) cut
/// into at most `parts` runs of near-equal work, column panel after column panel:
/// each run is a list of blocks (row panels, column panels). Five column panels
/// over two threads are two and a half each, not three and two (ResNet-18's 14x14
/// layers at batch 1); a panel cut between two runs has its B packed by both. An
/// edge tile counts for the elements it computes (the edge kernels skip the rest):
/// ResNet-18's 196 columns are four panels of 48 and one of 4.
fn tile_split(
    rows: &[usize],
    cols: &[usize],
    parts: usize,
) -> Vec<Vec<(Range<usize>, Range<usize>)>> {
    let (mp, np) = (rows.len(), cols.len());
    let tiles = mp * np;
    let parts = parts.min(tiles).max(1);
    let cost = |u: usize| rows[u % mp] * cols[u / mp];
    let total = rows.iter().sum::<usize>() * cols.iter().sum::<usize>();
    // run i ends at the tile nearest to i/parts of the work
    let mut ends = Vec::with_capacity(parts);
    let (mut u, mut done) = (0, 0);
    for i in 1..parts {
        let target = i * total / parts;
        while u < tiles && 2 * done + cost(u) <= 2 * target {
            done += cost(u);
            u += 1;
        }
        ends.push(u);
    }
    ends.push(tiles);
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let mut u = std::mem::replace(&mut start, end);
            let mut blocks = Vec::new();
            while u < end {
                let (p, r) = (u / mp, u % mp);
                if r == 0 && end - u >= mp {
                    let full = (end - u) / mp;
                    blocks.push((0..mp, p..p + full));
                    u += full * mp;
                } else {
                    let stop = (r + end - u).min(mp);
                    blocks.push((r..stop, p..p + 1));
                    u += stop - r;
                }
            }
            blocks
        })
        .filter(|b| !b.is_empty())
        .collect()
}

/// Whether `C = A B` (m x n) is cheaper computed as `C^T = B^T A^T`: the
/// micro-kernel's tiles are `mr x nr` (8 x 48 with AVX-512), so a product with few
/// columns wastes most of each tile. ResNet-18's last layers at batch 1 are 512 x 49:
/// 96 columns computed for 49, where the transpose computes 56 rows for 49.
pub fn transpose_pays(isa: Isa, m: usize, n: usize) -> bool {
    let mk = Micro::for_isa(isa);
    let padded =
        |rows: usize, cols: usize| rows.div_ceil(mk.mr) * mk.mr * cols.div_ceil(mk.nr) * mk.nr;
    // at least a fifth less work, as the transposed product takes a pass of its own
    // to write C
    padded(n, m) * 5 < padded(m, n) * 4
}

/// The panel width to pack an `m x n` product's left operand with, when it is packed
/// once and kept (see [`PackedA::with_width`]): the kernel's `nr` where [`gemm`]
/// runs the product transposed, reading that operand as its right one, else `mr`.
pub fn kept_width(isa: Isa, m: usize, n: usize) -> usize {
    let mk = Micro::for_isa(isa);
    if transpose_pays(isa, m, n) {
        mk.nr
    } else {
        mk.mr
    }
}

/// `C = A B` computed as `C^T = B^T A^T` with a chosen kernel level and split into up
/// to `threads` parts; the bias and ReLU are applied afterwards, as the kernel adds
/// a bias per row of its own product.
#[allow(clippy::too_many_arguments)]
pub fn gemm_transposed_with(
    isa: Isa,
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    a: &impl PackA,
    b: &impl PackB,
    c: &impl Sink,
    ep: Epilogue,
) {
    // C^T goes to a buffer of its own, where the kernel stores whole tiles; C is
    // then written a run at a time (through C^T, each element was addressed on its
    // own: a division per element for a convolution's output)
    let mut ct = vec![0.0f32; n * m];
    let sink = StridedMut::new(&mut ct, 0, n, m, m, 1);
    gemm_with(
        isa,
        threads,
        n,
        m,
        k,
        &AsA(b),
        &AsB(a),
        &sink,
        Epilogue::default(),
    );
    let bias = ep.bias.filter(|_| !ep.accumulate);
    let ct = &ct;
    (0..m).into_par_iter().for_each(|i| {
        let base = bias.map_or(0.0, |b| b[i]);
        let mut j = 0;
        while j < n {
            let len = c.run_len(j, n - j);
            let row = c.at(i, j);
            for jj in 0..len {
                let t = ct[(j + jj) * m + i];
                // SAFETY: (i, j + jj) is inside C, in the run starting at (i, j);
                // row i is this task's alone.
                unsafe { finish(row.wrapping_add(jj), t, ep.accumulate, base, ep.relu) };
            }
            j += len;
        }
    });
}

/// A right operand as the left operand of the transposed product.
struct AsA<'a, B>(&'a B);

impl<B: PackB> PackA for AsA<'_, B> {
    fn pack_a(&self, i0: usize, rows: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
        self.0.pack_b(k0, kc, i0, rows, mr, dst)
    }
    fn packed_a(&self, i0: usize, k0: usize, kc: usize, mr: usize) -> Option<&[f32]> {
        self.0.packed_b(k0, kc, i0, mr)
    }
}

/// A left operand as the right operand of the transposed product.
struct AsB<'a, A>(&'a A);

impl<A: PackA> PackB for AsB<'_, A> {
    fn pack_b(&self, k0: usize, kc: usize, j0: usize, cols: usize, nr: usize, dst: &mut [f32]) {
        self.0.pack_a(j0, cols, k0, kc, nr, dst)
    }
    fn packed_b(&self, k0: usize, kc: usize, j0: usize, nr: usize) -> Option<&[f32]> {
        self.0.packed_a(j0, k0, kc, nr)
    }
}

/// The depth of the packed blocks for a product of depth `k`: blocks of equal
/// depth up to `KC` (576 = 2 x 288 rather than 320 + 256), so that no block is
/// short.
pub fn depth_block(k: usize) -> usize {
    let blocks = k.div_ceil(KC).max(1);
    k.div_ceil(blocks).max(1)
}

/// `0..len` cut into at most `parts` contiguous, non-empty ranges of near-equal size.
fn split(len: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.min(len).max(1);
    (0..parts)
        .map(|p| (p * len / parts)..((p + 1) * len / parts))
        .filter(|r| !r.is_empty())
        .collect()
}

/// The most rows of any kernel's tile.
const MR_MAX: usize = 16;

/// Calls `f(r, j, len, at)` for each row `r < rows` of the tile at (i0, j0) and each
/// run `j..j + len` of its first `cols` columns that lies contiguous in C, `at` the
/// run's address. Finding an element can cost divisions: each run is found once.
///
/// # Safety
/// The tile's rows and columns are inside C, and no other thread touches them.
unsafe fn each_run(
    c: &impl Sink,
    i0: usize,
    rows: usize,
    j0: usize,
    cols: usize,
    mut f: impl FnMut(usize, usize, usize, *mut f32),
) {
    let mut j = 0;
    while j < cols {
        let len = c.run_len(j0 + j, cols - j);
        match c.row_stride(j0 + j, len) {
            Some(ld) => {
                let at = c.at(i0, j0 + j);
                for r in 0..rows {
                    f(r, j, len, at.wrapping_add(r * ld));
                }
            }
            None => {
                for r in 0..rows {
                    f(r, j, len, c.at(i0 + r, j0 + j));
                }
            }
        }
        j += len;
    }
}

/// The product restricted to row panels `rows` and columns `cols`, on this thread.
#[allow(clippy::too_many_arguments)]
fn block(
    mk: Micro,
    m: usize,
    k: usize,
    a: &impl PackA,
    b: &impl PackB,
    c: &impl Sink,
    ep: Epilogue,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    let (mr, nr) = (mk.mr, mk.nr);
    BUFS.with(|bufs| {
        let mut bufs = bufs.borrow_mut();
        let (bv, av) = &mut *bufs;
        let bbuf = aligned(bv, KC * NC);
        let (abuf, tile) = aligned(av, KC * mr + mr * nr).split_at_mut(KC * mr);
        let mut jc = cols.start;
        while jc < cols.end {
            let nb = NC.min(cols.end - jc);
            let panels = nb.div_ceil(nr);
            let kc = depth_block(k);
            let mut pc = 0;
            loop {
                let kb = kc.min(k - pc);
                let (first, last) = (pc == 0, pc + kb == k);
                // B panels held packed are read from memory as the first row
                // panel's tiles run; each tile fetches a share of the next depth
                // block's ahead, so that block waits in L2
                let ahead: Vec<&[f32]> = if pc + kb < k {
                    let kb2 = kc.min(k - pc - kb);
                    (0..panels)
                        .map_while(|p| b.packed_b(pc + kb, kb2, jc + p * nr, nr))
                        .collect()
                } else {
                    Vec::new()
                };
                // B is held packed whole or not at all
                let bpanels: Vec<&[f32]> = if b.packed_b(pc, kb, jc, nr).is_some() {
                    (0..panels)
                        .map(|p| b.packed_b(pc, kb, jc + p * nr, nr).expect("held whole"))
                        .collect()
                } else {
                    let dst = &mut bbuf[..panels * kb * nr];
                    b.pack_b_panels(pc, kb, jc, nb, nr, dst);
                    let dst = &*dst;
                    (0..panels)
                        .map(|p| &dst[p * kb * nr..(p + 1) * kb * nr])
                        .collect()
                };
                for ip in rows.clone() {
                    let i0 = ip * mr;
                    let ri = mr.min(m - i0);
                    let pa: &[f32] = match a.packed_a(i0, pc, kb, mr) {
                        Some(pa) => pa,
                        None => {
                            a.pack_a(i0, ri, pc, kb, mr, abuf);
                            &abuf[..kb * mr]
                        }
                    };
                    let bias = ep.bias.filter(|_| first && !ep.accumulate);
                    let load = !first || ep.accumulate;
                    let relu = last && ep.relu;
                    for (p, pb) in bpanels.iter().enumerate() {
                        let j0 = jc + p * nr;
                        let cj = nr.min(jc + nb - j0);
                        let (pf, pf_lines) = match ahead.get(p) {
                            Some(next) => {
                                let lines = next.len().div_ceil(LINE);
                                let (part, parts) = (ip - rows.start, rows.len());
                                let from = part * lines / parts;
                                let to = (part + 1) * lines / parts;
                                (next.as_ptr().wrapping_add(from * LINE), to - from)
                            }
                            None => (std::ptr::null(), 0),
                        };
                        let direct = if ri == mr && cj == nr {
                            c.row_stride(j0, nr)
                        } else {
                            None
                        };
                        // SAFETY: the panels hold kb*mr and kb*nr values; the tile
                        // is inside C (full tiles only go direct) or is `tile`, whose
                        // rows and columns in C (ri x cj) are this thread's; `tb`
                        // holds a bias for every row a kernel reads.
                        unsafe {
                            match direct {
                                Some(ldc) => (mk.run)(
                                    kb,
                                    pa.as_ptr(),
                                    pb.as_ptr(),
                                    &Out {
                                        pf,
                                        pf_lines,
                                        ..Out::new(
                                            c.at(i0, j0),
                                            ldc,
                                            load,
                                            bias.map_or(std::ptr::null(), |b| b[i0..].as_ptr()),
                                            relu,
                                        )
                                    },
                                ),
                                None => {
                                    // a tile at C's edge, or one straddling two
                                    // images' planes: computed in `tile`, with the
                                    // part of C it covers copied in (when added
                                    // to) and out a run at a time
                                    if load {
                                        each_run(c, i0, ri, j0, cj, |r, j, len, at| {
                                            let run = std::slice::from_raw_parts(at, len);
                                            copy_run(&mut tile[r * nr + j..][..len], run)
                                        });
                                    }
                                    let mut tb = [0.0f32; MR_MAX];
                                    if let Some(b) = bias {
                                        tb[..ri].copy_from_slice(&b[i0..i0 + ri]);
                                    }
                                    (mk.edge)(ri, cj)(
                                        kb,
                                        pa.as_ptr(),
                                        pb.as_ptr(),
                                        &Out {
                                            pf,
                                            pf_lines,
                                            ..Out::new(
                                                tile.as_mut_ptr(),
                                                nr,
                                                load,
                                                if bias.is_some() {
                                                    tb.as_ptr()
                                                } else {
                                                    std::ptr::null()
                                                },
                                                relu,
                                            )
                                        },
                                    );
                                    each_run(c, i0, ri, j0, cj, |r, j, len, at| {
                                        let run = std::slice::from_raw_parts_mut(at, len);
                                        copy_run(run, &tile[r * nr + j..][..len])
                                    });
                                }
                            }
                        }
                    }
                }
                pc += kb;
                if pc >= k {
                    break;
                }
            }
            jc += nb;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64, len: usize) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn products_match_a_naive_loop_at_every_level_and_split() {
        for isa in Isa::available() {
            for &(m, n, k) in &[
                (1, 1, 1),
                (5, 7, 3),
                (8, 48, 256),
                (13, 100, 300),
                (33, 50, 0),
                (64, 97, 513),
                (3, 500, 20),
            ] {
                let a = lcg(1, m * k);
                let b = lcg(2, k * n);
                let bias = lcg(3, m);
                let mut want = vec![0.0f64; m * n];
                for i in 0..m {
                    for j in 0..n {
                        let s: f64 = (0..k)
                            .map(|l| a[i * k + l] as f64 * b[l * n + j] as f64)
                            .sum();
                        want[i * n + j] = (s + bias[i] as f64).max(0.0);
                    }
                }
                // each operand as it is and transposed in memory: every way of packing
                let at: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
                let bt: Vec<f32> = (0..k * n).map(|x| b[(x % k) * n + x / k]).collect();
                let a_layouts = [
                    Strided {
                        data: &at,
                        off: 0,
                        rs: 1,
                        cs: m,
                    },
                    Strided {
                        data: &a,
                        off: 0,
                        rs: k,
                        cs: 1,
                    },
                ];
                let b_layouts = [
                    Strided {
                        data: &b,
                        off: 0,
                        rs: n,
                        cs: 1,
                    },
                    Strided {
                        data: &bt,
                        off: 0,
                        rs: 1,
                        cs: k,
                    },
                ];
                let av = a_layouts[0];
                let bv = b_layouts[0];
                let mut first: Option<Vec<f32>> = None;
                for (threads, layout) in [(1, 0), (2, 0), (3, 0), (2, 1), (2, 2), (2, 3)] {
                    let av = a_layouts[layout % 2];
                    let bv = b_layouts[layout / 2];
                    for packed in [false, true] {
                        let mut c = vec![f32::NAN; m * n];
                        let ep = Epilogue {
                            accumulate: false,
                            bias: Some(&bias),
                            relu: true,
                        };
                        let sink = StridedMut::new(&mut c, 0, m, n, n, 1);
                        if packed {
                            let pa = PackedA::new(isa, &av, m, k);
                            gemm_with(isa, threads, m, n, k, &pa, &bv, &sink, ep);
                        } else {
                            gemm_with(isa, threads, m, n, k, &av, &bv, &sink, ep);
                        }
                        for (x, (&g, &w)) in c.iter().zip(&want).enumerate() {
                            assert!(
                                (g as f64 - w).abs()
                                    <= 1e-5 * (1.0 + k as f64).sqrt() * (1.0 + w.abs()),
                                "{isa:?} {m}x{n}x{k} threads {threads}: element {x}: {g} vs {w}"
                            );
                        }
                        // the same bits whatever the split
                        match &first {
                            None => first = Some(c),
                            Some(f) => assert_eq!(
                                f.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                                c.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                                "{isa:?} {m}x{n}x{k} threads {threads}"
                            ),
                        }
                    }
                }
                // as the transposed product, in every layout; the same bits for any
                // thread count
                let mut seen: Option<Vec<u32>> = None;
                for (threads, layout) in [(1, 0), (3, 0), (2, 1), (2, 2), (2, 3)] {
                    let mut c = vec![f32::NAN; m * n];
                    let ep = Epilogue {
                        accumulate: false,
                        bias: Some(&bias),
                        relu: true,
                    };
                    let sink = StridedMut::new(&mut c, 0, m, n, n, 1);
                    let (av, bv) = (&a_layouts[layout % 2], &b_layouts[layout / 2]);
                    gemm_transposed_with(isa, threads, m, n, k, av, bv, &sink, ep);
                    for (x, (&g, &w)) in c.iter().zip(&want).enumerate() {
                        assert!(
                            (g as f64 - w).abs()
                                <= 1e-5 * (1.0 + k as f64).sqrt() * (1.0 + w.abs()),
                            "{isa:?} transposed {m}x{n}x{k}: element {x}: {g} vs {w}"
                        );
                    }
                    let bits: Vec<u32> = c.iter().map(|v| v.to_bits()).collect();
                    match &seen {
                        None => seen = Some(bits),
                        Some(f) => assert_eq!(f, &bits, "{isa:?} transposed {m}x{n}x{k}"),
                    }
                }
                // accumulate: C += A B on top of the result, either way round
                for transposed in [false, true] {
                    let mut c = vec![1.0f32; m * n];
                    let sink = StridedMut::new(&mut c, 0, m, n, n, 1);
                    let ep = Epilogue {
                        accumulate: true,
                        ..Default::default()
                    };
                    if transposed {
                        gemm_transposed_with(isa, 2, m, n, k, &av, &bv, &sink, ep);
                    } else {
                        gemm_with(isa, 2, m, n, k, &av, &bv, &sink, ep);
                    }
                    for i in 0..m {
                        for j in 0..n {
                            let w = 1.0
                                + (0..k)
                                    .map(|l| a[i * k + l] as f64 * b[l * n + j] as f64)
                                    .sum::<f64>();
                            let g = c[i * n + j] as f64;
                            assert!(
                                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                                "{isa:?} accumulate, transposed {transposed}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tiles_are_split_evenly_and_each_once() {
        for (mp, np, parts) in [
            (32, 5, 2),
            (7, 11, 2),
            (3, 2, 3),
            (1, 1, 4),
            (64, 4, 2),
            (5, 3, 7),
        ] {
            let runs = tile_split(&vec![8; mp], &vec![48; np], parts);
            let mut seen = vec![0; mp * np];
            let sizes: Vec<usize> = runs
                .iter()
                .map(|blocks| {
                    blocks
                        .iter()
                        .map(|(rows, panels)| {
                            for p in panels.clone() {
                                for r in rows.clone() {
                                    seen[p * mp + r] += 1;
                                }
                            }
                            rows.len() * panels.len()
                        })
                        .sum()
                })
                .collect();
            assert!(seen.iter().all(|&s| s == 1), "{mp}x{np}/{parts}: {seen:?}");
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{mp}x{np}/{parts}: {sizes:?}");
        }
    }

    #[test]
    fn edge_tiles_count_for_the_work_they_do() {
        // ResNet-18's 14x14 layers at batch 1: 256 x 196, a last panel of 4 columns
        let (rows, cols) = (vec![8; 32], vec![48, 48, 48, 48, 4]);
        let runs = tile_split(&rows, &cols, 2);
        let work: Vec<usize> = runs
            .iter()
            .map(|blocks| {
                blocks
                    .iter()
                    .map(|(r, p)| {
                        r.clone().map(|i| rows[i]).sum::<usize>()
                            * p.clone().map(|j| cols[j]).sum::<usize>()
                    })
                    .sum()
            })
            .collect();
        assert_eq!(work.iter().sum::<usize>(), 256 * 196);
        // within one tile of an even split; counting tiles would give 80 and 80
        // tiles, 30720 and 19456 elements
        let tile = 8 * 48;
        assert!(
            work.iter().all(|&w| w.abs_diff(256 * 196 / 2) <= tile),
            "{work:?}"
        );
    }

    #[test]
    fn relu_keeps_nan() {
        let isa = *Isa::available().last().unwrap();
        let (m, n, k) = (8, 48, 2);
        let mut a = vec![1.0f32; m * k];
        a[0] = f32::NAN;
        let b = vec![-1.0f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let av = Strided {
            data: &a,
            off: 0,
            rs: k,
            cs: 1,
        };
        let bv = Strided {
            data: &b,
            off: 0,
            rs: n,
            cs: 1,
        };
        let sink = StridedMut::new(&mut c, 0, m, n, n, 1);
        let ep = Epilogue {
            relu: true,
            ..Default::default()
        };
        gemm_with(isa, 1, m, n, k, &av, &bv, &sink, ep);
        assert!(c[..n].iter().all(|v| v.is_nan()));
        assert!(c[n..].iter().all(|&v| v == 0.0));
    }
}
