//! The SIMD level can be forced (`set_simd_level`, or `NTKRS_SIMD` read at first use), and every
//! level this CPU supports computes the same kernels as the scalar path: the fused tile pass of
//! every closed-form activation and of a numerical one, float64 and float32, and the finite
//! networks' activations (forward pass, empirical NTK). The levels differ only by rounding (fused
//! multiply-adds), so they agree to a few ulps of the largest entry, not bitwise. (The vector maths
//! of `vmath` is checked bitwise at every level by its own unit test.)
//!
//! One test function: the level is global to the process, and this file is its own test binary.

use ntkrs_core::faer::Mat;
use ntkrs_core::{
    current_simd_level, set_simd_level, simd_level, ApplyOptions, Control, EmpiricalOptions, Get, KernelOptions,
    Network, Parallelism, SimdLevel,
};

const SPECS: &[&str] = &[
    "relu:3,W_std=1.4,b_std=0.1",
    "leaky_relu(0.1):2,b_std=0.2",
    "abs:2",
    "erf:3,W_std=1.2,b_std=0.1",
    "gelu:3,b_std=0.05",
    "sign:2,b_std=0.1",
    "sin(1,2,0.3):2",
    "exp(0.5,0.3):2",
    "gaussian(1,-0.5):2",
    "rbf(0.5):2",
    "rectified_monomial(2):2",
    "hermite(3):2",
    "tanh:2",
];

fn data<T: ntkrs_core::Element>(n: usize, d: usize, shift: usize) -> Mat<T> {
    Mat::<T>::from_fn(n, d, |i, j| {
        T::from_f64((((i + shift) * 7 + j * 3) as f64 * 0.37).sin())
    })
}

/// Largest difference relative to the largest entry.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let max = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / max
}

/// Every kernel and finite-network result of the suite, at the current level, as f64.
fn results() -> Vec<(String, Vec<f64>)> {
    let ctl = Control::new();
    let seq = KernelOptions {
        tile_size: 16,
        par: Parallelism::Sequential,
        shape: ntkrs_core::InputShape::FLAT,
    };
    let mut out = Vec::new();
    for spec in SPECS {
        let net = Network::from_spec(spec).unwrap();
        let (x, y) = (data::<f64>(40, 6, 0), data::<f64>(23, 6, 50));
        let k = net.kernel(x.as_ref(), None, Get::BOTH, &seq, &ctl).unwrap();
        out.push((format!("{spec} nngp"), k.nngp.unwrap()));
        out.push((format!("{spec} ntk"), k.ntk.unwrap()));
        if spec.starts_with("tanh") {
            continue; // numerical activations take about a second to plan; checked above
        }
        let k = net.kernel(x.as_ref(), Some(y.as_ref()), Get::NTK, &seq, &ctl).unwrap();
        out.push((format!("{spec} ntk(x, y)"), k.ntk.unwrap()));
        let x32 = data::<f32>(40, 6, 0);
        let k = net.kernel(x32.as_ref(), None, Get::NTK, &seq, &ctl).unwrap();
        out.push((
            format!("{spec} ntk f32"),
            k.ntk.unwrap().iter().map(|&v| v as f64).collect(),
        ));
        let finite = Network::from_spec(&format!("{spec},width=32,out_dim=2")).unwrap();
        let p = finite.init::<f64>(6, 3, 0).unwrap();
        let v: Vec<_> = p.iter().map(|q| q.view()).collect();
        let apply = ApplyOptions {
            par: Parallelism::Sequential,
            ..Default::default()
        };
        out.push((
            format!("{spec} apply"),
            finite.apply(&v, x.as_ref(), &apply, &ctl).unwrap(),
        ));
        let emp = EmpiricalOptions {
            get: Get::NTK,
            par: Parallelism::Sequential,
            ..Default::default()
        };
        let e = finite.empirical(&v, x.as_ref(), None, &emp, &ctl).unwrap();
        out.push((format!("{spec} empirical ntk"), e.ntk.unwrap()));
    }
    out
}

#[test]
fn every_supported_level_matches_the_scalar_path() {
    // names and errors
    assert_eq!(SimdLevel::parse(" AVX2 ").unwrap(), SimdLevel::Avx2);
    assert_eq!(SimdLevel::parse("avx2+fma").unwrap(), SimdLevel::Avx2);
    assert_eq!(SimdLevel::parse("avx512").unwrap(), SimdLevel::Avx512);
    let e = SimdLevel::parse("sse9").unwrap_err().to_string();
    assert!(e.contains("sse9") && e.contains("scalar, avx2, avx512"), "{e}");
    let supported = SimdLevel::supported();
    assert_eq!(supported[0], SimdLevel::Scalar);
    assert_eq!(*supported.last().unwrap(), SimdLevel::detected());
    for l in SimdLevel::ALL {
        if !l.is_supported() {
            let before = current_simd_level();
            let e = set_simd_level(l).unwrap_err().to_string();
            assert!(e.contains("does not support"), "{e}");
            assert_eq!(current_simd_level(), before, "a refused level changes nothing");
        }
    }

    set_simd_level(SimdLevel::Scalar).unwrap();
    assert_eq!(simd_level(), "scalar");
    let reference = results();
    println!("levels compared with scalar: {supported:?}");
    for &level in &supported[1..] {
        set_simd_level(level).unwrap();
        assert_eq!(simd_level(), level.name());
        let got = results();
        for ((name, a), (_, b)) in got.iter().zip(&reference) {
            let tol = if name.contains("f32") { 1e-5 } else { 1e-12 };
            let r = rel(a, b);
            assert!(
                r <= tol,
                "{name} at {level}: {r:.2e} from the scalar path (tolerance {tol:.0e})"
            );
        }
    }
    set_simd_level(SimdLevel::detected()).unwrap();
}
