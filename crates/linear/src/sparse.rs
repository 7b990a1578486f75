//! Sparse rows (CSR) of f64 features with 0-based column indices.

/// A sparse matrix stored by rows. Column indices in a row are strictly increasing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Csr {
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f64>,
    /// Number of columns (features), bias column included when one was appended.
    pub n_cols: usize,
}

impl Csr {
    pub fn n_rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// The transpose (rows become columns), the rows of each column ascending.
    pub fn transpose(&self) -> Csr {
        let n = self.n_cols;
        let mut count = vec![0usize; n + 1];
        for &j in &self.indices {
            count[j as usize + 1] += 1;
        }
        for j in 0..n {
            count[j + 1] += count[j];
        }
        let mut next = count.clone();
        let mut indices = vec![0u32; self.indices.len()];
        let mut values = vec![0.0; self.values.len()];
        for i in 0..self.n_rows() {
            let (idx, val) = self.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                let slot = &mut next[j as usize];
                indices[*slot] = i as u32;
                values[*slot] = v;
                *slot += 1;
            }
        }
        Csr {
            indptr: count,
            indices,
            values,
            n_cols: self.n_rows(),
        }
    }

    /// Column indices and values of row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }

    /// `<x_i, w>`.
    #[inline]
    pub fn dot(&self, i: usize, w: &[f64]) -> f64 {
        let (idx, val) = self.row(i);
        idx.iter().zip(val).map(|(&j, &v)| v * w[j as usize]).sum()
    }

    /// `w += a * x_i`.
    #[inline]
    pub fn axpy(&self, i: usize, a: f64, w: &mut [f64]) {
        let (idx, val) = self.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            w[j as usize] += a * v;
        }
    }

    /// `||x_i||^2`.
    #[inline]
    pub fn sq_norm(&self, i: usize) -> f64 {
        self.row(i).1.iter().map(|v| v * v).sum()
    }
}
