//! Checkpoints: after every epoch, one safetensors file with the network's tensors, the
//! solver's state and the history so far, written atomically, so that a run resumed
//! from it ends with the same model, bit for bit, as a run that was never stopped. Only
//! the newest few are kept: older ones are deleted once a newer one is safely written.

use super::solver::Solver;
use super::stats::EpochStats;
use crate::error::{Error, Result};
use crate::net::{load_tensors, save_tensors, Network};
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PREFIX: &str = "checkpoint-epoch-";
const SUFFIX: &str = ".safetensors";
const SOLVER: &str = "solver.";

/// The file of the checkpoint after `epoch` (1-based).
pub fn path(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(format!("{PREFIX}{epoch}{SUFFIX}"))
}

/// The last epoch with a checkpoint in `dir`, if any.
pub fn last_epoch(dir: &Path) -> Result<Option<usize>> {
    if !dir.exists() {
        return Ok(None);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut best = None;
    for e in entries {
        let name = e.map_err(|e| Error::io(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<usize>().ok())
        {
            best = best.max(Some(n));
        }
    }
    Ok(best)
}

/// Deletes the checkpoints in `dir` older than the newest `keep` up to epoch `newest`
/// (those of epochs `<= newest - keep`); `keep` 0 keeps them all. Call it only after
/// the checkpoint of `newest` is written, so that a crash never leaves none. Returns the
/// files deleted.
pub fn prune(dir: &Path, newest: usize, keep: usize) -> Result<Vec<PathBuf>> {
    if keep == 0 || newest <= keep {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut old = Vec::new();
    for e in entries {
        let name = e.map_err(|e| Error::io(dir, e))?.file_name();
        let epoch = name
            .to_string_lossy()
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<usize>().ok());
        if epoch.is_some_and(|e| e <= newest - keep) {
            old.push(dir.join(name));
        }
    }
    old.sort();
    for p in &old {
        std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
    }
    Ok(old)
}

/// One thing a resumed run must share with the run that wrote the checkpoint: stored in
/// its metadata under `key`; a refused resume names `option`.
#[derive(Clone, Debug, PartialEq)]
pub struct Same {
    pub key: &'static str,
    /// What the user changes it with, e.g. "--seed".
    pub option: &'static str,
    pub value: String,
}

/// What a checkpoint restores besides the network's tensors.
pub struct Resumed {
    pub epoch: usize,
    pub history: Vec<EpochStats>,
}

/// Writes the checkpoint of `epoch`; the run's `identity` (options, normalisation) is
/// kept so that a resumed run can check it continues the same run.
pub fn save(
    dir: &Path,
    epoch: usize,
    net: &Network,
    solver: &Solver,
    history: &[EpochStats],
    identity: &[Same],
) -> Result<PathBuf> {
    let mut state: Vec<(String, Tensor)> = Vec::new();
    let names: Vec<String> = net.params().map(|p| p.name.clone()).collect();
    for (p, bufs) in names.iter().zip(&solver.state) {
        for (k, buf) in solver.kind.state_names().iter().zip(bufs) {
            state.push((
                format!("{SOLVER}{p}.{k}"),
                Tensor::from_vec(&[buf.len()], buf.clone())?,
            ));
        }
    }
    let mut tensors: Vec<(&str, &Tensor)> = net.named_tensors();
    tensors.extend(state.iter().map(|(n, t)| (n.as_str(), t)));
    let mut meta: BTreeMap<String, String> = identity
        .iter()
        .map(|s| (s.key.to_string(), s.value.clone()))
        .collect();
    meta.insert("epoch".into(), epoch.to_string());
    meta.insert("solver_steps".into(), solver.steps.to_string());
    meta.insert(
        "history".into(),
        serde_json::to_string(history).map_err(|e| Error::Invalid(e.to_string()))?,
    );
    let p = path(dir, epoch);
    save_tensors(&p, &tensors, meta)?;
    Ok(p)
}

/// Restores the network's tensors and the solver's state from the checkpoint of
/// `epoch`; fails, naming the file and the option that differs, when it belongs to
/// another network or run.
pub fn load(
    dir: &Path,
    epoch: usize,
    net: &mut Network,
    solver: &mut Solver,
    identity: &[Same],
) -> Result<Resumed> {
    let p = path(dir, epoch);
    let (mut tensors, meta) = load_tensors(&p)?;
    if let Some(s) = identity.iter().find(|s| meta.get(s.key) != Some(&s.value)) {
        let values = match meta.get(s.key) {
            // Short values (a seed, a batch size) are worth showing; descriptions not.
            Some(old) if old.len() <= 60 && s.value.len() <= 60 => {
                format!(" ({old} there, {} here)", s.value)
            }
            Some(_) => String::new(),
            None => " (it records none)".into(),
        };
        return Err(Error::file(
            &p,
            None,
            format!(
                "this checkpoint was written with a different {}{values}; resume with the same options or start a new --out folder",
                s.option
            ),
        ));
    }
    let names: Vec<String> = net
        .named_tensors()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    for name in &names {
        let t = tensors
            .remove(name)
            .ok_or_else(|| Error::file(&p, None, format!("tensor '{name}' is missing")))?;
        net.set_tensor(name, t)
            .map_err(|e| Error::file(&p, None, e.to_string()))?;
    }
    let mut state = Vec::new();
    for p_ in net.params() {
        let mut bufs = Vec::new();
        for k in solver.kind.state_names() {
            let key = format!("{SOLVER}{}.{k}", p_.name);
            let t = tensors
                .remove(&key)
                .ok_or_else(|| Error::file(&p, None, format!("solver state '{key}' is missing")))?;
            bufs.push(t.into_vec());
        }
        state.push(bufs);
    }
    solver.state = state;
    let field = |k: &str| {
        meta.get(k)
            .ok_or_else(|| Error::file(&p, None, format!("metadata '{k}' is missing")))
    };
    solver.steps = field("solver_steps")?
        .parse()
        .map_err(|_| Error::file(&p, None, "metadata 'solver_steps' is not a number"))?;
    let history: Vec<EpochStats> = serde_json::from_str(field("history")?)
        .map_err(|e| Error::file(&p, None, format!("metadata 'history': {e}")))?;
    Ok(Resumed { epoch, history })
}
