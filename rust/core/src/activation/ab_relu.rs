//! `ABRelu`: `φ(x) = a·min(x, 0) + b·max(x, 0)`; `Relu` is `(0, 1)`, `LeakyRelu(α)` is `(α, 1)`,
//! `Abs` is `(−1, 1)`. The arc-cosine kernel of degree 1 (Cho & Saul 2009).

use super::common::{angle_at, corr_at, flag, psi, sin_of, Lanes, Scratch, Side};
use crate::vmath::Real;

/// The map prepared in precision `T`.
#[derive(Clone, Debug)]
pub(crate) struct Plan<T> {
    /// `(b − a)²`
    amb2: T,
    /// `a·b`
    ab: T,
    /// `κ = (a² + b²)/2`: `E[φ(u)²] = κ q`
    kappa: T,
    /// `(a + b)²/2 = κ + ab`
    apb2: T,
}

impl Plan<f64> {
    pub fn new(a: f64, b: f64) -> Self {
        Plan {
            amb2: (b - a) * (b - a),
            ab: a * b,
            kappa: 0.5 * (a * a + b * b),
            apb2: 0.5 * (a + b) * (a + b),
        }
    }

    pub fn cast<T: Real>(&self) -> Plan<T> {
        Plan {
            amb2: T::from_f64(self.amb2),
            ab: T::from_f64(self.ab),
            kappa: T::from_f64(self.kappa),
            apb2: T::from_f64(self.apb2),
        }
    }
}

impl<T: Real> Plan<T> {
    /// E = (b−a)²·√(q1q2)(sin θ + (π−θ)cos θ)/(2π) + ab·c ; dot = ab + (b−a)²(π−θ)/(2π)
    #[inline(always)]
    pub fn row<const NTK: bool, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        t: &mut [T],
        scr: &mut Scratch<T>,
    ) {
        let (amb2, ab) = (self.amb2, self.ab);
        let inv_2pi = T::from_f64(0.5 * std::f64::consts::FRAC_1_PI);
        let (sq1, sq2) = (a.sq(), b.sq());
        let t = &mut t[..c.len()];
        let near = &mut scr.near[..c.len()];
        let (va, vb) = (a.view(), b.view());
        for j in 0..c.len() {
            let (rho, ct, nr) = corr_at(c[j], &va, &vb, j);
            flag(near, j, nr);
            let theta = rho.vacos();
            let s = sin_of(rho);
            let pmt = (T::PI - theta) * inv_2pi;
            c[j] = amb2 * sq1.at(j) * sq2.at(j) * (s * inv_2pi + pmt * rho) + ab * ct;
            if NTK {
                t[j] *= ab + amb2 * pmt;
            }
        }
    }

    /// The precise path: the same maps from the stable angle of `(c, m)`, and the output's defect
    /// `m' = κ√P − |c'|` (`√P' = κ√P`) formed without cancellation. With `A = (b−a)²/(2π)` and
    /// `Ψ(θ) = √P(sin θ − θ cos θ)`: `c' = κc + A·Ψ(θ)`;
    /// `κ√P − c' = κ(√P − c) − A·Ψ(θ)` for θ ≤ π/2, `= (a+b)²/2·√P − ab(√P + c) − A·Ψ(π − θ)` beyond
    /// (from `Ψ(θ) = −π c + Ψ(π − θ)`); `κ√P + c' = κ(√P + c) + A·Ψ(θ)`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn row_precise<const NTK: bool, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        m: &mut [T],
        t: &mut [T],
        _: &mut Scratch<T>,
    ) {
        let (amb2, ab, kappa, apb2) = (self.amb2, self.ab, self.kappa, self.apb2);
        let inv_2pi = T::from_f64(0.5 * std::f64::consts::FRAC_1_PI);
        let big_a = amb2 * inv_2pi;
        let half_pi = T::HALF * T::PI;
        let len = c.len();
        let (t, m) = (&mut t[..len], &mut m[..len]);
        let (va, vb) = (a.view(), b.view());
        for j in 0..len {
            let cj = c[j];
            let g = angle_at(cj, m[j], &va, &vb, j);
            let psi_t = psi(g.theta, g.s, cj, g.sp);
            let psi_p = psi(g.pmt, g.s, -cj, g.sp);
            let cn = kappa * cj + big_a * psi_t;
            let below = T::select(
                g.theta <= half_pi,
                kappa * g.gm - big_a * psi_t,
                apb2 * g.sp - ab * g.gp - big_a * psi_p,
            );
            let above = kappa * g.gp + big_a * psi_t;
            m[j] = T::select(cn >= T::ZERO, below, above).max(T::ZERO);
            c[j] = cn;
            if NTK {
                t[j] *= ab + amb2 * g.pmt * inv_2pi;
            }
        }
    }
}

/// `(φ(x), φ'(x))`; at the kink `φ'(0) = (a + b)/2`, the mean of the one-sided slopes (JAX's
/// autodiff, so `Relu'(0) = 1/2` and `Abs'(0) = 0`).
#[inline(always)]
pub(crate) fn phi<T: Real>(a: T, b: T, x: T) -> (T, T) {
    let f = a * x.min(T::ZERO) + b * x.max(T::ZERO);
    let d = T::select(x > T::ZERO, b, T::select(x < T::ZERO, a, T::HALF * (a + b)));
    (f, d)
}

#[cfg(test)]
mod tests {
    use crate::activation::Activation;
    use std::f64::consts::PI;

    #[test]
    fn relu_maps_at_orthogonal_and_parallel_inputs() {
        let relu = Activation::relu();
        let (n, d) = relu.maps(2.0, 2.0, 2.0).unwrap();
        assert!((n - 1.0).abs() < 1e-15 && (d - 0.5).abs() < 1e-15);
        let (n, d) = relu.maps(1.0, 4.0, 0.0).unwrap();
        assert!((n - 2.0 / (2.0 * PI)).abs() < 1e-15 && (d - 0.25).abs() < 1e-15);
    }

    #[test]
    fn abs_is_even_so_its_kernel_is_even_in_the_correlation() {
        let abs = Activation::abs();
        let (n1, d1) = abs.maps(1.3, 0.7, 0.4).unwrap();
        let (n2, d2) = abs.maps(1.3, 0.7, -0.4).unwrap();
        assert!((n1 - n2).abs() < 1e-15);
        assert!((d1 + d2).abs() < 1e-15); // φ' is odd: E[φ'φ'] flips sign
    }
}
