//! Input normalisation computed from a training set and stored with the model: the mean
//! image (MatConvNet's MNIST recipe: subtract it from 0..255 pixels), or a mean and a
//! standard deviation per channel.

use std::borrow::Cow;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dataset::Dataset;
use super::source::Images;
use crate::error::{Error, Result};
use crate::tensor::{Dims4, Tensor};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalization {
    /// Pixels as they are.
    #[default]
    None,
    /// `x - mean`, with `mean` one image (CHW) of `channels` x `height` x `width`.
    MeanImage {
        channels: usize,
        height: usize,
        width: usize,
        mean: Vec<f32>,
    },
    /// `(x - mean[c]) / std[c]` per channel; a constant channel has `std` 1.
    PerChannel { mean: Vec<f32>, std: Vec<f32> },
}

fn nonempty(ds: &Dataset) -> Result<Dims4> {
    let d = ds.dims()?;
    if d.n == 0 || d.image_len() == 0 {
        return Err(Error::Invalid(format!(
            "normalisation: cannot compute statistics of an empty data set ({d})"
        )));
    }
    Ok(d)
}

/// Per-channel mean and (population) standard deviation over the `n` CHW images of `c`
/// planes of `plane` pixels that `image(k)` gives, summed in f64: each image's channel
/// sums are taken in parallel, then added in image order, so the result does not depend
/// on the threads. Two passes (means, then squared deviations) keep the variance accurate.
fn stats_per_channel<'a>(
    n: usize,
    [c, plane]: [usize; 2],
    image: impl Fn(usize) -> Result<Cow<'a, [f32]>> + Sync,
) -> Result<Normalization> {
    if n == 0 || c * plane == 0 {
        return Err(Error::Invalid(
            "normalisation: cannot compute statistics of an empty data set".into(),
        ));
    }
    let sums = |f: &(dyn Fn(usize, f32) -> f64 + Sync)| -> Result<Vec<f64>> {
        let per_image: Vec<Vec<f64>> = (0..n)
            .into_par_iter()
            .map(|k| {
                let img = image(k)?;
                if img.len() != c * plane {
                    return Err(Error::Invalid(format!(
                        "normalisation: image {k} has {} values, {c}x{plane} expected",
                        img.len()
                    )));
                }
                Ok(img
                    .chunks_exact(plane)
                    .enumerate()
                    .map(|(ch, p)| p.iter().map(|&x| f(ch, x)).sum::<f64>())
                    .collect())
            })
            .collect::<Result<_>>()?;
        let mut total = vec![0f64; c];
        for s in &per_image {
            total.iter_mut().zip(s).for_each(|(t, v)| *t += v);
        }
        Ok(total)
    };
    let count = (n * plane) as f64;
    let mut mean = sums(&|_, x| x as f64)?;
    mean.iter_mut().for_each(|m| *m /= count);
    let var = sums(&|ch, x| (x as f64 - mean[ch]).powi(2))?;
    let std = var
        .iter()
        .map(|&v| {
            let s = (v / count).sqrt() as f32;
            if s > 1e-6 {
                s
            } else {
                1.0
            }
        })
        .collect();
    Ok(Normalization::PerChannel {
        mean: mean.iter().map(|&m| m as f32).collect(),
        std,
    })
}

/// Up to `sample` of `n` images, evenly spread (so that a folder sorted by class is
/// sampled evenly): how many, and the index of the k-th.
fn spread(n: usize, sample: usize) -> (usize, impl Fn(usize) -> usize) {
    let m = n.min(sample);
    (m, move |k: usize| {
        (k as u128 * n as u128 / m.max(1) as u128) as usize
    })
}

impl Normalization {
    /// The mean image of `ds`, summed in f64 in image order.
    pub fn mean_image(ds: &Dataset) -> Result<Self> {
        let d = nonempty(ds)?;
        let m = d.image_len();
        let mut sum = vec![0f64; m];
        for img in ds.images.data().chunks_exact(m) {
            for (s, &x) in sum.iter_mut().zip(img) {
                *s += x as f64;
            }
        }
        Ok(Normalization::MeanImage {
            channels: d.c,
            height: d.h,
            width: d.w,
            mean: sum.iter().map(|&s| (s / d.n as f64) as f32).collect(),
        })
    }

    /// The mean and (population) standard deviation of each channel over all images and
    /// pixels of `ds`.
    pub fn per_channel(ds: &Dataset) -> Result<Self> {
        let d = nonempty(ds)?;
        stats_per_channel(d.n, [d.c, d.plane()], |k| ds.image(k).map(Cow::Borrowed))
    }

    /// [`Normalization::per_channel`] of an image set: every image of a set in memory;
    /// of a set of files, up to `sample` images evenly spread over it (as tested, not
    /// jittered), decoded in parallel without keeping them. A set of at most `sample`
    /// files gives the same statistics, bit for bit, as the same images in memory.
    pub fn per_channel_of(images: &Images, sample: usize) -> Result<Self> {
        let (c, h, w) = images.dims()?;
        match images {
            Images::Memory(ds) => Normalization::per_channel(ds),
            Images::Files(_) => {
                let (m, pick) = spread(images.len(), sample);
                stats_per_channel(m, [c, h * w], |k| images.plain(pick(k)).map(Cow::Owned))
            }
        }
    }

    /// [`Normalization::mean_image`] of an image set, sampled as in
    /// [`Normalization::per_channel_of`].
    pub fn mean_image_of(images: &Images, sample: usize) -> Result<Self> {
        let (c, h, w) = images.dims()?;
        match images {
            Images::Memory(ds) => Normalization::mean_image(ds),
            Images::Files(_) => {
                let (m, pick) = spread(images.len(), sample);
                if m == 0 {
                    return Err(Error::Invalid(
                        "normalisation: cannot compute statistics of an empty data set".into(),
                    ));
                }
                let mut sum = vec![0f64; c * h * w];
                for k in 0..m {
                    for (s, &x) in sum.iter_mut().zip(&images.plain(pick(k))?) {
                        *s += x as f64;
                    }
                }
                Ok(Normalization::MeanImage {
                    channels: c,
                    height: h,
                    width: w,
                    mean: sum.iter().map(|&s| (s / m as f64) as f32).collect(),
                })
            }
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Normalization::None)
    }

    /// Fails unless this normalisation fits images of `c` x `h` x `w`.
    pub fn check(&self, c: usize, h: usize, w: usize) -> Result<()> {
        let fits = match self {
            Normalization::None => true,
            Normalization::MeanImage {
                channels,
                height,
                width,
                mean,
            } => (*channels, *height, *width) == (c, h, w) && mean.len() == c * h * w,
            Normalization::PerChannel { mean, std } => mean.len() == c && std.len() == c,
        };
        if fits {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "normalisation: {} does not fit images of {c}x{h}x{w} (CxHxW)",
                self.describe()
            )))
        }
    }

    fn describe(&self) -> String {
        match self {
            Normalization::None => "none".into(),
            Normalization::MeanImage {
                channels,
                height,
                width,
                ..
            } => format!("a mean image of {channels}x{height}x{width}"),
            Normalization::PerChannel { mean, .. } => {
                format!("per-channel statistics of {} channels", mean.len())
            }
        }
    }

    /// Normalises one CHW image in place.
    pub fn apply_image(&self, image: &mut [f32], c: usize, h: usize, w: usize) -> Result<()> {
        self.check(c, h, w)?;
        if image.len() != c * h * w {
            return Err(Error::Invalid(format!(
                "normalisation: image has {} values, {c}x{h}x{w} expected",
                image.len()
            )));
        }
        match self {
            Normalization::None => {}
            Normalization::MeanImage { mean, .. } => {
                image.iter_mut().zip(mean).for_each(|(x, m)| *x -= m);
            }
            Normalization::PerChannel { mean, std } => {
                for ((plane, m), s) in image.chunks_exact_mut(h * w).zip(mean).zip(std) {
                    let inv = 1.0 / s;
                    plane.iter_mut().for_each(|x| *x = (*x - m) * inv);
                }
            }
        }
        Ok(())
    }

    /// Normalises every image of an NCHW tensor in place.
    pub fn apply(&self, batch: &mut Tensor) -> Result<()> {
        let d = batch.dims4()?;
        self.check(d.c, d.h, d.w)?;
        if d.image_len() == 0 {
            return Ok(());
        }
        for img in batch.data_mut().chunks_exact_mut(d.image_len()) {
            self.apply_image(img, d.c, d.h, d.w)?;
        }
        Ok(())
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| Error::Invalid(format!("normalisation: cannot serialise: {e}")))
    }

    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("normalisation: bad description: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two images of 2 channels x 1 x 2.
    fn ds() -> Dataset {
        let x = vec![0., 2., 10., 10., 4., 6., 10., 10.];
        let images = Tensor::from_vec(&[2, 2, 1, 2], x).unwrap();
        Dataset::new(images, vec![0, 0], vec!["a".into()]).unwrap()
    }

    #[test]
    fn normalize_mean_image_centres_the_training_set() {
        let d = ds();
        let n = Normalization::mean_image(&d).unwrap();
        let mut x = d.images.clone();
        n.apply(&mut x).unwrap();
        assert_eq!(x.data(), &[-2., -2., 0., 0., 2., 2., 0., 0.]);
    }

    #[test]
    fn normalize_per_channel_gives_zero_mean_unit_std() {
        let d = ds();
        let n = Normalization::per_channel(&d).unwrap();
        let Normalization::PerChannel { mean, std } = &n else {
            panic!("{n:?}")
        };
        assert_eq!(mean, &[3.0, 10.0]);
        assert!((std[0] - 5f32.sqrt()).abs() < 1e-6);
        assert_eq!(std[1], 1.0, "a constant channel is left unscaled");
        let mut x = d.images.clone();
        n.apply(&mut x).unwrap();
        let c0: Vec<f32> = [0, 1, 4, 5].iter().map(|&i| x.data()[i]).collect();
        let m: f32 = c0.iter().sum::<f32>() / 4.0;
        let v: f32 = c0.iter().map(|a| (a - m).powi(2)).sum::<f32>() / 4.0;
        assert!(m.abs() < 1e-6 && (v - 1.0).abs() < 1e-5, "{m} {v}");
    }

    #[test]
    fn normalize_round_trips_json_and_rejects_wrong_shapes() {
        for n in [
            Normalization::None,
            Normalization::mean_image(&ds()).unwrap(),
            Normalization::per_channel(&ds()).unwrap(),
        ] {
            assert_eq!(Normalization::from_json(&n.to_json().unwrap()).unwrap(), n);
        }
        let n = Normalization::mean_image(&ds()).unwrap();
        let mut wrong = Tensor::zeros(&[1, 2, 2, 1]).unwrap();
        assert!(n.apply(&mut wrong).is_err());
        assert!(n.apply_image(&mut [0.0; 3], 2, 1, 2).is_err());
        assert!(Normalization::from_json("{\"kind\":\"mean_image\"}").is_err());
        let empty = Dataset::new(Tensor::zeros(&[0, 1, 2, 2]).unwrap(), vec![], vec![]);
        assert!(Normalization::mean_image(&empty.unwrap()).is_err());
    }
}
