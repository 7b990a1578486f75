//! Which vector instructions the kernels use, chosen once at run time from the CPU's
//! features (never from the machine that compiled the code): AVX-512 (F) where the
//! CPU has it, else AVX2 with FMA, else plain Rust. `CONVNET_ISA=avx2` or
//! `CONVNET_ISA=scalar` picks a lower level on purpose (to measure or test it); a
//! level the CPU lacks is never used.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
}

impl Isa {
    /// The best level this CPU runs.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// Every level this CPU runs, lowest first (tests run each).
    pub fn available() -> Vec<Isa> {
        let best = Isa::detect();
        [Isa::Scalar, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|&i| i <= best)
            .collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// The level the kernels use: the best the CPU runs, or a lower one named by
/// `CONVNET_ISA`.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let best = Isa::detect();
        let asked = std::env::var("CONVNET_ISA").ok().and_then(|v| {
            [Isa::Scalar, Isa::Avx2, Isa::Avx512]
                .into_iter()
                .find(|i| i.name() == v.trim())
        });
        asked.map_or(best, |a| a.min(best))
    })
}

/// Asks for the cache line at `p` to be brought into L1 ahead of use; a hint only
/// (nothing where there is no such instruction, and no fault for any address).
#[inline(always)]
pub fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and cannot fault.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_level_runs_here() {
        assert!(Isa::available().contains(&isa()));
        assert_eq!(Isa::available()[0], Isa::Scalar);
    }
}
