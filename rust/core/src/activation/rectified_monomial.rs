//! `RectifiedMonomial(n)`: `φ(x) = (x ≥ 0)·xⁿ`, the arc-cosine kernels of Cho & Saul (2009);
//! `n = 0` is the step function, `n = 1` is `Relu`.

use std::f64::consts::PI;

use super::common::{
    angle_at, corr, flag, horner_row, powi, sin_of, theta_minus_sin, Lanes, Scratch, Side, SERIES_BELOW,
};
use crate::vmath::Real;

#[derive(Clone, Debug)]
pub(crate) struct Plan<T> {
    n: u32,
    p: Vec<T>,
    q: Vec<T>,
    pd: Vec<T>,
    qd: Vec<T>,
    /// `P(1)`, `Q(1)` and the coefficients of `R_P(v) = (P(1) − P(1 − v))/v`, `R_Q` likewise
    /// (the precise path's `J_n(0) − J_n(θ)`, with `v = 1 − cos θ`).
    p1: T,
    q1: T,
    rp: Vec<T>,
    rq: Vec<T>,
}

/// `(p(1), r)` with `r(v) = (p(1) − p(1 − v))/v`, for `p` in increasing powers.
fn shifted(p: &[f64]) -> (f64, Vec<f64>) {
    // coefficients of p(1 − v): Σ_k p_k (1 − v)^k
    let mut pt = vec![0.0; p.len()];
    for (k, &a) in p.iter().enumerate() {
        let mut binom = 1.0;
        for (j, v) in pt.iter_mut().enumerate().take(k + 1) {
            let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
            *v += sign * binom * a;
            binom = binom * (k - j) as f64 / (j + 1) as f64;
        }
    }
    let r = if pt.len() > 1 {
        pt[1..].iter().map(|v| -v).collect()
    } else {
        vec![0.0]
    };
    (pt[0], r)
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
        let (p1, rp) = shifted(&p);
        let (q1, rq) = shifted(&q);
        Plan {
            n,
            p,
            q,
            pd,
            qd,
            p1,
            q1,
            rp,
            rq,
        }
    }

    pub fn cast<T: Real>(&self) -> Plan<T> {
        let v = |x: &[f64]| x.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
        Plan {
            n: self.n,
            p: v(&self.p),
            q: v(&self.q),
            pd: v(&self.pd),
            qd: v(&self.qd),
            p1: T::from_f64(self.p1),
            q1: T::from_f64(self.q1),
            rp: v(&self.rp),
            rq: v(&self.rq),
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
        let (q1, rsq1, q2, rsq2) = (a.q(), a.rsq(), b.q(), b.rsq());
        let (rho, pmt, s) = (&mut scr.a[..len], &mut scr.b[..len], &mut scr.c[..len]);
        let near = &mut scr.near[..len];
        for j in 0..len {
            let (r, _, nr) = corr(c[j], q1.at(j), T::ZERO, rsq1.at(j), q2.at(j), T::ZERO, rsq2.at(j));
            flag(near, j, nr);
            rho[j] = r;
            pmt[j] = T::PI - r.vacos();
            s[j] = sin_of(r);
        }
        self.finish::<NTK, A, B>(a, b, c, t, scr);
    }

    /// `c` and `t` from `ρ`, `π − θ`, `sin θ` in `scr.a`, `scr.b`, `scr.c`.
    #[inline(always)]
    fn finish<const NTK: bool, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        t: &mut [T],
        scr: &mut Scratch<T>,
    ) {
        let len = c.len();
        let (a1, d1, a2v, d2v) = (a.aux(0), a.aux(1), b.aux(0), b.aux(1));
        let (q1, q2) = (a.q(), b.q());
        let t = &mut t[..len];
        let (rho, pmt, s) = (&scr.a[..len], &scr.b[..len], &scr.c[..len]);
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

    /// The precise path: the maps at the stable angle of `(c, m)` and the output's defect
    /// `m' = a1·a2·(J_n(0) − J_n(θ))` (`√P' = a1 a2 π P(1)`), for θ < 1/2 as
    /// `P(1)(θ − sin θ) + (P(1) − Q(1)) sin θ + v((π − θ) R_P(v) + sin θ R_Q(v))`, `v = 1 − cos θ`,
    /// which does not cancel; beyond, `a1 a2 π P(1) − c'` directly. The step's zero-variance
    /// constants (`E[step(0)²] = 1`) get their own defect.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn row_precise<const NTK: bool, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        m: &mut [T],
        t: &mut [T],
        scr: &mut Scratch<T>,
    ) {
        let len = c.len();
        let m = &mut m[..len];
        let (va, vb) = (a.view(), b.view());
        let (p1, q1v) = (self.p1, self.q1);
        let small = T::from_f64(SERIES_BELOW);
        {
            let (rho, pmt, sn) = (&mut scr.a[..len], &mut scr.b[..len], &mut scr.c[..len]);
            let [th, stable, ..] = &mut scr.g;
            let (th, stable) = (&mut th[..len], &mut stable[..len]);
            for j in 0..len {
                let g = angle_at(c[j], m[j], &va, &vb, j);
                rho[j] = g.rho;
                pmt[j] = g.pmt;
                sn[j] = g.sin;
                th[j] = g.theta;
                // v = 1 − cos θ (used for θ < 1/2, where c > 0 and √P − c = m)
                let v = T::select(g.sp > T::ZERO, g.gm / g.sp, T::ZERO);
                let mut rp = T::ZERO;
                for &co in self.rp.iter().rev() {
                    rp = rp * v + co;
                }
                let mut rq = T::ZERO;
                for &co in self.rq.iter().rev() {
                    rq = rq * v + co;
                }
                stable[j] = p1 * theta_minus_sin(g.theta, g.sin) + (p1 - q1v) * g.sin + v * (g.pmt * rp + g.sin * rq);
            }
        }
        self.finish::<NTK, A, B>(a, b, c, t, scr);
        let (a1, a2v, q1, q2) = (a.aux(0), b.aux(0), a.q(), b.q());
        let (th, stable) = (&scr.g[0][..len], &scr.g[1][..len]);
        let full = T::PI * p1;
        for j in 0..len {
            let pre = a1.at(j) * a2v.at(j);
            let md = T::select(th[j] < small, pre * stable[j], pre * full - c[j]);
            m[j] = md.max(T::ZERO);
        }
        if self.n == 0 {
            // E[step(0)²] = 1 and E[step(v)²] = 1/2: the defect of the zero-variance constants
            for j in 0..len {
                let (z1, z2) = (q1.at(j) == T::ZERO, q2.at(j) == T::ZERO);
                let v1 = T::select(z1, T::ONE, T::HALF);
                let v2 = T::select(z2, T::ONE, T::HALF);
                m[j] = T::select(z1 || z2, (v1 * v2).sqrt() - c[j], m[j]);
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
