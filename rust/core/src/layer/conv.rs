//! Convolutional layers with neural-tangents' `stax` semantics (inputs NHWC `(N, H, W, C)`,
//! `(N, L, C)` in 1-D; filters HWIO):
//!
//! * `Conv(out_chan, filter_shape, strides, padding, W_std, b_std, parameterization)`: for output
//!   positions `o, o'`, `K'(o, o') = W²/|f| · Σ_δ K(i(o, δ), i(o', δ)) + b²` (the same tap δ on
//!   both sides: the weights are shared across positions and independent across taps),
//!   `Θ'(o, o') = W²/|f| · Σ_δ Θ(i(o, δ), i(o', δ)) + K'(o, o')` (NTK parameterization) or
//!   `C_in·Σ_δ K(..) + W²/|f| · Σ_δ Θ(..) (+1 with a bias)` (standard), with `i(o, δ) = o·s + δ − lo`
//!   per axis and `|f|` the number of taps. Taps outside the input read zeros under `SAME` (the
//!   divisor stays `|f|`) and wrap under `CIRCULAR`.
//! * `AvgPool`/`SumPool(window_shape, strides, padding[, normalize_edges])`: `K'(o, o') =
//!   Σ_{δ, δ'} K(i(o, δ), i(o', δ')) / (n(o) n(o'))`, `n` the window size (`AvgPool`), 1 (`SumPool`),
//!   or the number of taps inside the input (`SAME` with `normalize_edges=True`).
//! * `GlobalAvgPool()`/`GlobalSumPool()`: the mean/sum of `K(p, p')` over all pairs of positions.
//! * `Flatten()`: `K' = mean_p K(p, p)` (equal positions only, divided by the number of positions);
//!   its output is not Gaussian.
//!
//! Geometry (lax's conventions, per spatial axis of size `L`, filter `f`, stride `s`): `VALID`:
//! `out = ⌊(L − f)/s⌋ + 1`, `lo = 0`; `SAME`/`CIRCULAR`: `out = ⌈L/s⌉`,
//! `pad = max((out − 1)·s + f − L, 0)`, `lo = ⌊pad/2⌋` (an even filter pads one more at the end).

use crate::error::{Error, Result};
use crate::layer::dense::Parameterization;

/// The largest number of spatial axes supported (1-D, 2-D and 3-D convolutions).
pub const MAX_SPATIAL: usize = 3;

/// How a convolution or pooling window treats the border.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: the window stays inside the input.
    Valid,
    /// Zero padding that keeps the size (`⌈L/s⌉` outputs).
    Same,
    /// `SAME`'s output size, with the input wrapped around (periodic boundary).
    Circular,
}

impl std::str::FromStr for Padding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "VALID" => Ok(Padding::Valid),
            "SAME" => Ok(Padding::Same),
            "CIRCULAR" => Ok(Padding::Circular),
            other => Err(Error::arg(
                "padding",
                format!("{other:?} is not a valid padding; use 'VALID', 'SAME' or 'CIRCULAR' (upper case, as in neural-tangents)"),
            )),
        }
    }
}

impl Padding {
    /// The name as neural-tangents spells it.
    pub fn name(self) -> &'static str {
        match self {
            Padding::Valid => "VALID",
            Padding::Same => "SAME",
            Padding::Circular => "CIRCULAR",
        }
    }
}

fn tuple(v: &[usize]) -> String {
    if v.len() == 1 {
        format!("({},)", v[0])
    } else {
        format!("({})", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "))
    }
}

/// A shape for messages: `(5, 6)` or `(7,)`.
pub(crate) fn shape_str(v: &[usize]) -> String {
    tuple(v)
}

fn check_window(what: &'static str, window: &[usize], strides: &Option<Vec<usize>>) -> Result<Vec<usize>> {
    if window.is_empty() || window.len() > MAX_SPATIAL {
        return Err(Error::arg(
            what,
            format!(
                "needs 1 to {MAX_SPATIAL} entries (one per spatial axis: (L,) for sequences (N, L, C), (H, W) for images (N, H, W, C)), got {}",
                tuple(window)
            ),
        ));
    }
    if let Some(&z) = window.iter().find(|&&f| f == 0) {
        return Err(Error::arg(
            what,
            format!("every size must be at least 1, got {} (contains {z})", tuple(window)),
        ));
    }
    let s = match strides {
        None => vec![1; window.len()],
        Some(s) => {
            if s.len() != window.len() {
                return Err(Error::arg(
                    "strides",
                    format!(
                        "has {} entries {} but {what} {} has {}: give one stride per spatial axis",
                        s.len(),
                        tuple(s),
                        tuple(window),
                        window.len()
                    ),
                ));
            }
            if s.contains(&0) {
                return Err(Error::arg(
                    "strides",
                    format!("every stride must be at least 1, got {}", tuple(s)),
                ));
            }
            s.clone()
        }
    };
    Ok(s)
}

/// A convolution (`stax.Conv`).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    /// Output channels (only the standard parameterization's NTK and finite networks depend on it).
    pub out_chan: usize,
    /// Filter size per spatial axis.
    pub filter: Vec<usize>,
    /// Stride per spatial axis.
    pub strides: Vec<usize>,
    /// Border treatment.
    pub padding: Padding,
    /// Weight standard deviation σ_w ≥ 0.
    pub w_std: f64,
    /// Bias standard deviation σ_b ≥ 0, or `None` for no bias.
    pub b_std: Option<f64>,
    /// Weight scaling convention.
    pub parameterization: Parameterization,
}

impl Conv {
    /// A validated convolution; `strides` default to 1.
    pub fn new(
        out_chan: usize,
        filter: Vec<usize>,
        strides: Option<Vec<usize>>,
        padding: Padding,
        w_std: f64,
        b_std: Option<f64>,
        parameterization: Parameterization,
    ) -> Result<Self> {
        if out_chan == 0 {
            return Err(Error::arg("out_chan", "a Conv layer needs at least 1 output channel"));
        }
        let strides = check_window("filter_shape", &filter, &strides)?;
        // the same checks as Dense for the standard deviations
        crate::layer::Dense::new(1, w_std, b_std, parameterization)?;
        Ok(Conv {
            out_chan,
            filter,
            strides,
            padding,
            w_std,
            b_std,
            parameterization,
        })
    }

    /// `neural-tangents`-style description.
    pub fn name(&self) -> String {
        let b = self.b_std.map_or("None".to_string(), |b| b.to_string());
        let s = if self.strides.iter().all(|&s| s == 1) {
            String::new()
        } else {
            format!(", strides={}", tuple(&self.strides))
        };
        let p = match self.parameterization {
            Parameterization::Ntk => String::new(),
            Parameterization::Standard => ", parameterization='standard'".into(),
        };
        format!(
            "Conv({}, {}{s}, padding='{}', W_std={}, b_std={b}{p})",
            self.out_chan,
            tuple(&self.filter),
            self.padding.name(),
            self.w_std
        )
    }

    /// Number of filter taps `|f|`.
    pub fn taps(&self) -> usize {
        self.filter.iter().product()
    }

    /// The equivalent `Dense` (same standard deviations and parameterization).
    pub(crate) fn as_dense(&self) -> crate::layer::Dense {
        crate::layer::Dense {
            out_dim: self.out_chan,
            w_std: self.w_std,
            b_std: self.b_std,
            parameterization: self.parameterization,
        }
    }
}

/// Average or sum pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The mean over the window (`AvgPool`, `GlobalAvgPool`).
    Avg,
    /// The sum over the window (`SumPool`, `GlobalSumPool`).
    Sum,
}

/// A local pooling layer (`stax.AvgPool`, `stax.SumPool`).
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Mean or sum.
    pub kind: PoolKind,
    /// Window size per spatial axis.
    pub window: Vec<usize>,
    /// Stride per spatial axis.
    pub strides: Vec<usize>,
    /// Border treatment.
    pub padding: Padding,
    /// `AvgPool` under `SAME`: divide by the number of taps inside the input rather than the
    /// window size.
    pub normalize_edges: bool,
}

impl Pool {
    /// A validated pooling layer; `strides` default to 1 (as in neural-tangents).
    pub fn new(
        kind: PoolKind,
        window: Vec<usize>,
        strides: Option<Vec<usize>>,
        padding: Padding,
        normalize_edges: bool,
    ) -> Result<Self> {
        let strides = check_window("window_shape", &window, &strides)?;
        if normalize_edges && kind == PoolKind::Sum {
            return Err(Error::arg("normalize_edges", "applies to AvgPool only"));
        }
        Ok(Pool {
            kind,
            window,
            strides,
            padding,
            normalize_edges,
        })
    }

    /// `neural-tangents`-style description.
    pub fn name(&self) -> String {
        let k = match self.kind {
            PoolKind::Avg => "AvgPool",
            PoolKind::Sum => "SumPool",
        };
        let s = if self.strides.iter().all(|&s| s == 1) {
            String::new()
        } else {
            format!(", strides={}", tuple(&self.strides))
        };
        let e = if self.normalize_edges {
            ", normalize_edges=True"
        } else {
            ""
        };
        format!("{k}({}{s}, padding='{}'{e})", tuple(&self.window), self.padding.name())
    }
}

/// The geometry of one spatial axis of a convolution or pooling window: output position `o` and
/// tap `δ` read input position `idx[o·f + δ]` (`None`: a zero of the `SAME` padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Axis {
    pub l_in: usize,
    pub l_out: usize,
    pub f: usize,
    pub s: usize,
    /// Padding before the first position (`SAME`, `CIRCULAR`).
    pub lo: usize,
    /// Indices wrap around (`CIRCULAR`).
    pub circular: bool,
    pub idx: Vec<Option<usize>>,
}

impl Axis {
    /// The axis of a window `f` with stride `s` over `l_in` positions; `Err(message)` when a
    /// `VALID` window does not fit.
    pub fn new(l_in: usize, f: usize, s: usize, padding: Padding) -> std::result::Result<Axis, String> {
        let (l_out, lo) = match padding {
            Padding::Valid => {
                if f > l_in {
                    return Err(format!("{f} > {l_in}"));
                }
                ((l_in - f) / s + 1, 0)
            }
            Padding::Same | Padding::Circular => {
                let out = l_in.div_ceil(s);
                let pad = ((out - 1) * s + f).saturating_sub(l_in);
                (out, pad / 2)
            }
        };
        let mut idx = Vec::with_capacity(l_out * f);
        for o in 0..l_out {
            for d in 0..f {
                let i = (o * s + d) as isize - lo as isize;
                idx.push(match padding {
                    Padding::Circular => Some(i.rem_euclid(l_in as isize) as usize),
                    _ => (i >= 0 && (i as usize) < l_in).then_some(i as usize),
                });
            }
        }
        Ok(Axis {
            l_in,
            l_out,
            f,
            s,
            lo,
            circular: padding == Padding::Circular,
            idx,
        })
    }

    /// Input position of output `o`, tap `d`.
    #[inline(always)]
    pub fn at(&self, o: usize, d: usize) -> Option<usize> {
        self.idx[o * self.f + d]
    }

    /// For each tap `d`, the maximal runs `(o0, i0, len)` of outputs `o0..o0 + len` reading
    /// inputs `i0, i0 + s, …` (one run for `VALID`; `SAME` drops the padded outputs at the ends;
    /// `CIRCULAR` splits at the wrap).
    pub fn runs(&self) -> Vec<Vec<(usize, usize, usize)>> {
        (0..self.f)
            .map(|d| {
                let mut runs: Vec<(usize, usize, usize)> = Vec::new();
                for o in 0..self.l_out {
                    let Some(i) = self.at(o, d) else { continue };
                    match runs.last_mut() {
                        Some((o0, i0, len)) if *o0 + *len == o && *i0 + *len * self.s == i => *len += 1,
                        _ => runs.push((o, i, 1)),
                    }
                }
                runs
            })
            .collect()
    }

    /// Number of taps of output `o` inside the input.
    pub fn inside(&self, o: usize) -> usize {
        (0..self.f).filter(|&d| self.at(o, d).is_some()).count()
    }
}

/// The axes of a window over inputs of spatial shape `dims`, or the message saying why not.
pub(crate) fn axes(
    dims: &[usize],
    window: &[usize],
    strides: &[usize],
    padding: Padding,
) -> std::result::Result<Vec<Axis>, String> {
    let mut out = Vec::with_capacity(dims.len());
    let mut bad = false;
    for k in 0..dims.len() {
        match Axis::new(dims[k], window[k], strides[k], padding) {
            Ok(a) => out.push(a),
            Err(_) => bad = true,
        }
    }
    if bad {
        return Err(format!(
            "the window {} is larger than its input {} under padding='VALID' (no output position); \
             use a smaller window, padding='SAME', or larger inputs",
            tuple(window),
            tuple(dims)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_pads_one_more_at_the_end_for_even_filters() {
        let a = Axis::new(5, 2, 1, Padding::Same).unwrap();
        assert_eq!(a.l_out, 5);
        assert_eq!((a.at(0, 0), a.at(4, 1)), (Some(0), None));
        let a = Axis::new(5, 4, 1, Padding::Same).unwrap();
        assert_eq!((a.at(0, 0), a.at(0, 1), a.at(4, 3)), (None, Some(0), None));
        let a = Axis::new(6, 3, 2, Padding::Same).unwrap();
        // out 3, pad = max(2·2 + 3 − 6, 0) = 1, lo = 0
        assert_eq!((a.l_out, a.at(0, 0), a.at(2, 2)), (3, Some(0), None));
    }

    #[test]
    fn valid_and_circular_geometry() {
        let a = Axis::new(7, 3, 2, Padding::Valid).unwrap();
        assert_eq!((a.l_out, a.at(2, 2)), (3, Some(6)));
        assert!(Axis::new(5, 6, 1, Padding::Valid).is_err());
        let a = Axis::new(5, 3, 1, Padding::Circular).unwrap();
        assert_eq!((a.at(0, 0), a.at(4, 2)), (Some(4), Some(0)));
    }

    #[test]
    fn constructor_checks_name_the_argument() {
        let e = Conv::new(
            4,
            vec![3, 3],
            Some(vec![2]),
            Padding::Valid,
            1.0,
            None,
            Parameterization::Ntk,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("strides:"), "{e}");
        assert!(Conv::new(0, vec![3], None, Padding::Valid, 1.0, None, Parameterization::Ntk).is_err());
        assert!(Conv::new(2, vec![0, 3], None, Padding::Valid, 1.0, None, Parameterization::Ntk).is_err());
        assert!("same".parse::<Padding>().is_err());
        assert!(Pool::new(PoolKind::Avg, vec![2, 2, 2, 2], None, Padding::Valid, false).is_err());
    }
}
