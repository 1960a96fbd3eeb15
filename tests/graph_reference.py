"""An independent implementation of neural-tangents' kernel semantics for dense layer graphs, in
numpy, entry by entry: the reference the graph tests compare ntkrs with where neural-tangents is
not exact (its Gauss–Hermite quadrature of numerical activations).

It walks the ntkrs layer objects (their public attributes only: ``Dense.W_std``, ``LayerNorm.eps``,
``Dropout.rate``, ...) and applies the rules written in the semantics memo (neural-tangents 0.6.5's
``stax``): Dense ``K' = W²K + b²``, ``Θ' = K' + W²Θ`` (ntk) or ``n_in·K + W²Θ (+1)`` (standard);
activations through ``reference.reference_maps`` (this suite's own quadrature, checked against the
closed forms to 1e-12 in ``test_reference.py``); LayerNorm ``K/√((q1+ε)(q2+ε))``; Dropout ``1/rate``
on the diagonal of ``k(x, x)``; sums, products and width-weighted channel concatenations of
branches. No code is shared with ntkrs's Rust core.
"""

from __future__ import annotations

from dataclasses import dataclass

import ntkrs
import numpy as np
import reference as ref


@dataclass
class State:
    k: np.ndarray  # (n1, n2) covariance
    t: np.ndarray  # (n1, n2) NTK
    q1: np.ndarray  # (n1,) variances of x1's samples
    q2: np.ndarray  # (n2,)
    width: int


def _act_maps(act: ntkrs.Activation, s: State, same: bool) -> State:
    name = type(act).__name__
    args = [getattr(act, p) for p in act._param_names]
    p = ref.phi(name, *args)
    n1, n2 = s.k.shape
    k, d = np.empty_like(s.k), np.empty_like(s.k)
    for i in range(n1):
        for j in range(n2):
            k[i, j], d[i, j] = ref.reference_maps(p, s.q1[i], s.q2[j], s.k[i, j])
    q1 = np.array([ref.reference_maps(p, v, v, v)[0] for v in s.q1])
    q2 = q1.copy() if same else np.array([ref.reference_maps(p, v, v, v)[0] for v in s.q2])
    return State(k, s.t * d, q1, q2, s.width)


def _run(layer, branches: list[State], same: bool) -> list[State]:
    if isinstance(layer, ntkrs.Network):
        for child in layer.layers:
            branches = _run(child, branches, same)
        return branches
    if isinstance(layer, ntkrs.layers.Parallel):
        assert len(layer.layers) == len(branches)
        return [_run(child, [b], same)[0] for child, b in zip(layer.layers, branches, strict=True)]
    if isinstance(layer, ntkrs.FanOut):
        (s,) = branches
        return [s] * layer.num
    if isinstance(layer, (ntkrs.FanInSum, ntkrs.FanInProd, ntkrs.FanInConcat)):
        if len(branches) == 1:
            return branches
        if isinstance(layer, ntkrs.FanInSum):
            k, t = sum(b.k for b in branches), sum(b.t for b in branches)
            q1, q2 = sum(b.q1 for b in branches), sum(b.q2 for b in branches)
            return [State(k, t, q1, q2, branches[0].width)]
        if isinstance(layer, ntkrs.FanInProd):
            k, t = np.ones_like(branches[0].k), np.zeros_like(branches[0].k)
            for b in branches:
                k, t = k * b.k, t * b.k + k * b.t
            q1, q2 = np.prod([b.q1 for b in branches], 0), np.prod([b.q2 for b in branches], 0)
            return [State(k, t, q1, q2, branches[0].width)]
        widths = np.array([b.width for b in branches], float)
        w = np.full(len(branches), 1 / len(branches)) if np.all(widths == widths[0]) else widths / widths.sum()
        mix = lambda f: sum(wi * f(b) for wi, b in zip(w, branches, strict=True))  # noqa: E731
        return [State(mix(lambda b: b.k), mix(lambda b: b.t), mix(lambda b: b.q1), mix(lambda b: b.q2),
                      int(widths.sum()))]
    (s,) = branches
    if isinstance(layer, ntkrs.Identity):
        return [s]
    if isinstance(layer, ntkrs.Dense):
        w2, b2 = layer.W_std ** 2, (layer.b_std or 0.0) ** 2
        k = w2 * s.k + b2
        if layer.parameterization == "ntk":
            t = k + w2 * s.t
        else:
            t = s.width * s.k + w2 * s.t + (1.0 if layer.b_std is not None else 0.0)
        return [State(k, t, w2 * s.q1 + b2, w2 * s.q2 + b2, layer.out_dim)]
    if isinstance(layer, ntkrs.LayerNorm):
        r1, r2 = 1 / np.sqrt(s.q1 + layer.eps), 1 / np.sqrt(s.q2 + layer.eps)
        f = np.outer(r1, r2)
        return [State(s.k * f, s.t * f, s.q1 * r1 * r1, s.q2 * r2 * r2, s.width)]
    if isinstance(layer, ntkrs.Dropout):
        if layer.mode == "test":
            return [s]
        k, t = s.k.copy(), s.t.copy()
        if same:
            k[np.diag_indices_from(k)] /= layer.rate
            t[np.diag_indices_from(t)] /= layer.rate
        return [State(k, t, s.q1 / layer.rate, s.q2 / layer.rate, s.width)]
    if isinstance(layer, ntkrs.Activation):
        return [_act_maps(layer, s, same)]
    raise TypeError(f"no reference for {layer!r}")


def exact_kernels(net: ntkrs.Network, x1: np.ndarray, x2: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(NNGP, NTK) of ``net`` between ``x1`` and ``x2`` (``x1`` when ``None``)."""
    same = x2 is None
    x2 = x1 if same else x2
    d = x1.shape[1]
    k = x1 @ x2.T / d
    # a sample's variance is its covariance with itself: the same number on the diagonal of k(x, x),
    # so that ρ = 1 there exactly (an ulp off 1 is 1e-8 off in arccos-type maps)
    q1 = np.diag(k).copy() if same else np.sum(x1 * x1, 1) / d
    q2 = q1 if same else np.sum(x2 * x2, 1) / d
    s = State(k, np.zeros((len(x1), len(x2))), q1, q2, d)
    (out,) = _run(net, [s], same)
    return out.k, out.t
