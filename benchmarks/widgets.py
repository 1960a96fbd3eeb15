"""Redraw times of the Jupyter dashboards at their default sizes (issue 5: each redraw < 200 ms).

A redraw is one control change from Python (``set``), timed inside the dashboard: the kernel or
mean-field computation in the Rust core, the matplotlib drawing and the PNG encoding that the
``Image`` widget shows. Prints the median over ``--repeats`` changes of each control.

    python benchmarks/widgets.py [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import ntkrs as nk
import numpy as np
from ntkrs.widgets import KernelExplorer, PhaseDiagram


def sweep(dash, name: str, values: list) -> list[float]:
    times = []
    for v in values:
        n = len(dash.timings)
        dash.set(**{name: v})
        assert len(dash.timings) == n + 1
        times.append(dash.timings[-1])
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0, help="ntkrs threads (0: one per CPU)")
    args = ap.parse_args()
    nk.set_num_threads(args.threads)
    r = args.repeats
    print(f"ntkrs {nk.__version__}, {nk.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    rows = []

    t = time.perf_counter()
    ke = KernelExplorer()
    rows.append(("KernelExplorer()", "construction (first draw)", [time.perf_counter() - t]))
    rows.append(("KernelExplorer()", "W_std slider", sweep(ke, "W_std", list(np.linspace(1.0, 2.0, r)))))
    rows.append(("KernelExplorer()", "b_std slider", sweep(ke, "b_std", list(np.linspace(0.0, 0.5, r)))))
    rows.append(("KernelExplorer()", "depth slider", sweep(ke, "depth", [2 + i % 8 for i in range(r)])))
    rows.append(("KernelExplorer()", "activation (closed forms)",
                 sweep(ke, "activation", (["erf", "gelu", "relu", "leaky_relu", "abs"] * r)[:r])))
    ke.set(activation="relu")
    rows.append(("KernelExplorer(dataset='digits', n_points=1797)", "W_std slider",
                 (ke.set(dataset="digits", n_points=1797), sweep(ke, "W_std", list(np.linspace(1.0, 2.0, 5))))[1]))
    ke.set(dataset="circle", n_points=256, activation="tanh")
    rows.append(("KernelExplorer(activation='tanh')", "W_std slider (numerical activation)",
                 sweep(ke, "W_std", [1.2, 1.4, 1.6])))

    t = time.perf_counter()
    pd = PhaseDiagram()
    rows.append(("PhaseDiagram()", "construction (80×49 grid, erf)", [time.perf_counter() - t]))
    rows.append(("PhaseDiagram()", "σ_w² slider", sweep(pd, "sigma_w2", list(np.linspace(0.5, 3.0, r)))))
    rows.append(("PhaseDiagram()", "σ_b² slider", sweep(pd, "sigma_b2", list(np.linspace(0.0, 0.3, r)))))
    rows.append(("PhaseDiagram()", "depth slider", sweep(pd, "depth", [10 + 5 * i for i in range(r)])))
    rows.append(("PhaseDiagram()", "activation (new grid, closed forms)",
                 sweep(pd, "activation", (["relu", "erf", "gelu"] * r)[:min(r, 6)])))
    pd.set(activation="tanh")
    rows.append(("PhaseDiagram(activation='tanh')", "new grid (16×10, numerical)", [pd.timings[-1]]))
    rows.append(("PhaseDiagram(activation='tanh')", "σ_w² slider (numerical)", sweep(pd, "sigma_w2", [1.2, 1.5, 2.0])))

    print("\n| dashboard | change | median redraw (ms) | min–max (ms) | n |")
    print("|---|---|---|---|---|")
    for dash, change, ts in rows:
        ms = [1e3 * x for x in ts]
        print(f"| `{dash}` | {change} | {statistics.median(ms):.0f} | {min(ms):.0f}–{max(ms):.0f} | {len(ms)} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
