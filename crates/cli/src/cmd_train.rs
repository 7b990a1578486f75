//! `convnet train`: trains a network, writing the model, the history, the curves and the
//! newest checkpoints into the output folder; `--init` starts from another model's
//! weights (fine-tuning).

use crate::diagnose::{self, DiagnoseArgs};
use crate::{datasets, plot};
use anyhow::{Context, Result};
use convnet::data::folder::FolderOptions;
use convnet::data::jitter::Jitter;
use convnet::data::normalize::Normalization;
use convnet::data::source::Images;
use convnet::net::{self, finetune, Network};
use convnet::train::{self, EpochStats, GradientExchange, NoExchange, Progress, Schedule};
use convnet::train::{SolverKind, TrainOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Images of a streamed folder that the per-channel statistics are taken from.
pub const STATS_SAMPLE: usize = 1000;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Network: a zoo name (lenet, lenet-bn, cifar, alexnet, vgg16, resnet18), whose
    /// classifier gets one output per class of the data, or a TOML file; default: lenet,
    /// or with --init the model's own network
    #[arg(long)]
    pub net: Option<String>,
    /// Data folder (MNIST IDX files, or an image folder with train/ and test/, one
    /// subfolder per class; image folders of any size are streamed); default: the
    /// embedded digits
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
    /// Jitter the training images: digits (shift, rotation, zoom), images (the same and
    /// mirroring), imagenet (for image folders: a random-resized crop of the file,
    /// mirroring, brightness, contrast and saturation; images are then tested as the
    /// centred crop after resizing the shorter side to 8/7 of the input), or none
    #[arg(long, default_value = "digits", value_parser = ["none", "digits", "images", "imagenet"])]
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
    /// Resume from the last checkpoint in the output folder. With a larger --epochs a
    /// finished run is extended: the schedule is laid over the new total (cosine and step
    /// decay stretch to it, so the rate jumps back up to where the longer run would be),
    /// and the epochs already trained keep the rates they had
    #[arg(long = "continue")]
    pub resume: bool,
    /// Keep the newest N checkpoints, deleting older ones once a newer one is written
    /// (0 keeps every epoch's)
    #[arg(long, default_value_t = 2)]
    pub keep_checkpoints: usize,
    /// Start from a model's weights: the layers whose names and shapes match are loaded
    /// (a line names those that are not), the classifier is re-made unless the data has
    /// the model's very classes, and the model's input normalisation is kept
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Keep this layer and every layer before it fixed: no update, no weight decay, no
    /// backward pass through them, and they run as in testing (batch normalisation keeps
    /// its stored statistics)
    #[arg(long)]
    pub freeze: Option<String>,
    /// Multiply the learning rate of the layers loaded by --init by this
    #[arg(long)]
    pub lr_mult: Option<f32>,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub diag: DiagnoseArgs,
    #[command(flatten)]
    pub device: crate::device_arg::DeviceArgs,
    /// Where the per-epoch lines go: standard output for `convnet train` (they are its
    /// results), else standard error unless --quiet (progress of a larger job)
    #[arg(skip)]
    pub epoch_lines_to_stdout: bool,
}

impl Default for Args {
    /// The command line's defaults.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: Args,
        }
        <Defaults as clap::Parser>::parse_from(["convnet"]).args
    }
}

impl Args {
    /// The network's name for messages.
    pub fn net_name(&self) -> String {
        match (&self.net, &self.init) {
            (Some(n), _) => n.clone(),
            (None, Some(m)) => m.display().to_string(),
            (None, None) => "lenet".into(),
        }
    }
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

/// The jitter `--jitter` names.
pub fn jitter(args: &Args) -> Jitter {
    match args.jitter.as_str() {
        "digits" => Jitter::digits(),
        "images" => Jitter {
            mirror: true,
            ..Jitter::digits()
        },
        "imagenet" => Jitter::imagenet(),
        _ => Jitter::none(),
    }
}

pub fn options(args: &Args) -> Result<TrainOptions> {
    let solver = match args.solver.as_str() {
        "sgd" => SolverKind::Sgd {
            momentum: args.momentum,
        },
        "adam" => SolverKind::adam(),
        other => anyhow::bail!("--solver '{other}': use sgd or adam"),
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
        jitter: jitter(args),
        out_dir: Some(args.out.clone()),
        resume: args.resume,
        diagnose: args.diag.options()?,
        keep_checkpoints: args.keep_checkpoints,
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
    // Large networks on a CPU train a few images a second: keep a decimal for them.
    let rate = if s.images_per_s < 100.0 { 1 } else { 0 };
    // Say so when the data did not keep ahead of training.
    let waited = match s.data_wait {
        share if share >= 0.05 => format!(" ({:.0}% of it waiting for data)", share * 100.0),
        _ => String::new(),
    };
    format!(
        "epoch {:>3}: lr {:.4}  train: objective {:.4} top-1 err {:.2}%{val}  {:.rate$} img/s{waited}",
        s.epoch,
        s.lr,
        s.train_objective,
        s.train_top1err * 100.0,
        s.images_per_s
    )
}

/// A line of results: on standard output for `convnet train`, else on standard error
/// unless --quiet.
fn report(args: &Args, line: &str) {
    if args.epoch_lines_to_stdout {
        println!("{line}");
    } else if !args.quiet {
        eprintln!("{line}");
    }
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

/// The model `--init` names: its network, tensors, classes and normalisation.
pub struct InitModel {
    path: PathBuf,
    desc: net::NetDesc,
    tensors: BTreeMap<String, convnet::Tensor>,
    classes: Vec<String>,
    normalization: Normalization,
}

impl InitModel {
    /// Reads `--init`'s model, if there is one.
    pub fn read(args: &Args) -> Result<Option<InitModel>> {
        let Some(path) = &args.init else {
            if args.lr_mult.is_some() {
                anyhow::bail!("--lr-mult scales the layers loaded by --init: give --init MODEL");
            }
            return Ok(None);
        };
        let (network, meta) =
            net::load_model(path).with_context(|| format!("--init {}", path.display()))?;
        let normalization = if meta.normalization.is_empty() {
            Normalization::None
        } else {
            Normalization::from_json(&meta.normalization)
                .with_context(|| format!("--init {}", path.display()))?
        };
        let tensors = network
            .named_tensors()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        Ok(Some(InitModel {
            path: path.clone(),
            desc: network.desc().clone(),
            tensors,
            classes: meta.classes,
            normalization,
        }))
    }
}

/// The description `--net` (or `--init`'s model) gives, before it is fitted to the data.
pub fn network_desc(args: &Args, init: Option<&InitModel>) -> Result<net::NetDesc> {
    match (&args.net, init) {
        (Some(n), _) => Ok(net::resolve(n)?),
        (None, Some(m)) => Ok(m.desc.clone()),
        (None, None) => Ok(net::resolve("lenet")?),
    }
}

/// The input size (H, W, C) of the network `args` trains.
pub fn input_size(args: &Args) -> Result<Option<[usize; 3]>> {
    Ok(network_desc(args, InitModel::read(args)?.as_ref())?.input_size())
}

/// The network to train on data with `classes`: the description with its classifier
/// fitted to the classes (zoo networks and --init's; a description file must already
/// fit), weights from --seed, then --init's loaded, --freeze and --lr-mult applied.
/// Returns it with a line saying what --init loaded.
pub fn build_network(
    args: &Args,
    classes: &[String],
    init: Option<&InitModel>,
) -> Result<(Network, Option<String>)> {
    let mut desc = network_desc(args, init)?;
    // An imported or deployed model is in its deploy form: train it against a loss.
    finetune::ensure_loss(&mut desc).with_context(|| format!("--net {}", args.net_name()))?;
    let fits = args
        .net
        .as_deref()
        .is_none_or(|n| net::zoo::get(n).is_some());
    if fits {
        finetune::fit_classes(&mut desc, classes)
            .with_context(|| format!("--net {}", args.net_name()))?;
    } else {
        check_classes(&args.net_name(), &desc, classes)?;
        // The data's class names (folder names, letters) replace the description's numbers.
        desc.classes = classes.to_vec();
    }
    let mut network = Network::from_desc(&desc, args.seed)?;
    let mut line = None;
    let mut loaded = Vec::new();
    if let Some(m) = init {
        // The classifier keeps the model's weights only for the model's very classes.
        let remake: Vec<String> = match finetune::classifier(&desc) {
            Some(c) if m.classes != classes => vec![c.to_string()],
            _ => Vec::new(),
        };
        let r = finetune::load_matching(&mut network, &m.tensors, &remake)
            .with_context(|| format!("--init {}", m.path.display()))?;
        let skipped: Vec<String> = r
            .skipped
            .iter()
            .map(|(l, why)| format!("{l} ({why})"))
            .collect();
        line = Some(format!(
            "init: loaded {} of {} layers with parameters from {}; not loaded: {}",
            r.loaded.len(),
            r.loaded.len() + r.skipped.len(),
            m.path.display(),
            if skipped.is_empty() {
                "none".to_string()
            } else {
                skipped.join(", ")
            }
        ));
        loaded = r.loaded;
    }
    if let Some(layer) = &args.freeze {
        network
            .freeze_through(layer)
            .with_context(|| format!("--freeze {layer}"))?;
    }
    if let Some(mult) = args.lr_mult {
        finetune::scale_lr(&mut network, &loaded, mult).context("--lr-mult")?;
    }
    Ok((network, line))
}

/// Trains as `args` says, inputs normalised as `--normalize` says (by default
/// standardised per channel with the training set's mean and standard deviation, so
/// one learning rate suits 0..255 digits and photographs alike; with --init, the
/// model's own normalisation when it fits); returns the network, its history and the
/// normalisation.
pub fn run_training(
    args: &Args,
    data_train: impl Into<Images>,
    data_val: Option<impl Into<Images>>,
) -> Result<(Network, Vec<EpochStats>, Normalization)> {
    let val = data_val.map(Into::into);
    run_training_on(args, data_train.into(), val, &mut NoExchange)
}

/// As [`run_training`], as one rank of a data-parallel run whose gradients go through
/// `ex`.
pub fn run_training_on(
    args: &Args,
    data_train: Images,
    data_val: Option<Images>,
    ex: &mut dyn GradientExchange,
) -> Result<(Network, Vec<EpochStats>, Normalization)> {
    let init = InitModel::read(args)?;
    let (c, h, w) = data_train.dims()?;
    let normalization = match &init {
        Some(m) if !m.normalization.is_none() && m.normalization.check(c, h, w).is_ok() => {
            m.normalization.clone()
        }
        _ => normalization(&args.normalize, &data_train)?,
    };
    train_from(args, data_train, data_val, normalization, init, ex)
}

/// The normalisation `--normalize` names, computed on `data` where it needs statistics.
fn normalization(name: &str, data: &Images) -> Result<Normalization> {
    Ok(match name {
        "per-channel" => Normalization::per_channel_of(data, STATS_SAMPLE)?,
        "mean-image" => Normalization::mean_image_of(data, STATS_SAMPLE)?,
        "none" => Normalization::None,
        "unit" => {
            let (c, _, _) = data.dims()?;
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
    data_train: impl Into<Images>,
    data_val: Option<impl Into<Images>>,
    normalization: Normalization,
) -> Result<(Network, Vec<EpochStats>, Normalization)> {
    train_from(
        args,
        data_train.into(),
        data_val.map(Into::into),
        normalization,
        InitModel::read(args)?,
        &mut NoExchange,
    )
}

/// Trains on `data_train` as one rank of a data-parallel run whose gradients go
/// through `ex`; only rank 0 shows progress and prints.
fn train_from(
    args: &Args,
    data_train: Images,
    data_val: Option<Images>,
    normalization: Normalization,
    init: Option<InitModel>,
    ex: &mut dyn GradientExchange,
) -> Result<(Network, Vec<EpochStats>, Normalization)> {
    let writer = ex.shard().is_writer();
    let quiet = args.quiet || !writer;
    let report = |line: &str| {
        if writer {
            report(args, line)
        }
    };
    let opts = options(args)?;
    let (mut network, init_line) = build_network(args, data_train.classes(), init.as_ref())?;
    drop(init);
    if let Some(line) = init_line {
        report(&line);
    }
    let total = data_train.len() as u64;
    let mut bar = ProgressBar::hidden();
    let mut on_progress = |p: Progress| match p {
        Progress::EpochStart { epoch, epochs, .. } => {
            bar = epoch_bar(quiet, epoch, epochs, total);
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
            report(&epoch_line(stats));
        }
        Progress::Findings(found) => bar.suspend(|| {
            for f in found {
                eprintln!("{}", diagnose::warning(f));
            }
        }),
    };
    let run = train::train_with(
        &mut network,
        data_train,
        data_val,
        &normalization,
        &opts,
        ex,
        &mut on_progress,
    )?;
    if let Some(e) = run.resumed_from {
        if !quiet {
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
    write_outputs_with(out, network, history, norm, None)
}

/// As [`write_outputs`], the model also recording how image files are fitted to its
/// input (the test transform of the image folder it was trained on).
pub fn write_outputs_with(
    out: &Path,
    network: &Network,
    history: &[EpochStats],
    norm: &Normalization,
    input: Option<&FolderOptions>,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let input = input.map(serde_json::to_string).transpose()?;
    net::save_model_with(
        &out.join("model.safetensors"),
        network,
        &norm.to_json()?,
        input.as_deref().unwrap_or(""),
    )?;
    let json = serde_json::to_string_pretty(history)?;
    convnet::atomic::write(&out.join("history.json"), json.as_bytes())?;
    plot::curves(history, &out.join("curves.png"))?;
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    args.device.cpu_only("training")?;
    if crate::distributed::launched() {
        return crate::distributed::train(args);
    }
    datasets::set_threads(args.threads)?;
    run_on(args, &mut NoExchange)
}

/// How image files are fitted to the input of the network `args` trains: the test
/// transform of the training recipe.
pub fn fit(args: &Args) -> Result<FolderOptions> {
    Ok(datasets::fit_for(input_size(args)?, &jitter(args)))
}

/// Trains as `args` says as one rank of a data-parallel run (threads already set);
/// rank 0 alone writes the outputs and prints.
pub fn run_on(mut args: Args, ex: &mut dyn GradientExchange) -> Result<()> {
    args.epoch_lines_to_stdout = true;
    let fit = fit(&args)?;
    let train_set = datasets::load_split(args.data.as_deref(), "train", &fit)?;
    let val_set = datasets::load_split(args.data.as_deref(), "test", &fit)?
        .with_classes(train_set.classes())
        .context("the test split's classes")?;
    let input = datasets::fit_of(&train_set);
    let trained = run_training_on(&args, train_set, Some(val_set), ex);
    if !ex.shard().is_writer() {
        return trained.map(|_| ());
    }
    // A run stopped by a check is drawn too: that is when the picture is wanted.
    let drawn = args.diag.draw(&args.out);
    let (network, history, norm) = trained?;
    let drawn = drawn?;
    write_outputs_with(&args.out, &network, &history, &norm, input.as_ref())?;
    println!(
        "wrote {0}/model.safetensors, {0}/history.json, {0}/curves.png, {0}/diagnostics.json{1}",
        args.out.display(),
        drawn
            .map(|p| format!(", {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}
