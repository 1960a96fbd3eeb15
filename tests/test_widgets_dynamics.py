"""``ConvergenceExplorer`` and ``TrainingExplorer`` driven from Python (no frontend): every control changes
the data and the rendered figure as it should, and the numbers agree with independent computations
(``net.empirical_ntk`` of ``net.init(2, seed=k)``, ``net.kernel``, ``net.train``,
``predict.gradient_descent_mse_ensemble``)."""

from __future__ import annotations

import ntkrs as nk
import numpy as np
import pytest
from ntkrs import predict
from ntkrs.widgets import ConvergenceExplorer, TrainingExplorer, datasets
from ntkrs.widgets.training import log_times, train_recorded

X0 = np.array([[1.0, 0.0]])


def changed_pixels(a: np.ndarray, b: np.ndarray) -> int:
    return int((a != b).any(axis=-1).sum())


# --------------------------------------------------------------------------------------------
# ConvergenceExplorer
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conv() -> ConvergenceExplorer:
    return ConvergenceExplorer(ladder=(16, 64, 256), ladder_inits=16)


def test_convergence_curves_are_empirical_ntks_and_the_limit_is_the_kernel(conv):
    conv.set(activation="erf", depth=2, W_std=1.3, b_std=0.1, width=128, n_inits=3)
    d = conv.data
    gamma = np.linspace(-np.pi, np.pi, 64)
    x = np.stack([np.cos(gamma), np.sin(gamma)], axis=1)
    np.testing.assert_array_equal(d["gamma"], gamma)
    np.testing.assert_array_equal(d["x"], x)
    net = nk.mlp(2, 128, nk.Erf(), W_std=1.3, b_std=0.1)
    assert d["curves"].shape == (3, 64)
    for k in range(3):
        np.testing.assert_allclose(d["curves"][k], net.empirical_ntk(net.init(2, seed=k), X0, x)[0], rtol=1e-13)
    limit = net.kernel(X0, x, get="ntk")[0]
    np.testing.assert_allclose(d["limit"], limit, rtol=1e-13)
    np.testing.assert_allclose(d["mean"], d["curves"].mean(axis=0), rtol=1e-13)
    dev = [np.sqrt(np.sum((c - limit) ** 2) / np.sum(limit**2)) for c in d["curves"]]
    np.testing.assert_allclose(d["deviations"], dev, rtol=1e-12)
    np.testing.assert_allclose(d["error"], np.mean(dev), rtol=1e-12)


def test_convergence_ladder_is_the_mean_deviation_and_decreases_like_one_over_sqrt_width(conv):
    conv.set(activation="erf", depth=2, W_std=1.3, b_std=0.1, width=64, n_inits=16)
    d = conv.data
    np.testing.assert_array_equal(d["widths"], [16, 64, 256])
    x = d["x"]
    for i, w in enumerate((16, 256)):
        net = nk.mlp(2, w, nk.Erf(), W_std=1.3, b_std=0.1)
        limit = net.kernel(X0, x, get="ntk")[0]
        dev = [np.linalg.norm(net.empirical_ntk(net.init(2, seed=k), X0, x)[0] - limit) / np.linalg.norm(limit)
               for k in range(16)]
        np.testing.assert_allclose(d["errors"][2 * i], np.mean(dev), rtol=1e-12)
        np.testing.assert_allclose(d["errors_sem"][2 * i], np.std(dev, ddof=1) / 4, rtol=1e-10)
    # The current width is on the ladder with as many inits: the star is the ladder's point.
    np.testing.assert_allclose(d["error"], d["errors"][1], rtol=1e-14)
    # Error falls with width, about as 1/√width (×16 in width: ÷4 in error, within sampling noise).
    assert np.all(np.diff(d["errors"]) < 0)
    slope = np.polyfit(np.log(d["widths"]), np.log(d["errors"]), 1)[0]
    assert -0.8 < slope < -0.3, slope
    c = np.exp(np.mean(np.log(d["errors"]) + 0.5 * np.log(d["widths"])))
    np.testing.assert_allclose(d["reference"], c / np.sqrt(d["widths"]), rtol=1e-12)


def test_convergence_default_relu_error_falls_over_the_default_ladder():
    ce = ConvergenceExplorer(ladder=(16, 64, 256, 1024), ladder_inits=8)
    e = ce.data["errors"]
    assert e[-1] < e[0] / 4 and e[-1] < e[1]
    assert ce.state == {"activation": "relu", "param": ce.controls["param"].value, "depth": 3, "W_std": 1.5,
                        "b_std": 0.05, "width": 256, "n_inits": 5}
    assert ce.data["curves"].shape == (5, 64)


@pytest.mark.parametrize("change", [{"width": 512}, {"width": 32}, {"n_inits": 9}, {"n_inits": 1}])
def test_convergence_width_and_inits_change_curves_not_the_ladder(conv, change):
    conv.set(activation="relu", depth=3, W_std=1.5, b_std=0.05, width=128, n_inits=4)
    errors, limit, curves = conv.data["errors"], conv.data["limit"], conv.data["curves"].copy()
    pixels = conv.pixels()
    conv.set(**change)
    d = conv.data
    assert d["errors"] is errors and d["limit"] is limit  # the ladder and the limit are not recomputed
    assert d["curves"].shape == (conv.state["n_inits"], 64)
    if "width" in change:
        assert not np.allclose(d["curves"], curves)
    else:  # the same networks, more or fewer of them
        n = min(len(curves), len(d["curves"]))
        np.testing.assert_array_equal(d["curves"][:n], curves[:n])
    assert changed_pixels(conv.pixels(), pixels) > 100
    # The blitted frame is the frame a full redraw of the same state gives.
    blitted = conv.pixels()
    conv.update(full=True)
    assert np.array_equal(blitted, conv.pixels())


@pytest.mark.parametrize("change", [{"W_std": 1.2}, {"b_std": 0.5}, {"depth": 2}, {"activation": "gelu"},
                                    {"activation": "leaky_relu", "param": -0.2}])
def test_convergence_network_controls_recompute_everything(conv, change):
    conv.set(activation="relu", depth=3, W_std=1.5, b_std=0.05, width=64, n_inits=3)
    before = {k: np.copy(conv.data[k]) for k in ("limit", "curves", "errors")}
    pixels = conv.pixels()
    conv.set(**change)
    for k, v in before.items():
        assert not np.allclose(conv.data[k], v), k
    assert changed_pixels(conv.pixels(), pixels) > 300
    s = conv.state
    net = conv.data["network"]
    assert net.layers[0].W_std == s["W_std"] and len(net.layers) == 2 * s["depth"] + 1
    np.testing.assert_allclose(conv.data["limit"], net.kernel(X0, conv.data["x"], get="ntk")[0], rtol=1e-13)


def test_convergence_widget_events_and_errors(conv):
    conv.set(activation="relu", depth=3, W_std=1.5, b_std=0.05, width=64, n_inits=3)
    n, png = len(conv.timings), conv.png
    conv.controls["width"].value = 128  # as the frontend does
    assert len(conv.timings) == n + 1 and conv.png != png and conv.data["curves"].shape == (3, 64)
    with pytest.raises(ValueError, match="not one of"):
        conv.set(width=100)
    with pytest.raises(ValueError, match="outside"):
        conv.set(n_inits=0)
    with pytest.raises(ValueError, match="not one of"):
        ConvergenceExplorer(width=100)
    with pytest.raises(ValueError, match="ladder"):
        ConvergenceExplorer(ladder=(64,))
    assert "ConvergenceExplorer(" in repr(conv) and conv.png.startswith(b"\x89PNG")


# --------------------------------------------------------------------------------------------
# TrainingExplorer
# --------------------------------------------------------------------------------------------

STEPS = 400


@pytest.fixture(scope="module")
def trainer() -> TrainingExplorer:
    return TrainingExplorer(width=256, n_nets=3, max_steps=STEPS)


def reference_lr(fraction: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y, xt, yt = datasets.sin_regression()
    k = nk.mlp(1, 1, nk.Erf(), W_std=1.5, b_std=0.05).kernel(x, get="ntk")
    return fraction * predict.max_learning_rate(k, y.size), x, y, xt, yt


def test_log_times_and_sin_regression():
    np.testing.assert_array_equal(log_times(100), [0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80,
                                                   100])
    np.testing.assert_array_equal(log_times(70, per_decade=4), [0, 1, 2, 3, 5, 7, 10, 20, 30, 50, 70])
    assert log_times(1234)[-1] == 1234
    x, y, xt, yt = datasets.sin_regression(7, 30, noise=0.0, seed=3)
    assert x.shape == y.shape == (7, 1) and xt.shape == yt.shape == (30, 1)
    np.testing.assert_allclose(y, np.sin(x))
    np.testing.assert_allclose(yt, np.sin(xt))
    assert np.all(np.abs(x) <= np.pi) and xt[0, 0] == -np.pi and xt[-1, 0] == np.pi


def test_train_recorded_is_one_train_run():
    _, x, y, xt, yt = reference_lr(0.5)
    net = nk.mlp(1, 64, nk.Erf(), W_std=1.5, b_std=0.05)
    p = net.init(1, seed=2)
    times = [0, 1, 5, 10, 40, 50, 100]
    tr = train_recorded(net, p, x, y, 0.1, times, x_test=xt, y_test=yt)
    one = net.train(p, x, y, 0.1, 100, record_every=5, x_test=xt, y_test=yt)
    assert isinstance(tr, nk.stax.Trajectory) and tr.learning_rate == 0.1
    np.testing.assert_array_equal(tr.steps, times)
    for i, t in enumerate(times):
        j = list(one.steps).index(t) if t in one.steps else None
        if j is not None:
            for field in ("f_train", "f_test", "loss_train", "loss_test"):
                np.testing.assert_array_equal(getattr(tr, field)[i], getattr(one, field)[j])
    for a, b in zip(tr.params, one.params, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="times"):
        train_recorded(net, p, x, y, 0.1, [1, 2])


def test_training_ensemble_band_is_gradient_descent_mse_ensemble(trainer):
    trainer.set(lr_fraction=0.5, width=256, n_nets=3, time=50)
    d = trainer.data
    lr, x, y, xt, yt = reference_lr(0.5)
    np.testing.assert_allclose(d["learning_rate"], lr, rtol=1e-12)
    np.testing.assert_array_equal(d["x_train"], x)
    net = nk.mlp(1, 256, nk.Erf(), W_std=1.5, b_std=0.05)
    g = predict.gradient_descent_mse_ensemble(net, x, y, lr)(xt, t=50.0, get="ntk", compute_cov=True)
    sd = np.sqrt(np.diag(g.covariance))
    np.testing.assert_allclose(d["mean"], g.mean[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d["lower"], g.mean[:, 0] - 2 * sd, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d["upper"], g.mean[:, 0] + 2 * sd, rtol=1e-9, atol=1e-12)
    # Expected losses: at t = 0 the outputs are the NNGP prior (mean 0), so E loss = (‖y‖² + tr K)/(2n).
    k = net.kernel(x, get="nngp")
    np.testing.assert_allclose(d["ens_loss_train"][0], (np.sum(y**2) + np.trace(k)) / (2 * y.size), rtol=1e-10)
    kt = net.kernel(xt, get="nngp")
    np.testing.assert_allclose(d["ens_loss_test"][0], (np.sum(yt**2) + np.trace(kt)) / (2 * yt.size), rtol=1e-10)
    assert d["ens_loss_train"][-1] < 0.05 * d["ens_loss_train"][0]


def test_training_nets_are_net_train_at_the_slider_time(trainer):
    trainer.set(lr_fraction=0.5, width=256, n_nets=3, time=80)
    d = trainer.data
    lr, x, y, xt, yt = reference_lr(0.5)
    net = nk.mlp(1, 256, nk.Erf(), W_std=1.5, b_std=0.05)
    assert d["t"] == 80 and d["times"][d["index"]] == 80
    for k in range(3):
        tr = net.train(net.init(1, seed=k), x, y, lr, 80, record_every=40, x_test=xt, y_test=yt)
        np.testing.assert_array_equal(d["nets"][k], tr.f_test[-1, :, 0])
        np.testing.assert_array_equal(d["loss_train"][k, d["index"]], tr.loss_train[-1])
        np.testing.assert_array_equal(d["loss_test"][k, d["index"]], tr.loss_test[-1])
        np.testing.assert_array_equal(d["trajectories"][k].f_test[list(d["times"]).index(40)], tr.f_test[1])


def test_training_time_slider_only_indexes(trainer):
    trainer.set(lr_fraction=0.5, width=256, n_nets=3, time=10)
    d = trainer.data
    trajs, f_test, mean = d["trajectories"], d["f_test"], d["mean"].copy()
    pixels = trainer.pixels()
    for t in (20, 200, STEPS):
        trainer.set(time=t)
        assert trainer.data["trajectories"] is trajs and trainer.data["f_test"] is f_test  # nothing retrained
        i = list(d["times"]).index(t)
        np.testing.assert_array_equal(trainer.data["nets"], f_test[:, i])
        np.testing.assert_array_equal(trainer.data["mean"], d["ens_mean"][i])
    assert not np.allclose(trainer.data["mean"], mean)
    assert changed_pixels(trainer.pixels(), pixels) > 200
    blitted = trainer.pixels()
    trainer.update(full=True)
    assert np.array_equal(blitted, trainer.pixels())
    # Moving the slider from the frontend updates once.
    n = len(trainer.timings)
    trainer.controls["time"].value = 100
    assert len(trainer.timings) == n + 1 and trainer.data["t"] == 100


def test_training_width_retrains_the_networks_not_the_ensemble(trainer):
    trainer.set(lr_fraction=0.5, width=256, n_nets=3, time=STEPS)
    d = trainer.data
    nets, mean, pixels = d["nets"].copy(), d["ens_mean"], trainer.pixels()
    trainer.set(width=64)
    assert trainer.data["ens_mean"] is mean
    assert not np.allclose(trainer.data["nets"], nets)
    assert trainer.data["network"].layers[0].out_dim == 64
    assert changed_pixels(trainer.pixels(), pixels) > 300
    trainer.set(width=256)
    np.testing.assert_array_equal(trainer.data["nets"], nets)  # the same seeds: the same networks


def test_training_depth_control_trains_deeper_networks_against_their_own_ensemble(trainer):
    """depth=2: the ensemble is gradient_descent_mse_ensemble of the depth-2 network (its own NTK and
    η_max), the networks are net.train of depth-2 networks; back to depth 1 gives the depth-1 results."""
    trainer.set(lr_fraction=0.5, width=256, n_nets=3, time=STEPS, depth=1)
    mean1, nets1 = trainer.data["ens_mean"].copy(), trainer.data["nets"].copy()
    trainer.set(depth=2)
    d = trainer.data
    assert sum(isinstance(layer, nk.Dense) for layer in d["network"].leaves()) == 3
    x, y, xt, yt = datasets.sin_regression()
    net2 = nk.mlp(2, 256, nk.Erf(), W_std=1.5, b_std=0.05, out_dim=1)
    lr = 0.5 * predict.max_learning_rate(net2.kernel(x, get="ntk"), y.size)
    assert d["learning_rate"] == pytest.approx(lr, rel=1e-12)
    want = predict.gradient_descent_mse_ensemble(net2, x, y, lr)(xt, t=STEPS, get="ntk")
    np.testing.assert_allclose(d["mean"], want[..., 0], rtol=1e-9, atol=1e-12)
    traj = net2.train(net2.init(1, seed=0), x, y, learning_rate=lr, steps=STEPS, x_test=xt, y_test=yt)
    np.testing.assert_allclose(d["nets"][0], traj.f_test[-1][:, 0], rtol=1e-9, atol=1e-12)
    assert not np.allclose(d["ens_mean"][-1], mean1[-1])
    trainer.set(depth=1)
    np.testing.assert_allclose(trainer.data["ens_mean"], mean1, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(trainer.data["nets"], nets1)
    with pytest.raises(ValueError, match="depth"):
        TrainingExplorer(depth=0)


def test_training_n_nets_trains_only_the_new_networks(trainer):
    trainer.set(lr_fraction=0.5, width=256, n_nets=3, time=STEPS)
    trajs = list(trainer.data["trajectories"])
    pixels = trainer.pixels()
    trainer.set(n_nets=4)
    now = trainer.data["trajectories"]
    assert len(now) == 4 and all(a is b for a, b in zip(trajs, now[:3], strict=True))
    assert trainer.data["nets"].shape == (4, 100)
    assert trainer.data["loss_train"].shape == (4, len(trainer.data["times"]))
    assert changed_pixels(trainer.pixels(), pixels) > 50
    trainer.set(n_nets=2)
    assert all(a is b for a, b in zip(trajs[:2], trainer.data["trajectories"], strict=True))
    trainer.set(n_nets=3)


def test_training_learning_rate_fraction(trainer):
    trainer.set(lr_fraction=0.5, width=256, n_nets=3, time=20)
    d = trainer.data
    before = {k: np.copy(d[k]) for k in ("ens_mean", "f_test", "ens_loss_train")}
    trainer.set(lr_fraction=0.25)
    d = trainer.data
    np.testing.assert_allclose(d["learning_rate"], 0.25 * d["max_learning_rate"], rtol=1e-14)
    np.testing.assert_allclose(d["max_learning_rate"], reference_lr(1.0)[0], rtol=1e-12)
    for k, v in before.items():
        assert not np.allclose(d[k], v), k
    # Slower learning: at the same step the losses are higher (the ensemble's decrease monotonically in t·η).
    assert np.all(d["ens_loss_train"][1:] >= before["ens_loss_train"][1:] * (1 - 1e-12))
    trainer.set(lr_fraction=0.5)


def test_training_networks_stay_within_the_ensemble_band(trainer):
    """At width 256 the trained networks are draws from (nearly) the ensemble's Gaussian: most of their
    test outputs lie within ±2σ at every time."""
    trainer.set(lr_fraction=0.5, width=256, n_nets=3)
    d = trainer.data
    lo = d["ens_mean"] - 2 * d["ens_std"]
    hi = d["ens_mean"] + 2 * d["ens_std"]
    inside = (d["f_test"] >= lo - 1e-3) & (d["f_test"] <= hi + 1e-3)
    assert inside.mean() > 0.85, inside.mean()


def test_training_errors(trainer):
    with pytest.raises(ValueError, match="not one of"):
        trainer.set(time=7)
    with pytest.raises(ValueError, match="outside"):
        trainer.set(lr_fraction=2.0)
    with pytest.raises(ValueError, match="not one of"):
        TrainingExplorer(width=100)
    with pytest.raises(ValueError, match="unknown name"):
        TrainingExplorer(activation="nope")
    assert "TrainingExplorer(" in repr(trainer) and trainer.png.startswith(b"\x89PNG")


def test_progress_bar_during_the_ladder_and_training(conv, trainer):
    """Recomputing the ladder and retraining report progress (shown after ``busy_after`` seconds)."""
    for dash, change in ((conv, {"W_std": 1.1}), (trainer, {"width": 128})):
        seen: list[float] = []
        dash.progress.observe(lambda ch, seen=seen: seen.append(ch["new"]), names="value")
        dash.busy_after, shown = 0.0, dash.busy_shown
        try:
            dash.set(**change)
        finally:
            dash.busy_after = 1.0
        assert dash.busy_shown == shown + 1
        fractions = [v for v in seen if v > 0]
        assert len(fractions) >= 3 and fractions == sorted(fractions) and fractions[-1] == 1.0
        assert dash.progress.layout.visibility == "hidden"
