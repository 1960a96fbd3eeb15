//! `Sin`: `φ(x) = a·sin(b·x + c)`; `Cos` and `Rbf` (random Fourier features) are special cases.

use super::common::{corr_at, Lanes, Scratch, Side};
use crate::vmath::Real;

#[derive(Clone, Debug)]
pub(crate) struct Plan<T> {
    a2: T,
    b2: T,
    // 1 − cos(2c0) = 2 sin²c0 and 1 + cos(2c0) = 2 cos²c0, exact for any c0
    one_minus: T,
    one_plus: T,
}

impl Plan<f64> {
    pub fn new(a: f64, b: f64, c: f64) -> Self {
        Plan {
            a2: a * a,
            b2: b * b,
            one_minus: 2.0 * c.sin() * c.sin(),
            one_plus: 2.0 * c.cos() * c.cos(),
        }
    }

    pub fn cast<T: Real>(&self) -> Plan<T> {
        Plan {
            a2: T::from_f64(self.a2),
            b2: T::from_f64(self.b2),
            one_minus: T::from_f64(self.one_minus),
            one_plus: T::from_f64(self.one_plus),
        }
    }
}

impl<T: Real> Plan<T> {
    /// E = (a²/2)[e^{−b²(q1+q2−2c)/2} − cos(2c0)·e^{−b²(q1+q2+2c)/2}] ;
    /// dot = (a²b²/2)[e^{−b²(q1+q2−2c)/2} + cos(2c0)·e^{−b²(q1+q2+2c)/2}],
    /// written em − cos(2c0)·ep = em·(−expm1(−b²(dp−dm)/2)) + (1 − cos 2c0)·ep (and likewise
    /// with 1 + cos 2c0) so that tiny variances do not cancel (e^{−ε} − e^{−3ε} in float32).
    #[inline(always)]
    pub fn row<const NTK: bool, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        t: &mut [T],
        _: &mut Scratch<T>,
    ) {
        let (a2, b2, one_minus, one_plus) = (self.a2, self.b2, self.one_minus, self.one_plus);
        let (q1, q2) = (a.q(), b.q());
        let t = &mut t[..c.len()];
        let (va, vb) = (a.view(), b.view());
        for j in 0..c.len() {
            let (_, ct, _) = corr_at(c[j], &va, &vb, j);
            let sum = q1.at(j) + q2.at(j);
            let dm = (sum - T::TWO * ct).max(T::ZERO);
            let dp = sum + T::TWO * ct;
            let em = (-(b2 * T::HALF) * dm).vexp();
            let ep = (-(b2 * T::HALF) * dp).vexp();
            let diff = -em * (-(b2 * T::HALF) * (dp - dm)).vexpm1(); // em − ep
            c[j] = a2 * T::HALF * (diff + one_minus * ep);
            if NTK {
                t[j] *= a2 * b2 * T::HALF * (diff + one_plus * ep);
            }
        }
    }
}

/// `(φ(x), φ'(x))` with `φ' = a·b·cos(b·x + c)`.
#[inline(always)]
pub(crate) fn phi<T: Real>(a: T, b: T, c: T, x: T) -> (T, T) {
    let t = b * x + c;
    (a * t.vsin(), a * b * t.vcos())
}
