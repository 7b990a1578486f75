//! `convnet bench conv`: the cases of `bench/torch_conv_layers.py`, timed the same way
//! (median of the repetitions after two warm-ups; forward, and forward plus input,
//! filter and bias gradients) and printed in the same `RESULT` lines, so that the two
//! programs' outputs compare line by line.

use crate::bench_net::{median_time, Clock};
use anyhow::Context;
use convnet::blocks::conv::{self, ConvOpts};
use convnet::blocks::pool::{self, PoolMethod, PoolOpts};
use convnet::blocks::Pad;
use convnet::gradcheck::random;
use convnet::Tensor;

#[derive(clap::Args)]
pub struct Args {
    /// Threads of the rayon pool the blocks run in
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed repetitions per measurement (after two warm-ups); the median is reported
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// Run only these cases (repeatable); all by default
    #[arg(long = "case")]
    cases: Vec<String>,
    /// What the times count: wall-clock time (as the baseline), or the CPU time of
    /// all the process's threads together (steadier on a busy machine)
    #[arg(long, value_enum, default_value_t = Clock::Wall)]
    clock: Clock,
    #[command(flatten)]
    device: crate::device_arg::DeviceArgs,
}

/// A case: N, C_in, H, W, C_out, k, stride, pad, as in the baseline script.
struct Case {
    name: &'static str,
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

const fn case(name: &'static str, v: [usize; 8]) -> Case {
    Case {
        name,
        n: v[0],
        cin: v[1],
        h: v[2],
        w: v[3],
        cout: v[4],
        k: v[5],
        stride: v[6],
        pad: v[7],
    }
}

const CASES: [Case; 6] = [
    case("vgg_3x3_64", [16, 64, 56, 56, 64, 3, 1, 1]),
    case("vgg_3x3_256", [16, 256, 14, 14, 256, 3, 1, 1]),
    case("lenet_5x5_1_20", [100, 1, 28, 28, 20, 5, 1, 0]),
    case("lenet_5x5_20_50", [100, 20, 12, 12, 50, 5, 1, 0]),
    case("alexnet_11x11_s4", [8, 3, 227, 227, 96, 11, 4, 0]),
    case("pointwise_1x1_512", [16, 512, 14, 14, 512, 1, 1, 0]),
];

const POOL_CASE: &str = "maxpool_2x2_64x112x112";

pub fn run(a: Args) -> anyhow::Result<()> {
    a.device.cpu_only("bench conv")?;
    if a.threads == 0 || a.reps == 0 {
        anyhow::bail!("--threads and --reps must be at least 1");
    }
    let known: Vec<&str> = CASES.iter().map(|c| c.name).chain([POOL_CASE]).collect();
    if let Some(bad) = a.cases.iter().find(|c| !known.contains(&c.as_str())) {
        anyhow::bail!("unknown case '{bad}'; cases are {}", known.join(", "));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .context("building the thread pool")?;
    let wanted = |name: &str| a.cases.is_empty() || a.cases.iter().any(|c| c == name);
    pool.install(|| {
        for c in CASES.iter().filter(|c| wanted(c.name)) {
            println!("{}", conv_case(c, a.reps, a.clock)?);
        }
        // The script always ends with the pooling line; so do we, unless other cases
        // were picked by name.
        if a.cases.is_empty() || wanted(POOL_CASE) {
            println!("{}", pool_case(a.reps, a.clock)?);
        }
        Ok(())
    })
}

fn conv_case(c: &Case, reps: usize, clock: Clock) -> anyhow::Result<String> {
    let x = random(&[c.n, c.cin, c.h, c.w], 1);
    let w = random(&[c.cout, c.cin, c.k, c.k], 2);
    let b = random(&[c.cout], 3);
    let o = ConvOpts {
        pad: Pad::all(c.pad),
        stride: [c.stride, c.stride],
        ..Default::default()
    };
    let y = conv::out_dims(x.dims4()?, w.shape(), &o)?;
    let flops = 2.0 * (y.len() * c.cin * c.k * c.k) as f64;
    let dy = random(&y.to_vec(), 4);
    let tf = median_time(clock, 2, reps, || {
        conv::forward(&x, &w, Some(&b), &o).map(drop)
    })?;
    let tfb = median_time(clock, 2, reps, || {
        let y: Tensor = conv::forward(&x, &w, Some(&b), &o)?;
        drop(y);
        conv::backward(&x, &w, Some(&b), &o, &dy, true).map(drop)
    })?;
    Ok(format!(
        "RESULT case={} fwd_ms={:.2} fwd_gflops={:.1} fwdbwd_ms={:.2} fwdbwd_gflops={:.1}",
        c.name,
        tf * 1e3,
        flops / tf / 1e9,
        tfb * 1e3,
        3.0 * flops / tfb / 1e9
    ))
}

fn pool_case(reps: usize, clock: Clock) -> anyhow::Result<String> {
    let x = random(&[16, 64, 112, 112], 5);
    let o = PoolOpts {
        method: PoolMethod::Max,
        window: [2, 2],
        stride: [2, 2],
        pad: Pad::default(),
        count_pad: false,
    };
    let tp = median_time(clock, 2, reps, || pool::forward(&x, &o).map(drop))?;
    let gbytes = ((x.len() + x.len() / 4) * 4) as f64 / 1e9;
    Ok(format!(
        "RESULT case={POOL_CASE} fwd_ms={:.2} gbytes_per_s={:.1}",
        tp * 1e3,
        gbytes / tp
    ))
}
