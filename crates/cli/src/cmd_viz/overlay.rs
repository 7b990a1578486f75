//! A heat map over an image: the fitted input on the left, and on the right the same
//! image in grey under the map (scaled to its own maximum, its cells placed where
//! they sit on the image and interpolated bilinearly between) on a blue-to-red scale,
//! with the scale below it. Both are enlarged by the whole factor that brings the
//! longer side to at least 224 px.

use super::montage::{Canvas, Tile};
use anyhow::Result;
use convnet::net::explain::Heat;
use std::path::Path;

const MIN_SIDE: usize = 224;
const MARGIN: usize = 8;
const GAP: usize = 12;
const TITLE_PX: usize = 24;
const BAR_PX: usize = 10;
const BAR_LABEL_PX: usize = 20;
const FONT: f64 = 15.0;

/// The classic "jet" scale: dark blue, blue, cyan, yellow, red, dark red over 0..=1.
pub fn jet(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let f = |c: f32| ((1.5 - (4.0 * t - c).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [f(3.0), f(2.0), f(1.0)]
}

/// Where a map's cells sit on the image: cell (i, j) at pixel row
/// `centre[0] + i * jump[0]`, column `centre[1] + j * jump[1]`.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    pub centre: [f64; 2],
    pub jump: [f64; 2],
}

impl Placement {
    /// A map of the image's own size.
    pub const PIXELS: Placement = Placement {
        centre: [0.0, 0.0],
        jump: [1.0, 1.0],
    };
}

/// `heat` over an `h` x `w` image, placed as `at` says and interpolated bilinearly
/// (beyond the outer cells, their values), divided by its largest value (all zeros
/// stay zeros).
pub fn fit(heat: &Heat, at: Placement, h: usize, w: usize) -> Vec<f32> {
    let value = |r: usize, c: usize| heat.values[r * heat.w + c];
    let coord = |i: usize, a: usize, m: usize| -> (usize, usize, f32) {
        let s = ((i as f64 - at.centre[a]) / at.jump[a]).clamp(0.0, (m - 1) as f64) as f32;
        let lo = s.floor() as usize;
        (lo, (lo + 1).min(m - 1), s - lo as f32)
    };
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        let (r0, r1, fy) = coord(y, 0, heat.h);
        for x in 0..w {
            let (c0, c1, fx) = coord(x, 1, heat.w);
            let top = value(r0, c0) * (1.0 - fx) + value(r0, c1) * fx;
            let bottom = value(r1, c0) * (1.0 - fx) + value(r1, c1) * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    let max = out.iter().copied().fold(0.0f32, f32::max);
    if max > 0.0 {
        out.iter_mut().for_each(|v| *v = (*v / max).max(0.0));
    }
    out
}

/// Draws the picture of `pixels` (0..255, C x H x W) and `heat` into `out` with a title;
/// returns its size.
#[allow(clippy::too_many_arguments)]
pub fn draw(
    out: &Path,
    pixels: &[f32],
    c: usize,
    h: usize,
    w: usize,
    heat: &Heat,
    at: Placement,
    title: &str,
) -> Result<(usize, usize)> {
    let f = MIN_SIDE.div_ceil(h.max(w).max(1)).max(1);
    let (pw, ph) = (w * f, h * f);
    let width = 2 * pw + GAP + 2 * MARGIN;
    let height = MARGIN + TITLE_PX + ph + 4 + BAR_PX + BAR_LABEL_PX + MARGIN;
    let mut canvas = Canvas::new(width, height)?;
    let plane = h * w;
    let planes: Vec<&[f32]> = pixels.chunks(plane.max(1)).take(c).collect();
    let shown = if c == 3 {
        planes.clone()
    } else {
        planes[..1].to_vec()
    };
    let top = MARGIN + TITLE_PX;
    let input = Tile {
        planes: shown,
        h,
        w,
        range: (0.0, 255.0),
    };
    canvas.draw(&input, MARGIN, top, pw, ph);
    let grey: Vec<f32> = (0..plane)
        .map(|i| planes.iter().map(|p| p[i]).sum::<f32>() / planes.len().max(1) as f32)
        .collect();
    let map = fit(heat, at, h, w);
    let x0 = MARGIN + pw + GAP;
    for y in 0..ph {
        for x in 0..pw {
            let i = (y / f) * w + x / f;
            let (g, v) = (grey[i].clamp(0.0, 255.0) / 255.0, map[i]);
            let alpha = 0.3 + 0.5 * v;
            let hot = jet(v);
            let px = hot.map(|k| ((1.0 - alpha) * g * 255.0 + alpha * k as f32).round() as u8);
            canvas.put(x0 + x, top + y, px);
        }
    }
    let bar_y = top + ph + 4;
    for x in 0..pw {
        let rgb = jet(x as f32 / (pw - 1).max(1) as f32);
        for y in 0..BAR_PX {
            canvas.put(x0 + x, bar_y + y, rgb);
        }
    }
    let below = bar_y + BAR_PX + 2;
    canvas.labels(
        &[
            (MARGIN, MARGIN, title.to_string()),
            (x0, below, "0".to_string()),
            (x0 + pw.saturating_sub(28), below, "max".to_string()),
        ],
        FONT,
    )?;
    let size = canvas.size();
    canvas.save(out)?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_runs_from_blue_to_red() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(0.5), [128, 255, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
    }

    #[test]
    fn a_map_is_placed_over_the_image_and_scaled_to_its_maximum() {
        // 2x2 cells centred on pixels 0.5 and 2.5 of 4x4: pixels between interpolate.
        let heat = Heat {
            h: 2,
            w: 2,
            values: vec![0.0, 2.0, 0.0, 4.0],
        };
        let at = Placement {
            centre: [0.5, 0.5],
            jump: [2.0, 2.0],
        };
        let m = fit(&heat, at, 4, 4);
        assert_eq!(m[0], 0.0);
        assert_eq!(m[15], 1.0);
        assert_eq!(m[3], 0.5);
        assert!((m[1] - 0.125).abs() < 1e-6, "{}", m[1]);
        let zero = Heat {
            h: 1,
            w: 1,
            values: vec![0.0],
        };
        assert!(fit(&zero, Placement::PIXELS, 3, 3)
            .iter()
            .all(|&v| v == 0.0));
        // A map of the image's size is the image's grid.
        let same = Heat {
            h: 1,
            w: 3,
            values: vec![1.0, 3.0, 2.0],
        };
        assert_eq!(
            fit(&same, Placement::PIXELS, 1, 3),
            vec![1.0 / 3.0, 1.0, 2.0 / 3.0]
        );
    }
}
