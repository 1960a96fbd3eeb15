//! `Erf`: `φ(x) = a·erf(b·x) + c` (Williams 1997); `Sigmoid_like` is neural-tangents' special case.

use super::common::{corr_at, Lanes, Scratch, Side};
use crate::vmath::Real;

#[derive(Clone, Debug)]
pub(crate) struct Plan<T> {
    a2: T,
    c2: T,
    b2: T,
    a2b2: T,
}

impl Plan<f64> {
    pub fn new(a: f64, b: f64, c: f64) -> Self {
        Plan {
            a2: a * a,
            c2: c * c,
            b2: b * b,
            a2b2: a * a * b * b,
        }
    }

    pub fn cast<T: Real>(&self) -> Plan<T> {
        Plan {
            a2: T::from_f64(self.a2),
            c2: T::from_f64(self.c2),
            b2: T::from_f64(self.b2),
            a2b2: T::from_f64(self.a2b2),
        }
    }

    /// Per-sample values: `r = 1/√(1 + 2b²q)` and `√q·r` (both bounded, whatever `q`).
    pub fn aux(&self, qs: &[f64]) -> Vec<f64> {
        let n = qs.len();
        let mut out = vec![0.0; 2 * n];
        for (i, &q) in qs.iter().enumerate() {
            let r = 1.0 / (1.0 + 2.0 * self.b2 * q).sqrt();
            out[i] = r;
            out[n + i] = q.sqrt() * r;
        }
        out
    }
}

impl<T: Real> Plan<T> {
    /// With r = 1/√(1 + 2b²q) and z = 2b²·c·r1·r2:
    ///   E = a²(2/π)·asin z + c0² ; dot = (4a²b²/π)·r1 r2/√(1 − z²), where
    ///   1 − z² = r1²r2² + 2b²(q1 r1² r2² + q2 r2² r1²) + 4b⁴ q1 r1² q2 r2² (1 − ρ²)
    /// is summed from bounded terms (no overflow at huge q, no cancellation at ρ → 1).
    #[inline(always)]
    pub fn row<const NTK: bool, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        t: &mut [T],
        _: &mut Scratch<T>,
    ) {
        let (a2, c2, b2, a2b2) = (self.a2, self.c2, self.b2, self.a2b2);
        let (r1, u1, r2, u2) = (a.aux(0), a.aux(1), b.aux(0), b.aux(1));
        let four_over_pi = T::TWO * T::TWO / T::PI;
        let t = &mut t[..c.len()];
        let (va, vb) = (a.view(), b.view());
        for j in 0..c.len() {
            let (rho, _, _) = corr_at(c[j], &va, &vb, j);
            let (r1, u1, r2, u2) = (r1.at(j), u1.at(j), r2.at(j), u2.at(j));
            // z = 2b² ρ (√q1 r1)(√q2 r2)
            let z = (T::TWO * b2 * rho * u1 * u2).clamp_unit();
            c[j] = a2 * (T::TWO / T::PI) * z.vasin() + c2;
            if NTK {
                let rr = r1 * r2;
                let one_minus_z2 = rr * rr
                    + T::TWO * b2 * (u1 * u1 * r2 * r2 + u2 * u2 * r1 * r1)
                    + T::TWO * T::TWO * b2 * b2 * u1 * u1 * u2 * u2 * (T::ONE - rho) * (T::ONE + rho);
                t[j] *= four_over_pi * a2b2 * rr / one_minus_z2.sqrt();
            }
        }
    }
}

/// `(φ(x), φ'(x))` with `φ' = a·b·2/√π·exp(−b²x²)`.
#[inline(always)]
pub(crate) fn phi<T: Real>(a: T, b: T, c: T, x: T) -> (T, T) {
    let k = a * b * T::from_f64(std::f64::consts::FRAC_2_SQRT_PI);
    ((b * x).verf() * a + c, k * (-(b * x) * (b * x)).vexp())
}
