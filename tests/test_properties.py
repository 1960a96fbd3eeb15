"""Structural properties of the kernels, checked with hypothesis on small random problems:
symmetry, positive semi-definiteness, block consistency, diagonal=True, float32 vs float64,
and bitwise reproducibility across thread counts and tile sizes.
"""

from __future__ import annotations

import ntkrs as nk
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Activations integrated by Gauss–Hermite quadrature may be evaluated through different (equally
# valid) paths depending on the batch (ntkrs tabulates the rule on an angle grid when all rows
# share one norm); the implementation documents agreement to ≈1e-10 relative, so identities
# between calls are required to 1e-9 of the largest entry for them, 1e-12 for closed forms.
QUADRATURE = {"Tanh", "Selu"}
QUADRATURE_NETWORK_ACCURACY = {"Tanh": 2e-6, "Selu": 1e-9}
# E[φ'φ'] of ReLU-like activations and E[φφ] of Sign have a √-singularity at ρ = ±1: two
# calls whose x·x' differ in the last ulp (a legitimately different summation order, e.g.
# the symmetric path of kernel(x) vs the general one) can differ there by ≈ √(4ε)/π ≈ 1e-8
# of the scale (seen: antiparallel rows, ρ = −1 + 3e-15).  Cross-call identities allow 3e-8.
SINGULAR = {"Relu", "LeakyRelu", "Abs", "Sign"}


def consistency_tol(name: str) -> float:
    """Allowed difference, relative to the largest entry, between two calls computing one entry."""
    if name in SINGULAR:
        return 3e-8
    return 1e-9 if name in QUADRATURE else 1e-12


ACTIVATIONS = {
    "Relu": lambda: nk.Relu(),
    "LeakyRelu": lambda: nk.LeakyRelu(alpha=0.2),
    "Abs": lambda: nk.Abs(),
    "Erf": lambda: nk.Erf(),
    "Tanh": lambda: nk.Tanh(),
    "Gelu": lambda: nk.Gelu(),
    "Sin": lambda: nk.Sin(),
    "Sign": lambda: nk.Sign(),
    "Selu": lambda: nk.Selu(),
    "Rbf": lambda: nk.Rbf(),
}

finite = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def networks(draw, names=tuple(ACTIVATIONS), biases=None):
    """serial(Dense, φ, [Dense, φ,] Dense(1)) with random W_std ∈ [0.5, 2], b_std ∈ {None} ∪ [0, 1]."""
    biases = st.floats(0.0, 1.0) if biases is None else biases
    name = draw(st.sampled_from(names))
    depth = draw(st.integers(1, 2))
    layers = []
    for _ in range(depth):
        w = draw(st.floats(0.5, 2.0))
        b = draw(st.one_of(st.none(), biases))
        layers += [nk.Dense(draw(st.integers(1, 64)), W_std=w, b_std=b), ACTIVATIONS[name]()]
    layers.append(nk.Dense(1, W_std=draw(st.floats(0.5, 2.0)), b_std=draw(biases)))
    return name, nk.serial(*layers)


# entries that are 0 or of magnitude ≥ 1e-3, so that squares stay far from float32 underflow
float32_safe = st.one_of(st.just(0.0), st.floats(1e-3, 3.0), st.floats(-3.0, -1e-3))


@st.composite
def inputs(draw, max_rows=6, d=None, elements=finite):
    """(N, d) float64 arrays, N ≤ max_rows, d ≤ 5, entries in [−3, 3] (zeros and repeats likely)."""
    d = draw(st.integers(1, 5)) if d is None else d
    n = draw(st.integers(1, max_rows))
    return draw(arrays(np.float64, (n, d), elements=elements))


def _scale(a) -> float:
    return float(np.max(np.abs(a))) if np.size(a) else 0.0


@SETTINGS
@given(networks(), inputs())
def test_kernel_of_one_input_set_is_symmetric(net, x):
    """kernel(x) equals its transpose (to 1e-14 of its largest entry)."""
    _, net = net
    k = net.kernel(x, get=("nngp", "ntk"))
    for m in k:
        assert np.all(np.isfinite(m))
        assert np.max(np.abs(m - m.T)) <= 1e-14 * _scale(m)


@SETTINGS
@given(networks(), inputs(max_rows=8))
def test_kernels_are_positive_semidefinite(net, x):
    """NNGP and NTK Gram matrices have min eigenvalue ≥ −1e-9·(largest |eigenvalue|).

    For quadrature activations the entries are only as exact as the quadrature (networks are
    held to 2e-6 relative for Tanh, 1e-9 for the kinked Selu in test_networks), and an
    approximate kernel need not be PSD: by Weyl's inequality the bound there is
    −N·(that accuracy)·(largest |eigenvalue|) (duplicate rows make λ_min exactly 0).
    """
    name, net = net
    tol = len(x) * QUADRATURE_NETWORK_ACCURACY[name] if name in QUADRATURE else 1e-9
    for m in net.kernel(x, get=("nngp", "ntk")):
        ev = np.linalg.eigvalsh(0.5 * (m + m.T))
        assert ev[0] >= -tol * max(np.max(np.abs(ev)), 1e-300), ev


@SETTINGS
@given(networks(), st.data())
def test_cross_kernel_is_off_diagonal_block_of_joint_kernel(net, data):
    """kernel(x1, x2) and kernel(x1) are the (x1, x2) and (x1, x1) blocks of
    kernel(concat([x1, x2])), to consistency_tol of the largest entry."""
    name, net = net
    x1 = data.draw(inputs(max_rows=5))
    x2 = data.draw(inputs(max_rows=5, d=x1.shape[1]))
    joint = net.kernel(np.concatenate([x1, x2]), get=("nngp", "ntk"))
    cross = net.kernel(x1, x2, get=("nngp", "ntk"))
    own = net.kernel(x1, get=("nngp", "ntk"))
    n1 = len(x1)
    for what in ("nngp", "ntk"):
        j = getattr(joint, what)
        for got, block in ((getattr(cross, what), j[:n1, n1:]), (getattr(own, what), j[:n1, :n1])):
            assert got.shape == block.shape
            assert np.max(np.abs(got - block)) <= consistency_tol(name) * _scale(j), (what, got, block)


@SETTINGS
@given(networks(), inputs(max_rows=8))
def test_diagonal_true_equals_diagonal_of_full_kernel(net, x):
    """kernel(x, diagonal=True) is np.diag(kernel(x)), shape (N,) (1e-12 of the largest entry;
    1e-9 for quadrature activations; both paths see ρ = 1 exactly)."""
    name, net = net
    full = net.kernel(x, get=("nngp", "ntk"))
    diag = net.kernel(x, get=("nngp", "ntk"), diagonal=True)
    tol = 1e-9 if name in QUADRATURE else 1e-12  # ρ = 1 exactly on the diagonal: no √-singularity slack
    for f, d in zip(full, diag, strict=True):
        assert d.shape == (len(x),) and d.dtype == np.float64
        assert np.max(np.abs(d - np.diag(f))) <= tol * _scale(f), (d, np.diag(f))
    single = net.kernel(x, get="ntk", diagonal=True)
    assert np.max(np.abs(single - np.diag(full.ntk))) <= tol * _scale(full.ntk)


# float32 vs float64: the maps are evaluated in single precision (ε = 6e-8).  For maps that
# are Lipschitz in (var, cov) the error is a few ε times the condition of ≤ 3 layers: we
# require 1e-4 of the largest entry.  Maps with a square-root singularity at ρ = ±1 (the
# arccos/arcsin in E[φ'φ'] of ReLU-like activations and in E[φφ] of Sign) turn a δρ ≈ 2ε
# rounding into ≈ √(4ε)/π ≈ 2e-4 relative, so for those kernels we require 1e-3.
F32_TOL = 1e-4
F32_SINGULAR = {
    ("Relu", "ntk"),
    ("LeakyRelu", "ntk"),
    ("Abs", "ntk"),
    ("Sign", "nngp"),
    ("Sign", "ntk"),
    ("Selu", "ntk"),
}


@SETTINGS
@given(networks(biases=float32_safe.map(abs)), inputs(max_rows=8, elements=float32_safe))
def test_float32_matches_float64_within_single_precision_tolerance(net, x):
    """dtype=np.float32 gives float32 arrays within 1e-4 (1e-3 at √-singular maps) of float64.

    Inputs and b_std are 0 or ≥ 1e-3 in magnitude: x·x'/d or b_std² of smaller ones underflows
    in float32 (e.g. x = 1e-38 gives variance 0 in float32 but 1e-76 in float64), a property of
    the format.
    """
    name, net = net
    k64 = net.kernel(x, get=("nngp", "ntk"))
    k32 = net.kernel(x, get=("nngp", "ntk"), dtype=np.float32)
    for what, a, b in zip(("nngp", "ntk"), k32, k64, strict=True):
        assert a.dtype == np.float32 and a.shape == b.shape
        tol = 1e-3 if (name, what) in F32_SINGULAR else F32_TOL
        assert np.all(np.isfinite(a))
        assert np.max(np.abs(a.astype(np.float64) - b)) <= tol * _scale(b) + 1e-30, (what, a, b)


@pytest.mark.parametrize("act", [nk.Sin(), nk.Cos(), nk.Rbf(0.5)])
def test_float32_sin_family_at_tiny_variance_does_not_cancel(act):
    """Found by the property above: zero inputs with b_std = 1e-3 give variances of 1e-6, where
    e^{−ε} − e^{−3ε} cancels in float32 (1.3% error); the map is evaluated without that difference."""
    net = nk.serial(nk.Dense(1, W_std=1.0, b_std=0.001), act, nk.Dense(1, W_std=1.0, b_std=0.0))
    x = np.zeros((2, 1))
    for g in ("nngp", "ntk"):
        k64 = net.kernel(x, get=g)
        k32 = net.kernel(x, get=g, dtype=np.float32)
        assert np.max(np.abs(k32 - k64)) <= F32_TOL * _scale(k64), (g, k32, k64)


@pytest.fixture
def restore_threads():
    before = nk.get_num_threads()
    yield
    nk.set_num_threads(before)


def test_set_num_threads_round_trips(restore_threads):
    """set_num_threads(n) is reflected by get_num_threads()."""
    for n in (1, 2, 3):
        nk.set_num_threads(n)
        assert nk.get_num_threads() == n


def _bitwise_or_close(a, b):
    return np.array_equal(a, b) or np.max(np.abs(a - b)) <= 1e-14 * _scale(b)


@pytest.mark.parametrize("name", ["Relu", "Erf", "Tanh", "Sign"])
def test_results_do_not_depend_on_thread_count_or_tile_size(name, restore_threads):
    """1 vs 2 threads and tile_size 16 / 64 / default give identical results (≤1e-14 of max)."""
    rng = np.random.default_rng(5)
    n1, n2 = (50, 37) if name == "Tanh" else (150, 97)  # quadrature entries cost ~1000× more
    x1, x2 = rng.standard_normal((n1, 7)), rng.standard_normal((n2, 7))
    act = ACTIVATIONS[name]()
    net = nk.serial(nk.Dense(8, W_std=1.4, b_std=0.1), act, nk.Dense(8, W_std=1.2, b_std=0.2), act, nk.Dense(1))
    nk.set_num_threads(1)
    base = [net.kernel(x1, x2, get=("nngp", "ntk")), net.kernel(x1, get=("nngp", "ntk"))]
    for threads in (1, 2):
        nk.set_num_threads(threads)
        for tile in (None, 16, 64):
            kw = {} if tile is None else {"tile_size": tile}
            got = [net.kernel(x1, x2, get=("nngp", "ntk"), **kw), net.kernel(x1, get=("nngp", "ntk"), **kw)]
            for g, b in zip(got, base, strict=True):
                assert _bitwise_or_close(g.nngp, b.nngp), (threads, tile)
                assert _bitwise_or_close(g.ntk, b.ntk), (threads, tile)


@settings(max_examples=25, deadline=None)
@given(networks(), inputs(max_rows=40), st.sampled_from([1, 3, 16, 64]), st.integers(1, 2))
def test_tiling_is_invisible_for_random_problems(net, x, tile, threads):
    """Any tile size and thread count reproduces the default result (≤1e-14 of max)."""
    _, net = net
    before = nk.get_num_threads()
    try:
        want = net.kernel(x, get=("nngp", "ntk"))
        nk.set_num_threads(threads)
        got = net.kernel(x, get=("nngp", "ntk"), tile_size=tile)
    finally:
        nk.set_num_threads(before)
    assert _bitwise_or_close(got.nngp, want.nngp) and _bitwise_or_close(got.ntk, want.ntk)


def test_single_row_quadrature_kernel_equals_its_block_in_a_larger_batch():
    """A regression example found by hypothesis: for a Tanh network kernel([[2]]) must equal the
    (0, 0) entry of kernel([[2], [0]]) to the documented ≈1e-10 (asserted: 1e-9 of the scale),
    although one batch has equal row norms (angle-table path) and the other does not."""
    net = nk.serial(nk.Dense(1, W_std=2.0), nk.Tanh(), nk.Dense(1, W_std=1.0), nk.Tanh(), nk.Dense(1, b_std=0.0))
    alone = net.kernel(np.array([[2.0]]), get=("nngp", "ntk"))
    joint = net.kernel(np.array([[2.0], [0.0]]), get=("nngp", "ntk"))
    for a, j in zip(alone, joint, strict=True):
        assert abs(a[0, 0] - j[0, 0]) <= 1e-9 * _scale(j), (a[0, 0], j[0, 0])
