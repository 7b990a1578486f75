//! Writes a small image-folder data set to try `convnet cv` on: circles, squares and
//! triangles of random colour, size and place on a noisy background, 32x32 PNG files in
//! one subfolder per class. The shape, not the colour, tells the classes apart.
//!
//!     cargo run --release -p convnet-cli --example make_shapes -- DIR [PER_CLASS] [SEED]
//!
//! The same seed writes the same files. The CLI tests include this file for their data.

use std::path::Path;

pub const CLASSES: [&str; 3] = ["circle", "square", "triangle"];
const SIZE: u32 = 32;

/// SplitMix64: a few lines, and the files do not change with a crate's version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Whether the point (dx, dy) from the centre lies in shape `class` of radius `r`.
fn inside(class: usize, dx: f32, dy: f32, r: f32) -> bool {
    match class {
        0 => dx * dx + dy * dy <= r * r,
        1 => dx.abs() <= 0.8 * r && dy.abs() <= 0.8 * r,
        // Apex up: the half-width grows from 0 at the top to r at the base.
        _ => dy >= -r && dy <= 0.75 * r && dx.abs() <= (dy + r) / 1.75,
    }
}

fn shape_image(class: usize, rng: &mut Rng) -> image::RgbImage {
    let r = rng.range(7.0, 13.0);
    let margin = r + 1.0;
    let (cx, cy) = (
        rng.range(margin, SIZE as f32 - margin),
        rng.range(margin, SIZE as f32 - margin),
    );
    // Dark shapes on light paper or the other way round, so that every shape shows.
    let dark_paper = rng.next() >> 63 == 0;
    let (paper, ink_lo) = if dark_paper {
        (rng.range(20.0, 90.0), 140.0)
    } else {
        (rng.range(165.0, 235.0), 0.0)
    };
    let ink = [0, 1, 2].map(|_| rng.range(ink_lo, ink_lo + 115.0));
    image::RgbImage::from_fn(SIZE, SIZE, |x, y| {
        let noise = rng.range(-15.0, 15.0);
        let on = inside(class, x as f32 + 0.5 - cx, y as f32 + 0.5 - cy, r);
        image::Rgb(ink.map(|c| {
            let v = if on { c } else { paper };
            (v + noise).clamp(0.0, 255.0) as u8
        }))
    })
}

/// Writes `per_class` images of every class into `dir/<class>/NNN.png`; returns how many.
pub fn write_shapes(
    dir: &Path,
    per_class: usize,
    seed: u64,
) -> Result<usize, Box<dyn std::error::Error>> {
    let mut rng = Rng(seed);
    for (c, name) in CLASSES.iter().enumerate() {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub)?;
        for i in 0..per_class {
            shape_image(c, &mut rng).save(sub.join(format!("{i:03}.png")))?;
        }
    }
    Ok(per_class * CLASSES.len())
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        return Err("usage: make_shapes DIR [PER_CLASS (default 100)] [SEED (default 0)]".into());
    };
    let per_class = args.get(1).map_or(Ok(100), |s| s.parse())?;
    let seed = args.get(2).map_or(Ok(0), |s| s.parse())?;
    let n = write_shapes(Path::new(dir), per_class, seed)?;
    println!("wrote {n} images of {} classes into {dir}", CLASSES.len());
    Ok(())
}
