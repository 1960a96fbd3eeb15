"""Linear solvers behind :mod:`ntkrs.predict` and :mod:`ntkrs.sklearn`: one place for every solve
of ``(K + ε·I) α = Y``.

* :class:`Symmetric`: a symmetric kernel held in memory, with its Cholesky factor (LAPACK ``potrf``,
  in place when the caller owns the matrix) and, when that fails, a clamped eigendecomposition
  (pseudo-inverse, with a warning). ``gp_inference``, ``gradient_descent_mse`` and the exact
  solver of ``kernel_regression`` all solve through it.
* :func:`pcg`: conjugate gradients with a preconditioner on ``(n, O)`` blocks of right-hand sides,
  one scalar recurrence per column.
* :class:`Nystrom`: Falkon (Rudi, Carratino and Rosasco, 2017): Nyström centres and conjugate
  gradients preconditioned by the centres' kernel, with the kernel between training points and
  centres produced in row blocks by a *block source* (this process, stored or recomputed: see
  :class:`LocalBlocks`; or tasks on a dask cluster: ``ntkrs.dask``).
* :class:`ExactFloat32`: a float32 Cholesky factor used as the preconditioner of conjugate
  gradients whose products recompute float64 kernel panels (iterative refinement to float64).
* :func:`plan`: which solver, which precision, how many centres and how many stored blocks a
  memory limit allows.

Everything here works on validated float arrays; argument checking is done by the public
functions.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("ntkrs")

GiB = 1 << 30
MiB = 1 << 20
#: ``memory_limit=None``: 8 GiB, capped at 80% of the memory the OS reports as available.
DEFAULT_MEMORY_LIMIT = 8 * GiB
#: ``solver="auto"`` solves exactly up to this many training points (Cholesky: N³/3 flops).
EXACT_MAX_N = 20_000
#: ``n_centers=None``: at most this many Nyström centres (fewer when the memory limit requires).
#: (all of MNIST: 97.9–98.0% test accuracy with 10,000 centres over three seeds, 98.15% with 15,000)
DEFAULT_CENTERS = 15_000
#: Target size of one kernel block computed at a time (bytes).
BLOCK_BYTES = 128 * MiB
#: Fixed allowance for vectors and small temporaries.
RESERVE = 8 * MiB
#: Fewest rows in a kernel block.
MIN_ROWS = 32
#: Matrices at least this large are eigendecomposed in a helper thread, so Ctrl-C is immediate.
THREAD_MIN = 1024
#: Tile of the blocked Cholesky factorisation and ``LᵀL`` product: no single LAPACK/BLAS call on
#: a larger matrix. OpenBLAS's own multithreaded ``potrf`` (0.3.30 in scipy's wheels, 0.3.31 in
#: numpy's) crashes with a segmentation fault from n ≈ 16,000 on 2 threads (the known class of
#: OpenBLAS bugs in its threaded ``syrk`` inside ``potrf``); tiles of 2048 also bound each call to a
#: fraction of a second, so Ctrl-C is honoured between them.
TILE = 2048


# --------------------------------------------------------------------------------------------
# Warnings, memory, Ctrl-C, progress
# --------------------------------------------------------------------------------------------


def warn(message: str) -> None:
    """A ``RuntimeWarning`` attributed to the first caller outside the ntkrs package."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, RuntimeWarning, stacklevel=level)


def available_memory() -> int | None:
    """Bytes the OS reports as available (``MemAvailable`` on Linux), or ``None`` if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def resolve_memory_limit(value: Any) -> int:
    """Bytes from ``memory_limit`` (``None``: :data:`DEFAULT_MEMORY_LIMIT`), capped at 80% of the
    available memory (the out-of-core kernel's convention)."""
    from .out_of_core import parse_memory_limit

    limit = DEFAULT_MEMORY_LIMIT if value is None else parse_memory_limit(value)
    avail = available_memory()
    if avail is not None and limit > 0.8 * avail:
        log.info("memory_limit %s capped at 80%% of the available memory, %s", _fmt(limit), _fmt(0.8 * avail))
        limit = int(0.8 * avail)
    return limit


def _fmt(nbytes: float) -> str:
    if nbytes >= GiB:
        return f"{nbytes / GiB:.2f} GiB"
    return f"{nbytes / MiB:.1f} MiB"


def interruptible(fn: Callable[..., Any], *args: Any, big: bool = True, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, run in a helper thread when ``big`` so that Ctrl-C raises
    ``KeyboardInterrupt`` in the caller at once. LAPACK/BLAS calls release the GIL but cannot be
    stopped: an interrupted call finishes in the background and its result is dropped."""
    if not big or threading.current_thread() is not threading.main_thread():
        return fn(*args, **kwargs)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["out"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box["err"] = e

    t = threading.Thread(target=run, name="ntkrs-linalg", daemon=True)
    t.start()
    while t.is_alive():
        t.join(0.05)
    if "err" in box:
        raise box["err"]
    return box["out"]


_CONTROLLER: Any = None


def single_blas_thread() -> Any:
    """A context in which BLAS uses one thread (``threadpoolctl``, which scikit-learn installs;
    without it, a no-op). For the thin products of the iterations (a kernel block times ``O``
    columns: memory-bound), one thread is as fast as several, and it leaves the cores to the kernel
    core between products: BLAS threads spinning after a call slow the next kernel block by 2–3×."""
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


class Progress:
    """Progress over a whole solve: ``progress`` is ``False``, ``True`` (a tqdm bar) or a callable
    ``f(done, total)`` as for ``net.kernel``. Units are kernel blocks and CG iterations; ``total``
    starts with ``max_iter`` iterations and shrinks to what was done when CG converges."""

    def __init__(self, progress: Any, desc: str) -> None:
        from .network import _progress

        self.callback, self.bar = _progress(progress, desc)
        self.done = 0
        self.total = 0

    def add(self, units: int) -> None:
        self.total += units
        self._report()

    def step(self, units: int = 1, note: str | None = None) -> None:
        self.done += units
        self.total = max(self.total, self.done)
        if note is not None and self.bar is not None:
            self.bar.set_postfix_str(note, refresh=False)
        self._report()

    def _report(self) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------------------------
# Dense symmetric solves
# --------------------------------------------------------------------------------------------


def _lapack(name: str, a: np.ndarray) -> Callable[..., Any]:
    from scipy.linalg import lapack

    return lapack.get_lapack_funcs((name,), (a,))[0]


def _blas(name: str, a: np.ndarray) -> Callable[..., Any]:
    from scipy.linalg import blas

    return blas.get_blas_funcs((name,), (a,))[0]


def fortran_view(k: np.ndarray) -> np.ndarray:
    """A Fortran-ordered view of a symmetric C-ordered matrix (its transpose), no copy; a copy if
    LAPACK could not work on it in place (not contiguous, not aligned (e.g. unpickled from a dask
    worker) or read-only)."""
    a = k.T if k.flags.c_contiguous else k
    if not (a.flags.f_contiguous and a.flags.aligned and a.flags.writeable):
        a = np.array(a, order="F")
    return a


def mirror(a: np.ndarray, lower_from_upper: bool, diagonal: np.ndarray | None = None, block: int = 512) -> None:
    """Make ``a`` symmetric in place from one triangle (LAPACK leaves the other one untouched),
    optionally resetting the diagonal; by column blocks, without an ``n²`` temporary."""
    n = a.shape[0]
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        if lower_from_upper:
            a[j1:, j0:j1] = a[j0:j1, j1:].T
            d = a[j0:j1, j0:j1]
            d[...] = np.triu(d) + np.triu(d, 1).T
        else:
            a[j0:j1, j1:] = a[j1:, j0:j1].T
            d = a[j0:j1, j0:j1]
            d[...] = np.tril(d) + np.tril(d, -1).T
    if diagonal is not None:
        np.fill_diagonal(a, diagonal)


def one_norm(k: np.ndarray, block: int = 1024) -> float:
    """``max_j Σ_i |k_ij|`` by row blocks (no ``n²`` temporary)."""
    s = np.zeros(k.shape[1])
    for i in range(0, k.shape[0], block):
        s += np.abs(k[i:i + block]).sum(0)
    return float(s.max())


def linalg_scratch(n: int, itemsize: int) -> int:
    """Bytes of temporaries :func:`cholesky_lower` and :func:`gram_of_lower` allocate for an ``n × n``
    matrix (a few tiles; none when LAPACK takes the matrix whole)."""
    return 0 if n <= 2 * TILE else 5 * TILE * TILE * itemsize


def cholesky_lower(a: np.ndarray, tile: int | None = None) -> int:
    """Cholesky factorisation ``A = L Lᵀ`` in place of the lower triangle of the Fortran-ordered
    float array ``a`` (the strict upper triangle is never touched). Matrices of at most two tiles go
    to LAPACK ``potrf`` in one call; larger ones are factorised by tiles (right-looking: ``potrf`` of
    a diagonal tile, ``trsm`` of the tiles below it, GEMM updates of the trailing lower tiles), so
    no call sees more than ``2·tile`` rows. Returns 0, or the 1-based column where a non-positive
    pivot appeared (then the lower triangle is garbage)."""
    t = TILE if tile is None else tile
    n = a.shape[0]
    potrf = _lapack("potrf", a)
    if n <= 2 * t:
        _, info = potrf(a, lower=1, clean=0, overwrite_a=1)
        return int(info)
    trsm = _blas("trsm", a)
    for k0 in range(0, n, t):
        k1 = min(n, k0 + t)
        d, info = potrf(np.array(a[k0:k1, k0:k1], order="F"), lower=1, clean=0, overwrite_a=1)
        if info:
            return k0 + int(info)
        blk = a[k0:k1, k0:k1]
        blk[...] = np.tril(d) + np.triu(blk, 1)
        for r0 in range(k1, n, t):
            r1 = min(n, r0 + t)
            a[r0:r1, k0:k1] = trsm(1.0, d, np.array(a[r0:r1, k0:k1], order="F"), side=1, lower=1, trans_a=1,
                                   overwrite_b=1)
        for j0 in range(k1, n, t):
            j1 = min(n, j0 + t)
            lj = a[j0:j1, k0:k1]
            for i0 in range(j0, n, t):
                i1 = min(n, i0 + t)
                upd = a[i0:i1, k0:k1] @ lj.T
                if i0 == j0:
                    upd = np.tril(upd)
                a[i0:i1, j0:j1] -= upd
    return 0


def gram_of_lower(src: np.ndarray, dst: np.ndarray, tile: int | None = None) -> None:
    """The lower triangle of ``Lᵀ L`` into ``dst`` (Fortran-ordered, same shape), with ``L`` the lower
    triangle of ``src`` (its strict upper triangle is ignored): LAPACK ``lauum`` for matrices of at
    most two tiles, tiles of GEMMs otherwise (see :data:`TILE`). ``dst``'s upper triangle is left
    unspecified."""
    t = TILE if tile is None else tile
    n = src.shape[0]
    if n <= 2 * t:
        dst[...] = src
        _, info = _lapack("lauum", dst)(dst, lower=1, overwrite_c=1)
        return
    starts = list(range(0, n, t))

    def tile_of(k: int, j: int) -> np.ndarray:
        b = src[k:min(n, k + t), j:min(n, j + t)]
        return np.tril(b) if k == j else b

    for i in starts:
        for j in starts:
            if j > i:
                break
            acc = np.zeros((min(n, i + t) - i, min(n, j + t) - j))
            for k in starts:
                if k >= i:
                    acc += tile_of(k, i).T @ tile_of(k, j)
            dst[i:i + t, j:j + t] = acc


class Symmetric:
    """A symmetric (regularised) kernel with its Cholesky factor and eigendecomposition, each
    computed once on first use.

    ``overwrite=True``: the caller hands over ``k``, which is factorised in place (no copy); if it
    is not positive definite the untouched triangle restores it for the eigendecomposition.
    ``check_condition=True``: after factorising, estimate the condition number (LAPACK ``pocon``,
    ``O(n²)``) and warn when it exceeds ``1/(n·ε)``, where solves lose all accuracy.
    """

    def __init__(self, k: np.ndarray, name: str, overwrite: bool = False, check_condition: bool = False,
                 fix: str = "Pass diag_reg > 0 (e.g. 1e-6) to regularise.") -> None:
        self.k = k
        self.name = name
        self.overwrite = overwrite
        self.check_condition = check_condition
        self.fix = fix
        self.condition: float | None = None
        self._eig: tuple[np.ndarray, np.ndarray] | None = None
        self._cho: Any = None

    def eig(self) -> tuple[np.ndarray, np.ndarray]:
        """``(λ, V)`` with eigenvalues ``≤ n·ε·max|λ|`` set to 0: below that they are
        indistinguishable from 0 (the absolute error of ``eigh``), as in ``scipy.linalg.pinvh``.
        Warns once when that happens, i.e. when the kernel is not numerically positive definite."""
        if self._eig is None:
            lam, v = interruptible(np.linalg.eigh, self.k, big=self.k.shape[0] >= THREAD_MIN)
            tol = len(lam) * np.finfo(np.float64).eps * max(abs(lam[0]), abs(lam[-1]))
            if lam[0] <= tol:
                cond = math.inf if lam[0] == 0 else abs(lam[-1] / lam[0])
                self.condition = cond
                warn(
                    f"{self.name}: the kernel is not positive definite (smallest eigenvalue {lam[0]:.3g}, "
                    f"largest {lam[-1]:.3g}, condition number λmax/|λmin| = {cond:.3g}); eigenvalues ≤ {tol:.3g} "
                    f"(n·eps·λmax) are clamped to 0 and their modes do not train. {self.fix}")
                lam = np.where(lam > tol, lam, 0.0)
            self._eig = (lam, v)
        return self._eig

    def factor(self) -> Any:
        """The lower Cholesky factor (Fortran-ordered), or ``False`` when ``k`` is not positive definite."""
        if self._cho is None:
            n = self.k.shape[0]
            a = fortran_view(self.k) if self.overwrite else np.array(self.k, order="F")
            diagonal = np.diagonal(self.k).copy() if self.overwrite else None
            anorm = one_norm(self.k) if self.check_condition else 0.0
            info = cholesky_lower(a)
            c = a
            if info > 0:
                if self.overwrite:  # the strict upper triangle of the Fortran view is untouched
                    mirror(a, lower_from_upper=True, diagonal=diagonal)
                self._cho = False
                log.info("%s: Cholesky failed at column %d; using the eigendecomposition", self.name, info)
            else:
                self._cho = c
                if self.check_condition:
                    rcond, _ = _lapack("pocon", c)(c, anorm, uplo="L")
                    self.condition = math.inf if rcond == 0 else 1.0 / rcond
                    if self.condition * n * np.finfo(np.float64).eps > 1:
                        warn(f"{self.name}: the kernel is numerically singular (condition number ≈ "
                             f"{self.condition:.3g} > 1/(n·eps) = {1 / (n * np.finfo(np.float64).eps):.3g}): "
                             f"the solution may have lost all its digits. {self.fix}")
        return self._cho

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``K⁻¹ b`` by Cholesky; a kernel that is not positive definite falls back to the
        pseudo-inverse on the clamped eigendecomposition (with the warning of :meth:`eig`)."""
        c = self.factor()
        if c is not False:
            x, info = _lapack("potrs", c)(c, np.asarray(b, dtype=np.float64).reshape(b.shape[0], -1), lower=1)
            return x.reshape(b.shape)
        lam, v = self.eig()
        inv = np.divide(1.0, lam, out=np.zeros_like(lam), where=lam > 0)
        return v @ (inv[:, None] * (v.T @ b.reshape(b.shape[0], -1))).reshape(b.shape)

    def inverse_quadratic_diagonal(self, b: np.ndarray) -> np.ndarray:
        """``diag(bᵀ K⁻¹ b)`` for ``b`` of shape ``(n, m)``: ``‖L⁻¹ b_j‖²`` per column (pseudo-inverse
        on the eigendecomposition when the Cholesky factor does not exist)."""
        c = self.factor()
        if c is not False:
            w = _blas("trsm", c)(1.0, c, np.asfortranarray(b, dtype=np.float64), side=0, lower=1)
            return np.einsum("ij,ij->j", w, w)
        lam, v = self.eig()
        w = v.T @ b
        inv = np.divide(1.0, lam, out=np.zeros_like(lam), where=lam > 0)
        return np.einsum("i,ij,ij->j", inv, w, w)


# --------------------------------------------------------------------------------------------
# Preconditioned conjugate gradients
# --------------------------------------------------------------------------------------------


@dataclass
class CGResult:
    """Outcome of :func:`pcg`."""

    x: np.ndarray
    iterations: int
    residual: float  # max over columns of the relative preconditioned residual (recursive)
    converged: bool
    condition: float  # Lanczos estimate of the preconditioned operator's condition number
    breakdown: bool = False
    history: list[float] = field(default_factory=list)
    true_residual: float | None = None  # recomputed as b − A x after the last iteration


def _lanczos_condition(alphas: list[float], betas: list[float]) -> float:
    """Condition number of the Lanczos tridiagonal matrix that CG builds implicitly: its extreme
    eigenvalues approximate those of the preconditioned operator from inside."""
    from scipy.linalg import eigvalsh_tridiagonal

    k = len(alphas)
    if k == 0:
        return math.nan
    a = np.asarray(alphas)
    b = np.asarray(betas[:k - 1])
    d = 1.0 / a
    d[1:] += b / a[:-1]
    e = np.sqrt(b) / a[:-1]
    w = eigvalsh_tridiagonal(d, e)
    return float(w[-1] / w[0]) if w[0] > 0 else math.inf


def pcg(apply_a: Callable[[np.ndarray], np.ndarray], apply_p: Callable[[np.ndarray], np.ndarray], b: np.ndarray,
        tol: float, max_iter: int, on_iteration: Callable[[int, float], None] | None = None) -> CGResult:
    """Solve ``A x = b`` for every column of ``b`` (``(n, O)``) by conjugate gradients preconditioned
    by ``apply_p`` (an approximation of ``A⁻¹``; both symmetric positive definite), from ``x = 0``.

    Stopping rule: a column stops when its preconditioned residual has fallen by ``tol``,
    ``√(r_kᵀ P r_k / bᵀ P b) ≤ tol``; the solve stops when every column has, or after ``max_iter``
    iterations. A curvature ``pᵀ A p ≤ 0`` (an operator that is not positive definite) stops the
    column at its last iterate and sets ``breakdown``.
    """
    b = np.asarray(b, dtype=np.float64)
    n, o = b.shape
    x = np.zeros_like(b)
    r = b.copy()
    z = apply_p(r)
    p = z.copy()
    rz = np.einsum("ij,ij->j", r, z)
    rz0 = rz.copy()
    res = np.where(rz0 > 0, 1.0, 0.0)
    active = rz0 > 0
    alphas: list[list[float]] = [[] for _ in range(o)]
    betas: list[list[float]] = [[] for _ in range(o)]
    breakdown = False
    history: list[float] = []
    it = 0
    while active.any() and it < max_iter:
        cols = np.flatnonzero(active)
        pc = p[:, cols]
        q = apply_a(pc)
        pq = np.einsum("ij,ij->j", pc, q)
        bad = ~(pq > 0) | ~np.isfinite(pq)
        if bad.any():
            breakdown = True
            active[cols[bad]] = False
            keep = ~bad
            cols, pc, q, pq = cols[keep], pc[:, keep], q[:, keep], pq[keep]
            if len(cols) == 0:
                break
        alpha = rz[cols] / pq
        x[:, cols] += alpha * pc
        r[:, cols] -= alpha * q
        zc = apply_p(r[:, cols])
        rz_new = np.einsum("ij,ij->j", r[:, cols], zc)
        beta = rz_new / rz[cols]
        p[:, cols] = zc + beta * pc
        rz[cols] = rz_new
        res[cols] = np.sqrt(np.maximum(rz_new, 0.0) / rz0[cols])
        for j, c in enumerate(cols):
            alphas[c].append(float(alpha[j]))
            betas[c].append(float(beta[j]))
        active[cols] = res[cols] > tol
        it += 1
        history.append(float(res.max()))
        if on_iteration is not None:
            on_iteration(it, float(res.max()))
    longest = max(range(o), key=lambda c: len(alphas[c]))
    cond = _lanczos_condition(alphas[longest], betas[longest])
    return CGResult(x, it, float(res.max()), bool((res <= tol).all()), cond, breakdown, history)


# --------------------------------------------------------------------------------------------
# Kernel blocks
# --------------------------------------------------------------------------------------------


def call_overhead(rows: int, cols: int, d: int, itemsize: int) -> int:
    """Bytes one ``net.kernel(x1, x2)`` call allocates beyond its result (measured: packing of the
    inputs for the Gram product and per-tile scratch; at most about 0.6× the result plus one copy
    of the inputs and a few MB)."""
    return int(0.6 * rows * cols * itemsize + (rows + cols) * d * itemsize + 4 * MiB)


class LocalBlocks:
    """Row blocks of ``K(x, x_c)`` computed in this process: the first ``n_stored`` blocks are kept
    after the first pass, the others recomputed whenever a product needs them.

    Products are accumulated in float64 from blocks of ``dtype`` (float32 blocks are multiplied in
    float32 and the partial sums accumulated in float64)."""

    def __init__(self, kernel: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray, xc: np.ndarray,
                 block_rows: int, n_stored: int, progress: Progress | None = None) -> None:
        self.kernel = kernel
        self.x = x
        self.xc = xc
        self.dtype = x.dtype
        n = x.shape[0]
        self.bounds = [(i, min(n, i + block_rows)) for i in range(0, n, block_rows)]
        self.n_stored = min(n_stored, len(self.bounds))
        self.stored: list[np.ndarray | None] = [None] * len(self.bounds)
        self.progress = progress

    @property
    def recomputed(self) -> int:
        """Blocks computed again by every product."""
        return len(self.bounds) - self.n_stored

    def _block(self, i: int) -> np.ndarray:
        blk = self.stored[i]
        if blk is None:
            r0, r1 = self.bounds[i]
            blk = self.kernel(self.x[r0:r1], self.xc)
            if i < self.n_stored:
                self.stored[i] = blk
            if self.progress is not None:
                self.progress.step()
        return blk

    def first_pass(self, y: np.ndarray) -> np.ndarray:
        """``K_nmᵀ y``, storing the blocks that fit."""
        out = np.zeros((self.xc.shape[0], y.shape[1]))
        for i, (r0, r1) in enumerate(self.bounds):
            blk = self._block(i)
            out += blk.T @ y[r0:r1].astype(self.dtype)
        return out

    def products(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(K_nmᵀ K_nm v, K_nm v)`` for ``v`` of shape ``(M, k)``."""
        vd = np.ascontiguousarray(v, dtype=self.dtype)
        out = np.zeros(v.shape)
        u = np.empty((self.x.shape[0], v.shape[1]))
        for i, (r0, r1) in enumerate(self.bounds):
            blk = self._block(i)
            ub = blk @ vd
            u[r0:r1] = ub
            out += blk.T @ ub
        return out, u

    def rows(self, x: np.ndarray, block_rows: int) -> Any:
        """``K(x, x_c)`` in row blocks: yields ``(r0, r1, block)``."""
        for r0 in range(0, x.shape[0], block_rows):
            r1 = min(x.shape[0], r0 + block_rows)
            yield r0, r1, self.kernel(x[r0:r1], self.xc)


# --------------------------------------------------------------------------------------------
# Nyström + preconditioned CG (Falkon)
# --------------------------------------------------------------------------------------------


class Nystrom:
    r"""Falkon's Nyström kernel ridge regression.

    With centres ``C`` (``M`` training points drawn uniformly without replacement), ``K_nm =
    K(X, C)``, ``K_mm = K(C, C)`` and ``ε`` the absolute ridge, the predictor is
    ``f(x) = K(x, C) α`` with ``α`` minimising ``‖K_nm α − Y‖² + ε αᵀ K_mm α``, i.e.

        H α = K_nmᵀ Y,    H = K_nmᵀ K_nm + ε K_mm.

    With ``M = N`` this is exactly ``(K + εI)⁻¹ Y`` (for positive-definite ``K``, up to the jitter
    ``δ`` below, which :meth:`operator` adds to ``K_mm``: relative ``M·eps``). ``H`` is never
    formed: conjugate gradients use products ``K_nmᵀ (K_nm v)`` from the block source, and
    ``K_mm v = (K_nm v)[centres]``. The preconditioner is Falkon's ``P = (N/M) K_mm² + ε K_mm``:
    with ``K_mm + δI = L Lᵀ`` (``δ = M·eps·mean diag K_mm`` with the ``eps`` of the blocks'
    precision, raised ×100 while the factorisation fails) and ``B Bᵀ = (N/M) Lᵀ L + εI`` (both
    lower triangular), ``P = L B Bᵀ Lᵀ`` (Falkon's ``T = Lᵀ``, ``A = Bᵀ``). ``L`` and ``B`` share one
    ``M × M`` float64 array (``L`` in the lower triangle, ``Bᵀ`` in the upper one, their diagonals
    kept aside), as in Falkon; both are factorised by :func:`cholesky_lower` (tiles).
    """

    def __init__(self, kmm: np.ndarray, n: int, eps: float, precision: Any = np.float64,
                 name: str = "K(centres, centres)") -> None:
        m = kmm.shape[0]
        self.m, self.n, self.eps, self.name = m, n, eps, name
        a = fortran_view(kmm)  # float64, consumed: L is computed in place
        if a.dtype != np.float64:  # pragma: no cover - callers pass float64
            raise TypeError("kmm must be float64")
        diagonal = np.diagonal(a).copy()
        mean_diag = float(diagonal.mean())
        if not mean_diag > 0:
            raise ValueError(f"{name}: the kernel of the centres has a non-positive mean diagonal ({mean_diag:.3g}); "
                             "a kernel matrix needs k(x, x) > 0")
        # Falkon's jitter, M·eps·(mean diagonal) with the eps of the kernel blocks: directions of
        # K_mm below it are rounding noise of the blocks, and the preconditioner must not amplify them.
        jitter = m * float(np.finfo(precision).eps) * mean_diag
        for _attempt in range(8):
            np.fill_diagonal(a, diagonal + jitter)
            if cholesky_lower(a) == 0:
                break
            mirror(a, lower_from_upper=True, diagonal=diagonal)  # the strict upper triangle is untouched
            log.info("%s: Cholesky failed with jitter %.3g; retrying with %.3g", name, jitter, jitter * 100)
            jitter *= 100
        else:
            raise ValueError(f"{name}: the kernel of the Nyström centres is not positive definite even with "
                             f"{jitter / 100 / mean_diag:.3g}× its mean diagonal added; check the network, or "
                             "remove duplicated training points")
        self.jitter = jitter
        self.l_diag = np.diagonal(a).copy()
        # B = chol((n/m)·LᵀL + ε·I) in a second M × M array (lower triangle)
        c = np.empty((m, m), order="F")
        gram_of_lower(a, c)
        c *= n / m
        tt_diag = np.diagonal(c).copy()
        ajit = 0.0
        for _attempt in range(8):
            np.fill_diagonal(c, tt_diag + eps + ajit)
            if cholesky_lower(c) == 0:
                break
            gram_of_lower(a, c)  # the lower triangle was overwritten: form it again
            c *= n / m
            ajit = m * np.finfo(np.float64).eps * float(tt_diag.mean()) if ajit == 0.0 else ajit * 100
        else:  # pragma: no cover - LᵀL is PD when L is nonsingular
            raise ValueError(f"{name}: the Nyström preconditioner could not be factorised; raise diag_reg")
        self.b_diag = np.diagonal(c).copy()
        # Bᵀ into the strict upper triangle of a (column blocks: no M² temporary)
        for j0 in range(0, m, 512):
            j1 = min(m, j0 + 512)
            a[j0:j1, j1:] = c[j1:, j0:j1].T
            blk = a[j0:j1, j0:j1]
            blk[...] = np.tril(blk) + np.tril(c[j0:j1, j0:j1], -1).T
        del c
        self.packed = a
        self._trsm = _blas("trsm", a)

    def _solve(self, b: np.ndarray, which: str, trans: bool, side: int = 0) -> np.ndarray:
        """``op(X)⁻¹ b`` (``side=0``) or ``b op(X)⁻¹`` (``side=1``) for ``X`` = ``L`` (stored lower)
        or ``Bᵀ`` (stored upper), ``op`` the transpose when ``trans``."""
        np.fill_diagonal(self.packed, self.l_diag if which == "L" else self.b_diag)
        return self._trsm(1.0, self.packed, b, side=side, lower=int(which == "L"), trans_a=int(trans),
                          overwrite_b=1)

    def right_t_inv(self, b: np.ndarray) -> np.ndarray:
        """``b T⁻¹ = b L⁻ᵀ``: rows of ``b`` mapped to the Nyström features ``φ(x) = L⁻¹ k_m(x)``."""
        return self._solve(np.array(b, dtype=np.float64, order="F"), "L", True, side=1)

    def precondition(self, r: np.ndarray) -> np.ndarray:
        """``P⁻¹ r = L⁻ᵀ B⁻ᵀ B⁻¹ L⁻¹ r`` (``B⁻¹ = (Bᵀ)⁻ᵀ`` from the stored upper ``Bᵀ``)."""
        s = self._solve(np.array(r, dtype=np.float64, order="F"), "L", False)
        s = self._solve(s, "B", True)
        s = self._solve(s, "B", False)
        return self._solve(s, "L", True)

    def operator(self, products: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                 centres: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """``v ↦ H v = K_nmᵀ K_nm v + ε (K_mm + δI) v`` with ``K_mm v`` read off ``K_nm v`` at the
        centres. The jitter ``δ`` of ``T`` is kept in the system: ``ε K_mm`` alone is singular along
        duplicated centres, and rounding of the blocks (float32) would make ``H`` indefinite there;
        ``εδ`` is below the blocks' rounding (``δ = M·eps·mean diag ≥ eps·λ_max(K_mm)``)."""
        eps, jitter = self.eps, self.jitter

        def apply(v: np.ndarray) -> np.ndarray:
            out, u = products(v)
            if eps:
                out += eps * (u[centres] + jitter * v)
            return out

        return apply

    def nbytes(self) -> int:
        return self.packed.nbytes


# --------------------------------------------------------------------------------------------
# Planning: solver, precision, centres and stored blocks under a memory limit
# --------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What :func:`plan` decided, and why (``reason`` is the logged sentence)."""

    solver: str
    dtype: np.dtype
    memory_limit: int
    reason: str
    n_centers: int | None = None
    block_rows: int = 0
    n_blocks: int = 0
    n_stored: int = 0
    bytes_fixed: int = 0
    bytes_stored: int = 0


def _exact_bytes(n: int, d: int, m: int, dtype: np.dtype, variance: bool) -> int:
    """Peak bytes of the exact solve: the n×n kernel (with the core's overhead while it is
    computed) and the smallest panel of test or refinement rows."""
    s = dtype.itemsize
    kernel = n * n * s + call_overhead(n, n, d, s) - int(0.6 * n * n * s) + int(0.3 * n * n * s)
    rows = MIN_ROWS * n * 8
    working = max(rows * (3 if variance else 2) + call_overhead(MIN_ROWS, n, d, 8), linalg_scratch(n, s))
    return kernel + working + RESERVE


def _nystrom_fixed(m: int, d: int, variance: bool) -> tuple[int, int]:
    """``(setup, solve)``: bytes the Nyström solve holds besides kernel blocks while the
    preconditioner is built (``K_mm`` and a second ``M × M`` array) and afterwards (the packed
    ``T``/``A`` array, plus ``G`` for the variances), with the centres and a reserve."""
    mm = m * m * 8
    small = m * d * 8 + RESERVE
    setup = max(2 * mm + linalg_scratch(m, 8), mm + call_overhead(m, m, d, 8)) + small
    return setup, (2 if variance else 1) * mm + small


def plan(n: int, d: int, m_test: int, solver: str, n_centers: int | None, dtype: np.dtype | None,
         memory_limit: int, variance: bool) -> Plan:
    """Choose the solver and its sizes for ``n`` training points of ``d`` features.

    ``"auto"``: exact when ``n ≤ EXACT_MAX_N``, ``n_centers`` is not given (or equals ``n``) and
    the exact solve fits ``memory_limit`` (float64, else float32 with iterative refinement unless
    variances are asked); otherwise Nyström.
    """
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    if solver == "auto":
        if n_centers is not None and n_centers < n:
            solver, why = "nystrom", f"n_centers={n_centers} < N={n}"
        elif n > EXACT_MAX_N:
            solver, why = "nystrom", f"N={n} > {EXACT_MAX_N} (the exact Cholesky costs N³/3 flops)"
        else:
            # (np.dtype(None) is float64, so None must be tested first)
            options = [f64, f32] if dtype is None and not variance else [f64 if dtype is None else dtype]
            fits = [t for t in options if _exact_bytes(n, d, m_test, t, variance) <= memory_limit]
            if fits:
                solver, why = "exact", f"N={n} ≤ {EXACT_MAX_N} and the N×N kernel fits memory_limit"
            else:
                need = _exact_bytes(n, d, m_test, options[-1], variance)
                solver, why = "nystrom", (f"the exact solve needs {_fmt(need)}, more than memory_limit "
                                          f"{_fmt(memory_limit)}")
    else:
        why = f"solver={solver!r}"
    if solver == "exact":
        if dtype is None:
            dt = f64 if variance or _exact_bytes(n, d, m_test, f64, variance) <= memory_limit else f32
        else:
            dt = dtype
        need = _exact_bytes(n, d, m_test, dt, variance)
        if need > memory_limit:
            raise MemoryError(f"memory_limit: the exact solve of N={n} points in {dt} needs about {_fmt(need)} "
                              f"(the N×N kernel), more than memory_limit {_fmt(memory_limit)}; use "
                              "solver='nystrom' (or 'auto'), dtype=np.float32, or raise memory_limit")
        return Plan("exact", dt, memory_limit, why, bytes_fixed=need)
    # Nyström
    dt = dtype if dtype is not None else (f64 if variance else f32)
    s = dt.itemsize
    if n_centers is None:
        m = min(n, DEFAULT_CENTERS)
        while m > 1 and max(_nystrom_fixed(m, d, variance)) > memory_limit // 2:
            m = int(m * 0.9)
        chosen = f"{m} centres (default: min(N, {DEFAULT_CENTERS}) within half of memory_limit)"
    else:
        m = n_centers
        chosen = f"{m} centres"
    setup, fixed = _nystrom_fixed(m, d, variance)
    fixed += n * d * s if dt != f64 else 0  # the inputs converted to the blocks' precision

    def working(r: int) -> int:
        return r * m * s + call_overhead(r, m, d, s)

    # Blocks of at most BLOCK_BYTES, and small enough that computing one (with its scratch) takes at
    # most a third of what the fixed part leaves, the rest storing others.
    rows = int(max(MIN_ROWS, min(n, BLOCK_BYTES // max(1, m * s))))
    while rows > 8 * MIN_ROWS and working(rows) - working(0) > max(0, memory_limit - fixed - working(0)) // 3:
        rows //= 2
    while rows > MIN_ROWS and fixed + working(rows) > memory_limit:
        rows = max(MIN_ROWS, rows // 2)
    need = max(setup, fixed + working(rows))
    if need > memory_limit:
        raise MemoryError(f"memory_limit: {m} Nyström centres need at least {_fmt(need)} (the M×M "
                          f"preconditioner, {_fmt(2 * m * m * 8)} while it is built, and one block of kernel rows), "
                          f"more than memory_limit {_fmt(memory_limit)}; lower n_centers or raise memory_limit")
    n_blocks = -(-n // rows)
    block = rows * m * s
    n_stored = int(min(n_blocks, max(0, (memory_limit - fixed - working(rows)) // block)))
    return Plan("nystrom", dt, memory_limit, f"{why}; {chosen}", n_centers=m, block_rows=rows, n_blocks=n_blocks,
                n_stored=n_stored, bytes_fixed=need, bytes_stored=n_stored * block)


# --------------------------------------------------------------------------------------------
# Fitting: the kernel-regression solve from a network and training inputs
# --------------------------------------------------------------------------------------------


@dataclass
class Fitted:
    """A fitted kernel regression: ``predict(x) = K(x, centres) @ dual_coef``.

    ``centres`` are all training inputs for the exact solver and the Nyström centres otherwise
    (``centre_index`` their rows in ``x_train``). ``posterior(x, full)`` (``None`` unless variances
    were planned) gives the predictive variances (or covariance) while the factors are alive."""

    solver: str
    dtype: np.dtype
    centres: np.ndarray
    centre_index: np.ndarray | None
    dual_coef: np.ndarray
    eps: float
    info: dict[str, Any]
    kernel: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    block_rows: int
    posterior: Callable[[np.ndarray, bool], np.ndarray] | None = None

    def predict(self, x: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """``K(x, centres) @ dual_coef`` in row blocks, float64 ``(m, O)``."""
        return predict_rows(self.kernel, x, self.centres, self.dual_coef, self.block_rows, progress)


def kernel_fn(net: Any, base: str, dt: Any = np.float64) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
    """``(a, b) ↦ net.kernel(a, b, get=base, dtype=dt)``."""
    def kernel(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        return net.kernel(a, b, get=base, dtype=dt)

    return kernel


def predict_rows(kernel: Callable[[np.ndarray, np.ndarray | None], np.ndarray], x: np.ndarray, centres: np.ndarray,
                 coef: np.ndarray, rows: int, progress: Progress | None = None) -> np.ndarray:
    """``K(x, centres) @ coef`` (``coef`` of shape ``(M, O)``) in blocks of ``rows`` rows, with the
    float64 kernel whatever the training blocks' precision (``M·m`` entries, against the
    training's ``N·M``; and predictions then do not depend on how rows are blocked)."""
    out = np.empty((x.shape[0], coef.shape[1]))
    cd = centres.astype(np.float64, copy=False)
    with single_blas_thread():
        for r0 in range(0, x.shape[0], rows):
            r1 = min(x.shape[0], r0 + rows)
            out[r0:r1] = kernel(x[r0:r1], cd) @ coef
            if progress is not None:
                progress.step()
    return out


def mean_diagonal(net: Any, x: np.ndarray, base: str, rows: int = 2048) -> float:
    """``mean_i k(x_i, x_i)`` in float64, ``O(N)``, in row chunks (no float64 copy of all of ``x``)."""
    total = 0.0
    for r0 in range(0, x.shape[0], rows):
        total += float(np.sum(net.kernel(x[r0:r0 + rows], get=base, diagonal=True)))
    return total / x.shape[0]


def ridge(net: Any, x: np.ndarray, base: str, reg: float, absolute: bool) -> float:
    """The absolute ridge ``ε``: ``diag_reg`` times the mean of ``k(x_i, x_i)`` unless ``absolute``."""
    if absolute or reg == 0:
        return reg
    return reg * mean_diagonal(net, x, base)


FIX = "Raise diag_reg (for example to 1e-4 or 1e-3 relative to the mean diagonal)."


def fit(net: Any, x: np.ndarray, y: np.ndarray, base: str, reg: float, absolute: bool, plan_: Plan,
        progress: Progress, seed: int, tol: float, max_iter: int, variance: bool, m_test: int = 0) -> Fitted:
    """Solve ``(K + ε·I) α = y`` (``y`` of shape ``(n, O)``) with the planned solver."""
    start = time.perf_counter()
    eps = ridge(net, x, base, reg, absolute)
    if plan_.solver == "exact" and plan_.dtype == np.float64:
        fitted = _fit_exact(net, x, y, base, eps, plan_, progress, m_test)
    elif plan_.solver == "exact":
        fitted = _fit_exact_float32(net, x, y, base, eps, plan_, progress, tol, max_iter, m_test)
    else:
        fitted = _fit_nystrom(net, x, y, base, eps, plan_, progress, seed, tol, max_iter, variance)
    fitted.info.update(eps=eps, diag_reg=reg, memory_limit=plan_.memory_limit, reason=plan_.reason,
                       dtype=np.dtype(plan_.dtype).name, fit_s=time.perf_counter() - start)
    if not np.isfinite(fitted.dual_coef).all():
        raise FloatingPointError(f"kernel regression: the {plan_.solver} solve produced non-finite coefficients "
                                 f"(ε = {eps:.3g}). {FIX}")
    return fitted


def _test_rows(n_cols: int, d: int, itemsize: int, budget: int, m_test: int) -> int:
    """Rows of test blocks ``K(x_test, centres)``: doubled from ``MIN_ROWS`` while they fit."""
    rows = MIN_ROWS
    while rows < max(m_test, MIN_ROWS) and 2 * rows * n_cols * 8 + call_overhead(2 * rows, n_cols, d, itemsize) \
            <= budget and 2 * rows * n_cols * itemsize <= BLOCK_BYTES:
        rows *= 2
    return rows


def _fit_exact(net: Any, x: np.ndarray, y: np.ndarray, base: str, eps: float, plan_: Plan, progress: Progress,
               m_test: int) -> Fitted:
    n, d = x.shape
    x = x.astype(np.float64, copy=False)
    t0 = time.perf_counter()
    progress.add(2)
    k = net.kernel(x, get=base, dtype=np.float64)
    progress.step(note="kernel")
    t1 = time.perf_counter()
    k[np.diag_indices(n)] += eps
    sym = Symmetric(k, "kernel_regression: k(x_train, x_train) + ε·I", overwrite=True, check_condition=True, fix=FIX)
    if sym.factor() is False:
        need = 3 * n * n * 8 + RESERVE
        if need > plan_.memory_limit:
            raise ValueError(f"kernel_regression: k(x_train, x_train) + ε·I (ε = {eps:.3g}) is not numerically "
                             f"positive definite (its Cholesky factorisation failed), and the eigendecomposition "
                             f"that would give a pseudo-inverse needs {_fmt(need)}, more than memory_limit "
                             f"{_fmt(plan_.memory_limit)}. {FIX}")
    coef = sym.solve(y)
    progress.step(note="Cholesky")
    t2 = time.perf_counter()
    rows = _test_rows(n, d, 8, plan_.memory_limit - n * n * 8 - RESERVE, m_test)

    def posterior(xt: np.ndarray, full: bool) -> np.ndarray:
        return _exact_posterior(net, base, x, xt, sym, rows, full, progress)

    info = {"solver": "exact", "n_centers": n, "iterations": 0, "converged": sym.factor() is not False,
            "residual": None, "condition": sym.condition, "kernel_s": t1 - t0, "solve_s": t2 - t1}
    return Fitted("exact", np.dtype(np.float64), x, None, coef, eps, info, kernel_fn(net, base),
                  rows, posterior)


def _exact_posterior(net: Any, base: str, x: np.ndarray, xt: np.ndarray, sym: Symmetric, rows: int, full: bool,
                     progress: Progress) -> np.ndarray:
    """``diag`` (or the whole matrix, ``full``) of ``K_xx − K_xX (K + εI)⁻¹ K_Xx``."""
    m = xt.shape[0]
    if full:
        kx = net.kernel(x, xt, get=base)  # (n, m)
        c = sym.factor()
        if c is False:
            return net.kernel(xt, get=base) - kx.T @ sym.solve(kx)
        w = _blas("trsm", c)(1.0, c, np.asfortranarray(kx), side=0, lower=1)
        return net.kernel(xt, get=base) - w.T @ w
    out = net.kernel(xt, get=base, diagonal=True).astype(np.float64)
    progress.add(-(-m // rows))
    for r0 in range(0, m, rows):
        r1 = min(m, r0 + rows)
        out[r0:r1] -= sym.inverse_quadratic_diagonal(net.kernel(x, xt[r0:r1], get=base))
        progress.step(note="variance")
    return np.maximum(out, 0.0)


def _fit_exact_float32(net: Any, x: np.ndarray, y: np.ndarray, base: str, eps: float, plan_: Plan,
                       progress: Progress, tol: float, max_iter: int, m_test: int) -> Fitted:
    """Float32 kernel and Cholesky factor as the preconditioner of CG on the float64 system, whose
    products recompute float64 kernel panels (upper-triangular: each entry once per product)."""
    n, d = x.shape
    t0 = time.perf_counter()
    x32 = x.astype(np.float32, copy=False)
    x64 = x.astype(np.float64, copy=False)
    progress.add(2)
    k = net.kernel(x32, get=base, dtype=np.float32)
    progress.step(note="kernel (float32)")
    t1 = time.perf_counter()
    a = fortran_view(k)
    diagonal = np.diagonal(a).copy()
    jitter = 0.0
    for _attempt in range(8):
        np.fill_diagonal(a, diagonal + np.float32(eps + jitter))
        if cholesky_lower(a) == 0:
            break
        mirror(a, lower_from_upper=True, diagonal=diagonal)
        jitter = n * float(np.finfo(np.float32).eps) * float(diagonal.mean()) if jitter == 0 else jitter * 10
        log.info("kernel_regression: float32 Cholesky failed; preconditioner jitter %.3g", jitter)
    else:
        raise ValueError(f"kernel_regression: the float32 kernel + ε·I (ε = {eps:.3g}) could not be factorised even "
                         f"with jitter; pass dtype=np.float64. {FIX}")
    progress.step(note="Cholesky (float32)")
    potrs = _lapack("potrs", a)
    budget = plan_.memory_limit - n * n * 4 - (x32.nbytes if x32 is not x else 0) - RESERVE
    h = MIN_ROWS
    while h < n and 2 * h * n * 8 + call_overhead(2 * h, n, d, 8) <= budget and 2 * h * n * 8 <= BLOCK_BYTES:
        h *= 2
    h = min(h, n)
    panels = [(r0, min(n, r0 + h)) for r0 in range(0, n, h)]

    def apply_p(r: np.ndarray) -> np.ndarray:
        z, _ = potrs(a, np.asfortranarray(r, dtype=np.float32), lower=1)
        return z.astype(np.float64)

    def apply_a(v: np.ndarray) -> np.ndarray:
        out = eps * v
        for r0, r1 in panels:
            p = net.kernel(x64[r0:r1], x64[r0:], get=base, dtype=np.float64)
            out[r0:r1] += p @ v[r0:]
            out[r1:] += p[:, r1 - r0:].T @ v[r0:r1]
            progress.step()
        return out

    res = _run_cg(apply_a, apply_p, y, tol, max_iter, len(panels), True, progress, "exact (float32 + refinement)")
    t2 = time.perf_counter()
    rows = _test_rows(n, d, 8, plan_.memory_limit - RESERVE, m_test)
    info = _cg_info(res, "exact", n) | {"kernel_s": t1 - t0, "solve_s": t2 - t1, "jitter": jitter, "panel_rows": h}
    return Fitted("exact", np.dtype(np.float64), x64, None, res.x, eps, info,
                  kernel_fn(net, base), rows, None)


def _cg_info(res: CGResult, solver: str, m: int) -> dict[str, Any]:
    return {"solver": solver, "n_centers": m, "iterations": res.iterations, "converged": res.converged,
            "residual": res.true_residual if res.true_residual is not None else res.residual,
            "cg_residual": res.residual, "cg_condition": res.condition, "breakdown": res.breakdown,
            "history": res.history}


def _run_cg(apply_a: Callable[[np.ndarray], np.ndarray], apply_p: Callable[[np.ndarray], np.ndarray],
            b: np.ndarray, tol: float, max_iter: int, units: int, inner: bool, progress: Progress,
            what: str) -> CGResult:
    """:func:`pcg` with progress (``units`` per product of the operator, which reports them itself
    when ``inner``), warnings on non-convergence and breakdown."""
    progress.add((max_iter + 1) * units)

    def on_iteration(it: int, res: float) -> None:
        progress.step(0 if inner else units, note=f"CG {it}: residual {res:.2e}")

    with single_blas_thread():
        res = pcg(apply_a, apply_p, b, tol, max_iter, on_iteration)
    progress.total -= (max_iter - res.iterations) * units
    # The residual recomputed from scratch (one more product): what the recursion reports can
    # drift from it in floating point; both are returned.
    if res.iterations:
        with single_blas_thread():
            r = b - apply_a(res.x)
            rz0 = np.einsum("ij,ij->j", b, apply_p(b))
            rz = np.einsum("ij,ij->j", r, apply_p(r))
        res.true_residual = float(np.sqrt(np.max(np.abs(rz) / np.where(rz0 > 0, rz0, 1.0))))
        progress.step(0 if inner else units)
    else:
        progress.total -= units
    progress.step(0)
    log.info("%s: CG stopped after %d iterations, relative residual %.3g, condition estimate %.3g",
             what, res.iterations, res.residual, res.condition)
    if res.breakdown:
        warn(f"kernel_regression: the {what} system is not numerically positive definite (conjugate gradients met "
             f"pᵀHp ≤ 0 after {res.iterations} iterations; condition estimate {res.condition:.3g}); the last iterate "
             f"is used. {FIX}")
    elif not res.converged:
        warn(f"kernel_regression: conjugate gradients ({what}) did not converge in max_iter={max_iter} iterations "
             f"(relative residual {res.residual:.3g} > tol={tol:g}; condition number of the preconditioned system "
             f"≈ {res.condition:.3g}). {FIX} Or raise max_iter.")
    return res


def centres_of(n: int, m: int, seed: int) -> np.ndarray:
    """``m`` of ``range(n)`` uniformly without replacement, sorted (all of them when ``m = n``)."""
    if m == n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def solve_nystrom(kmm: np.ndarray, n: int, idx: np.ndarray, blocks: Any, y: np.ndarray, eps: float, tol: float,
                  max_iter: int, progress: Progress, precision: Any) -> tuple[Nystrom, CGResult, dict[str, float]]:
    """Falkon's preconditioned CG for ``α`` given ``K_mm`` (float64, consumed) and a block source
    with ``first_pass(y)`` (``K_nmᵀ y``, storing what it keeps), ``products(v)`` (``(K_nmᵀ K_nm v,
    K_nm v)``) and ``recomputed`` (blocks computed again by every product; 0 when all are stored)."""
    t0 = time.perf_counter()
    pre = Nystrom(kmm, n, eps, precision)
    progress.step(note="preconditioner")
    t1 = time.perf_counter()
    with single_blas_thread():
        rhs = blocks.first_pass(y)
    t2 = time.perf_counter()
    res = _run_cg(pre.operator(blocks.products, idx), pre.precondition, rhs, tol, max_iter,
                  max(1, blocks.recomputed), blocks.recomputed > 0, progress, "Nyström")
    t3 = time.perf_counter()
    return pre, res, {"preconditioner_s": t1 - t0, "first_pass_s": t2 - t1, "solve_s": t3 - t2}


def _fit_nystrom(net: Any, x: np.ndarray, y: np.ndarray, base: str, eps: float, plan_: Plan, progress: Progress,
                 seed: int, tol: float, max_iter: int, variance: bool) -> Fitted:
    n, d = x.shape
    m = int(plan_.n_centers)
    dt = np.dtype(plan_.dtype)
    idx = centres_of(n, m, seed)
    t0 = time.perf_counter()
    xd = x.astype(dt, copy=False)
    xc = np.ascontiguousarray(xd[idx])
    progress.add(2 + plan_.n_blocks)
    kmm = net.kernel(x[idx].astype(np.float64), get=base, dtype=np.float64)
    progress.step(note="K(centres, centres)")
    kern = kernel_fn(net, base, dt)
    blocks = LocalBlocks(kern, xd, xc, plan_.block_rows, plan_.n_stored, progress)
    t1 = time.perf_counter()
    pre, res, times = solve_nystrom(kmm, n, idx, blocks, y, eps, tol, max_iter, progress, dt)
    del kmm
    info = _cg_info(res, "nystrom", m) | times | {
        "kmm_s": t1 - t0, "jitter": pre.jitter, "block_rows": plan_.block_rows, "blocks": plan_.n_blocks,
        "stored_blocks": blocks.n_stored, "stored_bytes": plan_.bytes_stored}
    posterior = None
    if variance:
        def posterior(xt: np.ndarray, full: bool) -> np.ndarray:
            return _nystrom_posterior(net, base, blocks, pre, xt, eps, full, progress)

    rows = max(MIN_ROWS, min(plan_.block_rows * dt.itemsize // 8, plan_.block_rows))
    return Fitted("nystrom", dt, xc, idx, res.x, eps, info, kernel_fn(net, base), rows, posterior)


def _nystrom_posterior(net: Any, base: str, blocks: LocalBlocks, pre: Nystrom, xt: np.ndarray, eps: float,
                       full: bool, progress: Progress) -> np.ndarray:
    r"""Predictive variances (or covariance, ``full``) of the Nyström GP with noise ``ε`` (the DTC
    posterior): ``K_xx − Q_xx + ε K_xm (K_mn K_nm + ε K_mm)⁻¹ K_mx`` with ``Q = K_·m K_mm⁻¹ K_m·``.

    In the features ``φ(x) = L⁻¹ k_m(x)`` (``Q_xx' = φ(x)ᵀφ(x')``) and ``G = Σ_i φ(x_i)φ(x_i)ᵀ + εI =
    R Rᵀ`` (``R`` lower) this is ``K_xx − ‖φ(x)‖² + ε‖R⁻¹φ(x)‖²``: two non-negative terms (the Nyström residual and
    the ridge posterior), no cancellation between ``K_mm⁻¹`` and ``H⁻¹``. With ``M = N`` it is the
    exact ``K_xx − K_xX (K + εI)⁻¹ K_Xx``. Costs ``2·N·M²`` flops (forming ``G``)."""
    m = pre.m
    g = np.zeros((m, m), order="F")
    progress.add(len(blocks.bounds) + 1)
    for i in range(len(blocks.bounds)):
        phi = pre.right_t_inv(blocks._block(i))
        for j0 in range(0, m, TILE):  # the lower triangle of Σ φφᵀ, by column tiles
            j1 = min(m, j0 + TILE)
            g[j0:, j0:j1] += phi[:, j0:].T @ phi[:, j0:j1]
        progress.step(note="variance: Nyström features")
    g[np.diag_indices(m)] += eps
    if cholesky_lower(g) != 0:
        raise ValueError(f"kernel_regression: the Nyström posterior's M×M system is not numerically positive definite "
                         f"(ε = {eps:.3g}). {FIX}")
    trsm = _blas("trsm", g)
    xc = blocks.xc.astype(np.float64, copy=False)
    if full:
        phi = pre.right_t_inv(net.kernel(xt, xc, get=base))  # (m_test, M)
        w = trsm(1.0, g, np.asfortranarray(phi.T), side=0, lower=1, trans_a=0)
        progress.step()
        return net.kernel(xt, get=base) - phi @ phi.T + eps * (w.T @ w)
    rows = blocks.bounds[0][1] - blocks.bounds[0][0]
    out = net.kernel(xt, get=base, diagonal=True).astype(np.float64)
    for r0 in range(0, xt.shape[0], rows):
        r1 = min(xt.shape[0], r0 + rows)
        phi = pre.right_t_inv(net.kernel(xt[r0:r1], xc, get=base))
        w = trsm(1.0, g, np.asfortranarray(phi.T), side=0, lower=1, trans_a=0)
        out[r0:r1] += -np.einsum("ij,ij->i", phi, phi) + eps * np.einsum("ij,ij->j", w, w)
    progress.step(note="variance")
    return np.maximum(out, 0.0)
