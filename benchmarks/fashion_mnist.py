"""Convolutional kernels on real images (issue 12, item 4): kernel regression with the CNN-GP and the
CNTK (a Flatten readout and a GlobalAvgPool readout) against the fully-connected NNGP/NTK on
Fashion-MNIST, test accuracy and time side by side.

Networks (every hidden layer ``W_std=1.4, b_std=0.1``, ReLU; infinite width, so the 64 channels and
512 units only name the architecture):

* ``mlp``: ``nk.mlp(depth=3, width=512, activation="relu", W_std=1.4, b_std=0.1)`` on flat pixels;
* ``cnn-flatten``: ``3 × [Conv(64, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), Relu()]``,
  ``Flatten()``, ``Dense(1, W_std=1.4, b_std=0.1)`` (the issue's Flatten network);
* ``cnn-gap``: the same with ``GlobalAvgPool()`` (the issue's GAP network).

Each case (network, input resolution, training size) runs in a fresh process that reads the IDX
files, takes the first ``n`` training and the first ``--test`` test images (Fashion-MNIST's files are
already shuffled), optionally averages ``p × p`` pixel blocks (``--pools``; 28×28 → 14×14 for
``p = 2``, 7×7 for ``p = 4``), computes both kernels (train-train and test-train, one pass each, float64)
and solves with ``ntkrs.predict.gp_inference`` (exact Cholesky of ``K + ε·I``, ``ε = diag_reg ×`` mean
diagonal) on one-hot targets minus 0.1; the prediction is the argmax of the 10 outputs. Reported: test
accuracy of the NNGP and the NTK posterior means, kernel seconds (both kernel passes), solve seconds
(both factorisations and predictions, numpy's BLAS on ``--blas-threads``), the process's wall time
(data reading included), its peak RSS (VmHWM), the 1-minute load average when the case ended, and the
commit.

Cost. The MLP kernel is a matrix product (``N²·784``); the Flatten readout needs only equal-position
covariances (``N²·HW`` per layer); GlobalAvgPool needs every pair of positions, ``N²·(HW)²`` per layer,
so at 28×28 it is about 800× the Flatten network per pair of images. Measured on the 2-core machine
(loaded, load average 4–7): Flatten at 28×28 about 25 µs per pair of images, GAP at 14×14 about
1.5 ms, GAP at 7×7 about 0.11 ms, GAP at 28×28 40–80 ms. A case costs ``n(n+1)/2 + n·m`` pairs.

The default run (6 minutes on the 2 cores at load average 4.5–6.7; most of it the GAP case and the
2,000-image Flatten case) is ``--sizes 1000 2000 --test 1000 --pools 1 4 --gap-sizes 1000
--gap-pools 4``: the MLP and the Flatten CNN at 1k and 2k training images at 28×28 and at 7×7, the GAP
CNN at 1k images at 7×7. The issue asks for training sizes 1k–20k, GAP and Flatten at full
resolution; the commands, with estimates from the per-pair costs above (memory: two ``n × n`` float64
kernels, two ``m × n``, and the two Cholesky factors: about 16 GB at n = 20k, m = 10k)::

    # MLP and Flatten CNN, 1k-20k (Flatten at 28x28: about 4.5 h, most of it at 20k)
    python benchmarks/fashion_mnist.py --sizes 1000 2000 5000 10000 20000 --test 10000 --gap-sizes 0
    # GAP CNN at 14x14, 1k-5k (about 13 h)
    python benchmarks/fashion_mnist.py --sizes 0 --gap-sizes 1000 2000 5000 --gap-pools 2 --test 2000
    # GAP CNN at full resolution, 1k (about 17 h)
    python benchmarks/fashion_mnist.py --sizes 0 --gap-sizes 1000 --gap-pools 1 --test 1000

Data (nothing is bundled or downloaded): ``apt-get install dataset-fashion-mnist`` (IDX files in
``/usr/share/datasets/fashion-mnist``), or ``--data DIR`` with the four ``*-ubyte.gz`` files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
t_start = time.perf_counter()
import numpy as np
import scipy.linalg  # noqa: F401 (imported before the clock: gp_inference's first solve would import it)
import ntkrs as nk
from ntkrs import stax
from ntkrs.datasets import load_fashion_mnist
from ntkrs.predict import gp_inference

cfg = json.loads(sys.argv[1])
def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
d = load_fashion_mnist(cfg["path"], flatten=False)  # float32 pixel/255
p = cfg["pool"]
def pool(x):
    n, h, w, c = x.shape
    return x.astype(np.float64).reshape(n, h // p, p, w // p, p, c).mean(axis=(2, 4))
x, xt = pool(d.x_train[:cfg["n"]]), pool(d.x_test[:cfg["m"]])
labels, lt = d.y_train[:cfg["n"]], d.y_test[:cfg["m"]]
del d
y = np.eye(10)[labels] - 0.1
conv = lambda: (stax.Conv(64, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu())
if cfg["net"] == "mlp":
    net = nk.mlp(depth=3, width=512, activation="relu", W_std=1.4, b_std=0.1)
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
else:
    readout = stax.Flatten() if cfg["net"] == "cnn-flatten" else stax.GlobalAvgPool()
    net = stax.serial(*conv(), *conv(), *conv(), readout, stax.Dense(1, W_std=1.4, b_std=0.1))
t_loaded = time.perf_counter()
k = net.kernel(x, get=("nngp", "ntk"), progress=cfg["progress"])
kt = net.kernel(xt, x, get=("nngp", "ntk"), progress=cfg["progress"])
t_kernel = time.perf_counter()
from threadpoolctl import threadpool_limits
with threadpool_limits(cfg["blas_threads"]):
    pred = gp_inference(k, y, diag_reg=cfg["diag_reg"])(get=("nngp", "ntk"), k_test_train=kt)
t_solve = time.perf_counter()
print(json.dumps({"acc_nngp": float(np.mean(pred.nngp.argmax(1) == lt)),
                  "acc_ntk": float(np.mean(pred.ntk.argmax(1) == lt)),
                  "shape": list(x.shape[1:]), "load_s": t_loaded - t_start, "kernel_s": t_kernel - t_loaded,
                  "solve_s": t_solve - t_kernel, "wall_s": t_solve - t_start, "peak_rss": peak_rss(),
                  "threads": nk.get_num_threads()}))
"""

NETS = ("mlp", "cnn-flatten", "cnn-gap")


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def run_case(cfg: dict) -> dict:
    """One case in a fresh process (its own peak RSS); a failure is reported, not fatal."""
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], stdout=subprocess.PIPE,
                       stderr=None if cfg["progress"] else subprocess.PIPE, text=True)
    if r.returncode != 0:
        tail = (r.stderr or "").strip().splitlines()[-8:]
        return {"error": f"exit status {r.returncode}: " + " / ".join(tail)}
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["load"] = os.getloadavg()[0]
    return out


def span(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:.1f}" if len(values) == 1 else f"{med:.1f} ({min(values):.1f}–{max(values):.1f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None,
                   help="Fashion-MNIST IDX directory (default /usr/share/datasets/fashion-mnist)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000],
                   help="training sizes of the MLP and the Flatten CNN (0: none)")
    p.add_argument("--gap-sizes", type=int, nargs="+", default=[1000], help="training sizes of the GAP CNN (0: none)")
    p.add_argument("--pools", type=int, nargs="+", default=[1, 4],
                   help="pixel-block averages for the MLP and Flatten CNN: 1 = 28×28, 2 = 14×14, 4 = 7×7")
    p.add_argument("--gap-pools", type=int, nargs="+", default=[4], help="pixel-block averages for the GAP CNN")
    p.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    p.add_argument("--test", type=int, default=1000, help="test images (the first of the 10,000)")
    p.add_argument("--diag-reg", type=float, default=1e-4, help="ridge relative to the mean diagonal")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="numpy BLAS threads of the solve (default 1: on 2 loaded cores OpenBLAS's 2 threads, spinning "
                        "right after the core's, made a 2,000-image solve 10 s instead of 0.3-1.7 s)")
    p.add_argument("--repeats", type=int, default=1, help="runs per case (median and range of the times)")
    p.add_argument("--progress", action="store_true", help="progress bars of the kernels on stderr")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    a = p.parse_args()
    for name in ("sizes", "gap_sizes"):
        if any(n < 0 or n > 60000 for n in getattr(a, name)):
            p.error(f"--{name.replace('_', '-')}: sizes between 0 and 60000")
    for f in a.pools + a.gap_pools:
        if f not in (1, 2, 4, 7, 14, 28):
            p.error(f"pool factor {f}: must divide 28 (1, 2, 4, 7, 14 or 28)")
    if not 1 <= a.test <= 10000 or a.repeats < 1 or a.blas_threads < 1:
        p.error("--test: between 1 and 10000; --repeats, --blas-threads: at least 1")

    from ntkrs.datasets import FASHION_MNIST_DIR, load_fashion_mnist

    path = a.data or FASHION_MNIST_DIR
    try:
        load_fashion_mnist(path)  # fails here, once, with how to get the files
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "?"
    except OSError:
        commit = "?"
    import ntkrs as nk

    print(f"ntkrs {nk.__version__} at {commit}; {platform.machine()}, {os.cpu_count()} CPUs, threads "
          f"{nk.get_num_threads()}; python {platform.python_version()}; load average {load()}")
    print(f"Fashion-MNIST from {path}; {a.test} test images; diag_reg {a.diag_reg}; float64; exact solve "
          f"(ntkrs.predict.gp_inference, {a.blas_threads} BLAS thread(s))", flush=True)

    cases = []
    for net in a.nets:
        sizes, pools = (a.gap_sizes, a.gap_pools) if net == "cnn-gap" else (a.sizes, a.pools)
        cases += [(net, f, n) for f in pools for n in sizes if n > 0]
    cases.sort(key=lambda c: (c[1], c[2], NETS.index(c[0])))
    rows = []
    for net, f, n in cases:
        cfg = {"path": path, "net": net, "pool": f, "n": n, "m": a.test, "diag_reg": a.diag_reg,
               "progress": a.progress, "blas_threads": a.blas_threads}
        runs = [run_case(cfg) for _ in range(a.repeats)]
        bad = [r["error"] for r in runs if "error" in r]
        side = 28 // f
        if bad:
            print(f"{net} {side}×{side} n={n}: FAILED {bad[0]}  [load {load()}]", flush=True)
            rows.append({"net": net, "side": side, "n": n, "error": bad[0]})
            continue
        r = runs[-1]
        row = {"net": net, "side": side, "n": n, "m": a.test, "acc_nngp": r["acc_nngp"], "acc_ntk": r["acc_ntk"],
               "kernel_s": [x["kernel_s"] for x in runs], "solve_s": [x["solve_s"] for x in runs],
               "wall_s": [x["wall_s"] for x in runs], "peak_rss": max(x["peak_rss"] for x in runs),
               "load": max(x["load"] for x in runs), "commit": commit}
        rows.append(row)
        print(f"{net} {side}×{side} n={n}: NNGP {r['acc_nngp']:.2%}, NTK {r['acc_ntk']:.2%}, kernel "
              f"{span(row['kernel_s'])} s, solve {span(row['solve_s'])} s, wall {span(row['wall_s'])} s, peak RSS "
              f"{row['peak_rss'] / 2**30:.2f} GiB  [load {load()}]", flush=True)

    print(f"\nload average at the end: {load()}\n")
    print("| net | input | n_train | n_test | NNGP/CNN-GP acc | NTK/CNTK acc | kernel s | solve s | wall s | "
          "peak RSS | load (1 min) | commit |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['net']} | {r['side']}×{r['side']} | {r['n']:,} | failed: {r['error']} | | | | | | | | |")
            continue
        print(f"| {r['net']} | {r['side']}×{r['side']} | {r['n']:,} | {r['m']:,} | {r['acc_nngp']:.2%} | "
              f"**{r['acc_ntk']:.2%}** | {span(r['kernel_s'])} | {span(r['solve_s'])} | {span(r['wall_s'])} | "
              f"{r['peak_rss'] / 2**30:.2f} GiB | {r['load']:.2f} | {r['commit']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"commit": commit, "args": vars(a), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
