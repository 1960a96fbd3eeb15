//! `RectifiedMonomial(n)`: `φ(x) = (x ≥ 0)·xⁿ`, the arc-cosine kernels of Cho & Saul (2009);
//! `n = 0` is the step function, `n = 1` is `Relu`.

use std::f64::consts::PI;

use super::common::{corr, horner_row, powi, sin_of, Lanes, Scratch, Side};
use crate::vmath::Real;

#[derive(Clone, Debug)]
pub(crate) struct Plan<T> {
    n: u32,
    p: Vec<T>,
    q: Vec<T>,
    pd: Vec<T>,
    qd: Vec<T>,
}

/// Coefficients of `J_n(θ) = P_n(cos θ)·(π − θ) + Q_n(cos θ)·sin θ`, the arc-cosine kernel
/// `E[relu(u)^n relu(v)^n] = (q1 q2)^{n/2} J_n(θ) / (2π)` (Cho & Saul 2009), from
/// `J_n = (−1)^n sin^{2n+1}θ · ((1/sin θ) d/dθ)^n ((π − θ)/sin θ)`, which gives
/// `P_{n+1} = −(1−c²) P_n' − (2n+1) c P_n` and `Q_{n+1} = −(1−c²) Q_n' − 2n c Q_n − P_n`
/// before the sign `(−1)^n` is applied. Coefficients are in increasing powers of `c = cos θ`.
pub(crate) fn arc_cosine_coefficients(n: u32) -> (Vec<f64>, Vec<f64>) {
    let deriv = |p: &[f64]| -> Vec<f64> { p.iter().enumerate().skip(1).map(|(k, &a)| k as f64 * a).collect() };
    let mul_1mc2 = |p: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; p.len() + 2];
        for (k, &a) in p.iter().enumerate() {
            out[k] += a;
            out[k + 2] -= a;
        }
        out
    };
    let mul_c = |p: &[f64], s: f64| -> Vec<f64> {
        let mut out = vec![0.0; p.len() + 1];
        for (k, &a) in p.iter().enumerate() {
            out[k + 1] += s * a;
        }
        out
    };
    let add = |a: &[f64], b: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; a.len().max(b.len())];
        for (k, &v) in a.iter().enumerate() {
            out[k] += v;
        }
        for (k, &v) in b.iter().enumerate() {
            out[k] += v;
        }
        out
    };
    let neg = |a: &[f64]| -> Vec<f64> { a.iter().map(|v| -v).collect() };
    let mut p = vec![1.0];
    let mut q = vec![0.0];
    for k in 0..n {
        let np = add(&neg(&mul_1mc2(&deriv(&p))), &mul_c(&p, -((2 * k + 1) as f64)));
        let nq = add(
            &add(&neg(&mul_1mc2(&deriv(&q))), &mul_c(&q, -((2 * k) as f64))),
            &neg(&p),
        );
        p = np;
        q = nq;
    }
    let sign = if n % 2 == 0 { 1.0 } else { -1.0 };
    (
        p.iter().map(|v| sign * v).collect(),
        q.iter().map(|v| sign * v).collect(),
    )
}

impl Plan<f64> {
    pub fn new(n: u32) -> Self {
        let (p, q) = arc_cosine_coefficients(n);
        let (pd, qd) = if n > 0 {
            arc_cosine_coefficients(n - 1)
        } else {
            (vec![0.0], vec![0.0])
        };
        Plan { n, p, q, pd, qd }
    }

    pub fn cast<T: Real>(&self) -> Plan<T> {
        let v = |x: &[f64]| x.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
        Plan {
            n: self.n,
            p: v(&self.p),
            q: v(&self.q),
            pd: v(&self.pd),
            qd: v(&self.qd),
        }
    }

    /// Per-sample values `q^{n/2}/√(2π)` and `n·q^{(n−1)/2}/√(2π)`: their products over two
    /// samples are the prefactors `(q1q2)^{n/2}/(2π)` and `n²(q1q2)^{(n−1)/2}/(2π)`.
    pub fn aux(&self, qs: &[f64]) -> Vec<f64> {
        let n = qs.len();
        let k = self.n as i32;
        let norm = (2.0 * PI).sqrt();
        let mut out = vec![0.0; 2 * n];
        for (i, &q) in qs.iter().enumerate() {
            let sq = q.sqrt();
            out[i] = sq.powi(k) / norm;
            out[n + i] = if k > 0 { k as f64 * sq.powi(k - 1) / norm } else { 0.0 };
        }
        out
    }
}

impl<T: Real> Plan<T> {
    /// E = (q1q2)^{n/2}·J_n(θ)/(2π) ; dot = n²(q1q2)^{(n−1)/2}·J_{n−1}(θ)/(2π)
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
        let (a1, d1, a2v, d2v) = (a.aux(0), a.aux(1), b.aux(0), b.aux(1));
        let (q1, rsq1, q2, rsq2) = (a.q(), a.rsq(), b.q(), b.rsq());
        let t = &mut t[..len];
        let (rho, pmt, s) = (&mut scr.a[..len], &mut scr.b[..len], &mut scr.c[..len]);
        for j in 0..len {
            let (r, _) = corr(c[j], q1.at(j), T::ZERO, rsq1.at(j), q2.at(j), T::ZERO, rsq2.at(j));
            rho[j] = r;
            pmt[j] = T::PI - r.vacos();
            s[j] = sin_of(r);
        }
        let (hp, hq) = (&mut scr.d[..len], &mut scr.e[..len]);
        if NTK {
            if self.n == 0 {
                t.iter_mut().for_each(|v| *v = T::ZERO);
            } else {
                horner_row(&self.pd, rho, hp);
                horner_row(&self.qd, rho, hq);
                for j in 0..len {
                    t[j] *= d1.at(j) * d2v.at(j) * (hp[j] * pmt[j] + hq[j] * s[j]);
                }
            }
        }
        horner_row(&self.p, rho, hp);
        horner_row(&self.q, rho, hq);
        for j in 0..len {
            c[j] = a1.at(j) * a2v.at(j) * (hp[j] * pmt[j] + hq[j] * s[j]);
        }
        if self.n == 0 {
            // the step at a zero-variance input is the constant step(0) = 1:
            // E = P(v ≥ 0) = 1/2, or 1 when both variances are 0
            for (j, cj) in c.iter_mut().enumerate() {
                let zeros = (q1.at(j) == T::ZERO) as u8 + (q2.at(j) == T::ZERO) as u8;
                *cj = T::select(zeros == 2, T::ONE, T::select(zeros == 1, T::HALF, *cj));
            }
        }
    }
}

/// `(φ(x), φ'(x))` with `φ' = (x ≥ 0)·n·x^(n−1)`: 1 at 0 for `n = 1`, 0 for the step `n = 0`.
#[inline(always)]
pub(crate) fn phi<T: Real>(n: i32, x: T) -> (T, T) {
    let pos = x >= T::ZERO;
    let f = T::select(pos, powi(x, n), T::ZERO);
    let d = if n == 0 {
        T::ZERO
    } else {
        T::select(pos, T::from_f64(n as f64) * powi(x, n - 1), T::ZERO)
    };
    (f, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::common::horner;
    use crate::activation::Activation;

    #[test]
    fn arc_cosine_coefficients_match_known_closed_forms() {
        // J0 = π − θ ; J1 = sin θ + (π − θ) cos θ ; J2 = 3 sin θ cos θ + (π − θ)(1 + 2 cos² θ)
        let (p0, q0) = arc_cosine_coefficients(0);
        assert_eq!((p0, q0), (vec![1.0], vec![0.0]));
        let (p1, q1) = arc_cosine_coefficients(1);
        assert_eq!(horner(&p1, 0.3), 0.3);
        assert_eq!(horner(&q1, 0.3), 1.0);
        let (p2, q2) = arc_cosine_coefficients(2);
        for c in [-0.7, 0.0, 0.4, 1.0] {
            assert!((horner(&p2, c) - (1.0 + 2.0 * c * c)).abs() < 1e-14);
            assert!((horner(&q2, c) - 3.0 * c).abs() < 1e-14);
        }
    }

    #[test]
    fn step_function_at_a_zero_variance_input_is_its_value_at_zero() {
        // φ = (x ≥ 0): φ(0) = 1, so E[φ(0) φ(v)] = P(v ≥ 0) = 1/2 and E[φ(0)²] = 1
        let step = Activation::rectified_monomial(0).unwrap();
        assert_eq!(step.maps(0.0, 2.0, 0.0).unwrap().0, 0.5);
        assert_eq!(step.maps(0.0, 0.0, 0.0).unwrap().0, 1.0);
        assert!((step.maps(1.0, 1.0, 0.0).unwrap().0 - 0.25).abs() < 1e-15);
    }
}
