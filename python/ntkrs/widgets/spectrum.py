"""``SpectrumExplorer``: Mercer eigenvalues of a network's kernel on the sphere, the learning curve of
kernel regression they predict, and learning curves measured with the same kernel."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import ipywidgets as W
import numpy as np

from .. import spectrum as sp
from .. import stax
from ._base import Dashboard, single_threaded_blas, sticky_limits
from .activations import ACTIVATIONS, make_activation
from .kernel_explorer import _STYLE, _configure_param, _network_controls, _slider

__all__ = ["RIDGES", "SpectrumExplorer", "TEACHERS", "RegressionDraws"]

RIDGES = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
"""The ridges the ridge slider offers (``0``: the minimum-norm interpolant)."""

TEACHERS: dict[str, tuple[float, ...]] = {
    "degrees 1-3": (0.0, 0.5, 0.3, 0.2),
    "linear (degree 1)": (0.0, 1.0),
    "degree 2": (0.0, 0.0, 1.0),
    "degree 4": (0.0, 0.0, 0.0, 0.0, 1.0),
    "degrees 0-7, power 2^-k": tuple(2.0**-k / (2 - 2.0**-7) for k in range(8)),
}
"""Targets: power per degree ``k = 0, 1, …`` of a random teacher (each totals 1)."""


class RegressionDraws:
    """Kernel ridge regression on the sphere for several training-set sizes and draws, set up once so that
    any ridge and label-noise level costs only matrix–vector products.

    For each draw ``d``: ``max(sizes)`` training points and ``n_test`` test points uniform on the sphere
    ``x·x/dim = 1``, a random teacher ``f*`` with the given power per degree (:func:`ntkrs.spectrum`'s
    teacher), and a standard-normal noise vector ``ε``; labels are ``f* + √noise·ε``. The training set of
    size ``P`` is the first ``P`` points. For each size the Gram ``K_P = U Λ Uᵀ`` is diagonalised, so
    ``f̂_test = K_test,P U (Λ + ridge)⁻¹ Uᵀ y`` for any ridge (eigenvalues below ``P·ε·λ_max`` are dropped
    at ridge 0: the minimum-norm interpolant). All kernels come from one ``net.kernel`` call.

    Attributes: ``x`` ``(draws, max(sizes) + n_test, dim)`` the points (training first), ``f`` the teacher's
    values there, ``eps`` ``(draws, max(sizes))`` the standard-normal label noise, ``at_angles`` the kernel
    ``k(cos θ)`` at the optional ``angles`` (computed in the same ``net.kernel`` call), else ``None``.
    """

    def __init__(self, net: stax.Network, dim: int, power: np.ndarray, sizes: np.ndarray, *, get: str = "ntk",
                 draws: int = 6, n_test: int = 256, seed: int = 0, angles: np.ndarray | None = None,
                 progress: Callable[[int, int], object] | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        pmax = int(self.sizes.max())
        m = pmax + n_test
        xs, fs, eps = [], [], []
        for _ in range(draws):
            teacher = sp._Teacher(dim, power, rng)
            x = sp.sphere_points(m, dim, rng)
            xs.append(x)
            fs.append(teacher(x))
            eps.append(rng.standard_normal(pmax))
        x_all = np.concatenate(xs)
        train = np.concatenate([x[:pmax] for x in xs])
        # The kernel at the cosines cos(angles), in the same call (a numerical activation then tabulates its
        # kernel once): x₀ = √dim e₁ against √dim (cos θ e₁ + sin θ e₂), on the same sphere.
        na = 0 if angles is None else len(angles)
        if na:
            x0 = np.zeros((1, dim))
            x0[0, 0] = math.sqrt(dim)
            nodes = np.zeros((na, dim))
            nodes[:, 0], nodes[:, 1] = math.sqrt(dim) * np.cos(angles), math.sqrt(dim) * np.sin(angles)
            x_all, train = np.concatenate([x0, x_all]), np.concatenate([nodes, train])
        k = net.kernel(x_all, train, get=get, progress=progress)  # (draws·m, draws·pmax): one call
        self.at_angles = k[0, :na].copy() if na else None
        if na:
            k = k[1:, na:]
        self.x, self.f, self.eps = np.array(xs), np.array(fs), np.array(eps)  # see Attributes
        self.parts: list[list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = []
        self.f_test = [f[pmax:] for f in fs]
        with single_threaded_blas():
            for d in range(draws):
                block = k[d * m:(d + 1) * m, d * pmax:(d + 1) * pmax]
                per_size = []
                for p in self.sizes:
                    lam, u = np.linalg.eigh(block[:p, :p])
                    a = block[pmax:, :p] @ u
                    per_size.append((lam, a, u.T @ fs[d][:p], u.T @ eps[d][:p]))
                self.parts.append(per_size)

    def errors(self, ridge: float, noise: float) -> np.ndarray:
        """``(draws, sizes)`` test errors against the noiseless teacher."""
        out = np.empty((len(self.parts), self.sizes.size))
        sigma = math.sqrt(noise)
        for d, per_size in enumerate(self.parts):
            for j, (lam, a, bf, be) in enumerate(per_size):
                shifted = lam + ridge
                keep = shifted > lam.size * np.finfo(np.float64).eps * max(float(lam[-1]), 1e-300)
                coef = np.where(keep, (bf + sigma * be) / np.where(keep, shifted, 1.0), 0.0)
                out[d, j] = float(np.mean((a @ coef - self.f_test[d]) ** 2))
        return out


def _degrees_for(dim: int, n_max: float, cap: int = 1500) -> int:
    """Enough degrees that the listed modes number at least 20·``n_max`` (at most ``cap`` degrees)."""
    total, k = 0.0, 0
    while total < 20 * n_max and k < cap:
        total += float(sp.multiplicity(dim, np.array([k]))[0])
        k += 1
    return max(k, 8)


class SpectrumExplorer(Dashboard):
    """Kernel spectra and learning curves of ``nk.mlp(depth, ·, activation, W_std, b_std)`` on the sphere.

    Panels: (1) the Mercer eigenvalues ``λ_k`` of the NTK or NNGP (``kernel``) for inputs uniform on the
    sphere ``x·x/dim = 1`` against the degree ``k`` (:func:`ntkrs.spectrum.mercer`), the teacher's degrees
    ringed; (2) the generalisation error of kernel ridge regression against the number of training points
    ``P`` predicted from them (:func:`ntkrs.spectrum.learning_curve`, line) and measured with the same kernel
    (mean ± standard error over ``draws`` draws of training set and teacher, points); (3) the predicted error
    of each of the teacher's degrees relative to its power.

    The spectrum and the measured curves are recomputed when the network, ``kernel``, ``dim`` or ``teacher``
    changes (one ``net.kernel`` call for the quadrature nodes of :func:`ntkrs.spectrum.mercer` and every draw,
    so a numerical activation tabulates its kernel once; one eigendecomposition per size and draw); ``ridge``
    and ``noise`` then only re-solve (:class:`RegressionDraws`).

    Controls (names for :meth:`set`): ``activation``, ``param``, ``depth``, ``W_std``, ``b_std``, ``kernel``
    (``"ntk"``/``"nngp"``), ``dim``, ``ridge`` (one of :data:`RIDGES`), ``noise`` (label-noise variance σ²),
    ``teacher`` (one of :data:`TEACHERS`).

    ``data`` holds ``degrees``, ``eigenvalues`` (``λ_k``), ``multiplicity``, ``power`` (the teacher's per
    degree), ``n`` and ``error`` (the prediction on a grid of ``P``), ``mode_errors`` (``(len(n), degrees)``),
    ``sizes``, ``measured`` (mean), ``measured_sem``, ``measured_errors`` (``(draws, sizes)``),
    ``predicted_at_sizes`` and ``network``.

    Example::

        se = SpectrumExplorer()
        se                                     # the widget, in a notebook
        se.set(activation="erf", dim=20, noise=0.1)
        se.data["eigenvalues"][:4], se.data["measured"]

    Args:
        activation, param, depth, W_std, b_std, kernel, dim, ridge, noise, teacher: initial control values.
        sizes: the measured training-set sizes.
        draws, n_test: draws per measured point and test points per draw.
        n_max: the largest ``P`` of the predicted curve.
        show_degrees: degrees shown in panel 1.
        seed: of the measured draws.
        figsize, dpi: figure size in inches and resolution.
    """

    def __init__(self, activation: str = "relu", param: float | None = None, depth: int = 2, W_std: float = 1.5,
                 b_std: float = 0.1, kernel: str = "ntk", dim: int = 10, ridge: float = 0.0, noise: float = 0.0,
                 teacher: str = "degrees 1-3", *, sizes: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256),
                 draws: int = 6, n_test: int = 256, n_max: int = 1000, show_degrees: int = 30, seed: int = 0,
                 figsize: tuple[float, float] = (12.0, 3.8), dpi: int = 80) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: unknown name {activation!r}; use one of {sorted(ACTIVATIONS)}")
        if teacher not in TEACHERS:
            raise ValueError(f"teacher: unknown name {teacher!r}; use one of {list(TEACHERS)}")
        if ridge not in RIDGES:
            raise ValueError(f"ridge: {ridge!r} is not one of {list(RIDGES)}")
        self.sizes = np.array(sorted(int(s) for s in sizes))
        if self.sizes.size < 1 or self.sizes[0] < 1:
            raise ValueError(f"sizes: expected positive training-set sizes, got {sizes!r}")
        self.draws, self.n_test, self.seed = int(draws), int(n_test), int(seed)
        self.n_max = int(n_max)
        self.show_degrees = int(show_degrees)
        controls: dict[str, W.ValueWidget] = {
            **_network_controls(activation, param, depth, 10, W_std, b_std),
            "kernel": W.ToggleButtons(options=["ntk", "nngp"], value=kernel, style={"button_width": "60px"}),
            "dim": _slider(W.IntSlider, value=dim, min=2, max=64, description="dim"),
            "ridge": W.SelectionSlider(options=list(RIDGES), value=ridge, description="ridge", continuous_update=True,
                                       style=dict(_STYLE), layout=W.Layout(width="300px")),
            "noise": _slider(W.FloatSlider, value=noise, min=0.0, max=1.0, step=0.01, description="noise σ²"),
            "teacher": W.Dropdown(options=list(TEACHERS), value=teacher, description="teacher", style=dict(_STYLE),
                                  layout=W.Layout(width="260px")),
        }
        controls["dim"].continuous_update = False
        rows = [["activation", "param", "depth", "kernel"], ["W_std", "b_std", "dim"], ["ridge", "noise", "teacher"]]
        super().__init__(controls, rows, figsize, dpi)
        self._draws_key: tuple | None = None
        self._spectrum: sp.Spectrum | None = None
        self._regression: RegressionDraws | None = None
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
        return stax.mlp(s["depth"], 512, act, W_std=s["W_std"], b_std=s["b_std"], out_dim=1)

    def compute(self, report: Callable[[float], None]) -> None:
        s, d = self.state, self.data
        net = self.network
        dim, get = int(s["dim"]), s["kernel"]
        power = np.array(TEACHERS[s["teacher"]])
        degrees = max(_degrees_for(dim, self.n_max), self.show_degrees, power.size)
        key = (repr(net), get, dim, s["teacher"])
        if key != self._draws_key:
            # One net.kernel call for the spectrum's quadrature nodes and every draw (ntkrs.spectrum.mercer's rule).
            theta, weights = sp._nodes(dim, degrees)
            self._regression = RegressionDraws(net, dim, power, self.sizes, get=get, draws=self.draws,
                                               n_test=self.n_test, seed=self.seed, angles=theta,
                                               progress=lambda done, total: report(0.8 * done / max(total, 1)))
            lam, floor = sp._project(self._regression.at_angles, theta, weights, dim, degrees)
            self._spectrum = sp._sphere_spectrum(lam, floor, dim, sp._kernel_at_one(net, get), power)
            self._draws_key = key
        spec = self._spectrum
        report(0.9)
        n = np.unique(np.round(np.geomspace(1, self.n_max, 80)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a short spectrum at dim 2: see the docs
            lc = sp.learning_curve(spec, n, ridge=float(s["ridge"]), noise=float(s["noise"]))
            at_sizes = sp.learning_curve(spec, self.sizes, ridge=float(s["ridge"]), noise=float(s["noise"]))
        errs = self._regression.errors(float(s["ridge"]), float(s["noise"]))
        report(1.0)
        d.update(degrees=np.arange(degrees), eigenvalues=spec.eigenvalues, multiplicity=spec.multiplicity,
                 power=np.concatenate([power, np.zeros(degrees - power.size)]), trace=spec.trace, n=n,
                 error=lc.error, mode_errors=lc.mode_errors, sizes=self.sizes.astype(float),
                 measured=errs.mean(axis=0), measured_sem=errs.std(axis=0, ddof=1) / math.sqrt(errs.shape[0]),
                 measured_errors=errs, predicted_at_sizes=at_sizes.error, network=net)

    def _setup_axes(self) -> None:
        fig = self.figure
        self._title = fig.suptitle("", fontsize=10)
        self.ax_e, self.ax_l, self.ax_m = fig.subplots(1, 3)
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.84, wspace=0.28)
        (self._eig,) = self.ax_e.plot([], [], "o", ms=3, color="C0", label=r"$\lambda_k$")
        (self._ring,) = self.ax_e.plot([], [], "o", ms=8, mfc="none", mec="C3", mew=1.2, label="teacher's degrees")
        self.ax_e.set(yscale="log", xlabel="degree $k$", title="Mercer eigenvalues on the sphere")
        self.ax_e.legend(loc="upper right", fontsize=8)
        (self._pred,) = self.ax_l.plot([], [], color="C0", lw=2, label="predicted")
        self._meas = self.ax_l.errorbar([1], [1], yerr=[0], fmt="o", ms=4, color="C1", capsize=2,
                                        label="measured (mean ± s.e.)")
        self.ax_l.set(xscale="log", yscale="log", xlabel="training points $P$", ylabel=r"$E_g$",
                      title="kernel regression: test error")
        self.ax_l.legend(loc="lower left", fontsize=8)
        self.ax_m.set(xscale="log", yscale="log", xlabel="training points $P$", ylim=(1e-4, 2.0),
                      title=r"predicted error per degree $E_k / v_k^2$")
        self._mode_lines = [self.ax_m.plot([], [], color=f"C{i}", lw=1.5)[0] for i in range(8)]
        for ax in (self.ax_e, self.ax_l, self.ax_m):
            ax.grid(alpha=0.3)
        self._limits: dict[str, tuple[float, float]] = {}

    def draw(self) -> None:
        d, s = self.data, self.state
        k = d["degrees"][: self.show_degrees]
        lam = d["eigenvalues"][: self.show_degrees]
        pos = lam > 0
        self._eig.set_data(k[pos], lam[pos])
        ring = pos & (d["power"][: self.show_degrees] > 0)
        self._ring.set_data(k[ring], lam[ring])
        if pos.any():
            self._limits["e"] = sticky_limits(self._limits.get("e"), float(lam[pos].min()), float(lam[pos].max()),
                                              log=True, pad=0.08, fill=0.5)
            self.ax_e.set_ylim(self._limits["e"])
        self.ax_e.set_xlim(-1, self.show_degrees)
        self._pred.set_data(d["n"], d["error"])
        self._meas.remove()
        meas, sem = d["measured"], d["measured_sem"]
        lower = np.minimum(sem, 0.95 * meas)  # log axis: keep the bar above 0
        self._meas = self.ax_l.errorbar(d["sizes"], meas, yerr=[lower, sem], fmt="o", ms=4, color="C1", capsize=2,
                                        label="measured (mean ± s.e.)")
        values = np.concatenate([d["error"], meas])
        values = values[np.isfinite(values) & (values > 0)]
        if values.size:
            self._limits["l"] = sticky_limits(self._limits.get("l"), float(values.min()), float(values.max()),
                                              log=True, pad=0.08, fill=0.4)
            self.ax_l.set_ylim(self._limits["l"])
        self.ax_l.set_xlim(0.8, self.n_max * 1.2)
        degs = np.nonzero(d["power"] > 0)[0][: len(self._mode_lines)]
        for i, line in enumerate(self._mode_lines):
            if i < degs.size:
                kk = degs[i]
                line.set_data(d["n"], d["mode_errors"][:, kk] / d["power"][kk])
                line.set_label(f"k = {kk}")
            else:
                line.set_data([], [])
                line.set_label(f"_hidden{i}")
        self.ax_m.legend(handles=self._mode_lines[: degs.size], loc="lower left", fontsize=8)
        self.ax_m.set_xlim(0.8, self.n_max * 1.2)
        act = repr(d["network"].layers[1]) if s["depth"] else "linear"
        self._title.set_text(f"{s['kernel'].upper()} of {act}, depth {s['depth']}, W_std={s['W_std']:.2f}, "
                             f"b_std={s['b_std']:.2f}; inputs uniform on the sphere in dim {s['dim']}; "
                             f"ridge {s['ridge']:g}, noise σ² = {s['noise']:.2f}")

    def describe(self) -> str:
        d = self.data
        i = len(d["sizes"]) - 1
        return (f"<small>P = {int(d['sizes'][i])}: E_g predicted {d['predicted_at_sizes'][i]:.3g}, measured "
                f"{d['measured'][i]:.3g} ± {d['measured_sem'][i]:.2g} · updated in "
                f"{1e3 * self.timings[-1]:.0f} ms</small>")

    def __repr__(self) -> str:
        return f"SpectrumExplorer({', '.join(f'{k}={v!r}' for k, v in self.state.items())})"
