"""``TrainingExplorer``: gradient-descent dynamics of finite networks against the infinite-width (linearised)
ensemble, on a 1-D regression task."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as W
import numpy as np

from .. import predict, stax
from . import datasets
from ._base import Dashboard, sticky_limits
from .activations import ACTIVATIONS, make_activation
from .kernel_explorer import _STYLE, _slider

__all__ = ["TrainingExplorer", "log_times", "train_recorded"]

WIDTHS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
"""The widths the width slider offers."""


def log_times(max_steps: int, per_decade: int = 10) -> np.ndarray:
    """``0``, then round steps spaced about logarithmically up to ``max_steps`` (``1, 2, 3, 4, 5, 6, 8,
    10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, …`` for ``per_decade=10``; ``1, 2, 3, 5, 7, 10, 20, 30, 50,
    70, …`` for 4 or fewer), and ``max_steps`` itself: the times a :class:`TrainingExplorer` records and
    its slider offers."""
    if max_steps < 1:
        raise ValueError(f"max_steps: must be at least 1, got {max_steps}")
    mantissas = (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8) if per_decade > 4 else (1, 2, 3, 5, 7)
    steps = {0, int(max_steps)}
    scale = 1
    while scale <= max_steps:
        steps.update(int(np.rint(m * scale)) for m in mantissas if m * scale <= max_steps)
        scale *= 10
    return np.array(sorted(steps), dtype=np.int64)


def train_recorded(net: stax.Network, params: stax.Params, x: np.ndarray, y: np.ndarray, learning_rate: float,
                   times: Sequence[int], *, x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
                   progress: Callable[[int, int], object] | None = None) -> stax.Trajectory:
    """One gradient-descent run of ``net.train`` from ``params``, recorded at the increasing steps ``times``
    (starting at 0) instead of every ``record_every`` steps: ``net.train`` continues segment by segment
    from the last parameters, each segment recording its two ends. The run is the same as one
    ``net.train(params, x, y, learning_rate, steps=times[-1], ...)`` call (the same steps in the same
    order: the records are bit-identical), but log-spaced records cost as many test-set evaluations as
    there are records, not as there are steps.

    Returns a :class:`ntkrs.stax.Trajectory` with ``steps = times``."""
    times = np.asarray(times, dtype=np.int64)
    if times.ndim != 1 or times.size < 1 or times[0] != 0 or np.any(np.diff(times) <= 0):
        raise ValueError(f"times: expected increasing steps starting at 0, got {times!r}")
    parts: list[stax.Trajectory] = []
    p = params
    for a, b in zip(times[:-1], times[1:], strict=True):
        seg = net.train(p, x, y, learning_rate, int(b - a), record_every=int(b - a), x_test=x_test, y_test=y_test)
        parts.append(seg)
        p = seg.params
        if progress is not None:
            progress(int(b), int(times[-1]))
    if not parts:  # times == [0]
        parts.append(net.train(p, x, y, learning_rate, 0, x_test=x_test, y_test=y_test))

    def join(field: str) -> np.ndarray | None:
        arrays = [getattr(s, field) for s in parts]
        if arrays[0] is None:
            return None
        return np.concatenate([arrays[0][:1]] + [a[1:] for a in arrays])  # segment ends recorded once

    return stax.Trajectory(steps=times.copy(), f_train=join("f_train"), f_test=join("f_test"),
                           loss_train=join("loss_train"), loss_test=join("loss_test"), ntk_train=None,
                           params=parts[-1].params, learning_rate=float(learning_rate))


class TrainingExplorer(Dashboard):
    """Finite networks trained by full-batch gradient descent against the infinite-width ensemble.

    The task (:func:`ntkrs.widgets.datasets.sin_regression`): ``n_train`` noisy samples of ``sin`` on
    ``[−π, π]``, tested on ``n_test`` points of the noiseless ``sin``. The network is
    ``nk.mlp(depth, width, activation, W_std, b_std)`` trained on ``1/(2n)·‖f − y‖²`` with learning rate
    ``η = lr_fraction · max_learning_rate`` (``ntkrs.predict.max_learning_rate`` of the analytic NTK).

    Panels: (1) at the slider's time ``t`` (in steps): the linearised (NTK) ensemble's mean prediction
    with its ±2σ band over random initialisations (``predict.gradient_descent_mse_ensemble(net, x, y, η)``
    with ``get="ntk", compute_cov=True``), and ``n_nets`` finite networks (``net.init(1, seed=k)``,
    ``k = 0, …``) trained for ``t`` steps; (2) the losses against time (train solid, test dashed): each
    finite network's, and the ensemble's expected loss ``(‖mean − y‖² + tr cov)/(2n)``, with a line at
    ``t``.

    The networks are trained once up to ``max_steps``, recorded at the slider's log-spaced times
    (:func:`train_recorded`), and the ensemble is evaluated at all of them at once; moving the time slider
    only indexes the records. Changing ``width`` or ``lr_fraction`` retrains (about a second per network
    at the defaults, progress bar); raising ``n_nets`` trains only the new networks.

    Controls (names for :meth:`set`): ``time`` (a recorded step, see ``data["times"]``), ``width`` (one
    of :data:`WIDTHS`), ``n_nets``, ``lr_fraction``.

    ``data`` holds ``x_train``, ``y_train`` (``(n, 1)``), ``x_test``, ``y_test`` (``(m, 1)``), ``times``
    (``(R,)``), ``index`` and ``t`` (the slider's record and time), ``learning_rate``,
    ``max_learning_rate``, ``trajectories`` (one :class:`ntkrs.stax.Trajectory` per network, recorded at
    ``times``), ``f_test`` (``(K, R, m)``), ``loss_train``, ``loss_test`` (``(K, R)``), ``ens_mean``,
    ``ens_std`` (``(R, m)``), ``ens_loss_train``, ``ens_loss_test`` (``(R,)``); at time ``t``: ``nets``
    (``(K, m)``), ``mean``, ``lower``, ``upper`` (``mean ∓ 2σ``, ``(m,)``); and ``network``.

    Example::

        te = TrainingExplorer()
        te                                   # the widget, in a notebook
        te.set(time=100, width=2048)         # or from Python (time: one of te.data["times"])
        te.data["mean"], te.data["nets"]

    Args:
        time, width, n_nets, lr_fraction: initial control values (``time=None``: the last record).
        depth: the initial number of hidden layers (the ``depth`` control, 1 to ``max(4, depth)``).
        activation, W_std, b_std: the network (fixed for the dashboard's life).
        n_train, n_test, noise, seed: the task.
        max_steps, per_decade: the time axis: ``log_times(max_steps, per_decade)``.
        max_nets: the largest ``n_nets`` the slider offers.
        figsize, dpi: figure size in inches and resolution.
    """

    def __init__(self, time: int | None = None, width: int = 512, n_nets: int = 5, lr_fraction: float = 0.5, *,
                 activation: str = "erf", depth: int = 1, W_std: float = 1.5, b_std: float = 0.05,
                 n_train: int = 5, n_test: int = 100, noise: float = 0.1, seed: int = 0, max_steps: int = 3000,
                 per_decade: int = 10, max_nets: int = 20, figsize: tuple[float, float] = (12.0, 4.0),
                 dpi: int = 80) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: unknown name {activation!r}; use one of {sorted(ACTIVATIONS)}")
        if width not in WIDTHS:
            raise ValueError(f"width: {width!r} is not one of {list(WIDTHS)}")
        self.activation = make_activation(activation)
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
            raise ValueError(f"depth: expected a positive integer, got {depth!r}")
        self.W_std, self.b_std = float(W_std), float(b_std)
        self.max_nets = int(max_nets)
        times = log_times(int(max_steps), per_decade)
        x_train, y_train, x_test, y_test = datasets.sin_regression(n_train, n_test, noise, seed)
        controls: dict[str, W.ValueWidget] = {
            "time": W.SelectionSlider(options=[(str(int(t)), int(t)) for t in times],
                                      value=int(times[-1] if time is None else time), description="time (steps)",
                                      continuous_update=True, style={"description_width": "90px"},
                                      layout=W.Layout(width="600px")),
            "width": W.SelectionSlider(options=list(WIDTHS), value=width, description="width",
                                       continuous_update=False, style=dict(_STYLE), layout=W.Layout(width="300px")),
            "n_nets": _slider(W.IntSlider, value=n_nets, min=1, max=self.max_nets, description="networks"),
            "lr_fraction": _slider(W.FloatSlider, value=lr_fraction, min=0.05, max=1.0, step=0.05,
                                   description="η/η_max"),
            "depth": _slider(W.IntSlider, value=int(depth), min=1, max=max(4, int(depth)), description="depth"),
        }
        controls["n_nets"].continuous_update = False
        controls["lr_fraction"].continuous_update = False
        controls["depth"].continuous_update = False
        super().__init__(controls, [["time"], ["width", "n_nets", "lr_fraction", "depth"]], figsize, dpi)
        self.data.update(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, times=times)
        self._kernels: dict[int, np.ndarray] = {}  # analytic NTK on the training inputs, per depth
        self._ensemble_key: tuple | None = None
        self._nets_key: tuple | None = None
        self._trajectories: dict[int, stax.Trajectory] = {}
        self._version = 0
        self._setup_axes()
        self.update(raise_errors=True)

    # ---- computation ----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """The number of hidden layers (the ``depth`` control)."""
        return int(self.controls["depth"].value)

    def network(self, width: int | None = None) -> stax.Network:
        """The network at ``width`` (default: the ``width`` control) and the ``depth`` control's depth."""
        w = self.controls["width"].value if width is None else int(width)
        return stax.mlp(self.depth, w, self.activation, W_std=self.W_std, b_std=self.b_std, out_dim=1)

    @property
    def _kernel(self) -> np.ndarray:
        """The analytic NTK on the training inputs at the current depth (width-independent in the NTK
        parameterization)."""
        if self.depth not in self._kernels:
            self._kernels[self.depth] = self.network().kernel(self.data["x_train"], get="ntk")
        return self._kernels[self.depth]

    @property
    def max_learning_rate(self) -> float:
        """``predict.max_learning_rate`` of the analytic NTK on the training inputs."""
        return predict.max_learning_rate(self._kernel, self.data["y_train"].size)

    def compute(self, report: Callable[[float], None]) -> None:
        s, d = self.state, self.data
        times = d["times"]
        lr = s["lr_fraction"] * self.max_learning_rate
        changed = False
        if (s["lr_fraction"], s["depth"]) != self._ensemble_key:
            ens = predict.gradient_descent_mse_ensemble(self.network(), d["x_train"], d["y_train"], lr)
            test = ens(d["x_test"], t=times, get="ntk", compute_cov=True)
            train = ens(None, t=times, get="ntk", compute_cov=True)
            n, m = d["y_train"].size, d["y_test"].size
            var = np.clip(np.diagonal(test.covariance, axis1=-2, axis2=-1), 0.0, None)  # (R, m)
            d.update(
                ens_mean=test.mean[..., 0], ens_std=np.sqrt(var),
                ens_loss_train=(np.sum((train.mean - d["y_train"]) ** 2, axis=(1, 2))
                                + np.trace(train.covariance, axis1=1, axis2=2)) / (2 * n),
                ens_loss_test=(np.sum((test.mean - d["y_test"]) ** 2, axis=(1, 2))
                               + np.trace(test.covariance, axis1=1, axis2=2)) / (2 * m),
                learning_rate=lr, max_learning_rate=self.max_learning_rate)
            self._ensemble_key = (s["lr_fraction"], s["depth"])
            changed = True
        key = (s["width"], s["lr_fraction"], s["depth"])
        if key != self._nets_key:
            self._trajectories = {}
            self._nets_key = key
        missing = [k for k in range(s["n_nets"]) if k not in self._trajectories]
        if missing:
            net = self.network()
            for i, k in enumerate(missing):
                def progress(done: int, total: int, i: int = i) -> None:
                    report((i + done / max(total, 1)) / len(missing))

                self._trajectories[k] = train_recorded(net, net.init(1, seed=k), d["x_train"], d["y_train"], lr,
                                                       times, x_test=d["x_test"], y_test=d["y_test"],
                                                       progress=progress)
        trajs = [self._trajectories[k] for k in range(s["n_nets"])]
        if changed or missing or len(trajs) != len(d.get("trajectories", ())) or d.get("width") != s["width"]:
            d.update(trajectories=trajs, f_test=np.array([tr.f_test[..., 0] for tr in trajs]),
                     loss_train=np.array([tr.loss_train for tr in trajs]),
                     loss_test=np.array([tr.loss_test for tr in trajs]), width=s["width"], network=self.network())
            self._version += 1
        report(1.0)
        i = int(np.searchsorted(times, s["time"]))
        d.update(index=i, t=int(times[i]), nets=d["f_test"][:, i], mean=d["ens_mean"][i],
                 lower=d["ens_mean"][i] - 2 * d["ens_std"][i], upper=d["ens_mean"][i] + 2 * d["ens_std"][i])

    # ---- drawing --------------------------------------------------------------------------------

    def _setup_axes(self) -> None:
        fig = self.figure
        d = self.data
        self._title = fig.suptitle("", fontsize=10)
        self.ax_f, self.ax_l = fig.subplots(1, 2)
        fig.subplots_adjust(left=0.055, right=0.985, bottom=0.13, top=0.86, wspace=0.18)
        x = d["x_test"][:, 0]
        self.ax_f.plot(x, d["y_test"][:, 0], color="0.55", ls=":", lw=1.2, label=r"$\sin x$")
        self._band = self.ax_f.fill_between(x, np.zeros_like(x), np.zeros_like(x), color="C0", alpha=0.2, lw=0,
                                            label=r"ensemble $\pm 2\sigma$")
        (self._mean,) = self.ax_f.plot([], [], color="C0", lw=2.0, label="NTK ensemble mean")
        self.ax_f.set_title(" ", fontsize=10)
        self._nets = [self.ax_f.plot([], [], color="C1", lw=0.9, alpha=0.8,
                                     label="trained networks" if i == 0 else None)[0] for i in range(self.max_nets)]
        self.ax_f.plot(d["x_train"][:, 0], d["y_train"][:, 0], "o", color="k", ms=5, zorder=5, label="training data")
        self.ax_f.set(xlim=(x[0], x[-1]), xlabel="$x$", ylabel="$f(x)$")
        self.ax_f.legend(loc="upper left", fontsize=8, ncol=2)
        self.ax_l.set(xscale="symlog", yscale="log", xlabel="time $t$ (steps)", ylabel="loss",
                      title="loss: train (solid), test (dashed)")
        self.ax_l.set_xscale("symlog", linthresh=1.0)
        self.ax_l.title.set_fontsize(10)
        self._loss_lines: list = []
        self._vline = self.ax_l.axvline(0.0, color="k", lw=0.8)
        for ax in (self.ax_f, self.ax_l):
            ax.grid(alpha=0.3)
        self._drawn_version = -1
        self._flim: tuple[float, float] | None = None

    def _draw_losses(self) -> None:
        d = self.data
        for line in self._loss_lines:
            line.remove()
        t = d["times"]
        lines = []
        for k in range(len(d["trajectories"])):
            lines += self.ax_l.plot(t, d["loss_train"][k], color="C1", lw=0.8, alpha=0.7,
                                    label="networks" if k == 0 else None)
            lines += self.ax_l.plot(t, d["loss_test"][k], color="C1", lw=0.8, alpha=0.7, ls="--")
        lines += self.ax_l.plot(t, d["ens_loss_train"], color="C0", lw=2.0, label="NTK ensemble (expected)")
        lines += self.ax_l.plot(t, d["ens_loss_test"], color="C0", lw=2.0, ls="--")
        self._loss_lines = lines
        self.ax_l.legend(handles=lines[:1] + [lines[-2]], loc="lower left", fontsize=8)
        values = np.concatenate([d["loss_train"].ravel(), d["loss_test"].ravel(), d["ens_loss_train"],
                                 d["ens_loss_test"]])
        values = values[np.isfinite(values) & (values > 0)]
        if values.size:
            self.ax_l.set_ylim(values.min() / 1.5, values.max() * 1.5)
        self.ax_l.set_xlim(0, t[-1] * 1.05)

    def draw(self) -> None:
        d, s = self.data, self.state
        if self._drawn_version != self._version:
            self._draw_losses()
            self._drawn_version = self._version
        x = d["x_test"][:, 0]
        for k, line in enumerate(self._nets):
            line.set_data((x, d["nets"][k]) if k < len(d["nets"]) else ([], []))
        self._mean.set_data(x, d["mean"])
        # Limits that stay put while the curves fit them (and fill half of them), room for the legend on top.
        f = np.concatenate([d["nets"].ravel(), d["lower"], d["upper"], d["y_train"].ravel(), d["y_test"].ravel()])
        f = f[np.isfinite(f)]
        lo, hi = float(f.min()), float(f.max())
        self._flim = sticky_limits(self._flim, lo, hi + 0.35 * (hi - lo), pad=0.05, fill=0.5)
        self.ax_f.set_ylim(self._flim)
        self._band.set_verts([np.concatenate([np.stack([x, d["lower"]], 1), np.stack([x[::-1], d["upper"][::-1]], 1)])])
        self._vline.set_xdata([d["t"], d["t"]])
        self._title.set_text(
            f"{type(self.activation).__name__}, depth {self.depth}, width {s['width']}, W_std={self.W_std:.2f}, "
            f"b_std={self.b_std:.2f}; η = {s['lr_fraction']:.2f}·η_max = {d['learning_rate']:.4g}")
        i = d["index"]
        self.ax_f.set_title(f"t = {d['t']} steps: train loss {d['loss_train'][:, i].mean():.3g} (networks' mean), "
                            f"{d['ens_loss_train'][i]:.3g} (ensemble)", fontsize=10)

    def static_key(self) -> tuple:
        return (self._version, self._flim)

    def dynamic_artists(self) -> list:
        return [self._band, self._mean, *self._nets, self._vline, self.ax_f.title]

    def describe(self) -> str:
        d = self.data
        return (f"<small>t = {d['t']} steps: test loss {d['loss_test'][:, d['index']].mean():.3g} (networks), "
                f"{d['ens_loss_test'][d['index']]:.3g} (ensemble) · updated in {1e3 * self.timings[-1]:.0f} ms"
                "</small>")

    def __repr__(self) -> str:
        return f"TrainingExplorer({', '.join(f'{k}={v!r}' for k, v in self.state.items())})"
