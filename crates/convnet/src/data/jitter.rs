//! Data augmentation on the fly, one image at a time: a random affine warp (translation,
//! rotation, scaling, mirroring) sampled bilinearly, or for image files a random-resized
//! crop (torchvision's RandomResizedCrop) and mirroring; then saturation, brightness and
//! contrast, then additive Gaussian noise. All amounts are in the images' own units
//! (pixels 0..255), applied before normalisation; nothing is clamped.
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
    /// Largest relative saturation change of colour images: pixels move away from (or
    /// toward) their own grey value by a factor drawn uniformly in `[1 - s, 1 + s]`.
    pub saturation: f32,
    /// A random-resized crop of the original image file instead of the affine warp
    /// (which must then be the identity); data held in memory cannot have it.
    pub crop: Option<CropRange>,
}

/// torchvision's RandomResizedCrop: a region of a fraction `scale` of the image's area,
/// of aspect ratio (width / height) drawn log-uniformly from `ratio`, resized to the
/// network's input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropRange {
    pub scale: [f32; 2],
    pub ratio: [f32; 2],
}

impl CropRange {
    /// The ImageNet recipe's ranges: 8% to 100% of the area, ratios 3/4 to 4/3.
    pub fn imagenet() -> Self {
        CropRange {
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
        }
    }

    fn validate(&self) -> Result<()> {
        let [s0, s1] = self.scale;
        let [r0, r1] = self.ratio;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return Err(Error::Invalid(format!(
                "jitter: crop scale must be a range 0 < min <= max <= 1, got [{s0}, {s1}]"
            )));
        }
        if !(r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
            return Err(Error::Invalid(format!(
                "jitter: crop ratio must be a range 0 < min <= max, got [{r0}, {r1}]"
            )));
        }
        Ok(())
    }

    /// The crop `[x, y, width, height]` of an image of `iw` x `ih` pixels, as torchvision
    /// draws it: up to ten tries at a region that fits, else the centred region of the
    /// whole image with its ratio brought into range.
    pub fn sample(&self, iw: u32, ih: u32, rng: &mut impl RngCore) -> [u32; 4] {
        let (fw, fh) = (iw as f32, ih as f32);
        let area = fw * fh;
        let (l0, l1) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * unit(rng));
            let aspect = (l0 + (l1 - l0) * unit(rng)).exp();
            let w = (target * aspect).sqrt().round() as u32;
            let h = (target / aspect).sqrt().round() as u32;
            if w > 0 && h > 0 && w <= iw && h <= ih {
                let x = below(rng, iw - w + 1);
                let y = below(rng, ih - h + 1);
                return [x, y, w, h];
            }
        }
        let ratio = fw / fh;
        let (w, h) = if ratio < self.ratio[0] {
            (iw, ((fw / self.ratio[0]).round() as u32).clamp(1, ih))
        } else if ratio > self.ratio[1] {
            (((fh * self.ratio[1]).round() as u32).clamp(1, iw), ih)
        } else {
            (iw, ih)
        };
        [(iw - w) / 2, (ih - h) / 2, w, h]
    }
}

/// Uniform in `0..n` (n >= 1), by the multiply-shift method.
fn below(rng: &mut impl RngCore, n: u32) -> u32 {
    (((rng.next_u64() >> 32) * n as u64) >> 32) as u32
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
    /// Saturation factor (1 keeps the colours).
    pub saturation: f32,
    /// Seeds the random-resized crop's stream.
    pub crop_seed: u64,
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
            saturation: 0.0,
            crop: None,
        }
    }

    /// ImageNet training's augmentation for image files: a random-resized crop
    /// ([`CropRange::imagenet`]), mirroring, and colour jitter as torchvision's
    /// ColorJitter(0.4, 0.4, 0.4), except that brightness is an offset of up to 40 of
    /// 255 rather than a factor.
    pub fn imagenet() -> Self {
        Jitter {
            mirror: true,
            brightness: 40.0,
            contrast: 0.4,
            saturation: 0.4,
            crop: Some(CropRange::imagenet()),
            ..Jitter::none()
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
            && self.saturation == 0.0
            && self.crop.is_none()
    }

    /// Whether the geometric part is the affine warp's identity.
    fn affine_is_identity(&self) -> bool {
        self.translate == 0.0 && self.rotate == 0.0 && self.scale == [1.0, 1.0]
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
            ("saturation", self.saturation),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, &format!("must be a finite number >= 0, got {v}"));
            }
        }
        for (name, v) in [("contrast", self.contrast), ("saturation", self.saturation)] {
            if v >= 1.0 {
                return bad(name, &format!("must be below 1, got {v}"));
            }
        }
        if let Some(crop) = &self.crop {
            crop.validate()?;
            if !self.affine_is_identity() {
                return bad(
                    "crop",
                    "replaces the shift, rotation and zoom: leave those at 0 and [1, 1]",
                );
            }
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

    /// One image's transformation; always takes the same number of draws from `rng`
    /// (the later fields' draws come last, so older settings keep their streams).
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
            saturation: 1.0 + symmetric(rng, self.saturation),
            crop_seed: rng.next_u64(),
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
        if self.crop.is_some() {
            return Err(Error::Invalid(
                "jitter: a random-resized crop needs the original image file (an image folder), not an image held in memory".into(),
            ));
        }
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
            saturation: 1.0,
            crop_seed: 0,
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
        self.photometric(&mut out, c);
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

    /// Saturation, contrast and brightness, then noise, on one CHW image of `c`
    /// channels (saturation acts on 3-channel images only).
    pub fn photometric(&self, img: &mut [f32], c: usize) {
        if self.saturation != 1.0 && c == 3 {
            let plane = img.len() / 3;
            let (r, rest) = img.split_at_mut(plane);
            let (g, b) = rest.split_at_mut(plane);
            let s = self.saturation;
            for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
                // ITU-R 601 luma, as torchvision's rgb_to_grayscale.
                let grey = 0.299 * *r + 0.587 * *g + 0.114 * *b;
                *r = grey + s * (*r - grey);
                *g = grey + s * (*g - grey);
                *b = grey + s * (*b - grey);
            }
        }
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
            saturation: 0.5,
            crop: None,
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
    fn jitter_random_resized_crop_stays_inside_with_area_and_ratio_in_range() {
        let c = CropRange::imagenet();
        let mut r = rng(3);
        let mut areas = Vec::new();
        for _ in 0..500 {
            let [x, y, w, h] = c.sample(500, 375, &mut r);
            assert!(
                w >= 1 && h >= 1 && x + w <= 500 && y + h <= 375,
                "{x} {y} {w} {h}"
            );
            let area = (w * h) as f32 / (500.0 * 375.0);
            let ratio = w as f32 / h as f32;
            // Rounding to whole pixels moves the ratio a little past its range.
            assert!((0.075..=1.0).contains(&area), "area {area}");
            assert!((0.74..=1.35).contains(&ratio), "ratio {ratio}");
            areas.push(area);
        }
        let mean = areas.iter().sum::<f32>() / areas.len() as f32;
        assert!(mean > 0.3 && mean < 0.7, "mean area {mean}");
        // A long strip fits no ratio in range: the fallback is its centred 4:3 part.
        let tall = CropRange {
            scale: [1.0, 1.0],
            ratio: [1.0, 1.0],
        };
        assert_eq!(tall.sample(40, 10, &mut r), [15, 0, 10, 10]);
        assert_eq!(tall.sample(10, 10, &mut r), [0, 0, 10, 10]);
    }

    #[test]
    fn jitter_saturation_moves_colours_toward_grey_and_keeps_grey() {
        let mut d = Draw::identity();
        d.saturation = 0.0;
        let mut img = vec![200.0, 10.0, 50.0];
        d.photometric(&mut img, 3);
        let grey = 0.299 * 200.0 + 0.587 * 10.0 + 0.114 * 50.0;
        assert!(img.iter().all(|&v| (v - grey).abs() < 1e-3), "{img:?}");
        d.saturation = 2.0;
        let mut one = vec![7.0];
        d.photometric(&mut one, 1);
        assert_eq!(one, vec![7.0], "grey images have no saturation");
    }

    #[test]
    fn jitter_new_fields_leave_the_older_draws_unchanged() {
        // The digits' recipe must keep its stream: dx is still the first draw.
        let d = Jitter::digits().draw(&mut rng(5));
        assert_eq!(d.dx, symmetric(&mut rng(5), 2.0));
        assert_eq!((d.saturation, d.mirror), (1.0, false));
        let crop = Jitter::imagenet();
        assert!(crop.validate().is_ok() && !crop.is_identity());
        let err = crop.apply(&img(), 2, 3, 4, &mut rng(0)).unwrap_err();
        assert!(err.to_string().contains("image file"), "{err}");
        let mixed = Jitter {
            rotate: 5.0,
            ..Jitter::imagenet()
        };
        assert!(mixed.validate().is_err());
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
