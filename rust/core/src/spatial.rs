//! Kernels of networks on spatial inputs (convolutions, pooling, global pools, `Flatten`): the
//! dense path's kernel state extended to positions.
//!
//! The state of a pair of samples `(x1_i, x2_j)` at a value with spatial shape `dims` (`P`
//! positions) is an array of *lanes*: its NNGP and NTK for every pair of positions `(p, p')`
//! (`P²` lanes, row-major in `p` then `p'`), or only for equal positions (`P` lanes) when nothing
//! downstream reads cross-position covariances ([`crate::program::Program::full`]: a `Flatten`
//! readout without pooling needs only those). Without spatial axes a value has one lane.
//!
//! * **Inputs.** `K0(p, p') = x_i(p)·x_j(p')/C` over the channels, `Θ0 = 0`.
//! * **Conv** is a stencil along the diagonal direction: `Σ_δ K(i(o, δ), i(o', δ))` (the same tap on
//!   both position axes), one spatial axis at a time, then the `Dense` map with `W²/|f|`.
//! * **Pooling** sums over the window on each position axis separately (`x1`'s, then `x2`'s).
//! * **Activations** read the per-sample, per-position variances `q(n, p)` through the same
//!   [`Side`](crate::activation::Side) views as dense rows: for equal positions both sides are
//!   [`Span`](crate::activation::common::Span)s over the pair's positions; for all pairs of
//!   positions each `x1` position `p` is a row of `P` lanes with `At(i, p)` and `Span(j, ·)`.
//! * **GlobalAvgPool / GlobalSumPool** reduce all lanes; **Flatten** the equal-position lanes.
//!
//! The per-sample variances (and `LayerNorm`'s factors) are found by running each sample's own
//! pair `(x_n, x_n)` through the steps before each activation, streamed sample by sample (never
//! `N·P²` numbers at once), with the same code and precision as the kernel pass: the kernel of
//! `(x_i, x_i)` at equal positions is then bitwise the variance its activations read (ρ = 1
//! exactly), and `diagonal=True` equals the kernel's diagonal bitwise.
//!
//! Work is split into tiles of sample pairs (rayon across tiles); each pair's lanes stay in the
//! worker's scratch (`O(lanes × slots)` per thread), never an `N²·P²` array.

use faer::MatRef;
use rayon::prelude::*;

use crate::activation::{Plan as ActPlan, Samples, Scratch};
use crate::control::Control;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::kernels::Get;
use crate::layer::conv::{shape_str, Axis};
use crate::layer::{dense, fan, layer_norm, Parameterization, PoolKind};
use crate::program::{Exec, Op, Program};
use crate::tile::{tile_list, Shared, Window};
use crate::vmath::Real;

/// The lanes of one value for one pair of samples.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    dims: Vec<usize>,
    /// Positions.
    p: usize,
    /// Every pair of positions (`P²` lanes) rather than equal positions (`P`).
    full: bool,
}

impl Layout {
    fn lanes(&self) -> usize {
        if self.full {
            self.p * self.p
        } else {
            self.p
        }
    }

    /// The shape of the lane array: `dims ++ dims` (full) or `dims`.
    fn shape(&self) -> Vec<usize> {
        if self.full {
            self.dims.iter().chain(&self.dims).copied().collect()
        } else {
            self.dims.clone()
        }
    }
}

/// One spatial axis of a stencil: its geometry and the runs of each tap.
#[derive(Clone, Debug)]
struct Runs {
    l_in: usize,
    l_out: usize,
    f: usize,
    s: usize,
    /// Stride 1, no wrap, as many outputs as inputs (`SAME`): tap `d` reads position `o + d − lo`,
    /// a constant shift.
    shifted: bool,
    lo: usize,
    idx: Vec<Option<usize>>,
    runs: Vec<Vec<(usize, usize, usize)>>,
}

impl Runs {
    fn new(a: &Axis) -> Self {
        Runs {
            l_in: a.l_in,
            l_out: a.l_out,
            f: a.f,
            s: a.s,
            shifted: a.s == 1 && !a.circular && a.l_out == a.l_in,
            lo: a.lo,
            idx: a.idx.clone(),
            runs: a.runs(),
        }
    }
}

/// For a [`Pass::Diag`] on the last two position axes with a shifted geometry: per tap, the shift
/// `d − lo` and the mask (1 or 0) of the `mid × L` block's entries whose shifted read is inside.
#[derive(Clone, Debug)]
struct Masks<T> {
    shift: Vec<isize>,
    mask: Vec<Vec<T>>,
}

/// One pass of a stencil over a lane array.
#[derive(Clone, Debug)]
enum Pass<T> {
    /// Taps along array axis `ax`, each output scaled by `w[o]` when given.
    One { ax: usize, r: Runs, w: Option<Vec<T>> },
    /// The same tap along array axes `a1 < a2` (a convolution's two position axes); `masks` when
    /// `a2` is the last axis and the geometry is shifted (`SAME`, stride 1).
    Diag {
        a1: usize,
        a2: usize,
        r: Runs,
        masks: Option<Masks<T>>,
    },
    /// A whole convolution on every pair of positions in one pass, when every axis is shifted
    /// (`SAME`, stride 1): output block `p` (all `x2` positions) is the sum over the taps of the
    /// input block `p + off` read at `p' + off` (a constant shift `shift` of the flattened `x2`
    /// positions), masked where `p' + off` leaves the input. `dims` the spatial shape.
    Fused { dims: Vec<usize>, taps: Vec<Tap<T>> },
}

/// One filter tap of a [`Pass::Fused`]: its offset per axis, the flattened shift and the mask.
#[derive(Clone, Debug)]
struct Tap<T> {
    off: Vec<isize>,
    shift: isize,
    mask: Vec<T>,
}

/// A convolution on equal positions whose every axis is shifted (`SAME`, stride 1, no wrap), in
/// one or two dimensions (`h` rows of `w`; one row in 1-D): one vertical pass of long loops
/// (groups of rows that read the same rows) and one horizontal pass of shifted reads over the
/// whole array, masked at the row edges, fused with the `Dense` map ([`conv_equal`]). The sums are
/// those of the separable passes ([`Pass::One`]), in the same order (taps in increasing order);
/// the padding's terms are exact zeros (masked reads).
#[derive(Clone, Debug)]
struct Shifted<T> {
    h: usize,
    w: usize,
    /// Row groups `(r0, r1, offsets)`: rows `r0..r1` sum rows `r + offset`, in tap order.
    groups: Vec<(usize, usize, Vec<isize>)>,
    /// Horizontal taps in order: the shift `d − lo` and the mask over the `h·w` lanes (1 where
    /// the shifted read stays in its row; `None` for the shift 0).
    taps: Vec<(isize, Option<Vec<T>>)>,
    /// The largest `|shift|`: the margin around the vertical sums.
    pad: usize,
}

/// The [`Shifted`] form of a convolution on a value of layout `full`, when it has one.
fn shifted_conv<T: Real>(axes: &[Axis], full: bool) -> Option<Shifted<T>> {
    if full || axes.is_empty() || axes.len() > 2 || !axes.iter().all(|a| a.s == 1 && !a.circular && a.l_out == a.l_in) {
        return None;
    }
    let (va, ha) = if axes.len() == 2 {
        (Some(&axes[0]), &axes[1])
    } else {
        (None, &axes[0])
    };
    let (h, w) = (va.map_or(1, |a| a.l_in), ha.l_in);
    let mut groups: Vec<(usize, usize, Vec<isize>)> = Vec::new();
    for r in 0..h {
        let offs: Vec<isize> = match va {
            Some(a) => (0..a.f)
                .filter_map(|d| a.at(r, d).map(|i| i as isize - r as isize))
                .collect(),
            None => vec![0],
        };
        match groups.last_mut() {
            Some((_, r1, o)) if *o == offs => *r1 = r + 1,
            _ => groups.push((r, r + 1, offs)),
        }
    }
    let n = h * w;
    let taps = (0..ha.f)
        .map(|d| {
            let sh = d as isize - ha.lo as isize;
            let mask = (sh != 0).then(|| {
                (0..n)
                    .map(|k| {
                        let x = (k % w) as isize + sh;
                        if x >= 0 && x < w as isize {
                            T::ONE
                        } else {
                            T::ZERO
                        }
                    })
                    .collect()
            });
            (sh, mask)
        })
        .collect::<Vec<_>>();
    let pad = taps.iter().map(|t| t.0.unsigned_abs()).max().unwrap_or(0);
    Some(Shifted {
        h,
        w,
        groups,
        taps,
        pad,
    })
}

/// The vertical sums of a [`Shifted`] convolution: `dst[r·w + x] = Σ src[(r + off)·w + x]` over
/// the offsets of row `r`'s group, in order.
#[inline(always)]
fn vertical<T: Real>(sh: &Shifted<T>, src: &[T], dst: &mut [T]) {
    let w = sh.w as isize;
    for (r0, r1, offs) in &sh.groups {
        let (a, b) = (r0 * sh.w, r1 * sh.w);
        let d = &mut dst[a..b];
        let at = |o: isize| &src[(a as isize + o * w) as usize..(b as isize + o * w) as usize];
        match offs.len() {
            0 => d.iter_mut().for_each(|v| *v = T::ZERO),
            1 => d.copy_from_slice(at(offs[0])),
            2 => {
                for ((v, &x), &y) in d.iter_mut().zip(at(offs[0])).zip(at(offs[1])) {
                    *v = x + y;
                }
            }
            _ => {
                for (((v, &x), &y), &z) in d.iter_mut().zip(at(offs[0])).zip(at(offs[1])).zip(at(offs[2])) {
                    *v = (x + y) + z;
                }
                for &o in &offs[3..] {
                    add_slice(d, at(o));
                }
            }
        }
    }
}

/// The horizontal sums of a [`Shifted`] convolution from the vertical sums `vc`, `vt` (each with
/// a margin of `pad` entries on both sides), then the `Dense` map `f`, into `dc`, `dt` (`h·w`
/// lanes). `TZ`: the NTK input is zero (`vt` is not read).
#[inline(always)]
fn horizontal<T: Real, const NTK: bool, const TZ: bool, F: Fn(T, T) -> (T, T)>(
    sh: &Shifted<T>,
    f: F,
    vc: &[T],
    vt: &[T],
    dc: &mut [T],
    dt: &mut [T],
) {
    let n = sh.h * sh.w;
    let pad = sh.pad;
    let (dc, dt) = (&mut dc[..n], &mut dt[..n]);
    let tap = |s: isize| (pad as isize + s) as usize..(pad as isize + s) as usize + n;
    if let [(-1, Some(m0)), (0, None), (1, Some(m2))] = &sh.taps[..] {
        let (m0, m2) = (&m0[..n], &m2[..n]);
        let (c0, c1, c2) = (&vc[tap(-1)][..n], &vc[tap(0)][..n], &vc[tap(1)][..n]);
        if NTK && !TZ {
            let (t0, t1, t2) = (&vt[tap(-1)][..n], &vt[tap(0)][..n], &vt[tap(1)][..n]);
            for k in 0..n {
                let hc = (c0[k] * m0[k] + c1[k]) + c2[k] * m2[k];
                let ht = (t0[k] * m0[k] + t1[k]) + t2[k] * m2[k];
                (dc[k], dt[k]) = f(hc, ht);
            }
        } else {
            for k in 0..n {
                let hc = (c0[k] * m0[k] + c1[k]) + c2[k] * m2[k];
                let (c, t) = f(hc, T::ZERO);
                dc[k] = c;
                if NTK {
                    dt[k] = t;
                }
            }
        }
        return;
    }
    // any other filter: one pass per tap, then the map
    let sums = |v: &[T], d: &mut [T]| {
        for (i, (s, m)) in sh.taps.iter().enumerate() {
            let src = &v[tap(*s)];
            match (i, m) {
                (0, None) => d.copy_from_slice(src),
                (0, Some(m)) => {
                    for ((o, &x), &mk) in d.iter_mut().zip(src).zip(&m[..n]) {
                        *o = x * mk;
                    }
                }
                (_, None) => add_slice(d, src),
                (_, Some(m)) => {
                    for ((o, &x), &mk) in d.iter_mut().zip(src).zip(&m[..n]) {
                        *o += x * mk;
                    }
                }
            }
        }
        if sh.taps.is_empty() {
            d.iter_mut().for_each(|o| *o = T::ZERO);
        }
    };
    sums(vc, dc);
    if NTK && !TZ {
        sums(vt, dt);
    }
    for (c, t) in dc.iter_mut().zip(dt.iter_mut()) {
        let ht = if TZ { T::ZERO } else { *t };
        let (cn, tn) = f(*c, ht);
        *c = cn;
        if NTK {
            *t = tn;
        }
    }
}

/// A [`Shifted`] convolution and its `Dense` map on one pair: slot lanes `sc`, `st` into `dc`,
/// `dt` through the vertical sums `vc`, `vt` (`h·w + 2·pad` entries each). `t_zero`: the NTK
/// input is zero (the network's input).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn conv_equal<T: Real, const NTK: bool>(
    sh: &Shifted<T>,
    plan: &dense::Plan<T>,
    t_zero: bool,
    sc: &[T],
    st: &[T],
    vc: &mut [T],
    vt: &mut [T],
    dc: &mut [T],
    dt: &mut [T],
) {
    let (n, pad) = (sh.h * sh.w, sh.pad);
    let tz = !NTK || t_zero;
    vertical(sh, &sc[..n], &mut vc[pad..pad + n]);
    vc[..pad].iter_mut().for_each(|v| *v = T::ZERO);
    vc[pad + n..pad + n + pad].iter_mut().for_each(|v| *v = T::ZERO);
    if !tz {
        vertical(sh, &st[..n], &mut vt[pad..pad + n]);
        vt[..pad].iter_mut().for_each(|v| *v = T::ZERO);
        vt[pad + n..pad + n + pad].iter_mut().for_each(|v| *v = T::ZERO);
    }
    // the map of `dense::Plan::row`, entry by entry
    let (w2, b2, standard) = plan.coefficients();
    let ntk_param = move |c: T, t: T| {
        let cn = w2 * c + b2;
        (cn, cn + w2 * t)
    };
    match (standard, tz) {
        (None, false) => horizontal::<T, NTK, false, _>(sh, ntk_param, vc, vt, dc, dt),
        (None, true) => horizontal::<T, NTK, true, _>(sh, ntk_param, vc, vt, dc, dt),
        (Some((n_in, one)), false) => {
            horizontal::<T, NTK, false, _>(sh, |c, t| (w2 * c + b2, n_in * c + w2 * t + one), vc, vt, dc, dt)
        }
        (Some((n_in, one)), true) => {
            horizontal::<T, NTK, true, _>(sh, |c, t| (w2 * c + b2, n_in * c + w2 * t + one), vc, vt, dc, dt)
        }
    }
}

/// A step prepared for one call, in precision `T`.
#[allow(clippy::large_enum_variant)]
enum SStep<T> {
    Dense(dense::Plan<T>),
    /// The stencil passes (sums over the taps), then the affine map (`W²/|f|` folded in).
    Conv {
        passes: Vec<Pass<T>>,
        plan: dense::Plan<T>,
        /// The fused form on equal positions ([`conv_equal`]), when the geometry allows.
        fast: Option<Shifted<T>>,
        /// The input is the network's input (NTK 0).
        t_zero: bool,
    },
    Pool {
        passes: Vec<Pass<T>>,
    },
    GlobalPool {
        scale: T,
    },
    Flatten,
    /// Planned when the variances are known; `s[set]` laid out `[n·P + p]`.
    Act {
        plan: ActPlan<T>,
        s: Vec<Samples<T>>,
    },
    /// Factors `1/√(q̄ + eps)` per `[n·P + p]` and set.
    LayerNorm {
        r: Vec<Vec<T>>,
    },
    Dropout {
        inv_rate: T,
    },
    Sum,
    Prod,
    Concat {
        w: Vec<T>,
    },
    /// Not planned yet (an activation or `LayerNorm` before its variances are known).
    Pending,
}

/// A network ready to compute kernels between two fixed batches of spatial inputs.
pub(crate) struct SpatialPlanned<T> {
    layouts: Vec<Layout>,
    steps: Vec<SStep<T>>,
    exec: Vec<Exec>,
    inputs: Vec<usize>,
    step_inputs: Vec<Vec<usize>>,
    outputs: Vec<usize>,
    n_slots: usize,
    max_lanes: usize,
    /// The largest margin of a [`Shifted`] convolution's vertical sums.
    margin: usize,
    /// Channel-major rescaled inputs per set (`x1`, then `x2` when given): `[n][c][p]`.
    x: Vec<Vec<T>>,
    n: Vec<usize>,
    c_in: usize,
    p_in: usize,
    gscale: T,
}

/// Per-thread work space: every slot's lanes and four temporaries.
pub(crate) struct PairScratch<T> {
    c: Vec<Vec<T>>,
    t: Vec<Vec<T>>,
    /// Temporaries: `[extract, ping, pong, out]`, NNGP and NTK.
    tc: [Vec<T>; 4],
    tt: [Vec<T>; 4],
    act: Scratch<T>,
    /// The vertical sums of [`conv_equal`] with their margins, NNGP and NTK.
    vc: Vec<T>,
    vt: Vec<T>,
}

impl<T: Real> PairScratch<T> {
    /// `margin`: the largest [`Shifted::pad`] of the network.
    fn new(n_slots: usize, lanes: usize, margin: usize) -> Self {
        let v = || vec![T::ZERO; lanes];
        PairScratch {
            c: (0..n_slots).map(|_| v()).collect(),
            t: (0..n_slots).map(|_| v()).collect(),
            tc: [v(), v(), v(), v()],
            tt: [v(), v(), v(), v()],
            act: Scratch::new(lanes),
            vc: vec![T::ZERO; lanes + 2 * margin],
            vt: vec![T::ZERO; lanes + 2 * margin],
        }
    }
}

#[inline(always)]
fn add_slice<T: Real>(d: &mut [T], s: &[T]) {
    let s = &s[..d.len()];
    for (a, &b) in d.iter_mut().zip(s) {
        *a += b;
    }
}

fn prod(v: &[usize]) -> usize {
    v.iter().product()
}

/// Apply one pass to `src` (shape `shape`), writing `dst`; returns the new shape.
#[inline(always)]
fn apply_pass<T: Real>(pass: &Pass<T>, shape: &[usize], src: &[T], dst: &mut [T]) -> Vec<usize> {
    match pass {
        Pass::Fused { dims, taps } => {
            fused(dims, taps, src, dst);
            shape.to_vec()
        }
        Pass::One { ax, r, w } => {
            let ax = *ax;
            let (outer, l_in, inner) = (prod(&shape[..ax]), shape[ax], prod(&shape[ax + 1..]));
            let l_out = r.l_out;
            let dst = &mut dst[..outer * l_out * inner];
            dst.iter_mut().for_each(|v| *v = T::ZERO);
            for ob in 0..outer {
                let (sb, db) = (ob * l_in * inner, ob * l_out * inner);
                for d in 0..r.f {
                    for &(o0, i0, len) in &r.runs[d] {
                        if r.s == 1 {
                            add_slice(
                                &mut dst[db + o0 * inner..db + (o0 + len) * inner],
                                &src[sb + i0 * inner..sb + (i0 + len) * inner],
                            );
                        } else {
                            for m in 0..len {
                                let (o, i) = (o0 + m, i0 + m * r.s);
                                add_slice(
                                    &mut dst[db + o * inner..db + (o + 1) * inner],
                                    &src[sb + i * inner..sb + (i + 1) * inner],
                                );
                            }
                        }
                    }
                }
                if let Some(w) = w {
                    for (o, &wo) in w.iter().enumerate() {
                        for v in &mut dst[db + o * inner..db + (o + 1) * inner] {
                            *v *= wo;
                        }
                    }
                }
            }
            let mut out = shape.to_vec();
            out[ax] = l_out;
            out
        }
        Pass::Diag { a1, a2, r, masks } => {
            let (a1, a2) = (*a1, *a2);
            let outer = prod(&shape[..a1]);
            let l_in = shape[a1];
            let mid = prod(&shape[a1 + 1..a2]);
            let inner = prod(&shape[a2 + 1..]);
            let l_out = r.l_out;
            let dst = &mut dst[..outer * l_out * mid * l_out * inner];
            if let Some(mk) = masks {
                // inner = 1, l_out = l_in: block (o) of `mid × L` lanes reads block (i) shifted
                let len = mid * l_in;
                for ob in 0..outer {
                    for o in 0..l_out {
                        let db = (ob * l_out + o) * len;
                        let dblk = &mut dst[db..db + len];
                        let mut first = true;
                        for d in 0..r.f {
                            let Some(i) = r.idx[o * r.f + d] else { continue };
                            let sb = (ob * l_in + i) * len;
                            let sblk = &src[sb..sb + len];
                            let sh = mk.shift[d];
                            let mask = &mk.mask[d][..len];
                            let (k0, k1) = (sh.min(0).unsigned_abs(), len - sh.max(0) as usize);
                            let sl = &sblk[(k0 as isize + sh) as usize..(k1 as isize + sh) as usize];
                            if first {
                                dblk[..k0].iter_mut().for_each(|v| *v = T::ZERO);
                                dblk[k1..].iter_mut().for_each(|v| *v = T::ZERO);
                                for ((dv, &sv), &m) in dblk[k0..k1].iter_mut().zip(sl).zip(&mask[k0..k1]) {
                                    *dv = sv * m;
                                }
                                first = false;
                            } else {
                                for ((dv, &sv), &m) in dblk[k0..k1].iter_mut().zip(sl).zip(&mask[k0..k1]) {
                                    *dv += sv * m;
                                }
                            }
                        }
                        if first {
                            dblk.iter_mut().for_each(|v| *v = T::ZERO);
                        }
                    }
                }
            } else {
                let blk = l_out * inner;
                for ob in 0..outer {
                    for o in 0..l_out {
                        for m in 0..mid {
                            let db = ((ob * l_out + o) * mid + m) * blk;
                            // every tap into this block while it is in cache
                            dst[db..db + blk].iter_mut().for_each(|v| *v = T::ZERO);
                            for d in 0..r.f {
                                let Some(i) = r.idx[o * r.f + d] else { continue };
                                let sb = ((ob * l_in + i) * mid + m) * l_in * inner;
                                for &(o0, i0, len) in &r.runs[d] {
                                    if r.s == 1 {
                                        add_slice(
                                            &mut dst[db + o0 * inner..db + (o0 + len) * inner],
                                            &src[sb + i0 * inner..sb + (i0 + len) * inner],
                                        );
                                    } else {
                                        for k in 0..len {
                                            let (o2, i2) = (o0 + k, i0 + k * r.s);
                                            add_slice(
                                                &mut dst[db + o2 * inner..db + (o2 + 1) * inner],
                                                &src[sb + i2 * inner..sb + (i2 + 1) * inner],
                                            );
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let mut out = shape.to_vec();
            out[a1] = l_out;
            out[a2] = l_out;
            out
        }
    }
}

/// [`Pass::Fused`] from `src` into `dst` (both `P × P` lanes).
#[inline(always)]
fn fused<T: Real>(dims: &[usize], taps: &[Tap<T>], src: &[T], dst: &mut [T]) {
    let p: usize = prod(dims);
    let k = dims.len();
    let mut pos = vec![0isize; k];
    for o in 0..p {
        // the multi-index of x1 position o
        let mut rest = o;
        for a in (0..k).rev() {
            pos[a] = (rest % dims[a]) as isize;
            rest /= dims[a];
        }
        let dblk = &mut dst[o * p..(o + 1) * p];
        let mut first = true;
        for tap in taps {
            // the x1 position o + off, if inside
            let mut i = 0usize;
            let mut inside = true;
            for a in 0..k {
                let v = pos[a] + tap.off[a];
                inside &= v >= 0 && v < dims[a] as isize;
                i = i * dims[a] + v.max(0) as usize;
            }
            if !inside {
                continue;
            }
            let sblk = &src[i * p..(i + 1) * p];
            let sh = tap.shift;
            let (k0, k1) = (sh.min(0).unsigned_abs(), p - sh.max(0) as usize);
            let sl = &sblk[(k0 as isize + sh) as usize..(k1 as isize + sh) as usize];
            let mask = &tap.mask[k0..k1];
            if first {
                dblk[..k0].iter_mut().for_each(|v| *v = T::ZERO);
                dblk[k1..].iter_mut().for_each(|v| *v = T::ZERO);
                for ((dv, &sv), &m) in dblk[k0..k1].iter_mut().zip(sl).zip(mask) {
                    *dv = sv * m;
                }
                first = false;
            } else {
                for ((dv, &sv), &m) in dblk[k0..k1].iter_mut().zip(sl).zip(mask) {
                    *dv += sv * m;
                }
            }
        }
        if first {
            dblk.iter_mut().for_each(|v| *v = T::ZERO);
        }
    }
}

/// Run `passes` from `src` into `dst` through the ping-pong temporaries `a`, `b` (none of them
/// aliasing `src` or `dst`).
#[inline(always)]
fn stencil<T: Real>(passes: &[Pass<T>], shape: &[usize], src: &[T], dst: &mut [T], a: &mut [T], b: &mut [T]) {
    let k = passes.len();
    let mut shape = shape.to_vec();
    if k == 1 {
        apply_pass(&passes[0], &shape, src, dst);
        return;
    }
    shape = apply_pass(&passes[0], &shape, src, a);
    let mut in_a = true;
    for (m, pass) in passes.iter().enumerate().skip(1) {
        let last = m == k - 1;
        match (in_a, last) {
            (true, true) => shape = apply_pass(pass, &shape, a, dst),
            (false, true) => shape = apply_pass(pass, &shape, b, dst),
            (true, false) => shape = apply_pass(pass, &shape, a, b),
            (false, false) => shape = apply_pass(pass, &shape, b, a),
        }
        in_a = !in_a;
    }
}

/// The equal-position lanes `(p, p)` of a full array of `p` positions, in place (front to back:
/// lane `p·(P + 1)` is read before lane `p` is written).
#[inline(always)]
fn diagonal_in_place<T: Real>(v: &mut [T], p: usize) {
    for k in 0..p {
        v[k] = v[k * (p + 1)];
    }
}

#[inline(always)]
fn diagonal_into<T: Real>(src: &[T], dst: &mut [T], p: usize) {
    for k in 0..p {
        dst[k] = src[k * (p + 1)];
    }
}

/// `Σ v` with eight independent f64 accumulators (vectorised, deterministic).
#[inline(always)]
fn sum_lanes<T: Real>(v: &[T]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        for k in 0..8 {
            acc[k] += ch[k].to_f64();
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &x in rest {
        s += x.to_f64();
    }
    s
}

impl Program {
    /// `Err` unless the kernel of this network is a matrix (no spatial axes at the output).
    pub(crate) fn check_readout(&self) -> Result<()> {
        let d = self.dims(self.output);
        if !d.is_empty() {
            return Err(Error::arg(
                "x1",
                format!(
                    "has examples of spatial shape {} (inputs (N, ..., C)), and the network's output keeps \
                     spatial axes (shape (N, {}, C)), so its kernels would be indexed by positions too; end the \
                     network with Flatten(), GlobalAvgPool() or GlobalSumPool() (and a Dense readout), or pass \
                     (N, d) vectors",
                    shape_str(self.dims(0)),
                    d.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn layouts(&self) -> Vec<Layout> {
        (0..self.values.len())
            .map(|v| {
                let dims = self.dims(v).to_vec();
                Layout {
                    p: prod(&dims),
                    dims,
                    full: self.full[v],
                }
            })
            .collect()
    }
}

/// Stencil passes of a convolution or pooling layer on a value of layout `l` (`dims` its spatial
/// shape).
fn conv_passes<T: Real>(axes: &[Axis], full: bool) -> Vec<Pass<T>> {
    let k = axes.len();
    if full && axes.iter().all(|a| a.s == 1 && !a.circular && a.l_out == a.l_in) {
        // one fused pass: every tap is a constant shift of the flattened positions
        let dims: Vec<usize> = axes.iter().map(|a| a.l_in).collect();
        let p = prod(&dims);
        let n_taps: usize = axes.iter().map(|a| a.f).product();
        let taps = (0..n_taps)
            .map(|t| {
                let mut rest = t;
                let mut off = vec![0isize; k];
                for a in (0..k).rev() {
                    off[a] = (rest % axes[a].f) as isize - axes[a].lo as isize;
                    rest /= axes[a].f;
                }
                let mut shift = 0isize;
                for a in 0..k {
                    shift = shift * dims[a] as isize + off[a];
                }
                let mask = (0..p)
                    .map(|q| {
                        let mut rest = q;
                        let mut ok = true;
                        for a in (0..k).rev() {
                            let v = (rest % dims[a]) as isize + off[a];
                            ok &= v >= 0 && v < dims[a] as isize;
                            rest /= dims[a];
                        }
                        if ok {
                            T::ONE
                        } else {
                            T::ZERO
                        }
                    })
                    .collect();
                Tap { off, shift, mask }
            })
            .collect();
        return vec![Pass::Fused { dims, taps }];
    }
    axes.iter()
        .enumerate()
        .map(|(a, ax)| {
            if full {
                let r = Runs::new(ax);
                // the last axis: shifted reads over whole `mid × L` blocks, masked at the edges
                let masks = (a == k - 1 && r.shifted).then(|| {
                    // mid = the positions of x2 before this axis; the mask depends on o' only
                    let (l, mid) = (r.l_in, axes[..k - 1].iter().map(|x| x.l_out).product::<usize>());
                    let shift: Vec<isize> = (0..r.f).map(|d| d as isize - r.lo as isize).collect();
                    let mask = shift
                        .iter()
                        .map(|&sh| {
                            (0..mid * l)
                                .map(|kk| {
                                    let w = (kk % l) as isize + sh;
                                    if w >= 0 && w < l as isize {
                                        T::ONE
                                    } else {
                                        T::ZERO
                                    }
                                })
                                .collect()
                        })
                        .collect();
                    Masks { shift, mask }
                });
                Pass::Diag {
                    a1: a,
                    a2: k + a,
                    r,
                    masks,
                }
            } else {
                Pass::One {
                    ax: a,
                    r: Runs::new(ax),
                    w: None,
                }
            }
        })
        .collect()
}

fn pool_passes<T: Real>(axes: &[Axis], weights: &[Vec<f64>]) -> Vec<Pass<T>> {
    let k = axes.len();
    let mut out = Vec::with_capacity(2 * k);
    for side in 0..2 {
        for (a, (ax, w)) in axes.iter().zip(weights).enumerate() {
            out.push(Pass::One {
                ax: side * k + a,
                r: Runs::new(ax),
                w: Some(w.iter().map(|&v| T::from_f64(v)).collect()),
            });
        }
    }
    out
}

impl<T: Element> SpatialPlanned<T> {
    /// Prepare `prog` for the batches `x1` and `x2` (rows are examples of shape `in_shape`, NHWC
    /// flattened), computing every activation's per-sample, per-position variances. `m` is the
    /// largest input magnitude (from the input checks).
    pub(crate) fn new(
        prog: &Program,
        in_shape: &[usize],
        x1: MatRef<'_, T>,
        x2: Option<MatRef<'_, T>>,
        m: f64,
        parallel: bool,
        ctl: &Control,
    ) -> Result<Self> {
        prog.check_readout()?;
        let layouts = prog.layouts();
        let c_in = *in_shape.last().expect("a shape");
        let p_in = prod(&in_shape[..in_shape.len() - 1]);
        let scale = crate::input::rescale_factor::<T>(m);
        let gscale = 1.0 / (scale * scale) / c_in as f64;
        if !(gscale.is_finite() && T::from_f64(gscale).is_finite()) || T::from_f64(m * m).to_f64().is_infinite() {
            return Err(Error::NonFinite(format!(
                "inputs of magnitude {m:.3e} make the kernel overflow {}; use dtype=float64 or rescale the inputs",
                T::NAME
            )));
        }
        let s = T::from_f64(scale);
        let channel_major = |x: MatRef<'_, T>| -> Vec<T> {
            let mut out = vec![T::ZERO; x.nrows() * c_in * p_in];
            for n in 0..x.nrows() {
                let base = n * c_in * p_in;
                for p in 0..p_in {
                    for c in 0..c_in {
                        out[base + c * p_in + p] = x[(n, p * c_in + c)] * s;
                    }
                }
            }
            out
        };
        let mut xs = vec![channel_major(x1)];
        let mut ns = vec![x1.nrows()];
        if let Some(x2) = x2 {
            xs.push(channel_major(x2));
            ns.push(x2.nrows());
        }
        let max_lanes = layouts.iter().map(|l| l.lanes()).max().unwrap_or(1).max(1);
        let steps: Vec<SStep<T>> = prog
            .steps
            .iter()
            .map(|st| {
                let lo = &layouts[st.output];
                match &st.op {
                    Op::Dense { layer, .. } => {
                        let n_in = prog.width(st.inputs[0], c_in);
                        SStep::Dense(layer.plan(n_in))
                    }
                    Op::Conv { layer, axes, .. } => {
                        let (w2, b2) = layer.as_dense().squares();
                        let taps = layer.taps() as f64;
                        let c = prog.width(st.inputs[0], c_in) as f64;
                        let standard = match layer.parameterization {
                            Parameterization::Ntk => None,
                            Parameterization::Standard => Some((c, if layer.b_std.is_some() { 1.0 } else { 0.0 })),
                        };
                        SStep::Conv {
                            passes: conv_passes(axes, lo.full),
                            plan: dense::Plan::new(w2 / taps, b2, standard),
                            fast: shifted_conv(axes, lo.full),
                            t_zero: st.inputs[0] == 0,
                        }
                    }
                    Op::Pool { axes, weights } => SStep::Pool {
                        passes: pool_passes(axes, weights),
                    },
                    Op::GlobalPool(kind) => {
                        let p = layouts[st.inputs[0]].p as f64;
                        SStep::GlobalPool {
                            scale: T::from_f64(match kind {
                                PoolKind::Avg => 1.0 / (p * p),
                                PoolKind::Sum => 1.0,
                            }),
                        }
                    }
                    Op::Flatten => SStep::Flatten,
                    Op::Act(_) | Op::LayerNorm { .. } => SStep::Pending,
                    Op::Dropout { rate, .. } => SStep::Dropout {
                        inv_rate: T::from_f64(1.0 / rate),
                    },
                    Op::Sum => SStep::Sum,
                    Op::Prod => SStep::Prod,
                    Op::Concat { weights } => SStep::Concat {
                        w: weights.iter().map(|&v| T::from_f64(v)).collect(),
                    },
                }
            })
            .collect();
        let margin = steps
            .iter()
            .map(|s| match s {
                SStep::Conv { fast: Some(sh), .. } => sh.pad,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let mut sp = SpatialPlanned {
            layouts,
            steps,
            exec: prog.exec.clone(),
            inputs: prog.steps.iter().map(|s| s.inputs[0]).collect(),
            step_inputs: prog.steps.iter().map(|s| s.inputs.clone()).collect(),
            outputs: prog.steps.iter().map(|s| s.output).collect(),
            n_slots: prog.n_slots,
            max_lanes,
            margin,
            x: xs,
            n: ns,
            c_in,
            p_in,
            gscale: T::from_f64(gscale),
        };
        // every activation and LayerNorm, in order: the variances of its input for every sample
        for (k, st) in prog.steps.iter().enumerate() {
            if !matches!(st.op, Op::Act(_) | Op::LayerNorm { .. }) {
                continue;
            }
            ctl.check()?;
            let v = st.inputs[0];
            let qs: Vec<Vec<f64>> = (0..sp.x.len())
                .map(|set| sp.variances(set, k, v, parallel, ctl))
                .collect::<Result<_>>()?;
            if qs.iter().flatten().any(|q| !q.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "the kernel overflows at {}: a variance is infinite; reduce W_std, the depth or the scale of the inputs",
                    st.label
                )));
            }
            sp.steps[k] = match &st.op {
                Op::Act(act) => {
                    let all: Vec<f64> = qs.iter().flatten().copied().collect();
                    let plan = ActPlan::<f64>::new(act, &all, true)?;
                    let s = qs
                        .iter()
                        .map(|q| plan.samples::<f64>(q).map(|s| s.cast::<T>()))
                        .collect::<Result<Vec<_>>>()?;
                    SStep::Act {
                        plan: plan.cast::<T>(),
                        s,
                    }
                }
                Op::LayerNorm { ln, trailing } => {
                    let dims = sp.layouts[v].dims.clone();
                    let block = prod(&dims[dims.len() - trailing..]);
                    let r = qs
                        .iter()
                        .map(|q| {
                            let mut out = vec![T::ZERO; q.len()];
                            for (qc, oc) in q.chunks(block).zip(out.chunks_mut(block)) {
                                let mean = qc.iter().sum::<f64>() / block as f64;
                                let f = T::from_f64(1.0 / (mean + ln.eps).sqrt());
                                oc.iter_mut().for_each(|o| *o = f);
                            }
                            out
                        })
                        .collect();
                    SStep::LayerNorm { r }
                }
                _ => unreachable!(),
            };
        }
        Ok(sp)
    }

    /// A worker's scratch for this network.
    fn scratch(&self) -> PairScratch<T> {
        PairScratch::new(self.n_slots, self.max_lanes, self.margin)
    }

    /// The variances `q(n, p)` of value `v` (the input of step `upto`) for every sample of set
    /// `set`: the equal-position lanes of the pair `(x_n, x_n)` after the steps before `upto`.
    fn variances(&self, set: usize, upto: usize, v: usize, parallel: bool, ctl: &Control) -> Result<Vec<f64>> {
        let n = self.n[set];
        let p = self.layouts[v].p;
        let mut out = vec![0.0f64; n * p];
        let job = |scr: &mut PairScratch<T>, (k, chunk): (usize, &mut [f64])| -> Result<()> {
            ctl.check()?;
            let slot = crate::pool::arch().dispatch(RunPair::<T, false> {
                sp: self,
                a: (set, k),
                b: (set, k),
                upto,
                diag: true,
                scr,
                want: Some(v),
            });
            let l = &self.layouts[v];
            let c = &scr.c[slot];
            for (q, pos) in chunk.iter_mut().zip(0..p) {
                *q = if l.full { c[pos * (p + 1)] } else { c[pos] }.to_f64();
            }
            Ok(())
        };
        if parallel && n > 1 {
            out.par_chunks_mut(p)
                .enumerate()
                .try_for_each_init(|| self.scratch(), job)?;
        } else {
            let mut scr = self.scratch();
            out.chunks_mut(p).enumerate().try_for_each(|x| job(&mut scr, x))?;
        }
        Ok(out)
    }

    /// The input state of the pair `(a, b)` (`(set, sample)` each) into slot 0.
    #[inline(always)]
    fn input_state(&self, a: (usize, usize), b: (usize, usize), scr: &mut PairScratch<T>) {
        let (c_in, p) = (self.c_in, self.p_in);
        let xa = &self.x[a.0][a.1 * c_in * p..(a.1 + 1) * c_in * p];
        let xb = &self.x[b.0][b.1 * c_in * p..(b.1 + 1) * c_in * p];
        let l = &self.layouts[0];
        let g = self.gscale;
        let c = &mut scr.c[0];
        if l.full {
            for i in 0..p {
                let row = &mut c[i * p..(i + 1) * p];
                let (u, w) = (xa[i], &xb[..p]);
                for (r, &wv) in row.iter_mut().zip(w) {
                    *r = u * wv;
                }
                for ch in 1..c_in {
                    let (u, w) = (xa[ch * p + i], &xb[ch * p..(ch + 1) * p]);
                    for (r, &wv) in row.iter_mut().zip(w) {
                        *r += u * wv;
                    }
                }
                for r in row.iter_mut() {
                    *r *= g;
                }
            }
        } else {
            let row = &mut c[..p];
            for ((r, &u), &w) in row.iter_mut().zip(&xa[..p]).zip(&xb[..p]) {
                *r = u * w;
            }
            for ch in 1..c_in {
                for ((r, &u), &w) in row
                    .iter_mut()
                    .zip(&xa[ch * p..(ch + 1) * p])
                    .zip(&xb[ch * p..(ch + 1) * p])
                {
                    *r += u * w;
                }
            }
            for r in row.iter_mut() {
                *r *= g;
            }
        }
        scr.t[0][..l.lanes()].iter_mut().for_each(|v| *v = T::ZERO);
    }

    /// Steps `0..upto` on the pair `(a, b)`; returns the slot holding value `want` (default: the
    /// output of the last step run).
    #[inline(always)]
    fn run_pair<const NTK: bool>(
        &self,
        a: (usize, usize),
        b: (usize, usize),
        upto: usize,
        diag: bool,
        scr: &mut PairScratch<T>,
        want: Option<usize>,
    ) -> usize {
        self.input_state(a, b, scr);
        if want == Some(0) {
            return 0;
        }
        let mut slot_of_value = 0;
        for k in 0..upto {
            let ex = &self.exec[k];
            let (vin, vout) = (self.inputs[k], self.outputs[k]);
            let (li, lo) = (&self.layouts[vin], &self.layouts[vout]);
            let dst = ex.dst;
            match &self.steps[k] {
                SStep::Conv {
                    fast: Some(sh),
                    plan,
                    t_zero,
                    ..
                } if !li.full => {
                    let (sc, st) = (&scr.c[ex.src[0]], &scr.t[ex.src[0]]);
                    let (vc, vt) = (&mut scr.vc, &mut scr.vt);
                    let (tc, tt) = (&mut scr.tc[3], &mut scr.tt[3]);
                    conv_equal::<T, NTK>(sh, plan, *t_zero, sc, st, vc, vt, tc, tt);
                    std::mem::swap(&mut scr.c[dst], &mut scr.tc[3]);
                    std::mem::swap(&mut scr.t[dst], &mut scr.tt[3]);
                }
                SStep::Conv { passes, plan, .. } => {
                    // the stencil into `out` (temporary 3), then swapped into the slot
                    let shape;
                    let (src_c, src_t): (&[T], &[T]);
                    let [e_c, a_c, b_c, o_c] = &mut scr.tc;
                    let [e_t, a_t, b_t, o_t] = &mut scr.tt;
                    if li.full && !lo.full {
                        diagonal_into(&scr.c[ex.src[0]], e_c, li.p);
                        if NTK {
                            diagonal_into(&scr.t[ex.src[0]], e_t, li.p);
                        }
                        shape = li.dims.clone();
                        (src_c, src_t) = (&e_c[..], &e_t[..]);
                    } else {
                        shape = li.shape();
                        (src_c, src_t) = (&scr.c[ex.src[0]][..], &scr.t[ex.src[0]][..]);
                    }
                    stencil(passes, &shape, src_c, o_c, a_c, b_c);
                    if NTK {
                        stencil(passes, &shape, src_t, o_t, a_t, b_t);
                    }
                    std::mem::swap(&mut scr.c[dst], &mut scr.tc[3]);
                    std::mem::swap(&mut scr.t[dst], &mut scr.tt[3]);
                    let n = lo.lanes();
                    plan.row::<NTK>(&mut scr.c[dst][..n], &mut scr.t[dst][..n]);
                }
                SStep::Pool { passes } => {
                    let [_, a_c, b_c, o_c] = &mut scr.tc;
                    let [_, a_t, b_t, o_t] = &mut scr.tt;
                    let shape = li.shape();
                    stencil(passes, &shape, &scr.c[ex.src[0]], o_c, a_c, b_c);
                    if NTK {
                        stencil(passes, &shape, &scr.t[ex.src[0]], o_t, a_t, b_t);
                    }
                    std::mem::swap(&mut scr.c[dst], &mut scr.tc[3]);
                    std::mem::swap(&mut scr.t[dst], &mut scr.tt[3]);
                    if !lo.full {
                        diagonal_in_place(&mut scr.c[dst], lo.p);
                        if NTK {
                            diagonal_in_place(&mut scr.t[dst], lo.p);
                        }
                    }
                }
                SStep::GlobalPool { scale } => {
                    let n = li.lanes();
                    let sc = T::from_f64(sum_lanes(&scr.c[ex.src[0]][..n])) * *scale;
                    let st = if NTK {
                        T::from_f64(sum_lanes(&scr.t[ex.src[0]][..n])) * *scale
                    } else {
                        T::ZERO
                    };
                    scr.c[dst][0] = sc;
                    scr.t[dst][0] = st;
                }
                SStep::Flatten => {
                    let p = li.p;
                    let mean = |v: &[T]| -> T {
                        if li.full {
                            let mut s = 0.0f64;
                            for k in 0..p {
                                s += v[k * (p + 1)].to_f64();
                            }
                            T::from_f64(s / p as f64)
                        } else {
                            T::from_f64(sum_lanes(&v[..p]) / p as f64)
                        }
                    };
                    let sc = mean(&scr.c[ex.src[0]]);
                    let st = if NTK { mean(&scr.t[ex.src[0]]) } else { T::ZERO };
                    scr.c[dst][0] = sc;
                    scr.t[dst][0] = st;
                }
                SStep::Sum | SStep::Prod | SStep::Concat { .. } => {
                    self.fetch::<NTK>(scr, ex.src[0], dst, li, lo);
                    let n = lo.lanes();
                    for (m, (&src, &v)) in ex.src.iter().zip(&self.step_inputs[k]).enumerate().skip(1) {
                        let lv = &self.layouts[v];
                        // the other input in the output's layout, in temporary 0
                        {
                            let [e_c, ..] = &mut scr.tc;
                            let [e_t, ..] = &mut scr.tt;
                            if lv.full && !lo.full {
                                diagonal_into(&scr.c[src], e_c, lv.p);
                                if NTK {
                                    diagonal_into(&scr.t[src], e_t, lv.p);
                                }
                            } else {
                                e_c[..n].copy_from_slice(&scr.c[src][..n]);
                                if NTK {
                                    e_t[..n].copy_from_slice(&scr.t[src][..n]);
                                }
                            }
                        }
                        let (dc, dt) = (&mut scr.c[dst][..n], &mut scr.t[dst][..n]);
                        let (sc, st) = (&scr.tc[0][..n], &scr.tt[0][..n]);
                        match &self.steps[k] {
                            SStep::Sum => fan::sum_row::<T, NTK>(dc, dt, sc, st),
                            SStep::Prod => fan::prod_row::<T, NTK>(dc, dt, sc, st),
                            SStep::Concat { w } => {
                                let wd = if m == 1 { w[0] } else { T::ONE };
                                fan::mix_row::<T, NTK>(wd, w[m], dc, dt, sc, st)
                            }
                            _ => unreachable!(),
                        }
                    }
                }
                step => {
                    // pointwise steps: the input in the output's layout, then in place
                    self.fetch::<NTK>(scr, ex.src[0], dst, li, lo);
                    let n = lo.lanes();
                    let p = lo.p;
                    let (c, t) = (&mut scr.c[dst][..n], &mut scr.t[dst][..n]);
                    match step {
                        SStep::Dense(plan) => plan.row::<NTK>(c, t),
                        SStep::Act { plan, s } => {
                            let (sa, sb) = (&s[a.0], &s[b.0]);
                            if lo.full {
                                for (row, (cr, tr)) in c.chunks_mut(p).zip(t.chunks_mut(p)).enumerate() {
                                    plan.row::<NTK, _, _>(
                                        sa.at(a.1 * p + row),
                                        sb.span(b.1 * p, p),
                                        cr,
                                        tr,
                                        &mut scr.act,
                                    );
                                }
                            } else {
                                plan.row::<NTK, _, _>(sa.span(a.1 * p, p), sb.span(b.1 * p, p), c, t, &mut scr.act);
                            }
                        }
                        SStep::LayerNorm { r } => {
                            let (ra, rb) = (&r[a.0][a.1 * p..(a.1 + 1) * p], &r[b.0][b.1 * p..(b.1 + 1) * p]);
                            if lo.full {
                                for (row, (cr, tr)) in c.chunks_mut(p).zip(t.chunks_mut(p)).enumerate() {
                                    layer_norm::row::<T, NTK>(ra[row], rb, cr, tr);
                                }
                            } else {
                                for q in 0..p {
                                    let f = ra[q] * rb[q];
                                    c[q] *= f;
                                    if NTK {
                                        t[q] *= f;
                                    }
                                }
                            }
                        }
                        SStep::Dropout { inv_rate } => {
                            if diag {
                                let stride = if lo.full { p + 1 } else { 1 };
                                for q in 0..p {
                                    c[q * stride] *= *inv_rate;
                                    if NTK {
                                        t[q * stride] *= *inv_rate;
                                    }
                                }
                            }
                        }
                        _ => unreachable!("planned before use"),
                    }
                }
            }
            slot_of_value = dst;
            if want == Some(vout) {
                return dst;
            }
        }
        slot_of_value
    }

    /// Bring the input in slot `src` (layout `li`) into slot `dst` in the layout of `lo`
    /// (equal-position lanes of a full input when `lo` is not full).
    #[inline(always)]
    fn fetch<const NTK: bool>(&self, scr: &mut PairScratch<T>, src: usize, dst: usize, li: &Layout, lo: &Layout) {
        let extract = li.full && !lo.full;
        if src == dst {
            if extract {
                diagonal_in_place(&mut scr.c[dst], li.p);
                if NTK {
                    diagonal_in_place(&mut scr.t[dst], li.p);
                }
            }
            return;
        }
        let (s_c, d_c) = two(&mut scr.c, src, dst);
        let (s_t, d_t) = two(&mut scr.t, src, dst);
        if extract {
            diagonal_into(s_c, d_c, li.p);
            if NTK {
                diagonal_into(s_t, d_t, li.p);
            }
        } else {
            let n = li.lanes();
            d_c[..n].copy_from_slice(&s_c[..n]);
            if NTK {
                d_t[..n].copy_from_slice(&s_t[..n]);
            }
        }
    }
}

/// `(&v[a], &mut v[b])` for `a ≠ b`.
fn two<T>(v: &mut [Vec<T>], a: usize, b: usize) -> (&[T], &mut [T]) {
    debug_assert_ne!(a, b);
    if a < b {
        let (lo, hi) = v.split_at_mut(b);
        (&lo[a], &mut hi[0])
    } else {
        let (lo, hi) = v.split_at_mut(a);
        (&hi[0], &mut lo[b])
    }
}

/// [`SpatialPlanned::run_pair`] at the machine's SIMD level.
struct RunPair<'a, 'b, T, const NTK: bool> {
    sp: &'a SpatialPlanned<T>,
    a: (usize, usize),
    b: (usize, usize),
    upto: usize,
    diag: bool,
    scr: &'b mut PairScratch<T>,
    want: Option<usize>,
}

impl<T: Element, const NTK: bool> pulp::WithSimd for RunPair<'_, '_, T, NTK> {
    type Output = usize;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> usize {
        self.sp
            .run_pair::<NTK>(self.a, self.b, self.upto, self.diag, self.scr, self.want)
    }
}

/// Default tile side (sample pairs) of the spatial pass.
pub(crate) const DEFAULT_SPATIAL_TILE: usize = 16;

pub(crate) fn spatial_tile(requested: usize) -> usize {
    if requested == 0 {
        DEFAULT_SPATIAL_TILE
    } else {
        requested.clamp(1, 1 << 16)
    }
}

/// Work units of the spatial pass over a window (tiles).
pub(crate) fn spatial_units(win: Window, sym: bool, tile: usize) -> u64 {
    tile_list(win, sym, tile).len() as u64
}

impl<T: Element> SpatialPlanned<T> {
    /// Every pair of window `win` (upper triangle when `sym`), written into `bufs` (NNGP first,
    /// then NTK); with `mirror`, the lower triangle is filled too.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn layers(
        &self,
        bufs: &mut [Vec<T>],
        win: Window,
        get: Get,
        sym: bool,
        mirror: bool,
        tile: usize,
        parallel: bool,
        ctl: &Control,
    ) -> Result<()> {
        let tiles = tile_list(win, sym, tile);
        for b in bufs.iter() {
            assert!(
                b.len() >= win.rows * win.ld(),
                "layers: buffer too small for its window"
            );
        }
        let ptrs: Vec<Shared<T>> = bufs.iter_mut().map(|b| Shared(b.as_mut_ptr())).collect();
        let nonfinite = std::sync::atomic::AtomicBool::new(false);
        let set_b = if sym { 0 } else { 1 };
        let steps = self.steps.len();
        let tile_job =
            |scr: &mut PairScratch<T>, &(r0, r1, c0, c1, dg): &(usize, usize, usize, usize, bool)| -> Result<()> {
                ctl.check()?;
                let out_n = get.nngp.then_some(ptrs[0]);
                let out_t = get.ntk.then(|| ptrs[ptrs.len() - 1]);
                let mut ok = true;
                for i in r0..r1 {
                    let js = if dg { i } else { c0 };
                    for j in js..c1 {
                        if ctl.is_cancelled() {
                            return Err(Error::Cancelled);
                        }
                        let d = sym && i == j;
                        let slot = if get.ntk {
                            crate::pool::arch().dispatch(RunPair::<T, true> {
                                sp: self,
                                a: (0, i),
                                b: (set_b, j),
                                upto: steps,
                                diag: d,
                                scr,
                                want: None,
                            })
                        } else {
                            crate::pool::arch().dispatch(RunPair::<T, false> {
                                sp: self,
                                a: (0, i),
                                b: (set_b, j),
                                upto: steps,
                                diag: d,
                                scr,
                                want: None,
                            })
                        };
                        let slot = if steps == 0 { 0 } else { slot };
                        let (c, t) = (scr.c[slot][0], scr.t[slot][0]);
                        ok &= c.is_finite() && (!get.ntk || t.is_finite());
                        // SAFETY: this tile owns rows r0..r1 × columns c0..c1 (and, mirrored, the
                        // transposed block) of every buffer, which hold the whole window.
                        unsafe {
                            if let Some(p) = out_n {
                                *p.get().add(win.idx(i, j)) = c;
                                if mirror && sym && i != j {
                                    *p.get().add(win.idx(j, i)) = c;
                                }
                            }
                            if let Some(p) = out_t {
                                *p.get().add(win.idx(i, j)) = t;
                                if mirror && sym && i != j {
                                    *p.get().add(win.idx(j, i)) = t;
                                }
                            }
                        }
                    }
                }
                if !ok {
                    nonfinite.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                ctl.advance(1);
                Ok(())
            };
        if parallel && tiles.len() > 1 {
            tiles.par_iter().try_for_each_init(|| self.scratch(), tile_job)?;
        } else {
            let mut scr = self.scratch();
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

    /// `k(x_n, x_n)` for every sample of `x1`: `(nngp, ntk)`.
    pub(crate) fn diagonal(&self, parallel: bool, ctl: &Control) -> Result<(Vec<T>, Vec<T>)> {
        let n = self.n[0];
        let steps = self.steps.len();
        let mut out = vec![(T::ZERO, T::ZERO); n];
        let job = |scr: &mut PairScratch<T>, (k, o): (usize, &mut (T, T))| -> Result<()> {
            ctl.check()?;
            let slot = crate::pool::arch().dispatch(RunPair::<T, true> {
                sp: self,
                a: (0, k),
                b: (0, k),
                upto: steps,
                diag: true,
                scr,
                want: None,
            });
            let slot = if steps == 0 { 0 } else { slot };
            *o = (scr.c[slot][0], scr.t[slot][0]);
            ctl.advance(1);
            if !(o.0.is_finite() && o.1.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "the kernel of sample {k} is not finite in {} (overflow); reduce W_std, the depth or the input scale",
                    T::NAME
                )));
            }
            Ok(())
        };
        if parallel && n > 1 {
            out.par_iter_mut()
                .enumerate()
                .try_for_each_init(|| self.scratch(), job)?;
        } else {
            let mut scr = self.scratch();
            out.iter_mut().enumerate().try_for_each(|x| job(&mut scr, x))?;
        }
        Ok(out.into_iter().unzip())
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        Activation, Control, Conv, Dense, Get, InputShape, KernelOptions, Layer, Network, Padding, Parameterization,
        Pool, PoolKind,
    };

    fn data(n: usize, d: usize, seed: u64) -> faer::Mat<f64> {
        let mut s = seed;
        faer::Mat::from_fn(n, d, |_, _| {
            s = s.wrapping_add(0x9E3779B97F4A7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
    }

    fn conv(f: &[usize], pad: Padding) -> Layer {
        Layer::Conv(Conv::new(4, f.to_vec(), None, pad, 1.4, Some(0.1), Parameterization::Ntk).unwrap())
    }

    fn relu() -> Layer {
        Layer::Activation(Activation::relu())
    }

    fn dense() -> Layer {
        Layer::Dense(Dense::new(1, 1.0, Some(0.1), Parameterization::Ntk).unwrap())
    }

    fn nets() -> Vec<Network> {
        vec![
            // equal positions only
            Network::new(vec![
                conv(&[3, 3], Padding::Same),
                relu(),
                conv(&[2, 2], Padding::Valid),
                relu(),
                Layer::Flatten,
                dense(),
            ])
            .unwrap(),
            // every pair of positions, with pooling
            Network::new(vec![
                conv(&[3, 3], Padding::Circular),
                Layer::Activation(Activation::Gelu),
                Layer::Pool(Pool::new(PoolKind::Avg, vec![2, 2], Some(vec![2, 1]), Padding::Same, false).unwrap()),
                conv(&[2, 3], Padding::Same),
                relu(),
                Layer::GlobalPool(PoolKind::Avg),
                dense(),
            ])
            .unwrap(),
        ]
    }

    fn opts(tile: usize) -> KernelOptions {
        KernelOptions {
            tile_size: tile,
            shape: InputShape::new(&[5, 6, 2]).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn tiles_threads_symmetry_and_the_diagonal_agree() {
        let x = data(11, 60, 1);
        for net in nets() {
            let k = net
                .kernel(x.as_ref(), None, Get::BOTH, &opts(0), &Control::new())
                .unwrap();
            for tile in [1, 3, 7] {
                let b = net
                    .kernel(x.as_ref(), None, Get::BOTH, &opts(tile), &Control::new())
                    .unwrap();
                assert_eq!(k.ntk, b.ntk, "tile {tile}");
                assert_eq!(k.nngp, b.nngp, "tile {tile}");
            }
            let mut one = opts(4);
            one.par = crate::Parallelism::Sequential;
            let s = net.kernel(x.as_ref(), None, Get::BOTH, &one, &Control::new()).unwrap();
            assert_eq!(k.ntk, s.ntk);
            let c = net
                .kernel(x.as_ref(), Some(x.as_ref()), Get::BOTH, &opts(0), &Control::new())
                .unwrap();
            let d = net
                .kernel_diagonal_shaped(
                    x.as_ref(),
                    opts(0).shape,
                    Get::BOTH,
                    crate::Parallelism::Pool,
                    &Control::new(),
                )
                .unwrap();
            let (kn, kt, cn, ct) = (k.nngp.unwrap(), k.ntk.unwrap(), c.nngp.unwrap(), c.ntk.unwrap());
            let (dn, dt) = (d.nngp.unwrap(), d.ntk.unwrap());
            for i in 0..11 {
                assert_eq!((dn[i], dt[i]), (kn[i * 11 + i], kt[i * 11 + i]));
                for j in 0..11 {
                    assert_eq!(kt[i * 11 + j], kt[j * 11 + i]);
                    assert!((kn[i * 11 + j] - cn[i * 11 + j]).abs() <= 1e-13 * kn[i * 11 + i]);
                    assert!((kt[i * 11 + j] - ct[i * 11 + j]).abs() <= 1e-13 * kt[i * 11 + i]);
                }
            }
        }
    }

    #[test]
    fn float32_is_close_to_float64() {
        let x = data(9, 60, 2);
        let x32 = faer::Mat::<f32>::from_fn(9, 60, |i, j| x[(i, j)] as f32);
        for net in nets() {
            let a = net
                .kernel(x.as_ref(), None, Get::NTK, &opts(0), &Control::new())
                .unwrap()
                .ntk
                .unwrap();
            let b = net
                .kernel(x32.as_ref(), None, Get::NTK, &opts(0), &Control::new())
                .unwrap()
                .ntk
                .unwrap();
            let max = a.iter().cloned().fold(0.0, f64::max);
            for (u, v) in a.iter().zip(b) {
                assert!((u - v as f64).abs() <= 2e-6 * max, "{u} vs {v}");
            }
        }
    }

    #[test]
    fn global_average_of_raw_images_is_an_mlp_on_mean_pixels() {
        // GlobalAvgPool of the inputs: the mean over all position pairs of x_p·x'_p'/C = x̄·x̄'/C
        let x = data(7, 60, 3);
        let mean = faer::Mat::<f64>::from_fn(7, 2, |n, c| (0..30).map(|p| x[(n, p * 2 + c)]).sum::<f64>() / 30.0);
        let head = || {
            vec![
                Layer::Dense(Dense::new(5, 1.3, Some(0.2), Parameterization::Ntk).unwrap()),
                relu(),
                dense(),
            ]
        };
        let mut layers = vec![Layer::GlobalPool(PoolKind::Avg)];
        layers.extend(head());
        let gap = Network::new(layers).unwrap();
        let mlp = Network::new(head()).unwrap();
        let a = gap
            .kernel(x.as_ref(), None, Get::BOTH, &opts(0), &Control::new())
            .unwrap();
        let b = mlp
            .kernel(
                mean.as_ref(),
                None,
                Get::BOTH,
                &KernelOptions::default(),
                &Control::new(),
            )
            .unwrap();
        for (u, v) in a.ntk.unwrap().iter().zip(b.ntk.unwrap()) {
            assert!((u - v).abs() <= 1e-13 * v.abs().max(1.0), "{u} vs {v}");
        }
    }

    #[test]
    fn bad_shapes_name_the_layer() {
        let x = data(3, 60, 4);
        let e = Network::new(vec![conv(&[6, 6], Padding::Valid), Layer::Flatten, dense()])
            .unwrap()
            .kernel(x.as_ref(), None, Get::BOTH, &opts(0), &Control::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layer 0 (Conv(") && e.contains("(6, 6)") && e.contains("(5, 6)"),
            "{e}"
        );
        let e = Network::new(vec![conv(&[3], Padding::Valid), Layer::Flatten, dense()])
            .unwrap()
            .kernel(x.as_ref(), None, Get::BOTH, &opts(0), &Control::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("1-D filter (3,)") && e.contains("(5, 6)"), "{e}");
        let e = Network::new(vec![conv(&[3, 3], Padding::Same), relu()])
            .unwrap()
            .kernel(x.as_ref(), None, Get::BOTH, &opts(0), &Control::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("Flatten()"), "{e}");
    }

    #[test]
    fn fused_shifted_convolution_equals_the_separable_passes() {
        // conv_equal (vertical row groups, masked horizontal shifts, the Dense map fused) against
        // the separable passes then dense::Plan::row, on every SAME/stride-1 geometry it takes:
        // equal up to the sign of zeros (==), for the NNGP and the NTK, both parameterizations
        use super::{conv_equal, conv_passes, shifted_conv, stencil};
        use crate::layer::conv::Axis;
        use crate::layer::dense;
        let mut seed = 11u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let geometries: Vec<Vec<(usize, usize)>> = vec![
            vec![(5, 3), (6, 3)],
            vec![(28, 3), (28, 3)],
            vec![(4, 2), (7, 2)],
            vec![(6, 5), (5, 4)],
            vec![(3, 1), (4, 3)],
            vec![(7, 3), (1, 1)],
            vec![(9, 3)],
            vec![(8, 4)],
            vec![(2, 5), (3, 6)],
        ];
        for geo in geometries {
            let axes: Vec<Axis> = geo
                .iter()
                .map(|&(l, f)| Axis::new(l, f, 1, Padding::Same).unwrap())
                .collect();
            let sh = shifted_conv::<f64>(&axes, false).expect("a shifted geometry");
            let passes = conv_passes::<f64>(&axes, false);
            let dims: Vec<usize> = geo.iter().map(|g| g.0).collect();
            let n: usize = dims.iter().product();
            for standard in [None, Some((7.0, 1.0))] {
                let plan = dense::Plan::<f64>::new(1.7, 0.3, standard);
                for t_zero in [false, true] {
                    let sc: Vec<f64> = (0..n).map(|_| rnd()).collect();
                    let st: Vec<f64> = (0..n).map(|_| if t_zero { 0.0 } else { rnd() }).collect();
                    let (mut a, mut b, mut wc, mut wt) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                    stencil(&passes, &dims, &sc, &mut wc, &mut a, &mut b);
                    stencil(&passes, &dims, &st, &mut wt, &mut a, &mut b);
                    plan.row::<true>(&mut wc, &mut wt);
                    let m = n + 2 * sh.pad;
                    let (mut vc, mut vt) = (vec![f64::NAN; m], vec![f64::NAN; m]);
                    let (mut gc, mut gt) = (vec![0.0; n], vec![0.0; n]);
                    conv_equal::<f64, true>(&sh, &plan, t_zero, &sc, &st, &mut vc, &mut vt, &mut gc, &mut gt);
                    assert_eq!(gc, wc, "{geo:?} {standard:?} {t_zero}");
                    assert_eq!(gt, wt, "{geo:?} {standard:?} {t_zero}");
                    let mut gc2 = vec![0.0; n];
                    conv_equal::<f64, false>(&sh, &plan, t_zero, &sc, &st, &mut vc, &mut vt, &mut gc2, &mut gt);
                    assert_eq!(gc2, wc);
                }
            }
        }
        // not taken: strides, VALID shrinking, CIRCULAR, every pair of positions, 3-D
        let ax = |l, f, s, p| Axis::new(l, f, s, p).unwrap();
        assert!(shifted_conv::<f64>(&[ax(6, 3, 2, Padding::Same)], false).is_none());
        assert!(shifted_conv::<f64>(&[ax(6, 3, 1, Padding::Valid)], false).is_none());
        assert!(shifted_conv::<f64>(&[ax(6, 3, 1, Padding::Circular)], false).is_none());
        assert!(shifted_conv::<f64>(&[ax(6, 3, 1, Padding::Same)], true).is_none());
        let three = [
            ax(3, 3, 1, Padding::Same),
            ax(3, 3, 1, Padding::Same),
            ax(3, 3, 1, Padding::Same),
        ];
        assert!(shifted_conv::<f64>(&three, false).is_none());
    }

    #[test]
    fn cancelled_control_stops_the_computation() {
        let ctl = Control::new();
        ctl.cancel();
        let x = data(40, 60, 5);
        let r = nets()[1].kernel(x.as_ref(), None, Get::BOTH, &opts(0), &ctl);
        assert_eq!(r.unwrap_err(), crate::Error::Cancelled);
    }
}
