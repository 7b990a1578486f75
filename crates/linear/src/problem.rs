//! A training or test problem as LIBLINEAR sees it: sparse rows, targets, and the bias
//! column `-B` appended to every row when the bias is >= 0.

use crate::error::{Error, Result};
use crate::libsvm::Data;
use crate::sparse::Csr;

#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Rows, the bias column (index `n_features`) included when `bias >= 0`.
    pub x: Csr,
    pub y: Vec<f64>,
    /// LIBLINEAR's `-B`: negative means no bias column.
    pub bias: f64,
    /// Number of features without the bias column.
    pub n_features: usize,
}

impl Problem {
    /// Appends the bias column to `data` when `bias >= 0`, as LIBLINEAR's `train` does.
    pub fn new(data: Data, bias: f64) -> Result<Problem> {
        let Data { x, y } = data;
        if x.n_rows() != y.len() {
            return Err(Error::Data(format!(
                "problem: {} rows but {} labels",
                x.n_rows(),
                y.len()
            )));
        }
        let n_features = x.n_cols;
        Ok(Problem {
            x: with_bias(x, bias, n_features),
            y,
            bias,
            n_features,
        })
    }

    /// Rows of dense features computed elsewhere (for example by a CNN), row-major with
    /// `n_features` values per row; zeros are left out of the sparse rows.
    pub fn from_dense<T: Copy + Into<f64>>(
        features: &[T],
        n_features: usize,
        labels: &[f64],
        bias: f64,
    ) -> Result<Problem> {
        if n_features == 0 || features.len() != n_features * labels.len() {
            return Err(Error::Data(format!(
                "dense problem: {} values do not make {} rows of {} features",
                features.len(),
                labels.len(),
                n_features
            )));
        }
        let mut x = Csr {
            indptr: vec![0],
            n_cols: n_features,
            ..Csr::default()
        };
        for row in features.chunks_exact(n_features) {
            for (j, &v) in row.iter().enumerate() {
                let v: f64 = v.into();
                if !v.is_finite() {
                    return Err(Error::Data(format!(
                        "dense problem: row {} feature {} is not finite",
                        x.n_rows(),
                        j + 1
                    )));
                }
                if v != 0.0 {
                    x.indices.push(j as u32);
                    x.values.push(v);
                }
            }
            x.indptr.push(x.indices.len());
        }
        Problem::new(
            Data {
                x,
                y: labels.to_vec(),
            },
            bias,
        )
    }

    pub fn n_rows(&self) -> usize {
        self.y.len()
    }
}

/// Rows with a last column `n_features` of value `bias`, when `bias >= 0`. Features
/// at or beyond `n_features` are dropped, as LIBLINEAR's `predict` does with test rows
/// that have more features than the model.
pub fn with_bias(x: Csr, bias: f64, n_features: usize) -> Csr {
    if bias < 0.0 && x.n_cols <= n_features {
        return x;
    }
    let mut out = Csr {
        indptr: Vec::with_capacity(x.indptr.len()),
        indices: Vec::with_capacity(x.indices.len() + x.n_rows()),
        values: Vec::with_capacity(x.values.len() + x.n_rows()),
        n_cols: n_features + usize::from(bias >= 0.0),
    };
    out.indptr.push(0);
    for i in 0..x.n_rows() {
        let (idx, val) = x.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            if (j as usize) < n_features {
                out.indices.push(j);
                out.values.push(v);
            }
        }
        if bias >= 0.0 {
            out.indices.push(n_features as u32);
            out.values.push(bias);
        }
        out.indptr.push(out.indices.len());
    }
    out
}

/// The rows `rows` of `x`, in that order.
pub fn select_rows(x: &Csr, rows: &[usize]) -> Csr {
    let mut out = Csr {
        indptr: Vec::with_capacity(rows.len() + 1),
        n_cols: x.n_cols,
        ..Csr::default()
    };
    out.indptr.push(0);
    for &i in rows {
        let (idx, val) = x.row(i);
        out.indices.extend_from_slice(idx);
        out.values.extend_from_slice(val);
        out.indptr.push(out.indices.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_column_is_appended() {
        let p = Problem::from_dense(&[1.0f32, 0.0, 0.0, 2.0], 2, &[1.0, -1.0], 1.5).unwrap();
        assert_eq!(p.x.n_cols, 3);
        assert_eq!(p.x.row(0), (&[0u32, 2][..], &[1.0, 1.5][..]));
        assert_eq!(p.x.row(1), (&[1u32, 2][..], &[2.0, 1.5][..]));
        let q = Problem::from_dense(&[1.0f64, 0.0], 2, &[1.0], -1.0).unwrap();
        assert_eq!(q.x.n_cols, 2);
        assert_eq!(q.x.indices, vec![0]);
    }

    #[test]
    fn dense_shape_mismatch_is_an_error() {
        assert!(Problem::from_dense(&[1.0f32, 2.0, 3.0], 2, &[1.0], -1.0).is_err());
    }
}
