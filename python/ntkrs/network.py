"""Networks: the infinite-width kernels, the finite networks and their empirical kernels.

A :class:`Network` is built with :func:`serial` (neural-tangents' ``stax.serial``), :func:`mlp` or
:func:`resnet` from the layers of :mod:`ntkrs.layers`; :meth:`Network.kernel` computes the
infinite-width NNGP and NTK Gram matrices, and the same object is a finite network of the widths
given to its ``Dense`` layers (:meth:`Network.init`, :meth:`Network.apply`,
:meth:`Network.empirical_ntk`, :meth:`Network.monte_carlo_kernel`, :meth:`Network.train`).

Conventions (exactly as ``neural_tangents.stax``):

* inputs ``x`` of shape ``(N, d)``; the input covariance is ``x·x'/d`` and the input NTK is 0;
* ``Dense(width, W_std, b_std, parameterization="ntk")``: ``nngp' = W_std²·nngp + b_std²`` and
  ``ntk' = nngp' + W_std²·ntk``; ``parameterization="standard"``: ``ntk' = n_in·nngp + W_std²·ntk``
  (``+1`` with a bias), where ``n_in`` is the layer's input width;
* an activation ``φ`` maps ``nngp ↦ E[φ(u)φ(v)]`` and ``ntk ↦ ntk·E[φ'(u)φ'(v)]`` for the Gaussian
  pair ``(u, v)`` with its input's covariance. ``Relu`` has no factor 2 (He scaling is
  ``W_std=√2``);
* branches (``FanOut``, ``parallel``, ``FanInSum``/``FanInProd``/``FanInConcat``), ``LayerNorm`` and
  ``Dropout`` as in :mod:`ntkrs.layers`.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import _core
from . import layers as layers_mod
from .layers import (
    Activation,
    Dense,
    FanInSum,
    FanOut,
    Identity,
    Layer,
    LayerNorm,
    _integer,
    _layer_list,
    _real,
    activation_from_name,
    parallel,
)
from .out_of_core import DEFAULT_MEMORY_LIMIT, out_targets, parse_memory_limit

__all__ = ["Kernel", "Network", "Params", "Trajectory", "as_matrix", "map_layers", "mlp", "resnet", "serial"]

ArrayLike = Any
GetSpec = str | Sequence[str]
Params = Sequence[Any]

_KERNELS = ("nngp", "ntk")


class Kernel(NamedTuple):
    """Both kernels, as returned by ``net.kernel(..., get=("nngp", "ntk"))``."""

    nngp: np.ndarray
    ntk: np.ndarray


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


def as_batch(x: ArrayLike, name: str, dtype: np.dtype) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """Validate an input batch: ``(matrix, shape)`` with ``matrix`` 2-D ``(N, D)`` of ``dtype``.

    ``(N, d)`` vectors come back as they are with ``shape = None``; ``(N, L, C)`` sequences,
    ``(N, H, W, C)`` images (NHWC, as neural-tangents) and ``(N, D, H, W, C)`` volumes come back
    with each example flattened in C order and ``shape`` the per-example shape ``x.shape[1:]``.
    """
    a = x if isinstance(x, np.ndarray) else (None if x is None else np.asarray(x))
    if a is not None and a.ndim >= 3:
        if a.ndim > 5:
            raise ValueError(f"{name}: expected (N, d) vectors, (N, L, C) sequences, (N, H, W, C) images or "
                             f"(N, D, H, W, C) volumes, got shape {a.shape} (at most 3 spatial axes)")
        if 0 in a.shape:
            raise ValueError(f"{name}: is empty (shape {a.shape}); pass at least one example")
        shape = tuple(int(v) for v in a.shape[1:])
        return as_matrix(a.reshape(a.shape[0], -1), name, dtype), shape
    return as_matrix(x, name, dtype), None


def _shape_text(shape: tuple[int, ...] | None, d: int) -> str:
    return f"({d},)" if shape is None else str(shape)


class Network(Layer):
    """A network: layers applied one after the other (``stax.serial``), with branches. Build it
    with :func:`serial`, :func:`mlp` or :func:`resnet`; a network is itself a layer, so networks
    nest (a residual block's branch is a ``serial(...)``).

    What is wrong with a network in every context (two activations in a row, ...) raises a
    ``ValueError`` when it is built; what depends on its input (an activation first, which is fine
    inside a residual branch but not on raw inputs) when it is used.
    """

    def __init__(self, layers: Iterable[Layer]) -> None:
        self.layers: tuple[Layer, ...] = _layer_list(tuple(layers), "layers")
        if not self.layers:
            raise ValueError("layers: a network needs at least one layer")
        self._core = _core.Layer.serial([layer._core for layer in self.layers])
        self._core.check()
        self._compiled: Any = None
        self.input_shape: tuple[int, ...] | None = None

    def with_input_shape(self, input_shape: Sequence[int] | None) -> Network:
        """This network, taking flat rows: examples of shape ``input_shape`` (``(H, W, C)``
        images, ``(L, C)`` sequences, NHWC as neural-tangents), each flattened in C order
        (``x.reshape(N, -1)``).

        For the tools that handle 2-D ``(n_samples, n_features)`` arrays only (scikit-learn
        estimators, :mod:`ntkrs.dask`, :mod:`ntkrs.predict`, the CLI): they pass flat rows, and
        the network reshapes them at its boundary. Image arrays ``(N, *input_shape)`` are accepted
        too. ``None``: no shape (the default; the input's own shape is used).

        Example: ``serial(Conv(8, (3, 3), padding="SAME"), Relu(), Flatten(), Dense(1))
        .with_input_shape((28, 28, 1))`` takes rows of 784 pixels.
        """
        if input_shape is not None:
            try:
                shape = tuple(int(v) for v in input_shape)
            except TypeError:
                raise TypeError(f"input_shape: expected a tuple of ints such as (28, 28, 1), "
                                f"got {input_shape!r}") from None
            if not 2 <= len(shape) <= 4 or min(shape) < 1:
                raise ValueError(f"input_shape: expected the shape of one example, (L, C), (H, W, C) or (D, H, W, C) "
                                 f"with positive sizes, got {shape}")
            input_shape = shape
        out = Network(self.layers)
        out.input_shape = input_shape
        return out

    @property
    def _net(self) -> Any:
        """The compiled network (validated on raw inputs on first use)."""
        if self._compiled is None:
            self._compiled = _core.Network(self._core)
        return self._compiled

    def _children(self) -> tuple[Layer, ...]:
        return self.layers

    def __repr__(self) -> str:
        base = "serial(" + ", ".join(map(repr, self.layers)) + ")"
        return base if self.input_shape is None else f"{base}.with_input_shape({self.input_shape})"

    def __len__(self) -> int:
        return len(self.layers)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle / copy.deepcopy / sklearn.clone rebuild the network from its layers.
        if self.input_shape is not None:
            return (_with_input_shape, (self.layers, self.input_shape))
        return (Network, (self.layers,))

    def kernel(self, x1: ArrayLike, x2: ArrayLike | None = None, get: GetSpec = ("nngp", "ntk"), *,
               diagonal: bool = False, dtype: Any = np.float64, progress: bool | Callable[[int, int], Any] = False,
               tile_size: int | None = None, out: Any = None, memory_limit: int | str | None = None,
               threads: int | None = None, stats: dict | None = None) -> Any:
        """Infinite-width kernels between the examples of ``x1`` and ``x2``.

        Args:
            x1: inputs, array-like of shape ``(N1, d)`` (integers are converted; any strides), or
                for convolutional networks ``(N1, H, W, C)`` images / ``(N1, L, C)`` sequences
                (NHWC, neural-tangents' layout).
            x2: second inputs ``(N2, d)`` (or ``(N2, H, W, C)``, the same per-example shape as
                ``x1``), or ``None`` for ``x1`` itself (then only the upper triangle is computed
                and mirrored: the result is exactly symmetric).
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
                result. A file is written to a fresh temporary file next to it
                (``PATH.ntkrs-XXXXXXXX.partial``, 8 random hex digits, never an existing file), synced (``fsync``) and
                renamed to ``PATH`` only when complete; an error or Ctrl-C deletes it. Two files
                appear both or neither. A path that is one of the inputs' files, or an array
                sharing memory with an input, is refused (``ValueError``).
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
        a, b, shape = self._batches(x1, x2, dt)
        if diagonal and b is not None:
            raise ValueError("diagonal: diagonal=True needs x2=None (the diagonal of k(x1, x1))")
        ts = 0 if tile_size is None else _integer("tile_size", tile_size)
        if ts < 0:
            raise ValueError(f"tile_size: must be ≥ 1 (or None), got {tile_size}")
        nt = _threads(threads)
        if stats is not None and not isinstance(stats, dict):
            raise TypeError(f"stats: expected a dict to fill or None, got {type(stats).__name__}")
        if out is None:
            if memory_limit is not None:
                raise ValueError("memory_limit: applies to out-of-core calls only; pass out='K.npy' as well")
        else:
            if diagonal:
                raise ValueError("out: diagonal=True returns a vector; compute it in memory (out=None)")
            example_shape = shape
            shape = (a.shape[0], (a if b is None else b).shape[0])
            targets = out_targets(out, names, shape, dt, {"x1": x1, "x2": x2})
            limit = DEFAULT_MEMORY_LIMIT if memory_limit is None else parse_memory_limit(memory_limit)
            if example_shape is not None:
                got = _spatial_out(self, a, b, example_shape, names, targets, limit, dt, ts, nt, progress, stats)
                if single:
                    return got[names[0]]
                if names == ("nngp", "ntk"):
                    return Kernel(got["nngp"], got["ntk"])
                return _kernel_tuple(names)(*(got[n] for n in names))
            ordered = [targets[n] for n in _KERNELS if n in names]
            callback, bar = _progress(progress, "ntkrs kernel")
            try:
                got_stats = self._net.kernel_to(a, b, "nngp" in names, "ntk" in names,
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
            nngp, ntk = self._net.kernel(a, b, nngp="nngp" in names, ntk="ntk" in names,
                                          diagonal=bool(diagonal), tile_size=ts, progress=callback, threads=nt,
                                          shape=None if shape is None else list(shape))
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
            in_dim: the input width ``d``, or the per-example shape of image inputs, ``(H, W, C)`` or
                ``(L, C)`` (default for an int: the network's :attr:`input_shape`, if set).
            seed: a non-negative integer; the same seed gives the same parameters whatever the
                number of threads.
            dtype: ``np.float64`` (default) or ``np.float32`` (the same draws, rounded).

        Returns:
            A list with one ``(W, b)`` per :class:`Dense` or :class:`Conv`, in network order (depth
            first through branches): ``W`` of shape ``(n_in, out_dim)`` (a Conv's filter
            ``(*filter_shape, in, out_chan)``, HWIO as stax; its fan-in ``n_in`` is
            ``prod(filter_shape)·in``), ``b`` of shape ``(out_dim,)`` or ``None``
            when the layer has no bias (``b_std=None``). In the NTK
            parameterization ``W, b ~ N(0, 1)`` (scaled in the forward pass); in the standard one
            ``W ~ N(0, W_std²/n_in)``, ``b ~ N(0, b_std²)``, exactly as ``stax.Dense``'s ``init_fn``.
        """
        shape: tuple[int, ...] | None = None
        if isinstance(in_dim, (tuple, list)):
            try:
                shape = tuple(_integer("in_dim", v) for v in in_dim)
            except TypeError:
                raise TypeError(f"in_dim: expected an int or a per-example shape such as (28, 28, 1), "
                                f"got {in_dim!r}") from None
            if not shape or any(v < 1 for v in shape):
                raise ValueError(f"in_dim: the per-example shape needs positive sizes, got {in_dim!r}")
            in_dim = math.prod(shape)
        elif self.input_shape is not None and not isinstance(in_dim, (tuple, list)):
            shape = self.input_shape
        in_dim = _integer("in_dim", in_dim)
        if in_dim < 1:
            raise ValueError(f"in_dim: the input width must be at least 1, got {in_dim}")
        if shape is not None and math.prod(shape) != in_dim:
            raise ValueError(f"in_dim: {in_dim} features but the network's input_shape {shape} has {math.prod(shape)}")
        self._finite_image_check("init", shape)
        seed = _seed(seed)
        dt = _parse_dtype(dtype)
        raw = self._net.init(in_dim, seed, 0, dt == np.float32, shape=self._core_shape(shape))
        out = []
        for layer, (w, b) in zip(self._param_layers(), raw, strict=True):
            if isinstance(layer, layers_mod.Conv):
                w = w.reshape(*layer.filter_shape, -1, w.shape[-1])
            out.append((w, b))
        return out

    def apply(self, params: Params, x: ArrayLike, *, dtype: Any = None, dropout_seed: int = 0,
              threads: int | None = None) -> np.ndarray:
        """The finite network's outputs ``f(x)``, shape ``(N, out_dim)``.

        ``z = W_std/√n_in · h W + b_std · b`` in the NTK parameterization, ``z = h W + b`` in the
        standard one (as ``stax.Dense``'s ``apply_fn``), each activation applied pointwise.

        Args:
            params: one ``(W, b)`` per Dense, as :meth:`init` returns (neural-tangents' nested
                ``serial``/``parallel`` layout, with ``()`` for each parameterless layer, is accepted
                too).
            x: inputs of shape ``(N, d)``, or images ``(N, H, W, C)`` / ``(N, L, C)`` (NHWC).
            dtype: the precision of the computation; default: the parameters' (float32 when all of
                them are float32, else float64).
            dropout_seed: the seed of the masks of ``Dropout(mode="train")`` layers (deterministic
                per seed and sample).
            threads: as for :meth:`kernel`.
        """
        dt, p = self._check_params(params, dtype)
        a, shape = self._batch(x, "x", dt)
        self._finite_image_check("apply", shape)
        return self._net.apply(p, a, _seed(dropout_seed, "dropout_seed"), _threads(threads),
                               shape=self._core_shape(shape))

    def empirical_kernel(self, params: Params, x1: ArrayLike, x2: ArrayLike | None = None,
                         get: GetSpec = ("nngp", "ntk"), *, trace_outputs: bool = True, dtype: Any = None,
                         progress: bool | Callable[[int, int], Any] = False, dropout_seed: int = 0,
                         threads: int | None = None) -> Any:
        """Empirical NNGP and NTK of the finite network with parameters ``params``, in one pass.

        Returns one array when ``get`` is a string, else a namedtuple in the order asked; see
        :meth:`empirical_ntk` and :meth:`empirical_nngp` for shapes and conventions.
        """
        names, single = _parse_get(get)
        got = self._empirical(params, x1, x2, names, trace_outputs, False, dtype, progress, dropout_seed, threads)
        return _pack(names, single, {"nngp": got[0], "ntk": got[1]})

    def empirical_ntk(self, params: Params, x1: ArrayLike, x2: ArrayLike | None = None, *,
                      trace_outputs: bool = True, per_layer: bool = False, dtype: Any = None,
                      progress: bool | Callable[[int, int], Any] = False, dropout_seed: int = 0,
                      threads: int | None = None) -> Any:
        """The empirical NTK ``Θ(x, x') = Σ_p ∂f(x)/∂θ_p ⊗ ∂f(x')/∂θ_p`` of the finite network.

        Computed exactly from the network's structure (for each Dense, the Gram of its inputs times
        the Gram of the signals back-propagated to its output through activations, LayerNorm,
        dropout and branches), never through the ``N × P`` Jacobian. At a kink the derivative is
        neural-tangents' (JAX autodiff): ``Relu'(0) = 1/2``, ``Abs'(0) = 0``,
        ``RectifiedMonomial(1)'(0) = 1``, ``Sign' = 0``.

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
            dropout_seed: seed of the dropout masks (``x1``'s samples use batch 0's masks, ``x2``'s
                batch 1's; with ``x2=None`` a sample meets its own mask, as in the analytic kernel).
            threads: as for :meth:`kernel`.
        """
        if not isinstance(per_layer, (bool, np.bool_)):
            raise TypeError(f"per_layer: expected True or False, got {per_layer!r}")
        _, ntk, layers = self._empirical(params, x1, x2, ("ntk",), trace_outputs, bool(per_layer), dtype, progress,
                                         dropout_seed, threads)
        return (ntk, layers) if per_layer else ntk

    def empirical_nngp(self, params: Params, x1: ArrayLike, x2: ArrayLike | None = None, *,
                       trace_outputs: bool = True, dtype: Any = None, dropout_seed: int = 0,
                       threads: int | None = None) -> np.ndarray:
        """The empirical NNGP ``f(x1)·f(x2)/O`` (like neural-tangents' ``empirical_nngp_fn`` with
        ``trace_axes=(-1,)``), shape ``(N1, N2)``; with ``trace_outputs=False`` the outer product
        ``f_o(x1)·f_o'(x2)`` of shape ``(N1, N2, O, O)``."""
        nngp, _, _ = self._empirical(params, x1, x2, ("nngp",), trace_outputs, False, dtype, False, dropout_seed,
                                     threads)
        return nngp

    def monte_carlo_kernel(self, x1: ArrayLike, x2: ArrayLike | None = None, n_samples: int = 64, seed: int = 0,
                           get: GetSpec = ("nngp", "ntk"), *, dtype: Any = np.float64,
                           progress: bool | Callable[[int, int], Any] = False, threads: int | None = None) -> Any:
        """Monte Carlo estimate of the kernels: the mean of the traced empirical NNGP and NTK over
        ``n_samples`` independent initialisations of the finite network (the widths given to its
        Dense layers), like neural-tangents' ``monte_carlo_kernel_fn``. It converges to
        :meth:`kernel` as the widths and ``n_samples`` grow. Sample ``k`` uses independent draws;
        sample 0 is ``init(d, seed)``; dropout masks are drawn per sample. Deterministic for a
        seed, whatever the number of threads (``threads`` as for :meth:`kernel`: the samples are
        spread over the threads).

        Returns one ``(N1, N2)`` array when ``get`` is a string, else a namedtuple.
        """
        names, single = _parse_get(get)
        n = _integer("n_samples", n_samples)
        if n < 1:
            raise ValueError(f"n_samples: must be at least 1, got {n_samples}")
        seed = _seed(seed)
        dt = _parse_dtype(dtype)
        a, b, shape = self._batches(x1, x2, dt)
        self._finite_image_check("monte_carlo_kernel", shape)
        callback, bar = _progress(progress, "ntkrs monte carlo")
        try:
            nngp, ntk = self._net.monte_carlo(a, b, n, seed, nngp="nngp" in names, ntk="ntk" in names,
                                              progress=callback, threads=_threads(threads),
                                              shape=self._core_shape(shape))
        finally:
            if bar is not None:
                bar.close()
        return _pack(names, single, {"nngp": nngp, "ntk": ntk})

    def train(self, params: Params, x: ArrayLike, y: ArrayLike, learning_rate: float = 1.0, steps: int = 100, *,
              record_every: int | None = None, record_at: ArrayLike | None = None,
              x_test: ArrayLike | None = None, y_test: ArrayLike | None = None,
              record_ntk: bool = False, dtype: Any = None,
              progress: bool | Callable[[int, int], Any] = False, dropout_seed: int = 0,
              threads: int | None = None) -> Trajectory:
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
            record_at: record at exactly these steps instead (strictly increasing integers in
                ``[0, steps]``, e.g. log-spaced times); not together with ``record_every``.
            x_test, y_test: optional test inputs ``(M, d)`` and targets ``(M, O)``.
            record_ntk: also record the traced empirical NTK of ``x`` at the recorded steps.
            dtype: precision; default: the parameters'.
            progress: ``True`` for a tqdm bar, or a callable ``f(done, total)``.
            dropout_seed: seed of the dropout masks (fresh masks at every step).
            threads: as for :meth:`kernel`.

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
        at = None
        if record_at is not None:
            if record_every is not None:
                raise ValueError("record_at: give either record_at or record_every, not both")
            arr = np.asarray(record_at)
            if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"record_at: expected a non-empty 1-D sequence of integer steps, got {record_at!r}")
            if np.any(arr < 0) or np.any(arr > steps) or np.any(np.diff(arr) <= 0):
                raise ValueError(f"record_at: steps must be strictly increasing within [0, steps={steps}], "
                                 f"got {arr.tolist()}")
            at = [int(v) for v in arr]
        if not isinstance(record_ntk, (bool, np.bool_)):
            raise TypeError(f"record_ntk: expected True or False, got {record_ntk!r}")
        self._finite_spatial_check("train")
        dt, p = self._check_params(params, dtype)
        xa = as_matrix(x, "x", dt)
        o = self._net.out_dim(xa.shape[1])
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
            out = self._net.train(p, xa, ya, xt, yt, learning_rate=lr, steps=steps, record_every=every,
                                  record_ntk=bool(record_ntk), progress=callback,
                                  dropout_seed=_seed(dropout_seed, "dropout_seed"), threads=_threads(threads),
                                  record_at=at)
        finally:
            if bar is not None:
                bar.close()
        return Trajectory(steps=out["steps"], f_train=out["f_train"], f_test=out.get("f_test"),
                          loss_train=out["loss_train"], loss_test=out.get("loss_test"),
                          ntk_train=out.get("ntk_train"), params=[tuple(q) for q in out["params"]],
                          learning_rate=lr)

    # helpers

    def _inputs(self, x1: ArrayLike, x2: ArrayLike | None, dt: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
        a, b, _ = self._batches(x1, x2, dt)
        return a, b

    def _batch(self, x: ArrayLike, name: str, dt: np.dtype) -> tuple[np.ndarray, tuple[int, ...] | None]:
        """One batch as a matrix and its example shape, reshaped by :attr:`input_shape` if set."""
        a, shape = as_batch(x, name, dt)
        want = self.input_shape
        if want is None:
            return a, shape
        if shape is None:
            if a.shape[1] != math.prod(want):
                raise ValueError(f"{name}: has {a.shape[1]} features per row, but the network's input_shape {want} "
                                 f"needs {math.prod(want)} (one example flattened in C order)")
            return a, want
        if shape != want:
            raise ValueError(f"{name}: has examples of shape {shape}, but the network's input_shape is {want}")
        return a, shape

    def _batches(self, x1: ArrayLike, x2: ArrayLike | None,
                 dt: np.dtype) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...] | None]:
        """``(x1, x2, shape)``: both batches as matrices and the per-example shape (``None`` for
        vectors); ``x2``'s examples must have ``x1``'s shape."""
        a, shape = self._batch(x1, "x1", dt)
        b = None
        if x2 is not None:
            b, shape2 = self._batch(x2, "x2", dt)
            if shape2 != shape or b.shape[1] != a.shape[1]:
                if shape is None and shape2 is None:
                    raise ValueError(f"x2: has {b.shape[1]} features but x1 has {a.shape[1]}; "
                                     "both need the same number of columns")
                extra = ""
                if shape is not None and shape2 is not None and len(shape) == len(shape2) and shape[-1] == shape2[-1]:
                    extra = (" (neural-tangents accepts different spatial sizes when the network ends with "
                             "GlobalAvgPool; ntkrs does not: crop or pad them to one size)")
                raise ValueError(f"x2: has examples of shape {_shape_text(shape2, b.shape[1])} but x1 has "
                                 f"{_shape_text(shape, a.shape[1])}; both need the same shape{extra}")
        return a, b, shape

    def _empirical(self, params: Params, x1: ArrayLike, x2: ArrayLike | None, names: tuple[str, ...],
                   trace_outputs: bool, per_layer: bool, dtype: Any, progress: Any, dropout_seed: int,
                   threads: int | None) -> tuple[Any, Any, list]:
        if not isinstance(trace_outputs, (bool, np.bool_)):
            raise TypeError(f"trace_outputs: expected True or False, got {trace_outputs!r}")
        dt, p = self._check_params(params, dtype)
        a, b, shape = self._batches(x1, x2, dt)
        self._finite_image_check("empirical kernels", shape)
        callback, bar = _progress(progress, "ntkrs empirical")
        try:
            return self._net.empirical(p, a, b, nngp="nngp" in names, ntk="ntk" in names,
                                       trace=bool(trace_outputs), per_layer=per_layer, progress=callback,
                                       dropout_seed=_seed(dropout_seed, "dropout_seed"), threads=_threads(threads),
                                       shape=self._core_shape(shape))
        finally:
            if bar is not None:
                bar.close()

    def _finite_spatial_check(self, method: str) -> None:
        """Raise ``NotImplementedError`` naming the first convolution or pooling layer: finite-width
        networks with them (``init``/``apply``/empirical kernels/``monte_carlo_kernel``/``train``)
        are not implemented yet; the analytic kernels (:meth:`kernel`) are."""
        spatial = (layers_mod.Conv, layers_mod._Pool, layers_mod.GlobalAvgPool, layers_mod.GlobalSumPool)

        def find(layer: Layer, path: str) -> str | None:
            for i, child in enumerate(layer._children()):
                here = f"{path} > layer {i}" if path else f"layer {i}"
                if isinstance(child, spatial):
                    return f"{here} ({type(child).__name__})"
                got = find(child, here)
                if got is not None:
                    return got
            return None

        where = find(self, "")
        if where is not None:
            raise NotImplementedError(
                f"{method}: finite-width networks with convolutions or pooling are not implemented yet "
                f"({where}); the infinite-width kernels of this network are: use net.kernel(...)")

    def leaves(self) -> list[Layer]:
        """Every plain layer (not a ``serial``/``parallel``), in network order (depth first)."""
        out: list[Layer] = []

        def walk(layer: Layer) -> None:
            children = layer._children()
            if not children:
                out.append(layer)
            for child in children:
                walk(child)

        walk(self)
        return out

    def _denses(self) -> list[Dense]:
        """The Dense layers, in network order (depth first)."""
        return [layer for layer in self.leaves() if isinstance(layer, Dense)]

    def _param_layers(self) -> list[Layer]:
        """The layers with parameters (Dense and Conv), in network order (depth first)."""
        return [layer for layer in self.leaves() if isinstance(layer, (Dense, layers_mod.Conv))]

    @staticmethod
    def _core_shape(shape: tuple[int, ...] | None) -> list[int] | None:
        """The per-example shape for the core: ``None`` for vectors."""
        return None if shape is None or len(shape) < 2 else list(shape)

    def _finite_image_check(self, method: str, shape: tuple[int, ...] | None) -> None:
        """``NotImplementedError`` for what finite-width networks do not support on images yet:
        LayerNorm and FanInConcat on spatial values (the analytic kernels support them)."""
        if shape is None or len(shape) < 2:
            return
        for layer in self.leaves():
            if isinstance(layer, (LayerNorm, layers_mod.FanInConcat)):
                raise NotImplementedError(
                    f"{method}: finite-width networks on images with {type(layer).__name__} are not implemented "
                    "yet; the infinite-width kernels of this network are: use net.kernel(...)")

    def _pairs(self, params: Params) -> list[tuple[Any, Any]]:
        """The ``(W, b)`` pairs of ``params``: one per Dense in network order, or neural-tangents'
        nested layout (one entry per layer of every ``serial``/``parallel``, ``()`` for layers
        without parameters)."""
        if isinstance(params, (np.ndarray, str, bytes)) or not isinstance(params, Sequence):
            raise TypeError(f"params: expected a list of (W, b) pairs as net.init returns, got {type(params).__name__}")
        n_dense = len(self._param_layers())
        items = list(params)
        flat = all(_is_pair(item) for item in items)
        if not flat and len(items) == len(self.layers) and len(items) != n_dense:
            items = _flatten_params(self, items, "params")
        if len(items) != n_dense:
            raise ValueError(f"params: the network has {n_dense} Dense layer(s) (Conv layers included) but "
                             f"{len(items)} (W, b) pair(s) were given; pass the list net.init returns")
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
        layers = self._param_layers()
        for l, (w, b) in enumerate(pairs):
            w = _param_array(w, f"W of Dense layer {l}", dt)
            layer = layers[l]
            if isinstance(layer, layers_mod.Conv):
                want = len(layer.filter_shape) + 2
                if w.ndim != want or tuple(w.shape[:-2]) != tuple(layer.filter_shape):
                    raise ValueError(f"params: W of Conv layer {l} must have shape (*filter_shape, in, out) = "
                                     f"({', '.join(map(str, layer.filter_shape))}, in, out) (HWIO, as stax), "
                                     f"got {w.shape}")
                w = np.ascontiguousarray(w.reshape(-1, w.shape[-1]))
            elif w.ndim != 2:
                raise ValueError(f"params: W of Dense layer {l} must be 2-D (in, out), got shape {w.shape}")
            if b is not None:
                b = _param_array(b, f"b of Dense layer {l}", dt)
                if b.ndim >= 2 and all(v == 1 for v in b.shape[:-1]):
                    b = b.reshape(-1)  # neural-tangents' (1, out) / (1, 1, 1, out) bias
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


def _seed(seed: Any, name: str = "seed") -> int:
    s = _integer(name, seed)
    if not 0 <= s < 2**64:
        raise ValueError(f"{name}: must be an integer in [0, 2**64), got {seed}")
    return s


def _threads(threads: Any) -> int:
    """The core's ``threads`` (0: the shared pool, 1: the calling thread, n: a pool of n)."""
    n = 0 if threads is None else _integer("threads", threads)
    if n < 0:
        raise ValueError(f"threads: must be ≥ 0 (or None), got {threads}")
    return n


def _is_pair(item: Any) -> bool:
    """Whether ``item`` looks like one Dense layer's ``(W, b)`` (rather than a nested entry)."""
    if not (isinstance(item, Sequence) and not isinstance(item, (str, bytes)) and len(item) == 2):
        return False
    try:
        return np.ndim(item[0]) >= 2
    except ValueError:  # a ragged nested entry
        return False


def _flatten_params(layer: Layer, p: Any, where: str) -> list[Any]:
    """neural-tangents' nested parameters of ``layer`` as a flat list of ``(W, b)`` pairs."""
    if isinstance(layer, (Dense, layers_mod.Conv)):
        return [p]
    children = layer._children()
    if not children:
        if p not in ((), [], None):
            raise ValueError(f"{where}: belongs to {layer!r}, which has no parameters; expected ()")
        return []
    if isinstance(p, (np.ndarray, str, bytes)) or not isinstance(p, Sequence) or len(p) != len(children):
        n = len(p) if isinstance(p, Sequence) else "not a sequence"
        raise ValueError(f"{where}: expected one entry per layer of {type(layer).__name__} ({len(children)}), "
                         f"got {n}; pass the list net.init returns or neural-tangents' nested layout")
    out: list[Any] = []
    for k, (child, q) in enumerate(zip(children, p, strict=True)):
        out.extend(_flatten_params(child, q, f"{where}[{k}]"))
    return out


def _pack(names: tuple[str, ...], single: bool, got: dict[str, Any]) -> Any:
    if single:
        return got[names[0]]
    if names == ("nngp", "ntk"):
        return Kernel(got["nngp"], got["ntk"])
    return _kernel_tuple(names)(*(got[n] for n in names))


Params = Sequence[Any]


_TUPLES: dict[tuple[str, ...], type] = {}


def _kernel_tuple(names: tuple[str, ...]) -> type:
    if names not in _TUPLES:
        _TUPLES[names] = namedtuple("Kernel", names)  # type: ignore[misc]
    return _TUPLES[names]


def _spatial_out(net: Network, a: np.ndarray, b: np.ndarray | None, example_shape: tuple[int, ...],
                 names: tuple[str, ...], targets: dict[str, tuple[Any, bool]], limit: int, dt: np.dtype,
                 ts: int, nt: int | None, progress: Any, stats: dict | None) -> dict[str, Any]:
    """``out=`` for examples with spatial axes (convolutional networks): row panels of at most
    ``limit`` bytes of results, each computed in memory and written to the targets. With ``x2``
    ``None`` only the blocks on and above the diagonal are computed (the diagonal blocks by the
    symmetric call, so the diagonal is bitwise the in-memory one) and mirrored on write: the
    result is exactly symmetric. ``.npy`` paths are written to ``PATH.partial`` and renamed when
    complete; an error or Ctrl-C deletes the partial files."""
    import os
    import time

    n1 = a.shape[0]
    n2 = n1 if b is None else b.shape[0]
    row_bytes = n2 * dt.itemsize * len(names)
    rows = limit // row_bytes
    if rows < 1:
        raise ValueError(f"memory_limit: {limit} bytes cannot hold one row of the result ({row_bytes} bytes for "
                         f"{len(names)} kernel(s) of {n2} columns); raise memory_limit")
    rows = min(rows, n1)
    panels = [(r0, min(r0 + rows, n1)) for r0 in range(0, n1, rows)]
    arrays: dict[str, np.ndarray] = {}
    partial: list[str] = []
    t0 = time.perf_counter()
    callback, bar = _progress(progress, "ntkrs kernel")
    try:
        for n, (t, _) in targets.items():
            if isinstance(t, str):
                tmp = t + ".partial"
                partial.append(tmp)
                arrays[n] = np.lib.format.open_memmap(tmp, mode="w+", dtype=dt, shape=(n1, n2))
            else:
                arrays[n] = t
        get = names if len(names) > 1 else names[0]
        xs = a.reshape((n1, *example_shape))
        ys = None if b is None else b.reshape((n2, *example_shape))
        for k, (r0, r1) in enumerate(panels):
            if b is None:
                blocks = [((r0, r1), net.kernel(xs[r0:r1], None, get, dtype=dt, tile_size=ts or None, threads=nt))]
                if r1 < n1:
                    blocks.append(((r1, n1), net.kernel(xs[r0:r1], xs[r1:], get, dtype=dt, tile_size=ts or None,
                                                          threads=nt)))
            else:
                blocks = [((0, n2), net.kernel(xs[r0:r1], ys, get, dtype=dt, tile_size=ts or None, threads=nt))]
            for (c0, c1), got in blocks:
                for n in names:
                    block = got if len(names) == 1 else getattr(got, n)
                    arrays[n][r0:r1, c0:c1] = block
                    if b is None and c0 != r0:
                        arrays[n][c0:c1, r0:r1] = block.T
            if callback is not None:
                callback(k + 1, len(panels))
        for n, (t, _) in targets.items():
            if isinstance(t, str):
                arrays[n].flush()
                del arrays[n]
                os.replace(t + ".partial", t)
                partial.remove(t + ".partial")
    finally:
        if bar is not None:
            bar.close()
        arrays.clear()
        for tmp in partial:
            try:
                os.remove(tmp)
            except OSError:
                pass
    if stats is not None:
        stats.update({"total_s": time.perf_counter() - t0, "panel_rows": rows, "panels": len(panels)})
    return {n: (np.load(t, mmap_mode="r") if isinstance(t, str) else t) for n, (t, _) in targets.items()}


def _with_input_shape(layers: tuple[Layer, ...], input_shape: tuple[int, ...]) -> Network:
    return Network(layers).with_input_shape(input_shape)


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




def map_layers(net: Network, fn: Callable[[Layer], Layer]) -> Network:
    """``net`` with every plain layer (not a ``serial``/``parallel``) replaced by ``fn(layer)``,
    the nesting kept."""
    from .layers import Parallel

    def walk(layer: Layer) -> Layer:
        if isinstance(layer, Network):
            return Network([walk(c) for c in layer.layers])
        if isinstance(layer, Parallel):
            return Parallel(*(walk(c) for c in layer.layers))
        return fn(layer)

    out = walk(net)
    if net.input_shape is not None:
        out = out.with_input_shape(net.input_shape)  # type: ignore[union-attr]
    return out  # type: ignore[return-value]


def serial(*layers: Layer) -> Network:
    """Chain layers (and networks) into one :class:`Network`, like ``stax.serial``."""
    return Network(layers)


def _activation(activation: str | Activation) -> Callable[[], Activation]:
    """A factory of fresh activations from a name (``"relu"``, ``"leaky_relu(0.1)"``) or an object."""
    if isinstance(activation, str):
        try:
            activation_from_name(activation)
        except ValueError as e:
            raise ValueError(f"{e}; or pass an activation object such as nk.LeakyRelu(0.1)") from None
        return lambda: activation_from_name(activation)
    if isinstance(activation, Activation) and not isinstance(activation, Identity):
        return lambda: activation
    if isinstance(activation, Identity):
        return Identity
    raise TypeError(f"activation: expected a name or an activation object, got {activation!r}")


def _shape_args(depth: Any, width: Any, out_dim: Any, what: str) -> tuple[int, int, int]:
    depth = _integer("depth", depth)
    if depth < 0:
        raise ValueError(f"depth: must be ≥ 0 {what}, got {depth}")
    width = _integer("width", width)
    if width < 1:
        raise ValueError(f"width: the hidden layers need at least 1 unit, got {width}")
    out_dim = _integer("out_dim", out_dim)
    if out_dim < 1:
        raise ValueError(f"out_dim: the output layer needs at least 1 unit, got {out_dim}")
    return depth, width, out_dim


def mlp(depth: int, width: int, activation: str | Activation = "relu", W_std: float = 1.0,
        b_std: float | None = None, out_dim: int = 1, parameterization: str = "ntk") -> Network:
    """``serial(Dense(width), φ, …depth times…, Dense(out_dim))`` with the same ``W_std``, ``b_std``.

    ``activation`` is a name (``"relu"``, ``"erf"``, ``"gelu"``, ``"tanh"``, ``"leaky_relu(0.1)"``, …:
    the keys of :data:`ntkrs.layers.REGISTRY`, with parameters in parentheses) or an activation object.
    """
    depth, width, out_dim = _shape_args(depth, width, out_dim, "hidden layers")
    make = _activation(activation)
    layers: list[Layer] = []
    for _ in range(depth):
        layers += [Dense(width, W_std, b_std, parameterization), make()]
    layers.append(Dense(out_dim, W_std, b_std, parameterization))
    return Network(layers)


def resnet(depth: int, width: int, activation: str | Activation = "relu", W_std: float = 1.0,
           b_std: float | None = None, out_dim: int = 1, layer_norm: str | None = None,
           parameterization: str = "ntk") -> Network:
    """A residual MLP, the shorthand of :func:`mlp` for residual networks::

        serial(Dense(width),                                                   # embedding
               *depth × serial(FanOut(2), parallel(branch, Identity()), FanInSum()[, LayerNorm()]),
               [LayerNorm(),]                                                  # layer_norm="pre"
               Dense(out_dim))
        branch = serial([LayerNorm(),] Dense(width), φ, Dense(width))         # LayerNorm: "pre"

    Args:
        depth: number of residual blocks (≥ 0).
        width: the width of every hidden ``Dense``.
        activation: as for :func:`mlp`.
        W_std, b_std, parameterization: of every ``Dense``.
        out_dim: the readout's width.
        layer_norm: ``None`` (no normalisation), ``"pre"`` (a ``LayerNorm()`` at the start of every
            branch and before the readout, as in pre-LN transformers) or ``"post"`` (after every
            sum).

    The same network is ``resnet:ACT:DEPTH,layer_norm=...`` in the command line's ``--net``.
    """
    depth, width, out_dim = _shape_args(depth, width, out_dim, "residual blocks")
    if layer_norm not in (None, "pre", "post"):
        raise ValueError(f"layer_norm: expected None, 'pre' or 'post', got {layer_norm!r}")
    make = _activation(activation)

    def dense(n: int) -> Dense:
        return Dense(n, W_std, b_std, parameterization)

    layers: list[Layer] = [dense(width)]
    for _ in range(depth):
        branch = ([LayerNorm()] if layer_norm == "pre" else []) + [dense(width), make(), dense(width)]
        block: list[Layer] = [FanOut(2), parallel(Network(branch), Identity()), FanInSum()]
        if layer_norm == "post":
            block.append(LayerNorm())
        layers.append(Network(block))
    if layer_norm == "pre":
        layers.append(LayerNorm())
    layers.append(dense(out_dim))
    return Network(layers)
