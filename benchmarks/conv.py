"""Convolutional kernels (issue 12) against neural-tangents, measured in the same run.

    python benchmarks/conv.py                                   # both networks, both sizes, 5 runs
    python benchmarks/conv.py --nt-python /tmp/ntkrs-peer-venv/bin/python    # with neural-tangents
    python benchmarks/conv.py --quick                           # the smaller size of each, 3 runs
    python benchmarks/conv.py --dtype float32                   # ntkrs in float32 (NT stays float64)

Cases (the issue's two networks; every Conv ``Conv(64, (3, 3), padding="SAME", W_std=1.4,
b_std=0.1)``, then ``Relu``; three such blocks):

* ``gap``: ``... + GlobalAvgPool() + Dense(1, W_std=1.4, b_std=0.1)`` on 16×16×3 images, N = 32
  and 64 (every pair of positions: 256² lanes per pair of images);
* ``flatten``: ``... + Flatten() + Dense(1, W_std=1.4, b_std=0.1)`` on 28×28×1 images, N = 250 and
  500 (equal positions only: 784 lanes per pair).

Inputs ``default_rng(0).standard_normal((N, H, W, C))`` in both libraries; both compute
``kernel(x, None)`` with NNGP and NTK. ntkrs is timed ``--repeats`` times (the first call included:
ntkrs compiles nothing), reported as the median and range; neural-tangents (its own venv,
``benchmarks/setup_peer_venv.sh``; jitted, float64) as the median and range of its warm calls (its
first, compiling call reported separately). ``ratio`` = NT's median / ntkrs's median. ``max|diff|``
is the largest entrywise difference of NT's last NNGP and NTK from ntkrs's, relative to the largest
entry, off the diagonal (``off``) and on it (``diag``): on the diagonal of ``k(x, x)`` a ReLU sees
ρ = 1 exactly at equal positions, where neural-tangents' own rounding (its equal-position
covariances and variances come from different arithmetic) moves its NTK by up to ~3e-9 relative
(tests/test_conv_nt.py checks ntkrs's diagonal against the exact value to 1e-13). ``peak growth``
is the growth of this process's peak RSS during one ntkrs call (in a fresh child process, after a
warm-up call on 4 images), against the bytes of the two results. Threads: ntkrs uses every core
(``ntkrs.set_num_threads`` to change); NT its default XLA CPU threads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ntkrs
import numpy as np

HERE = Path(__file__).resolve().parent
CONV = 'stax.Conv(64, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu()'
READOUT = {"gap": "stax.GlobalAvgPool()", "flatten": "stax.Flatten()"}
IMAGE = {"gap": (16, 16, 3), "flatten": (28, 28, 1)}
SIZES = {"gap": (32, 64), "flatten": (250, 500)}


def expr(kind: str) -> str:
    """The stax expression of a case (``stax`` = ntkrs here, = neural_tangents in the peer)."""
    return f"stax.serial({CONV}, {CONV}, {CONV}, {READOUT[kind]}, stax.Dense(1, W_std=1.4, b_std=0.1))"


def network(kind: str):
    return eval(expr(kind), {"__builtins__": {}, "stax": ntkrs})  # noqa: S307 - our own expressions


def images(kind: str, n: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, *IMAGE[kind]))


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def memory_child(kind: str, n: int, dtype: str) -> None:
    x = images(kind, n).astype(dtype)
    net = network(kind)
    net.kernel(x[:4], get=("nngp", "ntk"))
    before = peak_rss()
    k = net.kernel(x, get=("nngp", "ntk"))
    print(json.dumps({"growth": peak_rss() - before, "result": k.nngp.nbytes + k.ntk.nbytes}))


def memory(kind: str, n: int, dtype: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", json.dumps([kind, n, dtype])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def nt_run(python: str, kind: str, n: int, repeats: int, save: str) -> dict:
    spec = {"expr": expr(kind), "shape": [n, *IMAGE[kind]], "seed": 0, "dtype": "float64",
            "repeats": repeats, "save": save}
    out = subprocess.run([python, str(HERE / "_nt_peer_conv.py"), json.dumps(spec)],
                         capture_output=True, text=True, check=False)
    lines = out.stdout.strip().splitlines()
    if not lines:
        return {"ok": False, "error": out.stderr.strip()[-400:]}
    return json.loads(lines[-1])


def fmt(ts: list[float]) -> str:
    return f"{statistics.median(ts):8.3f} s [{min(ts):.3f}, {max(ts):.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nt-python", default=None,
                    help="python of a venv with neural-tangents (see setup_peer_venv.sh)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="the smaller size of each network, 3 runs")
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument("--cases", default="gap,flatten", help="comma-separated subset of gap,flatten")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS child processes")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(*json.loads(args.memory_child))
        return
    repeats = 3 if args.quick else args.repeats
    load = os.getloadavg()
    print(f"ntkrs {ntkrs.__version__} ({ntkrs.__file__}), numpy {np.__version__}, {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, ntkrs dtype {args.dtype}, {repeats} runs")
    print(f"{'case':>8} {'N':>5} {'ntkrs median [range]':>30} {'NT warm median [range]':>30} {'NT 1st':>8} "
          f"{'ratio':>7} {'max|diff| off':>14} {'diag':>9} {'peak growth / result':>22}")
    for kind in args.cases.split(","):
        for n in SIZES[kind][:1] if args.quick else SIZES[kind]:
            x = images(kind, n).astype(args.dtype)
            net = network(kind)
            times, k = [], None
            for _ in range(repeats):
                t = time.perf_counter()
                k = net.kernel(x, get=("nngp", "ntk"))
                times.append(time.perf_counter() - t)
            nt_cols, ratio, diff_rel, diff_abs = f"{'-':>30} {'-':>8}", "-", "-", "-"
            if args.nt_python:
                with tempfile.TemporaryDirectory() as tmp:
                    save = os.path.join(tmp, "nt.npz")
                    r = nt_run(args.nt_python, kind, n, repeats, save)
                    if r.get("ok"):
                        nt_cols = f"{fmt(r['warm_times_s']):>30} {r['first_call_s']:7.2f}s"
                        ratio = f"{r['warm_median_s'] / statistics.median(times):6.1f}x"
                        with np.load(save) as z:
                            off = ~np.eye(n, dtype=bool)
                            scale = max(np.abs(z[w]).max() for w in ("nngp", "ntk"))
                            d_off = max(np.abs(z[w] - getattr(k, w))[off].max() for w in ("nngp", "ntk"))
                            d_diag = max(np.abs(np.diag(z[w]) - np.diag(getattr(k, w))).max() for w in ("nngp", "ntk"))
                        diff_rel, diff_abs = f"{d_off / scale:.1e}", f"{d_diag / scale:.1e}"
                    else:
                        nt_cols = f"{'NT failed: ' + str(r.get('error'))[:60]:>39}"
            mem = "-"
            if not args.no_memory:
                m = memory(kind, n, args.dtype)
                mem = f"{m['growth'] / 2**20:.1f} / {m['result'] / 2**20:.2f} MiB"
            print(f"{kind:>8} {n:>5} {fmt(times):>30} {nt_cols} {ratio:>7} {diff_rel:>14} {diff_abs:>9} {mem:>22}",
                  flush=True)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
