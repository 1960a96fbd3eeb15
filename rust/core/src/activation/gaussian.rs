//! `Gaussian`: `φ(x) = a·exp(b·x²)`.

use super::common::{corr_at, Lanes, Scratch, Side};
use crate::error::{Error, Result};
use crate::vmath::Real;

#[derive(Clone, Debug)]
pub(crate) struct Plan<T> {
    a2: T,
    b: T,
}

impl Plan<f64> {
    /// For `b > 0` the expectation exists only when `4·b·q < 1` for every variance `q`.
    pub fn new(a: f64, b: f64, qs: &[f64]) -> Result<Self> {
        let qmax = qs.iter().cloned().fold(0.0, f64::max);
        if b > 0.0 && 4.0 * b * qmax >= 1.0 {
            return Err(Error::NonFinite(format!(
                "Gaussian(a={a}, b={b}): E[exp(b(u²+v²))] diverges for pre-activation \
                 variance {qmax:.6e} (it needs 4·b·variance < 1); use b ≤ 0 or smaller W_std/b_std"
            )));
        }
        Ok(Plan { a2: a * a, b })
    }

    pub fn cast<T: Real>(&self) -> Plan<T> {
        Plan {
            a2: T::from_f64(self.a2),
            b: T::from_f64(self.b),
        }
    }
}

impl<T: Real> Plan<T> {
    /// With D = (1−2bq1)(1−2bq2) − 4b²c²: E = a²/√D ; dot = 4a²b²·c/D^{3/2}
    #[inline(always)]
    pub fn row<const NTK: bool, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        t: &mut [T],
        _: &mut Scratch<T>,
    ) {
        let (a2, bb) = (self.a2, self.b);
        let (q1, q2) = (a.q(), b.q());
        let t = &mut t[..c.len()];
        let (va, vb) = (a.view(), b.view());
        for j in 0..c.len() {
            let (_, ct, _) = corr_at(c[j], &va, &vb, j);
            let det = (T::ONE - T::TWO * bb * q1.at(j)) * (T::ONE - T::TWO * bb * q2.at(j))
                - T::TWO * T::TWO * bb * bb * ct * ct;
            let rs = T::ONE / det.sqrt();
            c[j] = a2 * rs;
            if NTK {
                t[j] *= T::TWO * T::TWO * a2 * bb * bb * ct * rs * rs * rs;
            }
        }
    }
}

/// `(φ(x), φ'(x))` with `φ' = 2·a·b·x·exp(b·x²)`.
#[inline(always)]
pub(crate) fn phi<T: Real>(a: T, b: T, x: T) -> (T, T) {
    let e = (b * x * x).vexp();
    (a * e, T::TWO * a * b * x * e)
}
