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

/// Columns per Gram block: about 0.25 GFLOP of work per block (a few milliseconds on one core, so
/// that Ctrl-C is seen within a fraction of a second even on a loaded machine), a multiple of 64,
/// at least 64.
pub(crate) fn gram_cols(d: usize) -> usize {
    let c = (2.5e8 / (2.0 * GRAM_ROWS as f64 * d.max(1) as f64)) as usize;
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

/// The (rescaled) inputs the Gram is computed from (`b = None`: `a` itself), and its factor:
/// the precise path recomputes the defect `√(q1 q2) − |c|` of pairs near ρ = ±1 from them, since
/// the Gram's rounding (~√d·ε) would otherwise become an angle of ~√(√d·ε).
#[derive(Clone, Copy)]
pub(crate) struct Inputs<'a, T> {
    pub a: MatRef<'a, T>,
    pub b: Option<MatRef<'a, T>>,
    pub gscale: T,
}

/// Input correlations within this of ±1 get their defect from the inputs (O(d) per pair, only
/// for the pairs the precise path recomputes); the others from the Gram's floats.
const INPUT_DEFECT_NEAR: f64 = 1e-2;

impl<T: Element> Inputs<'_, T> {
    /// `√(q1 q2) − |c|` of rows `x = a_i` and `y = b_j`, in f64, as `(q1 q2 − c²)/(√(q1 q2) + |c|)`
    /// with `q1 q2 − c² = g²(|x|²|y|² − (x·y)²) = g²|x|²|y_⊥|²` (`y_⊥` the part of `y` orthogonal
    /// to `x`) computed from the wedge `w = x_p y − y_p x` (`p` the largest component of `x`):
    /// `w_⊥ = x_p y_⊥`, and each `w_k = x_p y_k − x_k y_p` is a product difference to 2ε
    /// ([`crate::activation::diff_of_products`]), so an exactly parallel pair gets defect 0 and a
    /// nearly parallel one its angle to a few ε relative (maps like `Sign` turn an angle θ into
    /// ~√θ, so a rounding-level angle must not appear where the inputs are parallel).
    fn defect(&self, i: usize, j: usize, c: T, sp: T) -> T {
        use crate::activation::diff_of_products;
        let x = self.a.row(i);
        let y = self.b.unwrap_or(self.a).row(j);
        let d = self.a.ncols();
        let (mut xx, mut p, mut xp) = (0.0f64, 0, 0.0f64);
        for k in 0..d {
            let u = x[k].to_f64();
            xx += u * u;
            if u.abs() > xp.abs() {
                p = k;
                xp = u;
            }
        }
        if xx == 0.0 {
            return T::ZERO;
        }
        let yp = y[p].to_f64();
        let wedge = |k: usize| diff_of_products(xp, y[k].to_f64(), x[k].to_f64(), yp);
        let mut wx = 0.0f64;
        for k in 0..d {
            wx += wedge(k) * x[k].to_f64();
        }
        let proj = wx / xx;
        let mut perp = 0.0f64;
        for k in 0..d {
            let r = wedge(k) - proj * x[k].to_f64();
            perp += r * r;
        }
        let g = self.gscale.to_f64();
        let den = sp.to_f64() + c.to_f64().abs();
        if den > 0.0 {
            T::from_f64(g * g * xx * (perp / (xp * xp)) / den)
        } else {
            T::ZERO
        }
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
        crate::linalg::matmul(dst, Accum::Replace, lhs, rhs.transpose(), alpha, Par::Seq);
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
    inputs: Inputs<'_, T>,
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
        inputs,
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
    inputs: Inputs<'a, T>,
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
            std::ptr::copy_nonoverlapping(src.get().add(at), scr.gram.as_mut_ptr(), len);
        }
        scr.slots[0].c[..len].copy_from_slice(&scr.gram[..len]);
        let near = run_row::<T, NTK, false>(job.plans, i, js, len, diag, scr);
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
        if near {
            ok &= precise_row::<T, NTK>(job, i, js, len, diag, at, scr);
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

/// The precise path on a row whose fast pass flagged entries near ρ = ±1 (`scr.act.near`): the
/// row again with each pair's defect carried from the inputs, and the flagged entries written
/// over (each entry's value depends only on the entry, whatever the tiling).
#[inline(always)]
fn precise_row<T: Element, const NTK: bool>(
    job: &TileJob<'_, T>,
    i: usize,
    js: usize,
    len: usize,
    diag: bool,
    at: usize,
    scr: &mut RowScratch<T>,
) -> bool {
    let p = job.plans;
    let (v1, v2) = &p.vals[0];
    let v2 = v2.as_ref().unwrap_or(v1);
    let edge = T::ONE - T::from_f64(INPUT_DEFECT_NEAR);
    scr.slots[0].c[..len].copy_from_slice(&scr.gram[..len]);
    {
        let s0 = &mut scr.slots[0];
        for j in 0..len {
            let c = s0.c[j];
            let (q1, q2) = (v1.q[i], v2.q[js + j]);
            let sp = v1.sq[i] * v2.sq[js + j];
            let rsp = v1.rsq[i] * v2.rsq[js + j];
            let from_inputs = scr.act.near[j] != T::ZERO && (c * rsp).abs() > edge;
            s0.m[j] = if from_inputs {
                job.inputs.defect(i, js + j, c, sp)
            } else {
                crate::activation::defect_of(c, q1, q2, sp)
            };
        }
    }
    run_row::<T, NTK, true>(p, i, js, len, diag, scr);
    let out = p.out_slot;
    let (c, t) = (&scr.slots[out].c[..len], &scr.slots[out].t[..len]);
    let mut fin = true;
    for j in 0..len {
        if scr.act.near[j] == T::ZERO {
            continue;
        }
        fin &= c[j].is_finite() && (!NTK || t[j].is_finite());
        // SAFETY: as in run_tile.
        unsafe {
            if job.get.nngp {
                *job.ptrs[0].get().add(at + j) = c[j];
            }
            if job.get.ntk {
                *job.ptrs[job.ptrs.len() - 1].get().add(at + j) = t[j];
            }
        }
    }
    fin
}
