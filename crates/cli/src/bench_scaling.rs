//! `convnet bench scaling`: how data-parallel training of a network would scale over N
//! nodes, from what one node measures (time per image of forward and backward, time of
//! an update) and a model of the gradient all-reduce: a ring over links of a given
//! bandwidth and per-message latency, the buckets before the last overlapped with
//! backward. The global batch stays that of a one-node run (as `mpirun -np N convnet
//! train` keeps it), so each node's share shrinks as N grows. docs/scaling.md explains
//! the model and checks it against runs on 2 and 3 ranks.

use anyhow::{Context, Result};
use convnet::gradcheck::random;
use convnet::net::{zoo, Mode, Network};
use convnet::train::exchange::Buckets;
use convnet::train::trainer::update;
use convnet::train::{Solver, SolverKind};
use convnet::Tensor;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Networks to model (zoo names)
    #[arg(long, value_delimiter = ',', default_value = "lenet,resnet18,vgg16")]
    pub nets: Vec<String>,
    /// Threads of one node (default: all cores)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Link speeds in Gb/s
    #[arg(long, value_delimiter = ',', default_value = "10,25,100")]
    pub links: Vec<f64>,
    /// Latency of one message between two nodes, in microseconds
    #[arg(long, default_value_t = 20.0)]
    pub latency_us: f64,
    /// Node counts (default: those up to 256 that divide the batch, as `convnet train` requires)
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<usize>,
    /// Global batch (default: 100 for LeNet as `convnet train`, 256 for the others as for ImageNet)
    #[arg(long)]
    pub batch: Option<usize>,
    /// Timed training steps per network (after one untimed)
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// Use these times instead of measuring: NAME=FORWARD/BACKWARD/UPDATE, milliseconds per image (forward, backward) and per step (update); repeatable
    #[arg(long = "time", value_name = "NAME=F/B/U")]
    pub times: Vec<String>,
}

/// What one node spends on a network, and how its gradient travels.
#[derive(Clone, Debug, PartialEq)]
pub struct NetCost {
    pub name: String,
    pub params: usize,
    /// Bucket sizes in floats, in the order backward fills them.
    pub buckets: Vec<usize>,
    /// Seconds per image.
    pub forward: f64,
    pub backward: f64,
    /// Seconds per step (every node updates every weight).
    pub update: f64,
}

/// A link between nodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    pub bytes_per_s: f64,
    pub latency_s: f64,
}

impl Link {
    pub fn gbit(gbit_per_s: f64, latency_us: f64) -> Self {
        Link {
            bytes_per_s: gbit_per_s * 1e9 / 8.0,
            latency_s: latency_us * 1e-6,
        }
    }
}

/// Seconds of a ring all-reduce of `floats` f32 values over `nodes` nodes: 2(N-1)
/// messages in sequence, each of 1/N of the data.
pub fn ring_seconds(floats: usize, nodes: usize, link: Link) -> f64 {
    if nodes < 2 {
        return 0.0;
    }
    let n = nodes as f64;
    let bytes = floats as f64 * 4.0;
    2.0 * (n - 1.0) * link.latency_s + 2.0 * (n - 1.0) / n * bytes / link.bytes_per_s
}

/// Seconds of one training step with `batch` images split over `nodes` nodes: forward
/// of each node's share, then its backward, during which the buckets but the last are
/// summed (whichever takes longer), then the last bucket, then the update.
pub fn step_seconds(c: &NetCost, batch: usize, nodes: usize, link: Link) -> f64 {
    let share = batch.div_ceil(nodes.max(1)) as f64;
    let (early, last) = match c.buckets.split_last() {
        Some((last, early)) => (early, *last),
        None => (&[][..], 0),
    };
    let overlapped: f64 = early.iter().map(|&b| ring_seconds(b, nodes, link)).sum();
    share * c.forward
        + (share * c.backward).max(overlapped)
        + ring_seconds(last, nodes, link)
        + c.update
}

/// Images per second over all nodes, and the efficiency (speed-up over one node
/// divided by the nodes).
pub fn throughput(c: &NetCost, batch: usize, nodes: usize, link: Link) -> (f64, f64) {
    let t = step_seconds(c, batch, nodes, link);
    let t1 = step_seconds(c, batch, 1, link);
    (batch as f64 / t, t1 / t / nodes as f64)
}

/// How many times faster than `c` a node may compute (forward, backward and update
/// alike) before the efficiency on `nodes` nodes falls below `floor`: the margin left
/// to communication. 0 when it is below already.
pub fn headroom(c: &NetCost, batch: usize, nodes: usize, link: Link, floor: f64) -> f64 {
    let eff = |f: f64| {
        let fast = NetCost {
            forward: c.forward / f,
            backward: c.backward / f,
            update: c.update / f,
            ..c.clone()
        };
        throughput(&fast, batch, nodes, link).1
    };
    if eff(1.0) < floor {
        return 0.0;
    }
    let (mut lo, mut hi) = (1.0f64, 1e9f64);
    if eff(hi) >= floor {
        return hi;
    }
    // Efficiency falls as compute gets faster: bisect on a log scale.
    for _ in 0..100 {
        let mid = (lo * hi).sqrt();
        if eff(mid) >= floor {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

fn default_batch(name: &str) -> usize {
    if name == "lenet" {
        100
    } else {
        256
    }
}

/// Times `steps` training steps of zoo network `name` on random images (batch sizes
/// that keep a step near a second on 2 cores).
fn measure(name: &str, steps: usize) -> Result<NetCost> {
    let desc = zoo::get(name).with_context(|| {
        format!(
            "--nets: '{name}' is not a built-in network ({})",
            zoo::NAMES.join(", ")
        )
    })?;
    let mut net = Network::from_desc(&desc, 1)?;
    let [h, w, c] = desc.input_size().context("the network has no input size")?;
    let batch = match name {
        "lenet" => 100,
        "vgg16" | "alexnet" => 2,
        _ => 8,
    };
    let x = random(&[batch, c, h, w], 2);
    let classes = net.classes().len().max(1);
    let labels = Tensor::from_vec(
        &[batch, 1, 1, 1],
        (0..batch).map(|i| (i % classes) as f32).collect(),
    )?;
    let mut solver = Solver::new(SolverKind::Sgd { momentum: 0.9 }, 0.0005)?;
    let (mut fwd, mut bwd, mut upd) = (0.0, 0.0, 0.0);
    for step in 0..=steps.max(1) {
        let t0 = Instant::now();
        net.forward(&[("input", &x), ("label", &labels)], Mode::Train)?;
        let t1 = Instant::now();
        net.backward(1.0)?;
        let t2 = Instant::now();
        update(&mut net, &mut solver, 1e-6, batch)?;
        if step > 0 {
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
            upd += t2.elapsed().as_secs_f64();
        }
    }
    let n = steps.max(1) as f64;
    Ok(cost_of(
        name,
        &net,
        fwd / n / batch as f64,
        bwd / n / batch as f64,
        upd / n,
    ))
}

fn cost_of(name: &str, net: &Network, forward: f64, backward: f64, update: f64) -> NetCost {
    NetCost {
        name: name.to_string(),
        params: net.params().map(|p| p.value.len()).sum(),
        buckets: Buckets::default().sizes(net.ready_order().iter().map(|p| p.value.len())),
        forward,
        backward,
        update,
    }
}

/// `NAME=F/B/U` (milliseconds) for a network of the zoo.
fn given(spec: &str) -> Result<NetCost> {
    let bad = || format!("--time '{spec}': give NAME=FORWARD/BACKWARD/UPDATE in milliseconds");
    let (name, times) = spec.split_once('=').with_context(bad)?;
    let ms: Vec<f64> = times
        .split('/')
        .map(|v| v.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .with_context(bad)?;
    let [f, b, u] = ms[..] else {
        anyhow::bail!(bad())
    };
    let desc = zoo::get(name).with_context(|| format!("--time: no network '{name}' in the zoo"))?;
    // Zero weights suffice to know the parameters and their order.
    let net = Network::new(&desc)?;
    Ok(cost_of(name, &net, f * 1e-3, b * 1e-3, u * 1e-3))
}

pub fn run(args: Args) -> Result<()> {
    crate::datasets::set_threads(args.threads)?;
    if args.links.is_empty() || args.links.iter().any(|&l| l.is_nan() || l <= 0.0) {
        anyhow::bail!("--links: give positive speeds in Gb/s");
    }
    let threads = rayon::current_num_threads();
    let links: Vec<Link> = args
        .links
        .iter()
        .map(|&g| Link::gbit(g, args.latency_us))
        .collect();
    println!(
        "model: step = b*forward + max(b*backward, ring(buckets but the last)) + ring(last bucket) + update, b = ceil(batch / N) images per node; ring(g) = 2(N-1)*{} us + 2(N-1)/N * g / link",
        args.latency_us
    );
    let mut result = String::from("RESULT");
    for name in &args.nets {
        let spec = args
            .times
            .iter()
            .find(|t| t.split('=').next() == Some(name));
        let (cost, node) = match spec {
            Some(spec) => (given(spec)?, "times given".to_string()),
            None => {
                let s = if threads == 1 { "" } else { "s" };
                (measure(name, args.steps)?, format!("{threads} thread{s}"))
            }
        };
        let batch = args.batch.unwrap_or_else(|| default_batch(name));
        result += &print_table(&cost, batch, &node, &args, &links);
    }
    println!("{result}");
    Ok(())
}

/// Prints the table of `c` and its summary; returns the RESULT fields (efficiency at
/// 16 nodes, or the nearest node count the batch splits over).
fn print_table(c: &NetCost, batch: usize, node: &str, args: &Args, links: &[Link]) -> String {
    let mb = |floats: usize| floats as f64 * 4.0 / 1e6;
    println!(
        "\n{}: {:.2} M parameters, {:.1} MB of gradients in {} bucket{} (the last {:.2} MB); one node ({node}): forward {:.2} ms + backward {:.2} ms per image, update {:.2} ms per step; global batch {batch}",
        c.name,
        c.params as f64 / 1e6,
        mb(c.params),
        c.buckets.len(),
        if c.buckets.len() == 1 { "" } else { "s" },
        mb(c.buckets.last().copied().unwrap_or(0)),
        c.forward * 1e3,
        c.backward * 1e3,
        c.update * 1e3
    );
    let divisors: Vec<usize> = (1..=batch.min(256))
        .filter(|n| batch.is_multiple_of(*n))
        .collect();
    let rows: Vec<usize> = if args.nodes.is_empty() {
        divisors.clone()
    } else {
        args.nodes.clone()
    };
    let mut head = format!("{:>6} {:>6}", "nodes", "b");
    for g in &args.links {
        head += &format!(" | {:>9} {:>5}", format!("{g} Gb/s"), "eff");
    }
    println!("{head}");
    for &n in &rows {
        if n == 0 || n > batch {
            continue;
        }
        let mut row = format!("{n:>6} {:>6}", batch.div_ceil(n));
        for &link in links {
            let (ips, eff) = throughput(c, batch, n, link);
            row += &format!(" | {ips:>9.1} {:>4.0}%", eff * 100.0);
        }
        println!("{row}");
    }
    let at = divisors
        .iter()
        .copied()
        .filter(|&n| n <= 16)
        .max()
        .unwrap_or(1);
    let mut result = String::new();
    for (g, &link) in args.links.iter().zip(links) {
        // Over the node counts the batch splits evenly over.
        let eff = |n: usize| throughput(c, batch, n, link).1;
        let last_at = |floor: f64| {
            divisors
                .iter()
                .copied()
                .take_while(|&n| eff(n) >= floor)
                .last()
                .unwrap_or(1)
        };
        let ips = |n: usize| throughput(c, batch, n, link).0;
        let peak = divisors
            .iter()
            .copied()
            .max_by(|&a, &b| ips(a).total_cmp(&ips(b)))
            .unwrap_or(1);
        let margin = match headroom(c, batch, at, link, 0.9) {
            0.0 => format!("at {at} nodes it is below 90% already"),
            f => format!("at {at} nodes, 90% holds for nodes up to {f:.1} times faster"),
        };
        println!(
            "{g} Gb/s: efficiency at least 90% up to {} nodes, 50% up to {}; images/s peak at {peak} nodes ({:.1} images/s); {margin}",
            last_at(0.9),
            last_at(0.5),
            ips(peak),
        );
        result += &format!(" {}_eff{at}_{g}gbps={:.3}", c.name, eff(at));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet::net::LayerKind;

    fn cost() -> NetCost {
        NetCost {
            name: "t".into(),
            params: 3_000_000,
            buckets: vec![1_000_000, 2_000_000],
            forward: 0.010,
            backward: 0.020,
            update: 0.005,
        }
    }

    #[test]
    fn scaling_ring_moves_twice_the_data_in_the_limit() {
        let link = Link::gbit(8.0, 0.0); // 1 GB/s
        assert_eq!(ring_seconds(1_000_000, 1, link), 0.0);
        assert!((ring_seconds(250_000_000, 2, link) - 1.0).abs() < 1e-12);
        assert!((ring_seconds(250_000_000, 1000, link) - 1.998).abs() < 1e-9);
        let slow = Link::gbit(8.0, 10.0);
        assert!((ring_seconds(0, 3, slow) - 40e-6).abs() < 1e-15);
    }

    #[test]
    fn scaling_step_overlaps_early_buckets_with_backward() {
        let c = cost();
        let link = Link::gbit(8.0, 0.0);
        // One node: 100 images, no communication.
        assert!((step_seconds(&c, 100, 1, link) - 3.005).abs() < 1e-9);
        // Two nodes: 50 images each; 4 MB early bucket (4 ms) hides in 1 s of
        // backward, the 8 MB last bucket (8 ms) does not.
        let t2 = step_seconds(&c, 100, 2, link);
        assert!((t2 - (0.5 + 1.0 + 0.008 + 0.005)).abs() < 1e-9, "{t2}");
        let (ips, eff) = throughput(&c, 100, 2, link);
        assert!((ips - 100.0 / t2).abs() < 1e-9);
        assert!((eff - 3.005 / t2 / 2.0).abs() < 1e-12);
        // A slow link: communication, not backward, sets the pace.
        let slow = Link::gbit(0.008, 0.0); // 1 MB/s
        let t = step_seconds(&c, 100, 2, slow);
        assert!((t - (0.5 + 4.0 + 8.0 + 0.005)).abs() < 1e-9, "{t}");
    }

    #[test]
    fn scaling_headroom_is_where_efficiency_crosses_the_floor() {
        let c = cost();
        let link = Link::gbit(8.0, 0.0);
        let f = headroom(&c, 100, 2, link, 0.9);
        let fast = |k: f64| NetCost {
            forward: c.forward / k,
            backward: c.backward / k,
            update: c.update / k,
            ..c.clone()
        };
        assert!(
            (throughput(&fast(f), 100, 2, link).1 - 0.9).abs() < 1e-6,
            "{f}"
        );
        assert!(throughput(&fast(f * 1.01), 100, 2, link).1 < 0.9);
        assert_eq!(headroom(&c, 100, 2, Link::gbit(1e-6, 0.0), 0.9), 0.0);
    }

    #[test]
    fn scaling_trains_vgg16_with_its_loss_and_no_softmax() {
        // `measure` takes the zoo's description as it is: its training form
        let vgg = zoo::get("vgg16").unwrap();
        let last = vgg.layers.last().unwrap();
        assert_eq!((last.name.as_str(), last.inputs.len()), ("loss", 2));
        assert!(!vgg.layers.iter().any(|l| l.kind == LayerKind::Softmax));
    }

    #[test]
    fn scaling_times_given_on_the_command_line() {
        let c = given("lenet=0.1/0.2/0.3").unwrap();
        assert_eq!(c.params, 431_080);
        assert_eq!(c.buckets, vec![405_010, 26_070]);
        assert!((c.forward - 1e-4).abs() < 1e-12 && (c.update - 3e-4).abs() < 1e-12);
        assert!(given("lenet=0.1/0.2").is_err());
        assert!(given("nope=1/2/3").is_err());
    }
}
