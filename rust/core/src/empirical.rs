//! Finite-width networks: initialisation, the forward pass, and their empirical NNGP and NTK.
//!
//! A network of `L` Dense blocks maps `h₀ = x` through `z_l = s_l·h_{l−1}W_l + β_l·b_l`,
//! `h_l = φ_l(z_l)` (or `h_l = z_l` without an activation) to `f = h_{L−1}`, with neural-tangents'
//! scales: `s = W_std/√n_in`, `β = b_std` in the NTK parameterization, `s = β = 1` in the standard
//! one (whose parameters are pre-scaled at initialisation).
//!
//! The empirical NTK (eq. 5 of the seed derivation) `Θ(x, x') = Σ_p ∂f/∂θ_p ⊗ ∂f/∂θ_p` is computed
//! by the per-layer structure of an MLP, never through the `N × P` Jacobian: with the backward
//! signals `Δ_l(x)[o, :] = ∂f_o(x)/∂z_l`,
//!
//! `Θ_l(x, x')[o, o'] = (s_l²·h_{l−1}(x)·h_{l−1}(x') + β_l²) · Δ_l(x)[o, :]·Δ_l(x')[o', :]`
//!
//! is the contribution of block `l`'s weights and bias, and `Θ = Σ_l Θ_l`. The cost is the forward
//! and backward matrix products plus one Gram of the inputs and one of the backward signals per
//! block: about `N²·Σ_l (n_{l−1} + O·n_l)`.

use faer::linalg::matmul::matmul;
use faer::reborrow::ReborrowMut;
use faer::{Accum, MatMut, MatRef, Par};
use rand_core::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::analytic::{alloc_results, available_memory, check_room, Element, Get, Kernels};
use crate::control::Control;
use crate::error::{Error, Result};
use crate::layer::{Block, Network, Parameterization};

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

/// Which empirical kernels to compute and in what form.
#[derive(Clone, Copy, Debug)]
pub struct EmpiricalOptions {
    /// The kernels wanted.
    pub get: Get,
    /// Average over the output units (`N1 × N2`), or keep them (`N1 × N2 × O × O`).
    pub trace: bool,
    /// Also return the NTK's contribution of each Dense layer.
    pub per_layer: bool,
}

impl Default for EmpiricalOptions {
    fn default() -> Self {
        EmpiricalOptions {
            get: Get::BOTH,
            trace: true,
            per_layer: false,
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

/// `(s, β)` of a block with input width `n_in`: `z = s·h W + β·b`.
fn scales(block: &Block, n_in: usize) -> (f64, f64) {
    let d = &block.dense;
    match d.parameterization {
        Parameterization::Ntk => (d.w_std / (n_in as f64).sqrt(), d.b_std.unwrap_or(0.0)),
        Parameterization::Standard => (1.0, 1.0),
    }
}

/// `par`, or sequential when a product of `work` multiply-adds is too small to share out.
fn sized(par: Par, work: usize) -> Par {
    if work < 1 << 21 {
        Par::Seq
    } else {
        par
    }
}

/// Least number of elements per parallel task of the elementwise passes.
const MIN_LEN: usize = 1 << 12;

/// Number of elements per parallel work item of the pointwise passes.
const CHUNK: usize = 1 << 14;

/// The parallelism of the matrix products when a call has the pool to itself.
fn pool_par() -> Par {
    match crate::pool::num_threads() {
        0 | 1 => Par::Seq,
        n => Par::rayon(n),
    }
}

impl Network {
    /// Output width `O` (the last Dense's).
    pub fn out_dim(&self) -> usize {
        self.blocks.last().map_or(0, |b| b.dense.out_dim)
    }

    /// Check that `params` fit this network on inputs of width `in_dim`.
    pub fn check_params<T: Element>(&self, params: &[DenseParams<'_, T>], in_dim: usize) -> Result<()> {
        if params.len() != self.blocks.len() {
            return Err(Error::arg(
                "params",
                format!(
                    "the network has {} Dense layer(s) but {} (W, b) pair(s) were given; pass the list net.init returns",
                    self.blocks.len(),
                    params.len()
                ),
            ));
        }
        let mut n_in = in_dim;
        for (l, (block, p)) in self.blocks.iter().zip(params).enumerate() {
            let n_out = block.dense.out_dim;
            if p.w.nrows() != n_in || p.w.ncols() != n_out {
                return Err(Error::arg(
                    "params",
                    format!(
                        "W of Dense layer {l} has shape ({}, {}) but the layer needs ({n_in}, {n_out}) \
                         (in, out){}",
                        p.w.nrows(),
                        p.w.ncols(),
                        if l == 0 {
                            " for inputs with this many features"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            match (p.b, block.dense.b_std) {
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
            n_in = n_out;
        }
        Ok(())
    }

    /// Random parameters with neural-tangents' layout and distribution, for inputs of width
    /// `in_dim`: `W ~ N(0, 1)` (`n_in × n_out`) and `b ~ N(0, 1)` in the NTK parameterization;
    /// `W ~ N(0, W_std²/n_in)`, `b ~ N(0, b_std²)` in the standard one. Deterministic for a
    /// `seed` (whatever the number of threads); `sample` selects an independent draw.
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
        if in_dim == 0 {
            return Err(Error::arg("in_dim", "the input width must be at least 1"));
        }
        let mut n_in = in_dim;
        let mut out = Vec::with_capacity(self.blocks.len());
        for (l, block) in self.blocks.iter().enumerate() {
            let d = &block.dense;
            let n_out = d.out_dim;
            let count = n_in
                .checked_mul(n_out)
                .ok_or_else(|| Error::arg("in_dim", "the layer is too large"))?;
            let (sw, sb) = match d.parameterization {
                Parameterization::Ntk => (1.0, 1.0),
                Parameterization::Standard => (d.w_std / (n_in as f64).sqrt(), d.b_std.unwrap_or(0.0)),
            };
            let w = normals::<T>(count, [seed, sample, l as u64, 0], sw);
            let b = d.b_std.map(|_| normals::<T>(n_out, [seed, sample, l as u64, 1], sb));
            out.push(DenseOwned { w, n_in, n_out, b });
            n_in = n_out;
        }
        Ok(out)
    }

    /// The network's outputs `f(x)`, row-major `N × O`.
    pub fn apply<T: Element>(&self, params: &[DenseParams<'_, T>], x: MatRef<'_, T>, ctl: &Control) -> Result<Vec<T>> {
        check_x("x", x)?;
        self.check_params(params, x.ncols())?;
        ctl.add_total(self.blocks.len() as u64);
        let fwd = crate::pool::pool().install(|| self.forward(params, x, false, pool_par(), ctl))?;
        Ok(fwd.h.into_iter().last().unwrap_or_default())
    }

    /// Empirical kernels of the network with parameters `params` between the rows of `x1` and
    /// `x2` (`None`: `x1` itself; the result is then exactly symmetric).
    ///
    /// ```
    /// use ntkrs_core::{Activation, Control, Dense, Layer, Network, Parameterization};
    /// use ntkrs_core::empirical::EmpiricalOptions;
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
        self.check_call(x1, x2, opts.get)?;
        self.check_params(params, x1.ncols())?;
        let (n1, n2, o) = (x1.nrows(), x2.map_or(x1.nrows(), |x| x.nrows()), self.out_dim());
        let per = if opts.trace { 1 } else { o * o };
        let count = n1
            .checked_mul(n2)
            .and_then(|c| c.checked_mul(per))
            .ok_or_else(|| Error::OutOfMemory {
                bytes: n1 as u128 * n2 as u128 * per as u128 * std::mem::size_of::<T>() as u128,
                available: available_memory(),
                what: format!("an empirical kernel of {n1} x {n2} x {per} entries"),
            })?;
        let nk = opts.get.nngp as usize
            + opts.get.ntk as usize
            + if opts.get.ntk && opts.per_layer {
                self.blocks.len()
            } else {
                0
            };
        // the results, plus the two temporary Grams of the same size
        check_room::<T>(
            count as u128 * (nk + 2) as u128,
            &format!(
                "{nk} empirical {} kernel(s) of {n1} x {n2} x {per} entries (with work space)",
                T::NAME
            ),
        )?;
        let l = self.blocks.len() as u64;
        ctl.add_total(
            l * if x2.is_some() { 2 } else { 1 } + if opts.get.ntk { 2 * l } else { 0 } + opts.get.nngp as u64,
        );
        crate::pool::pool().install(|| self.empirical_in_pool(params, x1, x2, opts, pool_par(), ctl))
    }

    fn empirical_in_pool<T: Element>(
        &self,
        params: &[DenseParams<'_, T>],
        x1: MatRef<'_, T>,
        x2: Option<MatRef<'_, T>>,
        opts: &EmpiricalOptions,
        par: Par,
        ctl: &Control,
    ) -> Result<Empirical<T>> {
        let (n1, n2, o) = (x1.nrows(), x2.map_or(x1.nrows(), |x| x.nrows()), self.out_dim());
        let f1 = self.forward(params, x1, opts.get.ntk, par, ctl)?;
        let f2 = match x2 {
            Some(x2) => Some(self.forward(params, x2, opts.get.ntk, par, ctl)?),
            None => None,
        };
        let sym = f2.is_none();
        let fb = f2.as_ref().unwrap_or(&f1);
        let last = self.blocks.len() - 1;
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
            let (a, b) = (f1.h[last].as_slice(), fb.h[last].as_slice());
            out.nngp = Some(if opts.trace {
                // f(x1)·f(x2)/O: a Gram of the outputs, k = O
                gram(
                    cm(a, o, n1),
                    (!sym).then(|| cm(b, o, n2)),
                    T::from_f64(1.0 / o as f64),
                    par,
                    ctl,
                )?
            } else {
                // f_o(x1)·f_o'(x2): the outer product of the flattened outputs, then (a, b, o, o')
                let g = gram(cm(a, 1, n1 * o), (!sym).then(|| cm(b, 1, n2 * o)), T::ONE, par, ctl)?;
                permute_full(&g, None, n1, n2, o)
            });
            ctl.advance(1);
        }
        if opts.get.ntk {
            let mut total: Option<Vec<T>> = None;
            let mut layers: Vec<Vec<T>> = Vec::new();
            let mut d1 = top_signals(&f1, o, last);
            let mut d2 = (!sym).then(|| top_signals(fb, o, last));
            for l in (0..=last).rev() {
                if l < last {
                    d1 = self.signals_down(params, l, &d1, &f1, o, par, ctl)?;
                    d2 = match d2 {
                        Some(d) => Some(self.signals_down(params, l, &d, fb, o, par, ctl)?),
                        None => None,
                    };
                }
                ctl.advance(1);
                ctl.check()?;
                let n_l = self.blocks[l].dense.out_dim;
                // the input Gram h_{l−1}(x1)·h_{l−1}(x2), then the factor s²·G + β²
                let n_in = params[l].w.nrows();
                let (s, beta) = scales(&self.blocks[l], n_in);
                let (ha, hb): (MatRef<'_, T>, MatRef<'_, T>) = if l == 0 {
                    (x1.transpose(), x2.unwrap_or(x1).transpose())
                } else {
                    (cm(&f1.h[l - 1], n_in, n1), cm(&fb.h[l - 1], n_in, n2))
                };
                let mut factor = gram(ha, (!sym).then_some(hb), T::from_f64(s * s), par, ctl)?;
                let b2 = T::from_f64(if self.blocks[l].dense.b_std.is_some() {
                    beta * beta
                } else {
                    0.0
                });
                if b2 != T::ZERO {
                    factor.par_iter_mut().with_min_len(MIN_LEN).for_each(|v| *v += b2);
                }
                let term = if opts.trace {
                    // (1/O) Σ_o Δ_l(x1)[o]·Δ_l(x2)[o]: the Gram of the flattened per-sample signals
                    let k = n_l * o;
                    let db = d2.as_deref().map(|d| cm(d, k, n2));
                    let mut g = gram(cm(&d1, k, n1), db, T::from_f64(1.0 / o as f64), par, ctl)?;
                    g.par_iter_mut()
                        .zip(factor.par_iter())
                        .with_min_len(MIN_LEN)
                        .for_each(|(g, f)| *g *= *f);
                    g
                } else {
                    let db = d2.as_deref().map(|d| cm(d, n_l, n2 * o));
                    let g = gram(cm(&d1, n_l, n1 * o), db, T::ONE, par, ctl)?;
                    permute_full(&g, Some(&factor), n1, n2, o)
                };
                ctl.advance(1);
                if opts.per_layer {
                    layers.push(term);
                } else {
                    match &mut total {
                        None => total = Some(term),
                        Some(t) => t
                            .par_iter_mut()
                            .zip(term.par_iter())
                            .with_min_len(MIN_LEN)
                            .for_each(|(t, v)| *t += *v),
                    }
                }
            }
            layers.reverse();
            if opts.per_layer {
                // summed in network order, so that the total is exactly `sum(parts)`
                let mut t = layers[0].clone();
                for term in &layers[1..] {
                    t.par_iter_mut()
                        .zip(term.par_iter())
                        .with_min_len(MIN_LEN)
                        .for_each(|(t, v)| *t += *v);
                }
                total = Some(t);
            }
            out.ntk = total;
            out.ntk_layers = layers;
        }
        Ok(out)
    }

    /// The forward pass: every block's output `h_l` (and `φ'(z_l)` when `grad`), column-major
    /// `n_l × N` (each sample's activations contiguous).
    fn forward<T: Element>(
        &self,
        params: &[DenseParams<'_, T>],
        x: MatRef<'_, T>,
        grad: bool,
        par: Par,
        ctl: &Control,
    ) -> Result<Forward<T>> {
        let n = x.nrows();
        let mut fwd = Forward {
            h: Vec::with_capacity(self.blocks.len()),
            d: Vec::with_capacity(self.blocks.len()),
        };
        for (l, (block, p)) in self.blocks.iter().zip(params).enumerate() {
            ctl.check()?;
            let (n_in, n_out) = (p.w.nrows(), p.w.ncols());
            let (s, beta) = scales(block, n_in);
            let mut z = vec![T::ZERO; n_out * n];
            {
                let prev = if l == 0 {
                    x.transpose()
                } else {
                    cm(&fwd.h[l - 1], n_in, n)
                };
                let dst = MatMut::from_column_major_slice_mut(&mut z, n_out, n);
                gemm_cols(dst, p.w.transpose(), prev, T::from_f64(s), par, ctl)?;
            }
            if let Some(b) = p.b {
                let beta = T::from_f64(beta);
                z.par_chunks_mut(n_out)
                    .with_min_len(MIN_LEN / n_out + 1)
                    .for_each(|col| {
                        for (v, &bj) in col.iter_mut().zip(b) {
                            *v += beta * bj;
                        }
                    });
            }
            let (h, d) = match &block.act {
                None => (z, None),
                Some(act) => {
                    let mut h = vec![T::ZERO; z.len()];
                    let mut d = if grad { vec![T::ZERO; z.len()] } else { Vec::new() };
                    if grad {
                        h.par_chunks_mut(CHUNK)
                            .zip(d.par_chunks_mut(CHUNK))
                            .zip(z.par_chunks(CHUNK))
                            .try_for_each(|((h, d), z)| act.eval(z, h, Some(d)))?;
                    } else {
                        h.par_chunks_mut(CHUNK)
                            .zip(z.par_chunks(CHUNK))
                            .try_for_each(|(h, z)| act.eval(z, h, None))?;
                    }
                    (h, grad.then_some(d))
                }
            };
            if !h.par_iter().with_min_len(MIN_LEN).all(|v| v.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "the forward pass overflowed {} in Dense layer {l}{}: rescale the inputs or parameters, \
                     or use float64",
                    T::NAME,
                    block
                        .act
                        .as_ref()
                        .map_or(String::new(), |a| format!(" (after {})", a.name()))
                )));
            }
            fwd.h.push(h);
            fwd.d.push(d);
            ctl.advance(1);
        }
        Ok(fwd)
    }

    /// `Δ_l = (s_{l+1}·W_{l+1}·Δ_{l+1}) ⊙ φ_l'(z_l)` for all samples and outputs: `n_l × (N·O)`.
    #[allow(clippy::too_many_arguments)]
    fn signals_down<T: Element>(
        &self,
        params: &[DenseParams<'_, T>],
        l: usize,
        above: &[T],
        fwd: &Forward<T>,
        o: usize,
        par: Par,
        ctl: &Control,
    ) -> Result<Vec<T>> {
        let p = &params[l + 1];
        let (n_l, n_up) = (p.w.nrows(), p.w.ncols());
        let cols = above.len() / n_up;
        let (s, _) = scales(&self.blocks[l + 1], n_l);
        let mut out = vec![T::ZERO; n_l * cols];
        gemm_cols(
            MatMut::from_column_major_slice_mut(&mut out, n_l, cols),
            p.w,
            cm(above, n_up, cols),
            T::from_f64(s),
            par,
            ctl,
        )?;
        if let Some(d) = &fwd.d[l] {
            // column (a, o) is scaled by sample a's φ'(z_l)
            out.par_chunks_mut(n_l * o)
                .zip(d.par_chunks(n_l))
                .with_min_len(MIN_LEN / (n_l * o) + 1)
                .for_each(|(blk, da)| {
                    for col in blk.chunks_mut(n_l) {
                        for (v, &g) in col.iter_mut().zip(da) {
                            *v *= g;
                        }
                    }
                });
        }
        Ok(out)
    }
}

/// A batch's forward pass.
struct Forward<T> {
    h: Vec<Vec<T>>,
    d: Vec<Option<Vec<T>>>,
}

/// `Δ_{L−1} = ∂f/∂z_{L−1}`: column `(a, o)` is `e_o·φ'(z_{L−1}(x_a))_o` (or `e_o` without an activation).
fn top_signals<T: Element>(fwd: &Forward<T>, o: usize, last: usize) -> Vec<T> {
    let n = fwd.h[last].len() / o;
    let mut out = vec![T::ZERO; o * o * n];
    for a in 0..n {
        for k in 0..o {
            out[(a * o + k) * o + k] = fwd.d[last].as_ref().map_or(T::ONE, |d| d[a * o + k]);
        }
    }
    out
}

/// A column-major view of a contiguous buffer.
fn cm<T: Element>(v: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::from_column_major_slice(&v[..rows * cols], rows, cols)
}

/// Whether every entry is finite, read in memory order (rows or columns, whichever is contiguous),
/// in parallel for large matrices.
fn all_finite<T: Element>(m: MatRef<'_, T>) -> bool {
    let m = if m.row_stride().unsigned_abs() < m.col_stride().unsigned_abs() {
        m
    } else {
        m.transpose()
    };
    // now each column is the contiguous (or shortest-stride) direction
    let col_ok = |j: usize| (0..m.nrows()).all(|i| m[(i, j)].is_finite());
    if m.nrows() * m.ncols() >= 1 << 20 {
        (0..m.ncols()).into_par_iter().all(col_ok)
    } else {
        (0..m.ncols()).all(col_ok)
    }
}

/// Non-empty and finite (the analytic kernels' check).
fn check_x<T: Element>(arg: &'static str, x: MatRef<'_, T>) -> Result<()> {
    crate::analytic::check_input(arg, x).map(|_| ())
}

/// `dst = alpha·lhs·rhs`, in column panels of about 2^33 multiply-adds each, checking for
/// cancellation between panels (so that Ctrl-C is honoured within a fraction of a second).
fn gemm_cols<T: Element>(
    mut dst: MatMut<'_, T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    alpha: T,
    par: Par,
    ctl: &Control,
) -> Result<()> {
    let n = rhs.ncols();
    let per_col = (lhs.nrows() * lhs.ncols()).max(1);
    let step = ((1usize << 33) / per_col).clamp(64, n.max(64));
    for c0 in (0..n).step_by(step) {
        ctl.check()?;
        let w = step.min(n - c0);
        matmul(
            dst.rb_mut().subcols_mut(c0, w),
            Accum::Replace,
            lhs,
            rhs.subcols(c0, w),
            alpha,
            sized(par, per_col * w),
        );
    }
    Ok(())
}

/// Most columns per panel of [`gram`]: the unit of parallel work and cancellation.
const PANEL: usize = 256;

/// `alpha·aᵀb` as a row-major `n1 × n2` matrix, where `a` is `k × n1` and `b` is `k × n2`
/// (`None`: `a` itself; then only one triangle is multiplied and the other mirrored, so the
/// result is exactly symmetric).
fn gram<T: Element>(a: MatRef<'_, T>, b: Option<MatRef<'_, T>>, alpha: T, par: Par, ctl: &Control) -> Result<Vec<T>> {
    let n1 = a.ncols();
    let n2 = b.map_or(n1, |b| b.ncols());
    let mut out = vec![T::ZERO; n1 * n2];
    // row-major n1 × n2 is column-major n2 × n1: out_cm = bᵀ a
    let bb = b.unwrap_or(a);
    // about 2^31 multiply-adds per panel, at most PANEL columns; for a symmetric product narrow
    // panels keep the multiplied part close to the lower half (1/2 + panel/(2·n) of the square;
    // n/8 balances that against re-packing the left-hand side for every panel)
    let mut panel = ((1usize << 31) / (a.nrows() * n2).max(1)).clamp(32, PANEL);
    if b.is_none() {
        panel = panel.min((n1 / 8).max(32));
    }
    for c0 in (0..n1).step_by(panel) {
        ctl.check()?;
        let c1 = (c0 + panel).min(n1);
        let r0 = if b.is_none() { c0 } else { 0 };
        let dst = MatMut::from_column_major_slice_mut(&mut out, n2, n1).submatrix_mut(r0, c0, n2 - r0, c1 - c0);
        matmul(
            dst,
            Accum::Replace,
            bb.subcols(r0, n2 - r0).transpose(),
            a.subcols(c0, c1 - c0),
            alpha,
            sized(par, (n2 - r0) * (c1 - c0) * a.nrows()),
        );
    }
    if b.is_none() {
        mirror_lower_to_upper(&mut out, n1);
    }
    Ok(out)
}

/// Copy the lower triangle of a column-major `n × n` matrix onto its upper triangle.
fn mirror_lower_to_upper<T: Element>(m: &mut [T], n: usize) {
    const B: usize = 64;
    // in blocks, so that both the read and the write side stay in cache
    for j0 in (0..n).step_by(B) {
        for i0 in (0..=j0).step_by(B) {
            for j in j0..(j0 + B).min(n) {
                for i in i0..(i0 + B).min(j) {
                    // (i, j) with i < j is in the upper triangle; its mirror (j, i) is below
                    m[i + j * n] = m[j + i * n];
                }
            }
        }
    }
}

/// Reorder a row-major `(n1·O) × (n2·O)` Gram with rows `(a, o)` and columns `(b, o')` into the
/// row-major `(n1, n2, O, O)` layout, multiplying by `factor[a, b]` when given.
fn permute_full<T: Element>(g: &[T], factor: Option<&[T]>, n1: usize, n2: usize, o: usize) -> Vec<T> {
    debug_assert_eq!(g.len(), n1 * n2 * o * o);
    let mut out = vec![T::ZERO; g.len()];
    out.par_chunks_mut(n2 * o * o)
        .with_min_len(MIN_LEN / (n2 * o * o) + 1)
        .enumerate()
        .for_each(|(a, row)| {
            for b in 0..n2 {
                let f = factor.map_or(T::ONE, |f| f[a * n2 + b]);
                for k in 0..o {
                    let src = &g[(a * o + k) * n2 * o + b * o..][..o];
                    let dst = &mut row[(b * o + k) * o..][..o];
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = f * s;
                    }
                }
            }
        });
    out
}

/// `count` independent N(0, scale²) draws as `T`, deterministic for `key` whatever the number of
/// threads: the buffer is cut into fixed chunks, each with its own generator seeded from `key`
/// and the chunk index.
fn normals<T: Element>(count: usize, key: [u64; 4], scale: f64) -> Vec<T> {
    const CH: usize = 1 << 15;
    let mut out = vec![T::ZERO; count];
    out.par_chunks_mut(CH).enumerate().for_each(|(c, chunk)| {
        let mut seed = [0u8; 32];
        let mut state = 0x6a09_e667_f3bc_c908u64;
        for (i, k) in key.iter().chain(std::iter::once(&(c as u64))).enumerate() {
            state = splitmix(state ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i as u64));
        }
        for w in seed.chunks_mut(8) {
            state = splitmix(state);
            w.copy_from_slice(&state.to_le_bytes());
        }
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::from_seed(seed);
        for v in chunk.iter_mut() {
            let z: f64 = StandardNormal.sample(&mut rng);
            *v = T::from_f64(z * scale);
        }
    });
    out
}

/// SplitMix64's output function: a bijective 64-bit mixer.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Network {
    /// Monte Carlo estimate of the NNGP and NTK: the mean over `n_samples` random initialisations
    /// of the traced empirical kernels. It converges to [`Network::kernel`] as the widths and
    /// `n_samples` grow. Sample `k` uses `init(in_dim, seed, k)`; the samples are added in sample
    /// order, so the result is deterministic for a seed.
    pub fn monte_carlo<T: Element>(
        &self,
        x1: MatRef<'_, T>,
        x2: Option<MatRef<'_, T>>,
        n_samples: usize,
        seed: u64,
        get: Get,
        ctl: &Control,
    ) -> Result<Kernels<T>> {
        if n_samples == 0 {
            return Err(Error::arg("n_samples", "must be at least 1"));
        }
        self.check_call(x1, x2, get)?;
        let (n1, n2) = (x1.nrows(), x2.map_or(x1.nrows(), |x| x.nrows()));
        let kinds = get.nngp as usize + get.ntk as usize;
        let count = n1
            .checked_mul(n2)
            .ok_or_else(|| Error::arg("x1", "the kernel is too large"))?;
        let mut sums = alloc_results::<T>(&vec![count; kinds], "the Monte Carlo kernels")?;
        let opts = EmpiricalOptions {
            get,
            trace: true,
            per_layer: false,
        };
        let threads = crate::pool::num_threads().max(1);
        // samples run `window` at a time, one per thread; their results are added in sample order
        let bytes = (count * std::mem::size_of::<T>() * (kinds + 2)) as u64;
        let room = available_memory().map_or(threads as u64, |a| (a / 4 / bytes.max(1)).max(1));
        let window = threads.min(n_samples).min(room as usize).max(1);
        let l = self.blocks.len() as u64;
        let per_sample = l * if x2.is_some() { 2 } else { 1 } + if get.ntk { 2 * l } else { 0 } + get.nngp as u64;
        ctl.add_total(per_sample * n_samples as u64);
        let in_dim = x1.ncols();
        // one sample per thread (each multiplying sequentially), or one at a time using them all
        let inner = if window > 1 { Par::Seq } else { pool_par() };
        let one = |k: usize| -> Result<Empirical<T>> {
            let p = self.init::<T>(in_dim, seed, k as u64)?;
            let view: Vec<DenseParams<'_, T>> = p.iter().map(|p| p.view()).collect();
            self.empirical_in_pool(&view, x1, x2, &opts, inner, ctl)
        };
        crate::pool::pool().install(|| -> Result<()> {
            for start in (0..n_samples).step_by(window) {
                let end = (start + window).min(n_samples);
                let res: Vec<Result<Empirical<T>>> = if end - start == 1 {
                    vec![one(start)]
                } else {
                    (start..end).into_par_iter().map(one).collect()
                };
                for r in res {
                    let e = r?;
                    let mut it = sums.iter_mut();
                    for v in [e.nngp, e.ntk].into_iter().flatten() {
                        if let Some(s) = it.next() {
                            s.par_iter_mut()
                                .zip(v.par_iter())
                                .with_min_len(MIN_LEN)
                                .for_each(|(s, v)| *s += *v);
                        }
                    }
                }
            }
            Ok(())
        })?;
        let inv = T::from_f64(1.0 / n_samples as f64);
        for s in &mut sums {
            s.par_iter_mut().with_min_len(MIN_LEN).for_each(|v| *v *= inv);
        }
        let mut it = sums.into_iter();
        Ok(Kernels {
            nngp: if get.nngp { it.next() } else { None },
            ntk: if get.ntk { it.next() } else { None },
            rows: n1,
            cols: n2,
        })
    }
}

/// Options of [`Network::train`].
#[derive(Clone, Copy, Debug)]
pub struct TrainOptions {
    /// The gradient-descent step size η.
    pub learning_rate: f64,
    /// Number of full-batch steps.
    pub steps: usize,
    /// Record predictions and losses every this many steps (and at the last step).
    pub record_every: usize,
    /// Also record the traced empirical NTK of the training inputs at the recorded steps.
    pub record_ntk: bool,
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
        check_x("x", x)?;
        check_x("y", y)?;
        self.check_params(params, x.ncols())?;
        let o = self.out_dim();
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
            check_x("x_test", xt)?;
            if xt.ncols() != x.ncols() {
                return Err(Error::arg(
                    "x_test",
                    format!("has {} features but x has {}", xt.ncols(), x.ncols()),
                ));
            }
        }
        if let Some(yt) = y_test {
            check_x("y_test", yt)?;
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
        let recorded: Vec<usize> = (0..=opts.steps)
            .filter(|&k| k % every == 0 || k == opts.steps)
            .collect();
        let r = recorded.len();
        check_room::<T>(
            (r * n * o) as u128 * 2
                + x_test.map_or(0, |xt| (r * xt.nrows() * o) as u128)
                + if opts.record_ntk { (r * n * n) as u128 } else { 0 },
            "the recorded trajectory",
        )?;
        ctl.add_total(opts.steps as u64 + 1);
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
        let par = pool_par();
        let eta = opts.learning_rate;
        let inv_size = 1.0 / (n * o) as f64;
        crate::pool::pool().install(|| -> Result<()> {
            for step in 0..=opts.steps {
                ctl.check()?;
                let view: Vec<DenseParams<'_, T>> = p.iter().map(|q| q.view()).collect();
                let diverged = |what: String| {
                    Error::NonFinite(format!(
                        "training diverged at step {step} ({what}): the learning rate {eta} is too large; \
                         ntkrs.predict.max_learning_rate gives the largest stable one"
                    ))
                };
                let fwd = match self.forward(&view, x, true, par, ctl) {
                    Err(Error::NonFinite(m)) if step > 0 => return Err(diverged(m)),
                    other => other?,
                };
                let last = self.blocks.len() - 1;
                let f = &fwd.h[last];
                let loss = half_mse(f, y);
                if !loss.is_finite() {
                    return Err(diverged(format!("the loss is {loss}")));
                }
                if recorded.binary_search(&step).is_ok() {
                    traj.f_train.extend_from_slice(f);
                    traj.loss_train.push(loss);
                    if let Some(xt) = x_test {
                        let ft = self.forward(&view, xt, false, par, ctl)?;
                        let ft = &ft.h[last];
                        if let (Some(lt), Some(yt)) = (traj.loss_test.as_mut(), y_test) {
                            lt.push(half_mse(ft, yt));
                        }
                        if let Some(v) = traj.f_test.as_mut() {
                            v.extend_from_slice(ft);
                        }
                    }
                    if let Some(v) = traj.ntk_train.as_mut() {
                        let e = self.empirical_in_pool(
                            &view,
                            x,
                            None,
                            &EmpiricalOptions {
                                get: Get::NTK,
                                trace: true,
                                per_layer: false,
                            },
                            par,
                            &Control::new(),
                        )?;
                        v.extend_from_slice(&e.ntk.unwrap_or_default());
                    }
                }
                if step == opts.steps {
                    break;
                }
                drop(view);
                // back-propagate g = ∂loss/∂z, column-major n_l × N, and step every layer
                let mut g: Vec<T> = f
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| T::from_f64((v.to_f64() - y[(k / o, k % o)].to_f64()) * inv_size))
                    .collect();
                if let Some(d) = &fwd.d[last] {
                    g.par_iter_mut()
                        .zip(d.par_iter())
                        .with_min_len(MIN_LEN)
                        .for_each(|(g, d)| *g *= *d);
                }
                for l in (0..=last).rev() {
                    let (n_in, n_out) = (p[l].n_in, p[l].n_out);
                    let (s, beta) = scales(&self.blocks[l], n_in);
                    // the signal for the layer below, with this layer's weights before the step
                    let below = (l > 0).then(|| {
                        let mut gb = vec![T::ZERO; n_in * n];
                        matmul(
                            MatMut::from_column_major_slice_mut(&mut gb, n_in, n),
                            Accum::Replace,
                            p[l].view().w,
                            cm(&g, n_out, n),
                            T::from_f64(s),
                            sized(par, n_in * n_out * n),
                        );
                        if let Some(d) = &fwd.d[l - 1] {
                            gb.par_iter_mut()
                                .zip(d.par_iter())
                                .with_min_len(MIN_LEN)
                                .for_each(|(g, d)| *g *= *d);
                        }
                        gb
                    });
                    // W ← W − η·s·h_{l−1}ᵀ g (W row-major n_in × n_out is column-major n_out × n_in)
                    let h: MatRef<'_, T> = if l == 0 {
                        x
                    } else {
                        cm(&fwd.h[l - 1], n_in, n).transpose()
                    };
                    matmul(
                        MatMut::from_column_major_slice_mut(&mut p[l].w, n_out, n_in),
                        Accum::Add,
                        cm(&g, n_out, n),
                        h,
                        T::from_f64(-eta * s),
                        sized(par, n_in * n_out * n),
                    );
                    if let Some(b) = p[l].b.as_mut() {
                        let mut sums = vec![0.0f64; n_out];
                        for col in g.chunks(n_out) {
                            for (acc, &v) in sums.iter_mut().zip(col) {
                                *acc += v.to_f64();
                            }
                        }
                        for (bj, sj) in b.iter_mut().zip(&sums) {
                            *bj = T::from_f64(bj.to_f64() - eta * beta * sj);
                        }
                    }
                    if let Some(gb) = below {
                        g = gb;
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
    use crate::{Activation, Dense, Layer};

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
        let o = net.out_dim();
        let f = |p: &[DenseOwned<f64>]| {
            let v: Vec<_> = p.iter().map(|q| q.view()).collect();
            net.apply(&v, x.as_ref(), &Control::new()).unwrap()
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
        };
        let t = nw
            .train(&view, xs.as_ref(), ys.as_ref(), None, None, &opts, &Control::new())
            .unwrap();
        let loss = |p: &[DenseOwned<f64>]| {
            let v: Vec<_> = p.iter().map(|q| q.view()).collect();
            half_mse(&nw.apply(&v, xs.as_ref(), &Control::new()).unwrap(), ys.as_ref())
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
        let e = nw.apply(&view, xs.as_ref(), &Control::new()).unwrap_err();
        assert!(e.to_string().contains("shape (3, 4)"), "{e}");
        view.pop();
        let e = nw.apply(&view, x(2, 3).as_ref(), &Control::new()).unwrap_err();
        assert!(e.to_string().contains("2 Dense layer(s) but 1"), "{e}");
        let e = nw
            .monte_carlo(x(2, 3).as_ref(), None, 0, 0, Get::NTK, &Control::new())
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { arg: "n_samples", .. }));
    }
}
