//! `convnet viz filters` and `viz activations` end to end on randomly initialised zoo
//! networks saved as model files: picture sizes from the documented layout, pixels
//! against the weights and the input, colour for 3-channel filters, and bad input.

use convnet::data::digits;
use convnet::data::normalize::Normalization;
use convnet::net::{save_model, zoo, Network};
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{convnet, ok};

/// The command's error message; it must have failed.
fn fails(o: Output) -> String {
    assert!(!o.status.success(), "should fail");
    assert_eq!(o.status.code(), Some(1));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Zoo network `name` with random weights (seed 1), saved in `dir`.
fn model(dir: &Path, name: &str, norm: &Normalization) -> (PathBuf, Network) {
    let net = Network::from_desc(&zoo::get(name).unwrap(), 1).unwrap();
    let path = dir.join(format!("{name}.safetensors"));
    let json = if norm.is_none() {
        String::new()
    } else {
        norm.to_json().unwrap()
    };
    save_model(&path, &net, &json).unwrap();
    (path, net)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn png(p: &Path) -> image::RgbImage {
    image::open(p).unwrap().to_rgb8()
}

/// Columns of the montage grid: `ceil(sqrt(n * (cell_h + gap) / (cell_w + gap)))`.
fn cols(n: usize, cell_w: usize, cell_h: usize, gap: usize) -> usize {
    ((n * (cell_h + gap)) as f64 / (cell_w + gap) as f64)
        .sqrt()
        .ceil() as usize
}

#[test]
fn viz_filters_draws_the_first_convolution_as_enlarged_grey_tiles_each_on_its_own_range() {
    let dir = tempfile::tempdir().unwrap();
    let (m, net) = model(dir.path(), "lenet", &Normalization::None);
    let out = dir.path().join("filters.png");
    let printed = ok(convnet(&["viz", "filters", s(&m), s(&out)]));
    assert!(printed.contains("layer conv1"), "{printed}");
    assert!(printed.contains("20 filters of 1x5x5"), "{printed}");
    assert!(printed.contains(s(&out)), "{printed}");
    let img = png(&out);
    // 20 tiles of 5x5 enlarged 8x (40 px), 2 px apart and from the border.
    let (tile, gap) = (40u32, 2u32);
    let c = cols(20, 40, 40, 2) as u32;
    let r = 20u32.div_ceil(c);
    assert_eq!(
        img.dimensions(),
        (c * tile + (c + 1) * gap, r * tile + (r + 1) * gap)
    );
    assert!(img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    // Filter k's tile: black at its smallest weight, white at its largest, each
    // weight one flat 8x8 square.
    let w = net.param("conv1.weight").unwrap().value.data().to_vec();
    for k in [0usize, 7, 19] {
        let f = &w[k * 25..(k + 1) * 25];
        let argmin = (0..25).min_by(|&a, &b| f[a].total_cmp(&f[b])).unwrap();
        let argmax = (0..25).max_by(|&a, &b| f[a].total_cmp(&f[b])).unwrap();
        let x0 = gap + (k as u32 % c) * (tile + gap);
        let y0 = gap + (k as u32 / c) * (tile + gap);
        let at = |i: usize, dx: u32, dy: u32| {
            img.get_pixel(x0 + (i % 5) as u32 * 8 + dx, y0 + (i / 5) as u32 * 8 + dy)[0]
        };
        assert_eq!(at(argmin, 0, 0), 0, "filter {k}");
        assert_eq!(at(argmax, 7, 7), 255, "filter {k}");
        for i in 0..25 {
            assert_eq!(at(i, 0, 0), at(i, 7, 3), "filter {k} weight {i}");
        }
    }
}

#[test]
fn viz_filters_of_a_deep_layer_caps_filters_and_channels_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = model(dir.path(), "lenet", &Normalization::None);
    let out = dir.path().join("conv3.png");
    let printed = ok(convnet(&[
        "viz",
        "filters",
        s(&m),
        "--layer",
        "conv3",
        s(&out),
    ]));
    assert!(printed.contains("500 filters of 50x4x4"), "{printed}");
    assert!(printed.contains("drew 64 of 500"), "{printed}");
    assert!(printed.contains("first 8 of 50"), "{printed}");
    // Cells of 8 tiles of 40 px, 1 px apart, in a grid 6 px apart.
    let cell_w = 8 * 40 + 7;
    let c = cols(64, cell_w, 40, 6) as u32;
    let r = 64u32.div_ceil(c);
    assert_eq!(
        png(&out).dimensions(),
        (c * cell_w as u32 + (c + 1) * 6, r * 40 + (r + 1) * 6)
    );
}

#[test]
fn viz_filters_with_three_input_channels_are_in_colour() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = model(dir.path(), "cifar", &Normalization::None);
    let out = dir.path().join("cifar.png");
    let printed = ok(convnet(&["viz", "filters", s(&m), s(&out)]));
    assert!(printed.contains("32 filters of 3x5x5"), "{printed}");
    assert!(printed.contains("colour"), "{printed}");
    let img = png(&out);
    let coloured = img
        .pixels()
        .filter(|p| p[0] != p[1] || p[1] != p[2])
        .count();
    assert!(coloured > 32 * 40 * 40 / 2, "{coloured} coloured pixels");
}

#[test]
fn viz_filters_rejects_unknown_and_non_convolution_layers_and_bad_model_files() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = model(dir.path(), "lenet", &Normalization::None);
    let out = dir.path().join("x.png");
    let e = fails(convnet(&[
        "viz",
        "filters",
        s(&m),
        "--layer",
        "conv9",
        s(&out),
    ]));
    assert!(
        e.contains("conv9") && e.contains("conv1, conv2, conv3, conv4"),
        "{e}"
    );
    let e = fails(convnet(&[
        "viz",
        "filters",
        s(&m),
        "--layer",
        "pool1",
        s(&out),
    ]));
    assert!(
        e.contains("pool1") && e.contains("conv1, conv2, conv3, conv4"),
        "{e}"
    );
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"not a model file at all").unwrap();
    let e = fails(convnet(&["viz", "filters", s(&bad), s(&out)]));
    assert!(e.contains("bad.safetensors"), "{e}");
    let e = fails(convnet(&[
        "viz",
        "activations",
        s(&bad),
        "--digit",
        "1",
        s(&out),
    ]));
    assert!(e.contains("bad.safetensors"), "{e}");
    assert!(!out.exists());
}

#[test]
fn viz_activations_of_a_test_digit_draws_the_input_and_one_labelled_row_per_layer() {
    let dir = tempfile::tempdir().unwrap();
    let norm = Normalization::PerChannel {
        mean: vec![33.0],
        std: vec![78.0],
    };
    let (m, _) = model(dir.path(), "lenet", &norm);
    let out = dir.path().join("act.png");
    let printed = ok(convnet(&[
        "viz",
        "activations",
        s(&m),
        "--digit",
        "7",
        s(&out),
    ]));
    for layer in [
        "conv1", "pool1", "conv2", "pool2", "conv3", "relu1", "conv4",
    ] {
        assert!(
            printed.contains(&format!("  {layer} ")),
            "{layer}: {printed}"
        );
    }
    assert!(printed.contains("20 x 24 x 24"), "{printed}");
    assert!(printed.contains("predicted class"), "{printed}");
    assert!(printed.contains("8 rows"), "{printed}");
    let img = png(&out);
    // Eight rows, each at least a label line and a strip of 24 px.
    assert!(img.height() >= 8 * (20 + 24), "{:?}", img.dimensions());
    // The input tile under the first label: the digit enlarged 2x, on 0..255.
    let digit = digits::test().unwrap().image(7).unwrap().to_vec();
    let (x0, y0) = (8, 8 + 20);
    for i in (0..28 * 28).step_by(7) {
        let (x, y) = (x0 + 2 * (i % 28) as u32, y0 + 2 * (i / 28) as u32);
        assert_eq!(img.get_pixel(x + 1, y + 1)[0], digit[i] as u8, "pixel {i}");
    }
    // The label above it is drawn text: dark pixels in the first label line.
    let dark = (0..200)
        .flat_map(|x| (8..28).map(move |y| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y)[0] < 100)
        .count();
    assert!(dark > 20, "{dark} dark pixels in the label");
}

#[test]
fn viz_activations_reads_an_image_file_fitted_to_the_input_in_colour() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = model(dir.path(), "cifar", &Normalization::None);
    let image = dir.path().join("in.png");
    let rgb = image::RgbImage::from_fn(50, 40, |x, y| image::Rgb([x as u8 * 5, y as u8 * 6, 90]));
    rgb.save(&image).unwrap();
    let out = dir.path().join("act.png");
    let printed = ok(convnet(&["viz", "activations", s(&m), s(&image), s(&out)]));
    assert!(printed.contains("fitted to 3x32x32"), "{printed}");
    assert!(printed.contains("  conv5 -> prediction"), "{printed}");
    let img = png(&out);
    // The input is one colour tile, at least 32 px a side, under the first label.
    let p = img.get_pixel(8 + 20, 8 + 20 + 10);
    assert!(p[0] != p[1] || p[1] != p[2], "{p:?}");
}

#[test]
fn viz_activations_rejects_a_missing_image_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = model(dir.path(), "lenet", &Normalization::None);
    let out = dir.path().join("act.png");
    let missing = dir.path().join("missing.png");
    let e = fails(convnet(&[
        "viz",
        "activations",
        s(&m),
        s(&missing),
        s(&out),
    ]));
    assert!(e.contains("missing.png"), "{e}");
    let e = fails(convnet(&["viz", "activations", s(&m), s(&out)]));
    assert!(e.contains("IMAGE") && e.contains("--digit"), "{e}");
    let e = fails(convnet(&[
        "viz",
        "activations",
        s(&m),
        "--digit",
        "3",
        s(&missing),
        s(&out),
    ]));
    assert!(e.contains("not both"), "{e}");
    let e = fails(convnet(&[
        "viz",
        "activations",
        s(&m),
        "--digit",
        "2000",
        s(&out),
    ]));
    assert!(e.contains("2000") && e.contains("0..1999"), "{e}");
    assert!(!out.exists());
}
