"""Run neural-tangents (NT) as a benchmark / cross-check peer of ntkrs.

This script runs ONLY inside the peer venv made by
``benchmarks/setup_peer_venv.sh`` (default ``/tmp/ntkrs-peer-venv``). It imports
``neural_tangents`` and ``jax`` and never ``ntkrs``, so the two libraries never
share a process. Every mode prints exactly one JSON line on stdout; failures are
reported as ``{"ok": false, "error": "..."}`` with exit status 0 (exit status 2
only for a malformed command line).

Timing mode::

    python _nt_peer.py '{"n": 1000, "d": 784, "depth": 3, "activation": "relu",
                         "dtype": "float64", "get": ["nngp", "ntk"],
                         "repeats": 3, "seed": 0, "W_std": 1.5, "b_std": 0.05,
                         "width": 512}'

builds ``stax.serial(*[Dense(width, W_std, b_std), Act()] * depth,
Dense(1, W_std, b_std))`` (``depth`` = number of hidden Dense+activation blocks;
``width`` only matters for finite-width use, not for the infinite-width kernel),
draws ``x = default_rng(seed).standard_normal((n, d))`` in ``dtype``, jits
``kernel_fn(x, None, get)``, times the first (compiling) call, then ``repeats``
warm calls, and prints::

    {"ok": true, "warm_median_s": ..., "warm_times_s": [...],
     "first_call_s": ..., "peak_rss_mb": ..., "jax": "...", "nt": "...", ...}

Every spec key is optional; the defaults are those of the example above. With
``"expr": "stax.serial(...)"`` the network is that stax expression instead (``stax`` bound to
``neural_tangents.stax``; ``depth``, ``activation``, ``W_std``, ``b_std``, ``width`` unused): the
same string builds the same network in ntkrs (``stax`` bound to ``ntkrs``).

Reference mode::

    python _nt_peer.py --reference inputs.json

computes exact NNGP/NTK matrices for cross-checking ntkrs conventions.
``inputs.json`` holds::

    {"dtype": "float64",            # optional, default float64 (enables x64)
     "x1": [[...], ...],            # (n1, d)
     "x2": [[...], ...] | null,     # (n2, d); optional
     "network": [LAYER, ...]}       # one network, or instead:
     "networks": {"name": NET, ...} # several, NET = [LAYER, ...] or
                                    #   {"layers": [LAYER, ...],
                                    #    "x1": ..., "x2": ...} (input override)

where ``LAYER = {"layer": "Dense", "args": [3], "kwargs": {"W_std": 1.3}}``
names any ``neural_tangents.stax`` layer constructor (``args``/``kwargs``
optional). For each network it returns ``{"ok": true, "x1_x1": {"nngp",
"ntk"}, "x1_x2": {"nngp", "ntk"}}``, where ``x1_x1`` is
``kernel_fn(x1, None)`` and ``x1_x2`` (only when x2 is given) is
``kernel_fn(x1, x2)``; a network NT rejects gives ``{"ok": false, "error"}``.
Non-finite matrix entries are written as null (and ``"nonfinite": true``) so
that the output stays strict JSON. With ``"network"`` the single result is
printed (plus versions); with ``"networks"`` the output is ``{"ok": true,
"jax", "nt", "dtype", "x1", "x2", "results": {name: result}}``.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import sys
import time
import traceback
from typing import Any

DEFAULT_SPEC: dict[str, Any] = {
    "n": 1000,
    "d": 784,
    "depth": 3,
    "activation": "relu",
    "dtype": "float64",
    "get": ["nngp", "ntk"],
    "repeats": 3,
    "seed": 0,
    "W_std": 1.5,
    "b_std": 0.05,
    "width": 512,
    "expr": None,
}

ACTIVATIONS = ("relu", "erf", "gelu")
DTYPES = ("float64", "float32")


def _emit(obj: dict[str, Any]) -> None:
    """Print one strict-JSON line and flush."""
    sys.stdout.write(json.dumps(obj, allow_nan=False) + "\n")
    sys.stdout.flush()


def _error_message(exc: BaseException) -> str:
    """Short one-line-ish description of an exception (first lines only)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    lines = text.splitlines()
    return "\n".join(lines[:5])[:2000]


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _import_nt(dtype: str):
    """Import jax + neural_tangents, enabling x64 first when needed."""
    import jax

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import neural_tangents as nt
    from neural_tangents import stax

    return jax, nt, stax


def _versions(jax, nt) -> dict[str, str]:
    return {"jax": jax.__version__, "nt": nt.__version__}


# --------------------------------------------------------------------------
# Timing mode
# --------------------------------------------------------------------------


def run_timing(spec: dict[str, Any]) -> dict[str, Any]:
    """Time NT's jitted analytic kernel for the MLP described by ``spec``."""
    unknown = set(spec) - set(DEFAULT_SPEC)
    if unknown:
        raise ValueError(f"unknown spec keys: {sorted(unknown)}")
    s = {**DEFAULT_SPEC, **spec}
    if s["activation"] not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}")
    if s["dtype"] not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}")
    get = (s["get"],) if isinstance(s["get"], str) else tuple(s["get"])
    repeats = int(s["repeats"])
    if repeats < 1:
        raise ValueError("repeats must be >= 1")

    jax, nt, stax = _import_nt(s["dtype"])
    import numpy as np

    if s["expr"] is not None:
        _, _, kernel_fn = eval(s["expr"], {"__builtins__": {}, "stax": stax})  # noqa: S307 - our own spec
    else:
        act = {"relu": stax.Relu, "erf": stax.Erf, "gelu": stax.Gelu}[s["activation"]]
        hidden = [stax.Dense(s["width"], W_std=s["W_std"], b_std=s["b_std"]), act()]
        _, _, kernel_fn = stax.serial(
            *(hidden * int(s["depth"])),
            stax.Dense(1, W_std=s["W_std"], b_std=s["b_std"]),
        )
    x = np.random.default_rng(s["seed"]).standard_normal((s["n"], s["d"]))
    x = jax.device_put(x.astype(s["dtype"]))
    kfn = jax.jit(kernel_fn, static_argnames="get")

    t0 = time.perf_counter()
    jax.block_until_ready(kfn(x, None, get=get))
    first_call_s = time.perf_counter() - t0

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(kfn(x, None, get=get))
        times.append(time.perf_counter() - t0)

    return {
        "ok": True,
        "warm_median_s": statistics.median(times),
        "warm_times_s": times,
        "first_call_s": first_call_s,
        "peak_rss_mb": _peak_rss_mb(),
        **_versions(jax, nt),
        "spec": s,
        "backend": jax.default_backend(),
    }


# --------------------------------------------------------------------------
# Reference mode
# --------------------------------------------------------------------------


def _build_network(stax, layers: list[dict[str, Any]]):
    """``stax.serial`` of the layers described as {"layer", "args", "kwargs"}."""
    if not layers:
        raise ValueError("a network needs at least one layer")
    built = []
    for layer in layers:
        extra = set(layer) - {"layer", "args", "kwargs"}
        if extra:
            raise ValueError(f"unknown layer keys: {sorted(extra)}")
        ctor = getattr(stax, layer["layer"])
        built.append(ctor(*layer.get("args", []), **layer.get("kwargs", {})))
    return stax.serial(*built)[2]


def _matrix_to_json(np, m) -> tuple[list[list[float | None]], bool]:
    """Nested lists, non-finite entries as None; also says if any were."""
    a = np.asarray(m, dtype=np.float64)
    rows = [[v if math.isfinite(v) else None for v in row] for row in a.tolist()]
    return rows, not bool(np.isfinite(a).all())


def _kernels(np, kernel_fn, x1, x2) -> tuple[dict[str, Any], bool]:
    k = kernel_fn(x1, x2, ("nngp", "ntk"))
    out: dict[str, Any] = {}
    bad = False
    for name in ("nngp", "ntk"):
        out[name], nonfinite = _matrix_to_json(np, getattr(k, name))
        bad = bad or nonfinite
    return out, bad


def _reference_one(np, stax, net, x1, x2, dtype) -> dict[str, Any]:
    """Kernels of one network; errors are captured, never raised."""
    override = isinstance(net, dict) and ("x1" in net or "x2" in net)
    layers = net.get("layers") if isinstance(net, dict) else net
    try:
        if override:
            if "x1" in net:
                x1 = np.asarray(net["x1"], dtype=dtype)
            if "x2" in net:
                x2 = None if net["x2"] is None else np.asarray(net["x2"], dtype=dtype)
        kernel_fn = _build_network(stax, layers)
        res: dict[str, Any] = {"ok": True, "layers": layers}
        res["x1_x1"], bad = _kernels(np, kernel_fn, x1, None)
        if x2 is not None:
            res["x1_x2"], bad2 = _kernels(np, kernel_fn, x1, x2)
            bad = bad or bad2
        if bad:
            res["nonfinite"] = True
        if override:
            res["inputs"] = {
                "x1": x1.tolist(),
                "x2": None if x2 is None else x2.tolist(),
            }
        return res
    except Exception as exc:  # noqa: BLE001 - any NT failure is data
        return {"ok": False, "error": _error_message(exc), "layers": layers}


def run_reference(path: str) -> dict[str, Any]:
    """Exact NT kernels for the network(s) and inputs described in ``path``."""
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    dtype = spec.get("dtype", "float64")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}")
    if ("network" in spec) == ("networks" in spec):
        raise ValueError('give exactly one of "network" or "networks"')

    jax, nt, stax = _import_nt(dtype)
    import numpy as np

    x1 = np.asarray(spec["x1"], dtype=dtype)
    x2 = spec.get("x2")
    x2 = None if x2 is None else np.asarray(x2, dtype=dtype)
    versions = _versions(jax, nt)

    if "network" in spec:
        return {**_reference_one(np, stax, spec["network"], x1, x2, dtype), **versions}
    results = {
        name: _reference_one(np, stax, net, x1, x2, dtype)
        for name, net in spec["networks"].items()
    }
    return {
        "ok": True,
        **versions,
        "dtype": dtype,
        "x1": x1.tolist(),
        "x2": None if x2 is None else x2.tolist(),
        "results": results,
    }


# --------------------------------------------------------------------------


def serve(argv: list[str], run_timing: Any, run_reference: Any, prog: str) -> int:
    """The command line shared by the peer scripts: a JSON spec (timing) or ``--reference FILE``;
    one JSON line on stdout, failures reported as ``{"ok": false, "error": ...}``."""
    usage = f"usage: {prog} '<json spec>' | {prog} --reference FILE.json"
    if len(argv) == 2 and argv[0] == "--reference":
        runner, arg = run_reference, argv[1]
    elif len(argv) == 1 and not argv[0].startswith("--"):
        runner, arg = (lambda text: run_timing(json.loads(text))), argv[0]
    else:
        print(usage, file=sys.stderr)
        return 2
    try:
        result = runner(arg)
    except Exception as exc:  # noqa: BLE001 - MemoryError, XLA OOM, bad spec
        traceback.print_exc(file=sys.stderr)
        result = {"ok": False, "error": _error_message(exc), "peak_rss_mb": _peak_rss_mb()}
    _emit(result)
    return 0


def main(argv: list[str]) -> int:
    return serve(argv, run_timing, run_reference, "_nt_peer.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
