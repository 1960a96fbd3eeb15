//! Branches: `FanOut(num)` copies its input to `num` branches; `FanInSum()`, `FanInProd()` and
//! `FanInConcat(axis=-1)` join branches (neural-tangents' `stax` semantics).
//!
//! Kernels, for independent branches `k` (each branch needs its own random layer):
//! * sum: `nngp' = Σ_k nngp_k`, `ntk' = Σ_k ntk_k` (Gaussian when every branch is);
//! * product: `nngp' = Π_k nngp_k`, `ntk' = Σ_k ntk_k Π_{l≠k} nngp_l` (not Gaussian);
//! * concatenation along the channels: the channel-weighted mean `Σ_k n_k·K_k / Σ_k n_k` of the
//!   branches' kernels (`n_k` their widths; the plain mean when the widths are equal), not
//!   Gaussian.

use crate::vmath::Real;

/// How a `FanIn` layer joins its branches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FanIn {
    /// `FanInSum()`.
    Sum,
    /// `FanInProd()`.
    Prod,
    /// `FanInConcat(axis)`.
    Concat {
        /// The axis joined along (−1: the channels).
        axis: isize,
    },
}

impl FanIn {
    /// `neural-tangents`-style description.
    pub fn name(&self) -> String {
        match self {
            FanIn::Sum => "FanInSum()".into(),
            FanIn::Prod => "FanInProd()".into(),
            FanIn::Concat { axis } => format!("FanInConcat(axis={axis})"),
        }
    }
}

/// The weights of a channel concatenation of branches of widths `widths`.
pub(crate) fn concat_weights(widths: &[usize]) -> Vec<f64> {
    if widths.iter().all(|&w| w == widths[0]) {
        vec![1.0 / widths.len() as f64; widths.len()]
    } else {
        let total: usize = widths.iter().sum();
        widths.iter().map(|&w| w as f64 / total as f64).collect()
    }
}

/// `dst ← dst + src` (NNGP and NTK).
#[inline(always)]
pub(crate) fn sum_row<T: Real, const NTK: bool>(dc: &mut [T], dt: &mut [T], sc: &[T], st: &[T]) {
    let n = dc.len();
    let (dt, sc, st) = (&mut dt[..n], &sc[..n], &st[..n]);
    for j in 0..n {
        dc[j] += sc[j];
        if NTK {
            dt[j] += st[j];
        }
    }
}

/// `(nngp, ntk) ← (nngp·nngp_s, ntk·nngp_s + nngp·ntk_s)`.
#[inline(always)]
pub(crate) fn prod_row<T: Real, const NTK: bool>(dc: &mut [T], dt: &mut [T], sc: &[T], st: &[T]) {
    let n = dc.len();
    let (dt, sc, st) = (&mut dt[..n], &sc[..n], &st[..n]);
    for j in 0..n {
        if NTK {
            dt[j] = dt[j] * sc[j] + dc[j] * st[j];
        }
        dc[j] *= sc[j];
    }
}

/// `dst ← w_d·dst + w_s·src` (NNGP and NTK).
#[inline(always)]
pub(crate) fn mix_row<T: Real, const NTK: bool>(wd: T, ws: T, dc: &mut [T], dt: &mut [T], sc: &[T], st: &[T]) {
    let n = dc.len();
    let (dt, sc, st) = (&mut dt[..n], &sc[..n], &st[..n]);
    for j in 0..n {
        dc[j] = wd * dc[j] + ws * sc[j];
        if NTK {
            dt[j] = wd * dt[j] + ws * st[j];
        }
    }
}
