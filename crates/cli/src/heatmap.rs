//! The confusion matrix as a heat map: true classes down the left, predicted classes
//! along the bottom, the count printed in every cell, and a colour scale of counts.

use crate::plot;
use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

const MARGIN: i32 = 12;
const LABEL_SIZE: f64 = 16.0;
const TITLE_SIZE: f64 = 18.0;
const BAR_GAP: i32 = 24;
const BAR_WIDTH: i32 = 18;
const GRID: RGBColor = RGBColor(200, 200, 200);

/// matplotlib's "Blues", light to dark.
const BLUES: [(u8, u8, u8); 9] = [
    (247, 251, 255),
    (222, 235, 247),
    (198, 219, 239),
    (158, 202, 225),
    (107, 174, 214),
    (66, 146, 198),
    (33, 113, 181),
    (8, 81, 156),
    (8, 48, 107),
];

/// The colour of `t` in 0..=1 on the Blues scale.
pub(crate) fn blues(t: f64) -> RGBColor {
    let x = t.clamp(0.0, 1.0) * (BLUES.len() - 1) as f64;
    let i = (x.floor() as usize).min(BLUES.len() - 2);
    let f = x - i as f64;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Where a count sits on the colour scale: zero stays white, and any other count gets at
/// least a light tint so that rare confusions stand out next to a large diagonal.
fn shade(count: usize, max: usize) -> Option<f64> {
    (count > 0).then(|| 0.12 + 0.88 * count as f64 / max.max(1) as f64)
}

fn font(size: f64) -> FontDesc<'static> {
    ("sans-serif", size).into_font()
}

/// Width and height of `text` in pixels (a rough estimate if the font fails).
fn text_size(text: &str, size: f64) -> (i32, i32) {
    font(size)
        .box_size(text)
        .map(|(w, h)| (w as i32, h as i32))
        .unwrap_or((
            (text.chars().count() as f64 * size * 0.6) as i32,
            size as i32,
        ))
}

fn draw_text(area: &Area, text: &str, at: (i32, i32), style: TextStyle) -> Result<()> {
    area.draw(&Text::new(text.to_string(), at, style))
        .map_err(|e| anyhow::anyhow!("drawing '{text}': {e}"))
}

fn style(size: f64, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from(font(size)).pos(Pos::new(h, v))
}

/// Pixel positions of the parts, worked out from the class names and counts.
struct Layout {
    k: i32,
    cell: i32,
    count_size: f64,
    /// Top-left corner of the grid.
    x0: i32,
    y0: i32,
    /// Column labels are turned on their side when they do not fit under a cell.
    rotate: bool,
    label_height: i32,
    width: u32,
    height: u32,
}

impl Layout {
    fn new(classes: &[String], max: usize, title: &str) -> Layout {
        let k = classes.len() as i32;
        let cell = (640 / k.max(1)).clamp(18, 64);
        let digits = max.to_string().len() as f64;
        let count_size = (cell as f64 * 0.42)
            .min(cell as f64 * 1.5 / digits)
            .max(7.0);
        let name_width = classes
            .iter()
            .map(|c| text_size(c, LABEL_SIZE).0)
            .max()
            .unwrap_or(0);
        let rotate = name_width > cell - 4;
        let label_height = if rotate {
            name_width + 6
        } else {
            LABEL_SIZE as i32 + 6
        };
        let x0 = MARGIN + LABEL_SIZE as i32 + 10 + name_width + 8;
        let y0 = MARGIN + TITLE_SIZE as i32 + 26;
        let scale_width = text_size(&max.to_string(), LABEL_SIZE).0.max(40);
        let width = (x0 + k * cell + BAR_GAP + BAR_WIDTH + 6 + scale_width + MARGIN)
            .max(text_size(title, TITLE_SIZE).0 + 2 * MARGIN);
        let height = y0 + k * cell + 4 + label_height + LABEL_SIZE as i32 + 10 + MARGIN;
        Layout {
            k,
            cell,
            count_size,
            x0,
            y0,
            rotate,
            label_height,
            width: width as u32,
            height: height as u32,
        }
    }

    fn cell_corner(&self, row: usize, col: usize) -> (i32, i32) {
        (
            self.x0 + col as i32 * self.cell,
            self.y0 + row as i32 * self.cell,
        )
    }

    fn grid_bottom(&self) -> i32 {
        self.y0 + self.k * self.cell
    }
}

fn cells(area: &Area, l: &Layout, m: &[Vec<usize>], max: usize) -> Result<()> {
    for (r, row) in m.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            let (x, y) = l.cell_corner(r, c);
            let t = shade(v, max);
            let fill = t.map_or(WHITE, blues);
            let corners = [(x, y), (x + l.cell, y + l.cell)];
            let err = |e| anyhow::anyhow!("drawing cell: {e}");
            area.draw(&Rectangle::new(corners, fill.filled()))
                .map_err(err)?;
            area.draw(&Rectangle::new(corners, GRID.stroke_width(1)))
                .map_err(err)?;
            let ink = if t.unwrap_or(0.0) > 0.55 {
                WHITE
            } else {
                BLACK
            };
            let s = style(l.count_size, HPos::Center, VPos::Center).color(&ink);
            draw_text(area, &v.to_string(), (x + l.cell / 2, y + l.cell / 2), s)?;
        }
    }
    Ok(())
}

fn labels(area: &Area, l: &Layout, classes: &[String]) -> Result<()> {
    for (i, name) in classes.iter().enumerate() {
        let (x, y) = l.cell_corner(i, i);
        let mid = l.cell / 2;
        draw_text(
            area,
            name,
            (l.x0 - 6, y + mid),
            style(LABEL_SIZE, HPos::Right, VPos::Center),
        )?;
        let below = (x + mid, l.grid_bottom() + 4);
        let s = if l.rotate {
            // Turned a quarter anticlockwise, the name ends just under its column.
            style(LABEL_SIZE, HPos::Right, VPos::Center).transform(FontTransform::Rotate270)
        } else {
            style(LABEL_SIZE, HPos::Center, VPos::Top)
        };
        draw_text(area, name, below, s)?;
    }
    let grid_mid = l.k * l.cell / 2;
    let below_labels = l.grid_bottom() + 4 + l.label_height;
    draw_text(
        area,
        "predicted class",
        (l.x0 + grid_mid, below_labels),
        style(LABEL_SIZE, HPos::Center, VPos::Top),
    )?;
    draw_text(
        area,
        "true class",
        (MARGIN + LABEL_SIZE as i32 / 2, l.y0 + grid_mid),
        style(LABEL_SIZE, HPos::Center, VPos::Center).transform(FontTransform::Rotate270),
    )
}

/// The colour bar to the right of the grid, with counts 0, max/2 and max.
fn scale(area: &Area, l: &Layout, max: usize) -> Result<()> {
    let x = l.x0 + l.k * l.cell + BAR_GAP;
    let (top, bottom) = (l.y0, l.grid_bottom());
    let span = (bottom - top).max(1);
    let err = |e| anyhow::anyhow!("drawing the colour scale: {e}");
    for dy in 0..span {
        let count = max as f64 * (1.0 - dy as f64 / span as f64);
        let t = if count < 0.5 {
            None
        } else {
            shade(count.round() as usize, max)
        };
        let colour = t.map_or(WHITE, blues);
        let y = top + dy;
        area.draw(&Rectangle::new(
            [(x, y), (x + BAR_WIDTH, y + 1)],
            colour.filled(),
        ))
        .map_err(err)?;
    }
    area.draw(&Rectangle::new(
        [(x, top), (x + BAR_WIDTH, bottom)],
        BLACK.stroke_width(1),
    ))
    .map_err(err)?;
    let ticks = if max >= 2 {
        vec![0, max / 2, max]
    } else {
        vec![0, max]
    };
    for v in ticks {
        let y = bottom - (v as f64 / max.max(1) as f64 * span as f64).round() as i32;
        area.draw(&PathElement::new(
            vec![(x + BAR_WIDTH, y), (x + BAR_WIDTH + 4, y)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
        draw_text(
            area,
            &v.to_string(),
            (x + BAR_WIDTH + 6, y),
            style(LABEL_SIZE * 0.85, HPos::Left, VPos::Center),
        )?;
    }
    draw_text(
        area,
        "count",
        (x + BAR_WIDTH / 2, top - 12),
        style(LABEL_SIZE * 0.85, HPos::Center, VPos::Bottom),
    )
}

/// Draws `m` (`m[true][predicted]` counts over `classes`) with `title` into a PNG.
pub fn confusion(path: &Path, classes: &[String], m: &[Vec<usize>], title: &str) -> Result<()> {
    let k = classes.len();
    if k == 0 {
        bail!("confusion heat map: no classes");
    }
    if m.len() != k || m.iter().any(|r| r.len() != k) {
        bail!("confusion heat map: the matrix is not {k} x {k} like the class list");
    }
    plot::init_font();
    let max = m.iter().flatten().copied().max().unwrap_or(0);
    let l = Layout::new(classes, max, title);
    plot::draw_png(path, l.width, l.height, |root| {
        draw_text(
            root,
            title,
            (l.width as i32 / 2, MARGIN),
            style(TITLE_SIZE, HPos::Center, VPos::Top),
        )?;
        cells(root, &l, m, max)?;
        labels(root, &l, classes)?;
        scale(root, &l, max)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_shades_grow_with_the_count_and_zero_is_white() {
        assert_eq!(shade(0, 10), None);
        let (a, b) = (shade(1, 10).unwrap(), shade(10, 10).unwrap());
        assert!(a > 0.0 && a < b && b <= 1.0);
        assert_eq!(blues(0.0), RGBColor(247, 251, 255));
        assert_eq!(blues(1.0), RGBColor(8, 48, 107));
    }

    #[test]
    fn heatmap_writes_a_png_with_a_dark_diagonal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let classes: Vec<String> = ["circle", "square", "triangle"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = vec![vec![20, 0, 1], vec![2, 17, 0], vec![0, 0, 19]];
        confusion(&path, &classes, &m, "test").unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        let l = Layout::new(&classes, 20, "test");
        assert_eq!((img.width(), img.height()), (l.width, l.height));
        // Sample near a cell's corner, away from the printed count.
        let at = |r, c| {
            let (x, y) = l.cell_corner(r, c);
            img.get_pixel((x + 3) as u32, (y + 3) as u32).0
        };
        assert_eq!(at(0, 1), [255, 255, 255]);
        assert!(at(0, 0)[0] < 60, "diagonal not dark: {:?}", at(0, 0));
        assert!(at(1, 0)[0] < 240 && at(1, 0)[0] > at(0, 0)[0]);
        assert!(confusion(&path, &classes, &m[..2], "bad").is_err());
    }
}
