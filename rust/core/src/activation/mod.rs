//! Activations and their kernel maps: one module per activation, dispatched through one enum.
//!
//! For a centred Gaussian pair `(u, v)` with `Var u = q1`, `Var v = q2`, `Cov(u, v) = c`
//! (correlation `ρ = c/√(q1 q2)`, angle `θ = acos ρ`), an activation `φ` maps the kernels of the
//! layer before it (eqs. 12 and 26 of the seed derivation) to
//!
//! * `nngp = E[φ(u) φ(v)]` (the next Σ), and
//! * `dot  = E[φ'(u) φ'(v)]` (Σ̇), so that `ntk ↦ ntk · dot`.
//!
//! Each module holds its activation's `φ` and `φ'` (for finite networks), its prepared map
//! (`Plan`) and the equation it implements, written once next to the code; [`Plan::row`] is the
//! one dispatch, monomorphised for every SIMD level and both sides of a row. The names,
//! parameters and defaults every front end offers are in [`registry`].

pub mod ab_relu;
pub(crate) mod common;
pub mod erf;
pub mod exp;
pub mod gaussian;
pub mod gelu;
pub mod numerical;
pub mod polynomial;
pub mod rectified_monomial;
pub mod registry;
pub mod sign;
pub mod sin;

use std::f64::consts::PI;

use common::{check_poly_degree, finite};
pub(crate) use common::{defect_of, diff_of_products, Lanes, Samples, Scratch, Side};
use numerical::NumericPlan;
pub use numerical::{BatchFn, Pointwise};

use crate::error::{Error, Result};
use crate::vmath::Real;

/// A pointwise nonlinearity with a closed-form or numerically integrated kernel map.
#[derive(Clone, Debug)]
#[non_exhaustive]
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
        Ok(Activation::Polynomial {
            coef: polynomial::hermite_coefficients(degree),
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
            Activation::ABRelu { a, b } => match (*a, *b) {
                (0.0, 1.0) => "Relu()".into(),
                (-1.0, 1.0) => "Abs()".into(),
                (a, 1.0) => format!("LeakyRelu(alpha={a})"),
                (a, b) => format!("ABRelu(a={a}, b={b})"),
            },
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
        let (n, d) = self.maps_many(&[q1], &[q2], &[c], &|| false)?;
        Ok((n[0], d[0]))
    }

    /// [`Activation::maps`] at many points, `(var1[k], var2[k], cov[k])`, with one plan for all
    /// of them (numerical activations build their tables once). `cancelled` is polled every 64
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
        let s1 = plan.samples(q1)?;
        let s2 = plan.samples(q2)?;
        let mut scratch = Scratch::new(1);
        // the second moments E[φ(u)²] of both inputs (the outputs' variances, for the defect)
        let second = |s: &Samples<f64>, scratch: &mut Scratch<f64>| -> Result<Samples<f64>> {
            let mut out = vec![0.0; n];
            for (k, o) in out.iter_mut().enumerate() {
                if k % 1024 == 0 && cancelled() {
                    return Err(Error::Cancelled);
                }
                let (mut cq, mut tq) = ([s.q[k]], [0.0]);
                plan.row::<false, _, _>(s.at(k), s.span(k, 1), &mut cq, &mut tq, scratch);
                *o = if cq[0].is_finite() { cq[0].max(0.0) } else { 0.0 };
            }
            Samples::new(&out, |_| Ok(Vec::new()))
        };
        let o1 = second(&s1, &mut scratch)?;
        let o2 = second(&s2, &mut scratch)?;
        // each point's defect √(q1 q2) − |c| from the exact floats (|c| clamped to √(q1 q2))
        let mut cv = c.to_vec();
        let mut mv = vec![0.0; n];
        for k in 0..n {
            let (x, y, sp) = (s1.q[k], s2.q[k], s1.sq[k] * s2.sq[k]);
            if common::diff_of_products(x, y, cv[k], cv[k]) <= 0.0 {
                // |c| ≥ √(q1 q2): exactly (anti)parallel
                let lim = if x == y { x } else { sp };
                if cv[k].abs() > lim {
                    cv[k] = lim.copysign(cv[k]);
                }
                mv[k] = 0.0;
            } else {
                mv[k] = common::defect_of(cv[k], x, y, sp);
            }
        }
        let mut tv = vec![1.0; n];
        for k in 0..n {
            if k % 64 == 0 && cancelled() {
                return Err(Error::Cancelled);
            }
            plan.row_precise::<true, _, _, _, _>(
                s1.at(k),
                s2.span(k, 1),
                o1.at(k),
                o2.span(k, 1),
                &mut cv[k..k + 1],
                &mut mv[k..k + 1],
                &mut tv[k..k + 1],
                &mut scratch,
            );
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

    /// The function itself at every `z`: `phi[k] = φ(z[k])` and, when asked, `dphi[k] = φ'(z[k])`
    /// (the finite-width forward and backward passes), vectorised at the
    /// machine's SIMD level.
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
    pub fn eval<T: Real>(&self, z: &[T], phi: &mut [T], dphi: Option<&mut [T]>) -> Result<()> {
        let n = z.len();
        if phi.len() != n || dphi.as_ref().is_some_and(|d| d.len() != n) {
            return Err(Error::arg("phi", "the output slices must have the length of z"));
        }
        if let Activation::Numerical { f, .. } = self {
            // the numerical activations' own function and derivative, in f64
            let x: Vec<f64> = z.iter().map(|v| v.to_f64()).collect();
            let (mut fv, mut dv) = (vec![0.0; n], vec![0.0; n]);
            f.eval(&x, &mut fv, &mut dv)?;
            for k in 0..n {
                phi[k] = T::from_f64(fv[k]);
            }
            if let Some(d) = dphi {
                for k in 0..n {
                    d[k] = T::from_f64(dv[k]);
                }
            }
            return Ok(());
        }
        crate::pool::arch().dispatch(Eval {
            act: self,
            z,
            phi,
            dphi,
        });
        Ok(())
    }
}

/// [`Activation::eval`] of a closed-form activation, compiled at the machine's SIMD level.
struct Eval<'a, T> {
    act: &'a Activation,
    z: &'a [T],
    phi: &'a mut [T],
    dphi: Option<&'a mut [T]>,
}

impl<T: Real> pulp::WithSimd for Eval<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Eval { act, z, phi, dphi } = self;
        let c = T::from_f64;
        // every closure is `#[inline(always)]` (with its constants hoisted): otherwise LLVM may
        // call it per element, compiled without the SIMD target features (see `crate::vmath`)
        match act {
            Activation::Identity => each(
                z,
                phi,
                dphi,
                #[inline(always)]
                |x| (x, T::ONE),
            ),
            Activation::ABRelu { a, b } => {
                let (a, b) = (c(*a), c(*b));
                each(
                    z,
                    phi,
                    dphi,
                    #[inline(always)]
                    |x| ab_relu::phi(a, b, x),
                )
            }
            Activation::Erf { a, b, c: off } => {
                let (a, b, off) = (c(*a), c(*b), c(*off));
                each(
                    z,
                    phi,
                    dphi,
                    #[inline(always)]
                    |x| erf::phi(a, b, off, x),
                )
            }
            Activation::Gelu => each(z, phi, dphi, gelu::phi),
            Activation::Sin { a, b, c: off } => {
                let (a, b, off) = (c(*a), c(*b), c(*off));
                each(
                    z,
                    phi,
                    dphi,
                    #[inline(always)]
                    |x| sin::phi(a, b, off, x),
                )
            }
            Activation::Exp { a, b } => {
                let (a, b) = (c(*a), c(*b));
                each(
                    z,
                    phi,
                    dphi,
                    #[inline(always)]
                    |x| exp::phi(a, b, x),
                )
            }
            Activation::Gaussian { a, b } => {
                let (a, b) = (c(*a), c(*b));
                each(
                    z,
                    phi,
                    dphi,
                    #[inline(always)]
                    |x| gaussian::phi(a, b, x),
                )
            }
            Activation::Sign => each(z, phi, dphi, sign::phi),
            Activation::RectifiedMonomial { degree } => {
                let n = *degree as i32;
                each(
                    z,
                    phi,
                    dphi,
                    #[inline(always)]
                    |x| rectified_monomial::phi(n, x),
                )
            }
            Activation::Polynomial { coef } => {
                let cf: Vec<T> = coef.iter().map(|&v| c(v)).collect();
                each(
                    z,
                    phi,
                    dphi,
                    #[inline(always)]
                    |x| polynomial::phi(&cf, x),
                )
            }
            Activation::Numerical { .. } => unreachable!("numerical activations are evaluated in f64"),
        }
    }
}

/// `phi[k], dphi[k] = g(z[k])` in one pass, `g` inlined.
#[inline(always)]
fn each<T: Real>(z: &[T], phi: &mut [T], dphi: Option<&mut [T]>, g: impl Fn(T) -> (T, T)) {
    match dphi {
        Some(d) => {
            for ((zk, fk), dk) in z.iter().zip(phi.iter_mut()).zip(d.iter_mut()) {
                (*fk, *dk) = g(*zk);
            }
        }
        None => {
            for (zk, fk) in z.iter().zip(phi.iter_mut()) {
                *fk = g(*zk).0;
            }
        }
    }
}

/// An activation prepared for evaluation in precision `T`: constants folded, tables built.
#[derive(Clone, Debug)]
pub(crate) enum Plan<T> {
    Identity,
    ABRelu(ab_relu::Plan<T>),
    Erf(erf::Plan<T>),
    Gelu,
    Sin(sin::Plan<T>),
    Exp(exp::Plan<T>),
    Gaussian(gaussian::Plan<T>),
    Sign,
    RectMono(rectified_monomial::Plan<T>),
    Poly(polynomial::Plan),
    Numeric(NumericPlan<T>),
}

impl Plan<f64> {
    /// Prepare `act` for pre-activation variances `qs` (all samples of the layer, both inputs);
    /// `tables`: numerical activations may build their equal-norm angle table.
    pub fn new(act: &Activation, qs: &[f64], tables: bool) -> Result<Self> {
        Ok(match *act {
            Activation::Identity => Plan::Identity,
            Activation::ABRelu { a, b } => Plan::ABRelu(ab_relu::Plan::new(a, b)),
            Activation::Erf { a, b, c } => Plan::Erf(erf::Plan::new(a, b, c)),
            Activation::Gelu => Plan::Gelu,
            Activation::Sin { a, b, c } => Plan::Sin(sin::Plan::new(a, b, c)),
            Activation::Exp { a, b } => Plan::Exp(exp::Plan::new(a, b)),
            Activation::Gaussian { a, b } => Plan::Gaussian(gaussian::Plan::new(a, b, qs)?),
            Activation::Sign => Plan::Sign,
            Activation::RectifiedMonomial { degree } => Plan::RectMono(rectified_monomial::Plan::new(degree)),
            Activation::Polynomial { ref coef } => Plan::Poly(polynomial::Plan::new(coef)),
            Activation::Numerical { ref f, degree } => Plan::Numeric(NumericPlan::new(f, degree, qs, tables)?),
        })
    }

    /// The per-sample values of samples with pre-activation variances `q`, in precision `T`.
    pub fn samples<T: Real>(&self, q: &[f64]) -> Result<Samples<T>> {
        Samples::new(q, |q| {
            Ok(match self {
                Plan::Erf(p) => p.aux(q),
                Plan::RectMono(p) => p.aux(q),
                Plan::Poly(p) => p.aux(q),
                Plan::Numeric(p) => p.aux(q),
                _ => Vec::new(),
            })
        })
    }

    /// The same plan in precision `T`.
    pub fn cast<T: Real>(&self) -> Plan<T> {
        match self {
            Plan::Identity => Plan::Identity,
            Plan::ABRelu(p) => Plan::ABRelu(p.cast()),
            Plan::Erf(p) => Plan::Erf(p.cast()),
            Plan::Gelu => Plan::Gelu,
            Plan::Sin(p) => Plan::Sin(p.cast()),
            Plan::Exp(p) => Plan::Exp(p.cast()),
            Plan::Gaussian(p) => Plan::Gaussian(p.cast()),
            Plan::Sign => Plan::Sign,
            Plan::RectMono(p) => Plan::RectMono(p.cast()),
            Plan::Poly(p) => Plan::Poly(p.clone()),
            Plan::Numeric(n) => Plan::Numeric(n.cast()),
        }
    }
}

impl<T: Real> Plan<T> {
    /// Apply the map to one row of pairs: `c[j]` the pre-activation covariance of pair `j`
    /// (overwritten by the NNGP) and `t[j]` its NTK (multiplied by `dot` when `NTK`); `a` and `b`
    /// give each pair's two samples.
    #[inline(always)]
    pub fn row<const NTK: bool, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        t: &mut [T],
        scr: &mut Scratch<T>,
    ) {
        match self {
            // φ = x: E[uv] = c, E[1·1] = 1.
            Plan::Identity => {}
            Plan::ABRelu(p) => p.row::<NTK, A, B>(a, b, c, t, scr),
            Plan::Erf(p) => p.row::<NTK, A, B>(a, b, c, t, scr),
            Plan::Gelu => gelu::row::<NTK, T, A, B>(a, b, c, t, scr),
            Plan::Sin(p) => p.row::<NTK, A, B>(a, b, c, t, scr),
            Plan::Exp(p) => p.row::<NTK, A, B>(a, b, c, t, scr),
            Plan::Gaussian(p) => p.row::<NTK, A, B>(a, b, c, t, scr),
            Plan::Sign => sign::row::<NTK, T, A, B>(a, b, c, t, scr),
            Plan::RectMono(p) => p.row::<NTK, A, B>(a, b, c, t, scr),
            Plan::Poly(p) => p.row::<NTK, T, A, B>(a, b, c, t, scr),
            Plan::Numeric(p) => p.row::<NTK, A, B>(a, b, c, t, scr),
        }
    }
}

impl<T: Real> Plan<T> {
    /// The precise path (for pairs near ρ = ±1, and [`Activation::maps`]): like [`Plan::row`], from
    /// each pair's covariance `c` *and defect* `m = √(q1 q2) − |c|`, with the angle computed stably
    /// ([`common::angle`]); writes the output's defect `m' = √(q1' q2') − |c'|` into `m` (`oa`, `ob`:
    /// the output's per-sample variances `q'`). The maps singular at ρ = ±1 (`ABRelu`,
    /// `RectifiedMonomial`, `Sign`) form `m'` in closed form, so that exactly parallel or
    /// antiparallel pairs stay so; the others by [`defect_row`].
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn row_precise<const NTK: bool, A: Side<T>, B: Side<T>, OA: Side<T>, OB: Side<T>>(
        &self,
        a: A,
        b: B,
        oa: OA,
        ob: OB,
        c: &mut [T],
        m: &mut [T],
        t: &mut [T],
        scr: &mut Scratch<T>,
    ) {
        match self {
            Plan::Identity => {}
            Plan::ABRelu(p) => p.row_precise::<NTK, A, B>(a, b, c, m, t, scr),
            Plan::Sign => sign::row_precise::<NTK, T, A, B>(a, b, c, m, t, scr),
            Plan::RectMono(p) => p.row_precise::<NTK, A, B>(a, b, c, m, t, scr),
            _ => defect_row::<NTK, T, A, B, OA, OB>(self, a, b, oa, ob, c, m, t, scr),
        }
    }

    /// The maps at `(c, m)` without the output's defect: numerical activations interpolate at the
    /// stable angle; the smooth closed forms need only `c` (their maps are smooth in ρ).
    #[inline(always)]
    fn values<const NTK: bool, A: Side<T>, B: Side<T>>(
        &self,
        a: A,
        b: B,
        c: &mut [T],
        m: &[T],
        t: &mut [T],
        scr: &mut Scratch<T>,
    ) {
        match self {
            Plan::Numeric(p) => p.values::<NTK, A, B>(a, b, c, m, t, scr),
            _ => self.row::<NTK, A, B>(a, b, c, t, scr),
        }
    }
}

/// Within this angle of 0 (or π) [`defect_row`] integrates along the angle.
const DEFECT_BELOW: f64 = 0.05;
/// Gauss–Legendre, 4 points on [−1, 1].
const GL4: [(f64, f64); 4] = [
    (-0.861_136_311_594_052_6, 0.347_854_845_137_453_8),
    (-0.339_981_043_584_856_3, 0.652_145_154_862_546_1),
    (0.339_981_043_584_856_3, 0.652_145_154_862_546_1),
    (0.861_136_311_594_052_6, 0.347_854_845_137_453_8),
];

/// The output defect `m' = √(q1' q2') − |c'|` of a map without a closed form for it. Within
/// [`DEFECT_BELOW`] of the nearer end (θ = 0, or π), it is the anchor's defect plus the change of
/// the map along the angle: with `F(θ)` the map at angle θ (`c = √P cos θ`) and `F' = dot`
/// (Price's theorem), `F(0) − F(θ) = √P ∫₀^θ dot(t) sin t dt` (4-point Gauss–Legendre: relative
/// error ~1e-9·θ⁷), and `√(q1' q2') − |F(0)|` is the anchor's defect from the floats — exactly 0
/// for equal variances (the anchor is then evaluated at `c = q1 = q2`, bit for bit the planned
/// second moment). Farther from the ends, the defect of the floats `(q1'q2' − c'²)/(√(q1'q2') + |c'|)`
/// (relative error ≤ ε/sin²θ').
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn defect_row<const NTK: bool, T: Real, A: Side<T>, B: Side<T>, OA: Side<T>, OB: Side<T>>(
    plan: &Plan<T>,
    a: A,
    b: B,
    oa: OA,
    ob: OB,
    c: &mut [T],
    m: &mut [T],
    t: &mut [T],
    scr: &mut Scratch<T>,
) {
    let len = c.len();
    let mut g = std::mem::take(&mut scr.g);
    let (va, vb) = (a.view(), b.view());
    let (q1, q2) = (a.q(), b.q());
    let half_pi = T::HALF * T::PI;
    {
        let [ci, mi, phi, fa, _, _, mk, _, side] = &mut g;
        for j in 0..len {
            let an = common::angle_at(c[j], m[j], &va, &vb, j);
            ci[j] = c[j];
            mi[j] = m[j];
            let zero_end = an.theta <= half_pi;
            phi[j] = T::select(zero_end, an.theta, an.pmt);
            let sd = T::select(zero_end, T::ONE, -T::ONE);
            side[j] = sd;
            // the anchor: exactly parallel (antiparallel), at c = ±q1 when q1 = q2
            let (x, y) = (q1.at(j), q2.at(j));
            fa[j] = sd * T::select(x == y, x, an.sp);
            mk[j] = T::ZERO;
        }
    }
    // the map itself
    plan.values::<NTK, A, B>(a, b, c, &g[1][..len], t, scr);
    // the anchor's value F(0) (or F(π))
    {
        let [_, _, _, fa, _, _, mk, tk, _] = &mut g;
        plan.values::<false, A, B>(a, b, &mut fa[..len], &mk[..len], &mut tk[..len], scr);
    }
    for v in &mut g[4][..len] {
        *v = T::ZERO;
    }
    for &(x, w) in &GL4 {
        let (x, w) = (T::from_f64(x), T::from_f64(w));
        {
            let [_, _, phi, _, _, ck, mk, tk, side] = &mut g;
            for j in 0..len {
                let sp = va.sq.at(j) * vb.sq.at(j);
                let tn = phi[j] * T::HALF * (T::ONE + x);
                let h = (T::HALF * tn).vsin();
                ck[j] = side[j] * sp * tn.vcos();
                mk[j] = T::TWO * sp * h * h;
                tk[j] = T::ONE;
            }
        }
        {
            let [_, _, _, _, _, ck, mk, tk, _] = &mut g;
            plan.values::<true, A, B>(a, b, &mut ck[..len], &mk[..len], &mut tk[..len], scr);
        }
        let [_, _, phi, _, acc, _, _, tk, _] = &mut g;
        for j in 0..len {
            let tn = phi[j] * T::HALF * (T::ONE + x);
            acc[j] += w * T::HALF * phi[j] * tn.vsin() * tk[j];
        }
    }
    let (ov1, ov2) = (oa.view(), ob.view());
    let [_, _, phi, fa, acc, _, _, _, side] = &g;
    let m = &mut m[..len];
    let below = T::from_f64(DEFECT_BELOW);
    for j in 0..len {
        let sp = va.sq.at(j) * vb.sq.at(j);
        let (o1, o2) = (ov1.q.at(j), ov2.q.at(j));
        let spo = ov1.sq.at(j) * ov2.sq.at(j);
        let direct = common::defect_of(c[j], o1, o2, spo);
        let f0 = fa[j];
        // |F(θ)| = σ·(F(anchor) − side·B), σ = sign F(anchor)
        let sigma = T::select(f0 >= T::ZERO, T::ONE, -T::ONE);
        let bracket = sp * acc[j];
        let anchored = common::defect_of(f0, o1, o2, spo) + sigma * side[j] * bracket;
        let same_sign = (f0 >= T::ZERO) == (c[j] >= T::ZERO);
        let use_anchor = phi[j] <= below && same_sign && sp > T::ZERO;
        m[j] = T::select(use_anchor, anchored, direct).max(T::ZERO);
    }
    scr.g = g;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn invalid_arguments_are_errors() {
        assert!(Activation::maps(&Activation::relu(), -1.0, 1.0, 0.0).is_err());
        assert!(Activation::leaky_relu(f64::NAN).is_err());
        assert!(Activation::gaussian(1.0, 0.5).unwrap().maps(1.0, 1.0, 0.0).is_err());
        assert!(Activation::monomial(MAX_POLY_DEGREE + 1).is_err());
    }

    #[test]
    fn vectorised_eval_equals_the_scalar_formula() {
        let z: Vec<f64> = (0..37).map(|k| k as f64 * 0.3 - 5.0).collect();
        for act in [
            Activation::relu(),
            Activation::Gelu,
            Activation::erf(1.2, 0.7, 0.1).unwrap(),
            Activation::hermite(3).unwrap(),
        ] {
            let (mut f, mut d) = (vec![0.0; z.len()], vec![0.0; z.len()]);
            act.eval(&z, &mut f, Some(&mut d)).unwrap();
            let (mut f1, mut d1) = ([0.0], [0.0]);
            for k in 0..z.len() {
                act.eval(&z[k..k + 1], &mut f1, Some(&mut d1)).unwrap();
                assert_eq!((f[k], d[k]), (f1[0], d1[0]), "{} at {}", act.name(), z[k]);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Cauchy–Schwarz: |E[φ(u)φ(v)]| ≤ √(E[φ(u)²] E[φ(v)²]), and the maps are finite.
        #[test]
        fn maps_obey_cauchy_schwarz(q1 in 0.0f64..10.0, q2 in 0.0f64..10.0, rho in -1.0f64..1.0, k in 0usize..6) {
            let act = [Activation::relu(), Activation::Gelu, Activation::erf(0.7, 1.3, 0.2).unwrap(),
                       Activation::sin(1.0, 0.8, 0.3).unwrap(), Activation::rectified_monomial(2).unwrap(),
                       Activation::hermite(3).unwrap()][k].clone();
            let c = rho * (q1 * q2).sqrt();
            let (n, d) = act.maps(q1, q2, c).unwrap();
            let (n1, d1) = act.maps(q1, q1, q1).unwrap();
            let (n2, d2) = act.maps(q2, q2, q2).unwrap();
            prop_assert!(n.is_finite() && d.is_finite());
            prop_assert!(n.abs() <= (n1 * n2).sqrt() * (1.0 + 1e-10) + 1e-12);
            prop_assert!(d.abs() <= (d1 * d2).sqrt() * (1.0 + 1e-10) + 1e-12);
        }
    }
}
