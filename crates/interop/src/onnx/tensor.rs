//! ONNX tensors (initializers and constants) to plain arrays and back, with weights
//! inline or in external data files next to the model.

use super::proto::{data_type, TensorProto, EXTERNAL};
use crate::build::Msg;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

/// A constant of the graph: its shape and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub dims: Vec<usize>,
    pub data: Data,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Const {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// The values as f32, or an error for integer data.
    pub fn floats(&self, what: &str) -> Result<&[f32], Msg> {
        match &self.data {
            Data::F32(v) => Ok(v),
            Data::I64(_) => Err(format!("{what} must be floating point, not integers")),
        }
    }

    /// The values as integers (floats are refused).
    pub fn ints(&self, what: &str) -> Result<&[i64], Msg> {
        match &self.data {
            Data::I64(v) => Ok(v),
            Data::F32(_) => Err(format!("{what} must be integers")),
        }
    }
}

/// The most values one tensor may have (4 G f32 = 16 GB).
const MAX_LEN: usize = 1 << 32;

/// Reads tensor `t`; `dir` is the model's folder, against which external data files
/// are resolved (a path leaving that folder is refused).
pub fn read(t: &TensorProto, dir: &Path) -> Result<Const, Msg> {
    let what = format!("tensor '{}'", t.name);
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        dims.push(usize::try_from(d).map_err(|_| format!("{what} has a negative size {d}"))?);
    }
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_LEN)
        .ok_or_else(|| format!("{what} of shape {dims:?} is too large"))?;
    let size = match t.data_type {
        data_type::FLOAT | data_type::INT32 => 4,
        data_type::INT64 | data_type::DOUBLE => 8,
        other => {
            return Err(format!(
                "{what} has data type {other}; only float, double, int32 and int64 are read"
            ))
        }
    };
    let external;
    let raw: Option<&[u8]> = if t.data_location == EXTERNAL {
        external = read_external(t, dir, count * size)?;
        Some(&external)
    } else if !t.raw_data.is_empty() || count == 0 {
        Some(&t.raw_data)
    } else {
        None
    };
    if let Some(raw) = raw {
        if raw.len() != count * size {
            return Err(format!(
                "{what} of shape {dims:?} needs {} bytes, {} are given",
                count * size,
                raw.len()
            ));
        }
        let data = match t.data_type {
            data_type::FLOAT => Data::F32(
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            data_type::DOUBLE => Data::F32(
                raw.chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                    .collect(),
            ),
            data_type::INT32 => Data::I64(
                raw.chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                    .collect(),
            ),
            _ => Data::I64(
                raw.chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .collect(),
            ),
        };
        return Ok(Const { dims, data });
    }
    let (data, given) = match t.data_type {
        data_type::FLOAT => (Data::F32(t.float_data.clone()), t.float_data.len()),
        data_type::DOUBLE => (
            Data::F32(t.double_data.iter().map(|&v| v as f32).collect()),
            t.double_data.len(),
        ),
        data_type::INT32 => (
            Data::I64(t.int32_data.iter().map(|&v| v as i64).collect()),
            t.int32_data.len(),
        ),
        _ => (Data::I64(t.int64_data.clone()), t.int64_data.len()),
    };
    if given != count {
        return Err(format!(
            "{what} of shape {dims:?} needs {count} values, {given} are given"
        ));
    }
    Ok(Const { dims, data })
}

/// The bytes of an externally stored tensor: `location` relative to `dir`, from
/// `offset`, `len` bytes (`length`, when given, must agree).
fn read_external(t: &TensorProto, dir: &Path, len: usize) -> Result<Vec<u8>, Msg> {
    let what = format!("tensor '{}'", t.name);
    let get = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == k)
            .map(|e| &e.value)
    };
    let location =
        get("location").ok_or_else(|| format!("{what} is external but names no file"))?;
    let number = |k: &str| -> Result<Option<u64>, Msg> {
        get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{what}: external data '{k}' is '{v}', not a number"))
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    if let Some(l) = number("length")?.filter(|&l| l != len as u64) {
        return Err(format!(
            "{what}: external data length {l} but the shape needs {len} bytes"
        ));
    }
    let rel = Path::new(location);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!(
            "{what}: external data file '{location}' must be a path inside the model's folder"
        ));
    }
    let path = dir.join(rel);
    let inside = match (path.canonicalize(), dir.canonicalize()) {
        (Ok(p), Ok(d)) => p.starts_with(d),
        _ => true,
    };
    if !inside {
        return Err(format!(
            "{what}: external data file '{location}' leads outside the model's folder"
        ));
    }
    let fail = |e: std::io::Error| format!("{what}: external data '{}': {e}", path.display());
    let mut f = std::fs::File::open(&path).map_err(fail)?;
    let size = f.metadata().map_err(fail)?.len();
    if offset.checked_add(len as u64).is_none_or(|end| end > size) {
        return Err(format!(
            "{what}: external data '{}' has {size} bytes, fewer than offset {offset} + {len}",
            path.display()
        ));
    }
    f.seek(SeekFrom::Start(offset)).map_err(fail)?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).map_err(fail)?;
    Ok(buf)
}

/// An f32 initializer of `dims` (little-endian raw data, as ONNX's writers store it).
pub fn float_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: data_type::FLOAT,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}

/// An int64 initializer (shapes, slice bounds).
pub fn int_tensor(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: vec![values.len() as i64],
        data_type: data_type::INT64,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}
