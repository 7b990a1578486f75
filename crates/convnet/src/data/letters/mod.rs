//! Letters a-z rendered from real fonts, for training a reader that slides along a text
//! line, and the decoding of its per-position predictions back into text.
//!
//! # Scale contract
//! Lines are rendered [`WINDOW`] = 32 px high by [`render_line`] (with margins of 16 px at
//! both ends); every font is scaled so that its x-height is [`X_HEIGHT_FRAC`] of the line
//! (12 px) with the baseline [`BASELINE_FRAC`] of the way down (22 px from the top). A
//! training window is 32x32 and shows the same geometry: the window at column x of a line
//! covers columns x..x+32 and its label is the letter whose ink is centred near column
//! x+16, or background ("_") when that column falls between letters, in a word space or
//! past the ends. A reader that slides the window with a stride of 1 px sees, for each
//! letter, a run of its label a few pixels long, and short background runs between
//! letters (see [`decode`]). Line pictures of another height are scaled to 32 px by
//! [`Gray::load`] first.
//!
//! # Pixels
//! Samples are 0..255 with ink bright on a dark background, as the digits; line pictures
//! on disk are dark ink on white paper ([`Gray::save_png`]), and [`Gray::load`] turns
//! either polarity into coverage (ink 1).

mod decode;
mod fonts;
pub mod page;
mod render;
mod sample;

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

pub use decode::{decode, decode_with, decode_with_ink, raw_string, DecodeOptions, InkLayout};
pub use fonts::{discover_fonts, split_fonts, split_of_group, Font, Split, DEFAULT_FONT_DIR};
pub use page::{Page, TextLine};
pub use render::{
    draw, layout, line_scale, render_line, render_page, save_picture, Gray, PageStyle, Placed,
};

use super::dataset::Dataset;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Side of a training window, and the height of a line for the reader.
pub const WINDOW: usize = 32;
/// x-height as a fraction of the line height (12 px of 32).
pub const X_HEIGHT_FRAC: f32 = 0.375;
/// Baseline as a fraction of the line height from the top (22 px of 32).
pub const BASELINE_FRAC: f32 = 0.6875;
/// Number of classes: a-z, then background.
pub const NUM_CLASSES: usize = 27;
/// Class index of background.
pub const BACKGROUND: usize = 26;
/// Name of the background class.
pub const BACKGROUND_NAME: &str = "_";

/// The class names: "a".."z", then "_" for background.
pub fn class_names() -> Vec<String> {
    ('a'..='z')
        .map(String::from)
        .chain([BACKGROUND_NAME.to_string()])
        .collect()
}

/// How much each window is jittered. Lengths are in pixels of the 32x32 window.
#[derive(Clone, Debug, PartialEq)]
pub struct LetterOptions {
    /// Largest horizontal shift of a letter from the window centre (less for narrow letters).
    pub shift_x: f32,
    /// Largest vertical shift of the baseline.
    pub shift_y: f32,
    /// Largest relative change of size (0.1: 90% to 110%); the aspect ratio varies by half that.
    pub scale: f32,
    /// Largest rotation in degrees.
    pub rotate_deg: f32,
    /// Thinner or bolder strokes (erosion or dilation by 0.5 or 1 px) on some windows.
    pub stroke: bool,
    /// Largest Gaussian blur (standard deviation, px), applied to half the windows.
    pub blur: f32,
    /// Largest standard deviation of added noise (coverage units, 0..1); also varies the
    /// contrast of half the windows.
    pub noise: f32,
    /// Probability that a letter has a letter (not a space) on each side.
    pub neighbours: f32,
    /// Probability that a letter window is centred anywhere on the letter's ink (1.5 px in
    /// from its edges) rather than within `shift_x` of its middle: a reader sliding along
    /// a line then names a letter over its whole width, so that wide letters (m, w) are
    /// not read as the narrower letters their halves look like (n, v).
    pub span: f32,
}

impl Default for LetterOptions {
    fn default() -> Self {
        LetterOptions {
            shift_x: 2.0,
            shift_y: 1.5,
            scale: 0.1,
            rotate_deg: 3.0,
            stroke: true,
            blur: 1.0,
            noise: 0.08,
            neighbours: 0.85,
            span: 0.0,
        }
    }
}

impl LetterOptions {
    /// The default jitter with half the letter windows centred anywhere on the letter's
    /// ink: what a line reader is trained on (a third reads worse: with the `letters` net
    /// before batch normalisation, 93.3% of held-out letters and 65 of 255 sentences
    /// against 94.1% and 72).
    pub fn reader() -> Self {
        LetterOptions {
            span: 0.5,
            ..LetterOptions::default()
        }
    }

    /// No jitter at all: the letter exactly as `render_line` draws it, between neighbours.
    pub fn none() -> Self {
        LetterOptions {
            shift_x: 0.0,
            shift_y: 0.0,
            scale: 0.0,
            rotate_deg: 0.0,
            stroke: false,
            blur: 0.0,
            noise: 0.0,
            neighbours: 0.85,
            span: 0.0,
        }
    }
}

/// Jittered letter windows drawn on the fly from a set of fonts.
#[derive(Debug)]
pub struct LetterSet {
    fonts: Vec<Font>,
    options: LetterOptions,
}

impl LetterSet {
    pub fn new(fonts: Vec<Font>, options: LetterOptions) -> Result<Self> {
        if fonts.is_empty() {
            return Err(Error::Invalid(
                "letters: no usable fonts (install some with scripts/install-fonts.sh)".into(),
            ));
        }
        Ok(LetterSet { fonts, options })
    }

    pub fn fonts(&self) -> &[Font] {
        &self.fonts
    }

    /// Sample `index`: class `index % 27`, font `(index / 27) % fonts`, jitter from `rng`.
    /// Returns 32*32 pixels 0..255 (ink bright) and the class.
    pub fn sample(&self, index: usize, rng: &mut Xoshiro256PlusPlus) -> Result<(Vec<f32>, usize)> {
        let label = index % NUM_CLASSES;
        let font = &self.fonts[(index / NUM_CLASSES) % self.fonts.len()];
        let window = sample::render_window(font, label, &self.options, rng)?;
        Ok((window.data.iter().map(|v| v * 255.0).collect(), label))
    }

    /// `n_per_class` samples of each class (classes interleaved: labels 0, 1, .., 26, 0, ..),
    /// every sample with its own random stream derived from `seed` and its index, so the
    /// result does not depend on the number of threads.
    pub fn make_dataset(&self, n_per_class: usize, seed: u64) -> Result<Dataset> {
        let n = n_per_class * NUM_CLASSES;
        let samples: Vec<(Vec<f32>, usize)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let stream = seed
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .wrapping_add(i as u64);
                self.sample(i, &mut Xoshiro256PlusPlus::seed_from_u64(stream))
            })
            .collect::<Result<_>>()?;
        let mut data = Vec::with_capacity(n * WINDOW * WINDOW);
        let mut labels = Vec::with_capacity(n);
        for (pixels, label) in samples {
            data.extend_from_slice(&pixels);
            labels.push(label);
        }
        Ok(Dataset {
            images: Tensor::from_vec(&[n, 1, WINDOW, WINDOW], data)?,
            labels,
            classes: class_names(),
        })
    }

    /// The median advance width of each letter a-z over the fonts, in pixels of a 32 px
    /// line: what [`DecodeOptions::advances`] expects.
    pub fn typical_advances(&self) -> Result<Vec<f32>> {
        typical_advances(&self.fonts)
    }
}

/// The median advance width of each letter a-z over `fonts` at the 32 px line scale.
pub fn typical_advances(fonts: &[Font]) -> Result<Vec<f32>> {
    median_per_letter(fonts, |_, p, _| p.advance)
}

/// The median over `fonts` of the wider of each letter's advance and ink, px of a 32 px
/// line: how long a reader trained with [`LetterOptions::span`] reads one letter (j and
/// f reach past their advance), so the decoder's run splitting should use these.
pub fn typical_widths(fonts: &[Font]) -> Result<Vec<f32>> {
    median_per_letter(fonts, |font, p, scale| {
        let (a, b) = sample::ink_span(font, p, scale);
        p.advance.max(b - a)
    })
}

fn median_per_letter(
    fonts: &[Font],
    measure: impl Fn(&Font, &Placed, ab_glyph::PxScale) -> f32,
) -> Result<Vec<f32>> {
    let mut per_letter = vec![Vec::new(); 26];
    for font in fonts {
        let scale = line_scale(font, WINDOW as f32);
        let (placed, _) = layout(font, "abcdefghijklmnopqrstuvwxyz", scale)?;
        for (widths, p) in per_letter.iter_mut().zip(&placed) {
            widths.push(measure(font, p, scale));
        }
    }
    Ok(per_letter
        .into_iter()
        .map(|mut w| {
            w.sort_by(f32::total_cmp);
            w.get(w.len() / 2).copied().unwrap_or(0.0)
        })
        .collect())
}
