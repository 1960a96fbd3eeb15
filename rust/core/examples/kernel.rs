//! The NNGP and NTK of an MLP and of a pre-LayerNorm residual network, built from layers and from
//! the `--net` grammar, with a progress report and explicit threads.
//!
//! Run: `cargo run --release -p ntkrs-core --example kernel`

use ntkrs_core::faer::Mat;
use ntkrs_core::{
    Activation, Control, Dense, FanIn, Get, KernelOptions, Layer, LayerNorm, Network, Parallelism, Parameterization,
};

fn main() -> ntkrs_core::Result<()> {
    let dense = |w: usize| Dense::new(w, 1.5, Some(0.1), Parameterization::Ntk).map(Layer::Dense);
    let relu = || Layer::Activation(Activation::relu());

    // serial(Dense(512), Relu, Dense(512), Relu, Dense(1))
    let mlp = Network::new(vec![dense(512)?, relu(), dense(512)?, relu(), dense(1)?])?;

    // x + Dense(Relu(Dense(LayerNorm(x)))), twice, a final LayerNorm and a readout
    let block = || -> ntkrs_core::Result<Layer> {
        Ok(Layer::Serial(vec![
            Layer::FanOut(2),
            Layer::Parallel(vec![
                Layer::Serial(vec![
                    Layer::LayerNorm(LayerNorm::new(vec![-1], 1e-12)?),
                    dense(512)?,
                    relu(),
                    dense(512)?,
                ]),
                Layer::Identity,
            ]),
            Layer::FanIn(FanIn::Sum),
        ]))
    };
    let resnet = Network::new(vec![
        dense(512)?,
        block()?,
        block()?,
        Layer::LayerNorm(LayerNorm::new(vec![-1], 1e-12)?),
        dense(1)?,
    ])?;
    // the same network from the command line's grammar
    let same = Network::from_spec("resnet:relu:2,layer_norm=pre,W_std=1.5,b_std=0.1")?;

    let n = 2000;
    let x = Mat::<f64>::from_fn(n, 64, |i, j| ((i * 31 + j * 17) % 97) as f64 / 48.5 - 1.0);
    let opts = KernelOptions {
        par: Parallelism::Threads(2),
        ..Default::default()
    };
    for (name, net) in [("mlp", &mlp), ("resnet", &resnet), ("resnet (spec)", &same)] {
        let ctl = Control::new();
        let t = std::time::Instant::now();
        let k = net.kernel(x.as_ref(), None, Get::BOTH, &opts, &ctl)?;
        let (nngp, ntk) = (k.nngp.expect("asked for"), k.ntk.expect("asked for"));
        println!(
            "{name:>14}: {n} x {n} in {:.3} s ({:?} work units); nngp[0, 1] = {:.6}, ntk[0, 1] = {:.6}",
            t.elapsed().as_secs_f64(),
            ctl.progress(),
            nngp[1],
            ntk[1]
        );
    }
    Ok(())
}
