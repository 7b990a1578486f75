//! `convnet bench allreduce`: the throughput of the all-reduce that sums gradients in
//! data-parallel training, for the gradient sizes of LeNet, ResNet-18 and VGG-16,
//! across the ranks it is launched with (`mpirun -np N convnet bench allreduce`).
//! Prints, as NCCL's tests do, the algorithm bandwidth (gradient bytes / time) and the
//! bus bandwidth (x 2(N-1)/N: the bytes a ring all-reduce moves over each link).

use anyhow::Result;
#[cfg(feature = "mpi")]
use convnet::net::{summarize, zoo};

#[derive(clap::Args)]
pub struct Args {
    /// Networks whose gradient sizes to time
    #[arg(long, value_delimiter = ',', default_value = "lenet,resnet18,vgg16")]
    pub nets: Vec<String>,
    /// Timed all-reduces per size (after one untimed); the median is reported
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
}

/// The number of trained parameters of zoo network `name`.
#[cfg(feature = "mpi")]
fn params_of(name: &str) -> Result<usize> {
    let desc = zoo::get(name).ok_or_else(|| {
        anyhow::anyhow!(
            "--nets: '{name}' is not a built-in network ({})",
            zoo::NAMES.join(", ")
        )
    })?;
    Ok(summarize(&desc, None)?.total_params)
}

/// Bus bandwidth from algorithm bandwidth for `ranks` ranks.
#[cfg(feature = "mpi")]
fn bus_factor(ranks: usize) -> f64 {
    if ranks < 2 {
        1.0
    } else {
        2.0 * (ranks - 1) as f64 / ranks as f64
    }
}

#[cfg(not(feature = "mpi"))]
pub fn run(_: Args) -> Result<()> {
    anyhow::bail!(
        "this convnet was built without MPI: {}",
        crate::distributed::BUILD_WITH_MPI
    )
}

#[cfg(feature = "mpi")]
pub fn run(args: Args) -> Result<()> {
    use crate::distributed::exchange::all_reduce_sum;
    use mpi::collective::{CommunicatorCollectives, SystemOperation};
    use mpi::topology::Communicator;

    let sizes: Vec<(String, usize)> = args
        .nets
        .iter()
        .map(|n| Ok((n.clone(), params_of(n)?)))
        .collect::<Result<_>>()?;
    if args.reps == 0 {
        anyhow::bail!("--reps must be at least 1");
    }
    let universe = mpi::initialize().ok_or_else(|| anyhow::anyhow!("MPI was initialised twice"))?;
    let world = universe.world();
    let ranks = world.size() as usize;
    let writer = world.rank() == 0;
    if writer {
        println!(
            "all-reduce (sum of f32) across {ranks} rank{}, median of {} runs",
            if ranks == 1 { "" } else { "s" },
            args.reps
        );
        println!(
            "{:<10} {:>12} {:>9} {:>10} {:>12} {:>12}",
            "gradient", "parameters", "MB", "ms", "algbw GB/s", "busbw GB/s"
        );
    }
    let mut result = format!("RESULT ranks={ranks}");
    for (name, n) in sizes {
        let send: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
        let mut recv = vec![0f32; n];
        let mut times = Vec::with_capacity(args.reps);
        for rep in 0..=args.reps {
            world.barrier();
            let t0 = mpi::time();
            // As training sums its gradients.
            all_reduce_sum(&world, &send, &mut recv);
            let mine = mpi::time() - t0;
            // The slowest rank's time is the collective's.
            let mut slowest = 0f64;
            world.all_reduce_into(&mine, &mut slowest, SystemOperation::max());
            if rep > 0 {
                times.push(slowest);
            }
        }
        if recv[n - 1] != ((n - 1) % 7) as f32 * ranks as f32 {
            anyhow::bail!("all-reduce of {name}'s gradient gave a wrong sum");
        }
        times.sort_by(f64::total_cmp);
        let t = times[times.len() / 2];
        let bytes = n as f64 * 4.0;
        let alg = bytes / t / 1e9;
        if writer {
            println!(
                "{name:<10} {n:>12} {:>9.2} {:>10.3} {alg:>12.3} {:>12.3}",
                bytes / 1e6,
                t * 1e3,
                alg * bus_factor(ranks)
            );
        }
        result += &format!(
            " {name}_ms={:.3} {name}_busbw_gbps={:.3}",
            t * 1e3,
            alg * bus_factor(ranks)
        );
    }
    if writer {
        println!("{result}");
    }
    Ok(())
}
