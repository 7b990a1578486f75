//! A reader of MATLAB's MAT-file level 5 format (what `save -v6` and `save -v7`
//! write, compressed or not; MatConvNet's model zoo files are v7): numeric, logical,
//! char, cell and struct arrays, in memory, from untrusted bytes.
//!
//! Written here rather than taken from a crate because the MAT-file crate tried
//! (`matrw` 0.1.4) panics on malformed input: about one in three of a few thousand
//! mutated files (flipped bits, truncations) ended in a panic inside it, and model
//! files come from anywhere. Every size read from the file is checked against the
//! bytes that hold it, so a corrupt file is an error, never a panic or a huge
//! allocation; nesting is limited.

use crate::build::Msg;
use std::io::Read;

/// A MATLAB array, as far as networks need: numbers (real part, as f32: weights are
/// single, hyper-parameters small doubles), text, cells and structs.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Numeric and logical arrays, column-major.
    Num {
        dims: Vec<usize>,
        data: Vec<f32>,
    },
    Char {
        dims: Vec<usize>,
        text: String,
    },
    Cell {
        dims: Vec<usize>,
        items: Vec<Value>,
    },
    /// `items[element][field]`, elements column-major; objects saved as structs too.
    Struct {
        dims: Vec<usize>,
        fields: Vec<String>,
        items: Vec<Vec<Value>>,
    },
    /// A class this reader does not take apart (sparse, function handle, object).
    Other {
        class: u8,
    },
}

/// Whether `bytes` begin like a MAT-file (any version).
pub fn is_mat_file(bytes: &[u8]) -> bool {
    bytes.starts_with(b"MATLAB 5.0 MAT-file") || bytes.starts_with(b"MATLAB 7.3 MAT-file")
}

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

const CELL: u8 = 1;
const STRUCT: u8 = 2;
const OBJECT: u8 = 3;
const CHAR: u8 = 4;

/// Deepest nesting of cells and structs read (MatConvNet's files need 4 or 5).
const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy)]
struct Endian {
    little: bool,
}

impl Endian {
    fn u32(&self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    }
}

/// One data element: its type and its bytes.
struct Element<'a> {
    ty: u32,
    data: &'a [u8],
}

/// Reads the element at `*pos` of `buf` and moves `*pos` past it (and its padding to
/// 8 bytes, except after a compressed element).
fn element<'a>(buf: &'a [u8], pos: &mut usize, e: Endian) -> Result<Element<'a>, Msg> {
    let at = *pos;
    let head = buf
        .get(at..at + 8)
        .ok_or_else(|| format!("a data element at byte {at} is cut short"))?;
    let w = e.u32(head);
    if w >> 16 != 0 {
        // Small data element: size and type in one word, up to 4 bytes of data.
        let (ty, n) = (w & 0xffff, (w >> 16) as usize);
        if n > 4 {
            return Err(format!(
                "a small data element at byte {at} claims {n} bytes"
            ));
        }
        *pos = at + 8;
        return Ok(Element {
            ty,
            data: &head[4..4 + n],
        });
    }
    let n = e.u32(&head[4..]) as usize;
    let data = buf
        .get(at + 8..at + 8 + n)
        .ok_or_else(|| format!("a data element at byte {at} claims {n} bytes, past the end"))?;
    *pos = if w == MI_COMPRESSED {
        at + 8 + n
    } else {
        at + 8 + n.div_ceil(8) * 8
    };
    Ok(Element { ty: w, data })
}

/// The variables of a MAT-file (level 5), by name, in file order.
pub fn parse(bytes: &[u8]) -> Result<Vec<(String, Value)>, Msg> {
    if bytes.starts_with(b"MATLAB 7.3 MAT-file") {
        return Err("a MAT-file 7.3 (HDF5) is not supported; save it with -v7".into());
    }
    if !bytes.starts_with(b"MATLAB 5.0 MAT-file") || bytes.len() < 128 {
        return Err("not a MAT-file (no 'MATLAB 5.0 MAT-file' header)".into());
    }
    let e = match &bytes[126..128] {
        b"IM" => Endian { little: true },
        b"MI" => Endian { little: false },
        other => {
            return Err(format!(
                "the MAT-file's byte-order mark {other:?} is neither IM nor MI"
            ))
        }
    };
    let mut vars = Vec::new();
    let mut pos = 128;
    while pos < bytes.len() {
        let el = element(bytes, &mut pos, e)?;
        match el.ty {
            MI_COMPRESSED => {
                let inner = inflate(el.data, e)?;
                let mut p = 0;
                while p < inner.len() {
                    let m = element(&inner, &mut p, e)?;
                    vars.push(variable(&m, e)?);
                }
            }
            _ => vars.push(variable(&el, e)?),
        }
    }
    Ok(vars)
}

/// Decompresses a compressed element, reading no more than its inner element declares.
fn inflate(data: &[u8], e: Endian) -> Result<Vec<u8>, Msg> {
    let mut z = flate2::read::ZlibDecoder::new(data);
    let mut head = [0u8; 8];
    z.read_exact(&mut head)
        .map_err(|err| format!("compressed data cannot be read: {err}"))?;
    let n = e.u32(&head[4..]) as u64;
    let mut out = head.to_vec();
    z.take(n)
        .read_to_end(&mut out)
        .map_err(|err| format!("compressed data cannot be read: {err}"))?;
    if (out.len() as u64) < n + 8 {
        return Err("compressed data ends before the array it holds".into());
    }
    Ok(out)
}

fn variable(el: &Element, e: Endian) -> Result<(String, Value), Msg> {
    if el.ty != MI_MATRIX {
        return Err(format!(
            "a top-level element of type {} is not an array",
            el.ty
        ));
    }
    matrix(el.data, e, 0)
}

/// Numbers of element `el` (any numeric storage type) as f32.
fn numbers(el: &Element, e: Endian) -> Result<Vec<f32>, Msg> {
    let d = el.data;
    let le = e.little;
    let conv = |size: usize, f: &dyn Fn(&[u8]) -> f32| -> Vec<f32> {
        d.chunks_exact(size).map(f).collect()
    };
    let pick2 = |b: &[u8]| if le { [b[0], b[1]] } else { [b[1], b[0]] };
    let pick4 = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            a
        } else {
            [a[3], a[2], a[1], a[0]]
        }
    };
    let pick8 = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        if !le {
            a.reverse();
        }
        a
    };
    let size = match el.ty {
        MI_INT8 | MI_UINT8 => 1,
        MI_INT16 | MI_UINT16 => 2,
        MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
        MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
        t => return Err(format!("numeric data of element type {t} is not supported")),
    };
    if !d.len().is_multiple_of(size) {
        return Err(format!(
            "{} bytes of element type {} are not whole values",
            d.len(),
            el.ty
        ));
    }
    Ok(match el.ty {
        MI_INT8 => conv(1, &|b| b[0] as i8 as f32),
        MI_UINT8 => conv(1, &|b| b[0] as f32),
        MI_INT16 => conv(2, &|b| i16::from_le_bytes(pick2(b)) as f32),
        MI_UINT16 => conv(2, &|b| u16::from_le_bytes(pick2(b)) as f32),
        MI_INT32 => conv(4, &|b| i32::from_le_bytes(pick4(b)) as f32),
        MI_UINT32 => conv(4, &|b| u32::from_le_bytes(pick4(b)) as f32),
        MI_SINGLE => conv(4, &|b| f32::from_le_bytes(pick4(b))),
        MI_DOUBLE => conv(8, &|b| f64::from_le_bytes(pick8(b)) as f32),
        MI_INT64 => conv(8, &|b| i64::from_le_bytes(pick8(b)) as f32),
        _ => conv(8, &|b| u64::from_le_bytes(pick8(b)) as f32),
    })
}

/// The text of a char array's data element.
fn text(el: &Element, e: Endian) -> Result<String, Msg> {
    Ok(match el.ty {
        MI_UTF8 | MI_UINT8 | MI_INT8 => String::from_utf8_lossy(el.data).into_owned(),
        MI_UINT16 | MI_UTF16 => {
            let units: Vec<u16> = numbers(
                &Element {
                    ty: MI_UINT16,
                    data: el.data,
                },
                e,
            )?
            .into_iter()
            .map(|v| v as u16)
            .collect();
            String::from_utf16_lossy(&units)
        }
        MI_UTF32 => numbers(
            &Element {
                ty: MI_UINT32,
                data: el.data,
            },
            e,
        )?
        .into_iter()
        .map(|v| char::from_u32(v as u32).unwrap_or('\u{fffd}'))
        .collect(),
        t => return Err(format!("text of element type {t} is not supported")),
    })
}

/// Reads the contents of an miMATRIX element: the array's name and value.
fn matrix(buf: &[u8], e: Endian, depth: usize) -> Result<(String, Value), Msg> {
    if depth > MAX_DEPTH {
        return Err(format!("arrays nested deeper than {MAX_DEPTH} levels"));
    }
    if buf.is_empty() {
        // An empty element stands for [] inside cells and structs.
        return Ok((
            String::new(),
            Value::Num {
                dims: vec![0, 0],
                data: vec![],
            },
        ));
    }
    let mut pos = 0;
    let flags = element(buf, &mut pos, e)?;
    if flags.ty != MI_UINT32 || flags.data.len() != 8 {
        return Err("an array's flags are malformed".into());
    }
    let f = e.u32(flags.data);
    let class = (f & 0xff) as u8;
    let complex = f & 0x0800 != 0;
    let dims_el = element(buf, &mut pos, e)?;
    if dims_el.ty != MI_INT32 {
        return Err("an array's dimensions are malformed".into());
    }
    let dims: Vec<usize> = numbers(&dims_el, e)?
        .into_iter()
        .map(|v| {
            if v >= 0.0 {
                Ok(v as usize)
            } else {
                Err(format!("negative dimension {v}"))
            }
        })
        .collect::<Result<_, _>>()?;
    let name_el = element(buf, &mut pos, e)?;
    let name = String::from_utf8_lossy(name_el.data)
        .trim_end_matches('\0')
        .to_string();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("array '{name}' of dimensions {dims:?} is too large"))?;
    // Every element of a cell or struct takes at least 8 bytes.
    let room = |per: usize| -> Result<(), Msg> {
        if count.saturating_mul(per).saturating_mul(8) > buf.len() {
            return Err(format!(
                "array '{name}' of dimensions {dims:?} is larger than its data"
            ));
        }
        Ok(())
    };
    let value = match class {
        CELL => {
            room(1)?;
            let mut items = Vec::new();
            for _ in 0..count {
                items.push(sub_matrix(buf, &mut pos, e, depth)?);
            }
            Value::Cell { dims, items }
        }
        STRUCT | OBJECT => {
            if class == OBJECT {
                element(buf, &mut pos, e)?;
            }
            let len_el = element(buf, &mut pos, e)?;
            let len = numbers(&len_el, e)?.first().copied().unwrap_or(0.0) as usize;
            let names_el = element(buf, &mut pos, e)?;
            if len == 0 || names_el.data.len() % len != 0 {
                return Err(format!("struct '{name}' has malformed field names"));
            }
            let fields: Vec<String> = names_el
                .data
                .chunks(len)
                .map(|c| {
                    String::from_utf8_lossy(c)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .collect();
            room(fields.len())?;
            let mut items = Vec::new();
            for _ in 0..count {
                let mut elem = Vec::with_capacity(fields.len());
                for _ in &fields {
                    elem.push(sub_matrix(buf, &mut pos, e, depth)?);
                }
                items.push(elem);
            }
            Value::Struct {
                dims,
                fields,
                items,
            }
        }
        CHAR => {
            let text = if count == 0 {
                String::new()
            } else {
                text(&element(buf, &mut pos, e)?, e)?
            };
            if text.chars().count() != count {
                return Err(format!(
                    "text '{name}' of dimensions {dims:?} holds {} characters",
                    text.chars().count()
                ));
            }
            let text = column_major_rows(&text, &dims);
            Value::Char { dims, text }
        }
        6..=15 => {
            if complex {
                return Err(format!("array '{name}' is complex"));
            }
            let data = if count == 0 {
                Vec::new()
            } else {
                numbers(&element(buf, &mut pos, e)?, e)?
            };
            if data.len() != count {
                return Err(format!(
                    "array '{name}' of dimensions {dims:?} holds {} values",
                    data.len()
                ));
            }
            Value::Num { dims, data }
        }
        _ => Value::Other { class },
    };
    Ok((name, value))
}

/// The next miMATRIX element of a cell or struct.
fn sub_matrix(buf: &[u8], pos: &mut usize, e: Endian, depth: usize) -> Result<Value, Msg> {
    let el = element(buf, pos, e)?;
    if el.ty != MI_MATRIX {
        return Err(format!(
            "an element of type {} inside a cell or struct is not an array",
            el.ty
        ));
    }
    Ok(matrix(el.data, e, depth + 1)?.1)
}

/// A char array stored column-major as text, rows joined by newlines (one row: as is).
fn column_major_rows(text: &str, dims: &[usize]) -> String {
    let rows = dims.first().copied().unwrap_or(1);
    if rows <= 1 {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let cols = chars.len() / rows;
    (0..rows)
        .map(|r| {
            (0..cols)
                .map(|c| chars[c * rows + r])
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Value {
    /// A field of a 1x1 struct.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct { fields, items, .. } if items.len() == 1 => {
                fields.iter().position(|f| f == name).map(|k| &items[0][k])
            }
            _ => None,
        }
    }

    /// The elements of a struct array as 1x1 structs, or the items of a cell.
    pub fn elements(&self) -> Vec<Value> {
        match self {
            Value::Struct { fields, items, .. } => items
                .iter()
                .map(|it| Value::Struct {
                    dims: vec![1, 1],
                    fields: fields.clone(),
                    items: vec![it.clone()],
                })
                .collect(),
            Value::Cell { items, .. } => items.clone(),
            _ => Vec::new(),
        }
    }

    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Char { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn numbers(&self) -> Option<&[f32]> {
        match self {
            Value::Num { data, .. } => Some(data),
            _ => None,
        }
    }

    pub fn dims(&self) -> &[usize] {
        match self {
            Value::Num { dims, .. }
            | Value::Char { dims, .. }
            | Value::Cell { dims, .. }
            | Value::Struct { dims, .. } => dims,
            Value::Other { .. } => &[],
        }
    }

    /// Whether this is an empty array (`[]`, `''`, `{}`).
    pub fn is_empty(&self) -> bool {
        self.dims().contains(&0)
    }

    /// What kind of array this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Num { .. } => "a numeric array",
            Value::Char { .. } => "text",
            Value::Cell { .. } => "a cell array",
            Value::Struct { .. } => "a struct",
            Value::Other { .. } => "an array of an unsupported class",
        }
    }
}
