//! Branch-free, autovectorisable elementary functions for `f32` and `f64`.
//!
//! The [`Real`] trait gives generic kernel code one vocabulary for both float
//! types. Its elementary functions carry a `v` prefix (`vacos`, `vexp`, ...)
//! so they never collide with the inherent `f32`/`f64` methods of the same
//! name, which call into the platform libm and therefore block vectorisation.
//! `sqrt`, `abs`, `min` and `max` keep their plain names and forward to the
//! inherent methods, which compile to single instructions (`vsqrtpd`,
//! `vandpd`, `vminpd`/`vmaxpd` plus a NaN fix-up).
//!
//! # Design
//!
//! Every function is `#[inline(always)]` straight-line code: all branches of
//! a piecewise approximation are evaluated and the result is picked with a
//! select, which LLVM lowers to a blend; there are no loops with a
//! data-dependent trip count, no table look-ups (gathers), no libm calls and
//! no panics. Products are written `a * b + c`, never `mul_add` (a software
//! fma call on the scalar path); Rust never contracts them into fma, so the
//! scalar and the SIMD-compiled paths return bit-identical results.
//!
//! The algorithms are the classic fdlibm/Cephes ones (Cody–Waite argument
//! reduction, two-part constants, odd/even polynomial kernels); the
//! polynomial coefficients were fitted for this file by a Remez exchange in
//! 60-digit arithmetic (for `f32`: rounded to single precision one at a time,
//! refitting the rest). The `f32` implementations are native single
//! precision (16 lanes per AVX-512 vector, shorter polynomials), except
//! `vsin`/`vcos`, which reduce the argument and evaluate short polynomials in
//! `f64`.
//!
//! # Using it in a SIMD loop
//!
//! Put the loop in a [`pulp::WithSimd`] implementation whose `with_simd` is
//! `#[inline(always)]`: pulp calls it from a `#[target_feature]` function,
//! so the loop and the inlined `v` functions are compiled for AVX-512/AVX2
//! and vectorised.
//!
//! ```ignore
//! struct Acos<'a, T>(&'a [T], &'a mut [T]);
//! impl<T: Real> pulp::WithSimd for Acos<'_, T> {
//!     type Output = ();
//!     #[inline(always)]
//!     fn with_simd<S: pulp::Simd>(self, _: S) {
//!         for (o, &x) in self.1.iter_mut().zip(self.0) {
//!             *o = x.clamp_unit().vacos();
//!         }
//!     }
//! }
//! pulp::Arch::new().dispatch(Acos(&inp, &mut out));
//! ```
//!
//! A closure passed to `dispatch` (`dispatch(|| for ... )`) is compiled
//! *without* the target features unless LLVM decides to inline it, which it
//! did for a `vacos` loop but not for `verf`, `vtanh` or `vsin` loops (those
//! ran 3-4x slower, on baseline SSE2). Likewise, a closure that calls a `v`
//! function and is itself called inside the loop should be marked
//! `#[inline(always)]`.
//!
//! # Accuracy
//!
//! Every function is within 4 ULP of the platform's `std` (libm) function;
//! the bound measured by the tests is stated on each method (`f64`: dense
//! sweeps of 6-14 million points per function plus random inputs; `f32`: all
//! 2^32 inputs). Against an exact (60-digit) reference, on `f64` inputs where the
//! results differ from libm's, the largest errors seen were 1.52 ULP
//! (`verf`), 1.35 ULP (`vexpm1`), 1.08 ULP (`vtanh`) and below 0.8 ULP
//! otherwise.
//!
//! Domains: `vsin`/`vcos` are accurate for `|x| <= 1.6e6` (`|x| 2/pi <
//! 2^20`, where the Cody–Waite products are exact); beyond that the absolute
//! error grows to about one ULP of `x` (e.g. `1e-7` at `|x| = 1e9`), and for
//! `|x| >= 2^50` they return NaN. Every other function is accurate on its
//! whole domain, subnormal inputs and outputs included. NaN in gives NaN
//! out; signed zeros are not always preserved (`vln1p(-0.0)` is `+0.0`).

// In a crate that reaches only some of these functions, the rest would be
// reported as dead code.
#![allow(dead_code)]

use core::f64::consts::{FRAC_2_PI, FRAC_PI_2, FRAC_PI_4, LOG2_E, PI};

/// Floating-point scalar type (`f32` or `f64`) with branch-free, vectorisable
/// elementary functions.
///
/// All methods are `#[inline(always)]` and free of branches, table look-ups
/// and libm calls, so that loops over slices auto-vectorise when compiled
/// under `pulp::Arch::dispatch` (see the module docs for the loop pattern).
///
/// Each `v` method states its algorithm and the largest error measured by the
/// tests, in ULP against the platform `std`/libm function (C `erf`/`erff` for
/// `verf`), as "f64 / f32" (f32 figures are over all 2^32 inputs).
pub trait Real:
    Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + core::fmt::Debug
    + Default
    + core::ops::Add<Output = Self>
    + core::ops::Sub<Output = Self>
    + core::ops::Mul<Output = Self>
    + core::ops::Div<Output = Self>
    + core::ops::Neg<Output = Self>
    + core::ops::AddAssign
    + core::ops::MulAssign
{
    /// `0`
    const ZERO: Self;
    /// `1`
    const ONE: Self;
    /// `2`
    const TWO: Self;
    /// `0.5`
    const HALF: Self;
    /// `pi`
    const PI: Self;
    /// Machine epsilon (distance from 1 to the next representable value).
    const EPSILON: Self;
    /// Largest finite value.
    const MAX: Self;
    /// Smallest positive normal value.
    const MIN_POSITIVE: Self;

    /// Conversion from `f64` (rounding to nearest for `f32`).
    fn from_f64(x: f64) -> Self;
    /// Exact conversion to `f64`.
    fn to_f64(self) -> f64;

    /// Correctly rounded square root (hardware instruction).
    fn sqrt(self) -> Self;
    /// Absolute value (clears the sign bit).
    fn abs(self) -> Self;
    /// Minimum; if one argument is NaN the other is returned (IEEE minNum).
    fn min(self, o: Self) -> Self;
    /// Maximum; if one argument is NaN the other is returned (IEEE maxNum).
    fn max(self, o: Self) -> Self;
    /// Clamps to `[-1, 1]`. Finite input gives finite output; NaN propagates.
    fn clamp_unit(self) -> Self;
    /// `self·b + c` rounded once (fused multiply-add). Under pulp's AVX2/AVX-512 target
    /// features this is one `vfmadd` instruction (vectorised with the loop); on the baseline
    /// (scalar) path it is a call to libm's `fma`, slower but correctly rounded too, so both
    /// paths give the same bits. Used only where exactness matters (error-free products).
    fn fma(self, b: Self, c: Self) -> Self;
    /// `true` when neither infinite nor NaN.
    fn is_finite(self) -> bool;
    /// Branch-free select: `if cond { a } else { b }`, lowered to a blend
    /// inside vectorised loops.
    fn select(cond: bool, a: Self, b: Self) -> Self;

    /// Arc cosine, result in `[0, pi]`; NaN outside `[-1, 1]`.
    ///
    /// fdlibm scheme: `pi/2 - (x + x z P(z))`, `z = x^2`, for `|x| < 0.5`;
    /// otherwise `2 asin(s)` or `pi - 2 asin(s)` with `s = sqrt((1-|x|)/2)`
    /// and the same polynomial (degree 11 in `z` for f64, 4 for f32).
    /// Max error: 1 / 1 ULP.
    fn vacos(self) -> Self;
    /// Arc sine, result in `[-pi/2, pi/2]`; NaN outside `[-1, 1]`.
    ///
    /// `x + x z P(z)` for `|x| < 0.5`, otherwise `pi/2 - 2 asin(s)`,
    /// `s = sqrt((1-|x|)/2)` split as `hi + lo` to avoid cancellation (one
    /// extra division). Max error: 1 / 1 ULP.
    fn vasin(self) -> Self;
    /// Arc tangent, result in `[-pi/2, pi/2]`.
    ///
    /// One division reduces `|x|` around the break points `0, 1/2, 1, 3/2,
    /// inf` to `|t| < 7/16`; then `atan(c) + t + t z P(z)` with a two-part
    /// constant `atan(c)` (degree 10 in `z = t^2` for f64, 4 for f32).
    /// Max error: 1 / 1 ULP.
    fn vatan(self) -> Self;
    /// Four-quadrant arc tangent of `self / x` (`self` is `y`), with the IEEE
    /// conventions for zeros and infinities (`atan2(±0, -0) = ±pi`,
    /// `atan2(±inf, -inf) = ±3pi/4`, ...).
    ///
    /// The [`Real::vatan`] kernel applied to `|y|, |x|` directly (no rounded
    /// intermediate quotient; both are rescaled by a power of two near the
    /// overflow/underflow thresholds), with `pi - c` constants for `x < 0`.
    /// Max error: 1 / 1 ULP (f32 on a 4500 x 4500 grid).
    fn vatan2(self, x: Self) -> Self;
    /// Exponential; `+inf` above `709.78` (f32: `88.72`), gradual underflow,
    /// `0` below `-745.13` (f32: `-103.97`).
    ///
    /// `x = n ln2 + r`, `n = round(x / ln2)` (two-part `ln2`),
    /// `exp(r) = 1 + r + r^2 (1/2 + r Q(r))` (`Q` degree 8 / 4), times `2^n`
    /// built from exponent bits as `2^(n/2) 2^(n - n/2)`, so overflow and
    /// subnormal results are rounded once. Max error: 1 / 1 ULP.
    fn vexp(self) -> Self;
    /// Natural logarithm; `-inf` at `±0`, NaN for negative input.
    ///
    /// `x = 2^k (1 + f)`, `1 + f` in `[sqrt(2)/2, sqrt(2))` (subnormals are
    /// first scaled by `2^54`, so they are exact too), then
    /// `ln(1+f) = f - f^2/2 + s (f^2/2 + z P(z))`, `s = f / (2 + f)`,
    /// `z = s^2` (`P` degree 6 / 2). Max error: 1 / 1 ULP.
    fn vln(self) -> Self;
    /// `ln(1 + x)`, accurate near zero; `-inf` at `-1`, NaN below.
    ///
    /// The [`Real::vln`] kernel on `u = 1 + x` plus the correction
    /// `((1 + x) - u) / u` for the rounding of `u`. Max error: 1 / 1 ULP.
    fn vln1p(self) -> Self;
    /// `exp(x) - 1`, accurate near zero.
    ///
    /// The [`Real::vexp`] reduction and polynomial (reduction error carried
    /// along), recombined as `2^n1 ((2^n2 - 2^-n1) + 2^n2 r + 2^n2 h)` with
    /// `n1 + n2 = n` to avoid cancellation. Max error: 2 / 1 ULP.
    fn vexpm1(self) -> Self;
    /// Hyperbolic tangent; exactly `±1` for `|x| > 19.06` (f32: `9.01`).
    ///
    /// `x + x z P(z)` (`z = x^2`, degree 9 / 4) for `|x| < 0.55`, otherwise
    /// `1 - 2 / (expm1(2|x|) + 2)`. Max error: 2 / 2 ULP (glibc's `tanh`
    /// and `tanhf` are themselves up to 1.7 / 1.5 ULP off; against a
    /// correctly rounded reference the f32 version is within 1 ULP).
    fn vtanh(self) -> Self;
    /// Error function.
    ///
    /// `x + x P(x^2)` (degree 10 / 5) for `|x| < 0.84375`; otherwise
    /// `1 - exp(-x^2) G(t)`, `t = (|x| - K) / (|x| + K)` (`K` = 3 / 2, `G`
    /// degree 12 / 5, fitted for absolute error in `erfc`), `|x|` clamped at
    /// 6 / 4. Max error: 2 / 1 ULP.
    fn verf(self) -> Self;
    /// Sine (f32: evaluated in f64, three-part reduction, degree-9/8
    /// polynomials).
    ///
    /// Cody–Waite reduction by `pi/2` with a four-part constant (three 33-bit
    /// parts: exact products for `|n| < 2^20`) keeping the reduction error as
    /// a tail, then fdlibm-style kernels on `[-pi/4, pi/4]` (`sin`: degree
    /// 13, `cos`: degree 14). Max error 1 / 1 ULP for `|x| <= 1.6e6`; beyond,
    /// the absolute error grows to about one ULP of `x`; NaN for
    /// `|x| >= 2^50`.
    fn vsin(self) -> Self;
    /// Cosine; same reduction, kernels and domain as [`Real::vsin`].
    /// Max error: 1 / 1 ULP for `|x| <= 1.6e6`.
    fn vcos(self) -> Self;
}

/// The `f64` algorithms (and the `f32` sine/cosine, evaluated in `f64`).
mod imp {
    use super::*;

    // ---------------------------------------------------------------------
    // helpers

    #[inline(always)]
    fn sel(c: bool, a: f64, b: f64) -> f64 {
        if c {
            a
        } else {
            b
        }
    }

    /// `c[0] + c[1] x + ... + c[N-1] x^(N-1)` (constant trip counts: fully
    /// unrolled, the scratch array lives in registers).
    #[inline(always)]
    fn poly<const N: usize>(x: f64, c: &[f64; N]) -> f64 {
        // Estrin's scheme: pair up terms with x, then x^2, x^4, ...
        // (dependency depth ~2 log2(N) instead of 2N, which lets
        // out-of-order execution overlap more loop iterations).
        let mut t = *c;
        let mut len = N;
        let mut p = x;
        while len > 1 {
            let half = len / 2;
            let mut i = 0;
            while i < half {
                t[i] = t[2 * i] + t[2 * i + 1] * p;
                i += 1;
            }
            if len % 2 == 1 {
                t[half] = t[len - 1];
            }
            len = half + len % 2;
            p = p * p;
        }
        t[0]
    }

    /// `x` with the low 32 bits of its significand cleared (so `hi * hi` is
    /// exact).
    #[inline(always)]
    fn trunc32(x: f64) -> f64 {
        f64::from_bits(x.to_bits() & 0xffff_ffff_0000_0000)
    }

    /// `2^52 + 2^51`: adding it rounds to an integer (ties to even) and puts
    /// that integer in the low bits of the representation.
    const SHIFT: f64 = 6755399441055744.0;

    // Two-part constants (hi is the nearest double, lo the remainder).
    const PIO2_HI: f64 = FRAC_PI_2;
    const PIO2_LO: f64 = 6.123233995736766e-17;
    const PIO4_HI: f64 = FRAC_PI_4;
    const PIO4_LO: f64 = 3.061616997868383e-17;
    const PI_HI: f64 = PI;
    const PI_LO: f64 = 1.2246467991473532e-16;
    const ATAN_HALF_HI: f64 = 0.4636476090008061;
    const ATAN_HALF_LO: f64 = 2.2698777452961687e-17;
    const ATAN_ONE_HALF_HI: f64 = 0.982793723247329;
    const ATAN_ONE_HALF_LO: f64 = 1.3903311031230998e-17;
    const PI_M_ATAN_HALF_HI: f64 = 2.677945044588987;
    const PI_M_ATAN_HALF_LO: f64 = 1.5527705369303147e-16;
    const PI3O4_HI: f64 = 2.356194490192345;
    const PI3O4_LO: f64 = 9.184850993605148e-17;
    const PI_M_ATAN_ONE_HALF_HI: f64 = 2.158798930342464;
    const PI_M_ATAN_ONE_HALF_LO: f64 = 2.1958367134601997e-16;
    /// ln 2 rounded to 42 bits: `n * LN2_HI` is exact for `|n| < 2^11`.
    const LN2_HI: f64 = 0.6931471805598903;
    const LN2_LO: f64 = 5.497923018708371e-14;
    /// pi/2 = PIO2_1 + PIO2_2 + PIO2_3 + PIO2_4; the first three have 33
    /// significant bits, so `n * PIO2_k` is exact for `|n| < 2^20`.
    const PIO2_1: f64 = 1.5707963267341256;
    const PIO2_2: f64 = 6.077100506303966e-11;
    const PIO2_3: f64 = 2.0222662487111665e-21;
    const PIO2_4: f64 = 8.4784276603689e-32;

    // Remez-fitted polynomial coefficients (constant term first). The error
    // quoted is the weighted minimax error of the rounded coefficients.

    /// `asin(t) = t + t z P(z)`, `z = t^2` in `[0, 1/4]`; rel. err 2^-55.8.
    const ASIN_P: [f64; 12] = [
        0.16666666666665408,
        0.0750000000033701,
        0.04464285682833238,
        0.03038195913680717,
        0.022371758054225536,
        0.01735970470514356,
        0.013885236065012956,
        0.012169207501596864,
        0.006527994000271348,
        0.019528212225320085,
        -0.016224167865296575,
        0.03191221088124661,
    ];
    /// `atan(t) = t + t z P(z)`, `z = t^2` in `[0, 0.192]`; rel. err 2^-56.6.
    const ATAN_P: [f64; 11] = [
        -0.3333333333333291,
        0.19999999999870088,
        -0.14285714271922068,
        0.1111111037923435,
        -0.09090886453449522,
        0.07691865307772776,
        -0.06660961607501445,
        0.05832839802537589,
        -0.04973917520398928,
        0.03646392357894965,
        -0.01621920438867123,
    ];
    /// `expm1(r) = r + r^2/2 + r^3 Q(r)`, `|r| <= 0.3466`; rel. err 2^-55.1.
    const EXPM1_Q: [f64; 9] = [
        0.1666666666666668,
        0.0416666666666197,
        0.008333333333319015,
        0.0013888888920629621,
        0.00019841269894192023,
        2.480151619071143e-05,
        2.7557235274147866e-06,
        2.7622290561899714e-07,
        2.5112312805743695e-08,
    ];
    /// `2 atanh(s) = 2 s + s z P(z)`, `z = s^2` in `[0, 0.0295]`;
    /// rel. err 2^-59.
    const LN_P: [f64; 7] = [
        0.6666666666666735,
        0.3999999999940701,
        0.28571428744257704,
        0.22222198365593987,
        0.1818357588130985,
        0.1531373632486765,
        0.14799271243843815,
    ];
    /// `sin(r) = r + r^3 (S1 + z S(z))`, `z = r^2 <= (pi/4)^2`;
    /// rel. err 2^-57.2.
    const SIN_S1: f64 = -0.16666666666666632;
    const SIN_S: [f64; 5] = [
        0.008333333333322413,
        -0.00019841269829807816,
        2.755731369191982e-06,
        -2.5050758115473864e-08,
        1.5896795662363716e-10,
    ];
    /// `cos(r) = 1 - z/2 + z^2 C(z)`, `z = r^2 <= (pi/4)^2`; abs. err 2^-60.
    const COS_C: [f64; 6] = [
        0.0416666666666666,
        -0.0013888888888874125,
        2.480158728948219e-05,
        -2.755731435233371e-07,
        2.087572327321636e-09,
        -1.1359647796836828e-11,
    ];
    /// `erf(x) = x + x P(x^2)`, `|x| <= 0.84375`; rel. err 2^-55.4.
    /// (`P(0) = 2/sqrt(pi) - 1`.)
    const ERF_P: [f64; 11] = [
        0.12837916709551256,
        -0.37612638903183376,
        0.11283791670934173,
        -0.026866170640577305,
        0.005223977574543396,
        -0.0008548323695606693,
        0.0001205519690779609,
        -1.4922061921152647e-05,
        1.6400920290236944e-06,
        -1.5709787450634726e-07,
        1.0713480970349796e-08,
    ];
    /// `tanh(x) = x + x z P(z)`, `z = x^2` in `[0, 0.3025]`; rel. err 2^-55.1.
    const TANH_P: [f64; 10] = [
        -0.3333333333333231,
        0.13333333333168562,
        -0.053968253876009294,
        0.021869485973140326,
        -0.008863194481737294,
        0.0035917195161346053,
        -0.0014532158520576758,
        0.0005791343032718098,
        -0.00021029791694975394,
        5.1018342113093766e-05,
    ];
    /// `erfc(x) = exp(-x^2) G(t)`, `t = (x - 3) / (x + 3)`, `x` in
    /// `[0.84375, 6]`; absolute error of `erfc` 2^-56.3.
    const ERFC_G: [f64; 13] = [
        0.17900115118138005,
        -0.3262335600438507,
        0.24560380169806031,
        -0.15011593647251517,
        0.0716658407195617,
        -0.024392450654404214,
        0.004269493535372957,
        0.000709399370940623,
        -0.0005919750214819473,
        5.5740669354114336e-05,
        7.804105111465676e-05,
        -2.1330007712767457e-06,
        -5.306167718076049e-06,
    ];

    // ---------------------------------------------------------------------
    // inverse trigonometric functions

    /// Shared front end of asin/acos: returns `(z, r)` with
    /// `z = x^2` (`|x| < 0.5`) or `(1 - |x|) / 2`, and `r = z P(z)`.
    #[inline(always)]
    fn asin_front(x: f64, small: bool) -> (f64, f64) {
        let a = x.abs();
        let z = sel(small, x * x, (1.0 - a) * 0.5);
        (z, z * poly(z, &ASIN_P))
    }

    /// `(w, c)` with `w = s = sqrt(z)` truncated to 21 bits (`w * w` exact)
    /// and `w + c = sqrt(z)` to about 2^-70 relative.
    #[inline(always)]
    fn split_sqrt(z: f64, s: f64) -> (f64, f64) {
        let w = trunc32(s);
        let den = s + w;
        let c = (z - w * w) / sel(den == 0.0, 1.0, den);
        (w, c)
    }

    #[inline(always)]
    pub fn asin(x: f64) -> f64 {
        let a = x.abs();
        let small = a < 0.5;
        let (z, r) = asin_front(x, small);
        let res_small = a + a * r;
        // asin(a) = pi/2 - 2 asin(s), s = sqrt(z) = w + c
        let s = z.sqrt();
        let (w, c) = split_sqrt(z, s);
        let p = 2.0 * s * r - (PIO2_LO - 2.0 * c);
        let q = PIO4_HI - 2.0 * w;
        let res_large = PIO4_HI - (p - q);
        sel(small, res_small, res_large).copysign(x)
    }

    #[inline(always)]
    pub fn acos(x: f64) -> f64 {
        let small = x.abs() < 0.5;
        let (z, r) = asin_front(x, small);
        // pi/2 - (x + x r)
        let res_small = PIO2_HI - (x - (PIO2_LO - x * r));
        let s = z.sqrt();
        // x <= -0.5: pi - 2 asin(s)
        let res_neg = PI_HI - 2.0 * (s + (r * s - PIO2_LO));
        // x >= 0.5: 2 asin(s). (No split square root: there is no
        // cancellation here, and dropping the division makes acos ~20%
        // faster while the measured error stays at 1 ULP.)
        let res_pos = 2.0 * (s + r * s);
        sel(small, res_small, sel(x < 0.0, res_neg, res_pos))
    }

    /// `atan(ay / ax)` for `ay, ax >= 0`, not both zero nor both infinite,
    /// and (for `ax != 1`) scaled so that `3 max(ax, ay)` does not overflow.
    /// With `neg`, returns `pi - atan(ay / ax)` instead (the constant and the
    /// sign of the reduced argument are swapped, so no extra rounding).
    #[inline(always)]
    fn atan_kernel(ay: f64, ax: f64, neg: bool) -> f64 {
        // Regions of a = ay / ax: [0,7/16) [7/16,11/16) [11/16,19/16)
        // [19/16,39/16) [39/16,inf]. Rounded products only blur the break
        // points, which is harmless.
        let r1 = ay < ax * 0.4375;
        let r2 = ay < ax * 0.6875;
        let r3 = ay < ax * 1.1875;
        let r4 = ay < ax * 2.4375;
        // region 5: atan(a) = pi/2 + atan(-1/a)
        let mut num = -ax;
        let mut den = ay;
        let mut hi = PIO2_HI;
        let mut lo = PIO2_LO;
        // region 4: atan(3/2) + atan((a - 3/2) / (1 + 3a/2))
        num = sel(r4, ay - 1.5 * ax, num);
        den = sel(r4, ax + 1.5 * ay, den);
        hi = sel(r4, sel(neg, PI_M_ATAN_ONE_HALF_HI, ATAN_ONE_HALF_HI), hi);
        lo = sel(r4, sel(neg, PI_M_ATAN_ONE_HALF_LO, ATAN_ONE_HALF_LO), lo);
        // region 3: pi/4 + atan((a - 1) / (a + 1))
        num = sel(r3, ay - ax, num);
        den = sel(r3, ay + ax, den);
        hi = sel(r3, sel(neg, PI3O4_HI, PIO4_HI), hi);
        lo = sel(r3, sel(neg, PI3O4_LO, PIO4_LO), lo);
        // region 2: atan(1/2) + atan((2a - 1) / (2 + a))
        num = sel(r2, 2.0 * ay - ax, num);
        den = sel(r2, 2.0 * ax + ay, den);
        hi = sel(r2, sel(neg, PI_M_ATAN_HALF_HI, ATAN_HALF_HI), hi);
        lo = sel(r2, sel(neg, PI_M_ATAN_HALF_LO, ATAN_HALF_LO), lo);
        // region 1: atan(a)
        num = sel(r1, ay, num);
        den = sel(r1, ax, den);
        hi = sel(r1, sel(neg, PI_HI, 0.0), hi);
        lo = sel(r1, sel(neg, PI_LO, 0.0), lo);

        let t = sel(neg, -num, num) / den;
        let z = t * t;
        let p = t * (z * poly(z, &ATAN_P));
        hi + (t + (p + lo))
    }

    #[inline(always)]
    pub fn atan(x: f64) -> f64 {
        atan_kernel(x.abs(), 1.0, false).copysign(x)
    }

    #[inline(always)]
    pub fn atan2(y: f64, x: f64) -> f64 {
        let ax = x.abs();
        let ay = y.abs();
        // Rescale (exactly, by a power of two) near the overflow and
        // underflow thresholds; the quotient is unchanged.
        let m = sel(ay > ax, ay, ax);
        let sc = sel(
            m > 1.0e300,
            1.0 / 256.0,
            sel(m < 1.0e-300, 1_152_921_504_606_846_976.0, 1.0),
        );
        let ax = ax * sc;
        let ay = ay * sc;
        let inf = f64::INFINITY;
        let both_inf = (ax == inf) & (ay == inf);
        let both_zero = (ax == 0.0) & (ay == 0.0);
        let ax = sel(both_inf | both_zero, 1.0, ax);
        let ay = sel(both_inf, 1.0, ay);
        atan_kernel(ay, ax, x.is_sign_negative()).copysign(y)
    }

    // ---------------------------------------------------------------------
    // exponentials and logarithms

    /// `2^(m - 1023)` from a biased exponent `m` in `[1, 2046]`.
    #[inline(always)]
    fn pow2_biased(m: u64) -> f64 {
        f64::from_bits(m << 52)
    }

    /// Cody–Waite reduction `x = n ln2 + hi - lo` for `|x| <= 746`; returns
    /// `(hi, lo, m)` with `hi` exact and `m = n + 2046` (biased twice).
    #[inline(always)]
    fn exp_reduce(x: f64) -> (f64, f64, u64) {
        let kd = x * LOG2_E + SHIFT;
        let n = kd - SHIFT;
        let hi = x - n * LN2_HI;
        let lo = n * LN2_LO;
        let m = kd.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(2046);
        (hi, lo, m)
    }

    /// `expm1(r) - r` for `|r| <= 0.3466`.
    #[inline(always)]
    fn expm1_tail(r: f64) -> f64 {
        r * r * (0.5 + r * poly(r, &EXPM1_Q))
    }

    #[inline(always)]
    pub fn exp(x: f64) -> f64 {
        // Clamp (NaN passes through); exp(-746) < 2^-1075 rounds to 0 and
        // exp(710) overflows, so the clamped values give the right answers.
        let xc = sel(x > 710.0, 710.0, sel(x < -746.0, -746.0, x));
        let (hi, lo, m) = exp_reduce(xc);
        let r = hi - lo;
        let p = 1.0 + (hi + (expm1_tail(r) - lo));
        // 2^n = 2^n1 2^n2 with n1 = floor(n/2): both factors are normal, and
        // the final product rounds once (gradual underflow, overflow).
        let m1 = m >> 1;
        p * pow2_biased(m1) * pow2_biased(m - m1)
    }

    #[inline(always)]
    pub fn expm1(x: f64) -> f64 {
        // expm1(-50) rounds to -1; exp(710) overflows.
        let xc = sel(x > 710.0, 710.0, sel(x < -50.0, -50.0, x));
        let (hi, lo, m) = exp_reduce(xc);
        let r = hi - lo;
        let c = (hi - r) - lo;
        // expm1(r + c) = r + h with the reduction error folded in
        let h = expm1_tail(r) + (c + c * r);
        // 2^n (r + h) + 2^n - 1 = 2^n1 ((2^n2 - 2^-n1) + 2^n2 r + 2^n2 h)
        let m1 = m >> 1;
        let s1 = pow2_biased(m1);
        let s2 = pow2_biased(m - m1);
        let si1 = pow2_biased(2046u64.wrapping_sub(m1));
        (((s2 - si1) + s2 * r) + s2 * h) * s1
    }

    /// Splits a positive normal `u` into `(k, f)` with `u = 2^k (1 + f)`,
    /// `1 + f` in `[sqrt(2)/2, sqrt(2))`; `k` is returned as a float.
    #[inline(always)]
    fn ln_split(u: f64) -> (f64, f64) {
        let b = u.to_bits().wrapping_add(0x0009_5f62_0000_0000);
        // exponent field as an exact float, without an int->float convert
        let kf = f64::from_bits((b >> 52) | 0x4330_0000_0000_0000) - (4503599627370496.0 + 1023.0);
        let m = f64::from_bits((b & 0x000f_ffff_ffff_ffff) + 0x3fe6_a09e_0000_0000);
        (kf, m - 1.0)
    }

    /// `ln(1 + f) - f + f^2/2` pieces: returns `(hfsq, s (hfsq + R))`.
    #[inline(always)]
    fn ln_kernel(f: f64) -> (f64, f64) {
        let hfsq = 0.5 * f * f;
        let s = f / (2.0 + f);
        let z = s * s;
        (hfsq, s * (hfsq + z * poly(z, &LN_P)))
    }

    #[inline(always)]
    pub fn ln(x: f64) -> f64 {
        let sub = x < f64::MIN_POSITIVE;
        let xs = sel(sub, x * 18014398509481984.0, x); // 2^54
        let (kf, f) = ln_split(xs);
        let kf = kf - sel(sub, 54.0, 0.0);
        let (hfsq, t) = ln_kernel(f);
        let res = kf * LN2_HI - ((hfsq - (t + kf * LN2_LO)) - f);
        let res = sel(x == f64::INFINITY, x, res);
        let res = sel(x == 0.0, f64::NEG_INFINITY, res);
        sel(x < 0.0, f64::NAN, sel(x.is_nan(), x, res))
    }

    #[inline(always)]
    pub fn ln1p(x: f64) -> f64 {
        let u = 1.0 + x;
        // exact rounding error of u (Fast2Sum with the larger operand first)
        let err = sel(x.abs() <= 1.0, x - (u - 1.0), 1.0 - (u - x));
        let c = err / u;
        let (kf, f) = ln_split(u);
        let (hfsq, t) = ln_kernel(f);
        let res = kf * LN2_HI - ((hfsq - (t + (kf * LN2_LO + c))) - f);
        let res = sel(x == f64::INFINITY, x, res);
        let res = sel(x == -1.0, f64::NEG_INFINITY, res);
        sel(x < -1.0, f64::NAN, sel(x.is_nan(), x, res))
    }

    // ---------------------------------------------------------------------
    // tanh, erf

    #[inline(always)]
    pub fn tanh(x: f64) -> f64 {
        let a = x.abs();
        let small = a < 0.55;
        let z = a * a;
        let res_small = a + a * (z * poly(z, &TANH_P));
        // tanh(a) = 1 - 2 / (expm1(2a) + 2); expm1 saturates to +inf
        let res_large = 1.0 - 2.0 / (expm1(2.0 * a) + 2.0);
        sel(small, res_small, res_large).copysign(x)
    }

    #[inline(always)]
    pub fn erf(x: f64) -> f64 {
        let a = x.abs();
        let small = a < 0.84375;
        let res_small = a + a * poly(a * a, &ERF_P);
        let ac = sel(a > 6.0, 6.0, a);
        let t = (ac - 3.0) / (ac + 3.0);
        let erfc = exp(-(ac * ac)) * poly(t, &ERFC_G);
        let res_large = 1.0 - erfc;
        sel(small, res_small, res_large).copysign(x)
    }

    // ---------------------------------------------------------------------
    // sin, cos

    /// Knuth's TwoSum: `(s, e)` with `s = fl(a + b)`, `s + e = a + b`.
    #[inline(always)]
    fn two_sum(a: f64, b: f64) -> (f64, f64) {
        let s = a + b;
        let bb = s - a;
        let e = (a - (s - bb)) + (b - bb);
        (s, e)
    }

    /// `x = n pi/2 + r + y` with `|r| <= pi/4 (1 + 2^-40)`, `|y| <= ulp(r)`;
    /// returns `(r, y, n mod 4 in the low bits)`.
    #[inline(always)]
    fn trig_reduce(x: f64) -> (f64, f64, u64) {
        let kd = x * FRAC_2_PI + SHIFT;
        let n = kd - SHIFT;
        let a = x - n * PIO2_1; // exact
        let (b, eb) = two_sum(a, -(n * PIO2_2));
        let (c, ec) = two_sum(b, -(n * PIO2_3));
        let tail = (eb + ec) - n * PIO2_4;
        let r = c + tail;
        let y = (c - r) + tail;
        (r, y, kd.to_bits())
    }

    /// `sin(r + y)` for `|r| <= pi/4`, `|y|` tiny.
    #[inline(always)]
    fn ksin(r: f64, y: f64) -> f64 {
        let z = r * r;
        let v = z * r;
        let p = poly(z, &SIN_S);
        r - ((z * (0.5 * y - v * p) - y) - v * SIN_S1)
    }

    /// `cos(r + y)` for `|r| <= pi/4`, `|y|` tiny.
    #[inline(always)]
    fn kcos(r: f64, y: f64) -> f64 {
        let z = r * r;
        let hz = 0.5 * z;
        let w = 1.0 - hz;
        let c = z * (z * poly(z, &COS_C));
        w + (((1.0 - w) - hz) + (c - r * y))
    }

    /// Quadrant `q`: 0 sin, 1 cos, 2 -sin, 3 -cos.
    #[inline(always)]
    fn trig_select(r: f64, y: f64, q: u64) -> f64 {
        let s = ksin(r, y);
        let c = kcos(r, y);
        let v = sel((q & 1) != 0, c, s);
        f64::from_bits(v.to_bits() ^ ((q & 2) << 62))
    }

    /// `pi/2 - PIO2_1 - PIO2_2`, rounded.
    const PIO2_3T: f64 = 2.0222662487959506e-21;
    /// `sin(r) = r + r z S(z)` to 2^-37 (for the f32 functions).
    const SIN32_S: [f64; 4] = [
        -0.16666666641606986,
        0.008333329383582356,
        -0.00019839334083020816,
        2.718304228044673e-06,
    ];
    /// `cos(r) = 1 - z/2 + z^2 C(z)` to 2^-33 absolute (for the f32 functions).
    const COS32_C: [f64; 3] = [0.041666646854597096, -0.0013887366909828942, 2.443837945991783e-05];

    /// `f32` sine (`quadrant_offset = 0`) or cosine (`1`), evaluated in f64
    /// with a three-part Cody–Waite reduction and short polynomials.
    #[inline(always)]
    pub fn sincos_f32(x: f32, quadrant_offset: u64) -> f32 {
        let x = x as f64;
        let kd = x * FRAC_2_PI + SHIFT;
        let n = kd - SHIFT;
        let r = ((x - n * PIO2_1) - n * PIO2_2) - n * PIO2_3T;
        let z = r * r;
        let s = r + r * (z * poly(z, &SIN32_S));
        let c = (1.0 - 0.5 * z) + z * z * poly(z, &COS32_C);
        let q = kd.to_bits().wrapping_add(quadrant_offset);
        let v = sel((q & 1) != 0, c, s);
        let v = f64::from_bits(v.to_bits() ^ ((q & 2) << 62));
        sel(x.abs() < TRIG_MAX, v, f64::NAN) as f32
    }

    /// Above this the reduction is meaningless (NaN is returned).
    const TRIG_MAX: f64 = 1125899906842624.0; // 2^50

    #[inline(always)]
    pub fn sin(x: f64) -> f64 {
        let (r, y, q) = trig_reduce(x);
        sel(x.abs() < TRIG_MAX, trig_select(r, y, q), f64::NAN)
    }

    #[inline(always)]
    pub fn cos(x: f64) -> f64 {
        let (r, y, q) = trig_reduce(x);
        sel(x.abs() < TRIG_MAX, trig_select(r, y, q.wrapping_add(1)), f64::NAN)
    }
}

/// The `f32` algorithms: the same schemes as [`imp`] with coefficients fitted
/// for single precision (so twice the SIMD width and shorter polynomials).
/// `vsin`/`vcos` are not here: they reduce the argument in `f64`.
mod imp32 {
    use core::f32::consts::{FRAC_PI_2, FRAC_PI_4, LOG2_E, PI};

    #[inline(always)]
    fn sel(c: bool, a: f32, b: f32) -> f32 {
        if c {
            a
        } else {
            b
        }
    }

    #[inline(always)]
    fn poly<const N: usize>(x: f32, c: &[f32; N]) -> f32 {
        // Estrin's scheme: pair up terms with x, then x^2, x^4, ...
        // (dependency depth ~2 log2(N) instead of 2N, which lets
        // out-of-order execution overlap more loop iterations).
        let mut t = *c;
        let mut len = N;
        let mut p = x;
        while len > 1 {
            let half = len / 2;
            let mut i = 0;
            while i < half {
                t[i] = t[2 * i] + t[2 * i + 1] * p;
                i += 1;
            }
            if len % 2 == 1 {
                t[half] = t[len - 1];
            }
            len = half + len % 2;
            p = p * p;
        }
        t[0]
    }

    /// `2^23 + 2^22`, the round-to-integer shift.
    const SHIFT: f32 = 12582912.0;

    const PIO2_HI: f32 = FRAC_PI_2;
    const PIO2_LO: f32 = -4.371139e-8;
    const PIO4_HI: f32 = FRAC_PI_4;
    const PIO4_LO: f32 = -2.1855694e-8;
    const PI_HI: f32 = PI;
    const PI_LO: f32 = -8.742278e-8;
    const ATAN_HALF_HI: f32 = 0.4636476;
    const ATAN_HALF_LO: f32 = 5.0121587e-9;
    const ATAN_ONE_HALF_HI: f32 = 0.98279375;
    const ATAN_ONE_HALF_LO: f32 = -2.5131424e-8;
    const PI_M_ATAN_HALF_HI: f32 = 2.6779451;
    const PI_M_ATAN_HALF_LO: f32 = -9.243494e-8;
    const PI3O4_HI: f32 = 2.3561945;
    const PI3O4_LO: f32 = -5.9624403e-9;
    const PI_M_ATAN_ONE_HALF_HI: f32 = 2.158799;
    const PI_M_ATAN_ONE_HALF_LO: f32 = -2.6867106e-9;
    /// ln 2 rounded to 15 bits: `n * LN2_HI` is exact for `|n| < 2^9`.
    const LN2_HI: f32 = 0.69314575;
    const LN2_LO: f32 = 1.4286068e-6;

    // Remez fits (coefficients rounded to f32 one at a time, refitting the
    // rest); same meaning as the f64 tables.
    /// rel. err 2^-27.6
    const ASIN_P: [f32; 5] = [0.16666752, 0.074953094, 0.045469154, 0.024184743, 0.042158388];
    /// rel. err 2^-29.5
    const ATAN_P: [f32; 5] = [-0.33333302, 0.19997627, -0.14227591, 0.10477033, -0.057866726];
    /// rel. err 2^-31
    const EXPM1_Q: [f32; 5] = [0.16666667, 0.04166647, 0.008333134, 0.0013934498, 0.00020016533];
    /// rel. err 2^-30.2
    const LN_P: [f32; 3] = [0.66666776, 0.39977553, 0.29872137];
    /// rel. err 2^-29.7
    const TANH_P: [f32; 5] = [-0.33333316, 0.13332544, -0.053847548, 0.021050714, -0.0062428494];
    /// `erf(x) = x + x P(x^2)`, `|x| <= 0.84375`; rel. err 2^-27.3
    const ERF_P: [f32; 6] = [
        0.12837917,
        -0.37612593,
        0.11282912,
        -0.026809534,
        0.0050618746,
        -0.00063749,
    ];
    /// `erfc(x) = exp(-x^2) G((x - 2) / (x + 2))`, `x` in `[0.84375, 4]`;
    /// abs. err 2^-31.5
    const ERFC_G: [f32; 6] = [
        0.25539568,
        -0.4271858,
        0.24165584,
        -0.07900651,
        0.0036535293,
        0.0071185804,
    ];

    #[inline(always)]
    fn asin_front(x: f32, small: bool) -> (f32, f32) {
        let a = x.abs();
        let z = sel(small, x * x, (1.0 - a) * 0.5);
        (z, z * poly(z, &ASIN_P))
    }

    #[inline(always)]
    pub fn asin(x: f32) -> f32 {
        let a = x.abs();
        let small = a < 0.5;
        let (z, r) = asin_front(x, small);
        let res_small = a + a * r;
        let s = z.sqrt();
        // s = w + c with w = s truncated to 12 bits (w * w exact)
        let w = f32::from_bits(s.to_bits() & 0xffff_f000);
        let den = s + w;
        let c = (z - w * w) / sel(den == 0.0, 1.0, den);
        let p = 2.0 * s * r - (PIO2_LO - 2.0 * c);
        let q = PIO4_HI - 2.0 * w;
        let res_large = PIO4_HI - (p - q);
        sel(small, res_small, res_large).copysign(x)
    }

    #[inline(always)]
    pub fn acos(x: f32) -> f32 {
        let small = x.abs() < 0.5;
        let (z, r) = asin_front(x, small);
        let res_small = PIO2_HI - (x - (PIO2_LO - x * r));
        let s = z.sqrt();
        let res_neg = PI_HI - 2.0 * (s + (r * s - PIO2_LO));
        let res_pos = 2.0 * (s + r * s);
        sel(small, res_small, sel(x < 0.0, res_neg, res_pos))
    }

    #[inline(always)]
    fn atan_kernel(ay: f32, ax: f32, neg: bool) -> f32 {
        let r1 = ay < ax * 0.4375;
        let r2 = ay < ax * 0.6875;
        let r3 = ay < ax * 1.1875;
        let r4 = ay < ax * 2.4375;
        let mut num = -ax;
        let mut den = ay;
        let mut hi = PIO2_HI;
        let mut lo = PIO2_LO;
        num = sel(r4, ay - 1.5 * ax, num);
        den = sel(r4, ax + 1.5 * ay, den);
        hi = sel(r4, sel(neg, PI_M_ATAN_ONE_HALF_HI, ATAN_ONE_HALF_HI), hi);
        lo = sel(r4, sel(neg, PI_M_ATAN_ONE_HALF_LO, ATAN_ONE_HALF_LO), lo);
        num = sel(r3, ay - ax, num);
        den = sel(r3, ay + ax, den);
        hi = sel(r3, sel(neg, PI3O4_HI, PIO4_HI), hi);
        lo = sel(r3, sel(neg, PI3O4_LO, PIO4_LO), lo);
        num = sel(r2, 2.0 * ay - ax, num);
        den = sel(r2, 2.0 * ax + ay, den);
        hi = sel(r2, sel(neg, PI_M_ATAN_HALF_HI, ATAN_HALF_HI), hi);
        lo = sel(r2, sel(neg, PI_M_ATAN_HALF_LO, ATAN_HALF_LO), lo);
        num = sel(r1, ay, num);
        den = sel(r1, ax, den);
        hi = sel(r1, sel(neg, PI_HI, 0.0), hi);
        lo = sel(r1, sel(neg, PI_LO, 0.0), lo);
        let t = sel(neg, -num, num) / den;
        let z = t * t;
        let p = t * (z * poly(z, &ATAN_P));
        hi + (t + (p + lo))
    }

    #[inline(always)]
    pub fn atan(x: f32) -> f32 {
        atan_kernel(x.abs(), 1.0, false).copysign(x)
    }

    #[inline(always)]
    pub fn atan2(y: f32, x: f32) -> f32 {
        let ax = x.abs();
        let ay = y.abs();
        let m = sel(ay > ax, ay, ax);
        let sc = sel(m > 1.0e30, 1.0 / 256.0, sel(m < 1.0e-30, 1_099_511_627_776.0, 1.0));
        let ax = ax * sc;
        let ay = ay * sc;
        let inf = f32::INFINITY;
        let both_inf = (ax == inf) & (ay == inf);
        let both_zero = (ax == 0.0) & (ay == 0.0);
        let ax = sel(both_inf | both_zero, 1.0, ax);
        let ay = sel(both_inf, 1.0, ay);
        atan_kernel(ay, ax, x.is_sign_negative()).copysign(y)
    }

    #[inline(always)]
    fn pow2_biased(m: u32) -> f32 {
        f32::from_bits(m << 23)
    }

    /// `x = n ln2 + hi - lo`; returns `(hi, lo, n + 254)`.
    #[inline(always)]
    fn exp_reduce(x: f32) -> (f32, f32, u32) {
        let kd = x * LOG2_E + SHIFT;
        let n = kd - SHIFT;
        let hi = x - n * LN2_HI;
        let lo = n * LN2_LO;
        let m = kd.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(254);
        (hi, lo, m)
    }

    #[inline(always)]
    fn expm1_tail(r: f32) -> f32 {
        r * r * (0.5 + r * poly(r, &EXPM1_Q))
    }

    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        let xc = sel(x > 89.0, 89.0, sel(x < -104.0, -104.0, x));
        let (hi, lo, m) = exp_reduce(xc);
        let r = hi - lo;
        let p = 1.0 + (hi + (expm1_tail(r) - lo));
        let m1 = m >> 1;
        p * pow2_biased(m1) * pow2_biased(m - m1)
    }

    #[inline(always)]
    pub fn expm1(x: f32) -> f32 {
        let xc = sel(x > 89.0, 89.0, sel(x < -20.0, -20.0, x));
        let (hi, lo, m) = exp_reduce(xc);
        let r = hi - lo;
        let c = (hi - r) - lo;
        let h = expm1_tail(r) + (c + c * r);
        let m1 = m >> 1;
        let s1 = pow2_biased(m1);
        let s2 = pow2_biased(m - m1);
        let si1 = pow2_biased(254u32.wrapping_sub(m1));
        (((s2 - si1) + s2 * r) + s2 * h) * s1
    }

    #[inline(always)]
    fn ln_split(u: f32) -> (f32, f32) {
        let b = u.to_bits().wrapping_add(0x004a_fb0d);
        let kf = f32::from_bits((b >> 23) | 0x4b00_0000) - (8388608.0 + 127.0);
        let m = f32::from_bits((b & 0x007f_ffff) + 0x3f35_04f3);
        (kf, m - 1.0)
    }

    #[inline(always)]
    fn ln_kernel(f: f32) -> (f32, f32) {
        let hfsq = 0.5 * f * f;
        let s = f / (2.0 + f);
        let z = s * s;
        (hfsq, s * (hfsq + z * poly(z, &LN_P)))
    }

    #[inline(always)]
    pub fn ln(x: f32) -> f32 {
        let sub = x < f32::MIN_POSITIVE;
        let xs = sel(sub, x * 33554432.0, x); // 2^25
        let (kf, f) = ln_split(xs);
        let kf = kf - sel(sub, 25.0, 0.0);
        let (hfsq, t) = ln_kernel(f);
        let res = kf * LN2_HI - ((hfsq - (t + kf * LN2_LO)) - f);
        let res = sel(x == f32::INFINITY, x, res);
        let res = sel(x == 0.0, f32::NEG_INFINITY, res);
        sel(x < 0.0, f32::NAN, sel(x.is_nan(), x, res))
    }

    #[inline(always)]
    pub fn ln1p(x: f32) -> f32 {
        let u = 1.0 + x;
        let err = sel(x.abs() <= 1.0, x - (u - 1.0), 1.0 - (u - x));
        let c = err / u;
        let (kf, f) = ln_split(u);
        let (hfsq, t) = ln_kernel(f);
        let res = kf * LN2_HI - ((hfsq - (t + (kf * LN2_LO + c))) - f);
        let res = sel(x == f32::INFINITY, x, res);
        let res = sel(x == -1.0, f32::NEG_INFINITY, res);
        sel(x < -1.0, f32::NAN, sel(x.is_nan(), x, res))
    }

    #[inline(always)]
    pub fn tanh(x: f32) -> f32 {
        let a = x.abs();
        let small = a < 0.55;
        let z = a * a;
        let res_small = a + a * (z * poly(z, &TANH_P));
        let res_large = 1.0 - 2.0 / (expm1(2.0 * a) + 2.0);
        sel(small, res_small, res_large).copysign(x)
    }

    #[inline(always)]
    pub fn erf(x: f32) -> f32 {
        let a = x.abs();
        let small = a < 0.84375;
        let res_small = a + a * poly(a * a, &ERF_P);
        let ac = sel(a > 4.0, 4.0, a);
        let t = (ac - 2.0) / (ac + 2.0);
        let erfc = exp(-(ac * ac)) * poly(t, &ERFC_G);
        sel(small, res_small, 1.0 - erfc).copysign(x)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const TWO: Self = 2.0;
    const HALF: Self = 0.5;
    const PI: Self = core::f64::consts::PI;
    const EPSILON: Self = f64::EPSILON;
    const MAX: Self = f64::MAX;
    const MIN_POSITIVE: Self = f64::MIN_POSITIVE;

    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        f64::min(self, o)
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        f64::max(self, o)
    }
    #[inline(always)]
    fn clamp_unit(self) -> Self {
        let x = if self < -1.0 { -1.0 } else { self };
        if x > 1.0 {
            1.0
        } else {
            x
        }
    }
    #[inline(always)]
    fn fma(self, b: Self, c: Self) -> Self {
        f64::mul_add(self, b, c)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    #[inline(always)]
    fn select(cond: bool, a: Self, b: Self) -> Self {
        if cond {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn vacos(self) -> Self {
        imp::acos(self)
    }
    #[inline(always)]
    fn vasin(self) -> Self {
        imp::asin(self)
    }
    #[inline(always)]
    fn vatan(self) -> Self {
        imp::atan(self)
    }
    #[inline(always)]
    fn vatan2(self, x: Self) -> Self {
        imp::atan2(self, x)
    }
    #[inline(always)]
    fn vexp(self) -> Self {
        imp::exp(self)
    }
    #[inline(always)]
    fn vln(self) -> Self {
        imp::ln(self)
    }
    #[inline(always)]
    fn vln1p(self) -> Self {
        imp::ln1p(self)
    }
    #[inline(always)]
    fn vexpm1(self) -> Self {
        imp::expm1(self)
    }
    #[inline(always)]
    fn vtanh(self) -> Self {
        imp::tanh(self)
    }
    #[inline(always)]
    fn verf(self) -> Self {
        imp::erf(self)
    }
    #[inline(always)]
    fn vsin(self) -> Self {
        imp::sin(self)
    }
    #[inline(always)]
    fn vcos(self) -> Self {
        imp::cos(self)
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const TWO: Self = 2.0;
    const HALF: Self = 0.5;
    const PI: Self = core::f32::consts::PI;
    const EPSILON: Self = f32::EPSILON;
    const MAX: Self = f32::MAX;
    const MIN_POSITIVE: Self = f32::MIN_POSITIVE;

    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        f32::min(self, o)
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        f32::max(self, o)
    }
    #[inline(always)]
    fn clamp_unit(self) -> Self {
        let x = if self < -1.0 { -1.0 } else { self };
        if x > 1.0 {
            1.0
        } else {
            x
        }
    }
    #[inline(always)]
    fn fma(self, b: Self, c: Self) -> Self {
        f32::mul_add(self, b, c)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    #[inline(always)]
    fn select(cond: bool, a: Self, b: Self) -> Self {
        if cond {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn vacos(self) -> Self {
        imp32::acos(self)
    }
    #[inline(always)]
    fn vasin(self) -> Self {
        imp32::asin(self)
    }
    #[inline(always)]
    fn vatan(self) -> Self {
        imp32::atan(self)
    }
    #[inline(always)]
    fn vatan2(self, x: Self) -> Self {
        imp32::atan2(self, x)
    }
    #[inline(always)]
    fn vexp(self) -> Self {
        imp32::exp(self)
    }
    #[inline(always)]
    fn vln(self) -> Self {
        imp32::ln(self)
    }
    #[inline(always)]
    fn vln1p(self) -> Self {
        imp32::ln1p(self)
    }
    #[inline(always)]
    fn vexpm1(self) -> Self {
        imp32::expm1(self)
    }
    #[inline(always)]
    fn vtanh(self) -> Self {
        imp32::tanh(self)
    }
    #[inline(always)]
    fn verf(self) -> Self {
        imp32::erf(self)
    }
    #[inline(always)]
    fn vsin(self) -> Self {
        imp::sincos_f32(self, 0)
    }
    #[inline(always)]
    fn vcos(self) -> Self {
        imp::sincos_f32(self, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::Real;
    use proptest::prelude::*;

    // ---------------------------------------------------------------------
    // references and ULP distance

    mod c {
        extern "C" {
            pub fn erf(x: f64) -> f64;
            pub fn erff(x: f32) -> f32;
        }
    }
    fn erf_ref(x: f64) -> f64 {
        // SAFETY: C99 `erf` from the platform libm (linked by std); pure.
        unsafe { c::erf(x) }
    }
    fn erff_ref(x: f32) -> f32 {
        // SAFETY: C99 `erff` from the platform libm (linked by std); pure.
        unsafe { c::erff(x) }
    }

    /// Maps floats to integers monotonically (`-0` and `+0` both to 0).
    fn ord(bits: i64) -> i64 {
        if bits < 0 {
            i64::MIN - bits
        } else {
            bits
        }
    }

    /// ULP distance; 0 for two NaNs, `u64::MAX` for exactly one NaN.
    fn ulp64(a: f64, b: f64) -> u64 {
        match (a.is_nan(), b.is_nan()) {
            (true, true) => 0,
            (false, false) => {
                let d = ord(a.to_bits() as i64) as i128 - ord(b.to_bits() as i64) as i128;
                d.unsigned_abs() as u64
            }
            _ => u64::MAX,
        }
    }

    fn ulp32(a: f32, b: f32) -> u64 {
        match (a.is_nan(), b.is_nan()) {
            (true, true) => 0,
            (false, false) => {
                let oa = ord((a.to_bits() as i32) as i64 * (1 << 32));
                let ob = ord((b.to_bits() as i32) as i64 * (1 << 32));
                ((oa as i128 - ob as i128).unsigned_abs() >> 32) as u64
            }
            _ => u64::MAX,
        }
    }

    /// Required bound of the specification, for both precisions.
    const MAX_ULP: u64 = 4;

    /// Runs `ours` against `reference` on `xs`; prints and returns the max
    /// ULP error, and panics if it exceeds `MAX_ULP`.
    fn check64<X: Copy + Default + core::fmt::Debug>(
        name: &str,
        ours: impl Fn(X) -> f64,
        reference: impl Fn(X) -> f64,
        xs: impl IntoIterator<Item = X>,
    ) -> u64 {
        let (mut worst, mut at, mut n) = (0u64, X::default(), 0usize);
        for x in xs {
            n += 1;
            let (o, r) = (ours(x), reference(x));
            let u = ulp64(o, r);
            if u > worst {
                worst = u;
                at = x;
            }
        }
        println!("f64 {name:<8} max {worst} ulp over {n} points (worst x = {at:?})");
        assert!(
            worst <= MAX_ULP,
            "f64 {name}: {worst} ulp at x = {at:?}: ours {:e}, std {:e}",
            ours(at),
            reference(at)
        );
        worst
    }

    fn check32<X: Copy + Default + core::fmt::Debug>(
        name: &str,
        ours: impl Fn(X) -> f32,
        reference: impl Fn(X) -> f32,
        xs: impl IntoIterator<Item = X>,
    ) -> u64 {
        let (mut worst, mut at, mut n) = (0u64, X::default(), 0usize);
        for x in xs {
            n += 1;
            let u = ulp32(ours(x), reference(x));
            if u > worst {
                worst = u;
                at = x;
            }
        }
        println!("f32 {name:<8} max {worst} ulp over {n} points (worst x = {at:?})");
        assert!(
            worst <= MAX_ULP,
            "f32 {name}: {worst} ulp at x = {at:?}: ours {:e}, std {:e}",
            ours(at),
            reference(at)
        );
        worst
    }

    // ---------------------------------------------------------------------
    // input generators

    /// Density multiplier: `VMATH_DENSE=<k>` makes every sweep `k` times
    /// denser (used for the accuracy figures quoted in the docs).
    fn dense(n: usize) -> usize {
        let k = std::env::var("VMATH_DENSE")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(1);
        n * k.max(1)
    }

    fn lin(a: f64, b: f64, n: usize) -> impl Iterator<Item = f64> {
        let n = dense(n);
        (0..=n).map(move |i| a + (b - a) * (i as f64 / n as f64))
    }

    /// `±10^e` for `e` evenly spaced in `[e0, e1]`, both signs.
    fn logspace(e0: f64, e1: f64, n: usize) -> impl Iterator<Item = f64> {
        let n = dense(n);
        (0..=n).flat_map(move |i| {
            let x = 10f64.powf(e0 + (e1 - e0) * (i as f64 / n as f64));
            [x, -x]
        })
    }

    /// `x` and its `k` neighbours on each side (bit patterns).
    fn around(x: f64, k: i64) -> impl Iterator<Item = f64> {
        (-k..=k).map(move |i| f64::from_bits((x.to_bits() as i64).wrapping_add(i) as u64))
    }

    /// Deterministic xorshift stream of raw f64 bit patterns.
    fn random_bits(seed: u64, n: usize) -> impl Iterator<Item = f64> {
        let mut s = seed | 1;
        (0..dense(n)).map(move |_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            f64::from_bits(s)
        })
    }

    /// Every `stride`-th f32 bit pattern (all magnitudes, both signs).
    fn f32_stride(stride: u64) -> impl Iterator<Item = f32> {
        let stride = (stride / dense(1) as u64).max(1);
        (0..(1u64 << 32))
            .step_by(stride as usize)
            .map(|b| f32::from_bits(b as u32))
    }

    fn finite(xs: impl Iterator<Item = f64>) -> impl Iterator<Item = f64> {
        xs.filter(|x| x.is_finite())
    }

    /// Specials every function is also checked on.
    const SPECIALS: [f64; 14] = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        5e-324,
        -5e-324,
        f64::MAX,
        -f64::MAX,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];

    // ---------------------------------------------------------------------
    // f64 sweeps

    #[test]
    fn f64_acos_asin() {
        let xs = || {
            lin(-1.0, 1.0, 400_000)
                .chain(logspace(-320.0, 0.0, 20_000))
                .chain(
                    [1.0, -1.0, 0.5, -0.5, 0.0, -0.0, 0.4375, -0.4375, 0.975, -0.975]
                        .into_iter()
                        .flat_map(|x| around(x, 200)),
                )
                .chain(finite(random_bits(1, 20_000)).filter(|x| x.abs() <= 1.0))
                .chain(SPECIALS)
                .chain([1.5, -1.5, f64::NAN])
        };
        check64("acos", |x| x.vacos(), f64::acos, xs());
        check64("asin", |x| x.vasin(), f64::asin, xs());
    }

    #[test]
    fn f64_atan() {
        let xs = lin(-4.0, 4.0, 400_000)
            .chain(logspace(-320.0, 308.0, 100_000))
            .chain(
                [0.4375, 0.6875, 1.1875, 2.4375, 1.0, 0.5, 1.5]
                    .into_iter()
                    .flat_map(|x| around(x, 200).chain(around(-x, 200))),
            )
            .chain(finite(random_bits(2, 50_000)))
            .chain(SPECIALS)
            .chain([f64::NAN]);
        check64("atan", |x| x.vatan(), f64::atan, xs);
    }

    #[test]
    fn f64_atan2() {
        // (grid of ~1000^2 pairs; not made denser by VMATH_DENSE)
        let mut vals: Vec<f64> = logspace(-320.0, 308.0, 300 / dense(1)).collect();
        vals.extend(SPECIALS);
        vals.extend(lin(-3.0, 3.0, 200 / dense(1)));
        let pairs = vals.iter().flat_map(|&y| vals.iter().map(move |&x| (y, x))).chain(
            // ratios near the kernel's break points
            [0.4375, 0.6875, 1.1875, 2.4375, 1.0].into_iter().flat_map(|q| {
                lin(-300.0, 300.0, 2_000).flat_map(move |e| {
                    let x = 10f64.powf(e * 0.999);
                    around(q * x, 3).flat_map(move |y| [(y, x), (-y, x), (y, -x), (-y, -x)])
                })
            }),
        );
        let worst = check64("atan2", |(y, x)| y.vatan2(x), |(y, x)| y.atan2(x), pairs);
        assert!(worst <= MAX_ULP);
        assert_eq!(0.0f64.vatan2(0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!((-0.0f64).vatan2(0.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(0.0f64.vatan2(-0.0), core::f64::consts::PI);
        assert_eq!((-0.0f64).vatan2(-0.0), -core::f64::consts::PI);
        assert_eq!(f64::INFINITY.vatan2(f64::INFINITY), core::f64::consts::FRAC_PI_4);
        assert!(f64::NAN.vatan2(1.0).is_nan() && 1.0f64.vatan2(f64::NAN).is_nan());
    }

    #[test]
    fn f64_exp_expm1() {
        let xs = || {
            lin(-746.0, 710.0, 400_000)
                .chain(lin(-1.0, 1.0, 100_000))
                .chain(logspace(-320.0, 2.9, 20_000))
                .chain(
                    [
                        709.782712893384,
                        -708.3964185322641,
                        -745.1332191019411,
                        -745.1332191019412,
                        0.34657359027997264,
                    ]
                    .into_iter()
                    .flat_map(|x| around(x, 200)),
                )
                .chain(finite(random_bits(3, 20_000)))
                .chain(SPECIALS)
                .chain([800.0, -800.0, f64::NAN])
        };
        check64("exp", |x| x.vexp(), f64::exp, xs());
        let ys = || {
            lin(-60.0, 710.0, 400_000)
                .chain(lin(-1.5, 1.5, 200_000))
                .chain(logspace(-320.0, 2.9, 20_000))
                .chain(
                    [709.782712893384, 0.34657359027997264, -0.34657359027997264]
                        .into_iter()
                        .flat_map(|x| around(x, 200)),
                )
                .chain(finite(random_bits(4, 20_000)))
                .chain(SPECIALS)
                .chain([f64::NAN])
        };
        check64("expm1", |x| x.vexpm1(), f64::exp_m1, ys());
    }

    #[test]
    fn f64_ln_ln1p() {
        let xs = logspace(-323.5, 308.25, 200_000)
            .map(f64::abs)
            .chain(lin(0.5, 2.0, 200_000))
            .chain(
                [
                    1.0,
                    2.0,
                    core::f64::consts::SQRT_2,
                    core::f64::consts::FRAC_1_SQRT_2,
                    f64::MIN_POSITIVE,
                ]
                .into_iter()
                .flat_map(|x| around(x, 200)),
            )
            .chain(finite(random_bits(5, 50_000)).map(f64::abs))
            .chain((1..20_000u64).map(|i| f64::from_bits(i * 225_179_981_368)))
            .chain(SPECIALS)
            .chain([-2.0, f64::NAN]);
        check64("ln", |x| x.vln(), f64::ln, xs);
        let ys = lin(-1.0, 2.0, 400_000)
            .chain(logspace(-320.0, 308.0, 100_000).filter(|&x| x > -1.0))
            .chain(
                [-1.0, -0.5, 0.0, 1.0, 0.41421356237309503, -0.2928932188134524]
                    .into_iter()
                    .flat_map(|x| around(x, 200)),
            )
            .chain(finite(random_bits(6, 50_000)))
            .chain(SPECIALS)
            .chain([-2.0, f64::NAN]);
        check64("ln1p", |x| x.vln1p(), f64::ln_1p, ys);
    }

    #[test]
    fn f64_tanh_erf() {
        let xs = || {
            lin(-25.0, 25.0, 400_000)
                .chain(lin(-1.0, 1.0, 100_000))
                .chain(logspace(-320.0, 308.0, 50_000))
                .chain(
                    [0.55, -0.55, 0.84375, -0.84375, 6.0, -6.0]
                        .into_iter()
                        .flat_map(|x| around(x, 200)),
                )
                .chain(finite(random_bits(7, 20_000)))
                .chain(SPECIALS)
                .chain([f64::NAN])
        };
        check64("tanh", |x| x.vtanh(), f64::tanh, xs());
        check64("erf", |x| x.verf(), erf_ref, xs());
    }

    #[test]
    fn f64_sin_cos() {
        let pio2 = core::f64::consts::FRAC_PI_2;
        let xs = || {
            lin(-10.0, 10.0, 300_000)
                .chain(lin(-1.6e6, 1.6e6, 300_000))
                .chain(logspace(-320.0, 6.2, 50_000))
                // nearest doubles to multiples of pi/2 (worst cancellation)
                .chain((1..dense(2_000) as u64).flat_map(move |i| {
                    let k = (i * i * 7919) % 1_000_000 + i;
                    around(k as f64 * pio2, 2).chain(around(-(k as f64) * pio2, 2))
                }))
                .chain(
                    [pio2, core::f64::consts::FRAC_PI_4]
                        .into_iter()
                        .flat_map(|x| around(x, 200)),
                )
                .chain(SPECIALS[..10].iter().copied())
                .chain([f64::NAN, f64::INFINITY])
        };
        check64("sin", |x| x.vsin(), f64::sin, xs());
        check64("cos", |x| x.vcos(), f64::cos, xs());
    }

    // ---------------------------------------------------------------------
    // f32 sweeps (strided walk over all bit patterns, plus dense ranges)

    #[test]
    fn f32_all() {
        const S: u64 = 16_411;
        let lin32 = |a: f32, b: f32, n: usize| lin(a as f64, b as f64, n).map(|x| x as f32);
        check32(
            "acos",
            |x| x.vacos(),
            f32::acos,
            f32_stride(S).chain(lin32(-1.0, 1.0, 100_000)),
        );
        check32(
            "asin",
            |x| x.vasin(),
            f32::asin,
            f32_stride(S).chain(lin32(-1.0, 1.0, 100_000)),
        );
        check32(
            "atan",
            |x| x.vatan(),
            f32::atan,
            f32_stride(S).chain(lin32(-4.0, 4.0, 100_000)),
        );
        check32(
            "exp",
            |x| x.vexp(),
            f32::exp,
            f32_stride(S).chain(lin32(-104.0, 89.0, 100_000)),
        );
        check32(
            "expm1",
            |x| x.vexpm1(),
            f32::exp_m1,
            f32_stride(S).chain(lin32(-20.0, 89.0, 100_000)),
        );
        check32(
            "ln",
            |x| x.vln(),
            f32::ln,
            f32_stride(S).chain(lin32(0.5, 2.0, 100_000)),
        );
        check32(
            "ln1p",
            |x| x.vln1p(),
            f32::ln_1p,
            f32_stride(S).chain(lin32(-1.0, 2.0, 100_000)),
        );
        check32(
            "tanh",
            |x| x.vtanh(),
            f32::tanh,
            f32_stride(S).chain(lin32(-10.0, 10.0, 100_000)),
        );
        check32(
            "erf",
            |x| x.verf(),
            erff_ref,
            f32_stride(S).chain(lin32(-5.0, 5.0, 100_000)),
        );
        let trig = || {
            f32_stride(S)
                .filter(|x| x.abs() <= 1.6e6)
                .chain(lin32(-1e5, 1e5, 100_000))
        };
        check32("sin", |x| x.vsin(), f32::sin, trig());
        check32("cos", |x| x.vcos(), f32::cos, trig());
        let vals: Vec<f32> = (0..1u64 << 32)
            .step_by(S as usize * 64)
            .map(|b| f32::from_bits(b as u32))
            .chain(lin32(-3.0, 3.0, 400 / dense(1)))
            .collect();
        let pairs = vals.iter().flat_map(|&y| vals.iter().map(move |&x| (y, x)));
        check32("atan2", |(y, x)| y.vatan2(x), |(y, x)| y.atan2(x), pairs);
    }

    // ---------------------------------------------------------------------
    // special values

    #[test]
    fn specials() {
        use core::f64::consts::{FRAC_PI_2, PI};
        let (inf, nan) = (f64::INFINITY, f64::NAN);
        assert_eq!(1.0f64.vacos(), 0.0);
        assert_eq!((-1.0f64).vacos(), PI);
        assert_eq!(0.0f64.vacos(), FRAC_PI_2);
        assert_eq!(1.0f64.vasin(), FRAC_PI_2);
        assert_eq!((-1.0f64).vasin(), -FRAC_PI_2);
        assert_eq!((-0.0f64).vasin().to_bits(), (-0.0f64).to_bits());
        assert_eq!(inf.vatan(), FRAC_PI_2);
        assert_eq!((-inf).vatan(), -FRAC_PI_2);
        assert_eq!(inf.vexp(), inf);
        assert_eq!((-inf).vexp(), 0.0);
        assert_eq!(710.0f64.vexp(), inf);
        assert_eq!((-746.0f64).vexp(), 0.0);
        assert!(709.78f64.vexp().is_finite());
        assert_eq!(5e-324f64, (-745.0f64).vexp());
        assert_eq!(inf.vexpm1(), inf);
        assert_eq!((-inf).vexpm1(), -1.0);
        assert_eq!(0.0f64.vln(), -inf);
        assert_eq!((-0.0f64).vln(), -inf);
        assert_eq!(inf.vln(), inf);
        assert_eq!(1.0f64.vln(), 0.0);
        assert_eq!((-1.0f64).vln1p(), -inf);
        assert_eq!(inf.vln1p(), inf);
        for x in [30.0, 1e300, inf] {
            assert_eq!(x.vtanh(), 1.0);
            assert_eq!((-x).vtanh(), -1.0);
            assert_eq!(x.verf(), 1.0);
            assert_eq!((-x).verf(), -1.0);
        }
        assert_eq!(0.0f64.vsin(), 0.0);
        assert_eq!(0.0f64.vcos(), 1.0);
        assert!(inf.vsin().is_nan() && inf.vcos().is_nan());
        assert!(1e300f64.vsin().is_nan() && (-1e16f64).vcos().is_nan());
        assert!(1e20f32.vsin().is_nan() && 1e20f32.vcos().is_nan());
        // out of domain
        for x in [1.0000000000000002f64, -1.5, inf] {
            assert!(x.vacos().is_nan() && x.vasin().is_nan());
        }
        assert!((-1e-300f64).vln().is_nan());
        assert!((-1.5f64).vln1p().is_nan());
        // NaN propagation
        for f in [
            <f64 as Real>::vacos,
            <f64 as Real>::vasin,
            <f64 as Real>::vatan,
            <f64 as Real>::vexp,
            <f64 as Real>::vln,
            <f64 as Real>::vln1p,
            <f64 as Real>::vexpm1,
            <f64 as Real>::vtanh,
            <f64 as Real>::verf,
            <f64 as Real>::vsin,
            <f64 as Real>::vcos,
        ] {
            assert!(f(nan).is_nan());
            assert!(f(-nan).is_nan());
        }
        for f in [
            <f32 as Real>::vacos,
            <f32 as Real>::vasin,
            <f32 as Real>::vatan,
            <f32 as Real>::vexp,
            <f32 as Real>::vln,
            <f32 as Real>::vln1p,
            <f32 as Real>::vexpm1,
            <f32 as Real>::vtanh,
            <f32 as Real>::verf,
            <f32 as Real>::vsin,
            <f32 as Real>::vcos,
        ] {
            assert!(f(f32::NAN).is_nan());
        }
        // f32 range ends
        assert_eq!(89.0f32.vexp(), f32::INFINITY);
        assert_eq!((-104.0f32).vexp(), 0.0);
        assert_eq!(1.0f32.vacos(), 0.0);
        assert_eq!((-1.0f32).vacos(), core::f32::consts::PI);
        // misc trait items
        assert_eq!(2.5f64.clamp_unit(), 1.0);
        assert_eq!((-2.5f32).clamp_unit(), -1.0);
        assert_eq!(0.25f64.clamp_unit(), 0.25);
        assert!(f64::NAN.clamp_unit().is_nan());
        assert_eq!(<f64 as Real>::select(true, 1.0, 2.0), 1.0);
        assert_eq!(<f32 as Real>::select(false, 1.0, 2.0), 2.0);
        assert_eq!(<f32 as Real>::from_f64(0.1), 0.1f32);
        assert_eq!(<f64 as Real>::sqrt(4.0), 2.0);
        assert!(!<f64 as Real>::is_finite(inf));
    }

    // ---------------------------------------------------------------------
    // random inputs

    fn finite64() -> impl Strategy<Value = f64> {
        use proptest::num::f64 as p;
        p::POSITIVE | p::NEGATIVE | p::NORMAL | p::SUBNORMAL | p::ZERO
    }
    fn finite32() -> impl Strategy<Value = f32> {
        use proptest::num::f32 as p;
        p::POSITIVE | p::NEGATIVE | p::NORMAL | p::SUBNORMAL | p::ZERO
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn prop_f64_unit(x in -1.0f64..=1.0) {
            prop_assert!(ulp64(x.vacos(), x.acos()) <= MAX_ULP);
            prop_assert!(ulp64(x.vasin(), x.asin()) <= MAX_ULP);
        }

        #[test]
        fn prop_f64_any(x in finite64(), y in finite64()) {
            prop_assert!(ulp64(x.vatan(), x.atan()) <= MAX_ULP);
            prop_assert!(ulp64(y.vatan2(x), y.atan2(x)) <= MAX_ULP);
            prop_assert!(ulp64(x.vexp(), x.exp()) <= MAX_ULP);
            prop_assert!(ulp64(x.vexpm1(), x.exp_m1()) <= MAX_ULP);
            prop_assert!(ulp64(x.vln(), x.ln()) <= MAX_ULP);
            prop_assert!(ulp64(x.vln1p(), x.ln_1p()) <= MAX_ULP);
            prop_assert!(ulp64(x.vtanh(), x.tanh()) <= MAX_ULP);
            prop_assert!(ulp64(x.verf(), erf_ref(x)) <= MAX_ULP);
        }

        #[test]
        fn prop_f64_moderate(x in -30.0f64..30.0, t in -1.6e6f64..1.6e6) {
            prop_assert!(ulp64(x.vexp(), x.exp()) <= MAX_ULP);
            prop_assert!(ulp64(x.vexpm1(), x.exp_m1()) <= MAX_ULP);
            prop_assert!(ulp64(x.vtanh(), x.tanh()) <= MAX_ULP);
            prop_assert!(ulp64(x.verf(), erf_ref(x)) <= MAX_ULP);
            prop_assert!(ulp64(x.vsin(), x.sin()) <= MAX_ULP);
            prop_assert!(ulp64(x.vcos(), x.cos()) <= MAX_ULP);
            prop_assert!(ulp64(t.vsin(), t.sin()) <= MAX_ULP);
            prop_assert!(ulp64(t.vcos(), t.cos()) <= MAX_ULP);
        }

        #[test]
        fn prop_f32_any(x in finite32(), y in finite32()) {
            prop_assert!(ulp32(x.vacos(), x.acos()) <= MAX_ULP);
            prop_assert!(ulp32(x.vasin(), x.asin()) <= MAX_ULP);
            prop_assert!(ulp32(x.vatan(), x.atan()) <= MAX_ULP);
            prop_assert!(ulp32(y.vatan2(x), y.atan2(x)) <= MAX_ULP);
            prop_assert!(ulp32(x.vexp(), x.exp()) <= MAX_ULP);
            prop_assert!(ulp32(x.vexpm1(), x.exp_m1()) <= MAX_ULP);
            prop_assert!(ulp32(x.vln(), x.ln()) <= MAX_ULP);
            prop_assert!(ulp32(x.vln1p(), x.ln_1p()) <= MAX_ULP);
            prop_assert!(ulp32(x.vtanh(), x.tanh()) <= MAX_ULP);
            prop_assert!(ulp32(x.verf(), erff_ref(x)) <= MAX_ULP);
            if x.abs() <= 1.6e6 {
                prop_assert!(ulp32(x.vsin(), x.sin()) <= MAX_ULP);
                prop_assert!(ulp32(x.vcos(), x.cos()) <= MAX_ULP);
            }
        }
    }

    // ---------------------------------------------------------------------
    // SIMD-compiled path

    /// `out[i] = f(xs[i])` as a `pulp::WithSimd` operation: its
    /// `#[inline(always)] with_simd` is inlined into pulp's
    /// `#[target_feature]` trampoline, so in optimised builds the loop (and
    /// the `#[inline(always)]` vmath function in it) is compiled with
    /// AVX-512/AVX2 and vectorised. This is the pattern callers should use:
    /// a plain closure passed to `dispatch` is only compiled with the target
    /// features if LLVM decides to inline it (observed for a `vacos` loop,
    /// not for `verf`/`vtanh`/`vsin` loops).
    struct Map<'a, T, F> {
        xs: &'a [T],
        out: &'a mut [T],
        f: F,
    }

    impl<T: Real, F: Fn(T) -> T> pulp::WithSimd for Map<'_, T, F> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            for (o, &x) in self.out.iter_mut().zip(self.xs) {
                *o = (self.f)(x);
            }
        }
    }

    /// Checks that the loop dispatched at every SIMD level this CPU supports (forced one by one,
    /// as `NTKRS_SIMD` would) is bit-identical to scalar calls.
    fn dispatch_matches<T: Real>(name: &str, xs: &[T], f: impl Fn(T) -> T + Copy) {
        let scalar: Vec<T> = xs.iter().map(|&x| f(x)).collect();
        for level in crate::pool::SimdLevel::supported() {
            let mut simd = vec![T::ZERO; xs.len()];
            let arch = level.arch().expect("supported");
            arch.dispatch(Map { xs, out: &mut simd, f });
            for ((&x, &a), &b) in xs.iter().zip(&scalar).zip(&simd) {
                let (sa, sb) = (format!("{a:?}"), format!("{b:?}"));
                assert_eq!(sa, sb, "{name}({x:?}): scalar vs dispatched at {level}");
            }
        }
    }

    fn dispatch_all<T: Real>(xs: &[T]) {
        dispatch_matches("acos", xs, T::vacos);
        dispatch_matches("asin", xs, T::vasin);
        dispatch_matches("atan", xs, T::vatan);
        dispatch_matches(
            "atan2",
            xs,
            #[inline(always)]
            |y: T| y.vatan2(T::from_f64(-0.75)),
        );
        dispatch_matches(
            "atan2'",
            xs,
            #[inline(always)]
            |x: T| T::HALF.vatan2(x),
        );
        dispatch_matches("exp", xs, T::vexp);
        dispatch_matches("ln", xs, T::vln);
        dispatch_matches("ln1p", xs, T::vln1p);
        dispatch_matches("expm1", xs, T::vexpm1);
        dispatch_matches("tanh", xs, T::vtanh);
        dispatch_matches("erf", xs, T::verf);
        dispatch_matches("sin", xs, T::vsin);
        dispatch_matches("cos", xs, T::vcos);
        dispatch_matches("sqrt", xs, T::sqrt);
        dispatch_matches("clamp_unit", xs, T::clamp_unit);
    }

    /// Detected on the development machine (AMD EPYC, AVX-512F/BW/DQ/VL):
    /// `Arch::V4` with this workspace's pulp features (`x86-v3`, `x86-v4`);
    /// `Arch::V3` (AVX2 + FMA) when pulp is built without `x86-v4`.
    #[test]
    fn dispatched_loops_match_scalar() {
        println!("SIMD levels run: {:?}", crate::pool::SimdLevel::supported());
        let xs: Vec<f64> = lin(-800.0, 800.0, 20_000)
            .chain(lin(-1.5, 1.5, 20_000))
            .chain(logspace(-320.0, 308.0, 5_000))
            .chain(SPECIALS)
            .chain([f64::NAN])
            .collect();
        dispatch_all(&xs);
        let xs32: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
        dispatch_all(&xs32);
    }
}
