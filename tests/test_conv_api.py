"""The rest of ntkrs on convolutional networks (issue 12): ``out=`` out of core, progress, flat rows
with ``input_shape`` (scikit-learn, ntkrs.predict, ntkrs.dask), the CLI on image arrays, and
bad input named by layer and shapes. Values are checked against the in-memory kernel, itself
checked against neural-tangents in test_conv_nt.py."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from ntkrs import stax

RNG = np.random.default_rng(12)
X = RNG.standard_normal((9, 6, 5, 2))
Y = RNG.standard_normal((4, 6, 5, 2))


def cnn(readout=stax.GlobalAvgPool):
    return stax.serial(stax.Conv(8, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu(),
                       stax.AvgPool((2, 2), strides=(1, 1)), stax.Conv(8, (2, 2), W_std=1.3, b_std=0.2), stax.Erf(),
                       readout(), stax.Dense(1, W_std=1.2, b_std=0.1))


@pytest.mark.parametrize("readout", [stax.GlobalAvgPool, stax.Flatten])
def test_out_of_core_equals_the_in_memory_kernel_in_panels(tmp_path, readout):
    """out= with a memory limit of two result rows: every panel written, the symmetric result
    mirrored (exactly symmetric, the diagonal bitwise the in-memory one), x2 panels equal."""
    net = cnn(readout)
    k = net.kernel(X)
    limit = 2 * 2 * X.shape[0] * 8  # two rows of both kernels
    stats: dict = {}
    got = net.kernel(X, out={"nngp": tmp_path / "a.npy", "ntk": str(tmp_path / "b.npy")}, memory_limit=limit,
                     stats=stats)
    assert stats["panels"] == 5 and stats["panel_rows"] == 2
    for what in ("nngp", "ntk"):
        g, want = np.asarray(getattr(got, what)), getattr(k, what)
        np.testing.assert_allclose(g, want, rtol=1e-13, atol=0)
        assert np.array_equal(g, g.T) and np.array_equal(np.diag(g), np.diag(want))
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.npy"]
    cross = net.kernel(X, Y, get="ntk")
    mm = np.lib.format.open_memmap(tmp_path / "c.npy", mode="w+", dtype=np.float64, shape=(9, 4))
    net.kernel(X, Y, get="ntk", out=mm, memory_limit=3 * 4 * 8)
    np.testing.assert_array_equal(np.asarray(mm), cross)


def test_out_of_core_removes_partial_files_on_error(tmp_path):
    def stop(done, total):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        cnn().kernel(X, get="ntk", out=tmp_path / "k.npy", memory_limit=3 * 9 * 8, progress=stop)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="memory_limit"):
        cnn().kernel(X, get="ntk", out=tmp_path / "k.npy", memory_limit=8)


def test_progress_callable_and_bar_on_conv_networks(capfd):
    net = cnn()
    plain = net.kernel(X, tile_size=2)
    seen = []
    got = net.kernel(X, tile_size=2, progress=lambda d, t: seen.append((d, t)))
    assert np.array_equal(got.ntk, plain.ntk) and np.array_equal(got.nngp, plain.nngp)
    done = [d for d, _ in seen]
    assert done == sorted(done) and seen[-1][0] == seen[-1][1] > 1
    capfd.readouterr()
    net.kernel(X, tile_size=2, progress=True)
    assert "100%" in capfd.readouterr().err


def test_float32_is_close_to_float64():
    k64 = cnn().kernel(X)
    k32 = cnn().kernel(X, dtype=np.float32)
    assert k32.ntk.dtype == np.float32
    for what in ("nngp", "ntk"):
        a, b = getattr(k64, what), getattr(k32, what)
        assert np.abs(a - b).max() <= 2e-6 * np.abs(a).max()


# ---------------------------------------------------------------------------------------------
# flat rows and input_shape: scikit-learn, ntkrs.predict, ntkrs.dask
# ---------------------------------------------------------------------------------------------


def test_input_shape_takes_flat_rows_and_survives_pickle():
    net = cnn().with_input_shape((6, 5, 2))
    k = cnn().kernel(X, Y)
    flat = net.kernel(X.reshape(9, -1), Y.reshape(4, -1))
    np.testing.assert_array_equal(flat.ntk, k.ntk)
    np.testing.assert_array_equal(net.kernel(X, Y).ntk, k.ntk)  # images still accepted
    again = pickle.loads(pickle.dumps(net))
    assert again.input_shape == (6, 5, 2) and repr(again) == repr(net) and "with_input_shape((6, 5, 2))" in repr(net)
    with pytest.raises(ValueError, match=r"x1: has 59 features per row, but the network's input_shape \(6, 5, 2\)"):
        net.kernel(X.reshape(9, -1)[:, 1:])
    with pytest.raises(ValueError, match=r"x2: has examples of shape \(5, 6, 2\)"):
        net.kernel(X, X.reshape(9, 5, 6, 2))
    with pytest.raises(ValueError, match="input_shape"):
        cnn().with_input_shape((30,))


def test_sklearn_kernels_and_ridge_on_flat_images():
    from ntkrs.sklearn import NNGP, NTK, NTKRidge
    from sklearn.kernel_ridge import KernelRidge

    net = cnn().with_input_shape((6, 5, 2))
    xf, yf = X.reshape(9, -1), Y.reshape(4, -1)
    target = np.sin(X.sum(axis=(1, 2, 3)))
    kern = NTK(net=net, W_std=1.4, b_std=0.1)
    # the estimator's network: every Dense and Conv given W_std, b_std; the shape kept
    same = stax.serial(stax.Conv(8, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu(),
                       stax.AvgPool((2, 2), strides=(1, 1)), stax.Conv(8, (2, 2), W_std=1.4, b_std=0.1), stax.Erf(),
                       stax.GlobalAvgPool(), stax.Dense(1, W_std=1.4, b_std=0.1))
    want = same.kernel(X, Y, get="ntk")
    np.testing.assert_array_equal(kern(xf, yf), want)
    np.testing.assert_array_equal(kern.diag(xf), np.diag(same.kernel(X, get="ntk")))
    np.testing.assert_array_equal(NNGP(net=net, W_std=1.4, b_std=0.1)(xf, yf), same.kernel(X, Y, get="nngp"))
    kr = KernelRidge(alpha=1e-3, kernel=kern).fit(xf, target)
    k_train = same.kernel(X, get="ntk")
    direct = want.T @ np.linalg.solve(k_train + 1e-3 * np.eye(9), target)
    np.testing.assert_allclose(kr.predict(yf), direct, rtol=1e-9, atol=1e-12)
    # NTKRidge's ridge is relative to the mean training diagonal
    ridge = NTKRidge(net=cnn().with_input_shape((6, 5, 2)), diag_reg=1e-3, solver="exact").fit(xf, target)
    k0, k0t = cnn().kernel(X, get="ntk"), cnn().kernel(Y, X, get="ntk")
    eps = 1e-3 * np.trace(k0) / 9
    np.testing.assert_allclose(ridge.predict(yf), k0t @ np.linalg.solve(k0 + eps * np.eye(9), target),
                               rtol=1e-8, atol=1e-10)


def test_predict_and_dask_on_flat_images():
    from ntkrs import predict

    net = cnn().with_input_shape((6, 5, 2))
    xf, yf = X.reshape(9, -1), Y.reshape(4, -1)
    target = np.cos(X.sum(axis=(1, 2, 3)))
    k = cnn().kernel(X, get="ntk")
    kt = cnn().kernel(Y, X, get="ntk")
    got = predict.kernel_regression(net, xf, target, yf, diag_reg=1e-3, diag_reg_absolute_scale=True,
                                    solver="exact")
    direct = kt @ np.linalg.solve(k + 1e-3 * np.eye(9), target)
    np.testing.assert_allclose(np.ravel(got.mean), direct, rtol=1e-8, atol=1e-10)
    pytest.importorskip("dask")
    from ntkrs import dask as nkd

    lazy = nkd.kernel(net, xf, get="ntk", chunks=4)
    np.testing.assert_allclose(lazy.compute(scheduler="synchronous"), k, rtol=1e-13, atol=0)


# ---------------------------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------------------------

EXPR = ('stax.serial(stax.Conv(8, (3, 3), padding="SAME", W_std=1.4, b_std=0.1), stax.Relu(), '
        'stax.Flatten(), stax.Dense(1))')


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ntkrs", *args], capture_output=True, text=True, timeout=120)


def test_cli_on_image_arrays_and_flat_rows(tmp_path):
    np.save(tmp_path / "x.npy", X)
    np.savetxt(tmp_path / "x.csv", X.reshape(9, -1), delimiter=",", fmt="%.17g")
    net = eval(EXPR, {"__builtins__": {}, "stax": stax})  # noqa: S307
    want = net.kernel(X, get="ntk")
    r = _cli("kernel", str(tmp_path / "x.npy"), "--net", EXPR, "--get", "ntk", "--dtype", "float64",
             "--out", str(tmp_path / "k.npy"))
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), want)
    r = _cli("kernel", str(tmp_path / "x.csv"), "--input-shape", "6,5,2", "--net", EXPR, "--dtype", "float64",
             "--out", str(tmp_path / "k2.npy"))
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "k2.npy"), want)
    r = _cli("kernel", str(tmp_path / "x.csv"), "--net", EXPR, "--out", str(tmp_path / "k3.npy"))
    assert r.returncode == 2 and "(N, H, W, C) images" in r.stderr, r.stderr
    r = _cli("kernel", str(tmp_path / "x.npy"), "--net", "stax.serial(stax.Conv(8, (3, 3), strides=(1,)))",
             "--out", str(tmp_path / "k4.npy"))
    assert r.returncode == 2 and "strides" in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------
# bad input: ValueError naming the layer (or argument) and the shapes
# ---------------------------------------------------------------------------------------------

BAD = {
    "flat rows into a 2-D conv": (lambda: stax.serial(stax.Conv(4, (3, 3)), stax.Flatten(), stax.Dense(1)),
                                  X.reshape(9, -1), [r"layer 0 \(Conv\(4, \(3, 3\)", r"\(N, H, W, C\) images",
                                                     r"without spatial axes"]),
    "images into a 1-D conv": (lambda: stax.serial(stax.Conv(4, (3,)), stax.Flatten(), stax.Dense(1)),
                               X, [r"layer 0 \(Conv\(4, \(3,\)", r"\(N, L, C\) sequences", r"\(6, 5\)"]),
    "volumes into a 2-D conv": (lambda: stax.serial(stax.Conv(4, (3, 3)), stax.Flatten(), stax.Dense(1)),
                                X[:, None], [r"layer 0", r"\(1, 6, 5\)"]),
    "filter larger than the input under VALID": (
        lambda: stax.serial(stax.Conv(4, (3, 3)), stax.Relu(), stax.Conv(4, (5, 2)), stax.Flatten(), stax.Dense(1)),
        X, [r"layer 2 \(Conv\(4, \(5, 2\)", r"window \(5, 2\) is larger than its input \(4, 3\)", "VALID"]),
    "pool window of the wrong length": (lambda: stax.serial(stax.AvgPool((2,)), stax.Flatten(), stax.Dense(1)),
                                        X, [r"layer 0 \(AvgPool\(\(2,\)", r"\(6, 5\)"]),
    "no readout": (lambda: stax.serial(stax.Conv(4, (3, 3)), stax.Relu()), X, ["Flatten()", r"\(N, 4, 3, C\)"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_layer_and_shapes(case):
    make, x, patterns = BAD[case]
    with pytest.raises(ValueError) as e:
        make().kernel(x)
    for p in patterns:
        assert e.match(p), (p, str(e.value))


@pytest.mark.parametrize("make, pattern", [
    (lambda: stax.Conv(4, (3, 3), strides=(1,)), r"strides: \(1,\) has 1 entries but filter_shape \(3, 3\) has 2"),
    (lambda: stax.AvgPool((2, 2), strides=(1, 1, 1)), r"strides"),
    (lambda: stax.Conv(0, (3, 3)), r"out_chan: .* at least 1 output channel, got 0"),
    (lambda: stax.Conv(-2, (3, 3)), r"out_chan: .* got -2"),
    (lambda: stax.Conv(4, (0, 3)), r"filter_shape: every entry must be at least 1"),
    (lambda: stax.Conv(4, (3, 3), padding="FULL"), r"padding"),
])
def test_bad_layer_arguments_raise_value_error(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("readout", ["gap", "flatten", "avgpool", "nested"])
def test_training_conv_networks_raises_not_implemented(readout):
    """Training finite-width CNNs is not implemented yet: ``train`` raises NotImplementedError
    naming the first convolution or pooling layer (never a wrong answer)."""
    conv = stax.Conv(4, (2, 2), padding="SAME")
    layers, where = {
        "gap": ([conv, stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1)], r"layer 0 \(Conv\)"),
        "flatten": ([stax.Dense(3), stax.Relu(), stax.Conv(2, (2, 2)), stax.Flatten(), stax.Dense(1)],
                    r"layer 2 \(Conv\)"),
        "avgpool": ([stax.AvgPool((2, 2)), stax.Flatten(), stax.Dense(1)], r"layer 0 \(AvgPool\)"),
        "nested": ([stax.Dense(2), stax.serial(stax.Relu(), stax.GlobalSumPool()), stax.Dense(1)],
                   r"layer 1 > layer 1 \(GlobalSumPool\)"),
    }[readout]
    net = stax.serial(*layers)
    x = np.random.default_rng(0).normal(size=(3, 4, 4, 2))
    params = net.init(x.shape[1:])
    with pytest.raises(NotImplementedError, match=rf"train: finite-width networks .*{where}"):
        net.train(params, x, np.zeros((3, 1)), steps=1)


def test_finite_layernorm_on_images_raises_not_implemented():
    """LayerNorm (and FanInConcat) on images are not implemented for finite-width networks yet:
    every finite-width method raises NotImplementedError naming the layer; the analytic kernel of
    the same network works."""
    net = stax.serial(stax.Conv(3, (2, 2), padding="SAME"), stax.LayerNorm(), stax.Relu(), stax.GlobalAvgPool(),
                      stax.Dense(1))
    x = np.random.default_rng(0).normal(size=(3, 4, 4, 2))
    params = [(np.ones((2, 2, 2, 3)), None), (np.ones((3, 1)), None)]
    calls = {
        "init": lambda: net.init(x.shape[1:]),
        "apply": lambda: net.apply(params, x),
        "empirical kernels": lambda: net.empirical_ntk(params, x),
        "monte_carlo_kernel": lambda: net.monte_carlo_kernel(x, n_samples=2),
    }
    for method, call in calls.items():
        with pytest.raises(NotImplementedError, match=rf"{method}: finite-width networks on images with LayerNorm"):
            call()
    k = net.kernel(x, None, "ntk")
    assert k.shape == (3, 3) and np.all(np.isfinite(k))
