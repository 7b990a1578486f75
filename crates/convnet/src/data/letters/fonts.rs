//! Finding usable text fonts, naming them from their `name` table, and splitting them
//! into training and test fonts by typeface.

use std::path::{Path, PathBuf};

use ab_glyph::{Font as _, FontVec, GlyphId};

use crate::error::{Error, Result};

/// Where Debian puts its font packages (`scripts/install-fonts.sh` installs there).
pub const DEFAULT_FONT_DIR: &str = "/usr/share/fonts";

/// A loaded font that has outlines for all of a-z, with the names it reports.
pub struct Font {
    path: PathBuf,
    family: String,
    style: String,
    design: String,
    group: String,
    x_height: f32,
    face: FontVec,
}

impl std::fmt::Debug for Font {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Font")
            .field("path", &self.path)
            .field("family", &self.family)
            .field("style", &self.style)
            .finish()
    }
}

impl Font {
    /// Loads one font file, failing (with the file's name) when it cannot be parsed, lacks
    /// an outline for a letter a-z, or looks like a symbol or capitals-only font.
    pub fn load(path: impl AsRef<Path>) -> Result<Font> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Font::from_bytes(path.to_path_buf(), bytes)
    }

    /// As [`Font::load`] for bytes already in memory; `path` only names the font.
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Result<Font> {
        let (family, style) = names(&bytes).unwrap_or_else(|| (file_stem(&path), String::new()));
        let face = FontVec::try_from_vec(bytes)
            .map_err(|e| Error::file(&path, None, format!("not a TrueType/OpenType font: {e}")))?;
        if is_symbol_family(&family) {
            return Err(Error::file(
                &path,
                None,
                format!("'{family}' is a symbol font"),
            ));
        }
        let x_height = check_lowercase(&face).map_err(|msg| Error::file(&path, None, msg))?;
        let design = design_name(&family);
        let group = typeface_group(&design);
        Ok(Font {
            path,
            family,
            style,
            design,
            group,
            x_height,
            face,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The typographic family name ("DejaVu Sans").
    pub fn family(&self) -> &str {
        &self.family
    }
    /// The style within the family ("Bold Oblique"); empty when the font has no name table.
    pub fn style(&self) -> &str {
        &self.style
    }
    /// The typeface group this font belongs to (the first word of its family, with known
    /// near-clones merged: FreeSans is Nimbus Sans): the unit of the train/test split.
    pub fn group(&self) -> &str {
        &self.group
    }
    /// Height of the letter x in font units: the size that rendering normalises.
    pub fn x_height_units(&self) -> f32 {
        self.x_height
    }
    pub fn face(&self) -> &FontVec {
        &self.face
    }
    /// Which side of the split this font is on.
    pub fn split(&self) -> Split {
        split_of_group(&self.group)
    }
}

/// Training or test side of the split by typeface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// One typeface in five goes to the test side, chosen by a hash of its group name, so a
/// font keeps its side whatever else is installed, and all styles of a typeface (and its
/// near-clones) stay together.
pub fn split_of_group(group: &str) -> Split {
    if fnv1a(group.as_bytes()).is_multiple_of(5) {
        Split::Test
    } else {
        Split::Train
    }
}

/// Splits fonts into (train, test) by [`Font::split`], order kept.
pub fn split_fonts(fonts: Vec<Font>) -> (Vec<Font>, Vec<Font>) {
    fonts.into_iter().partition(|f| f.split() == Split::Train)
}

/// Every usable font under `dir` (recursively), sorted by path, one per typeface style:
/// files that cannot be read, lack a-z or are symbol fonts are skipped without a word, as
/// are later files with the same design (family, clones merged) and style as an earlier one. Fails only when
/// `dir` itself cannot be read.
pub fn discover_fonts(dir: impl AsRef<Path>) -> Result<Vec<Font>> {
    let dir = dir.as_ref();
    let mut paths = Vec::new();
    walk(dir, &mut paths, true)?;
    paths.sort();
    let mut seen = std::collections::HashSet::new();
    let mut fonts = Vec::new();
    for path in paths {
        let Ok(font) = Font::load(&path) else {
            continue;
        };
        let key = (font.design.clone(), font.style.to_lowercase());
        if seen.insert(key) {
            fonts.push(font);
        }
    }
    Ok(fonts)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, top: bool) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if top => return Err(Error::io(dir, e)),
        Err(_) => return Ok(()),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, out, false)?;
        } else if has_font_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn has_font_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("ttf") || e.eq_ignore_ascii_case("otf"))
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Symbol, dingbat and maths fonts map a-z to other shapes (Greek, ornaments).
fn is_symbol_family(family: &str) -> bool {
    let f = family.to_lowercase();
    [
        "symbol", "dingbat", "d050000l", "wingding", "webdings", "awesome", "math", "emoji", "icon",
    ]
    .iter()
    .any(|w| f.contains(w))
}

/// Checks that a-z have distinct outlines shaped like lower case (b rises above x, p
/// drops below the baseline), returning the x-height in font units.
fn check_lowercase(face: &FontVec) -> std::result::Result<f32, String> {
    let mut bounds = Vec::with_capacity(26);
    for c in 'a'..='z' {
        let id = face.glyph_id(c);
        if id == GlyphId(0) {
            return Err(format!("no glyph for '{c}'"));
        }
        let outline = face
            .outline(id)
            .ok_or_else(|| format!("no outline for '{c}'"))?;
        bounds.push(outline.bounds);
    }
    // Outline bounds are in font units, y up: min.y is the top, max.y the bottom.
    let top = |c: char| bounds[(c as u8 - b'a') as usize].min.y;
    let bottom = |c: char| bounds[(c as u8 - b'a') as usize].max.y;
    let x_height = top('x');
    if x_height <= 0.0 {
        return Err("the letter x has no height".into());
    }
    if top('b') < 1.15 * x_height || bottom('p') > -0.1 * x_height {
        return Err("a-z do not look like lower-case letters (capitals or symbols)".into());
    }
    if bounds[0] == bounds[1] {
        return Err("'a' and 'b' have the same outline bounds".into());
    }
    Ok(x_height)
}

/// Known near-clones of one design (family-name prefixes, lower case), so that they land
/// on the same side of the split.
const CLONES: &[(&str, &str)] = &[
    ("freesans", "nimbus sans"),
    ("freeserif", "nimbus roman"),
    ("freemono", "nimbus mono ps"),
    ("tex gyre heros", "nimbus sans"),
    ("tex gyre termes", "nimbus roman"),
    ("tex gyre cursor", "nimbus mono ps"),
    ("tex gyre pagella", "p052"),
    ("tex gyre bonum", "urw bookman"),
    ("tex gyre schola", "c059"),
    ("tex gyre adventor", "urw gothic"),
    ("tex gyre chorus", "z003"),
    ("arimo", "liberation sans"),
    ("tinos", "liberation serif"),
    ("cousine", "liberation mono"),
    ("bitstream vera", "dejavu"),
    ("gentiumalt", "gentium"),
];

/// The design a family name stands for, lower case, with known clones mapped onto
/// their original ("FreeSans" is "nimbus sans").
fn design_name(family: &str) -> String {
    let lower = family.to_lowercase();
    match CLONES.iter().find(|(clone, _)| lower.starts_with(clone)) {
        Some((clone, original)) => format!("{original}{}", &lower[clone.len()..]),
        None => lower,
    }
}

/// The split group of a design: its first word. Whole superfamilies (DejaVu Sans, Serif
/// and Mono; Roboto and Roboto Condensed; PT Sans and PT Sans Caption) share a group, so
/// that no design of a test font is seen in training under another name.
fn typeface_group(design: &str) -> String {
    design
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at + 4)?;
    usize::try_from(u32::from_be_bytes([s[0], s[1], s[2], s[3]])).ok()
}

/// (family, style) from the OpenType `name` table, preferring the typographic names
/// (ids 16/17) over the legacy ones (1/2), which split families into four styles.
fn names(font: &[u8]) -> Option<(String, String)> {
    let tables = be16(font, 4)?;
    let name = (0..tables)
        .map(|i| 12 + 16 * i)
        .find(|&r| font.get(r..r + 4) == Some(b"name"))
        .and_then(|r| be32(font, r + 8))?;
    let count = be16(font, name + 2)?;
    let strings = name + be16(font, name + 4)?;
    let lookup = |wanted: usize| -> Option<String> {
        (0..count).find_map(|i| {
            let r = name + 6 + 12 * i;
            let (platform, id) = (be16(font, r)?, be16(font, r + 6)?);
            if id != wanted {
                return None;
            }
            let (len, off) = (be16(font, r + 8)?, be16(font, r + 10)?);
            let raw = font.get(strings + off..strings + off + len)?;
            match platform {
                0 | 3 => {
                    let units: Vec<u16> = raw
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16(&units).ok()
                }
                1 => Some(raw.iter().map(|&b| char::from(b)).collect()),
                _ => None,
            }
        })
    };
    let family = lookup(16).or_else(|| lookup(1))?;
    let style = lookup(17).or_else(|| lookup(2)).unwrap_or_default();
    Some((family.trim().to_string(), style.trim().to_string()))
}
