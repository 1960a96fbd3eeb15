"""Shared machinery of the tests against neural-tangents' numbers for stax graphs and conv nets.

``tests/data/nt_graph_reference.json`` (issue 11) and ``tests/data/nt_conv_reference.json``
(issue 12) are written by ``benchmarks/_nt_peer_stax.py`` (see ``test_graph_nt.py`` and
``test_conv_nt.py`` for the commands). Each network is a Python expression in stax syntax; here it
is evaluated with ``stax`` bound to the ``ntkrs`` package and nothing else (no builtins), so the
same string builds NT's network in the peer venv and ntkrs' network here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ntkrs
import numpy as np

DATA = Path(__file__).parent / "data"

# Closed forms: both libraries evaluate the same exact formulas in float64 (ntkrs agrees with
# tests/data/nt_reference.json to ~1e-15 for MLPs). A graph chains at most ~10 maps, each
# amplifying rounding by O(1), and no reference input pair is nearly collinear (where arccos-type
# maps amplify an ulp of ρ to ~1e-8), so 1e-10 of the largest entry (plus 1e-10 relative) is
# generous for rounding and far below any modelling difference (a wrong width weight, a missed
# bias, a wrong edge normalisation changes entries by 1e-3 or more).
RTOL_CLOSED = 1e-10

# ntkrs' numerical activations at their default quad_degree (README, "Accuracy at the default
# degree 48", worst relative error of one map): a network applies the NNGP and NTK maps twice and
# sums/propagates them, so allow 30x the single-map figure relative to the largest entry.
NTKRS_QUADRATURE = {"Tanh": 7e-8, "Silu": 3e-11, "Elu": 1e-14, "Sigmoid": 5e-12, "Softplus": 5e-12}
PROPAGATION = 30.0


def load(name: str) -> dict[str, Any]:
    """The reference file (a missing file is an error, not a skip)."""
    return json.loads((DATA / name).read_text())


def build(expr: str):
    """The ntkrs network the expression describes (``stax`` = the ntkrs package)."""
    return eval(expr, {"__builtins__": {}, "stax": ntkrs})  # noqa: S307 - the repository's own data


def inputs(ref: dict[str, Any], case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    s = ref["inputs"][case["inputs"]]
    return np.asarray(s["x1"], dtype=np.float64), np.asarray(s["x2"], dtype=np.float64)


def matrix(rows) -> np.ndarray:
    """A recorded matrix; NT's non-finite entries were written as null and become NaN."""
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)


def assert_close(got, want, atol, rtol=0.0, what: str = "") -> None:
    """Entrywise |got − want| ≤ atol + rtol·|want| (atol an array or a scalar); ``got`` finite
    everywhere; entries where ``want`` is NaN (NT failed there) are not compared."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, NT's {want.shape}"
    assert np.all(np.isfinite(got)), f"{what}: non-finite entries {np.argwhere(~np.isfinite(got))[:4].tolist()}"
    err = np.abs(got - want)
    bad = np.argwhere(np.isfinite(want) & ~(err <= atol + rtol * np.abs(want)))
    assert bad.size == 0, f"{what}: {len(bad)} entries differ; first: " + "; ".join(
        f"{tuple(i)} got {got[tuple(i)]!r} NT {want[tuple(i)]!r}" for i in bad[:4])


def scale(want: np.ndarray) -> float:
    finite = np.isfinite(want)
    return float(np.max(np.abs(want[finite]))) if finite.any() else 0.0


def numerical_activation(case: dict[str, Any]) -> str:
    """The ntkrs numerical activation a numerical case uses (``stax.Tanh()`` → ``"Tanh"``)."""
    names = [n for n in NTKRS_QUADRATURE if f"stax.{n}(" in case["expr"]]
    assert len(names) == 1, (case["expr"], names)
    return names[0]


def reference_kernels(case: dict[str, Any], field: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """NT's kernels for ``field`` ("x1_x1" or "x1_x2") and an entrywise tolerance for each.

    Closed forms: RTOL_CLOSED of the largest entry. Numerical activations (NT's 2-D Gauss–Hermite
    quadrature, recorded at degrees n and 2n): the value v(2n), with tolerance 1.5 times the largest
    step |v(2n) − v(n)| of the matrix plus ntkrs' documented quadrature accuracy (times
    PROPAGATION) of the largest entry. NT is not exact here: tanh and SiLU converge exponentially
    (the step is at rounding level), but for ELU, whose φ' has a kink, NT's NTK converges only like
    1/degree (its error at 2n, measured against the exact reference of ``graph_reference.py``, is
    0.6–1.4 times the step entry by entry) and its NNGP oscillates (entrywise steps can cross 0, so
    the bound is the matrix's largest step). These cases are checked exactly against that independent reference in
    ``test_numerical_graphs_match_an_independent_reference``; this comparison only shows NT agrees
    to its own accuracy."""
    if "by_degree" not in case:
        want = {k: matrix(case[field][k]) for k in ("nngp", "ntk")}
        return want, {k: RTOL_CLOSED * scale(w) for k, w in want.items()}
    degrees = sorted(case["by_degree"], key=int)
    lo, hi = case["by_degree"][degrees[0]][field], case["by_degree"][degrees[-1]][field]
    acc = NTKRS_QUADRATURE[numerical_activation(case)] * PROPAGATION
    want, tol = {}, {}
    for k in ("nngp", "ntk"):
        want[k] = matrix(hi[k])
        step = float(np.max(np.abs(matrix(hi[k]) - matrix(lo[k]))))
        tol[k] = 1.5 * step + max(acc, RTOL_CLOSED) * scale(want[k])
    return want, tol


def decode_params(tree) -> Any:
    """NT's parameter pytree from its JSON encoding: arrays ``{"shape", "data"}``, tuples
    ``{"tuple": [...]}``, lists as lists, ``None`` as ``None``."""
    if tree is None:
        return None
    if isinstance(tree, list):
        return [decode_params(t) for t in tree]
    if "tuple" in tree:
        return tuple(decode_params(t) for t in tree["tuple"])
    return np.asarray(tree["data"], dtype=np.float64).reshape(tree["shape"])


def nt_pairs(tree) -> list:
    """The ``(W, b)`` pairs of NT's nested parameters, depth first (``()`` for parameterless layers):
    the order of ntkrs's ``init``, which returns one pair per Dense (or Conv)."""
    if isinstance(tree, (list, tuple)) and len(tree) == 2 and isinstance(tree[0], np.ndarray) and tree[0].ndim >= 2:
        return [tree]
    if isinstance(tree, (list, tuple)):
        return [p for t in tree for p in nt_pairs(t)]
    return []
