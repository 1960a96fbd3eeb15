//! Tiled passes over the output: the input Gram (faer, panel by panel) and the fused layer pass
//! (every layer on each row of a tile while it sits in L1, SIMD across the row, rayon across tiles).

use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::activation::Scratch;
use crate::analytic::{Element, Get, LayerPlan};
use crate::control::Control;
use crate::error::{Error, Result};

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
struct Shared<T>(*mut T);
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    #[inline(always)]
    fn get(self) -> *mut T {
        self.0
    }
}

/// Rows per Gram panel: about 1 GFLOP of work (so that Ctrl-C is seen within ~0.1 s), 16 to 256.
fn panel_height(n2: usize, d: usize) -> usize {
    (1e9 / (2.0 * n2.max(1) as f64 * d.max(1) as f64))
        .ceil()
        .clamp(16.0, 256.0) as usize
}

/// The tiles of an `n1 × n2` output (upper triangle only when `sym`).
fn tile_list(n1: usize, n2: usize, sym: bool, tile: usize) -> Vec<(usize, usize)> {
    let (nb1, nb2) = (n1.div_ceil(tile), n2.div_ceil(tile));
    (0..nb1)
        .flat_map(|bi| (if sym { bi } else { 0 }..nb2).map(move |bj| (bi, bj)))
        .collect()
}

/// Work units (Gram panels + tiles) of a kernel computation, for progress reports.
pub(crate) fn work_units(n1: usize, n2: usize, d: usize, sym: bool, tile: usize) -> u64 {
    (n1.div_ceil(panel_height(n2, d)) + tile_list(n1, n2, sym, tile).len()) as u64
}

/// `out = alpha · a bᵀ`; panels in parallel on the current rayon pool when `parallel`, else in
/// order on the calling thread (`b = a` when `None`: then only the panels' upper part, columns ≥ the
/// panel's first row, is written). `out` is row-major `a.nrows() × b.nrows()`.
pub(crate) fn gram<T: Element>(
    out: &mut [T],
    a: MatRef<'_, T>,
    b: Option<MatRef<'_, T>>,
    alpha: T,
    parallel: bool,
    ctl: &Control,
) -> Result<()> {
    let n1 = a.nrows();
    let bm = b.unwrap_or(a);
    let n2 = bm.nrows();
    let sym = b.is_none();
    let panel = panel_height(n2, a.ncols());
    let starts: Vec<usize> = (0..n1).step_by(panel).collect();
    let ptr = Shared(out.as_mut_ptr());
    let panel_job = |&r0: &usize| -> Result<()> {
        ctl.check()?;
        let r1 = (r0 + panel).min(n1);
        let c0 = if sym { r0 } else { 0 };
        // SAFETY: panels cover disjoint row ranges of `out`, which has n1·n2 elements.
        let dst =
            unsafe { MatMut::<T>::from_raw_parts_mut(ptr.get().add(r0 * n2 + c0), r1 - r0, n2 - c0, n2 as isize, 1) };
        let lhs = a.subrows(r0, r1 - r0);
        let rhs = bm.subrows(c0, n2 - c0);
        faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs.transpose(), alpha, Par::Seq);
        ctl.advance(1);
        Ok(())
    };
    if parallel {
        starts.par_iter().try_for_each(panel_job)
    } else {
        starts.iter().try_for_each(panel_job)
    }
}

/// Run every layer over the Gram stored in `bufs[0]`, writing the requested kernels into `bufs`
/// (NNGP first, then NTK) and mirroring the upper triangle when `sym`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn layers<T: Element>(
    bufs: &mut [Vec<T>],
    get: Get,
    n1: usize,
    n2: usize,
    sym: bool,
    plans: &[LayerPlan<T>],
    tile: usize,
    parallel: bool,
    ctl: &Control,
) -> Result<()> {
    let tiles = tile_list(n1, n2, sym, tile);
    let ptrs: Vec<Shared<T>> = bufs.iter_mut().map(|b| Shared(b.as_mut_ptr())).collect();
    let nonfinite = std::sync::atomic::AtomicBool::new(false);
    let job = TileJob {
        ctl,
        ptrs: &ptrs,
        get,
        n1,
        n2,
        sym,
        plans,
        tile,
    };
    let tile_job = |scr: &mut Scratch<T>, &(bi, bj): &(usize, usize)| -> Result<()> {
        ctl.check()?;
        let ok = crate::pool::arch().dispatch(RunTile { job: &job, bi, bj, scr });
        if !ok {
            nonfinite.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        ctl.advance(1);
        Ok(())
    };
    if parallel {
        tiles
            .par_iter()
            .try_for_each_init(|| Scratch::<T>::new(tile), tile_job)?;
    } else {
        let mut scr = Scratch::<T>::new(tile);
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
    n1: usize,
    n2: usize,
    sym: bool,
    plans: &'a [LayerPlan<T>],
    tile: usize,
}

struct RunTile<'a, 'b, T> {
    job: &'a TileJob<'a, T>,
    bi: usize,
    bj: usize,
    scr: &'b mut Scratch<T>,
}

impl<T: Element> pulp::WithSimd for RunTile<'_, '_, T> {
    type Output = bool;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> bool {
        if self.job.get.ntk {
            run_tile::<T, true>(self.job, self.bi, self.bj, self.scr)
        } else {
            run_tile::<T, false>(self.job, self.bi, self.bj, self.scr)
        }
    }
}

/// One tile: rows `bi·tile..`, columns `bj·tile..`; returns whether every entry is finite.
#[inline(always)]
fn run_tile<T: Element, const NTK: bool>(job: &TileJob<'_, T>, bi: usize, bj: usize, scr: &mut Scratch<T>) -> bool {
    let (n1, n2, tile) = (job.n1, job.n2, job.tile);
    let (r0, r1) = (bi * tile, ((bi + 1) * tile).min(n1));
    let (c0, c1) = (bj * tile, ((bj + 1) * tile).min(n2));
    let diag = job.sym && bi == bj;
    let mut c = vec![T::ZERO; tile];
    let mut t = vec![T::ZERO; tile];
    let mut ok = true;
    let out_n = job.get.nngp.then_some(job.ptrs[0]);
    let out_t = job.get.ntk.then(|| job.ptrs[job.ptrs.len() - 1]);
    let src = job.ptrs[0];
    for i in r0..r1 {
        if job.ctl.is_cancelled() {
            // deep networks make a tile long: stop within a row (the result is discarded)
            return ok;
        }
        let js = if diag { i } else { c0 };
        let len = c1 - js;
        let (c, t) = (&mut c[..len], &mut t[..len]);
        // SAFETY: this tile owns rows r0..r1 × columns c0..c1 of every buffer (and, when
        // mirroring, the transposed block), and the buffers hold n1·n2 elements.
        unsafe {
            std::ptr::copy_nonoverlapping(src.get().add(i * n2 + js), c.as_mut_ptr(), len);
        }
        t.iter_mut().for_each(|v| *v = T::ZERO);
        crate::analytic::run_layers::<T, NTK>(job.plans, i, js, diag, c, t, scr);
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
                std::ptr::copy_nonoverlapping(c.as_ptr(), p.get().add(i * n2 + js), len);
            }
            if let Some(p) = out_t {
                std::ptr::copy_nonoverlapping(t.as_ptr(), p.get().add(i * n2 + js), len);
            }
        }
    }
    if job.sym {
        // mirror the block (upper → lower) while it is still in cache
        for p in [out_n, out_t].into_iter().flatten() {
            let p = p.get();
            for i in r0..r1 {
                let js = if diag { i + 1 } else { c0 };
                for j in js..c1 {
                    unsafe {
                        *p.add(j * n2 + i) = *p.add(i * n2 + j);
                    }
                }
            }
        }
    }
    ok
}
