"""Residual and LayerNorm networks against the plain MLP and neural-tangents (issue 11).

    python benchmarks/graphs.py                     # N=4000, d=784, float64, both kernels, 5 runs
    python benchmarks/graphs.py --nt-python /tmp/ntkrs-peer-venv/bin/python   # with neural-tangents
    python benchmarks/graphs.py --quick             # N=1000, 3 runs

Cases (every Dense W_std=1.5, b_std=0.1, width 512): ``mlp``: ``nk.mlp(10, ...)``;
``resnet-pre``: ``nk.resnet(10, ..., layer_norm="pre")`` (an embedding Dense, 10 blocks
``x + Dense(Relu(Dense(LayerNorm(x))))``, a final LayerNorm, a readout; 22 Dense, 10 ReLU, 11
LayerNorm, 10 sums); ``resnet-post`` and ``resnet`` likewise. Each case is timed ``--repeats``
times, interleaved with the others, and reported as the median with its range; ``ratio`` is the
median of the per-round ratios to ``mlp`` (same round, same load). The floor is numpy's ``x @ x.T``
(BLAS syrk: half the products) on the same machine. ``peak growth`` is the growth of this process's
peak RSS during one call (in a fresh child process, after a warm-up call), over the bytes of the
two result arrays. neural-tangents (its own venv, ``benchmarks/setup_peer_venv.sh``) runs the same
network, built from the same stax expression, jitted, warm, median of its repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import ntkrs as nk
import numpy as np

HERE = Path(__file__).resolve().parent
W, B, WIDTH, DEPTH = 1.5, 0.1, 512, 10


def expr(kind: str) -> str:
    """The stax expression of a case (evaluated with ``stax`` = ntkrs here, = neural_tangents there)."""
    d = f"stax.Dense({WIDTH}, W_std={W}, b_std={B})"
    readout = f"stax.Dense(1, W_std={W}, b_std={B})"
    if kind == "mlp":
        return "stax.serial(" + ", ".join([f"{d}, stax.Relu()"] * DEPTH + [readout]) + ")"
    pre, post = kind == "resnet-pre", kind == "resnet-post"
    branch = "stax.serial(" + ("stax.LayerNorm(), " if pre else "") + f"{d}, stax.Relu(), {d})"
    block = (f"stax.serial(stax.FanOut(2), stax.parallel({branch}, stax.Identity()), stax.FanInSum()"
             + (", stax.LayerNorm()" if post else "") + ")")
    return ("stax.serial(" + ", ".join([d] + [block] * DEPTH + (["stax.LayerNorm()"] if pre else [])
                                       + [readout]) + ")")


def network(kind: str) -> nk.Network:
    net = eval(expr(kind), {"__builtins__": {}, "stax": nk})  # noqa: S307 - our own expressions
    shorthand = {"mlp": lambda: nk.mlp(DEPTH, WIDTH, "relu", W, B),
                 "resnet": lambda: nk.resnet(DEPTH, WIDTH, "relu", W, B),
                 "resnet-pre": lambda: nk.resnet(DEPTH, WIDTH, "relu", W, B, layer_norm="pre"),
                 "resnet-post": lambda: nk.resnet(DEPTH, WIDTH, "relu", W, B, layer_norm="post")}[kind]()
    assert repr(net) == repr(shorthand), kind  # the expression is the documented shorthand
    return net


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def memory_child(kind: str, n: int, d: int) -> None:
    x = np.random.default_rng(0).standard_normal((n, d))
    net = network(kind)
    net.kernel(x[:300])
    before = peak_rss()
    k = net.kernel(x)
    print(json.dumps({"growth": peak_rss() - before, "result": k.nngp.nbytes + k.ntk.nbytes}))


def nt_time(python: str, kind: str, n: int, d: int, repeats: int) -> dict:
    spec = {"n": n, "d": d, "dtype": "float64", "get": ["nngp", "ntk"], "repeats": repeats, "seed": 0,
            "expr": expr(kind)}
    out = subprocess.run([python, str(HERE / "_nt_peer.py"), json.dumps(spec)], capture_output=True, text=True,
                         check=False)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"ok": False, "error": out.stderr[-400:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--d", type=int, default=784)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cases", nargs="+", default=["mlp", "resnet-pre", "resnet-post", "resnet"])
    p.add_argument("--nt-python", default=os.environ.get("NTKRS_NT_PYTHON"))
    p.add_argument("--nt-repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.memory_child:
        memory_child(a.memory_child[0], int(a.memory_child[1]), int(a.memory_child[2]))
        return
    if a.quick:
        a.n, a.repeats = 1000, 3
    x = np.random.default_rng(0).standard_normal((a.n, a.d))
    nets = {k: network(k) for k in a.cases}
    for net in nets.values():
        net.kernel(x[:200])  # warm up (thread pool, pages)
    times: dict[str, list[float]] = {k: [] for k in ["floor", *a.cases]}
    for _ in range(a.repeats):
        t = time.perf_counter()
        x @ x.T
        times["floor"].append(time.perf_counter() - t)
        for k, net in nets.items():
            t = time.perf_counter()
            net.kernel(x)
            times[k].append(time.perf_counter() - t)
    print(f"N={a.n} d={a.d} float64, NNGP and NTK, {a.repeats} rounds, {nk.get_num_threads()} threads, "
          f"SIMD {nk._core.simd_level()}, load {os.getloadavg()[0]:.2f}")
    print(f"{'case':<12} {'median s':>9} {'range s':>17} {'x floor':>8} {'ratio to mlp':>22} {'peak growth':>12}")
    for k, ts in times.items():
        med = statistics.median(ts)
        line = f"{k:<12} {med:9.3f} {min(ts):8.3f}–{max(ts):<8.3f} {med / statistics.median(times['floor']):8.2f}"
        if k not in ("floor",):
            ratios = [t / m for t, m in zip(ts, times["mlp"], strict=True)] if "mlp" in times else []
            line += f" {statistics.median(ratios):8.3f} ({min(ratios):.3f}–{max(ratios):.3f})" if ratios else ""
            out = subprocess.run([sys.executable, __file__, "--memory-child", k, str(a.n), str(a.d)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            line += f" {r['growth'] / r['result']:11.3f}x"
        print(line)
    if a.nt_python:
        for k in a.cases:
            r = nt_time(a.nt_python, k, a.n, a.d, a.nt_repeats)
            if r.get("ok"):
                med = statistics.median(times[k])
                print(f"neural-tangents {k}: {r['warm_median_s']:.2f} s warm (runs {r['warm_times_s']}), "
                      f"first call {r['first_call_s']:.1f} s; ntkrs is {r['warm_median_s'] / med:.1f}x faster")
            else:
                print(f"neural-tangents {k}: failed: {r.get('error')}")


if __name__ == "__main__":
    main()
