//! Sliding a fully convolutional letters network along a text line.
//!
//! The line (32 px high) is padded with half a window of blank paper on both sides, so
//! that the window centred on column x of the line starts at column x of the padded
//! line. One forward pass over the padded line gives the window's prediction at every
//! `stride`-th column (the product of the strides of the convolutions and poolings);
//! `stride` passes over copies shifted by 0, 1, .., stride-1 columns (one batch) give a
//! prediction at every column, which [`interleave`] puts back in column order. A page is
//! read line by line, each found and cut out at the reader's geometry by
//! `convnet::data::letters::Page`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use convnet::data::letters::{
    decode_with_ink, page, raw_string, DecodeOptions, Gray, Page, BACKGROUND, NUM_CLASSES, WINDOW,
};
use convnet::data::normalize::Normalization;
use convnet::net::{LayerKind, Mode, Network};
use convnet::tensor::Tensor;
use convnet::train::stats::argmax;
use serde::{Deserialize, Serialize};

/// What `ocr train` writes next to the model for the decoder (`ocr.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sidecar {
    /// Typical advance width of a-z in px of a 32 px line, from the training fonts.
    pub advances: Option<Vec<f32>>,
}

/// The decoder settings' file next to a model file.
pub fn sidecar_path(model: &Path) -> PathBuf {
    model.with_file_name("ocr.json")
}

/// A letters network ready to read lines.
pub struct Reader {
    net: Network,
    norm: Normalization,
    stride: usize,
    decode: DecodeOptions,
}

/// The total horizontal stride of a network made of convolutions and poolings, or an
/// error naming the layer that keeps it from sliding along a line.
fn total_stride(net: &Network) -> Result<usize> {
    let mut stride = 1usize;
    for l in net.layers() {
        match &l.kind {
            LayerKind::Conv {
                kernel: Some(_),
                opts,
                ..
            } => stride *= opts.stride[1],
            LayerKind::Pool(opts) => stride *= opts.stride[1],
            LayerKind::Conv { kernel: None, .. } | LayerKind::ConvT { .. } => bail!(
                "layer '{}' ({}) does not slide: the reader needs a network of convolutions \
                 and poolings",
                l.name,
                l.kind.type_name()
            ),
            _ => {}
        }
    }
    Ok(stride.max(1))
}

impl Reader {
    /// Checks that `net` takes 32x32x1 windows and scores the 27 letter classes.
    pub fn new(net: Network, norm: Normalization, advances: Option<Vec<f32>>) -> Result<Self> {
        let input = net.input_size();
        if input != Some([WINDOW, WINDOW, 1]) {
            bail!(
                "network '{}' takes input {:?} (HxWxC); the reader needs {WINDOW}x{WINDOW}x1",
                net.desc().name,
                input
            );
        }
        if net.classes().len() != NUM_CLASSES {
            bail!(
                "network '{}' has {} classes; the reader needs {NUM_CLASSES} (a-z and background)",
                net.desc().name,
                net.classes().len()
            );
        }
        let stride = total_stride(&net)?;
        let mut decode = DecodeOptions::new(BACKGROUND);
        decode.advances = advances;
        decode.min_letter_frac = MIN_LETTER_FRAC;
        Ok(Reader {
            net,
            norm,
            stride,
            decode,
        })
    }

    /// Loads a model file and, when present, the `ocr.json` beside it.
    pub fn load(model: &Path) -> Result<Self> {
        let (net, norm) = crate::cmd_test::load(model)?;
        let side = sidecar_path(model);
        let sidecar: Sidecar = match std::fs::read_to_string(&side) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{}: not a reader settings file", side.display()))?,
            Err(_) => Sidecar::default(),
        };
        Reader::new(net, norm, sidecar.advances)
    }

    /// The class of the window centred on every column of `line` (32 px high), from the
    /// class probabilities averaged over [`SMOOTH_PX`] columns either side.
    pub fn labels(&mut self, line: &Gray) -> Result<Vec<usize>> {
        Ok(smoothed_labels(&self.scores(line)?, SMOOTH_PX))
    }

    /// The class scores of the window centred on every column of `line` (32 px high).
    pub fn scores(&mut self, line: &Gray) -> Result<Vec<Vec<f32>>> {
        if line.height != WINDOW {
            bail!(
                "line is {} px high; the reader needs {WINDOW} (Gray::load scales it)",
                line.height
            );
        }
        let (w, s) = (line.width, self.stride);
        if w == 0 {
            return Ok(Vec::new());
        }
        // Pass k sees columns k-16 .. k-16+span of the line (blank outside it) and yields
        // `per_pass` windows, centred on columns k, k+s, ...
        let per_pass = w.div_ceil(s);
        let span = (per_pass - 1) * s + WINDOW;
        let half = (WINDOW / 2) as isize;
        let mut data = vec![0f32; s * WINDOW * span];
        for (k, pass) in data.chunks_exact_mut(WINDOW * span).enumerate() {
            for (y, row) in pass.chunks_exact_mut(span).enumerate() {
                for (x, v) in row.iter_mut().enumerate() {
                    *v = 255.0 * line.get((k + x) as isize - half, y as isize);
                }
            }
        }
        let mut x = Tensor::from_vec(&[s, 1, WINDOW, span], data)?;
        self.norm.apply(&mut x)?;
        self.net.forward(&[("input", &x)], Mode::Test)?;
        let scores = self
            .net
            .prediction()
            .context("the network has no 'prediction' variable")?;
        let d = scores.dims4()?;
        if d.n != s || d.c != NUM_CLASSES || d.h != 1 || d.w < per_pass {
            bail!(
                "the network gave scores of {d} for {s} passes over a {WINDOW}x{span} line; \
                 expected {s}x{NUM_CLASSES}x1x{per_pass} or wider"
            );
        }
        let passes: Vec<Vec<Vec<f32>>> = (0..s)
            .map(|k| {
                (0..per_pass)
                    .map(|j| (0..d.c).map(|c| scores.at4(k, c, 0, j)).collect())
                    .collect()
            })
            .collect();
        interleave(&passes, s, w)
    }

    /// The raw label string (a letter or a space per column) and the decoded text of a
    /// line at the reader's geometry, with the word spaces its own ink shows.
    pub fn read(&mut self, line: &Gray) -> Result<(String, String)> {
        let labels = self.labels(line)?;
        Ok((
            raw_string(&labels, BACKGROUND),
            decode_with_ink(&labels, &self.decode, &page::ink_layout(line)),
        ))
    }

    /// Every text line of a page, top to bottom, read as [`Reader::read`] reads one.
    pub fn read_page(&mut self, page: &Page) -> Result<Vec<(String, String)>> {
        page.lines()
            .iter()
            .map(|line| self.read(&page.line_image(line)))
            .collect()
    }
}

/// Columns either side whose class probabilities are averaged before choosing a label:
/// a label that flickers for a column or two between two runs is noise.
pub const SMOOTH_PX: usize = 2;
/// The decoder's setting, chosen on sentences in held-out fonts (see `DecodeOptions`): a
/// letter read for under 40% of its width is the edge of a neighbour. Word spaces come
/// from the line's own ink (`page::word_gaps`).
pub const MIN_LETTER_FRAC: f32 = 0.4;

/// The best class of every column after averaging the softmax probabilities of the
/// columns within `radius`.
pub fn smoothed_labels(scores: &[Vec<f32>], radius: usize) -> Vec<usize> {
    let probs: Vec<Vec<f32>> = scores.iter().map(|s| softmax(s)).collect();
    (0..probs.len())
        .map(|col| {
            let near = &probs[col.saturating_sub(radius)..(col + radius + 1).min(probs.len())];
            let mut sum = vec![0f32; probs[col].len()];
            for p in near {
                sum.iter_mut().zip(p).for_each(|(s, v)| *s += v);
            }
            argmax(&sum)
        })
        .collect()
}

fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let total: f32 = e.iter().sum();
    e.iter().map(|v| v / total).collect()
}

/// Puts the outputs of `stride` shifted passes back in column order: `passes[k][j]` is
/// the output for column `k + stride * j`; the result holds columns `0..width`.
pub fn interleave<T: Clone>(passes: &[Vec<T>], stride: usize, width: usize) -> Result<Vec<T>> {
    if passes.len() != stride || stride == 0 {
        bail!(
            "interleave: {} passes for a stride of {stride}",
            passes.len()
        );
    }
    (0..width)
        .map(|col| {
            passes[col % stride]
                .get(col / stride)
                .cloned()
                .with_context(|| {
                    format!(
                        "interleave: pass {} has {} outputs, column {col} needs {}",
                        col % stride,
                        passes[col % stride].len(),
                        col / stride + 1
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocr_interleave_puts_every_column_in_place() {
        for stride in 1..=5 {
            for width in [1usize, 7, 20, 33] {
                let per_pass = width.div_ceil(stride);
                let passes: Vec<Vec<usize>> = (0..stride)
                    .map(|k| (0..per_pass).map(|j| k + stride * j).collect())
                    .collect();
                let cols = interleave(&passes, stride, width).unwrap();
                assert_eq!(cols, (0..width).collect::<Vec<_>>(), "stride {stride}");
            }
        }
    }

    /// The reader's scores at column x equal the network's scores for the 32x32 window
    /// centred on x, cut out by hand (blank beyond the line's ends).
    #[test]
    fn ocr_reader_columns_match_single_windows() {
        let desc = convnet::net::zoo::get("letters").unwrap();
        let net = Network::from_desc(&desc, 7).unwrap();
        let mut reader = Reader::new(net.clone(), Normalization::None, None).unwrap();
        assert_eq!(reader.stride, 4);
        let mut line = Gray::new(23, WINDOW);
        for (i, v) in line.data.iter_mut().enumerate() {
            *v = ((i * 7919) % 13) as f32 / 12.0;
        }
        let columns = reader.scores(&line).unwrap();
        assert_eq!(columns.len(), 23);
        // Neighbouring windows differ, so a column out of place would be caught.
        assert!(columns.windows(2).all(|w| w[0] != w[1]));
        let mut single = net;
        for (x, col) in columns.iter().enumerate() {
            let mut window = Vec::with_capacity(WINDOW * WINDOW);
            for y in 0..WINDOW as isize {
                for u in 0..WINDOW as isize {
                    window.push(255.0 * line.get(x as isize - 16 + u, y));
                }
            }
            let t = Tensor::from_vec(&[1, 1, WINDOW, WINDOW], window).unwrap();
            single.forward(&[("input", &t)], Mode::Test).unwrap();
            let want = single.prediction().unwrap().data();
            for (a, b) in col.iter().zip(want) {
                assert!(
                    (a - b).abs() <= 1e-3 * (1.0 + b.abs()),
                    "column {x}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn ocr_smoothing_removes_one_column_flicker() {
        let col = |c: usize| {
            let mut s = vec![0f32; 3];
            s[c] = 5.0;
            s
        };
        let scores: Vec<Vec<f32>> = [0, 0, 0, 1, 0, 0, 2, 2, 2]
            .iter()
            .map(|&c| col(c))
            .collect();
        assert_eq!(smoothed_labels(&scores, 0), vec![0, 0, 0, 1, 0, 0, 2, 2, 2]);
        assert_eq!(smoothed_labels(&scores, 1), vec![0, 0, 0, 0, 0, 0, 2, 2, 2]);
    }

    #[test]
    fn ocr_interleave_refuses_short_passes() {
        let passes = vec![vec![0, 4], vec![1]];
        assert!(interleave(&passes, 2, 4).is_err());
        assert!(interleave(&passes, 3, 2).is_err());
    }
}
