"""Every activation's ``maps(var1, var2, cov)`` = (E[φ(u)φ(v)], E[φ'(u)φ'(v)]) against
independent references: the quadratures of ``reference.py`` (validated in test_reference.py)
and, where one exists, a closed form derived in ``closed_forms.py``.

Tolerances (|got − want| ≤ tol·(1 + |want|), i.e. relative + absolute):
* closed-form activations: 1e-10, except at ρ = ±1 for the maps with a square-root
  singularity there (E[φ'φ'] of ReLU-like activations = arccos-type, E[φφ] of Sign/step =
  arcsin/arccos-type): cov = ±√(var1·var2) is itself rounded, so ρ is only known to ~2 ulp
  and the exact map of the rounded inputs moves by up to √(2·4.4e-16)/π ≈ 1e-8; there
  SINGULAR_TOL = 3e-8;
* quadrature activations at their default ``quad_degree`` (48), with the accuracy the README
  documents for the polar rule: 2e-7 for the smooth ones (Tanh, Sigmoid, Softplus, Silu, Mish,
  Elementwise of smooth functions; Tanh's derivative map is the worst, ~7e-8 at variance 10),
  1e-10 for ELU/SELU, whose kink at 0 lies on the arcs' ends (measured ~1e-14).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import closed_forms as cf
import ntkrs as nk
import numpy as np
import pytest
import reference as ref

GRID = ref.grid()
V1 = np.array([g[0] for g in GRID])
V2 = np.array([g[1] for g in GRID])
COV = np.array([g[2] for g in GRID])

CLOSED_TOL = 1e-10
SINGULAR_TOL = 3e-8
SMOOTH_QUAD_TOL = 2e-7
# ELU/SELU: the integrand has a kink (ELU with α = 1: jump of φ''; SELU and ELU α ≠ 1: jump of φ')
# along u = 0 and v = 0; the implementation's polar rule puts those lines on its arcs' ends, so
# it converges spectrally (README: ≲1e-14). Asserted with margin for rounding in the sums.
KINKED_TOL = 1e-10


@dataclass(frozen=True)
class Case:
    make: Callable[[], object]  # builds the ntkrs activation
    phi: ref.Phi  # the reference φ, φ'
    tol: float
    closed: Callable[[float, float, float], tuple[float, float]] | None = None
    singular: tuple[bool, bool] = (False, False)  # (E[φφ], E[φ'φ']) √-singular at ρ = ±1


CASES: dict[str, Case] = {
    # closed forms
    "Identity": Case(lambda: nk.Identity(), ref.phi("Identity"), CLOSED_TOL, cf.identity),
    "Relu": Case(lambda: nk.Relu(), ref.phi("Relu"), CLOSED_TOL, cf.relu, singular=(False, True)),
    "LeakyRelu(0.1)": Case(
        lambda: nk.LeakyRelu(alpha=0.1),
        ref.phi("LeakyRelu", 0.1),
        CLOSED_TOL,
        lambda *g: cf.abrelu(*g, 0.1, 1.0),
        singular=(False, True),
    ),
    "LeakyRelu(-0.3)": Case(
        lambda: nk.LeakyRelu(alpha=-0.3),
        ref.phi("LeakyRelu", -0.3),
        CLOSED_TOL,
        lambda *g: cf.abrelu(*g, -0.3, 1.0),
        singular=(False, True),
    ),
    "ABRelu(-0.4,1.3)": Case(
        lambda: nk.ABRelu(a=-0.4, b=1.3),
        ref.phi("ABRelu", -0.4, 1.3),
        CLOSED_TOL,
        lambda *g: cf.abrelu(*g, -0.4, 1.3),
        singular=(False, True),
    ),
    "ABRelu(0.2,0.7)": Case(
        lambda: nk.ABRelu(a=0.2, b=0.7),
        ref.phi("ABRelu", 0.2, 0.7),
        CLOSED_TOL,
        lambda *g: cf.abrelu(*g, 0.2, 0.7),
        singular=(False, True),
    ),
    "Abs": Case(
        lambda: nk.Abs(), ref.phi("Abs"), CLOSED_TOL, lambda *g: cf.abrelu(*g, -1.0, 1.0), singular=(False, True)
    ),
    "Sign": Case(lambda: nk.Sign(), ref.phi("Sign"), CLOSED_TOL, cf.sign, singular=(True, False)),
    "Erf": Case(lambda: nk.Erf(), ref.phi("Erf"), CLOSED_TOL, cf.erf),
    "Erf(1.2,0.7,0.1)": Case(
        lambda: nk.Erf(a=1.2, b=0.7, c=0.1),
        ref.phi("Erf", 1.2, 0.7, 0.1),
        CLOSED_TOL,
        lambda *g: cf.erf(*g, 1.2, 0.7, 0.1),
    ),
    "Sigmoid_like": Case(
        lambda: nk.Sigmoid_like(),
        ref.phi("Sigmoid_like"),
        CLOSED_TOL,
        lambda *g: cf.erf(*g, 0.5, ref.SIGMOID_LIKE_B, 0.5),
    ),
    "Gelu": Case(lambda: nk.Gelu(), ref.phi("Gelu"), CLOSED_TOL),
    "Sin": Case(lambda: nk.Sin(), ref.phi("Sin"), CLOSED_TOL, cf.sin),
    "Sin(1.1,0.8,0.3)": Case(
        lambda: nk.Sin(a=1.1, b=0.8, c=0.3),
        ref.phi("Sin", 1.1, 0.8, 0.3),
        CLOSED_TOL,
        lambda *g: cf.sin(*g, 1.1, 0.8, 0.3),
    ),
    "Cos": Case(lambda: nk.Cos(), ref.phi("Cos"), CLOSED_TOL, cf.cos),
    "Cos(1.1,0.8,0.3)": Case(
        lambda: nk.Cos(a=1.1, b=0.8, c=0.3),
        ref.phi("Cos", 1.1, 0.8, 0.3),
        CLOSED_TOL,
        lambda *g: cf.cos(*g, 1.1, 0.8, 0.3),
    ),
    "Rbf": Case(lambda: nk.Rbf(), ref.phi("Rbf"), CLOSED_TOL, cf.rbf),
    "Rbf(0.7)": Case(lambda: nk.Rbf(gamma=0.7), ref.phi("Rbf", 0.7), CLOSED_TOL, lambda *g: cf.rbf(*g, 0.7)),
    "Exp": Case(lambda: nk.Exp(), ref.phi("Exp"), CLOSED_TOL, cf.exp),
    "Exp(0.9,-0.6)": Case(
        lambda: nk.Exp(a=0.9, b=-0.6), ref.phi("Exp", 0.9, -0.6), CLOSED_TOL, lambda *g: cf.exp(*g, 0.9, -0.6)
    ),
    "Gaussian": Case(lambda: nk.Gaussian(), ref.phi("Gaussian"), CLOSED_TOL, cf.gaussian),
    # b > 0 but small enough that E[e^{b(u²+v²)}] converges on the whole grid (2b·5.4 < 1)
    "Gaussian(1.3,0.05)": Case(
        lambda: nk.Gaussian(a=1.3, b=0.05),
        ref.phi("Gaussian", 1.3, 0.05),
        CLOSED_TOL,
        lambda *g: cf.gaussian(*g, 1.3, 0.05),
    ),
    **{
        f"Monomial({n})": Case(lambda n=n: nk.Monomial(degree=n), ref.phi("Monomial", n), CLOSED_TOL)
        for n in (0, 1, 2, 3, 5)
    },
    **{
        f"RectifiedMonomial({n})": Case(
            lambda n=n: nk.RectifiedMonomial(degree=n),
            ref.phi("RectifiedMonomial", n),
            CLOSED_TOL,
            (lambda *g, n=n: cf.rectified_monomial(*g, n)) if n <= 2 else None,
            singular=(n == 0, n == 1),
        )
        for n in (0, 1, 2, 3)
    },
    "Polynomial([0.3,-1.2,0.5,0.25])": Case(
        lambda: nk.Polynomial(coef=[0.3, -1.2, 0.5, 0.25]), ref.phi("Polynomial", [0.3, -1.2, 0.5, 0.25]), CLOSED_TOL
    ),
    "Polynomial([0.7])": Case(lambda: nk.Polynomial(coef=[0.7]), ref.phi("Polynomial", [0.7]), CLOSED_TOL),
    **{
        f"Hermite({n})": Case(lambda n=n: nk.Hermite(degree=n), ref.phi("Hermite", n), CLOSED_TOL) for n in (1, 2, 3, 5)
    },
    # Gauss–Hermite activations
    "Tanh": Case(lambda: nk.Tanh(), ref.phi("Tanh"), SMOOTH_QUAD_TOL),
    "Sigmoid": Case(lambda: nk.Sigmoid(), ref.phi("Sigmoid"), SMOOTH_QUAD_TOL),
    "Softplus": Case(lambda: nk.Softplus(), ref.phi("Softplus"), SMOOTH_QUAD_TOL),
    "Silu": Case(lambda: nk.Silu(), ref.phi("Silu"), SMOOTH_QUAD_TOL),
    "Mish": Case(lambda: nk.Mish(), ref.phi("Mish"), SMOOTH_QUAD_TOL),
    "Elu": Case(lambda: nk.Elu(), ref.phi("Elu"), KINKED_TOL),
    "Elu(0.5)": Case(lambda: nk.Elu(alpha=0.5), ref.phi("Elu", 0.5), KINKED_TOL),
    "Selu": Case(lambda: nk.Selu(), ref.phi("Selu"), KINKED_TOL),
    "Elementwise(tanh,dtanh)": Case(
        lambda: nk.Elementwise(np.tanh, lambda x: 1.0 - np.tanh(x) ** 2), ref.phi("Tanh"), SMOOTH_QUAD_TOL
    ),
    # no derivative given: the implementation differentiates numerically; same 1e-6 bound
    "Elementwise(tanh)": Case(lambda: nk.Elementwise(np.tanh), ref.phi("Tanh"), SMOOTH_QUAD_TOL),
    "Elementwise(sin+0.3cos(2x))": Case(
        lambda: nk.Elementwise(lambda x: np.sin(x) + 0.3 * np.cos(2 * x), lambda x: np.cos(x) - 0.6 * np.sin(2 * x)),
        ref.Phi(lambda x: np.sin(x) + 0.3 * np.cos(2 * x), lambda x: np.cos(x) - 0.6 * np.sin(2 * x), "gauss_hermite"),
        SMOOTH_QUAD_TOL,
    ),
}


def _reference_values(case: Case) -> tuple[np.ndarray, np.ndarray]:
    vals = np.array([ref.reference_maps(case.phi, v1, v2, c) for v1, v2, c in GRID])
    return vals[:, 0], vals[:, 1]


AT_RHO_ONE = np.isclose(np.abs(COV), np.sqrt(V1 * V2), rtol=1e-15, atol=0)


def _tolerances(case: Case, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-grid-point tolerance for (E[φφ], E[φ'φ']): SINGULAR_TOL at ρ = ±1 where flagged."""
    out = []
    for flag in case.singular:
        t = np.full(V1.shape, tol)
        if flag:
            t[AT_RHO_ONE] = max(tol, SINGULAR_TOL)
        out.append(t)
    return out[0], out[1]


def _report(got, want, tol) -> list:
    err = np.abs(np.asarray(got) - want) / (1 + np.abs(want))
    bad = np.flatnonzero(~(err <= tol))
    return [(V1[i], V2[i], COV[i] / math.sqrt(V1[i] * V2[i]), got[i], want[i], err[i]) for i in bad[:6]]


@pytest.mark.parametrize("name", list(CASES))
def test_maps_match_quadrature_reference_on_grid(name):
    """act.maps on the (var1, var2, ρ) grid equals the independent quadrature reference."""
    case = CASES[name]
    nngp, dnngp = case.make().maps(V1, V2, COV)
    want_nngp, want_dnngp = _reference_values(case)
    assert np.asarray(nngp).dtype == np.float64 and np.asarray(dnngp).dtype == np.float64
    assert np.shape(nngp) == V1.shape and np.shape(dnngp) == V1.shape
    tol_nngp, tol_dnngp = _tolerances(case, case.tol)
    bad = _report(nngp, want_nngp, tol_nngp)
    assert not bad, ("E[φφ] mismatch (var1, var2, ρ, got, want, err)", bad)
    bad = _report(dnngp, want_dnngp, tol_dnngp)
    assert not bad, ("E[φ'φ'] mismatch (var1, var2, ρ, got, want, err)", bad)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.closed is not None])
def test_maps_match_hand_derived_closed_form(name):
    """act.maps equals the closed form derived in closed_forms.py to 1e-10 (relative + absolute)."""
    case = CASES[name]
    nngp, dnngp = case.make().maps(V1, V2, COV)
    want = np.array([case.closed(v1, v2, c) for v1, v2, c in GRID])
    tol_nngp, tol_dnngp = _tolerances(case, CLOSED_TOL)
    bad = _report(nngp, want[:, 0], tol_nngp)
    assert not bad, ("E[φφ] mismatch (var1, var2, ρ, got, want, err)", bad)
    bad = _report(dnngp, want[:, 1], tol_dnngp)
    assert not bad, ("E[φ'φ'] mismatch (var1, var2, ρ, got, want, err)", bad)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_hermite_map_at_unit_variance_is_rho_power(n):
    """Hermite(n) at unit variances gives E = ρ^n and E[φ'φ'] = n ρ^{n−1} (NT's formula)."""
    rho = np.array(ref.CORRELATIONS)
    nngp, dnngp = nk.Hermite(degree=n).maps(np.ones_like(rho), np.ones_like(rho), rho)
    np.testing.assert_allclose(nngp, rho**n, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dnngp, n * rho ** (n - 1), rtol=1e-12, atol=1e-12)


def test_rbf_nngp_is_squared_exponential_of_distance():
    """Rbf(γ): E[φφ] = exp(−γ(var1 + var2 − 2cov)), as specified."""
    for gamma in (0.3, 1.0, 2.0):
        nngp, _ = nk.Rbf(gamma=gamma).maps(V1, V2, COV)
        np.testing.assert_allclose(nngp, np.exp(-gamma * (V1 + V2 - 2 * COV)), rtol=1e-12, atol=1e-13)


def test_sign_and_step_derivative_maps_are_zero():
    """Sign and RectifiedMonomial(0) have their derivative map defined as 0."""
    for act in (nk.Sign(), nk.RectifiedMonomial(degree=0)):
        _, dnngp = act.maps(V1, V2, COV)
        assert np.all(np.asarray(dnngp) == 0.0)


def test_polynomial_coefficients_are_in_increasing_degree_order():
    """Polynomial([c0, c1]) is c0 + c1·x (numpy.polynomial order): [0, 1] is the identity."""
    nngp, dnngp = nk.Polynomial(coef=[0.0, 1.0]).maps(V1, V2, COV)
    np.testing.assert_allclose(nngp, COV, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dnngp, 1.0, rtol=1e-13)
    nngp, _ = nk.Polynomial(coef=[2.0, 0.0]).maps(V1, V2, COV)
    np.testing.assert_allclose(nngp, 4.0, rtol=1e-13)


def test_maps_broadcast_like_numpy():
    """maps broadcasts its three array-like arguments (lists and scalars accepted)."""
    nngp, dnngp = nk.Relu().maps([[1.0], [2.0]], [0.5, 1.5, 2.5], 0.1)
    assert np.shape(nngp) == (2, 3) and np.shape(dnngp) == (2, 3)
    for i, v1 in enumerate((1.0, 2.0)):
        for j, v2 in enumerate((0.5, 1.5, 2.5)):
            want = cf.relu(v1, v2, 0.1)
            assert abs(nngp[i, j] - want[0]) <= 1e-12 and abs(dnngp[i, j] - want[1]) <= 1e-12
    s_nngp, _ = nk.Erf().maps(1.0, 1.0, 0.5)
    assert np.ndim(s_nngp) == 0 and abs(float(s_nngp) - cf.erf(1.0, 1.0, 0.5)[0]) <= 1e-12


QUAD_CASES = {
    "Tanh": (lambda d: nk.Tanh(quad_degree=d), ref.phi("Tanh")),
    "Sigmoid": (lambda d: nk.Sigmoid(quad_degree=d), ref.phi("Sigmoid")),
    "Softplus": (lambda d: nk.Softplus(quad_degree=d), ref.phi("Softplus")),
    "Mish": (lambda d: nk.Mish(quad_degree=d), ref.phi("Mish")),
    "Selu": (lambda d: nk.Selu(quad_degree=d), ref.phi("Selu")),
    "Elementwise(tanh)": (
        lambda d: nk.Elementwise(np.tanh, lambda x: 1 - np.tanh(x) ** 2, quad_degree=d),
        ref.phi("Tanh"),
    ),
}


@pytest.mark.parametrize("name", list(QUAD_CASES))
def test_raising_quad_degree_reduces_the_error(name):
    """The maximal error over the grid falls as quad_degree grows (4 → 8 → 16 → 32 points)."""
    make, p = QUAD_CASES[name]
    want = np.array([ref.reference_maps(p, v1, v2, c) for v1, v2, c in GRID])
    errors = []
    for degree in (4, 8, 16, 32):
        nngp, dnngp = make(degree).maps(V1, V2, COV)
        errors.append(
            max(
                np.max(np.abs(nngp - want[:, 0]) / (1 + np.abs(want[:, 0]))),
                np.max(np.abs(dnngp - want[:, 1]) / (1 + np.abs(want[:, 1]))),
            )
        )
    assert all(a > b for a, b in itertools.pairwise(errors)), errors


# --- degenerate inputs: a zero input vector gives var = 0 (and cov = 0) -----------------

DEGENERATE = [(0.0, 1.3, 0.0), (1.3, 0.0, 0.0), (0.0, 0.0, 0.0)]
# activations whose φ and φ' are continuous at 0: the degenerate expectation f(0)·E[g(v)]
# is determined, so it is compared with the reference; for the others (φ or φ' jumps at 0)
# only finiteness is required, plus E[φφ] = 0 when φ(0) = 0 by homogeneity.
CONTINUOUS_AT_ZERO = [
    "Identity",
    "Erf(1.2,0.7,0.1)",
    "Gelu",
    "Sin(1.1,0.8,0.3)",
    "Cos",
    "Rbf(0.7)",
    "Exp",
    "Gaussian",
    "Monomial(2)",
    "Hermite(3)",
    "Polynomial([0.3,-1.2,0.5,0.25])",
    "Tanh",
    "Sigmoid",
    "Softplus",
    "Silu",
    "Mish",
    "Elu",
]


@pytest.mark.parametrize("name", list(CASES))
def test_zero_variance_inputs_give_finite_values(name):
    """var1 = 0 and/or var2 = 0 (a zero input vector) gives finite results, never NaN/inf."""
    v1, v2, c = (np.array(t) for t in zip(*DEGENERATE, strict=True))
    nngp, dnngp = CASES[name].make().maps(v1, v2, c)
    assert np.all(np.isfinite(nngp)) and np.all(np.isfinite(dnngp)), (nngp, dnngp)
    p = CASES[name].phi
    if p.method == "polar_homogeneous" and p.degree and p.degree > 0:
        np.testing.assert_array_equal(nngp, 0.0)


@pytest.mark.parametrize("name", CONTINUOUS_AT_ZERO)
def test_zero_variance_values_equal_reference(name):
    """With u ≡ 0 the maps equal φ(0)·E[φ(v)] and φ'(0)·E[φ'(v)] (and φ(0)² when both are 0)."""
    case = CASES[name]
    v1, v2, c = (np.array(t) for t in zip(*DEGENERATE, strict=True))
    nngp, dnngp = case.make().maps(v1, v2, c)
    want = np.array([ref.reference_maps(case.phi, *g) for g in DEGENERATE])
    assert not _report_plain(nngp, want[:, 0], case.tol), (nngp, want[:, 0])
    assert not _report_plain(dnngp, want[:, 1], case.tol), (dnngp, want[:, 1])


def _report_plain(got, want, tol):
    err = np.abs(np.asarray(got) - want) / (1 + np.abs(want))
    return list(err[~(err <= tol)])


@pytest.mark.parametrize(("a", "b", "var"), [(1.0, 0.5, 1.0), (1.0, 0.2, 2.7), (2.0, 1.0, 0.6)])
def test_divergent_gaussian_expectation_raises_value_error(a, b, var):
    """Gaussian(a, b) with 1 − 2b·var ≤ 0: E[exp(b u²)...] diverges → ValueError, not NaN/inf."""
    with pytest.raises(ValueError):
        nk.Gaussian(a=a, b=b).maps(var, var, 0.5 * var)


def test_gaussian_divergence_through_correlation_raises_value_error():
    """Diagonal terms converge (1 − 2b·var > 0) but det(I − 2bΣ) ≤ 0 at ρ = 1 → ValueError."""
    b, var = 0.15, 2.0  # 1 − 2·0.15·2 = 0.4 > 0, but det = 0.4² − 4·0.15²·4 = 0.16 − 0.36 < 0
    with pytest.raises(ValueError):
        nk.Gaussian(a=1.0, b=b).maps(var, var, var)
