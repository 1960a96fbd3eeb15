"""Closed-form Gaussian expectations, derived by hand (helpers only, no tests).

Every function takes (var1, var2, cov) of a centred Gaussian pair (u, v) and returns
(E[φ(u)φ(v)], E[φ'(u)φ'(v)]).  Derivations are in the docstrings; they are used to
validate the quadrature references (test_reference.py) and as a second, independent
reference for the closed-form activations (test_activation_maps.py).
Nothing here imports ntkrs.
"""

from __future__ import annotations

import math

import numpy as np


def _s_rho(var1: float, var2: float, cov: float) -> tuple[float, float]:
    s = math.sqrt(var1) * math.sqrt(var2)
    rho = 0.0 if s == 0 else min(1.0, max(-1.0, cov / s))
    return s, rho


def arccos_kernel(n: int, rho: float) -> float:
    """J_n(θ)/(2π), θ = arccos ρ: E[Θ(u)u^n Θ(v)v^n] for unit variances (Cho & Saul 2009).

    J_0 = π − θ, J_1 = sin θ + (π − θ) cos θ, J_2 = 3 sin θ cos θ + (π − θ)(1 + 2 cos² θ).
    """
    t = math.acos(rho)
    s = math.sqrt(max(0.0, 1.0 - rho * rho))
    if n == 0:
        j = math.pi - t
    elif n == 1:
        j = s + (math.pi - t) * rho
    elif n == 2:
        j = 3.0 * s * rho + (math.pi - t) * (1.0 + 2.0 * rho * rho)
    else:
        raise ValueError(n)
    return j / (2.0 * math.pi)


def abrelu(var1: float, var2: float, cov: float, a: float, b: float) -> tuple[float, float]:
    """φ = a·min(x,0) + b·max(x,0) = b·r(x) − a·r(−x) with r = ReLU.

    E[r(u)r(v)] = E[r(−u)r(−v)] = s·κ1(ρ), E[r(u)r(−v)] = s·κ1(−ρ), s = √(var1 var2);
    φ' = b·1[x>0] + a·1[x<0], E[1[u>0]1[v>0]] = κ0(ρ), E[1[u>0]1[v<0]] = κ0(−ρ).
    """
    s, rho = _s_rho(var1, var2, cov)
    nngp = s * ((a * a + b * b) * arccos_kernel(1, rho) - 2 * a * b * arccos_kernel(1, -rho))
    dnngp = (a * a + b * b) * arccos_kernel(0, rho) + 2 * a * b * arccos_kernel(0, -rho)
    return nngp, dnngp


def relu(var1, var2, cov):
    return abrelu(var1, var2, cov, 0.0, 1.0)


def rectified_monomial(var1, var2, cov, n: int) -> tuple[float, float]:
    """φ = Θ(x) x^n: E = (var1 var2)^{n/2} J_n/(2π); φ' = n Θ(x) x^{n−1} (0 for n = 0)."""
    s, rho = _s_rho(var1, var2, cov)
    nngp = s**n * arccos_kernel(n, rho)
    dnngp = 0.0 if n == 0 else n * n * s ** (n - 1) * arccos_kernel(n - 1, rho)
    return nngp, dnngp


def sign(var1, var2, cov):
    """E[sign u sign v] = 1 − 2 P(u v < 0) = 1 − 2θ/π = (2/π) arcsin ρ; derivative map 0."""
    _, rho = _s_rho(var1, var2, cov)
    return 2.0 / math.pi * math.asin(rho), 0.0


def erf(var1, var2, cov, a=1.0, b=1.0, c=0.0):
    """φ = a erf(bx) + c (Williams 1997): E[erf(bu)erf(bv)] = (2/π) arcsin(2b²cov / √((1+2b²v1)(1+2b²v2))),
    odd ⇒ cross terms vanish.  φ' = (2ab/√π) e^{−b²x²}: E[e^{−b²(u²+v²)}] = det(I + 2b²Σ)^{−1/2}.
    """
    q1, q2 = 1 + 2 * b * b * var1, 1 + 2 * b * b * var2
    nngp = a * a * 2.0 / math.pi * math.asin(2 * b * b * cov / math.sqrt(q1 * q2)) + c * c
    dnngp = 4 * a * a * b * b / math.pi / math.sqrt(q1 * q2 - 4 * b**4 * cov * cov)
    return nngp, dnngp


def sin(var1, var2, cov, a=1.0, b=1.0, c=0.0):
    """φ = a sin(bx + c): sin A sin B = ½[cos(A−B) − cos(A+B)], E cos(b(u±v)+k) = cos k · e^{−b² Var(u±v)/2}."""
    em = math.exp(-0.5 * b * b * (var1 + var2 - 2 * cov))
    ep = math.exp(-0.5 * b * b * (var1 + var2 + 2 * cov))
    nngp = 0.5 * a * a * (em - ep * math.cos(2 * c))
    dnngp = 0.5 * a * a * b * b * (em + ep * math.cos(2 * c))
    return nngp, dnngp


def cos(var1, var2, cov, a=1.0, b=1.0, c=0.0):
    """a cos(bx + c) = a sin(bx + c + π/2)."""
    return sin(var1, var2, cov, a, b, c + math.pi / 2)


def rbf(var1, var2, cov, gamma=1.0):
    """√2 sin(√(2γ)x + π/4): the Sin formula with a² = 2, b² = 2γ, cos(2c) = 0."""
    return sin(var1, var2, cov, math.sqrt(2.0), math.sqrt(2 * gamma), math.pi / 4)


def exp(var1, var2, cov, a=1.0, b=1.0):
    """φ = a e^{bx}: E[e^{b(u+v)}] = e^{b² Var(u+v)/2}; φ' = b φ."""
    e = a * a * math.exp(0.5 * b * b * (var1 + var2 + 2 * cov))
    return e, b * b * e


def gaussian(var1, var2, cov, a=1.0, b=-1.0):
    """φ = a e^{bx²}: E[e^{b(u²+v²)}] = D^{−1/2}, D = det(I − 2bΣ) = (1−2b v1)(1−2b v2) − 4b² cov².
    φ' = 2abx e^{bx²}: E[uv e^{b(u²+v²)}] = D^{−1/2} [Σ(I − 2bΣ)^{−1}]_{12} = cov·D^{−3/2}.
    """
    d = (1 - 2 * b * var1) * (1 - 2 * b * var2) - 4 * b * b * cov * cov
    if d <= 0 or 1 - 2 * b * var1 <= 0 or 1 - 2 * b * var2 <= 0:
        raise ValueError("divergent")
    return a * a / math.sqrt(d), 4 * a * a * b * b * cov / d**1.5


def identity(var1, var2, cov):
    return cov, 1.0


def hermite_unit(var1, var2, cov, n: int):
    """He_n/√n! at unit variances: E = ρ^n (Mehler); φ' = n He_{n−1}/√n! ⇒ E = n ρ^{n−1}."""
    assert var1 == 1.0 and var2 == 1.0
    return cov**n, (n * cov ** (n - 1) if n > 0 else 0.0)


def relu_arccos_recursion(x1, x2, dense, parameterization="ntk"):
    """NNGP/NTK of Dense→ReLU→…→Dense by the arc-cosine recursion (no factor 2 in ReLU).

    ``dense`` lists (out_dim, W_std, b_std) per Dense layer; a ReLU follows all but the last.
    E[relu(u)relu(v)] = √(v1 v2)/(2π)·(sin θ + (π − θ) cos θ), E[1(u>0)1(v>0)] = (π − θ)/(2π),
    E[relu(u)²] = v/2, θ = arccos(cov/√(v1 v2)).
    """
    x2 = x1 if x2 is None else x2
    d = x1.shape[1]
    v1, v2 = np.sum(x1**2, 1) / d, np.sum(x2**2, 1) / d
    cov, ntk, n_in = x1 @ x2.T / d, np.zeros((len(x1), len(x2))), d
    square = x2 is x1  # k(x_i, x_i) is exactly the variance: keep the diagonal equal to it
    for i, (out_dim, w, b) in enumerate(dense):
        if square:
            np.fill_diagonal(cov, v1)
        b2 = 0.0 if b is None else b * b
        if parameterization == "ntk":
            cov, v1, v2 = w * w * cov + b2, w * w * v1 + b2, w * w * v2 + b2
            ntk = cov + w * w * ntk
        else:
            ntk = n_in * cov + w * w * ntk + (0.0 if b is None else 1.0)
            cov, v1, v2 = w * w * cov + b2, w * w * v1 + b2, w * w * v2 + b2
        n_in = out_dim
        if i < len(dense) - 1:
            s = np.sqrt(np.outer(v1, v2))
            theta = np.arccos(np.clip(cov / s, -1.0, 1.0))
            cov = s / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
            ntk = ntk * (np.pi - theta) / (2 * np.pi)
            v1, v2 = v1 / 2, v2 / 2
    if square:
        np.fill_diagonal(cov, v1)
    return cov, ntk
