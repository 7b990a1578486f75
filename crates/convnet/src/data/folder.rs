//! Image-folder data sets: one subfolder per class (classes in sorted name order), PNG
//! and JPEG files in each, decoded to grey or RGB and brought to the network's input size.
//! Pixels are 0..255 f32, like the digits, so the same normalisation recipe applies.
//! [`open_folder`] lists the files only (a streamed [`ImageFiles`] set); [`load_folder`]
//! decodes them all into memory.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::DynamicImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dataset::Dataset;
use super::source::ImageFiles;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// How images are brought to `height` x `width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Resize to the target, changing the aspect ratio if needed.
    #[default]
    Resize,
    /// Crop the largest centred region of the target's aspect ratio, then resize.
    CropResize,
    /// ImageNet's test transform: resize (keeping the aspect ratio) so that the shorter
    /// side is `size` pixels, then take the centred `height` x `width` crop (VGG and
    /// ResNet: 256, then 224x224; MatConvNet's `border` is `size` minus the crop).
    ShorterSide { size: usize },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderOptions {
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub fit: Fit,
}

impl FolderOptions {
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        FolderOptions {
            channels,
            height,
            width,
            fit: Fit::Resize,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::Invalid(format!(
                "image folder: channels must be 1 (grey) or 3 (RGB), got {}",
                self.channels
            )));
        }
        if self.height == 0 || self.width == 0 {
            return Err(Error::Invalid(format!(
                "image folder: target size {}x{} must be at least 1x1",
                self.height, self.width
            )));
        }
        Ok(())
    }
}

fn is_image(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    path.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
}

/// Entries of `dir` that pass `keep`, sorted by name; hidden entries are skipped.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if !hidden && keep(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Crops the largest centred region with the aspect ratio of `w` x `h`.
fn centre_crop(img: &DynamicImage, h: usize, w: usize) -> DynamicImage {
    let (iw, ih) = (img.width() as u64, img.height() as u64);
    let (w, h) = (w as u64, h as u64);
    // Compare iw/ih with w/h without division.
    let (cw, ch) = if iw * h > ih * w {
        ((ih * w / h).max(1), ih)
    } else {
        (iw, (iw * h / w).max(1))
    };
    img.crop_imm(
        ((iw - cw) / 2) as u32,
        ((ih - ch) / 2) as u32,
        cw as u32,
        ch as u32,
    )
}

/// Resizes `img` so that its shorter side is `size` (aspect kept), then crops the centred
/// `h` x `w` region; fails when that crop does not fit.
fn shorter_side_crop(img: &DynamicImage, size: usize, h: usize, w: usize) -> Result<DynamicImage> {
    if size < h.max(w) {
        return Err(Error::Invalid(format!(
            "image fit: the shorter side {size} is smaller than the {h}x{w} crop"
        )));
    }
    let (iw, ih) = (img.width() as u64, img.height() as u64);
    let s = size as u64;
    let (rw, rh) = if iw <= ih {
        (s, (ih * s).div_ceil(iw).max(s))
    } else {
        ((iw * s).div_ceil(ih).max(s), s)
    };
    let (Ok(rw), Ok(rh)) = (u32::try_from(rw), u32::try_from(rh)) else {
        return Err(Error::Invalid(format!(
            "image fit: {iw}x{ih} resized to a shorter side of {size} is too large"
        )));
    };
    let resized = if (rw, rh) == (img.width(), img.height()) {
        img.clone()
    } else {
        img.resize_exact(rw, rh, FilterType::Triangle)
    };
    let (x0, y0) = ((rw - w as u32) / 2, (rh - h as u32) / 2);
    Ok(resized.crop_imm(x0, y0, w as u32, h as u32))
}

/// A decoded image as CHW 0..255 f32 of the options' size and channels.
pub fn image_to_chw(img: &DynamicImage, opts: &FolderOptions) -> Result<Vec<f32>> {
    opts.validate()?;
    let (h, w) = (opts.height, opts.width);
    let (tw, th) = target(opts)?;
    let cropped;
    let src = match opts.fit {
        Fit::Resize => img,
        Fit::CropResize => {
            cropped = centre_crop(img, h, w);
            &cropped
        }
        Fit::ShorterSide { size } => {
            cropped = shorter_side_crop(img, size, h, w)?;
            &cropped
        }
    };
    let resized = if src.width() == tw && src.height() == th {
        src.clone()
    } else {
        src.resize_exact(tw, th, FilterType::Triangle)
    };
    Ok(to_chw(&resized, opts.channels))
}

/// The target size as the image crate's u32s.
fn target(opts: &FolderOptions) -> Result<(u32, u32)> {
    match (u32::try_from(opts.width), u32::try_from(opts.height)) {
        (Ok(tw), Ok(th)) => Ok((tw, th)),
        _ => Err(Error::Invalid(format!(
            "image folder: target size {}x{} is too large",
            opts.height, opts.width
        ))),
    }
}

/// An image's pixels as CHW 0..255 f32, grey (1 channel) or RGB (3).
fn to_chw(img: &DynamicImage, channels: usize) -> Vec<f32> {
    let plane = img.width() as usize * img.height() as usize;
    let mut out = vec![0f32; channels * plane];
    if channels == 1 {
        for (o, p) in out.iter_mut().zip(img.to_luma8().pixels()) {
            *o = p.0[0] as f32;
        }
    } else {
        for (i, p) in img.to_rgb8().pixels().enumerate() {
            for (c, &v) in p.0.iter().enumerate() {
                out[c * plane + i] = v as f32;
            }
        }
    }
    out
}

/// The region `[x, y, width, height]` of a decoded image, resized to the options' size
/// (bilinear, antialiased when shrinking, as torchvision's resize of an image) and
/// mirrored left-right when `mirror`, as CHW 0..255 f32.
pub fn crop_to_chw(
    img: &DynamicImage,
    rect: [u32; 4],
    mirror: bool,
    opts: &FolderOptions,
) -> Result<Vec<f32>> {
    opts.validate()?;
    let (tw, th) = target(opts)?;
    let [x, y, w, h] = rect;
    if w == 0 || h == 0 || x.saturating_add(w) > img.width() || y.saturating_add(h) > img.height() {
        return Err(Error::Invalid(format!(
            "image crop: region {w}x{h} at ({x}, {y}) is not inside the {}x{} image",
            img.width(),
            img.height()
        )));
    }
    let mut out = img
        .crop_imm(x, y, w, h)
        .resize_exact(tw, th, FilterType::Triangle);
    if mirror {
        out = out.fliph();
    }
    Ok(to_chw(&out, opts.channels))
}

/// Decodes one PNG or JPEG file.
pub fn decode(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Error::file(path, None, format!("cannot decode image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::file(path, None, "image has no pixels"));
    }
    Ok(img)
}

/// One PNG or JPEG file as CHW 0..255 f32 of the options' size and channels.
pub fn load_image(path: &Path, opts: &FolderOptions) -> Result<Vec<f32>> {
    image_to_chw(&decode(path)?, opts).map_err(|e| Error::file(path, None, e.to_string()))
}

/// Several image files as one (N, C, H, W) tensor, decoded in parallel.
pub fn load_images(paths: &[PathBuf], opts: &FolderOptions) -> Result<Tensor> {
    opts.validate()?;
    let images: Vec<Vec<f32>> = paths
        .par_iter()
        .map(|p| load_image(p, opts))
        .collect::<Result<_>>()?;
    let data = images.concat();
    Tensor::from_vec(&[paths.len(), opts.channels, opts.height, opts.width], data)
}

/// The data set in `dir` decoded into memory: one subfolder per class, classes in sorted
/// name order; files other than .png/.jpg/.jpeg (any case) and hidden entries are ignored.
pub fn load_folder(dir: &Path, opts: &FolderOptions) -> Result<Dataset> {
    let files = open_folder(dir, opts)?;
    Dataset::new(
        load_images(&files.paths, opts)?,
        files.labels.clone(),
        files.classes.clone(),
    )
}

/// The files of the data set in `dir` (as [`load_folder`] finds them), listed, not decoded.
pub fn open_folder(dir: &Path, opts: &FolderOptions) -> Result<ImageFiles> {
    opts.validate()?;
    let class_dirs = sorted_entries(dir, |p| p.is_dir())?;
    if class_dirs.is_empty() {
        return Err(Error::file(
            dir,
            None,
            "no class subfolders (an image folder data set has one subfolder per class)",
        ));
    }
    let mut classes = Vec::new();
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for (label, cdir) in class_dirs.iter().enumerate() {
        let images = sorted_entries(cdir, is_image)?;
        if images.is_empty() {
            return Err(Error::file(
                cdir,
                None,
                "class folder has no PNG or JPEG images",
            ));
        }
        labels.extend(std::iter::repeat_n(label, images.len()));
        files.extend(images);
        let name = cdir.file_name().map(|n| n.to_string_lossy().into_owned());
        classes.push(name.unwrap_or_default());
    }
    ImageFiles::new(files, labels, classes, opts.clone())
}

/// The folder `dir/{split}` as a data set; for "test", `dir/val` when there is no
/// `dir/test`.
pub fn load_split(dir: &Path, split: &str, opts: &FolderOptions) -> Result<Dataset> {
    load_folder(&split_dir(dir, split)?, opts)
}

/// The files of `dir/{split}` (see [`load_split`]), listed, not decoded.
pub fn open_split(dir: &Path, split: &str, opts: &FolderOptions) -> Result<ImageFiles> {
    open_folder(&split_dir(dir, split)?, opts)
}

fn split_dir(dir: &Path, split: &str) -> Result<PathBuf> {
    let mut sub = dir.join(split);
    if split == "test" && !sub.is_dir() && dir.join("val").is_dir() {
        sub = dir.join("val");
    }
    if !sub.is_dir() {
        return Err(Error::file(
            dir,
            None,
            format!("no {split}-images-idx3-ubyte[.gz] file and no '{split}' image folder here"),
        ));
    }
    Ok(sub)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn write(path: &Path, w: u32, h: u32, colour: [u8; 3]) {
        RgbImage::from_pixel(w, h, Rgb(colour)).save(path).unwrap();
    }

    fn sample_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for class in ["cat", "ant"] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
        }
        write(&dir.path().join("ant/a.png"), 4, 6, [255, 0, 0]);
        write(&dir.path().join("ant/b.PNG"), 8, 8, [0, 255, 0]);
        write(&dir.path().join("cat/c.jpg"), 5, 3, [0, 0, 255]);
        std::fs::write(dir.path().join("cat/notes.txt"), "ignored").unwrap();
        dir
    }

    #[test]
    fn folder_loads_sorted_classes_rgb_and_grey() {
        let dir = sample_tree();
        let ds = load_folder(dir.path(), &FolderOptions::new(3, 2, 3)).unwrap();
        assert_eq!(ds.classes, vec!["ant", "cat"]);
        assert_eq!(ds.labels, vec![0, 0, 1]);
        assert_eq!(ds.images.shape(), &[3, 3, 2, 3]);
        // A uniform red image stays red after resizing.
        assert_eq!(ds.image(0).unwrap()[..6], [255.0; 6]);
        assert_eq!(ds.image(0).unwrap()[6..], [0.0; 12]);
        // JPEG is lossy: blue stays mostly blue.
        let c = ds.image(2).unwrap();
        assert!(c[12] > 200.0 && c[0] < 50.0, "{c:?}");

        let mut opts = FolderOptions::new(1, 4, 4);
        opts.fit = Fit::CropResize;
        let grey = load_folder(dir.path(), &opts).unwrap();
        assert_eq!(grey.images.shape(), &[3, 1, 4, 4]);
        let g = grey.image(1).unwrap()[0];
        assert!(g > 100.0 && g < 255.0, "green in grey: {g}");
    }

    #[test]
    fn folder_centre_crop_keeps_the_middle() {
        // A 6x2 image whose middle 2x2 is white and sides black; cropped to 1:1 it is
        // all white.
        let mut img = RgbImage::new(6, 2);
        for y in 0..2 {
            for x in 2..4 {
                img.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        let mut opts = FolderOptions::new(1, 2, 2);
        opts.fit = Fit::CropResize;
        let out = image_to_chw(&DynamicImage::ImageRgb8(img.clone()), &opts).unwrap();
        assert_eq!(out, vec![255.0; 4]);
        opts.fit = Fit::Resize;
        let out = image_to_chw(&DynamicImage::ImageRgb8(img), &opts).unwrap();
        assert!(out.iter().any(|&v| v < 255.0), "{out:?}");
    }

    #[test]
    fn folder_shorter_side_resizes_then_crops_the_centre() {
        // 12x6: white columns 5..7 in the middle. Shorter side 3 makes it 6x3; the
        // centred 2x2 crop then covers the two middle columns only.
        let mut img = RgbImage::new(12, 6);
        for y in 0..6 {
            for x in 4..8 {
                img.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        let mut opts = FolderOptions::new(1, 2, 2);
        opts.fit = Fit::ShorterSide { size: 3 };
        let out = image_to_chw(&DynamicImage::ImageRgb8(img.clone()), &opts).unwrap();
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|&v| v > 200.0), "{out:?}");
        opts.fit = Fit::ShorterSide { size: 1 };
        assert!(image_to_chw(&DynamicImage::ImageRgb8(img), &opts).is_err());
        let json = serde_json::to_string(&Fit::ShorterSide { size: 256 }).unwrap();
        assert_eq!(
            serde_json::from_str::<Fit>(&json).unwrap(),
            Fit::ShorterSide { size: 256 }
        );
    }

    #[test]
    fn folder_errors_name_the_file() {
        let dir = sample_tree();
        let bad = dir.path().join("cat/broken.png");
        std::fs::write(&bad, b"not a png").unwrap();
        let msg = load_folder(dir.path(), &FolderOptions::new(1, 2, 2))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("broken.png"), "{msg}");

        let empty = tempfile::tempdir().unwrap();
        std::fs::create_dir(empty.path().join("x")).unwrap();
        let msg = load_folder(empty.path(), &FolderOptions::new(1, 2, 2))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no PNG or JPEG"), "{msg}");
        assert!(load_folder(empty.path(), &FolderOptions::new(2, 2, 2)).is_err());
        assert!(load_split(empty.path(), "train", &FolderOptions::new(1, 2, 2)).is_err());
    }
}
