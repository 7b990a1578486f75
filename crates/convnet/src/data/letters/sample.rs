//! One jittered 32x32 training window: a letter centred between random neighbours, or a
//! background window (the gap between two letters, a word space, the end of a line, or
//! blank paper), rendered with the same geometry as `render_line` at 32 px.

use ab_glyph::{Font as _, PxScale, ScaleFont as _};
use rand::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::fonts::Font;
use super::render::{draw, layout, line_scale, Gray, Placed};
use super::{LetterOptions, BASELINE_FRAC, WINDOW};
use crate::error::Result;

/// Supersampling factor: windows are drawn at twice the size and averaged down, so that
/// stroke changes of half a pixel are possible.
const SS: usize = 2;

/// How far inside a letter's ink edges a window spanning the letter may be centred, px.
const SPAN_MARGIN: f32 = 1.5;

/// Where the window is centred, in pixels along the rendered text (x) at 1x scale.
struct Scene {
    text: String,
    centre_x: f32,
}

fn random_letter(rng: &mut Xoshiro256PlusPlus) -> char {
    char::from(b'a' + rng.gen_range(0..26u8))
}

/// The ink's horizontal extent of a placed glyph, in pixels from the line start.
pub(super) fn ink_span(font: &Font, p: &Placed, scale: PxScale) -> (f32, f32) {
    let sf = font.face().as_scaled(scale);
    match font.face().outline(p.id) {
        Some(o) => {
            let k = sf.h_scale_factor();
            (p.x + o.bounds.min.x * k, p.x + o.bounds.max.x * k)
        }
        None => (p.x, p.x + p.advance),
    }
}

/// A neighbour on one side: usually a letter, sometimes a space (word boundary).
fn neighbour(rng: &mut Xoshiro256PlusPlus, p_letter: f32) -> String {
    if rng.gen::<f32>() < p_letter {
        random_letter(rng).to_string()
    } else {
        " ".to_string()
    }
}

/// The text around the window and where the window's centre falls in it.
fn scene(
    font: &Font,
    label: usize,
    o: &LetterOptions,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Scene> {
    let scale = line_scale(font, WINDOW as f32);
    let centred =
        |text: String, index: usize, rng: &mut Xoshiro256PlusPlus, jitter: f32| -> Result<Scene> {
            let (placed, _) = layout(font, &text, scale)?;
            let (a, b) = placed
                .get(index)
                .map(|p| ink_span(font, p, scale))
                .unwrap_or((0.0, 0.0));
            Ok(Scene {
                centre_x: 0.5 * (a + b) + rng.gen_range(-jitter..=jitter),
                text,
            })
        };
    if label < 26 {
        let c = char::from(b'a' + label as u8);
        let text = format!(
            "{}{c}{}",
            neighbour(rng, o.neighbours),
            neighbour(rng, o.neighbours)
        );
        // Narrow letters (i, l) get less horizontal play, so that the reader's run of a
        // letter stays inside its own ink.
        let (placed, _) = layout(font, &text, scale)?;
        if o.span > 0.0 && rng.gen::<f32>() < o.span {
            let (a, b) = placed
                .get(1)
                .map_or((0.0, 0.0), |p| ink_span(font, p, scale));
            let (lo, hi) = (a + SPAN_MARGIN, b - SPAN_MARGIN);
            let centre_x = if hi > lo {
                rng.gen_range(lo..hi)
            } else {
                0.5 * (a + b)
            };
            return Ok(Scene { text, centre_x });
        }
        let width = placed.get(1).map_or(0.0, |p| p.advance);
        let jitter = (o.shift_x * (width / 12.0).min(1.0)).max(0.0);
        return centred(text, 1, rng, jitter);
    }
    let kind: f32 = rng.gen();
    if kind < 0.45 {
        // The gap between two letters of a word: centred between their inks.
        let text: String = (0..4).map(|_| random_letter(rng)).collect();
        let (placed, _) = layout(font, &text, scale)?;
        let left = placed.get(1).map_or(0.0, |p| ink_span(font, p, scale).1);
        let right = placed.get(2).map_or(0.0, |p| ink_span(font, p, scale).0);
        let centre_x = 0.5 * (left + right) + rng.gen_range(-1.0..=1.0f32).min(o.shift_x);
        Ok(Scene { text, centre_x })
    } else if kind < 0.8 {
        // A word space, centred between the inks on either side.
        let text = format!(
            "{}{} {}{}",
            random_letter(rng),
            random_letter(rng),
            random_letter(rng),
            random_letter(rng)
        );
        let (placed, _) = layout(font, &text, scale)?;
        let left = placed.get(1).map_or(0.0, |p| ink_span(font, p, scale).1);
        let right = placed.get(3).map_or(0.0, |p| ink_span(font, p, scale).0);
        let play = (0.25 * (right - left)).clamp(0.0, o.shift_x);
        let centre_x = 0.5 * (left + right) + rng.gen_range(-play..=play);
        Ok(Scene { text, centre_x })
    } else if kind < 0.9 {
        // The end of a line: a letter's ink a little off one side of the window.
        let text = random_letter(rng).to_string();
        let (placed, _) = layout(font, &text, scale)?;
        let (a, b) = placed
            .first()
            .map_or((0.0, 0.0), |p| ink_span(font, p, scale));
        let off = rng.gen_range(6.0..14.0f32);
        let centre_x = if rng.gen::<bool>() { b + off } else { a - off };
        Ok(Scene { text, centre_x })
    } else {
        Ok(Scene {
            text: String::new(),
            centre_x: 0.0,
        })
    }
}

/// Geometric jitter of one window: the map from window to text coordinates.
struct Warp {
    cos: f32,
    sin: f32,
    sx: f32,
    sy: f32,
    dx: f32,
    dy: f32,
}

impl Warp {
    fn random(o: &LetterOptions, rng: &mut Xoshiro256PlusPlus) -> Warp {
        let sym = |rng: &mut Xoshiro256PlusPlus, a: f32| {
            if a > 0.0 {
                rng.gen_range(-a..=a)
            } else {
                0.0
            }
        };
        let angle = sym(rng, o.rotate_deg).to_radians();
        let s = 1.0 + sym(rng, o.scale);
        let aspect = 1.0 + sym(rng, 0.5 * o.scale);
        Warp {
            cos: angle.cos(),
            sin: angle.sin(),
            sx: s * aspect,
            sy: s / aspect,
            dx: 0.0,
            dy: sym(rng, o.shift_y),
        }
    }

    /// Text-space offset from the anchor of the window point (u, v) given relative to the
    /// window's centre: undo the shift, the scale, then the rotation.
    fn source(&self, u: f32, v: f32) -> (f32, f32) {
        let (a, b) = ((u - self.dx) / self.sx, (v - self.dy) / self.sy);
        (self.cos * a + self.sin * b, -self.sin * a + self.cos * b)
    }
}

fn bilinear(img: &Gray, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (xi, yi) = (x0 as isize, y0 as isize);
    let top = img.get(xi, yi) * (1.0 - fx) + img.get(xi + 1, yi) * fx;
    let bottom = img.get(xi, yi + 1) * (1.0 - fx) + img.get(xi + 1, yi + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Grey-level dilation (`grow`) or erosion over the 3x3 neighbourhood.
fn morph(img: &Gray, grow: bool) -> Gray {
    let mut out = img.clone();
    for y in 0..img.height as isize {
        for x in 0..img.width as isize {
            let mut v = img.get(x, y);
            for (ox, oy) in [
                (-1, 0),
                (1, 0),
                (0, -1),
                (0, 1),
                (-1, -1),
                (1, 1),
                (-1, 1),
                (1, -1),
            ] {
                let n = img.get(x + ox, y + oy);
                v = if grow { v.max(n) } else { v.min(n) };
            }
            out.data[y as usize * img.width + x as usize] = v;
        }
    }
    out
}

/// Separable Gaussian blur with standard deviation `sigma` pixels.
pub(super) fn blur(img: &Gray, sigma: f32) -> Gray {
    if sigma < 0.05 {
        return img.clone();
    }
    let r = (2.5 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = k.iter().sum();
    let pass = |src: &Gray, horizontal: bool| {
        let mut out = Gray::new(src.width, src.height);
        for y in 0..src.height as isize {
            for x in 0..src.width as isize {
                let v: f32 = (-r..=r)
                    .zip(&k)
                    .map(|(i, w)| {
                        w * if horizontal {
                            src.get(x + i, y)
                        } else {
                            src.get(x, y + i)
                        }
                    })
                    .sum();
                out.data[y as usize * src.width + x as usize] = v / total;
            }
        }
        out
    };
    pass(&pass(img, true), false)
}

/// Draws the window for `label` with `font`: WINDOW x WINDOW coverage values 0..1.
pub(super) fn render_window(
    font: &Font,
    label: usize,
    o: &LetterOptions,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Gray> {
    let sc = scene(font, label, o, rng)?;
    let warp = Warp::random(o, rng);
    let big = (WINDOW * SS) as f32;
    let scale = line_scale(font, big);
    let (placed, width) = layout(font, &sc.text, scale)?;
    // Room around the text for shifts and rotation; canvas pixels are 1/SS text pixels.
    let pad = big;
    let mut canvas = Gray::new((width + 2.0 * pad).ceil() as usize, (3.0 * big) as usize);
    draw(
        font,
        &placed,
        scale,
        (pad, pad + (BASELINE_FRAC * big).round()),
        &mut canvas,
    );
    let half = WINDOW as f32 / 2.0;
    let ss = SS as f32;
    let mut fine = Gray::new(WINDOW * SS, WINDOW * SS);
    for v in 0..WINDOW * SS {
        for u in 0..WINDOW * SS {
            let (a, b) = warp.source((u as f32 + 0.5) / ss - half, (v as f32 + 0.5) / ss - half);
            let (x, y) = (
                (sc.centre_x + a) * ss + pad - 0.5,
                (half + b) * ss + pad - 0.5,
            );
            fine.data[v * WINDOW * SS + u] = bilinear(&canvas, x, y);
        }
    }
    if o.stroke {
        let step: f32 = rng.gen();
        fine = match step {
            s if s < 0.2 => morph(&fine, false),
            s if s < 0.45 => morph(&fine, true),
            s if s < 0.6 => morph(&morph(&fine, true), true),
            _ => fine,
        };
    }
    let mut out = Gray::new(WINDOW, WINDOW);
    for y in 0..WINDOW {
        for x in 0..WINDOW {
            let sum: f32 = (0..SS * SS)
                .map(|i| fine.data[(y * SS + i / SS) * WINDOW * SS + x * SS + i % SS])
                .sum();
            out.data[y * WINDOW + x] = sum / (SS * SS) as f32;
        }
    }
    finish(out, o, rng)
}

/// Photometric jitter: blur, contrast, noise.
fn finish(img: Gray, o: &LetterOptions, rng: &mut Xoshiro256PlusPlus) -> Result<Gray> {
    let mut img = if o.blur > 0.0 && rng.gen::<bool>() {
        blur(&img, rng.gen_range(0.0..o.blur))
    } else {
        img
    };
    let (paper, ink) = if o.noise > 0.0 && rng.gen::<bool>() {
        (rng.gen_range(0.0..0.12f32), rng.gen_range(0.7..1.0f32))
    } else {
        (0.0, 1.0)
    };
    let sigma = if o.noise > 0.0 {
        rng.gen_range(0.0..o.noise)
    } else {
        0.0
    };
    let normal = rand_distr::StandardNormal;
    for v in &mut img.data {
        let n: f32 = if sigma > 0.0 {
            sigma * rng.sample::<f32, _>(normal)
        } else {
            0.0
        };
        *v = (paper + (ink - paper) * *v + n).clamp(0.0, 1.0);
    }
    Ok(img)
}
