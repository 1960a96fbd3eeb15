//! Numerical activations (`Tanh`, `Sigmoid`, `Softplus`, `Silu`, `Elu`, `Selu`, `Mish` and user
//! functions): kernel maps by the polar Gauss–Legendre rule of [`crate::quadrature`].
//!
//! Two evaluation paths:
//! * **equal norms** (every sample of the layer has the same variance, as for inputs on a sphere):
//!   the kernel depends on the angle alone, so it is tabulated once per layer on `THETA_POINTS`
//!   angles with `φ` evaluated exactly, and interpolated (cubic) per entry: ReLU-like cost;
//! * **general**: `φ` and `φ'` are tabulated on `GRID_POINTS` abscissae (cubic interpolation that
//!   never straddles the kink at 0) and the rule runs per entry.
//!
//! The paths agree to the interpolation error (≈1e-12 relative).

use std::fmt;
use std::sync::Arc;

use super::common::{corr, Lanes, Scratch, Side};
use crate::error::{Error, Result};
use crate::quadrature::{PolarRule, RADIUS};
use crate::vmath::Real;

/// Points of the angle table of the equal-norm path.
pub const THETA_POINTS: usize = 2049;
/// Points of the `φ`/`φ'` table of the general path (odd: 0 is a node).
pub const GRID_POINTS: usize = 65537;

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

/// Cubic Lagrange interpolation on a uniform table starting at `x0` with inverse spacing `inv_h`;
/// with `split = Some(k0)` (node `k0` is x = 0) the stencil never straddles 0 (it extrapolates
/// within the first cell), so a kink or a jump of the tabulated function at 0 costs no accuracy.
#[inline(always)]
fn interp<T: Real>(table: &[T], x0: T, inv_h: T, split: Option<usize>, x: T) -> T {
    let pos = (x - x0) * inv_h;
    let n = table.len();
    // base index k of the stencil k..k+3, centred on pos
    let mut kf = (pos - T::ONE).max(T::ZERO).min(T::from_f64((n - 4) as f64));
    if let Some(k0) = split {
        let k0f = T::from_f64(k0 as f64);
        // the node at 0 itself is never used: it cannot hold both one-sided limits of a
        // function that jumps there (φ' of ReLU-like activations)
        let lo_side = kf.min(k0f - T::from_f64(4.0)); // stencil < k0 for x < 0
        let hi_side = kf.max(k0f + T::ONE); // stencil > k0 for x ≥ 0
        kf = T::select(pos < k0f, lo_side, hi_side);
    }
    let k = (kf.to_f64() as usize).min(n - 4);
    let s = pos - T::from_f64(k as f64) - T::ONE; // relative to node k+1
    debug_assert!(k + 3 < n);
    // SAFETY: k ≤ n − 4 by the clamp above (unchecked so that the row loop vectorises into gathers).
    let (y0, y1, y2, y3) = unsafe {
        (
            *table.get_unchecked(k),
            *table.get_unchecked(k + 1),
            *table.get_unchecked(k + 2),
            *table.get_unchecked(k + 3),
        )
    };
    let (one, two, six) = (T::ONE, T::TWO, T::from_f64(6.0));
    let l0 = -s * (s - one) * (s - two) / six;
    let l1 = (s + one) * (s - one) * (s - two) / two;
    let l2 = -(s + one) * s * (s - two) / two;
    let l3 = (s + one) * s * (s - one) / six;
    l0 * y0 + l1 * y1 + l2 * y2 + l3 * y3
}

/// A numerical activation prepared for one layer.
#[derive(Clone, Debug)]
pub(crate) enum NumericPlan<T> {
    /// Equal norms: kernel tables over θ ∈ [0, π].
    Theta { inv_h: T, nngp: Vec<T>, dot: Vec<T> },
    /// General: `φ`, `φ'` tables over `[−R, R]` (0 at node `mid`) and the polar rule.
    Grid {
        r: Vec<T>,
        wr: Vec<T>,
        a: Vec<T>,
        wa: Vec<T>,
        x0: T,
        inv_h: T,
        mid: usize,
        f: Vec<T>,
        df: Vec<T>,
    },
}

impl NumericPlan<f64> {
    /// Plan for pre-activation variances `qs`; `tables` allows the equal-norm angle table (worth
    /// its set-up cost only when many entries follow).
    pub fn new(fun: &Pointwise, degree: usize, qs: &[f64], tables: bool) -> Result<Self> {
        let rule = PolarRule::new(degree);
        let q0 = qs.first().copied().unwrap_or(0.0);
        let equal = !qs.is_empty() && qs.iter().all(|&q| (q - q0).abs() <= 1e-13 * q0.abs());
        if tables && equal {
            let sq = q0.sqrt();
            let h = std::f64::consts::PI / (THETA_POINTS - 1) as f64;
            let thetas: Vec<f64> = (0..THETA_POINTS).map(|m| m as f64 * h).collect();
            // chunks of angles in parallel (a user callback serialises on its own lock, if any),
            // the caller's cancellation polled between chunks
            let cancel = crate::control::Cancel::current();
            let parts: Vec<Vec<(f64, f64)>> = crate::pool::pool().install(|| {
                use rayon::prelude::*;
                thetas
                    .par_chunks(32)
                    .map(|chunk| {
                        cancel.check()?;
                        rule.expectations(|x, f, df| fun.eval(x, f, df), sq, sq, chunk)
                    })
                    .collect::<Result<_>>()
            })?;
            let (nngp, dot): (Vec<f64>, Vec<f64>) = parts.into_iter().flatten().unzip();
            Ok(NumericPlan::Theta {
                inv_h: 1.0 / h,
                nngp,
                dot,
            })
        } else {
            let qmax = qs.iter().fold(0.0f64, |a, &v| a.max(v));
            let r = (RADIUS * qmax.sqrt() * (1.0 + 1e-9)).max(1e-300);
            let mid = GRID_POINTS / 2;
            let h = r / mid as f64;
            let x: Vec<f64> = (0..GRID_POINTS).map(|k| (k as f64 - mid as f64) * h).collect();
            let mut f = vec![0.0; GRID_POINTS];
            let mut df = vec![0.0; GRID_POINTS];
            fun.eval(&x, &mut f, &mut df)?;
            Ok(NumericPlan::Grid {
                r: rule.r,
                wr: rule.wr,
                a: rule.a,
                wa: rule.wa,
                x0: -r,
                inv_h: 1.0 / h,
                mid,
                f,
                df,
            })
        }
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
                r,
                wr,
                a,
                wa,
                x0,
                inv_h,
                mid,
                f,
                df,
            } => NumericPlan::Grid {
                r: v(r),
                wr: v(wr),
                a: v(a),
                wa: v(wa),
                x0: T::from_f64(*x0),
                inv_h: T::from_f64(*inv_h),
                mid: *mid,
                f: v(f),
                df: v(df),
            },
        }
    }
}

impl<T: Real> NumericPlan<T> {
    /// `E` and `dot` by the tabulated angle (equal norms) or by the rule on tabulated `φ`, `φ'`.
    #[inline(always)]
    pub fn row<const NTK: bool, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        t: &mut [T],
        scr: &mut Scratch<T>,
    ) {
        let len = c.len();
        let t = &mut t[..len];
        let (q1, rsq1, sq1, q2, rsq2, sq2) = (a.q(), a.rsq(), a.sq(), b.q(), b.rsq(), b.sq());
        match self {
            // E = T_nngp(θ), dot = T_dot(θ): the rule tabulated at the layer's common variance
            NumericPlan::Theta { inv_h, nngp, dot } => {
                for j in 0..len {
                    let (rho, _) = corr(c[j], q1.at(j), T::ZERO, rsq1.at(j), q2.at(j), T::ZERO, rsq2.at(j));
                    let th = rho.vacos();
                    c[j] = interp(nngp, T::ZERO, *inv_h, None, th);
                    if NTK {
                        t[j] *= interp(dot, T::ZERO, *inv_h, None, th);
                    }
                }
            }
            // E = Σ_arcs Σ_ϕ Σ_r w [φ(u)φ(v) + φ(−u)φ(−v)], u = √q1 r cos ϕ, v = √q2 r cos(ϕ − θ);
            // dot likewise with φ'
            NumericPlan::Grid {
                r,
                wr,
                a: an_nodes,
                wa,
                x0,
                inv_h,
                mid,
                f,
                df,
            } => {
                let (x0, inv_h, split) = (*x0, *inv_h, Some(*mid));
                let half_pi = T::HALF * T::PI;
                let (th, cu, cv, wp) = (
                    &mut scr.a[..len],
                    &mut scr.b[..len],
                    &mut scr.c[..len],
                    &mut scr.e[..len],
                );
                let (acc_n, acc_d) = (&mut scr.d[..len], &mut scr.f[..len]);
                for j in 0..len {
                    let (rho, _) = corr(c[j], q1.at(j), T::ZERO, rsq1.at(j), q2.at(j), T::ZERO, rsq2.at(j));
                    th[j] = rho.vacos();
                    acc_n[j] = T::ZERO;
                    acc_d[j] = T::ZERO;
                }
                for arc in 0..2 {
                    for (&an, &wn) in an_nodes.iter().zip(wa.iter()) {
                        for j in 0..len {
                            // arc 0: [π/2, π/2 + θ]; arc 1: [π/2 + θ, 3π/2]
                            let (lo, hi) = if arc == 0 {
                                (half_pi, half_pi + th[j])
                            } else {
                                (half_pi + th[j], T::from_f64(3.0) * half_pi)
                            };
                            let (mid_phi, half) = (T::HALF * (lo + hi), T::HALF * (hi - lo));
                            let phi = mid_phi + half * an;
                            cu[j] = sq1.at(j) * phi.vcos();
                            cv[j] = sq2.at(j) * (phi - th[j]).vcos();
                            wp[j] = half * wn;
                        }
                        for (&rk, &wk) in r.iter().zip(wr.iter()) {
                            for j in 0..len {
                                let (u, v) = (rk * cu[j], rk * cv[j]);
                                let w = wp[j] * wk;
                                let fu = interp(f, x0, inv_h, split, u) * interp(f, x0, inv_h, split, v)
                                    + interp(f, x0, inv_h, split, -u) * interp(f, x0, inv_h, split, -v);
                                acc_n[j] += w * fu;
                                if NTK {
                                    let du = interp(df, x0, inv_h, split, u) * interp(df, x0, inv_h, split, v)
                                        + interp(df, x0, inv_h, split, -u) * interp(df, x0, inv_h, split, -v);
                                    acc_d[j] += w * du;
                                }
                            }
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
    fn split_interpolation_is_exact_on_piecewise_cubics() {
        let h = 0.1;
        let g = |x: f64| {
            if x < 0.0 {
                x.powi(3) - 2.0 * x
            } else {
                3.0 * x * x + 1.0
            }
        };
        let table: Vec<f64> = (0..101).map(|k| g((k as f64 - 50.0) * h)).collect();
        for x in [-5.0, -0.05, -0.0001, 0.0, 0.05, 1.234, 4.85, 4.99] {
            let y = interp(&table, -5.0, 1.0 / h, Some(50), x);
            assert!((y - g(x)).abs() < 1e-11, "{x}: {y}");
        }
    }

    #[test]
    fn cubic_interpolation_is_exact_on_cubics() {
        let h = 0.1;
        let table: Vec<f64> = (0..50).map(|k| (k as f64 * h).powi(3) - 2.0 * k as f64 * h).collect();
        for x in [0.0, 0.05, 1.234, 4.85, 4.9] {
            let y = interp(&table, 0.0, 1.0 / h, None, x);
            assert!((y - (x.powi(3) - 2.0 * x)).abs() < 1e-12, "{x}: {y}");
        }
    }
}
