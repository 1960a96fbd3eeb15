//! Timing of the Flatten-readout CNTK (issue 12's network): `depth` × [Conv(64, (3, 3), SAME,
//! W_std=1.4, b_std=0.1), Relu], Flatten, Dense(1, W_std=1.4, b_std=0.1) on `n` pseudo-random
//! 28×28×1 images, NNGP and NTK, float64, on the calling thread only; optionally writes both
//! kernels (little-endian f64, NNGP then NTK) to a file for comparisons between builds.
//!
//! Run: `cargo run --release -p ntkrs-core --example conv_flatten -- [n] [depth] [reps] [out]`

use ntkrs_core::faer::Mat;
use ntkrs_core::{
    Activation, Control, Conv, Dense, Get, InputShape, KernelOptions, Layer, Network, Padding, Parallelism,
    Parameterization,
};
use std::io::Write;

fn main() -> ntkrs_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: usize, d: usize| args.get(k).map(|s| s.parse().expect("a number")).unwrap_or(d);
    let (n, depth, reps) = (arg(1, 60), arg(2, 3), arg(3, 3));
    let mut layers = Vec::new();
    for _ in 0..depth {
        layers.push(Layer::Conv(Conv::new(
            64,
            vec![3, 3],
            None,
            Padding::Same,
            1.4,
            Some(0.1),
            Parameterization::Ntk,
        )?));
        layers.push(Layer::Activation(Activation::relu()));
    }
    layers.push(Layer::Flatten);
    layers.push(Layer::Dense(Dense::new(1, 1.4, Some(0.1), Parameterization::Ntk)?));
    let net = Network::new(layers)?;
    // splitmix64 uniforms on [-1, 1)
    let mut s = 7u64;
    let x = Mat::<f64>::from_fn(n, 784, |_, _| {
        s = s.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    });
    let opts = KernelOptions {
        par: Parallelism::Sequential,
        shape: InputShape::new(&[28, 28, 1])?,
        ..Default::default()
    };
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..reps {
        let t = std::time::Instant::now();
        let k = net.kernel(x.as_ref(), None, Get::BOTH, &opts, &Control::new())?;
        times.push(t.elapsed().as_secs_f64());
        last = Some(k);
    }
    times.sort_by(f64::total_cmp);
    let pairs = n * (n + 1) / 2;
    let med = times[times.len() / 2];
    println!(
        "n={n} depth={depth}: median {med:.3} s [{:.3}, {:.3}] over {reps}; {:.2} us per pair",
        times[0],
        times[times.len() - 1],
        med / pairs as f64 * 1e6
    );
    if let (Some(path), Some(k)) = (args.get(4), last) {
        let mut f = std::fs::File::create(path).expect("create");
        for v in k.nngp.expect("asked").iter().chain(k.ntk.expect("asked").iter()) {
            f.write_all(&v.to_le_bytes()).expect("write");
        }
    }
    Ok(())
}
