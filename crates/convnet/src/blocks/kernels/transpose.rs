//! Packing a row-major matrix into the micro-kernels' panels is a transpose: row `r`
//! of the source, read along its depths, becomes value `r` of every depth's group.
//! Scattering one value at a time cost a tenth of ResNet-18's batch-1 forward (its
//! weights are packed on every call), so full 8 x 8 blocks go through AVX registers.

use super::cpu::{self, Isa};

/// Writes rows `0..rows` of `src` (row `r` starts at `r * rs`, its depths `0..kc`
/// contiguous) as `kc` groups of `width` values: `dst[kk * width + r] = src[r * rs +
/// kk]`, values `rows..width` of each group zero.
///
/// Panics when `src` or `dst` is too short.
pub fn rows_to_groups(
    src: &[f32],
    rs: usize,
    rows: usize,
    kc: usize,
    width: usize,
    dst: &mut [f32],
) {
    assert!(
        rows <= width && dst.len() >= kc * width,
        "panel outside its buffer"
    );
    if rows == 0 || kc == 0 {
        dst[..kc * width].fill(0.0);
        return;
    }
    assert!(
        src.len() >= (rows - 1) * rs + kc,
        "rows outside their matrix"
    );
    if rows < width {
        dst[..kc * width].fill(0.0);
    }
    let (r8, k8) = (rows / 8 * 8, kc / 8 * 8);
    #[cfg(target_arch = "x86_64")]
    if cpu::isa() >= Isa::Avx2 && r8 > 0 && k8 > 0 {
        // SAFETY: AVX is present (every AVX2 CPU has it); the blocks read rows
        // below `rows` at depths below `kc`, and write groups below `kc`, at values
        // below `rows <= width`: inside both slices (checked above).
        unsafe { x86::blocks(src, rs, r8, k8, width, dst) };
    } else {
        scalar(src, rs, 0..r8, 0..k8, width, dst);
    }
    #[cfg(not(target_arch = "x86_64"))]
    scalar(src, rs, 0..r8, 0..k8, width, dst);
    // the edges: depths past the last block, rows past the last block
    scalar(src, rs, 0..rows, k8..kc, width, dst);
    scalar(src, rs, r8..rows, 0..k8, width, dst);
}

fn scalar(
    src: &[f32],
    rs: usize,
    rows: std::ops::Range<usize>,
    depths: std::ops::Range<usize>,
    width: usize,
    dst: &mut [f32],
) {
    for r in rows {
        let row = &src[r * rs..];
        for kk in depths.clone() {
            dst[kk * width + r] = row[kk];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The 8 x 8 blocks of rows `0..r8` and depths `0..k8`.
    #[target_feature(enable = "avx")]
    pub unsafe fn blocks(
        src: &[f32],
        rs: usize,
        r8: usize,
        k8: usize,
        width: usize,
        dst: &mut [f32],
    ) {
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        for r0 in (0..r8).step_by(8) {
            for k0 in (0..k8).step_by(8) {
                let at = |i: usize| _mm256_loadu_ps(s.add((r0 + i) * rs + k0));
                let (a0, a1, a2, a3) = (at(0), at(1), at(2), at(3));
                let (a4, a5, a6, a7) = (at(4), at(5), at(6), at(7));
                let (t0, t1) = (_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
                let (t2, t3) = (_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
                let (t4, t5) = (_mm256_unpacklo_ps(a4, a5), _mm256_unpackhi_ps(a4, a5));
                let (t6, t7) = (_mm256_unpacklo_ps(a6, a7), _mm256_unpackhi_ps(a6, a7));
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let put = |j: usize, v: __m256| _mm256_storeu_ps(d.add((k0 + j) * width + r0), v);
                put(0, _mm256_permute2f128_ps::<0x20>(u0, u4));
                put(1, _mm256_permute2f128_ps::<0x20>(u1, u5));
                put(2, _mm256_permute2f128_ps::<0x20>(u2, u6));
                put(3, _mm256_permute2f128_ps::<0x20>(u3, u7));
                put(4, _mm256_permute2f128_ps::<0x31>(u0, u4));
                put(5, _mm256_permute2f128_ps::<0x31>(u1, u5));
                put(6, _mm256_permute2f128_ps::<0x31>(u2, u6));
                put(7, _mm256_permute2f128_ps::<0x31>(u3, u7));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_its_group() {
        for &(rows, kc, width, rs) in &[
            (8, 8, 8, 8),
            (48, 320, 48, 4608),
            (13, 21, 16, 30),
            (3, 5, 8, 5),
            (0, 4, 8, 1),
            (16, 7, 48, 9),
        ] {
            let src: Vec<f32> = (0..rows.max(1) * rs).map(|v| v as f32 + 0.5).collect();
            let mut dst = vec![f32::NAN; kc * width];
            rows_to_groups(&src, rs, rows, kc, width, &mut dst);
            for kk in 0..kc {
                for r in 0..width {
                    let want = if r < rows { src[r * rs + kk] } else { 0.0 };
                    assert_eq!(
                        dst[kk * width + r],
                        want,
                        "{rows}x{kc} width {width}: ({r}, {kk})"
                    );
                }
            }
        }
    }
}
