//! `convnet ocr train`, `render` and `read` end to end (fonts from
//! scripts/install-fonts.sh): a tiny training run whose model reads a rendered line, and
//! clear errors for bad pictures and models.

use convnet::data::letters::{discover_fonts, Split, DEFAULT_FONT_DIR};
use convnet::net::{save_model, zoo, Network};
use std::path::{Path, PathBuf};

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
