//! Finding the text on a page: separating ink from paper, finding the text lines, cutting
//! each line out at the reader's geometry, and telling word spaces from the gaps between
//! letters.
//!
//! # Ink
//! The paper's shade is estimated locally, as a percentile of blocks about a third of the
//! page's shorter side wide, interpolated between block centres, so that uneven lighting
//! is taken out. Which side is ink is decided by which deviations from the paper carry
//! more weight: ink covers a minority of the page, so the block medians sit on the paper
//! and the ink stands out on one side of them. The ink's contrast is then measured against
//! the noise (the median absolute deviation from the paper): an image whose strongest
//! marks do not stand well clear of its noise holds no text.
//!
//! # Lines
//! Ink pixels (over half the ink's contrast, in marks of a few pixels at least, so that
//! specks of noise do not count) are counted along each row; runs of rows with ink are
//! the lines, once thin runs close to a line (the dots of i and j, accents) are merged into
//! it and thin runs on their own (smudges) are dropped. Each line's x-height and baseline
//! come from its profile of ink along the rows: the x-height band is where the profile is
//! dense.

use image::DynamicImage;

use super::decode::InkLayout;
use super::render::Gray;
use super::{BASELINE_FRAC, WINDOW, X_HEIGHT_FRAC};
use crate::error::{Error, Result};

/// The smallest image side that can hold a line of text, px.
pub const MIN_SIDE: usize = 8;
/// Ink must stand this many noise deviations clear of the paper to be text.
const MIN_CONTRAST_SNR: f32 = 6.0;
/// Marks (connected ink pixels) smaller than this are specks, px.
const MIN_MARK_AREA: usize = 4;
/// The noise deviation is never taken below this (the step of 8-bit pixels).
const MIN_NOISE: f32 = 1.0 / 255.0;
/// Margin of paper kept on either side of a line's ink, px of the 32 px line.
const LINE_MARGIN: f32 = 8.0;

/// A text line found on a page, in page pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct TextLine {
    /// Rows `top..bottom` and columns `left..right` hold the line's ink.
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
    /// The top of the x-height band and the baseline (row coordinates, sub-pixel).
    pub x_line: f32,
    pub baseline: f32,
}

impl TextLine {
    pub fn x_height(&self) -> f32 {
        self.baseline - self.x_line
    }
}

/// A page with its ink separated from the paper.
#[derive(Clone, Debug)]
pub struct Page {
    /// How far each pixel is from the paper towards the ink (0: paper), in the image's
    /// intensity units 0..1.
    contrast: Gray,
    /// Standard deviation of the paper's noise.
    noise: f32,
    /// Typical contrast of the ink (0 when there is none to speak of).
    ink: f32,
    /// Whether the ink is darker than the paper.
    dark_ink: bool,
}

impl Page {
    /// Separates ink from paper in `img` (any polarity, uneven lighting). Fails on an
    /// image too small to hold text.
    pub fn new(img: &DynamicImage) -> Result<Page> {
        let luma = img.to_luma32f();
        let (w, h) = (luma.width() as usize, luma.height() as usize);
        if w < MIN_SIDE || h < MIN_SIDE {
            return Err(Error::Invalid(format!(
                "the image is {w}x{h} px, too small to hold a line of text (at least \
                 {MIN_SIDE}x{MIN_SIDE})"
            )));
        }
        let data: Vec<f32> = luma.into_raw().iter().map(|v| v.clamp(0.0, 1.0)).collect();
        Ok(Page::from_intensity(&Gray {
            width: w,
            height: h,
            data,
        }))
    }

    /// As [`Page::new`] for intensities 0..1 already in a [`Gray`].
    pub fn from_intensity(img: &Gray) -> Page {
        let grid = BlockGrid::new(img);
        let median = grid.background(img, 0.5);
        let deviation: Vec<f32> = img.data.iter().zip(&median).map(|(v, m)| v - m).collect();
        let noise = noise_deviation(img);
        let significant = 4.0 * noise;
        let (mut darker, mut lighter) = (0f64, 0f64);
        for &d in &deviation {
            if d < -significant {
                darker -= f64::from(d);
            } else if d > significant {
                lighter += f64::from(d);
            }
        }
        let dark_ink = darker >= lighter;
        // The paper: the image with every stroke filled in by the paper around it (a
        // closing for dark ink, an opening for light ink, wider than twice the strokes),
        // which follows uneven light exactly where block medians would be pulled towards
        // the ink of blocks crowded with it.
        let towards_ink: Vec<f32> = deviation
            .iter()
            .map(|&d| if dark_ink { -d } else { d })
            .collect();
        let radius = 2 * stroke_width(&towards_ink, img.width, significant) + 1;
        let paper = if dark_ink {
            morph(&morph(img, radius, f32::max), radius, f32::min)
        } else {
            morph(&morph(img, radius, f32::min), radius, f32::max)
        };
        let data: Vec<f32> = img
            .data
            .iter()
            .zip(&paper.data)
            .map(|(&v, &p)| if dark_ink { p - v } else { v - p }.max(0.0))
            .collect();
        let contrast = Gray {
            width: img.width,
            height: img.height,
            data,
        };
        let ink = ink_level(&contrast.data, significant);
        let ink = if ink >= MIN_CONTRAST_SNR * noise {
            ink
        } else {
            0.0
        };
        Page {
            contrast,
            noise,
            ink,
            dark_ink,
        }
    }

    pub fn width(&self) -> usize {
        self.contrast.width
    }
    pub fn height(&self) -> usize {
        self.contrast.height
    }
    /// Whether the ink is darker than the paper (dark text on light paper).
    pub fn dark_ink(&self) -> bool {
        self.dark_ink
    }
    /// Whether any ink stands clear of the noise.
    pub fn has_ink(&self) -> bool {
        self.ink > 0.0
    }

    /// The ink as coverage 0..1, with `level` the contrast of full ink: values within
    /// 1.5 noise deviations of the paper are paper.
    fn coverage(&self, v: f32, level: f32) -> f32 {
        let floor = (1.5 * self.noise).min(0.3 * level);
        ((v - floor) / (level - floor).max(1e-6)).clamp(0.0, 1.0)
    }

    /// Pixels of ink: over half the ink's contrast, in marks of [`MIN_MARK_AREA`] pixels
    /// or more.
    fn ink_mask(&self) -> Vec<bool> {
        if !self.has_ink() {
            return vec![false; self.contrast.data.len()];
        }
        let mask: Vec<bool> = self
            .contrast
            .data
            .iter()
            .map(|&v| self.coverage(v, self.ink) > 0.5)
            .collect();
        drop_specks(&mask, self.width(), self.height(), MIN_MARK_AREA)
    }

    /// The text lines, top to bottom.
    pub fn lines(&self) -> Vec<TextLine> {
        let (w, h) = (self.width(), self.height());
        let mask = self.ink_mask();
        let rows: Vec<usize> = mask
            .chunks_exact(w)
            .map(|r| r.iter().filter(|&&m| m).count())
            .collect();
        let bands = merge_bands(runs_where(&rows, |&n| n > 0));
        bands
            .into_iter()
            .filter_map(|(top, bottom)| {
                let cols: Vec<bool> = (0..w)
                    .map(|x| (top..bottom).any(|y| mask[y * w + x]))
                    .collect();
                let left = cols.iter().position(|&c| c)?;
                let right = w - cols.iter().rev().position(|&c| c)?;
                let profile: Vec<f32> = (top..bottom)
                    .map(|y| {
                        self.contrast.data[y * w + left..y * w + right]
                            .iter()
                            .map(|&v| self.coverage(v, self.ink))
                            .sum()
                    })
                    .collect();
                let (x_line, baseline) = x_height_band(&profile);
                Some(TextLine {
                    top,
                    bottom,
                    left,
                    right,
                    x_line: top as f32 + x_line,
                    baseline: top as f32 + baseline,
                })
            })
            .filter(|l| l.bottom <= h && l.x_height() >= 2.0)
            .collect()
    }

    /// The line cut out and scaled to the reader's geometry: `WINDOW` px high, x-height
    /// `X_HEIGHT_FRAC` of it, baseline at `BASELINE_FRAC`, ink as coverage 0..1 (the
    /// line's own ink contrast is full ink), a margin of paper at both ends, and nothing
    /// from rows outside the line.
    pub fn line_image(&self, line: &TextLine) -> Gray {
        let w = self.width();
        let target = X_HEIGHT_FRAC * WINDOW as f32;
        let scale = target / line.x_height().max(1.0);
        let level = {
            let inside: Vec<f32> = (line.top..line.bottom)
                .flat_map(|y| self.contrast.data[y * w + line.left..y * w + line.right].iter())
                .copied()
                .collect();
            let local = ink_level(&inside, 4.0 * self.noise);
            if local > 0.0 {
                local
            } else {
                self.ink
            }
        };
        // Source rectangle: x-height band placed as the reader expects, margins at the ends.
        let margin = LINE_MARGIN / scale;
        let x0 = line.left as f32 - margin;
        let y0 = line.baseline - BASELINE_FRAC * WINDOW as f32 / scale;
        let out_w = (((line.right - line.left) as f32 + 2.0 * margin) * scale).round() as usize;
        let ink = |x: isize, y: isize| -> f32 {
            if y < line.top as isize || y >= line.bottom as isize {
                0.0
            } else {
                self.coverage(self.contrast.get(x, y), level)
            }
        };
        resample(ink, (x0, y0), 1.0 / scale, out_w.max(1), WINDOW)
    }
}

/// Samples `src` on a grid of `width` x `height` points `step` source pixels apart from
/// `origin`: a box average over each output pixel's footprint when shrinking, bilinear
/// when enlarging.
fn resample(
    src: impl Fn(isize, isize) -> f32,
    origin: (f32, f32),
    step: f32,
    width: usize,
    height: usize,
) -> Gray {
    let mut out = Gray::new(width, height);
    // Sub-samples per output pixel along each axis, enough to cover its footprint.
    let n = step.ceil().max(1.0) as usize;
    let bilinear = |x: f32, y: f32| {
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (xi, yi) = (x0 as isize, y0 as isize);
        let top = src(xi, yi) * (1.0 - fx) + src(xi + 1, yi) * fx;
        let bottom = src(xi, yi + 1) * (1.0 - fx) + src(xi + 1, yi + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    };
    for r in 0..height {
        for c in 0..width {
            let mut sum = 0.0;
            for i in 0..n {
                for j in 0..n {
                    let x = origin.0 + (c as f32 + (j as f32 + 0.5) / n as f32) * step - 0.5;
                    let y = origin.1 + (r as f32 + (i as f32 + 0.5) / n as f32) * step - 0.5;
                    sum += bilinear(x, y);
                }
            }
            out.data[r * width + c] = sum / (n * n) as f32;
        }
    }
    out
}

/// Blocks of the page for estimating the paper's shade.
struct BlockGrid {
    xs: Vec<usize>,
    ys: Vec<usize>,
}

impl BlockGrid {
    fn new(img: &Gray) -> Self {
        let side = (img.width.min(img.height) / 3).max(32) as f32;
        let edges = |len: usize| {
            let n = ((len as f32 / side).round() as usize).max(1);
            (0..=n).map(|i| i * len / n).collect::<Vec<_>>()
        };
        BlockGrid {
            xs: edges(img.width),
            ys: edges(img.height),
        }
    }

    /// The `q`-th quantile of each block, interpolated bilinearly between block centres.
    fn background(&self, img: &Gray, q: f32) -> Vec<f32> {
        let (gx, gy) = (self.xs.len() - 1, self.ys.len() - 1);
        let mut grid = vec![0f32; gx * gy];
        for by in 0..gy {
            for bx in 0..gx {
                let values: Vec<f32> = (self.ys[by]..self.ys[by + 1])
                    .flat_map(|y| {
                        img.data[y * img.width + self.xs[bx]..y * img.width + self.xs[bx + 1]]
                            .iter()
                    })
                    .copied()
                    .collect();
                grid[by * gx + bx] = percentile(values, q);
            }
        }
        let weights = |edges: &[usize], len: usize| -> Vec<(usize, usize, f32)> {
            let centres: Vec<f32> = edges
                .windows(2)
                .map(|e| 0.5 * (e[0] + e[1]) as f32)
                .collect();
            (0..len)
                .map(|p| {
                    let p = p as f32 + 0.5;
                    let i = centres.iter().filter(|&&c| c <= p).count();
                    match i {
                        0 => (0, 0, 0.0),
                        i if i >= centres.len() => (centres.len() - 1, centres.len() - 1, 0.0),
                        i => (
                            i - 1,
                            i,
                            (p - centres[i - 1]) / (centres[i] - centres[i - 1]),
                        ),
                    }
                })
                .collect()
        };
        let wx = weights(&self.xs, img.width);
        let wy = weights(&self.ys, img.height);
        let mut out = Vec::with_capacity(img.data.len());
        for &(y0, y1, fy) in &wy {
            for &(x0, x1, fx) in &wx {
                let at = |x: usize, y: usize| grid[y * gx + x];
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                out.push(top * (1.0 - fy) + bottom * fy);
            }
        }
        out
    }
}

/// The typical width of the strokes, px: the median length of the horizontal runs of
/// pixels over half the ink's level in `towards_ink` (each pixel's departure from the
/// paper towards the ink), 1 when there is no ink.
fn stroke_width(towards_ink: &[f32], width: usize, significant: f32) -> usize {
    let level = ink_level(towards_ink, significant);
    if level <= 0.0 {
        return 1;
    }
    let runs: Vec<f32> = towards_ink
        .chunks_exact(width)
        .flat_map(|row| runs_where(row, |&v| v > 0.5 * level))
        .map(|(a, b)| (b - a) as f32)
        .collect();
    (percentile(runs, 0.5).round() as usize).max(1)
}

/// Grey-level dilation (`pick` = max) or erosion (min) of `img` by a square of side
/// `2 * radius + 1`, clipped at the borders: one pass along the rows, one along the
/// columns, each in time independent of the radius (van Herk and Gil-Werman: the window
/// at x combines the running result from the right within its block of the window's
/// width with the one from the left within the next).
fn morph(img: &Gray, radius: usize, pick: fn(f32, f32) -> f32) -> Gray {
    let line = |src: &[f32]| -> Vec<f32> {
        let n = src.len();
        let w = 2 * radius + 1;
        // Padded with copies of the nearest pixel, which changes neither max nor min.
        let padded: Vec<f32> = (0..n + 2 * radius)
            .map(|i| src[i.saturating_sub(radius).min(n - 1)])
            .collect();
        let mut left = padded.clone();
        let mut right = padded.clone();
        for i in 1..padded.len() {
            if i % w != 0 {
                left[i] = pick(left[i - 1], padded[i]);
            }
        }
        for i in (0..padded.len() - 1).rev() {
            if (i + 1) % w != 0 {
                right[i] = pick(right[i + 1], padded[i]);
            }
        }
        (0..n)
            .map(|x| pick(right[x], left[x + 2 * radius]))
            .collect()
    };
    let (w, h) = (img.width, img.height);
    let mut rows = Vec::with_capacity(w * h);
    for row in img.data.chunks_exact(w) {
        rows.extend(line(row));
    }
    let mut out = vec![0f32; w * h];
    let mut column = vec![0f32; h];
    for x in 0..w {
        for (y, v) in column.iter_mut().enumerate() {
            *v = rows[y * w + x];
        }
        for (y, v) in line(&column).into_iter().enumerate() {
            out[y * w + x] = v;
        }
    }
    Gray {
        width: w,
        height: h,
        data: out,
    }
}

/// The standard deviation of the noise, from the differences between neighbouring pixels:
/// most neighbours are both paper (or both inside a stroke), so the median difference is
/// the noise's, whatever share of the image the ink covers.
fn noise_deviation(img: &Gray) -> f32 {
    let w = img.width;
    let mut diffs = Vec::with_capacity(2 * img.data.len());
    for (i, &v) in img.data.iter().enumerate() {
        if (i + 1) % w != 0 {
            diffs.push((v - img.data[i + 1]).abs());
        }
        if let Some(&below) = img.data.get(i + w) {
            diffs.push((v - below).abs());
        }
    }
    // The difference of two pixels has sqrt(2) times the noise's deviation; the median
    // absolute value of a normal variable is 0.6745 deviations.
    (percentile(diffs, 0.5) / (0.6745 * std::f32::consts::SQRT_2)).max(MIN_NOISE)
}

/// The `q`-th quantile (0..1) of `values` (0 when empty).
fn percentile(mut values: Vec<f32>, q: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let k = ((values.len() - 1) as f32 * q).round() as usize;
    *values.select_nth_unstable_by(k, f32::total_cmp).1
}

/// The contrast of full ink: the 90th percentile of the contrasts above `significant`
/// (0 when fewer than a few pixels are).
fn ink_level(contrast: &[f32], significant: f32) -> f32 {
    let strong: Vec<f32> = contrast
        .iter()
        .copied()
        .filter(|&v| v > significant)
        .collect();
    if strong.len() < MIN_MARK_AREA {
        return 0.0;
    }
    percentile(strong, 0.9)
}

/// `mask` without its 8-connected marks smaller than `min_area` pixels.
fn drop_specks(mask: &[bool], w: usize, h: usize, min_area: usize) -> Vec<bool> {
    let mut out = vec![false; mask.len()];
    let mut seen = vec![false; mask.len()];
    let mut stack = Vec::new();
    let mut mark = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        mark.clear();
        while let Some(i) = stack.pop() {
            mark.push(i);
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if mark.len() >= min_area {
            for &i in &mark {
                out[i] = true;
            }
        }
    }
    out
}

/// The maximal runs `start..end` of indices whose values satisfy `pred`.
pub fn runs_where<T>(values: &[T], pred: impl Fn(&T) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, v) in values.iter().enumerate() {
        match (pred(v), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, values.len()));
    }
    out
}

/// Joins thin bands of rows (under half the median band's height) to a neighbouring band
/// closer than half the median height (the dots of i and j, accents), and drops those
/// with no such neighbour (specks and smudges).
fn merge_bands(mut bands: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    loop {
        let mut heights: Vec<usize> = bands.iter().map(|b| b.1 - b.0).collect();
        heights.sort_unstable();
        let Some(&median) = heights.get(heights.len() / 2) else {
            return bands;
        };
        let thin = |b: &(usize, usize)| 2 * (b.1 - b.0) < median;
        let Some(i) = bands.iter().position(thin) else {
            return bands;
        };
        let gap_above = (i > 0).then(|| bands[i].0 - bands[i - 1].1);
        let gap_below = bands.get(i + 1).map(|b| b.0 - bands[i].1);
        let near = |g: Option<usize>| g.filter(|&g| 2 * g <= median);
        match (near(gap_above), near(gap_below)) {
            (Some(a), Some(b)) if b < a => bands[i + 1].0 = bands[i].0,
            (Some(_), _) => bands[i - 1].1 = bands[i].1,
            (None, Some(_)) => bands[i + 1].0 = bands[i].0,
            (None, None) => {}
        }
        bands.remove(i);
    }
}

/// The x-height band of a line from its ink profile along the rows: the baseline is
/// where the profile falls most (the feet of all letters but the descenders'), the top of
/// the band where it rises most in the upper half above the baseline (the tops of all
/// letters but the ascenders'; lower down, serifs on the baseline can rise as steeply),
/// each placed to a fraction of a row by a parabola through the steepest step and its
/// neighbours. Returns (top of the band, baseline) in rows from the profile's start.
fn x_height_band(profile: &[f32]) -> (f32, f32) {
    let n = profile.len();
    // step[k]: from row k-1 to row k (outside the profile is empty), at y = k.
    let at = |k: isize| -> f32 {
        if k < 0 || k as usize >= n {
            0.0
        } else {
            profile[k as usize]
        }
    };
    let step: Vec<f32> = (0..=n as isize).map(|k| at(k) - at(k - 1)).collect();
    let refine = |k: usize, sign: f32| -> f32 {
        let v = |i: isize| sign * step.get(i as usize).copied().unwrap_or(0.0);
        let (a, b, c) = (v(k as isize - 1), v(k as isize), v(k as isize + 1));
        let curve = a - 2.0 * b + c;
        let offset = if k > 0 && k < n && curve < 0.0 {
            (0.5 * (a - c) / curve).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        k as f32 + offset
    };
    let steepest = |range: std::ops::Range<usize>, sign: f32| {
        range.max_by(|&i, &j| (sign * step[i]).total_cmp(&(sign * step[j])))
    };
    let Some(bottom) = steepest(1..n + 1, -1.0) else {
        return (0.0, n as f32);
    };
    let top = steepest(0..bottom.div_ceil(2), 1.0).unwrap_or(0);
    (refine(top, 1.0), refine(bottom, -1.0))
}

/// Where `line` (at the reader's geometry) has ink and where its words are apart, for
/// [`decode_with_ink`](super::decode_with_ink).
pub fn ink_layout(line: &Gray) -> InkLayout {
    InkLayout {
        marks: runs_where(&ink_columns(line), |&c| c),
        word_gaps: word_gaps(line),
    }
}

/// The runs of paper columns between the first and the last ink of a line at the
/// reader's geometry (see [`ink_columns`]).
pub fn ink_gaps(line: &Gray) -> Vec<(usize, usize)> {
    let cols = ink_columns(line);
    let runs = runs_where(&cols, |&c| !c);
    runs.into_iter()
        .filter(|&(a, b)| a > 0 && b < cols.len())
        .collect()
}

/// Which columns of `line` (at the reader's geometry) hold ink: a pixel over half
/// coverage in the x-height band less a tenth of it at either end. Ascenders, descenders,
/// crossbars of f and t at the top of the band and serifs on the baseline reach over the
/// gaps between letters and words (the tail of j under the x before it, the hook of f
/// over the t after it); the band holds only the letters' own bodies.
pub fn ink_columns(line: &Gray) -> Vec<bool> {
    let h = line.height as f32;
    let (x_line, baseline) = ((BASELINE_FRAC - X_HEIGHT_FRAC) * h, BASELINE_FRAC * h);
    let trim = 0.1 * (baseline - x_line);
    let rows = (x_line + trim).round() as usize..(baseline - trim).round() as usize;
    (0..line.width)
        .map(|x| {
            rows.clone()
                .any(|y| line.data.get(y * line.width + x).is_some_and(|&v| v > 0.5))
        })
        .collect()
}

/// The gaps of [`ink_gaps`] that are word spaces, judged against the line's own spacing:
/// gap widths fall into two groups, the narrow ones between letters of a word and the
/// wide ones between words, split where the two groups are best separated (the largest
/// between-group variance). Gaps under a quarter of the x-height are never word spaces
/// (but gaps over the x-height may not be either: the narrow letters of a monospaced font
/// stand that far apart); when the widths do not split into two well-separated groups, a
/// gap is a word space when it is over half the x-height.
pub fn word_gaps(line: &Gray) -> Vec<(usize, usize)> {
    let gaps = ink_gaps(line);
    let x_height = X_HEIGHT_FRAC * line.height as f32;
    let widths: Vec<f32> = gaps.iter().map(|g| (g.1 - g.0) as f32).collect();
    let threshold = word_gap_threshold(&widths, x_height);
    gaps.into_iter()
        .zip(widths)
        .filter(|&(_, w)| w >= threshold)
        .map(|(g, _)| g)
        .collect()
}

/// The narrowest gap width that is a word space on a line of x-height `x_height` whose
/// gaps between marks are `widths` wide (see [`word_gaps`]).
pub fn word_gap_threshold(widths: &[f32], x_height: f32) -> f32 {
    let (lo, fallback) = (0.25 * x_height, 0.5 * x_height);
    let mut w = widths.to_vec();
    w.sort_by(f32::total_cmp);
    let mut best: Option<(f64, f32)> = None;
    for k in 1..w.len() {
        if w[k] <= w[k - 1] {
            continue;
        }
        let (a, b) = w.split_at(k);
        let mean = |s: &[f32]| s.iter().map(|&v| f64::from(v)).sum::<f64>() / s.len() as f64;
        let (ma, mb) = (mean(a), mean(b));
        let between = a.len() as f64 * b.len() as f64 * (mb - ma).powi(2);
        // Two groups only when the wide ones are clearly wider.
        if mb >= 1.6 * ma && best.is_none_or(|(v, _)| between > v) {
            best = Some((between, w[k]));
        }
    }
    match best {
        Some((_, t)) => t.max(lo),
        None => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_page_runs_where_finds_maximal_runs() {
        let v = [0, 1, 1, 0, 0, 2, 0, 3];
        assert_eq!(runs_where(&v, |&x| x > 0), vec![(1, 3), (5, 6), (7, 8)]);
        assert_eq!(runs_where(&v, |&x| x > 5), vec![]);
    }

    #[test]
    fn letters_page_thin_bands_join_their_line_or_go() {
        // A dot band just above a line joins it; a speck far away goes.
        let bands = vec![(10, 12), (13, 30), (50, 70), (120, 121)];
        assert_eq!(merge_bands(bands), vec![(10, 30), (50, 70)]);
    }

    #[test]
    fn letters_page_word_gap_threshold_splits_two_groups() {
        // Proportional: letters 1-2 px apart, words 7-8 px.
        let t = word_gap_threshold(&[1.0, 2.0, 1.0, 7.0, 2.0, 8.0, 1.0, 7.0], 12.0);
        assert!((3.0..=7.0).contains(&t), "{t}");
        // Monospaced: letters 3-5 px apart, words 11-12 px.
        let t = word_gap_threshold(&[4.0, 3.0, 5.0, 11.0, 4.0, 12.0, 3.0], 12.0);
        assert!((5.0..=11.0).contains(&t), "{t}");
        // One word: the gaps between its letters are not spaces.
        let t = word_gap_threshold(&[3.0, 4.0, 3.0, 4.0], 12.0);
        assert!(t > 4.0, "{t}");
    }
}
