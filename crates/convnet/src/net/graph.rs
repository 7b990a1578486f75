//! The network: layers in a topological order over named variables, with their
//! parameters, run forward and backward.

use super::desc::{LayerDesc, NetDesc};
use super::init::Init;
use super::layer::{LayerKind, Param};
use super::Mode;
use crate::blocks::conv::FilterCache;
use crate::blocks::kernels::{conv_gemm, eltwise};
use crate::blocks::loss::LossKind;
use crate::blocks::{activation, bnorm, concat, conv, convt, dropout, loss, lrn, pool, softmax};
use crate::error::{Error, Result};
use crate::tensor::{fmt_shape, Dims4, Tensor};
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
    init: Init,
    /// With memory conservation: a ReLU that overwrites its input (read by no
    /// other layer) and differentiates from its output; a convolution whose only
    /// reader is such a ReLU (leak 0) and that applies it as it writes.
    relu_in_place: bool,
    fused_relu: bool,
    /// Kept fixed (see [`Network::freeze_through`]).
    frozen: bool,
    /// A convolution's filters packed by its last test-mode forward.
    filters: FilterCache,
    /// A batch normalisation's batch moments from its last training-mode forward,
    /// which its backward differentiates through.
    moments: Option<bnorm::Moments>,
}

impl Layer {
    /// Whether the layer is kept fixed while the rest trains.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }
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
    conserve: bool,
}

impl Network {
    /// Builds the network with zero weights (unit batch-norm gains and variances).
    ///
    /// When the description has a `prediction` and no metrics, the layers `top1err`
    /// (class error) and `top5err` (top-5 error) are added, reading `prediction` and
    /// `label`; like the loss they are skipped when no `label` is given.
    pub fn new(desc: &NetDesc) -> Result<Network> {
        let full = with_metrics(desc);
        let plan = Plan::new(&full)?;
        let desc_full = &full;
        let mut params: Vec<Param> = Vec::new();
        let mut layers = Vec::with_capacity(plan.order.len());
        for &li in &plan.order {
            let l = &desc_full.layers[li];
            let ids = layer_params(desc_full, l, &plan.param_shapes[li], &mut params)?;
            layers.push(Layer {
                name: l.name.clone(),
                kind: l.kind.clone(),
                inputs: l.inputs.clone(),
                output: l.outputs[0].clone(),
                params: ids,
                input_ids: plan.layer_inputs[li].clone(),
                output_id: plan.layer_output[li],
                mask: None,
                init: l.init.unwrap_or(desc.init),
                relu_in_place: false,
                fused_relu: false,
                frozen: false,
                filters: FilterCache::default(),
                moments: None,
            });
        }
        let n = plan.var_names.len();
        plan_in_place(&mut layers, n);
        Ok(Network {
            desc: desc.clone(),
            layers,
            params,
            var_names: plan.var_names,
            values: vec![None; n],
            grads: vec![None; n],
            input_grads: false,
            rng: Xoshiro256PlusPlus::seed_from_u64(0),
            last_mode: None,
            conserve: false,
        })
    }

    /// Builds the network and initialises its weights from `seed`.
    pub fn from_desc(desc: &NetDesc, seed: u64) -> Result<Network> {
        let mut net = Network::new(desc)?;
        net.init(seed);
        Ok(net)
    }

    /// Draws every weight again from the description's initialisation, seeded: one
    /// stream, parameters in order (a shared parameter is drawn once). Biases and
    /// running means become 0, batch-norm gains and running variances 1.
    pub fn init(&mut self, seed: u64) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut done = vec![false; self.params.len()];
        for layer in &self.layers {
            let init = layer.init;
            for (k, &pi) in layer.params.iter().enumerate() {
                if std::mem::replace(&mut done[pi], true) {
                    continue;
                }
                let p = &mut self.params[pi];
                match (&layer.kind, k) {
                    (LayerKind::Conv { .. } | LayerKind::ConvT { .. }, 0) => {
                        init.fill(&mut p.value, &mut rng)
                    }
                    (LayerKind::BNorm { .. }, 0 | 3) => p.value.data_mut().fill(1.0),
                    _ => p.value.data_mut().fill(0.0),
                }
            }
        }
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
                    fmt_shape(p.value.shape()),
                    fmt_shape(value.shape())
                ),
            ));
        }
        p.value = value;
        Ok(())
    }

    /// Keeps layer `name` and every layer it depends on (in a chain, all the layers
    /// before it) fixed while the rest trains: their parameters are no longer trained
    /// (no update, no weight decay) and backward stops above them, since nothing below
    /// needs a derivative; they run as in test mode (batch normalisation uses its stored
    /// moments and leaves them as they are, dropout passes everything). A parameter
    /// shared with a layer that is not frozen is frozen too. Returns the frozen layers'
    /// names in execution order; fails on an unknown name or when nothing would be
    /// left to train.
    pub fn freeze_through(&mut self, name: &str) -> Result<Vec<String>> {
        let Some(target) = self.layers.iter().position(|l| l.name == name) else {
            let names: Vec<&str> = self.layers.iter().map(|l| l.name.as_str()).collect();
            return Err(Error::Invalid(format!(
                "network '{}' has no layer '{name}' (its layers: {})",
                self.desc.name,
                names.join(", ")
            )));
        };
        let mut frozen = vec![false; self.layers.len()];
        frozen[target] = true;
        // Producers run before their readers, so one sweep down marks every ancestor.
        for li in (0..=target).rev() {
            if !frozen[li] {
                continue;
            }
            for &v in &self.layers[li].input_ids {
                if let Some(p) = self.layers.iter().position(|l| l.output_id == v) {
                    frozen[p] = true;
                }
            }
        }
        let left = self.layers.iter().zip(&frozen).any(|(l, &f)| {
            !f && l.params.iter().any(|&p| {
                self.params[p].trainable
                    && !self
                        .layers
                        .iter()
                        .zip(&frozen)
                        .any(|(o, &of)| of && o.params.contains(&p))
            })
        });
        if !left {
            return Err(Error::Invalid(format!(
                "freezing '{name}' and the layers before it leaves nothing of network '{}' to train",
                self.desc.name
            )));
        }
        let mut names = Vec::new();
        for (l, _) in self.layers.iter_mut().zip(&frozen).filter(|(_, &f)| f) {
            l.frozen = true;
            for &p in &l.params {
                self.params[p].trainable = false;
            }
            names.push(l.name.clone());
        }
        Ok(names)
    }

    /// Seeds the generator of dropout masks (call before each training forward for
    /// runs that resume bit for bit).
    pub fn set_rng_seed(&mut self, seed: u64) {
        self.rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    }

    /// Memory conservation (off by default), as MatConvNet's `conserveMemory`: a
    /// ReLU whose input no other layer reads overwrites it (a convolution feeding
    /// it applies the ReLU as it writes its output), so that input is no longer
    /// readable through [`Network::var`] after the forward; backward runs such a
    /// ReLU over the derivative itself (its [`BackwardStep::dy`] is then None) and
    /// frees each layer's output once no layer still to run needs it. Results are
    /// the same bits either way.
    pub fn set_conserve_memory(&mut self, on: bool) {
        self.conserve = on;
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
        self.forward_observed(inputs, mode, &mut |_| Ok(()))
    }

    /// [`Network::forward`], calling `observe` after each layer that ran, in
    /// execution order, with the layer's output (for per-layer timing and
    /// diagnostics). An error from `observe` stops the forward pass and is returned.
    pub fn forward_observed(
        &mut self,
        inputs: &[(&str, &Tensor)],
        mode: Mode,
        observe: &mut dyn FnMut(ForwardStep<'_>) -> Result<()>,
    ) -> Result<()> {
        self.values.iter_mut().for_each(|v| *v = None);
        self.grads.iter_mut().for_each(|v| *v = None);
        self.last_mode = None;
        for (name, t) in inputs {
            let id = self.input_id(name)?;
            self.values[id] = Some((*t).clone());
        }
        let Network {
            layers,
            params,
            values,
            rng,
            conserve,
            ..
        } = self;
        let conserve = *conserve;
        for (li, layer) in layers.iter_mut().enumerate() {
            let y = if conserve && layer.relu_in_place {
                // the input is this ReLU's alone: take it over
                let Some(mut x) = values[layer.input_ids[0]].take() else {
                    continue;
                };
                if let (LayerKind::Relu { leak }, false) = (&layer.kind, layer.fused_relu) {
                    activation::relu_forward_in_place(&mut x, *leak);
                }
                x
            } else {
                let xs: Option<Vec<&Tensor>> = layer
                    .input_ids
                    .iter()
                    .map(|&i| values[i].as_ref())
                    .collect();
                let Some(xs) = xs else { continue };
                let mode = if layer.frozen { Mode::Test } else { mode };
                forward_layer(layer, &xs, params, rng, mode, conserve)
                    .map_err(|e| Error::layer(layer.name.clone(), e.to_string()))?
            };
            let y = values[layer.output_id].insert(y);
            observe(ForwardStep {
                layer: li,
                name: &layer.name,
                y,
            })?;
        }
        self.last_mode = Some(mode);
        Ok(())
    }

    /// The variable id of network input `name`, or an error listing the inputs.
    fn input_id(&self, name: &str) -> Result<usize> {
        let produced = |id: usize| self.layers.iter().any(|l| l.output_id == id);
        match self.var_names.iter().position(|v| v == name) {
            Some(id) if !produced(id) => Ok(id),
            _ => {
                let names: Vec<&str> = (0..self.var_names.len())
                    .filter(|&i| !produced(i))
                    .map(|i| self.var_names[i].as_str())
                    .collect();
                Err(Error::Invalid(format!(
                    "'{name}' is not an input of network '{}' (its inputs: {})",
                    self.desc.name,
                    names.join(", ")
                )))
            }
        }
    }

    /// Which variables need a derivative: those that depend on a trained parameter
    /// (or on a network input, when input derivatives are asked for).
    fn needs_grad(&self) -> Vec<bool> {
        let mut need = vec![false; self.var_names.len()];
        if self.input_grads {
            for (i, n) in need.iter_mut().enumerate() {
                *n = !self.layers.iter().any(|l| l.output_id == i) && self.var_names[i] != "label";
            }
        }
        for l in &self.layers {
            let trains = l.params.iter().any(|&p| self.params[p].trainable);
            let fed = match l.kind {
                // A loss differentiates its scores only, never labels or weights.
                LayerKind::Loss(_) => need[l.input_ids[0]],
                _ => l.input_ids.iter().any(|&i| need[i]),
            };
            need[l.output_id] = (trains || fed) && !l.kind.is_metric();
        }
        need
    }

    /// Back-propagates `dzdy` (dz/d objective; 1 gives gradients of the loss summed
    /// over the batch) from every loss output of the last forward. Parameter
    /// gradients are zeroed first, then summed (over the batch and over the layers
    /// that share a parameter). Derivatives of intermediate variables are freed as
    /// soon as they are used; those of network inputs are kept (see
    /// [`Network::set_input_grads`]). After a test-mode forward, the derivatives are
    /// those of the test-mode network (batch normalisation by its running moments, a
    /// fixed affine map per channel).
    pub fn backward(&mut self, dzdy: f32) -> Result<()> {
        self.backward_observed(dzdy, &mut |_| Ok(()))
    }

    /// [`Network::backward`], calling `observe` once per layer in backward (reverse
    /// execution) order, skipped layers included, after that layer's derivatives are
    /// done. The event carries the derivative that reached the layer's output and the
    /// trained parameters whose gradients are now final (no layer still to run uses
    /// them): a data-parallel run starts exchanging those while backward goes on, and
    /// diagnostics read the derivatives as they pass. An error from `observe` stops
    /// the backward pass and is returned.
    pub fn backward_observed(
        &mut self,
        dzdy: f32,
        observe: &mut dyn FnMut(BackwardStep<'_>) -> Result<()>,
    ) -> Result<()> {
        self.backward_seeded(Seed::Objective(dzdy), observe)
    }

    /// Back-propagates `dzdvar`, the derivative of some scalar z with respect to
    /// variable `var` of the last forward, instead of a loss's: a one-hot over
    /// `prediction` gives the derivatives of one class score, which is what explaining
    /// a prediction needs (no label, no loss). Observed as
    /// [`Network::backward_observed`].
    pub fn backward_from(
        &mut self,
        var: &str,
        dzdvar: &Tensor,
        observe: &mut dyn FnMut(BackwardStep<'_>) -> Result<()>,
    ) -> Result<()> {
        self.backward_seeded(Seed::Var(var, dzdvar), observe)
    }

    fn backward_seeded(
        &mut self,
        seed: Seed<'_>,
        observe: &mut dyn FnMut(BackwardStep<'_>) -> Result<()>,
    ) -> Result<()> {
        let Some(mode) = self.last_mode else {
            return Err(Error::Invalid("backward needs a forward first".into()));
        };
        // Each gradient is written over by its first contribution and added to by
        // the others; one that none reaches is zeroed when it becomes final.
        for p in self.params.iter_mut().filter(|p| p.trainable) {
            if p.grad.shape() != p.value.shape() {
                p.grad = Tensor::zeros(p.value.shape())?;
            }
        }
        let mut written = vec![false; self.params.len()];
        let need = self.needs_grad();
        self.grads.iter_mut().for_each(|g| *g = None);
        match seed {
            Seed::Objective(dzdy) => {
                let mut seeded = false;
                for l in self.layers.iter().filter(|l| l.kind.is_objective()) {
                    if self.values[l.output_id].is_some() {
                        self.grads[l.output_id] = Some(Tensor::full(&[1], dzdy)?);
                        seeded = true;
                    }
                }
                if !seeded {
                    return Err(Error::Invalid(
                        "backward: no loss was computed in the last forward (was 'label' given?)"
                            .into(),
                    ));
                }
            }
            Seed::Var(var, dzdvar) => {
                let id = self.seed_var(var, dzdvar, &need)?;
                self.grads[id] = Some(dzdvar.clone());
            }
        }
        let final_at = self.last_users();
        let Network {
            layers,
            params,
            values,
            grads,
            conserve,
            ..
        } = self;
        let conserve = *conserve;
        for (li, layer) in layers.iter().enumerate().rev() {
            let mut dy = grads[layer.output_id].take();
            if conserve && layer.relu_in_place {
                // the derivative becomes the input's, in place
                if let (Some(d), LayerKind::Relu { leak }) = (dy.take(), &layer.kind) {
                    relu_in_place_backward(layer, *leak, values, grads, &need, d)?;
                }
            } else if let Some(dy) = &dy {
                backward_one(layer, params, values, grads, &need, dy, mode, &mut written)?;
            }
            for &p in &final_at[li] {
                if !std::mem::replace(&mut written[p], true) {
                    params[p].grad.data_mut().fill(0.0);
                }
            }
            let ready: Vec<&Param> = final_at[li].iter().map(|&p| &params[p]).collect();
            observe(BackwardStep {
                layer: li,
                name: &layer.name,
                dy: dy.as_ref(),
                ready: &ready,
            })?;
            if conserve && !layer.kind.is_objective() && !layer.kind.is_metric() {
                // every layer that reads this output has run its backward
                if layer.output != "prediction" {
                    values[layer.output_id] = None;
                }
            }
        }
        Ok(())
    }

    /// The id of variable `var`, checked as a seed of [`Network::backward_from`]: it
    /// was computed in the last forward, `dzdvar` has its shape, and something below
    /// it is differentiated.
    fn seed_var(&self, var: &str, dzdvar: &Tensor, need: &[bool]) -> Result<usize> {
        let id = self
            .var_names
            .iter()
            .position(|v| v == var)
            .ok_or_else(|| Error::Invalid(format!("backward: no variable '{var}'")))?;
        let value = self.values[id].as_ref().ok_or_else(|| {
            Error::Invalid(format!(
                "backward: '{var}' was not computed in the last forward"
            ))
        })?;
        if value.shape() != dzdvar.shape() {
            return Err(Error::Invalid(format!(
                "backward: the derivative of '{var}' has shape {} but '{var}' has {}",
                fmt_shape(dzdvar.shape()),
                fmt_shape(value.shape())
            )));
        }
        if !need[id] {
            return Err(Error::Invalid(format!(
                "backward: '{var}' depends on no trained parameter (nor on the input, unless input derivatives are asked for)"
            )));
        }
        Ok(id)
    }

    /// The trained parameters in the order [`Network::backward_observed`] hands them
    /// over as ready (a rank with no images in a batch takes part in the gradient
    /// exchange in that order all the same).
    pub fn ready_order(&self) -> Vec<&Param> {
        let at = self.last_users();
        at.iter()
            .rev()
            .flat_map(|ps| ps.iter().map(|&p| &self.params[p]))
            .collect()
    }

    /// Per layer (execution order), the trained parameters it is the first user of:
    /// in backward order, their gradients are final once that layer is done.
    fn last_users(&self) -> Vec<Vec<usize>> {
        let mut first_user: Vec<Option<usize>> = vec![None; self.params.len()];
        for (li, l) in self.layers.iter().enumerate() {
            for &p in &l.params {
                first_user[p].get_or_insert(li);
            }
        }
        let mut at = vec![Vec::new(); self.layers.len()];
        for (p, u) in first_user.iter().enumerate() {
            if let (Some(li), true) = (u, self.params[p].trainable) {
                at[*li].push(p);
            }
        }
        at
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

/// One layer's step of [`Network::forward_observed`].
pub struct ForwardStep<'a> {
    /// The layer's index in [`Network::layers`].
    pub layer: usize,
    pub name: &'a str,
    /// The layer's output.
    pub y: &'a Tensor,
}

/// One layer's step of [`Network::backward_observed`].
pub struct BackwardStep<'a> {
    /// The layer's index in [`Network::layers`].
    pub layer: usize,
    pub name: &'a str,
    /// dz/d(the layer's output), summed over the batch; None where nothing reached it
    /// (the layer does not lead to a loss, or nothing below it trains).
    pub dy: Option<&'a Tensor>,
    /// Trained parameters whose gradients are final from this step on.
    pub ready: &'a [&'a Param],
}

/// Where a backward pass starts.
enum Seed<'a> {
    /// Every loss computed in the last forward, with dz/d(loss).
    Objective(f32),
    /// One variable, with dz/d(variable).
    Var(&'a str, &'a Tensor),
}

/// The backward of one layer given `dy`: parameter gradients added into `params`,
/// input derivatives added into `grads` where `need` asks for them.
#[allow(clippy::too_many_arguments)]
fn backward_one(
    layer: &Layer,
    params: &mut [Param],
    values: &[Option<Tensor>],
    grads: &mut [Option<Tensor>],
    need: &[bool],
    dy: &Tensor,
    mode: Mode,
    written: &mut [bool],
) -> Result<()> {
    let want: Vec<bool> = layer.input_ids.iter().map(|&i| need[i]).collect();
    let trains = layer.params.iter().any(|&p| params[p].trainable);
    if !trains && !want.contains(&true) {
        return Ok(());
    }
    let xs: Option<Vec<&Tensor>> = layer
        .input_ids
        .iter()
        .map(|&i| values[i].as_ref())
        .collect();
    let xs = xs.ok_or_else(|| {
        Error::layer(
            layer.name.clone(),
            "an input was not computed in the forward",
        )
    })?;
    let dxs = backward_layer(layer, &xs, params, dy, &want, mode, written)
        .map_err(|e| Error::layer(layer.name.clone(), e.to_string()))?;
    for ((&i, dx), &w) in layer.input_ids.iter().zip(dxs).zip(&want) {
        let (Some(dx), true) = (dx, w) else { continue };
        add_var_grad(grads, i, dx)?;
    }
    Ok(())
}

/// Adds `dx` to the derivative of variable `i` (or makes it that).
fn add_var_grad(grads: &mut [Option<Tensor>], i: usize, dx: Tensor) -> Result<()> {
    match &mut grads[i] {
        Some(g) => g.axpy(1.0, &dx),
        g => {
            *g = Some(dx);
            Ok(())
        }
    }
}

/// The backward of a ReLU that ran in place: `dy` masked by where the ReLU's
/// output is positive, handed down as its input's derivative.
fn relu_in_place_backward(
    layer: &Layer,
    leak: f32,
    values: &[Option<Tensor>],
    grads: &mut [Option<Tensor>],
    need: &[bool],
    dy: Tensor,
) -> Result<()> {
    let x = layer.input_ids[0];
    if !need[x] {
        return Ok(());
    }
    let y = values[layer.output_id].as_ref().ok_or_else(|| {
        Error::layer(
            layer.name.clone(),
            "the output was not kept for the backward",
        )
    })?;
    let dx = activation::relu_backward_in_place(y, leak, dy)
        .map_err(|e| Error::layer(layer.name.clone(), e.to_string()))?;
    add_var_grad(grads, x, dx)
}

/// Marks the ReLUs that may run in place (their input is a layer's output that no
/// other layer reads, and the slope is not negative) and the convolutions that may
/// apply such a ReLU themselves (leak 0). A ReLU marked `fused_relu` skips its own
/// pass: its producer did it.
fn plan_in_place(layers: &mut [Layer], vars: usize) {
    let mut readers = vec![0usize; vars];
    let mut producer: Vec<Option<usize>> = vec![None; vars];
    for (li, l) in layers.iter().enumerate() {
        for &i in &l.input_ids {
            readers[i] += 1;
        }
        producer[l.output_id] = Some(li);
    }
    for li in 0..layers.len() {
        let LayerKind::Relu { leak } = layers[li].kind else {
            continue;
        };
        let x = layers[li].input_ids[0];
        let Some(p) = producer[x] else { continue };
        if readers[x] != 1 || leak < 0.0 || layers[p].output == "prediction" {
            continue;
        }
        layers[li].relu_in_place = true;
        if leak == 0.0 && matches!(layers[p].kind, LayerKind::Conv { .. }) {
            layers[p].fused_relu = true;
            layers[li].fused_relu = true;
        }
    }
}

/// `desc` with the metric layers `top1err` and `top5err` added when it has a
/// `prediction` and neither metric.
fn with_metrics(desc: &NetDesc) -> NetDesc {
    let mut d = desc.clone();
    let outputs = || desc.layers.iter().flat_map(|l| &l.outputs);
    let has = |name: &str| outputs().any(|o| o == name);
    if !has("prediction") || has("top1err") || has("top5err") {
        return d;
    }
    for (name, kind) in [
        ("top1err", LossKind::ClassError),
        ("top5err", LossKind::TopKError(5)),
    ] {
        let mut l = LayerDesc::new(name, LayerKind::Loss(kind));
        l.inputs = vec!["prediction".into(), "label".into()];
        l.outputs = vec![name.into()];
        d.layers.push(l);
    }
    d
}

/// The network's wiring and sizes for one image, worked out from a description
/// without any data: execution order, variables and their sizes, parameter shapes.
pub(crate) struct Plan {
    /// Description indices of the layers, in execution order.
    pub order: Vec<usize>,
    pub var_names: Vec<String>,
    /// Size of each variable for a batch of one.
    pub var_dims: Vec<Dims4>,
    /// Per description layer: its input and output variable ids.
    pub layer_inputs: Vec<Vec<usize>>,
    pub layer_output: Vec<usize>,
    /// Per description layer: shapes of its parameters, then of its buffers.
    pub param_shapes: Vec<Vec<Vec<usize>>>,
}

impl Plan {
    pub fn new(desc: &NetDesc) -> Result<Plan> {
        let mut var_names: Vec<String> = desc.inputs.iter().map(|i| i.name.clone()).collect();
        let mut var_dims: Vec<Option<Dims4>> = desc
            .inputs
            .iter()
            .map(|i| Some(Dims4::new(1, i.size[2], i.size[0], i.size[1])))
            .collect();
        if !var_names.iter().any(|v| v == "label") {
            var_names.push("label".into());
            var_dims.push(Some(Dims4::new(1, 1, 1, 1)));
        }
        let n_inputs = var_names.len();
        let mut layer_output = Vec::with_capacity(desc.layers.len());
        for l in &desc.layers {
            let [out] = &l.outputs[..] else {
                return Err(
                    desc.layer_error(l, format!("a layer has one output, got {:?}", l.outputs))
                );
            };
            if let Some(i) = var_names.iter().position(|v| v == out) {
                let owner = if i < n_inputs {
                    "a network input".to_string()
                } else {
                    let k = layer_output.iter().position(|&o| o == i).unwrap_or(0);
                    format!("the output of layer '{}'", desc.layers[k].name)
                };
                return Err(desc.layer_error(l, format!("output '{out}' is already {owner}")));
            }
            layer_output.push(var_names.len());
            var_names.push(out.clone());
            var_dims.push(None);
        }
        let mut layer_inputs = Vec::with_capacity(desc.layers.len());
        for l in &desc.layers {
            if l.inputs.is_empty() {
                return Err(desc.layer_error(l, "no inputs".into()));
            }
            let ids = l
                .inputs
                .iter()
                .map(|v| {
                    var_names.iter().position(|n| n == v).ok_or_else(|| {
                        desc.layer_error(
                            l,
                            format!(
                                "input '{v}' is neither a network input nor any layer's output"
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            layer_inputs.push(ids);
        }
        // Kahn's algorithm, taking the first ready layer in description order, so a
        // chain runs in the order it is written.
        let mut order = Vec::with_capacity(desc.layers.len());
        let mut placed = vec![false; desc.layers.len()];
        let mut ready: Vec<bool> = (0..var_names.len()).map(|i| i < n_inputs).collect();
        while order.len() < desc.layers.len() {
            let next = (0..desc.layers.len())
                .find(|&k| !placed[k] && layer_inputs[k].iter().all(|&i| ready[i]));
            let Some(k) = next else {
                let stuck: Vec<&str> = (0..desc.layers.len())
                    .filter(|&k| !placed[k])
                    .map(|k| desc.layers[k].name.as_str())
                    .collect();
                let first = (0..desc.layers.len())
                    .find(|&k| !placed[k])
                    .map(|k| &desc.layers[k]);
                let msg =
                    format!("the layers {stuck:?} form a cycle (each waits for another's output)");
                return Err(match first {
                    Some(l) => desc.layer_error(l, msg),
                    None => Error::file(&desc.origin, None, msg),
                });
            };
            placed[k] = true;
            ready[layer_output[k]] = true;
            order.push(k);
        }
        let mut param_shapes = vec![Vec::new(); desc.layers.len()];
        for &k in &order {
            let l = &desc.layers[k];
            let xs: Vec<Dims4> = layer_inputs[k]
                .iter()
                .map(|&i| var_dims[i].unwrap_or(Dims4::new(1, 1, 1, 1)))
                .collect();
            let (y, shapes) = infer(l, &xs).map_err(|m| desc.layer_error(l, m))?;
            var_dims[layer_output[k]] = Some(y);
            param_shapes[k] = shapes;
        }
        Ok(Plan {
            order,
            var_names,
            var_dims: var_dims
                .into_iter()
                .map(|d| d.unwrap_or(Dims4::new(1, 1, 1, 1)))
                .collect(),
            layer_inputs,
            layer_output,
            param_shapes,
        })
    }
}

/// Fails unless a layer of `kind` gets between `lo` and `hi` inputs.
fn arity(kind: &LayerKind, n: usize) -> std::result::Result<(), String> {
    let (lo, hi) = match kind {
        LayerKind::Concat | LayerKind::Sum => (1, usize::MAX),
        LayerKind::Loss(_) => (2, 3),
        _ => (1, 1),
    };
    if n < lo || n > hi {
        let want = match kind {
            LayerKind::Loss(_) => "2 (scores, labels) or 3 (with weights)".to_string(),
            _ if hi == usize::MAX => format!("at least {lo}"),
            _ => lo.to_string(),
        };
        return Err(format!(
            "a {} layer takes {want} inputs, got {n}",
            kind.type_name()
        ));
    }
    Ok(())
}

/// Output size and parameter shapes of layer `l` for inputs of sizes `xs`.
fn infer(l: &LayerDesc, xs: &[Dims4]) -> std::result::Result<(Dims4, Vec<Vec<usize>>), String> {
    arity(&l.kind, xs.len())?;
    let x = xs[0];
    let same = |d: Dims4| -> std::result::Result<Dims4, String> {
        match xs.iter().position(|v| *v != d) {
            Some(k) => Err(format!(
                "input {k} ('{}') has size {} but input 0 has {}",
                l.inputs[k], xs[k], d
            )),
            None => Ok(d),
        }
    };
    let e = |e: Error| e.to_string();
    Ok(match &l.kind {
        LayerKind::Conv {
            kernel,
            out,
            opts,
            bias,
        } => {
            let [kh, kw] = kernel.unwrap_or([x.h, x.w]);
            let g = opts.groups.max(1);
            if !x.c.is_multiple_of(g) {
                return Err(format!(
                    "groups {g} must divide the {} input channels of x {x}",
                    x.c
                ));
            }
            if let Some(c) = l.size_in.filter(|&c| c != x.c / g) {
                return Err(format!(
                    "'size' gives {c} input channels per group but the input {x} has {} / {g} groups",
                    x.c
                ));
            }
            let w = vec![*out, x.c / g, kh, kw];
            let y = conv::out_dims(x, &w, opts).map_err(e)?;
            (y, with_bias(w, *bias, *out))
        }
        LayerKind::ConvT {
            kernel,
            out,
            opts,
            bias,
        } => {
            let g = opts.groups.max(1);
            if !out.is_multiple_of(g) {
                return Err(format!("groups {g} must divide the {out} output channels"));
            }
            let w = vec![x.c, out / g, kernel[0], kernel[1]];
            let y = convt::out_dims(x, &w, opts).map_err(e)?;
            (y, with_bias(w, *bias, *out))
        }
        LayerKind::Pool(o) => (pool::out_dims(x, o).map_err(e)?, vec![]),
        LayerKind::Loss(_) => {
            let site = Dims4::new(x.n, 1, x.h, x.w);
            let lab = xs[1];
            let binary = matches!(
                l.kind,
                LayerKind::Loss(loss::LossKind::Logistic | loss::LossKind::Hinge)
            );
            let want = if binary { x } else { site };
            // Labels of a network input are sized per image at run time; only a
            // label computed by a layer is checked here.
            if l.inputs[1] != "label" && lab != want {
                return Err(format!(
                    "labels '{}' have size {lab} but scores {x} need {want}",
                    l.inputs[1]
                ));
            }
            (Dims4::new(1, 1, 1, 1), vec![])
        }
        LayerKind::BNorm { .. } => (x, vec![vec![x.c]; 4]),
        LayerKind::Concat => {
            for (k, d) in xs.iter().enumerate() {
                if (d.h, d.w) != (x.h, x.w) {
                    return Err(format!(
                        "input {k} ('{}') has size {d} but input 0 has {x}: height and width must agree",
                        l.inputs[k]
                    ));
                }
            }
            (
                Dims4::new(x.n, xs.iter().map(|d| d.c).sum(), x.h, x.w),
                vec![],
            )
        }
        LayerKind::Crop(c) => (concat::crop_dims(x, *c).map_err(e)?, vec![]),
        LayerKind::Sum => (same(x)?, vec![]),
        LayerKind::Lrn(o) => {
            o.check().map_err(e)?;
            (x, vec![])
        }
        LayerKind::Relu { .. }
        | LayerKind::Sigmoid
        | LayerKind::Tanh
        | LayerKind::Softmax
        | LayerKind::LogSoftmax
        | LayerKind::Dropout { .. } => (x, vec![]),
    })
}

fn with_bias(w: Vec<usize>, bias: bool, out: usize) -> Vec<Vec<usize>> {
    if bias {
        vec![w, vec![out]]
    } else {
        vec![w]
    }
}

/// The most values one parameter may hold (8 GB of f32): a description asking for
/// more is a mistake, and is better an error than an allocation failure.
const MAX_PARAM_LEN: usize = 1 << 31;

/// Creates (or finds, when shared) the parameters and buffers of layer `l` and
/// returns their indices.
fn layer_params(
    desc: &NetDesc,
    l: &LayerDesc,
    shapes: &[Vec<usize>],
    params: &mut Vec<Param>,
) -> Result<Vec<usize>> {
    let trained = l.kind.param_names();
    let names = trained.iter().chain(l.kind.buffer_names());
    let mut ids = Vec::with_capacity(shapes.len());
    for (k, (pname, shape)) in names.zip(shapes).enumerate() {
        let trainable = k < trained.len();
        let name = match l.params.get(k) {
            Some(n) if trainable => n.clone(),
            _ => format!("{}.{pname}", l.name),
        };
        if let Some(i) = params.iter().position(|p| p.name == name) {
            if params[i].value.shape() != &shape[..] || !params[i].trainable || !trainable {
                return Err(desc.layer_error(
                    l,
                    format!(
                        "parameter '{name}' is shared with layer '{}', where it has shape {}, but here it needs {}",
                        params[i].layer,
                        fmt_shape(params[i].value.shape()),
                        fmt_shape(shape)
                    ),
                ));
            }
            ids.push(i);
            continue;
        }
        let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if len.is_none_or(|n| n > MAX_PARAM_LEN) {
            return Err(desc.layer_error(
                l,
                format!(
                    "parameter '{name}' of shape {} is larger than {MAX_PARAM_LEN} values",
                    fmt_shape(shape)
                ),
            ));
        }
        let mut value = Tensor::zeros(shape)?;
        if matches!(l.kind, LayerKind::BNorm { .. }) && (k == 0 || k == 3) {
            value.data_mut().fill(1.0);
        }
        params.push(Param {
            name,
            layer: l.name.clone(),
            value,
            grad: Tensor::default(),
            lr_mult: if trainable {
                l.lr_mult.get(k).copied().unwrap_or(1.0)
            } else {
                0.0
            },
            decay_mult: if trainable {
                l.decay_mult.get(k).copied().unwrap_or(1.0)
            } else {
                0.0
            },
            trainable,
        });
        ids.push(params.len() - 1);
    }
    Ok(ids)
}

/// The value of a layer's `k`-th parameter.
fn pv<'a>(layer: &Layer, params: &'a [Param], k: usize) -> Result<&'a Tensor> {
    layer
        .params
        .get(k)
        .and_then(|&i| params.get(i))
        .map(|p| &p.value)
        .ok_or_else(|| Error::layer(layer.name.clone(), format!("parameter {k} is missing")))
}

fn bias_of<'a>(layer: &Layer, params: &'a [Param], bias: bool) -> Result<Option<&'a Tensor>> {
    if bias {
        pv(layer, params, 1).map(Some)
    } else {
        Ok(None)
    }
}

fn forward_layer(
    layer: &mut Layer,
    xs: &[&Tensor],
    params: &mut [Param],
    rng: &mut Xoshiro256PlusPlus,
    mode: Mode,
    conserve: bool,
) -> Result<Tensor> {
    let x = xs[0];
    Ok(match &layer.kind {
        LayerKind::Conv { opts, bias, .. } => {
            let (w, b) = (pv(layer, params, 0)?, bias_of(layer, params, *bias)?);
            let relu = conserve && layer.fused_relu;
            match mode {
                // the filters change at every step: keep nothing
                Mode::Train => {
                    layer.filters.clear();
                    conv::forward_relu(x, w, b, opts, relu)?
                }
                Mode::Test => conv::forward_relu_cached(x, w, b, opts, relu, &mut layer.filters)?,
            }
        }
        LayerKind::ConvT { opts, bias, .. } => convt::forward(
            x,
            pv(layer, params, 0)?,
            bias_of(layer, params, *bias)?,
            opts,
        )?,
        LayerKind::Pool(o) => pool::forward(x, o)?,
        LayerKind::Relu { leak } => activation::relu_forward(x, *leak),
        LayerKind::Sigmoid => activation::sigmoid_forward(x),
        LayerKind::Tanh => activation::tanh_forward(x),
        LayerKind::Softmax => softmax::softmax_forward(x)?,
        LayerKind::LogSoftmax => softmax::log_softmax_forward(x)?,
        LayerKind::Loss(kind) => {
            let v = loss::forward(x, xs[1], xs.get(2).copied(), *kind)?;
            Tensor::full(&[1], v)?
        }
        LayerKind::Dropout { rate } => match mode {
            Mode::Train => {
                let mask = dropout::make_mask(x.shape(), *rate, rng)?;
                let y = dropout::forward(x, &mask)?;
                layer.mask = Some(mask);
                y
            }
            Mode::Test => {
                layer.mask = None;
                x.clone()
            }
        },
        LayerKind::BNorm { eps, momentum } => {
            let (gain, bias) = (pv(layer, params, 0)?, pv(layer, params, 1)?);
            match mode {
                Mode::Train => {
                    let (y, m) = bnorm::forward_train(x, gain, bias, *eps)?;
                    update_running(layer, params, x, &m, *eps, *momentum)?;
                    layer.moments = Some(m);
                    y
                }
                Mode::Test => {
                    layer.moments = None;
                    bnorm::forward_test(x, gain, bias, &running_moments(layer, params, *eps)?)?
                }
            }
        }
        LayerKind::Lrn(o) => lrn::forward(x, o)?,
        LayerKind::Concat => concat::concat_forward(xs)?,
        LayerKind::Crop(c) => concat::crop_forward(x, *c)?,
        LayerKind::Sum => {
            // the first two inputs in one parallel pass (a residual block's sum: 13 MB
            // at ResNet-18's first stage, batch 16), then the rest
            let (mut y, added) = match xs.get(1) {
                Some(t) if t.shape() == x.shape() => {
                    let data = eltwise::collect_map2(x.data(), t.data(), |a, b| a + b);
                    (Tensor::from_vec(x.shape(), data)?, 2)
                }
                _ => (x.clone(), 1),
            };
            for (k, t) in xs.iter().enumerate().skip(added) {
                y.axpy(1.0, t).map_err(|e| {
                    Error::Invalid(format!("sum: input {k} ('{}'): {e}", layer.inputs[k]))
                })?;
            }
            y
        }
    })
}

/// A batch-norm layer's running moments, as test mode normalises by them.
fn running_moments(layer: &Layer, params: &[Param], eps: f32) -> Result<bnorm::Moments> {
    let mean = pv(layer, params, 2)?.data().to_vec();
    let std = pv(layer, params, 3)?
        .data()
        .iter()
        .map(|v| (v + eps).sqrt())
        .collect();
    Ok(bnorm::Moments { mean, std })
}

/// `running = (1 - momentum) * running + momentum * batch`, with the batch's
/// unbiased variance (as PyTorch keeps it).
fn update_running(
    layer: &Layer,
    params: &mut [Param],
    x: &Tensor,
    m: &bnorm::Moments,
    eps: f32,
    momentum: f32,
) -> Result<()> {
    let d = x.dims4()?;
    let count = (d.n * d.plane()) as f32;
    let unbias = if count > 1.0 {
        count / (count - 1.0)
    } else {
        1.0
    };
    let (Some(&mi), Some(&vi)) = (layer.params.get(2), layer.params.get(3)) else {
        return Err(Error::layer(
            layer.name.clone(),
            "running moments are missing",
        ));
    };
    for (r, &b) in params[mi].value.data_mut().iter_mut().zip(&m.mean) {
        *r = (1.0 - momentum) * *r + momentum * b;
    }
    for (r, &s) in params[vi].value.data_mut().iter_mut().zip(&m.std) {
        let var = (s * s - eps).max(0.0) * unbias;
        *r = (1.0 - momentum) * *r + momentum * var;
    }
    Ok(())
}

/// Adds `g` to the gradient of the layer's `k`-th parameter (writes it, for the
/// first contribution of this backward).
fn add_grad(
    layer: &Layer,
    params: &mut [Param],
    k: usize,
    g: &Tensor,
    written: &mut [bool],
) -> Result<()> {
    match layer.params.get(k) {
        Some(&i) if params[i].trainable => {
            if std::mem::replace(&mut written[i], true) {
                params[i].grad.axpy(1.0, g)
            } else {
                params[i].grad.data_mut().copy_from_slice(g.data());
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// The derivatives of the layer's inputs (None where not wanted) given dy, adding
/// parameter gradients into `params`.
fn backward_layer(
    layer: &Layer,
    xs: &[&Tensor],
    params: &mut [Param],
    dy: &Tensor,
    want: &[bool],
    mode: Mode,
    written: &mut [bool],
) -> Result<Vec<Option<Tensor>>> {
    let x = xs[0];
    let first = |dx: Result<Tensor>| -> Result<Vec<Option<Tensor>>> {
        let mut v: Vec<Option<Tensor>> = vec![None; xs.len()];
        if want[0] {
            v[0] = Some(dx?);
        }
        Ok(v)
    };
    let has_params = !layer.params.is_empty();
    if !has_params && !want.contains(&true) {
        return Ok(vec![None; xs.len()]);
    }
    match &layer.kind {
        LayerKind::Conv { opts, bias, .. } => {
            conv_backward(layer, params, x, *opts, *bias, dy, want[0], written)
        }
        LayerKind::ConvT { opts, bias, .. } => {
            let (w, b) = (pv(layer, params, 0)?, bias_of(layer, params, *bias)?);
            let g = convt::backward(x, w, b, opts, dy, want[0])?;
            add_grad(layer, params, 0, &g.dw, written)?;
            if let Some(db) = &g.db {
                add_grad(layer, params, 1, db, written)?;
            }
            Ok(vec![g.dx])
        }
        LayerKind::Pool(o) => first(pool::backward(x, o, dy)),
        LayerKind::Relu { leak } => first(activation::relu_backward(x, *leak, dy)),
        LayerKind::Sigmoid => first(activation::sigmoid_backward(x, dy)),
        LayerKind::Tanh => first(activation::tanh_backward(x, dy)),
        LayerKind::Softmax => first(softmax::softmax_backward(x, dy)),
        LayerKind::LogSoftmax => first(softmax::log_softmax_backward(x, dy)),
        LayerKind::Loss(kind) => {
            let dzdy = dy.data().first().copied().unwrap_or(0.0);
            first(loss::backward(x, xs[1], xs.get(2).copied(), *kind, dzdy))
        }
        LayerKind::Dropout { .. } => match &layer.mask {
            Some(mask) => first(dropout::backward(mask, dy)),
            None => first(Ok(dy.clone())),
        },
        LayerKind::BNorm { eps, .. } => {
            let (gain, bias) = (pv(layer, params, 0)?, pv(layer, params, 1)?);
            let g = match mode {
                Mode::Train => match &layer.moments {
                    Some(m) => bnorm::backward_batch(x, gain, bias, m, dy)?,
                    None => bnorm::backward(x, gain, bias, *eps, dy)?,
                },
                Mode::Test => {
                    let m = running_moments(layer, params, *eps)?;
                    bnorm::backward_test(x, gain, bias, &m, dy)?
                }
            };
            add_grad(layer, params, 0, &g.dgain, written)?;
            add_grad(layer, params, 1, &g.dbias, written)?;
            first(Ok(g.dx))
        }
        LayerKind::Lrn(o) => first(lrn::backward(x, o, dy)),
        LayerKind::Concat => {
            let channels = xs
                .iter()
                .map(|t| t.dims4().map(|d| d.c))
                .collect::<Result<Vec<_>>>()?;
            let parts = concat::concat_backward(&channels, dy)?;
            Ok(parts
                .into_iter()
                .zip(want)
                .map(|(p, &w)| w.then_some(p))
                .collect())
        }
        LayerKind::Crop(c) => first(concat::crop_backward(x.shape(), *c, dy)),
        LayerKind::Sum => Ok(want.iter().map(|&w| w.then(|| dy.clone())).collect()),
    }
}

/// A convolution's backward, writing the filter and bias gradients straight into
/// the parameters' gradients (over them for the first contribution of this
/// backward, added after that).
#[allow(clippy::too_many_arguments)]
fn conv_backward(
    layer: &Layer,
    params: &mut [Param],
    x: &Tensor,
    opts: conv::ConvOpts,
    bias: bool,
    dy: &Tensor,
    want_dx: bool,
    written: &mut [bool],
) -> Result<Vec<Option<Tensor>>> {
    let missing = || Error::layer(layer.name.clone(), "parameter missing");
    let wi = *layer.params.first().ok_or_else(missing)?;
    let bi = if bias {
        Some(*layer.params.get(1).ok_or_else(missing)?)
    } else {
        None
    };
    // Take the gradients out while the values are read (frozen parameters get
    // scratch tensors that are dropped).
    let take = |params: &mut [Param], i: usize| -> Result<Tensor> {
        if params[i].trainable {
            Ok(std::mem::take(&mut params[i].grad))
        } else {
            Tensor::zeros(params[i].value.shape())
        }
    };
    let mut dw = take(params, wi)?;
    let mut db = match bi {
        Some(i) => Some(take(params, i)?),
        None => None,
    };
    let accumulate_w = written[wi];
    let accumulate_b = bi.is_some_and(|i| written[i]);
    // a bias shared with another layer is summed into separately below
    let joint = accumulate_w == accumulate_b;
    let result = conv::backward_into(
        x,
        &params[wi].value,
        bi.map(|i| &params[i].value),
        &opts,
        dy,
        want_dx,
        &mut dw,
        if joint { db.as_mut() } else { None },
        accumulate_w,
    );
    if let (false, Some(db)) = (joint, db.as_mut()) {
        let d = dy.dims4()?;
        conv_gemm::bias_grad(d.n, d.c, d.plane(), dy.data(), db.data_mut(), accumulate_b);
    }
    let restore = |params: &mut [Param], i: usize, g: Tensor, written: &mut [bool]| {
        if params[i].trainable {
            params[i].grad = g;
            written[i] = true;
        }
    };
    restore(params, wi, dw, written);
    if let (Some(i), Some(db)) = (bi, db) {
        restore(params, i, db, written);
    }
    Ok(vec![result?])
}
