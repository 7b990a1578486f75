//! Letters from installed fonts (run scripts/install-fonts.sh first): discovery, the split
//! by typeface, rendering, samples and decoding.

use convnet::data::letters::*;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

fn fonts() -> Vec<Font> {
    let fonts = discover_fonts(DEFAULT_FONT_DIR).expect("font folder readable");
    assert!(
        fonts.len() >= 10,
        "only {} fonts: run scripts/install-fonts.sh",
        fonts.len()
    );
    fonts
}

#[test]
fn letters_fonts_split_disjoint_by_group() {
    let (train, test) = split_fonts(fonts());
    assert!(!train.is_empty() && !test.is_empty());
    for t in &test {
        assert!(train
            .iter()
            .all(|f| f.group() != t.group() && f.path() != t.path()));
    }
}

#[test]
fn letters_symbol_font_is_refused() {
    let path = "/usr/share/fonts/opentype/urw-base35/StandardSymbolsPS.otf";
    if std::path::Path::new(path).exists() {
        let err = Font::load(path).unwrap_err().to_string();
        assert!(err.contains("StandardSymbolsPS"), "{err}");
    }
}

#[test]
fn letters_line_width_grows_with_text() {
    let f = &fonts()[0];
    let short = render_line(f, "cat", 32).unwrap();
    let long = render_line(f, "cat and dog", 32).unwrap();
    assert_eq!((short.height, long.height), (32, 32));
    assert!(long.width > short.width + 20);
    assert!(long.data.iter().sum::<f32>() > short.data.iter().sum::<f32>());
}

fn centre_ink(px: &[f32]) -> (f32, f32) {
    let mut centre = 0.0;
    for y in 8..26 {
        for x in 12..20 {
            centre += px[y * 32 + x];
        }
    }
    (centre, px.iter().sum())
}

#[test]
fn letters_samples_have_ink_in_centre() {
    let set = LetterSet::new(fonts(), LetterOptions::none()).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    for i in 0..26 * 4 {
        let (px, label) = set.sample(i, &mut rng).unwrap();
        assert_eq!(px.len(), 32 * 32);
        assert_eq!(label, i % 27);
        assert!(px.iter().all(|v| (0.0..=255.0).contains(v)));
        let (centre, _) = centre_ink(&px);
        if label < 26 {
            assert!(
                centre > 255.0 * 4.0,
                "sample {i} ('{label}') has little ink in the centre"
            );
        }
    }
}

#[test]
fn letters_same_seed_same_dataset() {
    let all = fonts();
    let few: Vec<Font> = all.into_iter().take(5).collect();
    let set = LetterSet::new(few, LetterOptions::default()).unwrap();
    let a = set.make_dataset(3, 11).unwrap();
    let b = set.make_dataset(3, 11).unwrap();
    let c = set.make_dataset(3, 12).unwrap();
    assert_eq!(a.images.shape(), &[81, 1, 32, 32]);
    assert_eq!(a.classes.len(), 27);
    assert_eq!(a.classes[BACKGROUND], BACKGROUND_NAME);
    assert_eq!(a.images, b.images);
    assert_eq!(a.labels, b.labels);
    assert_ne!(a.images, c.images);
}

fn labels(s: &str) -> Vec<usize> {
    s.bytes()
        .map(|b| {
            if b == b'_' {
                BACKGROUND
            } else {
                (b - b'a') as usize
            }
        })
        .collect()
}

#[test]
fn letters_decode_runs_and_gaps() {
    assert_eq!(
        decode(&labels("__ttt_hhh_eee_______ccc_aaa_ttt__"), BACKGROUND),
        "the cat"
    );
    // Double letters separated by a short gap stay double; flicker is dropped.
    assert_eq!(decode(&labels("hhh_eee_lll_lll_ooo"), BACKGROUND), "hello");
    assert_eq!(decode(&labels("ttttxttt"), BACKGROUND), "t");
    assert_eq!(raw_string(&labels("ab__c"), BACKGROUND), "ab  c");
}

#[test]
fn letters_decode_splits_long_runs_with_advances() {
    let mut o = DecodeOptions::new(BACKGROUND);
    o.advances = Some(vec![6.0; 26]);
    assert_eq!(
        decode_with(&labels("hhhhh_eeeee_llllllllllll_ooooo"), &o),
        "hello"
    );
    assert_eq!(decode_with(&labels("lllll"), &o), "l");
}
