//! Turning the reader's label at every window position into text.
//!
//! The rule: equal labels in a row form a run; a letter run is one letter, and background
//! runs separate letters (the background class is trained on the gaps between letters of
//! a word as well as on word spaces), so double letters ("ll") come out as two runs. A
//! background run at least `word_gap_px` long (and, with `word_gap_ratio`, long next to
//! the line's median gap) is a word space. Letter runs shorter than `min_letter_px` (or
//! `min_letter_frac` of the letter's advance) are flicker and are dropped (the runs on
//! either side then join). When
//! the reader misses the gap inside a double letter, one run covers both letters: with
//! the letters' typical advance widths known (`advances`), a run of letter c counts as
//! `1 + floor(length / (1.5 * advance[c]))` letters.

/// How [`decode_with`] reads a label sequence. Lengths are in pixels of the 32 px line.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeOptions {
    /// Class index of background; letters are classes 0..26 ('a'..'z').
    pub background: usize,
    /// Pixels between neighbouring window positions (the reader's stride).
    pub stride_px: f32,
    /// Shortest background run that is a word space.
    pub word_gap_px: f32,
    /// A background run is a word space only when it is also at least this many times
    /// the median background run between letters of the line (0: off): letters of
    /// monospaced fonts stand far apart, and so must their word spaces.
    pub word_gap_ratio: f32,
    /// Letter runs shorter than this are dropped as flicker.
    pub min_letter_px: f32,
    /// Letter runs shorter than this fraction of the letter's advance width are dropped
    /// too (when `advances` are known): a wide letter read for 3 px is the edge of a
    /// neighbour, an i read for 3 px is an i.
    pub min_letter_frac: f32,
    /// Typical advance width of each letter a-z, px (see `typical_advances`); `None`
    /// never splits a run.
    pub advances: Option<Vec<f32>>,
}

impl DecodeOptions {
    /// Stride 1 px, word gaps of 6 px (half the x-height) or more, flicker under 2 px.
    pub fn new(background: usize) -> Self {
        DecodeOptions {
            background,
            stride_px: 1.0,
            word_gap_px: 6.0,
            word_gap_ratio: 0.0,
            min_letter_px: 2.0,
            min_letter_frac: 0.0,
            advances: None,
        }
    }
}

/// The label at every position as one character: the letter, or a space for background
/// (and '?' for a label that is neither).
pub fn raw_string(labels: &[usize], background: usize) -> String {
    labels
        .iter()
        .map(|&l| letter(l).unwrap_or(if l == background { ' ' } else { '?' }))
        .collect()
}

/// [`decode_with`] with [`DecodeOptions::new`]: "ttt_hhh_eee______ccc_aaa_ttt" (with '_'
/// for background) reads "the cat".
pub fn decode(labels: &[usize], background: usize) -> String {
    decode_with(labels, &DecodeOptions::new(background))
}

fn letter(label: usize) -> Option<char> {
    (label < 26).then(|| char::from(b'a' + label as u8))
}

/// Runs of equal labels as (label, length), joining runs that become neighbours.
fn runs(labels: impl IntoIterator<Item = (usize, usize)>) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (label, len) in labels {
        match out.last_mut() {
            Some(last) if last.0 == label => last.1 += len,
            _ => out.push((label, len)),
        }
    }
    out
}

/// The runs between the first and the last.
fn interior(runs: &[(usize, usize)]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let end = runs.len().saturating_sub(1);
    runs.iter().copied().take(end).skip(1)
}

/// Decodes per-position labels into text by the rule of this module.
pub fn decode_with(labels: &[usize], o: &DecodeOptions) -> String {
    let px = |len: usize| len as f32 * o.stride_px;
    let is_letter = |l: usize| l != o.background && letter(l).is_some();
    let advance = |l: usize| {
        o.advances
            .as_ref()
            .and_then(|a| a.get(l))
            .copied()
            .unwrap_or(0.0)
    };
    let shortest = |l: usize| o.min_letter_px.max(o.min_letter_frac * advance(l));
    // Labels that are neither a letter nor background are read as background.
    let plain = runs(
        labels
            .iter()
            .map(|&l| (if is_letter(l) { l } else { o.background }, 1)),
    );
    let kept = runs(
        plain
            .into_iter()
            .filter(|&(l, n)| !is_letter(l) || px(n) >= shortest(l)),
    );
    let mut gaps: Vec<f32> = interior(&kept)
        .filter(|&(label, _)| !is_letter(label))
        .map(|(_, n)| px(n))
        .collect();
    gaps.sort_by(f32::total_cmp);
    let median = gaps
        .get(gaps.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0);
    let word_gap = o.word_gap_px.max(o.word_gap_ratio * median);
    let mut text = String::new();
    for (i, &(label, n)) in kept.iter().enumerate() {
        match letter(label).filter(|_| is_letter(label)) {
            Some(c) => {
                let width = advance(label);
                let count = if width > 0.0 {
                    1 + (px(n) / (1.5 * width)).floor() as usize
                } else {
                    1
                };
                text.extend(std::iter::repeat_n(c, count));
            }
            None => {
                let interior = i > 0 && i + 1 < kept.len();
                if interior && px(n) >= word_gap {
                    text.push(' ');
                }
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const BG: usize = 26;

    /// Labels from a pattern: a-z are letters, '_' is background.
    fn labels(pattern: &str) -> Vec<usize> {
        pattern
            .bytes()
            .map(|b| if b == b'_' { BG } else { usize::from(b - b'a') })
            .collect()
    }

    #[test]
    fn letters_decode_drops_runs_short_for_their_letter() {
        let mut o = DecodeOptions::new(BG);
        let mut widths = vec![10.0; 26];
        widths[8] = 4.0; // i
        o.advances = Some(widths);
        o.min_letter_frac = 0.4;
        // Three columns of i are an i; three columns of m (advance 10) are an edge.
        assert_eq!(decode_with(&labels("hhhhhh_iii_mmm_nnnnnn"), &o), "hin");
        o.min_letter_frac = 0.0;
        assert_eq!(decode_with(&labels("hhhhhh_iii_mmm_nnnnnn"), &o), "himn");
    }

    #[test]
    fn letters_decode_word_gaps_scale_with_the_line() {
        let mut o = DecodeOptions::new(BG);
        o.word_gap_px = 4.0;
        // Letters 5 apart inside words, words 9 apart (a monospaced font).
        let wide = "aaa_____bbb_____ccc_________ddd_____eee";
        assert_eq!(decode_with(&labels(wide), &o), "a b c d e");
        o.word_gap_ratio = 1.5;
        assert_eq!(decode_with(&labels(wide), &o), "abc de");
        // A tight line keeps the absolute minimum.
        assert_eq!(decode_with(&labels("aaa_bbb____ccc"), &o), "ab c");
    }
}
