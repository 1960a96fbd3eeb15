//! `LayerNorm(axis=-1, eps=1e-12)`: each sample's features normalised to mean 0 and variance 1,
//! `y = (x − mean(x))/√(var(x) + eps)` over the channel axis.
//!
//! Kernels (neural-tangents' `LayerNorm` for Gaussian inputs, whose infinitely many channels have
//! mean 0): `nngp' = nngp/√((q1 + eps)(q2 + eps))`, `ntk' = ntk/√((q1 + eps)(q2 + eps))`, with
//! `q` each sample's variance; so `q' = q/(q + eps)`.

use crate::error::{Error, Result};
use crate::vmath::Real;

/// A layer normalisation over the channel axis.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorm {
    /// The axes normalised over, as given (negative counts from the end); they must include the
    /// channel axis (−1) and may not include the batch axis (0).
    pub axes: Vec<isize>,
    /// Added to each variance before the square root (> 0).
    pub eps: f64,
}

impl LayerNorm {
    /// A validated layer normalisation.
    pub fn new(axes: Vec<isize>, eps: f64) -> Result<Self> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::arg("eps", format!("must be a finite number > 0, got {eps}")));
        }
        if axes.is_empty() {
            return Err(Error::arg("axis", "name at least one axis (the channel axis, -1)"));
        }
        Ok(LayerNorm { axes, eps })
    }

    /// `neural-tangents`-style description.
    pub fn name(&self) -> String {
        let axis = if self.axes.len() == 1 {
            self.axes[0].to_string()
        } else {
            format!("{:?}", self.axes)
        };
        format!("LayerNorm(axis={axis}, eps={:e})", self.eps)
    }

    /// Check the axes against inputs of rank `rank` (batch axis 0, channel axis `rank − 1`);
    /// returns the number of spatial axes normalised (a trailing run).
    pub(crate) fn check_axes(&self, rank: usize) -> std::result::Result<usize, String> {
        let mut seen = Vec::new();
        for &a in &self.axes {
            let r = rank as isize;
            if a >= r || a < -r {
                return Err(format!(
                    "normalises over axis {a}, which does not exist for inputs of rank {rank} \
                     (batch, ..., channels); use axis=-1 (the channels)"
                ));
            }
            let k = a.rem_euclid(r) as usize;
            if k == 0 {
                return Err(
                    "normalises over the batch axis 0, which would mix samples; use axis=-1 (the channels)".into(),
                );
            }
            if seen.contains(&k) {
                return Err(format!("names axis {k} twice"));
            }
            seen.push(k);
        }
        if !seen.contains(&(rank - 1)) {
            return Err(format!(
                "does not normalise over the channel axis {}: the infinite-width limit needs it \
                 (neural-tangents requires it too); include axis=-1",
                rank - 1
            ));
        }
        // the spatial axes normalised must be the last ones (next to the channels)
        let trailing = seen.len() - 1;
        if (rank - 1 - trailing..rank).all(|k| seen.contains(&k)) {
            Ok(trailing)
        } else {
            Err(format!(
                "normalises over the spatial axes {:?} but not over the ones between them and the channels; \
                 normalise over the channels and a trailing run of spatial axes (for NHWC images axis=-1, (2, 3) \
                 or (1, 2, 3))",
                {
                    let mut v: Vec<usize> = seen.iter().copied().filter(|&k| k != rank - 1).collect();
                    v.sort_unstable();
                    v
                }
            ))
        }
    }

    /// The checks that do not depend on the rank (a network checked before any call): the batch
    /// axis, repeated axes; returns 0 (the real count is found for a call).
    pub(crate) fn check_axes_unknown_rank(&self) -> std::result::Result<usize, String> {
        let mut seen = Vec::new();
        for &a in &self.axes {
            if a == 0 {
                return Err(
                    "normalises over the batch axis 0, which would mix samples; use axis=-1 (the channels)".into(),
                );
            }
            if a > 0 && seen.contains(&a) {
                return Err(format!("names axis {a} twice"));
            }
            seen.push(a);
        }
        Ok(0)
    }

    /// The variance map `q ↦ q/(q + eps)`.
    pub(crate) fn variance(&self, q: f64) -> f64 {
        q / (q + self.eps)
    }

    /// Per-sample factors `1/√(q + eps)`.
    pub(crate) fn factors<T: Real>(&self, q: &[f64]) -> Vec<T> {
        q.iter().map(|&v| T::from_f64(1.0 / (v + self.eps).sqrt())).collect()
    }
}

/// `c ↦ c·r1·r2[j]` and `t ↦ t·r1·r2[j]`.
#[inline(always)]
pub(crate) fn row<T: Real, const NTK: bool>(r1: T, r2: &[T], c: &mut [T], t: &mut [T]) {
    let r2 = &r2[..c.len()];
    let t = &mut t[..c.len()];
    for j in 0..c.len() {
        let f = r1 * r2[j];
        c[j] *= f;
        if NTK {
            t[j] *= f;
        }
    }
}

impl LayerNorm {
    /// The finite-width forward pass over the channels of each sample: `x` column-major
    /// `width × n`; returns `y` (same layout) and `1/√(var + eps)` per sample. Mean and
    /// variance are accumulated in f64, in two passes.
    pub(crate) fn forward<T: crate::element::Element>(&self, x: &[T], width: usize) -> (Vec<T>, Vec<T>) {
        let n = x.len() / width.max(1);
        let mut y = vec![T::ZERO; x.len()];
        let mut inv = vec![T::ZERO; n];
        for (a, (col, out)) in x.chunks(width).zip(y.chunks_mut(width)).enumerate() {
            let mean = col.iter().map(|v| v.to_f64()).sum::<f64>() / width as f64;
            let var = col.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / width as f64;
            let r = 1.0 / (var + self.eps).sqrt();
            for (o, v) in out.iter_mut().zip(col) {
                *o = T::from_f64((v.to_f64() - mean) * r);
            }
            inv[a] = T::from_f64(r);
        }
        (y, inv)
    }
}

/// The finite-width backward pass: for each signal column `g` of sample `a` (`k` columns per
/// sample, each `width` long), `∂/∂x = r_a·(g − mean(g) − y_a·mean(g ⊙ y_a))` (the Jacobian of
/// `(x − mean)/√(var + eps)` is `r·(I − 11ᵀ/w − y yᵀ/w)`).
pub(crate) fn backward<T: crate::element::Element>(g: &[T], y: &[T], inv: &[T], width: usize, k: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; g.len()];
    let w = width as f64;
    for (col, (gi, oi)) in g.chunks(width).zip(out.chunks_mut(width)).enumerate() {
        let a = col / k;
        let ya = &y[a * width..(a + 1) * width];
        let mg = gi.iter().map(|v| v.to_f64()).sum::<f64>() / w;
        let mgy = gi.iter().zip(ya).map(|(u, v)| u.to_f64() * v.to_f64()).sum::<f64>() / w;
        let r = inv[a].to_f64();
        for ((o, &gv), &yv) in oi.iter_mut().zip(gi).zip(ya) {
            *o = T::from_f64(r * (gv.to_f64() - mg - yv.to_f64() * mgy));
        }
    }
    out
}
