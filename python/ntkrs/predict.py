"""Predictions of infinitely wide networks trained by gradient descent on the MSE loss, and
Gaussian-process posteriors, with neural-tangents' ``nt.predict`` conventions.

Conventions (exactly ``neural_tangents.predict``; derivations in ``docs/ntk-during-training.md``):

* Training inputs ``X`` (``n`` rows), targets ``Y`` of shape ``(n,)`` or ``(n, O)``; a kernel is an
  ``(n, n)`` matrix shared by the ``O`` outputs (``Θ ⊗ I_O``).
* Loss ``L = 1/(2·N)·‖f(X) − Y‖²`` with ``N = y_train.size`` (``n·O``), so gradient flow with
  learning rate ``η`` is ``df(X)/dt = −η/N · Θ (f(X) − Y)``. Times ``t`` are in units of steps:
  the flow runs for ``η·t``.
* ``diag_reg`` adds ``diag_reg·I`` to the train-train kernel, scaled by the mean diagonal
  ``trace(K)/n`` unless ``diag_reg_absolute_scale=True``.
* Times ``t`` may be a scalar or an array of any shape: results gain ``t``'s shape as leading axes.
  ``t=None`` is ``t=∞`` computed by a Cholesky solve (kernel regression) instead of the
  eigendecomposition.
* Eigenvalues of the (regularised) train-train kernel below ``n·ε·λ_max`` (negative ones, and
  positive ones indistinguishable from 0 in double precision) are clamped to 0, with a
  ``RuntimeWarning`` naming the smallest eigenvalue and the condition number; modes with a zero
  eigenvalue do not move (the pseudo-inverse convention).
* Everything is computed in float64.
"""

from __future__ import annotations

import math
import numbers
import time
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _solvers
from .network import Kernel, Network, _parse_dtype, _parse_get, as_matrix

__all__ = [
    "Gaussian",
    "KernelRegression",
    "gp_inference",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "kernel_regression",
    "max_learning_rate",
]

ArrayLike = Any


class Gaussian(NamedTuple):
    """A ``(mean, covariance)`` pair, as neural-tangents' ``nt.predict.Gaussian``.

    ``mean`` has the shape of the outputs (``(m,)`` or ``(m, O)``, after any leading time axes);
    ``covariance`` the shape of the kernel (``(m, m)``, shared by the ``O`` outputs).
    """

    mean: np.ndarray
    covariance: np.ndarray


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _real(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {v}")
    if positive and v <= 0:
        raise ValueError(f"{name}: must be > 0, got {v}")
    if not positive and v < 0:
        raise ValueError(f"{name}: must be ≥ 0, got {v}")
    return v


def _float_array(name: str, value: Any) -> np.ndarray:
    if value is None:
        raise TypeError(f"{name}: expected an array, got None")
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got an array of dtype {a.dtype}; "
                        "convert it with np.asarray(..., dtype=float)")
    a = a.astype(np.float64, copy=False)
    finite = np.isfinite(a)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        where = f" (first at index {tuple(int(i) for i in bad)})" if a.ndim else ""
        raise ValueError(f"{name}: contains {int(a.size - finite.sum())} NaN or infinite values{where}; "
                         "remove those rows or impute them first")
    return a


def _targets(y: Any) -> np.ndarray:
    a = _float_array("y_train", y)
    if a.ndim not in (1, 2):
        raise ValueError(f"y_train: expected shape (n,) or (n, n_outputs), got {a.shape}")
    if a.size == 0:
        raise ValueError(f"y_train: is empty (shape {a.shape})")
    return a


def _matrix(name: str, k: Any, rows: int | None, cols: int | None) -> np.ndarray:
    a = _float_array(name, k)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D kernel matrix, got shape {a.shape}")
    if rows is not None and a.shape[0] != rows or cols is not None and a.shape[1] != cols:
        want = f"({'m' if rows is None else rows}, {'m' if cols is None else cols})"
        raise ValueError(f"{name}: expected shape {want}, got {a.shape}")
    return a


def _train_kernel(name: str, k: Any, n: int) -> np.ndarray:
    a = _float_array(name, k)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name}: expected a square (n, n) kernel matrix, got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{name}: is {a.shape[0]}×{a.shape[0]} but y_train has {n} rows; "
                         "the kernel must be computed on the training inputs")
    return a


def _times(t: Any) -> np.ndarray:
    a = np.asarray(t)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"t: expected a number or an array of numbers, got {type(t).__name__}")
    a = a.astype(np.float64)
    if np.isnan(a).any():
        raise ValueError("t: contains NaN; use t=None (or np.inf) for infinite time")
    if (a < 0).any():
        raise ValueError(f"t: training times must be ≥ 0, got min {a.min()}")
    return a


def _regularised(k: np.ndarray, diag_reg: float, absolute: bool) -> np.ndarray:
    """``k + diag_reg·I`` (``diag_reg`` times ``trace(k)/n`` unless ``absolute``)."""
    if diag_reg == 0:
        return k
    scale = diag_reg if absolute else diag_reg * float(np.trace(k)) / k.shape[0]
    out = k.copy()
    out[np.diag_indices_from(out)] += scale
    return out


_TUPLES: dict[tuple[str, ...], type] = {}


def _pack(out: dict[str, Any], names: tuple[str, ...], single: bool) -> Any:
    """One value for a string ``get``, else a ``Gaussians`` namedtuple in the order asked (NT's
    ``get_namedtuple('Gaussians')``)."""
    if single:
        return out[names[0]]
    if names not in _TUPLES:
        _TUPLES[names] = namedtuple("Gaussians", names)  # type: ignore[misc]
    return _TUPLES[names](*(out[g] for g in names))


# --------------------------------------------------------------------------------------------
# Symmetric solver: cached eigendecomposition and Cholesky factor
# --------------------------------------------------------------------------------------------


# The solver shared by every function here (and by kernel_regression's exact solver) lives in
# ntkrs._solvers: a Cholesky factor, or a clamped eigendecomposition when that fails.
_warn = _solvers.warn
_Symmetric = _solvers.Symmetric


def _rate(lam: np.ndarray, t: np.ndarray, size: int) -> np.ndarray:
    """``λ·t/N``, shape ``(T, n)``; 0 for ``λ = 0`` (a zero mode never moves, also at ``t = ∞``)."""
    with np.errstate(invalid="ignore"):
        return np.where(lam[None, :] > 0, lam[None, :] * t[:, None] / size, 0.0)


def _decay(lam: np.ndarray, t: np.ndarray, size: int) -> np.ndarray:
    """``1 − exp(−λ·t/N)`` (by ``-expm1``), shape ``(T, n)``; 0 for ``λ = 0``."""
    return -np.expm1(-_rate(lam, t, size))


def _decay_over_lam(lam: np.ndarray, t: np.ndarray, size: int) -> np.ndarray:
    """``(1 − exp(−λ·t/N))/λ``, shape ``(T, n)``; 0 for ``λ = 0``."""
    d = _decay(lam, t, size)
    return np.divide(d, lam[None, :], out=np.zeros_like(d), where=lam[None, :] > 0)


# --------------------------------------------------------------------------------------------
# Gradient descent on the MSE loss, one draw of the initial outputs
# --------------------------------------------------------------------------------------------


def gradient_descent_mse(
    k_train_train: ArrayLike,
    y_train: ArrayLike,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
) -> Callable[..., Any]:
    r"""Outputs of a linearised (infinitely wide) network trained by gradient flow on the MSE loss.

    With ``Θ`` the train-train kernel (plus the regulariser), ``N = y_train.size``, ``η`` the
    learning rate and ``r_0 = Y − f_0(X)``::

        f_t(X) = f_0(X) + (I − e^{−ηΘt/N}) r_0
        f_t(x) = f_0(x) + Θ(x, X) Θ⁻¹ (I − e^{−ηΘt/N}) r_0

    (equations (33)–(34) of ``docs/ntk-during-training.md``), computed in the eigenbasis of ``Θ``
    with ``-expm1``; the eigendecomposition is computed once, on the first finite ``t``, and
    cached, as is the Cholesky factor used for ``t=None``.

    Args:
        k_train_train: ``(n, n)`` kernel on the training inputs (usually the NTK).
        y_train: targets, ``(n,)`` or ``(n, O)``.
        learning_rate: ``η > 0``; times are in units of ``1/η`` (only ``η·t`` matters).
        diag_reg: ``≥ 0``, added to the diagonal, relative to ``trace(Θ)/n`` unless
            ``diag_reg_absolute_scale``.
        diag_reg_absolute_scale: use ``diag_reg`` as is.

    Returns:
        ``predict(t=None, fx_train_0=0., fx_test_0=0., k_test_train=None)``:

        * ``t``: scalar or array of times ``≥ 0`` (``np.inf`` allowed); ``None`` is ``t=∞`` by a
          Cholesky solve (then the training outputs are exactly ``y_train``, as in
          neural-tangents).
        * ``fx_train_0``: outputs at ``t=0`` on the training set, broadcastable to
          ``y_train.shape``; ``None`` to skip the training set (its residual is then ``Y``).
        * ``fx_test_0``: outputs at ``t=0`` on the test set, broadcastable to ``(m,) + y_train.shape[1:]``;
          ``None`` to skip the test set.
        * ``k_test_train``: ``(m, n)`` kernel between test and training inputs; test outputs are
          computed only when it is given.

        It returns ``fx_train_t``, or ``(fx_train_t, fx_test_t)`` when ``k_test_train`` is given,
        or ``fx_test_t`` alone when ``fx_train_0=None``; each has ``t``'s shape as leading axes.

    Raises:
        ValueError / TypeError: non-square or mismatched kernels, NaN/Inf kernels or targets,
            negative or NaN times, bad ``learning_rate``/``diag_reg`` (the message names the argument).
    """
    y = _targets(y_train)
    n = y.shape[0]
    k = _train_kernel("k_train_train", k_train_train, n)
    lr = _real("learning_rate", learning_rate, positive=True)
    reg = _real("diag_reg", diag_reg)
    sym = _Symmetric(_regularised(k, reg, bool(diag_reg_absolute_scale)), "k_train_train")
    size = y.size
    tail = y.shape[1:]

    def predict(t: ArrayLike | None = None, fx_train_0: ArrayLike | None = 0.0, fx_test_0: ArrayLike | None = 0.0,
                k_test_train: ArrayLike | None = None) -> Any:
        train = fx_train_0 is not None
        test = k_test_train is not None and fx_test_0 is not None
        if k_test_train is None and fx_test_0 is not None and not (np.ndim(fx_test_0) == 0 and fx_test_0 == 0):
            raise ValueError("fx_test_0: test-set predictions need k_test_train, the (m, n) test-train kernel")
        if not train and not test:
            raise ValueError("fx_train_0: is None and no test set is given (k_test_train), so there is "
                             "nothing to predict")
        f0 = None
        if train:
            f0 = _broadcast("fx_train_0", fx_train_0, y.shape)
        if test:
            ktd = _matrix("k_test_train", k_test_train, None, n)
            m = ktd.shape[0]
            g0 = _broadcast("fx_test_0", fx_test_0, (m, *tail))
        residual = (y if f0 is None else y - f0).reshape(n, -1)

        if t is None:
            out_train = y.copy() if train else None
            out_test = g0 + (ktd @ sym.solve(residual)).reshape(g0.shape) if test else None
        else:
            tt = _times(t) * lr
            shape = tt.shape
            lam, v = sym.eig()
            coef = v.T @ residual  # (n, O')
            flat = tt.reshape(-1)
            out_train = out_test = None
            if train:
                d = _decay(lam, flat, size)[:, :, None] * coef[None]  # (T, n, O')
                out_train = f0 + (v @ d).reshape(shape + y.shape)
            if test:
                d = _decay_over_lam(lam, flat, size)[:, :, None] * coef[None]
                out_test = g0 + ((ktd @ v) @ d).reshape(shape + g0.shape)
        if train and test:
            return out_train, out_test
        return out_train if train else out_test

    return predict


def _broadcast(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    a = _float_array(name, value)
    try:
        return np.broadcast_to(a, shape).astype(np.float64)
    except ValueError:
        raise ValueError(f"{name}: shape {a.shape} does not broadcast to the outputs' shape {shape}") from None


# --------------------------------------------------------------------------------------------
# Gaussian-process inference
# --------------------------------------------------------------------------------------------

_GP_GET = ("nngp", "ntk", "ntkgp")


def _component(k: Any, g: str, name: str) -> np.ndarray | None:
    """The ``g`` kernel of an array (any ``g``) or of a namedtuple with ``nngp``/``ntk`` fields."""
    if k is None:
        return None
    if hasattr(k, "_fields"):
        if not hasattr(k, g) or getattr(k, g) is None:
            raise ValueError(f"{name}: has no {g!r} kernel; compute it with get=('nngp', 'ntk')")
        return getattr(k, g)
    return k


def _has_both(k: Any) -> bool:
    return hasattr(k, "_fields") and getattr(k, "nngp", None) is not None and getattr(k, "ntk", None) is not None


def gp_inference(
    k_train_train: ArrayLike | Kernel,
    y_train: ArrayLike,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
) -> Callable[..., Any]:
    r"""Posterior of the NNGP, of the infinite ensemble trained to convergence ("ntk") and of the
    NTK-GP, as neural-tangents' ``nt.predict.gp_inference``.

    With ``K = k_train_train.nngp``, ``Θ = k_train_train.ntk`` (each plus its regulariser),
    test-train kernels ``K_x``, ``Θ_x`` and test-test ``K_xx``, ``Θ_xx``:

    * ``"nngp"``: mean ``K_x K⁻¹ Y``, covariance ``K_xx − K_x K⁻¹ K_xᵀ`` (exact Bayesian posterior);
    * ``"ntk"``: mean ``Θ_x Θ⁻¹ Y``, covariance
      ``K_xx + Θ_x Θ⁻¹ K Θ⁻¹ Θ_xᵀ − (Θ_x Θ⁻¹ K_xᵀ + K_x Θ⁻¹ Θ_xᵀ)`` (distribution over random
      initialisations of networks trained to ``t = ∞``; needs both kernels, the ``K`` in the
      middle unregularised);
    * ``"ntkgp"``: mean ``Θ_x Θ⁻¹ Y``, covariance ``Θ_xx − Θ_x Θ⁻¹ Θ_xᵀ``.

    Solves use a Cholesky factor of each regularised train-train kernel (``scipy.linalg.cho_factor``),
    computed once. A kernel that is not positive definite falls back to a pseudo-inverse with a
    ``RuntimeWarning``.

    Args:
        k_train_train: ``(n, n)`` array (one kernel, used for every ``get``) or a namedtuple
            ``Kernel(nngp, ntk)`` as returned by ``net.kernel(x_train, get=("nngp", "ntk"))``.
        y_train: ``(n,)`` or ``(n, O)``.
        diag_reg, diag_reg_absolute_scale: as in :func:`gradient_descent_mse`.

    Returns:
        ``predict(get=None, k_test_train=None, k_test_test=None)``. ``get`` is ``"nngp"``,
        ``"ntk"``, ``"ntkgp"`` or a tuple of them (``None``: ``("nngp", "ntk")``). ``k_test_train``
        (``(m, n)``, array or namedtuple) selects the test set; ``None`` predicts on the training
        set (``N(y_train, 0)``). With ``k_test_test`` (``(m, m)``, array or namedtuple; any non-None
        value such as ``True`` on the training set; the ``"nngp"`` and ``"ntk"`` covariances read its
        NNGP, ``"ntkgp"`` its NTK, and an array serves as either) each result is a :class:`Gaussian`
        ``(mean (m,)/(m, O), covariance (m, m))``, else the mean alone. A tuple ``get`` returns a
        namedtuple ``Gaussians`` with one field per name.
    """
    y = _targets(y_train)
    n = y.shape[0]
    reg = _real("diag_reg", diag_reg)
    absolute = bool(diag_reg_absolute_scale)
    named = hasattr(k_train_train, "_fields")
    if named:
        kdd = {g: (None if getattr(k_train_train, g, None) is None
                   else _train_kernel(f"k_train_train.{g}", getattr(k_train_train, g), n)) for g in ("nngp", "ntk")}
        if kdd["nngp"] is None and kdd["ntk"] is None:
            raise ValueError("k_train_train: a namedtuple needs an 'nngp' or an 'ntk' field")
        both = kdd["nngp"] is not None and kdd["ntk"] is not None
    else:
        a = _train_kernel("k_train_train", k_train_train, n)
        kdd = {"nngp": a, "ntk": a}
        both = False
    solvers: dict[str, _Symmetric] = {}

    def solver(g: str) -> _Symmetric:
        if g not in solvers:
            if kdd[g] is None:
                raise ValueError(f"k_train_train: has no {g!r} kernel; compute it with get=('nngp', 'ntk')")
            name = f"k_train_train.{g}" if named else "k_train_train"
            solvers[g] = _Symmetric(_regularised(kdd[g], reg, absolute), name)
        return solvers[g]

    def predict(get: str | Sequence[str] | None = None, k_test_train: Any = None, k_test_test: Any = None) -> Any:
        names, single = _parse_get(get, _GP_GET, ("nngp", "ntk"))
        out: dict[str, Any] = {}
        for g in names:
            base = "ntk" if g == "ntkgp" else g
            if k_test_train is None:
                mean = y.copy()
                out[g] = mean if k_test_test is None else Gaussian(mean, np.zeros((n, n)))
                continue
            ktd = _matrix(f"k_test_train.{base}" if hasattr(k_test_train, "_fields") else "k_test_train",
                          _component(k_test_train, base, "k_test_train"), None, n)
            m = ktd.shape[0]
            s = solver(base)
            mean = (ktd @ s.solve(y.reshape(n, -1))).reshape((m, *y.shape[1:]))
            if k_test_test is None:
                out[g] = mean
                continue
            if g == "ntk" and not (both and _has_both(k_test_train)):
                raise ValueError("k_test_test: the 'ntk' posterior covariance needs both kernels: pass "
                                 "k_train_train and k_test_train as Kernel(nngp, ntk) namedtuples "
                                 "(net.kernel(..., get=('nngp', 'ntk'))) and the test-test NNGP as k_test_test")
            init = "ntk" if g == "ntkgp" else "nngp"  # the kernel of the network at initialisation
            ktt = _matrix("k_test_test", _component(k_test_test, init, "k_test_test"), m, m)
            kx_init = _matrix("k_test_train", _component(k_test_train, init, "k_test_train"), m, n)
            if g in ("nngp", "ntkgp"):
                cov = ktt - ktd @ s.solve(kx_init.T)
            else:
                term1 = s.solve(ktd.T)  # Θ⁻¹ Θ_xᵀ, (n, m)
                term2 = ktd @ s.solve(kx_init.T)  # Θ_x Θ⁻¹ K_xᵀ, (m, m)
                cov = term1.T @ kdd["nngp"] @ term1 - term2 - term2.T + ktt
            out[g] = Gaussian(mean, cov)
        return _pack(out, names, single)

    return predict


# --------------------------------------------------------------------------------------------
# Kernel regression at scale
# --------------------------------------------------------------------------------------------


class KernelRegression(NamedTuple):
    """Result of :func:`kernel_regression`.

    ``mean``: predictions ``(m,)`` or ``(m, O)`` (the shape of ``y_train``'s rows); ``variance``:
    predictive variances ``(m,)``, shared by the ``O`` outputs, or ``None`` unless asked;
    ``solver``: ``"exact"`` or ``"nystrom"``, the one used; ``info``: a dict describing the solve
    (``n_centers``, ``dtype``, ``iterations``, ``residual``, ``converged``, ``condition``,
    ``eps`` (the absolute ridge), ``reason`` (why this solver), memory and timings in seconds).
    """

    mean: np.ndarray
    variance: np.ndarray | None
    solver: str
    info: dict[str, Any]


_REGRESSION_GET = ("nngp", "ntk", "ntkgp")
_SOLVER_NAMES = ("auto", "exact", "nystrom")


class _Options(NamedTuple):
    """Validated solver arguments shared by kernel_regression, the ensemble at t=None,
    NTKRegressor/NTKRidge and ntkrs.dask.kernel_regression."""

    solver: str
    reg: float
    absolute: bool
    n_centers: int | None
    dtype: np.dtype | None
    seed: int
    tol: float
    max_iter: int


def _integer_arg(name: str, value: Any, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if int(value) < low:
        raise ValueError(f"{name}: must be ≥ {low}, got {value}")
    return int(value)


def _options(n: int, solver: Any = "auto", diag_reg: Any = 1e-4, diag_reg_absolute_scale: Any = False,
             n_centers: Any = None, dtype: Any = None, seed: Any = 0, tol: Any = 1e-6, max_iter: Any = 100,
             solvers: Sequence[str] = _SOLVER_NAMES) -> _Options:
    if not isinstance(solver, str) or solver not in solvers:
        raise ValueError(f"solver: expected one of {', '.join(map(repr, solvers))}, got {solver!r}")
    reg = _real("diag_reg", diag_reg)
    m = None
    if n_centers is not None:
        m = _integer_arg("n_centers", n_centers, 1)
        if m > n:
            raise ValueError(f"n_centers: is {m} but there are only {n} training points; pass n_centers ≤ {n} "
                             f"(n_centers={n} is the exact solve)")
        if solver == "exact":
            raise ValueError("n_centers: applies to the Nyström solver; drop it or pass solver='nystrom' (or 'auto')")
    dt = None if dtype is None else _parse_dtype(dtype)
    tol_ = _real("tol", tol, positive=True)
    if tol_ >= 1:
        raise ValueError(f"tol: is a relative residual and must be < 1, got {tol_}")
    return _Options(solver, reg, bool(diag_reg_absolute_scale), m, dt, _integer_arg("seed", seed, 0), tol_,
                    _integer_arg("max_iter", max_iter, 1))


def _training_inputs(net: Any, x_train: ArrayLike, y_train: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: ``x`` float32 or float64 (float32 inputs are kept), ``y`` float64 ``(n,)``/``(n, O)``."""
    if not isinstance(net, Network):
        raise TypeError(f"net: expected an ntkrs Network (nk.serial(...) or nk.mlp(...)), got {type(net).__name__}")
    keep = getattr(x_train, "dtype", None) in (np.dtype(np.float32), np.dtype(np.float64))
    x = as_matrix(x_train, "x_train", np.dtype(x_train.dtype) if keep else np.dtype(np.float64))
    y = _targets(y_train)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y_train: has {y.shape[0]} rows but x_train has {x.shape[0]}; give one target row per input")
    return x, y


def _test_inputs(x_test: ArrayLike, x: np.ndarray, name: str = "x_test") -> np.ndarray:
    keep = getattr(x_test, "dtype", None) in (np.dtype(np.float32), np.dtype(np.float64))
    xt = as_matrix(x_test, name, np.dtype(x_test.dtype) if keep else np.dtype(np.float64))
    if xt.shape[1] != x.shape[1]:
        raise ValueError(f"{name}: has {xt.shape[1]} features but x_train has {x.shape[1]}")
    return xt


def _fit(net: Network, x: np.ndarray, y2: np.ndarray, base: str, opts: _Options, memory_limit: Any, progress: Any,
         variance: bool, m_test: int, what: str) -> tuple[_solvers.Fitted, _solvers.Progress]:
    """Plan and run the solve (the one code path behind every public entry point)."""
    limit = _solvers.resolve_memory_limit(memory_limit)
    plan = _solvers.plan(x.shape[0], x.shape[1], m_test, opts.solver, opts.n_centers, opts.dtype, limit, variance)
    extra = "" if plan.solver == "exact" else (
        f", {plan.n_stored} of {plan.n_blocks} blocks of {plan.block_rows} rows stored "
        f"({_solvers._fmt(plan.bytes_stored)})")
    _solvers.log.info("%s: %s solver, %s (%s; memory_limit %s%s)", what, plan.solver, plan.dtype.name, plan.reason,
                      _solvers._fmt(limit), extra)
    bar = _solvers.Progress(progress, what)
    try:
        fitted = _solvers.fit(net, x, y2, base, opts.reg, opts.absolute, plan, bar, opts.seed, opts.tol,
                              opts.max_iter, variance, m_test)
    except BaseException:
        bar.close()
        raise
    return fitted, bar


def kernel_regression(
    net: Network,
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_test: ArrayLike,
    get: str = "ntk",
    solver: str = "auto",
    diag_reg: float = 1e-4,
    diag_reg_absolute_scale: bool = False,
    n_centers: int | None = None,
    dtype: Any = None,
    memory_limit: int | str | None = None,
    progress: bool | Callable[[int, int], Any] = False,
    seed: int = 0,
    return_variance: bool = False,
    tol: float = 1e-6,
    max_iter: int = 100,
) -> KernelRegression:
    r"""Kernel (ridge) regression with a network's NNGP or NTK, from inputs to test predictions, for
    training sets of any size: the kernel is computed by the Rust core in blocks as the solve needs
    them, and the ``N × N`` training kernel is never stored unless it fits ``memory_limit``.

    The predictor is the ``t = ∞`` mean of :func:`gp_inference` / :func:`gradient_descent_mse_ensemble`,
    ``f(x) = k(x, X) (k(X, X) + ε·I)⁻¹ Y`` with ``ε = diag_reg·mean_i k(x_i, x_i)`` (or ``diag_reg``
    with ``diag_reg_absolute_scale``), equation (49) of ``docs/ntk-during-training.md``.

    Solvers:

    * ``"exact"``: the ``N × N`` kernel in memory and its Cholesky factor (in place, by tiles), in
      float64; or, with ``dtype=np.float32``, a float32 kernel and factor (half the memory) used as
      the preconditioner of conjugate gradients whose products recompute float64 kernel panels, so
      the result is the float64 solution to ``tol`` (iterative refinement). A kernel that is not
      numerically positive definite warns (condition number, smallest eigenvalue) and falls back to
      the pseudo-inverse.
    * ``"nystrom"``: Falkon (Rudi et al., 2017). ``n_centers`` centres ``C`` drawn uniformly without
      replacement from the training inputs (``seed``), ``f(x) = k(x, C) α`` with
      ``(K_nmᵀK_nm + ε K_mm) α = K_nmᵀ Y``, solved by conjugate gradients preconditioned with the
      Cholesky factors of ``K_mm`` and ``(N/M)·T·Tᵀ + εI`` (``M × M``, float64). The ``N × M``
      kernel between training points and centres is produced in row blocks: as many blocks as fit
      ``memory_limit`` are kept after the first pass, the others are recomputed by every iteration.
      ``n_centers=None`` takes ``min(N, 15,000)`` centres (fewer if the ``M × M`` factors would take
      more than half of ``memory_limit``); ``n_centers = N`` is the exact solution.
      **Stopping rule:** each output column stops when its preconditioned residual has fallen by
      ``tol``, ``√(r_kᵀP⁻¹r_k / bᵀP⁻¹b) ≤ tol`` (the residual of Falkon's preconditioned system), or
      after ``max_iter`` iterations with a ``RuntimeWarning`` (condition estimate from the CG
      coefficients, and the fix).
    * ``"auto"``: exact when ``N ≤ 20,000``, ``n_centers`` is not given (or is ``N``) and the exact
      solve fits ``memory_limit``; Nyström otherwise. The choice and the reason are logged
      (``logging.getLogger("ntkrs")``, level INFO) and returned in ``solver`` and ``info["reason"]``.

    Args:
        net: a :class:`ntkrs.Network`.
        x_train: ``(N, d)`` training inputs (float32 inputs are used as is for float32 kernels).
        y_train: ``(N,)`` or ``(N, O)`` targets, finite.
        x_test: ``(m, d)`` inputs to predict.
        get: the kernel: ``"ntk"`` (infinite ensemble trained to convergence), ``"nngp"`` (Bayesian
            posterior mean) or ``"ntkgp"`` (the NTK-GP; same mean as ``"ntk"``).
        solver: ``"auto"``, ``"exact"`` or ``"nystrom"``.
        diag_reg: ridge ``≥ 0``, relative to the mean diagonal of the training kernel unless
            ``diag_reg_absolute_scale``.
        n_centers: Nyström centres, ``1 ≤ n_centers ≤ N`` (``None``: see above).
        dtype: precision of the kernel blocks: ``None`` (exact: float64 when it fits, else float32
            with refinement; Nyström: float32 blocks, with float64 preconditioner and CG vectors),
            ``np.float32`` or ``np.float64``. Variances need float64.
        memory_limit: bytes the solve may allocate (int or a string such as ``"2GB"``); ``None``:
            8 GiB. Always capped at 80% of the memory the OS reports as available. The inputs are
            not counted. Too small for the chosen solver: ``MemoryError`` saying what is needed.
        progress: ``True`` for a tqdm bar over the whole solve (kernel blocks, CG iterations with
            their residual, test blocks), or a callable ``f(done, total)``; ``total`` starts with
            ``max_iter`` iterations and shrinks when CG converges.
        seed: the Nyström centres' random seed.
        return_variance: also return the predictive variances: ``"nngp"``: ``K_xx − K_x(K + εI)⁻¹K_xᵀ``,
            ``"ntkgp"``: the same with the NTK (both as :func:`gp_inference`); with Nyström, the
            variance of the Nyström GP (``K_xx − Q_xx + ε K_xm (K_mnK_nm + εK_mm)⁻¹ K_mx``, equal to
            the exact one when ``n_centers = N``; costs ``2·N·M²`` flops). ``get="ntk"``'s covariance
            (the ensemble's, which needs both kernels) is :func:`gp_inference`'s.
        tol, max_iter: conjugate gradients' stopping rule (Nyström, and exact in float32).

    Returns:
        :class:`KernelRegression` ``(mean, variance, solver, info)``.

    Raises:
        ValueError / TypeError: bad arguments (NaN or Inf in ``y_train``, mismatched lengths,
            ``n_centers > N``, ...), each naming the argument and the fix; a kernel that is not
            positive definite where no fallback fits in memory.
        MemoryError: ``memory_limit`` too small for the requested solver.
        KeyboardInterrupt: Ctrl-C, at any point: kernel blocks stop within a fraction of a second,
            factorisations between their tiles (an eigendecomposition fallback in progress finishes in
            the background).
    """
    x, y = _training_inputs(net, x_train, y_train)
    if not isinstance(get, str) or get not in _REGRESSION_GET:
        raise ValueError(f"get: expected one of {', '.join(map(repr, _REGRESSION_GET))}, got {get!r}")
    if not isinstance(return_variance, (bool, np.bool_)):
        raise TypeError(f"return_variance: expected True or False, got {return_variance!r}")
    opts = _options(x.shape[0], solver, diag_reg, diag_reg_absolute_scale, n_centers, dtype, seed, tol, max_iter)
    xt = _test_inputs(x_test, x)
    if return_variance:
        if get == "ntk":
            raise ValueError("return_variance: get='ntk' has the ensemble covariance, which needs both kernels: use "
                             "gp_inference(..., get='ntk') on problems that fit in memory, or get='ntkgp' (same mean, "
                             "NTK-GP variance) or get='nngp' here")
        if opts.dtype == np.float32:
            raise ValueError("return_variance: variances are differences of nearly equal numbers and need float64; "
                             "pass dtype=None or np.float64")
    base = "nngp" if get == "nngp" else "ntk"
    start = time.perf_counter()
    fitted, bar = _fit(net, x, y.reshape(y.shape[0], -1), base, opts, memory_limit, progress, bool(return_variance),
                       xt.shape[0], "kernel_regression")
    try:
        t0 = time.perf_counter()
        bar.add(-(-xt.shape[0] // fitted.block_rows))
        mean = fitted.predict(xt, bar).reshape((xt.shape[0], *y.shape[1:]))
        t1 = time.perf_counter()
        var = None
        if return_variance:
            var = fitted.posterior(xt, False)
        t2 = time.perf_counter()
    finally:
        bar.close()
    if not np.isfinite(mean).all() or (var is not None and not np.isfinite(var).all()):
        raise FloatingPointError(f"kernel_regression: non-finite predictions (ε = {fitted.eps:.3g}). {_solvers.FIX}")
    info = dict(fitted.info, predict_s=t1 - t0, variance_s=t2 - t1, total_s=time.perf_counter() - start)
    return KernelRegression(mean, var, fitted.solver, info)


# --------------------------------------------------------------------------------------------
# Infinite ensembles trained by gradient descent
# --------------------------------------------------------------------------------------------


def gradient_descent_mse_ensemble(
    net: Network,
    x_train: ArrayLike,
    y_train: ArrayLike,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    solver: str = "auto",
    n_centers: int | None = None,
    memory_limit: int | str | None = None,
) -> Callable[..., Any]:
    r"""Mean and covariance, over random initialisations, of infinitely wide networks trained by
    gradient flow on the MSE loss, as neural-tangents' ``nt.predict.gradient_descent_mse_ensemble``.

    With ``K`` the NNGP and ``Θ`` the NTK on the training set (each regularised by ``diag_reg``),
    ``D_t = I − e^{−ηΘt/N}`` (``N = y_train.size``) and test-train kernels ``K_x``, ``Θ_x``
    (equations (38)–(42) of ``docs/ntk-during-training.md``):

    * ``"ntk"`` (all layers trained): mean ``Θ_x Θ⁻¹ D_t Y``; covariance on a test set
      ``K_xx + Θ_x Θ⁻¹D_t K D_tΘ⁻¹ Θ_xᵀ − (Θ_x Θ⁻¹D_t K_xᵀ + transpose)``; on the training set
      ``e^{−ηΘt/N} K e^{−ηΘt/N}`` (``K`` unregularised, as in neural-tangents);
    * ``"nngp"`` (only the last layer trained, whose NTK is the NNGP): the same with ``Θ = K``,
      i.e. covariance ``K_xx − K_x K⁻¹ (I − e^{−2ηKt/N}) K_xᵀ`` on a test set and
      ``K e^{−2ηKt/N}`` on the training set.

    Kernels come from ``net.kernel`` and are computed once (train-train) or once per call.

    At ``t=None`` the solve is :func:`kernel_regression`'s: ``solver="auto"`` keeps the exact
    posterior (:func:`gp_inference`, both kernels in memory) up to ``N = 20,000`` training points
    when the two kernels fit ``memory_limit``, and uses the Nyström solver beyond (means, and the
    ``"nngp"`` covariance of the Nyström GP; the ``"ntk"`` ensemble covariance needs the exact
    solver). Finite ``t`` always uses the eigendecomposition of the full kernels.

    Args:
        net: a :class:`ntkrs.Network`.
        x_train: ``(n, d)`` training inputs.
        y_train: ``(n,)`` or ``(n, O)`` targets.
        learning_rate, diag_reg, diag_reg_absolute_scale: as in :func:`gradient_descent_mse`.
        solver, n_centers, memory_limit: the ``t=None`` solver, as in :func:`kernel_regression`
            (for its other settings, such as ``dtype``, ``tol`` or ``progress``, call
            :func:`kernel_regression` itself).

    Returns:
        ``predict(x_test=None, t=None, get=None, compute_cov=False)``: ``x_test`` ``(m, d)``, or
        ``None`` for the training set (neural-tangents' order is ``(t, x_test, ...)``: pass them by
        keyword when porting); ``t`` as in :func:`gradient_descent_mse` (``None``: ``t = ∞``, the
        :func:`gp_inference` posterior); ``get`` ``"nngp"``, ``"ntk"`` or a tuple (``None``: both).
        Each result is the mean (``t.shape + (m,) + y_train.shape[1:]``), or with ``compute_cov`` a
        :class:`Gaussian` whose covariance is ``t.shape + (m, m)``; a tuple ``get`` gives a namedtuple
        ``Gaussians``.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net: expected an ntkrs Network (nk.serial(...) or nk.mlp(...)), got {type(net).__name__}")
    x = as_matrix(x_train, "x_train", np.dtype(np.float64))
    y = _targets(y_train)
    n = y.shape[0]
    if x.shape[0] != n:
        raise ValueError(f"y_train: has {n} rows but x_train has {x.shape[0]}; give one target row per input")
    lr = _real("learning_rate", learning_rate, positive=True)
    reg = _real("diag_reg", diag_reg)
    absolute = bool(diag_reg_absolute_scale)
    opts = _options(n, solver, reg, absolute, n_centers, np.float64)  # float64 throughout, as everywhere here
    _solvers.resolve_memory_limit(memory_limit)  # validated now, resolved at each t=None call
    size = y.size
    y2 = y.reshape(n, -1)
    state: dict[str, Any] = {}

    def large(names: tuple[str, ...], compute_cov: bool, m_test: int) -> bool:
        """Whether ``t=None`` uses the Nyström solver (the exact one holds both kernels)."""
        if opts.solver == "exact":
            return False
        if compute_cov and "ntk" in names:
            if opts.solver == "nystrom":
                raise ValueError("compute_cov: the 'ntk' ensemble covariance needs both full kernels; pass "
                                 "solver='exact' (or 'auto'), or get='nngp'")
            return False
        limit = _solvers.resolve_memory_limit(memory_limit)
        return _solvers.plan(n, x.shape[1], m_test, opts.solver, opts.n_centers, opts.dtype, limit // 2,
                             compute_cov).solver == "nystrom"

    def nystrom(g: str, xt: np.ndarray, compute_cov: bool) -> Any:
        key = ("fit", g, compute_cov)
        if key not in state:
            state[key] = _fit(net, x, y2, g, opts, memory_limit, False, compute_cov, xt.shape[0],
                              "gradient_descent_mse_ensemble")[0]
        fitted = state[key]
        mean = fitted.predict(xt).reshape((xt.shape[0], *y.shape[1:]))
        return Gaussian(mean, fitted.posterior(xt, True)) if compute_cov else mean

    def train_kernels() -> Kernel:
        if "kdd" not in state:
            state["kdd"] = net.kernel(x, get=("nngp", "ntk"))
        return state["kdd"]

    def eig(g: str) -> tuple[np.ndarray, np.ndarray]:
        key = "eig_" + g
        if key not in state:
            state[key] = _Symmetric(_regularised(getattr(train_kernels(), g), reg, absolute), f"k_train_train.{g}")
        return state[key].eig()

    def inference() -> Callable[..., Any]:
        if "gp" not in state:
            state["gp"] = gp_inference(train_kernels(), y, reg, absolute)
        return state["gp"]

    def predict(x_test: ArrayLike | None = None, t: ArrayLike | None = None,
                get: str | Sequence[str] | None = None, compute_cov: bool = False) -> Any:
        names, single = _parse_get(get, ("nngp", "ntk"), ("nngp", "ntk"))
        if not isinstance(compute_cov, (bool, np.bool_)):
            raise TypeError(f"compute_cov: expected True or False, got {compute_cov!r}")
        tt = None if t is None else _times(t) * lr
        if tt is None and large(names, compute_cov, n if x_test is None else np.shape(x_test)[0]):
            got: dict[str, Any] = {}
            for g in names:
                if x_test is None:  # the training set at t = ∞: N(y_train, 0), as gp_inference
                    got[g] = y.copy() if not compute_cov else Gaussian(y.copy(), np.zeros((n, n)))
                else:
                    got[g] = nystrom(g, _test_inputs(x_test, x), compute_cov)
            return _pack(got, names, single)
        kdd = train_kernels()
        ktd = ktt = None
        if x_test is not None:
            xt = as_matrix(x_test, "x_test", np.dtype(np.float64))
            if xt.shape[1] != x.shape[1]:
                raise ValueError(f"x_test: has {xt.shape[1]} features but x_train has {x.shape[1]}")
            ktd = net.kernel(xt, x, get=("nngp", "ntk"))
            if compute_cov:
                ktt = net.kernel(xt, get="nngp")
        if tt is None:
            kt = ktt if ktt is not None else (True if compute_cov else None)
            return inference()(names[0] if single else names, ktd, kt)

        shape = tt.shape
        flat = tt.reshape(-1)
        m = n if ktd is None else ktd.nngp.shape[0]
        out: dict[str, Any] = {}
        for g in names:
            lam, v = eig(g)
            coef = v.T @ y2
            if ktd is None:
                mean = v @ (_decay(lam, flat, size)[:, :, None] * coef[None])
            else:
                kx = getattr(ktd, g)
                mean = (kx @ v) @ (_decay_over_lam(lam, flat, size)[:, :, None] * coef[None])
            mean = mean.reshape(shape + (m,) + y.shape[1:])
            if not compute_cov:
                out[g] = mean
                continue
            if ktd is None:
                if g == "nngp":
                    w = lam[None, :] * np.exp(-2 * _rate(lam, flat, size))
                    cov = (v[None] * w[:, None, :]) @ v.T
                else:
                    e = (v[None] * np.exp(-_rate(lam, flat, size))[:, None, :]) @ v.T
                    cov = e @ kdd.nngp @ e
            else:
                kx = getattr(ktd, g)
                kxv = kx @ v
                if g == "nngp":
                    cov = ktt[None] - (kxv[None] * _decay_over_lam(lam, 2 * flat, size)[:, None, :]) @ kxv.T
                else:
                    w = _decay_over_lam(lam, flat, size)  # (T, n)
                    term1 = (v[None] * w[:, None, :]) @ kxv.T  # Θ⁻¹D_t Θ_xᵀ, (T, n, m)
                    term2 = (kxv[None] * w[:, None, :]) @ (ktd.nngp @ v).T  # Θ_x Θ⁻¹D_t K_xᵀ, (T, m, m)
                    cov = np.swapaxes(term1, 1, 2) @ kdd.nngp @ term1 - term2 - np.swapaxes(term2, 1, 2) + ktt[None]
            out[g] = Gaussian(mean, cov.reshape(shape + (m, m)))
        return _pack(out, names, single)

    return predict


# --------------------------------------------------------------------------------------------
# Learning rate
# --------------------------------------------------------------------------------------------


def max_learning_rate(k_train_train: ArrayLike, y_train_size: int | None = None, momentum: float = 0.0,
                      eps: float = 1e-12) -> float:
    r"""Largest stable learning rate of full-batch gradient descent on ``1/(2N)·‖f − Y‖²`` for a
    linearised network with NTK ``k_train_train``, as neural-tangents' ``nt.predict.max_learning_rate``:
    ``2·(1 + momentum)·N / (λ_max + eps)``.

    A step ``r ← (I − η/N·Θ) r`` contracts every mode iff ``η < 2N/λ_max`` (equation (46) of
    ``docs/ntk-during-training.md``); with heavy-ball momentum the bound is ``(1 + momentum)`` times
    larger.

    Args:
        k_train_train: ``(n, n)`` NTK on the training inputs.
        y_train_size: ``N = y_train.size`` (``n·O``); ``None`` means ``n`` (one output).
        momentum: heavy-ball momentum in ``[0, 1)``.
        eps: added to ``λ_max`` to avoid dividing by 0.
    """
    import scipy.linalg

    k = _float_array("k_train_train", k_train_train)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0:
        raise ValueError(f"k_train_train: expected a square (n, n) kernel matrix, got shape {k.shape}")
    n = k.shape[0]
    if y_train_size is None:
        factor = n
    else:
        if isinstance(y_train_size, (bool, np.bool_)) or not isinstance(y_train_size, numbers.Integral):
            raise TypeError(f"y_train_size: expected an integer (y_train.size), got {y_train_size!r}")
        factor = int(y_train_size)
        if factor < n:
            raise ValueError(f"y_train_size: is {factor}, fewer than the kernel's {n} rows; pass y_train.size")
    mom = _real("momentum", momentum)
    if mom >= 1:
        raise ValueError(f"momentum: must be in [0, 1), got {mom}")
    e = _real("eps", eps)
    lam_max = float(scipy.linalg.eigvalsh(k, subset_by_index=[n - 1, n - 1])[-1])
    return 2.0 * (1.0 + mom) * factor / (lam_max + e)
