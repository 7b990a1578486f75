//! Data-parallel training through the gradient-exchange interface, without MPI: ranks
//! are threads of this process joined by an in-memory exchange. N ranks must make the
//! update one process makes on the same global batches, end with identical models, and
//! turn bad launches into errors every rank reports alike.

use convnet::data::dataset::Dataset;
use convnet::data::digits;
use convnet::data::jitter::Jitter;
use convnet::data::normalize::Normalization;
use convnet::data::shard::Shard;
use convnet::net::{zoo, Network, Param};
use convnet::train::exchange::agree;
use convnet::train::{train_with, GradientExchange, NoExchange, Schedule, SolverKind};
use convnet::train::{TrainOptions, TrainRun};
use convnet::{Error, Result, Tensor};
use std::sync::{Arc, Barrier, Mutex};

/// What the threads of one run share: a slot per rank and a barrier.
struct Hub {
    slots: Mutex<Vec<Vec<f64>>>,
    barrier: Barrier,
}

/// Rank `rank` of an in-memory run: sums go through the hub, each rank adding the
/// slots in rank order so that every rank gets the same bits.
struct Local {
    hub: Arc<Hub>,
    shard: Shard,
    /// The gradients handed over in this step, in hand-over order.
    pending: Vec<(String, Vec<f32>)>,
}

impl Local {
    fn reduce(&mut self, mine: Vec<f64>) -> Vec<Vec<f64>> {
        self.hub.slots.lock().unwrap()[self.shard.rank] = mine;
        self.hub.barrier.wait();
        let all = self.hub.slots.lock().unwrap().clone();
        self.hub.barrier.wait();
        all
    }
}

impl GradientExchange for Local {
    fn shard(&self) -> Shard {
        self.shard
    }
    fn ready(&mut self, params: &[&Param]) -> Result<()> {
        self.pending.extend(
            params
                .iter()
                .map(|p| (p.name.clone(), p.grad.data().to_vec())),
        );
        Ok(())
    }
    fn finish(&mut self, net: &mut Network, sums: &mut [f64]) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let mut flat: Vec<f64> = pending
            .iter()
            .flat_map(|(_, g)| g.iter().map(|&v| v as f64))
            .collect();
        flat.extend_from_slice(sums);
        self.sum(&mut flat)?;
        sums.copy_from_slice(&flat[flat.len() - sums.len()..]);
        let mut rest = &flat[..];
        for (name, g) in pending {
            let (mine, next) = rest.split_at(g.len());
            let p = net.params_mut().find(|p| p.name == name).unwrap();
            for (d, &s) in p.grad.data_mut().iter_mut().zip(mine) {
                *d = s as f32;
            }
            rest = next;
        }
        Ok(())
    }
    fn sum(&mut self, values: &mut [f64]) -> Result<()> {
        let all = self.reduce(values.to_vec());
        for (i, v) in values.iter_mut().enumerate() {
            *v = all.iter().map(|s| s[i]).sum();
        }
        Ok(())
    }
    fn all_gather(&mut self, value: u64) -> Result<Vec<u64>> {
        let all = self.reduce(vec![value as f64]);
        Ok(all.iter().map(|s| s[0] as u64).collect())
    }
}

/// The first `n` embedded training digits.
fn digits(n: usize) -> Dataset {
    let d = digits::train().unwrap();
    let m = 28 * 28;
    let images = Tensor::from_vec(&[n, 1, 28, 28], d.images.data()[..n * m].to_vec()).unwrap();
    Dataset::new(images, d.labels[..n].to_vec(), d.classes).unwrap()
}

fn options(batch: usize) -> TrainOptions {
    TrainOptions {
        epochs: 1,
        batch_size: batch,
        schedule: Schedule::Constant { lr: 0.05 },
        solver: SolverKind::Sgd { momentum: 0.9 },
        weight_decay: 0.002,
        seed: 3,
        jitter: Jitter::digits(),
        out_dir: None,
        resume: false,
        diagnose: Default::default(),
        keep_checkpoints: 0,
    }
}

/// Runs `f` on `ranks` threads, each with its rank's exchange; the results by rank.
fn on_ranks<T: Send>(ranks: usize, f: impl Fn(&mut Local) -> T + Sync) -> Vec<T> {
    let hub = Arc::new(Hub {
        slots: Mutex::new(vec![Vec::new(); ranks]),
        barrier: Barrier::new(ranks),
    });
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..ranks)
            .map(|rank| {
                let (hub, f) = (hub.clone(), &f);
                s.spawn(move || {
                    f(&mut Local {
                        hub,
                        shard: Shard::new(rank, ranks).unwrap(),
                        pending: Vec::new(),
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Trains `net` (a zoo name) with one thread-rank per data set (rank r reads
/// `data[r]`), each with `opts`; every rank's network and outcome. One data set:
/// one process, without an exchange.
fn run(net: &str, data: &[&Dataset], opts: TrainOptions) -> Vec<(Network, Result<TrainRun>)> {
    let desc = zoo::get(net).unwrap();
    let norm = Normalization::per_channel(data[0]).unwrap();
    on_ranks(data.len(), |ex| {
        let mut network = Network::from_desc(&desc, 1).unwrap();
        let set = Arc::new(data[ex.shard().rank].clone());
        let mut no = NoExchange;
        let exchange: &mut dyn GradientExchange = if data.len() == 1 { &mut no } else { ex };
        let none = None::<Dataset>;
        let r = train_with(&mut network, set, none, &norm, &opts, exchange, &mut |_| {});
        (network, r)
    })
}

/// The largest difference between two networks' weights relative to the largest
/// weight of `b` (not to each tensor's own: a bias that starts at zero is a sum of
/// gradients that nearly cancel, whose rounding depends on the order of the sum).
fn max_relative_difference(a: &Network, b: &Network) -> f32 {
    let (mut diff, mut scale) = (0f32, 0f32);
    for ((_, x), (_, y)) in a.named_tensors().iter().zip(b.named_tensors()) {
        for (p, q) in x.data().iter().zip(y.data()) {
            diff = diff.max((p - q).abs());
            scale = scale.max(q.abs());
        }
    }
    diff / scale
}

#[test]
fn exchange_n_ranks_update_as_one_process_on_the_same_batches() {
    // 61 digits in batches of 12: five full batches, then one image, which leaves all
    // ranks but the last without any.
    let data = digits(61);
    let one = run("lenet", &[&data], options(12));
    let one_run = one[0].1.as_ref().unwrap();
    for ranks in [2, 3] {
        let many = run("lenet", &vec![&data; ranks], options(12));
        for (rank, (net, r)) in many.iter().enumerate() {
            let r = r.as_ref().unwrap();
            let d = max_relative_difference(net, &one[0].0);
            assert!(
                d < 1e-5,
                "{ranks} ranks, rank {rank}: relative difference {d}"
            );
            let (h, h1) = (&r.history[0], &one_run.history[0]);
            assert!((h.train_objective - h1.train_objective).abs() < 1e-4 * h1.train_objective);
            assert_eq!(h.train_top1err, h1.train_top1err);
        }
        let first = convnet::train::exchange::weights_checksum(&many[0].0);
        for (net, _) in &many[1..] {
            assert_eq!(convnet::train::exchange::weights_checksum(net), first);
        }
    }
}

#[test]
fn exchange_batch_normalised_ranks_end_with_one_model() {
    // Each rank normalises by its own batch moments; the running moments are averaged
    // after the epoch, so every rank holds the same model.
    let data = digits(48);
    let many = run("lenet-bn", &[&data, &data], options(12));
    let sums: Vec<u64> = many
        .iter()
        .map(|(n, r)| {
            assert!(r.is_ok(), "{:?}", r.as_ref().err());
            convnet::train::exchange::weights_checksum(n)
        })
        .collect();
    assert_eq!(sums[0], sums[1]);
    let one = run("lenet-bn", &[&data], options(12));
    // Moments of 6 images per rank are not those of 12: not the one-process model.
    assert!(max_relative_difference(&many[0].0, &one[0].0) > 1e-3);
}

#[test]
fn exchange_bad_launches_fail_on_every_rank_alike() {
    let data = digits(36);
    for (_, r) in run("lenet", &[&data, &data, &data], options(10)) {
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Distributed(_)), "{e}");
        assert!(e.to_string().contains("does not split over 3 ranks"), "{e}");
    }
    // Rank 1 given other data: every rank stops before training.
    for (_, r) in run("lenet", &[&data, &digits(30)], options(6)) {
        assert_eq!(
            r.unwrap_err().to_string(),
            "the ranks disagree on the training data: rank 1 differs from rank 0"
        );
    }
}

#[test]
fn exchange_agree_names_the_ranks_that_differ() {
    let values = [7u64, 8, 7, 9];
    let said = on_ranks(4, |ex| {
        let mine = values[ex.shard().rank];
        agree(ex, "the weights", mine, "; hint").map_err(|e| e.to_string())
    });
    let expected = "the ranks disagree on the weights: ranks 1, 3 differ from rank 0; hint";
    assert!(
        said.iter().all(|r| r.as_ref().unwrap_err() == expected),
        "{said:?}"
    );
    let said = on_ranks(2, |ex| {
        let rank = ex.shard().rank as u64;
        agree(ex, "x", rank, "").map_err(|e| e.to_string())
    });
    assert!(said[1]
        .as_ref()
        .unwrap_err()
        .ends_with("rank 1 differs from rank 0"));
    assert!(on_ranks(3, |ex| agree(ex, "x", 5, "").is_ok())
        .iter()
        .all(|&ok| ok));
}

/// `data`'s labels and classes on blank images: the same data set to the ranks'
/// fingerprint (which does not read pixels), but nothing to learn from.
fn blank_like(data: &Dataset) -> Dataset {
    let images = Tensor::zeros(data.images.shape()).unwrap();
    Dataset::new(images, data.labels.clone(), data.classes.clone()).unwrap()
}

#[test]
fn exchange_rank_0_alone_decides_a_stall_and_every_rank_takes_its_decision() {
    // Rank r trains on data[r]: the ranks whose share is blank see an objective that
    // does not fall; the digits' share learns. Weights that move do not excuse an
    // objective here, so only the ranks given blanks would find a stall by themselves.
    let data = digits(600);
    let blank = blank_like(&data);
    let mut opts = options(10);
    opts.schedule = Schedule::Constant { lr: 0.01 };
    opts.diagnose.stop_on_stall = true;
    opts.diagnose.limits.still_ratio = f64::INFINITY;
    // Rank 0 learns: rank 1's own finding must not stop anyone.
    for (rank, (_, r)) in run("lenet-bn", &[&data, &blank], opts.clone())
        .iter()
        .enumerate()
    {
        assert!(r.is_ok(), "rank {rank}: {:?}", r.as_ref().err());
    }
    // Rank 0 stalls: every rank stops at its batch, the learning rank 1 too.
    let stopped = run("lenet-bn", &[&blank, &data], opts);
    for (rank, (_, r)) in stopped.iter().enumerate() {
        match r {
            Err(Error::Stalled { epoch, batch, .. }) => {
                assert_eq!((*epoch, *batch), (1, 60), "rank {rank}")
            }
            other => panic!("rank {rank}: {:?}", other.as_ref().err()),
        }
    }
}
