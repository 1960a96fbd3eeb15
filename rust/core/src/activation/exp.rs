//! `Exp`: `φ(x) = a·exp(b·x)`.

use super::common::{corr_at, Lanes, Scratch, Side};
use crate::vmath::Real;

#[derive(Clone, Debug)]
pub(crate) struct Plan<T> {
    a2: T,
    b2: T,
}

impl Plan<f64> {
    pub fn new(a: f64, b: f64) -> Self {
        Plan { a2: a * a, b2: b * b }
    }

    pub fn cast<T: Real>(&self) -> Plan<T> {
        Plan {
            a2: T::from_f64(self.a2),
            b2: T::from_f64(self.b2),
        }
    }
}

impl<T: Real> Plan<T> {
    /// E = a²·exp(b²(q1 + q2 + 2c)/2) ; dot = b²·E
    #[inline(always)]
    pub fn row<const NTK: bool, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        t: &mut [T],
        _: &mut Scratch<T>,
    ) {
        let (a2, b2) = (self.a2, self.b2);
        let (q1, q2) = (a.q(), b.q());
        let t = &mut t[..c.len()];
        let (va, vb) = (a.view(), b.view());
        for j in 0..c.len() {
            let (_, ct, _) = corr_at(c[j], &va, &vb, j);
            let e = a2 * (b2 * T::HALF * (q1.at(j) + q2.at(j) + T::TWO * ct)).vexp();
            c[j] = e;
            if NTK {
                t[j] *= b2 * e;
            }
        }
    }
}

/// `(φ(x), φ'(x))` with `φ' = a·b·exp(b·x)`.
#[inline(always)]
pub(crate) fn phi<T: Real>(a: T, b: T, x: T) -> (T, T) {
    let e = (b * x).vexp();
    (a * e, a * b * e)
}
