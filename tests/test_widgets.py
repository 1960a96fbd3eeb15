"""The dashboards of ``ntkrs.widgets``, driven from Python (no frontend): every control changes the
data and the rendered figure as it should; and the mean-field physics behind ``PhaseDiagram`` against
independent references (closed forms, plain iteration with numpy quadrature, finite differences)."""

from __future__ import annotations

import io
import math

import ntkrs as nk
import numpy as np
import pytest
from ntkrs.widgets import ACTIVATIONS, KernelExplorer, PhaseDiagram, datasets, make_activation
from ntkrs.widgets import meanfield as mf

# --------------------------------------------------------------------------------------------
# Independent references: numpy Gauss–Hermite quadrature and plain fixed-point iteration
# --------------------------------------------------------------------------------------------

_Z, _WZ = np.polynomial.hermite_e.hermegauss(200)
_WZ = _WZ / _WZ.sum()

PHI = {
    "tanh": np.tanh,
    "erf": lambda x: np.vectorize(math.erf)(x),
    "relu": lambda x: np.maximum(x, 0.0),
    "gelu": lambda x: 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))),
}


def ref_length_map(name: str, sw2: float, sb2: float, q: float) -> float:
    """σ_w² E[φ(√q z)²] + σ_b² by 200-point Gauss–Hermite (probabilists')."""
    return sw2 * float(np.sum(_WZ * PHI[name](math.sqrt(q) * _Z) ** 2)) + sb2


def ref_q_star(name: str, sw2: float, sb2: float, steps: int = 20000) -> float:
    """Plain iteration of the reference length map from q = 1."""
    q = 1.0
    for _ in range(steps):
        new = ref_length_map(name, sw2, sb2, q)
        if abs(new - q) <= 1e-15 * new:
            return new
        q = new
    return q


def png_pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


# --------------------------------------------------------------------------------------------
# Mean-field physics
# --------------------------------------------------------------------------------------------


def test_relu_critical_line_is_sigma_w2_2():
    sw2 = np.array([0.5, 1.0, 1.9, 1.99, 2.01, 2.5, 3.5])
    sb2 = np.array([0.0, 0.01, 0.1, 0.3])[:, None]
    m = mf.mean_field(nk.Relu(), sw2[None, :], sb2)
    np.testing.assert_allclose(m.chi1, np.broadcast_to(sw2 / 2, m.chi1.shape), rtol=1e-12)
    below = sw2 < 2
    # q* = σ_b² / (1 − σ_w²/2) below the line, unbounded above it (σ_b = 0 included: q* = 0 is unstable).
    want = np.broadcast_to(sb2 / (1 - sw2[below] / 2), (4, below.sum()))
    np.testing.assert_allclose(m.q_star[:, below], want, rtol=1e-10, atol=1e-25)
    assert np.all(np.isinf(m.q_star[:, ~below]))
    assert np.all(m.c_star[1:, below] == 1.0) and np.all(np.isfinite(m.xi_c[:, below]))
    # Depth scale in the ordered phase: ξ_c = −1/ln χ₁ = −1/ln(σ_w²/2).
    np.testing.assert_allclose(m.xi_c[1:, below], np.broadcast_to(-1 / np.log(sw2[below] / 2), (3, below.sum())))


def test_tanh_critical_point_at_zero_bias_is_sigma_w2_1():
    m = mf.mean_field(nk.Tanh(), np.array([0.9, 0.99, 1.01, 1.2]), 0.0)
    assert m.chi1[0] < 1 and m.chi1[1] < 1 and m.chi1[2] > 1 and m.chi1[3] > 1
    np.testing.assert_allclose(m.chi1[:2], [0.9, 0.99], rtol=1e-6)  # q* = 0: χ₁ = σ_w² φ'(0)² = σ_w²
    assert m.q_star[0] < 1e-20 and m.q_star[3] > 0.1
    # Odd φ without bias: the chaotic fixed point is c* = 0.
    np.testing.assert_allclose(m.c_star[2:], 0.0, atol=1e-10)


def test_erf_critical_point_closed_form():
    """φ = erf: φ'(0)² = 4/π, so at σ_b = 0 the critical point is σ_w² = π/4; and the length map has
    the closed form E[erf(√q z)²] = (2/π) arcsin(2q/(1 + 2q))."""
    crit = math.pi / 4
    m = mf.mean_field(nk.Erf(), np.array([crit * 0.98, crit * 1.02]), 0.0)
    assert m.chi1[0] < 1 < m.chi1[1]
    np.testing.assert_allclose(m.chi1[0], 0.98, rtol=1e-8)
    for sw2, sb2 in [(0.5, 0.1), (1.5, 0.05), (3.0, 0.2)]:
        q = 1.0
        for _ in range(100000):
            new = sw2 * (2 / math.pi) * math.asin(2 * q / (1 + 2 * q)) + sb2
            if abs(new - q) < 1e-15 * new:
                break
            q = new
        np.testing.assert_allclose(mf.q_star(nk.Erf(), sw2, sb2), q, rtol=1e-11)


@pytest.mark.parametrize("name,sw2,sb2", [("tanh", 1.5, 0.05), ("tanh", 2.5, 0.2), ("erf", 0.8, 0.3),
                                          ("gelu", 1.2, 0.1), ("relu", 1.5, 0.1)])
def test_q_star_matches_plain_iteration_with_numpy_quadrature(name, sw2, sb2):
    act = make_activation(name)
    got = float(mf.q_star(act, sw2, sb2))
    want = ref_q_star(name, sw2, sb2)
    np.testing.assert_allclose(got, want, rtol=1e-7)
    np.testing.assert_allclose(float(mf.length_map(act, sw2, sb2, got)), got, rtol=1e-12)


@pytest.mark.parametrize("name,sw2,sb2", [("erf", 1.0, 0.05), ("erf", 3.0, 0.05), ("tanh", 2.0, 0.05),
                                          ("gelu", 2.0, 0.1)])
def test_chi_by_finite_differences_of_the_correlation_map(name, sw2, sb2):
    act = make_activation(name)
    m = mf.mean_field(act, sw2, sb2)
    q = float(m.q_star)
    h = 1e-5
    # χ₁: the slope of the correlation map at c = 1 (one-sided, second order).
    f = mf.correlation_map(act, sw2, sb2, q, np.array([1.0, 1 - h, 1 - 2 * h]))[0]
    np.testing.assert_allclose(f[0], 1.0, rtol=1e-9)
    slope = (3 * f[0] - 4 * f[1] + f[2]) / (2 * h)
    np.testing.assert_allclose(float(m.chi1), slope, rtol=1e-5)
    # c* is a fixed point and χ_c the (central-difference) slope there.
    c = float(m.c_star)
    fc = mf.correlation_map(act, sw2, sb2, q, np.array([c, c - h, c + h]) if c < 1 else np.array([c, c - h, c]))[0]
    np.testing.assert_allclose(fc[0], c, atol=1e-10)
    if c < 1:
        assert m.chi1 > 1 and m.chi_c < 1
        np.testing.assert_allclose(float(m.chi_c), (fc[2] - fc[1]) / (2 * h), rtol=1e-5)
        np.testing.assert_allclose(float(m.xi_c), -1 / math.log(float(m.chi_c)), rtol=1e-12)
    else:
        assert m.chi1 <= 1 and m.chi_c == m.chi1


def test_correlation_converges_at_the_depth_scale():
    """|c^l − c*| shrinks by χ_c per layer near c*: the definition of ξ_c."""
    act, sw2, sb2 = nk.Erf(), 2.5, 0.05
    m = mf.mean_field(act, sw2, sb2)
    c = float(m.c_star) + 1e-4
    for _ in range(5):
        new = float(mf.correlation_map(act, sw2, sb2, float(m.q_star), c)[0])
        ratio = (new - float(m.c_star)) / (c - float(m.c_star))
        c = new
    np.testing.assert_allclose(ratio, float(m.chi_c), rtol=1e-3)
    np.testing.assert_allclose(ratio ** float(m.xi_c), math.exp(-1), rtol=1e-2)


# --------------------------------------------------------------------------------------------
# KernelExplorer
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def explorer() -> KernelExplorer:
    return KernelExplorer()


def test_kernel_explorer_data_matches_the_network(explorer):
    explorer.set(activation="erf", depth=4, W_std=1.3, b_std=0.2, parameterization="ntk", dataset="circle",
                 n_points=64)
    d = explorer.data
    net = nk.mlp(4, 512, nk.Erf(), W_std=1.3, b_std=0.2)
    theta = d["theta"]
    x = np.sqrt(2) * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    k = net.kernel(x[:1], x)
    np.testing.assert_allclose(d["nngp"], k.nngp[0], rtol=1e-12)
    np.testing.assert_allclose(d["ntk"], k.ntk[0], rtol=1e-12)
    assert d["nngp_normalised"][0] == 1.0 and d["ntk_normalised"][0] == 1.0
    gram = net.kernel(datasets.circle(64))
    np.testing.assert_allclose(d["eig_nngp"], np.linalg.eigvalsh(gram.nngp)[::-1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d["eig_ntk"], np.linalg.eigvalsh(gram.ntk)[::-1], rtol=1e-9, atol=1e-12)
    assert d["x"].shape == (64, 2)


@pytest.mark.parametrize("change", [{"W_std": 2.0}, {"b_std": 0.6}, {"depth": 7}, {"activation": "gelu"},
                                    {"activation": "leaky_relu", "param": -0.3}, {"parameterization": "standard"}])
def test_kernel_explorer_controls_change_data_and_figure(explorer, change):
    explorer.set(activation="relu", depth=3, W_std=1.5, b_std=0.05, parameterization="ntk", dataset="circle",
                 n_points=128)
    before = {k: np.copy(v) for k, v in explorer.data.items() if isinstance(v, np.ndarray)}
    pixels = explorer.pixels()
    explorer.set(**change)
    assert explorer.state[next(iter(change))] == change[next(iter(change))]
    assert not np.allclose(explorer.data["ntk"], before["ntk"])
    assert not np.allclose(explorer.data["eig_ntk"], before["eig_ntk"])
    assert np.array_equal(explorer.data["theta"], before["theta"])
    assert (explorer.pixels() != pixels).any(axis=-1).sum() > 200
    assert explorer.png.startswith(b"\x89PNG")


def test_kernel_explorer_width_matters_only_for_the_standard_parameterization(explorer):
    explorer.set(activation="relu", parameterization="ntk", width=512, dataset="circle", n_points=64)
    ntk = explorer.data["ntk"].copy()
    explorer.set(width=64)
    np.testing.assert_array_equal(explorer.data["ntk"], ntk)
    explorer.set(parameterization="standard", width=512)
    std512 = explorer.data["ntk"].copy()
    nngp = explorer.data["nngp"].copy()
    explorer.set(width=64)
    assert not np.allclose(explorer.data["ntk"], std512)
    np.testing.assert_array_equal(explorer.data["nngp"], nngp)
    explorer.set(parameterization="ntk", width=512)


def test_kernel_explorer_datasets(explorer):
    for name, n, dim in [("circle", 50, 2), ("sphere", 80, 3), ("digits", 300, 64)]:
        explorer.set(dataset=name, n_points=n)
        x = explorer.data["x"]
        assert x.shape == (n, dim)
        np.testing.assert_allclose(np.sum(x * x, axis=1) / dim, 1.0, rtol=1e-12)  # on the sphere x·x/d = 1
        assert explorer.data["eig_nngp"].shape == (n,)
        assert np.all(np.diff(explorer.data["eig_nngp"]) <= 1e-12)
    explorer.set(dataset="circle", n_points=128)


def test_kernel_explorer_activation_parameter_slider(explorer):
    explorer.set(activation="relu")
    assert explorer.controls["param"].layout.visibility == "hidden"
    explorer.set(activation="leaky_relu")
    slider = explorer.controls["param"]
    assert slider.layout.visibility == "visible" and slider.value == 0.1 and slider.description == "alpha"
    assert repr(explorer.data["network"].layers[1]) == "LeakyRelu(alpha=0.1)"
    explorer.set(param=0.5)
    assert repr(explorer.data["network"].layers[1]) == "LeakyRelu(alpha=0.5)"
    explorer.set(activation="relu")


def test_controls_have_their_own_layouts(explorer, phase):
    """A Layout shared between widgets hides them all when one (the parameter slider) is hidden."""
    for dash in (explorer, phase):
        layouts = [id(c.layout) for c in dash.controls.values()]
        assert len(set(layouts)) == len(layouts)


def test_every_named_activation_is_offered():
    """Every activation of the core's registry is offered, but the two that need a coefficient list or
    a function (Polynomial, Elementwise)."""
    from ntkrs.layers import ACTIVATION_CLASSES

    offered = {type(make_activation(name)) for name in ACTIVATIONS}
    assert offered == set(ACTIVATION_CLASSES.values()) - {nk.Polynomial, nk.Elementwise}


def test_kernel_explorer_widget_events_update_like_set(explorer):
    """Moving a control (as the frontend does) updates data and image once, like ``set``."""
    explorer.set(activation="relu", W_std=1.5)
    png, n = explorer.png, len(explorer.timings)
    explorer.controls["W_std"].value = 1.8
    assert len(explorer.timings) == n + 1 and explorer.png != png
    ref = KernelExplorer(W_std=1.8, n_points=explorer.state["n_points"])
    np.testing.assert_array_equal(ref.data["ntk"], explorer.data["ntk"])
    # The blitted frame is the frame a full redraw of the same state gives.
    blitted = explorer.pixels()
    explorer.update(full=True)
    assert np.array_equal(blitted, explorer.pixels())


def test_kernel_explorer_errors(explorer):
    with pytest.raises(ValueError, match="unknown control"):
        explorer.set(Wstd=1.0)
    with pytest.raises(ValueError, match="not one of"):
        explorer.set(activation="nope")
    with pytest.raises(ValueError, match="outside"):
        explorer.set(W_std=-1.0)
    with pytest.raises(ValueError, match="unknown name"):
        KernelExplorer(activation="nope")
    # exp(2x) overflows the kernel at this scale: set() raises ...
    with pytest.raises(nk.NonFiniteError, match="overflow|finite|large|inf"):
        explorer.set(activation="exp", param=2.0, b_std=2.0, W_std=4.0, depth=30)
    # ... while a failing update from the frontend shows in the status line and keeps the last figure.
    png = explorer.png
    explorer.controls["depth"].value = 29
    assert explorer.error and "NonFiniteError" in explorer.status.value and explorer.png == png
    explorer.set(activation="relu", W_std=1.5, b_std=0.05, depth=3)
    assert explorer.error is None


def test_kernel_explorer_busy_indicator_and_savefig(tmp_path):
    ke = KernelExplorer(n_points=64)
    seen = []
    ke.progress.observe(lambda ch: seen.append(ch["new"]), names="value")
    ke.busy_after = 0.0
    ke.set(W_std=2.0)
    assert ke.busy_shown >= 1 and seen and max(seen) == 1.0
    assert ke.progress.layout.visibility == "hidden"  # hidden again afterwards
    ke.busy_after = 10.0
    shown = ke.busy_shown
    ke.set(W_std=1.0)
    assert ke.busy_shown == shown
    ke.savefig(tmp_path / "k.png")
    assert (tmp_path / "k.png").read_bytes().startswith(b"\x89PNG")
    assert png_pixels(ke.png).shape == (int(3.6 * 80), int(12 * 80), 4)


# --------------------------------------------------------------------------------------------
# KernelExplorer on images: the convolutional networks
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cnn_explorer() -> KernelExplorer:
    return KernelExplorer(network="CNN (Flatten)", dataset="digits", n_points=40)


def conv_net(readout, depth, phi, W_std, b_std, parameterization="ntk", width=512):
    layers = []
    for _ in range(depth):
        layers += [nk.stax.Conv(width, (3, 3), padding="SAME", W_std=W_std, b_std=b_std,
                                parameterization=parameterization), phi]
    return nk.stax.serial(*layers, readout, nk.stax.Dense(1, W_std=W_std, b_std=b_std,
                                                          parameterization=parameterization))


@pytest.mark.parametrize("network, readout", [("CNN (Flatten)", nk.stax.Flatten), ("CNN (GAP)", nk.stax.GlobalAvgPool)])
def test_kernel_explorer_cnn_grams_match_the_network(cnn_explorer, network, readout):
    """The Gram matrices of ``depth × [Conv(3×3, SAME), φ]`` + readout + Dense(1) on the digits as
    8×8 images: as the network built by hand computes them, normalised and sorted by label as
    drawn, with their spectra."""
    cnn_explorer.set(network=network, activation="erf", depth=2, W_std=1.3, b_std=0.2, n_points=40)
    d = cnn_explorer.data
    images, labels = d["x"], d["labels"]
    assert images.shape == (40, 8, 8, 1) and labels.shape == (40,)
    np.testing.assert_array_equal(images.reshape(40, 64), datasets.digits(40))  # the same digits as the MLP's
    from sklearn.datasets import load_digits

    raw = load_digits()
    perm = np.random.default_rng(0).permutation(len(raw.target))  # datasets' fixed shuffle
    np.testing.assert_array_equal(labels, raw.target[perm][:40])
    centred = raw.data - raw.data.mean(axis=0)
    np.testing.assert_allclose(images[5, :, :, 0], datasets.to_sphere(centred[perm][5:6]).reshape(8, 8), rtol=1e-12)
    k = conv_net(readout(), 2, nk.Erf(), 1.3, 0.2).kernel(images)
    np.testing.assert_array_equal(d["gram_nngp"], k.nngp)
    np.testing.assert_array_equal(d["gram_ntk"], k.ntk)
    order = np.argsort(labels, kind="stable")
    assert np.all(np.diff(labels[order]) >= 0)
    for g in ("nngp", "ntk"):
        gram = getattr(k, g)
        cos = gram[np.ix_(order, order)] / np.sqrt(np.outer(np.diag(gram)[order], np.diag(gram)[order]))
        np.testing.assert_allclose(d[f"gram_{g}_normalised"], cos, rtol=1e-12)
        np.testing.assert_allclose(np.diag(d[f"gram_{g}_normalised"]), 1.0, rtol=1e-12)
        np.testing.assert_allclose(d[f"eig_{g}"], np.linalg.eigvalsh(gram)[::-1], rtol=1e-9, atol=1e-12)
    assert "theta" not in d and "nngp" not in d  # the MLP's angle panels are not drawn
    assert repr(d["network"]) == repr(conv_net(readout(), 2, nk.Erf(), 1.3, 0.2))
    # what is drawn: the images' pixels are the normalised Grams, the colour span their off-diagonal range
    art = cnn_explorer._grams["ntk"]
    assert np.array_equal(art.get_array(), d["gram_ntk_normalised"])
    off = d["gram_ntk_normalised"][~np.eye(40, dtype=bool)]
    assert art.get_clim() == (off.min(), off.max())
    assert f"{off.min():.3f}" in cnn_explorer.ax_gn.get_title()


def test_kernel_explorer_switches_between_the_mlp_and_the_cnns():
    ke = KernelExplorer(n_points=100)
    assert ke.state["network"] == "MLP" and ke.state["dataset"] == "circle"
    mlp_png = ke.pixels()
    ke.set(network="CNN (GAP)")  # a non-image dataset becomes the digits; GAP keeps at most 48 images
    assert ke.state["dataset"] == "digits" and ke.state["n_points"] == 48
    assert list(ke.controls["dataset"].options) == list(datasets.IMAGE_DATASETS)
    assert ke.data["x"].shape == (48, 8, 8, 1) and ke.ax_gk.get_visible() and not ke.ax_k.get_visible()
    gap_png = ke.pixels()
    assert (gap_png != mlp_png).any(axis=-1).sum() > 5000
    with pytest.raises(ValueError, match="not one of"):
        ke.set(dataset="circle")
    ke.set(network="CNN (Flatten)", n_points=200)  # an explicit n_points wins
    assert ke.data["x"].shape == (200, 8, 8, 1)
    # blitting (sliders) draws what a full redraw of the same state draws
    ke.set(W_std=1.7)
    blitted = ke.pixels()
    ke.update(full=True)
    assert np.array_equal(blitted, ke.pixels())
    # from the frontend: one update, the dataset kept (an image dataset)
    n = len(ke.timings)
    ke.controls["network"].value = "MLP"
    assert len(ke.timings) == n + 1 and ke.state["dataset"] == "digits" and ke.ax_k.get_visible()
    assert list(ke.controls["dataset"].options) == list(datasets.DATASETS)
    assert ke.data["x"].shape == (200, 64) and "gram_ntk" not in ke.data and "labels" not in ke.data
    ke.set(dataset="circle", n_points=100, W_std=1.5)
    np.testing.assert_array_equal(ke.data["ntk"], KernelExplorer(n_points=100).data["ntk"])
    assert ke.controls["network"].value == "MLP"


def test_kernel_explorer_cnn_defaults():
    ke = KernelExplorer(network="CNN (GAP)", depth=1)
    assert ke.state["dataset"] == "digits" and ke.state["n_points"] == 48 and ke.data["x"].shape == (48, 8, 8, 1)
    assert "KernelExplorer(network='CNN (GAP)'" in repr(ke)


def test_kernel_explorer_cnn_bad_arguments():
    with pytest.raises(ValueError, match="network: unknown name"):
        KernelExplorer(network="ResNet")
    with pytest.raises(ValueError, match=r"dataset: CNN \(GAP\) takes images"):
        KernelExplorer(network="CNN (GAP)", dataset="circle")
    with pytest.raises(ValueError, match="not an image dataset"):
        datasets.load_images("sphere", 10)


# --------------------------------------------------------------------------------------------
# PhaseDiagram
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phase() -> PhaseDiagram:
    return PhaseDiagram(grid=(40, 25))


def test_phase_diagram_grid_is_the_mean_field(phase):
    phase.set(activation="erf")
    d = phase.data
    assert d["grid"].xi_c.shape == (25, 40)
    i, j = 7, 23
    m = mf.mean_field(nk.Erf(), d["sw2"][j], d["sb2"][i])
    for k in mf.MeanField._fields:
        np.testing.assert_allclose(getattr(d["grid"], k)[i, j], getattr(m, k), rtol=1e-12)


def test_phase_diagram_relu_critical_line(phase):
    phase.set(activation="relu")
    g, sw2 = phase.data["grid"], phase.data["sw2"]
    assert np.all(np.isfinite(g.q_star[:, sw2 < 2])) and np.all(np.isinf(g.q_star[:, sw2 > 2]))
    np.testing.assert_allclose(g.chi1, np.broadcast_to(sw2 / 2, g.chi1.shape), rtol=1e-12)
    phase.set(activation="erf")


def test_phase_diagram_moving_the_network_moves_the_marker_only(phase):
    phase.set(activation="erf", sigma_w2=1.0, sigma_b2=0.05, depth=30, show="xi_c")
    grid, pixels, point = phase.data["grid"], phase.pixels(), phase.data["point"]
    phase.set(sigma_w2=2.5)
    assert phase.data["grid"] is grid  # not recomputed
    p = phase.data["point"]
    assert p.chi1 > 1 > point.chi1 and p.c_star < 1 == point.c_star
    m = mf.mean_field(nk.Erf(), 2.5, 0.05)
    np.testing.assert_allclose([*p], [float(v) for v in m], rtol=1e-12)
    err = np.abs(phase.data["trajectories"] - p.c_star)  # c^l → c*, by about e^(−1/ξ_c) per layer
    assert np.all(err[:, -1] < err[:, 0] * np.exp(-30 / p.xi_c) * 3)
    assert (phase.pixels() != pixels).any(axis=-1).sum() > 200
    # The blitted frame is the frame a fresh dashboard draws in full.
    fresh = PhaseDiagram(sigma_w2=2.5, sigma_b2=0.05, depth=30, grid=(40, 25))
    assert np.array_equal(fresh.pixels(), phase.pixels())


@pytest.mark.parametrize("change", [{"activation": "relu"}, {"param": 2.0}, {"show": "chi1"}, {"show": "q_star"},
                                    {"depth": 60}, {"sigma_b2": 0.2}])
def test_phase_diagram_controls_change_the_figure(phase, change):
    phase.set(activation="erf", param=1.0, sigma_w2=1.5, sigma_b2=0.05, depth=30, show="xi_c")
    pixels, grid = phase.pixels(), phase.data["grid"]
    phase.set(**change)
    assert (phase.pixels() != pixels).any(axis=-1).sum() > 200
    if "activation" in change or "param" in change:
        assert not np.allclose(np.nan_to_num(phase.data["grid"].chi1), np.nan_to_num(grid.chi1))
    if "depth" in change:
        assert phase.data["trajectories"].shape == (3, 61)


def test_phase_diagram_numerical_activation_uses_the_coarse_grid():
    pd = PhaseDiagram(activation="tanh", grid_numerical=(5, 3), depth=3)
    assert pd.data["grid"].q_star.shape == (3, 5)
    assert pd.data["point"].chi1 == pytest.approx(float(mf.mean_field(nk.Tanh(), 1.5, 0.05).chi1), rel=1e-12)


def test_phase_diagram_follows_a_kernel_explorer():
    ke, pd = KernelExplorer(n_points=32), PhaseDiagram(grid=(20, 12))
    ke.set(activation="gelu", W_std=1.3, b_std=0.2, depth=5)
    links = pd.follow(ke)
    assert pd.state["activation"] == "gelu" and pd.state["depth"] == 5
    assert pd.state["sigma_w2"] == pytest.approx(1.69) and pd.state["sigma_b2"] == pytest.approx(0.04)
    pixels = pd.pixels()
    ke.set(W_std=1.6, b_std=0.1, depth=9)
    assert pd.state["sigma_w2"] == pytest.approx(2.56) and pd.state["sigma_b2"] == pytest.approx(0.01)
    assert pd.data["point"].chi1 == pytest.approx(float(mf.mean_field(nk.Gelu(), 2.56, 0.01).chi1), rel=1e-12)
    assert pd.data["trajectories"].shape == (3, 10) and (pd.pixels() != pixels).any()
    ke.set(activation="leaky_relu", param=0.3)
    assert repr(pd.activation) == "LeakyRelu(alpha=0.3)"
    for link in links:
        link.unlink()
    ke.set(W_std=1.0)
    assert pd.state["sigma_w2"] == pytest.approx(2.56)


@pytest.mark.parametrize("name", [n for n, c in ACTIVATIONS.items() if not c.numerical])
def test_every_closed_form_activation_runs_in_both_dashboards(explorer, phase, name):
    explorer.set(activation=name, W_std=1.5, b_std=0.05, depth=3)
    assert explorer.error is None and np.isfinite(explorer.data["ntk"]).all()
    phase.set(activation=name, sigma_w2=1.5, sigma_b2=0.05)
    assert phase.error is None
    g = phase.data["grid"]
    assert g.q_star.shape == (25, 40) and not np.isnan(g.q_star).any()  # finite, or inf where unbounded
    explorer.set(activation="relu")
    phase.set(activation="erf")


def test_mean_field_marks_overflowing_expectations_as_unbounded():
    """Exp's second moment overflows at large variance (the core raises there): q* = inf, no error."""
    m = mf.mean_field(nk.Exp(b=0.5), np.array([0.2, 3.0]), 0.05)
    assert np.isfinite(m.q_star[0]) and np.isinf(m.q_star[1]) and np.isnan(m.xi_c[1])


def test_mean_field_marks_divergent_expectations_as_unbounded():
    """Gaussian(b > 0) has no second moment once 4·b·q ≥ 1 (the core raises NonFiniteError): q* = inf."""
    with pytest.raises(nk.NonFiniteError, match="diverges"):
        nk.Gaussian(1.0, 0.2).maps(4.0, 4.0, 4.0)
    m = mf.mean_field(nk.Gaussian(1.0, 0.2), np.array([0.2, 30.0]), 0.05)
    assert np.isfinite(m.q_star[0]) and np.isinf(m.q_star[1])


def test_mean_field_lets_other_errors_through():
    """Only overflow and divergence mean "unbounded": an activation function that fails, or one
    that returns garbage, is an error of the call, never a silent inf."""
    def broken(x):
        raise ValueError("broken on purpose")

    with pytest.raises(ValueError, match="broken on purpose") as e:
        mf.mean_field(nk.Elementwise(broken), np.array([0.5, 1.5]), 0.05)
    assert not isinstance(e.value, nk.NonFiniteError)
    with pytest.raises(ValueError, match="vectorised"):
        mf.q_star(nk.Elementwise(lambda x: np.zeros(3)), 1.5, 0.05)
