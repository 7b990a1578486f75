//! `diagnostics.png`: MatConvNet's diagnose plots, per epoch. Five panels put one
//! slot per parameter or layer along the bottom and, within each slot, one mark per
//! epoch, light to dark: a dot at the spread (standard deviation) and a bar up to the
//! largest magnitude, on a log scale; zeros sit on the bottom edge as red crosses.
//! The sixth panel is the objective of every batch.

use crate::heatmap::blues;
use crate::plot::draw_png;
use anyhow::{anyhow, Result};
use convnet::train::diagnostics::{Diagnostics, Sample, TensorStats};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::BTreeMap;
use std::path::Path;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

const PANEL_W: u32 = 520;
const PANEL_H: u32 = 470;
/// Below the plotting area: room for names turned on their side.
const NAMES_H: u32 = 110;
const LEFT_H: u32 = 70;
/// The vanishing and too-large limits of the checks, drawn on the ratio panel.
const RATIO_LIMITS: [f64; 2] = [1e-7, 1e-1];

/// One mark: an epoch's spread and largest magnitude of one tensor (None: not seen).
#[derive(Clone, Copy, Debug, Default)]
struct Mark {
    spread: f64,
    top: f64,
}

/// A panel's slots: names along the bottom, and per slot one mark per epoch.
struct Slots {
    names: Vec<String>,
    /// `marks[slot][epoch index]`.
    marks: Vec<Vec<Option<Mark>>>,
}

/// The epochs that have samples, in order.
fn epochs(d: &Diagnostics) -> Vec<usize> {
    let mut e: Vec<usize> = d.samples.iter().map(|s| s.epoch).collect();
    e.dedup();
    e
}

/// For each name (in order of first appearance) and epoch, the mean spread and the
/// largest magnitude over that epoch's samples of the statistics `pick` returns.
fn slots(
    d: &Diagnostics,
    epochs: &[usize],
    items: impl Fn(&Sample) -> Vec<(String, Option<TensorStats>)>,
) -> Slots {
    let mut names: Vec<String> = Vec::new();
    let mut acc: BTreeMap<(usize, usize), (f64, f64, usize)> = BTreeMap::new();
    for s in &d.samples {
        let Some(e) = epochs.iter().position(|&e| e == s.epoch) else {
            continue;
        };
        for (name, stats) in items(s) {
            let k = match names.iter().position(|n| *n == name) {
                Some(k) => k,
                None => {
                    names.push(name);
                    names.len() - 1
                }
            };
            let Some(t) = stats else { continue };
            let a = acc.entry((k, e)).or_insert((0.0, 0.0, 0));
            a.0 += t.std;
            a.1 = a.1.max(t.max_abs());
            a.2 += 1;
        }
    }
    let mut marks = vec![vec![None; epochs.len()]; names.len()];
    for ((k, e), (spread, top, n)) in acc {
        marks[k][e] = Some(Mark {
            spread: spread / n as f64,
            top,
        });
    }
    Slots { names, marks }
}

/// The update ratios as marks: the dot is the solver's step, the bar reaches the
/// gradient's own step (SGD's rule) when that is larger, or the other way round.
fn ratio_slots(d: &Diagnostics, epochs: &[usize]) -> Slots {
    let mut names: Vec<String> = Vec::new();
    let mut acc: BTreeMap<(usize, usize), (f64, f64, usize)> = BTreeMap::new();
    for s in &d.samples {
        let Some(e) = epochs.iter().position(|&e| e == s.epoch) else {
            continue;
        };
        for p in s.params.iter().filter(|p| p.role == "weight") {
            let k = match names.iter().position(|n| *n == p.name) {
                Some(k) => k,
                None => {
                    names.push(p.name.clone());
                    names.len() - 1
                }
            };
            let (Some(u), g) = (p.update_ratio, p.grad_ratio) else {
                continue;
            };
            let a = acc.entry((k, e)).or_insert((0.0, 0.0, 0));
            a.0 += u;
            a.1 += g.unwrap_or(u);
            a.2 += 1;
        }
    }
    let mut marks = vec![vec![None; epochs.len()]; names.len()];
    for ((k, e), (u, g, n)) in acc {
        marks[k][e] = Some(Mark {
            spread: u / n as f64,
            top: g / n as f64,
        });
    }
    Slots { names, marks }
}

/// A log range covering every positive value of the marks and `extra`, in whole decades.
fn log_range(s: &Slots, extra: &[f64]) -> (f64, f64) {
    let vals = s
        .marks
        .iter()
        .flatten()
        .flatten()
        .flat_map(|m| [m.spread, m.top])
        .chain(extra.iter().copied())
        .filter(|v| *v > 0.0 && v.is_finite());
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if lo > hi {
        return (1e-3, 1.0);
    }
    let (lo, hi) = (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()),
    );
    (lo, if hi > lo { hi } else { lo * 10.0 })
}

/// The colour of epoch `e` of `n`: light to dark blue.
fn epoch_colour(e: usize, n: usize) -> RGBColor {
    blues(0.35 + 0.65 * (e + 1) as f64 / n.max(1) as f64)
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the diagnostics: {e:?}")
}

/// One log-scale panel of slots.
fn slot_panel(area: &Area, title: &str, s: &Slots, n_epochs: usize, lines: &[f64]) -> Result<()> {
    let (lo, hi) = log_range(s, lines);
    let n = s.names.len().max(1);
    let (plot, names) = area.split_vertically(PANEL_H - NAMES_H);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 17))
        .margin(8)
        .x_label_area_size(4)
        .y_label_area_size(LEFT_H)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    for &l in lines {
        chart
            .draw_series(LineSeries::new(
                [(-0.5, l), (n as f64 - 0.5, l)],
                RGBColor(200, 60, 60).stroke_width(1),
            ))
            .map_err(err)?;
    }
    let width = 0.8 / n_epochs.max(1) as f64;
    for (k, per_epoch) in s.marks.iter().enumerate() {
        for (e, m) in per_epoch.iter().enumerate() {
            let Some(m) = m else { continue };
            let x = k as f64 - 0.4 + width * (e as f64 + 0.5);
            let c = epoch_colour(e, n_epochs);
            let clamp = |v: f64| if v > 0.0 { v.clamp(lo, hi) } else { lo };
            let (a, b) = (clamp(m.spread), clamp(m.top));
            chart
                .draw_series([PathElement::new(vec![(x, a), (x, b)], c.stroke_width(2))])
                .map_err(err)?;
            if m.spread > 0.0 {
                chart
                    .draw_series([Circle::new((x, a), 3, c.filled())])
                    .map_err(err)?;
            } else {
                chart
                    .draw_series([Cross::new((x, lo), 4, RED.stroke_width(2))])
                    .map_err(err)?;
            }
        }
    }
    // Names on their side under their slots.
    let style = TextStyle::from(("sans-serif", 12).into_font())
        .pos(Pos::new(HPos::Right, VPos::Center))
        .transform(FontTransform::Rotate270);
    let x0 = names.get_base_pixel().0;
    for (k, name) in s.names.iter().enumerate() {
        let (px, _) = chart.backend_coord(&(k as f64, lo));
        let short: String = name.chars().take(16).collect();
        names
            .draw(&Text::new(short, (px - x0, 4), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// The objective of every batch, epochs apart by dashed lines, with the chance level.
fn objective_panel(area: &Area, d: &Diagnostics) -> Result<()> {
    let pts: Vec<(f64, f64)> = d
        .all_objectives()
        .enumerate()
        .map(|(i, v)| ((i + 1) as f64, v))
        .filter(|(_, v)| v.is_finite())
        .collect();
    let chance = (d.classes > 1).then(|| (d.classes as f64).ln());
    let (y0, y1) = pts
        .iter()
        .map(|p| p.1)
        .chain(chance)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let (y0, y1) = if y0 <= y1 {
        (y0.min(0.0), y1 * 1.05 + 1e-6)
    } else {
        (0.0, 1.0)
    };
    let x1 = (pts.len() as f64).max(2.0);
    let (plot, _) = area.split_vertically(PANEL_H - NAMES_H);
    let mut chart = ChartBuilder::on(&plot)
        .caption("objective per batch", ("sans-serif", 17))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(LEFT_H)
        .build_cartesian_2d(1.0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("batch")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    let mut at = 0.0;
    for o in &d.objectives {
        at += o.batches.len() as f64;
        chart
            .draw_series(DashedLineSeries::new(
                [(at + 0.5, y0), (at + 0.5, y1)],
                4,
                4,
                RGBColor(170, 170, 170).stroke_width(1),
            ))
            .map_err(err)?;
    }
    if let Some(c) = chance {
        chart
            .draw_series(LineSeries::new([(1.0, c), (x1, c)], RED.stroke_width(1)))
            .map_err(err)?
            .label(format!("chance: ln {} = {c:.3}", d.classes))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(1)));
    }
    chart
        .draw_series(LineSeries::new(pts, BLUE.stroke_width(1)))
        .map_err(err)?
        .label("objective")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Draws the record into `path`: parameters in the top row (values, gradients,
/// update/weight ratios), layers in the bottom row (outputs, derivatives reaching
/// them), and the objective per batch.
pub fn draw(d: &Diagnostics, path: &Path) -> Result<()> {
    let ep = epochs(d);
    let values = slots(d, &ep, |s| {
        s.params
            .iter()
            .map(|p| (p.name.clone(), Some(p.value)))
            .collect()
    });
    let grads = slots(d, &ep, |s| {
        s.params
            .iter()
            .map(|p| (p.name.clone(), Some(p.grad)))
            .collect()
    });
    let ratios = ratio_slots(d, &ep);
    let outputs = slots(d, &ep, |s| {
        s.layers
            .iter()
            .map(|l| (l.name.clone(), Some(l.output)))
            .collect()
    });
    let dys = slots(d, &ep, |s| {
        s.layers.iter().map(|l| (l.name.clone(), l.grad)).collect()
    });
    let legend_h = 34;
    let (w, h) = (3 * PANEL_W, 2 * PANEL_H + legend_h);
    let n = ep.len();
    draw_png(path, w, h, |root| {
        let (legend, body) = root.split_vertically(legend_h);
        legend_row(&legend, &ep)?;
        let p = body.split_evenly((2, 3));
        slot_panel(
            &p[0],
            "parameter values: std, bar to max |w|",
            &values,
            n,
            &[],
        )?;
        slot_panel(
            &p[1],
            "parameter gradients: std, bar to max |g|",
            &grads,
            n,
            &[],
        )?;
        slot_panel(
            &p[2],
            "|update| / |w| (dot), gradient step (bar end)",
            &ratios,
            n,
            &RATIO_LIMITS,
        )?;
        slot_panel(
            &p[3],
            "layer outputs: std, bar to max |y|",
            &outputs,
            n,
            &[],
        )?;
        slot_panel(&p[4], "derivatives reaching the outputs", &dys, n, &[])?;
        objective_panel(&p[5], d)
    })
}

/// The colour key of the epochs along the top.
fn legend_row(area: &Area, epochs: &[usize]) -> Result<()> {
    let style =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    area.draw(&Text::new(
        "per-layer statistics on sampled batches, one mark per epoch:",
        (10, 17),
        style.clone(),
    ))
    .map_err(err)?;
    let mut x = 430;
    let n = epochs.len();
    // At most a dozen keys: the first, the last, and evenly spaced ones between.
    let shown: Vec<usize> = if n <= 12 {
        (0..n).collect()
    } else {
        (0..12).map(|i| i * (n - 1) / 11).collect()
    };
    for e in shown {
        let c = epoch_colour(e, n);
        area.draw(&Circle::new((x, 17), 5, c.filled()))
            .map_err(err)?;
        let label = format!("epoch {}", epochs[e]);
        area.draw(&Text::new(label.clone(), (x + 9, 17), style.clone()))
            .map_err(err)?;
        x += 24 + 8 * label.len() as i32;
    }
    area.draw(&Cross::new((x + 10, 17), 4, RED.stroke_width(2)))
        .map_err(err)?;
    area.draw(&Text::new("all zero", (x + 20, 17), style))
        .map_err(err)?;
    Ok(())
}
