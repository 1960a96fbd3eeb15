"""scikit-learn kernels and an estimator built on ntkrs (``pip install scikit-learn``).

* :class:`NTK` and :class:`NNGP`: ``sklearn.gaussian_process.kernels.Kernel`` subclasses, for
  ``GaussianProcessRegressor``, ``KernelRidge(kernel=...)``, or ``SVC(kernel="precomputed")`` with
  ``K = NTK(...)(X_train)``. They compose with ``WhiteKernel``/``ConstantKernel`` through ``+``/``*``.
* :class:`NTKRegressor`: the mean prediction of an infinite ensemble of infinitely wide networks
  trained by gradient descent on the MSE loss for time ``t`` (:mod:`ntkrs.predict`).
* :class:`NTKRidge`: kernel ridge regression with a network's NTK or NNGP for training sets of any
  size, by the solvers of :func:`ntkrs.predict.kernel_regression` (exact Cholesky, or Nyström
  centres and preconditioned conjugate gradients), under a memory limit.

Images (convolutional networks): scikit-learn passes 2-D ``(n_samples, n_features)`` arrays, so give
the network its example shape, ``net.with_input_shape((H, W, C))``, and pass the images flattened
(``X.reshape(len(X), -1)``, C order); the kernels' ``W_std``/``b_std`` set every ``Dense`` and ``Conv``.

This module is the only one in ntkrs that imports scikit-learn; ``import ntkrs`` does not load it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.gaussian_process.kernels import Hyperparameter
from sklearn.gaussian_process.kernels import Kernel as _SkKernel
from sklearn.utils.validation import check_is_fitted

from . import _solvers
from . import predict as _predict
from .layers import Conv, Dense
from .network import Network, map_layers, mlp

try:  # scikit-learn ≥ 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - scikit-learn 1.3–1.5

    def _validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


__all__ = ["NNGP", "NTK", "NTKRegressor", "NTKRidge", "default_network"]


def default_network() -> Network:
    """The network used when ``net=None``: ``nk.mlp(depth=2, width=512, activation="relu")``, two
    hidden ReLU layers (its ``W_std``/``b_std`` are replaced by the kernel's hyperparameters)."""
    return mlp(depth=2, width=512, activation="relu", W_std=1.5, b_std=0.05)


def _with_stds(net: Network | None, W_std: float, b_std: float) -> Network:
    """``net`` with every :class:`Dense` and :class:`Conv` given ``W_std`` and ``b_std`` (widths, filters,
    strides, padding, parameterization and the network's ``input_shape`` kept)."""
    template = default_network() if net is None else net
    if not isinstance(template, Network):
        raise TypeError(f"net: expected an ntkrs Network (nk.serial(...) or nk.mlp(...)) or None, "
                        f"got {type(template).__name__}")

    def with_stds(layer: Any) -> Any:
        if isinstance(layer, Dense):
            return Dense(layer.out_dim, W_std, b_std, layer.parameterization)
        if isinstance(layer, Conv):
            return Conv(layer.out_chan, layer.filter_shape, layer.strides, layer.padding, W_std, b_std,
                        parameterization=layer.parameterization)
        return layer

    return map_layers(template, with_stds)


class _NetworkKernel(_SkKernel):
    _get = ""

    def __init__(self, net: Network | None = None, W_std: float = 1.5, b_std: float = 0.05,
                 W_std_bounds: tuple[float, float] | str = (1e-2, 1e2),
                 b_std_bounds: tuple[float, float] | str = (1e-5, 1e2)) -> None:
        self.net = net
        self.W_std = W_std
        self.b_std = b_std
        self.W_std_bounds = W_std_bounds
        self.b_std_bounds = b_std_bounds

    @property
    def hyperparameter_W_std(self) -> Hyperparameter:
        return Hyperparameter("W_std", "numeric", self.W_std_bounds)

    @property
    def hyperparameter_b_std(self) -> Hyperparameter:
        return Hyperparameter("b_std", "numeric", self.b_std_bounds)

    def network(self) -> Network:
        """The network whose kernel this is: ``net`` with every Dense's ``W_std``, ``b_std`` set."""
        return _with_stds(self.net, float(self.W_std), float(self.b_std))

    def _kernel(self, X: Any, Y: Any, W_std: float, b_std: float) -> np.ndarray:
        return _with_stds(self.net, W_std, b_std).kernel(X, Y, get=self._get)

    def __call__(self, X: Any, Y: Any = None, eval_gradient: bool = False) -> Any:
        """Kernel matrix ``k(X, Y)`` of shape ``(n_X, n_Y)`` (``Y=None``: ``k(X, X)``); with
        ``eval_gradient=True`` (only for ``Y=None``) also its gradient with respect to the
        log-hyperparameters that are not fixed, shape ``(n_X, n_X, n_free)`` (order: W_std, b_std).

        The gradient ``∂K/∂log s = s·∂K/∂s`` is taken by the fourth-order central difference
        ``[K(−2h) − 8K(−h) + 8K(h) − K(2h)]/(12h)`` in ``log s`` with ``h = 5e-4`` (four extra
        kernel evaluations per free hyperparameter). Its relative error is about
        ``(2L·h)⁴/30 + 1e-12`` for closed-form activations (``L`` Dense layers: 1e-11 for ``L = 4``,
        since ``K`` grows like ``W^{2L}``) and about 1e-5 for the numerically integrated ones (Tanh,
        ..., whose tables are accurate to about 1e-8)."""
        X = np.atleast_2d(X)
        if Y is not None:
            Y = np.atleast_2d(Y)
        if eval_gradient and Y is not None:
            raise ValueError("Gradient can only be evaluated when Y is None.")
        W, b = float(self.W_std), float(self.b_std)
        K = self._kernel(X, Y, W, b)
        if not eval_gradient:
            return K
        grads = []
        h = 5e-4
        for name, fixed in (("W", self.hyperparameter_W_std.fixed), ("b", self.hyperparameter_b_std.fixed)):
            if fixed:
                continue
            ks = []
            for step in (-2, -1, 1, 2):
                f = np.exp(step * h)
                ks.append(self._kernel(X, None, W * f, b) if name == "W" else self._kernel(X, None, W, b * f))
            grads.append((ks[0] - 8 * ks[1] + 8 * ks[2] - ks[3]) / (12 * h))
        grad = np.stack(grads, axis=-1) if grads else np.empty((*K.shape, 0))
        return K, grad

    def diag(self, X: Any) -> np.ndarray:
        """``k(x_i, x_i)`` for every row, shape ``(n_X,)``, in ``O(n_X)`` (``diagonal=True``)."""
        return self.network().kernel(np.atleast_2d(X), get=self._get, diagonal=True)

    def is_stationary(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        a, b = self.get_params(), other.get_params()  # type: ignore[attr-defined]
        return repr(a.pop("net")) == repr(b.pop("net")) and all(np.all(a[k] == b[k]) for k in a)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        # the network as used: the template with this kernel's W_std, b_std on every Dense
        net = "" if self.net is None else f", net={self.network()!r}"
        return f"{type(self).__name__}(W_std={self.W_std:.3g}, b_std={self.b_std:.3g}{net})"


class NTK(_NetworkKernel):
    """The infinite-width neural tangent kernel of a network, as a scikit-learn kernel.

    Args:
        net: an ntkrs Network used as a template (``None``: :func:`default_network`, two hidden
            ReLU layers). Its depth, activations and parameterization are kept; ``W_std`` and
            ``b_std`` replace those of **every** :class:`~ntkrs.Dense` (also one built without a
            bias).
        W_std, b_std: hyperparameters (> 0), optimised on a log scale by ``GaussianProcessRegressor``.
        W_std_bounds, b_std_bounds: ``(low, high)`` or ``"fixed"``.

    Inputs are arrays ``(n_samples, n_features)``; the kernel's input covariance is ``x·x'/d``, so
    standardise features first.
    """

    _get = "ntk"


class NNGP(_NetworkKernel):
    """The infinite-width NNGP kernel (the output covariance at initialisation) of a network, as a
    scikit-learn kernel; arguments as :class:`NTK`."""

    _get = "nngp"


def _network_or_default(net: Any) -> Network:
    if net is None:
        return default_network()
    if not isinstance(net, Network):
        raise TypeError(f"net: expected an ntkrs Network or None, got {type(net).__name__}")
    return net


def _fit_ridge(estimator: Any, net: Network, X: np.ndarray, y: np.ndarray, get: str, diag_reg: float,
               solver: str = "auto", n_centers: Any = None, dtype: Any = None, memory_limit: Any = None,
               seed: Any = 0, tol: Any = 1e-6, max_iter: Any = 100, progress: Any = False) -> None:
    """Kernel ridge regression through :func:`ntkrs.predict.kernel_regression`'s solvers; sets
    ``centers_``, ``dual_coef_``, ``solver_``, ``n_iter_`` and ``fit_info_``."""
    if get not in ("ntk", "nngp"):
        raise ValueError(f"get: expected 'ntk' or 'nngp', got {get!r}")
    opts = _predict._options(X.shape[0], solver, diag_reg, False, n_centers, dtype, seed, tol, max_iter)
    y2 = y.reshape(y.shape[0], -1)
    fitted, bar = _predict._fit(net, X, y2, get, opts, memory_limit, progress, False, 0, type(estimator).__name__)
    bar.close()
    estimator.centers_ = fitted.centres
    estimator.dual_coef_ = fitted.dual_coef if y.ndim == 2 else fitted.dual_coef[:, 0]
    estimator.solver_ = fitted.solver
    estimator.n_iter_ = max(1, int(fitted.info.get("iterations", 0)))  # a direct solve counts as one
    estimator.fit_info_ = fitted.info


def _predict_ridge(net: Network, X: np.ndarray, centers: np.ndarray, coef: np.ndarray, get: str) -> np.ndarray:
    """``k(X, centers) @ coef`` in float64 row blocks of at most 128 MB."""
    c2 = coef.reshape(coef.shape[0], -1)
    rows = max(_solvers.MIN_ROWS, _solvers.BLOCK_BYTES // max(1, centers.shape[0] * 8))
    out = _solvers.predict_rows(_solvers.kernel_fn(net, get), X, centers, c2, rows)
    return out if coef.ndim == 2 else out[:, 0]


class _RegressorTags:
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"multioutput": True}


class NTKRegressor(_RegressorTags, RegressorMixin, BaseEstimator):
    """Mean prediction of an infinite ensemble of infinitely wide networks trained by gradient descent
    on the MSE loss for time ``t`` (in steps of ``learning_rate``), starting from outputs 0 on average.

    ``predict(X) = k(X, X_train) · α_t`` with ``α_t = Θ⁻¹(I − e^{−ηΘt/N}) Y`` computed at ``fit``
    (:func:`ntkrs.predict.gradient_descent_mse`); ``t=None`` is kernel (ridge) regression
    ``k(X, X_train)(Θ + diag_reg·trace(Θ)/n·I)⁻¹ Y``, solved as :func:`ntkrs.predict.kernel_regression`
    with ``solver="auto"`` does (exact up to 20,000 training points, Nyström beyond; for control of
    that solver use :class:`NTKRidge`).

    Args:
        net: an ntkrs Network (``None``: :func:`default_network`), used as is.
        t: training time ``≥ 0`` or ``None`` (infinite).
        learning_rate: ``η > 0``.
        diag_reg: ``≥ 0``, relative to the mean diagonal of the train-train kernel.
        get: ``"ntk"`` (all layers trained) or ``"nngp"`` (only the last layer trained).

    Attributes:
        X_train_: the inputs the predictor expands over: the training inputs (or, when ``t=None``
            picked the Nyström solver, its centres); dual_coef_ (``α_t``, shape ``(n,)`` or
            ``(n, O)``, one row per row of ``X_train_``), n_features_in_.
    """

    def __init__(self, net: Network | None = None, t: float | None = None, learning_rate: float = 1.0,
                 diag_reg: float = 1e-4, get: str = "ntk") -> None:
        self.net = net
        self.t = t
        self.learning_rate = learning_rate
        self.diag_reg = diag_reg
        self.get = get

    def _network(self) -> Network:
        return _network_or_default(self.net)

    def fit(self, X: Any, y: Any) -> NTKRegressor:
        """Compute the train-train kernel and ``α_t``. ``X``: ``(n, d)``; ``y``: ``(n,)`` or ``(n, O)``."""
        if self.get not in ("ntk", "nngp"):
            raise ValueError(f"get: expected 'ntk' or 'nngp', got {self.get!r}")
        X, y = _validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        net = self._network()
        _predict._real("learning_rate", self.learning_rate, positive=True)
        if self.t is None:
            _fit_ridge(self, net, X, y, self.get, self.diag_reg, dtype=np.float64)
            self.X_train_ = self.centers_
            del self.centers_
            return self
        k = net.kernel(X, get=self.get)
        fn = _predict.gradient_descent_mse(k, y, learning_rate=self.learning_rate, diag_reg=self.diag_reg)
        # Test predictions from f0 = 0 are k(X, X_train) @ α_t: read α_t off with k_test_train = I.
        self.dual_coef_ = fn(self.t, None, 0.0, np.eye(X.shape[0]))
        self.X_train_ = X
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Mean outputs at time ``t``, shape ``(m,)`` or ``(m, O)`` as ``y`` at ``fit``."""
        check_is_fitted(self, "dual_coef_")
        X = _validate_data(self, X, reset=False, dtype=np.float64)
        return _predict_ridge(self._network(), X, self.X_train_, self.dual_coef_, self.get)


class NTKRidge(_RegressorTags, RegressorMixin, BaseEstimator):
    """Kernel ridge regression with the NTK or NNGP of any ntkrs network, for training sets of any
    size: ``predict(X) = k(X, C) @ dual_coef_`` with the solvers of
    :func:`ntkrs.predict.kernel_regression`.

    * ``solver="exact"``: ``C`` = the training inputs, ``dual_coef_ = (K + ε·I)⁻¹ y`` by Cholesky
      (the same as :class:`NTKRegressor` with ``t=None``);
    * ``solver="nystrom"``: ``C`` = ``n_centers`` training inputs drawn with ``random_state``,
      ``dual_coef_`` from Falkon's preconditioned conjugate gradients, kernel blocks computed as
      needed within ``memory_limit``;
    * ``solver="auto"``: exact up to 20,000 training points when it fits ``memory_limit``.

    ``ε = diag_reg · mean_i k(x_i, x_i)``. Inputs are ``(n, d)`` arrays; the kernel's input
    covariance is ``x·x'/d``, so standardise features first.

    Args:
        net: an ntkrs Network (``None``: :func:`default_network`), used as is.
        get: ``"ntk"`` or ``"nngp"``.
        diag_reg: ridge ``≥ 0`` relative to the mean diagonal of the training kernel.
        solver, n_centers, dtype, memory_limit, tol, max_iter, progress: as in
            :func:`ntkrs.predict.kernel_regression`.
        random_state: integer seed of the Nyström centres.

    Attributes:
        centers_: ``(M, d)`` inputs the predictor expands over (all training inputs for the exact
            solver); dual_coef_: ``(M,)`` or ``(M, O)``;
        solver_: ``"exact"`` or ``"nystrom"``; n_iter_: conjugate-gradient iterations (1 for a
        direct Cholesky solve); fit_info_: the solve's description (``kernel_regression``'s ``info``);
        n_features_in_.
    """

    def __init__(self, net: Network | None = None, get: str = "ntk", diag_reg: float = 1e-4, solver: str = "auto",
                 n_centers: int | None = None, dtype: Any = None, memory_limit: int | str | None = None,
                 tol: float = 1e-6, max_iter: int = 100, random_state: int = 0, progress: bool = False) -> None:
        self.net = net
        self.get = get
        self.diag_reg = diag_reg
        self.solver = solver
        self.n_centers = n_centers
        self.dtype = dtype
        self.memory_limit = memory_limit
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.progress = progress

    def fit(self, X: Any, y: Any) -> NTKRidge:
        """Solve for ``dual_coef_``. ``X``: ``(n, d)``; ``y``: ``(n,)`` or ``(n, O)``."""
        X, y = _validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32])
        _fit_ridge(self, _network_or_default(self.net), X, y, self.get, self.diag_reg, self.solver, self.n_centers,
                   self.dtype, self.memory_limit, self.random_state, self.tol, self.max_iter, self.progress)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions, shape ``(m,)`` or ``(m, O)`` as ``y`` at ``fit``."""
        check_is_fitted(self, "dual_coef_")
        X = _validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return _predict_ridge(_network_or_default(self.net), X, self.centers_, self.dual_coef_, self.get)
