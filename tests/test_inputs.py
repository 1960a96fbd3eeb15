"""Input handling: any array-like, any memory layout, and extreme magnitudes give the right
kernels (compared with contiguous float64 copies and with closed forms derived here)."""

from __future__ import annotations

import math

import closed_forms as cf
import ntkrs as nk
import numpy as np
import pytest

RNG = np.random.default_rng(11)
BASE = RNG.standard_normal((7, 6))
RELU_DENSE = [(16, 1.5, 0.05), (16, 1.2, 0.1), (1, 0.9, 0.2)]


def relu_net(dense=RELU_DENSE):
    layers = []
    for i, (n, w, b) in enumerate(dense):
        layers.append(nk.Dense(n, W_std=w, b_std=b))
        if i < len(dense) - 1:
            layers.append(nk.Relu())
    return nk.serial(*layers)


NET = nk.serial(nk.Dense(8, W_std=1.4, b_std=0.1), nk.Erf(), nk.Dense(4, W_std=1.1, b_std=0.2), nk.Relu(), nk.Dense(1))


def same(a, b):
    """Equal up to 1e-14 of the largest entry (a different memory layout may at most change
    the summation order of x·x')."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype == np.float64
    assert np.max(np.abs(a - b)) <= 1e-14 * np.max(np.abs(b)), np.max(np.abs(a - b))


def kern(x1, x2=None):
    return NET.kernel(x1, x2, get=("nngp", "ntk"))


def check_same(got, want):
    same(got.nngp, want.nngp)
    same(got.ntk, want.ntk)


# --- array-likes and layouts ----------------------------------------------------------------


def test_nested_lists_and_tuples_equal_arrays():
    """Nested lists, tuples and a list of arrays give the kernel of the equivalent array."""
    want = kern(BASE, BASE[:3])
    check_same(kern(BASE.tolist(), BASE[:3].tolist()), want)
    check_same(kern(tuple(map(tuple, BASE)), tuple(map(tuple, BASE[:3]))), want)
    check_same(kern(list(BASE), [row for row in BASE[:3]]), want)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint16])
def test_integer_arrays_convert_to_float(dtype):
    """Integer arrays (and Python ints) give the kernel of their float64 values."""
    xi = np.array([[1, 2, 0, 3], [4, 0, 1, 1], [0, 0, 0, 0], [2, 5, 1, 0]], dtype=dtype)
    check_same(kern(xi), kern(xi.astype(np.float64)))
    check_same(kern(xi, xi[:2]), kern(xi.astype(np.float64), xi[:2].astype(np.float64)))
    check_same(kern(xi.tolist()), kern(xi.astype(np.float64)))


def test_float32_input_with_float64_compute_equals_upcast_input():
    """A float32 input array computed in float64 gives the kernel of its exact float64 values."""
    x32 = BASE.astype(np.float32)
    check_same(kern(x32), kern(x32.astype(np.float64)))


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(lambda a: np.asfortranarray(a), id="fortran"),
        pytest.param(lambda a: np.repeat(a, 2, axis=1)[:, ::2], id="column-stride-2"),
        pytest.param(lambda a: np.repeat(a, 3, axis=0)[::3], id="row-stride-3"),
        pytest.param(lambda a: a[::-1][::-1], id="double-reversed"),
        pytest.param(lambda a: np.ascontiguousarray(a.T).T, id="transposed-view"),
        pytest.param(lambda a: np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1], id="negative-strides-both"),
    ],
)
def test_views_and_layouts_equal_contiguous_copy(view):
    """Fortran order, strided and negative-stride views give the same kernel as a C-contiguous copy."""
    v1, v2 = view(BASE), view(BASE[2:6])
    assert np.array_equal(v1, BASE)
    check_same(kern(v1), kern(np.ascontiguousarray(BASE)))
    check_same(kern(v1, v2), kern(BASE, np.ascontiguousarray(BASE[2:6])))


def test_reversed_rows_view_gives_reversed_kernel():
    """x[::-1] (negative row stride) gives the kernel of the reversed copy: K[::-1, ::-1]."""
    want = kern(BASE)
    got = kern(BASE[::-1])
    check_same(got, kern(np.ascontiguousarray(BASE[::-1])))
    same(got.nngp, want.nngp[::-1, ::-1])
    same(got.ntk, want.ntk[::-1, ::-1])


def test_strided_column_view_equals_copy():
    """x[:, ::2] of a wider array equals the kernel of its contiguous copy."""
    wide = RNG.standard_normal((5, 12))
    check_same(kern(wide[:, ::2]), kern(np.ascontiguousarray(wide[:, ::2])))
    check_same(kern(wide[:, ::2], wide[1:3, 1::2]), kern(wide[:, ::2].copy(), wide[1:3, 1::2].copy()))


def test_inputs_are_not_modified():
    """The call leaves its input arrays untouched."""
    x1, x2 = BASE.copy(), BASE[:2].copy()
    kern(x1, x2)
    assert np.array_equal(x1, BASE) and np.array_equal(x2, BASE[:2])


def test_readonly_input_is_accepted():
    """A read-only array is accepted."""
    x = BASE.copy()
    x.setflags(write=False)
    check_same(kern(x), kern(BASE))


# --- extreme inputs -------------------------------------------------------------------------


def test_zero_vector_without_bias_gives_zero_not_nan():
    """With b_std = 0 a zero input row has zero NNGP and NTK against everything (not NaN)."""
    x = BASE.copy()
    x[2] = 0.0
    net = relu_net([(16, 1.5, 0.0), (16, 1.2, 0.0), (1, 0.9, 0.0)])
    k = net.kernel(x, get=("nngp", "ntk"))
    for m in k:
        assert np.all(np.isfinite(m))
        assert np.all(m[2] == 0.0) and np.all(m[:, 2] == 0.0)
    want_nngp, want_ntk = cf.relu_arccos_recursion(
        np.delete(x, 2, 0), None, [(16, 1.5, 0.0), (16, 1.2, 0.0), (1, 0.9, 0.0)]
    )
    np.testing.assert_allclose(np.delete(np.delete(k.nngp, 2, 0), 2, 1), want_nngp, rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.delete(np.delete(k.ntk, 2, 0), 2, 1), want_ntk, rtol=1e-12, atol=0)
    d = net.kernel(np.zeros((3, 4)), get="ntk", diagonal=True)
    assert np.array_equal(d, np.zeros(3))


@pytest.mark.parametrize("name", ["Relu", "Erf", "Tanh", "Sign", "Gelu", "Abs", "Selu", "Sin"])
def test_all_zero_inputs_with_bias_equal_closed_form_or_are_finite(name):
    """All-zero inputs with b_std > 0: every entry has var = cov = b² (ρ = 1): finite and all
    entries equal; for ReLU the value is the closed form at x = 0."""
    act = getattr(nk, name)()
    net = nk.serial(nk.Dense(4, W_std=1.5, b_std=0.3), act, nk.Dense(4, W_std=1.2, b_std=0.1), act, nk.Dense(1))
    k = net.kernel(np.zeros((3, 5)), get=("nngp", "ntk"))
    for m in k:
        assert np.all(np.isfinite(m)), m
        np.testing.assert_allclose(m, m[0, 0], rtol=1e-12)
    if name == "Relu":
        want = cf.relu_arccos_recursion(np.zeros((1, 5)), None, [(4, 1.5, 0.3), (4, 1.2, 0.1), (1, 1.0, None)])
        np.testing.assert_allclose(k.nngp[0, 0], want[0][0, 0], rtol=1e-12)
        np.testing.assert_allclose(k.ntk[0, 0], want[1][0, 0], rtol=1e-12)


@pytest.mark.parametrize("scale", [1e150, 1e100, 1e-100, 1e-150])
def test_relu_kernels_are_homogeneous_for_huge_and_tiny_inputs(scale):
    """Without biases a ReLU network is positively homogeneous: K(s·x) = s²·K(x) for NNGP and
    NTK, checked at s = 1e150 (K ≈ 1e300, so var1·var2 would overflow) down to s = 1e-150."""
    dense = [(16, 1.5, 0.0), (16, 1.2, None), (1, 0.9, 0.0)]
    net = relu_net(dense)
    x2 = BASE[:3] + 0.5
    for other in (None, x2):
        got = net.kernel(BASE * scale, None if other is None else other * scale, get=("nngp", "ntk"))
        want = cf.relu_arccos_recursion(BASE, other, dense)
        for g, w in zip(got, want, strict=True):
            assert np.all(np.isfinite(g)), g
            np.testing.assert_allclose(g / scale**2, w, rtol=1e-12, atol=1e-14 * np.max(np.abs(w)))


def test_relu_kernels_of_1e200_inputs_equal_bias_only_kernel():
    """x·x'/d of 1e-200-scaled inputs underflows (≈1e-400): with b_std > 0 the kernel equals
    the closed form at x = 0 to 1e-14, and with no bias it is 0 (or subnormal), never NaN."""
    dense = [(16, 1.5, 0.05), (16, 1.2, 0.1), (1, 0.9, 0.2)]
    k = relu_net(dense).kernel(BASE * 1e-200, get=("nngp", "ntk"))
    zero = cf.relu_arccos_recursion(np.zeros((1, 6)), None, dense)
    np.testing.assert_allclose(k.nngp, zero[0][0, 0], rtol=1e-14)
    np.testing.assert_allclose(k.ntk, zero[1][0, 0], rtol=1e-14)
    nobias = relu_net([(16, 1.5, 0.0), (16, 1.2, 0.0), (1, 0.9, 0.0)])
    for m in nobias.kernel(BASE * 1e-200, get=("nngp", "ntk")):
        assert np.all(np.isfinite(m)) and np.max(np.abs(m)) <= 1e-300, m


def test_erf_network_at_1e150_scale_reaches_the_saturated_closed_form():
    """Dense(W, b=0)→Erf→Dense at input scale s = 1e150: with A = W²x·x'/d and V = W²|x|²/d,
    nngp = W2²(2/π)·asin(2A/√((1/u + 2V1)(1/u + 2V2))) + b2² and
    ntk = nngp + W2²·A·(4/π)/√(1/u² + 2(V1 + V2)/u + 4(V1V2 − A²)), u = s² — the factored form
    of the arcsine formulas, whose unfactored (1 + 2V1u)(1 + 2V2u) overflows."""
    s, w1, w2, b2 = 1e150, 1.3, 0.9, 0.2
    net = nk.serial(nk.Dense(1, W_std=w1, b_std=0.0), nk.Erf(), nk.Dense(1, W_std=w2, b_std=b2))
    x1, x2 = BASE, BASE[:3] + 0.5
    d = x1.shape[1]
    a = w1**2 * x1 @ x2.T / d
    v1, v2 = w1**2 * np.sum(x1**2, 1) / d, w1**2 * np.sum(x2**2, 1) / d
    u = s * s
    nngp = w2**2 * 2 / np.pi * np.arcsin(2 * a / np.sqrt(np.outer(1 / u + 2 * v1, 1 / u + 2 * v2))) + b2**2
    ntk = nngp + w2**2 * a * (4 / np.pi) / np.sqrt(
        1 / u / u + 2 * np.add.outer(v1, v2) / u + 4 * (np.outer(v1, v2) - a**2)
    )
    k = net.kernel(x1 * s, x2 * s, get=("nngp", "ntk"))
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(k.ntk, ntk, rtol=1e-10, atol=1e-12)


def test_depth_200_relu_network_is_finite_with_correlations_in_unit_interval():
    """A depth-200 ReLU MLP gives finite kernels whose correlations k(x,x')/√(k(x,x)k(x',x'))
    lie in [−1, 1] (to 1e-12), for NNGP and NTK, and agree with the arc-cosine recursion to 1e-8
    (deep ReLU correlations approach 1, where ρ's rounding is amplified like √ε)."""
    x = BASE
    net = nk.mlp(depth=200, width=64, activation="relu", W_std=1.5, b_std=0.05)
    k = net.kernel(x, get=("nngp", "ntk"))
    want = cf.relu_arccos_recursion(x, None, [(64, 1.5, 0.05)] * 201)
    for m, w in zip(k, want, strict=True):
        assert np.all(np.isfinite(m))
        dg = np.sqrt(np.diag(m))
        corr = m / np.outer(dg, dg)
        assert np.all(np.abs(corr) <= 1 + 1e-12), corr
        np.testing.assert_allclose(m, w, rtol=1e-8)
    d = net.kernel(x, get=("nngp", "ntk"), diagonal=True)
    assert all(np.all(np.isfinite(v)) and np.all(v > 0) for v in d)


def test_large_diagonal_only_call_is_cheap_and_exact():
    """diagonal=True on 1,000,000 rows needs only O(N) memory and time: zero rows with biases
    give the bias-only closed form everywhere."""
    dense = [(16, 1.5, 0.05), (16, 1.2, 0.1), (1, 0.9, 0.2)]
    x = np.zeros((1_000_000, 2))
    d = relu_net(dense).kernel(x, get=("nngp", "ntk"), diagonal=True)
    zero = cf.relu_arccos_recursion(np.zeros((1, 2)), None, dense)
    assert d.nngp.shape == (1_000_000,)
    np.testing.assert_allclose(d.nngp, zero[0][0, 0], rtol=1e-14)
    np.testing.assert_allclose(d.ntk, zero[1][0, 0], rtol=1e-14)
    assert math.isfinite(float(d.ntk.sum()))


@pytest.mark.parametrize("value", [1e-310, 2.2250738585072014e-309, 5e-324])
def test_subnormal_inputs_give_the_kernel_of_zero_inputs(value):
    """Subnormal entries (|x| < 2.2e-308): x·x'/d underflows to 0, so the kernel is that of
    zero inputs — 0 without biases, the bias-only closed form with them — not an error."""
    x = np.array([[value, 0.0], [0.0, -value]])
    nobias = relu_net([(4, 1.0, None), (1, 1.0, 0.0)]).kernel(x, get=("nngp", "ntk"))
    for m in nobias:
        assert np.all(np.isfinite(m)) and np.max(np.abs(m)) <= 1e-300, m
    dense = [(4, 1.5, 0.05), (1, 0.9, 0.2)]
    got = relu_net(dense).kernel(x, get=("nngp", "ntk"))
    zero = cf.relu_arccos_recursion(np.zeros((1, 2)), None, dense)
    np.testing.assert_allclose(got.nngp, zero[0][0, 0], rtol=1e-14)
    np.testing.assert_allclose(got.ntk, zero[1][0, 0], rtol=1e-14)
