//! `convnet viz saliency` and `viz cam` end to end: the saliency of a linear model
//! peaks at its largest weight, the Grad-CAM of a network whose convolution sees one
//! bright square peaks on the square, an ImageNet-style colour model is explained on
//! its own fitted image for a class named by name, the digits and the letters reader
//! are explained, and bad arguments are named.

use convnet::data::normalize::Normalization;
use convnet::gradcheck::random;
use convnet::net::{save_model, save_model_with, zoo, NetDesc, Network};
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{convnet, ok, stderr};
#[path = "../../convnet/tests/support/square.rs"]
mod square;
use square::{inside, square_net};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `convnet viz KIND MODEL IMAGE OUT [extra]`.
fn viz(kind: &str, model: &Path, image: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["viz", kind, s(model), s(image), s(out)];
    args.extend_from_slice(extra);
    convnet(&args)
}

fn fails(o: Output) -> String {
    assert_eq!(o.status.code(), Some(1), "should fail");
    stderr(&o)
}

fn png(p: &Path) -> image::RgbImage {
    image::open(p).unwrap().to_rgb8()
}

/// How red minus how blue the heat map is at the centre of input pixel (r, c), with
/// the picture's layout: both panels `side` px, the heat map's from x = 8 + side + 12,
/// both from y = 8 + 24, `cells` input pixels a side.
fn redness(img: &image::RgbImage, side: u32, cells: u32, r: u32, c: u32) -> i32 {
    let cell = side / cells;
    let (x0, y0) = (8 + side + 12, 8 + 24);
    let p = img
        .get_pixel(x0 + c * cell + cell / 2, y0 + r * cell + cell / 2)
        .0;
    p[0] as i32 - p[2] as i32
}

fn save(dir: &Path, net: &Network, norm: &Normalization, input: &str) -> PathBuf {
    let path = dir.join(format!("{}.safetensors", net.desc().name));
    let json = if norm.is_none() {
        String::new()
    } else {
        norm.to_json().unwrap()
    };
    save_model_with(&path, net, &json, input).unwrap();
    path
}

/// A 48x36 colour picture, wider than high (ImageNet fitting crops it), in `dir`.
fn photo(dir: &Path) -> PathBuf {
    let path = dir.join("photo.png");
    image::RgbImage::from_fn(48, 36, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 7) as u8, 90])
    })
    .save(&path)
    .unwrap();
    path
}

fn grey_png(path: &Path, h: u32, w: u32, f: impl Fn(u32, u32) -> u8) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]))
        .save(path)
        .unwrap();
}

#[test]
fn saliency_of_a_linear_model_peaks_at_its_largest_weight() {
    let dir = tempfile::tempdir().unwrap();
    let desc = NetDesc::parse(
        "name = \"linear\"\ninput = [8, 8, 1]\nclasses = 2\n[[layer]]\nname = \"fc\"\ntype = \"fc\"\nout = 2\noutputs = [\"prediction\"]\n",
        "linear.toml",
    )
    .unwrap();
    let mut net = Network::new(&desc).unwrap();
    let mut w = random(&[2, 1, 8, 8], 3);
    w.scale(0.5);
    // Class 1 leans on pixel (5, 2) most, and not at all on (1, 6); the sign does not
    // matter to the map.
    w.data_mut()[64 + 5 * 8 + 2] = -3.0;
    w.data_mut()[64 + 8 + 6] = 0.0;
    net.set_tensor("fc.weight", w).unwrap();
    let norm = Normalization::PerChannel {
        mean: vec![100.0],
        std: vec![50.0],
    };
    let m = save(dir.path(), &net, &norm, "");
    let image = dir.path().join("in.png");
    grey_png(&image, 8, 8, |_, _| 128);
    let out = dir.path().join("sal.png");
    let printed = ok(viz("saliency", &m, &image, &out, &["--class", "1"]));
    assert!(printed.contains("fitted to 1x8x8"), "{printed}");
    assert!(printed.contains("class 1: score"), "{printed}");
    assert!(printed.contains("peak at row 5, column 2"), "{printed}");
    let img = png(&out);
    // Panels of 8 px enlarged 28 times: 2 * 224 + 12 + 16 wide.
    assert_eq!(
        (img.width(), img.height()),
        (476, 8 + 24 + 224 + 4 + 10 + 20 + 8)
    );
    let (hot, cold) = (redness(&img, 224, 8, 5, 2), redness(&img, 224, 8, 1, 6));
    assert!(hot > 60, "red at the largest weight: {hot}");
    assert!(cold < -20, "blue where the weight is zero: {cold}");
}

#[test]
fn grad_cam_of_a_bright_square_peaks_on_the_square() {
    let dir = tempfile::tempdir().unwrap();
    let m = save(dir.path(), &square_net(), &Normalization::None, "");
    let image = dir.path().join("square.png");
    grey_png(&image, 16, 16, |x, y| {
        if inside(y as usize, x as usize) {
            250
        } else {
            8
        }
    });
    let out = dir.path().join("cam.png");
    let printed = ok(viz("cam", &m, &image, &out, &[]));
    assert!(printed.contains("class 0: score"), "{printed}");
    let line = printed
        .lines()
        .find(|l| l.starts_with("Grad-CAM at layer 'conv1' (2 maps of 16x16): peak at row"))
        .unwrap_or_else(|| panic!("{printed}"));
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect();
    let (r, c) = (nums[nums.len() - 2], nums[nums.len() - 1]);
    assert!(inside(r, c), "peak centred on row {r}, column {c}: {line}");
    let img = png(&out);
    // 16 px enlarged 14 times.
    let (hot, cold) = (redness(&img, 224, 16, 5, 10), redness(&img, 224, 16, 13, 2));
    assert!(hot > 60, "red on the square: {hot}");
    assert!(cold < -20, "blue away from it: {cold}");
    // Class 1 finds nothing: its map is zero everywhere, and the command says so.
    let printed = ok(viz(
        "cam",
        &m,
        &image,
        &out,
        &["--class", "1", "--layer", "relu1"],
    ));
    assert!(
        printed.contains("ranked 2 of 2; the top class is 0"),
        "{printed}"
    );
    assert!(printed.contains("the map is zero everywhere"), "{printed}");
}

#[test]
fn an_imagenet_style_colour_model_is_explained_on_its_own_fitted_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut desc = NetDesc::parse(
        r#"
name = "colour"
input = [24, 24, 3]
classes = 3
[[layer]]
name = "conv1"
type = "conv"
kernel = 3
out = 4
pad = 1
[[layer]]
name = "relu1"
type = "relu"
[[layer]]
name = "pool1"
type = "pool"
kernel = 2
stride = 2
[[layer]]
name = "conv2"
type = "conv"
kernel = 3
out = 4
pad = 1
[[layer]]
name = "relu2"
type = "relu"
[[layer]]
name = "fc"
type = "fc"
out = 3
outputs = ["prediction"]
"#,
        "colour.toml",
    )
    .unwrap();
    desc.classes = ["cat", "dog", "fish"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    let net = Network::from_desc(&desc, 4).unwrap();
    let norm = Normalization::PerChannel {
        mean: vec![120.0, 110.0, 100.0],
        std: vec![60.0, 60.0, 60.0],
    };
    let input = r#"{"channels":3,"height":24,"width":24,"fit":{"shorter_side":{"size":32}}}"#;
    let m = save(dir.path(), &net, &norm, input);
    let image = photo(dir.path());
    let out = dir.path().join("cam.png");
    let printed = ok(viz("cam", &m, &image, &out, &["--class", "dog"]));
    assert!(printed.contains("fitted to 3x24x24"), "{printed}");
    assert!(printed.contains("class dog (index 1): score"), "{printed}");
    assert!(
        printed.contains("Grad-CAM at layer 'conv2' (4 maps of 12x12)"),
        "{printed}"
    );
    // 24 px enlarged 10 times; the input panel is in colour.
    let img = png(&out);
    assert_eq!(
        (img.width(), img.height()),
        (508, 8 + 24 + 240 + 4 + 10 + 20 + 8)
    );
    let p = img.get_pixel(8 + 120, 32 + 120);
    assert!(p[0] != p[1] || p[1] != p[2], "{p:?}");
    let sal = dir.path().join("sal.png");
    let printed = ok(viz("saliency", &m, &image, &sal, &[]));
    assert!(
        printed.contains("the largest over the 3 channels"),
        "{printed}"
    );
    assert_eq!(png(&sal).dimensions(), img.dimensions());
}

#[test]
fn an_imported_matconvnet_model_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let mat = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/tests/data/simplenn.mat");
    let m = dir.path().join("simplenn.safetensors");
    ok(convnet(&["import", s(&mat), s(&m)]));
    let image = photo(dir.path());
    let out = dir.path().join("cam.png");
    let printed = ok(viz("cam", &m, &image, &out, &[]));
    assert!(printed.contains("Grad-CAM at layer 'conv2'"), "{printed}");
    let printed = ok(viz("saliency", &m, &image, &out, &["--class", "0"]));
    assert!(
        printed.contains("the largest over the 3 channels"),
        "{printed}"
    );
}

#[test]
fn explanations_name_a_bad_class_layer_or_image() {
    let dir = tempfile::tempdir().unwrap();
    let net = Network::from_desc(&zoo::get("lenet").unwrap(), 1).unwrap();
    let m = dir.path().join("lenet.safetensors");
    save_model(&m, &net, "").unwrap();
    let out = dir.path().join("x.png");
    // The embedded digits work as inputs; LeNet's last spatial convolution is conv2.
    let printed = ok(convnet(&["viz", "cam", s(&m), "--digit", "7", s(&out)]));
    assert!(printed.contains("embedded test digit 7 (a 7)"), "{printed}");
    assert!(
        printed.contains("layer 'conv2' (50 maps of 8x8)"),
        "{printed}"
    );
    let e = fails(convnet(&[
        "viz",
        "saliency",
        s(&m),
        "--digit",
        "7",
        s(&out),
        "--class",
        "zebra",
    ]));
    assert!(
        e.contains("--class 'zebra': neither a class name nor an index below 10"),
        "{e}"
    );
    let e = fails(convnet(&[
        "viz",
        "cam",
        s(&m),
        "--digit",
        "7",
        s(&out),
        "--layer",
        "conv3",
    ]));
    assert!(
        e.contains("'conv3' has no spatial output") && e.contains("conv1, pool1, conv2, pool2"),
        "{e}"
    );
    let e = fails(convnet(&[
        "viz",
        "cam",
        s(&m),
        "--digit",
        "7",
        s(&out),
        "--layer",
        "nope",
    ]));
    assert!(e.contains("no layer 'nope'"), "{e}");
    // The letters reader (batch normalisation, dropout) on a 32x32 window, for a class
    // named by its letter.
    let letters = Network::from_desc(&zoo::get("letters").unwrap(), 2).unwrap();
    let lm = dir.path().join("letters.safetensors");
    save_model(&lm, &letters, "").unwrap();
    let window = dir.path().join("window.png");
    grey_png(&window, 32, 32, |x, y| {
        if (10..20).contains(&x) && y > 6 {
            20
        } else {
            230
        }
    });
    let printed = ok(viz("cam", &lm, &window, &out, &["--class", "k"]));
    assert!(printed.contains("class k (index 10): score"), "{printed}");
    assert!(
        printed.contains("layer 'conv2' (32 maps of 10x10)"),
        "{printed}"
    );
    ok(viz("saliency", &lm, &window, &out, &["--class", "k"]));
    let missing = dir.path().join("missing.png");
    let e = fails(viz("saliency", &m, &missing, &out, &[]));
    assert!(e.contains("missing.png"), "{e}");
}
