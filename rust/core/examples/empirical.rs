//! A finite network: parameters, the forward pass, the exact empirical NTK and a few steps of
//! gradient descent, compared with the infinite-width NTK.
//!
//! Run: `cargo run --release -p ntkrs-core --example empirical`

use ntkrs_core::faer::Mat;
use ntkrs_core::{ApplyOptions, Control, EmpiricalOptions, Get, KernelOptions, Network, TrainOptions};

fn main() -> ntkrs_core::Result<()> {
    let net = Network::from_spec("relu:2,W_std=1.4,b_std=0.1,width=2048,out_dim=3")?;
    let (n, d) = (64, 10);
    let x = Mat::<f64>::from_fn(n, d, |i, j| ((i + 3 * j) as f64).sin());
    let y = Mat::<f64>::from_fn(n, 3, |i, j| ((i * (j + 1)) as f64).cos());
    let ctl = Control::new();

    let params = net.init::<f64>(d, 0, 0)?; // one (W, b) per Dense, W ~ N(0, 1)
    let view: Vec<_> = params.iter().map(|p| p.view()).collect();
    let f = net.apply(&view, x.as_ref(), &ApplyOptions::default(), &ctl)?; // n × 3, row-major
    let emp = net.empirical(&view, x.as_ref(), None, &EmpiricalOptions::default(), &ctl)?;
    let limit = net.kernel(x.as_ref(), None, Get::NTK, &KernelOptions::default(), &ctl)?;
    let (e, l) = (emp.ntk.expect("asked for"), limit.ntk.expect("asked for"));
    let dev = e.iter().zip(&l).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let max = l.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    println!("f(x[0]) = {:?}", &f[..3]);
    println!(
        "empirical NTK at width 2048 vs the limit: max deviation {:.3} of the largest entry",
        dev / max
    );

    let traj = net.train(
        &view,
        x.as_ref(),
        y.as_ref(),
        None,
        None,
        &TrainOptions {
            learning_rate: 1.0,
            steps: 50,
            record_every: 10,
            ..Default::default()
        },
        &ctl,
    )?;
    println!("training loss at steps {:?}: {:?}", traj.steps, traj.loss_train);
    Ok(())
}
