//! The shape of one example of a batch: a batch is always an `N × D` matrix, each row one example
//! flattened in C order (NHWC images: positions row-major, channels contiguous), and an
//! [`InputShape`] says how a row is laid out.

use crate::error::{Error, Result};
use crate::layer::conv::MAX_SPATIAL;

/// The per-example shape of a batch: `(d,)` for vectors (the default, [`InputShape::FLAT`]: `d`
/// is the number of columns), `(L, C)` for sequences, `(H, W, C)` for images, up to
/// three spatial axes before the channels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputShape {
    dims: [usize; MAX_SPATIAL + 1],
    rank: usize,
}

impl InputShape {
    /// Vectors: one feature axis, as wide as the batch has columns.
    pub const FLAT: InputShape = InputShape {
        dims: [0; MAX_SPATIAL + 1],
        rank: 0,
    };

    /// A validated shape `(..., C)` of 1 to 4 positive sizes.
    pub fn new(shape: &[usize]) -> Result<Self> {
        if shape.is_empty() || shape.len() > MAX_SPATIAL + 1 {
            return Err(Error::arg(
                "shape",
                format!(
                    "the per-example shape needs 1 to {} axes ((d,), (L, C), (H, W, C) or (D, H, W, C)), got {shape:?}",
                    MAX_SPATIAL + 1
                ),
            ));
        }
        if shape.contains(&0) {
            return Err(Error::arg(
                "shape",
                format!("every axis must have at least 1 entry, got {shape:?}"),
            ));
        }
        let mut dims = [0; MAX_SPATIAL + 1];
        dims[..shape.len()].copy_from_slice(shape);
        Ok(InputShape {
            dims,
            rank: shape.len(),
        })
    }

    /// Whether this is [`InputShape::FLAT`].
    pub fn is_flat(&self) -> bool {
        self.rank == 0
    }

    /// The shape for rows of `ncols` entries: `(ncols,)` when flat, else this shape after
    /// checking that it has `ncols` entries.
    pub fn resolve(&self, ncols: usize) -> Result<Vec<usize>> {
        if self.rank == 0 {
            return Ok(vec![ncols]);
        }
        let s = &self.dims[..self.rank];
        let n: usize = s.iter().product();
        if n != ncols {
            return Err(Error::arg(
                "shape",
                format!("the per-example shape {s:?} has {n} entries but each row of the inputs has {ncols}"),
            ));
        }
        Ok(s.to_vec())
    }
}
