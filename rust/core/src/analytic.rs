//! Infinite-width NNGP and NTK kernels of a [`Network`] (eqs. 10–12 and 26–27 of the seed
//! derivation, with neural-tangents' `stax` conventions).
//!
//! The work is split in three phases:
//! 1. per-sample variances through every step (`O(N·steps)`), which fix each activation's plan
//!    and each `LayerNorm`'s factors ([`crate::plan`]);
//! 2. the input Gram `x·x'/d` through faer, upper triangle only when `x2` is `None`, written
//!    straight into the output buffer;
//! 3. the fused tile pass ([`crate::tile`]): each row of a tile goes through every step while in
//!    L1, NNGP and NTK together, SIMD across entries, rayon across tiles, mirrored at the end.
//!    Branches hold one row each (a residual block needs two), never an `N × N` array.
//!
//! Peak memory is the result arrays plus `O(tile × slots × threads)` scratch.

use faer::MatRef;

use crate::control::Control;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::input::{check_inputs, same_values, Scaled};
use crate::kernels::{Get, Kernels};
use crate::memory::{alloc_results, count};
use crate::network::Network;
use crate::plan::{run_row, Planned, RowScratch};
use crate::pool::Parallelism;
use crate::shape::InputShape;
use crate::spatial::{spatial_tile, spatial_units, SpatialPlanned};
use crate::tile::Window;

/// Options of a kernel computation: the layout of the inputs' rows and tuning knobs (the results
/// do not depend on the knobs).
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelOptions {
    /// Side of the square tiles (0: automatic).
    pub tile_size: usize,
    /// Where the computation runs.
    pub par: Parallelism,
    /// The shape of one example (each input row flattened in C order): [`InputShape::FLAT`]
    /// (the default) for vectors, `(L, C)` or `(H, W, C)` for convolutional networks.
    pub shape: InputShape,
}

/// A network planned for two batches: the scaled inputs and every step's plan.
pub(crate) struct Prepared<'a, T: Element> {
    pub x1: MatRef<'a, T>,
    /// `None` when the kernel is symmetric (x2 absent, or equal to x1 in a network with dropout,
    /// whose diagonal then differs: neural-tangents' `x1_is_x2`).
    pub x2: Option<MatRef<'a, T>>,
    pub scaled: Scaled<T>,
    pub planned: Planned<T>,
}

impl Network {
    /// Check the call and plan it.
    pub(crate) fn prepare<'a, T: Element>(
        &self,
        x1: MatRef<'a, T>,
        x2: Option<MatRef<'a, T>>,
        get: Get,
        ctl: &Control,
    ) -> Result<Prepared<'a, T>> {
        get.check()?;
        let m = check_inputs(x1, x2)?;
        let x2 = x2.filter(|x2| !(self.has_dropout() && same_values(x1, *x2)));
        let program = self.compile(x1.ncols())?;
        let scaled = Scaled::new(x1, x2, m)?;
        let planned = program.plan::<T>(scaled.q1.clone(), scaled.q2.clone(), true, ctl)?;
        Ok(Prepared {
            x1,
            x2,
            scaled,
            planned,
        })
    }

    /// The NNGP and/or NTK Gram matrices between the rows of `x1` and of `x2` (`x1` itself when
    /// `None`; then only the upper triangle is computed and mirrored).
    ///
    /// ```
    /// use ntkrs_core::{Control, Dense, Get, KernelOptions, Layer, Network, Parameterization};
    /// let dense = |w, b| Layer::Dense(Dense::new(1, w, b, Parameterization::Ntk).unwrap());
    /// let net = Network::new(vec![dense(1.0, Some(0.1))]).unwrap();
    /// let x = faer::mat![[1.0, 0.0], [0.6, 0.8]];
    /// let k = net.kernel::<f64>(x.as_ref(), None, Get::BOTH, &KernelOptions::default(), &Control::new()).unwrap();
    /// // eq. 10: Σ¹ = x·x'/d + β², eq. 17: Θ¹ = Σ¹
    /// let nngp = k.nngp.unwrap();
    /// assert!((nngp[1] - (0.6 / 2.0 + 0.01)).abs() < 1e-15);
    /// assert_eq!(nngp, k.ntk.unwrap());
    /// ```
    pub fn kernel<T: Element>(
        &self,
        x1: MatRef<'_, T>,
        x2: Option<MatRef<'_, T>>,
        get: Get,
        opts: &KernelOptions,
        ctl: &Control,
    ) -> Result<Kernels<T>> {
        get.check()?;
        check_inputs(x1, x2)?;
        if let Some(prog) = self.spatial_program(x1, opts.shape)? {
            return self.kernel_spatial(&prog, opts, x1, x2, get, ctl);
        }
        let (n1, n2) = (x1.nrows(), x2.map_or(x1.nrows(), |x| x.nrows()));
        let nout = get.count();
        let size = count::<T>(n1, n2, nout, || format!("a {n1} x {n2} kernel"))? / nout;
        let mut bufs = alloc_results::<T>(
            &vec![size; nout],
            &format!("{nout} {} kernel(s) of shape {n1} x {n2}", T::NAME),
        )?;
        {
            let mut it = bufs.iter_mut();
            let nngp = if get.nngp {
                it.next().map(|v| v.as_mut_slice())
            } else {
                None
            };
            let ntk = if get.ntk {
                it.next().map(|v| v.as_mut_slice())
            } else {
                None
            };
            self.kernel_into(x1, x2, opts, nngp, ntk, ctl)?;
        }
        Ok(Kernels::from_buffers(get, bufs, n1, n2))
    }

    /// [`Network::kernel`] into caller-owned row-major `n1 × n2` buffers (`None`: that kernel is
    /// not computed; at least one is needed). The values are bitwise those of
    /// [`Network::kernel`].
    ///
    /// ```
    /// use ntkrs_core::{Control, Dense, KernelOptions, Layer, Network, Parameterization};
    /// let net = Network::new(vec![Layer::Dense(Dense::new(1, 1.0, Some(0.1), Parameterization::Ntk).unwrap())]).unwrap();
    /// let x = faer::mat![[1.0, 0.0], [0.6, 0.8]];
    /// let mut ntk = vec![0.0; 4];
    /// net.kernel_into::<f64>(x.as_ref(), None, &KernelOptions::default(), None, Some(&mut ntk), &Control::new()).unwrap();
    /// assert!((ntk[1] - (0.6 / 2.0 + 0.01)).abs() < 1e-15);
    /// ```
    pub fn kernel_into<T: Element>(
        &self,
        x1: MatRef<'_, T>,
        x2: Option<MatRef<'_, T>>,
        opts: &KernelOptions,
        nngp: Option<&mut [T]>,
        ntk: Option<&mut [T]>,
        ctl: &Control,
    ) -> Result<()> {
        let get = Get {
            nngp: nngp.is_some(),
            ntk: ntk.is_some(),
        };
        get.check()?;
        check_inputs(x1, x2)?;
        let (n1, n2) = (x1.nrows(), x2.map_or(x1.nrows(), |x| x.nrows()));
        let size = count::<T>(n1, n2, 1, || format!("a {n1} x {n2} kernel"))?;
        let mut bufs: Vec<&mut [T]> = nngp.into_iter().chain(ntk).collect();
        for b in &bufs {
            if b.len() != size {
                return Err(Error::arg(
                    "out",
                    format!(
                        "an output holds {} values but the kernel has {n1} x {n2} = {size}",
                        b.len()
                    ),
                ));
            }
        }
        let prep = self.prepare(x1, x2, get, ctl)?;
        let (a, b) = prep.scaled.inputs(prep.x1, prep.x2);
        let tile = crate::tile::tile_size(opts.tile_size);
        let win = crate::tile::Window::whole(n1, n2);
        let sym = b.is_none();
        ctl.add_total(crate::tile::work_units(win, x1.ncols(), sym, tile));
        // a single tile has no parallelism to gain: run it here rather than wake a pool thread
        let runner = crate::pool::Runner::new(opts.par, n1 > tile || n2 > tile)?;
        runner.run(|parallel| -> Result<()> {
            crate::tile::gram(bufs[0], win, a, b, prep.scaled.gscale, parallel, ctl)?;
            let inputs = crate::tile::Inputs {
                a,
                b,
                gscale: prep.scaled.gscale,
            };
            crate::tile::layers(
                &mut bufs,
                win,
                get,
                sym,
                true,
                &prep.planned,
                inputs,
                tile,
                parallel,
                ctl,
            )
        })
    }

    /// Only the diagonal `k(x_i, x_i)` of the kernels of `x`, in `O(N·(d + steps))` (`N` times
    /// one pair's work for convolutional networks); `shape` as in [`KernelOptions`].
    pub fn kernel_diagonal_shaped<T: Element>(
        &self,
        x: MatRef<'_, T>,
        shape: InputShape,
        get: Get,
        par: Parallelism,
        ctl: &Control,
    ) -> Result<Kernels<T>> {
        get.check()?;
        let m = check_inputs(x, None)?;
        let Some(prog) = self.spatial_program(x, shape)? else {
            return self.kernel_diagonal(x, get, ctl);
        };
        let in_shape = shape.resolve(x.ncols())?;
        let n = x.nrows();
        ctl.add_total(n as u64);
        let runner = crate::pool::Runner::new(par, n > 1)?;
        let (nngp, ntk) = runner.run(|parallel| -> Result<(Vec<T>, Vec<T>)> {
            let sp = SpatialPlanned::new(&prog, &in_shape, x, None, m, parallel, ctl)?;
            sp.diagonal(parallel, ctl)
        })?;
        Ok(Kernels {
            nngp: get.nngp.then_some(nngp),
            ntk: get.ntk.then_some(ntk),
            rows: n,
            cols: 1,
        })
    }

    /// The program for a call on `x` with examples of shape `shape` when it takes the spatial
    /// path (the examples have spatial axes), else `None`.
    pub(crate) fn spatial_program<T: Element>(
        &self,
        x: MatRef<'_, T>,
        shape: InputShape,
    ) -> Result<Option<crate::program::Program>> {
        if shape.is_flat() {
            return Ok(None);
        }
        let s = shape.resolve(x.ncols())?;
        if s.len() == 1 {
            return Ok(None);
        }
        Ok(Some(self.compile_shape(&s)?))
    }

    /// [`Network::kernel`] for examples with spatial axes.
    fn kernel_spatial<T: Element>(
        &self,
        prog: &crate::program::Program,
        opts: &KernelOptions,
        x1: MatRef<'_, T>,
        x2: Option<MatRef<'_, T>>,
        get: Get,
        ctl: &Control,
    ) -> Result<Kernels<T>> {
        let m = check_inputs(x1, x2)?;
        prog.check_readout()?;
        let in_shape = opts.shape.resolve(x1.ncols())?;
        let x2 = x2.filter(|x2| !(self.has_dropout() && same_values(x1, *x2)));
        let (n1, n2) = (x1.nrows(), x2.map_or(x1.nrows(), |x| x.nrows()));
        let nout = get.count();
        let size = count::<T>(n1, n2, nout, || format!("a {n1} x {n2} kernel"))? / nout;
        let mut bufs = alloc_results::<T>(
            &vec![size; nout],
            &format!("{nout} {} kernel(s) of shape {n1} x {n2}", T::NAME),
        )?;
        let tile = spatial_tile(opts.tile_size);
        let win = Window::whole(n1, n2);
        let sym = x2.is_none();
        ctl.add_total(spatial_units(win, sym, tile));
        let runner = crate::pool::Runner::new(opts.par, n1 * n2 > 1)?;
        runner.run(|parallel| -> Result<()> {
            let sp = SpatialPlanned::new(prog, &in_shape, x1, x2, m, parallel, ctl)?;
            sp.layers(&mut bufs, win, get, sym, true, tile, parallel, ctl)
        })?;
        Ok(Kernels::from_buffers(get, bufs, n1, n2))
    }

    /// Only the diagonal `k(x_i, x_i)` of the kernels of `x`, in `O(N·(d + steps))`.
    pub fn kernel_diagonal<T: Element>(&self, x: MatRef<'_, T>, get: Get, ctl: &Control) -> Result<Kernels<T>> {
        let prep = self.prepare(x, None, get, ctl)?;
        let n = x.nrows();
        let p = &prep.planned;
        let mut nngp = vec![T::ZERO; n];
        let mut ntk = vec![T::ZERO; n];
        let mut scr = RowScratch::new(p.n_slots, 1);
        ctl.add_total(n as u64);
        for i in 0..n {
            ctl.check()?;
            ctl.advance(1);
            scr.slots[0].c[0] = p.q_in[i];
            run_row::<T, true, false>(p, i, i, 1, true, &mut scr);
            let out = &scr.slots[p.out_slot];
            let (c, t) = (out.c[0], out.t[0]);
            if !(c.is_finite() && t.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "the kernel of sample {i} is not finite in {} (overflow); reduce W_std, the depth or the input scale",
                    T::NAME
                )));
            }
            nngp[i] = c;
            ntk[i] = t;
        }
        Ok(Kernels {
            nngp: get.nngp.then_some(nngp),
            ntk: get.ntk.then_some(ntk),
            rows: n,
            cols: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Dense, FanIn, Layer, Parameterization};
    use proptest::prelude::*;

    fn net(act: Activation, depth: usize) -> Network {
        let dense = || Layer::Dense(Dense::new(16, 1.4, Some(0.1), Parameterization::Ntk).unwrap());
        let mut layers = Vec::new();
        for _ in 0..depth {
            layers.push(dense());
            layers.push(Layer::Activation(act.clone()));
        }
        layers.push(dense());
        Network::new(layers).unwrap()
    }

    fn data(n: usize, d: usize, seed: u64) -> faer::Mat<f64> {
        // a small deterministic generator (splitmix64 → uniform(−1, 1))
        let mut s = seed;
        faer::Mat::from_fn(n, d, |_, _| {
            s = s.wrapping_add(0x9E3779B97F4A7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
    }

    fn kernel(n: &Network, x: &faer::Mat<f64>, y: Option<&faer::Mat<f64>>, tile: usize) -> Kernels<f64> {
        n.kernel(
            x.as_ref(),
            y.map(|m| m.as_ref()),
            Get::BOTH,
            &KernelOptions {
                tile_size: tile,
                ..Default::default()
            },
            &Control::new(),
        )
        .unwrap()
    }

    #[test]
    fn results_do_not_depend_on_tile_size_or_threads() {
        let x = data(70, 5, 1);
        let nw = net(Activation::relu(), 3);
        let a = kernel(&nw, &x, None, 0);
        for tile in [1, 7, 16, 64, 300] {
            let b = kernel(&nw, &x, None, tile);
            assert_eq!(a.nngp, b.nngp, "tile {tile}");
            assert_eq!(a.ntk, b.ntk, "tile {tile}");
        }
        let b = crate::pool::pool().install(|| kernel(&nw, &x, None, 8));
        assert_eq!(a.ntk, b.ntk);
    }

    #[test]
    fn symmetric_kernel_equals_cross_kernel_and_diagonal() {
        let x = data(40, 6, 2);
        for act in [
            Activation::relu(),
            Activation::Gelu,
            Activation::erf(1.0, 2.0, 0.1).unwrap(),
        ] {
            let nw = net(act, 2);
            let k = kernel(&nw, &x, None, 16);
            let c = kernel(&nw, &x, Some(&x), 16);
            let d = nw.kernel_diagonal(x.as_ref(), Get::BOTH, &Control::new()).unwrap();
            let (kn, cn, dn) = (k.nngp.unwrap(), c.nngp.unwrap(), d.nngp.unwrap());
            let (kt, ct, dt) = (k.ntk.unwrap(), c.ntk.unwrap(), d.ntk.unwrap());
            for i in 0..40 {
                assert_eq!(dn[i], kn[i * 40 + i]);
                assert_eq!(dt[i], kt[i * 40 + i]);
                for j in 0..40 {
                    assert_eq!(kn[i * 40 + j], kn[j * 40 + i]);
                    assert!((kn[i * 40 + j] - cn[i * 40 + j]).abs() <= 1e-12 * kn[i * 40 + i].abs().max(1.0));
                    assert!((kt[i * 40 + j] - ct[i * 40 + j]).abs() <= 1e-12 * kt[i * 40 + i].abs().max(1.0));
                }
            }
        }
    }

    #[test]
    fn float32_is_close_to_float64() {
        let x = data(50, 8, 3);
        let x32 = faer::Mat::<f32>::from_fn(50, 8, |i, j| x[(i, j)] as f32);
        let nw = net(Activation::relu(), 3);
        let a = kernel(&nw, &x, None, 0).ntk.unwrap();
        let b = nw
            .kernel(x32.as_ref(), None, Get::NTK, &KernelOptions::default(), &Control::new())
            .unwrap();
        let max = a.iter().cloned().fold(0.0, f64::max);
        for (u, v) in a.iter().zip(b.ntk.unwrap()) {
            assert!((u - v as f64).abs() <= 1e-5 * max, "{u} vs {v}");
        }
    }

    #[test]
    fn cancelled_control_stops_the_computation() {
        let ctl = Control::new();
        ctl.cancel();
        let x = data(600, 4, 4);
        let r = net(Activation::relu(), 2).kernel(x.as_ref(), None, Get::BOTH, &KernelOptions::default(), &ctl);
        assert_eq!(r.unwrap_err(), Error::Cancelled);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let nw = net(Activation::relu(), 1);
        let ctl = Control::new();
        let o = KernelOptions::default();
        let mut x = data(5, 3, 5);
        let y = data(4, 2, 6);
        let e = nw
            .kernel(x.as_ref(), Some(y.as_ref()), Get::BOTH, &o, &ctl)
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { arg: "x2", .. }));
        x[(1, 1)] = f64::NAN;
        let e = nw.kernel(x.as_ref(), None, Get::BOTH, &o, &ctl).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { arg: "x1", .. }));
        let empty = faer::Mat::<f64>::zeros(0, 3);
        assert!(nw.kernel(empty.as_ref(), None, Get::BOTH, &o, &ctl).is_err());
        let e = nw
            .kernel(
                data(3, 2, 7).as_ref(),
                None,
                Get {
                    nngp: false,
                    ntk: false,
                },
                &o,
                &ctl,
            )
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { arg: "get", .. }));
    }

    fn resnet(act: Activation, blocks: usize, ln: bool) -> Network {
        let dense = || Layer::Dense(Dense::new(16, 1.2, Some(0.1), Parameterization::Ntk).unwrap());
        let norm = || Layer::LayerNorm(crate::LayerNorm::new(vec![-1], 1e-12).unwrap());
        let mut layers = vec![dense()];
        for _ in 0..blocks {
            let mut branch = Vec::new();
            if ln {
                branch.push(norm());
            }
            branch.extend([dense(), Layer::Activation(act.clone()), dense()]);
            layers.push(Layer::Serial(vec![
                Layer::FanOut(2),
                Layer::Parallel(vec![Layer::Serial(branch), Layer::Identity]),
                Layer::FanIn(FanIn::Sum),
            ]));
        }
        layers.push(dense());
        Network::new(layers).unwrap()
    }

    #[test]
    fn residual_networks_are_symmetric_tile_independent_and_match_their_diagonal() {
        let x = data(45, 5, 8);
        for nw in [resnet(Activation::relu(), 3, true), resnet(Activation::Gelu, 2, false)] {
            let a = kernel(&nw, &x, None, 0);
            let b = kernel(&nw, &x, None, 7);
            assert_eq!(a.ntk, b.ntk);
            let c = kernel(&nw, &x, Some(&x), 16);
            let d = nw.kernel_diagonal(x.as_ref(), Get::BOTH, &Control::new()).unwrap();
            let (an, cn, dn) = (a.nngp.unwrap(), c.nngp.unwrap(), d.nngp.unwrap());
            for i in 0..45 {
                assert_eq!(dn[i], an[i * 45 + i]);
                for j in 0..45 {
                    assert_eq!(an[i * 45 + j], an[j * 45 + i]);
                    assert!((an[i * 45 + j] - cn[i * 45 + j]).abs() <= 1e-12 * an[i * 45 + i]);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Cauchy–Schwarz: |E[φ(u)φ(v)]| ≤ √(E[φ(u)²] E[φ(v)²]), and the maps are finite.
        #[test]
        fn maps_obey_cauchy_schwarz(q1 in 0.0f64..10.0, q2 in 0.0f64..10.0, rho in -1.0f64..1.0, k in 0usize..6) {
            let act = [Activation::relu(), Activation::Gelu, Activation::erf(0.7, 1.3, 0.2).unwrap(),
                       Activation::sin(1.0, 0.8, 0.3).unwrap(), Activation::rectified_monomial(2).unwrap(),
                       Activation::hermite(3).unwrap()][k].clone();
            let c = rho * (q1 * q2).sqrt();
            let (n, d) = act.maps(q1, q2, c).unwrap();
            let (n1, d1) = act.maps(q1, q1, q1).unwrap();
            let (n2, d2) = act.maps(q2, q2, q2).unwrap();
            prop_assert!(n.is_finite() && d.is_finite());
            prop_assert!(n.abs() <= (n1 * n2).sqrt() * (1.0 + 1e-10) + 1e-12);
            prop_assert!(d.abs() <= (d1 * d2).sqrt() * (1.0 + 1e-10) + 1e-12);
        }
    }
}
