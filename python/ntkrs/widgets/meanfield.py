"""Mean-field signal propagation in deep random networks (Poole et al. 2016; Schoenholz et al. 2017).

For a network ``h^{l+1} = σ_w/√n · W φ(h^l) + σ_b · b`` with ``W, b ~ N(0, 1)`` (ntkrs' ``Dense``
followed by an activation φ) two inputs' pre-activations are, at infinite width, a centred Gaussian
pair whose variance ``q`` and correlation ``c`` evolve with depth through

* the **length map** ``q ↦ σ_w² E[φ(u)²] + σ_b²`` (``u ~ N(0, q)``), with a stable fixed point ``q*``;
* the **correlation map** ``c ↦ (σ_w² E[φ(u)φ(v)] + σ_b²) / q*`` (``(u, v)`` of variance ``q*`` and
  correlation ``c``), which always has the fixed point ``c = 1``; its slope there is
  ``χ₁ = σ_w² E[φ'(u)²]``. For ``χ₁ < 1`` (ordered phase) ``c* = 1`` is stable and all inputs become
  parallel with depth; for ``χ₁ > 1`` (chaotic phase) a fixed point ``c* < 1`` takes over;
* the correlation **depth scale** ``ξ_c = −1/ln χ_c`` with ``χ_c = σ_w² E[φ'(u)φ'(v)]`` at ``c*``: the
  distance ``c^l − c*`` shrinks like ``exp(−l/ξ_c)``, so inputs stay distinguishable over about ``ξ_c``
  layers; it diverges on the critical line ``χ₁ = 1``.

Every expectation is computed by the Rust core through :meth:`ntkrs.Activation.maps`; the functions
here are vectorised over arrays of ``(σ_w², σ_b²)``. Note that ``χ₁`` uses the derivative map that
ntkrs uses for the NTK (for ``Sign`` it is 0).

This module needs only numpy and ntkrs (no widgets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .._core import NonFiniteError
from ..layers import Activation

__all__ = ["MeanField", "c_star", "chi1", "correlation_map", "length_map", "mean_field", "q_star"]

Q_DIVERGED = 1e12
"""A variance above this counts as unbounded (no finite fixed point ``q*``)."""

Q_FLOOR = 1e-30
"""Variances below this are evaluated at this value (the ``q → 0`` limit of the maps)."""


class MeanField(NamedTuple):
    """Mean-field quantities at each ``(σ_w², σ_b²)``; arrays of the broadcast shape.

    ``q_star`` is ``inf`` where the length map has no finite fixed point (then ``c_star``, ``chi_c``
    and ``xi_c`` are NaN, and ``chi1`` is taken at the last finite iterate, ``Q_DIVERGED``).
    ``xi_c`` is ``inf`` on the critical line (``chi_c ≥ 1``)."""

    q_star: np.ndarray
    c_star: np.ndarray
    chi1: np.ndarray
    chi_c: np.ndarray
    xi_c: np.ndarray


def _maps(act: Activation, var1: np.ndarray, var2: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``act.maps`` that returns ``inf`` where a variance is already unbounded (``inf``) or where the
    expectation does not exist or overflows (the core raises :class:`ntkrs.NonFiniteError` there,
    e.g. ``Exp`` at a large variance or ``Gaussian`` with ``4·b·q ≥ 1``) instead of failing the
    whole batch. Every other error (a bad argument, an ``Elementwise`` function that raises)
    propagates."""
    a, b, c = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (var1, var2, cov)))
    e, d = np.full(a.shape, np.inf), np.full(a.shape, np.inf)
    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(c)
    if not ok.any():
        return e, d
    try:
        e[ok], d[ok] = act.maps(a[ok], b[ok], c[ok])
    except NonFiniteError:
        for i in zip(*np.nonzero(ok), strict=True):
            try:
                e[i], d[i] = (float(v) for v in act.maps(a[i], b[i], c[i]))
            except NonFiniteError:
                pass
    return e, d


def length_map(act: Activation, sw2: np.ndarray | float, sb2: np.ndarray | float,
               q: np.ndarray | float) -> np.ndarray:
    """One step of the length map ``σ_w² E[φ(u)²] + σ_b²`` with ``u ~ N(0, q)`` (broadcast)."""
    q = np.maximum(np.asarray(q, dtype=np.float64), Q_FLOOR)
    return np.asarray(sw2) * _maps(act, q, q, q)[0] + np.asarray(sb2)


def chi1(act: Activation, sw2: np.ndarray | float, q: np.ndarray | float) -> np.ndarray:
    """``χ₁ = σ_w² E[φ'(u)²]``, ``u ~ N(0, q)``: the slope of the correlation map at ``c = 1``."""
    q = np.maximum(np.asarray(q, dtype=np.float64), Q_FLOOR)
    return np.asarray(sw2) * _maps(act, q, q, q)[1]


def correlation_map(act: Activation, sw2: np.ndarray | float, sb2: np.ndarray | float, q: np.ndarray | float,
                    c: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """The correlation map at variance ``q`` and its slope: ``(f(c), f'(c))`` with
    ``f(c) = (σ_w² E[φ(u)φ(v)] + σ_b²)/q`` and ``f'(c) = σ_w² E[φ'(u)φ'(v)]`` (broadcast)."""
    q = np.maximum(np.asarray(q, dtype=np.float64), Q_FLOOR)
    c = np.asarray(c, dtype=np.float64)
    e, de = _maps(act, q, q, c * q)
    return (np.asarray(sw2) * e + np.asarray(sb2)) / q, np.asarray(sw2) * de


def q_star(act: Activation, sw2: np.ndarray | float, sb2: np.ndarray | float, *, q0: float = 1.0,
           tol: float = 1e-13, max_iter: int = 200, plain_steps: int = 3, max_plain: int = 3000) -> np.ndarray:
    """The stable fixed point of the length map, vectorised over ``(σ_w², σ_b²)``.

    ``plain_steps`` plain iterations from ``q0`` (to enter the basin of the stable fixed point), then
    Steffensen's (Aitken-accelerated) iteration, each point until ``|Δq| ≤ tol·q``. Steffensen's method
    can also converge to an *unstable* fixed point (e.g. ``q = 0`` of ReLU with ``σ_b = 0``,
    ``σ_w² > 2``); where the length map's slope there exceeds 1, or where it did not converge, plain
    iteration (up to ``max_plain`` steps) decides. Points whose iterates exceed ``Q_DIVERGED`` (or keep
    growing, or whose expectation does not exist) get ``inf``."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # inf marks divergence
        return _q_star(act, sw2, sb2, q0=q0, tol=tol, max_iter=max_iter, plain_steps=plain_steps,
                       max_plain=max_plain)


def _q_star(act: Activation, sw2: np.ndarray | float, sb2: np.ndarray | float, *, q0: float, tol: float,
            max_iter: int, plain_steps: int, max_plain: int) -> np.ndarray:
    sw2, sb2 = np.broadcast_arrays(np.asarray(sw2, dtype=np.float64), np.asarray(sb2, dtype=np.float64))
    shape = sw2.shape
    w, b = sw2.ravel(), sb2.ravel()
    q = np.full(w.size, float(q0))
    converged = np.zeros(w.size, dtype=bool)
    active = np.arange(w.size)
    for it in range(max_iter):
        if active.size == 0:
            break
        qa, wa, ba = q[active], w[active], b[active]
        f1 = length_map(act, wa, ba, qa)
        if it < plain_steps:
            new = f1
        else:
            f2 = length_map(act, wa, ba, f1)
            denom = f2 - 2.0 * f1 + qa
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                acc = qa - (f1 - qa) ** 2 / denom
            ok = np.isfinite(acc) & (acc >= 0.0) & (denom != 0.0)
            new = np.where(ok, acc, f2)
        diverged = ~np.isfinite(new) | (new > Q_DIVERGED)
        close = (np.abs(new - qa) <= tol * np.abs(new)) | (new == 0.0)
        q[active] = np.where(diverged, np.inf, new)
        converged[active] = close & ~diverged
        active = active[~(diverged | close)]
    # Unstable fixed points and stragglers: plain iteration decides.
    check = np.flatnonzero(converged)
    if check.size:
        qc = q[check]
        h = np.maximum(1e-6 * qc, 1e-9)
        slope = (length_map(act, w[check], b[check], qc + h) - qc) / h  # F(q*) = q* to within tol
        redo = check[slope > 1.0 + 1e-9]
    else:
        redo = check
    redo = np.concatenate([redo, np.flatnonzero(~converged & np.isfinite(q))])
    if redo.size:
        qr = np.full(redo.size, float(q0))
        active = np.arange(redo.size)
        for _ in range(max_plain):
            if active.size == 0:
                break
            new = length_map(act, w[redo[active]], b[redo[active]], qr[active])
            diverged = ~np.isfinite(new) | (new > Q_DIVERGED)
            close = np.abs(new - qr[active]) <= tol * np.abs(new)
            qr[active] = np.where(diverged, np.inf, new)
            active = active[~(diverged | close)]
        if active.size:  # still creeping after max_plain steps: growing means unbounded
            grow = length_map(act, w[redo[active]], b[redo[active]], qr[active]) > qr[active]
            qr[active[grow]] = np.inf
        q[redo] = qr
    return q.reshape(shape)


def c_star(act: Activation, sw2: np.ndarray | float, sb2: np.ndarray | float, q: np.ndarray | float, *,
           tol: float = 1e-13, max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """The stable fixed point ``c*`` of the correlation map at variance ``q`` (normally ``q*``) and
    the slope ``χ_c = f'(c*)`` there, vectorised.

    ``c* = 1`` where ``χ₁ ≤ 1``. Elsewhere Newton's method from ``c = 0`` on ``f(c) − c``, which on
    ``[0, 1]`` is convex (``f`` is a power series in ``c`` with non-negative coefficients), so the
    iterates rise monotonically to ``c*``; a step that would leave ``[c, 1)`` is replaced by a plain
    step ``c ← f(c)``."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        return _c_star(act, sw2, sb2, q, tol=tol, max_iter=max_iter)


def _c_star(act: Activation, sw2: np.ndarray | float, sb2: np.ndarray | float, q: np.ndarray | float, *,
            tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    sw2, sb2, q = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (sw2, sb2, q)))
    shape = sw2.shape
    w, b, qq = sw2.ravel(), sb2.ravel(), q.ravel()
    cs = np.full(w.size, np.nan)
    slope = np.full(w.size, np.nan)
    finite = np.isfinite(qq)
    x1 = np.full(w.size, np.nan)
    x1[finite] = chi1(act, w[finite], qq[finite])
    ordered = finite & (x1 <= 1.0)
    cs[ordered], slope[ordered] = 1.0, x1[ordered]
    active = np.flatnonzero(finite & ~ordered)
    c = np.zeros(w.size)
    for _ in range(max_iter):
        if active.size == 0:
            break
        ca = c[active]
        f, df = correlation_map(act, w[active], b[active], qq[active], ca)
        g, dg = f - ca, df - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = ca - g / dg
        ok = np.isfinite(newton) & (newton >= ca) & (newton < 1.0) & (dg < 0.0)
        new = np.clip(np.where(ok, newton, f), -1.0, 1.0)
        done = np.abs(new - ca) <= tol
        c[active] = new
        active = active[~done]
    rest = np.flatnonzero(finite & ~ordered)
    if rest.size:
        cs[rest] = c[rest]
        slope[rest] = correlation_map(act, w[rest], b[rest], qq[rest], c[rest])[1]
    return cs.reshape(shape), slope.reshape(shape)


def mean_field(act: Activation, sw2: np.ndarray | float, sb2: np.ndarray | float,
               progress: Callable[[float], object] | None = None, chunks: int = 1) -> MeanField:
    """``q*``, ``c*``, ``χ₁``, ``χ_c`` and ``ξ_c = −1/ln χ_c`` at every ``(σ_w², σ_b²)`` (broadcast).

    ``progress(fraction)`` is called after each of ``chunks`` slices of the flattened grid."""
    sw2, sb2 = np.broadcast_arrays(np.asarray(sw2, dtype=np.float64), np.asarray(sb2, dtype=np.float64))
    shape = sw2.shape
    w, b = sw2.ravel(), sb2.ravel()
    out = {k: np.empty(w.size) for k in MeanField._fields}
    parts = np.array_split(np.arange(w.size), max(1, min(int(chunks), w.size)))
    for i, idx in enumerate(parts):
        wi, bi = w[idx], b[idx]
        qs = q_star(act, wi, bi)
        cs, xc = c_star(act, wi, bi, qs)
        q_eval = np.where(np.isfinite(qs), qs, Q_DIVERGED)
        out["q_star"][idx] = qs
        out["c_star"][idx] = cs
        out["chi1"][idx] = chi1(act, wi, q_eval)
        out["chi_c"][idx] = xc
        with np.errstate(divide="ignore", invalid="ignore"):
            out["xi_c"][idx] = np.where(xc >= 1.0, np.inf, np.where(xc <= 0.0, 0.0, -1.0 / np.log(xc)))
        if progress is not None:
            progress((i + 1) / len(parts))
    return MeanField(**{k: v.reshape(shape) for k, v in out.items()})
