//! LIBLINEAR's training driver: class grouping in order of first appearance, binary and
//! one-vs-rest problems (the latter solved in parallel, each independent of the others,
//! so results do not depend on the thread count), Crammer-Singer, regression and
//! one-class models; cross-validation and the warm-started search for C (and p).

use crate::error::{Error, Result};
use crate::model::Model;
use crate::options::{Parameter, SolverType};
use crate::problem::{select_rows, Problem};
use crate::solver::{self, newton, SolveInfo, SolverParams, SubProblem};
use crate::sparse::Csr;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

/// A model and what its solvers reported, one entry per binary (or regression,
/// one-class, Crammer-Singer) problem solved: `infos` from the requested solver,
/// `switched` from the primal Newton solver that LIBLINEAR runs after -s 1, 7 or 12
/// reach their iteration limit (`None` where it did not).
#[derive(Clone, Debug)]
pub struct Trained {
    pub model: Model,
    pub infos: Vec<SolveInfo>,
    pub switched: Vec<Option<SolveInfo>>,
}

impl Trained {
    fn single(model: Model, info: SolveInfo) -> Trained {
        Trained {
            model,
            infos: vec![info],
            switched: vec![None],
        }
    }

    fn single_switched(model: Model, (info, sw): (SolveInfo, Option<SolveInfo>)) -> Trained {
        Trained {
            model,
            infos: vec![info],
            switched: vec![sw],
        }
    }
}

/// Trains a model on `prob` with `param` (LIBLINEAR's `train`).
pub fn train(prob: &Problem, param: &Parameter) -> Result<Model> {
    Ok(train_from(prob, param, None)?.model)
}

/// Trains from the initial weights `init` (LIBLINEAR's `init_sol`, in the model's
/// layout; only for -s 0, 2 and 11), or from zero.
pub fn train_from(prob: &Problem, param: &Parameter, init: Option<&[f64]>) -> Result<Trained> {
    param.check()?;
    if prob.n_rows() == 0 {
        return Err(Error::Data("train: the problem has no examples".into()));
    }
    if !param.regularize_bias && prob.bias != 1.0 {
        return Err(Error::option(
            "-R",
            "to not regularize the bias, also give -B 1",
        ));
    }
    let w_size = prob.x.n_cols;
    let mut model = Model {
        solver: param.solver,
        nr_class: 2,
        labels: Vec::new(),
        nr_feature: prob.n_features,
        bias: prob.bias,
        rho: 0.0,
        w: vec![0.0; w_size],
    };
    let sp = solver_params(prob, param, param.c, param.c, 0);
    if param.solver.is_regression() {
        if let Some(init) = init {
            copy_init(init, &mut model.w)?;
        }
        let info = train_one(&prob.x, &prob.y, param, &sp, &mut model.w)?;
        return Ok(Trained::single_switched(model, info));
    }
    if param.solver.is_oneclass() {
        let (info, rho) = one_class(&prob.x, &prob.y, &sp, &mut model.w)?;
        model.rho = rho;
        return Ok(Trained::single(model, info));
    }
    let groups = group_classes(&prob.y)?;
    let weighted_c = weighted_c(&groups.labels, param);
    let x = select_rows(&prob.x, &groups.perm);
    model.nr_class = groups.labels.len();
    model.labels = groups.labels.clone();
    let nr_class = model.nr_class;
    if param.solver == SolverType::McsvmCs {
        let mut class_of = Vec::with_capacity(prob.n_rows());
        for (k, &count) in groups.count.iter().enumerate() {
            class_of.extend(std::iter::repeat_n(k, count));
        }
        model.w = vec![0.0; w_size * nr_class];
        let info =
            solver::mcsvm::crammer_singer_weighted(&x, &class_of, &weighted_c, &sp, &mut model.w);
        return Ok(Trained::single(model, info));
    }
    if nr_class == 1 {
        return Err(Error::Data(format!(
            "train: all examples have the label {}; classification needs two classes",
            groups.labels[0]
        )));
    }
    if nr_class == 2 {
        let y = one_vs_rest_targets(&groups, 0);
        if let Some(init) = init {
            copy_init(init, &mut model.w)?;
        }
        let sp = solver_params(prob, param, weighted_c[0], weighted_c[1], 0);
        let info = train_one(&x, &y, param, &sp, &mut model.w)?;
        return Ok(Trained::single_switched(model, info));
    }
    if let Some(init) = init {
        if init.len() != w_size * nr_class {
            return Err(Error::Data(format!(
                "train: initial solution has {} weights, the model {}",
                init.len(),
                w_size * nr_class
            )));
        }
    }
    type Solved = (Vec<f64>, (SolveInfo, Option<SolveInfo>));
    let solved: Vec<Result<Solved>> = (0..nr_class)
        .into_par_iter()
        .map(|k| {
            let y = one_vs_rest_targets(&groups, k);
            let mut w: Vec<f64> = match init {
                Some(init) => (0..w_size).map(|j| init[j * nr_class + k]).collect(),
                None => vec![0.0; w_size],
            };
            let sp = solver_params(prob, param, weighted_c[k], param.c, k as u64);
            let info = train_one(&x, &y, param, &sp, &mut w)?;
            Ok((w, info))
        })
        .collect();
    model.w = vec![0.0; w_size * nr_class];
    let mut infos = Vec::with_capacity(nr_class);
    let mut switched = Vec::with_capacity(nr_class);
    for (k, r) in solved.into_iter().enumerate() {
        let (w, (info, sw)) = r?;
        for (j, v) in w.into_iter().enumerate() {
            model.w[j * nr_class + k] = v;
        }
        infos.push(info);
        switched.push(sw);
    }
    Ok(Trained {
        model,
        infos,
        switched,
    })
}

fn copy_init(init: &[f64], w: &mut [f64]) -> Result<()> {
    if init.len() != w.len() {
        return Err(Error::Data(format!(
            "train: initial solution has {} weights, the model {}",
            init.len(),
            w.len()
        )));
    }
    w.copy_from_slice(init);
    Ok(())
}

fn solver_params(
    prob: &Problem,
    param: &Parameter,
    c_pos: f64,
    c_neg: f64,
    k: u64,
) -> SolverParams {
    SolverParams {
        eps: param.eps,
        c_pos,
        c_neg,
        p: param.p,
        nu: param.nu,
        unregularized_bias: (!param.regularize_bias && prob.bias >= 0.0).then_some(prob.n_features),
        seed: param.seed.wrapping_add(k),
    }
}

/// Classes in order of first appearance (LIBLINEAR's `group_classes`), with -1/+1 put
/// as +1 first so that the binary model's positive side is the +1 class.
struct Groups {
    labels: Vec<i32>,
    count: Vec<usize>,
    /// Row indices grouped by class, in class order, stable within a class.
    perm: Vec<usize>,
}

fn group_classes(y: &[f64]) -> Result<Groups> {
    let mut labels: Vec<i32> = Vec::new();
    let mut count: Vec<usize> = Vec::new();
    let mut class_of = Vec::with_capacity(y.len());
    for (i, &v) in y.iter().enumerate() {
        if v.fract() != 0.0 || v.abs() > f64::from(i32::MAX) {
            return Err(Error::Data(format!(
                "train: label {v} of example {} is not an integer; classification labels \
                 must be integers (use -s 11, 12 or 13 for regression)",
                i + 1
            )));
        }
        let l = v as i32;
        let k = match labels.iter().position(|&x| x == l) {
            Some(k) => k,
            None => {
                labels.push(l);
                count.push(0);
                labels.len() - 1
            }
        };
        count[k] += 1;
        class_of.push(k);
    }
    if labels == [-1, 1] {
        labels.swap(0, 1);
        count.swap(0, 1);
        for k in class_of.iter_mut() {
            *k = 1 - *k;
        }
    }
    let mut start: Vec<usize> = count
        .iter()
        .scan(0, |s, &c| {
            let here = *s;
            *s += c;
            Some(here)
        })
        .collect();
    let mut perm = vec![0; y.len()];
    for (i, &k) in class_of.iter().enumerate() {
        perm[start[k]] = i;
        start[k] += 1;
    }
    Ok(Groups {
        labels,
        count,
        perm,
    })
}

fn one_vs_rest_targets(groups: &Groups, k: usize) -> Vec<f64> {
    let mut y = Vec::with_capacity(groups.perm.len());
    for (c, &n) in groups.count.iter().enumerate() {
        let v = if c == k { 1.0 } else { -1.0 };
        y.extend(std::iter::repeat_n(v, n));
    }
    y
}

fn weighted_c(labels: &[i32], param: &Parameter) -> Vec<f64> {
    let mut c = vec![param.c; labels.len()];
    for &(label, weight) in &param.weights {
        // LIBLINEAR only warns about a weight for an absent label; so do we (by ignoring it).
        if let Some(k) = labels.iter().position(|&l| l == label) {
            c[k] *= weight;
        }
    }
    c
}

/// Classification's primal tolerance: `eps * max(min(pos, neg), 1) / l` (LIBLINEAR's
/// `train_one`); regression keeps `eps`.
fn primal_tolerance(param: &Parameter, y: &[f64]) -> f64 {
    if param.solver.is_regression() {
        return param.eps;
    }
    let pos = y.iter().filter(|&&v| v > 0.0).count();
    let neg = y.len() - pos;
    param.eps * pos.min(neg).max(1) as f64 / y.len() as f64
}

/// One binary or regression problem, LIBLINEAR's `train_one`: the solver of
/// `param.solver`, and the switch to the primal Newton solver when -s 1, 7 or 12 reach
/// their iteration limit.
fn train_one(
    x: &Csr,
    y: &[f64],
    param: &Parameter,
    sp: &SolverParams,
    w: &mut [f64],
) -> Result<(SolveInfo, Option<SolveInfo>)> {
    let prob = SubProblem { x, y };
    let tol = primal_tolerance(param, y);
    let primal = |scale: f64| SolverParams {
        eps: tol * scale,
        ..*sp
    };
    use newton::Loss;
    let fallback = |info: SolveInfo, loss: Loss, scale: f64, w: &mut [f64]| {
        let sw = info
            .hit_max_iter
            .then(|| newton::solve(&prob, &primal(scale), loss, w));
        (info, sw)
    };
    let alone = |info: SolveInfo| (info, None);
    let info = match param.solver {
        SolverType::L2rLr => alone(newton::l2r_lr(&prob, &primal(1.0), w)),
        SolverType::L2rL2lossSvc => alone(newton::l2r_l2_svc(&prob, &primal(1.0), w)),
        SolverType::L2rL2lossSvr => alone(newton::l2r_l2_svr(&prob, &primal(1.0), w)),
        SolverType::L2rL2lossSvcDual => {
            let info = solver::dual_cd::l2r_l2_svc_dual(&prob, sp, w);
            fallback(info, Loss::SquaredHinge, 0.1, w)
        }
        SolverType::L2rL1lossSvcDual => alone(solver::dual_cd::l2r_l1_svc_dual(&prob, sp, w)),
        SolverType::L2rLrDual => {
            let info = solver::dual_cd::l2r_lr_dual(&prob, sp, w);
            fallback(info, Loss::Logistic, 0.1, w)
        }
        SolverType::L2rL2lossSvrDual => {
            let info = solver::dual_cd::l2r_l2_svr_dual(&prob, sp, w);
            fallback(info, Loss::SquaredEpsInsensitive(sp.p), 0.001, w)
        }
        SolverType::L2rL1lossSvrDual => alone(solver::dual_cd::l2r_l1_svr_dual(&prob, sp, w)),
        SolverType::L1rL2lossSvc => alone(solver::l1::l1r_l2_svc(&prob, sp, w)),
        SolverType::L1rLr => alone(solver::l1::l1r_lr(&prob, sp, w)),
        SolverType::McsvmCs | SolverType::OneclassSvm => {
            return Err(Error::Data(format!(
                "train: solver {} does not solve binary problems",
                param.solver.code()
            )))
        }
    };
    Ok(info)
}

fn one_class(x: &Csr, _y: &[f64], sp: &SolverParams, w: &mut [f64]) -> Result<(SolveInfo, f64)> {
    Ok(solver::oneclass::one_class(x, sp, w))
}

/// The random permutation of LIBLINEAR's cross-validation (`j = i + rand() % (l - i)`),
/// drawn from our seeded stream, and the fold boundaries `i * l / nr_fold`.
fn folds(l: usize, nr_fold: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed_f01d_5eed_f01d);
    let mut perm: Vec<usize> = (0..l).collect();
    for i in 0..l {
        let j = i + (rng.next_u64() % (l - i) as u64) as usize;
        perm.swap(i, j);
    }
    let start = (0..=nr_fold).map(|i| i * l / nr_fold).collect();
    (perm, start)
}

/// The training part of fold `f`: every row outside `perm[start[f]..start[f+1]]`.
fn fold_train(prob: &Problem, perm: &[usize], start: &[usize], f: usize) -> Problem {
    let rows: Vec<usize> = perm[..start[f]]
        .iter()
        .chain(&perm[start[f + 1]..])
        .copied()
        .collect();
    Problem {
        x: select_rows(&prob.x, &rows),
        y: rows.iter().map(|&i| prob.y[i]).collect(),
        bias: prob.bias,
        n_features: prob.n_features,
    }
}

/// Predictions of n-fold cross-validation for every example (LIBLINEAR's
/// `cross_validation`); more folds than examples means leave-one-out.
pub fn cross_validation(prob: &Problem, param: &Parameter, nr_fold: usize) -> Result<Vec<f64>> {
    let l = prob.n_rows();
    if nr_fold < 2 {
        return Err(Error::option("-v", "n-fold cross validation: n must >= 2"));
    }
    let nr_fold = nr_fold.min(l);
    let (perm, start) = folds(l, nr_fold, param.seed);
    let fold_preds: Vec<Result<Vec<f64>>> = (0..nr_fold)
        .into_par_iter()
        .map(|f| {
            let model = train(&fold_train(prob, &perm, &start, f), param)?;
            Ok(perm[start[f]..start[f + 1]]
                .iter()
                .map(|&i| model.predict(&prob.x, i))
                .collect())
        })
        .collect();
    let mut target = vec![0.0; l];
    for (f, preds) in fold_preds.into_iter().enumerate() {
        for (&i, p) in perm[start[f]..start[f + 1]].iter().zip(preds?) {
            target[i] = p;
        }
    }
    Ok(target)
}

/// Fraction of `pred` equal to `target`.
pub fn accuracy(pred: &[f64], target: &[f64]) -> f64 {
    let correct = pred.iter().zip(target).filter(|(p, t)| p == t).count();
    correct as f64 / target.len().max(1) as f64
}

/// Mean squared error and squared correlation coefficient, as LIBLINEAR prints them.
pub fn regression_stats(pred: &[f64], target: &[f64]) -> (f64, f64) {
    let n = target.len() as f64;
    let (mut err, mut sp, mut st, mut spp, mut stt, mut spt) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (&p, &t) in pred.iter().zip(target) {
        err += (p - t) * (p - t);
        sp += p;
        st += t;
        spp += p * p;
        stt += t * t;
        spt += p * t;
    }
    let scc =
        ((n * spt - sp * st) * (n * spt - sp * st)) / ((n * spp - sp * sp) * (n * stt - st * st));
    (err / n, scc)
}

/// One point of the search for C: the C (and p) tried and its cross-validation score
/// (accuracy in [0, 1] for classification, mean squared error for regression).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchStep {
    pub c: f64,
    pub p: f64,
    pub score: f64,
}

/// Result of LIBLINEAR's `find_parameters`.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResult {
    pub best_c: f64,
    /// Best p for -s 11; `None` otherwise.
    pub best_p: Option<f64>,
    pub best_score: f64,
    pub steps: Vec<SearchStep>,
    /// Whether some sweep over C ended at the maximum C rather than by saturation.
    pub max_c_reached: bool,
}

/// LIBLINEAR 2.50's `find_parameters`: for -s 0 and 2 a sweep of C from `start_c` (or
/// from a small C computed from the data) doubling up to 1024, each fold warm-started
/// from its previous solution, stopping after 5 sweeps in which no fold's solution
/// changed; for -s 11 the same sweep (up to 2^20) for each of 20 values of p.
pub fn find_parameters(
    prob: &Problem,
    param: &Parameter,
    nr_fold: usize,
    start_c: Option<f64>,
    start_p: Option<f64>,
) -> Result<SearchResult> {
    param.check()?;
    let l = prob.n_rows();
    if nr_fold < 2 {
        return Err(Error::option("-v", "n-fold cross validation: n must >= 2"));
    }
    if l == 0 {
        return Err(Error::Data(
            "find parameters: the problem has no examples".into(),
        ));
    }
    let nr_fold = nr_fold.min(l);
    let (perm, start) = folds(l, nr_fold, param.seed);
    let subs: Vec<Problem> = (0..nr_fold)
        .map(|f| fold_train(prob, &perm, &start, f))
        .collect();
    let cv = FoldSet {
        prob,
        perm: &perm,
        start: &start,
        subs: &subs,
    };
    match param.solver {
        SolverType::L2rLr | SolverType::L2rL2lossSvc => {
            let max_c = 1024.0;
            let sc = start_c
                .unwrap_or_else(|| calc_start_c(prob, param))
                .min(max_c);
            let mut steps = Vec::new();
            let (best_c, best_score, reached) = cv.sweep_c(param, sc, max_c, &mut steps)?;
            Ok(SearchResult {
                best_c,
                best_p: None,
                best_score,
                steps,
                max_c_reached: reached,
            })
        }
        SolverType::L2rL2lossSvr => {
            let max_p = prob.y.iter().fold(0.0f64, |m, &v| m.max(v.abs()));
            let num_p_steps = 20usize;
            let max_c = 1048576.0;
            let mut i = num_p_steps - 1;
            if let Some(sp) = start_p.filter(|&p| p > 0.0) {
                i = i.min((sp / (max_p / num_p_steps as f64)) as usize);
            }
            let mut result = SearchResult {
                best_c: 0.0,
                best_p: Some(-1.0),
                best_score: f64::INFINITY,
                steps: Vec::new(),
                max_c_reached: false,
            };
            for i in (0..=i).rev() {
                let mut p = param.clone();
                p.p = i as f64 * max_p / num_p_steps as f64;
                let sc = start_c.unwrap_or_else(|| calc_start_c(prob, &p)).min(max_c);
                let (c, score, reached) = cv.sweep_c(&p, sc, max_c, &mut result.steps)?;
                result.max_c_reached |= reached;
                if score < result.best_score {
                    result.best_p = Some(p.p);
                    result.best_c = c;
                    result.best_score = score;
                }
            }
            Ok(result)
        }
        other => Err(Error::option(
            "-C",
            format!(
                "parameter search is only available for -s 0, -s 2 and -s 11, not -s {}",
                other.code()
            ),
        )),
    }
}

/// LIBLINEAR's `calc_start_C`: a C small enough that the solution is nearly zero,
/// rounded down to a power of two.
fn calc_start_c(prob: &Problem, param: &Parameter) -> f64 {
    let l = prob.n_rows() as f64;
    let max_xtx = (0..prob.n_rows())
        .map(|i| prob.x.sq_norm(i))
        .fold(0.0f64, f64::max);
    let min_c = match param.solver {
        SolverType::L2rLr => 1.0 / (l * max_xtx),
        SolverType::L2rL2lossSvc => 1.0 / (2.0 * l * max_xtx),
        SolverType::L2rL2lossSvr => {
            let delta2 = 0.1;
            let sum_y: f64 = prob.y.iter().map(|v| v.abs()).sum();
            let loss: f64 = prob
                .y
                .iter()
                .map(|v| (v.abs() - param.p).max(0.0).powi(2))
                .sum();
            if loss > 0.0 {
                delta2 * delta2 * loss / (8.0 * sum_y * sum_y * max_xtx)
            } else {
                f64::INFINITY
            }
        }
        _ => 1.0,
    };
    2f64.powf((min_c.ln() / 2f64.ln()).floor())
}

struct FoldSet<'a> {
    prob: &'a Problem,
    perm: &'a [usize],
    start: &'a [usize],
    subs: &'a [Problem],
}

impl FoldSet<'_> {
    /// LIBLINEAR's `find_parameter_C`; returns the best C, its score and whether the
    /// sweep ran past `max_c`.
    fn sweep_c(
        &self,
        param: &Parameter,
        start_c: f64,
        max_c: f64,
        steps: &mut Vec<SearchStep>,
    ) -> Result<(f64, f64, bool)> {
        let regression = param.solver.is_regression();
        let mut best_score = if regression { f64::INFINITY } else { 0.0 };
        let mut best_c = start_c;
        let mut prev_w: Vec<Option<Vec<f64>>> = vec![None; self.subs.len()];
        let mut num_unchanged_w: i32 = 0;
        let mut p = param.clone();
        p.c = start_c;
        let l = self.prob.n_rows();
        while p.c <= max_c {
            let results: Vec<Result<(Model, Vec<f64>)>> = (0..self.subs.len())
                .into_par_iter()
                .map(|f| {
                    let trained = train_from(&self.subs[f], &p, prev_w[f].as_deref())?;
                    let preds = self.perm[self.start[f]..self.start[f + 1]]
                        .iter()
                        .map(|&i| trained.model.predict(&self.prob.x, i))
                        .collect();
                    Ok((trained.model, preds))
                })
                .collect();
            let mut target = vec![0.0; l];
            for (f, r) in results.into_iter().enumerate() {
                let (model, preds) = r?;
                for (&i, v) in self.perm[self.start[f]..self.start[f + 1]]
                    .iter()
                    .zip(preds)
                {
                    target[i] = v;
                }
                if let Some(prev) = &prev_w[f] {
                    if num_unchanged_w >= 0 {
                        let diff: f64 = prev
                            .iter()
                            .zip(&model.w)
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum::<f64>()
                            .sqrt();
                        if diff > 1e-15 {
                            num_unchanged_w = -1;
                        }
                    }
                }
                prev_w[f] = Some(model.w);
            }
            let score = if regression {
                regression_stats(&target, &self.prob.y).0
            } else {
                accuracy(&target, &self.prob.y)
            };
            let better = if regression {
                score < best_score
            } else {
                score > best_score
            };
            if better {
                best_c = p.c;
                best_score = score;
            }
            steps.push(SearchStep {
                c: p.c,
                p: p.p,
                score,
            });
            num_unchanged_w += 1;
            if num_unchanged_w == 5 {
                break;
            }
            p.c *= 2.0;
        }
        Ok((best_c, best_score, p.c > max_c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_in_order_of_first_appearance() {
        let g = group_classes(&[3.0, 1.0, 3.0, 2.0, 1.0]).unwrap();
        assert_eq!(g.labels, vec![3, 1, 2]);
        assert_eq!(g.count, vec![2, 2, 1]);
        assert_eq!(g.perm, vec![0, 2, 1, 4, 3]);
        let g = group_classes(&[-1.0, 1.0, -1.0]).unwrap();
        assert_eq!(g.labels, vec![1, -1]);
        assert_eq!(g.perm, vec![1, 0, 2]);
        assert!(group_classes(&[1.5, 2.0]).is_err());
    }

    #[test]
    fn folds_cover_every_row_once() {
        let (mut perm, start) = folds(10, 3, 7);
        assert_eq!(start, vec![0, 3, 6, 10]);
        perm.sort();
        assert_eq!(perm, (0..10).collect::<Vec<_>>());
    }
}
