//! `convnet viz`: pictures of what a network learned. `filters` draws one convolution
//! layer's filters as a montage; `activations` draws the feature maps of every layer
//! for one input image, one labelled row per layer. Every filter and every map is
//! scaled to its own min..max range (black..white; a constant one is mid grey).
//! `saliency` and `cam` explain one prediction with a heat map over the image.

mod cam;
mod explain;
mod montage;
mod overlay;
mod saliency;

use crate::cmd_test;
use anyhow::{bail, Context, Result};
use convnet::blocks::softmax;
use convnet::data::digits;
use convnet::data::folder::{self, FolderOptions};
use convnet::data::normalize::Normalization;
use convnet::net::graph::Layer;
use convnet::net::{LayerKind, Mode, Network};
use convnet::Tensor;
use montage::{value_range, Canvas, Grid, Tile};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum Command {
    /// A convolution layer's filters as a montage, each scaled to its own range
    /// (in colour when the filters have 3 input channels)
    Filters(FiltersArgs),
    /// The feature maps of every layer for one image, one labelled row per layer
    #[command(override_usage = "convnet viz activations MODEL (IMAGE | --digit I) OUT.png")]
    Activations(ActivationsArgs),
    /// Which pixels a class score depends on: |d score / d pixel| as a heat map over the image
    #[command(
        override_usage = "convnet viz saliency MODEL (IMAGE | --digit I) OUT.png [--class C]"
    )]
    Saliency(explain::ExplainArgs),
    /// Grad-CAM: where a convolution layer sees evidence for a class, as a heat map over the image
    #[command(
        override_usage = "convnet viz cam MODEL (IMAGE | --digit I) OUT.png [--class C] [--layer L]"
    )]
    Cam(cam::CamArgs),
}

#[derive(clap::Args)]
pub struct FiltersArgs {
    /// A model file written by `convnet train`
    pub model: PathBuf,
    /// The PNG to write
    pub out: PathBuf,
    /// The convolution layer (default: the first one)
    #[arg(long)]
    pub layer: Option<String>,
}

#[derive(clap::Args)]
pub struct ActivationsArgs {
    /// A model file written by `convnet train`
    pub model: PathBuf,
    /// A PNG or JPEG image (fitted to the network's input as `convnet predict` does),
    /// then the PNG to write; with --digit, only the PNG to write
    #[arg(value_names = ["IMAGE", "OUT.png"], num_args = 1..=2, required = true)]
    pub paths: Vec<PathBuf>,
    /// Use image I of the embedded digits' test set instead of an image file (the set
    /// cycles through the classes, so image 7 is a 7)
    #[arg(long, value_name = "I")]
    pub digit: Option<usize>,
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Filters(a) => filters(a),
        Command::Activations(a) => activations(a),
        Command::Saliency(a) => saliency::run(a),
        Command::Cam(a) => cam::run(a),
    }
}

// ---------------------------------------------------------------- filters

/// Tiles are enlarged to at least this many pixels a side.
const FILTER_TILE_PX: usize = 40;
/// Filters drawn when each is one tile (grey with 1 input channel, or colour).
const MAX_SINGLE_TILE_FILTERS: usize = 256;
/// Filters, and input channels per filter, drawn when each channel is a grey tile.
const MAX_FILTERS: usize = 64;
const MAX_CHANNELS: usize = 8;

fn filters(args: FiltersArgs) -> Result<()> {
    let (network, _) = cmd_test::load(&args.model)?;
    let layer = conv_layer(&network, args.layer.as_deref())
        .with_context(|| format!("{}", args.model.display()))?;
    let w = weight(&network, layer)?;
    let m = FilterMontage::new(w.shape()).with_context(|| format!("layer '{}'", layer.name))?;
    let canvas = m.draw(w.data())?;
    let (width, height) = canvas.size();
    canvas.save(&args.out)?;
    println!(
        "layer {} ({}): {} filters of {}x{}x{} (in x h x w)",
        layer.name,
        layer.kind.type_name(),
        m.n,
        m.cin,
        m.kh,
        m.kw
    );
    println!("{}", m.describe());
    println!(
        "wrote {} ({width}x{height} px, {} x {} filters)",
        args.out.display(),
        m.grid.cols,
        m.grid.rows
    );
    Ok(())
}

/// How a weight of (n, cin, kh, kw) is drawn. Each shown filter is one cell: one
/// colour tile (cin == 3), one grey tile (cin == 1), or else its first channels as grey
/// tiles side by side, 1 px apart; cells of several tiles are set further apart so
/// that filters read as groups.
struct FilterMontage {
    n: usize,
    cin: usize,
    kh: usize,
    kw: usize,
    colour: bool,
    per_filter: usize,
    shown: usize,
    tile_w: usize,
    tile_h: usize,
    grid: Grid,
}

/// Pixels between the channel tiles of one filter.
const INNER_GAP: usize = 1;

impl FilterMontage {
    fn new(shape: &[usize]) -> Result<FilterMontage> {
        let &[n, cin, kh, kw] = shape else {
            bail!("weight has shape {shape:?}, (out, in, kh, kw) expected");
        };
        let colour = cin == 3;
        let per_filter = if colour || cin == 1 {
            1
        } else {
            cin.min(MAX_CHANNELS)
        };
        let cap = if per_filter == 1 {
            MAX_SINGLE_TILE_FILTERS
        } else {
            MAX_FILTERS
        };
        let shown = n.min(cap);
        let scale = FILTER_TILE_PX.div_ceil(kh.max(kw).max(1));
        let (tile_w, tile_h) = (kw * scale, kh * scale);
        let cell_w = per_filter * tile_w + (per_filter - 1) * INNER_GAP;
        let gap = if per_filter > 1 { 6 } else { 2 };
        Ok(FilterMontage {
            n,
            cin,
            kh,
            kw,
            colour,
            per_filter,
            shown,
            tile_w,
            tile_h,
            grid: Grid::near_square(shown, cell_w, tile_h, gap),
        })
    }

    /// The montage of the weight's values, each filter on the range of all its values.
    fn draw(&self, data: &[f32]) -> Result<Canvas> {
        let (width, height) = self.grid.size();
        let mut canvas = Canvas::new(width, height)?;
        let plane = self.kh * self.kw;
        let len = self.cin * plane;
        for f in 0..self.shown {
            let filter = data
                .get(f * len..(f + 1) * len)
                .context("weight data shorter than its shape")?;
            let channel = |c: usize| &filter[c * plane..(c + 1) * plane];
            let tiles: Vec<Vec<&[f32]>> = if self.colour {
                vec![(0..3).map(channel).collect()]
            } else {
                (0..self.per_filter).map(|c| vec![channel(c)]).collect()
            };
            let range = value_range(filter.iter().copied());
            let (x0, y0) = self.grid.origin(f);
            let (tw, th) = (self.tile_w, self.tile_h);
            for (c, planes) in tiles.into_iter().enumerate() {
                let tile = Tile {
                    planes,
                    h: self.kh,
                    w: self.kw,
                    range,
                };
                canvas.draw(&tile, x0 + c * (tw + INNER_GAP), y0, tw, th);
            }
        }
        Ok(canvas)
    }

    /// What was drawn, with the caps that applied.
    fn describe(&self) -> String {
        let what = if self.colour {
            "one colour tile per filter (input channels as red, green, blue)".to_string()
        } else if self.per_filter == 1 {
            "one grey tile per filter".to_string()
        } else {
            format!(
                "one row of grey tiles per filter, one tile per input channel (first {} of {})",
                self.per_filter, self.cin
            )
        };
        format!(
            "drew {} of {} filters: {what}; {}x{} px tiles, each filter scaled to its own range",
            self.shown, self.n, self.tile_w, self.tile_h
        )
    }
}

/// The convolution layer `name`, or the first one; an error lists them all.
fn conv_layer<'a>(network: &'a Network, name: Option<&str>) -> Result<&'a Layer> {
    let convs: Vec<&Layer> = network
        .layers()
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::Conv { .. }))
        .collect();
    let list = || {
        let names: Vec<&str> = convs.iter().map(|l| l.name.as_str()).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let Some(name) = name else {
        return convs
            .first()
            .copied()
            .context("the network has no convolution layer");
    };
    if let Some(l) = convs.iter().find(|l| l.name == name) {
        return Ok(l);
    }
    match network.layers().iter().find(|l| l.name == name) {
        Some(l) => bail!(
            "layer '{name}' is a {} layer, not a convolution (convolution layers: {})",
            l.kind.type_name(),
            list()
        ),
        None => bail!("no layer '{name}' (convolution layers: {})", list()),
    }
}

/// A layer's first parameter (a convolution's weight). `Layer::params` indexes the
/// network's list of parameters and buffers, which `named_tensors` gives in order.
fn weight<'a>(network: &'a Network, layer: &Layer) -> Result<&'a Tensor> {
    let tensors = network.named_tensors();
    layer
        .params
        .first()
        .and_then(|&i| tensors.get(i))
        .map(|&(_, t)| t)
        .with_context(|| format!("layer '{}' has no weight", layer.name))
}

// ------------------------------------------------------------ activations

/// Feature maps are enlarged by the whole factor that brings them nearest this size
/// (smaller ones), or shrunk to fit twice it (larger ones).
const MAP_PX: usize = 56;
const MAX_MAPS: usize = 32;
/// Space between maps, around the picture, and between rows.
const MAP_GAP: usize = 2;
const MARGIN: usize = 8;
const ROW_GAP: usize = 10;
const LABEL_PX: usize = 20;
const LABEL_FONT: f64 = 15.0;
/// Widest row of maps: also the width budget of a row of 1x1 maps (a vector).
const ROW_PX: usize = MAX_MAPS * (MAP_PX + MAP_GAP);
const VECTOR_CELL_H: usize = 24;

/// One row of the picture: a label and its tiles, each with its drawn size.
struct Row<'a> {
    label: String,
    tiles: Vec<(Tile<'a>, usize, usize)>,
}

impl Row<'_> {
    fn size(&self) -> (usize, usize) {
        let w = self.tiles.iter().map(|t| t.1 + MAP_GAP).sum::<usize>();
        let h = self.tiles.iter().map(|t| t.2).max().unwrap_or(0);
        (w.saturating_sub(MAP_GAP), h)
    }
}

/// The drawn size (width, height) of an `h` x `w` map.
fn map_px(h: usize, w: usize) -> (usize, usize) {
    let m = h.max(w).max(1);
    if m <= MAP_PX {
        // The whole factor nearest to MAP_PX / m.
        let f = ((2 * MAP_PX + m) / (2 * m)).max(1);
        (w * f, h * f)
    } else if m <= 2 * MAP_PX {
        (w, h)
    } else {
        let fit = |d: usize| (d * 2 * MAP_PX / m).max(1);
        (fit(w), fit(h))
    }
}

fn activations(args: ActivationsArgs) -> Result<()> {
    let (image, out) = input_and_output(args.digit, &args.paths)?;
    let (mut network, norm, opts) = cmd_test::load_for_images(&args.model)?;
    let (c, h, w) = (opts.channels, opts.height, opts.width);
    let (pixels, source, x) = load_input(&image, &opts, &norm)?;
    network.forward(&[("input", &x)], Mode::Test)?;

    println!("input: {source}, fitted to {c}x{h}x{w} (C x H x W)");
    let mut rows = vec![input_row(&pixels, c, h, w)];
    for layer in network.layers() {
        if matches!(layer.kind, LayerKind::Loss(_)) {
            continue;
        }
        let Some(t) = network.var(&layer.output) else {
            continue;
        };
        let Ok(d) = t.dims4() else { continue };
        let row = layer_row(layer, t.data(), d.c, d.h, d.w);
        println!("  {}", row.label);
        rows.push(row);
    }
    print_prediction(&network)?;
    let (width, height) = draw_rows(&rows, out)?;
    println!(
        "wrote {} ({width}x{height} px, {} rows: the input, then one per layer)",
        out.display(),
        rows.len()
    );
    Ok(())
}

enum Input<'a> {
    File(&'a Path),
    Digit(usize),
}

/// The input image and the PNG to write, from the positional paths and --digit.
fn input_and_output(digit: Option<usize>, paths: &[PathBuf]) -> Result<(Input<'_>, &Path)> {
    Ok(match (digit, paths) {
        (None, [image, out]) => (Input::File(image), out),
        (Some(i), [out]) => (Input::Digit(i), out),
        (None, [_]) => bail!("give an IMAGE and the PNG to write, or --digit I and the PNG"),
        (Some(_), _) => bail!("give either an IMAGE or --digit, not both"),
        _ => bail!("expected IMAGE OUT.png"),
    })
}

/// The input fitted to the network as `opts` says: its pixels (0..255, C x H x W, as
/// drawn), where it came from, and the normalised (1, C, H, W) tensor the network takes.
fn load_input(
    image: &Input,
    opts: &FolderOptions,
    norm: &Normalization,
) -> Result<(Vec<f32>, String, Tensor)> {
    let (c, h, w) = (opts.channels, opts.height, opts.width);
    let (pixels, source) = match image {
        Input::File(path) => (folder::load_image(path, opts)?, path.display().to_string()),
        Input::Digit(i) => embedded_digit(*i, opts)?,
    };
    let mut x = pixels.clone();
    norm.apply_image(&mut x, c, h, w)?;
    let x = Tensor::from_vec(&[1, c, h, w], x)?;
    Ok((pixels, source, x))
}

/// The most likely class and its softmax probability, when the network predicts.
fn print_prediction(network: &Network) -> Result<()> {
    let Some(p) = network.prediction() else {
        return Ok(());
    };
    let prob = softmax::softmax_forward(p)?;
    let prob = prob.data();
    if let Some(k) = (0..prob.len()).max_by(|&a, &b| prob[a].total_cmp(&prob[b])) {
        let name = network.classes().get(k).cloned().unwrap_or(k.to_string());
        println!("predicted class: {name} (probability {:.4})", prob[k]);
    }
    Ok(())
}

/// Test image `i` of the embedded digits, fitted to `opts` as an image file would be.
fn embedded_digit(i: usize, opts: &FolderOptions) -> Result<(Vec<f32>, String)> {
    let test = digits::test()?;
    let n = test.len();
    let (Ok(pixels), Some(label)) = (test.image(i), test.labels.get(i)) else {
        bail!(
            "--digit {i}: the embedded test set has images 0..{}",
            n.saturating_sub(1)
        );
    };
    let [_, _, dh, dw] = test.images.shape() else {
        bail!("embedded digits: unexpected shape");
    };
    let bytes: Vec<u8> = pixels.iter().map(|&p| p.clamp(0.0, 255.0) as u8).collect();
    let grey =
        image::GrayImage::from_raw(*dw as u32, *dh as u32, bytes).context("embedded digit size")?;
    let fitted = folder::image_to_chw(&image::DynamicImage::ImageLuma8(grey), opts)?;
    let class = test.classes.get(*label).cloned().unwrap_or_default();
    Ok((fitted, format!("embedded test digit {i} (a {class})")))
}

/// The input as loaded (0..255, before normalisation): one colour tile when it has 3
/// channels, else one grey tile per channel.
fn input_row(pixels: &[f32], c: usize, h: usize, w: usize) -> Row<'_> {
    let planes: Vec<&[f32]> = pixels.chunks((h * w).max(1)).collect();
    let (tw, th) = map_px(h, w);
    let tiles = if c == 3 {
        vec![(
            Tile {
                planes,
                h,
                w,
                range: (0.0, 255.0),
            },
            tw,
            th,
        )]
    } else {
        planes
            .into_iter()
            .take(MAX_MAPS)
            .map(|p| {
                (
                    Tile {
                        planes: vec![p],
                        h,
                        w,
                        range: (0.0, 255.0),
                    },
                    tw,
                    th,
                )
            })
            .collect()
    };
    Row {
        label: format!("input  {c} x {h} x {w}"),
        tiles,
    }
}

/// A layer's output for one image: up to `MAX_MAPS` maps each scaled to its own range,
/// or, when the maps are 1x1 (a fully connected output), one strip of `cell` px per value
/// scaled to the range of the whole vector (a 1x1 map has no range of its own).
fn layer_row<'a>(layer: &Layer, data: &'a [f32], c: usize, h: usize, w: usize) -> Row<'a> {
    let name = if layer.output == layer.name {
        layer.name.clone()
    } else {
        format!("{} -> {}", layer.name, layer.output)
    };
    let mut label = format!("{name}  {}  {c} x {h} x {w}", layer.kind.type_name());
    let tiles = if h * w == 1 {
        let shown = c.min(ROW_PX / 2);
        let cell = (ROW_PX / shown.max(1)).clamp(2, 32);
        if shown < c {
            label += &format!("  (first {shown} values)");
        }
        let values = &data[..shown.min(data.len())];
        let strip = Tile::own_range(vec![values], 1, values.len());
        vec![(strip, cell * values.len(), VECTOR_CELL_H)]
    } else {
        if c > MAX_MAPS {
            label += &format!("  (first {MAX_MAPS} maps)");
        }
        let (tw, th) = map_px(h, w);
        data.chunks((h * w).max(1))
            .take(MAX_MAPS)
            .map(|m| (Tile::own_range(vec![m], h, w), tw, th))
            .collect()
    };
    Row { label, tiles }
}

/// Draws the rows top to bottom, each under its label, and writes the PNG.
fn draw_rows(rows: &[Row], out: &Path) -> Result<(usize, usize)> {
    let widest = rows.iter().map(|r| r.size().0).max().unwrap_or(0);
    // Labels are short; this leaves room for the longest without measuring text.
    let label_w = rows.iter().map(|r| r.label.len() * 9).max().unwrap_or(0);
    let width = widest.max(label_w) + 2 * MARGIN;
    let height = rows
        .iter()
        .map(|r| LABEL_PX + r.size().1 + ROW_GAP)
        .sum::<usize>()
        + 2 * MARGIN;
    let mut canvas = Canvas::new(width, height)?;
    let mut labels = Vec::with_capacity(rows.len());
    let mut y = MARGIN;
    for row in rows {
        labels.push((MARGIN, y + 2, row.label.clone()));
        y += LABEL_PX;
        let mut x = MARGIN;
        for (tile, tw, th) in &row.tiles {
            canvas.draw(tile, x, y, *tw, *th);
            x += tw + MAP_GAP;
        }
        y += row.size().1 + ROW_GAP;
    }
    canvas.labels(&labels, LABEL_FONT)?;
    let size = canvas.size();
    canvas.save(out)?;
    Ok(size)
}
