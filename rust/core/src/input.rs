//! Input batches: checks (non-empty, finite, matching features) and the power-of-two rescaling
//! that keeps tiny or huge inputs from under- or overflowing in the input Gram and variances.

use faer::MatRef;

use crate::element::Element;
use crate::error::{Error, Result};

/// Largest absolute value, and whether every value is finite (read in memory order).
fn scan<T: Element>(x: MatRef<'_, T>) -> (f64, bool) {
    let mut m = 0.0f64;
    let mut ok = true;
    let mut visit = |v: T| {
        let v = v.to_f64();
        ok &= v.is_finite();
        m = m.max(v.abs());
    };
    if x.row_stride().unsigned_abs() >= x.col_stride().unsigned_abs() {
        for i in 0..x.nrows() {
            for j in 0..x.ncols() {
                visit(x[(i, j)]);
            }
        }
    } else {
        for j in 0..x.ncols() {
            for i in 0..x.nrows() {
                visit(x[(i, j)]);
            }
        }
    }
    (m, ok)
}

/// `Err` unless `x` is non-empty and finite; returns its largest magnitude.
pub(crate) fn check_input<T: Element>(arg: &'static str, x: MatRef<'_, T>) -> Result<f64> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(Error::arg(
            arg,
            format!(
                "is empty (shape ({}, {})); pass at least one sample with at least one feature",
                x.nrows(),
                x.ncols()
            ),
        ));
    }
    let (m, ok) = scan(x);
    if !ok {
        return Err(Error::arg(
            arg,
            "contains NaN or infinite values; remove or impute them first",
        ));
    }
    Ok(m)
}

/// `Err` unless `x2` has as many features (columns) as `x1`.
pub(crate) fn same_features<T>(x1: MatRef<'_, T>, x2: MatRef<'_, T>) -> Result<()> {
    if x2.ncols() != x1.ncols() {
        return Err(Error::arg(
            "x2",
            format!(
                "has {} features but x1 has {}; both need the same number of columns",
                x2.ncols(),
                x1.ncols()
            ),
        ));
    }
    Ok(())
}

/// Check `x1` and `x2` (when given); returns the largest input magnitude.
pub(crate) fn check_inputs<T: Element>(x1: MatRef<'_, T>, x2: Option<MatRef<'_, T>>) -> Result<f64> {
    let mut m = check_input("x1", x1)?;
    if let Some(x2) = x2 {
        m = m.max(check_input("x2", x2)?);
        same_features(x1, x2)?;
    }
    Ok(m)
}

/// Whether two batches hold the same values (neural-tangents' `x1_is_x2`).
pub(crate) fn same_values<T: Element>(x1: MatRef<'_, T>, x2: MatRef<'_, T>) -> bool {
    x1.nrows() == x2.nrows()
        && x1.ncols() == x2.ncols()
        && (0..x1.nrows()).all(|i| (0..x1.ncols()).all(|j| x1[(i, j)] == x2[(i, j)]))
}

/// Power of two bringing the largest magnitude `m` near 1 (1 when no rescaling is needed).
pub(crate) fn rescale_factor<T: Element>(m: f64) -> f64 {
    let (lo, hi) = if std::mem::size_of::<T>() == 4 {
        (2f64.powi(-30), 2f64.powi(30))
    } else {
        (2f64.powi(-250), 2f64.powi(250))
    };
    if m == 0.0 || (m >= lo && m <= hi) {
        1.0
    } else {
        // clamp the exponent: 2^±1000 is representable, 2^±1030 is not (subnormal inputs)
        2f64.powi(-(m.log2().round() as i32).clamp(-1000, 1000))
    }
}

/// Per-sample input variances `|x_i|²/d`, computed in f64 with a power-of-two rescaling so that
/// neither tiny nor huge inputs under- or overflow in the sum.
fn input_variances<T: Element>(x: MatRef<'_, T>, scale: f64) -> Vec<f64> {
    let d = x.ncols() as f64;
    (0..x.nrows())
        .map(|i| {
            let mut s = 0.0f64;
            for k in 0..x.ncols() {
                let v = x[(i, k)].to_f64() * scale;
                s += v * v;
            }
            s / (scale * scale) / d
        })
        .collect()
}

/// The inputs as the Gram sees them: the factor of `x1·x2ᵀ`, rescaled copies when the inputs
/// are too small or large for `T`, and the per-sample input variances (in f64).
pub(crate) struct Scaled<T: Element> {
    /// `1/(s²·d)`: the input Gram is `gscale · (s·x1)(s·x2)ᵀ`.
    pub gscale: T,
    copies: Option<(faer::Mat<T>, Option<faer::Mat<T>>)>,
    /// `|x1_i|²/d`.
    pub q1: Vec<f64>,
    /// `|x2_j|²/d`, when `x2` is given.
    pub q2: Option<Vec<f64>>,
}

impl<T: Element> Scaled<T> {
    /// Scale inputs of largest magnitude `m` (from [`check_inputs`]).
    pub fn new(x1: MatRef<'_, T>, x2: Option<MatRef<'_, T>>, m: f64) -> Result<Self> {
        let d = x1.ncols();
        let scale = rescale_factor::<T>(m);
        let gscale = 1.0 / (scale * scale) / d as f64;
        if !(gscale.is_finite() && T::from_f64(gscale).is_finite()) || T::from_f64(m * m).to_f64().is_infinite() {
            return Err(Error::NonFinite(format!(
                "inputs of magnitude {m:.3e} make the kernel overflow {}; use dtype=float64 or rescale the inputs",
                T::NAME
            )));
        }
        let copies = (scale != 1.0).then(|| {
            let s = T::from_f64(scale);
            let f = |x: MatRef<'_, T>| faer::Mat::<T>::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] * s);
            (f(x1), x2.map(f))
        });
        Ok(Scaled {
            gscale: T::from_f64(gscale),
            copies,
            q1: input_variances(x1, scale),
            q2: x2.map(|x| input_variances(x, scale)),
        })
    }

    /// The matrices the input Gram is computed from.
    pub fn inputs<'a>(
        &'a self,
        x1: MatRef<'a, T>,
        x2: Option<MatRef<'a, T>>,
    ) -> (MatRef<'a, T>, Option<MatRef<'a, T>>) {
        match &self.copies {
            Some((a, b)) => (a.as_ref(), b.as_ref().map(|b| b.as_ref())),
            None => (x1, x2),
        }
    }

    /// Bytes held by the rescaled copies.
    pub fn copy_bytes(&self) -> usize {
        self.copies.as_ref().map_or(0, |(a, b)| {
            (a.nrows() * a.ncols() + b.as_ref().map_or(0, |b| b.nrows() * b.ncols())) * std::mem::size_of::<T>()
        })
    }
}
