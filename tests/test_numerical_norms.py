"""Numerical activations on inputs of unequal norms (issue 15, item 2): the general path (a Mehler
series per entry, the polar rule where the series' truncation bound is not met) keeps the accuracy
of the rule. Speed is measured by benchmarks/numerical_norms.py, not here.
"""

from __future__ import annotations

import ntkrs as nk
import numpy as np
import pytest
import reference as ref

RNG = np.random.default_rng(5)
X = RNG.standard_normal((6, 5)) * np.array([0.5, 0.8, 1.0, 1.3, 1.7, 2.0])[:, None]
X2 = RNG.standard_normal((3, 5)) * np.array([0.6, 1.1, 1.9])[:, None]


def net_and_spec(make, p, depth):
    layers, spec = [], []
    for _ in range(depth):
        layers += [nk.Dense(4, W_std=1.5, b_std=0.05), make()]
        spec += [ref.DenseSpec(4, 1.5, 0.05), ref.ActSpec(p)]
    return nk.serial(*layers, nk.Dense(1, W_std=1.5, b_std=0.05)), spec + [ref.DenseSpec(1, 1.5, 0.05)]


@pytest.mark.parametrize("name", ["Tanh", "Silu"])
def test_unequal_norms_depth_3_match_high_order_quadrature(name):
    """Depth 3, rows of norms spread over 0.5–2× (x2 None and given; duplicate rows, so ρ = 1 off
    the diagonal too): NNGP and NTK within 1e-7 of the recursion with Gauss–Hermite(300) maps —
    the default rule's own map error is 3.4e-9/7e-8 (benchmarks/RESULTS.md), and the entries the
    series cannot take still go through it."""
    net, spec = net_and_spec(getattr(nk, name), ref.phi(name), 3)
    x1 = np.vstack([X, X[2:3]])
    for x2 in (None, X2):
        want_nngp, want_ntk = ref.recursion_kernels(x1, x2, spec)
        k = net.kernel(x1, x2, ("nngp", "ntk"))
        for got, want in ((k.nngp, want_nngp), (k.ntk, want_ntk)):
            err = np.max(np.abs(got - want)) / np.max(np.abs(want))
            assert err <= 1e-7, err


def test_kinked_elementwise_falls_back_to_the_rule_where_the_series_is_slow():
    """ReLU as a user function (user functions keep the polar rule: their spectra may decay
    algebraically): the kernel matches the closed-form Relu (1e-7)."""
    depth = 2
    relu_fn = nk.Elementwise(lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float))
    layers_fn, layers_cf = [], []
    for _ in range(depth):
        layers_fn += [nk.Dense(4, W_std=1.4, b_std=0.1), relu_fn]
        layers_cf += [nk.Dense(4, W_std=1.4, b_std=0.1), nk.Relu()]
    x1 = np.vstack([X, -X[1:2], 1.0000001 * X[3:4]])
    got = nk.serial(*layers_fn).kernel(x1, None, ("nngp", "ntk"))
    want = nk.serial(*layers_cf).kernel(x1, None, ("nngp", "ntk"))
    for g, w in zip(got, want, strict=True):
        assert np.max(np.abs(g - w)) / np.max(np.abs(w)) <= 1e-7
