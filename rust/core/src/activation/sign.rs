//! `Sign`: `φ(x) = sign(x)`, whose derivative is taken as 0 (almost everywhere), so the NTK after
//! it is 0 (as in neural-tangents).

use super::common::{angle_at, corr_at, flag, Scratch, Side};
use crate::vmath::Real;

/// E = (2/π)·asin ρ ; dot = 0
#[inline(always)]
pub(crate) fn row<const NTK: bool, T: Real, A: Side<T>, B: Side<T>>(
    a: A,
    b: B,
    c: &mut [T],
    t: &mut [T],
    scr: &mut Scratch<T>,
) {
    let t = &mut t[..c.len()];
    let near = &mut scr.near[..c.len()];
    let (va, vb) = (a.view(), b.view());
    for j in 0..c.len() {
        let (rho, _, nr) = corr_at(c[j], &va, &vb, j);
        flag(near, j, nr);
        c[j] = T::TWO / T::PI * rho.vasin();
        if NTK {
            t[j] = T::ZERO;
        }
    }
}

/// The precise path: `asin ρ = atan2(c, √P sin θ)` from the stable angle, and the defect of the
/// output (`E[sign(u)²] = 1` unless `q = 0`): `1 − |E| = (2/π)·min(θ, π − θ)`.
#[inline(always)]
pub(crate) fn row_precise<const NTK: bool, T: Real, A: Side<T>, B: Side<T>>(
    a: A,
    b: B,
    c: &mut [T],
    m: &mut [T],
    t: &mut [T],
    _: &mut Scratch<T>,
) {
    let len = c.len();
    let (t, m) = (&mut t[..len], &mut m[..len]);
    let (va, vb) = (a.view(), b.view());
    let two_pi = T::TWO / T::PI;
    for j in 0..len {
        let cj = c[j];
        let g = angle_at(cj, m[j], &va, &vb, j);
        let live = g.sp > T::ZERO;
        c[j] = T::select(live, two_pi * cj.vatan2(g.s), T::ZERO);
        m[j] = T::select(live, two_pi * T::select(cj >= T::ZERO, g.theta, g.pmt), T::ZERO);
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
