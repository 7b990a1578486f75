//! Finding text on rendered pages (fonts from scripts/install-fonts.sh): every line found,
//! in order, at the geometry the reader expects, whatever the size, polarity, contrast,
//! noise and compression; nothing found where there is no text; word gaps from the ink.

use convnet::data::letters::page::{ink_gaps, word_gaps};
use convnet::data::letters::*;
use image::DynamicImage;

const LINES: [&str; 3] = [
    "the quick brown fox jumps over the lazy dog",
    "pack my box with five dozen liquor jugs",
    "a small network reads this line of text",
];

/// A few held-out fonts, spread over the list.
fn held_out(n: usize) -> Vec<Font> {
    let (_, test) = split_fonts(discover_fonts(DEFAULT_FONT_DIR).unwrap());
    assert!(test.len() >= n, "run scripts/install-fonts.sh");
    let step = test.len() / n;
    test.into_iter().step_by(step).take(n).collect()
}

/// The ways a page is drawn in these tests.
fn styles(height: usize) -> Vec<(&'static str, PageStyle, bool)> {
    let base = PageStyle {
        margin: Some(height),
        ..PageStyle::new(height)
    };
    vec![
        ("plain", base.clone(), false),
        (
            "inverted",
            PageStyle {
                ink: [240, 240, 200],
                paper: [20, 30, 60],
                ..base.clone()
            },
            false,
        ),
        (
            "low contrast, uneven light",
            PageStyle {
                ink: [105, 105, 105],
                paper: [150, 150, 150],
                shade: 0.3,
                ..base.clone()
            },
            false,
        ),
        (
            "noisy JPEG",
            PageStyle {
                noise: 0.08,
                blur: 0.7,
                seed: 3,
                ..base
            },
            true,
        ),
    ]
}

fn picture(font: &Font, style: &PageStyle, jpeg: bool) -> DynamicImage {
    let img = DynamicImage::ImageRgb8(render_page(font, &LINES, style).unwrap());
    if !jpeg {
        return img;
    }
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 60)
        .encode_image(&img)
        .unwrap();
    image::load_from_memory(&bytes).unwrap()
}

#[test]
fn letters_page_finds_every_line_in_order_at_the_readers_geometry() {
    for font in held_out(3) {
        for height in [20usize, 48, 96] {
            let h = height as f32;
            let pitch = (1.25 * h).round();
            let x_height = X_HEIGHT_FRAC * h;
            for (name, style, jpeg) in styles(height) {
                let what = format!("{} {}, {height} px, {name}", font.family(), font.style());
                let page = Page::new(&picture(&font, &style, jpeg)).unwrap();
                assert_eq!(page.dark_ink(), style.ink[0] < style.paper[0], "{what}");
                let lines = page.lines();
                assert_eq!(lines.len(), 3, "{what}: {lines:?}");
                for (i, line) in lines.iter().enumerate() {
                    let baseline = h + pitch * i as f32 + (BASELINE_FRAC * h).round();
                    assert!(
                        (line.baseline - baseline).abs() < 0.2 * x_height,
                        "{what}, line {i}: baseline {} for {baseline}",
                        line.baseline
                    );
                    let ratio = line.x_height() / x_height;
                    assert!(
                        (0.85..1.15).contains(&ratio),
                        "{what}, line {i}: x-height {} for {x_height}",
                        line.x_height()
                    );
                    let cut = page.line_image(line);
                    assert_eq!(cut.height, WINDOW, "{what}");
                    if !jpeg {
                        assert_eq!(
                            word_gaps(&cut).len(),
                            LINES[i].matches(' ').count(),
                            "{what}, line {i}: word gaps {:?} among {:?}",
                            word_gaps(&cut),
                            ink_gaps(&cut)
                        );
                    }
                }
            }
        }
    }
}

/// The line cut out of a page at its own size matches the line rendered at the reader's
/// height: as long, and with the same profile of ink along the rows (x-height band and
/// baseline in the same rows).
#[test]
fn letters_page_cut_out_line_matches_the_rendered_line() {
    let ink_cols = |g: &Gray| -> Vec<usize> {
        (0..g.width)
            .filter(|&x| (0..g.height).any(|y| g.data[y * g.width + x] > 0.5))
            .collect()
    };
    let rows = |g: &Gray| -> Vec<f64> {
        (0..g.height)
            .map(|y| {
                g.data[y * g.width..(y + 1) * g.width]
                    .iter()
                    .map(|&v| f64::from(v))
                    .sum()
            })
            .collect()
    };
    for font in held_out(3) {
        for height in [24usize, 64] {
            let style = PageStyle {
                margin: Some(height),
                ..PageStyle::new(height)
            };
            let page = Page::new(&picture(&font, &style, false)).unwrap();
            let lines = page.lines();
            assert_eq!(lines.len(), 3);
            for (line, text) in lines.iter().zip(LINES) {
                let what = format!(
                    "{} {}, {height} px, \"{text}\"",
                    font.family(),
                    font.style()
                );
                let cut = page.line_image(line);
                let direct = render_line(&font, text, WINDOW).unwrap();
                let (c, d) = (ink_cols(&cut), ink_cols(&direct));
                let ratio = (c[c.len() - 1] - c[0]) as f32 / (d[d.len() - 1] - d[0]) as f32;
                assert!(
                    (0.95..1.05).contains(&ratio),
                    "{what}: length ratio {ratio:.3}"
                );
                let (p, q) = (rows(&cut), rows(&direct));
                let dot: f64 = p.iter().zip(&q).map(|(a, b)| a * b).sum();
                let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
                let r = dot / (norm(&p) * norm(&q));
                assert!(r > 0.97, "{what}: row profiles correlate {r:.3}");
            }
        }
    }
}

#[test]
fn letters_page_without_text_has_no_lines() {
    let blank = |w: u32, h: u32, v: u8| image::RgbImage::from_pixel(w, h, image::Rgb([v, v, v]));
    let mut noisy = blank(300, 120, 128);
    let mut gradient = blank(300, 120, 0);
    let mut state = 12345u32;
    for (x, _, p) in noisy.enumerate_pixels_mut() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let n = ((state >> 16) % 41) as i32 - 20;
        p.0 = [(128 + n + (x as i32 % 2)) as u8; 3];
    }
    for (x, y, p) in gradient.enumerate_pixels_mut() {
        p.0 = [(60 + x / 2 + y / 4) as u8; 3];
    }
    for (name, img) in [
        ("white", blank(300, 120, 255)),
        ("black", blank(300, 120, 0)),
        ("noise", noisy),
        ("gradient", gradient),
    ] {
        let page = Page::new(&DynamicImage::ImageRgb8(img)).unwrap();
        assert!(page.lines().is_empty(), "{name}: {:?}", page.lines());
    }
}

#[test]
fn letters_page_too_small_is_a_clear_error() {
    for (w, h) in [(1, 1), (5, 40), (40, 5), (0, 0)] {
        let img = DynamicImage::ImageRgb8(image::RgbImage::new(w, h));
        let err = Page::new(&img).unwrap_err().to_string();
        assert!(err.contains("too small"), "{w}x{h}: {err}");
    }
}

/// Word gaps from the ink match the spaces of the text on most lines of every held-out
/// font: letters of one word are not split and words are not joined.
#[test]
fn letters_page_word_gaps_follow_the_spaces_in_held_out_fonts() {
    let (_, test) = split_fonts(discover_fonts(DEFAULT_FONT_DIR).unwrap());
    let (mut right, mut total) = (0, 0);
    for font in &test {
        for text in LINES {
            let line = render_line(font, text, WINDOW).unwrap();
            total += 1;
            right += usize::from(word_gaps(&line).len() == text.matches(' ').count());
        }
    }
    assert!(
        right * 100 >= 90 * total,
        "word gaps right on {right} of {total} lines"
    );
}
