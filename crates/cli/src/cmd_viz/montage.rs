//! Montages: grey or colour tiles (filters, feature maps) placed on an RGB canvas,
//! each mapped from a value range to black..white and enlarged with nearest-neighbour
//! sampling (so that a 5x5 filter stays a 5x5 grid of flat squares), plus text labels
//! drawn in the plot font.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// Canvas colour between tiles and behind labels.
pub const BACKGROUND: [u8; 3] = [255, 255, 255];
/// The 1 px frame around each tile, so that a tile's white reads apart from the
/// background (a neutral grey: grey pictures stay grey).
pub const FRAME: [u8; 3] = [150, 150, 150];

/// A picture of `h` x `w` values: one plane (grey) or three (red, green, blue), each
/// of `h * w` values, with the range that maps to black..white.
pub struct Tile<'a> {
    pub planes: Vec<&'a [f32]>,
    pub h: usize,
    pub w: usize,
    pub range: (f32, f32),
}

impl<'a> Tile<'a> {
    /// A tile scaled to the range of its own values.
    pub fn own_range(planes: Vec<&'a [f32]>, h: usize, w: usize) -> Tile<'a> {
        let range = value_range(planes.iter().flat_map(|p| p.iter().copied()));
        Tile {
            planes,
            h,
            w,
            range,
        }
    }
}

/// The smallest and largest finite value; (0, 0) when there is none.
pub fn value_range(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo <= hi {
        (lo, hi)
    } else {
        (0.0, 0.0)
    }
}

/// `v` on the 0..255 scale of `range`; a flat range (a constant map) gives mid grey,
/// so that "no contrast" never reads as black or white.
fn level(v: f32, (lo, hi): (f32, f32)) -> u8 {
    if hi > lo && v.is_finite() {
        ((v.clamp(lo, hi) - lo) / (hi - lo) * 255.0).round() as u8
    } else {
        128
    }
}

/// Cells of one size in a near-square grid, `gap` px apart and from the border.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    pub cols: usize,
    pub rows: usize,
    pub cell_w: usize,
    pub cell_h: usize,
    pub gap: usize,
}

impl Grid {
    /// `n` cells in `ceil(sqrt(n * (cell_h + gap) / (cell_w + gap)))` columns (at most
    /// `n`), which makes the whole picture about square, filled row by row.
    pub fn near_square(n: usize, cell_w: usize, cell_h: usize, gap: usize) -> Grid {
        let n = n.max(1);
        let aspect = (cell_h + gap) as f64 / (cell_w + gap).max(1) as f64;
        let cols = ((n as f64 * aspect).sqrt().ceil() as usize).clamp(1, n);
        Grid {
            cols,
            rows: n.div_ceil(cols),
            cell_w,
            cell_h,
            gap,
        }
    }

    /// Width and height of the picture in pixels.
    pub fn size(&self) -> (usize, usize) {
        (
            self.cols * self.cell_w + (self.cols + 1) * self.gap,
            self.rows * self.cell_h + (self.rows + 1) * self.gap,
        )
    }

    /// Top-left corner of cell `i`.
    pub fn origin(&self, i: usize) -> (usize, usize) {
        (
            self.gap + (i % self.cols) * (self.cell_w + self.gap),
            self.gap + (i / self.cols) * (self.cell_h + self.gap),
        )
    }
}

/// An RGB picture under construction.
pub struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    pub fn new(width: usize, height: usize) -> Result<Canvas> {
        let len = width
            .checked_mul(height)
            .and_then(|p| p.checked_mul(3))
            .filter(|_| u32::try_from(width).is_ok() && u32::try_from(height).is_ok())
            .ok_or_else(|| anyhow!("picture of {width}x{height} px is too large"))?;
        let mut rgb = vec![0u8; len];
        for px in rgb.chunks_exact_mut(3) {
            px.copy_from_slice(&BACKGROUND);
        }
        Ok(Canvas { width, height, rgb })
    }

    /// Draws `tile` with its top-left corner at (`x`, `y`), resampled to `tw` x `th`
    /// px by nearest neighbour, in a 1 px frame just outside that box. Whatever falls
    /// outside the canvas is left out.
    pub fn draw(&mut self, tile: &Tile, x: usize, y: usize, tw: usize, th: usize) {
        if tile.h == 0 || tile.w == 0 || tile.planes.is_empty() {
            return;
        }
        self.frame(x, y, tw, th);
        for dy in 0..th.min(self.height.saturating_sub(y)) {
            let sy = dy * tile.h / th;
            for dx in 0..tw.min(self.width.saturating_sub(x)) {
                let s = sy * tile.w + dx * tile.w / tw;
                let o = ((y + dy) * self.width + x + dx) * 3;
                let Some(px) = self.rgb.get_mut(o..o + 3) else {
                    continue;
                };
                for (c, v) in px.iter_mut().enumerate() {
                    // A grey tile has one plane, repeated into red, green and blue.
                    let plane = tile.planes.get(c).or(tile.planes.first());
                    *v = level(
                        plane.and_then(|p| p.get(s)).copied().unwrap_or(f32::NAN),
                        tile.range,
                    );
                }
            }
        }
    }

    /// The 1 px outline around the box of `w` x `h` px at (`x`, `y`).
    fn frame(&mut self, x: usize, y: usize, w: usize, h: usize) {
        let (x0, y0) = (x as isize - 1, y as isize - 1);
        let (x1, y1) = ((x + w) as isize, (y + h) as isize);
        for xx in x0..=x1 {
            self.set(xx, y0, FRAME);
            self.set(xx, y1, FRAME);
        }
        for yy in y0..=y1 {
            self.set(x0, yy, FRAME);
            self.set(x1, yy, FRAME);
        }
    }

    /// Sets one pixel; outside the canvas nothing happens.
    pub fn put(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        self.set(x as isize, y as isize, rgb);
    }

    fn set(&mut self, x: isize, y: isize, rgb: [u8; 3]) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return;
        }
        let o = (y as usize * self.width + x as usize) * 3;
        if let Some(px) = self.rgb.get_mut(o..o + 3) {
            px.copy_from_slice(&rgb);
        }
    }

    /// Writes each `(x, y, text)` in black, `size` px high, top-left at (x, y).
    pub fn labels(&mut self, labels: &[(usize, usize, String)], size: f64) -> Result<()> {
        crate::plot::init_font();
        let (w, h) = (self.width as u32, self.height as u32);
        let root = BitMapBackend::with_buffer(&mut self.rgb, (w, h)).into_drawing_area();
        let style = TextStyle::from(("sans-serif", size).into_font()).color(&BLACK);
        for (x, y, text) in labels {
            root.draw_text(text, &style, (*x as i32, *y as i32))
                .map_err(|e| anyhow!("drawing label '{text}': {e:?}"))?;
        }
        root.present().map_err(|e| anyhow!("{e:?}"))?;
        Ok(())
    }

    /// Encodes the canvas as PNG and writes it atomically.
    pub fn save(self, path: &Path) -> Result<()> {
        crate::plot::write_png(path, self.width as u32, self.height as u32, self.rgb)
            .map_err(|e| anyhow!("writing {}: {e:#}", path.display()))
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_about_square_and_cells_do_not_overlap() {
        let g = Grid::near_square(20, 40, 40, 2);
        assert!(g.cols * g.rows >= 20 && (g.cols - 1) * g.rows < 20);
        assert!(g.cols.abs_diff(g.rows) <= 1, "{g:?}");
        let (w, h) = g.size();
        let (x, y) = g.origin(19);
        assert!(x + 40 + 2 <= w && y + 40 + 2 <= h);
        assert_eq!(g.origin(1).0 - g.origin(0).0, 42);
        // Wide cells (a filter's channels side by side) give fewer columns.
        let wide = Grid::near_square(64, 8 * 40, 40, 6);
        assert!(wide.cols < wide.rows);
    }

    #[test]
    fn tiles_map_their_range_to_black_and_white_and_enlarge_by_nearest_neighbour() {
        let v = [1.0f32, 2.0, 3.0, 5.0];
        let tile = Tile::own_range(vec![&v], 2, 2);
        let mut c = Canvas::new(12, 12).unwrap();
        c.draw(&tile, 1, 1, 8, 8);
        let px = |c: &Canvas, x: usize, y: usize| c.rgb[(y * 12 + x) * 3];
        assert_eq!(px(&c, 1, 1), 0);
        assert_eq!(px(&c, 4, 4), 0);
        assert_eq!(px(&c, 5, 1), 64);
        assert_eq!(px(&c, 8, 8), 255);
        assert_eq!(px(&c, 0, 0), FRAME[0]);
        assert_eq!(px(&c, 9, 9), FRAME[0]);
        assert_eq!(px(&c, 10, 10), BACKGROUND[0]);
        assert_eq!(px(&c, 11, 0), BACKGROUND[0]);
        let flat = [7.0f32; 4];
        c.draw(&Tile::own_range(vec![&flat], 2, 2), 0, 0, 30, 30);
        assert_eq!(
            px(&c, 11, 11),
            128,
            "a constant tile is mid grey, and clipping is safe"
        );
    }
}
