"""Reproductions of published experiments (computation only; plotting imports matplotlib on demand).

:func:`jacot_fig1` reproduces Figure 1 of Jacot, Gabriel and Hongler (2018), "Neural tangent
kernel: convergence and generalization in neural networks": the empirical NTK
``Θ((1, 0), (cos γ, sin γ))`` of depth-4 ReLU networks (``β = 0.1``, NTK parameterisation) of
two widths, for several random initialisations, at initialisation and after 200 steps of
full-batch gradient descent (learning rate 1) on ``f*(x) = x₁x₂``, against the infinite-width
limit. The command-line script ``examples/jacot_fig1.py`` runs it at full scale and saves the
figure; :func:`plot_jacot_fig1` draws it (needs matplotlib); ``docs/ntk-during-training.md``
("Reproducing Jacot et al. Fig. 1") discusses the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .layers import Dense, Relu
from .network import Network, serial

__all__ = ["JacotFig1", "jacot_fig1", "jacot_network", "plot_jacot_fig1"]


def jacot_network(width: int, depth: int = 4, W_std: float = 1.0, b_std: float = 0.1) -> Network:
    """Jacot et al.'s network: ``depth`` Dense layers (``2 → n → … → n → 1`` for depth 4) with ReLU
    between them, NTK parameterisation, weights ``N(0, 1)`` scaled by ``W_std/√n_in``, biases
    scaled by ``b_std`` (their β)."""
    layers: list[Any] = []
    for _ in range(depth - 1):
        layers += [Dense(width, W_std=W_std, b_std=b_std), Relu()]
    layers.append(Dense(1, W_std=W_std, b_std=b_std))
    return serial(*layers)


@dataclass
class JacotFig1:
    """The arrays of :func:`jacot_fig1` (W widths, I initialisations, A angles).

    Attributes:
        widths: ``(W,)`` hidden widths n.
        gammas: ``(A,)`` angles γ; ``x0 = (1, 0)``, ``xs[a] = (cos γ_a, sin γ_a)``.
        theta_limit: ``(A,)`` the infinite-width NTK ``Θ_∞(x0, xs)`` (``net.kernel``, float64).
        theta_init: ``(W, I, A)`` empirical NTK ``Θ(x0, xs)`` at initialisation.
        theta_trained: ``(W, I, A)`` the same after ``steps`` gradient-descent steps.
        loss: ``(W, I, 2)`` training loss ``‖f − y‖²/(2N)`` before and after training.
        x_train, y_train: ``(N, 2)`` training inputs and ``(N,)`` targets ``x₁x₂``.
        seeds: ``(W, I)`` the ``net.init`` seed of each network.
        seconds: ``(W,)`` wall time spent on each width.
        config: the arguments of the run.
    """

    widths: np.ndarray
    gammas: np.ndarray
    x0: np.ndarray
    xs: np.ndarray
    theta_limit: np.ndarray
    theta_init: np.ndarray
    theta_trained: np.ndarray
    loss: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    seeds: np.ndarray
    seconds: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def concat(cls, results: Sequence[JacotFig1]) -> JacotFig1:
        """Join runs with the same angles, training set and settings: runs of different widths (e.g.
        a slow wide run with fewer initialisations), and runs of the same width with other
        initialisations (``first_init``), whose curves are appended. Widths keep their first order;
        missing initialisations are NaN and ignored by :meth:`summary` and :func:`plot_jacot_fig1`."""
        free = ("widths", "inits", "first_init")
        first = results[0]
        for r in results[1:]:
            if {k: v for k, v in r.config.items() if k not in free} != \
                    {k: v for k, v in first.config.items() if k not in free}:
                raise ValueError(f"concat: the runs differ in their settings: {first.config} vs {r.config}")
            if not (np.array_equal(r.gammas, first.gammas) and np.array_equal(r.x_train, first.x_train)):
                raise ValueError("concat: the runs differ in their angles or training set")
        rows: dict[int, list[tuple[np.ndarray, ...]]] = {}
        seconds: dict[int, float] = {}
        for r in results:
            for w, width in enumerate(r.widths):
                ok = np.isfinite(r.loss[w, :, 0])
                got = rows.setdefault(int(width), [])
                for k in np.flatnonzero(ok):
                    if any(s == r.seeds[w, k] for *_, s in got):
                        raise ValueError(f"concat: width {width} has initialisation seed {r.seeds[w, k]} twice")
                    got.append((r.theta_init[w, k], r.theta_trained[w, k], r.loss[w, k], r.seeds[w, k]))
                seconds[int(width)] = seconds.get(int(width), 0.0) + float(r.seconds[w])
        widths = list(rows)
        inits = max(len(v) for v in rows.values())
        theta_init = np.full((len(widths), inits, len(first.gammas)), np.nan)
        theta_trained = np.full_like(theta_init, np.nan)
        loss = np.full((len(widths), inits, 2), np.nan)
        seeds = np.full((len(widths), inits), -1, dtype=np.int64)
        for w, width in enumerate(widths):
            for k, (t0, t1, lo, sd) in enumerate(rows[width]):
                theta_init[w, k], theta_trained[w, k], loss[w, k], seeds[w, k] = t0, t1, lo, sd
        config = {k: v for k, v in first.config.items() if k != "first_init"}
        config["widths"] = widths
        config["inits"] = [len(rows[w]) for w in widths]
        return cls(np.array(widths, dtype=np.int64), first.gammas, first.x0, first.xs, first.theta_limit, theta_init,
                   theta_trained, loss, first.x_train, first.y_train, seeds,
                   np.array([seconds[w] for w in widths]), config)

    def summary(self) -> dict[str, Any]:
        """Per width, relative L² distances over the γ grid (``‖a − b‖₂ / ‖Θ_∞‖₂``), averaged over the
        initialisations:

        * ``dev_init``: ``Θ_0`` from the limit; ``dev_trained``: ``Θ_T`` from the limit;
        * ``moved``: ``Θ_T`` from ``Θ_0`` (how far the kernel moved during training);
        * ``dev_mean_init``: the mean curve over initialisations from the limit (the bias plus
          fluctuations / √I);
        * ``loss_init``, ``loss_trained``: mean training loss before and after;
        * ``inits``: the number of initialisations;
        * ``seconds``: wall time for the width.
        """
        ref = np.linalg.norm(self.theta_limit)

        def rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.linalg.norm(a - b, axis=-1) / ref

        out: dict[str, Any] = {}
        for w, width in enumerate(self.widths):
            ok = np.isfinite(self.loss[w, :, 0])  # initialisations that ran (see concat)
            t0, t1, loss = self.theta_init[w, ok], self.theta_trained[w, ok], self.loss[w, ok]
            out[int(width)] = {
                "inits": int(ok.sum()),
                "dev_init": float(rel(t0, self.theta_limit).mean()),
                "dev_trained": float(rel(t1, self.theta_limit).mean()),
                "moved": float(rel(t1, t0).mean()),
                "dev_mean_init": float(rel(t0.mean(axis=0), self.theta_limit)),
                "loss_init": float(loss[:, 0].mean()),
                "loss_trained": float(loss[:, 1].mean()),
                "seconds": float(self.seconds[w]),
            }
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything as JSON-ready lists (NaN as ``null``), with the :meth:`summary` under ``"summary"``."""
        def lists(v: Any) -> Any:
            a = np.asarray(v)
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                return np.where(np.isfinite(a), a, None).tolist()
            return a.tolist()

        arrays = {k: lists(v) for k, v in vars(self).items() if k != "config"}
        return {"config": dict(self.config), "summary": {str(k): v for k, v in self.summary().items()}, **arrays}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JacotFig1:
        """The inverse of :meth:`to_json` (``data`` as ``json.load`` returns it)."""
        def arr(name: str, dtype: Any = np.float64) -> np.ndarray:
            return np.array(data[name], dtype=dtype)  # None (a missing initialisation) becomes NaN

        return cls(arr("widths", np.int64), arr("gammas"), arr("x0"), arr("xs"), arr("theta_limit"),
                   arr("theta_init"), arr("theta_trained"), arr("loss"), arr("x_train"), arr("y_train"),
                   arr("seeds", np.int64), arr("seconds"), dict(data["config"]))


def jacot_fig1(widths: Sequence[int] = (500, 10_000), inits: int = 10, steps: int = 200,
               learning_rate: float = 1.0, n_train: int = 4, angles: int = 101, dtype: Any = np.float32,
               seed: int = 0, depth: int = 4, W_std: float = 1.0, b_std: float = 0.1, first_init: int = 0,
               log: Callable[[str], Any] | None = None) -> JacotFig1:
    """Jacot et al. (2018), Fig. 1: the empirical NTK on the unit circle at initialisation and
    after training, for several widths and initialisations, and its infinite-width limit.

    For each width ``n`` and initialisation ``k``: ``params = net.init(2, seed + first_init + k)``; ``Θ_0 =
    net.empirical_ntk(params, x0, xs)``; ``net.train`` runs ``steps`` steps of full-batch gradient
    descent with ``learning_rate`` on ``1/(2N)·‖f(X) − f*(X)‖²``, ``f*(x) = x₁x₂``; ``Θ_T`` is the
    empirical NTK of the trained parameters. As in the paper, the ``n_train`` training inputs are
    drawn from ``N(0, I₂)`` (``numpy.random.default_rng(seed)``), the same for every network.

    Args:
        widths: hidden widths n (all ``depth − 1`` hidden layers have width n).
        inits: initialisations per width.
        steps, learning_rate: gradient descent.
        n_train: number of training points.
        angles: number of γ in ``[−π, π]``, equally spaced (odd: includes γ = 0).
        dtype: ``np.float32`` (default; parameters, training and empirical kernels in single
            precision) or ``np.float64``. The limit is always float64.
        seed: base seed for the training set and the initialisations.
        depth, W_std, b_std: the network (:func:`jacot_network`).
        first_init: index of the first initialisation (to add initialisations to an earlier run with
            :meth:`JacotFig1.concat`).
        log: called with a line of progress per network (e.g. ``print``).

    Returns:
        A :class:`JacotFig1`; ``.summary()`` gives the deviations from the limit.
    """
    dt = np.dtype(dtype)
    widths_a = np.array([int(w) for w in widths], dtype=np.int64)
    gammas = np.linspace(-np.pi, np.pi, int(angles))
    x0 = np.array([[1.0, 0.0]])
    xs = np.stack([np.cos(gammas), np.sin(gammas)], axis=1)
    rng = np.random.default_rng(seed)
    x_train = rng.standard_normal((int(n_train), 2))
    y_train = x_train[:, 0] * x_train[:, 1]

    theta_limit = jacot_network(1, depth, W_std, b_std).kernel(x0, xs, get="ntk")[0]
    shape = (len(widths_a), int(inits))
    theta_init = np.empty(shape + (len(gammas),))
    theta_trained = np.empty_like(theta_init)
    loss = np.empty(shape + (2,))
    seeds = np.empty(shape, dtype=np.int64)
    seconds = np.empty(len(widths_a))
    for w, width in enumerate(widths_a):
        net = jacot_network(int(width), depth, W_std, b_std)
        start = time.perf_counter()
        for k in range(int(inits)):
            t = time.perf_counter()
            seeds[w, k] = seed + first_init + k
            params = net.init(2, int(seeds[w, k]), dtype=dt)
            theta_init[w, k] = net.empirical_ntk(params, x0, xs)[0]
            traj = net.train(params, x_train, y_train, learning_rate, steps, record_every=max(1, steps))
            del params
            theta_trained[w, k] = net.empirical_ntk(traj.params, x0, xs)[0]
            loss[w, k] = traj.loss_train[0], traj.loss_train[-1]
            del traj
            if log is not None:
                log(f"n={width} init {k + 1}/{inits}: loss {loss[w, k, 0]:.4g} -> {loss[w, k, 1]:.4g}, "
                    f"{time.perf_counter() - t:.1f} s")
        seconds[w] = time.perf_counter() - start
    config = {"widths": widths_a.tolist(), "inits": int(inits), "steps": int(steps),
              "learning_rate": float(learning_rate), "n_train": int(n_train), "angles": int(angles),
              "dtype": dt.name, "seed": int(seed), "depth": int(depth), "W_std": float(W_std),
              "b_std": float(b_std), "first_init": int(first_init)}
    return JacotFig1(widths_a, gammas, x0[0], xs, theta_limit, theta_init, theta_trained, loss, x_train,
                     y_train, seeds, seconds, config)


def plot_jacot_fig1(result: JacotFig1, path: Any = None, *, axes: Any = None, dpi: int = 150) -> Any:
    """Draw the figure: one panel per width with the curves at initialisation (solid) and after
    training (dashed), one colour per initialisation, and the infinite-width limit (thick black).

    Needs matplotlib (imported here, not at package import). Saves to ``path`` when given.
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    nw = len(result.widths)
    if axes is None:
        fig, axes = plt.subplots(1, nw, figsize=(5.2 * nw, 4.2), sharey=True, squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(axes)
        fig = axes[0].figure
    steps = result.config.get("steps", "T")
    colours = plt.get_cmap("tab10")
    summary = result.summary()
    for w, ax in enumerate(axes):
        width = int(result.widths[w])
        s = summary[width]
        for k in range(s["inits"]):
            c = colours(k % 10)
            ax.plot(result.gammas, result.theta_init[w, k], color=c, lw=0.9, alpha=0.8,
                    label="t = 0" if k == 0 else None)
            ax.plot(result.gammas, result.theta_trained[w, k], color=c, lw=0.9, ls="--", alpha=0.8,
                    label=f"t = {steps}" if k == 0 else None)
        ax.plot(result.gammas, result.theta_limit, color="black", lw=2.5, label="n = ∞ (limit)")
        plural = "s" if s["inits"] != 1 else ""
        ax.set_title(f"n = {width}: {s['inits']} initialisation{plural}\n"
                     f"dev. from limit {s['dev_init']:.3f} (t = 0), {s['dev_trained']:.3f} (t = {steps}); "
                     f"moved {s['moved']:.3f}", fontsize=9)
        ax.set_xlabel("γ")
        ax.set_xlim(result.gammas[0], result.gammas[-1])
        ax.set_xticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], ["−π", "−π/2", "0", "π/2", "π"])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Θ((1, 0), (cos γ, sin γ))")
    axes[0].legend(fontsize=8, loc="upper left")
    c = result.config
    fig.suptitle(f"Empirical NTK of depth-{c.get('depth', 4)} ReLU networks (β = {c.get('b_std', 0.1)}) at "
                 f"initialisation and after {steps} GD steps (η = {c.get('learning_rate', 1.0)}) on f*(x) = x₁x₂",
                 fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig
