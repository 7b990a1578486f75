//! `convnet cv`: stratified K-fold cross-validation. Each fold trains on the other K-1
//! folds (normalised with their statistics alone) exactly as `convnet train` would, and
//! is tested on the images it never saw; the confusion matrices add up over the folds.

use crate::cmd_test::confusion_table;
use crate::{cmd_train, datasets, heatmap};
use anyhow::{Context, Result};
use convnet::data::folds::Folds;
use convnet::data::source::Images;
use convnet::train::evaluate;
use serde::Serialize;

#[derive(clap::Args)]
#[command(mut_arg("out", |a| a
    .default_value("out/cv")
    .help("Output folder: cv.json, confusion.png, and fold-1/, fold-2/, ... with each fold's model")))]
#[command(mut_arg("data", |a| a
    .help("Data folder: MNIST IDX files (train and test are pooled), or an image folder with one subfolder per class; default: the embedded digits (train and test pooled)")))]
#[command(mut_arg("resume", |a| a
    .help("Resume every fold from its last checkpoint in the output folder (a finished fold is not trained again)")))]
#[command(mut_arg("keep_checkpoints", |a| a
    .default_value("1")
    .help("Keep each fold's newest N checkpoints (0 keeps every epoch's)")))]
pub struct Args {
    /// Number of folds K (at least 2; every class needs at least K images)
    #[arg(long)]
    pub folds: usize,
    #[command(flatten)]
    pub train: cmd_train::Args,
}

/// One fold's result, as cv.json records it.
#[derive(Serialize)]
struct FoldResult {
    fold: usize,
    train_images: usize,
    test_images: usize,
    objective: f64,
    top1_error: f64,
    top5_error: f64,
    #[serde(skip)]
    confusion: Vec<Vec<usize>>,
}

#[derive(Serialize)]
struct Summary<'a> {
    net: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    init: Option<String>,
    folds: usize,
    seed: u64,
    images: usize,
    classes: &'a [String],
    per_fold: &'a [FoldResult],
    mean_top1_error: f64,
    /// Sample standard deviation over the folds (divides by K - 1).
    std_top1_error: f64,
    /// Summed over the folds: `confusion[true][predicted]`.
    confusion: &'a [Vec<usize>],
}

/// Mean and sample standard deviation (K - 1 in the denominator).
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n.max(1.0);
    let ss = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
    (mean, (ss / (n - 1.0).max(1.0)).sqrt())
}

fn run_fold(args: &Args, data: &Images, folds: &Folds, i: usize) -> Result<FoldResult> {
    let mut fold_args = args.train.clone();
    fold_args.out = args.train.out.join(format!("fold-{}", i + 1));
    let train_set = data.subset(&folds.train(i))?;
    let test_set = data.subset(folds.test(i))?;
    let (train_images, test_images) = (train_set.len(), test_set.len());
    if !args.train.quiet {
        eprintln!(
            "fold {}/{}: training on {train_images} images, {test_images} held out",
            i + 1,
            folds.k()
        );
    }
    let (mut network, history, norm) =
        cmd_train::run_training(&fold_args, train_set, None::<Images>)?;
    let input = datasets::fit_of(data);
    cmd_train::write_outputs_with(&fold_args.out, &network, &history, &norm, input.as_ref())?;
    fold_args.diag.draw(&fold_args.out)?;
    let e = evaluate(&mut network, test_set, &norm, args.train.batch.max(1))?;
    let counted: usize = e.confusion.iter().flatten().sum();
    let classes = data.classes().len();
    if counted != test_images {
        anyhow::bail!(
            "--net {}: the network predicted classes beyond the data's {classes} for {} of {test_images} images; give its last layer {classes} outputs",
            args.train.net_name(),
            test_images - counted,
        );
    }
    Ok(FoldResult {
        fold: i + 1,
        train_images,
        test_images,
        objective: e.tally.mean_objective(),
        top1_error: e.tally.top1err(),
        top5_error: e.tally.top5err(),
        confusion: e.confusion,
    })
}

fn fold_line(r: &FoldResult, k: usize, classes: usize) -> String {
    // With five classes or fewer the top-5 error is always 0: leave it out.
    let top5 = if classes > 5 {
        format!("  top-5 error {:.2}%", r.top5_error * 100.0)
    } else {
        String::new()
    };
    format!(
        "fold {}/{k}: trained on {} images, tested on {}: top-1 error {:.2}%{top5}",
        r.fold,
        r.train_images,
        r.test_images,
        r.top1_error * 100.0
    )
}

fn add_into(total: &mut [Vec<usize>], m: &[Vec<usize>]) {
    for (t, r) in total.iter_mut().zip(m) {
        for (a, b) in t.iter_mut().zip(r) {
            *a += b;
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let t = &args.train;
    t.device.cpu_only("cross-validation")?;
    datasets::set_threads(t.threads)?;
    let data = datasets::load_all(t.data.as_deref(), &cmd_train::fit(t)?)?;
    let folds = Folds::stratified(data.labels(), data.classes(), args.folds, t.seed)?;
    let k = folds.k();
    let classes = data.classes().to_vec();
    let mut confusion = vec![vec![0usize; classes.len()]; classes.len()];
    let mut results = Vec::with_capacity(k);
    for i in 0..k {
        let r = run_fold(&args, &data, &folds, i).with_context(|| format!("fold {}", i + 1))?;
        println!("{}", fold_line(&r, k, classes.len()));
        add_into(&mut confusion, &r.confusion);
        results.push(r);
    }
    let errors: Vec<f64> = results.iter().map(|r| r.top1_error).collect();
    let (mean, std) = mean_std(&errors);
    println!(
        "top-1 error over {k} folds: mean {:.2}%, standard deviation {:.2}%",
        mean * 100.0,
        std * 100.0
    );
    print!(
        "confusion matrix summed over the folds ({} images):\n{}",
        data.len(),
        confusion_table(&classes, &confusion)
    );
    let net = t.net_name();
    let summary = Summary {
        net: &net,
        init: t.init.as_ref().map(|p| p.display().to_string()),
        folds: k,
        seed: t.seed,
        images: data.len(),
        classes: &classes,
        per_fold: &results,
        mean_top1_error: mean,
        std_top1_error: std,
        confusion: &confusion,
    };
    std::fs::create_dir_all(&t.out).with_context(|| format!("creating {}", t.out.display()))?;
    let json = serde_json::to_string_pretty(&summary)?;
    convnet::atomic::write(&t.out.join("cv.json"), json.as_bytes())?;
    let title = format!(
        "{k}-fold cross-validation: top-1 error {:.2}% ± {:.2}%",
        mean * 100.0,
        std * 100.0
    );
    heatmap::confusion(&t.out.join("confusion.png"), &classes, &confusion, &title)?;
    println!(
        "wrote {0}/cv.json, {0}/confusion.png and each fold's model in {0}/fold-*/",
        t.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cv_mean_std_is_the_sample_deviation() {
        let (m, s) = mean_std(&[0.1, 0.2, 0.3]);
        assert!((m - 0.2).abs() < 1e-12);
        assert!((s - 0.1).abs() < 1e-12);
        let mut total = vec![vec![1, 0], vec![0, 1]];
        add_into(&mut total, &[vec![2, 3], vec![4, 5]]);
        assert_eq!(total, vec![vec![3, 3], vec![4, 6]]);
    }
}
