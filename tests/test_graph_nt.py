"""General stax graphs (issue 11) against the numbers neural-tangents 0.6.5 itself computed.

Regenerate ``tests/data/nt_graph_reference.json`` (peer venv: NT never shares a process with ntkrs)::

    bash benchmarks/setup_peer_venv.sh /tmp/ntkrs-peer-venv
    python benchmarks/nt_graph_reference_inputs.py /tmp/nt_graph_input.json
    /tmp/ntkrs-peer-venv/bin/python benchmarks/_nt_peer_stax.py --reference /tmp/nt_graph_input.json \\
        > tests/data/nt_graph_reference.json

The file holds, on x1 (5 x 7) and x2 (4 x 7):

* ``cases``: networks written as stax expressions (residual blocks with post-activation, pre- and
  post-LayerNorm, FanOut(3); FanInConcat of equal and unequal widths, which NT averages weighted by
  width; FanInProd; Dropout in train and test mode; nesting; ntk and standard parameterisation;
  LayerNorm eps; every closed-form activation; Tanh/SiLU/ELU through NT's ElementwiseNumerical at
  two quadrature degrees) with NT's NNGP and NTK for ``(x1, None)`` and ``(x1, x2)``;
* ``invalid``: networks ntkrs must reject with ValueError (NT's own exception, or its silent
  acceptance, is recorded in ``nt`` for the record);
* ``finite``: NT's ``init_fn(PRNGKey(seed))`` parameters in NT's nesting, ``apply_fn`` outputs,
  and empirical NTK/NNGP (``trace_axes=(-1,)``).

Semantics and NT's quirks: docs/stax-semantics.md (the memo written with this file).
"""

from __future__ import annotations

import math

import graph_reference as gr
import nt_stax_reference as nsr
import numpy as np
import pytest

REF = nsr.load("nt_graph_reference.json")
CASES = list(REF["cases"])
INVALID = list(REF["invalid"])
FINITE = list(REF["finite"])


def test_reference_file_was_computed_by_neural_tangents_in_float64():
    assert REF["ok"] and REF["dtype"] == "float64" and REF["nt"] == "0.6.5" and REF["jax"]
    assert len(CASES) >= 30 and len(INVALID) >= 8 and len(FINITE) >= 4
    for name in FINITE:  # the empirical reference is trustworthy: NT's three implementations agree
        for impl, err in REF["finite"][name]["other_implementations_max_rel"].items():
            assert isinstance(err, float) and err <= 1e-13, (name, impl, err)


# ---------------------------------------------------------------------------------------------
# analytic kernels
# ---------------------------------------------------------------------------------------------


def _rectified_monomial_diagonal(case, x1):
    """Independent values for the entries NT leaves NaN in the RectifiedMonomial cases.

    NT 0.6.5 evaluates RectifiedMonomial's kernel at θ = 0 as NaN (0/0 in its arc-cosine
    recursion), i.e. on the diagonal of k(x1, x1). The network is fixed by the generator
    (asserted below): Dense(8, 1.2, 0.1), x + Dense(8, 1.1, 0.05)(x), RectifiedMonomial(k),
    Dense(1, 0.9, 0.1). Before the activation everything is linear: with g = |x|²/7,
    K1 = 1.44 g + 0.01 = Θ1; K2 = K1 + 1.21 K1 + 0.0025, Θ2 = Θ1 + 1.21 Θ1 + (1.21 K1 + 0.0025).
    At ρ = 1, E[φ(u)²] = (2k−1)!!·q^k/2 and E[φ'(u)²] = k²(2k−3)!!·q^(k−1)/2 for
    φ(u) = max(u, 0)^k (half of the Gaussian moments), so NNGP = 0.81 E[φ²] + 0.01 and
    NTK = NNGP + 0.81 Θ2 E[φ'²]."""
    k = int(case["expr"].split("stax.RectifiedMonomial(")[1].split(")")[0])
    assert case["expr"] == (
        "stax.serial(stax.Dense(8, W_std=1.2, b_std=0.1), stax.serial(stax.FanOut(2), stax.parallel("
        "stax.Dense(8, W_std=1.1, b_std=0.05), stax.Identity()), stax.FanInSum()), "
        f"stax.RectifiedMonomial({k}), stax.Dense(1, W_std=0.9, b_std=0.1))"), case["expr"]
    g = np.sum(x1 * x1, axis=1) / x1.shape[1]
    k1 = 1.44 * g + 0.01
    q = k1 + 1.21 * k1 + 0.0025
    theta = k1 + 1.21 * k1 + (1.21 * k1 + 0.0025)
    dfact = lambda n: math.prod(range(n, 0, -2)) if n > 0 else 1  # noqa: E731 - (−1)!! = 1
    e_phi2 = dfact(2 * k - 1) * q**k / 2
    e_dphi2 = k * k * dfact(2 * k - 3) * q ** (k - 1) / 2
    nngp = 0.81 * e_phi2 + 0.01
    return {"nngp": nngp, "ntk": nngp + 0.81 * theta * e_dphi2}


@pytest.mark.parametrize("name", CASES)
def test_kernels_match_neural_tangents(name):
    """NNGP and NTK of every graph equal NT's, for k(x1, x1) (x2=None) and k(x1, x2): closed forms
    to 1e-10 of the largest entry; numerical activations within NT's own two-degree spread plus
    ntkrs' documented quadrature accuracy (see nt_stax_reference.reference_kernels)."""
    case = REF["cases"][name]
    net = nsr.build(case["expr"])
    x1, x2 = nsr.inputs(REF, case)
    for field, other in (("x1_x1", None), ("x1_x2", x2)):
        got = net.kernel(x1, other, get=("nngp", "ntk"))
        want, tol = nsr.reference_kernels(case, field)
        for what in ("nngp", "ntk"):
            mine = np.asarray(getattr(got, what))
            nsr.assert_close(mine, want[what], tol[what], nsr.RTOL_CLOSED, f"{name} {field} {what}")
            missing = ~np.isfinite(want[what])
            if missing.any():  # only where NT's RectifiedMonomial is NaN: the diagonal of k(x1, x1)
                assert field == "x1_x1" and "RectifiedMonomial" in name, (name, field, np.argwhere(missing))
                assert np.array_equal(np.argwhere(missing), np.argwhere(np.eye(len(x1), dtype=bool))), name
                exact = _rectified_monomial_diagonal(case, x1)[what]
                np.testing.assert_allclose(np.diag(mine), exact, rtol=1e-12, err_msg=f"{name} {what} diagonal")


NUMERICAL = [name for name in CASES if "by_degree" in REF["cases"][name]]


@pytest.mark.parametrize("name", NUMERICAL)
def test_numerical_graphs_match_an_independent_reference(name):
    """Where NT is inexact (numerical activations), the exact value is an independent numpy
    implementation of the graph semantics with the suite's own quadrature (``graph_reference.py``);
    ntkrs agrees to its documented map accuracy (times PROPAGATION) of the largest entry."""
    case = REF["cases"][name]
    net = nsr.build(case["expr"])
    x1, x2 = nsr.inputs(REF, case)
    acc = nsr.NTKRS_QUADRATURE[nsr.numerical_activation(case)] * nsr.PROPAGATION
    for other in (None, x2):
        want = gr.exact_kernels(net, x1, other)
        got = net.kernel(x1, other, get=("nngp", "ntk"))
        for mine, w, what in zip(got, want, ("nngp", "ntk"), strict=True):
            nsr.assert_close(mine, w, max(acc, 1e-12) * nsr.scale(w), 0.0, f"{name} {what}")


@pytest.mark.parametrize("name", CASES)
def test_diagonal_matches_neural_tangents(name):
    """``diagonal=True`` gives the diagonal of NT's k(x1, x1) (for Dropout: with the 1/rate factor
    of equal inputs)."""
    case = REF["cases"][name]
    net = nsr.build(case["expr"])
    x1, _ = nsr.inputs(REF, case)
    got = net.kernel(x1, get=("nngp", "ntk"), diagonal=True)
    want, tol = nsr.reference_kernels(case, "x1_x1")
    for what in ("nngp", "ntk"):
        w = np.diag(want[what])
        t = np.diag(tol[what]) if np.ndim(tol[what]) else tol[what]
        if not np.all(np.isfinite(w)):
            w = _rectified_monomial_diagonal(case, x1)[what]
            t = 1e-12 * np.abs(w)
        nsr.assert_close(getattr(got, what), w, t, nsr.RTOL_CLOSED, f"{name} diagonal {what}")


def test_dropout_train_scales_only_the_diagonal_of_equal_inputs():
    """Dropout(rate) in train mode multiplies the covariance of a sample with itself by 1/rate and
    nothing else; test mode and rate 1 are the identity (NT's numbers, compared to each other)."""
    train, test, one = (REF["cases"][f"dropout/{n}"] for n in ("train_after_relu", "test_after_relu", "rate_one"))
    for field in ("x1_x1", "x1_x2"):
        a, b, c = (nsr.matrix(k[field]["nngp"]) for k in (train, test, one))
        np.testing.assert_array_equal(b, c)
        off = ~np.eye(*a.shape, dtype=bool) if field == "x1_x1" else np.ones(a.shape, dtype=bool)
        np.testing.assert_allclose(a[off], b[off], rtol=1e-14)
    # Dense(1, 1.0, 0.1) follows: (K_train − 0.01) = (K_test − 0.01)/0.8 on the diagonal
    a, b = (np.diag(nsr.matrix(k["x1_x1"]["nngp"])) for k in (train, test))
    np.testing.assert_allclose(a - 0.01, (b - 0.01) / 0.8, rtol=1e-13)


def test_concat_weights_branches_by_width_in_the_reference():
    """The reference itself shows NT's width weighting: with widths 3 and 9 the concatenated NNGP,
    read through the final Dense(1, 1.1, 0.1), is (3·K_a + 9·K_b)/12 with K_a = 1.44 K1 (Dense(3,
    1.2)) and K_b = 4 K1 + 0.09 (Dense(9, 2.0, 0.3)), K1 = 2.25 x·x'/7 + 0.01."""
    case = REF["cases"]["concat/unequal_widths"]
    x1, x2 = nsr.inputs(REF, case)
    k1 = 2.25 * x1 @ x2.T / 7 + 0.01
    concat = (3 * 1.44 * k1 + 9 * (4.0 * k1 + 0.09)) / 12
    np.testing.assert_allclose(nsr.matrix(case["x1_x2"]["nngp"]), 1.21 * concat + 0.01, rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# networks ntkrs must reject
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", INVALID)
def test_invalid_network_raises_value_error(name):
    """Each network is rejected with a ValueError (when it is built or when its kernel is asked
    for), never a hang, NaN or silent result; NT's own reaction is in ``nt`` (several are not
    ValueErrors, and NT silently accepts ``fanout3_into_parallel2`` and ``concat_along_batch_axis``)."""
    case = REF["invalid"][name]
    x1, x2 = nsr.inputs(REF, case)
    with pytest.raises(ValueError) as info:
        net = nsr.build(case["expr"])
        net.kernel(x1, x2 if case.get("use_x2") else None, get=("nngp", "ntk"))
    assert str(info.value).strip(), f"{name}: empty error message"


# ---------------------------------------------------------------------------------------------
# finite width, with NT's own parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FINITE)
def test_apply_with_neural_tangents_parameters(name):
    """``apply`` accepts NT's parameters (``init_fn(PRNGKey(seed), x1.shape)``, NT's nesting:
    a list per serial, a tuple per parallel, ``(W, b)`` per Dense with b of shape (1, out), ``()``
    per parameterless layer) and gives NT's outputs to 1e-12 of the largest."""
    case = REF["finite"][name]
    net = nsr.build(case["expr"])
    params = nsr.decode_params(case["params"])
    x1, x2 = nsr.inputs(REF, case)
    for x, key in ((x1, "apply_x1"), (x2, "apply_x2")):
        want = np.asarray(case[key])
        nsr.assert_close(net.apply(params, x), want, 1e-12 * nsr.scale(want), 0.0, f"{name} {key}")


@pytest.mark.parametrize("name", FINITE)
def test_empirical_kernels_with_neural_tangents_parameters(name):
    """The empirical NTK and NNGP (traced over outputs, NT's ``trace_axes=(-1,)``) with NT's
    parameters equal NT's (JACOBIAN_CONTRACTION) to 1e-12 of the largest entry."""
    case = REF["finite"][name]
    net = nsr.build(case["expr"])
    params = nsr.decode_params(case["params"])
    x1, x2 = nsr.inputs(REF, case)
    for field, other in (("x1_x1", None), ("x1_x2", x2)):
        for what, fn in (("ntk", net.empirical_ntk), ("nngp", net.empirical_nngp)):
            want = np.asarray(case[field][what])
            nsr.assert_close(fn(params, x1, other), want, 1e-12 * nsr.scale(want), 0.0, f"{name} {field} {what}")


@pytest.mark.parametrize("name", FINITE)
def test_init_returns_one_pair_per_dense_in_neural_tangents_order(name):
    """``init`` returns one ``(W, b)`` per Dense, depth first: the pairs of NT's nested layout in the
    same order and of the same sizes (``b`` as ``(out,)`` rather than NT's ``(1, out)``, ``None``
    without a bias), which ``apply`` accepts; NT's nested layout is accepted too (the empirical tests
    above pass it as is). (Values differ: different generators.)"""
    case = REF["finite"][name]
    net = nsr.build(case["expr"])
    x1, _ = nsr.inputs(REF, case)
    mine = net.init(x1.shape[1], seed=0)
    theirs = nsr.nt_pairs(nsr.decode_params(case["params"]))
    assert len(mine) == len(theirs)
    for (w, b), (wn, bn) in zip(mine, theirs, strict=True):
        assert w.shape == wn.shape
        assert (b is None) == (bn is None) and (b is None or b.size == bn.size)
    assert np.asarray(net.apply(mine, x1)).shape == tuple(case["out_shape"])
