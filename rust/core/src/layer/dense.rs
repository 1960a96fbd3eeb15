//! `Dense(out_dim, W_std, b_std, parameterization)`: `z = W_std/√n_in · h W + b_std · b` (NTK
//! parameterization, `W, b ~ N(0, 1)`) or `z = h W + b` (standard, `W ~ N(0, W_std²/n_in)`,
//! `b ~ N(0, b_std²)`).
//!
//! Kernels (eqs. 10–11 and 17 of the seed derivation, neural-tangents' conventions):
//! `nngp' = W_std²·nngp + b_std²`; NTK parameterization `ntk' = nngp' + W_std²·ntk`; standard
//! `ntk' = n_in·nngp + W_std²·ntk (+1 with a bias)`.

use crate::activation::Lanes;
use crate::error::{Error, Result};
use crate::vmath::Real;

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

/// A fully-connected layer.
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

    /// `neural-tangents`-style description.
    pub fn name(&self) -> String {
        let b = self.b_std.map_or("None".to_string(), |b| b.to_string());
        let p = match self.parameterization {
            Parameterization::Ntk => String::new(),
            Parameterization::Standard => ", parameterization='standard'".into(),
        };
        format!("Dense({}, W_std={}, b_std={b}{p})", self.out_dim, self.w_std)
    }

    /// `(W_std², b_std²)`.
    pub(crate) fn squares(&self) -> (f64, f64) {
        (self.w_std * self.w_std, self.b_std.map_or(0.0, |b| b * b))
    }

    /// `(s, β)` of the forward pass `z = s·h W + β·b` for input width `n_in`.
    pub(crate) fn scales(&self, n_in: usize) -> (f64, f64) {
        match self.parameterization {
            Parameterization::Ntk => (self.w_std / (n_in as f64).sqrt(), self.b_std.unwrap_or(0.0)),
            Parameterization::Standard => (1.0, 1.0),
        }
    }

    /// The standard deviations `(σ_W, σ_b)` of the initial `W` and `b` for input width `n_in`.
    pub(crate) fn init_stds(&self, n_in: usize) -> (f64, f64) {
        match self.parameterization {
            Parameterization::Ntk => (1.0, 1.0),
            Parameterization::Standard => (self.w_std / (n_in as f64).sqrt(), self.b_std.unwrap_or(0.0)),
        }
    }

    /// The layer's kernel map prepared in precision `T` for input width `n_in`.
    pub(crate) fn plan<T: Real>(&self, n_in: usize) -> Plan<T> {
        let (w2, b2) = self.squares();
        Plan {
            w2: T::from_f64(w2),
            b2: T::from_f64(b2),
            standard: match self.parameterization {
                Parameterization::Ntk => None,
                Parameterization::Standard => Some((
                    T::from_f64(n_in as f64),
                    if self.b_std.is_some() { T::ONE } else { T::ZERO },
                )),
            },
        }
    }

    /// The variance map `q ↦ W_std²·q + b_std²`.
    pub(crate) fn variance(&self, q: f64) -> f64 {
        let (w2, b2) = self.squares();
        w2 * q + b2
    }
}

/// A `Dense` layer's kernel map in precision `T`.
#[derive(Clone, Debug)]
pub(crate) struct Plan<T> {
    w2: T,
    b2: T,
    /// Standard parameterization: `(n_in, 1 if bias else 0)`.
    standard: Option<(T, T)>,
}

impl<T: Real> Plan<T> {
    /// The map `c ↦ w2·c + b2` with, for the NTK, `t ↦ c' + w2·t` (`standard = None`) or
    /// `t ↦ n_in·c + w2·t + one` (`standard = Some((n_in, one))`).
    pub(crate) fn new(w2: f64, b2: f64, standard: Option<(f64, f64)>) -> Self {
        Plan {
            w2: T::from_f64(w2),
            b2: T::from_f64(b2),
            standard: standard.map(|(n, o)| (T::from_f64(n), T::from_f64(o))),
        }
    }

    /// `c ↦ W²c + b²` and, for the NTK, `t ↦ c' + W²t` (NTK parameterization) or
    /// `t ↦ n_in·c + W²t (+1 with a bias)` (standard).
    #[inline(always)]
    pub fn row<const NTK: bool>(&self, c: &mut [T], t: &mut [T]) {
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

    /// `(w2, b2, standard)`: the coefficients of [`Plan::row`] (for the fused stencil pass of
    /// [`crate::spatial`], which applies the same map entry by entry).
    pub(crate) fn coefficients(&self) -> (T, T, Option<(T, T)>) {
        (self.w2, self.b2, self.standard)
    }

    /// The precise path: also the pairs' defects `m = √(q1 q2) − |c|` (see
    /// [`crate::activation`]'s `row_precise`): `q1'q2' − c'² = W⁴(q1q2 − c²) + W²b²(q1 + q2 − 2c)`,
    /// both terms ≥ 0, with `q1q2 − c² = m(2√P − m)` and `q1 + q2 − 2c = (√q1 − √q2)² + 2(√P − c)`;
    /// then `m' = (q1'q2' − c'²)/(√P' + |c'|)`. `isq*`: the inputs' `√q`, `osq*`: the outputs'.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn row_precise<const NTK: bool, I1: Lanes<T>, I2: Lanes<T>, O1: Lanes<T>, O2: Lanes<T>>(
        &self,
        c: &mut [T],
        m: &mut [T],
        t: &mut [T],
        isq1: I1,
        isq2: I2,
        osq1: O1,
        osq2: O2,
    ) {
        let (w2, b2) = (self.w2, self.b2);
        let len = c.len();
        let m = &mut m[..len];
        for j in 0..len {
            let (cj, mj) = (c[j], m[j]);
            let (s1, s2) = (isq1.at(j), isq2.at(j));
            let sp = s1 * s2;
            let gm = T::select(cj >= T::ZERO, mj, sp - cj);
            let det = mj * (T::TWO * sp - mj);
            let dist = (s1 - s2) * (s1 - s2) + T::TWO * gm;
            let det_out = w2 * w2 * det + w2 * b2 * dist;
            let cn = w2 * cj + b2;
            let den = osq1.at(j) * osq2.at(j) + cn.abs();
            m[j] = T::select(den > T::ZERO, det_out / den, T::ZERO);
        }
        self.row::<NTK>(c, t);
    }
}
