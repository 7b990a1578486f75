//! Data-parallel training across processes and machines on MPI (cargo feature `mpi`):
//! `mpirun -np N convnet train ...` or `srun convnet train ...` trains one model, each
//! rank on its share of every global batch, gradients summed by an all-reduce while
//! backward runs. Without the feature, a launch of several ranks is refused rather
//! than training N separate models into one folder.

#[cfg(feature = "mpi")]
pub mod exchange;
#[cfg(feature = "mpi")]
mod train;
#[cfg(feature = "mpi")]
pub use train::train;

/// Whether an MPI launcher started this process as one of several (or as one of an
/// unknown number), as its environment says: Open MPI's `mpirun` sets
/// `OMPI_COMM_WORLD_SIZE`, MPICH's `PMI_SIZE`, and `srun --mpi=pmix` `PMIX_RANK`.
pub fn launched() -> bool {
    let var = |name: &str| std::env::var(name).ok();
    match var("OMPI_COMM_WORLD_SIZE").or_else(|| var("PMI_SIZE")) {
        Some(n) => n.trim().parse::<usize>().map_or(true, |n| n > 1),
        None => var("PMIX_RANK").or_else(|| var("PMI_RANK")).is_some(),
    }
}

/// How to get a build that trains across ranks.
#[cfg(not(feature = "mpi"))]
pub const BUILD_WITH_MPI: &str = "build it with `cargo build --release -p convnet-cli --features mpi` (after `bash scripts/install-mpi.sh`, which installs Open MPI and libclang)";

#[cfg(not(feature = "mpi"))]
pub fn train(_: crate::cmd_train::Args) -> anyhow::Result<()> {
    anyhow::bail!(
        "started by an MPI launcher, but this convnet was built without MPI, so every rank would train a model of its own: {BUILD_WITH_MPI}"
    )
}
