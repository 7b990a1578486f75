//! Launches of convnet's own kernels (`kernels.cu`), each the GPU twin of a CPU
//! function named in its comment, with the same shape checks.

use super::{Gpu, GpuTensor};
use crate::blocks::loss::LossKind;
use crate::device::DeviceError;
use crate::tensor::{dims4_of, fmt_shape, Dims4};
use crate::train::SolverKind;
use cudarc::driver::{CudaSlice, LaunchArgs, LaunchConfig, PushKernelArg};

/// Threads per block of the element-wise kernels; the grid strides over the rest.
const THREADS: u32 = 256;
/// At most this many blocks: enough to fill any current GPU, and the stride loop in
/// the kernels covers larger tensors.
const MAX_BLOCKS: u64 = 65_535;
/// `SUM_THREADS` in kernels.cu.
const SUM_THREADS: u32 = 1024;

fn grid(n: usize) -> LaunchConfig {
    let blocks = (n as u64).div_ceil(THREADS as u64).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The metrics and the loss the class kernels compute (`class_loss_forward`'s kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassMetric {
    SoftmaxLog,
    ClassError,
    TopKError(usize),
}

impl ClassMetric {
    /// The GPU form of a CPU loss, where there is one.
    pub fn of(kind: LossKind) -> Option<Self> {
        match kind {
            LossKind::SoftmaxLog => Some(ClassMetric::SoftmaxLog),
            LossKind::ClassError => Some(ClassMetric::ClassError),
            LossKind::TopKError(k) => Some(ClassMetric::TopKError(k)),
            _ => None,
        }
    }
    fn code(self) -> (i32, i32) {
        match self {
            ClassMetric::SoftmaxLog => (0, 0),
            ClassMetric::ClassError => (1, 1),
            ClassMetric::TopKError(k) => (2, k.min(i32::MAX as usize) as i32),
        }
    }
}

/// (N, C, H*W) of a loss's scores, with labels and weights checked to be (N, 1, H, W).
struct Sites {
    n: i64,
    c: i32,
    hw: i64,
}

impl Gpu {
    fn same_shape(&self, what: &str, a: &GpuTensor, b: &GpuTensor) -> Result<(), DeviceError> {
        if a.shape != b.shape {
            return Err(self.invalid(format!(
                "{what}: shapes {} and {} differ",
                fmt_shape(&a.shape),
                fmt_shape(&b.shape)
            )));
        }
        Ok(())
    }

    /// `y = f(x)` by the kernel `name`, with an optional leak argument.
    fn unary(
        &self,
        name: &str,
        x: &GpuTensor,
        leak: Option<f32>,
    ) -> Result<GpuTensor, DeviceError> {
        let f = self.function(name)?;
        let mut y = self.zeros(&x.shape)?;
        let n = x.len() as i64;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&x.data).arg(&mut y.data);
        if let Some(l) = &leak {
            b.arg(l);
        }
        b.arg(&n);
        // SAFETY: the kernel reads and writes n elements of buffers that hold n.
        unsafe { b.launch(grid(x.len())) }.map_err(|e| self.error(name, e))?;
        Ok(y)
    }

    /// `dx = dy * f'(x)` by the kernel `name`.
    fn unary_backward(
        &self,
        name: &str,
        x: &GpuTensor,
        dy: &GpuTensor,
        leak: Option<f32>,
    ) -> Result<GpuTensor, DeviceError> {
        self.same_shape(name, x, dy)?;
        let f = self.function(name)?;
        let mut dx = self.zeros(&x.shape)?;
        let n = x.len() as i64;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&x.data).arg(&dy.data).arg(&mut dx.data);
        if let Some(l) = &leak {
            b.arg(l);
        }
        b.arg(&n);
        // SAFETY: as in `unary`, with dy of the same length.
        unsafe { b.launch(grid(x.len())) }.map_err(|e| self.error(name, e))?;
        Ok(dx)
    }

    /// `blocks::activation::relu_forward`.
    pub fn relu_forward(&self, x: &GpuTensor, leak: f32) -> Result<GpuTensor, DeviceError> {
        self.unary("relu_forward", x, Some(leak))
    }
    /// `blocks::activation::relu_backward`.
    pub fn relu_backward(
        &self,
        x: &GpuTensor,
        leak: f32,
        dy: &GpuTensor,
    ) -> Result<GpuTensor, DeviceError> {
        self.unary_backward("relu_backward", x, dy, Some(leak))
    }
    pub fn sigmoid_forward(&self, x: &GpuTensor) -> Result<GpuTensor, DeviceError> {
        self.unary("sigmoid_forward", x, None)
    }
    pub fn sigmoid_backward(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
    ) -> Result<GpuTensor, DeviceError> {
        self.unary_backward("sigmoid_backward", x, dy, None)
    }
    pub fn tanh_forward(&self, x: &GpuTensor) -> Result<GpuTensor, DeviceError> {
        self.unary("tanh_forward", x, None)
    }
    pub fn tanh_backward(&self, x: &GpuTensor, dy: &GpuTensor) -> Result<GpuTensor, DeviceError> {
        self.unary_backward("tanh_backward", x, dy, None)
    }

    /// A dropout mask of 0 and 1/(1-rate), element `i` dropped where
    /// `dropout_uniform(seed, i) < rate` (the CPU's `make_mask` takes a generator
    /// instead; both keep each element with probability 1 - rate).
    pub fn dropout_mask(
        &self,
        shape: &[usize],
        rate: f32,
        seed: u64,
    ) -> Result<GpuTensor, DeviceError> {
        if !(0.0..1.0).contains(&rate) {
            return Err(self.invalid(format!("dropout rate {rate} must be in [0, 1)")));
        }
        let f = self.function("dropout_mask")?;
        let mut mask = self.zeros(shape)?;
        let (keep, n) = (1.0 / (1.0 - rate), mask.len() as i64);
        let mut b = self.stream.launch_builder(&f);
        b.arg(&mut mask.data)
            .arg(&seed)
            .arg(&rate)
            .arg(&keep)
            .arg(&n);
        // SAFETY: writes n elements of a buffer of n.
        unsafe { b.launch(grid(n as usize)) }.map_err(|e| self.error("dropout_mask", e))?;
        Ok(mask)
    }

    /// `blocks::dropout::forward` (and, with dy for x, `backward`): `x * mask`.
    pub fn times_mask(&self, x: &GpuTensor, mask: &GpuTensor) -> Result<GpuTensor, DeviceError> {
        self.same_shape("dropout", x, mask)?;
        let f = self.function("times_mask")?;
        let mut y = self.zeros(&x.shape)?;
        let n = x.len() as i64;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&x.data).arg(&mask.data).arg(&mut y.data).arg(&n);
        // SAFETY: three buffers of n elements.
        unsafe { b.launch(grid(x.len())) }.map_err(|e| self.error("times_mask", e))?;
        Ok(y)
    }

    /// One update of `w` from its batch-summed gradient `g`, as `train::Solver::step`
    /// does for one parameter: `state` holds the solver's buffers (momentum; or Adam's
    /// m and v) and `step` is the update's number from 1 (Adam's bias correction).
    #[allow(clippy::too_many_arguments)]
    pub fn solver_update(
        &self,
        kind: SolverKind,
        w: &mut GpuTensor,
        g: &GpuTensor,
        state: &mut [GpuTensor],
        rate: f32,
        decay: f32,
        batch: usize,
        step: u64,
    ) -> Result<(), DeviceError> {
        self.same_shape("solver", w, g)?;
        let want = kind.state_names().len();
        if state.len() != want {
            return Err(self.invalid(format!(
                "solver: {want} state buffers needed, {} given",
                state.len()
            )));
        }
        for s in state.iter() {
            self.same_shape("solver state", w, s)?;
        }
        let scale = 1.0 / batch.max(1) as f32;
        let n = w.len() as i64;
        match (kind, state) {
            (SolverKind::Sgd { momentum }, [m]) => {
                let f = self.function("sgd_update")?;
                let mut b = self.stream.launch_builder(&f);
                b.arg(&mut w.data).arg(&g.data).arg(&mut m.data);
                b.arg(&rate).arg(&scale).arg(&decay).arg(&momentum).arg(&n);
                // SAFETY: four buffers of n elements.
                unsafe { b.launch(grid(n as usize)) }.map_err(|e| self.error("sgd_update", e))?;
            }
            (SolverKind::Adam { beta1, beta2, eps }, [m, v]) => {
                let t = step.clamp(1, i32::MAX as u64) as i32;
                let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
                let f = self.function("adam_update")?;
                let mut b = self.stream.launch_builder(&f);
                b.arg(&mut w.data)
                    .arg(&g.data)
                    .arg(&mut m.data)
                    .arg(&mut v.data);
                b.arg(&rate)
                    .arg(&scale)
                    .arg(&decay)
                    .arg(&beta1)
                    .arg(&beta2)
                    .arg(&eps);
                b.arg(&c1).arg(&c2).arg(&n);
                // SAFETY: four buffers of n elements.
                unsafe { b.launch(grid(n as usize)) }.map_err(|e| self.error("adam_update", e))?;
            }
            _ => unreachable!("the state count was checked against the solver kind"),
        }
        Ok(())
    }

    fn sites(
        &self,
        x: &GpuTensor,
        labels: &GpuTensor,
        weights: Option<&GpuTensor>,
    ) -> Result<Sites, DeviceError> {
        let d = dims4_of(&x.shape).map_err(|e| self.invalid(format!("loss: x: {e}")))?;
        let site = Dims4::new(d.n, 1, d.h, d.w);
        for (what, t) in [("labels", Some(labels)), ("weights", weights)] {
            if let Some(t) = t {
                if dims4_of(&t.shape).ok() != Some(site) {
                    return Err(self.invalid(format!(
                        "loss: {what} have shape {} but x {} needs (N,1,H,W) = {}",
                        fmt_shape(&t.shape),
                        fmt_shape(&x.shape),
                        site
                    )));
                }
            }
        }
        if d.c == 0 || d.c > i32::MAX as usize {
            return Err(self.invalid(format!("loss: x {d} has {} classes", d.c)));
        }
        Ok(Sites {
            n: d.n as i64,
            c: d.c as i32,
            hw: d.plane() as i64,
        })
    }

    /// A buffer for the first bad label's location (+1), above every location.
    fn bad_label_slot(&self) -> Result<CudaSlice<u64>, DeviceError> {
        self.stream
            .clone_htod(&[u64::MAX])
            .map_err(|e| self.error("allocating", e))
    }

    /// An error naming the first location whose label is no class, if there is one.
    fn check_labels(&self, bad: &CudaSlice<u64>, s: &Sites) -> Result<(), DeviceError> {
        let v = self
            .stream
            .clone_dtoh(bad)
            .map_err(|e| self.error("reading the label check", e))?[0];
        if v == u64::MAX {
            return Ok(());
        }
        let site = (v - 1) as i64;
        let (n, at) = (site / s.hw.max(1), site % s.hw.max(1));
        Err(self.invalid(format!(
            "loss: the label of image {n}, location {at} is not a class index 0..{}",
            s.c - 1
        )))
    }

    /// `blocks::loss::forward` for the softmax log-loss and the class-error metrics:
    /// the weighted sum over locations and the batch, summed in double precision in a
    /// fixed order (the same bits on every run).
    pub fn class_loss(
        &self,
        x: &GpuTensor,
        labels: &GpuTensor,
        weights: Option<&GpuTensor>,
        metric: ClassMetric,
    ) -> Result<f32, DeviceError> {
        if metric == ClassMetric::TopKError(0) {
            return Err(self.invalid("loss: top-k error needs k >= 1, got 0"));
        }
        let s = self.sites(x, labels, weights)?;
        let count = (s.n * s.hw) as usize;
        let mut per_site = self
            .stream
            .alloc_zeros::<f64>(count.max(1))
            .map_err(|e| self.error("allocating the loss", e))?;
        let mut bad = self.bad_label_slot()?;
        let (kind, topk) = metric.code();
        let f = self.function("class_loss_forward")?;
        let mut b = self.stream.launch_builder(&f);
        loss_inputs(&mut b, x, labels, weights);
        b.arg(&mut per_site).arg(&mut bad).arg(&kind).arg(&topk);
        b.arg(&s.n).arg(&s.c).arg(&s.hw);
        // SAFETY: shapes checked by `sites`; per_site holds one value per location.
        unsafe { b.launch(grid(count)) }.map_err(|e| self.error("class_loss_forward", e))?;
        self.check_labels(&bad, &s)?;
        Ok(self.sum(&per_site, count)? as f32)
    }

    /// The sum of the first `n` values of `v`, by one block in a fixed order.
    fn sum(&self, v: &CudaSlice<f64>, n: usize) -> Result<f64, DeviceError> {
        let f = self.function("sum_f64")?;
        let mut out = self
            .stream
            .alloc_zeros::<f64>(1)
            .map_err(|e| self.error("allocating", e))?;
        let n = n as i64;
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (SUM_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream.launch_builder(&f);
        b.arg(v).arg(&mut out).arg(&n);
        // SAFETY: reads n values of v, writes one.
        unsafe { b.launch(cfg) }.map_err(|e| self.error("sum_f64", e))?;
        let host = self
            .stream
            .clone_dtoh(&out)
            .map_err(|e| self.error("reading a sum", e))?;
        Ok(host[0])
    }

    /// `blocks::loss::backward` for the softmax log-loss.
    pub fn softmax_log_loss_backward(
        &self,
        x: &GpuTensor,
        labels: &GpuTensor,
        weights: Option<&GpuTensor>,
        dzdy: f32,
    ) -> Result<GpuTensor, DeviceError> {
        let s = self.sites(x, labels, weights)?;
        let mut dx = self.zeros(&x.shape)?;
        let mut bad = self.bad_label_slot()?;
        let f = self.function("softmax_log_loss_backward")?;
        let mut b = self.stream.launch_builder(&f);
        loss_inputs(&mut b, x, labels, weights);
        b.arg(&mut dx.data)
            .arg(&mut bad)
            .arg(&dzdy)
            .arg(&s.n)
            .arg(&s.c)
            .arg(&s.hw);
        // SAFETY: shapes checked by `sites`; dx has the shape of x.
        unsafe { b.launch(grid((s.n * s.hw) as usize)) }
            .map_err(|e| self.error("softmax_log_loss_backward", e))?;
        self.check_labels(&bad, &s)?;
        Ok(dx)
    }
}

/// A null device pointer, for an absent optional buffer.
static NULL: u64 = 0;

/// The first three arguments of the loss kernels: scores, labels, and the weights or a
/// null pointer.
fn loss_inputs<'a>(
    b: &mut LaunchArgs<'a>,
    x: &'a GpuTensor,
    labels: &'a GpuTensor,
    weights: Option<&'a GpuTensor>,
) {
    b.arg(&x.data).arg(&labels.data);
    match weights {
        Some(w) => b.arg(&w.data),
        None => b.arg(&NULL),
    };
}
