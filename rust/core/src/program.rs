//! A network compiled for computation: its layer tree flattened into steps over values.
//!
//! A *value* is what flows along one edge of the network: the raw inputs (value 0), the output
//! of a layer. `FanOut`, `Identity` and `Dropout(mode="test")` create no value (their outputs
//! are their inputs), `parallel` routes branch `k` to its layer `k`; every other layer is a
//! [`Step`] reading one value (or, for a `FanIn`, several) and writing a new one. The compiler
//! checks what neural-tangents checks (Gaussian inputs of activations and `LayerNorm`, equal
//! widths at a sum or product, existing axes, branch counts) and names the offending layer.
//!
//! For the kernels each step runs on a row of pairs held in a *slot* (a pair of NNGP and NTK
//! rows); [`Program::slots`] assigns slots so that a step works in place whenever its input is
//! not needed later, and the number of slots is the number of values alive at once.

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::layer::conv::{axes, shape_str, Axis};
use crate::layer::{Conv, Dense, DropoutMode, FanIn, Layer, LayerNorm, PoolKind};

/// What the compiler knows about a value.
#[derive(Clone, Debug)]
pub(crate) struct ValueInfo {
    /// Channels (`None`: not known before a call, the width of the inputs or a `Flatten` of them).
    pub width: Option<usize>,
    /// Spatial shape (`Some(vec![])`: no spatial axes; `None`: not known before a call).
    pub dims: Option<Vec<usize>>,
    /// `None` when the value is Gaussian in the infinite-width limit; else why it is not.
    pub not_gaussian: Option<String>,
    /// Whether it is the raw inputs (no `Dense` applied yet).
    pub input: bool,
    /// The random layers whose outputs it is a function of, with nothing random after them
    /// (the indices of their steps; `usize::MAX` for a Gaussian input of a sub-network): two values
    /// with disjoint sources are independent in the infinite-width limit.
    pub sources: Vec<usize>,
}

/// One computation of a network.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// A `Dense` layer (on every position of a spatial value); `param` is its index among the
    /// network's parameter layers (`Dense` and `Conv`).
    Dense {
        layer: Dense,
        param: usize,
    },
    /// A convolution: `axes` its geometry for the call's shape (empty before a call).
    Conv {
        layer: Conv,
        #[allow(dead_code)] // read by finite networks
        param: usize,
        axes: Vec<Axis>,
    },
    /// Local pooling: `weights[k][o]` divides output `o` of axis `k` (`1/n(o)`).
    Pool {
        axes: Vec<Axis>,
        weights: Vec<Vec<f64>>,
    },
    /// `GlobalAvgPool` / `GlobalSumPool`.
    GlobalPool(PoolKind),
    /// `Flatten`: the mean over equal positions.
    Flatten,
    Act(Activation),
    /// `LayerNorm`; `trailing` spatial axes (the last ones) are normalised with the channels.
    LayerNorm {
        ln: LayerNorm,
        trailing: usize,
    },
    /// `Dropout(rate, mode="train")`; `index` is its index among the network's dropout layers.
    Dropout {
        rate: f64,
        index: usize,
    },
    Sum,
    Prod,
    /// Channel concatenation: the branches' kernels mixed with `weights`.
    Concat {
        weights: Vec<f64>,
    },
}

/// One step: `op` applied to `inputs`, giving value `output`.
#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub op: Op,
    pub inputs: Vec<usize>,
    pub output: usize,
    /// The layer, for messages: `"layer 4 (Relu)"` (and its path when nested).
    pub label: String,
}

/// Where the kernel rows of a step live: its inputs' slots and the slot it writes (equal to the
/// first input's slot when it works in place).
#[derive(Clone, Debug)]
pub(crate) struct Exec {
    pub src: Vec<usize>,
    pub dst: usize,
}

/// A compiled network.
#[derive(Clone, Debug)]
pub(crate) struct Program {
    pub steps: Vec<Step>,
    pub values: Vec<ValueInfo>,
    pub output: usize,
    /// Number of parameter layers (`Dense` and `Conv`: parameter pairs).
    pub n_dense: usize,
    /// Number of `Dropout(mode="train")` layers.
    pub n_dropout: usize,
    /// Slot assignment, one per step.
    pub exec: Vec<Exec>,
    pub n_slots: usize,
    pub out_slot: usize,
    /// Per value: whether its kernels are needed for every pair of positions (a pooling layer
    /// or a global pool reads it, directly or through convolutions and pointwise layers), or only
    /// for equal positions (a `Flatten` readout). Non-spatial values: `false`.
    pub full: Vec<bool>,
}

struct Compiler {
    /// Whether the current branches come from a `FanOut` (a `FanIn` needs them to).
    split: bool,
    steps: Vec<Step>,
    values: Vec<ValueInfo>,
    leaf: usize,
    n_dense: usize,
    n_dropout: usize,
}

fn invalid(label: &str, what: String) -> Error {
    Error::InvalidNetwork(format!("{label}: {what}"))
}

impl Compiler {
    fn value(&mut self, v: ValueInfo) -> usize {
        self.values.push(v);
        self.values.len() - 1
    }

    fn label(&mut self, layer: &Layer, path: &str) -> String {
        let k = self.leaf;
        self.leaf += 1;
        if path.contains('.') {
            format!("layer {k} ({}, at {path})", layer.name())
        } else {
            format!("layer {k} ({})", layer.name())
        }
    }

    fn one(&self, label: &str, inputs: &[usize]) -> Result<usize> {
        match inputs {
            [v] => Ok(*v),
            _ => Err(invalid(
                label,
                format!(
                    "receives {} branches; join them first with FanInSum(), FanInProd() or FanInConcat(), \
                     or apply one layer per branch with parallel(...)",
                    inputs.len()
                ),
            )),
        }
    }

    fn gaussian(&self, label: &str, v: usize, what: &str) -> Result<()> {
        match &self.values[v].not_gaussian {
            None => Ok(()),
            Some(why) => Err(invalid(
                label,
                format!(
                    "{what} needs a Gaussian input, but its input is {why}; put a Dense layer before it \
                     (or a sum of Gaussian branches, or a LayerNorm of one)"
                ),
            )),
        }
    }

    fn step(&mut self, op: Op, inputs: Vec<usize>, out: ValueInfo, label: String) -> usize {
        let output = self.value(out);
        self.steps.push(Step {
            op,
            inputs,
            output,
            label,
        });
        output
    }

    fn visit(&mut self, layer: &Layer, inputs: Vec<usize>, path: &str) -> Result<Vec<usize>> {
        match layer {
            Layer::Serial(layers) => {
                if layers.is_empty() {
                    return Err(Error::InvalidNetwork(format!(
                        "{path}: an empty serial(); give it at least one layer"
                    )));
                }
                let mut cur = inputs;
                for (k, l) in layers.iter().enumerate() {
                    cur = self.visit(l, cur, &format!("{path}[{k}]"))?;
                }
                Ok(cur)
            }
            Layer::Parallel(layers) => {
                if layers.len() != inputs.len() {
                    return Err(Error::InvalidNetwork(format!(
                        "{path} (parallel with {} layers) receives {} branch(es); put FanOut({}) before it",
                        layers.len(),
                        inputs.len(),
                        layers.len()
                    )));
                }
                let mut out = Vec::with_capacity(layers.len());
                for (k, (l, v)) in layers.iter().zip(inputs).enumerate() {
                    let p = format!("{path}.parallel[{k}]");
                    self.split = false;
                    let got = self.visit(l, vec![v], &p)?;
                    if got.len() != 1 {
                        return Err(Error::InvalidNetwork(format!(
                            "{p}: a branch of parallel(...) must give one output, this one gives {}; \
                             join its branches inside it",
                            got.len()
                        )));
                    }
                    out.push(got[0]);
                }
                self.split = true;
                Ok(out)
            }
            _ => {
                let label = self.label(layer, path);
                let out = self.leaf_layer(layer, inputs, label)?;
                if !matches!(layer, Layer::FanOut(_) | Layer::FanIn(_)) {
                    self.split = false;
                }
                Ok(out)
            }
        }
    }

    fn leaf_layer(&mut self, layer: &Layer, inputs: Vec<usize>, label: String) -> Result<Vec<usize>> {
        match layer {
            Layer::Dense(d) => {
                let v = self.one(&label, &inputs)?;
                let param = self.n_dense;
                self.n_dense += 1;
                let out = ValueInfo {
                    width: Some(d.out_dim),
                    dims: self.values[v].dims.clone(),
                    not_gaussian: None,
                    input: false,
                    sources: vec![self.steps.len()],
                };
                Ok(vec![self.step(
                    Op::Dense {
                        layer: d.clone(),
                        param,
                    },
                    vec![v],
                    out,
                    label,
                )])
            }
            Layer::Activation(a) => {
                let v = self.one(&label, &inputs)?;
                self.gaussian(&label, v, "an activation")?;
                let out = ValueInfo {
                    width: self.values[v].width,
                    dims: self.values[v].dims.clone(),
                    not_gaussian: Some(format!("the output of the activation of {label}")),
                    input: false,
                    sources: self.values[v].sources.clone(),
                };
                Ok(vec![self.step(Op::Act(a.clone()), vec![v], out, label)])
            }
            Layer::Identity => {
                self.one(&label, &inputs)?;
                Ok(inputs)
            }
            Layer::LayerNorm(ln) => {
                let v = self.one(&label, &inputs)?;
                let trailing = match &self.values[v].dims {
                    Some(d) => ln.check_axes(d.len() + 2).map_err(|m| invalid(&label, m))?,
                    None => ln.check_axes_unknown_rank().map_err(|m| invalid(&label, m))?,
                };
                self.gaussian(&label, v, "LayerNorm")?;
                let out = self.values[v].clone();
                Ok(vec![self.step(
                    Op::LayerNorm {
                        ln: ln.clone(),
                        trailing,
                    },
                    vec![v],
                    out,
                    label,
                )])
            }
            Layer::Dropout(d) => {
                let v = self.one(&label, &inputs)?;
                if d.mode == DropoutMode::Test {
                    return Ok(inputs);
                }
                if self.values[v].input {
                    return Err(invalid(
                        &label,
                        "dropout cannot be applied to the raw inputs (as in neural-tangents); put it after a Dense layer"
                            .into(),
                    ));
                }
                let index = self.n_dropout;
                self.n_dropout += 1;
                let out = ValueInfo {
                    width: self.values[v].width,
                    dims: self.values[v].dims.clone(),
                    not_gaussian: Some(format!("the output of {label}")),
                    input: false,
                    sources: self.values[v].sources.clone(),
                };
                Ok(vec![self.step(
                    Op::Dropout { rate: d.rate, index },
                    vec![v],
                    out,
                    label,
                )])
            }
            Layer::FanOut(n) => {
                let v = self.one(&label, &inputs)?;
                self.split = true;
                Ok(vec![v; *n])
            }
            Layer::FanIn(f) => {
                if !self.split {
                    return Err(invalid(
                        &label,
                        "joins branches, but there are none: a FanIn layer joins the branches made by FanOut(n) \
                         (and parallel(...)); put FanOut before it or remove it"
                            .into(),
                    ));
                }
                self.split = false;
                self.fan_in(*f, inputs, label)
            }
            Layer::Conv(c) => {
                let v = self.one(&label, &inputs)?;
                let dims = self.spatial(&label, v, c.filter.len(), "a convolution", &c.filter, "filter")?;
                let (axes, out_dims) = match dims {
                    Some(d) => {
                        let a = axes(&d, &c.filter, &c.strides, c.padding).map_err(|m| invalid(&label, m))?;
                        let o = a.iter().map(|a| a.l_out).collect();
                        (a, Some(o))
                    }
                    None => (Vec::new(), None),
                };
                let param = self.n_dense;
                self.n_dense += 1;
                let out = ValueInfo {
                    width: Some(c.out_chan),
                    dims: out_dims,
                    not_gaussian: None,
                    input: false,
                    sources: vec![self.steps.len()],
                };
                Ok(vec![self.step(
                    Op::Conv {
                        layer: c.clone(),
                        param,
                        axes,
                    },
                    vec![v],
                    out,
                    label,
                )])
            }
            Layer::Pool(p) => {
                let v = self.one(&label, &inputs)?;
                let dims = self.spatial(&label, v, p.window.len(), "pooling", &p.window, "window")?;
                let (axes, weights, out_dims) = match dims {
                    Some(d) => {
                        let a = axes(&d, &p.window, &p.strides, p.padding).map_err(|m| invalid(&label, m))?;
                        let w = a
                            .iter()
                            .map(|ax| {
                                (0..ax.l_out)
                                    .map(|o| match p.kind {
                                        PoolKind::Sum => 1.0,
                                        PoolKind::Avg if p.normalize_edges => 1.0 / ax.inside(o) as f64,
                                        PoolKind::Avg => 1.0 / ax.f as f64,
                                    })
                                    .collect()
                            })
                            .collect();
                        let o = a.iter().map(|a| a.l_out).collect();
                        (a, w, Some(o))
                    }
                    None => (Vec::new(), Vec::new(), None),
                };
                let mut out = self.values[v].clone();
                out.dims = out_dims;
                Ok(vec![self.step(Op::Pool { axes, weights }, vec![v], out, label)])
            }
            Layer::GlobalPool(kind) => {
                let v = self.one(&label, &inputs)?;
                if self.values[v].dims.as_ref().is_some_and(|d| d.is_empty()) {
                    return Err(invalid(
                        &label,
                        "needs inputs with spatial axes, (N, H, W, C) or (N, L, C), but its input has none                          (shape (N, C)); remove it or put it before Flatten()"
                            .into(),
                    ));
                }
                let mut out = self.values[v].clone();
                out.dims = Some(Vec::new());
                Ok(vec![self.step(Op::GlobalPool(*kind), vec![v], out, label)])
            }
            Layer::Flatten => {
                let v = self.one(&label, &inputs)?;
                let info = &self.values[v];
                let width = match (&info.dims, info.width) {
                    (Some(d), Some(w)) => Some(w * d.iter().product::<usize>()),
                    _ => None,
                };
                let out = ValueInfo {
                    width,
                    dims: Some(Vec::new()),
                    not_gaussian: Some(format!("the output of Flatten ({label}), as neural-tangents treats it")),
                    input: info.input,
                    sources: info.sources.clone(),
                };
                Ok(vec![self.step(Op::Flatten, vec![v], out, label)])
            }
            Layer::Serial(_) | Layer::Parallel(_) => unreachable!("combinators are visited by `visit`"),
        }
    }

    /// The spatial shape of value `v` for a layer acting on `k` spatial axes (`None` before a
    /// call), or the error naming the layer and the shapes.
    fn spatial(
        &self,
        label: &str,
        v: usize,
        k: usize,
        what: &str,
        window: &[usize],
        wname: &str,
    ) -> Result<Option<Vec<usize>>> {
        let Some(d) = self.values[v].dims.clone() else {
            return Ok(None);
        };
        if d.len() != k {
            let want = match k {
                1 => "(N, L, C) sequences".to_string(),
                2 => "(N, H, W, C) images".to_string(),
                _ => format!("inputs with {k} spatial axes (N, ..., C)"),
            };
            let got = if d.is_empty() {
                "values without spatial axes (N, C)".to_string()
            } else {
                format!("values of spatial shape {} ({} spatial axes)", shape_str(&d), d.len())
            };
            return Err(invalid(
                label,
                format!(
                    "{what} with a {k}-D {wname} {} needs {want}, but receives {got}",
                    shape_str(window)
                ),
            ));
        }
        Ok(Some(d))
    }

    fn fan_in(&mut self, f: FanIn, inputs: Vec<usize>, label: String) -> Result<Vec<usize>> {
        if inputs.is_empty() {
            return Err(invalid(&label, "receives no branch".into()));
        }
        let widths: Vec<Option<usize>> = inputs.iter().map(|&v| self.values[v].width).collect();
        let input = self.values[inputs[0]].input;
        let dims = self.values[inputs[0]].dims.clone();
        let known: Vec<&Vec<usize>> = inputs.iter().filter_map(|&v| self.values[v].dims.as_ref()).collect();
        if known.windows(2).any(|w| w[0] != w[1]) {
            return Err(invalid(
                &label,
                format!(
                    "joins branches of different spatial shapes {}; every branch must have the same \
                     spatial shape (use the same strides and padding in each)",
                    known.iter().map(|d| shape_str(d)).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let mut sources: Vec<usize> = inputs.iter().flat_map(|&v| self.values[v].sources.clone()).collect();
        sources.sort_unstable();
        sources.dedup();
        // the kernel of a sum or product is the sum or product of the branches' kernels only for
        // independent branches: each must have its own random layer since they split
        let independent = |what: &str| -> Result<()> {
            for a in 0..inputs.len() {
                for b in a + 1..inputs.len() {
                    let (sa, sb) = (&self.values[inputs[a]].sources, &self.values[inputs[b]].sources);
                    if let Some(&shared) = sa.iter().find(|k| sb.contains(k)) {
                        let by = if shared == usize::MAX {
                            "the input of this sub-network".to_string()
                        } else {
                            self.steps[shared].label.clone()
                        };
                        return Err(invalid(
                            &label,
                            format!(
                                "{what} branches {a} and {b}, which are not independent: both are functions of {by}                                  with no random layer of their own since they split, so the kernel of the {what_n}                                  is not the {what_n} of their kernels (neural-tangents returns wrong numbers here);                                  put a Dense layer in one of them",
                                what_n = if what == "sums" { "sum" } else { "product" }
                            ),
                        ));
                    }
                }
            }
            Ok(())
        };
        let equal_widths = |what: &str| -> Result<()> {
            let known: Vec<usize> = widths.iter().flatten().copied().collect();
            if known.windows(2).any(|w| w[0] != w[1]) {
                return Err(invalid(
                    &label,
                    format!(
                        "{what} needs branches of equal widths, got widths {}; give every branch the same \
                         out_dim (or use FanInConcat())",
                        describe(&widths)
                    ),
                ));
            }
            Ok(())
        };
        match f {
            FanIn::Sum => {
                if inputs.len() == 1 {
                    return Ok(inputs); // FanOut(1): the branch itself, as in neural-tangents
                }
                equal_widths("a sum")?;
                independent("sums")?;
                for &v in &inputs {
                    if let Some(why) = &self.values[v].not_gaussian {
                        return Err(invalid(
                            &label,
                            format!(
                                "summing branches needs every branch Gaussian (as in neural-tangents), but one is {why}; \
                                 end each branch with a Dense layer (a residual block is \
                                 serial(FanOut(2), parallel(serial(Dense, activation, Dense), Identity()), FanInSum()) \
                                 on a Gaussian input)"
                            ),
                        ));
                    }
                }
                let out = ValueInfo {
                    width: widths.iter().flatten().next().copied(),
                    dims,
                    not_gaussian: None,
                    input,
                    sources,
                };
                Ok(vec![self.step(Op::Sum, inputs, out, label)])
            }
            FanIn::Prod => {
                if inputs.len() == 1 {
                    return Ok(inputs);
                }
                equal_widths("a product")?;
                independent("multiplies")?;
                let out = ValueInfo {
                    width: widths.iter().flatten().next().copied(),
                    dims,
                    not_gaussian: Some(format!("a product of branches ({label})")),
                    input,
                    sources,
                };
                Ok(vec![self.step(Op::Prod, inputs, out, label)])
            }
            FanIn::Concat { axis } => {
                let rank = dims.as_ref().map(|d| d.len() + 2);
                let k = match rank {
                    Some(r) => {
                        if axis >= r as isize || axis < -(r as isize) {
                            return Err(invalid(
                                &label,
                                format!("concatenates along axis {axis}, which does not exist for inputs of rank {r}"),
                            ));
                        }
                        Some(axis.rem_euclid(r as isize) as usize)
                    }
                    None => None,
                };
                let batch = axis == 0 || k == Some(0);
                let channels = axis == -1 || (rank.is_some() && k == rank.map(|r| r - 1));
                if batch {
                    return Err(invalid(
                        &label,
                        "concatenation along the batch axis 0 is not supported (it changes the samples); \
                         use FanInConcat(axis=-1), the channels"
                            .to_string(),
                    ));
                }
                if !channels && rank.is_some() {
                    return Err(invalid(
                        &label,
                        format!(
                            "concatenation along the spatial axis {} is not supported; use axis=-1, the channels",
                            k.unwrap_or(0)
                        ),
                    ));
                }
                let width = widths.iter().try_fold(0usize, |a, w| w.map(|w| a + w));
                let out = ValueInfo {
                    width,
                    dims,
                    not_gaussian: Some(format!(
                        "a channel concatenation ({label}), as neural-tangents treats it"
                    )),
                    input,
                    sources,
                };
                // weights need every width; with an input-width branch they are set when compiled
                // for a call (`width` is then known)
                let weights = match widths.iter().copied().collect::<Option<Vec<usize>>>() {
                    Some(w) => crate::layer::fan::concat_weights(&w),
                    None => vec![f64::NAN; inputs.len()],
                };
                Ok(vec![self.step(Op::Concat { weights }, inputs, out, label)])
            }
        }
    }
}

fn describe(widths: &[Option<usize>]) -> String {
    widths
        .iter()
        .map(|w| w.map_or("d (the inputs')".to_string(), |w| w.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Program {
    /// Compile `root` for inputs whose per-example shape is `in_shape` (`(d,)`, `(L, C)`,
    /// `(H, W, C)`, ...), or, with `None`, for inputs of any shape (the checks that do not depend
    /// on it: validation when a network is built).
    pub fn compile(root: &Layer, in_shape: Option<&[usize]>) -> Result<Program> {
        let raw = ValueInfo {
            width: in_shape.and_then(|s| s.last().copied()),
            dims: in_shape.map(|s| s[..s.len().saturating_sub(1)].to_vec()),
            not_gaussian: Some("the raw inputs (not Gaussian)".into()),
            input: true,
            sources: Vec::new(),
        };
        Self::compile_from(root, vec![raw])
    }

    /// Whether `layer` is valid as part of some network: on raw inputs, or on `k` Gaussian
    /// branches for some `k` (as a residual branch or a block after a `FanOut` is). Returns the
    /// error it has on one Gaussian input (the most permissive context, so the error names what
    /// is wrong in any context) when it is valid nowhere.
    pub fn check_in_context(layer: &Layer) -> Result<()> {
        if Self::compile(layer, None).is_ok() {
            return Ok(());
        }
        let gaussian = ValueInfo {
            width: None,
            dims: None,
            not_gaussian: None,
            input: false,
            sources: vec![usize::MAX],
        };
        let first = Self::compile_from(layer, vec![gaussian.clone()]);
        let Err(e) = first else { return Ok(()) };
        for k in 2..=16 {
            if Self::compile_from(layer, vec![gaussian.clone(); k]).is_ok() {
                return Ok(());
            }
        }
        Err(e)
    }

    fn compile_from(root: &Layer, inputs: Vec<ValueInfo>) -> Result<Program> {
        let mut c = Compiler {
            split: inputs.len() > 1,
            steps: Vec::new(),
            values: Vec::new(),
            leaf: 0,
            n_dense: 0,
            n_dropout: 0,
        };
        // every input branch is value 0: the branches of a sub-network are copies of one value
        let first = inputs.into_iter().collect::<Vec<_>>();
        let k = first.len();
        let input = c.value(first.into_iter().next().expect("at least one input"));
        let out = c.visit(root, vec![input; k], "serial")?;
        if out.len() != 1 {
            return Err(Error::InvalidNetwork(format!(
                "the network ends with {} branches; join them with FanInSum(), FanInProd() or FanInConcat()",
                out.len()
            )));
        }
        let (exec, n_slots, out_slot) = slots(&c.steps, c.values.len(), out[0]);
        let full = full_values(&c.steps, &c.values);
        Ok(Program {
            steps: c.steps,
            values: c.values,
            output: out[0],
            n_dense: c.n_dense,
            n_dropout: c.n_dropout,
            exec,
            n_slots,
            out_slot,
            full,
        })
    }

    /// The spatial shape of value `v` (empty: none).
    pub fn dims(&self, v: usize) -> &[usize] {
        self.values[v].dims.as_deref().unwrap_or(&[])
    }

    /// The width of value `v` (the inputs' width `d` for input-width values).
    pub fn width(&self, v: usize, d: usize) -> usize {
        self.values[v].width.unwrap_or(d)
    }

    /// Output width.
    pub fn out_dim(&self, d: usize) -> usize {
        self.width(self.output, d)
    }
}

/// Which values need their kernels for every pair of positions (see [`Program::full`]): read
/// by a local or global pool, or by a convolution or pointwise step whose output needs them.
fn full_values(steps: &[Step], values: &[ValueInfo]) -> Vec<bool> {
    let mut full = vec![false; values.len()];
    for st in steps.iter().rev() {
        let need = match st.op {
            Op::Pool { .. } | Op::GlobalPool(_) => true,
            Op::Flatten => false,
            _ => full[st.output],
        };
        if need {
            for &v in &st.inputs {
                full[v] = true;
            }
        }
    }
    for (f, v) in full.iter_mut().zip(values) {
        if v.dims.as_ref().is_none_or(|d| d.is_empty()) {
            *f = false;
        }
    }
    full
}

/// Assign slots: a step writes into its first input's slot when that value is not used again,
/// else into a free slot. Returns the per-step assignment, the number of slots and the output's
/// slot.
fn slots(steps: &[Step], n_values: usize, output: usize) -> (Vec<Exec>, usize, usize) {
    let mut last = vec![0usize; n_values];
    for (s, st) in steps.iter().enumerate() {
        for &v in &st.inputs {
            last[v] = s;
        }
    }
    last[output] = usize::MAX;
    let mut slot_of = vec![usize::MAX; n_values];
    slot_of[0] = 0;
    let mut n_slots = 1;
    let mut free: Vec<usize> = Vec::new();
    let mut exec = Vec::with_capacity(steps.len());
    for (s, st) in steps.iter().enumerate() {
        let src: Vec<usize> = st.inputs.iter().map(|&v| slot_of[v]).collect();
        let first = st.inputs[0];
        let dies = |v: usize| last[v] == s;
        let dst = if dies(first) {
            src[0]
        } else if let Some(f) = free.pop() {
            f
        } else {
            n_slots += 1;
            n_slots - 1
        };
        // slots of the other inputs that die here are free from the next step on
        let mut freed: Vec<usize> = Vec::new();
        for &v in &st.inputs {
            let sl = slot_of[v];
            if dies(v) && sl != dst && !freed.contains(&sl) {
                freed.push(sl);
            }
        }
        free.extend(freed);
        slot_of[st.output] = dst;
        exec.push(Exec { src, dst });
    }
    (exec, n_slots, slot_of[output])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Dense, Parameterization};

    fn dense(w: usize) -> Layer {
        Layer::Dense(Dense::new(w, 1.0, Some(0.1), Parameterization::Ntk).unwrap())
    }

    fn residual(block: Vec<Layer>) -> Layer {
        Layer::Serial(vec![
            Layer::FanOut(2),
            Layer::Parallel(vec![Layer::Serial(block), Layer::Identity]),
            Layer::FanIn(FanIn::Sum),
        ])
    }

    #[test]
    fn a_plain_network_runs_in_one_slot() {
        let net = Layer::Serial(vec![dense(8), Layer::Activation(Activation::relu()), dense(1)]);
        let p = Program::compile(&net, Some(&[3])).unwrap();
        assert_eq!((p.steps.len(), p.n_slots, p.out_slot, p.n_dense), (3, 1, 0, 2));
    }

    #[test]
    fn a_residual_block_needs_two_slots_and_sums_in_place() {
        let net = Layer::Serial(vec![
            dense(8),
            residual(vec![dense(8), Layer::Activation(Activation::relu()), dense(8)]),
            dense(1),
        ]);
        let p = Program::compile(&net, None).unwrap();
        assert_eq!(p.n_slots, 2);
        // the branch's first Dense copies (its input is still needed by the skip connection)
        assert_ne!(p.exec[1].dst, p.exec[1].src[0]);
        let sum = p.steps.iter().position(|s| matches!(s.op, Op::Sum)).unwrap();
        assert_eq!(p.exec[sum].dst, p.exec[sum].src[0]);
    }

    #[test]
    fn invalid_graphs_name_the_layer() {
        let act = || Layer::Activation(Activation::relu());
        let mut cases: Vec<(Layer, &str)> = vec![
            (Layer::Serial(vec![act()]), "layer 0 (Relu()"),
            (Layer::Serial(vec![dense(4), act(), act()]), "layer 2"),
            (
                Layer::Serial(vec![dense(4), Layer::FanOut(2), dense(3)]),
                "receives 2 branches",
            ),
            (
                Layer::Serial(vec![dense(4), act(), residual(vec![dense(4)])]),
                "needs every branch Gaussian",
            ),
            (
                Layer::Serial(vec![
                    dense(4),
                    Layer::FanOut(2),
                    Layer::Parallel(vec![dense(3), dense(5)]),
                    Layer::FanIn(FanIn::Sum),
                ]),
                "widths 3, 5",
            ),
            (
                Layer::Serial(vec![
                    dense(4),
                    Layer::FanOut(3),
                    Layer::Parallel(vec![dense(3), dense(3)]),
                ]),
                "FanOut(2)",
            ),
            (Layer::Serial(vec![dense(4), Layer::FanOut(2)]), "ends with 2 branches"),
            (
                Layer::Serial(vec![dense(4), Layer::FanIn(FanIn::Sum)]),
                "there are none",
            ),
            (
                Layer::Serial(vec![
                    dense(4),
                    Layer::FanOut(2),
                    Layer::FanIn(FanIn::Concat { axis: 0 }),
                ]),
                "batch axis",
            ),
            (
                Layer::Serial(vec![
                    dense(4),
                    Layer::LayerNorm(LayerNorm::new(vec![2], 1e-12).unwrap()),
                ]),
                "does not exist",
            ),
        ];
        cases.push((
            Layer::Serial(vec![
                dense(4),
                Layer::FanOut(2),
                Layer::Parallel(vec![Layer::Identity, Layer::Identity]),
                Layer::FanIn(FanIn::Sum),
            ]),
            "not independent",
        ));
        cases.push((
            Layer::Serial(vec![
                dense(4),
                Layer::FanOut(2),
                Layer::Parallel(vec![
                    Layer::LayerNorm(LayerNorm::new(vec![-1], 1e-12).unwrap()),
                    Layer::Identity,
                ]),
                Layer::FanIn(FanIn::Prod),
            ]),
            "not independent",
        ));
        for (net, want) in cases {
            let e = Program::compile(&net, Some(&[3])).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }
}
