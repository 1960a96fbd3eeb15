"""``ConvergenceExplorer``: empirical NTKs of finite networks converging to the analytic limit as the width
grows (Jacot, Gabriel & Hongler 2018, Fig. 1)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import ipywidgets as W
import numpy as np

from .. import stax
from ._base import Dashboard, sticky_limits
from .activations import ACTIVATIONS, make_activation
from .kernel_explorer import _STYLE, _configure_param, _network_controls, _slider

__all__ = ["ConvergenceExplorer", "relative_deviation"]

WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
"""The widths the width slider offers."""

_X0 = np.array([[1.0, 0.0]])


def relative_deviation(theta: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """``‖Θ − Θ_∞‖ / ‖Θ_∞‖`` over the last axis (the angles): the relative deviation of each finite-net
    curve in ``theta`` (``(..., A)``) from the limit ``(A,)``."""
    return np.linalg.norm(theta - limit, axis=-1) / np.linalg.norm(limit)


class ConvergenceExplorer(Dashboard):
    """The empirical NTK of finite networks at initialisation against its infinite-width limit.

    As in Jacot et al. (2018, Fig. 1): inputs on the unit circle (``d = 2``), ``x₀ = (1, 0)`` and
    ``x(γ) = (cos γ, sin γ)`` for ``γ ∈ [−π, π]``. Panels: (1) ``Θ(x₀, x(γ))`` of ``n_inits`` networks
    ``nk.mlp(depth, width, activation, W_std, b_std)`` initialised with ``net.init(2, seed=k)``,
    ``k = 0, …, n_inits − 1`` (thin), their mean (dashed) and the analytic limit ``net.kernel`` (black);
    (2) the mean relative deviation ``‖Θ − Θ_∞‖/‖Θ_∞‖`` (over the angles) against the width, log-log,
    over a ladder of widths (``ladder_inits`` initialisations each), with a ``∝ 1/√width`` line fitted
    through it, and the current width's value (star, over its ``n_inits`` curves).

    Empirical NTKs are cached per network and seed, so moving ``width`` back or ``n_inits`` down costs
    nothing; the ladder is recomputed only when the network (activation, parameter, depth, ``W_std``,
    ``b_std``) changes, with the progress bar when that takes over a second.

    Controls (names for :meth:`set`): ``activation``, ``param``, ``depth``, ``W_std``, ``b_std`` (the
    network), ``width`` (one of :data:`WIDTHS`), ``n_inits``.

    ``data`` holds ``gamma`` (``(A,)``), ``x`` (``(A, 2)``), ``limit`` (``(A,)``), ``curves``
    (``(n_inits, A)``), ``mean`` (``(A,)``), ``deviations`` (``(n_inits,)``, each curve's relative
    deviation), ``error`` (their mean), ``widths`` (the ladder), ``errors`` (mean relative deviation at
    each ladder width), ``errors_sem`` (its standard error), ``reference`` (the fitted ``c/√width`` at
    the ladder widths), ``reference_c`` and ``network``.

    Example::

        ce = ConvergenceExplorer()
        ce                                # the widget, in a notebook
        ce.set(width=4096, n_inits=10)    # or from Python
        ce.data["errors"], ce.data["error"]

    Args:
        activation, param, depth, W_std, b_std, width, n_inits: initial control values.
        n_angles: angles ``γ`` in ``[−π, π]``.
        ladder: the widths of the error-versus-width panel.
        ladder_inits: initialisations per ladder width (seeds ``0, …, ladder_inits − 1``).
        max_inits: the largest ``n_inits`` the slider offers.
        figsize, dpi: figure size in inches and resolution.
    """

    def __init__(self, activation: str = "relu", param: float | None = None, depth: int = 3, W_std: float = 1.5,
                 b_std: float = 0.05, width: int = 256, n_inits: int = 5, *, n_angles: int = 64,
                 ladder: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024), ladder_inits: int = 16,
                 max_inits: int = 20, figsize: tuple[float, float] = (12.0, 3.8), dpi: int = 80) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: unknown name {activation!r}; use one of {sorted(ACTIVATIONS)}")
        if width not in WIDTHS:
            raise ValueError(f"width: {width!r} is not one of {list(WIDTHS)}")
        self.n_angles = int(n_angles)
        self.ladder = tuple(sorted(int(w) for w in ladder))
        if len(self.ladder) < 2 or self.ladder[0] < 1:
            raise ValueError(f"ladder: give at least two positive widths, got {ladder!r}")
        self.ladder_inits = int(ladder_inits)
        if self.ladder_inits < 1:
            raise ValueError(f"ladder_inits: must be at least 1, got {ladder_inits!r}")
        self.max_inits = int(max_inits)
        # The network controls recompute the ladder (about a second): update on release, not while dragging.
        controls: dict[str, W.ValueWidget] = {
            **_network_controls(activation, param, depth, 10, W_std, b_std),
            "width": W.SelectionSlider(options=list(WIDTHS), value=width, description="width",
                                       continuous_update=True, style=dict(_STYLE), layout=W.Layout(width="300px")),
            "n_inits": _slider(W.IntSlider, value=n_inits, min=1, max=self.max_inits, description="inits"),
        }
        for name in ("param", "depth", "W_std", "b_std"):
            controls[name].continuous_update = False
        rows = [["activation", "param", "depth"], ["W_std", "b_std"], ["width", "n_inits"]]
        super().__init__(controls, rows, figsize, dpi)
        self._network_key: tuple | None = None
        self._cache: dict[tuple[int, int], np.ndarray] = {}  # (width, seed) -> Θ(x₀, x(γ)) for the network
        self._setup_axes()
        self.update(raise_errors=True)

    def on_control(self, name: str) -> None:
        if name == "activation":
            _configure_param(self.controls["param"], self.controls["activation"].value, None)

    # ---- computation ----------------------------------------------------------------------------

    def network(self, width: int | None = None) -> stax.Network:
        """The network the controls describe, at ``width`` (default: the ``width`` control)."""
        s = self.state
        act = make_activation(s["activation"], s["param"] if ACTIVATIONS[s["activation"]].param else None)
        return stax.mlp(s["depth"], s["width"] if width is None else int(width), act, W_std=s["W_std"],
                        b_std=s["b_std"], out_dim=1)

    def empirical(self, width: int, seed: int) -> np.ndarray:
        """``Θ(x₀, x(γ))`` of ``network(width)`` at ``init(2, seed)`` (cached), shape ``(A,)``."""
        key = (int(width), int(seed))
        if key not in self._cache:
            net = self.network(width)
            self._cache[key] = net.empirical_ntk(net.init(2, seed=seed), _X0, self.data["x"])[0]
        return self._cache[key]

    def _ladder_ntks(self, report: Callable[[float], None]) -> None:
        """Every (width, seed) of the ladder into the cache, one per core, widest first (the core releases
        the GIL); progress by cost (∝ width²) reported from this thread."""
        jobs = sorted(((w, k) for w in self.ladder for k in range(self.ladder_inits)), key=lambda j: -j[0])
        total = float(sum(w * w for w, _ in jobs))
        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
            futures = {pool.submit(self.empirical, w, k): w * w for w, k in jobs}
            pending, done = set(futures), 0.0
            while pending:
                finished, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                for f in finished:
                    f.result()  # errors surface here
                    done += futures[f]
                report(0.9 * done / total)

    def compute(self, report: Callable[[float], None]) -> None:
        s = self.state
        if "gamma" not in self.data:
            gamma = np.linspace(-np.pi, np.pi, self.n_angles)
            self.data.update(gamma=gamma, x=np.stack([np.cos(gamma), np.sin(gamma)], axis=1))
        key = (s["activation"], s["param"], s["depth"], s["W_std"], s["b_std"])
        if key != self._network_key:
            self._cache.clear()
            self._network_key = None  # stays unset if the ladder fails part-way
            limit = self.network().kernel(_X0, self.data["x"], get="ntk")[0]
            self.data["limit"] = limit
            self._ladder_ntks(report)
            errors, sem = [], []
            for w in self.ladder:
                dev = relative_deviation(np.array([self.empirical(w, k) for k in range(self.ladder_inits)]), limit)
                errors.append(dev.mean())
                sem.append(dev.std(ddof=1) / np.sqrt(dev.size) if dev.size > 1 else 0.0)
            errors_a = np.array(errors)
            widths = np.array(self.ladder, dtype=float)
            ok = np.isfinite(errors_a) & (errors_a > 0)
            c_ref = float(np.exp(np.mean(np.log(errors_a[ok]) + 0.5 * np.log(widths[ok])))) if ok.any() else np.nan
            self.data.update(widths=np.array(self.ladder), errors=errors_a, errors_sem=np.array(sem),
                             reference=c_ref / np.sqrt(widths), reference_c=c_ref)
            self._network_key = key
        curves = np.array([self.empirical(s["width"], k) for k in range(s["n_inits"])])
        report(1.0)
        deviations = relative_deviation(curves, self.data["limit"])
        self.data.update(curves=curves, mean=curves.mean(axis=0), deviations=deviations,
                         error=float(deviations.mean()), network=self.network())

    # ---- drawing --------------------------------------------------------------------------------

    def _setup_axes(self) -> None:
        fig = self.figure
        self._limits: dict[str, tuple[float, float]] = {}
        self._title = fig.suptitle("", fontsize=10)
        self.ax_k, self.ax_e = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
        fig.subplots_adjust(left=0.06, right=0.985, bottom=0.14, top=0.85, wspace=0.2)
        self._curves = [self.ax_k.plot([], [], color="C1", lw=0.8, alpha=0.6,
                                       label="finite nets" if i == 0 else None)[0] for i in range(self.max_inits)]
        (self._mean,) = self.ax_k.plot([], [], color="C3", lw=1.2, ls="--", label="their mean")
        (self._limit,) = self.ax_k.plot([], [], color="k", lw=2.0, label=r"limit $\Theta_\infty$")
        self.ax_k.set(xlabel=r"$\gamma$", xlim=(-np.pi, np.pi), xticks=np.linspace(-np.pi, np.pi, 5),
                      xticklabels=[r"$-\pi$", r"$-\pi/2$", "0", r"$\pi/2$", r"$\pi$"],
                      title=r"$\Theta(x_0, x)$, $x_0 = (1, 0)$, $x = (\cos\gamma, \sin\gamma)$")
        self.ax_k.legend(loc="upper right", fontsize=8)
        (self._ladder,) = self.ax_e.plot([], [], "o-", color="C0", ms=4, label="mean over inits")
        (self._ref,) = self.ax_e.plot([], [], color="0.5", ls=":", label=r"$\propto 1/\sqrt{\mathrm{width}}$")
        (self._star,) = self.ax_e.plot([], [], "*", color="C3", ms=13, mec="white", ls="none", label="current")
        self.ax_e.set(xscale="log", yscale="log", xlabel="width",
                      title=r"mean relative deviation $\|\Theta - \Theta_\infty\| / \|\Theta_\infty\|$")
        self.ax_e.title.set_fontsize(10)
        self.ax_e.legend(loc="lower left", fontsize=8)
        for ax in (self.ax_k, self.ax_e):
            ax.grid(alpha=0.3)
        self._band = None
        self._band_key: tuple | None = None

    def draw(self) -> None:
        d, s = self.data, self.state
        gamma = d["gamma"]
        for i, line in enumerate(self._curves):
            line.set_data((gamma, d["curves"][i]) if i < len(d["curves"]) else ([], []))
        self._mean.set_data(gamma, d["mean"])
        self._limit.set_data(gamma, d["limit"])
        self._ladder.set_data(d["widths"], d["errors"])
        if self._band_key != self._network_key:  # ± one standard error of the ladder's means
            if self._band is not None:
                self._band.remove()
            lo_e = np.maximum(d["errors"] - d["errors_sem"], 0.5 * d["errors"])
            self._band = self.ax_e.fill_between(d["widths"], lo_e, d["errors"] + d["errors_sem"], color="C0",
                                                alpha=0.2, lw=0)
            self._band_key = self._network_key
        self._ref.set_data(d["widths"], d["reference"])
        self._star.set_data([s["width"]], [d["error"]])
        finite = np.concatenate([d["curves"].ravel(), d["limit"]])
        finite = finite[np.isfinite(finite)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        self._limits["k"] = sticky_limits(self._limits.get("k"), min(lo, 0.0), hi, headroom=0.3, fill=0.4)
        errs = np.concatenate([d["errors"], d["reference"], [d["error"]]])
        errs = errs[np.isfinite(errs) & (errs > 0)]
        if errs.size:
            self._limits["e"] = sticky_limits(self._limits.get("e"), float(errs.min()), float(errs.max()), log=True,
                                              pad=0.1, fill=0.5)
        self.ax_k.set_ylim(self._limits["k"])
        if "e" in self._limits:
            self.ax_e.set_ylim(self._limits["e"])
        self.ax_e.set_xlim(0.7 * min(min(d["widths"]), WIDTHS[0]), 1.4 * max(max(d["widths"]), WIDTHS[-1]))
        act = repr(d["network"].layers[1])
        self._title.set_text(f"{act}, depth {s['depth']}, W_std={s['W_std']:.2f}, b_std={s['b_std']:.2f}: "
                             f"width {s['width']}, {s['n_inits']} init{'s' * (s['n_inits'] > 1)}, "
                             f"mean relative deviation {d['error']:.3g}")

    def static_key(self) -> tuple:
        return (self._network_key, tuple(self._limits.values()))

    def dynamic_artists(self) -> list:
        return [*self._curves, self._mean, self._star, self._title]

    def describe(self) -> str:
        d = self.data
        return (f"<small>mean relative deviation {d['error']:.3g} (ladder: {d['errors'][0]:.3g} at width "
                f"{d['widths'][0]} → {d['errors'][-1]:.3g} at {d['widths'][-1]}) · "
                f"updated in {1e3 * self.timings[-1]:.0f} ms</small>")

    def __repr__(self) -> str:
        return f"ConvergenceExplorer({', '.join(f'{k}={v!r}' for k, v in self.state.items())})"
