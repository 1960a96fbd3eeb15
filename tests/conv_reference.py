"""A direct numpy reference for finite-width convolutional networks in neural-tangents' ``stax``
layout: inputs NHWC (``(N, *spatial, C)``), Conv filters HWIO ``(*filter, in, out)`` with bias
``(out,)``, Dense on the last axis with ``W`` of shape ``(in, out)``.

Independent of ntkrs's core: the convolution is an explicit loop over filter taps on a padded
array (``VALID``, ``SAME`` as in JAX/XLA: ``pad = max((out − 1)·s + f − L, 0)``, low half
``pad // 2``; ``CIRCULAR``: the same amounts, wrapped), pooling likewise (neural-tangents' window
sizes and default stride 1). It interprets ntkrs's layer objects (so tests can run the same
``stax`` expression through both), and is checked against neural-tangents' own outputs and
empirical kernels in ``tests/test_conv_reference.py``; it is the reference for ntkrs's finite-width
CNNs (issue 12), with :func:`reference.fd_jacobian` for their empirical NTK.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import ntkrs
import numpy as np
import reference as ref
from ntkrs import layers as L  # noqa: N812


def _pad_amounts(length: int, f: int, s: int, padding: str) -> tuple[int, int, int]:
    """``(low, high, out)`` of one spatial axis."""
    if padding == "VALID":
        return 0, 0, (length - f) // s + 1
    out = -(-length // s)
    total = max((out - 1) * s + f - length, 0)
    return total // 2, total - total // 2, out


def _pad(x: np.ndarray, window: tuple[int, ...], strides: tuple[int, ...], padding: str) -> np.ndarray:
    """``x`` (N, *spatial, C) padded for a window: zeros, or wrapped under ``CIRCULAR``."""
    widths = [(0, 0)]
    for k, (f, s) in enumerate(zip(window, strides, strict=True)):
        lo, hi, _ = _pad_amounts(x.shape[1 + k], f, s, padding)
        widths.append((lo, hi))
    widths.append((0, 0))
    return np.pad(x, widths, mode="wrap" if padding == "CIRCULAR" else "constant")


def _windows(x: np.ndarray, window: tuple[int, ...], strides: tuple[int, ...],
             padding: str) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """Each filter tap ``δ`` and the input entries it meets at every output position:
    ``(N, *out, C)``."""
    xp = _pad(x, window, strides, padding)
    outs = [_pad_amounts(x.shape[1 + k], f, s, padding)[2]
            for k, (f, s) in enumerate(zip(window, strides, strict=True))]
    for tap in np.ndindex(*window):
        index = [slice(None)]
        for t, s, o in zip(tap, strides, outs, strict=True):
            index.append(slice(t, t + s * (o - 1) + 1, s))
        index.append(slice(None))
        yield tap, xp[tuple(index)]


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, layer: L.Conv) -> np.ndarray:
    """stax.Conv's ``apply_fn``: NTK parameterization ``W_std/√(fan_in)·(x ⋆ W) + b_std·b``
    (``fan_in = prod(filter)·in``), standard ``x ⋆ W + b``."""
    window = tuple(layer.filter_shape)
    strides = tuple(layer.strides) if layer.strides is not None else (1,) * len(window)
    out = 0.0
    for tap, xs in _windows(x, window, strides, layer.padding):
        out = out + xs @ w[tap]
    fan_in = math.prod(window) * x.shape[-1]
    if layer.parameterization == "ntk":
        out = layer.W_std / math.sqrt(fan_in) * out
        if b is not None:
            out = out + layer.b_std * np.reshape(b, (-1,))
    elif b is not None:
        out = out + np.reshape(b, (-1,))
    return out


def pool(x: np.ndarray, layer: L._Pool) -> np.ndarray:
    """stax.AvgPool / SumPool (zero padding counted in the average unless ``normalize_edges``)."""
    window = tuple(layer.window_shape)
    strides = tuple(layer.strides) if layer.strides is not None else (1,) * len(window)
    total = 0.0
    count = 0.0
    for _, xs in _windows(x, window, strides, layer.padding):
        total = total + xs
    if isinstance(layer, L.SumPool):
        return total
    if layer.normalize_edges and layer.padding == "SAME":
        ones = np.ones((1,) + x.shape[1:-1] + (1,))
        for _, os in _windows(ones, window, strides, "SAME"):
            count = count + os
        return total / count
    return total / math.prod(window)


def dense(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, layer: L.Dense) -> np.ndarray:
    """stax.Dense on the last axis."""
    if layer.parameterization == "ntk":
        out = layer.W_std / math.sqrt(x.shape[-1]) * (x @ w)
        return out if b is None else out + layer.b_std * np.reshape(b, (-1,))
    out = x @ w
    return out if b is None else out + np.reshape(b, (-1,))


def _phi(act: L.Activation) -> ref.Phi:
    return ref.phi(type(act).__name__, *act._args())


def _run(layer: L.Layer, xs: list[np.ndarray], params: Iterator) -> list[np.ndarray]:
    if isinstance(layer, ntkrs.Network):
        for child in layer.layers:
            xs = _run(child, xs, params)
        return xs
    if isinstance(layer, L.Parallel):
        return [_run(child, [x], params)[0] for child, x in zip(layer.layers, xs, strict=True)]
    if isinstance(layer, L.FanOut):
        return [xs[0]] * layer.num
    if isinstance(layer, L.FanInSum):
        return [sum(xs[1:], xs[0])]
    (x,) = xs
    if isinstance(layer, L.Conv):
        w, b = next(params)
        return [conv(x, w, b, layer)]
    if isinstance(layer, L.Dense):
        w, b = next(params)
        return [dense(x, w, b, layer)]
    if isinstance(layer, L._Pool):
        return [pool(x, layer)]
    if isinstance(layer, L.GlobalAvgPool):
        return [x.mean(axis=tuple(range(1, x.ndim - 1)))]
    if isinstance(layer, L.GlobalSumPool):
        return [x.sum(axis=tuple(range(1, x.ndim - 1)))]
    if isinstance(layer, L.Flatten):
        return [x.reshape(x.shape[0], -1)]
    if isinstance(layer, L.LayerNorm):
        if layer.axis != -1:
            raise NotImplementedError("the reference normalises the channel axis only")
        mu = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)
        return [(x - mu) / np.sqrt(var + layer.eps)]
    if isinstance(layer, L.Activation):
        return [_phi(layer).f(x)]
    raise NotImplementedError(f"the reference has no {type(layer).__name__}")


def pairs(params) -> list:
    """The ``(W, b)`` pairs of neural-tangents' nested parameters (or of a flat list of pairs),
    depth first."""
    if isinstance(params, (list, tuple)) and len(params) == 2 and isinstance(params[0], np.ndarray) \
            and params[0].ndim >= 2:
        return [params]
    if isinstance(params, (list, tuple)):
        return [p for t in params for p in pairs(t)]
    return []


def apply(net: ntkrs.Network, params, x: np.ndarray) -> np.ndarray:
    """The network's outputs on NHWC inputs ``x``; ``params`` as neural-tangents nests them or a
    flat list of ``(W, b)`` pairs (one per Conv or Dense, depth first)."""
    flat = [(np.asarray(w, float), None if b is None else np.asarray(b, float)) for w, b in pairs(params)]
    it = iter(flat)
    (out,) = _run(net, [np.asarray(x, float)], it)
    if next(it, None) is not None:
        raise ValueError("params: more (W, b) pairs than the network has Conv/Dense layers")
    return out


def empirical_ntk(net: ntkrs.Network, params, x1: np.ndarray, x2: np.ndarray | None = None,
                  h: float = 1e-5) -> np.ndarray:
    """The traced empirical NTK ``(1/O) Σ_o J_o(x1)·J_o(x2)`` from central differences of
    :func:`apply` (an explicit ``N × O × P`` Jacobian: small nets only)."""
    flat = [(np.asarray(w, float), None if b is None else np.asarray(b, float)) for w, b in pairs(params)]
    fwd = lambda p, x: apply(net, p, x)  # noqa: E731
    j1 = ref.fd_jacobian(fwd, flat, x1, h)
    j2 = j1 if x2 is None else ref.fd_jacobian(fwd, flat, x2, h)
    return np.einsum("aop,bop->ab", j1, j2) / j1.shape[1]
