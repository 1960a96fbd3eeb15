"""Benchmark of the analytic NNGP+NTK kernels against the floor and against neural-tangents.

For every case it prints, measured in the same run on the same machine:

* ``ntkrs``: wall time of ``net.kernel(x, get=("nngp", "ntk"))`` (warm), median and range;
* ``gram``: numpy's ``X @ X.T`` (the floor for the input Gram). numpy recognises ``X @ X.T`` and calls
  BLAS ``syrk``, which computes one triangle only, so both sides compute half the products;
* ``acos``: one ``np.arccos`` pass over N² entries per layer (the elementwise floor), split over as
  many threads as ntkrs uses (numpy's ufuncs release the GIL);
* ``nt``: neural-tangents' warm (jitted) median, when its venv is given (``--nt-python``);
* ratios ``ntkrs/gram``, ``ntkrs/acos`` and ``nt/ntkrs`` (medians of the per-round ratios, the three
  timed in the same round, interleaved);
* with ``--memory``: the growth of the peak RSS of a fresh process over its RSS just before the call
  (VmHWM after − VmRSS before), divided by the size of the result arrays.

The network is ``mlp(depth, 512, act, W_std=1.5, b_std=0.05)``. Examples::

    python benchmarks/analytic.py --quick
    python benchmarks/analytic.py --n 4000 --d 784 --depth 3 --act relu --dtype float64 \\
        --nt-python /tmp/ntkrs-peer-venv/bin/python --memory

neural-tangents is a peer only: ``bash benchmarks/setup_peer_venv.sh /tmp/ntkrs-peer-venv`` makes
its own venv; it is never imported here.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _stats import spread

HERE = Path(__file__).resolve().parent


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def make_net(act: str, depth: int):
    import ntkrs as nk

    return nk.mlp(depth, 512, act, W_std=1.5, b_std=0.05)


SPHERE = False


def data(n: int, d: int, dtype: str) -> np.ndarray:
    """Standard normal points; with --sphere, scaled to norm √d (every sample has variance 1)."""
    x = np.random.default_rng(0).standard_normal((n, d))
    if SPHERE:
        x *= np.sqrt(d) / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(dtype)


def rss_bytes(field: str) -> int:
    """``VmHWM`` (peak resident set) or ``VmRSS`` (current) of this process, from /proc (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(spec: dict) -> None:
    """Run one kernel in this (fresh) process and print RSS growth / result size."""
    x = data(spec["n"], spec["d"], spec["dtype"])
    net = make_net(spec["act"], spec["depth"])
    net.kernel(x[:8])  # load everything once
    # Growth from the RSS now (not from the peak so far, which may be higher and would hide part of
    # the call's growth) to the peak after the call; VmHWM rather than ru_maxrss, which survives
    # fork + exec and would carry the parent's peak
    before = rss_bytes("VmRSS")
    k = net.kernel(x, dtype=spec["dtype"])
    peak = rss_bytes("VmHWM")
    result = k.nngp.nbytes + k.ntk.nbytes
    print(json.dumps({"growth_bytes": peak - before, "result_bytes": result}))


def measure_memory(spec: dict) -> float | None:
    out = subprocess.run([sys.executable, __file__, "--memory-child", json.dumps(spec)],
                         capture_output=True, text=True, check=False)
    try:
        r = json.loads(out.stdout.strip().splitlines()[-1])
        return r["growth_bytes"] / r["result_bytes"]
    except (IndexError, ValueError, KeyError):
        print(out.stderr, file=sys.stderr)
        return None


def measure_nt(python: str, spec: dict, repeats: int) -> float | None:
    nt_spec = {"n": spec["n"], "d": spec["d"], "depth": spec["depth"], "activation": spec["act"],
               "dtype": spec["dtype"], "get": ["nngp", "ntk"], "repeats": repeats, "seed": 0,
               "W_std": 1.5, "b_std": 0.05, "width": 512}
    out = subprocess.run([python, str(HERE / "_nt_peer.py"), json.dumps(nt_spec)],
                         capture_output=True, text=True, check=False)
    try:
        r = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print(f"neural-tangents failed: {out.stderr[-500:]}", file=sys.stderr)
        return None
    return r["warm_median_s"] if r.get("ok") else None


def time_case(spec: dict, repeats: int) -> dict[str, list[float]]:
    """Times of ntkrs, of numpy's x @ x.T and of the threaded arccos floor, interleaved by round."""
    from concurrent.futures import ThreadPoolExecutor

    import ntkrs as nk

    n, dtype = spec["n"], spec["dtype"]
    x = data(n, spec["d"], dtype)
    net = make_net(spec["act"], spec["depth"])
    buf = np.random.default_rng(1).uniform(-1, 1, size=n * n).astype(dtype)
    out = np.empty_like(buf)
    threads = nk.show_config(print_out=False)["threads"]
    chunks = [(buf[i::threads], out[i::threads]) for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        def acos_floor():
            for _ in range(spec["depth"]):
                list(pool.map(lambda c: np.arccos(c[0], out=c[1]), chunks))

        fns = {"ntkrs": lambda: net.kernel(x, dtype=dtype), "gram": lambda: x @ x.T, "acos": acos_floor}
        for fn in fns.values():
            fn()  # warm-up
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():
                times[k].append(timed(fn))
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[1000, 4000, 8000])
    p.add_argument("--d", type=int, nargs="+", default=[64, 784])
    p.add_argument("--depth", type=int, nargs="+", default=[1, 3, 10])
    p.add_argument("--act", nargs="+", default=["relu", "erf", "gelu"])
    p.add_argument("--dtype", nargs="+", default=["float64", "float32"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="N=1000 and 4000, d=784, depth 3, relu, both dtypes")
    p.add_argument("--nt-python", default=os.environ.get("NTKRS_NT_PYTHON"),
                   help="python of a venv with neural-tangents (see setup_peer_venv.sh)")
    p.add_argument("--memory", action="store_true", help="also measure peak RSS growth / result size")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--sphere", action="store_true",
                   help="inputs of equal norm (the fast path of numerical activations)")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    a = p.parse_args()
    global SPHERE
    SPHERE = a.sphere
    if a.memory_child:
        memory_child(json.loads(a.memory_child))
        return
    if a.quick:
        a.n, a.d, a.depth, a.act = [1000, 4000], [784], [3], ["relu"]

    import ntkrs as nk

    cfg = nk.show_config(print_out=False)
    print(f"# ntkrs {cfg['version']}  simd={cfg['simd']}  threads={cfg['threads']}  numpy {np.__version__}  "
          f"repeats={a.repeats}: median (min–max)  load {os.getloadavg()[0]:.2f}")
    head = ("case", "ntkrs s", "gram s", "acos s", "nt s", "ntkrs/gram", "ntkrs/acos", "nt/ntkrs", "mem/result")
    rows = []
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    else:
        print("{:<34} {:>22} {:>22} {:>22} {:>8} {:>18} {:>18} {:>9} {:>10}".format(*head))
    for n, d, depth, act, dtype in itertools.product(a.n, a.d, a.depth, a.act, a.dtype):
        spec = {"n": n, "d": d, "depth": depth, "act": act, "dtype": dtype}
        times = time_case(spec, a.repeats)
        t_ours = statistics.median(times["ntkrs"])
        t_nt = measure_nt(a.nt_python, spec, a.repeats) if a.nt_python else None
        mem = measure_memory(spec) if a.memory else None
        case = f"N={n} d={d} L={depth} {act} {dtype[5:]}" + (" sphere" if a.sphere else "")

        def fmt(v, f="{:.3f}"):
            return "-" if v is None else f.format(v)

        def ratio(k, times=times):
            return spread([o / f for o, f in zip(times["ntkrs"], times[k], strict=True)], "{:.2f}")

        row = (case, spread(times["ntkrs"]), spread(times["gram"]), spread(times["acos"]), fmt(t_nt),
               ratio("gram"), ratio("acos"), fmt(None if t_nt is None else t_nt / t_ours, "{:.1f}x"),
               fmt(mem, "{:.2f}"))
        rows.append(row)
        if a.markdown:
            print("| " + " | ".join(row) + " |", flush=True)
        else:
            print("{:<34} {:>22} {:>22} {:>22} {:>8} {:>18} {:>18} {:>9} {:>10}".format(*row), flush=True)


if __name__ == "__main__":
    main()
