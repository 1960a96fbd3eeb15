"""Empirical (finite-width) NTK and NNGP against the values neural-tangents itself computed.

``tests/data/nt_empirical_reference.json`` holds, for small networks with explicit parameters
(ReLU-like, Erf, GELU, trigonometric, polynomial, Tanh/Sigmoid/Softplus/Silu through
``stax.Elementwise``; NTK and standard parameterization; with and without biases; deeper ones),
neural-tangents' ``empirical_ntk_fn`` (``JACOBIAN_CONTRACTION``) and ``empirical_nngp_fn``,
traced (``trace_axes=(-1,)``) and full (``trace_axes=()``), for ``(x1, None)`` and ``(x1, x2)``.
Regenerate it with ``benchmarks/nt_empirical_reference_inputs.py`` and
``benchmarks/_nt_peer_empirical.py --reference`` (see the former's docstring). A missing file is
an error, not a skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import ntkrs as nk
import numpy as np
import pytest

NT_FILE = Path(__file__).parent / "data" / "nt_empirical_reference.json"
NT = json.loads(NT_FILE.read_text())
KEYS = sorted(NT["results"])
RTOL = 1e-12  # relative to the largest entry of the kernel


def _network(layers):
    built = []
    for spec in layers:
        built.append(getattr(nk, spec["layer"])(*spec.get("args", []), **spec.get("kwargs", {})))
    return nk.serial(*built)


def _params(entry):
    return [(np.array(w, dtype=np.float64), None if b is None else np.array(b, dtype=np.float64))
            for w, b in entry["params"]]


def _assert_close(got, want, what):
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert got.dtype == np.float64, (what, got.dtype)
    scale = np.max(np.abs(want))
    err = np.max(np.abs(got - want))
    assert err <= RTOL * scale, f"{what}: max error {err:.3e} = {err / scale:.3e} of max |K| {scale:.3e}"


def test_reference_file_was_computed_in_float64_by_neural_tangents():
    assert NT["ok"] and NT["dtype"] == "float64" and NT["nt"] and NT["jax"]
    assert NT["reference_implementation"] == "JACOBIAN_CONTRACTION"
    assert len(KEYS) >= 20


@pytest.mark.parametrize("key", KEYS)
def test_neural_tangents_implementations_agree_on_the_reference(key):
    """The reference is trustworthy: NT's other two implementations gave the same NTK (≤ 1e-13)."""
    entry = NT["results"][key]
    assert entry["ok"], entry.get("error")
    others = entry["other_implementations_max_rel"]
    assert set(others) == {"NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES"}
    for impl, err in others.items():
        assert isinstance(err, float) and err <= 1e-13, (impl, err)


@pytest.mark.parametrize("trace", [True, False], ids=["traced", "full"])
@pytest.mark.parametrize("field", ["x1_x1", "x1_x2"])
@pytest.mark.parametrize("key", KEYS)
def test_empirical_kernels_match_neural_tangents(key, field, trace):
    """ntkrs' empirical NTK and NNGP equal neural-tangents' to 1e-12 of the largest entry (float64),
    traced (N1, N2) and full (N1, N2, O, O), for k(x1, x1) (x2=None) and k(x1, x2)."""
    entry = NT["results"][key]
    assert entry["ok"], entry.get("error")
    net = _network(entry["layers"])
    params = _params(entry)
    x1 = np.array(entry["x1"], dtype=np.float64)
    x2 = None if field == "x1_x1" else np.array(entry["x2"], dtype=np.float64)
    tag = "traced" if trace else "full"
    ntk = net.empirical_ntk(params, x1, x2, trace_outputs=trace)
    _assert_close(ntk, entry[field][f"ntk_{tag}"], f"{key} {field} ntk {tag}")
    nngp = net.empirical_nngp(params, x1, x2, trace_outputs=trace)
    _assert_close(nngp, entry[field][f"nngp_{tag}"], f"{key} {field} nngp {tag}")
    both = net.empirical_kernel(params, x1, x2, trace_outputs=trace)
    np.testing.assert_array_equal(both.ntk, ntk)
    np.testing.assert_array_equal(both.nngp, nngp)


@pytest.mark.parametrize("key", ["Relu", "standard/Relu", "nobias/Relu"])
def test_neural_tangents_serial_params_layout_is_accepted(key):
    """NT's own params layout ((W, b[None, :]) per Dense, () per activation) gives the same kernel."""
    entry = NT["results"][key]
    net = _network(entry["layers"])
    params = iter(_params(entry))
    nt_params = []
    for spec in entry["layers"]:
        if spec["layer"] == "Dense":
            w, b = next(params)
            nt_params.append((w, None if b is None else b[None, :]))
        else:
            nt_params.append(())
    x1 = np.array(entry["x1"], dtype=np.float64)
    _assert_close(net.empirical_ntk(nt_params, x1, trace_outputs=False), entry["x1_x1"]["ntk_full"], key)
