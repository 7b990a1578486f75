//! `convnet ocr`: render a text line with a font, train a letters reader on fonts, and
//! read a line picture with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use convnet::data::dataset::Dataset;
use convnet::data::letters::{
    class_names, discover_fonts, render_line, split_fonts, typical_widths, Font, Gray,
    LetterOptions, LetterSet, BACKGROUND, DEFAULT_FONT_DIR, WINDOW,
};
use convnet::train::evaluate;

use crate::ocr::reader::{sidecar_path, Sidecar};
use crate::ocr::{Reader, Tally};
use crate::{cmd_train, datasets};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Render a line of text with a font file into a PNG (dark ink on white)
    Render {
        /// The text to draw
        text: String,
        /// A TrueType/OpenType font file
        #[arg(long)]
        font: PathBuf,
        /// Output PNG file
        out: PathBuf,
        /// Line height in pixels (the reader expects 32: x-height 12 px)
        #[arg(long, default_value_t = WINDOW)]
        height: usize,
    },
    /// Train a letters network on fonts, test it on held-out typefaces
    Train(TrainArgs),
    /// Read a line picture with a letters model: the label at every column, then the text
    Read {
        /// Model file from `convnet ocr train`
        model: PathBuf,
        /// Picture of one line of text (scaled to 32 px high)
        line: PathBuf,
    },
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
}

/// Sentences read back after training, each in every held-out font; together they use
/// every letter.
const SENTENCES: &[&str] = &[
    "the quick brown fox jumps over the lazy dog",
    "pack my box with five dozen liquor jugs",
    "a small network reads this line of text",
];

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Render {
            text,
            font,
            out,
            height,
        } => render(&text, &font, &out, height),
        Command::Train(args) => train(&args),
        Command::Read { model, line } => read(&model, &line),
    }
}

fn render(text: &str, font: &Path, out: &Path, height: usize) -> Result<()> {
    let font = Font::load(font)?;
    let line = render_line(&font, text, height)?;
    line.save_png(out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: {}x{} px, \"{text}\" in {} {}",
        out.display(),
        line.width,
        line.height,
        font.family(),
        font.style()
    );
    Ok(())
}

fn read(model: &Path, line: &Path) -> Result<()> {
    let mut reader = Reader::load(model)?;
    let picture = Gray::load(line, WINDOW)?;
    let (raw, text) = reader.read(&picture)?;
    println!("{raw}");
    println!("{text}");
    Ok(())
}

fn family_list(fonts: &[Font]) -> String {
    let mut names: Vec<&str> = fonts.iter().map(|f| f.family()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
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
    let (train_fonts, test_fonts) = split_fonts(discover_fonts(&args.fonts)?);
    if train_fonts.is_empty() || test_fonts.is_empty() {
        bail!(
            "{}: {} training and {} test fonts; both sides of the split by typeface need \
             one (run scripts/install-fonts.sh)",
            args.fonts.display(),
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

    let eval = evaluate(&mut network, sets.test, &norm, 100)?;
    report_letters(&eval.confusion);
    let mut reader = Reader::load(&model)?;
    let (tally, example) = read_sentences(&mut reader, sets.test_fonts.fonts())?;
    println!(
        "sentences in held-out fonts: {} of {} read with at most one wrong character \
         ({} exactly); word accuracy {:.2}% ({}/{}), character accuracy {:.2}%",
        tally.near_perfect,
        tally.sentences,
        tally.exact,
        100.0 * tally.word_accuracy(),
        tally.words_right,
        tally.words,
        100.0 * tally.char_accuracy().max(0.0)
    );
    if let Some((font, text)) = example {
        println!("for example, in {font}: \"{text}\"");
    }
    println!(
        "wrote {0}/model.safetensors, {0}/ocr.json, {0}/history.json, {0}/curves.png",
        args.out.display()
    );
    Ok(())
}

/// Prints the accuracy on letter windows (and on all windows), then the letters most
/// often mistaken, with what they were taken for.
fn report_letters(confusion: &[Vec<usize>]) {
    let diagonal = |c: usize| {
        confusion
            .get(c)
            .and_then(|r| r.get(c))
            .copied()
            .unwrap_or(0)
    };
    let total = |c: usize| confusion.get(c).map_or(0, |r| r.iter().sum::<usize>());
    let percent = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    let letters_right: usize = (0..BACKGROUND).map(diagonal).sum();
    let letters: usize = (0..BACKGROUND).map(total).sum();
    let all_right: usize = (0..confusion.len()).map(diagonal).sum();
    let all: usize = (0..confusion.len()).map(total).sum();
    println!(
        "held-out fonts: letter accuracy {:.2}% ({letters_right}/{letters} letter windows), \
         {:.2}% with background ({all_right}/{all} windows)",
        percent(letters_right, letters),
        percent(all_right, all),
    );
    worst_letters(confusion);
}

/// Prints the letters most often mistaken, with what they were taken for.
fn worst_letters(confusion: &[Vec<usize>]) {
    let names = class_names();
    let mut errors: Vec<(usize, usize, usize)> = Vec::new();
    for (t, row) in confusion.iter().enumerate() {
        for (p, &n) in row.iter().enumerate() {
            if t != p && n > 0 {
                errors.push((n, t, p));
            }
        }
    }
    errors.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let top: Vec<String> = errors
        .iter()
        .take(6)
        .filter_map(|&(n, t, p)| Some(format!("{}->{} {n}", names.get(t)?, names.get(p)?)))
        .collect();
    if !top.is_empty() {
        println!(
            "most frequent confusions (true->read count): {}",
            top.join(", ")
        );
    }
}

/// Renders every sentence in every font and reads it back; also returns the first
/// sentence as read in the first font.
fn read_sentences(
    reader: &mut Reader,
    fonts: &[Font],
) -> Result<(Tally, Option<(String, String)>)> {
    let mut tally = Tally::default();
    let mut example = None;
    for font in fonts {
        for sentence in SENTENCES {
            let line = render_line(font, sentence, WINDOW)?;
            let (_, text) = reader.read(&line)?;
            tally.add(sentence, &text);
            if example.is_none() {
                example = Some((format!("{} {}", font.family(), font.style()), text));
            }
        }
    }
    Ok((tally, example))
}
