"""neural-tangents' (NT) numbers for general stax graphs and convolutional networks, as a peer of ntkrs.

Runs ONLY inside the peer venv made by ``benchmarks/setup_peer_venv.sh`` (default
``/tmp/ntkrs-peer-venv``); it imports ``jax`` and ``neural_tangents``, never ``ntkrs``. It prints one
JSON line on stdout (``{"ok": false, "error": ...}`` with exit status 0 on failure; 2 for a malformed
command line), like ``_nt_peer.py``, whose command-line helper it reuses. Reference mode only::

    python _nt_peer_stax.py --reference spec.json > tests/data/nt_graph_reference.json

``spec.json`` is written by ``benchmarks/nt_graph_reference_inputs.py`` (dense graphs, issue 11) or
``benchmarks/nt_conv_reference_inputs.py`` (convolutional networks, issue 12); their docstrings hold
the exact regenerate commands. It holds::

    {"dtype": "float64",
     "inputs": {SET: {"x1": [...], "x2": [...]}, ...},        # named input sets, any shape (N, ..., C)
     "cases": {NAME: CASE, ...},                               # networks with an analytic kernel
     "invalid": {NAME: CASE, ...},                             # networks ntkrs must reject
     "finite": {NAME: CASE + {"seed": int}, ...}}              # finite-width checks

    CASE = {"expr": "stax.serial(...)",   # the network for ntkrs: `stax` is the ntkrs package
            "nt_expr": "stax.serial(...)" # optional: NT's spelling, if it differs (e.g. numerical
                                          #   activations: `stax.ElementwiseNumerical(fn=jnp.tanh,
                                          #   deg={deg})`); evaluated with stax, jnp, jax bound
            "degrees": [50, 150],         # optional: `nt_expr` is a template in {deg}; NT is run at
                                          #   each degree (the test uses the spread as NT's own error)
            "inputs": SET,
            "note": "..."}

Output: the spec with NT's results added:

* ``cases[NAME]["x1_x1"] = {"nngp": [[...]], "ntk": [[...]]}`` (``kernel_fn(x1, None)``) and
  ``["x1_x2"]`` (``kernel_fn(x1, x2)``), float64, non-finite entries as ``null`` (and
  ``"nonfinite": true``); with ``degrees``, ``cases[NAME]["by_degree"] = {"50": {"x1_x1", "x1_x2"},
  ...}`` instead. A network NT itself rejects is a failure of the whole run (the spec is wrong).
* ``invalid[NAME]["nt"] = {"raised": bool, "stage": "construct" | "kernel", "type", "message",
  "warnings": [...]}``: what NT does with the network (for the networks where NT does NOT raise,
  ``"raised": false`` and the shape of what it returned; ntkrs must still raise ValueError).
* ``finite[NAME]``: ``"params"`` = NT's ``init_fn(PRNGKey(seed), x1.shape)`` in NT's own nesting
  (encoded: an array is ``{"shape": [...], "data": [flat, C order]}``, a tuple ``{"tuple": [...]}``,
  a list a JSON list, ``None`` ``null``), ``"apply_x1"``/``"apply_x2"`` = ``apply_fn(params, x)``,
  and for ``(x1, None)`` and ``(x1, x2)`` the empirical NTK and NNGP with ``trace_axes=(-1,)``
  (``JACOBIAN_CONTRACTION``), plus the largest relative difference of NT's other two NTK
  implementations from it (``"other_implementations_max_rel"``).

Every warning NT emits while building or evaluating a network is recorded (``"warnings"``), except
the generic ``FanIn`` independence and ``ElementwiseNumerical`` notices it prints every time.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

from _nt_peer import _error_message, _import_nt, _matrix_to_json, _versions, serve

IMPLEMENTATIONS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES")
_ROUTINE_WARNINGS = ("`FanIn` layers assume independent inputs", "Numerical Activation Layer",
                     "Using JAX autodiff to compute the `fn` derivative")


def _namespace(stax) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    return {"__builtins__": {}, "stax": stax, "jnp": jnp, "jax": jax}


def _build(stax, expr: str):
    return eval(expr, _namespace(stax))  # noqa: S307 - the spec is this repository's own file


def _record_warnings(caught) -> list[str]:
    out = []
    for w in caught:
        text = str(w.message)
        if not any(r in text for r in _ROUTINE_WARNINGS) and text not in out:
            out.append(text[:500])
    return out


def _kernels(np, kernel_fn, x1, x2) -> tuple[dict[str, Any], bool]:
    k = kernel_fn(x1, x2, ("nngp", "ntk"))
    out: dict[str, Any] = {}
    bad = False
    for name in ("nngp", "ntk"):
        a = np.asarray(getattr(k, name), dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"{name} has shape {a.shape}; end the network in a readout (N1, N2)")
        out[name], nonfinite = _matrix_to_json(np, a)
        bad = bad or nonfinite
    return out, bad


def _analytic(np, stax, case: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    x1, x2 = inputs[case["inputs"]]
    nt_expr = case.get("nt_expr", case["expr"])
    res: dict[str, Any] = {}
    degrees = case.get("degrees")
    runs = [(None, nt_expr)] if degrees is None else [(d, nt_expr.format(deg=d)) for d in degrees]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for deg, expr in runs:
            kernel_fn = _build(stax, expr)[2]
            one: dict[str, Any] = {}
            one["x1_x1"], bad1 = _kernels(np, kernel_fn, x1, None)
            one["x1_x2"], bad2 = _kernels(np, kernel_fn, x1, x2)
            if bad1 or bad2:
                res["nonfinite"] = True
            if deg is None:
                res.update(one)
            else:
                res.setdefault("by_degree", {})[str(deg)] = one
    res["warnings"] = _record_warnings(caught)
    return res


def _invalid(np, stax, case: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    x1, x2 = inputs[case["inputs"]]
    nt_expr = case.get("nt_expr", case["expr"])
    stage = "construct"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            kernel_fn = _build(stax, nt_expr)[2]
            stage = "kernel"
            k = kernel_fn(x1, x2 if case.get("use_x2") else None, ("nngp", "ntk"))
            out = {"raised": False, "stage": stage,
                   "returned": {n: [int(d) for d in np.shape(getattr(k, n))] for n in ("nngp", "ntk")}}
        except Exception as exc:  # noqa: BLE001 - NT's exception is the datum
            out = {"raised": True, "stage": stage, "type": type(exc).__name__,
                   "message": _error_message(exc).split(": ", 1)[-1]}
    out["warnings"] = _record_warnings(caught)
    return out


def _encode(np, tree) -> Any:
    """NT's parameter pytree as JSON, keeping list/tuple/None and array shapes."""
    if tree is None:
        return None
    if isinstance(tree, tuple):
        return {"tuple": [_encode(np, t) for t in tree]}
    if isinstance(tree, list):
        return [_encode(np, t) for t in tree]
    a = np.asarray(tree, dtype=np.float64)
    return {"shape": list(a.shape), "data": a.reshape(-1).tolist()}


def _rel(np, a, b) -> float:
    scale = float(np.max(np.abs(b)))
    diff = float(np.max(np.abs(a - b)))
    return diff / scale if scale > 0 else diff


def _finite(jax, nt, np, stax, case: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    x1, x2 = inputs[case["inputs"]]
    nt_expr = case.get("nt_expr", case["expr"])
    res: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        init_fn, apply_fn, _ = _build(stax, nt_expr)
        out_shape, params = init_fn(jax.random.PRNGKey(case["seed"]), x1.shape)
        res["params"] = _encode(np, params)
        res["out_shape"] = [int(n) for n in out_shape]
        res["apply_x1"] = np.asarray(apply_fn(params, x1), np.float64).tolist()
        res["apply_x2"] = np.asarray(apply_fn(params, x2), np.float64).tolist()
        worst: dict[str, Any] = {}
        for field, other in (("x1_x1", None), ("x1_x2", x2)):
            nngp = nt.empirical_nngp_fn(apply_fn, trace_axes=(-1,))(x1, other, params)
            ref = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0,
                                      implementation=nt.NtkImplementation.JACOBIAN_CONTRACTION)(x1, other, params)
            ref = np.asarray(ref, np.float64)
            res[field] = {"nngp": np.asarray(nngp, np.float64).tolist(), "ntk": ref.tolist()}
            for impl in IMPLEMENTATIONS[1:]:
                if isinstance(worst.get(impl), str):
                    continue
                try:
                    fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0,
                                             implementation=getattr(nt.NtkImplementation, impl))
                    worst[impl] = max(worst.get(impl, 0.0), _rel(np, np.asarray(fn(x1, other, params)), ref))
                except Exception as exc:  # noqa: BLE001 - recorded; the reference stands
                    worst[impl] = _error_message(exc)
        res["other_implementations_max_rel"] = worst
    res["warnings"] = _record_warnings(caught)
    return res


def run_reference(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    dtype = spec.get("dtype", "float64")
    if dtype != "float64":
        raise ValueError("reference data are float64")
    jax, nt, stax = _import_nt(dtype)
    import numpy as np
    from _nt_peer_empirical import _compat_shim

    _compat_shim()  # so that STRUCTURED_DERIVATIVES runs for the comparison (JC is the reference)
    inputs = {name: (np.asarray(s["x1"], dtype=dtype), np.asarray(s["x2"], dtype=dtype))
              for name, s in spec["inputs"].items()}
    out = {"ok": True, **_versions(jax, nt), **spec}
    out["cases"] = {}
    for name, case in spec["cases"].items():
        try:
            out["cases"][name] = {**case, **_analytic(np, stax, case, inputs)}
        except Exception as exc:
            raise RuntimeError(f"case {name!r}: NT failed: {_error_message(exc)}") from exc
    out["invalid"] = {name: {**case, "nt": _invalid(np, stax, case, inputs)} for name, case in spec["invalid"].items()}
    out["finite"] = {}
    for name, case in spec.get("finite", {}).items():
        try:
            out["finite"][name] = {**case, **_finite(jax, nt, np, stax, case, inputs)}
        except Exception as exc:
            raise RuntimeError(f"finite case {name!r}: NT failed: {_error_message(exc)}") from exc
    return out


def run_timing(spec: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("_nt_peer_stax.py has a reference mode only: --reference FILE.json")


def main(argv: list[str]) -> int:
    return serve(argv, run_timing, run_reference, "_nt_peer_stax.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
