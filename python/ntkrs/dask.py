"""Kernels as ``dask.array`` collections: blocks computed by the Rust core, on any dask scheduler.

>>> import ntkrs as nk, ntkrs.dask
>>> K = ntkrs.dask.kernel(net, X, get="ntk", chunks=4096, dtype=np.float32)   # lazy (N, N)
>>> K.to_zarr("K.zarr") or da.to_npy_stack("K/", K) or K[:100].compute()

Each block ``K[i, j]`` is one task calling ``net.kernel(X_i, X_j)``. When ``Y`` is ``None`` the kernel
is symmetric: only the blocks on and above the diagonal are computed (the diagonal ones with the
symmetric path, exactly symmetric), and each block below is the transpose of the task above it, so
no entry is computed twice and the result is exactly symmetric.

Threads: a task runs on ``threads_per_task`` cores (default 1: on the dask worker's own thread,
without touching ntkrs's shared thread pool). Dask then supplies the parallelism, one task per
worker thread, so ``n_workers × threads_per_worker`` cores are busy and none is oversubscribed. With
``threads_per_task=n ≥ 2`` each task builds a pool of ``n`` threads for its own call (size the
cluster so that ``threads_per_worker × n`` matches the cores); ``threads_per_task=0`` uses the
process's shared pool (:func:`ntkrs.set_num_threads`), which concurrent tasks of one process share.
Worker processes (``dask.distributed``, ``processes=True``) receive the network pickled; the shared
pool is fork-safe (a forked child builds its own).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .network import Network, _parse_dtype, _parse_get, as_matrix

__all__ = ["kernel"]


def _block(net: Network, xi: np.ndarray, xj: np.ndarray | None, names: tuple[str, ...], dtype: np.dtype,
           threads: int) -> tuple[np.ndarray, ...]:
    """One block of every requested kernel (``xj=None``: the symmetric block ``k(xi, xi)``)."""
    k = net.kernel(xi, xj, get=names, dtype=dtype, threads=threads)
    return tuple(k)


def _take(pair: tuple[np.ndarray, ...], k: int, transpose: bool) -> np.ndarray:
    a = pair[k]
    return np.ascontiguousarray(a.T) if transpose else a


def _as_rows(x: Any, name: str, chunks: int | None, dtype: np.dtype) -> Any:
    """A dask array of shape (n, d) with row chunks and one column chunk."""
    import dask.array as da

    if isinstance(x, da.Array):
        if x.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D array of shape (n_samples, n_features), got shape {x.shape}")
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected numbers, got a dask array of dtype {x.dtype}")
        x = x.astype(dtype)
        return x.rechunk({0: chunks if chunks is not None else x.chunks[0], 1: -1})
    a = as_matrix(x, name, dtype)
    return da.from_array(a, chunks=(chunks or 2048, -1))


def kernel(net: Network, X: Any, Y: Any = None, get: str | tuple[str, ...] = "ntk", chunks: int | None = None,
           threads_per_task: int = 1, dtype: Any = np.float64) -> Any:
    """The kernel(s) between the rows of ``X`` and ``Y`` (``X`` when ``None``) as dask arrays.

    Args:
        net: an :class:`ntkrs.Network`.
        X: array of shape ``(N, d)``: numpy (chunked here) or ``dask.array`` (its row chunks are
            kept unless ``chunks`` is given; its columns are merged into one chunk).
        Y: second inputs ``(M, d)`` or ``None``.
        get: ``"nngp"``, ``"ntk"`` or a tuple of them (then a tuple of arrays is returned).
        chunks: rows per block (default 2048 for numpy inputs). A block of float32 is
            ``4·chunks²`` bytes: 16 MB at 2048.
        threads_per_task: cores one task uses (see the module docstring); 1 by default.
        dtype: ``np.float64`` (default) or ``np.float32``.

    Returns:
        A ``dask.array.Array`` of shape ``(N, M)`` (``(N, N)`` when ``Y`` is ``None``), or a tuple of
        them in the order of ``get``.
    """
    import dask
    import dask.array as da

    if not isinstance(net, Network):
        raise TypeError(f"net: expected an ntkrs Network, got {type(net).__name__}")
    names, single = _parse_get(get)
    dt = _parse_dtype(dtype)
    if chunks is not None:
        if isinstance(chunks, bool) or not isinstance(chunks, numbers.Integral) or chunks < 1:
            raise ValueError(f"chunks: expected a positive number of rows per block, got {chunks!r}")
        chunks = int(chunks)
    if isinstance(threads_per_task, bool) or not isinstance(threads_per_task, numbers.Integral) or threads_per_task < 0:
        raise ValueError(f"threads_per_task: expected an integer ≥ 0, got {threads_per_task!r}")
    xd = _as_rows(X, "X", chunks, dt)
    sym = Y is None
    yd = xd if sym else _as_rows(Y, "Y", chunks or xd.chunks[0][0], dt)
    if yd.shape[1] != xd.shape[1]:
        raise ValueError(f"Y: has {yd.shape[1]} features but X has {xd.shape[1]}; both need the same number of columns")
    xb = xd.to_delayed().ravel()
    yb = xb if sym else yd.to_delayed().ravel()
    rows, cols = xd.chunks[0], yd.chunks[0]
    dnet = dask.delayed(net, pure=True)
    block = dask.delayed(_block, pure=True)
    take = dask.delayed(_take, pure=True)
    nt = int(threads_per_task)
    pairs: dict[tuple[int, int], Any] = {}
    for i in range(len(rows)):
        for j in range(i if sym else 0, len(cols)):
            other = None if (sym and i == j) else yb[j]
            pairs[i, j] = block(dnet, xb[i], other, names, dt, nt)
    out = []
    for k in range(len(names)):
        grid = []
        for i, r in enumerate(rows):
            line = []
            for j, c in enumerate(cols):
                if sym and j < i:
                    d = take(pairs[j, i], k, True)
                else:
                    d = take(pairs[i, j], k, False)
                line.append(da.from_delayed(d, shape=(r, c), dtype=dt))
            grid.append(line)
        out.append(da.block(grid))
    return out[0] if single else tuple(out)
