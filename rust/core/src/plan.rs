//! A compiled network prepared for one kernel computation: every value's per-sample variances
//! (`O(N·steps)`, in f64), which fix each activation's plan and each `LayerNorm`'s factors, and
//! [`run_row`], which takes one row of pairs through every step.
//!
//! The state of a pair of samples `(x1_i, x2_j)` at a value is its NNGP `c` and NTK `t`; a row
//! holds the pairs `(i, j0..j0 + len)` of one value in a *slot*. A step reads its inputs' slots
//! and writes its output's slot (in place when it can, see [`crate::program`]).

use crate::activation::{Lanes, Plan as ActPlan, Samples, Scratch, Side};
use crate::control::Control;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::layer::{dense, fan, layer_norm};
use crate::program::{Exec, Op, Program};
use crate::vmath::Real;

/// A step prepared in precision `T`.
// the steps live in one Vec per call: the size of the largest variant does not matter
#[allow(clippy::large_enum_variant)]
pub(crate) enum StepPlan<T> {
    Dense(dense::Plan<T>),
    /// Nothing to do (a `Flatten` of values without spatial axes).
    Identity,
    Act {
        plan: ActPlan<T>,
        s1: Samples<T>,
        /// `None` when x2 is x1.
        s2: Option<Samples<T>>,
    },
    LayerNorm {
        r1: Vec<T>,
        r2: Option<Vec<T>>,
    },
    Dropout {
        inv_rate: T,
    },
    Sum,
    Prod,
    Concat {
        w: Vec<T>,
    },
}

/// One row's NNGP and NTK for one value, and (precise path only) each pair's defect
/// `m = √(q1 q2) − |c|` (see [`crate::activation::Plan::row_precise`]).
pub(crate) struct Slot<T> {
    pub c: Vec<T>,
    pub t: Vec<T>,
    pub m: Vec<T>,
}

/// Per-thread work space of [`run_row`].
pub(crate) struct RowScratch<T> {
    pub slots: Vec<Slot<T>>,
    pub act: Scratch<T>,
    /// A row for an input read twice by one step.
    tmp: Slot<T>,
    /// The precise path's per-sample variances of a partial fan-in (x2's samples).
    fq: Vec<T>,
    /// The row's input Gram, kept for the precise path.
    pub gram: Vec<T>,
}

impl<T: Real> RowScratch<T> {
    pub fn new(n_slots: usize, len: usize) -> Self {
        let slot = || Slot {
            c: vec![T::ZERO; len],
            t: vec![T::ZERO; len],
            m: vec![T::ZERO; len],
        };
        RowScratch {
            slots: (0..n_slots).map(|_| slot()).collect(),
            act: Scratch::new(len),
            tmp: slot(),
            fq: vec![T::ZERO; len],
            gram: vec![T::ZERO; len],
        }
    }
}

/// A network ready to compute kernels between two fixed batches.
pub(crate) struct Planned<T> {
    pub steps: Vec<StepPlan<T>>,
    pub exec: Vec<Exec>,
    pub n_slots: usize,
    pub out_slot: usize,
    /// The input variances of x1's samples.
    pub q_in: Vec<T>,
    /// The variance of each step's output for x1's samples: the exact diagonal.
    pub q_out: Vec<Vec<T>>,
    /// The precise path's per-sample variances (`q`, `√q`) of every value, for x1's samples and
    /// (`None` when x2 is x1) x2's.
    pub vals: Vec<(Samples<T>, Option<Samples<T>>)>,
    /// Each step's input values and output value.
    pub io: Vec<(Vec<usize>, usize)>,
}

fn overflow(label: &str) -> Error {
    Error::NonFinite(format!(
        "the kernel overflows at {label}: a variance is infinite; reduce W_std, the depth or the scale of the inputs"
    ))
}

impl Program {
    /// Propagate the per-sample variances `q1` (and `q2`) through every step, in f64, and
    /// prepare every step in precision `T`. `tables`: numerical activations may tabulate their
    /// maps over the angle when every variance of a layer is equal.
    pub(crate) fn plan<T: Element>(
        &self,
        q1: Vec<f64>,
        q2: Option<Vec<f64>>,
        tables: bool,
        ctl: &Control,
    ) -> Result<Planned<T>> {
        let cast = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        let q_in = cast(&q1);
        let mut v1: Vec<Option<Vec<f64>>> = vec![None; self.values.len()];
        let mut v2: Vec<Option<Vec<f64>>> = vec![None; self.values.len()];
        v1[0] = Some(q1);
        v2[0] = q2;
        let sym = v2[0].is_none();
        let mut steps = Vec::with_capacity(self.steps.len());
        let mut q_out = Vec::with_capacity(self.steps.len());
        for st in &self.steps {
            ctl.check()?;
            let a1 = v1[st.inputs[0]].as_ref().expect("inputs are planned first");
            let a2 = v2[st.inputs[0]].as_ref();
            let each = |f: &dyn Fn(f64) -> f64| -> (Vec<f64>, Option<Vec<f64>>) {
                (
                    a1.iter().map(|&q| f(q)).collect(),
                    a2.map(|v| v.iter().map(|&q| f(q)).collect()),
                )
            };
            let (o1, o2, plan) = match &st.op {
                Op::Dense { layer, .. } => {
                    let n_in = self.width(st.inputs[0], 0);
                    let (o1, o2) = each(&|q| layer.variance(q));
                    (o1, o2, StepPlan::Dense(layer.plan(n_in)))
                }
                Op::Act(act) => {
                    let all: Vec<f64> = a1.iter().chain(a2.into_iter().flatten()).copied().collect();
                    // tables poll `ctl` through its scope
                    let plan = ctl.scope(|| ActPlan::<f64>::new(act, &all, tables))?;
                    let s1 = plan.samples::<f64>(a1)?;
                    let s2 = a2.map(|q| plan.samples::<f64>(q)).transpose()?;
                    // variances after the activation: E[φ(u)²], the map at c = q
                    let second_moment = |s: &Samples<f64>| -> Result<Vec<f64>> {
                        let mut scr = Scratch::new(1);
                        (0..s.n)
                            .map(|i| {
                                let (mut c, mut t) = ([s.q[i]], [0.0]);
                                plan.row::<false, _, _>(s.at(i), s.span(i, 1), &mut c, &mut t, &mut scr);
                                if c[0].is_finite() {
                                    Ok(c[0])
                                } else {
                                    Err(Error::NonFinite(format!(
                                        "{} has no finite second moment at pre-activation variance {:.6e} ({})",
                                        act.name(),
                                        s.q[i],
                                        st.label
                                    )))
                                }
                            })
                            .collect()
                    };
                    let o1 = second_moment(&s1)?;
                    let o2 = s2.as_ref().map(second_moment).transpose()?;
                    let plan = StepPlan::Act {
                        plan: plan.cast::<T>(),
                        s1: s1.cast::<T>(),
                        s2: s2.map(|s| s.cast::<T>()),
                    };
                    (o1, o2, plan)
                }
                Op::LayerNorm { ln, .. } => {
                    let (o1, o2) = each(&|q| ln.variance(q));
                    let plan = StepPlan::LayerNorm {
                        r1: ln.factors(a1),
                        r2: a2.map(|q| ln.factors(q)),
                    };
                    (o1, o2, plan)
                }
                // Flatten of values without spatial axes: the identity
                Op::Flatten => {
                    let (o1, o2) = each(&|q| q);
                    (o1, o2, StepPlan::Identity)
                }
                Op::Conv { .. } | Op::Pool { .. } | Op::GlobalPool(_) => {
                    return Err(Error::InvalidNetwork(format!(
                        "{}: a spatial layer in a network on inputs without spatial axes",
                        st.label
                    )))
                }
                Op::Dropout { rate, .. } => {
                    let (o1, o2) = each(&|q| q / rate);
                    (
                        o1,
                        o2,
                        StepPlan::Dropout {
                            inv_rate: T::from_f64(1.0 / rate),
                        },
                    )
                }
                Op::Sum | Op::Prod | Op::Concat { .. } => {
                    let combine = |side: &Vec<Option<Vec<f64>>>| -> Option<Vec<f64>> {
                        let parts: Vec<&Vec<f64>> =
                            st.inputs.iter().map(|&v| side[v].as_ref()).collect::<Option<_>>()?;
                        let n = parts[0].len();
                        Some(
                            (0..n)
                                .map(|i| match &st.op {
                                    Op::Sum => parts.iter().map(|p| p[i]).sum(),
                                    Op::Prod => parts.iter().map(|p| p[i]).product(),
                                    Op::Concat { weights } => parts.iter().zip(weights).map(|(p, w)| w * p[i]).sum(),
                                    _ => unreachable!(),
                                })
                                .collect(),
                        )
                    };
                    let o1 = combine(&v1).expect("inputs are planned first");
                    let o2 = if sym { None } else { combine(&v2) };
                    let plan = match &st.op {
                        Op::Sum => StepPlan::Sum,
                        Op::Prod => StepPlan::Prod,
                        Op::Concat { weights } => StepPlan::Concat { w: cast(weights) },
                        _ => unreachable!(),
                    };
                    (o1, o2, plan)
                }
            };
            let finite = o1.iter().chain(o2.iter().flatten()).all(|v| v.is_finite());
            if !finite {
                return Err(overflow(&st.label));
            }
            q_out.push(cast(&o1));
            v1[st.output] = Some(o1);
            v2[st.output] = o2;
            steps.push(plan);
        }
        let plain = |v: &Vec<f64>| Samples::<f64>::new(v, |_| Ok(Vec::new())).map(|s| s.cast::<T>());
        let vals = v1
            .iter()
            .zip(&v2)
            .map(|(a, b)| -> Result<_> {
                let a = a.as_ref().map(plain).transpose()?.unwrap_or_default();
                let b = if sym { None } else { b.as_ref().map(plain).transpose()? };
                Ok((a, b))
            })
            .collect::<Result<Vec<_>>>()?;
        let io = self.steps.iter().map(|st| (st.inputs.clone(), st.output)).collect();
        Ok(Planned {
            steps,
            exec: self.exec.clone(),
            n_slots: self.n_slots,
            out_slot: self.out_slot,
            q_in,
            q_out,
            vals,
            io,
        })
    }
}

/// Two distinct slots, `a` mutable and `b` shared.
fn pair<T>(slots: &mut [Slot<T>], a: usize, b: usize) -> (&mut Slot<T>, &Slot<T>) {
    debug_assert_ne!(a, b);
    if a < b {
        let (lo, hi) = slots.split_at_mut(b);
        (&mut lo[a], &hi[0])
    } else {
        let (lo, hi) = slots.split_at_mut(a);
        (&mut hi[0], &lo[b])
    }
}

/// Every step on one row: pairs `(i, j0 + j)`, `j < len`, with the input Gram's row in slot 0's
/// `c` on entry (`t` is set to 0 here); the NNGP and NTK are in slot [`Planned::out_slot`] on
/// exit. With `diag`, entry 0 is the diagonal pair `(i, i)` of a symmetric kernel: it takes the
/// planned variance of every value exactly (so that the tile pass and the diagonal path agree
/// bitwise, and activations see `c = q1 = q2`, i.e. ρ = 1), and dropout multiplies it by `1/rate`.
///
/// The fast path (`PRECISE = false`) flags in `scr.act.near` the entries that a map singular at
/// ρ = ±1 saw near there, and returns whether there are any. The precise path also carries each
/// pair's defect `m = √(q1 q2) − |c|` (slot 0's `m` on entry), so that the angles of those pairs
/// are computed without cancellation and exactly parallel pairs stay parallel.
#[inline(always)]
pub(crate) fn run_row<T: Real, const NTK: bool, const PRECISE: bool>(
    p: &Planned<T>,
    i: usize,
    j0: usize,
    len: usize,
    diag: bool,
    scr: &mut RowScratch<T>,
) -> bool {
    {
        let s0 = &mut scr.slots[0];
        for v in &mut s0.t[..len] {
            *v = T::ZERO;
        }
        if diag {
            s0.c[0] = p.q_in[i];
            if PRECISE {
                s0.m[0] = T::ZERO;
            }
        }
    }
    if !PRECISE {
        for v in &mut scr.act.near[..len] {
            *v = T::ZERO;
        }
    }
    // the per-sample variances of value `v`: x1's sample i, x2's samples j0..j0 + len
    let side = |v: usize| {
        let (a, b) = &p.vals[v];
        (a.at(i), b.as_ref().unwrap_or(a).span(j0, len))
    };
    for (k, (plan, ex)) in p.steps.iter().zip(&p.exec).enumerate() {
        let dst = ex.dst;
        // unary steps and the first input of a fan-in start from their input's row
        if ex.src[0] != dst {
            let (d, s) = pair(&mut scr.slots, dst, ex.src[0]);
            d.c[..len].copy_from_slice(&s.c[..len]);
            if NTK {
                d.t[..len].copy_from_slice(&s.t[..len]);
            }
            if PRECISE {
                d.m[..len].copy_from_slice(&s.m[..len]);
            }
        }
        let (ins, out) = (&p.io[k].0, p.io[k].1);
        match plan {
            StepPlan::Dense(dp) => {
                let d = &mut scr.slots[dst];
                if PRECISE {
                    let ((i1, i2), (o1, o2)) = (side(ins[0]), side(out));
                    dp.row_precise::<NTK, _, _, _, _>(
                        &mut d.c[..len],
                        &mut d.m[..len],
                        &mut d.t[..len],
                        i1.sq(),
                        i2.sq(),
                        o1.sq(),
                        o2.sq(),
                    );
                } else {
                    dp.row::<NTK>(&mut d.c[..len], &mut d.t[..len]);
                }
            }
            StepPlan::Act { plan, s1, s2 } => {
                let s2 = s2.as_ref().unwrap_or(s1);
                let d = &mut scr.slots[dst];
                if PRECISE {
                    let (o1, o2) = side(out);
                    plan.row_precise::<NTK, _, _, _, _>(
                        s1.at(i),
                        s2.span(j0, len),
                        o1,
                        o2,
                        &mut d.c[..len],
                        &mut d.m[..len],
                        &mut d.t[..len],
                        &mut scr.act,
                    );
                } else {
                    plan.row::<NTK, _, _>(
                        s1.at(i),
                        s2.span(j0, len),
                        &mut d.c[..len],
                        &mut d.t[..len],
                        &mut scr.act,
                    );
                }
            }
            StepPlan::LayerNorm { r1, r2 } => {
                let r2 = r2.as_ref().unwrap_or(r1);
                let d = &mut scr.slots[dst];
                layer_norm::row::<T, NTK>(r1[i], &r2[j0..j0 + len], &mut d.c[..len], &mut d.t[..len]);
                if PRECISE {
                    // √(q1'q2') = √(q1 q2)·r1·r2: the defect scales like c
                    let r2 = &r2[j0..j0 + len];
                    for (m, &r) in d.m[..len].iter_mut().zip(r2) {
                        *m *= r1[i] * r;
                    }
                }
            }
            StepPlan::Identity => {}
            StepPlan::Dropout { inv_rate } => {
                if diag && NTK {
                    scr.slots[dst].t[0] *= *inv_rate;
                }
                if PRECISE {
                    // off the diagonal c is unchanged and √(q1'q2') = √(q1 q2)/rate
                    let (i1, i2) = side(ins[0]);
                    let (a, b) = (i1.sq(), i2.sq());
                    let d = &mut scr.slots[dst];
                    for (j, m) in d.m[..len].iter_mut().enumerate() {
                        *m += a.at(j) * b.at(j) * (*inv_rate - T::ONE);
                    }
                }
            }
            StepPlan::Sum | StepPlan::Prod | StepPlan::Concat { .. } => {
                if PRECISE {
                    // the partial fan-in's per-sample variances start as its first input's
                    let (a, b) = side(ins[0]);
                    scr.fq[..len].copy_from_slice(b.q());
                    let _ = a;
                }
                let mut fq1 = side(ins[0]).0.q();
                for (mi, &src) in ex.src.iter().enumerate().skip(1) {
                    let (d, s): (&mut Slot<T>, &Slot<T>) = if src == dst {
                        // the same value twice: read a copy
                        let tmp = &mut scr.tmp;
                        tmp.c[..len].copy_from_slice(&scr.slots[src].c[..len]);
                        tmp.t[..len].copy_from_slice(&scr.slots[src].t[..len]);
                        if PRECISE {
                            tmp.m[..len].copy_from_slice(&scr.slots[src].m[..len]);
                        }
                        (&mut scr.slots[dst], &scr.tmp)
                    } else {
                        pair(&mut scr.slots, dst, src)
                    };
                    let (dc, dt, sc, st) = (&mut d.c[..len], &mut d.t[..len], &s.c[..len], &s.t[..len]);
                    let (wd, ws) = match plan {
                        StepPlan::Concat { w } => (if mi == 1 { w[0] } else { T::ONE }, w[mi]),
                        _ => (T::ONE, T::ONE),
                    };
                    if PRECISE {
                        let (dm, sm) = (&mut d.m[..len], &s.m[..len]);
                        let (s1, s2) = side(ins[mi]);
                        let fq = &mut scr.fq[..len];
                        match plan {
                            StepPlan::Prod => {
                                fan::prod_row_precise::<T, NTK, _, _, _, _>(
                                    dc,
                                    dm,
                                    dt,
                                    sc,
                                    sm,
                                    st,
                                    (fq1, &fq[..]),
                                    (s1.q(), s2.q()),
                                );
                                fq1 *= s1.q();
                                for (f, &q) in fq.iter_mut().zip(s2.q()) {
                                    *f *= q;
                                }
                            }
                            _ => {
                                fan::mix_row_precise::<T, NTK, _, _, _, _>(
                                    wd,
                                    ws,
                                    dc,
                                    dm,
                                    dt,
                                    sc,
                                    sm,
                                    st,
                                    (fq1, &fq[..]),
                                    (s1.q(), s2.q()),
                                );
                                fq1 = wd * fq1 + ws * s1.q();
                                for (f, &q) in fq.iter_mut().zip(s2.q()) {
                                    *f = wd * *f + ws * q;
                                }
                            }
                        }
                    } else {
                        match plan {
                            StepPlan::Sum => fan::sum_row::<T, NTK>(dc, dt, sc, st),
                            StepPlan::Prod => fan::prod_row::<T, NTK>(dc, dt, sc, st),
                            StepPlan::Concat { .. } => fan::mix_row::<T, NTK>(wd, ws, dc, dt, sc, st),
                            _ => unreachable!(),
                        }
                    }
                }
            }
        }
        if diag {
            scr.slots[dst].c[0] = p.q_out[k][i];
            if PRECISE {
                scr.slots[dst].m[0] = T::ZERO;
            }
        }
    }
    if !PRECISE && diag {
        // the diagonal pair is exactly parallel by construction
        scr.act.near[0] = T::ZERO;
    }
    !PRECISE && scr.act.near[..len].iter().any(|&v| v != T::ZERO)
}
