//! Gradient exchange: the step between backward and update that makes a data-parallel
//! run one training run. Each process (rank) back-propagates its share of the global
//! batch; the exchange sums the gradients over the ranks, so that every rank applies the
//! same update to the same weights. One interface, several implementations: none (one
//! process, [`NoExchange`]), an MPI all-reduce (CPU ranks, in the command-line crate),
//! and on GPUs an NCCL all-reduce.
//!
//! Parameters are handed over as backward makes their gradients final
//! ([`crate::net::BackwardStep::ready`]), so an implementation can start summing them
//! (in buckets) while backward goes on, and waits for the sums in
//! [`GradientExchange::finish`].

use crate::data::shard::Shard;
use crate::data::source::Images;
use crate::error::{Error, Result};
use crate::net::{Network, Param};
use crate::tensor::Tensor;

/// How the ranks of a data-parallel run combine what each computed.
pub trait GradientExchange {
    /// This process's rank and the number of ranks.
    fn shard(&self) -> Shard;

    /// Parameters whose gradients (summed over this rank's images) are final, in the
    /// order backward produces them; the same order on every rank.
    fn ready(&mut self, params: &[&Param]) -> Result<()>;

    /// Ends the step once every trained parameter was handed over: each gradient in
    /// `net` becomes the sum over all ranks, and so does each of `sums` (the step's
    /// statistics, which thus need no exchange of their own).
    fn finish(&mut self, net: &mut Network, sums: &mut [f64]) -> Result<()>;

    /// Sums `values` over the ranks, in place (statistics, batch-norm moments).
    fn sum(&mut self, values: &mut [f64]) -> Result<()>;

    /// Every rank's `value`, in rank order.
    fn all_gather(&mut self, value: u64) -> Result<Vec<u64>>;
}

/// How gradients are grouped into messages (PyTorch DDP's buckets): in the order
/// backward hands them over, a bucket closes once it holds its size or more; the first
/// is small, so that communication starts early in backward, the others large, so that
/// per-message costs stay small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buckets {
    pub first_bytes: usize,
    pub bytes: usize,
}

impl Default for Buckets {
    /// PyTorch's sizes: 1 MiB, then 25 MiB.
    fn default() -> Self {
        Buckets {
            first_bytes: 1 << 20,
            bytes: 25 << 20,
        }
    }
}

impl Buckets {
    /// Whether bucket `index` (0-based) is full once it holds `floats` f32 values.
    pub fn full(&self, index: usize, floats: usize) -> bool {
        let cap = if index == 0 {
            self.first_bytes
        } else {
            self.bytes
        };
        floats.saturating_mul(4) >= cap
    }

    /// The sizes (in floats) of the buckets that parameters of `floats` values each
    /// make, handed over in that order.
    pub fn sizes(&self, floats: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut out = Vec::new();
        let mut filling = 0;
        for n in floats {
            filling += n;
            if self.full(out.len(), filling) {
                out.push(std::mem::take(&mut filling));
            }
        }
        if filling > 0 {
            out.push(filling);
        }
        out
    }
}

/// One process: gradients are already the sum over the batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExchange;

impl GradientExchange for NoExchange {
    fn shard(&self) -> Shard {
        Shard::WHOLE
    }
    fn ready(&mut self, _: &[&Param]) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self, _: &mut Network, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn sum(&mut self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn all_gather(&mut self, value: u64) -> Result<Vec<u64>> {
        Ok(vec![value])
    }
}

/// Fails, on every rank alike, unless all ranks hold the same `value`; the error names
/// `what` and the ranks that differ from rank 0, then `hint`.
pub fn agree(ex: &mut dyn GradientExchange, what: &str, value: u64, hint: &str) -> Result<()> {
    let all = ex.all_gather(value)?;
    let odd: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(_, &v)| v != all[0])
        .map(|(r, _)| r.to_string())
        .collect();
    if odd.is_empty() {
        return Ok(());
    }
    Err(Error::Distributed(format!(
        "the ranks disagree on {what}: rank{} {} differ{} from rank 0{hint}",
        if odd.len() > 1 { "s" } else { "" },
        odd.join(", "),
        if odd.len() > 1 { "" } else { "s" },
    )))
}

/// Takes part in a step's exchange with zero gradients: a rank whose part of a (last,
/// partial) batch is empty hands over every parameter in backward's order all the same.
pub fn exchange_nothing(
    net: &mut Network,
    ex: &mut dyn GradientExchange,
    sums: &mut [f64],
) -> Result<()> {
    for p in net.params_mut() {
        if p.grad.shape() == p.value.shape() {
            p.grad.data_mut().fill(0.0);
        } else {
            p.grad = Tensor::zeros(p.value.shape())?;
        }
    }
    ex.ready(&net.ready_order())?;
    ex.finish(net, sums)
}

/// Replaces the buffers (batch-norm running moments, which each rank updates from its
/// own images) by their mean over the ranks, so that all ranks evaluate and save the
/// same model.
pub fn average_buffers(net: &mut Network, ex: &mut dyn GradientExchange) -> Result<()> {
    let ranks = ex.shard().ranks;
    if ranks == 1 {
        return Ok(());
    }
    let mut all: Vec<f64> = net
        .buffers()
        .flat_map(|b| b.value.data().iter().map(|&v| v as f64))
        .collect();
    ex.sum(&mut all)?;
    let names: Vec<(String, Vec<usize>)> = net
        .buffers()
        .map(|b| (b.name.clone(), b.value.shape().to_vec()))
        .collect();
    let mut rest = &all[..];
    for (name, shape) in names {
        let n = shape.iter().product();
        let (mine, next) = rest.split_at(n);
        let mean = mine.iter().map(|&v| (v / ranks as f64) as f32).collect();
        net.set_tensor(&name, Tensor::from_vec(&shape, mean)?)?;
        rest = next;
    }
    Ok(())
}

/// A 64-bit hash of the bits of every weight and buffer: equal on ranks that hold the
/// same model (cheap: one pass, once an epoch).
pub fn weights_checksum(net: &Network) -> u64 {
    let mut h = Fnv::default();
    for (name, t) in net.named_tensors() {
        h.bytes(name.as_bytes());
        for &v in t.data() {
            h.word(v.to_bits() as u64);
        }
    }
    h.0
}

/// A 64-bit hash of a data set's size, image shape, labels and class names (not its
/// pixels, which a streaming data set does not hold): ranks given different data sets
/// differ here.
pub fn data_fingerprint(data: &Images) -> Result<u64> {
    let (c, hh, w) = data.dims()?;
    let mut h = Fnv::default();
    for v in [data.len(), c, hh, w] {
        h.word(v as u64);
    }
    for &l in data.labels() {
        h.word(l as u64);
    }
    for c in data.classes() {
        h.bytes(c.as_bytes());
    }
    Ok(h.0)
}

/// A 64-bit hash of text (the command-line options of a run, say).
pub fn text_hash(text: &str) -> u64 {
    let mut h = Fnv::default();
    h.bytes(text.as_bytes());
    h.0
}

/// FNV-1a over 64-bit words.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.word(b.len() as u64);
        b.iter().for_each(|&c| self.word(c as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_buckets_follow_pytorch_sizes() {
        let b = Buckets::default();
        let mib = (1 << 20) / 4;
        // LeNet in backward order: conv4 (weight, bias), conv3, conv2, conv1.
        let lenet = [5000, 10, 400_000, 500, 25_000, 50, 500, 20];
        assert_eq!(b.sizes(lenet), vec![405_010, 26_070]);
        assert_eq!(b.sizes([mib, 1, 25 * mib, 3]), vec![mib, 25 * mib + 1, 3]);
        assert!(b.sizes(std::iter::empty()).is_empty());
    }

    #[test]
    fn exchange_checksum_sees_one_changed_bit() {
        let desc = crate::net::zoo::get("lenet").unwrap();
        let mut net = Network::from_desc(&desc, 1).unwrap();
        let a = weights_checksum(&net);
        assert_eq!(a, weights_checksum(&net.clone()));
        let p = net.params().next().unwrap();
        let (name, mut v) = (p.name.clone(), p.value.clone());
        v.data_mut()[3] = f32::from_bits(v.data()[3].to_bits() ^ 1);
        net.set_tensor(&name, v).unwrap();
        assert_ne!(a, weights_checksum(&net));
    }
}
