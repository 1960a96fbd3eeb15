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

:func:`kernel_regression` is :func:`ntkrs.predict.kernel_regression`'s Nyström solver with its
kernel blocks on the cluster: each row block of ``K(X, centres)`` is a task whose result stays in
the memory of the worker that computed it (``dask.persist``), and every conjugate-gradient
iteration sends the current ``(M, O)`` vector to the workers and gathers one ``(M, O)`` partial
product per block. The preconditioner (two ``M × M`` Cholesky factors) and the iteration itself run
in the calling process.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _solvers
from .network import Network, _parse_dtype, _parse_get, as_matrix

__all__ = ["kernel", "kernel_regression"]


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


# --------------------------------------------------------------------------------------------
# Kernel regression with kernel-block products as tasks
# --------------------------------------------------------------------------------------------


def _nystrom_block(net: Network, xb: np.ndarray, xc: np.ndarray, get: str, dtype: np.dtype,
                   threads: int) -> np.ndarray:
    return net.kernel(xb, xc, get=get, dtype=dtype, threads=threads)


def _block_rhs(block: np.ndarray, yb: np.ndarray) -> np.ndarray:
    return block.T @ yb.astype(block.dtype)


def _block_products(block: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = block @ v.astype(block.dtype)
    return (block.T @ u).astype(np.float64), u.astype(np.float64)


def _predict_block(net: Network, xb: np.ndarray, xc: np.ndarray, get: str, coef: np.ndarray,
                   threads: int) -> np.ndarray:
    return net.kernel(xb, xc, get=get, dtype=np.float64, threads=threads) @ coef


class _DaskBlocks:
    """The block source of :func:`ntkrs._solvers.solve_nystrom` on a dask scheduler: row blocks of
    ``K(x, x_c)`` persisted where they were computed; products as one task per block."""

    recomputed = 0

    def __init__(self, net: Network, x: np.ndarray, xc: np.ndarray, get: str, dtype: np.dtype, rows: int,
                 threads: int, progress: _solvers.Progress) -> None:
        import dask

        self.dask = dask
        self.bounds = [(r0, min(x.shape[0], r0 + rows)) for r0 in range(0, x.shape[0], rows)]
        self.progress = progress
        dnet = dask.delayed(net, pure=True)
        dxc = dask.delayed(xc, pure=True)
        block = dask.delayed(_nystrom_block, pure=True)
        self.blocks = dask.persist(*[block(dnet, x[r0:r1], dxc, get, dtype, threads) for r0, r1 in self.bounds])

    def _run(self, fn: Callable[..., Any], arg: Any) -> list[Any]:
        d = self.dask.delayed(arg, pure=True)
        task = self.dask.delayed(fn, pure=True)
        return list(self.dask.compute(*[task(b, d) for b in self.blocks]))

    def first_pass(self, y: np.ndarray) -> np.ndarray:
        task = self.dask.delayed(_block_rhs, pure=True)
        parts = self.dask.compute(*[task(b, y[r0:r1]) for b, (r0, r1) in zip(self.blocks, self.bounds, strict=True)])
        self.progress.step(len(self.bounds), note="kernel blocks")
        return np.sum([p.astype(np.float64) for p in parts], axis=0)

    def products(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = self._run(_block_products, np.ascontiguousarray(v))
        return np.sum([p[0] for p in parts], axis=0), np.concatenate([p[1] for p in parts])


def kernel_regression(net: Network, x_train: Any, y_train: Any, x_test: Any, get: str = "ntk",
                      diag_reg: float = 1e-4, diag_reg_absolute_scale: bool = False, n_centers: int | None = None,
                      dtype: Any = None, chunks: int | None = None, seed: int = 0, tol: float = 1e-6,
                      max_iter: int = 100, threads_per_task: int = 1,
                      progress: bool | Callable[[int, int], Any] = False) -> Any:
    """:func:`ntkrs.predict.kernel_regression` with ``solver="nystrom"``, its kernel blocks computed and
    kept on a dask cluster (the current scheduler: a ``distributed.Client`` if one is active, else
    dask's default) and its block products run as tasks.

    With the same ``n_centers``, ``seed``, ``dtype``, ``diag_reg`` and ``tol`` the predictions equal
    the single-machine ones up to the order of floating-point sums (the centres, the preconditioner
    and the iteration are the same code; only the block products are distributed).

    Args:
        net, x_train, y_train, x_test, get, diag_reg, diag_reg_absolute_scale, n_centers, dtype, seed,
        tol, max_iter, progress: as in :func:`ntkrs.predict.kernel_regression` (``get`` ``"nngp"``,
            ``"ntk"`` or ``"ntkgp"``; ``n_centers=None``: ``min(N, 15,000)``; ``dtype=None``: float32
            blocks). Variances are not offered here.
        chunks: training rows per block (default: blocks of about 128 MB, ``2²⁷ / (M · itemsize)``
            rows); each block lives on one worker, so the workers together hold ``N · M`` entries.
        threads_per_task: cores one block task uses (see the module docstring).

    Returns:
        :class:`ntkrs.predict.KernelRegression` ``(mean, None, "nystrom", info)``.
    """
    import dask

    from . import predict as _predict

    x, y = _predict._training_inputs(net, x_train, y_train)
    if not isinstance(get, str) or get not in _predict._REGRESSION_GET:
        raise ValueError(f"get: expected one of {', '.join(map(repr, _predict._REGRESSION_GET))}, got {get!r}")
    opts = _predict._options(x.shape[0], "nystrom", diag_reg, diag_reg_absolute_scale, n_centers, dtype, seed, tol,
                             max_iter, solvers=("nystrom",))
    xt = _predict._test_inputs(x_test, x)
    if chunks is not None and (isinstance(chunks, bool) or not isinstance(chunks, numbers.Integral) or chunks < 1):
        raise ValueError(f"chunks: expected a positive number of rows per block, got {chunks!r}")
    if isinstance(threads_per_task, bool) or not isinstance(threads_per_task, numbers.Integral) or threads_per_task < 0:
        raise ValueError(f"threads_per_task: expected an integer ≥ 0, got {threads_per_task!r}")
    base = "nngp" if get == "nngp" else "ntk"
    n = x.shape[0]
    m = opts.n_centers if opts.n_centers is not None else min(n, _solvers.DEFAULT_CENTERS)
    dt = np.dtype(np.float32) if opts.dtype is None else opts.dtype
    rows = int(chunks) if chunks is not None else max(_solvers.MIN_ROWS, _solvers.BLOCK_BYTES // (m * dt.itemsize))
    y2 = y.reshape(n, -1)
    start = time.perf_counter()
    bar = _solvers.Progress(progress, "ntkrs.dask.kernel_regression")
    try:
        eps = _solvers.ridge(net, x, base, opts.reg, opts.absolute)
        idx = _solvers.centres_of(n, m, opts.seed)
        xd = x.astype(dt, copy=False)
        xc = np.ascontiguousarray(xd[idx])
        bar.add(2 + -(-n // rows))
        nt = int(threads_per_task)
        kmm = dask.delayed(_nystrom_block, pure=True)(net, x[idx].astype(np.float64), None, base, np.dtype(np.float64),
                                                      nt).compute()
        bar.step(note="K(centres, centres)")
        blocks = _DaskBlocks(net, xd, xc, base, dt, rows, nt, bar)
        _solvers.log.info("ntkrs.dask.kernel_regression: nystrom solver, %s blocks, %d centres, %d blocks of %d rows",
                          dt.name, m, len(blocks.bounds), rows)
        pre, res, times = _solvers.solve_nystrom(kmm, n, idx, blocks, y2, eps, opts.tol, opts.max_iter, bar, dt)
        del kmm, pre
        t0 = time.perf_counter()
        coef = res.x
        prow = max(_solvers.MIN_ROWS, _solvers.BLOCK_BYTES // (m * 8))
        task = dask.delayed(_predict_block, pure=True)
        dxc = dask.delayed(xc.astype(np.float64), pure=True)
        dcoef = dask.delayed(coef, pure=True)
        parts = dask.compute(*[task(net, xt[r0:r0 + prow], dxc, base, dcoef, nt) for r0 in range(0, xt.shape[0], prow)])
        mean = np.concatenate(parts).reshape((xt.shape[0], *y.shape[1:]))
        bar.step(0, note="predictions")
    finally:
        bar.close()
    if not np.isfinite(mean).all():
        raise FloatingPointError(f"ntkrs.dask.kernel_regression: non-finite predictions (ε = {eps:.3g}). "
                                 f"{_solvers.FIX}")
    info = _solvers._cg_info(res, "nystrom", m) | times | {
        "eps": eps, "diag_reg": opts.reg, "dtype": dt.name, "blocks": len(blocks.bounds), "block_rows": rows,
        "jitter": None, "predict_s": time.perf_counter() - t0, "total_s": time.perf_counter() - start,
        "reason": "ntkrs.dask.kernel_regression (Nyström on a dask cluster)"}
    return _predict.KernelRegression(mean, None, "nystrom", info)
