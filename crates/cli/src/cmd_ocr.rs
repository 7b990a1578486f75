//! `convnet ocr`: render text with a font, train a letters reader on fonts, test it on
//! held-out typefaces, and read the text of a picture with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use convnet::data::dataset::Dataset;
use convnet::data::letters::{
    discover_fonts, render_page, save_picture, split_fonts, typical_widths, Font, LetterOptions,
    LetterSet, Page, PageStyle, DEFAULT_FONT_DIR, WINDOW,
};

use crate::ocr::eval;
use crate::ocr::reader::{sidecar_path, Sidecar};
use crate::ocr::Reader;
use crate::{cmd_train, datasets};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Render text with a font file into a picture: one line (dark ink on white, as the
    /// reader sees it), or a page of lines with margins, colours, shade, blur and noise
    Render(RenderArgs),
    /// Train a letters network on fonts, test it on held-out typefaces
    Train(TrainArgs),
    /// Test a letters model on the held-out typefaces: letter windows, sentences as single
    /// lines, and pages of the sentences drawn with the given style
    Test(TestArgs),
    /// Read the text of a picture with a letters model: one line of text per text line
    /// found, top to bottom
    Read {
        /// Model file from `convnet ocr train`
        model: PathBuf,
        /// Picture of a page or of one line (PNG or JPEG; dark ink on light paper or the
        /// other way round)
        image: PathBuf,
        /// Before each line's text, print the reader's label at every column of the line
        /// (scaled to 32 px high; blank: background)
        #[arg(long)]
        raw: bool,
    },
}

#[derive(clap::Args)]
pub struct RenderArgs {
    /// The text to draw: lower-case letters and spaces; a newline (or the two characters
    /// \n) starts another line
    pub text: String,
    /// A TrueType/OpenType font file
    #[arg(long)]
    pub font: PathBuf,
    /// Output picture: PNG, or JPEG when the name ends in .jpg or .jpeg
    pub out: PathBuf,
    #[command(flatten)]
    pub style: StyleArgs,
}

/// How text is drawn on a page.
#[derive(clap::Args)]
pub struct StyleArgs {
    /// Line height in pixels (x-height 3/8 of it; the reader expects 32)
    #[arg(long, default_value_t = WINDOW)]
    pub height: usize,
    /// Paper around the text on every side, px (default: half the line height left and
    /// right, none above and below)
    #[arg(long)]
    pub margin: Option<usize>,
    /// Distance from one line's top to the next, in line heights
    #[arg(long, default_value_t = 1.25)]
    pub spacing: f32,
    /// Ink colour: #rrggbb, or black, white, grey
    #[arg(long, default_value = "black")]
    pub ink: String,
    /// Paper colour: #rrggbb, or black, white, grey
    #[arg(long, default_value = "white")]
    pub paper: String,
    /// Uneven light: the page darkens to 1 - SHADE of its light at the right edge
    #[arg(long, default_value_t = 0.0)]
    pub shade: f32,
    /// Gaussian blur, standard deviation in px
    #[arg(long, default_value_t = 0.0)]
    pub blur: f32,
    /// Gaussian noise, standard deviation as a fraction of the intensity range (0.05: 5%)
    #[arg(long, default_value_t = 0.0)]
    pub noise: f32,
    /// Seed of the noise
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// JPEG quality, 1-100 (for JPEG output)
    #[arg(long, default_value_t = 90)]
    pub quality: u8,
}

impl StyleArgs {
    fn style(&self) -> Result<PageStyle> {
        Ok(PageStyle {
            height: self.height,
            spacing: self.spacing,
            margin: self.margin,
            ink: parse_colour(&self.ink).context("--ink")?,
            paper: parse_colour(&self.paper).context("--paper")?,
            shade: self.shade,
            blur: self.blur,
            noise: self.noise,
            seed: self.seed,
        })
    }
}

impl RenderArgs {
    /// The lines of the text.
    fn lines(&self) -> Vec<&str> {
        self.text.split('\n').flat_map(|l| l.split("\\n")).collect()
    }
}

/// An RGB colour from `#rrggbb` (or `rrggbb`) or a name.
fn parse_colour(text: &str) -> Result<[u8; 3]> {
    let named = match text.to_ascii_lowercase().as_str() {
        "black" => Some([0, 0, 0]),
        "white" => Some([255, 255, 255]),
        "grey" | "gray" => Some([128, 128, 128]),
        _ => None,
    };
    if let Some(c) = named {
        return Ok(c);
    }
    let hex = text.strip_prefix('#').unwrap_or(text);
    let channel = |i: usize| {
        hex.get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
    };
    match (hex.len(), channel(0), channel(1), channel(2)) {
        (6, Some(r), Some(g), Some(b)) => Ok([r, g, b]),
        _ => bail!("'{text}' is not a colour: give #rrggbb (hex) or black, white, grey"),
    }
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Folder searched for fonts; one typeface in five is held out for testing
    #[arg(long, default_value = DEFAULT_FONT_DIR)]
    pub fonts: PathBuf,
    /// Folder for the model, its history and the reader's settings
    #[arg(long, default_value = "runs/ocr")]
    pub out: PathBuf,
    /// Network: the built-in `letters` or a TOML description of another all-convolutional
    /// net for 32x32x1 windows and 27 classes
    #[arg(long, default_value = "letters")]
    pub net: String,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Training windows per class (27 classes: a-z and background)
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// Test windows per class, from the held-out fonts
    #[arg(long, default_value_t = 100)]
    pub test_samples: usize,
    /// Initial learning rate (SGD with momentum 0.9, cosine schedule)
    #[arg(long, default_value_t = 0.03)]
    pub lr: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads (default: all cores); the same seed and thread count give the same model
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar or per-epoch lines
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub device: crate::device_arg::DeviceArgs,
}

#[derive(clap::Args)]
pub struct TestArgs {
    /// Model file from `convnet ocr train`
    pub model: PathBuf,
    /// Folder searched for fonts; the held-out typefaces are those `ocr train` holds out
    #[arg(long, default_value = DEFAULT_FONT_DIR)]
    pub fonts: PathBuf,
    /// Test windows per class, from the held-out fonts
    #[arg(long, default_value_t = 100)]
    pub test_samples: usize,
    /// Seed of the test windows (`ocr train --seed S` tests on those of seed S + 1)
    #[arg(long, default_value_t = 1)]
    pub windows_seed: u64,
    /// Threads (default: all cores)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Save each page as JPEG (of --quality) before reading it
    #[arg(long)]
    pub jpeg: bool,
    /// Print every sentence and page line read wrongly, with its font
    #[arg(long)]
    pub misread: bool,
    /// How the test pages are drawn (their margin defaults to the line height)
    #[command(flatten)]
    pub style: StyleArgs,
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Render(args) => render(&args),
        Command::Train(args) => train(&args),
        Command::Test(args) => test(&args),
        Command::Read { model, image, raw } => read(&model, &image, raw),
    }
}

fn render(args: &RenderArgs) -> Result<()> {
    let font = Font::load(&args.font)?;
    let style = args.style.style()?;
    let lines = args.lines();
    let picture = render_page(&font, &lines, &style)?;
    save_picture(&picture, &args.out, args.style.quality)?;
    let what = match lines.as_slice() {
        [one] => format!("\"{one}\""),
        many => format!("{} lines", many.len()),
    };
    println!(
        "{}: {}x{} px, {what} in {} {}",
        args.out.display(),
        picture.width(),
        picture.height(),
        font.family(),
        font.style()
    );
    Ok(())
}

/// Reads every text line of the picture at `path`, printing its text (after its labels
/// with `raw`); a picture without text prints nothing and says so on standard error.
fn read(model: &Path, path: &Path, raw: bool) -> Result<()> {
    let mut reader = Reader::load(model)?;
    let img = image::open(path).with_context(|| format!("reading {}", path.display()))?;
    let page = Page::new(&img).with_context(|| format!("{}", path.display()))?;
    let lines = reader.read_page(&page)?;
    if lines.is_empty() {
        eprintln!("{}: no text found", path.display());
    }
    for (labels, text) in lines {
        if raw {
            println!("{labels}");
        }
        println!("{text}");
    }
    Ok(())
}

fn family_list(fonts: &[Font]) -> String {
    let mut names: Vec<&str> = fonts.iter().map(|f| f.family()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

/// The fonts of `dir`, split by typeface into training and held-out fonts; fails unless
/// both sides have one.
fn font_split(dir: &Path) -> Result<(Vec<Font>, Vec<Font>)> {
    let (train_fonts, test_fonts) = split_fonts(discover_fonts(dir)?);
    if train_fonts.is_empty() || test_fonts.is_empty() {
        bail!(
            "{}: {} training and {} test fonts; both sides of the split by typeface need \
             one (run scripts/install-fonts.sh)",
            dir.display(),
            train_fonts.len(),
            test_fonts.len()
        );
    }
    eprintln!(
        "fonts: {} for training, {} held out ({})",
        train_fonts.len(),
        test_fonts.len(),
        family_list(&test_fonts)
    );
    Ok((train_fonts, test_fonts))
}

/// Training and test windows, from fonts split by typeface.
struct Sets {
    train: Dataset,
    test: Arc<Dataset>,
    test_fonts: LetterSet,
    /// Typical width of each letter in the training fonts, for the decoder.
    widths: Vec<f32>,
}

fn letter_sets(args: &TrainArgs) -> Result<Sets> {
    if args.samples == 0 || args.test_samples == 0 {
        bail!("--samples and --test-samples must be at least 1");
    }
    let (train_fonts, test_fonts) = font_split(&args.fonts)?;
    let widths = typical_widths(&train_fonts)?;
    let train_set = LetterSet::new(train_fonts, LetterOptions::reader())?;
    let test_set = LetterSet::new(test_fonts, LetterOptions::default())?;
    let train = train_set.make_dataset(args.samples, args.seed)?;
    let test = test_set.make_dataset(args.test_samples, args.seed.wrapping_add(1))?;
    eprintln!(
        "windows: {} for training, {} for testing",
        train.len(),
        test.len()
    );
    Ok(Sets {
        train,
        test: Arc::new(test),
        test_fonts: test_set,
        widths,
    })
}

/// `convnet train`'s settings for the letters reader: SGD with momentum, a cosine
/// schedule, no further jitter (the windows are jittered as they are drawn).
fn train_args(args: &TrainArgs) -> cmd_train::Args {
    cmd_train::Args {
        net: Some(args.net.clone()),
        epochs: args.epochs,
        batch: 100,
        lr: args.lr,
        schedule: "cosine".into(),
        solver: "sgd".into(),
        momentum: 0.9,
        weight_decay: 0.0005,
        jitter: "none".into(),
        normalize: "per-channel".into(),
        seed: args.seed,
        threads: args.threads,
        out: args.out.clone(),
        quiet: args.quiet,
        ..Default::default()
    }
}

fn train(args: &TrainArgs) -> Result<()> {
    args.device.cpu_only("training the letters reader")?;
    datasets::set_threads(args.threads)?;
    let sets = letter_sets(args)?;
    let (mut network, history, norm) =
        cmd_train::run_training(&train_args(args), sets.train, Some((*sets.test).clone()))?;
    cmd_train::write_outputs(&args.out, &network, &history, &norm)?;
    let model = args.out.join("model.safetensors");
    let sidecar = Sidecar {
        advances: Some(sets.widths),
    };
    convnet::atomic::write(
        &sidecar_path(&model),
        serde_json::to_string_pretty(&sidecar)?.as_bytes(),
    )?;

    eval::report_windows(&mut network, sets.test, &norm)?;
    let mut reader = Reader::load(&model)?;
    let fonts = sets.test_fonts.fonts();
    eval::report_sentences(&mut reader, fonts, false)?;
    eval::report_pages(&mut reader, fonts, &test_page_style(WINDOW), None, false)?;
    println!(
        "wrote {0}/model.safetensors, {0}/ocr.json, {0}/history.json, {0}/curves.png",
        args.out.display()
    );
    Ok(())
}

/// The page style of `ocr train`'s report and `ocr test`'s default: lines `height` px
/// high with as much paper around them.
fn test_page_style(height: usize) -> PageStyle {
    PageStyle {
        margin: Some(height),
        ..PageStyle::new(height)
    }
}

fn test(args: &TestArgs) -> Result<()> {
    datasets::set_threads(args.threads)?;
    if args.test_samples == 0 {
        bail!("--test-samples must be at least 1");
    }
    let (_, test_fonts) = font_split(&args.fonts)?;
    let (mut network, norm) = crate::cmd_test::load(&args.model)?;
    let windows = LetterSet::new(test_fonts, LetterOptions::default())?;
    let dataset = windows.make_dataset(args.test_samples, args.windows_seed)?;
    eval::report_windows(&mut network, Arc::new(dataset), &norm)?;
    let mut reader = Reader::load(&args.model)?;
    let fonts = windows.fonts();
    eval::report_sentences(&mut reader, fonts, args.misread)?;
    let style = PageStyle {
        margin: Some(args.style.margin.unwrap_or(args.style.height)),
        ..args.style.style()?
    };
    eval::report_pages(
        &mut reader,
        fonts,
        &style,
        args.jpeg.then_some(args.style.quality),
        args.misread,
    )?;
    Ok(())
}
