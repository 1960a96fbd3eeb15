"""Numerical activations on inputs of equal and of unequal norms (issue 15, item 2).

Dense(512, W_std=1.5, b_std=0.05) → φ, `depth` times, → Dense(1), NNGP and NTK in float64. The
equal-norm inputs are Gaussian rows rescaled to norm √d (every sample shares one variance per
layer: the angle-table path); the unequal-norm inputs are the same rows times factors spread over
[0.5, 2] (the general path: the Mehler series, with the polar rule for the entries the series cannot
take). Prints, per activation, the median and range of each time over `--repeats` interleaved
rounds, and the per-round ratio unequal/equal (target: at most 3). ::

    python benchmarks/numerical_norms.py                       # Tanh and Silu, N=1000, d=784, depth 3
    python benchmarks/numerical_norms.py --act tanh --repeats 7
"""

from __future__ import annotations

import argparse
import os
import time

import ntkrs as nk
import numpy as np
from _stats import spread


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--act", nargs="+", default=["tanh", "silu"])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--d", type=int, default=784)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.n, a.d))
    equal = x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(a.d)
    unequal = equal * rng.uniform(0.5, 2.0, size=(a.n, 1))
    cfg = nk.show_config(print_out=False)
    print(f"# ntkrs {cfg['version']}  simd={cfg['simd']}  threads={cfg['threads']}  N={a.n} d={a.d} "
          f"depth={a.depth} float64  repeats={a.repeats}: median (min–max)  load {os.getloadavg()[0]:.2f}")
    print("| activation | equal-norm s | unequal-norm s | unequal/equal |")
    print("|---|---|---|---|")
    for name in a.act:
        layers = []
        for _ in range(a.depth):
            layers += [nk.Dense(512, W_std=1.5, b_std=0.05), nk.layers.activation_from_name(name)]
        net = nk.serial(*layers, nk.Dense(1, W_std=1.5, b_std=0.05))
        # warm-up of both paths (the pool; the series' Gauss–Hermite rule, built once per process)
        net.kernel(equal[:50], None, ("nngp", "ntk"))
        net.kernel(unequal[:50], None, ("nngp", "ntk"))
        times: dict[str, list[float]] = {"equal": [], "unequal": []}
        for _ in range(a.repeats):
            for key, xs in (("equal", equal), ("unequal", unequal)):
                t = time.perf_counter()
                net.kernel(xs, None, ("nngp", "ntk"))
                times[key].append(time.perf_counter() - t)
        ratios = [u / e for u, e in zip(times["unequal"], times["equal"], strict=True)]
        print(f"| {name} | {spread(times['equal'])} | {spread(times['unequal'])} | {spread(ratios, '{:.2f}')} |",
              flush=True)
    print(f"# load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
