//! Concatenation along channels, and cropping of the spatial borders (MatConvNet's
//! `vl_nnconcat` along the channel axis and `vl_nncrop` with `[top bottom left
//! right]`). Both only move data, so their backward moves it back: concatenation's
//! gradient is split by channel counts, cropping's is padded with zeros.

use super::Pad;
use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Dims4, Tensor};

const CONCAT: &str = "concat";
const CROP: &str = "crop";

fn dims(block: &'static str, what: &str, t: &Tensor) -> Result<Dims4> {
    t.dims4()
        .map_err(|e| Error::block(block, format!("{what}: {e}")))
}

/// `shape` with its channel count set to `c`; tensors of rank 1 become NCHW.
fn with_channels(shape: &[usize], d: Dims4, c: usize) -> Vec<usize> {
    if shape.len() >= 2 {
        let mut s = shape.to_vec();
        s[1] = c;
        s
    } else {
        vec![d.n, c, d.h, d.w]
    }
}

/// Stacks the inputs' channels; all must share N, H and W. The output has the first
/// input's rank (a rank-1 input gives NCHW).
pub fn concat_forward(xs: &[&Tensor]) -> Result<Tensor> {
    let Some(first) = xs.first() else {
        return Err(Error::block(CONCAT, "no inputs to concatenate"));
    };
    let d0 = dims(CONCAT, "input 0", first)?;
    let mut ds = Vec::with_capacity(xs.len());
    for (k, x) in xs.iter().enumerate() {
        let d = dims(CONCAT, &format!("input {k}"), x)?;
        if (d.n, d.h, d.w) != (d0.n, d0.h, d0.w) {
            return Err(Error::block(
                CONCAT,
                format!(
                    "input {k} has shape {} but input 0 has {}: N, H and W must agree",
                    fmt_shape(x.shape()),
                    fmt_shape(first.shape())
                ),
            ));
        }
        ds.push(d);
    }
    let total: usize = ds.iter().map(|d| d.c).sum();
    let mut y = Tensor::zeros(&with_channels(first.shape(), d0, total))?;
    let out_image = total * d0.plane();
    if out_image == 0 {
        return Ok(y);
    }
    for (n, out) in y.data_mut().chunks_mut(out_image).enumerate() {
        let mut at = 0;
        for (x, d) in xs.iter().zip(&ds) {
            let m = d.image_len();
            out[at..at + m].copy_from_slice(&x.data()[n * m..(n + 1) * m]);
            at += m;
        }
    }
    Ok(y)
}

/// Splits dy back into one gradient per input, by the inputs' channel counts. Each
/// gradient has dy's rank with its own channel count.
pub fn concat_backward(channels: &[usize], dy: &Tensor) -> Result<Vec<Tensor>> {
    let d = dims(CONCAT, "dy", dy)?;
    let total: usize = channels.iter().sum();
    if total != d.c {
        return Err(Error::block(
            CONCAT,
            format!(
                "inputs have {channels:?} channels ({total} in all) but dy {} has {}",
                fmt_shape(dy.shape()),
                d.c
            ),
        ));
    }
    let mut dxs = channels
        .iter()
        .map(|&c| Tensor::zeros(&with_channels(dy.shape(), d, c)))
        .collect::<Result<Vec<_>>>()?;
    let out_image = d.image_len();
    if out_image == 0 {
        return Ok(dxs);
    }
    for (n, g) in dy.data().chunks(out_image).enumerate() {
        let mut at = 0;
        for (dx, &c) in dxs.iter_mut().zip(channels) {
            let m = c * d.plane();
            dx.data_mut()[n * m..(n + 1) * m].copy_from_slice(&g[at..at + m]);
            at += m;
        }
    }
    Ok(dxs)
}

/// The output size of cropping `x` by `crop`, or an error when nothing is left.
pub fn crop_dims(x: Dims4, crop: Pad) -> Result<Dims4> {
    let h = x.h.checked_sub(crop.top + crop.bottom).filter(|&h| h > 0);
    let w = x.w.checked_sub(crop.left + crop.right).filter(|&w| w > 0);
    match (h, w) {
        (Some(h), Some(w)) => Ok(Dims4::new(x.n, x.c, h, w)),
        _ => Err(Error::block(
            CROP,
            format!(
                "cropping top {} bottom {} left {} right {} from x {x} leaves nothing",
                crop.top, crop.bottom, crop.left, crop.right
            ),
        )),
    }
}

/// The start of each kept row: (offset in the uncropped tensor, offset in the cropped
/// one); each row is `y.w` long.
fn kept_rows(x: Dims4, y: Dims4, crop: Pad) -> impl Iterator<Item = (usize, usize)> {
    (0..y.n * y.c).flat_map(move |p| {
        (0..y.h).map(move |r| {
            let big = (p * x.h + r + crop.top) * x.w + crop.left;
            (big, (p * y.h + r) * y.w)
        })
    })
}

/// Removes `crop` rows/columns from each side. The output is NCHW.
pub fn crop_forward(x: &Tensor, crop: Pad) -> Result<Tensor> {
    let xd = dims(CROP, "x", x)?;
    let yd = crop_dims(xd, crop)?;
    let mut y = Tensor::zeros4(yd);
    let (src, dst) = (x.data(), y.data_mut());
    for (b, s) in kept_rows(xd, yd, crop) {
        dst[s..s + yd.w].copy_from_slice(&src[b..b + yd.w]);
    }
    Ok(y)
}

/// Pads dy with zeros back to the input's shape.
pub fn crop_backward(x_shape: &[usize], crop: Pad, dy: &Tensor) -> Result<Tensor> {
    let mut dx = Tensor::zeros(x_shape).map_err(|e| Error::block(CROP, format!("x: {e}")))?;
    let xd = dims(CROP, "x", &dx)?;
    let yd = crop_dims(xd, crop)?;
    let dd = dims(CROP, "dy", dy)?;
    if dd != yd {
        return Err(Error::block(
            CROP,
            format!(
                "dy has shape {} but cropping x {xd} gives {yd}",
                fmt_shape(dy.shape())
            ),
        ));
    }
    let (src, dst) = (dy.data(), dx.data_mut());
    for (b, s) in kept_rows(xd, yd, crop) {
        dst[b..b + yd.w].copy_from_slice(&src[s..s + yd.w]);
    }
    Ok(dx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random, Tolerance};

    fn seq(shape: &[usize], from: usize) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (from..from + n).map(|v| v as f32).collect()).unwrap()
    }

    #[test]
    fn concat_stacks_channels_image_by_image() {
        // a: 2 images of 1 channel of 1x2; b: 2 images of 2 channels of 1x2.
        let a = seq(&[2, 1, 1, 2], 0);
        let b = seq(&[2, 2, 1, 2], 10);
        let y = concat_forward(&[&a, &b]).unwrap();
        assert_eq!(y.shape(), &[2, 3, 1, 2]);
        let want = [
            0.0, 1.0, 10.0, 11.0, 12.0, 13.0, 2.0, 3.0, 14.0, 15.0, 16.0, 17.0,
        ];
        assert_eq!(y.data(), &want);
        let parts = concat_backward(&[1, 2], &y).unwrap();
        assert_eq!(parts, vec![a, b]);
    }

    #[test]
    fn concat_keeps_rank_and_skips_empty_inputs() {
        let a = seq(&[3, 2], 0);
        let none = seq(&[3, 0], 0);
        let b = seq(&[3, 1, 1, 1], 100);
        let y = concat_forward(&[&a, &none, &b]).unwrap();
        assert_eq!(y.shape(), &[3, 3]);
        assert_eq!(
            y.data(),
            &[0.0, 1.0, 100.0, 2.0, 3.0, 101.0, 4.0, 5.0, 102.0]
        );
        let parts = concat_backward(&[2, 0, 1], &y).unwrap();
        assert_eq!(parts[0], a);
        assert_eq!(parts[1].shape(), &[3, 0]);
        assert_eq!(parts[2].data(), b.data());
    }

    #[test]
    fn concat_derivatives() {
        for (k, cs) in [vec![1, 2], vec![3], vec![2, 1, 3]].iter().enumerate() {
            let xs: Vec<Tensor> = cs
                .iter()
                .enumerate()
                .map(|(j, &c)| random(&[2, c, 3, 2], (10 * k + j) as u64))
                .collect();
            let r = check(
                &xs,
                |i| concat_forward(&i.iter().collect::<Vec<_>>()),
                |_, dy| Ok(concat_backward(cs, dy)?.into_iter().map(Some).collect()),
                Tolerance::default(),
                k as u64,
            );
            assert!(r.is_ok(), "channels {cs:?}: {r:?}");
        }
    }

    #[test]
    fn crop_keeps_the_inner_window() {
        // One plane of 3x4 holding 0..12; crop top 1, bottom 0, left 1, right 2.
        let x = seq(&[1, 1, 3, 4], 0);
        let c = Pad::new(1, 0, 1, 2);
        let y = crop_forward(&x, c).unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 1]);
        assert_eq!(y.data(), &[5.0, 9.0]);
        let dx = crop_backward(x.shape(), c, &y).unwrap();
        let mut want = vec![0.0; 12];
        want[5] = 5.0;
        want[9] = 9.0;
        assert_eq!(dx.data(), &want);
        // Two images of two channels: every plane is cropped alike.
        let x = seq(&[2, 2, 3, 3], 0);
        let y = crop_forward(&x, Pad::all(1)).unwrap();
        assert_eq!(y.data(), &[4.0, 13.0, 22.0, 31.0]);
    }

    #[test]
    fn crop_derivatives() {
        let crops = [
            Pad::all(0),
            Pad::new(1, 0, 0, 2),
            Pad::new(0, 2, 1, 0),
            Pad::new(2, 1, 1, 1),
        ];
        for (k, &c) in crops.iter().enumerate() {
            let x = random(&[2, 3, 4, 5], k as u64);
            let shape = x.shape().to_vec();
            let r = check(
                &[x],
                |i| crop_forward(&i[0], c),
                |_, dy| Ok(vec![Some(crop_backward(&shape, c, dy)?)]),
                Tolerance::default(),
                k as u64,
            );
            assert!(r.is_ok(), "crop {c:?}: {r:?}");
        }
    }

    #[test]
    fn bad_inputs_are_errors_naming_the_block() {
        let text = |r: Result<Tensor>| r.unwrap_err().to_string();
        let a = random(&[2, 1, 3, 3], 0);
        let b = random(&[2, 2, 3, 4], 0);
        let e = text(concat_forward(&[&a, &a, &b]));
        assert!(
            e.contains("concat: input 2 has shape 2x2x3x4 but input 0 has 2x1x3x3"),
            "{e}"
        );
        let c = random(&[1, 1, 3, 3], 0);
        assert!(text(concat_forward(&[&a, &c])).contains("input 1 has shape 1x1x3x3"));
        assert!(text(concat_forward(&[])).starts_with("concat: no inputs"));
        let e = concat_backward(&[1, 2], &b).unwrap_err().to_string();
        assert!(
            e.contains("concat: inputs have [1, 2] channels (3 in all) but dy 2x2x3x4 has 2"),
            "{e}"
        );
        assert!(concat_backward(&[1, 1], &b).is_ok());

        let x = random(&[1, 1, 3, 4], 0);
        for c in [
            Pad::new(2, 1, 0, 0),
            Pad::new(0, 0, 4, 0),
            Pad::new(5, 0, 0, 0),
        ] {
            let e = text(crop_forward(&x, c));
            assert!(
                e.starts_with("crop: ") && e.contains("leaves nothing"),
                "{e}"
            );
            let e = text(crop_backward(x.shape(), c, &x));
            assert!(e.contains("leaves nothing"), "{e}");
        }
        let e = text(crop_backward(x.shape(), Pad::all(1), &x));
        assert!(
            e.contains("crop: dy has shape 1x1x3x4 but cropping x 1x1x3x4 gives 1x1x1x2"),
            "{e}"
        );
        let rank5 = Tensor::zeros(&[1, 1, 1, 1, 1]).unwrap();
        assert!(text(crop_forward(&rank5, Pad::all(0))).starts_with("crop: x: "));
    }
}
