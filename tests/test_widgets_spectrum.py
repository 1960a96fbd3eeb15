"""``SpectrumExplorer`` driven from Python: its eigenvalues and predicted curves are
``ntkrs.spectrum``'s, its measured curves are kernel ridge regression solved directly, and every control
changes what it should (and only that)."""

from __future__ import annotations

import ntkrs as nk
import numpy as np
import pytest
from ntkrs import spectrum as sp
from ntkrs.widgets import ACTIVATIONS, SpectrumExplorer
from ntkrs.widgets.spectrum import RIDGES, TEACHERS, RegressionDraws


@pytest.fixture(scope="module")
def explorer() -> SpectrumExplorer:
    return SpectrumExplorer()


def test_spectrum_explorer_data_is_the_spectrum_module(explorer):
    explorer.set(activation="erf", depth=3, W_std=1.3, b_std=0.2, kernel="ntk", dim=7, ridge=0.01, noise=0.1,
                 teacher="degrees 1-3")
    d = explorer.data
    net = nk.mlp(3, 512, nk.Erf(), W_std=1.3, b_std=0.2)
    degrees = d["degrees"].size
    spec = sp.mercer_spectrum(net, 7, degrees, "ntk", TEACHERS["degrees 1-3"])
    # The dashboard evaluates the kernel at mercer's nodes in its own net.kernel call (7-D points): the same
    # eigenvalues up to rounding.
    _, floor = sp.mercer(net, 7, degrees, "ntk", error=True)
    assert np.all(np.abs(d["eigenvalues"] - spec.eigenvalues) <= 10 * floor + 1e-12 * spec.eigenvalues)
    assert d["trace"] == spec.trace
    np.testing.assert_array_equal(d["multiplicity"], sp.multiplicity(7, np.arange(degrees)))
    lc = sp.learning_curve(spec, d["n"], ridge=0.01, noise=0.1)
    np.testing.assert_allclose(d["error"], lc.error, rtol=1e-9)
    np.testing.assert_allclose(d["mode_errors"], lc.mode_errors, rtol=1e-9, atol=1e-15)
    # The listed modes outnumber the largest P twenty-fold.
    assert np.sum(d["multiplicity"]) >= 20 * d["n"].max()


def test_regression_draws_are_kernel_ridge_regression():
    net = nk.mlp(2, 64, "relu", W_std=1.5, b_std=0.1)
    sizes = np.array([5, 20, 60])
    angles = np.linspace(0.1, 3.0, 7)
    reg = RegressionDraws(net, 4, np.array([0.2, 0.5, 0.3]), sizes, draws=3, n_test=80, seed=3, angles=angles)
    np.testing.assert_allclose(reg.at_angles, sp._dot_product_kernel(net, np.cos(angles), "ntk"), rtol=1e-12)
    for ridge, noise in ((0.5, 0.2), (1e-3, 0.0), (0.0, 0.0)):
        got = reg.errors(ridge, noise)
        for d in range(3):
            x, f, eps = reg.x[d], reg.f[d], reg.eps[d]
            pmax = sizes.max()
            y = f[:pmax] + np.sqrt(noise) * eps
            for j, p in enumerate(sizes):
                k = net.kernel(x[:p], get="ntk")
                alpha = np.linalg.solve(k + ridge * np.eye(p), y[:p])
                pred = net.kernel(x[pmax:], x[:p], get="ntk") @ alpha
                np.testing.assert_allclose(got[d, j], np.mean((pred - f[pmax:]) ** 2), rtol=1e-6)
    np.testing.assert_allclose(np.sum(reg.x**2, axis=-1) / 4, 1.0, rtol=1e-12)  # on the sphere


def test_spectrum_explorer_measured_curve_agrees_with_the_prediction():
    """At the defaults (ReLU NTK, dim 10, teacher in degrees 1–3) the measured points lie within three
    standard errors of the prediction (the tests of ntkrs.spectrum check this with more draws)."""
    se = SpectrumExplorer(draws=8)
    d = se.data
    z = (d["measured"] - d["predicted_at_sizes"]) / d["measured_sem"]
    assert np.all(np.abs(z) < 3), z
    assert d["measured"][-1] < d["measured"][0] / 4


def test_ridge_and_noise_only_resolve(explorer):
    explorer.set(activation="relu", depth=2, W_std=1.5, b_std=0.1, kernel="ntk", dim=10, ridge=0.0, noise=0.0)
    reg, spec = explorer._regression, explorer._spectrum
    before = explorer.data["measured"].copy()
    pixels = explorer.pixels()
    explorer.set(ridge=0.1, noise=0.3)
    assert explorer._regression is reg and explorer._spectrum is spec
    np.testing.assert_array_equal(explorer.data["measured_errors"], reg.errors(0.1, 0.3))
    assert not np.allclose(explorer.data["measured"], before)
    assert (explorer.pixels() != pixels).any(axis=-1).sum() > 200
    explorer.set(W_std=1.7)
    assert explorer._regression is not reg and explorer._spectrum is not spec


@pytest.mark.parametrize("change", [{"W_std": 2.0}, {"b_std": 0.6}, {"depth": 5}, {"activation": "gelu"},
                                    {"kernel": "nngp"}, {"dim": 4}, {"teacher": "degree 2"},
                                    {"activation": "leaky_relu", "param": -0.3}])
def test_spectrum_explorer_controls_change_data_and_figure(explorer, change):
    explorer.set(activation="relu", depth=2, W_std=1.5, b_std=0.1, kernel="ntk", dim=10, ridge=0.0, noise=0.0,
                 teacher="degrees 1-3")
    before = {k: np.copy(v) for k, v in explorer.data.items() if isinstance(v, np.ndarray)}
    pixels = explorer.pixels()
    explorer.set(**change)
    d = explorer.data
    assert not np.allclose(d["error"], before["error"])
    assert not np.allclose(d["measured"], before["measured"])
    if "teacher" not in change:
        assert not np.array_equal(d["eigenvalues"][:5], before["eigenvalues"][:5])
    assert (explorer.pixels() != pixels).any(axis=-1).sum() > 200


@pytest.mark.parametrize("name", [n for n, c in ACTIVATIONS.items() if not c.numerical])
def test_every_closed_form_activation_runs(explorer, name):
    explorer.set(activation=name, depth=2, W_std=1.5, b_std=0.1, dim=6, ridge=1e-3, noise=0.0)
    d = explorer.data
    assert explorer.error is None
    assert np.all(d["eigenvalues"] >= 0) and np.all(np.isfinite(d["measured"]))
    assert np.all(np.isfinite(d["error"]) & (d["error"] >= 0))


def test_numerical_activation_shows_progress():
    se = SpectrumExplorer(draws=2, sizes=(8, 32), n_max=200, dim=5)
    seen = []
    se.progress.observe(lambda ch: seen.append(ch["new"]), names="value")
    se.busy_after = 0.0
    se.set(activation="tanh")
    assert se.busy_shown >= 1 and seen and max(seen) == 1.0
    assert se.progress.layout.visibility == "hidden"
    assert np.all(se.data["eigenvalues"] >= 0)


def test_spectrum_explorer_errors(explorer):
    with pytest.raises(ValueError, match="unknown control"):
        explorer.set(ridges=1.0)
    with pytest.raises(ValueError, match="not one of"):
        explorer.set(ridge=0.5)
    with pytest.raises(ValueError, match="not one of"):
        explorer.set(teacher="nope")
    with pytest.raises(ValueError, match="outside"):
        explorer.set(dim=1)
    with pytest.raises(ValueError, match="teacher"):
        SpectrumExplorer(teacher="nope")
    with pytest.raises(ValueError, match="ridge"):
        SpectrumExplorer(ridge=0.5)
    assert 0.0 in RIDGES
    for power in TEACHERS.values():
        assert sum(power) == pytest.approx(1.0)


def test_spectrum_explorer_controls_have_their_own_layouts(explorer):
    """A Layout shared between widgets hides them all when one (the parameter slider) is hidden."""
    layouts = [id(c.layout) for c in explorer.controls.values()]
    assert len(set(layouts)) == len(layouts)
    assert set(explorer.controls) == {"activation", "param", "depth", "W_std", "b_std", "kernel", "dim", "ridge",
                                      "noise", "teacher"}
