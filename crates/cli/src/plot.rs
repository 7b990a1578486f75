//! Pictures the CLI writes: training curves (as MatConvNet's plotStatistics draws
//! them). Everything is drawn into a buffer and encoded with `image`, then written
//! atomically.

use anyhow::{Context, Result};
use convnet::train::EpochStats;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font under "sans-serif" (plotters draws no text without one).
pub fn init_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; a failure would only lose labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Encodes an RGB buffer as PNG and writes it atomically.
pub fn write_png(path: &Path, width: u32, height: u32, rgb: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(width, height, rgb).context("image buffer size")?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    convnet::atomic::write(path, &bytes)?;
    Ok(())
}

/// Draws into a fresh white RGB buffer of `width` x `height`, then writes the PNG.
pub fn draw_png<F>(path: &Path, width: u32, height: u32, draw: F) -> Result<()>
where
    F: FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
{
    init_font();
    let mut buf = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        draw(&root)?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    write_png(path, width, height, buf).with_context(|| format!("writing {}", path.display()))
}

type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

/// One panel: several series over epochs.
fn panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    series: &[Series],
) -> Result<()> {
    let points = series.iter().flat_map(|s| s.2.iter());
    let (mut x1, mut y0, mut y1) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let err = |e: plotters::drawing::DrawingAreaErrorKind<_>| anyhow::anyhow!("{e:?}");
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(1.0..x1.max(2.0), (y0 - pad).max(0.0)..y1 + pad)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for (name, color, pts) in series {
        let c = *color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// The objective and the top-1 error per epoch, training and validation.
pub fn curves(history: &[EpochStats], path: &Path) -> Result<()> {
    let pick = |f: &dyn Fn(&EpochStats) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|s| f(s).map(|v| (s.epoch as f64, v)))
            .collect()
    };
    let objective = [
        ("train", BLUE, pick(&|s| Some(s.train_objective))),
        ("val", RED, pick(&|s| s.val_objective)),
    ];
    let error = [
        ("train top-1", BLUE, pick(&|s| Some(s.train_top1err))),
        ("val top-1", RED, pick(&|s| s.val_top1err)),
        ("val top-5", MAGENTA, pick(&|s| s.val_top5err)),
    ];
    draw_png(path, 1000, 420, |root| {
        let panels = root.split_evenly((1, 2));
        panel(&panels[0], "objective", &objective)?;
        panel(&panels[1], "error", &error)?;
        Ok(())
    })
}
