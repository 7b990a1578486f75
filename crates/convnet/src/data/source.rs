//! Where a batcher's images come from: a data set held in memory (the digits, the letters,
//! anything already decoded), or a list of image files decoded when a batch needs them.
//! A file set keeps nothing but its paths and labels, so a folder of any size streams
//! with bounded memory; a training crop is cut from the file's full resolution.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rand::RngCore;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::dataset::{relabel, Dataset};
use super::folder::{self, FolderOptions};
use super::jitter::Jitter;
use crate::error::{Error, Result};

/// Labelled image files, decoded one at a time on demand.
#[derive(Debug)]
pub struct ImageFiles {
    pub paths: Vec<PathBuf>,
    pub labels: Vec<usize>,
    pub classes: Vec<String>,
    /// The images' size and channels, and how a file is fitted to it when not jittered
    /// (a random-resized crop replaces the fit in training).
    pub fit: FolderOptions,
    /// Files decoded so far (for throughput figures and the bounded-memory test).
    decoded: AtomicUsize,
}

impl ImageFiles {
    /// Fails unless there is one label per path and every label names a class.
    pub fn new(
        paths: Vec<PathBuf>,
        labels: Vec<usize>,
        classes: Vec<String>,
        fit: FolderOptions,
    ) -> Result<Self> {
        fit.validate()?;
        if paths.len() != labels.len() {
            return Err(Error::Invalid(format!(
                "image files: {} files but {} labels",
                paths.len(),
                labels.len()
            )));
        }
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l >= classes.len()) {
            return Err(Error::file(
                &paths[i],
                None,
                format!("label {l} but there are only {} classes", classes.len()),
            ));
        }
        Ok(ImageFiles {
            paths,
            labels,
            classes,
            fit,
            decoded: AtomicUsize::new(0),
        })
    }

    /// How many files have been decoded since this set was made.
    pub fn decoded(&self) -> usize {
        self.decoded.load(Ordering::Relaxed)
    }

    /// File `i` as CHW 0..255 f32 of the fit's size: cut by the jitter's random-resized
    /// crop when it has one, else fitted and then jittered in place.
    fn load(&self, i: usize, jitter: &Jitter, rng: &mut impl RngCore) -> Result<Vec<f32>> {
        let path = self.paths.get(i).ok_or_else(|| {
            Error::Invalid(format!(
                "image files: image {i} asked of a set of {}",
                self.paths.len()
            ))
        })?;
        let img = folder::decode(path)?;
        self.decoded.fetch_add(1, Ordering::Relaxed);
        let named = |e: Error| Error::file(path, None, e.to_string());
        let (c, h, w) = (self.fit.channels, self.fit.height, self.fit.width);
        match &jitter.crop {
            Some(range) => {
                let draw = jitter.draw(rng);
                let mut crop_rng = Xoshiro256PlusPlus::seed_from_u64(draw.crop_seed);
                let rect = range.sample(img.width(), img.height(), &mut crop_rng);
                let mut out =
                    folder::crop_to_chw(&img, rect, draw.mirror, &self.fit).map_err(named)?;
                draw.photometric(&mut out, c);
                Ok(out)
            }
            None => {
                let out = folder::image_to_chw(&img, &self.fit).map_err(named)?;
                if jitter.is_identity() {
                    Ok(out)
                } else {
                    jitter.apply(&out, c, h, w, rng)
                }
            }
        }
    }
}

/// A labelled image set a batcher can draw from.
#[derive(Clone, Debug)]
pub enum Images {
    /// Decoded and held in memory.
    Memory(Arc<Dataset>),
    /// Files on disk, decoded when a batch needs them.
    Files(Arc<ImageFiles>),
}

impl From<Dataset> for Images {
    fn from(d: Dataset) -> Self {
        Images::Memory(Arc::new(d))
    }
}

impl From<Arc<Dataset>> for Images {
    fn from(d: Arc<Dataset>) -> Self {
        Images::Memory(d)
    }
}

impl From<ImageFiles> for Images {
    fn from(f: ImageFiles) -> Self {
        Images::Files(Arc::new(f))
    }
}

impl Images {
    pub fn len(&self) -> usize {
        self.labels().len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels().is_empty()
    }

    pub fn labels(&self) -> &[usize] {
        match self {
            Images::Memory(d) => &d.labels,
            Images::Files(f) => &f.labels,
        }
    }

    pub fn classes(&self) -> &[String] {
        match self {
            Images::Memory(d) => &d.classes,
            Images::Files(f) => &f.classes,
        }
    }

    /// Channels, height and width of every image.
    pub fn dims(&self) -> Result<(usize, usize, usize)> {
        match self {
            Images::Memory(d) => d.dims().map(|d| (d.c, d.h, d.w)),
            Images::Files(f) => Ok((f.fit.channels, f.fit.height, f.fit.width)),
        }
    }

    /// Files decoded so far (0 for a set in memory).
    pub fn decoded(&self) -> usize {
        match self {
            Images::Memory(_) => 0,
            Images::Files(f) => f.decoded(),
        }
    }

    /// The set's consistency checks (one label per image, labels below the class count).
    pub fn validate(&self) -> Result<()> {
        match self {
            Images::Memory(d) => d.validate(),
            Images::Files(_) => Ok(()), // checked when made; its fields are not edited
        }
    }

    /// Fails when `jitter` cannot apply to this set: a random-resized crop needs files.
    pub fn check_jitter(&self, jitter: &Jitter) -> Result<()> {
        jitter.validate()?;
        if jitter.crop.is_some() && matches!(self, Images::Memory(_)) {
            return Err(Error::Invalid(
                "jitter: a random-resized crop needs the image files (an image folder); this data set is held in memory".into(),
            ));
        }
        Ok(())
    }

    /// Image `i` as CHW 0..255 f32, jittered with draws from `rng` (none are taken when
    /// `jitter` is the identity).
    pub fn image(&self, i: usize, jitter: &Jitter, rng: &mut impl RngCore) -> Result<Vec<f32>> {
        match self {
            Images::Memory(d) => {
                let src = d.image(i)?;
                if jitter.is_identity() {
                    return Ok(src.to_vec());
                }
                let dims = d.dims()?;
                jitter.apply(src, dims.c, dims.h, dims.w, rng)
            }
            Images::Files(f) => f.load(i, jitter, rng),
        }
    }

    /// Image `i` as tested: not jittered.
    pub fn plain(&self, i: usize) -> Result<Vec<f32>> {
        self.image(
            i,
            &Jitter::none(),
            &mut Xoshiro256PlusPlus::seed_from_u64(0),
        )
    }

    /// The images at `indices`, in that order (files stay files: only paths are copied).
    pub fn subset(&self, indices: &[usize]) -> Result<Images> {
        match self {
            Images::Memory(d) => d.subset(indices).map(Images::from),
            Images::Files(f) => {
                let pick = |i: usize| {
                    f.paths.get(i).cloned().ok_or_else(|| {
                        Error::Invalid(format!(
                            "image files: image {i} asked of a set of {}",
                            f.paths.len()
                        ))
                    })
                };
                let paths = indices.iter().map(|&i| pick(i)).collect::<Result<_>>()?;
                let labels = indices.iter().map(|&i| f.labels[i]).collect();
                ImageFiles::new(paths, labels, f.classes.clone(), f.fit.clone()).map(Images::from)
            }
        }
    }

    /// The same images with labels renumbered to `classes` (a test folder that lacks
    /// some of the training classes); fails on a class not in `classes`.
    pub fn with_classes(self, classes: &[String]) -> Result<Images> {
        if self.classes() == classes {
            return Ok(self);
        }
        match self {
            Images::Memory(d) => Arc::unwrap_or_clone(d)
                .with_classes(classes)
                .map(Images::from),
            Images::Files(f) => {
                let mut labels = f.labels.clone();
                relabel(&f.classes, classes, &mut labels)?;
                ImageFiles::new(f.paths.clone(), labels, classes.to_vec(), f.fit.clone())
                    .map(Images::from)
            }
        }
    }

    /// `a`'s images followed by `b`'s: both in memory or both files, with the same classes
    /// and image size.
    pub fn concat(a: Images, b: Images) -> Result<Images> {
        if a.classes() != b.classes() || a.dims()? != b.dims()? {
            return Err(Error::Invalid(
                "data sets: the two sets differ in classes or image size".into(),
            ));
        }
        match (a, b) {
            (Images::Memory(a), Images::Memory(b)) => {
                let shape = a.images.shape().to_vec();
                let mut data = a.images.data().to_vec();
                data.extend_from_slice(b.images.data());
                let mut labels = a.labels.clone();
                labels.extend_from_slice(&b.labels);
                let mut s = shape;
                s[0] = labels.len();
                let images = crate::Tensor::from_vec(&s, data)?;
                Dataset::new(images, labels, a.classes.clone()).map(Images::from)
            }
            (Images::Files(a), Images::Files(b)) => {
                let paths = a.paths.iter().chain(&b.paths).cloned().collect();
                let labels = a.labels.iter().chain(&b.labels).copied().collect();
                ImageFiles::new(paths, labels, a.classes.clone(), a.fit.clone()).map(Images::from)
            }
            _ => Err(Error::Invalid(
                "data sets: cannot join a set in memory and a set of files".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    fn files(n: usize) -> ImageFiles {
        let paths = (0..n)
            .map(|i| PathBuf::from(format!("/x/{i}.png")))
            .collect();
        let labels = (0..n).map(|i| i % 2).collect();
        let classes = vec!["a".into(), "b".into()];
        ImageFiles::new(paths, labels, classes, FolderOptions::new(3, 224, 224)).unwrap()
    }

    #[test]
    fn source_files_hold_paths_and_labels_only() {
        // Nothing but the list: a million-image set costs its paths, not its pixels.
        let f = Images::from(files(10));
        assert_eq!(f.dims().unwrap(), (3, 224, 224));
        let s = f.subset(&[3, 1]).unwrap();
        assert_eq!(s.labels(), &[1, 1]);
        let Images::Files(sf) = &s else { panic!() };
        assert_eq!(sf.paths[0], PathBuf::from("/x/3.png"));
        assert!(f.subset(&[10]).is_err());
        let both = Images::concat(f.clone(), s).unwrap();
        assert_eq!(both.len(), 12);
        let classes: Vec<String> = ["z", "b", "a"].iter().map(|c| c.to_string()).collect();
        let r = f.clone().with_classes(&classes).unwrap();
        assert_eq!(&r.labels()[..3], &[2, 1, 2]);
        assert!(f.clone().with_classes(&classes[..2]).is_err());
        assert_eq!(f.decoded(), 0);
        let err = f.plain(0).unwrap_err().to_string();
        assert!(err.contains("/x/0.png"), "{err}");
    }

    #[test]
    fn source_rejects_bad_labels_mixed_sets_and_crops_of_memory() {
        let fit = FolderOptions::new(1, 2, 2);
        let p = vec![PathBuf::from("a.png")];
        assert!(ImageFiles::new(p.clone(), vec![], vec!["a".into()], fit.clone()).is_err());
        let e = ImageFiles::new(p, vec![1], vec!["a".into()], fit).unwrap_err();
        assert!(e.to_string().contains("a.png"), "{e}");
        let mem = Images::from(
            Dataset::new(
                Tensor::zeros(&[1, 3, 224, 224]).unwrap(),
                vec![0],
                vec!["a".into(), "b".into()],
            )
            .unwrap(),
        );
        assert!(Images::concat(mem.clone(), Images::from(files(2))).is_err());
        assert!(mem.check_jitter(&Jitter::imagenet()).is_err());
        assert!(Images::from(files(2))
            .check_jitter(&Jitter::imagenet())
            .is_ok());
    }
}
