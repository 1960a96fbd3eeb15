"""Layers and networks with neural-tangents' ``stax`` conventions.

A network is built with :func:`serial` from :class:`Dense` layers and activations; its
:meth:`Network.kernel` computes the infinite-width NNGP and NTK Gram matrices.

Conventions (exactly as ``neural_tangents.stax``):

* inputs ``x`` of shape ``(N, d)``; the input covariance is ``x·x'/d`` and the input NTK is 0;
* ``Dense(width, W_std, b_std, parameterization="ntk")``: ``nngp' = W_std²·nngp + b_std²`` and
  ``ntk' = nngp' + W_std²·ntk``; ``parameterization="standard"``: ``ntk' = n_in·nngp + W_std²·ntk``
  (``+1`` with a bias), where ``n_in`` is the layer's input width;
* an activation ``φ`` after a Dense maps ``nngp ↦ E[φ(u)φ(v)]`` and ``ntk ↦ ntk·E[φ'(u)φ'(v)]`` for
  the Gaussian pair ``(u, v)`` with the Dense output's covariance. ``Relu`` has no factor 2 (He
  scaling is ``W_std=√2``).
"""

from __future__ import annotations

import math
import numbers
import operator
import os
from collections import namedtuple
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import _core

__all__ = [
    "ABRelu", "Abs", "Activation", "Cos", "Dense", "Elementwise", "Elu", "Erf", "Exp", "Gaussian",
    "Gelu", "Hermite", "Identity", "Kernel", "LeakyRelu", "Mish", "Monomial", "Network", "Polynomial",
    "Rbf", "RectifiedMonomial", "Relu", "Selu", "Sigmoid", "Sigmoid_like", "Sign", "Silu", "Sin",
    "Softplus", "Tanh", "Trajectory", "mlp", "serial",
]

ArrayLike = Any
GetSpec = str | Sequence[str]

_KERNELS = ("nngp", "ntk")


class Kernel(NamedTuple):
    """Both kernels, as returned by ``net.kernel(..., get=("nngp", "ntk"))``."""

    nngp: np.ndarray
    ntk: np.ndarray


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}") from None


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


class Dense:
    """A fully-connected layer ``x ↦ W_std/√n_in · W x + b_std · b`` with ``W, b ~ N(0, 1)``.

    Args:
        out_dim: the layer's width (≥ 1). Infinite-width kernels in the NTK parameterization do
            not depend on it; the standard parameterization's NTK does, through the next layer.
        W_std: weight standard deviation σ_w ≥ 0.
        b_std: bias standard deviation σ_b ≥ 0, or ``None`` for no bias (same as 0 for the
            kernels, except the standard parameterization's ``+1``).
        parameterization: ``"ntk"`` (default) or ``"standard"``.
    """

    def __init__(self, out_dim: int, W_std: float = 1.0, b_std: float | None = None,
                 parameterization: str = "ntk") -> None:
        self.out_dim = _integer("out_dim", out_dim)
        self.W_std = _real("W_std", W_std)
        self.b_std = None if b_std is None else _real("b_std", b_std)
        if not isinstance(parameterization, str):
            raise TypeError(f"parameterization: expected 'ntk' or 'standard', got {parameterization!r}")
        self.parameterization = parameterization
        self._core = _core.Dense(self.out_dim, self.W_std, self.b_std, parameterization)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle / copy.deepcopy / sklearn.clone rebuild the layer from its arguments.
        return (Dense, (self.out_dim, self.W_std, self.b_std, self.parameterization))

    def __repr__(self) -> str:
        extra = "" if self.parameterization == "ntk" else f", parameterization={self.parameterization!r}"
        return f"Dense({self.out_dim}, W_std={self.W_std}, b_std={self.b_std}{extra})"


class Activation:
    """A pointwise nonlinearity; place it directly after a :class:`Dense`.

    Every activation exposes its kernel maps through :meth:`maps`.
    """

    _kind: str = ""

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
        self._core = _core.Activation(self._kind, list(self._params), **kw)

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
        n, d = self._core.maps(*(np.ascontiguousarray(v).reshape(-1) for v in (a, b, c)))
        return n.reshape(shape), d.reshape(shape)

    def __repr__(self) -> str:
        names = getattr(self, "_param_names", ())
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__name__}({args})"


def _rebuild_activation(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Activation:
    return cls(*args, **kwargs)


def _make(name: str, doc: str, params: Sequence[str] = (), defaults: Sequence[float] | None = None,
          numerical: bool = False) -> type:
    """An activation class ``name`` taking ``params`` (the last ones with ``defaults``) as arguments;
    its core kind is the snake-case name (``LeakyRelu`` → ``leaky_relu``)."""
    defaults = tuple(defaults or ())

    def __init__(self, *args: Any, quad_degree: int | None = None, **kwargs: Any) -> None:
        values = list(args)
        if len(values) > len(params):
            raise TypeError(f"{type(self).__name__} takes at most {len(params)} parameters")
        for p in params[len(values):]:
            if p in kwargs:
                values.append(kwargs.pop(p))
            else:
                i = params.index(p) - (len(params) - len(defaults))
                if i < 0:
                    raise TypeError(f"{type(self).__name__}: missing argument {p!r}")
                values.append(defaults[i])
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected argument(s) {sorted(kwargs)}")
        for p, v in zip(params, values, strict=True):
            _real(p, v)
        if not numerical and quad_degree is not None:
            raise TypeError(f"{type(self).__name__} has a closed-form kernel; quad_degree does not apply")
        Activation.__init__(self, *values, quad_degree=quad_degree)
        for p, v in zip(params, values, strict=True):
            setattr(self, p, v)

    kind = {"ABRelu": "ab_relu", "LeakyRelu": "leaky_relu",
            "RectifiedMonomial": "rectified_monomial"}.get(name, name.lower())
    return type(name, (Activation,), {"__init__": __init__, "__doc__": doc, "_kind": kind,
                                      "_param_names": tuple(params), "__module__": __name__})


Identity = _make("Identity", "``φ(x) = x``.")
Relu = _make("Relu", "``φ(x) = max(x, 0)`` (no factor 2; He scaling is ``W_std=√2``).")
LeakyRelu = _make("LeakyRelu", "``φ(x) = x`` for ``x > 0``, ``alpha·x`` otherwise.", ["alpha"])
ABRelu = _make("ABRelu", "``φ(x) = a·min(x, 0) + b·max(x, 0)``.", ["a", "b"])
Abs = _make("Abs", "``φ(x) = |x|``.")
Erf = _make("Erf", "``φ(x) = a·erf(b·x) + c``.", ["a", "b", "c"], [1.0, 1.0, 0.0])
Sigmoid_like = _make("Sigmoid_like",
                     "neural-tangents' ``Sigmoid_like``: ``Erf(a=0.5, b=1/2.4020563531719796, c=0.5)``.")
Gelu = _make("Gelu", "``φ(x) = x·Φ(x) = x/2·(1 + erf(x/√2))`` (exact GELU).")
Sin = _make("Sin", "``φ(x) = a·sin(b·x + c)``.", ["a", "b", "c"], [1.0, 1.0, 0.0])
Cos = _make("Cos", "``φ(x) = a·cos(b·x + c)``.", ["a", "b", "c"], [1.0, 1.0, 0.0])
Rbf = _make("Rbf", "``φ(x) = √2·sin(√(2γ)·x + π/4)``; its NNGP is ``exp(−γ(q1 + q2 − 2c))``.", ["gamma"], [1.0])
Exp = _make("Exp", "``φ(x) = a·exp(b·x)``.", ["a", "b"], [1.0, 1.0])
Gaussian = _make("Gaussian", "``φ(x) = a·exp(b·x²)``; for ``b > 0`` the expectation must converge "
                 "(``4·b·variance < 1``), else a ValueError.", ["a", "b"], [1.0, -1.0])
Sign = _make("Sign", "``φ(x) = sign(x)``; its derivative is taken as 0 (almost everywhere), so the NTK "
             "after it is 0, as in neural-tangents.")
Monomial = _make("Monomial", "``φ(x) = x**degree``.", ["degree"])
RectifiedMonomial = _make("RectifiedMonomial", "``φ(x) = (x ≥ 0)·x**degree`` (arc-cosine kernels).", ["degree"])
Hermite = _make("Hermite", "``φ(x) = He_n(x)/√(n!)`` (probabilists' Hermite, unit L² norm). The kernel is "
                "exact for any variance; at unit variance it is ``ρ**degree`` as in neural-tangents.", ["degree"])

_NUMERICAL_DOC = (" Integrated numerically by a polar Gauss–Legendre rule of degree ``quad_degree`` "
                  "(default 48); see the README for the accuracy reached.")
Tanh = _make("Tanh", "``φ(x) = tanh(x)``." + _NUMERICAL_DOC, numerical=True)
Sigmoid = _make("Sigmoid", "``φ(x) = 1/(1 + e^{−x})``." + _NUMERICAL_DOC, numerical=True)
Softplus = _make("Softplus", "``φ(x) = log(1 + eˣ)``." + _NUMERICAL_DOC, numerical=True)
Silu = _make("Silu", "``φ(x) = x·sigmoid(x)``." + _NUMERICAL_DOC, numerical=True)
Elu = _make("Elu", "``φ(x) = x`` for ``x > 0``, ``alpha·(eˣ − 1)`` otherwise." + _NUMERICAL_DOC,
            ["alpha"], [1.0], numerical=True)
Selu = _make("Selu", "``φ(x) = λ·Elu(α)`` with λ = 1.0507009873554805, α = 1.6732632423543772." + _NUMERICAL_DOC,
             numerical=True)
Mish = _make("Mish", "``φ(x) = x·tanh(softplus(x))``." + _NUMERICAL_DOC, numerical=True)


class Polynomial(Activation):
    """``φ(x) = coef[0] + coef[1]·x + … + coef[n]·xⁿ`` (numpy's ``Polynomial`` order), degree ≤ 32."""

    _kind = "polynomial"

    def __init__(self, coef: Sequence[float]) -> None:
        c = np.asarray(coef)
        if c.ndim != 1 or c.size == 0 or c.dtype.kind not in "biuf":
            raise TypeError(f"coef: expected a non-empty 1-D sequence of real numbers, got {coef!r}")
        self.coef = tuple(float(v) for v in c)
        super().__init__(*self.coef)

    def _args(self) -> tuple[Any, ...]:
        return (self.coef,)

    _param_names = ("coef",)


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


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


def _parse_get(get: Any, allowed: Sequence[str] = _KERNELS,
               default: tuple[str, ...] | None = None) -> tuple[tuple[str, ...], bool]:
    """``(names, single)`` for a ``get`` argument naming some of ``allowed`` (``None`` means
    ``default`` where there is one)."""
    choices = ", ".join(map(repr, allowed))
    if get is None and default is not None:
        names, single = default, False
    elif isinstance(get, str):
        names, single = (get,), True
    elif isinstance(get, (tuple, list)) and all(isinstance(g, str) for g in get):
        names, single = tuple(get), False
    else:
        raise TypeError(f"get: expected one of {choices} or a tuple of them, got {get!r}")
    if not names:
        raise ValueError(f"get: ask for at least one of {choices}")
    for g in names:
        if g not in allowed:
            raise ValueError(f"get: unknown kernel {g!r}; use one of {choices} or a tuple of them")
    if len(set(names)) != len(names):
        raise ValueError(f"get: {names!r} names a kernel twice")
    return names, single


def _parse_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected np.float32 or np.float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: kernels are computed in float32 or float64, not {dt}; pass dtype=np.float64")
    return dt


def as_matrix(x: ArrayLike, name: str, dtype: np.dtype) -> np.ndarray:
    """Validate an input batch and view it as a 2-D float array of ``dtype`` (no copy when it
    already is one, whatever its strides)."""
    if x is None:
        raise TypeError(f"{name}: expected an array of shape (n_samples, n_features), got None")
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    kind = a.dtype.kind
    if kind == "c":
        raise TypeError(f"{name}: complex inputs are not supported; pass real features "
                        "(for example np.concatenate([x.real, x.imag], axis=1))")
    if kind not in "biuf":
        raise TypeError(f"{name}: expected numbers, got an array of dtype {a.dtype}; "
                        "convert it with np.asarray(x, dtype=float)")
    if a.ndim != 2:
        hint = " (use x.reshape(-1, 1) for one feature or x[None, :] for one sample)" if a.ndim == 1 else ""
        raise ValueError(f"{name}: expected a 2-D array of shape (n_samples, n_features), got shape {a.shape}{hint}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name}: is empty (shape {a.shape}); pass at least one sample with at least one feature")
    if kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinite values; remove or impute them first")
    if dtype == np.float32 and kind == "f" and a.dtype.itemsize > 4:
        big = float(np.max(np.abs(a)))
        if big > float(np.finfo(np.float32).max):
            raise ValueError(f"{name}: values up to {big:.3g} do not fit in float32; use dtype=np.float64")
    return a.astype(dtype, copy=False)


class Network:
    """A fully-connected network: :class:`Dense` layers, each optionally followed by one activation.

    Build it with :func:`serial` or :func:`mlp`.
    """

    def __init__(self, layers: Iterable[Dense | Activation]) -> None:
        self.layers: tuple[Dense | Activation, ...] = tuple(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, (Dense, Activation)):
                raise TypeError(f"layers: item {i} is {type(layer).__name__}, not a Dense or an activation "
                                "(did you forget the parentheses, e.g. nk.Relu()?)")
        self._core = _core.Network([layer._core for layer in self.layers])

    def __repr__(self) -> str:
        return "serial(" + ", ".join(map(repr, self.layers)) + ")"

    def __len__(self) -> int:
        return len(self.layers)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle / copy.deepcopy / sklearn.clone rebuild the network from its layers.
        return (Network, (self.layers,))

    def kernel(self, x1: ArrayLike, x2: ArrayLike | None = None, get: GetSpec = ("nngp", "ntk"), *,
               diagonal: bool = False, dtype: Any = np.float64, progress: bool | Callable[[int, int], Any] = False,
               tile_size: int | None = None, out: Any = None, memory_limit: int | str | None = None,
               threads: int | None = None, stats: dict | None = None) -> Any:
        """Infinite-width kernels between the rows of ``x1`` and ``x2``.

        Args:
            x1: inputs, array-like of shape ``(N1, d)`` (integers are converted; any strides).
            x2: second inputs ``(N2, d)``, or ``None`` for ``x1`` itself (then only the upper
                triangle is computed and mirrored: the result is exactly symmetric).
            get: ``"nngp"``, ``"ntk"`` or a tuple of them.
            diagonal: return only ``k(x_i, x_i)``, shape ``(N1,)``, in ``O(N1·(d + depth))``.
            dtype: ``np.float64`` (default) or ``np.float32`` (single precision throughout: about
                1e-6 relative to the largest entry for ReLU networks; see the README).
            progress: ``True`` for a tqdm progress bar, or a callable ``f(done, total)``.
            tile_size: side of the square tiles (default 256); results do not depend on it.
            out: compute out of core into ``.npy`` files instead of memory. A path (``str`` or
                ``os.PathLike``) or a writable ``np.memmap`` (mode ``"r+"``/``"w+"``) / C-ordered
                array of shape ``(N1, N2)`` and ``dtype``, for one kernel; for two kernels a dict
                ``{"nngp": ..., "ntk": ...}`` or a tuple in the order of ``get``. The kernel is
                computed by row panels within ``memory_limit`` (only the upper triangle when
                ``x2`` is ``None``, mirrored on write) with values identical to the in-memory
                result. A file is written to ``PATH.partial`` and renamed to ``PATH`` only when
                complete; an error or Ctrl-C deletes the partial file.
            memory_limit: bytes the out-of-core computation may allocate (panel buffers and
                scratch; the inputs are not counted), an int or a string such as ``"2GB"``,
                ``"512MiB"`` (default 1 GiB); a ceiling: at most 80% of the memory the OS reports as
                available is planned for. Too small for one panel: ``ValueError``.
            threads: ``None``/0: the shared pool (:func:`set_num_threads`); 1: this call runs on
                the calling thread only; ``n ≥ 2``: a pool of ``n`` threads for this call.
            stats: a dict to receive the out-of-core call's timings (``gram_s``, ``layers_s``,
                ``write_s``, ``mirror_s``, ``wait_s``, ``total_s``, panel sizes, bytes written).

        Returns:
            One array of shape ``(N1, N2)`` when ``get`` is a string, else a namedtuple with one
            field per requested kernel, in the order asked. With ``out``: the written files
            opened with ``np.load(path, mmap_mode="r")`` (or the arrays passed), in the same form.

        Raises:
            ValueError / TypeError: bad inputs or arguments (the message names the argument).
            MemoryError: the result would not fit in memory (raised before any work).
            KeyboardInterrupt: Ctrl-C; the computation stops within a fraction of a second.
        """
        names, single = _parse_get(get)
        dt = _parse_dtype(dtype)
        if not isinstance(diagonal, (bool, np.bool_)):
            raise TypeError(f"diagonal: expected True or False, got {diagonal!r}")
        a, b = self._inputs(x1, x2, dt)
        if diagonal and b is not None:
            raise ValueError("diagonal: diagonal=True needs x2=None (the diagonal of k(x1, x1))")
        ts = 0 if tile_size is None else _integer("tile_size", tile_size)
        if ts < 0:
            raise ValueError(f"tile_size: must be ≥ 1 (or None), got {tile_size}")
        nt = 0 if threads is None else _integer("threads", threads)
        if nt < 0:
            raise ValueError(f"threads: must be ≥ 0 (or None), got {threads}")
        if stats is not None and not isinstance(stats, dict):
            raise TypeError(f"stats: expected a dict to fill or None, got {type(stats).__name__}")
        if out is None:
            if memory_limit is not None:
                raise ValueError("memory_limit: applies to out-of-core calls only; pass out='K.npy' as well")
        else:
            if diagonal:
                raise ValueError("out: diagonal=True returns a vector; compute it in memory (out=None)")
            shape = (a.shape[0], (a if b is None else b).shape[0])
            targets = _out_targets(out, names, shape, dt)
            limit = _DEFAULT_MEMORY_LIMIT if memory_limit is None else parse_memory_limit(memory_limit)
            ordered = [targets[n] for n in _KERNELS if n in names]
            callback, bar = _progress(progress, "ntkrs kernel")
            try:
                got_stats = self._core.kernel_to(a, b, "nngp" in names, "ntk" in names,
                                                 [t for t, _ in ordered], [r for _, r in ordered], limit,
                                                 tile_size=ts, threads=nt, progress=callback)
            finally:
                if bar is not None:
                    bar.close()
            if stats is not None:
                stats.update(got_stats)
            got = {n: (np.load(t, mmap_mode="r") if isinstance(t, str) else t) for n, (t, _) in targets.items()}
            if single:
                return got[names[0]]
            if names == ("nngp", "ntk"):
                return Kernel(got["nngp"], got["ntk"])
            return _kernel_tuple(names)(*(got[n] for n in names))
        callback, bar = _progress(progress, "ntkrs kernel")
        try:
            nngp, ntk = self._core.kernel(a, b, nngp="nngp" in names, ntk="ntk" in names,
                                          diagonal=bool(diagonal), tile_size=ts, progress=callback, threads=nt)
        finally:
            if bar is not None:
                bar.close()
        return _pack(names, single, {"nngp": nngp, "ntk": ntk})


    # ----------------------------------------------------------------------------------------
    # Finite width
    # ----------------------------------------------------------------------------------------

    def init(self, in_dim: int, seed: int = 0, dtype: Any = np.float64) -> Params:
        """Random parameters of the finite network, in neural-tangents' layout and distribution.

        Args:
            in_dim: the input width ``d``.
            seed: a non-negative integer; the same seed gives the same parameters whatever the
                number of threads.
            dtype: ``np.float64`` (default) or ``np.float32`` (the same draws, rounded).

        Returns:
            A list with one ``(W, b)`` per :class:`Dense`: ``W`` of shape ``(n_in, out_dim)``, ``b`` of
            shape ``(out_dim,)`` or ``None`` when the layer has no bias (``b_std=None``). In the NTK
            parameterization ``W, b ~ N(0, 1)`` (scaled in the forward pass); in the standard one
            ``W ~ N(0, W_std²/n_in)``, ``b ~ N(0, b_std²)``, exactly as ``stax.Dense``'s ``init_fn``.
        """
        in_dim = _integer("in_dim", in_dim)
        if in_dim < 1:
            raise ValueError(f"in_dim: the input width must be at least 1, got {in_dim}")
        seed = _seed(seed)
        dt = _parse_dtype(dtype)
        return [tuple(p) for p in self._core.init(in_dim, seed, 0, dt == np.float32)]

    def apply(self, params: Params, x: ArrayLike, *, dtype: Any = None) -> np.ndarray:
        """The finite network's outputs ``f(x)``, shape ``(N, out_dim)``.

        ``z = W_std/√n_in · h W + b_std · b`` in the NTK parameterization, ``z = h W + b`` in the
        standard one (as ``stax.Dense``'s ``apply_fn``), each activation applied pointwise.

        Args:
            params: one ``(W, b)`` per Dense, as :meth:`init` returns (neural-tangents' ``serial``
                layout, with ``()`` for each activation, is accepted too).
            x: inputs of shape ``(N, d)``.
            dtype: the precision of the computation; default: the parameters' (float32 when all of
                them are float32, else float64).
        """
        dt, p = self._check_params(params, dtype)
        return self._core.apply(p, as_matrix(x, "x", dt))

    def empirical_kernel(self, params: Params, x1: ArrayLike, x2: ArrayLike | None = None,
                         get: GetSpec = ("nngp", "ntk"), *, trace_outputs: bool = True, dtype: Any = None,
                         progress: bool | Callable[[int, int], Any] = False) -> Any:
        """Empirical NNGP and NTK of the finite network with parameters ``params``, in one pass.

        Returns one array when ``get`` is a string, else a namedtuple in the order asked; see
        :meth:`empirical_ntk` and :meth:`empirical_nngp` for shapes and conventions.
        """
        names, single = _parse_get(get)
        got = self._empirical(params, x1, x2, names, trace_outputs, False, dtype, progress)
        return _pack(names, single, {"nngp": got[0], "ntk": got[1]})

    def empirical_ntk(self, params: Params, x1: ArrayLike, x2: ArrayLike | None = None, *,
                      trace_outputs: bool = True, per_layer: bool = False, dtype: Any = None,
                      progress: bool | Callable[[int, int], Any] = False) -> Any:
        """The empirical NTK ``Θ(x, x') = Σ_p ∂f(x)/∂θ_p ⊗ ∂f(x')/∂θ_p`` of the finite network.

        Computed exactly by the per-layer structure of an MLP (for each Dense, the Gram of its
        inputs times the Gram of the back-propagated signals), never through the ``N × P``
        Jacobian. At a kink the derivative is neural-tangents' (JAX autodiff): ``Relu'(0) = 1/2``,
        ``Abs'(0) = 0``, ``RectifiedMonomial(1)'(0) = 1``, ``Sign' = 0``.

        Args:
            params: one ``(W, b)`` per Dense (see :meth:`init`).
            x1: inputs ``(N1, d)``; x2: ``(N2, d)`` or ``None`` for ``x1`` (exactly symmetric result).
            trace_outputs: ``True`` (default): the mean over the output units,
                ``Θ[i, j] = (1/O) Σ_o Θ[i, j, o, o]``, shape ``(N1, N2)`` (neural-tangents'
                ``trace_axes=(-1,)``); ``False``: shape ``(N1, N2, O, O)``.
            per_layer: also return the term of each Dense layer (its weights and bias):
                ``(ntk, [Θ_1, …, Θ_L])`` with ``ntk == sum`` of the terms.
            dtype: precision; default: the parameters'.
            progress: ``True`` for a tqdm bar, or a callable ``f(done, total)``.
        """
        if not isinstance(per_layer, (bool, np.bool_)):
            raise TypeError(f"per_layer: expected True or False, got {per_layer!r}")
        _, ntk, layers = self._empirical(params, x1, x2, ("ntk",), trace_outputs, bool(per_layer), dtype, progress)
        return (ntk, layers) if per_layer else ntk

    def empirical_nngp(self, params: Params, x1: ArrayLike, x2: ArrayLike | None = None, *,
                       trace_outputs: bool = True, dtype: Any = None) -> np.ndarray:
        """The empirical NNGP ``f(x1)·f(x2)/O`` (like neural-tangents' ``empirical_nngp_fn`` with
        ``trace_axes=(-1,)``), shape ``(N1, N2)``; with ``trace_outputs=False`` the outer product
        ``f_o(x1)·f_o'(x2)`` of shape ``(N1, N2, O, O)``."""
        nngp, _, _ = self._empirical(params, x1, x2, ("nngp",), trace_outputs, False, dtype, False)
        return nngp

    def monte_carlo_kernel(self, x1: ArrayLike, x2: ArrayLike | None = None, n_samples: int = 64, seed: int = 0,
                           get: GetSpec = ("nngp", "ntk"), *, dtype: Any = np.float64,
                           progress: bool | Callable[[int, int], Any] = False) -> Any:
        """Monte Carlo estimate of the kernels: the mean of the traced empirical NNGP and NTK over
        ``n_samples`` independent initialisations of the finite network (the widths given to its
        Dense layers), like neural-tangents' ``monte_carlo_kernel_fn``. It converges to
        :meth:`kernel` as the widths and ``n_samples`` grow. Sample ``k`` uses independent draws;
        sample 0 is ``init(d, seed)``. Deterministic for a seed, whatever the number of threads.

        Returns one ``(N1, N2)`` array when ``get`` is a string, else a namedtuple.
        """
        names, single = _parse_get(get)
        n = _integer("n_samples", n_samples)
        if n < 1:
            raise ValueError(f"n_samples: must be at least 1, got {n_samples}")
        seed = _seed(seed)
        dt = _parse_dtype(dtype)
        a, b = self._inputs(x1, x2, dt)
        callback, bar = _progress(progress, "ntkrs monte carlo")
        try:
            nngp, ntk = self._core.monte_carlo(a, b, n, seed, nngp="nngp" in names, ntk="ntk" in names,
                                               progress=callback)
        finally:
            if bar is not None:
                bar.close()
        return _pack(names, single, {"nngp": nngp, "ntk": ntk})

    def train(self, params: Params, x: ArrayLike, y: ArrayLike, learning_rate: float = 1.0, steps: int = 100, *,
              record_every: int | None = None, x_test: ArrayLike | None = None, y_test: ArrayLike | None = None,
              record_ntk: bool = False, dtype: Any = None,
              progress: bool | Callable[[int, int], Any] = False) -> Trajectory:
        """Train the finite network by full-batch gradient descent on the squared loss.

        The loss is ``1/(2·y.size)·‖f(x) − y‖²`` and each step is ``θ ← θ − learning_rate·∇θ loss``,
        neural-tangents' conventions, so ``ntkrs.predict.gradient_descent_mse(K, y, learning_rate)``
        at time ``t = step`` is the infinite-width (linearised, continuous-time) prediction of the same
        run. Gradients are exact (back-propagation in Rust); the GIL is released, Ctrl-C stops it.

        Args:
            params: the starting parameters (see :meth:`init`); they are not modified.
            x: training inputs ``(N, d)``; y: targets ``(N, O)`` (or ``(N,)`` when ``O = 1``).
            learning_rate: step size ``η > 0``; steps: number of steps ``≥ 0``.
            record_every: record every this many steps (default: about 100 records), and always the
                first and the last step.
            x_test, y_test: optional test inputs ``(M, d)`` and targets ``(M, O)``.
            record_ntk: also record the traced empirical NTK of ``x`` at the recorded steps.
            dtype: precision; default: the parameters'.
            progress: ``True`` for a tqdm bar, or a callable ``f(done, total)``.

        Returns:
            A :class:`Trajectory`: ``steps (R,)``, ``f_train (R, N, O)``, ``f_test (R, M, O)``,
            ``loss_train (R,)``, ``loss_test (R,)``, ``ntk_train (R, N, N)`` (each ``None`` when not
            asked for) and the final ``params``.

        Raises:
            ValueError: bad shapes or arguments, or a loss that stops being finite (the learning
                rate is too large; see ``ntkrs.predict.max_learning_rate``).
        """
        lr = _real("learning_rate", learning_rate)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning_rate: must be a finite number > 0, got {learning_rate}")
        steps = _integer("steps", steps)
        if steps < 0:
            raise ValueError(f"steps: must be ≥ 0, got {steps}")
        every = max(1, steps // 100) if record_every is None else _integer("record_every", record_every)
        if every < 1:
            raise ValueError(f"record_every: must be ≥ 1, got {record_every}")
        if not isinstance(record_ntk, (bool, np.bool_)):
            raise TypeError(f"record_ntk: expected True or False, got {record_ntk!r}")
        dt, p = self._check_params(params, dtype)
        xa = as_matrix(x, "x", dt)
        o = self._out_dim()
        ya = _targets(y, "y", xa.shape[0], o, dt)
        xt = yt = None
        if x_test is not None:
            xt = as_matrix(x_test, "x_test", dt)
            if xt.shape[1] != xa.shape[1]:
                raise ValueError(f"x_test: has {xt.shape[1]} features but x has {xa.shape[1]}")
        if y_test is not None:
            if xt is None:
                raise ValueError("y_test: needs x_test")
            yt = _targets(y_test, "y_test", xt.shape[0], o, dt)
        callback, bar = _progress(progress, "ntkrs train")
        try:
            out = self._core.train(p, xa, ya, xt, yt, learning_rate=lr, steps=steps, record_every=every,
                                   record_ntk=bool(record_ntk), progress=callback)
        finally:
            if bar is not None:
                bar.close()
        return Trajectory(steps=out["steps"], f_train=out["f_train"], f_test=out.get("f_test"),
                          loss_train=out["loss_train"], loss_test=out.get("loss_test"),
                          ntk_train=out.get("ntk_train"), params=[tuple(q) for q in out["params"]],
                          learning_rate=lr)

    def _out_dim(self) -> int:
        return [layer for layer in self.layers if isinstance(layer, Dense)][-1].out_dim

    # helpers

    def _inputs(self, x1: ArrayLike, x2: ArrayLike | None, dt: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
        a = as_matrix(x1, "x1", dt)
        b = None
        if x2 is not None:
            b = as_matrix(x2, "x2", dt)
            if b.shape[1] != a.shape[1]:
                raise ValueError(f"x2: has {b.shape[1]} features but x1 has {a.shape[1]}; "
                                 "both need the same number of columns")
        return a, b

    def _empirical(self, params: Params, x1: ArrayLike, x2: ArrayLike | None, names: tuple[str, ...],
                   trace_outputs: bool, per_layer: bool, dtype: Any, progress: Any) -> tuple[Any, Any, list]:
        if not isinstance(trace_outputs, (bool, np.bool_)):
            raise TypeError(f"trace_outputs: expected True or False, got {trace_outputs!r}")
        dt, p = self._check_params(params, dtype)
        a, b = self._inputs(x1, x2, dt)
        callback, bar = _progress(progress, "ntkrs empirical")
        try:
            return self._core.empirical(p, a, b, nngp="nngp" in names, ntk="ntk" in names,
                                        trace=bool(trace_outputs), per_layer=per_layer, progress=callback)
        finally:
            if bar is not None:
                bar.close()

    def _dense_count(self) -> int:
        return sum(isinstance(layer, Dense) for layer in self.layers)

    def _pairs(self, params: Params) -> list[tuple[Any, Any]]:
        """The ``(W, b)`` pairs of ``params`` (accepting neural-tangents' ``serial`` layout)."""
        if isinstance(params, (np.ndarray, str, bytes)) or not isinstance(params, Sequence):
            raise TypeError(f"params: expected a list of (W, b) pairs as net.init returns, got {type(params).__name__}")
        items = list(params)
        if len(items) == len(self.layers) and len(items) != self._dense_count():
            # neural-tangents' serial layout: one entry per layer, () for the activations
            keep = []
            for i, (layer, item) in enumerate(zip(self.layers, items, strict=True)):
                if isinstance(layer, Dense):
                    keep.append(item)
                elif item not in ((), [], None):
                    raise ValueError(f"params: entry {i} belongs to {layer!r}, which has no parameters; "
                                     "expected ()")
            items = keep
        if len(items) != self._dense_count():
            raise ValueError(f"params: the network has {self._dense_count()} Dense layer(s) but {len(items)} "
                             "(W, b) pair(s) were given; pass the list net.init returns")
        pairs = []
        for i, item in enumerate(items):
            if not (isinstance(item, Sequence) and len(item) == 2) or isinstance(item, (str, bytes)):
                raise TypeError(f"params: entry {i} must be a pair (W, b), got {type(item).__name__}")
            pairs.append((item[0], item[1]))
        return pairs

    def _check_params(self, params: Params, dtype: Any) -> tuple[np.dtype, list[tuple[np.ndarray, np.ndarray | None]]]:
        """``(dt, pairs)``: the computation's dtype (``dtype``, or float32 when every parameter is a
        float32 array, else float64) and the validated ``(W, b)`` arrays in it."""
        pairs = self._pairs(params)
        if dtype is not None:
            dt = _parse_dtype(dtype)
        else:
            arrays = [a for pair in pairs for a in pair if a is not None]
            f32 = all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays)
            dt = np.dtype(np.float32) if f32 else np.dtype(np.float64)
        out = []
        for l, (w, b) in enumerate(pairs):
            w = _param_array(w, f"W of Dense layer {l}", dt)
            if w.ndim != 2:
                raise ValueError(f"params: W of Dense layer {l} must be 2-D (in, out), got shape {w.shape}")
            if b is not None:
                b = _param_array(b, f"b of Dense layer {l}", dt)
                if b.ndim == 2 and b.shape[0] == 1:
                    b = b[0]  # neural-tangents' (1, out) bias
                if b.ndim != 1:
                    raise ValueError(f"params: b of Dense layer {l} must have shape (out,), got {b.shape}")
                b = np.ascontiguousarray(b)
            out.append((w, b))
        return dt, out


def _targets(y: ArrayLike, name: str, n: int, o: int, dt: np.dtype) -> np.ndarray:
    """Targets as an ``(n, o)`` array (a 1-D ``(n,)`` is accepted when ``o = 1``)."""
    a = np.asarray(y)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {a.dtype}")
    if a.ndim == 1 and o == 1:
        a = a[:, None]
    if a.shape != (n, o):
        raise ValueError(f"{name}: expected shape ({n}, {o}) (one row per input, one column per output unit), "
                         f"got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return np.ascontiguousarray(a, dtype=dt)


@dataclass(frozen=True)
class Trajectory:
    """A gradient-descent run of :meth:`Network.train`, recorded at ``steps``.

    ``f_train[r]`` are the network's outputs on the training inputs after ``steps[r]`` steps
    (shape ``(R, N, O)``), likewise ``f_test``; ``loss_*[r] = ‖f − y‖²/(2·y.size)``; ``ntk_train``
    the traced empirical NTK ``(R, N, N)``; ``params`` the final parameters; ``t`` the recorded
    steps as times for ``ntkrs.predict`` (``predict(t=traj.t)`` with the same learning rate).
    """

    steps: np.ndarray
    f_train: np.ndarray
    f_test: np.ndarray | None
    loss_train: np.ndarray
    loss_test: np.ndarray | None
    ntk_train: np.ndarray | None
    params: list
    learning_rate: float

    @property
    def t(self) -> np.ndarray:
        """The recorded steps as float times."""
        return self.steps.astype(np.float64)


def _param_array(a: Any, what: str, dt: np.dtype) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"params: {what} must be a real array, got dtype {arr.dtype}")
    return arr.astype(dt, copy=False)


def _seed(seed: Any) -> int:
    s = _integer("seed", seed)
    if not 0 <= s < 2**64:
        raise ValueError(f"seed: must be an integer in [0, 2**64), got {seed}")
    return s


def _pack(names: tuple[str, ...], single: bool, got: dict[str, Any]) -> Any:
    if single:
        return got[names[0]]
    if names == ("nngp", "ntk"):
        return Kernel(got["nngp"], got["ntk"])
    return _kernel_tuple(names)(*(got[n] for n in names))


Params = Sequence[Any]


_TUPLES: dict[tuple[str, ...], type] = {}

_DEFAULT_MEMORY_LIMIT = 1 << 30


def parse_memory_limit(value: int | str) -> int:
    """Bytes from an int or a string such as ``"2GB"`` (powers of 1000), ``"512MiB"`` (powers of
    1024) or ``"1000"``; ``ValueError``/``TypeError`` otherwise."""
    if isinstance(value, bool):
        raise TypeError("memory_limit: expected a number of bytes or a string such as '2GB', got bool")
    if isinstance(value, numbers.Integral):
        if value <= 0:
            raise ValueError(f"memory_limit: must be a positive number of bytes, got {value}")
        return int(value)
    if isinstance(value, str):
        return _core.parse_bytes(value)
    raise TypeError(f"memory_limit: expected a number of bytes or a string such as '2GB', got {value!r}")


def _out_targets(out: Any, names: tuple[str, ...], shape: tuple[int, int],
                 dt: np.dtype) -> dict[str, tuple[Any, bool]]:
    """``{kernel name: (path str or array, release pages)}`` for an ``out`` argument."""
    if isinstance(out, dict):
        if set(out) != set(names):
            raise ValueError(f"out: a dict needs exactly the keys {list(names)} of get, got {sorted(map(str, out))}")
        items = {n: out[n] for n in names}
    elif isinstance(out, (tuple, list)):
        if len(out) != len(names):
            raise ValueError(f"out: {len(out)} targets for {len(names)} kernel(s) {list(names)}")
        items = dict(zip(names, out, strict=True))
    elif len(names) == 1:
        items = {names[0]: out}
    else:
        raise ValueError(f"out: get={names!r} computes two kernels; pass one target each, as "
                         "out={'nngp': 'nngp.npy', 'ntk': 'ntk.npy'} or a tuple in the order of get")
    targets: dict[str, tuple[Any, bool]] = {}
    for n, t in items.items():
        if isinstance(t, (str, os.PathLike)):
            path = os.fspath(t)
            if not isinstance(path, str):
                raise TypeError(f"out: expected a str path, got bytes {path!r}")
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise FileNotFoundError(f"out: the directory {parent!r} does not exist")
            targets[n] = (path, False)
        elif isinstance(t, np.ndarray):
            mode = getattr(t, "mode", None) if isinstance(t, np.memmap) else None
            if mode == "r" or not t.flags.writeable:
                raise ValueError("out: the array is read-only; open the memmap with mode='r+' or 'w+'")
            if t.shape != shape or t.dtype != dt or not t.flags.c_contiguous:
                raise ValueError(f"out: the array must be C-contiguous {dt} of shape {shape}, got "
                                 f"{'C-contiguous' if t.flags.c_contiguous else 'non-contiguous'} {t.dtype} "
                                 f"of shape {t.shape}")
            # pages of a shared file mapping can be handed back to the OS once written
            targets[n] = (t, mode in ("r+", "w+"))
        else:
            raise TypeError(f"out: expected a path, an np.memmap or a dict/tuple of them, got {type(t).__name__}")
    paths = [t for t, _ in targets.values() if isinstance(t, str)]
    if len({os.path.abspath(p) for p in paths}) != len(paths):
        raise ValueError("out: the two kernels need two different files")
    return targets


def _kernel_tuple(names: tuple[str, ...]) -> type:
    if names not in _TUPLES:
        _TUPLES[names] = namedtuple("Kernel", names)  # type: ignore[misc]
    return _TUPLES[names]


def _progress(progress: Any, desc: str) -> tuple[Callable[[int, int], None] | None, Any]:
    """A ``(callback, bar)`` pair for the Rust core's progress reports."""
    if progress is False or progress is None:
        return None, None
    if callable(progress):
        return progress, None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=0, desc=desc, unit="block")

        def update(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.n = done
            bar.refresh()

        return update, bar
    raise TypeError(f"progress: expected True, False or a callable f(done, total), got {progress!r}")


def serial(*layers: Dense | Activation | Network) -> Network:
    """Chain layers (and networks) into one :class:`Network`, like ``stax.serial``."""
    flat: list[Dense | Activation] = []
    for layer in layers:
        if isinstance(layer, Network):
            flat.extend(layer.layers)
        else:
            flat.append(layer)
    return Network(flat)


_BY_NAME: dict[str, Callable[[], Activation]] = {
    "identity": Identity, "linear": Identity, "relu": Relu, "abs": Abs, "erf": Erf, "gelu": Gelu,
    "sin": Sin, "cos": Cos, "rbf": Rbf, "exp": Exp, "gaussian": Gaussian, "sign": Sign,
    "sigmoid_like": Sigmoid_like, "tanh": Tanh, "sigmoid": Sigmoid, "softplus": Softplus,
    "silu": Silu, "swish": Silu, "elu": Elu, "selu": Selu, "mish": Mish,
}


def mlp(depth: int, width: int, activation: str | Activation = "relu", W_std: float = 1.0,
        b_std: float | None = None, out_dim: int = 1, parameterization: str = "ntk") -> Network:
    """``serial(Dense(width), φ, …depth times…, Dense(out_dim))`` with the same ``W_std``, ``b_std``.

    ``activation`` is a name (``"relu"``, ``"erf"``, ``"gelu"``, ``"tanh"``, …) or an activation object.
    """
    depth = _integer("depth", depth)
    if depth < 0:
        raise ValueError(f"depth: must be ≥ 0 hidden layers, got {depth}")
    width = _integer("width", width)
    if width < 1:
        raise ValueError(f"width: the hidden layers need at least 1 unit, got {width}")
    out_dim = _integer("out_dim", out_dim)
    if out_dim < 1:
        raise ValueError(f"out_dim: the output layer needs at least 1 unit, got {out_dim}")
    if isinstance(activation, str):
        key = activation.lower()
        if key not in _BY_NAME:
            raise ValueError(f"activation: unknown name {activation!r}; use one of {sorted(_BY_NAME)} "
                             "or pass an activation object such as nk.LeakyRelu(0.1)")
        make = _BY_NAME[key]
    elif isinstance(activation, Activation):
        def make(a: Activation = activation) -> Activation:
            return a
    else:
        raise TypeError(f"activation: expected a name or an activation object, got {activation!r}")
    layers: list[Dense | Activation] = []
    for _ in range(depth):
        layers += [Dense(width, W_std, b_std, parameterization), make()]
    layers.append(Dense(out_dim, W_std, b_std, parameterization))
    return Network(layers)
