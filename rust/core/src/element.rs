//! The floating-point types kernels are computed in.

use crate::vmath::Real;

/// Floating-point types the kernels are computed in (`f32`, `f64`): the branch-free maths of
/// [`Real`] plus faer's field operations for the matrix products.
pub trait Element: Real + faer::traits::RealField {
    /// `"float32"` or `"float64"`.
    const NAME: &'static str;
}

impl Element for f32 {
    const NAME: &'static str = "float32";
}

impl Element for f64 {
    const NAME: &'static str = "float64";
}
