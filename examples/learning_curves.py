"""Predicted against measured learning curves of kernel regression with a network's NTK on the sphere
(``docs/learning_curves.png``; ``docs/spectrum.md`` explains it).

Predictions: ``ntkrs.spectrum.learning_curve`` from the Mercer eigenvalues ``mercer_spectrum``.
Measurements: ``ntkrs.spectrum.measure_learning_curve`` (kernel ridge regression with ``net.kernel`` on points
uniform on the sphere, a random teacher with power 0.5, 0.3, 0.2 in degrees 1–3, mean ± standard error over
``--draws`` draws). Panels: (a) dim 10 with and without label noise and ridge; (b) the error of each degree;
(c) the noiseless curve in dims 3, 5 and 10 (the theory is asymptotic in the number of modes per degree).

    python examples/learning_curves.py [--draws 40] [--out docs/learning_curves.png]
"""

from __future__ import annotations

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import ntkrs as nk  # noqa: E402
import numpy as np  # noqa: E402
from ntkrs import spectrum as sp  # noqa: E402

POWER = np.array([0.0, 0.5, 0.3, 0.2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=40)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "learning_curves.png"))
    args = ap.parse_args()
    start = time.perf_counter()
    net = nk.mlp(2, 512, "relu", W_std=1.5, b_std=0.1)
    sizes = np.array([5, 10, 20, 40, 80, 160, 320, 640])
    grid = np.unique(np.round(np.geomspace(1, 1000, 120)))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    spec = sp.mercer_spectrum(net, 10, 60, "ntk", POWER)
    print("dim 10 eigenvalues λ_0..λ_5:", np.array2string(spec.eigenvalues[:6], precision=4))
    report = []
    modes = None
    for i, (ridge, noise) in enumerate([(0.0, 0.0), (0.0, 0.2), (3.0, 0.2)]):
        lc = sp.learning_curve(spec, grid, ridge=ridge, noise=noise)
        m = sp.measure_learning_curve(net, 10, sizes, POWER, ridge=ridge, noise=noise, draws=args.draws,
                                      n_test=args.n_test, seed=i, mode_degrees=4 if i == 0 else 0)
        at = sp.learning_curve(spec, sizes, ridge=ridge, noise=noise).error
        z = (m.error - at) / m.sem
        report.append((ridge, noise, float(np.max(np.abs(z)))))
        label = f"ridge {ridge:g}, noise σ² = {noise:g}"
        ax.plot(grid, lc.error, color=f"C{i}", lw=1.8, label=label)
        ax.errorbar(sizes, m.error, yerr=m.sem, fmt="o", ms=4, color=f"C{i}", capsize=2)
        if i == 0:
            modes = (m, sp.learning_curve(spec, grid).mode_errors)
    ax.set(xscale="log", yscale="log", xlabel="training points $P$", ylabel="test error $E_g$",
           title="(a) ReLU NTK, depth 2, sphere in dim 10")
    ax.legend(fontsize=8, loc="lower left", title="lines: predicted; points: measured", title_fontsize=8)
    ax = axes[1]
    m, mode_errors = modes
    for k in (1, 2, 3):
        ax.plot(grid, mode_errors[:, k] / POWER[k], color=f"C{k}", lw=1.8, label=f"degree {k}")
        ax.errorbar(sizes, m.mode_error[:, k] / POWER[k], yerr=m.mode_sem[:, k] / POWER[k], fmt="o", ms=4,
                    color=f"C{k}", capsize=2)
    ax.set(xscale="log", yscale="log", xlabel="training points $P$", ylabel=r"$E_k / v_k^2$", ylim=(1e-3, 2),
           title="(b) error per degree (no ridge, no noise)")
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[2]
    for i, dim in enumerate((3, 5, 10)):
        spec_d = sp.mercer_spectrum(net, dim, 400 if dim == 3 else 120, "ntk", POWER)
        lc = sp.learning_curve(spec_d, grid)
        m = sp.measure_learning_curve(net, dim, sizes, POWER, draws=args.draws, n_test=args.n_test, seed=10 + i)
        at = sp.learning_curve(spec_d, sizes).error
        print(f"dim {dim}: measured/predicted at P = {sizes.tolist()}: {np.array2string(m.error / at, precision=2)}")
        ax.plot(grid, lc.error, color=f"C{i}", lw=1.8, label=f"dim {dim}")
        ax.errorbar(sizes, m.error, yerr=m.sem, fmt="o", ms=4, color=f"C{i}", capsize=2)
    ax.set(xscale="log", yscale="log", xlabel="training points $P$", ylabel="test error $E_g$",
           title="(c) no ridge, no noise: dimension")
    ax.legend(fontsize=8, loc="lower left")
    for a in axes:
        a.grid(alpha=0.3)
    fig.suptitle(f"Kernel regression with ntkrs's NTK: predicted (lines, ntkrs.spectrum.learning_curve) and measured "
                 f"(points: mean ± s.e. over {args.draws} draws)", fontsize=11)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    for ridge, noise, z in report:
        print(f"dim 10, ridge {ridge:g}, noise {noise:g}: largest |measured − predicted| = {z:.2f} standard errors")
    print(f"wrote {os.path.normpath(args.out)} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
