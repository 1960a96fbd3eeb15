"""Whole-network NNGP/NTK kernels against independent references:

(a) a single Dense layer (closed form, eqs. 10 and 17 of the seed derivation);
(b) ReLU networks against the arc-cosine recursion written here, the standard
    parameterisation against its recursion, and other activations against the layer
    recursion evaluated entry by entry with the quadrature reference maps;
(c) Monte Carlo over wide random networks sampled in plain numpy;
(d) values computed by neural-tangents itself (tests/data/nt_reference.json).

Tolerances: entries are compared as |got − want| ≤ rtol·|want| + atol·max|want|.  The
references keep k(x, x) exactly equal to the propagated variance (ρ = 1 exactly on the
diagonal), which matters because E[φ'φ'] of ReLU-like activations and E[φφ] of Sign/step have
a square-root singularity at ρ = 1, where a one-ulp error in ρ moves them by ~1e-8.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import closed_forms as cf
import ntkrs as nk
import numpy as np
import pytest
import reference as ref

RNG = np.random.default_rng(20240611)
X1 = RNG.standard_normal((6, 5))
X2 = RNG.standard_normal((4, 5))


def assert_kernel_close(got, want, rtol, atol=None, what=""):
    """Entrywise |got − want| ≤ rtol·|want| + atol·max|want| (atol defaults to rtol)."""
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert np.all(np.isfinite(got)), (what, got)
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    atol = rtol if atol is None else atol
    tol = rtol * np.abs(want) + atol * scale
    bad = np.argwhere(~(np.abs(got - want) <= tol))
    assert bad.size == 0, f"{what}: {len(bad)} entries differ; first: " + "; ".join(
        f"{tuple(i)} got {got[tuple(i)]!r} want {want[tuple(i)]!r}" for i in bad[:4]
    )


# ---------------------------------------------------------------------------------
# (a) a single Dense layer
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("w_std", "b_std"), [(1.0, 0.0), (1.0, 0.3), (1.0, None), (1.7, 0.05), (0.4, 2.0)])
def test_single_dense_nngp_is_scaled_input_covariance_plus_bias_variance(w_std, b_std):
    """Eq. 10: Σ¹(x, x') = W_std²·x·x'/d + β²; eq. 17: with input NTK 0 the NTK equals the NNGP."""
    net = nk.serial(nk.Dense(4, W_std=w_std, b_std=b_std))
    b2 = 0.0 if b_std is None else b_std**2
    for x2 in (None, X2):
        other = X1 if x2 is None else x2
        want = w_std**2 * (X1 @ other.T) / X1.shape[1] + b2
        k = net.kernel(X1, x2, get=("nngp", "ntk"))
        assert_kernel_close(k.nngp, want, 1e-14, what="nngp")
        assert_kernel_close(k.ntk, want, 1e-14, what="ntk")


# ---------------------------------------------------------------------------------
# (b) closed-form recursions
# ---------------------------------------------------------------------------------


def relu_serial(dense, parameterization="ntk"):
    layers = []
    for i, (out_dim, w, b) in enumerate(dense):
        layers.append(nk.Dense(out_dim, W_std=w, b_std=b, parameterization=parameterization))
        if i < len(dense) - 1:
            layers.append(nk.Relu())
    return nk.serial(*layers)


RELU_NETS = {
    "depth1": [(8, 1.5, 0.05), (1, 1.5, 0.05)],
    "depth2": [(8, 1.3, 0.2), (3, 0.9, 0.1), (1, 1.1, 0.3)],
    "depth3": [(8, 1.4, 0.0), (8, 1.2, None), (8, 2.0, 0.5), (2, 0.7, 0.1)],
}


@pytest.mark.parametrize("name", list(RELU_NETS))
@pytest.mark.parametrize("with_x2", [False, True])
def test_relu_network_matches_arccos_recursion(name, with_x2):
    """ReLU networks of depth 1–3 equal the arc-cosine recursion to 1e-12."""
    dense = RELU_NETS[name]
    x2 = X2 if with_x2 else None
    want_nngp, want_ntk = cf.relu_arccos_recursion(X1, x2, dense)
    k = relu_serial(dense).kernel(X1, x2, get=("nngp", "ntk"))
    assert_kernel_close(k.nngp, want_nngp, 1e-12, what="nngp")
    assert_kernel_close(k.ntk, want_ntk, 1e-12, what="ntk")


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_mlp_builder_equals_relu_recursion(depth):
    """nk.mlp(depth, width, "relu", W_std, b_std) = Dense(width)→ReLU ×depth →Dense(out_dim)."""
    net = nk.mlp(depth=depth, width=512, activation="relu", W_std=1.5, b_std=0.05, out_dim=1)
    want_nngp, want_ntk = cf.relu_arccos_recursion(X1, X2, [(512, 1.5, 0.05)] * depth + [(1, 1.5, 0.05)])
    k = net.kernel(X1, X2, get=("nngp", "ntk"))
    assert_kernel_close(k.nngp, want_nngp, 1e-12, what="nngp")
    assert_kernel_close(k.ntk, want_ntk, 1e-12, what="ntk")


STANDARD_NETS = {
    "with_bias": [(5, 1.3, 0.2), (7, 0.9, 0.1), (1, 1.1, 0.3)],
    "no_bias": [(5, 1.3, None), (7, 0.9, None), (1, 1.1, None)],
    "zero_bias_still_trains": [(3, 1.0, 0.0), (1, 1.2, 0.0)],
    "mixed": [(16, 1.5, None), (2, 0.8, 0.4), (4, 1.0, 0.0), (3, 1.2, None)],
}


@pytest.mark.parametrize("name", list(STANDARD_NETS))
def test_standard_parameterization_matches_its_recursion(name):
    """Standard parameterisation: ntk' = n_in·nngp + W²·ntk (+1 iff b_std is not None), with
    n_in the Dense layer's input width, so unlike the NTK parameterisation widths matter."""
    dense = STANDARD_NETS[name]
    for x2 in (None, X2):
        want_nngp, want_ntk = cf.relu_arccos_recursion(X1, x2, dense, "standard")
        k = relu_serial(dense, "standard").kernel(X1, x2, get=("nngp", "ntk"))
        assert_kernel_close(k.nngp, want_nngp, 1e-12, what="nngp")
        assert_kernel_close(k.ntk, want_ntk, 1e-12, what="ntk")


def test_standard_mlp_builder_uses_width_as_input_width():
    """nk.mlp(parameterization="standard") equals the standard recursion with n_in = width."""
    net = nk.mlp(depth=2, width=64, activation=nk.Relu(), W_std=1.2, b_std=0.1, out_dim=3, parameterization="standard")
    want_nngp, want_ntk = cf.relu_arccos_recursion(X1, X2, [(64, 1.2, 0.1)] * 2 + [(3, 1.2, 0.1)], "standard")
    k = net.kernel(X1, X2, get=("nngp", "ntk"))
    assert_kernel_close(k.nngp, want_nngp, 1e-12, what="nngp")
    assert_kernel_close(k.ntk, want_ntk, 1e-12, what="ntk")


def erf_network_closed_form(x1, x2, dense, a, b, c):
    """Dense→Erf(a,b,c)→…→Dense with the arcsine formula of closed_forms.erf, vectorised."""
    x2 = x1 if x2 is None else x2
    d = x1.shape[1]
    v1, v2 = np.sum(x1**2, 1) / d, np.sum(x2**2, 1) / d
    cov, ntk = x1 @ x2.T / d, np.zeros((len(x1), len(x2)))
    for i, (_, w, bb) in enumerate(dense):
        cov, v1, v2 = w * w * cov + bb * bb, w * w * v1 + bb * bb, w * w * v2 + bb * bb
        ntk = cov + w * w * ntk
        if i < len(dense) - 1:
            q1, q2 = 1 + 2 * b * b * v1, 1 + 2 * b * b * v2
            dot = 4 * a * a * b * b / np.pi / np.sqrt(np.outer(q1, q2) - 4 * b**4 * cov**2)
            cov = a * a * 2 / np.pi * np.arcsin(2 * b * b * cov / np.sqrt(np.outer(q1, q2))) + c * c
            v1 = a * a * 2 / np.pi * np.arcsin(2 * b * b * v1 / q1) + c * c
            v2 = a * a * 2 / np.pi * np.arcsin(2 * b * b * v2 / q2) + c * c
            ntk = ntk * dot
    return cov, ntk


def test_erf_network_matches_arcsine_recursion():
    """Dense→Erf(1.2, 0.7, 0.1)→Dense→Erf→Dense equals the arcsine recursion to 1e-12."""
    dense = [(4, 1.3, 0.2), (3, 0.9, 0.1), (1, 1.1, 0.3)]
    act = nk.Erf(a=1.2, b=0.7, c=0.1)
    net = nk.serial(
        nk.Dense(4, W_std=1.3, b_std=0.2),
        act,
        nk.Dense(3, W_std=0.9, b_std=0.1),
        act,
        nk.Dense(1, W_std=1.1, b_std=0.3),
    )
    for x2 in (None, X2):
        want_nngp, want_ntk = erf_network_closed_form(X1, x2, dense, 1.2, 0.7, 0.1)
        k = net.kernel(X1, x2, get=("nngp", "ntk"))
        assert_kernel_close(k.nngp, want_nngp, 1e-12, what="nngp")
        assert_kernel_close(k.ntk, want_ntk, 1e-12, what="ntk")


# activation (ntkrs constructor, reference φ, rtol).  Closed-form maps: 1e-10.  Quadrature
# maps are held to 2e-7 each (test_activation_maps); through two nonlinearities and the Dense
# layers the error can add up, so the network is held to 2e-6; ELU/SELU maps are good to ~1e-14
# (the kink lies on the polar rule's arc ends), so their networks are held to 1e-9.
RECURSION_CASES = {
    "LeakyRelu(0.2)": (lambda: nk.LeakyRelu(alpha=0.2), ref.phi("LeakyRelu", 0.2), 1e-10),
    "Abs": (lambda: nk.Abs(), ref.phi("Abs"), 1e-10),
    "Sign": (lambda: nk.Sign(), ref.phi("Sign"), 1e-10),
    "Gelu": (lambda: nk.Gelu(), ref.phi("Gelu"), 1e-10),
    "Cos(0.9,1.2,0.3)": (lambda: nk.Cos(a=0.9, b=1.2, c=0.3), ref.phi("Cos", 0.9, 1.2, 0.3), 1e-10),
    "Gaussian(1.0,-0.6)": (lambda: nk.Gaussian(a=1.0, b=-0.6), ref.phi("Gaussian", 1.0, -0.6), 1e-10),
    "RectifiedMonomial(0)": (lambda: nk.RectifiedMonomial(degree=0), ref.phi("RectifiedMonomial", 0), 1e-10),
    "RectifiedMonomial(1)": (lambda: nk.RectifiedMonomial(degree=1), ref.phi("RectifiedMonomial", 1), 1e-10),
    "RectifiedMonomial(2)": (lambda: nk.RectifiedMonomial(degree=2), ref.phi("RectifiedMonomial", 2), 1e-10),
    "RectifiedMonomial(3)": (lambda: nk.RectifiedMonomial(degree=3), ref.phi("RectifiedMonomial", 3), 1e-10),
    "Hermite(3)": (lambda: nk.Hermite(degree=3), ref.phi("Hermite", 3), 1e-10),
    "Monomial(4)": (lambda: nk.Monomial(degree=4), ref.phi("Monomial", 4), 1e-10),
    "Tanh": (lambda: nk.Tanh(), ref.phi("Tanh"), 2e-6),
    "Softplus": (lambda: nk.Softplus(), ref.phi("Softplus"), 2e-6),
    "Silu": (lambda: nk.Silu(), ref.phi("Silu"), 2e-6),
    "Mish": (lambda: nk.Mish(), ref.phi("Mish"), 2e-6),
    "Elu(0.7)": (lambda: nk.Elu(alpha=0.7), ref.phi("Elu", 0.7), 1e-9),
    "Selu": (lambda: nk.Selu(), ref.phi("Selu"), 1e-9),
}
X_SMALL1, X_SMALL2 = X1[:4], X2[:3]


@pytest.mark.parametrize("name", list(RECURSION_CASES))
def test_network_matches_layer_recursion_with_quadrature_maps(name):
    """Dense(1.3,0.2)→φ→Dense(0.9,0.1)→φ→Dense(1.1,0.3) equals the recursion of
    reference.recursion_kernels (every expectation by the test's own quadrature)."""
    make, p, rtol = RECURSION_CASES[name]
    act = make()
    net = nk.serial(
        nk.Dense(3, W_std=1.3, b_std=0.2),
        act,
        nk.Dense(2, W_std=0.9, b_std=0.1),
        act,
        nk.Dense(1, W_std=1.1, b_std=0.3),
    )
    layers = [
        ref.DenseSpec(3, 1.3, 0.2),
        ref.ActSpec(p),
        ref.DenseSpec(2, 0.9, 0.1),
        ref.ActSpec(p),
        ref.DenseSpec(1, 1.1, 0.3),
    ]
    for x2 in (None, X_SMALL2):
        want_nngp, want_ntk = ref.recursion_kernels(X_SMALL1, x2, layers)
        k = net.kernel(X_SMALL1, x2, get=("nngp", "ntk"))
        assert_kernel_close(k.nngp, want_nngp, rtol, what="nngp")
        assert_kernel_close(k.ntk, want_ntk, rtol, what="ntk")


@pytest.mark.parametrize("name", ["Tanh", "Softplus", "Selu"])
def test_equal_norm_inputs_match_layer_recursion(name):
    """Inputs on a sphere (all rows of norm √d, so every entry shares one variance per layer)
    give the quadrature recursion's kernels too (1e-5, as above), for x2 None and given."""
    make, p, rtol = RECURSION_CASES[name]
    act = make()
    net = nk.serial(
        nk.Dense(3, W_std=1.3, b_std=0.2),
        act,
        nk.Dense(2, W_std=0.9, b_std=0.1),
        act,
        nk.Dense(1, W_std=1.1, b_std=0.3),
    )
    layers = [
        ref.DenseSpec(3, 1.3, 0.2),
        ref.ActSpec(p),
        ref.DenseSpec(2, 0.9, 0.1),
        ref.ActSpec(p),
        ref.DenseSpec(1, 1.1, 0.3),
    ]
    s1 = X_SMALL1 / np.linalg.norm(X_SMALL1, axis=1, keepdims=True) * math.sqrt(X_SMALL1.shape[1])
    s2 = X_SMALL2 / np.linalg.norm(X_SMALL2, axis=1, keepdims=True) * math.sqrt(X_SMALL2.shape[1])
    for x2 in (None, s2):
        want_nngp, want_ntk = ref.recursion_kernels(s1, x2, layers)
        k = net.kernel(s1, x2, get=("nngp", "ntk"))
        assert_kernel_close(k.nngp, want_nngp, rtol, what="nngp")
        assert_kernel_close(k.ntk, want_ntk, rtol, what="ntk")


def test_sign_network_ntk_has_no_contribution_below_the_sign():
    """Sign's derivative map is 0: the NTK of Dense→Sign→Dense equals its NNGP."""
    net = nk.serial(nk.Dense(3, W_std=1.3, b_std=0.2), nk.Sign(), nk.Dense(1, W_std=0.8, b_std=0.4))
    k = net.kernel(X1, X2, get=("nngp", "ntk"))
    assert_kernel_close(k.ntk, k.nngp, 1e-15)
    cov = 1.3**2 * X1 @ X2.T / 5 + 0.04
    v1 = 1.3**2 * np.sum(X1**2, 1) / 5 + 0.04
    v2 = 1.3**2 * np.sum(X2**2, 1) / 5 + 0.04
    want = 0.8**2 * 2 / np.pi * np.arcsin(cov / np.sqrt(np.outer(v1, v2))) + 0.16
    assert_kernel_close(k.nngp, want, 1e-12)


# ---------------------------------------------------------------------------------
# API conventions checked against the recursion
# ---------------------------------------------------------------------------------


def test_widths_do_not_change_ntk_parameterization_kernels():
    """In the NTK parameterisation the infinite-width kernels do not depend on widths/out_dim."""
    a = relu_serial([(1, 1.3, 0.2), (1, 0.9, 0.1), (1, 1.1, 0.3)]).kernel(X1, X2, get=("nngp", "ntk"))
    b = relu_serial([(4096, 1.3, 0.2), (7, 0.9, 0.1), (10, 1.1, 0.3)]).kernel(X1, X2, get=("nngp", "ntk"))
    np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-14, atol=0)
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-14, atol=0)


def test_get_returns_namedtuple_in_requested_order_or_single_array():
    """get=("ntk", "nngp") gives Kernel(ntk, nngp) in that order; get="nngp" a bare array."""
    net = relu_serial(RELU_NETS["depth2"])
    want_nngp, want_ntk = cf.relu_arccos_recursion(X1, X2, RELU_NETS["depth2"])
    k = net.kernel(X1, X2, get=("ntk", "nngp"))
    assert k._fields == ("ntk", "nngp")
    assert_kernel_close(k[0], want_ntk, 1e-12)
    assert_kernel_close(k[1], want_nngp, 1e-12)
    single = net.kernel(X1, X2, get="nngp")
    assert isinstance(single, np.ndarray) and single.dtype == np.float64 and single.shape == (6, 4)
    assert_kernel_close(single, want_nngp, 1e-12)
    k1 = net.kernel(X1, X2, get=("ntk",))
    assert k1._fields == ("ntk",)
    assert_kernel_close(k1.ntk, want_ntk, 1e-12)


def test_default_get_returns_both_kernels():
    """The default get is ("nngp", "ntk")."""
    k = relu_serial(RELU_NETS["depth1"]).kernel(X1, X2)
    assert k._fields == ("nngp", "ntk")


def test_x2_none_means_x2_equals_x1():
    """kernel(x1) equals kernel(x1, x1)."""
    net = relu_serial(RELU_NETS["depth2"])
    a, b = net.kernel(X1, get=("nngp", "ntk")), net.kernel(X1, X1.copy(), get=("nngp", "ntk"))
    assert_kernel_close(a.nngp, b.nngp, 1e-14)
    # the ReLU NTK is √-singular at ρ = 1 (the diagonal): two code paths whose x·x' differ in
    # the last ulp may differ there by ~1e-8 (see test_properties.consistency_tol)
    assert_kernel_close(a.ntk, b.ntk, 3e-8)


@pytest.mark.parametrize("name", ["relu", "erf", "tanh", "gelu"])
def test_mlp_accepts_activation_name_and_object(name):
    """nk.mlp(activation=<name>) equals nk.mlp(activation=<object>) and the explicit serial."""
    obj = {"relu": nk.Relu, "erf": nk.Erf, "tanh": nk.Tanh, "gelu": nk.Gelu}[name]()
    by_name = nk.mlp(depth=2, width=16, activation=name, W_std=1.4, b_std=0.1, out_dim=1)
    by_obj = nk.mlp(depth=2, width=16, activation=obj, W_std=1.4, b_std=0.1, out_dim=1)
    explicit = nk.serial(
        nk.Dense(16, W_std=1.4, b_std=0.1),
        obj,
        nk.Dense(16, W_std=1.4, b_std=0.1),
        obj,
        nk.Dense(1, W_std=1.4, b_std=0.1),
    )
    want = explicit.kernel(X1, X2, get=("nngp", "ntk"))
    for net in (by_name, by_obj):
        got = net.kernel(X1, X2, get=("nngp", "ntk"))
        np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-14, atol=0)
        np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-14, atol=0)
    # and it is the right kernel, not only self-consistent
    p = ref.phi({"relu": "Relu", "erf": "Erf", "tanh": "Tanh", "gelu": "Gelu"}[name])
    layers = [
        ref.DenseSpec(16, 1.4, 0.1),
        ref.ActSpec(p),
        ref.DenseSpec(16, 1.4, 0.1),
        ref.ActSpec(p),
        ref.DenseSpec(1, 1.4, 0.1),
    ]
    ref_nngp, ref_ntk = ref.recursion_kernels(X_SMALL1, X_SMALL2, layers)
    sub = by_name.kernel(X_SMALL1, X_SMALL2, get=("nngp", "ntk"))
    assert_kernel_close(sub.nngp, ref_nngp, 1e-5)
    assert_kernel_close(sub.ntk, ref_ntk, 1e-5)


# ---------------------------------------------------------------------------------
# (c) Monte Carlo over wide random networks
# ---------------------------------------------------------------------------------

MC_WIDTH = 2048
MC_SAMPLES = 30
MC_OUT = 512  # outputs averaged for the NNGP (each f_k f_k' fluctuates by O(1))
MC_NTK_OUT = 8  # outputs back-propagated for the NTK (it concentrates; cost ∝ outputs)
X_MC = np.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.7], [-0.8, 0.1, 0.4], [0.9, 0.6, -0.1]])


@pytest.mark.parametrize("name", ["Relu", "Erf", "Tanh"])
def test_monte_carlo_wide_networks_agree_with_infinite_width_kernels(name):
    """The empirical NNGP/NTK of 30 random depth-2 networks of width 2048 (plain numpy,
    NTK parameterisation, NTK by back-propagation) average to net.kernel.

    Tolerance: 5 standard errors of the sample mean (from the sample standard deviation)
    plus a finite-width bias allowance of 5·max|K|/width.  Finite-width corrections are
    O(depth/width); running this sampler with 3000 networks of width 64 (and 600 of width
    256) for these three activations gave |bias| ≤ 0.6·max|K|/width, so 5/width is a 8×
    margin, while 5 SE is ~5–8% of max|K| here: the test checks the conventions (scalings,
    biases, parameterisation), not digits.
    """
    p = ref.phi(name)
    act = getattr(nk, name)()
    spec = [(MC_WIDTH, 1.5, 0.05), (MC_WIDTH, 1.3, 0.1), (MC_OUT, 1.1, 0.2)]
    net = nk.serial(
        nk.Dense(spec[0][0], W_std=1.5, b_std=0.05),
        act,
        nk.Dense(spec[1][0], W_std=1.3, b_std=0.1),
        act,
        nk.Dense(MC_OUT, W_std=1.1, b_std=0.2),
    )
    layers = [ref.DenseSpec(*spec[0]), ref.ActSpec(p), ref.DenseSpec(*spec[1]), ref.ActSpec(p), ref.DenseSpec(*spec[2])]
    nngps, ntks = ref.sample_empirical_kernels(X_MC, layers, MC_SAMPLES, seed=7, ntk_outputs=MC_NTK_OUT)
    k = net.kernel(X_MC, get=("nngp", "ntk"))
    for what, samples, exact in (("nngp", nngps, k.nngp), ("ntk", ntks, k.ntk)):
        mean = samples.mean(0)
        se = samples.std(0, ddof=1) / math.sqrt(MC_SAMPLES)
        allowance = 5 * se + 5 * np.max(np.abs(exact)) / MC_WIDTH
        z = np.abs(mean - exact) / se
        print(f"{name} {what}: max |mean − kernel|/SE = {z.max():.2f}")
        assert np.all(np.abs(mean - exact) <= allowance), (what, mean, exact, se)


# ---------------------------------------------------------------------------------
# (d) values computed by neural-tangents itself
# ---------------------------------------------------------------------------------

NT_FILE = Path(__file__).parent / "data" / "nt_reference.json"


# neural-tangents' own numbers ship with the tests (regenerate with benchmarks/nt_reference_inputs.py
# and benchmarks/_nt_peer.py --reference); a missing file is an error, not a skip
NT = json.loads(NT_FILE.read_text())
NT_KEYS = sorted(NT["results"])


def _nt_layer(spec, lib):
    args, kwargs = spec.get("args", []), spec.get("kwargs", {})
    name = spec["layer"]
    if lib == "ntkrs":
        return getattr(nk, name)(*args, **kwargs)
    if name == "Dense":
        return ref.DenseSpec(*args, **kwargs)
    return ref.ActSpec(ref.phi(name, *args, **kwargs))


@pytest.mark.parametrize("key", NT_KEYS)
def test_matches_neural_tangents_reference_values(key):
    """Every network in nt_reference.json (built from its recorded layer list) reproduces the
    NNGP and NTK that neural-tangents computed, for (x1, x2) and (x1, None), to 1e-8 relative
    (absolute floor 1e-8·max|K| for entries that are near-cancellations).

    Where neural-tangents returned NaN/inf (it does for RectifiedMonomial), the whole matrix is
    instead compared to the test's quadrature recursion, to 1e-10.
    """
    entry = NT["results"][key]
    assert entry.get("ok", False), f"neural-tangents recorded an error for {key}: {entry.get('error')}"
    inputs = entry.get("inputs", NT)
    x1, x2 = np.array(inputs["x1"], float), np.array(inputs["x2"], float)
    net = nk.serial(*[_nt_layer(s, "ntkrs") for s in entry["layers"]])
    ref_layers = None
    for field, other in (("x1_x1", None), ("x1_x2", x2)):
        got = net.kernel(x1, other, get=("nngp", "ntk"))
        for what in ("nngp", "ntk"):
            want = np.array(entry[field][what], dtype=float)
            mine = np.asarray(getattr(got, what))
            assert mine.shape == want.shape and np.all(np.isfinite(mine)), (field, what, mine)
            finite = np.isfinite(want)
            scale = np.max(np.abs(want[finite])) if finite.any() else 0.0
            err = np.abs(mine - want)
            bad = finite & ~(err <= 1e-8 * np.abs(want) + 1e-8 * scale)
            assert not bad.any(), (field, what, np.argwhere(bad)[:4].tolist(), mine[bad][:4], want[bad][:4])
            if not finite.all():
                if ref_layers is None:
                    ref_layers = [_nt_layer(s, "ref") for s in entry["layers"]]
                rk = ref.recursion_kernels(x1, other, ref_layers)[0 if what == "nngp" else 1]
                assert_kernel_close(mine, rk, 1e-10, what=f"{field} {what} (NT gave NaN)")


def _activation_from_key(key: str):
    """The activation a key names ("Erf(a=1.2,b=0.7,c=0.1)", "standard/Relu", "Hermite(2)/unit"),
    parsed with ast (literal arguments only), or None for "dense_only"."""
    for part in key.split("/"):
        tree = ast.parse(part, mode="eval").body
        if isinstance(tree, ast.Name) and hasattr(nk, tree.id):
            return getattr(nk, tree.id)()
        if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and hasattr(nk, tree.func.id):
            args = [ast.literal_eval(a) for a in tree.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in tree.keywords}
            return getattr(nk, tree.func.id)(*args, **kwargs)
    return None


@pytest.mark.parametrize("key", NT_KEYS)
def test_neural_tangents_records_describe_the_network_their_key_names(key):
    """Guard against a mislabelled reference file: the activation parsed from each key has the
    same maps as the activation layers recorded for it; "standard" keys use the standard
    parameterisation, "nobias" keys have no biases, "dense_only" is a single Dense layer."""
    layers = NT["results"][key]["layers"]
    dense = [s for s in layers if s["layer"] == "Dense"]
    acts = [s for s in layers if s["layer"] != "Dense"]
    expected = _activation_from_key(key)
    if expected is None:
        assert key == "dense_only" and len(layers) == 1 and not acts
        return
    assert acts and len(dense) == len(acts) + 1
    probe = (np.array([0.5, 1.0, 2.0]), np.array([1.0, 1.0, 0.7]), np.array([0.2, -0.9, 1.1]))
    for spec in acts:
        recorded = _nt_layer(spec, "ntkrs")
        for a, b in zip(recorded.maps(*probe), expected.maps(*probe), strict=True):
            np.testing.assert_array_equal(a, b)
    prefix = key.split("/")[0]
    for spec in dense:
        kwargs = spec.get("kwargs", {})
        want_param = "standard" if prefix.startswith("standard") else "ntk"
        assert kwargs.get("parameterization", "ntk") == want_param
        if "nobias" in prefix:
            assert kwargs.get("b_std") is None
