"""Jacot et al. (2018), Fig. 1 at small scale: ``ntkrs.experiments.jacot_fig1`` and the script
``examples/jacot_fig1.py`` (imported by path; it is not part of the package).

Widths 64 and 1024, four initialisations, 30 gradient steps: the empirical NTK on the unit circle
approaches the analytic limit as the width grows (fluctuations ~ 1/√n: the deviation falls by
about 4 for a 16-fold width, asserted ≥ 2), moves less during training for the wider network,
training fits f*(x) = x₁x₂, the limit curve is ``net.kernel`` and the arc-cosine recursion at the
same points, and the script writes a PNG and a JSON file.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import ntkrs as nk
import numpy as np
import pytest
from closed_forms import relu_arccos_recursion
from ntkrs.experiments import JacotFig1, jacot_fig1, jacot_network

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "jacot_fig1.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result() -> JacotFig1:
    return jacot_fig1(widths=(64, 1024), inits=4, steps=30, learning_rate=1.0, n_train=4, angles=41,
                      dtype=np.float32, seed=3)


def test_shapes_inputs_and_targets(result):
    assert result.theta_init.shape == result.theta_trained.shape == (2, 4, 41)
    assert result.loss.shape == (2, 4, 2) and result.seeds.shape == (2, 4)
    np.testing.assert_allclose(np.linalg.norm(result.xs, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(result.x0, [1.0, 0.0])
    assert result.gammas[0] == -np.pi and result.gammas[-1] == np.pi and result.gammas[20] == 0.0
    np.testing.assert_array_equal(result.y_train, result.x_train[:, 0] * result.x_train[:, 1])
    for arr in (result.theta_init, result.theta_trained, result.loss):
        assert np.isfinite(arr).all()


def test_limit_is_net_kernel_and_the_arccos_recursion(result):
    net = nk.serial(nk.Dense(7, W_std=1.0, b_std=0.1), nk.Relu(), nk.Dense(7, W_std=1.0, b_std=0.1), nk.Relu(),
                    nk.Dense(7, W_std=1.0, b_std=0.1), nk.Relu(), nk.Dense(1, W_std=1.0, b_std=0.1))
    np.testing.assert_allclose(result.theta_limit, net.kernel(result.x0[None], result.xs, get="ntk")[0],
                               rtol=1e-14, atol=0)
    _, ntk = relu_arccos_recursion(result.x0[None], result.xs, [(7, 1.0, 0.1)] * 3 + [(1, 1.0, 0.1)])
    np.testing.assert_allclose(result.theta_limit, ntk[0], rtol=1e-12)
    # symmetric in γ, largest at γ = 0
    np.testing.assert_allclose(result.theta_limit, result.theta_limit[::-1], rtol=1e-12)
    assert result.theta_limit.argmax() == 20


def test_empirical_curves_are_the_empirical_ntk_of_the_seeded_networks(result):
    net = jacot_network(64)
    params = net.init(2, int(result.seeds[0, 2]), dtype=np.float32)
    np.testing.assert_allclose(result.theta_init[0, 2], net.empirical_ntk(params, result.x0[None], result.xs)[0],
                               rtol=1e-6)
    traj = net.train(params, result.x_train, result.y_train, 1.0, 30)
    np.testing.assert_allclose(result.theta_trained[0, 2],
                               net.empirical_ntk(traj.params, result.x0[None], result.xs)[0], rtol=1e-5)


def test_deviation_from_the_limit_falls_with_width(result):
    s = result.summary()
    assert s[1024]["dev_init"] < s[64]["dev_init"] / 2, s
    assert s[1024]["dev_trained"] < s[64]["dev_trained"] / 2, s
    assert s[1024]["dev_init"] < 0.2, s
    # at every angle the spread over initialisations shrinks too
    spread = result.theta_init.std(axis=1)
    assert (spread[1] < spread[0]).mean() > 0.9


def test_kernel_moves_less_during_training_for_the_wider_network(result):
    s = result.summary()
    assert 0 < s[1024]["moved"] < s[64]["moved"] / 2, s


def test_training_reduces_the_loss(result):
    before, after = result.loss[..., 0], result.loss[..., 1]
    assert (after < 0.1 * before).all(), result.loss


def test_json_summary_round_trips(result):
    data = json.loads(json.dumps(result.to_json()))
    assert data["config"]["widths"] == [64, 1024]
    assert data["summary"]["64"]["dev_init"] == pytest.approx(result.summary()[64]["dev_init"])
    np.testing.assert_allclose(np.array(data["theta_trained"]), result.theta_trained)


def test_script_writes_a_png_and_json(tmp_path):
    spec = importlib.util.spec_from_file_location("jacot_fig1_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out, js = tmp_path / "fig.png", tmp_path / "res.json"
    summary = script.main(["--widths", "16", "64", "--inits", "2", "--steps", "5", "--angles", "21",
                           "--out", str(out), "--json", str(js)])
    assert set(summary) == {16, 64}
    data = out.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_MAGIC
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100 and height > 100
    assert json.loads(js.read_text())["config"]["steps"] == 5


def test_runs_with_fewer_initialisations_join_and_round_trip_through_json(result):
    small = jacot_fig1(widths=(16,), inits=2, steps=30, angles=41, seed=3)
    both = JacotFig1.concat([result, small])
    assert both.widths.tolist() == [64, 1024, 16] and both.theta_init.shape == (3, 4, 41)
    assert np.isnan(both.theta_init[2, 2:]).all() and both.config["inits"] == [4, 4, 2]
    s = both.summary()
    assert s[16]["inits"] == 2 and s[16] == pytest.approx(small.summary()[16])
    assert s[64] == pytest.approx(result.summary()[64])
    again = JacotFig1.from_json(json.loads(json.dumps(both.to_json())))
    np.testing.assert_array_equal(again.theta_trained, both.theta_trained)  # NaN where both are NaN
    for width, row in again.summary().items():
        assert row == pytest.approx(s[width])
    # more initialisations of a width already there are appended to it
    more = jacot_fig1(widths=(16, 64), inits=1, steps=30, angles=41, seed=3, first_init=4)
    joined = JacotFig1.concat([both, more])
    assert joined.widths.tolist() == [64, 1024, 16] and joined.config["inits"] == [5, 4, 3]
    assert joined.seeds[2, :3].tolist() == [3, 4, 7] and joined.seeds[0].tolist() == [3, 4, 5, 6, 7]
    np.testing.assert_array_equal(joined.theta_trained[2, 2], more.theta_trained[0, 0])
    np.testing.assert_array_equal(joined.theta_init[2, :2], small.theta_init[0])
    with pytest.raises(ValueError, match="twice"):
        JacotFig1.concat([small, small])
    with pytest.raises(ValueError, match="settings"):
        JacotFig1.concat([result, jacot_fig1(widths=(16,), inits=1, steps=3, angles=41, seed=3)])
