//! Finite-width networks: initialisation, the forward pass, their empirical NNGP and NTK, Monte
//! Carlo estimates of the kernels, and training by gradient descent.
//!
//! The network's [`crate::program::Program`] runs on batches: every value is a column-major
//! `width × N` matrix (each sample's features contiguous). A `Dense` layer maps its input `h` to
//! `z = s·h W + β·b`, with neural-tangents' scales: `s = W_std/√n_in`, `β = b_std` in the NTK
//! parameterization, `s = β = 1` in the standard one (whose parameters are pre-scaled at
//! initialisation).
//!
//! The empirical NTK (eq. 5 of the seed derivation) `Θ(x, x') = Σ_p ∂f/∂θ_p ⊗ ∂f/∂θ_p` is computed
//! from the network's structure, never through the `N × P` Jacobian: with the backward signals
//! `Δ_l(x)[o, :] = ∂f_o(x)/∂z_l` at the output of `Dense` layer `l` (propagated back through
//! activations, `LayerNorm`, dropout masks, sums, products, concatenations and branch copies),
//!
//! `Θ_l(x, x')[o, o'] = (s_l²·h_{l−1}(x)·h_{l−1}(x') + β_l²) · Δ_l(x)[o, :]·Δ_l(x')[o', :]`
//!
//! is the contribution of layer `l`'s weights and bias, and `Θ = Σ_l Θ_l`. The cost is the forward
//! and backward matrix products plus one Gram of the inputs and one of the backward signals per
//! `Dense` layer: about `N²·Σ_l (n_{l−1} + O·n_l)`.

use faer::{MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::control::Control;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::finite_conv as fc;
use crate::input::check_input;
use crate::kernels::{Get, Kernels};
use crate::layer::{layer_norm, Dropout};
use crate::layer::{Dense, PoolKind};
use crate::linalg::{all_finite, cm, gemm_cols, gram, permute_full, CHUNK, MIN_LEN};
use crate::memory::{alloc_results, available_memory, check_room, count};
use crate::network::Network;
use crate::pool::{Parallelism, Runner};
use crate::program::{Op, Program};
use crate::random::normals;
use crate::shape::InputShape;

/// One Dense layer's parameters, borrowed: `w` is `n_in × n_out` (neural-tangents' layout), `b`
/// has `n_out` entries and is present exactly when the layer has a bias (`b_std` is not `None`).
#[derive(Clone, Copy, Debug)]
pub struct DenseParams<'a, T> {
    /// Weights, `n_in × n_out`.
    pub w: MatRef<'a, T>,
    /// Biases, `n_out`.
    pub b: Option<&'a [T]>,
}

/// Owned parameters of one Dense layer: `w` row-major `n_in × n_out`.
#[derive(Clone, Debug)]
pub struct DenseOwned<T> {
    /// Weights, row-major `n_in × n_out`.
    pub w: Vec<T>,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// Biases, `n_out`, when the layer has them.
    pub b: Option<Vec<T>>,
}

impl<T: Element> DenseOwned<T> {
    /// A borrowed view.
    pub fn view(&self) -> DenseParams<'_, T> {
        DenseParams {
            w: MatRef::from_row_major_slice(&self.w, self.n_in, self.n_out),
            b: self.b.as_deref(),
        }
    }
}

/// Options of [`Network::apply`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplyOptions {
    /// Where the computation runs.
    pub par: Parallelism,
    /// The seed of the dropout masks (`Dropout(mode="train")` layers only; batch 0's masks).
    pub dropout_seed: u64,
    /// The per-example shape of the input rows (`InputShape::FLAT`: vectors); images
    /// `(H, W, C)` / `(L, C)` are rows flattened in C order (NHWC).
    pub shape: InputShape,
}

/// Which empirical kernels to compute and in what form.
#[derive(Clone, Copy, Debug)]
pub struct EmpiricalOptions {
    /// The kernels wanted.
    pub get: Get,
    /// Average over the output units (`N1 × N2`), or keep them (`N1 × N2 × O × O`).
    pub trace: bool,
    /// Also return the NTK's contribution of each Dense layer.
    pub per_layer: bool,
    /// Where the computation runs.
    pub par: Parallelism,
    /// The seed of the dropout masks (`Dropout(mode="train")` layers only): `x1`'s samples use
    /// the masks of batch 0, `x2`'s those of batch 1.
    pub dropout_seed: u64,
    /// The per-example shape of the input rows (see [`ApplyOptions::shape`]).
    pub shape: InputShape,
}

impl Default for EmpiricalOptions {
    fn default() -> Self {
        EmpiricalOptions {
            get: Get::BOTH,
            trace: true,
            per_layer: false,
            par: Parallelism::Pool,
            dropout_seed: 0,
            shape: InputShape::FLAT,
        }
    }
}

/// Empirical kernels, row-major: `rows × cols` when traced, else `rows × cols × out_dim × out_dim`.
#[derive(Clone, Debug)]
pub struct Empirical<T> {
    /// `f(x1)·f(x2)/O` (traced) or `f_o(x1)·f_o'(x2)`.
    pub nngp: Option<Vec<T>>,
    /// The empirical NTK.
    pub ntk: Option<Vec<T>>,
    /// The NTK's term of each Dense layer (weights and bias), in network order, when asked.
    pub ntk_layers: Vec<Vec<T>>,
    /// `x1`'s samples.
    pub rows: usize,
    /// `x2`'s samples (or `x1`'s).
    pub cols: usize,
    /// Output units `O`.
    pub out_dim: usize,
    /// Whether the output axes were averaged.
    pub traced: bool,
}

/// Elementwise `dst[i] = f(dst[i], src[i])`, in parallel chunks unless `par` is sequential.
fn zip_apply<T: Element>(par: Par, dst: &mut [T], src: &[T], f: impl Fn(T, T) -> T + Sync + Send) {
    if matches!(par, Par::Seq) || dst.len() < 2 * MIN_LEN {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = f(*d, s));
    } else {
        dst.par_iter_mut()
            .zip(src.par_iter())
            .with_min_len(MIN_LEN)
            .for_each(|(d, &s)| *d = f(*d, s));
    }
}

/// Add `add` to the signal in `slot` (or put it there).
fn accumulate<T: Element>(par: Par, slot: &mut Option<Vec<T>>, add: Vec<T>) {
    match slot {
        None => *slot = Some(add),
        Some(v) => zip_apply(par, v, &add, |a, b| a + b),
    }
}

/// Scale each sample's `k` signal columns (each `width` long) by that sample's column of `by`
/// (`width × n`): `∂/∂x = Δ ⊙ φ'(z)`, a dropout mask, a product's other factors.
fn scale_columns<T: Element>(par: Par, sig: &[T], by: &[T], width: usize, k: usize) -> Vec<T> {
    let mut out = sig.to_vec();
    let per = width * k;
    let job = |(blk, da): (&mut [T], &[T])| {
        for col in blk.chunks_mut(width) {
            for (v, &g) in col.iter_mut().zip(da) {
                *v *= g;
            }
        }
    };
    if matches!(par, Par::Seq) || out.len() < 2 * MIN_LEN {
        out.chunks_mut(per).zip(by.chunks(width)).for_each(job);
    } else {
        out.par_chunks_mut(per)
            .zip(by.par_chunks(width))
            .with_min_len(MIN_LEN / per + 1)
            .for_each(job);
    }
    out
}

/// A batch's forward pass: every value's activations and what the backward pass needs.
pub(crate) struct Forward<T> {
    n: usize,
    d: usize,
    /// Per value, column-major `width × n`; value 0 (the inputs) only when a step other than a
    /// `Dense` reads it.
    h: Vec<Option<Vec<T>>>,
    /// Per step: `φ'(z)` (activations), `1/√(var + eps)` (`LayerNorm`), the mask (dropout).
    aux: Vec<Option<Vec<T>>>,
}

impl<T: Element> Forward<T> {
    /// Value `v` as a `width × n` matrix.
    fn mat<'a>(&'a self, p: &Program, v: usize, x: MatRef<'a, T>) -> MatRef<'a, T> {
        match &self.h[v] {
            Some(h) => cm(h, p.width(v, self.d), self.n),
            None => x.transpose(),
        }
    }

    fn slice(&self, v: usize) -> &[T] {
        self.h[v].as_deref().expect("values read elementwise are stored")
    }
}

impl Network {
    /// Check that `params` fit this network on inputs of width `in_dim`.
    pub fn check_params<T: Element>(&self, params: &[DenseParams<'_, T>], in_dim: usize) -> Result<()> {
        let prog = self.compile(in_dim)?;
        check_params(&prog, params, in_dim)
    }
}

/// Positions of value `v` (1 when it has no spatial axes).
fn positions(p: &Program, v: usize) -> usize {
    p.dims(v).iter().product()
}

/// Entries of value `v` per sample: channels × positions.
fn size(p: &Program, v: usize, d: usize) -> usize {
    p.width(v, d) * positions(p, v)
}

/// Whether a step's parameters act on several positions (a `Conv`, or a `Dense` on a spatial
/// value): its NTK term is formed from per-sample gradients.
fn spatial_param(p: &Program, s: usize) -> bool {
    let st = &p.steps[s];
    matches!(st.op, Op::Conv { .. }) || positions(p, st.inputs[0]) > 1
}

/// The parameter steps (`Dense` and `Conv`) of a program: `(param, step, rows, n_out, layer)`,
/// `rows` the rows of `W` (`n_in`, or `taps·C_in` for a convolution: its fan-in), `layer` the
/// `Dense` with the step's standard deviations and parameterization.
fn param_steps(p: &Program, d: usize) -> Vec<(usize, usize, usize, usize, Dense)> {
    let mut out: Vec<_> = p
        .steps
        .iter()
        .enumerate()
        .filter_map(|(s, st)| match &st.op {
            Op::Dense { layer, param } => Some((*param, s, p.width(st.inputs[0], d), layer.out_dim, layer.clone())),
            Op::Conv { layer, param, .. } => Some((
                *param,
                s,
                layer.taps() * p.width(st.inputs[0], d),
                layer.out_chan,
                layer.as_dense(),
            )),
            _ => None,
        })
        .collect();
    out.sort_by_key(|t| t.0);
    out
}

impl Network {
    /// The program for inputs of `d` columns with examples of shape `shape`.
    fn finite_program(&self, d: usize, shape: InputShape) -> Result<Program> {
        let s = shape.resolve(d)?;
        let p = if s.len() == 1 {
            self.compile(d)?
        } else {
            self.compile_shape(&s)?
        };
        if positions(&p, p.output) > 1 {
            return Err(Error::InvalidNetwork(format!(
                "the network's output has spatial shape {:?}: end it with a readout (Flatten() or \
                 GlobalAvgPool()) and a Dense layer",
                p.dims(p.output)
            )));
        }
        Ok(p)
    }
}

/// The `Dense` steps of a program: `(param, step, n_in, n_out, layer)`.
fn dense_steps(p: &Program, d: usize) -> Vec<(usize, usize, usize, usize, &crate::layer::Dense)> {
    let mut out: Vec<_> = p
        .steps
        .iter()
        .enumerate()
        .filter_map(|(s, st)| match &st.op {
            Op::Dense { layer, param } => Some((*param, s, p.width(st.inputs[0], d), layer.out_dim, layer)),
            _ => None,
        })
        .collect();
    out.sort_by_key(|t| t.0);
    out
}

fn check_params<T: Element>(prog: &Program, params: &[DenseParams<'_, T>], in_dim: usize) -> Result<()> {
    if params.len() != prog.n_dense {
        return Err(Error::arg(
            "params",
            format!(
                "the network has {} Dense layer(s) but {} (W, b) pair(s) were given; pass the list net.init returns",
                prog.n_dense,
                params.len()
            ),
        ));
    }
    for (l, _, n_in, n_out, layer) in param_steps(prog, in_dim) {
        let p = &params[l];
        if p.w.nrows() != n_in || p.w.ncols() != n_out {
            return Err(Error::arg(
                "params",
                format!(
                    "W of parameter layer {l} has shape ({}, {}) but the layer needs ({n_in}, {n_out}) \
                     (in, out; a Conv's filter (*filter_shape, in, out) as ({n_in}, {n_out})){}",
                    p.w.nrows(),
                    p.w.ncols(),
                    if n_in == in_dim && l == 0 {
                        " for inputs with this many features"
                    } else {
                        ""
                    }
                ),
            ));
        }
        match (p.b, layer.b_std) {
            (Some(b), Some(_)) if b.len() != n_out => {
                return Err(Error::arg(
                    "params",
                    format!(
                        "b of Dense layer {l} has {} entries but the layer has {n_out} units",
                        b.len()
                    ),
                ))
            }
            (Some(_), None) => {
                return Err(Error::arg(
                    "params",
                    format!("Dense layer {l} has no bias (b_std=None) but a bias b was given; pass (W, None)"),
                ))
            }
            (None, Some(_)) => {
                return Err(Error::arg(
                    "params",
                    format!("Dense layer {l} has a bias (b_std is set) but b is None"),
                ))
            }
            _ => {}
        }
        let finite_w = all_finite(p.w);
        let finite_b = p.b.is_none_or(|b| b.iter().all(|v| v.is_finite()));
        if !(finite_w && finite_b) {
            return Err(Error::arg(
                "params",
                format!("Dense layer {l}'s parameters contain NaN or infinite values"),
            ));
        }
    }
    Ok(())
}

impl Network {
    /// Random parameters with neural-tangents' layout and distribution, for inputs of width
    /// `in_dim`, one `(W, b)` per `Dense` layer in network order (depth first): `W ~ N(0, 1)`
    /// (`n_in × n_out`) and `b ~ N(0, 1)` in the NTK parameterization; `W ~ N(0, W_std²/n_in)`,
    /// `b ~ N(0, b_std²)` in the standard one. Deterministic for a `seed` (whatever the number of
    /// threads); `sample` selects an independent draw.
    ///
    /// ```
    /// use ntkrs_core::{Activation, Dense, Layer, Network, Parameterization};
    /// let dense = |w| Layer::Dense(Dense::new(w, 1.0, Some(0.1), Parameterization::Ntk).unwrap());
    /// let net = Network::new(vec![dense(64), Layer::Activation(Activation::relu()), dense(3)]).unwrap();
    /// let p = net.init::<f64>(5, 0, 0).unwrap();
    /// assert_eq!((p[0].n_in, p[0].n_out, p[1].n_in, p[1].n_out), (5, 64, 64, 3));
    /// assert_eq!(p[1].w, net.init::<f64>(5, 0, 0).unwrap()[1].w);
    /// ```
    pub fn init<T: Element>(&self, in_dim: usize, seed: u64, sample: u64) -> Result<Vec<DenseOwned<T>>> {
        self.init_shaped(in_dim, InputShape::FLAT, seed, sample)
    }

    /// [`Network::init`] for inputs of `in_dim` columns holding examples of shape `shape`
    /// (images, flattened in C order). A `Conv`'s filter is returned as its `(taps·C_in) × C_out`
    /// matrix: neural-tangents' HWIO array `(*filter_shape, C_in, C_out)` in C order; its
    /// distribution is a `Dense`'s of fan-in `taps·C_in`.
    pub fn init_shaped<T: Element>(
        &self,
        in_dim: usize,
        shape: InputShape,
        seed: u64,
        sample: u64,
    ) -> Result<Vec<DenseOwned<T>>> {
        if in_dim == 0 {
            return Err(Error::arg("in_dim", "the input width must be at least 1"));
        }
        let prog = self.finite_program(in_dim, shape)?;
        init_prog(&prog, in_dim, seed, sample)
    }

    /// Number of parameters (weights and biases) of the finite network on inputs of width
    /// `in_dim`.
    pub fn n_params(&self, in_dim: usize) -> Result<usize> {
        let prog = self.compile(in_dim)?;
        Ok(dense_steps(&prog, in_dim)
            .into_iter()
            .map(|(_, _, n_in, n_out, layer)| {
                n_in.saturating_mul(n_out) + if layer.b_std.is_some() { n_out } else { 0 }
            })
            .fold(0usize, usize::saturating_add))
    }

    /// The network's outputs `f(x)`, row-major `N × O`.
    pub fn apply<T: Element>(
        &self,
        params: &[DenseParams<'_, T>],
        x: MatRef<'_, T>,
        opts: &ApplyOptions,
        ctl: &Control,
    ) -> Result<Vec<T>> {
        check_input("x", x)?;
        let prog = self.finite_program(x.ncols(), opts.shape)?;
        check_params(&prog, params, x.ncols())?;
        ctl.add_total(prog.steps.len() as u64);
        let runner = Runner::new(opts.par, worth_threads(&prog, x.nrows(), x.ncols(), 1))?;
        let fwd = runner.run(|_| forward(&prog, params, x, 0, false, opts.dropout_seed, runner.faer(), ctl))?;
        Ok(outputs(&prog, &fwd, x))
    }

    /// Empirical kernels of the network with parameters `params` between the rows of `x1` and
    /// `x2` (`None`: `x1` itself; the result is then exactly symmetric).
    ///
    /// ```
    /// use ntkrs_core::{Activation, Control, Dense, Layer, Network, Parameterization};
    /// use ntkrs_core::EmpiricalOptions;
    /// let dense = |w| Layer::Dense(Dense::new(w, 1.5, Some(0.1), Parameterization::Ntk).unwrap());
    /// let net = Network::new(vec![dense(32), Layer::Activation(Activation::relu()), dense(2)]).unwrap();
    /// let params = net.init::<f64>(3, 7, 0).unwrap();
    /// let view: Vec<_> = params.iter().map(|p| p.view()).collect();
    /// let x = faer::Mat::<f64>::from_fn(4, 3, |i, j| (i as f64 - j as f64) / 3.0);
    /// let k = net.empirical(&view, x.as_ref(), None, &EmpiricalOptions::default(), &Control::new()).unwrap();
    /// let ntk = k.ntk.unwrap();
    /// assert_eq!(ntk.len(), 16);
    /// assert_eq!(ntk[1], ntk[4]); // symmetric
    /// ```
    pub fn empirical<T: Element>(
        &self,
        params: &[DenseParams<'_, T>],
        x1: MatRef<'_, T>,
        x2: Option<MatRef<'_, T>>,
        opts: &EmpiricalOptions,
        ctl: &Control,
    ) -> Result<Empirical<T>> {
        opts.get.check()?;
        crate::input::check_inputs(x1, x2)?;
        let d = x1.ncols();
        let prog = self.finite_program(d, opts.shape)?;
        check_params(&prog, params, d)?;
        let (n1, n2, o) = (x1.nrows(), x2.map_or(x1.nrows(), |x| x.nrows()), prog.out_dim(d));
        let per = if opts.trace { 1 } else { o * o };
        let size = count::<T>(n1, n2, per, || {
            format!("an empirical kernel of {n1} x {n2} x {per} entries")
        })?;
        let nk = opts.get.count()
            + if opts.get.ntk && opts.per_layer {
                prog.n_dense
            } else {
                0
            };
        // the results, plus the two temporary Grams of the same size
        check_room::<T>(
            size as u128 * (nk + 2) as u128,
            &format!(
                "{nk} empirical {} kernel(s) of {n1} x {n2} x {per} entries (with work space)",
                T::NAME
            ),
        )?;
        ctl.add_total(units(&prog, x2.is_some(), opts.get));
        let runner = Runner::new(opts.par, worth_threads(&prog, n1 + n2, d, 1 + o))?;
        runner.run(|_| empirical_in(&prog, params, x1, x2, opts, runner.faer(), ctl))
    }
}

fn spatial_unsupported(label: &str) -> Error {
    Error::InvalidNetwork(format!(
        "{label}: finite-width networks with LayerNorm or FanInConcat on spatial values (images) are not \
         supported yet; the analytic kernels (kernel) are"
    ))
}

/// The factor of a global pool over `p` positions.
fn global_scale(kind: PoolKind, p: usize) -> f64 {
    match kind {
        PoolKind::Avg => 1.0 / p as f64,
        PoolKind::Sum => 1.0,
    }
}

/// [`Network::init_shaped`] on a compiled program.
fn init_prog<T: Element>(prog: &Program, in_dim: usize, seed: u64, sample: u64) -> Result<Vec<DenseOwned<T>>> {
    let cancel = crate::control::Cancel::current();
    param_steps(prog, in_dim)
        .into_iter()
        .map(|(l, _, n_in, n_out, layer)| {
            let count = n_in
                .checked_mul(n_out)
                .ok_or_else(|| Error::arg("in_dim", "the layer is too large"))?;
            let (sw, sb) = layer.init_stds(n_in);
            let w = normals::<T>(count, [seed, sample, l as u64, 0], sw);
            // a draw cut short by a cancellation (through `Control::scope`) is discarded here
            cancel.check()?;
            let b = layer
                .b_std
                .map(|_| normals::<T>(n_out, [seed, sample, l as u64, 1], sb));
            Ok(DenseOwned { w, n_in, n_out, b })
        })
        .collect()
}

/// Whether `ways` passes of `n` samples through the network's parameters (multiply-adds) are
/// worth spreading over threads: below about a million, waking pool threads costs more than it
/// saves, so the work runs on the calling thread (bitwise the same results).
fn worth_threads(p: &Program, n: usize, d: usize, ways: usize) -> bool {
    let params: usize = param_steps(p, d)
        .iter()
        .map(|&(_, _, n_in, n_out, _)| n_in.saturating_mul(n_out))
        .fold(0, usize::saturating_add);
    params.saturating_mul(n).saturating_mul(ways) >= 1 << 20
}

/// Progress units of one empirical computation.
fn units(p: &Program, two: bool, get: Get) -> u64 {
    let s = p.steps.len() as u64;
    let l = p.n_dense as u64;
    s * if two { 2 } else { 1 } + if get.ntk { s + l } else { 0 } + get.nngp as u64
}

/// The outputs `f(x)` of a forward pass, row-major `N × O`.
fn outputs<T: Element>(p: &Program, fwd: &Forward<T>, x: MatRef<'_, T>) -> Vec<T> {
    match &fwd.h[p.output] {
        Some(h) => h.clone(),
        None => {
            // the network is the identity on its inputs
            let (n, d) = (x.nrows(), x.ncols());
            let mut out = vec![T::ZERO; n * d];
            for a in 0..n {
                for k in 0..d {
                    out[a * d + k] = x[(a, k)];
                }
            }
            out
        }
    }
}

/// The forward pass of batch `batch` (0 for `x1`, 1 for `x2`): every value, and with `grad`
/// what the backward pass needs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<T: Element>(
    p: &Program,
    params: &[DenseParams<'_, T>],
    x: MatRef<'_, T>,
    batch: u64,
    grad: bool,
    dropout_seed: u64,
    par: Par,
    ctl: &Control,
) -> Result<Forward<T>> {
    let (n, d) = (x.nrows(), x.ncols());
    let mut fwd = Forward {
        n,
        d,
        h: vec![None; p.values.len()],
        aux: vec![None; p.steps.len()],
    };
    let elementwise_input = p
        .steps
        .iter()
        .any(|st| !matches!(st.op, Op::Dense { .. }) && st.inputs.contains(&0))
        || p.output == 0
        || positions(p, 0) > 1;
    if elementwise_input {
        let mut h = vec![T::ZERO; d * n];
        for a in 0..n {
            for k in 0..d {
                h[a * d + k] = x[(a, k)];
            }
        }
        fwd.h[0] = Some(h);
    }
    for (s, st) in p.steps.iter().enumerate() {
        ctl.check()?;
        let v = st.inputs[0];
        let w_in = p.width(v, d);
        let (pos_in, size_in) = (positions(p, v), size(p, v, d));
        let h: Vec<T> = match &st.op {
            Op::Dense { .. } | Op::Conv { .. } => {
                let (layer, param) = match &st.op {
                    Op::Dense { layer, param } => (layer.clone(), *param),
                    Op::Conv { layer, param, .. } => (layer.as_dense(), *param),
                    _ => unreachable!(),
                };
                let pr = &params[param];
                let n_out = layer.out_dim;
                let (sc, beta) = layer.scales(pr.w.nrows());
                let pos_out = positions(p, st.output);
                let cols = pos_out * n;
                let mut z = vec![T::ZERO; n_out * cols];
                let dst = MatMut::from_column_major_slice_mut(&mut z, n_out, cols);
                match &st.op {
                    Op::Conv { layer: c, axes, .. } => {
                        let table = fc::gather_table(axes);
                        let g = fc::im2col(fwd.slice(v), &table, c.taps(), w_in, pos_in);
                        let src = cm(&g, pr.w.nrows(), cols);
                        gemm_cols(dst, pr.w.transpose(), src, T::from_f64(sc), par, ctl)?;
                    }
                    _ if pos_in > 1 => {
                        let src = cm(fwd.slice(v), w_in, cols);
                        gemm_cols(dst, pr.w.transpose(), src, T::from_f64(sc), par, ctl)?;
                    }
                    _ => gemm_cols(dst, pr.w.transpose(), fwd.mat(p, v, x), T::from_f64(sc), par, ctl)?,
                }
                if let Some(b) = pr.b {
                    let beta = T::from_f64(beta);
                    let add = |col: &mut [T]| {
                        for (zv, &bj) in col.iter_mut().zip(b) {
                            *zv += beta * bj;
                        }
                    };
                    if matches!(par, Par::Seq) {
                        z.chunks_mut(n_out).for_each(add);
                    } else {
                        z.par_chunks_mut(n_out).with_min_len(MIN_LEN / n_out + 1).for_each(add);
                    }
                }
                z
            }
            Op::Act(act) => {
                let z = fwd.slice(v);
                let mut h = vec![T::ZERO; z.len()];
                if grad {
                    let mut dz = vec![T::ZERO; z.len()];
                    if matches!(par, Par::Seq) {
                        act.eval(z, &mut h, Some(&mut dz))?;
                    } else {
                        h.par_chunks_mut(CHUNK)
                            .zip(dz.par_chunks_mut(CHUNK))
                            .zip(z.par_chunks(CHUNK))
                            .try_for_each(|((h, dz), z)| act.eval(z, h, Some(dz)))?;
                    }
                    fwd.aux[s] = Some(dz);
                } else if matches!(par, Par::Seq) {
                    act.eval(z, &mut h, None)?;
                } else {
                    h.par_chunks_mut(CHUNK)
                        .zip(z.par_chunks(CHUNK))
                        .try_for_each(|(h, z)| act.eval(z, h, None))?;
                }
                h
            }
            Op::Flatten => fwd.slice(v).to_vec(),
            Op::Pool { axes, weights } => {
                let table = fc::gather_table(axes);
                fc::pool(fwd.slice(v), &table, &fc::pool_weights(axes, weights), w_in, pos_in)
            }
            Op::GlobalPool(kind) => fc::global_pool(fwd.slice(v), w_in, pos_in, global_scale(*kind, pos_in)),
            Op::LayerNorm { .. } | Op::Concat { .. } if pos_in > 1 => {
                return Err(spatial_unsupported(&st.label));
            }
            Op::LayerNorm { ln, .. } => {
                let (y, inv) = ln.forward(fwd.slice(v), w_in);
                if grad {
                    fwd.aux[s] = Some(inv);
                }
                y
            }
            Op::Dropout { rate, index } => {
                let mask = Dropout::mask::<T>(*rate, dropout_seed, *index, batch, size_in, n);
                let mut h = fwd.slice(v).to_vec();
                zip_apply(par, &mut h, &mask, |a, m| a * m);
                if grad {
                    fwd.aux[s] = Some(mask);
                }
                h
            }
            Op::Sum | Op::Prod => {
                let mut h = fwd.slice(v).to_vec();
                for &u in &st.inputs[1..] {
                    match st.op {
                        Op::Sum => zip_apply(par, &mut h, fwd.slice(u), |a, b| a + b),
                        _ => zip_apply(par, &mut h, fwd.slice(u), |a, b| a * b),
                    }
                }
                h
            }
            Op::Concat { .. } => {
                let widths: Vec<usize> = st.inputs.iter().map(|&u| p.width(u, d)).collect();
                let total: usize = widths.iter().sum();
                let mut h = vec![T::ZERO; total * n];
                for a in 0..n {
                    let mut at = a * total;
                    for (&u, &w) in st.inputs.iter().zip(&widths) {
                        h[at..at + w].copy_from_slice(&fwd.slice(u)[a * w..(a + 1) * w]);
                        at += w;
                    }
                }
                h
            }
        };
        let finite = if matches!(par, Par::Seq) || h.len() < 2 * MIN_LEN {
            crate::linalg::slice_finite(&h)
        } else {
            h.par_chunks(MIN_LEN).all(crate::linalg::slice_finite)
        };
        if !finite {
            return Err(Error::NonFinite(format!(
                "the forward pass overflowed {} at {}: rescale the inputs or parameters, or use float64",
                T::NAME,
                st.label
            )));
        }
        fwd.h[st.output] = Some(h);
        ctl.advance(1);
    }
    Ok(fwd)
}

/// What the backward pass calls at each `Dense` step: `(step, signals at its output per batch)`.
pub(crate) type DenseVisit<'a, T> = dyn FnMut(usize, &[&[T]]) -> Result<()> + 'a;

/// The backward pass of one or two batches in lockstep: from the signals `tops[b]` at the
/// output (`O × (n_b·k)`, `k` columns per sample), back through every step; `at_dense(step,
/// signals)` sees the signals `∂/∂z` at the output of each `Dense` layer (one per batch) before
/// they move below it. Signals into the raw inputs are not formed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<T: Element>(
    p: &Program,
    params: &[DenseParams<'_, T>],
    fwds: &[&Forward<T>],
    tops: Vec<Vec<T>>,
    k: usize,
    par: Par,
    ctl: &Control,
    at_dense: &mut DenseVisit<'_, T>,
) -> Result<()> {
    let d = fwds[0].d;
    let mut sig: Vec<Vec<Option<Vec<T>>>> = tops
        .into_iter()
        .map(|t| {
            let mut v = vec![None; p.values.len()];
            v[p.output] = Some(t);
            v
        })
        .collect();
    for (s, st) in p.steps.iter().enumerate().rev() {
        ctl.check()?;
        let outs: Vec<Vec<T>> = match sig.iter_mut().map(|v| v[st.output].take()).collect::<Option<Vec<_>>>() {
            Some(o) => o,
            None => continue, // the value does not reach the output
        };
        let w_out = size(p, st.output, d);
        if let Op::Dense { .. } | Op::Conv { .. } = st.op {
            let refs: Vec<&[T]> = outs.iter().map(|v| v.as_slice()).collect();
            at_dense(s, &refs)?;
        }
        for (b, (out, fwd)) in outs.into_iter().zip(fwds).enumerate() {
            match &st.op {
                Op::Dense { .. } | Op::Conv { .. } => {
                    let v = st.inputs[0];
                    if v == 0 {
                        continue;
                    }
                    let (layer, param) = match &st.op {
                        Op::Dense { layer, param } => (layer.clone(), *param),
                        Op::Conv { layer, param, .. } => (layer.as_dense(), *param),
                        _ => unreachable!(),
                    };
                    let pr = &params[param];
                    let (rows, n_out) = (pr.w.nrows(), pr.w.ncols());
                    let (sc, _) = layer.scales(rows);
                    // one column per output position of every signal column
                    let cols = out.len() / n_out;
                    let mut below = vec![T::ZERO; rows * cols];
                    gemm_cols(
                        MatMut::from_column_major_slice_mut(&mut below, rows, cols),
                        pr.w,
                        cm(&out, n_out, cols),
                        T::from_f64(sc),
                        par,
                        ctl,
                    )?;
                    if let Op::Conv { layer: c, axes, .. } = &st.op {
                        let table = fc::gather_table(axes);
                        below = fc::col2im(&below, &table, c.taps(), p.width(v, d), positions(p, v));
                    }
                    accumulate(par, &mut sig[b][v], below);
                }
                Op::Pool { axes, weights } => {
                    let v = st.inputs[0];
                    let table = fc::gather_table(axes);
                    let w = fc::pool_weights(axes, weights);
                    let g = fc::pool_back(&out, &table, &w, p.width(v, d), positions(p, v));
                    accumulate(par, &mut sig[b][v], g);
                }
                Op::GlobalPool(kind) => {
                    let v = st.inputs[0];
                    let pos = positions(p, v);
                    let g = fc::global_pool_back(&out, p.width(v, d), pos, global_scale(*kind, pos));
                    accumulate(par, &mut sig[b][v], g);
                }
                Op::Act(_) => {
                    let dz = fwd.aux[s].as_deref().expect("the forward pass kept φ'");
                    let g = scale_columns(par, &out, dz, w_out, k);
                    accumulate(par, &mut sig[b][st.inputs[0]], g);
                }
                Op::Flatten => accumulate(par, &mut sig[b][st.inputs[0]], out),
                Op::LayerNorm { .. } => {
                    let inv = fwd.aux[s].as_deref().expect("the forward pass kept the norms");
                    let g = layer_norm::backward(&out, fwd.slice(st.output), inv, w_out, k);
                    accumulate(par, &mut sig[b][st.inputs[0]], g);
                }
                Op::Dropout { .. } => {
                    let mask = fwd.aux[s].as_deref().expect("the forward pass kept the mask");
                    let g = scale_columns(par, &out, mask, w_out, k);
                    accumulate(par, &mut sig[b][st.inputs[0]], g);
                }
                Op::Sum => {
                    for &u in &st.inputs {
                        if u != 0 {
                            accumulate(par, &mut sig[b][u], out.clone());
                        }
                    }
                }
                Op::Prod => {
                    for (m, &u) in st.inputs.iter().enumerate() {
                        if u == 0 {
                            continue;
                        }
                        // the product of the other factors, per sample
                        let mut others = vec![T::ONE; w_out * fwd.n];
                        for (j, &w) in st.inputs.iter().enumerate() {
                            if j != m {
                                zip_apply(par, &mut others, fwd.slice(w), |a, b| a * b);
                            }
                        }
                        accumulate(par, &mut sig[b][u], scale_columns(par, &out, &others, w_out, k));
                    }
                }
                Op::Concat { .. } => {
                    let cols = out.len() / w_out;
                    let mut at = 0;
                    for &u in &st.inputs {
                        let w = p.width(u, d);
                        if u != 0 {
                            let mut g = vec![T::ZERO; w * cols];
                            for (c, dst) in g.chunks_mut(w).enumerate() {
                                dst.copy_from_slice(&out[c * w_out + at..c * w_out + at + w]);
                            }
                            accumulate(par, &mut sig[b][u], g);
                        }
                        at += w;
                    }
                }
            }
        }
        ctl.advance(1);
    }
    Ok(())
}

/// `Δ` at the output for the empirical NTK: column `(a, o)` of `O × (n·O)` is `e_o`.
fn identity_signals<T: Element>(n: usize, o: usize) -> Vec<T> {
    let mut v = vec![T::ZERO; o * n * o];
    for a in 0..n {
        for k in 0..o {
            v[(a * o + k) * o + k] = T::ONE;
        }
    }
    v
}

fn add_into<T: Element>(par: Par, total: &mut Option<Vec<T>>, term: &[T]) {
    match total {
        None => *total = Some(term.to_vec()),
        Some(t) => zip_apply(par, t, term, |a, b| a + b),
    }
}

fn empirical_in<T: Element>(
    p: &Program,
    params: &[DenseParams<'_, T>],
    x1: MatRef<'_, T>,
    x2: Option<MatRef<'_, T>>,
    opts: &EmpiricalOptions,
    par: Par,
    ctl: &Control,
) -> Result<Empirical<T>> {
    let d = x1.ncols();
    let (n1, n2, o) = (x1.nrows(), x2.map_or(x1.nrows(), |x| x.nrows()), p.out_dim(d));
    let grad = opts.get.ntk;
    let f1 = forward(p, params, x1, 0, grad, opts.dropout_seed, par, ctl)?;
    let f2 = match x2 {
        Some(x2) => Some(forward(p, params, x2, 1, grad, opts.dropout_seed, par, ctl)?),
        None => None,
    };
    let sym = f2.is_none();
    let fb = f2.as_ref().unwrap_or(&f1);
    let xb = x2.unwrap_or(x1);
    let mut out = Empirical {
        nngp: None,
        ntk: None,
        ntk_layers: Vec::new(),
        rows: n1,
        cols: n2,
        out_dim: o,
        traced: opts.trace,
    };
    if opts.get.nngp {
        let (a, b) = (f1.mat(p, p.output, x1), fb.mat(p, p.output, xb));
        out.nngp = Some(if opts.trace {
            // f(x1)·f(x2)/O: a Gram of the outputs, k = O
            gram(a, (!sym).then_some(b), T::from_f64(1.0 / o as f64), par, ctl)?
        } else {
            // f_o(x1)·f_o'(x2): the outer product of the flattened outputs, then (a, b, o, o')
            let (fa, fbv) = (outputs(p, &f1, x1), outputs(p, fb, xb));
            let g = gram(
                cm(&fa, 1, n1 * o),
                (!sym).then(|| cm(&fbv, 1, n2 * o)),
                T::ONE,
                par,
                ctl,
            )?;
            permute_full(&g, None, n1, n2, o, ctl)?
        });
        ctl.advance(1);
    }
    if opts.get.ntk {
        let mut terms: Vec<(usize, Vec<T>)> = Vec::new();
        let mut total: Option<Vec<T>> = None;
        let fwds: Vec<&Forward<T>> = if sym { vec![&f1] } else { vec![&f1, fb] };
        let tops: Vec<Vec<T>> = fwds.iter().map(|f| identity_signals::<T>(f.n, o)).collect();
        let mut at_dense = |s: usize, deltas: &[&[T]]| -> Result<()> {
            let st = &p.steps[s];
            if spatial_param(p, s) {
                let j1 = spatial_grads(p, s, params, &f1, deltas[0], o, par, ctl)?;
                let j2 = match (sym, deltas.get(1)) {
                    (false, Some(d2)) => Some(spatial_grads(p, s, params, fb, d2, o, par, ctl)?),
                    _ => None,
                };
                let len = j1.len() / (n1 * o);
                let term = if opts.trace {
                    gram(
                        cm(&j1, len * o, n1),
                        j2.as_deref().map(|v| cm(v, len * o, n2)),
                        T::from_f64(1.0 / o as f64),
                        par,
                        ctl,
                    )?
                } else {
                    let g = gram(
                        cm(&j1, len, n1 * o),
                        j2.as_deref().map(|v| cm(v, len, n2 * o)),
                        T::ONE,
                        par,
                        ctl,
                    )?;
                    permute_full(&g, None, n1, n2, o, ctl)?
                };
                ctl.advance(1);
                let param = match &st.op {
                    Op::Dense { param, .. } | Op::Conv { param, .. } => *param,
                    _ => unreachable!("called at parameter steps"),
                };
                if opts.per_layer {
                    terms.push((param, term));
                } else {
                    add_into(par, &mut total, &term);
                }
                return Ok(());
            }
            let Op::Dense { layer, param } = &st.op else {
                unreachable!("called at Dense steps")
            };
            let v = st.inputs[0];
            let n_in = p.width(v, d);
            let n_l = layer.out_dim;
            let (sc, beta) = layer.scales(n_in);
            // the input Gram h_{l−1}(x1)·h_{l−1}(x2), then the factor s²·G + β²
            let (ha, hb) = (f1.mat(p, v, x1), fb.mat(p, v, xb));
            let mut factor = gram(ha, (!sym).then_some(hb), T::from_f64(sc * sc), par, ctl)?;
            let b2 = T::from_f64(if layer.b_std.is_some() { beta * beta } else { 0.0 });
            if b2 != T::ZERO {
                let ones = vec![b2; factor.len()];
                zip_apply(par, &mut factor, &ones, |a, b| a + b);
            }
            let (d1, d2) = (deltas[0], deltas.get(1).copied());
            let term = if opts.trace {
                // (1/O) Σ_o Δ_l(x1)[o]·Δ_l(x2)[o]: the Gram of the flattened per-sample signals
                let kk = n_l * o;
                let mut g = gram(
                    cm(d1, kk, n1),
                    d2.map(|v| cm(v, kk, n2)),
                    T::from_f64(1.0 / o as f64),
                    par,
                    ctl,
                )?;
                zip_apply(par, &mut g, &factor, |a, b| a * b);
                g
            } else {
                let g = gram(cm(d1, n_l, n1 * o), d2.map(|v| cm(v, n_l, n2 * o)), T::ONE, par, ctl)?;
                permute_full(&g, Some(&factor), n1, n2, o, ctl)?
            };
            ctl.advance(1);
            if opts.per_layer {
                terms.push((*param, term));
            } else {
                add_into(par, &mut total, &term);
            }
            Ok(())
        };
        backward(p, params, &fwds, tops, o, par, ctl, &mut at_dense)?;
        if opts.per_layer {
            // summed in network order, so that the total is exactly `sum(parts)`
            terms.sort_by_key(|t| t.0);
            for (_, t) in &terms {
                add_into(par, &mut total, t);
            }
            out.ntk_layers = terms.into_iter().map(|t| t.1).collect();
        }
        out.ntk = Some(total.unwrap_or_else(|| vec![T::ZERO; n1 * n2 * if opts.trace { 1 } else { o * o }]));
    }
    Ok(out)
}

/// The gradients of every output unit of every sample with respect to the parameters of step `s`
/// (a `Conv`, or a `Dense` on a spatial value): column `(a, o)` (`o` fastest) holds
/// `∂f_o(x_a)/∂W` (`rows × C_out`, column-major: `s·Σ_pos patch_a(pos) ⊗ Δ_{a,o}(pos)`) then,
/// with a bias, `∂f_o(x_a)/∂b = β·Σ_pos Δ_{a,o}(pos)`. `delta` holds the signals at the step's
/// output, `C_out·P_out` per column (`[p][c]`). This is the layer's block of the Jacobian,
/// `N·O × P_l`, formed one layer at a time (never the whole `N × P` Jacobian).
#[allow(clippy::too_many_arguments)]
fn spatial_grads<T: Element>(
    p: &Program,
    s: usize,
    params: &[DenseParams<'_, T>],
    fwd: &Forward<T>,
    delta: &[T],
    o: usize,
    par: Par,
    ctl: &Control,
) -> Result<Vec<T>> {
    let st = &p.steps[s];
    let v = st.inputs[0];
    let d = fwd.d;
    let n = fwd.n;
    let (layer, param) = match &st.op {
        Op::Dense { layer, param } => (layer.clone(), *param),
        Op::Conv { layer, param, .. } => (layer.as_dense(), *param),
        _ => unreachable!("called at parameter steps"),
    };
    let pr = &params[param];
    let (rows, c_out) = (pr.w.nrows(), pr.w.ncols());
    let (sc, beta) = layer.scales(rows);
    let p_out = positions(p, st.output);
    let h = fwd.slice(v);
    let patches: std::borrow::Cow<'_, [T]> = match &st.op {
        Op::Conv { layer: c, axes, .. } => {
            let table = fc::gather_table(axes);
            std::borrow::Cow::Owned(fc::im2col(h, &table, c.taps(), p.width(v, d), positions(p, v)))
        }
        _ => std::borrow::Cow::Borrowed(h),
    };
    let bias = layer.b_std.is_some();
    let len = rows * c_out + if bias { c_out } else { 0 };
    let mut j = vec![T::ZERO; len * n * o];
    let (sc, beta) = (T::from_f64(sc), T::from_f64(beta));
    for a in 0..n {
        ctl.check()?;
        let pa = cm(&patches[a * rows * p_out..(a + 1) * rows * p_out], rows, p_out);
        for k in 0..o {
            let col = a * o + k;
            let dl = &delta[col * c_out * p_out..(col + 1) * c_out * p_out];
            let dst = &mut j[col * len..(col + 1) * len];
            let (wpart, bpart) = dst.split_at_mut(rows * c_out);
            gemm_cols(
                MatMut::from_column_major_slice_mut(wpart, rows, c_out),
                pa,
                cm(dl, c_out, p_out).transpose(),
                sc,
                Par::Seq,
                ctl,
            )?;
            if bias {
                for pos in dl.chunks_exact(c_out) {
                    for (bv, &g) in bpart.iter_mut().zip(pos) {
                        *bv += beta * g;
                    }
                }
            }
        }
    }
    let _ = par;
    Ok(j)
}

/// Options of [`Network::monte_carlo`].
#[derive(Clone, Copy, Debug)]
pub struct MonteCarloOptions {
    /// The kernels wanted.
    pub get: Get,
    /// Number of random networks averaged (≥ 1).
    pub n_samples: usize,
    /// Sample `k` uses `init(in_dim, seed, k)` and dropout masks from `(seed, k)`.
    pub seed: u64,
    /// Where the computation runs: samples are spread over the threads.
    pub par: Parallelism,
    /// The per-example shape of the input rows (see [`ApplyOptions::shape`]).
    pub shape: InputShape,
}

impl Network {
    /// Monte Carlo estimate of the NNGP and NTK: the mean over `n_samples` random initialisations
    /// of the traced empirical kernels. It converges to [`Network::kernel`] as the widths and
    /// `n_samples` grow. The samples are added in sample order, so the result is deterministic
    /// for a seed whatever the number of threads.
    pub fn monte_carlo<T: Element>(
        &self,
        x1: MatRef<'_, T>,
        x2: Option<MatRef<'_, T>>,
        opts: &MonteCarloOptions,
        ctl: &Control,
    ) -> Result<Kernels<T>> {
        let (n_samples, get) = (opts.n_samples, opts.get);
        if n_samples == 0 {
            return Err(Error::arg("n_samples", "must be at least 1"));
        }
        get.check()?;
        crate::input::check_inputs(x1, x2)?;
        let d = x1.ncols();
        let prog = self.finite_program(d, opts.shape)?;
        let (n1, n2) = (x1.nrows(), x2.map_or(x1.nrows(), |x| x.nrows()));
        let kinds = get.count();
        let size = count::<T>(n1, n2, 1, || format!("a {n1} x {n2} Monte Carlo kernel"))?;
        let mut sums = alloc_results::<T>(&vec![size; kinds], "the Monte Carlo kernels")?;
        let runner = Runner::new(opts.par, worth_threads(&prog, n1 + n2, d, n_samples))?;
        let threads = match &runner {
            Runner::Inline => 1,
            Runner::Pool(p) => p.current_num_threads().max(1),
        };
        // samples run `window` at a time, one per thread; their results are added in sample order
        let bytes = (size * std::mem::size_of::<T>() * (kinds + 2)) as u64;
        let room = available_memory().map_or(threads as u64, |a| (a / 4 / bytes.max(1)).max(1));
        let window = threads.min(n_samples).min(room as usize).max(1);
        ctl.add_total(units(&prog, x2.is_some(), get) * n_samples as u64);
        // one sample per thread (each multiplying sequentially), or one at a time using them all
        let inner = if window > 1 { Par::Seq } else { runner.faer() };
        let eopts = EmpiricalOptions {
            get,
            trace: true,
            per_layer: false,
            par: Parallelism::Sequential,
            dropout_seed: 0,
            shape: opts.shape,
        };
        let one = |k: usize| -> Result<Empirical<T>> {
            let p = init_prog::<T>(&prog, d, opts.seed, k as u64)?;
            let view: Vec<DenseParams<'_, T>> = p.iter().map(|p| p.view()).collect();
            let eo = EmpiricalOptions {
                dropout_seed: crate::random::splitmix(opts.seed ^ (k as u64).wrapping_mul(0x9e37_79b9)),
                ..eopts
            };
            empirical_in(&prog, &view, x1, x2, &eo, inner, ctl)
        };
        let outer = runner.faer();
        runner.run(|parallel| -> Result<()> {
            for start in (0..n_samples).step_by(window) {
                let end = (start + window).min(n_samples);
                let res: Vec<Result<Empirical<T>>> = if end - start == 1 || !parallel {
                    (start..end).map(one).collect()
                } else {
                    (start..end).into_par_iter().map(one).collect()
                };
                for r in res {
                    let e = r?;
                    let mut it = sums.iter_mut();
                    for v in [e.nngp, e.ntk].into_iter().flatten() {
                        if let Some(s) = it.next() {
                            zip_apply(outer, s, &v, |a, b| a + b);
                        }
                    }
                }
            }
            Ok(())
        })?;
        let inv = T::from_f64(1.0 / n_samples as f64);
        for s in &mut sums {
            s.iter_mut().for_each(|v| *v *= inv);
        }
        Ok(Kernels::from_buffers(get, sums, n1, n2))
    }
}

/// Options of [`Network::train`].
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The gradient-descent step size η.
    pub learning_rate: f64,
    /// Number of full-batch steps.
    pub steps: usize,
    /// Record predictions and losses every this many steps (and at the last step).
    pub record_every: usize,
    /// Record at exactly these steps instead (strictly increasing, each `≤ steps`; `None`: by
    /// `record_every`). Log-spaced records of one run cost one call.
    pub record_at: Option<Vec<usize>>,
    /// Also record the traced empirical NTK of the training inputs at the recorded steps.
    pub record_ntk: bool,
    /// Where the computation runs.
    pub par: Parallelism,
    /// Seed of the dropout masks; step `s` uses fresh masks from `(seed, s)`.
    pub dropout_seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            learning_rate: 1.0,
            steps: 100,
            record_every: 1,
            record_at: None,
            record_ntk: false,
            par: Parallelism::Pool,
            dropout_seed: 0,
        }
    }
}

/// The trajectory of full-batch gradient descent, recorded at `steps`.
#[derive(Clone, Debug)]
pub struct Trajectory<T> {
    /// The recorded step numbers: `0, k, 2k, …` and the last step.
    pub steps: Vec<usize>,
    /// Training predictions, row-major `steps.len() × N × O`.
    pub f_train: Vec<T>,
    /// Test predictions, `steps.len() × M × O`, when test inputs were given.
    pub f_test: Option<Vec<T>>,
    /// Training loss `1/(2·N·O)·‖f − y‖²` at each recorded step.
    pub loss_train: Vec<f64>,
    /// Test loss at each recorded step, when test targets were given.
    pub loss_test: Option<Vec<f64>>,
    /// Traced empirical NTK of the training inputs, `steps.len() × N × N`, when asked.
    pub ntk_train: Option<Vec<T>>,
    /// The parameters after the last step.
    pub params: Vec<DenseOwned<T>>,
}

fn half_mse<T: Element>(f: &[T], y: MatRef<'_, T>) -> f64 {
    // f is column-major O × N (row-major N × O); y is N × O
    let (n, o) = (y.nrows(), y.ncols());
    let mut s = 0.0;
    for a in 0..n {
        for k in 0..o {
            let r = f[a * o + k].to_f64() - y[(a, k)].to_f64();
            s += r * r;
        }
    }
    s / (2.0 * (n * o) as f64)
}

impl Network {
    /// Full-batch gradient descent on the squared loss `1/(2·N·O)·‖f(x) − y‖²` (neural-tangents'
    /// convention: the loss is normalised by `y.size`), from `params`, for `opts.steps` steps of
    /// size `opts.learning_rate`. Gradients are exact (back-propagation); the predictions on `x`
    /// (and `x_test`), the losses and optionally the empirical NTK are recorded every
    /// `opts.record_every` steps and at the end.
    #[allow(clippy::too_many_arguments)]
    pub fn train<T: Element>(
        &self,
        params: &[DenseParams<'_, T>],
        x: MatRef<'_, T>,
        y: MatRef<'_, T>,
        x_test: Option<MatRef<'_, T>>,
        y_test: Option<MatRef<'_, T>>,
        opts: &TrainOptions,
        ctl: &Control,
    ) -> Result<Trajectory<T>> {
        check_input("x", x)?;
        check_input("y", y)?;
        let d = x.ncols();
        let prog = self.compile(d)?;
        check_params(&prog, params, d)?;
        let o = prog.out_dim(d);
        if y.nrows() != x.nrows() || y.ncols() != o {
            return Err(Error::arg(
                "y",
                format!(
                    "has shape ({}, {}) but the network maps {} inputs to {o} outputs: expected ({}, {o})",
                    y.nrows(),
                    y.ncols(),
                    x.nrows(),
                    x.nrows()
                ),
            ));
        }
        if let Some(xt) = x_test {
            check_input("x_test", xt)?;
            if xt.ncols() != d {
                return Err(Error::arg(
                    "x_test",
                    format!("has {} features but x has {d}", xt.ncols()),
                ));
            }
        }
        if let Some(yt) = y_test {
            check_input("y_test", yt)?;
            let Some(xt) = x_test else {
                return Err(Error::arg("y_test", "needs x_test"));
            };
            if yt.nrows() != xt.nrows() || yt.ncols() != o {
                return Err(Error::arg(
                    "y_test",
                    format!(
                        "has shape ({}, {}), expected ({}, {o})",
                        yt.nrows(),
                        yt.ncols(),
                        xt.nrows()
                    ),
                ));
            }
        }
        if !(opts.learning_rate.is_finite() && opts.learning_rate > 0.0) {
            return Err(Error::arg(
                "learning_rate",
                format!("must be a finite number > 0, got {}", opts.learning_rate),
            ));
        }
        if opts.record_every == 0 {
            return Err(Error::arg("record_every", "must be at least 1"));
        }
        let (n, every) = (x.nrows(), opts.record_every);
        let recorded: Vec<usize> = match &opts.record_at {
            Some(at) => {
                if at.is_empty() {
                    return Err(Error::arg("record_at", "is empty: give at least one step to record"));
                }
                if let Some(w) = at.windows(2).find(|w| w[1] <= w[0]) {
                    return Err(Error::arg(
                        "record_at",
                        format!("must be strictly increasing, but {} follows {}", w[1], w[0]),
                    ));
                }
                if let Some(&last) = at.last().filter(|&&s| s > opts.steps) {
                    return Err(Error::arg(
                        "record_at",
                        format!("step {last} is beyond steps = {}", opts.steps),
                    ));
                }
                at.clone()
            }
            None => (0..=opts.steps)
                .filter(|&k| k % every == 0 || k == opts.steps)
                .collect(),
        };
        let r = recorded.len();
        check_room::<T>(
            (r * n * o) as u128 * 2
                + x_test.map_or(0, |xt| (r * xt.nrows() * o) as u128)
                + if opts.record_ntk { (r * n * n) as u128 } else { 0 },
            "the recorded trajectory",
        )?;
        ctl.add_total(opts.steps as u64 + 1);
        if opts.record_ntk {
            // the recorded NTKs report their own progress
            ctl.add_total(r as u64 * units(&prog, false, Get::NTK));
        }
        let mut p: Vec<DenseOwned<T>> = params
            .iter()
            .map(|q| {
                let (n_in, n_out) = (q.w.nrows(), q.w.ncols());
                let mut w = vec![T::ZERO; n_in * n_out];
                for i in 0..n_in {
                    for j in 0..n_out {
                        w[i * n_out + j] = q.w[(i, j)];
                    }
                }
                DenseOwned {
                    w,
                    n_in,
                    n_out,
                    b: q.b.map(|b| b.to_vec()),
                }
            })
            .collect();
        let mut traj = Trajectory {
            steps: recorded.clone(),
            f_train: Vec::with_capacity(r * n * o),
            f_test: x_test.map(|xt| Vec::with_capacity(r * xt.nrows() * o)),
            loss_train: Vec::with_capacity(r),
            loss_test: y_test.map(|_| Vec::with_capacity(r)),
            ntk_train: opts.record_ntk.then(|| Vec::with_capacity(r * n * n)),
            params: Vec::new(),
        };
        let eta = opts.learning_rate;
        let inv_size = 1.0 / (n * o) as f64;
        let runner = Runner::new(opts.par, worth_threads(&prog, n, d, 3))?;
        let par = runner.faer();
        let denses = dense_steps(&prog, d);
        runner.run(|_| -> Result<()> {
            // per Dense layer: ∂loss/∂W (column-major n_out × n_in) and ∂loss/∂b
            let mut grads: Vec<(Vec<T>, Vec<f64>)> = p
                .iter()
                .map(|q| (vec![T::ZERO; q.w.len()], vec![0.0; q.n_out]))
                .collect();
            for step in 0..=opts.steps {
                ctl.check()?;
                let view: Vec<DenseParams<'_, T>> = p.iter().map(|q| q.view()).collect();
                let diverged = |what: String| {
                    Error::NonFinite(format!(
                        "training diverged at step {step} ({what}): the learning rate {eta} is too large; \
                         ntkrs.predict.max_learning_rate gives the largest stable one"
                    ))
                };
                let seed = crate::random::splitmix(opts.dropout_seed ^ (step as u64).wrapping_mul(0x9e37_79b9));
                let fwd = match forward(&prog, &view, x, 0, true, seed, par, ctl) {
                    Err(Error::NonFinite(m)) if step > 0 => return Err(diverged(m)),
                    other => other?,
                };
                let f = outputs(&prog, &fwd, x);
                let loss = half_mse(&f, y);
                if !loss.is_finite() {
                    return Err(diverged(format!("the loss is {loss}")));
                }
                if recorded.binary_search(&step).is_ok() {
                    traj.f_train.extend_from_slice(&f);
                    traj.loss_train.push(loss);
                    if let Some(xt) = x_test {
                        let ft = forward(&prog, &view, xt, 1, false, seed, par, ctl)?;
                        let ft = outputs(&prog, &ft, xt);
                        if let (Some(lt), Some(yt)) = (traj.loss_test.as_mut(), y_test) {
                            lt.push(half_mse(&ft, yt));
                        }
                        if let Some(v) = traj.f_test.as_mut() {
                            v.extend_from_slice(&ft);
                        }
                    }
                    if let Some(v) = traj.ntk_train.as_mut() {
                        let e = empirical_in(
                            &prog,
                            &view,
                            x,
                            None,
                            &EmpiricalOptions {
                                get: Get::NTK,
                                dropout_seed: seed,
                                ..Default::default()
                            },
                            par,
                            ctl,
                        )?;
                        v.extend_from_slice(&e.ntk.unwrap_or_default());
                    }
                }
                if step == opts.steps {
                    break;
                }
                // back-propagate g = ∂loss/∂f, column-major O × N, collecting every gradient
                let g: Vec<T> = f
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| T::from_f64((v.to_f64() - y[(k / o, k % o)].to_f64()) * inv_size))
                    .collect();
                let mut visited = vec![false; grads.len()];
                {
                    let mut at_dense = |s: usize, deltas: &[&[T]]| -> Result<()> {
                        let st = &prog.steps[s];
                        let Op::Dense { layer, param } = &st.op else {
                            unreachable!("called at Dense steps")
                        };
                        let (n_in, n_out) = (view[*param].w.nrows(), layer.out_dim);
                        let (sc, beta) = layer.scales(n_in);
                        let (gw, gb) = &mut grads[*param];
                        visited[*param] = true;
                        // ∂W = s·Δ hᵀ (column-major n_out × n_in, i.e. W's row-major layout), by
                        // cancellable blocks
                        gemm_cols(
                            MatMut::from_column_major_slice_mut(gw, n_out, n_in),
                            cm(deltas[0], n_out, n),
                            fwd.mat(&prog, st.inputs[0], x).transpose(),
                            T::from_f64(sc),
                            par,
                            ctl,
                        )?;
                        gb.iter_mut().for_each(|v| *v = 0.0);
                        for col in deltas[0].chunks(n_out) {
                            for (acc, &v) in gb.iter_mut().zip(col) {
                                *acc += beta * v.to_f64();
                            }
                        }
                        Ok(())
                    };
                    backward(&prog, &view, &[&fwd], vec![g], 1, par, ctl, &mut at_dense)?;
                }
                drop(view);
                for (l, _, _, _, _) in &denses {
                    if !visited[*l] {
                        continue; // a layer that does not reach the output has no gradient
                    }
                    let (gw, gb) = &grads[*l];
                    let q = &mut p[*l];
                    zip_apply(par, &mut q.w, gw, |w, g| w - T::from_f64(eta) * g);
                    if let Some(b) = q.b.as_mut() {
                        for (bj, gj) in b.iter_mut().zip(gb) {
                            *bj = T::from_f64(bj.to_f64() - eta * gj);
                        }
                    }
                }
                ctl.advance(1);
            }
            Ok(())
        })?;
        ctl.advance(1);
        traj.params = p;
        Ok(traj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Dense, Layer, Parameterization};

    fn net(widths: &[usize], act: Activation, b_std: Option<f64>, p: Parameterization) -> Network {
        let mut layers = Vec::new();
        for (i, &w) in widths.iter().enumerate() {
            layers.push(Layer::Dense(Dense::new(w, 1.3, b_std, p).unwrap()));
            if i + 1 < widths.len() {
                layers.push(Layer::Activation(act.clone()));
            }
        }
        Network::new(layers).unwrap()
    }

    fn x(n: usize, d: usize) -> faer::Mat<f64> {
        faer::Mat::from_fn(n, d, |i, j| ((i * 7 + j * 3) % 11) as f64 / 5.0 - 1.0)
    }

    /// The NTK from an explicit Jacobian: ∂f_o/∂θ_p by central differences of `apply`.
    fn fd_ntk(net: &Network, p: &[DenseOwned<f64>], x: &faer::Mat<f64>) -> Vec<f64> {
        let n = x.nrows();
        let o = net.out_dim(x.ncols());
        let f = |p: &[DenseOwned<f64>]| {
            let v: Vec<_> = p.iter().map(|q| q.view()).collect();
            net.apply(&v, x.as_ref(), &ApplyOptions::default(), &Control::new())
                .unwrap()
        };
        let mut jac: Vec<Vec<f64>> = Vec::new(); // per parameter: n·o derivatives
        let h = 1e-5;
        for l in 0..p.len() {
            for which in 0..2 {
                let len = if which == 0 {
                    p[l].w.len()
                } else {
                    p[l].b.as_ref().map_or(0, |b| b.len())
                };
                for k in 0..len {
                    let mut pp = p.to_vec();
                    let mut pm = p.to_vec();
                    if which == 0 {
                        pp[l].w[k] += h;
                        pm[l].w[k] -= h;
                    } else {
                        pp[l].b.as_mut().unwrap()[k] += h;
                        pm[l].b.as_mut().unwrap()[k] -= h;
                    }
                    let (a, b) = (f(&pp), f(&pm));
                    jac.push(a.iter().zip(&b).map(|(a, b)| (a - b) / (2.0 * h)).collect());
                }
            }
        }
        let mut k = vec![0.0; n * n];
        for j in &jac {
            for a in 0..n {
                for b in 0..n {
                    for oo in 0..o {
                        k[a * n + b] += j[a * o + oo] * j[b * o + oo] / o as f64;
                    }
                }
            }
        }
        k
    }

    #[test]
    fn ntk_matches_a_finite_difference_jacobian() {
        for (act, p) in [
            (Activation::erf(1.0, 1.0, 0.0).unwrap(), Parameterization::Ntk),
            (Activation::Gelu, Parameterization::Standard),
        ] {
            let nw = net(&[6, 5, 3], act, Some(0.4), p);
            let params = nw.init::<f64>(4, 3, 0).unwrap();
            let view: Vec<_> = params.iter().map(|q| q.view()).collect();
            let xs = x(5, 4);
            let e = nw
                .empirical(&view, xs.as_ref(), None, &EmpiricalOptions::default(), &Control::new())
                .unwrap();
            let want = fd_ntk(&nw, &params, &xs);
            let got = e.ntk.unwrap();
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-7 * scale, "{g} vs {w}");
            }
        }
    }

    #[test]
    fn init_is_deterministic_and_standard_normal() {
        let nw = net(&[300, 200], Activation::relu(), Some(1.0), Parameterization::Ntk);
        let a = nw.init::<f64>(100, 42, 0).unwrap();
        let b = crate::pool::pool().install(|| nw.init::<f64>(100, 42, 0).unwrap());
        assert_eq!(a[0].w, b[0].w);
        let c = nw.init::<f64>(100, 42, 1).unwrap();
        assert_ne!(a[0].w, c[0].w);
        let w = &a[0].w;
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        let var = w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / w.len() as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.01, "{mean} {var}");
    }

    #[test]
    fn symmetric_and_rectangular_paths_agree() {
        let nw = net(&[700, 300, 4], Activation::relu(), Some(0.2), Parameterization::Ntk);
        let params = nw.init::<f64>(3, 1, 0).unwrap();
        let view: Vec<_> = params.iter().map(|q| q.view()).collect();
        let xs = x(300, 3);
        let opts = EmpiricalOptions {
            trace: false,
            ..Default::default()
        };
        let s = nw.empirical(&view, xs.as_ref(), None, &opts, &Control::new()).unwrap();
        let r = nw
            .empirical(&view, xs.as_ref(), Some(xs.as_ref()), &opts, &Control::new())
            .unwrap();
        let (s, r) = (s.ntk.unwrap(), r.ntk.unwrap());
        let scale = r.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in s.iter().zip(&r) {
            assert!((a - b).abs() <= 1e-12 * scale);
        }
    }

    #[test]
    fn a_training_step_follows_the_finite_difference_gradient() {
        let nw = net(&[5, 4, 2], Activation::Gelu, Some(0.3), Parameterization::Ntk);
        let p0 = nw.init::<f64>(3, 2, 0).unwrap();
        let view: Vec<_> = p0.iter().map(|q| q.view()).collect();
        let xs = x(6, 3);
        let ys = faer::Mat::<f64>::from_fn(6, 2, |i, j| ((i + j) % 3) as f64 - 1.0);
        let eta = 1e-3;
        let opts = TrainOptions {
            learning_rate: eta,
            steps: 1,
            record_every: 1,
            record_ntk: false,
            ..Default::default()
        };
        let t = nw
            .train(&view, xs.as_ref(), ys.as_ref(), None, None, &opts, &Control::new())
            .unwrap();
        let loss = |p: &[DenseOwned<f64>]| {
            let v: Vec<_> = p.iter().map(|q| q.view()).collect();
            half_mse(
                &nw.apply(&v, xs.as_ref(), &ApplyOptions::default(), &Control::new())
                    .unwrap(),
                ys.as_ref(),
            )
        };
        assert!((t.loss_train[0] - loss(&p0)).abs() < 1e-15);
        let h = 1e-6;
        for l in 0..p0.len() {
            for k in 0..p0[l].w.len() {
                let (mut pp, mut pm) = (p0.clone(), p0.clone());
                pp[l].w[k] += h;
                pm[l].w[k] -= h;
                let fd = (loss(&pp) - loss(&pm)) / (2.0 * h);
                let step = (p0[l].w[k] - t.params[l].w[k]) / eta;
                assert!((fd - step).abs() < 1e-7 * (1.0 + fd.abs()), "W{l}[{k}]: {fd} vs {step}");
            }
            let b0 = p0[l].b.as_ref().unwrap();
            for (k, &bk) in b0.iter().enumerate() {
                let (mut pp, mut pm) = (p0.clone(), p0.clone());
                pp[l].b.as_mut().unwrap()[k] += h;
                pm[l].b.as_mut().unwrap()[k] -= h;
                let fd = (loss(&pp) - loss(&pm)) / (2.0 * h);
                let step = (bk - t.params[l].b.as_ref().unwrap()[k]) / eta;
                assert!((fd - step).abs() < 1e-7 * (1.0 + fd.abs()), "b{l}[{k}]: {fd} vs {step}");
            }
        }
    }

    #[test]
    fn bad_params_are_errors() {
        let nw = net(&[4, 2], Activation::relu(), None, Parameterization::Ntk);
        let p = nw.init::<f64>(3, 0, 0).unwrap();
        let mut view: Vec<_> = p.iter().map(|q| q.view()).collect();
        let xs = x(2, 5);
        let e = nw
            .apply(&view, xs.as_ref(), &ApplyOptions::default(), &Control::new())
            .unwrap_err();
        assert!(e.to_string().contains("shape (3, 4)"), "{e}");
        view.pop();
        let e = nw
            .apply(&view, x(2, 3).as_ref(), &ApplyOptions::default(), &Control::new())
            .unwrap_err();
        assert!(e.to_string().contains("2 Dense layer(s) but 1"), "{e}");
        let e = nw
            .monte_carlo(
                x(2, 3).as_ref(),
                None,
                &MonteCarloOptions {
                    get: Get::NTK,
                    n_samples: 0,
                    seed: 0,
                    par: Parallelism::Pool,
                    shape: InputShape::FLAT,
                },
                &Control::new(),
            )
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { arg: "n_samples", .. }));
    }
}
