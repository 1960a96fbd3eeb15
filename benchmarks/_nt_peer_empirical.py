"""Run neural-tangents' (NT) empirical (finite-width) kernels as a peer of ntkrs.

Like ``_nt_peer.py`` (whose helpers it reuses), this script runs ONLY inside the peer venv made
by ``benchmarks/setup_peer_venv.sh`` (default ``/tmp/ntkrs-peer-venv``); it imports ``jax`` and
``neural_tangents``, never ``ntkrs``. Every mode prints exactly one JSON line on stdout; a failure
is ``{"ok": false, "error": "..."}`` with exit status 0 (2 only for a malformed command line).

Timing mode (driven by ``benchmarks/empirical.py``)::

    python _nt_peer_empirical.py '{"data": "case.npz", "layers": [LAYER, ...],
        "implementation": "STRUCTURED_DERIVATIVES", "trace": true, "kernel": "ntk",
        "dtype": "float32", "repeats": 3, "out": "nt_kernel.npy"}'

``case.npz`` holds the inputs ``x`` (N, d) and the parameters ``W0, b0, W1, b1, ...`` of the
Dense layers in ntkrs' layout (``W`` (in, out), ``b`` (out,), a missing ``b{i}`` = no bias); they
are put into NT's ``serial`` layout (``(W, b[None, :])`` per Dense, ``()`` per activation).
``LAYER = {"layer": "Dense", "args": [2048], "kwargs": {...}}`` as in ``_nt_peer.py``. The
script jits ``x -> empirical_ntk_fn(f, trace_axes=(-1,) if trace else (), vmap_axes=0,
implementation=...)(x, None, params)`` (or ``empirical_nngp_fn`` for ``"kernel": "nngp"``),
times the first (compiling) call, then ``repeats`` warm calls, optionally saves the last
result to ``out`` (``.npy``) for the cross-check, and prints::

    {"ok": true, "warm_median_s", "warm_times_s", "first_call_s", "peak_rss_mb", "shape", ...}

Reference mode (``benchmarks/nt_empirical_reference_inputs.py`` writes the input)::

    python _nt_peer_empirical.py --reference inputs.json > tests/data/nt_empirical_reference.json

``inputs.json`` = ``{"dtype": "float64", "networks": {name: {"layers": [...], "params":
[[W, b | null], ...], "x1": [[...]], "x2": [[...]]}}}``. For each network it records, for
``(x1, None)`` and ``(x1, x2)``, NT's empirical NTK and NNGP, traced (``trace_axes=(-1,)``) and
full (``trace_axes=()``), computed with ``JACOBIAN_CONTRACTION`` (the simplest and most reliable
implementation), plus the largest relative difference of the other two implementations from it
(``STRUCTURED_DERIVATIVES`` with ``_compat_shim``; an implementation's error message if it fails).
Layer names are ``stax``'s, plus ``Tanh``/``Sigmoid``/``Softplus``/``Silu`` (see ``_build``).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from _nt_peer import _error_message, _import_nt, _peak_rss_mb, _versions, serve

IMPLEMENTATIONS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES")


# activations NT has no layer for, built as ``stax.Elementwise(fn)`` (finite width only)
ELEMENTWISE = {"Tanh": "tanh", "Sigmoid": "sigmoid", "Softplus": "softplus", "Silu": "silu"}


def _build(stax, layers: list[dict[str, Any]]):
    """``stax.serial`` of the layers described as {"layer", "args", "kwargs"}: (init, apply).

    ``Tanh``, ``Sigmoid``, ``Softplus`` and ``Silu`` (ntkrs names) become ``stax.Elementwise(fn)``
    with ``jax.numpy.tanh`` / ``jax.nn.sigmoid`` / ``jax.nn.softplus`` / ``jax.nn.silu``."""
    import jax

    built = []
    for layer in layers:
        name = layer["layer"]
        if name in ELEMENTWISE:
            fn = jax.numpy.tanh if name == "Tanh" else getattr(jax.nn, ELEMENTWISE[name])
            built.append(stax.Elementwise(fn=fn))
            continue
        ctor = getattr(stax, name)
        built.append(ctor(*layer.get("args", []), **layer.get("kwargs", {})))
    init_fn, apply_fn, _ = stax.serial(*built)
    return init_fn, apply_fn


def _nt_params(jnp, layers: list[dict[str, Any]], pairs: list[tuple[Any, Any]], dtype: str) -> list:
    """ntkrs-layout ``[(W, b | None), ...]`` (one per Dense) -> NT's serial layout."""
    out, k = [], 0
    for layer in layers:
        if layer["layer"] == "Dense":
            w, b = pairs[k]
            k += 1
            w = jnp.asarray(w, dtype=dtype)
            b = None if b is None else jnp.asarray(b, dtype=dtype).reshape(1, -1)
            out.append((w, b))
        else:
            out.append(())
    if k != len(pairs):
        raise ValueError(f"{len(pairs)} parameter pairs for {k} Dense layers")
    return out


def _compat_shim() -> None:
    """Restore ``jax.interpreters.ad.source_info_util`` and ``.config``, which NT 0.6.5's
    STRUCTURED_DERIVATIVES uses but jax no longer re-exports from that module (deprecated in jax
    PR #18117, gone in 0.4.30): without them that implementation fails with ``AttributeError:
    module 'jax.interpreters.ad' has no attribute 'source_info_util'``. They are the very modules
    jax itself provides (``jax._src.source_info_util`` and the public ``jax.config``, read for
    ``jax_enable_checks``); NT's code is unchanged."""
    import jax
    import jax.interpreters.ad as ad
    from jax._src import source_info_util

    if not hasattr(ad, "source_info_util"):
        ad.source_info_util = source_info_util
    if not hasattr(ad, "config"):
        ad.config = jax.config


def _kernel_fn(nt, apply_fn, kernel: str, trace: bool, implementation: str):
    trace_axes = (-1,) if trace else ()
    if kernel == "nngp":
        return nt.empirical_nngp_fn(apply_fn, trace_axes=trace_axes)
    if kernel != "ntk":
        raise ValueError(f"kernel must be 'ntk' or 'nngp', got {kernel!r}")
    impl = getattr(nt.NtkImplementation, implementation)
    return nt.empirical_ntk_fn(apply_fn, trace_axes=trace_axes, vmap_axes=0, implementation=impl)


# --------------------------------------------------------------------------
# Timing mode
# --------------------------------------------------------------------------


def run_timing(spec: dict[str, Any]) -> dict[str, Any]:
    dtype = spec.get("dtype", "float64")
    jax, nt, stax = _import_nt(dtype)
    import jax.numpy as jnp
    import numpy as np

    layers = spec["layers"]
    with np.load(spec["data"]) as z:
        x = np.asarray(z["x"], dtype=dtype)
        n_dense = sum(1 for layer in layers if layer["layer"] == "Dense")
        pairs = [(z[f"W{i}"], z[f"b{i}"] if f"b{i}" in z.files else None) for i in range(n_dense)]
    params = _nt_params(jnp, layers, pairs, dtype)
    _, apply_fn = _build(stax, layers)
    if spec.get("compat_shim"):
        _compat_shim()
    if spec.get("matmul_precision"):
        jax.config.update("jax_default_matmul_precision", spec["matmul_precision"])
    impl = spec.get("implementation", "STRUCTURED_DERIVATIVES")
    kfn = _kernel_fn(nt, apply_fn, spec.get("kernel", "ntk"), bool(spec.get("trace", True)), impl)
    fn = lambda xx, pp: kfn(xx, None, pp)  # noqa: E731
    if spec.get("jit", True):
        fn = jax.jit(fn)
    xd = jax.device_put(x)

    t0 = time.perf_counter()
    k = jax.block_until_ready(fn(xd, params))
    first_call_s = time.perf_counter() - t0
    times = []
    for _ in range(int(spec.get("repeats", 3))):
        t0 = time.perf_counter()
        k = jax.block_until_ready(fn(xd, params))
        times.append(time.perf_counter() - t0)
    k = np.asarray(k)
    if spec.get("out"):
        np.save(spec["out"], k)
    return {
        "ok": True,
        "warm_median_s": statistics.median(times) if times else None,
        "warm_times_s": times,
        "first_call_s": first_call_s,
        "peak_rss_mb": _peak_rss_mb(),
        "shape": list(k.shape),
        "dtype": str(k.dtype),
        "implementation": impl,
        **_versions(jax, nt),
        "backend": jax.default_backend(),
    }


# --------------------------------------------------------------------------
# Reference mode
# --------------------------------------------------------------------------


def _rel(np, a, b) -> float:
    scale = float(np.max(np.abs(b)))
    return float(np.max(np.abs(a - b))) / scale if scale > 0 else float(np.max(np.abs(a - b)))


def _reference_one(jax, nt, stax, np, jnp, net: dict[str, Any], dtype: str) -> dict[str, Any]:
    layers = net["layers"]
    try:
        _, apply_fn = _build(stax, layers)
        params = _nt_params(jnp, layers, [tuple(p) for p in net["params"]], dtype)
        x1 = jnp.asarray(np.asarray(net["x1"], dtype=dtype))
        x2 = jnp.asarray(np.asarray(net["x2"], dtype=dtype))
        res: dict[str, Any] = {"ok": True, "layers": layers, "params": net["params"],
                               "x1": net["x1"], "x2": net["x2"], "other_implementations_max_rel": {}}
        worst: dict[str, float] = {}
        for field, other in (("x1_x1", None), ("x1_x2", x2)):
            res[field] = {}
            for trace in (True, False):
                tag = "traced" if trace else "full"
                nngp = _kernel_fn(nt, apply_fn, "nngp", trace, "")(x1, other, params)
                res[field][f"nngp_{tag}"] = np.asarray(nngp, dtype=np.float64).tolist()
                ref = np.asarray(_kernel_fn(nt, apply_fn, "ntk", trace, IMPLEMENTATIONS[0])(x1, other, params),
                                 np.float64)
                res[field][f"ntk_{tag}"] = ref.tolist()
                for impl in IMPLEMENTATIONS[1:]:
                    if isinstance(worst.get(impl), str):
                        continue
                    try:
                        k = np.asarray(_kernel_fn(nt, apply_fn, "ntk", trace, impl)(x1, other, params), np.float64)
                        worst[impl] = max(worst.get(impl, 0.0), _rel(np, k, ref))
                    except Exception as exc:  # noqa: BLE001 - recorded, the reference stands
                        worst[impl] = _error_message(exc)
        res["other_implementations_max_rel"] = worst
        return res
    except Exception as exc:  # noqa: BLE001 - any NT failure is data
        return {"ok": False, "error": _error_message(exc), "layers": layers}


def run_reference(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    dtype = spec.get("dtype", "float64")
    jax, nt, stax = _import_nt(dtype)
    import jax.numpy as jnp
    import numpy as np

    _compat_shim()  # so that STRUCTURED_DERIVATIVES runs for the comparison (JC is the reference)
    results = {name: _reference_one(jax, nt, stax, np, jnp, net, dtype) for name, net in spec["networks"].items()}
    return {"ok": True, **_versions(jax, nt), "dtype": dtype, "reference_implementation": IMPLEMENTATIONS[0],
            "results": results}


# --------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    return serve(argv, run_timing, run_reference, "_nt_peer_empirical.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
