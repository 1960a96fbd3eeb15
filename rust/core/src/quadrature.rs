//! Quadrature rules: Gauss–Legendre, and the polar product rule for Gaussian expectations.
//!
//! `E[f(u) g(v)]` over the centred Gaussian pair with variances `q1`, `q2` and angle `θ` is
//! written in polar coordinates, `u = √q1·r cos ϕ`, `v = √q2·r cos(ϕ − θ)`, with `ϕ` uniform and
//! `r` of density `r e^{−r²/2}`. For integrands smooth except possibly at `u = 0` or `v = 0`
//! (ReLU-like kinks), `u`, `v` keep their signs on the four arcs of `ϕ` between the rays where one
//! of them vanishes, so a product rule on each arc — Gauss–Legendre in `ϕ`, Gauss–Legendre in
//! `r ∈ [0, 10]` — converges spectrally even for kinked functions (plain 2-D Gauss–Hermite
//! converges only algebraically there). The two arcs `[π/2, π/2 + θ]`, `[π/2 + θ, 3π/2]` and their
//! images under `ϕ ↦ ϕ + π` (which flips both signs) cover the circle. Degree `D` means `D` radial
//! and `D/2` angular nodes per arc: `2·D²` evaluations of `f(u)f(v)` per expectation.

use crate::error::Result;

/// Radial cut-off of the rule: the density `r e^{−r²/2}` beyond it carries `e^{−50}` of the mass.
pub const RADIUS: f64 = 10.0;

/// Gauss–Legendre rule of `n` points on [−1, 1] (weights sum to 2): Golub–Welsch with faer's
/// self-adjoint eigensolver, each node then polished by Newton steps on the Legendre recurrence
/// and its weight taken from the closed form `2/((1 − x²) P_n'(x)²)`.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let jac = faer::Mat::<f64>::from_fn(n, n, |i, j| {
        if i + 1 == j || j + 1 == i {
            let k = i.max(j) as f64;
            k / (4.0 * k * k - 1.0).sqrt()
        } else {
            0.0
        }
    });
    let eig = jac
        .self_adjoint_eigen(faer::Side::Lower)
        .expect("the Jacobi matrix is symmetric and finite");
    let s = eig.S();
    let mut x: Vec<f64> = (0..n).map(|k| s[k]).collect();
    x.sort_by(f64::total_cmp);
    // (P_n(x), P_n'(x)) by the three-term recurrence
    let eval = |t: f64| -> (f64, f64) {
        let (mut p0, mut p1) = (1.0, t);
        if n == 0 {
            return (1.0, 0.0);
        }
        for k in 2..=n {
            let p2 = ((2 * k - 1) as f64 * t * p1 - (k - 1) as f64 * p0) / k as f64;
            p0 = p1;
            p1 = p2;
        }
        (p1, n as f64 * (t * p1 - p0) / (t * t - 1.0))
    };
    let mut w = vec![0.0; n];
    for k in 0..n {
        for _ in 0..2 {
            let (p, dp) = eval(x[k]);
            x[k] -= p / dp;
        }
        let (_, dp) = eval(x[k]);
        w[k] = 2.0 / ((1.0 - x[k] * x[k]) * dp * dp);
    }
    // exact symmetry about 0
    let xs: Vec<f64> = (0..n).map(|k| 0.5 * (x[k] - x[n - 1 - k])).collect();
    let ws: Vec<f64> = (0..n).map(|k| 0.5 * (w[k] + w[n - 1 - k])).collect();
    (xs, ws)
}

/// The polar product rule of degree `D`: radial nodes `r` with weights `wr` that include the
/// density `r e^{−r²/2}` and the `1/(2π)` of the angle, and Legendre nodes `a`/weights `wa`.
#[derive(Clone, Debug)]
pub struct PolarRule {
    /// Radial nodes.
    pub r: Vec<f64>,
    /// Radial weights (with the density and the `1/(2π)` of the angle).
    pub wr: Vec<f64>,
    /// Angular Legendre nodes on [−1, 1].
    pub a: Vec<f64>,
    /// Angular Legendre weights.
    pub wa: Vec<f64>,
}

impl PolarRule {
    /// The rule of degree `degree` (`degree` radial nodes, `degree/2` angular nodes per arc).
    pub fn new(degree: usize) -> Self {
        let (x, w) = gauss_legendre(degree.max(2));
        let half = 0.5 * RADIUS;
        let r: Vec<f64> = x.iter().map(|&t| half * (t + 1.0)).collect();
        let wr = r
            .iter()
            .zip(&w)
            .map(|(&rv, &wv)| half * wv * rv * (-0.5 * rv * rv).exp() / (2.0 * std::f64::consts::PI))
            .collect();
        let (a, wa) = gauss_legendre((degree / 2).max(2));
        PolarRule { r, wr, a, wa }
    }

    /// The angles `ϕ` and weights of the nodes of both arcs for angle `θ`.
    fn angles(&self, theta: f64) -> impl Iterator<Item = (f64, f64)> + '_ {
        let pi = std::f64::consts::PI;
        [(0.5 * pi, 0.5 * pi + theta), (0.5 * pi + theta, 1.5 * pi)]
            .into_iter()
            .flat_map(move |(lo, hi)| {
                let (mid, half) = (0.5 * (lo + hi), 0.5 * (hi - lo));
                self.a
                    .iter()
                    .zip(&self.wa)
                    .map(move |(&a, &w)| (mid + half * a, half * w))
            })
    }

    /// `(E[f(u)f(v)], E[f'(u)f'(v)])` at `(√q1, √q2, θ)` for every θ in `thetas`, where
    /// `fun(x, f, df)` writes `f(x)` and `f'(x)` for a batch of points (called once).
    pub fn expectations(
        &self,
        fun: impl Fn(&[f64], &mut [f64], &mut [f64]) -> Result<()>,
        sq1: f64,
        sq2: f64,
        thetas: &[f64],
    ) -> Result<Vec<(f64, f64)>> {
        let mut u = Vec::new();
        let mut v = Vec::new();
        let mut w = Vec::new();
        for &th in thetas {
            for (phi, wp) in self.angles(th) {
                let (cu, cv) = (phi.cos(), (phi - th).cos());
                for (&r, &wr) in self.r.iter().zip(&self.wr) {
                    u.push(sq1 * r * cu);
                    v.push(sq2 * r * cv);
                    w.push(wp * wr);
                }
            }
        }
        let m = u.len();
        // φ at u, −u, v, −v in one batch
        let mut x = Vec::with_capacity(4 * m);
        x.extend(u.iter().copied());
        x.extend(u.iter().map(|t| -t));
        x.extend(v.iter().copied());
        x.extend(v.iter().map(|t| -t));
        let mut f = vec![0.0; 4 * m];
        let mut df = vec![0.0; 4 * m];
        fun(&x, &mut f, &mut df)?;
        let per = m / thetas.len().max(1);
        Ok((0..thetas.len())
            .map(|t| {
                let (mut n, mut d) = (0.0, 0.0);
                for k in t * per..(t + 1) * per {
                    n += w[k] * (f[k] * f[2 * m + k] + f[m + k] * f[3 * m + k]);
                    d += w[k] * (df[k] * df[2 * m + k] + df[m + k] * df[3 * m + k]);
                }
                (n, d)
            })
            .collect())
    }
}

/// Nodes per panel of [`second_moments`].
const MOMENT_NODES: usize = 16;
/// Panel width of [`second_moments`] where `φ` varies (`|u| ≤` [`MOMENT_FINE`]), in units of `u`.
const MOMENT_PANEL: f64 = 0.25;
/// Half-width of the fine region of [`second_moments`]: beyond it the built-in functions are
/// smooth on the Gaussian's scale (saturated, or linear), so panels follow `√q`.
const MOMENT_FINE: f64 = 16.0;
/// The widest panel beyond [`MOMENT_FINE`] (while at most [`MOMENT_MAX_COARSE`] panels suffice).
const MOMENT_COARSE: f64 = 2.0;
/// The most panels beyond [`MOMENT_FINE`] on each side.
const MOMENT_MAX_COARSE: usize = 256;

/// `(E[φ(u)²], E[φ'(u)²])` for `u ~ N(0, q)`: the exact diagonal of a numerical activation's
/// kernels. Composite Gauss–Legendre ([`MOMENT_NODES`] nodes per panel) in `u` on
/// `[−R√q, R√q]` (`R` = [`RADIUS`]), panels edged at `u = 0` (so a kink or a jump of `φ'` there
/// costs no accuracy), [`MOMENT_PANEL`] wide (or `√q/4` when smaller) within [`MOMENT_FINE`] of 0
/// and `min(√q/4, 2)` beyond (at most [`MOMENT_MAX_COARSE`] panels a side): spectrally accurate for `φ` analytic in a strip of width ~1 around the real
/// axis on every panel, at any variance (unlike the polar rule of fixed degree, whose nodes grow
/// apart as `√q`). `fun(x, f, df)` writes `φ` and `φ'` at a batch of points (called once).
pub fn second_moments(q: f64, fun: impl FnOnce(&[f64], &mut [f64], &mut [f64]) -> Result<()>) -> Result<(f64, f64)> {
    use std::sync::OnceLock;
    static GL: OnceLock<(Vec<f64>, Vec<f64>)> = OnceLock::new();
    let (gx, gw) = GL.get_or_init(|| gauss_legendre(MOMENT_NODES));
    if q <= 0.0 {
        let (mut f, mut df) = ([0.0], [0.0]);
        fun(&[0.0], &mut f, &mut df)?;
        return Ok((f[0] * f[0], df[0] * df[0]));
    }
    let s = q.sqrt();
    let end = RADIUS * s;
    let fine = MOMENT_FINE.min(end);
    let (w_fine, w_coarse) = (MOMENT_PANEL.min(0.25 * s), (0.25 * s).min(MOMENT_COARSE));
    // panel edges on u ≥ 0 (mirrored below)
    let mut edges = vec![0.0];
    let n_fine = (fine / w_fine).ceil() as usize;
    edges.extend((1..=n_fine).map(|k| fine * k as f64 / n_fine as f64));
    if end > fine {
        let n_coarse = (((end - fine) / w_coarse).ceil() as usize).min(MOMENT_MAX_COARSE);
        edges.extend((1..=n_coarse).map(|k| fine + (end - fine) * k as f64 / n_coarse as f64));
    }
    let norm = 1.0 / (s * (2.0 * std::f64::consts::PI).sqrt());
    let (mut x, mut w) = (Vec::new(), Vec::new());
    for pair in edges.windows(2) {
        let (mid, half) = (0.5 * (pair[0] + pair[1]), 0.5 * (pair[1] - pair[0]));
        for (&t, &wt) in gx.iter().zip(gw) {
            let u = mid + half * t;
            let wu = half * wt * norm * (-0.5 * u * u / q).exp();
            x.extend([u, -u]);
            w.extend([wu, wu]);
        }
    }
    let mut f = vec![0.0; x.len()];
    let mut df = vec![0.0; x.len()];
    fun(&x, &mut f, &mut df)?;
    let (mut ef, mut ed) = (0.0, 0.0);
    for k in 0..x.len() {
        ef += w[k] * f[k] * f[k];
        ed += w[k] * df[k] * df[k];
    }
    Ok((ef, ed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_moments_match_closed_forms_at_every_variance() {
        // closed forms: φ(u) = u (E = q, E' = 1); φ(u) = max(u, 0) (E = q/2, E' = 1/2, a kink
        // at 0); φ = sin: E[sin²] = (1 − e^{−2q})/2, E[cos²] = (1 + e^{−2q})/2
        for &q in &[1e-8, 1e-3, 0.3, 1.0, 9.0, 36.0, 400.0, 1e4, 1e8] {
            let lin = second_moments(q, |x, f, df| {
                f.copy_from_slice(x);
                df.fill(1.0);
                Ok(())
            })
            .unwrap();
            assert!(
                (lin.0 - q).abs() <= 1e-13 * q && (lin.1 - 1.0).abs() <= 1e-13,
                "{q}: {lin:?}"
            );
            let relu = second_moments(q, |x, f, df| {
                for k in 0..x.len() {
                    (f[k], df[k]) = (x[k].max(0.0), if x[k] > 0.0 { 1.0 } else { 0.0 });
                }
                Ok(())
            })
            .unwrap();
            assert!(
                (relu.0 - 0.5 * q).abs() <= 1e-13 * q && (relu.1 - 0.5).abs() <= 1e-13,
                "{q}: {relu:?}"
            );
            let sin = second_moments(q, |x, f, df| {
                for k in 0..x.len() {
                    (f[k], df[k]) = (x[k].sin(), x[k].cos());
                }
                Ok(())
            })
            .unwrap();
            if q > 1e4 {
                continue; // sin oscillates on panels wider than its period there
            }
            let e = (-2.0 * q).exp();
            assert!((sin.0 - 0.5 * (1.0 - e)).abs() <= 1e-13, "{q}: {sin:?}");
            assert!((sin.1 - 0.5 * (1.0 + e)).abs() <= 1e-13, "{q}: {sin:?}");
        }
    }

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        let (x, w) = gauss_legendre(12);
        for k in 0..24 {
            let m: f64 = x.iter().zip(&w).map(|(&xi, &wi)| wi * xi.powi(k)).sum();
            let want = if k % 2 == 1 { 0.0 } else { 2.0 / (k + 1) as f64 };
            assert!((m - want).abs() < 1e-14, "moment {k}: {m}");
        }
    }

    #[test]
    fn polar_rule_is_exact_for_relu_like_kinks() {
        // E[relu(u) relu(v)] = √(q1q2)(sin θ + (π − θ) cos θ)/(2π) and E[step step] = (π − θ)/(2π)
        let rule = PolarRule::new(48);
        let relu = |x: &[f64], f: &mut [f64], df: &mut [f64]| -> Result<()> {
            for k in 0..x.len() {
                f[k] = x[k].max(0.0);
                df[k] = if x[k] > 0.0 { 1.0 } else { 0.0 };
            }
            Ok(())
        };
        for th in [0.0, 0.4, std::f64::consts::FRAC_PI_2, 2.9, std::f64::consts::PI] {
            let (n, d) = rule.expectations(relu, 1.3, 0.7, &[th]).unwrap()[0];
            let pi = std::f64::consts::PI;
            let want = 1.3 * 0.7 * (th.sin() + (pi - th) * th.cos()) / (2.0 * pi);
            assert!((n - want).abs() < 1e-13, "θ={th}: {n} vs {want}");
            assert!((d - (pi - th) / (2.0 * pi)).abs() < 1e-13);
        }
    }
}
