"""Finite-width networks and their empirical kernels, against independent references:

(a) ``init``: neural-tangents' layout and distribution (N(0, 1) in the NTK parameterisation,
    N(0, W_std²/n_in) and N(0, b_std²) in the standard one), deterministic per seed;
(b) ``apply`` against a plain-numpy forward pass written here;
(c) the empirical NTK (traced, full and per layer) against an explicit Jacobian built by central
    finite differences of that numpy forward pass (≤ 1e-6 relative), and against the contraction
    of an explicit Jacobian assembled from analytically derived per-parameter gradients (≤ 1e-10);
(d) the empirical NNGP against ``f(x)·f(x')/O``;
(e) convergence of Monte Carlo / wide networks to the infinite-width kernels like 1/√width;
(f) precision, threads, symmetry, shapes and traces;
(g) bad input.
"""

from __future__ import annotations

import math

import ntkrs as nk
import numpy as np
import pytest
import reference as ref
from reference import fd_jacobian
from scipy import stats

RNG = np.random.default_rng(7)
X1 = RNG.standard_normal((5, 3))
X2 = RNG.standard_normal((4, 3))

# activation name -> (ntkrs layer, reference φ with φ'); kinks are never hit by random inputs
ACTIVATIONS = {
    "Identity": (nk.Identity(), ref.phi("Identity")),
    "Relu": (nk.Relu(), ref.phi("Relu")),
    "LeakyRelu": (nk.LeakyRelu(0.1), ref.phi("LeakyRelu", 0.1)),
    "Abs": (nk.Abs(), ref.phi("Abs")),
    "Sign": (nk.Sign(), ref.phi("Sign")),
    "Erf": (nk.Erf(1.3, 0.8, 0.1), ref.phi("Erf", 1.3, 0.8, 0.1)),
    "Sigmoid_like": (nk.Sigmoid_like(), ref.phi("Sigmoid_like")),
    "Gelu": (nk.Gelu(), ref.phi("Gelu")),
    "Sin": (nk.Sin(1.2, 0.7, 0.3), ref.phi("Sin", 1.2, 0.7, 0.3)),
    "Cos": (nk.Cos(0.9, 1.1, -0.2), ref.phi("Cos", 0.9, 1.1, -0.2)),
    "Rbf": (nk.Rbf(0.5), ref.phi("Rbf", 0.5)),
    "Exp": (nk.Exp(0.5, 0.3), ref.phi("Exp", 0.5, 0.3)),
    "Gaussian": (nk.Gaussian(1.0, -0.5), ref.phi("Gaussian", 1.0, -0.5)),
    "Monomial": (nk.Monomial(3), ref.phi("Monomial", 3)),
    "RectifiedMonomial": (nk.RectifiedMonomial(2), ref.phi("RectifiedMonomial", 2)),
    "Polynomial": (nk.Polynomial([0.1, -0.5, 0.3, 0.2]), ref.phi("Polynomial", [0.1, -0.5, 0.3, 0.2])),
    "Hermite": (nk.Hermite(3), ref.phi("Hermite", 3)),
    "Tanh": (nk.Tanh(), ref.phi("Tanh")),
    "Sigmoid": (nk.Sigmoid(), ref.phi("Sigmoid")),
    "Softplus": (nk.Softplus(), ref.phi("Softplus")),
    "Silu": (nk.Silu(), ref.phi("Silu")),
    "Mish": (nk.Mish(), ref.phi("Mish")),
    "Elu": (nk.Elu(0.7), ref.phi("Elu", 0.7)),
    "Selu": (nk.Selu(), ref.phi("Selu")),
    "Elementwise": (nk.Elementwise(np.arctan, lambda x: 1 / (1 + x * x)),
                    ref.Phi(np.arctan, lambda x: 1 / (1 + x * x), "gauss_hermite")),
}


# ---------------------------------------------------------------------------------
# plain-numpy networks: forward pass, explicit Jacobian, finite differences
# ---------------------------------------------------------------------------------


def build(widths, act_name, W_std=1.3, b_std=0.4, parameterization="ntk", final_act=False):
    """The ntkrs network and a numpy spec [(kind, ...)] of Dense(width) + φ, …, Dense(widths[-1])."""
    layer, phi = ACTIVATIONS[act_name]
    layers, spec = [], []
    for i, w in enumerate(widths):
        layers.append(nk.Dense(w, W_std=W_std, b_std=b_std, parameterization=parameterization))
        spec.append(("dense", W_std, b_std, parameterization))
        if i + 1 < len(widths) or final_act:
            layers.append(layer)
            spec.append(("act", phi))
    return nk.serial(*layers), spec


def np_forward(params, spec, x, tape=None):
    """f(x) of shape (N, O): z = s·h W + β·b with (s, β) = (W_std/√n_in, b_std) or (1, 1)."""
    h = np.asarray(x, float)
    it = iter(params)
    for entry in spec:
        if entry[0] == "dense":
            _, W_std, b_std, param = entry
            w, b = next(it)
            s, beta = (W_std / math.sqrt(h.shape[1]), b_std or 0.0) if param == "ntk" else (1.0, 1.0)
            if tape is not None:
                tape.append(("dense", h, w, s, beta, b is not None))
            h = s * (h @ w) + (beta * b if b is not None else 0.0)
        else:
            if tape is not None:
                tape.append(("act", h, entry[1]))
            h = entry[1].f(h)
    return h


def np_jacobian(params, spec, x):
    """J[a, o, p] = ∂f_o(x_a)/∂θ_p from analytically derived per-parameter gradients:
    ∂f_o/∂W_ij = s·h_i·δ_oj and ∂f_o/∂b_j = β·δ_oj, with δ = ∂f/∂z back-propagated as
    δ ← s·δ Wᵀ through a Dense and δ ← δ ⊙ φ'(z) through an activation. Parameters are ordered
    layer by layer, W (row-major) then b, as ``flatten`` orders them."""
    tape = []
    out = np_forward(params, spec, x, tape)
    n, o = out.shape
    delta = np.broadcast_to(np.eye(o), (n, o, o)).copy()  # ∂f_o/∂(current output)_j
    blocks = []
    for entry in reversed(tape):
        if entry[0] == "dense":
            _, h, w, s, beta, has_b = entry
            gw = s * np.einsum("ai,aoj->aoij", h, delta).reshape(n, o, -1)
            blocks.append([gw] + ([beta * delta] if has_b else []))
            delta = s * np.einsum("aoj,ij->aoi", delta, w)
        else:
            _, z, phi = entry
            delta = np.zeros_like(delta) if phi.df is None else delta * phi.df(z)[:, None, :]
    blocks.reverse()
    return [np.concatenate(b, axis=2) for b in blocks]  # one (N, O, P_l) block per Dense


def contract(j1, j2, trace=True):
    """Θ from Jacobians: (1/O)·Σ_o Σ_p J1[a,o,p]·J2[b,o,p] or the full (a, b, o, o') tensor."""
    full = np.einsum("aop,bqp->abo q".replace(" ", ""), j1, j2)
    return np.einsum("aboo->ab", full) / j1.shape[1] if trace else full


def assert_close(got, want, rtol, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = float(np.max(np.abs(want)))
    err = float(np.max(np.abs(got - want)))
    assert err <= rtol * scale, f"{what}: max error {err:.3e} > {rtol:g} x {scale:.3e}"


# ---------------------------------------------------------------------------------
# (a) init
# ---------------------------------------------------------------------------------


def test_init_has_neural_tangents_layout():
    net = nk.serial(nk.Dense(6, b_std=0.1), nk.Relu(), nk.Dense(4), nk.Erf(), nk.Dense(2, b_std=1.0))
    params = net.init(3, seed=1)
    assert [(w.shape, None if b is None else b.shape) for w, b in params] == [
        ((3, 6), (6,)), ((6, 4), None), ((4, 2), (2,))]
    assert all(w.dtype == np.float64 for w, _ in params)
    p32 = net.init(3, seed=1, dtype=np.float32)
    assert all(w.dtype == np.float32 for w, _ in p32)
    np.testing.assert_array_equal(p32[0][0], params[0][0].astype(np.float32))


def test_init_is_deterministic_per_seed_and_thread_count():
    net = nk.mlp(depth=2, width=300, W_std=1.5, b_std=0.1)
    a = net.init(50, seed=3)
    before = nk.get_num_threads()
    try:
        nk.set_num_threads(1)
        b = net.init(50, seed=3)
    finally:
        nk.set_num_threads(before)
    for (wa, ba), (wb, bb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)
    c = net.init(50, seed=4)
    assert not np.array_equal(a[1][0], c[1][0])


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_init_distribution(parameterization):
    """Kolmogorov–Smirnov against the normal law stax.Dense draws from."""
    net = nk.serial(nk.Dense(400, W_std=1.7, b_std=0.3, parameterization=parameterization), nk.Relu(),
                    nk.Dense(300, W_std=1.7, b_std=0.3, parameterization=parameterization))
    (w0, b0), (w1, b1) = net.init(250, seed=11)
    for w, n_in in ((w0, 250), (w1, 400)):
        sd = 1.0 if parameterization == "ntk" else 1.7 / math.sqrt(n_in)
        assert stats.kstest(w.ravel() / sd, "norm").pvalue > 1e-3
    sdb = 1.0 if parameterization == "ntk" else 0.3
    assert stats.kstest(np.concatenate([b0, b1]) / sdb, "norm").pvalue > 1e-3
    # different layers, independent draws: no shared values, correlation within 5 standard errors
    assert np.intersect1d(w0, w1).size == 0
    a, b = w0.ravel()[:90000], w1.ravel()[:90000]
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(a.size)


# ---------------------------------------------------------------------------------
# (b) apply
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_apply_matches_numpy_forward(act, parameterization):
    net, spec = build([7, 6, 3], act, parameterization=parameterization)
    params = net.init(3, seed=5)
    assert_close(net.apply(params, X1), np_forward(params, spec, X1), 1e-13, act)


def test_apply_without_bias_and_with_a_final_activation():
    net, spec = build([5, 2], "Tanh", b_std=None, final_act=True)
    params = net.init(3, seed=0)
    assert params[0][1] is None
    assert_close(net.apply(params, X1), np_forward(params, spec, X1), 1e-14)


def test_apply_accepts_neural_tangents_serial_layout_and_bias_shape():
    net = nk.serial(nk.Dense(4, b_std=0.2), nk.Relu(), nk.Dense(2, b_std=0.2))
    (w0, b0), (w1, b1) = net.init(3, seed=2)
    nt_layout = [(w0, b0[None, :]), (), (w1, b1[None, :])]
    np.testing.assert_array_equal(net.apply(nt_layout, X1), net.apply([(w0, b0), (w1, b1)], X1))


def test_derivative_at_a_kink_is_neural_tangents_mean_of_one_sided_slopes():
    """At a kink the derivative is JAX's (what neural-tangents' apply_fn gets): Relu'(0) = 1/2,
    LeakyRelu(α)'(0) = (1 + α)/2, Abs'(0) = 0. With f(x) = 2·φ(x·W + b) at W = 1, b = 0, x = 0
    the first layer's term of the NTK is (x² + 1)·(2·φ'(0))² = 4·φ'(0)²."""
    for layer, slope in ((nk.Relu(), 0.5), (nk.LeakyRelu(0.2), 0.6), (nk.Abs(), 0.0)):
        net = nk.serial(nk.Dense(1, W_std=1.0, b_std=1.0), layer, nk.Dense(1, W_std=1.0))
        params = [(np.array([[1.0]]), np.array([0.0])), (np.array([[2.0]]), None)]
        _, parts = net.empirical_ntk(params, np.array([[0.0]]), per_layer=True)
        assert parts[0][0, 0] == pytest.approx(4 * slope**2, abs=1e-15), layer


# ---------------------------------------------------------------------------------
# (c) the empirical NTK against explicit Jacobians
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_empirical_ntk_matches_analytic_jacobian_contraction(act):
    """≤ 1e-10 relative to the contraction of the explicit per-parameter Jacobian (traced, full,
    rectangular and per layer)."""
    net, spec = build([6, 5, 3], act)
    params = net.init(3, seed=9)
    j1, j2 = np_jacobian(params, spec, X1), np_jacobian(params, spec, X2)
    J1, J2 = np.concatenate(j1, axis=2), np.concatenate(j2, axis=2)
    assert_close(net.empirical_ntk(params, X1), contract(J1, J1), 1e-10, "traced")
    assert_close(net.empirical_ntk(params, X1, X2), contract(J1, J2), 1e-10, "rectangular")
    assert_close(net.empirical_ntk(params, X1, X2, trace_outputs=False), contract(J1, J2, trace=False), 1e-10,
                 "full")
    total, parts = net.empirical_ntk(params, X1, X2, per_layer=True)
    assert len(parts) == 3
    for l, (part, jl1, jl2) in enumerate(zip(parts, j1, j2, strict=True)):
        assert_close(part, contract(jl1, jl2), 1e-10, f"layer {l}")
    np.testing.assert_array_equal(total, sum(parts))


@pytest.mark.parametrize(("act", "parameterization", "b_std", "final_act"), [
    ("Relu", "ntk", 0.4, False), ("Erf", "standard", 0.4, False), ("Tanh", "ntk", None, True),
    ("Gelu", "standard", None, False), ("Elu", "ntk", 1.1, False), ("Sin", "ntk", 0.2, True),
])
def test_empirical_ntk_matches_finite_difference_jacobian(act, parameterization, b_std, final_act):
    """≤ 1e-6 relative to the NTK from a Jacobian by central differences of the numpy forward pass."""
    net, spec = build([5, 4, 2], act, b_std=b_std, parameterization=parameterization, final_act=final_act)
    params = net.init(3, seed=4)
    def forward(p, x):
        return np_forward(p, spec, x)

    j1, j2 = fd_jacobian(forward, params, X1), fd_jacobian(forward, params, X2)
    assert_close(net.empirical_ntk(params, X1, X2), contract(j1, j2), 1e-6, "traced")
    assert_close(net.empirical_ntk(params, X1, X2, trace_outputs=False), contract(j1, j2, trace=False), 1e-6,
                 "full")
    # per layer: the columns of each Dense's parameters
    sizes = [w.size + (0 if b is None else b.size) for w, b in params]
    edges = np.cumsum([0] + sizes)
    _, parts = net.empirical_ntk(params, X1, X2, per_layer=True)
    for l, part in enumerate(parts):
        sl = slice(edges[l], edges[l + 1])
        assert_close(part, contract(j1[:, :, sl], j2[:, :, sl]), 1e-6, f"layer {l}")


def test_elementwise_without_derivative_uses_central_differences():
    """Without ``dfn`` the derivative comes from central differences of ``fn`` (≈1e-10 relative)."""
    layer = nk.Elementwise(np.arctan)
    net = nk.serial(nk.Dense(6, W_std=1.3, b_std=0.4), layer, nk.Dense(2, W_std=1.3, b_std=0.4))
    _, spec = build([6, 2], "Elementwise")
    params = net.init(3, seed=1)
    J = np.concatenate(np_jacobian(params, spec, X1), axis=2)
    assert_close(net.empirical_ntk(params, X1), contract(J, J), 1e-8)


# ---------------------------------------------------------------------------------
# (d) the empirical NNGP
# ---------------------------------------------------------------------------------


def test_empirical_nngp_is_the_output_gram_over_output_units():
    net, spec = build([8, 4], "Gelu")
    params = net.init(3, seed=2)
    f1, f2 = np_forward(params, spec, X1), np_forward(params, spec, X2)
    assert_close(net.empirical_nngp(params, X1, X2), f1 @ f2.T / 4, 1e-13)
    assert_close(net.empirical_nngp(params, X1, X2, trace_outputs=False), np.einsum("ao,bq->aboq", f1, f2), 1e-13)
    both = net.empirical_kernel(params, X1, X2)
    np.testing.assert_array_equal(both.nngp, net.empirical_nngp(params, X1, X2))
    np.testing.assert_array_equal(both.ntk, net.empirical_ntk(params, X1, X2))


# ---------------------------------------------------------------------------------
# (e) convergence to the infinite-width kernels
# ---------------------------------------------------------------------------------


def _slope(widths, errors):
    return float(np.polyfit(np.log(widths), np.log(errors), 1)[0])


def _mean_rel_err(got, want):
    return float(np.mean(np.abs(got - want)) / np.mean(np.abs(want)))


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_monte_carlo_ntk_error_shrinks_like_inverse_sqrt_width(act):
    """With a fixed number of samples, the mean |Monte Carlo − analytic| NTK error falls like
    width^(−1/2) (fitted slope in [−0.75, −0.3]) over four widths."""
    x = np.random.default_rng(3).standard_normal((6, 4))
    widths = [32, 128, 512, 2048]
    errs = []
    for w in widths:
        net = nk.mlp(depth=2, width=w, activation=act, W_std=1.4, b_std=0.2, out_dim=2)
        exact = net.kernel(x, get="ntk")
        errs.append(np.mean([_mean_rel_err(net.monte_carlo_kernel(x, n_samples=4, seed=s, get="ntk"), exact)
                             for s in range(3)]))
    slope = _slope(widths, errs)
    print([f"{e:.3g}" for e in errs], f"slope {slope:.2f}")
    assert -0.75 <= slope <= -0.3, (errs, slope)
    assert errs[-1] < 0.05


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_empirical_nngp_error_shrinks_like_inverse_sqrt_width(act):
    """f(x)·f(x')/O averages O i.i.d. outputs given the last hidden layer, so with O = width
    every source of error falls like width^(−1/2) (a network's NNGP with O fixed does not
    converge in width: it converges in the number of samples, tested below)."""
    x = np.random.default_rng(4).standard_normal((6, 4))
    widths = [32, 128, 512, 2048]
    errs = []
    for w in widths:
        net = nk.mlp(depth=2, width=w, activation=act, W_std=1.4, b_std=0.2, out_dim=w)
        exact = net.kernel(x, get="nngp")
        errs.append(np.mean([_mean_rel_err(net.monte_carlo_kernel(x, n_samples=2, seed=s, get="nngp"), exact)
                             for s in range(3)]))
    slope = _slope(widths, errs)
    print([f"{e:.3g}" for e in errs], f"slope {slope:.2f}")
    assert -0.75 <= slope <= -0.3, (errs, slope)


def test_monte_carlo_nngp_error_shrinks_like_inverse_sqrt_samples():
    x = np.random.default_rng(5).standard_normal((6, 4))
    net = nk.mlp(depth=2, width=1024, activation="relu", W_std=1.4, b_std=0.2, out_dim=1)
    exact = net.kernel(x, get="nngp")
    counts = [4, 16, 64, 256]
    errs = [np.mean([_mean_rel_err(net.monte_carlo_kernel(x, n_samples=n, seed=s, get="nngp"), exact)
                     for s in range(3)]) for n in counts]
    slope = _slope(counts, errs)
    print([f"{e:.3g}" for e in errs], f"slope {slope:.2f}")
    assert -0.75 <= slope <= -0.3, (errs, slope)


def test_single_wide_network_ntk_approaches_the_limit():
    """A single network's empirical NTK (no averaging) converges too: at width 4096 it is within
    a few percent of the analytic NTK, and 16× narrower networks are ~4× further away."""
    x = np.random.default_rng(5).standard_normal((5, 3))
    errs = []
    for w in (256, 4096):
        net = nk.mlp(depth=2, width=w, activation="relu", W_std=1.4, b_std=0.1)
        exact = net.kernel(x, get="ntk")
        e = [np.mean(np.abs(net.empirical_ntk(net.init(3, seed=s), x) - exact)) / np.mean(exact) for s in range(6)]
        errs.append(np.mean(e))
    assert errs[1] < 0.05
    assert 2.0 < errs[0] / errs[1] < 8.0, errs


def test_monte_carlo_is_the_mean_of_empirical_kernels_of_independent_draws():
    net = nk.mlp(depth=1, width=16, activation="tanh", W_std=1.2, b_std=0.3, out_dim=3)
    mc = net.monte_carlo_kernel(X1, X2, n_samples=1, seed=7)
    p = net.init(3, seed=7)
    np.testing.assert_array_equal(mc.ntk, net.empirical_ntk(p, X1, X2))
    np.testing.assert_array_equal(mc.nngp, net.empirical_nngp(p, X1, X2))
    two = net.monte_carlo_kernel(X1, X2, n_samples=2, seed=7, get="ntk")
    assert not np.allclose(two, mc.ntk)


# ---------------------------------------------------------------------------------
# (f) precision, threads, symmetry, shapes
# ---------------------------------------------------------------------------------


def test_float32_is_close_to_float64():
    net = nk.mlp(depth=3, width=256, activation="relu", W_std=1.4, b_std=0.1, out_dim=4)
    x = np.random.default_rng(0).standard_normal((40, 20))
    p64 = net.init(20, seed=0)
    p32 = net.init(20, seed=0, dtype=np.float32)
    k64 = net.empirical_kernel(p64, x)
    k32 = net.empirical_kernel(p32, x.astype(np.float32))
    assert k32.ntk.dtype == np.float32
    assert_close(k32.ntk, k64.ntk, 2e-5, "ntk")
    assert_close(k32.nngp, k64.nngp, 2e-5, "nngp")
    mc32 = net.monte_carlo_kernel(x, n_samples=3, dtype=np.float32)
    mc64 = net.monte_carlo_kernel(x, n_samples=3)
    assert_close(mc32.ntk, mc64.ntk, 2e-5, "mc ntk")


def test_results_do_not_depend_on_the_number_of_threads():
    net = nk.mlp(depth=2, width=300, activation="gelu", W_std=1.4, b_std=0.1, out_dim=3)
    x = np.random.default_rng(1).standard_normal((300, 10))
    p = net.init(10, seed=0)
    before = nk.get_num_threads()
    try:
        out = {}
        for t in (1, 2, 3):
            nk.set_num_threads(t)
            out[t] = (net.empirical_ntk(p, x), net.empirical_ntk(p, x, x[:50], trace_outputs=False),
                      net.monte_carlo_kernel(x[:30], n_samples=5, seed=2))
    finally:
        nk.set_num_threads(before)
    for t in (2, 3):
        for a, b in zip(out[1][:2], out[t][:2], strict=True):
            assert_close(b, a, 1e-13)
        assert_close(out[t][2].ntk, out[1][2].ntk, 1e-13)


def test_symmetric_call_is_exactly_symmetric_and_matches_the_two_argument_call():
    net = nk.mlp(depth=2, width=64, activation="erf", W_std=1.2, b_std=0.2, out_dim=3)
    x = np.random.default_rng(2).standard_normal((270, 5))  # > one 256-column panel
    p = net.init(5, seed=1)
    k = net.empirical_ntk(p, x)
    np.testing.assert_array_equal(k, k.T)
    assert_close(k, net.empirical_ntk(p, x, x), 1e-13)
    full = net.empirical_ntk(p, x[:30], trace_outputs=False)
    assert full.shape == (30, 30, 3, 3)
    np.testing.assert_array_equal(full, full.transpose(1, 0, 3, 2))
    np.testing.assert_allclose(np.einsum("aboo->ab", full) / 3, k[:30, :30], rtol=1e-12, atol=1e-12 * k.max())
    ev = np.linalg.eigvalsh(k)
    assert ev.min() > -1e-10 * ev.max()


def test_progress_reports_reach_the_total():
    net = nk.mlp(depth=2, width=64, out_dim=2)
    x = np.random.default_rng(2).standard_normal((20, 5))
    seen = []
    net.empirical_ntk(net.init(5), x, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1] > 0
    seen.clear()
    net.monte_carlo_kernel(x, n_samples=3, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] > 0


# ---------------------------------------------------------------------------------
# (g) bad input
# ---------------------------------------------------------------------------------


NET = nk.serial(nk.Dense(4, b_std=0.1), nk.Relu(), nk.Dense(2, b_std=0.1))
PARAMS = NET.init(3, seed=0)


@pytest.mark.parametrize(("params", "exc", "match"), [
    (PARAMS[:1], ValueError, "2 Dense layer"),
    (PARAMS + PARAMS, ValueError, "2 Dense layer"),
    ([(PARAMS[0][0].T, PARAMS[0][1]), PARAMS[1]], ValueError, r"shape \(4, 3\).*\(3, 4\)"),
    ([PARAMS[0], (PARAMS[1][0], np.zeros(3))], ValueError, "b of Dense layer 1 has 3 entries"),
    ([PARAMS[0], (PARAMS[1][0], None)], ValueError, "b is None"),
    ([(PARAMS[0][0].astype(complex), PARAMS[0][1]), PARAMS[1]], TypeError, "real array"),
    ([(PARAMS[0][0], PARAMS[0][1]), (np.full((4, 2), np.nan), PARAMS[1][1])], ValueError, "NaN"),
    ([(PARAMS[0][0], PARAMS[0][1]), (PARAMS[1][0], np.array([np.inf, 0]))], ValueError, "NaN or infinite"),
    ("W", TypeError, "list of"),
    ([PARAMS[0], PARAMS[1][0]], TypeError, r"entry 1 must be a pair \(W, b\)"),
    ([PARAMS[0], (PARAMS[1][0][None], PARAMS[1][1])], ValueError, "2-D"),
])
def test_bad_parameters_are_clear_errors(params, exc, match):
    with pytest.raises(exc, match=match):
        NET.apply(params, X1)
    with pytest.raises(exc, match=match):
        NET.empirical_ntk(params, X1)


def test_bad_inputs_and_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=r"x: .*NaN"):
        NET.apply(PARAMS, np.array([[np.nan, 0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        NET.apply(PARAMS, np.ones((2, 5)))
    with pytest.raises(ValueError, match="x2: has 4 features"):
        NET.empirical_ntk(PARAMS, X1, np.ones((2, 4)))
    with pytest.raises(ValueError, match="n_samples"):
        NET.monte_carlo_kernel(X1, n_samples=0)
    with pytest.raises(TypeError, match="n_samples"):
        NET.monte_carlo_kernel(X1, n_samples=2.5)
    with pytest.raises(ValueError, match="seed"):
        NET.init(3, seed=-1)
    with pytest.raises(ValueError, match="in_dim"):
        NET.init(0)
    with pytest.raises(TypeError, match="trace_outputs"):
        NET.empirical_ntk(PARAMS, X1, trace_outputs="yes")
    with pytest.raises(ValueError, match="out_dim"):
        nk.Dense(0)
    with pytest.raises(ValueError, match="get"):
        NET.monte_carlo_kernel(X1, get="nngp2")


def test_overflow_in_the_forward_pass_is_an_error_not_inf():
    net = nk.serial(nk.Dense(3, W_std=1.0), nk.Exp(1.0, 50.0), nk.Dense(1))
    p = net.init(2, seed=0)
    with pytest.raises(ValueError, match="overflowed"):
        net.apply(p, np.full((2, 2), 30.0))
