"""Extended-precision (mpmath, 60 digits) NNGP/NTK of `Dense → φ → … → Dense` networks (helpers, no tests).

The inputs' Gram entries are formed exactly from the float64 inputs, and every activation map is
evaluated at 60 significant digits, so the angle of parallel (`x2 = k·x1`), antiparallel and nearly
parallel pairs is exact (ρ = ±1 exactly, or 1 − 1e-30 when it is): this is the reference of the
precision tests at ρ = ±1 (test_precision.py). Nothing here imports ntkrs.

Maps take `(q1, q2, c)` (mpf) and return `(E[φ(u)φ(v)], E[φ'(u)φ'(v)])` for the centred Gaussian pair
of variances q1, q2 and covariance c. The arc-cosine kernels are integrated along the angle by
mpmath's quadrature (an integrand analytic on the interval, so converged to the working precision);
Sign, Erf, Sin, Exp and Gaussian are the textbook closed forms of closed_forms.py; Gelu is Tsuchida
et al.'s closed form; polynomials are expanded by Isserlis' theorem (exact moments).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mpmath as mp
import numpy as np

mp.mp.dps = 60

MapFn = Callable[[mp.mpf, mp.mpf, mp.mpf], tuple[mp.mpf, mp.mpf]]


def _angle(q1, q2, c):
    """(√(q1 q2), θ, sin θ) with ρ clamped to [−1, 1] (ρ = 0 when a variance is 0, ntkrs' convention)."""
    s = mp.sqrt(q1) * mp.sqrt(q2)
    if s == 0:
        return s, mp.pi / 2, mp.mpf(1)
    rho = max(mp.mpf(-1), min(mp.mpf(1), c / s))
    return s, mp.acos(rho), mp.sqrt(max(mp.mpf(0), 1 - rho * rho))


def _arccos(n: int, theta) -> mp.mpf:
    """J_n(θ)/(2π) = E[Θ(u)u^n Θ(v)v^n] at unit variances, cos θ = ρ: with (u, v) = (z·e1, z·e2),
    |e1| = |e2| = 1 at angle θ, polar coordinates give 2^n n!/(2π)·∫_{θ−π/2}^{π/2} cos^n α cos^n(α − θ) dα."""
    if theta >= mp.pi:
        return mp.mpf(0)
    f = lambda al: mp.cos(al) ** n * mp.cos(al - theta) ** n  # noqa: E731
    return 2**n * mp.factorial(n) / (2 * mp.pi) * mp.quad(f, [theta - mp.pi / 2, mp.pi / 2])


def abrelu(a: float, b: float) -> MapFn:
    """φ = a·min(x, 0) + b·max(x, 0) = b·r(x) − a·r(−x), r = ReLU."""
    a, b = mp.mpf(a), mp.mpf(b)

    def m(q1, q2, c):
        s, th, _ = _angle(q1, q2, c)
        e = s * ((a * a + b * b) * _arccos(1, th) - 2 * a * b * _arccos(1, mp.pi - th))
        d = (a * a + b * b) * _arccos(0, th) + 2 * a * b * _arccos(0, mp.pi - th)
        return e, d

    return m


def rectified_monomial(n: int) -> MapFn:
    """φ = Θ(x)x^n: E = (q1 q2)^{n/2} J_n/(2π), dot = n² (q1 q2)^{(n−1)/2} J_{n−1}/(2π) (0 for n = 0)."""

    def m(q1, q2, c):
        s, th, _ = _angle(q1, q2, c)
        e = s**n * _arccos(n, th)
        d = mp.mpf(0) if n == 0 else n * n * s ** (n - 1) * _arccos(n - 1, th)
        return e, d

    return m


def sign(q1, q2, c):
    """E[sign u sign v] = (2/π) asin ρ; the derivative is taken as 0."""
    s, th, _ = _angle(q1, q2, c)
    return 2 / mp.pi * (mp.pi / 2 - th), mp.mpf(0)


def erf(a: float = 1.0, b: float = 1.0, cc: float = 0.0) -> MapFn:
    a, b, cc = mp.mpf(a), mp.mpf(b), mp.mpf(cc)

    def m(q1, q2, c):
        p1, p2 = 1 + 2 * b * b * q1, 1 + 2 * b * b * q2
        e = a * a * 2 / mp.pi * mp.asin(2 * b * b * c / mp.sqrt(p1 * p2)) + cc * cc
        d = 4 * a * a * b * b / mp.pi / mp.sqrt(p1 * p2 - 4 * b**4 * c * c)
        return e, d

    return m


def gelu(q1, q2, c):
    """φ = xΦ(x) (Tsuchida et al. 2020): P = (q1+1)(q2+1), δ = √(P − c²), α = atan(c/δ),
    E = [(c² + q1 q2 δ²)/(Pδ) + cα]/(2π) + c/4, dot = c/(2πδ)(1/δ² + (1 − q1q2)/P + 1) + 1/4 + α/(2π)."""
    p = (q1 + 1) * (q2 + 1)
    d2 = p - c * c
    d = mp.sqrt(d2)
    al = mp.atan(c / d)
    e = ((c * c + q1 * q2 * d2) / (p * d) + c * al) / (2 * mp.pi) + c / 4
    dot = c / (2 * mp.pi * d) * (1 / d2 + (1 - q1 * q2) / p + 1) + mp.mpf(1) / 4 + al / (2 * mp.pi)
    return e, dot


def sin(a: float = 1.0, b: float = 1.0, cc: float = 0.0) -> MapFn:
    a, b, cc = mp.mpf(a), mp.mpf(b), mp.mpf(cc)

    def m(q1, q2, c):
        em = mp.exp(-b * b * (q1 + q2 - 2 * c) / 2)
        ep = mp.exp(-b * b * (q1 + q2 + 2 * c) / 2)
        return a * a / 2 * (em - ep * mp.cos(2 * cc)), a * a * b * b / 2 * (em + ep * mp.cos(2 * cc))

    return m


def exp(a: float = 1.0, b: float = 1.0) -> MapFn:
    a, b = mp.mpf(a), mp.mpf(b)

    def m(q1, q2, c):
        e = a * a * mp.exp(b * b * (q1 + q2 + 2 * c) / 2)
        return e, b * b * e

    return m


def gaussian(a: float = 1.0, b: float = -1.0) -> MapFn:
    a, b = mp.mpf(a), mp.mpf(b)

    def m(q1, q2, c):
        d = (1 - 2 * b * q1) * (1 - 2 * b * q2) - 4 * b * b * c * c
        return a * a / mp.sqrt(d), 4 * a * a * b * b * c / d**1.5

    return m


def _gauss_moment(k: int) -> mp.mpf:
    return mp.mpf(0) if k % 2 else mp.mpf(mp.fac2(k - 1)) if k else mp.mpf(1)


def _poly_expect(p: Sequence, r: Sequence, q1, q2, c) -> mp.mpf:
    """E[p(u) r(v)] (coefficients in increasing powers) by Isserlis: u = √q1 z1,
    v = √q2(ρ z1 + s z2), expanded in monomials of independent standard normals z1, z2."""
    s1, s2 = mp.sqrt(q1), mp.sqrt(q2)
    rho = c / (s1 * s2) if s1 * s2 != 0 else mp.mpf(0)
    rho = max(mp.mpf(-1), min(mp.mpf(1), rho))
    sn = mp.sqrt(max(mp.mpf(0), 1 - rho * rho))
    tot = mp.mpf(0)
    for i, pi in enumerate(p):
        if pi == 0:
            continue
        for j, rj in enumerate(r):
            if rj == 0:
                continue
            for l in range(j + 1):  # noqa: E741
                tot += (mp.mpf(pi) * mp.mpf(rj) * s1**i * s2**j * mp.binomial(j, l) * rho**l * sn ** (j - l)
                        * _gauss_moment(i + l) * _gauss_moment(j - l))
    return tot


def polynomial(coef: Sequence[float]) -> MapFn:
    """φ = Σ coef[k] x^k (numpy's order)."""
    coef = [mp.mpf(float(v)) for v in coef]
    der = [k * coef[k] for k in range(1, len(coef))] or [mp.mpf(0)]

    def m(q1, q2, c):
        return _poly_expect(coef, coef, q1, q2, c), _poly_expect(der, der, q1, q2, c)

    return m


def hermite_coef(n: int) -> list[float]:
    """He_n/√(n!) in increasing powers (exact small integers over √n!)."""
    c = np.polynomial.hermite_e.herme2poly([0] * n + [1])
    return [float(v) / float(np.sqrt(float(mp.factorial(n)))) for v in c]


def kernels(x1: np.ndarray, x2: np.ndarray | None, dense: Sequence[tuple[float, float]], act: MapFn
            ) -> tuple[np.ndarray, np.ndarray]:
    """(NNGP, NTK) of `Dense(W, b) → φ → Dense(W, b) → … → Dense(W, b)` (len(dense) Dense layers, φ after
    all but the last; NTK parameterization), entrywise at 60 digits, rounded to float64 at the end."""
    x2 = x1 if x2 is None else x2
    d = x1.shape[1]
    a = [[mp.mpf(float(v)) for v in row] for row in x1]
    b = [[mp.mpf(float(v)) for v in row] for row in x2]
    sq = lambda r: mp.fsum(v * v for v in r) / d  # noqa: E731
    q1 = [sq(r) for r in a]
    q2 = [sq(r) for r in b]
    nngp = np.empty((len(a), len(b)))
    ntk = np.empty((len(a), len(b)))
    for i, ra in enumerate(a):
        for j, rb in enumerate(b):
            e, t = entry(q1[i], q2[j], mp.fsum(u * v for u, v in zip(ra, rb, strict=True)) / d, dense, act)
            nngp[i, j], ntk[i, j] = float(e), float(t)
    return nngp, ntk


def entry(q1, q2, c, dense: Sequence[tuple[float, float]], act: MapFn) -> tuple[mp.mpf, mp.mpf]:
    """One pair's (NNGP, NTK) from its input variances q1, q2 and covariance c."""
    t = mp.mpf(0)
    for k, (w, bb) in enumerate(dense):
        w2, b2 = mp.mpf(w) ** 2, mp.mpf(bb) ** 2
        q1, q2, c = w2 * q1 + b2, w2 * q2 + b2, w2 * c + b2
        t = c + w2 * t
        if k + 1 < len(dense):
            e, dot = act(q1, q2, c)
            q1 = act(q1, q1, q1)[0]
            q2 = act(q2, q2, q2)[0]
            c, t = e, t * dot
    return c, t
