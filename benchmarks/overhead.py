"""Per-call time of small kernels (issue 15, item 4): where a call's fixed cost goes.

For each case (``mlp(depth, 512, act, W_std=1.5, b_std=0.05)`` on ``N × d`` inputs, NNGP and NTK) it
prints, in milliseconds, the median and range over ``--rounds`` rounds of the per-call median of
``--calls`` warm calls:

* ``ntkrs``: ``net.kernel(x)`` as a user calls it (argument checks in Python, the core);
* ``core``: the extension's entry point alone (no Python-side checks);
* ``threads=1``: ``net.kernel(x, threads=1)`` (the calling thread only);
* ``gram``: numpy's ``x @ x.T`` (the floor for the input Gram);
* ``numpy-call``: ``np.add(x[:1], 0)``, the cost of any NumPy call from Python.

Small calls run inline on the calling thread with the GIL released (no worker thread, no pool
wake-up) when their estimated work is below about a millisecond; larger ones run on a worker
thread while the caller polls Ctrl-C every 20 ms. Example::

    python benchmarks/overhead.py
    python benchmarks/overhead.py --n 1 10 100 --d 784 --act relu erf --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from _stats import spread


def per_call(fn, calls: int) -> float:
    """Median seconds of ``calls`` calls of ``fn``."""
    ts = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[1, 10, 50, 100])
    p.add_argument("--d", type=int, nargs="+", default=[10, 784])
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--act", nargs="+", default=["relu", "erf"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=200)
    args = p.parse_args()

    import ntkrs as nk

    cfg = nk.show_config(print_out=False)
    print(f"ntkrs {cfg['version']}, SIMD {cfg['simd']}, {cfg['threads']} threads, "
          f"load {os.getloadavg()[0]:.2f}; ms per call: median (range) over {args.rounds} rounds "
          f"of the median of {args.calls} calls")
    print(f"{'act':>5} {'N':>5} {'d':>4} | {'ntkrs':>22} {'core':>22} {'threads=1':>22} {'gram':>22} "
          f"{'numpy-call':>22}")
    rng = np.random.default_rng(0)
    for act in args.act:
        net = nk.mlp(args.depth, 512, act, W_std=1.5, b_std=0.05)
        for d in args.d:
            for n in args.n:
                x = rng.standard_normal((n, d))
                core = net._net  # the extension's network: its entry point without Python's checks

                def full(x=x, net=net):
                    return net.kernel(x)

                def bare(x=x, core=core):
                    return core.kernel(x, None, nngp=True, ntk=True, diagonal=False, tile_size=0,
                                       progress=None, threads=0)

                def one(x=x, net=net):
                    return net.kernel(x, threads=1)

                def gram(x=x):
                    return x @ x.T

                def npcall(x=x):
                    return np.add(x[:1], 0.0)

                fns = {"ntkrs": full, "core": bare, "threads=1": one, "gram": gram, "numpy-call": npcall}
                for fn in fns.values():
                    fn()
                times: dict[str, list[float]] = {k: [] for k in fns}
                for _ in range(args.rounds):
                    for k, fn in fns.items():  # interleaved: every round times each once
                        times[k].append(per_call(fn, args.calls))
                print(f"{act:>5} {n:>5} {d:>4} | " + " ".join(f"{spread(times[k], scale=1e3):>22}" for k in fns))


if __name__ == "__main__":
    main()
