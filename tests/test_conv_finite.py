"""Finite-width convolutional networks (issue 12, item 3): ``init``, ``apply``, ``empirical_ntk``,
``empirical_nngp`` and ``monte_carlo_kernel`` on image inputs, in neural-tangents' parameter
layout (Conv filters HWIO ``(*filter, in, out)``, bias ``(out,)``).

References: a direct numpy convolution (``tests/conv_reference.py``, itself checked against
neural-tangents' outputs in ``test_conv_reference.py``), explicit finite-difference Jacobians
(``reference.fd_jacobian``), and the analytic CNN-GP/CNTK for the Monte Carlo means.
"""

from __future__ import annotations

import conv_reference as cr
import numpy as np
import pytest
import reference as ref
from ntkrs import stax

NETS = {
    # 2-D, SAME, a Flatten readout
    "same_flatten": (lambda: stax.serial(stax.Conv(3, (3, 3), padding="SAME", W_std=1.5, b_std=0.1), stax.Relu(),
                                         stax.Flatten(), stax.Dense(2, W_std=1.2, b_std=0.2)), (5, 4, 2)),
    # 2-D, strides, VALID, AvgPool SAME, GlobalAvgPool, a Dense on every position
    "strided_pools": (lambda: stax.serial(stax.Conv(4, (2, 3), strides=(2, 1), W_std=1.3, b_std=0.1), stax.Erf(),
                                          stax.AvgPool((2, 2), padding="SAME"), stax.Dense(3, W_std=1.1),
                                          stax.Gelu(), stax.GlobalAvgPool(), stax.Dense(2, b_std=0.3)), (6, 5, 2)),
    # 1-D, CIRCULAR, SumPool, standard parameterization
    "seq_circular_standard": (lambda: stax.serial(
        stax.Conv(3, (3,), padding="CIRCULAR", W_std=1.4, b_std=0.2, parameterization="standard"), stax.Sin(),
        stax.SumPool((2,), strides=(2,)), stax.Flatten(),
        stax.Dense(2, W_std=0.9, b_std=0.1, parameterization="standard")), (7, 2)),
    # a residual conv block, GlobalSumPool, no biases
    "residual": (lambda: stax.serial(
        stax.Conv(3, (2, 2), padding="SAME", W_std=1.2),
        stax.serial(stax.FanOut(2), stax.parallel(stax.serial(stax.Relu(), stax.Conv(3, (3, 3), padding="SAME")),
                                                  stax.Identity()), stax.FanInSum()),
        stax.Relu(), stax.GlobalSumPool(), stax.Dense(1)), (4, 4, 1)),
}


def _data(shape, n, seed):
    return np.random.default_rng(seed).normal(size=(n, *shape))


@pytest.mark.parametrize("name", list(NETS))
def test_init_layout_and_apply_equal_a_direct_numpy_convolution(name):
    """``init`` returns one ``(W, b)`` per Conv/Dense, Conv filters HWIO; ``apply`` on image
    arrays (and on flat rows of a ``with_input_shape`` network) equals the numpy reference to
    1e-12 of the largest output."""
    make, shape = NETS[name]
    net = make()
    params = net.init(shape, seed=3)
    convs = [layer for layer in net.leaves() if isinstance(layer, stax.Conv)]
    conv_params = [p for p, layer in zip(params, net._param_layers(), strict=True) if isinstance(layer, stax.Conv)]
    for (w, b), layer in zip(conv_params, convs, strict=True):
        assert w.shape[:-2] == tuple(layer.filter_shape) and w.shape[-1] == layer.out_chan
        assert (b is None) == (layer.b_std is None)
    x = _data(shape, 5, 1)
    want = cr.apply(net, params, x)
    got = net.apply(params, x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
    flat = net.with_input_shape(shape).apply(params, x.reshape(5, -1))
    np.testing.assert_array_equal(flat, got)
    # float32: the same computation rounded
    got32 = net.apply([(w.astype(np.float32), None if b is None else b.astype(np.float32)) for w, b in params],
                      x.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, want, rtol=0, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("name", list(NETS))
def test_empirical_ntk_equals_explicit_finite_difference_jacobian(name):
    """The structured empirical NTK (per layer, from the layer's gradient block) equals
    ``J(x1)·J(x2)ᵀ`` from central differences (h = 1e-5: truncation ~1e-10, rounding ~1e-11 per
    entry of J; tolerance 1e-7 of the largest entry), traced and per output pair; the per-layer
    terms sum to the total; the NNGP is ``f(x1)·f(x2)ᵀ/O``."""
    make, shape = NETS[name]
    net = make()
    params = net.init(shape, seed=5)
    x1, x2 = _data(shape, 3, 2), _data(shape, 2, 3)
    flat = [(np.asarray(w, float), b) for w, b in params]
    fwd = lambda p, x: cr.apply(net, p, x)  # noqa: E731
    j1, j2 = ref.fd_jacobian(fwd, flat, x1), ref.fd_jacobian(fwd, flat, x2)
    for xb, jb in ((None, j1), (x2, j2)):
        full = np.einsum("aop,bqp->aboq", j1, jb)
        traced = np.einsum("abss->ab", full) / j1.shape[1]
        scale = np.abs(full).max()
        got, parts = net.empirical_ntk(params, x1, xb, per_layer=True)
        np.testing.assert_allclose(got, traced, rtol=0, atol=1e-7 * scale)
        assert len(parts) == len(params)
        np.testing.assert_allclose(sum(parts), got, rtol=0, atol=1e-13 * scale)
        got_full = net.empirical_ntk(params, x1, xb, trace_outputs=False)
        np.testing.assert_allclose(got_full, full, rtol=0, atol=1e-7 * scale)
        f1 = cr.apply(net, params, x1)
        f2 = f1 if xb is None else cr.apply(net, params, xb)
        np.testing.assert_allclose(net.empirical_nngp(params, x1, xb), f1 @ f2.T / f1.shape[1], rtol=0,
                                   atol=1e-12 * np.abs(f1).max() ** 2)
    sym = net.empirical_ntk(params, x1)
    np.testing.assert_array_equal(sym, sym.T)


def test_monte_carlo_of_a_wide_cnn_converges_to_the_cnn_gp_and_cntk():
    """One hidden conv layer: its pre-activations are exactly Gaussian given the inputs, so the
    expected empirical NNGP and NTK equal the analytic CNN-GP and CNTK at any width. The Monte Carlo
    mean over S = 48 networks of 256 channels must be within 4.5 standard errors of the analytic
    kernels (the standard error estimated from 48 independent empirical kernels of the same
    distribution; for a Gaussian mean, a 4.5σ miss has probability ~1e-5 per entry)."""
    net = stax.serial(stax.Conv(256, (3, 3), padding="SAME", W_std=1.5, b_std=0.2), stax.Relu(),
                      stax.AvgPool((2, 2), strides=(2, 2)), stax.GlobalAvgPool(), stax.Dense(1, W_std=1.3, b_std=0.1))
    shape = (4, 4, 2)
    x = _data(shape, 4, 7)
    s = 48
    exact = net.kernel(x, None, ("nngp", "ntk"))
    mc = net.monte_carlo_kernel(x, None, n_samples=s, seed=11)
    samples = {"nngp": [], "ntk": []}
    for k in range(s):
        p = net.init(shape, seed=1000 + k)
        e = net.empirical_kernel(p, x, None)
        samples["nngp"].append(e.nngp)
        samples["ntk"].append(e.ntk)
    for what in ("nngp", "ntk"):
        sd = np.std(samples[what], axis=0, ddof=1)
        se = sd / np.sqrt(s)
        got, want = getattr(mc, what), getattr(exact, what)
        assert np.all(np.abs(got - want) <= 4.5 * se + 1e-12), (what, np.max(np.abs(got - want) / se))
        # and the independent sample mean agrees too
        assert np.all(np.abs(np.mean(samples[what], axis=0) - want) <= 4.5 * se + 1e-12)


def test_bad_parameters_and_inputs_name_the_problem():
    """Filters of the wrong shape (or in a Dense's 2-D layout), a wrong bias, images of the wrong
    shape: ValueError naming the argument and the expected shapes."""
    net = NETS["same_flatten"][0]()
    shape = NETS["same_flatten"][1]
    params = net.init(shape)
    x = _data(shape, 2, 0)
    (w, b), rest = params[0], params[1:]
    with pytest.raises(ValueError, match=r"W of Conv layer 0 must have shape .*\(3, 3, in, out\)"):
        net.apply([(w.reshape(-1, w.shape[-1]), b), *rest], x)
    with pytest.raises(ValueError, match=r"W of Conv layer 0 must have shape"):
        net.apply([(w[:2], b), *rest], x)
    with pytest.raises(ValueError, match=r"params"):
        net.apply([(w[:, :, :1], b), *rest], x)
    with pytest.raises(ValueError, match=r"b of"):
        net.apply([(w, np.ones(7)), *rest], x)
    with pytest.raises(ValueError, match=r"2 Dense layer\(s\) \(Conv layers included\)"):
        net.apply(params[:1], x)
    with pytest.raises(ValueError):
        net.apply(params, _data((5, 3, 2), 2, 0))  # the Flatten readout's Dense no longer fits
    with pytest.raises(ValueError, match=r"x2"):
        net.empirical_ntk(params, x, _data((4, 5, 2), 2, 0))
    with pytest.raises(ValueError, match=r"in_dim"):
        net.init((5, 0, 2))
    # a network whose output is still an image has no (N, O) output
    with pytest.raises(ValueError, match=r"readout"):
        stax.serial(stax.Conv(2, (2, 2))).init(shape)
