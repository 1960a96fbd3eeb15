//! Gauss–Hermite quadrature for activations without a closed-form kernel.
//!
//! `E[f(u) g(v)]` over a centred Gaussian pair is computed with a `D`-point Gauss–Hermite rule in
//! each dimension, `u = √q1·z1`, `v = √q2·(ρ z1 + √(1−ρ²) z2)`. Two evaluation paths:
//!
//! * **equal norms** (every sample of the layer has the same variance `q`, as for inputs on a
//!   sphere): the kernel depends on the angle alone, so it is tabulated once per layer on a uniform
//!   grid of `θ ∈ [0, π]` (`THETA_POINTS` points) and interpolated (cubic Lagrange) per entry;
//! * **general**: `φ` and `φ'` are tabulated on a fine uniform grid covering every abscissa the
//!   rule can reach (`GRID_POINTS` points, cubic Lagrange) and the `D²`-point rule runs per entry.
//!
//! Both evaluate the same rule, so they agree to the interpolation error (≈1e-10 relative).

use std::fmt;
use std::sync::Arc;

use crate::activation::{corr, Samples, Scratch};
use crate::error::{Error, Result};
use crate::vmath::Real;

/// Points of the angle table of the equal-norm path.
pub const THETA_POINTS: usize = 2049;
/// Points of the `φ`/`φ'` table of the general path.
pub const GRID_POINTS: usize = 16385;

/// A function evaluated on batches: writes `φ(x)` into `f` and `φ'(x)` into `df`.
pub trait BatchFn: Send + Sync {
    /// Evaluate at every `x`.
    fn eval(&self, x: &[f64], f: &mut [f64], df: &mut [f64]) -> Result<()>;
    /// A name for messages.
    fn name(&self) -> String;
}

/// A pointwise function for numerical activations.
#[derive(Clone)]
pub enum Pointwise {
    /// `tanh x`.
    Tanh,
    /// The logistic function `1/(1 + e^{−x})`.
    Sigmoid,
    /// `log(1 + eˣ)`.
    Softplus,
    /// `x·sigmoid(x)`.
    Silu,
    /// `x` for `x > 0`, `α(eˣ − 1)` otherwise.
    Elu { alpha: f64 },
    /// `λ·Elu(α)` with `λ = 1.0507009873554805`, `α = 1.6732632423543772`.
    Selu,
    /// `x·tanh(softplus(x))`.
    Mish,
    /// A user-supplied function.
    Custom(Arc<dyn BatchFn>),
}

impl fmt::Debug for Pointwise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

const SELU_LAMBDA: f64 = 1.0507009873554805;
const SELU_ALPHA: f64 = 1.6732632423543772;

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

impl Pointwise {
    /// A name for messages.
    pub fn name(&self) -> String {
        match self {
            Pointwise::Tanh => "Tanh".into(),
            Pointwise::Sigmoid => "Sigmoid".into(),
            Pointwise::Softplus => "Softplus".into(),
            Pointwise::Silu => "Silu".into(),
            Pointwise::Elu { alpha } => format!("Elu(alpha={alpha})"),
            Pointwise::Selu => "Selu".into(),
            Pointwise::Mish => "Mish".into(),
            Pointwise::Custom(f) => f.name(),
        }
    }

    /// `φ(x)` and `φ'(x)` at every `x` (scalar standard-library functions; this runs only while
    /// tables are built, never per kernel entry).
    pub fn eval(&self, x: &[f64], f: &mut [f64], df: &mut [f64]) -> Result<()> {
        let each = |g: &dyn Fn(f64) -> (f64, f64), f: &mut [f64], df: &mut [f64]| {
            for ((&xv, fv), dv) in x.iter().zip(f.iter_mut()).zip(df.iter_mut()) {
                (*fv, *dv) = g(xv);
            }
        };
        match self {
            Pointwise::Tanh => each(&|x| (x.tanh(), 1.0 - x.tanh() * x.tanh()), f, df),
            Pointwise::Sigmoid => each(&|x| (sigmoid(x), sigmoid(x) * sigmoid(-x)), f, df),
            Pointwise::Softplus => each(&|x| (softplus(x), sigmoid(x)), f, df),
            Pointwise::Silu => each(&|x| (x * sigmoid(x), sigmoid(x) * (1.0 + x * sigmoid(-x))), f, df),
            Pointwise::Elu { alpha } => {
                let a = *alpha;
                each(
                    &|x| {
                        if x > 0.0 {
                            (x, 1.0)
                        } else {
                            (a * x.exp_m1(), a * x.exp())
                        }
                    },
                    f,
                    df,
                )
            }
            Pointwise::Selu => each(
                &|x| {
                    if x > 0.0 {
                        (SELU_LAMBDA * x, SELU_LAMBDA)
                    } else {
                        (
                            SELU_LAMBDA * SELU_ALPHA * x.exp_m1(),
                            SELU_LAMBDA * SELU_ALPHA * x.exp(),
                        )
                    }
                },
                f,
                df,
            ),
            Pointwise::Mish => each(
                &|x| {
                    let sp = softplus(x);
                    let th = sp.tanh();
                    (x * th, th + x * (1.0 - th * th) * sigmoid(x))
                },
                f,
                df,
            ),
            Pointwise::Custom(g) => {
                g.eval(x, f, df)?;
                if let Some(k) = f.iter().chain(df.iter()).position(|v| !v.is_finite()) {
                    let xv = x[k % x.len()];
                    return Err(Error::Callback(format!(
                        "{} returned a non-finite value (or derivative) at x = {xv}",
                        g.name()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Probabilists' Gauss–Hermite rule of `n` points: nodes `z` and weights `w` with `Σ w = 1`, so
/// `E[f(z)] ≈ Σ_k w_k f(z_k)` for `z ~ N(0, 1)`. Golub–Welsch: the nodes are the eigenvalues of the
/// symmetric tridiagonal Jacobi matrix with off-diagonal `√k`; the weights are the squared first
/// components of its normalised eigenvectors (faer's self-adjoint eigensolver).
pub fn gauss_hermite(n: usize) -> (Vec<f64>, Vec<f64>) {
    let jac = faer::Mat::<f64>::from_fn(n, n, |i, j| {
        if i + 1 == j || j + 1 == i {
            (i.max(j) as f64).sqrt()
        } else {
            0.0
        }
    });
    let eig = jac
        .self_adjoint_eigen(faer::Side::Lower)
        .expect("the Jacobi matrix is symmetric and finite");
    let (s, u) = (eig.S(), eig.U());
    let mut pairs: Vec<(f64, f64)> = (0..n).map(|k| (s[k], u[(0, k)] * u[(0, k)])).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // symmetrise: the rule is exactly symmetric about 0
    let z: Vec<f64> = (0..n).map(|k| 0.5 * (pairs[k].0 - pairs[n - 1 - k].0)).collect();
    let w: Vec<f64> = (0..n).map(|k| 0.5 * (pairs[k].1 + pairs[n - 1 - k].1)).collect();
    // Polish each node by Newton steps on the normalised Hermite functions
    // h_k = He_k/√(k!) (h_{k+1} = (z h_k − √k h_{k−1})/√(k+1), h_n' = √n h_{n−1}) and take the
    // weights from the closed form w = 1/(n·h_{n−1}(z)²), accurate in the tails too.
    let eval = |x: f64| -> (f64, f64) {
        let (mut prev, mut cur) = (0.0, 1.0);
        for k in 0..n {
            let next = (x * cur - (k as f64).sqrt() * prev) / ((k + 1) as f64).sqrt();
            prev = cur;
            cur = next;
        }
        (cur, prev) // (h_n, h_{n−1})
    };
    let mut z = z;
    let mut w = w;
    for k in 0..n {
        let mut x = z[k];
        for _ in 0..3 {
            let (hn, hn1) = eval(x);
            if hn1 != 0.0 {
                x -= hn / ((n as f64).sqrt() * hn1);
            }
        }
        z[k] = x;
        let (_, hn1) = eval(x);
        w[k] = 1.0 / (n as f64 * hn1 * hn1);
    }
    let total: f64 = w.iter().sum();
    (z, w.into_iter().map(|v| v / total).collect())
}

/// Cubic Lagrange interpolation on a uniform table starting at `x0` with inverse spacing `inv_h`.
#[inline(always)]
fn interp<T: Real>(table: &[T], x0: T, inv_h: T, x: T) -> T {
    let pos = (x - x0) * inv_h;
    let last = (table.len() - 3) as f64;
    // base index in [0, len − 4] so that the stencil k..k+3 stays inside
    let kf = (pos - T::ONE).max(T::ZERO).min(T::from_f64(last - 1.0));
    let k = kf.to_f64() as usize;
    let k = k.min(table.len() - 4);
    let s = pos - T::from_f64(k as f64) - T::ONE; // position relative to node k+1, in [−1, 2]
    debug_assert!(k + 3 < table.len());
    // SAFETY: k ≤ len − 4 by the clamp above, so k..k+3 is in bounds (unchecked so that the
    // row loop vectorises into gathers).
    let (y0, y1, y2, y3) = unsafe {
        (
            *table.get_unchecked(k),
            *table.get_unchecked(k + 1),
            *table.get_unchecked(k + 2),
            *table.get_unchecked(k + 3),
        )
    };
    let one = T::ONE;
    let two = T::TWO;
    let six = T::from_f64(6.0);
    // Lagrange basis at nodes −1, 0, 1, 2
    let l0 = -s * (s - one) * (s - two) / six;
    let l1 = (s + one) * (s - one) * (s - two) / two;
    let l2 = -(s + one) * s * (s - two) / two;
    let l3 = (s + one) * s * (s - one) / six;
    l0 * y0 + l1 * y1 + l2 * y2 + l3 * y3
}

/// A numerical activation prepared for one layer.
#[derive(Clone, Debug)]
pub(crate) enum NumericPlan<T> {
    /// Equal norms: kernel tables over θ.
    Theta { inv_h: T, nngp: Vec<T>, dot: Vec<T> },
    /// General: `φ`, `φ'` tables over x and the rule itself; per-sample aux holds `φ(√q z_k)`
    /// (k < D) and `φ'(√q z_k)` (D ≤ k < 2D).
    Grid {
        z: Vec<T>,
        w: Vec<T>,
        x0: T,
        inv_h: T,
        f: Vec<T>,
        df: Vec<T>,
        fun: Pointwise,
    },
}

impl NumericPlan<f64> {
    pub fn new(fun: &Pointwise, degree: usize, qs: &[f64]) -> Result<Self> {
        let (z, w) = gauss_hermite(degree);
        let q0 = qs.first().copied().unwrap_or(0.0);
        let equal = qs.iter().all(|&q| (q - q0).abs() <= 1e-13 * q0.abs());
        if equal && !qs.is_empty() {
            // Kernel as a function of θ at variance q0: 2-D rule at each table angle.
            let sq = q0.sqrt();
            let h = std::f64::consts::PI / (THETA_POINTS - 1) as f64;
            let d = degree;
            let mut fu = vec![0.0; d];
            let mut dfu = vec![0.0; d];
            let u: Vec<f64> = z.iter().map(|&zk| sq * zk).collect();
            fun.eval(&u, &mut fu, &mut dfu)?;
            let mut nngp = vec![0.0; THETA_POINTS];
            let mut dot = vec![0.0; THETA_POINTS];
            let chunk = 64;
            let mut x = Vec::with_capacity(chunk * d * d);
            let mut fv = Vec::new();
            let mut dfv = Vec::new();
            for start in (0..THETA_POINTS).step_by(chunk) {
                let end = (start + chunk).min(THETA_POINTS);
                x.clear();
                for m in start..end {
                    let th = m as f64 * h;
                    let (rho, s) = (th.cos(), th.sin());
                    for &zk in &z {
                        for &zl in &z {
                            x.push(sq * (rho * zk + s * zl));
                        }
                    }
                }
                fv.resize(x.len(), 0.0);
                dfv.resize(x.len(), 0.0);
                fun.eval(&x, &mut fv, &mut dfv)?;
                for (mi, m) in (start..end).enumerate() {
                    let base = mi * d * d;
                    let (mut acc_n, mut acc_d) = (0.0, 0.0);
                    for k in 0..d {
                        let (mut inn, mut ind) = (0.0, 0.0);
                        for l in 0..d {
                            inn += w[l] * fv[base + k * d + l];
                            ind += w[l] * dfv[base + k * d + l];
                        }
                        acc_n += w[k] * fu[k] * inn;
                        acc_d += w[k] * dfu[k] * ind;
                    }
                    nngp[m] = acc_n;
                    dot[m] = acc_d;
                }
            }
            Ok(NumericPlan::Theta {
                inv_h: 1.0 / h,
                nngp,
                dot,
            })
        } else {
            let zmax = z.iter().fold(0.0f64, |a, &v| a.max(v.abs()));
            let qmax = qs.iter().fold(0.0f64, |a, &v| a.max(v));
            // |ρ z_k + √(1−ρ²) z_l| ≤ √2·zmax; the margin keeps the stencil inside
            let r = (2.0 * zmax * qmax.sqrt()).max(1e-300);
            let h = 2.0 * r / (GRID_POINTS - 1) as f64;
            let x: Vec<f64> = (0..GRID_POINTS).map(|k| -r + k as f64 * h).collect();
            let mut f = vec![0.0; GRID_POINTS];
            let mut df = vec![0.0; GRID_POINTS];
            fun.eval(&x, &mut f, &mut df)?;
            Ok(NumericPlan::Grid {
                z,
                w,
                x0: -r,
                inv_h: 1.0 / h,
                f,
                df,
                fun: fun.clone(),
            })
        }
    }

    pub fn n_aux(&self) -> usize {
        match self {
            NumericPlan::Theta { .. } => 0,
            NumericPlan::Grid { z, .. } => 2 * z.len(),
        }
    }

    /// `φ(√q_i z_k)` at `[k * n + i]` and `φ'(√q_i z_k)` at `[(D + k) * n + i]`.
    pub fn aux(&self, qs: &[f64], out: &mut [f64]) -> Result<()> {
        if let NumericPlan::Grid { z, fun, .. } = self {
            let (d, n) = (z.len(), qs.len());
            let u: Vec<f64> = (0..d).flat_map(|k| qs.iter().map(move |&q| q.sqrt() * z[k])).collect();
            let (f, df) = out.split_at_mut(d * n);
            fun.eval(&u, f, df)?;
        }
        Ok(())
    }

    pub fn cast<T: Real>(&self) -> NumericPlan<T> {
        let v = |x: &[f64]| x.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
        match self {
            NumericPlan::Theta { inv_h, nngp, dot } => NumericPlan::Theta {
                inv_h: T::from_f64(*inv_h),
                nngp: v(nngp),
                dot: v(dot),
            },
            NumericPlan::Grid {
                z,
                w,
                x0,
                inv_h,
                f,
                df,
                fun,
            } => NumericPlan::Grid {
                z: v(z),
                w: v(w),
                x0: T::from_f64(*x0),
                inv_h: T::from_f64(*inv_h),
                f: v(f),
                df: v(df),
                fun: fun.clone(),
            },
        }
    }
}

impl<T: Real> NumericPlan<T> {
    /// See [`crate::activation::Plan::row`].
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn row<const NTK: bool>(
        &self,
        s1: &Samples<T>,
        i: usize,
        s2: &Samples<T>,
        j0: usize,
        c: &mut [T],
        t: &mut [T],
        scr: &mut Scratch<T>,
    ) {
        let len = c.len();
        let rsq1 = s1.rsq[i];
        let sq2 = &s2.sq[j0..j0 + len];
        let rsq2 = &s2.rsq[j0..j0 + len];
        match self {
            // E = T_nngp(θ), dot = T_dot(θ): tables of the 2-D rule at the layer's common variance
            NumericPlan::Theta { inv_h, nngp, dot } => {
                for j in 0..len {
                    let (rho, _) = corr(c[j], T::ZERO, rsq1, T::ZERO, rsq2[j]);
                    let th = rho.vacos();
                    c[j] = interp(nngp, T::ZERO, *inv_h, th);
                    if NTK {
                        t[j] *= interp(dot, T::ZERO, *inv_h, th);
                    }
                }
            }
            // E = Σ_k Σ_l w_k w_l φ(√q1 z_k) φ(√q2(ρ z_k + √(1−ρ²) z_l)), dot likewise with φ'
            NumericPlan::Grid {
                z, w, x0, inv_h, f, df, ..
            } => {
                let d = z.len();
                let (x0, inv_h) = (*x0, *inv_h);
                let fu = &s1.aux[..];
                let n1 = s1.n;
                let (a, b) = (&mut scr.a[..len], &mut scr.b[..len]);
                let (acc_n, acc_d, inner) = (&mut scr.c[..len], &mut scr.d[..len], &mut scr.e[..len]);
                for j in 0..len {
                    let (rho, _) = corr(c[j], T::ZERO, rsq1, T::ZERO, rsq2[j]);
                    let s = ((T::ONE - rho) * (T::ONE + rho)).max(T::ZERO).sqrt();
                    a[j] = sq2[j] * rho;
                    b[j] = sq2[j] * s;
                    acc_n[j] = T::ZERO;
                    acc_d[j] = T::ZERO;
                }
                for k in 0..d {
                    let zk = z[k];
                    let wf = w[k] * fu[k * n1 + i];
                    for v in inner.iter_mut() {
                        *v = T::ZERO;
                    }
                    for l in 0..d {
                        let (zl, wl) = (z[l], w[l]);
                        for j in 0..len {
                            let x = a[j] * zk + b[j] * zl;
                            inner[j] += wl * interp(f, x0, inv_h, x);
                        }
                    }
                    for j in 0..len {
                        acc_n[j] += wf * inner[j];
                    }
                    if NTK {
                        let wd = w[k] * fu[(d + k) * n1 + i];
                        for v in inner.iter_mut() {
                            *v = T::ZERO;
                        }
                        for l in 0..d {
                            let (zl, wl) = (z[l], w[l]);
                            for j in 0..len {
                                let x = a[j] * zk + b[j] * zl;
                                inner[j] += wl * interp(df, x0, inv_h, x);
                            }
                        }
                        for j in 0..len {
                            acc_d[j] += wd * inner[j];
                        }
                    }
                }
                for j in 0..len {
                    c[j] = acc_n[j];
                    if NTK {
                        t[j] *= acc_d[j];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_hermite_integrates_gaussian_moments_exactly() {
        let (z, w) = gauss_hermite(20);
        // E[z^{2k}] = (2k − 1)!! for 2k < 2·20
        let mut dfact = 1.0;
        for k in 0..19 {
            let m: f64 = z.iter().zip(&w).map(|(&zi, &wi)| wi * zi.powi(2 * k)).sum();
            assert!((m - dfact).abs() <= 1e-12 * dfact, "moment {}: {m} vs {dfact}", 2 * k);
            dfact *= (2 * k + 1) as f64;
            let odd: f64 = z.iter().zip(&w).map(|(&zi, &wi)| wi * zi.powi(2 * k + 1)).sum();
            assert!(odd.abs() < 1e-9 * dfact);
        }
    }

    #[test]
    fn cubic_interpolation_is_exact_on_cubics() {
        let h = 0.1;
        let table: Vec<f64> = (0..50).map(|k| (k as f64 * h).powi(3) - 2.0 * k as f64 * h).collect();
        for x in [0.0, 0.05, 1.234, 4.85, 4.9] {
            let y = interp(&table, 0.0, 1.0 / h, x);
            assert!((y - (x.powi(3) - 2.0 * x)).abs() < 1e-12, "{x}: {y}");
        }
    }
}
