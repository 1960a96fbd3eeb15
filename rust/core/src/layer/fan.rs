//! Branches: `FanOut(num)` copies its input to `num` branches; `FanInSum()`, `FanInProd()` and
//! `FanInConcat(axis=-1)` join branches (neural-tangents' `stax` semantics).
//!
//! Kernels, for independent branches `k` (each branch needs its own random layer):
//! * sum: `nngp' = Σ_k nngp_k`, `ntk' = Σ_k ntk_k` (Gaussian when every branch is);
//! * product: `nngp' = Π_k nngp_k`, `ntk' = Σ_k ntk_k Π_{l≠k} nngp_l` (not Gaussian);
//! * concatenation along the channels: the channel-weighted mean `Σ_k n_k·K_k / Σ_k n_k` of the
//!   branches' kernels (`n_k` their widths; the plain mean when the widths are equal), not
//!   Gaussian.

use crate::activation::Lanes;
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

/// The precise path's `dst ← w_d·dst + w_s·src` (a sum when both weights are 1) with the pairs'
/// defects `m = √(q1 q2) − |c|`: for branches `a`, `b` (already weighted),
/// `q1'q2' − c'² = D_a + D_b + (√(q1a q2b) − √(q1b q2a))² + 2(√(P_a P_b) − c_a c_b)`, every term
/// ≥ 0, with `D = m(2√P − m)` and, when `c_a c_b > 0`, `√(P_a P_b) − c_a c_b = √P_a m_b + |c_b| m_a`.
/// `qd*`, `qs*`: the per-sample variances of `dst` (before weighting) and `src`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn mix_row_precise<T: Real, const NTK: bool, D1: Lanes<T>, D2: Lanes<T>, S1: Lanes<T>, S2: Lanes<T>>(
    wd: T,
    ws: T,
    dc: &mut [T],
    dm: &mut [T],
    dt: &mut [T],
    sc: &[T],
    sm: &[T],
    st: &[T],
    qd: (D1, D2),
    qs: (S1, S2),
) {
    let n = dc.len();
    let (dm, sc, sm) = (&mut dm[..n], &sc[..n], &sm[..n]);
    for j in 0..n {
        let (a1, a2) = (wd * qd.0.at(j), wd * qd.1.at(j));
        let (b1, b2) = (ws * qs.0.at(j), ws * qs.1.at(j));
        let (sa1, sa2, sb1, sb2) = (a1.sqrt(), a2.sqrt(), b1.sqrt(), b2.sqrt());
        let (ca, cb) = (wd * dc[j], ws * sc[j]);
        let (ma, mb) = (wd * dm[j], ws * sm[j]);
        let (pa, pb) = (sa1 * sa2, sb1 * sb2);
        let da = ma * (T::TWO * pa - ma);
        let db = mb * (T::TWO * pb - mb);
        let x = sa1 * sb2 - sb1 * sa2;
        let y = T::select(ca * cb > T::ZERO, pa * mb + cb.abs() * ma, pa * pb - ca * cb);
        let det = da + db + x * x + T::TWO * y;
        let cn = ca + cb;
        let den = ((a1 + b1) * (a2 + b2)).sqrt() + cn.abs();
        dm[j] = T::select(den > T::ZERO, det.max(T::ZERO) / den, T::ZERO);
    }
    mix_row::<T, NTK>(wd, ws, dc, dt, sc, st);
}

/// The precise path's product: `q1'q2' − c'² = P_a D_b + c_b² D_a` (both ≥ 0).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn prod_row_precise<T: Real, const NTK: bool, D1: Lanes<T>, D2: Lanes<T>, S1: Lanes<T>, S2: Lanes<T>>(
    dc: &mut [T],
    dm: &mut [T],
    dt: &mut [T],
    sc: &[T],
    sm: &[T],
    st: &[T],
    qd: (D1, D2),
    qs: (S1, S2),
) {
    let n = dc.len();
    let (dm, sc, sm) = (&mut dm[..n], &sc[..n], &sm[..n]);
    for j in 0..n {
        let pa = qd.0.at(j).sqrt() * qd.1.at(j).sqrt();
        let pb = qs.0.at(j).sqrt() * qs.1.at(j).sqrt();
        let (ca, cb, ma, mb) = (dc[j], sc[j], dm[j], sm[j]);
        let da = ma * (T::TWO * pa - ma);
        let db = mb * (T::TWO * pb - mb);
        let det = pa * pa * db + cb * cb * da;
        let cn = ca * cb;
        let den = pa * pb + cn.abs();
        dm[j] = T::select(den > T::ZERO, det.max(T::ZERO) / den, T::ZERO);
    }
    prod_row::<T, NTK>(dc, dt, sc, st);
}
