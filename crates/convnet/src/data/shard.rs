//! A process's share of every batch in data-parallel training: rank `r` of `N` takes
//! the `r`-th of `N` contiguous, nearly equal parts of each global batch's image
//! indices, so the ranks together see exactly the images one process would.

use crate::error::{Error, Result};
use std::ops::Range;

/// Rank `rank` of `ranks` processes; [`Shard::WHOLE`] is a one-process run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub ranks: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl Shard {
    pub const WHOLE: Shard = Shard { rank: 0, ranks: 1 };

    /// Fails unless `rank < ranks`.
    pub fn new(rank: usize, ranks: usize) -> Result<Self> {
        if rank >= ranks {
            return Err(Error::Invalid(format!(
                "shard: rank {rank} is not below the {ranks} ranks"
            )));
        }
        Ok(Shard { rank, ranks })
    }

    /// The positions of this rank's part of a batch of `len` images: contiguous, the
    /// parts of all ranks in rank order covering `0..len`, sizes differing by at most one
    /// (a last partial batch smaller than the rank count leaves some ranks empty).
    pub fn range(&self, len: usize) -> Range<usize> {
        let ranks = self.ranks.max(1);
        len * self.rank / ranks..len * (self.rank + 1) / ranks
    }

    /// The one rank that writes files and prints.
    pub fn is_writer(&self) -> bool {
        self.rank == 0
    }

    /// Fails unless `batch_size` splits evenly over the ranks (every full batch gives
    /// each rank the same number of images).
    pub fn check_batch(&self, batch_size: usize) -> Result<()> {
        if !batch_size.is_multiple_of(self.ranks.max(1)) {
            let r = self.ranks;
            let lower = (batch_size / r).max(1) * r;
            return Err(Error::Distributed(format!(
                "batch size {batch_size} does not split over {r} ranks: give a multiple of {r} (for example --batch {lower} or {})",
                lower + r
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parts_cover_the_batch_in_order() {
        for ranks in 1..6 {
            for len in 0..13 {
                let parts: Vec<Range<usize>> = (0..ranks)
                    .map(|r| Shard::new(r, ranks).unwrap().range(len))
                    .collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[ranks - 1].end, len);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{sizes:?}");
            }
        }
        assert_eq!(Shard::new(1, 3).unwrap().range(100), 33..66);
        assert!(Shard::new(3, 3).is_err());
    }

    #[test]
    fn shard_batch_must_split_over_the_ranks() {
        assert!(Shard::new(0, 2).unwrap().check_batch(100).is_ok());
        let e = Shard::new(0, 3).unwrap().check_batch(100).unwrap_err();
        assert!(e.to_string().contains("--batch 99 or 102"), "{e}");
    }
}
