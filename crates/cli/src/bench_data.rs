//! `convnet bench data`: how many images per second the streamed data path delivers
//! (decode JPEG/PNG, random-resized crop or test fit, jitter, normalise, assemble the
//! batch) on a given number of worker threads, to set against a network's training
//! images per second. `--make N` first writes a folder of synthetic photographs.

use crate::bench_lenet::peak_rss_mb;
use crate::{cmd_train, datasets};
use anyhow::{Context, Result};
use convnet::data::batch::{derive_seed, BatchOptions, Batcher};
use convnet::data::folder;
use convnet::data::normalize::Normalization;
use convnet::data::source::Images;
use image::codecs::jpeg::JpegEncoder;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Image folder, one subfolder per class (its train/ subfolder when it has one)
    #[arg(long)]
    pub data: PathBuf,
    /// First write N synthetic 500x375 JPEG photographs into --data (train/, and a tenth
    /// as many in test/, 10 classes), unless it exists
    #[arg(long)]
    pub make: Option<usize>,
    /// Worker threads that decode and jitter
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// The network's input size (square)
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// As `convnet train --jitter`: imagenet (training batches) or none (the test fit)
    #[arg(long, default_value = "imagenet", value_parser = ["none", "digits", "images", "imagenet"])]
    pub jitter: String,
    /// Batches to time, after one that warms up
    #[arg(long, default_value_t = 10)]
    pub batches: usize,
}

/// CPU seconds (user and system) this process has used so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is valid.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Uniform numbers in [0, 1) from the library's seed hash: the photographs do not change
/// with a crate's version.
struct Rng {
    seed: u64,
    drawn: u64,
}

impl Rng {
    fn unit(&mut self) -> f32 {
        self.drawn += 1;
        (derive_seed(&[self.seed, self.drawn]) >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A 500x375 picture with a photograph's mix of smooth areas, edges and texture (so that
/// its JPEG is about as large, and as slow to decode, as a photograph's): a colour
/// gradient, a few ellipses, and grain.
fn photo(seed: u64) -> image::RgbImage {
    let mut rng = Rng { seed, drawn: 0 };
    let base: [f32; 3] = [rng.unit(), rng.unit(), rng.unit()].map(|v| 40.0 + 160.0 * v);
    let slope: [f32; 3] = [rng.unit(), rng.unit(), rng.unit()].map(|v| v - 0.5);
    let blobs: Vec<([f32; 4], [f32; 3])> = (0..6)
        .map(|_| {
            let geometry = [
                500.0 * rng.unit(),
                375.0 * rng.unit(),
                20.0 + 120.0 * rng.unit(),
                20.0 + 90.0 * rng.unit(),
            ];
            (
                geometry,
                [rng.unit(), rng.unit(), rng.unit()].map(|v| 255.0 * v),
            )
        })
        .collect();
    image::RgbImage::from_fn(500, 375, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let mut px: [f32; 3] = [0, 1, 2].map(|c| base[c] + slope[c] * (fx + fy) * 0.3);
        for ([cx, cy, rx, ry], colour) in &blobs {
            let d = ((fx - cx) / rx).powi(2) + ((fy - cy) / ry).powi(2);
            if d < 1.0 {
                px = [0, 1, 2].map(|c| 0.4 * px[c] + 0.6 * colour[c] * (1.2 - 0.4 * d));
            }
        }
        let grain = 24.0 * (rng.unit() - 0.5);
        image::Rgb(px.map(|v| (v + grain).clamp(0.0, 255.0) as u8))
    })
}

/// Writes `n` photographs into `dir/train/c0..c9` and `n / 10` into `dir/test/c0..c9`.
fn make_photos(dir: &Path, n: usize) -> Result<()> {
    let jobs: Vec<(PathBuf, u64)> = [("train", n), ("test", n / 10)]
        .iter()
        .flat_map(|&(split, count)| {
            (0..count).map(move |i| {
                let seed = (i as u64) << 1 | u64::from(split == "test");
                let path = dir.join(split).join(format!("c{}", i % 10));
                (path.join(format!("{i:06}.jpg")), seed)
            })
        })
        .collect();
    jobs.par_iter().try_for_each(|(path, seed)| -> Result<()> {
        let folder = path.parent().context("a photograph's folder")?;
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&photo(*seed))?;
        convnet::atomic::write(path, &bytes)?;
        Ok(())
    })
}

pub fn run(args: Args) -> Result<()> {
    datasets::set_threads(Some(args.threads))?;
    if let Some(n) = args.make {
        if args.data.exists() {
            eprintln!("{} exists: not writing photographs", args.data.display());
        } else {
            make_photos(&args.data, n)?;
            println!(
                "wrote {n} 500x375 JPEG photographs into {0}/train and {1} into {0}/test",
                args.data.display(),
                n / 10
            );
        }
    }
    let dir = match args.data.join("train") {
        t if t.is_dir() => t,
        _ => args.data.clone(),
    };
    let targs = cmd_train::Args {
        jitter: args.jitter.clone(),
        ..Default::default()
    };
    let jitter = cmd_train::jitter(&targs);
    let fit = datasets::fit_for(Some([args.size, args.size, 3]), &jitter);
    let files: Images = folder::open_folder(&dir, &fit)?.into();
    let bytes: u64 = match &files {
        Images::Files(f) => f
            .paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum(),
        Images::Memory(_) => 0,
    };
    let mut opts = BatchOptions::new(args.batch, 0);
    opts.jitter = jitter;
    opts.workers = args.threads;
    opts.prefetch = false;
    // ImageNet's statistics in 0..255 units: normalising is part of the work.
    opts.normalization = Normalization::PerChannel {
        mean: vec![123.68, 116.78, 103.94],
        std: vec![58.4, 57.12, 57.38],
    };
    let batcher = Batcher::new(files.clone(), opts)?;
    let per_epoch = batcher.len();
    let mut timed = 0;
    let mut images = 0;
    let mut started = Instant::now();
    let mut cpu_start = 0.0;
    'outer: for epoch in 0.. {
        for b in 0..per_epoch {
            let (x, _) = batcher.batch(epoch, b)?;
            if epoch == 0 && b == 0 {
                // The first batch warms up.
                started = Instant::now();
                cpu_start = cpu_seconds();
                continue;
            }
            images += x.shape()[0];
            timed += 1;
            if timed == args.batches {
                break 'outer;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_ms = (cpu_seconds() - cpu_start) * 1e3 / images.max(1) as f64;
    let rate = images as f64 / seconds.max(1e-9);
    let mean_kb = bytes as f64 / files.len().max(1) as f64 / 1e3;
    println!(
        "data: {} files in {} (mean {mean_kb:.0} kB); {images} images in {timed} batches of {} to {}x{}x3, jitter {}, {} worker threads: {seconds:.2} s",
        files.len(),
        dir.display(),
        args.batch,
        args.size,
        args.size,
        args.jitter,
        args.threads
    );
    // On a shared machine the wall-clock rate falls with the load; the CPU time per image
    // does not, and gives the rate of the threads when they have their cores to themselves.
    println!(
        "RESULT data_img_per_s={rate:.1} cpu_ms_per_img={cpu_ms:.2} img_per_s_at_full_cpu={:.1} threads={} size={} jitter={} peak_rss_mb={:.0}",
        args.threads as f64 * 1e3 / cpu_ms.max(1e-9),
        args.threads,
        args.size,
        args.jitter,
        peak_rss_mb()
    );
    Ok(())
}
