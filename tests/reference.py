"""Independent numerical references for the ntkrs test-suite (helpers only, no tests).

Nothing in this module imports ntkrs.  It provides

* ``PHI``: plain numpy definitions of every activation φ and its derivative φ'
  (``Phi`` records), built by ``phi(name, **params)``;
* ``gauss_hermite_expectation``: E[f(u) g(v)] for (u, v) ~ N(0, [[var1, cov], [cov, var2]])
  by a tensor-product Gauss–Hermite rule (accurate for smooth f, g);
* ``polar_homogeneous_expectation``: the same expectation for *positively homogeneous*
  f, g (ReLU, Abs, Sign, step, rectified monomials, ...): the radial integral is done
  analytically with the Gamma function and the angular integral by Gauss–Legendre on
  every arc between the kinks of f and g (where the integrand is a trigonometric
  polynomial, hence the rule is exact to rounding);
* ``polar_piecewise_expectation``: the same expectation for f, g that are analytic on
  each side of 0 but not across it (ELU/SELU kinks): Gauss–Legendre over the radius
  and over every arc between the kinks;
* ``reference_maps``: (E[φ(u)φ(v)], E[φ'(u)φ'(v)]) with the appropriate method;
* ``sample_empirical_kernels``: a plain-numpy Monte Carlo sampler of wide random
  fully-connected networks (NTK parameterisation) returning per-sample empirical NNGP
  and NTK matrices, the NTK being computed by explicit per-layer back-propagation.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import hermite as _hermite
from numpy.polynomial import hermite_e as _hermite_e
from numpy.polynomial import legendre as _legendre
from numpy.polynomial import polynomial as _poly
from scipy import integrate, special

Array = np.ndarray
Fn = Callable[[Array], Array]

SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
SIGMOID_LIKE_B = 1.0 / 2.4020563531719796


@dataclass(frozen=True)
class Phi:
    """An activation φ with its derivative, and how to integrate it accurately.

    ``df`` is None when the derivative map is *defined* to be zero (Sign, step).
    ``method`` is "gauss_hermite" for entire functions (erf, sin, exp, polynomials, ...),
    "polar_homogeneous" for positively homogeneous ones (``degree`` of φ and
    ``ddegree`` of φ') and "polar_piecewise" for functions analytic on each side of 0
    (ELU/SELU) and for smooth functions with complex singularities near the real axis
    (tanh, logistic, softplus, SiLU, Mish; GELU for uniformity), where Gauss–Hermite
    converges only like exp(−c√n) (tanh at var 2.7: ~1e-7 at 150 points, ~2e-11 at 300).
    """

    f: Fn
    df: Fn | None
    method: str
    degree: float | None = None
    ddegree: float | None = None


# ---------------------------------------------------------------------------------
# activation definitions
# ---------------------------------------------------------------------------------


def _identity() -> Phi:
    return Phi(lambda x: np.asarray(x, float) * 1.0, lambda x: np.ones_like(x, float), "gauss_hermite")


def _abrelu(a: float, b: float) -> Phi:
    return Phi(
        lambda x: a * np.minimum(x, 0.0) + b * np.maximum(x, 0.0),
        lambda x: np.where(x > 0, b, a) * 1.0,
        "polar_homogeneous",
        1.0,
        0.0,
    )


def _relu() -> Phi:
    return _abrelu(0.0, 1.0)


def _leaky_relu(alpha: float) -> Phi:
    return _abrelu(alpha, 1.0)


def _abs() -> Phi:
    return Phi(np.abs, lambda x: np.sign(x) * 1.0, "polar_homogeneous", 1.0, 0.0)


def _sign() -> Phi:
    return Phi(lambda x: np.sign(x) * 1.0, None, "polar_homogeneous", 0.0, None)


def _erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Phi:
    return Phi(
        lambda x: a * special.erf(b * x) + c,
        lambda x: a * b * 2.0 / math.sqrt(math.pi) * np.exp(-((b * x) ** 2)),
        "gauss_hermite",
    )


def _sigmoid_like() -> Phi:
    return _erf(0.5, SIGMOID_LIKE_B, 0.5)


def _gelu() -> Phi:
    return Phi(
        lambda x: 0.5 * x * (1.0 + special.erf(x / math.sqrt(2.0))),
        lambda x: 0.5 * (1.0 + special.erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi),
        "polar_piecewise",
    )


def _sin(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Phi:
    return Phi(lambda x: a * np.sin(b * x + c), lambda x: a * b * np.cos(b * x + c), "gauss_hermite")


def _cos(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Phi:
    return Phi(lambda x: a * np.cos(b * x + c), lambda x: -a * b * np.sin(b * x + c), "gauss_hermite")


def _rbf(gamma: float = 1.0) -> Phi:
    w = math.sqrt(2.0 * gamma)
    return Phi(
        lambda x: math.sqrt(2.0) * np.sin(w * x + math.pi / 4),
        lambda x: math.sqrt(2.0) * w * np.cos(w * x + math.pi / 4),
        "gauss_hermite",
    )


def _exp(a: float = 1.0, b: float = 1.0) -> Phi:
    return Phi(lambda x: a * np.exp(b * x), lambda x: a * b * np.exp(b * x), "gauss_hermite")


def _gaussian(a: float = 1.0, b: float = -1.0) -> Phi:
    return Phi(
        lambda x: a * np.exp(b * x * x),
        lambda x: 2.0 * a * b * x * np.exp(b * x * x),
        "gauss_hermite",
    )


def _monomial(degree: int) -> Phi:
    n = int(degree)
    if n == 0:
        return Phi(lambda x: np.ones_like(x, float), lambda x: np.zeros_like(x, float), "gauss_hermite")
    return Phi(lambda x: np.asarray(x, float) ** n, lambda x: n * np.asarray(x, float) ** (n - 1), "gauss_hermite")


def _rectified_monomial(degree: int) -> Phi:
    n = int(degree)
    if n == 0:
        return Phi(lambda x: (np.asarray(x) >= 0) * 1.0, None, "polar_homogeneous", 0.0, None)
    return Phi(
        lambda x: np.where(x >= 0, np.asarray(x, float) ** n, 0.0),
        lambda x: np.where(x >= 0, n * np.asarray(x, float) ** (n - 1), 0.0),
        "polar_homogeneous",
        float(n),
        float(n - 1),
    )


def _polynomial(coef: Sequence[float]) -> Phi:
    c = np.asarray(coef, float)
    dc = _poly.polyder(c) if c.size > 1 else np.zeros(1)
    return Phi(lambda x: _poly.polyval(x, c), lambda x: _poly.polyval(x, dc), "gauss_hermite")


def _hermite_fn(degree: int) -> Phi:
    n = int(degree)
    norm = math.sqrt(math.factorial(n))
    c = np.zeros(n + 1)
    c[n] = 1.0
    if n == 0:
        return Phi(lambda x: np.ones_like(x, float), lambda x: np.zeros_like(x, float), "gauss_hermite")
    cm1 = np.zeros(n)
    cm1[n - 1] = 1.0
    return Phi(
        lambda x: _hermite_e.hermeval(x, c) / norm,
        lambda x: n * _hermite_e.hermeval(x, cm1) / norm,  # He_n' = n He_{n-1}
        "gauss_hermite",
    )


def _tanh() -> Phi:
    return Phi(np.tanh, lambda x: 1.0 - np.tanh(x) ** 2, "polar_piecewise")


def _sigmoid() -> Phi:
    return Phi(special.expit, lambda x: special.expit(x) * special.expit(-x), "polar_piecewise")


def _softplus() -> Phi:
    return Phi(lambda x: np.logaddexp(0.0, x), special.expit, "polar_piecewise")


def _silu() -> Phi:
    return Phi(
        lambda x: x * special.expit(x),
        lambda x: special.expit(x) * (1.0 + x * special.expit(-x)),
        "polar_piecewise",
    )


def _mish() -> Phi:
    def f(x):
        return x * np.tanh(np.logaddexp(0.0, x))

    def df(x):
        t = np.tanh(np.logaddexp(0.0, x))
        return t + x * (1.0 - t * t) * special.expit(x)

    return Phi(f, df, "polar_piecewise")


def _elu(alpha: float = 1.0) -> Phi:
    return Phi(
        lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0))),
        lambda x: np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0))),
        "polar_piecewise",
    )


def _selu() -> Phi:
    lam, alpha = SELU_LAMBDA, SELU_ALPHA
    return Phi(
        lambda x: lam * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0))),
        lambda x: lam * np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0))),
        "polar_piecewise",
    )


PHI: dict[str, Callable[..., Phi]] = {
    "Identity": _identity,
    "Relu": _relu,
    "LeakyRelu": _leaky_relu,
    "ABRelu": _abrelu,
    "Abs": _abs,
    "Sign": _sign,
    "Erf": _erf,
    "Sigmoid_like": _sigmoid_like,
    "Gelu": _gelu,
    "Sin": _sin,
    "Cos": _cos,
    "Rbf": _rbf,
    "Exp": _exp,
    "Gaussian": _gaussian,
    "Monomial": _monomial,
    "RectifiedMonomial": _rectified_monomial,
    "Polynomial": _polynomial,
    "Hermite": _hermite_fn,
    "Tanh": _tanh,
    "Sigmoid": _sigmoid,
    "Softplus": _softplus,
    "Silu": _silu,
    "Mish": _mish,
    "Elu": _elu,
    "Selu": _selu,
}


def phi(name: str, *args, **kwargs) -> Phi:
    """The reference activation ``name`` (same constructor arguments as ntkrs)."""
    return PHI[name](*args, **kwargs)


# ---------------------------------------------------------------------------------
# the (var1, var2, cov) grid used by the activation-map tests
# ---------------------------------------------------------------------------------

VARIANCES = (0.25, 1.0, 2.7)
CORRELATIONS = (-1.0, -0.9, -0.3, 0.0, 0.5, 0.99, 1.0)


def grid() -> list[tuple[float, float, float]]:
    """All (var1, var2, cov) with var1, var2 ∈ VARIANCES and cov = ρ√(var1 var2), ρ ∈ CORRELATIONS."""
    return [(v1, v2, r * math.sqrt(v1 * v2)) for v1, v2, r in itertools.product(VARIANCES, VARIANCES, CORRELATIONS)]


# ---------------------------------------------------------------------------------
# 2-D Gaussian expectations
# ---------------------------------------------------------------------------------


@functools.cache
def _std_normal_gh(degree: int) -> tuple[Array, Array]:
    """Nodes/weights of the Gauss–Hermite rule for the standard normal density."""
    t, w = _hermite.hermgauss(degree)
    assert np.all(np.isfinite(w)) and np.all(w > 0), "numpy's hermgauss is only usable up to degree ~350"
    return math.sqrt(2.0) * t, w / math.sqrt(math.pi)


@functools.cache
def _gauss_legendre(n: int) -> tuple[Array, Array]:
    return _legendre.leggauss(n)


def _factor(var1: float, var2: float, cov: float) -> tuple[float, float, float]:
    """(s1, s2, rho) with rho clipped to [-1, 1]; rho is 0 when a variance is 0."""
    var1, var2, cov = float(var1), float(var2), float(cov)
    if var1 < 0 or var2 < 0:
        raise ValueError("negative variance")
    s1, s2 = math.sqrt(var1), math.sqrt(var2)
    if s1 == 0 or s2 == 0:
        return s1, s2, 0.0
    prod = var1 * var2
    # √(v·v) == v exactly in IEEE arithmetic, so cov = var1 = var2 gives ρ = 1 exactly (the
    # maps of Sign/step/ReLU' have a √-singularity there, where 1 − ulp would cost ~1e-8)
    s = math.sqrt(prod) if 1e-300 < prod < 1e300 else s1 * s2
    return s1, s2, min(1.0, max(-1.0, cov / s))


def gauss_hermite_expectation(f: Fn, g: Fn, var1: float, var2: float, cov: float, degree: int = 150) -> float:
    """E[f(u) g(v)] by a tensor-product Gauss–Hermite rule of ``degree`` points per axis.

    u = √var1·z1 and v = √var2·(ρ z1 + √(1−ρ²) z2) with z1, z2 iid N(0, 1).
    Exact for polynomials of degree < 2·degree; spectrally accurate for entire f, g.
    """
    s1, s2, rho = _factor(var1, var2, cov)
    z, w = _std_normal_gh(degree)
    u = s1 * z[:, None]
    v = s2 * (rho * z[:, None] + math.sqrt(max(0.0, 1.0 - rho * rho)) * z[None, :])
    fu = np.broadcast_to(np.asarray(f(u), float), u.shape)
    gv = np.asarray(g(v), float)
    return float(np.sum(w[:, None] * w[None, :] * fu * gv))


def gauss_hermite_expectation_1d(f: Fn, var: float, degree: int = 150) -> float:
    """E[f(u)] for u ~ N(0, var) by Gauss–Hermite."""
    z, w = _std_normal_gh(degree)
    return float(np.sum(w * np.asarray(f(math.sqrt(var) * z), float)))


def _arcs(rho: float) -> list[tuple[float, float]]:
    """Arcs of [−π, π] on which neither cos θ nor cos(θ − ψ) (ψ = arccos ρ) changes sign."""
    psi = math.acos(rho)
    cuts = [-math.pi / 2, math.pi / 2, psi - math.pi / 2, psi + math.pi / 2]
    cuts = [(c + math.pi) % (2 * math.pi) - math.pi for c in cuts]
    edges = sorted({-math.pi, math.pi, *cuts})
    return [(a, b) for a, b in itertools.pairwise(edges) if b - a > 1e-15]


def _angular_rule(rho: float, n: int = 64) -> tuple[Array, Array]:
    """Gauss–Legendre nodes/weights on each kink-free arc of [−π, π]."""
    t, w = _gauss_legendre(n)
    nodes, weights = [], []
    for a, b in _arcs(rho):
        nodes.append(0.5 * (b - a) * t + 0.5 * (a + b))
        weights.append(0.5 * (b - a) * w)
    return np.concatenate(nodes), np.concatenate(weights)


def _expect_1d_piecewise(g: Fn, var: float) -> float:
    """E[g(v)] for v ~ N(0, var), g analytic on each side of 0 (adaptive quadrature)."""
    if var == 0:
        return float(g(np.asarray(0.0)))
    s = math.sqrt(var)

    def integrand(z):
        return float(g(np.asarray(s * z))) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    left = integrate.quad(integrand, -np.inf, 0.0, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
    right = integrate.quad(integrand, 0.0, np.inf, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
    return left + right


def _degenerate(f: Fn, g: Fn, s1: float, s2: float) -> float | None:
    """E[f(u) g(v)] when a variance is zero (then u or v is the constant 0)."""
    if s1 == 0:
        return float(f(np.asarray(0.0))) * _expect_1d_piecewise(g, s2 * s2)
    if s2 == 0:
        return float(g(np.asarray(0.0))) * _expect_1d_piecewise(f, s1 * s1)
    return None


def polar_homogeneous_expectation(f: Fn, g: Fn, p: float, q: float, var1: float, var2: float, cov: float) -> float:
    """E[f(u) g(v)] for positively homogeneous f (degree p) and g (degree q).

    With (z1, z2) = r(cos θ, sin θ): u = √var1·r cos θ, v = √var2·r cos(θ − ψ), ψ = arccos ρ,
    so E = (2π)^-1 · 2^((p+q)/2) Γ((p+q)/2 + 1) · ∫ f(√var1 cos θ) g(√var2 cos(θ − ψ)) dθ.
    On each arc between kinks the angular integrand is smooth, integrated by 64-point
    Gauss–Legendre (exact to rounding for the trigonometric polynomials that arise).
    """
    s1, s2, rho = _factor(var1, var2, cov)
    d = _degenerate(f, g, s1, s2)
    if d is not None:
        return d
    theta, w = _angular_rule(rho)
    psi = math.acos(rho)
    vals = np.asarray(f(s1 * np.cos(theta)), float) * np.asarray(g(s2 * np.cos(theta - psi)), float)
    radial = 2.0 ** ((p + q) / 2) * math.gamma((p + q) / 2 + 1)
    return float(radial * np.sum(w * vals) / (2 * math.pi))


def polar_piecewise_expectation(
    f: Fn, g: Fn, var1: float, var2: float, cov: float, n_radial: int = 240, r_max: float = 14.0
) -> float:
    """E[f(u) g(v)] for f, g analytic on each side of 0 (kinks only at 0).

    Polar coordinates as in ``polar_homogeneous_expectation``; along every ray the signs
    of u and v are fixed, so the radial integrand f(r a) g(r b) r e^{−r²/2} is analytic
    and Gauss–Legendre on [0, r_max] converges spectrally (e^{−r_max²/2} ≈ 3e−43).
    """
    s1, s2, rho = _factor(var1, var2, cov)
    d = _degenerate(f, g, s1, s2)
    if d is not None:
        return d
    theta, wt = _angular_rule(rho)
    psi = math.acos(rho)
    t, wr = _gauss_legendre(n_radial)
    r = 0.5 * r_max * (t + 1.0)
    wr = 0.5 * r_max * wr * r * np.exp(-0.5 * r * r)
    u = s1 * r[:, None] * np.cos(theta)[None, :]
    v = s2 * r[:, None] * np.cos(theta - psi)[None, :]
    vals = np.asarray(f(u), float) * np.asarray(g(v), float)
    return float(wr @ vals @ wt / (2 * math.pi))


def expectation(
    p: Phi,
    f: Fn,
    g: Fn,
    var1: float,
    var2: float,
    cov: float,
    degrees: tuple[float, float] | None,
    gh_degree: int = 300,
) -> float:
    """E[f(u) g(v)] with the method that suits activation ``p``."""
    if p.method == "gauss_hermite":
        return gauss_hermite_expectation(f, g, var1, var2, cov, gh_degree)
    if p.method == "polar_homogeneous":
        assert degrees is not None
        return polar_homogeneous_expectation(f, g, degrees[0], degrees[1], var1, var2, cov)
    if p.method == "polar_piecewise":
        return polar_piecewise_expectation(f, g, var1, var2, cov)
    raise AssertionError(p.method)


def reference_maps(p: Phi, var1: float, var2: float, cov: float, gh_degree: int = 300) -> tuple[float, float]:
    """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) for the reference activation ``p``."""
    nngp = expectation(p, p.f, p.f, var1, var2, cov, (p.degree, p.degree), gh_degree)
    if p.df is None:
        return nngp, 0.0
    dnngp = expectation(p, p.df, p.df, var1, var2, cov, (p.ddegree, p.ddegree), gh_degree)
    return nngp, dnngp


# ---------------------------------------------------------------------------------
# the infinite-width recursion, entry by entry with the reference maps
# ---------------------------------------------------------------------------------


def recursion_kernels(x1: Array, x2: Array | None, layers: Sequence[DenseSpec | ActSpec]) -> tuple[Array, Array]:
    """Infinite-width (NNGP, NTK) of ``layers`` by the layer recursion (NT's stax conventions).

    Input: cov = x·x'/d, NTK 0.  Dense (NTK parameterisation): cov' = W²cov + b², ntk' = cov' + W²ntk;
    standard parameterisation: ntk' = n_in·cov + W²ntk (+1 if b_std is not None), n_in the layer's
    input width.  Nonlinearity: cov'' = E[φ(u)φ(v)], ntk'' = ntk'·E[φ'(u)φ'(v)], with the variances
    k(x, x) propagated as E[φ(u)²].  Every expectation is ``reference_maps`` (quadrature).
    """
    x1 = np.asarray(x1, float)
    x2 = x1 if x2 is None else np.asarray(x2, float)
    d = x1.shape[1]
    var1, var2 = np.sum(x1 * x1, 1) / d, np.sum(x2 * x2, 1) / d
    cov = x1 @ x2.T / d
    ntk = np.zeros_like(cov)
    n_in = d
    square = x2 is x1  # then k(x_i, x_i) is exactly the variance: keep the diagonal equal to it
    for layer in layers:
        if square:
            np.fill_diagonal(cov, var1)
        if isinstance(layer, DenseSpec):
            w2 = layer.W_std**2
            b2 = 0.0 if layer.b_std is None else layer.b_std**2
            if layer.parameterization == "ntk":
                cov, var1, var2 = w2 * cov + b2, w2 * var1 + b2, w2 * var2 + b2
                ntk = cov + w2 * ntk
            elif layer.parameterization == "standard":
                ntk = n_in * cov + w2 * ntk + (0.0 if layer.b_std is None else 1.0)
                cov, var1, var2 = w2 * cov + b2, w2 * var1 + b2, w2 * var2 + b2
            else:
                raise ValueError(layer.parameterization)
            n_in = layer.out_dim
        else:
            p = layer.phi
            new_cov, dot = np.empty_like(cov), np.empty_like(cov)
            for i, j in np.ndindex(cov.shape):
                new_cov[i, j], dot[i, j] = reference_maps(p, var1[i], var2[j], cov[i, j])
            var1 = np.array([reference_maps(p, v, v, v)[0] for v in var1])
            var2 = np.array([reference_maps(p, v, v, v)[0] for v in var2])
            cov, ntk = new_cov, ntk * dot
    if square:
        np.fill_diagonal(cov, var1)
    return cov, ntk


# ---------------------------------------------------------------------------------
# Monte Carlo over wide random networks (NTK parameterisation)
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DenseSpec:
    """A fully-connected layer: out_dim units, weights W_std/√n_in·N(0,1), bias b_std·N(0,1).

    ``b_std`` None means no bias; ``parameterization`` only matters for ``recursion_kernels``
    (the Monte Carlo sampler implements the NTK parameterisation).
    """

    out_dim: int
    W_std: float = 1.0
    b_std: float | None = 0.0
    parameterization: str = "ntk"


@dataclass(frozen=True)
class ActSpec:
    """An elementwise nonlinearity given by a reference ``Phi``."""

    phi: Phi


def init_params(layers: Sequence[DenseSpec | ActSpec], d: int, rng: np.random.Generator) -> list[tuple[Array, Array]]:
    """Standard normal (W, b) for every Dense layer, W of shape (n_in, out_dim)."""
    params = []
    n_in = d
    for layer in layers:
        if isinstance(layer, DenseSpec):
            params.append((rng.standard_normal((n_in, layer.out_dim)), rng.standard_normal(layer.out_dim)))
            n_in = layer.out_dim
    return params


def forward(
    params: Sequence[tuple[Array, Array]], layers: Sequence[DenseSpec | ActSpec], x: Array, tape: list | None = None
) -> Array:
    """Network output f(x) of shape (N, out_dim); optionally records what backprop needs."""
    a = np.asarray(x, float)
    it = iter(params)
    for layer in layers:
        if isinstance(layer, DenseSpec):
            w, b = next(it)
            scale = layer.W_std / math.sqrt(a.shape[1])
            if tape is not None:
                tape.append(("dense", a, w, scale, layer.b_std))
            a = scale * (a @ w) + (layer.b_std or 0.0) * b
        else:
            if tape is not None:
                tape.append(("act", a, layer.phi))
            a = layer.phi.f(a)
    return a


def empirical_kernels(
    params: Sequence[tuple[Array, Array]],
    layers: Sequence[DenseSpec | ActSpec],
    x: Array,
    ntk_outputs: int | None = None,
) -> tuple[Array, Array]:
    """Empirical (NNGP, NTK) of one network, averaged over its output units.

    NNGP = f(x) f(x')ᵀ / K over all K outputs.  NTK = (1/K') Σ_k Σ_θ ∂f_k(x)/∂θ · ∂f_k(x')/∂θ
    over the first K' = ``ntk_outputs`` (default all) outputs (they are exchangeable, so any
    subset gives an unbiased estimate; back-propagation costs ∝ K'), the sum over every weight
    and bias, by back-propagation: for a Dense layer with input a (N, n_in), scale
    c = W_std/√n_in and output gradient δ (N, K, n_out) (δ = ∂f_k/∂h),
        ∂f_k/∂W_ij = c a_i δ_kj,  ∂f_k/∂b_j = b_std δ_kj
        ⇒ Σ_θ ∂f_k(x)∂f_k(x') = (c² a(x)·a(x') + b_std²) δ_k(x)·δ_k(x'),
    and δ ← c δ Wᵀ through the layer, δ ← δ ⊙ φ'(h) through a nonlinearity
    (δ ← 0 where the derivative map is defined as 0).
    """
    tape: list = []
    out = forward(params, layers, x, tape)
    n, k_all = out.shape
    nngp = out @ out.T / k_all
    k = k_all if ntk_outputs is None else min(ntk_outputs, k_all)
    delta = np.broadcast_to(np.eye(k_all)[:k], (n, k, k_all)).copy()
    ntk = np.zeros((n, n))
    for entry in reversed(tape):
        if entry[0] == "dense":
            _, a_in, w, scale, b_std = entry
            dd = np.einsum("xki,yki->xy", delta, delta) / k
            ntk += (scale**2 * (a_in @ a_in.T) + (b_std or 0.0) ** 2) * dd
            delta = scale * (delta.reshape(-1, w.shape[1]) @ w.T).reshape(n, k, w.shape[0])
        else:
            _, h, p = entry
            delta = np.zeros_like(delta) if p.df is None else delta * p.df(h)[:, None, :]
    return nngp, ntk


def sample_empirical_kernels(
    x: Array, layers: Sequence[DenseSpec | ActSpec], n_samples: int, seed: int = 0, ntk_outputs: int | None = None
) -> tuple[Array, Array]:
    """Per-sample empirical NNGP and NTK of independent random networks on the rows of ``x``.

    Returns two (n_samples, N, N) arrays (see ``empirical_kernels``).
    """
    x = np.asarray(x, float)
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    nngps = np.empty((n_samples, n, n))
    ntks = np.empty((n_samples, n, n))
    for s in range(n_samples):
        params = init_params(layers, x.shape[1], rng)
        nngps[s], ntks[s] = empirical_kernels(params, layers, x, ntk_outputs)
    return nngps, ntks


# ----------------------------------------------------------------------------------------------
# Finite differences over stax-layout parameters [(W, b or None), ...]


def flatten(params) -> np.ndarray:
    """All parameters as one vector, in order: W then b of each pair."""
    return np.concatenate([np.concatenate([w.ravel()] + ([] if b is None else [b.ravel()])) for w, b in params])


def unflatten(theta: np.ndarray, like):
    """The inverse of :func:`flatten`, shaped like ``like``."""
    out, k = [], 0
    for w, b in like:
        w2 = theta[k:k + w.size].reshape(w.shape)
        k += w.size
        b2 = None
        if b is not None:
            b2 = theta[k:k + b.size].reshape(b.shape)
            k += b.size
        out.append((w2, b2))
    return out


def fd_jacobian(forward: Callable, params, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """J[a, o, p] = ∂f_o(x_a)/∂θ_p by central differences of ``forward(params, x) -> (N, O)``."""
    theta = flatten(params)
    cols = []
    for p in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[p] += h
        tm[p] -= h
        cols.append((forward(unflatten(tp, params), x) - forward(unflatten(tm, params), x)) / (2 * h))
    return np.stack(cols, axis=2)
