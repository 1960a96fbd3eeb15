//! Activations and their kernel maps.
//!
//! For a centred Gaussian pair `(u, v)` with `Var u = q1`, `Var v = q2`, `Cov(u, v) = c`
//! (correlation `ρ = c/√(q1 q2)`, angle `θ = acos ρ`), an activation `φ` maps the kernels of the
//! `Dense` output before it (eqs. 12 and 26 of the seed derivation) to
//!
//! * `nngp = E[φ(u) φ(v)]` (the next Σ), and
//! * `dot  = E[φ'(u) φ'(v)]` (Σ̇), so that `ntk ↦ ntk · dot`.
//!
//! Every map lives in [`Plan::row`], one arm per activation, each with the equation it implements.

use std::f64::consts::PI;

use crate::error::{Error, Result};
use crate::quadrature::{NumericPlan, Pointwise};
use crate::vmath::Real;

/// A pointwise nonlinearity with a closed-form or numerically integrated kernel map.
#[derive(Clone, Debug)]
pub enum Activation {
    /// `φ(x) = x`.
    Identity,
    /// `φ(x) = a·min(x, 0) + b·max(x, 0)`; `Relu` is `(0, 1)`, `LeakyRelu(α)` is `(α, 1)`,
    /// `Abs` is `(-1, 1)`.
    ABRelu { a: f64, b: f64 },
    /// `φ(x) = a·erf(b·x) + c`.
    Erf { a: f64, b: f64, c: f64 },
    /// `φ(x) = x·Φ(x)` (exact GELU).
    Gelu,
    /// `φ(x) = a·sin(b·x + c)`; `Cos` and `Rbf` are special cases.
    Sin { a: f64, b: f64, c: f64 },
    /// `φ(x) = a·exp(b·x)`.
    Exp { a: f64, b: f64 },
    /// `φ(x) = a·exp(b·x²)`.
    Gaussian { a: f64, b: f64 },
    /// `φ(x) = sign(x)`; its derivative is taken as 0 (almost everywhere), so the NTK after it is 0.
    Sign,
    /// `φ(x) = (x ≥ 0)·x^degree` (arc-cosine kernels of Cho & Saul 2009).
    RectifiedMonomial { degree: u32 },
    /// `φ(x) = Σ_k coef[k]·x^k`; `Monomial` and `Hermite` are special cases.
    Polynomial { coef: Vec<f64> },
    /// Any pointwise function, integrated by the polar rule of [`crate::quadrature`] of the given degree.
    Numerical { f: Pointwise, degree: usize },
}

/// The quadrature degree used by numerical activations unless one is given.
pub const DEFAULT_QUAD_DEGREE: usize = 48;
/// Largest supported quadrature degree.
pub const MAX_QUAD_DEGREE: usize = 256;
/// Largest supported polynomial degree.
pub const MAX_POLY_DEGREE: usize = 32;

fn finite(arg: &'static str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::arg(arg, format!("must be a finite number, got {v}")))
    }
}

impl Activation {
    /// `max(x, 0)`, without the factor 2 of He scaling (use `W_std = √2` for that).
    pub fn relu() -> Self {
        Activation::ABRelu { a: 0.0, b: 1.0 }
    }
    /// `x` for `x > 0`, `α·x` otherwise.
    pub fn leaky_relu(alpha: f64) -> Result<Self> {
        Ok(Activation::ABRelu {
            a: finite("alpha", alpha)?,
            b: 1.0,
        })
    }
    /// `a·min(x, 0) + b·max(x, 0)`.
    pub fn ab_relu(a: f64, b: f64) -> Result<Self> {
        Ok(Activation::ABRelu {
            a: finite("a", a)?,
            b: finite("b", b)?,
        })
    }
    /// `|x|`.
    pub fn abs() -> Self {
        Activation::ABRelu { a: -1.0, b: 1.0 }
    }
    /// `a·erf(b·x) + c`.
    pub fn erf(a: f64, b: f64, c: f64) -> Result<Self> {
        Ok(Activation::Erf {
            a: finite("a", a)?,
            b: finite("b", b)?,
            c: finite("c", c)?,
        })
    }
    /// neural-tangents' `Sigmoid_like`: `Erf(a=0.5, b=1/2.4020563531719796, c=0.5)`.
    pub fn sigmoid_like() -> Self {
        Activation::Erf {
            a: 0.5,
            b: 1.0 / 2.4020563531719796,
            c: 0.5,
        }
    }
    /// `a·sin(b·x + c)`.
    pub fn sin(a: f64, b: f64, c: f64) -> Result<Self> {
        Ok(Activation::Sin {
            a: finite("a", a)?,
            b: finite("b", b)?,
            c: finite("c", c)?,
        })
    }
    /// `a·cos(b·x + c) = a·sin(b·x + c + π/2)`.
    pub fn cos(a: f64, b: f64, c: f64) -> Result<Self> {
        Self::sin(a, b, finite("c", c)? + PI / 2.0)
    }
    /// Random Fourier features `√2·sin(√(2γ)·x + π/4)`, whose NNGP is `exp(-γ‖·‖²)`-like.
    pub fn rbf(gamma: f64) -> Result<Self> {
        if !(gamma.is_finite() && gamma >= 0.0) {
            return Err(Error::arg("gamma", format!("must be a finite number ≥ 0, got {gamma}")));
        }
        Ok(Activation::Sin {
            a: 2f64.sqrt(),
            b: (2.0 * gamma).sqrt(),
            c: PI / 4.0,
        })
    }
    /// `a·exp(b·x)`.
    pub fn exp(a: f64, b: f64) -> Result<Self> {
        Ok(Activation::Exp {
            a: finite("a", a)?,
            b: finite("b", b)?,
        })
    }
    /// `a·exp(b·x²)`.
    pub fn gaussian(a: f64, b: f64) -> Result<Self> {
        Ok(Activation::Gaussian {
            a: finite("a", a)?,
            b: finite("b", b)?,
        })
    }
    /// `x^degree`.
    pub fn monomial(degree: usize) -> Result<Self> {
        check_poly_degree(degree)?;
        let mut coef = vec![0.0; degree + 1];
        coef[degree] = 1.0;
        Ok(Activation::Polynomial { coef })
    }
    /// `Σ_k coef[k]·x^k` (numpy's `Polynomial` order).
    pub fn polynomial(coef: Vec<f64>) -> Result<Self> {
        if coef.is_empty() {
            return Err(Error::arg("coef", "needs at least one coefficient"));
        }
        check_poly_degree(coef.len() - 1)?;
        for &c in &coef {
            finite("coef", c)?;
        }
        Ok(Activation::Polynomial { coef })
    }
    /// The probabilists' Hermite polynomial `He_n(x)/√(n!)`, normalised in L²(N(0, 1)).
    pub fn hermite(degree: usize) -> Result<Self> {
        check_poly_degree(degree)?;
        // He_{k+1} = x He_k − k He_{k−1}
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
        Ok(Activation::Polynomial {
            coef: cur.into_iter().map(|c| c / norm).collect(),
        })
    }
    /// `(x ≥ 0)·x^degree`.
    pub fn rectified_monomial(degree: usize) -> Result<Self> {
        check_poly_degree(degree)?;
        Ok(Activation::RectifiedMonomial { degree: degree as u32 })
    }
    /// A pointwise function integrated numerically by the polar rule of degree `degree`.
    pub fn numerical(f: Pointwise, degree: usize) -> Result<Self> {
        if !(2..=MAX_QUAD_DEGREE).contains(&degree) {
            return Err(Error::arg(
                "quad_degree",
                format!("must be between 2 and {MAX_QUAD_DEGREE}, got {degree}"),
            ));
        }
        Ok(Activation::Numerical { f, degree })
    }

    /// A short human-readable name.
    pub fn name(&self) -> String {
        match self {
            Activation::Identity => "Identity".into(),
            Activation::ABRelu { a, b } => format!("ABRelu(a={a}, b={b})"),
            Activation::Erf { a, b, c } => format!("Erf(a={a}, b={b}, c={c})"),
            Activation::Gelu => "Gelu".into(),
            Activation::Sin { a, b, c } => format!("Sin(a={a}, b={b}, c={c})"),
            Activation::Exp { a, b } => format!("Exp(a={a}, b={b})"),
            Activation::Gaussian { a, b } => format!("Gaussian(a={a}, b={b})"),
            Activation::Sign => "Sign".into(),
            Activation::RectifiedMonomial { degree } => format!("RectifiedMonomial({degree})"),
            Activation::Polynomial { coef } => format!("Polynomial({coef:?})"),
            Activation::Numerical { f, degree } => format!("{}(quad_degree={degree})", f.name()),
        }
    }

    /// The kernel maps at scalar arguments: `(E[φ(u)φ(v)], E[φ'(u)φ'(v)])` for
    /// `Var u = q1`, `Var v = q2`, `Cov(u, v) = c`. `|c|` is clamped to `√(q1 q2)`.
    ///
    /// ```
    /// use ntkrs_core::Activation;
    /// let (nngp, dot) = Activation::relu().maps(1.0, 1.0, 0.0).unwrap();
    /// assert!((nngp - 1.0 / (2.0 * std::f64::consts::PI)).abs() < 1e-15);
    /// assert!((dot - 0.25).abs() < 1e-15);
    /// ```
    pub fn maps(&self, q1: f64, q2: f64, c: f64) -> Result<(f64, f64)> {
        for (arg, v) in [("var1", q1), ("var2", q2)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::arg(arg, format!("variances must be finite and ≥ 0, got {v}")));
            }
        }
        if !c.is_finite() {
            return Err(Error::arg("cov", format!("must be finite, got {c}")));
        }
        let plan = Plan::<f64>::new(self, &[q1, q2], false)?;
        let s1 = Samples::new(&plan, &[q1])?;
        let s2 = Samples::new(&plan, &[q2])?;
        let mut cv = [c];
        let mut tv = [1.0];
        let mut scratch = Scratch::new(1);
        plan.row::<true>(&s1, 0, &s2, 0, &mut cv, &mut tv, &mut scratch);
        if !(cv[0].is_finite() && tv[0].is_finite()) {
            return Err(Error::NonFinite(format!(
                "{} has no finite kernel at var1={q1}, var2={q2}, cov={c}",
                self.name()
            )));
        }
        Ok((cv[0], tv[0]))
    }
}

impl Activation {
    /// The function itself at every `z`: `phi[k] = φ(z[k])` and, when asked, `dphi[k] = φ'(z[k])`
    /// (the finite-width forward and backward passes of [`crate::empirical`]).
    ///
    /// Where φ has a kink the derivative is the one neural-tangents' networks get from JAX's
    /// autodiff: the mean of the one-sided slopes for `ABRelu` (`Relu'(0) = 1/2`, `Abs'(0) = 0`),
    /// `RectifiedMonomial(1)'(0) = 1`, and 0 for `Sign` and the step `RectifiedMonomial(0)`.
    ///
    /// ```
    /// use ntkrs_core::Activation;
    /// let (mut f, mut df) = ([0.0; 3], [0.0; 3]);
    /// Activation::relu().eval(&[-1.0f64, 0.0, 2.0], &mut f, Some(&mut df)).unwrap();
    /// assert_eq!((f, df), ([0.0, 0.0, 2.0], [0.0, 0.5, 1.0]));
    /// ```
    pub fn eval<T: Real>(&self, z: &[T], phi: &mut [T], mut dphi: Option<&mut [T]>) -> Result<()> {
        let n = z.len();
        debug_assert!(phi.len() == n && dphi.as_ref().is_none_or(|d| d.len() == n));
        let c = T::from_f64;
        // one closure per activation: (φ(x), φ'(x))
        let mut each = |g: &dyn Fn(T) -> (T, T)| match dphi {
            Some(ref mut d) => {
                for k in 0..n {
                    (phi[k], d[k]) = g(z[k]);
                }
            }
            None => {
                for k in 0..n {
                    phi[k] = g(z[k]).0;
                }
            }
        };
        match self {
            // φ = x
            Activation::Identity => each(&|x| (x, T::ONE)),
            // φ = a·min(x, 0) + b·max(x, 0); φ'(0) = (a + b)/2
            Activation::ABRelu { a, b } => {
                let (a, b, m) = (c(*a), c(*b), c(0.5 * (a + b)));
                each(&|x| {
                    let f = a * x.min(T::ZERO) + b * x.max(T::ZERO);
                    let d = T::select(x > T::ZERO, b, T::select(x < T::ZERO, a, m));
                    (f, d)
                })
            }
            // φ = a·erf(b·x) + c; φ' = a·b·2/√π·exp(−b²x²)
            Activation::Erf { a, b, c: off } => {
                let (a, b, off) = (c(*a), c(*b), c(*off));
                let k = a * b * c(std::f64::consts::FRAC_2_SQRT_PI);
                each(&|x| ((b * x).verf() * a + off, k * (-(b * x) * (b * x)).vexp()))
            }
            // φ = x·Φ(x); φ' = Φ(x) + x·ϕ(x)
            Activation::Gelu => {
                let (r2, rpi) = (
                    c(std::f64::consts::FRAC_1_SQRT_2),
                    c(0.5 * std::f64::consts::FRAC_2_SQRT_PI),
                );
                each(&|x| {
                    let cdf = T::HALF * (T::ONE + (x * r2).verf());
                    let pdf = rpi * r2 * (-(x * x) * T::HALF).vexp();
                    (x * cdf, cdf + x * pdf)
                })
            }
            // φ = a·sin(b·x + c); φ' = a·b·cos(b·x + c)
            Activation::Sin { a, b, c: off } => {
                let (a, b, off) = (c(*a), c(*b), c(*off));
                each(&|x| {
                    let t = b * x + off;
                    (a * t.vsin(), a * b * t.vcos())
                })
            }
            // φ = a·exp(b·x); φ' = a·b·exp(b·x)
            Activation::Exp { a, b } => {
                let (a, b) = (c(*a), c(*b));
                each(&|x| {
                    let e = (b * x).vexp();
                    (a * e, a * b * e)
                })
            }
            // φ = a·exp(b·x²); φ' = 2·a·b·x·exp(b·x²)
            Activation::Gaussian { a, b } => {
                let (a, b) = (c(*a), c(*b));
                each(&|x| {
                    let e = (b * x * x).vexp();
                    (a * e, T::TWO * a * b * x * e)
                })
            }
            // φ = sign(x) (sign(0) = 0); φ' = 0
            Activation::Sign => each(&|x| {
                let s = T::select(x > T::ZERO, T::ONE, T::select(x < T::ZERO, -T::ONE, T::ZERO));
                (s, T::ZERO)
            }),
            // φ = (x ≥ 0)·x^n; φ' = (x ≥ 0)·n·x^(n−1) (1 at 0 for n = 1, 0 for n = 0)
            Activation::RectifiedMonomial { degree } => {
                let n = *degree as i32;
                each(&|x| {
                    let pos = x >= T::ZERO;
                    let f = T::select(pos, powi(x, n), T::ZERO);
                    let d = if n == 0 {
                        T::ZERO
                    } else {
                        T::select(pos, c(n as f64) * powi(x, n - 1), T::ZERO)
                    };
                    (f, d)
                })
            }
            // φ = Σ coef[k]·x^k (Horner), φ' = Σ k·coef[k]·x^(k−1)
            Activation::Polynomial { coef } => {
                let cf: Vec<T> = coef.iter().map(|&v| c(v)).collect();
                each(&|x| {
                    let (mut f, mut d) = (T::ZERO, T::ZERO);
                    for &ck in cf.iter().rev() {
                        d = d * x + f;
                        f = f * x + ck;
                    }
                    (f, d)
                })
            }
            // the numerical activations' own function and derivative, in f64
            Activation::Numerical { f, .. } => {
                let x: Vec<f64> = z.iter().map(|v| v.to_f64()).collect();
                let (mut fv, mut dv) = (vec![0.0; n], vec![0.0; n]);
                f.eval(&x, &mut fv, &mut dv)?;
                for k in 0..n {
                    phi[k] = c(fv[k]);
                }
                if let Some(d) = dphi {
                    for k in 0..n {
                        d[k] = c(dv[k]);
                    }
                }
            }
        }
        Ok(())
    }
}

/// `x^n` for `n ≥ 0` by repeated multiplication (`x^0 = 1`).
#[inline(always)]
fn powi<T: Real>(x: T, n: i32) -> T {
    let mut r = T::ONE;
    for _ in 0..n.max(0) {
        r *= x;
    }
    r
}

impl Activation {
    /// [`Activation::maps`] at many points, `(var1[k], var2[k], cov[k])`, with one plan for all
    /// of them (numerical activations build their tables once). `cancelled` is polled every 1024
    /// entries.
    pub fn maps_many(
        &self,
        q1: &[f64],
        q2: &[f64],
        c: &[f64],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = q1.len();
        if q2.len() != n || c.len() != n {
            return Err(Error::arg("var1, var2, cov", "must have the same length"));
        }
        for (arg, vs) in [("var1", q1), ("var2", q2)] {
            if let Some(v) = vs.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                return Err(Error::arg(arg, format!("variances must be finite and ≥ 0, got {v}")));
            }
        }
        if let Some(v) = c.iter().find(|v| !v.is_finite()) {
            return Err(Error::arg("cov", format!("must be finite, got {v}")));
        }
        if n == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let all: Vec<f64> = q1.iter().chain(q2).copied().collect();
        let plan = Plan::<f64>::new(self, &all, false)?;
        let s1 = Samples::new(&plan, q1)?;
        let s2 = Samples::new(&plan, q2)?;
        let mut cv = c.to_vec();
        let mut tv = vec![1.0; n];
        let mut scratch = Scratch::new(1);
        for k in 0..n {
            if k % 1024 == 0 && cancelled() {
                return Err(Error::Cancelled);
            }
            plan.row::<true>(&s1, k, &s2, k, &mut cv[k..k + 1], &mut tv[k..k + 1], &mut scratch);
            if !(cv[k].is_finite() && tv[k].is_finite()) {
                return Err(Error::NonFinite(format!(
                    "{} has no finite kernel at var1={}, var2={}, cov={}",
                    self.name(),
                    q1[k],
                    q2[k],
                    c[k]
                )));
            }
        }
        Ok((cv, tv))
    }
}

fn check_poly_degree(degree: usize) -> Result<()> {
    if degree > MAX_POLY_DEGREE {
        return Err(Error::arg(
            "degree",
            format!("must be between 0 and {MAX_POLY_DEGREE}, got {degree}"),
        ));
    }
    Ok(())
}

/// Per-sample quantities of one layer: the pre-activation variance `q`, `√q`, `1/√q` (0 when
/// `q = 0`) and activation-specific values `aux[k * n + i]`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Samples<T> {
    pub q: Vec<T>,
    pub sq: Vec<T>,
    pub rsq: Vec<T>,
    pub aux: Vec<T>,
    pub n: usize,
}

impl<T: Real> Samples<T> {
    /// Samples for the variances `q` under `plan` (computed in f64, stored as `T`).
    ///
    /// A variance whose square root is not a normal number of `T` (a subnormal scale) counts as
    /// 0, so that `1/√q` stays finite: such samples have the kernel of the zero input.
    pub fn new(plan: &Plan<f64>, q: &[f64]) -> Result<Self> {
        let n = q.len();
        let tiny = T::MIN_POSITIVE.to_f64();
        let q: Vec<f64> = q.iter().map(|&v| if v.sqrt() < tiny { 0.0 } else { v }).collect();
        let sq: Vec<f64> = q.iter().map(|&v| v.sqrt()).collect();
        let rsq: Vec<f64> = sq.iter().map(|&s| if s > 0.0 { 1.0 / s } else { 0.0 }).collect();
        let cast = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect();
        let aux = plan.aux(&q)?;
        Ok(Samples {
            q: cast(&q),
            sq: cast(&sq),
            rsq: cast(&rsq),
            aux: cast(&aux),
            n,
        })
    }

    /// The same samples in precision `U`.
    pub fn cast<U: Real>(&self) -> Samples<U> {
        let c = |v: &[T]| v.iter().map(|&x| U::from_f64(x.to_f64())).collect::<Vec<U>>();
        // the same guard as `new`, for the narrower type: a √q below U's normal range counts as 0
        let tiny = U::MIN_POSITIVE.to_f64();
        let zero: Vec<bool> = self.sq.iter().map(|&s| s.to_f64() < tiny).collect();
        let guard = |v: Vec<U>| {
            v.into_iter()
                .zip(&zero)
                .map(|(x, &z)| if z { U::ZERO } else { x })
                .collect()
        };
        Samples {
            q: guard(c(&self.q)),
            sq: guard(c(&self.sq)),
            rsq: guard(c(&self.rsq)),
            aux: c(&self.aux),
            n: self.n,
        }
    }

    #[inline(always)]
    pub fn aux(&self, k: usize) -> &[T] {
        &self.aux[k * self.n..(k + 1) * self.n]
    }
}

/// Scratch rows for the activations that evaluate in several passes.
pub(crate) struct Scratch<T> {
    pub a: Vec<T>,
    pub b: Vec<T>,
    pub c: Vec<T>,
    pub d: Vec<T>,
    pub e: Vec<T>,
    pub f: Vec<T>,
}

impl<T: Real> Scratch<T> {
    pub fn new(len: usize) -> Self {
        let v = || vec![T::ZERO; len];
        Scratch {
            a: v(),
            b: v(),
            c: v(),
            d: v(),
            e: v(),
            f: v(),
        }
    }
}

/// An activation prepared for evaluation in precision `T`: constants folded, tables built.
#[derive(Clone, Debug)]
pub(crate) enum Plan<T> {
    Identity,
    ABRelu {
        amb2: T,
        ab: T,
    },
    Erf {
        a2: T,
        c2: T,
        b2: T,
        a2b2: T,
    },
    Gelu,
    Sin {
        a2: T,
        b2: T,
        // 1 − cos(2c0) = 2 sin²c0 and 1 + cos(2c0) = 2 cos²c0, exact for any c0
        one_minus: T,
        one_plus: T,
    },
    Exp {
        a2: T,
        b2: T,
    },
    Gaussian {
        a2: T,
        b: T,
    },
    Sign,
    RectMono {
        n: u32,
        p: Vec<T>,
        q: Vec<T>,
        pd: Vec<T>,
        qd: Vec<T>,
    },
    Poly {
        r: Vec<Vec<f64>>,
        deg: usize,
    },
    Numeric(NumericPlan<T>),
}

/// Coefficients of `J_n(θ) = P_n(cos θ)·(π − θ) + Q_n(cos θ)·sin θ`, the arc-cosine kernel
/// `E[relu(u)^n relu(v)^n] = (q1 q2)^{n/2} J_n(θ) / (2π)` (Cho & Saul 2009), from
/// `J_n = (−1)^n sin^{2n+1}θ · ((1/sin θ) d/dθ)^n ((π − θ)/sin θ)`, which gives
/// `P_{n+1} = −(1−c²) P_n' − (2n+1) c P_n` and `Q_{n+1} = −(1−c²) Q_n' − 2n c Q_n − P_n`
/// before the sign `(−1)^n` is applied. Coefficients are in increasing powers of `c = cos θ`.
fn arc_cosine_coefficients(n: u32) -> (Vec<f64>, Vec<f64>) {
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

fn horner(p: &[f64], x: f64) -> f64 {
    p.iter().rev().fold(0.0, |acc, &a| acc * x + a)
}

impl Plan<f64> {
    /// Prepare `act` for pre-activation variances `qs` (all samples of the layer, both inputs);
    /// `tables`: numerical activations may build their equal-norm angle table.
    pub fn new(act: &Activation, qs: &[f64], tables: bool) -> Result<Self> {
        Ok(match *act {
            Activation::Identity => Plan::Identity,
            Activation::ABRelu { a, b } => Plan::ABRelu {
                amb2: (b - a) * (b - a),
                ab: a * b,
            },
            Activation::Erf { a, b, c } => Plan::Erf {
                a2: a * a,
                c2: c * c,
                b2: b * b,
                a2b2: a * a * b * b,
            },
            Activation::Gelu => Plan::Gelu,
            Activation::Sin { a, b, c } => Plan::Sin {
                a2: a * a,
                b2: b * b,
                one_minus: 2.0 * c.sin() * c.sin(),
                one_plus: 2.0 * c.cos() * c.cos(),
            },
            Activation::Exp { a, b } => Plan::Exp { a2: a * a, b2: b * b },
            Activation::Gaussian { a, b } => {
                let qmax = qs.iter().cloned().fold(0.0, f64::max);
                if b > 0.0 && 4.0 * b * qmax >= 1.0 {
                    return Err(Error::NonFinite(format!(
                        "Gaussian(a={a}, b={b}): E[exp(b(u²+v²))] diverges for pre-activation \
                         variance {qmax:.6e} (it needs 4·b·variance < 1); use b ≤ 0 or smaller W_std/b_std"
                    )));
                }
                Plan::Gaussian { a2: a * a, b }
            }
            Activation::Sign => Plan::Sign,
            Activation::RectifiedMonomial { degree } => {
                let (p, q) = arc_cosine_coefficients(degree);
                let (pd, qd) = if degree > 0 {
                    arc_cosine_coefficients(degree - 1)
                } else {
                    (vec![0.0], vec![0.0])
                };
                Plan::RectMono {
                    n: degree,
                    p,
                    q,
                    pd,
                    qd,
                }
            }
            Activation::Polynomial { ref coef } => Plan::Poly {
                r: hermite_projection(coef),
                deg: coef.len() - 1,
            },
            Activation::Numerical { ref f, degree } => Plan::Numeric(NumericPlan::new(f, degree, qs, tables)?),
        })
    }

    /// Number of per-sample auxiliary values.
    pub fn n_aux(&self) -> usize {
        match self {
            Plan::Erf { .. } => 2,
            Plan::RectMono { .. } => 2,
            Plan::Poly { deg, .. } => deg + 1,
            _ => 0,
        }
    }

    /// The per-sample auxiliary values at pre-activation variances `qs`, laid out `[k * n + i]`.
    pub fn aux(&self, qs: &[f64]) -> Result<Vec<f64>> {
        let n = qs.len();
        let mut out = vec![0.0; self.n_aux() * n];
        match self {
            // r = 1/√(1 + 2b²q) and √q·r (both bounded, whatever q)
            Plan::Erf { b2, .. } => {
                for (i, &q) in qs.iter().enumerate() {
                    let r = 1.0 / (1.0 + 2.0 * b2 * q).sqrt();
                    out[i] = r;
                    out[n + i] = q.sqrt() * r;
                }
            }
            // q^{n/2}/√(2π) and n·q^{(n−1)/2}/√(2π): their products over two samples are the
            // prefactors (q1q2)^{n/2}/(2π) and n²(q1q2)^{(n−1)/2}/(2π)
            Plan::RectMono { n: deg, .. } => {
                let k = *deg as i32;
                let norm = (2.0 * PI).sqrt();
                for (i, &q) in qs.iter().enumerate() {
                    let sq = q.sqrt();
                    out[i] = sq.powi(k) / norm;
                    out[n + i] = if k > 0 { k as f64 * sq.powi(k - 1) / norm } else { 0.0 };
                }
            }
            Plan::Poly { r, .. } => {
                for (l, p) in r.iter().enumerate() {
                    for (i, &q) in qs.iter().enumerate() {
                        out[l * n + i] = horner(p, q);
                    }
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// The same plan in precision `T`.
    pub fn cast<T: Real>(&self) -> Plan<T> {
        let t = T::from_f64;
        let v = |x: &[f64]| x.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
        match self {
            Plan::Identity => Plan::Identity,
            Plan::ABRelu { amb2, ab } => Plan::ABRelu {
                amb2: t(*amb2),
                ab: t(*ab),
            },
            Plan::Erf { a2, c2, b2, a2b2 } => Plan::Erf {
                a2: t(*a2),
                c2: t(*c2),
                b2: t(*b2),
                a2b2: t(*a2b2),
            },
            Plan::Gelu => Plan::Gelu,
            Plan::Sin {
                a2,
                b2,
                one_minus,
                one_plus,
            } => Plan::Sin {
                a2: t(*a2),
                b2: t(*b2),
                one_minus: t(*one_minus),
                one_plus: t(*one_plus),
            },
            Plan::Exp { a2, b2 } => Plan::Exp { a2: t(*a2), b2: t(*b2) },
            Plan::Gaussian { a2, b } => Plan::Gaussian { a2: t(*a2), b: t(*b) },
            Plan::Sign => Plan::Sign,
            Plan::RectMono { n, p, q, pd, qd } => Plan::RectMono {
                n: *n,
                p: v(p),
                q: v(q),
                pd: v(pd),
                qd: v(qd),
            },
            Plan::Poly { r, deg } => Plan::Poly {
                r: r.clone(),
                deg: *deg,
            },
            Plan::Numeric(n) => Plan::Numeric(n.cast()),
        }
    }
}

/// Correlation `ρ = c/(√q1 √q2)` clamped to [−1, 1] (0 when a variance is 0), and `c̃ = ρ √q1 √q2`.
/// The exact diagonal (`c = q1 = q2`, which the tile and diagonal paths produce bitwise) gives
/// `ρ = 1` exactly, and within 2ε of ±1 `ρ` snaps to ±1: there `acos` turns one rounding error of
/// `ρ` into `√ε`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn corr<T: Real>(c: T, q1: T, sq1: T, rsq1: T, q2: T, sq2: T, rsq2: T) -> (T, T) {
    let r = c * rsq1 * rsq2;
    let edge = T::ONE - T::TWO * T::EPSILON;
    let one = T::select(r > T::ZERO, T::ONE, -T::ONE);
    let snapped = T::select(r.abs() >= edge, one, r);
    let diag = c == q1 && c == q2 && c > T::ZERO;
    let rho = T::select(diag, T::ONE, snapped);
    (rho, rho * sq1 * sq2)
}

/// `√(1 − ρ²)` computed as `√((1 − ρ)(1 + ρ))`.
#[inline(always)]
fn sin_of<T: Real>(rho: T) -> T {
    ((T::ONE - rho) * (T::ONE + rho)).max(T::ZERO).sqrt()
}

/// Horner over a coefficient list, vectorised across the row: `out[j] = Σ_k p[k] x[j]^k`.
#[inline(always)]
fn horner_row<T: Real>(p: &[T], x: &[T], out: &mut [T]) {
    let top = *p.last().unwrap_or(&T::ZERO);
    for o in out.iter_mut() {
        *o = top;
    }
    for &a in p.iter().rev().skip(1) {
        for (o, &xv) in out.iter_mut().zip(x) {
            *o = *o * xv + a;
        }
    }
}

impl<T: Real> Plan<T> {
    /// Apply the map to one row: entries `(i, j0 + j)` with `c[j]` the pre-activation covariance
    /// (overwritten by the NNGP) and `t[j]` the NTK (multiplied by `dot` when `NTK`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn row<const NTK: bool>(
        &self,
        s1: &Samples<T>,
        i: usize,
        s2: &Samples<T>,
        j0: usize,
        c: &mut [T],
        t: &mut [T],
        scr: &mut Scratch<T>,
    ) {
        let len = c.len();
        let (q1, sq1, rsq1) = (s1.q[i], s1.sq[i], s1.rsq[i]);
        let q2 = &s2.q[j0..j0 + len];
        let sq2 = &s2.sq[j0..j0 + len];
        let rsq2 = &s2.rsq[j0..j0 + len];
        let t = &mut t[..len];
        let inv_2pi = T::from_f64(0.5 * std::f64::consts::FRAC_1_PI);
        match self {
            // φ = x: E[uv] = c, E[1·1] = 1.
            Plan::Identity => {}
            // ABRelu: E = (b−a)²·√(q1q2)(sin θ + (π−θ)cos θ)/(2π) + ab·c ; dot = ab + (b−a)²(π−θ)/(2π)
            Plan::ABRelu { amb2, ab } => {
                let (amb2, ab) = (*amb2, *ab);
                for j in 0..len {
                    let (rho, ct) = corr(c[j], q1, sq1, rsq1, q2[j], sq2[j], rsq2[j]);
                    let theta = rho.vacos();
                    let s = sin_of(rho);
                    let pmt = (T::PI - theta) * inv_2pi;
                    c[j] = amb2 * sq1 * sq2[j] * (s * inv_2pi + pmt * rho) + ab * ct;
                    if NTK {
                        t[j] *= ab + amb2 * pmt;
                    }
                }
            }
            // Erf: with r = 1/√(1 + 2b²q) and z = 2b²·c·r1·r2:
            //   E = a²(2/π)·asin z + c0² ; dot = (4a²b²/π)·r1 r2/√(1 − z²), where
            //   1 − z² = r1²r2² + 2b²(q1 r1² r2² + q2 r2² r1²) + 4b⁴ q1 r1² q2 r2² (1 − ρ²)
            //   is summed from bounded terms (no overflow at huge q, no cancellation at ρ → 1)
            Plan::Erf { a2, c2, b2, a2b2 } => {
                let (a2, c2, b2, a2b2) = (*a2, *c2, *b2, *a2b2);
                let (r1, u1) = (s1.aux(0)[i], s1.aux(1)[i]);
                let r2 = &s2.aux(0)[j0..j0 + len];
                let u2 = &s2.aux(1)[j0..j0 + len];
                let four_over_pi = T::TWO * T::TWO / T::PI;
                for j in 0..len {
                    let (rho, _) = corr(c[j], q1, sq1, rsq1, q2[j], sq2[j], rsq2[j]);
                    // z = 2b² ρ (√q1 r1)(√q2 r2)
                    let z = (T::TWO * b2 * rho * u1 * u2[j]).clamp_unit();
                    c[j] = a2 * (T::TWO / T::PI) * z.vasin() + c2;
                    if NTK {
                        let rr = r1 * r2[j];
                        let one_minus_z2 = rr * rr
                            + T::TWO * b2 * (u1 * u1 * r2[j] * r2[j] + u2[j] * u2[j] * r1 * r1)
                            + T::TWO * T::TWO * b2 * b2 * u1 * u1 * u2[j] * u2[j] * (T::ONE - rho) * (T::ONE + rho);
                        t[j] *= four_over_pi * a2b2 * rr / one_minus_z2.sqrt();
                    }
                }
            }
            // Gelu (Tsuchida et al. 2020): with P = (q1+1)(q2+1), δ = √(P − c²), α = atan(c/δ):
            //   E = [(c² + q1q2δ²)/(Pδ) + c·α]/(2π) + c/4 ;
            //   dot = c/(2πδ)·(1/δ² + (1 − q1q2)/P + 1) + 1/4 + α/(2π)
            Plan::Gelu => {
                let quarter = T::HALF * T::HALF;
                for j in 0..len {
                    let (_, ct) = corr(c[j], q1, sq1, rsq1, q2[j], sq2[j], rsq2[j]);
                    let pp1 = (q1 + T::ONE) * (q2[j] + T::ONE);
                    let prod = q1 * q2[j];
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
            // Sin: E = (a²/2)[e^{−b²(q1+q2−2c)/2} − cos(2c0)·e^{−b²(q1+q2+2c)/2}] ;
            //      dot = (a²b²/2)[e^{−b²(q1+q2−2c)/2} + cos(2c0)·e^{−b²(q1+q2+2c)/2}],
            // written em − cos(2c0)·ep = em·(−expm1(−b²(dp−dm)/2)) + (1 − cos 2c0)·ep (and likewise
            // with 1 + cos 2c0) so that tiny variances do not cancel (e^{−ε} − e^{−3ε} in float32)
            Plan::Sin {
                a2,
                b2,
                one_minus,
                one_plus,
            } => {
                let (a2, b2, one_minus, one_plus) = (*a2, *b2, *one_minus, *one_plus);
                for j in 0..len {
                    let (_, ct) = corr(c[j], q1, sq1, rsq1, q2[j], sq2[j], rsq2[j]);
                    let sum = q1 + q2[j];
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
            // Exp: E = a²·exp(b²(q1 + q2 + 2c)/2) ; dot = b²·E
            Plan::Exp { a2, b2 } => {
                let (a2, b2) = (*a2, *b2);
                for j in 0..len {
                    let (_, ct) = corr(c[j], q1, sq1, rsq1, q2[j], sq2[j], rsq2[j]);
                    let e = a2 * (b2 * T::HALF * (q1 + q2[j] + T::TWO * ct)).vexp();
                    c[j] = e;
                    if NTK {
                        t[j] *= b2 * e;
                    }
                }
            }
            // Gaussian: with D = (1−2bq1)(1−2bq2) − 4b²c²: E = a²/√D ; dot = 4a²b²·c/D^{3/2}
            Plan::Gaussian { a2, b } => {
                let (a2, b) = (*a2, *b);
                for j in 0..len {
                    let (_, ct) = corr(c[j], q1, sq1, rsq1, q2[j], sq2[j], rsq2[j]);
                    let det =
                        (T::ONE - T::TWO * b * q1) * (T::ONE - T::TWO * b * q2[j]) - T::TWO * T::TWO * b * b * ct * ct;
                    let rs = T::ONE / det.sqrt();
                    c[j] = a2 * rs;
                    if NTK {
                        t[j] *= T::TWO * T::TWO * a2 * b * b * ct * rs * rs * rs;
                    }
                }
            }
            // Sign: E = (2/π)·asin ρ ; dot = 0 (φ' = 0 almost everywhere)
            Plan::Sign => {
                for j in 0..len {
                    let (rho, _) = corr(c[j], q1, sq1, rsq1, q2[j], sq2[j], rsq2[j]);
                    c[j] = T::TWO / T::PI * rho.vasin();
                    if NTK {
                        t[j] = T::ZERO;
                    }
                }
            }
            // RectifiedMonomial(n): E = (q1q2)^{n/2}·J_n(θ)/(2π) ; dot = n²(q1q2)^{(n−1)/2}·J_{n−1}(θ)/(2π),
            //   J_n = P_n(cos θ)(π − θ) + Q_n(cos θ) sin θ (arc_cosine_coefficients)
            Plan::RectMono { n, p, q, pd, qd } => {
                let (a1, d1) = (s1.aux(0)[i], s1.aux(1)[i]);
                let a2v = &s2.aux(0)[j0..j0 + len];
                let d2v = &s2.aux(1)[j0..j0 + len];
                let (rho, pmt, s) = (&mut scr.a[..len], &mut scr.b[..len], &mut scr.c[..len]);
                for j in 0..len {
                    let (r, _) = corr(c[j], s1.q[i], T::ZERO, rsq1, q2[j], T::ZERO, rsq2[j]);
                    rho[j] = r;
                    pmt[j] = T::PI - r.vacos();
                    s[j] = sin_of(r);
                }
                let (hp, hq) = (&mut scr.d[..len], &mut scr.e[..len]);
                if NTK {
                    if *n == 0 {
                        t.iter_mut().for_each(|v| *v = T::ZERO);
                    } else {
                        horner_row(pd, rho, hp);
                        horner_row(qd, rho, hq);
                        for j in 0..len {
                            t[j] *= d1 * d2v[j] * (hp[j] * pmt[j] + hq[j] * s[j]);
                        }
                    }
                }
                horner_row(p, rho, hp);
                horner_row(q, rho, hq);
                for j in 0..len {
                    c[j] = a1 * a2v[j] * (hp[j] * pmt[j] + hq[j] * s[j]);
                }
                if *n == 0 {
                    // the step at a zero-variance input is the constant step(0) = 1:
                    // E = P(v ≥ 0) = 1/2, or 1 when both variances are 0
                    let q1 = s1.q[i];
                    for j in 0..len {
                        let zeros = (q1 == T::ZERO) as u8 + (q2[j] == T::ZERO) as u8;
                        c[j] = T::select(zeros == 2, T::ONE, T::select(zeros == 1, T::HALF, c[j]));
                    }
                }
            }
            // Polynomial (Mehler): E = Σ_l R_l(q1) R_l(q2) c^l ; dot = Σ_l l·R_l(q1) R_l(q2) c^{l−1}
            Plan::Poly { deg, .. } => {
                let deg = *deg;
                let (acc, dacc) = (&mut scr.a[..len], &mut scr.b[..len]);
                acc.iter_mut().for_each(|v| *v = T::ZERO);
                dacc.iter_mut().for_each(|v| *v = T::ZERO);
                for l in (0..=deg).rev() {
                    let r1 = s1.aux(l)[i];
                    let r2 = &s2.aux(l)[j0..j0 + len];
                    let lf = T::from_f64(l as f64);
                    for j in 0..len {
                        let rr = r1 * r2[j];
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
            Plan::Numeric(np) => np.row::<NTK>(s1, i, s2, j0, c, t, scr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn relu_maps_at_orthogonal_and_parallel_inputs() {
        let relu = Activation::relu();
        let (n, d) = relu.maps(2.0, 2.0, 2.0).unwrap();
        assert!((n - 1.0).abs() < 1e-15 && (d - 0.5).abs() < 1e-15);
        let (n, d) = relu.maps(1.0, 4.0, 0.0).unwrap();
        assert!((n - 2.0 / (2.0 * PI)).abs() < 1e-15 && (d - 0.25).abs() < 1e-15);
    }

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

    #[test]
    fn zero_variance_gives_finite_maps() {
        for act in [
            Activation::relu(),
            Activation::erf(1.0, 1.0, 0.0).unwrap(),
            Activation::Gelu,
            Activation::Sign,
        ] {
            let (n, d) = act.maps(0.0, 1.0, 0.0).unwrap();
            assert!(n.is_finite() && d.is_finite(), "{}", act.name());
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

    #[test]
    fn invalid_arguments_are_errors() {
        assert!(Activation::maps(&Activation::relu(), -1.0, 1.0, 0.0).is_err());
        assert!(Activation::leaky_relu(f64::NAN).is_err());
        assert!(Activation::gaussian(1.0, 0.5).unwrap().maps(1.0, 1.0, 0.0).is_err());
        assert!(Activation::monomial(MAX_POLY_DEGREE + 1).is_err());
    }
}
