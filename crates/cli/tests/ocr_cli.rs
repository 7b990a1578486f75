//! `convnet ocr train`, `render` and `read` end to end (fonts from
//! scripts/install-fonts.sh): a tiny training run whose outputs are complete, a short
//! training run (once for this test binary) whose model reads pages in held-out
//! typefaces, and clear errors for bad pictures and models.

use convnet::data::letters::{discover_fonts, Split, DEFAULT_FONT_DIR};
use convnet::net::{save_model, zoo, Network};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod common;
use common::{convnet, ok, stderr, stdout};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// One installed font from each side of the split by typeface: (training, held out).
fn font_pair() -> (PathBuf, PathBuf) {
    let fonts = discover_fonts(DEFAULT_FONT_DIR).unwrap();
    let pick = |side: Split| {
        fonts
            .iter()
            .find(|f| f.split() == side)
            .map(|f| f.path().to_path_buf())
            .unwrap_or_else(|| panic!("no {side:?} font: run scripts/install-fonts.sh"))
    };
    (pick(Split::Train), pick(Split::Test))
}

/// The untrained `letters` network saved as a model file, for reading without training.
fn untrained_model(dir: &Path) -> PathBuf {
    let net = Network::from_desc(&zoo::get("letters").unwrap(), 1).unwrap();
    let path = dir.join("untrained.safetensors");
    save_model(&path, &net, "").unwrap();
    path
}

/// Both printed lines of `ocr read --raw` for a picture of one text line are well formed:
/// a label per column of the line cut out at 32 px high (about `width` columns), then
/// the text, letters and spaces only.
fn check_raw_output(out: &str, width: usize) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].chars().count().abs_diff(width) <= 4,
        "{} columns for about {width}: {out}",
        lines[0].chars().count()
    );
    for l in &lines {
        assert!(
            l.chars().all(|c| c == ' ' || c.is_ascii_lowercase()),
            "{out}"
        );
    }
}

fn render(font: &Path, text: &str, out: &Path) -> usize {
    let printed = ok(convnet(&["ocr", "render", text, "--font", s(font), s(out)]));
    assert!(printed.contains("x32 px"), "{printed}");
    image::open(out).unwrap().width() as usize
}

#[test]
fn ocr_tiny_training_gives_a_model_that_reads() {
    let dir = tempfile::tempdir().unwrap();
    let fonts = dir.path().join("fonts");
    std::fs::create_dir_all(&fonts).unwrap();
    let (train_font, test_font) = font_pair();
    for (i, f) in [&train_font, &test_font].iter().enumerate() {
        let ext = f.extension().unwrap().to_str().unwrap();
        std::fs::copy(f, fonts.join(format!("font{i}.{ext}"))).unwrap();
    }
    let out = dir.path().join("run");
    let printed = ok(convnet(&[
        "ocr",
        "train",
        "--fonts",
        s(&fonts),
        "--out",
        s(&out),
        "--samples",
        "4",
        "--test-samples",
        "1",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
    ]));
    assert!(printed.contains("letter accuracy"), "{printed}");
    assert!(printed.contains("word accuracy"), "{printed}");
    for f in [
        "model.safetensors",
        "ocr.json",
        "history.json",
        "curves.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ocr.json")).unwrap()).unwrap();
    assert_eq!(side["advances"].as_array().unwrap().len(), 26);

    let line = dir.path().join("line.png");
    let width = render(&test_font, "the cat", &line);
    let model = out.join("model.safetensors");
    // The line is cut out with 8 px of paper at either end instead of 16.
    check_raw_output(
        &ok(convnet(&["ocr", "read", s(&model), s(&line), "--raw"])),
        width - 16,
    );
}

#[test]
fn ocr_read_scales_a_taller_line_to_32_px() {
    let dir = tempfile::tempdir().unwrap();
    let model = untrained_model(dir.path());
    let line = dir.path().join("tall.png");
    let (font, _) = font_pair();
    let printed = ok(convnet(&[
        "ocr",
        "render",
        "dog",
        "--font",
        s(&font),
        s(&line),
        "--height",
        "64",
    ]));
    assert!(printed.contains("x64 px"), "{printed}");
    let w64 = image::open(&line).unwrap().width() as usize;
    let out = ok(convnet(&["ocr", "read", s(&model), s(&line), "--raw"]));
    // Half as wide, with 8 px of paper at either end instead of 16.
    check_raw_output(&out, w64 / 2 - 16);
}

#[test]
fn ocr_read_missing_or_garbled_picture_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let model = untrained_model(dir.path());
    let missing = dir.path().join("nothing.png");
    let o = convnet(&["ocr", "read", s(&model), s(&missing)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nothing.png"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());

    let garbled = dir.path().join("garbled.png");
    std::fs::write(&garbled, b"\x89PNG\r\n\x1a\nthis is not a picture").unwrap();
    let o = convnet(&["ocr", "read", s(&model), s(&garbled)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("garbled.png"), "{}", stderr(&o));
}

#[test]
fn ocr_read_refuses_a_model_that_is_not_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let lenet = Network::from_desc(&zoo::get("lenet").unwrap(), 1).unwrap();
    let model = dir.path().join("lenet.safetensors");
    save_model(&model, &lenet, "").unwrap();
    let line = dir.path().join("line.png");
    render(&font_pair().0, "a", &line);
    let o = convnet(&["ocr", "read", s(&model), s(&line)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("32x32x1"), "{}", stderr(&o));
}

#[test]
fn ocr_train_needs_fonts_on_both_sides_of_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let o = convnet(&["ocr", "train", "--fonts", s(dir.path()), "--quiet"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("0 training and 0 test fonts"),
        "{}",
        stderr(&o)
    );
}

/// A reader trained once for this test binary, on all installed fonts with a short recipe
/// (a few minutes' default recipe reads better; this one must read clean pages of
/// regular held-out typefaces).
fn trained_reader() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ocr-reader-{}", std::process::id()));
        let printed = ok(convnet(&[
            "ocr",
            "train",
            "--out",
            s(&out),
            "--samples",
            READER_SAMPLES,
            "--epochs",
            READER_EPOCHS,
            "--threads",
            "2",
            "--quiet",
        ]));
        assert!(printed.contains("pages in held-out fonts"), "{printed}");
        out.join("model.safetensors")
    })
}

/// The short recipe of [`trained_reader`]: training windows per class, and epochs.
const READER_SAMPLES: &str = "600";
const READER_EPOCHS: &str = "4";

const PAGE: [&str; 3] = [
    "the quick brown fox jumps over the lazy dog",
    "pack my box with five dozen liquor jugs",
    "a small network reads this line of text",
];

/// Held-out fonts in regular (upright, neither bold nor light) styles from different
/// typefaces.
fn regular_held_out_fonts(n: usize) -> Vec<PathBuf> {
    let fonts = discover_fonts(DEFAULT_FONT_DIR).unwrap();
    let mut seen = std::collections::HashSet::new();
    let picked: Vec<PathBuf> = fonts
        .iter()
        .filter(|f| f.split() == Split::Test && f.style() == "Regular")
        .filter(|f| seen.insert(f.group().to_string()))
        .map(|f| f.path().to_path_buf())
        .collect();
    assert!(picked.len() >= n, "run scripts/install-fonts.sh");
    let step = picked.len() / n;
    picked.into_iter().step_by(step).take(n).collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Pages of three lines in held-out typefaces, at text heights from 20 to 96 px, dark on
/// light and light on dark, at low contrast under uneven light, and noisy, blurred and
/// saved as JPEG: every line is found, in order, and at least 97% of the characters of
/// each kind of page are read right.
#[test]
fn ocr_reads_pages_in_held_out_typefaces() {
    let model = trained_reader();
    let dir = tempfile::tempdir().unwrap();
    let kinds: [(&str, &[&str]); 5] = [
        ("small", &["--height", "20"]),
        ("large", &["--height", "96"]),
        (
            "inverted",
            &["--height", "32", "--ink", "#f0f0d0", "--paper", "#203040"],
        ),
        (
            "low contrast",
            &[
                "--height", "40", "--ink", "#6a6a6a", "--paper", "#969696", "--shade", "0.3",
            ],
        ),
        (
            "noisy jpeg",
            &[
                "--height",
                "48",
                "--noise",
                "0.08",
                "--blur",
                "0.7",
                "--quality",
                "60",
            ],
        ),
    ];
    for (kind, options) in kinds {
        let (mut edits, mut chars) = (0, 0);
        for (i, font) in regular_held_out_fonts(3).iter().enumerate() {
            let ext = if kind == "noisy jpeg" { "jpg" } else { "png" };
            let picture = dir.path().join(format!("page{i}.{ext}"));
            let height: usize = options[1].parse().unwrap();
            let margin = height.to_string();
            let mut args = vec![
                "ocr",
                "render",
                "",
                "--font",
                s(font),
                s(&picture),
                "--margin",
                &margin,
            ];
            let text = PAGE.join("\n");
            args[2] = &text;
            args.extend_from_slice(options);
            let printed = ok(convnet(&args));
            assert!(printed.contains("3 lines"), "{printed}");
            let read = ok(convnet(&["ocr", "read", s(model), s(&picture)]));
            let lines: Vec<&str> = read.lines().collect();
            assert_eq!(lines.len(), 3, "{kind}, {}: {read}", font.display());
            for (k, (line, truth)) in lines.iter().zip(PAGE).enumerate() {
                // In order: each line is nearer its own sentence than any other.
                let own = levenshtein(line, truth);
                assert!(
                    PAGE.iter().all(|other| levenshtein(line, other) >= own),
                    "{kind}, {}: line {k} \"{line}\" is out of order",
                    font.display()
                );
                edits += own;
                chars += truth.len();
            }
        }
        let accuracy = 1.0 - edits as f64 / chars as f64;
        assert!(
            accuracy >= 0.97,
            "{kind}: {:.2}% of characters right",
            100.0 * accuracy
        );
    }
}

/// Pictures without text read as nothing, and say so; one too small to hold text is a
/// clear error naming it.
#[test]
fn ocr_read_blank_noisy_and_tiny_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let model = untrained_model(dir.path());
    let blank = dir.path().join("blank.png");
    image::GrayImage::from_pixel(300, 100, image::Luma([230]))
        .save(&blank)
        .unwrap();
    let noisy = dir.path().join("noisy.png");
    let mut state = 7u32;
    image::GrayImage::from_fn(300, 100, |_, _| {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        image::Luma([110 + ((state >> 16) % 31) as u8])
    })
    .save(&noisy)
    .unwrap();
    for picture in [&blank, &noisy] {
        let o = convnet(&["ocr", "read", s(&model), s(picture)]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stdout(&o).is_empty(),
            "{}: {}",
            picture.display(),
            stdout(&o)
        );
        assert!(stderr(&o).contains("no text found"), "{}", stderr(&o));
    }
    let tiny = dir.path().join("tiny.png");
    image::GrayImage::new(4, 30).save(&tiny).unwrap();
    let o = convnet(&["ocr", "read", s(&model), s(&tiny)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("tiny.png"), "{}", stderr(&o));
    assert!(stderr(&o).contains("too small"), "{}", stderr(&o));
}

/// `--raw` prints each line's labels before its text; a page is as big as its lines and
/// margins ask.
#[test]
fn ocr_render_page_and_read_raw() {
    let dir = tempfile::tempdir().unwrap();
    let model = untrained_model(dir.path());
    let (font, _) = font_pair();
    let page = dir.path().join("page.png");
    let printed = ok(convnet(&[
        "ocr",
        "render",
        "the cat\nsat on the mat",
        "--font",
        s(&font),
        s(&page),
        "--height",
        "40",
        "--margin",
        "10",
        "--ink",
        "#102030",
        "--paper",
        "#f0e0d0",
    ]));
    assert!(printed.contains("2 lines"), "{printed}");
    let img = image::open(&page).unwrap().to_rgb8();
    // Two lines 40 px high, 50 px from top to top, 10 px of paper around them.
    assert_eq!(img.height(), 10 + 50 + 40 + 10);
    assert_eq!(img.get_pixel(0, 0).0, [0xf0, 0xe0, 0xd0]);
    let out = ok(convnet(&["ocr", "read", s(&model), s(&page), "--raw"]));
    assert_eq!(out.lines().count(), 4, "{out}");

    let o = convnet(&[
        "ocr",
        "render",
        "a",
        "--font",
        s(&font),
        s(&page),
        "--ink",
        "purple",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--ink") && stderr(&o).contains("purple"),
        "{}",
        stderr(&o)
    );
}
