//! Infinite-width NNGP and NTK kernels of a [`Network`] (eqs. 10–12 and 26–27 of the seed
//! derivation, with neural-tangents' `W_std`/`b_std` conventions).
//!
//! The work is split in three phases:
//! 1. per-sample variances through every layer (`O(N·depth)`), which fix each activation's plan;
//! 2. the input Gram `x·x'/d` through faer, upper triangle only when `x2` is `None`, written
//!    straight into the output buffer;
//! 3. the fused tile pass ([`crate::tile`]): each row of a tile goes through every layer while in
//!    L1, NNGP and NTK together, SIMD across entries, rayon across tiles, mirrored at the end.
//!
//! Peak memory is the result arrays plus `O(tile × threads)` scratch.

use faer::MatRef;

use crate::activation::{Plan, Samples, Scratch};
use crate::control::Control;
use crate::error::{Error, Result};
use crate::layer::{Network, Parameterization};
use crate::vmath::Real;

/// Floating-point types the kernels are computed in (`f32`, `f64`).
pub trait Element: Real + faer::traits::RealField {
    /// `"float32"` or `"float64"`.
    const NAME: &'static str;
}
impl Element for f32 {
    const NAME: &'static str = "float32";
}
impl Element for f64 {
    const NAME: &'static str = "float64";
}

/// Which kernels to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Get {
    /// The NNGP kernel Σ.
    pub nngp: bool,
    /// The NTK Θ.
    pub ntk: bool,
}

impl Get {
    /// Both kernels.
    pub const BOTH: Get = Get { nngp: true, ntk: true };
    /// The NNGP only.
    pub const NNGP: Get = Get { nngp: true, ntk: false };
    /// The NTK only.
    pub const NTK: Get = Get { nngp: false, ntk: true };
}

/// Tuning knobs of a kernel computation; the results do not depend on them.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelOptions {
    /// Side of the square tiles (0: automatic).
    pub tile_size: usize,
    /// Threads: 0 runs in the shared pool ([`crate::set_num_threads`]), 1 on the calling thread
    /// only (no pool: for callers that parallelise themselves, such as dask tasks), `n ≥ 2` in a
    /// pool of `n` threads built for this call.
    pub threads: usize,
}

/// Kernel matrices, row-major `rows × cols` (`cols == 1` for diagonals).
#[derive(Clone, Debug)]
pub struct Kernels<T> {
    /// Σ, when requested.
    pub nngp: Option<Vec<T>>,
    /// Θ, when requested.
    pub ntk: Option<Vec<T>>,
    /// Number of rows (`x1`'s samples).
    pub rows: usize,
    /// Number of columns (`x2`'s samples, or `x1`'s when `x2` is `None`; 1 for a diagonal).
    pub cols: usize,
}

/// The state of one `Dense` (+ activation) block for the tile pass.
pub(crate) struct LayerPlan<T> {
    /// Input variance of the layer for each sample of x1 (the exact diagonal of its input kernel).
    pub q_in: Vec<T>,
    pub w2: T,
    pub b2: T,
    /// Standard parameterization: `(n_in, 1 if bias else 0)`.
    pub standard: Option<(T, T)>,
    pub act: Option<Plan<T>>,
    pub s1: Samples<T>,
    /// `None` when x2 is x1.
    pub s2: Option<Samples<T>>,
}

/// Everything a kernel computation needs besides the inputs: the layer plans, the input Gram's
/// factor and, when the inputs had to be rescaled by a power of two, the rescaled copies.
pub(crate) struct Prepared<T: Element> {
    pub layers: Vec<LayerPlan<T>>,
    pub gscale: T,
    pub scaled: Option<(faer::Mat<T>, Option<faer::Mat<T>>)>,
}

impl<T: Element> Prepared<T> {
    /// The matrices the input Gram is computed from.
    pub fn inputs<'a>(
        &'a self,
        x1: MatRef<'a, T>,
        x2: Option<MatRef<'a, T>>,
    ) -> (MatRef<'a, T>, Option<MatRef<'a, T>>) {
        match &self.scaled {
            Some((a, b)) => (a.as_ref(), b.as_ref().map(|b| b.as_ref())),
            None => (x1, x2),
        }
    }

    /// Bytes held by the rescaled copies.
    pub fn scaled_bytes(&self) -> usize {
        self.scaled.as_ref().map_or(0, |(a, b)| {
            (a.nrows() * a.ncols() + b.as_ref().map_or(0, |b| b.nrows() * b.ncols())) * std::mem::size_of::<T>()
        })
    }
}

impl<T: Real> LayerPlan<T> {
    /// The Dense step on one row: `c ↦ W²c + b²` and, for the NTK, `t ↦ c' + W²t` (NTK
    /// parameterization) or `t ↦ n_in·c + W²t (+1 with a bias)` (standard).
    #[inline(always)]
    pub fn dense_row<const NTK: bool>(&self, c: &mut [T], t: &mut [T]) {
        let (w2, b2) = (self.w2, self.b2);
        let t = &mut t[..c.len()];
        match self.standard {
            None => {
                for (cv, tv) in c.iter_mut().zip(t.iter_mut()) {
                    let cn = w2 * *cv + b2;
                    if NTK {
                        *tv = cn + w2 * *tv;
                    }
                    *cv = cn;
                }
            }
            Some((n_in, one)) => {
                for (cv, tv) in c.iter_mut().zip(t.iter_mut()) {
                    if NTK {
                        *tv = n_in * *cv + w2 * *tv + one;
                    }
                    *cv = w2 * *cv + b2;
                }
            }
        }
    }

    /// The activation step on one row (identity when the block has none).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn act_row<const NTK: bool>(&self, i: usize, j0: usize, c: &mut [T], t: &mut [T], scr: &mut Scratch<T>) {
        if let Some(plan) = &self.act {
            let s2 = self.s2.as_ref().unwrap_or(&self.s1);
            plan.row::<NTK>(&self.s1, i, s2, j0, c, t, scr);
        }
    }
}

/// Every layer on one row: entries `(i, j0 + j)`, `c` holding the input Gram on entry and the NNGP
/// on exit, `t` the NTK (starting at 0). With `diag`, entry 0 is the diagonal `(i, i)` and takes the
/// planned variances exactly (the layer's input variance before each Dense, its pre-activation
/// variance after), so that the tile pass and [`Network::kernel_diagonal`] agree bitwise and the
/// activation sees `c = q1 = q2`, i.e. ρ = 1.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_layers<T: Real, const NTK: bool>(
    plans: &[LayerPlan<T>],
    i: usize,
    j0: usize,
    diag: bool,
    c: &mut [T],
    t: &mut [T],
    scr: &mut Scratch<T>,
) {
    for lp in plans {
        if diag {
            c[0] = lp.q_in[i];
        }
        lp.dense_row::<NTK>(c, t);
        if diag {
            c[0] = lp.s1.q[i];
        }
        lp.act_row::<NTK>(i, j0, c, t, scr);
    }
}

/// Largest absolute value, and whether every value is finite (read in memory order).
fn scan<T: Element>(x: MatRef<'_, T>) -> (f64, bool) {
    let mut m = 0.0f64;
    let mut ok = true;
    let mut visit = |v: T| {
        let v = v.to_f64();
        ok &= v.is_finite();
        m = m.max(v.abs());
    };
    if x.row_stride().unsigned_abs() >= x.col_stride().unsigned_abs() {
        for i in 0..x.nrows() {
            for j in 0..x.ncols() {
                visit(x[(i, j)]);
            }
        }
    } else {
        for j in 0..x.ncols() {
            for i in 0..x.nrows() {
                visit(x[(i, j)]);
            }
        }
    }
    (m, ok)
}

pub(crate) fn check_input<T: Element>(arg: &'static str, x: MatRef<'_, T>) -> Result<f64> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(Error::arg(
            arg,
            format!(
                "is empty (shape ({}, {})); pass at least one sample with at least one feature",
                x.nrows(),
                x.ncols()
            ),
        ));
    }
    let (m, ok) = scan(x);
    if !ok {
        return Err(Error::arg(
            arg,
            "contains NaN or infinite values; remove or impute them first",
        ));
    }
    Ok(m)
}

/// `Err` unless `x2` has as many features (columns) as `x1`.
pub(crate) fn same_features<T>(x1: MatRef<'_, T>, x2: MatRef<'_, T>) -> Result<()> {
    if x2.ncols() != x1.ncols() {
        return Err(Error::arg(
            "x2",
            format!(
                "has {} features but x1 has {}; both need the same number of columns",
                x2.ncols(),
                x1.ncols()
            ),
        ));
    }
    Ok(())
}

/// Bytes of memory the OS reports as available, where it says.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Allocate zeroed result buffers of `counts` elements, or fail with the size they would need
/// (checked against the memory the OS reports as available, before anything is allocated).
pub(crate) fn alloc_results<T: Element>(counts: &[usize], what: &str) -> Result<Vec<Vec<T>>> {
    check_room::<T>(counts.iter().map(|&n| n as u128).sum(), what)?;
    // `vec![0; n]` allocates zeroed pages lazily (calloc): no pass over the memory here
    let out: Vec<Vec<T>> = counts.iter().map(|&n| vec![T::ZERO; n]).collect();
    for v in &out {
        advise_huge_pages(v);
    }
    Ok(out)
}

/// `Err(OutOfMemory)` unless `count` elements of `T` fit in the memory the OS reports available.
pub(crate) fn check_room<T: Element>(count: u128, what: &str) -> Result<()> {
    let total = count * std::mem::size_of::<T>() as u128;
    let avail = available_memory();
    if total > isize::MAX as u128 || avail.is_some_and(|a| total > a as u128) {
        return Err(Error::OutOfMemory {
            bytes: total,
            available: avail,
            what: what.to_string(),
        });
    }
    Ok(())
}

/// Ask the kernel to back a large, untouched buffer with transparent huge pages: 512× fewer page
/// faults when the result is first written (Linux only; a no-op elsewhere or when refused).
fn advise_huge_pages<T>(v: &[T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let end = start + std::mem::size_of_val(v);
        let (lo, hi) = (start.div_ceil(HUGE) * HUGE, end / HUGE * HUGE);
        if hi > lo {
            // SAFETY: [lo, hi) lies inside the live allocation; MADV_HUGEPAGE changes no contents.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// Per-sample input variances `|x_i|²/d`, computed in f64 with a power-of-two rescaling so that
/// neither tiny nor huge inputs under- or overflow in the sum.
fn input_variances<T: Element>(x: MatRef<'_, T>, scale: f64) -> Vec<f64> {
    let d = x.ncols() as f64;
    (0..x.nrows())
        .map(|i| {
            let mut s = 0.0f64;
            for k in 0..x.ncols() {
                let v = x[(i, k)].to_f64() * scale;
                s += v * v;
            }
            s / (scale * scale) / d
        })
        .collect()
}

/// Power of two bringing the largest magnitude `m` near 1 (1 when no rescaling is needed).
fn rescale_factor<T: Element>(m: f64) -> f64 {
    let (lo, hi) = if std::mem::size_of::<T>() == 4 {
        (2f64.powi(-30), 2f64.powi(30))
    } else {
        (2f64.powi(-250), 2f64.powi(250))
    };
    if m == 0.0 || (m >= lo && m <= hi) {
        1.0
    } else {
        // clamp the exponent: 2^±1000 is representable, 2^±1030 is not (subnormal inputs)
        2f64.powi(-(m.log2().round() as i32).clamp(-1000, 1000))
    }
}

impl Network {
    /// Plan every layer for the samples with input variances `q1` (and `q2`): per-layer
    /// pre-activation variances and activation plans. Propagation runs in f64.
    pub(crate) fn plan_layers<T: Element>(
        &self,
        d: usize,
        q1: Vec<f64>,
        q2: Option<Vec<f64>>,
        ctl: &Control,
    ) -> Result<Vec<LayerPlan<T>>> {
        let mut q1 = q1;
        let mut q2 = q2;
        let mut n_in = d as f64;
        let mut plans = Vec::with_capacity(self.blocks.len());
        for (l, block) in self.blocks.iter().enumerate() {
            ctl.check()?;
            let dn = &block.dense;
            let w2 = dn.w_std * dn.w_std;
            let b2 = dn.b_std.map_or(0.0, |b| b * b);
            let q_in: Vec<T> = q1.iter().map(|&v| T::from_f64(v)).collect();
            let dense = |q: &mut Vec<f64>| q.iter_mut().for_each(|v| *v = w2 * *v + b2);
            dense(&mut q1);
            if let Some(q) = q2.as_mut() {
                dense(q);
            }
            let worst = q1.iter().chain(q2.iter().flatten()).cloned().fold(0.0f64, |a, v| {
                if v.is_finite() {
                    a.max(v)
                } else {
                    f64::INFINITY
                }
            });
            if !worst.is_finite() {
                return Err(Error::NonFinite(format!(
                    "the kernel overflows at Dense layer {l}: a pre-activation variance is infinite; \
                     reduce W_std, the depth or the scale of the inputs"
                )));
            }
            let standard = match dn.parameterization {
                Parameterization::Ntk => None,
                Parameterization::Standard => {
                    Some((T::from_f64(n_in), if dn.b_std.is_some() { T::ONE } else { T::ZERO }))
                }
            };
            n_in = dn.out_dim as f64;
            let (act, s1, s2) = match &block.act {
                None => {
                    let id = Plan::<f64>::Identity;
                    (
                        None,
                        Samples::new(&id, &q1)?,
                        q2.as_ref().map(|q| Samples::new(&id, q)).transpose()?,
                    )
                }
                Some(a) => {
                    let all: Vec<f64> = q1.iter().chain(q2.iter().flatten()).cloned().collect();
                    let plan = Plan::<f64>::new(a, &all, true)?;
                    let s1 = Samples::<f64>::new(&plan, &q1)?;
                    let s2 = q2.as_ref().map(|q| Samples::<f64>::new(&plan, q)).transpose()?;
                    // variances after the activation: E[φ(u)²], the map at c = q
                    let propagate = |q: &mut Vec<f64>, s: &Samples<f64>| -> Result<()> {
                        let mut scr = Scratch::new(1);
                        for (i, qi) in q.iter_mut().enumerate() {
                            let mut c = [s.q[i]];
                            let mut t = [0.0];
                            plan.row::<false>(s, i, s, i, &mut c, &mut t, &mut scr);
                            if !c[0].is_finite() {
                                return Err(Error::NonFinite(format!(
                                    "{} has no finite second moment at pre-activation variance {:.6e} (layer {l})",
                                    a.name(),
                                    s.q[i]
                                )));
                            }
                            *qi = c[0];
                        }
                        Ok(())
                    };
                    propagate(&mut q1, &s1)?;
                    if let (Some(q), Some(s)) = (q2.as_mut(), s2.as_ref()) {
                        propagate(q, s)?;
                    }
                    (Some(plan.cast::<T>()), s1.cast::<T>(), s2.map(|s| s.cast::<T>()))
                }
            };
            plans.push(LayerPlan {
                q_in,
                w2: T::from_f64(w2),
                b2: T::from_f64(b2),
                standard,
                act,
                s1,
                s2,
            });
        }
        Ok(plans)
    }

    /// Check `get` and the inputs; returns the largest input magnitude.
    pub(crate) fn check_call<T: Element>(&self, x1: MatRef<'_, T>, x2: Option<MatRef<'_, T>>, get: Get) -> Result<f64> {
        if !get.nngp && !get.ntk {
            return Err(Error::arg("get", "ask for at least one of \"nngp\" and \"ntk\""));
        }
        let mut m = check_input("x1", x1)?;
        if let Some(x2) = x2 {
            m = m.max(check_input("x2", x2)?);
            same_features(x1, x2)?;
        }
        Ok(m)
    }

    /// Plan the layers and the input Gram's scaling for inputs of largest magnitude `m`.
    pub(crate) fn prepare<T: Element>(
        &self,
        x1: MatRef<'_, T>,
        x2: Option<MatRef<'_, T>>,
        m: f64,
        ctl: &Control,
    ) -> Result<Prepared<T>> {
        let d = x1.ncols();
        let scale = rescale_factor::<T>(m);
        let q1 = input_variances(x1, scale);
        let q2 = x2.map(|x| input_variances(x, scale));
        let layers = self.plan_layers::<T>(d, q1, q2, ctl)?;
        // Input Gram, scaled: G = (s·x1)(s·x2)ᵀ · 1/(s² d).
        let gscale = 1.0 / (scale * scale) / d as f64;
        if !(gscale.is_finite() && T::from_f64(gscale).is_finite()) || T::from_f64(m * m).to_f64().is_infinite() {
            return Err(Error::NonFinite(format!(
                "inputs of magnitude {m:.3e} make the kernel overflow {}; use dtype=float64 or rescale the inputs",
                T::NAME
            )));
        }
        let scaled: Option<(faer::Mat<T>, Option<faer::Mat<T>>)> = (scale != 1.0).then(|| {
            let s = T::from_f64(scale);
            let f = |x: MatRef<'_, T>| faer::Mat::<T>::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] * s);
            (f(x1), x2.map(f))
        });
        Ok(Prepared {
            layers,
            gscale: T::from_f64(gscale),
            scaled,
        })
    }

    /// The NNGP and/or NTK Gram matrices between the rows of `x1` and of `x2` (`x1` itself when
    /// `None`; then only the upper triangle is computed and mirrored).
    ///
    /// ```
    /// use ntkrs_core::{Activation, Control, Dense, Get, KernelOptions, Layer, Network, Parameterization};
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
        let m = self.check_call(x1, x2, get)?;
        let d = x1.ncols();
        let (n1, n2) = (x1.nrows(), x2.map_or(x1.nrows(), |x| x.nrows()));
        let nout = get.nngp as usize + get.ntk as usize;
        let count = n1.checked_mul(n2).ok_or_else(|| Error::OutOfMemory {
            bytes: n1 as u128 * n2 as u128 * nout as u128 * std::mem::size_of::<T>() as u128,
            available: available_memory(),
            what: format!("a {n1} x {n2} kernel"),
        })?;
        let mut bufs = alloc_results::<T>(
            &vec![count; nout],
            &format!("{nout} {} kernel(s) of shape {n1} x {n2}", T::NAME),
        )?;
        let prep = self.prepare(x1, x2, m, ctl)?;
        let (a, b) = prep.inputs(x1, x2);
        let tile = crate::tile::tile_size(opts.tile_size);
        let win = crate::tile::Window::whole(n1, n2);
        let sym = b.is_none();
        ctl.add_total(crate::tile::work_units(win, d, sym, tile));
        // a single tile has no parallelism to gain: run it here rather than wake a pool thread
        let runner = crate::pool::Runner::new(opts.threads, n1 > tile || n2 > tile)?;
        runner.run(|parallel| -> Result<()> {
            crate::tile::gram(&mut bufs[0], win, a, b, prep.gscale, parallel, ctl)?;
            crate::tile::layers(&mut bufs, win, get, sym, true, &prep.layers, tile, parallel, ctl)
        })?;
        let mut it = bufs.into_iter();
        let nngp = if get.nngp { it.next() } else { None };
        let ntk = if get.ntk { it.next() } else { None };
        Ok(Kernels {
            nngp,
            ntk,
            rows: n1,
            cols: n2,
        })
    }

    /// Only the diagonal `k(x_i, x_i)` of the kernels of `x`, in `O(N·(d + depth))`.
    pub fn kernel_diagonal<T: Element>(&self, x: MatRef<'_, T>, get: Get, ctl: &Control) -> Result<Kernels<T>> {
        if !get.nngp && !get.ntk {
            return Err(Error::arg("get", "ask for at least one of \"nngp\" and \"ntk\""));
        }
        let m = check_input("x1", x)?;
        let n = x.nrows();
        let scale = rescale_factor::<T>(m);
        let q = input_variances(x, scale);
        let layers = self.plan_layers::<T>(x.ncols(), q, None, ctl)?;
        let mut nngp = vec![T::ZERO; n];
        let mut ntk = vec![T::ZERO; n];
        let mut scr = Scratch::new(1);
        ctl.add_total(n as u64);
        for i in 0..n {
            ctl.check()?;
            ctl.advance(1);
            let mut c = [T::ZERO];
            let mut t = [T::ZERO];
            run_layers::<T, true>(&layers, i, i, true, &mut c, &mut t, &mut scr);
            if !(c[0].is_finite() && t[0].is_finite()) {
                return Err(Error::NonFinite(format!(
                    "the kernel of sample {i} is not finite in {} (overflow); reduce W_std, the depth or the input scale",
                    T::NAME
                )));
            }
            nngp[i] = c[0];
            ntk[i] = t[0];
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
    use crate::{Activation, Dense, Layer};
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
                threads: 0,
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
