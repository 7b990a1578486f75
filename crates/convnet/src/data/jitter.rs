//! Data augmentation on the fly, one image at a time: a random affine warp (translation,
//! rotation, scaling, mirroring) sampled bilinearly, then brightness and contrast, then
//! additive Gaussian noise. All amounts are in the images' own units (pixels 0..255 for
//! the digits), applied before normalisation; nothing is clamped.
//!
//! Randomness comes only from the generator passed in, with a fixed number of draws per
//! image, so the caller decides the stream (the batcher derives one per image from the
//! seed, the epoch and the image's index).

use rand::RngCore;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a sample from outside the image reads.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Border {
    /// A constant value (0: black, the digits' background).
    Constant(f32),
    /// The nearest edge pixel.
    Replicate,
}

/// The ranges random transformations are drawn from; [`Jitter::none`] changes nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Jitter {
    /// Largest shift in pixels along each axis, drawn uniformly in `[-t, t]`.
    pub translate: f32,
    /// Largest rotation in degrees, drawn uniformly in `[-r, r]`.
    pub rotate: f32,
    /// Zoom factor drawn uniformly in `[scale[0], scale[1]]`; `[1, 1]` keeps the size.
    pub scale: [f32; 2],
    /// Mirror left-right with probability 1/2 (off for digits and letters).
    pub mirror: bool,
    /// Standard deviation of the additive Gaussian noise per pixel.
    pub noise: f32,
    /// Largest offset added to every pixel, drawn uniformly in `[-b, b]`.
    pub brightness: f32,
    /// Largest relative contrast change: pixels move away from (or toward) the image's
    /// mean by a factor drawn uniformly in `[1 - c, 1 + c]`.
    pub contrast: f32,
    pub border: Border,
}

impl Default for Jitter {
    fn default() -> Self {
        Jitter::none()
    }
}

/// One image's draw: the transformation actually applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Draw {
    /// Shift in pixels; positive moves the content right / down.
    pub dx: f32,
    pub dy: f32,
    /// Rotation in degrees about the image centre.
    pub angle: f32,
    pub scale: f32,
    pub mirror: bool,
    pub brightness: f32,
    pub contrast: f32,
    pub noise: f32,
    /// Seeds the per-pixel noise stream.
    pub noise_seed: u64,
}

/// Uniform in [0, 1) from 24 random bits, independent of `rand`'s version.
fn unit(rng: &mut impl RngCore) -> f32 {
    (rng.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
}

fn symmetric(rng: &mut impl RngCore, a: f32) -> f32 {
    (2.0 * unit(rng) - 1.0) * a
}

/// A standard normal by Box-Muller (one of the pair; simple and version-proof).
fn gaussian(rng: &mut impl RngCore) -> f32 {
    let u1 = 1.0 - unit(rng); // (0, 1], so ln is finite
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

impl Jitter {
    /// No jittering.
    pub fn none() -> Self {
        Jitter {
            translate: 0.0,
            rotate: 0.0,
            scale: [1.0, 1.0],
            mirror: false,
            noise: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            border: Border::Constant(0.0),
        }
    }

    /// A mild geometric jitter for 28x28 digits: shifts of up to 2 pixels, rotations of
    /// up to 10 degrees, zoom 0.9..1.1, black border, no mirroring.
    pub fn digits() -> Self {
        Jitter {
            translate: 2.0,
            rotate: 10.0,
            scale: [0.9, 1.1],
            ..Jitter::none()
        }
    }

    pub fn is_identity(&self) -> bool {
        self.translate == 0.0
            && self.rotate == 0.0
            && self.scale == [1.0, 1.0]
            && !self.mirror
            && self.noise == 0.0
            && self.brightness == 0.0
            && self.contrast == 0.0
    }

    /// Fails on a negative or non-finite amount, or an empty or non-positive scale range.
    pub fn validate(&self) -> Result<()> {
        let bad = |opt: &str, why: &str| Err(Error::Invalid(format!("jitter: {opt} {why}")));
        for (name, v) in [
            ("translate", self.translate),
            ("rotate", self.rotate),
            ("noise", self.noise),
            ("brightness", self.brightness),
            ("contrast", self.contrast),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, &format!("must be a finite number >= 0, got {v}"));
            }
        }
        if self.contrast >= 1.0 {
            return bad(
                "contrast",
                &format!("must be below 1, got {}", self.contrast),
            );
        }
        let [lo, hi] = self.scale;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            return bad(
                "scale",
                &format!("must be a range 0 < min <= max, got [{lo}, {hi}]"),
            );
        }
        if let Border::Constant(v) = self.border {
            if !v.is_finite() {
                return bad("border", &format!("value must be finite, got {v}"));
            }
        }
        Ok(())
    }

    /// One image's transformation; always takes the same number of draws from `rng`.
    pub fn draw(&self, rng: &mut impl RngCore) -> Draw {
        let [lo, hi] = self.scale;
        Draw {
            dx: symmetric(rng, self.translate),
            dy: symmetric(rng, self.translate),
            angle: symmetric(rng, self.rotate),
            scale: lo + (hi - lo) * unit(rng),
            mirror: (rng.next_u64() >> 63 == 1) && self.mirror,
            brightness: symmetric(rng, self.brightness),
            contrast: 1.0 + symmetric(rng, self.contrast),
            noise: self.noise,
            noise_seed: rng.next_u64(),
        }
    }

    /// A jittered copy of one CHW image of `c` x `h` x `w`.
    pub fn apply(
        &self,
        image: &[f32],
        c: usize,
        h: usize,
        w: usize,
        rng: &mut impl RngCore,
    ) -> Result<Vec<f32>> {
        self.validate()?;
        check_len(image, c, h, w)?;
        if self.is_identity() {
            return Ok(image.to_vec());
        }
        self.draw(rng).apply(image, c, h, w, self.border)
    }
}

fn check_len(image: &[f32], c: usize, h: usize, w: usize) -> Result<()> {
    let want = c.checked_mul(h).and_then(|x| x.checked_mul(w));
    if want != Some(image.len()) {
        return Err(Error::Invalid(format!(
            "jitter: image has {} values, {c}x{h}x{w} (CxHxW) expected",
            image.len()
        )));
    }
    Ok(())
}

impl Draw {
    /// The draw that changes nothing.
    pub fn identity() -> Self {
        Draw {
            dx: 0.0,
            dy: 0.0,
            angle: 0.0,
            scale: 1.0,
            mirror: false,
            brightness: 0.0,
            contrast: 1.0,
            noise: 0.0,
            noise_seed: 0,
        }
    }

    fn is_geometric_identity(&self) -> bool {
        self.dx == 0.0 && self.dy == 0.0 && self.angle == 0.0 && self.scale == 1.0 && !self.mirror
    }

    /// Applies this draw to one CHW image of `c` x `h` x `w`.
    pub fn apply(
        &self,
        image: &[f32],
        c: usize,
        h: usize,
        w: usize,
        border: Border,
    ) -> Result<Vec<f32>> {
        check_len(image, c, h, w)?;
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(Error::Invalid(format!(
                "jitter: scale must be positive, got {}",
                self.scale
            )));
        }
        let mut out = if self.is_geometric_identity() {
            image.to_vec()
        } else {
            self.warp(image, c, h, w, border)
        };
        self.photometric(&mut out);
        Ok(out)
    }

    /// Output pixel q reads the source at `mirror(R(-angle) (q - centre - shift) / scale)
    /// + centre`, so content moves by (dx, dy), turns by `angle` and grows by `scale`.
    fn warp(&self, image: &[f32], c: usize, h: usize, w: usize, border: Border) -> Vec<f32> {
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        let (sin, cos) = self.angle.to_radians().sin_cos();
        let inv = 1.0 / self.scale;
        let flip = if self.mirror { -1.0 } else { 1.0 };
        let plane = h * w;
        let mut out = vec![0f32; image.len()];
        for y in 0..h {
            for x in 0..w {
                let qx = x as f32 - cx - self.dx;
                let qy = y as f32 - cy - self.dy;
                let sx = flip * (cos * qx + sin * qy) * inv + cx;
                let sy = (-sin * qx + cos * qy) * inv + cy;
                let taps = Taps::new(sx, sy, h, w);
                for ch in 0..c {
                    let src = &image[ch * plane..(ch + 1) * plane];
                    out[ch * plane + y * w + x] = taps.sample(src, border);
                }
            }
        }
        out
    }

    fn photometric(&self, img: &mut [f32]) {
        if self.contrast != 1.0 || self.brightness != 0.0 {
            let mean =
                (img.iter().map(|&v| v as f64).sum::<f64>() / img.len().max(1) as f64) as f32;
            for v in img.iter_mut() {
                *v = (*v - mean) * self.contrast + mean + self.brightness;
            }
        }
        if self.noise > 0.0 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.noise_seed);
            for v in img.iter_mut() {
                *v += self.noise * gaussian(&mut rng);
            }
        }
    }
}

/// The four neighbours of a sample point and their bilinear weights.
struct Taps {
    x0: isize,
    y0: isize,
    fx: f32,
    fy: f32,
    h: usize,
    w: usize,
}

impl Taps {
    fn new(sx: f32, sy: f32, h: usize, w: usize) -> Self {
        let (fx0, fy0) = (sx.floor(), sy.floor());
        Taps {
            x0: fx0 as isize,
            y0: fy0 as isize,
            fx: sx - fx0,
            fy: sy - fy0,
            h,
            w,
        }
    }

    fn at(&self, src: &[f32], y: isize, x: isize, border: Border) -> f32 {
        let inside = y >= 0 && x >= 0 && (y as usize) < self.h && (x as usize) < self.w;
        match border {
            _ if inside => src[y as usize * self.w + x as usize],
            Border::Constant(v) => v,
            Border::Replicate => {
                let yc = y.clamp(0, self.h as isize - 1) as usize;
                let xc = x.clamp(0, self.w as isize - 1) as usize;
                src[yc * self.w + xc]
            }
        }
    }

    fn sample(&self, src: &[f32], border: Border) -> f32 {
        let (x, y) = (self.x0, self.y0);
        let top = lerp(
            self.at(src, y, x, border),
            self.at(src, y, x + 1, border),
            self.fx,
        );
        let bottom = lerp(
            self.at(src, y + 1, x, border),
            self.at(src, y + 1, x + 1, border),
            self.fx,
        );
        lerp(top, bottom, self.fy)
    }
}

/// Exactly `a` when `t` is 0, so whole-pixel shifts copy pixels unchanged.
fn lerp(a: f32, b: f32, t: f32) -> f32 {
    if t == 0.0 {
        a
    } else {
        a + t * (b - a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-channel 3x4 image with distinct values.
    fn img() -> Vec<f32> {
        (0..24).map(|i| i as f32 * 10.0 + 1.0).collect()
    }

    fn rng(seed: u64) -> Xoshiro256PlusPlus {
        Xoshiro256PlusPlus::seed_from_u64(seed)
    }

    #[test]
    fn jitter_identity_leaves_the_image_unchanged() {
        let j = Jitter::none();
        assert!(j.is_identity());
        assert_eq!(j.apply(&img(), 2, 3, 4, &mut rng(1)).unwrap(), img());
        // The identity draw through the full warp path is exact too.
        let out = Draw::identity()
            .apply(&img(), 2, 3, 4, Border::Replicate)
            .unwrap();
        assert_eq!(out, img());
        let mut d = Draw::identity();
        d.angle = 360.0;
        let out = d.apply(&img(), 2, 3, 4, Border::Constant(0.0)).unwrap();
        assert!(out.iter().zip(img()).all(|(a, b)| (a - b).abs() < 1e-3));
    }

    #[test]
    fn jitter_one_pixel_translation_moves_pixels() {
        let src = img();
        let mut d = Draw::identity();
        d.dx = 1.0;
        let out = d.apply(&src, 2, 3, 4, Border::Constant(-5.0)).unwrap();
        for ch in 0..2 {
            for y in 0..3 {
                let row = &out[ch * 12 + y * 4..ch * 12 + y * 4 + 4];
                let s = &src[ch * 12 + y * 4..ch * 12 + y * 4 + 4];
                assert_eq!(row, &[-5.0, s[0], s[1], s[2]]);
            }
        }
        let mut d = Draw::identity();
        d.dy = -1.0;
        let out = d.apply(&src, 2, 3, 4, Border::Replicate).unwrap();
        assert_eq!(&out[..8], &src[4..12]);
        assert_eq!(&out[8..12], &src[8..12], "replicated bottom row");
    }

    #[test]
    fn jitter_rotation_and_scale_about_the_centre() {
        // 3x3 with distinct values: a quarter turn is a transpose plus a flip.
        let src: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut d = Draw::identity();
        d.angle = 90.0;
        let out = d.apply(&src, 1, 3, 3, Border::Constant(0.0)).unwrap();
        let rot: Vec<f32> = [3., 6., 9., 2., 5., 8., 1., 4., 7.].to_vec();
        let rot_other: Vec<f32> = [7., 4., 1., 8., 5., 2., 9., 6., 3.].to_vec();
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
        assert!(close(&out, &rot) || close(&out, &rot_other), "{out:?}");
        // Zooming by 2 about the centre keeps the centre and spreads it halfway out.
        let mut dot = vec![0.0; 25];
        dot[12] = 8.0;
        let mut d = Draw::identity();
        d.scale = 2.0;
        let out = d.apply(&dot, 1, 5, 5, Border::Constant(0.0)).unwrap();
        assert_eq!(out[12], 8.0);
        assert_eq!(out[13], 4.0);
        assert_eq!(out[7], 4.0);
        assert_eq!(out[14], 0.0);
    }

    #[test]
    fn jitter_mirroring_flips() {
        let src = img();
        let mut d = Draw::identity();
        d.mirror = true;
        let out = d.apply(&src, 2, 3, 4, Border::Constant(0.0)).unwrap();
        for row in 0..6 {
            let mut s = src[row * 4..row * 4 + 4].to_vec();
            s.reverse();
            assert_eq!(&out[row * 4..row * 4 + 4], &s[..]);
        }
        // Drawn with probability 1/2: over seeds, both outcomes occur and nothing else.
        let j = Jitter {
            mirror: true,
            ..Jitter::none()
        };
        let flipped = d.apply(&src, 2, 3, 4, Border::Constant(0.0)).unwrap();
        let outs: Vec<_> = (0..32)
            .map(|s| j.apply(&src, 2, 3, 4, &mut rng(s)).unwrap())
            .collect();
        assert!(outs.iter().all(|o| *o == src || *o == flipped));
        assert!(outs.contains(&src) && outs.contains(&flipped));
    }

    #[test]
    fn jitter_same_seed_same_output() {
        let j = Jitter {
            translate: 1.5,
            rotate: 20.0,
            scale: [0.8, 1.2],
            mirror: true,
            noise: 3.0,
            brightness: 10.0,
            contrast: 0.3,
            border: Border::Replicate,
        };
        let a = j.apply(&img(), 2, 3, 4, &mut rng(7)).unwrap();
        let b = j.apply(&img(), 2, 3, 4, &mut rng(7)).unwrap();
        let c = j.apply(&img(), 2, 3, 4, &mut rng(8)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn jitter_brightness_contrast_and_noise() {
        let src = img();
        let mut d = Draw::identity();
        d.brightness = 4.0;
        d.contrast = 2.0;
        let out = d.apply(&src, 2, 3, 4, Border::Replicate).unwrap();
        let mean = src.iter().sum::<f32>() / 24.0;
        for (o, s) in out.iter().zip(&src) {
            assert!((o - ((s - mean) * 2.0 + mean + 4.0)).abs() < 1e-3);
        }
        let mut d = Draw::identity();
        d.noise = 2.0;
        let big = vec![0.0; 10_000];
        let out = d.apply(&big, 1, 100, 100, Border::Replicate).unwrap();
        let m = out.iter().sum::<f32>() / 1e4;
        let sd = (out.iter().map(|v| (v - m).powi(2)).sum::<f32>() / 1e4).sqrt();
        assert!(m.abs() < 0.1 && (sd - 2.0).abs() < 0.1, "mean {m} std {sd}");
    }

    #[test]
    fn jitter_rejects_bad_options_and_sizes() {
        let mut j = Jitter::none();
        assert!(j.apply(&[0.0; 5], 1, 2, 3, &mut rng(0)).is_err());
        j.rotate = -1.0;
        assert!(j.validate().is_err());
        j = Jitter::none();
        j.scale = [1.2, 0.8];
        assert!(j.validate().is_err());
        j = Jitter::none();
        j.noise = f32::NAN;
        assert!(j.validate().is_err());
        assert!(Jitter::digits().validate().is_ok());
        assert!(!Jitter::digits().is_identity());
    }
}
