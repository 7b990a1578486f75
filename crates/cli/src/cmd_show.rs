//! `convnet show NAME|FILE [--input HxWxC]`: a network's layers as a table, with
//! sizes, parameters, memory, receptive fields and FLOPs per image.

use anyhow::{bail, Context};
use convnet::net::{self, summarize, Summary};

#[derive(clap::Args)]
pub struct Args {
    /// A built-in network (lenet, lenet-bn, cifar, alexnet, vgg16, resnet18) or a
    /// TOML description file
    pub net: String,
    /// Input size HxWxC instead of the network's own (e.g. 32x32x1)
    #[arg(long)]
    pub input: Option<String>,
    /// Print the description as TOML (a file to edit) instead of the table
    #[arg(long)]
    pub toml: bool,
    /// A built-in network's training form (with dropout and the loss) instead of the
    /// deploy form (a softmax at the end)
    #[arg(long)]
    pub train: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let desc = match net::zoo::get_deploy(&args.net) {
        Some(d) if !args.train => d,
        _ => net::resolve(&args.net)?,
    };
    if args.toml {
        print!("{}", desc.to_toml());
        return Ok(());
    }
    let input = args.input.as_deref().map(parse_size).transpose()?;
    let s = summarize(&desc, input)?;
    let [h, w, c] = input.or(desc.input_size()).unwrap_or_default();
    println!(
        "network '{}': input {h}x{w}x{c}, {} classes",
        desc.name,
        desc.classes.len()
    );
    print!("{}", table(&s));
    Ok(())
}

/// "HxWxC" as [H, W, C].
fn parse_size(s: &str) -> anyhow::Result<[usize; 3]> {
    let parts: Vec<usize> = s
        .split('x')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--input '{s}': expected HxWxC, e.g. 28x28x1"))?;
    match parts[..] {
        [h, w, c] if h > 0 && w > 0 && c > 0 => Ok([h, w, c]),
        _ => bail!("--input '{s}': expected three positive sizes HxWxC, e.g. 28x28x1"),
    }
}

/// 1234567 as "1,234,567".
fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn bytes(v: usize) -> String {
    let v = v as f64;
    if v >= 1e6 {
        format!("{:.1} MB", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} kB", v / 1e3)
    } else {
        format!("{v} B")
    }
}

fn flops(v: u64) -> String {
    let f = v as f64;
    if f >= 1e9 {
        format!("{:.2} G", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2} M", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} k", f / 1e3)
    } else {
        v.to_string()
    }
}

fn table(s: &Summary) -> String {
    let head = [
        "layer", "type", "kernel", "stride", "pad", "output", "params", "memory", "rf", "FLOPs",
    ];
    let mut rows: Vec<Vec<String>> = s
        .rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.kind.clone(),
                r.kernel.clone(),
                r.stride.clone(),
                r.pad.clone(),
                format!("{}x{}x{}", r.out[0], r.out[1], r.out[2]),
                thousands(r.params as u64),
                bytes(r.act_bytes),
                if r.receptive[0] == r.receptive[1] {
                    r.receptive[0].to_string()
                } else {
                    format!("{}x{}", r.receptive[0], r.receptive[1])
                },
                flops(r.flops),
            ]
        })
        .collect();
    let total = vec![
        format!("total ({} layers)", s.rows.len()),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        thousands(s.total_params as u64),
        bytes(s.total_act_bytes),
        String::new(),
        flops(s.total_flops),
    ];
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows.iter().chain(std::iter::once(&total)) {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                // Text columns align left, figures right.
                if i < 2 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    let rule = "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)) + "\n";
    let mut out = line(&head.map(String::from));
    out += &rule;
    for r in rows.drain(..) {
        out += &line(&r);
    }
    out += &rule;
    out += &line(&total);
    out += "memory: output activations of one image (f32); FLOPs: forward, one image\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_numbers_format() {
        assert_eq!(parse_size("28x28x1").unwrap(), [28, 28, 1]);
        assert!(parse_size("28x28").is_err() && parse_size("0x2x2").is_err());
        assert!(parse_size("axbxc").is_err());
        assert_eq!(thousands(431_080), "431,080");
        assert_eq!(thousands(138_357_544), "138,357,544");
        assert_eq!(thousands(12), "12");
    }
}
