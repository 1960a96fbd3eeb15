//! # ntkrs-core
//!
//! Infinite-width NNGP and NTK kernels of fully-connected networks, in pure Rust (no Python).
//! This crate is the engine of the `ntkrs` Python package and can be embedded on its own.
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

pub mod activation;
pub mod analytic;
pub mod control;
pub mod empirical;
pub mod error;
pub mod layer;
pub mod out;
pub mod pool;
pub mod quadrature;
pub(crate) mod tile;
pub mod vmath;

pub use activation::Activation;
pub use analytic::{available_memory, Element, Get, KernelOptions, Kernels};
pub use control::Control;
pub use empirical::{DenseOwned, DenseParams, Empirical, EmpiricalOptions, TrainOptions, Trajectory};
pub use error::{Error, Result};
pub use layer::{Dense, Layer, Network, Parameterization};
pub use out::{parse_bytes, MemorySink, NpyFile, OutOptions, Sink, Stats};
pub use pool::{num_threads, set_num_threads, simd_level};
pub use quadrature::{gauss_legendre, BatchFn, Pointwise};

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
