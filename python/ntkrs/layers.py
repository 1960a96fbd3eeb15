"""Layers with neural-tangents' ``stax`` names, arguments, defaults and semantics.

Every layer is an object with a compiled core (``_core``); combine them with
:func:`ntkrs.serial` (which returns a :class:`~ntkrs.network.Network`) and :func:`parallel`:

* :class:`Dense` ``(out_dim, W_std=1.0, b_std=None, parameterization="ntk")``;
* activations (:class:`Relu`, :class:`Erf`, :class:`Tanh`, ... — one class per entry of the
  core's activation registry, ``_core.activation_registry()``), each with ``maps``;
* :class:`Identity`, :class:`LayerNorm` ``(axis=-1, eps=1e-12)``, :class:`Dropout`
  ``(rate, mode="train")`` (``rate`` is the *keep* rate, as in stax);
* branches: :class:`FanOut` ``(num)``, :class:`FanInSum`, :class:`FanInProd`,
  :class:`FanInConcat` ``(axis=-1)`` and :func:`parallel`; a residual block is
  ``serial(FanOut(2), parallel(block, Identity()), FanInSum())``;
* convolutional layers on ``(N, H, W, C)`` images or ``(N, L, C)`` sequences: :class:`Conv`
  ``(out_chan, filter_shape, strides=None, padding="VALID", W_std=1.0, b_std=None,
  parameterization="ntk")``, :class:`AvgPool`, :class:`SumPool` ``(window_shape, strides=None,
  padding="VALID")``, and the readouts :class:`GlobalAvgPool`, :class:`GlobalSumPool`,
  :class:`Flatten`.

An activation, and ``LayerNorm``, need a Gaussian input (after a ``Dense``, a sum of Gaussian
branches, or a ``LayerNorm`` of one), as in neural-tangents; a network that breaks a rule raises a
``ValueError`` naming the layer, its position and the fix. Kernels of branches assume independent
branches: put a ``Dense`` in each.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _core

ArrayLike = Any

__all__ = [
    "Activation", "AvgPool", "Conv", "Dense", "Dropout", "Elementwise", "FanInConcat", "FanInProd", "FanInSum",
    "FanOut", "Flatten", "GlobalAvgPool", "GlobalSumPool", "Identity", "Layer", "LayerNorm", "Parallel",
    "Polynomial", "REGISTRY", "SumPool", "activation_from_name", "parallel",
]


def _real(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}") from None


class Layer:
    """Base class of every layer and combinator: ``_core`` is its compiled core layer."""

    _core: Any

    def _children(self) -> tuple[Layer, ...]:
        """The layers inside a combinator (none for a plain layer)."""
        return ()


# --------------------------------------------------------------------------------------------
# Dense
# --------------------------------------------------------------------------------------------


class Dense(Layer):
    """A fully-connected layer ``x ↦ W_std/√n_in · x W + b_std · b`` with ``W, b ~ N(0, 1)``.

    Args:
        out_dim: the layer's width (≥ 1). Infinite-width kernels in the NTK parameterization do
            not depend on it; the standard parameterization's NTK does, through the next layer.
        W_std: weight standard deviation σ_w ≥ 0.
        b_std: bias standard deviation σ_b ≥ 0, or ``None`` for no bias (same as 0 for the
            kernels, except the standard parameterization's ``+1``).
        parameterization: ``"ntk"`` (default) or ``"standard"`` (``W ~ N(0, W_std²/n_in)``,
            ``b ~ N(0, b_std²)``, ``x ↦ x W + b``).

    Kernels: ``nngp' = W_std²·nngp + b_std²``; ``ntk' = nngp' + W_std²·ntk`` (ntk), or
    ``ntk' = n_in·nngp + W_std²·ntk (+1 with a bias)`` (standard, ``n_in`` the input width).
    """

    def __init__(self, out_dim: int, W_std: float = 1.0, b_std: float | None = None,
                 parameterization: str = "ntk") -> None:
        self.out_dim = _integer("out_dim", out_dim)
        self.W_std = _real("W_std", W_std)
        self.b_std = None if b_std is None else _real("b_std", b_std)
        if not isinstance(parameterization, str):
            raise TypeError(f"parameterization: expected 'ntk' or 'standard', got {parameterization!r}")
        self.parameterization = parameterization
        self._core = _core.Layer.dense(self.out_dim, self.W_std, self.b_std, parameterization)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle / copy.deepcopy / sklearn.clone rebuild the layer from its arguments.
        return (Dense, (self.out_dim, self.W_std, self.b_std, self.parameterization))

    def __repr__(self) -> str:
        extra = "" if self.parameterization == "ntk" else f", parameterization={self.parameterization!r}"
        return f"Dense({self.out_dim}, W_std={self.W_std}, b_std={self.b_std}{extra})"


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------


class Activation(Layer):
    """A pointwise nonlinearity. Its input must be Gaussian (after a :class:`Dense`, a sum of
    Gaussian branches, or a :class:`LayerNorm` of one).

    Every activation exposes its kernel maps through :meth:`maps`.
    """

    _kind: str = ""
    _param_names: tuple[str, ...] = ()

    def __init__(self, *params: float, quad_degree: int | None = None, fn: Callable | None = None,
                 dfn: Callable | None = None, name: str | None = None) -> None:
        self._params = tuple(float(p) for p in params)
        self._quad_degree = quad_degree
        kw: dict[str, Any] = {}
        if quad_degree is not None:
            kw["quad_degree"] = _integer("quad_degree", quad_degree)
            if kw["quad_degree"] < 2:
                raise ValueError(f"quad_degree: must be between 2 and 256, got {quad_degree}")
        if fn is not None:
            kw["fn"] = fn
            kw["dfn"] = dfn
            kw["name"] = name
        self._act = _core.Activation(self._kind, list(self._params), **kw)
        self._core = _core.Layer.activation(self._act)

    def _args(self) -> tuple[Any, ...]:
        return self._params

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle / copy.deepcopy / sklearn.clone rebuild the activation from its arguments.
        kwargs = {} if self._quad_degree is None else {"quad_degree": self._quad_degree}
        return (_rebuild_activation, (type(self), self._args(), kwargs))

    def maps(self, var1: ArrayLike, var2: ArrayLike, cov: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Kernel maps ``(E[φ(u)φ(v)], E[φ'(u)φ'(v)])`` for the centred Gaussian pair with
        ``Var u = var1``, ``Var v = var2``, ``Cov(u, v) = cov`` (broadcast; ``|cov|`` is clamped to
        ``√(var1·var2)``). Returns two float64 arrays of the broadcast shape."""
        a, b, c = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (var1, var2, cov)))
        shape = a.shape
        n, d = self._act.maps(*(np.ascontiguousarray(v).reshape(-1) for v in (a, b, c)))
        return n.reshape(shape), d.reshape(shape)

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._param_names)
        return f"{type(self).__name__}({args})"


def _rebuild_activation(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Activation:
    return cls(*args, **kwargs)


REGISTRY: dict[str, dict[str, Any]] = {k["key"]: k for k in _core.activation_registry()}
"""The core's activation registry by key: ``class``, ``aliases``, ``params`` (``name``, ``default``,
``integer``, ``range``, ``typical``), ``numerical``, ``tunable`` (the parameter dashboards expose) and
``doc``. The classes below, the dashboards and the command line are built from it."""


def _make(entry: dict[str, Any]) -> type:
    """The activation class of one registry entry, taking its parameters positionally or by name."""
    params = tuple(p["name"] for p in entry["params"])
    defaults = {p["name"]: p["default"] for p in entry["params"] if p["default"] is not None}
    integers = {p["name"] for p in entry["params"] if p["integer"]}
    numerical = entry["numerical"]

    def __init__(self: Activation, *args: Any, quad_degree: int | None = None, **kwargs: Any) -> None:
        values = list(args)
        if len(values) > len(params):
            raise TypeError(f"{type(self).__name__} takes at most {len(params)} parameters")
        for p in params[len(values):]:
            if p in kwargs:
                values.append(kwargs.pop(p))
            elif p in defaults:
                values.append(defaults[p])
            else:
                raise TypeError(f"{type(self).__name__}: missing argument {p!r}")
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected argument(s) {sorted(kwargs)}")
        for p, v in zip(params, values, strict=True):
            if p in integers:
                if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or float(v) != int(v) or v < 0:
                    raise ValueError(f"{p}: must be a non-negative integer, got {v!r}")
            else:
                _real(p, v)
        if not numerical and quad_degree is not None:
            raise TypeError(f"{type(self).__name__} has a closed-form kernel; quad_degree does not apply")
        Activation.__init__(self, *values, quad_degree=quad_degree)
        for p, v in zip(params, values, strict=True):
            setattr(self, p, int(v) if p in integers else v)

    doc = entry["doc"].replace("`", "``")
    return type(entry["class"], (Activation,), {"__init__": __init__, "__doc__": doc, "_kind": entry["key"],
                                               "_param_names": params, "__module__": __name__})


class Identity(Activation):
    """The identity layer (stax's ``Identity()``): passes its input on unchanged, anywhere in a
    network (its input need not be Gaussian). As an activation, ``φ(x) = x``: ``maps`` gives
    ``(cov, 1)``."""

    _kind = "identity"

    def __init__(self) -> None:
        super().__init__()
        self._core = _core.Layer.identity()


class Polynomial(Activation):
    """``φ(x) = coef[0] + coef[1]·x + … + coef[n]·xⁿ`` (numpy's ``Polynomial`` order), degree ≤ 32."""

    _kind = "polynomial"
    _param_names = ("coef",)

    def __init__(self, coef: Sequence[float]) -> None:
        c = np.asarray(coef)
        if c.ndim != 1 or c.size == 0 or c.dtype.kind not in "biuf":
            raise TypeError(f"coef: expected a non-empty 1-D sequence of real numbers, got {coef!r}")
        self.coef = tuple(float(v) for v in c)
        super().__init__(*self.coef)

    def _args(self) -> tuple[Any, ...]:
        return (self.coef,)


class Elementwise(Activation):
    """Any pointwise function, integrated numerically (polar Gauss–Legendre rule, see the README).

    Args:
        fn: a vectorised function ``ndarray -> ndarray`` (float64 in, same shape out).
        dfn: its derivative, vectorised; if ``None`` it is taken by central differences.
        quad_degree: degree of the rule (default 48): ``quad_degree`` radial nodes and half as many
            angular nodes per arc.
    """

    _kind = "elementwise"

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], dfn: Callable[[np.ndarray], np.ndarray] | None = None,
                 quad_degree: int | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
        if dfn is not None and not callable(dfn):
            raise TypeError(f"dfn: expected a callable or None, got {type(dfn).__name__}")
        self.fn, self.dfn = fn, dfn
        name = f"Elementwise({getattr(fn, '__name__', 'fn')})"
        super().__init__(quad_degree=quad_degree, fn=fn, dfn=dfn, name=name)

    def _args(self) -> tuple[Any, ...]:
        return (self.fn, self.dfn)

    def __repr__(self) -> str:
        return f"Elementwise({getattr(self.fn, '__name__', 'fn')})"


_SPECIAL = {"identity": Identity, "polynomial": Polynomial, "elementwise": Elementwise}
ACTIVATION_CLASSES: dict[str, type] = {
    key: _SPECIAL.get(key) or _make(entry) for key, entry in REGISTRY.items()
}
"""The activation class of every registry key."""

globals().update({REGISTRY[k]["class"]: cls for k, cls in ACTIVATION_CLASSES.items()})
__all__ += sorted(REGISTRY[k]["class"] for k in ACTIVATION_CLASSES if k not in _SPECIAL)


def activation_from_name(name: str) -> Activation:
    """An activation from its registry key, alias or class name, optionally with parameters in
    parentheses: ``"relu"``, ``"Tanh"``, ``"swish"``, ``"leaky_relu(0.1)"``, ``"erf(1, 2)"``
    (the command line's grammar)."""
    if not isinstance(name, str):
        raise TypeError(f"activation: expected a name, got {name!r}")
    key, params = _core.parse_activation(name)
    cls = ACTIVATION_CLASSES[key]
    if key == "polynomial":
        return cls(params)
    if key == "identity":
        return cls()
    integers = [p["integer"] for p in REGISTRY[key]["params"]]
    return cls(*(int(v) if i else v for v, i in zip(params, integers, strict=False)))


# --------------------------------------------------------------------------------------------
# Normalisation, dropout, branches
# --------------------------------------------------------------------------------------------


class LayerNorm(Layer):
    """Layer normalisation ``y = (x − mean(x))/√(var(x) + eps)`` over each sample's channels.

    Args:
        axis: the axes normalised over; they must include the channels (``-1``, the default) and
            not the batch axis.
        eps: added to the variance (> 0).

    Kernels (its input must be Gaussian): ``nngp' = nngp/√((q1 + eps)(q2 + eps))``, likewise the
    NTK, with ``q`` each sample's variance. Only the per-sample variances are needed, so it adds
    no ``N × N`` work of its own.
    """

    def __init__(self, axis: int | Sequence[int] = -1, eps: float = 1e-12) -> None:
        axes = [axis] if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) else axis
        if isinstance(axes, (str, bytes)) or not isinstance(axes, Sequence):
            raise TypeError(f"axis: expected an integer or a tuple of them, got {axis!r}")
        self.axis = axis
        self.eps = _real("eps", eps)
        self._core = _core.Layer.layer_norm([_integer("axis", a) for a in axes], self.eps)

    def __reduce__(self) -> tuple[Any, ...]:
        return (LayerNorm, (self.axis, self.eps))

    def __repr__(self) -> str:
        return f"LayerNorm(axis={self.axis!r}, eps={self.eps!r})"


class Dropout(Layer):
    """Dropout with keep rate ``rate`` (neural-tangents' convention: ``rate=0.9`` keeps 90% of the
    units, scaled by ``1/rate``); ``mode="test"`` is the identity.

    Kernels (train mode): each sample's variance becomes ``q/rate``, and the entries of a sample
    with itself (the diagonal of ``k(x, x)``, also when ``x2`` equals ``x1``) are multiplied by
    ``1/rate``. The output is not Gaussian (no activation or ``LayerNorm`` may follow directly), and
    dropout may not act on the raw inputs. Finite networks draw their masks from a
    ``dropout_seed``.
    """

    def __init__(self, rate: float, mode: str = "train") -> None:
        self.rate = _real("rate", rate)
        if mode not in ("train", "test"):
            raise ValueError(f"mode: expected 'train' or 'test', got {mode!r}")
        self.mode = mode
        self._core = _core.Layer.dropout(self.rate, mode)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Dropout, (self.rate, self.mode))

    def __repr__(self) -> str:
        return f"Dropout({self.rate!r}, mode={self.mode!r})"


class FanOut(Layer):
    """``num`` copies of the input, one per branch (feed them to :func:`parallel`)."""

    def __init__(self, num: int) -> None:
        self.num = _integer("num", num)
        self._core = _core.Layer.fan_out(self.num)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FanOut, (self.num,))

    def __repr__(self) -> str:
        return f"FanOut({self.num})"


class FanInSum(Layer):
    """The sum of the branches (which must be Gaussian and of equal widths): kernels add."""

    def __init__(self) -> None:
        self._core = _core.Layer.fan_in("sum")

    def __reduce__(self) -> tuple[Any, ...]:
        return (FanInSum, ())

    def __repr__(self) -> str:
        return "FanInSum()"


class FanInProd(Layer):
    """The elementwise product of the branches (of equal widths): ``nngp' = Π nngp_k``,
    ``ntk' = Σ_k ntk_k Π_{l≠k} nngp_l``; not Gaussian."""

    def __init__(self) -> None:
        self._core = _core.Layer.fan_in("prod")

    def __reduce__(self) -> tuple[Any, ...]:
        return (FanInProd, ())

    def __repr__(self) -> str:
        return "FanInProd()"


class FanInConcat(Layer):
    """The concatenation of the branches along the channels (``axis=-1``): kernels are averaged,
    weighted by the branches' widths (the plain mean when they are equal), as neural-tangents does;
    not Gaussian (put a ``Dense`` after it)."""

    def __init__(self, axis: int = -1) -> None:
        self.axis = _integer("axis", axis)
        self._core = _core.Layer.fan_in("concat", self.axis)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FanInConcat, (self.axis,))

    def __repr__(self) -> str:
        return f"FanInConcat(axis={self.axis})"


def _layer_list(layers: Sequence[Any], what: str) -> tuple[Layer, ...]:
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            hint = " (did you forget the parentheses, e.g. nk.Relu()?)" if isinstance(layer, type) else ""
            raise TypeError(f"{what}: item {i} is {type(layer).__name__}, not a layer{hint}")
    return tuple(layers)


class Parallel(Layer):
    """One layer per branch: layer ``k`` is applied to branch ``k`` (see :func:`parallel`)."""

    def __init__(self, *layers: Layer) -> None:
        self.layers = _layer_list(layers, "parallel")
        if not self.layers:
            raise ValueError("parallel: give at least one layer")
        self._core = _core.Layer.parallel([layer._core for layer in self.layers])

    def _children(self) -> tuple[Layer, ...]:
        return self.layers

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_parallel, (self.layers,))

    def __repr__(self) -> str:
        return "parallel(" + ", ".join(map(repr, self.layers)) + ")"


def _rebuild_parallel(layers: tuple[Layer, ...]) -> Parallel:
    return Parallel(*layers)


def parallel(*layers: Layer) -> Parallel:
    """Apply ``layers[k]`` to branch ``k`` (``stax.parallel``); the branches come from
    :class:`FanOut` and are joined by a ``FanIn`` layer."""
    return Parallel(*layers)


# --------------------------------------------------------------------------------------------
# Convolutions, pooling, readouts
# --------------------------------------------------------------------------------------------


_PADDINGS = ("VALID", "SAME", "CIRCULAR")


def _sizes(name: str, value: Any, allow_none: bool = False) -> tuple[int, ...] | None:
    """A tuple of integers (``filter_shape``, ``window_shape``, ``strides``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name}: expected a tuple of integers, one per spatial axis (e.g. (3, 3)), got {value!r}")
    out = tuple(_integer(name, v) for v in value)
    if any(v < 1 for v in out):
        raise ValueError(f"{name}: every entry must be at least 1, got {out}")
    return out


def _padding(padding: Any) -> str:
    if not isinstance(padding, str):
        raise TypeError(f"padding: expected 'VALID', 'SAME' or 'CIRCULAR', got {padding!r}")
    if padding not in _PADDINGS:
        raise ValueError(f"padding: {padding!r} is not a valid padding; use 'VALID', 'SAME' or 'CIRCULAR' "
                         "(upper case, as in neural-tangents)")
    return padding


def _default_axes(layer: str, **axes: Any) -> None:
    """neural-tangents' layout arguments: only its defaults (NHWC, batch first) are supported."""
    defaults = {"batch_axis": 0, "channel_axis": -1, "batch_axis_out": 0}
    for k, v in axes.items():
        if v != defaults[k]:
            raise ValueError(f"{layer}: {k}={v!r} is not supported; ntkrs takes inputs (N, ..., C) with the batch "
                             f"first and the channels last ({k}={defaults[k]})")


class Conv(Layer):
    """A convolution over the spatial axes of ``(N, H, W, C)`` images (``(N, L, C)`` sequences for a
    1-D ``filter_shape``), neural-tangents' ``stax.Conv``.

    Args:
        out_chan: output channels (≥ 1). The NTK-parameterization kernels do not depend on it.
        filter_shape: the filter size per spatial axis, e.g. ``(3, 3)``.
        strides: the stride per spatial axis (default 1).
        padding: ``"VALID"`` (no padding), ``"SAME"`` (zero padding, ``⌈L/s⌉`` outputs; an even
            filter pads one more at the end) or ``"CIRCULAR"`` (``SAME``'s sizes, wrapped around).
        W_std, b_std, parameterization: as for :class:`Dense`.

    Kernels, with ``|f|`` the number of filter taps and ``i(o, δ) = o·s + δ − lo`` per axis:
    ``nngp'(o, o') = W_std²/|f| · Σ_δ nngp(i(o, δ), i(o', δ)) + b_std²`` (taps in the ``SAME``
    padding add 0 and the divisor stays ``|f|``), ``ntk' = nngp' + W_std²/|f| · Σ_δ ntk(...)``
    (NTK parameterization; standard: ``C_in·Σ_δ nngp(...) + W_std²/|f|·Σ_δ ntk(...) (+1 with a
    bias)``). Finite networks: filters ``filter_shape + (C_in, out_chan)`` (HWIO), bias
    ``(out_chan,)`` (neural-tangents' ``(1, 1, 1, out_chan)`` is accepted).
    """

    def __init__(self, out_chan: int, filter_shape: Sequence[int], strides: Sequence[int] | None = None,
                 padding: str = "VALID", W_std: float = 1.0, b_std: float | None = None,
                 dimension_numbers: Any = None, parameterization: str = "ntk") -> None:
        self.out_chan = _integer("out_chan", out_chan)
        if self.out_chan < 1:
            raise ValueError(f"out_chan: a Conv layer needs at least 1 output channel, got {out_chan}")
        self.filter_shape = _sizes("filter_shape", filter_shape)
        self.strides = _sizes("strides", strides, allow_none=True)
        if self.strides is not None and len(self.strides) != len(self.filter_shape):
            raise ValueError(f"strides: {self.strides} has {len(self.strides)} entries but filter_shape "
                             f"{self.filter_shape} has {len(self.filter_shape)}; give one stride per spatial axis")
        self.padding = _padding(padding)
        self.W_std = _real("W_std", W_std)
        self.b_std = None if b_std is None else _real("b_std", b_std)
        if dimension_numbers not in (None, ("NHWC", "HWIO", "NHWC"), ("NWC", "WIO", "NWC")):
            raise ValueError(f"dimension_numbers: only neural-tangents' default layout (inputs NHWC, filters HWIO) "
                             f"is supported, got {dimension_numbers!r}")
        if not isinstance(parameterization, str):
            raise TypeError(f"parameterization: expected 'ntk' or 'standard', got {parameterization!r}")
        self.parameterization = parameterization
        self._core = _core.Layer.conv(self.out_chan, list(self.filter_shape),
                                      None if self.strides is None else list(self.strides), self.padding,
                                      self.W_std, self.b_std, parameterization)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_conv, (self.out_chan, self.filter_shape, self.strides, self.padding, self.W_std,
                                self.b_std, self.parameterization))

    def __repr__(self) -> str:
        extra = "" if self.strides is None else f", strides={self.strides}"
        extra += "" if self.parameterization == "ntk" else f", parameterization={self.parameterization!r}"
        return (f"Conv({self.out_chan}, {self.filter_shape}{extra}, padding={self.padding!r}, W_std={self.W_std}, "
                f"b_std={self.b_std})")


def _rebuild_conv(out_chan, filter_shape, strides, padding, W_std, b_std, parameterization) -> Conv:  # noqa: N803
    return Conv(out_chan, filter_shape, strides, padding, W_std, b_std, parameterization=parameterization)


class _Pool(Layer):
    _kind = ""

    def __init__(self, window_shape: Sequence[int], strides: Sequence[int] | None = None, padding: str = "VALID",
                 normalize_edges: bool = False) -> None:
        self.window_shape = _sizes("window_shape", window_shape)
        self.strides = _sizes("strides", strides, allow_none=True)
        if self.strides is not None and len(self.strides) != len(self.window_shape):
            raise ValueError(f"strides: {self.strides} has {len(self.strides)} entries but window_shape "
                             f"{self.window_shape} has {len(self.window_shape)}; give one stride per spatial axis")
        self.padding = _padding(padding)
        if not isinstance(normalize_edges, (bool, np.bool_)):
            raise TypeError(f"normalize_edges: expected True or False, got {normalize_edges!r}")
        self.normalize_edges = bool(normalize_edges)
        self._core = _core.Layer.pool(self._kind, list(self.window_shape),
                                      None if self.strides is None else list(self.strides), self.padding,
                                      self.normalize_edges)

    def __repr__(self) -> str:
        extra = "" if self.strides is None else f", strides={self.strides}"
        extra += ", normalize_edges=True" if self.normalize_edges else ""
        return f"{type(self).__name__}({self.window_shape}{extra}, padding={self.padding!r})"


class AvgPool(_Pool):
    """Average pooling over windows of the spatial axes (neural-tangents' ``stax.AvgPool``).

    Args:
        window_shape: the window per spatial axis, e.g. ``(2, 2)``.
        strides: per spatial axis (default 1, as in neural-tangents — not the window).
        padding: ``"VALID"``, ``"SAME"`` or ``"CIRCULAR"`` (as for :class:`Conv`).
        normalize_edges: under ``SAME``, divide by the number of window entries inside the input
            rather than the window size (default ``False``: the window size, as neural-tangents).

    Kernels: ``nngp'(o, o') = Σ_{δ, δ'} nngp(i(o, δ), i(o', δ')) / (n(o)·n(o'))`` over all pairs
    of window entries, likewise the NTK; it needs the covariances of every pair of positions.
    """

    _kind = "avg"

    def __init__(self, window_shape: Sequence[int], strides: Sequence[int] | None = None, padding: str = "VALID",
                 normalize_edges: bool = False, batch_axis: int = 0, channel_axis: int = -1) -> None:
        _default_axes("AvgPool", batch_axis=batch_axis, channel_axis=channel_axis)
        super().__init__(window_shape, strides, padding, normalize_edges)

    def __reduce__(self) -> tuple[Any, ...]:
        return (AvgPool, (self.window_shape, self.strides, self.padding, self.normalize_edges))


class SumPool(_Pool):
    """Sum pooling over windows of the spatial axes (neural-tangents' ``stax.SumPool``); as
    :class:`AvgPool` without the division."""

    _kind = "sum"

    def __init__(self, window_shape: Sequence[int], strides: Sequence[int] | None = None, padding: str = "VALID",
                 batch_axis: int = 0, channel_axis: int = -1) -> None:
        _default_axes("SumPool", batch_axis=batch_axis, channel_axis=channel_axis)
        super().__init__(window_shape, strides, padding)

    def __reduce__(self) -> tuple[Any, ...]:
        return (SumPool, (self.window_shape, self.strides, self.padding))


class GlobalAvgPool(Layer):
    """The mean over every spatial position: ``(N, ..., C) → (N, C)``. Kernel: the mean of
    ``nngp(p, p')`` over all pairs of positions (likewise the NTK); keeps Gaussianity."""

    def __init__(self, batch_axis: int = 0, channel_axis: int = -1) -> None:
        _default_axes("GlobalAvgPool", batch_axis=batch_axis, channel_axis=channel_axis)
        self._core = _core.Layer.global_pool("avg")

    def __reduce__(self) -> tuple[Any, ...]:
        return (GlobalAvgPool, ())

    def __repr__(self) -> str:
        return "GlobalAvgPool()"


class GlobalSumPool(Layer):
    """The sum over every spatial position: ``(N, ..., C) → (N, C)``. Kernel: the sum of
    ``nngp(p, p')`` over all pairs of positions (likewise the NTK)."""

    def __init__(self, batch_axis: int = 0, channel_axis: int = -1) -> None:
        _default_axes("GlobalSumPool", batch_axis=batch_axis, channel_axis=channel_axis)
        self._core = _core.Layer.global_pool("sum")

    def __reduce__(self) -> tuple[Any, ...]:
        return (GlobalSumPool, ())

    def __repr__(self) -> str:
        return "GlobalSumPool()"


class Flatten(Layer):
    """``(N, ..., C) → (N, H·W·C)``, neural-tangents' ``stax.Flatten``. Kernel: the mean over positions
    of ``nngp(p, p)`` (equal positions only, divided by the number of positions; the next
    ``Dense`` sees ``n_in = H·W·C``). The output is not Gaussian (put a ``Dense`` after it)."""

    def __init__(self, batch_axis: int = 0, batch_axis_out: int = 0) -> None:
        _default_axes("Flatten", batch_axis=batch_axis, batch_axis_out=batch_axis_out)
        self._core = _core.Layer.flatten()

    def __reduce__(self) -> tuple[Any, ...]:
        return (Flatten, ())

    def __repr__(self) -> str:
        return "Flatten()"
