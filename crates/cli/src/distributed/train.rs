//! `convnet train` as one rank of an MPI job. Every rank checks that all were given
//! the same options, trains on its share of the data, and ends alike: errors that every
//! rank finds (a batch that does not split, a disagreement) are printed by rank 0 and
//! end every rank with status 1; an error of one rank alone is printed with its rank
//! and ends the job with `MPI_Abort`, so that no rank waits for a dead one.

use super::exchange::{all_reduce_sum, MpiExchange};
use crate::cmd_train::{self, Args};
use crate::datasets;
use anyhow::Result;
use convnet::train::exchange::{agree, text_hash, Buckets};
use convnet::train::GradientExchange;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;

pub fn train(args: Args) -> Result<()> {
    let (universe, threading) = mpi::initialize_with_threading(Threading::Multiple)
        .ok_or_else(|| anyhow::anyhow!("MPI was initialised twice"))?;
    let world = universe.world();
    let rank = world.rank();
    match run(&world, threading, args) {
        Ok(()) => Ok(()),
        Err(e) if found_by_every_rank(&e) => {
            // Rank 0 prints before MPI_Finalize, which waits for every rank: once a
            // rank has exited non-zero, mpirun may end the others before they print.
            if rank == 0 {
                say(format!("convnet: error: {}", crate::chain(&e)));
            }
            drop(universe);
            std::process::exit(1)
        }
        Err(e) => {
            say(format!("convnet: error: rank {rank}: {}", crate::chain(&e)));
            world.abort(1)
        }
    }
}

/// Errors that every rank meets at the same point, so that all can end in order.
fn found_by_every_rank(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<convnet::Error>(),
            Some(
                convnet::Error::Distributed(_)
                    | convnet::Error::Diverged { .. }
                    | convnet::Error::Stalled { .. }
            )
        )
    })
}

fn run(world: &SimpleCommunicator, threading: Threading, args: Args) -> Result<()> {
    if threading < Threading::Serialized {
        return Err(convnet::Error::Distributed(format!(
            "the MPI library offers {threading:?} threading; convnet needs MPI_THREAD_SERIALIZED or more"
        ))
        .into());
    }
    let local = world.split_shared(world.rank());
    let (ranks_here, first_here) = (local.size() as usize, local.rank() == 0);
    let mut nodes = [0u64];
    all_reduce_sum(world, &[first_here as u64], &mut nodes);
    let nodes = nodes[0];
    let threads = args.threads.unwrap_or_else(|| default_threads(ranks_here));
    datasets::set_threads(Some(threads))?;
    let overlap = std::env::var("CONVNET_MPI_OVERLAP").map_or(true, |v| v != "0");
    let mut buckets = Buckets::default();
    if let Some(mib) = std::env::var("CONVNET_MPI_BUCKET_MB")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        buckets.bytes = (mib * (1 << 20) as f64) as usize;
        buckets.first_bytes = buckets.first_bytes.min(buckets.bytes);
    }
    let mut ex = MpiExchange::new(SimpleCommunicator::world(), buckets, overlap)?;
    let ranks = ex.shard().ranks;
    // The thread count may differ from rank to rank; everything else must not.
    let options = format!(
        "{:?}",
        Args {
            threads: None,
            ..args.clone()
        }
    );
    agree(
        &mut ex,
        "the options of `convnet train`",
        text_hash(&options),
        "; launch every rank with the same command line",
    )?;
    let talk = ex.shard().is_writer() && !args.quiet;
    if talk {
        say(format!(
            "data-parallel training on {ranks} ranks ({nodes} node{}), {threads} thread{} each: every batch of {} is split {} ways",
            if nodes == 1 { "" } else { "s" },
            if threads == 1 { "" } else { "s" },
            args.batch,
            ranks
        ));
    }
    cmd_train::run_on(args, &mut ex)?;
    let s = ex.stats();
    if talk && s.steps > 0 {
        say(format!(
            "all-reduce: {:.2} MB of gradients per step in {} bucket{}; training waited {:.2} ms per step for the sums ({} steps)",
            s.floats as f64 * 4.0 / 1e6,
            s.buckets,
            if s.buckets == 1 { "" } else { "s" },
            s.waited.as_secs_f64() * 1e3 / s.steps as f64,
            s.steps
        ));
    }
    Ok(())
}

/// Writes one line to the standard error in one piece, so that under mpirun it does
/// not interleave with the standard output.
fn say(text: String) {
    let line = text + "\n";
    eprint!("{line}");
}

/// Threads per rank when `--threads` is not given: the cores this rank is bound to, or
/// SLURM's cores per task, or else the node's cores shared among its ranks.
fn default_threads(ranks_here: usize) -> usize {
    if let Some(n) = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return n.max(1);
    }
    let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: sysconf only reads a system setting.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    if usable < online {
        usable
    } else {
        (usable / ranks_here.max(1)).max(1)
    }
}
