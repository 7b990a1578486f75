//! Winograd's minimal filtering F(4x4, 3x3) for 3x3 convolutions at stride 1
//! (Lavin and Gray, 2016): each 4x4 block of outputs comes from a 6x6 input tile as
//! `Y = A^T [(G g G^T) . (B^T d B)] A`, 36 products per input channel instead of
//! 144. Summed over input channels, the 36 element-wise products become 36 matrix
//! products (one per position xi of the 6x6 transform domain):
//!
//! `M[xi] (C_out x tiles) = U[xi] (C_out x C_in) * V[xi] (C_in x tiles)`
//!
//! run by [`super::sgemm`] with both operands written already packed by the
//! transforms. The tiles of the batch are cut into blocks of a few dozen; each
//! block is transformed, multiplied and transformed back by one thread (the blocks
//! are shared out over the threads), so the transformed data stay in cache and the
//! results do not depend on the thread count.
//!
//! The input gradient is the same computation (a 3x3 convolution of `dy` with the
//! filters flipped and transposed, padding `2 - pad`), and the filter gradient is
//! its adjoint: `dU[xi] = (A dY A^T)[xi] * V[xi]^T` summed over the tiles of the
//! batch, then `dW = G^T dU G`.
//!
//! Accuracy: the interpolation points are 0, 1, -1, 2, -2 and infinity. With
//! ImageNet-size layers the results differ from an f64 reference by a few 1e-6 of
//! the output's magnitude (measured in `tests/winograd.rs`), against about 1e-7 for
//! direct summation.

use super::conv_gemm::Geom;
use super::cpu::Isa;
use super::microkernel::{relu, Micro};
use super::sgemm::{self, Epilogue, PackA, PackB, Strided, StridedMut};
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// Output tile side, input tile side, transform-domain positions.
const M: usize = 4;
const A: usize = 6;
const XI: usize = A * A;
/// Tiles handled together by the vectorised transforms.
const L: usize = 16;

/// Whether the Winograd kernels compute this convolution: 3x3, stride 1, no
/// dilation, padding at most 2 on each side (so the input gradient is a 3x3
/// convolution with padding `2 - pad`).
pub fn applies(g: &Geom) -> bool {
    let p = g.pad;
    g.kh == 3
        && g.kw == 3
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && [p.top, p.bottom, p.left, p.right].iter().all(|&v| v <= 2)
}

/// Whether it is worth it: enough tiles to make up for transforming the filters
/// (4.5 tiles' worth of products per filter), and channels enough to keep the
/// products busy.
pub fn worth_it(g: &Geom) -> bool {
    worth_it_from(g, 64)
}

/// [`worth_it`] for a forward whose transformed filters are kept from call to call
/// (see `conv_gemm::FilterCache`): no transform to make up for, but the kept
/// filters are four times the size of the plain ones and are read from memory at
/// every forward, so the tiles must still be enough to use each of them a few
/// dozen times. ResNet-18 at batch 1: its 28x28 layers (49 tiles) are 1.5-2 ms
/// faster in all by Winograd, its 14x14 ones (16 tiles) 1.2 ms slower each.
pub fn worth_it_kept(g: &Geom) -> bool {
    worth_it_from(g, 32)
}

/// Winograd applies, with at least `least` tiles, and channels enough to keep the
/// products busy.
fn worth_it_from(g: &Geom, least: usize) -> bool {
    applies(g) && tiles(g) >= least && g.cg() >= 8 && g.og() >= 8
}

/// [`worth_it`] for the filter gradient, whose Winograd form sums 36 products of
/// `C_out x C_in` over the tiles and transforms them back: with few tiles that
/// output (4 times the filters) is most of the work. Backward of one layer, 2
/// threads, Winograd against direct filter gradient: 512 channels of 7x7 at batch
/// 16 (64 tiles) 51-63 against 37-41 ms; 512 of 14x14 at batch 8 (128 tiles) 75-76
/// against 65-68; 256 of 14x14 at batch 8 (128 tiles) even; 512 of 14x14 at batch
/// 16 (256 tiles) 114-115 against 128-141; 256 of 14x14 at batch 16 (256 tiles)
/// 26 against 33.
pub fn worth_it_for_filters(g: &Geom) -> bool {
    worth_it_from(g, 256)
}

/// The 4x4 output tiles of a convolution's batch.
fn tiles(g: &Geom) -> usize {
    g.n * g.ho.div_ceil(M) * g.wo.div_ceil(M)
}

/// The sizes of one Winograd convolution: `n` images of `cin` channels of `h x w`
/// into `cout` channels of `ho x wo`, padded `pt` on top and `pl` on the left
/// (bottom and right padding follow from the output size).
#[derive(Clone, Copy, Debug)]
struct Wg {
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    ho: usize,
    wo: usize,
    pt: usize,
    pl: usize,
    /// Channels of the whole tensors (the group's channels start at `cin0`,
    /// `cout0`).
    cin_all: usize,
    cout_all: usize,
    cin0: usize,
    cout0: usize,
}

impl Wg {
    fn th(&self) -> usize {
        self.ho.div_ceil(M)
    }
    fn tw(&self) -> usize {
        self.wo.div_ceil(M)
    }
    fn tiles(&self) -> usize {
        self.n * self.th() * self.tw()
    }
    /// Image, tile row and tile column of tile `t`.
    fn tile(&self, t: usize) -> (usize, usize, usize) {
        let per = self.th() * self.tw();
        (t / per, (t % per) / self.tw(), t % self.tw())
    }
    /// Group `grp` of the forward convolution.
    fn forward(g: &Geom, grp: usize) -> Wg {
        Wg {
            n: g.n,
            cin: g.cg(),
            h: g.h,
            w: g.w,
            cout: g.og(),
            ho: g.ho,
            wo: g.wo,
            pt: g.pad.top,
            pl: g.pad.left,
            cin_all: g.c,
            cout_all: g.c_out,
            cin0: grp * g.cg(),
            cout0: grp * g.og(),
        }
    }
    /// Group `grp` of the input gradient, as a convolution of `dy`.
    fn backward_data(g: &Geom, grp: usize) -> Wg {
        Wg {
            n: g.n,
            cin: g.og(),
            h: g.ho,
            w: g.wo,
            cout: g.cg(),
            ho: g.h,
            wo: g.w,
            pt: 2 - g.pad.top,
            pl: 2 - g.pad.left,
            cin_all: g.c_out,
            cout_all: g.c,
            cin0: grp * g.og(),
            cout0: grp * g.cg(),
        }
    }
}

/// Tiles per block: a multiple of the kernel's `NR` such that the block's
/// transformed input and products (36 x tiles x (C_in + C_out) values) stay near
/// 4 MB.
fn block_tiles(wg: &Wg, nr: usize) -> usize {
    let per_tile = XI * (wg.cin + wg.cout) * 4;
    let fit = (4 << 20) / per_tile.max(1);
    let unit = nr.max(L);
    (fit / unit).clamp(1, 8) * unit
}

/// [`block_tiles`] for a forward or input gradient, where the blocks only share
/// out the tiles (each output's sum runs over the channels, whatever the block).
/// Where there are more full blocks than threads, blocks of whole panels, evened
/// out; else one block per thread, cut in groups of `L` tiles (a block's last
/// panel then is partly filled, and the products' edge kernels compute only its
/// tiles). ResNet-18's 7x7 layers at batch 16 have 64 tiles: blocks of 48 computed
/// 96 tiles' products, two of 32 compute 64; its 56x56 layers at batch 1 have 196:
/// blocks of 144 and 52 computed 240, 112 and 84 compute 208.
fn balanced_block_tiles(wg: &Wg, nr: usize, threads: usize) -> usize {
    let unit = nr.max(L);
    let units = wg.tiles().div_ceil(unit);
    let blocks = units.div_ceil(block_tiles(wg, nr) / unit);
    if blocks > threads {
        return units.div_ceil(blocks) * unit;
    }
    let groups = wg.tiles().div_ceil(L);
    groups.div_ceil(threads.clamp(1, groups.max(1))) * L
}

// ---- the transforms, on L tiles at once (each array element is a vector of L) ----

type Lanes = [f32; L];

/// `B^T d` along one axis: six values from six.
#[inline(always)]
fn bt(d: [&Lanes; 6], out: [&mut Lanes; 6]) {
    let [d0, d1, d2, d3, d4, d5] = d;
    let [o0, o1, o2, o3, o4, o5] = out;
    for l in 0..L {
        o0[l] = 4.0 * d0[l] - 5.0 * d2[l] + d4[l];
        o1[l] = -4.0 * (d1[l] + d2[l]) + d3[l] + d4[l];
        o2[l] = 4.0 * (d1[l] - d2[l]) - d3[l] + d4[l];
        o3[l] = 2.0 * (d3[l] - d1[l]) - d2[l] + d4[l];
        o4[l] = 2.0 * (d1[l] - d3[l]) - d2[l] + d4[l];
        o5[l] = 4.0 * d1[l] - 5.0 * d3[l] + d5[l];
    }
}

/// `A^T m` along one axis: four values from six.
#[inline(always)]
fn at(m: [&Lanes; 6], out: [&mut Lanes; 4]) {
    let [m0, m1, m2, m3, m4, m5] = m;
    let [o0, o1, o2, o3] = out;
    for l in 0..L {
        let (s12, d12) = (m1[l] + m2[l], m1[l] - m2[l]);
        let (s34, d34) = (m3[l] + m4[l], m3[l] - m4[l]);
        o0[l] = m0[l] + s12 + s34;
        o1[l] = d12 + 2.0 * d34;
        o2[l] = s12 + 4.0 * s34;
        o3[l] = d12 + 8.0 * d34 + m5[l];
    }
}

/// `A o` along one axis (the adjoint of [`at`]): six values from four.
#[inline(always)]
fn a(o: [&Lanes; 4], out: [&mut Lanes; 6]) {
    let [o0, o1, o2, o3] = o;
    let [m0, m1, m2, m3, m4, m5] = out;
    for l in 0..L {
        let (s02, s13) = (o0[l] + o2[l], o1[l] + o3[l]);
        let (q02, q13) = (o0[l] + 4.0 * o2[l], 2.0 * o1[l] + 8.0 * o3[l]);
        m0[l] = o0[l];
        m1[l] = s02 + s13;
        m2[l] = s02 - s13;
        m3[l] = q02 + q13;
        m4[l] = q02 - q13;
        m5[l] = o3[l];
    }
}

/// `G g` on lanes: six vectors from three.
#[inline(always)]
fn gk_lanes(g: &[Lanes; 3], out: &mut [Lanes; 6]) {
    let (s, d) = (1.0 / 6.0, 1.0 / 24.0);
    for l in 0..L {
        let (g0, g1, g2) = (g[0][l], g[1][l], g[2][l]);
        let (a, b) = (g0 + g2, g0 * d + g2 * (4.0 * d));
        out[0][l] = 0.25 * g0;
        out[1][l] = -(a + g1) * s;
        out[2][l] = -(a - g1) * s;
        out[3][l] = b + g1 * (2.0 * d);
        out[4][l] = b - g1 * (2.0 * d);
        out[5][l] = g2;
    }
}

/// `G^T u` on lanes (the adjoint of [`gk_lanes`]): three vectors from six.
#[inline(always)]
fn gt_lanes(u: &[Lanes; 6], out: &mut [Lanes; 3]) {
    let (s, d) = (1.0 / 6.0, 1.0 / 24.0);
    for l in 0..L {
        let (s12, d21) = (u[1][l] + u[2][l], u[2][l] - u[1][l]);
        let (s34, d34) = (u[3][l] + u[4][l], u[3][l] - u[4][l]);
        out[0][l] = 0.25 * u[0][l] - s12 * s + s34 * d;
        out[1][l] = d21 * s + d34 * (2.0 * d);
        out[2][l] = (s34 - s12) * s + u[5][l];
    }
}

/// `G g`: six values from a 3-tap kernel.
#[cfg(test)]
fn gk(g: [f64; 3]) -> [f64; 6] {
    [
        g[0] / 4.0,
        -(g[0] + g[1] + g[2]) / 6.0,
        -(g[0] - g[1] + g[2]) / 6.0,
        g[0] / 24.0 + g[1] / 12.0 + g[2] / 6.0,
        g[0] / 24.0 - g[1] / 12.0 + g[2] / 6.0,
        g[2],
    ]
}

/// `G^T u` (the adjoint of [`gk`]): three values from six.
#[cfg(test)]
fn gt(u: [f64; 6]) -> [f64; 3] {
    [
        u[0] / 4.0 - (u[1] + u[2]) / 6.0 + (u[3] + u[4]) / 24.0,
        (u[2] - u[1]) / 6.0 + (u[3] - u[4]) / 12.0,
        (u[3] + u[4] - u[1] - u[2]) / 6.0 + u[5],
    ]
}

/// Applies a one-axis transform of `I` to `O` values to both axes of the tile
/// `d` (`I x I` vectors, row-major) into `out` (`O x O`).
#[inline(always)]
fn two_axes<const I: usize, const O: usize>(
    d: &[Lanes],
    tmp: &mut [Lanes],
    out: &mut [Lanes],
    f: impl Fn(&[Lanes; I], &mut [Lanes; O]),
) {
    // columns: tmp (O x I) = T d
    for j in 0..I {
        let col: [Lanes; I] = std::array::from_fn(|r| d[r * I + j]);
        let mut o = [[0.0; L]; O];
        f(&col, &mut o);
        for (r, v) in o.iter().enumerate() {
            tmp[r * I + j] = *v;
        }
    }
    // rows: out (O x O) = tmp T^T
    for r in 0..O {
        let row: &[Lanes; I] = tmp[r * I..r * I + I].try_into().expect("row");
        let mut o = [[0.0; L]; O];
        f(row, &mut o);
        out[r * O..r * O + O].copy_from_slice(&o);
    }
}

#[inline(always)]
fn bt6(d: &[Lanes; 6], o: &mut [Lanes; 6]) {
    let [o0, o1, o2, o3, o4, o5] = o;
    bt(
        [&d[0], &d[1], &d[2], &d[3], &d[4], &d[5]],
        [o0, o1, o2, o3, o4, o5],
    );
}

#[inline(always)]
fn at6(m: &[Lanes; 6], o: &mut [Lanes; 4]) {
    let [o0, o1, o2, o3] = o;
    at([&m[0], &m[1], &m[2], &m[3], &m[4], &m[5]], [o0, o1, o2, o3]);
}

#[inline(always)]
fn a4(v: &[Lanes; 4], m: &mut [Lanes; 6]) {
    let [m0, m1, m2, m3, m4, m5] = m;
    a([&v[0], &v[1], &v[2], &v[3]], [m0, m1, m2, m3, m4, m5]);
}

// ---- filters ----

/// The transformed filters of one group, packed for the products: per position
/// xi, the `rows x depth` matrix `U[xi]` in the micro-kernel's row panels (laid out
/// per panel, xi, depth, row within the panel).
pub(crate) struct Filters {
    data: Vec<f32>,
    depth: usize,
    mr: usize,
}

impl Filters {
    /// The transforms of `kernels`' `rows x depth` kernels. Every value is written
    /// by the transform (the rows past the last panel's end as zeros), so the 38 MB
    /// of ResNet-18's last layers are not zeroed first.
    fn new(isa: Isa, rows: usize, depth: usize, kernels: Kernels) -> Self {
        let mr = Micro::for_isa(isa).mr;
        let per_panel = XI * depth * mr;
        let len = rows.div_ceil(mr) * per_panel;
        let mut data = Vec::with_capacity(len);
        data.spare_capacity_mut()[..len]
            .par_chunks_mut(per_panel.max(1))
            .enumerate()
            .for_each(|(p, dst)| {
                let rows = p * mr..(p * mr + mr).min(rows);
                filter_panel_dispatch(isa, rows, depth, mr, &kernels, dst)
            });
        // SAFETY: `filter_panel` wrote each of the `len` values of every panel.
        unsafe { data.set_len(len) };
        Filters { data, depth, mr }
    }
    fn at(&self, xi: usize) -> FiltersAt<'_> {
        FiltersAt { f: self, xi }
    }
}

/// Where the 3x3 kernels to transform lie: that of row `r` and depth `d` is the 9
/// values at `w[(base + r * rs + d * ds) * 9..]`, turned by 180 degrees when `flip`
/// (the input gradient convolves with the filters turned).
#[derive(Clone, Copy)]
struct Kernels<'a> {
    w: &'a [f32],
    base: usize,
    rs: usize,
    ds: usize,
    flip: bool,
}

impl Kernels<'_> {
    #[inline(always)]
    fn get(&self, r: usize, d: usize) -> [f32; 9] {
        let at = (self.base + r * self.rs + d * self.ds) * 9;
        let k: &[f32; 9] = self.w[at..at + 9].try_into().expect("3x3");
        if self.flip {
            std::array::from_fn(|i| k[8 - i])
        } else {
            *k
        }
    }
}

/// `G g G^T` of the kernels of rows `rows` (one panel) into the panel `dst`, 16
/// depths of all its rows at a time: each position's 16 depths then fill a
/// contiguous run of the panel (16 x MR values), written whole.
#[inline(always)]
fn filter_panel(
    rows: std::ops::Range<usize>,
    depth: usize,
    mr: usize,
    kernels: &Kernels,
    dst: &mut [std::mem::MaybeUninit<f32>],
) {
    let mut k = [[0.0; L]; 9];
    let mut tmp = [[0.0; L]; 18];
    let mut u = vec![[[0.0f32; L]; XI]; mr];
    for d0 in (0..depth).step_by(L) {
        let lanes = L.min(depth - d0);
        for (r, ur) in rows.clone().zip(u.iter_mut()) {
            for l in 0..L {
                let g = if l < lanes {
                    kernels.get(r, d0 + l)
                } else {
                    [0.0; 9]
                };
                for (row, &v) in k.iter_mut().zip(&g) {
                    row[l] = v;
                }
            }
            two_axes::<3, 6>(&k, &mut tmp, ur, gk_lanes);
        }
        // (the rows past `rows` stay zero)
        for xi in 0..XI {
            let run = &mut dst[(xi * depth + d0) * mr..(xi * depth + d0 + lanes) * mr];
            for (l, out) in run.chunks_exact_mut(mr).enumerate() {
                for (o, ur) in out.iter_mut().zip(&u) {
                    o.write(ur[xi][l]);
                }
            }
        }
    }
}

/// `G^T dU G` of the pairs `i0..i0 + dw.len() / 9` of `du` (laid out per xi, pair
/// of `pairs`) into their 3x3 kernels `dw` (or added to them when `accumulate`).
#[inline(always)]
fn filter_grad(du: &[f32], pairs: usize, i0: usize, accumulate: bool, dw: &mut [f32]) {
    let mut u = vec![[0.0; L]; XI];
    let mut tmp = vec![[0.0; L]; 18];
    let mut k = vec![[0.0; L]; 9];
    let n = dw.len() / 9;
    for s in (0..n).step_by(L) {
        let lanes = L.min(n - s);
        for (xi, v) in u.iter_mut().enumerate() {
            v[..lanes].copy_from_slice(&du[xi * pairs + i0 + s..][..lanes]);
        }
        two_axes::<6, 3>(&u, &mut tmp, &mut k, gt_lanes);
        for l in 0..lanes {
            for (i, v) in k.iter().enumerate() {
                let d = &mut dw[(s + l) * 9 + i];
                *d = if accumulate { *d + v[l] } else { v[l] };
            }
        }
    }
}

struct FiltersAt<'a> {
    f: &'a Filters,
    xi: usize,
}

impl PackA for FiltersAt<'_> {
    fn pack_a(&self, i0: usize, _: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
        dst[..kc * mr].copy_from_slice(self.packed_a(i0, k0, kc, mr).expect("packed"));
    }
    fn packed_a(&self, i0: usize, k0: usize, kc: usize, mr: usize) -> Option<&[f32]> {
        let f = self.f;
        if mr != f.mr {
            return None;
        }
        let off = ((i0 / f.mr) * XI + self.xi) * f.depth * f.mr + k0 * f.mr;
        Some(&f.data[off..off + kc * f.mr])
    }
}

/// A block's transformed input as the products' right operands: per xi, panels of
/// `nr` tiles, each `cin` rows deep.
struct VPanels<'a> {
    v: &'a [f32],
    panels: usize,
    cin: usize,
    nr: usize,
    xi: usize,
}

impl PackB for VPanels<'_> {
    fn pack_b(&self, k0: usize, kc: usize, j0: usize, _: usize, nr: usize, dst: &mut [f32]) {
        dst[..kc * nr].copy_from_slice(self.packed_b(k0, kc, j0, nr).expect("packed"));
    }
    fn packed_b(&self, k0: usize, kc: usize, j0: usize, nr: usize) -> Option<&[f32]> {
        if nr != self.nr {
            return None;
        }
        let off = ((self.xi * self.panels + j0 / self.nr) * self.cin + k0) * self.nr;
        Some(&self.v[off..off + kc * self.nr])
    }
}

// ---- input and output tiles ----

/// A run of lanes whose tiles are adjacent in one tile row: first lane, image,
/// tile row, first tile column, length.
type Run = (usize, usize, usize, usize, usize);

/// The runs of the tiles `t0..t0 + L` (lanes past the last tile belong to none);
/// returns how many there are.
#[inline(always)]
fn runs(wg: &Wg, t0: usize, out: &mut [Run; L]) -> usize {
    let (mut n, mut l) = (0, 0);
    while l < L && t0 + l < wg.tiles() {
        let (img, ty, tx) = wg.tile(t0 + l);
        let len = (wg.tw() - tx).min(L - l).min(wg.tiles() - t0 - l);
        out[n] = (l, img, ty, tx, len);
        n += 1;
        l += len;
    }
    n
}

/// `dst[k] = row[start + k]` where that lies in `row`, else 0.
#[inline(always)]
fn copy_clipped(dst: &mut [f32], row: &[f32], start: isize) {
    let len = dst.len() as isize;
    let a = (-start).clamp(0, len);
    let b = (row.len() as isize - start).clamp(a, len);
    let (a, b) = (a as usize, b as usize);
    dst[..a].fill(0.0);
    if b > a {
        // (a run can start past the row's end: the right-hand columns of a tile
        // row's last tile, when the width is not a multiple of 4)
        let s = (start + a as isize) as usize;
        dst[a..b].copy_from_slice(&row[s..s + (b - a)]);
    }
    dst[b..].fill(0.0);
}

/// Width of a staging row: four values per lane.
const BW: usize = M * L;

/// Loads channel `c` of the 6x6 input tiles `t0..t0 + L` (lanes past the last tile
/// and pixels outside the image are zero) into `d` (36 vectors). Each tile row's
/// pixels are copied a row segment at a time into two staging rows, one holding
/// each lane's columns 0-3 and one its columns 4-5, so that the lanes are read out
/// at a fixed stride of 4 (which vectorises) whatever the tiles' positions.
#[inline(always)]
fn gather(wg: &Wg, x: &[f32], c: usize, t0: usize, d: &mut [Lanes]) {
    let mut lo = [0.0f32; A * BW];
    let mut hi = [0.0f32; A * BW];
    let mut rs = [(0, 0, 0, 0, 0); L];
    let n = runs(wg, t0, &mut rs);
    for &(l0, img, ty, tx, len) in &rs[..n] {
        let plane = &x[((img * wg.cin_all + wg.cin0 + c) * wg.h) * wg.w..][..wg.h * wg.w];
        let x0 = (tx * M) as isize - wg.pl as isize;
        for r in 0..A {
            let span = r * BW + M * l0..r * BW + M * (l0 + len);
            let iy = (ty * M + r) as isize - wg.pt as isize;
            if iy < 0 || iy >= wg.h as isize {
                lo[span.clone()].fill(0.0);
                hi[span].fill(0.0);
                continue;
            }
            let row = &plane[iy as usize * wg.w..][..wg.w];
            copy_clipped(&mut lo[span.clone()], row, x0);
            copy_clipped(&mut hi[span], row, x0 + M as isize);
        }
    }
    for r in 0..A {
        let (lo, hi) = (&lo[r * BW..][..BW], &hi[r * BW..][..BW]);
        let d = &mut d[r * A..r * A + A];
        for l in 0..L {
            for j in 0..M {
                d[j][l] = lo[M * l + j];
            }
            for j in 0..A - M {
                d[M + j][l] = hi[M * l + j];
            }
        }
    }
}

/// Loads channel `o` of the 4x4 output-gradient tiles `t0..t0 + L` (zero past the
/// last tile and outside the output) into `d` (16 vectors).
#[inline(always)]
fn gather_out(wg: &Wg, dy: &[f32], o: usize, t0: usize, d: &mut [Lanes]) {
    let mut st = [0.0f32; M * BW];
    let mut rs = [(0, 0, 0, 0, 0); L];
    let n = runs(wg, t0, &mut rs);
    for &(l0, img, ty, tx, len) in &rs[..n] {
        let plane = &dy[((img * wg.cout_all + wg.cout0 + o) * wg.ho) * wg.wo..][..wg.ho * wg.wo];
        for r in 0..M {
            let span = r * BW + M * l0..r * BW + M * (l0 + len);
            let iy = ty * M + r;
            if iy >= wg.ho {
                st[span].fill(0.0);
                continue;
            }
            copy_clipped(
                &mut st[span],
                &plane[iy * wg.wo..][..wg.wo],
                (tx * M) as isize,
            );
        }
    }
    for r in 0..M {
        let st = &st[r * BW..][..BW];
        let d = &mut d[r * M..r * M + M];
        for l in 0..L {
            for j in 0..M {
                d[j][l] = st[M * l + j];
            }
        }
    }
}

/// Writes 4x4 output tiles (16 vectors) of channel `o` for tiles `t0..t0 + L`,
/// clipped to the output, finished with the bias and ReLU: interleaved into
/// staging rows, then copied a row segment at a time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn scatter(wg: &Wg, y: &mut [f32], o: usize, t0: usize, out: &[Lanes], bias: f32, relu_on: bool) {
    let mut st = [0.0f32; M * BW];
    for r in 0..M {
        let st = &mut st[r * BW..][..BW];
        let out = &out[r * M..r * M + M];
        for l in 0..L {
            for j in 0..M {
                st[M * l + j] = out[j][l];
            }
        }
    }
    let mut rs = [(0, 0, 0, 0, 0); L];
    let n = runs(wg, t0, &mut rs);
    for &(l0, img, ty, tx, len) in &rs[..n] {
        let plane = &mut y[((img * wg.cout_all + wg.cout0 + o) * wg.ho) * wg.wo..][..wg.ho * wg.wo];
        let cols = (M * len).min(wg.wo - tx * M);
        for r in 0..M.min(wg.ho - ty * M) {
            let dst = &mut plane[(ty * M + r) * wg.wo + tx * M..][..cols];
            let src = &st[r * BW + M * l0..][..cols];
            if relu_on {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = relu(v + bias);
                }
            } else {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = v + bias;
                }
            }
        }
    }
}

/// Transforms channels of the input tiles of a block (tiles `t0..t0 + tb`) into
/// `v`, laid out per xi, panel of `nr` tiles, channel, tile.
#[inline(always)]
fn input_transform(wg: &Wg, x: &[f32], t0: usize, tb: usize, nr: usize, v: &mut [f32]) {
    input_transform_of(wg, x, 0..wg.cin, t0, tb, nr, v)
}

/// [`input_transform`] of the input channels `chans` only.
#[inline(always)]
fn input_transform_of(
    wg: &Wg,
    x: &[f32],
    chans: Range<usize>,
    t0: usize,
    tb: usize,
    nr: usize,
    v: &mut [f32],
) {
    // (a last panel partly filled is read only as far as its tiles go)
    let panels = tb.div_ceil(nr);
    let mut d = vec![[0.0; L]; XI];
    let mut tmp = vec![[0.0; L]; XI];
    let mut out = vec![[0.0; L]; XI];
    for c in chans {
        for s in (0..tb).step_by(L) {
            gather(wg, x, c, t0 + s, &mut d);
            two_axes::<6, 6>(&d, &mut tmp, &mut out, bt6);
            let (panel, pos) = (s / nr, s % nr);
            for (xi, vec) in out.iter().enumerate() {
                let off = ((xi * panels + panel) * wg.cin + c) * nr + pos;
                v[off..off + L].copy_from_slice(vec);
            }
        }
    }
}

/// How many groups of `L` ahead the output transform fetches each of its streams.
const AHEAD: usize = 4;

/// Transforms a block's products back (tiles `t0..t0 + tb`, `m` laid out per xi,
/// output channel, tile) into `y`, for the output channels `outs`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_transform(
    wg: &Wg,
    m: &[f32],
    outs: Range<usize>,
    t0: usize,
    tb: usize,
    bias: Option<&[f32]>,
    relu_on: bool,
    y: &mut [f32],
) {
    let mut d = vec![[0.0; L]; XI];
    let mut tmp = vec![[0.0; L]; XI];
    let mut out = vec![[0.0; L]; M * M];
    for o in outs {
        for s in (0..tb).step_by(L) {
            if t0 + s >= wg.tiles() {
                break;
            }
            for (xi, vec) in d.iter_mut().enumerate() {
                let off = (xi * wg.cout + o) * tb + s;
                vec.copy_from_slice(&m[off..off + L]);
                // 36 streams, one per xi, are more than the hardware follows
                super::cpu::prefetch(m.as_ptr().wrapping_add(off + AHEAD * L));
            }
            two_axes::<6, 4>(&d, &mut tmp, &mut out, at6);
            let b = bias.map_or(0.0, |b| b[o]);
            scatter(wg, y, o, t0 + s, &out, b, relu_on);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` on two per-thread buffers of at least the given lengths.
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            let (va, vb) = &mut *s;
            if va.len() < a {
                va.resize(a, 0.0);
            }
            if vb.len() < b {
                vb.resize(b, 0.0);
            }
            f(&mut va[..a], &mut vb[..b])
        }
        Err(_) => f(&mut vec![0.0; a], &mut vec![0.0; b]),
    })
}

/// Sends `y` to the rayon threads as a raw pointer: blocks write disjoint tiles.
struct SharedOut(*mut f32, usize);
// SAFETY: each output element belongs to one tile, and each tile to one block.
unsafe impl Sync for SharedOut {}
impl SharedOut {
    /// The whole buffer; callers write only their own tiles' elements.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.0, self.1)
    }
}

/// The convolution `wg` of `x` with transformed filters `u` into `y` (overwritten),
/// with bias and ReLU.
fn convolve(
    isa: Isa,
    wg: &Wg,
    u: &Filters,
    x: &[f32],
    bias: Option<&[f32]>,
    relu_on: bool,
    y: &mut [f32],
) {
    let nr = Micro::for_isa(isa).nr;
    let threads = rayon::current_num_threads();
    if threads > 1 && by_positions(wg) {
        return convolve_by_positions(isa, wg, u, x, bias, relu_on, y);
    }
    let full = balanced_block_tiles(wg, nr, threads);
    let blocks = wg.tiles().div_ceil(full);
    let shared = SharedOut(y.as_mut_ptr(), y.len());
    (0..blocks).into_par_iter().for_each(|blk| {
        let t0 = blk * full;
        // the last block computes only the groups it has tiles for
        let tb = full.min((wg.tiles() - t0).div_ceil(L) * L);
        let panels = tb.div_ceil(nr);
        with_scratch(XI * wg.cin * panels * nr, XI * wg.cout * tb, |v, m| {
            input_transform_dispatch(isa, wg, x, t0, tb, nr, v);
            for xi in 0..XI {
                position_products(isa, wg, u, v, xi, tb, m);
            }
            // SAFETY: this block writes only the elements of its own tiles.
            let y = unsafe { shared.get() };
            output_transform_dispatch(isa, wg, m, 0..wg.cout, t0, tb, bias, relu_on, y);
        });
    });
}

/// The products of position `xi` for a block of `tb` tiles: `m[xi] = U[xi] V[xi]`,
/// `v` the block's transformed input in panels, `m` laid out per xi, output channel,
/// tile.
fn position_products(
    isa: Isa,
    wg: &Wg,
    u: &Filters,
    v: &[f32],
    xi: usize,
    tb: usize,
    m: &mut [f32],
) {
    let nr = Micro::for_isa(isa).nr;
    let b = VPanels {
        v,
        panels: tb.div_ceil(nr),
        cin: wg.cin,
        nr,
        xi,
    };
    let out = StridedMut::new(m, xi * wg.cout * tb, wg.cout, tb, tb, 1);
    let ep = Epilogue::default();
    sgemm::gemm_with(isa, 1, wg.cout, tb, wg.cin, &u.at(xi), &b, &out, ep);
}

/// Whether the transformed filters outweigh twice the block of all tiles'
/// transformed inputs and products: then each thread reading all the filters for
/// its own block of tiles costs more than sharing the positions out (ResNet-18's
/// 512-channel layers at batch 16: 38 MB of filters, 64 tiles; VGG-16's at batch 8).
fn by_positions(wg: &Wg) -> bool {
    wg.cin * wg.cout >= 2 * (wg.cin + wg.cout) * wg.tiles()
}

/// [`convolve`] as one block of all tiles, with the input transform split among
/// the threads by input channel, the products by position and the output
/// transform by output channel: each position's filters are read by one thread.
/// Every product is the one the block's product would be, so the bits are those
/// of [`convolve`]'s blocks.
fn convolve_by_positions(
    isa: Isa,
    wg: &Wg,
    u: &Filters,
    x: &[f32],
    bias: Option<&[f32]>,
    relu_on: bool,
    y: &mut [f32],
) {
    let nr = Micro::for_isa(isa).nr;
    let tb = wg.tiles().div_ceil(L) * L;
    let panels = tb.div_ceil(nr);
    let parts = |len: usize| -> Vec<Range<usize>> {
        let t = rayon::current_num_threads().min(len).max(1);
        (0..t).map(|p| p * len / t..(p + 1) * len / t).collect()
    };
    with_scratch(XI * wg.cin * panels * nr, XI * wg.cout * tb, |v, m| {
        let vs = SharedOut(v.as_mut_ptr(), v.len());
        parts(wg.cin).into_par_iter().for_each(|chans| {
            // SAFETY: each part writes the values of its own input channels.
            let v = unsafe { vs.get() };
            input_transform_of_dispatch(isa, wg, x, chans, 0, tb, nr, v)
        });
        let v = &*v;
        let ms = SharedOut(m.as_mut_ptr(), m.len());
        (0..XI).into_par_iter().for_each(|xi| {
            // SAFETY: each position's products go to its own part of `m`.
            position_products(isa, wg, u, v, xi, tb, unsafe { ms.get() });
        });
        let m = &*m;
        let ys = SharedOut(y.as_mut_ptr(), y.len());
        parts(wg.cout).into_par_iter().for_each(|outs| {
            // SAFETY: each part writes the outputs of its own output channels.
            let y = unsafe { ys.get() };
            output_transform_dispatch(isa, wg, m, outs, 0, tb, bias, relu_on, y)
        });
    })
}

/// `y = conv(x, w) + b` (then ReLU when `relu_on`) by Winograd; `g` must satisfy
/// [`applies`].
pub fn forward(
    isa: Isa,
    g: &Geom,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    relu_on: bool,
    y: &mut [f32],
) {
    forward_with(isa, g, &forward_filters(isa, g, w), x, b, relu_on, y)
}

/// The transformed filters of each group, as [`forward_with`] takes them.
pub(crate) fn forward_filters(isa: Isa, g: &Geom, w: &[f32]) -> Vec<Filters> {
    let (og, cg) = (g.og(), g.cg());
    (0..g.groups)
        .map(|grp| {
            let kernels = Kernels {
                w,
                base: grp * og * cg,
                rs: cg,
                ds: 1,
                flip: false,
            };
            Filters::new(isa, og, cg, kernels)
        })
        .collect()
}

/// [`forward`] with the filters transformed already (by [`forward_filters`], for
/// the same `isa`).
pub(crate) fn forward_with(
    isa: Isa,
    g: &Geom,
    filters: &[Filters],
    x: &[f32],
    b: Option<&[f32]>,
    relu_on: bool,
    y: &mut [f32],
) {
    let og = g.og();
    for (grp, u) in filters.iter().enumerate() {
        let wg = Wg::forward(g, grp);
        let bias = b.map(|b| &b[grp * og..(grp + 1) * og]);
        convolve(isa, &wg, u, x, bias, relu_on, y);
    }
}

/// `dx` (overwritten) by Winograd: `dy` convolved with the flipped, transposed
/// filters.
pub fn backward_data(isa: Isa, g: &Geom, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let (og, cg) = (g.og(), g.cg());
    for grp in 0..g.groups {
        let wg = Wg::backward_data(g, grp);
        // row c, depth o: filter (o, c) turned
        let kernels = Kernels {
            w,
            base: grp * og * cg,
            rs: 1,
            ds: cg,
            flip: true,
        };
        let u = Filters::new(isa, cg, og, kernels);
        convolve(isa, &wg, &u, dy, None, false, dx);
    }
}

/// `dw` (overwritten, or added to when `accumulate`) by Winograd: per position xi, `dU = (A dY A^T) V^T` summed
/// over all tiles, then `G^T dU G`. The tile blocks are cut into one contiguous run
/// per thread; each run's sum is formed on its own and the runs are added in order.
pub fn backward_filter(
    isa: Isa,
    g: &Geom,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    accumulate: bool,
) {
    let nr = Micro::for_isa(isa).nr;
    let (og, cg) = (g.og(), g.cg());
    for grp in 0..g.groups {
        let wg = Wg::forward(g, grp);
        let tb = block_tiles(&wg, nr);
        let blocks = wg.tiles().div_ceil(tb);
        let parts = rayon::current_num_threads().clamp(1, blocks.max(1));
        let sums: Vec<Vec<f32>> = (0..parts)
            .into_par_iter()
            .map(|part| {
                let mut du = vec![0.0f32; XI * og * cg];
                let (b0, b1) = (part * blocks / parts, (part + 1) * blocks / parts);
                with_scratch(XI * cg * tb, XI * og * tb, |v, mt| {
                    for blk in b0..b1 {
                        let t0 = blk * tb;
                        input_transform_rows_dispatch(isa, &wg, x, t0, tb, v);
                        dy_transform_dispatch(isa, &wg, dy, t0, tb, mt);
                        for xi in 0..XI {
                            let a = Strided {
                                data: mt,
                                off: xi * og * tb,
                                rs: tb,
                                cs: 1,
                            };
                            let b = Strided {
                                data: v,
                                off: xi * cg * tb,
                                rs: 1,
                                cs: tb,
                            };
                            let out = StridedMut::new(&mut du, xi * og * cg, og, cg, cg, 1);
                            let ep = Epilogue {
                                accumulate: blk > b0,
                                ..Default::default()
                            };
                            sgemm::gemm_with(isa, 1, og, cg, tb, &a, &b, &out, ep);
                        }
                    }
                });
                du
            })
            .collect();
        let mut du = sums[0].clone();
        for s in &sums[1..] {
            du.iter_mut().zip(s).for_each(|(d, v)| *d += v);
        }
        let dwg = &mut dw[grp * og * cg * 9..(grp + 1) * og * cg * 9];
        let pairs = og * cg;
        dwg.par_chunks_mut(9 * 256)
            .enumerate()
            .for_each(|(i, k)| filter_grad_dispatch(isa, &du, pairs, i * 256, accumulate, k));
    }
}

/// [`input_transform`] with tiles contiguous: `v` laid out per xi, channel, tile.
#[inline(always)]
fn input_transform_rows(wg: &Wg, x: &[f32], t0: usize, tb: usize, v: &mut [f32]) {
    // the panel layout with one panel of all tb tiles is this layout
    input_transform(wg, x, t0, tb, tb, v)
}

/// `A dY A^T` of the output-gradient tiles of a block into `mt`, laid out per xi,
/// output channel, tile.
#[inline(always)]
fn dy_transform(wg: &Wg, dy: &[f32], t0: usize, tb: usize, mt: &mut [f32]) {
    let mut d = vec![[0.0; L]; M * M];
    let mut tmp = vec![[0.0; L]; A * M];
    let mut out = vec![[0.0; L]; XI];
    for o in 0..wg.cout {
        for s in (0..tb).step_by(L) {
            gather_out(wg, dy, o, t0 + s, &mut d);
            // columns: tmp (6 x 4) = A d; rows: out (6 x 6) = tmp A^T
            for j in 0..M {
                let col: [Lanes; 4] = std::array::from_fn(|r| d[r * M + j]);
                let mut m6 = [[0.0; L]; 6];
                a4(&col, &mut m6);
                for (r, v) in m6.iter().enumerate() {
                    tmp[r * M + j] = *v;
                }
            }
            for r in 0..A {
                let row: &[Lanes; 4] = tmp[r * M..r * M + M].try_into().expect("row");
                let mut m6 = [[0.0; L]; 6];
                a4(row, &mut m6);
                out[r * A..r * A + A].copy_from_slice(&m6);
            }
            for (xi, vec) in out.iter().enumerate() {
                let off = (xi * wg.cout + o) * tb + s;
                mt[off..off + L].copy_from_slice(vec);
            }
        }
    }
}

/// Compiles `$f` once per instruction level and calls the one for `$isa`.
macro_rules! per_isa {
    ($name:ident, $f:ident, ($($arg:ident: $ty:ty),*)) => {
        #[allow(clippy::too_many_arguments)]
        fn $name(isa: Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    $f($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    $f($($arg),*)
                }
                match isa {
                    // SAFETY: the level was detected on this CPU.
                    Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    Isa::Scalar => {}
                }
            }
            let _ = isa;
            $f($($arg),*)
        }
    };
}

per_isa!(input_transform_dispatch, input_transform, (wg: &Wg, x: &[f32], t0: usize, tb: usize, nr: usize, v: &mut [f32]));
per_isa!(input_transform_rows_dispatch, input_transform_rows, (wg: &Wg, x: &[f32], t0: usize, tb: usize, v: &mut [f32]));
per_isa!(output_transform_dispatch, output_transform, (wg: &Wg, m: &[f32], outs: Range<usize>, t0: usize, tb: usize, bias: Option<&[f32]>, relu_on: bool, y: &mut [f32]));
per_isa!(input_transform_of_dispatch, input_transform_of, (wg: &Wg, x: &[f32], chans: Range<usize>, t0: usize, tb: usize, nr: usize, v: &mut [f32]));
per_isa!(filter_panel_dispatch, filter_panel, (rows: std::ops::Range<usize>, depth: usize, mr: usize, kernels: &Kernels, dst: &mut [std::mem::MaybeUninit<f32>]));
per_isa!(filter_grad_dispatch, filter_grad, (du: &[f32], pairs: usize, i0: usize, accumulate: bool, dw: &mut [f32]));
per_isa!(dy_transform_dispatch, dy_transform, (wg: &Wg, dy: &[f32], t0: usize, tb: usize, mt: &mut [f32]));

#[cfg(test)]
mod tests {
    use super::*;

    /// The positions are shared out where the filters outweigh the tiles: ResNet-18's
    /// 512-channel layers at batch 16 (and the integration test's 64 channels over 8
    /// tiles), not its 64-channel ones at batch 1 or the 169-tile test.
    #[test]
    fn positions_are_shared_out_for_few_tiles_under_many_channels() {
        let geom = |n, c, hw| {
            let p = crate::blocks::Pad::all(1);
            Geom::new([n, c, hw, hw], [c, c, 3, 3], 1, p, [1, 1], [1, 1], [hw, hw])
        };
        assert!(by_positions(&Wg::forward(&geom(16, 512, 7), 0)));
        assert!(by_positions(&Wg::forward(&geom(2, 64, 7), 0)));
        assert!(by_positions(&Wg::backward_data(&geom(16, 512, 7), 0)));
        assert!(!by_positions(&Wg::forward(&geom(1, 64, 56), 0)));
        assert!(!by_positions(&Wg::forward(&geom(1, 8, 50), 0)));
    }

    /// The one-axis transforms reproduce a 3-tap correlation: A^T[(G g).(B^T d)].
    #[test]
    fn one_axis_transforms_compute_a_correlation() {
        let g = [0.3f64, -1.2, 0.7];
        let d = [1.0f32, -2.0, 0.5, 3.0, -1.5, 2.5];
        let u = gk(g);
        let mut bd = [[0.0; L]; 6];
        let dl: [Lanes; 6] = std::array::from_fn(|i| [d[i]; L]);
        bt6(&dl, &mut bd);
        let prod: [Lanes; 6] = std::array::from_fn(|i| [bd[i][0] * u[i] as f32; L]);
        let mut y = [[0.0; L]; 4];
        at6(&prod, &mut y);
        for i in 0..4 {
            let want: f32 = (0..3).map(|k| g[k] as f32 * d[i + k]).sum();
            assert!((y[i][0] - want).abs() < 1e-5, "{i}: {} vs {want}", y[i][0]);
        }
        // the adjoints: <A^T m, o> = <m, A o> and <G g, u> = <g, G^T u>
        let m: [Lanes; 6] = std::array::from_fn(|i| [(i as f32 - 2.5) * 0.7; L]);
        let o: [Lanes; 4] = std::array::from_fn(|i| [1.0 + i as f32; L]);
        let mut atm = [[0.0; L]; 4];
        at6(&m, &mut atm);
        let mut ao = [[0.0; L]; 6];
        a4(&o, &mut ao);
        let lhs: f32 = (0..4).map(|i| atm[i][0] * o[i][0]).sum();
        let rhs: f32 = (0..6).map(|i| m[i][0] * ao[i][0]).sum();
        assert!((lhs - rhs).abs() < 1e-4);
        let uu = [0.5, -1.0, 2.0, 0.25, -0.75, 1.5];
        let lhs: f64 = (0..6).map(|i| gk(g)[i] * uu[i]).sum();
        let rhs: f64 = (0..3).map(|i| g[i] * gt(uu)[i]).sum();
        assert!((lhs - rhs).abs() < 1e-12);
    }
}
