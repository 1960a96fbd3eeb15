"""``PhaseDiagram``: the order-to-chaos phase diagram of deep random networks over ``(σ_w², σ_b²)``."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as W
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm, Normalize

from ..layers import Activation
from . import meanfield as mf
from ._base import Dashboard
from .activations import ACTIVATIONS, make_activation
from .kernel_explorer import _STYLE, _configure_param, _param_slider, _slider

__all__ = ["PhaseDiagram"]

QUANTITIES = {
    "xi_c": r"depth scale $\xi_c = -1/\ln\chi_c$",
    "chi1": r"$\chi_1 = \sigma_w^2\,E[\phi'(u)^2]$",
    "q_star": r"fixed point $q^*$",
    "c_star": r"fixed point $c^*$",
}


class PhaseDiagram(Dashboard):
    """Order-to-chaos diagram (Poole et al. 2016; Schoenholz et al. 2017) for one activation.

    Panels: (1) a map over ``(σ_w², σ_b²)`` of ``ξ_c`` (or ``χ₁``, ``q*``, ``c*``: control
    ``show``), the critical line ``χ₁ = 1`` (white) and a marker at the current network; (2) the
    correlation map ``c ↦ f(c)`` at the current ``(σ_w², σ_b², q*)`` with its fixed point ``c*``;
    (3) the correlation ``c^l`` of input pairs through ``depth`` layers (from ``c⁰ = 0, 0.5, 0.9``, at
    the fixed-point length ``q*``). Quantities are defined in :mod:`ntkrs.widgets.meanfield`; all
    Gaussian expectations come from the Rust core (``Activation.maps``).

    The grid is recomputed only when the activation (or its parameter) changes; moving ``sigma_w2``,
    ``sigma_b2`` or ``depth`` recomputes only the current point. Numerical activations (tanh, …) cost
    about 2 ms per expectation in the core, so they use a coarser grid (``grid_numerical``) and take
    several seconds (a progress bar shows).

    Controls (names for :meth:`set`): ``activation``, ``param``, ``sigma_w2``, ``sigma_b2``, ``depth``,
    ``show``. ``data`` holds ``sw2``, ``sb2`` (grid axes), ``grid`` (a :class:`MeanField` of arrays of
    shape ``(len(sb2), len(sw2))``), ``point`` (a :class:`MeanField` of scalars at the current network),
    ``c``, ``f`` (the correlation map), ``layers``, ``trajectories`` (``(3, depth + 1)``).

    Args:
        activation, param, sigma_w2, sigma_b2, depth, show: initial control values.
        sw2_range, sb2_range: the diagram's axes.
        grid: ``(n_sw2, n_sb2)`` grid points for closed-form activations; ``grid_numerical`` for
            numerical ones.
        figsize, dpi: figure size in inches and resolution.
    """

    def __init__(self, activation: str = "erf", param: float | None = None, sigma_w2: float = 1.5,
                 sigma_b2: float = 0.05, depth: int = 30, show: str = "xi_c", *,
                 sw2_range: tuple[float, float] = (0.05, 4.0), sb2_range: tuple[float, float] = (0.0, 0.3),
                 grid: tuple[int, int] = (80, 49), grid_numerical: tuple[int, int] = (16, 10),
                 figsize: tuple[float, float] = (12.0, 3.6), dpi: int = 80) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: unknown name {activation!r}; use one of {sorted(ACTIVATIONS)}")
        self.sw2_range, self.sb2_range = tuple(map(float, sw2_range)), tuple(map(float, sb2_range))
        self.grid_size, self.grid_numerical = tuple(grid), tuple(grid_numerical)
        param_slider = _param_slider(activation)
        if param is not None:
            _configure_param(param_slider, activation, param)
        sw_lo, sw_hi = self.sw2_range
        sb_lo, sb_hi = self.sb2_range
        controls: dict[str, W.ValueWidget] = {
            "activation": W.Dropdown(options=list(ACTIVATIONS), value=activation, description="activation",
                                     style=dict(_STYLE), layout=W.Layout(width="220px")),
            "param": param_slider,
            "show": W.Dropdown(options=[(k.replace("_", " "), k) for k in QUANTITIES], value=show,
                               description="show", style=dict(_STYLE), layout=W.Layout(width="180px")),
            "sigma_w2": _slider(W.FloatSlider, value=sigma_w2, min=sw_lo, max=sw_hi, step=(sw_hi - sw_lo) / 400,
                                description="σ_w²", readout_format=".3f"),
            "sigma_b2": _slider(W.FloatSlider, value=sigma_b2, min=sb_lo, max=sb_hi, step=(sb_hi - sb_lo) / 400,
                                description="σ_b²", readout_format=".4f"),
            "depth": _slider(W.IntSlider, value=depth, min=1, max=200, description="depth"),
        }
        super().__init__(controls, [["activation", "param", "show"], ["sigma_w2", "sigma_b2", "depth"]], figsize, dpi)
        self._grid_key: tuple | None = None
        self._drawn_key: tuple | None = None
        self._setup_axes()
        self.update(raise_errors=True)

    def follow(self, explorer: Dashboard) -> list[W.dlink]:
        """Put the marker on another dashboard's network and keep it there: its ``activation``,
        ``param`` and ``depth`` are copied, ``σ_w² = W_std²`` and ``σ_b² = b_std²`` (clamped to this
        diagram's axes), on every change of its controls. Returns the ``ipywidgets.dlink`` objects
        (call ``.unlink()`` on them to stop following)."""
        mine, theirs = self.controls, explorer.controls
        act = theirs["activation"].value
        self.set(activation=act, depth=theirs["depth"].value,
                 sigma_w2=min(max(theirs["W_std"].value ** 2, self.sw2_range[0]), self.sw2_range[1]),
                 sigma_b2=min(max(theirs["b_std"].value ** 2, self.sb2_range[0]), self.sb2_range[1]),
                 **({"param": theirs["param"].value} if ACTIVATIONS[act].param else {}))
        links = [W.dlink((theirs["activation"], "value"), (mine["activation"], "value")),
                 W.dlink((theirs["param"], "value"), (mine["param"], "value")),
                 W.dlink((theirs["depth"], "value"), (mine["depth"], "value")),
                 W.dlink((theirs["W_std"], "value"), (mine["sigma_w2"], "value"), lambda s: s * s),
                 W.dlink((theirs["b_std"], "value"), (mine["sigma_b2"], "value"), lambda s: s * s)]
        return links

    def on_control(self, name: str) -> None:
        if name == "activation":
            _configure_param(self.controls["param"], self.controls["activation"].value, None)

    @property
    def activation(self) -> Activation:
        """The activation the controls describe."""
        s = self.state
        return make_activation(s["activation"], s["param"] if ACTIVATIONS[s["activation"]].param else None)

    def compute(self, report: Callable[[float], None]) -> None:
        s = self.state
        act = self.activation
        key = (s["activation"], s["param"])
        if key != self._grid_key:
            numerical = ACTIVATIONS[s["activation"]].numerical
            nw, nb = self.grid_numerical if numerical else self.grid_size
            sw2 = np.linspace(*self.sw2_range, nw)
            sb2 = np.linspace(*self.sb2_range, nb)
            grid = mf.mean_field(act, sw2[None, :], sb2[:, None], progress=lambda f: report(0.9 * f),
                                 chunks=nb if numerical else 1)
            self.data.update(sw2=sw2, sb2=sb2, grid=grid)
            self._grid_key = key
        w, b = s["sigma_w2"], s["sigma_b2"]
        point = mf.mean_field(act, w, b)
        point = mf.MeanField(*(float(v) for v in point))
        c = np.linspace(-1.0, 1.0, 41 if ACTIVATIONS[s["activation"]].numerical else 201)
        layers = np.arange(s["depth"] + 1)
        traj = np.full((3, layers.size), np.nan)
        f = np.full_like(c, np.nan)
        if np.isfinite(point.q_star):
            f = mf.correlation_map(act, w, b, point.q_star, c)[0]
            traj[:, 0] = (0.0, 0.5, 0.9)
            for layer in layers[1:]:
                traj[:, layer] = np.clip(mf.correlation_map(act, w, b, point.q_star, traj[:, layer - 1])[0], -1, 1)
        report(1.0)
        self.data.update(point=point, c=c, f=f, layers=layers, trajectories=traj)

    def _setup_axes(self) -> None:
        fig = self.figure
        self._title = fig.suptitle("", fontsize=10)
        self.ax_p, self.ax_c, self.ax_l = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.25, 1, 1]})
        fig.subplots_adjust(left=0.05, right=0.99, bottom=0.15, top=0.84, wspace=0.38)
        self._image = self.ax_p.imshow(np.zeros((2, 2)), origin="lower", aspect="auto",
                                       cmap=colormaps["viridis"].with_extremes(bad="0.75"),
                                       extent=(*self.sw2_range, *self.sb2_range), interpolation="nearest")
        self._cbar = fig.colorbar(self._image, ax=self.ax_p, pad=0.02)
        self._contour = None
        (self._marker,) = self.ax_p.plot([], [], marker="*", ms=14, color="red", mec="white", ls="none")
        self.ax_p.set(xlabel=r"$\sigma_w^2$", ylabel=r"$\sigma_b^2$")
        self.ax_c.plot([-1, 1], [-1, 1], color="0.6", lw=0.8, ls=":")
        (self._fline,) = self.ax_c.plot([], [], color="C0")
        (self._cstar,) = self.ax_c.plot([], [], "o", color="C3")
        self.ax_c.set(xlim=(-1, 1), ylim=(-1.02, 1.02), xlabel="$c^l$", ylabel="$c^{l+1}$",
                      title="correlation map at $q^*$")
        self._tlines = [self.ax_l.plot([], [], color=f"C{i}", label=f"$c^0$={c0}")[0]
                        for i, c0 in enumerate((0.0, 0.5, 0.9))]
        (self._cstar_line,) = self.ax_l.plot([], [], color="C3", ls="--", lw=0.8, label="$c^*$")
        self.ax_l.set(ylim=(-0.02, 1.02), xlabel="layer $l$", ylabel="$c^l$")
        self.ax_l.legend(loc="lower right", fontsize=8)
        for ax in (self.ax_c, self.ax_l):
            ax.grid(alpha=0.3)

    def draw(self) -> None:
        d, s = self.data, self.state
        p = d["point"]
        if (self._grid_key, s["show"]) != self._drawn_key:  # the map changes only with the grid or `show`
            self._draw_map()
            self._drawn_key = (self._grid_key, s["show"])
        self._marker.set_data([s["sigma_w2"]], [s["sigma_b2"]])
        self._fline.set_data(d["c"], d["f"])
        self._cstar.set_data([p.c_star], [p.c_star])
        for line, t in zip(self._tlines, d["trajectories"], strict=True):
            line.set_data(d["layers"], t)
        self._cstar_line.set_data([0, d["layers"][-1]], [p.c_star, p.c_star])
        self.ax_l.set_xlim(0, self._depth_axis())
        if not np.isfinite(p.q_star):
            self.ax_l.set_title("no fixed point: $q^l$ grows without bound", fontsize=10)
        else:
            phase = "critical" if p.xi_c == np.inf else "chaotic" if p.chi1 > 1 else "ordered"
            self.ax_l.set_title(rf"$\xi_c$ = {p.xi_c:.3g} layers ({phase})", fontsize=10)
        self._title.set_text(rf"$\sigma_w^2$={s['sigma_w2']:.3f}, $\sigma_b^2$={s['sigma_b2']:.4f}:  "
                             rf"$q^*$={p.q_star:.4g}, $c^*$={p.c_star:.4g}, $\chi_1$={p.chi1:.4g}, "
                             rf"$\chi_c$={p.chi_c:.4g}")

    def _draw_map(self) -> None:
        d, s = self.data, self.state
        grid = d["grid"]
        values = np.asarray(getattr(grid, s["show"]), dtype=float)
        if s["show"] == "xi_c":
            masked = np.ma.masked_invalid(np.minimum(values, 1e4))
            lo = max(float(masked.min()) if masked.count() else 0.1, 0.1)
            norm: Normalize = LogNorm(vmin=lo, vmax=max(float(masked.max()) if masked.count() else 1.0, lo * 10))
        else:
            masked = np.ma.masked_invalid(values)
            finite = masked.compressed()
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            norm = Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1.0)
        self._image.set_data(masked)
        self._image.set_norm(norm)
        self._cbar.update_normal(self._image)
        self._cbar.set_label(QUANTITIES[s["show"]])
        self.ax_p.set_title(f"{self.activation!r}: order (left) / chaos (right)", fontsize=10)
        if self._contour is not None:
            self._contour.remove()
            self._contour = None
        chi = np.asarray(grid.chi1, dtype=float)
        if np.nanmin(chi) < 1.0 < np.nanmax(chi):
            self._contour = self.ax_p.contour(d["sw2"], d["sb2"], chi, levels=[1.0], colors="white", linewidths=1.5)

    def _depth_axis(self) -> int:
        """The layer axis' end: the next of 10, 20, 30, 50, 100, 150, 200, 300, … at or above ``depth``
        (so that moving the depth slider rarely re-lays out the axes)."""
        depth = self.state["depth"]
        return next(n for n in (10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 10**9) if n >= depth)

    def static_key(self) -> tuple:
        return (self._drawn_key, self._depth_axis())

    def dynamic_artists(self) -> list:
        return [self._marker, self._fline, self._cstar, *self._tlines, self._cstar_line, self.ax_l.title,
                self._title]

    def describe(self) -> str:
        p = self.data["point"]
        return (f"<small>q*={p.q_star:.5g}, c*={p.c_star:.5g}, χ₁={p.chi1:.5g}, ξ_c={p.xi_c:.4g} · "
                f"updated in {1e3 * self.timings[-1]:.0f} ms</small>")

    def __repr__(self) -> str:
        return f"PhaseDiagram({', '.join(f'{k}={v!r}' for k, v in self.state.items())})"
