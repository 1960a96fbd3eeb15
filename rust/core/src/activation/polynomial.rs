//! `Polynomial`: `φ(x) = Σ_k coef[k]·x^k`; `Monomial(n)` and `Hermite(n)` (`He_n(x)/√(n!)`) are
//! special cases. The kernel follows from Mehler's formula and is exact for any variances.

use super::common::{horner, Scratch, Side};
use crate::vmath::Real;

#[derive(Clone, Debug)]
pub(crate) struct Plan {
    r: Vec<Vec<f64>>,
    deg: usize,
}

/// `R_l(q)` coefficient table for a polynomial `φ(x) = Σ_k a_k x^k`: with `x = √q·z`,
/// `E[φ(√q z) He_l(z)]/√(l!) = q^{l/2} R_l(q)` where `R_l(q) = Σ_i a_{l+2i} q^i (l+2i)!/(2^i i! √(l!))`
/// (Isserlis: `E[z^k He_l(z)] = k!/(2^i i!)` for `k = l + 2i`). Returned as polynomials in `q`.
fn hermite_projection(coef: &[f64]) -> Vec<Vec<f64>> {
    let deg = coef.len() - 1;
    let fact = |k: usize| (1..=k).map(|j| j as f64).product::<f64>();
    (0..=deg)
        .map(|l| {
            (0..=(deg - l) / 2)
                .map(|i| {
                    let k = l + 2 * i;
                    coef[k] * fact(k) / (2f64.powi(i as i32) * fact(i) * fact(l).sqrt())
                })
                .collect()
        })
        .collect()
}

/// The coefficients of `He_n(x)/√(n!)`, the probabilists' Hermite polynomial normalised in
/// `L²(N(0, 1))`, from `He_{k+1} = x He_k − k He_{k−1}`.
pub(crate) fn hermite_coefficients(degree: usize) -> Vec<f64> {
    let mut prev = vec![1.0];
    let mut cur = vec![0.0, 1.0];
    if degree == 0 {
        cur = prev.clone();
    } else {
        for k in 1..degree {
            let mut next = vec![0.0; k + 2];
            for (i, &c) in cur.iter().enumerate() {
                next[i + 1] += c;
            }
            for (i, &c) in prev.iter().enumerate() {
                next[i] -= k as f64 * c;
            }
            prev = cur;
            cur = next;
        }
    }
    let norm = (1..=degree).map(|k| k as f64).product::<f64>().sqrt();
    cur.into_iter().map(|c| c / norm).collect()
}

impl Plan {
    pub fn new(coef: &[f64]) -> Self {
        Plan {
            r: hermite_projection(coef),
            deg: coef.len() - 1,
        }
    }

    /// Per-sample values `R_l(q)`, `l = 0..=deg`.
    pub fn aux(&self, qs: &[f64]) -> Vec<f64> {
        let n = qs.len();
        let mut out = vec![0.0; (self.deg + 1) * n];
        for (l, p) in self.r.iter().enumerate() {
            for (i, &q) in qs.iter().enumerate() {
                out[l * n + i] = horner(p, q);
            }
        }
        out
    }

    /// E = Σ_l R_l(q1) R_l(q2) c^l ; dot = Σ_l l·R_l(q1) R_l(q2) c^{l−1}  (Mehler)
    #[inline(always)]
    pub fn row<const NTK: bool, T: Real, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        t: &mut [T],
        scr: &mut Scratch<T>,
    ) {
        use super::common::Lanes;
        let len = c.len();
        let deg = self.deg;
        let t = &mut t[..len];
        let (acc, dacc) = (&mut scr.a[..len], &mut scr.b[..len]);
        acc.iter_mut().for_each(|v| *v = T::ZERO);
        dacc.iter_mut().for_each(|v| *v = T::ZERO);
        for l in (0..=deg).rev() {
            let (r1, r2) = (a.aux(l), b.aux(l));
            let lf = T::from_f64(l as f64);
            for j in 0..len {
                let rr = r1.at(j) * r2.at(j);
                if NTK && l > 0 {
                    dacc[j] = dacc[j] * c[j] + lf * rr;
                }
                acc[j] = acc[j] * c[j] + rr;
            }
        }
        for j in 0..len {
            c[j] = acc[j];
            if NTK {
                t[j] *= if deg == 0 { T::ZERO } else { dacc[j] };
            }
        }
    }
}

/// `(φ(x), φ'(x))` by Horner's rule on `coef` (increasing powers).
#[inline(always)]
pub(crate) fn phi<T: Real>(coef: &[T], x: T) -> (T, T) {
    let (mut f, mut d) = (T::ZERO, T::ZERO);
    for &ck in coef.iter().rev() {
        d = d * x + f;
        f = f * x + ck;
    }
    (f, d)
}

#[cfg(test)]
mod tests {
    use crate::activation::Activation;

    #[test]
    fn hermite_polynomials_give_rho_to_the_degree_at_unit_variance() {
        for deg in 0..6 {
            let h = Activation::hermite(deg).unwrap();
            for rho in [-1.0, -0.3, 0.0, 0.6, 1.0] {
                let (n, d) = h.maps(1.0, 1.0, rho).unwrap();
                assert!(
                    (n - f64::powi(rho, deg as i32)).abs() < 1e-12,
                    "deg {deg} rho {rho}: {n}"
                );
                let want = if deg == 0 {
                    0.0
                } else {
                    deg as f64 * f64::powi(rho, deg as i32 - 1)
                };
                assert!((d - want).abs() < 1e-12);
            }
        }
    }
}
