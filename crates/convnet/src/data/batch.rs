//! Minibatches: an epoch's order derived from (seed, epoch) alone, so a resumed run sees
//! the same batches as one never stopped; every image once per epoch, the last partial
//! batch kept. A batch is a list of image indices; a [`Batcher`] turns it into a tensor
//! (decoding files, jittering, normalising) on worker threads, from a background thread
//! that stays up to two batches ahead of training, so memory stays bounded whatever the
//! data set's size. Jitter randomness is derived per image from (seed, epoch, image
//! index), so results never depend on thread timing or on how a batch is split.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::RngCore;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::jitter::Jitter;
use super::normalize::Normalization;
use super::shard::Shard;
use super::source::Images;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Images (B, C, H, W), ready for the network, and their labels.
pub type Batch = (Tensor, Vec<usize>);

/// Batches prepared ahead of the one being trained on.
const PREFETCH_DEPTH: usize = 2;

const STREAM_SHUFFLE: u64 = 0x5348_5546; // "SHUF"
const STREAM_JITTER: u64 = 0x4a49_5454; // "JITT"

/// SplitMix64's finaliser: a strong 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed for one random stream, from the run's seed and the stream's coordinates
/// (for example a stream tag, the epoch, an image index).
pub fn derive_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x6a09_e667_f3bc_c909, |h, &p| mix(h ^ p))
}

/// The permutation of `0..n` that epoch `epoch` visits, from `seed` alone; a Fisher-Yates
/// shuffle written out so that it does not change with `rand`'s version.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng =
        Xoshiro256PlusPlus::seed_from_u64(derive_seed(&[seed, STREAM_SHUFFLE, epoch as u64]));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
    order
}

/// Batches of `batch_size` covering `n` images, the last one partial.
pub fn num_batches(n: usize, batch_size: usize) -> usize {
    n.div_ceil(batch_size.max(1))
}

/// How a [`Batcher`] makes batches.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    pub batch_size: usize,
    pub seed: u64,
    /// Shuffle each epoch (training); off visits images in order (evaluation).
    pub shuffle: bool,
    pub jitter: Jitter,
    /// Applied after jittering.
    pub normalization: Normalization,
    /// Prepare batches on a background thread while the caller trains.
    pub prefetch: bool,
    /// Threads that decode, jitter and normalise the images of a batch (their number
    /// changes the speed only, never the batches).
    pub workers: usize,
    /// This process's share of every batch (data-parallel training); the batches keep
    /// their global size and order, each rank gathers only its own part.
    pub shard: Shard,
}

impl BatchOptions {
    /// Shuffled, prefetched, no jitter, no normalisation, as many workers as the global
    /// thread pool has threads.
    pub fn new(batch_size: usize, seed: u64) -> Self {
        BatchOptions {
            batch_size,
            seed,
            shuffle: true,
            jitter: Jitter::none(),
            normalization: Normalization::None,
            prefetch: true,
            workers: rayon::current_num_threads(),
            shard: Shard::WHOLE,
        }
    }
}

/// Makes the batches of a data set, epoch by epoch.
#[derive(Clone)]
pub struct Batcher {
    data: Images,
    opts: BatchOptions,
    workers: Arc<rayon::ThreadPool>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("data", &self.data)
            .field("opts", &self.opts)
            .finish()
    }
}

impl Batcher {
    /// Fails on a batch size of 0, an empty data set, bad jitter options (or a
    /// random-resized crop of images held in memory) or a normalisation that does not
    /// fit the images.
    pub fn new(data: impl Into<Images>, opts: BatchOptions) -> Result<Self> {
        let data = data.into();
        data.validate()?;
        if opts.batch_size == 0 {
            return Err(Error::Invalid(
                "batch: batch size must be at least 1".into(),
            ));
        }
        if data.is_empty() {
            return Err(Error::Invalid("batch: the data set has no images".into()));
        }
        data.check_jitter(&opts.jitter)?;
        let (c, h, w) = data.dims()?;
        opts.normalization.check(c, h, w)?;
        Shard::new(opts.shard.rank, opts.shard.ranks)?;
        let workers = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.workers.max(1))
            .thread_name(|i| format!("convnet-data-{i}"))
            .build()
            .map_err(|e| Error::Invalid(format!("batch: cannot start the worker threads: {e}")))?;
        Ok(Batcher {
            data,
            opts,
            workers: Arc::new(workers),
        })
    }

    pub fn data(&self) -> &Images {
        &self.data
    }

    pub fn options(&self) -> &BatchOptions {
        &self.opts
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        num_batches(self.data.len(), self.opts.batch_size)
    }

    /// Always false: a batcher holds at least one image.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The order epoch `epoch` visits the images in.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        if self.opts.shuffle {
            epoch_order(self.data.len(), self.opts.seed, epoch)
        } else {
            (0..self.data.len()).collect()
        }
    }

    /// The number of images in batch `batch` over all ranks.
    pub fn global_batch_len(&self, batch: usize) -> usize {
        let b = self.opts.batch_size;
        self.data
            .len()
            .saturating_sub(batch.saturating_mul(b))
            .min(b)
    }

    /// The data set indices of this rank's part of batch `batch` of epoch `epoch`.
    pub fn indices(&self, epoch: usize, batch: usize) -> Result<Vec<usize>> {
        self.slice(&self.order(epoch), batch).map(<[usize]>::to_vec)
    }

    fn slice<'a>(&self, order: &'a [usize], batch: usize) -> Result<&'a [usize]> {
        let b = self.opts.batch_size;
        let start = batch.saturating_mul(b);
        if start >= order.len() {
            return Err(Error::Invalid(format!(
                "batch: batch {batch} asked of an epoch of {} batches",
                self.len()
            )));
        }
        let global = &order[start..(start + b).min(order.len())];
        Ok(&global[self.opts.shard.range(global.len())])
    }

    /// Image `i` of epoch `epoch`: decoded, jittered and normalised.
    fn one(&self, epoch: usize, i: usize) -> Result<Vec<f32>> {
        let (c, h, w) = self.data.dims()?;
        let seed = derive_seed(&[self.opts.seed, STREAM_JITTER, epoch as u64, i as u64]);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut img = self.data.image(i, &self.opts.jitter, &mut rng)?;
        self.opts.normalization.apply_image(&mut img, c, h, w)?;
        Ok(img)
    }

    /// The batch of the images at `indices` (data set indices, in that order) of epoch
    /// `epoch`, each made on a worker thread. Any list of indices may be asked for (a
    /// process of a data-parallel run asks for its share of a batch): an image comes out
    /// the same whichever batch or share it is in.
    pub fn prepare(&self, epoch: usize, indices: &[usize]) -> Result<Batch> {
        let (c, h, w) = self.data.dims()?;
        let labels = indices
            .iter()
            .map(|&i| {
                self.data.labels().get(i).copied().ok_or_else(|| {
                    Error::Invalid(format!(
                        "batch: image {i} asked of a set of {}",
                        self.data.len()
                    ))
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        let images: Vec<Vec<f32>> = self.workers.install(|| {
            indices
                .par_iter()
                .map(|&i| self.one(epoch, i))
                .collect::<Result<_>>()
        })?;
        Ok((
            Tensor::from_vec(&[indices.len(), c, h, w], images.concat())?,
            labels,
        ))
    }

    /// Batch `batch` of epoch `epoch`, made on the calling thread.
    pub fn batch(&self, epoch: usize, batch: usize) -> Result<Batch> {
        let order = self.order(epoch);
        self.prepare(epoch, self.slice(&order, batch)?)
    }

    /// The batches of epoch `epoch`, in order.
    pub fn epoch(&self, epoch: usize) -> Result<Batches> {
        self.epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` from batch `first` on (to resume inside an epoch).
    /// With `prefetch` they are made on a background thread, at most two ahead.
    pub fn epoch_from(&self, epoch: usize, first: usize) -> Result<Batches> {
        let order = self.order(epoch);
        let total = self.len().saturating_sub(first);
        if !self.opts.prefetch {
            return Ok(Batches {
                source: Source::Direct {
                    batcher: self.clone(),
                    order,
                    epoch,
                    next: first,
                },
                remaining: total,
                waited: Default::default(),
            });
        }
        let (tx, rx) = sync_channel(PREFETCH_DEPTH);
        let me = self.clone();
        let handle = std::thread::Builder::new()
            .name("convnet-batches".into())
            .spawn(move || {
                for b in first..first + total {
                    let item = me.slice(&order, b).and_then(|idx| me.prepare(epoch, idx));
                    // A send fails only when the consumer has gone: stop quietly.
                    if tx.send(item).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Invalid(format!("batch: cannot start the batch thread: {e}")))?;
        Ok(Batches {
            source: Source::Prefetch {
                rx: Some(rx),
                handle: Some(handle),
            },
            remaining: total,
            waited: Default::default(),
        })
    }
}

enum Source {
    Direct {
        batcher: Batcher,
        order: Vec<usize>,
        epoch: usize,
        next: usize,
    },
    Prefetch {
        rx: Option<Receiver<Result<Batch>>>,
        handle: Option<JoinHandle<()>>,
    },
}

/// One epoch's batches; dropping it early stops the background thread.
pub struct Batches {
    source: Source,
    remaining: usize,
    waited: std::time::Duration,
}

impl Batches {
    /// How long the caller has waited in `next` so far: for a batch still being made (or
    /// making it, without prefetching). Near zero when the data keeps ahead of training.
    pub fn waited(&self) -> std::time::Duration {
        self.waited
    }
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let started = std::time::Instant::now();
        let got = match &mut self.source {
            Source::Direct {
                batcher,
                order,
                epoch,
                next,
            } => {
                let b = *next;
                *next += 1;
                Some(
                    batcher
                        .slice(order, b)
                        .and_then(|idx| batcher.prepare(*epoch, idx)),
                )
            }
            Source::Prefetch { rx, .. } => {
                let got = rx.as_ref().and_then(|r| r.recv().ok());
                Some(got.unwrap_or_else(|| {
                    Err(Error::Invalid(
                        "batch: the batch thread stopped before the epoch ended".into(),
                    ))
                }))
            }
        };
        self.waited += started.elapsed();
        got
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Batches {}

impl Drop for Batches {
    fn drop(&mut self) {
        if let Source::Prefetch { rx, handle } = &mut self.source {
            // Closing the channel first unblocks a thread waiting to send.
            drop(rx.take());
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::Dataset;

    /// `n` 1x3x3 images whose pixels all equal their index; label = index % 3.
    fn ds(n: usize) -> Arc<Dataset> {
        let data = (0..n).flat_map(|i| [i as f32; 9]).collect();
        let images = Tensor::from_vec(&[n, 1, 3, 3], data).unwrap();
        let labels = (0..n).map(|i| i % 3).collect();
        let classes = vec!["a".into(), "b".into(), "c".into()];
        Arc::new(Dataset::new(images, labels, classes).unwrap())
    }

    fn collect(b: &Batcher, epoch: usize) -> Vec<Batch> {
        b.epoch(epoch).unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn batch_every_image_once_per_epoch_last_partial_kept() {
        let b = Batcher::new(ds(23), BatchOptions::new(5, 3)).unwrap();
        assert_eq!(b.len(), 5);
        let batches = collect(&b, 0);
        let sizes: Vec<usize> = batches.iter().map(|(x, _)| x.shape()[0]).collect();
        assert_eq!(sizes, vec![5, 5, 5, 5, 3]);
        let mut seen: Vec<usize> = batches
            .iter()
            .flat_map(|(x, _)| {
                x.data()
                    .chunks(9)
                    .map(|c| c[0] as usize)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_ne!(seen, (0..23).collect::<Vec<_>>(), "shuffled");
        let labels: Vec<usize> = batches.iter().flat_map(|(_, l)| l.clone()).collect();
        assert!(seen.iter().zip(&labels).all(|(i, l)| i % 3 == *l));
        seen.sort();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
    }

    #[test]
    fn batch_order_is_deterministic_per_seed_and_epoch() {
        assert_eq!(epoch_order(50, 1, 4), epoch_order(50, 1, 4));
        assert_ne!(epoch_order(50, 1, 4), epoch_order(50, 1, 5));
        assert_ne!(epoch_order(50, 1, 4), epoch_order(50, 2, 4));
        let mut opts = BatchOptions::new(4, 9);
        opts.shuffle = false;
        let b = Batcher::new(ds(10), opts).unwrap();
        assert_eq!(b.indices(3, 2).unwrap(), vec![8, 9]);
        assert!(b.indices(0, 3).is_err());
    }

    #[test]
    fn batch_prefetch_gives_the_same_batches_as_the_direct_path() {
        let mut opts = BatchOptions::new(4, 11);
        opts.jitter = Jitter {
            translate: 1.0,
            noise: 2.0,
            ..Jitter::none()
        };
        opts.normalization = Normalization::PerChannel {
            mean: vec![5.0],
            std: vec![2.0],
        };
        let pre = Batcher::new(ds(18), opts.clone()).unwrap();
        opts.prefetch = false;
        let direct = Batcher::new(ds(18), opts).unwrap();
        for epoch in [0, 1] {
            let a = collect(&pre, epoch);
            assert_eq!(a, collect(&direct, epoch));
            assert_eq!(a, collect(&pre, epoch), "same seed and epoch, same batches");
            let one_by_one: Vec<Batch> = (0..pre.len())
                .map(|i| pre.batch(epoch, i).unwrap())
                .collect();
            assert_eq!(a, one_by_one);
        }
        assert_ne!(collect(&pre, 0), collect(&pre, 1));
        let resumed: Vec<Batch> = pre.epoch_from(1, 3).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(resumed, collect(&pre, 1)[3..]);
    }

    #[test]
    fn batch_shards_together_make_the_global_batch() {
        let mut opts = BatchOptions::new(6, 5);
        opts.jitter = Jitter {
            translate: 1.0,
            ..Jitter::none()
        };
        // 13 images: the last batch has one image, so some ranks get none.
        for n in [23, 13] {
            let whole = Batcher::new(ds(n), opts.clone()).unwrap();
            let expected = collect(&whole, 1);
            for ranks in [2, 3, 4] {
                let parts: Vec<Vec<Batch>> = (0..ranks)
                    .map(|r| {
                        let mut o = opts.clone();
                        o.shard = Shard::new(r, ranks).unwrap();
                        collect(&Batcher::new(ds(n), o).unwrap(), 1)
                    })
                    .collect();
                for (b, (x, labels)) in expected.iter().enumerate() {
                    assert_eq!(whole.global_batch_len(b), labels.len());
                    let pixels: Vec<f32> =
                        parts.iter().flat_map(|p| p[b].0.data().to_vec()).collect();
                    let got: Vec<usize> = parts.iter().flat_map(|p| p[b].1.clone()).collect();
                    assert_eq!(
                        (&pixels[..], &got),
                        (x.data(), labels),
                        "{ranks} ranks, batch {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn batch_dropping_an_epoch_early_stops_the_thread() {
        let b = Batcher::new(ds(100), BatchOptions::new(1, 0)).unwrap();
        let mut it = b.epoch(0).unwrap();
        assert!(it.next().is_some());
        drop(it); // must not hang
        assert_eq!(b.epoch(0).unwrap().len(), 100);
    }

    /// `n` noisy 7x5 RGB PNG files in two class folders.
    fn photo_folder(n: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for i in 0..n {
            let class = dir.path().join(["ant", "bee"][i % 2]);
            std::fs::create_dir_all(&class).unwrap();
            let img = image::RgbImage::from_fn(7, 5, |_, _| {
                image::Rgb([0, 1, 2].map(|_| (rng.next_u64() >> 56) as u8))
            });
            img.save(class.join(format!("{i:02}.png"))).unwrap();
        }
        dir
    }

    #[test]
    fn batch_streamed_files_give_the_same_batches_as_the_folder_in_memory() {
        use crate::data::folder::{self, FolderOptions};
        let dir = photo_folder(13);
        let fit = FolderOptions::new(3, 4, 6);
        let mut opts = BatchOptions::new(4, 5);
        opts.jitter = Jitter {
            mirror: true,
            saturation: 0.3,
            ..Jitter::digits()
        };
        let memory = Arc::new(folder::load_folder(dir.path(), &fit).unwrap());
        opts.normalization = Normalization::per_channel(&memory).unwrap();
        let files = Images::from(folder::open_folder(dir.path(), &fit).unwrap());
        assert_eq!(
            Normalization::per_channel_of(&files, 100).unwrap(),
            opts.normalization,
            "statistics of the streamed files, bit for bit"
        );
        assert_eq!(
            files.decoded(),
            26,
            "two passes over the files for the statistics"
        );
        assert_eq!(
            Normalization::mean_image_of(&files, 100).unwrap(),
            Normalization::mean_image(&memory).unwrap(),
            "the mean image of the streamed files, bit for bit"
        );
        Normalization::mean_image_of(&files, 5).unwrap();
        assert_eq!(
            files.decoded(),
            26 + 13 + 5,
            "a sample of 5 decodes 5 files"
        );
        let a = Batcher::new(memory, opts.clone()).unwrap();
        opts.workers = 3;
        let b = Batcher::new(files.clone(), opts).unwrap();
        for epoch in [0, 1] {
            assert_eq!(collect(&a, epoch), collect(&b, epoch), "epoch {epoch}");
        }
        assert_eq!(
            files.decoded(),
            44 + 26,
            "every file decoded once per epoch, none kept"
        );
    }

    #[test]
    fn batch_streaming_decodes_a_bounded_number_of_batches_ahead() {
        use crate::data::folder::{self, FolderOptions};
        let dir = photo_folder(40);
        let files =
            Images::from(folder::open_folder(dir.path(), &FolderOptions::new(3, 4, 4)).unwrap());
        let Images::Files(list) = &files else {
            panic!()
        };
        // The set itself is its list of files: no pixels.
        assert_eq!(list.paths.len(), 40);
        let b = Batcher::new(files.clone(), BatchOptions::new(2, 0)).unwrap();
        let mut it = b.epoch(0).unwrap();
        assert!(it.next().is_some());
        std::thread::sleep(std::time::Duration::from_millis(300));
        // The batch taken, PREFETCH_DEPTH waiting in the channel, one being made.
        let most = (1 + PREFETCH_DEPTH + 1) * 2;
        assert!(
            files.decoded() <= most,
            "{} decoded, at most {most}",
            files.decoded()
        );
        assert_eq!(it.count(), 19);
        assert_eq!(files.decoded(), 40);
    }

    #[test]
    fn batch_random_resized_crops_depend_on_seed_epoch_and_image_only() {
        use crate::data::folder::{self, FolderOptions};
        let dir = photo_folder(6);
        let files =
            Images::from(folder::open_folder(dir.path(), &FolderOptions::new(3, 3, 3)).unwrap());
        let mut opts = BatchOptions::new(4, 2);
        opts.jitter = Jitter::imagenet();
        opts.workers = 1;
        let one = Batcher::new(files.clone(), opts.clone()).unwrap();
        opts.workers = 4;
        let four = Batcher::new(files.clone(), opts.clone()).unwrap();
        assert_eq!(collect(&one, 3), collect(&four, 3));
        assert_ne!(collect(&one, 3), collect(&one, 4));
        // An image comes out the same in any batch, so a share of a batch can be made alone.
        let order = one.order(3);
        let (whole, _) = one.prepare(3, &order[..4]).unwrap();
        let (part, _) = four.prepare(3, &order[2..4]).unwrap();
        assert_eq!(part.data(), &whole.data()[2 * 27..]);
        let memory =
            Images::from(folder::load_folder(dir.path(), &FolderOptions::new(3, 3, 3)).unwrap());
        assert!(Batcher::new(memory, opts).is_err(), "crops need the files");
    }

    #[test]
    fn batch_rejects_bad_options() {
        assert!(Batcher::new(ds(3), BatchOptions::new(0, 0)).is_err());
        let mut opts = BatchOptions::new(2, 0);
        opts.normalization = Normalization::PerChannel {
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
        };
        assert!(Batcher::new(ds(3), opts).is_err());
        let empty = Dataset::new(Tensor::zeros(&[0, 1, 1, 1]).unwrap(), vec![], vec![]);
        assert!(Batcher::new(Arc::new(empty.unwrap()), BatchOptions::new(2, 0)).is_err());
    }
}
