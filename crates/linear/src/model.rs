//! LIBLINEAR's model: weights in its layout, its text file format, and prediction.

use crate::error::{Error, Result};
use crate::options::SolverType;
use crate::sparse::Csr;
use std::fmt::Write as _;
use std::path::Path;

/// A trained linear model, laid out as LIBLINEAR's `struct model`: `w` holds
/// `w_size * nr_w` values, feature-major (`w[j * nr_w + k]`), where `w_size` counts the
/// bias column and `nr_w` is 1 for binary, regression and one-class models (except
/// Crammer-Singer) and `nr_class` otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub solver: SolverType,
    pub nr_class: usize,
    /// Class labels in training order; empty for regression and one-class models.
    pub labels: Vec<i32>,
    pub nr_feature: usize,
    pub bias: f64,
    /// Offset of the one-class SVM's decision function.
    pub rho: f64,
    pub w: Vec<f64>,
}

impl Model {
    pub fn w_size(&self) -> usize {
        self.nr_feature + usize::from(self.bias >= 0.0)
    }

    pub fn nr_w(&self) -> usize {
        if self.nr_class == 2 && self.solver != SolverType::McsvmCs {
            1
        } else {
            self.nr_class
        }
    }

    /// Decision values of row `i` of `x` (columns past the model's are ignored; a bias
    /// column, when the model has one, must already be appended at `nr_feature`) and the
    /// predicted label, as LIBLINEAR's `predict_values`.
    pub fn predict_values(&self, x: &Csr, i: usize, dec: &mut Vec<f64>) -> f64 {
        let nr_w = self.nr_w();
        let n = self.w_size();
        dec.clear();
        dec.resize(nr_w, 0.0);
        let (idx, val) = x.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            let j = j as usize;
            if j < n {
                let wj = &self.w[j * nr_w..(j + 1) * nr_w];
                for (d, &wk) in dec.iter_mut().zip(wj) {
                    *d += wk * v;
                }
            }
        }
        if self.solver.is_oneclass() {
            dec[0] -= self.rho;
        }
        if self.nr_class == 2 {
            if self.solver.is_regression() {
                dec[0]
            } else if self.solver.is_oneclass() {
                if dec[0] > 0.0 {
                    1.0
                } else {
                    -1.0
                }
            } else {
                let k = if dec[0] > 0.0 { 0 } else { 1 };
                self.label(k)
            }
        } else {
            let mut best = 0;
            for (k, &d) in dec.iter().enumerate().skip(1) {
                if d > dec[best] {
                    best = k;
                }
            }
            self.label(best)
        }
    }

    fn label(&self, k: usize) -> f64 {
        self.labels.get(k).map_or(0.0, |&l| f64::from(l))
    }

    pub fn predict(&self, x: &Csr, i: usize) -> f64 {
        let mut dec = Vec::with_capacity(self.nr_class);
        self.predict_values(x, i, &mut dec)
    }

    /// Label and class probabilities (in `labels` order) of a logistic regression model,
    /// with LIBLINEAR's formula: a sigmoid per class, normalised for multi-class.
    pub fn predict_probability(&self, x: &Csr, i: usize, prob: &mut Vec<f64>) -> Result<f64> {
        if !self.solver.is_probability() {
            return Err(Error::Data(
                "probability output is only supported for logistic regression".into(),
            ));
        }
        let label = self.predict_values(x, i, prob);
        for p in prob.iter_mut() {
            *p = 1.0 / (1.0 + (-*p).exp());
        }
        if self.nr_class == 2 {
            prob.push(1.0 - prob[0]);
        } else {
            let sum: f64 = prob.iter().sum();
            for p in prob.iter_mut() {
                *p /= sum;
            }
        }
        Ok(label)
    }

    /// The model file's text, as LIBLINEAR's `save_model` writes it.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(self.w.len() * 24 + 128);
        let _ = writeln!(s, "solver_type {}", self.solver.name());
        let _ = writeln!(s, "nr_class {}", self.nr_class);
        if !self.labels.is_empty() {
            s.push_str("label");
            for l in &self.labels {
                let _ = write!(s, " {l}");
            }
            s.push('\n');
        }
        let _ = writeln!(s, "nr_feature {}", self.nr_feature);
        let _ = writeln!(s, "bias {}", fmt_g17(self.bias));
        if self.solver.is_oneclass() {
            let _ = writeln!(s, "rho {}", fmt_g17(self.rho));
        }
        s.push_str("w\n");
        for row in self.w.chunks(self.nr_w().max(1)) {
            for v in row {
                s.push_str(&fmt_g17(*v));
                s.push(' ');
            }
            s.push('\n');
        }
        s
    }

    /// Writes the model file atomically (temporary file, then rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::libsvm::write_atomic(path.as_ref(), self.to_text().as_bytes())
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Model::parse(&text, &path.display().to_string())
    }

    /// Parses a model file in LIBLINEAR's text format.
    pub fn parse(text: &str, file: &str) -> Result<Model> {
        let mut lines = text.lines().enumerate();
        let fail = |line: usize, reason: String| Error::Model {
            file: file.to_string(),
            line,
            reason,
        };
        let (mut solver, mut nr_class, mut nr_feature, mut bias) = (None, None, None, None);
        let (mut labels, mut rho) = (Vec::new(), 0.0);
        let mut header_done = false;
        for (no, line) in lines.by_ref() {
            let line_no = no + 1;
            let mut it = line.split_whitespace();
            let Some(key) = it.next() else { continue };
            let rest: Vec<&str> = it.collect();
            let one = |what: &str| -> Result<&str> {
                match rest.as_slice() {
                    [v] => Ok(v),
                    _ => Err(fail(line_no, format!("'{key}' needs one {what}"))),
                }
            };
            let num = |s: &str| -> Result<f64> {
                s.parse::<f64>()
                    .map_err(|_| fail(line_no, format!("'{s}' is not a number")))
            };
            let count = |s: &str| -> Result<usize> {
                s.parse::<usize>()
                    .map_err(|_| fail(line_no, format!("'{s}' is not a count")))
            };
            match key {
                "solver_type" => {
                    let name = one("name")?;
                    solver =
                        Some(SolverType::from_name(name).ok_or_else(|| {
                            fail(line_no, format!("unknown solver type '{name}'"))
                        })?);
                }
                "nr_class" => nr_class = Some(count(one("count")?)?),
                "nr_feature" => nr_feature = Some(count(one("count")?)?),
                "bias" => bias = Some(num(one("value")?)?),
                "rho" => rho = num(one("value")?)?,
                "label" => {
                    labels = rest
                        .iter()
                        .map(|s| {
                            s.parse::<i32>().map_err(|_| {
                                fail(line_no, format!("label '{s}' is not an integer"))
                            })
                        })
                        .collect::<Result<_>>()?;
                }
                "w" => {
                    header_done = true;
                    break;
                }
                other => return Err(fail(line_no, format!("unknown text '{other}'"))),
            }
        }
        let missing = |what: &str| fail(0, format!("header has no '{what}' line"));
        if !header_done {
            return Err(missing("w"));
        }
        let mut model = Model {
            solver: solver.ok_or_else(|| missing("solver_type"))?,
            nr_class: nr_class.ok_or_else(|| missing("nr_class"))?,
            labels,
            nr_feature: nr_feature.ok_or_else(|| missing("nr_feature"))?,
            bias: bias.ok_or_else(|| missing("bias"))?,
            rho,
            w: Vec::new(),
        };
        let classify = !model.solver.is_regression() && !model.solver.is_oneclass();
        if classify && model.labels.len() != model.nr_class {
            return Err(fail(
                0,
                format!(
                    "{} labels for nr_class {}",
                    model.labels.len(),
                    model.nr_class
                ),
            ));
        }
        if model.nr_class < 2 && classify || model.nr_class == 0 {
            return Err(fail(0, format!("nr_class {} is too small", model.nr_class)));
        }
        let want = model.w_size() * model.nr_w();
        model.w.reserve(want);
        let mut last_line = 0;
        for (no, line) in lines {
            last_line = no + 1;
            for tok in line.split_whitespace() {
                let v = tok
                    .parse::<f64>()
                    .map_err(|_| fail(no + 1, format!("weight '{tok}' is not a number")))?;
                model.w.push(v);
            }
        }
        if model.w.len() != want {
            return Err(fail(
                last_line,
                format!(
                    "{} weights, but nr_feature {}, bias {} and {} class column(s) need {want}",
                    model.w.len(),
                    model.nr_feature,
                    model.bias,
                    model.nr_w()
                ),
            ));
        }
        Ok(model)
    }
}

/// C's `%.17g`: 17 significant digits, exponent form outside [1e-4, 1e17).
pub fn fmt_g17(v: f64) -> String {
    fmt_g(v, 17)
}

/// C's `%g` with the given precision (`%g` itself is precision 6).
pub fn fmt_g(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let p = precision.max(1);
    let e = format!("{:.*e}", p - 1, v);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_format_matches_c() {
        assert_eq!(fmt_g(90.0, 6), "90");
        assert_eq!(fmt_g(88.65, 6), "88.65");
        assert_eq!(fmt_g(1.0 / 3.0, 6), "0.333333");
        assert_eq!(fmt_g(1e-5, 6), "1e-05");
        assert_eq!(fmt_g(123456789.0, 6), "1.23457e+08");
        assert_eq!(fmt_g17(-1.0), "-1");
        assert_eq!(fmt_g17(0.1), "0.10000000000000001");
        assert_eq!(fmt_g17(1e-300), "1e-300");
        assert_eq!(fmt_g17(2.5e-7), "2.4999999999999999e-07");
    }

    #[test]
    fn model_text_round_trips() {
        let m = Model {
            solver: SolverType::L2rLr,
            nr_class: 3,
            labels: vec![2, -1, 7],
            nr_feature: 2,
            bias: 1.0,
            rho: 0.0,
            w: vec![0.1, -0.2, 0.3, 1e-20, 5.0, -6.5, 0.0, 1.0, 2.0],
        };
        let text = m.to_text();
        assert!(text.starts_with(
            "solver_type L2R_LR\nnr_class 3\nlabel 2 -1 7\nnr_feature 2\nbias 1\nw\n"
        ));
        assert_eq!(Model::parse(&text, "m").unwrap(), m);
    }

    #[test]
    fn malformed_models_are_rejected() {
        let good =
            "solver_type L2R_LR\nnr_class 2\nlabel 1 -1\nnr_feature 2\nbias -1\nw\n0.5 \n-1 \n";
        assert!(Model::parse(good, "m").is_ok());
        for bad in [
            good.replace("L2R_LR", "L2R_XX"),
            good.replace("-1 \n", ""),
            good.replace("0.5", "abc"),
            good.replace("label 1 -1\n", ""),
            good.replace("w\n", ""),
            good.replace("nr_class", "nr_klass"),
        ] {
            assert!(Model::parse(&bad, "m").is_err(), "accepted:\n{bad}");
        }
    }
}
