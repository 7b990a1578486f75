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

/// A run of equal labels over positions `start..end`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Run {
    label: usize,
    start: usize,
    end: usize,
}

impl Run {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Runs of equal labels, joining runs that become neighbours.
fn runs(labels: impl IntoIterator<Item = Run>) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for run in labels {
        match out.last_mut() {
            Some(last) if last.label == run.label => last.end = run.end,
            _ => out.push(run),
        }
    }
    out
}

/// The runs between the first and the last.
fn interior(runs: &[Run]) -> impl Iterator<Item = Run> + '_ {
    let end = runs.len().saturating_sub(1);
    runs.iter().copied().take(end).skip(1)
}

/// Where a line's own ink says its letters and words are, at the positions of the labels
/// (see `page::ink_layout`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InkLayout {
    /// The runs `start..end` of positions with ink: letters, or letters that touch.
    pub marks: Vec<(usize, usize)>,
    /// The paper runs `start..end` between words.
    pub word_gaps: Vec<(usize, usize)>,
}

impl DecodeOptions {
    fn px(&self, len: usize) -> f32 {
        len as f32 * self.stride_px
    }

    fn is_letter(&self, label: usize) -> bool {
        label != self.background && letter(label).is_some()
    }

    fn advance(&self, label: usize) -> f32 {
        self.advances
            .as_ref()
            .and_then(|a| a.get(label))
            .copied()
            .unwrap_or(0.0)
    }

    /// The runs of background and of letters long enough for their letter; other labels
    /// are background.
    fn kept_runs(&self, labels: &[usize]) -> Vec<Run> {
        let shortest = |l: usize| {
            self.min_letter_px
                .max(self.min_letter_frac * self.advance(l))
        };
        let plain = runs(labels.iter().enumerate().map(|(i, &l)| Run {
            label: if self.is_letter(l) {
                l
            } else {
                self.background
            },
            start: i,
            end: i + 1,
        }));
        runs(
            plain
                .into_iter()
                .filter(|r| !self.is_letter(r.label) || self.px(r.len()) >= shortest(r.label)),
        )
    }

    /// How many of letter `label` something `len` positions wide stands for: one, or
    /// more when it is long for its letter (a double letter whose gap was missed).
    fn letter_count(&self, label: usize, len: usize) -> usize {
        let width = self.advance(label);
        if width > 0.0 {
            1 + (self.px(len) / (1.5 * width)).floor() as usize
        } else {
            1
        }
    }
}

/// Decodes per-position labels into text by the rule of this module.
pub fn decode_with(labels: &[usize], o: &DecodeOptions) -> String {
    let kept = o.kept_runs(labels);
    let mut gaps: Vec<f32> = interior(&kept)
        .filter(|r| !o.is_letter(r.label))
        .map(|r| o.px(r.len()))
        .collect();
    gaps.sort_by(f32::total_cmp);
    let median = gaps
        .get(gaps.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0);
    let word_gap = o.word_gap_px.max(o.word_gap_ratio * median);
    let mut text = String::new();
    for (i, run) in kept.iter().enumerate() {
        if let Some(c) = letter(run.label).filter(|_| o.is_letter(run.label)) {
            text.extend(std::iter::repeat_n(c, o.letter_count(run.label, run.len())));
        } else {
            let interior = i > 0 && i + 1 < kept.len();
            if interior && o.px(run.len()) >= word_gap {
                text.push(' ');
            }
        }
    }
    text
}

/// Decodes per-position labels with the line's own ink: letters read where the line has
/// no ink within `o.min_letter_px` positions are dropped (the reader saw an edge or
/// noise); a letter run long enough for two letters by the advance widths (a double
/// letter whose gap the reader missed) stands for two only when it also holds the
/// middles of two marks of ink, so that the long run of a narrow letter in a monospaced
/// font stays one letter; and a space goes between two letters exactly when a word gap
/// of `ink` lies between their middles and the labels between them are background over
/// half that gap (or half of `o.word_gap_px`). Middles are compared doubled, to stay in
/// whole numbers.
pub fn decode_with_ink(labels: &[usize], o: &DecodeOptions, ink: &InkLayout) -> String {
    let reach = o.min_letter_px.ceil() as usize;
    let inked = |r: &Run| {
        let (a, b) = (r.start.saturating_sub(reach), r.end + reach);
        ink.marks.iter().any(|m| m.0 < b && a < m.1)
    };
    let letters: Vec<Run> = o
        .kept_runs(labels)
        .into_iter()
        .filter(|r| o.is_letter(r.label) && inked(r))
        .collect();
    let mut text = String::new();
    for (i, run) in letters.iter().enumerate() {
        if i > 0 {
            let prev = letters[i - 1];
            let (from, to) = (prev.start + prev.end, run.start + run.end);
            // The reader must see paper there as well, over half the gap or half the
            // shortest word space: the gap after the stem of a t (whose crossbar and tail
            // lie outside the x-height band) is as wide as a word space in light faces,
            // yet the reader reads no background there; the tail of a j reaches back
            // under a word space.
            let paper = o.px(run.start.saturating_sub(prev.end));
            let spaced =
                |g: &(usize, usize)| paper >= (0.5 * o.px(g.1 - g.0)).min(0.5 * o.word_gap_px);
            if ink
                .word_gaps
                .iter()
                .any(|g| (from..=to).contains(&(g.0 + g.1)) && spaced(g))
            {
                text.push(' ');
            }
        }
        let centred: Vec<&(usize, usize)> = ink
            .marks
            .iter()
            .filter(|m| (2 * run.start..2 * run.end).contains(&(m.0 + m.1)))
            .collect();
        let count = o
            .letter_count(run.label, run.len())
            .min(centred.len().max(1));
        if let Some(c) = letter(run.label) {
            text.extend(std::iter::repeat_n(c, count));
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

    #[test]
    fn letters_decode_with_ink_spaces_only_at_word_gaps() {
        let o = DecodeOptions::new(BG);
        // "ab cd": a background run between b and c as short as the others, but the ink
        // has a word gap there; the long run between c and d is no word gap.
        let l = labels("aaa_bbb_ccc_______ddd");
        let ink = InkLayout {
            marks: vec![(0, 3), (4, 7), (8, 11), (18, 21)],
            word_gaps: vec![(7, 8)],
        };
        assert_eq!(decode_with_ink(&l, &o, &ink), "ab cd");
        // A letter read where there is no ink is dropped.
        let ink = InkLayout {
            marks: vec![(0, 3), (4, 7), (8, 11)],
            word_gaps: vec![],
        };
        assert_eq!(decode_with_ink(&l, &o, &ink), "abc");
    }

    #[test]
    fn letters_decode_with_ink_spaces_only_where_the_reader_sees_paper() {
        let o = DecodeOptions::new(BG);
        // A gap in the x-height band as wide as a word space (after the stem of a t),
        // but the reader reads the letters edge to edge: no space.
        let ink = InkLayout {
            marks: vec![(0, 2), (8, 14)],
            word_gaps: vec![(2, 8)],
        };
        assert_eq!(decode_with_ink(&labels("tttttthhhhhhhh"), &o, &ink), "th");
        // Paper read over half of the gap (a j's tail reaching back under the space):
        // a space.
        assert_eq!(decode_with_ink(&labels("xxx___jjjjjjjj"), &o, &ink), "x j");
    }

    #[test]
    fn letters_decode_with_ink_splits_long_runs_over_two_marks_only() {
        let mut o = DecodeOptions::new(BG);
        o.advances = Some(vec![4.0; 26]);
        let l = labels("llllllll");
        // Two stems under one long run: a double letter whose gap was missed.
        let two = InkLayout {
            marks: vec![(1, 3), (5, 7)],
            word_gaps: vec![],
        };
        assert_eq!(decode_with_ink(&l, &o, &two), "ll");
        // One wide mark (a monospaced l with its serifs): one letter.
        let one = InkLayout {
            marks: vec![(0, 8)],
            word_gaps: vec![],
        };
        assert_eq!(decode_with_ink(&l, &o, &one), "l");
    }
}
