//! A validated network: a tree of [`Layer`]s (neural-tangents' `serial`/`parallel` with
//! branches), checked once when built and compiled for each call.

use crate::error::Result;
use crate::layer::Layer;
use crate::program::Program;

/// A validated network.
///
/// ```
/// use ntkrs_core::{Activation, Dense, FanIn, Layer, Network, Parameterization};
/// let dense = |w| Layer::Dense(Dense::new(64, w, Some(0.05), Parameterization::Ntk).unwrap());
/// let mlp = Network::new(vec![dense(1.5), Layer::Activation(Activation::relu()), dense(1.5)]).unwrap();
/// assert_eq!(mlp.depth(), 2);
/// // a residual block: serial(FanOut(2), parallel(serial(Dense, Relu, Dense), Identity()), FanInSum())
/// let block = Layer::Serial(vec![
///     Layer::FanOut(2),
///     Layer::Parallel(vec![
///         Layer::Serial(vec![dense(1.0), Layer::Activation(Activation::relu()), dense(1.0)]),
///         Layer::Identity,
///     ]),
///     Layer::FanIn(FanIn::Sum),
/// ]);
/// let resnet = Network::new(vec![dense(1.0), block, dense(1.0)]).unwrap();
/// assert_eq!(resnet.depth(), 4);
/// ```
#[derive(Clone, Debug)]
pub struct Network {
    root: Layer,
    /// Compiled without knowing the input width (for validation and the structure).
    program: Program,
}

impl Network {
    /// The layers applied one after the other (`stax.serial(*layers)`), validated: every
    /// activation and `LayerNorm` has a Gaussian input, every `FanIn` joins branches of equal
    /// widths (sum, product), `parallel` gets as many branches as it has layers, the network
    /// ends with one branch.
    pub fn new(layers: Vec<Layer>) -> Result<Self> {
        Self::from_layer(Layer::Serial(layers))
    }

    /// A network from any layer (a [`Layer::Serial`] for several).
    pub fn from_layer(root: Layer) -> Result<Self> {
        let root = match root {
            Layer::Serial(v) => Layer::Serial(v),
            other => Layer::Serial(vec![other]),
        };
        let program = Program::compile(&root, None)?;
        Ok(Network { root, program })
    }

    /// `Ok` when `layer` is valid as part of some network (on raw inputs, or on Gaussian
    /// branches, as a residual branch is); else the error it has on raw inputs. Front ends call
    /// this when a sub-network is built, so that what is wrong in every context is reported at
    /// once and the rest when the network is used.
    pub fn check_layer(layer: &Layer) -> Result<()> {
        Program::check_in_context(layer)
    }

    /// The layer tree (a [`Layer::Serial`]).
    pub fn root(&self) -> &Layer {
        &self.root
    }

    /// The top-level layers, in order.
    pub fn layers(&self) -> &[Layer] {
        match &self.root {
            Layer::Serial(v) => v,
            _ => std::slice::from_ref(&self.root),
        }
    }

    /// Number of parameter layers, `Dense` and `Conv` (the parameter pairs of the finite network).
    pub fn depth(&self) -> usize {
        self.program.n_dense
    }

    /// Whether the network has a `Dropout` layer in train mode.
    pub fn has_dropout(&self) -> bool {
        self.program.n_dropout > 0
    }

    /// Output width for inputs of width `d` (the last `Dense`'s, or `d` when the output is an
    /// input-width value).
    pub fn out_dim(&self, d: usize) -> usize {
        self.program.out_dim(d)
    }

    /// The output's shape for examples of shape `in_shape`: `(O,)`, or `(..., C)` when the
    /// network ends without a readout on spatial values.
    pub fn out_shape(&self, in_shape: &[usize]) -> Result<Vec<usize>> {
        let p = self.compile_shape(in_shape)?;
        let mut s = p.dims(p.output).to_vec();
        s.push(p.out_dim(0));
        Ok(s)
    }

    /// The program for inputs of width `d`.
    pub(crate) fn compile(&self, d: usize) -> Result<Program> {
        Program::compile(&self.root, Some(&[d]))
    }

    /// The program for examples of shape `in_shape` (`(d,)`, `(L, C)`, `(H, W, C)`, ...).
    pub(crate) fn compile_shape(&self, in_shape: &[usize]) -> Result<Program> {
        Program::compile(&self.root, Some(in_shape))
    }
}
