//! `convnet train`: trains a network, writing the model, the history, the curves and a
//! checkpoint per epoch into the output folder.

use crate::diagnose::{self, DiagnoseArgs};
use crate::{datasets, plot};
use anyhow::{Context, Result};
use convnet::data::jitter::Jitter;
use convnet::data::normalize::Normalization;
use convnet::net::{self, Network};
use convnet::train::{self, EpochStats, Progress, Schedule, SolverKind, TrainOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Network: a zoo name (lenet, lenet-bn, cifar, alexnet, vgg16, resnet18) or a TOML file
    #[arg(long, default_value = "lenet")]
    pub net: String,
    /// Data folder (MNIST IDX files, or an image folder with train/ and test/); default: the embedded digits
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Initial learning rate (MatConvNet's convention: gradients are averaged over the batch)
    #[arg(long, default_value_t = 0.05)]
    pub lr: f32,
    /// Learning-rate schedule: constant, step (x0.1 every third of the run), cosine, or a list "0.05,0.05,0.01"
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// sgd or adam
    #[arg(long, default_value = "sgd")]
    pub solver: String,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// L2 weight decay (0.002 keeps 20 jittered epochs on 8,000 digits from overfitting)
    #[arg(long, default_value_t = 0.002)]
    pub weight_decay: f32,
    /// Jitter the training images (shift, rotation, scale; mirroring never for digits)
    #[arg(long, default_value = "digits", value_parser = ["none", "digits", "images"])]
    pub jitter: String,
    /// Input normalisation: per-channel (standardised), mean-image (MatConvNet: minus the mean image), none (0..255 pixels), unit (pixels / 255, 0..1)
    #[arg(long, default_value = "per-channel", value_parser = ["per-channel", "mean-image", "none", "unit"])]
    pub normalize: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads (default: all cores); the same seed and thread count give the same model
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output folder
    #[arg(long, default_value = "out/train")]
    pub out: PathBuf,
    /// Resume from the last checkpoint in the output folder
    #[arg(long = "continue")]
    pub resume: bool,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub diag: DiagnoseArgs,
}

pub fn schedule(args: &Args) -> Result<Schedule> {
    let s = match args.schedule.as_str() {
        "constant" => Schedule::Constant { lr: args.lr },
        "cosine" => Schedule::Cosine {
            lr: args.lr,
            min_lr: args.lr * 0.01,
            epochs: args.epochs,
        },
        "step" => Schedule::Step {
            lr: args.lr,
            gamma: 0.1,
            every: args.epochs.div_ceil(3).max(1),
        },
        list => Schedule::List {
            rates: list
                .split(',')
                .map(|v| v.trim().parse::<f32>())
                .collect::<std::result::Result<_, _>>()
                .with_context(|| {
                    format!("--schedule '{list}': not constant, step, cosine or a list of numbers")
                })?,
        },
    };
    s.validate()?;
    Ok(s)
}

pub fn options(args: &Args) -> Result<TrainOptions> {
    let solver = match args.solver.as_str() {
        "sgd" => SolverKind::Sgd {
            momentum: args.momentum,
        },
        "adam" => SolverKind::adam(),
        other => anyhow::bail!("--solver '{other}': use sgd or adam"),
    };
    let jitter = match args.jitter.as_str() {
        "digits" => Jitter::digits(),
        "images" => Jitter {
            mirror: true,
            ..Jitter::digits()
        },
        _ => Jitter::none(),
    };
    if args.batch == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    Ok(TrainOptions {
        epochs: args.epochs,
        batch_size: args.batch,
        schedule: schedule(args)?,
        solver,
        weight_decay: args.weight_decay,
        seed: args.seed,
        jitter,
        out_dir: Some(args.out.clone()),
        resume: args.resume,
        diagnose: args.diag.options()?,
    })
}

/// A progress bar over one epoch's images, with images/s and time left.
fn epoch_bar(quiet: bool, epoch: usize, epochs: usize, images: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(images);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} img, {per_sec}, {eta} left, {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    bar
}

fn epoch_line(s: &EpochStats) -> String {
    let val = match (s.val_objective, s.val_top1err, s.val_top5err) {
        (Some(o), Some(e1), Some(e5)) => format!(
            "  val: objective {o:.4} top-1 err {:.2}% top-5 err {:.2}%",
            e1 * 100.0,
            e5 * 100.0
        ),
        _ => String::new(),
    };
    format!(
        "epoch {:>3}: lr {:.4}  train: objective {:.4} top-1 err {:.2}%{val}  {:.0} img/s",
        s.epoch,
        s.lr,
        s.train_objective,
        s.train_top1err * 100.0,
        s.images_per_s
    )
}

/// Fails unless the network predicts as many classes as the data has.
pub fn check_classes(net: &str, desc: &net::NetDesc, classes: &[String]) -> Result<()> {
    if !desc.classes.is_empty() && desc.classes.len() != classes.len() {
        anyhow::bail!(
            "--net {net}: the network scores {} classes but the data has {} ({}); give its last layer {} outputs",
            desc.classes.len(),
            classes.len(),
            classes.join(", "),
            classes.len()
        );
    }
    Ok(())
}

/// Trains as `args` says, inputs normalised as `--normalize` says (by default
/// standardised per channel with the training set's mean and standard deviation, so
/// one learning rate suits 0..255 digits and photographs alike); returns the network,
/// its history and the normalisation.
pub fn run_training(
    args: &Args,
    data_train: convnet::data::dataset::Dataset,
    data_val: Option<convnet::data::dataset::Dataset>,
) -> Result<(Network, Vec<EpochStats>, Normalization)> {
    let normalization = normalization(&args.normalize, &data_train)?;
    run_training_with(args, data_train, data_val, normalization)
}

/// The normalisation `--normalize` names, computed on `data` where it needs statistics.
fn normalization(name: &str, data: &convnet::data::dataset::Dataset) -> Result<Normalization> {
    Ok(match name {
        "per-channel" => Normalization::per_channel(data)?,
        "mean-image" => Normalization::mean_image(data)?,
        "none" => Normalization::None,
        "unit" => {
            let c = data.dims()?.c;
            Normalization::PerChannel {
                mean: vec![0.0; c],
                std: vec![255.0; c],
            }
        }
        other => anyhow::bail!("--normalize '{other}': use per-channel, mean-image, none or unit"),
    })
}

/// As [`run_training`], with the given normalisation.
pub fn run_training_with(
    args: &Args,
    data_train: convnet::data::dataset::Dataset,
    data_val: Option<convnet::data::dataset::Dataset>,
    normalization: Normalization,
) -> Result<(Network, Vec<EpochStats>, Normalization)> {
    let opts = options(args)?;
    let mut desc = net::resolve(&args.net)?;
    check_classes(&args.net, &desc, &data_train.classes)?;
    // The data's class names (folder names, letters) replace the description's numbers.
    desc.classes = data_train.classes.clone();
    let mut network = Network::from_desc(&desc, args.seed)?;
    let total = data_train.len() as u64;
    let mut bar = ProgressBar::hidden();
    let mut on_progress = |p: Progress| match p {
        Progress::EpochStart { epoch, epochs, .. } => {
            bar = epoch_bar(args.quiet, epoch, epochs, total);
        }
        Progress::Batch {
            images,
            mean_objective,
            ..
        } => {
            bar.inc(images as u64);
            bar.set_message(format!("objective {mean_objective:.4}"));
        }
        Progress::Evaluating => bar.set_message("evaluating"),
        Progress::EpochEnd { stats, .. } => {
            bar.finish_and_clear();
            if !args.quiet {
                eprintln!("{}", epoch_line(stats));
            }
        }
        Progress::Findings(found) => bar.suspend(|| {
            for f in found {
                eprintln!("{}", diagnose::warning(f));
            }
        }),
    };
    let run = train::train(
        &mut network,
        Arc::new(data_train),
        data_val.map(Arc::new),
        &normalization,
        &opts,
        &mut on_progress,
    )?;
    if let Some(e) = run.resumed_from {
        if !args.quiet {
            eprintln!("resumed after epoch {e}");
        }
    }
    Ok((network, run.history, normalization))
}

/// Writes model.safetensors, history.json and curves.png into `out`.
pub fn write_outputs(
    out: &Path,
    network: &Network,
    history: &[EpochStats],
    norm: &Normalization,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    net::save_model(&out.join("model.safetensors"), network, &norm.to_json()?)?;
    let json = serde_json::to_string_pretty(history)?;
    convnet::atomic::write(&out.join("history.json"), json.as_bytes())?;
    plot::curves(history, &out.join("curves.png"))?;
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    datasets::set_threads(args.threads)?;
    let input = net::resolve(&args.net)?.input_size();
    let train_set = datasets::load_split(args.data.as_deref(), "train", input)?;
    let val_set = datasets::load_split(args.data.as_deref(), "test", input)?;
    let trained = run_training(&args, train_set, Some(val_set));
    // A run stopped by a check is drawn too: that is when the picture is wanted.
    let drawn = args.diag.draw(&args.out);
    let (network, history, norm) = trained?;
    let drawn = drawn?;
    write_outputs(&args.out, &network, &history, &norm)?;
    if let Some(last) = history.last() {
        println!("{}", epoch_line(last));
    }
    println!(
        "wrote {0}/model.safetensors, {0}/history.json, {0}/curves.png, {0}/diagnostics.json{1}",
        args.out.display(),
        drawn
            .map(|p| format!(", {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}
