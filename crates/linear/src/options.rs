//! LIBLINEAR 2.50's parameters and the options of its `train` and `predict` programs,
//! parsed from raw arguments (forms like `-w1 2` are beyond a derive parser). Values
//! LIBLINEAR takes silently (`-s abc`, a nu outside (0, 1]) are errors here.

use crate::error::{Error, Result};

/// LIBLINEAR's solver types, numbered as its `-s` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SolverType {
    L2rLr = 0,
    L2rL2lossSvcDual = 1,
    L2rL2lossSvc = 2,
    L2rL1lossSvcDual = 3,
    McsvmCs = 4,
    L1rL2lossSvc = 5,
    L1rLr = 6,
    L2rLrDual = 7,
    L2rL2lossSvr = 11,
    L2rL2lossSvrDual = 12,
    L2rL1lossSvrDual = 13,
    OneclassSvm = 21,
}

impl SolverType {
    pub const ALL: [SolverType; 12] = [
        SolverType::L2rLr,
        SolverType::L2rL2lossSvcDual,
        SolverType::L2rL2lossSvc,
        SolverType::L2rL1lossSvcDual,
        SolverType::McsvmCs,
        SolverType::L1rL2lossSvc,
        SolverType::L1rLr,
        SolverType::L2rLrDual,
        SolverType::L2rL2lossSvr,
        SolverType::L2rL2lossSvrDual,
        SolverType::L2rL1lossSvrDual,
        SolverType::OneclassSvm,
    ];

    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn from_code(code: u32) -> Option<SolverType> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The name in model files (`solver_type ...`).
    pub fn name(self) -> &'static str {
        match self {
            SolverType::L2rLr => "L2R_LR",
            SolverType::L2rL2lossSvcDual => "L2R_L2LOSS_SVC_DUAL",
            SolverType::L2rL2lossSvc => "L2R_L2LOSS_SVC",
            SolverType::L2rL1lossSvcDual => "L2R_L1LOSS_SVC_DUAL",
            SolverType::McsvmCs => "MCSVM_CS",
            SolverType::L1rL2lossSvc => "L1R_L2LOSS_SVC",
            SolverType::L1rLr => "L1R_LR",
            SolverType::L2rLrDual => "L2R_LR_DUAL",
            SolverType::L2rL2lossSvr => "L2R_L2LOSS_SVR",
            SolverType::L2rL2lossSvrDual => "L2R_L2LOSS_SVR_DUAL",
            SolverType::L2rL1lossSvrDual => "L2R_L1LOSS_SVR_DUAL",
            SolverType::OneclassSvm => "ONECLASS_SVM",
        }
    }

    pub fn from_name(name: &str) -> Option<SolverType> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// LIBLINEAR's default `-e` for this solver.
    pub fn default_eps(self) -> f64 {
        match self {
            SolverType::L2rLr | SolverType::L2rL2lossSvc => 0.01,
            SolverType::L2rL2lossSvr => 0.0001,
            SolverType::L2rL2lossSvcDual
            | SolverType::L2rL1lossSvcDual
            | SolverType::McsvmCs
            | SolverType::L2rLrDual => 0.1,
            SolverType::L1rL2lossSvc | SolverType::L1rLr => 0.01,
            SolverType::L2rL2lossSvrDual | SolverType::L2rL1lossSvrDual => 0.1,
            SolverType::OneclassSvm => 0.01,
        }
    }

    pub fn is_regression(self) -> bool {
        matches!(
            self,
            SolverType::L2rL2lossSvr | SolverType::L2rL2lossSvrDual | SolverType::L2rL1lossSvrDual
        )
    }

    pub fn is_oneclass(self) -> bool {
        self == SolverType::OneclassSvm
    }

    /// Whether the model gives probability estimates (logistic regression).
    pub fn is_probability(self) -> bool {
        matches!(
            self,
            SolverType::L2rLr | SolverType::L2rLrDual | SolverType::L1rLr
        )
    }
}

/// LIBLINEAR's `parameter`, with its defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    pub solver: SolverType,
    pub c: f64,
    /// Stopping tolerance; the solver's default already applied.
    pub eps: f64,
    pub p: f64,
    pub nu: f64,
    /// `-wi weight`: class label and the factor on C for it.
    pub weights: Vec<(i32, f64)>,
    /// `-B`: negative means no bias column.
    pub bias: f64,
    /// `-R` clears this: the bias is then not regularised.
    pub regularize_bias: bool,
    /// Seed of every random order (coordinate descent, cross-validation folds).
    pub seed: u64,
}

impl Default for Parameter {
    fn default() -> Self {
        Parameter::new(SolverType::L2rL2lossSvcDual)
    }
}

impl Parameter {
    /// LIBLINEAR's defaults for `solver`.
    pub fn new(solver: SolverType) -> Parameter {
        Parameter {
            solver,
            c: 1.0,
            eps: solver.default_eps(),
            p: 0.1,
            nu: 0.5,
            weights: Vec::new(),
            bias: -1.0,
            regularize_bias: true,
            seed: 1,
        }
    }

    /// LIBLINEAR's `check_parameter`, plus the checks it leaves out.
    pub fn check(&self) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.eps) {
            return Err(Error::option(
                "-e",
                format!("eps must be > 0, got {}", self.eps),
            ));
        }
        if !positive(self.c) {
            return Err(Error::option(
                "-c",
                format!("C must be > 0, got {}", self.c),
            ));
        }
        if !(self.p.is_finite() && self.p >= 0.0) {
            return Err(Error::option(
                "-p",
                format!("p must be >= 0, got {}", self.p),
            ));
        }
        if !(self.nu > 0.0 && self.nu <= 1.0) {
            return Err(Error::option(
                "-n",
                format!("nu must be in (0, 1], got {}", self.nu),
            ));
        }
        if !self.bias.is_finite() {
            return Err(Error::option("-B", "bias must be a finite number"));
        }
        if self.bias >= 0.0 && self.solver.is_oneclass() {
            return Err(Error::option(
                "-B",
                "a bias (-B >= 0) is not used by the one-class SVM (-s 21)",
            ));
        }
        for &(label, w) in &self.weights {
            if !positive(w) {
                return Err(Error::option(
                    format!("-w{label}"),
                    format!("weight must be > 0, got {w}"),
                ));
            }
        }
        if !self.regularize_bias {
            if self.bias != 1.0 {
                return Err(Error::option(
                    "-R",
                    "to not regularize the bias, also give -B 1",
                ));
            }
            if !matches!(
                self.solver,
                SolverType::L2rLr
                    | SolverType::L2rL2lossSvc
                    | SolverType::L1rL2lossSvc
                    | SolverType::L1rLr
                    | SolverType::L2rL2lossSvr
            ) {
                return Err(Error::option(
                    "-R",
                    "supported only for solvers 0, 2, 5, 6 and 11",
                ));
            }
        }
        Ok(())
    }
}

/// Everything `train` is told on its command line.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    pub param: Parameter,
    /// `-v n`: n-fold cross-validation instead of training.
    pub nr_fold: Option<usize>,
    /// `-C`: search for C (and p for -s 11) by cross-validation.
    pub find_parameters: bool,
    pub quiet: bool,
    /// Whether `-c` / `-p` were given (they start the search of `-C`).
    pub c_given: bool,
    pub p_given: bool,
    pub train_file: String,
    pub model_file: String,
}

/// Usage of `train`, as LIBLINEAR prints it (options only).
pub const TRAIN_USAGE: &str = "\
Usage: convnet linear train [options] training_set_file [model_file]
options:
-s type : set type of solver (default 1)
  for multi-class classification
\t 0 -- L2-regularized logistic regression (primal)
\t 1 -- L2-regularized L2-loss support vector classification (dual)
\t 2 -- L2-regularized L2-loss support vector classification (primal)
\t 3 -- L2-regularized L1-loss support vector classification (dual)
\t 4 -- support vector classification by Crammer and Singer
\t 5 -- L1-regularized L2-loss support vector classification
\t 6 -- L1-regularized logistic regression
\t 7 -- L2-regularized logistic regression (dual)
  for regression
\t11 -- L2-regularized L2-loss support vector regression (primal)
\t12 -- L2-regularized L2-loss support vector regression (dual)
\t13 -- L2-regularized L1-loss support vector regression (dual)
  for outlier detection
\t21 -- one-class support vector machine (dual)
-c cost : set the parameter C (default 1)
-p epsilon : set the epsilon in loss function of SVR (default 0.1)
-n nu : set the parameter nu of one-class SVM (default 0.5)
-e epsilon : set tolerance of termination criterion
\t-s 0 and 2
\t\t|f'(w)|_2 <= eps*min(pos,neg)/l*|f'(w0)|_2,
\t\twhere f is the primal function and pos/neg are # of
\t\tpositive/negative data (default 0.01)
\t-s 11
\t\t|f'(w)|_2 <= eps*|f'(w0)|_2 (default 0.0001)
\t-s 1, 3, 4, 7, and 21
\t\tDual maximal violation <= eps; similar to libsvm (default 0.1 except 0.01 for -s 21)
\t-s 5 and 6
\t\t|f'(w)|_1 <= eps*min(pos,neg)/l*|f'(w0)|_1,
\t\twhere f is the primal function (default 0.01)
\t-s 12 and 13
\t\t|f'(alpha)|_1 <= eps |f'(alpha0)|,
\t\twhere f is the dual function (default 0.1)
-B bias : if bias >= 0, instance x becomes [x; bias]; if < 0, no bias term added (default -1)
-R : not regularize the bias; must with -B 1 to have the bias; DON'T use this unless you know what it is
\t(for -s 0, 2, 5, 6, 11)
-wi weight: weights adjust the parameter C of different classes (see README for details)
-v n: n-fold cross validation mode
-C : find parameters (C for -s 0, 2 and C, p for -s 11)
-q : quiet mode (no outputs)
--seed n : seed of the random orders (coordinate descent, cross-validation folds; default 1)";

/// Usage of `predict`.
pub const PREDICT_USAGE: &str = "\
Usage: convnet linear predict [options] test_file model_file output_file
options:
-b probability_estimates: whether to output probability estimates, 0 or 1 (default 0); currently for logistic regression only
-q : quiet mode (no outputs)";

fn value<'a>(args: &'a [String], i: usize, option: &str) -> Result<&'a str> {
    args.get(i + 1)
        .map(String::as_str)
        .ok_or_else(|| Error::option(option, "a value is missing"))
}

fn number<T: std::str::FromStr>(s: &str, option: &str, what: &str) -> Result<T> {
    s.parse::<T>()
        .map_err(|_| Error::option(option, format!("'{s}' is not {what}")))
}

impl TrainOptions {
    /// Parses `train`'s arguments (without the program name), LIBLINEAR's way, then
    /// applies the defaults that depend on other options and checks the result.
    pub fn parse(args: &[String]) -> Result<TrainOptions> {
        let mut param = Parameter::new(SolverType::L2rL2lossSvcDual);
        let mut solver_given = false;
        let mut eps_given = None;
        let mut opts = TrainOptions {
            param: Parameter::default(),
            nr_fold: None,
            find_parameters: false,
            quiet: false,
            c_given: false,
            p_given: false,
            train_file: String::new(),
            model_file: String::new(),
        };
        let mut i = 0;
        while i < args.len() && args[i].starts_with('-') && args[i].len() > 1 {
            let opt = args[i].as_str();
            match opt {
                "-q" => opts.quiet = true,
                "-C" => opts.find_parameters = true,
                "-R" => param.regularize_bias = false,
                _ => {
                    let v = value(args, i, opt)?;
                    i += 1;
                    match opt {
                        "-s" => {
                            let code: u32 = number(v, opt, "a solver number")?;
                            param.solver = SolverType::from_code(code).ok_or_else(|| {
                                Error::option(
                                    opt,
                                    format!("unknown solver {code} (0-7, 11-13 or 21)"),
                                )
                            })?;
                            solver_given = true;
                        }
                        "-c" => {
                            param.c = number(v, opt, "a number")?;
                            opts.c_given = true;
                        }
                        "-p" => {
                            param.p = number(v, opt, "a number")?;
                            opts.p_given = true;
                        }
                        "-n" => param.nu = number(v, opt, "a number")?,
                        "-e" => eps_given = Some(number(v, opt, "a number")?),
                        "-B" => param.bias = number(v, opt, "a number")?,
                        "-v" => {
                            let n: usize = number(v, opt, "a whole number")?;
                            if n < 2 {
                                return Err(Error::option(
                                    opt,
                                    "n-fold cross validation: n must >= 2",
                                ));
                            }
                            opts.nr_fold = Some(n);
                        }
                        "--seed" => param.seed = number(v, opt, "a whole number")?,
                        _ if opt.starts_with("-w") => {
                            let label: i32 = number(&opt[2..], opt, "-w followed by a label")?;
                            param.weights.push((label, number(v, opt, "a number")?));
                        }
                        _ => return Err(Error::option(opt, "unknown option")),
                    }
                }
            }
            i += 1;
        }
        let rest = &args[i..];
        let train_file = rest
            .first()
            .ok_or_else(|| Error::option("training_set_file", "is missing"))?;
        if rest.len() > 2 {
            return Err(Error::option(
                rest[2].clone(),
                "unexpected argument after model_file",
            ));
        }
        opts.train_file = train_file.clone();
        opts.model_file = match rest.get(1) {
            Some(m) => m.clone(),
            None => {
                let base = train_file.rsplit('/').next().unwrap_or(train_file);
                format!("{base}.model")
            }
        };
        if opts.find_parameters {
            opts.nr_fold.get_or_insert(5);
            if !solver_given {
                param.solver = SolverType::L2rL2lossSvc;
            } else if !matches!(
                param.solver,
                SolverType::L2rLr | SolverType::L2rL2lossSvc | SolverType::L2rL2lossSvr
            ) {
                return Err(Error::option(
                    "-C",
                    "Warm-start parameter search only available for -s 0, -s 2 and -s 11",
                ));
            }
        }
        param.eps = eps_given.unwrap_or(param.solver.default_eps());
        param.check()?;
        opts.param = param;
        Ok(opts)
    }
}

/// Everything `predict` is told on its command line.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictOptions {
    pub probability: bool,
    pub quiet: bool,
    pub test_file: String,
    pub model_file: String,
    pub output_file: String,
}

impl PredictOptions {
    pub fn parse(args: &[String]) -> Result<PredictOptions> {
        let mut probability = false;
        let mut quiet = false;
        let mut i = 0;
        while i < args.len() && args[i].starts_with('-') && args[i].len() > 1 {
            match args[i].as_str() {
                "-q" => quiet = true,
                "-b" => {
                    let v = value(args, i, "-b")?;
                    probability = match v {
                        "0" => false,
                        "1" => true,
                        _ => return Err(Error::option("-b", format!("'{v}' is not 0 or 1"))),
                    };
                    i += 1;
                }
                other => return Err(Error::option(other, "unknown option")),
            }
            i += 1;
        }
        match &args[i..] {
            [test, model, output] => Ok(PredictOptions {
                probability,
                quiet,
                test_file: test.clone(),
                model_file: model.clone(),
                output_file: output.clone(),
            }),
            rest => Err(Error::option(
                "arguments",
                format!(
                    "expected test_file model_file output_file, got {} argument(s)",
                    rest.len()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn train(s: &str) -> Result<TrainOptions> {
        TrainOptions::parse(&args(s))
    }

    #[test]
    fn defaults_follow_liblinear() {
        let o = train("data/x.txt").unwrap();
        assert_eq!(o.param.solver, SolverType::L2rL2lossSvcDual);
        assert_eq!(o.param.eps, 0.1);
        assert_eq!(
            (o.param.c, o.param.p, o.param.nu, o.param.bias),
            (1.0, 0.1, 0.5, -1.0)
        );
        assert_eq!(o.model_file, "x.txt.model");
        assert_eq!(train("-s 0 a").unwrap().param.eps, 0.01);
        assert_eq!(train("-s 11 a").unwrap().param.eps, 0.0001);
        assert_eq!(train("-s 21 a").unwrap().param.eps, 0.01);
        assert_eq!(train("-s 13 a").unwrap().param.eps, 0.1);
        let c = train("-C a").unwrap();
        assert_eq!(
            (c.param.solver, c.nr_fold),
            (SolverType::L2rL2lossSvc, Some(5))
        );
    }

    #[test]
    fn parses_every_option() {
        let o =
            train("-s 0 -c 4 -p 0.2 -e 0.5 -B 1 -R -w1 2 -w-1 0.5 -v 3 -q --seed 9 tr m").unwrap();
        assert_eq!(o.param.solver, SolverType::L2rLr);
        assert_eq!(
            (o.param.c, o.param.p, o.param.eps, o.param.bias),
            (4.0, 0.2, 0.5, 1.0)
        );
        assert!(!o.param.regularize_bias);
        assert_eq!(o.param.weights, vec![(1, 2.0), (-1, 0.5)]);
        assert_eq!((o.nr_fold, o.quiet, o.param.seed), (Some(3), true, 9));
        assert_eq!((o.train_file.as_str(), o.model_file.as_str()), ("tr", "m"));
    }

    #[test]
    fn rejects_what_liblinear_takes_silently() {
        for bad in [
            "-s abc a",
            "-s 8 a",
            "-n 0 -s 21 a",
            "-n 1.5 -s 21 a",
            "-x 1 a",
            "-c 0 a",
            "-e -1 a",
            "-v 1 a",
            "-s 3 -C a",
            "-R a",
            "-R -B 1 -s 1 a",
            "-s 21 -B 1 a",
            "-c",
            "",
            "-w 2 a",
            "-c 1e",
            "a b c",
        ] {
            assert!(train(bad).is_err(), "accepted: {bad}");
        }
        assert!(train("-s 21 -n 1 a").is_ok());
    }

    #[test]
    fn predict_options() {
        let o = PredictOptions::parse(&args("-b 1 -q t m o")).unwrap();
        assert!(o.probability && o.quiet);
        assert!(PredictOptions::parse(&args("-b 2 t m o")).is_err());
        assert!(PredictOptions::parse(&args("t m")).is_err());
        assert!(PredictOptions::parse(&args("-z t m o")).is_err());
    }
}
