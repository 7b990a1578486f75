//! Element-wise maps over f32 slices. Big slices are cut into fixed chunks that run
//! in parallel; the chunking does not depend on the thread count, and no element's
//! result depends on another, so results are the same for any number of threads.

use rayon::prelude::*;

/// Below this many elements a map runs on the calling thread: spawning costs more.
const PARALLEL_MIN: usize = 1 << 16;
const CHUNK: usize = 1 << 14;

/// A leaky ReLU's value: `v` where positive, else `leak * v` (NaN stays NaN).
#[inline(always)]
fn leaky(v: f32, leak: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        leak * v
    }
}

/// `x[i] = relu(x[i])` with slope `leak` below 0. Written out rather than passed as a
/// closure to [`map_in_place`]: a closure from another module is not always inlined
/// into the loop, and the call per element made ReLU a tenth of ResNet-18's training
/// time.
pub fn relu_in_place(x: &mut [f32], leak: f32) {
    // `move`: a `leak` held by reference could alias the output, which keeps the
    // loop scalar
    let run = move |xs: &mut [f32]| xs.iter_mut().for_each(|v| *v = leaky(*v, leak));
    if x.len() < PARALLEL_MIN {
        run(x);
    } else {
        x.par_chunks_mut(CHUNK).for_each(run);
    }
}

/// `relu(x[i])` for every element, into a new vector.
pub fn relu(x: &[f32], leak: f32) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    let run = move |(ys, xs): (&mut [f32], &[f32])| {
        for (o, &v) in ys.iter_mut().zip(xs) {
            *o = leaky(v, leak);
        }
    };
    if x.len() < PARALLEL_MIN {
        run((&mut y, x));
    } else {
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(run);
    }
    y
}

/// `dy[i] = dy[i]` where `x[i] > 0`, else `leak * dy[i]`: the ReLU's backward over
/// the derivative itself.
pub fn relu_backward_in_place(x: &[f32], dy: &mut [f32], leak: f32) {
    let run = move |(ds, xs): (&mut [f32], &[f32])| {
        for (d, &v) in ds.iter_mut().zip(xs) {
            *d *= if v > 0.0 { 1.0 } else { leak };
        }
    };
    if x.len() < PARALLEL_MIN {
        run((dy, x));
    } else {
        dy.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(run);
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
