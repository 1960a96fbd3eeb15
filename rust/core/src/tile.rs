//! Tiled passes over the output: the input Gram (faer, panel by panel) and the fused layer pass
//! (every layer on each row of a tile while it sits in L1, SIMD across the row, rayon across tiles).

use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::control::Control;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::kernels::Get;
use crate::plan::{run_row, Planned, RowScratch};

/// Tile side used when none is given.
pub const DEFAULT_TILE: usize = 256;

pub(crate) fn tile_size(requested: usize) -> usize {
    if requested == 0 {
        DEFAULT_TILE
    } else {
        requested.clamp(1, 1 << 16)
    }
}

/// A raw pointer that may cross threads: every task writes a disjoint region.
#[derive(Clone, Copy)]
pub(crate) struct Shared<T>(pub(crate) *mut T);
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    #[inline(always)]
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Rows per Gram block. Each block of `x2`'s rows is reused by this many rows of `x1`: tall
/// enough that the product runs at arithmetic speed rather than at memory speed (a 16-row panel
/// of a 60,000-column Gram streams all of `x2` from memory for every 16 rows).
pub(crate) const GRAM_ROWS: usize = 256;

/// Rows per Gram panel (the unit out-of-core panels are multiples of).
pub(crate) fn panel_height(_n2: usize, _d: usize) -> usize {
    GRAM_ROWS
}

/// Columns per Gram block: about 1 GFLOP of work per block (so that Ctrl-C is seen within
/// ~0.1 s), a multiple of 64, at least 64.
pub(crate) fn gram_cols(d: usize) -> usize {
    let c = (1e9 / (2.0 * GRAM_ROWS as f64 * d.max(1) as f64)) as usize;
    (c / 64 * 64).max(64)
}

/// The Gram blocks `(r0, r1, c0, c1)` of window `win` (columns from each panel's first row on
/// when `sym`). They depend only on the global row and column ranges, so a window whose first row
/// is a multiple of [`GRAM_ROWS`] gets exactly the blocks (and so the values) of the whole output.
fn gram_blocks(win: Window, d: usize, sym: bool) -> Vec<(usize, usize, usize, usize)> {
    let cb = gram_cols(d);
    let mut out = Vec::new();
    for r0 in (win.row0..win.end()).step_by(GRAM_ROWS) {
        let r1 = (r0 + GRAM_ROWS).min(win.end());
        let start = if sym { r0 } else { win.col0 };
        for c0 in (start..win.n2).step_by(cb) {
            out.push((r0, r1, c0, (c0 + cb).min(win.n2)));
        }
    }
    out
}

/// The part of an `n1 × n2` output that one buffer holds: rows `row0..row0 + rows`, columns
/// `col0..n2`, row-major with row stride `n2 - col0`. The whole output is `{0, n1, 0, n2}`; a row
/// panel of a symmetric kernel is `{r0, h, r0, n}` (only columns from its first row on).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub row0: usize,
    pub rows: usize,
    pub col0: usize,
    pub n2: usize,
}

impl Window {
    pub(crate) fn whole(n1: usize, n2: usize) -> Window {
        Window {
            row0: 0,
            rows: n1,
            col0: 0,
            n2,
        }
    }

    #[inline(always)]
    pub(crate) fn ld(&self) -> usize {
        self.n2 - self.col0
    }

    /// Offset of global entry `(i, j)` in the buffer.
    #[inline(always)]
    pub(crate) fn idx(&self, i: usize, j: usize) -> usize {
        (i - self.row0) * self.ld() + (j - self.col0)
    }

    pub(crate) fn end(&self) -> usize {
        self.row0 + self.rows
    }
}

/// The tiles `(r0, r1, c0, c1, diag)` of a window (upper triangle only when `sym`; a `diag` tile
/// sits on the diagonal and holds entries `j ≥ i` only). Every entry's value is independent of the
/// tile it falls in, so any tiling gives the same result.
pub(crate) fn tile_list(win: Window, sym: bool, tile: usize) -> Vec<(usize, usize, usize, usize, bool)> {
    let mut out = Vec::new();
    for r0 in (win.row0..win.end()).step_by(tile) {
        let r1 = (r0 + tile).min(win.end());
        let mut c0 = if sym { r0 } else { 0 };
        if sym {
            let c1 = (r0 + tile).min(win.n2);
            out.push((r0, r1, c0, c1, true));
            c0 = c1;
        }
        while c0 < win.n2 {
            let c1 = (c0 + tile).min(win.n2);
            out.push((r0, r1, c0, c1, false));
            c0 = c1;
        }
    }
    out
}

/// Work units (Gram panels + tiles) of computing a window, for progress reports.
pub(crate) fn work_units(win: Window, d: usize, sym: bool, tile: usize) -> u64 {
    (gram_blocks(win, d, sym).len() + tile_list(win, sym, tile).len()) as u64
}

/// `out = alpha · a bᵀ` over the rows of window `win` of the `a.nrows() × b.nrows()` output, by
/// the blocks of [`gram_blocks`], in parallel on the current rayon pool when `parallel`, else in
/// order on the calling thread (`b = a` when `None`: then only each panel's upper part, columns ≥
/// the panel's first row, is written).
pub(crate) fn gram<T: Element>(
    out: &mut [T],
    win: Window,
    a: MatRef<'_, T>,
    b: Option<MatRef<'_, T>>,
    alpha: T,
    parallel: bool,
    ctl: &Control,
) -> Result<()> {
    let bm = b.unwrap_or(a);
    let n2 = bm.nrows();
    debug_assert_eq!(n2, win.n2);
    let ld = win.ld();
    assert!(out.len() >= win.rows * ld, "gram: buffer too small for its window");
    let blocks = gram_blocks(win, a.ncols(), b.is_none());
    let ptr = Shared(out.as_mut_ptr());
    let block_job = |&(r0, r1, c0, c1): &(usize, usize, usize, usize)| -> Result<()> {
        ctl.check()?;
        // SAFETY: blocks cover disjoint parts of the window, which `out` holds entirely.
        let dst = unsafe {
            MatMut::<T>::from_raw_parts_mut(ptr.get().add(win.idx(r0, c0)), r1 - r0, c1 - c0, ld as isize, 1)
        };
        let lhs = a.subrows(r0, r1 - r0);
        let rhs = bm.subrows(c0, c1 - c0);
        faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs.transpose(), alpha, Par::Seq);
        ctl.advance(1);
        Ok(())
    };
    if parallel {
        blocks.par_iter().try_for_each(block_job)
    } else {
        blocks.iter().try_for_each(block_job)
    }
}

/// Run every layer over the Gram stored in `bufs[0]` (window `win`), writing the requested
/// kernels into `bufs` (NNGP first, then NTK). With `mirror` (a symmetric kernel held whole), the
/// upper triangle is mirrored into the lower one tile by tile.
#[allow(clippy::too_many_arguments)]
pub(crate) fn layers<T: Element, B: AsMut<[T]> + AsRef<[T]>>(
    bufs: &mut [B],
    win: Window,
    get: Get,
    sym: bool,
    mirror: bool,
    plans: &Planned<T>,
    tile: usize,
    parallel: bool,
    ctl: &Control,
) -> Result<()> {
    let tiles = tile_list(win, sym, tile);
    for b in bufs.iter() {
        assert!(
            b.as_ref().len() >= win.rows * win.ld(),
            "layers: buffer too small for its window"
        );
    }
    let ptrs: Vec<Shared<T>> = bufs.iter_mut().map(|b| Shared(b.as_mut().as_mut_ptr())).collect();
    let nonfinite = std::sync::atomic::AtomicBool::new(false);
    let job = TileJob {
        ctl,
        ptrs: &ptrs,
        get,
        win,
        mirror: mirror && sym,
        plans,
    };
    let tile_job = |scr: &mut RowScratch<T>, &t: &(usize, usize, usize, usize, bool)| -> Result<()> {
        ctl.check()?;
        let ok = crate::pool::arch().dispatch(RunTile { job: &job, t, scr });
        if !ok {
            nonfinite.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        ctl.advance(1);
        Ok(())
    };
    if parallel {
        tiles
            .par_iter()
            .try_for_each_init(|| RowScratch::<T>::new(plans.n_slots, tile), tile_job)?;
    } else {
        let mut scr = RowScratch::<T>::new(plans.n_slots, tile);
        tiles.iter().try_for_each(|t| tile_job(&mut scr, t))?;
    }
    if nonfinite.into_inner() {
        return Err(Error::NonFinite(format!(
            "the kernel has non-finite entries in {} (an overflow); reduce W_std, the depth or the input \
             scale, or use float64",
            T::NAME
        )));
    }
    Ok(())
}

struct TileJob<'a, T> {
    ctl: &'a Control,
    ptrs: &'a [Shared<T>],
    get: Get,
    win: Window,
    mirror: bool,
    plans: &'a Planned<T>,
}

type Tile = (usize, usize, usize, usize, bool);

struct RunTile<'a, 'b, T> {
    job: &'a TileJob<'a, T>,
    t: Tile,
    scr: &'b mut RowScratch<T>,
}

impl<T: Element> pulp::WithSimd for RunTile<'_, '_, T> {
    type Output = bool;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> bool {
        if self.job.get.ntk {
            run_tile::<T, true>(self.job, self.t, self.scr)
        } else {
            run_tile::<T, false>(self.job, self.t, self.scr)
        }
    }
}

/// One tile: rows `r0..r1`, columns `c0..c1` (from the diagonal on when `diag`); returns whether
/// every entry is finite.
#[inline(always)]
fn run_tile<T: Element, const NTK: bool>(job: &TileJob<'_, T>, t: Tile, scr: &mut RowScratch<T>) -> bool {
    let (r0, r1, c0, c1, diag) = t;
    let win = job.win;
    let mut ok = true;
    let out_n = job.get.nngp.then_some(job.ptrs[0]);
    let out_t = job.get.ntk.then(|| job.ptrs[job.ptrs.len() - 1]);
    let src = job.ptrs[0];
    let out = job.plans.out_slot;
    for i in r0..r1 {
        if job.ctl.is_cancelled() {
            // deep networks make a tile long: stop within a row (the result is discarded)
            return ok;
        }
        let js = if diag { i } else { c0 };
        let len = c1 - js;
        let at = win.idx(i, js);
        // SAFETY: this tile owns rows r0..r1 × columns c0..c1 of every buffer (and, when
        // mirroring, the transposed block), and the buffers hold the whole window.
        unsafe {
            std::ptr::copy_nonoverlapping(src.get().add(at), scr.slots[0].c.as_mut_ptr(), len);
        }
        run_row::<T, NTK>(job.plans, i, js, len, diag, scr);
        let (c, t) = (&scr.slots[out].c[..len], &scr.slots[out].t[..len]);
        let mut fin = true;
        for &v in c.iter() {
            fin &= v.is_finite();
        }
        if NTK {
            for &v in t.iter() {
                fin &= v.is_finite();
            }
        }
        ok &= fin;
        unsafe {
            if let Some(p) = out_n {
                std::ptr::copy_nonoverlapping(c.as_ptr(), p.get().add(at), len);
            }
            if let Some(p) = out_t {
                std::ptr::copy_nonoverlapping(t.as_ptr(), p.get().add(at), len);
            }
        }
    }
    if job.mirror {
        // mirror the block (upper → lower) while it is still in cache
        for p in [out_n, out_t].into_iter().flatten() {
            let p = p.get();
            for i in r0..r1 {
                let js = if diag { i + 1 } else { c0 };
                for j in js..c1 {
                    unsafe {
                        *p.add(win.idx(j, i)) = *p.add(win.idx(i, j));
                    }
                }
            }
        }
    }
    ok
}
