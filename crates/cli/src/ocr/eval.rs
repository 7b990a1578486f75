//! How well a reader reads the held-out typefaces: letter windows, sentences rendered as
//! single lines at the reader's height, and pages of several lines found and cut out by
//! the page reader.

use std::sync::Arc;

use anyhow::Result;
use convnet::data::dataset::Dataset;
use convnet::data::letters::{
    class_names, render_line, render_page, Font, Page, PageStyle, BACKGROUND, WINDOW,
};
use convnet::data::normalize::Normalization;
use convnet::net::Network;
use convnet::train::evaluate;

use super::{Reader, Tally};

/// Sentences read back in every held-out font; together they use every letter.
pub const SENTENCES: &[&str] = &[
    "the quick brown fox jumps over the lazy dog",
    "pack my box with five dozen liquor jugs",
    "a small network reads this line of text",
];

/// Prints the accuracy on letter windows (and on all windows), then the letters most
/// often mistaken, with what they were taken for.
pub fn report_windows(
    network: &mut Network,
    windows: Arc<Dataset>,
    norm: &Normalization,
) -> Result<()> {
    let eval = evaluate(network, windows, norm, 100)?;
    let confusion = &eval.confusion;
    let diagonal = |c: usize| {
        confusion
            .get(c)
            .and_then(|r| r.get(c))
            .copied()
            .unwrap_or(0)
    };
    let total = |c: usize| confusion.get(c).map_or(0, |r| r.iter().sum::<usize>());
    let percent = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    let letters_right: usize = (0..BACKGROUND).map(diagonal).sum();
    let letters: usize = (0..BACKGROUND).map(total).sum();
    let all_right: usize = (0..confusion.len()).map(diagonal).sum();
    let all: usize = (0..confusion.len()).map(total).sum();
    println!(
        "held-out fonts: letter accuracy {:.2}% ({letters_right}/{letters} letter windows), \
         {:.2}% with background ({all_right}/{all} windows)",
        percent(letters_right, letters),
        percent(all_right, all),
    );
    worst_letters(confusion);
    Ok(())
}

/// Prints the letters most often mistaken, with what they were taken for.
fn worst_letters(confusion: &[Vec<usize>]) {
    let names = class_names();
    let mut errors: Vec<(usize, usize, usize)> = Vec::new();
    for (t, row) in confusion.iter().enumerate() {
        for (p, &n) in row.iter().enumerate() {
            if t != p && n > 0 {
                errors.push((n, t, p));
            }
        }
    }
    errors.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let top: Vec<String> = errors
        .iter()
        .take(6)
        .filter_map(|&(n, t, p)| Some(format!("{}->{} {n}", names.get(t)?, names.get(p)?)))
        .collect();
    if !top.is_empty() {
        println!(
            "most frequent confusions (true->read count): {}",
            top.join(", ")
        );
    }
}

/// The figures of a tally, as one phrase.
fn tally_phrase(tally: &Tally) -> String {
    format!(
        "{} of {} read exactly ({} with at most one wrong character); word accuracy \
         {:.2}% ({}/{}), character accuracy {:.2}%",
        tally.exact,
        tally.sentences,
        tally.near_perfect,
        100.0 * tally.word_accuracy(),
        tally.words_right,
        tally.words,
        100.0 * tally.char_accuracy().max(0.0)
    )
}

/// Renders every sentence in every font as a line picture at the reader's height, reads
/// it back as `ocr read` reads a picture (the line found and cut out of it), and prints
/// the tally, with the first sentence as read in the first font. With `misread`, prints
/// every sentence read wrongly.
pub fn report_sentences(reader: &mut Reader, fonts: &[Font], misread: bool) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut example = None;
    for font in fonts {
        for sentence in SENTENCES {
            let mut picture = render_line(font, sentence, WINDOW)?;
            // Dark ink on white paper, as `ocr render` saves it.
            picture.data.iter_mut().for_each(|v| *v = 1.0 - *v);
            let lines = reader.read_page(&Page::from_intensity(&picture))?;
            let text = lines
                .iter()
                .map(|l| l.1.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            tally.add(sentence, &text);
            if misread && text != *sentence {
                println!("  {} {}: \"{text}\"", font.family(), font.style());
            }
            if example.is_none() {
                example = Some((format!("{} {}", font.family(), font.style()), text));
            }
        }
    }
    println!("sentences in held-out fonts: {}", tally_phrase(&tally));
    if let Some((font, text)) = example {
        println!("for example, in {font}: \"{text}\"");
    }
    Ok(tally)
}

/// Renders the sentences as one page per font with `style` (saved as JPEG of quality
/// `jpeg` first, when given), reads each page, and prints how many pages had every line
/// found and the tally of their lines, read in order against the sentences; with
/// `misread`, also every line read wrongly.
pub fn report_pages(
    reader: &mut Reader,
    fonts: &[Font],
    style: &PageStyle,
    jpeg: Option<u8>,
    misread: bool,
) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut complete = 0;
    let mut worst: Option<(usize, String)> = None;
    for (i, font) in fonts.iter().enumerate() {
        let style = PageStyle {
            seed: style.seed.wrapping_add(i as u64),
            ..style.clone()
        };
        let picture = image::DynamicImage::ImageRgb8(render_page(font, SENTENCES, &style)?);
        let picture = match jpeg {
            Some(q) => {
                let mut bytes = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, q)
                    .encode_image(&picture)?;
                image::load_from_memory(&bytes)?
            }
            None => picture,
        };
        let lines = reader.read_page(&Page::new(&picture)?)?;
        complete += usize::from(lines.len() == SENTENCES.len());
        for (k, sentence) in SENTENCES.iter().enumerate() {
            let read = lines.get(k).map_or("", |l| l.1.as_str());
            tally.add(sentence, read);
            if misread && read != *sentence {
                println!(
                    "  {} {} line {}: \"{read}\"",
                    font.family(),
                    font.style(),
                    k + 1
                );
            }
        }
        let found = lines.len().abs_diff(SENTENCES.len());
        if found > 0 && worst.as_ref().is_none_or(|w| found > w.0) {
            worst = Some((found, format!("{} {}", font.family(), font.style())));
        }
    }
    println!(
        "pages in held-out fonts ({} lines {} px high): {complete} of {} with every line \
         found; sentences {}",
        SENTENCES.len(),
        style.height,
        fonts.len(),
        tally_phrase(&tally)
    );
    if let Some((n, font)) = worst {
        println!("for example, {n} lines too many or too few in {font}");
    }
    Ok(tally)
}
