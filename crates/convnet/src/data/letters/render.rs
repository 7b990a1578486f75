//! Rendering text with a font at the scale contract of the letters data set, and moving
//! line images to and from PNG files.

use std::path::Path;

use ab_glyph::{Font as _, GlyphId, PxScale, ScaleFont as _};

use super::fonts::Font;
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

/// The pixel scale at which `font`'s x-height is `X_HEIGHT_FRAC` of `line_height`.
pub fn line_scale(font: &Font, line_height: f32) -> PxScale {
    let units = font.face().units_per_em().unwrap_or(1000.0);
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
    if height_px < 8 {
        return Err(Error::Invalid(format!(
            "render_line: height {height_px} px is too small (at least 8)"
        )));
    }
    let h = height_px as f32;
    let scale = line_scale(font, h);
    let (placed, width) = layout(font, text, scale)?;
    let margin = (h / 2.0).round();
    let mut canvas = Gray::new((width + 2.0 * margin).ceil() as usize, height_px);
    draw(
        font,
        &placed,
        scale,
        (margin, (BASELINE_FRAC * h).round()),
        &mut canvas,
    );
    Ok(canvas)
}
