//! `Gelu`: `φ(x) = x·Φ(x)` (the exact GELU; kernel of Tsuchida et al. 2020).

use super::common::{corr_at, Lanes, Scratch, Side};
use crate::vmath::Real;

/// With P = (q1+1)(q2+1), δ = √(P − c²), α = atan(c/δ):
///   E = [(c² + q1q2δ²)/(Pδ) + c·α]/(2π) + c/4 ;
///   dot = c/(2πδ)·(1/δ² + (1 − q1q2)/P + 1) + 1/4 + α/(2π)
#[inline(always)]
pub(crate) fn row<const NTK: bool, T: Real, A: Side<T>, B: Side<T>>(
    a: A,
    b: B,
    c: &mut [T],
    t: &mut [T],
    _: &mut Scratch<T>,
) {
    let quarter = T::HALF * T::HALF;
    let inv_2pi = T::from_f64(0.5 * std::f64::consts::FRAC_1_PI);
    let (q1, q2) = (a.q(), b.q());
    let t = &mut t[..c.len()];
    let (va, vb) = (a.view(), b.view());
    for j in 0..c.len() {
        let (_, ct, _) = corr_at(c[j], &va, &vb, j);
        let (q1, q2) = (q1.at(j), q2.at(j));
        let pp1 = (q1 + T::ONE) * (q2 + T::ONE);
        let prod = q1 * q2;
        let d2 = pp1 - ct * ct;
        let d = d2.sqrt();
        let alpha = (ct / d).vatan();
        c[j] = ((ct * ct + prod * d2) / (pp1 * d) + ct * alpha) * inv_2pi + quarter * ct;
        if NTK {
            let first = (T::ONE / d2 + (T::ONE - prod) / pp1 + T::ONE) * ct * inv_2pi / d;
            t[j] *= first + quarter + alpha * inv_2pi;
        }
    }
}

/// `(φ(x), φ'(x))` with `φ' = Φ(x) + x·ϕ(x)`.
#[inline(always)]
pub(crate) fn phi<T: Real>(x: T) -> (T, T) {
    let r2 = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
    let rpi = T::from_f64(0.5 * std::f64::consts::FRAC_2_SQRT_PI);
    let cdf = T::HALF * (T::ONE + (x * r2).verf());
    let pdf = rpi * r2 * (-(x * x) * T::HALF).vexp();
    (x * cdf, cdf + x * pdf)
}
