"""Redraw times of the Jupyter dashboards at their default sizes (issue 5: each redraw < 200 ms).

A redraw is one control change from Python (``set``): the kernel, mean-field, empirical-NTK or training
computation in the Rust core, the matplotlib drawing and the PNG encoding that the ``Image`` widget shows. Prints, per
control, the median over ``--repeats`` changes of the wall time and of the process CPU time (all
threads). On a shared, loaded machine the wall time is inflated by waiting for a core; the CPU time
is not, and bounds the wall time of an unloaded machine from above wherever nothing waits on I/O.

    python benchmarks/widgets.py [--repeats 15] [--threads 2] [--only ConvergenceExplorer TrainingExplorer]
    python benchmarks/widgets.py --at-73 [--repeats 3]    # issue 15, item 3: each control to 73% of its range

``--at-73`` drives every control of every dashboard (fresh, at its defaults) to 73% of its range and back,
``--repeats`` times, and prints each control's median update and each dashboard's median over all of them
(target: ≤ 1 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import ntkrs as nk
import numpy as np
from ntkrs.widgets import ConvergenceExplorer, KernelExplorer, PhaseDiagram, SpectrumExplorer, TrainingExplorer


def sweep(dash, name: str, values: list) -> list[tuple[float, float]]:
    """(wall, cpu) seconds of each ``set``."""
    times = []
    for v in values:
        t, c = time.perf_counter(), time.process_time()
        dash.set(**{name: v})
        times.append((time.perf_counter() - t, time.process_time() - c))
    return times


def at_fraction(control, frac: float = 0.73):
    """The value ``frac`` of the way through a control's range (sliders) or options (selections)."""
    import ipywidgets as W

    if isinstance(control, W.FloatLogSlider):
        return control.base ** (control.min + frac * (control.max - control.min))
    if isinstance(control, (W.IntSlider, W.FloatSlider, W.BoundedIntText, W.BoundedFloatText)):
        v = control.min + frac * (control.max - control.min)
        return int(round(v)) if isinstance(control, (W.IntSlider, W.BoundedIntText)) else v
    if isinstance(control, W.Checkbox):
        return not control.value
    options = list(control.options)
    option = options[int(round(frac * (len(options) - 1)))]
    return option[1] if isinstance(option, tuple) else option


def drive_to_73(make, repeats: int) -> list[tuple[str, list[tuple[float, float]]]]:
    """(control, [(wall, cpu), ...]) for each control of a fresh ``make()`` driven to 73% and back."""
    dash = make()
    out = []
    for name, control in dash.controls.items():
        if getattr(control, "disabled", False):
            continue
        start, target = control.value, at_fraction(control)
        if target == start:
            continue
        times = []
        for _ in range(repeats):
            times += sweep(dash, name, [target, start])
        out.append((f"{name} → {target:.4g}" if isinstance(target, float) else f"{name} → {target}", times))
    return out


def timed(make):
    t, c = time.perf_counter(), time.process_time()
    out = make()
    return out, [(time.perf_counter() - t, time.process_time() - c)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0, help="ntkrs threads (0: one per CPU)")
    ap.add_argument("--only", nargs="*", default=None,
                    help="dashboards to time (default: all): KernelExplorer PhaseDiagram ConvergenceExplorer "
                         "TrainingExplorer SpectrumExplorer")
    ap.add_argument("--at-73", action="store_true", help="drive each control to 73%% of its range and back")
    args = ap.parse_args()
    nk.set_num_threads(args.threads)
    if args.at_73:
        print(f"ntkrs {nk.__version__}, {nk.get_num_threads()} threads, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f} at start; each control to 73% of its range and back, "
              f"{args.repeats}×")
        print("\n| dashboard | control | median wall (ms) | wall min–max (ms) | median CPU (ms) | n |")
        print("|---|---|---|---|---|---|")
        for make in (KernelExplorer, PhaseDiagram, ConvergenceExplorer, TrainingExplorer, SpectrumExplorer):
            if args.only is not None and make.__name__ not in args.only:
                continue
            every = []
            for control, times in drive_to_73(make, args.repeats):
                every += times
                walls, cpus = [1000 * w for w, _ in times], [1000 * c for _, c in times]
                print(f"| `{make.__name__}()` | {control} | {statistics.median(walls):.0f} | "
                      f"{min(walls):.0f}–{max(walls):.0f} | {statistics.median(cpus):.0f} | {len(times)} |", flush=True)
            walls = [1000 * w for w, _ in every]
            print(f"| **`{make.__name__}()`** | **all controls** | **{statistics.median(walls):.0f}** | "
                  f"{min(walls):.0f}–{max(walls):.0f} | {statistics.median([1000 * c for _, c in every]):.0f} | "
                  f"{len(every)} |", flush=True)
        print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
        return
    r = args.repeats
    print(f"ntkrs {nk.__version__}, {nk.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    rows = []

    def want(name: str) -> bool:
        return args.only is None or name in args.only

    if want("KernelExplorer"):
        ke, ts = timed(KernelExplorer)
        rows.append(("KernelExplorer()", "construction (first draw)", ts))
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
        ke.set(activation="relu", dataset="digits", n_points=256)
        rows.append(("KernelExplorer(network='CNN (Flatten)')", "switch from the MLP (256 digit images)",
                     sweep(ke, "network", ["CNN (Flatten)"])))
        rows.append(("KernelExplorer(network='CNN (Flatten)')", "W_std slider (256 digit images)",
                     sweep(ke, "W_std", list(np.linspace(1.0, 2.0, r)))))
        rows.append(("KernelExplorer(network='CNN (GAP)')", "switch (n_points lowered to 48)",
                     sweep(ke, "network", ["CNN (GAP)"])))
        rows.append(("KernelExplorer(network='CNN (GAP)')", "W_std slider (48 digit images)",
                     sweep(ke, "W_std", list(np.linspace(1.0, 2.0, r)))))
        rows.append(("KernelExplorer(network='CNN (GAP)')", "depth slider (48 digit images)",
                     sweep(ke, "depth", [2 + i % 4 for i in range(r)])))

    if want("PhaseDiagram"):
        pd, ts = timed(PhaseDiagram)
        rows.append(("PhaseDiagram()", "construction (80×49 grid, erf)", ts))
        rows.append(("PhaseDiagram()", "σ_w² slider", sweep(pd, "sigma_w2", list(np.linspace(0.5, 3.0, r)))))
        rows.append(("PhaseDiagram()", "σ_b² slider", sweep(pd, "sigma_b2", list(np.linspace(0.0, 0.3, r)))))
        rows.append(("PhaseDiagram()", "depth slider", sweep(pd, "depth", [10 + 5 * i for i in range(r)])))
        rows.append(("PhaseDiagram()", "activation (new grid, closed forms)",
                     sweep(pd, "activation", (["relu", "erf", "gelu"] * r)[:min(r, 6)])))
        rows.append(("PhaseDiagram(activation='tanh')", "new grid (16×10, numerical)",
                     sweep(pd, "activation", ["tanh"])))
        rows.append(("PhaseDiagram(activation='tanh')", "σ_w² slider (numerical)",
                     sweep(pd, "sigma_w2", [1.2, 1.5, 2.0])))

    if want("ConvergenceExplorer"):
        ce, ts = timed(ConvergenceExplorer)
        rows.append(("ConvergenceExplorer()", "construction (ladder 16…1024 × 16 inits)", ts))
        widths = ([128, 256, 512, 64, 32] * r)[:r]
        rows.append(("ConvergenceExplorer()", "width slider (ladder widths: NTKs cached)", sweep(ce, "width", widths)))
        rows.append(("ConvergenceExplorer()", "inits slider", sweep(ce, "n_inits", [3 + i % 8 for i in range(r)])))
        ce.set(width=256, n_inits=5)
        rows.append(("ConvergenceExplorer()", "W_std (new network: ladder recomputed)",
                     sweep(ce, "W_std", [1.4, 1.6, 1.5])))
        ce.set(n_inits=5)
        rows.append(("ConvergenceExplorer()", "width 2048 (5 new inits)", sweep(ce, "width", [2048])))
        rows.append(("ConvergenceExplorer(width=2048)", "inits slider (+1 new init)", sweep(ce, "n_inits", [6, 7, 8])))

    if want("TrainingExplorer"):
        te, ts = timed(TrainingExplorer)
        rows.append(("TrainingExplorer()", "construction (5 nets × 3000 steps)", ts))
        times = [t for t in te.data["times"] if t > 0]
        rows.append(("TrainingExplorer()", "time slider", sweep(te, "time", [times[(7 * i) % len(times)]
                                                                           for i in range(r)])))
        rows.append(("TrainingExplorer()", "networks slider (+1 net)", sweep(te, "n_nets", [6, 7, 8])))
        rows.append(("TrainingExplorer()", "width (retrain 8 nets)", sweep(te, "width", [1024])))
        rows.append(("TrainingExplorer()", "η/η_max (retrain 8 nets)", sweep(te, "lr_fraction", [0.8])))
        te.set(width=128)
        rows.append(("TrainingExplorer(width=128)", "depth 2, 3 (new ensemble, retrain 8 nets)",
                     sweep(te, "depth", [2, 3])))
        rows.append(("TrainingExplorer(width=128, depth=3)", "time slider",
                     sweep(te, "time", [times[(7 * i) % len(times)] for i in range(r)])))

    if want("SpectrumExplorer"):
        se, ts = timed(SpectrumExplorer)
        rows.append(("SpectrumExplorer()", "construction (spectrum, 6 draws × 7 sizes)", ts))
        rows.append(("SpectrumExplorer()", "ridge slider (re-solve only)",
                     sweep(se, "ridge", ([0.001, 0.01, 0.1, 1.0, 0.0] * r)[:r])))
        rows.append(("SpectrumExplorer()", "noise slider (re-solve only)",
                     sweep(se, "noise", list(np.linspace(0.0, 0.5, r)))))
        rows.append(("SpectrumExplorer()", "W_std slider (new spectrum and draws)",
                     sweep(se, "W_std", list(np.linspace(1.0, 2.0, r)))))
        rows.append(("SpectrumExplorer()", "depth slider", sweep(se, "depth", [1 + i % 6 for i in range(r)])))
        rows.append(("SpectrumExplorer()", "dim slider", sweep(se, "dim", [2 + (7 * i) % 40 for i in range(r)])))
        rows.append(("SpectrumExplorer()", "activation (closed forms)",
                     sweep(se, "activation", (["erf", "gelu", "relu", "leaky_relu", "abs"] * r)[:r])))
        se.set(activation="relu", dim=10)
        rows.append(("SpectrumExplorer(activation='tanh')", "W_std slider (numerical activation)",
                     (se.set(activation="tanh"), sweep(se, "W_std", [1.2, 1.4, 1.6]))[1]))

    print("\n| dashboard | change | median wall (ms) | wall min–max (ms) | median CPU (ms) | n |")
    print("|---|---|---|---|---|---|")
    for dash, change, ts in rows:
        wall = [1e3 * w for w, _ in ts]
        cpu = [1e3 * c for _, c in ts]
        print(f"| `{dash}` | {change} | {statistics.median(wall):.0f} | {min(wall):.0f}–{max(wall):.0f} | "
              f"{statistics.median(cpu):.0f} | {len(ts)} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
