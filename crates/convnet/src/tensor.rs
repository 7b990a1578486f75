//! Dense f32 tensors: row-major, contiguous; images are NCHW.

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
    version: Version,
}

/// Which state of its values a tensor holds: a number drawn afresh whenever a
/// tensor is made or lent out mutably, and kept by a clone (which holds the same
/// values). A kernel that keeps something derived from a tensor (a convolution's
/// packed filters) knows by it that the tensor has not changed since. It takes no
/// part in comparisons.
#[derive(Clone, Copy)]
struct Version(u64);

impl Version {
    fn fresh() -> Version {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Version(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

impl Default for Version {
    fn default() -> Self {
        Version::fresh()
    }
}

impl PartialEq for Version {
    fn eq(&self, _: &Version) -> bool {
        true
    }
}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// The four sizes of an NCHW tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims4 {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims4 {
    pub fn new(n: usize, c: usize, h: usize, w: usize) -> Self {
        Dims4 { n, c, h, w }
    }
    pub fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Elements of one image (C*H*W).
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Elements of one feature map (H*W).
    pub fn plane(&self) -> usize {
        self.h * self.w
    }
    pub fn to_vec(self) -> Vec<usize> {
        vec![self.n, self.c, self.h, self.w]
    }
}

impl std::fmt::Display for Dims4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}x{}", self.n, self.c, self.h, self.w)
    }
}

fn count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Shape(format!("shape {shape:?} is too large")))
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Result<Self> {
        Ok(Tensor {
            data: vec![0.0; count(shape)?],
            shape: shape.to_vec(),
            version: Version::fresh(),
        })
    }

    /// A tensor filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Result<Self> {
        Ok(Tensor {
            data: vec![value; count(shape)?],
            shape: shape.to_vec(),
            version: Version::fresh(),
        })
    }

    /// Wraps `data`; fails when its length is not the product of `shape`.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let n = count(shape)?;
        if n != data.len() {
            return Err(Error::Shape(format!(
                "shape {} holds {n} elements but {} were given",
                fmt_shape(shape),
                data.len()
            )));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
            version: Version::fresh(),
        })
    }

    /// A zero NCHW tensor.
    pub fn zeros4(d: Dims4) -> Self {
        Tensor {
            data: vec![0.0; d.len()],
            shape: d.to_vec(),
            version: Version::fresh(),
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.version = Version::fresh();
        &mut self.data
    }
    /// The state of the values (see [`Version`]): equal versions, equal values.
    pub fn version(&self) -> u64 {
        self.version.0
    }
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// The NCHW sizes; a tensor of rank below 4 is read with trailing ones
    /// (a (N, C) tensor is N x C x 1 x 1), as MatConvNet does.
    pub fn dims4(&self) -> Result<Dims4> {
        dims4_of(&self.shape)
    }

    /// The same data under another shape with the same number of elements.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        let n = count(shape)?;
        if n != self.data.len() {
            return Err(Error::Shape(format!(
                "cannot reshape {} ({} elements) to {}",
                fmt_shape(&self.shape),
                self.data.len(),
                fmt_shape(shape)
            )));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// The element at an NCHW index; panics out of range (for tests and small tools).
    pub fn at4(&self, n: usize, c: usize, h: usize, w: usize) -> f32 {
        let d = self.dims4().expect("rank <= 4");
        self.data[((n * d.c + c) * d.h + h) * d.w + w]
    }

    /// Fails, naming `block` and `what`, unless the shape is `expected`.
    pub fn expect_shape(&self, block: &'static str, what: &str, expected: &[usize]) -> Result<()> {
        if self.shape != expected {
            return Err(Error::block(
                block,
                format!(
                    "{what} has shape {} but {} was expected",
                    fmt_shape(&self.shape),
                    fmt_shape(expected)
                ),
            ));
        }
        Ok(())
    }

    /// Sum of the products of the elements (a dot product over all elements).
    pub fn dot(&self, other: &Tensor) -> f64 {
        self.data
            .iter()
            .zip(&other.data)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    }

    pub fn sum(&self) -> f64 {
        self.data.iter().map(|&v| v as f64).sum()
    }

    pub fn max_abs(&self) -> f32 {
        self.data.iter().fold(0.0f32, |m, v| m.max(v.abs()))
    }

    pub fn all_finite(&self) -> bool {
        // by the exponent bits, a block at a time: an early exit per value keeps
        // the loop scalar, and the trainer checks every weight and gradient
        const EXP: u32 = 0x7f80_0000;
        self.data.chunks(1024).all(|c| {
            c.iter()
                .fold(0u32, |bad, v| bad | u32::from(v.to_bits() & EXP == EXP))
                == 0
        })
    }

    /// `self += alpha * other`, elementwise; shapes must match.
    pub fn axpy(&mut self, alpha: f32, other: &Tensor) -> Result<()> {
        if self.shape != other.shape {
            return Err(Error::Shape(format!(
                "cannot add {} to {}",
                fmt_shape(&other.shape),
                fmt_shape(&self.shape)
            )));
        }
        for (a, &b) in self.data_mut().iter_mut().zip(&other.data) {
            *a += alpha * b;
        }
        Ok(())
    }

    pub fn scale(&mut self, alpha: f32) {
        for a in self.data_mut() {
            *a *= alpha;
        }
    }

    /// Images `start..start+count` of an NCHW tensor, as a new tensor.
    pub fn slice_batch(&self, start: usize, count: usize) -> Result<Tensor> {
        let d = self.dims4()?;
        if start + count > d.n {
            return Err(Error::Shape(format!(
                "images {start}..{} asked of a batch of {}",
                start + count,
                d.n
            )));
        }
        let m = d.image_len();
        let mut shape = self.shape.clone();
        shape[0] = count;
        Tensor::from_vec(&shape, self.data[start * m..(start + count) * m].to_vec())
    }
}

/// "2x3x4x5" for error messages.
/// [`Tensor::dims4`] of a shape alone (also for tensors kept elsewhere, on a GPU).
pub fn dims4_of(s: &[usize]) -> Result<Dims4> {
    match s.len() {
        1 => Ok(Dims4::new(s[0], 1, 1, 1)),
        2 => Ok(Dims4::new(s[0], s[1], 1, 1)),
        3 => Ok(Dims4::new(s[0], s[1], s[2], 1)),
        4 => Ok(Dims4::new(s[0], s[1], s[2], s[3])),
        _ => Err(Error::Shape(format!(
            "expected an NCHW tensor of rank 1 to 4, got shape {}",
            fmt_shape(s)
        ))),
    }
}

pub fn fmt_shape(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "scalar".into();
    }
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_changes_with_the_values_only() {
        let mut t = Tensor::zeros(&[2, 3]).unwrap();
        let same = Tensor::zeros(&[2, 3]).unwrap();
        assert_ne!(t.version(), same.version(), "two tensors, two versions");
        assert_eq!(t, same, "the version takes no part in comparisons");
        let v0 = t.version();
        let _ = (t.data(), t.sum(), t.dims4());
        assert_eq!(t.version(), v0, "reading keeps it");
        assert_eq!(t.clone().version(), v0, "a clone holds the same values");
        let mut seen = vec![v0];
        t.data_mut()[0] = 1.0;
        seen.push(t.version());
        t.axpy(2.0, &same).unwrap();
        seen.push(t.version());
        t.scale(0.5);
        seen.push(t.version());
        let t = t.reshape(&[3, 2]).unwrap();
        assert_eq!(t.version(), seen[3], "a reshape keeps the values");
        seen.dedup();
        assert_eq!(seen.len(), 4, "each change draws a new version: {seen:?}");
    }

    #[test]
    fn from_vec_checks_length() {
        let e = Tensor::from_vec(&[2, 3], vec![0.0; 5]).unwrap_err();
        assert!(e.to_string().contains("2x3 holds 6 elements but 5"), "{e}");
        assert!(Tensor::from_vec(&[2, 3], vec![0.0; 6]).is_ok());
    }

    #[test]
    fn dims4_pads_rank_and_rejects_rank_5() {
        let t = Tensor::zeros(&[2, 3]).unwrap();
        assert_eq!(t.dims4().unwrap(), Dims4::new(2, 3, 1, 1));
        assert!(Tensor::zeros(&[1, 1, 1, 1, 1]).unwrap().dims4().is_err());
    }

    #[test]
    fn reshape_and_slice() {
        let t = Tensor::from_vec(&[2, 1, 1, 3], (0..6).map(|v| v as f32).collect()).unwrap();
        let s = t.slice_batch(1, 1).unwrap();
        assert_eq!(s.data(), &[3.0, 4.0, 5.0]);
        assert!(t.clone().reshape(&[3, 3]).is_err());
        assert_eq!(t.reshape(&[6]).unwrap().shape(), &[6]);
    }

    #[test]
    fn at4_indexes_nchw() {
        let t = Tensor::from_vec(&[2, 2, 2, 2], (0..16).map(|v| v as f32).collect()).unwrap();
        assert_eq!(t.at4(1, 0, 1, 0), 10.0);
    }
}
