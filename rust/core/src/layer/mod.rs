//! Layers with neural-tangents' `stax` names and semantics, one module per kind, and the
//! combinators that build a network from them (`Serial`, `Parallel`).

pub mod conv;
pub mod dense;
pub mod dropout;
pub mod fan;
pub mod layer_norm;

pub use conv::{Conv, Padding, Pool, PoolKind};
pub use dense::{Dense, Parameterization};
pub use dropout::{Dropout, DropoutMode};
pub use fan::FanIn;
pub use layer_norm::LayerNorm;

use crate::activation::Activation;
use crate::error::{Error, Result};

/// One layer of a network, or a combination of layers.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Layer {
    /// A fully-connected layer.
    Dense(Dense),
    /// A pointwise nonlinearity; its input must be Gaussian (after a `Dense`, a sum of Gaussian
    /// branches, or a `LayerNorm` of one).
    Activation(Activation),
    /// The identity (stax's `Identity()` layer): passes its input on unchanged.
    Identity,
    /// Layer normalisation.
    LayerNorm(LayerNorm),
    /// Dropout.
    Dropout(Dropout),
    /// `FanOut(num)`: `num` copies of the input, one per branch.
    FanOut(usize),
    /// Joins the branches into one.
    FanIn(FanIn),
    /// The layers applied one after the other (`stax.serial`).
    Serial(Vec<Layer>),
    /// One layer per branch (`stax.parallel`): layer `k` is applied to branch `k`.
    Parallel(Vec<Layer>),
    /// A convolution over the spatial axes of `(N, ..., C)` inputs.
    Conv(Conv),
    /// Local average or sum pooling over the spatial axes.
    Pool(Pool),
    /// `GlobalAvgPool()` / `GlobalSumPool()`: the mean / sum over every spatial position.
    GlobalPool(PoolKind),
    /// `Flatten()`: the spatial axes and channels merged into one feature axis.
    Flatten,
}

impl Layer {
    /// `FanOut(num)`, validated.
    pub fn fan_out(num: usize) -> Result<Self> {
        if num == 0 {
            return Err(Error::arg("num", "FanOut needs at least 1 branch"));
        }
        Ok(Layer::FanOut(num))
    }

    /// A short description in neural-tangents' syntax (combinators by their kind only).
    pub fn name(&self) -> String {
        match self {
            Layer::Dense(d) => d.name(),
            Layer::Activation(a) => a.name(),
            Layer::Identity => "Identity()".into(),
            Layer::LayerNorm(l) => l.name(),
            Layer::Dropout(d) => d.name(),
            Layer::FanOut(n) => format!("FanOut({n})"),
            Layer::FanIn(f) => f.name(),
            Layer::Serial(v) => format!("serial(<{} layers>)", v.len()),
            Layer::Parallel(v) => format!("parallel(<{} layers>)", v.len()),
            Layer::Conv(c) => c.name(),
            Layer::Pool(p) => p.name(),
            Layer::GlobalPool(PoolKind::Avg) => "GlobalAvgPool()".into(),
            Layer::GlobalPool(PoolKind::Sum) => "GlobalSumPool()".into(),
            Layer::Flatten => "Flatten()".into(),
        }
    }
}
