//! Seeded sparse problems and primal objectives shared by the solver tests.
#![allow(dead_code)]

use linear::solver::SolverParams;
use linear::sparse::Csr;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// `rows x cols` with about `density` of the entries set, values in [-1, 1).
pub fn random_csr(rows: usize, cols: usize, density: f64, seed: u64) -> Csr {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut x = Csr {
        indptr: vec![0],
        n_cols: cols,
        ..Default::default()
    };
    for _ in 0..rows {
        for j in 0..cols {
            if rng.gen::<f64>() < density {
                x.indices.push(j as u32);
                x.values.push(rng.gen_range(-1.0..1.0));
            }
        }
        x.indptr.push(x.indices.len());
    }
    x
}

/// The same rows with a last column of ones (LIBLINEAR's `-B 1`).
pub fn with_bias(x: &Csr) -> Csr {
    let mut out = Csr {
        indptr: vec![0],
        n_cols: x.n_cols + 1,
        ..Default::default()
    };
    for i in 0..x.n_rows() {
        let (idx, val) = x.row(i);
        out.indices.extend_from_slice(idx);
        out.values.extend_from_slice(val);
        out.indices.push(x.n_cols as u32);
        out.values.push(1.0);
        out.indptr.push(out.indices.len());
    }
    out
}

fn planted(x: &Csr, seed: u64) -> (Vec<f64>, Xoshiro256PlusPlus) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed);
    let w: Vec<f64> = (0..x.n_cols).map(|_| rng.gen_range(-2.0..2.0)).collect();
    let scores = (0..x.n_rows()).map(|i| x.dot(i, &w)).collect();
    (scores, rng)
}

/// +1/-1 labels from a planted linear model with label noise; row 0 is +1 so that
/// LIBLINEAR's first label is +1.
pub fn labels(x: &Csr, seed: u64) -> Vec<f64> {
    let (scores, mut rng) = planted(x, seed);
    let mut y: Vec<f64> = scores
        .iter()
        .map(|s| {
            if s + rng.gen_range(-0.5..0.5) > 0.3 {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    if let Some(first) = y.first_mut() {
        *first = 1.0;
    }
    y
}

/// Real targets from a planted linear model plus noise.
pub fn targets(x: &Csr, seed: u64) -> Vec<f64> {
    let (scores, mut rng) = planted(x, seed);
    scores
        .iter()
        .map(|s| s + rng.gen_range(-0.3..0.3))
        .collect()
}

/// Class indices 0..k in order of first appearance (row r < k has class r).
pub fn classes(x: &Csr, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xc1a55);
    let ws: Vec<Vec<f64>> = (0..k)
        .map(|_| (0..x.n_cols).map(|_| rng.gen_range(-2.0..2.0)).collect())
        .collect();
    (0..x.n_rows())
        .map(|i| {
            if i < k {
                return i;
            }
            let s: Vec<f64> = ws
                .iter()
                .map(|w| x.dot(i, w) + rng.gen_range(-0.3..0.3))
                .collect();
            (0..k).fold(0, |b, m| if s[m] > s[b] { m } else { b })
        })
        .collect()
}

pub fn params(eps: f64, c: f64) -> SolverParams {
    SolverParams {
        eps,
        c_pos: c,
        c_neg: c,
        p: 0.1,
        nu: 0.5,
        unregularized_bias: None,
        seed: 1,
    }
}

pub fn sq(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum()
}

pub fn cost(y: &[f64], p: &SolverParams) -> Vec<f64> {
    y.iter()
        .map(|&v| if v > 0.0 { p.c_pos } else { p.c_neg })
        .collect()
}

/// `sum_i d_i x_i`.
pub fn xt(x: &Csr, d: &[f64]) -> Vec<f64> {
    let mut g = vec![0.0; x.n_cols];
    for (i, &di) in d.iter().enumerate() {
        x.axpy(i, di, &mut g);
    }
    g
}

pub fn norm_inf(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, a| m.max(a.abs()))
}

/// Relative difference `|a - b| / max(|a|, |b|, 1e-12)`.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
}
