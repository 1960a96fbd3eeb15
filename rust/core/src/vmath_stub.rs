//! TEMPORARY stub (std functions) until the vectorised module lands.
pub trait Real: Copy + Send + Sync + 'static + PartialOrd + core::fmt::Debug + Default
    + core::ops::Add<Output = Self> + core::ops::Sub<Output = Self> + core::ops::Mul<Output = Self>
    + core::ops::Div<Output = Self> + core::ops::Neg<Output = Self> + core::ops::AddAssign + core::ops::MulAssign
{
    const ZERO: Self; const ONE: Self; const TWO: Self; const HALF: Self; const PI: Self;
    const EPSILON: Self; const MAX: Self; const MIN_POSITIVE: Self;
    fn from_f64(x: f64) -> Self; fn to_f64(self) -> f64;
    fn sqrt(self) -> Self; fn abs(self) -> Self; fn min(self, o: Self) -> Self; fn max(self, o: Self) -> Self;
    fn clamp_unit(self) -> Self; fn is_finite(self) -> bool; fn select(c: bool, a: Self, b: Self) -> Self;
    fn vacos(self) -> Self; fn vasin(self) -> Self; fn vatan(self) -> Self; fn vexp(self) -> Self;
}
macro_rules! imp { ($t:ty) => {
impl Real for $t {
    const ZERO: Self = 0.0; const ONE: Self = 1.0; const TWO: Self = 2.0; const HALF: Self = 0.5;
    const PI: Self = core::f64::consts::PI as $t; const EPSILON: Self = <$t>::EPSILON; const MAX: Self = <$t>::MAX;
    const MIN_POSITIVE: Self = <$t>::MIN_POSITIVE;
    fn from_f64(x: f64) -> Self { x as $t } fn to_f64(self) -> f64 { self as f64 }
    fn sqrt(self) -> Self { <$t>::sqrt(self) } fn abs(self) -> Self { <$t>::abs(self) }
    fn min(self, o: Self) -> Self { <$t>::min(self, o) } fn max(self, o: Self) -> Self { <$t>::max(self, o) }
    fn clamp_unit(self) -> Self { self.max(-1.0).min(1.0) } fn is_finite(self) -> bool { <$t>::is_finite(self) }
    fn select(c: bool, a: Self, b: Self) -> Self { if c { a } else { b } }
    fn vacos(self) -> Self { <$t>::acos(self) } fn vasin(self) -> Self { <$t>::asin(self) }
    fn vatan(self) -> Self { <$t>::atan(self) } fn vexp(self) -> Self { <$t>::exp(self) }
}}}
imp!(f32); imp!(f64);
