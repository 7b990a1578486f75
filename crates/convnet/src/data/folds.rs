//! Stratified K-fold splits for cross-validation: every class is spread over the folds in
//! proportion, so that each held-out fold looks like the whole data set.

use rand::RngCore;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::batch::derive_seed;
use crate::error::{Error, Result};

const STREAM_FOLDS: u64 = 0x464f_4c44; // "FOLD"

/// A partition of a data set's images into `k` held-out folds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folds {
    /// The image indices of each fold, ascending.
    held_out: Vec<Vec<usize>>,
}

impl Folds {
    /// Splits images labelled `labels` (indices into `classes`) into `k` folds. Each
    /// class's images are shuffled with a stream drawn from `seed`, then dealt round the
    /// folds, each class starting where the previous one stopped: every fold gets
    /// floor or ceil of (class size / k) images of every class, and fold sizes differ by
    /// at most one image.
    pub fn stratified(labels: &[usize], classes: &[String], k: usize, seed: u64) -> Result<Folds> {
        check(labels.len(), k)?;
        let by_class = group_by_class(labels, classes)?;
        for (name, members) in classes.iter().zip(&by_class) {
            if members.len() < k {
                return Err(Error::Invalid(format!(
                    "folds: class '{name}' has {} images, fewer than the {k} folds (every fold needs one of each class)",
                    members.len()
                )));
            }
        }
        let mut held_out = vec![Vec::new(); k];
        let mut next = 0;
        for (c, mut members) in by_class.into_iter().enumerate() {
            shuffle(&mut members, derive_seed(&[seed, STREAM_FOLDS, c as u64]));
            for i in members {
                held_out[next].push(i);
                next = (next + 1) % k;
            }
        }
        held_out.iter_mut().for_each(|f| f.sort_unstable());
        Ok(Folds { held_out })
    }

    /// The number of folds.
    pub fn k(&self) -> usize {
        self.held_out.len()
    }

    /// The images held out in fold `i` (ascending); empty for a fold that does not exist.
    pub fn test(&self, i: usize) -> &[usize] {
        self.held_out.get(i).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The images of every fold but `i` (ascending): the training set of fold `i`.
    pub fn train(&self, i: usize) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .held_out
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .flat_map(|(_, f)| f.iter().copied())
            .collect();
        out.sort_unstable();
        out
    }
}

fn check(n: usize, k: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::Invalid(
            "folds: the data set has no images".to_string(),
        ));
    }
    if k < 2 {
        return Err(Error::Invalid(format!(
            "folds: K = {k}, need at least 2 folds (one to train on, one to test)"
        )));
    }
    if k > n {
        return Err(Error::Invalid(format!(
            "folds: K = {k} is more than the {n} images"
        )));
    }
    Ok(())
}

/// The image indices of each class, ascending.
fn group_by_class(labels: &[usize], classes: &[String]) -> Result<Vec<Vec<usize>>> {
    let mut by_class = vec![Vec::new(); classes.len()];
    for (i, &l) in labels.iter().enumerate() {
        let members = by_class.get_mut(l).ok_or_else(|| {
            Error::Invalid(format!(
                "folds: image {i} has label {l} but there are only {} classes",
                classes.len()
            ))
        })?;
        members.push(i);
    }
    Ok(by_class)
}

/// Fisher-Yates written out, so that the folds do not change with `rand`'s version.
fn shuffle(v: &mut [usize], seed: u64) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for i in (1..v.len()).rev() {
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|c| format!("c{c}")).collect()
    }

    /// Uneven classes: 10, 7, 23 and 5 images, interleaved.
    fn labels() -> Vec<usize> {
        let sizes = [10, 7, 23, 5];
        let mut out = Vec::new();
        let mut left = sizes;
        while left.iter().any(|&s| s > 0) {
            for (c, s) in left.iter_mut().enumerate() {
                if *s > 0 {
                    out.push(c);
                    *s -= 1;
                }
            }
        }
        out
    }

    #[test]
    fn folds_are_disjoint_and_cover_every_image() {
        let l = labels();
        for k in [2, 3, 5] {
            let f = Folds::stratified(&l, &names(4), k, 7).unwrap();
            assert_eq!(f.k(), k);
            let mut seen = vec![0; l.len()];
            for i in 0..k {
                f.test(i).iter().for_each(|&j| seen[j] += 1);
                let train = f.train(i);
                assert_eq!(train.len() + f.test(i).len(), l.len());
                assert!(train.iter().all(|j| !f.test(i).contains(j)));
            }
            assert!(seen.iter().all(|&s| s == 1), "k={k}: {seen:?}");
        }
    }

    #[test]
    fn folds_hold_every_class_in_proportion() {
        let l = labels();
        let k = 5;
        let f = Folds::stratified(&l, &names(4), k, 3).unwrap();
        let sizes: Vec<usize> = (0..k).map(|i| f.test(i).len()).collect();
        let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(hi - lo <= 1, "fold sizes {sizes:?}");
        for c in 0..4 {
            let total = l.iter().filter(|&&x| x == c).count();
            for i in 0..k {
                let n = f.test(i).iter().filter(|&&j| l[j] == c).count();
                assert!(
                    n == total / k || n == total.div_ceil(k),
                    "class {c} ({total} images) has {n} in fold {i}"
                );
            }
        }
    }

    #[test]
    fn folds_depend_on_the_seed_only() {
        let l = labels();
        let a = Folds::stratified(&l, &names(4), 3, 11).unwrap();
        let b = Folds::stratified(&l, &names(4), 3, 11).unwrap();
        let c = Folds::stratified(&l, &names(4), 3, 12).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn folds_reject_bad_k_empty_data_and_small_classes() {
        let l = labels();
        let err = |k, labels: &[usize]| {
            Folds::stratified(labels, &names(4), k, 0)
                .unwrap_err()
                .to_string()
        };
        assert!(err(1, &l).contains("at least 2"));
        assert!(err(0, &l).contains("at least 2"));
        assert!(err(3, &[]).contains("no images"));
        assert!(err(5, &[0, 1, 2, 3]).contains("more than the 4 images"));
        // Class c3 has 5 images: 6 folds cannot all hold one.
        let e = err(6, &l);
        assert!(e.contains("'c3'") && e.contains("5 images"), "{e}");
        assert!(Folds::stratified(&[0, 7], &names(2), 2, 0).is_err());
    }
}
