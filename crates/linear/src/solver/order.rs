//! The random coordinate order of the coordinate-descent solvers. LIBLINEAR draws
//! `rand() % n`; a seeded xoshiro stream keeps our runs reproducible instead.

use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A permutation of `0..n` whose first `active` entries are the coordinates still
/// visited (shrinking moves the others behind them).
pub(crate) struct Order {
    rng: Xoshiro256PlusPlus,
    pub index: Vec<usize>,
}

impl Order {
    pub fn new(n: usize, seed: u64) -> Self {
        Order {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            index: (0..n).collect(),
        }
    }

    /// Fisher-Yates over the active prefix, drawn the way LIBLINEAR draws it
    /// (`j = i + rand() % (active - i)`).
    pub fn shuffle(&mut self, active: usize) {
        for i in 0..active {
            let span = (active - i) as u64;
            let j = i + (self.rng.next_u64() % span) as usize;
            self.index.swap(i, j);
        }
    }

    /// Moves the coordinate at position `s` out of the active prefix of length
    /// `*active`, which shrinks by one.
    pub fn deactivate(&mut self, s: usize, active: &mut usize) {
        *active -= 1;
        self.index.swap(s, *active);
    }
}
