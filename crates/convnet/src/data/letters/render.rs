//! Rendering text with a font at the scale contract of the letters data set, and moving
//! line images to and from PNG files.

use std::path::Path;

use ab_glyph::{Font as _, GlyphId, PxScale, ScaleFont as _};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::fonts::Font;
use super::sample::blur;
use super::{BASELINE_FRAC, X_HEIGHT_FRAC};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A grey image of ink coverage, 0 (paper) to 1 (ink), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Gray {
    pub fn new(width: usize, height: usize) -> Self {
        Gray {
            width,
            height,
            data: vec![0.0; width * height],
        }
    }

    /// Coverage at (x, y), 0 outside the image.
    pub fn get(&self, x: isize, y: isize) -> f32 {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return 0.0;
        }
        self.data[y as usize * self.width + x as usize]
    }

    /// The image as a (1, 1, H, W) tensor in the data sets' convention: 0..255, ink bright.
    pub fn to_tensor(&self) -> Result<Tensor> {
        let data = self.data.iter().map(|&v| v * 255.0).collect();
        Tensor::from_vec(&[1, 1, self.height, self.width], data)
    }

    /// Dark ink on white paper, as people expect a page to look.
    pub fn to_image(&self) -> image::GrayImage {
        let mut img = image::GrayImage::new(self.width as u32, self.height as u32);
        for (p, &v) in img.pixels_mut().zip(&self.data) {
            p.0[0] = (255.0 - 255.0 * v.clamp(0.0, 1.0)).round() as u8;
        }
        img
    }

    /// Reads a picture of a text line: the paper's shade is taken from the border pixels
    /// (dark ink on light paper, or the other way round), and the image is scaled to
    /// `height` pixels high keeping its aspect ratio.
    pub fn from_image(img: &image::DynamicImage, height: usize) -> Result<Self> {
        let grey = img.to_luma8();
        let (w, h) = grey.dimensions();
        if w == 0 || h == 0 || height == 0 {
            return Err(Error::Invalid(format!(
                "line image is {w}x{h}, cannot scale to {height} px high"
            )));
        }
        let new_w = ((w as f32 * height as f32 / h as f32).round() as u32).max(1);
        let scaled = if h as usize == height {
            grey
        } else {
            image::imageops::resize(
                &grey,
                new_w,
                height as u32,
                image::imageops::FilterType::Triangle,
            )
        };
        let (sw, sh) = scaled.dimensions();
        let border: Vec<f32> = scaled
            .enumerate_pixels()
            .filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == sw || *y + 1 == sh)
            .map(|(_, _, p)| f32::from(p.0[0]) / 255.0)
            .collect();
        let paper = border.iter().sum::<f32>() / border.len().max(1) as f32;
        let data = scaled
            .pixels()
            .map(|p| {
                let v = f32::from(p.0[0]) / 255.0;
                if paper >= 0.5 {
                    1.0 - v
                } else {
                    v
                }
            })
            .collect();
        Ok(Gray {
            width: sw as usize,
            height: sh as usize,
            data,
        })
    }

    /// Loads a line picture from a file, as [`Gray::from_image`].
    pub fn load(path: impl AsRef<Path>, height: usize) -> Result<Self> {
        let path = path.as_ref();
        let img = image::open(path).map_err(|e| Error::file(path, None, e.to_string()))?;
        Gray::from_image(&img, height)
    }

    /// Writes a PNG (dark ink on white) through a temporary file renamed over `path`.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let tmp = path.with_extension("png.tmp");
        self.to_image()
            .save_with_format(&tmp, image::ImageFormat::Png)
            .map_err(|e| Error::file(&tmp, None, e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }
}

/// The pixel scale at which `font`'s x-height is `X_HEIGHT_FRAC` of `line_height`
/// (ab_glyph's scale is the height from the font's descent to its ascent, not the em).
pub fn line_scale(font: &Font, line_height: f32) -> PxScale {
    let units = font.face().height_unscaled();
    PxScale::from(X_HEIGHT_FRAC * line_height * units / font.x_height_units())
}

/// One glyph placed on a line: pen position of its origin, in pixels from the line start.
#[derive(Clone, Copy, Debug)]
pub struct Placed {
    pub ch: char,
    pub id: GlyphId,
    pub x: f32,
    pub advance: f32,
}

/// Positions of the characters of `text` at `scale`, with the font's advance widths and
/// kerning pairs; spaces move the pen by the font's space width. Fails on a character the
/// font has no glyph for.
pub fn layout(font: &Font, text: &str, scale: PxScale) -> Result<(Vec<Placed>, f32)> {
    let sf = font.face().as_scaled(scale);
    let mut placed = Vec::with_capacity(text.len());
    let mut pen = 0.0f32;
    let mut prev: Option<GlyphId> = None;
    for ch in text.chars() {
        let id = sf.glyph_id(ch);
        let advance = if ch == ' ' {
            space_advance(font, scale)
        } else if id == GlyphId(0) {
            return Err(Error::file(
                font.path(),
                None,
                format!("the font has no glyph for {ch:?}"),
            ));
        } else {
            sf.h_advance(id)
        };
        if let Some(p) = prev {
            pen += sf.kern(p, id);
        }
        placed.push(Placed {
            ch,
            id,
            x: pen,
            advance,
        });
        pen += advance;
        prev = Some(id);
    }
    Ok((placed, pen))
}

/// The word gap: the font's space, or a quarter em for fonts without one.
fn space_advance(font: &Font, scale: PxScale) -> f32 {
    let sf = font.face().as_scaled(scale);
    let id = sf.glyph_id(' ');
    if id == GlyphId(0) {
        0.25 * scale.y
    } else {
        sf.h_advance(id)
    }
}

/// Rasterises the placed glyphs onto `canvas`, with `origin` the pen's start on the
/// baseline; ink of overlapping glyphs is combined by the maximum.
pub fn draw(font: &Font, placed: &[Placed], scale: PxScale, origin: (f32, f32), canvas: &mut Gray) {
    for p in placed.iter().filter(|p| p.ch != ' ') {
        let glyph =
            p.id.with_scale_and_position(scale, ab_glyph::point(origin.0 + p.x, origin.1));
        let Some(outlined) = font.face().outline_glyph(glyph) else {
            continue;
        };
        let b = outlined.px_bounds();
        outlined.draw(|x, y, c| {
            let (px, py) = (b.min.x as isize + x as isize, b.min.y as isize + y as isize);
            if px >= 0 && py >= 0 && (px as usize) < canvas.width && (py as usize) < canvas.height {
                let i = py as usize * canvas.width + px as usize;
                canvas.data[i] = canvas.data[i].max(c.min(1.0));
            }
        });
    }
}

/// A line of text `height_px` high: x-height `X_HEIGHT_FRAC` of the height, baseline at
/// `BASELINE_FRAC` of it from the top, and blank margins of half the height on both sides
/// so that a window as wide as the line is high can centre on the first and last letters.
pub fn render_line(font: &Font, text: &str, height_px: usize) -> Result<Gray> {
    page_coverage(font, &[text], &PageStyle::new(height_px))
}

/// How [`render_page`] draws lines of text.
#[derive(Clone, Debug, PartialEq)]
pub struct PageStyle {
    /// Line height, px: the x-height is `X_HEIGHT_FRAC` of it, the baseline `BASELINE_FRAC`
    /// of it below the line's top, as in [`render_line`].
    pub height: usize,
    /// Distance from one line's top to the next one's, in line heights.
    pub spacing: f32,
    /// Paper around the text on every side, px; `None`: half the line height on the left
    /// and right and none above and below, as [`render_line`] draws.
    pub margin: Option<usize>,
    /// Colours (RGB) of the ink and of the paper.
    pub ink: [u8; 3],
    pub paper: [u8; 3],
    /// Uneven light: the page darkens from left to right, to `1 - shade` of its light at
    /// the right edge.
    pub shade: f32,
    /// Standard deviation of a Gaussian blur, px (0: none).
    pub blur: f32,
    /// Standard deviation of Gaussian noise added to every pixel, in units of the full
    /// intensity range (0..1).
    pub noise: f32,
    /// Seed of the noise.
    pub seed: u64,
}

impl PageStyle {
    /// Lines `height` px high, dark on white, 1.25 line heights apart, margins as
    /// [`render_line`]'s, no shade, blur or noise.
    pub fn new(height: usize) -> Self {
        PageStyle {
            height,
            spacing: 1.25,
            margin: None,
            ink: [0; 3],
            paper: [255; 3],
            shade: 0.0,
            blur: 0.0,
            noise: 0.0,
            seed: 0,
        }
    }
}

/// The ink coverage of `lines` drawn one under the other, left-aligned.
fn page_coverage(font: &Font, lines: &[&str], style: &PageStyle) -> Result<Gray> {
    if style.height < 8 {
        return Err(Error::Invalid(format!(
            "rendering text: height {} px is too small (at least 8)",
            style.height
        )));
    }
    if lines.is_empty() || !(style.spacing >= 1.0 && style.spacing <= 10.0) {
        return Err(Error::Invalid(format!(
            "rendering text: {} lines {} line heights apart; need at least one line, 1 to 10 \
             line heights apart",
            lines.len(),
            style.spacing
        )));
    }
    let h = style.height as f32;
    let scale = line_scale(font, h);
    let laid: Vec<(Vec<Placed>, f32)> = lines
        .iter()
        .map(|text| layout(font, text, scale))
        .collect::<Result<_>>()?;
    let widest = laid.iter().map(|l| l.1).fold(0.0f32, f32::max);
    let (mx, my) = match style.margin {
        Some(m) => (m as f32, m as f32),
        None => ((h / 2.0).round(), 0.0),
    };
    let pitch = (style.spacing * h).round();
    let page_h = 2.0 * my + pitch * (lines.len() - 1) as f32 + h;
    let mut canvas = Gray::new((widest + 2.0 * mx).ceil() as usize, page_h as usize);
    for (i, (placed, _)) in laid.iter().enumerate() {
        let top = my + pitch * i as f32;
        draw(
            font,
            placed,
            scale,
            (mx, top + (BASELINE_FRAC * h).round()),
            &mut canvas,
        );
    }
    Ok(canvas)
}

/// `lines` of text drawn one under the other in `font` with `style`'s size, margins,
/// colours, shade, blur and noise.
pub fn render_page(font: &Font, lines: &[&str], style: &PageStyle) -> Result<image::RgbImage> {
    if !(style.blur >= 0.0 && style.noise >= 0.0 && (0.0..1.0).contains(&style.shade)) {
        return Err(Error::Invalid(format!(
            "rendering a page: blur {} and noise {} must be at least 0, shade {} in 0..1",
            style.blur, style.noise, style.shade
        )));
    }
    let ink = blur(&page_coverage(font, lines, style)?, style.blur);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(style.seed);
    let mut img = image::RgbImage::new(ink.width as u32, ink.height as u32);
    for (i, p) in img.pixels_mut().enumerate() {
        let c = ink.data[i].clamp(0.0, 1.0);
        let light = 1.0 - style.shade * (i % ink.width) as f32 / ink.width as f32;
        let n = if style.noise > 0.0 {
            255.0 * style.noise * rng.sample::<f32, _>(rand_distr::StandardNormal)
        } else {
            0.0
        };
        for ch in 0..3 {
            let v = f32::from(style.paper[ch]) * (1.0 - c) + f32::from(style.ink[ch]) * c;
            p.0[ch] = (v * light + n).round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(img)
}

/// Writes a picture through a temporary file renamed over `path`: JPEG of `jpeg_quality`
/// (1-100) when the file name ends in .jpg or .jpeg, PNG otherwise.
pub fn save_picture(img: &image::RgbImage, path: impl AsRef<Path>, jpeg_quality: u8) -> Result<()> {
    let path = path.as_ref();
    let jpeg = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"));
    let encoded = |w: &mut dyn std::io::Write| -> Result<()> {
        let result = if jpeg {
            image::codecs::jpeg::JpegEncoder::new_with_quality(w, jpeg_quality.clamp(1, 100))
                .encode_image(img)
        } else {
            img.write_with_encoder(image::codecs::png::PngEncoder::new(w))
        };
        result.map_err(|e| Error::file(path, None, e.to_string()))
    };
    crate::atomic::write_with(path, encoded)
}
