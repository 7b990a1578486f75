//! Data-parallel `convnet train` under a real `mpirun` (feature `mpi`): N = 2 and 3 ranks
//! make the update one process makes, on IDX files and on an image folder; a short run
//! ends with the one-process held-out error; a killed rank ends the job, and
//! `--continue` on another number of ranks finishes it; bad launches are clear errors.
#![cfg(feature = "mpi")]

use convnet::data::digits;
use convnet::net::load_tensors;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{convnet, digits_dir, ok, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_convnet");

/// `mpirun -np ranks` with the options this machine (2 cores, root in CI) needs.
fn mpirun(ranks: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(ranks.to_string());
    c
}

fn mpi(ranks: usize, args: &[&str]) -> Output {
    mpirun(ranks).arg(BIN).args(args).output().unwrap()
}

/// `train` options on `data` into `out`, one thread per rank, plus `extra`.
fn train_args<'a>(data: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = common::train_args(data, out, "1", extra);
    args.push("--quiet");
    args
}

/// The first `n` embedded digits of each split as PNG files, one folder per class.
fn png_folder(dir: &Path, n: usize) -> PathBuf {
    let root = dir.join("pngs");
    for split in ["train", "test"] {
        let ds = digits::split(split).unwrap();
        for i in 0..n {
            let class = root.join(split).join(&ds.classes[ds.labels[i]]);
            std::fs::create_dir_all(&class).unwrap();
            let px = &ds.images.data()[i * 784..(i + 1) * 784];
            image::GrayImage::from_raw(28, 28, px.iter().map(|&p| p as u8).collect())
                .unwrap()
                .save(class.join(format!("{i:03}.png")))
                .unwrap();
        }
    }
    root
}

fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let (t, _) = load_tensors(path).unwrap();
    let mut v: Vec<(String, Vec<f32>)> = t.into_iter().map(|(k, v)| (k, v.into_vec())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The largest difference between two models' weights relative to the largest weight
/// (a tensor's own scale would not do: after one step from zero, a bias is its
/// gradient, a sum that nearly cancels, whose rounding depends on the order).
fn relative_difference(a: &Path, b: &Path) -> f32 {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(a.len(), b.len());
    let (mut diff, mut scale) = (0f32, 0f32);
    for ((na, x), (nb, y)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        for (p, q) in x.iter().zip(y) {
            diff = diff.max((p - q).abs());
            scale = scale.max(q.abs());
        }
    }
    diff / scale
}

#[test]
fn mpi_one_step_on_2_and_3_ranks_gives_the_weights_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let idx = digits_dir(dir.path(), 60, 30);
    let pngs = png_folder(dir.path(), 60);
    // One epoch of one batch of 60 jittered digits: a single step.
    let step = ["--epochs", "1", "--batch", "60"];
    for (kind, data) in [("idx", &idx), ("png", &pngs)] {
        let one = dir.path().join(format!("{kind}-one"));
        ok(convnet(&train_args(data, &one, &step)));
        for ranks in [2, 3] {
            let out = dir.path().join(format!("{kind}-{ranks}"));
            let o = mpi(ranks, &train_args(data, &out, &step));
            let printed = ok(o);
            assert_eq!(
                printed.matches("wrote ").count(),
                1,
                "one writer: {printed}"
            );
            let d = relative_difference(
                &out.join("model.safetensors"),
                &one.join("model.safetensors"),
            );
            assert!(d < 1e-5, "{kind}, {ranks} ranks: relative difference {d}");
            // The history is the one-process run's: the same statistics over the batch.
            let h = |d: &Path| -> serde_json::Value {
                serde_json::from_slice(&std::fs::read(d.join("history.json")).unwrap()).unwrap()
            };
            let (a, b) = (h(&out), h(&one));
            assert_eq!(
                a[0]["train_top1err"], b[0]["train_top1err"],
                "{kind} {ranks}"
            );
            assert_eq!(a[0]["val_top1err"], b[0]["val_top1err"], "{kind} {ranks}");
        }
    }
}

/// The held-out top-1 error (%) after the run in `out`.
fn held_out_error(out: &Path) -> f64 {
    let h: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    let last = h.as_array().unwrap().last().unwrap().clone();
    last["val_top1err"].as_f64().unwrap() * 100.0
}

#[test]
fn mpi_two_epochs_on_2_ranks_end_with_the_one_process_error() {
    let dir = tempfile::tempdir().unwrap();
    // 120 steps: enough to learn (13.8% held-out error with one process).
    let data = digits_dir(dir.path(), 3000, 1000);
    let opts = ["--epochs", "2", "--batch", "50"];
    let one = dir.path().join("one");
    ok(convnet(&train_args(&data, &one, &opts)));
    let two = dir.path().join("two");
    ok(mpi(2, &train_args(&data, &two, &opts)));
    let (e1, e2) = (held_out_error(&one), held_out_error(&two));
    assert!(e1 < 20.0, "the short run learned: {e1}%");
    assert!((e1 - e2).abs() <= 0.5, "one process {e1}%, 2 ranks {e2}%");
}

/// The process ids of the ranks `mpirun` (pid `parent`) started, by rank.
fn ranks_of(parent: u32) -> Vec<(usize, u32)> {
    let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default();
    let mut found: Vec<(usize, u32)> = children
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter_map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let env = String::from_utf8_lossy(&env);
            let rank = env
                .split('\0')
                .find_map(|kv| kv.strip_prefix("OMPI_COMM_WORLD_RANK="))?;
            Some((rank.parse().ok()?, pid))
        })
        .collect();
    found.sort();
    found
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mpi_a_killed_rank_ends_the_job_and_continue_on_3_ranks_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits_dir(dir.path(), 300, 100);
    let out = dir.path().join("run");
    let opts = ["--epochs", "12", "--batch", "30"];
    let mut job = mpirun(2)
        .arg(BIN)
        .args(train_args(&data, &out, &opts))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = out.join("checkpoint-epoch-1.safetensors");
    wait_for("the first checkpoint", Duration::from_secs(120), || {
        first.exists()
    });
    let ranks = ranks_of(job.id());
    let victim = ranks
        .iter()
        .find(|(r, _)| *r == 1)
        .expect("rank 1's process")
        .1;
    assert!(
        job.try_wait().unwrap().is_none(),
        "the job ended before the kill"
    );
    // SAFETY: kill only sends a signal to the rank this test started.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    let killed = Instant::now();
    wait_for("the job to end", Duration::from_secs(30), || {
        job.try_wait().unwrap().is_some()
    });
    let took = killed.elapsed();
    let o = job.wait_with_output().unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("rank 1"), "the message names the rank: {err}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(!out.join("model.safetensors").exists());

    // The checkpoints left are whole; three ranks finish the run from the last one.
    let mut extra = opts.to_vec();
    extra.push("--continue");
    let printed = stdout(&mpi(3, &train_args(&data, &out, &extra)));
    assert!(printed.contains("epoch  12:"), "{printed}");
    let h: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 12);
    assert!(held_out_error(&out) < 50.0);
}

/// The stalling recipe of the diagnostics tests (MatConvNet's LeNet rate on 0..1
/// pixels): rank 0 judges its diagnostics and its stop ends every rank alike.
#[test]
fn mpi_a_stall_found_by_rank_0_stops_every_rank_and_rank_0_alone_writes_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits_dir(dir.path(), 600, 200);
    let out = dir.path().join("run");
    let stall = [
        "--batch",
        "10",
        "--lr",
        "0.001",
        "--normalize",
        "unit",
        "--epochs",
        "1",
        "--check-every",
        "50",
        "--stop-on-stall",
        "--diagnose",
    ];
    let o = mpi(2, &train_args(&data, &out, &stall));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let stops = err.matches("convnet: error: training stopped at epoch 1, batch 50, because it stalls: layer 'loss': the objective is not falling").count();
    assert_eq!(stops, 1, "one rank prints the stop: {err}");
    assert_eq!(err.matches("warning: ").count(), 1, "{err}");
    assert!(!err.contains("rank 1"), "no rank fails alone: {err}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("diagnostics.json")).unwrap()).unwrap();
    assert_eq!(json["findings"][0]["kind"], "objective_not_falling");
    assert_eq!(
        json["objectives"][0]["batches"].as_array().unwrap().len(),
        50
    );
    assert!(out.join("diagnostics.png").is_file());
    // Nothing but rank 0's files: no temporary left by a second writer.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["diagnostics.json", "diagnostics.png"]);
}

#[test]
fn mpi_bad_launches_are_clear_errors_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits_dir(dir.path(), 60, 30);
    let out = dir.path().join("run");
    let o = mpi(
        3,
        &train_args(&data, &out, &["--epochs", "1", "--batch", "20"]),
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(
        err.matches("convnet: error: batch size 20 does not split over 3 ranks: give a multiple of 3 (for example --batch 18 or 21)").count(),
        1,
        "{err}"
    );
    // Different options on different ranks (an MPMD launch).
    let a = train_args(&data, &out, &["--epochs", "1", "--batch", "30"]);
    let b = train_args(&data, &out, &["--epochs", "2", "--batch", "30"]);
    let o = mpirun(1)
        .arg(BIN)
        .args(&a)
        .args([":", "-np", "1", BIN])
        .args(&b)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(
        err.matches("convnet: error: the ranks disagree on the options of `convnet train`: rank 1 differs from rank 0; launch every rank with the same command line").count(),
        1,
        "{err}"
    );
    assert!(!out.join("checkpoint-epoch-1.safetensors").exists());
}

#[test]
fn mpi_bench_allreduce_reports_each_size() {
    let o = mpi(2, &["bench", "allreduce", "--nets", "lenet", "--reps", "2"]);
    let printed = ok(o);
    let result = printed.lines().find(|l| l.starts_with("RESULT")).unwrap();
    assert!(result.starts_with("RESULT ranks=2 lenet_ms="), "{printed}");
    let gbps: f64 = result.rsplit('=').next().unwrap().parse().unwrap();
    assert!(gbps > 0.0, "{result}");
}
