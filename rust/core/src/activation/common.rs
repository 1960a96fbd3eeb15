//! What every activation's kernel map uses: per-sample values ([`Samples`]), the views of one
//! row's pairs ([`Side`]), scratch rows, and the correlation of a pair.

use crate::error::Result;
use crate::vmath::Real;

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
    /// Samples for the variances `q`, with the activation-specific values `aux(q)` (laid out
    /// `[k * n + i]`), computed in f64 and stored as `T`.
    ///
    /// A variance whose square root is not a normal number of `T` (a subnormal scale) counts as
    /// 0, so that `1/√q` stays finite: such samples have the kernel of the zero input.
    pub fn new(q: &[f64], aux: impl FnOnce(&[f64]) -> Result<Vec<f64>>) -> Result<Self> {
        let n = q.len();
        let tiny = T::MIN_POSITIVE.to_f64();
        let q: Vec<f64> = q.iter().map(|&v| if v.sqrt() < tiny { 0.0 } else { v }).collect();
        let sq: Vec<f64> = q.iter().map(|&v| v.sqrt()).collect();
        let rsq: Vec<f64> = sq.iter().map(|&s| if s > 0.0 { 1.0 / s } else { 0.0 }).collect();
        let cast = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect();
        let aux = aux(&q)?;
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

    /// Sample `i` for every entry of a row.
    #[inline(always)]
    pub fn at(&self, i: usize) -> At<'_, T> {
        At { s: self, i }
    }

    /// Samples `j0..j0 + len`, one per entry of a row.
    #[inline(always)]
    pub fn span(&self, j0: usize, len: usize) -> Span<'_, T> {
        Span { s: self, j0, len }
    }
}

/// Values along a row of `len` entries: one value for all (a scalar) or one per entry (a slice
/// of exactly `len` values). Monomorphised, so that a scalar costs nothing in the inner loops.
pub(crate) trait Lanes<T>: Copy {
    fn at(self, j: usize) -> T;
}

impl<T: Real> Lanes<T> for T {
    #[inline(always)]
    fn at(self, _: usize) -> T {
        self
    }
}

impl<T: Real> Lanes<T> for &[T] {
    #[inline(always)]
    fn at(self, j: usize) -> T {
        debug_assert!(j < self.len());
        // SAFETY: every slice of a row is built with the row's length by `Span`, and the row
        // loops run `j` over `0..len` (checked in debug builds).
        unsafe { *self.get_unchecked(j) }
    }
}

/// The variances of one side of a row, made once per row.
#[derive(Clone, Copy)]
pub(crate) struct View<L> {
    pub q: L,
    pub sq: L,
    pub rsq: L,
}

/// One side (`x1` or `x2`) of the pairs of a row: the per-sample values of each entry's sample.
pub(crate) trait Side<T: Real>: Copy {
    type L: Lanes<T>;
    fn q(self) -> Self::L;
    fn sq(self) -> Self::L;
    fn rsq(self) -> Self::L;
    fn aux(self, k: usize) -> Self::L;
    /// `q`, `√q`, `1/√q` at once (hoisted out of the row loops).
    #[inline(always)]
    fn view(self) -> View<Self::L> {
        View {
            q: self.q(),
            sq: self.sq(),
            rsq: self.rsq(),
        }
    }
}

/// The same sample for every entry of the row (the row's `x1` sample in a dense kernel).
#[derive(Clone, Copy)]
pub(crate) struct At<'a, T> {
    s: &'a Samples<T>,
    i: usize,
}

impl<T: Real> Side<T> for At<'_, T> {
    type L = T;
    #[inline(always)]
    fn q(self) -> T {
        self.s.q[self.i]
    }
    #[inline(always)]
    fn sq(self) -> T {
        self.s.sq[self.i]
    }
    #[inline(always)]
    fn rsq(self) -> T {
        self.s.rsq[self.i]
    }
    #[inline(always)]
    fn aux(self, k: usize) -> T {
        self.s.aux(k)[self.i]
    }
}

/// Consecutive samples, one per entry of the row (the columns' `x2` samples).
#[derive(Clone, Copy)]
pub(crate) struct Span<'a, T> {
    s: &'a Samples<T>,
    j0: usize,
    len: usize,
}

impl<'a, T: Real> Side<T> for Span<'a, T> {
    type L = &'a [T];
    #[inline(always)]
    fn q(self) -> &'a [T] {
        &self.s.q[self.j0..self.j0 + self.len]
    }
    #[inline(always)]
    fn sq(self) -> &'a [T] {
        &self.s.sq[self.j0..self.j0 + self.len]
    }
    #[inline(always)]
    fn rsq(self) -> &'a [T] {
        &self.s.rsq[self.j0..self.j0 + self.len]
    }
    #[inline(always)]
    fn aux(self, k: usize) -> &'a [T] {
        &self.s.aux(k)[self.j0..self.j0 + self.len]
    }
}

/// Scratch rows for the activations that evaluate in several passes, the near-±1 flags of the
/// fast path, and the rows of the precise path's defect quadrature ([`super::defect_row`]).
pub(crate) struct Scratch<T> {
    pub a: Vec<T>,
    pub b: Vec<T>,
    pub c: Vec<T>,
    pub d: Vec<T>,
    pub e: Vec<T>,
    pub f: Vec<T>,
    /// Per entry: `T::ONE` once a singular map (fast path) saw the pair within [`NEAR`] of
    /// ρ = ±1 (see [`corr`]); reset by the caller.
    pub near: Vec<T>,
    /// Rows of [`super::defect_row`].
    pub g: [Vec<T>; 9],
    /// Rows of the gathered entries of a numerical activation's series path.
    pub h: [Vec<T>; 6],
    /// Per entry: `T::ONE` where a numerical activation's row is at an exact diagonal entry
    /// (`c = q1 = q2`), which takes the exact second moments.
    pub diag: Vec<T>,
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
            near: v(),
            g: std::array::from_fn(|_| v()),
            h: std::array::from_fn(|_| v()),
            diag: v(),
        }
    }
}

/// Correlations with `|ρ| > 1 − NEAR` are *near* ±1: there the fast path's `acos ρ` amplifies the
/// rounding of `c` (`δθ ≈ δρ/sin θ`, up to `√ε`), so a singular map flags the pair and its row is
/// recomputed by the precise path, which carries each pair's defect `√(q1 q2) − |c|` (see
/// [`angle`]). At the edge, `sin θ ≥ 0.045`: the fast path's angle is within ~100 ε.
pub(crate) const NEAR: f64 = 1e-3;

/// Correlation `ρ = c/(√q1 √q2)` clamped to [−1, 1] (0 when a variance is 0), `c̃ = ρ √q1 √q2`,
/// and whether the pair is within [`NEAR`] of ρ = ±1. The exact diagonal
/// `c = q1 = q2` (which the tile and diagonal paths produce bitwise, and the planned second
/// moments use) gives `ρ = 1` exactly, and `c = −q1 = −q2` gives `ρ = −1`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn corr<T: Real>(c: T, q1: T, sq1: T, rsq1: T, q2: T, sq2: T, rsq2: T) -> (T, T, bool) {
    let r = (c * rsq1 * rsq2).clamp_unit();
    let exact = q1 == q2 && c.abs() == q1 && q1 > T::ZERO;
    let rho = T::select(exact, T::select(c > T::ZERO, T::ONE, -T::ONE), r);
    // floats that say "exactly parallel" may round a tiny angle of the inputs away: flagged too
    // (the tile pass exempts the true diagonal pair)
    let near = r.abs() > T::ONE - T::from_f64(NEAR);
    (rho, rho * sq1 * sq2, near)
}

/// [`corr`] of entry `j` of a row.
#[inline(always)]
pub(crate) fn corr_at<T: Real, A: Lanes<T>, B: Lanes<T>>(c: T, a: &View<A>, b: &View<B>, j: usize) -> (T, T, bool) {
    corr(
        c,
        a.q.at(j),
        a.sq.at(j),
        a.rsq.at(j),
        b.q.at(j),
        b.sq.at(j),
        b.rsq.at(j),
    )
}

/// Flag entry `j` of `near` when `cond`.
#[inline(always)]
pub(crate) fn flag<T: Real>(near: &mut [T], j: usize, cond: bool) {
    near[j] = T::select(cond, T::ONE, near[j]);
}

/// `a·b − c·d` with a relative error of at most 2ε (Kahan's algorithm: `c·d = w − e` exactly
/// by one fma, then one more for `a·b − w`).
#[inline(always)]
pub(crate) fn diff_of_products<T: Real>(a: T, b: T, c: T, d: T) -> T {
    let w = c * d;
    let e = (-c).fma(d, w); // w − c·d, exact
    let f = a.fma(b, -w); // a·b − w, rounded once
    f + e
}

/// The defect `√(q1 q2) − |c|` of a pair given by exact floats, `(q1 q2 − c²)/(√(q1 q2) + |c|)`
/// with the numerator by [`diff_of_products`] (0 when `|c| ≥ √(q1 q2)`): the angle it gives is the
/// angle of these floats to a few ε (`sp` = `√q1·√q2`).
#[inline(always)]
pub(crate) fn defect_of<T: Real>(c: T, q1: T, q2: T, sp: T) -> T {
    let num = diff_of_products(q1, q2, c, c).max(T::ZERO);
    let den = sp + c.abs();
    T::select(den > T::ZERO, num / den, T::ZERO)
}

/// The angle of a pair, computed stably from its covariance `c` and its defect
/// `m = √(q1 q2) − |c| ≥ 0` (carried by the precise path, so that parallel and antiparallel pairs
/// keep `θ = 0` or `π` exactly):
/// `√P ∓ c` are `m` and `2√P − m`-like sums without cancellation, `s = √P sin θ = √((√P − c)(√P + c))`
/// and `θ = atan2(s, c)`, `π − θ = atan2(s, −c)`, each to a few ε relative.
/// A zero variance gives the convention of [`corr`]: `ρ = 0`, `θ = π/2`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Angle<T> {
    /// `√(q1 q2)`
    pub sp: T,
    /// `cos θ`
    pub rho: T,
    /// `sin θ`
    pub sin: T,
    pub theta: T,
    /// `π − θ`
    pub pmt: T,
    /// `√P sin θ`
    pub s: T,
    /// `√P − c = √P (1 − cos θ)`
    pub gm: T,
    /// `√P + c = √P (1 + cos θ)`
    pub gp: T,
}

#[inline(always)]
pub(crate) fn angle<T: Real>(c: T, m: T, sq1: T, rsq1: T, sq2: T, rsq2: T) -> Angle<T> {
    let sp = sq1 * sq2;
    let rsp = rsq1 * rsq2;
    let zero = rsp == T::ZERO;
    let pos = c >= T::ZERO;
    let gm = T::select(pos, m, sp - c);
    let gp = T::select(pos, sp + c, m);
    let s = (gm * gp).sqrt();
    let half_pi = T::HALF * T::PI;
    Angle {
        sp,
        rho: T::select(zero, T::ZERO, (c * rsp).clamp_unit()),
        sin: T::select(zero, T::ONE, (s * rsp).min(T::ONE)),
        theta: T::select(zero, half_pi, s.vatan2(c)),
        pmt: T::select(zero, half_pi, s.vatan2(-c)),
        s,
        gm,
        gp,
    }
}

/// [`angle`] of entry `j` of a row.
#[inline(always)]
pub(crate) fn angle_at<T: Real, A: Lanes<T>, B: Lanes<T>>(c: T, m: T, a: &View<A>, b: &View<B>, j: usize) -> Angle<T> {
    angle(c, m, a.sq.at(j), a.rsq.at(j), b.sq.at(j), b.rsq.at(j))
}

/// `ψ(θ)/θ³` with `ψ(θ) = sin θ − θ cos θ = Σ_k (−1)^{k+1} 2k θ^{2k+1}/(2k+1)!`, in `z = θ²`
/// (to ε for θ ≤ 1/2).
const PSI: [f64; 8] = [
    1.0 / 3.0,
    -1.0 / 30.0,
    1.0 / 840.0,
    -1.0 / 45360.0,
    1.0 / 3991680.0,
    -1.0 / 518918400.0,
    1.0 / 93405312000.0,
    -1.0 / 22230464256000.0,
];

/// `(θ − sin θ)/θ³ = Σ_k (−1)^{k+1} θ^{2k−2}/(2k+1)!` in `z = θ²` (to ε for θ ≤ 1/2).
const THETA_MINUS_SIN: [f64; 9] = [
    1.0 / 6.0,
    -1.0 / 120.0,
    1.0 / 5040.0,
    -1.0 / 362880.0,
    1.0 / 39916800.0,
    -1.0 / 6227020800.0,
    1.0 / 1307674368000.0,
    -1.0 / 355687428096000.0,
    1.0 / 121645100408832000.0,
];

/// Below this angle the series replace the differences that cancel.
pub(crate) const SERIES_BELOW: f64 = 0.5;

#[inline(always)]
fn series<T: Real>(coef: &[f64], z: T) -> T {
    let mut acc = T::from_f64(coef[coef.len() - 1]);
    for &a in coef.iter().rev().skip(1) {
        acc = acc * z + T::from_f64(a);
    }
    acc
}

/// `√P ψ(θ) = √P (sin θ − θ cos θ) = s − θ c` (≥ 0), by the series below [`SERIES_BELOW`]
/// (where the difference cancels). `c` is `√P cos θ` (pass `−c` and `π − θ` for `ψ(π − θ)`).
#[inline(always)]
pub(crate) fn psi<T: Real>(theta: T, s: T, c: T, sp: T) -> T {
    let z = theta * theta;
    let small = sp * theta * z * series(&PSI, z);
    T::select(theta < T::from_f64(SERIES_BELOW), small, s - theta * c)
}

/// `θ − sin θ` (≥ 0) from `θ` and `sin θ`, by the series below [`SERIES_BELOW`].
#[inline(always)]
pub(crate) fn theta_minus_sin<T: Real>(theta: T, sin: T) -> T {
    let z = theta * theta;
    T::select(
        theta < T::from_f64(SERIES_BELOW),
        theta * z * series(&THETA_MINUS_SIN, z),
        theta - sin,
    )
}

/// `√(1 − ρ²)` computed as `√((1 − ρ)(1 + ρ))`.
#[inline(always)]
pub(crate) fn sin_of<T: Real>(rho: T) -> T {
    ((T::ONE - rho) * (T::ONE + rho)).max(T::ZERO).sqrt()
}

/// Horner over a coefficient list, vectorised across the row: `out[j] = Σ_k p[k] x[j]^k`.
#[inline(always)]
pub(crate) fn horner_row<T: Real>(p: &[T], x: &[T], out: &mut [T]) {
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

/// `Σ_k p[k] x^k`.
pub(crate) fn horner(p: &[f64], x: f64) -> f64 {
    p.iter().rev().fold(0.0, |acc, &a| acc * x + a)
}

/// `x^n` for `n ≥ 0` by repeated multiplication (`x^0 = 1`).
#[inline(always)]
pub(crate) fn powi<T: Real>(x: T, n: i32) -> T {
    let mut r = T::ONE;
    for _ in 0..n.max(0) {
        r *= x;
    }
    r
}

/// `Err` unless `v` is finite.
pub(crate) fn finite(arg: &'static str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(crate::error::Error::arg(
            arg,
            format!("must be a finite number, got {v}"),
        ))
    }
}

/// `Err` unless `degree` is a supported polynomial degree.
pub(crate) fn check_poly_degree(degree: usize) -> Result<()> {
    if degree > super::MAX_POLY_DEGREE {
        return Err(crate::error::Error::arg(
            "degree",
            format!("must be between 0 and {}, got {degree}", super::MAX_POLY_DEGREE),
        ));
    }
    Ok(())
}
