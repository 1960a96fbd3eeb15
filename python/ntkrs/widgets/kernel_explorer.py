"""``KernelExplorer``: NNGP and NTK of a fully-connected network as functions of the input angle, and
their Gram spectra on a dataset."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as W
import numpy as np

from .. import stax
from . import datasets
from ._base import Dashboard, single_threaded_blas, sticky_limits
from .activations import ACTIVATIONS, make_activation

__all__ = ["KernelExplorer"]

_STYLE = {"description_width": "70px"}


def _slider(cls: type, **kwargs: object) -> W.ValueWidget:
    """A slider that follows the mouse (``continuous_update``), with its own ``Layout`` (a layout shared
    between widgets would hide them all when one is hidden)."""
    return cls(continuous_update=True, style=dict(_STYLE), layout=W.Layout(width="300px"), **kwargs)


def _param_slider(name: str) -> W.FloatSlider:
    slider = _slider(W.FloatSlider, description="param")
    _configure_param(slider, name, None)
    return slider


def _network_controls(activation: str, param: float | None, depth: int, max_depth: int, W_std: float,
                      b_std: float) -> dict[str, W.ValueWidget]:
    """The controls every dashboard of a network shares: activation (with its parameter), depth,
    W_std and b_std."""
    param_slider = _param_slider(activation)
    if param is not None:
        _configure_param(param_slider, activation, param)
    return {
        "activation": W.Dropdown(options=list(ACTIVATIONS), value=activation, description="activation",
                                 style=dict(_STYLE), layout=W.Layout(width="220px")),
        "param": param_slider,
        "depth": _slider(W.IntSlider, value=depth, min=1, max=max_depth, description="depth"),
        "W_std": _slider(W.FloatSlider, value=W_std, min=0.05, max=4.0, step=0.05, description="W_std"),
        "b_std": _slider(W.FloatSlider, value=b_std, min=0.0, max=2.0, step=0.01, description="b_std"),
    }


def _configure_param(slider: W.FloatSlider, name: str, value: float | None) -> None:
    """Set the parameter slider's label, range and default for activation ``name`` (hidden if none)."""
    spec = ACTIVATIONS[name].param
    if spec is None:
        slider.layout.visibility = "hidden"
        return
    label, lo, hi, step, default = spec
    slider.min, slider.max = -1e9, 1e9  # avoid clamping while the range moves
    slider.min, slider.max, slider.step = lo, hi, step
    slider.value = default if value is None else value
    slider.description = label.split(" ")[0]
    slider.tooltip = label
    slider.layout.visibility = "visible"


class KernelExplorer(Dashboard):
    """NNGP and NTK of ``nk.mlp(depth, width, activation, W_std, b_std)`` explored with sliders.

    Panels: (1) NNGP and NTK between two inputs at angle θ, both at input variance ``x·x/d = 1``
    (points ``√2·(cos θ, sin θ)``); (2) the normalised kernels ``k(θ)/k(0)``; (3) the eigenvalues of
    both Gram matrices on a dataset (circle, sphere samples or scikit-learn's digits, all scaled to
    ``x·x/d = 1``), largest first, log-log.

    Controls (names for :meth:`set`): ``activation`` (see :data:`ACTIVATIONS`), ``param`` (the
    activation's parameter, when it has one), ``depth`` (hidden layers), ``W_std``, ``b_std``,
    ``parameterization`` (``"ntk"``/``"standard"``), ``width`` (matters for the standard
    parameterization's NTK only), ``dataset``, ``n_points``.

    ``data`` holds ``theta``, ``nngp``, ``ntk``, ``nngp_normalised``, ``ntk_normalised``, ``x`` (the
    dataset), ``eig_nngp``, ``eig_ntk`` (descending) and ``network``.

    Example::

        ke = KernelExplorer(activation="erf", depth=5)
        ke                                   # the widget, in a notebook
        ke.set(W_std=2.0, dataset="digits")  # or from Python
        ke.figure.savefig("kernels.png")

    Args:
        activation, param, depth, W_std, b_std, parameterization, width, dataset, n_points: initial
            control values.
        n_angles: angles in ``[0, π]`` for panels 1–2.
        sphere_dim: dimension of the ``sphere`` dataset's ambient space.
        figsize, dpi: figure size in inches and resolution.
    """

    def __init__(self, activation: str = "relu", param: float | None = None, depth: int = 3, W_std: float = 1.5,
                 b_std: float = 0.05, parameterization: str = "ntk", width: int = 512, dataset: str = "circle",
                 n_points: int = 256, *, n_angles: int = 181, sphere_dim: int = 3,
                 figsize: tuple[float, float] = (12.0, 3.6), dpi: int = 80) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: unknown name {activation!r}; use one of {sorted(ACTIVATIONS)}")
        self.n_angles = int(n_angles)
        self.sphere_dim = int(sphere_dim)
        controls: dict[str, W.ValueWidget] = {
            **_network_controls(activation, param, depth, 30, W_std, b_std),
            "parameterization": W.ToggleButtons(options=["ntk", "standard"], value=parameterization,
                                                style={"button_width": "70px"}),
            "width": W.BoundedIntText(value=width, min=1, max=1_000_000, description="width",
                                      style=dict(_STYLE), layout=W.Layout(width="180px")),
            "dataset": W.Dropdown(options=list(datasets.DATASETS), value=dataset, description="dataset",
                                  style=dict(_STYLE), layout=W.Layout(width="200px")),
            "n_points": W.IntSlider(value=n_points, min=8, max=1797, step=1, description="points",
                                    continuous_update=False, style=dict(_STYLE), layout=W.Layout(width="300px")),
        }
        rows = [["activation", "param", "depth"], ["W_std", "b_std", "parameterization", "width"],
                ["dataset", "n_points"]]
        super().__init__(controls, rows, figsize, dpi)
        self._dataset_key: tuple[str, int] | None = None
        self._setup_axes()
        self.update(raise_errors=True)

    def on_control(self, name: str) -> None:
        if name == "activation":
            _configure_param(self.controls["param"], self.controls["activation"].value, None)

    @property
    def network(self) -> stax.Network:
        """The network the controls describe."""
        s = self.state
        act = make_activation(s["activation"], s["param"] if ACTIVATIONS[s["activation"]].param else None)
        return stax.mlp(s["depth"], s["width"], act, W_std=s["W_std"], b_std=s["b_std"], out_dim=1,
                        parameterization=s["parameterization"])

    def compute(self, report: Callable[[float], None]) -> None:
        s = self.state
        net = self.network
        key = (s["dataset"], s["n_points"])
        if key != self._dataset_key:
            self.data["x"] = datasets.load(s["dataset"], s["n_points"], self.sphere_dim)
            self._dataset_key = key
        x = self.data["x"]
        d = x.shape[1]
        # The angle points √d·(cos θ, sin θ, 0, …) share the dataset's sphere x·x/d = 1, so one kernel call
        # covers both (for numerical activations the core then tabulates each layer once).
        theta = np.linspace(0.0, np.pi, self.n_angles)
        pts = np.zeros((theta.size, d))
        pts[:, 0], pts[:, 1] = np.sqrt(d) * np.cos(theta), np.sqrt(d) * np.sin(theta)
        k = net.kernel(np.concatenate([pts, x]), progress=lambda done, total: report(0.7 * done / max(total, 1)))
        n = theta.size
        gram = (k.nngp[n:, n:], k.ntk[n:, n:])
        with single_threaded_blas():  # OpenBLAS threads fight the core's threads on small matrices
            eig = [np.linalg.eigvalsh(g)[::-1] for g in gram]
        report(1.0)
        nngp, ntk = k.nngp[0, :n].copy(), k.ntk[0, :n].copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            self.data.update(theta=theta, nngp=nngp, ntk=ntk, nngp_normalised=nngp / nngp[0],
                             ntk_normalised=ntk / ntk[0], eig_nngp=eig[0], eig_ntk=eig[1], network=net)

    def _setup_axes(self) -> None:
        fig = self.figure
        self._limits: dict[str, tuple[float, float]] = {}
        self._title = fig.suptitle("", fontsize=10)
        self.ax_k, self.ax_n, self.ax_e = fig.subplots(1, 3)
        fig.subplots_adjust(left=0.05, right=0.99, bottom=0.15, top=0.85, wspace=0.25)
        deg = r"angle $\theta$ (degrees)"
        self._lines = {
            "nngp": self.ax_k.plot([], [], label="NNGP", color="C0")[0],
            "ntk": self.ax_k.plot([], [], label="NTK", color="C1")[0],
            "nngp_normalised": self.ax_n.plot([], [], label="NNGP", color="C0")[0],
            "ntk_normalised": self.ax_n.plot([], [], label="NTK", color="C1", ls="--")[0],
            "eig_nngp": self.ax_e.plot([], [], ".", ms=3, label="NNGP", color="C0")[0],
            "eig_ntk": self.ax_e.plot([], [], ".", ms=3, label="NTK", color="C1")[0],
        }
        self.ax_k.set(xlabel=deg, title=r"kernels $k(\theta)$")
        self.ax_n.set(xlabel=deg, title=r"normalised $k(\theta)/k(0)$")
        self.ax_e.set(xlabel="index $i$", xscale="log", yscale="log")
        for ax, loc in ((self.ax_k, "upper right"), (self.ax_n, "upper right"), (self.ax_e, "lower left")):
            ax.legend(loc=loc, fontsize=8)
            ax.grid(alpha=0.3)
        self.ax_k.set_xlim(0, 180)
        self.ax_n.set_xlim(0, 180)

    def draw(self) -> None:
        d = self.data
        deg = np.degrees(d["theta"])
        for key in ("nngp", "ntk", "nngp_normalised", "ntk_normalised"):
            self._lines[key].set_data(deg, d[key])
        for key in ("eig_nngp", "eig_ntk"):
            e = d[key]
            idx = np.arange(1, e.size + 1)
            keep = e > 1e-14 * max(abs(e[0]), 1e-300)
            self._lines[key].set_data(idx[keep], e[keep])

        def span(*arrays: np.ndarray) -> tuple[float, float]:
            v = np.concatenate([a[np.isfinite(a)] for a in arrays] + [np.zeros(0)])
            return (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)

        # Kernels grow like W_std^(2·depth): leave headroom so that sliding re-lays out the axes rarely.
        lo, hi = span(d["nngp"], d["ntk"])
        self._limits["k"] = sticky_limits(self._limits.get("k"), min(lo, 0.0), hi, headroom=0.6, fill=0.3)
        self._limits["n"] = sticky_limits(self._limits.get("n"), *span(d["nngp_normalised"], d["ntk_normalised"]))
        pos = [e[e > 1e-14 * max(abs(e[0]), 1e-300)] for e in (d["eig_nngp"], d["eig_ntk"])]
        self._limits["e"] = sticky_limits(self._limits.get("e"), *span(*pos), log=True, pad=0.1, headroom=0.1,
                                          fill=0.6)
        self.ax_k.set_ylim(self._limits["k"])
        self.ax_n.set_ylim(self._limits["n"])
        self.ax_e.set_ylim(self._limits["e"])
        self.ax_e.set_xlim(0.8, 1.25 * len(d["x"]))
        s = self.state
        self.ax_e.set_title(f"Gram eigenvalues: {s['dataset']}, N={len(d['x'])}")
        act = repr(d["network"].layers[1]) if s["depth"] else "linear"
        self._title.set_text(f"{act}, depth {s['depth']}, W_std={s['W_std']:.2f}, b_std={s['b_std']:.2f}, "
                             f"{s['parameterization']} parameterization")

    def static_key(self) -> tuple:
        return (tuple(self._limits.values()), self.ax_e.get_title(), len(self.data["x"]))

    def dynamic_artists(self) -> list:
        return [*self._lines.values(), self._title]

    def describe(self) -> str:
        d = self.data
        return (f"<small>k(0): NNGP {d['nngp'][0]:.4g}, NTK {d['ntk'][0]:.4g} · "
                f"updated in {1e3 * self.timings[-1]:.0f} ms</small>")

    def __repr__(self) -> str:
        return f"KernelExplorer({', '.join(f'{k}={v!r}' for k, v in self.state.items())})"
