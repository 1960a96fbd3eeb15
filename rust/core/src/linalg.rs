//! The matrix products of the finite-width networks (faer, in cancellable panels) and the
//! small helpers around them.

use faer::linalg::matmul::matmul;
use faer::reborrow::ReborrowMut;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::control::Control;
use crate::element::Element;
use crate::error::Result;

/// `par`, or sequential when a product of `work` multiply-adds is too small to share out.
pub(crate) fn sized(par: Par, work: usize) -> Par {
    if work < 1 << 21 {
        Par::Seq
    } else {
        par
    }
}

/// Least number of elements per parallel task of the elementwise passes.
pub(crate) const MIN_LEN: usize = 1 << 12;

/// Number of elements per parallel work item of the pointwise passes.
pub(crate) const CHUNK: usize = 1 << 14;

/// A column-major view of a contiguous buffer.
pub(crate) fn cm<T: Element>(v: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::from_column_major_slice(&v[..rows * cols], rows, cols)
}

/// Whether every entry is finite, read in memory order (rows or columns, whichever is contiguous),
/// in parallel for large matrices.
pub(crate) fn all_finite<T: Element>(m: MatRef<'_, T>) -> bool {
    let m = if m.row_stride().unsigned_abs() < m.col_stride().unsigned_abs() {
        m
    } else {
        m.transpose()
    };
    // now each column is the contiguous (or shortest-stride) direction
    let col_ok = |j: usize| (0..m.nrows()).all(|i| m[(i, j)].is_finite());
    if m.nrows() * m.ncols() >= 1 << 20 {
        (0..m.ncols()).into_par_iter().all(col_ok)
    } else {
        (0..m.ncols()).all(col_ok)
    }
}

/// `dst = alpha·lhs·rhs`, in column panels of about 2^33 multiply-adds each, checking for
/// cancellation between panels (so that Ctrl-C is honoured within a fraction of a second).
pub(crate) fn gemm_cols<T: Element>(
    mut dst: MatMut<'_, T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    alpha: T,
    par: Par,
    ctl: &Control,
) -> Result<()> {
    let n = rhs.ncols();
    let per_col = (lhs.nrows() * lhs.ncols()).max(1);
    let step = ((1usize << 33) / per_col).clamp(64, n.max(64));
    for c0 in (0..n).step_by(step) {
        ctl.check()?;
        let w = step.min(n - c0);
        matmul(
            dst.rb_mut().subcols_mut(c0, w),
            Accum::Replace,
            lhs,
            rhs.subcols(c0, w),
            alpha,
            sized(par, per_col * w),
        );
    }
    Ok(())
}

/// Most columns per panel of [`gram`]: the unit of parallel work and cancellation.
const PANEL: usize = 256;

/// `alpha·aᵀb` as a row-major `n1 × n2` matrix, where `a` is `k × n1` and `b` is `k × n2`
/// (`None`: `a` itself; then only one triangle is multiplied and the other mirrored, so the
/// result is exactly symmetric).
pub(crate) fn gram<T: Element>(
    a: MatRef<'_, T>,
    b: Option<MatRef<'_, T>>,
    alpha: T,
    par: Par,
    ctl: &Control,
) -> Result<Vec<T>> {
    let n1 = a.ncols();
    let n2 = b.map_or(n1, |b| b.ncols());
    let mut out = vec![T::ZERO; n1 * n2];
    // row-major n1 × n2 is column-major n2 × n1: out_cm = bᵀ a
    let bb = b.unwrap_or(a);
    // about 2^31 multiply-adds per panel, at most PANEL columns; for a symmetric product narrow
    // panels keep the multiplied part close to the lower half (1/2 + panel/(2·n) of the square;
    // n/8 balances that against re-packing the left-hand side for every panel)
    let mut panel = ((1usize << 31) / (a.nrows() * n2).max(1)).clamp(32, PANEL);
    if b.is_none() {
        panel = panel.min((n1 / 8).max(32));
    }
    for c0 in (0..n1).step_by(panel) {
        ctl.check()?;
        let c1 = (c0 + panel).min(n1);
        let r0 = if b.is_none() { c0 } else { 0 };
        let dst = MatMut::from_column_major_slice_mut(&mut out, n2, n1).submatrix_mut(r0, c0, n2 - r0, c1 - c0);
        matmul(
            dst,
            Accum::Replace,
            bb.subcols(r0, n2 - r0).transpose(),
            a.subcols(c0, c1 - c0),
            alpha,
            sized(par, (n2 - r0) * (c1 - c0) * a.nrows()),
        );
    }
    if b.is_none() {
        mirror_lower_to_upper(&mut out, n1);
    }
    Ok(out)
}

/// Copy the lower triangle of a column-major `n × n` matrix onto its upper triangle.
fn mirror_lower_to_upper<T: Element>(m: &mut [T], n: usize) {
    const B: usize = 64;
    // in blocks, so that both the read and the write side stay in cache
    for j0 in (0..n).step_by(B) {
        for i0 in (0..=j0).step_by(B) {
            for j in j0..(j0 + B).min(n) {
                for i in i0..(i0 + B).min(j) {
                    // (i, j) with i < j is in the upper triangle; its mirror (j, i) is below
                    m[i + j * n] = m[j + i * n];
                }
            }
        }
    }
}

/// Reorder a row-major `(n1·O) × (n2·O)` Gram with rows `(a, o)` and columns `(b, o')` into the
/// row-major `(n1, n2, O, O)` layout, multiplying by `factor[a, b]` when given.
pub(crate) fn permute_full<T: Element>(g: &[T], factor: Option<&[T]>, n1: usize, n2: usize, o: usize) -> Vec<T> {
    debug_assert_eq!(g.len(), n1 * n2 * o * o);
    let mut out = vec![T::ZERO; g.len()];
    out.par_chunks_mut(n2 * o * o)
        .with_min_len(MIN_LEN / (n2 * o * o) + 1)
        .enumerate()
        .for_each(|(a, row)| {
            for b in 0..n2 {
                let f = factor.map_or(T::ONE, |f| f[a * n2 + b]);
                for k in 0..o {
                    let src = &g[(a * o + k) * n2 * o + b * o..][..o];
                    let dst = &mut row[(b * o + k) * o..][..o];
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = f * s;
                    }
                }
            }
        });
    out
}
