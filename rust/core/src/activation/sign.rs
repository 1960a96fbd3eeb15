//! `Sign`: `φ(x) = sign(x)`, whose derivative is taken as 0 (almost everywhere), so the NTK after
//! it is 0 (as in neural-tangents).

use super::common::{corr_at, Scratch, Side};
use crate::vmath::Real;

/// E = (2/π)·asin ρ ; dot = 0
#[inline(always)]
pub(crate) fn row<const NTK: bool, T: Real, A: Side<T>, B: Side<T>>(
    a: A,
    b: B,
    c: &mut [T],
    t: &mut [T],
    _: &mut Scratch<T>,
) {
    let t = &mut t[..c.len()];
    let (va, vb) = (a.view(), b.view());
    for j in 0..c.len() {
        let (rho, _) = corr_at(c[j], &va, &vb, j);
        c[j] = T::TWO / T::PI * rho.vasin();
        if NTK {
            t[j] = T::ZERO;
        }
    }
}

/// `(sign(x), 0)` with `sign(0) = 0`.
#[inline(always)]
pub(crate) fn phi<T: Real>(x: T) -> (T, T) {
    let s = T::select(x > T::ZERO, T::ONE, T::select(x < T::ZERO, -T::ONE, T::ZERO));
    (s, T::ZERO)
}
