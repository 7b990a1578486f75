//! `convnet linear train|predict`: LIBLINEAR's `train` and `predict` programs, with
//! their options, defaults and printed lines, so that scripts written for them work.

use anyhow::Context;
use linear::model::{fmt_g, fmt_g17};
use linear::options::{PREDICT_USAGE, TRAIN_USAGE};
use linear::problem::with_bias;
use linear::train::{accuracy, cross_validation, find_parameters, regression_stats, train};
use linear::{libsvm, Model, PredictOptions, Problem, TrainOptions};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Train a linear model: [options] training_set_file [model_file] (LIBLINEAR's `train`;
    /// run without arguments for its options)
    Train {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Predict with a linear model: [options] test_file model_file output_file
    /// (LIBLINEAR's `predict`)
    Predict {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train { args } => {
            if args.is_empty() {
                eprintln!("{TRAIN_USAGE}");
                anyhow::bail!("no training_set_file given");
            }
            let opts = TrainOptions::parse(&args).map_err(|e| {
                anyhow::anyhow!("{e} (run `convnet linear train` alone for its options)")
            })?;
            run_train(&opts)
        }
        Command::Predict { args } => {
            if args.is_empty() {
                eprintln!("{PREDICT_USAGE}");
                anyhow::bail!("no test_file given");
            }
            let opts = PredictOptions::parse(&args).map_err(|e| {
                anyhow::anyhow!("{e} (run `convnet linear predict` alone for its options)")
            })?;
            run_predict(&opts)
        }
    }
}

fn run_train(opts: &TrainOptions) -> anyhow::Result<()> {
    let param = &opts.param;
    let prob = Problem::new(libsvm::read(&opts.train_file)?, param.bias)?;
    if let Some(nr_fold) = opts.nr_fold {
        if nr_fold > prob.n_rows() {
            eprintln!(
                "WARNING: # folds > # data. Will use # folds = # data instead (i.e., leave-one-out cross validation)"
            );
        }
    }
    if opts.find_parameters {
        let nr_fold = opts.nr_fold.unwrap_or(5);
        let r = find_parameters(
            &prob,
            param,
            nr_fold,
            opts.c_given.then_some(param.c),
            opts.p_given.then_some(param.p),
        )?;
        let regression = param.solver.is_regression();
        if !opts.quiet {
            for s in &r.steps {
                if regression {
                    println!(
                        "log2c={:7.2}\tp={:7.2}\tMean squared error={}",
                        s.c.log2(),
                        s.p,
                        fmt_g(s.score, 6)
                    );
                } else {
                    println!(
                        "log2c={:7.2}\trate={}",
                        s.c.log2(),
                        fmt_g(100.0 * s.score, 6)
                    );
                }
            }
            if r.max_c_reached {
                println!("WARNING: maximum C reached.");
            }
        }
        match r.best_p {
            Some(p) => println!(
                "Best C = {} Best p = {}  CV MSE = {}",
                fmt_g(r.best_c, 6),
                fmt_g(p, 6),
                fmt_g(r.best_score, 6)
            ),
            None => println!(
                "Best C = {}  CV accuracy = {}%",
                fmt_g(r.best_c, 6),
                fmt_g(100.0 * r.best_score, 6)
            ),
        }
    } else if let Some(nr_fold) = opts.nr_fold {
        let target = cross_validation(&prob, param, nr_fold)?;
        if param.solver.is_regression() {
            let (mse, scc) = regression_stats(&target, &prob.y);
            println!("Cross Validation Mean squared error = {}", fmt_g(mse, 6));
            println!(
                "Cross Validation Squared correlation coefficient = {}",
                fmt_g(scc, 6)
            );
        } else {
            println!(
                "Cross Validation Accuracy = {}%",
                fmt_g(100.0 * accuracy(&target, &prob.y), 6)
            );
        }
    } else {
        let model = train(&prob, param)?;
        model
            .save(&opts.model_file)
            .with_context(|| format!("can't save model to file {}", opts.model_file))?;
    }
    Ok(())
}

fn run_predict(opts: &PredictOptions) -> anyhow::Result<()> {
    let model = Model::load(&opts.model_file)
        .with_context(|| format!("can't open model file {}", opts.model_file))?;
    if opts.probability && !model.solver.is_probability() {
        anyhow::bail!("probability output is only supported for logistic regression");
    }
    let test = libsvm::read(&opts.test_file)?;
    let x = with_bias(test.x, model.bias, model.nr_feature);
    let mut out = String::new();
    let mut pred = Vec::with_capacity(test.y.len());
    let mut buf = Vec::new();
    if opts.probability {
        out.push_str("labels");
        for l in &model.labels {
            out.push_str(&format!(" {l}"));
        }
        out.push('\n');
    }
    for i in 0..test.y.len() {
        if opts.probability {
            let label = model.predict_probability(&x, i, &mut buf)?;
            out.push_str(&fmt_g(label, 6));
            for p in &buf {
                out.push(' ');
                out.push_str(&fmt_g(*p, 6));
            }
            out.push('\n');
            pred.push(label);
        } else {
            let label = model.predict(&x, i);
            out.push_str(&fmt_g17(label));
            out.push('\n');
            pred.push(label);
        }
    }
    libsvm::write_atomic(std::path::Path::new(&opts.output_file), out.as_bytes())
        .with_context(|| format!("can't open output file {}", opts.output_file))?;
    if !opts.quiet {
        if model.solver.is_regression() {
            let (mse, scc) = regression_stats(&pred, &test.y);
            println!("Mean squared error = {} (regression)", fmt_g(mse, 6));
            println!(
                "Squared correlation coefficient = {} (regression)",
                fmt_g(scc, 6)
            );
        } else {
            let correct = pred.iter().zip(&test.y).filter(|(p, t)| p == t).count();
            let total = test.y.len();
            println!(
                "Accuracy = {}% ({correct}/{total})",
                fmt_g(100.0 * correct as f64 / total as f64, 6)
            );
        }
    }
    Ok(())
}
