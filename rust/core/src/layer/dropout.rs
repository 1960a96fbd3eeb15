//! `Dropout(rate, mode="train")`: neural-tangents' convention, `rate` is the *keep* rate; each
//! unit is kept with probability `rate` and scaled by `1/rate` (`mode="test"`: the identity).
//!
//! Kernels: a sample's variance becomes `q/rate`; the NNGP and NTK entries of a sample with
//! itself (the diagonal of `k(x, x)`) are multiplied by `1/rate`, the others are unchanged (two
//! different samples get independent masks). The output is not Gaussian.

use crate::error::{Error, Result};

/// Whether a `Dropout` layer drops units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropoutMode {
    /// Units are dropped (and the kernels change).
    Train,
    /// The identity.
    Test,
}

impl std::str::FromStr for DropoutMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "train" => Ok(DropoutMode::Train),
            "test" => Ok(DropoutMode::Test),
            other => Err(Error::arg(
                "mode",
                format!("unknown dropout mode {other:?}; use \"train\" or \"test\""),
            )),
        }
    }
}

/// A dropout layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// The keep rate, in (0, 1].
    pub rate: f64,
    /// Train (drop) or test (identity).
    pub mode: DropoutMode,
}

impl Dropout {
    /// A validated dropout layer.
    pub fn new(rate: f64, mode: DropoutMode) -> Result<Self> {
        if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
            return Err(Error::arg(
                "rate",
                format!(
                    "the keep rate must be in (0, 1] (neural-tangents' convention: rate=0.9 keeps 90% of the units), got {rate}"
                ),
            ));
        }
        Ok(Dropout { rate, mode })
    }

    /// `neural-tangents`-style description.
    pub fn name(&self) -> String {
        let m = match self.mode {
            DropoutMode::Train => "train",
            DropoutMode::Test => "test",
        };
        format!("Dropout(rate={}, mode='{m}')", self.rate)
    }
}

impl Dropout {
    /// The finite-width mask of the samples `a = 0..n` of batch `batch`: `width × n` column-major
    /// values, `1/rate` (kept) with probability `rate`, else 0. Deterministic for
    /// `(seed, index, batch, a)`, whatever the number of threads.
    pub(crate) fn mask<T: crate::element::Element>(
        rate: f64,
        seed: u64,
        index: usize,
        batch: u64,
        width: usize,
        n: usize,
    ) -> Vec<T> {
        let keep = T::from_f64(1.0 / rate);
        let mut out = vec![T::ZERO; width * n];
        for (a, col) in out.chunks_mut(width).enumerate() {
            let mut rng = crate::random::generator(&[seed, index as u64, batch, a as u64, 0x64726f70]);
            for v in col.iter_mut() {
                if crate::random::uniform(&mut rng) < rate {
                    *v = keep;
                }
            }
        }
        out
    }
}
