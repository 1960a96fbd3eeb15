//! The matrix products of the finite-width networks (faer, in cancellable panels) and the
//! small helpers around them.

use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::control::Control;
use crate::element::Element;
use crate::error::Result;

/// Clear the upper halves of the calling thread's vector registers (`vzeroupper`; a no-op
/// without AVX).
///
/// faer's matrix products on x86-64 run assembly microkernels (private-gemm-x86) that return
/// with the upper halves of the `zmm` registers dirty. Until something clears them, every
/// legacy-SSE instruction on that thread (libm's `tanh`, `exp`, ..., and all scalar Rust code
/// compiled for baseline x86-64) pays a merge penalty: numerical activations ran 10× slower
/// after a product cancelled mid-way (a finished one happens to be followed by vector code that
/// clears them).
#[inline]
pub(crate) fn clean_vector_state() {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        unsafe fn zeroupper() {
            std::arch::x86_64::_mm256_zeroupper();
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is available (checked just above).
            unsafe { zeroupper() }
        }
    }
}

/// faer's `dst = alpha·lhs·rhs` (or `+=` with `Accum::Add`), followed by
/// [`clean_vector_state`] on every thread that may have run a microkernel: the calling one, and
/// with a parallel `par` every thread of the current pool. Use it for every product.
pub(crate) fn matmul<T: Element>(
    dst: MatMut<'_, T>,
    accum: Accum,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    alpha: T,
    par: Par,
) {
    faer::linalg::matmul::matmul(dst, accum, lhs, rhs, alpha, par);
    if !matches!(par, Par::Seq) {
        rayon::broadcast(|_| clean_vector_state());
    }
    clean_vector_state();
}

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

/// Whether every value is finite: blocks of 256 checked without an early exit (so the check
/// vectorises), the blocks with one.
pub(crate) fn slice_finite<T: Element>(v: &[T]) -> bool {
    v.chunks(256).all(|c| c.iter().fold(true, |ok, x| ok & x.is_finite()))
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

/// Multiply-adds per block of the products below: a few milliseconds on one core, so that a
/// cancellation (Ctrl-C) is seen within a fraction of a second even on a loaded machine. Each
/// block is one product with the whole inner dimension, so its entries are those of one product.
const BLOCK_WORK: usize = 1 << 26;

/// Rows per block (when there are that many).
const BLOCK_ROWS: usize = 256;

/// Blocks `(r0, r1, c0, c1)` covering an `m × n` output with inner dimension `k`: one block when
/// small, else [`BLOCK_ROWS`] rows by a multiple of 64 columns of about [`BLOCK_WORK`]
/// multiply-adds.
fn blocks(m: usize, n: usize, k: usize) -> Vec<(usize, usize, usize, usize)> {
    if m.saturating_mul(n).saturating_mul(k.max(1)) <= BLOCK_WORK {
        return vec![(0, m, 0, n)];
    }
    let rb = m.clamp(1, BLOCK_ROWS);
    let cb = (BLOCK_WORK / (rb * k.max(1)) / 64 * 64).clamp(64, n.max(64));
    let mut out = Vec::with_capacity(m.div_ceil(rb) * n.div_ceil(cb));
    for c0 in (0..n).step_by(cb) {
        for r0 in (0..m).step_by(rb) {
            out.push((r0, (r0 + rb).min(m), c0, (c0 + cb).min(n)));
        }
    }
    out
}

/// A raw pointer that may cross threads: every task writes a disjoint block.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    #[inline(always)]
    fn get(self) -> *mut T {
        self.0
    }
}

/// `dst = alpha·lhs·rhs` by the blocks of [`blocks`], checking for cancellation before each block
/// (so that Ctrl-C is honoured within a fraction of a second); the blocks are spread over the
/// current pool's threads when `par` is parallel.
pub(crate) fn gemm_cols<T: Element>(
    dst: MatMut<'_, T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    alpha: T,
    par: Par,
    ctl: &Control,
) -> Result<()> {
    let (m, n, k) = (dst.nrows(), dst.ncols(), lhs.ncols());
    let list = blocks(m, n, k);
    if list.len() == 1 {
        ctl.check()?;
        matmul(dst, Accum::Replace, lhs, rhs, alpha, sized(par, m * n * k));
        return Ok(());
    }
    let (rs, cs) = (dst.row_stride(), dst.col_stride());
    let base = SharedMut(dst.as_ptr_mut());
    let job = |&(r0, r1, c0, c1): &(usize, usize, usize, usize)| -> Result<()> {
        ctl.check()?;
        // SAFETY: the blocks are disjoint parts of `dst`, which outlives this call.
        let d = unsafe {
            MatMut::<T>::from_raw_parts_mut(
                base.get().offset(r0 as isize * rs + c0 as isize * cs),
                r1 - r0,
                c1 - c0,
                rs,
                cs,
            )
        };
        matmul(
            d,
            Accum::Replace,
            lhs.subrows(r0, r1 - r0),
            rhs.subcols(c0, c1 - c0),
            alpha,
            Par::Seq,
        );
        Ok(())
    };
    if matches!(par, Par::Seq) {
        list.iter().try_for_each(job)
    } else {
        list.par_iter().try_for_each(job)
    }
}

/// `alpha·aᵀb` as a row-major `n1 × n2` matrix, where `a` is `k × n1` and `b` is `k × n2`
/// (`None`: `a` itself; then only the blocks on and below the diagonal are multiplied and the
/// other triangle mirrored, so the result is exactly symmetric). By blocks of about
/// [`BLOCK_WORK`] multiply-adds, cancellation checked before each, spread over the current pool's
/// threads when `par` is parallel.
pub(crate) fn gram<T: Element>(
    a: MatRef<'_, T>,
    b: Option<MatRef<'_, T>>,
    alpha: T,
    par: Par,
    ctl: &Control,
) -> Result<Vec<T>> {
    let n1 = a.ncols();
    let n2 = b.map_or(n1, |b| b.ncols());
    let k = a.nrows();
    let mut out = vec![T::ZERO; n1 * n2];
    // row-major n1 × n2 is column-major n2 × n1: out_cm = bᵀ a, out_cm[j, i] = out[i, j]
    let bb = b.unwrap_or(a);
    let sym = b.is_none();
    // column panels of out_cm (columns c0..c1 of `a`): at most 256 columns of about 2^31
    // multiply-adds; for a symmetric product narrow panels keep the multiplied part close to the
    // lower half (1/2 + panel/(2·n) of the square; n/8 balances that against re-packing the
    // left-hand side for every panel), rows from the panel's first on. Panels above
    // [`BLOCK_WORK`] are cut into blocks of rows.
    let mut panel = ((1usize << 31) / (k * n2).max(1)).clamp(32, 256);
    if sym {
        panel = panel.min((n1 / 8).max(32));
    }
    let mut list: Vec<(usize, usize, usize, usize)> = Vec::new();
    for c0 in (0..n1).step_by(panel) {
        let c1 = (c0 + panel).min(n1);
        let r0 = if sym { c0 } else { 0 };
        let rows = n2 - r0;
        let rb = if rows * (c1 - c0) * k.max(1) <= BLOCK_WORK {
            rows.max(1)
        } else {
            (BLOCK_WORK / ((c1 - c0) * k.max(1)) / 64 * 64).max(64)
        };
        for a0 in (r0..n2).step_by(rb) {
            list.push((a0, (a0 + rb).min(n2), c0, c1));
        }
    }
    // few blocks: faer's threads inside each; many: one block per thread
    let parallel_inside = list.len() < 4;
    let base = SharedMut(out.as_mut_ptr());
    let job = |&(r0, r1, c0, c1): &(usize, usize, usize, usize)| -> Result<()> {
        ctl.check()?;
        // SAFETY: the blocks are disjoint parts of `out` (column-major n2 × n1), alive here.
        let d =
            unsafe { MatMut::<T>::from_raw_parts_mut(base.get().add(r0 + c0 * n2), r1 - r0, c1 - c0, 1, n2 as isize) };
        let p = if parallel_inside {
            sized(par, (r1 - r0) * (c1 - c0) * k)
        } else {
            Par::Seq
        };
        matmul(
            d,
            Accum::Replace,
            bb.subcols(r0, r1 - r0).transpose(),
            a.subcols(c0, c1 - c0),
            alpha,
            p,
        );
        Ok(())
    };
    if matches!(par, Par::Seq) || parallel_inside {
        list.iter().try_for_each(job)?;
    } else {
        list.par_iter().try_for_each(job)?;
    }
    if sym {
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
/// row-major `(n1, n2, O, O)` layout, multiplying by `factor[a, b]` when given; row by row, each
/// after a cancellation check.
pub(crate) fn permute_full<T: Element>(
    g: &[T],
    factor: Option<&[T]>,
    n1: usize,
    n2: usize,
    o: usize,
    ctl: &Control,
) -> Result<Vec<T>> {
    debug_assert_eq!(g.len(), n1 * n2 * o * o);
    let mut out = vec![T::ZERO; g.len()];
    out.par_chunks_mut(n2 * o * o)
        .with_min_len(MIN_LEN / (n2 * o * o) + 1)
        .enumerate()
        .try_for_each(|(a, row)| -> Result<()> {
            ctl.check()?;
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
            Ok(())
        })?;
    Ok(out)
}
