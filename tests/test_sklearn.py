"""ntkrs.sklearn: the NTK/NNGP kernels as scikit-learn kernels and the NTKRegressor estimator.

scikit-learn is a test dependency (the ``test`` extra): these tests import it directly and fail,
never skip, when it is missing.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import ntkrs as nk
import numpy as np
import pytest
import sklearn
from ntkrs import predict
from ntkrs.sklearn import NNGP, NTK, NTKRegressor, NTKRidge, default_network
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, WhiteKernel
from sklearn.kernel_ridge import KernelRidge
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import parametrize_with_checks

RNG = np.random.default_rng(7)
X = RNG.standard_normal((25, 4))
XT = RNG.standard_normal((6, 4))
Y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]


def erf_net(b_std: float | None = 0.1) -> nk.Network:
    return nk.mlp(2, 64, "erf", W_std=1.0, b_std=b_std)


# --- scikit-learn's estimator checks ------------------------------------------------------------

# Expected skips (scikit-learn raises SkipTest itself, reported by pytest -ra), none expected to fail:
# * check_array_api_input: runs only with SCIPY_ARRAY_API=1 and array-api-compat installed; ntkrs
#   computes with NumPy and does not declare array-API support, so scikit-learn skips it.
# * check_regressor_data_not_an_array: needs pandas, which is not a test dependency.
ESTIMATORS = [NTKRegressor(), NTKRegressor(net=erf_net(), t=1e4, learning_rate=2.0, diag_reg=1e-6, get="nngp"),
              NTKRidge(), NTKRidge(net=erf_net(), get="nngp", solver="nystrom", diag_reg=1e-3, dtype=np.float32),
              NTKRidge(solver="exact", dtype=np.float32, memory_limit="64MB")]


@parametrize_with_checks(ESTIMATORS)
def test_estimators_pass_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_importing_ntkrs_does_not_import_scikit_learn():
    code = "import sys, ntkrs, ntkrs.predict; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- kernel values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "get"), [(NTK, "ntk"), (NNGP, "nngp")])
def test_kernel_is_the_network_kernel_with_the_hyperparameters_on_every_dense(cls, get):
    """k(X, Y) = net.kernel(X, Y) of the net whose every Dense has W_std, b_std (even bias-free ones);
    diag(X) is the diagonal of k(X, X)."""
    template = nk.serial(nk.Dense(32, W_std=9.0), nk.Gelu(), nk.Dense(32, b_std=3.0), nk.Gelu(), nk.Dense(1))
    kern = cls(net=template, W_std=1.3, b_std=0.2)
    want = nk.mlp(2, 32, "gelu", W_std=1.3, b_std=0.2)
    np.testing.assert_array_equal(kern(X, XT), want.kernel(X, XT, get=get))
    np.testing.assert_array_equal(kern(X), want.kernel(X, get=get))
    np.testing.assert_allclose(kern.diag(X), np.diag(kern(X)), rtol=1e-13)
    assert kern.is_stationary() is False
    assert kern.requires_vector_input


def test_default_network_is_documented_two_hidden_relu_layers():
    kern = NTK(W_std=1.2, b_std=0.3)
    want = nk.mlp(2, 512, "relu", W_std=1.2, b_std=0.3).kernel(X, get="ntk")
    np.testing.assert_array_equal(kern(X), want)
    assert len(default_network()) == 5


# --- hyperparameters, cloning, composition --------------------------------------------------------


def test_hyperparameters_are_log_scaled_with_bounds_and_can_be_fixed():
    kern = NTK(W_std=2.0, b_std=0.5, W_std_bounds=(0.1, 10.0), b_std_bounds=(1e-3, 1.0))
    assert [h.name for h in kern.hyperparameters] == ["W_std", "b_std"]
    np.testing.assert_allclose(kern.theta, np.log([2.0, 0.5]))
    np.testing.assert_allclose(kern.bounds, np.log([[0.1, 10.0], [1e-3, 1.0]]))
    other = kern.clone_with_theta(np.log([1.5, 0.25]))
    assert (other.W_std, other.b_std) == pytest.approx((1.5, 0.25))
    assert (kern.W_std, kern.b_std) == (2.0, 0.5)
    fixed = NTK(W_std=2.0, b_std=0.5, b_std_bounds="fixed")
    np.testing.assert_allclose(fixed.theta, np.log([2.0]))
    assert fixed(X, eval_gradient=True)[1].shape == (25, 25, 1)


def test_get_params_clone_and_pickle_keep_the_kernel():
    kern = NNGP(net=erf_net(), W_std=1.1, b_std=0.2)
    params = kern.get_params()
    assert set(params) == {"net", "W_std", "b_std", "W_std_bounds", "b_std_bounds"}
    for copy in (clone(kern), pickle.loads(pickle.dumps(kern))):
        assert copy == kern and copy is not kern
        np.testing.assert_array_equal(copy(X), kern(X))
    assert NNGP(net=erf_net(), W_std=1.2) != kern
    assert NTK(net=erf_net(), W_std=1.1, b_std=0.2) != kern


@pytest.mark.parametrize(
    "net",
    [
        nk.serial(nk.Dense(8, W_std=2.0, b_std=None, parameterization="standard"), nk.Tanh(quad_degree=32),
                  nk.Dense(1)),
        nk.serial(nk.Dense(8), nk.Polynomial([0.1, 1.0, 0.5]), nk.Dense(8), nk.LeakyRelu(0.2), nk.Dense(1)),
        nk.serial(nk.Dense(8, b_std=0.3), nk.Elementwise(np.sin, np.cos), nk.Dense(1)),
    ],
    ids=["standard-tanh", "polynomial-leaky", "elementwise"],
)
def test_networks_survive_clone_and_pickle_with_identical_kernels(net):
    """scikit-learn clones parameters by deepcopy and saves models by pickle: a network is rebuilt from
    its layers' arguments (parameterization, activation parameters, quad_degree, functions) exactly."""
    for copy in (clone(NTK(net=net)).net, pickle.loads(pickle.dumps(net))):
        assert copy is not net and repr(copy) == repr(net)
        a, b = copy.kernel(X), net.kernel(X)
        np.testing.assert_array_equal(a.nngp, b.nngp)
        np.testing.assert_array_equal(a.ntk, b.ntk)


def test_kernel_composes_with_constant_and_white_kernels():
    """c·NTK + WhiteKernel(s) = c·K + s·I, with the gradient of every log-hyperparameter in order."""
    kern = ConstantKernel(2.0) * NTK(net=erf_net(), W_std=1.2, b_std=0.3) + WhiteKernel(0.1)
    base = NTK(net=erf_net(), W_std=1.2, b_std=0.3)
    k, grad = kern(X, eval_gradient=True)
    np.testing.assert_allclose(k, 2.0 * base(X) + 0.1 * np.eye(25), rtol=1e-14)
    assert grad.shape == (25, 25, 4)
    np.testing.assert_allclose(grad[..., 0], 2.0 * base(X), rtol=1e-14)  # ∂/∂log c
    np.testing.assert_allclose(grad[..., 1:3], 2.0 * base(X, eval_gradient=True)[1], rtol=1e-14)
    np.testing.assert_allclose(grad[..., 3], 0.1 * np.eye(25), rtol=1e-14)  # ∂/∂log s


# --- gradients against independent derivatives -----------------------------------------------------


@pytest.mark.parametrize("cls", [NTK, NNGP])
def test_gradient_of_a_bias_free_relu_network_is_exact_homogeneity(cls):
    """Without biases, ReLU layers are positively homogeneous, so every Dense scales both kernels by W²:
    K ∝ W^{2L} (L Dense layers) and ∂K/∂log W = 2L·K exactly."""
    net = nk.mlp(3, 16, "relu")
    kern = cls(net=net, W_std=1.3, b_std=0.0, b_std_bounds="fixed")
    k, grad = kern(X, eval_gradient=True)
    np.testing.assert_allclose(grad[..., 0], 2 * 4 * k, rtol=1e-10, atol=1e-12 * np.abs(k).max())


def test_gradient_of_one_dense_layer_is_the_closed_form():
    """One Dense: K = W²·x·x'/d + b² for both kernels, so ∂K/∂log W = 2W²·x·x'/d, ∂K/∂log b = 2b²."""
    W, b = 1.7, 0.4
    for cls in (NTK, NNGP):
        _, grad = cls(net=nk.serial(nk.Dense(1)), W_std=W, b_std=b)(X, eval_gradient=True)
        np.testing.assert_allclose(grad[..., 0], 2 * W**2 * X @ X.T / 4, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(grad[..., 1], np.full((25, 25), 2 * b**2), rtol=1e-10)


@pytest.mark.parametrize("cls", [NTK, NNGP])
def test_gradient_matches_derivative_of_the_analytic_erf_kernel_recursion(cls):
    """Erf network with biases: compare with the derivative of the arcsine-kernel recursion written in
    the test (closed form E[erf·erf] = 2/π·asin(2c/√((1+2q1)(1+2q2))), E[erf'erf'] = 4/π/√((1+2q1)(1+2q2)−4c²)),
    differentiated by complex steps (exact to rounding)."""
    W, b = 1.2, 0.3

    def recursion(w, bb):
        q = X @ X.T / X.shape[1] + 0j
        nngp = w**2 * q + bb**2
        ntk = nngp.copy()
        for _ in range(2):
            d = np.diag(nngp)
            s = np.sqrt((1 + 2 * d[:, None]) * (1 + 2 * d[None, :]))
            act = 2 / np.pi * np.arcsin(2 * nngp / s)
            dact = 4 / np.pi / np.sqrt(s**2 - 4 * nngp**2)
            nngp = w**2 * act + bb**2
            ntk = nngp + w**2 * ntk * dact
        return ntk if cls is NTK else nngp

    h = 1e-20
    dW = (recursion(W * np.exp(1j * h), b).imag / h)
    db = (recursion(W, b * np.exp(1j * h)).imag / h)
    kern = cls(net=erf_net(), W_std=W, b_std=b)
    k, grad = kern(X, eval_gradient=True)
    np.testing.assert_allclose(k, recursion(W, b).real, rtol=1e-9)
    np.testing.assert_allclose(grad[..., 0], dW, rtol=1e-8, atol=1e-10 * np.abs(dW).max())
    np.testing.assert_allclose(grad[..., 1], db, rtol=1e-8, atol=1e-10 * np.abs(db).max())


def test_gp_log_marginal_likelihood_gradient_matches_finite_differences():
    """GaussianProcessRegressor's analytic LML gradient (built from eval_gradient) vs central differences of
    the LML itself."""
    kern = ConstantKernel(1.0) * NTK(net=erf_net(), W_std=1.2, b_std=0.3) + WhiteKernel(0.05)
    gp = GaussianProcessRegressor(kern, optimizer=None).fit(X, Y)
    theta = gp.kernel_.theta
    lml, grad = gp.log_marginal_likelihood(theta, eval_gradient=True)
    num = np.array([(gp.log_marginal_likelihood(theta + e) - gp.log_marginal_likelihood(theta - e)) / 2e-5
                    for e in 1e-5 * np.eye(len(theta))])
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-6)


def test_eval_gradient_needs_y_none():
    with pytest.raises(ValueError, match="Y is None"):
        NTK()(X, XT, eval_gradient=True)


# --- use in scikit-learn models ---------------------------------------------------------------------


def test_gaussian_process_regressor_posterior_equals_gp_inference():
    """GPR with a fixed NNGP kernel and noise alpha = gp_inference's NNGP posterior with absolute diag_reg."""
    kern = NNGP(net=erf_net(), W_std=1.2, b_std=0.3)
    gp = GaussianProcessRegressor(kern, alpha=1e-3, optimizer=None).fit(X, Y)
    mean, cov = gp.predict(XT, return_cov=True)
    post = predict.gp_inference(kern(X), Y, diag_reg=1e-3, diag_reg_absolute_scale=True)("nngp", kern(XT, X), kern(XT))
    np.testing.assert_allclose(mean, post.mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov, post.covariance, rtol=1e-7, atol=1e-10)


def test_gaussian_process_regressor_optimises_the_hyperparameters():
    """Maximising the marginal likelihood over W_std, b_std (and c, noise) raises it above the start."""
    kern = ConstantKernel(1.0) * NTK(net=erf_net(), W_std=0.5, b_std=0.5) + WhiteKernel(0.1)
    noisy = 1.0 + Y + 0.1 * np.random.default_rng(3).standard_normal(len(Y))  # an offset: the biases matter
    gp = GaussianProcessRegressor(kern, random_state=0).fit(X, noisy)
    start = gp.log_marginal_likelihood(kern.theta)
    assert gp.log_marginal_likelihood_value_ > start + 1.0
    assert gp.kernel_.k1.k2.W_std != 0.5


@pytest.mark.parametrize("precomputed", [False, True])
def test_kernel_ridge_is_kernel_regression_with_absolute_ridge(precomputed):
    kern = NTK(net=erf_net(), W_std=1.2, b_std=0.3)
    if precomputed:
        kr = KernelRidge(alpha=0.01, kernel="precomputed").fit(kern(X), Y)
        got = kr.predict(kern(XT, X))
    else:
        got = KernelRidge(alpha=0.01, kernel=kern).fit(X, Y).predict(XT)
    want = kern(XT, X) @ np.linalg.solve(kern(X) + 0.01 * np.eye(25), Y)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_svc_with_precomputed_or_callable_kernel():
    """SVC on the NTK Gram matrix (precomputed) and with the kernel object as callable agree, and separate
    two concentric circles a linear SVC cannot."""
    from sklearn.datasets import make_circles

    xc, yc = make_circles(200, noise=0.05, factor=0.4, random_state=0)
    xc = np.hstack([xc, np.ones((200, 1))])  # a constant feature: the NTK then sees the radius
    kern = NTK(W_std=1.5, b_std=0.1)
    pre = SVC(kernel="precomputed", C=10.0).fit(kern(xc[:150]), yc[:150])
    call = SVC(kernel=kern, C=10.0).fit(xc[:150], yc[:150])
    np.testing.assert_allclose(pre.decision_function(kern(xc[150:], xc[:150])), call.decision_function(xc[150:]),
                               rtol=1e-7, atol=1e-9)
    acc = (pre.predict(kern(xc[150:], xc[:150])) == yc[150:]).mean()
    linear = (SVC(kernel="linear", C=10.0).fit(xc[:150], yc[:150]).predict(xc[150:]) == yc[150:]).mean()
    assert acc >= 0.95 > linear


# --- NTKRegressor -------------------------------------------------------------------------------------


@pytest.mark.parametrize("get", ["ntk", "nngp"])
@pytest.mark.parametrize("t", [None, 0.0, 3.0])
def test_regressor_predicts_the_ensemble_mean(get, t):
    net = erf_net()
    y2 = np.stack([Y, -Y], axis=1)
    reg = NTKRegressor(net=net, t=t, learning_rate=0.5, diag_reg=1e-3, get=get).fit(X, y2)
    want = predict.gradient_descent_mse_ensemble(net, X, y2, learning_rate=0.5, diag_reg=1e-3)(XT, t, get=get)
    np.testing.assert_allclose(reg.predict(XT), want, rtol=1e-9, atol=1e-12)
    assert reg.predict(XT).shape == (6, 2)


def test_regressor_with_a_custom_network_pickles_and_clones():
    reg = NTKRegressor(net=erf_net(), t=2.0).fit(X, Y)
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(XT), reg.predict(XT))
    fresh = clone(reg)
    assert repr(fresh.net) == repr(reg.net) and not hasattr(fresh, "dual_coef_")


@pytest.mark.parametrize(
    ("params", "exc", "match"),
    [
        ({"get": "ntkgp"}, ValueError, "get"),
        ({"net": "relu"}, TypeError, "net"),
        ({"t": -1.0}, ValueError, "t"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"diag_reg": -1.0}, ValueError, "diag_reg"),
    ],
)
def test_regressor_rejects_bad_parameters_at_fit(params, exc, match):
    with pytest.raises(exc, match=match):
        NTKRegressor(**params).fit(X, Y)


def test_scikit_learn_is_recent_enough():
    assert tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 3)
