//! # ntkrs-core
//!
//! Infinite-width NNGP and NTK kernels, and finite-width empirical kernels, of networks built
//! from neural-tangents' `stax` layers (dense, residual and LayerNorm networks), in pure Rust (no
//! Python). This crate is the engine of the `ntkrs` Python package and can be embedded on its
//! own.
//!
//! Conventions are those of neural-tangents' `stax`: the input covariance is `x·x'/d`, a
//! [`Dense`] layer maps `Σ ↦ W_std²·Σ + b_std²` and (NTK parameterization) `Θ ↦ Σ' + W_std²·Θ`,
//! and an [`Activation`] maps `Σ ↦ E[φ(u)φ(v)]`, `Θ ↦ Θ·E[φ'(u)φ'(v)]` (Jacot et al. 2018).
//!
//! ```
//! use ntkrs_core::{Activation, Control, Dense, Get, KernelOptions, Layer, Network, Parameterization};
//! let dense = |w: usize| Layer::Dense(Dense::new(w, 1.5, Some(0.05), Parameterization::Ntk).unwrap());
//! let net = Network::new(vec![dense(512), Layer::Activation(Activation::relu()), dense(1)]).unwrap();
//! let x = faer::Mat::<f64>::from_fn(10, 3, |i, j| (i + 2 * j) as f64 / 7.0);
//! let k = net.kernel(x.as_ref(), None, Get::BOTH, &KernelOptions::default(), &Control::new()).unwrap();
//! let (nngp, ntk) = (k.nngp.unwrap(), k.ntk.unwrap());
//! assert_eq!(nngp.len(), 100);
//! assert_eq!(nngp[3 * 10 + 7], nngp[7 * 10 + 3]); // symmetric
//! assert!(ntk[0] > nngp[0]);
//! ```
//!
//! Inside, modules hold one concept each: the shared vocabulary (`element`, `kernels`, `error`,
//! `control`, `memory`, `input`, `pool`) is imported by the rest and imports none of it;
//! `activation` and `layer` hold one module per activation and per layer kind; `network`
//! validates a layer tree, `program` compiles it into steps, `plan` prepares them for a batch,
//! `tile` runs them over the output in tiles; `analytic`, `out` and `empirical` are the entry
//! points. Every public item is re-exported here, at the root, and only here.
//!
//! Embedding: the pool of threads is the host's to size ([`set_num_threads`]), or bypass per call
//! ([`Parallelism`] in every options struct); errors are a typed, `#[non_exhaustive]` [`Error`];
//! matrices come in as [`faer::MatRef`] (re-exported: [`faer`]) in any layout, and results go out as
//! plain `Vec`s or into caller buffers ([`Network::kernel_into`]).

mod activation;
mod analytic;
mod control;
mod element;
mod empirical;
mod error;
mod finite_conv;
mod input;
mod kernels;
mod layer;
mod linalg;
mod memory;
mod network;
mod out;
mod plan;
mod pool;
mod program;
mod quadrature;
mod random;
mod shape;
mod spatial;
mod spec;
mod tile;
mod vmath;

// One public path per item: everything a host needs is here, at the root.
pub use activation::registry;
pub use activation::{Activation, BatchFn, Pointwise, DEFAULT_QUAD_DEGREE, MAX_POLY_DEGREE, MAX_QUAD_DEGREE};
pub use analytic::KernelOptions;
pub use control::Control;
pub use element::Element;
pub use empirical::{
    ApplyOptions, DenseOwned, DenseParams, Empirical, EmpiricalOptions, MonteCarloOptions, TrainOptions, Trajectory,
};
pub use error::{Error, Result};
/// faer, the linear-algebra crate of the matrix arguments ([`faer::MatRef`]): use this one rather
/// than pinning a version of your own.
pub use faer;
pub use kernels::{Get, Kernels};
pub use layer::{
    Conv, Dense, Dropout, DropoutMode, FanIn, Layer, LayerNorm, Padding, Parameterization, Pool, PoolKind,
};
pub use memory::available_memory;
pub use network::Network;
pub use out::{npy_header, parse_bytes, MemorySink, NpyFile, OutOptions, Sink, Stats, RESERVE_BYTES};
pub use pool::{current_simd_level, num_threads, set_num_threads, set_simd_level, simd_level, Parallelism, SimdLevel};
pub use quadrature::gauss_legendre;
pub use shape::InputShape;
pub use spec::{mlp, parse_activation, resnet, LayerNormPosition, Spec};
pub use vmath::Real;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The crate README's example, compiled and run as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
