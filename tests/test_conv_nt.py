"""Convolutional networks (issue 12) against the numbers neural-tangents 0.6.5 itself computed.

Regenerate ``tests/data/nt_conv_reference.json`` (peer venv: NT never shares a process with ntkrs)::

    bash benchmarks/setup_peer_venv.sh /tmp/ntkrs-peer-venv
    python benchmarks/nt_conv_reference_inputs.py /tmp/nt_conv_input.json
    /tmp/ntkrs-peer-venv/bin/python benchmarks/_nt_peer_stax.py --reference /tmp/nt_conv_input.json \\
        > tests/data/nt_conv_reference.json

Images x1 (3, 5, 6, 2), x2 (2, 5, 6, 2) (NHWC) and sequences x1 (3, 7, 2), x2 (2, 7, 2) (NLC).
``cases``: stax expressions covering VALID/SAME/CIRCULAR padding, strides 1 and 2 (unequal per
axis), odd/even/non-square filters, AvgPool/SumPool (window, strides, padding, normalize_edges),
Flatten, GlobalAvgPool and GlobalSumPool readouts, Dense before and after the readout, residual
conv blocks, LayerNorm over channels and over (H, W, C), FanInConcat/FanInProd of conv branches,
Dropout, ntk and standard parameterisation, several closed-form activations and Tanh through NT's
ElementwiseNumerical at two degrees; each with NT's NNGP and NTK for ``(x1, None)`` and
``(x1, x2)``. ``invalid``: networks ntkrs must reject with ValueError (NT's reaction recorded).
``finite``: NT's parameters (``init_fn(PRNGKey(seed))``, filters HWIO, conv bias (1, 1, 1, O)),
outputs and empirical kernels (``trace_axes=(-1,)``).

Semantics (padding, normalisations, NT's reversed spatial axes, ...): /work/notes/stax-semantics.md.
"""

from __future__ import annotations

import nt_stax_reference as nsr
import ntkrs
import numpy as np
import pytest

REF = nsr.load("nt_conv_reference.json")
CASES = list(REF["cases"])
INVALID = list(REF["invalid"])
FINITE = list(REF["finite"])


def test_reference_file_was_computed_by_neural_tangents_in_float64():
    assert REF["ok"] and REF["dtype"] == "float64" and REF["nt"] == "0.6.5" and REF["jax"]
    assert len(CASES) >= 30 and len(INVALID) >= 10 and len(FINITE) >= 3
    assert np.shape(REF["inputs"]["img"]["x1"]) == (3, 5, 6, 2) and np.shape(REF["inputs"]["seq"]["x1"]) == (3, 7, 2)
    for name in FINITE:  # the empirical reference is trustworthy: NT's three implementations agree
        for impl, err in REF["finite"][name]["other_implementations_max_rel"].items():
            assert isinstance(err, float) and err <= 1e-13, (name, impl, err)


# ---------------------------------------------------------------------------------------------
# the reference means what the memo says (independent numpy; these pass without the conv layers)
# ---------------------------------------------------------------------------------------------


def _relu_map(k12, q1, q2):
    """E[relu(u) relu(v)] and E[relu'(u) relu'(v)] for the centred Gaussian pair (arc-cosine)."""
    s = np.sqrt(q1 * q2)
    th = np.arccos(np.clip(k12 / s, -1.0, 1.0))
    return s * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi), (np.pi - th) / (2 * np.pi)


def _same_3x3_position_kernel(a, b):
    """K(n, m, p, p') = 1.5²/9 Σ_δ a[n, p+δ]·b[m, p'+δ]/C + 0.1² for Conv(8, (3, 3), SAME,
    W_std=1.5, b_std=0.1): the same offset δ on both sides, zero outside the image (the divisor
    stays 9 at the edges). Returns (N1, N2, H, W, H, W)."""
    n1, h, w, c = a.shape
    pa = np.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)))
    pb = np.pad(b, ((0, 0), (1, 1), (1, 1), (0, 0)))
    k = np.zeros((n1, b.shape[0], h, w, h, w))
    for dy in range(3):
        for dx in range(3):
            sa, sb = pa[:, dy:dy + h, dx:dx + w], pb[:, dy:dy + h, dx:dx + w]
            k += np.einsum("nijc,mklc->nmijkl", sa, sb) / c
    return 1.5**2 * k / 9 + 0.1**2


def _own_variances(a):
    return np.stack([np.einsum("ijij->ij", _same_3x3_position_kernel(a[i:i + 1], a[i:i + 1])[0, 0])
                     for i in range(len(a))])  # (N, H, W): K(x, x; p, p)


def test_reference_same_conv_relu_flatten_is_the_mean_over_positions():
    """flatten/same_3x3 = Conv(8, (3, 3), SAME, 1.5, 0.1), Relu, Flatten, Dense(1, 1.0, 0.1): Flatten
    averages the per-position kernels K(p, p) (equal positions only, mean not sum)."""
    case = REF["cases"]["flatten/same_3x3"]
    x1, x2 = nsr.inputs(REF, case)
    k = _same_3x3_position_kernel(x1, x2)
    kpp = np.einsum("nmijij->nmij", k)
    q1, q2 = _own_variances(x1), _own_variances(x2)
    nngp, dot = _relu_map(kpp, q1[:, None], q2[None, :])
    want_nngp = nngp.mean((2, 3)) + 0.01
    # Θ after the conv = K (conv on inputs); after Relu Θ·E[φ'φ']; Flatten: mean; Dense: K_out + W²Θ
    want_ntk = want_nngp + (kpp * dot).mean((2, 3))
    np.testing.assert_allclose(nsr.matrix(case["x1_x2"]["nngp"]), want_nngp, rtol=1e-12)
    np.testing.assert_allclose(nsr.matrix(case["x1_x2"]["ntk"]), want_ntk, rtol=1e-12)


def test_reference_same_conv_relu_gap_averages_all_position_pairs():
    """gap/same_3x3 = the same conv, Relu, GlobalAvgPool, Dense(1, 1.0, 0.1): GlobalAvgPool averages
    the kernel over all pairs of positions (p, p'), so cross-position covariances are needed."""
    case = REF["cases"]["gap/same_3x3"]
    x1, x2 = nsr.inputs(REF, case)
    k = _same_3x3_position_kernel(x1, x2)
    q1, q2 = _own_variances(x1), _own_variances(x2)
    nngp, dot = _relu_map(k, q1[:, None, :, :, None, None], q2[None, :, None, None, :, :])
    want_nngp = nngp.mean((2, 3, 4, 5)) + 0.01
    # Θ as above, averaged over all position pairs
    want_ntk = want_nngp + (k * dot).mean((2, 3, 4, 5))
    np.testing.assert_allclose(nsr.matrix(case["x1_x2"]["nngp"]), want_nngp, rtol=1e-12)
    np.testing.assert_allclose(nsr.matrix(case["x1_x2"]["ntk"]), want_ntk, rtol=1e-12)


@pytest.mark.parametrize("readout, pool", [("flatten", lambda x: x.reshape(len(x), -1)),
                                           ("gap", lambda x: x.mean(axis=(1, 2)))], ids=["flatten", "gap"])
def test_reference_readouts_of_raw_images_are_mlps_on_pooled_pixels(readout, pool):
    """Flatten of the raw images is an MLP on the flattened pixels (Flatten divides the dot product
    by H·W·C, the MLP's input normalisation); GlobalAvgPool of the raw images is an MLP on the mean
    pixel (the mean over all position pairs of x_p·x'_p'/C). Checked with ntkrs' MLP kernel."""
    case = REF["cases"][f"{readout}/on_raw_inputs"]
    x1, x2 = nsr.inputs(REF, case)
    mlp = ntkrs.serial(ntkrs.Dense(4, W_std=1.3, b_std=0.2), ntkrs.Relu(), ntkrs.Dense(1, W_std=1.0, b_std=0.1))
    for field, other in (("x1_x1", None), ("x1_x2", pool(x2))):
        got = mlp.kernel(pool(x1), other)
        for what in ("nngp", "ntk"):
            np.testing.assert_allclose(getattr(got, what), nsr.matrix(case[field][what]), rtol=1e-12,
                                       err_msg=f"{readout} {field} {what}")


# ---------------------------------------------------------------------------------------------
# the exact diagonal of Flatten readouts (where NT is off by its own rounding)
# ---------------------------------------------------------------------------------------------


def _taps(l_in, f, s, padding):
    """lax's geometry (stax-semantics.md §3.2): for each output position, the input position of
    each tap (None: a zero of the SAME padding)."""
    if padding == "VALID":
        out, lo = (l_in - f) // s + 1, 0
    else:
        out = -(-l_in // s)
        lo = max((out - 1) * s + f - l_in, 0) // 2
    idx = [[o * s + d - lo for d in range(f)] for o in range(out)]
    if padding == "CIRCULAR":
        return [[i % l_in for i in row] for row in idx]
    return [[i if 0 <= i < l_in else None for i in row] for row in idx]


def _sum_taps(q, filt, strides, padding):
    """Σ_δ q(i(o, δ)) over a filter's taps, for a per-position array q (equal positions)."""
    for ax, (f, s) in enumerate(zip(filt, strides, strict=True)):
        moved = np.moveaxis(q, ax, 0)
        rows = _taps(moved.shape[0], f, s, padding)
        new = np.zeros((len(rows),) + moved.shape[1:])
        for o, row in enumerate(rows):
            for i in row:
                if i is not None:
                    new[o] += moved[i]
        q = np.moveaxis(new, 0, ax)
    return q


# (filter, strides, padding, W_std, b_std) per Conv; "relu"; Dense(1, W_std, b_std) after Flatten
_EXACT_DIAGONAL = {
    "flatten/circular_3x3": ([((3, 3), (1, 1), "CIRCULAR", 1.5, 0.1), "relu"], (1.0, 0.1)),
    "flatten/same_2x2_even_filter": ([((2, 2), (1, 1), "SAME", 1.5, 0.1), "relu"], (1.0, 0.1)),
    "flatten/circular_3x1_then_1x4": ([((3, 1), (1, 2), "CIRCULAR", 1.3, 0.0), "relu",
                                       ((1, 4), (1, 1), "CIRCULAR", 1.2, 0.1), "relu"], (1.0, 0.1)),
    "flatten/no_bias": ([((3, 2), (1, 1), "SAME", 1.5, 0.0), "relu", ((2, 2), (1, 1), "VALID", 0.9, 0.0)],
                        (1.0, 0.0)),
    "1d/same3_valid2s2_flatten": ([((3,), (1,), "SAME", 1.5, 0.1), "relu", ((2,), (2,), "VALID", 1.2, 0.1), "relu"],
                                  (1.0, 0.1)),
}


def _exact_diagonal(name, x):
    """k(x_n, x_n) of a Conv/Relu/Flatten/Dense network, from the per-position variances alone: at
    equal positions of one sample ρ = 1 exactly, so Relu maps q ↦ q/2 and Θ ↦ Θ/2 (E[φ'²] = 1/2)."""
    ops, (w_out, b_out) = _EXACT_DIAGONAL[name]
    q = np.einsum("n...c,n...c->n...", x, x) / x.shape[-1]
    th = np.zeros_like(q)
    for op in ops:
        if op == "relu":
            q, th = q / 2, th / 2
            continue
        filt, strides, padding, w, b = op
        taps = np.prod(filt)
        q = w**2 * np.stack([_sum_taps(v, filt, strides, padding) for v in q]) / taps + b**2
        th = w**2 * np.stack([_sum_taps(v, filt, strides, padding) for v in th]) / taps + q
    axes = tuple(range(1, q.ndim))
    q, th = q.mean(axes), th.mean(axes)
    q = w_out**2 * q + b_out**2
    return q, q + w_out**2 * th


@pytest.mark.parametrize("name", sorted(_EXACT_DIAGONAL))
def test_flatten_diagonal_is_exact_and_neural_tangents_is_within_its_rounding(name):
    """On the diagonal of k(x1, x1) a Relu sees ρ = 1 at every position, where its NTK factor
    (π − θ)/2π has infinite slope in ρ: NT's equal-position covariances and own variances come from
    different arithmetic in its diagonal_spatial path (stax-semantics.md §6), so it evaluates at
    ρ = 1 − O(ulp) and its NTK diagonal is off by up to ~√(2ε)/2π relative (here up to 3e-9).
    ntkrs's kernel and ``diagonal=True`` equal the exact value (from the per-position variances,
    independent numpy) to 1e-13; NT's to 1e-8."""
    case = REF["cases"][name]
    x1, _ = nsr.inputs(REF, case)
    q, th = _exact_diagonal(name, x1)
    net = nsr.build(case["expr"])
    got = net.kernel(x1, get=("nngp", "ntk"))
    diag = net.kernel(x1, get=("nngp", "ntk"), diagonal=True)
    for what, want in (("nngp", q), ("ntk", th)):
        np.testing.assert_allclose(np.diag(getattr(got, what)), want, rtol=1e-13, atol=0)
        np.testing.assert_allclose(getattr(diag, what), want, rtol=1e-13, atol=0)
        np.testing.assert_allclose(np.diag(nsr.matrix(case["x1_x1"][what])), want, rtol=1e-8, atol=0)


def _reference(name, case, field):
    """NT's kernels and tolerances, with the diagonal of k(x1, x1) replaced by the exact value
    for the cases where NT's own rounding exceeds RTOL_CLOSED there (checked above)."""
    want, tol = nsr.reference_kernels(case, field)
    if field == "x1_x1" and name in _EXACT_DIAGONAL:
        x1, _ = nsr.inputs(REF, case)
        exact = dict(zip(("nngp", "ntk"), _exact_diagonal(name, x1), strict=True))
        for what in ("nngp", "ntk"):
            w = want[what].copy()
            np.fill_diagonal(w, exact[what])
            want[what] = w
    return want, tol


# ---------------------------------------------------------------------------------------------
# analytic kernels
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_kernels_match_neural_tangents(name):
    """NNGP and NTK of every conv network equal NT's, for k(x1, x1) (x2=None) and k(x1, x2): closed
    forms to 1e-10 of the largest entry; Tanh within NT's two-degree spread plus ntkrs' documented
    quadrature accuracy (nt_stax_reference.reference_kernels). Where NT's own diagonal is off by
    its rounding at ρ = 1 (five Flatten networks), the exact diagonal replaces it (see the test
    above)."""
    case = REF["cases"][name]
    net = nsr.build(case["expr"])
    x1, x2 = nsr.inputs(REF, case)
    for field, other in (("x1_x1", None), ("x1_x2", x2)):
        got = net.kernel(x1, other, get=("nngp", "ntk"))
        want, tol = _reference(name, case, field)
        for what in ("nngp", "ntk"):
            assert np.all(np.isfinite(want[what])), (name, field, what)  # no conv case has NT NaNs
            nsr.assert_close(getattr(got, what), want[what], tol[what], nsr.RTOL_CLOSED, f"{name} {field} {what}")


@pytest.mark.parametrize("name", CASES)
def test_diagonal_matches_neural_tangents(name):
    """``diagonal=True`` gives the diagonal of NT's k(x1, x1)."""
    case = REF["cases"][name]
    net = nsr.build(case["expr"])
    x1, _ = nsr.inputs(REF, case)
    got = net.kernel(x1, get=("nngp", "ntk"), diagonal=True)
    want, tol = _reference(name, case, "x1_x1")
    for what in ("nngp", "ntk"):
        t = np.diag(tol[what]) if np.ndim(tol[what]) else tol[what]
        nsr.assert_close(getattr(got, what), np.diag(want[what]), t, nsr.RTOL_CLOSED, f"{name} diagonal {what}")


# ---------------------------------------------------------------------------------------------
# networks ntkrs must reject
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", INVALID)
def test_invalid_network_raises_value_error(name):
    """Each network is rejected with a ValueError naming the problem (when built or when its
    kernel is asked for). NT's own reactions (``nt``) are mostly TypeError/IndexError/
    ZeroDivisionError from deep inside JAX, and for a VALID filter larger than the image followed
    by GlobalAvgPool a silent NaN."""
    case = REF["invalid"][name]
    x1, x2 = nsr.inputs(REF, case)
    with pytest.raises(ValueError) as info:
        net = nsr.build(case["expr"])
        net.kernel(x1, x2 if case.get("use_x2") else None, get=("nngp", "ntk"))
    assert str(info.value).strip(), f"{name}: empty error message"


# ---------------------------------------------------------------------------------------------
# finite width, with NT's own parameters
# ---------------------------------------------------------------------------------------------


def _finite_cases():
    """The finite cases; LayerNorm on images is not implemented for finite-width networks yet
    (strict xfail: it raises NotImplementedError)."""
    out = []
    for name in FINITE:
        marks = ()
        if "LayerNorm" in REF["finite"][name]["expr"]:
            marks = pytest.mark.xfail(strict=True, raises=NotImplementedError,
                                      reason="finite-width LayerNorm on images is not implemented yet")
        out.append(pytest.param(name, marks=marks))
    return out


@pytest.mark.parametrize("name", _finite_cases())
def test_apply_with_neural_tangents_parameters(name):
    """``apply`` accepts NT's conv parameters (filters HWIO, bias (1, 1, 1, O) / (1, 1, O), a
    Dense's bias (1, out); NT's nesting) and gives NT's outputs to 1e-12 of the largest."""
    case = REF["finite"][name]
    net = nsr.build(case["expr"])
    params = nsr.decode_params(case["params"])
    x1, x2 = nsr.inputs(REF, case)
    for x, key in ((x1, "apply_x1"), (x2, "apply_x2")):
        want = np.asarray(case[key])
        nsr.assert_close(net.apply(params, x), want, 1e-12 * nsr.scale(want), 0.0, f"{name} {key}")


@pytest.mark.parametrize("name", _finite_cases())
def test_empirical_kernels_with_neural_tangents_parameters(name):
    """Empirical NTK and NNGP (traced, NT's ``trace_axes=(-1,)``) with NT's parameters equal NT's
    (JACOBIAN_CONTRACTION) to 1e-12 of the largest entry."""
    case = REF["finite"][name]
    net = nsr.build(case["expr"])
    params = nsr.decode_params(case["params"])
    x1, x2 = nsr.inputs(REF, case)
    for field, other in (("x1_x1", None), ("x1_x2", x2)):
        for what, fn in (("ntk", net.empirical_ntk), ("nngp", net.empirical_nngp)):
            want = np.asarray(case[field][what])
            nsr.assert_close(fn(params, x1, other), want, 1e-12 * nsr.scale(want), 0.0, f"{name} {field} {what}")


@pytest.mark.parametrize("name", _finite_cases())
def test_init_returns_neural_tangents_layout(name):
    """``init`` returns parameters nested as NT's (same containers, ``()``/``None`` where NT has
    them, arrays of NT's sizes), which ``apply`` accepts. The per-example input shape ((H, W, C) or
    (L, C)) is passed as ``init``'s first argument, as ``in_dim`` is for (N, d) inputs."""
    case = REF["finite"][name]
    net = nsr.build(case["expr"])
    x1, _ = nsr.inputs(REF, case)
    mine = net.init(x1.shape[1:], seed=0)
    theirs = nsr.nt_pairs(nsr.decode_params(case["params"]))
    assert len(mine) == len(theirs)
    for (w, b), (wn, bn) in zip(mine, theirs, strict=True):
        assert w.shape == wn.shape
        assert (b is None) == (bn is None) and (b is None or b.size == bn.size)
    assert np.asarray(net.apply(mine, x1)).shape == tuple(case["out_shape"])
