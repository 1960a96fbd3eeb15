"""Kernels larger than memory: a depth-3 ReLU NTK of N generated 784-dimensional float32 points
written to a .npy file out of core, and the dask path on a LocalCluster against the in-memory call.

Not a timed test. Reports wall time, peak RSS of the process (VmHWM, which includes the inputs
and the interpreter) and where the time went (the core's stats: input Gram, layers, writer).

    python benchmarks/scale.py                       # N=60000 to disk, dask at N=20000
    python benchmarks/scale.py --quick               # N=8000, dask at N=4000
    python benchmarks/scale.py --n 30000 --skip-dask
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

CHILD = r"""
import json, sys, time
import numpy as np
import ntkrs as nk

cfg = json.loads(sys.argv[1])
def kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
x = np.random.default_rng(0).standard_normal((cfg["n"], cfg["d"]), dtype=np.float32)
net = nk.mlp(cfg["depth"], 512, "relu", W_std=1.4, b_std=0.1)
net.kernel(x[:256], get="ntk", dtype=np.float32)  # warm-up
rss_before = kb("VmRSS")
stats = {}
t0 = time.perf_counter()
K = net.kernel(x, get="ntk", dtype=np.float32, out=cfg["out"], memory_limit=cfg["limit"], stats=stats,
               progress=cfg["progress"])
wall = time.perf_counter() - t0
peak = kb("VmHWM")
# spot check: 64 rows against the in-memory cross kernel (other Gram shapes: rounding only), off the
# diagonal (the cross kernel does not know x_i is x_i: float32 ReLU near rho = 1 is ill-conditioned),
# and the diagonal bitwise against diagonal=True
rows = np.linspace(0, cfg["n"] - 1, 64).astype(int)
ref = net.kernel(x[rows], x, get="ntk", dtype=np.float32)
got = np.asarray(K[rows])
diag_ok = bool(np.array_equal(got[np.arange(64), rows], net.kernel(x[rows], get="ntk", diagonal=True,
                                                                    dtype=np.float32)))
got[np.arange(64), rows] = ref[np.arange(64), rows]
err = float(np.abs(got - ref).max() / np.abs(ref).max())
print(json.dumps({"wall_s": wall, "peak_rss": peak, "rss_before": rss_before, "input_bytes": x.nbytes,
                  "stats": stats, "spot_rel_err": err, "diag_exact": diag_ok, "file_bytes": K.nbytes}))
"""


def out_of_core(n: int, d: int, depth: int, limit: str, out_dir: str, progress: bool) -> dict:
    out = os.path.join(out_dir, f"ntk_{n}.npy")
    cfg = {"n": n, "d": d, "depth": depth, "limit": limit, "out": out, "progress": progress}
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    os.remove(out)
    return res


def dask_vs_memory(n: int, d: int, depth: int, chunks: int) -> dict:
    import dask.array as da  # noqa: F401
    import ntkrs as nk
    import ntkrs.dask as nkd
    from distributed import Client, LocalCluster

    x = np.random.default_rng(1).standard_normal((n, d), dtype=np.float32)
    net = nk.mlp(depth, 512, "relu", W_std=1.4, b_std=0.1)
    net.kernel(x[:256], get="ntk", dtype=np.float32)
    t0 = time.perf_counter()
    want = net.kernel(x, get="ntk", dtype=np.float32)
    t_mem = time.perf_counter() - t0
    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster):
            t_start = time.perf_counter() - t0
            K = nkd.kernel(net, x, get="ntk", chunks=chunks, dtype=np.float32)
            t0 = time.perf_counter()
            got = K.compute()
            t_dask = time.perf_counter() - t0
            tmp = tempfile.mkdtemp(prefix="ntkrs-scale-")
            try:
                t0 = time.perf_counter()
                da.to_npy_stack(tmp, K, axis=0)
                t_store = time.perf_counter() - t0
            finally:
                shutil.rmtree(tmp)
    err = float(np.abs(got - want).max() / np.abs(want).max())
    return {"n": n, "chunks": chunks, "memory_s": t_mem, "dask_compute_s": t_dask, "dask_to_npy_stack_s": t_store,
            "cluster_start_s": t_start, "rel_err": err}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=60000, help="points for the out-of-core run (default 60000)")
    p.add_argument("--d", type=int, default=784)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--memory-limit", default="1.5GB", help="memory_limit of the out-of-core call (default 1.5GB)")
    p.add_argument("--out-dir", default=None, help="directory for the .npy (default: a temporary one)")
    p.add_argument("--dask-n", type=int, default=20000, help="points for the dask comparison (default 20000)")
    p.add_argument("--chunks", type=int, default=5000, help="dask rows per block (default 5000)")
    p.add_argument("--skip-dask", action="store_true")
    p.add_argument("--skip-disk", action="store_true")
    p.add_argument("--quick", action="store_true", help="N=8000 and dask N=4000")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.n, args.dask_n, args.chunks = 8000, 4000, 1000
    print(f"uptime: {os.popen('uptime').read().strip()}")
    if not args.skip_disk:
        out_dir = args.out_dir or tempfile.mkdtemp(prefix="ntkrs-scale-", dir="/var/tmp")
        try:
            r = out_of_core(args.n, args.d, args.depth, args.memory_limit, out_dir, args.progress)
        finally:
            if args.out_dir is None:
                shutil.rmtree(out_dir, ignore_errors=True)
        s = r["stats"]
        print(f"out of core: N={args.n} d={args.d} depth-{args.depth} ReLU NTK float32, "
              f"memory_limit={args.memory_limit}: {r['wall_s']:.1f} s, file {r['file_bytes'] / 1e9:.2f} GB")
        print(f"  peak RSS {r['peak_rss'] / 1e9:.2f} GB (before the call {r['rss_before'] / 1e9:.2f} GB, "
              f"of which inputs {r['input_bytes'] / 1e9:.2f} GB)")
        print(f"  compute thread: plan {s['plan_s']:.1f} s, input Gram {s['gram_s']:.1f} s "
              f"({100 * s['gram_s'] / s['total_s']:.0f}%), layers {s['layers_s']:.1f} s "
              f"({100 * s['layers_s'] / s['total_s']:.0f}%), waiting for the writer {s['wait_s']:.1f} s "
              f"({100 * s['wait_s'] / s['total_s']:.0f}%)")
        print(f"  writer thread (overlapped): read-back {s.get('read_s', 0):.1f} s, mirror/transpose "
              f"{s['mirror_s']:.1f} s, writes {s['write_s']:.1f} s; "
              f"{s['panels']} panels of {s['panel_rows']} rows, {s['buffer_sets']} buffer set(s) "
              f"of {s['buffer_bytes'] / 1e6:.0f} MB in all")
        print(f"  spot check (64 rows vs in-memory cross kernel, off-diagonal): max rel err "
              f"{r['spot_rel_err']:.1e}; diagonal equal to diagonal=True: {r['diag_exact']}")
        print(json.dumps(r))
    if not args.skip_dask:
        r = dask_vs_memory(args.dask_n, args.d, args.depth, args.chunks)
        print(f"dask: N={r['n']} chunks={r['chunks']} on LocalCluster(2 processes x 1 thread): compute "
              f"{r['dask_compute_s']:.1f} s, to_npy_stack {r['dask_to_npy_stack_s']:.1f} s vs in-memory "
              f"{r['memory_s']:.1f} s (2 threads); cluster start {r['cluster_start_s']:.1f} s; "
              f"max rel err {r['rel_err']:.1e}")
        print(json.dumps(r))


if __name__ == "__main__":
    main()
