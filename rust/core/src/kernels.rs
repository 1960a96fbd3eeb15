//! Which kernels a computation returns, and the returned matrices.

use crate::error::{Error, Result};

/// Which kernels to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Get {
    /// The NNGP kernel Σ.
    pub nngp: bool,
    /// The NTK Θ.
    pub ntk: bool,
}

impl Get {
    /// Both kernels.
    pub const BOTH: Get = Get { nngp: true, ntk: true };
    /// The NNGP only.
    pub const NNGP: Get = Get { nngp: true, ntk: false };
    /// The NTK only.
    pub const NTK: Get = Get { nngp: false, ntk: true };

    /// Number of kernels asked for.
    pub fn count(self) -> usize {
        self.nngp as usize + self.ntk as usize
    }

    /// `Err` unless at least one kernel is asked for.
    pub fn check(self) -> Result<()> {
        if self.count() == 0 {
            return Err(Error::arg("get", "ask for at least one of \"nngp\" and \"ntk\""));
        }
        Ok(())
    }
}

/// Kernel matrices, row-major `rows × cols` (`cols == 1` for diagonals).
#[derive(Clone, Debug)]
pub struct Kernels<T> {
    /// Σ, when requested.
    pub nngp: Option<Vec<T>>,
    /// Θ, when requested.
    pub ntk: Option<Vec<T>>,
    /// Number of rows (`x1`'s samples).
    pub rows: usize,
    /// Number of columns (`x2`'s samples, or `x1`'s when `x2` is `None`; 1 for a diagonal).
    pub cols: usize,
}

impl<T> Kernels<T> {
    /// Pack buffers holding the requested kernels in order (NNGP first).
    pub(crate) fn from_buffers(get: Get, bufs: Vec<Vec<T>>, rows: usize, cols: usize) -> Self {
        let mut it = bufs.into_iter();
        let nngp = if get.nngp { it.next() } else { None };
        let ntk = if get.ntk { it.next() } else { None };
        Kernels { nngp, ntk, rows, cols }
    }
}
