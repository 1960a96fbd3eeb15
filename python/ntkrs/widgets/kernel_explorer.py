"""``KernelExplorer``: NNGP and NTK of a fully-connected network as functions of the input angle, and
their Gram spectra on a dataset; for convolutional networks (CNN-GP and CNTK), their Gram matrices on
images."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as W
import numpy as np

from .. import stax
from . import datasets
from ._base import Dashboard, single_threaded_blas, sticky_limits
from .activations import ACTIVATIONS, make_activation

__all__ = ["NETWORKS", "KernelExplorer"]

_STYLE = {"description_width": "70px"}

NETWORKS = ("MLP", "CNN (Flatten)", "CNN (GAP)")
"""The networks :class:`KernelExplorer` offers: ``nk.mlp``, and ``depth × [Conv(width, (3, 3),
padding="SAME"), φ]`` with a ``Flatten()`` or a ``GlobalAvgPool()`` readout, then ``Dense(1)``."""
_GAP_POINTS = 48  # images a switch to the GAP network keeps at most: its kernel costs N²·(HW)² per layer


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
    """NNGP and NTK of ``nk.mlp(depth, width, activation, W_std, b_std)``, or of a convolutional
    network on images, explored with sliders.

    ``network="MLP"``: panels (1) NNGP and NTK between two inputs at angle θ, both at input variance
    ``x·x/d = 1`` (points ``√2·(cos θ, sin θ)``); (2) the normalised kernels ``k(θ)/k(0)``; (3) the
    eigenvalues of both Gram matrices on a dataset (circle, sphere samples or scikit-learn's digits,
    all scaled to ``x·x/d = 1``), largest first, log-log.

    ``network="CNN (Flatten)"`` or ``"CNN (GAP)"`` (see :data:`NETWORKS`): ``depth × [Conv(width, (3,
    3), padding="SAME", W_std, b_std), φ]``, then ``Flatten()`` or ``GlobalAvgPool()`` and ``Dense(1)``,
    on the digits as 8×8 images (the only image dataset offered; each image at ``x·x/64 = 1``). Panels
    (1) and (2): the CNN-GP and CNTK Gram matrices normalised to unit diagonal,
    ``k(x, x')/√(k(x, x)·k(x', x'))``, images sorted by label (white lines between classes); (3) their
    eigenvalues as above. Choosing a CNN switches a non-image dataset to ``"digits"``, and choosing
    the GAP network lowers ``n_points`` to at most 48 (its kernel costs ``N²·(HW)²`` per layer: 64
    images took 0.8–1.2 s per update on 2 cores at load average 4–5, at depth 3; 48 images 0.5–0.7 s).

    Controls (names for :meth:`set`): ``network``, ``activation`` (see :data:`ACTIVATIONS`),
    ``param`` (the activation's parameter, when it has one), ``depth`` (hidden layers, or conv
    blocks), ``W_std``, ``b_std``, ``parameterization`` (``"ntk"``/``"standard"``), ``width``
    (units, or channels; matters for the standard parameterization's NTK only), ``dataset``,
    ``n_points``.

    ``data`` holds ``x`` (the dataset: rows, or NHWC images for a CNN), ``eig_nngp``, ``eig_ntk``
    (descending) and ``network``; for the MLP ``theta``, ``nngp``, ``ntk``, ``nngp_normalised``,
    ``ntk_normalised``; for a CNN ``labels`` (of ``x``), ``gram_nngp``, ``gram_ntk`` (in the order of
    ``x``), ``order`` (the permutation sorting by label) and ``gram_nngp_normalised``,
    ``gram_ntk_normalised`` (sorted by label, as drawn).

    Example::

        ke = KernelExplorer(activation="erf", depth=5)
        ke                                   # the widget, in a notebook
        ke.set(W_std=2.0, dataset="digits")  # or from Python
        ke.set(network="CNN (GAP)")          # Gram matrices of the digits as 8×8 images
        ke.figure.savefig("kernels.png")

    Args:
        activation, param, depth, W_std, b_std, parameterization, width, dataset, n_points, network:
            initial control values (``dataset`` ``None``: ``"circle"`` for the MLP, ``"digits"`` for a
            CNN; ``n_points`` ``None``: 256, or 48 for the GAP network).
        n_angles: angles in ``[0, π]`` for panels 1–2.
        sphere_dim: dimension of the ``sphere`` dataset's ambient space.
        figsize, dpi: figure size in inches and resolution.
    """

    def __init__(self, activation: str = "relu", param: float | None = None, depth: int = 3, W_std: float = 1.5,
                 b_std: float = 0.05, parameterization: str = "ntk", width: int = 512, dataset: str | None = None,
                 n_points: int | None = None, network: str = "MLP", *, n_angles: int = 181, sphere_dim: int = 3,
                 figsize: tuple[float, float] = (12.0, 3.6), dpi: int = 80) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: unknown name {activation!r}; use one of {sorted(ACTIVATIONS)}")
        if network not in NETWORKS:
            raise ValueError(f"network: unknown name {network!r}; use one of {list(NETWORKS)}")
        if dataset is None:
            dataset = "circle" if network == "MLP" else "digits"
        if n_points is None:
            n_points = _GAP_POINTS if network == "CNN (GAP)" else 256
        if network != "MLP" and dataset not in datasets.IMAGE_DATASETS:
            raise ValueError(f"dataset: {network} takes images; use one of {list(datasets.IMAGE_DATASETS)}, "
                             f"got {dataset!r}")
        self.n_angles = int(n_angles)
        self.sphere_dim = int(sphere_dim)
        controls: dict[str, W.ValueWidget] = {
            "network": W.Dropdown(options=list(NETWORKS), value=network, description="network",
                                  style=dict(_STYLE), layout=W.Layout(width="220px")),
            **_network_controls(activation, param, depth, 30, W_std, b_std),
            "parameterization": W.ToggleButtons(options=["ntk", "standard"], value=parameterization,
                                                style={"button_width": "70px"}),
            "width": W.BoundedIntText(value=width, min=1, max=1_000_000, description="width",
                                      style=dict(_STYLE), layout=W.Layout(width="180px")),
            "dataset": W.Dropdown(options=list(datasets.DATASETS if network == "MLP" else datasets.IMAGE_DATASETS),
                                  value=dataset, description="dataset",
                                  style=dict(_STYLE), layout=W.Layout(width="200px")),
            "n_points": W.IntSlider(value=n_points, min=8, max=1797, step=1, description="points",
                                    continuous_update=False, style=dict(_STYLE), layout=W.Layout(width="300px")),
        }
        rows = [["network", "activation", "param", "depth"], ["W_std", "b_std", "parameterization", "width"],
                ["dataset", "n_points"]]
        super().__init__(controls, rows, figsize, dpi)
        self._dataset_key: tuple[str, int] | None = None
        self._setup_axes()
        self.update(raise_errors=True)

    def on_control(self, name: str) -> None:
        if name == "activation":
            _configure_param(self.controls["param"], self.controls["activation"].value, None)
        elif name == "network":
            net, dataset = self.controls["network"].value, self.controls["dataset"]
            options = list(datasets.DATASETS if net == "MLP" else datasets.IMAGE_DATASETS)
            if list(dataset.options) != options:
                value = dataset.value if dataset.value in options else options[-1]
                dataset.options = options
                dataset.value = value
            if net == "CNN (GAP)":
                points = self.controls["n_points"]
                points.value = min(points.value, _GAP_POINTS)

    @property
    def network(self) -> stax.Network:
        """The network the controls describe."""
        s = self.state
        param = s["param"] if ACTIVATIONS[s["activation"]].param else None
        kw = {"W_std": s["W_std"], "b_std": s["b_std"], "parameterization": s["parameterization"]}
        if s["network"] == "MLP":
            return stax.mlp(s["depth"], s["width"], make_activation(s["activation"], param), out_dim=1, **kw)
        layers = []
        for _ in range(s["depth"]):
            layers += [stax.Conv(s["width"], (3, 3), padding="SAME", **kw), make_activation(s["activation"], param)]
        readout = stax.Flatten() if s["network"] == "CNN (Flatten)" else stax.GlobalAvgPool()
        return stax.serial(*layers, readout, stax.Dense(1, **kw))

    def compute(self, report: Callable[[float], None]) -> None:
        s = self.state
        net = self.network
        image = s["network"] != "MLP"
        key = (s["dataset"], s["n_points"], image)
        if key != self._dataset_key:
            if image:
                self.data["x"], self.data["labels"] = datasets.load_images(s["dataset"], s["n_points"])
            else:
                self.data["x"] = datasets.load(s["dataset"], s["n_points"], self.sphere_dim)
            self._dataset_key = key
        if image:
            self._compute_images(net, report)
            return
        for stale in ("labels", "order", "gram_nngp", "gram_ntk", "gram_nngp_normalised", "gram_ntk_normalised"):
            self.data.pop(stale, None)
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

    def _compute_images(self, net: stax.Network, report: Callable[[float], None]) -> None:
        """The CNN's Gram matrices on the image dataset, their label-sorted normalised copies and spectra."""
        for stale in ("theta", "nngp", "ntk", "nngp_normalised", "ntk_normalised"):
            self.data.pop(stale, None)
        x, labels = self.data["x"], self.data["labels"]
        k = net.kernel(x, progress=lambda done, total: report(0.8 * done / max(total, 1)))
        order = np.argsort(labels, kind="stable")
        out = {"gram_nngp": k.nngp, "gram_ntk": k.ntk, "order": order, "network": net}
        with single_threaded_blas():
            for g in ("nngp", "ntk"):
                gram = getattr(k, g)
                d = np.sqrt(np.diag(gram))
                if not (np.isfinite(gram).all() and (d > 0).all()):
                    raise ValueError(f"the {g.upper()} Gram matrix has non-finite or zero diagonal entries at this "
                                     "scale (overflow): lower W_std, b_std or depth")
                out[f"gram_{g}_normalised"] = (gram / d[:, None] / d[None, :])[np.ix_(order, order)]
                out[f"eig_{g}"] = np.linalg.eigvalsh(gram)[::-1]
        report(1.0)
        self.data.update(out)

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
        # The convolutional networks' panels: two image axes in the places of the first two (one set shown).
        self.ax_gk = fig.add_axes(self.ax_k.get_position(), label="gram_nngp")
        self.ax_gn = fig.add_axes(self.ax_n.get_position(), label="gram_ntk")
        self._grams = {}
        for ax, g in ((self.ax_gk, "nngp"), (self.ax_gn, "ntk")):
            self._grams[g] = ax.imshow(np.zeros((1, 1)), cmap="viridis", interpolation="nearest")
            ax.set_title("", fontsize=9)
            ax.set_xlabel("images sorted by label")
            ax.set_visible(False)
        self._boundaries: list = []

    def _show_mode(self, image: bool) -> None:
        for ax in (self.ax_k, self.ax_n):
            ax.set_visible(not image)
        for ax in (self.ax_gk, self.ax_gn):
            ax.set_visible(image)

    def _draw_grams(self) -> None:
        d = self.data
        n = len(d["x"])
        off = ~np.eye(n, dtype=bool)
        for g, ax, name in (("nngp", self.ax_gk, "CNN-GP"), ("ntk", self.ax_gn, "CNTK")):
            artist, a = self._grams[g], d[f"gram_{g}_normalised"]
            # Normalised kernels of deep or pooled networks crowd near 1: the colours span the off-diagonal
            # entries (the unit diagonal saturates), and the title says which values they span.
            lo, hi = (float(a[off].min()), float(a[off].max())) if n > 1 else (0.0, 1.0)
            artist.set_data(a)
            artist.set_extent((-0.5, n - 0.5, n - 0.5, -0.5))
            artist.set_clim(lo, hi if hi > lo else lo + 1e-12)
            ax.title.set_text(f"{name} Gram / √(diag·diag): {lo:.3f} (dark) to {hi:.3f}")
        labels = d["labels"][d["order"]]
        key = tuple(labels)
        if getattr(self, "_boundary_key", None) != key:  # class boundaries and tick labels: static artists
            for line in self._boundaries:
                line.remove()
            self._boundaries = []
            cuts = np.flatnonzero(np.diff(labels)) + 0.5
            starts = np.concatenate([[-0.5], cuts])
            ends = np.concatenate([cuts, [n - 0.5]])
            classes = labels[np.concatenate([[0], np.flatnonzero(np.diff(labels)) + 1])]
            for ax in (self.ax_gk, self.ax_gn):
                for c in cuts:
                    self._boundaries += [ax.axhline(c, color="w", lw=0.6), ax.axvline(c, color="w", lw=0.6)]
                ax.set_xticks((starts + ends) / 2, [str(c) for c in classes], fontsize=7)
                ax.set_yticks((starts + ends) / 2, [str(c) for c in classes], fontsize=7)
                ax.set_xlim(-0.5, n - 0.5)
                ax.set_ylim(n - 0.5, -0.5)
            self._boundary_key = key

    def draw(self) -> None:
        d = self.data
        image = "gram_ntk" in d
        self._show_mode(image)
        if image:
            self._draw_grams()
        else:
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

        if not image:
            # Kernels grow like W_std^(2·depth): leave headroom so that sliding re-lays out the axes rarely.
            lo, hi = span(d["nngp"], d["ntk"])
            self._limits["k"] = sticky_limits(self._limits.get("k"), min(lo, 0.0), hi, headroom=0.6, fill=0.3)
            self._limits["n"] = sticky_limits(self._limits.get("n"),
                                              *span(d["nngp_normalised"], d["ntk_normalised"]))
            self.ax_k.set_ylim(self._limits["k"])
            self.ax_n.set_ylim(self._limits["n"])
        pos = [e[e > 1e-14 * max(abs(e[0]), 1e-300)] for e in (d["eig_nngp"], d["eig_ntk"])]
        self._limits["e"] = sticky_limits(self._limits.get("e"), *span(*pos), log=True, pad=0.1, headroom=0.1,
                                          fill=0.6)
        self.ax_e.set_ylim(self._limits["e"])
        self.ax_e.set_xlim(0.8, 1.25 * len(d["x"]))
        s = self.state
        self.ax_e.set_title(f"Gram eigenvalues: {s['dataset']}, N={len(d['x'])}")
        act = repr(d["network"].layers[1]) if s["depth"] else "linear"
        what = f"{s['network']}: 3×3 SAME convolutions, " if image else ""
        self._title.set_text(f"{what}{act}, depth {s['depth']}, W_std={s['W_std']:.2f}, b_std={s['b_std']:.2f}, "
                             f"{s['parameterization']} parameterization")

    def static_key(self) -> tuple:
        image = "gram_ntk" in self.data
        return (image, tuple(self._limits.values()), self.ax_e.get_title(), len(self.data["x"]),
                getattr(self, "_boundary_key", None) if image else None)

    def dynamic_artists(self) -> list:
        return [*self._lines.values(), *self._grams.values(), self.ax_gk.title, self.ax_gn.title, self._title]

    def describe(self) -> str:
        d = self.data
        if "gram_ntk" in d:
            k0 = f"mean k(x, x): NNGP {np.mean(np.diag(d['gram_nngp'])):.4g}, NTK {np.mean(np.diag(d['gram_ntk'])):.4g}"
        else:
            k0 = f"k(0): NNGP {d['nngp'][0]:.4g}, NTK {d['ntk'][0]:.4g}"
        return f"<small>{k0} · updated in {1e3 * self.timings[-1]:.0f} ms</small>"

    def __repr__(self) -> str:
        return f"KernelExplorer({', '.join(f'{k}={v!r}' for k, v in self.state.items())})"
