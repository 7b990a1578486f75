//! `convnet viz saliency`: the derivative of a class score with respect to the input
//! pixels (Simonyan, Vedaldi and Zisserman, 2014), its largest magnitude over the
//! channels of each pixel drawn as a heat map over the image.

use super::explain::{class_name, prepare, ExplainArgs};
use super::overlay;
use anyhow::Result;
use convnet::data::normalize::Normalization;
use convnet::net::explain::{input_gradient, saliency};
use convnet::Tensor;

pub fn run(args: ExplainArgs) -> Result<()> {
    let mut p = prepare(&args)?;
    let grad = input_gradient(&mut p.network, &p.x, p.class)?;
    let grad = per_pixel(grad, &p.norm)?;
    let heat = saliency(&grad)?;
    let (r, c) = heat.peak();
    println!(
        "saliency: |d score / d pixel|, the largest over the {} channel{}; peak at row {r}, column {c}",
        p.opts.channels,
        if p.opts.channels == 1 { "" } else { "s" }
    );
    let caption = format!(
        "saliency of class {}: |d score / d pixel|",
        class_name(&p.network, p.class)
    );
    let o = &p.opts;
    let (w, h) = overlay::draw(
        &p.out,
        &p.pixels,
        o.channels,
        o.height,
        o.width,
        &heat,
        overlay::Placement::PIXELS,
        &caption,
    )?;
    println!(
        "wrote {} ({w}x{h} px: the input, and the map over it)",
        p.out.display()
    );
    Ok(())
}

/// The derivative with respect to the pixels as loaded: a per-channel normalisation
/// divides each channel by its std, so its derivative does too.
fn per_pixel(mut grad: Tensor, norm: &Normalization) -> Result<Tensor> {
    if let Normalization::PerChannel { std, .. } = norm {
        let plane = grad.dims4()?.plane().max(1);
        for (ch, s) in grad.data_mut().chunks_mut(plane).zip(std.iter().cycle()) {
            ch.iter_mut().for_each(|v| *v /= s);
        }
    }
    Ok(grad)
}
