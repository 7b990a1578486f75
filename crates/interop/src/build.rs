//! A network description under construction, shared by the importers: layers are
//! appended with their weights, and the size of every variable is worked out as they
//! come, so that a converter can decide from sizes (padding for `SAME`, fully
//! connected weights, ceil rounding) before the whole network exists.

use convnet::blocks::{concat, conv, convt, pool};
use convnet::net::{InputDesc, LayerDesc, LayerKind, NetDesc, Network};
use convnet::{Dims4, Tensor};
use std::collections::{BTreeMap, BTreeSet};

/// A conversion failure, without the file name (the caller adds it).
pub type Msg = String;

pub struct Builder {
    pub layers: Vec<LayerDesc>,
    /// Weights by tensor name (`<layer>.<param>`, or a shared name).
    pub tensors: BTreeMap<String, Tensor>,
    dims: BTreeMap<String, Dims4>,
    names: BTreeSet<String>,
    pub input_size: [usize; 3],
}

/// The network input's variable name.
pub const INPUT: &str = "input";

impl Builder {
    /// A builder whose input `input` has `size` (height, width, channels).
    pub fn new(size: [usize; 3]) -> Self {
        let mut dims = BTreeMap::new();
        dims.insert(INPUT.to_string(), Dims4::new(1, size[2], size[0], size[1]));
        dims.insert("label".to_string(), Dims4::new(1, 1, 1, 1));
        Builder {
            layers: Vec::new(),
            tensors: BTreeMap::new(),
            dims,
            names: BTreeSet::from([INPUT.to_string(), "label".to_string()]),
            input_size: size,
        }
    }

    /// The size of variable `var` for one image.
    pub fn dims(&self, var: &str) -> Result<Dims4, Msg> {
        self.dims
            .get(var)
            .copied()
            .ok_or_else(|| format!("'{var}' is not a variable of the network built so far"))
    }

    /// `wanted` if it names no layer or variable yet, else `wanted_2`, `wanted_3`, ...
    /// (`fallback` for an empty `wanted`).
    pub fn unique_name(&self, wanted: &str, fallback: &str) -> String {
        let base = if wanted.is_empty() { fallback } else { wanted };
        if !self.names.contains(base) {
            return base.to_string();
        }
        (2..)
            .map(|k| format!("{base}_{k}"))
            .find(|n| !self.names.contains(n))
            .unwrap_or_default()
    }

    /// Appends layer `name` of `kind` reading `inputs`, writing the variable `name`,
    /// with its parameters (`weight`, `bias`, then buffers, in the kind's order; shared
    /// parameters under the names in `shared`); returns the output's size.
    pub fn push(
        &mut self,
        name: &str,
        kind: LayerKind,
        inputs: Vec<String>,
        params: Vec<Tensor>,
    ) -> Result<Dims4, Msg> {
        self.push_shared(name, kind, inputs, params, Vec::new())
    }

    /// [`Builder::push`] with parameter names given (empty: `<layer>.<param>`).
    pub fn push_shared(
        &mut self,
        name: &str,
        kind: LayerKind,
        inputs: Vec<String>,
        params: Vec<Tensor>,
        shared: Vec<String>,
    ) -> Result<Dims4, Msg> {
        if self.names.contains(name) {
            return Err(format!("layer '{name}': the name is used twice"));
        }
        let xs = inputs
            .iter()
            .map(|v| self.dims(v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("layer '{name}': {e}"))?;
        let y = out_dims(&kind, &xs).map_err(|e| format!("layer '{name}': {e}"))?;
        let all: Vec<&str> = kind
            .param_names()
            .iter()
            .chain(kind.buffer_names())
            .copied()
            .collect();
        if params.len() != all.len() {
            return Err(format!(
                "layer '{name}': {} weight arrays given, a {} layer has {}",
                params.len(),
                kind.type_name(),
                all.len()
            ));
        }
        let mut l = LayerDesc::new(name, kind);
        if let LayerKind::Conv {
            kernel: Some(_),
            opts,
            ..
        } = &l.kind
        {
            l.size_in = xs.first().map(|x| x.c / opts.groups.max(1));
        }
        for (k, (p, t)) in all.iter().zip(params).enumerate() {
            let tname = match shared.get(k) {
                Some(s) => s.clone(),
                None => format!("{name}.{p}"),
            };
            self.tensors.entry(tname).or_insert(t);
        }
        l.params = shared;
        l.inputs = inputs;
        l.outputs = vec![name.to_string()];
        self.names.insert(name.to_string());
        self.dims.insert(name.to_string(), y);
        self.layers.push(l);
        Ok(y)
    }

    /// The layer writing variable `var`, if a layer does.
    pub fn producer(&self, var: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.outputs[0] == var)
    }

    /// Renames variable `from` to `to` everywhere (`to` must be unused).
    pub fn rename_var(&mut self, from: &str, to: &str) {
        if self.names.contains(to) {
            return;
        }
        for l in &mut self.layers {
            for v in l.inputs.iter_mut().chain(l.outputs.iter_mut()) {
                if v == from {
                    *v = to.to_string();
                }
            }
        }
        if let Some(d) = self.dims.remove(from) {
            self.dims.insert(to.to_string(), d);
        }
        self.names.insert(to.to_string());
    }

    /// The finished network with its weights. Fails, naming the layer, when a weight
    /// does not fit the shape the layer needs.
    pub fn finish(self, name: &str, classes: Vec<String>, origin: &str) -> Result<Network, Msg> {
        let mut desc = NetDesc {
            name: name.to_string(),
            inputs: vec![InputDesc {
                name: INPUT.into(),
                size: self.input_size,
            }],
            classes,
            init: convnet::net::Init::Gaussian { std: 0.01 },
            layers: self.layers,
            origin: origin.to_string(),
        };
        desc.fill_defaults().map_err(|e| e.to_string())?;
        let mut net = Network::new(&desc).map_err(|e| e.to_string())?;
        let mut tensors = self.tensors;
        let names: Vec<String> = net
            .named_tensors()
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        for tname in names {
            let layer = net
                .param(&tname)
                .map(|p| p.layer.clone())
                .unwrap_or_default();
            let t = tensors
                .remove(&tname)
                .ok_or_else(|| format!("layer '{layer}': weights '{tname}' are missing"))?;
            net.set_tensor(&tname, t)
                .map_err(|e| format!("layer '{layer}': weights '{tname}': {e}"))?;
        }
        Ok(net)
    }
}

/// The output size of a layer of `kind` for inputs of sizes `xs` (the same rules as
/// the network's own, through the blocks' size functions).
pub(crate) fn out_dims(kind: &LayerKind, xs: &[Dims4]) -> Result<Dims4, Msg> {
    let x = *xs.first().ok_or("no inputs")?;
    let e = |e: convnet::Error| e.to_string();
    Ok(match kind {
        LayerKind::Conv {
            kernel, out, opts, ..
        } => {
            let [kh, kw] = kernel.unwrap_or([x.h, x.w]);
            let g = opts.groups.max(1);
            conv::out_dims(x, &[*out, x.c / g, kh, kw], opts).map_err(e)?
        }
        LayerKind::ConvT {
            kernel, out, opts, ..
        } => convt::out_dims(
            x,
            &[x.c, out / opts.groups.max(1), kernel[0], kernel[1]],
            opts,
        )
        .map_err(e)?,
        LayerKind::Pool(o) => pool::out_dims(x, o).map_err(e)?,
        LayerKind::Concat => {
            if let Some(d) = xs.iter().find(|d| (d.h, d.w) != (x.h, x.w)) {
                return Err(format!(
                    "inputs of sizes {x} and {d} cannot be concatenated"
                ));
            }
            Dims4::new(1, xs.iter().map(|d| d.c).sum(), x.h, x.w)
        }
        LayerKind::Sum => {
            if let Some(d) = xs.iter().find(|d| **d != x) {
                return Err(format!("inputs of sizes {x} and {d} cannot be summed"));
            }
            x
        }
        LayerKind::Crop(c) => concat::crop_dims(x, *c).map_err(e)?,
        LayerKind::Loss(_) => Dims4::new(1, 1, 1, 1),
        _ => x,
    })
}
