//! Layers and networks: `Dense` and activations in a validated sequence.

use crate::activation::Activation;
use crate::error::{Error, Result};

/// How a `Dense` layer scales its weights (neural-tangents' conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parameterization {
    /// Weights drawn N(0, 1) and scaled by `W_std/√n_in` in the forward pass (Jacot et al. 2018).
    Ntk,
    /// Weights drawn N(0, W_std²/n_in); the NTK then depends on the widths.
    Standard,
}

impl std::str::FromStr for Parameterization {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ntk" => Ok(Parameterization::Ntk),
            "standard" => Ok(Parameterization::Standard),
            other => Err(Error::arg(
                "parameterization",
                format!("unknown parameterization {other:?}; use \"ntk\" or \"standard\""),
            )),
        }
    }
}

/// A fully-connected layer `x ↦ W_std/√n_in · W x + b_std · b` (NTK parameterization).
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Output width (only the standard parameterization's NTK depends on it, through the next layer).
    pub out_dim: usize,
    /// Weight standard deviation σ_w ≥ 0.
    pub w_std: f64,
    /// Bias standard deviation σ_b ≥ 0, or `None` for no bias.
    pub b_std: Option<f64>,
    /// Weight scaling convention.
    pub parameterization: Parameterization,
}

impl Dense {
    /// A validated dense layer.
    pub fn new(out_dim: usize, w_std: f64, b_std: Option<f64>, parameterization: Parameterization) -> Result<Self> {
        if out_dim == 0 {
            return Err(Error::arg("out_dim", "the width of a Dense layer must be at least 1"));
        }
        if !(w_std.is_finite() && w_std >= 0.0) {
            return Err(Error::arg("W_std", format!("must be a finite number ≥ 0, got {w_std}")));
        }
        if let Some(b) = b_std {
            if !(b.is_finite() && b >= 0.0) {
                return Err(Error::arg(
                    "b_std",
                    format!("must be a finite number ≥ 0 (or None for no bias), got {b}"),
                ));
            }
        }
        Ok(Dense {
            out_dim,
            w_std,
            b_std,
            parameterization,
        })
    }
}

/// One layer of a network.
#[derive(Clone, Debug)]
pub enum Layer {
    /// A fully-connected layer.
    Dense(Dense),
    /// A pointwise nonlinearity; it must follow a `Dense`.
    Activation(Activation),
}

/// A `Dense` layer with the activation that follows it, if any: the unit of the kernel recursion.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    pub dense: Dense,
    pub act: Option<Activation>,
}

/// A validated fully-connected network: `Dense` layers, each optionally followed by one activation.
///
/// ```
/// use ntkrs_core::{Activation, Dense, Layer, Network, Parameterization};
/// let dense = |w| Layer::Dense(Dense::new(512, w, Some(0.05), Parameterization::Ntk).unwrap());
/// let net = Network::new(vec![dense(1.5), Layer::Activation(Activation::relu()), dense(1.5)]).unwrap();
/// assert_eq!(net.depth(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct Network {
    pub(crate) blocks: Vec<Block>,
}

impl Network {
    /// Validate a layer sequence: it starts with a `Dense` and every activation directly follows
    /// a `Dense` (its input must be Gaussian in the infinite-width limit).
    pub fn new(layers: Vec<Layer>) -> Result<Self> {
        let mut blocks: Vec<Block> = Vec::new();
        for (i, layer) in layers.into_iter().enumerate() {
            match layer {
                Layer::Dense(d) => blocks.push(Block { dense: d, act: None }),
                Layer::Activation(a) => match blocks.last_mut() {
                    None => {
                        return Err(Error::InvalidNetwork(format!(
                            "layer {i} ({}) comes before any Dense; an activation must follow a \
                             Dense layer (its input must be Gaussian): put a Dense first",
                            a.name()
                        )))
                    }
                    Some(b) if b.act.is_some() => {
                        return Err(Error::InvalidNetwork(format!(
                            "layer {i} ({}) directly follows another activation; put a Dense \
                             layer between two activations",
                            a.name()
                        )))
                    }
                    Some(b) => b.act = Some(a),
                },
            }
        }
        if blocks.is_empty() {
            return Err(Error::InvalidNetwork(
                "the network has no layers; add at least one Dense".into(),
            ));
        }
        Ok(Network { blocks })
    }

    /// Number of `Dense` layers.
    pub fn depth(&self) -> usize {
        self.blocks.len()
    }

    /// The layers, in order.
    pub fn layers(&self) -> Vec<Layer> {
        let mut out = Vec::new();
        for b in &self.blocks {
            out.push(Layer::Dense(b.dense.clone()));
            if let Some(a) = &b.act {
                out.push(Layer::Activation(a.clone()));
            }
        }
        out
    }
}
