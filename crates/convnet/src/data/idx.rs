//! MNIST's IDX format: a big-endian header (two zero bytes, a type byte, the number of
//! dimensions, then one u32 per dimension) followed by the data. Files may be gzipped;
//! gzip is recognised by its magic bytes, whatever the file is called.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::dataset::Dataset;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

const TYPE_U8: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Unsigned-byte images from an idx3 file: `n` images of `h` x `w`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxImages {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub pixels: Vec<u8>,
}

/// The file's bytes, gunzipped when they start with gzip's magic.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decompress(raw, &path.display().to_string())
}

/// `raw` gunzipped when it starts with gzip's magic, else as it is; `name` is used in
/// errors.
pub fn decompress(raw: Vec<u8>, name: &str) -> Result<Vec<u8>> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    GzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| Error::file(name, None, format!("bad gzip data: {e}")))?;
    Ok(out)
}

/// Checks the header for unsigned bytes with `rank` dimensions; returns the dimensions
/// and the data after the header, whose length must match them exactly.
fn parse_u8<'a>(bytes: &'a [u8], rank: usize, name: &str) -> Result<(Vec<usize>, &'a [u8])> {
    let err = |msg: String| Error::file(name, None, msg);
    let magic = bytes.get(..4).ok_or_else(|| {
        err(format!(
            "{} bytes is too short for an IDX header",
            bytes.len()
        ))
    })?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(err(format!(
            "bad magic {:02x}{:02x}{:02x}{:02x}: not an IDX file (want 0000{TYPE_U8:02x}{rank:02x})",
            magic[0], magic[1], magic[2], magic[3]
        )));
    }
    if magic[2] != TYPE_U8 {
        return Err(err(format!(
            "IDX data type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            magic[2]
        )));
    }
    if magic[3] as usize != rank {
        return Err(err(format!(
            "IDX file has {} dimensions but {rank} were expected ({})",
            magic[3],
            if rank == 3 { "images" } else { "labels" }
        )));
    }
    let header = 4 + 4 * rank;
    let dims_bytes = bytes.get(4..header).ok_or_else(|| {
        err(format!(
            "truncated header: {} bytes, {header} needed for {rank} dimensions",
            bytes.len()
        ))
    })?;
    let dims: Vec<usize> = dims_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let want = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(format!("dimensions {dims:?} are too large")))?;
    let data = &bytes[header..];
    if data.len() < want {
        return Err(err(format!(
            "truncated data: dimensions {dims:?} need {want} bytes but only {} follow the header",
            data.len()
        )));
    }
    if data.len() > want {
        return Err(err(format!(
            "dimensions {dims:?} need {want} bytes but {} follow the header",
            data.len()
        )));
    }
    Ok((dims, data))
}

/// Parses (already gunzipped) idx3 image bytes; `name` is used in errors.
pub fn parse_images(bytes: &[u8], name: &str) -> Result<IdxImages> {
    let (dims, data) = parse_u8(bytes, 3, name)?;
    Ok(IdxImages {
        n: dims[0],
        h: dims[1],
        w: dims[2],
        pixels: data.to_vec(),
    })
}

/// Parses (already gunzipped) idx1 label bytes; `name` is used in errors.
pub fn parse_labels(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    Ok(parse_u8(bytes, 1, name)?.1.to_vec())
}

pub fn read_images(path: &Path) -> Result<IdxImages> {
    parse_images(&read_bytes(path)?, &path.display().to_string())
}

pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    parse_labels(&read_bytes(path)?, &path.display().to_string())
}

/// A data set from images and labels: (N, 1, H, W) pixels as 0..255 f32, classes "0".."9"
/// (or up to the largest label, if that is above 9). `labels_name` is used in errors.
pub fn to_dataset(images: IdxImages, labels: &[u8], labels_name: &str) -> Result<Dataset> {
    if labels.len() != images.n {
        return Err(Error::file(
            labels_name,
            None,
            format!(
                "{} labels but the images file holds {} images",
                labels.len(),
                images.n
            ),
        ));
    }
    let n_classes = labels
        .iter()
        .map(|&l| l as usize + 1)
        .max()
        .unwrap_or(0)
        .max(10);
    let pixels = images.pixels.iter().map(|&p| p as f32).collect();
    let tensor = Tensor::from_vec(&[images.n, 1, images.h, images.w], pixels)?;
    Dataset::new(
        tensor,
        labels.iter().map(|&l| l as usize).collect(),
        (0..n_classes).map(|c| c.to_string()).collect(),
    )
}

/// A data set from an images file and a labels file (each gzipped or not).
pub fn load_pair(images: &Path, labels: &Path) -> Result<Dataset> {
    let im = read_images(images)?;
    let lb = read_labels(labels)?;
    to_dataset(im, &lb, &labels.display().to_string())
}

/// Names `{split}-{kind}-idx{rank}-ubyte` are tried, with and without `.gz`; for "test",
/// MNIST's original "t10k" prefix too.
fn find(dir: &Path, split: &str, kind: &str, rank: u8) -> Option<PathBuf> {
    let prefixes: &[&str] = if split == "test" {
        &["test", "t10k"]
    } else {
        &[split]
    };
    prefixes.iter().find_map(|p| {
        ["", ".gz"]
            .iter()
            .map(|ext| dir.join(format!("{p}-{kind}-idx{rank}-ubyte{ext}")))
            .find(|path| path.is_file())
    })
}

/// Whether `dir` holds the images file of `split`.
pub fn has_split(dir: &Path, split: &str) -> bool {
    find(dir, split, "images", 3).is_some()
}

/// The split `split` ("train" or "test") of an MNIST-style folder:
/// `{split}-images-idx3-ubyte[.gz]` and `{split}-labels-idx1-ubyte[.gz]`.
pub fn load_split(dir: &Path, split: &str) -> Result<Dataset> {
    let missing = |kind: &str, rank: u8| {
        Error::file(
            dir,
            None,
            format!("no {split}-{kind}-idx{rank}-ubyte or {split}-{kind}-idx{rank}-ubyte.gz here"),
        )
    };
    let images = find(dir, split, "images", 3).ok_or_else(|| missing("images", 3))?;
    let labels = find(dir, split, "labels", 1).ok_or_else(|| missing("labels", 1))?;
    load_pair(&images, &labels)
}

fn header(rank: u8, dims: &[usize], what: &str) -> Result<Vec<u8>> {
    let mut out = vec![0, 0, TYPE_U8, rank];
    for &d in dims {
        let d = u32::try_from(d)
            .map_err(|_| Error::Invalid(format!("IDX: {what} dimension {d} exceeds u32")))?;
        out.extend_from_slice(&d.to_be_bytes());
    }
    Ok(out)
}

/// The bytes of an idx3 file holding `pixels` (n*h*w, row-major).
pub fn encode_images(h: usize, w: usize, pixels: &[u8]) -> Result<Vec<u8>> {
    let plane = h * w;
    if plane == 0 || !pixels.len().is_multiple_of(plane) {
        return Err(Error::Invalid(format!(
            "IDX: {} pixels are not a whole number of {h}x{w} images",
            pixels.len()
        )));
    }
    let mut out = header(3, &[pixels.len() / plane, h, w], "image")?;
    out.extend_from_slice(pixels);
    Ok(out)
}

/// The bytes of an idx1 file holding `labels`.
pub fn encode_labels(labels: &[u8]) -> Result<Vec<u8>> {
    let mut out = header(1, &[labels.len()], "label")?;
    out.extend_from_slice(labels);
    Ok(out)
}

/// Writes `bytes` to `path`, gzipped when `gzip`.
pub fn write_bytes(path: &Path, bytes: &[u8], gzip: bool) -> Result<()> {
    let io = |e| Error::io(path, e);
    if gzip {
        let file = std::fs::File::create(path).map_err(io)?;
        let mut enc = GzEncoder::new(file, flate2::Compression::default());
        enc.write_all(bytes).map_err(io)?;
        enc.finish().map_err(io)?;
        Ok(())
    } else {
        std::fs::write(path, bytes).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images_2x2x3() -> Vec<u8> {
        encode_images(2, 3, &[0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]).unwrap()
    }

    fn err_of(bytes: &[u8], rank: usize) -> String {
        let r = if rank == 3 {
            parse_images(bytes, "f.idx").map(|_| ())
        } else {
            parse_labels(bytes, "f.idx").map(|_| ())
        };
        let msg = r.unwrap_err().to_string();
        assert!(msg.starts_with("f.idx"), "error must name the file: {msg}");
        msg
    }

    #[test]
    fn idx_round_trip_plain_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        for (gz, ext) in [(false, ""), (true, ".gz")] {
            let im = dir.path().join(format!("train-images-idx3-ubyte{ext}"));
            let lb = dir.path().join(format!("train-labels-idx1-ubyte{ext}"));
            write_bytes(&im, &images_2x2x3(), gz).unwrap();
            write_bytes(&lb, &encode_labels(&[7, 3]).unwrap(), gz).unwrap();
            let ds = load_split(dir.path(), "train").unwrap();
            assert_eq!(ds.images.shape(), &[2, 1, 2, 3]);
            assert_eq!(ds.images.data()[5], 5.0);
            assert_eq!(ds.images.data()[11], 255.0);
            assert_eq!(ds.labels, vec![7, 3]);
            assert_eq!(ds.classes.len(), 10);
            std::fs::remove_file(&im).unwrap();
            std::fs::remove_file(&lb).unwrap();
        }
    }

    #[test]
    fn idx_gzip_detected_by_magic_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("images.bin");
        write_bytes(&p, &images_2x2x3(), true).unwrap();
        assert_eq!(read_images(&p).unwrap().n, 2);
    }

    #[test]
    fn idx_rejects_bad_magic() {
        let mut b = images_2x2x3();
        b[0] = 1;
        assert!(err_of(&b, 3).contains("bad magic"));
        let mut b = images_2x2x3();
        b[2] = 0x0d;
        assert!(err_of(&b, 3).contains("data type 0x0d"));
        // A labels file given as images.
        assert!(err_of(&encode_labels(&[1]).unwrap(), 3).contains("1 dimensions"));
        assert!(err_of(&[0, 0], 3).contains("too short"));
    }

    #[test]
    fn idx_rejects_truncated_header_and_data() {
        let b = images_2x2x3();
        assert!(err_of(&b[..10], 3).contains("truncated header"));
        assert!(err_of(&b[..b.len() - 1], 3).contains("truncated data"));
        let l = encode_labels(&[1, 2, 3]).unwrap();
        assert!(err_of(&l[..l.len() - 2], 1).contains("truncated data"));
    }

    #[test]
    fn idx_rejects_dims_that_do_not_match_data() {
        let mut b = images_2x2x3();
        b.push(9);
        assert!(err_of(&b, 3).contains("need 12 bytes but 13"));
        // Dimensions whose product overflows must not allocate or panic.
        let mut huge = vec![0, 0, 8, 3];
        for _ in 0..3 {
            huge.extend_from_slice(&u32::MAX.to_be_bytes());
        }
        let msg = err_of(&huge, 3);
        assert!(
            msg.contains("too large") || msg.contains("truncated"),
            "{msg}"
        );
    }

    #[test]
    fn idx_rejects_label_count_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let im = dir.path().join("test-images-idx3-ubyte");
        let lb = dir.path().join("test-labels-idx1-ubyte");
        write_bytes(&im, &images_2x2x3(), false).unwrap();
        write_bytes(&lb, &encode_labels(&[1, 2, 3]).unwrap(), false).unwrap();
        let msg = load_split(dir.path(), "test").unwrap_err().to_string();
        assert!(msg.contains("test-labels-idx1-ubyte"), "{msg}");
        assert!(
            msg.contains("3 labels but the images file holds 2"),
            "{msg}"
        );
    }

    #[test]
    fn idx_rejects_corrupt_gzip_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gz");
        std::fs::write(&p, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
        let msg = read_images(&p).unwrap_err().to_string();
        assert!(msg.contains("x.gz") && msg.contains("gzip"), "{msg}");
        let msg = load_split(dir.path(), "train").unwrap_err().to_string();
        assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
    }

    proptest::proptest! {
        /// Any bytes, or a valid file with a few bytes changed or cut off: an answer or
        /// an error, never a panic.
        #[test]
        fn idx_fuzz_never_panics(
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            edits in proptest::collection::vec((0usize..40, proptest::num::u8::ANY), 0..4),
            cut in 0usize..40,
        ) {
            let _ = parse_images(&noise, "fuzz");
            let _ = parse_labels(&noise, "fuzz");
            let _ = decompress(noise, "fuzz");
            let mut b = images_2x2x3();
            b.extend(encode_labels(&[1, 2]).unwrap());
            for (at, v) in edits {
                if let Some(x) = b.get_mut(at) {
                    *x = v;
                }
            }
            b.truncate(cut);
            if let Ok(im) = parse_images(&b, "fuzz") {
                proptest::prop_assert_eq!(im.pixels.len(), im.n * im.h * im.w);
            }
            let _ = parse_labels(&b, "fuzz");
        }
    }

    #[test]
    fn idx_finds_t10k_names_for_test() {
        let dir = tempfile::tempdir().unwrap();
        let im = dir.path().join("t10k-images-idx3-ubyte.gz");
        let lb = dir.path().join("t10k-labels-idx1-ubyte.gz");
        write_bytes(&im, &images_2x2x3(), true).unwrap();
        write_bytes(&lb, &encode_labels(&[0, 1]).unwrap(), true).unwrap();
        assert_eq!(load_split(dir.path(), "test").unwrap().len(), 2);
    }
}
