//! The libsvm text format: one example per line, `label index:value ...`, with 1-based,
//! strictly ascending indices. Zero values may be left out.

use crate::error::{Error, Result};
use crate::sparse::Csr;
use std::io::Write;
use std::path::Path;

/// Examples read from a libsvm file: rows without any bias column, and their labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Data {
    pub x: Csr,
    pub y: Vec<f64>,
}

/// Reads a libsvm file; errors name the file, line and column.
pub fn read(path: impl AsRef<Path>) -> Result<Data> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(&text, &path.display().to_string())
}

/// Parses libsvm text; `file` only names the source in errors.
pub fn parse(text: &str, file: &str) -> Result<Data> {
    let mut data = Data {
        x: Csr {
            indptr: vec![0],
            ..Csr::default()
        },
        y: Vec::new(),
    };
    let mut max_index = 0usize;
    for (line_no, line) in text.lines().enumerate() {
        let fail = |column: usize, reason: String| Error::Format {
            file: file.to_string(),
            line: line_no + 1,
            column,
            reason,
        };
        let mut tokens = tokens(line);
        let (col, label) = tokens
            .next()
            .ok_or_else(|| fail(1, "empty line (a label is required)".into()))?;
        data.y.push(
            parse_number(label)
                .ok_or_else(|| fail(col, format!("label '{label}' is not a finite number")))?,
        );
        let mut last = 0usize;
        for (col, token) in tokens {
            let (index, value) = parse_feature(token, last).map_err(|r| fail(col, r))?;
            last = index;
            max_index = max_index.max(index);
            data.x.indices.push(index as u32 - 1);
            data.x.values.push(value);
        }
        data.x.indptr.push(data.x.indices.len());
    }
    if data.y.is_empty() {
        return Err(Error::Format {
            file: file.to_string(),
            line: 1,
            column: 1,
            reason: "empty file (no examples)".into(),
        });
    }
    data.x.n_cols = max_index;
    Ok(data)
}

/// Whitespace-separated tokens with their 1-based columns.
fn tokens(line: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = line;
    let mut offset = 0;
    std::iter::from_fn(move || {
        let start = rest.find(|c: char| !c.is_whitespace())?;
        let len = rest[start..]
            .find(char::is_whitespace)
            .unwrap_or(rest.len() - start);
        let token = &rest[start..start + len];
        let column = offset + start + 1;
        offset += start + len;
        rest = &rest[start + len..];
        Some((column, token))
    })
}

fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// One `index:value` pair; the index must exceed the previous one on the line.
fn parse_feature(token: &str, last: usize) -> std::result::Result<(usize, f64), String> {
    let (idx, val) = token
        .split_once(':')
        .ok_or_else(|| format!("'{token}' is not index:value (missing colon)"))?;
    let index = idx
        .parse::<usize>()
        .ok()
        .filter(|&i| i >= 1 && i <= u32::MAX as usize)
        .ok_or_else(|| format!("index '{idx}' is not an integer >= 1"))?;
    if index <= last {
        return Err(format!(
            "index {index} does not follow {last}: indices must be ascending"
        ));
    }
    let value = parse_number(val).ok_or_else(|| format!("value '{val}' is not a finite number"))?;
    Ok((index, value))
}

/// Writes examples in libsvm form (zeros left out), atomically.
pub fn write(path: impl AsRef<Path>, x: &Csr, y: &[f64]) -> Result<()> {
    let mut out = String::new();
    format_rows(&mut out, x, y);
    write_atomic(path.as_ref(), out.as_bytes())
}

fn format_rows(out: &mut String, x: &Csr, y: &[f64]) {
    use std::fmt::Write as _;
    for (i, label) in y.iter().enumerate().take(x.n_rows()) {
        let _ = write!(out, "{label}");
        let (idx, val) = x.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            if v != 0.0 {
                let _ = write!(out, " {}:{}", j + 1, v);
            }
        }
        out.push('\n');
    }
}

/// Writes to a temporary file in the same folder, then renames it over `path`, so that
/// a crash never leaves a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_at(text: &str) -> (usize, usize) {
        match parse(text, "f") {
            Err(Error::Format { line, column, .. }) => (line, column),
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn reads_rows_and_columns() {
        let d = parse("1 1:0.5 3:2\n-1\n2 2:-1e-3\n", "f").unwrap();
        assert_eq!(d.y, vec![1.0, -1.0, 2.0]);
        assert_eq!(d.x.indptr, vec![0, 2, 2, 3]);
        assert_eq!(d.x.indices, vec![0, 2, 1]);
        assert_eq!(d.x.values, vec![0.5, 2.0, -1e-3]);
        assert_eq!(d.x.n_cols, 3);
    }

    #[test]
    fn rejects_malformed_lines_with_position() {
        assert_eq!(err_at("1 1:1\n1 3:1 2:1\n"), (2, 7));
        assert_eq!(err_at("1 1:1 1:2\n"), (1, 7));
        assert_eq!(err_at("1 1:1\n1 2\n"), (2, 3));
        assert_eq!(err_at("1 1:x\n"), (1, 3));
        assert_eq!(err_at("a 1:1\n"), (1, 1));
        assert_eq!(err_at("1 0:1\n"), (1, 3));
        assert_eq!(err_at("1 -1:1\n"), (1, 3));
        assert_eq!(err_at("1 1:1\n\n1 2:1\n"), (2, 1));
        assert_eq!(err_at(""), (1, 1));
        assert_eq!(err_at("1 1:nan\n"), (1, 3));
    }

    #[test]
    fn write_then_read_round_trips() {
        let d = parse("1 1:0.5 3:2\n-1\n2.5 2:-1e-3 7:1e300\n", "f").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.txt");
        write(&p, &d.x, &d.y).unwrap();
        assert_eq!(read(&p).unwrap(), d);
    }
}
