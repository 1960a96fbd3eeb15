"""Benchmark of the empirical (finite-width) NTK against its GEMM floor and against neural-tangents.

The network is ``nk.mlp(3, 2048, "relu", W_std=1.5, b_std=0.05, out_dim=10)`` on standard-normal
inputs of shape (N, 784), parameters ``net.init(784, seed=0, dtype)``; the kernel is
``net.empirical_ntk(params, x)`` with ``trace_outputs=True`` ("traced", shape (N, N)) or ``False``
("full", shape (N, N, 10, 10)). For every case it prints, measured in the same run:

* ``ntkrs``: the first call and the median of ``--repeats`` warm calls;
* ``floor``: the FLOPs of the structured algorithm (forward products, backward signals, and the
  symmetric halves of the per-layer Grams; the breakdown is printed) divided by numpy's measured
  GEMM rate in that dtype, measured on ``(2048 x 2048) @ (2048 x N*O)`` (median of repeats);
* components of ntkrs: ``apply`` (the forward pass alone) and ``empirical_nngp`` (forward pass
  plus the output Gram), to show where the time goes;
* with ``--numpy-struct``: the same algorithm written in numpy (``numpy_structured``), timed stage
  by stage: a measured floor for each stage, and one more cross-check;
* neural-tangents (``--nt-python``, default ``/tmp/ntkrs-peer-venv/bin/python`` when it exists):
  ``nt.empirical_ntk_fn(f, trace_axes=(-1,) or (), vmap_axes=0, implementation=...)`` jitted, for
  each of ``JACOBIAN_CONTRACTION``, ``NTK_VECTOR_PRODUCTS``, ``STRUCTURED_DERIVATIVES``, each in its
  own subprocess of the peer venv (``_nt_peer_empirical.py``) with a timeout, with the same
  parameters and inputs (written to a temporary ``.npz``). An implementation whose estimated
  memory exceeds ``--nt-mem-limit-gb`` (default 16) is skipped with the estimate as the reason;
  a crash, an out-of-memory or a timeout is reported as a failure with its reason.
  ``STRUCTURED_DERIVATIVES`` of neural-tangents 0.6.5 fails under jax 0.4.30 (it reads
  ``jax.interpreters.ad.source_info_util``, which jax no longer exports); ``SD*`` is the same
  implementation run with the two missing module attributes restored (see
  ``_nt_peer_empirical._compat_shim``), NT's code otherwise unchanged;
* the relative max error ``max|K_ntkrs - K_nt| / max|K_nt|`` against every NT implementation
  that ran;
* ratios ``ntkrs/floor`` and ``NT_best/ntkrs``; and the 1-minute load average (``uptime``)
  before and after the case (the machine is shared: 2 cores).

Examples::

    python benchmarks/empirical.py --quick
    python benchmarks/empirical.py --n 128 512 1024 --dtype float32 float64 --mode traced full \\
        --repeats 3 --markdown

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
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_NT_PYTHON = "/tmp/ntkrs-peer-venv/bin/python"

D, WIDTH, DEPTH, OUT = 784, 2048, 3, 10
W_STD, B_STD = 1.5, 0.05
NT_IMPLS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES", "SD*")
SHORT = {"JACOBIAN_CONTRACTION": "JC", "NTK_VECTOR_PRODUCTS": "NVP", "STRUCTURED_DERIVATIVES": "SD", "SD*": "SD*"}


def load1() -> float:
    return os.getloadavg()[0]


def median_time(fn, repeats: int) -> tuple[float, float]:
    """(first call, median of ``repeats`` further calls), wall-clock seconds."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return first, statistics.median(times)


def widths() -> list[int]:
    """n_0 = d, the hidden widths, n_L = O."""
    return [D] + [WIDTH] * DEPTH + [OUT]


def n_params(w: list[int]) -> int:
    return sum(a * b + b for a, b in itertools.pairwise(w))


def flops(n: int, mode: str, w: list[int]) -> dict[str, float]:
    """FLOPs of the structured empirical NTK of k(x, x) (x2 = None), per component.

    * forward: ``2·N·Σ_l n_{l-1}·n_l`` (every Dense layer's product; elementwise work not counted);
    * backward: the signals ``Δ_l = W_{l+1}·Δ_{l+1}`` of shape ``n_l × N·O`` for ``l = 1..L-1``
      (``Δ_L`` is the identity): ``2·N·O·Σ_{l<L} n_l·n_{l+1}``;
    * gram_inputs: per layer the symmetric half of ``h_{l-1}·h_{l-1}ᵀ``: ``N²·Σ_l n_{l-1}``;
    * gram_signals: per layer the symmetric half of the Gram of the signals: traced (the Gram of
      the per-sample flattened ``n_l·O`` signals) ``N²·O·Σ_l n_l``; full (the Gram of the
      ``N·O`` columns of length ``n_l``) ``N²·O²·Σ_l n_l``.
    """
    o = w[-1]
    layers = list(itertools.pairwise(w))
    out = {
        "forward": 2.0 * n * sum(a * b for a, b in layers),
        "backward": 2.0 * n * o * sum(a * b for a, b in layers[1:]),
        "gram_inputs": float(n) * n * sum(a for a, _ in layers),
        "gram_signals": float(n) * n * (o if mode == "traced" else o * o) * sum(b for _, b in layers),
    }
    out["total"] = sum(out.values())
    return out


def numpy_structured(params, x: np.ndarray, trace: bool) -> tuple[np.ndarray, dict[str, float]]:
    """The same structured algorithm in numpy (OpenBLAS), k(x, x), timed stage by stage.

    Rows are samples (numpy's natural layout); ``a @ a.T`` is a symmetric rank-k update (numpy
    calls ``syrk``: half the FLOPs), like ntkrs' triangular Grams. Stages: ``forward`` (products,
    bias, ReLU and its derivative), ``backward`` (``Δ_l = s·Δ_{l+1}·W_{l+1}ᵀ ⊙ φ'``, rows
    ``(sample, output)``), ``gram_inputs``, ``gram_signals``, ``combine`` (the factor
    ``s²·G + β²`` times the signal Gram, reordered to (N, N, O, O) when full, summed over layers).
    """
    dt = x.dtype.type
    n, o = x.shape[0], params[-1][0].shape[1]
    t: dict[str, float] = dict.fromkeys(("forward", "backward", "gram_inputs", "gram_signals", "combine"), 0.0)
    t0 = time.perf_counter()
    hs, ds = [x], []
    for i, (w, b) in enumerate(params):
        z = hs[-1] @ w
        z *= dt(W_STD / np.sqrt(w.shape[0]))
        z += dt(B_STD) * b
        if i < len(params) - 1:
            ds.append(z > 0)
            hs.append(np.maximum(z, 0, out=z))
        else:
            hs.append(z)
    t["forward"] = time.perf_counter() - t0
    k = None
    delta = np.broadcast_to(np.eye(o, dtype=x.dtype), (n, o, o)).reshape(n * o, o)  # rows (a, o)
    for l in range(len(params) - 1, -1, -1):
        w = params[l][0]
        s = W_STD / np.sqrt(w.shape[0])
        t0 = time.perf_counter()
        g = hs[l] @ hs[l].T
        g *= dt(s * s)
        g += dt(B_STD * B_STD)
        t1 = time.perf_counter()
        if trace:
            dd = delta.reshape(n, -1)
            sg = dd @ dd.T
            sg *= dt(1.0 / o)
        else:
            sg = delta @ delta.T
        t2 = time.perf_counter()
        if trace:
            term = sg * g
        else:
            term = sg.reshape(n, o, n, o).transpose(0, 2, 1, 3) * g[:, :, None, None]
        if k is None:
            k = np.ascontiguousarray(term)
        else:
            k += term
        t3 = time.perf_counter()
        t["gram_inputs"] += t1 - t0
        t["gram_signals"] += t2 - t1
        t["combine"] += t3 - t2
        if l > 0:
            t0 = time.perf_counter()
            nd = delta @ w.T
            nd *= dt(s)
            nd.reshape(n, o, -1)[...] *= ds[l - 1][:, None, :]
            delta = nd
            t["backward"] += time.perf_counter() - t0
    return k, t


def gemm_rate(n: int, dtype: str, repeats: int) -> float:
    """numpy's GEMM rate (FLOP/s) on (2048 x 2048) @ (2048 x N·O), median of ``repeats``."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((WIDTH, WIDTH)).astype(dtype)
    b = rng.standard_normal((WIDTH, n * OUT)).astype(dtype)
    _, t = median_time(lambda: a @ b, max(3, repeats))
    return 2.0 * WIDTH * WIDTH * n * OUT / t


def nt_memory_estimate(impl: str, n: int, mode: str, itemsize: int) -> float:
    """Rough peak memory (bytes) of one NT implementation, for the skip decision.

    JACOBIAN_CONTRACTION instantiates the Jacobian, ``N·O·P`` entries (measured here: 2.8 GB at
    N=8 and 5.3 GB at N=16 in float32, P ≈ 10M, i.e. 0.8·N·O·P·4 bytes); NTK_VECTOR_PRODUCTS
    holds about half of that (1.5 GB and 2.8 GB measured); STRUCTURED_DERIVATIVES holds the
    per-layer signals and a few kernel-sized arrays.
    """
    w = widths()
    p = n_params(w)
    result = n * n * (1 if mode == "traced" else OUT * OUT)
    if impl == "JACOBIAN_CONTRACTION":
        return float(n) * OUT * p * itemsize
    if impl == "NTK_VECTOR_PRODUCTS":
        return 0.5 * n * OUT * p * itemsize
    return (4.0 * result + 2.0 * n * OUT * max(w) * len(w)) * itemsize


def nt_layers() -> list[dict]:
    dense = {"layer": "Dense", "kwargs": {"W_std": W_STD, "b_std": B_STD}}
    hidden = [{**dense, "args": [WIDTH]}, {"layer": "Relu"}]
    return hidden * DEPTH + [{**dense, "args": [OUT]}]


def run_nt(python: str, spec: dict, timeout: float) -> dict:
    """One NT measurement in a fresh process of the peer venv; never raises."""
    peer_spec = {k: v for k, v in spec.items() if k != "impl_label"}
    try:
        out = subprocess.run([python, str(HERE / "_nt_peer_empirical.py"), json.dumps(peer_spec)],
                             capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timeout after {timeout:.0f} s"}
    try:
        r = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = out.stderr.strip().splitlines()[-1:] or [""]
        how = f"killed by signal {-out.returncode}" if out.returncode < 0 else f"exit status {out.returncode}"
        hint = " (out of memory?)" if out.returncode in (-9, 137) else ""
        return {"ok": False, "error": f"{how}{hint}: {tail[0][:300]}"}
    return r


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a64 - b64)) / np.max(np.abs(b64)))


def run_case(n: int, dtype: str, mode: str, a, tmp: Path, rates: dict, sd_failure: dict) -> dict:
    import ntkrs as nk

    trace = mode == "traced"
    load_before = load1()
    net = nk.mlp(DEPTH, WIDTH, "relu", W_std=W_STD, b_std=B_STD, out_dim=OUT)
    params = net.init(D, seed=0, dtype=np.dtype(dtype))
    x = np.random.default_rng(0).standard_normal((n, D)).astype(dtype)
    res: dict = {"n": n, "dtype": dtype, "mode": mode, "load_before": load_before}

    kern = {}

    def ours():
        kern["k"] = net.empirical_ntk(params, x, trace_outputs=trace)

    res["ntkrs_first_s"], res["ntkrs_s"] = median_time(ours, a.repeats)
    k_ours = kern.pop("k")
    if not a.no_components:
        _, res["apply_s"] = median_time(lambda: net.apply(params, x), a.repeats)
        _, res["nngp_s"] = median_time(lambda: net.empirical_nngp(params, x, trace_outputs=True), a.repeats)

    key = (n, dtype)
    if key not in rates:
        rates[key] = gemm_rate(n, dtype, a.repeats)
    res["gemm_rate"] = rates[key]
    res["flops"] = flops(n, mode, widths())
    res["floor_s"] = res["flops"]["total"] / rates[key]
    res["floor_parts_s"] = {k: v / rates[key] for k, v in res["flops"].items() if k != "total"}

    if a.numpy_struct:
        k_np, stages = numpy_structured(params, x, trace)  # warm-up, and the cross-check
        res["numpy_rel_err"] = rel_err(k_ours, k_np)
        del k_np
        runs = [numpy_structured(params, x, trace)[1] for _ in range(a.repeats)]
        res["numpy_stages_s"] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        res["numpy_s"] = statistics.median(sum(r.values()) for r in runs)

    res["nt"] = {}
    if a.nt_python:
        data = tmp / f"case_{n}_{dtype}.npz"
        if not data.exists():
            arrays = {"x": x}
            for i, (w, b) in enumerate(params):
                arrays[f"W{i}"] = w
                if b is not None:
                    arrays[f"b{i}"] = b
            np.savez(data, **arrays)
        itemsize = np.dtype(dtype).itemsize
        for impl in a.nt_impl:
            real = "STRUCTURED_DERIVATIVES" if impl == "SD*" else impl
            est = nt_memory_estimate(real, n, mode, itemsize)
            if est > a.nt_mem_limit_gb * 1e9:
                res["nt"][impl] = {"ok": False, "skipped": True,
                                   "error": f"skipped: needs ~{est / 1e9:.0f} GB (> {a.nt_mem_limit_gb:g} GB)"}
                continue
            if impl == "STRUCTURED_DERIVATIVES" and sd_failure:
                res["nt"][impl] = {"ok": False, "error": sd_failure["error"] + " (as in the first case; not rerun)"}
                continue
            out = tmp / f"nt_{impl}_{n}_{dtype}_{mode}.npy"
            spec = {"data": str(data), "layers": nt_layers(), "implementation": real, "trace": trace,
                    "kernel": "ntk", "dtype": dtype, "repeats": a.repeats, "out": str(out),
                    "compat_shim": impl == "SD*"}
            r = run_nt(a.nt_python, spec, a.nt_timeout)
            if r.get("ok") and out.exists():
                k_nt = np.load(out)
                r["rel_err"] = rel_err(k_ours, k_nt) if k_nt.shape == k_ours.shape else float("nan")
                out.unlink()
            elif impl == "STRUCTURED_DERIVATIVES" and "AttributeError" in r.get("error", ""):
                sd_failure["error"] = r["error"]
            res["nt"][impl] = r
    res["load_after"] = load1()
    return res


def fmt(v, f="{:.3f}") -> str:
    return "-" if v is None else f.format(v)


def row(r: dict) -> tuple[str, ...]:
    ok = {k: v for k, v in r["nt"].items() if v.get("ok")}
    best = min(ok.items(), key=lambda kv: kv[1]["warm_median_s"]) if ok else None
    nt_cells = []
    for impl in NT_IMPLS:
        v = r["nt"].get(impl)
        if v is None:
            nt_cells.append("-")
        elif v.get("ok"):
            nt_cells.append(f"{v['warm_median_s']:.3f}")
        else:
            nt_cells.append("skip" if v.get("skipped") else "fail")
    errs = [v["rel_err"] for v in ok.values() if "rel_err" in v]
    case = f"N={r['n']} {r['dtype'][5:]} {r['mode']}"
    return (case, fmt(r["ntkrs_first_s"]), fmt(r["ntkrs_s"]), fmt(r["floor_s"]),
            fmt(r["ntkrs_s"] / r["floor_s"], "{:.2f}"), fmt(r.get("apply_s")), fmt(r.get("nngp_s")),
            fmt(r.get("numpy_s")),
            *nt_cells, "-" if best is None else SHORT[best[0]],
            "-" if best is None else f"{best[1]['warm_median_s'] / r['ntkrs_s']:.1f}x",
            "-" if best is None else f"{best[1]['first_call_s']:.2f}",
            "-" if not errs else f"{max(errs):.1e}", f"{r['rate_gflops']:.0f}",
            f"{r['load_before']:.1f}/{r['load_after']:.1f}")


HEAD = ("case", "ntkrs 1st", "ntkrs s", "floor s", "ntkrs/floor", "apply s", "nngp s", "numpy s",
        *(f"NT {SHORT[i]} s" for i in NT_IMPLS), "NT best", "NT best/ntkrs", "NT best 1st", "max rel err",
        "GFLOP/s", "load")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[128, 512, 1024])
    p.add_argument("--dtype", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--mode", nargs="+", default=["traced", "full"], choices=["traced", "full"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="N=128 and 512, float32, traced; 2 repeats")
    p.add_argument("--no-nt", action="store_true", help="do not run neural-tangents")
    p.add_argument("--nt-python", default=os.environ.get("NTKRS_NT_PYTHON", DEFAULT_NT_PYTHON),
                   help="python of the neural-tangents venv (see setup_peer_venv.sh)")
    p.add_argument("--nt-impl", nargs="+", default=list(NT_IMPLS), choices=list(NT_IMPLS))
    p.add_argument("--nt-timeout", type=float, default=300.0, help="seconds per NT subprocess")
    p.add_argument("--nt-mem-limit-gb", type=float, default=16.0,
                   help="skip an NT implementation whose estimated memory exceeds this")
    p.add_argument("--no-components", action="store_true", help="do not time apply / empirical_nngp")
    p.add_argument("--numpy-struct", action="store_true",
                   help="also time the same algorithm written in numpy, stage by stage")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--json", help="also write every measurement to this file")
    a = p.parse_args()
    if a.quick:
        a.n, a.dtype, a.mode, a.repeats = [128, 512], ["float32"], ["traced"], min(a.repeats, 2)
    if a.no_nt or not (a.nt_python and Path(a.nt_python).exists()):
        if not a.no_nt:
            print(f"# neural-tangents venv not found ({a.nt_python}); running without it", file=sys.stderr)
        a.nt_python = None

    import ntkrs as nk

    cfg = nk.show_config(print_out=False)
    w = widths()
    print(f"# ntkrs {cfg['version']}  simd={cfg['simd']}  threads={cfg['threads']}  numpy {np.__version__}  "
          f"repeats={a.repeats} (medians)  load at start {load1():.2f}")
    print(f"# network: mlp({DEPTH}, {WIDTH}, relu, W_std={W_STD}, b_std={B_STD}, out_dim={OUT}), d={D}, "
          f"widths {w}, P={n_params(w):,} parameters")
    if a.markdown:
        print("| " + " | ".join(HEAD) + " |")
        print("|" + "---|" * len(HEAD))
    rates: dict = {}
    sd_failure: dict = {}
    results = []
    with tempfile.TemporaryDirectory(prefix="ntkrs-empirical-") as tmpdir:
        for n, dtype, mode in itertools.product(a.n, a.dtype, a.mode):
            r = run_case(n, dtype, mode, a, Path(tmpdir), rates, sd_failure)
            r["rate_gflops"] = r["gemm_rate"] / 1e9
            results.append(r)
            cells = row(r)
            if a.markdown:
                print("| " + " | ".join(cells) + " |", flush=True)
            else:
                print("  ".join(cells), flush=True)
    print()
    print("# floor breakdown (seconds at the measured GEMM rate) and NT notes")
    for r in results:
        parts = ", ".join(f"{k} {v:.3f}" for k, v in r["floor_parts_s"].items())
        print(f"# N={r['n']} {r['dtype']} {r['mode']}: {parts}; FLOPs {r['flops']['total']:.3g} "
              f"at {r['rate_gflops']:.0f} GFLOP/s")
        if "numpy_stages_s" in r:
            parts = ", ".join(f"{k} {v:.3f}" for k, v in r["numpy_stages_s"].items())
            print(f"#   numpy structured: {r['numpy_s']:.3f} s = {parts}; rel err vs ntkrs {r['numpy_rel_err']:.1e}")
        for impl, v in r["nt"].items():
            if v.get("ok"):
                times = [round(t, 3) for t in v["warm_times_s"]]
                print(f"#   NT {impl}: warm {v['warm_median_s']:.3f} s (times {times}),"
                      f" first call {v['first_call_s']:.2f} s, peak RSS {v['peak_rss_mb']:.0f} MB,"
                      f" rel err vs ntkrs {v.get('rel_err', float('nan')):.2e}")
            else:
                print(f"#   NT {impl}: {v.get('error')}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
