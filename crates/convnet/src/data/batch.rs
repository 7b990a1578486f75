//! Minibatches: an epoch's order derived from (seed, epoch) alone, so a resumed run sees
//! the same batches as one never stopped; every image once per epoch, the last partial
//! batch kept. A [`Batcher`] gathers, jitters and normalises each batch, on a background
//! thread that stays up to two batches ahead of training. Jitter randomness is derived
//! per image from (seed, epoch, image index), so results never depend on thread timing.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::RngCore;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::dataset::Dataset;
use super::jitter::Jitter;
use super::normalize::Normalization;
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
}

impl BatchOptions {
    /// Shuffled, prefetched, no jitter, no normalisation.
    pub fn new(batch_size: usize, seed: u64) -> Self {
        BatchOptions {
            batch_size,
            seed,
            shuffle: true,
            jitter: Jitter::none(),
            normalization: Normalization::None,
            prefetch: true,
        }
    }
}

/// Makes the batches of a data set, epoch by epoch.
#[derive(Clone, Debug)]
pub struct Batcher {
    data: Arc<Dataset>,
    opts: BatchOptions,
}

impl Batcher {
    /// Fails on a batch size of 0, an empty data set, bad jitter options or a
    /// normalisation that does not fit the images.
    pub fn new(data: Arc<Dataset>, opts: BatchOptions) -> Result<Self> {
        data.validate()?;
        if opts.batch_size == 0 {
            return Err(Error::Invalid(
                "batch: batch size must be at least 1".into(),
            ));
        }
        if data.is_empty() {
            return Err(Error::Invalid("batch: the data set has no images".into()));
        }
        opts.jitter.validate()?;
        let d = data.dims()?;
        opts.normalization.check(d.c, d.h, d.w)?;
        Ok(Batcher { data, opts })
    }

    pub fn data(&self) -> &Dataset {
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

    /// The data set indices of batch `batch` of epoch `epoch`.
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
        Ok(&order[start..(start + b).min(order.len())])
    }

    /// Gathers, jitters and normalises the images at `indices` of epoch `epoch`.
    fn prepare(&self, epoch: usize, indices: &[usize]) -> Result<Batch> {
        let d = self.data.dims()?;
        let m = d.image_len();
        let mut images = Vec::with_capacity(indices.len() * m);
        for &i in indices {
            let src = self.data.image(i)?;
            let start = images.len();
            if self.opts.jitter.is_identity() {
                images.extend_from_slice(src);
            } else {
                let seed = derive_seed(&[self.opts.seed, STREAM_JITTER, epoch as u64, i as u64]);
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
                images.extend(self.opts.jitter.apply(src, d.c, d.h, d.w, &mut rng)?);
            }
            self.opts
                .normalization
                .apply_image(&mut images[start..], d.c, d.h, d.w)?;
        }
        let labels = indices.iter().map(|&i| self.data.labels[i]).collect();
        Ok((
            Tensor::from_vec(&[indices.len(), d.c, d.h, d.w], images)?,
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
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match &mut self.source {
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
        }
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
    fn batch_dropping_an_epoch_early_stops_the_thread() {
        let b = Batcher::new(ds(100), BatchOptions::new(1, 0)).unwrap();
        let mut it = b.epoch(0).unwrap();
        assert!(it.next().is_some());
        drop(it); // must not hang
        assert_eq!(b.epoch(0).unwrap().len(), 100);
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
