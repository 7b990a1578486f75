//! Element-wise maps over f32 slices. Big slices are cut into fixed chunks that run
//! in parallel; the chunking does not depend on the thread count, and no element's
//! result depends on another, so results are the same for any number of threads.

use rayon::prelude::*;

/// Below this many elements a map runs on the calling thread: spawning costs more.
const PARALLEL_MIN: usize = 1 << 16;
const CHUNK: usize = 1 << 14;

/// `x[i] = f(x[i])`.
pub fn map_in_place(x: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    let run = |xs: &mut [f32]| xs.iter_mut().for_each(|v| *v = f(*v));
    if x.len() < PARALLEL_MIN {
        run(x);
    } else {
        x.par_chunks_mut(CHUNK).for_each(run);
    }
}

/// `y[i] = f(x[i], y[i])`.
pub fn map2_in_place(x: &[f32], y: &mut [f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    let run = |xs: &[f32], ys: &mut [f32]| {
        for (o, &a) in ys.iter_mut().zip(xs) {
            *o = f(a, *o);
        }
    };
    if x.len() < PARALLEL_MIN {
        run(x, y);
    } else {
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(ys, xs)| run(xs, ys));
    }
}

/// `f(x[i])` for every element, written once into a new vector.
pub fn collect_map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    if x.len() < PARALLEL_MIN {
        x.iter().map(|&v| f(v)).collect()
    } else {
        let f = &f;
        x.par_iter().with_min_len(CHUNK).map(|&v| f(v)).collect()
    }
}

/// `f(x[i], y[i])` for every element, written once into a new vector.
pub fn collect_map2(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    if x.len() < PARALLEL_MIN {
        x.iter().zip(y).map(|(&a, &b)| f(a, b)).collect()
    } else {
        let f = &f;
        x.par_iter()
            .zip(y)
            .with_min_len(CHUNK)
            .map(|(&a, &b)| f(a, b))
            .collect()
    }
}
