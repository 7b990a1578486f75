//! Element-wise maps over f32 slices. Big slices are cut into fixed chunks that run
//! in parallel; the chunking does not depend on the thread count, and no element's
//! result depends on another, so results are the same for any number of threads.

use rayon::prelude::*;

/// Below this many elements a map runs on the calling thread: spawning costs more.
const PARALLEL_MIN: usize = 1 << 16;
const CHUNK: usize = 1 << 14;

/// `out[i] = f(x[i])`.
pub fn map(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    let run = |xs: &[f32], os: &mut [f32]| {
        for (o, &v) in os.iter_mut().zip(xs) {
            *o = f(v);
        }
    };
    if x.len() < PARALLEL_MIN {
        run(x, out);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(os, xs)| run(xs, os));
    }
}

/// `out[i] = f(x[i], y[i])`.
pub fn map2(x: &[f32], y: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    let run = |xs: &[f32], ys: &[f32], os: &mut [f32]| {
        for ((o, &a), &b) in os.iter_mut().zip(xs).zip(ys) {
            *o = f(a, b);
        }
    };
    if x.len() < PARALLEL_MIN {
        run(x, y, out);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .zip(y.par_chunks(CHUNK))
            .for_each(|((os, xs), ys)| run(xs, ys, os));
    }
}

/// `y = max(0, y)` in place (a NaN stays a NaN).
pub fn relu_in_place(y: &mut [f32]) {
    let run = |ys: &mut [f32]| {
        ys.iter_mut()
            .for_each(|v| *v = super::microkernel::relu(*v))
    };
    if y.len() < PARALLEL_MIN {
        run(y);
    } else {
        y.par_chunks_mut(CHUNK).for_each(run);
    }
}
