//! The network: layers in a topological order over named variables, with their
//! parameters, run forward and backward.

use super::desc::NetDesc;
use super::layer::{LayerKind, Param};
use super::Mode;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// A layer as built: its block and options, wiring and parameters.
#[derive(Clone, Debug)]
pub struct Layer {
    pub name: String,
    pub kind: LayerKind,
    pub inputs: Vec<String>,
    pub output: String,
    /// Indices into the network's parameter list (trained parameters, then buffers).
    pub params: Vec<usize>,
    input_ids: Vec<usize>,
    output_id: usize,
    /// Dropout's mask from the last training-mode forward.
    mask: Option<Tensor>,
}

/// A graph network. Build it with [`Network::new`] (zero weights) or
/// [`Network::from_desc`] (initialised from a seed).
#[derive(Clone, Debug)]
pub struct Network {
    desc: NetDesc,
    layers: Vec<Layer>,
    params: Vec<Param>,
    var_names: Vec<String>,
    values: Vec<Option<Tensor>>,
    grads: Vec<Option<Tensor>>,
    input_grads: bool,
    rng: Xoshiro256PlusPlus,
    last_mode: Option<Mode>,
}

impl Network {
    /// Builds the network with zero weights (unit batch-norm gains and variances).
    pub fn new(desc: &NetDesc) -> Result<Network> {
        let _ = desc;
        Err(Error::Invalid("network building is not written yet".into()))
    }

    /// Builds the network and initialises its weights from `seed`.
    pub fn from_desc(desc: &NetDesc, seed: u64) -> Result<Network> {
        let mut net = Network::new(desc)?;
        net.init(seed);
        Ok(net)
    }

    /// Draws every weight again from the description's initialisation, seeded.
    pub fn init(&mut self, seed: u64) {
        let _ = seed;
    }

    pub fn desc(&self) -> &NetDesc {
        &self.desc
    }

    /// Layers in execution (topological) order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    pub fn classes(&self) -> &[String] {
        &self.desc.classes
    }

    /// Input size (H, W, C) of `input`.
    pub fn input_size(&self) -> Option<[usize; 3]> {
        self.desc.input_size()
    }

    /// Trained parameters (not the buffers), in a fixed order.
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| p.trainable)
    }

    /// Trained parameters, for a solver to update `value` from `grad`.
    pub fn params_mut(&mut self) -> impl Iterator<Item = &mut Param> {
        self.params.iter_mut().filter(|p| p.trainable)
    }

    /// Buffers (batch-norm running moments): saved, not trained.
    pub fn buffers(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| !p.trainable)
    }

    /// Every named tensor to save (parameters and buffers), in a fixed order.
    pub fn named_tensors(&self) -> Vec<(&str, &Tensor)> {
        self.params
            .iter()
            .map(|p| (p.name.as_str(), &p.value))
            .collect()
    }

    /// A parameter or buffer by name.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Replaces the value of parameter or buffer `name`; the shape must match.
    pub fn set_tensor(&mut self, name: &str, value: Tensor) -> Result<()> {
        let p = self
            .params
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::Invalid(format!("the network has no tensor '{name}'")))?;
        if p.value.shape() != value.shape() {
            return Err(Error::layer(
                p.layer.clone(),
                format!(
                    "tensor '{name}' has shape {} but {} was given",
                    crate::tensor::fmt_shape(p.value.shape()),
                    crate::tensor::fmt_shape(value.shape())
                ),
            ));
        }
        p.value = value;
        Ok(())
    }

    /// Seeds the generator of dropout masks (call before each training forward for
    /// runs that resume bit for bit).
    pub fn set_rng_seed(&mut self, seed: u64) {
        self.rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    }

    /// Whether backward also computes the derivatives of the network inputs
    /// (off by default: nobody needs them in training).
    pub fn set_input_grads(&mut self, on: bool) {
        self.input_grads = on;
    }

    /// Runs every layer whose inputs are available, given the named inputs
    /// (e.g. `[("input", &x), ("label", &y)]`). Layers missing an input (the loss
    /// and metrics when no `label` is given) are skipped, and so are their outputs.
    pub fn forward(&mut self, inputs: &[(&str, &Tensor)], mode: Mode) -> Result<()> {
        let _ = (inputs, mode);
        Err(Error::Invalid("forward is not written yet".into()))
    }

    /// Back-propagates `dzdy` (dz/d objective; 1 gives gradients of the loss summed
    /// over the batch) from every loss output of the last forward. Parameter
    /// gradients are zeroed first, then summed (over the batch and over the layers
    /// that share a parameter).
    pub fn backward(&mut self, dzdy: f32) -> Result<()> {
        let _ = dzdy;
        Err(Error::Invalid("backward is not written yet".into()))
    }

    /// A variable's value after the last forward (None if it was not computed).
    pub fn var(&self, name: &str) -> Option<&Tensor> {
        let i = self.var_names.iter().position(|v| v == name)?;
        self.values.get(i)?.as_ref()
    }

    /// A variable's derivative after the last backward (None if not computed).
    pub fn var_grad(&self, name: &str) -> Option<&Tensor> {
        let i = self.var_names.iter().position(|v| v == name)?;
        self.grads.get(i)?.as_ref()
    }

    /// `objective` after the last forward (the loss summed over the batch).
    pub fn objective(&self) -> Option<f32> {
        self.scalar("objective")
    }

    /// `prediction` after the last forward (the scores before the loss).
    pub fn prediction(&self) -> Option<&Tensor> {
        self.var("prediction")
    }

    /// A scalar variable (a loss or a metric count) after the last forward.
    pub fn scalar(&self, name: &str) -> Option<f32> {
        self.var(name).and_then(|t| t.data().first().copied())
    }

    /// Names of all variables (inputs first, then layer outputs in order).
    pub fn var_names(&self) -> &[String] {
        &self.var_names
    }
}
