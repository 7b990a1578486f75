//! `convnet viz cam`: Grad-CAM (Selvaraju et al., 2017), a layer's output maps weighted
//! by the mean derivative of the class score over each, summed and rectified, drawn as
//! a heat map over the image. The layer is the last convolution whose output is
//! spatial, or `--layer`.

use super::explain::{class_name, prepare, ExplainArgs};
use super::overlay;
use anyhow::{bail, Result};
use convnet::net::explain::grad_cam;
use convnet::net::{LayerKind, Network};

#[derive(clap::Args)]
pub struct CamArgs {
    #[command(flatten)]
    pub explain: ExplainArgs,
    /// The layer whose output maps are weighted (default: the last convolution with a
    /// spatial output)
    #[arg(long)]
    pub layer: Option<String>,
}

pub fn run(args: CamArgs) -> Result<()> {
    let mut p = prepare(&args.explain)?;
    if let Some(name) = &args.layer {
        check_layer(&p.network, name)?;
    }
    let cam = grad_cam(&mut p.network, &p.x, p.class, args.layer.as_deref())?;
    let heat = &cam.heat;
    let (r, c) = heat.peak();
    let (ih, iw) = (p.opts.height, p.opts.width);
    let at = overlay::Placement {
        centre: cam.centre,
        jump: cam.jump,
    };
    println!(
        "Grad-CAM at layer '{}' ({} maps of {}x{}): peak at row {r}, column {c} of the map, centred on row {:.0}, column {:.0} of the input",
        cam.layer,
        cam.channels,
        heat.h,
        heat.w,
        at.centre[0] + r as f64 * at.jump[0],
        at.centre[1] + c as f64 * at.jump[1],
    );
    if heat.values.iter().all(|&v| v <= 0.0) {
        println!(
            "the map is zero everywhere: nothing in '{}' speaks for this class",
            cam.layer
        );
    }
    let caption = format!(
        "Grad-CAM of class {} at '{}'",
        class_name(&p.network, p.class),
        cam.layer
    );
    let o = &p.opts;
    let (w, h) = overlay::draw(&p.out, &p.pixels, o.channels, ih, iw, heat, at, &caption)?;
    println!(
        "wrote {} ({w}x{h} px: the input, and the map over it)",
        p.out.display()
    );
    Ok(())
}

/// Fails unless `name` is a layer with a spatial output after the forward pass; the
/// error lists those that are.
fn check_layer(network: &Network, name: &str) -> Result<()> {
    let spatial: Vec<&str> = network
        .layers()
        .iter()
        .filter(|l| !matches!(l.kind, LayerKind::Loss(_)))
        .filter(|l| {
            network
                .var(&l.output)
                .and_then(|t| t.dims4().ok())
                .is_some_and(|d| d.plane() > 1)
        })
        .map(|l| l.name.as_str())
        .collect();
    if spatial.contains(&name) {
        return Ok(());
    }
    let what = match network.layers().iter().find(|l| l.name == name) {
        Some(_) => format!("layer '{name}' has no spatial output (1x1 maps)"),
        None => format!("no layer '{name}'"),
    };
    bail!(
        "--layer: {what}; Grad-CAM needs one of the layers with spatial outputs: {}",
        spatial.join(", ")
    )
}
