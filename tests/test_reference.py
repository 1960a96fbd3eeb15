"""The test-suite's own references are right: quadratures against hand-derived closed forms,
quadrature methods against each other, and the Monte Carlo back-propagation against finite
differences.  These tests do not use ntkrs; they make the other tests' references trustworthy.
"""

from __future__ import annotations

import math

import closed_forms as cf
import numpy as np
import pytest
import reference as ref
from scipy import integrate

GRID = ref.grid()

# (reference activation, closed form) pairs: the quadrature reference must reproduce the
# closed form to 1e-12 (relative + absolute), well inside the 1e-10 the maps are tested to.
CLOSED_FORM_CASES = {
    "Identity": (ref.phi("Identity"), cf.identity),
    "Relu": (ref.phi("Relu"), cf.relu),
    "LeakyRelu(0.1)": (ref.phi("LeakyRelu", 0.1), lambda *g: cf.abrelu(*g, 0.1, 1.0)),
    "ABRelu(-0.4,1.3)": (ref.phi("ABRelu", -0.4, 1.3), lambda *g: cf.abrelu(*g, -0.4, 1.3)),
    "Abs": (ref.phi("Abs"), lambda *g: cf.abrelu(*g, -1.0, 1.0)),
    "Sign": (ref.phi("Sign"), cf.sign),
    "RectifiedMonomial(0)": (ref.phi("RectifiedMonomial", 0), lambda *g: cf.rectified_monomial(*g, 0)),
    "RectifiedMonomial(1)": (ref.phi("RectifiedMonomial", 1), lambda *g: cf.rectified_monomial(*g, 1)),
    "RectifiedMonomial(2)": (ref.phi("RectifiedMonomial", 2), lambda *g: cf.rectified_monomial(*g, 2)),
    "Erf": (ref.phi("Erf"), cf.erf),
    "Erf(1.2,0.7,0.1)": (ref.phi("Erf", 1.2, 0.7, 0.1), lambda *g: cf.erf(*g, 1.2, 0.7, 0.1)),
    "Sigmoid_like": (ref.phi("Sigmoid_like"), lambda *g: cf.erf(*g, 0.5, ref.SIGMOID_LIKE_B, 0.5)),
    "Sin(1.1,0.8,0.3)": (ref.phi("Sin", 1.1, 0.8, 0.3), lambda *g: cf.sin(*g, 1.1, 0.8, 0.3)),
    "Cos(1.1,0.8,0.3)": (ref.phi("Cos", 1.1, 0.8, 0.3), lambda *g: cf.cos(*g, 1.1, 0.8, 0.3)),
    "Rbf(0.7)": (ref.phi("Rbf", 0.7), lambda *g: cf.rbf(*g, 0.7)),
    "Exp(0.9,0.6)": (ref.phi("Exp", 0.9, 0.6), lambda *g: cf.exp(*g, 0.9, 0.6)),
    "Gaussian": (ref.phi("Gaussian"), cf.gaussian),
    "Gaussian(1.3,0.05)": (ref.phi("Gaussian", 1.3, 0.05), lambda *g: cf.gaussian(*g, 1.3, 0.05)),
}


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * (1.0 + abs(b))


@pytest.mark.parametrize("name", sorted(CLOSED_FORM_CASES))
def test_quadrature_reference_reproduces_closed_form(name):
    """reference_maps (Gauss–Hermite or polar) equals the hand-derived closed form to 1e-12."""
    p, closed = CLOSED_FORM_CASES[name]
    bad = []
    for v1, v2, c in GRID:
        got, want = ref.reference_maps(p, v1, v2, c), closed(v1, v2, c)
        for i in range(2):
            if not _close(got[i], want[i], 1e-12):
                bad.append((v1, v2, c, i, got[i], want[i]))
    assert not bad, bad[:5]


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_hermite_reference_at_unit_variance_is_rho_power(n):
    """E[He_n(u)He_n(v)]/n! = ρ^n and the derivative map n ρ^{n−1} at unit variances (Mehler)."""
    p = ref.phi("Hermite", n)
    for rho in ref.CORRELATIONS:
        got, want = ref.reference_maps(p, 1.0, 1.0, rho), cf.hermite_unit(1.0, 1.0, rho, n)
        assert _close(got[0], want[0], 1e-12) and _close(got[1], want[1], 1e-12), (rho, got, want)


def test_polar_piecewise_reproduces_relu_closed_form():
    """The radial/angular Gauss–Legendre method (used for ELU/SELU, tanh, ...) is exact on ReLU."""
    p = ref.phi("Relu")
    for v1, v2, c in GRID:
        want = cf.relu(v1, v2, c)
        assert _close(ref.polar_piecewise_expectation(p.f, p.f, v1, v2, c), want[0], 1e-13)
        assert _close(ref.polar_piecewise_expectation(p.df, p.df, v1, v2, c), want[1], 1e-13)


@pytest.mark.parametrize("name", ["Tanh", "Sigmoid", "Softplus", "Silu", "Mish", "Gelu"])
def test_polar_piecewise_agrees_with_high_degree_gauss_hermite(name):
    """Two independent quadratures agree for the smooth numerical activations (GH at 350 points).

    Gauss–Hermite converges only like exp(−c√n) for tanh (poles at ±iπ/2), so the agreement
    bound is 1e-11; for the others both methods are converged to ~1e-14.
    """
    p = ref.phi(name)
    tol = 1e-11 if name == "Tanh" else 1e-13
    for v1, v2, c in GRID:
        for f in (p.f, p.df):
            a = ref.polar_piecewise_expectation(f, f, v1, v2, c)
            b = ref.gauss_hermite_expectation(f, f, v1, v2, c, degree=350)
            assert _close(a, b, tol), (name, v1, v2, c, a, b)


def _nested_quad(f, g, var1, var2, cov):
    """E[f(u)g(v)] by nested adaptive scipy quad, splitting at the kinks u = 0 and v = 0."""
    s1, s2 = math.sqrt(var1), math.sqrt(var2)
    rho = cov / (s1 * s2)
    a, b = s2 * rho, s2 * math.sqrt(1 - rho * rho)
    norm = 1 / math.sqrt(2 * math.pi)

    def inner(z1):
        kink = -a * z1 / b  # v = a z1 + b z2 = 0

        def h(z2):
            return float(g(np.asarray(a * z1 + b * z2))) * norm * math.exp(-0.5 * z2 * z2)

        left = integrate.quad(h, -np.inf, kink, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
        right = integrate.quad(h, kink, np.inf, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
        return float(f(np.asarray(s1 * z1))) * norm * math.exp(-0.5 * z1 * z1) * (left + right)

    opts = {"epsabs": 1e-14, "epsrel": 1e-12, "limit": 200}
    return integrate.quad(inner, -np.inf, 0, **opts)[0] + integrate.quad(inner, 0, np.inf, **opts)[0]


@pytest.mark.parametrize(("name", "var1", "var2", "rho"), [("Elu", 0.25, 2.7, -0.9), ("Selu", 2.7, 1.0, 0.5)])
def test_polar_piecewise_agrees_with_nested_adaptive_quad_for_kinked_activations(name, var1, var2, rho):
    """For ELU/SELU (kink at 0, not homogeneous) the polar reference equals nested scipy quad."""
    p = ref.phi(name)
    cov = rho * math.sqrt(var1 * var2)
    for f in (p.f, p.df):
        a = ref.polar_piecewise_expectation(f, f, var1, var2, cov)
        b = _nested_quad(f, f, var1, var2, cov)
        assert _close(a, b, 1e-10), (a, b)


def test_degenerate_variance_reference_is_product_of_one_dimensional_expectations():
    """With var1 = 0 (u ≡ 0): E[f(u)g(v)] = f(0)·E[g(v)], e.g. for Gelu' and for Cos."""
    p = ref.phi("Cos", 1.0, 1.0, 0.0)
    # cos(0)·E[cos v] = e^{−var/2}
    assert _close(ref.reference_maps(p, 0.0, 2.0, 0.0)[0], math.exp(-1.0), 1e-13)
    g = ref.phi("Gelu")
    # Gelu'(0) = 1/2, E[Gelu'(v)] = 1/2 (Gelu' − 1/2 is odd)
    assert _close(ref.reference_maps(g, 0.0, 1.7, 0.0)[1], 0.25, 1e-13)


def test_backprop_ntk_matches_finite_difference_jacobian():
    """The sampler's per-layer back-propagated NTK equals J Jᵀ from central finite differences."""
    rng = np.random.default_rng(1)
    layers = [
        ref.DenseSpec(4, 1.3, 0.2),
        ref.ActSpec(ref.phi("Tanh")),
        ref.DenseSpec(3, 0.9, 0.1),
        ref.ActSpec(ref.phi("Erf", 1.2, 0.7, 0.1)),
        ref.DenseSpec(2, 1.1, 0.3),
    ]
    x = rng.standard_normal((3, 5))
    params = ref.init_params(layers, 5, rng)
    nngp, ntk = ref.empirical_kernels(params, layers, x)

    flat = [arr for wb in params for arr in wb]
    jac = []  # rows: parameters; entries: (N, K) output derivative
    h = 1e-6
    for arr in flat:
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + h
            up = ref.forward(params, layers, x)
            arr[idx] = old - h
            down = ref.forward(params, layers, x)
            arr[idx] = old
            jac.append((up - down) / (2 * h))
    j = np.stack(jac)  # (P, N, K)
    fd_ntk = np.einsum("pxk,pyk->xy", j, j) / j.shape[2]
    out = ref.forward(params, layers, x)
    np.testing.assert_allclose(nngp, out @ out.T / out.shape[1], rtol=1e-14)
    np.testing.assert_allclose(ntk, fd_ntk, rtol=1e-7, atol=1e-9)


def test_monte_carlo_sampler_is_unbiased_for_one_hidden_relu_layer():
    """With one hidden layer the empirical kernels are unbiased at any width; their mean over
    200 networks of width 256 matches the arc-cosine closed form within 5 standard errors.
    """
    x = np.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.7], [-0.8, 0.1, 0.4]])
    w1, b1, w2, b2 = 1.5, 0.05, 0.9, 0.1
    layers = [ref.DenseSpec(256, w1, b1), ref.ActSpec(ref.phi("Relu")), ref.DenseSpec(8, w2, b2)]
    nngps, ntks = ref.sample_empirical_kernels(x, layers, 200, seed=3)

    k0 = x @ x.T / 3
    k1 = w1**2 * k0 + b1**2
    t1 = k1
    n = len(x)
    e_phi, e_dphi = np.empty((n, n)), np.empty((n, n))
    for i in range(n):
        for j in range(n):
            e_phi[i, j], e_dphi[i, j] = cf.relu(k1[i, i], k1[j, j], k1[i, j])
    k2 = w2**2 * e_phi + b2**2
    t2 = k2 + w2**2 * t1 * e_dphi
    for samples, exact in ((nngps, k2), (ntks, t2)):
        mean = samples.mean(0)
        se = samples.std(0, ddof=1) / math.sqrt(len(samples))
        assert np.all(np.abs(mean - exact) < 5 * se + 1e-12), (mean, exact, se)
