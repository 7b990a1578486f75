//! NumPy `.npy` arrays of float32, in and out: how tensors pass between convnet and
//! Python (`numpy.load`, `numpy.save`).

use crate::{Error, Result};
use convnet::Tensor;
use npyz::WriterBuilder;
use std::path::Path;

/// Reads a float32 array of any rank from `path` (C or Fortran order).
pub fn read(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, e.to_string()))?;
    parse(&bytes).map_err(|m| Error::file(path, m))
}

/// [`read`] from memory.
pub fn parse(bytes: &[u8]) -> std::result::Result<Tensor, String> {
    let file = npyz::NpyFile::new(bytes).map_err(|e| format!("not a NumPy .npy array: {e}"))?;
    let fortran = file.order() == npyz::Order::Fortran;
    let shape: Vec<usize> = file
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d} is too large")))
        .collect::<std::result::Result<_, _>>()?;
    let len = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n.saturating_mul(4) <= bytes.len())
        .ok_or_else(|| format!("shape {shape:?} needs more data than the file holds"))?;
    let dtype = file.dtype();
    let reader = file.data::<f32>().map_err(|_| {
        format!(
            "the array's type is {}, not float32 (use x.astype(numpy.float32))",
            dtype.descr()
        )
    })?;
    let data: Vec<f32> = reader
        .collect::<std::io::Result<_>>()
        .map_err(|e| format!("the data is cut short: {e}"))?;
    if data.len() != len {
        return Err(format!(
            "shape {shape:?} needs {len} values, the file holds {}",
            data.len()
        ));
    }
    let data = if fortran {
        to_row_major(&data, &shape)
    } else {
        data
    };
    Tensor::from_vec(&shape, data).map_err(|e| e.to_string())
}

/// Column-major (Fortran-ordered) values of `shape` in row-major order.
fn to_row_major(data: &[f32], shape: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; shape.len()];
    for _ in 0..data.len() {
        let mut at = 0;
        for k in (0..shape.len()).rev() {
            at = at * shape[k] + index[k];
        }
        out.push(data[at]);
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

/// Writes `t` as a C-ordered float32 array of its shape (atomically).
pub fn write(path: &Path, t: &Tensor) -> Result<()> {
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    convnet::atomic::write_with(path, |w| {
        let io = |e: std::io::Error| convnet::Error::io(path, e);
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(w)
            .begin_nd()
            .map_err(io)?;
        writer.extend(t.data().iter().copied()).map_err(io)?;
        writer.finish().map_err(io)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_shape_and_bits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let v: Vec<f32> = (0..24).map(|i| i as f32 * 0.37 - 3.0).collect();
        let t = Tensor::from_vec(&[2, 3, 1, 4], v).unwrap();
        write(&p, &t).unwrap();
        let back = read(&p).unwrap();
        assert_eq!(back.shape(), t.shape());
        assert_eq!(back.data(), t.data());
    }

    #[test]
    fn fortran_order_is_read_row_major() {
        // numpy.asfortranarray(numpy.arange(6, dtype=numpy.float32).reshape(2, 3)).
        let mut bytes =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"
                .to_vec();
        while bytes.len() < 127 {
            bytes.push(b' ');
        }
        bytes.push(b'\n');
        for v in [0f32, 3.0, 1.0, 4.0, 2.0, 5.0] {
            bytes.extend(v.to_le_bytes());
        }
        let t = parse(&bytes).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.data(), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn bad_arrays_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let t = Tensor::from_vec(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        write(&p, &t).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let e = parse(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(e.contains("short") || e.contains("more data"), "{e}");
        assert!(parse(b"not numpy at all")
            .unwrap_err()
            .contains("not a NumPy"));
        // A float64 header over the same bytes.
        let mut f8 = bytes.clone();
        let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
        f8[at + 2] = b'8';
        let e = parse(&f8).unwrap_err();
        assert!(e.contains("float32") || e.contains("more data"), "{e}");
    }
}
