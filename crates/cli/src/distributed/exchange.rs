//! The gradient exchange on MPI: gradients are copied into buckets as backward hands
//! them over (in backward order, PyTorch DDP's layout: a small first bucket, then
//! buckets of about 25 MB), and each full bucket is summed by `MPI_Allreduce` on a
//! communication thread while backward goes on. `finish` waits for the sums and copies
//! them back. Measured on 2 ranks of a 2-core machine (docs/scaling.md): the thread
//! keeps communication behind the remaining backward, which the immediate collectives
//! of Open MPI 4 do not (they progress only inside MPI calls).

use convnet::data::shard::Shard;
use convnet::net::{Network, Param};
use convnet::train::exchange::Buckets;
use convnet::train::GradientExchange;
use convnet::{Error, Result};
use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::datatype::Equivalence;
use mpi::request::{Request, Scope};
use mpi::topology::{Communicator, SimpleCommunicator};
use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A bucket on its way to the communication thread and back.
struct Bucket {
    send: Vec<f32>,
    recv: Vec<f32>,
}

/// What an exchange measured, for the report at the end of a run.
#[derive(Clone, Debug, Default)]
pub struct ExchangeStats {
    pub steps: usize,
    /// Floats per step and buckets per step (of the last step).
    pub floats: usize,
    pub buckets: usize,
    /// Time the training thread waited in `finish` for the sums.
    pub waited: Duration,
}

/// One rank's exchange over `MPI_COMM_WORLD`.
pub struct MpiExchange {
    shard: Shard,
    world: SimpleCommunicator,
    jobs: Option<Sender<Bucket>>,
    done: Receiver<Bucket>,
    thread: Option<JoinHandle<()>>,
    buckets: Buckets,
    /// Start each bucket as soon as it is full (off: all at the end of backward).
    overlap: bool,
    filling: Vec<f32>,
    /// Buckets filled in this step: sent, or kept back while `overlap` is off.
    sent: usize,
    held: Vec<Vec<f32>>,
    /// Each handed-over parameter: (bucket, offset).
    slots: HashMap<String, (usize, usize)>,
    spare: Vec<Vec<f32>>,
    stats: ExchangeStats,
}

impl MpiExchange {
    /// The exchange of this process; MPI must be initialised with at least
    /// `MPI_THREAD_SERIALIZED` (only one thread calls MPI at a time: the
    /// communication thread between `ready` and `finish`, the caller otherwise).
    pub fn new(world: SimpleCommunicator, buckets: Buckets, overlap: bool) -> Result<Self> {
        let shard = Shard {
            rank: world.rank() as usize,
            ranks: world.size() as usize,
        };
        let (jobs, todo) = channel::<Bucket>();
        let (finished, done) = channel();
        let thread = std::thread::Builder::new()
            .name("convnet-allreduce".into())
            .spawn(move || {
                let world = SimpleCommunicator::world();
                for mut b in todo {
                    b.recv.resize(b.send.len(), 0.0);
                    all_reduce_sum(&world, &b.send, &mut b.recv);
                    if finished.send(b).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Invalid(format!("cannot start the all-reduce thread: {e}")))?;
        Ok(MpiExchange {
            shard,
            world,
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            buckets,
            overlap,
            filling: Vec::new(),
            sent: 0,
            held: Vec::new(),
            slots: HashMap::new(),
            spare: Vec::new(),
            stats: ExchangeStats::default(),
        })
    }

    pub fn stats(&self) -> &ExchangeStats {
        &self.stats
    }

    /// Closes the bucket being filled: sends it to be summed, or keeps it for the end.
    fn close_bucket(&mut self) -> Result<()> {
        let fresh = self.spare.pop().unwrap_or_default();
        let full = std::mem::replace(&mut self.filling, fresh);
        if self.overlap {
            self.send(full)?;
        } else {
            self.held.push(full);
        }
        Ok(())
    }

    fn send(&mut self, send: Vec<f32>) -> Result<()> {
        let recv = self.spare.pop().unwrap_or_default();
        let jobs = self.jobs.as_ref().ok_or_else(thread_gone)?;
        jobs.send(Bucket { send, recv })
            .map_err(|_| thread_gone())?;
        self.sent += 1;
        Ok(())
    }
}

/// Sums `send` over the ranks into `recv`.
pub fn all_reduce_sum<T: Equivalence>(world: &SimpleCommunicator, send: &[T], recv: &mut [T]) {
    mpi::request::scope(|scope| {
        wait_gently(world.immediate_all_reduce_into(scope, send, recv, SystemOperation::sum()))
    });
}

/// Waits for `req` without taking a core: Open MPI waits in a blocking collective by
/// polling flat out, which takes the core from this rank's training threads (and
/// from the other ranks on a shared or oversubscribed machine); testing a
/// non-blocking one, then napping between tests once the first 20 us have passed,
/// costs next to nothing while the other ranks catch up.
fn wait_gently<'a, D: ?Sized, S: Scope<'a>>(mut req: Request<'a, D, S>) {
    const SPIN: Duration = Duration::from_micros(20);
    let started = Instant::now();
    loop {
        req = match req.test() {
            Ok(_) => return,
            Err(r) => r,
        };
        if started.elapsed() < SPIN {
            std::thread::yield_now();
        } else {
            std::thread::sleep(SPIN);
        }
    }
}

fn thread_gone() -> Error {
    Error::Invalid("the all-reduce thread has stopped".into())
}

impl GradientExchange for MpiExchange {
    fn shard(&self) -> Shard {
        self.shard
    }

    fn ready(&mut self, params: &[&Param]) -> Result<()> {
        for p in params {
            let bucket = self.sent + self.held.len();
            self.slots
                .insert(p.name.clone(), (bucket, self.filling.len()));
            self.filling.extend_from_slice(p.grad.data());
            if self.buckets.full(bucket, self.filling.len()) {
                self.close_bucket()?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, net: &mut Network, step_sums: &mut [f64]) -> Result<()> {
        if !self.filling.is_empty() {
            self.close_bucket()?;
        }
        let started = Instant::now();
        for b in std::mem::take(&mut self.held) {
            self.send(b)?;
        }
        let mut sums = Vec::with_capacity(self.sent);
        for _ in 0..self.sent {
            sums.push(self.done.recv().map_err(|_| thread_gone())?);
        }
        // The ranks meet here anyway: the statistics cost one small message more.
        self.sum(step_sums)?;
        self.stats.waited += started.elapsed();
        self.stats.steps += 1;
        self.stats.buckets = self.sent;
        self.stats.floats = sums.iter().map(|b| b.send.len()).sum();
        for p in net.params_mut() {
            let (b, at) = self.slots.get(&p.name).copied().ok_or_else(|| {
                Error::Invalid(format!(
                    "gradient exchange: parameter '{}' was not handed over",
                    p.name
                ))
            })?;
            let g = p.grad.data_mut();
            g.copy_from_slice(&sums[b].recv[at..at + g.len()]);
        }
        self.slots.clear();
        self.sent = 0;
        for mut b in sums {
            b.send.clear();
            b.recv.clear();
            self.spare.extend([b.send, b.recv]);
        }
        Ok(())
    }

    fn sum(&mut self, values: &mut [f64]) -> Result<()> {
        let mine = values.to_vec();
        all_reduce_sum(&self.world, &mine, values);
        Ok(())
    }

    fn all_gather(&mut self, value: u64) -> Result<Vec<u64>> {
        let mut all = vec![0u64; self.shard.ranks];
        mpi::request::scope(|scope| {
            wait_gently(
                self.world
                    .immediate_all_gather_into(scope, &value, &mut all[..]),
            )
        });
        Ok(all)
    }
}

impl Drop for MpiExchange {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
