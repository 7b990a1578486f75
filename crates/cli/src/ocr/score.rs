//! How well a read line matches its text: letter edits and word accuracy.

/// Levenshtein distance: the fewest insertions, deletions and substitutions that turn
/// `a` into `b`.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(x != y);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Sums over read sentences.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    pub sentences: usize,
    /// Sentences read without a mistake.
    pub exact: usize,
    /// Sentences read with at most one wrong character.
    pub near_perfect: usize,
    pub words: usize,
    /// Words of the text read exactly (in order: words minus word-level edits).
    pub words_right: usize,
    pub chars: usize,
    /// Character edits (letters and spaces) between the text and what was read.
    pub char_edits: usize,
}

impl Tally {
    /// Adds one sentence: its `truth` and what was `read`.
    pub fn add(&mut self, truth: &str, read: &str) {
        let tw: Vec<&str> = truth.split_whitespace().collect();
        let rw: Vec<&str> = read.split_whitespace().collect();
        let tc: Vec<char> = truth.chars().collect();
        let rc: Vec<char> = read.chars().collect();
        let edits = edit_distance(&tc, &rc);
        self.sentences += 1;
        self.exact += usize::from(edits == 0);
        self.near_perfect += usize::from(edits <= 1);
        self.words += tw.len();
        self.words_right += tw.len().saturating_sub(edit_distance(&tw, &rw));
        self.chars += tc.len();
        self.char_edits += edits;
    }

    pub fn word_accuracy(&self) -> f64 {
        self.words_right as f64 / self.words.max(1) as f64
    }

    pub fn char_accuracy(&self) -> f64 {
        1.0 - self.char_edits as f64 / self.chars.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocr_edit_distance_counts_edits() {
        let d = |a: &str, b: &str| {
            edit_distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("the cat", "the cat"), 0);
        assert_eq!(d("the cat", "thecat"), 1);
    }

    #[test]
    fn ocr_tally_words_and_sentences() {
        let mut t = Tally::default();
        t.add("the cat sat", "the cat sat");
        t.add("the cat sat", "the cot sat");
        t.add("the cat sat", "thecat sit");
        assert_eq!((t.sentences, t.exact, t.near_perfect), (3, 1, 2));
        assert_eq!((t.words, t.words_right), (9, 3 + 2));
        assert_eq!(t.char_edits, 3);
    }
}
