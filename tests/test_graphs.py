"""Networks with branches, LayerNorm and Dropout (neural-tangents' stax combinators), against
independent references written here:

(a) ``apply`` against a plain-numpy forward pass of the layer graph;
(b) the empirical NTK (traced, full, per layer) against an explicit Jacobian by central finite
    differences of that numpy forward pass (≤ 1e-6 relative), with ntkrs' and neural-tangents'
    parameter layouts;
(c) Monte Carlo over wide random numpy networks (residual and LayerNorm) converging to the
    analytic NNGP, and ntkrs' Monte Carlo NTK converging to the analytic NTK like 1/√width;
(d) dropout: masks deterministic per seed, the Monte Carlo estimate over masks converging to the
    analytic kernel with its 1/rate diagonal;
(e) properties (hypothesis): symmetry, positive semi-definiteness, blocks, the diagonal, threads and
    tile size, float32 against float64;
(f) the same network out of core, on dask, in ``ntkrs.predict`` and ``ntkrs.sklearn``;
(g) bad networks: a ValueError naming the layer, its position and the fix.

The analytic kernels of these graphs are checked against neural-tangents' own numbers in
``test_graph_nt.py``.
"""

from __future__ import annotations

import math

import ntkrs as nk
import numpy as np
import pytest
import reference as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import fd_jacobian, flatten, unflatten

RNG = np.random.default_rng(11)
X1 = RNG.standard_normal((5, 4))
X2 = RNG.standard_normal((3, 4))


def residual(block, post_ln=False):
    layers = [nk.FanOut(2), nk.parallel(nk.serial(*block), nk.Identity()), nk.FanInSum()]
    return nk.serial(*layers, *([nk.LayerNorm()] if post_ln else []))


def networks(width=6, parameterization="ntk"):
    """Small graphs of every kind, by name."""
    d = lambda n, w=1.3, b=0.2: nk.Dense(n, W_std=w, b_std=b, parameterization=parameterization)  # noqa: E731
    return {
        "pre_ln_resnet": nk.resnet(2, width, "relu", W_std=1.4, b_std=0.1, out_dim=2, layer_norm="pre",
                                   parameterization=parameterization),
        "post_ln_resnet": nk.resnet(2, width, "gelu", W_std=1.2, b_std=0.3, out_dim=2, layer_norm="post",
                                    parameterization=parameterization),
        "erf_resnet_fanout3": nk.serial(d(width), nk.FanOut(3), nk.parallel(
            nk.serial(nk.Erf(), d(width)), nk.serial(nk.Tanh(), d(width, 0.9, None)), nk.Identity()),
            nk.FanInSum(), nk.Relu(), d(2)),
        "concat_unequal": nk.serial(d(width), nk.FanOut(2), nk.parallel(nk.serial(nk.Relu(), d(3)),
                                                                       nk.serial(nk.Erf(), d(5))),
                                    nk.FanInConcat(), d(2)),
        "prod": nk.serial(d(width), nk.FanOut(2), nk.parallel(d(4), nk.serial(nk.Gelu(), d(4, 0.8, None))),
                          nk.FanInProd(), d(2)),
        "layernorm_then_activation": nk.serial(d(width, 1.5, 0.4), nk.LayerNorm(eps=0.3), nk.Silu(), d(2)),
    }


# ---------------------------------------------------------------------------------
# a plain-numpy forward pass of a layer graph
# ---------------------------------------------------------------------------------

_PHI = {"Relu": ref.phi("Relu"), "Gelu": ref.phi("Gelu"), "Erf": ref.phi("Erf"), "Tanh": ref.phi("Tanh"),
        "Silu": ref.phi("Silu")}


def np_forward(net, params, x, masks=None):
    """f(x), walking the ntkrs layer objects: Dense ``s·h W + β·b`` ((W_std/√n_in, b_std) or (1, 1)),
    LayerNorm ``(h − mean)/√(var + eps)`` over the features, dropout ``h·mask`` (masks given per
    Dropout layer, in order), branches by FanOut / parallel / FanIn."""
    it = iter(params)
    mit = iter(masks or [])

    def run(layer, hs):
        if isinstance(layer, nk.Network):
            for child in layer.layers:
                hs = run(child, hs)
            return hs
        if isinstance(layer, nk.layers.Parallel):
            return [run(c, [h])[0] for c, h in zip(layer.layers, hs, strict=True)]
        if isinstance(layer, nk.FanOut):
            return hs * layer.num
        if isinstance(layer, nk.FanInSum):
            return [sum(hs)]
        if isinstance(layer, nk.FanInProd):
            return [math.prod(hs)]
        if isinstance(layer, nk.FanInConcat):
            return [np.concatenate(hs, axis=1)]
        (h,) = hs
        if isinstance(layer, nk.Dense):
            w, b = next(it)
            ntk = layer.parameterization == "ntk"
            s, beta = (layer.W_std / math.sqrt(h.shape[1]), layer.b_std or 0.0) if ntk else (1.0, 1.0)
            return [s * (h @ w) + (beta * b if b is not None else 0.0)]
        if isinstance(layer, nk.Identity):
            return [h]
        if isinstance(layer, nk.LayerNorm):
            c = h - h.mean(axis=1, keepdims=True)
            return [c / np.sqrt((c * c).mean(axis=1, keepdims=True) + layer.eps)]
        if isinstance(layer, nk.Dropout):
            return [h if layer.mode == "test" else h * next(mit)]
        return [_PHI[type(layer).__name__].f(h)]

    (out,) = run(net, [np.asarray(x, float)])
    return out


def assert_close(got, want, rtol, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = float(np.max(np.abs(want)))
    err = float(np.max(np.abs(got - want)))
    assert err <= rtol * scale, f"{what}: max error {err:.3e} > {rtol:g} x {scale:.3e}"


# ---------------------------------------------------------------------------------
# (a), (b) the finite networks
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("name", sorted(networks()))
def test_apply_matches_the_numpy_forward_pass(name, parameterization):
    net = networks(parameterization=parameterization)[name]
    params = net.init(X1.shape[1], seed=3)
    assert_close(net.apply(params, X1), np_forward(net, params, X1), 1e-12, name)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("name", sorted(networks()))
def test_empirical_ntk_equals_the_finite_difference_jacobian(name, parameterization):
    """Θ = (1/O) Σ_o J_o J_oᵀ (traced) and J_o J_o'ᵀ (full), the sum of the per-layer terms, ≤ 1e-6."""
    net = networks(parameterization=parameterization)[name]
    params = net.init(X1.shape[1], seed=5)
    def forward(p, x):
        return np_forward(net, p, x)

    j1, j2 = fd_jacobian(forward, params, X1), fd_jacobian(forward, params, X2)
    full = np.einsum("aop,bqp->aboq", j1, j2)
    traced = np.einsum("aboo->ab", full) / j1.shape[1]
    ntk, parts = net.empirical_ntk(params, X1, X2, per_layer=True)
    assert_close(ntk, traced, 1e-6, name)
    assert len(parts) == len(params)
    assert_close(sum(parts), ntk, 1e-13, f"{name} per layer")
    assert_close(net.empirical_ntk(params, X1, X2, trace_outputs=False), full, 1e-6, f"{name} full")
    sym = net.empirical_ntk(params, X1)
    assert np.array_equal(sym, sym.T)
    assert_close(sym, np.einsum("aop,bop->ab", j1, j1) / j1.shape[1], 1e-6, f"{name} symmetric")


def test_neural_tangents_nested_parameters_are_accepted():
    """stax's nested layout (one entry per layer of every serial/parallel, () without parameters)
    gives the same outputs as the flat list ``init`` returns."""
    net = networks()["pre_ln_resnet"]
    flat = net.init(X1.shape[1], seed=1)
    it = iter(flat)

    def nest(layer):
        if isinstance(layer, (nk.Network, nk.layers.Parallel)):
            return tuple(nest(c) for c in layer.layers)
        if isinstance(layer, nk.Dense):
            w, b = next(it)
            return (w, b[None, :])  # NT's biases have shape (1, out)
        return ()

    nested = nest(net)
    assert np.array_equal(net.apply(nested, X1), net.apply(flat, X1))
    assert np.array_equal(net.empirical_ntk(nested, X1), net.empirical_ntk(flat, X1))


def test_training_a_residual_network_follows_its_gradient():
    """One small step of ``train`` moves the loss like the finite-difference gradient says."""
    net = networks()["post_ln_resnet"]
    params = net.init(X1.shape[1], seed=2)
    y = np.sin(X1[:, :2])
    eta = 1e-4
    traj = net.train(params, X1, y, learning_rate=eta, steps=1)
    loss = lambda p: 0.5 * np.mean((np_forward(net, p, X1) - y) ** 2)  # noqa: E731
    theta = flatten(params)
    grad = np.array([(loss(unflatten(theta + e, params)) - loss(unflatten(theta - e, params))) / 2e-6
                     for e in np.eye(theta.size) * 1e-6])
    np.testing.assert_allclose(flatten(traj.params), theta - eta * grad, rtol=0, atol=1e-9)
    np.testing.assert_allclose(traj.loss_train[0], loss(params), rtol=1e-12)


# ---------------------------------------------------------------------------------
# (c) Monte Carlo over wide random networks
# ---------------------------------------------------------------------------------


def _np_params(net, d, rng):
    """Random parameters drawn here with numpy (NTK parameterisation: N(0, 1))."""
    out = []

    def walk(layer, width):
        if isinstance(layer, nk.Network):
            for c in layer.layers:
                width = walk(c, width)
            return width
        if isinstance(layer, nk.layers.Parallel):
            return [walk(c, w) for c, w in zip(layer.layers, width, strict=True)]
        if isinstance(layer, nk.FanOut):
            return [width] * layer.num
        if isinstance(layer, (nk.FanInSum, nk.FanInProd)):
            return width[0]
        if isinstance(layer, nk.Dense):
            out.append((rng.standard_normal((width, layer.out_dim)),
                        None if layer.b_std is None else rng.standard_normal(layer.out_dim)))
            return layer.out_dim
        return width

    walk(net, d)
    return out


@pytest.mark.parametrize("name", ["pre_ln_resnet", "post_ln_resnet"])
def test_wide_random_numpy_networks_average_to_the_analytic_nngp(name):
    """The mean of f(x)·f(x')/O over wide numpy networks (width 512, 96 draws) is the NNGP, within
    4 standard errors of the mean plus a 3/width allowance for the finite-width bias."""
    width, draws = 512, 96
    net = networks(width=width)[name]
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(draws):
        f1 = np_forward(net, _np_params(net, X1.shape[1], rng), X1)
        samples.append(f1 @ f1.T / f1.shape[1])
    samples = np.array(samples)
    mean, se = samples.mean(0), samples.std(0, ddof=1) / math.sqrt(draws)
    want = net.kernel(X1, get="nngp")
    err = np.abs(mean - want)
    assert np.all(err <= 4 * se + 3 / width * np.abs(want).max()), (err / (se + 1e-300)).max()


@pytest.mark.parametrize("name", ["pre_ln_resnet", "concat_unequal"])
def test_monte_carlo_ntk_approaches_the_analytic_ntk_as_width_grows(name):
    """ntkrs' Monte Carlo NTK (mean of exact empirical NTKs over 64 draws) approaches the analytic NTK:
    the error at width 4n is at most 0.8 of the error at width n (the fluctuations fall like 1/√width,
    the finite-width bias like 1/width), and within 5% at width 256."""
    errs = []
    for width in (64, 256):
        net = networks(width=width)[name]
        mc = net.monte_carlo_kernel(X1, n_samples=64, seed=1, get="ntk")
        want = net.kernel(X1, get="ntk")
        errs.append(np.abs(mc - want).max() / np.abs(want).max())
    assert errs[1] <= 0.8 * errs[0] and errs[1] <= 0.05, errs


# ---------------------------------------------------------------------------------
# (d) dropout
# ---------------------------------------------------------------------------------


def test_dropout_masks_are_deterministic_per_seed_and_applied_as_in_numpy():
    net = nk.serial(nk.Dense(64, W_std=1.3, b_std=0.1), nk.Relu(), nk.Dropout(0.7), nk.Dense(2))
    params = net.init(4, seed=0)
    a, b = net.apply(params, X1, dropout_seed=5), net.apply(params, X1, dropout_seed=5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, net.apply(params, X1, dropout_seed=6))
    # the mask is 0 or 1/rate per unit: recover it from the hidden layer and check the output
    w0, b0 = params[0]
    h = np.maximum(1.3 / 2 * (X1 @ w0) + 0.1 * b0, 0)
    w1, _ = params[1]  # Dense(2) has no bias
    full = h @ w1 / 8.0
    assert not np.allclose(a, full)
    test_mode = nk.serial(nk.Dense(64, W_std=1.3, b_std=0.1), nk.Relu(), nk.Dropout(0.7, mode="test"), nk.Dense(2))
    assert_close(test_mode.apply(params, X1), full, 1e-13, "test mode is the identity")


def test_monte_carlo_over_dropout_masks_converges_to_the_analytic_kernel():
    """Averaging over parameters and masks gives the dropout kernel: 1/rate on the diagonal of k(x, x)
    and nothing off it (two samples meet independent masks)."""
    net = nk.serial(nk.Dense(512, W_std=1.4, b_std=0.1), nk.Relu(), nk.Dropout(0.6), nk.Dense(512, W_std=1.2),
                    nk.Erf(), nk.Dense(256))
    want = net.kernel(X1, get="nngp")
    # 64 draws of the traced NNGP over 256 outputs: a relative standard error of about 1.2% per entry
    mc = net.monte_carlo_kernel(X1, n_samples=64, seed=3, get="nngp")
    assert np.abs(mc - want).max() <= 0.05 * np.abs(want).max()
    # the diagonal is dropout's, not the kernel without it (0.51 against 0.60 at the first sample)
    plain = nk.serial(*[layer for layer in net.layers if not isinstance(layer, nk.Dropout)]).kernel(X1, get="nngp")
    assert np.all(np.abs(np.diag(mc - want)) < np.abs(np.diag(mc - plain)) / 3)


def test_dropout_kernel_factor_follows_neural_tangents_x1_is_x2():
    """k(x, x.copy()) equals k(x) (neural-tangents compares the values); k(x1, x2) has no factor."""
    net = nk.serial(nk.Dense(8, W_std=1.4, b_std=0.1), nk.Relu(), nk.Dropout(0.5), nk.Dense(1))
    sym = net.kernel(X1, get="ntk")
    assert np.array_equal(net.kernel(X1, X1.copy(), get="ntk"), sym)
    both = net.kernel(np.vstack([X1, X2]), get="ntk")
    np.testing.assert_allclose(net.kernel(X1, X2, get="ntk"), both[:5, 5:], rtol=1e-13)


# ---------------------------------------------------------------------------------
# (e) properties
# ---------------------------------------------------------------------------------

ACTS = [nk.Relu, nk.Erf, nk.Gelu, nk.Abs, nk.Sin, nk.LeakyRelu]


@st.composite
def graphs(draw):
    """A random residual / concat / product network of 1–3 blocks on Gaussian values."""
    act = lambda: _act(draw)  # noqa: E731
    w = lambda: nk.Dense(draw(st.integers(2, 9)), W_std=draw(st.floats(0.5, 2.0)),  # noqa: E731
                         b_std=draw(st.one_of(st.none(), st.floats(0.0, 1.0))))
    layers = [nk.Dense(6, W_std=draw(st.floats(0.5, 2.0)), b_std=draw(st.floats(0.0, 1.0)))]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["res", "res_pre", "res_post", "concat", "prod"]))
        if kind.startswith("res"):
            branch = ([nk.LayerNorm()] if kind == "res_pre" else []) + [nk.Dense(6), act(), nk.Dense(6)]
            layers.append(residual(branch, post_ln=kind == "res_post"))
        elif kind == "concat":
            layers += [nk.FanOut(2), nk.parallel(nk.serial(act(), w()), w()), nk.FanInConcat(), nk.Dense(6)]
        else:
            layers += [nk.FanOut(2), nk.parallel(nk.serial(act(), nk.Dense(6)), nk.Dense(6)), nk.FanInProd(),
                       nk.Dense(6)]
    layers += [act(), nk.Dense(1)]
    return nk.serial(*layers)


def _act(draw):
    cls = draw(st.sampled_from(ACTS))
    return cls(0.2) if cls is nk.LeakyRelu else cls()


PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(net=graphs(), seed=st.integers(0, 2**32 - 1))
def test_graph_kernels_are_symmetric_psd_blockwise_and_tile_independent(net, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((30, 5))
    k = net.kernel(x)
    for m in k:
        assert np.array_equal(m, m.T)
        lam = np.linalg.eigvalsh(m)
        assert lam.min() >= -1e-10 * max(lam.max(), 1e-300)
    cross = net.kernel(x[:12], x[12:])
    for a, b in zip(cross, k, strict=True):
        np.testing.assert_allclose(a, b[:12, 12:], rtol=1e-12, atol=1e-13 * np.abs(b).max())
    diag = net.kernel(x, diagonal=True)
    for a, b in zip(diag, k, strict=True):
        assert np.array_equal(a, np.diag(b))
    for tile, threads in [(7, 1), (64, 2), (None, 2)]:
        other = net.kernel(x, tile_size=tile, threads=threads)
        for a, b in zip(other, k, strict=True):
            assert np.array_equal(a, b)
    k32 = net.kernel(x, dtype=np.float32)
    for a, b in zip(k32, k, strict=True):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()


# ---------------------------------------------------------------------------------
# (f) the rest of ntkrs
# ---------------------------------------------------------------------------------


def test_out_of_core_and_dask_give_the_in_memory_kernel(tmp_path):
    pytest.importorskip("dask")
    import ntkrs.dask

    net = nk.serial(nk.resnet(3, 32, "relu", W_std=1.3, b_std=0.1, layer_norm="pre"), nk.Dropout(0.8), nk.Dense(1))
    x = RNG.standard_normal((600, 10))
    want = net.kernel(x, get="ntk")
    got = net.kernel(x, get="ntk", out=tmp_path / "K.npy", memory_limit="30MB")
    assert np.array_equal(np.asarray(got), want)
    blocks = ntkrs.dask.kernel(net, x, get="ntk", chunks=250).compute(scheduler="threads")
    np.testing.assert_allclose(blocks, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_predict_and_sklearn_take_any_network():
    pytest.importorskip("sklearn")
    from ntkrs import predict
    from ntkrs.sklearn import NTK, NTKRegressor

    net = nk.resnet(2, 64, "gelu", W_std=1.2, b_std=0.1, layer_norm="post")
    x, xt = RNG.standard_normal((40, 3)), RNG.standard_normal((7, 3))
    y = np.sin(x[:, 0])
    reg = NTKRegressor(net=net, t=None, diag_reg=1e-3).fit(x, y)
    kx, kt = net.kernel(x, get="ntk"), net.kernel(xt, x, get="ntk")
    want = kt @ np.linalg.solve(kx + 1e-3 * np.trace(kx) / len(x) * np.eye(len(x)), y)
    np.testing.assert_allclose(reg.predict(xt), want, rtol=1e-8, atol=1e-10)
    out = predict.gradient_descent_mse_ensemble(net, x, y, diag_reg=1e-3)(xt, get="ntk")
    np.testing.assert_allclose(out, want, rtol=1e-8, atol=1e-10)
    # the sklearn kernel sets W_std and b_std on every Dense of the graph, the nesting kept
    k = NTK(net=net, W_std=0.9, b_std=0.4)
    manual = nk.resnet(2, 64, "gelu", W_std=0.9, b_std=0.4, layer_norm="post").kernel(x, get="ntk")
    np.testing.assert_allclose(k(x), manual, rtol=1e-12)


def test_resnet_is_the_documented_serial_network():
    got = nk.resnet(2, 16, "erf", W_std=1.1, b_std=0.2, out_dim=3, layer_norm="pre")
    d = lambda n: nk.Dense(n, W_std=1.1, b_std=0.2)  # noqa: E731
    block = lambda: residual([nk.LayerNorm(), d(16), nk.Erf(), d(16)])  # noqa: E731
    want = nk.serial(d(16), block(), block(), nk.LayerNorm(), d(3))
    assert repr(got) == repr(want)
    assert np.array_equal(got.kernel(X1).ntk, want.kernel(X1).ntk)
    assert len(got.init(4)) == 1 + 2 * 2 + 1


# ---------------------------------------------------------------------------------
# (g) bad networks
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("build, match", [
    # an activation whose input is not Gaussian, nested: the message names the layer and its path
    (lambda: nk.serial(nk.Dense(4), nk.Relu(), nk.FanOut(2), nk.parallel(nk.serial(nk.LayerNorm(), nk.Dense(4)),
                                                                        nk.Dense(4)), nk.FanInSum()),
     r"layer 3 \(LayerNorm\(axis=-1, eps=1e-12\), at serial\[3\]\.parallel\[0\]\[0\]\).*Gaussian.*Relu.*put a Dense"),
    (lambda: nk.serial(nk.Dense(4), nk.FanOut(3), nk.parallel(nk.Dense(2), nk.Dense(2)), nk.FanInSum()),
     r"parallel with 2 layers\) receives 3 branch.*FanOut\(2\)"),
    (lambda: nk.serial(nk.Dense(4), nk.FanOut(2), nk.parallel(nk.Dense(2), nk.Dense(3)), nk.FanInSum()),
     r"FanInSum\(\).*widths 2, 3"),
    (lambda: nk.serial(nk.Dense(4), nk.LayerNorm(axis=1), nk.LayerNorm(axis=2), nk.Dense(1)),
     r"LayerNorm\(axis=2.*axis 2, which does not exist"),
    (lambda: nk.serial(nk.Dense(4), nk.LayerNorm(axis=0), nk.Dense(1)), r"batch axis"),
    (lambda: nk.serial(nk.Dense(4), nk.Relu(), nk.FanOut(2), nk.parallel(nk.Dense(4), nk.Identity()),
                       nk.FanInSum()), r"needs every branch Gaussian.*residual block"),
    (lambda: nk.serial(nk.Dense(4), nk.FanOut(2), nk.parallel(nk.LayerNorm(), nk.Identity()), nk.FanInSum()),
     r"not independent.*put a Dense"),
    (lambda: nk.serial(nk.Dense(4), nk.FanOut(2), nk.parallel(nk.Relu(), nk.Dense(4)), nk.FanInConcat(),
                       nk.Relu()), r"channel concatenation"),
    (lambda: nk.serial(nk.Dense(4), nk.Relu(), nk.Dropout(0.5), nk.Erf()), r"Dropout.*Gaussian"),
    (lambda: nk.serial(nk.Dropout(0.5), nk.Dense(1)), r"raw inputs"),
    (lambda: nk.serial(nk.Dense(4), nk.FanInSum()), r"FanOut"),
    (lambda: nk.serial(nk.Dense(4), nk.FanOut(2)), r"ends with 2 branches"),
])
def test_bad_networks_name_the_layer_and_the_fix(build, match):
    with pytest.raises(ValueError, match=match):
        build().kernel(X1)


@pytest.mark.parametrize("make, match", [
    (lambda: nk.Dropout(0.0), "rate"), (lambda: nk.Dropout(1.5), "rate"),
    (lambda: nk.Dropout(0.5, mode="eval"), "mode"),
    (lambda: nk.LayerNorm(eps=0.0), "eps"), (lambda: nk.FanOut(0), "num"), (lambda: nk.parallel(), "parallel"),
])
def test_bad_layer_arguments_are_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_invalid_everywhere_is_reported_when_built_and_context_errors_when_used():
    """Two activations in a row are wrong in any context: at ``serial``. An activation first is a
    valid residual branch: building it is fine; using it on raw inputs is not."""
    with pytest.raises(ValueError, match=r"layer 2 \(Erf.*Gaussian.*activation of layer 1"):
        nk.serial(nk.Dense(4), nk.Relu(), nk.Erf(), nk.Dense(1))
    with pytest.raises(ValueError, match=r"layer 1 \(Relu.*Gaussian.*activation of layer 0"):
        nk.serial(nk.Relu(), nk.Relu(), nk.Dense(4))  # wrong on any input, not only on raw ones
    branch = nk.serial(nk.Relu(), nk.Dense(4))
    nk.serial(nk.Dense(4), nk.FanOut(2), nk.parallel(branch, nk.Identity()), nk.FanInSum()).kernel(X1)
    with pytest.raises(ValueError, match="raw inputs"):
        branch.kernel(X1)


def test_the_activation_registry_is_the_one_list():
    """The core's registry gives the classes, the dashboards' choices, the command line's names and
    the type stub's list of kinds."""
    import re
    from pathlib import Path

    from ntkrs import _core
    from ntkrs.layers import ACTIVATION_CLASSES, REGISTRY
    from ntkrs.widgets import ACTIVATIONS

    keys = [k["key"] for k in _core.activation_registry()]
    assert list(REGISTRY) == keys and set(ACTIVATION_CLASSES) == set(keys)
    assert set(ACTIVATIONS) == set(keys) - {"polynomial", "elementwise"}
    for k in keys:
        assert getattr(nk, REGISTRY[k]["class"]) is ACTIVATION_CLASSES[k]
        if k not in ("polynomial", "elementwise") and all(p["default"] is not None for p in REGISTRY[k]["params"]):
            assert type(nk.mlp(1, 4, k).layers[1]) is ACTIVATION_CLASSES[k]  # the command line's names
    stub = (Path(nk.__file__).parent / "_core.pyi").read_text()
    listed = re.search(r"one of (identity,.*?elementwise);", stub, re.S).group(1)
    assert [w.strip() for w in listed.replace("\n", " ").split(",")] == keys
