//! The `convnet` command line: the only layer that prints. Each subcommand lives in
//! its own module with its arguments; library errors become one message and exit 1.

use clap::{Parser, Subcommand};

/// Every layer of a forward pass allocates its output, packed weights and padded
/// copies afresh; glibc's malloc hands such large blocks back to the kernel when
/// freed, so each pass pays page faults and zeroing for all of them again (a quarter
/// of ResNet-18's batch-1 forward). mimalloc keeps freed memory for reuse.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench_allreduce;
mod bench_conv;
mod bench_data;
mod bench_diagnostics;
mod bench_lenet;
mod bench_net;
mod bench_scaling;
mod cmd_cv;
mod cmd_deploy;
mod cmd_export;
mod cmd_import;
mod cmd_linear;
mod cmd_ocr;
mod cmd_predict;
mod cmd_run;
mod cmd_show;
mod cmd_test;
mod cmd_train;
mod cmd_viz;
mod datasets;
mod device_arg;
mod diagnose;
mod distributed;
mod heatmap;
mod ocr;
mod plot;

#[derive(Parser)]
#[command(
    name = "convnet",
    version,
    about = "Convolutional networks and linear classifiers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network (default: LeNet on the embedded digits)
    Train(cmd_train::Args),
    /// Evaluate a model: objective, top-1/top-5 error, confusion matrix
    Test(cmd_test::Args),
    /// Top-5 classes with probabilities for each image
    Predict(cmd_predict::Args),
    /// Print a network's layers as a table
    Show(cmd_show::Args),
    /// Benchmarks printing the same figures as the baselines
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Linear classifiers with LIBLINEAR's formulations, options and model files
    #[command(subcommand)]
    Linear(cmd_linear::Command),
    /// Letters a-z: train a reader, render a text line, read it back
    #[command(subcommand)]
    Ocr(cmd_ocr::Command),
    /// Stratified K-fold cross-validation with a summed confusion matrix
    Cv(cmd_cv::Args),
    /// Pictures of what a network learned
    #[command(subcommand)]
    Viz(cmd_viz::Command),
    /// Convert an ONNX model or a MatConvNet model file into a convnet model
    Import(cmd_import::Args),
    /// Write a model's test-mode network as ONNX (opset 17)
    Export(cmd_export::Args),
    /// Run a model's test-mode forward on a NumPy array, writing its output as one
    Run(cmd_run::Args),
    /// Fold batch normalisation, drop training-only layers, check and time the result
    Deploy(cmd_deploy::Args),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Convolution layer cases and max pooling, as torch_conv_layers.py
    Conv(bench_conv::Args),
    /// LeNet training on the embedded digits, as torch_lenet_mnist.py
    Lenet(bench_lenet::Args),
    /// What train's per-layer statistics cost: recorded against plain LeNet batches
    Diagnostics(bench_diagnostics::Args),
    /// Images per second of the streamed data path (decode, crop, jitter, normalise)
    Data(bench_data::Args),
    /// VGG-16, ResNet-18 or AlexNet: batch-1 latency, training speed, memory, as torch_nets.py
    Net(bench_net::Args),
    /// All-reduce throughput for the gradient sizes of LeNet, ResNet-18 and VGG-16, across the ranks it is launched with (mpirun -np N)
    Allreduce(bench_allreduce::Args),
    /// Data-parallel scaling over 1-256 nodes, modelled from one node's measured step times and a ring all-reduce
    Scaling(bench_scaling::Args),
}

fn main() {
    restore_sigpipe();
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cmd_train::run(a),
        Command::Test(a) => cmd_test::run(a),
        Command::Predict(a) => cmd_predict::run(a),
        Command::Show(a) => cmd_show::run(a),
        Command::Bench(BenchCommand::Conv(a)) => bench_conv::run(a),
        Command::Bench(BenchCommand::Lenet(a)) => bench_lenet::run(a),
        Command::Bench(BenchCommand::Diagnostics(a)) => bench_diagnostics::run(a),
        Command::Bench(BenchCommand::Data(a)) => bench_data::run(a),
        Command::Bench(BenchCommand::Net(a)) => bench_net::run(a),
        Command::Bench(BenchCommand::Allreduce(a)) => bench_allreduce::run(a),
        Command::Bench(BenchCommand::Scaling(a)) => bench_scaling::run(a),
        Command::Linear(c) => cmd_linear::run(c),
        Command::Ocr(c) => cmd_ocr::run(c),
        Command::Cv(a) => cmd_cv::run(a),
        Command::Viz(c) => cmd_viz::run(c),
        Command::Import(a) => cmd_import::run(a),
        Command::Export(a) => cmd_export::run(a),
        Command::Run(a) => cmd_run::run(a),
        Command::Deploy(a) => cmd_deploy::run(a),
    };
    if let Err(e) = result {
        // One write, so that under mpirun the line reaches the terminal whole.
        let line = format!("convnet: error: {}\n", chain(&e));
        eprint!("{line}");
        std::process::exit(1);
    }
}

/// The error and its causes, "a: b: c", leaving out a cause whose text the message before
/// it already ends with (the library's I/O errors quote their source).
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The tensors of an ImageNet-size network are tens to hundreds of megabytes each,
/// allocated and freed at every batch. mimalloc (the global allocator, see
/// [`ALLOC`]) gives freed memory back to the kernel a second after it is freed, about
/// the time a training step takes, so each step would fault its tensors in again
/// (6,500 page faults a step for ResNet-18 at batch 16, each zeroed by the kernel).
/// Ten seconds keeps freed memory from one step to the next and still gives it back
/// once a run is idle.
fn keep_freed_memory() {
    // `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (the bindings name
    // options up to 14 only)
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets an option of the allocator, which it reads at each purge.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 10_000) }
}

/// Rust ignores SIGPIPE, so `convnet ... | head` would panic on the closed pipe; a
/// command-line tool should end quietly instead, as other Unix tools do.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
